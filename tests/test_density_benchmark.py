"""benchmarks/density.py's several-seed mode (issue 22).

The seed-0 run of ``--seeds`` must be the single-seed run cell for cell, and
``--seeds --join`` must summarize per-seed parts as ``--seeds`` summarizes its
own runs. Fast peers on a set that ships with scikit-learn; results go to a
temporary folder, never to ``benchmarks/results``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _report  # noqa: E402
import density  # noqa: E402

ARGS = ["--datasets", "iris,gmm2d", "--methods", "gmm,kde", "--threads", "1"]
KEYS = ("test_ll", "train_ll", "gap_truth")


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(_report, "RESULTS", tmp_path)
    return tmp_path


def _cells(name):
    return {(c["dataset"], c["method"]): c for c in _report.load(name)["cells"]}


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        for field in KEYS:
            np.testing.assert_equal(a[key][field], b[key][field])


def test_seeds_reproduce_the_single_seed_run(results):
    density.main(ARGS + ["--seed", "0", "--out", "single"])
    density.main(ARGS + ["--seeds", "0,1", "--out", "multi"])
    _same(_cells("single"), _cells("multi_seed0"))
    # Another seed is another split: the seeds are not copies of each other.
    assert _cells("multi_seed1")["iris", "gmm"]["test_ll"] != _cells("single")["iris", "gmm"][
        "test_ll"]
    summary = _report.load("multi")
    lls = [_cells(f"multi_seed{s}")["iris", "kde"]["test_ll"] for s in (0, 1)]
    assert summary["mean"]["iris"]["kde"] == pytest.approx(np.mean(lls))
    assert summary["std"]["iris"]["kde"] == pytest.approx(np.std(lls, ddof=1))


def test_seeds_join_summarizes_parts_per_seed(results):
    density.main(["--datasets", "iris,gmm2d", "--methods", "gmm", "--threads", "1",
                  "--seeds", "0,1", "--out", "part_gmm"])
    density.main(["--datasets", "iris,gmm2d", "--methods", "kde", "--threads", "1",
                  "--seeds", "0,1", "--out", "part_kde"])
    density.main(ARGS + ["--seeds", "0,1", "--out", "whole"])
    density.main(["--seeds", "0,1", "--join", "part_gmm_seed{seed},part_kde_seed{seed}",
                  "--out", "joined"])
    for seed in (0, 1):
        _same(_cells(f"whole_seed{seed}"), _cells(f"joined_seed{seed}"))
    assert _report.load("joined")["mean"] == _report.load("whole")["mean"]
    # --datasets keeps only those sets of the parts.
    density.main(["--join", "whole_seed1", "--datasets", "iris", "--out", "iris_only"])
    assert {c["dataset"] for c in _report.load("iris_only")["cells"]} == {"iris"}
    # ... and --methods only those methods.
    density.main(["--join", "whole_seed1", "--methods", "kde", "--out", "kde_only"])
    assert {c["method"] for c in _report.load("kde_only")["cells"]} == {"kde"}
    _same({k: v for k, v in _cells("whole_seed1").items() if k[0] == "iris"}, _cells("iris_only"))
    with pytest.raises(SystemExit, match="no results"):
        density.main(["--seeds", "0,1", "--join", "absent_seed{seed}", "--out", "x"])
