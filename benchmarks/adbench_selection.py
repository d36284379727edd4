"""Choosing the detector's default without overfitting the sets it is chosen on.

Issue 25. Every candidate anomaly score and every peer is run on each data
set and seed with the protocol of ``adbench.py`` (``_adbench.split``: half of
the normal rows for training, AUROC on the other half and all anomalies).
The candidates, few on purpose (7):

- ``hybrid_tuned``: ``DiffusionOutlierDetector()`` as shipped before this
  study (hybrid score on an estimator with ``_peers.HYBRID_TUNED_PARAMS``:
  ``reference="normal"``, standardized columns, one network, the settings
  tuned on these 24 sets among 133 variants);
- from one fit of the *density* default ``BootstrappedScoreEstimator()``
  (reference mixture, column maps, two networks, likelihood stopping):
  ``log_density`` (its ``score_samples``), ``score_norm`` (its
  ``anomaly_score``), ``memorized`` (the exact score norm of the noised
  training rows in its coordinates), ``hybrid`` (score norm x memorized, as
  the detector's ``method="hybrid"`` computes it on this estimator: the
  default of ``DiffusionOutlierDetector()`` since this study, which fits it
  with ``stopping_metric="loss", n_networks=1`` at the same AUROC,
  ``results/studies/adbench_detector_fast.md``),
  ``rank_ld_sn`` and ``rank_ld_hybrid`` (the mean of the test-row ranks of
  the log-density and of the other score: a rank average needs the scored
  batch, so it is a benchmark candidate, not yet a detector method).

Peers in the same run: kNN, LOF, IForest, KDE, GMM, ECOD (``_peers.py``).

The selection is leave-sets-out (``_leave_sets_out.py``): the sets are split
into folds, the candidate with the best mean AUROC on the other folds is
scored on the held-out fold, over several random fold assignments and leave
one set out; the mean of those held-out AUROCs is what the procedure is
expected to give a set it has not seen.

``--pool classical`` (default) runs the 24 sets of ``../shared/data/adbench``;
``--pool embeddings`` ADBench's ResNet-18 image and BERT text embeddings in
``../shared/data/adbench_embeddings`` (see its README), which no choice was
made on. Writes ``results/adbench_selection[_embeddings].{md,json}``.

Run ``OMP_NUM_THREADS=1 python benchmarks/adbench_selection.py --n-jobs 2``
(44.6 minutes on the quiet 2-core CPU), then the embeddings as
``benchmarks/README.md`` says; ``--merge`` keys a row by (data set, seed,
method), ``--tables-only`` rebuilds the tables from the JSON, and
``--jobs density_default --estimator-params '{...}' --out NAME`` runs the
density-model candidates with other settings (a study).
"""

import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

import _adbench
import _cli
import _leave_sets_out
import _report
from _peers import ANOMALY_PEERS, HYBRID_TUNED_PARAMS, anomaly_peer

CANDIDATES = ("hybrid_tuned", "log_density", "score_norm", "memorized", "hybrid",
              "rank_ld_sn", "rank_ld_hybrid")
PEERS = tuple(ANOMALY_PEERS)
QUICK_SETS = ("14_glass", "6_cardio", "39_vertebral")


def _finite(anomaly):
    """Non-finite anomaly scores (an underflowed density) rank as most anomalous."""
    anomaly = np.nan_to_num(np.asarray(anomaly, dtype=np.float64), nan=np.inf)
    return np.where(np.isinf(anomaly) & (anomaly > 0), np.finfo(float).max,
                    np.where(np.isinf(anomaly), -np.finfo(float).max, anomaly))


