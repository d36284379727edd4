"""Missing values: NaN-aware fit, the conditional sampler and DiffusionImputer."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.linear_model import LinearRegression

from sklearn_diffusion import (
    BootstrappedScoreEstimator,
    DiffusionImputer,
    LocalizedDiffusionEstimator,
)
from sklearn_diffusion.losses import dsm_loss, regression_loss
from sklearn_diffusion.sampling import conditional_noise_draws, conditional_sde

FAST = dict(hidden_layer_sizes=(32,), max_iter=100, n_networks=1, random_state=0, device="cpu")
LOCAL_FAST = dict(hidden_layer_sizes=(8,), max_iter=60, radius=1, random_state=0, device="cpu")


def _gaussian_rows(n, rho=0.8, seed=0):
    rng = np.random.default_rng(seed)
    C = np.array([[1.0, rho], [rho, 1.0]])
    return rng.multivariate_normal([0.0, 0.0], C, size=n)


def _with_holes(X, fraction, seed=0):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


def _gaussian_score(C):
    C = torch.as_tensor(C, dtype=torch.float32)

    def score(x, t):
        a = torch.exp(-t)[:, None, None]
        cov = a**2 * C + (1 - a**2) * torch.eye(len(C))
        return -torch.linalg.solve(cov, x[..., None])[..., 0]

    return score


# ------------------------------------------------------------------ losses
def test_masked_loss_is_the_mean_over_observed_entries():
    pred, target = torch.tensor([[1.0, 5.0], [3.0, 0.0]]), torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = regression_loss(lambda x, t: pred, pred, torch.ones(2), target, mask=mask)
    assert loss.item() == pytest.approx((1 + 9 + 0) / 3)
    # A column subset takes the mask's columns with it.
    loss = regression_loss(lambda x, t: pred[:, :1], pred, torch.ones(2), target,
                           columns=[0], mask=mask)
    assert loss.item() == pytest.approx((1 + 9) / 2)


def test_masked_dsm_ignores_missing_targets():
    # A network exact on column 0 and wrong on column 1 has zero loss when
    # column 1 is never observed.
    from sklearn_diffusion.schedules import sigma

    x0, z, t = torch.zeros(4, 2), torch.randn(4, 2), torch.ones(4)

    def noise_fn(x, t):
        return torch.stack([x[:, 0] / sigma(t), torch.full_like(t, 7.0)], dim=1)

    mask = torch.tensor([[1.0, 0.0]]).repeat(4, 1)
    assert dsm_loss(noise_fn, x0, t, z, mask=mask).item() < 1e-10
    assert dsm_loss(noise_fn, x0, t, z).item() > 1


# -------------------------------------------------------------------- fit
@pytest.mark.parametrize("Estimator, params", [
    (BootstrappedScoreEstimator, FAST),
    (LocalizedDiffusionEstimator, LOCAL_FAST),
    (LocalizedDiffusionEstimator, {**LOCAL_FAST, "locality": "auto"}),
])
def test_fit_accepts_nan_and_tags_say_so(Estimator, params):
    X = _with_holes(np.cumsum(np.random.default_rng(0).normal(size=(150, 4)), axis=1), 0.3)
    X[3] = np.nan
    est = Estimator(**params)
    assert est.__sklearn_tags__().input_tags.allow_nan
    with pytest.warns(UserWarning, match="every entry missing"):
        est.fit(X)
    assert np.all(np.isfinite(est.loss_curve_))
    assert est.sample(2, random_state=0).shape == (2, 4)
    assert np.all(np.isfinite(est.mean_)) and np.all(np.isfinite(est.scale_))


def test_all_missing_rows_are_ignored_with_a_count():
    X = _with_holes(_gaussian_rows(120), 0.2)
    X_holes = np.vstack([X[:50], np.full((3, 2), np.nan), X[50:]])
    X_kept = X[~np.isnan(X).all(axis=1)]
    with pytest.warns(UserWarning, match=r"\b[0-9]+ rows of X have every entry missing"):
        with_rows = BootstrappedScoreEstimator(**FAST).fit(X_holes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        without = BootstrappedScoreEstimator(**FAST).fit(X_kept)
    # Ignored means ignored: the same model as without those rows.
    np.testing.assert_array_equal(with_rows.sample(5, random_state=0),
                                  without.sample(5, random_state=0))


def test_fit_statistics_use_observed_entries():
    X = np.array([[1.0, 10.0], [3.0, np.nan], [np.nan, 30.0], [5.0, 20.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-discrete: 3 values per column
        est = BootstrappedScoreEstimator(**FAST, column_transform="standardize").fit(X)
    np.testing.assert_allclose(est.mean_, [3.0, 20.0])
    np.testing.assert_allclose(est.scale_, [np.std([1, 3, 5]), np.std([10, 30, 20])])


def test_fit_rejects_a_column_without_observed_values():
    X = _gaussian_rows(20)
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="no observed value"):
        BootstrappedScoreEstimator(**FAST).fit(X)


def test_fit_still_rejects_infinity():
    X = _gaussian_rows(20)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        BootstrappedScoreEstimator(**FAST).fit(X)


def test_complete_data_fits_as_before():
    # NaN support must not change a fit on complete data (no extra draws).
    X = _gaussian_rows(100)
    a = BootstrappedScoreEstimator(**FAST).fit(X)
    b = BootstrappedScoreEstimator(**FAST).fit(X.copy())
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)


def test_filled_inputs_with_a_mask_train_like_nan():
    # A NaN entry is held at 0 and skipped by the loss; the same rows filled
    # with 0 and given the mask must train identically, validation included.
    from sklearn_diffusion.networks import ScoreMLP
    from sklearn_diffusion.training import fit_noise_model, validation_set

    X = torch.as_tensor(_with_holes(_gaussian_rows(64), 0.3), dtype=torch.float32)
    observed = ~torch.isnan(X)

    def fit(rows, mask):
        validation = validation_set(rows[:16], 1e-3, 5.0,
                                    generator=torch.Generator().manual_seed(1), min_size=32,
                                    observed=None if mask is None else mask[:16])
        network = ScoreMLP(2, (8,), generator=torch.Generator().manual_seed(2))
        return fit_noise_model(network, rows, max_iter=30, batch_size=16,
                               learning_rate=1e-3, t_min=1e-3, t_max=5.0, observed=mask,
                               generator=torch.Generator().manual_seed(0),
                               validation=validation, check_every=10)

    with_nan, filled = fit(X, None), fit(torch.nan_to_num(X), observed)
    np.testing.assert_array_equal(with_nan.loss_curve, filled.loss_curve)
    np.testing.assert_array_equal(with_nan.validation_curve, filled.validation_curve)
    # Other fills change the inputs, not which entries the loss counts.
    other = fit(torch.where(observed, X, 3.0), observed)
    assert not np.array_equal(other.loss_curve, filled.loss_curve)


def test_incomplete_fit_retrains_on_its_own_conditional_draws(monkeypatch):
    from sklearn_diffusion import bootstrapped

    calls = []
    original = bootstrapped.fit_noise_model

    def spy(network, X, **kwargs):
        calls.append((X.clone(), kwargs.get("observed")))
        return original(network, X, **kwargs)

    monkeypatch.setattr(bootstrapped, "fit_noise_model", spy)
    X = _with_holes(_gaussian_rows(200), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = BootstrappedScoreEstimator(**FAST).fit(X)
    assert len(calls) == 2
    (first, no_mask), (second, mask) = calls
    assert no_mask is None and torch.isnan(first).any()
    # The refit sees finite draws at the missing entries and the observed
    # entries unchanged, and its loss skips the drawn ones.
    assert torch.isfinite(second).all()
    np.testing.assert_array_equal(mask.numpy() > 0, ~torch.isnan(first).numpy())
    np.testing.assert_array_equal(second[mask > 0].numpy(), first[mask > 0].numpy())
    assert second[mask == 0].std() > 0.1
    # Complete rows train once.
    calls.clear()
    BootstrappedScoreEstimator(**FAST).fit(_gaussian_rows(100))
    assert len(calls) == 1 and calls[0][1] is None
    assert np.all(np.isfinite(est.sample(3, random_state=0)))


def test_early_stopping_ignores_held_out_entries_beyond_the_training_range():
    from sklearn_diffusion._model_space import clip_to_training_range as _clip_to_training_range

    Z = np.array([[0.0, -1.0], [2.0, np.nan], [1.0, 1.0]])
    Z_val = np.array([[27.0, np.nan], [-3.0, 0.5]])
    np.testing.assert_array_equal(_clip_to_training_range(Z_val, Z), [[2.0, np.nan], [0.0, 0.5]])
    assert _clip_to_training_range(None, Z) is None


def test_score_samples_on_nan_is_a_clear_error():
    est = BootstrappedScoreEstimator(**FAST).fit(_gaussian_rows(100))
    with pytest.raises(ValueError, match="marginal"):
        est.score_samples([[0.0, np.nan]])


# ----------------------------------------------------- conditional sampler
def test_conditional_sde_with_the_exact_score_matches_the_gaussian_conditional():
    # x_2 | x_1 = 1.5 is N(1.2, 0.36) for correlation 0.8. With the exact
    # score the sampler's own error (32 steps, guidance 1) is a mean 0.07 low
    # and a variance about 10% low (see benchmarks/results/studies/
    # impute_sampler_gaussian.md); 4,000 draws add a standard error of 0.01
    # on the mean and 2% on the variance. Tolerances: 0.1 and 20%.
    n = 4000
    x0 = torch.zeros(n, 2)
    x0[:, 0] = 1.5
    observed = torch.zeros(n, 2, dtype=torch.bool)
    observed[:, 0] = True
    x = conditional_sde(_gaussian_score([[1.0, 0.8], [0.8, 1.0]]), x0, observed, t_min=1e-3,
                        t_max=10.0, n_steps=32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 0], x0[:, 0])
    assert x[:, 1].mean().item() == pytest.approx(1.2, abs=0.1)
    assert x[:, 1].var().item() == pytest.approx(0.36, rel=0.2)


def test_conditional_sde_rows_use_only_their_own_noise():
    g = torch.Generator().manual_seed(0)
    k = conditional_noise_draws(8, 2)
    noise = torch.randn(5, k, 2, generator=g)
    x0 = torch.randn(5, 2, generator=g)
    observed = torch.tensor([[True, False]] * 5)
    kwargs = dict(t_min=1e-3, t_max=5.0, n_steps=8, n_resample=2)
    score = _gaussian_score([[1.0, 0.5], [0.5, 1.0]])
    full = conditional_sde(score, x0, observed, noise=noise, **kwargs)
    alone = conditional_sde(score, x0[2:3], observed[2:3], noise=noise[2:3], **kwargs)
    torch.testing.assert_close(full[2:3], alone)


# ---------------------------------------------------------- the estimators
@pytest.fixture(scope="module")
def gaussian_imputer():
    X = _with_holes(_gaussian_rows(600), 0.2)
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(32, 32), max_iter=600, n_networks=1,
                                     random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DiffusionImputer(est, n_samples=200, random_state=0).fit(X)


@pytest.fixture(scope="module")
def gaussian_model(gaussian_imputer):
    return gaussian_imputer.estimator_


def test_sample_conditional_contract(gaussian_model):
    X = np.array([[1.5, np.nan], [np.nan, np.nan], [0.3, -0.2], [np.nan, -1.0]])
    draws = gaussian_model.sample_conditional(X, n_samples=3, random_state=0)
    assert draws.shape == (3, 4, 2)
    observed = ~np.isnan(X)
    # Observed entries come back exactly, a complete row as it is.
    np.testing.assert_array_equal(draws[:, observed], np.broadcast_to(X[observed], (3, observed.sum())))
    assert np.all(np.isfinite(draws))
    # Reproducible, and a row's draws do not depend on its batch-mates, their
    # order or their number.
    again = gaussian_model.sample_conditional(X, n_samples=3, random_state=0)
    np.testing.assert_array_equal(draws, again)
    alone = gaussian_model.sample_conditional(X[[3]], n_samples=3, random_state=0)
    np.testing.assert_allclose(alone[:, 0], draws[:, 3], rtol=1e-6)
    flipped = gaussian_model.sample_conditional(X[::-1], n_samples=3, random_state=0)
    np.testing.assert_allclose(flipped[:, ::-1], draws, rtol=1e-6)
    other = gaussian_model.sample_conditional(X, n_samples=3, random_state=1)
    assert not np.allclose(other[:, 0, 1], draws[:, 0, 1])


def test_sample_conditional_bounded_chunks_do_not_change_draws(gaussian_model, monkeypatch):
    X = np.column_stack([np.linspace(-1, 1, 40), np.full(40, np.nan)])
    whole = gaussian_model.sample_conditional(X, n_samples=2, random_state=0)
    # A budget that forces one (draw, row) pair per chunk.
    monkeypatch.setattr(type(gaussian_model), "_noise_budget", 1)
    pieces = gaussian_model.sample_conditional(X, n_samples=2, random_state=0)
    np.testing.assert_allclose(pieces, whole, rtol=1e-6)


def test_imputer_gaussian_conditional_mean_and_variance(gaussian_imputer, gaussian_model):
    # Trained on 540 incomplete rows, the model adds its own error to the
    # sampler's (see the exact-score test above); the mean of the fills of
    # x_2 given x_1 in {-1.5, 0, 1.5} must be within 0.2 of 0.8 x_1 (a third
    # of the conditional standard deviation 0.6), and the draws' variance
    # within 35% of 0.36.
    x1 = np.array([-1.5, 0.0, 1.5])
    X = np.column_stack([x1, np.full(3, np.nan)])
    np.testing.assert_allclose(gaussian_imputer.transform(X)[:, 1], 0.8 * x1, atol=0.2)
    draws = gaussian_model.sample_conditional(X, n_samples=400, random_state=0)
    np.testing.assert_allclose(draws[:, :, 1].var(axis=0), 0.36, rtol=0.35)


# ------------------------------------------------------------ the imputer
def test_imputer_fills_every_nan_and_keeps_observed_entries():
    X = _with_holes(_gaussian_rows(200), 0.3)
    X[0] = np.nan          # fully missing
    X[1] = [0.5, -0.5]     # fully observed
    imputer = DiffusionImputer(BootstrappedScoreEstimator(**FAST), n_samples=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = imputer.fit(X).transform(X)
    assert not np.isnan(out).any()
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(out[observed], X[observed])
    np.testing.assert_array_equal(out[1], [0.5, -0.5])
    assert imputer.__sklearn_tags__().input_tags.allow_nan
    # Reproducible with random_state; one draw with sample_posterior.
    np.testing.assert_array_equal(imputer.transform(X), out)
    imputer.set_params(sample_posterior=True)
    draw = imputer.transform(X)
    np.testing.assert_array_equal(draw[observed], X[observed])
    assert not np.array_equal(draw, out)


def test_imputer_multiple_imputation_differs_by_seed():
    X = _with_holes(_gaussian_rows(200), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BootstrappedScoreEstimator(**FAST).fit(X)
    fills = [DiffusionImputer(model, sample_posterior=True, random_state=seed).fit(X)
             .transform(X[:20]) for seed in (0, 1)]
    missing = np.isnan(X[:20])
    assert not np.allclose(fills[0][missing], fills[1][missing])


def test_imputer_in_a_pipeline_with_feature_names_and_set_output():
    pd = pytest.importorskip("pandas")
    X = _with_holes(_gaussian_rows(150), 0.2)
    frame = pd.DataFrame(X, columns=["a", "b"])
    imputer = DiffusionImputer(BootstrappedScoreEstimator(**FAST), n_samples=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer.fit(frame)
    assert imputer.feature_names_in_.tolist() == ["a", "b"]
    assert imputer.get_feature_names_out().tolist() == ["a", "b"]
    out = imputer.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == ["a", "b"]
    y = np.nan_to_num(X[:, 0])
    pipe = make_pipeline(DiffusionImputer(BootstrappedScoreEstimator(**FAST), n_samples=2,
                                          random_state=0), LinearRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(pipe.fit(X, y).predict(X)).all()


def test_imputer_default_estimator_and_seed():
    imputer = DiffusionImputer(random_state=3)
    assert imputer.estimator is None
    X = _with_holes(_gaussian_rows(60), 0.2)
    # The default is cloned with its random_state set from the imputer's.
    custom = DiffusionImputer(BootstrappedScoreEstimator(**{**FAST, "random_state": None}),
                              random_state=3).fit(X)
    assert isinstance(custom.estimator_.random_state, int)


def test_localized_imputer_fills_a_dead_block_and_ignores_n_jobs():
    # Smooth 6x6 fields (sums of random plane waves); a 2x2 block of dead pixels.
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(6), indexing="ij")).reshape(2, -1)
    phases = rng.uniform(0, 2 * np.pi, size=(160, 2))
    X = np.cos(0.6 * grid[0] + phases[:, :1]) + np.cos(0.6 * grid[1] + phases[:, 1:])
    block = (grid[0] >= 2) & (grid[0] < 4) & (grid[1] >= 2) & (grid[1] < 4)
    X_train = _with_holes(X[:120], 0.1)
    X_test = X[120:].copy()
    X_test[:, block] = np.nan
    fills = []
    for n_jobs in (1, 2):
        est = LocalizedDiffusionEstimator(**{**LOCAL_FAST, "max_iter": 100}, locality=(6, 6),
                                          block_size=12, n_jobs=n_jobs)
        imputer = DiffusionImputer(est, n_samples=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fills.append(imputer.fit(X_train).transform(X_test))
    np.testing.assert_allclose(fills[0], fills[1], rtol=1e-6)
    assert not np.isnan(fills[0]).any()
    np.testing.assert_array_equal(fills[0][:, ~block], X[120:, ~block])
