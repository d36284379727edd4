"""The Gaussian-mixture reference: its closed-form noise, trace and fit."""

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion.reference import fit_reference_mixture
from sklearn_diffusion.likelihood import broad_log_density, log_density
from sklearn_diffusion.networks import MixtureReference, ScoreEnsemble, ScoreMLP, init_parameters
from sklearn_diffusion.schedules import gaussian_mixture_log_density, gaussian_mixture_score, sigma

D = torch.float64


def _rotation(d, seed):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=D))
    return q


def _mixture(layout, d=3):
    g = torch.Generator().manual_seed(1)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=D)
    means = 2 * torch.randn(3, d, generator=g, dtype=D)
    eigenvalues = 0.1 + torch.rand(3, d, generator=g, dtype=D)
    if layout == "diagonal":
        vecs = torch.eye(d, dtype=D).expand(3, d, d).clone()
    elif layout == "tied":
        vecs = _rotation(d, 0).expand(3, d, d).clone()
        eigenvalues = eigenvalues[:1].expand(3, d).clone()
    else:
        vecs = torch.stack([_rotation(d, k) for k in range(3)])
    return weights, means, eigenvalues, vecs


@pytest.mark.parametrize("layout", ["diagonal", "tied", "full"])
def test_untrained_network_is_the_mixture_noise(layout):
    weights, means, eigenvalues, vecs = _mixture(layout)
    net = MixtureReference(ScoreMLP(3, (8,)).double(), weights, means, eigenvalues, vecs)
    assert net._layout == layout
    covs = vecs @ torch.diag_embed(eigenvalues) @ vecs.transpose(1, 2)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=D)
    t = torch.tensor([1e-3, 0.01, 0.1, 0.5, 2.0, 8.0], dtype=D)
    truth = -sigma(t)[:, None] * gaussian_mixture_score(x, t, weights, means, covs)
    torch.testing.assert_close(net(x, t), truth, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("layout", ["diagonal", "tied", "full"])
def test_trace_matches_the_autograd_jacobian(layout):
    weights, means, eigenvalues, vecs = _mixture(layout)
    g = torch.Generator().manual_seed(0)
    inner = init_parameters(ScoreMLP(3, (8, 8)), g).double()  # a non-zero correction
    net = MixtureReference(inner, weights, means, eigenvalues, vecs)
    x = 2 * torch.randn(5, 3, generator=g, dtype=D)
    t = torch.tensor([1e-3, 0.05, 0.3, 1.0, 4.0], dtype=D)
    noise, trace = net.noise_and_trace(x, t)
    jac = torch.func.vmap(torch.func.jacrev(lambda r, s: net(r[None], s[None])[0]))(x, t)
    torch.testing.assert_close(noise, net(x, t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace, jac.diagonal(dim1=1, dim2=2).sum(1), rtol=1e-9, atol=1e-9)


def test_untrained_reference_gives_the_mixture_log_density():
    weights, means, eigenvalues, vecs = _mixture("full", d=2)
    net = MixtureReference(ScoreMLP(2, (8,)).double(), weights, means, eigenvalues, vecs)
    covs = vecs @ torch.diag_embed(eigenvalues) @ vecs.transpose(1, 2)
    x = means[torch.arange(60) % 3] + torch.randn(60, 2, generator=torch.Generator().manual_seed(3),
                                                   dtype=D)

    def score_div(x, t):
        noise, trace = net.noise_and_trace(x, t)
        return -noise / sigma(t)[:, None], -trace / sigma(t)

    lp = log_density(lambda x, t: -net(x, t) / sigma(t)[:, None], score_div, x,
                     t_min=0.02, t_max=10.0, n_steps=32)
    truth = gaussian_mixture_log_density(x, torch.full((60,), 0.02, dtype=D), weights, means, covs)
    assert (lp - truth).abs().max() < 1e-2


def test_fit_reference_mixture_returns_the_bic_mixture_as_eigenpairs():
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.6], [0.6, 0.5]])
    Z = np.concatenate([rng.multivariate_normal([-3, 0], cov, 300),
                        rng.multivariate_normal([3, 1], cov, 300)])
    weights, means, eigenvalues, vecs = fit_reference_mixture(Z, random_state=0)
    assert len(weights) == 2
    np.testing.assert_allclose(weights.sum(), 1.0)
    # The mixture's covariances come back from the eigenpairs.
    gm = GaussianMixture(2, covariance_type="tied", reg_covar=1e-3, random_state=0).fit(Z)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], gm.means_[np.argsort(gm.means_[:, 0])], atol=1e-6)
    rebuilt = vecs @ (eigenvalues[:, :, None] * vecs.transpose(0, 2, 1))
    np.testing.assert_allclose(rebuilt, np.broadcast_to(gm.covariances_, (2, 2, 2)), atol=1e-6)
    np.testing.assert_allclose(vecs @ vecs.transpose(0, 2, 1), np.broadcast_to(np.eye(2), (2, 2, 2)),
                               atol=1e-10)


