"""Sample quality: the package's default estimator against synthesizers and density peers.

Issue 27, part 1. Each table of ``_synthesis_data`` (wine, breast_cancer,
penguins, magic) is split per seed into training and holdout halves of equal
size (each at most ``--cap`` rows); every method is fitted on the training
rows and draws as many rows; ``_synthesis_metrics`` compares them with the
holdout rows (shape and trend errors, C2ST AUROC with gradient boosting and
with logistic regression, energy distance, Wasserstein-1, ML efficacy) and
with both halves (DCR share, median DCR, exact copies). The real training
rows go through the same metrics: the floor (``real rows``).

Methods fitted here, one at a time, one thread:

* ``diffusion``: ``sklearn_diffusion.BootstrappedScoreEstimator(random_state=seed)``,
  the defaults, fitted on the table as a DataFrame whose categorical columns
  are strings (its own categorical columns, issue 27 part 2), ``sample``;
* ``diffusion (one-hot)``: the same estimator with ``sample_domain="real"``
  on the one-hot table below, the baseline before part 2 (the default's
  rounding of 0/1 columns would leave all-zero blocks to the argmax);
* ``KDE``: Gaussian KernelDensity, bandwidth grid-searched (3-fold) on
  standardized columns (``_peers.GridSearchKDE``), ``sample``;
* ``GMM``: GaussianMixture chosen by BIC over components and covariance
  types on standardized columns (``_peers.GaussianMixtureBIC``), ``sample``;
* ``NSF``: zuko's neural spline flow of ``density.py`` (``_peers.ZukoFlow``),
  ``sample``.

Except ``diffusion``, none of them takes categorical columns: they see each categorical column
(the class target of every set, penguins' species, island, sex and year)
one-hot, and their samples are decoded by the argmax of each block.

The SDV (GaussianCopula, CTGAN, TVAE) and ForestDiffusion peers need pandas < 3
and run in their own environment (``synthesis_peers.py``, see its
docstring, first); their rows are read from ``results/synthesis_peers.json``
(``synthesis_peers_quick.json`` with ``--quick``) and ranked with these.
Writes ``results/synthesis.{md,json}``; ``--tables-only`` rebuilds the
tables from the saved rows. ``--merge`` keys a row by (data set, seed,
method).
"""

import os
import time
import warnings
from importlib.metadata import version

import _cli
import _report
import _synthesis_data as D
import numpy as np
import torch
from _peers import GaussianMixtureBIC, GridSearchKDE, Standardized, ZukoFlow
from _synthesis_metrics import floor_metrics

SEEDS = (0, 1, 2)
OWN = ("diffusion", "diffusion (one-hot)", "KDE", "GMM", "NSF")
PEERS = ("GaussianCopula", "CTGAN", "TVAE", "ForestDiffusion", "ForestDiffusion (defaults)")
FLOOR = "real rows"

# name, title, how to rank ("low", "high", "half": closest to 0.5, None: no rank)
METRICS = (
    ("c2st_hgb", "C2ST AUROC, gradient boosting (0.5 best)", "half"),
    ("c2st_lr", "C2ST AUROC, logistic regression (0.5 best)", "half"),
    ("mle", ("ML efficacy: macro-F1 on holdout of a HistGradientBoosting classifier trained "
             "on the rows (higher better)"), "high"),
    ("shape", "Column shape error: mean KS statistic / TV distance (lower better)", "low"),
    ("trend", "Column pair trend error, all pairs (lower better)", "low"),
    ("energy", "Energy distance, standardized and one-hot/sqrt(2) rows (lower better)", "low"),
    ("w1", ("Wasserstein-1 per numeric column, standardized by the training rows, averaged "
            "(lower better)"), "low"),
    ("dcr_share", ("DCR share: synthetic rows closer to a training row than to a holdout row "
                   "(0.5 ideal)"), "half"),
    ("dcr_median", ("Median distance of a synthetic row to its closest training row (not "
                    "ranked: higher is more private, but far rows are also bad rows)"), None),
    ("copies", "Exact copies of training rows (share of synthetic rows, lower better)", "low"),
    ("out_of_range", ("Numeric sampled values outside their column's training range (share; "
                      "not ranked)"), None),
    ("fit_s", "Fit seconds (shared 2-core machine, one thread, other jobs running)", None),
    ("sample_s", "Sample seconds (as many rows as training rows)", None),
)