def _density_default_scores(X_train, X_test, seed, params=None):
    """Anomaly scores (higher = more abnormal) of the candidates of one density fit."""
    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector

    start = time.perf_counter()
    estimator = BootstrappedScoreEstimator(**(params or {}), random_state=seed)
    det = DiffusionOutlierDetector(estimator, method="hybrid", random_state=seed).fit(X_train)
    fit = time.perf_counter() - start
    timed = {}
    for name, fn in (
        ("hybrid", lambda: -det.score_samples(X_test)),
        ("score_norm", lambda: det.estimator_.anomaly_score(X_test)),
        ("log_density", lambda: -det.estimator_.score_samples(X_test)),
    ):
        start = time.perf_counter()
        timed[name] = (_finite(fn()), time.perf_counter() - start)
    hybrid, score_norm = timed["hybrid"][0], timed["score_norm"][0]
    tiny = np.finfo(np.float64).tiny
    # hybrid = log(score norm) + log(memorized norm), as the detector sums them.
    memorized = hybrid - np.log(np.maximum(score_norm, tiny))
    timed["memorized"] = (memorized, timed["hybrid"][1])
    ld = rankdata(timed["log_density"][0])
    timed["rank_ld_sn"] = (ld + rankdata(score_norm),
                           timed["log_density"][1] + timed["score_norm"][1])
    timed["rank_ld_hybrid"] = (ld + rankdata(hybrid),
                               timed["log_density"][1] + timed["hybrid"][1])
    return {name: (scores, fit + seconds) for name, (scores, seconds) in timed.items()}


def run_one(path, seed, job, threads=1, params=None):
    """Rows (data, seed, method, auroc, seconds) of one job on one set and seed.

    ``params`` override the density default's settings (a study, ``--estimator-params``).
    """
    import torch

    torch.set_num_threads(threads)
    X, y = _adbench.load(path.stem, path.parent)
    X_train, X_test, y_test = _adbench.split(X, y, seed)
    if job == "density_default":
        scored = _density_default_scores(X_train, X_test, seed, params)
    else:
        if job == "hybrid_tuned":
            from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector

            estimator = BootstrappedScoreEstimator(**dict(HYBRID_TUNED_PARAMS), random_state=seed)
            model = DiffusionOutlierDetector(estimator, random_state=seed)
        else:
            model = anomaly_peer(job, seed)
        start = time.perf_counter()
        scores = -model.fit(X_train).score_samples(X_test)
        scored = {job: (_finite(scores), time.perf_counter() - start)}
    return [
        {"data": path.stem, "seed": seed, "method": name,
         "auroc": float(roc_auc_score(y_test, scores)), "seconds": float(seconds)}
        for name, (scores, seconds) in scored.items()
    ]


def tables(runs):
    """Mean AUROC, its seed standard deviation and summed seconds per (set, method)."""
    methods = [m for m in CANDIDATES + PEERS if any(r["method"] == m for r in runs)]
    names = sorted({r["data"] for r in runs}, key=_adbench.set_order)
    auc, sec = {}, {}
    for r in runs:
        auc.setdefault((r["data"], r["method"]), []).append(r["auroc"])
        sec[r["data"], r["method"]] = sec.get((r["data"], r["method"]), 0.0) + r["seconds"]
    mean = {s: {m: float(np.mean(auc.get((s, m), [np.nan]))) for m in methods} for s in names}
    std = {s: {m: float(np.std(auc.get((s, m), [np.nan]))) for m in methods} for s in names}
    seconds = {s: {m: sec.get((s, m), np.nan) for m in methods} for s in names}
    return mean, std, seconds, methods


def seed_spread(runs, method):
    """Standard deviation over seeds of the method's mean AUROC over the sets.

    Only the sets run with every seed count (a merged run may have some sets
    with one seed only), so the spread is that of the seeds, not of the sets.
    """
    seeds = sorted({r["seed"] for r in runs})
    by_set = {}
    for r in runs:
        if r["method"] == method:
            by_set.setdefault(r["data"], {})[r["seed"]] = r["auroc"]
    full = [row for row in by_set.values() if len(row) == len(seeds)]
    if len(seeds) < 2 or not full:
        return float("nan")
    return float(np.std([np.mean([row[seed] for row in full]) for seed in seeds]))


def selection(mean, repeats=20, n_folds=4):
    """The leave-sets-out estimate, over ``repeats`` random fold assignments and LOO."""
    names = list(mean)
    held_out, chosen = [], {}
    for seed in range(repeats):
        folds = _leave_sets_out.set_folds(names, n_folds, seed)
        result = _leave_sets_out.leave_sets_out(mean, CANDIDATES, folds)
        held_out.append(result["mean"])
        for c in result["choice"].values():
            chosen[c] = chosen.get(c, 0) + 1
    loo = _leave_sets_out.leave_sets_out(mean, CANDIDATES, [[s] for s in names])
    return {"n_folds": n_folds, "repeats": repeats,
            "held_out_mean": float(np.mean(held_out)), "held_out_min": float(np.min(held_out)),
            "held_out_max": float(np.max(held_out)), "chosen": chosen,
            "loo_mean": loo["mean"], "loo_choice": loo["choice"]}


