"""Study (issue 27 part 2): category cells against one-hot columns on tables the design did not see.

Record / ran at 2026-12-03 (e97a6bf); not maintained. scikit-learn's iris
(150 rows, the species as a 3-category column) and digits (1,797 rows, 64
pixels and the digit as a 10-category column), split and scored as in
``benchmarks/synthesis.py`` (halves, 3 seeds). Methods: the default on the
DataFrame with the class as strings (cells), and on the one-hot table with
``sample_domain="real"`` (the baseline). Rows in
``benchmarks/results/studies/synthesis_heldout_tables.json``.
"""

import os
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import _report  # noqa: E402
import _synthesis_data as D  # noqa: E402
from _synthesis_metrics import all_metrics  # noqa: E402

from sklearn_diffusion import BootstrappedScoreEstimator  # noqa: E402

TABLES = {"iris": load_iris, "digits": load_digits}


def main():
    rows = []
    for name, loader in TABLES.items():
        d = loader()
        table, spec = D._with_target(d.data, d.target, [str(f) for f in d.feature_names],
                                     "class", [str(t) for t in d.target_names])
        for seed in (0, 1, 2):
            train, holdout = D.split(table, seed, D.CAP)
            for method in ("cells", "one-hot"):
                native = method == "cells"
                model = BootstrappedScoreEstimator(
                    random_state=seed, sample_domain="data" if native else "real")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    model.fit(D.to_frame(spec, train) if native else D.one_hot(spec, train))
                    fit_s = time.perf_counter() - start
                    syn = model.sample(len(train), random_state=seed)
                syn = D.from_frame(spec, syn) if native else D.decode(spec, np.asarray(syn))
                row = {"data": name, "seed": seed, "method": method, "fit_s": fit_s,
                       **all_metrics(spec, syn, train, holdout, seed=seed)}
                rows.append(row)
                print(name, seed, method, {k: round(row[k], 3) for k in
                                           ("c2st_hgb", "c2st_lr", "mle", "trend", "dcr_share")},
                      f"{fit_s:.1f}s", flush=True)
                _report.write("studies/synthesis_heldout_tables", {"rows": rows})


if __name__ == "__main__":
    main()
