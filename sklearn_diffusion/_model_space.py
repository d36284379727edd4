"""The model's space: standardization, column maps, the held-out split (L4, private).

The diffusion runs on standardized (and, by default, Gaussianized) columns.
:class:`ColumnMap` is that map with its exact log-Jacobian; :func:`prepare`
is the one preprocessing routine of ``fit`` and ``refit_features`` (as
``IterativeImputer._initial_imputation`` serves both ``fit_transform`` and
``transform`` in scikit-learn): validated rows in, model-space training and
held-out rows, seeds and the fitted map out.
"""

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from ._utils import make_generator, map_rows
from ._validation import MAX_SEED
from .marginals import degaussianize, fit_gaussianizer, gaussianize, resample_knots
from .reference import fit_reference_mixture, mixture_floor, mixture_log_density

#: Fewest complete held-out rows the held-out choices (smoothing, column
#: map) are made on; with fewer (fits on incomplete rows) they fall back.
MIN_SELECTION_ROWS = 20

#: Fitted attributes of the Gaussianizing column maps, in :class:`ColumnMap`'s order.
COLUMN_MAP_ATTRIBUTES = ("x_knots_", "z_knots_", "column_bandwidth_", "column_normal_weight_")

#: Fitted attributes of the columns' domain, in :class:`ColumnMap`'s order.
DOMAIN_ATTRIBUTES = ("data_min_", "data_max_", "integer_features_", "grid_steps_")

#: How far (in grid steps) a value may be from its column's grid and count as on it:
#: round-off of decimal data (0.29 / 0.01 = 28.999999999999996), not measurement noise.
_GRID_TOLERANCE = 1e-6

#: Stream of the dequantization noise, apart from every other draw of the fit's seed.
_DEQUANTIZATION_STREAM = 0x6A1D

#: Largest magnitude below which a float64 column can be told to hold integers.
_EXACT_INTEGERS = 2.0**52


def location_scale(X):
    """Per-column mean and standard deviation of ``X`` without overflow or underflow.

    Each column is divided by a power of two near its largest magnitude, so
    the moments are computed on values in [-1, 1] and scaled back exactly:
    data at 1e300 (whose squares overflow) and at 1e-300 get the same
    relative precision as data at 1. A column counts as constant when its
    spread is within rounding of its values (8 units in the last place);
    it keeps the scale 1, or its magnitude when that is larger.

    Raises
    ------
    ValueError
        When the model's range (1,000 standard deviations around the mean)
        does not fit in float64, or a column varies on a scale below
        float64's normal range.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import location_scale
    >>> mean, scale = location_scale(np.array([[1e300, 3e-13], [3e300, 1e-13]]))
    >>> np.allclose(mean, [2e300, 2e-13], rtol=1e-15)
    True
    >>> np.allclose(scale, [1e300, 1e-13], rtol=1e-15)
    True
    """
    peak = np.max(np.abs(X), axis=0)
    exponent = np.frexp(np.where(peak > 0, peak, 1.0))[1]
    # Column by column along contiguous memory: a column's moments are then
    # the same bits whatever other columns X has (and whether they have NaN),
    # which refit_features needs to match a full fit.
    scaled = np.ascontiguousarray(np.ldexp(X, -exponent).T)
    mean_s, std_s = scaled.mean(axis=1), scaled.std(axis=1)
    eps = np.finfo(np.float64).eps
    constant = std_s <= 8 * eps * np.abs(mean_s)
    mean = np.ldexp(mean_s, exponent)
    # A constant column keeps scale 1, or its magnitude when that is larger,
    # so rounding differences (up to 8 ulps of 1e155, say) stay near 1e-15.
    scale = np.where(constant, np.maximum(1.0, np.abs(mean)), np.ldexp(std_s, exponent))
    with np.errstate(over="ignore"):
        reach = np.abs(mean) + 1e3 * scale + 2 * peak
    if not np.all(np.isfinite(reach)):
        raise ValueError(
            "X has values too large to model in float64 (the model's range of 1,000 standard "
            "deviations around the mean overflows); divide X by a constant first."
        )
    if np.any(~constant & (scale < np.finfo(np.float64).tiny * 2**52)):
        raise ValueError(
            "X has a column that varies on a scale below 1e-292, too small to model in float64; "
            "multiply X by a constant first."
        )
    return mean, scale


