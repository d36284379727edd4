"""
=============================================
Filling missing values with conditional draws
=============================================

Half of the rows of scikit-learn's two moons lose their second coordinate.
Given ``x_0`` alone, ``x_1`` can sit on either moon: its conditional law is
bimodal where the moons overlap in ``x_0``. :class:`~sklearn_diffusion.DiffusionImputer`
fits a diffusion model on the incomplete rows and draws the missing entry
given the observed one; :class:`~sklearn.impute.IterativeImputer` regresses
it on ``x_0``, one guess per row. The plot shows the draws
(``sample_posterior=True``) next to the truth and the regression's fills.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

from sklearn_diffusion import BootstrappedScoreEstimator, DiffusionImputer

FAST = bool(os.environ.get("SKD_DOCS_FAST"))

X, _ = make_moons(n_samples=1000, noise=0.06, random_state=0)
rng = np.random.default_rng(0)
X_missing = X.copy()
holes = rng.random(len(X)) < 0.5
X_missing[holes, 1] = np.nan

estimator = BootstrappedScoreEstimator(n_networks=1, max_iter=300 if FAST else 1500,
                                       random_state=0)
draws = DiffusionImputer(estimator, sample_posterior=True, random_state=0)
filled = draws.fit(X_missing).transform(X_missing)
regression = IterativeImputer(random_state=0).fit(X_missing).transform(X_missing)

# %%
# The draws follow the two moons; the regression fills a line between them.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True, sharey=True)
for ax, fill, title in zip(axes, (filled, regression),
                           ("DiffusionImputer draws", "IterativeImputer fills")):
    ax.scatter(*X[~holes].T, s=2, color="gray", label="complete rows")
    ax.scatter(*fill[holes].T, s=2, color="C1", label="filled rows")
    ax.set_title(title)
axes[0].legend(markerscale=5)
plt.show()
