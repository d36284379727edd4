"""Sample-quality metrics of ``synthesis.py``: synthetic rows against real ones.

Every function compares a set of rows ``syn`` with real rows; the benchmark
passes the holdout rows ``H`` as the real side, and computes every metric
once more with the real training rows ``R`` in place of ``syn`` (the floor:
two samples of the same population, which no synthesizer can beat on
average). The privacy metrics (:func:`dcr`) take ``R`` and ``H`` both.

A table is described by a :class:`Spec`: which columns are categorical
(stored as integer codes ``0 .. K-1`` in a float array, every method's rows
in the same layout), which column is the target of the machine-learning
efficacy and its task. Distances (:func:`energy_distance`, :func:`dcr`) and
the logistic C2ST use :func:`encode`: numeric columns standardized with the
training rows' mean and standard deviation, categorical columns one-hot and
divided by sqrt(2), so that two different categories are at distance 1 (the
scaling of TabDDPM's ``scripts/resample_privacy.py``).

Only numpy, scipy and scikit-learn: the module runs unchanged in the peers'
environment (``synthesis_peers.py``). Cross-checked once there against
sdmetrics 0.32.0 on penguins (holdout rows against resampled training rows
with one column perturbed): :func:`shape_error` and :func:`trend_error`
matched the mean of ``KSComplement``/``TVComplement`` and of
``CorrelationSimilarity``/``ContingencySimilarity`` (as errors) to 1e-16.
"""

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["Spec", "all_metrics", "c2st", "dcr", "encode", "energy_distance", "floor_metrics",
           "ml_efficacy",
           "shape_error", "trend_error", "wasserstein"]


@dataclass
class Spec:
    """The layout of a table.

    Attributes
    ----------
    columns : list of str
    categories : dict
        ``{column index: number of categories K}`` for each categorical
        column (codes ``0 .. K-1``); the other columns are numeric.
    target : int
        Index of the column predicted by :func:`ml_efficacy`.
    task : {"classification", "regression"}
    labels : dict
        ``{column index: list of category names}``, for display only.
    """

    columns: list
    categories: dict
    target: int
    task: str = "classification"
    labels: dict = field(default_factory=dict)

    @property
    def numeric(self):
        """Indices of the numeric columns."""
        return [j for j in range(len(self.columns)) if j not in self.categories]

    def is_categorical(self, j):
        return j in self.categories


def _codes(x, k):
    """Integer codes of a categorical column, clipped into ``0 .. k-1``."""
    return np.clip(np.rint(x), 0, k - 1).astype(int)


def _frequencies(codes, k):
    return np.bincount(codes, minlength=k) / len(codes)


def encode(spec, X, ref):
    """Rows as numbers for distances: standardized numerics, one-hot / sqrt(2) categoricals.

    ``ref`` (the training rows) gives the means and standard deviations (a
    constant column gets scale 1).
    """
    parts = []
    for j in range(len(spec.columns)):
        if spec.is_categorical(j):
            k = spec.categories[j]
            parts.append(np.eye(k)[_codes(X[:, j], k)] / np.sqrt(2))
        else:
            scale = ref[:, j].std()
            parts.append(((X[:, j] - ref[:, j].mean()) / (scale if scale > 0 else 1.0))[:, None])
    return np.hstack(parts)


# --------------------------------------------------------------------------- fidelity


def shape_error(spec, real, syn):
    """Column Shapes error: mean over columns of the KS statistic or the TV distance.

    SDMetrics' Column Shapes (``sdmetrics.single_column.KSComplement`` and
    ``TVComplement``, as in TabSyn's ``eval/eval_density.py``), reported as
    the error ``1 - score``: for a numeric column the two-sample
    Kolmogorov-Smirnov statistic ``D = sup_x |F_real(x) - F_syn(x)|``
    (``scipy.stats.ks_2samp``); for a categorical column the total variation
    distance ``1/2 sum_c |f_real(c) - f_syn(c)|``. 0 is a perfect match.
    """
    errors = []
    for j in range(len(spec.columns)):
        if spec.is_categorical(j):
            k = spec.categories[j]
            errors.append(0.5 * np.abs(_frequencies(_codes(real[:, j], k), k)
                                       - _frequencies(_codes(syn[:, j], k), k)).sum())
        else:
            errors.append(ks_2samp(real[:, j], syn[:, j]).statistic)
    return float(np.mean(errors))