def test_fit_reference_mixture_falls_back_to_the_standard_normal():
    Z = np.random.default_rng(0).normal(size=(40, 4))
    Z[1:, 0] = np.nan  # one complete row left: too few for any mixture
    weights, means, eigenvalues, vecs = fit_reference_mixture(Z)
    np.testing.assert_array_equal(weights, [1.0])
    np.testing.assert_array_equal(means, np.zeros((1, 4)))
    np.testing.assert_array_equal(eigenvalues, np.ones((1, 4)))
    np.testing.assert_array_equal(vecs, np.eye(4)[None])


def test_estimator_without_training_scores_the_reference_mixture():
    # A learning rate of 1e-12 leaves the zero-initialized correction at ~0,
    # so the returned density is the BIC mixture smoothed at the chosen
    # time, mixed with the broad Student t part, on the data's scale.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 0.5, (150, 2)), rng.normal(2, 1.0, (150, 2))]) * 3 + 1
    est = BootstrappedScoreEstimator(
        hidden_layer_sizes=(8,), max_iter=2, learning_rate=1e-12, early_stopping=False,
        column_transform="standardize", smoothing=0.05, n_steps=48, n_networks=1, random_state=0,
    ).fit(X)
    Z = (X - est.mean_) / est.scale_
    covs = est.reference_eigenvectors_ @ (
        est.reference_eigenvalues_[:, :, None] * est.reference_eigenvectors_.transpose(0, 2, 1))
    smoothed = covs + np.expm1(2 * 0.05) * np.eye(2)
    gm = GaussianMixture(len(covs), covariance_type="full")
    gm.weights_, gm.means_, gm.covariances_ = est.reference_weights_, est.reference_means_, smoothed
    gm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(smoothed))
    broad = broad_log_density(Z)
    w = est._broad_weight
    truth = np.logaddexp(np.log1p(-w) + gm.score_samples(Z), np.log(w) + broad)
    truth -= np.log(est.scale_).sum()
    np.testing.assert_allclose(est.score_samples(X), truth, atol=2e-2)


def test_mixture_reference_round_trips_through_persistence(tmp_path):
    from sklearn_diffusion import persistence

    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-2, 0.5, (200, 3)), rng.normal(2, 1.0, (200, 3))])
    est = BootstrappedScoreEstimator(hidden_layer_sizes=(16,), max_iter=200, n_steps=8,
                                     random_state=0).fit(X)
    assert isinstance(est.model_, MixtureReference) and len(est.reference_weights_) > 1
    persistence.save(est, tmp_path / "ref.pt")
    loaded = persistence.load(tmp_path / "ref.pt")
    assert loaded.reference_alone_ == est.reference_alone_
    np.testing.assert_array_equal(loaded.score_samples(X[:10]), est.score_samples(X[:10]))


