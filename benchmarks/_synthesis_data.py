"""The tables of ``synthesis.py`` and ``synthesis_peers.py``: loading, split, encodings.

Each table is a float array whose categorical columns hold integer codes,
with a :class:`_synthesis_metrics.Spec`; nothing is downloaded:

* ``wine``: scikit-learn's ``load_wine`` (178 rows, 13 numeric columns and
  the 3-class cultivar as a categorical column, the target);
* ``breast_cancer``: ``load_breast_cancer`` (569 rows, 30 numeric, the
  binary diagnosis as target);
* ``penguins``: the Palmer penguins (``pip install palmerpenguins``, the CSV
  ships inside the package; 333 complete rows of 344): species (target),
  island, sex and year categorical, 4 numeric measurements;
* ``magic``: ADBench's ``22_magic.gamma`` (UCI MAGIC gamma telescope, 19,020
  rows, 10 numeric columns, gamma/hadron label as target), capped by
  ``split``.

:func:`split` permutes the rows with ``default_rng(seed)`` and halves them
into training and holdout rows of equal size (one row dropped when the count
is odd; each half capped at ``cap`` rows), so the ideal DCR share is 0.5.

Continuous-only methods (the package's estimator, KDE, GMM, NSF) see the
categorical columns one-hot (:func:`one_hot`) and their samples are decoded
by the argmax of each block (:func:`decode`).
"""

from pathlib import Path

import numpy as np
from _synthesis_metrics import Spec
from sklearn.datasets import load_breast_cancer, load_wine

ADBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
NAMES = ("wine", "breast_cancer", "penguins", "magic")
CAP = 1000  # rows per half (training, holdout): magic is the only set it cuts


def _with_target(X, y, names, target_name, labels):
    table = np.column_stack([X, y]).astype(np.float64)
    j = table.shape[1] - 1
    spec = Spec(list(names) + [target_name], {j: len(labels)}, j, "classification",
                {j: list(labels)})
    return table, spec


def load(name):
    """``(table, spec)`` of one data set (all its rows, before the split)."""
    if name == "wine":
        d = load_wine()
        return _with_target(d.data, d.target, d.feature_names, "class", d.target_names)
    if name == "breast_cancer":
        d = load_breast_cancer()
        return _with_target(d.data, d.target, d.feature_names, "diagnosis", d.target_names)
    if name == "magic":
        d = np.load(ADBENCH / "22_magic.gamma.npz")
        return _with_target(d["X"], d["y"], [f"x{i}" for i in range(d["X"].shape[1])],
                            "hadron", ["gamma", "hadron"])
    if name == "penguins":
        from palmerpenguins import load_penguins

        df = load_penguins().dropna().reset_index(drop=True)
        columns, categories, labels, parts = [], {}, {}, []
        for j, col in enumerate(["species", "island", "bill_length_mm", "bill_depth_mm",
                                 "flipper_length_mm", "body_mass_g", "sex", "year"]):
            values = df[col].to_numpy()
            if col in ("species", "island", "sex", "year"):
                levels = sorted(set(values.tolist()))
                parts.append(np.array([levels.index(v) for v in values], dtype=np.float64))
                categories[j], labels[j] = len(levels), [str(v) for v in levels]
            else:
                parts.append(values.astype(np.float64))
            columns.append(col)
        return np.column_stack(parts), Spec(columns, categories, 0, "classification", labels)
    raise ValueError(f"unknown data set {name!r}")


def split(table, seed, cap):
    """Training and holdout rows of one seed: equal halves, each at most ``cap`` rows."""
    order = np.random.default_rng(seed).permutation(len(table))
    half = min(len(table) // 2, cap)
    return table[order[:half]], table[order[half:2 * half]]


def one_hot(spec, X):
    """The table with each categorical column replaced by its one-hot block (0/1 floats)."""
    parts = []
    for j in range(len(spec.columns)):
        if spec.is_categorical(j):
            k = spec.categories[j]
            parts.append(np.eye(k)[np.clip(np.rint(X[:, j]), 0, k - 1).astype(int)])
        else:
            parts.append(X[:, j:j + 1])
    return np.hstack(parts)


def decode(spec, Z):
    """Inverse of :func:`one_hot`: each block back to the code of its largest entry."""
    out, at = [], 0
    for j in range(len(spec.columns)):
        if spec.is_categorical(j):
            k = spec.categories[j]
            out.append(np.argmax(Z[:, at:at + k], axis=1).astype(np.float64))
            at += k
        else:
            out.append(Z[:, at])
            at += 1
    return np.column_stack(out)


def to_frame(spec, X):
    """The table as a pandas DataFrame: categorical columns as their label strings."""
    import pandas as pd

    data = {}
    for j, col in enumerate(spec.columns):
        if spec.is_categorical(j):
            names = spec.labels.get(j) or [str(c) for c in range(spec.categories[j])]
            data[str(col)] = pd.Series([str(names[int(c)]) for c in X[:, j]], dtype="object")
        else:
            data[str(col)] = X[:, j]
    return pd.DataFrame(data)


def from_frame(spec, df):
    """Inverse of :func:`to_frame` (an unknown label becomes code 0)."""
    out = np.empty((len(df), len(spec.columns)))
    for j, col in enumerate(spec.columns):
        if spec.is_categorical(j):
            names = spec.labels.get(j) or [str(c) for c in range(spec.categories[j])]
            index = {str(n): c for c, n in enumerate(names)}
            out[:, j] = [index.get(str(v), 0) for v in df[str(col)]]
        else:
            out[:, j] = df[str(col)].to_numpy(dtype=np.float64)
    return out


def out_of_range(spec, syn, train):
    """Share of the synthetic numeric values outside their column's training range."""
    cols = spec.numeric
    if not cols:
        return 0.0
    low, high = train[:, cols].min(0), train[:, cols].max(0)
    values = syn[:, cols]
    return float(np.mean((values < low) | (values > high)))


def cell(spec, data, seed, method, train, holdout, fit_sample):
    """One result row: fit and sample a method, time both, score the rows.

    ``fit_sample(spec, train, n, seed)`` returns ``(rows, fit_seconds,
    sample_seconds, note)``, the rows in the table's layout (categorical
    codes). A method that raises gets a row with its error and no metrics.
    """
    import time
    import traceback

    from _synthesis_metrics import all_metrics

    row = {"data": data, "seed": seed, "method": method, "n_train": len(train),
           "n_holdout": len(holdout)}
    start = time.perf_counter()
    try:
        syn, fit_s, sample_s, note = fit_sample(spec, train, len(train), seed)
    except Exception as error:  # noqa: BLE001 - a method that fails is reported, not fatal
        traceback.print_exc()
        row.update(error=f"{type(error).__name__}: {error}"[:300],
                   seconds=time.perf_counter() - start)
        return row
    syn = np.asarray(syn, dtype=np.float64)
    finite = np.isfinite(syn).all(axis=1)
    row.update(fit_s=fit_s, sample_s=sample_s, note=note, nonfinite=float(1 - finite.mean()),
               out_of_range=out_of_range(spec, syn[finite], train))
    row.update(all_metrics(spec, syn[finite], train, holdout, seed=seed))
    return row
