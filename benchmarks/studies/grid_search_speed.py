# Record: benchmarks/results/studies/localized_speed.md.
# Ran at 68e58d2 to 6b63b94. Not maintained.
"""Issue 13 part 5 study: GridSearchCV over radius {0,1,2,3} (3 folds) on the 12x12 lattice.

Usage: python benchmarks/studies/grid_search_speed.py [key=value ...] — extra
LocalizedDiffusionEstimator parameters (Python literals), and
``search_n_jobs=K`` for the search's own ``n_jobs``. Prints wall seconds
of the whole search (including the refit), the chosen radius, the held-out gap
to the truth per coordinate, and the per-fit training steps.
"""
import ast
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
from _fields import field_precision, field_sample  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn_diffusion import LocalizedDiffusionEstimator  # noqa: E402

params = dict(arg.split("=", 1) for arg in sys.argv[1:])
params = {k: ast.literal_eval(v) for k, v in params.items()}
# search_n_jobs=K is GridSearchCV's n_jobs (fits of folds and radii side by side).
search_n_jobs = params.pop("search_n_jobs", None)
d = 144
X, cov = field_sample(field_precision("lattice", d), 4000, seed=0)
Xtr, Xte = X[:2000], X[2000:]
_, logdet = np.linalg.slogdet(cov)
true = -0.5 * (d * np.log(2 * np.pi) + logdet + np.einsum("ij,jk,ik->i", Xte, np.linalg.inv(cov), Xte))
est = LocalizedDiffusionEstimator(locality=(12, 12), random_state=0, **params)
start = time.perf_counter()
search = GridSearchCV(est, {"radius": [0, 1, 2, 3]}, cv=3, n_jobs=search_n_jobs).fit(Xtr)
wall = time.perf_counter() - start
gap = (true.mean() - search.score(Xte)) / d
print(f"params={params} search_n_jobs={search_n_jobs} wall={wall:.0f}s radius={search.best_params_['radius']} gap/coord={gap:.4f} "
      f"refit_iter={search.best_estimator_.n_iter_} "
      f"mean_fit_s={np.round(search.cv_results_['mean_fit_time'], 1).tolist()} "
      f"mean_score_s={np.round(search.cv_results_['mean_score_time'], 1).tolist()} "
      f"cv={np.round(search.cv_results_['mean_test_score'], 2).tolist()}", flush=True)
