"""Per-column Gaussianization and the smoothed density built on it."""

import math

import numpy as np
import pytest
import torch

from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._selection import smoothing_candidates
from sklearn_diffusion.likelihood import broad_log_density, exact_divergence, hutchinson_divergence
from sklearn_diffusion.marginals import degaussianize, fit_gaussianizer, gaussianize
from sklearn_diffusion.networks import ScoreMLP


def _columns(n=400, seed=0):
    # Bounded, skewed and bimodal columns, standardized.
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.uniform(size=n),
        rng.exponential(size=n),
        np.where(rng.uniform(size=n) < 0.5, -2, 2) + 0.3 * rng.normal(size=n),
    ])
    return (X - X.mean(0)) / X.std(0)


@pytest.fixture(scope="module")
def knots():
    return fit_gaussianizer(_columns(), generator=torch.Generator().manual_seed(0))


def test_round_trip(knots):
    X = _columns(seed=1)
    Z, _ = gaussianize(X, *knots[:2])
    np.testing.assert_allclose(degaussianize(Z, *knots[:2]), X, atol=1e-9)


def test_log_jacobian_matches_finite_differences(knots):
    # The map is linear between knots, so a central difference with a step
    # far below the knot spacing is exact up to rounding.
    X = _columns(n=50, seed=2)
    eps = 1e-7
    _, log_jac = gaussianize(X, *knots[:2])
    numeric = np.zeros(len(X))
    for j in range(X.shape[1]):
        step = np.zeros(X.shape[1])
        step[j] = eps
        up, _ = gaussianize(X + step, *knots[:2])
        down, _ = gaussianize(X - step, *knots[:2])
        numeric += np.log((up[:, j] - down[:, j]) / (2 * eps))
    np.testing.assert_allclose(log_jac, numeric, rtol=1e-5, atol=1e-5)


def test_marginal_density_integrates_to_one(knots):
    # With a standard normal in z, column j has density phi(g(x)) g'(x).
    x = np.linspace(-80, 80, 400001)
    for j in range(3):
        X = np.zeros((len(x), 3))
        X[:, j] = x
        Z, _ = gaussianize(X, *knots[:2])
        slope = np.gradient(Z[:, j], x)
        density = np.exp(-0.5 * Z[:, j] ** 2) / math.sqrt(2 * math.pi) * slope
        assert abs(np.trapezoid(density, x) - 1) < 2e-3


def test_maps_are_normal_and_far_rows_finite(knots):
    X = _columns(n=4000, seed=3)
    Z, _ = gaussianize(X, *knots[:2])
    # The maps come from 400 rows: new rows are normal up to that sampling error.
    np.testing.assert_allclose(Z.mean(0), 0, atol=0.2)
    np.testing.assert_allclose(Z.std(0), 1, atol=0.2)
    far = np.array([[1e3, -1e3, 1e6]])
    Z, log_jac = gaussianize(far, *knots[:2])
    assert np.all(np.isfinite(Z)) and np.isfinite(log_jac).all()
    # Beyond the data the map continues the Gaussian tails of unit width.
    np.testing.assert_allclose(np.abs(Z[0, :2]), 1e3, rtol=0.05)


def test_bandwidth_choice_matches_a_direct_leave_one_out_search():
    # The squaring recursion against one logsumexp per bandwidth in float64.
    from scipy.special import logsumexp

    from sklearn_diffusion.marginals import BANDWIDTHS, WEIGHTS, _loo_select

    rng = np.random.default_rng(4)
    for v in (rng.normal(size=300), np.round(rng.exponential(size=300), 1)):
        sq = (v[:, None] - v[None, :]) ** 2
        sq[sq == 0] = np.inf
        best, choice = -np.inf, None
        for h in BANDWIDTHS:
            log_kde = logsumexp(-0.5 * sq / h**2, axis=1) - np.log(h * (len(v) - 1) * np.sqrt(2 * np.pi))
            for w in WEIGHTS:
                log_normal = -0.5 * v**2 - 0.5 * np.log(2 * np.pi)
                score = np.logaddexp(np.log1p(-w) + log_kde, np.log(w) + log_normal).mean()
                if score > best:
                    best, choice = score, (h, w)
        assert _loo_select(v, WEIGHTS) == choice


