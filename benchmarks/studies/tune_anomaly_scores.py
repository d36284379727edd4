# Record: benchmarks/results/studies/tune_anomaly_scores.md (runs 1 and 2).
# Ran at 22c0501. Not maintained.
"""Which anomaly score and settings rank best: one fit, many scores.

For each data set and seed of the ADBench protocol (see ``_adbench.py``), fits
one :class:`BootstrappedScoreEstimator` per setting and prints the AUROC of
several anomaly scores of that same fit, next to kNN. Used to pick the
defaults of :class:`DiffusionOutlierDetector`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _adbench import DATA as DEFAULT_DATA  # noqa: E402
from _adbench import split  # noqa: E402
from _peers import KNNDistance  # noqa: E402

SCORES = {
    "den[.01,1]": dict(method="denoising", noise_range=(0.01, 1.0)),
    "den64[.01,1]": dict(method="denoising", noise_range=(0.01, 1.0), n_levels=64),
    "den64[.003,.3]": dict(method="denoising", noise_range=(0.003, 0.3), n_levels=64),
    "norm[.01,1]": dict(method="score_norm", noise_range=(0.01, 1.0)),
    "norm[.001,1]": dict(method="score_norm", noise_range=(0.001, 1.0)),
    "norm[.03,3]": dict(method="score_norm", noise_range=(0.03, 3.0)),
    "norm[.003,.3]": dict(method="score_norm", noise_range=(0.003, 0.3)),
    "norm[.1,1]": dict(method="score_norm", noise_range=(0.1, 1.0)),
    "norm[.01,.3]": dict(method="score_norm", noise_range=(0.01, 0.3)),
}


def run(path, seed, params, with_ll):
    import torch

    from sklearn_diffusion import BootstrappedScoreEstimator

    torch.set_num_threads(1)
    data = np.load(path)
    X_train, X_test, y_test = split(data["X"].astype(np.float64), data["y"].astype(int), seed)
    out = {"kNN": roc_auc_score(y_test, -KNNDistance().fit(X_train).score_samples(X_test))}
    start = time.perf_counter()
    est = BootstrappedScoreEstimator(**params, random_state=seed).fit(X_train)
    out["fit_s"] = time.perf_counter() - start
    out["iters"] = est.n_iter_
    for name, kw in SCORES.items():
        start = time.perf_counter()
        out[name] = roc_auc_score(y_test, est.anomaly_score(X_test, **kw))
        out[name + "_s"] = time.perf_counter() - start
    if with_ll:
        start = time.perf_counter()
        lp = est.score_samples(X_test)
        out["ll_s"] = time.perf_counter() - start
        out["loglik"] = roc_auc_score(y_test, -np.nan_to_num(lp, nan=-1e30))
    return path.stem, seed, json.dumps(params), out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sets", nargs="*")
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--settings", type=json.loads, default=[{}], help="JSON list of param dicts")
    p.add_argument("--loglik", action="store_true")
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--output", type=Path, default=None)
    a = p.parse_args()
    paths = sorted(a.data.glob("*.npz"))
    if a.sets:
        paths = [x for x in paths if x.stem in a.sets]
    res = Parallel(n_jobs=a.n_jobs, verbose=2)(
        delayed(run)(x, s, params, a.loglik) for params in a.settings for x in paths for s in a.seeds
    )
    agg = {}
    for name, seed, params, out in res:
        agg.setdefault(params, {}).setdefault(name, []).append(out)
    for params, per_set in agg.items():
        print("\n##", params)
        cols = ["kNN", *SCORES, "loglik"] if a.loglik else ["kNN", *SCORES]
        print("| set | " + " | ".join(cols) + " | fit_s | iters |")
        means = {c: [] for c in cols}
        for name, outs in sorted(per_set.items()):
            row = {c: np.mean([o[c] for o in outs]) for c in cols}
            for c in cols:
                means[c].append(row[c])
            print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols)
                  + f" | {np.mean([o['fit_s'] for o in outs]):.1f} | {np.mean([o['iters'] for o in outs]):.0f} |")
        print("| mean | " + " | ".join(f"{np.mean(means[c]):.3f}" for c in cols) + " | | |")
    if a.output:
        a.output.write_text(json.dumps([list(r) for r in res]))


if __name__ == "__main__":
    main()
