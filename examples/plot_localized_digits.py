"""
===========================================
Localized diffusion model of digit images
===========================================

An 8x8 digit image is a lattice: a pixel depends mostly on the pixels around
it. :class:`~sklearn_diffusion.LocalizedDiffusionEstimator` with
``locality=(8, 8)`` gives each pixel a small score model that sees only the
square window of pixels within ``radius`` of it (Chebyshev distance), fits
those sub-models independently, and assembles them into one diffusion model
for sampling and log-densities.

As in scikit-learn's "Kernel Density Estimation" example, we choose the model
by cross-validated log-likelihood (``GridSearchCV`` with no ``scoring`` uses
the estimator's ``score``, the mean log-density), draw 44 new digits and
compare the held-out log-density with a grid-searched
:class:`~sklearn.neighbors.KernelDensity` and
:class:`~sklearn.mixture.GaussianMixture` on the same split. The settings
are small so the example runs in about a minute on a CPU; more steps
(``max_iter``) and wider sub-models give a better model.
"""

# %%
# Data: dequantized digits
# ------------------------
# Pixels take 17 integer values; adding uniform noise in ``[0, 1)`` turns the
# pixels into a continuous density (a density of integer data would be
# infinitely peaked), the usual treatment of pixel data. Every model below
# sees the same noisy rows.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

from sklearn_diffusion import LocalizedDiffusionEstimator

X, _ = load_digits(return_X_y=True)
X = X + np.random.default_rng(0).uniform(size=X.shape)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

# %%
# Choose the radius by cross-validated log-density
# ------------------------------------------------
# Radius 0 models every pixel on its own (given the noise level only); a
# larger radius lets each pixel see more of its neighbours but gives each
# sub-model a harder regression.
start = time.perf_counter()
# A digit is not translation-invariant (the border pixels are nearly always
# blank), so every pixel keeps its own sub-model (``shared=False``) rather
# than the one network a lattice shares by default.
model = LocalizedDiffusionEstimator(
    locality=(8, 8), shared=False, hidden_layer_sizes=(32,), block_size=64, max_iter=300,
    n_steps=12, random_state=0,
)
search = GridSearchCV(model, {"radius": [0, 1, 2]}, cv=3).fit(X_train)
diffusion = search.best_estimator_
print(f"best radius: {search.best_params_['radius']} ({time.perf_counter() - start:.0f} s)")
for radius, score in zip(search.cv_results_["param_radius"], search.cv_results_["mean_test_score"]):
    print(f"  radius {radius}: cross-validated mean log-density {score:.1f}")

# %%
# Baselines on the same split
# ---------------------------
kde = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-0.5, 1, 10)}).fit(X_train)
gmm = GridSearchCV(
    GaussianMixture(random_state=0), {"n_components": [1, 2, 4, 8]}
).fit(X_train)
radius, bandwidth = search.best_params_["radius"], kde.best_params_["bandwidth"]
scores = {
    f"LocalizedDiffusionEstimator (radius {radius})": diffusion.score(X_test),
    # KernelDensity.score is the total log-likelihood, not the mean.
    f"KernelDensity (bandwidth {bandwidth:.2f})": kde.best_estimator_.score(X_test) / len(X_test),
    f"GaussianMixture ({gmm.best_params_['n_components']} components)": gmm.best_estimator_.score(
        X_test
    ),
}
print("held-out mean log-density (nats per image, higher is better):")
for name, value in scores.items():
    print(f"  {name:45s} {value:8.1f}")

# %%
# New digits
# ----------
# 44 digits drawn from the fitted model (bottom) next to 44 held-out digits
# (top).
new = diffusion.sample(44, random_state=0)
fig, axes = plt.subplots(9, 11, figsize=(7, 6), subplot_kw=dict(xticks=[], yticks=[]))
for j in range(11):
    axes[4, j].set_visible(False)
    for i in range(4):
        axes[i, j].imshow(X_test[i * 11 + j].reshape(8, 8), cmap="binary", vmin=0, vmax=17)
        axes[i + 5, j].imshow(new[i * 11 + j].reshape(8, 8), cmap="binary", vmin=0, vmax=17)
axes[0, 5].set_title("Real digits (held out)")
axes[5, 5].set_title("Digits sampled from the localized diffusion model")
plt.show()
