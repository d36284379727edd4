"""The scikit-learn facade shared by the diffusion estimators (L4).

:class:`BaseDiffusionEstimator` owns the public flow (``fit``,
``score_samples``, ``score``, ``sample``, ``sample_conditional``,
``anomaly_score``, pickling); a subclass says how its noise model is built,
trained and differentiated through declared hooks, as ``BaseMixture`` does
for scikit-learn's mixtures. The steps of the flow are module functions:
:mod:`._model_space` (standardization, column maps, the held-out split),
:mod:`._selection` (the smoothing), :mod:`._conditional` (conditional
draws), :func:`~sklearn_diffusion.likelihood.smoothed_log_density` and
:func:`~sklearn_diffusion.training.check_finite_model`.
"""

import math
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from scipy.special import logsumexp
from sklearn.utils.validation import check_is_fitted

from ._conditional import FILL_SETTINGS, draw_model_space, refit_on_draws
from ._model_space import ColumnMap, Scorer, complete_rows, prepare
from ._selection import select_smoothing, smoothing_candidates
from ._tabular import validate_table
from ._threads import layer_work, torch_threads
from ._utils import (TorchPickleMixin, inference_device, make_generator, map_chunks, model_on,
                     resolve_device, to_tensor)
from ._validation import MAX_SEED, atomic_fit, check_count, check_noise_range, check_settings
from .anomaly import anomaly_times, denoising_error, score_norm
from .likelihood import BROAD_DOF, smoothed_log_density
from .networks import score_from_noise
from .sampling import SAMPLERS
from .training import check_finite_model

_MAX_SEED = MAX_SEED  # the older name, for code that imported it from here


def _training_work(est, X, y=None):
    """Multiply-adds of the widest layer per training step (the thread policy's size hint)."""
    try:
        d = np.shape(X)[1]
        return layer_work(min(est.batch_size, len(X)), (d, *est.hidden_layer_sizes, d))
    except (TypeError, ValueError, IndexError):  # input fit is about to refuse
        return None


