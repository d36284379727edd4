"""Held-out log-likelihood on 144-D fields: localized diffusion against peers (issues 13 and 24).

Fields (``_fields.py``), each with d = 144 coordinates and an exact
log-density, so every method's gap to the truth is known:

* ``lattice``: the 12x12 lattice Gaussian field ``field_precision("lattice", 144)``;
* ``ring``: the ring Gaussian field ``field_precision("ring", 144)``;
* ``sinh lattice``: ``y = sinh(a * x / sd)`` coordinate by coordinate, with
  ``x`` the lattice field's rows (the same draws as ``lattice``) and ``sd``
  their standard deviations; ``a = 1`` (``--sinh-scale``). Each coordinate
  is then ``sinh`` of a standard normal: symmetric, heavy (log-normal-like)
  tails, sample kurtosis about 26 and the largest of the 288,000 training
  values about 23 standard deviations out; ``a = 1.5`` gave kurtosis 325 and
  a value 59 standard deviations out, which says more about one extreme row
  than about the field. The dependence (copula) is the lattice's. Exact
  ``log p(y) = log N(sd * asinh(y) / a; 0, P^-1) + sum_i [log(sd_i / a) - log(1 + y_i^2) / 2]``
  (:func:`_fields.sinh_field_log_density`, checked against a finite-difference
  Jacobian, a 2-D integral and a Monte-Carlo normalization in small d).
* ``tukey lattice``: Tukey's h transform ``y = z exp(h z^2 / 2)``, ``z = x / sd``,
  ``h = 0.2``, of the lattice rows: power tails (moments up to order 5),
  the lattice's copula (:func:`_fields.tukey_h_field_log_density`);
* ``graded lattice``: the lattice Gaussian field with edge weights growing
  from 0.2 on the first column to 3 on the last (``field_precision("graded",
  144)``): neighbours' correlation 0.19 on one side, 0.51 on the other. Not
  translation-invariant, so one network shared by every window is not the
  right model: the field where the shared default can lose.

Training rows ``field_sample(P, n_train, seed=0)`` (the rows of
``refit.py`` and ``locality.py``), test rows ``field_sample(P, n_test,
seed=1)``: 2,000 and 2,000 by default; ``--n-train 500 2000 5000`` runs
each field at each number of training rows (the same 2,000 test rows).

Methods, all fitted on the raw training rows and scored on the raw scale:

* ``glasso``: ``sklearn.covariance.GraphicalLassoCV()`` (defaults: 5-fold,
  4 refinements of 4 alphas); the Gaussian ``N(location_, precision_^-1)``
  it fits, whose per-row mean is exactly its ``score`` (which centres the
  test rows on the fitted ``location_`` and averages over rows);
* ``kde``: Gaussian ``KernelDensity`` on ``StandardScaler``-ed columns, the
  bandwidth chosen by ``GridSearchCV`` (3-fold) over ``logspace(-2, 1, 20)``,
  ``sum(log scale)`` subtracted (``_peers.Standardized(GridSearchKDE())``, as
  in ``density.py``). Its log-density is the direct sum over the training rows
  (``_peers.ExactKernelDensity``): scikit-learn's tree-based ``score_samples``
  is wrong at this dimension (on the lattice, rows off by up to 134 nats, the
  kd-tree and ball-tree disagreeing, the mean test LL 5 nats *above* the
  truth; scikit-learn issues #7492 and #27186);
* ``global``: ``BootstrappedScoreEstimator()`` (one global network);
* ``localized``: ``LocalizedDiffusionEstimator(locality=...)``, its defaults
  (radius 2, ``shared="auto"``: shared windows on these grids), locality
  ``(12, 12)`` for the lattices and ``"ring"`` for the ring;
* ``localized_auto``: the same with ``radius="auto"`` (radius 1, 2 or 3 by the
  log-likelihood on its early-stopping rows);
* ``localized_per_coord``: ``shared=False`` (one network per coordinate,
  radius 2: the default before issue 24);
* ``grid``: ``GridSearchCV(LocalizedDiffusionEstimator(locality=...),
  {"radius": [0, 1, 2, 3]}, cv=3)``; its fit seconds are the whole search
  including the refit, and the chosen radius and the cross-validated score
  per radius are reported;
* ``grid_shared``: the same search with ``shared=True``.

The diffusion estimators get ``random_state=0`` and otherwise their defaults
(``--max-iter`` overrides the step count).

Reported per (field, method): held-out mean log-likelihood (nats), the gap to
the truth per coordinate ``(truth - model) / d`` (lower is better), the
train-minus-test gap per coordinate (the truth's own row gives the part of it
that is sampling noise), fit and score seconds (score: the test rows), and
what the method chose. The files are rewritten after every method, so a run
cut short keeps what it measured.

Run ``python benchmarks/lattice_fields.py`` for the whole benchmark (more than
an hour: the grid searches take 4 to 10 minutes each), written to
``benchmarks/results/lattice_fields.{md,json}``. ``--fields`` and
``--methods`` choose a subset; ``--merge`` (key: field, n_train, method)
keeps the earlier rows of the results file for the other pairs; ``--threads``
sets the torch and BLAS threads (default: torch's own). ``--quick`` (300
training rows, ``max_iter=200``, radii 0 and 1) is a smoke test and writes
``lattice_fields_quick.{md,json}`` unless ``--out`` says otherwise.
"""

