"""The variance claim of time bootstrapping, measured (issue 23).

For each target, a ``BootstrappedScoreEstimator(loss="dsm")`` is fitted on
``--n`` rows (its defaults otherwise); everything below happens in its model
space (after the column map), with its fitted network as the frozen source
of the bootstrapped targets, as in training.

1. **Target variance at fixed ``x_t``, per noise level.** ``--points``
   noised training rows ``x_t`` per level; at each, ``--draws`` rows ``x0``
   from the posterior of the *empirical* law given ``x_t`` (weights
   ``N(x_t; a_t x0_j, s_t^2)`` over the training rows: the law training
   actually samples), then the DSM target ``(x_t - a_t x0) / s_t`` and the
   bootstrapped one (``u = (1 - step) t``, 1 or ``bootstrap_draws`` bridge
   draws). The table gives the conditional variance (noise units, mean over
   coordinates and points) of: DSM; the bootstrap with one draw and with
   ``K`` draws; the blend at the weight ``bootstrap_weight="auto"`` uses at
   that level (its value in the column ``w_auto``, computed under the
   fitted reference mixture as in training); the old target (source at
   ``u = t - min(t - t_min, 0.1)``, one draw, weight 0.5). It also gives the
   mean squared bias of the bootstrapped target against the empirical law's
   exact noise at ``t`` (the source's error, which no averaging removes).
2. **Stochastic-gradient variance per step** at the fitted network:
   ``--grad-batches`` gradients of the training loss (batch 256, fresh rows,
   times and noise each), DSM against the bootstrapped loss (auto weights, K
   draws), reported as the trace of their covariance and its ratio to the
   squared norm of their mean.

Run ``python benchmarks/bootstrap_variance.py`` (about 2 minutes on two
cores); writes ``results/bootstrap_variance.{md,json}``.
"""

import copy
import sys
import time

import numpy as np
import torch

from _cli import parser as make_parser, parse, threads
from _density_suite import TARGETS
from _report import machine, markdown, write
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._model_space import ColumnMap
from sklearn_diffusion.losses import bootstrap_loss, bootstrap_target, dsm_loss
from sklearn_diffusion.schedules import alpha, sample_times, sigma
from sklearn_diffusion.training import _bootstrap_weights

LEVELS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def _posterior_draws(Z, x_t, t, n_draws, generator):
    # x0 | x_t under the empirical law: a categorical over the rows.
    logits = -((x_t[:, None, :] - alpha(t)[:, None, None] * Z[None]) ** 2).sum(2)
    logits = logits / (2 * sigma(t)[:, None] ** 2)
    rows = torch.multinomial(torch.softmax(logits, 1), n_draws, replacement=True,
                             generator=generator)
    return Z[rows], torch.softmax(logits, 1)  # (p, r, d), (p, n)


def _exact_empirical_noise(Z, x_t, t, probs):
    return (x_t - alpha(t)[:, None] * (probs @ Z)) / sigma(t)[:, None]


def target_variances(est, Z, level, args, generator):
    model = est.model_.eval()
    t_min = est.t_min
    p, r, d = args.points, args.draws, Z.shape[1]
    t = torch.full((p,), level)
    rows = Z[torch.randint(len(Z), (p,), generator=generator)]
    x_t = alpha(t)[:, None] * rows + sigma(t)[:, None] * torch.randn(p, d, generator=generator)
    x0, probs = _posterior_draws(Z, x_t, t, r, generator)
    exact = _exact_empirical_noise(Z, x_t, t, probs)
    flat_x0, flat_xt = x0.reshape(p * r, d), x_t.repeat_interleave(r, 0)
    flat_t = t.repeat_interleave(r)
    dsm = (flat_xt - alpha(flat_t)[:, None] * flat_x0) / sigma(flat_t)[:, None]
    weight_of = _bootstrap_weights(model, d, (est.t_min, est.t_max), est.bootstrap_window,
                                   est.bootstrap_step, "auto", est.bootstrap_draws, None,
                                   generator)
    w = float(weight_of(torch.tensor([level]))[0])

    def boot(step_h, k):
        noise = torch.randn(k, p * r, d, generator=generator)
        return bootstrap_target(model, flat_x0, flat_xt, flat_t, step_h, noise)

    k = est.bootstrap_draws
    targets = {
        "dsm": dsm,
        "boot_1": boot(est.bootstrap_step * flat_t, 1),
        f"boot_{k}": boot(est.bootstrap_step * flat_t, k),
    }
    targets["auto_blend"] = w * targets[f"boot_{k}"] + (1 - w) * dsm
    old_h = torch.clamp(flat_t - t_min, max=0.1)
    targets["old (0.5, one draw)"] = 0.5 * boot(old_h, 1) + 0.5 * dsm
    out = {"t": level, "w_auto": w}
    for name, value in targets.items():
        value = value.reshape(p, r, d)
        out[name] = float(value.var(1).mean())
    for name in ("boot_1", f"boot_{k}"):
        mean = targets[name].reshape(p, r, d).mean(1)
        out[f"bias2 {name}"] = float(((mean - exact) ** 2).mean())
    return out


