"""Shared output of the benchmarks: markdown tables, ranks and ``results/<name>.{md,json}``."""

import json
import platform
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """A short description of where the benchmark ran."""
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(rows, columns):
    """Rows (dicts) as a markdown table with the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def case_ranks(table, methods, higher_is_better=True, ties="average"):
    """Rank of each method within each case of ``table`` (1 = best; NaN ranks last).

    Parameters
    ----------
    table : dict
        ``{case: {method: value}}``.
    methods : list of str
    higher_is_better : bool, default=True
    ties : str, default="average"
        ``scipy.stats.rankdata``'s method: ``"average"`` shares the mean
        rank, ``"ordinal"`` breaks ties by the order of ``methods``.

    Returns
    -------
    ranks : dict
        ``{case: {method: rank}}``.
    """
    out = {}
    for case, row in table.items():
        values = np.array([row[m] for m in methods], dtype=np.float64)
        key = -np.nan_to_num(values, nan=-np.inf) if higher_is_better else np.nan_to_num(
            values, nan=np.inf)
        out[case] = dict(zip(methods, rankdata(key, method=ties).tolist()))
    return out


def ranks(table, methods, higher_is_better=True, ties="average"):
    """Mean rank of each method over the cases of ``table`` (see :func:`case_ranks`)."""
    per_case = case_ranks(table, methods, higher_is_better, ties)
    mean = np.mean([[r[m] for m in methods] for r in per_case.values()], axis=0)
    return dict(zip(methods, mean.tolist()))


def load(name):
    """The payload of ``results/<name>.json``, or None where there is none."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def merge_rows(name, rows, key, field="rows"):
    """``rows`` merged into those of ``results/<name>.json`` (the ``--merge`` flag).

    A row of the file whose ``key`` (a tuple of column names) matches a new
    row is replaced by it in place; the file's other rows are kept; new rows
    with a new key come after them.

    Parameters
    ----------
    name : str
    rows : list of dict
    key : tuple of str
    field : str, default="rows"
        Where the file's payload keeps its rows.

    Returns
    -------
    rows : list of dict
    """
    earlier = load(name)
    if earlier is None:
        return list(rows)
    new = {tuple(r[k] for k in key): r for r in rows}
    merged = [new.pop(tuple(r[k] for k in key), r) for r in earlier[field]]
    return merged + list(new.values())


def write(name, payload, md=None):
    """Write ``payload`` (plus the machine description) to ``results/<name>.json``.

    With ``md`` (the text of a markdown file), ``results/<name>.md`` too.
    Returns the JSON path.
    """
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1))
    print(f"\nfigures written to {path}")
    if md is not None:
        (RESULTS / f"{name}.md").write_text(md if md.endswith("\n") else md + "\n")
        print(f"tables written to {RESULTS / f'{name}.md'}")
    return path
