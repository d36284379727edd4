"""DriftMonitor: calibration, alarms per sensor, streaming state, validation."""

import dataclasses

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KernelDensity

from sklearn_diffusion import DiffusionOutlierDetector, DriftMonitor, LocalizedDiffusionEstimator

D = 8


def ring_precision(d=D, coupling=1.0):
    """Precision ``I + coupling * L`` of a ring's graph Laplacian ``L``."""
    i = np.arange(d)
    adjacency = np.zeros((d, d))
    adjacency[i, (i + 1) % d] = adjacency[(i + 1) % d, i] = 1
    return np.eye(d) + coupling * (np.diag(adjacency.sum(1)) - adjacency)


PRECISION = ring_precision()
COV = np.linalg.inv(PRECISION)


def field(n, seed):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(D), COV, size=n)


@pytest.fixture(scope="module")
def detector():
    est = LocalizedDiffusionEstimator(locality="ring", radius=1, hidden_layer_sizes=(16,),
                                      max_iter=300, random_state=0)
    return DiffusionOutlierDetector(est, method="score_norm", n_levels=4).fit(field(600, 0))


@pytest.fixture(scope="module")
def reference():
    return field(1000, 1)


def test_false_alarm_rate_on_fault_free_streams(detector, reference):
    # Nominal 1 false alarm per 100 rows; 12 fault-free streams of 1,000 rows
    # (12,000 rows, ~120 alarms expected, Poisson noise ~9%), each alarm
    # followed by a reset. Tolerance: a factor of 1.6 either way, for the
    # Poisson noise (2 sd: 18%) plus the calibration's own error from 1,000
    # reference rows (their empirical quantiles move the mean of the
    # standardized score by ~0.03, which moves a CUSUM's run length by ~30%).
    # Omitting the split over sensors (x8) or over the three sums would fail it.
    rate = 0.01
    monitor = DriftMonitor(detector, false_alarm_rate=rate, random_state=0).fit(reference)
    alarms = rows = 0
    for seed in range(12):
        stream = field(1000, 100 + seed)
        monitor.reset()
        start = 0
        while start < len(stream):
            chunk = stream[start:start + 100]
            result = monitor.update(chunk)
            start += len(chunk)
            if result.is_drift:  # alarm_row counts from the reset, in this chunk
                alarms += 1
                start += result.alarm_row + 1 - result.n_rows
                monitor.reset()
        rows += len(stream)
    observed = alarms / rows
    assert rate / 1.6 < observed < rate * 1.6, observed


def test_planted_offset_is_alarmed_and_named(detector, reference):
    monitor = DriftMonitor(detector, random_state=0).fit(reference)
    stream = field(400, 7)
    onset, sensor = 150, 5
    stream[onset:, sensor] += 2.0 / np.sqrt(PRECISION[sensor, sensor])  # 2 conditional sd
    before = monitor.update(stream[:onset])
    assert not before.is_drift
    result = monitor.update(stream[onset:])
    assert result.is_drift
    assert onset <= result.alarm_row < onset + 100
    assert result.sensors[0] == sensor
    assert monitor.features_to_refit(max_features=1).tolist() == [sensor]
    assert result.statistic.shape == result.threshold.shape == (D,)
    assert result.statistic[sensor] > result.threshold[sensor]
    assert result.n_rows == len(stream)


def test_batch_equals_one_by_one(detector, reference):
    stream = field(60, 11)
    stream[20:, 2] += 3.0  # so that the sums move and an alarm is raised
    batch = DriftMonitor(detector, random_state=0).fit(reference)
    single = clone(batch).set_params(detector=detector).fit(reference)
    batch.update(stream)
    for row in stream:
        single.update(row[None, :])
    for name in ("cusum_", "peak_", "alarm_row_", "n_rows_", "threshold_"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(single, name))
    assert batch.alarm_row_ is not None


def test_reset_and_reproducibility(detector, reference):
    a = DriftMonitor(detector, random_state=3).fit(reference)
    b = DriftMonitor(detector, random_state=3).fit(reference)
    c = DriftMonitor(detector, random_state=4).fit(reference)
    np.testing.assert_array_equal(a.threshold_, b.threshold_)
    assert not np.array_equal(a.threshold_, c.threshold_)
    shifted = field(50, 5) + 4.0
    assert a.update(shifted).is_drift
    a.reset()
    assert a.alarm_row_ is None and a.n_rows_ == 0 and not a.cusum_.any()
    assert a.features_to_refit().size == 0
    result = a.update(field(5, 6))
    assert dataclasses.asdict(result)["n_rows"] == 5


def test_feature_names_and_frozen_clone(detector, reference):
    pd = pytest.importorskip("pandas")
    columns = [f"s{j}" for j in range(D)]
    frozen = FrozenEstimator(detector)
    monitor = DriftMonitor(frozen, random_state=0)
    fitted = clone(monitor).fit(pd.DataFrame(reference, columns=columns))
    assert clone(monitor).get_params()["detector"] is frozen
    stream = field(100, 8)
    stream[:, 4] += 3.0
    result = fitted.update(pd.DataFrame(stream, columns=columns))
    assert result.names[0] == "s4"


def test_bad_input(detector, reference):
    monitor = DriftMonitor(detector, random_state=0)
    with pytest.raises(NotFittedError):
        monitor.update(reference[:5])
    monitor.fit(reference)
    bad = reference[:5].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        monitor.update(bad)
    with pytest.raises(ValueError, match="features"):
        monitor.update(reference[:5, :-1])
    with pytest.raises(ValueError, match="max_features"):
        monitor.features_to_refit(max_features=0)
    with pytest.raises(ValueError):
        DriftMonitor(detector).fit(reference[:5])  # too few reference rows
    with pytest.raises(ValueError, match="false_alarm_rate"):
        DriftMonitor(detector, false_alarm_rate=0.0).fit(reference)
    with pytest.raises(ValueError, match="detector"):
        DriftMonitor(KernelDensity()).fit(reference)  # no feature_scores
    with pytest.raises(NotFittedError, match="fitted detector"):
        DriftMonitor(clone(detector)).fit(reference)
    with pytest.raises(ValueError, match="diffusion estimator"):
        kde = DiffusionOutlierDetector(KernelDensity()).fit(reference)
        DriftMonitor(kde).fit(reference)
