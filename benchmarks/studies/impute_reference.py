# Record: benchmarks/results/studies/impute_reference.md.
# Ran at aedc13f. Not maintained.
"""Study: the default imputer with the reference mixture (issue 11), diffusion cells only.

Runs the non-lattice cases of ``benchmarks/impute.py`` with the same seeds
(peers skipped; they draw nothing from the case's generator), the imputer's
estimator being ``BootstrappedScoreEstimator(n_networks=1, max_iter=1500,
reference=..., column_transform="gaussianize")``; compare with the diffusion
column of ``results/impute.md``.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import impute  # noqa: E402

from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionImputer  # noqa: E402

reference = sys.argv[1] if len(sys.argv) > 1 else "mixture"
impute.peers = lambda: {}
impute.diffusion_imputer = lambda lattice: DiffusionImputer(
    BootstrappedScoreEstimator(n_networks=1, max_iter=1500, reference=reference,
                               column_transform="gaussianize"), random_state=0)
torch.set_num_threads(impute.THREADS)
index = 0
for name, X in impute.datasets(False).items():
    small = name in impute.FULL_PATTERN_SETS
    for pattern in (("mcar10", "mcar30", "mcar50", "dropout") if small else ("mcar30", "dropout")):
        start = time.perf_counter()
        row = impute.evaluate(name, X, pattern, np.random.default_rng(index), 1000, 250)[-1]
        index += 1
        print(f"{name} {pattern}: rmse {row['rmse']:.4f} coverage90 {row['coverage']:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
