"""The forward (noising) process and its closed forms (L1).

Ornstein-Uhlenbeck process ``dX = -X dt + sqrt(2) dW`` started at the data:
``x_t = a_t x_0 + s_t z`` with ``a_t = exp(-t)``, ``s_t^2 = 1 - exp(-2t)`` and
``z ~ N(0, I)``; its stationary law ``N(0, I)`` is the prior. Everything works
on rows: ``x`` has shape (n, d) and ``t`` has shape (n,).
"""

import math

import torch

__all__ = [
    "alpha",
    "sigma",
    "perturb",
    "time_grid",
    "sample_times",
    "path_fraction",
    "flow_matching_times",
    "gaussian_marginal",
    "gaussian_score",
    "gaussian_log_density",
    "gaussian_mixture_score",
    "gaussian_mixture_log_density",
]


def alpha(t):
    """Signal coefficient ``a_t = exp(-t)``; ``t`` is a tensor of any shape.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import alpha
    >>> alpha(torch.tensor([0.0])).item()
    1.0
    """
    return torch.exp(-t)


def sigma(t):
    """Noise scale ``s_t = sqrt(1 - exp(-2t))``; ``t`` is a tensor of any shape.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import sigma
    >>> round(sigma(torch.tensor([10.0])).item(), 6)
    1.0
    """
    return torch.sqrt(-torch.expm1(-2.0 * t))


def perturb(x0, t, z):
    """Noised rows ``a_t x0 + s_t z``: ``x0``, ``z`` of shape (n, d), ``t`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import perturb
    >>> perturb(torch.ones(2, 3), torch.zeros(2), torch.randn(2, 3)).sum().item()
    6.0
    """
    return alpha(t)[:, None] * x0 + sigma(t)[:, None] * z


def time_grid(n_steps, t_min, t_max, *, device="cpu"):
    """``n_steps + 1`` times from ``t_min`` to ``t_max``, uniform in ``log t``.

    A grid uniform in ``log t`` puts the steps where the score changes fastest
    (small noise), so a fixed-step integrator needs few of them.

    Examples
    --------
    >>> from sklearn_diffusion.schedules import time_grid
    >>> time_grid(2, 0.01, 1.0).tolist()
    [0.009999999776482582, 0.10000000149011612, 1.0]
    """
    return torch.logspace(
        math.log10(t_min), math.log10(t_max), n_steps + 1, device=device
    )


def sample_times(n, t_min, t_max, *, generator, device="cpu"):
    """``n`` training times drawn log-uniformly on ``[t_min, t_max]``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import sample_times
    >>> t = sample_times(5, 1e-3, 8.0, generator=torch.Generator().manual_seed(0))
    >>> bool(((t >= 1e-3) & (t <= 8.0)).all())
    True
    """
    u = torch.rand(n, generator=generator, device=device)
    return t_min * (t_max / t_min) ** u


def path_fraction(t):
    """Time ``tau = s_t / (a_t + s_t)`` of the linear path that matches OU time ``t``.

    ``x_t / (a_t + s_t) = (1 - tau) x_0 + tau z``: the OU marginal at ``t``,
    rescaled by ``k_t = 1 / (a_t + s_t)``, is the straight-line (rectified
    flow) interpolation at ``tau``, so a model of one is a model of the other.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import path_fraction
    >>> [round(v, 4) for v in path_fraction(torch.tensor([1e-8, 20.0])).tolist()]
    [0.0001, 1.0]
    """
    a, s = alpha(t), sigma(t)
    return s / (a + s)


def flow_matching_times(n, t_min, t_max, *, generator, device="cpu"):
    """``n`` OU times whose linear-path times :func:`path_fraction` are uniform.

    Conditional flow matching draws ``tau`` uniformly; the OU time of
    ``tau`` is ``log(1 + r^2) / 2`` with ``r = tau / (1 - tau)`` (since
    ``s_t / a_t = sqrt(e^{2t} - 1)``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import flow_matching_times
    >>> t = flow_matching_times(5, 1e-3, 8.0, generator=torch.Generator().manual_seed(0))
    >>> bool(((t >= 1e-3) & (t <= 8.0)).all())
    True
    """
    lo, hi = (float(path_fraction(torch.tensor(v, dtype=torch.float64))) for v in (t_min, t_max))
    tau = lo + (hi - lo) * torch.rand(n, generator=generator, device=device)
    ratio = tau / (1 - tau)
    return (0.5 * torch.log1p(ratio**2)).clamp(t_min, t_max)


