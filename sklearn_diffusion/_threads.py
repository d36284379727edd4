"""How many torch threads the public methods use, and a global config to choose (L0).

Torch's intra-op threads busy-wait for each other: with fewer free cores than
threads (other processes, or the other workers of ``GridSearchCV(n_jobs=...)``)
a fit costs several times its share of the cores
(``benchmarks/results/threads.md``). The public methods run inside
:func:`torch_threads`, which sets the number the policy gives
(:func:`effective_n_threads`; ``n_threads`` of :func:`set_config` and
:func:`config_context`, ``"auto"`` by default) and puts the user's setting
back afterwards. As with :func:`sklearn.set_config` the config is local to the
calling thread; :func:`threaded_worker` carries it to joblib workers. Only
torch, the standard library and threadpoolctl are imported here.
"""

import contextlib
import functools
import itertools
import multiprocessing
import os
import sys
import threading
from numbers import Integral

import torch

__all__ = [
    "SMALL_WORK", "config_context", "effective_n_threads", "get_config", "in_parallel_worker",
    "layer_work", "set_config", "threaded_worker", "torch_threads",
]

#: Multiply-adds of one layer call (rows x fan-in x fan-out) below which
#: ``"auto"`` runs one thread: on 2 nearly free cores two threads were 1.04x
#: slower at 256 x 128 x 128 (the default network), 1.11x faster at 16.8M
#: (``benchmarks/results/threads.previous.md``).
SMALL_WORK = 2**24

# Copied into each thread's config on first use (scikit-learn's convention).
_global_config = {"n_threads": "auto"}
_threadlocal = threading.local()

_N_THREADS_WORDS = ("auto", "torch")


def _get_threadlocal_config():
    if not hasattr(_threadlocal, "config"):
        _threadlocal.config = _global_config.copy()
    return _threadlocal.config


def _check_n_threads(n_threads):
    # bool is an Integral: ``n_threads=True`` is a mistake, not 1 thread.
    if isinstance(n_threads, str) and n_threads in _N_THREADS_WORDS:
        return n_threads
    if isinstance(n_threads, Integral) and not isinstance(n_threads, bool) and n_threads >= 1:
        return int(n_threads)
    raise ValueError(
        f"n_threads must be 'auto', 'torch' or a positive integer, got {n_threads!r}."
    )


def get_config():
    """The thread policy in force in the calling thread.

    Returns
    -------
    config : dict
        ``{"n_threads": value}``, a copy; see :func:`set_config`.

    See Also
    --------
    set_config : Change the policy.
    config_context : Change it for a block of code.

    Examples
    --------
    >>> from sklearn_diffusion._threads import get_config
    >>> get_config()
    {'n_threads': 'auto'}
    """
    return _get_threadlocal_config().copy()


def set_config(n_threads=None):
    """Set the number of torch threads the public methods use, in the calling thread.

    Parameters
    ----------
    n_threads : "auto", "torch", int or None, default=None
        ``"auto"`` (the default config): the rule of
        :func:`effective_n_threads`. ``"torch"``: leave torch's own setting
        (:func:`torch.get_num_threads`) as it is, the behaviour before the
        policy existed. A positive integer: exactly that many intra-op
        threads inside every public method. ``None`` leaves the value
        unchanged, as in :func:`sklearn.set_config`.

    See Also
    --------
    config_context : The same for a block of code, restored afterwards.
    get_config : The values in force.

    Notes
    -----
    The config is local to the calling thread. It reaches joblib workers only
    through :func:`threaded_worker`: a ``GridSearchCV(n_jobs=2)`` worker
    process starts from the defaults (``"auto"``, so one thread per worker).

    Examples
    --------
    >>> from sklearn_diffusion._threads import get_config, set_config
    >>> set_config(n_threads=1)
    >>> get_config()["n_threads"]
    1
    >>> set_config(n_threads="auto")
    """
    if n_threads is not None:
        _get_threadlocal_config()["n_threads"] = _check_n_threads(n_threads)


@contextlib.contextmanager
def config_context(*, n_threads=None):
    """Set the thread policy for a block of code; the previous values come back on exit.

    Parameters
    ----------
    n_threads : "auto", "torch", int or None, default=None
        As in :func:`set_config`; ``None`` keeps the value in force.

    Yields
    ------
    None

    See Also
    --------
    set_config : Set the policy without a block.

    Examples
    --------
    >>> from sklearn_diffusion._threads import config_context, get_config
    >>> with config_context(n_threads=1):
    ...     with config_context(n_threads="torch"):
    ...         print(get_config()["n_threads"])
    ...     print(get_config()["n_threads"])
    torch
    1
    >>> get_config()["n_threads"]
    'auto'
    """
    old = get_config()
    set_config(n_threads=n_threads)
    try:
        yield
    finally:
        # Put back every key, even one the block set with set_config.
        _get_threadlocal_config().update(old)


