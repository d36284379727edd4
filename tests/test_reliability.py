"""Hostile input and faults (issue 12): each test failed on the code before it."""

import threading

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sklearn_diffusion import (
    BootstrappedScoreEstimator,
    DiffusionOutlierDetector,
    LocalizedDiffusionEstimator,
)
from sklearn_diffusion.training import TrainingDivergedError

FAST = dict(hidden_layer_sizes=(16,), max_iter=60, n_steps=4, random_state=0)
X = np.random.default_rng(0).normal(size=(120, 4))


def _same(a, b):
    return np.array_equal(a.score_samples(X), b.score_samples(X))


# ------------------------------------------------ 1. diverged training
@pytest.mark.parametrize(
    "estimator",
    [
        BootstrappedScoreEstimator(**{**FAST, "max_iter": 300}, learning_rate=1e6),
        LocalizedDiffusionEstimator(**{**FAST, "max_iter": 300}, radius=1, learning_rate=1e6),
        LocalizedDiffusionEstimator(**{**FAST, "max_iter": 300}, radius=1, learning_rate=1e6,
                                    early_stopping=False),
    ],
    ids=["bootstrapped", "localized", "localized-no-early-stopping"],
)
def test_diverged_training_raises(estimator):
    # With lr=1e6 the loss climbs to ~1e30 and stays finite: it must not
    # pass for a fitted model.
    with pytest.raises(TrainingDivergedError, match="diverged"):
        estimator.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)


def test_non_finite_weights_in_the_kept_model_raise(monkeypatch):
    from sklearn_diffusion import bootstrapped

    real = bootstrapped.BootstrappedScoreEstimator._fit_model

    def poisoned(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        with torch.no_grad():
            next(result.model.parameters()).fill_(float("nan"))
        return result

    monkeypatch.setattr(bootstrapped.BootstrappedScoreEstimator, "_fit_model", poisoned)
    with pytest.raises(TrainingDivergedError, match="weights"):
        BootstrappedScoreEstimator(**FAST).fit(X)


# ------------------------------------------------------ 2. atomic fits
@pytest.mark.parametrize("cls", [BootstrappedScoreEstimator, LocalizedDiffusionEstimator])
def test_failed_fit_leaves_the_estimator_as_it_was(cls):
    est = cls(**FAST)
    with pytest.raises(TrainingDivergedError):
        est.set_params(learning_rate=1e6, max_iter=300).fit(X)
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "mean_")
    est.set_params(learning_rate=1e-3, max_iter=60).fit(X)
    before, mean = est.score_samples(X), est.mean_
    # A refit on other data that fails must keep the old model *and* its scaling.
    with pytest.raises(TrainingDivergedError):
        est.set_params(learning_rate=1e6, max_iter=300).fit(10 * X + 5)
    assert est.mean_ is mean
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_keyboard_interrupt_is_a_failed_fit(monkeypatch):
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    before = est.score_samples(X)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(est, "_fit_model", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:50, :3])
    assert est.n_features_in_ == 4
    np.testing.assert_array_equal(est.score_samples(X), before)


# ---------------------------------------------------------- 3. far rows
@pytest.fixture(scope="module")
def fitted():
    return BootstrappedScoreEstimator(**FAST).fit(X)


def test_far_rows_get_a_low_density_never_nan(fitted):
    far = np.array([[1e39] * 4, [1e300] * 4, [-1e300, 0, 0, 0], [1e6] * 4])
    lp = fitted.score_samples(far)
    assert not np.isnan(lp).any()
    assert (lp < fitted.score_samples(X).min() - 1e6).all()
    assert np.isfinite(fitted.anomaly_score(far)).all()


@pytest.mark.parametrize("method", ["hybrid", "score_norm", "log_density"])
def test_detector_calls_far_rows_outliers(method):
    detector = DiffusionOutlierDetector(
        BootstrappedScoreEstimator(**FAST), method=method, n_levels=4
    ).fit(X)
    far = np.array([[1e39] * 4, [1e300] * 4, [3e38, 0, 0, 0]])
    assert not np.isnan(detector.decision_function(far)).any()
    assert (detector.predict(far) == -1).all()


