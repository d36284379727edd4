"""Small utilities shared by every layer: devices, generators, tensors (L0).

Nothing here knows about scikit-learn or about diffusion.
"""

import copy
import io
import warnings

import numpy as np
import torch

__all__ = [
    "resolve_device", "inference_device", "model_on", "make_generator", "to_tensor", "chunks",
    "map_chunks", "map_rows", "TorchPickleMixin", "DTYPE",
]

#: Compute dtype of every torch computation in the library.
DTYPE = torch.float32


def resolve_device(device):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device`` into a device.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA when it is available and the CPU otherwise.

    Returns
    -------
    torch.device

    Examples
    --------
    >>> from sklearn_diffusion._utils import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested but CUDA is not available.")
    return device


def inference_device(device):
    """The device a model fitted on ``device`` (a string) computes on now.

    A model fitted on a GPU and loaded on a machine without one falls back
    to the CPU, with a warning.

    Examples
    --------
    >>> from sklearn_diffusion._utils import inference_device
    >>> inference_device("cpu")
    device(type='cpu')
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"The model was fitted on {device}, which is not available; using the CPU.",
            RuntimeWarning,
        )
        return torch.device("cpu")
    return device


def model_on(model, device):
    """``model`` on ``device``: itself on the CPU, a copy elsewhere.

    ``nn.Module.to`` moves in place, and fitted models stay on the CPU (so
    ``clone``, pickling and CPU-only machines work).

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion._utils import model_on
    >>> layer = torch.nn.Linear(2, 2)
    >>> model_on(layer, torch.device("cpu")) is layer
    True
    """
    return model if torch.device(device).type == "cpu" else copy.deepcopy(model).to(device)


def make_generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with the integer ``seed``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion._utils import make_generator
    >>> g = make_generator(0)
    >>> torch.randn(2, generator=g).shape
    torch.Size([2])
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(int(seed))
    return generator


def to_tensor(X, device):
    """A float32 tensor on ``device`` from an array-like of shape (n, d).

    Examples
    --------
    >>> from sklearn_diffusion._utils import to_tensor
    >>> to_tensor([[1.0, 2.0]], "cpu").dtype
    torch.float32
    """
    return torch.as_tensor(np.asarray(X), dtype=DTYPE, device=torch.device(device))


def chunks(n, chunk_size):
    """Slices that cover ``range(n)`` in pieces of at most ``chunk_size``.

    Examples
    --------
    >>> from sklearn_diffusion._utils import chunks
    >>> list(chunks(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


#: Chunks are padded to a multiple of this many rows (see :func:`map_chunks`).
ROW_MULTIPLE = 16


def map_chunks(fn, x, chunk_size):
    """``fn`` applied to ``x`` (n, d) in chunks of rows, results concatenated.

    Each chunk is padded with zero rows to a multiple of ``ROW_MULTIPLE``:
    matrix-multiply libraries choose their kernel by the number of rows, and
    below about 16 rows a different kernel rounds differently. With padding, a
    row's result is the same bit for bit whatever rows it is passed with.
    ``fn`` must act on rows independently and return a tensor with one
    leading entry per row.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion._utils import map_chunks
    >>> map_chunks(lambda x: x.sum(1), torch.ones(5, 2), chunk_size=2).tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    out = []
    for rows in chunks(x.shape[0], chunk_size):
        part = x[rows]
        n = part.shape[0]
        pad = (-n) % ROW_MULTIPLE
        if pad:
            part = torch.cat([part, part.new_zeros((pad, *part.shape[1:]))])
        out.append(fn(part)[:n])
    return torch.cat(out)


def map_rows(fn, X, chunk_size):
    """``fn(rows) -> (rows,)`` over bounded pieces of the numpy array ``X`` (n, d), concatenated.

    Pieces hold at least ``chunk_size`` rows and about 2**21 numbers, so the
    model-space copy, the float32 tensor and the outputs of a piece are all
    that is held at once beside ``X``: peak memory does not grow with n.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_diffusion._utils import map_rows
    >>> map_rows(lambda rows: rows.sum(axis=1), np.ones((5, 2)), chunk_size=2).tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    step = max(chunk_size, 2**21 // X.shape[1])
    return np.concatenate([fn(X[rows]) for rows in chunks(len(X), step)])


class TorchPickleMixin:
    """Pickles a fitted ``model_`` (a torch module) as bytes that load on any machine.

    Weights saved from any device land on the CPU on load (``map_location``,
    as skorch does), so a model fitted on a GPU loads on a machine without one.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion._utils import TorchPickleMixin
    >>> class Holder(TorchPickleMixin):
    ...     pass
    >>> h = Holder()
    >>> h.model_ = torch.nn.Linear(2, 1)
    >>> state = h.__getstate__()
    >>> type(state["model_"]).__name__
    'bytes'
    >>> copy = Holder.__new__(Holder)
    >>> copy.__setstate__(state)
    >>> type(copy.model_).__name__
    'Linear'
    """

    def __getstate__(self):
        parent = getattr(super(), "__getstate__", None)
        state = parent() if parent is not None else dict(self.__dict__)
        if "model_" in state:
            buffer = io.BytesIO()
            torch.save(state["model_"], buffer)
            state = {**state, "model_": buffer.getvalue()}
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            buffer = io.BytesIO(state["model_"])
            state = {**state, "model_": torch.load(buffer, map_location="cpu", weights_only=False)}
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
