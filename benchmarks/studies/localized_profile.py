# Record: benchmarks/results/studies/localized_speed.md.
# Ran at 2ff3d6f to 112312b. Not maintained.
"""Profile LocalizedDiffusionEstimator.fit on a 12x12 lattice field: where the time goes.

Scratch study for issue 13 part 5. Prints fit seconds split into training and
smoothing selection, for several block sizes.
"""
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from _fields import field_precision, field_sample  # noqa: E402
from sklearn_diffusion import LocalizedDiffusionEstimator  # noqa: E402
import sklearn_diffusion._base as base  # noqa: E402

d = int(sys.argv[1]) if len(sys.argv) > 1 else 144
kind = sys.argv[2] if len(sys.argv) > 2 else "lattice"
block_sizes = [int(b) for b in sys.argv[3].split(",")] if len(sys.argv) > 3 else [32, 144]
radius = int(sys.argv[4]) if len(sys.argv) > 4 else 1
X, cov = field_sample(field_precision(kind, d), 3000, seed=0)
Xtr, Xte = X[:2000], X[2000:]
side = int(round(np.sqrt(d)))
locality = "ring" if kind == "ring" else (side, side)
orig = base.BaseDiffusionEstimator._select_smoothing
timing = {}


def timed(self, Z):
    start = time.perf_counter()
    out = orig(self, Z)
    timing["select"] = time.perf_counter() - start
    return out


base.BaseDiffusionEstimator._select_smoothing = timed
sign, logdet = np.linalg.slogdet(cov)
true = -0.5 * (d * np.log(2 * np.pi) + logdet + np.einsum("ij,jk,ik->i", Xte, np.linalg.inv(cov), Xte))
for bs in block_sizes:
    est = LocalizedDiffusionEstimator(locality=locality, radius=radius, block_size=bs, random_state=0)
    start = time.perf_counter()
    est.fit(Xtr)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    ll = est.score_samples(Xte)
    score = time.perf_counter() - start
    print(f"d={d} bs={bs} fit={fit:.1f}s select={timing['select']:.1f}s n_iter={est.n_iter_} "
          f"best={est.best_iter_} gap/coord={(true.mean() - ll.mean()) / d:.4f} score={score:.1f}s "
          f"smoothing={est.smoothing_:.4f}", flush=True)
