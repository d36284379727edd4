# Record: benchmarks/results/studies/tune_anomaly_scores.md (run 4).
# Ran at 747e2c2. Not maintained.
"""Tune the outlier detector's defaults on ADBench: per-level scores, cached.

Fits one :class:`BootstrappedScoreEstimator` per (setting, data set, seed) of
the ADBench protocol (``_adbench.split``) and stores, for test rows and up to
2,000 training rows, the score norm and the denoising error at each of 19
noise levels log-spaced in [0.001, 3] (optionally the test log-density and
norms averaged over noise draws); the memorized score norm
(``anomaly.empirical_score_norm``, no fit) is cached per data set. Aggregations
of those levels are then compared offline (``--report``) by mean AUROC and
mean rank against the peers of a saved ``adbench.py`` run, seed by seed, so
no aggregation needs a refit.

Usage (repository root)::

    python benchmarks/studies/tune_detector.py fit NAME 'JSON settings' [--seeds 0] [--n-jobs 2]
    python benchmarks/studies/tune_detector.py report NAME [NAME ...]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _adbench import DATA as DEFAULT_DATA  # noqa: E402
from _adbench import split  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "adbench.json"
CACHE = Path(__file__).resolve().parents[1] / "results" / "tune_cache"
TIMES = np.logspace(-3, np.log10(3.0), 19)
PEERS = ("kNN", "LOF", "IForest", "KDE", "GMM", "ECOD")


def fit_one(name, seed, params, out, with_logp, rs_offset=0, mc=False):
    import torch

    torch.set_num_threads(1)
    from sklearn.utils import check_random_state
    from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
    from sklearn_diffusion._base import _MAX_SEED

    path = out / f"{name}_{seed}.npz"
    if path.exists():
        return
    data = np.load(DEFAULT_DATA / f"{name}.npz")
    X_train, X_test, y_test = split(data["X"].astype(float), data["y"].astype(int), seed)
    start = time.perf_counter()
    params = dict(params)
    cls = {"bootstrapped": BootstrappedScoreEstimator, "localized": LocalizedDiffusionEstimator}[
        params.pop("estimator", "bootstrapped")]
    est = cls(**params, random_state=seed + rs_offset).fit(X_train)
    fit_s = time.perf_counter() - start
    # The estimator's own held-out rows (same draws as BaseDiffusionEstimator.fit).
    rng = check_random_state(seed + rs_offset)
    rng.randint(_MAX_SEED, size=2)
    n_val = int(est.validation_fraction * len(X_train)) if est.early_stopping else 0
    order = rng.permutation(len(X_train))
    X_val, X_ref = X_train[order[:n_val]], X_train[order[n_val:][:2000]]
    result = {"y": y_test, "fit_s": fit_s, "n_iter": est.n_iter_}
    for label, X in (("te", X_test), ("tr", X_ref), ("va", X_val)):
        if len(X) == 0:
            continue
        for method in ("score_norm", "denoising"):
            result[f"{method}_{label}"] = np.stack([
                est.anomaly_score(X, method=method, n_levels=1, noise_range=(t, t)) for t in TIMES
            ], axis=1)
    # Score averaged over noise draws around each row (evaluated where the
    # network was trained, on the noise shell), K draws shared by all rows.
    from sklearn_diffusion._utils import to_tensor
    from sklearn_diffusion.schedules import alpha, sigma

    score_fn = est._score_fn(est._model_on(torch.device("cpu")))
    K = 16 if mc else 0
    g = torch.Generator().manual_seed(seed)
    draws = torch.randn(len(TIMES), K, X_train.shape[1], generator=g)
    for label, X in (("te", X_test), ("tr", X_ref), ("va", X_val)) if mc else ():
        x = to_tensor(est._standardize(X), "cpu")
        mc_mean, mc_den = [], []
        with torch.no_grad():
            for k, t in enumerate(TIMES):
                tt = torch.full((len(x),), float(t))
                a, s = alpha(tt)[:, None], sigma(tt)[:, None]
                eps = torch.stack([-s * score_fn(a * x + s * z, tt) for z in draws[k]])
                mc_mean.append((eps.mean(0).double() ** 2).sum(1).numpy())
                mc_den.append(((eps - draws[k][:, None]).double() ** 2).sum(2).mean(0).numpy())
        result[f"mcnorm_{label}"] = np.stack(mc_mean, 1)
        result[f"mcden_{label}"] = np.stack(mc_den, 1)
    if with_logp:
        result["logp_te"] = est.score_samples(X_test)
        result["logp_tr"] = est.score_samples(X_ref)
        result["logp_va"] = est.score_samples(X_val)
    np.savez(path, **result)


def fit(args):
    params = json.loads(args.settings)
    out = CACHE / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.json").write_text(json.dumps(params))
    paths = sorted(DEFAULT_DATA.glob("*.npz"), key=lambda p: -p.stat().st_size)
    if args.sets:
        paths = [p for p in paths if p.stem in args.sets]
    start = time.perf_counter()
    Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(fit_one)(p.stem, s, params, out, args.logp, args.rs_offset, args.mc)
        for p in paths
        for s in args.seeds
    )
    print(f"wall {time.perf_counter() - start:.0f} s")


def empirical(stem, seed):
    """Per-level memorized score norms (anomaly.empirical_score_norm) of the
    test rows and of up to 2,000 training rows left out one at a time."""
    import torch

    from sklearn_diffusion.anomaly import empirical_score_norm

    path = CACHE / "empirical" / f"{stem}_{seed}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.load(DEFAULT_DATA / f"{stem}.npz")
        X_train, X_test, _ = split(data["X"].astype(float), data["y"].astype(int), seed)
        # The estimator standardizes again; on StandardScaler output that is
        # the identity up to rounding.
        reference = torch.from_numpy(X_train)
        per_level = {
            label: np.stack([empirical_score_norm(
                torch.from_numpy(X), reference, torch.tensor([t]), leave_one_out=True).numpy()
                for t in TIMES], axis=1)
            for label, X in (("te", X_test), ("tr", X_train[:2000]))
        }
        np.savez(path, **per_level)
    return dict(np.load(path))


def load(name):
    if "+" in name:
        # An ensemble: per-level scores averaged over members (same splits,
        # different model seeds); the members' held-out rows differ, so drop them.
        members = [load(n) for n in name.split("+")]
        runs = {}
        for key, r in members[0].items():
            avg = {k: np.mean([m[key][k] for m in members], axis=0)
                   for k in r if k.endswith("_te") and all(k in m[key] for m in members)}
            runs[key] = {**{k: v for k, v in r.items() if k.endswith("_tr") or k == "y"}, **avg}
        return runs
    runs = {}
    for f in sorted((CACHE / name).glob("*.npz")):
        stem, seed = f.stem.rsplit("_", 1)
        runs[stem, int(seed)] = dict(np.load(f))
        emp = empirical(stem, int(seed))
        runs[stem, int(seed)].update(empirical_te=emp["te"], empirical_tr=emp["tr"])
    return runs


def aggregations(r):
    """Candidate anomaly scores (higher = more anomalous) from one cached fit."""
    out = {}
    idx = {f"{TIMES[lo]:.3g}-{TIMES[hi - 1]:.2g}": slice(lo, hi)
           for lo, hi in [(0, 16), (0, 19), (0, 12), (4, 16), (4, 19), (8, 19)]}
    for key, sl in idx.items():
        out[f"emp[{key}]"] = r["empirical_te"][:, sl].mean(1)
        out[f"hybrid[{key}]"] = np.log(r["empirical_te"][:, sl].mean(1)) + np.log(
            r["score_norm_te"][:, sl].mean(1))
        variants = (("score_norm", "norm"), ("denoising", "den"), ("mcnorm", "mcnorm"),
                    ("mcden", "mcden"))
        for m, short in variants:
            if f"{m}_te" not in r:
                continue
            te, tr = r[f"{m}_te"][:, sl], r[f"{m}_tr"][:, sl]
            out[f"{short}[{key}]"] = te.mean(1)
            med = np.median(tr, 0)
            out[f"{short}/med[{key}]"] = (te / med).mean(1)
            mu, sd = np.log(tr).mean(0), np.log(tr).std(0) + 1e-12
            zs = (np.log(te) - mu) / sd
            out[f"{short}z[{key}]"] = zs.mean(1)
            out[f"{short}zmax[{key}]"] = zs.max(1)
            if f"{m}_va" in r and len(r[f"{m}_va"]) >= 2:
                va = np.log(r[f"{m}_va"][:, sl])
                lte = np.log(te)
                out[f"{short}/vmed[{key}]"] = (te / np.exp(np.median(va, 0))).mean(1)
                zv = (lte - va.mean(0)) / (va.std(0) + 1e-12)
                out[f"{short}zv[{key}]"] = zv.mean(1)
                out[f"{short}zvmax[{key}]"] = zv.max(1)
                mad = np.median(np.abs(va - np.median(va, 0)), 0) + 1e-12
                out[f"{short}zvr[{key}]"] = ((lte - np.median(va, 0)) / mad).mean(1)
                gap = np.median(va, 0) - np.median(np.log(tr), 0)
                keep = gap < np.log(2)
                if keep.any():
                    out[f"{short}gap2[{key}]"] = te[:, keep].mean(1)
                    out[f"{short}zvgap2[{key}]"] = zv[:, keep].mean(1)
    if "logp_te" in r:
        out["loglik"] = -r["logp_te"]
        if len(r["logp_va"]) >= 2:
            zl = (r["logp_va"].mean() - r["logp_te"]) / (r["logp_va"].std() + 1e-12)
            for key in ("0.001-3", "0.00593-3"):
                if f"normzv[{key}]" in out:
                    out[f"normzv+loglik[{key}]"] = out[f"normzv[{key}]"] + zl
    return out


def report(args):
    peers = json.loads(Path(args.peers).read_text())["runs"]
    peer = {(p["data"], p["seed"], p["method"]): p["auroc"] for p in peers}
    for name in args.names:
        runs = load(name)
        print(f"\n## {name}: {(CACHE / name.split('+')[0] / 'params.json').read_text()}")
        auc = {}
        for (stem, seed), r in runs.items():
            for key, score in aggregations(r).items():
                auc.setdefault(key, {})[stem, seed] = roc_auc_score(r["y"], score)
        keys_sets = sorted({k for k in runs})
        rows = []
        for key, per in auc.items():
            if len(per) != len(keys_sets):
                continue
            rank, diff, worst = [], [], []
            for s in keys_sets:
                vals = [per[s]] + [peer[s[0], s[1], m] for m in PEERS]
                rank.append(rankdata([-v for v in vals]))
                diff.append(per[s] - peer[s[0], s[1], "kNN"])
            rank = np.mean(rank, axis=0)
            rows.append((key, np.mean(list(per.values())), rank[0], rank[1], np.mean(diff),
                         min(diff), sum(d > 0 for d in diff)))
        knn = np.mean([peer[s[0], s[1], "kNN"] for s in keys_sets])
        print(f"{len(keys_sets)} (set, seed) pairs; kNN mean AUROC {knn:.3f}")
        print("| score | mean AUROC | rank | kNN rank | vs kNN | worst vs kNN | wins |")
        print("|---|---|---|---|---|---|---|")
        for row in sorted(rows, key=lambda r: r[2])[: args.top]:
            print("| {} | {:.3f} | {:.2f} | {:.2f} | {:+.3f} | {:+.3f} | {} |".format(*row))
        if args.detail:
            for key in args.detail:
                print(f"\n{key}")
                for s in keys_sets:
                    knn = peer[s[0], s[1], "kNN"]
                    print(f"  {s[0]:20s} {s[1]} {auc[key][s]:.3f}  kNN {knn:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    f = sub.add_parser("fit")
    f.add_argument("name")
    f.add_argument("settings")
    f.add_argument("--seeds", type=int, nargs="*", default=[0])
    f.add_argument("--sets", nargs="*")
    f.add_argument("--n-jobs", type=int, default=2)
    f.add_argument("--logp", action="store_true")
    f.add_argument("--mc", action="store_true", help="also score norms averaged over noise draws")
    f.add_argument("--rs-offset", type=int, default=0, help="model seed = split seed + this")
    f.set_defaults(func=fit)
    r = sub.add_parser("report")
    r.add_argument("names", nargs="+")
    r.add_argument("--peers", default=str(RESULTS))
    r.add_argument("--top", type=int, default=15)
    r.add_argument("--detail", nargs="*")
    r.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
