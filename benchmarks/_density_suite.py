"""Data sets of the held-out log-likelihood benchmark (``density.py``).

Each data set is a :class:`Dataset`: training and test rows (float64) and,
for the synthetic targets, the exact log-density. Real data sets follow
``DESIGN.md`` section 5 ("Density quality"):

* ``demo``: the README demo's split (digits, 15 PCA components), exactly as
  ``python -m sklearn_diffusion.demo`` prints it, so not dequantized.
* ``digits64``: the 64 pixels of digits dequantized as ``(X + U[0, 1)) / 17``.
* ``wine``, ``breast_cancer``, ``iris`` and ``ad_<stem>`` (the normal rows of
  each ADBench ``.npz``): dequantized by :func:`dequantize`, then standardized
  with a ``StandardScaler`` fitted on the training rows; these are scored on
  that standardized scale.
* Synthetic targets with a closed-form density (numpy, float64), on their own
  scale (not standardized): the methods handle scale themselves, and the truth
  is on this scale.

Run ``python benchmarks/_density_suite.py`` for the self-check of the exact
log-densities and a table of the suite.
"""

import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import betaln, digamma, gammaln, logsumexp
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from _adbench import DATA as ADBENCH
from _adbench import paths as adbench_paths

ADBENCH_CAP = 2000
MAX_DISTINCT = 50
N_TRAIN, N_TEST = 2000, 5000
# density.py --quick: a scikit-learn set, the README demo, a curved synthetic
# target with an exact density and an ADBench set, chosen cheap for the flows
# (about 3 minutes on two quiet cores).
QUICK = ("demo", "wine", "banana6", "ad_6_cardio")
DEQUANTIZATION_RULE = (
    "Dequantization: a column with at most 50 distinct values gets U[0, step) noise, step = its "
    "smallest gap between distinct values, drawn once (seeded) and shared by every method; "
    "digits64 is (pixels + U[0, 1)) / 17; demo is not dequantized."
)
LOG_2PI = np.log(2 * np.pi)


@dataclass
class Dataset:
    """One data set of the suite.

    Attributes
    ----------
    name : str
    X_train, X_test : ndarray of shape (n, d), float64
        Rows on the scale the benchmark scores on (see ``scale``).
    log_density : callable or None
        Exact log-density of an (n, d) array of rows on that scale; None for
        real data.
    scale : str
        ``"standardized"`` (StandardScaler fitted on the training rows) or
        ``"data"`` (the data's own scale).
    dequantized : int
        Number of columns given dequantization noise.
    dropped : int
        Number of columns dropped as constant on the training rows.
    """

    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    log_density: Optional[Callable[[np.ndarray], np.ndarray]] = None
    scale: str = "data"
    dequantized: int = 0
    dropped: int = 0

    @property
    def d(self):
        """Number of columns."""
        return self.X_train.shape[1]


# --------------------------------------------------------------------------- real data


def dequantize(X, rng):
    """Add uniform noise of its grid step to each column with few distinct values.

    A column with at most 50 distinct values (counted on all rows of ``X``)
    gets ``U[0, step)`` noise, ``step`` being its smallest gap between
    distinct values, so that a continuous density does not reward point
    masses. Constant columns have no step and are left alone.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    rng : numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        A dequantized copy (float64).
    n_dequantized : int
        Number of columns that got noise.
    """
    X = np.array(X, dtype=np.float64)
    # One draw for the whole array, so a column's noise does not depend on
    # which other columns are dequantized.
    noise = rng.random(X.shape)
    n_dequantized = 0
    for j in range(X.shape[1]):
        values = np.unique(X[:, j])
        if 2 <= len(values) <= MAX_DISTINCT:
            X[:, j] += noise[:, j] * np.diff(values).min()
            n_dequantized += 1
    return X, n_dequantized


