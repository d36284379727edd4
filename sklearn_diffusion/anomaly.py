"""Anomaly scores from a score model, cheaper than the log-density (L3).

Both scores work on the ``score_fn(x, t) -> Tensor (n, d)`` contract, so any
estimator (global or localized) gets them for free, and both are higher for
more anomalous rows (PyOD's sign convention).

* :func:`score_norm` (the default of the estimators):
  ``mean_k || s_k score(a_k x, t_k) ||^2``, the size of the noise the model
  believes the (shrunk, un-noised) row carries; no noise draw at all. Far
  from the data it grows like (distance to the data / ``s_k``)^2.
* :func:`denoising_error`: noise each row at a few fixed noise levels with
  fixed noise draws (the same draws for every row) and measure how badly the
  model recovers the noise, ``mean_k || e(a_k x + s_k z_k, t_k) - z_k ||^2``
  with ``e = -s_t score``. This is the DSM loss of the single row ``x``: a
  row the model has learned to denoise is typical; a row off the data's
  support is not.

Both cost one forward pass per noise level and no Jacobian, against a
Jacobian trace at every step of an ODE for the log-density.

* :func:`coordinate_score_norm`: the terms of :func:`score_norm` per
  coordinate, ``mean_k (s_k score_i(a_k x, t_k))^2`` (n, d); they sum to the
  score norm. Which sensor is off: for a Gaussian at small ``t`` the score is
  ``-Q x``, and a shift of ``c`` conditional standard deviations in
  coordinate ``j`` moves term ``j`` by ``c sqrt(Q_jj)`` but term ``i != j``
  only by ``c |Q_ij| / sqrt(Q_jj)``, a partial correlation times less.

* :func:`empirical_score_norm`: the same score norm for the *exact* score of
  the noised training rows, ``p_t = mean_i N(a_t x_i, s_t^2 I)``: the
  closed-form minimizer of the denoising score-matching loss on those rows,
  i.e. the score a network would reach if it memorized them. No network, but
  every row is compared with every reference row.

Every operation acts on rows independently and rows are processed in
fixed-size chunks, so a row's score never depends on its batch-mates and
memory stays bounded for any number of rows.
"""

import math

import torch

from ._utils import map_chunks
from .schedules import alpha, perturb, sigma

__all__ = [
    "anomaly_times",
    "coordinate_score_norm",
    "denoising_error",
    "empirical_score_norm",
    "score_norm",
]


def anomaly_times(n_levels, t_low, t_high, *, device="cpu"):
    """``n_levels`` noise times, uniform in ``log t`` on ``[t_low, t_high]``.

    Parameters
    ----------
    n_levels : int
    t_low, t_high : float
        Positive times; ``t_low == t_high`` gives a single level repeated.

    Returns
    -------
    Tensor of shape (n_levels,)

    Examples
    --------
    >>> from sklearn_diffusion.anomaly import anomaly_times
    >>> [round(t, 3) for t in anomaly_times(3, 0.01, 1.0).tolist()]
    [0.01, 0.1, 1.0]
    """
    return torch.logspace(math.log10(t_low), math.log10(t_high), n_levels, device=device)


def _per_level(fn, x, times, chunk_size):
    # ``fn(x_chunk, level_index, t_column) -> (rows,) or (rows, d)``, averaged
    # over levels. Squares and sums are taken in float64: in float32 their
    # rounding varied with the chunk's row count by a few units in the last place.
    def chunk(xc):
        total = 0.0
        for k, tk in enumerate(times):
            total = total + fn(
                xc, k, torch.full((xc.shape[0],), float(tk), dtype=x.dtype, device=x.device)
            )
        return total / len(times)

    return map_chunks(chunk, x, chunk_size)


