"""LocalizedDiffusionEstimator: closed forms, scikit-learn tools, parallel fits."""

import pickle

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_diffusion import LocalizedDiffusionEstimator
from sklearn_diffusion.likelihood import broad_log_density, exact_divergence, log_density
from sklearn_diffusion.networks import score_from_noise
from sklearn_diffusion.schedules import gaussian_score, perturb

FAST = dict(hidden_layer_sizes=(16,), max_iter=30, n_steps=4, device="cpu", random_state=0)


def ring_gaussian(d=8, n=1000, coupling=0.4, seed=0):
    """Rows of a Gaussian whose precision is tridiagonal on a ring, and its covariance."""
    precision = np.eye(d)
    for i in range(d):
        precision[i, (i + 1) % d] = precision[(i + 1) % d, i] = -coupling
    cov = np.linalg.inv(precision)
    return np.random.default_rng(seed).multivariate_normal(np.zeros(d), cov, size=n), cov


def same_model(a, b):
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_learns_the_marginal_block_score():
    # The population optimum of sub-model i is the score of the marginal of
    # its block N = N_r(i): -[(C_t)_NN^{-1} x_N]_i (DESIGN.md, Localization).
    d = 8
    X, cov = ring_gaussian(d, n=2000)
    est = LocalizedDiffusionEstimator(
        locality="ring", radius=1, max_iter=400, early_stopping=False, device="cpu",
        random_state=0,
    ).fit(X)
    # Exact law of the standardized rows the model was trained on.
    inv_scale = 1 / est.scale_
    mean = torch.tensor(-est.mean_ * inv_scale, dtype=torch.float32)
    cov = torch.tensor(inv_scale[:, None] * cov * inv_scale, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    x0 = mean + torch.randn(4000, d, generator=g) @ torch.linalg.cholesky(cov).T
    errors, baselines = [], []
    for t in (0.05, 0.2, 0.5, 1.0):
        tt = torch.full((len(x0),), t)
        x = perturb(x0, tt, torch.randn(x0.shape, generator=g))
        with torch.no_grad():
            score = score_from_noise(est.model_(x, tt), tt)
        exact = torch.stack(
            [
                gaussian_score(x[:, N], tt, mean[N], cov[N][:, N])[:, N == i][:, 0]
                for i, N in enumerate(torch.as_tensor(b) for b in est.neighbourhoods_)
            ],
            dim=1,
        )
        errors.append(((score - exact) ** 2).sum() / (exact**2).sum())
        baselines.append(((-x - exact) ** 2).sum() / (exact**2).sum())
    # Measured: about 0.01 (seed 0), against 0.15 for the untrained model (the
    # standard-normal score -x). 2000 rows and 400 steps leave a statistical
    # error of a few percent at small t; 0.03 allows for it and still
    # requires a five-fold gain over the starting point.
    assert np.mean(errors) < 0.03
    assert np.mean(errors) < np.mean(baselines) / 5


def test_score_samples_uses_the_exact_divergence():
    X, _ = ring_gaussian(d=5, n=200)
    est = LocalizedDiffusionEstimator(
        locality="ring", radius=1, column_transform="standardize", smoothing=1e-3, **FAST
    ).fit(X)
    Z = torch.tensor((X[:20] - est.mean_) / est.scale_, dtype=torch.float32)
    score_fn = lambda x, t: score_from_noise(est.model_(x, t), t)  # noqa: E731
    # The density smoothed at s = t_min: log p_s(a_s z) + d log a_s.
    s = est.smoothing_
    reference = log_density(
        score_fn, exact_divergence(score_fn, Z.shape[1]), Z * np.exp(-s),
        t_min=s, t_max=est.t_max, n_steps=est.n_steps,
    ).numpy() - Z.shape[1] * s
    # ... mixed with N(0, I), the defensive part of the returned density.
    broad = broad_log_density(Z.numpy().astype(np.float64))
    w = est._broad_weight
    reference = np.logaddexp(np.log1p(-w) + reference, np.log(w) + broad) - np.log(est.scale_).sum()
    np.testing.assert_allclose(est.score_samples(X[:20]), reference, rtol=1e-4, atol=1e-4)


def test_auto_locality_exposes_learned_neighbourhoods():
    X, _ = ring_gaussian(d=8, n=1000)
    est = LocalizedDiffusionEstimator(locality="auto", radius=1, **FAST).fit(X)
    assert [n.tolist() for n in est.neighbourhoods_] == [
        sorted({(i - 1) % 8, i, (i + 1) % 8}) for i in range(8)
    ]


def test_grid_search_over_radius_in_a_pipeline():
    X, _ = ring_gaussian(d=6, n=300, coupling=0.45)
    pipe = make_pipeline(StandardScaler(), LocalizedDiffusionEstimator(
        locality="ring", **{**FAST, "max_iter": 100}))
    search = GridSearchCV(pipe, {"localizeddiffusionestimator__radius": [0, 1]}, cv=2).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    # Neighbouring coordinates are strongly dependent: radius 0 (independent
    # coordinates) must lose in held-out log-density.
    assert search.best_params_ == {"localizeddiffusionestimator__radius": 1}



def test_grid_search_with_a_learned_graph_has_no_nan_fold():
    # locality="auto" learns its graph on each fold, so a radius can exceed
    # one fold's graph diameter (three independent blocks of columns: the
    # graph may also be disconnected); that fold must still be scored.
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(150, 3)), 3, axis=1) + 0.3 * rng.normal(size=(150, 9))
    search = GridSearchCV(LocalizedDiffusionEstimator(locality="auto", **FAST),
                          {"radius": [0, 1, 3, 50]}, cv=3, error_score="raise").fit(X)
    folds = [search.cv_results_[f"split{k}_test_score"] for k in range(3)]
    assert np.all(np.isfinite(folds))

