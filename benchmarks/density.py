"""Held-out log-likelihood: the diffusion estimator against density peers.

Protocol (``DESIGN.md`` section 5, "Density quality"): each data set of
``_density_suite.py`` (real data dequantized, synthetic targets with an exact
log-density) is fitted on its training rows and scored on its test rows, one
method at a time. Every method is scored on the data set's own scale: peers
that standardize add the log-Jacobian of the scaler back. Peers in the same
run: KernelDensity (bandwidth grid-searched, 3-fold), GaussianMixture (BIC
over components and covariance types) and zuko's MAF and NSF (5 transforms,
128x128, Adam 1e-3, batch 256, early stopping on 10% of the training rows).
Reports the mean held-out log-likelihood (nats), the gap to the truth where
known, the train-minus-test gap, the mean rank and the seconds; writes
``benchmarks/results/<out>.json`` and ``<out>.md``.

Run ``python benchmarks/density.py`` from the repository root (about 71
minutes on the shared 2-core CPU); ``--quick`` fits the four data sets of
``_density_suite.QUICK`` only, cell for cell the same fits as the full run.
``--methods diffusion,diffusion:hidden_layer_sizes=(256,256),kde``
adds variants: the keywords after the name go to the method's factory (for
``diffusion``, to :class:`BootstrappedScoreEstimator`), read with
``ast.literal_eval`` where they parse and as strings otherwise; the label is
kept as given. The shared flags are those of ``_cli.py``; ``--merge`` keys a
cell by (data set, method). ``--seeds 0,1,2`` runs each seed of the suite (splits, dequantization noise,
synthetic rows) and writes ``<out>_seed<S>`` per seed, exactly as ``--seed S``
would, and ``<out>`` with the per-set mean and seed standard deviation, the
mean rank of the means and the wins that exceed the seed spread.
``--join a,b`` writes one report from the cells of
earlier runs ``results/a.json`` and ``results/b.json`` without fitting (how
the headline ``density.md`` was assembled from runs split over data sets and
methods); with ``--seeds 0,1,2``, ``{seed}`` in a part's name stands for each
seed in turn (``--join peers_seed{seed},default_seed{seed}``), and the per-seed
joins are summarized as ``--seeds`` summarizes its own runs.
"""

import argparse
import ast
import datetime
import functools
import inspect
import math
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import sklearn
import torch

import _cli
import _report
from _density_suite import DEQUANTIZATION_RULE, QUICK, dataset_names, load_suite
from _peers import GaussianMixtureBIC, GridSearchKDE, Standardized, ZukoFlow

TRAIN_ROWS = 2000  # training rows scored for train_ll (the first ones; rows are in random order)
PEERS = ("kde", "gmm", "maf", "nsf")
PROTOCOL = (
    "Protocol: fit on the training rows, mean log-density (nats) of the test rows on the data "
    "set's scale (standardized for the real sets except demo and digits64; the synthetic sets on "
    "their own scale); peers that standardize add the scaler's log-Jacobian back; train LL on at "
    f"most {TRAIN_ROWS} training rows; one method at a time."
)


# --------------------------------------------------------------------------- methods


def diffusion(dataset, **params):
    """``BootstrappedScoreEstimator(random_state=0)``, the package defaults otherwise.

    ``params`` override its parameters (variants from the command line).
    """
    from sklearn_diffusion import BootstrappedScoreEstimator

    return BootstrappedScoreEstimator(**{"random_state": 0, **params})


def kde(dataset):
    """Grid-searched KernelDensity on standardized data."""
    return Standardized(GridSearchKDE())


def gmm(dataset):
    """BIC-selected GaussianMixture on standardized data."""
    return Standardized(GaussianMixtureBIC())


def maf(dataset, **params):
    """zuko MAF (5 transforms, 128x128) on standardized data."""
    return Standardized(ZukoFlow("MAF", **params))


