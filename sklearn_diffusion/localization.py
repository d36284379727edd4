"""Localization: distances between coordinates and the local noise model (L2).

A distance on coordinate indices gives neighbourhoods
``N_r(i) = {j : dist(i, j) <= r}``, and the localized score
``s_i(x, t) = f_i(x_{N_r(i)}, t)`` sees only its neighbourhood (Gottwald,
Liu, Marzouk, Reich, Tong, arXiv:2505.04417). Distances come from:

* ``"chain"``: ``|i - j|``; ``"ring"``: ``min(|i - j|, d - |i - j|)``;
* a lattice shape such as ``(8, 8)`` (row-major, as ``reshape`` lays out an
  image): the Chebyshev (L-infinity) distance on the grid, so neighbourhoods
  are square windows of side ``2r + 1``;
* a (d, d) matrix: its nonzero off-diagonal entries are edges of that length
  and the distance is the shortest-path length; a 0/1 adjacency matrix gives
  graph hops, a metric distance matrix gives itself back;
* ``"auto"``: graph hops in a dependency graph learned from the data
  (:func:`dependency_graph`).

Every neighbourhood is padded to the same size ``k`` with a dummy index
``d`` (a zero input, flagged by a mask), so the windows ``x[:, windows]``
form one (n, d, k) tensor and the ``d`` small networks are evaluated at once
with stacked weights (:class:`~sklearn_diffusion.networks.StackedLinear`).
"""

import itertools

import numpy as np
import torch
from scipy.sparse.csgraph import shortest_path
from torch import nn

from .networks import (
    StackedLinear,
    TimeEmbedding,
    init_parameters,
    precondition,
    score_from_noise,
)

__all__ = [
    "coordinate_distances",
    "dependency_graph",
    "neighbourhoods",
    "local_windows",
    "block_view",
    "LocalNoiseModel",
    "local_score_divergence",
]

_NAMED = ("chain", "ring", "auto")


def dependency_graph(X, *, n_neighbors=2, shrinkage=0.1):
    """Adjacency of the strongest partial correlations between the columns of ``X``.

    The precision matrix of the shrunk correlation ``(1 - shrinkage) R +
    shrinkage I`` gives partial correlations ``-P_ij / sqrt(P_ii P_jj)``;
    each column is joined to its ``n_neighbors`` strongest partners (in
    absolute value) and the graph is symmetrized. For a Gaussian, a zero
    partial correlation means conditional independence, so these edges are
    the dependencies a local score needs; the shrinkage keeps the inverse
    stable when columns are collinear or rows are few.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Training rows (any scale; columns are standardized here).
    n_neighbors : int, default=2
        Edges kept per column.
    shrinkage : float in (0, 1], default=0.1
        Weight of the identity in the shrunk correlation.

    Returns
    -------
    adjacency : ndarray of shape (d, d), bool
        Symmetric, with a False diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.localization import dependency_graph
    >>> rng = np.random.default_rng(0)
    >>> walk = np.cumsum(rng.normal(size=(500, 5)), axis=1)  # a Markov chain
    >>> adjacency = dependency_graph(walk)
    >>> bool(adjacency[range(4), range(1, 5)].all())  # finds every link of the chain
    True
    """
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    std = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    corr = (1 - shrinkage) * (Z.T @ Z) / len(Z) + shrinkage * np.eye(d)
    precision = np.linalg.inv(corr)
    diag = np.sqrt(np.diag(precision))
    strength = np.abs(precision / np.outer(diag, diag))
    np.fill_diagonal(strength, -np.inf)
    k = min(n_neighbors, d - 1)
    adjacency = np.zeros((d, d), dtype=bool)
    if k > 0:
        # Stable sort so ties go to the lower index: the graph is reproducible.
        partners = np.argsort(-strength, axis=1, kind="stable")[:, :k]
        adjacency[np.repeat(np.arange(d), k), partners.ravel()] = True
    return adjacency | adjacency.T


def _lattice_distances(shape):
    coords = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), axis=1)
    return np.abs(coords[:, None, :] - coords[None, :, :]).max(axis=2).astype(np.float64)