def _rng(name, seed):
    """A generator for one data set: its own stream, reproducible from ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _standardized(name, X_train, X_test, **info):
    """A data set standardized with a StandardScaler fitted on its training rows."""
    scaler = StandardScaler().fit(X_train)
    return Dataset(
        name, scaler.transform(X_train), scaler.transform(X_test), scale="standardized", **info
    )


def _demo(seed):
    # The README demo's split, fixed whatever ``seed`` is: it is the demo.
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    pca = PCA(n_components=15, random_state=0).fit(X_train)
    return Dataset("demo", pca.transform(X_train), pca.transform(X_test))


def _digits64(seed):
    X, _ = load_digits(return_X_y=True)
    X = (X + np.random.default_rng(seed).random(X.shape)) / 17
    X_train, X_test = train_test_split(X, test_size=0.5, random_state=seed)
    return Dataset("digits64", X_train, X_test, dequantized=X.shape[1])


def _sklearn_loader(name, load):
    def loader(seed):
        X, n_dequantized = dequantize(load(return_X_y=True)[0], _rng(name, seed))
        X_train, X_test = train_test_split(X, test_size=0.5, random_state=seed)
        return _standardized(name, X_train, X_test, dequantized=n_dequantized)

    return loader


def _adbench_loader(path):
    name = f"ad_{path.stem}"

    def loader(seed):
        data = np.load(path)
        rng = _rng(name, seed)
        # Density of the normal class only; distinct values are counted on
        # these rows, the data set the benchmark models.
        X, n_dequantized = dequantize(data["X"][data["y"] == 0], rng)
        X_train, X_test = train_test_split(X, test_size=0.5, random_state=seed)
        # Random subsets keep the big sets affordable for KDE and the flows.
        if len(X_train) > ADBENCH_CAP:
            X_train = X_train[rng.choice(len(X_train), ADBENCH_CAP, replace=False)]
        if len(X_test) > ADBENCH_CAP:
            X_test = X_test[rng.choice(len(X_test), ADBENCH_CAP, replace=False)]
        # A column constant on the training rows has no density to learn (and
        # a zero scale); it is dropped from both splits.
        keep = np.ptp(X_train, axis=0) > 0
        return _standardized(
            name, X_train[:, keep], X_test[:, keep],
            dequantized=n_dequantized, dropped=int((~keep).sum()),
        )

    return loader


# --------------------------------------------------------------------------- synthetic targets


class GaussianMixtureTarget:
    """Mixture of Gaussians with full covariances.

    Parameters
    ----------
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    covariances : ndarray of shape (k, d, d)
    """

    entropy = None  # no closed form

    def __init__(self, weights, means, covariances):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.covariances = np.asarray(covariances, dtype=np.float64)
        self.cholesky = np.linalg.cholesky(self.covariances)

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, self.means.shape[1]))
        return self.means[component] + np.einsum("nij,nj->ni", self.cholesky[component], z)

    def log_density(self, X):
        """Exact log-density of each row of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        d = X.shape[1]
        per_component = []
        for w, mean, chol in zip(self.weights, self.means, self.cholesky):
            white = solve_triangular(chol, (X - mean).T, lower=True)
            log_det = 2 * np.log(np.diag(chol)).sum()
            per_component.append(
                np.log(w) - 0.5 * ((white**2).sum(axis=0) + log_det + d * LOG_2PI)
            )
        return logsumexp(np.stack(per_component, axis=1), axis=1)


class BananaTarget:
    """Pairs of Gaussian coordinates bent into bananas, then rotated.

    In each pair ``(u, w)``: ``u ~ N(0, a^2)`` and
    ``w = sigma * z + b * (u^2 - a^2)`` with ``z ~ N(0, 1)``; the map from
    ``(u, sigma * z)`` is triangular with unit diagonal, so volume-preserving.
    The rows are then multiplied by a fixed orthogonal matrix (also
    volume-preserving), so every column mixes the curved pairs and the exact
    log-density is that of the pairs at the rotated-back point.

    Parameters
    ----------
    rotation : ndarray of shape (d, d)
        Orthogonal; ``d`` even.
    a, b, sigma : float
    """

    def __init__(self, rotation, a=2.0, b=0.25, sigma=0.5):
        self.rotation, self.a, self.b, self.sigma = rotation, a, b, sigma
        pairs = rotation.shape[0] // 2
        self.entropy = pairs * 0.5 * (np.log(2 * np.pi * np.e * a**2)
                                      + np.log(2 * np.pi * np.e * sigma**2))

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        d = self.rotation.shape[0]
        x = rng.standard_normal((n, d))
        u = self.a * x[:, 0::2]
        x[:, 0::2] = u
        x[:, 1::2] = self.sigma * x[:, 1::2] + self.b * (u**2 - self.a**2)
        return x @ self.rotation.T

    def log_density(self, X):
        """Exact log-density of each row of ``X``."""
        x = np.asarray(X, dtype=np.float64) @ self.rotation
        u, w = x[:, 0::2], x[:, 1::2]
        z = (w - self.b * (u**2 - self.a**2)) / self.sigma
        log_u = -0.5 * (u / self.a) ** 2 - np.log(self.a) - 0.5 * LOG_2PI
        log_w = -0.5 * z**2 - np.log(self.sigma) - 0.5 * LOG_2PI
        return (log_u + log_w).sum(axis=1)


