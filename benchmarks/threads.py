"""Torch threads 1, 2 and the "auto" policy, on the shared machine and beside two busy processes.

The evidence for the ``"auto"`` rule of :mod:`sklearn_diffusion._threads`.
Every case runs in three columns, interleaved (1, 2, auto, 1, 2, auto, ...)
so that all three see the same drift of the machine:

- ``1`` and ``2``: the package as it was before the policy, with torch's
  number set: ``torch.set_num_threads(k)`` in this process and, for the loky
  workers of (c) and (d), ``joblib.parallel_config(inner_max_num_threads=k)``,
  which sets ``OMP_NUM_THREADS=k`` (and the BLAS variables) in the workers;
  the estimators' methods run under ``config_context(n_threads="torch")``
  (subclasses below), so the policy leaves those numbers alone; NumPy's and
  SciPy's BLAS keep their default (2) in this process;
- ``auto``: the policy, ``torch_threads(work=...)`` around the public
  methods with the size hints ``fit_work`` and ``score_work`` below (the
  package's own ``torch_threads()``, where wired, nests inside and keeps
  this choice), with torch's default number (2) on entry and joblib's
  default worker threads (``cpu_count() // n_jobs``, 1 here); ``auto
  chose`` is the number it set in this process (several values when calls
  differed).

Before every timed call on loky workers, the workers are started and run
tiny fits of both estimators (imports and torch's first calls cost seconds
in a fresh worker), and the main process does the same once at the start.

Cases:

- ``step sweep``: 20 training steps (forward, backward, Adam) of a bare
  ``ScoreMLP`` on 15 columns, over widths and batch sizes;
- (a) a 300-step fit of the README demo's ``BootstrappedScoreEstimator``
  (default settings, ``random_state=0``) on 15 principal components of
  scikit-learn's digits (1,347 training rows);
- (b) ``score_samples`` of 1,000 held-out rows of that model;
- (c) ``GridSearchCV`` over 4 small models (widths (32, 32) or (64, 64),
  learning rates 1e-3 or 3e-3, 60 steps, no early stopping, ``smoothing=0.01``)
  on 600 of the digits rows, 2 folds, ``refit=False``, with ``n_jobs=1`` and
  ``n_jobs=2``;
- (d) a ``LocalizedDiffusionEstimator`` fit with ``n_jobs=2`` (4 blocks of a
  16-column random walk, 600 rows, 100 steps, no early stopping,
  ``smoothing=0.01``);
- (e) the reference mixture alone (scikit-learn's ``GaussianMixture`` by BIC,
  inside every fit), NumPy/SciPy BLAS threads 1 and 2 (``threadpoolctl``),
  torch untouched; ``auto`` is ``torch_threads()``, which sets the BLAS
  pools to the number it chooses when that is 1 or differs from torch's.

Ratios are seconds with 2 threads (or auto) over seconds with 1 thread: above
1, one thread is faster. "Loaded" runs start two busy single-threaded
processes (``python -c "while True: pass"``) and kill them afterwards. The
machine is shared with other work, so "shared" is not idle: the load average
and the busy cores that ``auto`` saw are recorded per case. A case repeats up
to ``--repeats`` rounds while it has spent less than ``--case-budget``
seconds, so slow cases may have fewer repeats (the ``repeats`` column).

Run ``python benchmarks/threads.py [--repeats 3] [--case-budget 30] [--quick]``;
the table is printed and written to ``benchmarks/results/threads.{md,json}``.
It took 8 to 14 minutes on 2 shared cores, most of it in the 2-thread
column under load.
"""

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from _report import RESULTS, markdown, write
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion._threads import (
    _busy_cores,
    config_context,
    effective_n_threads,
    layer_work,
    torch_threads,
)
from sklearn_diffusion.networks import ScoreMLP
from sklearn_diffusion.reference import fit_reference_mixture

COLUMNS_RUN = (1, 2, "auto")
CHOSEN = []  # what "auto" chose in this process, appended by the wrapped methods


