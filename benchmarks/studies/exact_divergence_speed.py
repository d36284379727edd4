# Record: benchmarks/results/studies/exact_divergence_speed.txt (first entry).
# Ran at 8be68c7. Not maintained.
"""score_samples of 10,000 x 16 rows: forward-mode exact trace against 8 Hutchinson probes.

Run from the repository root; medians of 3 calls, both in one process.
"""
import time

import numpy as np
import torch

from sklearn_diffusion import BootstrappedScoreEstimator

torch.set_num_threads(2)
X = np.random.default_rng(0).normal(size=(2000, 16))
X_test = np.random.default_rng(1).normal(size=(10000, 16))
for divergence in ["exact", "hutchinson"]:
    est = BootstrappedScoreEstimator(max_iter=100, divergence=divergence, random_state=0).fit(X)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        est.score_samples(X_test)
        times.append(time.perf_counter() - start)
    print(f"{divergence:10s} median {np.median(times):.2f} s  (runs {np.round(times, 2).tolist()})")
