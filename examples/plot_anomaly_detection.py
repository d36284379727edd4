"""
Anomaly detection with a diffusion model
========================================

A :class:`~sklearn_diffusion.DiffusionOutlierDetector` learns the density of
normal rows with a diffusion model and flags rows where the model's score
(the gradient of its log-density, over several noise levels) is large; by
default it multiplies that score's norm with the same norm for the exact
score of the noised training rows (the model that memorized them).
Here the normal rows are the benign tumours of scikit-learn's breast cancer
data set and the anomalies a few malignant ones (the "WDBC" set of anomaly
detection benchmarks). We fit the detector in a
:class:`~sklearn.pipeline.Pipeline` after a
:class:`~sklearn.preprocessing.StandardScaler`, tune the noise levels of its
score by grid search on a labelled validation split, plot the anomaly scores
of normal and anomalous test rows, and compare with an
:class:`~sklearn.ensemble.IsolationForest` and the distance to the 5th
nearest neighbour.

Sign convention: ``score_samples`` is higher for more normal rows (as in
scikit-learn); the anomaly score plotted below is its negative (as in PyOD).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionOutlierDetector

# %%
# Data: train on half of the benign rows; validate and test on the other
# benign rows plus 15 malignant rows each (anomalies are rare).
X, target = load_breast_cancer(return_X_y=True)
rng = np.random.default_rng(0)
normal = rng.permutation(np.flatnonzero(target == 1))
anomalous = rng.permutation(np.flatnonzero(target == 0))[:30]
train, val, test = np.split(normal, [len(normal) // 2, 3 * len(normal) // 4])
val = np.r_[val, anomalous[:15]]
test = np.r_[test, anomalous[15:]]
is_anomaly = np.isin(np.arange(len(X)), anomalous).astype(int)

# %%
# Pipeline and grid search over the noise levels of the score (small levels
# see sharp local structure, large ones the distance to the bulk of the data).
# The training fold holds normal rows only; the validation fold is scored by
# the AUROC of the anomaly score. A small network keeps the example fast.
pipe = make_pipeline(
    StandardScaler(),
    DiffusionOutlierDetector(
        BootstrappedScoreEstimator(hidden_layer_sizes=(64, 64), max_iter=1000, random_state=0)
    ),
)


def auroc(estimator, X, y):
    """AUROC of the anomaly score ``-score_samples`` against ``y`` (1 = anomaly)."""
    return roc_auc_score(y, -estimator.score_samples(X))


rows = np.r_[train, val]
folds = PredefinedSplit(np.r_[np.full(len(train), -1), np.zeros(len(val))])
search = GridSearchCV(
    pipe,
    {"diffusionoutlierdetector__noise_range": [(0.001, 0.1), (0.001, 1.0), (0.1, 1.0)]},
    scoring=auroc,
    cv=folds,
    refit=False,
).fit(X[rows], is_anomaly[rows])
print("validation AUROC per noise range:")
for params, value in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"  {params['diffusionoutlierdetector__noise_range']}: {value:.3f}")

# Refit the best setting on the normal training rows only.
best = pipe.set_params(**search.best_params_).fit(X[train])

# %%
# Peers on the same split.
scaler = StandardScaler().fit(X[train])
forest = IsolationForest(random_state=0).fit(scaler.transform(X[train]))
neighbours = NearestNeighbors(n_neighbors=5).fit(scaler.transform(X[train]))
scores = {
    "diffusion (hybrid score)": -best.score_samples(X[test]),
    "IsolationForest": -forest.score_samples(scaler.transform(X[test])),
    "kNN distance (k=5)": neighbours.kneighbors(scaler.transform(X[test]))[0][:, -1],
}

# %%
# Score distributions of normal and anomalous test rows, with test AUROC.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for ax, (name, score) in zip(axes, scores.items()):
    auc = roc_auc_score(is_anomaly[test], score)
    bins = np.histogram_bin_edges(score, bins=30)
    ax.hist(score[is_anomaly[test] == 0], bins=bins, alpha=0.6, density=True, label="normal")
    ax.hist(score[is_anomaly[test] == 1], bins=bins, alpha=0.6, density=True, label="anomaly")
    ax.set_title(f"{name}\nAUROC {auc:.3f}")
    ax.set_xlabel("anomaly score (higher = more abnormal)")
    print(f"{name}: test AUROC {auc:.3f}")
axes[0].legend()
fig.tight_layout()
plt.show()