def wins_losses(mean, method, peer):
    """Sets where ``method`` beats / loses to ``peer`` (by more than 0.001), the worst loss."""
    diffs = {s: mean[s][method] - mean[s][peer] for s in mean}
    worst = min(diffs, key=diffs.get)
    return (sum(d > 0.001 for d in diffs.values()), sum(d < -0.001 for d in diffs.values()),
            diffs[worst], worst)


def markdown(runs, mean, std, seconds, methods, chosen_default=None):
    cols = " | ".join(methods)
    lines = ["AUROC, mean over seeds (best of each row in bold)", "",
             f"| data set | {cols} |", "|---" * (len(methods) + 1) + "|"]
    for s in mean:
        best = np.nanmax(list(mean[s].values()))
        cells = [f"**{mean[s][m]:.3f}**" if mean[s][m] == best else f"{mean[s][m]:.3f}"
                 for m in methods]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    avg = {m: float(np.nanmean([mean[s][m] for s in mean])) for m in methods}
    rank = _report.ranks(mean, methods)
    spread = {m: seed_spread(runs, m) for m in methods}
    lines.append("| **mean AUROC** | " + " | ".join(f"{avg[m]:.3f}" for m in methods) + " |")
    lines.append("| **seed sd of the mean (sets with every seed)** | "
                 + " | ".join(f"{spread[m]:.4f}" for m in methods) + " |")
    lines.append("| **mean rank** | " + " | ".join(f"{rank[m]:.2f}" for m in methods) + " |")
    lines += ["", "fit+score seconds (sum over seeds; a density-default candidate counts the "
              "shared fit once in each of its columns)", "",
              f"| data set | {cols} |", "|---" * (len(methods) + 1) + "|"]
    for s in seconds:
        lines.append(f"| {s} | " + " | ".join(f"{seconds[s][m]:.1f}" for m in methods) + " |")
    total = {m: float(np.nansum([seconds[s][m] for s in seconds])) for m in methods}
    lines.append("| **total** | " + " | ".join(f"{total[m]:.0f}" for m in methods) + " |")
    if chosen_default:
        lines += ["", f"Per-set wins / losses of `{chosen_default}` (by more than 0.001) and its "
                  "worst loss", "", "| peer | wins | losses | worst loss | on |",
                  "|---|---|---|---|---|"]
        for p in methods:
            if p == chosen_default:
                continue
            w, lo, worst, on = wins_losses(mean, chosen_default, p)
            lines.append(f"| {p} | {w} | {lo} | {worst:+.3f} | {on} |")
    return "\n".join(lines), avg, rank, spread


