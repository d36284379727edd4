"""Imputation: DiffusionImputer against scikit-learn's imputers.

Protocol (``DESIGN.md`` section 5, issue 11): each data set is split into
train and test rows (train capped at ``--train-cap``, test at ``--test-cap``);
a missing-value pattern is applied to both; every method is fitted on the
incomplete training rows and fills the held-out rows. All methods see the
data standardized by the observed training entries (``StandardScaler``
ignores NaN), so the RMSE on the filled entries is on the standardized scale.

Patterns: MCAR at 10%, 30% and 50% of entries (all three on the small sets
circle-4d, mixture-6d and wine; 30% on the others, to keep the run short);
``dropout``: a fifth of the
columns (at least one) each missing over a contiguous block of a third of the
rows, in train and test alike (a sensor down for a while); ``block``: for the
8x8 digits lattice, the central 4x4 square of pixels missing in every test row
(training rows have 10% MCAR).

Methods: mean (``SimpleImputer``), ``KNNImputer`` (5 neighbours),
``IterativeImputer`` (default BayesianRidge), ``IterativeImputer`` with
``ExtraTreesRegressor`` (MissForest-like; 20 trees and 5 rounds to keep the
run short), hyperimpute when ``results/impute_hyperimpute.json`` holds its
cells (``impute_hyperimpute.py``, run in its own environment), and
``DiffusionImputer`` (the library's default estimator; the 8x8 lattice uses
``LocalizedDiffusionEstimator(locality=(8, 8), radius=2, max_iter=1500)``).
For the diffusion imputer one call draws 20 conditional samples per row: their mean is the
fill (what ``DiffusionImputer(n_samples=20)`` returns) and their 5% and 95%
quantiles give the 90% interval whose coverage of the true values is
reported (the ``sample_posterior=True`` draws); that rule holds only 81.7%
even for exact posterior draws, so the coverage of [min, max] of the 20
draws, the order-statistic 90% interval (19/21), is reported too
(``results/studies/impute_tuning.md``). Seconds are fit + fill.

Data: the synthetic circle-4d (non-linear) and mixture-6d (multi-modal),
wine, breast_cancer, digits (64 columns, and as an 8x8 lattice), and the
normal rows of two ADBench sets (magic.gamma, pendigits).

Cases, splits and masks are in ``_impute_cases.py``. Run ``python
benchmarks/impute.py`` from the repository root (about 6.5 minutes on the
shared 2-core CPU; ``--quick``: circle-4d, mixture-6d and digits-64 with MCAR
30% and dropout, and the lattice block). ``--merge`` keys a row by (data,
pattern, method); ``--tables-only`` rebuilds the tables from the rows of
``results/<out>.json`` and hyperimpute's, without fitting (after
``impute_hyperimpute.py``). Writes ``benchmarks/results/<out>.{md,json}``.
"""

import time
import warnings

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import _cli
import _report
from _impute_cases import THREADS, case_list, split
from _report import markdown
from sklearn_diffusion import DiffusionImputer, LocalizedDiffusionEstimator

# Read as impute.<name> by the frozen studies that replay these cases
# (studies/impute_reference.py, impute_refit.py, impute_tuning.py).
from sklearn.datasets import load_digits  # noqa: F401, E402
from _impute_cases import FULL_PATTERN_SETS, datasets, make_masks  # noqa: F401, E402

N_DRAWS = 20


# ------------------------------------------------------------- methods
def peers():
    return {
        "mean": lambda: SimpleImputer(),
        "kNN": lambda: KNNImputer(),
        "iterative": lambda: IterativeImputer(random_state=0),
        "iterative-ET": lambda: IterativeImputer(
            ExtraTreesRegressor(n_estimators=20, random_state=0, n_jobs=1), max_iter=5,
            random_state=0),
    }


def diffusion_imputer(lattice):
    estimator = None
    if lattice:
        # shared=False: the default when impute.md was measured (before issue 24).
        estimator = LocalizedDiffusionEstimator(locality=(8, 8), radius=2, shared=False,
                                                max_iter=1500, random_state=0)
    return DiffusionImputer(estimator, random_state=0)


