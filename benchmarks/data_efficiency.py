"""Data efficiency at small n: held-out log-likelihood against the training rows (issue 23).

Protocol: learning curves of the held-out mean log-likelihood against the
number of training rows n. Each target has one fixed test set, the same for
every n, seed and method: 5,000 rows drawn once for a synthetic target (its
own fixed stream), the density suite's test rows for a real one (seed 0 of
``_density_suite.load_suite``, at most 2,000). Seed s draws the training
rows: for a synthetic target the first n rows of one 2,000-row draw of the
stream (target, s), for a real one the first n rows of a permutation of the
suite's training rows (its pool; an n above the pool is skipped), so one
seed's training sets are nested across n and all methods fit the same rows
(a paired design). The seed is also the model's: ``random_state`` of the
diffusion labels, ``seed`` of the flows. Cells are fitted and scored by
``density.run_cell``, one torch thread per job by default.

Targets, ``--family curves`` (default): the exact-density targets of
``_density_suite.TARGETS`` (gmm2d, gmm16, banana6, student8, uniform4,
funnel10 by default, gmm64 by name), reported as the gap to the truth (true
minus model mean test log-density, nats, lower is better); and four ADBench
sets of the suite whose pool has 2,000 rows (so every n is run) and whose
test set has 2,000 rows, reported as the log-likelihood (higher is better).
``--family dimension``: ``dim<d>``, four unit-variance Gaussians on the
corners of a square of side 6 in a random plane of R^d, N(0, I) across it,
at one n (500), reported as the gap per coordinate.

Options (with the shared ``--quick``, ``--out``, ``--threads``, ``--n-jobs``,
``--merge`` of ``_cli.py``): ``--targets a,b`` (names of the suite, or
``dim<d>``), ``--n 50,100,...``, ``--dims 2,8,...``, ``--seeds 0,1,2``,
``--methods`` (labels of ``density.parse_method``, e.g.
``diffusion:loss='bootstrap'``) and ``--max-iter`` (steps of the diffusion
labels that do not set it). ``--quick``: gmm2d and banana6 at n = 100 and
300 (``--family dimension``: d = 2 and 32 at n = 300), seeds 0 and 1, DSM,
bootstrap, KDE and GMM, 600 diffusion steps: a few minutes on 2 cores.

Writes ``results/<out>.{json,md}`` (default ``data_efficiency``): every cell
in the JSON; in the markdown, per target the mean ± seed sd by n, the rows
each method needs to reach GMM's value at the largest n (linear in log n),
every diffusion variant paired against ``diffusion:loss='dsm'`` seed by seed,
the steps kept by early stopping, and the fit seconds. ``--merge`` keys a
cell by (target, n, seed, method), so the full run is
``python benchmarks/data_efficiency.py --n-jobs 2`` then
``python benchmarks/data_efficiency.py --family dimension --n-jobs 2 --merge``.
"""

import datetime
import math
import shlex
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

import _cli
import _report
from _density_suite import TARGETS, Dataset, GaussianMixtureTarget, load_suite
from density import parse_method, run_cell, split_labels

SYNTHETIC = ("gmm2d", "gmm16", "banana6", "student8", "uniform4", "funnel10")
# Continuous ADBench sets with a 2,000-row pool and test set, 6 to 36 columns:
# wine, breast_cancer and the smaller ADBench sets (cardio: 827 rows) cannot
# run n = 1,000 and 2,000 nor give 2,000 test rows.
REAL = ("ad_22_magic.gamma", "ad_28_pendigits", "ad_2_annthyroid", "ad_30_satellite")
METHODS = ("diffusion", "diffusion:loss='dsm'", "diffusion:loss='bootstrap'", "kde", "gmm",
           "maf")
SIZES, DIMS, DIM_SIZES = (50, 100, 200, 500, 1000, 2000), (2, 8, 32, 128, 256), (500,)
QUICK = {"targets": ("gmm2d", "banana6"), "n": (100, 300), "dims": (2, 32), "dim_n": (300,),
         "seeds": (0, 1), "max_iter": 600,
         "methods": ("diffusion:loss='dsm'", "diffusion:loss='bootstrap'", "kde", "gmm")}
