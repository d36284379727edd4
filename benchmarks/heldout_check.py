"""The detector's defaults on data they were not tuned on (one class vs the rest).

The defaults of :class:`DiffusionOutlierDetector` were chosen on the ADBench
sets (``adbench.py``); this checks them on data sets that ship with
scikit-learn and were not looked at while tuning. For each class of a data set
the class's rows are the normal rows and every other row is an anomaly; the
ADBench protocol (``adbench.split``: normal rows split 50/50, StandardScaler on
train, AUROC) with seeds 0, 1, 2. Columns: the default hybrid score, the two
halves of it (the network's score norm from the same fit, the memorized score
norm), and peers. Prints a table and writes ``results/heldout_check.json``.

Run ``python benchmarks/heldout_check.py --n-jobs 2`` from the repository root.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import roc_auc_score

from adbench import SEEDS, make_method, ranks, split

RESULTS = Path(__file__).resolve().parent / "results" / "heldout_check.json"
DATA = {"digits": load_digits, "wine": load_wine, "breast_cancer": load_breast_cancer}
PEERS = ("memorized", "kNN", "LOF", "IForest", "KDE", "GMM")


def run_one(data, label, seed):
    import torch

    torch.set_num_threads(1)
    from sklearn_diffusion import DiffusionOutlierDetector

    X, y = DATA[data](return_X_y=True)
    X_train, X_test, y_test = split(X.astype(np.float64), (y != label).astype(int), seed)
    auc = {}
    start = time.perf_counter()
    det = DiffusionOutlierDetector(random_state=seed).fit(X_train)
    auc["hybrid"] = roc_auc_score(y_test, -det.score_samples(X_test))
    seconds = time.perf_counter() - start
    auc["score norm"] = roc_auc_score(y_test, det.estimator_.anomaly_score(X_test))
    for name in PEERS:
        model = make_method(name, seed, None).fit(X_train)
        auc[name] = roc_auc_score(y_test, -model.score_samples(X_test))
    return f"{data}-{label}", seed, auc, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    jobs = [(d, c, s) for d, load in DATA.items() for c in np.unique(load().target) for s in SEEDS]
    start = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs)(delayed(run_one)(d, c, s) for d, c, s in jobs)
    wall = time.perf_counter() - start
    table = {}
    for name, _, auc, _ in results:
        for method, value in auc.items():
            table.setdefault(name, {}).setdefault(method, []).append(value)
    table = {n: {m: float(np.mean(v)) for m, v in row.items()} for n, row in table.items()}
    methods = list(next(iter(table.values())))
    # Ranks among the default detector and the peers (its two halves left out).
    ranked = [m for m in methods if m not in ("score norm", "memorized")]
    rank = ranks(table, ranked)
    print("| task | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")
    means = {m: float(np.mean([row[m] for row in table.values()])) for m in methods}
    print("| **mean AUROC** | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " |")
    print("| **mean rank** | " + " | ".join(
        f"{rank[m]:.2f}" if m in rank else "-" for m in methods) + " |")
    print(f"\nwall clock {wall / 60:.1f} min with n_jobs={args.n_jobs}; "
          f"detector fit+score {sum(r[3] for r in results):.0f} s in all")
    RESULTS.write_text(json.dumps({
        "auroc": table, "mean_auroc": means, "mean_rank": {m: float(r) for m, r in rank.items()},
        "wall_seconds": wall, "n_jobs": args.n_jobs,
    }, indent=1))


if __name__ == "__main__":
    main()