@torch.no_grad()
def denoising_error(score_fn, x, times, noise, *, chunk_size=2048):
    """Mean denoising error of each row over fixed noise levels and draws.

    Parameters
    ----------
    score_fn : callable ``(x, t) -> Tensor (n, d)``
        Score of the noised data at times ``t`` (n,).
    x : Tensor of shape (n, d)
        Rows to score, in the model's (standardized) coordinates.
    times : Tensor of shape (k,)
        Noise times, one per draw.
    noise : Tensor of shape (k, d)
        Noise draw of each level, shared by every row, so the score is a
        deterministic function of the row.
    chunk_size : int
        Rows processed at once (does not change the result).

    Returns
    -------
    Tensor of shape (n,), float64
        ``mean_k || -s_k score(a_k x + s_k z_k, t_k) - z_k ||^2``; higher is
        more anomalous.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.anomaly import denoising_error
    >>> # the exact score of N(0, I) data at a single level t = 1
    >>> x, z = torch.tensor([[0.0, 0.0], [3.0, 0.0]]), torch.zeros(1, 2)
    >>> err = denoising_error(lambda x, t: -x, x, torch.ones(1), z)
    >>> bool(err[1] > err[0])
    True
    """

    def level(xc, k, t):
        z = noise[k].expand_as(xc)
        predicted = -sigma(t)[:, None] * score_fn(perturb(xc, t, z), t)
        return ((predicted.double() - z.double()) ** 2).sum(dim=1)

    return _per_level(level, x, times, chunk_size)


@torch.no_grad()
def score_norm(score_fn, x, times, *, chunk_size=2048):
    """Mean squared norm of the noise-scaled score at the shrunk rows.

    Parameters
    ----------
    score_fn : callable ``(x, t) -> Tensor (n, d)``
    x : Tensor of shape (n, d)
    times : Tensor of shape (k,)
    chunk_size : int
        Rows processed at once (does not change the result).

    Returns
    -------
    Tensor of shape (n,), float64
        ``mean_k || s_k score(a_k x, t_k) ||^2``; higher is more anomalous.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.anomaly import score_norm
    >>> from sklearn_diffusion.schedules import alpha, sigma
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    >>> # a model that learned N(0, 0.01 I) data, so x = (3, 0) is far off
    >>> s = score_norm(lambda x, t: -x / (0.01 * alpha(t)[:, None] ** 2 + sigma(t)[:, None] ** 2),
    ...                x, torch.ones(1))
    >>> bool(s[0] == 0 and s[1] > 1)
    True
    """

    def level(xc, k, t):
        return (_scaled_score(score_fn, xc, t) ** 2).sum(dim=1)

    return _per_level(level, x, times, chunk_size)


def _scaled_score(score_fn, x, t):
    # ``s_t score(a_t x, t)`` in float64: the noise the model sees in the shrunk row.
    return (sigma(t)[:, None] * score_fn(alpha(t)[:, None] * x, t)).double()


@torch.no_grad()
def coordinate_score_norm(score_fn, x, times, *, chunk_size=2048):
    """Per-coordinate terms of :func:`score_norm`: which coordinates look off.

    Term ``i`` of row ``x`` is ``mean_k (s_k score_i(a_k x, t_k))^2``; the
    terms of a row sum to its :func:`score_norm`. For a Gaussian ``N(0, Q^{-1})``
    at small ``t`` the score is ``-Q x``: a shift of ``c`` conditional standard
    deviations (``c / sqrt(Q_jj)``) in coordinate ``j`` moves ``score_j`` by
    ``c sqrt(Q_jj)``, its own typical size times ``c``, and ``score_i`` for
    ``i != j`` by a partial correlation times less, so the shifted coordinate
    has the largest term. With a localized score, term ``i`` depends only on
    the neighbourhood of ``i``.

    Parameters
    ----------
    score_fn : callable ``(x, t) -> Tensor (n, d)``
    x : Tensor of shape (n, d)
        Rows to score, in the model's (standardized) coordinates.
    times : Tensor of shape (k,)
    chunk_size : int
        Rows processed at once (does not change the result).

    Returns
    -------
    Tensor of shape (n, d), float64
        Higher means the coordinate is more responsible for the row being
        anomalous.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.anomaly import coordinate_score_norm, score_norm
    >>> x = torch.tensor([[0.0, 3.0]])
    >>> terms = coordinate_score_norm(lambda x, t: -x, x, torch.ones(1))
    >>> terms.argmax(dim=1).tolist()  # the second coordinate is off
    [1]
    >>> bool(torch.isclose(terms.sum(1), score_norm(lambda x, t: -x, x, torch.ones(1))))
    True
    """

    def level(xc, k, t):
        return _scaled_score(score_fn, xc, t) ** 2

    return _per_level(level, x, times, chunk_size)


