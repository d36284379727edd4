"""The reference Gaussian mixture of the diffusion estimators (L4: fitted with scikit-learn).

The score network of :class:`~sklearn_diffusion.BootstrappedScoreEstimator`
learns a correction to the exact score of a Gaussian mixture fitted by BIC in
the model's space (:class:`~sklearn_diffusion.networks.MixtureReference`);
the mixture's closed-form held-out likelihood also chooses the column map
(``column_transform="auto"``).
"""

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

__all__ = ["fit_reference_mixture", "mixture_floor", "standard_normal_reference", "mixture_log_density"]

#: Component counts tried for ``reference="mixture"``.
_MIXTURE_COMPONENTS = (1, 2, 4, 8, 16, 32)

#: Largest floor on each mixture covariance's eigenvalues (model space, unit
#: variance): half the noise of the smallest smoothing, ``e^{2 t_min} - 1``
#: = 0.002 at the default ``t_min`` (see :func:`mixture_floor`).
_MIXTURE_REG_COVAR = 1e-3


def mixture_floor(t_min):
    """Floor on the reference mixture's eigenvalues for a model whose smallest time is ``t_min``.

    Half the variance of the noise at ``t_min``, at most 1e-3: no density
    the model returns is sharper than that noise, and a thinner direction of
    the mixture only makes the score stiff.

    Examples
    --------
    >>> from sklearn_diffusion.reference import mixture_floor
    >>> mixture_floor(1e-3), round(mixture_floor(1e-5), 8)
    (0.001, 1e-05)
    """
    return min(_MIXTURE_REG_COVAR, 0.5 * math.expm1(2.0 * t_min))


def fit_reference_mixture(Z, random_state=0, floor=_MIXTURE_REG_COVAR):
    """The Gaussian mixture of lowest BIC on the complete rows of ``Z``, as eigen-decompositions.

    Candidates: 1, 2, 4, ..., 32 components (skipping counts above
    ``n / (d + 1)``) with full, diagonal, tied or spherical covariances,
    every one of them fitted.
    With fewer than ``2 (d + 1)`` complete rows, ``N(0, I)``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Rows in the model's space; NaN marks a missing entry (such rows are
        not used).
    random_state : int, default=0
        Seed of the mixtures' initialization.
    floor : float, default=1e-3
        Smallest eigenvalue of a component's covariance (``reg_covar`` of
        the fits, and a floor after them); see :func:`mixture_floor`.

    Returns
    -------
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    eigenvalues : ndarray of shape (k, d)
    eigenvectors : ndarray of shape (k, d, d)
        Orthonormal eigenvectors of each component's covariance, as columns.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.reference import fit_reference_mixture
    >>> rng = np.random.default_rng(0)
    >>> Z = np.concatenate([rng.normal(-3, 1, (200, 2)), rng.normal(3, 1, (200, 2))])
    >>> weights, means, eigenvalues, eigenvectors = fit_reference_mixture(Z)
    >>> len(weights)
    2
    """
    Z = Z[~np.isnan(Z).any(axis=1)]
    n, d = Z.shape
    if n < 2 * (d + 1):
        return standard_normal_reference(d)
    best_bic, best = np.inf, None
    # Every candidate of the range: the BIC is not always unimodal in k, and
    # a search that stops at its first rise can miss the optimum.
    for k in _MIXTURE_COMPONENTS:
        if k > 1 and k > n / (d + 1):
            break
        for covariance_type in ("full", "diag", "tied", "spherical"):
            gm = GaussianMixture(k, covariance_type=covariance_type,
                                 reg_covar=floor, random_state=random_state)
            try:
                with warnings.catch_warnings():
                    # A candidate that has not converged still has a BIC.
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    gm.fit(Z)
            except ValueError:  # a collapsed component: not a sane candidate
                continue
            bic = gm.bic(Z)
            if bic < best_bic:
                best_bic, best = bic, gm
    if best is None:
        return standard_normal_reference(d)
    k, kind = best.n_components, best.covariance_type
    if kind in ("diag", "spherical"):
        variances = np.broadcast_to(np.reshape(best.covariances_, (k, -1)), (k, d))
        return best.weights_, best.means_, variances.copy(), np.tile(np.eye(d), (k, 1, 1))
    covariances = best.covariances_[None] if kind == "tied" else best.covariances_
    eigenvalues, eigenvectors = np.linalg.eigh(covariances)
    eigenvalues = np.maximum(eigenvalues, floor)
    if kind == "tied":
        eigenvalues, eigenvectors = np.tile(eigenvalues, (k, 1)), np.tile(eigenvectors, (k, 1, 1))
    return best.weights_, best.means_, eigenvalues, eigenvectors


def standard_normal_reference(n_features):
    """``N(0, I)`` as a one-component reference: weights, means, eigenvalues, eigenvectors.

    Examples
    --------
    >>> from sklearn_diffusion.reference import standard_normal_reference
    >>> [a.shape for a in standard_normal_reference(3)]
    [(1,), (1, 3), (1, 3), (1, 3, 3)]
    """
    d = n_features
    return np.ones(1), np.zeros((1, d)), np.ones((1, d)), np.eye(d)[None]


def mixture_log_density(Z, weights, means, eigenvalues, eigenvectors):
    """Log-density (float64) of the rows ``Z`` (n, d) under a reference mixture.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.reference import mixture_log_density, standard_normal_reference
    >>> float(mixture_log_density(np.zeros((1, 2)), *standard_normal_reference(2))[0])
    -1.8378770664093453
    """
    proj = np.einsum("nd,kde->nke", Z, eigenvectors) - np.einsum("kd,kde->ke", means, eigenvectors)
    log_det = np.log(eigenvalues).sum(axis=1)
    components = np.log(weights) - 0.5 * (
        (proj**2 / eigenvalues).sum(axis=2) + log_det + Z.shape[1] * math.log(2 * math.pi)
    )
    top = components.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(components - top).sum(axis=1, keepdims=True)))[:, 0]
