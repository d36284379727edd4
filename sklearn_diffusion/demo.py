"""The README's demo: a diffusion model of handwritten digits.

Run ``python -m sklearn_diffusion.demo``. It fits a
:class:`~sklearn_diffusion.BootstrappedScoreEstimator` on 15 principal
components of scikit-learn's digits (as scikit-learn's kernel density example
does), prints the held-out mean log-density next to a kernel density estimate
on the same split, and saves new digits next to real ones in
``digits_samples.png``.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

from .bootstrapped import BootstrappedScoreEstimator


def main(argv=None):
    """Fit, compare with KernelDensity, and plot samples; returns the scores.

    Examples
    --------
    >>> from sklearn_diffusion.demo import main
    >>> scores = main(["--max-iter", "20", "--output", ""])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=4000)
    parser.add_argument("--output", default="digits_samples.png", help="PNG path ('' for none)")
    args = parser.parse_args(argv)

    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    pca = PCA(n_components=15, random_state=0).fit(X_train)
    Z_train, Z_test = pca.transform(X_train), pca.transform(X_test)

    start = time.perf_counter()
    model = BootstrappedScoreEstimator(max_iter=args.max_iter, random_state=0, verbose=1)
    model.fit(Z_train)
    fit_seconds = time.perf_counter() - start
    kde = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1, 1, 20)}).fit(Z_train)

    scores = {
        "BootstrappedScoreEstimator": model.score(Z_test),
        "KernelDensity (grid-searched)": kde.best_estimator_.score(Z_test) / len(Z_test),
    }
    print(f"digits, 15 PCA components, {len(Z_train)} train / {len(Z_test)} test rows")
    print(f"fit in {fit_seconds:.1f} s on {model.device_}")
    print("held-out mean log-density (nats, higher is better):")
    for name, value in scores.items():
        print(f"  {name:32s} {value:9.3f}")

    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        new = pca.inverse_transform(model.sample(44, random_state=0))
        real = X_test[:44]
        fig, axes = plt.subplots(9, 11, figsize=(7, 6), subplot_kw=dict(xticks=[], yticks=[]))
        for j in range(11):
            axes[4, j].set_visible(False)
            for i in range(4):
                axes[i, j].imshow(real[i * 11 + j].reshape(8, 8), cmap="binary", vmin=0, vmax=16)
                axes[i + 5, j].imshow(new[i * 11 + j].reshape(8, 8), cmap="binary", vmin=0, vmax=16)
        axes[0, 5].set_title("Real digits (held out)")
        axes[5, 5].set_title("Digits sampled from the diffusion model")
        fig.savefig(args.output, dpi=100)
        print(f"samples saved to {args.output}")
    return scores


if __name__ == "__main__":
    main()
