"""Anomaly scores (L3) and ``BaseDiffusionEstimator.anomaly_score``."""

import re
import warnings

import numpy as np
import pytest
import torch

from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion.anomaly import (
    anomaly_times,
    denoising_error,
    empirical_score_norm,
    score_norm,
)
from sklearn_diffusion.schedules import gaussian_mixture_score, gaussian_score

METHODS = ["denoising", "score_norm"]


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(300, 3))
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100, random_state=0)
    return est.fit(X), X


def test_exact_gaussian_denoising_error_mean():
    # With the exact score of N(0, I) data the noise prediction is s_t x_t, so
    # the error of level k is || s_k a_k x - a_k^2 z_k ||^2 with z_k fixed:
    # mean over rows s_k^2 a_k^2 d + a_k^4 ||z_k||^2. With 4000 rows the
    # sample mean is within 3 % of it (over 5 standard errors).
    g = torch.Generator().manual_seed(0)
    d = 4
    x = torch.randn(4000, d, generator=g)
    times = anomaly_times(2, 0.1, 1.0)
    noise = torch.randn(2, d, generator=g)
    exact = lambda y, t: gaussian_score(y, t, torch.zeros(d), torch.eye(d))  # noqa: E731
    err = denoising_error(exact, x, times, noise)
    a2 = torch.exp(-2 * times)
    expected = (a2 * (1 - a2) * d + a2**2 * (noise**2).sum(1)).mean().item()
    assert abs(err.mean().item() - expected) < 0.03 * expected


@pytest.mark.parametrize("method", METHODS)
def test_scores_deterministic_and_row_independent(fitted, method):
    est, X = fitted
    full = est.anomaly_score(X, method=method)
    assert full.shape == (len(X),) and full.dtype == np.float64
    np.testing.assert_array_equal(full, est.anomaly_score(X, method=method))
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(est.anomaly_score(X[order], method=method), full[order], rtol=1e-5)
    np.testing.assert_allclose(est.anomaly_score(X[:7], method=method), full[:7], rtol=1e-5)


def test_chunk_size_does_not_change_scores(fitted):
    est, X = fitted
    x = torch.as_tensor((X - est.mean_) / est.scale_, dtype=torch.float32)
    score_fn = est._score_fn(est.model_)
    times, noise = anomaly_times(4, 0.01, 1.0), torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    for fn, args in ((denoising_error, (times, noise)), (score_norm, (times,))):
        torch.testing.assert_close(fn(score_fn, x, *args, chunk_size=7), fn(score_fn, x, *args))


def test_same_seed_same_scores_and_far_rows_score_higher(fitted):
    est, X = fitted
    other = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100, random_state=0).fit(X)
    np.testing.assert_array_equal(est.anomaly_score(X[:5]), other.anomaly_score(X[:5]))
    far = est.anomaly_score(np.full((1, 3), 6.0))
    assert far[0] > np.max(est.anomaly_score(X))


def test_log_density_method_is_minus_score_samples(fitted):
    est, X = fitted
    np.testing.assert_allclose(est.anomaly_score(X[:4], method="log_density"), -est.score_samples(X[:4]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="nope"), "method must be"),
        (dict(n_levels=0), "n_levels"),
        (dict(noise_range=(1.0, 0.1)), "noise_range"),
        (dict(noise_range=(0.1,)), "noise_range"),
    ],
)
def test_bad_arguments(fitted, kwargs, match):
    est, X = fitted
    with pytest.raises(ValueError, match=match):
        est.anomaly_score(X, **kwargs)


def test_bad_input(fitted):
    est, X = fitted
    with pytest.raises(ValueError):
        est.anomaly_score(X[:, :2])
    with pytest.raises(ValueError):
        est.anomaly_score(np.full((2, 3), np.nan))