BASE = "diffusion:loss='dsm'"
POOL, N_TEST = 2000, 5000
SEED_KEYWORD = {"diffusion": "random_state", "maf": "seed", "nsf": "seed"}
KEY = ("target", "n", "seed", "method")
PROTOCOL = __doc__.split("\n\n")[1]  # the docstring's protocol paragraph heads the report


class SubspaceMixture(GaussianMixtureTarget):
    """Four unit-variance Gaussians at the corners of a square of side 6 in a random plane of R^d.

    With N(0, I) in the plane's orthogonal complement the law is a Gaussian
    mixture with identity covariances in R^d, so the parent's exact
    log-density holds; the plane is fixed by ``d``.

    Parameters
    ----------
    d : int
    """

    def __init__(self, d):
        plane = np.linalg.qr(np.random.default_rng(d).standard_normal((d, 2)))[0]
        corners = 3.0 * np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
        super().__init__(np.full(4, 0.25), corners @ plane.T, np.tile(np.eye(d), (4, 1, 1)))

    def sample(self, n, rng):
        """``n`` rows drawn with ``rng``."""
        # The parent's einsum builds an (n, d, d) array: 2.6 GB at d = 256.
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        return self.means[component] + rng.standard_normal((n, self.means.shape[1]))


def family(name):
    """``"synthetic"``, ``"dimension"`` or ``"real"``."""
    return "synthetic" if name in TARGETS else "dimension" if name.startswith("dim") else "real"


def _stream(name, *tags):
    return np.random.default_rng([zlib.crc32(name.encode()), *tags])


def fixed_part(name):
    """``(X_test, target or None, pool or None, true mean test LL)``; None: data missing.

    Rebuilt by every cell, in milliseconds: a cache in this script would not
    survive joblib's pickling of its functions into the workers.
    """
    if family(name) == "real":
        suite = load_suite([name], seed=0)  # prints a note and is empty without ADBench
        return (suite[0].X_test, None, suite[0].X_train, math.nan) if suite else None
    target = SubspaceMixture(int(name[3:])) if family(name) == "dimension" else TARGETS[name]()
    X_test = target.sample(N_TEST, _stream(name, 0))
    return X_test, target, None, float(target.log_density(X_test).mean())


def training_rows(name, n, seed, target, pool):
    """The first ``n`` rows of seed ``seed``'s draw: nested across n (up to 2,000 rows)."""
    rng = _stream(name, 1, seed)
    if target is not None:
        return target.sample(max(POOL, n), rng)[:n]
    return pool[rng.permutation(len(pool))[:n]]


def factory(label, seed, max_iter=None):
    """``density.parse_method`` of ``label`` with the seed (and steps) it does not set."""
    name = label.split(":")[0]
    extra = {SEED_KEYWORD.get(name): seed, "max_iter": max_iter if name == "diffusion" else None}
    return parse_method(label + "".join(f":{k}={v!r}" for k, v in extra.items()
                                        if k and v is not None and f":{k}=" not in label))


def run_job(name, n, seed, label, max_iter, threads):
    """One cell: ``density.run_cell`` plus the steps the diffusion model ran and kept."""
    X_test, target, pool, truth = fixed_part(name)
    dataset = Dataset(name, training_rows(name, n, seed, target, pool), X_test,
                      log_density=None if target is None else target.log_density)
    built = []

    def build(ds):  # keeps the model, which run_cell does not return
        built.append(factory(label, seed, max_iter)(ds))
        return built[-1]

    with _cli.threads(threads):
        cell = run_cell(dataset, label, build)
    model = built[0] if built else None
    row = {"target": cell.pop("dataset"), "family": family(name), "d": dataset.d, "n": n,
           "seed": seed, **cell, "truth_ll": truth, "gap": truth - cell["test_ll"]}
    for attribute in ("n_iter_", "best_iter_"):  # absent on the peers
        steps = getattr(model, attribute, None)
        row[attribute.rstrip("_")] = None if steps is None else int(steps)
    print(f"{name} n={n} seed={seed} {label}: test LL {row['test_ll']:.3f}, fit "
          f"{row['fit_s']:.1f} s {row['error'] or ''}", flush=True)
    return row


