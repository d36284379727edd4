"""DSM and bootstrap targets against closed forms."""

import torch

from sklearn_diffusion.losses import bootstrap_loss, bootstrap_noise_target, dsm_loss, noising_path
from sklearn_diffusion.networks import score_from_noise
from sklearn_diffusion.schedules import gaussian_score, sigma

D = torch.float64


def _exact_noise_fn(v):
    # Data N(0, v I): the exact noise predictor is -s_t * score.
    cov = v * torch.eye(2, dtype=D)
    return lambda x, t: -sigma(t)[:, None] * gaussian_score(x, t, torch.zeros(2, dtype=D), cov)


def _path(n, t, h, v, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = v**0.5 * torch.randn(n, 2, generator=g, dtype=D)
    tt, hh = torch.full((n,), t, dtype=D), torch.full((n,), h, dtype=D)
    z1, z2 = torch.randn(n, 2, generator=g, dtype=D), torch.randn(n, 2, generator=g, dtype=D)
    return x0, tt, hh, z1, z2


def test_bootstrap_residual_has_mean_zero_and_predicted_variance():
    # With the exact lower score, boot_target - exact_noise(x_t) has mean zero and
    # per-coordinate variance s_t^2 (e^{2h} - 1) / (m_u m_t) in noise units
    # (DESIGN.md's score-variance formula times s_t^2).
    v, t, h, n = 4.0, 0.5, 0.1, 400_000
    f = _exact_noise_fn(v)
    x0, tt, hh, z1, z2 = _path(n, t, h, v)
    x_u, x_t, _ = noising_path(x0, tt, hh, z1, z2)
    residual = bootstrap_noise_target(f(x_u, tt - hh), tt, hh) - f(x_t, tt)
    m = lambda s: torch.exp(torch.tensor(-2 * s, dtype=D)) * v + 1 - torch.exp(torch.tensor(-2 * s, dtype=D))  # noqa: E731
    predicted = sigma(torch.tensor(t, dtype=D)) ** 2 * (torch.exp(torch.tensor(2 * h, dtype=D)) - 1) / (m(t - h) * m(t))
    # Standard error of the mean: sqrt(var / n) ~ 2e-4; 5 standard errors.
    assert residual.mean(0).abs().max() < 5 * (predicted / n) ** 0.5
    torch.testing.assert_close(residual.var(0), predicted.expand(2), rtol=0.02, atol=0)


def test_dsm_residual_variance_matches_closed_form():
    # DSM target noise minus the exact noise: variance a_t^2 v / m_t in noise units.
    v, t, n = 4.0, 0.5, 400_000
    f = _exact_noise_fn(v)
    x0, tt, hh, z1, z2 = _path(n, t, 0.0, v)
    _, x_t, noise = noising_path(x0, tt, torch.zeros_like(tt), z1, z2)
    a2 = torch.exp(torch.tensor(-2 * t, dtype=D))
    predicted = a2 * v / (a2 * v + 1 - a2)
    torch.testing.assert_close((noise - f(x_t, tt)).var(0), predicted.expand(2), rtol=0.02, atol=0)


def test_bootstrap_loss_with_zero_weight_is_dsm():
    f = _exact_noise_fn(1.0)
    g = lambda x, t: 0.5 * f(x, t)  # noqa: E731
    x0, tt, hh, z1, z2 = _path(64, 0.3, 0.0, 1.0)
    boot = bootstrap_loss(g, f, x0, tt, hh, torch.zeros(64, dtype=D), z1, z2)
    torch.testing.assert_close(boot, dsm_loss(g, x0, tt, z1))


def test_columns_select_predicted_coordinates():
    f = lambda x, t: x[:, :1]  # noqa: E731
    x0, tt, _, z1, _ = _path(8, 0.3, 0.0, 1.0)
    full = lambda x, t: x  # noqa: E731
    torch.testing.assert_close(
        dsm_loss(f, x0, tt, z1, columns=[0]),
        ((full(x0 * torch.exp(-tt)[:, None] + sigma(tt)[:, None] * z1, tt) - z1)[:, 0] ** 2).mean(),
    )


def test_score_from_noise():
    t = torch.full((3,), 0.4, dtype=D)
    e = torch.randn(3, 2, dtype=D)
    torch.testing.assert_close(score_from_noise(e, t), -e / sigma(t)[:, None])
