"""Build the per-seed parts of ``results/density4`` (issue 22, 2026-12-08).

The peers' cells and the previous default (renamed ``diffusion:before``)
come from ``results/density3_seed<S>.json``; the new default's cells from
``results/studies/ref3_seed<S>.json``, run as
``diffusion:reference='auto':n_networks=3`` (with ``objective="auto"`` already
the default) and, for seed 2's last sets, ``ref3x_seed2.json`` (a second
process), with the cells of ``results/studies/ref3w_seed<S>.json`` in place of
those fitted before ``objective="auto"`` existed and of
``results/studies/ref3s_seed<S>.json`` for the nine sets with fewer than 20
held-out rows (refitted after ``reference="auto"`` trains only mixture networks
there). Then::

    python benchmarks/density.py --seeds 0,1,2 --join 'density4_seed{seed}' --out density4
"""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
CANDIDATE = "diffusion:reference='auto':n_networks=3"
PEERS = ("kde", "gmm", "maf", "nsf")

for seed in (0, 1, 2):
    base = json.loads((RESULTS / f"density3_seed{seed}.json").read_text())
    new = json.loads((RESULTS / "studies" / f"ref3_seed{seed}.json").read_text())
    cells = {c["dataset"]: c for c in new["cells"]}
    # ref3x: the same label run by a second process on the sets left at the end.
    # ref3s: the sets with fewer than 20 held-out rows, refitted after the
    # rule that trains only mixture networks there.
    for extra in (f"ref3x_seed{seed}", f"ref3w_seed{seed}", f"ref3s_seed{seed}"):
        path = RESULTS / "studies" / f"{extra}.json"
        if path.exists():
            cells.update({c["dataset"]: c for c in json.loads(path.read_text())["cells"]})
    out = []
    for c in base["cells"]:
        if c["method"] == "diffusion":
            out.append({**c, "method": "diffusion:before"})
        elif c["method"] in PEERS:
            out.append(c)
    out += [{**c, "method": "diffusion"} for c in cells.values()]
    base["cells"] = out
    base["methods"] = ["diffusion", "kde", "gmm", "maf", "nsf", "diffusion:before"]
    base["date"] = new["date"]
    (RESULTS / f"density4_seed{seed}.json").write_text(json.dumps(base, indent=1))
    print(seed, len(out), "cells")