def _matrix_distances(matrix, n_features):
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A locality matrix must be square, got shape {matrix.shape}.")
    if matrix.shape[0] != n_features:
        raise ValueError(
            f"The locality matrix is {matrix.shape[0]} x {matrix.shape[0]} but X has "
            f"n_features={n_features}."
        )
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError("A locality matrix must have finite, non-negative entries.")
    if not np.allclose(matrix, matrix.T):
        raise ValueError("A locality matrix must be symmetric.")
    return shortest_path(matrix, directed=False)


def coordinate_distances(locality, n_features, X=None):
    """Distances between the ``n_features`` coordinates, as a (d, d) array.

    Parameters
    ----------
    locality : {"chain", "ring", "auto"}, tuple of int or array of shape (d, d)
        See the module docstring. A tuple is a lattice shape whose product
        must be ``n_features``.
    n_features : int
    X : ndarray of shape (n, d), default=None
        Training rows; needed for ``"auto"`` only.

    Returns
    -------
    distances : ndarray of shape (d, d)
        Symmetric, zero on the diagonal, ``inf`` between unconnected coordinates.

    Raises
    ------
    ValueError
        On a lattice shape that does not match ``n_features`` or a malformed
        matrix (not square, wrong size, negative, non-finite, asymmetric).

    Examples
    --------
    >>> from sklearn_diffusion.localization import coordinate_distances
    >>> coordinate_distances("ring", 5)[0].tolist()
    [0.0, 1.0, 2.0, 2.0, 1.0]
    >>> coordinate_distances((2, 3), 6)[0].tolist()
    [0.0, 1.0, 2.0, 1.0, 1.0, 2.0]
    """
    if isinstance(locality, str):
        if locality not in _NAMED:
            raise ValueError(
                f"locality must be one of {_NAMED}, a shape or a matrix, got {locality!r}."
            )
        if locality == "auto":
            return shortest_path(dependency_graph(X).astype(np.float64), unweighted=True)
        gap = np.abs(np.subtract.outer(np.arange(n_features), np.arange(n_features)))
        if locality == "ring":
            gap = np.minimum(gap, n_features - gap)
        return gap.astype(np.float64)
    spec = np.asarray(locality)
    if spec.ndim == 1:
        if not (np.issubdtype(spec.dtype, np.integer) and np.all(spec > 0)):
            raise ValueError(f"A lattice shape must be a tuple of positive ints, got {locality!r}.")
        if int(np.prod(spec)) != n_features:
            raise ValueError(
                f"The lattice shape {tuple(int(s) for s in spec)} has {int(np.prod(spec))} sites "
                f"but X has n_features={n_features}."
            )
        return _lattice_distances(tuple(int(s) for s in spec))
    # A contiguous float64 copy: shortest_path fails on a transposed (or a
    # DataFrame's) non-contiguous array and would leave inf self-distances.
    return _matrix_distances(np.ascontiguousarray(spec, dtype=np.float64), n_features)


def neighbourhoods(distances, radius):
    """``N_r(i) = {j : dist(i, j) <= r}`` for every ``i``, as sorted index arrays.

    Examples
    --------
    >>> from sklearn_diffusion.localization import coordinate_distances, neighbourhoods
    >>> [n.tolist() for n in neighbourhoods(coordinate_distances("ring", 4), 1)]
    [[0, 1, 3], [0, 1, 2], [1, 2, 3], [0, 2, 3]]
    """
    return [np.flatnonzero(row <= radius) for row in distances]


def _shared_windows(locality, n_features, radius):
    # Offsets in the same order for every site, so slot j means the same
    # relative position everywhere and one network can serve all windows.
    shape = (n_features,) if isinstance(locality, str) else tuple(int(s) for s in locality)
    periodic = isinstance(locality, str) and locality == "ring"
    coords = np.stack(np.unravel_index(np.arange(n_features), shape), axis=1)
    offsets = np.array(list(itertools.product(range(-radius, radius + 1), repeat=len(shape))))
    moved = coords[:, None, :] + offsets[None, :, :]
    if periodic:
        moved, inside = moved % n_features, np.ones(moved.shape[:2], dtype=bool)
    else:
        inside = np.all((moved >= 0) & (moved < np.array(shape)), axis=2)
    clipped = np.clip(moved, 0, np.array(shape) - 1)  # outside points become the dummy below
    flat = np.ravel_multi_index(tuple(clipped.transpose(2, 0, 1)), shape)
    return np.where(inside, flat, n_features), len(offsets) // 2


