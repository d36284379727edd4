"""Study (issue 22): which held-out log-likelihood should early stopping watch?

Follows ``early_stopping.py`` (which found that stopping on the held-out
log-likelihood at the best smoothing beats the denoising loss where there are
enough held-out rows), to price that criterion. The full smoothing search at
every check costs 7 ODE passes over the held-out rows; this records, for one
network trained the full ``max_iter`` (default reference), the held-out
log-likelihood of every snapshot at *every* smoothing candidate, and the test
log-likelihood at the best one. Rules replayed on the records:

* ``search``: the best over all candidates (what the full search gives);
* ``t_min``: the first candidate only (one pass per check);
* ``first``: the candidate best on the first check, kept fixed;
* ``track``: the best of the previous best candidate and its two neighbours
  (three passes per check, a local search that follows the optimum);
* ``dsm``: the denoising loss of today's rule.

Writes ``benchmarks/results/studies/early_stopping_smoothing.{md,json}``.

    OMP_NUM_THREADS=1 python benchmarks/studies/early_stopping_smoothing.py [--sets a,b]
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
from sklearn_diffusion._model_space import complete_rows
from sklearn_diffusion._selection import smoothing_candidates

SETS = ("banana6", "ad_2_annthyroid", "funnel10", "ad_7_Cardiotocography", "ad_38_thyroid",
        "ad_6_cardio", "gmm16", "demo", "ad_22_magic.gamma", "ad_35_SpamBase")
OUT = pathlib.Path(__file__).resolve().parents[1] / "results" / "studies" / "early_stopping_smoothing"
TEST_ROWS = 2000


def record(dataset, reference):
    snapshots = []
    original = training.dsm_loss

    def spy(network, x0, t, z, columns=None, mask=None):
        value = original(network, x0, t, z, columns, mask)
        if not torch.is_grad_enabled():  # the validation check, on the weight average
            snapshots.append(copy.deepcopy(network.state_dict()))
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
    Z_val = complete_rows(est._prepare(dataset.X_train).Z_val)
    X_test = dataset.X_test[:TEST_ROWS]
    candidates = smoothing_candidates(est.t_min, est._max_smoothing, est._n_smoothing_candidates)
    device = torch.device("cpu")
    rows = []
    for i, state in enumerate(snapshots):
        est.model_.load_state_dict(state)
        start = time.perf_counter()
        scores = [float(np.mean(est._model_log_density(Z_val, est.model_, s, device)))
                  for s in candidates]
        pass_s = (time.perf_counter() - start) / len(candidates)
        est.smoothing_ = float(candidates[int(np.argmax(scores))])
        rows.append({"step": 100 * (i + 1), "dsm": float(est.validation_loss_curve_[i]),
                     "scores": scores, "pass_s": pass_s,
                     "test": float(est.score_samples(X_test).mean())})
    return rows, fit_s


def replay(values, patience=5, tol=0.0):
    """Index of the check kept by early stopping that maximizes ``values``."""
    best, best_i, stale = -np.inf, len(values) - 1, 0
    for i, v in enumerate(values):
        if v > best + tol:
            best, best_i, stale = v, i, 0
        else:
            stale += 1
        if stale >= patience:
            break
    return best_i


def criteria(rows):
    S = np.array([r["scores"] for r in rows])
    track, j = [], int(np.argmax(S[0]))
    for s in S:
        window = [k for k in (j - 1, j, j + 1) if 0 <= k < len(s)]
        j = max(window, key=lambda k: s[k])
        track.append(s[j])
    first = int(np.argmax(S[0]))
    return {
        "dsm p5 tol1e-4 (today)": replay([-r["dsm"] for r in rows], 5, 1e-4),
        "search p5": replay(S.max(1)),
        "t_min p5": replay(S[:, 0]),
        "first p5": replay(S[:, first]),
        "track p5": replay(track),
        "track p10": replay(track, 10),
        "final": len(rows) - 1,
        "oracle": int(np.argmax([r["test"] for r in rows])),
    }


def write_md(out, results):
    names = list(criteria(next(iter(results.values()))["rows"]))
    lines = ["# Which held-out log-likelihood early stopping should watch (issue 22 study)", "",
             "One network (reference as in the key), trained the full 4,000 steps, snapshots "
             "every 100 steps; each rule replayed on the records. Cells: test LL (nats, first "
             f"{TEST_ROWS} test rows, smoothing by the full search on the held-out rows) of the "
             "kept snapshot @ its step. `pass s`: seconds of one ODE pass over the held-out "
             "rows, `100 steps s`: seconds of 100 training steps (fit time / 4,000 x 100, "
             "including the final search).", "",
             "| set | " + " | ".join(names) + " | pass s | 100 steps s |",
             "|---" * (len(names) + 3) + "|"]
    for key, rec in results.items():
        rows = rec["rows"]
        picks = criteria(rows)
        cells = [f"{rows[i]['test']:.3f} @{rows[i]['step']}" for i in picks.values()]
        lines.append(f"| {key} | " + " | ".join(cells)
                     + f" | {np.median([r['pass_s'] for r in rows]):.3f}"
                     + f" | {rec['fit_s'] / len(rows):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--reference", default="mixture")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    torch.set_num_threads(1)
    out = pathlib.Path(args.out)
    path = out.with_suffix(".json")
    for dataset in load_suite(args.sets.split(",")):
        key = f"{dataset.name}/{args.reference}"
        rows, fit_s = record(dataset, args.reference)
        results = json.loads(path.read_text()) if path.exists() else {}
        results[key] = {"rows": rows, "fit_s": fit_s}
        path.write_text(json.dumps(results, indent=1))
        picks = criteria(rows)
        print(key, f"{fit_s:.0f}s", {k: f"{rows[i]['test']:.3f}@{rows[i]['step']}"
                                     for k, i in picks.items()}, flush=True)
    write_md(out, json.loads(path.read_text()))


if __name__ == "__main__":
    main()
