"""The cases of the imputation benchmark: data sets, missing-value patterns and splits.

Shared by ``impute.py`` and ``impute_hyperimpute.py`` (which runs in its own
environment), so both see the same rows and masks: case ``i`` of
:func:`case_list` draws its split and masks from ``default_rng(i)``.
"""

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.preprocessing import StandardScaler

import _adbench

ADBENCH_SETS = ("22_magic.gamma", "28_pendigits")
FULL_PATTERN_SETS = ("circle-4d", "mixture-6d", "wine")
THREADS = 1  # torch threads of both scripts (their --threads default)


# ------------------------------------------------------------------ data
def circle(n, rng):
    """Non-linear 4-D target: a noisy circle, its product and a sine of it."""
    angle = rng.uniform(0, 2 * np.pi, n)
    x0 = np.cos(angle) + 0.1 * rng.normal(size=n)
    x1 = np.sin(angle) + 0.1 * rng.normal(size=n)
    return np.column_stack([x0, x1, x0 * x1 + 0.05 * rng.normal(size=n),
                            np.sin(3 * x0) + 0.05 * rng.normal(size=n)])


def mixture(n, rng, d=6, k=4):
    """Multi-modal 6-D target: 4 well-separated Gaussians, each with its own correlations."""
    centres = np.random.default_rng(123).normal(scale=3.0, size=(k, d))
    factors = np.random.default_rng(321).normal(scale=0.6, size=(k, d, d))
    labels = rng.integers(k, size=n)
    z = rng.normal(size=(n, d))
    return centres[labels] + np.einsum("nij,nj->ni", factors[labels], z)


def datasets(quick):
    rng = np.random.default_rng(0)
    sets = {"circle-4d": circle(1500, rng), "mixture-6d": mixture(1500, rng)}
    if not quick:
        sets["wine"] = load_wine().data
        sets["breast_cancer"] = load_breast_cancer().data
    sets["digits-64"] = load_digits().data
    if not quick:
        for name in ADBENCH_SETS:
            X, y = _adbench.load(name)
            sets[name] = X[y == 0]
    return sets


# ------------------------------------------------------------ patterns
def mcar(shape, fraction, rng):
    return rng.random(shape) < fraction


def dropout(shape, rng):
    n, d = shape
    mask = np.zeros(shape, dtype=bool)
    length = max(1, n // 3)
    for j in rng.choice(d, size=max(1, d // 5), replace=False):
        start = rng.integers(0, n - length + 1)
        mask[start:start + length, j] = True
    return mask


def centre_block(shape):
    mask = np.zeros((shape[0], 8, 8), dtype=bool)
    mask[:, 2:6, 2:6] = True
    return mask.reshape(shape)


def make_masks(pattern, train_shape, test_shape, rng):
    if pattern.startswith("mcar"):
        fraction = int(pattern[4:]) / 100
        return mcar(train_shape, fraction, rng), mcar(test_shape, fraction, rng)
    if pattern == "dropout":
        return dropout(train_shape, rng), dropout(test_shape, rng)
    if pattern == "block":
        return mcar(train_shape, 0.1, rng), centre_block(test_shape)
    raise ValueError(pattern)


# ----------------------------------------------------------------- cases
def case_list(quick):
    """The cases ``(name, X, pattern, lattice)``; case ``i`` draws from ``default_rng(i)``."""
    cases = []
    for name, X in datasets(quick).items():
        # All four patterns on the small sets; MCAR 30% and dropout on the
        # larger ones, to keep the run near 25 minutes on two CPU cores.
        small = name in FULL_PATTERN_SETS and not quick
        patterns = ("mcar10", "mcar30", "mcar50", "dropout") if small else ("mcar30", "dropout")
        cases += [(name, X, pattern, False) for pattern in patterns]
    digits = load_digits().data
    lattice_patterns = ("block",) if quick else ("block", "mcar30")
    cases += [("digits-8x8-lattice", digits, pattern, True) for pattern in lattice_patterns]
    return cases


def split(X, pattern, rng, train_cap, test_cap, lattice=False):
    """Standardized incomplete train rows, incomplete test rows, true test rows and test mask."""
    order = rng.permutation(len(X))
    n_train = min(train_cap, int(0.6 * len(X)))
    X_train, X_test = X[order[:n_train]], X[order[n_train:n_train + test_cap]]
    # Columns constant on the training rows carry nothing to impute.
    keep = X_train.std(axis=0) > 0 if not lattice else np.ones(X.shape[1], dtype=bool)
    X_train, X_test = X_train[:, keep], X_test[:, keep]
    train_mask, test_mask = make_masks(pattern, X_train.shape, X_test.shape, rng)
    scaler = StandardScaler().fit(np.where(train_mask, np.nan, X_train))
    Z_train = scaler.transform(np.where(train_mask, np.nan, X_train))
    Z_test_true = scaler.transform(X_test)
    return Z_train, np.where(test_mask, np.nan, Z_test_true), Z_test_true, test_mask
