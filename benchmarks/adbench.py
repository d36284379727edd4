"""ADBench semi-supervised anomaly detection: diffusion detector against peers.

Protocol (``DESIGN.md`` section 5): for seed in 0, 1, 2, split the normal rows
50/50 into train/test (train capped at 10,000 rows); test = held-out normals +
all anomalies; ``StandardScaler`` fitted on train; fit on train; AUROC of the
anomaly score (``-score_samples``) on test; mean over seeds. Peers are
computed in the same run. Prints a markdown table (AUROC per data set, mean
AUROC and mean rank per method, fit+score seconds per data set) and writes
``benchmarks/results/adbench.json``.

Run ``python benchmarks/adbench.py --n-jobs 2`` from the repository root
(``--quick`` for a few data sets and one seed). ``--methods memorized kNN LOF
IForest KDE GMM ECOD --output benchmarks/results/adbench_memorized.json``
runs the ablation of the hybrid score's memorized half alone (no network).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import StandardScaler

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
RESULTS = Path(__file__).resolve().parent / "results" / "adbench.json"
SEEDS = (0, 1, 2)
QUICK_SETS = ("14_glass", "4_breastw", "6_cardio", "38_thyroid", "31_satimage-2", "44_Wilt")
TRAIN_CAP = 10_000


def split(X, y, seed):
    """Train rows (normal only) and test rows/labels of one seed, standardized."""
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y == 0))
    half = len(normal) // 2
    train = normal[: min(half, TRAIN_CAP)]
    test = np.concatenate([normal[half:], np.flatnonzero(y == 1)])
    scaler = StandardScaler().fit(X[train])
    return scaler.transform(X[train]), scaler.transform(X[test]), y[test]


class KNNDistance:
    """Distance to the k-th nearest training row (higher is more abnormal)."""

    def __init__(self, n_neighbors=5):
        self.n_neighbors = n_neighbors

    def fit(self, X):
        self.nn_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(X)
        return self

    def score_samples(self, X):
        return -self.nn_.kneighbors(X)[0][:, -1]


class GaussianMixtureBIC:
    """Gaussian mixture with the number of components (1, 2, 4, 8) chosen by BIC."""

    def fit(self, X):
        fits = [
            GaussianMixture(k, random_state=0).fit(X) for k in (1, 2, 4, 8) if k <= len(X)
        ]
        self.gm_ = min(fits, key=lambda g: g.bic(X))
        return self

    def score_samples(self, X):
        return self.gm_.score_samples(X)


class ECODPeer:
    """PyOD's ECOD, turned to scikit-learn's sign (higher is more normal)."""

    def fit(self, X):
        from pyod.models.ecod import ECOD

        self.model_ = ECOD().fit(X)
        return self

    def score_samples(self, X):
        return -self.model_.decision_function(X)


class MemorizedScoreNorm:
    """Ablation: the memorized half of the detector's hybrid score alone.

    ``anomaly.empirical_score_norm`` over the detector's default levels, with
    no network: the exact score of the noised training rows.
    """

    def fit(self, X):
        import torch

        self.reference_ = torch.from_numpy(np.asarray(X, dtype=np.float64))
        return self

    def score_samples(self, X):
        import torch

        from sklearn_diffusion.anomaly import anomaly_times, empirical_score_norm

        times = anomaly_times(16, 0.001, 1.0)
        x = torch.from_numpy(np.asarray(X, dtype=np.float64))
        return -empirical_score_norm(x, self.reference_, times).numpy()


def make_method(name, seed, diffusion_params):
    from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector
    from sklearn_diffusion.outlier import DEFAULT_ESTIMATOR_PARAMS

    if name == "diffusion":
        if not diffusion_params:
            return DiffusionOutlierDetector(random_state=seed)
        detector_keys = {"method", "n_levels", "noise_range"}
        est = {**dict(DEFAULT_ESTIMATOR_PARAMS), **{
            k: v for k, v in diffusion_params.items() if k not in detector_keys
        }}
        det = {k: v for k, v in diffusion_params.items() if k in detector_keys}
        return DiffusionOutlierDetector(
            BootstrappedScoreEstimator(**est, random_state=seed), **det
        )
    return {
        "IForest": lambda: IsolationForest(random_state=seed),
        "LOF": lambda: LocalOutlierFactor(novelty=True),
        "kNN": lambda: KNNDistance(5),
        "KDE": lambda: KernelDensity(bandwidth="scott"),
        "GMM": GaussianMixtureBIC,
        "ECOD": ECODPeer,
        "memorized": MemorizedScoreNorm,
    }[name]()


def run_one(path, seed, method, diffusion_params):
    """AUROC and fit+score seconds of one method on one data set and seed."""
    import torch

    torch.set_num_threads(1)
    data = np.load(path)
    X_train, X_test, y_test = split(data["X"].astype(np.float64), data["y"].astype(int), seed)
    start = time.perf_counter()
    model = make_method(method, seed, diffusion_params).fit(X_train)
    anomaly = -model.score_samples(X_test)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(anomaly)):
        # Rank non-finite scores (an underflowed density) as most anomalous.
        anomaly = np.nan_to_num(anomaly, nan=np.inf, posinf=np.finfo(float).max)
        anomaly = np.where(np.isinf(anomaly), np.finfo(float).max, anomaly)
    return path.stem, seed, method, float(roc_auc_score(y_test, anomaly)), seconds


def ranks(table, methods):
    """Mean rank per method (1 = best AUROC; ties share the mean rank)."""
    from scipy.stats import rankdata

    per_set = np.array([rankdata([-table[s][m] for m in methods]) for s in table])
    return dict(zip(methods, per_set.mean(axis=0)))


def markdown(table, times, methods):
    """AUROC table (best per data set in bold) and fit+score seconds table."""
    header = "| data set | " + " | ".join(methods) + " |"
    rule = "|---" * (len(methods) + 1) + "|"
    lines = ["AUROC (mean over seeds)", "", header, rule]
    for name in table:
        best = max(table[name].values())
        cells = [
            (f"**{table[name][m]:.3f}**" if table[name][m] == best else f"{table[name][m]:.3f}")
            for m in methods
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = {m: float(np.mean([table[s][m] for s in table])) for m in methods}
    mean_rank = ranks(table, methods)
    lines.append("| **mean AUROC** | " + " | ".join(f"{means[m]:.3f}" for m in methods) + " |")
    lines.append("| **mean rank** | " + " | ".join(f"{mean_rank[m]:.2f}" for m in methods) + " |")
    lines += ["", "fit+score seconds (sum over seeds)", "", header, rule]
    for name in times:
        lines.append(f"| {name} | " + " | ".join(f"{times[name][m]:.1f}" for m in methods) + " |")
    total = {m: sum(times[s][m] for s in times) for m in methods}
    lines.append("| **total** | " + " | ".join(f"{total[m]:.0f}" for m in methods) + " |")
    return "\n".join(lines), means, {m: float(r) for m, r in mean_rank.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .npz files")
    parser.add_argument("--quick", action="store_true", help="6 data sets, seed 0 only")
    parser.add_argument("--sets", nargs="*", help="data set names (file stems) to run")
    parser.add_argument("--methods", nargs="*", help="methods to run (default: all)")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument(
        "--diffusion-params", type=json.loads, default=None,
        help='JSON overrides of the detector, e.g. \'{"max_iter": 1000}\' (for tuning)',
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--table-from", type=Path, help="print the tables of a saved json and exit")
    args = parser.parse_args(argv)
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        methods = list(next(iter(saved["auroc"].values())))
        print(markdown(saved["auroc"], saved["seconds"], methods)[0])
        print(f"\nwall clock: {saved['wall_seconds'] / 60:.1f} min with n_jobs={saved['n_jobs']}")
        return saved["auroc"]

    paths = sorted(args.data.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    if args.sets:
        paths = [p for p in paths if p.stem in args.sets]
    elif args.quick:
        paths = [p for p in paths if p.stem in QUICK_SETS]
    seeds = SEEDS[:1] if args.quick else SEEDS
    methods = args.methods or ["diffusion", "kNN", "LOF", "IForest", "KDE", "GMM", "ECOD"]
    if "ECOD" in methods:
        try:
            import pyod  # noqa: F401
        except ImportError:
            methods = [m for m in methods if m != "ECOD"]
    # Biggest data sets first, so the pool does not end on one long job.
    jobs = [
        (p, s, m)
        for p in sorted(paths, key=os.path.getsize, reverse=True)
        for s in seeds
        for m in methods
    ]
    start = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(run_one)(p, s, m, args.diffusion_params) for p, s, m in jobs
    )
    wall = time.perf_counter() - start
    table, times = {}, {}
    for name, _, method, auc, seconds in results:
        table.setdefault(name, {}).setdefault(method, []).append(auc)
        times.setdefault(name, {}).setdefault(method, 0.0)
        times[name][method] += seconds
    order = [p.stem for p in paths]
    table = {s: {m: float(np.mean(table[s][m])) for m in methods} for s in order}
    times = {s: times[s] for s in order}
    text, means, mean_rank = markdown(table, times, methods)
    print(text)
    print(f"\nwall clock: {wall / 60:.1f} min with n_jobs={args.n_jobs}; seeds {list(seeds)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "seeds": list(seeds), "n_jobs": args.n_jobs, "wall_seconds": wall,
        "diffusion_params": args.diffusion_params,
        "auroc": table, "seconds": times,
        "mean_auroc": means, "mean_rank": mean_rank,
        "runs": [dict(zip(("data", "seed", "method", "auroc", "seconds"), r)) for r in results],
    }, indent=1))
    return table


if __name__ == "__main__":
    main()