def in_parallel_worker():
    """Whether this code runs as a job of a parallel backend.

    True inside a job that :class:`joblib.Parallel` dispatched to workers
    (loky, multiprocessing or threading backend: joblib then makes the
    worker's active backend a nested one, of nesting level 1 or more), in a
    loky worker process, in a child process of :mod:`multiprocessing`
    (``Pool``, ``ProcessPoolExecutor``), and in a Dask worker. A sequential
    ``Parallel(n_jobs=1)`` runs its jobs in the caller: False there.

    Returns
    -------
    bool

    Examples
    --------
    >>> from joblib import Parallel, delayed
    >>> from sklearn_diffusion._threads import in_parallel_worker
    >>> in_parallel_worker()
    False
    >>> Parallel(n_jobs=2, backend="threading")(delayed(in_parallel_worker)() for _ in range(2))
    [True, True]
    """
    return _parallel_worker_kind() is not None


def _parallel_worker_kind():
    # Each check reads only modules that are already imported: a process
    # that never imported joblib or distributed cannot be one of their
    # workers, and importing them here would cost the caller.
    joblib_parallel = sys.modules.get("joblib.parallel")
    if joblib_parallel is not None:
        try:
            backend, _ = joblib_parallel.get_active_backend()
            if (getattr(backend, "nesting_level", None) or 0) >= 1:
                return "joblib"
        except (AttributeError, TypeError, ValueError):  # a joblib without this internal
            pass
    loky = sys.modules.get("joblib.externals.loky.process_executor")
    if loky is not None and getattr(loky, "_CURRENT_DEPTH", 0) > 0:
        return "loky"
    if multiprocessing.parent_process() is not None:
        return "multiprocessing"
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            distributed.get_worker()
            return "dask"
        except (AttributeError, ValueError):  # ValueError: not in a worker
            pass
    return None


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _own_running_threads():
    """Threads of this process in state R (running or runnable), the caller included."""
    running = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        # The state follows the command name, which is in parentheses and may hold spaces.
        running += stat[stat.rindex(")") + 2] == "R"
    return max(running, 1)


def _busy_cores():
    """Cores that other processes keep busy right now, or None where it cannot be read.

    Linux's ``/proc/loadavg`` holds the number of runnable threads of the
    whole system at this instant; this process's own runnable threads (the
    caller, and torch threads still spinning after the last operation) are
    taken off. An instant, not the 1-minute load average: that one counts
    this process's own past work and lags a newly started load by a minute.
    """
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        return max(running - _own_running_threads(), 0)
    except (OSError, ValueError, IndexError):
        return None


def layer_work(n_rows, widths):
    """Multiply-adds of the largest layer of an MLP, for ``n_rows`` rows at once.

    The size hint ``work`` of :func:`effective_n_threads` and
    :class:`torch_threads`: ``n_rows`` times the largest product of two
    consecutive widths.

    Parameters
    ----------
    n_rows : int
        Rows in one forward call (a batch, or a chunk of rows to score;
        forward-mode traces multiply it by the number of directions).
    widths : sequence of int
        Input, hidden and output widths, e.g. ``(d, *hidden_layer_sizes, d)``.

    Returns
    -------
    work : int

    Examples
    --------
    >>> from sklearn_diffusion._threads import SMALL_WORK, layer_work
    >>> layer_work(256, (15, 128, 128, 128, 15))
    4194304
    >>> layer_work(256, (15, 128, 128, 128, 15)) < SMALL_WORK
    True
    """
    widths = [int(w) for w in widths]
    return int(n_rows) * max(a * b for a, b in itertools.pairwise(widths))