def observed_location_scale(X):
    """:func:`location_scale` of each column's observed (non-NaN) entries."""
    missing = np.isnan(X)
    if not missing.any():
        return location_scale(X)
    moments = [location_scale(column[~gap, None]) for column, gap in zip(X.T, missing.T)]
    return tuple(np.concatenate(m) for m in zip(*moments))


def observed_rows(X):
    """The rows of ``X`` with at least one observed (non-NaN) entry; warns about the others.

    Raises ``ValueError`` when fewer than two rows remain or a column has no
    observed entry (nothing to fit its standardization on).

    Examples
    --------
    >>> import numpy as np, warnings
    >>> from sklearn_diffusion._model_space import observed_rows
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     kept = observed_rows(np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 3.0]]))
    >>> kept.shape, str(caught[0].message)
    ((2, 2), '1 row of X has every entry missing (NaN) and is ignored.')
    """
    missing = np.isnan(X)
    if not missing.any():
        return X
    empty = missing.all(axis=1)
    if empty.any():
        count = int(empty.sum())
        warnings.warn(
            f"{count} row{'s' if count > 1 else ''} of X "
            f"{'have' if count > 1 else 'has'} every entry missing (NaN) and "
            f"{'are' if count > 1 else 'is'} ignored.",
            UserWarning,
        )
        X, missing = X[~empty], missing[~empty]
    if len(X) < 2:
        raise ValueError(
            f"X has {len(X)} row(s) with an observed value; at least 2 are needed to fit."
        )
    unseen = np.flatnonzero(missing.all(axis=0))
    if len(unseen):
        raise ValueError(
            f"Column(s) {unseen.tolist()} of X have no observed value; drop them before fitting."
        )
    return X


def constant_values(X):
    """Each column's value where all its observed entries are equal, NaN for the others.

    Such a column carries no spread to model: ``sample``, conditional draws
    and the imputer return it exactly (:meth:`ColumnMap.inverse`). A column
    observed in one row only is constant by this rule, with a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import constant_values
    >>> constant_values(np.array([[1.0, 2.0], [1.0, 3.0]])).tolist()
    [1.0, nan]
    """
    low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    single = np.flatnonzero((~np.isnan(X)).sum(axis=0) == 1)
    if len(single):
        warnings.warn(
            f"Column(s) {single.tolist()} of X have a single observed value; they are modelled "
            "as constant (sampled and imputed as that value).", UserWarning,
        )
    return np.where(low == high, low, np.nan)


def column_domain(X):
    """Each column's observed range and whether it holds integers only.

    What :meth:`ColumnMap.inverse` keeps samples within: a column is
    integer when every observed entry is a whole number (below 2**52 in
    magnitude) and it is not constant.

    Returns
    -------
    low, high : ndarray of shape (n_features,)
        Smallest and largest observed entry of each column.
    integer : ndarray of bool of shape (n_features,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import column_domain
    >>> low, high, integer = column_domain(np.array([[0.0, 0.5], [3.0, np.nan], [1.0, 2.0]]))
    >>> low.tolist(), high.tolist(), integer.tolist()
    ([0.0, 0.5], [3.0, 2.0], [True, False])
    """
    low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    whole = np.isnan(X) | ((X == np.round(X)) & (np.abs(X) < _EXACT_INTEGERS))
    return low, high, whole.all(axis=0) & (low < high)


def grid_steps(X, exclude=None):
    """The grid step of each column whose observed values lie on a grid and repeat; 0 elsewhere.

    A column is on a grid when every gap between its distinct observed
    values is a whole multiple of the smallest one (integer counts,
    readings to a fixed number of decimals). Where such values also repeat,
    the column has point masses, on which no density is finite: a flexible
    model scores held-out copies of training values by how sharp it makes
    its spikes. ``fit`` spreads each such value uniformly over its grid
    cell instead (``dequantize=True``), so the density of a value on the
    grid is its probability divided by the step.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry.
    exclude : array of int, optional
        Columns never dequantized (the categories' coordinates, which the
        table codec dequantizes itself).

    Returns
    -------
    steps : ndarray of shape (n_features,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import grid_steps
    >>> X = np.array([[0.0, 0.5, 1.0], [2.0, 0.5, 2.5], [2.0, 1.5, 3.1], [6.0, 1.0, 3.1]])
    >>> grid_steps(X).tolist()  # column 2 repeats a value but is not on a grid
    [2.0, 0.5, 0.0]
    """
    steps = np.zeros(X.shape[1])
    for j, column in enumerate(X.T):
        observed = column[~np.isnan(column)]
        values = np.unique(observed)
        if not 1 < len(values) < len(observed):
            continue
        step = np.diff(values).min()
        multiples = (values - values[0]) / step
        if np.all(np.abs(multiples - np.round(multiples)) <= _GRID_TOLERANCE):
            steps[j] = step
    if exclude is not None:
        steps[exclude] = 0.0
    return steps


