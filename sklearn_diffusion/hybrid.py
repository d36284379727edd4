"""Hybrid score: local sub-models plus a low-rank global component (L2).

Locality is an assumption. A field with a shared slow component (a common
factor, a drift felt by every sensor) has a dense precision matrix: for
``x = y + f w`` with ``y`` a local field and ``f`` a scalar factor, the score
is the local score of ``y`` plus a rank-one term that no window sees. The
hybrid noise model adds to the local predictor a global part that sees the
data only through ``k`` principal directions ``U`` (d, k):

``e(x, t) = e_local(x, t) + a_t G(U^T x / r_t, t)``,  ``r_t = sqrt(a_t^2 lam + s_t^2)``

with ``G`` a small time-conditioned MLP with ``d`` outputs (zero at
initialization) and ``lam`` the variances of the directions, so each input
of ``G`` has unit variance at every noise level. The Jacobian of the global
part is ``a_t J_G diag(1 / r_t) U^T``: rank at most ``k``. Its diagonal comes
from ``k`` forward-mode tangents carried through ``G`` by hand, so the
divergence stays exact and costs about ``k`` small forward passes more. The
local part's receptive field is unchanged. This is the hybrid that
Gottwald, Liu, Marzouk, Reich and Tong (arXiv:2505.04417) name as the way to
cut the localization error.
"""

import numpy as np
import torch
from torch import nn

from .localization import LocalNoiseModel
from .networks import TimeEmbedding, init_parameters
from .schedules import alpha, sigma

__all__ = ["principal_directions", "GlobalLowRankModel", "HybridNoiseModel", "hybrid_model"]


def principal_directions(Z, k):
    """The ``k`` leading principal directions of the rows ``Z`` (n, d) and their variances.

    Missing entries (NaN) count as 0, the column mean in the model's space.
    Variances are floored at 1e-6, so every input of the global part can be
    scaled to unit variance.

    Returns
    -------
    components : ndarray of shape (d, k)
        Orthonormal columns, signs fixed so each column's largest entry is positive.
    variances : ndarray of shape (k,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.hybrid import principal_directions
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(500, 4)) + 3 * rng.normal(size=(500, 1))  # a common factor
    >>> U, var = principal_directions(Z, 1)
    >>> np.round(U[:, 0], 1).tolist(), bool(var[0] > 30)
    ([0.5, 0.5, 0.5, 0.5], True)
    """
    Z = np.nan_to_num(np.asarray(Z, dtype=np.float64))
    k = int(min(k, Z.shape[1]))
    Zc = Z - Z.mean(axis=0)
    _, s, vt = np.linalg.svd(Zc, full_matrices=False)
    components = vt[:k].T
    # SVD signs are arbitrary; fixing them makes the model reproducible
    # across LAPACK builds.
    flip = np.sign(components[np.argmax(np.abs(components), axis=0), np.arange(k)])
    components = components * np.where(flip == 0, 1.0, flip)
    variances = np.maximum(s[:k] ** 2 / max(len(Z) - 1, 1), 1e-6)
    return components, variances


