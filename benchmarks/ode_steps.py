"""ODE steps against quality: score matching against flow matching (issue 23).

Each objective (``objective="score"`` or ``"flow_matching"``, with the DSM or
the bootstrapped target) is fitted once per target on ``--n`` rows (seed 0,
defaults otherwise); then, for each step count of ``--steps``, the same
fitted model gets ``n_steps`` = that count and is scored on 5,000 test rows
(gap to the true log-density, nats) and sampled (2,000 rows with the ODE
sampler, energy distance to 2,000 test rows on the training rows'
standardized scale, Szekely and Rizzo 2013, eq. 2.1). The last column of
each table is the fewest steps from which on every gap is within 0.02 nats
of the model's own gap at the most steps: the steps a user needs for that
model. (A gap at very few steps can come out *smaller* than the converged
one: the ODE's error is a bias of either sign, not a better model.)

Run ``python benchmarks/ode_steps.py --threads 2`` (about 8 minutes on two
cores); writes ``results/ode_steps.{md,json}``.
"""

import sys
import time

import numpy as np
from scipy.spatial.distance import cdist

from _cli import parser as make_parser, parse, threads
from _density_suite import TARGETS
from _report import machine, markdown, write
from sklearn_diffusion import BootstrappedScoreEstimator

METHODS = {
    "score, dsm": {},
    "score, bootstrap": {"loss": "bootstrap"},
    "flow matching, dsm": {"objective": "flow_matching"},
    "flow matching, bootstrap": {"objective": "flow_matching", "loss": "bootstrap"},
}


def energy(a, b, ref):
    mean, scale = ref.mean(0), ref.std(0)
    a, b = (a - mean) / scale, (b - mean) / scale
    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


def run(args):
    start = time.perf_counter()
    rows = []
    for name in args.targets:
        target = TARGETS[name]()
        X = target.sample(args.n, np.random.default_rng(0))
        test = target.sample(5000, np.random.default_rng(10_000))
        truth = float(target.log_density(test).mean())
        for label, params in METHODS.items():
            t0 = time.perf_counter()
            est = BootstrappedScoreEstimator(random_state=0, **params).fit(X)
            row = {"target": name, "method": label, "fit_s": time.perf_counter() - t0,
                   "steps_kept": int(est.best_iter_)}
            for k in args.steps:
                est.set_params(n_steps=k)
                row[f"gap@{k}"] = truth - float(est.score_samples(test).mean())
                row[f"energy@{k}"] = energy(est.sample(2000, random_state=0), test[:2000], X)
            rows.append(row)
            print(row, flush=True)
    report(rows, args, time.perf_counter() - start)


def steps_needed(row, steps, tol=0.02):
    """The fewest steps from which on every gap is within ``tol`` of the gap at the most steps."""
    final = row[f"gap@{steps[-1]}"]
    needed = steps[-1]
    for k in reversed(steps):
        if abs(row[f"gap@{k}"] - final) > tol:
            break
        needed = k
    return needed


def report(rows, args, wall):
    for row in rows:
        row["steps for gap"] = steps_needed(row, args.steps)
    gaps = ["target", "method", "steps_kept", "fit_s", *[f"gap@{k}" for k in args.steps],
            "steps for gap"]
    energies = ["target", "method", *[f"energy@{k}" for k in args.steps]]
    text = "\n".join([
        "# ODE steps against quality: score matching and flow matching", "",
        f"`python benchmarks/ode_steps.py {' '.join(sys.argv[1:])}`, {wall / 60:.1f} min wall; "
        f"{machine()}. n = {args.n} training rows, seed 0; 5,000 test rows.", "",
        "## Gap to the true log-density (nats) by ODE steps", "",
        "`steps for gap`: the fewest steps within 0.02 nats of the gap at the most steps.", "",
        markdown(rows, gaps), "",
        "## Energy distance of 2,000 ODE samples to 2,000 test rows (standardized)", "",
        markdown(rows, energies), ""])
    write(args.out, {"rows": rows, "wall_s": wall, "argv": sys.argv[1:]}, text)


def main(argv=None):
    p = make_parser(__doc__, "ode_steps", quick="banana6 only, 4 and 16 steps", threads=2,
                    merge=False)
    p.add_argument("--targets", nargs="+", default=["banana6", "gmm16", "funnel10"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    args = parse(p, argv)
    if args.quick:
        args.targets, args.steps = ["banana6"], [4, 16]
    with threads(args.threads):
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
