"""The hybrid localized model: a low-rank global component on top of local sub-models."""

import numpy as np
import pytest
import torch

from sklearn_diffusion import LocalizedDiffusionEstimator
from sklearn_diffusion.hybrid import GlobalLowRankModel, hybrid_model, principal_directions
from sklearn_diffusion.localization import coordinate_distances, local_windows
from sklearn_diffusion.persistence import load, save

FAST = dict(hidden_layer_sizes=(16,), max_iter=30, n_steps=4, device="cpu", random_state=0)


def factor_ring(d=12, n=600, loading=0.8, seed=0):
    """A ring field (tridiagonal precision) plus ``loading`` times a common factor."""
    precision = np.eye(d)
    for i in range(d):
        precision[i, (i + 1) % d] = precision[(i + 1) % d, i] = -0.4
    cov = np.linalg.inv(precision) + loading**2 * np.ones((d, d))
    return np.random.default_rng(seed).multivariate_normal(np.zeros(d), cov, size=n), cov


def random_hybrid(d=7, k=2, radius=1, seed=0):
    """A hybrid model in float64 with every weight drawn (no zero output layers)."""
    g = torch.Generator().manual_seed(seed)
    windows, centre = local_windows("ring", coordinate_distances("ring", d), radius)
    U = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))[0]
    net = hybrid_model(windows, centre, d, (8, 8), False, U.numpy(), np.linspace(0.5, 3, k),
                       generator=g).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return net, windows


def test_principal_directions_are_orthonormal_with_the_data_variances():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(4000, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    U, var = principal_directions(Z, 3)
    np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.abs(U), np.eye(5)[:, :3], atol=0.05)
    np.testing.assert_allclose(var, [9.0, 4.0, 1.0], rtol=0.1)
    # More directions than columns: all of them.
    assert principal_directions(Z, 9)[0].shape == (5, 5)


def test_diagonal_of_the_jacobian_is_exact():
    net, _ = random_hybrid()
    x = torch.randn(4, 7, dtype=torch.float64)
    t = torch.tensor([0.01, 0.1, 1.0, 5.0], dtype=torch.float64)
    noise, diag = net.noise_and_self_derivative(x, t)
    jac = torch.stack([torch.func.jacrev(lambda r, tt: net(r[None], tt[None])[0])(x[i], t[i])
                       for i in range(4)])
    torch.testing.assert_close(noise, net(x, t))
    torch.testing.assert_close(diag, torch.diagonal(jac, dim1=1, dim2=2), rtol=1e-10, atol=1e-10)


def test_receptive_field_of_the_local_part_and_rank_of_the_global_part():
    net, windows = random_hybrid(d=9, k=2, radius=1)
    x, t = torch.randn(9, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    local = torch.func.jacrev(lambda r: net.local(r[None], t[None])[0])(x)
    inside = np.zeros((9, 9), dtype=bool)
    for i, w in enumerate(windows):
        inside[i, w[w < 9]] = True
    assert torch.all(local[torch.as_tensor(~inside)] == 0)
    assert torch.all(local[torch.as_tensor(inside)] != 0)
    glob = torch.func.jacrev(lambda r: net.global_part(r[None], t[None])[0])(x)
    assert torch.linalg.matrix_rank(glob).item() == 2


def test_untrained_global_part_is_zero():
    part = GlobalLowRankModel(np.eye(4)[:, :2], [1.0, 2.0], generator=torch.Generator().manual_seed(0))
    assert torch.all(part(torch.randn(3, 4), torch.ones(3)) == 0)


def test_hybrid_captures_a_common_factor_that_no_window_sees():
    X, cov = factor_ring(d=16, n=1200, loading=1.0)
    X_test = np.random.default_rng(1).multivariate_normal(np.zeros(16), cov, size=1000)
    params = dict(locality="ring", radius=1, hidden_layer_sizes=(16,), max_iter=800,
                  device="cpu", random_state=0)
    local = LocalizedDiffusionEstimator(**params).fit(X)
    hybrid = LocalizedDiffusionEstimator(**params, n_global_components=1).fit(X)
    gain = hybrid.score(X_test) - local.score(X_test)
    # Measured: 0.96 nats per row on 16 coordinates; 0.5 is the floor.
    assert gain > 0.5
    assert hybrid.global_components_.shape == (16, 1)
    assert len(hybrid.blocks_) == 1


def test_refit_features_refuses_and_a_plain_refit_drops_the_global_part():
    X, _ = factor_ring(d=6, n=200)
    est = LocalizedDiffusionEstimator(locality="ring", radius=1, n_global_components=1, **FAST).fit(X)
    with pytest.raises(ValueError, match="global component"):
        est.refit_features(X, [0])
    est.set_params(n_global_components=0).fit(X)
    assert not hasattr(est, "global_components_")
    assert type(est.model_).__name__ == "LocalNoiseModel"


def test_persistence_round_trip(tmp_path):
    X, _ = factor_ring(d=6, n=200)
    est = LocalizedDiffusionEstimator(locality="ring", radius=1, n_global_components=2, **FAST).fit(X)
    save(est, tmp_path / "hybrid.skd")
    loaded = load(tmp_path / "hybrid.skd")
    np.testing.assert_array_equal(loaded.global_components_, est.global_components_)
    np.testing.assert_allclose(loaded.score_samples(X[:5]), est.score_samples(X[:5]), rtol=1e-12)
