"""Issue 22: the suite with ``stopping_metric`` "auto" (likelihood) against "loss", one table.

Reads the ``benchmarks/density.py`` runs named on the command line (each
``--out`` name holding a ``diffusion`` and/or ``diffusion:stopping_metric=loss``
cell per set) and writes ``benchmarks/results/stopping_metric.md``: test LL
and fit seconds per set and column, the per-set LL change against the loss
column of the same run, and the fit-time ratio over the suite.

    python benchmarks/studies/stopping_metric_report.py RUN:COLUMN=LABEL ...

e.g. ``density_stopping_shared:diffusion=shared``.
"""

import json
import pathlib
import sys

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"


def main(specs):
    columns, base = {}, None
    for spec in specs:
        run, rest = spec.split(":", 1)
        method, label = rest.rsplit("=", 1)
        cells = json.loads((RESULTS / f"{run}.json").read_text())["cells"]
        columns[label] = {c["dataset"]: c for c in cells if c["method"] == method}
        base = base or label
    sets = list(columns[base])
    lines = ["# Early stopping on the held-out likelihood against the denoising loss (issue 22)", "",
             "Runs: " + ", ".join(f"`{s}`" for s in specs) + f". LL change against `{base}`; "
             "fit s as measured in each run.", "",
             "| data set | " + " | ".join(f"{k} LL" for k in columns) + " | "
             + " | ".join(f"{k} fit s" for k in columns) + " | "
             + " | ".join(f"{k} - {base}" for k in columns if k != base) + " |",
             "|---" * (1 + 2 * len(columns) + len(columns) - 1) + "|"]
    for name in sets:
        lls = [columns[k][name]["test_ll"] for k in columns]
        fits = [columns[k][name]["fit_s"] for k in columns]
        deltas = [columns[k][name]["test_ll"] - columns[base][name]["test_ll"]
                  for k in columns if k != base]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in lls) + " | "
                     + " | ".join(f"{v:.1f}" for v in fits) + " | "
                     + " | ".join(f"{v:+.3f}" for v in deltas) + " |")
    lines += ["", "| column | total fit s | ratio to " + base + " | sets better by > 0.05 | "
              "worse by > 0.05 | median change | worst change |", "|---|---|---|---|---|---|---|"]
    total = sum(columns[base][n]["fit_s"] for n in sets)
    for k in columns:
        t = sum(columns[k][n]["fit_s"] for n in sets)
        d = np.array([columns[k][n]["test_ll"] - columns[base][n]["test_ll"] for n in sets])
        lines.append(f"| {k} | {t:.0f} | {t / total:.2f} | {(d > 0.05).sum()} | "
                     f"{(d < -0.05).sum()} | {np.median(d):+.3f} | {d.min():+.3f} |")
    out = RESULTS / "stopping_metric.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