def discrete_gap(Z, max_levels=50):
    """Smallest gap between distinct values over the columns with few of them.

    ``Z`` (n, d) is standardized. Returns ``inf`` when every column has more
    than ``max_levels`` distinct values (continuous data).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import discrete_gap
    >>> float(discrete_gap(np.array([[0.0, 0.1], [1.0, 0.3], [3.0, 0.7]]), max_levels=2))
    inf
    >>> float(discrete_gap(np.array([[0.0], [1.0], [3.0]])))
    1.0
    """
    # NaN (a missing entry) is no level.
    levels = (u[~np.isnan(u)] for u in map(np.unique, Z.T))
    gaps = [np.diff(u).min() for u in levels if 1 < len(u) <= max_levels]
    return min(gaps, default=np.inf)


def warn_if_near_discrete(Z, t_min):
    """Warn when a column's few distinct values are far apart next to the noise at ``t_min``.

    The model is then a comb of spikes at small t: the probability-flow ODE
    is stiff and the fixed-step log-density of some rows is off by hundreds
    of nats or more (ADBench's breastw; ``benchmarks/results/density.md``).
    Noise of a fifth of the gap blurs the spikes enough.
    """
    gap = discrete_gap(Z)
    noise = np.sqrt(-np.expm1(-2.0 * t_min))
    if np.isfinite(gap) and gap > 5 * noise:
        floor = -0.5 * np.log1p(-min(gap / 5, 0.99) ** 2)
        warnings.warn(
            f"X looks near-discrete: a column has at most 50 distinct values, "
            f"{gap:.3g} standard deviations apart, over 5 times the noise at "
            f"t_min={t_min:g}. score_samples (the likelihood ODE) may then be "
            f"inaccurate; use t_min >= {floor:.2g} or add dequantization noise to X "
            "(dequantize=True does so for columns whose values lie on a grid). "
            "anomaly_score (method='denoising' or 'score_norm') is not affected.",
            UserWarning,
        )


def clip_to_training_range(Z_val, Z):
    """The held-out rows ``Z_val`` clipped to the range of each column's training entries.

    Early stopping judges the network by its denoising loss on the held-out
    rows, and the squared error at an entry beyond every training value of
    its column grows without bound with the distance: two such pixels kept
    a digits fit at 30% MCAR at step 100 of 1,500
    (``benchmarks/results/studies/impute_refit.md``). Clipped, such a row still
    counts, at the edge of the training range. The likelihood-based choices
    (smoothing, column map) see the rows as they are. NaN stays NaN; None
    gives None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import clip_to_training_range
    >>> clip_to_training_range(np.array([[5.0, np.nan]]), np.array([[0.0, 1.0], [1.0, 2.0]]))
    array([[ 1., nan]])
    """
    if Z_val is None:
        return None
    with warnings.catch_warnings():
        # An all-NaN training column has no range; its held-out entries stay.
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(Z, axis=0), np.nanmax(Z, axis=0)
    return np.clip(Z_val, np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf))


def complete_rows(Z):
    """The rows of ``Z`` without NaN, or None when there are fewer than ``MIN_SELECTION_ROWS``."""
    if Z is None:
        return None
    Z = Z[~np.isnan(Z).any(axis=1)]
    return Z if len(Z) >= MIN_SELECTION_ROWS else None


