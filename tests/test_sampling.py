"""Samplers against closed forms: the exact score must reproduce the data law."""

import pytest
import torch

from sklearn_diffusion.sampling import SAMPLERS
from sklearn_diffusion.schedules import gaussian_score

D = torch.float64


@pytest.mark.parametrize("name, n_steps", [("ode", 16), ("sde", 200)])
def test_exact_score_reproduces_gaussian(name, n_steps):
    mean = torch.tensor([1.0, -2.0], dtype=D)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=D)
    score_fn = lambda x, t: gaussian_score(x, t, mean, cov)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20_000, 2, generator=g, dtype=D)
    x = SAMPLERS[name](score_fn, z, t_min=1e-3, t_max=10.0, n_steps=n_steps, generator=g)
    # 20k draws: standard errors about 0.007 (mean) and 0.01 (covariance);
    # the SDE's first-order steps add a small bias, hence 0.05.
    torch.testing.assert_close(x.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.05, rtol=0)


def test_ode_is_deterministic_and_rowwise():
    score_fn = lambda x, t: -x / (0.25 * torch.exp(-2 * t) + 1 - torch.exp(-2 * t))[:, None]  # noqa: E731
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    ode = SAMPLERS["ode"]
    full = ode(score_fn, z, t_min=1e-3, t_max=10.0, n_steps=8)
    part = ode(score_fn, z[2:4], t_min=1e-3, t_max=10.0, n_steps=8)
    torch.testing.assert_close(full[2:4], part)
    # Data N(0, 0.25 I): the flow maps z to sqrt(m) z at t_min, m = 0.25 a^2 + s^2,
    # and Tweedie's step multiplies by (1 - s^2 / m) / a.
    t = torch.tensor(1e-3, dtype=D)
    a2, s2 = torch.exp(-2 * t), -torch.expm1(-2 * t)
    m = 0.25 * a2 + s2
    torch.testing.assert_close(full, m.sqrt() * (1 - s2 / m) / a2.sqrt() * z, atol=1e-3, rtol=0)
