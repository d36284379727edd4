"""Peak memory of the detector's scoring against the number of rows scored.

``DiffusionOutlierDetector`` with the hybrid score and 2,000 reference rows
(16 features, the detector's default estimator before issue 25,
``_peers.HYBRID_TUNED_PARAMS``, with fewer training steps:
memory at scoring time does not depend on them) scores n rows; the peak
resident memory above the level just before ``score_samples`` is sampled
every 2 ms by a thread reading ``/proc/self/statm``. Each n runs in a fresh
process. Bounded scoring means the peak does not grow with n (the input
itself, n x 16 float64, is allocated before the baseline).

Run: ``python benchmarks/memory.py [--sizes 20000 200000]`` (Linux only;
``--quick``: 20,000 rows only). Writes ``results/memory.{md,json}``;
``--merge`` keys a row by n.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import _cli
from _report import markdown, merge_rows, write

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def child(n, threads):
    import numpy as np
    import torch

    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector
    from _peers import HYBRID_TUNED_PARAMS  # the settings memory.md was measured with

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    params = {**dict(HYBRID_TUNED_PARAMS), "max_iter": 50, "random_state": 0}
    detector = DiffusionOutlierDetector(BootstrappedScoreEstimator(**params), random_state=0)
    detector.fit(rng.normal(size=(2000, 16)))
    X = rng.normal(size=(n, 16))
    detector.score_samples(X[:100])  # warm-up: lazily built kernels and caches
    base, peak, done = rss(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    scores = detector.score_samples(X)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    peak[0] = max(peak[0], rss())
    print(json.dumps({"n": n, "input_mb": X.nbytes / 2**20, "peak_above_mb": (peak[0] - base) / 2**20,
                      "seconds": seconds, "finite": bool(np.isfinite(scores).all())}))


def main(argv=None):
    parser = _cli.parser(__doc__, "memory", quick="20,000 rows only", threads=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="rows scored, one process each (default 20000 200000)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = _cli.parse(parser, argv)
    if args.child:
        return child(args.child, args.threads)
    rows = []
    for n in args.sizes or ([20_000] if args.quick else [20_000, 200_000]):
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--threads",
                              str(args.threads)], check=True, capture_output=True,
                             text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    if args.merge:
        rows = sorted(merge_rows(args.out, rows, ("n",)), key=lambda r: r["n"])
    table = markdown(rows, ["n", "input_mb", "peak_above_mb", "seconds", "finite"])
    print("\n" + table)
    write(args.out, {"rows": rows},
          "# Peak memory of DiffusionOutlierDetector.score_samples (hybrid, 2,000 reference "
          "rows, 16 features)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
