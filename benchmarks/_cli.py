"""The command line shared by the runnable benchmarks.

Every benchmark at the top of ``benchmarks/`` builds its parser with
:func:`parser`, so a flag means the same thing in every script:

``--quick``
    A small subset that finishes in minutes (what it keeps is in the
    script's ``--help``); it writes ``results/<name>_quick.{md,json}``
    unless ``--out`` says otherwise, so it never overwrites a headline table.
``--out NAME``
    Write ``results/NAME.{md,json}`` (default: the script's name).
``--threads N``
    torch and BLAS threads of each process (of each job where there are
    ``--n-jobs``); the default is the script's (shown by ``--help``).
``--n-jobs N``
    Parallel joblib jobs, where a script runs independent fits side by side.
``--merge``
    Merge the new rows into ``results/NAME.json``: a row with the same key
    (data set, method, ... as the script says) is replaced, the file's other
    rows are kept, and the tables are rebuilt from them all. For a run split
    over several commands (data sets, methods) that lands in one file.

A script that cannot honour ``--n-jobs`` or ``--merge`` does not offer it.
"""

import argparse
import contextlib

import torch
from threadpoolctl import threadpool_limits


def parser(doc, name, quick, threads=None, n_jobs=None, merge=True):
    """An ``ArgumentParser`` with the shared flags; the script adds its own.

    Parameters
    ----------
    doc : str
        The script's module docstring (its first line is the description,
        the rest the epilog of ``--help``).
    name : str
        Default ``--out``.
    quick : str
        What ``--quick`` keeps, for ``--help``.
    threads : int, optional
        Default ``--threads`` (None: torch's own default).
    n_jobs : int, optional
        Default ``--n-jobs``; None for a script without parallel jobs.
    merge : bool, default=True
        Whether the script offers ``--merge``.
    """
    first, _, rest = doc.strip().partition("\n")
    p = argparse.ArgumentParser(description=first, epilog=rest.strip() or None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = p.add_argument_group("shared flags (benchmarks/README.md)")
    shared.add_argument("--quick", action="store_true", help=quick.replace("%", "%%"))
    shared.add_argument("--out", metavar="NAME", default=None,
                        help=f"write results/NAME.{{md,json}} (default {name}; {name}_quick "
                             "with --quick)")
    shared.add_argument("--threads", type=int, default=threads, metavar="N",
                        help="torch and BLAS threads per process (default "
                             + (str(threads) if threads else "torch's own") + ")")
    if n_jobs is not None:
        shared.add_argument("--n-jobs", type=int, default=n_jobs, metavar="N",
                            help=f"parallel jobs (default {n_jobs})")
    if merge:
        shared.add_argument("--merge", action="store_true",
                            help="merge the new rows into results/NAME.json (a row with the "
                                 "same key is replaced, the others are kept)")
    p.set_defaults(_name=name)
    return p


def parse(p, argv=None):
    """Parse ``argv``; ``args.out`` is filled in (``<name>`` or ``<name>_quick``)."""
    args = p.parse_args(argv)
    if args.out is None:
        args.out = args._name + ("_quick" if args.quick else "")
    return args


@contextlib.contextmanager
def threads(n):
    """torch and BLAS (threadpoolctl) limited to ``n`` threads inside the block; None: as is."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
