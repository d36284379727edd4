"""Time-conditioned score networks (L1).

Networks predict the noise ``e(x, t)``; the score is ``-e / s_t``. The output
is preconditioned: ``e(x, t) = s_t x + a_t F(x, t)``. The skip term ``s_t x``
is the exact answer for standardized Gaussian data, and for any data with unit
variance the residual target of ``F`` (``a_t z - s_t x_0``) has unit variance
at every noise level, so one network serves all ``t`` with O(1) targets.
:class:`MixtureReference` swaps that skip term for the exact noise of a
Gaussian mixture, so the network learns a correction to a fitted mixture.
"""

import math

import torch
from torch import nn

from .schedules import alpha, sigma

__all__ = [
    "TimeEmbedding",
    "ScoreMLP",
    "ScoreEnsemble",
    "MixtureReference",
    "StackedLinear",
    "precondition",
    "score_from_noise",
    "init_parameters",
]


def precondition(residual, x, t):
    """Noise prediction ``s_t x + a_t residual`` for ``x``, ``residual`` (n, d), ``t`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import precondition
    >>> x, t = torch.randn(3, 2), torch.full((3,), 20.0)
    >>> torch.allclose(precondition(torch.zeros(3, 2), x, t), x)
    True
    """
    return sigma(t)[:, None] * x + alpha(t)[:, None] * residual


def score_from_noise(noise, t):
    """Score ``-e / s_t`` from a noise prediction ``e`` (n, d) at times ``t`` (n,).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import score_from_noise
    >>> score_from_noise(torch.ones(1, 2), torch.full((1,), 20.0)).tolist()
    [[-1.0, -1.0]]
    """
    return -noise / sigma(t)[:, None]


