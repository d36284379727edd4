"""Training objectives: denoising and time-bootstrapped score matching (L2).

Both losses regress a noise predictor ``e(x_t, t)`` (score ``-e / s_t``) onto a
target noise, which is what keeps targets O(1) at every noise level.

* Denoising score matching (DSM): the target is the noise that made ``x_t``
  from ``x_0``.
* Time bootstrapping (Kumar, Nagaraj, Sarkar, arXiv:2502.10354): for the OU
  step from ``u`` to ``t = u + h``, ``s_t(y) = e^h E[s_u(X_u) | X_t = y]``, so
  the model's own (frozen) score at ``u``, averaged over draws of ``x_u``
  from the bridge between ``x_0`` and ``x_t`` (Rao-Blackwellization: the
  same conditional mean, less variance), is an unbiased target at ``t``. It
  is mixed with the DSM target, whose error is negatively correlated with
  it, with the weight of least variance (a control-variate coefficient,
  as in Kahouli et al., arXiv:2512.20003, and Duston and Bui-Thanh,
  arXiv:2601.01594), computed per noise level by
  :func:`variance_optimal_weights` under a law whose score is known exactly.

Either target can be regressed as a noise (score matching) or as a velocity
of the linear path ``(1 - tau) x_0 + tau z`` (conditional flow matching,
Lipman et al., arXiv:2210.02747; Liu et al., arXiv:2209.03003): on a
Gaussian path the velocity is affine in the noise,
``v = (e - k_t x_t) / (a_t k_t)`` with ``k_t = 1 / (a_t + s_t)``, so the
flow-matching loss is the noise loss weighted by ``1 / (a_t k_t)^2`` per row
(:func:`flow_matching_weight`) with ``tau`` drawn uniformly. Bootstrapping
carries over unchanged: the bootstrapped velocity target is the
bootstrapped noise target through the same affine map.
"""

import torch

from .schedules import alpha, perturb, sigma

__all__ = [
    "bridge_draws", "bootstrap_noise_target", "bootstrap_target",
    "variance_optimal_weights", "flow_matching_weight", "regression_loss", "dsm_loss",
    "bootstrap_loss",
]


def bridge_draws(x0, x_t, t, h, noise):
    """Draws of ``x_u`` (``u = t - h``) given both ends ``x0`` and ``x_t`` of one OU path.

    The OU bridge is Gaussian: mean ``a_u x0 + (s_u^2 e^{-h} / s_t^2) (x_t - a_t x0)``
    and variance ``s_u^2 s_h^2 / s_t^2`` per coordinate. ``x0``, ``x_t`` are
    (n, d), ``t``, ``h`` (n,) with ``0 <= h < t``, and ``noise`` (k, n, d)
    standard normal draws; returns (k, n, d).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import bridge_draws
    >>> x0, x_t = torch.zeros(2, 3), torch.ones(2, 3)
    >>> t, h = torch.ones(2), torch.zeros(2)  # u = t: the bridge ends at x_t
    >>> torch.allclose(bridge_draws(x0, x_t, t, h, torch.randn(4, 2, 3)), x_t.expand(4, 2, 3))
    True
    """
    u = t - h
    s_t2 = -torch.expm1(-2.0 * t)
    a_u, s_u2 = alpha(u)[:, None], -torch.expm1(-2.0 * u)
    pull = (s_u2 * torch.exp(-h) / s_t2)[:, None]
    std = torch.sqrt(s_u2 * -torch.expm1(-2.0 * h) / s_t2)[:, None]
    mean = a_u * x0 + pull * (x_t - alpha(t)[:, None] * x0)
    return mean + std * noise


def bootstrap_noise_target(lower_noise, t, h):
    """Noise target at ``t`` from a noise prediction ``e_u`` at ``u = t - h``.

    The score target ``e^h s_u = -e^h e_u / s_u`` written as a noise:
    ``s_t e^h e_u / s_u``. Shapes: ``lower_noise`` (n, d), ``t`` and ``h`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import bootstrap_noise_target
    >>> e = torch.randn(3, 2)
    >>> torch.allclose(bootstrap_noise_target(e, torch.ones(3), torch.zeros(3)), e)
    True
    """
    u = t - h
    return (sigma(t) * torch.exp(h) / sigma(u))[:, None] * lower_noise


def regression_loss(noise_fn, x_t, t, target, columns=None, mask=None, row_weight=None):
    """Mean squared error between ``noise_fn(x_t, t)`` and ``target[:, columns]``.

    ``columns`` (default: all) names the coordinates the network predicts, so a
    local sub-model that sees a block with its halo is trained on its core only.
    ``mask`` (n, d), 1 at observed entries and 0 at missing ones (default: all
    observed), restricts the mean to the observed entries: the target of a
    missing entry is unknown, so it must not pull the network (MissDiff,
    Ouyang, Xie, Li, Cheng, "MissDiff: Training Diffusion Models on Tabular
    Data with Missing Values", arXiv:2307.00467). ``row_weight`` (n,)
    multiplies each row's squared error (default: 1, see
    :func:`flow_matching_weight`).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import regression_loss
    >>> regression_loss(lambda x, t: x, torch.ones(2, 2), torch.ones(2), torch.zeros(2, 2)).item()
    1.0
    """
    if columns is not None:
        target = target[:, columns]
        mask = None if mask is None else mask[:, columns]
    squared = (noise_fn(x_t, t) - target) ** 2
    if row_weight is not None:
        squared = squared * row_weight[:, None]
    if mask is None:
        return torch.mean(squared)
    return (squared * mask).sum() / mask.sum().clamp(min=1.0)


