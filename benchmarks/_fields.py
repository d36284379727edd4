"""Gaussian Markov random fields with a closed-form score, for the benchmarks.

Precision ``P = I + coupling * L`` with ``L`` the graph Laplacian of a ring or
of a 4-neighbour square lattice: banded (local) precision, dense covariance.
"""

import numpy as np
import torch

from sklearn_diffusion.networks import score_from_noise
from sklearn_diffusion.schedules import gaussian_score, perturb


def field_precision(kind, d, coupling=1.0):
    """(d, d) precision of a ``"ring"`` or ``"lattice"`` (``d`` a square) field.

    ``kind="graded"`` is the lattice with the weight of each edge growing
    linearly with its mean column, from ``0.2 * coupling`` on the first column
    to ``3 * coupling`` on the last: a field whose dependence is not the same
    everywhere (not translation-invariant), unlike the others.
    """
    if kind == "graded":
        side = int(round(np.sqrt(d)))
        column = np.tile(np.arange(side, dtype=float), side)
        weight = 0.2 + 2.8 * (column[:, None] + column[None, :]) / (2 * (side - 1))
        adjacency = field_precision("lattice", d) - np.eye(d)
        adjacency = -np.where(adjacency < 0, adjacency, 0) * weight
        return np.eye(d) + coupling * (np.diag(adjacency.sum(1)) - adjacency)
    adjacency = np.zeros((d, d))
    if kind == "ring":
        i = np.arange(d)
        adjacency[i, (i + 1) % d] = adjacency[(i + 1) % d, i] = 1
    else:
        side = int(round(np.sqrt(d)))
        grid = np.arange(d).reshape(side, side)
        for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
            adjacency[a.ravel(), b.ravel()] = adjacency[b.ravel(), a.ravel()] = 1
    laplacian = np.diag(adjacency.sum(1)) - adjacency
    return np.eye(d) + coupling * laplacian


def field_sample(precision, n, seed):
    """``n`` rows of ``N(0, P^{-1})``."""
    cov = np.linalg.inv(precision)
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(cov)), cov, size=n), cov


def relative_score_errors(est, cov, times, n_test=1000, seed=123):
    """``E||s_hat - s||^2 / E||s||^2`` per noise level, on fresh rows, in the
    standardized coordinates the estimator's model works in."""
    inv_scale = 1 / est.scale_
    mean = torch.tensor(-est.mean_ * inv_scale)
    cov_z = torch.tensor(inv_scale[:, None] * cov * inv_scale)
    g = torch.Generator().manual_seed(seed)
    root = torch.linalg.cholesky(cov_z)
    x0 = mean + torch.randn(n_test, len(mean), generator=g, dtype=torch.float64) @ root.T
    model = est.model_
    errors = []
    for t in times:
        tt = torch.full((n_test,), float(t), dtype=torch.float64)
        x = perturb(x0, tt, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        exact = gaussian_score(x, tt, mean, cov_z)
        with torch.no_grad():
            xf, tf = x.float(), tt.float()
            score = torch.cat([
                score_from_noise(model(xf[r], tf[r]), tf[r])
                for r in torch.split(torch.arange(n_test), 250)
            ])
        errors.append(float(((score.double() - exact) ** 2).sum() / (exact**2).sum()))
    return errors


def field_log_density(precision, X):
    """Exact log-density of each row of ``X`` (n, d) under ``N(0, P^{-1})``."""
    _, logdet = np.linalg.slogdet(precision)
    quadratic = np.einsum("ij,jk,ik->i", X, precision, X)
    return 0.5 * (logdet - len(precision) * np.log(2 * np.pi) - quadratic)


def sinh_field(X, cov, scale):
    """Rows ``y = sinh(scale * x / sd)`` of a heavy-tailed field, ``sd = sqrt(diag(cov))``.

    Each coordinate's ``scale * x / sd`` is ``N(0, scale^2)``, so the
    marginals are identical and the dependence (the copula) is the Gaussian
    field's.
    """
    return np.sinh(scale * X / np.sqrt(np.diag(cov)))


def sinh_field_log_density(precision, cov, scale, Y):
    """Exact log-density of each row of ``Y`` from :func:`sinh_field`.

    ``x = sd * asinh(y) / scale`` and ``dx_i / dy_i = sd_i / (scale * sqrt(1 + y_i^2))``,
    so ``log p(y) = log N(x; 0, P^{-1}) + sum_i [log(sd_i / scale) - log(1 + y_i^2) / 2]``.
    """
    sd = np.sqrt(np.diag(cov))
    X = sd * np.arcsinh(Y) / scale
    log_jacobian = np.sum(np.log(sd / scale) - 0.5 * np.log1p(Y**2), axis=1)
    return field_log_density(precision, X) + log_jacobian


def tukey_h_field(X, cov, h):
    """Rows ``y = u exp(h u^2 / 2)``, ``u = x / sd``, of a power-tailed field.

    Tukey's h-transform of each standardized coordinate: symmetric, with
    tails like ``|y|^(-1 / h)`` (``h = 0.2``: moments of order below 5
    exist, the kurtosis does not), heavier than :func:`sinh_field`'s
    log-normal-like tails; the copula is the Gaussian field's.
    """
    U = X / np.sqrt(np.diag(cov))
    return U * np.exp(0.5 * h * U**2)


def tukey_h_field_log_density(precision, cov, h, Y):
    """Exact log-density of each row of ``Y`` from :func:`tukey_h_field`.

    ``h y^2 = h u^2 exp(h u^2)``, so ``h u^2 = W(h y^2)`` (Lambert's W) and
    ``dy / du = exp(h u^2 / 2) (1 + h u^2)``; with ``x = sd u``,
    ``log p(y) = log N(x; 0, P^-1) + sum_i [log sd_i - h u_i^2 / 2 - log(1 + h u_i^2)]``.
    """
    from scipy.special import lambertw

    sd = np.sqrt(np.diag(cov))
    hu2 = np.real(lambertw(h * Y**2))
    U = np.sign(Y) * np.sqrt(hu2 / h)
    log_jacobian = np.sum(np.log(sd) - 0.5 * hu2 - np.log1p(hu2), axis=1)
    return field_log_density(precision, sd * U) + log_jacobian