@dataclass(frozen=True)
class ColumnMap:
    """Standardization, then (when knots are given) a monotone map of each column to N(0, 1).

    ``mean`` and ``scale`` (d,) standardize; ``x_knots`` and ``z_knots``
    (d, k), with the bandwidth and normal weight of the marginal behind
    them, tabulate the Gaussianizing maps of :mod:`~sklearn_diffusion.marginals`.
    ``constants`` (d,) holds the value of each constant column (NaN for the
    others), which :meth:`inverse` returns exactly; ``low``, ``high`` and
    ``integer`` (d,) the domain (:func:`column_domain`) it keeps samples in,
    and ``grid_step`` (d,) the step of the columns fitted dequantized
    (:func:`grid_steps`; 0 for the others).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import ColumnMap
    >>> cmap = ColumnMap(np.array([1.0]), np.array([2.0]))
    >>> Z, log_jac = cmap.forward(np.array([[3.0]]))
    >>> Z.tolist(), np.round(log_jac, 4).tolist(), cmap.inverse(Z).tolist()
    ([[1.0]], [-0.6931], [[3.0]])
    """

    mean: np.ndarray
    scale: np.ndarray
    x_knots: Optional[np.ndarray] = None
    z_knots: Optional[np.ndarray] = None
    bandwidth: Optional[np.ndarray] = None
    normal_weight: Optional[np.ndarray] = None
    constants: Optional[np.ndarray] = None
    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None
    integer: Optional[np.ndarray] = None
    grid_step: Optional[np.ndarray] = None

    @property
    def gaussian(self):
        return self.x_knots is not None

    @property
    def name(self):
        """The ``column_transform_`` this map is: ``"gaussianize"`` or ``"standardize"``."""
        return "gaussianize" if self.gaussian else "standardize"

    def forward(self, X):
        """Rows (n, d) in the model's space, and ``log |det|`` of the map per row."""
        Z = (X.astype(np.float64, copy=False) - self.mean) / self.scale
        log_jacobian = np.full(len(Z), -np.log(self.scale).sum())
        if self.gaussian:
            Z, log_slopes = gaussianize(Z, self.x_knots, self.z_knots)
            log_jacobian += log_slopes
        return Z, log_jacobian

    def inverse(self, Z, domain=False):
        """Model-space rows (n, d) back on the scale of the data.

        With ``domain``, each column is clipped to its training range and an
        integer column rounded (the ``sample_domain="data"`` of the estimators).
        """
        if self.gaussian:
            Z = degaussianize(Z, self.x_knots, self.z_knots)
        X = Z * self.scale + self.mean
        if domain and self.low is not None:
            X = np.clip(X, self.low, self.high)
            X[:, self.integer] = np.round(X[:, self.integer])
        if self.constants is not None:
            fixed = ~np.isnan(self.constants)
            X[:, fixed] = self.constants[fixed]
        return X

    def with_domain(self, low, high, integer, grid_step):
        """This map with the domain ``low``, ``high``, ``integer`` and ``grid_step``."""
        return dataclasses.replace(self, low=low, high=high, integer=integer,
                                   grid_step=grid_step)

    @classmethod
    def of(cls, est):
        """The map fitted on the estimator ``est``."""
        knots = [getattr(est, name, None) for name in COLUMN_MAP_ATTRIBUTES]
        if est.column_transform_ != "gaussianize":
            knots = [None] * 4
        domain = [getattr(est, name, None) for name in DOMAIN_ATTRIBUTES]
        return cls(est.mean_, est.scale_, *knots, getattr(est, "constant_values_", None), *domain)

    def set_on(self, est):
        """Store the map as ``est``'s fitted attributes (and drop an earlier fit's maps)."""
        est.mean_, est.scale_ = self.mean, self.scale
        for name, value in zip(COLUMN_MAP_ATTRIBUTES, (self.x_knots, self.z_knots,
                                                       self.bandwidth, self.normal_weight)):
            if value is None:
                est.__dict__.pop(name, None)
            else:
                setattr(est, name, value)
        est.column_transform_ = self.name
        est.constant_values_ = self.constants
        for name, value in zip(DOMAIN_ATTRIBUTES,
                               (self.low, self.high, self.integer, self.grid_step)):
            setattr(est, name, value)


