"""Saving and loading fitted estimators without executing code (L4).

``pickle`` and ``joblib`` work (``model_`` is mapped to the CPU on load), but
unpickling a file can run arbitrary code, so a pickle must only be loaded
from a trusted source. :func:`save` writes a file that holds only tensors,
numbers, strings and lists/dicts of them; :func:`load` reads it with
``torch.load(weights_only=True)``, whose restricted unpickler refuses
anything else, and rebuilds the estimator from its class name (one of this
package's estimators), its parameters, its fitted attributes and the
weights of its network.

:func:`load` trusts nothing in the file: the parameters go through the
estimator's own validation, only the fitted attributes the class declares
are set, each with the type and shape it must have, and the network is laid
out on PyTorch's ``meta`` device (no memory) and compared with the stored
tensors before anything is allocated. Any mismatch is one ``ValueError``
naming the file and what is wrong.

The file is a fixed header, the SHA-256 digest of the rest of the file, and
the payload that ``torch.save`` writes. The digest sits outside the bytes it
covers, so one changed byte anywhere (header, digest, tensors, strings, the
archive's padding) or a truncation is refused before the payload is even
parsed: values that pass every check above but differ from the saved ones
cannot load. The digest guards against corruption and accidental edits, not
against an author who recomputes it; safety against a malicious file comes
from the restricted unpickler and the checks.
"""

import hashlib
import io
import math
from numbers import Real
from pathlib import Path

import numpy as np
import torch

from ._validation import check_settings
from .bootstrapped import BootstrappedScoreEstimator
from .localized import LocalizedDiffusionEstimator
from .imputer import DiffusionImputer
from .outlier import DiffusionOutlierDetector

__all__ = ["save", "load"]

_FORMAT = 2
_HEADER = f"sklearn_diffusion estimator file, format {_FORMAT}\n".encode()
_DIGEST_SIZE = hashlib.sha256().digest_size
# Format 1 was a bare torch.save archive, which is a zip file.
_ZIP_MAGIC = b"PK\x03\x04"
_MODELS = {cls.__name__: cls for cls in (BootstrappedScoreEstimator, LocalizedDiffusionEstimator)}
# Wrappers hold one fitted diffusion estimator in ``estimator_``.
_WRAPPERS = {cls.__name__: cls for cls in (DiffusionOutlierDetector, DiffusionImputer)}
_CLASSES = {**_MODELS, **_WRAPPERS}

# Fitted attributes each class may have, as (kind, shape). In shapes, "d" is
# n_features_in_, None any length, and "k" must agree across the attributes
# that use it.
_MODEL_ATTRIBUTES = {
    "n_features_in_": ("count", None),
    "feature_names_in_": ("strings", ("d",)),
    "device_": ("str", None),
    "mean_": ("finite", ("d",)),
    "scale_": ("positive", ("d",)),
    "column_transform_": ("column_transform", None),
    "x_knots_": ("finite", ("d", "k")),
    "z_knots_": ("finite", ("d", "k")),
    "column_bandwidth_": ("positive", ("d",)),
    "column_normal_weight_": ("finite", ("d",)),
    "constant_values_": ("float", ("d",)),
    "data_min_": ("float", ("d",)),
    "data_max_": ("float", ("d",)),
    "integer_features_": ("flags", ("d",)),
    "grid_steps_": ("float", ("d",)),
    "loss_curve_": ("float", (None,)),
    "validation_loss_curve_": ("float", (None,)),
    "n_iter_": ("count", None),
    "best_iter_": ("count", None),
    "anomaly_seed_": ("seed", None),
    "smoothing_": ("time", None),
    "smoothing_scores_": ("float", (None,)),
}
_ATTRIBUTES = {
    "BootstrappedScoreEstimator": {
        **_MODEL_ATTRIBUTES,
        "probes_": ("finite", (None, "d")),
        "reference_weights_": ("positive", ("m",)),
        "reference_means_": ("finite", ("m", "d")),
        "reference_eigenvalues_": ("positive", ("m", "d")),
        "reference_eigenvectors_": ("finite", ("m", "d", "d")),
        "reference_alone_": ("bool", None),
        "member_references_": ("strings", (None,)),
        "member_losses_": ("strings", (None,)),
        "stopping_metric_": ("stopping_metric", None),
        "objective_": ("objective", None),
        "validation_score_curve_": ("float", (None,)),
    },
    "LocalizedDiffusionEstimator": {
        **_MODEL_ATTRIBUTES,
        "distances_": ("distances", ("d", "d")),
        "radius_": ("finite_number", None),
        "radius_scores_": ("float", (None,)),
        "shared_": ("bool", None),
        "neighbourhoods_": ("indices", None),
        "blocks_": ("indices", None),
        "global_components_": ("finite", ("d", "g")),
        "global_variances_": ("positive", ("g",)),
    },
    "DiffusionOutlierDetector": {
        "n_features_in_": ("count", None),
        "feature_names_in_": ("strings", ("d",)),
        "method_": ("method", None),
        "offset_": ("finite_number", None),
        "reference_": ("finite", (None, "d")),
    },
    "DiffusionImputer": {
        "n_features_in_": ("count", None),
        "feature_names_in_": ("strings", ("d",)),
    },
}
_OPTIONAL = {"feature_names_in_", "x_knots_", "z_knots_", "column_bandwidth_",
             "column_normal_weight_", "constant_values_", "data_min_", "data_max_",
             "integer_features_", "grid_steps_", "reference_", "global_components_",
             "global_variances_", "member_references_", "member_losses_", "stopping_metric_",
             "objective_", "validation_score_curve_", "radius_", "radius_scores_", "shared_"}


