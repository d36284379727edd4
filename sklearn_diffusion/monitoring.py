"""DriftMonitor: per-sensor drift alarms on a stream of readings (L4)."""

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.special import ndtri
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._utils import ROW_MULTIPLE, chunks

__all__ = ["DriftMonitor", "DriftResult"]


@dataclass(frozen=True)
class DriftResult:
    """What :meth:`DriftMonitor.update` returns (``dataclasses.asdict`` gives a dict).

    Attributes
    ----------
    is_drift : bool
        Whether an alarm has been raised since :meth:`DriftMonitor.fit` or
        :meth:`DriftMonitor.reset` (it stays raised until ``reset``).
    statistic : ndarray of shape (n_features,)
        Each sensor's CUSUM evidence after the batch (the largest of its
        three sums).
    threshold : ndarray of shape (n_features,)
        Each sensor's alarm threshold.
    sensors : ndarray of int
        The sensors whose evidence has crossed their threshold, the most
        evident first (by the peak of ``statistic / threshold``).
    names : ndarray of str or None
        Their names, when the reference rows had string column names.
    alarm_row : int or None
        The row, counted from 0 at ``fit`` or ``reset``, at which the first
        alarm was raised.
    n_rows : int
        Rows seen since ``fit`` or ``reset``.
    """

    is_drift: bool
    statistic: np.ndarray
    threshold: np.ndarray
    sensors: np.ndarray
    names: object
    alarm_row: object
    n_rows: int