def init_parameters(module, generator):
    """Initialize every ``nn.Linear`` and ``StackedLinear`` of ``module`` from ``generator``.

    PyTorch's default initialization draws from the process-wide seed; drawing
    from an explicit generator makes a fit reproducible from ``random_state``
    alone. Weights and biases follow PyTorch's default uniform law.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import ScoreMLP, init_parameters
    >>> a = init_parameters(ScoreMLP(2), torch.Generator().manual_seed(0))
    >>> b = init_parameters(ScoreMLP(2), torch.Generator().manual_seed(0))
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, StackedLinear)):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
    return module


class TimeEmbedding(nn.Module):
    """Fixed Fourier features of ``log t``: shape (n,) to (n, dim).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import TimeEmbedding
    >>> TimeEmbedding(8)(torch.ones(3)).shape
    torch.Size([3, 8])
    """

    def __init__(self, dim=32):
        super().__init__()
        half = dim // 2
        # log t spans about [-7, 2.5]; frequencies from 1/8 to 8 resolve it.
        self.register_buffer("freqs", torch.logspace(-3, 3, half, base=2.0))

    def forward(self, t):
        angles = torch.log(t)[:, None] * self.freqs
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class StackedLinear(nn.Module):
    """``m`` independent linear layers applied at once: (m, n, in) to (m, n, out).

    Weights have shape (m, in, out), so one batched matmul evaluates ``m``
    small networks side by side (one per coordinate of a localized model).
    With ``m == 1`` the single layer is broadcast over any number of groups,
    which is how one network is shared by every window. It starts at zero,
    so no draw is hidden from the caller's generator: initialize it with
    :func:`init_parameters`.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import StackedLinear
    >>> from sklearn_diffusion.networks import init_parameters
    >>> layer = init_parameters(StackedLinear(5, 3, 2), torch.Generator().manual_seed(0))
    >>> layer(torch.randn(5, 7, 3)).shape
    torch.Size([5, 7, 2])
    >>> StackedLinear(1, 3, 2)(torch.randn(5, 7, 3)).shape
    torch.Size([5, 7, 2])
    """

    def __init__(self, n_stacked, in_features, out_features):
        super().__init__()
        self.in_features = in_features
        self.weight = nn.Parameter(torch.zeros(n_stacked, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(n_stacked, 1, out_features))

    def forward(self, h):
        return torch.matmul(h, self.weight) + self.bias


class ScoreMLP(nn.Module):
    """Residual MLP noise predictor ``e(x, t)`` shared over all noise levels.

    Each hidden layer gets an additive, time-dependent bias; equal-width layers
    are residual. No batch normalization: a row's output never depends on the
    other rows of its batch. The last layer starts at zero, so an untrained
    network is the exact score of the standard Gaussian.

    Parameters
    ----------
    n_features : int
        Number of coordinates ``d``.
    hidden_layer_sizes : tuple of int, default=(128, 128, 128)
        Width of each hidden layer.
    time_embedding_dim : int, default=32
        Number of Fourier features of ``log t``.
    generator : torch.Generator, default=None
        Source of the initial weights; ``None`` uses PyTorch's global seed.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import ScoreMLP
    >>> net = ScoreMLP(3, hidden_layer_sizes=(16, 16))
    >>> net(torch.randn(5, 3), torch.rand(5) + 0.1).shape
    torch.Size([5, 3])
    """

    def __init__(
        self, n_features, hidden_layer_sizes=(128, 128, 128), time_embedding_dim=32, generator=None
    ):
        super().__init__()
        widths = [n_features, *hidden_layer_sizes]
        self.time_embedding = TimeEmbedding(time_embedding_dim)
        self.time_bias = nn.Linear(time_embedding_dim, sum(hidden_layer_sizes))
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.output = nn.Linear(widths[-1], n_features)
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)
        if generator is not None:
            init_parameters(self, generator)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x, t):
        """Noise prediction, shape (n, d), for ``x`` (n, d) and ``t`` (n,)."""
        biases = torch.split(self.time_bias(self.time_embedding(t)), self.hidden_layer_sizes, dim=1)
        h = x
        for layer, bias in zip(self.layers, biases):
            out = nn.functional.silu(layer(h) + bias)
            h = h + out if out.shape == h.shape else out
        return precondition(self.output(h), x, t)

    def noise_and_trace(self, x, t):
        """Noise prediction (n, d) and the trace of its Jacobian in ``x``, shape (n,).

        Forward-mode by hand: the Jacobian ``J`` of each hidden layer in
        ``x``, (n, d, width), is carried through the network, which costs
        about two (n d, width) x (width, width) matrix products for the
        default three layers, where ``d`` vector-Jacobian products cost about
        ``3 d`` forward passes. Two parts of ``J`` are never formed: the
        first layer's, ``S_1 W_1^T`` (plus ``I`` if it is residual; a product
        with it is one with its slopes ``S_1``, (n, width)), and the last layer's (only the diagonal
        of ``W_out J`` is needed, a contraction with an (n, width) result).
        Rows never mix.

        Examples
        --------
        >>> import torch
        >>> from sklearn_diffusion.networks import ScoreMLP, init_parameters
        >>> net = init_parameters(ScoreMLP(3, (8, 8)), torch.Generator().manual_seed(0))
        >>> x, t = torch.randn(4, 3), torch.full((4,), 0.5)
        >>> noise, trace = net.noise_and_trace(x, t)
        >>> jac = torch.func.vmap(torch.func.jacrev(lambda r, s: net(r[None], s[None])[0]))(x, t)
        >>> torch.allclose(trace, jac.diagonal(dim1=1, dim2=2).sum(1), atol=1e-5)
        True
        """
        biases = torch.split(self.time_bias(self.time_embedding(t)), self.hidden_layer_sizes, dim=1)
        h, slopes, residual = x, [], []
        for layer, bias in zip(self.layers, biases):
            pre = layer(h) + bias
            gate = torch.sigmoid(pre)
            out = pre * gate
            slopes.append(gate * (1 + pre * (1 - gate)))
            residual.append(out.shape == h.shape)
            h = h + out if residual[-1] else out
        trace = _Tangent(x.shape[0], x.shape[1]).trace(
            [layer.weight for layer in self.layers], slopes, residual, self.output.weight
        )
        return precondition(self.output(h), x, t), sigma(t) * x.shape[1] + alpha(t) * trace


class _Tangent:
    # The Jacobian J = d h / d x (n, d, width) of a hidden layer, kept as
    # dense + S_1 W_1^T (the first layer's part, from its slopes S_1) +
    # I (while the first layer's skip connection survives), so the parts
    # that are cheap to apply are never formed.

    def __init__(self, n, d):
        self.n, self.d = n, d
        self.dense, self.first, self.identity = None, None, True

    def times(self, weight):
        # J W^T as a dense (n, d, out) tensor.
        n, d = self.n, self.d
        if self.dense is not None and self.first is not None:
            self._form_first()
        out = None
        if self.dense is not None:
            out = torch.matmul(self.dense.reshape(n * d, -1), weight.T).view(n, d, -1)
        if self.first is not None:
            slope, w1 = self.first
            # (S_1 W_1^T W^T)[r, i, m] = sum_k s[r, k] W_1[k, i] W[m, k].
            u = (w1[:, :, None] * weight.T[:, None, :]).reshape(w1.shape[0], -1)
            out = torch.matmul(slope, u).view(n, d, -1)
        if self.identity:
            identity = weight.T.contiguous()[None]
            out = identity.expand(n, -1, -1).clone() if out is None else out.add_(identity)
        return out

    def _form_first(self):
        slope, w1 = self.first
        self.dense.addcmul_(slope[:, None, :], w1.T.contiguous()[None])
        if self.identity:
            self.dense.diagonal(dim1=1, dim2=2).add_(1.0)
        self.first, self.identity = None, False

    def contract(self, c):
        # <C_j, J> per row for c of shape (m, d, width): (n, m).
        q = 0.0
        if self.dense is not None:
            q = torch.matmul(self.dense.reshape(self.n, -1), c.reshape(c.shape[0], -1).T)
        if self.first is not None:
            slope, w1 = self.first
            q = q + torch.matmul(slope, torch.einsum("ki,jik->kj", w1, c))
        if self.identity:
            q = q + c.diagonal(dim1=1, dim2=2).sum(dim=1)[None]
        return q

    def trace(self, weights, slopes, residual, w_out):
        # tr(W_out J_L), with J_l = [J_{l-1} if residual] + S_l J_{l-1} W_l^T.
        last = len(weights) - 1
        for l, (weight, slope, res) in enumerate(zip(weights, slopes, residual)):
            if l == last:
                break
            if l == 0:
                self.first, self.identity = (slope, weight), res
                continue
            step = self.times(weight).mul_(slope[:, None, :])
            if res:
                self.dense = step if self.dense is None else self.dense.add_(step)
            else:
                self.dense, self.first, self.identity = step, None, False
        # The last layer: tr(W_out S_L J W_L^T) = sum_k s_k <T_k, J> with
        # T[k, i, m] = W_out[i, k] W_L[k, m], and <W_out, J> for its skip.
        weight, slope, res = weights[last], slopes[last], residual[last]
        c = w_out.T[:, :, None] * weight[:, None, :]
        if res:
            c = torch.cat([c, w_out[None]])
        q = self.contract(c)
        width = slope.shape[1]
        trace = (slope * q[:, :width]).sum(dim=1)
        return trace + q[:, width] if res else trace


class ScoreEnsemble(nn.Module):
    """The mean noise prediction of several networks, and the mean of their traces.

    The probability-flow ODE of any score field is a bijection, so the mean
    score of several networks still defines a normalized density, and its
    divergence is the mean of theirs.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import ScoreEnsemble, ScoreMLP
    >>> net = ScoreEnsemble([ScoreMLP(2, (8,)), ScoreMLP(2, (8,))])
    >>> x, t = torch.randn(3, 2), torch.ones(3)
    >>> torch.allclose(net(x, t), ScoreMLP(2, (8,))(x, t))  # both untrained
    True
    """

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x, t):
        """Mean noise prediction, shape (n, d)."""
        return torch.stack([m(x, t) for m in self.members]).mean(dim=0)

    def noise_and_trace(self, x, t):
        """Mean noise prediction (n, d) and mean trace of its Jacobian (n,)."""
        noises, traces = zip(*(m.noise_and_trace(x, t) for m in self.members))
        return torch.stack(noises).mean(dim=0), torch.stack(traces).mean(dim=0)


class MixtureReference(nn.Module):
    """A noise predictor whose skip term is the exact noise of a Gaussian mixture.

    ``model(x, t) = s_t x + a_t F(x, t)`` (a :class:`ScoreMLP` or
    :class:`ScoreEnsemble`); this module returns ``e_ref(x, t) + a_t F(x, t)``,
    where ``e_ref = -s_t grad log p_t`` is the exact noise of the noised law of
    ``x_0 ~ sum_k w_k N(mu_k, U_k diag(lambda_k) U_k^T)`` (``s_t x`` is that of
    ``N(0, I)``). An untrained network then gives the mixture's density, and
    training only has to learn what the mixture misses. The mixture is fixed
    (buffers, not parameters).

    Parameters
    ----------
    model : torch.nn.Module
        Preconditioned noise predictor with ``noise_and_trace``.
    weights : Tensor of shape (k,)
        Positive component weights summing to one.
    means : Tensor of shape (k, d)
    eigenvalues : Tensor of shape (k, d)
        Positive eigenvalues of each component's covariance.
    eigenvectors : Tensor of shape (k, d, d)
        Orthonormal eigenvectors of each covariance, as columns.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import MixtureReference, ScoreMLP
    >>> from sklearn_diffusion.schedules import gaussian_mixture_score, sigma
    >>> w, m = torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [1.0, 1.0]])
    >>> lam, vecs = torch.tensor([[0.5, 1.0], [0.2, 2.0]]), torch.eye(2).expand(2, 2, 2)
    >>> net = MixtureReference(ScoreMLP(2, (8,)), w, m, lam, vecs)  # untrained: the mixture
    >>> x, t = torch.randn(4, 2), torch.full((4,), 0.3)
    >>> covs = vecs * lam[:, None, :] @ vecs.transpose(1, 2)
    >>> torch.allclose(net(x, t), -sigma(t)[:, None] * gaussian_mixture_score(x, t, w, m, covs),
    ...                atol=1e-5)
    True
    """

    def __init__(self, model, weights, means, eigenvalues, eigenvectors):
        super().__init__()
        self.model = model
        self.register_buffer("log_weights", torch.log(weights))
        self.register_buffer("means", means)
        self.register_buffer("eigenvalues", eigenvalues)
        self.register_buffer("eigenvectors", eigenvectors)
        eye = torch.eye(eigenvectors.shape[1], dtype=eigenvectors.dtype)
        if eigenvectors.is_meta:
            self._layout = "full"
        elif torch.equal(eigenvectors.cpu(), eye.expand_as(eigenvectors)):
            self._layout = "diagonal"
        elif torch.equal(eigenvectors, eigenvectors[:1].expand_as(eigenvectors)):
            self._layout = "tied"
        else:
            self._layout = "full"

    def _rotate(self, x, inverse=False):
        # x (n, d) into every component's eigenbasis, (n, k, d), or
        # (inverse) sum_k of (n, k, d) back. Diagonal and tied covariances
        # (common BIC choices) skip the k products.
        vecs = self.eigenvectors
        if self._layout == "diagonal":
            return x.sum(1) if inverse else x[:, None, :]
        if self._layout == "tied":
            return x.sum(1) @ vecs[0].T if inverse else (x @ vecs[0])[:, None, :]
        if inverse:
            return torch.einsum("nke,kde->nd", x, vecs)
        return torch.einsum("nd,kde->nke", x, vecs)

    def sample_reference(self, n, *, generator):
        """``n`` rows (n, d) drawn from the mixture with ``generator`` (on its device).

        Examples
        --------
        >>> import torch
        >>> from sklearn_diffusion.networks import MixtureReference, ScoreMLP
        >>> w, m = torch.tensor([0.5, 0.5]), torch.tensor([[-3.0], [3.0]])
        >>> net = MixtureReference(ScoreMLP(1, (8,)), w, m, torch.ones(2, 1), torch.ones(2, 1, 1))
        >>> x = net.sample_reference(10_000, generator=torch.Generator().manual_seed(0))
        >>> round(x.abs().mean().item())
        3
        """
        component = torch.multinomial(torch.exp(self.log_weights), n, replacement=True,
                                      generator=generator)
        z = torch.randn((n, self.means.shape[1]), generator=generator, device=self.means.device)
        scaled = torch.sqrt(self.eigenvalues[component]) * z
        return self.means[component] + torch.einsum("nde,ne->nd", self.eigenvectors[component],
                                                    scaled)

    def reference_noise_and_trace(self, x, t, trace=True):
        """Exact noise ``e_ref`` (n, d) of the mixture and (if ``trace``) the trace of its Jacobian (n,)."""
        a, s = alpha(t)[:, None, None], sigma(t)
        centred_means = (self.means[:, None, :] @ self.eigenvectors)[:, 0]
        proj = self._rotate(x) - a * centred_means
        var = a**2 * self.eigenvalues + s[:, None, None] ** 2
        z = proj / var
        resp = torch.softmax(
            self.log_weights - 0.5 * (proj * z + torch.log(var)).sum(2), dim=1
        )
        score = -self._rotate(resp[:, :, None] * z, inverse=True)
        if not trace:
            return -s[:, None] * score
        # div sum_k r_k s_k = sum_k r_k (div s_k + |s_k|^2) - |sum_k r_k s_k|^2.
        div = (resp * ((z**2).sum(2) - (1.0 / var).sum(2))).sum(1) - (score**2).sum(1)
        return -s[:, None] * score, -s * div

    def forward(self, x, t):
        """Noise prediction, shape (n, d)."""
        noise = self.reference_noise_and_trace(x, t, trace=False)
        return self.model(x, t) - sigma(t)[:, None] * x + noise

    def noise_and_trace(self, x, t):
        """Noise prediction (n, d) and the trace of its Jacobian in ``x``, shape (n,)."""
        noise, trace = self.model.noise_and_trace(x, t)
        ref_noise, ref_trace = self.reference_noise_and_trace(x, t)
        s = sigma(t)
        return noise - s[:, None] * x + ref_noise, trace - s * x.shape[1] + ref_trace
