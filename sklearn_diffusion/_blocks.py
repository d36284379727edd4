"""Training the localized estimator's blocks of sub-models (L4, private).

A block is a set of coordinates whose local networks are trained together in
one job, on the block's columns and their halo. :func:`train_blocks`
dispatches the jobs with :class:`sklearn.utils.parallel.Parallel` (so any
joblib backend, Dask included, chooses where they run) and
:func:`stack_states` assembles their weights, for ``fit`` and
``refit_features`` alike.
"""

import numpy as np
import torch
from sklearn.utils.parallel import Parallel, delayed

from ._threads import threaded_worker
from ._utils import make_generator, to_tensor
from ._validation import MAX_SEED
from .hybrid import hybrid_model
from .localization import LocalNoiseModel, block_view, local_windows
from .training import fit_noise_model, validation_set


def fit_block(Z, Z_val, windows, core, centre_slot, *, hidden_layer_sizes, shared, seed, device,
              training_kwargs, global_part=None, observed=None, observed_val=None):
    """Fit the sub-models of one block on its columns; the joblib worker.

    ``Z`` (n, h) and ``Z_val`` (n_val, h) or None hold the block's columns
    (core and halo), ``windows`` (b, k) and ``core`` (b,) index into them.
    ``global_part``, the principal directions and their variances, makes a
    hybrid model (then the block is every coordinate). ``observed`` and
    ``observed_val``, boolean masks like ``Z`` and ``Z_val``, mark the
    observed entries when the missing ones are filled in (see
    :func:`~sklearn_diffusion.training.fit_noise_model`).
    Returns the CPU state dict and the curves, so any backend can ship it.
    """
    device = torch.device(device)
    if global_part is None:
        network = LocalNoiseModel(
            windows, core, centre_slot, Z.shape[1], hidden_layer_sizes, shared,
            generator=make_generator(seed),
        )
    else:
        network = hybrid_model(windows, centre_slot, Z.shape[1], hidden_layer_sizes, shared,
                               *global_part, generator=make_generator(seed))
    network = network.to(device)
    generator = make_generator(seed, device)
    validation = None
    if Z_val is not None:
        validation = validation_set(
            to_tensor(Z_val, device), training_kwargs["t_min"], training_kwargs["t_max"],
            generator=generator,
            observed=None if observed_val is None else to_tensor(observed_val, device),
        )
    result = fit_noise_model(
        network, to_tensor(Z, device), generator=generator,
        columns=torch.as_tensor(core, device=device), validation=validation,
        observed=None if observed is None else to_tensor(observed, device), **training_kwargs,
    )
    state = {name: value.cpu() for name, value in result.model.state_dict().items()}
    return state, result.loss_curve, result.validation_curve, result.best_iter


def train_blocks(est, Z, Z_val, which, device, seed, observed=None, observed_val=None):
    """Train the blocks ``which`` (indices into ``est.blocks_``) on the model-space rows.

    ``Z`` (n, d) and ``Z_val`` (n_val, d) or None are numpy arrays. Every
    block's seed is drawn from ``seed`` by its index before dispatch, so
    the model depends neither on ``n_jobs`` nor on which blocks are
    trained (what ``refit_features`` relies on). ``observed`` and
    ``observed_val`` are the masks of :func:`fit_block`, for all columns.
    Returns one ``(state, loss_curve, validation_curve, best_iter)`` per block.
    """
    windows, centre_slot = local_windows(est.locality, est.distances_, est.radius_,
                                         shared=est.shared_)
    seeds = np.random.RandomState(seed).randint(MAX_SEED, size=len(est.blocks_))
    training_kwargs = est._training_kwargs()
    hidden = tuple(est.hidden_layer_sizes)
    global_part = None
    if hasattr(est, "global_components_"):
        global_part = (est.global_components_, est.global_variances_)
    def columns(mask, halo):
        # A block whose columns are all observed trains exactly as on complete
        # rows, so the refit round of an incomplete fit leaves it bit for bit
        # as the first round made it (and refit_features can match a full fit).
        if mask is None or mask[:, halo].all():
            return None
        return mask[:, halo]

    jobs = []
    for b in which:
        halo, local, core = block_view(windows, est.blocks_[b])
        jobs.append(
            delayed(threaded_worker(fit_block))(
                Z[:, halo], None if Z_val is None else Z_val[:, halo], local, core,
                centre_slot, hidden_layer_sizes=hidden, shared=est.shared_,
                seed=int(seeds[b]), device=str(device),
                training_kwargs={**training_kwargs, "description": f"block {b}"},
                global_part=global_part,
                observed=columns(observed, halo), observed_val=columns(observed_val, halo),
            )
        )
    # CUDA cannot be used in forked workers: blocks share the device through threads.
    backend = {"require": "sharedmem"} if device.type == "cuda" else {}
    return Parallel(n_jobs=est.n_jobs, **backend)(jobs)


def stack_states(model, states, blocks, which, shared, base=None):
    """``model`` with the blocks' weights stacked in coordinate order; returns ``model``.

    ``states[k]`` holds the weights of block ``which[k]`` (coordinates
    ``blocks[which[k]]``); with ``base`` (a state dict of the whole model)
    the other blocks keep its weights. One network in all when ``shared``.
    """
    if base is None:
        state = model.state_dict()
        for name, _ in model.named_parameters():
            state[name] = torch.cat([s[name] for s in states])
    else:
        state = {name: value.clone() for name, value in base.items()}
        for b, block_state in zip(which, states):
            rows = slice(None) if shared else slice(int(blocks[b][0]), int(blocks[b][-1]) + 1)
            for name, _ in model.named_parameters():
                state[name][rows] = block_state[name]
    model.load_state_dict(state)
    return model
