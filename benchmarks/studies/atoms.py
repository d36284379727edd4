"""Study (issue 22): is the flows' lead on musk and SpamBase point masses?

The suite dequantizes only columns with at most 50 distinct values. Columns on
a grid with more values (musk's integer distances, SpamBase's percentages to
two decimals) keep exact repeats: held-out entries equal training entries, and
a flexible density can put a spike on each. This study reruns the density
suite's methods on chosen sets with *every* grid column dequantized
(``U[0, step)``, step = its smallest gap), the rule the suite states as its
intent ("so that a continuous density does not reward point masses").

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/studies/atoms.py --datasets ad_25_musk \
        --methods diffusion,gmm,nsf --out studies/atoms_musk
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _density_suite  # noqa: E402
import density  # noqa: E402


def on_grid(values, max_points=100_000):
    """Whether a column's distinct values lie on the grid of their smallest gap."""
    values = np.unique(values)
    if len(values) < 2:
        return False
    k = (values - values[0]) / np.diff(values).min()
    return bool(np.allclose(k, np.round(k), atol=1e-6)) and k[-1] <= max_points


def grid_dequantize(X, rng):
    """``_density_suite.dequantize`` with every grid column dequantized, however many values."""
    X = np.array(X, dtype=np.float64)
    noise = rng.random(X.shape)
    n = 0
    for j in range(X.shape[1]):
        values = np.unique(X[:, j])
        if 2 <= len(values) <= _density_suite.MAX_DISTINCT or on_grid(values):
            X[:, j] += noise[:, j] * np.diff(values).min()
            n += 1
    return X, n


class CentredDequantization:
    """The density default fitted on grid columns plus ``U[-step/2, step/2)``, scored as given.

    The prototype of a ``dequantize`` option: the model is a density of the
    dequantized rows, and a row on the grid is scored at its cell's centre.
    """

    def __init__(self, **params):
        from sklearn_diffusion import BootstrappedScoreEstimator

        self.model = BootstrappedScoreEstimator(**{"random_state": 0, **params})

    def fit(self, X):
        X = np.array(X, dtype=np.float64)
        noise = np.random.default_rng(0).random(X.shape) - 0.5
        for j in range(X.shape[1]):
            values = np.unique(X[:, j])
            if len(values) < len(X) and on_grid(values):
                X[:, j] += noise[:, j] * np.diff(values).min()
        self.model.fit(X)
        self.n_iter_ = self.model.n_iter_
        return self

    def score_samples(self, X):
        return self.model.score_samples(X)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--methods", default="diffusion,gmm,nsf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--protocol", choices=("grid", "suite"), default="grid",
                        help="grid: every grid column dequantized; suite: the suite's rule")
    args = parser.parse_args()
    if args.protocol == "grid":
        _density_suite.dequantize = grid_dequantize
    density.METHODS["centred"] = lambda dataset, **params: CentredDequantization(**params)
    rows = []
    for dataset in _density_suite.load_suite(args.datasets.split(","), seed=args.seed):
        print(f"{dataset.name}: {dataset.dequantized} of {dataset.d} columns dequantized",
              flush=True)
        for label in density.split_labels(args.methods):
            cell = density.run_cell(dataset, label, density.parse_method(label))
            cell["dequantized"] = dataset.dequantized
            print(f"  {label}: test {cell['test_ll']:.3f} train-test "
                  f"{cell['train_minus_test']:.3f} fit {cell['fit_s']:.1f}s {cell['note']} "
                  f"{cell['error'] or ''}", flush=True)
            rows.append(cell)
    import json
    path = Path("benchmarks/results") / f"{args.out}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