def _policy(method, work=None):
    """``method`` under ``torch_threads(work=...)``, recording its choice.

    When the package's own methods carry ``torch_threads()`` too, theirs is
    a nested "auto" block and keeps this choice.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        hint = None if work is None else work(self, *args, **kwargs)
        with torch_threads(work=hint):
            CHOSEN.append(torch.get_num_threads())
            return method(self, *args, **kwargs)

    return wrapper


def _widths(model, X):
    d = np.shape(X)[1]
    return (d, *model.hidden_layer_sizes, d)


def fit_work(model, X, y=None):
    """The size hint of ``fit``: one training batch through the widest layer."""
    return layer_work(min(model.batch_size, len(X)), _widths(model, X))


def score_work(model, X):
    """The size hint of ``score_samples``: the rows times the trace's stacked probes.

    The exact trace (``divergence="auto"`` up to 64 columns) stacks ``d``
    copies of the rows, Hutchinson's ``n_probes``.
    """
    d = np.shape(X)[1]
    probes = d if d <= 64 else model.n_probes
    return layer_work(len(X) * probes, _widths(model, X))


def _no_policy(method):
    """``method`` under ``n_threads="torch"``: the package as it was before the policy."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with config_context(n_threads="torch"):
            return method(self, *args, **kwargs)

    return wrapper


# The "auto" column: the policy, whether or not the package's methods carry it
# yet. The 1 and 2 columns: torch's number as set, in this process and (the
# config is set inside the methods, and carried to the localized estimator's
# jobs) in the workers.
class PolicyBootstrapped(BootstrappedScoreEstimator):
    fit = _policy(BootstrappedScoreEstimator.fit, fit_work)
    score_samples = _policy(BootstrappedScoreEstimator.score_samples, score_work)


class NoPolicyBootstrapped(BootstrappedScoreEstimator):
    fit = _no_policy(BootstrappedScoreEstimator.fit)
    score = _no_policy(BootstrappedScoreEstimator.score)
    score_samples = _no_policy(BootstrappedScoreEstimator.score_samples)


class PolicyLocalized(LocalizedDiffusionEstimator):
    fit = _policy(LocalizedDiffusionEstimator.fit)


class NoPolicyLocalized(LocalizedDiffusionEstimator):
    fit = _no_policy(LocalizedDiffusionEstimator.fit)


def digits():
    """The demo's split: 15 principal components of digits, 1,347 / 450 rows."""
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    pca = PCA(n_components=15, random_state=0).fit(X_train)
    return pca.transform(X_train), pca.transform(X_test)


def _uptime():
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def warm_up():
    """Tiny fits of both estimators, in this process or a fresh worker.

    One-time costs (lazy imports such as torch's compiler stubs, first
    kernels) would otherwise land in whichever timed column runs first.
    """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    tiny = {"max_iter": 5, "early_stopping": False, "smoothing": 0.01, "random_state": 0}
    BootstrappedScoreEstimator(**tiny).fit(X).score_samples(X[:10])
    LocalizedDiffusionEstimator(radius=1, **tiny).fit(X).score_samples(X[:10])
    sweep_steps(32, 64, steps=2)


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


def start_load(n=2):
    """``n`` busy single-threaded processes; the caller kills them."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(1.0)  # let them reach the run queue
    return procs


def stop_load(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def _worker_threads(_):
    # What the timed jobs import and run first (module imports, torch's first
    # operations), so that a fresh worker pays for them here.
    import torch

    warm_up()
    time.sleep(0.2)  # hold this worker, so that every worker gets a job
    return os.getpid(), torch.get_num_threads()


def inner_threads(column):
    """``parallel_config`` arguments of a column: "auto" takes joblib's default."""
    return {} if column == "auto" else {"inner_max_num_threads": column}


