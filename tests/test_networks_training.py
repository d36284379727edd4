"""Networks and the training loop."""

import numpy as np
import pytest
import torch

from sklearn_diffusion.networks import ScoreMLP, score_from_noise
from sklearn_diffusion.training import TrainingDivergedError, fit_noise_model, validation_set


def test_untrained_network_is_standard_gaussian_score():
    net = ScoreMLP(3, (8, 8), generator=torch.Generator().manual_seed(0))
    x, t = torch.randn(5, 3), torch.rand(5) + 0.01
    torch.testing.assert_close(score_from_noise(net(x, t), t), -x)


def test_seeded_construction_is_reproducible_and_rowwise():
    a = ScoreMLP(3, (8, 8), generator=torch.Generator().manual_seed(0))
    b = ScoreMLP(3, (8, 8), generator=torch.Generator().manual_seed(0))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    torch.nn.init.normal_(a.output.weight, generator=torch.Generator().manual_seed(1))
    x, t = torch.randn(6, 3), torch.rand(6) + 0.01
    torch.testing.assert_close(a(x, t)[1:3], a(x[1:3], t[1:3]))


def _fit(**kw):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 2, generator=g) * torch.tensor([1.0, 0.3])
    settings = dict(max_iter=300, batch_size=64, learning_rate=3e-3, t_min=1e-3, t_max=10.0)
    settings.update(kw)
    return fit_noise_model(ScoreMLP(2, (32, 32), generator=g), X, generator=g, **settings)


@pytest.mark.parametrize("loss", ["dsm", "bootstrap"])
def test_training_lowers_the_loss(loss):
    result = _fit(loss=loss)
    assert result.loss_curve.shape == (300,)
    assert np.isfinite(result.loss_curve).all()
    assert result.loss_curve[-50:].mean() < result.loss_curve[:50].mean()


def test_early_stopping_keeps_best_weights():
    g = torch.Generator().manual_seed(1)
    val = validation_set(torch.randn(20, 2, generator=g), 1e-3, 10.0, generator=g, min_size=500)
    result = _fit(validation=val, n_iter_no_change=2, check_every=20, max_iter=2000)
    assert len(result.validation_curve) >= 3
    best = int(np.argmin(result.validation_curve))
    # The kept step is the best check's, unless improvements were below tol.
    assert result.best_iter <= 20 * (best + 1)
    assert len(result.loss_curve) < 2000


def test_early_stopping_on_a_criterion_keeps_its_best_check():
    # A held-out score that peaks at the 4th check, where the denoising loss
    # is not at its best: stopping must follow the score and keep the
    # weights of that check.
    g = torch.Generator().manual_seed(1)
    val = validation_set(torch.randn(256, 2, generator=g) * torch.tensor([1.0, 0.3]),
                         1e-3, 10.0, generator=g, min_size=500)
    peak = [0.0, 1.0, 2.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0]
    weights = []

    def criterion(model):
        weights.append(model.output.weight.detach().clone())
        return peak[len(weights) - 1]

    result = _fit(validation=val, criterion=criterion, n_iter_no_change=3, check_every=20,
                  max_iter=2000)
    assert result.score_curve.tolist() == peak[:7]  # stopped 3 checks after the peak
    assert result.best_iter == 80
    assert int(np.argmin(result.validation_curve)) != 3  # the loss disagrees
    torch.testing.assert_close(result.model.output.weight, weights[3])


def test_a_nan_criterion_never_counts_as_an_improvement():
    g = torch.Generator().manual_seed(1)
    val = validation_set(torch.randn(64, 2, generator=g), 1e-3, 10.0, generator=g, min_size=200)
    scores = iter([1.0, float("nan"), float("nan"), 5.0] + [float("nan")] * 3)
    result = _fit(validation=val, criterion=lambda model: next(scores), n_iter_no_change=3,
                  check_every=20, max_iter=2000)
    assert result.best_iter == 80 and len(result.score_curve) == 7


def test_stop_at_keeps_the_weights_of_that_step_of_the_schedule():
    # What a later network of an ensemble gets: the step the first one's
    # early stopping chose, on the same learning-rate schedule.
    g = torch.Generator().manual_seed(1)
    val = validation_set(torch.randn(64, 2, generator=g), 1e-3, 10.0, generator=g, min_size=200)
    peak = iter([0.0, 1.0, 2.0, 1.0, 0.0, -1.0])
    stopped = _fit(criterion=lambda model: next(peak), validation=val, n_iter_no_change=3,
                   check_every=20, max_iter=300)
    assert stopped.best_iter == 60
    followed = _fit(stop_at=60, max_iter=300)
    assert len(followed.loss_curve) == followed.best_iter == 60
    torch.testing.assert_close(followed.loss_curve, stopped.loss_curve[:60])
    for p, q in zip(followed.model.parameters(), stopped.model.parameters()):
        torch.testing.assert_close(p, q)


def test_diverging_training_raises():
    with pytest.raises(TrainingDivergedError, match="diverged"):
        _fit(learning_rate=float("inf"), max_iter=20)
