"""The training loop shared by every score model (L3).

One function fits a noise predictor ``network(x, t)`` on the rows of a tensor
already on its device: mini-batches are drawn on the device from an explicit
generator, losses are collected on the device and read back only every
``check_every`` steps (for progress and the finiteness check), so the loop
never waits on the host between steps.
"""

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .losses import bootstrap_loss, dsm_loss, flow_matching_weight, variance_optimal_weights
from .schedules import flow_matching_times, sample_times, sigma

__all__ = [
    "fit_noise_model", "validation_set", "average_curves", "check_finite_model",
    "TrainingDivergedError", "TrainingResult",
]


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingResult(NamedTuple):
    """What :func:`fit_noise_model` returns."""

    #: The fitted network: the weight average at the best validation check
    #: (or at the last step without validation), in eval mode.
    model: object
    #: Training loss at every step taken, shape (n_iter,).
    loss_curve: np.ndarray
    #: Held-out DSM loss at every check, shape (n_checks,); empty without validation.
    validation_curve: np.ndarray
    #: Step (1-based) whose weights were kept.
    best_iter: int
    #: ``criterion`` of the weight average at every check, shape (n_checks,);
    #: empty without a criterion.
    score_curve: np.ndarray = np.empty(0)


def validation_set(X, t_min, t_max, *, generator, min_size=2048, observed=None):
    """Fixed noised copies ``(x0, t, z)`` of held-out rows for a stable DSM loss.

    Rows are repeated until there are at least ``min_size`` triples, so the
    validation loss of a few rows is not dominated by the noise draws; the
    draws are made once, so every check compares like with like. With
    ``observed`` (the 0/1 mask of observed entries of rows whose missing
    entries ``X`` holds filled in, see :func:`fit_noise_model`), the mask is
    repeated alike and returned fourth.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.training import validation_set
    >>> x0, t, z = validation_set(torch.randn(10, 3), 1e-3, 10.0,
    ...                           generator=torch.Generator().manual_seed(0), min_size=25)
    >>> x0.shape, t.shape, z.shape
    (torch.Size([30, 3]), torch.Size([30]), torch.Size([30, 3]))
    """
    repeats = -(-min_size // X.shape[0])
    x0 = X.repeat(repeats, 1)
    t = sample_times(x0.shape[0], t_min, t_max, generator=generator, device=X.device)
    z = torch.randn(x0.shape, generator=generator, device=X.device)
    if observed is not None:
        return x0, t, z, observed.repeat(repeats, 1)
    return x0, t, z


def average_curves(curves, weights):
    """Weighted mean of loss curves of different lengths, step by step.

    Fits stop early at different steps: each step averages the curves still
    running (the longest covers every step, so no weight is zero; empty
    curves stay empty).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion.training import average_curves
    >>> average_curves([np.array([1.0, 2.0]), np.array([3.0])], [1, 1]).tolist()
    [2.0, 2.0]
    """
    length = max(len(c) for c in curves)
    total, weight = np.zeros(length), np.zeros(length)
    for curve, w in zip(curves, weights):
        total[: len(curve)] += w * curve
        weight[: len(curve)] += w
    return total / weight


def _split_missing(X):
    """``X`` with NaN entries set to 0, and the 0/1 mask of observed entries (None if complete).

    A complete ``X`` is returned as is, so complete data trains exactly as
    before (no extra random draw, no mask arithmetic).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.training import _split_missing
    >>> X, mask = _split_missing(torch.tensor([[1.0, float("nan")]]))
    >>> X.tolist(), mask.tolist()
    ([[1.0, 0.0]], [[1.0, 0.0]])
    """
    observed = ~torch.isnan(X)
    if bool(observed.all()):
        return X, None
    return torch.where(observed, X, 0.0), observed.to(X.dtype)


#: A loss this many times its first value (or 1) means training diverged.
_BLOWUP = 1e3


def _lr_factor(step, max_iter, warmup=0.02, final=0.05):
    # Linear warm-up, then cosine decay to ``final`` times the initial rate.
    n_warm = max(1, int(warmup * max_iter))
    if step < n_warm:
        return (step + 1) / n_warm
    progress = (step - n_warm) / max(1, max_iter - n_warm)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


def fit_noise_model(
    network,
    X,
    *,
    max_iter,
    batch_size,
    learning_rate,
    t_min,
    t_max,
    generator,
    loss="dsm",
    objective="score",
    bootstrap_window=(0.01, 1.0),
    bootstrap_step=0.15,
    bootstrap_weight="auto",
    bootstrap_draws=8,
    bootstrap_start=0.1,
    ema_decay=0.999,
    grad_clip=1.0,
    columns=None,
    missing_fill="mean",
    observed=None,
    validation=None,
    criterion=None,
    stop_at=None,
    n_iter_no_change=10,
    tol=1e-4,
    check_every=100,
    verbose=0,
    description="fit",
):
    """Fit a noise predictor by DSM or time-bootstrapped score matching.

    Parameters
    ----------
    network : torch.nn.Module
        ``network(x, t)`` predicts the noise, shape (n, k), on ``X``'s device.
    X : Tensor of shape (n, d)
        Standardized training rows, on the device to train on. NaN marks a
        missing entry: the loss is restricted to the observed entries (see
        :func:`~sklearn_diffusion.losses.regression_loss`) and the network's
        input at a missing entry is ``missing_fill`` noised like the others.
    max_iter, batch_size : int
        Number of optimizer steps and rows per step (clipped to ``n``).
    learning_rate : float
        Peak Adam learning rate (linear warm-up, then cosine decay).
    t_min, t_max : float
        Range of training times, drawn log-uniformly.
    generator : torch.Generator
        Source of every random draw (on ``X``'s device).
    loss : {"dsm", "bootstrap"}
        Objective; ``"bootstrap"`` trains with DSM for the first
        ``bootstrap_start`` fraction of steps, then bootstraps targets on
        ``bootstrap_window`` from the EMA copy of the network.
    objective : {"score", "flow_matching"}
        ``"score"``: regress the noise, times log-uniform on
        ``[t_min, t_max]``. ``"flow_matching"``: regress the velocity of the
        linear path (the noise error weighted by
        :func:`~sklearn_diffusion.losses.flow_matching_weight`), with its
        time ``tau`` uniform (:func:`~sklearn_diffusion.schedules.flow_matching_times`).
        Either way with the DSM or the bootstrapped target (``loss``).
    bootstrap_window : (float, float)
        Times ``t`` that get bootstrapped targets.
    bootstrap_step : float in (0, 1)
        Relative step: the target at ``t`` comes from the prediction at
        ``u = (1 - bootstrap_step) t``, so the factor ``s_t e^h / s_u`` that
        multiplies its error stays near 1 at every ``t``.
    bootstrap_weight : float in [0, 1] or "auto"
        Weight of the bootstrapped target against the DSM target;
        ``"auto"``: the weight of least target variance in each of 16
        log-spaced bins of the window, computed before training by
        :func:`~sklearn_diffusion.losses.variance_optimal_weights` under the
        network's reference mixture (its ``sample_reference``) or ``N(0, I)``.
    bootstrap_draws : int
        Bridge draws of ``x_u`` averaged per bootstrapped target.
    bootstrap_start : float in [0, 1)
        Fraction of ``max_iter`` trained with DSM before bootstrapping starts.
    ema_decay : float
        Horizon of the exponential moving average of the weights (warmed up as
        ``min(ema_decay, (1 + k) / (10 + k))`` so early weights fade quickly).
    grad_clip : float
        Maximum gradient norm.
    columns : index, default=None
        Coordinates of ``X`` that the network predicts (default: all).
    missing_fill : {"mean", "noise"}, default="mean"
        What a missing entry of ``X`` holds before the forward noising:
        ``"mean"``, the column mean (0 on standardized columns, MissDiff's
        choice); ``"noise"``, a fresh standard normal draw at every step (a
        draw of a standardized, Gaussianized column's marginal).
    observed : Tensor of shape (n, d), default=None
        0/1 mask of the observed entries when ``X``'s missing entries are
        already filled in (finite), for example by conditional draws of an
        earlier fit: the loss skips them as it skips NaN, but the network's
        input there is ``X``'s value (``missing_fill`` is then unused).
    validation : tuple ``(x0, t, z)``, ``(x0, t, z, observed)`` or None
        Held-out triples from :func:`validation_set` (NaN in ``x0`` marks
        missing entries, as in ``X``, or the fourth item does). When given,
        the DSM loss of the weight average on them is measured every ``check_every`` steps,
        training stops after ``n_iter_no_change`` checks without an
        improvement of at least ``tol``, and the best weights are kept.
    criterion : callable ``model -> float`` or None
        A held-out score to maximize, for example the mean log-likelihood of
        held-out rows: when given, it is evaluated on the weight average at
        every check and early stopping watches it instead of the validation
        loss (any increase counts as an improvement; the loss is still
        recorded). The denoising loss is a weak proxy for the likelihood
        once a reference explains most of it
        (``benchmarks/results/studies/early_stopping.md``).
    stop_at : int or None
        Stop after this many steps of the ``max_iter`` schedule and keep the
        last weights (with ``validation=None``: the step another network's
        early stopping chose).
    n_iter_no_change : int
        Patience of early stopping, in checks.
    tol : float
        Smallest decrease of the validation loss that counts as improvement.
    check_every : int
        Steps between reads of the loss on the host (and validation checks).
    verbose : int
        Show a tqdm progress bar with the running loss when positive.
    description : str
        Label of the progress bar.

    Returns
    -------
    TrainingResult
        The fitted weight average, the loss curves and the step kept.

    Raises
    ------
    TrainingDivergedError
        When the loss becomes NaN or infinite, or grows to ``1000`` times
        its first value (at least 1).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.networks import ScoreMLP
    >>> from sklearn_diffusion.training import fit_noise_model
    >>> g = torch.Generator().manual_seed(0)
    >>> result = fit_noise_model(ScoreMLP(2, (16,)), torch.randn(64, 2), max_iter=20,
    ...     batch_size=32, learning_rate=1e-3, t_min=1e-3, t_max=8.0, generator=g)
    >>> result.loss_curve.shape
    (20,)
    """
    n, device = X.shape[0], X.device
    batch_size = min(batch_size, n)
    filled = observed is not None
    if filled:
        observed = observed.to(X.dtype)
    else:
        X, observed = _split_missing(X)
    if validation is not None and len(validation) == 4:
        *validation, val_observed = validation
        val_observed = val_observed.to(X.dtype)
    elif validation is not None:
        val_x0, val_observed = _split_missing(validation[0])
        validation = (val_x0, *validation[1:])
    network.train()
    ema = copy.deepcopy(network).requires_grad_(False)
    params, ema_params = list(network.parameters()), list(ema.parameters())
    # One fused kernel for the whole update (on the CPU too since torch 2.4).
    optimizer = torch.optim.Adam(params, lr=learning_rate, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, max_iter)
    )
    curve = torch.empty(max_iter, device=device)
    first_bootstrap = int(bootstrap_start * max_iter) if loss == "bootstrap" else max_iter
    if first_bootstrap < max_iter:
        weight_of = _bootstrap_weights(network, X.shape[1], (t_min, t_max), bootstrap_window,
                                       bootstrap_step, bootstrap_weight, bootstrap_draws,
                                       columns, generator)
    progress = tqdm(total=max_iter, desc=description, disable=not verbose, leave=False)
    checked, best, best_iter, stale, val_curve, score_curve = 0, math.inf, max_iter, 0, [], []
    best_state = None
    for step in range(max_iter):
        idx = torch.randint(n, (batch_size,), generator=generator, device=device)
        x0 = X[idx]
        mask = None if observed is None else observed[idx]
        if objective == "flow_matching":
            t = flow_matching_times(batch_size, t_min, t_max, generator=generator, device=device)
            row_weight = flow_matching_weight(t)
        else:
            t = sample_times(batch_size, t_min, t_max, generator=generator, device=device)
            row_weight = None
        noise1 = torch.randn(x0.shape, generator=generator, device=device)
        if mask is not None and missing_fill == "noise" and not filled:
            fill = torch.randn(x0.shape, generator=generator, device=device)
            x0 = torch.where(mask > 0, x0, fill)
        if step < first_bootstrap:
            value = dsm_loss(network, x0, t, noise1, columns, mask, row_weight)
        else:
            bridge = torch.randn((bootstrap_draws, *x0.shape), generator=generator,
                                 device=device)
            value = bootstrap_loss(network, ema, x0, t, bootstrap_step * t, weight_of(t),
                                   noise1, bridge, columns, mask, row_weight)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
        optimizer.step()
        scheduler.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            # The multi-tensor lerp that torch.optim.swa_utils uses for EMA.
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        curve[step] = value.detach()
        if step + 1 - checked < check_every and step + 1 not in (max_iter, stop_at):
            continue
        recent = curve[checked : step + 1].cpu().numpy()
        # The network starts as the exact score of N(0, I), so on
        # standardized data the loss starts near 1: a loss far above its
        # start has diverged even while it is still finite.
        limit = _BLOWUP * max(1.0, float(curve[0]))
        if not np.all(np.isfinite(recent) & (recent < limit)):
            progress.close()
            bad = checked + int(np.argmin(np.isfinite(recent) & (recent < limit)))
            what = "not finite" if not np.isfinite(recent[bad - checked]) else f"above {limit:.3g}"
            raise TrainingDivergedError(
                f"Training diverged: the loss is {what} at iteration {bad + 1}. "
                "Try a smaller learning_rate, loss='dsm', or check the input scale."
            )
        postfix = {"loss": f"{recent.mean():.4f}"}
        progress.update(step + 1 - checked)
        checked = step + 1
        watched = None
        if validation is not None:
            with torch.no_grad():
                val = dsm_loss(ema, *validation, columns, val_observed).item()
            val_curve.append(val)
            postfix["val"] = f"{val:.4f}"
            watched, margin = val, tol
        if criterion is not None:
            score = float(criterion(ema))
            score_curve.append(score)
            postfix["score"] = f"{score:.4f}"
            # NaN never improves (-nan < best is False).
            watched, margin = -score, 0.0
        if watched is not None:
            if watched < best - margin:
                best, best_iter, stale = watched, step + 1, 0
                best_state = copy.deepcopy(ema.state_dict())
            else:
                stale += 1
        progress.set_postfix(postfix)
        if stale >= n_iter_no_change or (stop_at is not None and checked >= stop_at):
            break
    progress.close()
    if best_state is not None:
        ema.load_state_dict(best_state)
    else:
        best_iter = checked
    network.eval()
    ema.eval()
    return TrainingResult(
        ema, curve[:checked].cpu().numpy().astype(np.float64), np.asarray(val_curve), best_iter,
        np.asarray(score_curve, dtype=np.float64),
    )