def test_normal_quantiles_match_log_space_reference_far_into_the_tails():
    from scipy.special import log_ndtr, logsumexp, ndtri_exp

    from sklearn_diffusion.marginals import _normal_quantiles

    rng = np.random.default_rng(5)
    ref = rng.normal(size=200)
    x = np.concatenate([np.linspace(-70, 70, 301), ref[:20]])
    for h, w in [(0.05, 0.01), (1.0, 1 - 1e-6)]:
        u = (x[:, None] - ref[None, :]) / h
        tails = [
            np.logaddexp(np.log1p(-w) + logsumexp(log_ndtr(s * u), axis=1) - np.log(len(ref)),
                         np.log(w) + log_ndtr(s * x))
            for s in (1, -1)
        ]
        expected = np.where(tails[0] < tails[1], ndtri_exp(tails[0]), -ndtri_exp(tails[1]))
        z = _normal_quantiles(x, ref, h, w)
        np.testing.assert_allclose(z, expected, rtol=1e-9, atol=1e-9)
        assert np.all(np.diff(z[:301]) > 0)


def test_constant_column_is_standardized():
    X = np.column_stack([np.zeros(50), np.linspace(-1, 1, 50)])
    knots = fit_gaussianizer(X, generator=torch.Generator().manual_seed(0))
    Z, _ = gaussianize(np.array([[0.5, 0.0]]), *knots[:2])
    assert abs(Z[0, 0] - 0.5) < 1e-6


def test_smoothed_density_of_exact_gaussian_score():
    # An untrained network is the exact score of N(0, I); smoothed at s the
    # density is that of x + sqrt(e^{2s} - 1) xi, i.e. N(0, e^{2s} I).
    est = BootstrappedScoreEstimator(max_iter=5, column_transform="standardize", random_state=0)
    est.fit(np.random.default_rng(0).normal(size=(40, 3)))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for s in (1e-3, 0.1, 0.4):
        lp = torch.from_numpy(est._model_log_density(z.numpy(), ScoreMLP(3), s, "cpu"))
        var = math.exp(2 * s)
        smooth = -0.5 * (z**2).sum(1) / var - 1.5 * math.log(2 * math.pi * var)
        # ... mixed with the broad Student t part of the returned density.
        broad = torch.as_tensor(broad_log_density(z.double().numpy()))
        w = est._broad_weight
        exact = torch.logaddexp(math.log1p(-w) + smooth, math.log(w) + broad)
        torch.testing.assert_close(lp, exact, rtol=0, atol=5e-4)


def test_auto_smoothing_is_the_best_candidate_on_held_out_rows():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(size=300), rng.normal(size=300)])
    est = BootstrappedScoreEstimator(
        hidden_layer_sizes=(32,), max_iter=200, random_state=0
    ).fit(X)
    held_out = np.column_stack([rng.uniform(size=100), rng.normal(size=100)])
    Z, _ = est._to_model_space(held_out)
    chosen, scores = est._select_smoothing(Z)
    candidates = smoothing_candidates(est.t_min, est._max_smoothing, est._n_smoothing_candidates)
    assert len(scores) == len(candidates) and chosen in candidates
    # The same comparison through the public score on the user's scale (the
    # column transform's log-Jacobian is the same for every candidate).
    public = []
    for s in candidates:
        est.smoothing_ = float(s)
        public.append(est.score(held_out))
    assert candidates[int(np.argmax(public))] == chosen
    assert est.smoothing_scores_.shape == candidates.shape


def test_exact_and_hutchinson_divergences_agree_in_expectation():
    weight = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))

    def score_fn(x, t):
        return torch.tanh(x @ weight) * t[:, None]

    x, t = torch.randn(4, 5), torch.full((4,), 0.7)
    _, exact = exact_divergence(score_fn, 5)(x, t)
    probes = torch.randint(0, 2, (20000, 5), generator=torch.Generator().manual_seed(1)) * 2.0 - 1
    _, estimate = hutchinson_divergence(score_fn, probes)(x, t)
    # Rademacher probes: the variance per probe is at most 2 ||J||_F^2, a
    # few units here, so 20,000 probes leave a standard error near 0.02.
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.1)


def test_golden_section_search_finds_the_peak_of_any_unimodal_sequence():
    from sklearn_diffusion._selection import unimodal_argmax

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 20))
        peak = int(rng.integers(0, n))
        rise = np.cumsum(rng.uniform(0.01, 1, peak + 1))
        values = np.concatenate([rise, rise[-1] - np.cumsum(rng.uniform(0.01, 1, n - peak - 1))])
        seen = []
        assert unimodal_argmax(lambda i: seen.append(i) or values[i], n) == peak
        if n == 14:
            assert len(set(seen)) <= 7
    # A plateau at the top: the lowest index of it.
    assert unimodal_argmax(lambda i: min(i, 5), 14) == 5
