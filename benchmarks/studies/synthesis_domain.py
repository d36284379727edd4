"""Study (issue 27 part 2): how ``sample_domain`` and native categories move sample quality.

Record / ran at: see ``benchmarks/results/studies/synthesis_domain.md``; not maintained.
Runs the default estimator on the tables of ``synthesis.py`` with the
categorical columns native (a DataFrame) or one-hot, and ``sample_domain``
"data" (clip and round), "real" (raw draws) or "reject" (rows outside the
training box drawn again, up to 4 rounds, then clipped), scored with the
metrics of ``_synthesis_metrics``.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _report  # noqa: E402
import _synthesis_data as D  # noqa: E402
from _synthesis_metrics import all_metrics  # noqa: E402

from sklearn_diffusion import BootstrappedScoreEstimator  # noqa: E402


def reject_sample(model, n, seed, spec, train_rows):
    """Rows inside the training box: out-of-box rows drawn again (4 rounds), then clipped."""
    model.set_params(sample_domain="real")
    low, high = np.nanmin(train_rows, 0), np.nanmax(train_rows, 0)
    rows = model.sample(n, random_state=seed)
    for k in range(4):
        values = D.from_frame(spec, rows) if hasattr(rows, "columns") else rows
        bad = ((values < low) | (values > high)).any(axis=1)
        if not bad.any():
            break
        extra = model.sample(int(bad.sum()), random_state=seed + 1000 * (k + 1))
        if hasattr(rows, "columns"):
            rows = rows.copy()
            rows.iloc[np.flatnonzero(bad)] = extra.to_numpy()
        else:
            rows[bad] = extra
    model.set_params(sample_domain="data")
    return rows


def run(data, seed, native, domain):
    table, spec = D.load(data)
    train, holdout = D.split(table, seed, D.CAP)
    model = BootstrappedScoreEstimator(random_state=seed,
                                       sample_domain="real" if domain == "real" else "data")
    X = D.to_frame(spec, train) if native else D.one_hot(spec, train)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        fit_s = time.perf_counter() - start
        if domain == "reject":  # native tables only: the box of the table's columns
            rows = reject_sample(model, len(train), seed, spec, train)
        else:
            rows = model.sample(len(train), random_state=seed)
    rows = D.from_frame(spec, rows) if native else D.decode(spec, np.asarray(rows, float))
    out = {"data": data, "seed": seed, "native": native, "domain": domain, "fit_s": fit_s,
           "out_of_range": D.out_of_range(spec, rows, train)}
    out.update(all_metrics(spec, rows, train, holdout, seed=seed))
    return out


def main():
    saved = _report.load("studies/synthesis_domain")
    rows = saved["rows"] if saved and "--append" in sys.argv else []
    cases = [(True, "data"), (True, "real"), (True, "reject"), (False, "real")]
    for data in sys.argv[1].split(","):
        for seed in (0, 1, 2):
            for native, domain in cases:
                row = run(data, seed, native, domain)
                rows.append(row)
                print(data, seed, native, domain, {k: round(v, 3) for k, v in row.items()
                                                  if k in ("c2st_hgb", "c2st_lr", "mle", "shape",
                                                           "trend", "dcr_share")}, flush=True)
                _report.write("studies/synthesis_domain", {"rows": rows})


if __name__ == "__main__":
    main()
