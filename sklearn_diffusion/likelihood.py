"""Log-density through the probability-flow ODE (L3).

``log p(x) = log N(x_T; 0, I) - int_{t_min}^{T} (d + tr grad_x s(x_t, t)) dt``
along ``dx/dt = -x - s(x, t)`` started at ``x``. The path is taken with
fixed RK4 steps uniform in ``log t`` (:mod:`sklearn_diffusion.ode`) and the
integral with Simpson's rule on that grid, row by row in effect (every
operation acts on rows independently), so a row's value never depends on its
batch-mates, and in fixed-size chunks so memory stays bounded.

The divergence comes from a ``score_div_fn(x, t) -> (score, divergence)``:
:func:`exact_divergence` (``d`` vector-Jacobian products) for small ``d``, :func:`hutchinson_divergence` with probe vectors
fixed in advance otherwise, or a cheaper exact one supplied by a model whose
outputs each depend on few inputs.
"""

import math
import warnings

import numpy as np
import torch

from ._utils import map_chunks, to_tensor
from .ode import rk4_log_time_path

__all__ = [
    "probe_divergence", "exact_divergence", "hutchinson_divergence", "log_density",
    "smoothed_log_density", "broad_log_density", "BROAD_DOF",
]


def probe_divergence(score_fn, probes, scale):
    """``(x, t) -> (score, scale * sum_k v_k^T J v_k)`` over the rows ``v_k`` of ``probes``.

    ``J`` is the Jacobian of the score at each row. All probes go through one
    forward and one backward pass on ``k`` stacked copies of the rows
    (reverse-mode ``v^T J`` is about three forward passes, where
    ``torch.func.jvp`` cost about seven here). Every row uses the same probes
    and rows never mix, so a row's value does not depend on its batch-mates.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import probe_divergence
    >>> _, div = probe_divergence(lambda x, t: -2 * x, torch.eye(3), 1.0)(torch.randn(2, 3), torch.ones(2))
    >>> div.tolist()
    [-6.0, -6.0]
    """

    def score_div(x, t):
        n, k = x.shape[0], probes.shape[0]
        with torch.enable_grad():
            xs = x.detach().repeat(k, 1).requires_grad_(True)
            score = score_fn(xs, t.repeat(k))
            v = probes.to(device=x.device, dtype=x.dtype).repeat_interleave(n, dim=0)
            (vjp,) = torch.autograd.grad(score, xs, grad_outputs=v)
        terms = (vjp * v).sum(dim=1).view(k, n)
        # Add probe by probe: a vectorized reduction over the probe axis may
        # change its order with n, and with it the last bits of a row's value.
        div = terms[0]
        for term in terms[1:]:
            div = div + term
        return score[:n].detach(), scale * div

    return score_div


def exact_divergence(score_fn, n_features):
    """``(x, t) -> (score, tr grad_x score)``, the exact trace (``d`` probes ``e_i``).

    Costs about ``3 d`` forward passes; use for small ``d``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import exact_divergence
    >>> s, div = exact_divergence(lambda x, t: -2 * x, 4)(torch.randn(3, 4), torch.ones(3))
    >>> div.tolist()
    [-8.0, -8.0, -8.0]
    """
    return probe_divergence(score_fn, torch.eye(n_features), 1.0)


