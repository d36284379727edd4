"""Samples stay in the columns' training domain: their range, and whole numbers where they were."""

import numpy as np
import pytest

from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion.persistence import load, save

# Counts are near-discrete; the warning about the likelihood ODE is not under test.
pytestmark = pytest.mark.filterwarnings("ignore:X looks near-discrete")


def _table(seed=0, n=300):
    # A count (Poisson, never negative), a non-negative skewed column and a
    # bounded one: the draws of a smooth model spill past all three.
    rng = np.random.default_rng(seed)
    count = rng.poisson(2.0, n).astype(float)
    skewed = rng.exponential(1.0, n)
    bounded = rng.uniform(0.0, 1.0, n)
    return np.column_stack([count, skewed, bounded + 0.3 * skewed])


FAST = dict(hidden_layer_sizes=(32,), max_iter=200, n_networks=1, random_state=0)


def _outside(S, X):
    return (S < X.min(axis=0)) | (S > X.max(axis=0))


def test_samples_stay_in_the_training_range_and_integer_columns_are_integers():
    X = _table()
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    np.testing.assert_array_equal(est.integer_features_, [True, False, False])
    np.testing.assert_array_equal(est.data_min_, X.min(axis=0))
    np.testing.assert_array_equal(est.data_max_, X.max(axis=0))
    S = est.sample(2000, random_state=0)
    assert not _outside(S, X).any()
    np.testing.assert_array_equal(S[:, 0], np.round(S[:, 0]))
    # Not a property of the model: its own draws leave the range and the integers.
    raw = est.set_params(sample_domain="real").sample(2000, random_state=0)
    assert _outside(raw, X).any()
    assert (raw[:, 0] != np.round(raw[:, 0])).mean() > 0.9


def test_conditional_draws_respect_the_domain_and_keep_observed_entries():
    X = _table()
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    rows = np.array([[np.nan, 0.5, np.nan], [2.5, np.nan, np.nan]])
    draws = est.sample_conditional(rows, n_samples=50, random_state=0)
    assert not _outside(draws.reshape(-1, 3), X).any()
    np.testing.assert_array_equal(draws[:, 0, 0], np.round(draws[:, 0, 0]))
    # An observed entry comes back as given, even where the column is integer.
    np.testing.assert_array_equal(draws[:, 1, 0], 2.5)
    np.testing.assert_array_equal(draws[:, 0, 1], 0.5)


def test_localized_samples_stay_in_the_domain():
    X = np.column_stack([_table(seed=1), _table(seed=2)])
    est = LocalizedDiffusionEstimator(locality=(6,), radius=1, hidden_layer_sizes=(16,),
                                      max_iter=100, random_state=0).fit(X)
    S = est.sample(500, random_state=0)
    assert not _outside(S, X).any()
    integer = np.flatnonzero(est.integer_features_)
    np.testing.assert_array_equal(integer, [0, 3])
    np.testing.assert_array_equal(S[:, integer], np.round(S[:, integer]))
    # sample_domain shapes no fitted state: refit_features accepts a change of it.
    est.set_params(sample_domain="real").refit_features(X, [1])


def test_the_domain_is_saved(tmp_path):
    X = _table()
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    save(est, tmp_path / "m.skd")
    loaded = load(tmp_path / "m.skd")
    np.testing.assert_array_equal(loaded.integer_features_, est.integer_features_)
    np.testing.assert_array_equal(loaded.sample(100, random_state=0),
                                  est.sample(100, random_state=0))


@pytest.mark.parametrize("column", [[0.0, 0.0, 0.0], [1e300, 2e300, 3e300]])
def test_constant_and_huge_columns_are_not_integer(column):
    from sklearn_diffusion._model_space import column_domain

    X = np.column_stack([column, [0.5, 1.5, 2.0]])
    integer = column_domain(X)[2]
    np.testing.assert_array_equal(integer, [False, False])
