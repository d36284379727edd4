"""Log-density and divergences against closed forms."""

import pytest
import torch

from sklearn_diffusion.likelihood import exact_divergence, hutchinson_divergence, log_density
from sklearn_diffusion.schedules import gaussian_log_density, gaussian_score, gaussian_mixture_log_density, gaussian_mixture_score

D = torch.float64
T_MIN, T_MAX = 1e-3, 10.0


def _gaussian():
    cov = torch.tensor([[2.0, 0.8, 0.0], [0.8, 0.5, 0.1], [0.0, 0.1, 1.0]], dtype=D)
    return torch.tensor([1.0, -1.0, 0.5], dtype=D), cov


def _draw(mean, cov, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return mean + torch.randn(n, len(mean), generator=g, dtype=D) @ torch.linalg.cholesky(cov).T


def test_exact_gaussian_score_gives_exact_log_density():
    mean, cov = _gaussian()
    x = _draw(mean, cov, 50)
    score_fn = lambda x, t: gaussian_score(x, t, mean, cov)  # noqa: E731
    lp = log_density(score_fn, exact_divergence(score_fn, x.shape[1]), x, t_min=T_MIN, t_max=T_MAX, n_steps=16)
    truth = gaussian_log_density(x, torch.full((50,), T_MIN, dtype=D), mean, cov)
    # 16 RK4 steps in log-time: about 1e-4 nats on this target.
    assert (lp - truth).abs().max() < 1e-3


def test_exact_mixture_score_gives_exact_log_density():
    w = torch.tensor([0.4, 0.6], dtype=D)
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5]], dtype=D)
    covs = torch.stack([0.3 * torch.eye(2, dtype=D), torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=D)])
    x = torch.cat([_draw(means[0], covs[0], 50), _draw(means[1], covs[1], 50, seed=1)])
    score_fn = lambda x, t: gaussian_mixture_score(x, t, w, means, covs)  # noqa: E731
    lp = log_density(score_fn, exact_divergence(score_fn, x.shape[1]), x, t_min=T_MIN, t_max=T_MAX, n_steps=32)
    truth = gaussian_mixture_log_density(x, torch.full((100,), T_MIN, dtype=D), w, means, covs)
    # The mixture's score bends more in time than a Gaussian's: 32 steps for 1e-2.
    assert (lp - truth).abs().max() < 1e-2


def test_divergences_agree():
    mean, cov = _gaussian()
    score_fn = lambda x, t: gaussian_score(x, t, mean, cov)  # noqa: E731
    x, t = _draw(mean, cov, 7), torch.full((7,), 0.05, dtype=D)
    _, exact = exact_divergence(score_fn, 3)(x, t)
    truth = -torch.diagonal(torch.linalg.inv(torch.exp(-2 * t[0]) * cov + (1 - torch.exp(-2 * t[0])) * torch.eye(3, dtype=D))).sum()
    torch.testing.assert_close(exact, truth.expand(7))
    # All 2^3 Rademacher probes average v v^T to the identity: the estimate is exact.
    signs = torch.tensor([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=D)
    _, hutch = hutchinson_divergence(score_fn, signs)(x, t)
    torch.testing.assert_close(hutch, exact)


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_rows_do_not_depend_on_batch_mates(chunk_size):
    mean, cov = _gaussian()
    score_fn = lambda x, t: gaussian_score(x, t, mean, cov)  # noqa: E731
    x = _draw(mean, cov, 10)
    ref = log_density(score_fn, exact_divergence(score_fn, x.shape[1]), x, t_min=T_MIN, t_max=T_MAX, n_steps=8)
    lp = log_density(score_fn, exact_divergence(score_fn, x.shape[1]), x.flip(0), t_min=T_MIN, t_max=T_MAX, n_steps=8, chunk_size=chunk_size)
    torch.testing.assert_close(lp.flip(0), ref)


def test_a_wild_row_costs_logarithmically_in_the_defended_density():
    # The broad part's Student t coordinates: a row 1,000 standard deviations
    # off in one coordinate costs about (nu + 1) log(1000) nats there, where
    # N(0, I) would cost 500,000.
    import math

    import numpy as np
    from scipy.stats import t

    from sklearn_diffusion.likelihood import broad_log_density, smoothed_log_density

    score_fn = lambda x, t_: -x  # noqa: E731 - the exact score of N(0, I)
    Z = np.array([[0.0, 0.0], [1000.0, 0.0]])
    lp = smoothed_log_density(score_fn, exact_divergence(score_fn, 2), Z, smoothing=1e-3,
                              t_max=10.0, n_steps=8, chunk_size=16, broad_weight=1e-3,
                              far=1e4, device="cpu")
    np.testing.assert_allclose(lp[1], math.log(1e-3) + t(3).logpdf(Z[1]).sum(), rtol=1e-9)
    assert -40 < lp[1] < -20
    np.testing.assert_allclose(broad_log_density(Z), t(3).logpdf(Z).sum(axis=1), rtol=1e-12)


def test_samples_of_the_broad_part_follow_its_student_t_law():
    import numpy as np
    from scipy.stats import kstest

    from sklearn_diffusion import BootstrappedScoreEstimator

    X = np.random.default_rng(0).normal(size=(100, 2))
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(8,), max_iter=2, n_networks=1,
                                     column_transform="standardize", sample_domain="real",
                                     random_state=0).fit(X)
    est._broad_weight = 1.0  # every row from the broad part
    Z = (est.sample(4000, random_state=0) - est.mean_) / est.scale_
    # 4,000 draws: a KS p-value below 1e-3 would mean another law.
    assert kstest(Z.ravel(), "t", args=(3,)).pvalue > 1e-3
    assert kstest(Z.ravel(), "norm").pvalue < 1e-3
