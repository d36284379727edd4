"""The forward process against its closed forms."""

import torch

from sklearn_diffusion.schedules import (
    alpha,
    gaussian_log_density,
    gaussian_mixture_log_density,
    gaussian_mixture_score,
    gaussian_score,
    perturb,
    sample_times,
    sigma,
    time_grid,
)

D = torch.float64


def _gaussian(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=D)
    return torch.randn(d, generator=g, dtype=D), A @ A.T + 0.1 * torch.eye(d, dtype=D)


def test_variance_preserving():
    t = torch.linspace(0.0, 5.0, 11, dtype=D)
    torch.testing.assert_close(alpha(t) ** 2 + sigma(t) ** 2, torch.ones_like(t))


def test_perturbed_moments_match_marginal():
    # 200k draws: the standard error of a moment is about 0.003.
    g = torch.Generator().manual_seed(0)
    mean, cov = _gaussian()
    n, t = 200_000, 0.3
    x0 = mean + torch.randn(n, 3, generator=g, dtype=D) @ torch.linalg.cholesky(cov).T
    xt = perturb(x0, torch.full((n,), t, dtype=D), torch.randn(n, 3, generator=g, dtype=D))
    a, s = alpha(torch.tensor(t, dtype=D)), sigma(torch.tensor(t, dtype=D))
    torch.testing.assert_close(xt.mean(0), a * mean, atol=0.02, rtol=0)
    torch.testing.assert_close(
        torch.cov(xt.T), a**2 * cov + s**2 * torch.eye(3, dtype=D), atol=0.03, rtol=0.01
    )


def test_gaussian_score_is_gradient_of_log_density():
    mean, cov = _gaussian()
    x = torch.randn(5, 3, dtype=D, requires_grad=True)
    t = torch.rand(5, dtype=D) + 0.01
    (grad,) = torch.autograd.grad(gaussian_log_density(x, t, mean, cov).sum(), x)
    torch.testing.assert_close(gaussian_score(x.detach(), t, mean, cov), grad)


def test_gaussian_log_density_matches_torch_distribution():
    mean, cov = _gaussian()
    x, t = torch.randn(4, 3, dtype=D), torch.full((4,), 0.2, dtype=D)
    a, s = alpha(t[0]), sigma(t[0])
    ref = torch.distributions.MultivariateNormal(a * mean, a**2 * cov + s**2 * torch.eye(3, dtype=D))
    torch.testing.assert_close(gaussian_log_density(x, t, mean, cov), ref.log_prob(x))


def test_mixture_score_is_gradient_of_mixture_log_density():
    w = torch.tensor([0.3, 0.7], dtype=D)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=D)
    covs = torch.stack([torch.eye(2, dtype=D) * 0.2, torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=D)])
    x = torch.randn(6, 2, dtype=D, requires_grad=True)
    t = torch.rand(6, dtype=D) + 0.01
    (grad,) = torch.autograd.grad(gaussian_mixture_log_density(x, t, w, means, covs).sum(), x)
    torch.testing.assert_close(gaussian_mixture_score(x.detach(), t, w, means, covs), grad)


def test_time_grid_and_sampling_range():
    grid = time_grid(10, 1e-3, 10.0)
    assert grid.shape == (11,)
    torch.testing.assert_close(grid[[0, -1]], torch.tensor([1e-3, 10.0]))
    t = sample_times(1000, 1e-3, 10.0, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 1e-3 and t.max() <= 10.0
    # log-uniform: the median of log t is the midpoint of the log range (+- 0.3 for n=1000).
    assert abs(torch.log(t).median().item() - 0.5 * (torch.log(torch.tensor(1e-3)) + torch.log(torch.tensor(10.0))).item()) < 0.3