def gradient_variance(est, Z, args, generator):
    model = est.model_.eval()
    frozen = model
    trainable = copy.deepcopy(model).train().requires_grad_(True)
    params = [q for q in trainable.parameters() if q.requires_grad]
    weight_of = _bootstrap_weights(model, Z.shape[1], (est.t_min, est.t_max),
                                   est.bootstrap_window, est.bootstrap_step, "auto",
                                   est.bootstrap_draws, None, generator)
    rows = {}
    for loss in ("dsm", "bootstrap"):
        grads = []
        for _ in range(args.grad_batches):
            x0 = Z[torch.randint(len(Z), (256,), generator=generator)]
            t = sample_times(256, est.t_min, est.t_max, generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            if loss == "dsm":
                value = dsm_loss(trainable, x0, t, noise)
            else:
                bridge = torch.randn((est.bootstrap_draws, *x0.shape), generator=generator)
                value = bootstrap_loss(trainable, frozen, x0, t, est.bootstrap_step * t,
                                       weight_of(t), noise, bridge)
            flat = torch.autograd.grad(value, params)
            grads.append(torch.cat([g.reshape(-1) for g in flat]))
        G = torch.stack(grads)
        trace = float(G.var(0).sum())
        rows[loss] = {"trace_cov": trace, "relative": trace / float(G.mean(0).pow(2).sum())}
    return rows


def main(argv=None):
    p = make_parser(__doc__, "bootstrap_variance", quick="gmm2d only, 16 points, 64 draws",
                    threads=2, merge=False)
    p.add_argument("--targets", nargs="+", default=["gmm2d", "banana6", "gmm16"])
    p.add_argument("--n", type=int, default=500, help="training rows")
    p.add_argument("--points", type=int, default=64, help="fixed x_t per level")
    p.add_argument("--draws", type=int, default=256, help="posterior draws per x_t")
    p.add_argument("--grad-batches", type=int, default=32)
    args = parse(p, argv)
    if args.quick:
        args.targets, args.points, args.draws = ["gmm2d"], 16, 64
    with threads(args.threads):
        return run(args)


def run(args):
    start = time.perf_counter()
    report, payload = [], {"machine": machine(), "argv": sys.argv[1:], "targets": {}}
    for name in args.targets:
        X = TARGETS[name]().sample(args.n, np.random.default_rng(0))
        est = BootstrappedScoreEstimator(loss="dsm", random_state=0).fit(X)
        Z = torch.as_tensor(ColumnMap.of(est).forward(X)[0], dtype=torch.float32)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            levels = [target_variances(est, Z, level, args, generator) for level in LEVELS]
        grads = gradient_variance(est, Z, args, generator)
        payload["targets"][name] = {"levels": levels, "gradients": grads,
                                    "n_iter": int(est.n_iter_)}
        columns = list(levels[0])
        report += [f"## {name} (n = {args.n}, d = {X.shape[1]}, DSM fit of {est.n_iter_} steps)",
                   "", "Conditional variance of the target at fixed x_t (noise units, mean over "
                   "coordinates and points); bias2: mean squared error of the bootstrapped "
                   "target's conditional mean against the empirical law's exact noise.", "",
                   markdown(levels, columns), "",
                   "Stochastic-gradient variance per step (trace of the covariance of "
                   f"{args.grad_batches} batch gradients at the fitted network):", "",
                   markdown([{"loss": k, "trace_cov": v["trace_cov"],
                              "trace_cov / |mean|^2": v["relative"]} for k, v in grads.items()],
                            ["loss", "trace_cov", "trace_cov / |mean|^2"]), ""]
        print("\n".join(report[-12:]), flush=True)
    wall = time.perf_counter() - start
    payload["wall_s"] = wall
    header = ["# Target and gradient variance of time bootstrapping against DSM", "",
              f"`python benchmarks/bootstrap_variance.py {' '.join(sys.argv[1:])}`, "
              f"{wall / 60:.1f} min wall; {machine()}.", ""]
    write(args.out, payload, "\n".join(header + report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