def nsf(dataset, **params):
    """zuko NSF (5 transforms, 128x128) on standardized data."""
    return Standardized(ZukoFlow("NSF", **params))


# Name -> factory(dataset, **keywords) returning an unfitted object with
# ``fit(X)`` and ``score_samples(X)`` (per-row log-density on the data set's
# scale). Add a method by adding an entry.
METHODS = {"diffusion": diffusion, "kde": kde, "gmm": gmm, "maf": maf, "nsf": nsf}


def parse_method(label):
    """Factory of a method label such as ``diffusion:max_iter=8000:loss='bootstrap'``.

    Parameters
    ----------
    label : str
        A name of :data:`METHODS`, then ``:key=value`` pairs; a value is read
        with ``ast.literal_eval`` (numbers, tuples, booleans, quoted strings)
        and kept as the plain string where that fails.

    Returns
    -------
    factory : callable
        ``factory(dataset)`` builds the model.
    """
    name, *pairs = label.split(":")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r} in {label!r} is not key=value")
        try:
            params[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[key] = text
    # Catches a keyword the factory does not take before any fitting starts.
    inspect.signature(METHODS[name]).bind(None, **params)
    return functools.partial(METHODS[name], **params)


def split_labels(text):
    """Split a comma-separated list of method labels, not at commas inside brackets.

    So ``diffusion:hidden_layer_sizes=(64,64),kde`` is two labels.

    Parameters
    ----------
    text : str

    Returns
    -------
    labels : list of str
    """
    labels, depth, current = [], 0, ""
    for char in text:
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            labels.append(current)
            current = ""
        else:
            current += char
    return labels + [current]


# --------------------------------------------------------------------------- running


def mean_log_density(log_density, what):
    """Mean of finite per-row log-densities; NaN and a note when any row is not finite."""
    log_density = np.asarray(log_density, dtype=np.float64)
    bad = int((~np.isfinite(log_density)).sum())
    if bad:
        return math.nan, f"{bad} of {len(log_density)} {what} rows non-finite"
    return float(log_density.mean()), ""


def run_cell(dataset, label, factory):
    """Fit one method on one data set and score it; an exception becomes NaN and a message.

    Returns
    -------
    cell : dict
        ``test_ll``, ``train_ll``, ``train_minus_test``, ``gap_truth`` (NaN
        where the truth is unknown), ``fit_s``, ``score_s``, ``note`` and
        ``error``.
    """
    cell = {"dataset": dataset.name, "method": label, "test_ll": math.nan,
            "train_ll": math.nan, "fit_s": math.nan, "score_s": math.nan, "note": "",
            "error": None}
    try:
        model = factory(dataset)
        start = time.perf_counter()
        model.fit(dataset.X_train)
        cell["fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        test = model.score_samples(dataset.X_test)
        cell["score_s"] = time.perf_counter() - start
        train = model.score_samples(dataset.X_train[:TRAIN_ROWS])
        cell["test_ll"], test_note = mean_log_density(test, "test")
        cell["train_ll"], train_note = mean_log_density(train, "train")
        notes = [getattr(model, "note_", ""), test_note, train_note]
        if hasattr(model, "n_iter_"):
            notes.append(f"{model.n_iter_} steps")
        if hasattr(model, "reference_weights_"):
            alone = " alone" if getattr(model, "reference_alone_", False) else ""
            notes.append(f"{model.column_transform_}, reference k={len(model.reference_weights_)}"
                         f"{alone}")
        if getattr(model, "reference", "mixture") != "mixture" and hasattr(
                model, "member_references_"):
            notes.append("kept " + "+".join(r[0] for r in model.member_references_))
        if getattr(model, "objective_", "score") != "score":
            notes.append(model.objective_.replace("_", " "))
        cell["note"] = "; ".join(n for n in notes if n)
    except Exception as exc:  # noqa: BLE001 - one failed cell must not end the run
        cell["error"] = f"{type(exc).__name__}: {exc}"
    cell["train_minus_test"] = cell["train_ll"] - cell["test_ll"]
    return cell


def truth(dataset):
    """Mean exact log-density of the test rows and of the scored training rows (or None)."""
    if dataset.log_density is None:
        return None
    return {"test_ll": float(dataset.log_density(dataset.X_test).mean()),
            "train_ll": float(dataset.log_density(dataset.X_train[:TRAIN_ROWS]).mean())}


def wins(table, methods):
    """For each diffusion method, on how many data sets it beats each peer present."""
    result = {}
    for label in methods:
        if label.split(":")[0] != "diffusion":
            continue
        result[label] = {}
        for peer in (p for p in PEERS if p in methods):
            beats = [not math.isnan(row[label])
                     and (math.isnan(row[peer]) or row[label] > row[peer])
                     for row in table.values()]
            result[label][peer] = int(sum(beats))
    return result


# --------------------------------------------------------------------------- report


def _fmt(value, digits=3):
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(infos, methods, cells, truths, ranks, win_counts):
    """The markdown tables of a run; ``infos`` are the data sets' JSON descriptions."""
    get = {(c["dataset"], c["method"]): c for c in cells}
    names = [info["name"] for info in infos]
    sections = [DEQUANTIZATION_RULE, PROTOCOL]
    sections.append("Data sets\n\n" + _table(
        ["data set", "n_train", "n_test", "d", "dequantized", "dropped", "scale", "truth"],
        [[i["name"], str(i["n_train"]), str(i["n_test"]), str(i["d"]), str(i["dequantized"]),
          str(i["dropped"]), i["scale"], "yes" if truths[i["name"]] else "no"] for i in infos],
    ))

    rows = []
    for name in names:
        values = [get[name, m]["test_ll"] for m in methods]
        best = np.nanmax(values) if not np.all(np.isnan(values)) else None
        cells_ = [f"**{_fmt(v)}**" if v == best else _fmt(v) for v in values]
        known = truths[name]["test_ll"] if truths[name] else math.nan
        rows.append([name, _fmt(known) if truths[name] else "-"] + cells_)
    sections.append("Held-out mean log-likelihood (nats, higher is better; best in bold)\n\n"
                    + _table(["data set", "truth"] + methods, rows))

    known = [n for n in names if truths[n]]
    if known:
        rows = [[n] + [_fmt(truths[n]["test_ll"] - get[n, m]["test_ll"]) for m in methods]
                for n in known]
        sections.append("Gap to the truth (true test LL minus test LL, nats, lower is better)\n\n"
                        + _table(["data set"] + methods, rows))

    rows = [[n, _fmt(truths[n]["train_ll"] - truths[n]["test_ll"]) if truths[n] else "-"]
            + [_fmt(get[n, m]["train_minus_test"]) for m in methods] for n in names]
    sections.append("Train minus test log-likelihood (nats; the truth column is sampling noise)"
                    "\n\n" + _table(["data set", "truth"] + methods, rows))

    rows = [[n] + [f"{_fmt(get[n, m]['fit_s'], 1)} + {_fmt(get[n, m]['score_s'], 1)}"
                   for m in methods] for n in names]
    sections.append("Seconds (fit + score of the test rows)\n\n"
                    + _table(["data set"] + methods, rows))

    lines = ["Mean rank by test LL (1 = best): "
             + ", ".join(f"{m} {ranks[m]:.2f}" for m in methods)]
    for label, counts in win_counts.items():
        if not counts:
            continue
        lines.append(f"{label} beats " + ", ".join(
            f"{peer} on {n}/{len(names)}" for peer, n in counts.items()) + " data sets")
    sections.append("\n".join(lines))

    notes = [f"- {c['dataset']} / {c['method']}: "
             + (f"ERROR {c['error']}" if c["error"] else c["note"])
             for c in cells if c["error"] or c["note"]]
    if notes:
        sections.append("Notes\n\n" + "\n".join(notes))
    return "\n\n".join(sections)


def main(argv=None):
    """Run the benchmark from command-line arguments; returns the cells (dicts)."""
    parser = _cli.parser(__doc__, "density", quick=f"data sets {', '.join(QUICK)} only",
                         threads=2)
    parser.add_argument("--datasets", help="comma-separated data set names (default: all; with "
                                           "--join, the sets kept)")
    parser.add_argument("--methods",
                        help="comma-separated method labels, e.g. diffusion:max_iter=8000,kde "
                             f"(default {','.join(METHODS)}; with --join, the methods kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the suite (splits, noise)")
    parser.add_argument("--seeds", metavar="S,S,...",
                        help="several seeds: each one's run is written to <out>_seed<S> exactly "
                             "as --seed S --out <out>_seed<S> writes it, and <out> gets the "
                             "per-set mean and standard deviation over the seeds")
    parser.add_argument("--join", metavar="PARTS",
                        help="comma-separated earlier outs: one report of their cells in --out, "
                             "nothing fitted; with --seeds, '{seed}' in a part stands for each "
                             "seed, <out>_seed<S> gets each seed's join and <out> the summary "
                             "of the methods every seed has")
    args = _cli.parse(parser, argv)
    names = args.datasets.split(",") if args.datasets else None
    kept = split_labels(args.methods) if args.methods else None
    if args.join and args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
        runs = {}
        for seed in seeds:
            parts = [part.replace("{seed}", str(seed)) for part in args.join.split(",")]
            join(f"{args.out}_seed{seed}", parts, names, kept)
            runs[seed] = _report.load(f"{args.out}_seed{seed}")["cells"]
        # The methods every seed has (a variant run on some seeds only is left out).
        listed = [_report.load(f"{args.out}_seed{seed}")["methods"] for seed in seeds]
        methods = [m for m in listed[0] if all(m in other for other in listed[1:])]
        return summarize_seeds(args.out, runs, methods)
    if args.join:
        return join(args.out, args.join.split(","), names, kept)

    methods = kept or list(METHODS)
    try:
        factories = {label: parse_method(label) for label in methods}
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    if args.datasets:
        names = args.datasets.split(",")
    else:
        names = list(QUICK) if args.quick else dataset_names()
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
        if args.merge:
            parser.error("--seeds writes whole runs; it does not take --merge")
        runs = {}
        for seed in seeds:
            seed_args = argparse.Namespace(**{**vars(args), "seeds": None, "seed": seed,
                                              "out": f"{args.out}_seed{seed}"})
            runs[seed] = run_seed(parser, seed_args, names, methods, factories)
        return summarize_seeds(args.out, runs, methods)
    return run_seed(parser, args, names, methods, factories)


def run_seed(parser, args, names, methods, factories):
    """Fit every method on every data set of one seed of the suite and write its report."""
    try:
        datasets = load_suite(names, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))

    torch.set_num_threads(args.threads)
    truths = {ds.name: truth(ds) for ds in datasets}
    cells = []
    total = len(datasets) * len(methods)
    start = time.perf_counter()
    with _cli.threads(args.threads):
        for ds in datasets:
            for label in methods:
                cell = run_cell(ds, label, factories[label])
                cells.append(cell)
                status = f"ERROR {cell['error']}" if cell["error"] else cell["note"]
                print(f"[{len(cells)}/{total}] {ds.name} / {label}: fit {_fmt(cell['fit_s'], 1)}"
                      f" s, score {_fmt(cell['score_s'], 1)} s, test LL "
                      f"{_fmt(cell['test_ll'])}  {status}", flush=True)
    wall = time.perf_counter() - start

    for c in cells:
        known = truths[c["dataset"]]
        c["gap_truth"] = known["test_ll"] - c["test_ll"] if known else math.nan
    infos = [{"name": ds.name, "n_train": len(ds.X_train), "n_test": len(ds.X_test),
              "d": ds.d, "dequantized": ds.dequantized, "dropped": ds.dropped,
              "scale": ds.scale, "truth": truths[ds.name]} for ds in datasets]
    run = {"threads": args.threads, "seed": args.seed, "wall_seconds": wall,
           "datasets": infos, "methods": methods, "cells": cells}
    earlier = _report.load(args.out) if args.merge else None
    if earlier is None:
        summarize(args.out, infos, methods, cells, {k: run[k] for k in
                                                    ("threads", "seed", "wall_seconds")})
        return cells
    infos, methods, cells, threads = combine([earlier, run])
    for name in (i["name"] for i in infos):  # a hole left by runs of different subsets
        for m in methods:
            if (name, m) not in cells:
                cells[name, m] = {"dataset": name, "method": m, "test_ll": math.nan,
                                  "train_ll": math.nan, "train_minus_test": math.nan,
                                  "gap_truth": math.nan, "fit_s": math.nan,
                                  "score_s": math.nan, "note": "", "error": "not run"}
    summarize(args.out, infos, methods, list(cells.values()),
              {"threads": threads, "seed": args.seed, "wall_seconds": wall,
               "header": "Cells merged (--merge) from several runs; seconds as measured in "
                         f"each run; wall_seconds is the last run's ({wall:.0f} s)."})
    return list(cells.values())


def _version(package):
    try:
        return version(package)
    except PackageNotFoundError:  # the flows' peers are not installed: none of them ran
        return None


def summarize(out, infos, methods, cells, extra):
    """Rank, report, print and write ``results/<out>.json`` and ``.md``; returns the text."""
    truths = {i["name"]: i["truth"] for i in infos}
    table = {i["name"]: {c["method"]: c["test_ll"] for c in cells if c["dataset"] == i["name"]}
             for i in infos}
    ranks = _report.ranks(table, methods)
    win_counts = wins(table, methods)
    text = report(infos, methods, cells, truths, ranks, win_counts)
    print("\n" + text, flush=True)
    versions = {"torch": torch.__version__, "sklearn": sklearn.__version__,
                "numpy": np.__version__, "zuko": _version("zuko")}
    md = (f"# Held-out log-likelihood ({datetime.date.today()}, "
          f"{extra.get('threads', '?')} threads, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__})\n\n"
          + (extra["header"] + "\n\n" if "header" in extra else "") + text + "\n")
    _report.write(out, {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": versions, **extra, "protocol": PROTOCOL,
        "dequantization": DEQUANTIZATION_RULE, "methods": methods, "datasets": infos,
        "cells": cells, "mean_rank": ranks, "wins": win_counts,
    }, md)
    return text


def summarize_seeds(out, runs, methods):
    """Per-set mean and seed standard deviation of the runs ``{seed: cells}``; writes ``out``.

    A method beats a peer on a set only when its mean test log-likelihood is
    higher by more than the larger of the two seed standard deviations; a
    set where the best peer's mean is ahead of a diffusion method's by more
    than ``max(1, 0.02 |LL|)`` nats is listed (the bar of issue 22).
    """
    seeds = sorted(runs)
    values = {}
    for seed in seeds:
        for c in runs[seed]:
            values.setdefault(c["dataset"], {}).setdefault(c["method"], []).append(c["test_ll"])
    names = list(values)
    mean = {n: {m: float(np.mean(values[n][m])) for m in methods} for n in names}
    std = {n: {m: float(np.std(values[n][m], ddof=1)) if len(seeds) > 1 else 0.0
               for m in methods} for n in names}
    ranks = _report.ranks(mean, methods)
    rows = [[n] + [f"{_fmt(mean[n][m])} ± {_fmt(std[n][m])}" for m in methods] for n in names]
    title = (f"# Held-out log-likelihood over seeds {','.join(map(str, seeds))} "
             f"({datetime.date.today()}, torch {torch.__version__})")
    lines = [title, "",
             f"Per-seed reports: {', '.join(f'{out}_seed{s}' for s in seeds)}.", "",
             "Mean ± seed standard deviation of the test log-likelihood (nats)", "",
             _table(["data set"] + methods, rows), "",
             "Mean rank of the per-set means (1 = best): "
             + ", ".join(f"{m} {ranks[m]:.2f}" for m in methods), ""]
    summary = {"seeds": seeds, "methods": methods, "mean": mean, "std": std, "ranks": ranks,
               "wins": {}, "behind": {}}
    peers = [m for m in methods if m.split(":")[0] != "diffusion"]
    for label in (m for m in methods if m.split(":")[0] == "diffusion"):
        counts, behind = {}, []
        for peer in peers:
            counts[peer] = {"wins": 0, "losses": 0}
            for n in names:
                diff = mean[n][label] - mean[n][peer]
                spread = max(std[n][label], std[n][peer])
                counts[peer]["wins"] += bool(diff > spread)
                counts[peer]["losses"] += bool(-diff > spread)
        for n in names:
            best = max(peers, key=lambda p: mean[n][p], default=None)
            if best is not None:
                gap = mean[n][best] - mean[n][label]
                if gap > max(1.0, 0.02 * abs(mean[n][best])):
                    behind.append((n, best, gap))
        summary["wins"][label], summary["behind"][label] = counts, behind
        lines.append(f"{label}, wins / losses beyond the seed spread over {len(names)} sets: "
                     + ", ".join(f"{p} {c['wins']}/{c['losses']}" for p, c in counts.items()))
        lines.append(f"{label}, sets where the best peer is ahead by more than max(1 nat, 2%): "
                     + (", ".join(f"{n} ({p} +{g:.2f})" for n, p, g in behind) or "none"))
    text = "\n".join(lines) + "\n"
    print("\n" + text, flush=True)
    _report.write(out, {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                        **summary}, text)
    return summary


def combine(payloads):
    """Data sets, methods, cells (by (data set, method)) and threads of several runs.

    A later payload's cell replaces an earlier one of the same (data set,
    method); data sets and methods keep the order of their first appearance.
    """
    infos, methods, cells, threads = {}, [], {}, set()
    for payload in payloads:
        threads.add(payload.get("threads"))
        for info in payload["datasets"]:
            infos.setdefault(info["name"], info)
        methods += [m for m in payload["methods"] if m not in methods]
        for c in payload["cells"]:
            cells[c["dataset"], c["method"]] = c
    return list(infos.values()), methods, cells, "/".join(map(str, sorted(threads, key=str)))


def join(out, parts, names=None, methods=None):
    """One report from the JSON files of several runs (``results/<part>.json``).

    Runs split over data sets (for example two one-thread processes side by
    side) or over methods (a variant measured later) are joined cell by cell;
    ``names`` (data set names) and ``methods`` (labels) keep only those.
    """
    payloads = [_report.load(part) for part in parts]
    absent = [part for part, payload in zip(parts, payloads) if payload is None]
    if absent:
        raise SystemExit(f"no results/<part>.json for {absent}")
    infos, all_methods, cells, threads = combine(payloads)
    if names is not None:
        infos = [i for i in infos if i["name"] in names]
        cells = {k: c for k, c in cells.items() if k[0] in names}
    methods = all_methods if methods is None else [m for m in methods if m in all_methods]
    cells = {k: c for k, c in cells.items() if k[1] in methods}
    missing = [k for k in ((i["name"], m) for i in infos for m in methods) if k not in cells]
    if missing:
        raise SystemExit(f"cells missing from the parts: {missing}")
    header = f"Merged from {', '.join(parts)} (seconds as measured in each run)."
    return summarize(out, infos, methods, list(cells.values()),
                     {"threads": threads, "parts": parts, "header": header})


if __name__ == "__main__":
    main()