# ---------------------------------------------------- 4. extreme scales
@pytest.mark.parametrize("scale", [1e-13, 1e155, 1e300])
def test_scale_equivariance_at_extreme_magnitudes(fitted, scale):
    # The density of c X is that of X minus d log c; samples scale by c.
    est = BootstrappedScoreEstimator(**FAST).fit(X * scale)
    np.testing.assert_allclose(
        est.score_samples(X[:5] * scale) + 4 * np.log(scale), fitted.score_samples(X[:5]),
        rtol=0, atol=1e-6,
    )
    np.testing.assert_allclose(
        est.sample(50, random_state=0) / scale, fitted.sample(50, random_state=0), rtol=1e-6
    )


def test_tiny_spread_around_a_large_mean(fitted):
    est = BootstrappedScoreEstimator(**FAST).fit(1e8 + 1e-5 * X)
    spread = (est.sample(200, random_state=0) - 1e8).std(axis=0)
    np.testing.assert_allclose(spread, 1e-5, rtol=0.3)


@pytest.mark.parametrize("X_bad", [X * 1e-300, np.vstack([X[:, :2] * 1e307, [[-1.7e308, 0]]])])
def test_unrepresentable_scales_are_a_clear_error(X_bad):
    with pytest.raises(ValueError, match="multiply X|divide X"):
        BootstrappedScoreEstimator(**FAST).fit(X_bad)


# ---------------------------------------------------- 5. parameter edges
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda est: est.sample(True), "n_samples"),
        (lambda est: est.sample(2.0), "n_samples"),
        (lambda est: est.anomaly_score(X, noise_range=(np.inf, np.inf)), "noise_range"),
        (lambda est: est.anomaly_score(X, noise_range=(np.nan, 1.0)), "noise_range"),
        (lambda est: est.anomaly_score(X, n_levels=True), "n_levels"),
    ],
)
def test_bad_call_arguments_name_the_parameter(fitted, call, name):
    with pytest.raises(ValueError, match=name):
        call(fitted)


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(t_min=1e-40), "t_min"),
        (dict(t_max=np.inf), "t_max"),
        (dict(learning_rate=np.nan), "learning_rate"),
        (dict(hidden_layer_sizes=(True,)), "hidden_layer_sizes"),
        (dict(bootstrap_window=(0.1, np.inf)), "bootstrap_window"),
    ],
)
def test_bad_settings_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=name):
        BootstrappedScoreEstimator(**{**FAST, **params}).fit(X)


# --------------------------------------------------------- 7. threads
def test_localized_inference_is_thread_safe():
    est = LocalizedDiffusionEstimator(**FAST, radius=1).fit(X)
    reference = est.score_samples(X)
    results, errors = [None] * 4, []

    def work(i):
        try:
            results[i] = est.score_samples(X)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        np.testing.assert_array_equal(result, reference)


# -------------------------------------------------- 8. defaults, small data
def test_radius_beyond_the_diameter_means_full_neighbourhoods():
    small = X[:, :3]
    full = LocalizedDiffusionEstimator(**FAST, radius=2).fit(small)
    beyond = LocalizedDiffusionEstimator(**FAST, radius=50).fit(small)
    assert [len(n) for n in beyond.neighbourhoods_] == [3, 3, 3]
    np.testing.assert_array_equal(beyond.score_samples(small), full.score_samples(small))


# --------------------------------------------------- 10. small things
def test_locality_as_dataframe_or_transposed_array():
    pd = pytest.importorskip("pandas")
    adjacency = np.eye(4, k=1) + np.eye(4, k=-1)
    reference = LocalizedDiffusionEstimator(**FAST, radius=1, locality=adjacency).fit(X)
    for locality in (pd.DataFrame(adjacency), np.asfortranarray(adjacency), adjacency.T):
        est = LocalizedDiffusionEstimator(**FAST, radius=1, locality=locality).fit(X)
        assert np.all(np.diag(est.distances_) == 0)
        np.testing.assert_array_equal(est.score_samples(X), reference.score_samples(X))