def effective_n_threads(n_threads=None, *, work=None):
    """The number of torch intra-op threads a public method runs with.

    Parameters
    ----------
    n_threads : "auto", "torch", int or None, default=None
        ``None`` takes the config's value (:func:`get_config`). A positive
        integer is returned as it is; ``"torch"`` is
        :func:`torch.get_num_threads`. ``"auto"``:

        1. torch's current number when it is 1 (``auto`` never raises the
           user's or ``OMP_NUM_THREADS``'s setting);
        2. 1 inside a parallel worker (:func:`in_parallel_worker`): the
           workers already share the cores, as joblib's limits for BLAS
           assume;
        3. 1 when ``work`` is given and below :data:`SMALL_WORK`: a second
           thread does not pay for so small a layer;
        4. else torch's current number capped by the cores that are free at
           this instant: the usable cores less those that other processes
           keep busy (``/proc/loadavg``; where that cannot be read, no cap),
           and at least 1.
    work : int, optional
        Multiply-adds of the largest layer call of the work to come
        (:func:`layer_work`); ``None`` (unknown) skips rule 3.

    Returns
    -------
    n : int

    See Also
    --------
    torch_threads : Apply the number around a block or a method.

    Notes
    -----
    On 2 cores beside two busy processes, two threads made a 300-step demo
    fit 1.4x and 3.3x slower than one, and training steps 1.4x to 51x; on a
    nearly free machine they paid only for large layers (rule 3;
    ``benchmarks/results/threads.md``). The load is read at one instant: a
    load that starts later is not seen.

    Examples
    --------
    >>> from sklearn_diffusion._threads import effective_n_threads
    >>> effective_n_threads(3)
    3
    >>> 1 <= effective_n_threads("auto") <= max(torch.get_num_threads(), 1)
    True
    >>> effective_n_threads("auto", work=1000)
    1
    """
    if n_threads is None:
        n_threads = get_config()["n_threads"]
    n_threads = _check_n_threads(n_threads)
    if not isinstance(n_threads, str):
        return n_threads
    current = torch.get_num_threads()
    if n_threads == "torch" or current <= 1:
        return current
    if in_parallel_worker():
        return 1
    if work is not None and work < SMALL_WORK:
        return 1
    busy = _busy_cores()
    if busy is None:
        return current
    return max(1, min(current, _usable_cores() - busy))


def _threadpool_controller():
    """threadpoolctl's controller of the loaded BLAS and OpenMP libraries, or None."""
    try:
        import threadpoolctl
    except ImportError:  # scikit-learn requires it, but this layer does not
        return None
    cached = getattr(threadpoolctl, "get_cached_controller", None)
    if cached is not None:
        return cached()
    # Older threadpoolctl: the same cache, rebuilt when a module was imported
    # (a new extension may have loaded another BLAS); a fresh controller
    # costs milliseconds, a cached one a tenth of one.
    global _CONTROLLER
    if _CONTROLLER is None or _CONTROLLER[0] != len(sys.modules):
        _CONTROLLER = (len(sys.modules), threadpoolctl.ThreadpoolController())
    return _CONTROLLER[1]


_CONTROLLER = None