class StudentTarget:
    """Multivariate Student t (heavy tails, correlated columns).

    Parameters
    ----------
    df : float
    shape : ndarray of shape (d, d)
        Scale matrix (positive definite); the location is 0.
    """

    def __init__(self, df, shape):
        self.df, self.shape = df, shape
        self.cholesky = np.linalg.cholesky(shape)
        d = shape.shape[0]
        self.log_det = 2 * np.log(np.diag(self.cholesky)).sum()
        self.log_norm = (gammaln((df + d) / 2) - gammaln(df / 2) - d / 2 * np.log(df * np.pi)
                         - self.log_det / 2)
        self.entropy = (-self.log_norm
                        + (df + d) / 2 * (digamma((df + d) / 2) - digamma(df / 2)))

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        d = self.shape.shape[0]
        z = rng.standard_normal((n, d)) @ self.cholesky.T
        return z / np.sqrt(rng.chisquare(self.df, size=(n, 1)) / self.df)

    def log_density(self, X):
        """Exact log-density of each row of ``X``."""
        d = self.shape.shape[0]
        white = solve_triangular(self.cholesky, np.asarray(X, dtype=np.float64).T, lower=True)
        return self.log_norm - (self.df + d) / 2 * np.log1p((white**2).sum(axis=0) / self.df)


class BoundedTarget:
    """Independent columns, each a Beta law stretched onto an interval.

    Parameters
    ----------
    marginals : list of (a, b, low, high)
        Column ``j`` is ``low + (high - low) * Beta(a, b)``; ``Beta(1, 1)`` is
        uniform.
    """

    def __init__(self, marginals):
        self.a, self.b, self.low, self.high = (np.array(m, dtype=np.float64)
                                               for m in zip(*marginals))
        width = self.high - self.low
        a, b = self.a, self.b
        self.entropy = float(np.sum(
            betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b)
            + (a + b - 2) * digamma(a + b) + np.log(width)
        ))

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        return self.low + (self.high - self.low) * rng.beta(self.a, self.b, size=(n, len(self.a)))

    def log_density(self, X):
        """Exact log-density of each row of ``X`` (``-inf`` outside the support)."""
        width = self.high - self.low
        u = (np.asarray(X, dtype=np.float64) - self.low) / width
        inside = np.all((u > 0) & (u < 1), axis=1)
        u = np.clip(u, 1e-300, 1 - 1e-16)  # keeps the logs finite; outside rows are reset below
        log_p = ((self.a - 1) * np.log(u) + (self.b - 1) * np.log1p(-u)
                 - betaln(self.a, self.b) - np.log(width)).sum(axis=1)
        return np.where(inside, log_p, -np.inf)


