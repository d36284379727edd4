"""ADBench semi-supervised anomaly detection: diffusion detector against peers.

Protocol (``DESIGN.md`` section 5): for seed in 0, 1, 2, split the normal rows
50/50 into train/test (train capped at 10,000 rows); test = held-out normals +
all anomalies; ``StandardScaler`` fitted on train; fit on train; AUROC of the
anomaly score (``-score_samples``) on test; mean over seeds (``_adbench.py``).
Peers are computed in the same run (``_peers.py``). Prints a markdown table
(AUROC per data set, mean AUROC and mean rank per method, fit+score seconds
per data set) and writes ``benchmarks/results/<out>.{md,json}``.

Run ``python benchmarks/adbench.py --n-jobs 2`` from the repository root
(about 13 minutes on the shared 2-core CPU; ``--quick`` for six data sets and
seed 0). ``--methods memorized kNN LOF IForest KDE GMM ECOD --out
adbench_memorized`` runs the ablation of the hybrid score's memorized half
alone (no network). ``--merge`` keys a row by (data set, seed, method).
"""

import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

import _adbench
import _cli
import _report
from _peers import ANOMALY_PEERS, anomaly_peer

QUICK_SETS = ("14_glass", "4_breastw", "6_cardio", "38_thyroid", "31_satimage-2", "44_Wilt")
METHODS = ("diffusion",) + ANOMALY_PEERS


def make_method(name, seed, diffusion_params=None):
    """An unfitted method (``fit``, ``score_samples``: higher is more normal) of one seed.

    ``"diffusion"`` is ``DiffusionOutlierDetector`` (its defaults, or a
    ``BootstrappedScoreEstimator`` with ``diffusion_params`` overriding its
    defaults); any other name is a peer of ``_peers.anomaly_peer``.
    ``adbench.md`` was measured before issue 25 with the estimator settings
    ``_peers.HYBRID_TUNED_PARAMS``: pass them as ``--diffusion-params`` to
    reproduce it.
    """
    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector

    if name == "diffusion":
        if not diffusion_params:
            return DiffusionOutlierDetector(random_state=seed)
        detector_keys = {"method", "n_levels", "noise_range"}
        est = {k: v for k, v in diffusion_params.items() if k not in detector_keys}
        det = {k: v for k, v in diffusion_params.items() if k in detector_keys}
        return DiffusionOutlierDetector(
            BootstrappedScoreEstimator(**est, random_state=seed), **det
        )
    return anomaly_peer(name, seed)


def run_one(path, seed, method, diffusion_params, threads=1):
    """AUROC and fit+score seconds of one method on one data set and seed."""
    import torch

    torch.set_num_threads(threads)
    X, y = _adbench.load(path.stem, path.parent)
    X_train, X_test, y_test = _adbench.split(X, y, seed)
    start = time.perf_counter()
    model = make_method(method, seed, diffusion_params).fit(X_train)
    anomaly = -model.score_samples(X_test)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(anomaly)):
        # Rank non-finite scores (an underflowed density) as most anomalous.
        anomaly = np.nan_to_num(anomaly, nan=np.inf, posinf=np.finfo(float).max)
        anomaly = np.where(np.isinf(anomaly), np.finfo(float).max, anomaly)
    return path.stem, seed, method, float(roc_auc_score(y_test, anomaly)), seconds


def aggregate(runs):
    """Mean AUROC over seeds and summed seconds per (data set, method), the methods and seeds.

    A (data set, method) pair absent from ``runs`` is NaN.
    """
    methods = list(dict.fromkeys(r["method"] for r in runs))
    names = sorted({r["data"] for r in runs}, key=lambda s: int(s.split("_")[0]))
    auc, seconds = {}, {}
    for r in runs:
        auc.setdefault((r["data"], r["method"]), []).append(r["auroc"])
        seconds[r["data"], r["method"]] = seconds.get((r["data"], r["method"]), 0.0) + r["seconds"]
    table = {s: {m: float(np.mean(auc[s, m])) if (s, m) in auc else float("nan")
                 for m in methods} for s in names}
    times = {s: {m: seconds.get((s, m), float("nan")) for m in methods} for s in names}
    return table, times, methods, sorted({r["seed"] for r in runs})


