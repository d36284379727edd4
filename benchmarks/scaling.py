"""Fit time of LocalizedDiffusionEstimator against the dimension, and against n_jobs.

Ring Gaussian field (``_fields.py``), fixed radius, ``n`` rows, a fixed number
of steps per block (no early stopping, so every fit does the same work per
coordinate). For each ``d`` the fit is timed with ``n_jobs=1`` and
``n_jobs=2``, interleaved, ``--repeats`` times; the table gives the medians,
the time per coordinate and the same-run speed-up. A first ``n_jobs=2`` fit
starts joblib's worker processes and is not timed (joblib reuses them).

Run ``OMP_NUM_THREADS=1 python benchmarks/scaling.py`` (``--quick`` for a short
version), so that each job uses one core; the numbers are written to
``benchmarks/results/scaling.{md,json}`` (``--merge``: key d).
"""

import time

import numpy as np
import torch

import _cli
from _fields import field_precision, field_sample
from _report import merge_rows, write
from sklearn_diffusion import LocalizedDiffusionEstimator


def main(argv=None):
    parser = _cli.parser(__doc__, "scaling", quick="d in {64, 128, 256}, 100 steps")
    parser.add_argument("--dims", type=int, nargs="*", default=None)
    parser.add_argument("--radius", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = _cli.parse(parser, argv)
    with _cli.threads(args.threads):
        run(args)


def run(args):
    dims = args.dims or ([64, 128, 256] if args.quick else [64, 128, 256, 512, 1024])
    max_iter = args.max_iter or (100 if args.quick else 300)
    # shared=False: blocks of per-coordinate networks, the jobs n_jobs spreads.
    params = dict(locality="ring", radius=args.radius, shared=False, block_size=32,
                  max_iter=max_iter,
                  early_stopping=False, device="cpu", random_state=0)

    def fit_seconds(X, n_jobs):
        start = time.perf_counter()
        LocalizedDiffusionEstimator(**params, n_jobs=n_jobs).fit(X)
        return time.perf_counter() - start

    X, _ = field_sample(field_precision("ring", dims[0]), 2000, seed=0)
    fit_seconds(X, 2)  # start the worker processes
    rows = []
    for d in dims:
        X, _ = field_sample(field_precision("ring", d), 2000, seed=0)
        times = {1: [], 2: []}
        for _ in range(args.repeats):
            for n_jobs in (1, 2):
                times[n_jobs].append(fit_seconds(X, n_jobs))
        one, two = np.median(times[1]), np.median(times[2])
        rows.append(dict(d=d, n_jobs_1=times[1], n_jobs_2=times[2], median_1=one, median_2=two,
                         speedup=one / two))
        print(d, f"{one:.2f}s", f"{two:.2f}s", f"{one / two:.2f}x", flush=True)

    if args.merge:
        rows = sorted(merge_rows(args.out, rows, ("d",)), key=lambda r: r["d"])
    slope = np.polyfit(np.log([r["d"] for r in rows]), np.log([r["median_1"] for r in rows]), 1)[0]
    lines = [f"Fit time, ring field, radius {args.radius}, n = 2000, {max_iter} steps per block "
             f"of 32 coordinates, median of {args.repeats}; torch threads per process: "
             f"{torch.get_num_threads()}", "",
             "| d | n_jobs=1 (s) | per coordinate (ms) | n_jobs=2 (s) | speed-up |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['d']} | {r['median_1']:.2f} | {1000 * r['median_1'] / r['d']:.1f} | "
                     f"{r['median_2']:.2f} | {r['speedup']:.2f}x |")
    lines += ["", f"log-log slope of time against d (n_jobs=1): {slope:.2f} (1 = linear)"]
    text = "\n".join(lines)
    print("\n" + text)
    write(args.out, dict(params=params, rows=rows, slope=slope,
                         threads=torch.get_num_threads()),
          "# Localized fit time against d and n_jobs (`benchmarks/scaling.py`)\n\n" + text)


if __name__ == "__main__":
    main()
