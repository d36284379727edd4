"""LocalizedDiffusionEstimator: many small local score models fitted in parallel (L4)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import BaseDiffusionEstimator
from ._blocks import stack_states, train_blocks
from ._model_space import ColumnMap, complete_rows
from ._threads import torch_threads
from ._utils import model_on, resolve_device
from ._validation import atomic_fit, changed_params, check_settings
from .hybrid import hybrid_model, principal_directions
from .localization import (
    LocalNoiseModel,
    coordinate_distances,
    local_score_divergence,
    local_windows,
    neighbourhoods,
)
from .training import TrainingDivergedError, TrainingResult, average_curves

__all__ = ["LocalizedDiffusionEstimator"]


class LocalizedDiffusionEstimator(BaseDiffusionEstimator):
    """Diffusion density estimator whose score is assembled from local sub-models.

    Coordinate ``i``'s score ``s_i(x, t) = f_i(x_{N_r(i)}, t)`` depends only
    on the coordinates within ``radius`` of ``i`` under a distance given by
    ``locality``. Each ``f_i`` is a small time-conditioned network trained on
    its own regression (denoising or time-bootstrapped score matching on
    coordinate ``i``), so sub-models are fitted independently, in blocks of
    ``block_size`` coordinates, in parallel with joblib. Sampling and the
    log-density use the assembled score of all coordinates; the divergence of
    the score is exact and costs about one forward pass at any dimension.

    Parameters
    ----------
    locality : {"chain", "ring", "auto"}, tuple of int or array of shape \
