# Record: benchmarks/results/studies/tune_anomaly_scores.md (run 3).
# Ran at 75f340d. Not maintained.
"""Per-noise-level score norms: which range and aggregation, which network.

Usage: ``python benchmarks/studies/tune_score_levels.py SET1,SET2 'JSON list
of BootstrappedScoreEstimator settings'``. Seed 0 of the ADBench protocol;
prints the AUROC of the score norm averaged over level ranges (``mean``), of
the mean log norm (``logm``), and of norms divided by their training median
per level (``nrm``), next to kNN.
"""

import json
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _adbench import DATA as DEFAULT_DATA, split  # noqa: E402
from _peers import KNNDistance  # noqa: E402

TIMES = np.logspace(-3, np.log10(3.0), 19)  # 1e-3 .. 3

def run(name, seed, params):
    import torch

    torch.set_num_threads(1)
    from sklearn_diffusion import BootstrappedScoreEstimator
    d = np.load(DEFAULT_DATA / f"{name}.npz")
    Xtr, Xte, yte = split(d["X"].astype(float), d["y"].astype(int), seed)
    knn = roc_auc_score(yte, -KNNDistance().fit(Xtr).score_samples(Xte))
    est = BootstrappedScoreEstimator(**params, random_state=seed).fit(Xtr)
    per_te = np.stack([est.anomaly_score(Xte, method="score_norm", n_levels=1, noise_range=(t, t)) for t in TIMES], 1)
    per_tr = np.stack([est.anomaly_score(Xtr, method="score_norm", n_levels=1, noise_range=(t, t)) for t in TIMES], 1)
    return name, seed, json.dumps(params), knn, per_te, per_tr, yte

def main():
    sets = sys.argv[1].split(",")
    settings = json.loads(sys.argv[2])
    res = Parallel(n_jobs=2)(delayed(run)(n, 0, p) for p in settings for n in sets)
    for p in settings:
        print("\n##", p)
        rows = [r for r in res if r[2] == json.dumps(p)]
        variants = {}
        for name, seed, _, knn, te, tr, y in rows:
            out = {"kNN": knn}
            for lo, hi in [(0, 12), (0, 16), (0, 19), (4, 16), (4, 19), (8, 19), (12, 19)]:
                t0, t1 = TIMES[lo], TIMES[hi - 1]
                out[f"mean[{t0:.3g},{t1:.2g}]"] = roc_auc_score(y, te[:, lo:hi].mean(1))
                out[f"logm[{t0:.3g},{t1:.2g}]"] = roc_auc_score(y, np.log(te[:, lo:hi] + 1e-12).mean(1))
                med = np.median(tr[:, lo:hi], 0)
                out[f"nrm[{t0:.3g},{t1:.2g}]"] = roc_auc_score(y, (te[:, lo:hi] / med).mean(1))
            variants[name] = out
        cols = list(next(iter(variants.values())))
        for c in cols:
            vals = [variants[n][c] for n in sets]
            print(f"{c:22s} " + " ".join(f"{v:.3f}" for v in vals) + f"  mean {np.mean(vals):.3f}  d_vs_knn {np.mean(vals) - np.mean([variants[n]['kNN'] for n in sets]):+.3f}")
        print("sets:", sets)


if __name__ == "__main__":
    main()