def markdown(table, times, methods):
    """AUROC table (best per data set in bold) and fit+score seconds table."""
    header = "| data set | " + " | ".join(methods) + " |"
    rule = "|---" * (len(methods) + 1) + "|"
    lines = ["AUROC (mean over seeds)", "", header, rule]
    for name in table:
        best = np.nanmax(list(table[name].values()))
        cells = [
            (f"**{table[name][m]:.3f}**" if table[name][m] == best else f"{table[name][m]:.3f}")
            for m in methods
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = {m: float(np.mean([table[s][m] for s in table])) for m in methods}
    mean_rank = _report.ranks(table, methods)
    lines.append("| **mean AUROC** | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " |")
    lines.append("| **mean rank** | " + " | ".join(f"{mean_rank[m]:.2f}" for m in methods) + " |")
    lines += ["", "fit+score seconds (sum over seeds)", "", header, rule]
    for name in times:
        lines.append(f"| {name} | " + " | ".join(f"{times[name][m]:.1f}" for m in methods) + " |")
    total = {m: sum(times[s][m] for s in times) for m in methods}
    lines.append("| **total** | " + " | ".join(f"{total[m]:.0f}" for m in methods) + " |")
    return "\n".join(lines), means, mean_rank


def main(argv=None):
    parser = _cli.parser(__doc__, "adbench", quick="6 data sets, seed 0 only", threads=1,
                         n_jobs=1)
    parser.add_argument("--data", type=Path, default=_adbench.DATA, help="folder of .npz files")
    parser.add_argument("--sets", nargs="*", help="data set names (file stems) to run")
    parser.add_argument("--methods", nargs="*", help="methods to run (default: all)")
    parser.add_argument(
        "--diffusion-params", type=json.loads, default=None,
        help='JSON overrides of the detector, e.g. \'{"max_iter": 1000}\' (for tuning)',
    )
    args = _cli.parse(parser, argv)

    paths = _adbench.paths(args.data)
    if args.sets:
        paths = [p for p in paths if p.stem in args.sets]
    elif args.quick:
        paths = [p for p in paths if p.stem in QUICK_SETS]
    seeds = _adbench.SEEDS[:1] if args.quick else _adbench.SEEDS
    methods = args.methods or list(METHODS)
    if "ECOD" in methods:
        try:
            import pyod  # noqa: F401
        except ImportError:
            methods = [m for m in methods if m != "ECOD"]
    # Biggest data sets first, so the pool does not end on one long job.
    jobs = [
        (p, s, m)
        for p in sorted(paths, key=os.path.getsize, reverse=True)
        for s in seeds
        for m in methods
    ]
    start = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(run_one)(p, s, m, args.diffusion_params, args.threads) for p, s, m in jobs
    )
    wall = time.perf_counter() - start
    runs = [dict(zip(("data", "seed", "method", "auroc", "seconds"), r)) for r in results]
    if args.merge:
        runs = _report.merge_rows(args.out, runs, ("data", "seed", "method"), field="runs")
    table, times, methods, seeds = aggregate(runs)
    text, means, mean_rank = markdown(table, times, methods)
    footer = f"wall clock: {wall / 60:.1f} min with n_jobs={args.n_jobs}; seeds {list(seeds)}"
    if args.merge:
        footer += " (the last run's wall clock; rows merged with --merge)"
    print(text)
    print(f"\n{footer}")
    command = shlex.join(["python", "benchmarks/adbench.py",
                          *(sys.argv[1:] if argv is None else argv)])
    md = (f"# ADBench: `{command}`\n\nAUROC of `-score_samples` on held-out normals and all "
          f"anomalies (`_adbench.split`), peers in the same run; diffusion parameters "
          f"{args.diffusion_params or 'default'}; {args.threads} torch thread(s) per job.\n\n"
          f"{text}\n\n{footer}\n")
    _report.write(args.out, {
        "seeds": list(seeds), "n_jobs": args.n_jobs, "threads": args.threads,
        "wall_seconds": wall, "diffusion_params": args.diffusion_params,
        "auroc": table, "seconds": times,
        "mean_auroc": means, "mean_rank": mean_rank, "runs": runs,
    }, md)
    return table


if __name__ == "__main__":
    main()