class FunnelTarget:
    """Neal's funnel: ``v ~ N(0, sigma_v^2)``, then ``x_i | v ~ N(0, exp(v))``.

    ``v`` is the first column. The scale of the other columns varies by a
    factor of about ``exp(3 * sigma_v)`` across the bulk of the data.

    Parameters
    ----------
    d : int
    sigma_v : float
    """

    def __init__(self, d=10, sigma_v=3.0):
        self.d, self.sigma_v = d, sigma_v
        self.entropy = 0.5 * np.log(2 * np.pi * np.e * sigma_v**2) + (d - 1) * 0.5 * (LOG_2PI + 1)

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        v = self.sigma_v * rng.standard_normal((n, 1))
        return np.hstack([v, np.exp(v / 2) * rng.standard_normal((n, self.d - 1))])

    def log_density(self, X):
        """Exact log-density of each row of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        v, x = X[:, :1], X[:, 1:]
        log_v = -0.5 * (v[:, 0] / self.sigma_v) ** 2 - np.log(self.sigma_v) - 0.5 * LOG_2PI
        log_x = -0.5 * x**2 * np.exp(-v) - 0.5 * v - 0.5 * LOG_2PI
        return log_v + log_x.sum(axis=1)


def _random_orthogonal(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _random_covariance(d, rng, low=0.25, high=2.0):
    # Eigenvalues in [low, high]: condition number at most high / low.
    q = _random_orthogonal(d, rng)
    return (q * rng.uniform(low, high, d)) @ q.T


# The parameters of each target come from its own fixed seed, so the target
# is the same for every ``seed`` of ``load_suite`` (which draws the rows).
def _gmm2d():
    angles = 2 * np.pi * np.arange(8) / 8
    means = 4 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixtureTarget(np.full(8, 1 / 8), means, np.tile(0.25 * np.eye(2), (8, 1, 1)))


def _gmm16():
    rng = np.random.default_rng(16)
    return GaussianMixtureTarget(
        rng.dirichlet(np.full(5, 5.0)),
        2.0 * rng.standard_normal((5, 16)),
        np.stack([_random_covariance(16, rng) for _ in range(5)]),
    )


def _banana6():
    return BananaTarget(_random_orthogonal(6, np.random.default_rng(6)))


def _student8():
    return StudentTarget(3.0, _random_covariance(8, np.random.default_rng(8), 0.5, 2.0))


def _uniform4():
    return BoundedTarget([(2, 5, 0, 1), (1, 1, -1, 1), (0.5, 0.5, 0, 1), (5, 2, 0, 100)])


def _funnel10():
    return FunnelTarget(10, 3.0)


def _gmm64():
    # Low rank plus diagonal: four strong directions per component over small
    # independent noise, like correlated pixels.
    rng = np.random.default_rng(64)
    loadings = rng.standard_normal((4, 64, 4))
    noise = rng.uniform(0.05, 0.25, (4, 64))
    covariances = np.einsum("kir,kjr->kij", loadings, loadings) + np.stack(
        [np.diag(n) for n in noise]
    )
    return GaussianMixtureTarget(np.full(4, 0.25), rng.standard_normal((4, 64)), covariances)


TARGETS = {
    "gmm2d": _gmm2d, "gmm16": _gmm16, "banana6": _banana6, "student8": _student8,
    "uniform4": _uniform4, "funnel10": _funnel10, "gmm64": _gmm64,
}


def _synthetic_loader(name):
    def loader(seed):
        target = TARGETS[name]()
        X = target.sample(N_TRAIN + N_TEST, _rng(name, seed))
        return Dataset(name, X[:N_TRAIN], X[N_TRAIN:], log_density=target.log_density)

    return loader


# --------------------------------------------------------------------------- the suite


def _loaders():
    loaders = {"demo": _demo, "digits64": _digits64}
    for name, load in [("wine", load_wine), ("breast_cancer", load_breast_cancer),
                       ("iris", load_iris)]:
        loaders[name] = _sklearn_loader(name, load)
    loaders.update({name: _synthetic_loader(name) for name in TARGETS})
    # ADBench last: the biggest sets, so a run cut short has covered the rest.
    loaders.update({f"ad_{p.stem}": _adbench_loader(p) for p in adbench_paths()})
    return loaders


def dataset_names():
    """Names of the data sets available here (ADBench only where its folder exists).

    Returns
    -------
    names : list of str
    """
    return list(_loaders())


def load_suite(names=None, seed=0):
    """Load data sets of the suite.

    Parameters
    ----------
    names : list of str, optional
        Data sets to load, in this order (default: all). ADBench names
        (``ad_<stem>``) are skipped with a printed note when
        ``../shared/data/adbench`` is missing.
    seed : int, default=0
        Seeds the splits, the dequantization noise, the ADBench subsets and
        the synthetic rows (the synthetic targets themselves are fixed, and
        ``demo`` is always the README's split).

    Returns
    -------
    datasets : list of Dataset
    """
    loaders = _loaders()
    if not ADBENCH.is_dir() and (names is None or any(n.startswith("ad_") for n in names)):
        print(f"note: {ADBENCH} not found; ADBench data sets skipped", flush=True)
    names = list(loaders) if names is None else list(names)
    unknown = [n for n in names if n not in loaders and not n.startswith("ad_")]
    if unknown:
        raise ValueError(f"unknown data sets {unknown}; available: {', '.join(loaders)}")
    missing = [n for n in names if n not in loaders]
    if missing and ADBENCH.is_dir():
        raise ValueError(f"no ADBench file for {missing} in {ADBENCH}")
    return [loaders[n](seed) for n in names if n in loaders]


# --------------------------------------------------------------------------- self-check


def _check(label, ok, detail):
    print(f"  {'ok  ' if ok else 'FAIL'} {label}: {detail}", flush=True)
    return ok


def _selfcheck():
    """Check the exact log-densities and print the suite; exit status 1 on a failure."""
    from scipy import stats

    rng = np.random.default_rng(123)
    ok = True
    print("exact log-densities")

    # A 2-D density integrates to 1 on a fine grid.
    grid = np.linspace(-9, 9, 901)
    h = grid[1] - grid[0]
    points = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    mass = np.exp(_gmm2d().log_density(points)).sum() * h**2
    ok &= _check("gmm2d integrates to 1 on a grid", abs(mass - 1) < 1e-4, f"{mass:.6f}")
    banana2 = BananaTarget(np.eye(2))
    grid_u, grid_w = np.linspace(-12, 12, 1201), np.linspace(-6, 40, 2301)
    points = np.stack(np.meshgrid(grid_u, grid_w), axis=-1).reshape(-1, 2)
    mass = np.exp(banana2.log_density(points)).sum() * np.diff(grid_u)[0] * np.diff(grid_w)[0]
    ok &= _check("2-D banana pair integrates to 1 on a grid", abs(mass - 1) < 1e-4, f"{mass:.6f}")

    # Against scipy's independent implementations.
    for name in ("gmm2d", "gmm16", "gmm64"):
        target = TARGETS[name]()
        X = target.sample(500, rng)
        reference = logsumexp(np.stack([
            np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(target.weights, target.means, target.covariances)
        ], axis=1), axis=1)
        err = np.abs(target.log_density(X) - reference).max()
        ok &= _check(f"{name} matches scipy", err < 1e-8, f"max abs diff {err:.1e}")
    student = _student8()
    X = student.sample(500, rng)
    scipy_t = stats.multivariate_t(shape=student.shape, df=student.df)
    err = np.abs(student.log_density(X) - scipy_t.logpdf(X)).max()
    ok &= _check("student8 matches scipy", err < 1e-8, f"max abs diff {err:.1e}")
    err = abs(student.entropy - scipy_t.entropy())
    ok &= _check("student8 entropy matches scipy", err < 1e-8, f"abs diff {err:.1e}")
    bounded = _uniform4()
    X = bounded.sample(500, rng)
    reference = sum(
        stats.beta(a, b, loc=lo, scale=hi - lo).logpdf(X[:, j])
        for j, (a, b, lo, hi) in enumerate(zip(bounded.a, bounded.b, bounded.low, bounded.high))
    )
    err = np.abs(bounded.log_density(X) - reference).max()
    ok &= _check("uniform4 matches scipy", err < 1e-8, f"max abs diff {err:.1e}")

    # Monte Carlo: the mean of -log p over samples converges to the entropy
    # (a wrong normalization or shape would shift it up or down).
    for name, build in TARGETS.items():
        target = build()
        if target.entropy is None:
            continue
        neg_log_p = -target.log_density(target.sample(200_000, rng))
        se = neg_log_p.std() / np.sqrt(len(neg_log_p))
        z = (neg_log_p.mean() - target.entropy) / se
        ok &= _check(f"{name} entropy by Monte Carlo", abs(z) < 4,
                     f"{neg_log_p.mean():.4f} vs {target.entropy:.4f} (z = {z:+.1f})")

    print("suite")
    datasets = load_suite()
    bad = [ds.name for ds in datasets if not all(
        p.dtype == np.float64 and np.isfinite(p).all() for p in (ds.X_train, ds.X_test))]
    ok &= _check("rows are finite float64", not bad, f"failing: {bad}" if bad else "all sets")
    bad = [ds.name for ds in datasets if ds.log_density is not None and not all(
        np.isfinite(ds.log_density(p)).all() for p in (ds.X_train, ds.X_test))]
    ok &= _check("exact log-density finite on every synthetic row", not bad,
                 f"failing: {bad}" if bad else "all synthetic sets")
    print("| data set | n_train | n_test | d | dequantized | dropped | scale | true test LL |")
    print("|---|---|---|---|---|---|---|---|")
    for ds in datasets:
        truth = "-" if ds.log_density is None else f"{ds.log_density(ds.X_test).mean():.3f}"
        print(f"| {ds.name} | {len(ds.X_train)} | {len(ds.X_test)} | {ds.d} | {ds.dequantized} "
              f"| {ds.dropped} | {ds.scale} | {truth} |")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if _selfcheck() else 1)