def test_near_discrete_data_warns_and_continuous_does_not():
    rng = np.random.default_rng(0)
    integers = rng.integers(1, 6, size=(100, 2)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dequantized (the default), integers are continuous
        BootstrappedScoreEstimator(hidden_layer_sizes=(8,), max_iter=5,
                                   random_state=0).fit(integers)
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(8,), max_iter=5, dequantize=False,
                                     random_state=0)
    with pytest.warns(UserWarning, match="near-discrete") as record:
        est.fit(integers)
    # the suggested floor (printed to 2 digits) puts the noise at a fifth of the gap
    floor = float(re.search(r"t_min >= ([0-9.e-]+)", str(record[0].message)).group(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.set_params(t_min=floor * 1.1).fit(integers)
        est.set_params(t_min=1e-3).fit(rng.normal(size=(100, 2)))


# ---------------------------------------------------------------- empirical


def test_empirical_score_norm_is_score_norm_of_the_noised_rows():
    # The noised rows are a Gaussian mixture with zero component covariance:
    # its exact score (schedules.gaussian_mixture_score, an independent
    # implementation by responsibilities) through score_norm must agree.
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(30, 3, generator=g, dtype=torch.float64)
    x = 2 * torch.randn(20, 3, generator=g, dtype=torch.float64)
    times = anomaly_times(6, 0.01, 2.0).double()
    weights = torch.full((30,), 1 / 30, dtype=torch.float64)
    covs = torch.zeros(30, 3, 3, dtype=torch.float64)
    def exact_score(y, t):
        return gaussian_mixture_score(y, t, weights, reference, covs)

    exact = score_norm(exact_score, x, times)
    np.testing.assert_allclose(empirical_score_norm(x, reference, times), exact, rtol=1e-9)


def test_empirical_score_norm_midpoint_and_far_rows():
    reference = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    times = anomaly_times(4, 0.01, 1.0)
    s = empirical_score_norm(torch.tensor([[0.0, 0.0], [0.0, 3.0], [0.0, 6.0]]), reference, times)
    assert s[0] == 0  # the kernel mean of two symmetric rows is their midpoint
    assert s[2] > s[1] > 0


def test_empirical_leave_one_out_drops_exactly_one_copy():
    g = torch.Generator().manual_seed(1)
    reference = torch.randn(12, 2, generator=g, dtype=torch.float64)
    times = anomaly_times(5, 0.001, 1.0)
    # a reference row scored leaving one out = scored against the others
    loo = empirical_score_norm(reference[:3], reference, times, leave_one_out=True)
    for i in range(3):
        others = torch.cat([reference[:i], reference[i + 1:]])
        np.testing.assert_allclose(loo[i], empirical_score_norm(reference[i:i + 1], others, times),
                                   rtol=1e-12)
    # with a duplicate, one copy stays: as against the reference without it
    doubled = torch.cat([reference, reference[:1]])
    np.testing.assert_allclose(
        empirical_score_norm(reference[:1], doubled, times, leave_one_out=True),
        empirical_score_norm(reference[:1], reference, times), rtol=1e-12)
    # rows with no copy are unaffected, and a lone reference row is kept
    new = torch.randn(4, 2, generator=g, dtype=torch.float64)
    np.testing.assert_array_equal(empirical_score_norm(new, reference, times, leave_one_out=True),
                                  empirical_score_norm(new, reference, times))
    assert torch.isfinite(empirical_score_norm(reference[:1], reference[:1], times,
                                               leave_one_out=True)).all()


def test_empirical_score_norm_row_independent():
    g = torch.Generator().manual_seed(2)
    reference = torch.randn(50, 4, generator=g, dtype=torch.float64)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    times = anomaly_times(8, 0.001, 1.0)
    full = empirical_score_norm(x, reference, times, leave_one_out=True)
    perm = torch.randperm(40, generator=g)
    np.testing.assert_array_equal(
        empirical_score_norm(x[perm], reference, times, leave_one_out=True), full[perm])
    np.testing.assert_array_equal(
        empirical_score_norm(x, reference, times, leave_one_out=True, chunk_size=7), full)
    np.testing.assert_array_equal(
        empirical_score_norm(x[5:6], reference, times, leave_one_out=True), full[5:6])
