"""Samplers: the probability-flow ODE and the reverse SDE on a fixed grid (L3).

Every sampler has one signature: ``sampler(score_fn, z, *, t_min, t_max,
n_steps, generator)`` where ``score_fn(x, t)`` returns the score (n, d) for
``x`` (n, d) and ``t`` (n,), and ``z`` (n, d) is the starting draw from the
prior ``N(0, I)`` at ``t_max``. The grid is uniform in ``log t``. With
``denoise=True`` a last Tweedie step ``E[x_0 | x_{t_min}] = (x + s^2 score) / a``
removes the noise left at ``t_min``; with ``denoise=False`` the sampler returns
``x_{t_min}`` itself, a draw of the density the likelihood integrates.
"""

import math

import torch

from .ode import rk4_log_time
from .schedules import alpha, sigma, time_grid

__all__ = ["probability_flow_ode", "reverse_sde", "tweedie_denoise", "SAMPLERS"]


def _full(x, value):
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


def tweedie_denoise(score_fn, x, t):
    """Posterior mean ``(x + s_t^2 score(x, t)) / a_t`` at scalar time ``t``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.sampling import tweedie_denoise
    >>> x = torch.randn(3, 2)
    >>> # standard Gaussian data: E[x_0 | x_t] = a_t x_t
    >>> out = tweedie_denoise(lambda x, t: -x, x, 0.5)
    >>> torch.allclose(out, x * torch.exp(torch.tensor(-0.5)))
    True
    """
    tt = _full(x, t)
    return (x + sigma(tt)[:, None] ** 2 * score_fn(x, tt)) / alpha(tt)[:, None]


@torch.no_grad()
def probability_flow_ode(score_fn, z, *, t_min, t_max, n_steps, generator=None, denoise=True):
    """Integrate ``dx/dt = -x - score(x, t)`` from ``t_max`` down to ``t_min``.

    RK4 steps uniform in ``log t`` (:func:`sklearn_diffusion.ode.rk4_log_time`).
    Deterministic: ``generator`` is accepted for the shared signature only.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.sampling import probability_flow_ode
    >>> z = torch.randn(4, 2)
    >>> x = probability_flow_ode(lambda x, t: -x, z, t_min=1e-3, t_max=5.0, n_steps=8)
    >>> x.shape
    torch.Size([4, 2])
    """

    def rates(state, t):
        x = state[0]
        return (-x - score_fn(x, _full(x, t)),)

    (x,) = rk4_log_time(rates, (z,), t_max, t_min, n_steps)
    return tweedie_denoise(score_fn, x, t_min) if denoise else x


@torch.no_grad()
def reverse_sde(score_fn, z, *, t_min, t_max, n_steps, generator, denoise=True):
    """Reverse-time SDE ``dx = [-x - 2 score] dt + sqrt(2) dW`` (exponential integrator).

    Over a step from ``t`` down to ``u = t - h`` the linear part is integrated
    exactly with the score frozen at ``t``:
    ``x_u = e^h x + 2 (e^h - 1) score + sqrt(e^{2h} - 1) xi``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.sampling import reverse_sde
    >>> g = torch.Generator().manual_seed(0)
    >>> x = reverse_sde(lambda x, t: -x, torch.randn(4, 2), t_min=1e-3, t_max=5.0,
    ...                 n_steps=8, generator=g)
    >>> x.shape
    torch.Size([4, 2])
    """
    grid = time_grid(n_steps, t_min, t_max, device=z.device).flip(0)
    x = z
    for t0, t1 in zip(grid[:-1].tolist(), grid[1:].tolist()):
        h = t0 - t1
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        score = score_fn(x, _full(x, t0))
        x = math.exp(h) * x + 2 * math.expm1(h) * score + math.sqrt(math.expm1(2 * h)) * noise
    return tweedie_denoise(score_fn, x, t_min) if denoise else x


#: Samplers by name, for the estimators' ``sampler`` parameter.
SAMPLERS = {"ode": probability_flow_ode, "sde": reverse_sde}
