"""The scikit-learn facade shared by the diffusion estimators (L4).

:class:`BaseDiffusionEstimator` owns the public flow (validation,
standardization, seeding, devices, pickling, ``sample``, ``score_samples``,
``score``); a subclass says how its noise model is built, trained and
differentiated through three small hooks, as ``BaseMixture`` does for
scikit-learn's mixtures.
"""

import copy
import functools
import hashlib
import io
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._utils import chunks, make_generator, map_chunks, resolve_device, to_tensor
from .anomaly import anomaly_times, denoising_error, score_norm
from .likelihood import log_density
from .marginals import degaussianize, fit_gaussianizer, gaussianize
from .networks import score_from_noise
from .reference import fit_reference_mixture, mixture_log_density
from .sampling import SAMPLERS, conditional_noise_draws, conditional_sde
from .training import TrainingDivergedError

_MAX_SEED = np.iinfo(np.int32).max


def _tuple_of(kind, length=None):
    """A parameter-constraint-friendly check that ``value`` is a tuple of finite positive ``kind``."""

    def check(name, value):
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, kind) and not isinstance(v, bool) and 0 < v < math.inf for v in value
        )
        if not ok or len(value) == 0 or (length is not None and len(value) != length):
            size = f"{length} " if length else ""
            raise ValueError(f"{name} must be a tuple of {size}positive numbers, got {value!r}.")
        return tuple(value)

    return check


_check_layers = _tuple_of(Integral)
_check_window = _tuple_of(Real, length=2)


def _check_count(name, value):
    """``value`` as a positive int; a bool is not a count.

    Examples
    --------
    >>> from sklearn_diffusion._base import _check_count
    >>> _check_count("n_samples", 3)
    3
    >>> _check_count("n_samples", True)
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be a positive integer, got True.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def atomic_fit(fit):
    """Make ``fit`` all-or-nothing: on any exception the estimator is restored.

    ``fit`` sets attributes along the way (``validate_data`` sets
    ``n_features_in_`` first of all); restoring the attribute dictionary
    taken before it ran leaves a failed first fit unfitted and a failed
    refit exactly the previous model, for errors and ``KeyboardInterrupt``
    alike. Fits replace attributes rather than mutate them, so a shallow
    copy is a faithful snapshot.

    Examples
    --------
    >>> from sklearn_diffusion._base import atomic_fit
    >>> class Model:
    ...     @atomic_fit
    ...     def fit(self, fail):
    ...         self.coef_ = 1
    ...         if fail:
    ...             raise ValueError("bad data")
    ...         return self
    >>> m = Model()
    >>> try:
    ...     m.fit(True)
    ... except ValueError:
    ...     pass
    >>> hasattr(m, "coef_")
    False
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return wrapper


def _location_scale(X):
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
    >>> from sklearn_diffusion._base import _location_scale
    >>> mean, scale = _location_scale(np.array([[1e300, 3e-13], [3e300, 1e-13]]))
    >>> np.allclose(mean, [2e300, 2e-13], rtol=1e-15), np.allclose(scale, [1e300, 1e-13], rtol=1e-15)
    (True, True)
    """
    peak = np.max(np.abs(X), axis=0)
    exponent = np.frexp(np.where(peak > 0, peak, 1.0))[1]
    scaled = np.ldexp(X, -exponent)
    mean_s, std_s = scaled.mean(axis=0), scaled.std(axis=0)
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


def _discrete_gap(Z, max_levels=50):
    """Smallest gap between distinct values over the columns with few of them.

    ``Z`` (n, d) is standardized. Returns ``inf`` when every column has more
    than ``max_levels`` distinct values (continuous data).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._base import _discrete_gap
    >>> float(_discrete_gap(np.array([[0.0, 0.1], [1.0, 0.3], [3.0, 0.7]]), max_levels=2))
    inf
    >>> float(_discrete_gap(np.array([[0.0], [1.0], [3.0]])))
    1.0
    """
    # NaN (a missing entry) is no level.
    levels = (u[~np.isnan(u)] for u in map(np.unique, Z.T))
    gaps = [np.diff(u).min() for u in levels if 1 < len(u) <= max_levels]
    return min(gaps, default=np.inf)


def _observed_rows(X):
    """The rows of ``X`` with at least one observed (non-NaN) entry; warns about the others.

    Raises ``ValueError`` when fewer than two rows remain or a column has no
    observed entry (nothing to fit its standardization on).

    Examples
    --------
    >>> import numpy as np, warnings
    >>> from sklearn_diffusion._base import _observed_rows
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     kept = _observed_rows(np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 3.0]]))
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


def _observed_location_scale(X):
    """:func:`_location_scale` of each column's observed (non-NaN) entries."""
    missing = np.isnan(X)
    if not missing.any():
        return _location_scale(X)
    moments = [_location_scale(column[~gap, None]) for column, gap in zip(X.T, missing.T)]
    return tuple(np.concatenate(m) for m in zip(*moments))


#: Fewest complete held-out rows ``smoothing="auto"`` chooses on; with fewer
#: (fits on incomplete rows) it falls back to ``t_min``.
_MIN_SELECTION_ROWS = 20

