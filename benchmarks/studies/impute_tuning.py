# Record: benchmarks/results/studies/impute_tuning.md.
# Ran at c3befcd. Not maintained.
"""Study: tuning the conditional sampler (issue 11 follow-up).

Part 1 (``gaussian``): exact score of a 2-D Gaussian (unit variances,
correlation rho), condition on x_1 = 1.5; mean and variance of 20,000 draws
of :func:`sklearn_diffusion.sampling.conditional_sde` against the closed form
(1.5 rho, 1 - rho^2), for the step noise ``eta`` (0: the bridge/posterior
variance of the ancestral step, 1: the forward step's variance), steps,
guidance and its cut-off. Part 2 (``interval``): coverage of the benchmark's
90% interval rule from 20 exact posterior draws.

Run ``OMP_NUM_THREADS=1 python benchmarks/studies/impute_tuning.py``.
"""
import sys

import numpy as np
import torch

from sklearn_diffusion.sampling import conditional_sde

torch.set_num_threads(1)


def gaussian_score(C):
    def score(x, t):
        a = torch.exp(-t)[:, None, None]
        cov = a**2 * C + (1 - a**2) * torch.eye(2)
        return -torch.linalg.solve(cov, x[..., None])[..., 0]
    return score


def gaussian(configs, n=20000):
    x0 = torch.zeros(n, 2)
    x0[:, 0] = 1.5
    observed = torch.zeros(n, 2, dtype=torch.bool)
    observed[:, 0] = True
    print("| rho | n_steps | n_resample | guidance | guidance_t_max | eta | mean (truth) "
          "| variance (truth) | var ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rho in (0.8, 0.95):
        score = gaussian_score(torch.tensor([[1.0, rho], [rho, 1.0]]))
        for config in configs:
            n_steps, guidance, gmax, eta, n_resample = (*config, 1)[:5]
            g = torch.Generator().manual_seed(0)
            x = conditional_sde(score, x0, observed, t_min=1e-3, t_max=10.0, n_steps=n_steps,
                                n_resample=n_resample, guidance=guidance,
                                guidance_t_max=gmax, eta=eta, generator=g)
            v = x[:, 1].var().item()
            print(f"| {rho} | {n_steps} | {n_resample} | {guidance} | {gmax} | {eta} | {x[:, 1].mean():.3f} "
                  f"({1.5 * rho:.3f}) | {v:.3f} ({1 - rho**2:.3f}) | {v / (1 - rho**2):.2f} |",
                  flush=True)


def interval(n_draws=20, n=200000):
    rng = np.random.default_rng(0)
    draws, truth = rng.normal(size=(n, n_draws)), rng.normal(size=n)
    low, high = np.quantile(draws, [0.05, 0.95], axis=1)
    s = np.sort(draws, axis=1)
    print(f"exact posterior, {n_draws} draws: np.quantile 5%-95% covers "
          f"{((low <= truth) & (truth <= high)).mean():.3f}; [min, max] covers "
          f"{((s[:, 0] <= truth) & (truth <= s[:, -1])).mean():.3f} "
          f"(theory (n-1)/(n+1) = {(n_draws - 1) / (n_draws + 1):.3f})")


# ------------------------------------------------- part 3: benchmark cases
def bench(case_ids, fits, samplers):
    """Fit once per (case, fit setting); draw 20 samples per row per sampler setting.

    Cases are those of ``benchmarks/impute.py`` (same index, hence same
    split and mask). Prints RMSE of the mean of the 20 draws, the coverage of
    the benchmark's rule (np.quantile 5%-95%) and of [min, max].
    """
    import functools
    import time
    import warnings
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import impute as B
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    import sklearn_diffusion._base as base
    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionImputer

    original = base.conditional_sde
    cases = []
    for name, X in B.datasets(False).items():
        small = name in B.FULL_PATTERN_SETS
        patterns = ("mcar10", "mcar30", "mcar50", "dropout") if small else ("mcar30", "dropout")
        cases += [(name, X, p) for p in patterns]
    print("| case | fit | sampler | RMSE | kNN | iter-ET | cov90 quantile rule | cov90 [min,max] | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for index in case_ids:
        name, X, pattern = cases[index]
        rng = np.random.default_rng(index)
        order = rng.permutation(len(X))
        n_train = min(1000, int(0.6 * len(X)))
        X_train, X_test = X[order[:n_train]], X[order[n_train:n_train + 250]]
        keep = X_train.std(axis=0) > 0
        X_train, X_test = X_train[:, keep], X_test[:, keep]
        train_mask, test_mask = B.make_masks(pattern, X_train.shape, X_test.shape, rng)
        scaler = StandardScaler().fit(np.where(train_mask, np.nan, X_train))
        Z_train = scaler.transform(np.where(train_mask, np.nan, X_train))
        Z_true = scaler.transform(X_test)
        Z_test = np.where(test_mask, np.nan, Z_true)
        truth = Z_true[test_mask]
        peer = {}
        for m in ("kNN", "iterative-ET"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = B.peers()[m]().fit(Z_train).transform(Z_test)
            peer[m] = np.sqrt(np.mean((f[test_mask] - truth) ** 2))
        for fit_name, settings in fits:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                est = BootstrappedScoreEstimator(**settings)
                imp = DiffusionImputer(est, random_state=0).fit(Z_train)
            fit_s = time.perf_counter() - start
            for s_name, kw in samplers:
                kw = dict(kw)
                sde_kw = {k: kw.pop(k) for k in ("eta", "guidance_t_max") if k in kw}
                base.conditional_sde = functools.partial(original, **sde_kw)
                start = time.perf_counter()
                try:
                    draws = imp.estimator_.sample_conditional(Z_test, n_samples=20,
                                                              random_state=0, **kw)
                finally:
                    base.conditional_sde = original
                sec = fit_s + time.perf_counter() - start
                rmse = np.sqrt(np.mean((draws.mean(0)[test_mask] - truth) ** 2))
                low, high = np.quantile(draws, [0.05, 0.95], axis=0)
                c1 = ((low[test_mask] <= truth) & (truth <= high[test_mask])).mean()
                lo2, hi2 = draws.min(0), draws.max(0)
                c2 = ((lo2[test_mask] <= truth) & (truth <= hi2[test_mask])).mean()
                print(f"| {name} {pattern} | {fit_name} | {s_name} | {rmse:.4f} | "
                      f"{peer['kNN']:.4f} | {peer['iterative-ET']:.4f} | {c1:.3f} | {c2:.3f} | "
                      f"{sec:.1f} |", flush=True)


def learned():
    """The 2-D Gaussian model of ``tests/test_imputer.py`` (600 rows, 20% MCAR): 400 draws."""
    import functools
    import warnings

    import sklearn_diffusion._base as base
    from sklearn_diffusion import BootstrappedScoreEstimator

    original = base.conditional_sde
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.8], [0.8, 1.0]], size=600)
    X[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    query = np.column_stack([[-1.5, 0.0, 1.5], np.full(3, np.nan)])
    for max_iter in (600, 1500):
        est = BootstrappedScoreEstimator(hidden_layer_sizes=(32, 32), max_iter=max_iter,
                                         n_networks=1, random_state=0, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        for n_resample in (1, 2):
            for eta in (0.0, 0.5):
                base.conditional_sde = functools.partial(original, eta=eta)
                try:
                    d = est.sample_conditional(query, n_samples=400, n_resample=n_resample,
                                               random_state=0)[:, :, 1]
                finally:
                    base.conditional_sde = original
                print(f"| {max_iter} it | {n_resample} | {eta} | {np.round(d.mean(0), 3).tolist()} "
                      f"| {np.round(d.var(0), 3).tolist()} |", flush=True)


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part in ("interval", "all"):
        interval()
    if part in ("gaussian", "all"):
        gaussian([(16, 1.0, 2.0, 0.0), (32, 1.0, 2.0, 0.0), (64, 1.0, 2.0, 0.0),
                  (32, 1.0, 2.0, 0.25), (32, 1.0, 2.0, 0.5), (32, 1.0, 2.0, 1.0),
                  (16, 1.0, 2.0, 1.0), (64, 1.0, 2.0, 1.0), (32, 0.5, 2.0, 0.0),
                  (32, 1.25, 2.0, 0.0), (32, 1.5, 2.0, 0.0), (32, 1.0, 1.0, 0.0),
                  (32, 1.0, 10.0, 0.0), (32, 1.25, 2.0, 0.25), (32, 1.25, 2.0, 0.5),
                  (64, 1.25, 2.0, 0.0), (64, 1.25, 2.0, 0.25), (32, 1.15, 2.0, 0.25),
                  (32, 1.0, 2.0, 0.0, 2), (32, 1.0, 2.0, 0.0, 3), (32, 1.0, 2.0, 0.0, 4),
                  (32, 1.0, 2.0, 0.5, 2), (32, 1.0, 2.0, 0.5, 3), (32, 1.25, 2.0, 0.0, 2),
                  (32, 1.25, 2.0, 0.5, 2), (32, 1.25, 2.0, 0.0, 3),
                  (16, 1.0, 2.0, 0.5), (16, 1.0, 2.0, 0.5, 2), (64, 1.0, 2.0, 0.5, 2)])
    if part in ("learned", "all"):
        learned()
    if part in ("bench", "all"):
        bench([1, 7, 9, 11],
              [("1 net, 1500 it (default)", dict(n_networks=1, max_iter=1500)),
               ("1 net, 3000 it", dict(n_networks=1, max_iter=3000))],
              [("32 steps (default)", {}), ("eta 0.5", dict(eta=0.5)),
               ("64 steps", dict(n_steps=64)), ("guidance 1.25", dict(guidance=1.25)),
               ("n_resample 2", dict(n_resample=2))])
    if part == "bench2":
        bench([1, 7, 9, 11, 13, 14, 16],
              [("1 net, 1500 it (default)", dict(n_networks=1, max_iter=1500)),
               ("1 net, 3000 it", dict(n_networks=1, max_iter=3000)),
               ("2 nets, 1500 it", dict(n_networks=2, max_iter=1500))],
              [("n_resample 1 (default)", {}), ("n_resample 2", dict(n_resample=2)),
               ("n_resample 3", dict(n_resample=3)), ("n_resample 4", dict(n_resample=4)),
               ("n_resample 2, eta 0.5", dict(n_resample=2, eta=0.5)),
               ("n_resample 3, guidance 1.25", dict(n_resample=3, guidance=1.25))])