def choose_column_map(Z, Z_val, Z_g, Z_val_g, knots, seed, floor):
    """Whether ``column_transform="auto"`` Gaussianizes, and the reference mixture it fitted.

    The BIC mixture of :func:`~sklearn_diffusion.reference.fit_reference_mixture`
    is fitted on the training rows in both spaces (``Z`` standardized,
    ``Z_g`` Gaussianized by ``knots``); the one whose held-out
    log-likelihood (with the column maps' log-Jacobian) is higher wins, and
    its mixture is returned for the score network's reference (eigenvalues
    at least ``floor``). Without enough complete held-out rows: ``(True, None)``.
    """
    rows = None if Z_val is None else ~np.isnan(Z_val).any(axis=1)
    if rows is None or rows.sum() < MIN_SELECTION_ROWS:
        return True, None
    fits = [fit_reference_mixture(space, seed, floor) for space in (Z, Z_g)]
    log_slopes = gaussianize(Z_val[rows], *knots[:2])[1]
    standardized = mixture_log_density(Z_val[rows], *fits[0]).mean()
    gaussianized = (mixture_log_density(Z_val_g[rows], *fits[1]) + log_slopes).mean()
    gaussian = bool(gaussianized >= standardized)
    return gaussian, fits[1] if gaussian else fits[0]


class Prepared(NamedTuple):
    """What :func:`prepare` hands to training, in the model's space."""

    Z: np.ndarray  #: training rows (n, d), NaN at missing entries
    Z_val: Optional[np.ndarray]  #: held-out rows, as they are (the likelihood's choices)
    Z_stop: Optional[np.ndarray]  #: held-out rows clipped to the training range (early stopping)
    column_map: ColumnMap
    seed: int
    anomaly_seed: int
    reference: Optional[tuple]  #: the mixture ``column_transform="auto"`` fitted, if any

    @property
    def has_missing(self):
        return bool(np.isnan(self.Z).any() or (self.Z_val is not None
                                                and np.isnan(self.Z_val).any()))


def _splice(old, new, columns):
    # A copy: the previous fit's arrays stay intact until the refit succeeds.
    out = old.copy()
    out[columns] = new
    return out


def _keep_linear(knots, columns):
    # Identity maps for ``columns``: the knots' rows become z = x (slope 1,
    # also beyond the end knots).
    if columns is None or not len(columns):
        return knots
    x_knots, z_knots = knots[0].copy(), knots[1].copy()
    line = np.linspace(-1.0, 1.0, x_knots.shape[1])
    x_knots[columns], z_knots[columns] = line, line
    return (x_knots, z_knots, *knots[2:])


