"""Per-column Gaussianization: a monotone map of each column to a normal law (L1).

Bounded, skewed or multimodal columns (dequantized pixels, sensor readings
clipped at a range) suit a Gaussian-noise diffusion badly: the model spends
its capacity, and its smoothing, on the edges of each marginal. As
normalizing flows do, each column ``x_j`` is first mapped by an increasing
bijection ``g_j`` to a roughly standard normal ``z_j``, the diffusion models
the dependence between the ``z_j``, and the density on the user's scale is
``log p(x) = log p_Z(g(x)) + sum_j log g_j'(x_j)`` (change of variables).

``g_j = Phi^{-1} o F_j`` with ``F_j`` the distribution function of a Gaussian
kernel density estimate of the column, its bandwidth chosen by leave-one-out
likelihood. ``g_j`` is tabulated at knots and interpolated linearly, so the
map, its inverse and its log-derivative (constant between knots) are exact
for the map actually used, and cost ``O(log n_knots)`` per entry. Beyond the
outer knots the map continues with its end slopes: Gaussian tails.
"""

import math

import numpy as np
import torch

__all__ = ["fit_gaussianizer", "gaussianize", "degaussianize", "resample_knots"]

#: Candidate kernel bandwidths, in standard deviations of the column:
#: ``2^(-k/2)`` from 1 down to about 1e-3. Each halves the squared bandwidth,
#: so one bandwidth's kernel values are the square of the previous one's
#: (see :func:`_loo_select`).
BANDWIDTHS = tuple(2.0 ** (-k / 2) for k in range(21))

#: Candidate weights of the column's Gaussian fit in its marginal; the
#: smallest is a floor that keeps far rows at a finite, modest cost.
WEIGHTS = (0.01, 0.03, 0.1, 0.3, 1.0 - 1e-6)


def _log_mixture(log_kde, values, weight):
    # log((1 - w) kde + w N(0, 1)): the standard normal is the column's own
    # Gaussian fit (columns are standardized), so its weight moves the map
    # continuously towards plain standardization and keeps Gaussian tails
    # of unit width beyond the training range.
    log_normal = -0.5 * values**2 - 0.5 * math.log(2 * math.pi)
    return torch.logaddexp(math.log1p(-weight) + log_kde, math.log(weight) + log_normal)


def _loo_select(values, weights):
    # Leave-one-out log-likelihood of the mixture for every (bandwidth,
    # weight) pair.
    v = torch.as_tensor(values, dtype=torch.float64)
    m = v.shape[0]
    sq = (v[:, None] - v[None, :]) ** 2
    # Leave out every copy of a row's value, not only the row: repeated
    # values (atoms of a sensor's reading, a default of 0) would otherwise
    # pull the bandwidth to zero and the map to spikes that held-out rows
    # between the atoms pay for (61 nats on ADBench's cardio).
    sq[sq == 0] = math.inf
    # Each row's kernel sum is taken relative to its nearest other value,
    # whose kernel is then exactly 1, so nothing underflows that matters.
    # With h_k^2 = 2^-k, exp(-D / 2 h_{k+1}^2) = exp(-D / 2 h_k^2)^2: one
    # exponential and then a squaring per bandwidth, in float64 (rounding
    # doubles per squaring, 1e-11 nats after 20), four times as fast as a
    # float32 logsumexp per bandwidth.
    nearest = sq.min(dim=1, keepdim=True).values
    kernel = torch.exp(-0.5 * (sq - nearest))
    log_norm = math.log((m - 1) * math.sqrt(2 * math.pi))
    log_kde = []
    for k, h in enumerate(BANDWIDTHS):
        if k:
            kernel.square_()
        log_kde.append(torch.log(kernel.sum(dim=1)) - 0.5 * nearest[:, 0] / h**2
                       - math.log(h) - log_norm)
    log_kde = torch.stack(log_kde)
    scores = torch.stack([_log_mixture(log_kde, v, w).mean(dim=1) for w in weights], dim=1)
    i, k = np.unravel_index(int(torch.argmax(scores)), scores.shape)
    return BANDWIDTHS[i], weights[k]