# --------------------------------------------------------------------------- own methods


def _fit_sample(make, draw):
    """``fit_sample`` of a method fitted on the one-hot table: fit, draw, decode, time."""

    def fit_sample(spec, train, n, seed):
        Z = D.one_hot(spec, train)
        model = make(seed)
        start = time.perf_counter()
        model.fit(Z)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = draw(model, n, seed)
        sample_s = time.perf_counter() - start
        return D.decode(spec, np.asarray(rows, dtype=np.float64)), fit_s, sample_s, _note(model)

    return fit_sample


def _note(model):
    if hasattr(model, "note_"):
        return model.note_
    return f"{getattr(model, 'n_iter_', '?')} steps"


def _standardized_draw(inner):
    def draw(model, n, seed):
        return model.scaler_.inverse_transform(inner(model.model, n, seed))
    return draw


def _kde_draw(kde, n, seed):
    return kde.kde_.sample(n, random_state=seed)


def _gmm_draw(gmm, n, seed):
    gmm.gm_.random_state = seed
    return gmm.gm_.sample(n)[0]


def _flow_draw(flow, n, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        return flow.flow_().sample((n,)).double().numpy()


def _diffusion(seed, **params):
    from sklearn_diffusion import BootstrappedScoreEstimator

    return BootstrappedScoreEstimator(random_state=seed, **params)


def _diffusion_table(spec, train, n, seed):
    """``fit_sample`` of the default on the table with its categorical columns as strings."""
    model = _diffusion(seed)
    start = time.perf_counter()
    model.fit(D.to_frame(spec, train))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = model.sample(n, random_state=seed)
    sample_s = time.perf_counter() - start
    return D.from_frame(spec, rows), fit_s, sample_s, _note(model)


METHODS = {
    "diffusion": _diffusion_table,
    "diffusion (one-hot)": _fit_sample(lambda s: _diffusion(s, sample_domain="real"),
                                       lambda m, n, s: m.sample(n, random_state=s)),
    "KDE": _fit_sample(lambda s: Standardized(GridSearchKDE()), _standardized_draw(_kde_draw)),
    "GMM": _fit_sample(lambda s: Standardized(GaussianMixtureBIC()),
                       _standardized_draw(_gmm_draw)),
    "NSF": _fit_sample(lambda s: Standardized(ZukoFlow("NSF", seed=s)),
                       _standardized_draw(_flow_draw)),
}


# --------------------------------------------------------------------------- tables


def _cells(rows, key):
    """``{method: {data: mean over seeds}}`` and the seed counts, for one metric."""
    values, counts = {}, {}
    for r in rows:
        if r.get("error") or r.get(key) is None:
            continue
        values.setdefault(r["method"], {}).setdefault(r["data"], []).append(r[key])
    for m, per in values.items():
        counts[m] = {d: len(v) for d, v in per.items()}
        values[m] = {d: float(np.mean(v)) for d, v in per.items()}
    return values, counts


def _rank_key(value, how):
    return {"low": value, "high": -value, "half": abs(value - 0.5)}[how]


def _mean_ranks(values, methods, data, how):
    """Mean rank over the data sets where every method of ``methods`` has a value."""
    table = {d: {m: _rank_key(values[m][d], how) for m in methods} for d in data
             if all(d in values.get(m, {}) for m in methods)}
    if not table:
        return {}, []
    return _report.ranks(table, methods, higher_is_better=False), list(table)


def _fmt(x, key):
    if key in ("fit_s", "sample_s"):
        return f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return f"{x:.3f}"


def tables(rows, data, seeds_note):
    """The markdown report: one table per metric, the targets, the notes."""
    methods = [m for m in OWN + PEERS if any(r["method"] == m and not r.get("error")
                                             for r in rows)]
    data = [d for d in data if any(r["data"] == d for r in rows)]
    out, summary = [], {}
    for key, title, how in METRICS:
        values, counts = _cells(rows, key)
        ranked = [m for m in methods if m in values and all(d in values[m] for d in data)]
        mean_rank, _ = _mean_ranks(values, ranked, data, how) if how else ({}, [])
        summary[key] = mean_rank
        # A method that lacks a data set: a second rank, of every method, on the common sets.
        every = [m for m in methods if m in values]
        all_rank, common = (_mean_ranks(values, every, data, how)
                            if how and every != ranked else ({}, []))
        summary[key + "_common"] = (all_rank, common)
        head = ["method"] + data + (["mean rank"] if how else []) + (
            [f"mean rank on {', '.join(common)}"] if all_rank else [])
        lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in methods + ([FLOOR] if FLOOR in values else []):
            cells = []
            for d in data:
                v = values.get(m, {}).get(d)
                n = counts.get(m, {}).get(d, 0)
                mark = "" if n == len(seeds_note) else f" ({n} seed{'s' * (n > 1)})"
                cells.append("" if v is None else _fmt(v, key) + mark)
            if how:
                cells.append(f"{mean_rank[m]:.2f}" if m in mean_rank else "")
            if all_rank:
                cells.append(f"{all_rank[m]:.2f}" if m in all_rank else "")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        out += lines + [""]
        if key == "fit_s" and "diffusion" in values:
            lines = [("Fit seconds as a ratio to the diffusion default's, same data set "
                      "(mean over the seeds of each):"), "",
                     "| method | " + " | ".join(data) + " |", "|" + "---|" * (len(data) + 1)]
            for m in methods:
                cells = [f"{values[m][d] / values['diffusion'][d]:.2f}"
                         if d in values.get(m, {}) and d in values["diffusion"] else ""
                         for d in data]
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            out += lines + [""]
    return out, summary, methods, data


def targets(rows, summary, methods, data):
    """The issue's targets, checked on the measured rows (text, nothing assumed)."""
    lines = ["## The issue's targets, on these rows", ""]
    for key, name in (("c2st_hgb", "C2ST AUROC (gradient boosting)"),
                      ("c2st_lr", "C2ST AUROC (logistic)"), ("mle", "ML efficacy")):
        ranks = summary.get(key) or {}
        if "diffusion" not in ranks:
            lines.append(f"- {name}: no rank (a method lacks a data set).")
            continue
        best = min(ranks, key=ranks.get)
        better = [f"{m} {r:.2f}" for m, r in ranks.items() if m != "diffusion"
                  and r <= ranks["diffusion"]]
        verdict = "met" if best == "diffusion" and not better else "missed"
        lines.append(f"- Best mean rank on {name}: **{verdict}**. diffusion "
                     f"{ranks['diffusion']:.2f}" + (f"; as good or better: {', '.join(better)}"
                                                   if better else "") + ".")
        common_rank, common = summary.get(key + "_common", ({}, []))
        if common_rank:
            lines.append(f"  On the sets every method has ({', '.join(common)}): diffusion "
                         f"{common_rank['diffusion']:.2f}, best "
                         f"{min(common_rank, key=common_rank.get)} "
                         f"{min(common_rank.values()):.2f}.")
        values, _ = _cells(rows, key)
        how = {k: h for k, _, h in METRICS}[key]
        wins = []
        for m in methods:
            if m == "diffusion":
                continue
            sets = [d for d in data if d in values.get(m, {}) and d in values["diffusion"]]
            won = sum(_rank_key(values["diffusion"][d], how) < _rank_key(values[m][d], how)
                      for d in sets)
            wins.append(f"{m} {won}/{len(sets)}")
        lines.append("  Data sets where diffusion is better than: " + ", ".join(wins) + ".")
    share, _ = _cells(rows, "dcr_share")
    if "diffusion" in share and FLOOR in share:
        gaps = {d: share["diffusion"][d] - share[FLOOR][d] for d in data
                if d in share["diffusion"] and d in share[FLOOR]}
        ok = all(abs(g) <= 0.05 for g in gaps.values())
        lines.append(f"- DCR share within 0.05 of the real-rows floor: **{'met' if ok else 'missed'}**"
                     " (diffusion minus floor: "
                     + ", ".join(f"{d} {g:+.3f}" for d, g in gaps.items()) + ").")
    return lines + [""]


def _row_states(rows):
    """Lines naming the package state of the methods whose rows a later run merged in."""
    states = {}
    for r in rows:
        if r.get("library"):
            states.setdefault(r["library"], set()).add(r["method"])
    return [f"Rows of {', '.join(sorted(m))}: sklearn_diffusion {state}." for state, m in
            states.items()] + ([""] if states else [])


def report(rows, data, seeds, meta):
    body, summary, methods, data = tables(rows, data, seeds)
    errors = [f"- {r['data']} seed {r['seed']} {r['method']}: {r['error']}" for r in rows
              if r.get("error")]
    head = [
        "# Sample quality: synthetic rows against holdout rows (`benchmarks/synthesis.py`)", "",
        (f"Seeds {', '.join(map(str, seeds))}; training and holdout halves of equal size, "
         f"each capped at {meta['cap']} rows (only magic's 19,020 rows are cut); each method "
         "draws as many rows as it was fitted on. Cells are means over the seeds; \"(1 seed)\" "
         "marks a cell with another number of seeds (ForestDiffusion: seed 0 only, for time). "
         "A mean rank is over the data sets, of the seed means, among the methods that have "
         "every data set; C2ST and DCR share rank by the distance to "
         "0.5. `real rows` is the floor: the training rows themselves scored as if synthetic "
         "(for DCR: half of the holdout rows against halves of both sets), which a method "
         "can only match on average."), "",
        ("The diffusion default takes the table as a DataFrame with its categorical columns "
         "(the class target of every set; penguins' species, island, sex, year) as strings "
         "(`categorical_features`, issue 27 part 2). `diffusion (one-hot)` (the baseline "
         "before it, with `sample_domain=\"real\"`), KDE, GMM and NSF take no categorical "
         "columns: they were fitted on the table with every categorical column one-hot, and "
         "their rows decoded by the argmax of each block. SDV's synthesizers get the "
         "categorical columns as strings, ForestDiffusion as its "
         "`cat_indexes`/`bin_indexes`."), "",
        (f"Package (rows without a state of their own): sklearn_diffusion "
         f"{meta.get('library', '(state not recorded)')}."), "",
    ] + _row_states(rows) + [
        f"Peers' settings: {meta.get('peer_settings', 'see synthesis_peers.py')}.", "",
        ("Timings were taken on the shared 2-core machine with one thread per process while "
         "two other engineers ran their own benchmarks (load average before each own row in "
         "the JSON); read them as ratios within the run."), "",
    ]
    return "\n".join(head + targets(rows, summary, methods, data) + body
                     + (["## Failed cells", ""] + errors + [""] if errors else []))


# --------------------------------------------------------------------------- main


def _library_state():
    """The commit the package ran from, and whether its files differed from it."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "sklearn_diffusion"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")


def main(argv=None):
    parser = _cli.parser(__doc__, "synthesis", threads=1,
                         quick="wine and magic, seed 0 (reads synthesis_peers_quick.json)")
    parser.add_argument("--data", nargs="+", default=list(D.NAMES), choices=D.NAMES)
    parser.add_argument("--methods", nargs="+", default=list(OWN), choices=OWN)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--cap", type=int, default=D.CAP,
                        help=f"rows per half (training, holdout), default {D.CAP}")
    parser.add_argument("--peers", default=None, metavar="NAME",
                        help="results/NAME.json of synthesis_peers.py (default synthesis_peers, "
                             "or synthesis_peers_quick with --quick)")
    parser.add_argument("--tables-only", action="store_true",
                        help="rebuild the tables from results/OUT.json and the peers' rows")
    parser.add_argument("--library-note", default=None,
                        help="with --tables-only: replace the recorded package state (text)")
    args = _cli.parse(parser, argv)
    if args.quick:
        args.data, args.seeds = ["wine", "magic"], [0]
    peers_name = args.peers or ("synthesis_peers_quick" if args.quick else "synthesis_peers")
    meta = {"cap": args.cap, "seeds": args.seeds, "data": args.data, "quick": args.quick,
            "threads": args.threads, "library": _library_state(),
            "versions": {p: version(p) for p in ("scikit-learn", "numpy", "torch", "zuko")}}
    rows = []
    previous = _report.load(args.out) if args.merge else None
    if previous and previous.get("library"):
        # The package line describes the rows without a state of their own.
        meta["library"], row_library = previous["library"], meta["library"]
    else:
        row_library = meta["library"]
    if args.tables_only:
        saved = _report.load(args.out)
        rows, meta = saved["rows"], {k: v for k, v in saved.items() if k not in ("rows",
                                                                                   "machine")}
        if args.library_note:
            meta["library"] = args.library_note
    else:
        begin = time.perf_counter()
        with _cli.threads(args.threads):
            for data in args.data:
                table, spec = D.load(data)
                for seed in args.seeds:
                    train, holdout = D.split(table, seed, args.cap)
                    floor = {"data": data, "seed": seed, "method": FLOOR,
                             "n_train": len(train), "n_holdout": len(holdout),
                             "out_of_range": D.out_of_range(spec, holdout, train)}
                    floor.update(floor_metrics(spec, train, holdout, seed=seed))
                    rows.append(floor)
                    for method in args.methods:
                        load = os.getloadavg()[0]
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            row = D.cell(spec, data, seed, method, train, holdout,
                                         METHODS[method])
                        row["load_before"] = load
                        row["library"] = row_library
                        rows.append(row)
                        print(f"[{time.perf_counter() - begin:6.0f}s] {data} seed {seed} "
                              f"{method}: " + (row.get("error") or
                                               f"fit {row['fit_s']:.1f}s c2st "
                                               f"{row['c2st_hgb']:.3f} mle {row['mle']:.3f} "
                                               f"dcr {row['dcr_share']:.3f}"), flush=True)
                        saved = _report.merge_rows(args.out, rows, ("data", "seed", "method")) \
                            if args.merge else rows
                        _report.write(args.out, {"rows": saved, **meta})
        if args.merge:
            rows = _report.merge_rows(args.out, rows, ("data", "seed", "method"))
    peers = _report.load(peers_name)
    if peers is None:
        print(f"no results/{peers_name}.json: run synthesis_peers.py first for the SDV and "
              "ForestDiffusion peers")
        peer_rows = []
    else:
        peer_rows = peers["rows"]
        meta["peer_settings"] = (f"CTGAN and TVAE {peers['epochs']} epochs (SDV's default); "
                                 "GaussianCopula SDV defaults; ForestDiffusion flow n_t=25, "
                                 "duplicate_K=20, n_jobs=1, one xgboost thread; versions "
                                 + ", ".join(f"{k} {v}" for k, v in peers["versions"].items()))
        meta["peers"] = peers_name
    md = report(rows + peer_rows, meta["data"], meta["seeds"], meta)
    _report.write(args.out, {"rows": rows, **meta}, md)


if __name__ == "__main__":
    main()