def flow_matching_weight(t):
    """Row weight ``1 / (a_t k_t)^2 = (1 + s_t / a_t)^2`` turning a noise error into a velocity error.

    With ``k_t = 1 / (a_t + s_t)`` and ``tau`` its linear-path time
    (:func:`~sklearn_diffusion.schedules.path_fraction`), the velocity
    implied by a noise prediction ``e`` at ``x_t`` is ``(e - k_t x_t) / (1 - tau)``,
    ``1 - tau = a_t k_t``, and the conditional velocity ``z - x_0`` is the
    same map of the noise ``z``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import flow_matching_weight
    >>> flow_matching_weight(torch.tensor([0.0])).item()
    1.0
    """
    return (1.0 + sigma(t) / alpha(t)) ** 2


def dsm_loss(noise_fn, x0, t, noise, columns=None, mask=None, row_weight=None):
    """Denoising score matching: ``mean || e(a_t x0 + s_t z, t) - z ||^2``.

    Equal to the score loss ``|| s(x_t, t) + z / s_t ||^2`` weighted by ``s_t^2``.
    ``mask`` restricts the mean to observed entries and ``row_weight``
    weighs rows (see :func:`regression_loss`).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import dsm_loss
    >>> x0, z, t = torch.zeros(3, 2), torch.randn(3, 2), torch.ones(3)
    >>> # for x0 = 0 the noise is x_t / s_t exactly
    >>> from sklearn_diffusion.schedules import sigma
    >>> dsm_loss(lambda x, t: x / sigma(t)[:, None], x0, t, z).item() < 1e-10
    True
    """
    x_t = alpha(t)[:, None] * x0 + sigma(t)[:, None] * noise
    return regression_loss(noise_fn, x_t, t, noise, columns, mask, row_weight)


def bootstrap_target(target_noise_fn, x0, x_t, t, h, bridge_noise):
    """Bootstrapped noise target at ``t``: the frozen prediction at ``u = t - h``, bridge-averaged.

    ``s_t e^h / s_u`` times the mean of ``target_noise_fn(x_u, u)`` over the
    ``k`` draws of ``x_u`` from the bridge (:func:`bridge_draws` with
    ``bridge_noise`` of shape (k, n, d)), without gradient. With the exact
    noise at ``u`` its conditional mean given ``x_t`` is the exact noise at
    ``t``; averaging over ``k`` bridge draws removes most of the variance of
    one draw (for ``N(0, 1)`` data, ``t = 1`` and a step of 0.15, the
    variance of 8 draws is 5.8 times below one draw's, as ``tests/test_losses.py``
    checks against the closed form).

    Returns
    -------
    target : Tensor of shape (n, p)
        ``p`` is the output width of ``target_noise_fn``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import bootstrap_target
    >>> from sklearn_diffusion.schedules import sigma
    >>> exact = lambda x, t: sigma(t)[:, None] * x  # the noise of N(0, I), the same at every t
    >>> x_t, t, h = torch.randn(3, 2), torch.ones(3), torch.full((3,), 0.1)
    >>> target = bootstrap_target(exact, torch.randn(3, 2), x_t, t, h, torch.randn(64, 3, 2))
    >>> target.shape
    torch.Size([3, 2])
    """
    k, n, d = bridge_noise.shape
    x_u = bridge_draws(x0, x_t, t, h, bridge_noise).reshape(k * n, d)
    u = (t - h).repeat(k)
    with torch.no_grad():
        lower = target_noise_fn(x_u, u)
        lower = lower.reshape(k, n, lower.shape[-1]).mean(0)
    return bootstrap_noise_target(lower, t, h)


