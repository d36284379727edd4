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

Every operation acts on rows independently and rows are processed in
fixed-size chunks, so a row's score never depends on its batch-mates and
memory stays bounded for any number of rows.
"""

import math

import torch

from ._utils import map_chunks
from .schedules import alpha, perturb, sigma

__all__ = ["anomaly_times", "denoising_error", "score_norm"]


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
    # ``fn(x_chunk, level_index, t_column) -> (rows,)``, averaged over levels.
    # Squares and sums are taken in float64: in float32 their rounding varied
    # with the chunk's row count by a few units in the last place.
    def chunk(xc):
        total = torch.zeros(xc.shape[0], dtype=torch.float64, device=x.device)
        for k, tk in enumerate(times):
            total += fn(xc, k, torch.full((xc.shape[0],), float(tk), dtype=x.dtype, device=x.device))
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
        return ((sigma(t)[:, None] * score_fn(alpha(t)[:, None] * xc, t)).double() ** 2).sum(dim=1)

    return _per_level(level, x, times, chunk_size)
