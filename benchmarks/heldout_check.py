"""The detector's defaults on data they were not tuned on (one class vs the rest).

The defaults of :class:`DiffusionOutlierDetector` were chosen on the ADBench
sets (``adbench.py``); this checks them on data sets that ship with
scikit-learn and were not looked at while tuning. For each class of a data set
the class's rows are the normal rows and every other row is an anomaly; the
ADBench protocol (``_adbench.split``: normal rows split 50/50, StandardScaler
on train, AUROC) with seeds 0, 1, 2. Columns: the default hybrid score, the
two halves of it (the network's score norm from the same fit, the memorized
score norm on standardized columns), the default before issue 25 ("hybrid
(before)": the hybrid on ``_peers.HYBRID_TUNED_PARAMS``), and peers. Prints a table and writes
``results/<out>.{md,json}``.

Run ``python benchmarks/heldout_check.py --n-jobs 2`` from the repository
root (about 2 minutes on the 2-core CPU; ``--quick``: wine, seed 0).
``--merge`` keys a row by (task, seed).
"""

import shlex
import sys
import time

import numpy as np
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import roc_auc_score

import _adbench
import _cli
import _report
from _peers import HYBRID_TUNED_PARAMS, anomaly_peer

DATA = {"digits": load_digits, "wine": load_wine, "breast_cancer": load_breast_cancer}
PEERS = ("memorized", "kNN", "LOF", "IForest", "KDE", "GMM")


def run_one(data, label, seed, threads=1):
    """AUROC of every column on one task and seed, and the detector's fit+score seconds."""
    import torch

    torch.set_num_threads(threads)
    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector

    X, y = DATA[data](return_X_y=True)
    X_train, X_test, y_test = _adbench.split(X.astype(np.float64), (y != label).astype(int), seed)
    auc = {}
    start = time.perf_counter()
    det = DiffusionOutlierDetector(random_state=seed).fit(X_train)
    auc["hybrid"] = roc_auc_score(y_test, -det.score_samples(X_test))
    seconds = time.perf_counter() - start
    auc["score norm"] = roc_auc_score(y_test, det.estimator_.anomaly_score(X_test))
    before = BootstrappedScoreEstimator(**dict(HYBRID_TUNED_PARAMS), random_state=seed)
    before = DiffusionOutlierDetector(before, random_state=seed).fit(X_train)
    auc["hybrid (before)"] = roc_auc_score(y_test, -before.score_samples(X_test))
    for name in PEERS:
        model = anomaly_peer(name, seed).fit(X_train)
        auc[name] = roc_auc_score(y_test, -model.score_samples(X_test))
    return {"task": f"{data}-{label}", "seed": seed, "auroc": auc, "seconds": seconds}


def main(argv=None):
    parser = _cli.parser(__doc__, "heldout_check", quick="wine only, seed 0", threads=1,
                         n_jobs=1)
    args = _cli.parse(parser, argv)
    data = {"wine": DATA["wine"]} if args.quick else DATA
    seeds = _adbench.SEEDS[:1] if args.quick else _adbench.SEEDS
    jobs = [(d, c, s) for d, load in data.items() for c in np.unique(load().target) for s in seeds]
    start = time.perf_counter()
    runs = Parallel(n_jobs=args.n_jobs)(delayed(run_one)(d, c, s, args.threads)
                                        for d, c, s in jobs)
    wall = time.perf_counter() - start
    if args.merge:
        runs = _report.merge_rows(args.out, runs, ("task", "seed"), field="runs")
    table = {}
    for run in runs:
        for method, value in run["auroc"].items():
            table.setdefault(run["task"], {}).setdefault(method, []).append(value)
    table = {n: {m: float(np.mean(v)) for m, v in row.items()} for n, row in table.items()}
    methods = list(next(iter(table.values())))
    # Ranks among the default detector and the peers (its two halves and the
    # earlier default left out).
    ranked = [m for m in methods if m not in ("score norm", "memorized", "hybrid (before)")]
    rank = _report.ranks(table, ranked)
    lines = ["| task | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")
    means = {m: float(np.mean([row[m] for row in table.values()])) for m in methods}
    lines.append("| **mean AUROC** | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " |")
    lines.append("| **mean rank** | " + " | ".join(
        f"{rank[m]:.2f}" if m in rank else "-" for m in methods) + " |")
    footer = (f"wall clock {wall / 60:.1f} min with n_jobs={args.n_jobs}; "
              f"detector fit+score {sum(r['seconds'] for r in runs):.0f} s in all")
    text = "\n".join(lines)
    print(text + f"\n\n{footer}")
    command = shlex.join(["python", "benchmarks/heldout_check.py",
                          *(sys.argv[1:] if argv is None else argv)])
    md = (f"# Defaults on data not used for tuning: `{command}`\n\n"
          "One class of a scikit-learn data set as the normal rows, all other rows as "
          f"anomalies; ADBench protocol, seeds {sorted({r['seed'] for r in runs})}. \"score "
          "norm\" is the network half of the hybrid (same fit), \"memorized\" the memorized "
          "score norm on standardized columns, \"hybrid (before)\" the default before issue "
          "25; mean rank among hybrid and the five peers.\n\n" + text + f"\n\n{footer}\n")
    _report.write(args.out, {
        "auroc": table, "mean_auroc": means, "mean_rank": rank,
        "wall_seconds": wall, "n_jobs": args.n_jobs, "threads": args.threads, "runs": runs,
    }, md)


if __name__ == "__main__":
    main()