def hutchinson_divergence(score_fn, probes):
    """``(x, t) -> (score, estimate of tr grad_x score)`` with fixed probes.

    ``mean_k v_k^T J v_k`` over the rows ``v_k`` of ``probes`` (k, d): the
    estimate is deterministic. Rademacher probes make it exact for diagonal
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
    return probe_divergence(score_fn, probes, 1.0 / probes.shape[0])


def _simpson_weights(n_steps):
    # Composite Simpson weights (times h / 3) on n_steps + 1 points, n_steps even.
    w = [2.0 if i % 2 == 0 else 4.0 for i in range(n_steps + 1)]
    w[0] = w[-1] = 1.0
    return w


def _log_density_chunk(score_div_fn, score_fn, x, t_min, t_max, n_steps):
    d = x.shape[1]
    n_steps += n_steps % 2
    h = (math.log(t_max) - math.log(t_min)) / n_steps

    def full(t):
        return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)

    def rates(state, t):
        return (-state[0] - score_fn(state[0], full(t)),)

    # The path is integrated with RK4 on the score alone; the divergence,
    # the costly part, is needed only at the grid times (Simpson's rule in
    # log t, same order as RK4): n_steps + 1 divergences instead of 4 n_steps.
    integral = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    path = rk4_log_time_path(rates, (x,), t_min, t_max, n_steps)
    for weight, (t, (x_t,)) in zip(_simpson_weights(n_steps), path):
        _, div = score_div_fn(x_t, full(t))
        integral = integral + (weight * h / 3 * t) * (d + div)
    prior = -0.5 * (x_t**2).sum(dim=1) - 0.5 * d * math.log(2 * math.pi)
    return prior - integral


@torch.no_grad()
def log_density(score_fn, score_div_fn, x, *, t_min, t_max, n_steps, chunk_size=2048):
    """Log-density of ``x_{t_min}`` at the rows of ``x`` (n, d); returns (n,).

    The path ``x_t`` is integrated with RK4 steps uniform in ``log t`` and the
    divergence integral with Simpson's rule on the same grid, so the costly
    divergence is taken ``n_steps + 1`` times only.

    Parameters
    ----------
    score_fn : callable ``(x, t) -> score``
    score_div_fn : callable ``(x, t) -> (score, divergence)``
        See :func:`exact_divergence` and :func:`hutchinson_divergence`.
    x : Tensor of shape (n, d)
    t_min, t_max : float
        Integration range; the prior ``N(0, I)`` is used at ``t_max``.
    n_steps : int
        Number of RK4 steps (rounded up to an even number for Simpson's rule).
    chunk_size : int
        Rows processed at once (does not change the result).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.likelihood import exact_divergence, log_density
    >>> x = torch.zeros(1, 2)
    >>> score_fn = lambda x, t: -x
    >>> lp = log_density(score_fn, exact_divergence(score_fn, 2), x, t_min=1e-3, t_max=10.0, n_steps=8)
    >>> round(lp.item(), 4)  # log N(0; 0, I) in 2-D
    -1.8379
    """
    return map_chunks(
        lambda part: _log_density_chunk(score_div_fn, score_fn, part, t_min, t_max, n_steps),
        x,
        chunk_size,
    )


def smoothed_log_density(score_fn, score_div_fn, Z, *, smoothing, t_max, n_steps, chunk_size,
                         broad_weight, far, device):
    """Log-density (float64 numpy) of the rows ``Z`` (n, d) smoothed at ``smoothing``, defended.

    ``log p_s(a_s z) + d log a_s`` is the density of
    ``x_0 + sqrt(e^{2s} - 1) xi`` (``x_s / a_s``), a Gaussian smoothing of
    the data like a kernel density's bandwidth. It is mixed with weight
    ``broad_weight`` with the heavy-tailed :func:`broad_log_density` (in
    float64): at most
    ``-log(1 - broad_weight)`` nats on any row, and a bound on the cost of a
    row the network finds impossible. Rows with a coordinate beyond ``far``
    get the broad part alone (the float32 network would overflow on them,
    and its part there is below float32's range anyway), as do rows whose
    network density is not finite, with a warning. Returns finite values or
    ``-inf`` (a row with an infinite coordinate), never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.likelihood import exact_divergence, smoothed_log_density
    >>> score_fn = lambda x, t: -x
    >>> lp = smoothed_log_density(score_fn, exact_divergence(score_fn, 1), np.zeros((1, 1)),
    ...                           smoothing=1e-3, t_max=10.0, n_steps=8, chunk_size=16,
    ...                           broad_weight=1e-3, far=1e4, device="cpu")
    >>> round(float(lp[0]), 2)  # log N(0; 0, 1), nearly
    -0.92
    """
    log_a = -smoothing
    far_rows = ~(np.abs(Z) <= far).all(axis=1)
    with torch.no_grad():
        lp = log_density(
            score_fn, score_div_fn,
            to_tensor(np.where(far_rows[:, None], 0.0, Z), device) * math.exp(log_a),
            t_min=smoothing, t_max=t_max, n_steps=n_steps, chunk_size=chunk_size,
        )
    lp = lp.cpu().numpy().astype(np.float64) + Z.shape[1] * log_a
    broken = ~np.isfinite(lp) & ~far_rows
    if broken.any():
        warnings.warn(
            f"The network's log-density is not finite on {int(broken.sum())} row(s); they "
            "get the density of the broad part of the mixture alone.",
            RuntimeWarning,
        )
    lp[far_rows | broken] = -np.inf
    w = broad_weight
    return np.logaddexp(math.log1p(-w) + lp, math.log(w) + broad_log_density(Z))


#: Degrees of freedom of the broad part's Student t coordinates.
BROAD_DOF = 3


def broad_log_density(Z):
    """Log-density (float64) of the rows ``Z`` (n, d) under the broad part of the defended density.

    Independent Student t coordinates with ``BROAD_DOF`` = 3 degrees of
    freedom (variance 3): a row far from every training row costs about
    ``2 log |z|`` nats per coordinate instead of ``z^2 / 2`` under
    ``N(0, I)``, so one wild row (a sensor reading a thousand standard
    deviations off) cannot dominate a mean log-likelihood. Finite for any
    finite row.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.likelihood import broad_log_density
    >>> from scipy.stats import t
    >>> Z = np.array([[0.0, 1.0], [3.0, -1e6]])
    >>> np.allclose(broad_log_density(Z), t(3).logpdf(Z).sum(axis=1), rtol=1e-12)
    True
    >>> bool(np.isfinite(broad_log_density(np.array([[1e200, 0.0]]))[0]))  # where z^2 overflows
    True
    """
    nu = BROAD_DOF
    const = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    with np.errstate(divide="ignore"):
        # log(1 + z^2 / nu) without overflowing z^2.
        tail = np.logaddexp(0.0, 2 * np.log(np.abs(Z)) - math.log(nu))
    return Z.shape[1] * const - 0.5 * (nu + 1) * tail.sum(axis=1)
