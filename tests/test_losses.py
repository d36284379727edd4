"""DSM and bootstrap targets against closed forms."""

import torch

import math

import pytest

from sklearn_diffusion.losses import (bootstrap_loss, bootstrap_target,
                                      bridge_draws, dsm_loss, flow_matching_weight,
                                      variance_optimal_weights)
from sklearn_diffusion.networks import score_from_noise
from sklearn_diffusion.schedules import (alpha, flow_matching_times, gaussian_score,
                                         path_fraction, sigma)

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


def test_dsm_residual_variance_matches_closed_form():
    # DSM target noise minus the exact noise: variance a_t^2 v / m_t in noise units.
    v, t, n = 4.0, 0.5, 400_000
    f = _exact_noise_fn(v)
    x0, tt, hh, z1, z2 = _path(n, t, 0.0, v)
    x_t, noise = torch.exp(-tt)[:, None] * x0 + sigma(tt)[:, None] * z1, z1
    a2 = torch.exp(torch.tensor(-2 * t, dtype=D))
    predicted = a2 * v / (a2 * v + 1 - a2)
    torch.testing.assert_close((noise - f(x_t, tt)).var(0), predicted.expand(2), rtol=0.02, atol=0)


def test_bootstrap_loss_with_zero_weight_is_dsm():
    f = _exact_noise_fn(1.0)
    g = lambda x, t: 0.5 * f(x, t)  # noqa: E731
    x0, tt, hh, z1, z2 = _path(64, 0.3, 0.0, 1.0)
    bridge = torch.randn(4, 64, 2, generator=torch.Generator().manual_seed(1), dtype=D)
    boot = bootstrap_loss(g, f, x0, tt, hh, torch.zeros(64, dtype=D), z1, bridge)
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


def test_bridge_draws_follow_the_joint_law_of_the_path():
    # x_u drawn from the bridge given (x0, x_t) must have the law of the
    # forward path's x_u: jointly with x_t, covariance [[m_u, e^-h m_u], [., m_t]]
    # for x0 ~ N(0, v) (m_s = a_s^2 v + s_s^2).
    v, t, h, n = 2.0, 0.6, 0.2, 400_000
    x0, tt, hh, z1, _ = _path(n, t, h, v)
    x_t = torch.exp(-tt)[:, None] * x0 + sigma(tt)[:, None] * z1
    bridge = torch.randn(1, n, 2, dtype=D, generator=torch.Generator().manual_seed(5))
    x_u = bridge_draws(x0, x_t, tt, hh, bridge)[0]
    m = lambda s: math.exp(-2 * s) * v + 1 - math.exp(-2 * s)  # noqa: E731
    u = t - h
    # Sample variances of 4e5 draws: relative standard error ~0.2%; 1% tolerance.
    torch.testing.assert_close(x_u.var(0), torch.full((2,), m(u), dtype=D), rtol=0.01, atol=0)
    cov = (x_u * x_t).mean(0)
    torch.testing.assert_close(cov, torch.full((2,), math.exp(-h) * m(u), dtype=D),
                               rtol=0.01, atol=0)


def test_bridge_averaged_target_is_unbiased_with_less_variance():
    # With the exact noise at u, the bootstrapped target's residual around the
    # exact noise at t has mean zero whatever the number of draws, and its
    # variance falls with more draws (closed form in the research notes, 2.1).
    v, t, h, n = 1.0, 1.0, 0.15, 200_000
    f = _exact_noise_fn(v)
    x0, tt, hh, z1, _ = _path(n, t, h, v)
    x_t = torch.exp(-tt)[:, None] * x0 + sigma(tt)[:, None] * z1
    g = torch.Generator().manual_seed(7)
    residuals = [bootstrap_target(f, x0, x_t, tt, hh, torch.randn(k, n, 2, generator=g, dtype=D))
                 - f(x_t, tt) for k in (1, 8)]
    for r in residuals:
        assert r.mean(0).abs().max() < 5 * (r.var(0).max() / n) ** 0.5
    e2h, s2 = math.exp(2 * h), lambda s: 1 - math.exp(-2 * s)  # noqa: E731
    m = lambda s: math.exp(-2 * s) * v + s2(s)  # noqa: E731
    u = t - h
    within = e2h * s2(u) * s2(h) / (s2(t) * m(u) ** 2)
    between = e2h * math.exp(-2 * u) * s2(h) ** 2 * v / (s2(t) * m(u) ** 2 * m(t))
    for r, k in zip(residuals, (1, 8)):
        # In noise units (times s_t^2); 3% for the sampling error of 2e5 draws.
        predicted = s2(t) * (within / k + between)
        torch.testing.assert_close(r.var(0), torch.full((2,), predicted, dtype=D),
                                   rtol=0.03, atol=0)