def variance_optimal_weights(x0, source_noise_fn, t_edges, step, n_draws, *, generator,
                             columns=None):
    """Weight of the bootstrapped target of least variance, per bin of noise levels.

    For a target ``w B + (1 - w) D`` (``B`` bootstrapped, ``D`` the DSM
    noise) the error ``D - w (D - B) - e`` is smallest at
    ``w = E<D - e, D - B> / E|D - B|^2``; when ``B`` comes from the exact
    noise ``e`` of the law of ``x0``, ``E[D - B | x_t] = 0`` and the
    numerator is ``E<D, D - B>``, so the weight needs no knowledge of ``e``
    at ``t``. Both expectations are Monte Carlo means over the rows ``x0``
    (drawn from that law), one time per row log-uniform in its bin, and
    ``n_draws`` bridge draws, as in training; the weight is clipped to
    ``[0, 1]`` (a bin without rows gets 0, plain DSM).

    The law is a proxy (the reference mixture the network starts from, or
    ``N(0, I)``): the weight is the control-variate coefficient of Kahouli
    et al. (arXiv:2512.20003) computed in closed-form-score conditions, not
    on the data, and it ignores the error of the trained network at ``u``.

    Parameters
    ----------
    x0 : Tensor of shape (m, d)
        Rows drawn from the proxy law.
    source_noise_fn : callable ``(x, t) -> Tensor (n, p)``
        Exact noise of that law (``p`` columns, see ``columns``).
    t_edges : Tensor of shape (n_bins + 1,)
        Increasing bin edges of ``t``.
    step : float in (0, 1)
        Relative step: the source of a target at ``t`` is ``u = (1 - step) t``.
    n_draws : int
        Bridge draws averaged per target.
    generator : torch.Generator
    columns : index, default=None
        Coordinates the source predicts (default: all).

    Returns
    -------
    weights : Tensor of shape (n_bins,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import variance_optimal_weights
    >>> from sklearn_diffusion.schedules import sigma
    >>> g = torch.Generator().manual_seed(0)
    >>> exact = lambda x, t: sigma(t)[:, None] * x  # N(0, I)
    >>> w = variance_optimal_weights(torch.randn(20_000, 1, generator=g), exact,
    ...                              torch.tensor([0.1, 0.2, 5.0, 10.0]), 0.15, 8, generator=g)
    >>> bool(w[0] > 0.9), bool(w[2] < 0.1)  # bootstrap at low noise, DSM at high
    (True, True)
    """
    m = x0.shape[0]
    n_bins = len(t_edges) - 1
    bins = torch.arange(m, device=x0.device) % n_bins
    lo, hi = torch.log(t_edges[:-1])[bins], torch.log(t_edges[1:])[bins]
    t = torch.exp(lo + (hi - lo) * torch.rand(m, generator=generator, device=x0.device))
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    x_t = perturb(x0, t, noise)
    bridge = torch.randn((n_draws, *x0.shape), generator=generator, device=x0.device)
    boot = bootstrap_target(source_noise_fn, x0, x_t, t, step * t, bridge)
    dsm = noise if columns is None else noise[:, columns]
    gap = dsm - boot
    numerator = torch.zeros(n_bins, dtype=x0.dtype, device=x0.device)
    denominator = torch.zeros_like(numerator)
    numerator.index_add_(0, bins, (dsm * gap).sum(1))
    denominator.index_add_(0, bins, (gap * gap).sum(1))
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-30), 0.0).clamp(0, 1)


def bootstrap_loss(noise_fn, target_noise_fn, x0, t, h, weight, noise, bridge_noise,
                   columns=None, mask=None, row_weight=None):
    """Time-bootstrapped score matching loss.

    The target at ``t`` is ``weight * boot + (1 - weight) * noise`` where
    ``boot`` is :func:`bootstrap_target` of the frozen ``target_noise_fn``
    at ``u = t - h`` (no gradient flows through it) and ``noise`` the DSM
    noise of ``x_t = a_t x0 + s_t noise``. Rows with ``weight == 0`` get
    plain DSM (the frozen network is not evaluated for them), so one call
    serves a time window.

    Parameters
    ----------
    noise_fn, target_noise_fn : callable ``(x, t) -> Tensor (n, p)``
        Trained and frozen noise predictors.
    x0 : Tensor of shape (n, d)
    t, h, weight : Tensor of shape (n,)
    noise : Tensor of shape (n, d)
    bridge_noise : Tensor of shape (k, n, d)
        Standard normal draws of the ``k`` bridge points per row.
    columns : index, default=None
        Coordinates the networks predict (default: all).
    mask : Tensor of shape (n, d), default=None
        1 at observed entries, 0 at missing ones (see :func:`regression_loss`).
    row_weight : Tensor of shape (n,), default=None
        Weight of each row's squared error (see :func:`flow_matching_weight`).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import bootstrap_loss
    >>> f = lambda x, t: torch.zeros_like(x)
    >>> loss = bootstrap_loss(f, f, torch.randn(4, 2), torch.ones(4), torch.full((4,), 0.1),
    ...                       torch.ones(4), torch.randn(4, 2), torch.randn(8, 4, 2))
    >>> loss.item()
    0.0
    """
    x_t = perturb(x0, t, noise)
    target = noise if columns is None else noise[:, columns]
    if columns is not None and mask is not None:
        mask = mask[:, columns]
    inside = torch.nonzero(weight > 0).squeeze(1)
    if len(inside):
        boot = bootstrap_target(target_noise_fn, x0[inside], x_t[inside], t[inside], h[inside],
                                bridge_noise[:, inside])
        w = weight[inside, None]
        target = target.index_put((inside,), w * boot + (1.0 - w) * target[inside])
    return regression_loss(noise_fn, x_t, t, target, mask=mask, row_weight=row_weight)
