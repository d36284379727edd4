"""Study (issue 22): which held-out criterion should stop training?

One network (``n_networks=1``) is trained for the full ``max_iter`` with the
default schedule; at every check of 100 steps the weight average is kept.
Each snapshot is exactly the model that early stopping would return if it
stopped there (the schedule depends on ``max_iter`` only). For every
snapshot this records

* ``dsm``: the held-out denoising loss that early stopping uses today;
* ``elbo``: the same held-out triples, reweighted to the likelihood
  weighting (Song et al. 2021, "Maximum likelihood training of score-based
  diffusion models", Thm. 1): ``t / sigma_t^2 * |eps - z|^2`` under the
  log-uniform time draw, a bound on the negative log-likelihood up to terms
  that do not depend on the network;
* ``ll``: the held-out log-likelihood of the early-stopping rows at the best
  smoothing (what ``smoothing="auto"`` then picks);
* ``test``: the test log-likelihood at that smoothing (the oracle).

Then each stopping rule (criterion, patience, tolerance) is replayed on the
recorded curves, and the test log-likelihood of the snapshot it would keep is
reported. Writes ``benchmarks/results/studies/early_stopping.{md,json}``.

    OMP_NUM_THREADS=1 python benchmarks/studies/early_stopping.py [--sets a,b]
"""

import argparse
import copy
import json
import pathlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sklearn_diffusion.training as training
from _density_suite import load_suite
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._base import BaseDiffusionEstimator
from sklearn_diffusion._model_space import complete_rows
from sklearn_diffusion.schedules import sigma

SETS = ("banana6", "ad_2_annthyroid", "ad_39_vertebral", "funnel10", "ad_7_Cardiotocography",
        "ad_38_thyroid", "ad_6_cardio", "gmm16", "demo", "wine", "ad_22_magic.gamma",
        "ad_14_glass")
OUT = pathlib.Path(__file__).resolve().parents[1] / "results" / "studies" / "early_stopping"
TEST_ROWS = 2000


def record(dataset, reference):
    """Snapshots and per-check criteria of one full-length fit."""
    snapshots, triples = [], []
    original = training.dsm_loss

    def spy(network, x0, t, z, columns=None, mask=None):
        value = original(network, x0, t, z, columns, mask)
        if not torch.is_grad_enabled():  # the validation check, on the weight average
            snapshots.append(copy.deepcopy(network.state_dict()))
            if not triples:
                triples.append((x0, t, z, mask))
            with torch.no_grad():
                eps = network(torch.nan_to_num(x0) * torch.exp(-t)[:, None]
                              + sigma(t)[:, None] * z, t)
                err = (eps - z) ** 2
                if mask is not None:
                    err = err * mask
                w = t / sigma(t) ** 2
                snapshots[-1] = (snapshots[-1], float((w[:, None] * err).sum(1).mean()))
        return value

    est = BootstrappedScoreEstimator(n_networks=1, n_iter_no_change=10**6, reference=reference,
                                     random_state=0)
    training.dsm_loss = spy
    try:
        start = time.perf_counter()
        est.fit(dataset.X_train)
        fit_s = time.perf_counter() - start
    finally:
        training.dsm_loss = original
    prep = est._prepare(dataset.X_train)
    Z_val = complete_rows(prep.Z_val)
    X_test = dataset.X_test[:TEST_ROWS]
    rows = []
    for step, (state, elbo) in zip(range(100, 100 * len(snapshots) + 1, 100), snapshots):
        est.model_.load_state_dict(state)
        BaseDiffusionEstimator._select_density(est, Z_val)
        rows.append({"step": step, "dsm": float(est.validation_loss_curve_[step // 100 - 1]),
                     "elbo": elbo, "ll": float(np.nanmax(est.smoothing_scores_)),
                     "test": float(est.score_samples(X_test).mean())})
    return rows, fit_s


def replay(values, lower_is_better, patience, tol):
    """Index of the check that early stopping on ``values`` keeps."""
    best, best_i, stale = np.inf, len(values) - 1, 0
    for i, v in enumerate(values):
        v = v if lower_is_better else -v
        if v < best - tol:
            best, best_i, stale = v, i, 0
        else:
            stale += 1
        if stale >= patience:
            break
    return best_i


RULES = {
    "dsm p5 tol1e-4 (today)": ("dsm", True, 5, 1e-4),
    "dsm p10 tol0": ("dsm", True, 10, 0.0),
    "elbo p5 tol0": ("elbo", True, 5, 0.0),
    "elbo p10 tol0": ("elbo", True, 10, 0.0),
    "ll p5 tol0": ("ll", False, 5, 0.0),
    "ll p10 tol0": ("ll", False, 10, 0.0),
    "final": None,
    "oracle": "oracle",
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--reference", default="mixture")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    torch.set_num_threads(1)
    out = pathlib.Path(args.out)
    results = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(
        ".json").exists() else {}
    for dataset in load_suite(args.sets.split(",")):
        key = f"{dataset.name}/{args.reference}"
        rows, fit_s = record(dataset, args.reference)
        results[key] = {"rows": rows, "fit_s": fit_s}
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        summary = summarize(rows)
        print(key, f"{fit_s:.0f}s", {k: f"{v[1]:.3f}@{v[0]}" for k, v in summary.items()},
              flush=True)
    write_md(out, results)


def summarize(rows):
    test = np.array([r["test"] for r in rows])
    picks = {}
    for name, rule in RULES.items():
        if rule is None:
            i = len(rows) - 1
        elif rule == "oracle":
            i = int(np.argmax(test))
        else:
            crit, lower, patience, tol = rule
            i = replay([r[crit] for r in rows], lower, patience, tol)
        picks[name] = (rows[i]["step"], test[i])
    return picks


def write_md(out, results):
    lines = ["# Early-stopping criteria (issue 22 study)", "",
             "One network, default settings otherwise, trained the full 4,000 steps; each rule "
             "replayed on the recorded checks. Cells: test LL of the kept snapshot (nats, "
             f"first {TEST_ROWS} test rows, smoothing chosen on the held-out rows) @ its step.",
             "", "| set | " + " | ".join(RULES) + " |", "|---" * (len(RULES) + 1) + "|"]
    for key, rec in results.items():
        picks = summarize(rec["rows"])
        lines.append(f"| {key} | " + " | ".join(f"{v:.3f} @{s}" for s, v in picks.values())
                     + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
