"""Saving and loading fitted estimators without executing code (L4).

``pickle`` and ``joblib`` work (``model_`` is mapped to the CPU on load), but
unpickling a file can run arbitrary code, so a pickle must only be loaded
from a trusted source. :func:`save` writes a file that holds only tensors,
numbers, strings and lists/dicts of them; :func:`load` reads it with
``torch.load(weights_only=True)``, whose restricted unpickler refuses
anything else, and rebuilds the estimator from its class name (one of this
package's estimators), its parameters, its fitted attributes and the
weights of its network.
"""

from pathlib import Path

import numpy as np
import torch

from .bootstrapped import BootstrappedScoreEstimator
from .localized import LocalizedDiffusionEstimator

__all__ = ["save", "load"]

_FORMAT = 1
_CLASSES = {cls.__name__: cls for cls in (BootstrappedScoreEstimator, LocalizedDiffusionEstimator)}


def _encode(value):
    # Only containers the restricted unpickler accepts: arrays become tensors,
    # tuples are tagged so they come back as tuples.
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__strings__": [str(v) for v in value]}
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a value of type {type(value).__name__}: {value!r}")


def _decode(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__strings__" in value:
            return np.asarray(value["__strings__"], dtype=object)
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(estimator, path):
    """Save a fitted estimator to ``path`` in a form that loads without running code.

    Parameters
    ----------
    estimator : BootstrappedScoreEstimator or LocalizedDiffusionEstimator
        A fitted estimator. A ``random_state`` that is not an int or None is
        saved as None (it only seeds ``fit``).
    path : str or path-like
        Destination file.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_diffusion import BootstrappedScoreEstimator
    >>> from sklearn_diffusion.persistence import save, load
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> est = BootstrappedScoreEstimator(hidden_layer_sizes=(16,), max_iter=20).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skd")
    >>> save(est, path)
    >>> bool(np.array_equal(load(path).score_samples(X[:3]), est.score_samples(X[:3])))
    True
    """
    name = type(estimator).__name__
    if name not in _CLASSES:
        raise TypeError(f"save supports {sorted(_CLASSES)}, not {name}.")
    if not hasattr(estimator, "model_"):
        raise ValueError(f"This {name} instance is not fitted yet; fit it before saving.")
    params = estimator.get_params(deep=False)
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    fitted = {
        key: _encode(value)
        for key, value in vars(estimator).items()
        if key.endswith("_") and not key.startswith("_") and key != "model_"
    }
    payload = {
        "format": _FORMAT,
        "class": name,
        "params": {key: _encode(value) for key, value in params.items()},
        "fitted": fitted,
        "weights": estimator.model_.state_dict(),
    }
    torch.save(payload, Path(path))


def load(path):
    """Load an estimator written by :func:`save`; no code from the file runs.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator : BootstrappedScoreEstimator or LocalizedDiffusionEstimator
        The fitted estimator, its network on the CPU.

    Examples
    --------
    >>> from sklearn_diffusion.persistence import load
    >>> load("missing.skd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    FileNotFoundError: ...
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != _FORMAT or payload.get("class") not in _CLASSES:
        raise ValueError(f"{path} is not an estimator file written by sklearn_diffusion.persistence.save.")
    estimator = _CLASSES[payload["class"]](**{k: _decode(v) for k, v in payload["params"].items()})
    for key, value in payload["fitted"].items():
        setattr(estimator, key, _decode(value))
    model = estimator._empty_model()
    model.load_state_dict(payload["weights"])
    estimator.model_ = model.eval()
    return estimator
