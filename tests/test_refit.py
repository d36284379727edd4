"""LocalizedDiffusionEstimator.refit_features: only the touched blocks change."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_diffusion import LocalizedDiffusionEstimator
from sklearn_diffusion import _blocks as blocks_module
from sklearn_diffusion.marginals import resample_knots

# 12 coordinates on a chain in blocks of 4 at radius 1: block 0 holds 0-3
# and reads 0-4, block 1 holds 4-7 and reads 3-8, block 2 holds 8-11 and reads 7-11.
# A fixed smoothing keeps the tests fast; one test checks smoothing="auto".
EST = LocalizedDiffusionEstimator(
    radius=1, block_size=4, hidden_layer_sizes=(8,), max_iter=30, smoothing=1e-3, n_steps=2,
    column_transform="standardize", random_state=0,
)


def chain(seed=0, n=200, d=12):
    return np.cumsum(np.random.default_rng(seed).normal(size=(n, d)), axis=1)


def block_weights(est, block):
    rows = slice(4 * block, 4 * block + 4)
    return {name: p[rows] for name, p in est.model_.named_parameters()}


def assert_blocks_equal(a, b, blocks):
    for block in blocks:
        wa, wb = block_weights(a, block), block_weights(b, block)
        for name in wa:
            assert torch.equal(wa[name], wb[name]), (block, name)


@pytest.fixture(scope="module")
def fitted():
    X = chain()
    X_new = X.copy()
    X_new[:, [1, 4]] = 3.0 * X_new[:, [1, 4]] - 2.0  # sensors 1 and 4 recalibrated
    return X, X_new, clone(EST).fit(X), clone(EST).fit(X_new)


@pytest.mark.parametrize("column_transform, smoothing",
                         [("gaussianize", "auto"), ("standardize", 1e-3)])
def test_refit_matches_a_full_fit(column_transform, smoothing):
    X = chain()
    X_new = X.copy()
    X_new[:, 1] = 3.0 * X_new[:, 1] - 2.0
    est = clone(EST).set_params(column_transform=column_transform, smoothing=smoothing)
    full = clone(est).fit(X_new)
    refit = clone(est).fit(X).refit_features(X_new, [1])
    # Only column 1 changed: the whole refitted model is the full fit's, bit for bit.
    for (name, p), q in zip(full.model_.state_dict().items(), refit.model_.state_dict().values()):
        assert torch.equal(p, q), name
    np.testing.assert_array_equal(refit.mean_, full.mean_)
    np.testing.assert_array_equal(refit.scale_, full.scale_)
    if column_transform == "gaussianize":
        np.testing.assert_array_equal(refit.x_knots_, full.x_knots_)
        np.testing.assert_array_equal(refit.z_knots_, full.z_knots_)
    assert refit.smoothing_ == full.smoothing_
    np.testing.assert_array_equal(refit.score_samples(X_new[:5]), full.score_samples(X_new[:5]))


def test_shared_network_is_refitted_whole():
    X = chain()
    X_new = X.copy()
    X_new[:, 5] += 1.0
    est = clone(EST).set_params(shared=True)
    full = clone(est).fit(X_new)
    refit = clone(est).fit(X).refit_features(X_new, [5])
    for (name, p), q in zip(full.model_.state_dict().items(), refit.model_.state_dict().values()):
        assert torch.equal(p, q), name


def test_untouched_blocks_keep_their_weights(fitted):
    X, X_new, old, full = fitted
    refit = clone(old).fit(X).refit_features(X_new, [4])
    # Feature 4 is read by blocks 0 (coordinate 3) and 1; block 2 must not move.
    assert_blocks_equal(refit, old, [2])
    assert_blocks_equal(refit, full, [1])  # block 1 saw the same data as in the full fit
    assert not torch.equal(block_weights(refit, 0)["output.weight"],
                           block_weights(old, 0)["output.weight"])
    # The transform of the untouched columns is kept, that of feature 4 refitted.
    keep = np.setdiff1d(np.arange(12), [4])
    np.testing.assert_array_equal(refit.mean_[keep], old.mean_[keep])
    np.testing.assert_array_equal(refit.scale_[keep], old.scale_[keep])
    assert refit.mean_[4] != old.mean_[4]


def test_feature_names_and_bad_features():
    pd = pytest.importorskip("pandas")
    X = chain()
    frame = pd.DataFrame(X, columns=[f"s{i}" for i in range(12)])
    est = clone(EST).fit(frame)
    before = est.model_.state_dict()["output.weight"].clone()
    est.refit_features(frame, ["s11"])
    assert torch.equal(est.model_.state_dict()["output.weight"][:8], before[:8])
    for bad in ([12], [-1], ["nope"], [], [0.5]):
        with pytest.raises(ValueError):
            est.refit_features(frame, bad)
    with pytest.raises(ValueError, match="feature names"):
        est.refit_features(frame.iloc[:, :11], [0])
    with pytest.raises(ValueError, match="features"):
        clone(EST).fit(X).refit_features(X[:, :11], [0])


def test_changed_structure_is_refused(fitted):
    X, X_new, old, _ = fitted
    for params in ({"radius": 2}, {"block_size": 6}, {"hidden_layer_sizes": (4,)},
                   {"column_transform": "gaussianize"}):
        est = clone(old).fit(X).set_params(**params)
        with pytest.raises(ValueError, match="structure"):
            est.refit_features(X_new, [1])


@pytest.mark.parametrize("params", [{"locality": "ring"}, {"locality": "auto"}, {"t_max": 2.0},
                                    {"t_min": 0.0005}, {"max_iter": 31}, {"random_state": 1}])
def test_changed_settings_are_refused(fitted, params):
    # A ring's windows, or sub-models trained on other times or seeds, would be
    # mixed with the fitted ones (the fitted distances_ hide a new locality).
    X, X_new, old, _ = fitted
    est = clone(old).fit(X).set_params(**params)
    with pytest.raises(ValueError, match=f"structure.*{next(iter(params))} changed"):
        est.refit_features(X_new, [1])


def test_free_settings_and_a_saved_model_are_accepted(fitted, tmp_path):
    from sklearn_diffusion import persistence

    X, X_new, old, full = fitted
    persistence.save(clone(old).fit(X), tmp_path / "model.skd")
    est = persistence.load(tmp_path / "model.skd").set_params(n_jobs=1, verbose=0)
    est.refit_features(X_new, [1, 4])
    for (name, p), q in zip(full.model_.state_dict().items(), est.model_.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match="radius changed"):
        est.set_params(radius=2).refit_features(X_new, [1])


def test_a_2d_feature_list_is_refused(fitted):
    X, X_new, old, _ = fitted
    with pytest.raises(ValueError, match="1-D"):
        clone(old).fit(X).refit_features(X_new, [[1, 2], [3, 4]])


def _held_out_rows(n, est):
    # The rows fit holds out for early stopping: its first draws from random_state.
    rng = np.random.RandomState(est.random_state)
    rng.randint(2**31 - 1, size=2)
    return rng.permutation(n)[: int(est.validation_fraction * n)]


def test_refit_clips_held_out_rows_as_fit_does():
    # Early stopping judges held-out rows clipped to the training range; a
    # held-out reading far outside it must not steer the refit differently.
    est = clone(EST).set_params(max_iter=300, n_iter_no_change=1)
    X = chain()
    X_new = X.copy()
    X_new[:, 1] = 3.0 * X_new[:, 1] - 2.0
    X_new[_held_out_rows(len(X), est)[0], 1] = 1e3
    full = clone(est).fit(X_new)
    refit = clone(est).fit(X).refit_features(X_new, [1])
    for (name, p), q in zip(full.model_.state_dict().items(), refit.model_.state_dict().values()):
        assert torch.equal(p, q), name


def test_refit_with_missing_values_gets_fit_s_second_round():
    # NaN in the changed column only: fit trains twice (the second time on its
    # own draws) and so must the re-trained blocks; the model is then a full fit's.
    X = chain()
    X_new = X.copy()
    X_new[:, 5] = 2.0 * X_new[:, 5] + 1.0
    X_new[::4, 5] = np.nan
    est = clone(EST).set_params(column_transform="gaussianize")
    full = clone(est).fit(X_new)
    refit = clone(est).fit(X).refit_features(X_new, [5])
    for (name, p), q in zip(full.model_.state_dict().items(), refit.model_.state_dict().values()):
        assert torch.equal(p, q), name
    np.testing.assert_array_equal(refit.score_samples(X[:5]), full.score_samples(X[:5]))


def test_refit_is_atomic(fitted, monkeypatch):
    X, X_new, old, _ = fitted
    est = clone(old).fit(X)
    before = {k: v.clone() for k, v in est.model_.state_dict().items()}
    attributes = dict(vars(est))

    def broken(*args, **kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(blocks_module, "fit_block", broken)
    with pytest.raises(RuntimeError, match="worker died"):
        est.refit_features(X_new, [1])
    assert vars(est).keys() == attributes.keys()
    for key, value in attributes.items():
        assert vars(est)[key] is value, key
    for name, value in est.model_.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_knot_count_matching_keeps_the_map():
    x = np.array([[0.0, 1.0, 3.0, 7.0]])
    z = np.array([[-2.0, 0.0, 1.0, 2.0]])
    grid = np.linspace(-1, 8, 50)
    for k in (3, 4, 7):
        xk, zk = resample_knots(x, z, k)
        assert xk.shape == (1, k) and np.all(np.diff(xk) > 0)
        if k >= 4:  # inserting knots leaves the map unchanged
            np.testing.assert_allclose(np.interp(grid, xk[0], zk[0]), np.interp(grid, x[0], z[0]))