def main(argv=None):
    parser = _cli.parser(__doc__, "adbench_selection", quick="3 small sets, seed 0", threads=1,
                         n_jobs=1)
    parser.add_argument("--pool", choices=("classical", "embeddings"), default="classical")
    parser.add_argument("--sets", nargs="*", help="data set names (file stems) to run")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(_adbench.SEEDS))
    parser.add_argument("--jobs", nargs="*", help="jobs to run (default: all): "
                        "hybrid_tuned, density_default, or a peer name")
    parser.add_argument("--estimator-params", type=json.loads, default=None,
                        help="JSON overrides of the density default's settings in the "
                             "density_default job, for a study (write it with --out)")
    parser.add_argument("--tables-only", action="store_true",
                        help="rebuild the tables from results/NAME.json without running")
    parser.add_argument("--default", default=None,
                        help="candidate whose per-set wins and losses are tabulated "
                             "(default: the leave-one-set-out choice on the classical pool)")
    args = _cli.parse(parser, argv)
    if args.pool == "embeddings" and args.out == "adbench_selection":
        args.out = "adbench_selection_embeddings"
    folder = _adbench.DATA if args.pool == "classical" else _adbench.EMBEDDINGS
    paths = _adbench.paths(folder)
    if args.sets:
        paths = [p for p in paths if p.stem in args.sets]
    elif args.quick:
        paths = [p for p in paths if p.stem in QUICK_SETS]
    seeds = args.seeds[:1] if args.quick else args.seeds
    jobs = args.jobs or ["hybrid_tuned", "density_default", *PEERS]
    if "ECOD" in jobs:
        try:
            import pyod  # noqa: F401
        except ImportError:
            jobs = [j for j in jobs if j != "ECOD"]
    work = [(p, s, j) for p in sorted(paths, key=os.path.getsize, reverse=True)
            for s in seeds for j in jobs]
    partial = Path(__file__).parent / "results" / f"{args.out}.partial.jsonl"
    previous = _report.load(args.out) if (args.merge or args.tables_only) else None
    walls = list(previous.get("wall_runs", [previous["wall_seconds"]])) if previous else []
    if args.tables_only:
        work = []
        args.n_jobs, args.threads = previous["n_jobs"], previous["threads"]
    start = time.perf_counter()
    runs = []
    with open(partial, "a") as log:
        for rows in Parallel(n_jobs=args.n_jobs, verbose=5, return_as="generator_unordered")(
            delayed(run_one)(p, s, j, args.threads, args.estimator_params)
            for p, s, j in work
        ):
            runs += rows
            log.write("".join(json.dumps(r) + "\n" for r in rows))
            log.flush()
    if not args.tables_only:
        walls.append(time.perf_counter() - start)
    if args.merge or args.tables_only:
        runs = _report.merge_rows(args.out, runs, ("data", "seed", "method"), field="runs")
    mean, std, seconds, methods = tables(runs)
    complete = {s: row for s, row in mean.items()
                if all(np.isfinite(row.get(c, np.nan)) for c in CANDIDATES)}
    sel = selection(complete) if len(complete) >= 4 else None
    default = args.default
    if default is None and sel is not None:
        default = max(sel["chosen"], key=sel["chosen"].get)
    text, avg, rank, spread = markdown(runs, mean, std, seconds, methods, default)
    if sel is not None:
        text += (
            f"\n\nLeave-sets-out selection among the {len(CANDIDATES)} candidates on this "
            f"table's own sets ({args.pool}, {len(complete)} sets): held-out-fold mean AUROC "
            f"{sel['held_out_mean']:.3f} "
            f"(range {sel['held_out_min']:.3f} to {sel['held_out_max']:.3f} over "
            f"{sel['repeats']} random assignments to {sel['n_folds']} folds); leave one set "
            f"out {sel['loo_mean']:.3f}. Choices (set-fold pairs): "
            + ", ".join(f"{c} {n}" for c, n in sorted(sel["chosen"].items(), key=lambda x: -x[1]))
            + "."
        )
    footer = (f"wall clock: {' + '.join(f'{w / 60:.1f}' for w in walls)} min "
              f"({len(walls)} run(s) merged) with n_jobs={args.n_jobs}, {args.threads} torch "
              f"thread(s) per job; seeds {sorted({r['seed'] for r in runs})}")
    print(text)
    print(f"\n{footer}")
    command = shlex.join(["python", "benchmarks/adbench_selection.py",
                          *(sys.argv[1:] if argv is None else argv)])
    if previous and (args.merge or args.tables_only):
        command = previous.get("command", "?") + (f", then {command}" if args.merge else "")
    about = __doc__.split("\n\n")[1]
    md = f"# ADBench default selection (issue 25): `{command}`\n\n{about}\n\n{text}\n\n{footer}\n"
    _report.write(args.out, {
        "command": command, "pool": args.pool, "estimator_params": args.estimator_params,
        "candidates": list(CANDIDATES), "peers": list(PEERS),
        "wall_seconds": sum(walls), "wall_runs": walls, "n_jobs": args.n_jobs,
        "threads": args.threads,
        "auroc": mean, "auroc_seed_std": std, "seconds": seconds, "mean_auroc": avg,
        "mean_rank": rank, "seed_sd_of_mean": spread, "selection": sel, "runs": runs,
    }, md)
    partial.unlink(missing_ok=True)
    return mean


if __name__ == "__main__":
    main()