@pytest.mark.parametrize("v", [0.1, 4.0])
@pytest.mark.parametrize("t", [0.05, 0.3, 1.0])
def test_variance_optimal_weight_matches_the_gaussian_closed_form(v, t):
    # w* = (V_D - C) / (V_D + V_B - 2C) with the DSM and K-draw bootstrap
    # variances and their (negative) covariance under N(0, v).
    step, k = 0.15, 8
    h, u = step * t, (1 - step) * t
    s2 = lambda s: 1 - math.exp(-2 * s)  # noqa: E731
    m = lambda s: math.exp(-2 * s) * v + s2(s)  # noqa: E731
    vd = math.exp(-2 * t) * v / (s2(t) * m(t))
    vb = (math.exp(2 * h) * s2(u) * s2(h) / (s2(t) * m(u) ** 2)) / k + (
        math.exp(2 * h) * math.exp(-2 * u) * s2(h) ** 2 * v / (s2(t) * m(u) ** 2 * m(t)))
    c = -math.exp(-2 * u) * v * s2(h) / (s2(t) * m(u) * m(t))
    expected = (vd - c) / (vd + vb - 2 * c)
    g = torch.Generator().manual_seed(0)
    x0 = v**0.5 * torch.randn(200_000, 1, generator=g, dtype=D)
    cov = v * torch.eye(1, dtype=D)
    zero = torch.zeros(1, dtype=D)
    exact = lambda x, s: -sigma(s)[:, None] * gaussian_score(x, s, zero, cov)  # noqa: E731
    w = variance_optimal_weights(x0, exact, torch.tensor([t * 0.999, t * 1.001], dtype=D), step,
                                 k, generator=g)
    # A Monte Carlo ratio of two means over 2e5 rows: 1e5 rows gave 0.018 off
    # at v = 0.1, t = 1 (the flattest case); 0.02 leaves room for seeds, not
    # for a wrong bridge or scale (the weight moves by 0.1 to 0.5 then).
    assert abs(w.item() - expected) < 0.02


def test_bootstrap_loss_blends_only_inside_rows():
    # Rows with weight 0 are DSM rows; with weight 1 the target is the bridge-averaged one.
    f = _exact_noise_fn(1.0)
    g = lambda x, t: 0.0 * x  # noqa: E731
    x0, tt, hh, z1, _ = _path(6, 0.5, 0.05, 1.0)
    bridge = torch.randn(3, 6, 2, generator=torch.Generator().manual_seed(2), dtype=D)
    weight = torch.tensor([0, 1, 0, 1, 0, 1], dtype=D)
    loss = bootstrap_loss(g, f, x0, tt, hh, weight, z1, bridge)
    x_t = torch.exp(-tt)[:, None] * x0 + sigma(tt)[:, None] * z1
    boot = bootstrap_target(f, x0, x_t, tt, hh, bridge)
    target = torch.where(weight[:, None] > 0, boot, z1)
    torch.testing.assert_close(loss, (target**2).mean())


def test_flow_matching_times_are_uniform_on_the_linear_path():
    g = torch.Generator().manual_seed(0)
    t = flow_matching_times(100_000, 1e-3, 10.0, generator=g).to(D)
    tau = path_fraction(t)
    lo, hi = (path_fraction(torch.tensor(v, dtype=D)).item() for v in (1e-3, 10.0))
    # Deciles of a uniform law on [lo, hi]: each holds 10% +- 0.3% (3 sd of 1e5 draws).
    edges = torch.linspace(lo, hi, 11, dtype=D)
    shares = torch.histc(tau, bins=10, min=lo, max=hi) / len(tau)
    assert (shares - 0.1).abs().max() < 0.003, (edges, shares)
    # x_t / (a_t + s_t) is the straight path at tau.
    x0, z = torch.randn(5, 2, dtype=D), torch.randn(5, 2, dtype=D)
    tt = t[:5]
    k = 1 / (alpha(tt) + sigma(tt))
    x_t = alpha(tt)[:, None] * x0 + sigma(tt)[:, None] * z
    tau5 = path_fraction(tt)[:, None]
    torch.testing.assert_close(k[:, None] * x_t, (1 - tau5) * x0 + tau5 * z)


def test_weighted_noise_loss_is_the_velocity_loss():
    # The noise error times flow_matching_weight equals the error of the
    # implied velocity (e - k x_t) / (a_t k) against z - x0, row by row.
    g = torch.Generator().manual_seed(1)
    x0, z = torch.randn(64, 3, generator=g, dtype=D), torch.randn(64, 3, generator=g, dtype=D)
    t = flow_matching_times(64, 1e-3, 5.0, generator=g).to(D)
    net = lambda x, s: 0.7 * x + 0.1 * torch.sin(x)  # noqa: E731  any noise predictor
    loss = dsm_loss(net, x0, t, z, row_weight=flow_matching_weight(t))
    a, s = alpha(t)[:, None], sigma(t)[:, None]
    k = 1 / (a + s)
    x_t = a * x0 + s * z
    velocity = (net(x_t, t) - k * x_t) / (a * k)
    torch.testing.assert_close(loss, ((velocity - (z - x0)) ** 2).mean())
