"""DiffusionOutlierDetector.feature_scores: shape, sign, locality, a planted fault."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KernelDensity

from sklearn_diffusion import (
    BootstrappedScoreEstimator,
    DiffusionOutlierDetector,
    LocalizedDiffusionEstimator,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _fields import field_precision, field_sample  # noqa: E402

D = 16


@pytest.fixture(scope="module")
def ring():
    """A fitted localized detector on a 16-site ring Gaussian field and its precision."""
    Q = field_precision("ring", D)
    X, _ = field_sample(Q, 800, seed=0)
    est = LocalizedDiffusionEstimator(
        locality="ring", radius=1, hidden_layer_sizes=(16, 16), max_iter=400,
        early_stopping=False, smoothing=1e-3, column_transform="standardize", random_state=0,
    )
    return DiffusionOutlierDetector(est).fit(X), Q


@pytest.fixture(scope="module")
def small_global():
    X = np.random.default_rng(0).normal(size=(200, 3))
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(32,), max_iter=100, random_state=0)
    return DiffusionOutlierDetector(est).fit(X), X


def test_shape_sign_and_sum(small_global):
    det, X = small_global
    scores = det.feature_scores(X[:10])
    assert scores.shape == (10, 3) and scores.dtype == np.float64
    assert np.all(scores >= 0)
    # The terms of a row sum to the learned score norm at the detector's levels.
    norm = det.estimator_.anomaly_score(X[:10], method="score_norm", n_levels=det.n_levels,
                                        noise_range=det.noise_range)
    np.testing.assert_allclose(scores.sum(axis=1), norm, rtol=1e-5)
    # Higher = more responsible: a row far off in feature 2 blames feature 2.
    assert det.feature_scores([[0.0, 0.0, 6.0]]).argmax() == 2


def test_rows_are_scored_independently(small_global):
    det, X = small_global
    together = det.feature_scores(X[:40])
    alone = np.vstack([det.feature_scores(X[i : i + 1]) for i in range(0, 40, 7)])
    np.testing.assert_array_equal(together[::7], alone)
    np.testing.assert_array_equal(together, det.feature_scores(X[:40]))


def test_localized_term_sees_only_its_neighbourhood(ring):
    det, Q = ring
    X, _ = field_sample(Q, 5, seed=1)
    moved = X.copy()
    moved[:, 8] += 3.0  # sites 7, 8, 9 see it at radius 1; the others must not
    before, after = det.feature_scores(X), det.feature_scores(moved)
    others = np.setdiff1d(np.arange(D), [7, 8, 9])
    np.testing.assert_array_equal(before[:, others], after[:, others])
    assert np.all(after[:, 8] > before[:, 8])


def test_planted_fault_ranks_first_on_a_ring(ring):
    # Fault: 4 conditional standard deviations (1 / sqrt(Q_jj) = 0.58, against
    # a marginal standard deviation of 0.67) in one random site per row. The
    # exact conditional z-score of the true field, |(Q x)_j| / sqrt(Q_jj),
    # ranks it first in 94% of these 200 rows; this model (400 steps, seed 0)
    # in 92%. The floor, the target of 80%, fails a wrong coordinate
    # or a wrong sign (chance is 1 in 16), with room for training noise.
    det, Q = ring
    X, _ = field_sample(Q, 200, seed=2)
    faulty = np.random.default_rng(3).integers(D, size=len(X))
    X[np.arange(len(X)), faulty] += 4.0 / np.sqrt(np.diag(Q)[faulty])
    top1 = np.mean(det.feature_scores(X).argmax(axis=1) == faulty)
    assert top1 >= 0.8


def test_needs_a_diffusion_estimator():
    X = np.random.default_rng(0).normal(size=(50, 2))
    det = DiffusionOutlierDetector(KernelDensity()).fit(X)
    with pytest.raises(ValueError, match="diffusion estimator"):
        det.feature_scores(X)


def test_input_checks(small_global):
    det, X = small_global
    with pytest.raises(NotFittedError):
        DiffusionOutlierDetector().feature_scores(X)
    with pytest.raises(ValueError, match="features"):
        det.feature_scores(X[:, :2])
