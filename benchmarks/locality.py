"""Score error against the radius: localized sub-models vs one global network.

Targets with a closed-form score: Gaussian fields whose precision is banded on
a ring or on a 2-D lattice (``_fields.py``). For each dimension ``d`` and
radius, a :class:`LocalizedDiffusionEstimator` is fitted on ``n`` rows, and a
global :class:`BootstrappedScoreEstimator` with the same steps, batch size and
stopping rule; the error is the relative score error
``E||s_hat - s||^2 / E||s||^2`` against the exact score, on fresh rows, at
noise levels log-spaced over ``[0.01, 2]``, averaged over the levels.

Run ``python benchmarks/locality.py`` (``--quick`` for a short version); the
table is printed and the numbers of each target and dimension are written to
``benchmarks/results/loc_<kind>_<d>.json`` (``--out PREFIX``:
``PREFIX_<kind>_<d>.json``; ``loc_quick_...`` with ``--quick``), after every
fit. The committed ``loc_*.json`` were run with ``--max-iter 1000``, d = 256
and 1,024 on a GPU (``--device cuda``). ``--merge`` keeps a file's rows of
other models (key: target, d, model).

``python benchmarks/locality.py --hybrid`` compares local, global and hybrid
(local plus ``n_global_components=1``) models on a 12x12 lattice field with
and without a common factor (``x = y + c f 1``, ``f ~ N(0, 1)``, which makes
the precision dense): the relative and per-coordinate score errors against
the exact score, and the held-out log-likelihood gap to the truth per
coordinate, 2,000 training and 2,000 test rows, default fits otherwise. It
writes ``benchmarks/results/locality_hybrid.{md,json}`` (``--merge``: key
field, model).
"""

import time

import numpy as np

import _cli
from _fields import field_precision, field_sample, relative_score_errors
from _report import RESULTS, markdown, merge_rows, write
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion.localization import coordinate_distances

TIMES = np.logspace(-2, np.log10(2.0), 8)


def main(argv=None):
    parser = _cli.parser(__doc__, "loc", quick="d in {16, 64}, radius <= 3, 1000 steps "
                         "(--hybrid: 500 training rows, 1000 steps)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--dims", type=int, nargs="*", default=None)
    parser.add_argument("--radii", type=int, nargs="*", default=None)
    parser.add_argument("--kinds", nargs="*", default=["ring", "lattice"])
    parser.add_argument("--no-global", action="store_true", help="skip the global model")
    parser.add_argument("--hybrid", action="store_true",
                        help="local vs global vs hybrid, with and without a common factor")
    parser.add_argument("--radius", type=int, default=1, help="radius of --hybrid's local models")
    parser.add_argument("--loading", type=float, default=0.7,
                        help="--hybrid: the factor's loading c on every coordinate")
    args = parser.parse_args(argv)
    if args.out is None:  # a prefix of one file per target and d, or --hybrid's name
        args.out = ("locality_hybrid" if args.hybrid else "loc") + ("_quick" if args.quick
                                                                    else "")
    with _cli.threads(args.threads):
        return hybrid_comparison(args) if args.hybrid else radius_sweep(args)


def radius_sweep(args):
    dims = args.dims or ([16, 64] if args.quick else [16, 64, 256, 1024])
    radii = args.radii if args.radii is not None else list(range(4 if args.quick else 6))
    max_iter = args.max_iter or (1000 if args.quick else 4000)
    common = dict(max_iter=max_iter, batch_size=256, device=args.device, random_state=0)
    rows = []

    def record(row):
        # Written after every fit, so an interrupted run keeps what it measured.
        rows.append(row)
        print(row["target"], row["d"], row["model"], f"{row['error']:.4f}", f"{row['fit_s']:.0f}s",
              flush=True)
        mine = [r for r in rows if (r["target"], r["d"]) == (row["target"], row["d"])]
        name = f"{args.out}_{row['target']}_{row['d']}"
        if args.merge:
            mine = merge_rows(name, mine, ("target", "d", "model"))
        write(name, dict(times=TIMES.tolist(), max_iter=max_iter, device=args.device, rows=mine))

    for kind in args.kinds:
        for d in dims:
            X, cov = field_sample(field_precision(kind, d), 2000, seed=0)
            side = int(round(np.sqrt(d)))
            locality = "ring" if kind == "ring" else (side, side)
            diameter = coordinate_distances(locality, d).max()
            for radius in radii:
                if radius > diameter:  # every neighbourhood is already full: not a model
                    print(f"{kind} {d}: radius {radius} > diameter {diameter:g}, skipped")
                    continue
                start = time.perf_counter()
                est = LocalizedDiffusionEstimator(
                    locality=locality, radius=radius, shared=False,  # per coordinate, as measured
                    block_size=d if args.device != "cpu" else 32, **common,
                ).fit(X)
                errors = relative_score_errors(est, cov, TIMES)
                record(dict(target=kind, d=d, model=f"localized r={radius}", radius=radius,
                            error=float(np.mean(errors)), errors=errors, n_iter=est.n_iter_,
                            fit_s=time.perf_counter() - start))
            if not args.no_global:
                start = time.perf_counter()
                est = BootstrappedScoreEstimator(**common).fit(X)
                errors = relative_score_errors(est, cov, TIMES)
                record(dict(target=kind, d=d, model="global", radius=None,
                            error=float(np.mean(errors)), errors=errors, n_iter=est.n_iter_,
                            fit_s=time.perf_counter() - start))

    print(f"\nRelative score error (mean over {len(TIMES)} noise levels in [0.01, 2]), "
          f"n = 2000, max_iter = {max_iter}, device = {args.device}\n")
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("| target | d | " + " | ".join(models) + " | best r | global / best |")
    print("|---|---|" + "---|" * (len(models) + 2))
    for kind in args.kinds:
        for d in dims:
            cell = {r["model"]: r for r in rows if r["target"] == kind and r["d"] == d}
            local = [r for r in cell.values() if r["radius"] is not None]
            if not local:
                continue
            best = min(local, key=lambda r: r["error"])
            ratio = f"{cell['global']['error'] / best['error']:.1f}x" if "global" in cell else "-"
            print(f"| {kind} | {d} | " + " | ".join(
                f"{cell[m]['error']:.4f}" if m in cell else "-" for m in models
            ) + f" | {best['radius']} | {ratio} |")


