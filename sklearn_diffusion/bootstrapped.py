"""BootstrappedScoreEstimator: one score network over all noise levels (L4)."""

import copy
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseDiffusionEstimator
from ._model_space import MIN_SELECTION_ROWS
from ._selection import HeldOutLikelihood, smoothing_candidates
from ._utils import make_generator
from ._validation import MAX_SEED
from .likelihood import hutchinson_divergence
from .networks import MixtureReference, ScoreEnsemble, ScoreMLP
from .reference import fit_reference_mixture, mixture_floor, standard_normal_reference
from .schedules import sigma
from .training import TrainingResult, average_curves, fit_noise_model, validation_set

__all__ = ["BootstrappedScoreEstimator"]


class BootstrappedScoreEstimator(BaseDiffusionEstimator):
    """Diffusion density estimator trained with time-bootstrapped score matching.

    A single time-conditioned network learns the score of the data noised by
    an Ornstein-Uhlenbeck process at every noise level. With
    ``loss="bootstrap"`` the regression targets at higher noise are built from
    the model's own (averaged, frozen) score at slightly lower noise along the
    same noising path; ``loss="dsm"`` is plain denoising score matching. The
    network learns a correction to the closed-form score of a Gaussian
    mixture fitted by BIC (see ``reference``), so an untrained model is that
    mixture's density.
    New rows are drawn by integrating the reverse process and log-densities
    come from the probability-flow ODE.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128, 128, 128)
        Widths of the hidden layers of the score network.
    max_iter : int, default=4000
        Maximum number of optimizer steps.
    batch_size : int, default=256
        Rows per optimizer step (clipped to the number of rows).
    learning_rate : float, default=1e-3
        Peak Adam learning rate (linear warm-up then cosine decay).
    loss : {"dsm", "bootstrap", "auto"}, default="dsm"
        Training objective: denoising score matching, or time bootstrapping
        on ``bootstrap_window`` (after a DSM warm start of 10% of
        ``max_iter``). On the learning curves of
        ``benchmarks/data_efficiency.py`` (6 targets, 50 to 500 rows,
        3 seeds) it was better than DSM beyond the seed spread in 7 of 30
        cells (the curved ``banana6`` at 100 rows by 1.2 nats), worse in 3
        (``banana6`` at 200 to 500 rows, by 0.18 to 0.23) and level in 20,
        for 1.6 times the fit time: not a default. ``"auto"``: the networks of the
        ensemble (``n_networks``) alternate DSM and bootstrapping, and the
        held-out log-likelihood chooses among their average and each
        loss's networks alone (``member_losses_``), as it chooses the
        smoothing; with one network, DSM. On the learning curves (6 targets
        at 100 and 300 rows, 3 seeds) ``"auto"`` was better than DSM in 3
        of 12 cells and never worse.
    objective : {"auto", "score", "flow_matching"}, default="auto"
        What the network is regressed on. ``"score"``: the noise (score
        matching, times log-uniform). ``"flow_matching"``: conditional flow
        matching on the straight path ``(1 - tau) x_0 + tau z`` with ``tau``
        uniform, the velocity ``z - x_0`` as target (or its bootstrapped
        version with ``loss="bootstrap"``). On a Gaussian path the velocity
        is an affine map of the noise, so the same network, sampler and
        likelihood serve both; only the weight of each noise level and
        where the training times fall differ (see Notes). ``"auto"``: flow
        matching from 48 features on, score matching below
        (``objective_``). Over the 36 sets of ``benchmarks/density.py``
        (seeds 0 and 1) flow matching was level or better on every set of
        57 to 166 columns (musk +14.3 nats, digits64 +1.4, optdigits +0.9)
        and mixed below 37 (breast_cancer -0.5, Cardiotocography +0.5); on
        eight wide targets with exact densities that no default was chosen
        on (32 to 128 columns) it was better on all eight, by 0.1 to 4.4
        nats, for 0.8 to 1.3 times the fit time
        (``benchmarks/results/studies/width.md``).
    bootstrap_window : tuple of two floats, default=(0.01, 1.0)
        Diffusion times that get bootstrapped targets (clipped to
        ``[t_min, t_max]``); DSM elsewhere.
    bootstrap_step : float in (0, 1), default=0.15
        Relative time step: the target at ``t`` comes from the frozen
        prediction at ``u = (1 - bootstrap_step) t``, so the factor that
        multiplies that prediction's error stays near 1 at every ``t``.
    bootstrap_weight : "auto" or float in [0, 1], default="auto"
        Weight of the bootstrapped target in its mix with the DSM target
        (both are unbiased; 1 is pure bootstrapping). ``"auto"``: per noise
        level, the weight of least target variance under the reference
        mixture (see Notes), near 1 at low noise and near 0 at high noise.
    bootstrap_draws : int, default=8
        Draws of the lower-noise point, from the bridge between the row and
        the noised row, averaged in each bootstrapped target: the same mean
        with most of the variance of one draw removed.
    ema_decay : float, default=0.999
        Decay of the exponential moving average of the weights, which is both
        the frozen target of bootstrapping and the fitted model.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, measure them every 100
        steps (see ``stopping_metric``), stop after ``n_iter_no_change``
        checks without improvement and keep the best weights. Diffusion
        models overfit small data sets early, so this is on by default; it
        is skipped when the held-out fraction would have no row.
    stopping_metric : {"auto", "likelihood", "loss"}, default="auto"
        What early stopping watches. ``"loss"``: the held-out denoising
        loss. ``"likelihood"``: the held-out mean log-likelihood, at the
        smoothing candidate (see ``smoothing``) that is best at the first
        check and then moved to a better neighbour whenever it stops
        improving (one to three ODE passes over at most 500 complete
        held-out rows per check). Only the first network of each reference
        is checked; the others of ``n_networks`` stop at the step it kept.
        With the reference mixture as skip term, the loss flattens before
        the network has learned what the mixture cannot represent, and
        stopping on it ended training early on curved shapes. Over the
        36 sets of ``benchmarks/density.py`` the likelihood gained more
        than 0.05 nats on 12 and lost more on 2, for 1.39 times the fit
        time (``benchmarks/results/stopping_metric.md``). ``"auto"``: the
        likelihood when there are at least 20 complete held-out rows, else
        the loss (``"likelihood"`` falls back to it there too).
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
    column_transform : {"auto", "gaussianize", "standardize"}, default="auto"
        Map of each column before the diffusion. ``"standardize"``: centre
        and scale. ``"gaussianize"``: then map each column through its own
        increasing bijection to a normal law (``Phi^{-1}`` of the
        distribution function of a kernel density mixed with the column's
        normal fit, bandwidth and weight by leave-one-out likelihood), with
        its exact log-Jacobian in ``score_samples``, as
        normalizing flows do: bounded, skewed and multimodal marginals
        (dequantized pixels, clipped sensors) then cost the diffusion
        nothing. No ``StandardScaler`` is needed in front of the estimator.
        ``"auto"``: the one of the two under which the BIC Gaussian mixture
        of the training rows (see ``reference``) has the better held-out
        log-likelihood on the early-stopping rows, a closed form that costs
        no training (``"gaussianize"`` with fewer than 20 such rows).
        Gaussianizing wins on skewed and bounded columns, standardizing on
        data that is already a Gaussian mixture on its own scale.
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
    categorical_features : "from_dtype", None or array-like, default="from_dtype"
        Columns to model as categories (after
        ``HistGradientBoostingClassifier``'s parameter). ``"from_dtype"``:
        the ``category``, ``object``, ``bool`` and string columns of a
        pandas DataFrame (none of an array); None: none; else column names,
        positions or a boolean mask. Each category gets a cell of volume one
        in continuous coordinates, disjoint from the others' (one coordinate
        for two categories, one per category from three), filled by uniform
        dequantization; samples are decoded by the cell's region. Then
        ``sample`` returns a DataFrame with the columns, dtypes and categories
        of ``X``, ``sample_conditional`` takes and returns tables (a missing
        category is None or NaN), and ``score_samples`` is a lower bound on
        the log of the density of the numeric columns times the probability
        of the categories (see its docstring). A category unseen in ``fit``
        is a ``ValueError``. Positions on an array work too, and arrays
        come back (floats when every category is a number). Categorical
        columns need pandas.
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
    divergence : {"auto", "exact", "hutchinson"}, default="auto"
        How ``score_samples`` takes the trace of the score's Jacobian;
        ``"auto"`` is exact (forward mode through the network) up to 64
        features and Hutchinson with fixed probes above.
    n_probes : int, default=8
        Number of fixed Rademacher probes for the Hutchinson trace.
    reference : {"auto", "mixture", "normal"}, default="auto"
        The law whose exact score each network corrects. ``"normal"``:
        ``N(0, I)`` in the model's space (the untrained network is its
        score). ``"mixture"``: the Gaussian mixture of lowest BIC on the
        training rows in the model's space (1 to 32 components, full,
        diagonal, tied or spherical covariances; ``N(0, I)`` with fewer than
        ``2 (d + 1)`` complete rows). The noised mixture's score has a
        closed form at every noise level, so the untrained model is the
        mixture's density and training learns what the mixture misses.
        ``"auto"``: the networks alternate between the two (the first on the
        mixture; with the default three, two on the mixture and one on
        ``N(0, I)``), and after training the held-out log-likelihood on the
        early-stopping rows keeps all of them or only those of one
        reference (``member_references_``); the two mixture networks alone
        are ``"mixture"``'s ensemble. With one network, or fewer than 20
        complete held-out rows to choose with, every network is on the
        mixture. Over three seeds of the 36 sets of ``benchmarks/density.py``
        it moved 21 sets up by more than 0.05 nats against two mixture
        networks and none down (median +0.13; musk +15.1 with flow
        matching, fault +2.0, digits64 +2.0, banana6 +0.31), for 1.86 times
        the fit time (five sets side by side, 1.35 to 3.2 each;
        ``benchmarks/results/density4.md``). The
        20-row rule was added after the nine smallest sets lost up to 1.3
        nats (WPBC) with the choice made on 7 to 18 rows; it was measured
        on those same sets.
    n_networks : int, default=3
        Networks trained from different seeds whose scores are averaged
        (the probability-flow ODE of the mean score is still a normalized
        density). Each one costs a full fit. Two networks beat one on 31 of
        the 36 data sets of ``benchmarks/density.py`` (up to +16 nats on
        musk, -0.14 at worst; ``benchmarks/results/studies/density_n_networks.md``);
        three are the default for ``reference="auto"`` (see there).
    device : str or torch.device, default="auto"
        ``"auto"`` uses a CUDA GPU when there is one.
    random_state : int, RandomState instance or None, default=None
        Seeds the network, the training draws and the Hutchinson probes.
    verbose : int, default=0
        Show a progress bar with the running loss when positive.

    Attributes
    ----------
    model_ : torch.nn.Module
        Fitted noise predictor (kept on the CPU).
    mean_, scale_ : ndarray of shape (n_features,)
        Standardization of the training data.
    column_transform_ : {"gaussianize", "standardize"}
        The column map in use (the choice of ``column_transform="auto"``).
    x_knots_, z_knots_ : ndarray of shape (n_features, n_knots)
        Knots of the per-column maps ``z = g(x)`` of standardized values
        (``column_transform_ == "gaussianize"`` only).
    column_bandwidth_, column_normal_weight_ : ndarray of shape (n_features,)
        Kernel bandwidth (in standard deviations) and weight of the column's
        normal fit in the marginal behind each column's map
        (``column_transform_ == "gaussianize"`` only).
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
    table_codec_ : object
        The coordinates of the categorical columns (only when ``X`` had
        some; see ``categorical_features``).
    dequantization_offsets_ : ndarray of shape (8, n_category_coordinates)
        Fixed dequantizations of the categories that ``score_samples``
        averages over (only with categorical columns).
    smoothing_ : float
        Noise level of the returned density (see ``smoothing``).
    smoothing_scores_ : ndarray of shape (n_candidates,)
        Held-out mean log-likelihood (model space) of each candidate of
        ``smoothing="auto"``; NaN for a candidate the search did not need,
        and everywhere when the smoothing was not chosen on held-out rows.
    loss_curve_ : ndarray of shape (`n_iter_`,)
        Training loss per step.
    validation_loss_curve_ : ndarray of shape (n_checks,)
        Held-out denoising loss at every check (empty without early stopping).
    objective_ : str
        The objective the networks were trained on: ``"score"`` or
        ``"flow_matching"`` (see ``objective``).
    stopping_metric_ : str
        What early stopping watched: ``"likelihood"`` or ``"loss"`` (see
        ``stopping_metric``; ``"loss"`` also without early stopping).
    validation_score_curve_ : ndarray of shape (n_checks,)
        Held-out mean log-likelihood (model space, at the followed
        smoothing) at every check when ``stopping_metric_`` is
        ``"likelihood"``, averaged over the networks that were checked (the
        first of each reference); empty otherwise.
    n_iter_ : int
        Number of optimizer steps taken.
    best_iter_ : int
        Step whose weights were kept.
    reference_weights_ : ndarray of shape (n_components,)
        Weights of the reference mixture (``[1.0]`` for ``reference="normal"``).
    reference_means_ : ndarray of shape (n_components, n_features)
        Means of its components in the model's space.
    reference_eigenvalues_ : ndarray of shape (n_components, n_features)
        Eigenvalues of each component's covariance.
    reference_eigenvectors_ : ndarray of shape (n_components, n_features, n_features)
        Orthonormal eigenvectors of each component's covariance, as columns.
    member_references_ : ndarray of str
        The reference ("mixture" or "normal") of each network kept in
        ``model_`` (see ``reference``).
    member_losses_ : ndarray of str
        The loss ("dsm" or "bootstrap") each network kept in ``model_`` was
        trained with (see ``loss``).
    reference_alone_ : bool
        Whether the held-out rows preferred the reference mixture alone to
        the trained model (whose correction is then zero); only considered
        with a network on the mixture, ``smoothing="auto"`` and
        early-stopping rows.
    probes_ : ndarray of shape (n_probes, n_features)
        Rademacher probes of the Hutchinson trace.
    device_ : str
        Device the model was fitted on.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    Forward process ``x_t = a_t x_0 + s_t z`` with ``a_t = exp(-t)`` and
    ``s_t^2 = 1 - exp(-2t)``. Time bootstrapping uses the identity
    ``s_t(y) = e^h E[s_u(X_u) | X_t = y]`` for ``t = u + h`` (Kumar, Nagaraj
    and Sarkar, "Dimension-free Score Matching and Time Bootstrapping for
    Diffusion Models", arXiv:2502.10354), with ``u = (1 - bootstrap_step) t``;
    the frozen score at ``u`` is averaged over ``bootstrap_draws`` draws of
    ``X_u`` from the bridge between the row and ``X_t``, and blended with the
    DSM target with weight ``w = E<D, D - B> / E|D - B|^2`` (``D`` the DSM
    and ``B`` the bootstrapped noise target), the blend of least variance
    when both are unbiased (Kahouli et al., arXiv:2512.20003), estimated per
    noise level under the reference mixture. Flow matching: with
    ``k_t = 1 / (a_t + s_t)`` and ``tau = s_t k_t``, ``k_t x_t`` is the straight
    path at ``tau``, and a noise prediction ``e`` implies the velocity
    ``(e - k_t x_t) / (a_t k_t)`` (Lipman et al., arXiv:2210.02747; Liu et
    al., arXiv:2209.03003). The log-density is
    ``log N(x_T; 0, I) - int (d + tr grad s) dt`` along the probability-flow
    ODE ``dx/dt = -x - s(x, t)``.

    Saving: ``pickle.load`` and ``joblib.load`` run code from the file they
    read, so load a pickle only from a source you trust;
    :func:`sklearn_diffusion.persistence.save` and
    :func:`sklearn_diffusion.persistence.load` write and read a file that
    holds only tensors, numbers and strings, and run no code from it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion import BootstrappedScoreEstimator
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> est = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100,
    ...                                  random_state=0).fit(X)
    >>> est.sample(3, random_state=0).shape
    (3, 2)
    >>> est.score_samples(X[:2]).shape
    (2,)
    """

    def __init__(
        self,
        *,
        hidden_layer_sizes=(128, 128, 128),
        max_iter=4000,
        batch_size=256,
        learning_rate=1e-3,
        loss="dsm",
        objective="auto",
        bootstrap_window=(0.01, 1.0),
        bootstrap_step=0.15,
        bootstrap_weight="auto",
        bootstrap_draws=8,
        ema_decay=0.999,
        early_stopping=True,
        stopping_metric="auto",
        validation_fraction=0.1,
        n_iter_no_change=5,
        t_min=1e-3,
        t_max=10.0,
        smoothing="auto",
        column_transform="auto",
        dequantize=True,
        categorical_features="from_dtype",
        n_steps=16,
        sampler="ode",
        sample_domain="data",
        divergence="auto",
        n_probes=8,
        reference="auto",
        n_networks=3,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.loss = loss
        self.objective = objective
        self.bootstrap_window = bootstrap_window
        self.bootstrap_step = bootstrap_step
        self.bootstrap_weight = bootstrap_weight
        self.bootstrap_draws = bootstrap_draws
        self.ema_decay = ema_decay
        self.early_stopping = early_stopping
        self.stopping_metric = stopping_metric
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.t_min = t_min
        self.t_max = t_max
        self.smoothing = smoothing
        self.column_transform = column_transform
        self.dequantize = dequantize
        self.categorical_features = categorical_features
        self.n_steps = n_steps
        self.sampler = sampler
        self.sample_domain = sample_domain
        self.divergence = divergence
        self.n_probes = n_probes
        self.reference = reference
        self.n_networks = n_networks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    #: Fewest features at which ``objective="auto"`` is flow matching.
    _min_flow_matching_features = 48

    #: Largest dimension whose divergence ``divergence="auto"`` takes exactly.
    _max_exact_features = 64

    _parameter_constraints = {
        **BaseDiffusionEstimator._parameter_constraints,
        "divergence": [StrOptions({"auto", "exact", "hutchinson"})],
        "n_probes": [Interval(Integral, 1, None, closed="left")],
        "column_transform": [StrOptions({"auto", "gaussianize", "standardize"})],
        "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
        "reference": [StrOptions({"auto", "mixture", "normal"})],
        "n_networks": [Interval(Integral, 1, None, closed="left")],
        "stopping_metric": [StrOptions({"auto", "likelihood", "loss"})],
        "objective": [StrOptions({"auto", "score", "flow_matching"})],
        "loss": [StrOptions({"auto", "bootstrap", "dsm"})],
    }

    #: Complete held-out rows at most in each check of ``stopping_metric="likelihood"``.
    _max_stopping_rows = 500

    def _fit_model(self, Z, Z_val, device, seed, *, observed=None, observed_val=None,
                   reference=None):
        self.objective_ = self._resolve_objective(Z.shape[1])
        probe_rng = np.random.default_rng(seed)
        self.probes_ = probe_rng.choice([-1.0, 1.0], size=(self.n_probes, Z.shape[1]))
        seeds = [seed] + [int(s) for s in probe_rng.integers(MAX_SEED, size=self.n_networks - 1)]
        plan = self._planned_references()
        if self.reference == "auto" and self._selection_rows(Z_val, observed_val) is None:
            # Too few held-out rows to choose between the references (the
            # 20-row bar of stopping_metric="auto"): the mixture's networks
            # only, as with reference="mixture".
            plan = ("mixture",) * len(plan)
        if "mixture" not in plan:
            reference = standard_normal_reference(Z.shape[1])
        elif reference is None:  # else fitted on Z to choose the column map
            reference = fit_reference_mixture(Z.cpu().numpy().astype(np.float64), seed,
                                              mixture_floor(self.t_min))
        (self.reference_weights_, self.reference_means_, self.reference_eigenvalues_,
         self.reference_eigenvectors_) = reference
        self.member_references_ = np.array(plan, dtype=object)
        losses = self._planned_losses()
        self.member_losses_ = np.array(losses, dtype=object)
        stopping_rows = self._stopping_rows(Z_val, observed_val)
        self.stopping_metric_ = "loss" if stopping_rows is None else "likelihood"
        results, chosen = [], {}
        for member_seed, kind, member_loss in zip(seeds, plan, losses):
            generator = make_generator(member_seed, device)
            # Weights are drawn on the CPU so a seed gives the same network on any device.
            network = ScoreMLP(Z.shape[1], tuple(self.hidden_layer_sizes),
                               generator=make_generator(member_seed))
            if kind == "mixture":
                network = self._with_reference(network)
            validation = None
            if Z_val is not None:
                validation = validation_set(Z_val, self.t_min, self.t_max, generator=generator,
                                            observed=observed_val)
            criterion, stop_at = None, None
            if stopping_rows is not None and (kind, member_loss) in chosen:
                # Checking every network cost 1.84x the loss's fit time over
                # the suite; stopping the later ones where the first one's
                # likelihood peaked, 1.39x at nearly the same likelihood
                # (benchmarks/results/stopping_metric.md).
                validation, stop_at = None, chosen[kind, member_loss]
            elif stopping_rows is not None:
                criterion = HeldOutLikelihood(
                    lambda model, rows, s: self._model_log_density(rows, model, s, device),
                    stopping_rows, self._stopping_candidates(),
                )
            results.append(fit_noise_model(
                network.to(device), Z, generator=generator, observed=observed,
                validation=validation, criterion=criterion, stop_at=stop_at,
                **{**self._training_kwargs(), "loss": member_loss}
            ))
            chosen.setdefault((kind, member_loss), results[-1].best_iter)
        if len(results) == 1:
            return results[0]
        weights = np.ones(len(results))
        networks = [r.model.model if kind == "mixture" else r.model
                    for r, kind in zip(results, plan)]
        return TrainingResult(
            self._assemble(networks, plan).eval(),
            average_curves([r.loss_curve for r in results], weights),
            average_curves([r.validation_curve for r in results], weights),
            int(max(r.best_iter for r in results)),
            average_curves([r.score_curve for r in results], weights),
        )

    def _training_kwargs(self):
        return {**super()._training_kwargs(), "objective": self.objective_}

    def _resolve_objective(self, n_features):
        if self.objective != "auto":
            return self.objective
        return "flow_matching" if n_features >= self._min_flow_matching_features else "score"

    def _record(self, result, prep):
        super()._record(result, prep)
        self.validation_score_curve_ = result.score_curve

    def _stopping_rows(self, Z_val, observed_val):
        """The held-out rows early stopping scores by likelihood (numpy), or None for the loss."""
        if self.stopping_metric == "loss":
            return None
        return self._selection_rows(Z_val, observed_val)

    def _selection_rows(self, Z_val, observed_val):
        """Complete held-out rows (numpy, at most ``_max_stopping_rows``), or None if too few."""
        if Z_val is None:
            return None
        rows = Z_val.cpu().numpy().astype(np.float64)
        complete = ~np.isnan(rows).any(axis=1)
        if observed_val is not None:  # a refit's rows, filled by draws where unobserved
            complete &= observed_val.cpu().numpy().astype(bool).all(axis=1)
        rows = rows[complete][: self._max_stopping_rows]
        return rows if len(rows) >= MIN_SELECTION_ROWS else None

    def _stopping_candidates(self):
        if self.smoothing != "auto":
            return np.array([float(self.smoothing)])
        return smoothing_candidates(self.t_min, self._max_smoothing, self._n_smoothing_candidates)

    def _planned_losses(self):
        """The loss of each network: ``loss="auto"`` alternates DSM and bootstrapping."""
        if self.loss == "auto":
            return tuple("bootstrap" if i % 2 else "dsm" for i in range(self.n_networks))
        return (self.loss,) * self.n_networks

    def _planned_references(self):
        """The reference of each network: ``reference="auto"`` alternates the mixture and N(0, I)."""
        if self.reference == "auto":
            return tuple("normal" if i % 2 else "mixture" for i in range(self.n_networks))
        return (self.reference,) * self.n_networks

    def _assemble(self, networks, references):
        """The noise model of trained ``networks``, each around its reference."""
        if self.reference == "mixture":
            # One skip term around the mean correction: the same field, in the
            # layout of the files saved before ``reference="auto"``.
            inner = networks[0] if len(networks) == 1 else ScoreEnsemble(networks)
            return self._with_reference(inner)
        members = [self._with_reference(net) if kind == "mixture" else net
                   for net, kind in zip(networks, references)]
        return members[0] if len(members) == 1 else ScoreEnsemble(members)

    def _select_density(self, Z_val):
        # Held-out candidates besides the whole ensemble, judged like the
        # smoothing by the held-out log-likelihood: with reference="auto",
        # the networks of each reference alone (N(0, I) won on curved and
        # near-discrete sets, the mixture on clustered ones; their average on
        # most, benchmarks/results/studies/reference_choice.md); then the
        # mixture without its correction (gmm64 kept it).
        super()._select_density(Z_val)
        self.reference_alone_ = False
        if self.smoothing != "auto" or Z_val is None:
            return
        references = list(self.member_references_)
        losses = list(getattr(self, "member_losses_", [self.loss] * len(references)))
        members = (list(self.model_.members) if isinstance(self.model_, ScoreEnsemble)
                   else [self.model_])
        candidates = []
        if self.reference == "auto" and len(set(references)) == 2:
            for kind in ("mixture", "normal"):
                keep = [i for i, r in enumerate(references) if r == kind]
                candidates.append(self._members(keep, references, losses, False))
        if len(set(losses)) == 2:
            for kind in ("dsm", "bootstrap"):
                keep = [i for i, r in enumerate(losses) if r == kind]
                candidates.append(self._members(keep, references, losses, False))
        if "mixture" in references:
            alone = copy.deepcopy(self.model_ if self.reference == "mixture"
                                  else members[references.index("mixture")])
            for layer in alone.modules():
                if isinstance(layer, ScoreMLP):
                    torch.nn.init.zeros_(layer.output.weight)
                    torch.nn.init.zeros_(layer.output.bias)
            kept = references if self.reference == "mixture" else ["mixture"]
            kept_losses = losses if self.reference == "mixture" else [
                loss for loss, r in zip(losses, references) if r == "mixture"][:1]
            candidates.append((alone, tuple(kept), tuple(kept_losses), True))
        for model, kept, kept_losses, is_alone in candidates:
            smoothing, scores = self._select_smoothing(Z_val, model)
            if np.nanmax(scores) > np.nanmax(self.smoothing_scores_):
                self.model_, self.smoothing_, self.smoothing_scores_ = model, smoothing, scores
                self.member_references_ = np.array(kept, dtype=object)
                self.member_losses_ = np.array(kept_losses, dtype=object)
                self.reference_alone_ = is_alone

    def _members(self, keep, references, losses, is_alone):
        """A selection candidate: the networks ``keep`` (indices) of the fitted model alone."""
        if self.reference == "mixture":
            inner = self.model_.model
            networks = list(inner.members) if isinstance(inner, ScoreEnsemble) else [inner]
        else:
            members = (list(self.model_.members) if isinstance(self.model_, ScoreEnsemble)
                       else [self.model_])
            networks = [m.model if isinstance(m, MixtureReference) else m for m in members]
        kept = tuple(references[i] for i in keep)
        model = self._assemble([networks[i] for i in keep], kept).eval()
        return model, kept, tuple(losses[i] for i in keep), is_alone

    def _with_reference(self, model):
        """``model`` with the fitted reference mixture as its skip term."""
        return MixtureReference(model, *(
            torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (
                self.reference_weights_, self.reference_means_, self.reference_eigenvalues_,
                self.reference_eigenvectors_,
            )
        ))

    def _empty_model(self):
        """The score network(s), before the weights are set."""
        references = getattr(self, "member_references_", None)
        references = self._planned_references() if references is None else tuple(references)
        if not references or not set(references) <= {"mixture", "normal"}:
            raise ValueError(f"member_references_ must name 'mixture' or 'normal' networks, "
                             f"got {references!r}")
        networks = [ScoreMLP(len(self.mean_), tuple(self.hidden_layer_sizes))
                    for _ in references]
        return self._assemble(networks, references)

    def _score_div_fn(self, model):
        # Exact up to 64 features: the forward-mode trace costs about as much
        # as 13 Hutchinson probes there (less than 8 at d = 16), and fixed
        # probes bias every row the same way (1.4 to 2.2 nats on digits-64),
        # which no averaging over rows removes.
        exact = self.divergence == "exact" or (
            self.divergence == "auto" and len(self.mean_) <= self._max_exact_features
        )
        if exact:
            def score_div(x, t):
                noise, trace = model.noise_and_trace(x, t)
                s = sigma(t)
                return -noise / s[:, None], -trace / s

            return score_div
        return hutchinson_divergence(self._score_fn(model), torch.as_tensor(self.probes_))