#: Fitted attributes of the Gaussianizing column maps.
_COLUMN_MAP_ATTRIBUTES = ("x_knots_", "z_knots_", "column_bandwidth_", "column_normal_weight_")


def _clip_to_training_range(Z_val, Z):
    """The held-out rows ``Z_val`` clipped to the range of each column's training entries.

    Early stopping judges the network by its denoising loss on the held-out
    rows. An entry beyond every training value of its column is one the
    network can only extrapolate to, and the squared error there grows
    without bound with the distance: on digits at 30% MCAR two held-out
    pixels that the column map sent to 13 and 27 standard deviations (no
    training value beyond 6) made the loss of 6,400 entries rise from the
    first check on, so training kept step 100 of 1,500 (fill RMSE 0.90;
    clipped, training ran all 1,500 steps and the RMSE was 0.85, 0.82 with
    the refit of :meth:`BaseDiffusionEstimator._refit_on_draws`;
    ``benchmarks/results/impute_refit.md``).
    Clipped, such a row still counts, at the edge of the training range.
    The likelihood-based choices (smoothing, column map) see the rows as
    they are. NaN stays NaN; None gives None.

    Examples
    --------
    >>> import numpy as np
    >>> _clip_to_training_range(np.array([[5.0, np.nan]]), np.array([[0.0, 1.0], [1.0, 2.0]]))
    array([[ 1., nan]])
    """
    if Z_val is None:
        return None
    with warnings.catch_warnings():
        # An all-NaN training column has no range; its held-out entries stay.
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(Z, axis=0), np.nanmax(Z, axis=0)
    return np.clip(Z_val, np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf))


def _complete_rows(Z):
    """The rows of ``Z`` without NaN, or None when there are fewer than ``_MIN_SELECTION_ROWS``."""
    if Z is None:
        return None
    Z = Z[~np.isnan(Z).any(axis=1)]
    return Z if len(Z) >= _MIN_SELECTION_ROWS else None


def unimodal_argmax(score, n):
    """Index of the largest ``score(i)`` over ``range(n)`` for a unimodal ``score``.

    Golden-section search on the indices: each step keeps the part of the
    bracket that holds the larger of two interior values, reusing one of
    them; the last few indices are compared directly. About ``1.44 log2 n +
    2`` evaluations (7 for 14 candidates) where a scan takes ``n``; on a
    function with several local maxima it returns one of them. Ties go to
    the lower index.

    Examples
    --------
    >>> from sklearn_diffusion._base import unimodal_argmax
    >>> calls = []
    >>> def score(i):
    ...     calls.append(i)
    ...     return -(i - 9) ** 2
    >>> unimodal_argmax(score, 14), len(set(calls)) < 14
    (9, True)
    """
    cache = {}

    def value(i):
        if i not in cache:
            cache[i] = score(i)
        return cache[i]

    lo, hi = 0, n - 1
    ratio = (math.sqrt(5) - 1) / 2
    while hi - lo > 3:
        left = hi - round(ratio * (hi - lo))
        # Two distinct interior points: equal values then bracket the peak.
        right = max(lo + round(ratio * (hi - lo)), left + 1)
        if value(left) >= value(right):
            hi = right - 1 if value(left) > value(right) else right
        else:
            lo = left + 1
    return max(range(lo, hi + 1), key=lambda i: (value(i), -i))


