"""Grid columns fitted dequantized (``dequantize=True``, issue 22).

A column of repeated values on a grid has point masses; dequantized, the
model is a density of the values spread over their cells, so the density at
a value times the step is its probability: checked against a known law.
"""

import numpy as np
import pytest

from sklearn_diffusion import BootstrappedScoreEstimator, LocalizedDiffusionEstimator
from sklearn_diffusion._model_space import grid_steps

FAST = dict(hidden_layer_sizes=(32,), max_iter=300, n_networks=1, random_state=0)
PROBABILITIES = np.array([0.1, 0.2, 0.3, 0.4])


def _counts(n, seed=0, step=1.0):
    # Values 0, 1, 2, 3 (times step) with PROBABILITIES, and a continuous column.
    rng = np.random.default_rng(seed)
    values = rng.choice(4, size=n, p=PROBABILITIES) * step
    return np.column_stack([values, rng.normal(size=n)])


def test_grid_steps_finds_repeated_grid_values_only():
    rng = np.random.default_rng(0)
    X = np.column_stack([
        rng.integers(0, 5, 50) * 0.01,  # two-decimal readings: step 0.01
        rng.normal(size=50),  # continuous: no repeats
        np.repeat([0.0, 1.0, 2.5], [20, 20, 10]),  # repeats, not on a grid
        np.ones(50),  # constant
        np.r_[np.arange(49.0), np.nan],  # on a grid, no repeats, one missing
    ])
    X[3, 0] = np.nan
    np.testing.assert_allclose(grid_steps(X), [0.01, 0, 0, 0, 0])
    assert grid_steps(X, exclude=[0]).tolist() == [0, 0, 0, 0, 0]


def _masses(est, step=1.0):
    # Density of column 0 at each value times the step: the continuous
    # column is integrated out by averaging exp(log p(x0, x1) - log N(x1))
    # over draws of x1 from its own law (independent of column 0).
    x1 = np.random.default_rng(1).normal(size=400)
    log_normal = -0.5 * x1**2 - 0.5 * np.log(2 * np.pi)
    return np.array([np.mean(np.exp(est.score_samples(np.column_stack([np.full(400, k * step),
                                                                       x1])) - log_normal)) * step
                     for k in range(4)])


@pytest.mark.parametrize("step", [1.0, 0.01])
def test_density_at_a_grid_value_is_its_probability_over_the_step(step):
    X = _counts(2000, step=step)
    est = BootstrappedScoreEstimator(**FAST).fit(X)
    np.testing.assert_allclose(est.grid_steps_, [step, 0.0])
    mass = _masses(est, step)
    # Measured: 0.14, 0.20, 0.30, 0.37 (the held-out smoothing blurs the
    # jumps between blocks, most at the edge); without dequantization the
    # same fit gives 0.77 to 2.9, spikes summing to 7.3.
    np.testing.assert_allclose(mass, PROBABILITIES, rtol=0.5)
    assert mass.sum() == pytest.approx(1.0, abs=0.1)


@pytest.mark.filterwarnings("ignore:X looks near-discrete")
def test_without_dequantize_the_steps_are_zero_and_the_fit_differs():
    X = _counts(300)
    on = BootstrappedScoreEstimator(**FAST).fit(X)
    off = BootstrappedScoreEstimator(dequantize=False, **FAST).fit(X)
    assert off.grid_steps_.tolist() == [0.0, 0.0]
    assert not np.allclose(on.score_samples(X[:20]), off.score_samples(X[:20]))
    # The point masses are spikes without it: far more than probability 1.
    assert _masses(off).sum() > 3.0
    # Same seed, same noise: a dequantized fit is reproducible.
    again = BootstrappedScoreEstimator(**FAST).fit(X)
    np.testing.assert_array_equal(on.score_samples(X[:20]), again.score_samples(X[:20]))


def test_samples_of_an_integer_column_stay_integers():
    est = BootstrappedScoreEstimator(**FAST).fit(_counts(500))
    S = est.sample(200, random_state=0)
    np.testing.assert_array_equal(S[:, 0], np.round(S[:, 0]))
    assert set(np.unique(S[:, 0])) <= {0.0, 1.0, 2.0, 3.0}


def test_localized_refit_keeps_the_other_columns_steps():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 400), rng.integers(0, 4, 400) * 0.5,
                         rng.normal(size=400), rng.normal(size=400)]).astype(float)
    est = LocalizedDiffusionEstimator(locality="chain", radius=1, shared=False,
                                      hidden_layer_sizes=(8,), max_iter=30,
                                      random_state=0).fit(X)
    np.testing.assert_allclose(est.grid_steps_, [1.0, 0.5, 0.0, 0.0])
    X2 = X.copy()
    X2[:, 1] = rng.normal(size=400)  # column 1 is now continuous
    est.refit_features(X2, [1])
    np.testing.assert_allclose(est.grid_steps_, [1.0, 0.0, 0.0, 0.0])
