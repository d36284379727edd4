"""
=====================================
Which sensor is off? A sensor grid
=====================================

A plant's 8x8 grid of temperature sensors: each reading depends mostly on its
neighbours. We fit a :class:`~sklearn_diffusion.LocalizedDiffusionEstimator`
(each sensor's score sees only the sensors within ``radius`` of it) inside a
:class:`~sklearn_diffusion.DiffusionOutlierDetector`, then a sensor drifts:
its reading moves by 4 *conditional* standard deviations (given its
neighbours), about 3.5 of its own standard deviations; on this field about
half of such readings stay within the range the sensor showed in training.

:meth:`~sklearn_diffusion.DiffusionOutlierDetector.score_samples` says that
the row is abnormal; :meth:`~sklearn_diffusion.DiffusionOutlierDetector.feature_scores`
says which sensor is responsible (higher is more responsible). Finally the
sensor is recalibrated and
:meth:`~sklearn_diffusion.LocalizedDiffusionEstimator.refit_features`
re-trains only the sub-models that read it.
"""

import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from sklearn_diffusion import DiffusionOutlierDetector, LocalizedDiffusionEstimator

FAST = bool(os.environ.get("SKD_DOCS_FAST"))

# %%
# Data: a Gaussian field on the grid
# ----------------------------------
# The precision matrix ``Q = I + L`` (``L`` the grid's graph Laplacian) is
# sparse: each sensor is conditionally independent of the others given its
# four neighbours. The conditional standard deviation of sensor ``j`` given
# all the others is ``1 / sqrt(Q_jj)``.
side = 8
d = side * side
grid = np.arange(d).reshape(side, side)
adjacency = np.zeros((d, d))
for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
    adjacency[a.ravel(), b.ravel()] = adjacency[b.ravel(), a.ravel()] = 1
Q = np.eye(d) + np.diag(adjacency.sum(1)) - adjacency
rng = np.random.default_rng(0)
n_train = 800 if FAST else 1500
X = rng.multivariate_normal(np.zeros(d), np.linalg.inv(Q), size=n_train + 200)
X_train, X_test = X[:n_train], X[n_train:]
conditional_std = 1 / np.sqrt(np.diag(Q))

# %%
# Fit the detector
# ----------------
estimator = LocalizedDiffusionEstimator(
    locality=(side, side), radius=1, max_iter=300 if FAST else 1500, random_state=0
)
detector = DiffusionOutlierDetector(estimator, random_state=0).fit(X_train)

# %%
# A drifting sensor
# -----------------
# Every test row gets one faulty sensor, chosen at random, shifted by 4
# conditional standard deviations. The detector's row score separates the
# faulty rows from clean ones (AUROC), and ``feature_scores`` names the
# faulty sensor.
faulty = rng.integers(d, size=len(X_test))
X_faulty = X_test.copy()
X_faulty[np.arange(len(X_test)), faulty] += 4 * conditional_std[faulty]
labels = np.r_[np.zeros(len(X_test)), np.ones(len(X_faulty))]
auroc = roc_auc_score(labels, -detector.score_samples(np.vstack([X_test, X_faulty])))
print(f"row AUROC, faulty against clean rows: {auroc:.2f}")
scores = detector.feature_scores(X_faulty)
top1 = np.mean(scores.argmax(axis=1) == faulty)
print(f"feature_scores ranks the faulty sensor first in {top1:.0%} of the rows")

# %%
# One row as heat maps: the readings (the faulty sensor is circled) and the
# feature scores, which light it up.
row = 0
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
panels = ((X_faulty[row], "readings", "coolwarm"), (scores[row], "feature_scores", "magma"))
for ax, (values, title, cmap) in zip(axes, panels):
    image = ax.imshow(values.reshape(side, side), cmap=cmap)
    r, c = divmod(int(faulty[row]), side)
    ax.add_patch(plt.Circle((c, r), 0.45, fill=False, color="lime", linewidth=2))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.suptitle(f"sensor {faulty[row]} is off by 4 conditional standard deviations")
fig.tight_layout()

# %%
# Re-fit only what changed
# ------------------------
# The faulty sensor is replaced: its readings now come on another scale and
# offset. ``refit_features`` refits that column's standardization and
# re-trains only the blocks of sub-models (``blocks_``, 32 sensors each here)
# whose windows read it; the other blocks keep their weights bit for bit. We
# update a copy of the detector's density model, so the detector (whose
# threshold was set with the old model) is left as it was.
sensor = int(faulty[row])
X_replaced = X_train.copy()
X_replaced[:, sensor] = 1.5 * X_replaced[:, sensor] + 20.0
model = copy.deepcopy(detector.estimator_)
start = time.perf_counter()
model.refit_features(X_replaced, [sensor])
elapsed = time.perf_counter() - start
windows = model.model_.windows.numpy()
retrained = sum(bool(np.isin(windows[block], sensor).any()) for block in model.blocks_)
print(f"refit for sensor {sensor}: {elapsed:.1f} s, {retrained} of {len(model.blocks_)} "
      "blocks re-trained")
plt.show()
