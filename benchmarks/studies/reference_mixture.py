# Record: benchmarks/results/studies/reference_mixture_alone.json.
# Ran at c84aefc. Not maintained.
"""Study: the BIC mixture alone, fitted in the standardized or the Gaussianized space.

For each data set of the density suite: held-out mean log-likelihood of the
BIC Gaussian mixture fitted (a) on standardized columns (the benchmark's GMM
peer) and (b) on the estimator's Gaussianized columns (what
``reference="mixture"`` starts from), with the exact log-Jacobians, and (c)
the better of the two chosen on a 10% held-out split of the training rows.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _density_suite import load_suite  # noqa: E402

from sklearn_diffusion.reference import fit_reference_mixture, mixture_log_density  # noqa: E402
from sklearn_diffusion.marginals import fit_gaussianizer, gaussianize  # noqa: E402

def spaces(X_train):
    mean, scale = X_train.mean(0), X_train.std(0)
    scale[scale == 0] = 1
    def standardized(X):
        return (X - mean) / scale, np.full(len(X), -np.log(scale).sum())
    knots = fit_gaussianizer((X_train - mean) / scale, generator=torch.Generator().manual_seed(0))
    def gaussianized(X):
        Z, logj = gaussianize((X - mean) / scale, knots[0], knots[1])
        return Z, logj - np.log(scale).sum()
    return {"standardized": standardized, "gaussianized": gaussianized}


def main():
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    rows = []
    for ds in load_suite(names):
        row = {"dataset": ds.name}
        for label, fn in spaces(ds.X_train).items():
            Z, _ = fn(ds.X_train)
            ref = fit_reference_mixture(Z, random_state=0)
            Zt, logj = fn(ds.X_test)
            row[label] = float(np.mean(mixture_log_density(Zt, *ref) + logj))
            row[label + "_k"] = len(ref[0])
        rows.append(row)
        print(row, flush=True)
    out = Path(__file__).resolve().parents[1] / "results" / "studies" / "reference_mixture_alone.json"
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