class _SpoiledCorrection(BootstrappedScoreEstimator):
    # The fitted correction replaced by large random output weights: a
    # trained model that is far worse than the reference alone.
    def _fit_model(self, Z, Z_val, device, seed, **kwargs):
        result = super()._fit_model(Z, Z_val, device, seed, **kwargs)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in result.model.modules():
                if isinstance(layer, ScoreMLP):
                    layer.output.weight.copy_(3 * torch.randn(layer.output.weight.shape, generator=g))
        return result


def test_reference_alone_is_kept_when_it_scores_better_on_held_out_rows():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-2, 0.5, (500, 2)), rng.normal(2, 1.0, (500, 2))])
    kw = dict(hidden_layer_sizes=(16,), max_iter=100, n_steps=8, n_networks=1,
              column_transform="standardize", random_state=0)
    spoiled = _SpoiledCorrection(**kw).fit(X)
    assert spoiled.reference_alone_
    assert all(float(layer.output.weight.abs().max()) == 0.0
               for layer in spoiled.model_.modules() if isinstance(layer, ScoreMLP))
    # Held-out scores of the reference alone: a 2-D two-blob law, about -3 nats.
    assert spoiled.smoothing_scores_[np.isfinite(spoiled.smoothing_scores_)].max() > -4
    # The N(0, I) reference alone is never a candidate.
    assert not _SpoiledCorrection(reference="normal", **kw).fit(X).reference_alone_


def _choice(X, **kw):
    # The column map is chosen before training: a single step is enough.
    return BootstrappedScoreEstimator(hidden_layer_sizes=(8,), max_iter=1, n_networks=1,
                                      n_steps=4, random_state=0, **kw).fit(X)


def test_auto_column_transform_follows_the_held_out_mixture_likelihood():
    rng = np.random.default_rng(0)
    # Bounded, flat columns: a Gaussian mixture fits them badly until they are Gaussianized.
    assert _choice(rng.uniform(size=(600, 3))).column_transform_ == "gaussianize"
    # A correlated two-component mixture on its own scale: the column maps only bend it.
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    X = np.concatenate([rng.multivariate_normal([-3, 3], cov, 300),
                        rng.multivariate_normal([3, -1], cov, 300)])
    est = _choice(X)
    assert est.column_transform_ == "standardize"
    assert not hasattr(est, "x_knots_")
    assert len(est.reference_weights_) == 2


def test_auto_column_transform_without_held_out_rows_gaussianizes():
    X = np.random.default_rng(0).normal(size=(100, 2))  # 10 held-out rows: too few to judge
    assert _choice(X).column_transform_ == "gaussianize"
    assert _choice(X, early_stopping=False).column_transform_ == "gaussianize"


def test_refit_with_standardized_columns_drops_the_column_maps():
    X = np.random.default_rng(0).uniform(size=(300, 2))
    est = _choice(X, column_transform="gaussianize")
    assert est.column_transform_ == "gaussianize" and hasattr(est, "x_knots_")
    est.set_params(column_transform="standardize").fit(X)
    assert est.column_transform_ == "standardize" and not hasattr(est, "x_knots_")
    assert np.isfinite(est.score_samples(X[:5])).all()


def test_reference_search_fits_its_whole_range(monkeypatch):
    # A scripted BIC that rises from 1 to 2 components and falls again at 8:
    # a search stopping at its first rise would keep one component.
    import sklearn_diffusion.reference as reference

    bic = {1: 10.0, 2: 12.0, 4: 11.0, 8: 5.0, 16: 9.0, 32: 9.5}
    monkeypatch.setattr(reference.GaussianMixture, "bic",
                        lambda self, Z: bic[self.n_components] + (self.covariance_type != "diag"))
    Z = np.random.default_rng(0).normal(size=(400, 2))
    weights, means, eigenvalues, vecs = fit_reference_mixture(Z)
    assert len(weights) == 8
    np.testing.assert_array_equal(vecs, np.tile(np.eye(2), (8, 1, 1)))  # the diagonal one


