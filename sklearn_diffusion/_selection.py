"""Held-out choice of the smoothing (L4, private).

The likelihood can start from any time at no training cost, so the noise
level of the returned density (``smoothing="auto"``) is chosen after
training, on the rows early stopping held out, like a kernel density's
bandwidth.
"""

import math
import warnings

import numpy as np


def unimodal_argmax(score, n):
    """Index of the largest ``score(i)`` over ``range(n)`` for a unimodal ``score``.

    Golden-section search on the indices: each step keeps the part of the
    bracket that holds the larger of two interior values, reusing one of
    them; the last few indices are compared directly. About ``1.44 log2 n +
    2`` evaluations (7 for 14 candidates) where a scan takes ``n``; on a
    function with several local maxima it returns one of them. Ties go to
    the lower index.

    Examples
    --------
    >>> from sklearn_diffusion._selection import unimodal_argmax
    >>> calls = []
    >>> def score(i):
    ...     calls.append(i)
    ...     return -(i - 9) ** 2
    >>> unimodal_argmax(score, 14), len(set(calls)) < 14
    (9, True)
    """
    cache = {}

    def value(i):
        if i not in cache:
            cache[i] = score(i)
        return cache[i]

    lo, hi = 0, n - 1
    ratio = (math.sqrt(5) - 1) / 2
    while hi - lo > 3:
        left = hi - round(ratio * (hi - lo))
        # Two distinct interior points: equal values then bracket the peak.
        right = max(lo + round(ratio * (hi - lo)), left + 1)
        if value(left) >= value(right):
            hi = right - 1 if value(left) > value(right) else right
        else:
            lo = left + 1
    return max(range(lo, hi + 1), key=lambda i: (value(i), -i))


def smoothing_candidates(t_min, max_smoothing, n):
    """``n`` candidate smoothings, log-spaced from ``t_min`` to ``max(t_min, max_smoothing)``.

    Examples
    --------
    >>> from sklearn_diffusion._selection import smoothing_candidates
    >>> smoothing_candidates(0.001, 0.1, 3).tolist()
    [0.001, 0.01, 0.1]
    """
    return np.geomspace(t_min, max(t_min, max_smoothing), n)


def select_smoothing(log_density, Z_val, candidates):
    """The candidate with the best held-out mean log-likelihood, and every candidate's score.

    ``log_density(Z, smoothing)`` gives the model's log-density of the rows
    ``Z`` at a smoothing. The held-out likelihood rises then falls with the
    smoothing (too sharp, then too smooth), so :func:`unimodal_argmax`
    finds the best with about half of the candidates evaluated; the others'
    scores are NaN. A non-finite mean ranks last but is recorded as is.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._selection import select_smoothing
    >>> best, scores = select_smoothing(lambda Z, s: -(np.log(s) + 2) ** 2 + 0 * Z[:, 0],
    ...                                 np.zeros((3, 1)), np.geomspace(0.01, 1.0, 5))
    >>> round(best, 3)
    0.1
    """
    scores = np.full(len(candidates), np.nan)

    def score(i):
        if np.isnan(scores[i]):
            value = float(log_density(Z_val, candidates[i]).mean())
            scores[i] = value if not np.isnan(value) else -np.inf
        return scores[i] if np.isfinite(scores[i]) else -np.inf

    best = unimodal_argmax(score, len(candidates))
    return float(candidates[best]), scores


class HeldOutLikelihood:
    """Early stopping's criterion: the held-out mean log-likelihood at a smoothing that follows its best.

    ``log_density(model, Z, smoothing)`` gives a model's log-density of the
    rows ``Z``. The first call finds the best of ``candidates`` with the
    search of :func:`select_smoothing`; each later call evaluates that
    candidate only (one ODE pass) while it improves on the best score so
    far, and otherwise also its two neighbours, moving to the best of them,
    since the optimum moves little between checks. Watching a fixed
    smoothing stopped too early on ``banana6``
    (``benchmarks/results/studies/early_stopping_smoothing.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._selection import HeldOutLikelihood
    >>> criterion = HeldOutLikelihood(lambda m, Z, s: -(np.log(s) - m) ** 2 + 0 * Z[:, 0],
    ...                               np.zeros((3, 1)), np.geomspace(0.01, 1.0, 5))
    >>> round(criterion(np.log(0.1)), 3), round(criterion(np.log(0.1) + 0.5), 3)
    (0.0, -0.25)
    """

    def __init__(self, log_density, Z_val, candidates):
        self.log_density, self.Z_val, self.candidates = log_density, Z_val, candidates
        self.index, self.best = None, -np.inf

    def _score(self, model, i):
        # A check is internal: a row the half-trained network finds
        # impossible is not the user's concern (fit's final choice warns).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(np.mean(self.log_density(model, self.Z_val, self.candidates[i])))
        return value if not np.isnan(value) else -np.inf

    def __call__(self, model):
        scores = {}

        def score(i):
            if i not in scores:
                scores[i] = self._score(model, i)
            return scores[i]

        if self.index is None:
            self.index = unimodal_argmax(score, len(self.candidates))
        elif score(self.index) <= self.best:
            window = [i for i in (self.index - 1, self.index, self.index + 1)
                      if 0 <= i < len(self.candidates)]
            self.index = max(window, key=lambda i: (score(i), -i))
        self.best = max(self.best, scores[self.index])
        return scores[self.index]