#: Rows of the proxy law and bins of the window behind ``bootstrap_weight="auto"``.
_PROXY_ROWS, _WEIGHT_BINS = 4096, 16


def _bootstrap_weights(network, d, t_range, window, step, weight, n_draws, columns, generator):
    """``t -> weight`` of the bootstrapped target: 0 outside ``window``, else fixed or by bin."""
    lo, hi = max(window[0], t_range[0]), min(window[1], t_range[1])
    device = generator.device
    if weight != "auto" or not lo < hi:  # a window outside [t_min, t_max] bootstraps nothing
        weight = weight if lo < hi else 0.0
        return lambda t: ((t > lo) & (t <= hi)).to(t.dtype) * weight
    edges = torch.logspace(math.log10(lo), math.log10(hi), _WEIGHT_BINS + 1, device=device)
    if hasattr(network, "sample_reference"):
        x0 = network.sample_reference(_PROXY_ROWS, generator=generator)

        def exact(x, t):
            return network.reference_noise_and_trace(x, t, trace=False)
    else:
        x0 = torch.randn(_PROXY_ROWS, d, generator=generator, device=device)

        def exact(x, t):
            return sigma(t)[:, None] * x
    with torch.no_grad():
        source = exact if columns is None else (lambda x, t: exact(x, t)[:, columns])
        table = variance_optimal_weights(x0, source, edges, step, n_draws, generator=generator,
                                         columns=columns)

    def weight_of(t):
        inside = (t > lo) & (t <= hi)
        index = torch.bucketize(t, edges[1:-1])
        return torch.where(inside, table[index], 0.0)

    return weight_of