def _normal_quantiles(x, reference, h, weight):
    # Phi^{-1}(F(x)) for the mixture's distribution function, computed from
    # the smaller of its two tails, so it stays finite and strictly
    # increasing far into either tail.
    from scipy.special import ndtri_exp

    x = torch.as_tensor(x, dtype=torch.float64)
    u = (x[:, None] - torch.as_tensor(reference, dtype=torch.float64)[None, :]) / h
    # Each kernel's smaller tail, where erfc is precise (torch's ndtr is
    # not: it returns 0 for ndtr(-10)); the larger one is 1 minus it.
    small = 0.5 * torch.erfc(u.abs() * math.sqrt(0.5))
    below = u < 0
    cdf = torch.where(below, small, 1 - small).mean(dim=1)
    sf = torch.where(below, 1 - small, small).mean(dim=1)
    cdf = (1 - weight) * cdf + weight * 0.5 * torch.erfc(-x * math.sqrt(0.5))
    sf = (1 - weight) * sf + weight * 0.5 * torch.erfc(x * math.sqrt(0.5))
    lower = cdf < sf
    tail = torch.where(lower, cdf, sf)
    log_tail = torch.log(tail)
    # The outer knots' tails underflow in linear space: log space there.
    far = (tail < 1e-250).nonzero()[:, 0]
    if len(far):
        sign = torch.where(lower[far], 1.0, -1.0).double()
        log_kde = (torch.logsumexp(torch.special.log_ndtr(sign[:, None] * u[far]), dim=1)
                   - math.log(reference.shape[0]))
        log_tail[far] = torch.logaddexp(math.log1p(-weight) + log_kde,
                                        math.log(weight) + torch.special.log_ndtr(sign * x[far]))
    z = ndtri_exp(log_tail.numpy())
    return np.where(lower.numpy(), z, -z)


def fit_gaussianizer(X, *, generator, max_reference=1000, n_selection=500, n_knots=256,
                     weights=WEIGHTS):
    """Knots of the per-column maps ``g_j = Phi^{-1} o F_j`` for standardized ``X``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Standardized training rows (float64); NaN (a missing entry) is left
        out of its column's fit.
    generator : torch.Generator
        Draws the reference rows when there are more than ``max_reference``.
    max_reference : int, default=1000
        Rows behind each column's kernel density (a random subset beyond it).
    n_selection : int, default=500
        Reference rows whose leave-one-out likelihood chooses the bandwidth;
        it is then rescaled by Silverman's ``(n_selection / n_reference)^(1/5)``.
    n_knots : int, default=256
        Knots spread evenly over each column's range, plus as many at the
        reference quantiles, so both flat and crowded regions are resolved.
    weights : tuple of float
        Candidate weights of the standard normal in each column's marginal,
        chosen together with the kernel bandwidth (one of
        :data:`BANDWIDTHS`, standardized units) by leave-one-out likelihood.

    Returns
    -------
    x_knots, z_knots : ndarray of shape (d, k)
        Strictly increasing knots of each column's map, ``z = g(x)``.
    bandwidth, weight : ndarray of shape (d,)
        Chosen kernel bandwidth and normal weight of each column.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_diffusion.marginals import fit_gaussianizer, gaussianize
    >>> X = np.random.default_rng(0).uniform(-1.7, 1.7, size=(300, 2))
    >>> knots = fit_gaussianizer(X, generator=torch.Generator().manual_seed(0))
    >>> Z, log_jac = gaussianize(X, *knots[:2])
    >>> bool(abs(Z.std() - 1) < 0.1)
    True
    """
    n, d = X.shape
    if n > max_reference:
        rows = torch.randperm(n, generator=generator)[:max_reference].numpy()
        reference = X[np.sort(rows)]
    else:
        reference = X
    x_knots, z_knots, chosen = [], [], np.empty((2, d))
    for j in range(d):
        ref = reference[:, j]
        ref = ref[~np.isnan(ref)]
        if len(ref) == 0:
            # No observed entry among the reference rows: the standardization.
            ref = np.zeros(1)
        # A column whose reference rows are all equal has no spread to
        # estimate: its map is the standardization.
        if np.ptp(ref) > 0:
            h, w = _loo_select(ref[:n_selection], weights)
            h *= (min(n_selection, len(ref)) / len(ref)) ** 0.2
        else:
            h, w = 1.0, weights[-1]
        # Even knots over the data, knots at its quantiles, and knots ever
        # sparser out to 64 standard deviations beyond it: there the normal
        # part dominates, so the end slopes that continue the map are those
        # of its unit-width Gaussian tails, not of a narrow kernel's.
        offsets = np.geomspace(h, 64.0, 48)
        xs = np.unique(np.concatenate([
            np.linspace(ref.min(), ref.max(), n_knots),
            np.quantile(ref, np.linspace(0, 1, n_knots)),
            ref.min() - offsets,
            ref.max() + offsets,
        ]))
        zs = _normal_quantiles(xs, ref, h, w)
        # Keep the knots where the map is numerically strictly increasing
        # (deep in a tail neighbouring knots can round to the same z).
        keep = np.concatenate([[True], np.diff(zs) > 1e-9 * np.maximum(1, np.abs(zs[1:]))])
        x_knots.append(xs[keep])
        z_knots.append(zs[keep])
        chosen[:, j] = h, w
    k = min(len(x) for x in x_knots)
    # Columns keep a common knot count so the knots stack into arrays:
    # a column with more knots is thinned evenly (ends kept).
    thin = [np.unique(np.linspace(0, len(x) - 1, k).round().astype(int)) for x in x_knots]
    return (
        np.stack([x[i] for x, i in zip(x_knots, thin)]),
        np.stack([z[i] for z, i in zip(z_knots, thin)]),
        chosen[0],
        chosen[1],
    )