# --------------------------------------------------------------------------- report


def value(row):
    """What a cell reports: gap (synthetic), gap per coordinate (dimension), LL (real)."""
    return {"synthetic": row["gap"], "dimension": row["gap"] / row["d"],
            "real": row["test_ll"]}[row["family"]]


def _mean_sd(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _fmt(x, digits=3, sign=""):
    return "nan" if x is None or math.isnan(x) else f"{x:{sign}.{digits}f}"


def rows_to_reach(sizes, values, goal, higher_is_better=False):
    """Smallest n at which a mean curve reaches ``goal``, linear in log n between sizes.

    Parameters
    ----------
    sizes : sequence of int
        Increasing.
    values : sequence of float
        The curve at ``sizes``; NaN counts as not there.
    goal : float
    higher_is_better : bool, default=False

    Returns
    -------
    n : float
        ``sizes[0]`` when the curve starts there, ``inf`` when it never gets there.
    """
    short = [(goal - v) if higher_is_better else (v - goal) for v in values]
    for i, s in enumerate(short):
        if s <= 0:  # False for NaN
            if i == 0 or math.isnan(short[i - 1]):
                return float(sizes[i])
            low, high = math.log(sizes[i - 1]), math.log(sizes[i])
            return math.exp(low + short[i - 1] / (short[i - 1] - s) * (high - low))
    return math.inf


def report(rows, methods):
    """The markdown sections of the cells ``rows``."""
    cells = {}
    for r in rows:
        cells.setdefault((r["target"], r["n"], r["method"]), {})[r["seed"]] = r
    stats = {k: _mean_sd([value(r) for r in v.values()]) for k, v in cells.items()}
    info = {r["target"]: r for r in rows}
    sizes = {t: sorted({r["n"] for r in rows if r["target"] == t}) for t in info}
    higher = {t: info[t]["family"] == "real" for t in info}
    curves = [t for t in info if info[t]["family"] != "dimension"]
    dims = [t for t in info if info[t]["family"] == "dimension"]

    def mean(t, n, m):
        return stats.get((t, n, m), (math.nan,))[0]

    def line(t, n):
        known = [mean(t, n, m) for m in methods if not math.isnan(mean(t, n, m))]
        best = (max if higher[t] else min)(known) if known else None
        text = {}
        for m in methods:
            mu, sd = stats.get((t, n, m), (None, None))
            bold = f"**{_fmt(mu)}**" if mu == best else _fmt(mu)
            text[m] = "-" if mu is None else f"{bold} ± {_fmt(sd)}"
        return text

    out = ["## Learning curves (mean ± seed sd; best mean in bold)"]
    for t in curves:
        what = ("test log-likelihood, nats, higher is better" if higher[t] else
                f"true test LL {info[t]['truth_ll']:.3f}; gap to it, nats, lower is better")
        out += [f"### {t} (d = {info[t]['d']}; {what})",
                _report.markdown([{"n": n, **line(t, n)} for n in sizes[t]], ["n", *methods])]
    if dims:
        out += ["### Dimension family (gap to the truth per coordinate, nats, lower is better)",
                _report.markdown([{"d": info[t]["d"], "n": n, **line(t, n)}
                                  for t in dims for n in sizes[t]], ["d", "n", *methods])]

    if "gmm" in methods and curves:
        table = []
        for t in curves:
            high, goal = sizes[t][-1], mean(t, sizes[t][-1], "gmm")
            row = {"target": t, "gmm at largest n": f"{_fmt(goal)} (n = {high})"}
            for m in methods:
                # Only the sizes this method ran: a method run at fewer n
                # must not read as "never there" at the ones it skipped.
                ran = [n for n in sizes[t] if (t, n, m) in stats]
                if not ran:
                    row[m] = "-"
                    continue
                reach = rows_to_reach(ran, [mean(t, n, m) for n in ran], goal, higher[t])
                row[m] = (f"> {ran[-1]}" if reach == math.inf else
                          f"<= {ran[0]}" if reach == ran[0] else f"{reach:.0f}")
            table.append(row)
        out += ["## Rows to reach GMM's value at the largest n",
                "Linear interpolation of each mean curve in log n; the value is the gap "
                "(synthetic) or the log-likelihood (real) of `gmm` at the largest n run.",
                _report.markdown(table, ["target", "gmm at largest n", *methods])]

    variants = [m for m in methods if m.startswith("diffusion") and m != BASE]
    if BASE in methods and variants:
        table, counts = [], {v: dict.fromkeys(("better", "worse", "level", "failed"), 0)
                             for v in variants}
        for t, n in ((t, n) for t in info for n in sizes[t]):
            row = {"target": t, "n": n}
            for v in variants:
                a, b = cells.get((t, n, v), {}), cells.get((t, n, BASE), {})
                paired = [a[s]["test_ll"] - b[s]["test_ll"] for s in a if s in b]
                mu, sd = _mean_sd(paired) if paired else (math.nan, math.nan)
                verdict = ("failed" if math.isnan(mu) else "better" if mu > sd
                           else "worse" if -mu > sd else "level")
                counts[v][verdict] += bool(paired) and n <= 500
                row[v] = f"{_fmt(mu, sign='+')} ± {_fmt(sd)} {verdict}" if paired else "-"
            table.append(row)
        out += [f"## Paired against `{BASE}`",
                "Mean over seeds of the variant's minus DSM's test log-likelihood on the same "
                "rows (nats, positive: the variant is better) ± the seed sd of that "
                "difference; better or worse when the mean exceeds the sd (level otherwise, "
                "and with one seed).", _report.markdown(table, ["target", "n", *variants]),
                "Cells at n <= 500: " + "; ".join(
                    f"{v} " + ", ".join(f"{k} {c[k]}" for k in c) for v, c in counts.items())]

    diffusion = [m for m in methods if m.startswith("diffusion")]
    if diffusion:
        table = []
        for n in sorted({r["n"] for r in rows}):
            kept = {m: [(r["best_iter"], r["n_iter"]) for r in rows if r["n"] == n
                        and r["method"] == m and r["n_iter"] is not None] for m in diffusion}
            table.append({"n": n, **{m: " / ".join(f"{x:.0f}" for x in np.mean(k, axis=0))
                                     if k else "-" for m, k in kept.items()}})
        out += ["## Steps kept",
                "`best_iter_` / `n_iter_` (step whose weights early stopping kept / steps "
                "run), mean over the targets and seeds run at that n.",
                _report.markdown(table, ["n", *diffusion])]

    seconds = []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        seconds.append({"method": m, "cells": len(mine),  # failed cells have NaN seconds
                        "fit s (sum)": _fmt(np.nansum([r["fit_s"] for r in mine]), 1),
                        "score s (sum)": _fmt(np.nansum([r["score_s"] for r in mine]), 1)})
    out += ["## Seconds", _report.markdown(seconds, ["method", "cells", "fit s (sum)",
                                                     "score s (sum)"])]
    errors = [f"- {r['target']} n={r['n']} seed={r['seed']} {r['method']}: {r['error']}"
              for r in rows if r["error"]]
    return "\n\n".join(out + (["## Failed cells", "\n".join(errors)] if errors else []))


def _git_head():
    run = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    return run.stdout.strip() or "unknown"


def main(argv=None):
    """Run the learning curves from command-line arguments; returns the cells (dicts)."""
    parser = _cli.parser(__doc__, "data_efficiency", threads=1, n_jobs=1,
                         quick="gmm2d and banana6 at n = 100, 300 (dimension: d = 2, 32 at n "
                               "= 300), seeds 0 and 1, DSM, bootstrap, KDE, GMM, 600 steps")
    parser.add_argument("--family", choices=("curves", "dimension"), default="curves",
                        help="curves: exact-density and real targets against n; dimension: "
                             "the 4-mode mixture in a plane of R^d against d")
    parser.add_argument("--targets", help="comma-separated names (default: "
                                          f"{', '.join(SYNTHETIC + REAL)})")
    parser.add_argument("--n", help="comma-separated training rows (default "
                                    f"{','.join(map(str, SIZES))}; dimension: 500)")
    parser.add_argument("--dims", help="comma-separated d of the dimension family (default "
                                       f"{','.join(map(str, DIMS))})")
    parser.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--methods", help=f"method labels (default {','.join(METHODS)})")
    parser.add_argument("--max-iter", type=int,
                        help="steps of the diffusion labels that do not set max_iter")
    args = _cli.parse(parser, argv)

    def ints(text, default):
        return [int(x) for x in text.split(",")] if text else list(default)

    quick = args.quick
    dimension = args.family == "dimension"
    seeds = ints(args.seeds, QUICK["seeds"] if quick else (0, 1, 2))
    sizes = ints(args.n, (QUICK["dim_n"] if dimension else QUICK["n"]) if quick
                 else DIM_SIZES if dimension else SIZES)
    if dimension:
        names = [f"dim{d}" for d in ints(args.dims, QUICK["dims"] if quick else DIMS)]
    else:
        names = (args.targets.split(",") if args.targets
                 else list(QUICK["targets"] if quick else SYNTHETIC + REAL))
    methods = split_labels(args.methods) if args.methods else list(
        QUICK["methods"] if quick else METHODS)
    max_iter = args.max_iter or (QUICK["max_iter"] if quick else None)
    try:
        for label in methods:
            factory(label, 0, max_iter)
        parts = {t: fixed_part(t) for t in names}
    except (ValueError, TypeError, KeyError) as exc:
        parser.error(str(exc))

    jobs, available = [], [t for t in names if parts[t] is not None]
    for t in available:
        pool = parts[t][2]
        kept = [n for n in sizes if pool is None or n <= len(pool)]
        if len(kept) < len(sizes):
            print(f"note: {t} has {len(pool)} training rows; n > {len(pool)} skipped")
        jobs += [(t, n, s, m) for n in kept for s in seeds for m in methods]
    print(f"{len(jobs)} cells: {len(available)} targets, n {sizes}, seeds {seeds}, "
          f"{len(methods)} methods, {args.n_jobs} job(s)", flush=True)
    start = time.perf_counter()
    rows = Parallel(n_jobs=args.n_jobs)(
        delayed(run_job)(*job, max_iter, args.threads) for job in jobs)
    wall = time.perf_counter() - start
    if args.merge:
        rows = _report.merge_rows(args.out, rows, KEY)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    command = shlex.join(["python", "benchmarks/data_efficiency.py",
                          *(sys.argv[1:] if argv is None else argv)])
    date, head = datetime.datetime.now().isoformat(timespec="seconds"), _git_head()
    footer = (f"`{command}` at {head} on {date}: {wall / 60:.1f} min wall, {args.n_jobs} "
              f"job(s) of {args.threads} thread(s); machine {_report.machine()}"
              + (" (the last run's; cells merged with --merge)" if args.merge else ""))
    text = report(rows, methods)
    print("\n" + text + "\n\n" + footer, flush=True)
    _report.write(args.out, {
        "date": date, "git": head, "command": command, "wall_seconds": wall,
        "n_jobs": args.n_jobs, "threads": args.threads, "max_iter": max_iter,
        "methods": methods, "rows": rows,
    }, f"# Data efficiency at small n (issue 23)\n\n{PROTOCOL}\n\n{text}\n\n{footer}\n")
    return rows


if __name__ == "__main__":
    main()
