"""Imputation: the hyperimpute peer of ``benchmarks/impute.py``, in its own environment.

hyperimpute (Jarrett et al., ICML 2022; ``pip install hyperimpute``) installs
from PyPI but, as of its 0.1.17, needs pandas < 3 (with pandas 3 its fills stay
at the column means without an error) and scikit-learn < 1.8 (it passes
``LogisticRegression(multi_class=...)`` on columns with few values, such as
digits), so it runs in an environment of its own::

    python -m venv --system-site-packages /tmp/hyperimpute
    /tmp/hyperimpute/bin/pip install hyperimpute "pandas<3" "scikit-learn==1.6.1"
    /tmp/hyperimpute/bin/python benchmarks/impute_hyperimpute.py
    python benchmarks/impute.py --tables-only

Same cases, splits and masks as ``impute.py`` (``_impute_cases.case_list``
and ``split``). hyperimpute's ``transform`` re-runs its whole fit on the rows it is
given (``HyperImputePlugin._transform`` calls ``fit_transform``), so fitting on
the training rows and filling the test rows alone would ignore the training
rows: it fills the test rows by ``fit_transform`` on the training and test
rows stacked, which also lets it learn from the test rows' observed entries
(an advantage the other methods do not have). Writes
``results/impute_hyperimpute.json`` (``impute_hyperimpute_quick.json`` with
``--quick``, which ``impute.py --quick`` reads); ``impute.py`` ranks its rows
with the others.
"""

import time
import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd
import torch

import _cli
from _impute_cases import THREADS, case_list, split
from _report import write


def main(argv=None):
    parser = _cli.parser(__doc__, "impute_hyperimpute", threads=THREADS, merge=False,
                         quick="the cases of impute.py --quick")
    parser.add_argument("--train-cap", type=int, default=1000)
    parser.add_argument("--test-cap", type=int, default=250)
    args = _cli.parse(parser, argv)
    from hyperimpute.plugins.imputers import Imputers

    torch.set_num_threads(args.threads)
    rows, begin = [], time.perf_counter()
    for index, (name, X, pattern, lattice) in enumerate(case_list(args.quick)):
        rng = np.random.default_rng(index)
        Z_train, Z_test, Z_test_true, mask = split(X, pattern, rng, args.train_cap,
                                                   args.test_cap, lattice)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imputer = Imputers().get("hyperimpute", random_state=0)
            both = imputer.fit_transform(pd.DataFrame(np.vstack([Z_train, Z_test])))
        fill = np.asarray(both, dtype=np.float64)[len(Z_train):]
        seconds = time.perf_counter() - start
        rmse = float(np.sqrt(np.mean((fill[mask] - Z_test_true[mask]) ** 2)))
        rows.append(dict(data=name, pattern=pattern, method="hyperimpute", rmse=rmse,
                         seconds=seconds, coverage=None))
        print(f"[{time.perf_counter() - begin:6.0f}s] {name} {pattern}: hyperimpute={rmse:.3f} "
              f"({seconds:.0f}s)", flush=True)
    write(args.out, {"rows": rows, "train_cap": args.train_cap,
                     "test_cap": args.test_cap, "quick": args.quick,
                     "versions": {name: version(name) for name in
                                  ("hyperimpute", "pandas", "scikit-learn")}})


if __name__ == "__main__":
    main()