def _pearson(a, b):
    """Pearson's rho; 0 where a column is constant."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(a, b)[0, 1]
    return float(r) if np.isfinite(r) else 0.0


def _binned(real_col, syn_col):
    """Both columns in the 10 equal-width bins of the real one (SDMetrics' discretization)."""
    edges = np.histogram_bin_edges(real_col, bins=10)
    return (np.clip(np.digitize(real_col, edges[1:-1]), 0, 9),
            np.clip(np.digitize(syn_col, edges[1:-1]), 0, 9))


def trend_error(spec, real, syn):
    """Column Pair Trends error over all pairs of columns.

    SDMetrics' Column Pair Trends (``sdmetrics.column_pairs``), reported as
    ``1 - score`` averaged over **all** pairs (SDMetrics >= 0.27 averages
    only the pairs whose real correlation passes a threshold; TabSyn's
    figures used 0.11, all pairs, as here):

    * two numeric columns: ``CorrelationSimilarity = 1 - |rho_real - rho_syn| / 2``
      with Pearson's rho, so the error is ``|rho_real - rho_syn| / 2``
      (a constant synthetic column counts as rho = 0);
    * any pair with a categorical column: ``ContingencySimilarity = 1 - 1/2
      sum_{a,b} |P_real(a, b) - P_syn(a, b)|``, a numeric partner first cut
      into 10 equal-width bins of its real column (``np.histogram_bin_edges``,
      applied to both), so the error is the TV distance of the joint tables.
    """
    errors = []
    for i, j in combinations(range(len(spec.columns)), 2):
        if not (spec.is_categorical(i) or spec.is_categorical(j)):
            errors.append(abs(_pearson(real[:, i], real[:, j])
                              - _pearson(syn[:, i], syn[:, j])) / 2)
            continue
        pair = []
        for c in (i, j):
            if spec.is_categorical(c):
                k = spec.categories[c]
                pair.append((_codes(real[:, c], k), _codes(syn[:, c], k), k))
            else:
                a, b = _binned(real[:, c], syn[:, c])
                pair.append((a, b, 10))
        (ra, sa, ka), (rb, sb, kb) = pair
        p = np.bincount(ra * kb + rb, minlength=ka * kb) / len(ra)
        q = np.bincount(sa * kb + sb, minlength=ka * kb) / len(sa)
        errors.append(0.5 * np.abs(p - q).sum())
    return float(np.mean(errors))


def c2st(spec, real, syn, ref, model="hgb", folds=3, seed=0):
    """Classifier two-sample test: cross-validated AUROC of real (0) against synthetic (1) rows.

    Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017;
    the protocol of synthcity's ``eval_detection.py`` (label the real rows 0
    and the synthetic rows 1, stratified k-fold, mean held-out AUROC, 3 folds
    by default). 0.5: the classifier cannot tell the rows apart; 1: it always
    can. ``model="hgb"``: scikit-learn's ``HistGradientBoostingClassifier``
    (defaults, categorical columns declared as such, ``random_state=0``)
    on the raw columns; ``model="logistic"``: ``LogisticRegression`` on
    :func:`encode`'d rows, standardized again on each training fold (as
    SDMetrics' ``LogisticDetection``, which scores ``1 - (2 max(AUC, 0.5) - 1)``
    from the same AUROC).
    """
    X = np.vstack([real, syn])
    y = np.r_[np.zeros(len(real)), np.ones(len(syn))]
    if model == "hgb":
        mask = np.array([spec.is_categorical(j) for j in range(len(spec.columns))])
        X = X.copy()
        for j, k in spec.categories.items():
            X[:, j] = _codes(X[:, j], k)
        def make():
            return HistGradientBoostingClassifier(
                categorical_features=mask if mask.any() else None, random_state=0)
    elif model == "logistic":
        X = encode(spec, X, ref)
        def make():
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        raise ValueError(model)
    aucs = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        clf = make().fit(X[train], y[train])
        aucs.append(roc_auc_score(y[test], clf.predict_proba(X[test])[:, 1]))
    return float(np.mean(aucs))


def energy_distance(spec, real, syn, ref, max_rows=2000, seed=0):
    """Energy distance between the two sets of :func:`encode`'d rows.

    Szekely & Rizzo, "Energy statistics: a class of statistics based on
    distances", J. Stat. Plan. Inference 143 (2013), eq. (2.1), as the
    V-statistic ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` with Euclidean
    norms (the squared energy distance; 0 iff the laws agree). Sets larger
    than ``max_rows`` are subsampled (fixed ``seed``).
    """
    rng = np.random.default_rng(seed)
    a, b = encode(spec, real, ref), encode(spec, syn, ref)
    a = a[rng.permutation(len(a))[:max_rows]]
    b = b[rng.permutation(len(b))[:max_rows]]
    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


def wasserstein(spec, real, syn, ref):
    """Wasserstein-1 per numeric column, averaged, on columns standardized by the training rows.

    ``W1(u, v) = integral |F_u(x) - F_v(x)| dx`` (``scipy.stats.wasserstein_distance``)
    of each numeric column divided by its training standard deviation, then the
    mean over the numeric columns (ForestDiffusion reports a joint W1 on
    min-max scaled rows instead; per column it is exact and cheap).
    Categorical columns are left to :func:`shape_error`'s TV distance.
    """
    values = []
    for j in spec.numeric:
        scale = ref[:, j].std()
        scale = scale if scale > 0 else 1.0
        values.append(wasserstein_distance(real[:, j] / scale, syn[:, j] / scale))
    return float(np.mean(values)) if values else float("nan")


def ml_efficacy(spec, train, test, seed=0):
    """Machine-learning efficacy: train on ``train`` rows, score on ``test`` rows.

    Train-on-synthetic, test-on-real (Esteban, Hyland & Ratsch 2017; the
    "ML efficacy" of TabDDPM, Kotelnikov et al., ICML 2023, which reports
    macro-F1 for classification and R^2 for regression): a
    ``HistGradientBoostingClassifier`` (or ``Regressor``, defaults,
    ``random_state=seed``) predicts the target column from the others. The
    benchmark passes the synthetic rows as ``train`` and the holdout rows as
    ``test``, and the real training rows as ``train`` for the floor (here a
    ceiling: higher is better). A synthetic set with a single class predicts
    that class.
    """
    features = [j for j in range(len(spec.columns)) if j != spec.target]
    mask = np.array([spec.is_categorical(j) for j in features])
    def prepare(X):
        X = X[:, features].copy()
        for n, j in enumerate(features):
            if spec.is_categorical(j):
                X[:, n] = _codes(X[:, n], spec.categories[j])
        return X
    Xa, Xb = prepare(train), prepare(test)
    cats = mask if mask.any() else None
    if spec.task == "classification":
        k = spec.categories[spec.target]
        ya, yb = _codes(train[:, spec.target], k), _codes(test[:, spec.target], k)
        if len(np.unique(ya)) < 2:
            pred = np.full(len(yb), ya[0])
        else:
            pred = HistGradientBoostingClassifier(categorical_features=cats,
                                                  random_state=seed).fit(Xa, ya).predict(Xb)
        return float(f1_score(yb, pred, average="macro"))
    model = HistGradientBoostingRegressor(categorical_features=cats, random_state=seed)
    return float(r2_score(test[:, spec.target],
                          model.fit(Xa, train[:, spec.target]).predict(Xb)))


# --------------------------------------------------------------------------- privacy


def dcr(spec, syn, train, holdout):
    """Distance to closest record: the share closer to training rows, median DCR, exact copies.

    * ``dcr_share``: the share of synthetic rows whose nearest training row
      is closer than their nearest holdout row (ties count one half), on
      :func:`encode`'d rows with Euclidean distance. TabSyn's "DCR score"
      (Zhang et al., ICLR 2024, README and issue #18; they use L1 on
      range-scaled columns): with as many training as holdout rows a
      synthesizer that does not copy scores 0.5, one that copies its
      training rows 1.
    * ``dcr_median``: the median over synthetic rows of the distance to the
      nearest training row (TabDDPM's "privacy", ``scripts/resample_privacy.py``,
      there on min-max scaled columns; higher is more private).
    * ``copies``: the share of synthetic rows equal to a training row in
      every column (exact float equality; categorical codes compared as codes).
    """
    s, r, h = (encode(spec, x, train) for x in (syn, train, holdout))
    d_train = NearestNeighbors(n_neighbors=1).fit(r).kneighbors(s)[0][:, 0]
    d_hold = NearestNeighbors(n_neighbors=1).fit(h).kneighbors(s)[0][:, 0]
    share = np.mean((d_train < d_hold) + 0.5 * (d_train == d_hold))
    rows = {tuple(row) for row in np.asarray(train, dtype=np.float64)}
    copies = np.mean([tuple(row) in rows for row in np.asarray(syn, dtype=np.float64)])
    return {"dcr_share": float(share), "dcr_median": float(np.median(d_train)),
            "copies": float(copies)}


# --------------------------------------------------------------------------- all at once


def all_metrics(spec, syn, train, holdout, seed=0):
    """Every metric of ``syn`` (the fidelity ones against ``holdout``), as a dict.

    Keys: ``shape``, ``trend``, ``c2st_hgb``, ``c2st_lr``, ``energy``,
    ``w1``, ``mle`` (ML efficacy of ``syn`` on ``holdout``), ``dcr_share``,
    ``dcr_median``, ``copies``. Categorical codes of ``syn`` are rounded and
    clipped into range first.
    """
    syn = np.asarray(syn, dtype=np.float64).copy()
    for j, k in spec.categories.items():
        syn[:, j] = _codes(syn[:, j], k)
    out = {"shape": shape_error(spec, holdout, syn), "trend": trend_error(spec, holdout, syn),
           "c2st_hgb": c2st(spec, holdout, syn, train, "hgb", seed=seed),
           "c2st_lr": c2st(spec, holdout, syn, train, "logistic", seed=seed),
           "energy": energy_distance(spec, holdout, syn, train, seed=seed),
           "w1": wasserstein(spec, holdout, syn, train),
           "mle": ml_efficacy(spec, syn, holdout, seed=seed)}
    out.update(dcr(spec, syn, train, holdout))
    return out


def floor_metrics(spec, train, holdout, seed=0):
    """The real-rows floor: every metric with the training rows in place of the synthetic ones.

    The fidelity metrics and the ML efficacy compare ``train`` with
    ``holdout`` exactly as a method's rows are compared. The privacy
    metrics would be trivial that way (every training row is its own
    copy), so their floor splits both sets in halves: the second half of the
    holdout rows plays the synthetic rows, measured against the first halves
    of the training and holdout rows (independent real rows score 0.5 in
    expectation, with the spread of a set half the size).
    """
    out = all_metrics(spec, train, train, holdout, seed=seed)
    half = len(holdout) // 2
    out.update(dcr(spec, holdout[half:], train[:half], holdout[:half]))
    return out
