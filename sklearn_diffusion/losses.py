"""Training objectives: denoising and time-bootstrapped score matching (L2).

Both losses regress a noise predictor ``e(x_t, t)`` (score ``-e / s_t``) onto a
target noise, which is what keeps targets O(1) at every noise level.

* Denoising score matching (DSM): the target is the noise that made ``x_t``
  from ``x_0``.
* Time bootstrapping (Kumar, Nagaraj, Sarkar, arXiv:2502.10354): for the OU
  step from ``u`` to ``t = u + h``, ``s_t(y) = e^h E[s_u(X_u) | X_t = y]``, so
  the model's own (frozen) score at ``u``, evaluated along the same noising
  path, is an unbiased target at ``t`` that does not carry the variance of
  ``x_0``. It is mixed with the DSM target with weight ``bootstrap_weight``
  on the time window ``bootstrap_window`` and DSM is used elsewhere.
"""

import torch

from .schedules import alpha, sigma

__all__ = ["noising_path", "bootstrap_noise_target", "regression_loss", "dsm_loss", "bootstrap_loss"]


def noising_path(x0, t, h, noise1, noise2):
    """Two points of one OU path: ``x_u`` at ``u = t - h`` and ``x_t`` at ``t``.

    ``x_u = a_u x0 + s_u noise1`` and ``x_t = e^{-h} x_u + sqrt(1 - e^{-2h}) noise2``.
    ``x0``, ``noise1``, ``noise2`` are (n, d); ``t`` and ``h`` are (n,), ``0 <= h < t``.

    Returns
    -------
    x_u, x_t : Tensor of shape (n, d)
    dsm_noise : Tensor of shape (n, d)
        ``(x_t - a_t x0) / s_t``, a standard normal draw: the DSM target at ``t``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import noising_path
    >>> x0, z = torch.randn(4, 2), torch.randn(4, 2)
    >>> t, h = torch.ones(4), torch.zeros(4)
    >>> _, x_t, noise = noising_path(x0, t, h, z, torch.randn(4, 2))
    >>> torch.allclose(noise, z, atol=1e-6)
    True
    """
    u = t - h
    x_u = alpha(u)[:, None] * x0 + sigma(u)[:, None] * noise1
    x_t = torch.exp(-h)[:, None] * x_u + sigma(h)[:, None] * noise2
    dsm_noise = (x_t - alpha(t)[:, None] * x0) / sigma(t)[:, None]
    return x_u, x_t, dsm_noise


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


def regression_loss(noise_fn, x_t, t, target, columns=None, mask=None):
    """Mean squared error between ``noise_fn(x_t, t)`` and ``target[:, columns]``.

    ``columns`` (default: all) names the coordinates the network predicts, so a
    local sub-model that sees a block with its halo is trained on its core only.
    ``mask`` (n, d), 1 at observed entries and 0 at missing ones (default: all
    observed), restricts the mean to the observed entries: the target of a
    missing entry is unknown, so it must not pull the network (MissDiff,
    Ouyang, Xie, Li, Cheng, "MissDiff: Training Diffusion Models on Tabular
    Data with Missing Values", arXiv:2307.00467).

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
    if mask is None:
        return torch.mean(squared)
    return (squared * mask).sum() / mask.sum().clamp(min=1.0)


def dsm_loss(noise_fn, x0, t, noise, columns=None, mask=None):
    """Denoising score matching: ``mean || e(a_t x0 + s_t z, t) - z ||^2``.

    Equal to the score loss ``|| s(x_t, t) + z / s_t ||^2`` weighted by ``s_t^2``.
    ``mask`` restricts the mean to observed entries (see :func:`regression_loss`).

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
    return regression_loss(noise_fn, x_t, t, noise, columns, mask)


def bootstrap_loss(noise_fn, target_noise_fn, x0, t, h, weight, noise1, noise2, columns=None,
                   mask=None):
    """Time-bootstrapped score matching loss.

    The target at ``t`` is ``weight * boot + (1 - weight) * dsm`` where ``boot``
    comes from the frozen ``target_noise_fn`` at ``u = t - h`` on the same path
    (no gradient flows through it) and ``dsm`` is the noise of the path. Rows
    with ``weight == 0`` get plain DSM, so one call serves a time window.

    Parameters
    ----------
    noise_fn, target_noise_fn : callable ``(x, t) -> Tensor (n, d)``
        Trained and frozen noise predictors.
    x0 : Tensor of shape (n, d)
    t, h, weight : Tensor of shape (n,)
    noise1, noise2 : Tensor of shape (n, d)
    columns : index, default=None
        Coordinates the networks predict (default: all).
    mask : Tensor of shape (n, d), default=None
        1 at observed entries, 0 at missing ones (see :func:`regression_loss`).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.losses import bootstrap_loss
    >>> f = lambda x, t: torch.zeros_like(x)
    >>> n = torch.randn(4, 2)
    >>> loss = bootstrap_loss(f, f, torch.randn(4, 2), torch.ones(4), torch.full((4,), 0.1),
    ...                       torch.ones(4), n, torch.randn(4, 2))
    >>> loss.item()
    0.0
    """
    x_u, x_t, dsm_noise = noising_path(x0, t, h, noise1, noise2)
    if columns is not None:
        dsm_noise = dsm_noise[:, columns]
        mask = None if mask is None else mask[:, columns]
    with torch.no_grad():
        boot = bootstrap_noise_target(target_noise_fn(x_u, t - h), t, h)
    w = weight[:, None]
    target = w * boot + (1.0 - w) * dsm_noise
    return regression_loss(noise_fn, x_t, t, target, mask=mask)