import datetime
import fcntl
import functools
import json
import math
import time

import numpy as np
import sklearn
import torch
from sklearn.covariance import GraphicalLassoCV
from sklearn.model_selection import GridSearchCV

import _cli
from _fields import (field_log_density, field_precision, field_sample, sinh_field,
                     sinh_field_log_density, tukey_h_field, tukey_h_field_log_density)
from _peers import GridSearchKDE, Standardized
from _report import RESULTS, markdown, write
from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator

D = 144
FIELDS = {
    # name: (graph of the precision, locality of the localized models, transform)
    "lattice": ("lattice", (12, 12), None),
    "ring": ("ring", "ring", None),
    "sinh lattice": ("lattice", (12, 12), "sinh"),
    "tukey lattice": ("lattice", (12, 12), "tukey"),
    "graded lattice": ("graded", (12, 12), None),
}
TUKEY_H = 0.2
METHODS = ("glasso", "kde", "global", "localized", "localized_auto", "localized_per_coord",
           "grid", "grid_shared")
COLUMNS = ("field", "n_train", "method", "test_ll", "gap_per_coord",
           "train_minus_test_per_coord", "fit_s", "score_s", "chosen")


class GraphicalLassoDensity:
    """``GraphicalLassoCV`` as a density: ``N(location_, precision_^-1)`` per row.

    The mean of :meth:`score_samples` over rows equals the estimator's own
    ``score`` (the mean log-likelihood at the fitted location and precision).
    """

    def fit(self, X):
        self.model_ = GraphicalLassoCV().fit(X)
        self.chosen_ = {"alpha": float(self.model_.alpha_)}
        return self

    def score_samples(self, X):
        return field_log_density(self.model_.precision_, X - self.model_.location_)


class KDEDensity(Standardized):
    """``Standardized(GridSearchKDE())``, with the bandwidth it chose in ``chosen_``."""

    def __init__(self):
        super().__init__(GridSearchKDE())

    def fit(self, X):
        super().fit(X)
        self.chosen_ = {"bandwidth": float(self.model.bandwidth_)}
        if self.model.at_grid_edge_:
            self.chosen_["grid_edge"] = "yes"
        return self


class RadiusSearch:
    """``GridSearchCV`` over ``radius`` (3-fold) of a localized estimator."""

    def __init__(self, estimator, radii):
        self.search = GridSearchCV(estimator, {"radius": list(radii)}, cv=3)

    def fit(self, X):
        search = self.search.fit(X)
        results = search.cv_results_
        self.chosen_ = {
            "radius": search.best_params_["radius"],
            "cv_score_per_radius": dict(zip(map(str, results["param_radius"]),
                                            results["mean_test_score"].tolist())),
            "mean_fit_s_per_radius": dict(zip(map(str, results["param_radius"]),
                                              results["mean_fit_time"].tolist())),
            "refit_s": float(search.refit_time_),
        }
        self.n_iter_ = search.best_estimator_.n_iter_
        return self

    def score_samples(self, X):
        return self.search.score_samples(X)


