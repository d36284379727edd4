"""Time bootstrapping against denoising score matching at equal training budget.

Targets with closed-form scores: a well-separated Gaussian mixture in 2 and in
16 dimensions, and a correlated Gaussian in 64 dimensions. For each target,
training size n and seed, both losses train the same network for the same
number of steps (no early stopping). Reported, over seeds:

* the relative score error ``E||s_hat - s||^2 / E||s||^2`` per noise level t,
  on fresh noised test points, in the estimator's standardized coordinates
  (where its score network lives; the exact score there is the target's
  closed form with the affine map applied to its parameters);
* the gap between the exact and the model's held-out mean log-density (nats;
  the exact one is the target smoothed at the model's ``t_min``).

Run: ``python benchmarks/bootstrap_vs_dsm.py --n-jobs 2`` (``--quick``: one
seed, n = 1,000, 500 steps). Writes ``results/<out>.{md,json}``; ``--merge``
keys a run by (target, n, seed, loss).
"""

import time

import numpy as np
import torch
from joblib import Parallel, delayed

import _cli
from _report import markdown, merge_rows, write
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion.networks import score_from_noise
from sklearn_diffusion.schedules import (
    gaussian_mixture_log_density,
    gaussian_mixture_score,
    perturb,
)

TIMES = (0.01, 0.05, 0.1, 0.3, 1.0, 3.0)
TARGETS = ("mixture-2", "mixture-16", "gaussian-64")
D = torch.float64


def target_parameters(name):
    """(weights, means, covs) of the target, a Gaussian being one component."""
    kind, d = name.split("-")
    d = int(d)
    g = np.random.default_rng(1234)
    if kind == "mixture":
        k = 4
        # Modes about 6 component standard deviations apart in every direction.
        means = g.choice([-1.5, 1.5], size=(k, d))
        means[:, 0] = [-4.5, -1.5, 1.5, 4.5]
        covs = np.stack([0.25 * np.eye(d)] * k)
        weights = np.full(k, 1.0 / k)
    else:
        A = g.normal(size=(d, d)) / np.sqrt(d)
        means, covs, weights = np.zeros((1, d)), (A @ A.T + 0.05 * np.eye(d))[None], np.ones(1)
    return weights, means, covs


def draw(params, n, rng):
    weights, means, covs = params
    labels = rng.choice(len(weights), size=n, p=weights)
    chols = np.linalg.cholesky(covs)
    z = rng.normal(size=(n, means.shape[1]))
    return means[labels] + np.einsum("nij,nj->ni", chols[labels], z)


def standardized(params, mean, scale):
    """Parameters of the law of ``(x - mean) / scale``."""
    weights, means, covs = params
    return (torch.as_tensor(weights, dtype=D), torch.as_tensor((means - mean) / scale, dtype=D),
            torch.as_tensor(covs / np.outer(scale, scale), dtype=D))


def run_one(target, n, seed, loss, max_iter, n_test, threads=1):
    torch.set_num_threads(threads)
    params = target_parameters(target)
    rng = np.random.default_rng(seed)
    X, X_test = draw(params, n, rng), draw(params, n_test, rng)
    est = BootstrappedScoreEstimator(loss=loss, max_iter=max_iter, early_stopping=False,
                                     random_state=seed, device="cpu")
    start = time.perf_counter()
    est.fit(X)
    fit_s = time.perf_counter() - start
    std = standardized(params, est.mean_, est.scale_)
    y0 = torch.as_tensor((X_test - est.mean_) / est.scale_, dtype=D)
    g = torch.Generator().manual_seed(seed)
    errors = {}
    for t_val in TIMES:
        t = torch.full((len(y0),), t_val, dtype=D)
        yt = perturb(y0, t, torch.randn(y0.shape, generator=g, dtype=D))
        true = gaussian_mixture_score(yt, t, *std)
        with torch.no_grad():
            pred = score_from_noise(est.model_(yt.float(), t.float()), t.float()).double()
        errors[t_val] = float(((pred - true) ** 2).sum(1).mean() / (true**2).sum(1).mean())
    t_min = torch.full((len(y0),), est.t_min, dtype=D)
    truth = gaussian_mixture_log_density(y0, t_min, *std).mean().item() - np.log(est.scale_).sum()
    return dict(target=target, n=n, seed=seed, loss=loss, fit_s=fit_s, errors=errors,
                gap=truth - est.score(X_test))


def summarize(results):
    rows = []
    keys = sorted({(r["target"], r["n"], r["loss"]) for r in results},
                  key=lambda k: (TARGETS.index(k[0]), k[1], k[2]))
    for target, n, loss in keys:
        group = [r for r in results if (r["target"], r["n"], r["loss"]) == (target, n, loss)]
        row = dict(target=target, n=n, loss=loss, seeds=len(group))
        for t in TIMES:
            e = np.array([r["errors"][t] for r in group])
            row[f"t={t}"] = f"{e.mean():.4f} ± {e.std():.4f}"
        gaps = np.array([r["gap"] for r in group])
        row["gap (nats)"] = f"{gaps.mean():.3f} ± {gaps.std():.3f}"
        row["fit s"] = f"{np.median([r['fit_s'] for r in group]):.1f}"
        rows.append(row)
    return rows


def main(argv=None):
    parser = _cli.parser(__doc__, "bootstrap_vs_dsm", quick="1 seed, n=1000, 500 steps",
                         threads=1, n_jobs=1)
    parser.add_argument("--max-iter", type=int, default=3000)
    args = _cli.parse(parser, argv)
    seeds = (0,) if args.quick else (0, 1, 2, 3, 4)
    sizes = (1000,) if args.quick else (1000, 10_000)
    max_iter = 500 if args.quick else args.max_iter
    jobs = [(tg, n, s, loss) for tg in TARGETS for n in sizes for s in seeds
            for loss in ("dsm", "bootstrap")]
    results = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(run_one)(*job, max_iter=max_iter, n_test=2000, threads=args.threads)
        for job in jobs
    )
    if args.merge:
        results = merge_rows(args.out, results, ("target", "n", "seed", "loss"), field="runs")
        for r in results:  # JSON keys are strings
            r["errors"] = {float(t): e for t, e in r["errors"].items()}
    rows = summarize(results)
    columns = ["target", "n", "loss", "seeds", *[f"t={t}" for t in TIMES], "gap (nats)", "fit s"]
    title = (f"relative score error per noise level (mean ± sd over seeds), {max_iter} steps of "
             "batch 256")
    table = markdown(rows, columns)
    print(f"\n{title}")
    print(table)
    write(args.out, dict(max_iter=max_iter, times=TIMES, rows=rows, runs=results),
          "# Bootstrapping against denoising score matching (`benchmarks/bootstrap_vs_dsm.py"
          f"{' --quick' * args.quick}`)\n\nThe {title}; gap: exact minus model held-out mean "
          "log-density (nats); fit s: median fit seconds.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
