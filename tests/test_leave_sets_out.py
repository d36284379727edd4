"""The leave-sets-out selection of benchmarks/_leave_sets_out.py (issue 25).

It picks the detector's default, so its one promise is tested directly: a
set is never scored by a choice that saw that set.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _leave_sets_out import leave_sets_out, set_folds  # noqa: E402


def _pool(n_sets=8, seed=0):
    """Sets where candidate ``peek_<s>`` is perfect on set ``s`` alone, ``steady`` fair on all."""
    rng = np.random.default_rng(seed)
    names = [f"set{i}" for i in range(n_sets)]
    table = {}
    for s in names:
        table[s] = {f"peek_{t}": (1.0 if t == s else 0.5) for t in names}
        table[s]["steady"] = 0.7 + 0.01 * rng.standard_normal()
    return names, table


def test_a_candidate_best_only_on_the_scored_set_is_never_chosen_for_it():
    names, table = _pool()
    candidates = [f"peek_{s}" for s in names] + ["steady"]
    result = leave_sets_out(table, candidates, [[s] for s in names])
    # Choosing on the scored set itself would give peek_<s> and a mean of 1.0.
    assert all(choice == "steady" for choice in result["choice"].values())
    assert result["mean"] == pytest.approx(np.mean([table[s]["steady"] for s in names]))
    assert result["mean"] < 0.75


@pytest.mark.parametrize("n_folds", [2, 3, 8])
def test_a_fold_s_choice_does_not_depend_on_its_own_scores(n_folds):
    names, table = _pool(seed=1)
    candidates = [f"peek_{s}" for s in names] + ["steady"]
    folds = set_folds(names, n_folds, seed=3)
    before = leave_sets_out(table, candidates, folds)["choice"]
    rng = np.random.default_rng(2)
    for fold in folds:
        for trial in range(3):
            changed = {s: dict(row) for s, row in table.items()}
            favourite = candidates[trial]
            for s in fold:  # any scores at all on the held-out fold, one candidate perfect
                changed[s] = {c: float(rng.uniform(0, 0.1)) for c in candidates}
                changed[s][favourite] = 1.0
            after = leave_sets_out(changed, candidates, folds)["choice"]
            assert all(after[s] == before[s] for s in fold)


def test_the_scores_are_the_chosen_candidate_s_on_each_set():
    names, table = _pool(seed=4)
    candidates = [f"peek_{s}" for s in names] + ["steady"]
    result = leave_sets_out(table, candidates, set_folds(names, 4, seed=0))
    for s in names:
        assert result["score"][s] == table[s][result["choice"][s]]


def test_folds_partition_the_sets_and_bad_folds_are_refused():
    names = [f"s{i}" for i in range(10)]
    folds = set_folds(names, 4, seed=0)
    assert sorted(s for f in folds for s in f) == sorted(names)
    assert sorted(len(f) for f in folds) == [2, 2, 3, 3]
    assert set_folds(names, 4, seed=0) == folds
    with pytest.raises(ValueError, match="n_folds"):
        set_folds(names, 1)
    table = {s: {"a": 0.5} for s in names}
    with pytest.raises(ValueError, match="partition"):
        leave_sets_out(table, ["a"], [names[:5], names[4:]])