class _Malformed(Exception):
    """What is wrong with a file; :func:`load` names the file and raises ValueError."""


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
    if isinstance(value, np.random.RandomState):
        # Its full state, so a loaded estimator continues the same stream.
        state = value.get_state(legacy=False)
        if state["bit_generator"] != "MT19937":
            raise TypeError(f"cannot save a RandomState on {state['bit_generator']}; "
                            f"use an int seed or np.random.RandomState(seed)")
        keys = torch.from_numpy(state["state"]["key"].astype(np.int64))
        return {"__random_state__": ["MT19937", keys, int(state["state"]["pos"]),
                                     int(state["has_gauss"]), float(state["gauss"])]}
    if type(value).__name__ in _MODELS:
        # An unfitted estimator given as a parameter (the detector's).
        return {"__estimator__": type(value).__name__, "params": _encode_params(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a value of type {type(value).__name__}: {value!r}")


def _encode_params(estimator):
    return {key: _encode(value) for key, value in estimator.get_params(deep=False).items()}


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"} and isinstance(value["__ndarray__"], torch.Tensor):
            return value["__ndarray__"].numpy()
        if set(value) == {"__strings__"} and isinstance(value["__strings__"], list):
            return np.asarray([str(v) for v in value["__strings__"]], dtype=object)
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_decode(v) for v in value["__tuple__"])
        if set(value) == {"__estimator__", "params"} and value["__estimator__"] in _MODELS:
            return _build(value["__estimator__"], value["params"])
        if set(value) == {"__random_state__"}:
            return _random_state(value["__random_state__"])
        raise _Malformed(f"a value is a dict with unexpected keys {sorted(map(str, value))}")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Malformed(f"a value of type {type(value).__name__} where a plain value belongs")


def _random_state(state):
    """A RandomState from what :func:`_encode` stored, or :class:`_Malformed`."""
    ok = (
        isinstance(state, list) and len(state) == 5 and state[0] == "MT19937"
        and isinstance(state[1], torch.Tensor) and state[1].dtype == torch.int64
        and state[1].shape == (624,) and bool(((state[1] >= 0) & (state[1] < 2**32)).all())
        and all(isinstance(v, int) and not isinstance(v, bool) for v in state[2:4])
        and 0 <= state[2] <= 624 and state[3] in (0, 1) and isinstance(state[4], float)
    )
    if not ok:
        raise _Malformed("a random_state is not a valid MT19937 state")
    random_state = np.random.RandomState()
    random_state.set_state((state[0], state[1].numpy().astype(np.uint32), *state[2:]))
    return random_state


def _payload(estimator):
    name = type(estimator).__name__
    fitted = {
        key: value
        for key, value in vars(estimator).items()
        if key.endswith("_") and not key.startswith("_") and key not in ("model_", "estimator_")
    }
    payload = {
        "format": _FORMAT,
        "class": name,
        "params": _encode_params(estimator),
        "fitted": {key: _encode(value) for key, value in fitted.items()},
    }
    if name in _WRAPPERS:
        inner = type(estimator.estimator_).__name__
        if inner not in _MODELS:
            raise TypeError(
                f"save supports a {name} wrapping {sorted(_MODELS)}, "
                f"not {inner}; pickle it instead (from a trusted source only)."
            )
        payload["estimator_"] = _payload(estimator.estimator_)
    else:
        payload["weights"] = estimator.model_.state_dict()
    return payload


def save(estimator, path):
    """Save a fitted estimator to ``path`` in a form that loads without running code.

    Parameters
    ----------
    estimator : BootstrappedScoreEstimator, LocalizedDiffusionEstimator, \
            DiffusionOutlierDetector or DiffusionImputer
        A fitted estimator; a detector or an imputer must wrap one of the two
        diffusion estimators. A ``random_state`` given as a ``RandomState``
        is saved with its full current state: the loaded estimator draws the
        numbers the original would draw next (two estimators sharing one
        ``RandomState`` load with a copy each).
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
    if not hasattr(estimator, "n_features_in_"):
        raise ValueError(f"This {name} instance is not fitted yet; fit it before saving.")
    inner = getattr(estimator, "estimator_", estimator)
    if hasattr(inner, "table_codec_"):
        # Categories can be any Python objects; this format holds only
        # tensors, numbers and strings.
        raise ValueError(
            f"save does not support a {type(inner).__name__} fitted on categorical columns yet; "
            "use joblib.dump (and load only files you trust), or code the categories as "
            "numbers before fitting."
        )
    _write(_payload(estimator), path)


def _write(payload, path):
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(_HEADER + body).digest()
    Path(path).write_bytes(_HEADER + digest + body)


def _read(path):
    """The payload of the file at ``path``, verified against its digest."""
    path = Path(path)
    data = path.read_bytes()  # a missing file is a FileNotFoundError, as for open()
    if data.startswith(_ZIP_MAGIC):
        raise ValueError(
            f"{path} has no integrity digest: it was written by sklearn_diffusion's "
            f"earlier format 1 (or is another zip file). Such files are refused because a "
            f"changed value in them cannot be detected; load it with the version that "
            f"saved it and save it again with this one."
        )
    if not data.startswith(_HEADER):
        raise ValueError(
            f"{path} is not a file written by sklearn_diffusion.persistence.save "
            f"(it lacks the header {_HEADER!r}, or the header is damaged)."
        )
    digest = data[len(_HEADER):len(_HEADER) + _DIGEST_SIZE]
    body = data[len(_HEADER) + _DIGEST_SIZE:]
    if hashlib.sha256(_HEADER + body).digest() != digest:
        raise ValueError(
            f"{path} is corrupted or was modified after it was saved: its SHA-256 digest "
            f"does not match its content ({len(data)} bytes); save the estimator again."
        )
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler's many errors all mean "not our format"
        raise ValueError(
            f"{path} is not a file written by sklearn_diffusion.persistence.save "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def load(path):
    """Load an estimator written by :func:`save`; no code from the file runs.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator : BootstrappedScoreEstimator, LocalizedDiffusionEstimator, \
            DiffusionOutlierDetector or DiffusionImputer
        The fitted estimator, its network on the CPU.

    Raises
    ------
    ValueError
        When the file is not one written by :func:`save`; when it differs in
        any byte from what :func:`save` wrote, or is truncated (its SHA-256
        digest does not match); or when its content is inconsistent (wrong
        keys, types, shapes, or non-finite weights). The message names the
        file and the problem. Files of format 1 (before the digest) are
        refused rather than loaded unchecked: the digest is what makes a
        loaded model the saved one, and this young library prefers asking to
        re-save (with the version that wrote them) over loading them silently.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_diffusion.persistence import load
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("not a model")
    >>> load(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../notes.txt is not a file written by sklearn_diffusion.persistence.save ...
    """
    path = Path(path)
    payload = _read(path)
    try:
        return _restore(payload)
    except _Malformed as exc:
        message = f"{path} is not a valid sklearn_diffusion estimator file: {exc}."
        raise ValueError(message) from None


#: Parameters added after files were first written: a file without one takes its default,
#: or the value of :data:`_OLD_FILE_PARAMS` where models fitted before it behaved otherwise.
_ADDED_PARAMS = {"bootstrap_draws", "objective", "dequantize"}
_OLD_FILE_PARAMS = {"dequantize": False, "objective": "score"}


def _build(name, params):
    """An unfitted ``name`` from saved parameters, validated by the class itself."""
    cls = _CLASSES[name]
    expected = set(cls().get_params(deep=False))
    if isinstance(params, dict) and set(params) < expected:
        # Only parameters added later may be missing, and they take their defaults.
        defaults = {**cls().get_params(deep=False), **_OLD_FILE_PARAMS}
        params = {**{k: _encode(defaults[k]) for k in _ADDED_PARAMS & expected - set(params)},
                  **params}
    if not isinstance(params, dict) or set(params) != expected:
        raise _Malformed(f"the parameters of {name} are not those of the class")
    estimator = cls(**{key: _decode(value) for key, value in params.items()})
    try:
        estimator._validate_params()
        if name in _MODELS:
            check_settings(estimator)
    except (ValueError, TypeError) as exc:
        raise _Malformed(f"invalid parameters: {exc}") from None
    return estimator


def _restore(payload):
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise _Malformed(f"it holds no payload of format {_FORMAT}")
    name = payload.get("class")
    if name not in _CLASSES:
        raise _Malformed(f"unknown class {name!r}")
    expected = {"format", "class", "params", "fitted"}
    expected |= {"estimator_"} if name in _WRAPPERS else {"weights"}
    if set(payload) != expected:
        raise _Malformed(f"the keys are {sorted(map(str, payload))}, expected {sorted(expected)}")
    estimator = _build(name, payload["params"])
    fitted = payload["fitted"]
    if not isinstance(fitted, dict):
        raise _Malformed("'fitted' is not a dict")
    for key, value in _check_attributes(name, {k: _decode(v) for k, v in fitted.items()}).items():
        setattr(estimator, key, value)
    if name == "LocalizedDiffusionEstimator":
        _restore_localized_choices(estimator)
    if name in _WRAPPERS:
        inner = _restore(payload["estimator_"])
        if inner.n_features_in_ != estimator.n_features_in_:
            raise _Malformed(f"the {name} and its estimator disagree on n_features_in_")
        if name == "DiffusionOutlierDetector" and (
            (estimator.method_ == "hybrid") != hasattr(estimator, "reference_")
        ):
            raise _Malformed("reference_ must be present exactly when method_ is 'hybrid'")
        estimator.estimator_ = inner
    else:
        estimator.model_ = _load_network(estimator, payload["weights"])
        # The saved parameters stand for those of the fit (see refit_features).
        estimator._fit_params = estimator.get_params(deep=False)
    return estimator


def _restore_localized_choices(estimator):
    """``radius_`` and ``shared_`` of a file written before they existed: the parameters'."""
    if not hasattr(estimator, "radius_"):
        if estimator.radius == "auto":
            raise _Malformed("radius_ is missing but radius is 'auto'")
        estimator.radius_ = float(estimator.radius)
        estimator.radius_scores_ = np.full(1, np.nan)
    if not hasattr(estimator, "shared_"):
        if estimator.shared == "auto":
            raise _Malformed("shared_ is missing but shared is 'auto'")
        estimator.shared_ = bool(estimator.shared)


def _check_attributes(name, fitted):
    """``fitted`` if it is what a fit of ``name`` produces, else :class:`_Malformed`."""
    declared = _ATTRIBUTES[name]
    unknown = set(fitted) - set(declared)
    if unknown:
        raise _Malformed(f"unexpected fitted attributes {sorted(map(str, unknown))}")
    missing = set(declared) - _OPTIONAL - set(fitted)
    if missing:
        raise _Malformed(f"missing fitted attributes {sorted(missing)}")
    d = fitted["n_features_in_"]
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise _Malformed(f"n_features_in_ must be a positive int, got {d!r}")
    sizes = {"d": d}
    for key, value in fitted.items():
        kind, shape = declared[key]
        _check_value(key, value, kind, shape, sizes)
    return fitted


def _check_value(key, value, kind, shape, sizes):
    scalar_ok = {
        "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "seed": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "column_transform": lambda v: v in ("gaussianize", "standardize"),
        "time": lambda v: isinstance(v, float) and 0 < v < math.inf,
        "finite_number": lambda v: isinstance(v, Real) and math.isfinite(v),
        "method": lambda v: v in ("hybrid", "score_norm", "denoising", "log_density"),
        "stopping_metric": lambda v: v in ("likelihood", "loss"),
        "objective": lambda v: v in ("score", "flow_matching"),
    }
    if kind in scalar_ok:
        if not scalar_ok[kind](value):
            raise _Malformed(f"{key} has an invalid value {value!r}")
        return
    if kind == "indices":
        ok = isinstance(value, list) and all(
            isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind == "i"
            and ((v >= 0) & (v < sizes["d"])).all() for v in value
        )
        if not ok:
            raise _Malformed(f"{key} must be a list of index arrays in [0, {sizes['d']})")
        return
    if not isinstance(value, np.ndarray) or value.ndim != len(shape):
        raise _Malformed(f"{key} must be an array with {len(shape)} dimension(s)")
    for axis, (size, want) in enumerate(zip(value.shape, shape)):
        if want is None:
            continue
        if sizes.setdefault(want, size) != size:
            raise _Malformed(f"{key} has shape {value.shape}; axis {axis} must be {sizes[want]}")
    if kind == "strings":
        if value.dtype != object:
            raise _Malformed(f"{key} must hold strings")
        return
    if kind == "flags":
        if value.dtype != bool:
            raise _Malformed(f"{key} must hold booleans, not {value.dtype}")
        return
    if value.dtype.kind != "f":
        raise _Malformed(f"{key} must hold floats, not {value.dtype}")
    if kind in ("finite", "positive", "distances") and not np.isfinite(value).all():
        if not (kind == "distances" and not np.isnan(value).any()):
            raise _Malformed(f"{key} has values that are not finite")
    if kind == "positive" and not (value > 0).all():
        raise _Malformed(f"{key} has values that are not positive")
    if kind == "distances" and not ((value >= 0).all() and (np.diag(value) == 0).all()):
        raise _Malformed(f"{key} must be non-negative with a zero diagonal")


def _load_network(estimator, weights):
    """The estimator's network with the stored weights, checked before any allocation."""
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise _Malformed("'weights' must map names to tensors")
    try:
        with torch.device("meta"):
            # Shapes only: a file asking for a huge network costs nothing here.
            layout = estimator._empty_model().state_dict()
    except Exception as exc:
        raise _Malformed(f"the network cannot be laid out ({type(exc).__name__}: {exc})") from None
    if set(layout) != set(weights):
        raise _Malformed(
            f"the network has {len(layout)} tensors, the file {len(weights)} with other names"
            if len(layout) != len(weights) else "the file's tensors have other names"
        )
    for key, want in layout.items():
        got = weights[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise _Malformed(
                f"tensor {key!r} has shape {tuple(got.shape)} and dtype {got.dtype}, "
                f"expected {tuple(want.shape)} and {want.dtype}"
            )
    model = estimator._empty_model()
    parameters = dict(model.named_parameters())
    for key, value in model.state_dict().items():
        if key not in parameters and not torch.equal(value, weights[key]):
            # Index buffers (windows of a localized model) follow from the
            # fitted attributes; a file that disagrees is inconsistent.
            raise _Malformed(f"buffer {key!r} disagrees with the fitted attributes")
        if key in parameters and not torch.isfinite(weights[key]).all():
            raise _Malformed(f"tensor {key!r} has values that are not finite")
    model.load_state_dict(weights)
    return model.eval()