class torch_threads(contextlib.ContextDecorator):
    """Run a block or a method with the policy's number of torch intra-op threads.

    On entry the number of :func:`effective_n_threads` is set with
    :func:`torch.set_num_threads`; on exit, also when the block raises, the
    number torch had before comes back, so a user's own setting survives
    every call. In the main thread, the BLAS and OpenMP pools of NumPy,
    SciPy and scikit-learn (the reference mixture's fit) are set to the same
    number with :mod:`threadpoolctl` when it differs from torch's or is 1,
    and restored too: their threads wait by spinning as well. Inside another
    ``torch_threads`` block, ``n_threads=None`` or ``"auto"`` keeps what the
    outer block chose (a ``fit`` that calls ``score_samples`` decides once);
    an explicit integer or ``"torch"`` still applies.

    Parameters
    ----------
    n_threads : "auto", "torch", int or None, default=None
        As in :func:`effective_n_threads`; ``None`` reads the config when the
        block is entered (each call of a decorated method, not when it is
        decorated).
    work : int or callable, optional
        The size hint of :func:`effective_n_threads`. As a decorator it may
        be a function of the decorated function's arguments (``self``
        first for a method), called on each call; it must not raise.

    See Also
    --------
    effective_n_threads : The rule.
    threaded_worker : The same for a joblib job's function.

    Notes
    -----
    With torch's OpenMP backend the number of threads is a per-thread
    setting: a block entered in one Python thread does not change the
    threads of operations run by another, so joblib's threading backend is
    safe. OpenBLAS's pool is process-wide, so only the main thread caps it
    (a worker thread would race the others' restores). Torch's inter-op
    pool (:func:`torch.set_num_interop_threads`) is left alone: it can be
    set only once per process, before any inter-op work, and this package
    does none (no ``torch.jit.fork``); its idle threads sleep.

    Examples
    --------
    >>> import torch
    >>> from sklearn_diffusion._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    >>> @torch_threads(1)
    ... def threads_inside():
    ...     return torch.get_num_threads()
    >>> threads_inside()
    1

    A size hint computed from a method's arguments:

    >>> from sklearn_diffusion._threads import layer_work
    >>> def fit_work(model, X):
    ...     return layer_work(len(X), (2, *model.hidden_layer_sizes, 2))
    >>> class Model:
    ...     hidden_layer_sizes = (32, 32)
    ...     @torch_threads(work=fit_work)
    ...     def fit(self, X):
    ...         return torch.get_num_threads()
    >>> Model().fit([[0.0, 1.0]] * 256)  # 256 x 32 x 32 multiply-adds: small
    1
    """

    def __init__(self, n_threads=None, *, work=None):
        if n_threads is not None:
            _check_n_threads(n_threads)
        self.n_threads = n_threads
        self.work = work
        self._saved = []

    def __call__(self, func):
        # A fresh instance per call of the decorated function: the saved
        # state lives on the instance, a method may run in several threads
        # at once or call itself, and a callable ``work`` sees the arguments.
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            work = self.work(*args, **kwargs) if callable(self.work) else self.work
            with type(self)(self.n_threads, work=work):
                return func(*args, **kwargs)

        return wrapper

    def __enter__(self):
        if callable(self.work):
            raise TypeError("a callable work needs the decorator form of torch_threads")
        before = torch.get_num_threads()
        depth = getattr(_threadlocal, "depth", 0)
        requested = self.n_threads
        if requested is None:
            requested = get_config()["n_threads"]
        if depth > 0 and requested == "auto":
            wanted = before  # the enclosing block decided
        else:
            wanted = effective_n_threads(requested, work=self.work)
        pools = None
        nested_auto = depth > 0 and requested == "auto"
        # One thread is also set when torch already had one: a user's
        # torch.set_num_threads(1) leaves NumPy's BLAS at its default, which
        # spins as badly (the reference mixture, benchmarks/threads.py (e)).
        main = threading.current_thread() is threading.main_thread()
        if (wanted != before or wanted == 1) and not nested_auto and main:
            controller = _threadpool_controller()
            if controller is not None:
                pools = controller.limit(limits=wanted, user_api=None)
                pools.__enter__()
        if wanted != before:
            torch.set_num_threads(wanted)
        self._saved.append((before, pools))
        _threadlocal.depth = depth + 1
        return self

    def __exit__(self, *exc):
        _threadlocal.depth -= 1
        before, pools = self._saved.pop()
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        if pools is not None:
            # Also gives back threadpoolctl's ownership of OpenBLAS's pool.
            pools.__exit__(*exc)
        return False


class _ThreadedCall:
    """``func`` run in a worker with the dispatching thread's thread policy; picklable."""

    def __init__(self, func, config):
        self.func = func
        self.config = config
        functools.update_wrapper(self, func)

    def __call__(self, *args, **kwargs):
        with config_context(**self.config), torch_threads():
            return self.func(*args, **kwargs)

    def __reduce__(self):
        # update_wrapper copies __dict__ and __wrapped__, which pickle need
        # not carry: the function (by reference) and the config suffice.
        return (_ThreadedCall, (self.func, self.config))


def threaded_worker(func):
    """Wrap a joblib job's function so that it runs under the caller's thread policy.

    Call it when the job is dispatched, in the process and thread whose
    config should apply, e.g. ``delayed(threaded_worker(_fit_block))(...)``.
    The wrapper carries a copy of the config (:func:`get_config`) to the
    worker, and there runs ``func`` inside :func:`torch_threads`: with the
    default ``"auto"`` a loky, multiprocessing or threading worker gets one
    thread, a job run sequentially in the caller (``n_jobs=1``) keeps the
    caller's number, and an explicit ``set_config(n_threads=k)`` gives every
    worker ``k``. It composes with scikit-learn's ``delayed``, which carries
    scikit-learn's own config the same way.

    Parameters
    ----------
    func : callable
        A picklable function (defined at a module's top level).

    Returns
    -------
    wrapper : callable
        Picklable; calls ``func(*args, **kwargs)`` and returns its result.

    Examples
    --------
    >>> import torch
    >>> from joblib import Parallel, delayed
    >>> from sklearn_diffusion._threads import config_context, threaded_worker
    >>> with config_context(n_threads=1):
    ...     jobs = [delayed(threaded_worker(torch.get_num_threads))() for _ in range(2)]
    >>> Parallel(n_jobs=2, backend="threading")(jobs)
    [1, 1]
    """
    return _ThreadedCall(func, get_config())
