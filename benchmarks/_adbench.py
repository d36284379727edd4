"""The ADBench data: where it lives, the seeds and the semi-supervised split.

The ``.npz`` files (``X``, ``y`` with 1 for an anomaly) live in
``../shared/data/adbench`` beside the repository; a clone does not need them
for the tests. ``adbench.py``, ``heldout_check.py``, ``impute.py`` and the
density suite (``_density_suite.py``) read them from here.
"""

from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
#: ADBench's ResNet-18 image and BERT text embeddings (see that folder's README).
EMBEDDINGS = DATA.parent / "adbench_embeddings"
SEEDS = (0, 1, 2)
TRAIN_CAP = 10_000


def paths(folder=DATA):
    """The ``.npz`` files of ``folder``, in ADBench's numbering (4 before 12), else by name."""
    return sorted(Path(folder).glob("*.npz"), key=set_order)


def set_order(path_or_stem):
    """Sort key of a data set: its ADBench number when the name starts with one."""
    stem = Path(path_or_stem).stem if isinstance(path_or_stem, Path) else str(path_or_stem)
    head = stem.split("_")[0]
    return (int(head), stem) if head.isdigit() else (10**9, stem)


def load(stem, folder=DATA):
    """``X`` (float64) and ``y`` (int, 1 = anomaly) of one data set, by file stem."""
    data = np.load(Path(folder) / f"{stem}.npz")
    return data["X"].astype(np.float64), data["y"].astype(int)


def split(X, y, seed):
    """Train rows (normal only) and test rows/labels of one seed, standardized.

    The normal rows are permuted with ``default_rng(seed)`` and halved; the
    first half (at most :data:`TRAIN_CAP` rows) is the training set, the
    second half and every anomaly the test set; a ``StandardScaler`` fitted
    on the training rows maps both.
    """
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(y == 0))
    half = len(normal) // 2
    train = normal[: min(half, TRAIN_CAP)]
    test = np.concatenate([normal[half:], np.flatnonzero(y == 1)])
    scaler = StandardScaler().fit(X[train])
    return scaler.transform(X[train]), scaler.transform(X[test]), y[test]
