"""Checks of parameters and arguments shared by the estimators (L4, private).

No scikit-learn here: ``_parameter_constraints`` (in the estimators) does the
type and range checks; these are the checks it cannot express (tuples of
positive numbers, finite floats, cross-parameter rules) and the
all-or-nothing wrapper of ``fit``.
"""

import functools
import math
from numbers import Integral, Real

import numpy as np

#: Largest seed drawn from a ``random_state`` (an int32, as NumPy's legacy seeding takes).
MAX_SEED = np.iinfo(np.int32).max

#: Smallest ``t_min``: below it the noise (standard deviation ``sqrt(2 t_min)``,
#: 1.4e-6 at the floor) drowns in float32 rounding, and the noise scale
#: underflows near 1e-38.
MIN_T_MIN = 1e-12


def tuple_of(kind, length=None):
    """A check that a value is a non-empty tuple (or list) of finite positive ``kind``.

    Examples
    --------
    >>> from numbers import Integral
    >>> from sklearn_diffusion._validation import tuple_of
    >>> tuple_of(Integral)("hidden_layer_sizes", [16, 8])
    (16, 8)
    >>> tuple_of(Integral)("hidden_layer_sizes", (0,))
    Traceback (most recent call last):
    ...
    ValueError: hidden_layer_sizes must be a tuple of positive numbers, got (0,).
    """

    def check(name, value):
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, kind) and not isinstance(v, bool) and 0 < v < math.inf for v in value
        )
        if not ok or len(value) == 0 or (length is not None and len(value) != length):
            size = f"{length} " if length else ""
            raise ValueError(f"{name} must be a tuple of {size}positive numbers, got {value!r}.")
        return tuple(value)

    return check


check_layers = tuple_of(Integral)
check_window = tuple_of(Real, length=2)


def check_count(name, value):
    """``value`` as a positive int; a bool is not a count.

    Examples
    --------
    >>> from sklearn_diffusion._validation import check_count
    >>> check_count("n_samples", 3)
    3
    >>> check_count("n_samples", True)
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be a positive integer, got True.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_noise_range(noise_range):
    """``noise_range`` as ``(low, high)``, two positive times with ``low <= high``.

    Examples
    --------
    >>> from sklearn_diffusion._validation import check_noise_range
    >>> check_noise_range([0.001, 1.0])
    (0.001, 1.0)
    """
    low, high = check_window("noise_range", noise_range)
    if low > high:
        raise ValueError(f"noise_range must satisfy low <= high, got {noise_range!r}.")
    return low, high


def check_settings(est):
    """The rules between a diffusion estimator's parameters that constraints cannot state.

    Raises ``ValueError`` on a non-finite float, a malformed tuple, ``t_min``
    below :data:`MIN_T_MIN`, ``t_min >= t_max`` or a ``smoothing`` outside
    ``[t_min, t_max)``.

    Examples
    --------
    >>> from sklearn_diffusion import BootstrappedScoreEstimator
    >>> from sklearn_diffusion._validation import check_settings
    >>> check_settings(BootstrappedScoreEstimator(t_min=2.0, t_max=1.0))
    Traceback (most recent call last):
    ...
    ValueError: t_min must be smaller than t_max, got 2.0 and 1.0.
    """
    for name in ("learning_rate", "bootstrap_step", "t_min", "t_max", "smoothing"):
        value = getattr(est, name)
        if isinstance(value, Real) and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}.")
    check_layers("hidden_layer_sizes", est.hidden_layer_sizes)
    lo, hi = check_window("bootstrap_window", est.bootstrap_window)
    if not lo < hi:
        raise ValueError(f"bootstrap_window must satisfy low < high, got {est.bootstrap_window!r}.")
    if est.t_min < MIN_T_MIN:
        raise ValueError(
            f"t_min must be at least {MIN_T_MIN:g} (the noise must stay above float32 "
            f"rounding), got {est.t_min!r}."
        )
    if not est.t_min < est.t_max:
        raise ValueError(f"t_min must be smaller than t_max, got {est.t_min} and {est.t_max}.")
    if est.smoothing != "auto" and not est.t_min <= est.smoothing < est.t_max:
        raise ValueError(
            f"smoothing must be 'auto' or a time in [t_min, t_max), got {est.smoothing!r}."
        )


def _same_value(a, b):
    # A RandomState is the same only as itself (its state moves with every draw).
    if isinstance(a, np.random.RandomState) or isinstance(b, np.random.RandomState):
        return a is b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except ValueError:  # ragged sequences
        return False


def changed_params(est, exempt=()):
    """Names of ``est``'s parameters that differ from those of its last fit (``_fit_params``).

    A fit records ``get_params(deep=False)`` in ``_fit_params``; an estimator
    without the record counts as unchanged. Parameters in ``exempt`` are
    not compared.

    Examples
    --------
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn_diffusion._validation import changed_params
    >>> kde = KernelDensity(bandwidth=1.0)
    >>> kde._fit_params = kde.get_params(deep=False)
    >>> changed_params(kde.set_params(bandwidth=2.0, leaf_size=10), exempt=("leaf_size",))
    ['bandwidth']
    """
    current = est.get_params(deep=False)
    fitted = getattr(est, "_fit_params", current)
    return [name for name in current
            if name not in exempt and not _same_value(current[name], fitted.get(name))]


def atomic_fit(fit):
    """Make ``fit`` all-or-nothing: on any exception the estimator is restored.

    ``fit`` sets attributes along the way (``validate_data`` sets
    ``n_features_in_`` first of all); restoring the attribute dictionary
    taken before it ran leaves a failed first fit unfitted and a failed
    refit exactly the previous model, for errors and ``KeyboardInterrupt``
    alike. Fits replace attributes rather than mutate them, so a shallow
    copy is a faithful snapshot.

    Examples
    --------
    >>> from sklearn_diffusion._validation import atomic_fit
    >>> class Model:
    ...     @atomic_fit
    ...     def fit(self, fail):
    ...         self.coef_ = 1
    ...         if fail:
    ...             raise ValueError("bad data")
    ...         return self
    >>> m = Model()
    >>> try:
    ...     m.fit(True)
    ... except ValueError:
    ...     pass
    >>> hasattr(m, "coef_")
    False
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return wrapper