class DriftMonitor(BaseEstimator):
    """Per-sensor drift alarms from a fitted detector's ``feature_scores``.

    Watches a stream of readings batch by batch. Each row's
    :meth:`~sklearn_diffusion.DiffusionOutlierDetector.feature_scores` (how
    much each sensor makes the row abnormal, given its neighbours) is mapped
    to a standard normal score per sensor through the sensor's empirical
    distribution on the reference rows; a two-sided CUSUM per sensor
    (three sums: the score runs high, runs low, or varies too little)
    accumulates the evidence, and an alarm is raised when a sensor's CUSUM
    crosses its threshold, calibrated so that the whole monitor raises
    ``false_alarm_rate`` false alarms per row on streams like the reference
    rows. The API follows ``river`` (``update`` one batch at a time, nothing
    of past rows kept but the CUSUM sums) and ``alibi-detect`` (a detector
    fitted on reference data whose answer holds ``is_drift``, the statistic
    and the threshold).

    Parameters
    ----------
    detector : DiffusionOutlierDetector
        A *fitted* detector over a diffusion estimator (either one); it is
        used as it is, not cloned or refitted. :func:`sklearn.base.clone`
        of the monitor clones it unfitted: wrap it in
        :class:`sklearn.frozen.FrozenEstimator` to keep it fitted through
        ``clone``.
    false_alarm_rate : float in (0, 0.5), default=1e-3
        False alarms per row of the whole monitor (all sensors together) on
        a stream drawn like the reference rows: the mean number of rows from
        ``reset`` to a false alarm is ``1 / false_alarm_rate``.
    slack : float >= 0, default=0.5
        CUSUM allowance ``k`` in units of the standardized score: the sums
        grow only on rows whose score departs from normal by more than
        ``slack``. ``0.5`` is tuned to shifts of about one standard
        deviation of the standardized score.
    n_simulations : int >= 10, default=1000
        Simulated streams of the calibration.
    random_state : int, RandomState instance or None, default=None
        Seed of the calibration's resampling.

    Attributes
    ----------
    quantiles_ : ndarray of shape (n_quantiles, n_features)
        Each sensor's ``feature_scores`` on half of the reference rows, at
        the probabilities ``levels_`` (at most 1,000 of them).
    levels_ : ndarray of shape (n_quantiles,)
        ``(i + 1/2) / n_quantiles``.
    threshold_ : ndarray of shape (n_features,)
        Each sensor's alarm threshold on its CUSUM.
    cusum_ : ndarray of shape (3, n_features)
        Each sensor's CUSUM sums: of departures above normal, below normal,
        and of a spread narrower than normal (see Notes).
    peak_ : ndarray of shape (n_features,)
        The largest ``cusum_.max(axis=0) / threshold_`` since ``fit`` or
        ``reset``; a sensor is in alarm when it exceeds 1.
    alarm_row_ : int or None
        Row of the first alarm since ``fit`` or ``reset``.
    n_rows_ : int
        Rows seen since ``fit`` or ``reset``.
    n_features_in_ : int
        Number of sensors.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the sensors, when the reference rows have string column names.

    See Also
    --------
    DiffusionOutlierDetector.feature_scores : The per-sensor evidence of one row.
    LocalizedDiffusionEstimator.refit_features : Re-train the sensors in alarm.

    Notes
    -----
    With ``u_j`` sensor ``j``'s standardized score of a row
    (``ndtri`` of its reference quantile level, clipped to the reference
    range), the CUSUM sums are ``U_j <- max(0, U_j + u_j - k)``,
    ``L_j <- max(0, L_j - u_j - k)`` and
    ``S_j <- max(0, S_j + 1 - u_j^2 - k)`` with ``k = slack``: ``U`` grows
    when a sensor disagrees with its neighbours more than it used to (an
    offset, a larger gain), ``L`` when it agrees more (a smaller gain, a
    copy of a neighbour), ``S`` when its score stays near one value (a stuck
    sensor, whose score then only follows its neighbours'; with
    ``k = 0.5``, ``S`` is about the log-likelihood ratio of a drop of the
    score's variance to a quarter). Sensor ``j`` alarms when
    ``max(U_j, L_j, S_j)`` exceeds ``threshold_[j]``.

    Calibration, by resampling the reference rows: the quantiles come from a
    random half of them, and ``n_simulations`` streams of
    ``ceil(1 / false_alarm_rate)`` rows, each row drawn with replacement
    from the *other* half (whole rows, so the dependence between sensors is
    kept; rows the quantiles were not taken from, like new rows), run
    through the CUSUMs; each sensor's threshold is the same
    upper quantile of its largest CUSUM over a stream, at the level where
    the share of streams with an alarm from any sensor is
    ``1 - exp(-1)``, the chance of at least one event in ``1 / rate`` rows
    at that rate. This treats rows as independent: on autocorrelated
    readings the false-alarm rate is higher than stated.

    Use as reference rows readings that were *not* used to fit the detector
    (a model scores its own training rows as more normal than new rows, so
    thresholds set on them raise too many false alarms), at least a few
    hundred of them. Missing readings (NaN) raise a ``ValueError``, as in
    ``feature_scores``: impute them first.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion import (DiffusionOutlierDetector, DriftMonitor,
    ...                                LocalizedDiffusionEstimator)
    >>> X = np.cumsum(np.random.default_rng(0).normal(size=(1200, 6)), axis=1)
    >>> est = LocalizedDiffusionEstimator(locality="chain", radius=1, shared=False,
    ...                                   hidden_layer_sizes=(16,), max_iter=200,
    ...                                   random_state=0)
    >>> det = DiffusionOutlierDetector(est, method="score_norm", n_levels=4).fit(X[:600])
    >>> monitor = DriftMonitor(det, false_alarm_rate=1e-3, random_state=0).fit(X[600:])
    >>> stream = np.cumsum(np.random.default_rng(1).normal(size=(200, 6)), axis=1)
    >>> stream[100:, 3] += 2.0  # sensor 3 drifts from row 100
    >>> result = monitor.update(stream)
    >>> result.is_drift, int(result.sensors[0]), result.alarm_row >= 100
    (True, 3, True)
    >>> monitor.features_to_refit()[:1]
    array([3])
    """

    _parameter_constraints = {
        "detector": [HasMethods(["feature_scores"])],
        "false_alarm_rate": [Interval(Real, 0, 0.5, closed="neither")],
        "slack": [Interval(Real, 0, None, closed="left")],
        "n_simulations": [Interval(Integral, 10, None, closed="left")],
        "random_state": ["random_state"],
    }

    #: Most quantiles kept per sensor.
    _max_quantiles = 1000

    def __init__(self, detector, *, false_alarm_rate=1e-3, slack=0.5, n_simulations=1000,
                 random_state=None):
        self.detector = detector
        self.false_alarm_rate = false_alarm_rate
        self.slack = slack
        self.n_simulations = n_simulations
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Standardize each sensor's scores on reference rows and calibrate the thresholds.

        Also starts the stream: the CUSUM sums are zero.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Reference rows, drawn as the stream should be when nothing has
            drifted, and not used to fit the detector; at least 20.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted monitor.
        """
        try:
            check_is_fitted(self.detector)
        except NotFittedError as error:
            raise NotFittedError(
                "DriftMonitor needs a fitted detector: fit it first (and wrap it in "
                "sklearn.frozen.FrozenEstimator to keep it fitted through clone)."
            ) from error
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=20)
        if X.shape[1] != self.detector.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the detector was fitted with "
                f"{self.detector.n_features_in_}."
            )
        scores = self._feature_scores(X)
        rng = check_random_state(self.random_state)
        # Quantiles from one half, calibration on the other: resampling the
        # rows the quantiles came from would give exactly normal scores, more
        # regular than new rows' (whose levels carry the quantiles' error), and
        # thresholds set on them raised ~30% more false alarms than stated.
        order = rng.permutation(len(X))
        own, other = order[: len(X) // 2], order[len(X) // 2:]
        m = min(len(own), self._max_quantiles)
        self.levels_ = (np.arange(m) + 0.5) / m
        self.quantiles_ = np.quantile(scores[own], self.levels_, axis=0)
        self.threshold_ = self._calibrate(self._standardize(scores[other]), rng)
        self.reset()
        return self

    def _feature_scores(self, X):
        # In pieces of ROW_MULTIPLE rows: the detector pads a piece to that
        # many, but rounds a longer piece differently (matrix kernels chosen
        # by row count, ~1e-9 relative), so a row's scores, and the monitor's
        # state, would depend on how the stream was cut into batches.
        names = getattr(self.detector, "feature_names_in_", None)
        if names is not None:  # the detector was fitted on a DataFrame
            import pandas as pd

        pieces = []
        for rows in chunks(len(X), ROW_MULTIPLE):
            piece = X[rows] if names is None else pd.DataFrame(X[rows], columns=names)
            pieces.append(np.asarray(self.detector.feature_scores(piece), dtype=np.float64))
        return np.concatenate(pieces)

    def _standardize(self, scores):
        # Rows (n, d) of feature scores -> standard normal scores, clipped to
        # the reference range (so one wild row adds a bounded amount).
        levels = np.empty_like(scores)
        for j in range(scores.shape[1]):
            levels[:, j] = np.interp(scores[:, j], self.quantiles_[:, j], self.levels_)
        return ndtri(levels)

    def _calibrate(self, u, rng):
        horizon = math.ceil(1.0 / self.false_alarm_rate)
        cusum = np.zeros((3, self.n_simulations, u.shape[1]))
        largest = np.zeros((self.n_simulations, u.shape[1]))
        for _ in range(horizon):
            cusum = self._step(cusum, u[rng.randint(len(u), size=self.n_simulations)])
            np.maximum(largest, cusum.max(axis=0), out=largest)
        target = 1.0 - math.exp(-self.false_alarm_rate * horizon)
        # Bisection on the per-sensor tail share q: each sensor's threshold is
        # its (1 - q) quantile, so every sensor gets the same share of alarms.
        low, high = 0.0, 1.0
        for _ in range(50):
            q = 0.5 * (low + high)
            threshold = np.quantile(largest, 1.0 - q, axis=0)
            if np.mean((largest > threshold).any(axis=1)) > target:
                high = q
            else:
                low = q
        return np.maximum(np.quantile(largest, 1.0 - low, axis=0), np.finfo(np.float64).eps)

    def _step(self, cusum, u):
        # cusum (3, ...) and u (...) -> the sums after one more row.
        increments = np.stack([u, -u, 1.0 - u * u])
        return np.maximum(cusum + increments - self.slack, 0.0)

    def standardized_scores(self, X):
        """Each sensor's standard normal score of each row, as the CUSUMs see it.

        ``ndtri`` of the quantile level of ``detector.feature_scores(X)``
        among the reference rows' scores of the same sensor: about
        ``N(0, 1)`` on rows like the reference rows, positive when a sensor
        disagrees with its neighbours more than usual.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._standardize(self._feature_scores(X))

    def update(self, X):
        """Feed the next rows of the stream; return where the monitor stands.

        The rows are not kept: only each sensor's three CUSUM sums, their peak and
        the row count change, so feeding rows in one batch or one by one
        gives the same state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The next rows of the stream, oldest first.

        Returns
        -------
        result : DriftResult
            ``is_drift``, the statistic and threshold per sensor, the
            sensors in alarm (most evident first) and the alarm row.
        """
        u = self.standardized_scores(X)
        cusum, peak = self.cusum_, self.peak_
        for i, row in enumerate(u):
            cusum = self._step(cusum, row)
            peak = np.maximum(peak, cusum.max(axis=0) / self.threshold_)
            if self.alarm_row_ is None and (peak > 1.0).any():
                self.alarm_row_ = self.n_rows_ + i
        self.cusum_, self.peak_ = cusum, peak
        self.n_rows_ += len(u)
        return self._result()

    def _result(self):
        sensors = self.features_to_refit()
        names = getattr(self, "feature_names_in_", None)
        return DriftResult(
            is_drift=self.alarm_row_ is not None,
            statistic=self.cusum_.max(axis=0),
            threshold=self.threshold_.copy(),
            sensors=sensors,
            names=None if names is None else names[sensors],
            alarm_row=self.alarm_row_,
            n_rows=self.n_rows_,
        )

    def reset(self):
        """Start again: CUSUM sums and peaks to zero, no alarm, no rows seen.

        Returns
        -------
        self : object
            The monitor, with its standardization and thresholds kept.
        """
        check_is_fitted(self, "threshold_")
        d = len(self.threshold_)
        self.cusum_, self.peak_ = np.zeros((3, d)), np.zeros(d)
        self.alarm_row_ = None
        self.n_rows_ = 0
        return self

    def features_to_refit(self, max_features=None):
        """The sensors in alarm, the most evident first: what to re-fit.

        Pass them to
        :meth:`~sklearn_diffusion.LocalizedDiffusionEstimator.refit_features`
        of ``detector.estimator_`` with recent rows (see the user guide,
        "Watching a stream for drift"), then fit the monitor again on
        reference rows recorded after the change.

        Parameters
        ----------
        max_features : int or None, default=None
            Return at most this many (None: all of them).

        Returns
        -------
        features : ndarray of int
            Indices of the sensors; empty when there is no alarm.
        """
        check_is_fitted(self)
        if max_features is not None and (
            not isinstance(max_features, Integral) or max_features < 1
        ):
            raise ValueError(f"max_features must be a positive int or None, got {max_features!r}.")
        alarmed = np.flatnonzero(self.peak_ > 1.0)
        order = alarmed[np.argsort(-self.peak_[alarmed], kind="stable")]
        return order[:max_features]
