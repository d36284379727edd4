"""Helpers of benchmarks/data_efficiency.py (issue 23) that its tables rest on.

The "rows to reach" column is an interpolation and the dimension family a new
closed-form target: both are checked against hand computations.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from data_efficiency import SubspaceMixture, rows_to_reach  # noqa: E402


def test_rows_to_reach_interpolates_in_log_n():
    # The gap falls from 2 at n = 100 to 1 at n = 400: half-way in log n is n = 200.
    assert rows_to_reach([50, 100, 400], [3.0, 2.0, 1.0], 1.5) == pytest.approx(200.0)
    assert rows_to_reach([50, 100, 400], [-3.0, -2.0, -1.0], -1.5,
                         higher_is_better=True) == pytest.approx(200.0)


def test_rows_to_reach_edges_and_missing_points():
    assert rows_to_reach([50, 100], [1.0, 0.5], 2.0) == 50  # there from the start
    assert rows_to_reach([50, 100], [3.0, 2.5], 2.0) == math.inf  # never
    # A failed (NaN) cell counts as not there, and is not interpolated across.
    assert rows_to_reach([50, 100, 200], [math.nan, math.nan, 1.0], 2.0) == 200
    assert rows_to_reach([50, 100, 200], [3.0, math.nan, 1.0], 2.0) == 200


@pytest.mark.parametrize("d", [2, 8])
def test_subspace_mixture_log_density_matches_scipy(d):
    target = SubspaceMixture(d)
    X = target.sample(300, np.random.default_rng(0))
    reference = logsumexp([np.log(0.25) + stats.multivariate_normal(m, np.eye(d)).logpdf(X)
                           for m in target.means], axis=0)
    np.testing.assert_allclose(target.log_density(X), reference, rtol=0, atol=1e-10)
    # The modes are the corners of a square of side 6, in one plane through 0.
    gaps = np.linalg.norm(target.means[:, None] - target.means[None], axis=-1)
    np.testing.assert_allclose(np.sort(gaps[np.triu_indices(4, 1)]), [6] * 4 + [6 * 2**0.5] * 2)
    assert np.linalg.matrix_rank(target.means) == 2


def test_subspace_mixture_samples_have_unit_variance_across_the_plane():
    target = SubspaceMixture(16)
    X = target.sample(20_000, np.random.default_rng(1))
    plane = np.linalg.qr(target.means[:3].T)[0][:, :2]
    across = X - (X @ plane) @ plane.T
    # 14 orthogonal directions of N(0, 1): each variance within 5 standard
    # errors (sqrt(2 / 20,000) = 0.01) of 1.
    variances = np.linalg.svd(across - across.mean(0), compute_uv=False)[:14] ** 2 / len(X)
    np.testing.assert_allclose(variances, 1.0, atol=0.05)