(n_features, n_features), default="chain"
        Distance between coordinates. ``"chain"``: ``|i - j|``; ``"ring"``:
        the periodic chain; a tuple such as ``(8, 8)``: a lattice of that
        shape (row-major, as ``X[k].reshape(shape)`` is the image) with the
        Chebyshev distance, so a neighbourhood is a square window of side
        ``2 radius + 1``; a matrix: its nonzero off-diagonal entries are
        edges of that length and the distance is the shortest path (graph
        hops for a 0/1 adjacency); ``"auto"``: graph hops in a dependency
        graph learned from the training rows, joining each column to its two
        strongest partial correlations.
    radius : float or "auto", default=2
        Neighbourhood radius, from 0 (each coordinate alone, conditioned
        on time only) to the largest distance between features (no
        localization); a larger radius is the same as that one. ``"auto"``
        fits one model per radius in ``(1, 2, 3)`` (grid steps or graph
        hops; the radii beyond the largest distance merge into it) on the
        training rows and keeps the one with the best log-likelihood on the
        early-stopping rows (``radius_``, ``radius_scores_``): the choice a
        ``GridSearchCV`` over ``radius`` makes, at the cost of three fits
        rather than folds times radii. On the five 144-site fields of
        ``benchmarks/lattice_fields.py`` (2,000 rows) it was 0.0007 to 0.0032
        nats per coordinate closer to the true log-density than radius 2 on
        three and level on two, in 2.6 to 3.5 times the fit time.
        Without early stopping there are no such rows and ``"auto"`` uses 2.
    shared : bool or "auto", default="auto"
        One network for every window (a convolution with receptive field
        ``2 radius + 1`` per axis) instead of one per coordinate; for
        translation-invariant data on a chain, ring or lattice. Windows
        that leave a chain or lattice are zero-padded and flagged by a mask.
        ``"auto"``: shared on a ``"chain"``, ``"ring"`` or lattice
        ``locality`` with a whole-number radius (and on a ring with at least
        ``2 radius + 1`` sites), one network per coordinate otherwise
        (``shared_``). On the 144-site lattice and ring fields of
        ``benchmarks/lattice_fields.py`` (2,000 rows) shared windows took the
        gap to the true log-density from 0.0071 and 0.0033 nats per
        coordinate to 0.0022 and 0.0023 (``GraphicalLassoCV``: 0.0031 and
        0.0025), and to 0.0031 on a lattice whose coupling changes across the
        grid (per coordinate 0.0074, ``GraphicalLassoCV`` 0.0037); one
        network means one fitting job, so ``n_jobs`` has no
        effect and :meth:`refit_features` re-trains it whole: use
        ``shared=False`` for per-sensor refits and parallel blocks.
    n_global_components : int, default=0
        Rank of a global component added to the local score, for data whose
        dependence is not all local (a common factor, a drift shared by every
        sensor): a small network (two layers of 64) that sees the rows
        through their ``n_global_components`` leading principal directions
        and predicts every coordinate (see :mod:`sklearn_diffusion.hybrid`).
        Its Jacobian has rank at most ``n_global_components``; the local
        sub-models keep their receptive fields. It couples all coordinates,
        so the model then trains as one job (``block_size`` and ``n_jobs``
        have no effect) and :meth:`refit_features` is not available.
        In ``benchmarks/locality.py`` one component captured a common factor
        that no radius could.
    hidden_layer_sizes : tuple of int, default=(32, 32)
        Widths of the hidden layers of each sub-model.
    block_size : int, default=128
        Coordinates whose sub-models are trained together in one job (on
        the block's columns and their halo): the unit of parallel work and
        of :meth:`refit_features`. The ``d`` coordinates are split into
        ``ceil(d / block_size)`` blocks of equal size. Every block runs
        ``n_iter_no_change`` checks past its best step, so fewer, larger
        blocks fit faster in one process (a 12x12 lattice: 2 blocks took
        0.6 times as long as 5, with the same held-out likelihood); smaller
        blocks give more parallel jobs and finer refits.
        Ignored with shared windows (``shared_``) or ``n_global_components > 0``
        (one job).
    n_jobs : int, default=None
        Jobs fitting blocks in parallel; ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context, ``-1`` all processors.
        The fitted model does not depend on it.
    max_iter : int, default=4000
        Maximum number of optimizer steps per block.
    batch_size : int, default=256
        Rows per optimizer step (clipped to the number of rows).
    learning_rate : float, default=3e-3
        Peak Adam learning rate (linear warm-up then cosine decay); small
        sub-models take a larger rate than one global network.
    loss : {"dsm", "bootstrap"}, default="dsm"
        Training objective of each sub-model: denoising score matching, or
        time bootstrapping (see :class:`BootstrappedScoreEstimator`). On small
        local sub-models DSM reached a lower score error in as many steps.
    bootstrap_window : tuple of two floats, default=(0.01, 1.0)
        Diffusion times that get bootstrapped targets; DSM elsewhere.
    bootstrap_step : float in (0, 1), default=0.15
        Relative step between a bootstrapped target's time ``t`` and the
        time ``(1 - bootstrap_step) t`` of the score it comes from.
    bootstrap_weight : "auto" or float in [0, 1], default="auto"
        Weight of the bootstrapped target in its mix with the DSM target;
        ``"auto"``: the weight of least variance per noise level under
        ``N(0, I)`` (see :class:`BootstrappedScoreEstimator`).
    bootstrap_draws : int, default=8
        Bridge draws averaged in each bootstrapped target.
    ema_decay : float, default=0.999
        Decay of the exponential moving average of the weights.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop each block
        after ``n_iter_no_change`` checks of 100 steps without improvement
        of its held-out denoising loss, keeping its best weights.
    validation_fraction : float, default=0.1
        Fraction of the rows held out for early stopping.
    n_iter_no_change : int, default=5
        Patience of early stopping, in checks of 100 steps.
    t_min, t_max : float, default=1e-3, 10.0
        Diffusion time range of training and of the likelihood integral
        (noise of variance ``1 - exp(-2 t)`` in the model's space).
    smoothing : "auto" or float, default="auto"
        Noise level of the returned density, as a diffusion time in
        ``[t_min, t_max)``: ``score_samples`` and ``sample`` give the law of
        ``x + sqrt(exp(2 s) - 1) xi`` in the model's space, like the
        bandwidth of a kernel density. ``"auto"`` picks, after training, the
        one of 14 times log-spaced in ``[t_min, 0.5]`` with the best
        held-out log-likelihood on the early-stopping rows, by a
        golden-section search that evaluates about 7 of them (no training
        cost; ``t_min`` without early stopping). It was the largest single gain
        on held-out likelihood in ``benchmarks/density.py``: a network fitted
        on a few thousand rows is sharper than the data's density.
    column_transform : {"gaussianize", "standardize"}, default="gaussianize"
        Map of each column before the diffusion. ``"standardize"``: centre
        and scale. ``"gaussianize"``: then map each column through its own
        increasing bijection to a normal law (``Phi^{-1}`` of the
        distribution function of a kernel density mixed with the column's
        normal fit, bandwidth and weight by leave-one-out likelihood), with
        its exact log-Jacobian in ``score_samples``, as
        normalizing flows do: bounded, skewed and multimodal marginals
        (dequantized pixels, clipped sensors) then cost the diffusion
        nothing. No ``StandardScaler`` is needed in front of the estimator.
    dequantize : bool, default=True
        Spread each value of a column whose values lie on a grid and repeat
        (counts, readings to a fixed number of decimals; see
        ``grid_steps_``) uniformly over its grid cell, centred on it, before
        fitting. Such repeated values are point masses, on which no density
        is finite: without this, a held-out copy of a training value scores
        by how sharp the model makes its spikes. With it, the model is the
        density of the dequantized rows, and ``score_samples`` of a value on
        the grid is about its probability divided by the step (the
        dequantized likelihood of flows for images). Columns whose repeated
        values are not on a grid (zeros among continuous readings) are left
        as they are. On the 18 sets of ``benchmarks/density.py`` with grid
        columns it gained 111 nats in all (seed 0): 88 on SpamBase, 3.9 to
        5.8 on five more, and lost 0.67 at most (breast_cancer;
        ``benchmarks/results/studies/atoms.md``).
    n_steps : int, default=16
        Steps of the sampler and of the likelihood integrator.
    sampler : {"ode", "sde"}, default="ode"
        Probability-flow ODE (RK4) or reverse SDE (exponential integrator).
    sample_domain : {"data", "real"}, default="data"
        What ``sample`` and ``sample_conditional`` return. ``"data"``: each
        column clipped to the range of its training entries (no negative
        draw of a column that never was), and a column whose training
        entries are all whole numbers rounded to them, as SDV's
        ``enforce_min_max_values`` and ``enforce_rounding`` do. ``"real"``:
        the model's draws as they are, rows of the very density
        ``score_samples`` returns.
    device : str or torch.device, default="auto"
        ``"auto"`` uses a CUDA GPU when there is one; blocks then share the
        device through threads (never CUDA in forked workers).
    random_state : int, RandomState instance or None, default=None
        Seeds the sub-models and their training draws.
    verbose : int, default=0
        Show a progress bar per block when positive.

    Attributes
    ----------
    model_ : LocalNoiseModel or HybridNoiseModel
        Assembled noise predictor of all coordinates (kept on the CPU); a
        :class:`~sklearn_diffusion.hybrid.HybridNoiseModel` with a global
        component.
    radius_ : float
        The neighbourhood radius in use (``radius``, or the one ``"auto"`` chose).
    radius_scores_ : ndarray of shape (n_candidates,)
        Held-out mean log-likelihood (model space) of the model at each
        radius of ``radius="auto"``, in increasing order of radius (NaN
        everywhere when the radius was not chosen on held-out rows).
    shared_ : bool
        Whether one network serves every window (see ``shared``).
    distances_ : ndarray of shape (n_features, n_features)
        Distances between coordinates (learned from the data for ``"auto"``).
    neighbourhoods_ : list of ndarray
        ``neighbourhoods_[i]`` holds the coordinates within ``radius_`` of ``i``.
    blocks_ : list of ndarray
        Coordinates of each fitting job.
    global_components_ : ndarray of shape (n_features, n_global_components)
        Orthonormal principal directions of the training rows in the model's
        space, seen by the global component (``n_global_components > 0`` only).
    global_variances_ : ndarray of shape (n_global_components,)
        Variance of the training rows along each direction.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardization of the training data.
    column_transform_ : {"gaussianize", "standardize"}
        The column map in use (``column_transform``).
    x_knots_, z_knots_ : ndarray of shape (n_features, n_knots)
        Knots of the per-column maps ``z = g(x)`` of standardized values
        (``column_transform="gaussianize"`` only).
    column_bandwidth_, column_normal_weight_ : ndarray of shape (n_features,)
        Kernel bandwidth (in standard deviations) and weight of the column's
        normal fit in the marginal behind each column's map
        (``column_transform="gaussianize"`` only).
    constant_values_ : ndarray of shape (n_features,)
        The value of each column whose observed training entries are all
        equal (NaN for the others); ``sample``, ``sample_conditional`` and
        the imputer return such a column exactly.
    data_min_, data_max_ : ndarray of shape (n_features,)
        Smallest and largest observed training entry of each column.
    integer_features_ : ndarray of bool of shape (n_features,)
        Whether the column's observed training entries are all whole numbers
        (and not all equal).
    grid_steps_ : ndarray of shape (n_features,)
        The grid step of each column fitted dequantized (see
        ``dequantize``); 0 for the others.
    smoothing_ : float
        Noise level of the returned density (see ``smoothing``).
    smoothing_scores_ : ndarray of shape (n_candidates,)
        Held-out mean log-likelihood (model space) of each candidate of
        ``smoothing="auto"``; NaN for a candidate the search did not need,
        and everywhere when the smoothing was not chosen on held-out rows.
    loss_curve_ : ndarray of shape (`n_iter_`,)
        Training loss per step, the mean over coordinates (over the blocks
        still training, weighted by their size, once some have stopped).
    validation_loss_curve_ : ndarray of shape (n_checks,)
        Held-out denoising loss per check, averaged the same way.
    n_iter_ : int
        Largest number of steps taken by a block.
    best_iter_ : int
        Largest step whose weights a block kept.
    device_ : str
        Device the model was fitted on.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    BootstrappedScoreEstimator : One global score network.
    sklearn.neighbors.KernelDensity : Kernel density estimation.

    Notes
    -----
    For data whose coordinates depend on each other locally, the score of
    coordinate ``i`` is well approximated by the score of the marginal of the
    block ``N_r(i)``: for a Gaussian ``N(0, C)`` noised to time ``t`` it is
    ``-[(C_t)_{NN}^{-1} x_N]_i`` with ``C_t = a_t^2 C + s_t^2 I``. The
    localization error falls quickly with ``r`` while the statistical error
    grows with the block size, so a moderate radius wins; ``radius="auto"``
    or a ``GridSearchCV`` over ``radius`` (scored by held-out log-density)
    finds it. See Gottwald,
    Liu, Marzouk, Reich and Tong, "Localized Diffusion Models",
    arXiv:2505.04417.

    The log-density integrates ``d + tr grad s`` along the probability-flow
    ODE; ``d s_i / d x_i`` is one forward-mode derivative of every window at
    its centre, so the trace is exact and deterministic.

    Blocks of per-coordinate networks (``shared_`` False) are dispatched
    with :class:`sklearn.utils.parallel.Parallel`, so a joblib backend
    chooses where they run. On a Dask cluster::

        from dask.distributed import Client
        from joblib import parallel_config
        client = Client("tcp://scheduler-address:8786")
        with parallel_config(backend="dask"):
            est.fit(X)

    Seeds are drawn before dispatch, so the fitted model is the same for any
    ``n_jobs`` or backend.

    Saving: ``pickle.load`` and ``joblib.load`` run code from the file they
    read, so load a pickle only from a source you trust;
    :func:`sklearn_diffusion.persistence.save` and
    :func:`sklearn_diffusion.persistence.load` write and read a file that
    holds only tensors, numbers and strings, and run no code from it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion import LocalizedDiffusionEstimator
    >>> X = np.cumsum(np.random.default_rng(0).normal(size=(200, 6)), axis=1)
    >>> est = LocalizedDiffusionEstimator(radius=1, max_iter=50, random_state=0).fit(X)
    >>> [n.tolist() for n in est.neighbourhoods_[:2]]
    [[0, 1], [0, 1, 2]]
    >>> est.sample(3, random_state=0).shape
    (3, 6)
    >>> est.score_samples(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **BaseDiffusionEstimator._parameter_constraints,
        "locality": [StrOptions({"chain", "ring", "auto"}), "array-like"],
        "radius": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "shared": [StrOptions({"auto"}), "boolean"],
        "block_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "n_global_components": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        locality="chain",
        radius=2,
        shared="auto",
        n_global_components=0,
        hidden_layer_sizes=(32, 32),
        block_size=128,
        n_jobs=None,
        max_iter=4000,
        batch_size=256,
        learning_rate=3e-3,
        loss="dsm",
        bootstrap_window=(0.01, 1.0),
        bootstrap_step=0.15,
        bootstrap_weight="auto",
        bootstrap_draws=8,
        ema_decay=0.999,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=5,
        t_min=1e-3,
        t_max=10.0,
        smoothing="auto",
        column_transform="gaussianize",
        dequantize=True,
        n_steps=16,
        sampler="ode",
        sample_domain="data",
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.locality = locality
        self.radius = radius
        self.shared = shared
        self.n_global_components = n_global_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.block_size = block_size
        self.n_jobs = n_jobs
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.loss = loss
        self.bootstrap_window = bootstrap_window
        self.bootstrap_step = bootstrap_step
        self.bootstrap_weight = bootstrap_weight
        self.bootstrap_draws = bootstrap_draws
        self.ema_decay = ema_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.t_min = t_min
        self.t_max = t_max
        self.smoothing = smoothing
        self.column_transform = column_transform
        self.dequantize = dequantize
        self.n_steps = n_steps
        self.sampler = sampler
        self.sample_domain = sample_domain
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    #: Candidates of ``radius="auto"``, and the radius used when none can be chosen.
    _radius_candidates = (1, 2, 3)
    _fallback_radius = 2

    def _fit_model(self, Z, Z_val, device, seed, *, observed=None, observed_val=None,
                   reference=None):
        Z_np = Z.cpu().numpy()
        Z_val_np = None if Z_val is None else Z_val.cpu().numpy()
        masks = [None if m is None else m.cpu().numpy() > 0 for m in (observed, observed_val)]
        d = Z_np.shape[1]
        # A missing entry (NaN) counts as the column mean (0 in model space)
        # in the learned graph: under MCAR that shrinks every correlation by
        # about the same factor, so the strongest partners stay the same.
        self.distances_ = coordinate_distances(self.locality, d, np.nan_to_num(Z_np))
        if self.n_global_components > 0:
            # Directions of the training rows only: the held-out rows judge
            # the smoothing honestly.
            self.global_components_, self.global_variances_ = principal_directions(
                Z_np, self.n_global_components
            )
        else:
            for name in ("global_components_", "global_variances_"):
                self.__dict__.pop(name, None)
        held_out = complete_rows(Z_val_np)
        if self.radius != "auto":
            radii = [float(self.radius)]
        elif observed is not None:
            # The second round on filled-in rows keeps the first round's radius.
            radii = [self.radius_]
        elif held_out is None:
            radii = [float(self._fallback_radius)]
        else:
            radii = self._auto_radii()
        if observed is None:
            self.radius_scores_ = np.full(len(radii) if len(radii) > 1 else 1, np.nan)
        best = None
        for k, radius in enumerate(radii):
            self.radius_ = radius
            self.shared_ = self._resolve_shared()
            self.neighbourhoods_ = neighbourhoods(self.distances_, self.radius_)
            self.blocks_ = np.array_split(np.arange(d), self._n_blocks(d))
            outputs = train_blocks(self, Z_np, Z_val_np, range(len(self.blocks_)), device,
                                   seed, *masks)
            result = self._assemble(outputs, range(len(self.blocks_)), device)
            if len(radii) == 1:
                return result
            self.radius_scores_[k] = self._heldout_score(held_out, result.model)
            if best is None or self.radius_scores_[k] > best[0]:
                state = (radius, self.shared_, self.neighbourhoods_, self.blocks_)
                best = (self.radius_scores_[k], state, result)
        if not np.isfinite(best[0]):
            raise TrainingDivergedError(
                "Training diverged: no radius of radius='auto' gave a finite held-out "
                "log-likelihood. Try a smaller learning_rate or a fixed radius."
            )
        (self.radius_, self.shared_, self.neighbourhoods_, self.blocks_), result = best[1:]
        return result

    def _auto_radii(self):
        """The distinct radii of ``radius="auto"`` (those past the largest distance merge)."""
        finite = self.distances_[np.isfinite(self.distances_)]
        largest = float(finite.max())
        if isinstance(self.locality, str) and self.locality == "ring" and self.shared is not False:
            # The widest window that does not wrap onto itself, so that every
            # candidate can share one network.
            largest = min(largest, float((len(self.distances_) - 1) // 2))
        return sorted({min(float(r), largest) for r in self._radius_candidates})

    def _shares_windows(self, radius):
        """Whether ``shared="auto"`` gives shared windows at ``radius``."""
        if isinstance(self.locality, str):
            grid = self.locality in ("chain", "ring")
        else:
            grid = np.asarray(self.locality).ndim == 1  # a lattice shape, not a matrix
        # A ring window wider than the ring would wrap onto itself.
        ring = isinstance(self.locality, str) and self.locality == "ring"
        small_ring = ring and 2 * radius + 1 > len(self.distances_)
        return bool(grid and float(radius).is_integer() and not small_ring)

    def _resolve_shared(self):
        if self.shared != "auto":
            return bool(self.shared)
        return self._shares_windows(self.radius_)

    def _heldout_score(self, Z_val, model):
        """Mean log-likelihood of held-out model-space rows at the best (or the set) smoothing."""
        if self.smoothing == "auto":
            return float(np.nanmax(self._select_smoothing(Z_val, model)[1]))
        device = resolve_device(self.device_)
        rows = Z_val[: self._max_selection_rows]
        value = self._model_log_density(rows, model_on(model, device), float(self.smoothing),
                                        device)
        value = float(np.mean(value))
        return value if np.isfinite(value) else -np.inf

    def _assemble(self, outputs, which, device, base=None):
        """The trained blocks ``which`` stacked into one model, with their averaged curves."""
        states, curves, val_curves, best_iters = zip(*outputs)
        model = stack_states(self._empty_model(), states, self.blocks_, which, self.shared_, base)
        sizes = [len(self.blocks_[b]) for b in which]
        return TrainingResult(
            model.to(device).eval(),
            average_curves(curves, sizes),
            average_curves(val_curves, sizes),
            int(max(best_iters)),
        )

    @_fit_context(prefer_skip_nested_validation=True)
    @atomic_fit
    @torch_threads()
    def refit_features(self, X, features):
        """Re-train only the sub-models whose neighbourhood contains any of ``features``.

        For a sensor that was replaced or recalibrated: the blocks (see
        ``blocks_``) with a coordinate whose window holds a changed feature
        are trained again on ``X``; every other block keeps its weights bit
        for bit. Shared windows (``shared_``) are one block: their network is
        re-trained whole, so fit with ``shared=False`` for per-sensor refits.
        Each block draws its seed from ``random_state`` by its index, and the
        rows go through :meth:`fit`'s own preprocessing (the
        same held-out split, clipped to the training range for early
        stopping), so with an int ``random_state`` and the same parameters
        the re-trained blocks are bit-identical to those of a full
        ``fit(X)``; when only the columns ``features`` of ``X`` differ from
        the rows the model was fitted on, the whole model is (with
        ``column_transform="gaussianize"``, as long as the new columns'
        maps have as many knots as the others, the usual case for
        continuous data; otherwise they are resampled to that count, the
        same map).

        With missing entries (NaN) in ``X``, the re-trained blocks also get
        :meth:`fit`'s second round on the model's own conditional draws, so
        the model is still a full fit's when the missing entries lie in the
        columns ``features`` only. When other columns have missing entries
        too, the draws come from untouched blocks of the earlier fit's
        second round where a full fit would use its first: close to a full
        fit, not bit-identical (a 12-column chain with 10% of every column
        missing: 0.024 nats per row on average, 0.12 at most).

        The column transform (``mean_``, ``scale_`` and the column maps) is
        fitted again for the columns ``features`` only: the untouched
        sub-models read the other columns, in the coordinates they were
        trained in, and every sub-model that reads a changed column is
        re-trained. ``distances_`` (also a learned ``locality="auto"``
        graph), ``radius_``, ``shared_`` and ``blocks_`` are kept.
        ``smoothing_`` is chosen again (``smoothing="auto"``), on the held-out
        rows a full fit would use.
        ``loss_curve_``, ``validation_loss_curve_``, ``n_iter_`` and
        ``best_iter_`` then describe the re-trained blocks.

        All or nothing: when it fails, the estimator is left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows with the changed columns; ``n_features`` must be
            that of :meth:`fit`, while the number of rows may differ (for
            example only the rows recorded since the change).
        features : array-like of int or str
            Indices of the changed features, or their names when ``X`` had
            string column names at fit.

        Returns
        -------
        self : object
            The estimator, with the affected blocks re-trained.

        Raises
        ------
        ValueError
            On an unknown feature or a ``features`` that is not 1-D, an
            ``X`` with another number of features, when a parameter other
            than ``n_jobs``, ``verbose``, ``device`` or ``sample_domain``
            changed since :meth:`fit` (the re-trained sub-models would not fit with the
            others; call :meth:`fit`), or with a global component
            (``n_global_components > 0``), which couples every coordinate.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_diffusion import LocalizedDiffusionEstimator
        >>> X = np.cumsum(np.random.default_rng(0).normal(size=(200, 8)), axis=1)
        >>> est = LocalizedDiffusionEstimator(radius=1, shared=False, block_size=4,
        ...                                   max_iter=20, random_state=0).fit(X)
        >>> X[:, 7] = 2 * X[:, 7] + 1  # sensor 7 recalibrated
        >>> before = est.model_.output.weight[:4].clone()
        >>> est = est.refit_features(X, [7])  # re-trains the block of sensors 4 to 7 only
        >>> bool((est.model_.output.weight[:4] == before).all())
        True
        """
        check_is_fitted(self)
        check_settings(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                          ensure_min_samples=2, ensure_all_finite="allow-nan")
        changed = self._feature_indices(features)
        self._check_unchanged_settings()
        # fit's own preprocessing, for the changed columns only: a re-trained
        # block sees exactly the rows, seed and held-out split a full fit gives it.
        prep = self._prepare(X, previous=ColumnMap.of(self), columns=changed)
        prep.column_map.set_on(self)
        device = resolve_device(self.device)
        self.device_ = str(device)
        windows = self.model_.windows.numpy()
        touched = np.isin(windows, changed)
        which = [b for b, block in enumerate(self.blocks_) if touched[block].any()]

        def train(Z, Z_val, observed=None, observed_val=None):
            # A new module, not an in-place edit: the previous model_ stays
            # intact until the end, so a failure leaves it as it was.
            outputs = train_blocks(self, Z, Z_val, which, device, prep.seed, observed,
                                   observed_val)
            return self._assemble(outputs, which, "cpu", base=self.model_.state_dict())

        result = train(prep.Z, prep.Z_stop)
        self.model_ = result.model
        if self._imputation_rounds and prep.has_missing:
            result = self._refit_on_draws(prep.Z, prep.Z_stop, prep.seed, train)
        self._record(result, prep)
        self.smoothing_, self.smoothing_scores_ = self._select_smoothing(complete_rows(prep.Z_val))
        return self

    #: Parameters refit_features may change: they do not shape the fitted model.
    _refit_free_params = ("n_jobs", "verbose", "device", "sample_domain")

    def _check_unchanged_settings(self):
        """Raise ``ValueError`` unless the parameters are those of the last fit (but for a few)."""
        if self.n_global_components > 0 or hasattr(self, "global_components_"):
            raise ValueError(
                "refit_features re-trains local sub-models only, but the global component "
                "(n_global_components > 0) couples every coordinate; call fit instead."
            )
        changed = changed_params(self, exempt=self._refit_free_params)
        if changed:
            raise ValueError(
                "refit_features needs the structure and settings the model was fitted with, "
                f"but {', '.join(changed)} changed since fit (re-trained sub-models would not "
                "fit with the others); set them back, or call fit."
            )

    def _feature_indices(self, features):
        """Sorted unique column indices of ``features`` (indices or names)."""
        features = np.asarray(features)
        if features.ndim > 1:
            raise ValueError(
                f"features must be a 1-D list of indices or names, got shape {features.shape}."
            )
        features = np.unique(features.ravel())
        if features.size == 0:
            raise ValueError("features must name at least one feature.")
        if features.dtype.kind in "OUS":
            names = getattr(self, "feature_names_in_", None)
            unknown = [f for f in features if names is None or f not in names]
            if unknown:
                raise ValueError(f"Unknown feature name(s) {unknown!r}.")
            return np.flatnonzero(np.isin(names, features))
        d = self.n_features_in_
        if features.dtype.kind not in "iu" or features.min() < 0 or features.max() >= d:
            raise ValueError(
                f"features must be column indices in [0, {d}) or names, got {features.tolist()!r}."
            )
        return features.astype(np.int64)

    def _empty_model(self):
        """The assembled network of all coordinates, before its weights are set."""
        windows, centre_slot = local_windows(
            self.locality, self.distances_, self.radius_, shared=self.shared_
        )
        d = len(self.distances_)
        if hasattr(self, "global_components_"):
            return hybrid_model(windows, centre_slot, d, tuple(self.hidden_layer_sizes),
                                self.shared_, self.global_components_, self.global_variances_)
        return LocalNoiseModel(
            windows, np.arange(d), centre_slot, d, tuple(self.hidden_layer_sizes), self.shared_
        )

    def _n_blocks(self, d):
        # The global part couples every coordinate: a hybrid trains as one job.
        return 1 if self.shared_ or self.n_global_components > 0 else -(-d // self.block_size)

    def _score_div_fn(self, model):
        return local_score_divergence(model)

    @property
    def _chunk_size(self):
        # Inference holds (rows, d, 2 k) windows and (d, rows, width) hidden
        # activations: bound the rows so memory stays near 2**24 numbers. The
        # neighbourhoods, not model_: radius="auto" scores models before one is kept.
        width = max(map(len, self.neighbourhoods_))
        per_row = self.n_features_in_ * (2 * width + max(self.hidden_layer_sizes))
        return int(np.clip(2**24 // per_row, 1, 2048))
