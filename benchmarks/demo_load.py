"""The README demo's fit on a quiet machine and beside two busy processes, per thread policy.

Issue 28's target: with two other busy single-threaded processes on the 2
cores, the demo's fit stays within 3x of its quiet time. Each case runs the
demo's fit (``BootstrappedScoreEstimator(random_state=0)`` on 15 principal
components of digits) in a fresh process under a thread policy of
:func:`sklearn_diffusion.set_config`: ``"auto"`` (the default) and
``"torch"`` (torch's own number of threads, the behaviour before the policy).
A case that runs past ``--timeout`` seconds is reported as at least that.

Run ``python benchmarks/demo_load.py``; the table is printed and written to
``benchmarks/results/demo_load.{md,json}``. ``--quick``: 300 steps.
"""

import os
import subprocess
import sys
import time

import _cli
from _report import markdown, write

FIT = """
import time, numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
import sklearn_diffusion
from sklearn_diffusion import BootstrappedScoreEstimator
sklearn_diffusion.set_config(n_threads={policy!r})
X, _ = load_digits(return_X_y=True)
X_train, _ = train_test_split(X, test_size=0.25, random_state=0)
Z = PCA(n_components=15, random_state=0).fit(X_train).transform(X_train)
start = time.perf_counter()
model = BootstrappedScoreEstimator(max_iter={max_iter}, random_state=0).fit(Z)
print(time.perf_counter() - start, model.n_iter_)
"""


def fit_seconds(policy, max_iter, timeout):
    code = FIT.format(policy=policy, max_iter=max_iter)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout.split()
        return float(out[0]), int(out[1]), False
    except subprocess.TimeoutExpired:
        return float(timeout), None, True


def main(argv=None):
    parser = _cli.parser(__doc__, "demo_load", quick="300 steps")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = _cli.parse(parser, argv)
    max_iter = 300 if args.quick else 4000
    rows = []
    for load in ("quiet", "2 busy processes"):
        busy = []
        if load != "quiet":
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            time.sleep(2)
        try:
            for policy in ("auto", "torch"):
                seconds, steps, cut = fit_seconds(policy, max_iter, args.timeout)
                rows.append({"load": load, "policy": policy, "fit_s": seconds, "steps": steps,
                             "timed_out": cut, "loadavg": os.getloadavg()[0]})
                print(markdown([rows[-1]], list(rows[-1])).splitlines()[-1], flush=True)
        finally:
            for process in busy:
                process.kill()
    quiet = {r["policy"]: r["fit_s"] for r in rows if r["load"] == "quiet"}
    for row in rows:
        row["vs_quiet_same_policy"] = row["fit_s"] / quiet[row["policy"]]
    table = markdown(rows, list(rows[0]))
    print("\n" + table)
    setup = (f"demo fit, max_iter={max_iter}, one run per case in a fresh process, "
             f"{os.cpu_count()} cores")
    write(args.out, {"setup": setup, "rows": rows},
          "# The demo's fit beside busy processes (`benchmarks/demo_load.py`)\n\n"
          f"{setup}. `vs_quiet_same_policy`: seconds over the quiet seconds of the same "
          "policy (target: at most 3 for the default `auto`).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
