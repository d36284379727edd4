"""Training, sampling and log-density throughput.

1. Training throughput (rows x steps per second) of the default network with
   :func:`sklearn_diffusion.training.fit_noise_model` against a plain PyTorch
   DSM loop written the way tutorials write it (``DataLoader`` over a
   ``TensorDataset``, ``loss.item()`` every step), same network, batch and
   device, interleaved repeats, medians and their ratio; and the achieved
   FLOP rate as a fraction of the float32 matrix-multiply rate measured in the
   same run.
2. ``sample`` and ``score_samples`` seconds for 10,000 rows at d in {2, 16, 64}.

Run: ``python benchmarks/speed.py [--device cpu|cuda] [--repeats 3]``
(``--quick``: one repeat of 100 steps). Writes ``results/speed.{md,json}``
(``speed_cuda`` on a GPU).
"""

import statistics
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import _cli
from _report import markdown, write
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion.networks import ScoreMLP
from sklearn_diffusion.schedules import alpha, sigma
from sklearn_diffusion.training import fit_noise_model

BATCH = 256


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, n=2048, repeats=10):
    """float32 matrix-multiply FLOP/s on ``device`` (median of repeats)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[2:])


def step_flops(net, d):
    """Matmul FLOPs of one training step (forward + backward = 3x forward)."""
    macs = sum(m.in_features * m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear))
    return 3 * 2 * macs * BATCH


def tutorial_loop(X, steps, device, seed):
    """A DSM loop as tutorials write it."""
    g = torch.Generator().manual_seed(seed)
    net = ScoreMLP(X.shape[1], generator=g).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(X), batch_size=BATCH, shuffle=True, drop_last=True)
    losses, done = [], 0
    while done < steps:
        for (x0,) in loader:
            x0 = x0.to(device)
            t = torch.exp(torch.empty(len(x0), device=device).uniform_(np.log(1e-3), np.log(10.0)))
            z = torch.randn_like(x0)
            xt = alpha(t)[:, None] * x0 + sigma(t)[:, None] * z
            loss = ((net(xt, t) - z) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            done += 1
            if done == steps:
                break
    return net


def ours(X, steps, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    net = ScoreMLP(X.shape[1], generator=torch.Generator().manual_seed(seed)).to(device)
    return fit_noise_model(net, X.to(device), max_iter=steps, batch_size=BATCH, learning_rate=1e-3,
                           t_min=1e-3, t_max=10.0, generator=g, loss="dsm").model


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    sync(args[2] if len(args) > 2 else torch.device("cpu"))
    return time.perf_counter() - start


def main(argv=None):
    parser = _cli.parser(__doc__, "speed", quick="1 repeat, 100 training steps", merge=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 quick)")
    parser.add_argument("--steps", type=int, default=None, help="default 500 (100 quick)")
    parser.add_argument("--d", type=int, default=16)
    args = _cli.parse(parser, argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.steps = args.steps or (100 if args.quick else 500)
    if args.out == "speed" and args.device != "cpu":
        args.out = f"speed_{torch.device(args.device).type}"
    with _cli.threads(args.threads):
        run(args)


def run(args):
    device = torch.device(args.device)
    X = torch.randn(10_000, args.d)
    ours(X, 20, device, 0)  # warm-up (CUDA context, allocator)
    tutorial_loop(X, 20, device, 0)
    t_ours, t_tut = [], []
    for r in range(args.repeats):
        t_tut.append(timed(tutorial_loop, X, args.steps, device, r))
        t_ours.append(timed(ours, X, args.steps, device, r))
    rate = matmul_rate(device)
    flops = step_flops(ScoreMLP(args.d), args.d) * args.steps
    train_rows = []
    for name, times in (("plain PyTorch loop", t_tut), ("fit_noise_model", t_ours)):
        med = statistics.median(times)
        train_rows.append({"loop": name, "median s": med, "rows x steps / s": BATCH * args.steps / med,
                           "FLOP/s": flops / med, "fraction of matmul rate": flops / med / rate})
    speedup = statistics.median(t_tut) / statistics.median(t_ours)
    train_text = "\n".join([
        f"training, d={args.d}, batch {BATCH}, {args.steps} steps, {args.repeats} repeats, "
        f"{device}; float32 matmul rate {rate / 1e9:.1f} GFLOP/s",
        markdown(train_rows, ["loop", "median s", "rows x steps / s", "FLOP/s",
                              "fraction of matmul rate"]),
        f"speed-up of fit_noise_model over the plain loop (ratio of medians): {speedup:.2f}x",
    ])
    print(train_text)

    infer_rows = []
    for d in (2, 16, 64):
        data = np.random.default_rng(0).normal(size=(10_000, d))
        est = BootstrappedScoreEstimator(max_iter=50, early_stopping=False, random_state=0,
                                         device=str(device)).fit(data)
        div = "exact" if d <= est.n_probes else f"hutchinson ({est.n_probes} probes)"
        for name, call in (("sample", lambda: est.sample(10_000, random_state=0)),
                           ("score_samples", lambda: est.score_samples(data))):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            infer_rows.append({"d": d, "call": name, "divergence": div if name == "score_samples" else "-",
                               "median s (10,000 rows)": statistics.median(times)})
    infer_text = (f"inference, 10,000 rows, default settings (n_steps=16), {device}\n"
                  + markdown(infer_rows, ["d", "call", "divergence", "median s (10,000 rows)"]))
    print("\n" + infer_text)
    write(args.out, dict(device=str(device), matmul_flops=rate, training=train_rows,
                         speedup=speedup, inference=infer_rows),
          f"# Throughput (`benchmarks/speed.py`, torch threads {torch.get_num_threads()})\n\n"
          + train_text + "\n\n" + infer_text + "\n")


if __name__ == "__main__":
    main()
