"""Study (issue 22): how far the Hutchinson trace above 64 columns moves the reported likelihood.

Fits the default once (``divergence="auto"``: Hutchinson with its 8 fixed
probes above 64 columns, used by early stopping and the smoothing choice as
well as by ``score_samples``), then scores the same test rows of the same
fitted model three ways: with the fitted probes, with fresh probe sets the
fit never saw, and with the exact trace. The fitted probes minus exact is the
error a user reads; fresh probes minus exact is the error of the estimator
alone, without the selection that saw the probes.

Run from the repository root, one data set per call::

    OMP_NUM_THREADS=1 python benchmarks/studies/trace_bias.py lowrank128
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import width  # noqa: E402  (the wide targets and the suite loader)

from sklearn_diffusion import BootstrappedScoreEstimator  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--fresh", type=int, default=3, help="fresh probe sets")
    parser.add_argument("--params", default="{}", help="estimator parameters (JSON)")
    parser.add_argument("--out", default="trace_bias")
    args = parser.parse_args()
    data = width.load(args.dataset, 0)
    est = BootstrappedScoreEstimator(random_state=0, **json.loads(args.params))
    start = time.perf_counter()
    est.fit(data.X_train)
    row = {"dataset": args.dataset, "d": data.X_train.shape[1], "params": args.params,
           "fit_s": time.perf_counter() - start, "n_iter": int(est.n_iter_),
           "truth_ll": None if data.log_density is None
           else float(data.log_density(data.X_test[:2000]).mean())}
    X = data.X_test[:2000]
    row["fitted_probes"] = float(est.score_samples(X).mean())
    fitted = est.probes_.copy()
    row["fresh_probes"] = []
    for k in range(args.fresh):
        est.probes_ = np.random.default_rng(k + 1).choice([-1.0, 1.0], size=fitted.shape)
        row["fresh_probes"].append(float(est.score_samples(X).mean()))
    est.probes_ = fitted
    est.divergence = "exact"
    start = time.perf_counter()
    row["exact"] = float(est.score_samples(X).mean())
    row["exact_score_s"] = time.perf_counter() - start
    print(json.dumps(row))
    with open(width.RESULTS / f"{args.out}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