class BaseDiffusionEstimator(DensityMixin, BaseEstimator):
    """Shared flow of the diffusion density estimators (not for direct use).

    Subclasses implement ``_fit_model(Z, Z_val, device, seed)`` returning a
    :class:`~sklearn_diffusion.training.TrainingResult` whose ``model(x, t)``
    is the noise prediction (``Z_val`` is None without early stopping), and
    ``_score_div_fn(model)`` returning ``(x, t) -> (score, divergence)`` for
    the likelihood.
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "loss": [StrOptions({"bootstrap", "dsm"})],
        "bootstrap_window": ["array-like"],
        "bootstrap_step": [Interval(Real, 0, None, closed="neither")],
        "bootstrap_weight": [Interval(Real, 0, 1, closed="both")],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "t_min": [Interval(Real, 0, None, closed="neither")],
        "t_max": [Interval(Real, 0, None, closed="neither")],
        "smoothing": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "column_transform": [StrOptions({"gaussianize", "standardize"})],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "sampler": [StrOptions(set(SAMPLERS))],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: Rows per inference chunk; results do not depend on it.
    _chunk_size = 2048

    #: Largest candidate of ``smoothing="auto"`` (noise of 1.3 standard deviations).
    _max_smoothing = 0.5

    #: Candidates of ``smoothing="auto"``, log-spaced from ``t_min``.
    _n_smoothing_candidates = 14

    #: Held-out rows at most used to choose the smoothing.
    _max_selection_rows = 2000

    # ---------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    @atomic_fit
    def fit(self, X, y=None):
        """Fit the score model on the rows of ``X``.

        All or nothing: when fitting fails (bad input, diverged training, an
        interrupt), the estimator is left exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two rows with an observed value. NaN
            marks a missing entry: the standardization and the column maps
            are fitted on the observed entries of each column, and the loss
            on the observed entries of each row (see
            :func:`~sklearn_diffusion.training.fit_noise_model`); the model
            is then fitted once more with the missing inputs filled by its
            own conditional draws, the loss still on the observed entries
            (one round of stochastic EM; user guide, "Missing values"). A
            row with every entry missing carries nothing and is ignored,
            with a warning that counts such rows.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        TrainingDivergedError
            When training diverges (the loss or the network's weights or
            outputs stop being finite).
        """
        self._check_settings()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                          ensure_all_finite="allow-nan")
        X = _observed_rows(X.astype(np.float64, copy=False))
        self.mean_, self.scale_ = _observed_location_scale(X)
        rng = check_random_state(self.random_state)
        seed, anomaly_seed = (int(s) for s in rng.randint(_MAX_SEED, size=2))
        device = resolve_device(self.device)
        self.device_ = str(device)
        Z = (X - self.mean_) / self.scale_
        n_val = int(self.validation_fraction * len(Z)) if self.early_stopping else 0
        # Too few rows to hold any out: train on all of them, without stopping early.
        order = rng.permutation(len(Z))
        Z_val, Z = (Z[order[:n_val]], Z[order[n_val:]]) if n_val > 0 else (None, Z)
        for name in _COLUMN_MAP_ATTRIBUTES:
            # A refit that standardizes must not keep an earlier fit's maps.
            self.__dict__.pop(name, None)
        self._reference_fit = None
        if self.column_transform != "standardize":
            # Fitted on the training rows only, so the held-out rows judge
            # the smoothing (and the column map) honestly.
            knots = fit_gaussianizer(Z, generator=make_generator(seed))
            Z_g = gaussianize(Z, *knots[:2])[0]
            Z_val_g = None if Z_val is None else gaussianize(Z_val, *knots[:2])[0]
            gaussian = True
            if self.column_transform == "auto":
                gaussian = self._choose_column_map(Z, Z_val, Z_g, Z_val_g, knots, seed)
            if gaussian:
                (self.x_knots_, self.z_knots_, self.column_bandwidth_,
                 self.column_normal_weight_) = knots
                Z, Z_val = Z_g, Z_val_g
        self.column_transform_ = "gaussianize" if hasattr(self, "x_knots_") else "standardize"
        self._warn_if_near_discrete(Z)
        Z_stop = _clip_to_training_range(Z_val, Z)
        result = self._fit_model(
            to_tensor(Z, device), None if Z_val is None else to_tensor(Z_stop, device),
            device, seed,
        )
        self.model_ = result.model.cpu().eval()
        if self._imputation_rounds and (np.isnan(Z).any()
                                        or (Z_val is not None and np.isnan(Z_val).any())):
            result = self._refit_on_draws(Z, Z_stop, device, seed)
        self._check_trained(np.nan_to_num(Z))
        self.loss_curve_ = result.loss_curve
        self.validation_loss_curve_ = result.validation_curve
        self.n_iter_ = len(result.loss_curve)
        self.best_iter_ = result.best_iter
        self.anomaly_seed_ = anomaly_seed
        self._select_density(_complete_rows(Z_val))
        del self._reference_fit
        return self

    #: Rounds of :meth:`_refit_on_draws` when the training rows have missing
    #: entries (two rounds were within 0.01 RMSE of one on impute.py's cases,
    #: for 1.5 times the fit; ``benchmarks/results/impute_refit.md``).
    _imputation_rounds = 1

    def _refit_on_draws(self, Z, Z_val, device, seed):
        """Refit with the missing inputs filled by conditional draws of the current fit.

        The first fit holds a missing input at the column mean (MissDiff):
        at 30% MCAR in 64 columns the network then learns the score of rows
        with a fifth of their entries pinned at 0, not of the data. Here the
        missing entries of the training (and held-out) rows are drawn from
        the fitted model given the observed ones, and the network is
        trained again from the start on the filled rows, the loss still on
        the observed entries only: a fill drawn from the exact conditional
        makes the network's inputs draws of the joint density, so the
        remaining error is that of the first fit's conditionals (one round
        of stochastic EM, Celeux and Diebolt, 1985). The reference mixture
        is refitted on the filled rows, so it sees every row.
        """
        def fill(rows, key):
            if rows is None:
                return None, None
            missing = np.isnan(rows)
            draws = self._draw_model_space(rows, missing, key, 1, 32, 2, 1.0)[0]
            return np.where(missing, draws, rows), ~missing
        result = None
        for round_ in range(self._imputation_rounds):
            key = int(np.random.default_rng([seed, round_]).integers(_MAX_SEED))
            (Z_fill, observed), (Z_val_fill, observed_val) = fill(Z, key), fill(Z_val, key + 1)
            self._reference_fit = None
            result = self._fit_model(
                to_tensor(Z_fill, device),
                None if Z_val is None else to_tensor(Z_val_fill, device), device, seed,
                observed=to_tensor(observed, device),
                observed_val=None if Z_val is None else to_tensor(observed_val, device),
            )
            self.model_ = result.model.cpu().eval()
        return result

    def _choose_column_map(self, Z, Z_val, Z_g, Z_val_g, knots, seed):
        """Whether ``column_transform="auto"`` Gaussianizes the columns.

        The BIC mixture of :func:`~sklearn_diffusion.reference.fit_reference_mixture`
        is fitted on the training rows in both spaces; the one whose held-out
        log-likelihood (with the column maps' log-Jacobian) is higher wins,
        and its mixture is kept for the reference of the score network.
        Without enough complete held-out rows, Gaussianize.
        """
        rows = None if Z_val is None else ~np.isnan(Z_val).any(axis=1)
        if rows is None or rows.sum() < _MIN_SELECTION_ROWS:
            return True
        fits = [fit_reference_mixture(space, seed) for space in (Z, Z_g)]
        log_slopes = gaussianize(Z_val[rows], *knots[:2])[1]
        standardized = mixture_log_density(Z_val[rows], *fits[0]).mean()
        gaussianized = (mixture_log_density(Z_val_g[rows], *fits[1]) + log_slopes).mean()
        gaussian = bool(gaussianized >= standardized)
        self._reference_fit = fits[1] if gaussian else fits[0]
        return gaussian

    def _select_density(self, Z_val):
        """Set ``smoothing_`` and ``smoothing_scores_`` from the held-out rows (subclass hook)."""
        self.smoothing_, self.smoothing_scores_ = self._select_smoothing(Z_val)

    def _check_trained(self, Z):
        """Raise :class:`TrainingDivergedError` unless the network is finite on its data.

        The loss is checked during training, but weights can still turn
        non-finite in the last steps or in the kept average, or be finite
        yet so large that the outputs overflow.
        """
        weights = all(bool(torch.isfinite(p).all()) for p in self.model_.parameters())
        outputs = weights
        if weights:
            x = to_tensor(Z[:256], "cpu")
            with torch.no_grad():
                for t in np.geomspace(self.t_min, self.t_max, 8):
                    noise = self.model_(x, torch.full((len(x),), t, dtype=x.dtype))
                    outputs = outputs and bool(torch.isfinite(noise).all())
        if not outputs:
            part = "weights" if not weights else "outputs on the training rows"
            raise TrainingDivergedError(
                f"Training diverged: the network's {part} are not finite. "
                "Try a smaller learning_rate or loss='dsm'."
            )

    def _smoothing_candidates(self):
        if self.smoothing != "auto":
            return np.array([float(self.smoothing)])
        return np.geomspace(self.t_min, max(self.t_min, self._max_smoothing),
                            self._n_smoothing_candidates)

    def _select_smoothing(self, Z_val, model=None):
        """The candidate smoothing with the best held-out log-likelihood, and the scores.

        The likelihood can start from any time at no training cost, so the
        smoothing is chosen after training on the rows early stopping held
        out; without them ``smoothing="auto"`` falls back to ``t_min``. The
        held-out likelihood rises then falls with the smoothing (too sharp,
        then too smooth), so a golden-section search over the candidates
        finds the best with about half of them evaluated (7 of 14); the
        others' scores are NaN. ``model`` defaults to the fitted ``model_``.
        """
        candidates = self._smoothing_candidates()
        if self.smoothing != "auto" or Z_val is None:
            value = candidates[0] if self.smoothing != "auto" else float(self.t_min)
            return float(value), np.full(1, np.nan)
        Z_val = Z_val[: self._max_selection_rows]
        device = resolve_device(self.device_)
        model = self._model_on(device, model)
        scores = np.full(len(candidates), np.nan)

        def score(i):
            if np.isnan(scores[i]):
                value = float(self._model_log_density(Z_val, model, candidates[i], device).mean())
                # A non-finite mean (overflow) ranks last but is recorded as is.
                scores[i] = value if not np.isnan(value) else -np.inf
            return scores[i] if np.isfinite(scores[i]) else -np.inf

        best = unimodal_argmax(score, len(candidates))
        return float(candidates[best]), scores

    #: Rows farther than this from the origin in any model-space coordinate
    #: (10,000 standard deviations) are "far": the float32 network is not
    #: evaluated on them (a row at 1e39 overflows float32); see
    #: :meth:`_network_input` and :meth:`_model_log_density`.
    _far = 1e4

    def _network_input(self, Z):
        """``Z`` clipped to ``[-_far, _far]``: what the float32 network may see.

        Used by the anomaly scores, which grow with the distance to the data:
        rows beyond the clip tie with the clipped row, already anomalous by
        far more than any threshold.
        """
        return np.clip(Z, -self._far, self._far)

    def _model_log_density(self, Z, model, smoothing, device):
        """Log-density of the rows ``Z`` (n, d), float64, in the model's space, smoothed at ``smoothing``.

        ``log p_s(a_s z) + d log a_s`` is the density of
        ``x_0 + sqrt(e^{2s} - 1) xi`` (``x_s / a_s``), a Gaussian smoothing of
        the data like a kernel density's bandwidth. It is mixed with weight
        ``_broad_weight`` with ``N(0, I)`` (see :attr:`_broad_weight`),
        computed in float64. Far rows (see :attr:`_far`) get the broad part
        alone: the network's part there is below float32's range anyway.
        Returns float64 numpy, finite or ``-inf`` (a row so far out that its
        squared norm overflows float64), never NaN.
        """
        log_a = -smoothing
        far = ~(np.abs(Z) <= self._far).all(axis=1)
        with torch.no_grad():
            lp = log_density(
                self._score_fn(model),
                self._score_div_fn(model),
                to_tensor(np.where(far[:, None], 0.0, Z), device) * math.exp(log_a),
                t_min=smoothing,
                t_max=self.t_max,
                n_steps=self.n_steps,
                chunk_size=self._chunk_size,
            )
        lp = lp.cpu().numpy().astype(np.float64) + Z.shape[1] * log_a
        broken = ~np.isfinite(lp) & ~far
        if broken.any():
            warnings.warn(
                f"The network's log-density is not finite on {int(broken.sum())} row(s); they "
                "get the density of the broad N(0, I) part of the mixture alone.",
                RuntimeWarning,
            )
        lp[far | broken] = -np.inf
        with np.errstate(over="ignore"):
            broad = -0.5 * (Z**2).sum(axis=1) - 0.5 * Z.shape[1] * math.log(2 * math.pi)
        w = self._broad_weight
        return np.logaddexp(math.log1p(-w) + lp, math.log(w) + broad)

    #: Weight of ``N(0, I)`` (model space) in the returned density. A
    #: defensive mixture: it costs at most ``-log(1 - w)`` = 0.001 nats on any
    #: row, and bounds the cost of a row the network finds impossible (held-out
    #: rows between the atoms of a repeated reading got -1e5 to -1e7 nats on
    #: ADBench's Cardiotocography, a mean of -25,530 over its 1,000 test rows).
    #: 0.01 until the reference mixture came: it cost up to 0.01 nats on every
    #: row for a bound only 2.3 nats higher on those rare rows.
    _broad_weight = 0.001

    def _warn_if_near_discrete(self, Z):
        # A column with a few distinct values far apart compared with the
        # noise at t_min makes the model a comb of spikes at small t: the
        # probability-flow ODE is then stiff and the fixed-step log-density
        # of some rows is off by hundreds to millions of nats (seen on
        # ADBench's breastw: 16 vs 64 steps differed by 9e5 nats at
        # t_min=1e-3 and by 2 nats at t_min=1e-2). Noise of a fifth of the
        # gap blurs the spikes enough.
        gap = _discrete_gap(Z)
        noise = np.sqrt(-np.expm1(-2.0 * self.t_min))
        if np.isfinite(gap) and gap > 5 * noise:
            floor = -0.5 * np.log1p(-min(gap / 5, 0.99) ** 2)
            warnings.warn(
                f"X looks near-discrete: a column has at most 50 distinct values, "
                f"{gap:.3g} standard deviations apart, over 5 times the noise at "
                f"t_min={self.t_min:g}. score_samples (the likelihood ODE) may then be "
                f"inaccurate; use t_min >= {floor:.2g} or add dequantization noise to X. "
                "anomaly_score (method='denoising' or 'score_norm') is not affected.",
                UserWarning,
            )

    #: Smallest ``t_min``: below it the noise (standard deviation
    #: ``sqrt(2 t_min)``, 1.4e-6 at the floor) drowns in float32 rounding, and
    #: the noise scale underflows near 1e-38.
    _min_t_min = 1e-12

    def _check_settings(self):
        for name in ("learning_rate", "bootstrap_step", "t_min", "t_max", "smoothing"):
            value = getattr(self, name)
            if isinstance(value, Real) and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}.")
        _check_layers("hidden_layer_sizes", self.hidden_layer_sizes)
        lo, hi = _check_window("bootstrap_window", self.bootstrap_window)
        if not lo < hi:
            raise ValueError(f"bootstrap_window must satisfy low < high, got {self.bootstrap_window!r}.")
        if self.t_min < self._min_t_min:
            raise ValueError(
                f"t_min must be at least {self._min_t_min:g} (the noise must stay above float32 "
                f"rounding), got {self.t_min!r}."
            )
        if not self.t_min < self.t_max:
            raise ValueError(f"t_min must be smaller than t_max, got {self.t_min} and {self.t_max}.")
        if self.smoothing != "auto" and not self.t_min <= self.smoothing < self.t_max:
            raise ValueError(
                f"smoothing must be 'auto' or a time in [t_min, t_max), got {self.smoothing!r}."
            )

    def _training_kwargs(self):
        """Keyword arguments of :func:`~sklearn_diffusion.training.fit_noise_model`."""
        return dict(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            t_min=self.t_min,
            t_max=self.t_max,
            loss=self.loss,
            bootstrap_window=tuple(self.bootstrap_window),
            bootstrap_step=self.bootstrap_step,
            bootstrap_weight=self.bootstrap_weight,
            ema_decay=self.ema_decay,
            n_iter_no_change=self.n_iter_no_change,
            verbose=self.verbose,
        )

    # ------------------------------------------------------- inference
    def _inference_device(self):
        device = torch.device(self.device_)
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"The model was fitted on {self.device_}, which is not available; using the CPU.",
                RuntimeWarning,
            )
            return torch.device("cpu")
        return device

    def _model_on(self, device, model=None):
        # nn.Module.to moves in place; the fitted model stays on the CPU.
        model = self.model_ if model is None else model
        return model if device.type == "cpu" else copy.deepcopy(model).to(device)

    @staticmethod
    def _score_fn(model):
        return lambda x, t: score_from_noise(model(x, t), t)

    def _score_div_fn(self, model):
        """``(x, t) -> (score, divergence)`` of the fitted model (subclass hook)."""
        raise NotImplementedError

    def _to_model_space(self, X):
        """Validated rows of ``X`` in the model's space, and ``log |det|`` of the map per row."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self._standardize(X)

    def _standardize(self, X):
        # The map of _to_model_space on an already validated array.
        Z = (X.astype(np.float64, copy=False) - self.mean_) / self.scale_
        log_jacobian = np.full(len(Z), -np.log(self.scale_).sum())
        if self.column_transform_ == "gaussianize":
            Z, log_slopes = gaussianize(Z, self.x_knots_, self.z_knots_)
            log_jacobian += log_slopes
        return Z, log_jacobian

    def _from_model_space(self, Z):
        if self.column_transform_ == "gaussianize":
            Z = degaussianize(Z, self.x_knots_, self.z_knots_)
        return Z * self.scale_ + self.mean_

    def _map_rows(self, fn, X):
        """``fn(rows) -> (rows,)`` over bounded pieces of the validated array ``X``.

        The model-space copy, the float32 tensor and the outputs of a piece
        are all that is held at once beside ``X``, so peak memory does not
        grow with the number of rows.
        """
        step = max(self._chunk_size, 2**21 // X.shape[1])
        return np.concatenate([fn(X[rows]) for rows in chunks(len(X), step)])

    def score_samples(self, X):
        """Log-density of each row of ``X`` under the fitted model.

        Computed along the probability-flow ODE with a fixed-step integrator,
        so a row's value is deterministic and does not depend on the others.
        It is the density of the model at noise ``smoothing_`` (see
        ``smoothing``), mixed with weight 0.001 with a standard normal in the
        model's space (a defensive floor: at most 0.001 nats on any row, and
        no row the network finds impossible costs millions of nats), taken
        through the column transform with its exact log-Jacobian, on the
        scale of the input features. A row more than 10,000 standard
        deviations out gets the standard normal's part alone: finite, or
        ``-inf`` once its squared distance overflows float64; never NaN.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            Log-density of each row, on the scale of the input features.

        Raises
        ------
        ValueError
            When ``X`` has a missing entry (NaN). The log-density of a row's
            observed coordinates alone (the marginal) is the model's density
            integrated over the missing ones, which the probability-flow ODE
            does not give; fill them with
            :class:`~sklearn_diffusion.DiffusionImputer` or draw them with
            :meth:`sample_conditional` first.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                          ensure_all_finite="allow-nan")
        if np.isnan(X).any():
            raise ValueError(
                "X contains NaN: score_samples needs complete rows. The log-density of the "
                "observed coordinates alone (the marginal) is not tractable with the "
                "probability-flow ODE; fill the missing entries with DiffusionImputer or "
                "draw them with sample_conditional first."
            )
        device = self._inference_device()
        model = self._model_on(device)

        def piece(rows):
            Z, log_jacobian = self._standardize(rows)
            return self._model_log_density(Z, model, self.smoothing_, device) + log_jacobian

        return self._map_rows(piece, X)

    def anomaly_score(self, X, *, method="score_norm", n_levels=16, noise_range=(0.001, 1.0)):
        """Anomaly score of each row of ``X``: higher is more anomalous.

        Cheaper alternatives to ``-score_samples(X)``: one forward pass of the
        score model per noise level, no ODE and no Jacobian. Each score is
        deterministic (its noise draws are fixed at fit from
        ``random_state`` and shared by every row), does not depend on the
        other rows, and is computed in fixed-size chunks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        method : {"score_norm", "denoising", "log_density"}, default="score_norm"
            ``"score_norm"``: mean over the noise levels of
            ``|| s_t score(a_t x, t) ||^2``, the noise the model believes the
            row carries; no noise draw. It ranked anomalies best of these
            three on ADBench (``benchmarks/adbench.py``);
            :class:`~sklearn_diffusion.DiffusionOutlierDetector` combines it
            with the memorized score norm by default.
            ``"denoising"``: mean of the squared error of the model's noise
            prediction for the noised row, ``|| e(a_t x + s_t z_t, t) - z_t ||^2``.
            ``"log_density"``: ``-score_samples(X)`` (the exact model
            log-density; ``n_levels`` and ``noise_range`` are unused).
        n_levels : int, default=16
            Number of noise levels, uniform in ``log t``.
        noise_range : tuple of two floats, default=(0.001, 1.0)
            Smallest and largest diffusion time ``t`` of the levels (noise
            standard deviations ``sqrt(1 - exp(-2 t))`` of about 0.045 and
            0.93 in standardized units): small times see sharp local
            structure, large ones distance to the bulk of the data.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Anomaly score of each row; higher is more anomalous (as in PyOD,
            the opposite of scikit-learn's ``score_samples``). Coordinates
            more than 10,000 standard deviations out are clipped there first
            (the network computes in float32), so such rows tie with each
            other, far above any row near the data.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_diffusion import BootstrappedScoreEstimator
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100,
        ...                                  random_state=0).fit(X)
        >>> s = est.anomaly_score([[0.0, 0.0], [6.0, 6.0]])
        >>> bool(s[1] > s[0])
        True
        """
        if method == "log_density":
            return -self.score_samples(X)
        if method not in ("denoising", "score_norm"):
            raise ValueError(
                "method must be 'denoising', 'score_norm' or 'log_density', "
                f"got {method!r}."
            )
        n_levels = _check_count("n_levels", n_levels)
        t_low, t_high = _check_window("noise_range", noise_range)
        if t_low > t_high:
            raise ValueError(f"noise_range must satisfy low <= high, got {noise_range!r}.")
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        device = self._inference_device()
        score_fn = self._score_fn(self._model_on(device))
        times = anomaly_times(n_levels, t_low, t_high, device=device)
        # Drawn on the CPU so a seed gives the same draws on any device.
        noise = torch.randn(n_levels, X.shape[1], generator=make_generator(self.anomaly_seed_))

        def piece(rows):
            x = to_tensor(self._network_input(self._standardize(rows)[0]), device)
            if method == "score_norm":
                out = score_norm(score_fn, x, times, chunk_size=self._chunk_size)
            else:
                out = denoising_error(score_fn, x, times, noise.to(device),
                                      chunk_size=self._chunk_size)
            return out.cpu().numpy().astype(np.float64)

        return self._map_rows(piece, X)

    def score(self, X, y=None):
        """Mean log-density of the rows of ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw new rows from the fitted model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        random_state : int, RandomState instance or None, default=None
            Seed of the draw; the same value gives the same rows.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        n_samples = _check_count("n_samples", n_samples)
        seed = check_random_state(random_state).randint(_MAX_SEED)
        device = self._inference_device()
        generator = make_generator(seed, device)
        score_fn = self._score_fn(self._model_on(device))
        sampler = SAMPLERS[self.sampler]
        z = torch.randn(n_samples, self.n_features_in_, generator=generator, device=device)
        # Drawn at noise smoothing_ and rescaled by 1 / a_s: rows of the very
        # density score_samples returns.
        Z = map_chunks(
            lambda part: sampler(score_fn, part, t_min=self.smoothing_, t_max=self.t_max,
                                 n_steps=self.n_steps, generator=generator, denoise=False),
            z,
            self._chunk_size,
        )
        Z = Z.cpu().numpy().astype(np.float64) * math.exp(self.smoothing_)
        # The defensive mixture's broad part (see _model_log_density).
        broad = torch.rand(n_samples, generator=generator, device=device) < self._broad_weight
        if broad.any():
            extra = torch.randn(n_samples, self.n_features_in_, generator=generator, device=device)
            Z[broad.cpu().numpy()] = extra[broad].cpu().numpy()
        return self._from_model_space(Z)

    #: Numbers at most in one chunk's pre-drawn noise of :meth:`sample_conditional`.
    _noise_budget = 2**22

    def sample_conditional(self, X, *, n_samples=1, n_steps=32, n_resample=2, guidance=1.0,
                           random_state=None):
        """Draw the missing entries (NaN) of each row of ``X`` given its observed ones.

        Each draw runs an ancestral reverse-time sampler on every coordinate
        with the model's joint score, from ``t_max`` to ``t_min``: before each
        step the observed coordinates are replaced by a fresh forward-noised
        copy of their values, and the denoised guess of the missing ones is
        corrected by the guess's error on the observed ones (reconstruction
        guidance, one vector-Jacobian product per step); see
        :func:`~sklearn_diffusion.sampling.conditional_sde`. Draws are made in
        the model's space and mapped back through the column transform.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows with NaN at the entries to draw. A row without NaN comes back
            as it is; a row of NaN gets an unconditional draw.
        n_samples : int, default=1
            Draws per row.
        n_steps : int, default=32
            Time steps, uniform in ``log t``. With the exact score of a 2-D
            Gaussian of correlation 0.8, the conditional variance given
            ``x_1 = 1.5`` (truth 0.36) came out 0.275 with 16 steps, 0.32
            with 32 and 0.34 with 64, the mean 1.14, 1.13 and 1.14 (truth
            1.2), with one visit per step; see
            ``benchmarks/results/impute_tuning.md``.
        n_resample : int, default=2
            Visits of each time step, with a jump back by the forward process
            in between (RePaint); the cost grows linearly with it. On the
            Gaussian above 2 visits at 32 steps gave a mean of 1.16 and a
            variance of 0.32; on 6 cases of ``benchmarks/impute.py`` they
            lowered the RMSE of the mean of 20 draws in 5 (circle-4d at 30%
            MCAR: 0.756 to 0.691; the mixture with dropout: 0.404 to 0.332)
            (``benchmarks/results/impute_tuning.md``).
        guidance : float, default=1.0
            Weight of the guidance correction; 0 is plain replacement (no
            gradient through the network, a third of the cost, but the
            missing entries then follow the observed ones poorly: a mean of
            0.67 for the truth 1.2 above).
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; the same value gives the same draws.

        Returns
        -------
        draws : ndarray of shape (n_samples, n_rows, n_features)
            ``draws[k]`` is the ``k``-th draw of every row; the observed
            entries of ``X`` are returned exactly.

        Notes
        -----
        A row's draws are a function of the row itself, the model and
        ``random_state`` only: each (row, draw) pair takes its noise from a
        generator seeded by ``random_state``, the draw index and a hash of
        the row's values and missing pattern. So they do not depend on the
        other rows, their order or the chunking (rows are processed in
        chunks of bounded memory); two identical rows get identical draws.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_diffusion import BootstrappedScoreEstimator
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> est = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100,
        ...                                  random_state=0).fit(X)
        >>> draws = est.sample_conditional([[0.5, np.nan]], n_samples=3, random_state=0)
        >>> draws.shape, draws[:, 0, 0].tolist()
        ((3, 1, 2), [0.5, 0.5, 0.5])
        """
        check_is_fitted(self)
        n_samples = _check_count("n_samples", n_samples)
        n_resample = _check_count("n_resample", n_resample)
        n_steps = _check_count("n_steps", n_steps)
        if isinstance(guidance, bool) or not isinstance(guidance, Real) or not guidance >= 0:
            raise ValueError(f"guidance must be a non-negative number, got {guidance!r}.")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                          ensure_all_finite="allow-nan").astype(np.float64)
        seed = int(check_random_state(random_state).randint(_MAX_SEED))
        missing = np.isnan(X)
        draws = np.repeat(X[None], n_samples, axis=0)
        rows = np.flatnonzero(missing.any(axis=1))
        if len(rows):
            filled = self._draw_missing(X[rows], seed, n_samples, n_steps, n_resample,
                                        float(guidance))
            draws[:, rows] = np.where(missing[rows], filled, X[rows])
        return draws

    def _draw_missing(self, X, seed, n_samples, n_steps, n_resample, guidance):
        """Conditional draws (n_samples, n, d) for validated rows ``X`` with NaN; see above."""
        missing = np.isnan(X)
        Z = self._network_input(np.nan_to_num(self._standardize(X)[0]))
        # The row's identity: its values (NaN read as 0) and its missing pattern.
        draws = self._draw_model_space(Z, missing, seed, n_samples, n_steps, n_resample,
                                       guidance, content=np.where(missing, 0.0, X))
        return self._from_model_space(draws.reshape(-1, X.shape[1])).reshape(draws.shape)

    def _draw_model_space(self, Z, missing, seed, n_samples, n_steps, n_resample, guidance,
                          content=None):
        """Conditional draws (n_samples, n, d) in the model's space of rows ``Z`` (NaN: 0).

        Each (draw, row) pair's noise is seeded by ``seed``, the draw index
        and a hash of the row's ``content`` (default ``Z``, NaN read as 0)
        and missing pattern.
        """
        n, d = Z.shape
        Z = np.nan_to_num(Z)
        content = np.concatenate([Z if content is None else content, missing], axis=1)
        row_keys = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                    for r in content]
        k = conditional_noise_draws(n_steps, n_resample)
        device = self._inference_device()
        score_fn = self._score_fn(self._model_on(device))
        # Pairs (draw, row) in draw-major order, processed in chunks whose
        # pre-drawn noise stays within _noise_budget numbers.
        step = int(np.clip(self._noise_budget // (k * d), 1, self._chunk_size))
        pairs = [(j, i) for j in range(n_samples) for i in range(n)]
        out = np.empty((n_samples * n, d))

        def piece(packed):
            z, observed, noise = packed[:, :d], packed[:, d:2 * d] > 0, packed[:, 2 * d:]
            return conditional_sde(
                score_fn, z, observed, t_min=self.t_min, t_max=self.t_max, n_steps=n_steps,
                n_resample=n_resample, guidance=guidance, noise=noise.reshape(len(z), k, d),
            )

        for part in chunks(len(pairs), step):
            index = np.array([i for _, i in pairs[part]])
            noise = np.stack([
                np.random.default_rng([seed, j, row_keys[i]]).standard_normal((k, d), np.float32)
                for j, i in pairs[part]
            ])
            packed = np.concatenate(
                [Z[index], ~missing[index], noise.reshape(len(index), k * d)], axis=1
            )
            result = map_chunks(piece, to_tensor(packed, device), len(index))
            out[part] = result.cpu().numpy().astype(np.float64)
        return out.reshape(n_samples, n, d)

    # ------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:
            buffer = io.BytesIO()
            torch.save(state["model_"], buffer)
            state = {**state, "model_": buffer.getvalue()}
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            # Weights saved from any device land on the CPU, so a model fitted
            # on a GPU loads on a machine without one.
            buffer = io.BytesIO(state["model_"])
            state = {**state, "model_": torch.load(buffer, map_location="cpu", weights_only=False)}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