class _SpoiledReference(BootstrappedScoreEstimator):
    # The networks of one reference spoiled after training (large random
    # output weights), so the held-out rows must drop them.
    spoil = "normal"

    def _fit_model(self, Z, Z_val, device, seed, **kwargs):
        result = super()._fit_model(Z, Z_val, device, seed, **kwargs)
        g = torch.Generator().manual_seed(0)
        for member in result.model.members:
            if isinstance(member, MixtureReference) == (self.spoil == "mixture"):
                with torch.no_grad():
                    for layer in member.modules():
                        if isinstance(layer, ScoreMLP):
                            layer.output.weight.copy_(
                                3 * torch.randn(layer.output.weight.shape, generator=g))
        return result


@pytest.mark.parametrize("spoil, n_networks", [("normal", 2), ("mixture", 2), ("normal", 3)])
def test_auto_reference_keeps_the_networks_the_held_out_rows_prefer(spoil, n_networks, tmp_path):
    from sklearn_diffusion import persistence

    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-2, 0.5, (300, 2)), rng.normal(2, 1.0, (300, 2))])
    kw = dict(hidden_layer_sizes=(16,), max_iter=100, n_steps=8, column_transform="standardize",
              reference="auto", n_networks=n_networks, random_state=0)
    est = type("Spoiled", (_SpoiledReference,), {"spoil": spoil})(**kw).fit(X)
    kept = list(est.member_references_)
    # Only unspoiled networks are left: the mixture's networks (two of the
    # default three: the ensemble of reference="mixture"), the normal one, or
    # (with the mixture's network spoiled) the mixture alone, whose
    # correction is zeroed.
    if spoil == "normal":
        assert kept == ["mixture"] * (n_networks - 1)
    else:
        assert kept == (["mixture"] if est.reference_alone_ else ["normal"])
    assert isinstance(est.model_, ScoreEnsemble) == (len(kept) > 1)
    if len(kept) == 1:
        assert isinstance(est.model_, MixtureReference) == (kept == ["mixture"])
    assert all(float(layer.output.weight.abs().max()) < 1.0
               for layer in est.model_.modules() if isinstance(layer, ScoreMLP))
    assert est.smoothing_scores_[np.isfinite(est.smoothing_scores_)].max() > -4.5
    saved = BootstrappedScoreEstimator(**kw)
    saved.__dict__.update({k: v for k, v in est.__dict__.items() if k.endswith("_")})
    persistence.save(saved, tmp_path / "auto.pt")
    loaded = persistence.load(tmp_path / "auto.pt")
    assert list(loaded.member_references_) == kept
    np.testing.assert_array_equal(loaded.score_samples(X[:10]), est.score_samples(X[:10]))


def test_auto_reference_trains_mixture_networks_when_too_few_rows_could_choose():
    # 100 rows leave 10 held-out rows, under the 20 a choice needs: every
    # network is trained on the mixture (reference="mixture"'s ensemble);
    # 300 rows leave 30, and the networks alternate.
    class Planned(BootstrappedScoreEstimator):
        def _fit_model(self, *args, **kwargs):
            result = super()._fit_model(*args, **kwargs)
            self.planned = list(self.member_references_)  # before the held-out choice
            return result

    X = np.random.default_rng(0).normal(size=(300, 2))
    kw = dict(hidden_layer_sizes=(8,), max_iter=20, n_steps=4, reference="auto", n_networks=3,
              random_state=0)
    assert Planned(**kw).fit(X[:100]).planned == ["mixture"] * 3
    assert Planned(**kw).fit(X).planned == ["mixture", "normal", "mixture"]


def test_auto_reference_alternates_the_networks_and_checks_the_names():
    est = BootstrappedScoreEstimator(reference="auto", n_networks=3)
    assert est._planned_references() == ("mixture", "normal", "mixture")
    est.n_features_in_, est.member_references_ = 2, np.array(["mixture", "other"], dtype=object)
    with pytest.raises(ValueError, match="member_references_"):
        est._empty_model()
