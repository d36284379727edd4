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
    # The broad part's Student t tails: far below every training row, and
    # lower the farther the row (logarithmically, so finite).
    assert (lp < fitted.score_samples(X).min() - 50).all()
    assert lp[1] < lp[0] < lp[3] and np.isfinite(lp).all()
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


# ------------------------------------- 8. degenerate columns (issue 29)
SMALL = dict(hidden_layer_sizes=(16,), max_iter=60, n_steps=4, n_networks=1, random_state=0)


def test_a_constant_table_samples_its_only_row():
    row = np.array([0.126, -0.0045, 0.366])
    est = BootstrappedScoreEstimator(**SMALL).fit(np.tile(row, (100, 1)))
    np.testing.assert_array_equal(est.sample(20, random_state=0), np.tile(row, (20, 1)))
    np.testing.assert_array_equal(est.constant_values_, row)


@pytest.mark.parametrize("value", [-0.0045, 1e-6])
def test_a_constant_column_with_gaps_is_imputed_as_its_value(value):
    from sklearn_diffusion import DiffusionImputer

    Xc = np.random.default_rng(1).normal(size=(100, 3))
    Xc[:, 1] = value
    Xc[::2, 1] = np.nan
    filled = DiffusionImputer(BootstrappedScoreEstimator(**SMALL), n_samples=3,
                              random_state=0).fit(Xc).transform(Xc)
    assert np.all(filled[:, 1] == value)
    draws = BootstrappedScoreEstimator(**SMALL).fit(Xc).sample_conditional(
        Xc[:4], n_samples=2, random_state=0)
    assert np.all(draws[..., 1] == value)


def test_a_column_observed_once_warns_and_is_imputed_as_that_value():
    from sklearn_diffusion import DiffusionImputer

    Xc = np.random.default_rng(2).normal(size=(100, 3))
    Xc[1:, 0] = np.nan
    with pytest.warns(UserWarning, match=r"Column\(s\) \[0\] of X have a single observed value"):
        imputer = DiffusionImputer(BootstrappedScoreEstimator(**SMALL), n_samples=2,
                                   random_state=0).fit(Xc)
    assert np.all(imputer.transform(Xc)[:, 0] == Xc[0, 0])


def test_a_column_s_standardization_ignores_the_other_columns():
    # What lets refit_features match a full fit when another column gains NaN.
    from sklearn_diffusion._model_space import location_scale, observed_location_scale

    Xc = np.cumsum(np.random.default_rng(3).normal(size=(500, 6)), axis=1) * [1, 10, 1e3, 1, 2, 3]
    mean, scale = location_scale(Xc)
    gappy = Xc.copy()
    gappy[::3, 2] = np.nan
    for moments in (location_scale(Xc[:, [0, 1, 3, 4, 5]]), observed_location_scale(gappy)):
        keep = slice(None) if len(moments[0]) == 5 else [0, 1, 3, 4, 5]
        np.testing.assert_array_equal(moments[0][keep], mean[[0, 1, 3, 4, 5]])
        np.testing.assert_array_equal(moments[1][keep], scale[[0, 1, 3, 4, 5]])


# ----------------------------------- 9. posterior draws (issue 29, item 10)
def test_identical_rows_get_independent_posterior_draws():
    from sklearn_diffusion import DiffusionImputer

    imputer = DiffusionImputer(BootstrappedScoreEstimator(**SMALL), sample_posterior=True,
                               random_state=0).fit(X)
    filled = imputer.transform(np.full((50, 4), np.nan))
    assert len(np.unique(filled, axis=0)) == 50
    # A draw depends on the row's position, not on the other rows' values.
    rows = np.full((3, 4), np.nan)
    other = rows.copy()
    other[1] = X[0]
    assert np.array_equal(imputer.transform(rows)[[0, 2]], imputer.transform(other)[[0, 2]])
    # The mean fill stays a function of the row alone.
    mean_fill = DiffusionImputer(BootstrappedScoreEstimator(**SMALL), n_samples=2,
                                 random_state=0).fit(X).transform(np.full((3, 4), np.nan))
    assert len(np.unique(mean_fill, axis=0)) == 1
    with pytest.raises(ValueError, match="row_ids"):
        imputer.estimator_.sample_conditional(rows, row_ids=[0, 1])