def prepare(X, rng, *, column_transform, t_min, validation_fraction, dequantize=False,
            previous=None, columns=None, linear=None):
    """Validated rows ``X`` to the model's space: the one preprocessing of ``fit`` and refits.

    Drops rows with no observed entry, draws the training and anomaly seeds
    from ``rng`` (a ``RandomState``), adds uniform noise of one grid step
    to the columns :func:`grid_steps` finds (with ``dequantize``; the
    noise is drawn from the training seed's own stream), standardizes on
    the observed entries, draws the held-out split from ``rng``, and fits
    the column maps on the training rows only, so the held-out rows judge
    the smoothing and the column map honestly.

    With ``previous`` (a fitted :class:`ColumnMap`) and ``columns`` (indices),
    only those columns' standardization and maps are fitted again and the
    others are kept, with the same random draws as a full fit, so a refit
    block sees exactly the rows, seed and split a full fit would give it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated rows, NaN at missing entries.
    rng : numpy.random.RandomState
    column_transform : {"auto", "gaussianize", "standardize"}
    t_min : float
        Smallest diffusion time, for the near-discrete warning.
    validation_fraction : float
        Share of the rows held out (0 for none).
    dequantize : bool, default=False
        Spread the values of grid columns over their cells,
        ``U[-step/2, step/2)`` (centred, so that a value on the grid is
        scored at the middle of its cell).
    previous : ColumnMap, optional
    columns : array of int, optional
    linear : array of int, optional
        Columns that are standardized only, never Gaussianized (the
        categories' coordinates: a Gaussianizing map would close the gaps
        between their cells).

    Returns
    -------
    Prepared

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._model_space import prepare
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> prep = prepare(X, np.random.RandomState(0), column_transform="standardize",
    ...                t_min=1e-3, validation_fraction=0.2)
    >>> prep.Z.shape, prep.Z_val.shape, prep.column_map.name
    ((40, 2), (10, 2), 'standardize')
    """
    X = observed_rows(X.astype(np.float64, copy=False))
    constants = constant_values(X if previous is None else X[:, columns])
    steps = grid_steps(X, exclude=linear) if dequantize else np.zeros(X.shape[1])
    domain = (*column_domain(X), steps)
    if previous is not None:
        old = previous.constants if previous.constants is not None else np.full(len(steps), np.nan)
        constants = _splice(old, constants, columns)
        if previous.low is not None:  # a model saved before the domain was recorded has none
            old_steps = previous.grid_step
            if old_steps is None:  # nor one saved before grids were dequantized
                old_steps = np.zeros(len(steps))
            domain = tuple(_splice(old, new[columns], columns) for old, new in
                           zip((previous.low, previous.high, previous.integer, old_steps), domain))
        steps = domain[3] if previous.low is not None else steps
    seed, anomaly_seed = (int(s) for s in rng.randint(MAX_SEED, size=2))
    if steps.any():
        noise = np.random.default_rng([seed, _DEQUANTIZATION_STREAM]).random(X.shape)
        X = X + (noise - 0.5) * steps
    mean, scale = observed_location_scale(X)
    if previous is not None:
        mean = _splice(previous.mean, mean[columns], columns)
        scale = _splice(previous.scale, scale[columns], columns)
    Z = (X - mean) / scale
    n_val = int(validation_fraction * len(Z))
    # Too few rows to hold any out: train on all of them, without stopping early.
    order = rng.permutation(len(Z))
    Z_val, Z = (Z[order[:n_val]], Z[order[n_val:]]) if n_val > 0 else (None, Z)
    column_map, reference = ColumnMap(mean, scale, constants=constants), None
    if previous is not None:
        if previous.gaussian:
            knots = fit_gaussianizer(Z[:, columns], generator=make_generator(seed))
            x_new, z_new = resample_knots(*knots[:2], previous.x_knots.shape[1])
            column_map = ColumnMap(
                mean, scale, _splice(previous.x_knots, x_new, columns),
                _splice(previous.z_knots, z_new, columns),
                _splice(previous.bandwidth, knots[2], columns),
                _splice(previous.normal_weight, knots[3], columns), constants,
            )
            Z = gaussianize(Z, column_map.x_knots, column_map.z_knots)[0]
            if Z_val is not None:
                Z_val = gaussianize(Z_val, column_map.x_knots, column_map.z_knots)[0]
        warn_if_near_discrete(Z[:, columns], t_min)
    else:
        if column_transform != "standardize":
            knots = _keep_linear(fit_gaussianizer(Z, generator=make_generator(seed)), linear)
            Z_g = gaussianize(Z, *knots[:2])[0]
            Z_val_g = None if Z_val is None else gaussianize(Z_val, *knots[:2])[0]
            gaussian = True
            if column_transform == "auto":
                gaussian, reference = choose_column_map(Z, Z_val, Z_g, Z_val_g, knots, seed,
                                                        mixture_floor(t_min))
            if gaussian:
                column_map = ColumnMap(mean, scale, *knots, constants)
                Z, Z_val = Z_g, Z_val_g
        warn_if_near_discrete(Z, t_min)
    return Prepared(Z, Z_val, clip_to_training_range(Z_val, Z), column_map.with_domain(*domain),
                    seed, anomaly_seed, reference)


class Scorer(NamedTuple):
    """A fitted estimator's view for inference: what every scoring method starts from.

    Built by ``BaseDiffusionEstimator._scorer``; the outlier detector
    uses it instead of the estimator's private members.
    """

    device: torch.device
    model: torch.nn.Module  #: the noise model, on ``device``
    score_fn: Callable  #: ``(x, t) -> score`` of ``model``
    column_map: ColumnMap
    chunk_size: int  #: rows per inference chunk (results do not depend on it)
    far: float  #: model-space coordinates beyond this are clipped for the network

    def network_input(self, X):
        """Validated rows ``X`` in the model's space, clipped to ``[-far, far]`` (numpy).

        What the float32 network may see: rows beyond the clip tie with the
        clipped row, already anomalous by far more than any threshold.
        """
        return np.clip(self.column_map.forward(X)[0], -self.far, self.far)

    def map_rows(self, fn, X):
        """``fn`` over bounded pieces of the validated rows ``X``; see :func:`~._utils.map_rows`."""
        return map_rows(fn, X, self.chunk_size)
