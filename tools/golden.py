"""Golden outputs of small seeded configurations, to prove a refactor changes no number.

Local tool, not run by CI (bits depend on the machine and the torch build)::

    python tools/golden.py --write   # before moving code
    python tools/golden.py --check   # after every step: exits 1 on any difference

It records ``score_samples``, ``sample``, both ``anomaly_score`` methods,
``sample_conditional``, every fitted attribute and tensor of about 20 small
fits (both estimators, every column map and reference, NaN rows, localized
chain / ring / auto / shared / hybrid, ``refit_features``), the outlier
detector, the imputer and a persistence round trip.
"""

import argparse
import copy
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

torch.set_num_threads(1)

from sklearn_diffusion import (  # noqa: E402
    BootstrappedScoreEstimator,
    DiffusionImputer,
    DiffusionOutlierDetector,
    LocalizedDiffusionEstimator,
    persistence,
)

PATH = os.path.join(os.path.dirname(__file__), "golden.npz")


def data(d=4, n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, d)), axis=1)
    X[:, 0] = np.exp(X[:, 0] / 2)  # a skewed column for the column maps
    return X


def with_nan(X, seed=1):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    return X


B = dict(hidden_layer_sizes=(16,), max_iter=120, random_state=0, n_networks=1)
L = dict(hidden_layer_sizes=(8,), max_iter=120, random_state=0, radius=1, block_size=2,
         shared=False)

CONFIGS = {
    "b_auto_mixture_2": (BootstrappedScoreEstimator, {**B, "n_networks": 2}, False),
    "b_gauss_normal": (BootstrappedScoreEstimator,
                       {**B, "column_transform": "gaussianize", "reference": "normal"}, False),
    "b_std_mixture": (BootstrappedScoreEstimator, {**B, "column_transform": "standardize"}, False),
    "b_std_normal_2": (BootstrappedScoreEstimator, {**B, "column_transform": "standardize",
                                                    "reference": "normal", "n_networks": 2}, False),
    "b_auto_nan": (BootstrappedScoreEstimator, B, True),
    "b_hutchinson": (BootstrappedScoreEstimator, {**B, "divergence": "hutchinson"}, False),
    "b_bootstrap": (BootstrappedScoreEstimator, {**B, "loss": "bootstrap"}, False),
    "b_fixed_smoothing_sde": (BootstrappedScoreEstimator,
                              {**B, "smoothing": 0.01, "sampler": "sde"}, False),
    "b_no_early_stop": (BootstrappedScoreEstimator, {**B, "early_stopping": False}, False),
    "l_chain": (LocalizedDiffusionEstimator, L, False),
    "l_chain_std": (LocalizedDiffusionEstimator, {**L, "column_transform": "standardize"}, False),
    "l_ring_shared": (LocalizedDiffusionEstimator, {**L, "locality": "ring", "shared": True}, False),
    "l_auto": (LocalizedDiffusionEstimator, {**L, "locality": "auto"}, False),
    "l_lattice": (LocalizedDiffusionEstimator, {**L, "locality": (2, 3)}, False),
    "l_hybrid": (LocalizedDiffusionEstimator, {**L, "n_global_components": 1}, False),
    "l_nan": (LocalizedDiffusionEstimator, L, True),
}


def record(out, prefix, est, X):
    rows = np.nan_to_num(X[:12], nan=0.0)
    out[f"{prefix}/score_samples"] = est.score_samples(rows)
    out[f"{prefix}/sample"] = est.sample(6, random_state=0)
    for method in ("score_norm", "denoising"):
        out[f"{prefix}/anomaly_{method}"] = est.anomaly_score(rows, method=method)
    holes = rows[:5].copy()
    holes[np.arange(5), np.arange(5) % rows.shape[1]] = np.nan
    out[f"{prefix}/conditional"] = est.sample_conditional(holes, n_samples=2, random_state=0)
    for name, value in sorted(vars(est).items()):
        if not name.endswith("_") or name.startswith("_"):
            continue
        if name == "model_":
            for key, tensor in value.state_dict().items():
                out[f"{prefix}/model_/{key}"] = tensor.numpy()
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
            for i, v in enumerate(value):
                out[f"{prefix}/{name}/{i}"] = np.asarray(v)
        elif isinstance(value, (np.ndarray, int, float, bool, np.generic)):
            out[f"{prefix}/{name}"] = np.asarray(value)
        elif isinstance(value, str):
            out[f"{prefix}/{name}"] = np.asarray(value)


def compute():
    out = {}
    warnings.simplefilter("ignore")
    for name, (cls, params, nan) in CONFIGS.items():
        d = 6 if params.get("locality") == (2, 3) else 4
        X = data(d)
        X_fit = with_nan(X) if nan else X
        est = cls(**params).fit(X_fit)
        record(out, name, est, X)
        print(name, flush=True)
    # refit_features on a changed column, with and without NaN.
    X = data(6)
    est = LocalizedDiffusionEstimator(**L).fit(X)
    X2 = X.copy()
    X2[:, 3] = 2 * X2[:, 3] + 1
    record(out, "l_refit", copy.deepcopy(est).refit_features(X2, [3]), X2)
    X3 = X2.copy()
    X3[::4, 3] = np.nan
    record(out, "l_refit_nan", copy.deepcopy(est).refit_features(X3, [3]), X2)
    # The detector, each method, and feature_scores.
    X = data(4)
    for method in ("hybrid", "score_norm", "log_density"):
        det = DiffusionOutlierDetector(BootstrappedScoreEstimator(**B), method=method).fit(X)
        out[f"det_{method}/score_samples"] = det.score_samples(X[:12])
        out[f"det_{method}/offset_"] = np.asarray(det.offset_)
    out["det/feature_scores"] = det.feature_scores(X[:12])
    det = DiffusionOutlierDetector(LocalizedDiffusionEstimator(**L)).fit(X)
    out["det_local/score_samples"] = det.score_samples(X[:12])
    out["det_local/feature_scores"] = det.feature_scores(X[:12])
    # The imputer: mean of draws and posterior draws.
    X_nan = with_nan(data(4))
    for posterior in (False, True):
        imp = DiffusionImputer(BootstrappedScoreEstimator(**B), sample_posterior=posterior,
                               n_samples=3, random_state=0).fit(X_nan)
        out[f"imputer_{posterior}/transform"] = imp.transform(X_nan[:20])
    # Persistence round trips.
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("b_auto_mixture_2", "l_hybrid"):
            cls, params, _ = CONFIGS[name]
            X = data(4)
            est = cls(**params).fit(X)
            path = os.path.join(tmp, "model.skd")
            persistence.save(est, path)
            out[f"persist_{name}/score_samples"] = persistence.load(path).score_samples(X[:12])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args()
    out = compute()
    if args.write:
        np.savez(PATH, **out)
        print(f"wrote {len(out)} arrays to {PATH}")
        return 0
    # The file is this tool's own local record; string attributes
    # (member_references_) are stored as object arrays.
    golden = dict(np.load(PATH, allow_pickle=True))
    bad = sorted(set(golden) ^ set(out))
    for key in sorted(set(golden) & set(out)):
        a, b = golden[key], np.asarray(out[key])
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            bad.append(key)
        elif a.dtype.kind in "fc" and not np.array_equal(a, b, equal_nan=True):
            bad.append(key)
        elif a.dtype.kind not in "fc" and not np.array_equal(a, b):
            bad.append(key)
    for key in bad:
        print("DIFFERS:", key)
    print(f"{len(out) - len(bad)} of {len(golden)} arrays identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