@torch.no_grad()
def empirical_score_norm(x, reference, times, *, leave_one_out=False, chunk_size=512):
    """Score norm of each row under the exact score of the noised reference rows.

    The noised empirical distribution of the reference rows ``x_i`` at time
    ``t`` is the mixture ``mean_i N(a_t x_i, s_t^2 I)``; the minimizer of the
    denoising score-matching loss on those rows is its score,
    ``(sum_i w_i a_t x_i - y) / s_t^2`` with ``w = softmax(-|y - a_t x_i|^2 /
    (2 s_t^2))``. At the shrunk row ``y = a_t x`` the noise-scaled norm is

    ``|| s_t score(a_t x, t) ||^2 = a_t^2 || m_t(x) - x ||^2 / s_t^2``,

    where ``m_t(x)`` is the kernel-weighted mean of the reference rows with
    bandwidth ``s_t / a_t``: a mean-shift distance. At small ``t`` it is the
    distance to the nearest reference row, at large ``t`` the distance to a
    broad local mean. Averaged over ``times`` like :func:`score_norm`.

    Parameters
    ----------
    x : Tensor of shape (n, d)
        Rows to score, in the model's (standardized) coordinates.
    reference : Tensor of shape (m, d)
        Reference (training) rows, same coordinates.
    times : Tensor of shape (k,)
    leave_one_out : bool, default=False
        Score each row as a held-out reference row: one copy of the row among
        the reference rows (if any) is left out. The reference rows then
        score like new rows; without it each sits on its own kernel and
        scores 0 at small ``t``. Rows with no exact copy are unaffected.
    chunk_size : int
        Rows processed at once (does not change the result); memory is about
        ``chunk_size * m`` floats.

    Returns
    -------
    Tensor of shape (n,), float64
        ``mean_k a_k^2 || m_k(x) - x ||^2 / s_k^2``; higher is more anomalous.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion.anomaly import empirical_score_norm
    >>> from sklearn_diffusion.schedules import alpha, sigma
    >>> t = torch.tensor([0.5])
    >>> # one reference row: m_t(x) is that row, so the norm is a^2 |x - x_0|^2 / s^2
    >>> s = empirical_score_norm(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2), t)
    >>> bool(torch.isclose(s, (alpha(t) ** 2 * 25 / sigma(t) ** 2).double()))
    True
    """
    reference = reference.double()
    # A column of ones: one product gives the weighted sums and the weights' total.
    reference_1 = torch.cat([reference, reference.new_ones(len(reference), 1)], dim=1)
    ratios = (alpha(times.double()) / sigma(times.double())) ** 2

    def chunk(xc):
        xc = xc.double()
        # Elementwise distances, not the |y|^2 + |x|^2 - 2 y.x matrix form:
        # a row's distances then do not depend on its batch-mates, and a row
        # identical to a reference row is at distance exactly 0.
        dist2 = torch.cdist(xc, reference, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        keep = None
        if leave_one_out:
            # One copy of the row is left out: a single copy is dropped (unless
            # it is the only reference row), k > 1 copies weigh (k - 1) / k each.
            copy = dist2 == 0
            copies = copy.sum(dim=1, keepdim=True)
            dist2 = dist2.masked_fill(copy & (copies == 1) & (~copy).any(dim=1, keepdim=True),
                                      float("inf"))
            shared = copy & (copies > 1)
            if shared.any():
                keep = torch.where(shared, (copies - 1) / copies, 1.0)
        # Softmax weights relative to the nearest kept row, which never underflow.
        excess = dist2 - dist2.min(dim=1, keepdim=True).values
        total = torch.zeros(xc.shape[0], dtype=torch.float64, device=xc.device)
        for ratio in ratios:
            weights = excess.mul(-ratio / 2).exp_()
            if keep is not None:
                weights *= keep
            sums = weights @ reference_1
            mean = sums[:, :-1] / sums[:, -1:]
            total += ratio * ((mean - xc) ** 2).sum(dim=1)
        return total / len(times)

    return map_chunks(chunk, x, chunk_size)
