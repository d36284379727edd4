# Record: benchmarks/results/studies/impute_refit.md.
# Ran at 8fda64f. Not maintained.
"""Study: refitting on conditional draws of the training rows (issue 11), diffusion cells only.

Runs the cases of ``benchmarks/impute.py`` with the same seeds (peers
skipped; they draw nothing from the case's generator) with the default
``DiffusionImputer`` (on the lattice, the benchmark's localized one), its
estimator refitted ``rounds`` times on its own conditional draws of the
missing training entries (``BaseDiffusionEstimator._refit_on_draws``);
rounds 0 is the fit before that step. Results: ``results/studies/impute_refit.md``.

``python benchmarks/studies/impute_refit.py ROUNDS SETTINGS [CASE-SUBSTRING ...]``, SETTINGS
a Python dict literal of estimator parameters that override the imputer's
default settings (``{}`` for none).
"""
import ast
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import impute  # noqa: E402

from sklearn_diffusion import (  # noqa: E402
    BootstrappedScoreEstimator,
    DiffusionImputer,
    LocalizedDiffusionEstimator,
)

rounds = int(sys.argv[1])
settings = {**DiffusionImputer._default_settings, **ast.literal_eval(sys.argv[2])}
only = sys.argv[3:]
BootstrappedScoreEstimator._imputation_rounds = rounds
LocalizedDiffusionEstimator._imputation_rounds = rounds
impute.peers = lambda: {}
default_imputer = impute.diffusion_imputer
impute.diffusion_imputer = lambda lattice: default_imputer(True) if lattice else DiffusionImputer(
    BootstrappedScoreEstimator(**settings), random_state=0)
torch.set_num_threads(impute.THREADS)
index = 0
for name, X in impute.datasets(False).items():
    small = name in impute.FULL_PATTERN_SETS
    for pattern in (("mcar10", "mcar30", "mcar50", "dropout") if small else ("mcar30", "dropout")):
        case = f"{name} {pattern}"
        if not only or any(o in case for o in only):
            start = time.perf_counter()
            row = impute.evaluate(name, X, pattern, np.random.default_rng(index), 1000, 250)[-1]
            print(f"rounds={rounds} {sys.argv[2]} {case}: rmse {row['rmse']:.4f} coverage90 "
                  f"{row['coverage']:.3f} min-max {row['coverage_minmax']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        index += 1
digits = impute.load_digits().data
for pattern in ("block", "mcar30"):
    case = f"digits-8x8-lattice {pattern}"
    if not only or any(o in case for o in only):
        start = time.perf_counter()
        row = impute.evaluate("digits-8x8-lattice", digits, pattern,
                              np.random.default_rng(index), 1000, 250, lattice=True)[-1]
        print(f"rounds={rounds} {case}: rmse {row['rmse']:.4f} coverage90 "
              f"{row['coverage']:.3f} min-max {row['coverage_minmax']:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    index += 1
