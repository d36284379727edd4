"""Score error against the radius: localized sub-models vs one global network.

Targets with a closed-form score: Gaussian fields whose precision is banded on
a ring or on a 2-D lattice (``_fields.py``). For each dimension ``d`` and
radius, a :class:`LocalizedDiffusionEstimator` is fitted on ``n`` rows, and a
global :class:`BootstrappedScoreEstimator` with the same steps, batch size and
stopping rule; the error is the relative score error
``E||s_hat - s||^2 / E||s||^2`` against the exact score, on fresh rows, at
noise levels log-spaced over ``[0.01, 2]``, averaged over the levels.

Run ``python benchmarks/locality.py`` (``--quick`` for a short version); the
table is printed and the numbers are written to ``benchmarks/results/locality.json``.
"""

import argparse
import json
import os
import time

import numpy as np

from _fields import field_precision, field_sample, relative_score_errors
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion.localization import coordinate_distances

TIMES = np.logspace(-2, np.log10(2.0), 8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="d in {16, 64}, radius <= 3, fewer steps",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--dims", type=int, nargs="*", default=None)
    parser.add_argument("--radii", type=int, nargs="*", default=None)
    parser.add_argument("--kinds", nargs="*", default=["ring", "lattice"])
    parser.add_argument("--no-global", action="store_true", help="skip the global model")
    parser.add_argument("--output", default="locality.json", help="file name in results/")
    args = parser.parse_args(argv)
    dims = args.dims or ([16, 64] if args.quick else [16, 64, 256, 1024])
    radii = args.radii if args.radii is not None else list(range(4 if args.quick else 6))
    max_iter = args.max_iter or (1000 if args.quick else 4000)
    common = dict(max_iter=max_iter, batch_size=256, device=args.device, random_state=0)

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", args.output)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = []

    def record(row):
        # Written after every fit, so an interrupted run keeps what it measured.
        rows.append(row)
        print(row["target"], row["d"], row["model"], f"{row['error']:.4f}", f"{row['fit_s']:.0f}s",
              flush=True)
        with open(path, "w") as f:
            json.dump(dict(times=TIMES.tolist(), max_iter=max_iter, device=args.device, rows=rows),
                      f, indent=1)

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
                    locality=locality, radius=radius, block_size=d if args.device != "cpu" else 32,
                    **common,
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
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