def check_finite_model(model, Z, t_min, t_max):
    """Raise :class:`TrainingDivergedError` unless ``model`` is finite on the rows ``Z``.

    The loss is checked during training, but weights can still turn
    non-finite in the last steps or in the kept average, or be finite yet so
    large that the outputs overflow: the weights are checked, then the
    outputs on the first 256 rows of ``Z`` (n, d, numpy, no NaN) at 8 times
    log-spaced in ``[t_min, t_max]``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_diffusion.networks import ScoreMLP
    >>> from sklearn_diffusion.training import check_finite_model
    >>> model = ScoreMLP(2, (8,))
    >>> check_finite_model(model, np.zeros((4, 2)), 1e-3, 10.0)
    >>> with torch.no_grad():
    ...     _ = next(model.parameters()).fill_(float("nan"))
    >>> check_finite_model(model, np.zeros((4, 2)), 1e-3, 10.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn_diffusion.training.TrainingDivergedError: Training diverged: the network's weights ...
    """
    weights = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    outputs = weights
    if weights:
        x = torch.as_tensor(np.asarray(Z[:256]), dtype=torch.float32)
        with torch.no_grad():
            for t in np.geomspace(t_min, t_max, 8):
                noise = model(x, torch.full((len(x),), t, dtype=x.dtype))
                outputs = outputs and bool(torch.isfinite(noise).all())
    if not outputs:
        part = "weights" if not weights else "outputs on the training rows"
        raise TrainingDivergedError(
            f"Training diverged: the network's {part} are not finite. "
            "Try a smaller learning_rate or loss='dsm'."
        )