class BaseDiffusionEstimator(TorchPickleMixin, DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Shared flow of the diffusion density estimators (not for direct use).

    Subclasses implement the hooks :meth:`_fit_model`, :meth:`_score_div_fn`
    and :meth:`_empty_model`, and may override :meth:`_select_density` and
    the class constant (or property) ``_chunk_size``.
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "loss": [StrOptions({"bootstrap", "dsm"})],
        "bootstrap_window": ["array-like"],
        "bootstrap_step": [Interval(Real, 0, 1, closed="neither")],
        "bootstrap_weight": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both")],
        "bootstrap_draws": [Interval(Integral, 1, None, closed="left")],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "t_min": [Interval(Real, 0, None, closed="neither")],
        "t_max": [Interval(Real, 0, None, closed="neither")],
        "smoothing": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "column_transform": [StrOptions({"gaussianize", "standardize"})],
        "dequantize": ["boolean"],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "sampler": [StrOptions(set(SAMPLERS))],
        "sample_domain": [StrOptions({"data", "real"})],
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

    #: Model-space coordinates beyond this are "far": the float32 network is
    #: not evaluated on them (see :func:`~.likelihood.smoothed_log_density`).
    _far = 1e4

    #: Weight of the heavy-tailed broad part in the returned density
    #: (:func:`~.likelihood.broad_log_density`): a bound on rows the network
    #: finds impossible (-1e7 nats on ADBench's Cardiotocography).
    _broad_weight = 0.001

    #: Numbers at most in one chunk's pre-drawn noise of :meth:`sample_conditional`.
    _noise_budget = 2**22

    #: Rounds of :meth:`_refit_on_draws` on incomplete rows (two were within
    #: 0.01 RMSE of one; ``benchmarks/results/studies/impute_refit.md``).
    _imputation_rounds = 1

    # ------------------------------------------------------------- hooks
    @abstractmethod
    def _fit_model(self, Z, Z_val, device, seed, *, observed=None, observed_val=None,
                   reference=None):
        """Train on the model-space rows; a ``TrainingResult`` whose ``model(x, t)`` is the noise.

        ``Z`` (n, d), ``Z_val`` (n_val, d) or None: float32 tensors on ``device``;
        ``observed``, ``observed_val``: masks of the observed entries (see
        :func:`~sklearn_diffusion.training.fit_noise_model`); ``reference``: a
        mixture the column-map choice already fitted on ``Z``, or None.
        """

    @abstractmethod
    def _score_div_fn(self, model):
        """``(x, t) -> (score, divergence)`` of ``model``, for the likelihood."""

    @abstractmethod
    def _empty_model(self):
        """The fitted model's module before its weights are set (for persistence)."""

    def _select_density(self, Z_val):
        """Set ``smoothing_`` and ``smoothing_scores_`` from the complete held-out rows."""
        self.smoothing_, self.smoothing_scores_ = self._select_smoothing(Z_val)

    # --------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    @atomic_fit
    @torch_threads(work=_training_work)
    def fit(self, X, y=None):
        """Fit the score model on the rows of ``X``.

        All or nothing: when fitting fails (bad input, diverged training, an
        interrupt), the estimator is left exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two rows with an observed value. NaN
            marks a missing entry: the column maps are fitted on each
            column's observed entries and the loss on each row's; the model
            is then fitted again with the missing inputs filled by its own
            conditional draws (one round of stochastic EM; user guide,
            "Missing values"). Rows with every entry missing are ignored,
            with a warning.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        TrainingDivergedError
            When the loss or the network's weights or outputs stop being finite.
        """
        check_settings(self)
        X = validate_table(self, X, reset=True, allow_nan=True)
        prep = self._prepare(X)
        prep.column_map.set_on(self)
        device = resolve_device(self.device)
        self.device_ = str(device)
        Z_stop = None if prep.Z_val is None else to_tensor(prep.Z_stop, device)
        result = self._fit_model(to_tensor(prep.Z, device), Z_stop, device, prep.seed,
                                 reference=prep.reference)
        self.model_ = result.model.cpu().eval()
        if self._imputation_rounds and prep.has_missing:
            def train(Z, Z_val, observed, observed_val):
                return self._fit_model(
                    to_tensor(Z, device), None if Z_val is None else to_tensor(Z_val, device),
                    device, prep.seed, observed=to_tensor(observed, device),
                    observed_val=None if Z_val is None else to_tensor(observed_val, device),
                )

            result = self._refit_on_draws(prep.Z, prep.Z_stop, prep.seed, train)
        self._record(result, prep)
        self.anomaly_seed_ = prep.anomaly_seed
        self._select_density(complete_rows(prep.Z_val))
        # What refit_features compares the parameters with.
        self._fit_params = self.get_params(deep=False)
        return self

    def _prepare(self, X, previous=None, columns=None):
        """:func:`~._model_space.prepare` with this estimator's settings and ``random_state``."""
        return prepare(
            X, check_random_state(self.random_state), column_transform=self.column_transform,
            t_min=self.t_min, dequantize=self.dequantize, previous=previous, columns=columns,
            validation_fraction=self.validation_fraction if self.early_stopping else 0.0,
            linear=getattr(getattr(self, "table_codec_", None), "category_coordinates", None),
        )

    def _record(self, result, prep):
        """Check the fitted ``model_`` and keep the curves of ``result``."""
        check_finite_model(self.model_, np.nan_to_num(prep.Z), self.t_min, self.t_max)
        self.loss_curve_ = result.loss_curve
        self.validation_loss_curve_ = result.validation_curve
        self.n_iter_ = len(result.loss_curve)
        self.best_iter_ = result.best_iter

    def _refit_on_draws(self, Z, Z_val, seed, train):
        """Train again on rows filled by draws of ``model_`` (``_conditional.refit_on_draws``)."""
        def draw(rows, missing, key):
            return self._draw_model_space(rows, missing, key, 1, *FILL_SETTINGS)[0]

        def step(*rows_and_masks):
            result = train(*rows_and_masks)
            self.model_ = result.model.cpu().eval()  # the next round draws from it
            return result

        return refit_on_draws(draw, step, Z, Z_val, seed, self._imputation_rounds)

    def _training_kwargs(self):
        """Keyword arguments of :func:`~sklearn_diffusion.training.fit_noise_model`."""
        names = ("max_iter", "batch_size", "learning_rate", "t_min", "t_max", "loss",
                 "bootstrap_step", "bootstrap_weight", "bootstrap_draws", "ema_decay",
                 "n_iter_no_change", "verbose")
        return {**{name: getattr(self, name) for name in names},
                "bootstrap_window": tuple(self.bootstrap_window)}

    # --------------------------------------------------- density choice
    def _select_smoothing(self, Z_val, model=None):
        """The smoothing with the best held-out log-likelihood, and the candidates' scores.

        See :func:`~._selection.select_smoothing`; without held-out rows
        ``smoothing="auto"`` falls back to ``t_min``. ``model`` defaults to
        the fitted ``model_``.
        """
        if self.smoothing != "auto" or Z_val is None:
            value = float(self.smoothing) if self.smoothing != "auto" else float(self.t_min)
            return value, np.full(1, np.nan)
        device = resolve_device(self.device_)
        model = model_on(self.model_ if model is None else model, device)
        return select_smoothing(
            lambda Z, smoothing: self._model_log_density(Z, model, smoothing, device),
            Z_val[: self._max_selection_rows],
            smoothing_candidates(self.t_min, self._max_smoothing, self._n_smoothing_candidates),
        )

    def _model_log_density(self, Z, model, smoothing, device):
        """Log-density of model-space rows ``Z``; see :func:`~.likelihood.smoothed_log_density`."""
        return smoothed_log_density(
            self._score_fn(model), self._score_div_fn(model), Z, smoothing=smoothing,
            t_max=self.t_max, n_steps=self.n_steps, chunk_size=self._chunk_size,
            broad_weight=self._broad_weight, far=self._far, device=device,
        )

    # --------------------------------------------------------- inference
    @staticmethod
    def _score_fn(model):
        return lambda x, t: score_from_noise(model(x, t), t)

    def _scorer(self):
        """The fitted model's :class:`Scorer`, on the device it computes on now."""
        check_is_fitted(self)
        device = inference_device(self.device_)
        model = model_on(self.model_, device)
        return Scorer(device, model, self._score_fn(model), ColumnMap.of(self),
                      self._chunk_size, self._far)

    def _to_model_space(self, X):
        """Validated rows of ``X`` in the model's space, and ``log |det|`` of the map per row."""
        check_is_fitted(self)
        return ColumnMap.of(self).forward(validate_table(self, X))

    @torch_threads()
    def score_samples(self, X):
        """Log-density of each row of ``X`` under the fitted model.

        The density of the model at noise ``smoothing_``, along the
        probability-flow ODE with a fixed-step integrator (a row's value is
        deterministic and does not depend on the others), mixed with weight
        0.001 with a standard normal in the model's space (at most 0.001 nats
        on any row; no row the network finds impossible costs millions of
        nats), through the column transform with its exact log-Jacobian. A
        row over 10,000 standard deviations out gets the normal's part alone:
        finite, or ``-inf`` once its squared norm overflows; never NaN.

        With categorical columns (``categorical_features``), a lower bound
        on the log of the density of the numeric columns times the
        probability of the categories: the log of the mean density over 8
        fixed dequantizations of the categories into their cells
        (importance-weighted; a bound in expectation over the fixed draws,
        whose error is shared by every row). On a 3 x 2 table of categories
        the six cells' probabilities summed to 0.75 to 0.98 over five sets of
        draws. It costs 8 likelihood integrals a row.

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
            When ``X`` has a missing entry (NaN): the density of the observed
            coordinates alone (the marginal) is not what the ODE gives; fill
            them with :class:`~sklearn_diffusion.DiffusionImputer` first.
        """
        check_is_fitted(self)
        table, X = X, validate_table(self, X, allow_nan=True)
        if np.isnan(X).any():
            raise ValueError(
                "X contains NaN: score_samples needs complete rows. The log-density of the "
                "observed coordinates alone (the marginal) is not tractable with the "
                "probability-flow ODE; fill the missing entries with DiffusionImputer or "
                "draw them with sample_conditional first."
            )
        sc = self._scorer()

        def piece(rows):
            Z, log_jacobian = sc.column_map.forward(rows)
            return self._model_log_density(Z, sc.model, self.smoothing_, sc.device) + log_jacobian

        if not hasattr(self, "table_codec_"):
            return sc.map_rows(piece, X)
        # The bound of _tabular's docstring, over the fixed dequantizations.
        log_p = [sc.map_rows(piece, validate_table(self, table, offsets=u))
                 for u in self.dequantization_offsets_]
        return (logsumexp(log_p, axis=0) - math.log(len(log_p))
                + self.table_codec_.log_dequantization_volume)

    @torch_threads()
    def anomaly_score(self, X, *, method="score_norm", n_levels=16, noise_range=(0.001, 1.0)):
        """Anomaly score of each row of ``X``: higher is more anomalous.

        Cheaper than ``-score_samples(X)``: one forward pass per noise level,
        no ODE and no Jacobian. Deterministic (noise draws fixed at fit and
        shared by every row) and independent of the other rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        method : {"score_norm", "denoising", "log_density"}, default="score_norm"
            ``"score_norm"``: mean over the noise levels of
            ``|| s_t score(a_t x, t) ||^2``, the noise the model believes the
            row carries (best of the three on ``benchmarks/adbench.py``).
            ``"denoising"``: mean of ``|| e(a_t x + s_t z_t, t) - z_t ||^2``.
            ``"log_density"``: ``-score_samples(X)`` (``n_levels`` and
            ``noise_range`` unused).
        n_levels : int, default=16
            Number of noise levels, uniform in ``log t``.
        noise_range : tuple of two floats, default=(0.001, 1.0)
            Smallest and largest diffusion time of the levels (noise of 0.045
            and 0.93 standard deviations): small times see sharp local
            structure, large ones the distance to the bulk of the data.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Higher is more anomalous (as in PyOD, the opposite of
            scikit-learn's ``score_samples``). Coordinates over 10,000
            standard deviations out are clipped there first (float32), so such
            rows tie, far above any row near the data.

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
        n_levels = check_count("n_levels", n_levels)
        t_low, t_high = check_noise_range(noise_range)
        check_is_fitted(self)
        X = validate_table(self, X)
        sc = self._scorer()
        times = anomaly_times(n_levels, t_low, t_high, device=sc.device)
        # Drawn on the CPU so a seed gives the same draws on any device.
        noise = torch.randn(n_levels, X.shape[1], generator=make_generator(self.anomaly_seed_))

        def piece(rows):
            x = to_tensor(sc.network_input(rows), sc.device)
            if method == "score_norm":
                out = score_norm(sc.score_fn, x, times, chunk_size=sc.chunk_size)
            else:
                out = denoising_error(sc.score_fn, x, times, noise.to(sc.device),
                                      chunk_size=sc.chunk_size)
            return out.cpu().numpy().astype(np.float64)

        return sc.map_rows(piece, X)

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

    @torch_threads()
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
        X : ndarray or DataFrame of shape (n_samples, n_features)
            With ``sample_domain="data"``, each column within its training
            range and an integer column as whole numbers. A DataFrame with
            the columns, dtypes and categories of the training table when it
            had categorical columns.
        """
        check_is_fitted(self)
        n_samples = check_count("n_samples", n_samples)
        seed = check_random_state(random_state).randint(MAX_SEED)
        sc = self._scorer()
        generator = make_generator(seed, sc.device)
        sampler = SAMPLERS[self.sampler]
        z = torch.randn(n_samples, len(self.mean_), generator=generator, device=sc.device)
        # Drawn at noise smoothing_ and rescaled by 1 / a_s: rows of the very
        # density score_samples returns.
        Z = map_chunks(
            lambda part: sampler(sc.score_fn, part, t_min=self.smoothing_, t_max=self.t_max,
                                 n_steps=self.n_steps, generator=generator, denoise=False),
            z,
            sc.chunk_size,
        )
        Z = Z.cpu().numpy().astype(np.float64) * math.exp(self.smoothing_)
        # The defensive mixture's broad part (see _broad_weight).
        broad = torch.rand(n_samples, generator=generator, device=sc.device) < self._broad_weight
        if broad.any():
            shape = (n_samples, len(self.mean_))
            extra = torch.randn(shape, generator=generator, device=sc.device)
            # Student t coordinates: a normal over the root of a chi-square's mean.
            chi2 = torch.randn((*shape, BROAD_DOF), generator=generator, device=sc.device)
            extra = extra / (chi2**2).mean(dim=-1).sqrt()
            Z[broad.cpu().numpy()] = extra[broad].cpu().numpy()
        X = sc.column_map.inverse(Z, domain=self.sample_domain == "data")
        table = getattr(self, "table_codec_", None)
        return X if table is None else table.decode(X)

    @torch_threads()
    def sample_conditional(self, X, *, n_samples=1, n_steps=32, n_resample=2, guidance=1.0,
                           random_state=None, row_ids=None):
        """Draw the missing entries (NaN) of each row of ``X`` given its observed ones.

        An ancestral reverse-time sampler with the model's joint score, from
        ``t_max`` to ``t_min``: before each step the observed coordinates are
        replaced by a forward-noised copy of their values, and the denoised
        guess of the missing ones is corrected by its error on the observed
        ones (reconstruction guidance); see
        :func:`~sklearn_diffusion.sampling.conditional_sde`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_rows, n_features)
            Rows with NaN at the entries to draw. A row without NaN comes back
            as it is; a row of NaN gets an unconditional draw. With
            categorical columns, a DataFrame with None or NaN where a
            category is to be drawn.
        n_samples : int, default=1
            Draws per row.
        n_steps : int, default=32
            Time steps, uniform in ``log t`` (16, 32 and 64 gave 76%, 89% and
            94% of a Gaussian's conditional variance;
            ``benchmarks/results/studies/impute_tuning.md``).
        n_resample : int, default=2
            Visits of each time step, with a jump back in between (RePaint).
        guidance : float, default=1.0
            Weight of the guidance; 0 is plain replacement (a third of the
            cost, but the draws follow the observed entries poorly).
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; the same value gives the same draws.
        row_ids : array-like of int of shape (n_rows,), default=None
            Extra keys of the rows' draws: identical rows with different ids
            get independent draws (multiple imputation of repeated readings).
            None keys each row by its content alone.

        Returns
        -------
        draws : ndarray of shape (n_samples, n_rows, n_features) or DataFrame
            ``draws[k]`` is the ``k``-th draw of every row; observed entries
            come back exactly, drawn ones as ``sample_domain`` says. With
            categorical columns, a DataFrame of ``n_samples * n_rows`` rows
            indexed by ``(draw, row)``.

        Notes
        -----
        A row's draws depend on the row, the model and ``random_state``
        only: each (row, draw) pair's noise is seeded by ``random_state``,
        the draw index and a hash of the row's values and missing pattern
        (and its ``row_ids`` entry), not by the other rows, their order or
        the chunking; two identical rows without ids get identical draws.

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
        n_samples, n_resample, n_steps = (check_count(name, value) for name, value in (
            ("n_samples", n_samples), ("n_resample", n_resample), ("n_steps", n_steps)))
        if isinstance(guidance, bool) or not isinstance(guidance, Real) or not guidance >= 0:
            raise ValueError(f"guidance must be a non-negative number, got {guidance!r}.")
        table = getattr(self, "table_codec_", None)
        X = validate_table(self, X, allow_nan=True).astype(np.float64)
        seed = int(check_random_state(random_state).randint(MAX_SEED))
        if row_ids is not None:
            row_ids = np.asarray(row_ids)
            if row_ids.shape != (len(X),) or row_ids.dtype.kind not in "iu":
                raise ValueError(f"row_ids must be {len(X)} integers, one per row of X.")
        missing = np.isnan(X)
        draws = np.repeat(X[None], n_samples, axis=0)
        rows = np.flatnonzero(missing.any(axis=1))
        if len(rows):
            X, missing = X[rows], missing[rows]
            column_map = ColumnMap.of(self)
            Z = np.clip(np.nan_to_num(column_map.forward(X)[0]), -self._far, self._far)
            # The row's identity: its values (NaN read as 0), its id and its missing pattern.
            content = np.where(missing, 0.0, X)
            if row_ids is not None:
                content = np.column_stack([content, row_ids[rows].astype(np.float64)])
            filled = self._draw_model_space(Z, missing, seed, n_samples, n_steps, n_resample,
                                            float(guidance), content=content)
            filled = column_map.inverse(filled.reshape(-1, X.shape[1]),
                                        domain=self.sample_domain == "data").reshape(filled.shape)
            draws[:, rows] = np.where(missing, filled, X)
        return draws if table is None else table.decode_draws(draws)

    def _draw_model_space(self, Z, missing, seed, n_samples, n_steps, n_resample, guidance,
                          content=None):
        """Conditional draws in the model's space; see :func:`~._conditional.draw_model_space`."""
        sc = self._scorer()
        return draw_model_space(
            sc.score_fn, Z, missing, seed=seed, n_samples=n_samples, n_steps=n_steps,
            n_resample=n_resample, guidance=guidance, t_min=self.t_min, t_max=self.t_max,
            chunk_size=sc.chunk_size, noise_budget=self._noise_budget, device=sc.device,
            content=content,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
