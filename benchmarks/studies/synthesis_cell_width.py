"""Study (issue 27 part 2): the part of each category cell that dequantization fills.

Record / ran at 2026-12-03 from commit b65c3d8 with a temporary
``CELL_WIDTH = float(os.environ["SKD_CELL_WIDTH"])`` in ``_tabular.py`` (and,
for the "linear cells" rows, the change of 8b9c0a6 that keeps category
coordinates out of the Gaussianizing map); not maintained: the width is now
the constant ``_tabular.CELL_WIDTH``. Rows in
``benchmarks/results/studies/synthesis_cell_width.json``, reading in
``synthesis_domain.md``. Run as
``SKD_CELL_WIDTH=0.5 CT=auto python synthesis_cell_width.py magic,breast_cancer``.
"""
import sys, os, time, warnings, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
import _synthesis_data as D
from _synthesis_metrics import all_metrics
from sklearn_diffusion import BootstrappedScoreEstimator
out=[]
for data in sys.argv[1].split(","):
    table, spec = D.load(data)
    for seed in [0, 1]:
        train, holdout = D.split(table, seed, D.CAP)
        m = BootstrappedScoreEstimator(random_state=seed, column_transform=os.environ.get("CT","auto"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t=time.time(); m.fit(D.to_frame(spec, train)); f=time.time()-t
            rows = D.from_frame(spec, m.sample(len(train), random_state=seed))
        r = all_metrics(spec, rows, train, holdout, seed=seed)
        r.update(data=data, seed=seed, width=os.environ.get("SKD_CELL_WIDTH","1.0"), fit_s=f, n_iter=m.n_iter_)
        out.append(r)
        print(data, seed, r["width"], {k: round(r[k],3) for k in ("c2st_hgb","c2st_lr","mle","trend","dcr_share")}, m.n_iter_, flush=True)
json.dump(out, open(f"width_{os.environ.get('SKD_CELL_WIDTH','1.0')}.json","w"))
