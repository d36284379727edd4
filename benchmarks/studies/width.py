"""Study (issue 22): the score network's width and objective on wide tables.

musk (166 columns) gained 24 nats from a 512-wide network and 58 from 512-wide
flow matching (``results/studies/atoms.md``). This study checks a width rule
(``next power of two >= 3 d``, at least 128) on the suite's other wide sets and
on wide targets the rule was not chosen on, with an exact density:

- ``banana<d>``: ``d / 2`` curved pairs (``_density_suite.BananaTarget``),
  rotated by a fixed orthogonal matrix, 2,000 training and 5,000 test rows;
- ``lowrank<d>``: the same bananas in ``k = d / 8`` dimensions, spread over
  ``d`` columns by a fixed ``d x k`` orthonormal map plus N(0, 0.05^2) noise
  in the orthogonal complement (correlated columns, as in musk).

One cell per call, appended to ``results/studies/<out>.jsonl``; run from the
repository root, two at a time on this machine::

    OMP_NUM_THREADS=1 python benchmarks/studies/width.py banana96 \
        "diffusion:hidden_layer_sizes=(512,512,512)" --out width
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _density_suite as suite  # noqa: E402
import density  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"


class LowRankBananas:
    """Rotated bananas in ``k`` dimensions spread over ``d`` columns, plus small noise."""

    def __init__(self, d, noise=0.05):
        k = d // 8
        rng = np.random.default_rng(1000 + d)
        basis = suite._random_orthogonal(d, rng)
        self.inside, self.outside = basis[:, :k], basis[:, k:]
        self.bananas = suite.BananaTarget(suite._random_orthogonal(k, rng))
        self.noise = noise

    def sample(self, n, rng):
        latent = self.bananas.sample(n, rng)
        rest = self.noise * rng.standard_normal((n, self.outside.shape[1]))
        return latent @ self.inside.T + rest @ self.outside.T

    def log_density(self, X):
        X = np.asarray(X, dtype=np.float64)
        rest = X @ self.outside / self.noise
        m = rest.shape[1]
        log_rest = -0.5 * (rest**2).sum(1) - m * (np.log(self.noise) + 0.5 * suite.LOG_2PI)
        return self.bananas.log_density(X @ self.inside) + log_rest


def target(name):
    d = int(name.lstrip("abcdefghijklmnopqrstuvwxyz"))
    if name.startswith("banana"):
        return suite.BananaTarget(suite._random_orthogonal(d, np.random.default_rng(d)))
    if name.startswith("lowrank"):
        return LowRankBananas(d)
    raise ValueError(name)


def load(name, seed):
    if name.startswith(("banana", "lowrank")) and name != "banana6":
        t = target(name)
        X = t.sample(suite.N_TRAIN + suite.N_TEST, np.random.default_rng([d_tag(name), seed]))
        return suite.Dataset(name, X[:suite.N_TRAIN], X[suite.N_TRAIN:],
                             log_density=t.log_density)
    return suite.load_suite([name], seed=seed)[0]


def d_tag(name):
    return sum(map(ord, name))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="width")
    args = parser.parse_args()
    dataset = load(args.dataset, args.seed)
    if args.seed:
        factory = density.parse_method(args.method + f":random_state={args.seed}") \
            if args.method.startswith("diffusion") else density.parse_method(args.method)
    else:
        factory = density.parse_method(args.method)
    cell = density.run_cell(dataset, args.method, factory)
    cell["seed"] = args.seed
    cell["d"] = dataset.X_train.shape[1]
    t = density.truth(dataset)
    cell["truth_ll"] = t["test_ll"] if t else None
    print(json.dumps(cell))
    with open(RESULTS / f"{args.out}.jsonl", "a") as f:
        f.write(json.dumps(cell) + "\n")


if __name__ == "__main__":
    main()