def warm_workers(column, n_jobs=2):
    """Start (or reuse) the loky workers of ``column`` and return their torch threads.

    The executor is rebuilt when ``inner_max_num_threads`` changes, and a
    worker may still be starting while the first one has taken every job;
    this waits until ``n_jobs`` workers have answered, each after a warm-up
    fit, so their start-up (imports, first torch calls) is not timed.
    """
    with parallel_config(backend="loky", **inner_threads(column)):
        for _ in range(20):
            out = Parallel(n_jobs=n_jobs)(delayed(_worker_threads)(i) for i in range(2 * n_jobs))
            if len({pid for pid, _ in out}) >= n_jobs:
                break
    return sorted({threads for _, threads in out})


def sweep_steps(width, batch, steps=20):
    """``steps`` training steps of a ScoreMLP with 3 hidden layers of ``width``."""
    g = torch.Generator().manual_seed(0)
    net = ScoreMLP(15, (width,) * 3, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 15, generator=g)
    t = torch.rand(batch, generator=g) + 0.01
    z = torch.randn(batch, 15, generator=g)

    def step():
        loss = ((net(x + z, t) - z) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    for _ in range(steps):
        step()


def side_by_side(run, args, default_threads, setup=None):
    """Seconds of ``run(column)`` per column, interleaved, with an adaptive number of rounds.

    ``setup(column)``, untimed, runs before each timed call.
    """
    times = {c: [] for c in COLUMNS_RUN}
    busy, start = [], time.perf_counter()
    for _ in range(args.repeats):
        for column in COLUMNS_RUN:
            # "auto" starts from torch's default, as a user's process does.
            torch.set_num_threads(default_threads if column == "auto" else column)
            if setup is not None:
                setup(column)
            busy.append(_busy_cores())
            t0 = time.perf_counter()
            run(column)
            times[column].append(time.perf_counter() - t0)
        if time.perf_counter() - start > args.case_budget:
            break
    torch.set_num_threads(default_threads)
    return times, busy


def row(case, condition, times, busy, chosen):
    med = {c: statistics.median(v) for c, v in times.items()}
    return {
        "case": case, "load": condition, "1 thread s": med[1], "2 threads s": med[2],
        "auto s": med["auto"], "auto chose": chosen, "2/1": med[2] / med[1],
        "auto/1": med["auto"] / med[1], "repeats": len(times[1]),
        "busy cores seen": sorted({b for b in busy if b is not None}),
        "times": {str(c): [round(x, 3) for x in v] for c, v in times.items()},
        "load_average": load_average(),
    }


COLUMNS = ["case", "load", "1 thread s", "2 threads s", "auto s", "auto chose", "2/1", "auto/1",
           "repeats"]


def chosen_label():
    label = "/".join(str(c) for c in sorted(set(CHOSEN))) or "-"
    CHOSEN.clear()
    return label


def run_phase(condition, args, data, default_threads):
    Z, Z_test = data
    rows = []
    fit_steps = 40 if args.quick else 300
    small_steps = 20 if args.quick else 60
    # Small models: no early stopping and a fixed smoothing skip the held-out
    # log-densities (14 smoothing candidates) that would dominate their fits.
    small = {"max_iter": small_steps, "early_stopping": False, "smoothing": 0.01,
             "random_state": 0}

    def record(case, times, busy, chosen):
        rows.append(row(case, condition, times, busy, chosen))
        print(markdown(rows[-1:], COLUMNS).splitlines()[-1], flush=True)

    print(markdown([], COLUMNS), flush=True)
    sweep = [(32, 256), (128, 256), (128, 1024), (512, 256)]
    if args.quick:
        sweep = sweep[:2]
    for k in (1, 2):  # first torch calls (allocator, kernels) outside the timings
        torch.set_num_threads(k)
        sweep_steps(32, 64, steps=2)
    for width, batch in sweep:
        def run(column, width=width, batch=batch):
            if column == "auto":
                with torch_threads():
                    CHOSEN.append(torch.get_num_threads())
                    sweep_steps(width, batch)
            else:
                sweep_steps(width, batch)

        times, busy = side_by_side(run, args, default_threads)
        record(f"20 steps, width {width}, batch {batch}", times, busy, chosen_label())

    # (a) and (b): the demo's estimator.
    models = {}

    # --quick (a smoke test of the script) takes the small models' settings.
    demo = {"max_iter": fit_steps, "random_state": 0}
    if args.quick:
        demo = {**small, "max_iter": fit_steps}

    def fit(column):
        cls = PolicyBootstrapped if column == "auto" else NoPolicyBootstrapped
        models[column] = cls(**demo).fit(Z)

    times, busy = side_by_side(fit, args, default_threads)
    record(f"(a) demo fit, {fit_steps} steps", times, busy, chosen_label())
    rows_1000 = np.concatenate([Z_test, Z_test, Z_test])[:1000]
    times, busy = side_by_side(lambda column: models[column].score_samples(rows_1000), args,
                               default_threads)
    record("(b) score_samples, 1,000 rows", times, busy, chosen_label())

    # (c) GridSearchCV over 4 small models, n_jobs 1 and 2.
    grid = {"hidden_layer_sizes": [(32, 32), (64, 64)], "learning_rate": [1e-3, 3e-3]}
    for n_jobs in (1, 2):
        seen = {}

        def search(column, n_jobs=n_jobs):
            cls = PolicyBootstrapped if column == "auto" else NoPolicyBootstrapped
            with parallel_config(backend="loky", **inner_threads(column)):
                GridSearchCV(cls(**small), grid, cv=2, n_jobs=n_jobs, refit=False).fit(Z[:600])

        def setup(column, n_jobs=n_jobs, seen=seen):
            if n_jobs > 1:
                seen[column] = warm_workers(column, n_jobs)

        times, busy = side_by_side(search, args, default_threads, setup)
        chosen = chosen_label()
        if n_jobs > 1:
            chosen = f"1 per worker (workers start with {seen.get('auto')})"
        record(f"(c) GridSearchCV 4 models x 2 folds, n_jobs={n_jobs}", times, busy, chosen)
        rows[-1]["worker torch threads at start"] = {str(k): v for k, v in seen.items()}

    # (d) LocalizedDiffusionEstimator, n_jobs=2, 4 blocks.
    walk = np.cumsum(np.random.default_rng(0).normal(size=(600, 16)), axis=1)
    seen = {}

    def localized(column):
        cls = PolicyLocalized if column == "auto" else NoPolicyLocalized
        with parallel_config(backend="loky", **inner_threads(column)):
            cls(radius=1, block_size=4, n_jobs=2,
                **{**small, "max_iter": small_steps + 40}).fit(walk)

    def setup(column):
        seen[column] = warm_workers(column)

    times, busy = side_by_side(localized, args, default_threads, setup)
    record("(d) LocalizedDiffusionEstimator fit, n_jobs=2", times, busy,
           f"{chosen_label()} (workers: joblib's {seen.get('auto')})")
    rows[-1]["worker torch threads at start"] = {str(k): v for k, v in seen.items()}

    # (e) the reference mixture: BLAS threads, torch untouched.
    Zs = (Z - Z.mean(0)) / Z.std(0)

    def mixture(column):
        if column == "auto":
            with torch_threads():
                CHOSEN.append(torch.get_num_threads())
                fit_reference_mixture(Zs, random_state=0)
        else:
            with threadpool_limits(limits=column, user_api="blas"):
                fit_reference_mixture(Zs, random_state=0)

    times, busy = side_by_side(mixture, args, default_threads)
    record("(e) reference mixture (GaussianMixture BIC), BLAS threads", times, busy,
           chosen_label())
    return rows


def _terminate(signum, frame):
    # SIGTERM: leave through the finally blocks, which kill the busy processes.
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case-budget", type=float, default=30.0,
                        help="no new round of a case after this many seconds in it")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: short small fits, two sweep points")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    default_threads = torch.get_num_threads()
    uptime = _uptime()
    print(f"uptime before: {uptime}")
    print(f"cores: {os.cpu_count()}, torch {torch.__version__}, default torch threads "
          f"{default_threads}, auto now: {effective_n_threads('auto')}")
    data = digits()
    warm_up()
    start = time.perf_counter()
    rows, notes = [], {"uptime_before": uptime}
    try:
        for condition in ("shared", "2 busy processes"):
            procs = start_load() if condition != "shared" else []
            try:
                notes[condition] = {"load_before": load_average()}
                print(f"\n## {condition} (load average {load_average()})", flush=True)
                rows += run_phase(condition, args, data, default_threads)
                notes[condition]["load_after"] = load_average()
            finally:
                stop_load(procs)
    finally:
        torch.set_num_threads(default_threads)
    notes["uptime_after"] = _uptime()
    notes["seconds"] = round(time.perf_counter() - start, 1)

    table = markdown(rows, COLUMNS)
    by = {(r["load"], r["case"]): r for r in rows}
    speedups = []
    for condition in ("shared", "2 busy processes"):
        one = by[(condition, "(c) GridSearchCV 4 models x 2 folds, n_jobs=1")]
        two = by[(condition, "(c) GridSearchCV 4 models x 2 folds, n_jobs=2")]
        speedups.append({
            "load": condition,
            "n_jobs=1 / n_jobs=2, 1 thread": one["1 thread s"] / two["1 thread s"],
            "n_jobs=1 / n_jobs=2, 2 threads": one["2 threads s"] / two["2 threads s"],
            "n_jobs=1 / n_jobs=2, auto": one["auto s"] / two["auto s"],
        })
    slowdowns = [{"case": r["case"],
                  **{f"loaded / shared, {c}": r[f"{c} s"] / by[("shared", r["case"])][f"{c} s"]
                     for c in ("1 thread", "2 threads", "auto")}}
                 for r in rows if r["load"] != "shared"]
    print("\n" + table)
    print("\nGridSearchCV speed-up of n_jobs=2 (n_jobs=1 seconds / n_jobs=2 seconds)")
    print(markdown(speedups, list(speedups[0])))
    print("\nslow-down beside two busy processes (loaded / shared)")
    print(markdown(slowdowns, list(slowdowns[0])))
    print(f"\nnotes: {notes}")

    write("threads", {"args": vars(args), "rows": rows, "grid_speedups": speedups,
                      "slowdowns": slowdowns, "notes": notes})
    md = RESULTS / "threads.md"
    md.write_text(
        "# Torch threads 1, 2 and auto, on the shared machine and beside two busy processes\n\n"
        f"`python benchmarks/threads.py {' '.join(sys.argv[1:] if argv is None else argv)}`, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, default torch threads "
        f"{default_threads}; up to {args.repeats} interleaved rounds per case (fewer past "
        f"{args.case_budget:.0f} s, see `repeats`), medians; `2/1` and `auto/1` are seconds "
        "over the 1-thread seconds (above 1: one thread is faster). \"shared\" is the machine "
        "as other engineers' jobs left it, not idle; \"2 busy processes\" adds two "
        "`while True: pass` processes.\n\n"
        f"- uptime before: `{notes['uptime_before']}`\n- uptime after: `{notes['uptime_after']}`\n"
        f"- load averages (1, 5, 15 min) per phase: shared {notes['shared']}, "
        f"loaded {notes['2 busy processes']}\n- total {notes['seconds']} s\n\n"
        + table + "\n\n## GridSearchCV speed-up of n_jobs=2 (n_jobs=1 s / n_jobs=2 s)\n\n"
        + markdown(speedups, list(speedups[0]))
        + "\n\n## Slow-down beside two busy processes (loaded s / shared s)\n\n"
        + markdown(slowdowns, list(slowdowns[0])) + "\n"
    )
    print(f"table written to {md}")


if __name__ == "__main__":
    main()
