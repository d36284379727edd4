"""
===========================================
Density, samples and training of two moons
===========================================

Fit a :class:`~sklearn_diffusion.BootstrappedScoreEstimator` on scikit-learn's
two moons, then look at what people look at: the training and validation
loss curves, the log-density on a grid, and new samples next to the data.
The held-out mean log-density is compared with a grid-searched
:class:`~sklearn.neighbors.KernelDensity` on the same split.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

from sklearn_diffusion import BootstrappedScoreEstimator

FAST = bool(os.environ.get("SKD_DOCS_FAST"))

X, _ = make_moons(n_samples=2000, noise=0.06, random_state=0)
X_train, X_test = train_test_split(X, test_size=0.5, random_state=0)

model = BootstrappedScoreEstimator(max_iter=600 if FAST else 4000, random_state=0)
model.fit(X_train)
kde = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-2, 0, 15)}).fit(X_train)
print(f"held-out mean log-density: diffusion {model.score(X_test):.3f}, "
      f"KernelDensity {kde.best_estimator_.score(X_test) / len(X_test):.3f}")

# %%
# Loss curves: the training loss per step (smoothed), the held-out
# denoising loss checked every 100 steps and, with enough held-out rows, the
# held-out log-likelihood of the same checks, which decides when to stop
# (``stopping_metric``).
fig, ax = plt.subplots(figsize=(6, 3))
steps = np.arange(1, model.n_iter_ + 1)
smooth = np.convolve(model.loss_curve_, np.ones(50) / 50, mode="valid")
ax.plot(steps[49:], smooth, label="training loss (50-step mean)")
ax.plot(100 * np.arange(1, len(model.validation_loss_curve_) + 1), model.validation_loss_curve_,
        "o-", label="validation loss")
ax.axvline(model.best_iter_, color="gray", ls="--", label="weights kept")
ax.set_xlabel("step")
ax.legend(loc="upper center")
if model.stopping_metric_ == "likelihood":
    twin = ax.twinx()
    scores = model.validation_score_curve_
    twin.plot(100 * np.arange(1, len(scores) + 1), scores, "s-", color="C2",
              label="held-out log-likelihood")
    twin.legend(loc="center right")

# %%
# Log-density on a grid, and samples next to the held-out data.
grid = np.stack(np.meshgrid(np.linspace(-1.5, 2.5, 80), np.linspace(-1, 1.5, 60)), -1)
log_density = model.score_samples(grid.reshape(-1, 2)).reshape(grid.shape[:2])
new = model.sample(1000, random_state=0)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True, sharey=True)
axes[0].contourf(grid[..., 0], grid[..., 1], np.exp(log_density), levels=20, cmap="viridis")
axes[0].set_title("fitted density")
axes[1].scatter(*X_test[:1000].T, s=2, label="held-out data")
axes[1].scatter(*new.T, s=2, label="samples")
axes[1].set_title("samples")
axes[1].legend(markerscale=5)
plt.show()
