"""Study (issue 22): the reference mixture or N(0, I), chosen on held-out rows.

For each data set: the default (two networks, both correcting the BIC
mixture); one network on the mixture (``m``); one on N(0, I) (``n``); and
their average ``m+n`` (the mean of two score fields is still a normalized
density). ``chosen`` is the one of ``m``, ``n`` and ``m+n`` with the best
held-out log-likelihood on the early-stopping rows (the rows that choose the
smoothing), so it costs the default's two fits plus three smoothing searches.
Cells are test log-likelihoods (nats). Writes
``benchmarks/results/studies/reference_choice.{md,json}``.

    OMP_NUM_THREADS=1 python benchmarks/studies/reference_choice.py [--sets a,b]
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

from _density_suite import load_suite
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._base import BaseDiffusionEstimator
from sklearn_diffusion._model_space import complete_rows
from sklearn_diffusion.networks import ScoreEnsemble

SETS = ("banana6", "ad_2_annthyroid", "ad_39_vertebral", "funnel10", "ad_7_Cardiotocography",
        "ad_38_thyroid", "ad_6_cardio", "gmm16", "demo", "wine", "ad_22_magic.gamma",
        "ad_14_glass", "ad_32_shuttle", "ad_28_pendigits", "student8", "uniform4", "gmm2d",
        "ad_44_Wilt", "ad_4_breastw", "iris")
OUT = pathlib.Path(__file__).resolve().parents[1] / "results" / "studies" / "reference_choice"


def held_out(est):
    scores = est.smoothing_scores_
    return float(np.nanmax(scores)) if np.isfinite(scores).any() else np.nan


def run(dataset):
    row, start = {}, time.perf_counter()
    default = BootstrappedScoreEstimator(random_state=0).fit(dataset.X_train)
    row["default_s"] = time.perf_counter() - start
    row["default"] = float(default.score_samples(dataset.X_test).mean())
    fits = {}
    for ref in ("mixture", "normal"):
        start = time.perf_counter()
        fits[ref] = BootstrappedScoreEstimator(n_networks=1, reference=ref,
                                               random_state=0).fit(dataset.X_train)
        row[f"{ref}_s"] = time.perf_counter() - start
    both = copy.deepcopy(fits["mixture"])
    both.model_ = ScoreEnsemble([fits["mixture"].model_, fits["normal"].model_]).eval()
    Z_val = complete_rows(both._prepare(dataset.X_train).Z_val)
    BaseDiffusionEstimator._select_density(both, Z_val)
    candidates = {"m": fits["mixture"], "n": fits["normal"], "m+n": both}
    for name, est in candidates.items():
        row[name] = float(est.score_samples(dataset.X_test).mean())
        row[f"{name}_val"] = held_out(est)
    vals = {k: row[f"{k}_val"] for k in candidates}
    row["chosen"] = (max(vals, key=lambda k: vals[k]) if all(np.isfinite(list(vals.values())))
                     else "m+n")
    row["chosen_ll"] = row[row["chosen"]]
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sets", default=",".join(SETS))
    args = p.parse_args()
    torch.set_num_threads(1)
    path = OUT.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {}
    for dataset in load_suite(args.sets.split(",")):
        results[dataset.name] = run(dataset)
        path.write_text(json.dumps(results, indent=1))
        r = results[dataset.name]
        print(dataset.name, {k: (round(v, 3) if isinstance(v, float) else v)
                             for k, v in r.items() if not k.endswith("_val")}, flush=True)
    lines = ["# Reference mixture or N(0, I), chosen on held-out rows (issue 22 study)", "",
             "Test log-likelihood (nats). default: 2 networks on the mixture; m: 1 network on "
             "the mixture; n: 1 on N(0, I); m+n: their average; chosen: the best of m, n, m+n "
             "by held-out log-likelihood on the early-stopping rows (m+n where they are too "
             "few to choose).", "",
             "| set | default | m | n | m+n | chosen | chosen - default |", "|---" * 7 + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['default']:.3f} | {r['m']:.3f} | {r['n']:.3f} | "
                     f"{r['m+n']:.3f} | {r['chosen']} {r['chosen_ll']:.3f} | "
                     f"{r['chosen_ll'] - r['default']:+.3f} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