def local_windows(locality, distances, radius, *, shared=False):
    """Padded neighbourhood indices: ``windows`` (d, k) and the centre slot.

    Row ``i`` lists ``N_r(i)`` padded with the dummy index ``d``. Without
    sharing, the centre comes first and the others follow by distance then
    index. With ``shared=True`` (``"chain"``, ``"ring"`` or a lattice shape),
    slot ``j`` is the same grid offset for every ``i`` (offsets that leave a
    chain or lattice point to the dummy, as a convolution's zero padding),
    and the centre is the middle slot.

    Parameters
    ----------
    locality : str, tuple or ndarray
        As for :func:`coordinate_distances`.
    distances : ndarray of shape (d, d)
        From :func:`coordinate_distances`.
    radius : float
        Neighbourhood radius, at least 0; one beyond the largest finite
        distance is taken as that distance (every neighbourhood is full).
    shared : bool, default=False

    Returns
    -------
    windows : ndarray of shape (d, k), int64
    centre_slot : int
        Slot of coordinate ``i`` in row ``i``.

    Raises
    ------
    ValueError
        On a negative radius, on ``shared=True``
        with a locality that has no translations, or on a ring too small for
        a window of ``2 r + 1`` distinct sites.

    Examples
    --------
    >>> from sklearn_diffusion.localization import coordinate_distances, local_windows
    >>> windows, centre = local_windows("chain", coordinate_distances("chain", 4), 1)
    >>> windows.tolist(), centre
    ([[0, 1, 4], [1, 0, 2], [2, 1, 3], [3, 2, 4]], 0)
    >>> windows, centre = local_windows("chain", coordinate_distances("chain", 4), 1, shared=True)
    >>> windows.tolist(), centre
    ([[4, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]], 1)
    """
    d = distances.shape[0]
    if radius < 0:
        raise ValueError(f"radius must be at least 0, got {radius!r}.")
    # Beyond the largest distance every neighbourhood is already full: the
    # same model, so a default radius suits data with few features too.
    radius = min(radius, distances[np.isfinite(distances)].max())
    if shared:
        lattice = not isinstance(locality, str) and np.asarray(locality).ndim == 1
        if not (lattice or (isinstance(locality, str) and locality in ("chain", "ring"))):
            raise ValueError(
                "shared=True needs a translation-invariant locality: 'chain', 'ring' or a "
                f"lattice shape, got {locality!r}."
            )
        if int(radius) != radius:
            raise ValueError(f"shared=True needs an integer radius, got {radius!r}.")
        if isinstance(locality, str) and locality == "ring" and 2 * radius + 1 > d:
            raise ValueError(
                f"radius={radius} is too large for a ring of n_features={d} with shared=True: "
                f"a window needs 2 * radius + 1 <= {d} distinct sites."
            )
        return _shared_windows(locality, d, int(radius))
    members = neighbourhoods(distances, radius)
    width = max(len(m) for m in members)
    windows = np.full((d, width), d, dtype=np.int64)
    for i, m in enumerate(members):
        # By distance, ties by index (lexsort's last key is the primary one).
        order = m[np.lexsort((m, distances[i, m]))]
        order = np.concatenate([[i], order[order != i]])
        windows[i, : len(order)] = order
    return windows, 0


def block_view(windows, block):
    """The columns a block of sub-models sees and its windows within them.

    Parameters
    ----------
    windows : ndarray of shape (d, k)
        From :func:`local_windows` (dummy index ``d``).
    block : ndarray of shape (b,)
        Coordinates of the block.

    Returns
    -------
    halo : ndarray of shape (h,)
        Sorted coordinates in the block's windows (the block and its halo).
    local : ndarray of shape (b, k)
        The block's windows as positions in ``halo`` (dummy ``h``).
    core : ndarray of shape (b,)
        Positions of the block's own coordinates in ``halo``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.localization import block_view
    >>> windows = np.array([[0, 1, 4], [1, 0, 2], [2, 1, 3], [3, 2, 4]])
    >>> [a.tolist() for a in block_view(windows, np.array([2, 3]))]
    [[1, 2, 3], [[1, 0, 2], [2, 1, 3]], [1, 2]]
    """
    d = windows.shape[0]
    rows = windows[block]
    halo = np.union1d(rows[rows < d], block)
    position = np.full(d + 1, len(halo), dtype=np.int64)
    position[halo] = np.arange(len(halo))
    return halo, position[rows], position[block]


