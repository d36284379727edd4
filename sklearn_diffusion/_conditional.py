"""Conditional draws of missing entries in the model's space (L4, private).

Serves :meth:`~sklearn_diffusion._base.BaseDiffusionEstimator.sample_conditional`
(and through it the imputer) and the refit of an incomplete ``fit`` on the
model's own draws. Each (draw, row) pair takes its noise from a generator
seeded by the call's seed, the draw index and a hash of the row, so a row's
draws depend neither on its batch-mates nor on the chunking.
"""

import hashlib

import numpy as np

from ._utils import chunks, map_chunks, to_tensor
from ._validation import MAX_SEED
from .sampling import conditional_noise_draws, conditional_sde

#: Sampler settings of the draws that fill the training rows of an
#: incomplete fit: (n_steps, n_resample, guidance), ``sample_conditional``'s defaults.
FILL_SETTINGS = (32, 2, 1.0)


def row_keys(content):
    """A 64-bit key per row of ``content`` (n, m), from its bytes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._conditional import row_keys
    >>> keys = row_keys(np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))
    >>> keys[0] == keys[1], keys[0] == keys[2]
    (True, False)
    """
    return [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
            for r in content]


def draw_model_space(score_fn, Z, missing, *, seed, n_samples, n_steps, n_resample, guidance,
                     t_min, t_max, chunk_size, noise_budget, device, content=None):
    """Conditional draws (n_samples, n, d) in the model's space of rows ``Z`` (NaN read as 0).

    Each (draw, row) pair's noise is seeded by ``seed``, the draw index and
    a hash of the row's ``content`` (default ``Z``, NaN read as 0) and
    missing pattern. Pairs are taken in draw-major order, in chunks whose
    pre-drawn noise stays within ``noise_budget`` numbers and at most
    ``chunk_size`` pairs; see :func:`~sklearn_diffusion.sampling.conditional_sde`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._conditional import draw_model_space
    >>> Z, missing = np.array([[1.0, 0.0]]), np.array([[False, True]])
    >>> draws = draw_model_space(lambda x, t: -x, Z, missing, seed=0, n_samples=2, n_steps=8,
    ...                          n_resample=1, guidance=1.0, t_min=1e-3, t_max=10.0,
    ...                          chunk_size=16, noise_budget=2**16, device="cpu")
    >>> draws.shape, draws[:, 0, 0].tolist()
    ((2, 1, 2), [1.0, 1.0])
    """
    n, d = Z.shape
    Z = np.nan_to_num(Z)
    content = np.concatenate([Z if content is None else content, missing], axis=1)
    keys = row_keys(content)
    k = conditional_noise_draws(n_steps, n_resample)
    step = int(np.clip(noise_budget // (k * d), 1, chunk_size))
    pairs = [(j, i) for j in range(n_samples) for i in range(n)]
    out = np.empty((n_samples * n, d))

    def piece(packed):
        z, observed, noise = packed[:, :d], packed[:, d:2 * d] > 0, packed[:, 2 * d:]
        return conditional_sde(
            score_fn, z, observed, t_min=t_min, t_max=t_max, n_steps=n_steps,
            n_resample=n_resample, guidance=guidance, noise=noise.reshape(len(z), k, d),
        )

    for part in chunks(len(pairs), step):
        index = np.array([i for _, i in pairs[part]])
        noise = np.stack([
            np.random.default_rng([seed, j, keys[i]]).standard_normal((k, d), np.float32)
            for j, i in pairs[part]
        ])
        packed = np.concatenate(
            [Z[index], ~missing[index], noise.reshape(len(index), k * d)], axis=1
        )
        result = map_chunks(piece, to_tensor(packed, device), len(index))
        out[part] = result.cpu().numpy().astype(np.float64)
    return out.reshape(n_samples, n, d)


def refit_on_draws(draw, train, Z, Z_val, seed, rounds):
    """Train again on rows whose missing entries are drawn from the current fit.

    The first fit holds a missing input at the column mean (MissDiff): at
    30% MCAR in 64 columns the network then learns the score of rows with a
    fifth of their entries pinned at 0, not of the data. Each round draws
    the missing entries of the training rows ``Z`` and held-out rows
    ``Z_val`` (model space, NaN at missing entries) with ``draw(rows,
    missing, key)`` given the observed ones, and calls ``train(Z_fill,
    Z_val_fill, observed, observed_val)`` (boolean masks), which trains from
    the start with the loss on the observed entries only and returns a
    ``TrainingResult`` (and updates the model ``draw`` uses): one round of
    stochastic EM (Celeux and Diebolt, 1985). Returns the last result.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._conditional import refit_on_draws
    >>> Z = np.array([[0.0, np.nan], [1.0, 2.0]])
    >>> seen = []
    >>> _ = refit_on_draws(lambda rows, missing, key: np.ones_like(rows),
    ...                    lambda *args: seen.append(args), Z, None, seed=0, rounds=1)
    >>> seen[0][0].tolist(), seen[0][2].tolist()
    ([[0.0, 1.0], [1.0, 2.0]], [[True, False], [True, True]])
    """
    def fill(rows, key):
        if rows is None:
            return None, None
        missing = np.isnan(rows)
        return np.where(missing, draw(rows, missing, key), rows), ~missing

    result = None
    for round_ in range(rounds):
        key = int(np.random.default_rng([seed, round_]).integers(MAX_SEED))
        (Z_fill, observed), (Z_val_fill, observed_val) = fill(Z, key), fill(Z_val, key + 1)
        result = train(Z_fill, Z_val_fill, observed, observed_val)
    return result