class GlobalLowRankModel(nn.Module):
    """``a_t G(U^T x / r_t, t)``: a noise term that sees ``x`` through ``k`` directions.

    Parameters
    ----------
    components : array-like of shape (d, k)
        Orthonormal directions ``U``.
    variances : array-like of shape (k,)
        Variance ``lam`` of the data along each direction.
    hidden_layer_sizes : tuple of int, default=(64, 64)
    time_embedding_dim : int, default=16
    generator : torch.Generator, default=None
        Source of the initial weights (``None``: zeros, for weights loaded next).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.hybrid import GlobalLowRankModel
    >>> g = GlobalLowRankModel(torch.eye(3)[:, :1], [2.0], generator=torch.Generator().manual_seed(0))
    >>> g(torch.randn(5, 3), torch.ones(5)).shape  # zero until trained
    torch.Size([5, 3])
    """

    def __init__(self, components, variances, hidden_layer_sizes=(64, 64), time_embedding_dim=16,
                 *, generator=None):
        super().__init__()
        components = torch.as_tensor(np.asarray(components), dtype=torch.float32)
        self.register_buffer("components", components)
        self.register_buffer("variances", torch.as_tensor(np.asarray(variances), dtype=torch.float32))
        d, k = components.shape
        widths = [k + time_embedding_dim, *hidden_layer_sizes]
        self.time_embedding = TimeEmbedding(time_embedding_dim)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.output = nn.Linear(widths[-1], d)
        if generator is not None:
            init_parameters(self, generator)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def _inputs(self, x, t):
        a = alpha(t)[:, None]
        spread = torch.sqrt(a**2 * self.variances + sigma(t)[:, None] ** 2)
        return x @ self.components / spread, spread

    def forward(self, x, t):
        """Global noise term, shape (n, d), for ``x`` (n, d) and ``t`` (n,)."""
        return self.noise_and_diagonal(x, t, diagonal=False)

    def noise_and_diagonal(self, x, t, *, diagonal=True):
        """The noise term and the diagonal of its Jacobian in ``x``, both (n, d).

        The ``k`` tangents ``d / d z_m`` go through the layers by hand (one
        matmul each per layer), then ``diag_i = a_t sum_m dG_i/dz_m U_im / r_m``.
        """
        z, spread = self._inputs(x, t)
        h = torch.cat([z, self.time_embedding(t)], dim=1)
        k = z.shape[1]
        dh = None
        for depth, layer in enumerate(self.layers):
            pre = layer(h)
            out = nn.functional.silu(pre)
            # Hidden layers of equal width are residual (never the first).
            residual = depth > 0 and out.shape == h.shape
            if diagonal:
                gate = torch.sigmoid(pre)
                # Tangents (n, k, width): the first is row m of the first weight.
                step = layer.weight[:, :k].T[None] if depth == 0 else dh @ layer.weight.T
                d_out = gate[:, None] * (1 + pre * (1 - gate))[:, None] * step
                dh = dh + d_out if residual else d_out
            h = h + out if residual else out
        a = alpha(t)[:, None]
        noise = a * self.output(h)
        if not diagonal:
            return noise
        d_g = dh @ self.output.weight.T  # (n, k, d): dG / dz_m
        diag = a * torch.einsum("nmd,dm,nm->nd", d_g, self.components, 1 / spread)
        return noise, diag


class HybridNoiseModel(nn.Module):
    """Local noise model plus a :class:`GlobalLowRankModel`: ``e = e_local + e_global``.

    Parameters
    ----------
    local : LocalNoiseModel
        Predicts every coordinate (``centres = arange(d)``).
    global_part : GlobalLowRankModel

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.hybrid import GlobalLowRankModel, HybridNoiseModel
    >>> from sklearn_diffusion.localization import LocalNoiseModel
    >>> g = torch.Generator().manual_seed(0)
    >>> local = LocalNoiseModel([[0, 1], [1, 0]], [0, 1], 0, 2, generator=g)
    >>> net = HybridNoiseModel(local, GlobalLowRankModel(torch.ones(2, 1) / 2**0.5, [2.0], generator=g))
    >>> net(torch.randn(4, 2), torch.ones(4)).shape
    torch.Size([4, 2])
    """

    def __init__(self, local, global_part):
        super().__init__()
        self.local = local
        self.global_part = global_part

    @property
    def windows(self):
        """The local part's windows (see :class:`LocalNoiseModel`)."""
        return self.local.windows

    @property
    def hidden_layer_sizes(self):
        """Widths of the local sub-models."""
        return self.local.hidden_layer_sizes

    def forward(self, x, t):
        """Noise prediction, shape (n, d), for ``x`` (n, d) and ``t`` (n,)."""
        return self.local(x, t) + self.global_part(x, t)

    def noise_and_self_derivative(self, x, t):
        """Noise (n, d) and the diagonal of its Jacobian (n, d), exactly."""
        noise, d_noise = self.local.noise_and_self_derivative(x, t)
        g_noise, g_diag = self.global_part.noise_and_diagonal(x, t)
        return noise + g_noise, d_noise + g_diag


def hybrid_model(windows, centre_slot, n_inputs, hidden_layer_sizes, shared, components,
                 variances, *, generator=None):
    """A :class:`HybridNoiseModel` over all ``n_inputs`` coordinates.

    The local part's weights are drawn from ``generator`` first, then the
    global part's, so a seed gives one model. Arguments are those of
    :class:`~sklearn_diffusion.localization.LocalNoiseModel` (every
    coordinate its own centre) and of :class:`GlobalLowRankModel`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_diffusion.hybrid import hybrid_model
    >>> net = hybrid_model([[0, 1], [1, 0]], 0, 2, (8,), False, np.ones((2, 1)) / 2**0.5, [2.0],
    ...                    generator=torch.Generator().manual_seed(0))
    >>> net.global_part.components.shape
    torch.Size([2, 1])
    """
    local = LocalNoiseModel(windows, np.arange(n_inputs), centre_slot, n_inputs,
                            hidden_layer_sizes, shared, generator=generator)
    return HybridNoiseModel(local, GlobalLowRankModel(components, variances, generator=generator))