def _stacked_matmul(h, weight):
    """``h @ weight`` for ``h`` (g, n, i) and stacked ``weight`` (g or 1, i, o)."""
    if weight.shape[0] == 1 and h.shape[0] > 1:
        # One shared layer: a single large matmul beats a broadcast batched one.
        return torch.matmul(h.reshape(-1, h.shape[2]), weight[0]).view(h.shape[0], h.shape[1], -1)
    return torch.matmul(h, weight)


def _stacked_affine(h, weight, bias):
    """``h @ weight + bias`` fused where the shapes allow (``baddbmm``)."""
    if weight.shape[0] == h.shape[0] and bias.shape[0] == h.shape[0] and bias.shape[1] == h.shape[1]:
        return torch.baddbmm(bias, h, weight)
    return _stacked_matmul(h, weight) + bias


class LocalNoiseModel(nn.Module):
    """Noise predictor whose output ``i`` sees only its window of the input.

    Output ``i`` is ``s_t x_{c_i} + a_t F_i(x[windows[i]], mask[i], t)``
    (the preconditioning of :func:`~sklearn_diffusion.networks.precondition`
    on the sub-model's own coordinate ``c_i``), where ``F_i`` is a small
    time-conditioned residual MLP. The ``m`` MLPs have stacked weights and
    run as batched matmuls; with ``shared=True`` one MLP serves every window.
    The last layer starts at zero (exact for standardized Gaussian data).

    Parameters
    ----------
    windows : array-like of int, shape (m, k)
        Input columns of each output; the value ``n_inputs`` is the dummy
        (a zero input, flagged by the mask).
    centres : array-like of int, shape (m,)
        Input column of each output's own coordinate.
    centre_slot : int
        Slot of ``centres[i]`` in ``windows[i]``.
    n_inputs : int
        Number of input columns.
    hidden_layer_sizes : tuple of int, default=(32, 32)
    shared : bool, default=False
    time_embedding_dim : int, default=16
    generator : torch.Generator, default=None
        Source of the initial weights; ``None`` leaves the stacked layers at
        zero (for a network whose weights are loaded next).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.localization import LocalNoiseModel
    >>> net = LocalNoiseModel([[0, 1], [1, 0]], [0, 1], 0, 2,
    ...                       generator=torch.Generator().manual_seed(0))
    >>> net(torch.randn(4, 2), torch.ones(4)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        windows,
        centres,
        centre_slot,
        n_inputs,
        hidden_layer_sizes=(32, 32),
        shared=False,
        time_embedding_dim=16,
        *,
        generator=None,
    ):
        super().__init__()
        windows = torch.as_tensor(np.asarray(windows), dtype=torch.long)
        self.register_buffer("windows", windows)
        self.register_buffer("centres", torch.as_tensor(np.asarray(centres), dtype=torch.long))
        self.register_buffer("mask", (windows < n_inputs).float())
        self.centre_slot = int(centre_slot)
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)
        m = 1 if shared else windows.shape[0]
        widths = [2 * windows.shape[1], *hidden_layer_sizes]
        self.time_embedding = TimeEmbedding(time_embedding_dim)
        self.time_bias = StackedLinear(m, time_embedding_dim, sum(hidden_layer_sizes))
        self.layers = nn.ModuleList(StackedLinear(m, i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.output = StackedLinear(m, widths[-1], 1)
        if generator is not None:
            init_parameters(self, generator)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def gather(self, x):
        """Windows of ``x`` (n, n_inputs): shape (n, m, k), dummy slots zero."""
        return nn.functional.pad(x, (0, 1))[:, self.windows]

    def residual(self, win, t, *, centre_derivative=False):
        """``F(win, t)``, shape (n, m), from windows (n, m, k) and ``t`` (n,).

        With ``centre_derivative=True``, also ``d F_i / d win[:, i, centre_slot]``
        (n, m): a one-hot tangent carried forward through the layers by hand,
        one extra matmul per layer. Unlike ``torch.func.jvp`` this uses no
        process-wide forward-AD state, so threads can score with one model.
        """
        n, _, k = win.shape
        h = win.transpose(0, 1)
        # The mask of a window does not depend on the row, so its part of the
        # first layer is a per-window constant: folded into the biases with
        # the layers' own biases and the time biases, each layer is one fused
        # matmul-and-add (the elementwise adds dominated the step time).
        first = self.layers[0]
        constant = [torch.matmul(self.mask[:, None, :], first.weight[:, k:]) + first.bias]
        constant += [layer.bias for layer in self.layers[1:]]
        emb = self.time_embedding(t)
        # One time-bias matmul per layer, not one split afterwards: the
        # split's backward would concatenate (m, n, width) gradients.
        weights_t = torch.split(self.time_bias.weight, self.hidden_layer_sizes, dim=2)
        biases_t = torch.split(self.time_bias.bias, self.hidden_layer_sizes, dim=2)
        biases = []
        for const, weight_t, bias_t in zip(constant, weights_t, biases_t):
            const = const + bias_t
            if weight_t.shape[0] == 1:
                biases.append(const + torch.matmul(emb, weight_t[0])[None])
            else:
                biases.append(torch.baddbmm(const, emb.expand(weight_t.shape[0], -1, -1), weight_t))
        dh = None
        for depth, (layer, bias) in enumerate(zip(self.layers, biases)):
            weight = layer.weight[:, :k] if depth == 0 else layer.weight
            pre = _stacked_affine(h, weight, bias)
            out = nn.functional.silu(pre)
            # Equal widths are residual; the first layer's input is the
            # window and its mask (2 k wide), as if they were concatenated.
            residual = layer.weight.shape[1] == layer.weight.shape[2]
            if centre_derivative:
                # The tangent starts as the one-hot at the centre slot: its
                # first product is that row of the first weight.
                if depth == 0:
                    step = weight[:, None, self.centre_slot]
                    one_hot = torch.zeros(1, 1, 2 * k, dtype=h.dtype, device=h.device)
                    one_hot[..., self.centre_slot] = 1.0
                    dh = one_hot if residual else 0.0
                else:
                    step = _stacked_matmul(dh, weight)
                # step * silu'(pre) in one fused kernel (autograd's own): the
                # five elementwise passes it replaces took about a third of a
                # profiled divergence call.
                d_out = torch.ops.aten.silu_backward(step.expand_as(pre), pre)
                dh = dh + d_out if residual else d_out
            if depth == 0 and residual:
                h = out + torch.cat([h, self.mask[:, None, :].expand(-1, n, -1)], dim=2)
            else:
                h = h + out if residual else out
        res = _stacked_affine(h, self.output.weight, self.output.bias)[..., 0].T
        if not centre_derivative:
            return res
        return res, _stacked_matmul(dh, self.output.weight)[..., 0].T

    def forward(self, x, t):
        """Noise prediction, shape (n, m), for ``x`` (n, n_inputs) and ``t`` (n,)."""
        return precondition(self.residual(self.gather(x), t), x[:, self.centres], t)

    def noise_and_self_derivative(self, x, t):
        """Noise ``e`` (n, m) and ``d e_i / d x_{c_i}`` (n, m) in one forward-mode pass.

        ``F_i`` depends on ``x`` only through window ``i``, where ``x_{c_i}``
        sits once, at the centre slot: a one-hot tangent at every window's
        centre slot, carried forward (:meth:`residual`), gives all the
        diagonal Jacobian entries at the cost of about one forward pass,
        exactly.
        """
        residual, d_residual = self.residual(self.gather(x), t, centre_derivative=True)
        noise = precondition(residual, x[:, self.centres], t)
        d_noise = precondition(d_residual, torch.ones_like(d_residual), t)
        return noise, d_noise


def local_score_divergence(model):
    """``(x, t) -> (score, exact divergence)`` of a :class:`LocalNoiseModel` over all ``d``.

    The model must predict every input coordinate (``centres = arange(d)``).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.localization import LocalNoiseModel, local_score_divergence
    >>> net = LocalNoiseModel([[0, 1], [1, 0]], [0, 1], 0, 2,
    ...                       generator=torch.Generator().manual_seed(0))
    >>> score, div = local_score_divergence(net)(torch.randn(3, 2), torch.full((3,), 20.0))
    >>> div.tolist()  # untrained: the standard Gaussian score -x, divergence -d
    [-2.0, -2.0, -2.0]
    """

    def score_div(x, t):
        noise, d_noise = model.noise_and_self_derivative(x, t)
        return score_from_noise(noise, t), score_from_noise(d_noise, t).sum(dim=1)

    return score_div