def gaussian_log_density(X, cov):
    """Exact log-density of the rows ``X`` under ``N(0, cov)``."""
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("ij,jk,ik->i", X, np.linalg.inv(cov), X)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + logdet + quad)


def hybrid_comparison(args):
    d, side = 144, 12
    max_iter = args.max_iter or (1000 if args.quick else 4000)
    n_train = 500 if args.quick else 2000
    # shared=False: per-coordinate networks, the default when the results were measured.
    common = dict(max_iter=max_iter, device=args.device, random_state=0, shared=False)
    models = {
        "local": lambda: LocalizedDiffusionEstimator(locality=(side, side), radius=args.radius,
                                                     **common),
        "global": lambda: BootstrappedScoreEstimator(**common),
        "hybrid": lambda: LocalizedDiffusionEstimator(locality=(side, side), radius=args.radius,
                                                      n_global_components=1, **common),
    }
    rows = []
    for field, loading in (("lattice", 0.0), ("lattice + factor", args.loading)):
        cov = np.linalg.inv(field_precision("lattice", d)) + loading**2 * np.ones((d, d))
        X = np.random.default_rng(0).multivariate_normal(np.zeros(d), cov, size=n_train + 2000)
        X_train, X_test = X[:n_train], X[n_train:]
        truth = gaussian_log_density(X_test, cov).mean()
        for name, make in models.items():
            start = time.perf_counter()
            est = make().fit(X_train)
            fit_s = time.perf_counter() - start
            errors = relative_score_errors(est, cov, TIMES)
            start = time.perf_counter()
            test = est.score_samples(X_test).mean()
            score_s = time.perf_counter() - start
            rows.append(dict(
                field=field, model=name, relative_score_error=float(np.mean(errors)),
                heldout_ll=float(test), gap_per_coord=float((truth - test) / d),
                train_minus_test_per_coord=float((est.score_samples(X_train).mean() - test) / d),
                n_iter=int(est.n_iter_), fit_s=fit_s, score_s=score_s,
            ))
            print(rows[-1], flush=True)
            if args.merge:
                rows = merge_rows(args.out, rows, ("field", "model"))
            write(args.out, dict(d=d, n_train=n_train, radius=args.radius,
                                 loading=args.loading, max_iter=max_iter, rows=rows))
    for field in dict.fromkeys(r["field"] for r in rows):
        cell = [r for r in rows if r["field"] == field]
        for key in ("relative_score_error", "gap_per_coord"):
            best_other = min(r[key] for r in cell if r["model"] != "hybrid")
            hybrid = next(r[key] for r in cell if r["model"] == "hybrid")
            for r in cell:
                r[f"{key}_hybrid_over_best_other"] = hybrid / best_other if r is cell[-1] else ""
    columns = ["field", "model", "relative_score_error", "gap_per_coord",
               "train_minus_test_per_coord", "heldout_ll", "n_iter", "fit_s", "score_s"]
    table = markdown(rows, columns)
    ratios = "\n".join(
        f"- {f}: hybrid / best other, score error "
        f"{next(r for r in rows if r['field'] == f and r['model'] == 'hybrid')['relative_score_error_hybrid_over_best_other']:.3f}, "
        f"log-likelihood gap "
        f"{next(r for r in rows if r['field'] == f and r['model'] == 'hybrid')['gap_per_coord_hybrid_over_best_other']:.3f}"
        for f in dict.fromkeys(r["field"] for r in rows)
    )
    text = (f"# Local, global and hybrid models (`benchmarks/locality.py --hybrid`)\n\n"
            f"12x12 lattice field (precision I + L), and the same plus a common factor of "
            f"loading {args.loading}; {n_train} training and 2000 test rows; radius {args.radius} "
            f"for local and hybrid (hybrid: `n_global_components=1`); max_iter={max_iter}. "
            f"Score errors are relative, averaged over {len(TIMES)} noise levels in [0.01, 2]; "
            f"gaps are the truth's held-out mean log-likelihood minus the model's, per "
            f"coordinate.\n\n{table}\n\n{ratios}\n")
    print("\n" + text)
    (RESULTS / f"{args.out}.md").write_text(text)


if __name__ == "__main__":
    main()