@pytest.mark.parametrize("params, shared", [
    (dict(locality="chain"), True),
    (dict(locality="ring"), True),
    (dict(locality=(2, 4)), True),
    (dict(locality="chain", radius=1.5), False),  # not a whole number of grid steps
    (dict(locality="ring", radius=4), False),  # a window of 9 sites on a ring of 8
    (dict(locality="auto"), False),  # a learned graph is not a grid
    (dict(locality=np.eye(8, k=1) + np.eye(8, k=-1)), False),  # nor is a matrix
    (dict(locality="chain", shared=False), False),
    (dict(locality="ring", radius=2, shared=True), True),
])
def test_shared_auto_shares_windows_on_regular_grids(params, shared):
    X, _ = ring_gaussian(d=8, n=60)
    est = LocalizedDiffusionEstimator(**{**FAST, "radius": 1, "max_iter": 3, **params}).fit(X)
    assert est.shared_ is shared
    assert est.model_.output.weight.shape[0] == (1 if shared else 8)  # stacked networks


def test_auto_radius_is_the_dedicated_fit_with_the_best_heldout_likelihood():
    X, _ = ring_gaussian(d=8, n=400, coupling=0.45)
    params = dict(locality="ring", **{**FAST, "max_iter": 60})
    auto = LocalizedDiffusionEstimator(radius="auto", **params).fit(X)
    assert auto.radius_scores_.shape == (3,) and np.all(np.isfinite(auto.radius_scores_))
    assert auto.radius_ == (1.0, 2.0, 3.0)[np.argmax(auto.radius_scores_)]
    # The kept model is the fit at that radius, bit for bit, and each score is
    # that fit's log-likelihood on the held-out (early-stopping) rows, so the
    # training rows play no part in the choice.
    for k, radius in enumerate((1, 2, 3)):
        fixed = LocalizedDiffusionEstimator(radius=radius, **params).fit(X)
        rows = fixed._prepare(X).Z_stop
        assert auto.radius_scores_[k] == pytest.approx(
            fixed._heldout_score(rows, fixed.model_), abs=1e-4)
        if radius == auto.radius_:
            assert same_model(auto, fixed)
            assert auto.smoothing_ == fixed.smoothing_
    again = LocalizedDiffusionEstimator(radius="auto", **params).fit(X)
    assert again.radius_ == auto.radius_
    np.testing.assert_array_equal(again.radius_scores_, auto.radius_scores_)


def test_auto_radius_without_heldout_rows_and_with_gaps():
    X, _ = ring_gaussian(d=6, n=400)  # 40 held-out rows: enough to choose on
    params = dict(locality="ring", radius="auto", **{**FAST, "max_iter": 5})
    est = LocalizedDiffusionEstimator(early_stopping=False, **params).fit(X)
    assert est.radius_ == 2.0 and np.isnan(est.radius_scores_).all()
    X[::7, 2] = np.nan  # the second round on filled-in rows keeps the first round's radius
    est = LocalizedDiffusionEstimator(**params).fit(X)
    assert est.radius_ in (1.0, 2.0, 3.0) and np.isfinite(est.radius_scores_).all()
    assert np.isfinite(est.score_samples(X[1:7])).all()


def test_pickle_round_trip():
    X, _ = ring_gaussian(d=6, n=100)
    est = LocalizedDiffusionEstimator(locality=(2, 3), radius=1, shared=True, **FAST).fit(X)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.score_samples(X[:10]), est.score_samples(X[:10]))
    np.testing.assert_array_equal(loaded.sample(5, random_state=0), est.sample(5, random_state=0))


def test_n_jobs_does_not_change_the_model():
    X, _ = ring_gaussian(d=8, n=200)
    params = dict(locality="ring", radius=1, shared=False, block_size=3, **FAST)
    one = LocalizedDiffusionEstimator(**params, n_jobs=1).fit(X)
    two = LocalizedDiffusionEstimator(**params, n_jobs=2).fit(X)
    assert len(one.blocks_) == 3
    assert same_model(one, two)
    np.testing.assert_array_equal(one.loss_curve_, two.loss_curve_)
    np.testing.assert_array_equal(one.score_samples(X[:5]), two.score_samples(X[:5]))


def test_dask_backend():
    distributed = pytest.importorskip("distributed")
    X, _ = ring_gaussian(d=8, n=200)
    params = dict(locality="ring", radius=1, shared=False, block_size=4, **FAST)
    reference = LocalizedDiffusionEstimator(**params).fit(X)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster), parallel_config(backend="dask"):
        est = LocalizedDiffusionEstimator(**params).fit(X)
    assert same_model(est, reference)


@pytest.mark.parametrize(
    "params, n_features, message",
    [
        (dict(radius=-1), 8, "radius"),
        (dict(locality=(3, 3)), 8, "lattice shape"),
        (dict(locality=np.ones((3, 4))), 3, "square"),
        (dict(locality=np.ones((4, 4))), 3, "n_features=3"),
        (dict(locality=np.triu(np.ones((3, 3)))), 3, "symmetric"),
        (dict(locality=-np.ones((3, 3))), 3, "non-negative"),
        (dict(locality="ring", radius=2, shared=True), 4, "2 \\* radius \\+ 1"),
    ],
)
def test_bad_input_is_caught_at_fit(params, n_features, message):
    X = np.random.default_rng(0).normal(size=(20, n_features))
    with pytest.raises(ValueError, match=message):
        LocalizedDiffusionEstimator(**{**FAST, "radius": 1, **params}).fit(X)
