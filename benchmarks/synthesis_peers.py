"""Sample quality: the SDV and ForestDiffusion peers of ``synthesis.py``, in their own environment.

SDV 2.0 (and its rdt, copulas and sdmetrics) needs pandas < 3 and the main
environment has pandas 3, so these peers run in a venv of their own that
sees the system torch, from ``benchmarks/requirements-synthesis.txt``::

    python -m venv --system-site-packages /tmp/synthesis-venv
    /tmp/synthesis-venv/bin/pip install -r benchmarks/requirements-synthesis.txt
    OMP_NUM_THREADS=1 /tmp/synthesis-venv/bin/python benchmarks/synthesis_peers.py
    OMP_NUM_THREADS=1 python benchmarks/synthesis.py

Same tables, splits and metrics as ``synthesis.py`` (``_synthesis_data``,
``_synthesis_metrics``: numpy, scipy and scikit-learn only, the same
versions in both environments). Peers:

* ``GaussianCopula``, ``CTGAN``, ``TVAE``: SDV's single-table synthesizers
  on a DataFrame whose categorical columns are strings (declared
  ``categorical`` in the metadata, the others ``numerical``), SDV defaults
  (``enforce_min_max_values`` and ``enforce_rounding`` on); CTGAN and TVAE
  with ``--epochs`` (SDV's default is 300);
* ``ForestDiffusion``: ``ForestDiffusionModel`` (flow) on the coded table
  with the categorical columns as ``cat_indexes`` (3 levels or more) or
  ``bin_indexes``, no ``label_y`` (the target is a column like the others,
  as for every method), ``n_t=25, duplicate_K=20`` (the reduced setting),
  ``n_jobs=1`` and one xgboost thread;
* ``ForestDiffusion (defaults)``: ``n_t=50, duplicate_K=100``, only with
  ``--fd-defaults`` on the data sets it names (seed 0).

Writes ``results/synthesis_peers.json`` (``synthesis_peers_quick.json`` with
``--quick``), whose rows ``synthesis.py`` merges into its tables; rows are
written after every cell, and ``--merge`` keys them by (data set, seed,
method).
"""

import time
import warnings
from importlib.metadata import version

import _cli
import _report
import _synthesis_data as D
import numpy as np

PEERS = ("GaussianCopula", "CTGAN", "TVAE", "ForestDiffusion")
SEEDS = (0, 1, 2)


def sdv_peer(kind, epochs):
    """``fit_sample`` of one SDV synthesizer."""

    def fit_sample(spec, train, n, seed):
        import torch
        from sdv.metadata import Metadata
        from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

        df = D.to_frame(spec, train)
        metadata = Metadata.detect_from_dataframes({"t": df}, infer_keys=None)
        for j, col in enumerate(spec.columns):
            metadata.update_column(col, sdtype="categorical" if spec.is_categorical(j)
                                   else "numerical", table_name="t")
        np.random.seed(seed)
        torch.manual_seed(seed)
        if kind == "GaussianCopula":
            model, note = GaussianCopulaSynthesizer(metadata), "defaults"
        else:
            cls = CTGANSynthesizer if kind == "CTGAN" else TVAESynthesizer
            model, note = cls(metadata, epochs=epochs, enable_gpu=False), f"{epochs} epochs"
        start = time.perf_counter()
        model.fit({"t": df})  # SDV 2.0 takes {table name: DataFrame}
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = model.sample(num_rows=n)
        rows = rows["t"] if isinstance(rows, dict) else rows
        sample_s = time.perf_counter() - start
        return D.from_frame(spec, rows), fit_s, sample_s, note

    return fit_sample


def forest_diffusion(n_t, duplicate_K):
    """``fit_sample`` of ForestDiffusion (flow) with the given setting."""

    def fit_sample(spec, train, n, seed):
        from ForestDiffusion import ForestDiffusionModel

        cat = [j for j, k in spec.categories.items() if k >= 3]
        binary = [j for j, k in spec.categories.items() if k == 2]
        start = time.perf_counter()
        model = ForestDiffusionModel(train, n_t=n_t, duplicate_K=duplicate_K,
                                     diffusion_type="flow", cat_indexes=cat, bin_indexes=binary,
                                     n_jobs=1, seed=seed, nthread=1)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = model.generate(batch_size=n)
        sample_s = time.perf_counter() - start
        return rows, fit_s, sample_s, f"flow, n_t={n_t}, duplicate_K={duplicate_K}"

    return fit_sample


def main(argv=None):
    parser = _cli.parser(__doc__, "synthesis_peers", threads=1,
                         quick="wine and magic, seed 0, CTGAN/TVAE at 100 epochs")
    parser.add_argument("--data", nargs="+", default=list(D.NAMES), choices=D.NAMES)
    parser.add_argument("--methods", nargs="+", default=list(PEERS), choices=PEERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--cap", type=int, default=D.CAP,
                        help=f"rows per half (training, holdout), default {D.CAP}")
    parser.add_argument("--epochs", type=int, default=300, help="CTGAN and TVAE epochs")
    parser.add_argument("--fd-defaults", nargs="*", default=[], metavar="DATA",
                        help="also ForestDiffusion with its defaults on these sets (seed 0)")
    args = _cli.parse(parser, argv)
    if args.quick:
        args.data, args.seeds, args.epochs = ["wine", "magic"], [0], 100
    methods = {"GaussianCopula": sdv_peer("GaussianCopula", args.epochs),
               "CTGAN": sdv_peer("CTGAN", args.epochs), "TVAE": sdv_peer("TVAE", args.epochs),
               "ForestDiffusion": forest_diffusion(25, 20)}
    plan = [(data, seed, m, methods[m]) for data in args.data for seed in args.seeds
            for m in args.methods]
    plan += [(data, 0, "ForestDiffusion (defaults)", forest_diffusion(50, 100))
             for data in args.fd_defaults]
    rows, begin = [], time.perf_counter()
    meta = {"cap": args.cap, "epochs": args.epochs, "quick": args.quick,
            "versions": {p: version(p) for p in ("sdv", "ctgan", "forestdiffusion", "xgboost",
                                                 "pandas", "scikit-learn", "numpy")}}
    with _cli.threads(args.threads):
        for data, seed, method, fit_sample in plan:
            table, spec = D.load(data)
            train, holdout = D.split(table, seed, args.cap)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row = D.cell(spec, data, seed, method, train, holdout, fit_sample)
            rows.append(row)
            print(f"[{time.perf_counter() - begin:6.0f}s] {data} seed {seed} {method}: "
                  + (row.get("error") or f"fit {row['fit_s']:.1f}s c2st {row['c2st_hgb']:.3f} "
                     f"mle {row['mle']:.3f} dcr {row['dcr_share']:.3f}"), flush=True)
            out = _report.merge_rows(args.out, rows, ("data", "seed", "method")) \
                if args.merge else rows
            _report.write(args.out, {"rows": out, **meta})


if __name__ == "__main__":
    main()