def gaussian_marginal(mean, cov, t):
    """Mean and covariance of ``x_t`` when ``x_0 ~ N(mean, cov)``, at scalar ``t``.

    Returns ``(a_t mean, a_t^2 cov + s_t^2 I)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import gaussian_marginal
    >>> m, C = gaussian_marginal(torch.zeros(2), torch.eye(2), 0.5)
    >>> torch.allclose(C, torch.eye(2))
    True
    """
    t = torch.as_tensor(t, dtype=cov.dtype)
    a, s = alpha(t), sigma(t)
    return a * mean, a**2 * cov + s**2 * torch.eye(cov.shape[0], dtype=cov.dtype)


def _eigen_marginal(x, t, mean, cov):
    # In the eigenbasis of cov the marginal covariance is diagonal:
    # a_t^2 lambda + s_t^2. Cheaper than a solve per row and safe under vmap.
    lam, vecs = torch.linalg.eigh(cov)
    a, s = alpha(t)[:, None], sigma(t)[:, None]
    var = a**2 * lam + s**2
    proj = (x - a * mean) @ vecs
    return proj, var, vecs


def gaussian_score(x, t, mean, cov):
    """Exact score of ``x_t`` when ``x_0 ~ N(mean, cov)``.

    ``-(a_t^2 C + s_t^2 I)^{-1} (x - a_t mean)`` for ``x`` (n, d) and ``t`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import gaussian_score
    >>> x = torch.randn(4, 2)
    >>> s = gaussian_score(x, torch.ones(4), torch.zeros(2), torch.eye(2))
    >>> torch.allclose(s, -x)
    True
    """
    proj, var, vecs = _eigen_marginal(x, t, mean, cov)
    return -(proj / var) @ vecs.T


def gaussian_log_density(x, t, mean, cov):
    """Exact log-density of ``x_t`` at ``x`` (n, d) when ``x_0 ~ N(mean, cov)``.

    Examples
    --------
    >>> import math, torch
    >>> from sklearn_diffusion.schedules import gaussian_log_density
    >>> lp = gaussian_log_density(torch.zeros(1, 1), torch.ones(1), torch.zeros(1), torch.eye(1))
    >>> round(lp.item(), 6) == round(-0.5 * math.log(2 * math.pi), 6)
    True
    """
    proj, var, _ = _eigen_marginal(x, t, mean, cov)
    d = x.shape[1]
    return -0.5 * ((proj**2 / var).sum(1) + torch.log(var).sum(1) + d * math.log(2 * math.pi))


def _component_log_densities(x, t, weights, means, covs):
    return torch.stack(
        [
            torch.log(w) + gaussian_log_density(x, t, m, c)
            for w, m, c in zip(weights, means, covs)
        ],
        dim=1,
    )


def gaussian_mixture_log_density(x, t, weights, means, covs):
    """Exact log-density of ``x_t`` for a Gaussian-mixture ``x_0``.

    ``weights`` (k,), ``means`` (k, d), ``covs`` (k, d, d); ``x`` (n, d), ``t`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import gaussian_mixture_log_density, gaussian_log_density
    >>> x, t = torch.randn(3, 2), torch.ones(3)
    >>> w, m, C = torch.tensor([1.0]), torch.zeros(1, 2), torch.eye(2)[None]
    >>> torch.allclose(gaussian_mixture_log_density(x, t, w, m, C),
    ...                gaussian_log_density(x, t, m[0], C[0]))
    True
    """
    return torch.logsumexp(_component_log_densities(x, t, weights, means, covs), dim=1)


def gaussian_mixture_score(x, t, weights, means, covs):
    """Exact score of ``x_t`` for a Gaussian-mixture ``x_0``.

    The component scores weighted by their posterior responsibilities.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.schedules import gaussian_mixture_score
    >>> x, t = torch.randn(3, 2), torch.ones(3)
    >>> s = gaussian_mixture_score(x, t, torch.tensor([1.0]), torch.zeros(1, 2), torch.eye(2)[None])
    >>> torch.allclose(s, -x)
    True
    """
    resp = torch.softmax(_component_log_densities(x, t, weights, means, covs), dim=1)
    scores = torch.stack(
        [gaussian_score(x, t, m, c) for m, c in zip(means, covs)], dim=1
    )
    return (resp[:, :, None] * scores).sum(dim=1)