def _piecewise_linear(values, knots_in, knots_out):
    # Linear interpolation per column, continued with the end slopes.
    out = np.empty_like(values)
    log_slope = np.empty_like(values)
    for j in range(values.shape[1]):
        a, b = knots_in[j], knots_out[j]
        i = np.clip(np.searchsorted(a, values[:, j]) - 1, 0, len(a) - 2)
        slope = (b[i + 1] - b[i]) / (a[i + 1] - a[i])
        out[:, j] = b[i] + slope * (values[:, j] - a[i])
        log_slope[:, j] = np.log(slope)
    return out, log_slope


def gaussianize(X, x_knots, z_knots):
    """``Z = g(X)`` column by column, and ``log |det dg/dx|`` per row.

    ``X`` (n, d) and the knots (d, k) from :func:`fit_gaussianizer`.

    Returns
    -------
    Z : ndarray of shape (n, d)
    log_jacobian : ndarray of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.marginals import gaussianize
    >>> knots = np.array([[0.0, 1.0, 3.0]])
    >>> Z, log_jac = gaussianize(np.array([[0.5], [2.0]]), knots, 2 * knots)
    >>> Z.ravel().tolist(), np.round(log_jac, 4).tolist()
    ([1.0, 4.0], [0.6931, 0.6931])
    """
    Z, log_slope = _piecewise_linear(X, x_knots, z_knots)
    return Z, log_slope.sum(axis=1)


def degaussianize(Z, x_knots, z_knots):
    """The inverse map ``X = g^{-1}(Z)``, column by column.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.marginals import degaussianize
    >>> knots = np.array([[0.0, 1.0, 3.0]])
    >>> degaussianize(np.array([[1.0], [4.0]]), knots, 2 * knots).ravel().tolist()
    [0.5, 2.0]
    """
    return _piecewise_linear(Z, z_knots, x_knots)[0]


def resample_knots(x_knots, z_knots, k):
    """Column maps (m, k0) laid out on ``k`` knots each, the same piecewise-linear maps.

    Thinned evenly (ends kept) as :func:`fit_gaussianizer` does when there
    are more; midpoints inserted in the widest gaps when there are fewer,
    which leaves each map and its end slopes unchanged. Lets the maps of a
    few refitted columns join the others' arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.marginals import resample_knots
    >>> x, z = resample_knots(np.array([[0.0, 2.0]]), np.array([[0.0, 4.0]]), 3)
    >>> x.tolist(), z.tolist()
    ([[0.0, 1.0, 2.0]], [[0.0, 2.0, 4.0]])
    """
    x_out, z_out = [], []
    for x, z in zip(x_knots, z_knots):
        if len(x) >= k:
            keep = np.unique(np.linspace(0, len(x) - 1, k).round().astype(int))
            x, z = x[keep], z[keep]
        while len(x) < k:
            gaps = np.argsort(-np.diff(x), kind="stable")[: k - len(x)]
            mid = (x[gaps] + x[gaps + 1]) / 2
            z = np.insert(z, gaps + 1, np.interp(mid, x, z))
            x = np.insert(x, gaps + 1, mid)
        x_out.append(x)
        z_out.append(z)
    return np.stack(x_out), np.stack(z_out)
