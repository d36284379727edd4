# Record: benchmarks/results/studies/impute_sampler_gaussian.md.
# Ran at 3ad568b. Not maintained.
"""Study: accuracy of the conditional sampler with the exact score.

2-D Gaussian with unit variances and correlation rho, condition on x_1 = 1.5:
x_2 | x_1 is N(1.5 rho, 1 - rho^2). Prints the mean and variance of 20,000
draws of :func:`sklearn_diffusion.sampling.conditional_sde` for a few
(n_steps, n_resample, guidance); cost is in network evaluations per draw
(a guided step costs about three: forward and backward). The step noise is
the bridge's (``eta=0``), the sampler's default when this table was made;
``impute_tuning.py`` measures ``eta``.
"""
import torch

from sklearn_diffusion.sampling import conditional_sde

torch.set_num_threads(2)


def gaussian_score(C):
    def score(x, t):
        a = torch.exp(-t)[:, None, None]
        cov = a**2 * C + (1 - a**2) * torch.eye(2)
        return -torch.linalg.solve(cov, x[..., None])[..., 0]
    return score


n = 20000
x0 = torch.zeros(n, 2)
x0[:, 0] = 1.5
observed = torch.zeros(n, 2, dtype=torch.bool)
observed[:, 0] = True
print("| rho | n_steps | n_resample | guidance | mean (truth) | variance (truth) | cost |")
print("|---|---|---|---|---|---|---|")
for rho in (0.8, 0.95):
    score = gaussian_score(torch.tensor([[1.0, rho], [rho, 1.0]]))
    for n_steps, n_resample, guidance in [(16, 1, 0.0), (16, 4, 0.0), (32, 4, 0.0),
                                          (16, 1, 1.0), (16, 2, 1.0), (16, 4, 1.0),
                                          (32, 1, 1.0), (32, 2, 1.0)]:
        g = torch.Generator().manual_seed(0)
        x = conditional_sde(score, x0, observed, t_min=1e-3, t_max=10.0, n_steps=n_steps,
                            n_resample=n_resample, guidance=guidance, eta=0.0, generator=g)
        cost = n_steps * n_resample * (3 if guidance else 1)
        print(f"| {rho} | {n_steps} | {n_resample} | {guidance} | {x[:, 1].mean():.3f} "
              f"({1.5 * rho:.3f}) | {x[:, 1].var():.3f} ({1 - rho**2:.3f}) | {cost} |")
