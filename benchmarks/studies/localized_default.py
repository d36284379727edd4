"""Study (issue 24, part 1): which LocalizedDiffusionEstimator settings should be the default?

Fits each variant (a JSON dict of parameters) on 144-D fields with an exact
log-density and reports the held-out gap to the truth per coordinate, the
held-out log-likelihood the estimator itself sees on its early-stopping rows
(``max(smoothing_scores_)``, model space, per coordinate), steps and fit
seconds. Fields: those of ``lattice_fields.py`` plus ``tukey lattice``
(Tukey h = 0.2 of the lattice field, power tails) and ``lattice c3`` (the
lattice with coupling 3: longer correlations, a field of the same family not
used to choose anything).

    OMP_NUM_THREADS=2 python benchmarks/studies/localized_default.py \
        --variants '{"shared": true, "radius": 2}' '{"shared": true, "radius": 3}'

Writes ``benchmarks/results/studies/<out>.{md,json}`` (rows merged by field,
n_train and variant).
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from _fields import (field_log_density, field_precision, field_sample, sinh_field,
                     sinh_field_log_density, tukey_h_field, tukey_h_field_log_density)
from _report import RESULTS, markdown
from sklearn_diffusion import LocalizedDiffusionEstimator

D = 144
FIELDS = {  # name: (graph, coupling, locality, transform)
    "lattice": ("lattice", 1.0, (12, 12), None),
    "ring": ("ring", 1.0, "ring", None),
    "sinh lattice": ("lattice", 1.0, (12, 12), "sinh"),
    "tukey lattice": ("lattice", 1.0, (12, 12), "tukey"),
    "lattice c3": ("lattice", 3.0, (12, 12), None),
}


def load(name, n_train, n_test=2000):
    graph, coupling, locality, transform = FIELDS[name]
    P = field_precision(graph, D, coupling)
    X, cov = field_sample(P, n_train, 0)
    T, _ = field_sample(P, n_test, 1)
    if transform == "sinh":
        return sinh_field(X, cov, 1.0), sinh_field(T, cov, 1.0), locality, \
            lambda Y: sinh_field_log_density(P, cov, 1.0, Y)
    if transform == "tukey":
        return tukey_h_field(X, cov, 0.2), tukey_h_field(T, cov, 0.2), locality, \
            lambda Y: tukey_h_field_log_density(P, cov, 0.2, Y)
    return X, T, locality, lambda Y: field_log_density(P, Y)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", nargs="*", default=list(FIELDS))
    p.add_argument("--variants", nargs="*", default=['{"shared": true, "radius": 2}'])
    p.add_argument("--n-train", type=int, nargs="*", default=[2000])
    p.add_argument("--out", default="localized_default")
    args = p.parse_args()
    out = RESULTS / "studies" / f"{args.out}.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for n in args.n_train:
        for field in args.fields:
            X, T, locality, log_density = load(field, n)
            truth = float(log_density(T).mean())
            for text in args.variants:
                params = json.loads(text)
                if isinstance(params.get("radius"), list):
                    params["radius"] = tuple(params["radius"])
                est = LocalizedDiffusionEstimator(locality=locality, random_state=0, **params)
                start = time.perf_counter()
                est.fit(X)
                fit_s = time.perf_counter() - start
                test = float(est.score_samples(T).mean())
                row = {"field": field, "n_train": n, "variant": text,
                       "gap_per_coord": (truth - test) / D,
                       "val_ll_per_coord": float(np.nanmax(est.smoothing_scores_)) / D,
                       "n_iter": int(est.n_iter_), "fit_s": fit_s,
                       "chosen": {k: getattr(est, k + "_", None) for k in ("radius", "shared")
                                  if hasattr(est, k + "_")},
                       "smoothing": float(est.smoothing_), "torch_threads": torch.get_num_threads()}
                rows = [r for r in rows if (r["field"], r["n_train"], r["variant"])
                        != (field, n, text)] + [row]
                print(markdown([row], list(row)[:7]).splitlines()[-1], row["chosen"], flush=True)
                out.write_text(json.dumps({"rows": rows}, indent=1, default=str))
    cols = ["field", "n_train", "variant", "gap_per_coord", "val_ll_per_coord", "n_iter", "fit_s"]
    (RESULTS / "studies" / f"{args.out}.md").write_text(
        f"# {__doc__.splitlines()[0]}\n\n{markdown(rows, cols)}\n")


if __name__ == "__main__":
    main()
