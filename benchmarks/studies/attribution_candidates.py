# Record: benchmarks/results/studies/attribution_candidates.md.
# Ran at 0287808. Not maintained.
"""Study: candidate per-coordinate attribution scores (issue 13, part 1).

Fits a detector's density model on a Gaussian field, plants a fault of c
conditional standard deviations (1 / sqrt(Q_jj)) in one random coordinate of
each test row, and reports the top-1 hit rate of each candidate per-feature
score. Candidates (all in the model's space, averaged over the detector's
noise levels t_k):

* ``sq``: ``(s_k score_i(a_k x))^2`` (the per-coordinate part of the score norm)
* ``z2``: ``score_i^2 / (-d score_i / d x_i)`` per level, then the mean: for a
  Gaussian at small t, the squared conditional z-score of coordinate i
* ``z2r``: ratio of the level means of those two terms
* ``z2min``: ``z2`` at the smallest level only
* ``oracle``: the exact squared conditional z-score ``(Qx)_i^2 / Q_ii``
"""

import sys
import time

import numpy as np
import torch
from torch.func import jvp, vmap

sys.path.insert(0, "benchmarks")
from _fields import field_precision, field_sample  # noqa: E402
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator  # noqa: E402
from sklearn_diffusion.anomaly import anomaly_times  # noqa: E402
from sklearn_diffusion.networks import score_from_noise  # noqa: E402
from sklearn_diffusion.outlier import DEFAULT_ESTIMATOR_PARAMS  # noqa: E402
from sklearn_diffusion.schedules import alpha, sigma  # noqa: E402


def score_and_diag(est, x, t):
    model = est.model_
    if hasattr(model, "noise_and_self_derivative"):
        e, de = model.noise_and_self_derivative(x, t)
        return score_from_noise(e, t), score_from_noise(de, t)
    f = lambda z: score_from_noise(model(z, t), t)  # noqa: E731
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    s = f(x)
    cols = vmap(lambda v: jvp(f, (x,), (v.expand_as(x),))[1])(eye)  # (d, n, d)
    return s, cols.diagonal(dim1=0, dim2=2)  # (n, d): d s_i / d x_i


def candidates(est, X, times):
    Z = est._standardize(X)[0]
    x = torch.tensor(Z, dtype=torch.float32)
    sq, z2, num, den = 0, 0, 0, 0
    first = None
    with torch.no_grad():
        for k, tk in enumerate(times):
            t = torch.full((len(x),), float(tk))
            s, ds = score_and_diag(est, alpha(t)[:, None] * x, t)
            s2 = (sigma(t)[:, None] * s).double() ** 2
            curv = (-(sigma(t)[:, None] ** 2) * ds).double().clamp_min(1e-3)
            sq = sq + s2
            ratio = s2 / curv
            z2 = z2 + ratio
            num, den = num + s2, den + curv
            if k == 0:
                first = ratio
    n = len(times)
    return {"sq": (sq / n).numpy(), "z2": (z2 / n).numpy(), "z2r": (num / den).numpy(),
            "z2min": first.numpy()}


def hit_rates(scores, faulty):
    order = np.argsort(-scores, axis=1)
    top3 = (order[:, :3] == faulty[:, None]).any(1)
    return float(np.mean(order[:, 0] == faulty)), float(np.mean(top3))


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "lattice"
    model = sys.argv[2] if len(sys.argv) > 2 else "local"
    d = 64
    Q = field_precision("ring" if kind == "ring" else "lattice", d)
    X, _ = field_sample(Q, 1500 + 300, seed=0)
    warp = (lambda g: np.exp(0.6 * g)) if kind == "lognormal" else (lambda g: g)
    train, test = warp(X[:1500]), X[1500:]
    rng = np.random.default_rng(1)
    faulty = rng.integers(d, size=len(test))
    locality = "ring" if kind == "ring" else (8, 8)
    t0 = time.time()
    if model == "local":
        est = LocalizedDiffusionEstimator(locality=locality, radius=1, max_iter=1500,
                                          random_state=0).fit(train)
    else:
        params = dict(DEFAULT_ESTIMATOR_PARAMS)
        est = BootstrappedScoreEstimator(**params, random_state=0).fit(train)
    print(f"{kind} {model} fit {time.time() - t0:.1f}s", flush=True)
    for grid in [(0.001, 1.0, 16), (0.001, 0.1, 8), (0.01, 0.3, 8)]:
        times = anomaly_times(grid[2], grid[0], grid[1])
        for c in (3, 4, 5):
            Gf = test.copy()
            Gf[np.arange(len(test)), faulty] += c / np.sqrt(Q[faulty, faulty])
            res = candidates(est, warp(Gf), times)
            res["oracle"] = (Gf @ Q) ** 2 / np.diag(Q)
            line = "  ".join(f"{k}={hit_rates(v, faulty)[0]:.2f}" for k, v in res.items())
            print(f"  levels {grid} c={c}: {line}", flush=True)


if __name__ == "__main__":
    main()