def run_diffusion(imputer, X_train, X_test):
    """Fit, 20 draws per row; the fill (mean of the draws), coverage and seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Near-discrete columns (digits) warn about the likelihood, not used here.
        warnings.simplefilter("ignore", UserWarning)
        imputer.fit(X_train)
    fitted = time.perf_counter()
    draws = imputer.estimator_.sample_conditional(
        X_test, n_samples=N_DRAWS, n_resample=imputer.n_resample, random_state=0
    )
    seconds = time.perf_counter() - start
    return draws.mean(axis=0), draws, seconds, fitted - start


# ----------------------------------------------------------------- run
def evaluate(name, X, pattern, rng, train_cap, test_cap, lattice=False):
    Z_train, Z_test, Z_test_true, test_mask = split(X, pattern, rng, train_cap, test_cap, lattice)
    truth = Z_test_true[test_mask]
    rows = []
    for method, make in peers().items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IterativeImputer's convergence warning
            fill = make().fit(Z_train).transform(Z_test)
        seconds = time.perf_counter() - start
        rmse = float(np.sqrt(np.mean((fill[test_mask] - truth) ** 2)))
        rows.append(dict(data=name, pattern=pattern, method=method, rmse=rmse,
                         seconds=seconds, coverage=None))
    fill, draws, seconds, fit_seconds = run_diffusion(diffusion_imputer(lattice), Z_train, Z_test)
    low, high = np.quantile(draws, [0.05, 0.95], axis=0)
    covered = (low[test_mask] <= truth) & (truth <= high[test_mask])
    # [min, max] of n exchangeable draws holds a further one with probability
    # (n - 1) / (n + 1), 0.905 for 20: the order-statistic 90% interval. The
    # 5%-95% quantiles above hold it with 0.817 only, even for exact draws
    # (benchmarks/results/studies/impute_tuning.md).
    spread = (draws.min(axis=0)[test_mask] <= truth) & (truth <= draws.max(axis=0)[test_mask])
    rmse = float(np.sqrt(np.mean((fill[test_mask] - truth) ** 2)))
    rows.append(dict(data=name, pattern=pattern, method="diffusion", rmse=rmse,
                     seconds=seconds, fit_seconds=fit_seconds, coverage=float(covered.mean()),
                     coverage_minmax=float(spread.mean())))
    return rows


def ranks(rows):
    """Rank (1 = best RMSE; a tie goes to the earlier method) within each (data, pattern) case."""
    cases = {}
    for row in rows:
        cases.setdefault((row["data"], row["pattern"]), []).append(row)
    for case in cases.values():
        rmse = {"case": {i: r["rmse"] for i, r in enumerate(case)}}
        rank = _report.case_ranks(rmse, list(range(len(case))), higher_is_better=False,
                                  ties="ordinal")["case"]
        for i, r in enumerate(case):
            r["rank"] = int(rank[i])
    return rows


def _insert_before_diffusion(rows, extra):
    """``rows`` with each case's ``extra`` row placed before its diffusion row."""
    by_case = {(r["data"], r["pattern"]): r for r in extra}
    out = []
    for r in rows:
        if r["method"] == "diffusion" and (r["data"], r["pattern"]) in by_case:
            out.append(by_case[(r["data"], r["pattern"])])
        out.append(r)
    return out


