"""Log-density through the probability-flow ODE (L3).

``log p(x) = log N(x_T; 0, I) - int_{t_min}^{T} (d + tr grad_x s(x_t, t)) dt``
along ``dx/dt = -x - s(x, t)`` started at ``x``. The integral is taken with
fixed RK4 steps uniform in ``log t`` (:mod:`sklearn_diffusion.ode`), row by row in effect (every
operation acts on rows independently), so a row's value never depends on its
batch-mates, and in fixed-size chunks so memory stays bounded.

The divergence comes from a ``score_div_fn(x, t) -> (score, divergence)``:
:func:`exact_divergence` (forward-mode Jacobian, ``d`` Jacobian-vector
products) for small ``d``, :func:`hutchinson_divergence` with probe vectors
fixed in advance otherwise, or a cheaper exact one supplied by a model whose
outputs each depend on few inputs.
"""

import math

import torch
from torch.func import jacfwd, jvp, vmap

from ._utils import chunks
from .ode import rk4_log_time

__all__ = ["exact_divergence", "hutchinson_divergence", "log_density"]


def exact_divergence(score_fn):
    """``(x, t) -> (score, tr grad_x score)`` with the exact Jacobian trace.

    Costs about ``d`` forward passes; use for small ``d``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import exact_divergence
    >>> s, div = exact_divergence(lambda x, t: -2 * x)(torch.randn(3, 4), torch.ones(3))
    >>> div.tolist()
    [-8.0, -8.0, -8.0]
    """

    def one_row(xi, ti):
        out = score_fn(xi[None], ti[None])[0]
        return out, out

    jacobian = vmap(jacfwd(one_row, has_aux=True))

    def score_div(x, t):
        jac, score = jacobian(x, t)
        return score, torch.diagonal(jac, dim1=1, dim2=2).sum(dim=1)

    return score_div


def hutchinson_divergence(score_fn, probes):
    """``(x, t) -> (score, estimate of tr grad_x score)`` with fixed probes.

    ``mean_k v_k^T J v_k`` over the rows ``v_k`` of ``probes`` (k, d), each row
    of ``x`` using the same probes: the estimate is deterministic and does not
    depend on batch-mates. Rademacher probes make it exact for diagonal
    Jacobians.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import hutchinson_divergence
    >>> probes = torch.tensor([[1.0, -1.0, 1.0]])
    >>> _, div = hutchinson_divergence(lambda x, t: -x, probes)(torch.randn(2, 3), torch.ones(2))
    >>> div.tolist()
    [-3.0, -3.0]
    """

    def score_div(x, t):
        total = 0.0
        for v in probes:
            tangent = v.expand_as(x)
            score, jv = jvp(lambda y: score_fn(y, t), (x,), (tangent,))
            total = total + (jv * tangent).sum(dim=1)
        return score, total / len(probes)

    return score_div


def _log_density_chunk(score_div_fn, x, t_min, t_max, n_steps):
    d = x.shape[1]

    def rates(state, t):
        x = state[0]
        score, div = score_div_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        return -x - score, d + div

    integral = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    x, integral = rk4_log_time(rates, (x, integral), t_min, t_max, n_steps)
    prior = -0.5 * (x**2).sum(dim=1) - 0.5 * d * math.log(2 * math.pi)
    return prior - integral


@torch.no_grad()
def log_density(score_div_fn, x, *, t_min, t_max, n_steps, chunk_size=2048):
    """Log-density of ``x_{t_min}`` at the rows of ``x`` (n, d); returns (n,).

    Parameters
    ----------
    score_div_fn : callable ``(x, t) -> (score, divergence)``
        See :func:`exact_divergence` and :func:`hutchinson_divergence`.
    x : Tensor of shape (n, d)
    t_min, t_max : float
        Integration range; the prior ``N(0, I)`` is used at ``t_max``.
    n_steps : int
        Number of RK4 steps.
    chunk_size : int
        Rows processed at once (does not change the result).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import exact_divergence, log_density
    >>> x = torch.zeros(1, 2)
    >>> lp = log_density(exact_divergence(lambda x, t: -x), x, t_min=1e-3, t_max=10.0, n_steps=8)
    >>> round(lp.item(), 4)  # log N(0; 0, I) in 2-D
    -1.8379
    """
    return torch.cat(
        [
            _log_density_chunk(score_div_fn, x[rows], t_min, t_max, n_steps)
            for rows in chunks(x.shape[0], chunk_size)
        ]
    )
