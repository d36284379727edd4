"""Distances, windows and the local noise model (L2), without scikit-learn."""

import numpy as np
import pytest
import torch

from sklearn_diffusion.likelihood import exact_divergence
from sklearn_diffusion.localization import (
    LocalNoiseModel,
    block_view,
    coordinate_distances,
    dependency_graph,
    local_score_divergence,
    local_windows,
)
from sklearn_diffusion.networks import init_parameters, score_from_noise


def ring_precision(d, coupling=0.4):
    """Circulant tridiagonal precision: a Gaussian Markov field on a ring."""
    precision = np.eye(d)
    for i in range(d):
        precision[i, (i + 1) % d] = precision[(i + 1) % d, i] = -coupling
    return precision


def random_model(windows, centre_slot, shared=False, seed=0):
    """A model with every layer random (the output layer normally starts at zero)."""
    d = windows.shape[0]
    model = LocalNoiseModel(windows, np.arange(d), centre_slot, d, (8, 8), shared,
                            generator=torch.Generator().manual_seed(seed))
    init_parameters(model.output, torch.Generator().manual_seed(seed + 1))
    return model


PATH = np.zeros((5, 5))
PATH[[0, 1, 2, 3], [1, 2, 3, 4]] = PATH[[1, 2, 3, 4], [0, 1, 2, 3]] = 1

# (locality, n_features, radius, shared)
CASES = [
    ("chain", 7, 2, False),
    ("ring", 7, 2, False),
    ("ring", 7, 2, True),
    ((3, 4), 12, 1, False),
    ((3, 4), 12, 1, True),
    (PATH, 5, 2, False),
]


def test_distances():
    assert coordinate_distances("chain", 4)[0].tolist() == [0, 1, 2, 3]
    assert coordinate_distances("ring", 6)[1].tolist() == [1, 0, 1, 2, 3, 2]
    # Chebyshev on the (3, 4) lattice: site 5 = (1, 1) touches all 8 around it.
    assert coordinate_distances((3, 4), 12)[5].reshape(3, 4).tolist() == [
        [1, 1, 1, 2], [1, 0, 1, 2], [1, 1, 1, 2]
    ]
    # An adjacency gives graph hops; a metric distance matrix gives itself back.
    assert coordinate_distances(PATH, 5)[0].tolist() == [0, 1, 2, 3, 4]
    metric = coordinate_distances("ring", 6)
    np.testing.assert_array_equal(coordinate_distances(metric, 6), metric)


def test_auto_locality_finds_the_ring():
    d = 10
    X = np.random.default_rng(0).multivariate_normal(
        np.zeros(d), np.linalg.inv(ring_precision(d)), size=2000
    )
    ring_edges = (ring_precision(d) != 0) & ~np.eye(d, dtype=bool)
    np.testing.assert_array_equal(dependency_graph(X), ring_edges)
    np.testing.assert_array_equal(
        coordinate_distances("auto", d, X), coordinate_distances("ring", d)
    )


@pytest.mark.parametrize("locality, d, radius, shared", CASES)
def test_receptive_field(locality, d, radius, shared):
    distances = coordinate_distances(locality, d)
    windows, centre_slot = local_windows(locality, distances, radius, shared=shared)
    model = random_model(windows, centre_slot, shared)
    x, t = torch.randn(d), torch.tensor([0.3])
    jac = torch.autograd.functional.jacobian(lambda v: model(v[None], t)[0], x)
    outside = torch.as_tensor(distances > radius)
    assert torch.all(jac[outside] == 0)
    # ... and the network does use its neighbours (beyond the skip term).
    inside = torch.as_tensor((distances <= radius) & (distances > 0))
    assert torch.all(jac[inside] != 0)


@pytest.mark.parametrize("locality, d, radius, shared", CASES)
def test_cheap_divergence_is_exact(locality, d, radius, shared):
    windows, centre_slot = local_windows(
        locality, coordinate_distances(locality, d), radius, shared=shared
    )
    model = random_model(windows, centre_slot, shared)
    x, t = torch.randn(6, d), torch.linspace(0.01, 3.0, 6)
    score, div = local_score_divergence(model)(x, t)
    ref_score, ref_div = exact_divergence(lambda y, s: score_from_noise(model(y, s), s), d)(x, t)
    torch.testing.assert_close(score, ref_score)
    torch.testing.assert_close(div, ref_div, rtol=1e-4, atol=1e-4)


def test_block_models_match_the_assembled_model():
    # A block model sees only its halo columns; stacking the blocks' weights
    # must give the model of all coordinates.
    d = 9
    windows, _ = local_windows("ring", coordinate_distances("ring", d), 2)
    full = random_model(windows, 0)
    x, t = torch.randn(5, d), torch.full((5,), 0.5)
    for block in np.array_split(np.arange(d), 3):
        halo, local, core = block_view(windows, block)
        part = LocalNoiseModel(local, core, 0, len(halo), (8, 8),
                               generator=torch.Generator().manual_seed(0))
        state = part.state_dict()
        for name, _ in part.named_parameters():
            state[name] = full.state_dict()[name][block]
        part.load_state_dict(state)
        torch.testing.assert_close(part(x[:, halo], t), full(x, t)[:, block])


@pytest.mark.parametrize(
    "locality, d, message",
    [
        ((3, 3), 8, "lattice shape"),
        (np.ones((3, 4)), 3, "square"),
        (np.ones((3, 3)), 4, "n_features=4"),
        (np.triu(np.ones((3, 3))), 3, "symmetric"),
        (-np.ones((3, 3)), 3, "non-negative"),
    ],
)
def test_bad_locality(locality, d, message):
    with pytest.raises(ValueError, match=message):
        coordinate_distances(locality, d)


def test_bad_radius():
    distances = coordinate_distances("chain", 4)
    with pytest.raises(ValueError, match="at least 0"):
        local_windows("chain", distances, -1)
    # Beyond the diameter (3) every neighbourhood is full: the same windows.
    np.testing.assert_array_equal(local_windows("chain", distances, 4)[0],
                                  local_windows("chain", distances, 3)[0])
    with pytest.raises(ValueError, match="2 \\* radius \\+ 1"):
        local_windows("ring", coordinate_distances("ring", 4), 2, shared=True)
    with pytest.raises(ValueError, match="translation-invariant"):
        local_windows(PATH, coordinate_distances(PATH, 5), 1, shared=True)
