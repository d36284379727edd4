"""The scikit-learn facade shared by the diffusion estimators (L4).

:class:`BaseDiffusionEstimator` owns the public flow (validation,
standardization, seeding, devices, pickling, ``sample``, ``score_samples``,
``score``); a subclass says how its noise model is built, trained and
differentiated through three small hooks, as ``BaseMixture`` does for
scikit-learn's mixtures.
"""

import copy
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

from ._utils import make_generator, map_chunks, resolve_device, to_tensor
from .anomaly import anomaly_times, denoising_error, score_norm
from .likelihood import log_density
from .marginals import degaussianize, fit_gaussianizer, gaussianize
from .networks import score_from_noise
from .sampling import SAMPLERS

_MAX_SEED = np.iinfo(np.int32).max


def _tuple_of(kind, length=None):
    """A parameter-constraint-friendly check that ``value`` is a tuple of ``kind``."""

    def check(name, value):
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, kind) and v > 0 for v in value)
        if not ok or len(value) == 0 or (length is not None and len(value) != length):
            size = f"{length} " if length else ""
            raise ValueError(f"{name} must be a tuple of {size}positive numbers, got {value!r}.")
        return tuple(value)

    return check


_check_layers = _tuple_of(Integral)
_check_window = _tuple_of(Real, length=2)


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
    gaps = [np.diff(u).min() for u in map(np.unique, Z.T) if 1 < len(u) <= max_levels]
    return min(gaps, default=np.inf)


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
    def fit(self, X, y=None):
        """Fit the score model on the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two rows, finite values.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_settings()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        X = X.astype(np.float64, copy=False)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        # A constant column keeps its unit scale instead of dividing by zero.
        self.scale_ = np.where(scale > 1e-12 * (1 + np.abs(self.mean_)), scale, 1.0)
        rng = check_random_state(self.random_state)
        seed, anomaly_seed = (int(s) for s in rng.randint(_MAX_SEED, size=2))
        device = resolve_device(self.device)
        self.device_ = str(device)
        Z = (X - self.mean_) / self.scale_
        n_val = int(self.validation_fraction * len(Z)) if self.early_stopping else 0
        # Too few rows to hold any out: train on all of them, without stopping early.
        order = rng.permutation(len(Z))
        Z_val, Z = (Z[order[:n_val]], Z[order[n_val:]]) if n_val > 0 else (None, Z)
        if self.column_transform == "gaussianize":
            # Fitted on the training rows only, so the held-out rows judge
            # the smoothing honestly.
            (self.x_knots_, self.z_knots_, self.column_bandwidth_,
             self.column_normal_weight_) = fit_gaussianizer(
                Z, generator=make_generator(seed)
            )
            Z = gaussianize(Z, self.x_knots_, self.z_knots_)[0]
            if Z_val is not None:
                Z_val = gaussianize(Z_val, self.x_knots_, self.z_knots_)[0]
        self._warn_if_near_discrete(Z)
        Z_val = to_tensor(Z_val, device) if Z_val is not None else None
        Z = to_tensor(Z, device)
        result = self._fit_model(Z, Z_val, device, seed)
        self.model_ = result.model.cpu().eval()
        self.loss_curve_ = result.loss_curve
        self.validation_loss_curve_ = result.validation_curve
        self.n_iter_ = len(result.loss_curve)
        self.best_iter_ = result.best_iter
        self.anomaly_seed_ = anomaly_seed
        self.smoothing_, self.smoothing_scores_ = self._select_smoothing(Z_val)
        return self

    def _smoothing_candidates(self):
        if self.smoothing != "auto":
            return np.array([float(self.smoothing)])
        return np.geomspace(self.t_min, max(self.t_min, self._max_smoothing),
                            self._n_smoothing_candidates)

    def _select_smoothing(self, Z_val):
        """The candidate smoothing with the best held-out log-likelihood, and all scores.

        The likelihood can start from any time at no training cost, so the
        smoothing is chosen after training on the rows early stopping held
        out; without them ``smoothing="auto"`` falls back to ``t_min``.
        """
        candidates = self._smoothing_candidates()
        if self.smoothing != "auto" or Z_val is None:
            value = candidates[0] if self.smoothing != "auto" else float(self.t_min)
            return float(value), np.full(1, np.nan)
        Z_val = Z_val[: self._max_selection_rows]
        model = self._model_on(Z_val.device)
        scores = np.array([
            float(self._model_log_density(Z_val, model, t).mean()) for t in candidates
        ])
        best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
        return float(candidates[best]), scores

    def _model_log_density(self, z, model, smoothing):
        """Log-density of the rows ``z`` (n, d) in the model's space, smoothed at ``smoothing``.

        ``log p_s(a_s z) + d log a_s`` is the density of
        ``x_0 + sqrt(e^{2s} - 1) xi`` (``x_s / a_s``), a Gaussian smoothing of
        the data like a kernel density's bandwidth. It is mixed with weight
        ``_broad_weight`` with ``N(0, I)`` (see :attr:`_broad_weight`).
        """
        log_a = -smoothing
        with torch.no_grad():
            lp = log_density(
                self._score_fn(model),
                self._score_div_fn(model),
                z * math.exp(log_a),
                t_min=smoothing,
                t_max=self.t_max,
                n_steps=self.n_steps,
                chunk_size=self._chunk_size,
            )
        lp = lp + z.shape[1] * log_a
        broad = -0.5 * (z**2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
        w = self._broad_weight
        return torch.logaddexp(math.log1p(-w) + lp, math.log(w) + broad)

    #: Weight of ``N(0, I)`` (model space) in the returned density. A
    #: defensive mixture: it costs at most ``-log(1 - w)`` = 0.01 nats on any
    #: row, and bounds the cost of a row the network finds impossible (held-out
    #: rows between the atoms of a repeated reading got -1e5 to -1e7 nats on
    #: ADBench's Cardiotocography, a mean of -25,530 over its 1,000 test rows).
    _broad_weight = 0.01

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

    def _check_settings(self):
        _check_layers("hidden_layer_sizes", self.hidden_layer_sizes)
        lo, hi = _check_window("bootstrap_window", self.bootstrap_window)
        if not lo < hi:
            raise ValueError(f"bootstrap_window must satisfy low < high, got {self.bootstrap_window!r}.")
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

    def _model_on(self, device):
        # nn.Module.to moves in place; the fitted model stays on the CPU.
        return self.model_ if device.type == "cpu" else copy.deepcopy(self.model_).to(device)

    @staticmethod
    def _score_fn(model):
        return lambda x, t: score_from_noise(model(x, t), t)

    def _score_div_fn(self, model):
        """``(x, t) -> (score, divergence)`` of the fitted model (subclass hook)."""
        raise NotImplementedError

    def _to_model_space(self, X):
        """Rows of ``X`` in the model's space, and ``log |det|`` of the map per row."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        Z = (X.astype(np.float64, copy=False) - self.mean_) / self.scale_
        log_jacobian = np.full(len(Z), -np.log(self.scale_).sum())
        if self.column_transform == "gaussianize":
            Z, log_slopes = gaussianize(Z, self.x_knots_, self.z_knots_)
            log_jacobian += log_slopes
        return Z, log_jacobian

    def _from_model_space(self, Z):
        if self.column_transform == "gaussianize":
            Z = degaussianize(Z, self.x_knots_, self.z_knots_)
        return Z * self.scale_ + self.mean_

    def score_samples(self, X):
        """Log-density of each row of ``X`` under the fitted model.

        Computed along the probability-flow ODE with a fixed-step integrator,
        so a row's value is deterministic and does not depend on the others.
        It is the density of the model at noise ``smoothing_`` (see
        ``smoothing``), mixed with weight 0.01 with a standard normal in the
        model's space (a defensive floor: at most 0.01 nats on any row, and
        no row the network finds impossible costs millions of nats), taken
        through the column transform with its exact log-Jacobian, on the
        scale of the input features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            Log-density of each row, on the scale of the input features.
        """
        Z, log_jacobian = self._to_model_space(X)
        device = self._inference_device()
        lp = self._model_log_density(to_tensor(Z, device), self._model_on(device), self.smoothing_)
        return lp.cpu().numpy().astype(np.float64) + log_jacobian

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
            the opposite of scikit-learn's ``score_samples``).

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
        if not isinstance(n_levels, Integral) or n_levels < 1:
            raise ValueError(f"n_levels must be a positive integer, got {n_levels!r}.")
        t_low, t_high = _check_window("noise_range", noise_range)
        if t_low > t_high:
            raise ValueError(f"noise_range must satisfy low <= high, got {noise_range!r}.")
        Z, _ = self._to_model_space(X)
        device = self._inference_device()
        score_fn = self._score_fn(self._model_on(device))
        x = to_tensor(Z, device)
        times = anomaly_times(n_levels, t_low, t_high, device=device)
        if method == "score_norm":
            out = score_norm(score_fn, x, times, chunk_size=self._chunk_size)
        else:
            # Drawn on the CPU so a seed gives the same draws on any device.
            generator = make_generator(self.anomaly_seed_)
            noise = torch.randn(n_levels, Z.shape[1], generator=generator).to(device)
            out = denoising_error(score_fn, x, times, noise, chunk_size=self._chunk_size)
        return out.cpu().numpy().astype(np.float64)

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
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
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
        tags.input_tags.allow_nan = False
        return tags