class Diffusion:
    """A diffusion estimator, with what it chose (smoothing, steps) recorded."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X):
        est = self.estimator.fit(X)
        self.chosen_ = {"smoothing": float(est.smoothing_)}
        if hasattr(est, "radius_"):
            self.chosen_["radius"] = est.radius_
            self.chosen_["shared"] = est.shared_
            if est.radius == "auto":
                self.chosen_["heldout_ll_per_radius"] = [round(float(v), 3)
                                                         for v in est.radius_scores_]
        self.n_iter_ = est.n_iter_
        return self

    def score_samples(self, X):
        return self.estimator.score_samples(X)


def make_method(name, locality, iters, radii):
    """An object with ``fit(X)`` and ``score_samples(X)`` for method ``name``."""
    common = dict(random_state=0, **iters)
    if name == "glasso":
        return GraphicalLassoDensity()
    if name == "kde":
        return KDEDensity()
    if name == "global":
        return Diffusion(BootstrappedScoreEstimator(**common))
    if name.startswith("localized"):
        params = {"localized_auto": {"radius": "auto"},
                  "localized_per_coord": {"shared": False}}.get(name, {})
        return Diffusion(LocalizedDiffusionEstimator(locality=locality, **params, **common))
    shared = name == "grid_shared"
    return RadiusSearch(LocalizedDiffusionEstimator(locality=locality, shared=shared, **common),
                        radii)


def load_field(name, n_train, n_test, sinh_scale):
    """Training rows, test rows and the exact log-density of field ``name``."""
    graph, _, transform = FIELDS[name]
    precision = field_precision(graph, D)
    X_train, cov = field_sample(precision, n_train, seed=0)
    X_test, _ = field_sample(precision, n_test, seed=1)
    if transform == "sinh":
        log_density = functools.partial(sinh_field_log_density, precision, cov, sinh_scale)
        return (sinh_field(X_train, cov, sinh_scale), sinh_field(X_test, cov, sinh_scale),
                log_density)
    if transform == "tukey":
        log_density = functools.partial(tukey_h_field_log_density, precision, cov, TUKEY_H)
        return tukey_h_field(X_train, cov, TUKEY_H), tukey_h_field(X_test, cov, TUKEY_H), \
            log_density
    return X_train, X_test, functools.partial(field_log_density, precision)


def per_coord(value):
    return value / D if math.isfinite(value) else math.nan


def run_method(field, method, model, X_train, X_test, truth_test):
    """Fit and score one method; an exception becomes a row with its message."""
    row = {"field": field, "n_train": len(X_train), "method": method, "test_ll": math.nan,
           "train_ll": math.nan, "fit_s": math.nan, "score_s": math.nan, "chosen": "", "n_iter": None,
           "details": {}, "error": None}
    try:
        start = time.perf_counter()
        model.fit(X_train)
        row["fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        test = model.score_samples(X_test)
        row["score_s"] = time.perf_counter() - start
        train = model.score_samples(X_train)
        bad = int((~np.isfinite(test)).sum() + (~np.isfinite(train)).sum())
        if bad:
            row["error"] = f"{bad} non-finite log-densities"
        row["test_ll"], row["train_ll"] = float(np.mean(test)), float(np.mean(train))
        row["details"] = model.chosen_
        row["chosen"] = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in model.chosen_.items() if not isinstance(v, dict))
        row["n_iter"] = getattr(model, "n_iter_", None)
    except Exception as exc:  # noqa: BLE001 - one failed method must not end the run
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["chosen"] = "ERROR"
    row["gap_per_coord"] = per_coord(truth_test - row["test_ll"])
    row["train_minus_test_per_coord"] = per_coord(row["train_ll"] - row["test_ll"])
    return row


def key(row):
    return row["field"], row["n_train"], row["method"]


def save(out, rows, infos, setup, merge):
    """Write ``results/<out>.md`` and ``.json``; returns the table.

    With ``merge`` the rows already in the JSON file for other (field,
    n_train, method) triples are kept, read again under a lock at every write, so runs of
    different fields or methods side by side all land in one file.
    """
    path = RESULTS / f"{out}.json"
    RESULTS.mkdir(exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = path.read_text() if merge else ""
        if text:
            earlier = json.loads(text)
            for r in earlier["rows"]:  # rows of runs before n_train was a column
                r.setdefault("n_train", earlier["fields"].get(r["field"], {}).get("n_train"))
            infos = {**{(k if " rows)" in k else f"{k} ({v['n_train']} rows)"): v
                        for k, v in earlier["fields"].items()}, **infos}
            done = {key(r) for r in rows}
            rows = [r for r in earlier["rows"] if key(r) not in done] + rows
        order = {f: i for i, f in enumerate(FIELDS)}
        methods = {m: i for i, m in enumerate(("truth",) + METHODS)}
        rows = sorted(rows, key=lambda r: (order[r["field"]], r["n_train"], methods[r["method"]]))
        infos = dict(sorted(infos.items(), key=lambda kv: (
            order[kv[0].rsplit(" (", 1)[0]], kv[1]["n_train"])))
        table = markdown(rows, COLUMNS)
        setups = list(dict.fromkeys(r["setup"] for r in rows))
        if len(setups) > 1:  # rows merged from runs with different settings
            setup = "Rows from runs with different settings:\n\n" + "\n".join(
                f"- {text}: " + ", ".join(f"{r['field']} / {r['n_train']} / {r['method']}"
                                          for r in rows
                                          if r["setup"] == text) for text in setups)
        errors = [f"- {r['field']} / {r['n_train']} / {r['method']}: {r['error']}"
                  for r in rows if r["error"]]
        truths = "\n".join(
            f"- {name}: truth test LL {info['truth_test_ll']:.3f}, train LL "
            f"{info['truth_train_ll']:.3f} ({info['n_test']} test rows)"
            for name, info in infos.items())
        (RESULTS / f"{out}.md").write_text(
            "# Held-out log-likelihood on 144-D fields (`benchmarks/lattice_fields.py`, "
            f"{datetime.date.today()})\n\n{setup}\n\n{truths}\n\n"
            "`gap_per_coord` = (truth - model) test LL / d (lower is better); "
            "`train_minus_test_per_coord` = (train - test) LL / d; seconds: `fit_s` the whole "
            "fit (for `grid` and `grid_shared` the search with its refit), `score_s` the test "
            "rows.\n\n" + table + "\n"
            + ("\nErrors:\n" + "\n".join(errors) + "\n" if errors else ""))
        write(out, {"setup": setup, "versions": {"torch": torch.__version__,
                                                 "sklearn": sklearn.__version__},
                    "fields": infos, "rows": rows})
    return table


def main(argv=None):
    parser = _cli.parser(__doc__, "lattice_fields",
                         quick="300 training rows, max_iter=200, radii 0 and 1")
    parser.add_argument("--fields", nargs="*", default=list(FIELDS), choices=list(FIELDS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--n-train", type=int, nargs="*", default=None,
                        help="training rows, one or more (default 2000; 300 quick)")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--max-iter", type=int, default=None,
                        help="steps of the diffusion models (default: theirs; 200 quick)")
    parser.add_argument("--radii", type=int, nargs="*", default=None,
                        help="radii of the grid searches (default 0 1 2 3; 0 1 quick)")
    parser.add_argument("--sinh-scale", type=float, default=1.0,
                        help="a in y = sinh(a x / sd) of the sinh lattice")
    args = _cli.parse(parser, argv)
    n_trains = args.n_train or [300 if args.quick else 2000]
    max_iter = args.max_iter or (200 if args.quick else None)
    radii = args.radii if args.radii is not None else ([0, 1] if args.quick else [0, 1, 2, 3])
    out = args.out
    iters = {} if max_iter is None else {"max_iter": max_iter}
    if args.threads:
        torch.set_num_threads(args.threads)
    setup = (f"d = {D}; training rows (seed 0) as in n_train, {args.n_test} test rows (seed 1); "
             f"diffusion max_iter {max_iter or 'default'}, random_state 0; grid radii {radii}, "
             f"cv=3; sinh lattice y = sinh({args.sinh_scale:g} x / sd), tukey h {TUKEY_H}; "
             f"localized defaults radius 2, shared 'auto' (issue 24); torch threads "
             f"{torch.get_num_threads()}")

    rows, infos = [], {}
    with _cli.threads(args.threads):
        for field in args.fields:
            for n_train in n_trains:
                X_train, X_test, log_density = load_field(field, n_train, args.n_test,
                                                          args.sinh_scale)
                truth_test = float(log_density(X_test).mean())
                truth_train = float(log_density(X_train).mean())
                infos[f"{field} ({n_train} rows)"] = {
                    "n_train": n_train, "n_test": args.n_test,
                    "truth_test_ll": truth_test, "truth_train_ll": truth_train}
                locality = FIELDS[field][1]
                for method in ["truth"] + args.methods:
                    if method == "truth":
                        row = {"field": field, "n_train": n_train, "method": "truth",
                               "test_ll": truth_test, "train_ll": truth_train,
                               "gap_per_coord": 0.0,
                               "train_minus_test_per_coord": (truth_train - truth_test) / D,
                               "fit_s": "-", "score_s": "-", "chosen": "", "n_iter": None,
                               "details": {}, "error": None}
                    else:
                        model = make_method(method, locality, iters, radii)
                        row = run_method(field, method, model, X_train, X_test, truth_test)
                    row["setup"] = setup
                    rows.append(row)
                    print(markdown([row], COLUMNS).splitlines()[-1]
                          + (f"  {row['error']}" if row["error"] else ""), flush=True)
                    table = save(out, rows, infos, setup, args.merge)
    print("\n" + table)


if __name__ == "__main__":
    main()
