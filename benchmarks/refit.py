"""Re-fit only what changed: LocalizedDiffusionEstimator.refit_features against a full fit.

One sensor of a field is recalibrated (its column becomes ``2 x + 1``); the
model fitted on the old rows is updated with ``refit_features(X_new, [j])``
and compared with ``fit(X_new)`` from scratch, same parameters and seed.

Fields (``_fields.py``): a 12x12 lattice Gaussian field (d = 144, radius 1,
lattice locality) and a ring of 1,024 sites (radius 2). 2,000 rows, blocks
of 32 coordinates, small fits (``max_iter=200``, 1 thread, ``n_jobs=1``) so
the whole run takes minutes. Each timing is the median of 3 runs (one run
for d = 1,024); both
``smoothing="auto"`` (the default: the smoothing is chosen again after the
refit, on the held-out rows, which costs the same in both) and a fixed
smoothing (training only). The check column confirms that the blocks the
refit did not touch kept their weights bit for bit and that the model equals
the full fit's bit for bit (only column j differs between the two data sets).
At d = 1,024 only the fixed smoothing was timed: with ``smoothing="auto"``
one case (fit, full fit, refit) ran for over 17 minutes on the shared
machine, the likelihood over 14 candidate smoothings dominating.

Run ``python benchmarks/refit.py``; the table is printed and written to
``benchmarks/results/refit.{md,json}``. ``--quick``: the lattice only, fixed
smoothing. ``--merge`` keys a row by (field, smoothing).
"""

import time

import numpy as np
import torch
from sklearn.base import clone

import _cli
from _fields import field_precision, field_sample
from _report import markdown, merge_rows, write
from sklearn_diffusion import LocalizedDiffusionEstimator

CASES = {
    # name: (graph, d, locality, radius, changed column, timed runs)
    "lattice 12x12": ("lattice", 144, (12, 12), 1, 70, 3),
    "ring 1024": ("ring", 1024, "ring", 2, 500, 1),
}


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def main(argv=None):
    parser = _cli.parser(__doc__, "refit", quick="the 12x12 lattice, fixed smoothing 0.001")
    parser.add_argument("--cases", nargs="*", default=None, help=f"of {list(CASES)} (all)")
    parser.add_argument("--smoothings", nargs="*", default=None,
                        help="'auto' and/or fixed smoothing times (default auto 0.001)")
    parser.add_argument("--missing", nargs="*", type=float, default=[0.0, 0.25],
                        help="shares of the changed column's entries set to NaN (default 0 0.25)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per case (default: the case's own count)")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--n", type=int, default=2000)
    args = _cli.parse(parser, argv)
    cases = args.cases or (["lattice 12x12"] if args.quick else list(CASES))
    smoothings = args.smoothings or (["0.001"] if args.quick else ["auto", "0.001"])
    with _cli.threads(args.threads):
        rows = run(cases, smoothings, args.max_iter, args.n, args.missing, args.repeats)
        threads = torch.get_num_threads()
    if args.merge:
        rows = merge_rows(args.out, rows, ("field", "smoothing", "missing"))
    table = markdown(rows, list(rows[0]))
    print("\n" + table)
    setup = (f"{args.n} rows, max_iter={args.max_iter}, block_size=32, n_jobs=1, torch threads "
             f"{threads}; times are the median of `runs` runs")
    write(args.out, {"setup": setup, "rows": rows},
          "# refit_features against a full fit (`benchmarks/refit.py`)\n\n"
          f"{setup}. One column changed (`2 x + 1`); `ratio` = refit / full fit seconds.\n\n"
          + table + "\n")


def run(cases, smoothings, max_iter, n, missing=(0.0,), repeats=None):
    """The rows of the table, one per (case, smoothing, share of the changed column missing).

    With a share missing, that share of the changed column's entries (every
    k-th row) is NaN in the new rows: fit then trains twice, the second time
    on its own conditional draws, and so must the refit.
    """
    rows = []
    for name, share, smoothing in ((c, m, s if s == "auto" else float(s))
                                   for c in cases for m in missing for s in smoothings):
        graph, d, locality, radius, column, case_repeats = CASES[name]
        runs = repeats or case_repeats
        X, _ = field_sample(field_precision(graph, d), n, seed=0)
        X_new = X.copy()
        X_new[:, column] = 2 * X_new[:, column] + 1
        if share > 0:
            X_new[:: round(1 / share), column] = np.nan
        est = LocalizedDiffusionEstimator(
            locality=locality, radius=radius, shared=False, block_size=32,  # per-block refits
            max_iter=max_iter, smoothing=smoothing, random_state=0,
        )
        old = clone(est).fit(X)
        full_s, full = median_time(lambda: clone(est).fit(X_new), runs)

        def refit():
            model = clone(est)
            # A copy of the old fit's state, so each repeat starts from it.
            model.__setstate__(old.__getstate__())
            return model.refit_features(X_new, [column])

        refit_s, updated = median_time(refit, runs)
        windows = old.model_.windows.numpy()
        touched = [b for b, block in enumerate(old.blocks_) if (windows[block] == column).any()]
        kept = [b for b in range(len(old.blocks_)) if b not in touched]
        same = all(
            torch.equal(updated.model_.state_dict()[k][old.blocks_[b]],
                        old.model_.state_dict()[k][old.blocks_[b]])
            for b in kept for k, _ in old.model_.named_parameters()
        )
        equal_full = all(torch.equal(p, q) for p, q in zip(
            updated.model_.state_dict().values(), full.model_.state_dict().values()))
        rows_scored = X_new[~np.isnan(X_new).any(axis=1)][:200]
        gap = np.abs(updated.score_samples(rows_scored) - full.score_samples(rows_scored)).max()
        row = {"field": name, "d": d, "smoothing": str(smoothing), "missing": share,
               "runs": runs, "blocks": len(old.blocks_), "retrained": len(touched),
               "full_fit_s": full_s, "refit_s": refit_s, "ratio": refit_s / full_s,
               "untouched_bit_identical": same, "equals_full_fit": equal_full,
               "max_gap_nats": float(gap)}
        rows.append(row)
        print(markdown([row], list(row)).splitlines()[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
