# Record: benchmarks/results/studies/impute_training_fill.txt.
# Ran at 0287808. Not maintained.
"""Study: what a missing input holds during training (MissDiff mean vs marginal noise).

A 4-D non-linear target (a noisy circle in (x0, x1), x2 = x0 x1, x3 = sin(3 x0)),
30% MCAR, 1,000 training rows; RMSE on the filled entries of 500 held-out rows
(standardized scale) for each ``missing_fill`` of ``fit_noise_model``, with the
peers' figures on the same masks for reference.
"""
import functools
import time

import numpy as np
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import sklearn_diffusion.bootstrapped as bootstrapped
from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionImputer
from sklearn_diffusion.training import fit_noise_model

torch.set_num_threads(2)


def target(n, rng):
    angle = rng.uniform(0, 2 * np.pi, n)
    x0 = np.cos(angle) + 0.1 * rng.normal(size=n)
    x1 = np.sin(angle) + 0.1 * rng.normal(size=n)
    return np.column_stack([x0, x1, x0 * x1 + 0.05 * rng.normal(size=n),
                            np.sin(3 * x0) + 0.05 * rng.normal(size=n)])


rng = np.random.default_rng(0)
X = target(1500, rng)
X = (X - X.mean(0)) / X.std(0)
mask = rng.random(X.shape) < 0.3
X_miss = np.where(mask, np.nan, X)
train, test = slice(0, 1000), slice(1000, None)


def rmse(fill):
    m = mask[test]
    return float(np.sqrt(np.mean((fill[m] - X[test][m]) ** 2)))


for name, imp in [("mean", SimpleImputer()), ("knn", KNNImputer()),
                  ("iterative", IterativeImputer(random_state=0))]:
    imp.fit(X_miss[train])
    print(f"{name:12s} rmse={rmse(imp.transform(X_miss[test])):.3f}")
for fill in ("mean", "noise"):
    bootstrapped.fit_noise_model = functools.partial(fit_noise_model, missing_fill=fill)
    start = time.perf_counter()
    imp = DiffusionImputer(BootstrappedScoreEstimator(random_state=0), random_state=0)
    imp.fit(X_miss[train])
    fitted = time.perf_counter()
    out = imp.transform(X_miss[test])
    print(f"diffusion missing_fill={fill:5s} rmse={rmse(out):.3f} "
          f"fit={fitted - start:.1f}s transform={time.perf_counter() - fitted:.1f}s "
          f"n_iter={imp.estimator_.n_iter_}")
bootstrapped.fit_noise_model = fit_noise_model