def main(argv=None):
    parser = _cli.parser(__doc__, "impute", threads=THREADS,
                         quick="circle-4d, mixture-6d and digits-64 (MCAR 30%, dropout) and the "
                               "lattice block")
    parser.add_argument("--train-cap", type=int, default=1000)
    parser.add_argument("--test-cap", type=int, default=250)
    parser.add_argument("--tables-only", action="store_true",
                        help="rebuild the tables from the rows of results/OUT.json and the "
                             "hyperimpute rows of results/impute_hyperimpute.json, without "
                             "fitting")
    args = _cli.parse(parser, argv)
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    if args.tables_only:
        previous = _report.load(args.out)
        rows = [r for r in previous["rows"] if r["method"] != "hyperimpute"]
        wall = previous["wall_seconds"]
    else:
        rows = []
        for index, (name, X, pattern, lattice) in enumerate(case_list(args.quick)):
            rng = np.random.default_rng(index)
            case_rows = evaluate(name, X, pattern, rng, args.train_cap, args.test_cap, lattice)
            rows += case_rows
            line = "  ".join(f"{r['method']}={r['rmse']:.3f}" for r in case_rows)
            print(f"[{time.perf_counter() - begin:6.0f}s] {name} {pattern}: {line} "
                  f"coverage={case_rows[-1]['coverage']:.3f} ({case_rows[-1]['seconds']:.0f}s)",
                  flush=True)
        wall = time.perf_counter() - begin
        if args.merge:
            rows = [r for r in _report.merge_rows(args.out, rows, ("data", "pattern", "method"))
                    if r["method"] != "hyperimpute"]
    # The peer that needs its own environment (impute_hyperimpute.py), where
    # its rows are of the same cases.
    extra = _report.load("impute_hyperimpute" + ("_quick" if args.quick else ""))
    hyper = extra is not None and (extra["train_cap"], extra["test_cap"], extra["quick"]) == (
        args.train_cap, args.test_cap, args.quick)
    if hyper:
        rows = _insert_before_diffusion(rows, extra["rows"])
    ranks(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table = []
    for data, pattern in dict.fromkeys((r["data"], r["pattern"]) for r in rows):
        case = {r["method"]: r for r in rows if (r["data"], r["pattern"]) == (data, pattern)}
        entry = {"data": data, "pattern": pattern}
        for m in methods:
            entry[m] = case[m]["rmse"]
        entry["coverage90"] = case["diffusion"]["coverage"]
        entry["coverage90 min-max"] = case["diffusion"]["coverage_minmax"]
        entry["diffusion s"] = case["diffusion"]["seconds"]
        entry["iterative-ET s"] = case["iterative-ET"]["seconds"]
        table.append(entry)
    summary = []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        summary.append({"method": m, "mean rank": float(np.mean([r["rank"] for r in mine])),
                        "mean RMSE": float(np.mean([r["rmse"] for r in mine])),
                        "total seconds": float(np.sum([r["seconds"] for r in mine]))})
    coverage = [r["coverage"] for r in rows if r["method"] == "diffusion"]
    coverage_minmax = [r["coverage_minmax"] for r in rows if r["method"] == "diffusion"]
    text = "\n".join([
        "# Imputation benchmark (`benchmarks/impute.py`" + (" --quick" if args.quick else "") + ")",
        "",
        f"RMSE on the filled entries, standardized scale (lower is better); train rows "
        f"<= {args.train_cap}, test rows <= {args.test_cap}; torch threads = {args.threads}; "
        f"coverage90: share of true values inside the 5%-95% range of {N_DRAWS} "
        "conditional draws (DiffusionImputer's sample_posterior draws), which even exact "
        f"posterior draws fill only 81.7% of the time; coverage90 min-max: inside [min, max] "
        f"of the {N_DRAWS} draws, the order-statistic 90% interval (exact draws: "
        f"{(N_DRAWS - 1) / (N_DRAWS + 1):.3f})."
        + (" hyperimpute (from results/impute_hyperimpute.json, run in its own environment by "
           "impute_hyperimpute.py) fills the test rows by fit_transform on the training and "
           "test rows stacked: its transform refits on whatever rows it is given."
           if hyper else ""),
        "",
        markdown(table, ["data", "pattern", *methods, "coverage90", "coverage90 min-max",
                         "diffusion s",
                         "iterative-ET s"]),
        "",
        markdown(summary, ["method", "mean rank", "mean RMSE", "total seconds"]),
        "",
        f"Diffusion 90% interval coverage: mean {np.mean(coverage):.3f}, "
        f"range {np.min(coverage):.3f} to {np.max(coverage):.3f} over {len(coverage)} cases "
        "(5%-95% quantiles of the draws); "
        f"[min, max] of the draws: mean {np.mean(coverage_minmax):.3f}, range "
        f"{np.min(coverage_minmax):.3f} to {np.max(coverage_minmax):.3f}.",
        f"Wall time of the run: {wall:.0f} s"
        + (" (of impute.py; hyperimpute's cells are timed in impute_hyperimpute.json)."
           if hyper else "."),
    ])
    print("\n" + text)
    _report.write(args.out, {"rows": rows, "summary": summary, "threads": args.threads,
                             "wall_seconds": wall,
                             "train_cap": args.train_cap, "test_cap": args.test_cap,
                             "quick": args.quick}, text)


if __name__ == "__main__":
    main()
