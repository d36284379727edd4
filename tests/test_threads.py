"""The torch thread policy: config, the context/decorator, "auto", the worker wrapper."""

import pickle
import threading

import pytest
import torch
from joblib import Parallel, delayed

from sklearn_diffusion import _threads
from sklearn_diffusion._threads import (
    SMALL_WORK,
    config_context,
    effective_n_threads,
    get_config,
    in_parallel_worker,
    layer_work,
    set_config,
    threaded_worker,
    torch_threads,
)


@pytest.fixture(autouse=True)
def user_threads():
    """Two torch threads as the user's setting (the suite runs with one, see conftest.py)."""
    before, config = torch.get_num_threads(), get_config()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)
    set_config(**config)


@pytest.fixture
def machine(monkeypatch):
    """Pretend: 2 usable cores, not a worker; ``machine(busy)`` sets the busy cores."""
    monkeypatch.setattr(_threads, "_usable_cores", lambda: 2)
    monkeypatch.setattr(_threads, "_parallel_worker_kind", lambda: None)

    def set_busy(busy):
        monkeypatch.setattr(_threads, "_busy_cores", lambda: busy)

    set_busy(0)
    return set_busy


def test_default_config_is_auto():
    assert get_config() == {"n_threads": "auto"}


def test_context_applies_explicit_number_and_restores():
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2


def test_context_restores_on_exception():
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_decorator_applies_per_call_and_keeps_metadata():
    @torch_threads(1)
    def inside(fail=False):
        """Doc."""
        if fail:
            raise ValueError("bad")
        return torch.get_num_threads()

    assert inside() == 1 and inside() == 1
    with pytest.raises(ValueError):
        inside(fail=True)
    assert torch.get_num_threads() == 2
    assert inside.__name__ == "inside" and inside.__doc__ == "Doc."


def test_decorator_reads_config_at_call_time():
    @torch_threads()
    def inside():
        return torch.get_num_threads()

    with config_context(n_threads=3):
        assert inside() == 3
    set_config(n_threads=1)
    assert inside() == 1
    assert torch.get_num_threads() == 2


def test_restores_a_setting_the_block_changed():
    with torch_threads(1):
        torch.set_num_threads(3)
    assert torch.get_num_threads() == 2


def test_torch_keeps_torchs_number(machine):
    machine(2)  # a busy machine would make "auto" choose 1
    with torch_threads("torch"):
        assert torch.get_num_threads() == 2


def test_config_context_nests_and_restores():
    with config_context(n_threads=1):
        assert get_config()["n_threads"] == 1
        with config_context(n_threads="torch"):
            assert get_config()["n_threads"] == "torch"
            with config_context():  # None: unchanged
                assert get_config()["n_threads"] == "torch"
        assert get_config()["n_threads"] == 1
    assert get_config()["n_threads"] == "auto"


def test_config_context_restores_on_exception_and_set_config_inside():
    with pytest.raises(KeyError), config_context(n_threads=4):
        set_config(n_threads=2)
        raise KeyError
    assert get_config()["n_threads"] == "auto"


def test_set_config_none_leaves_value():
    set_config(n_threads=3)
    set_config(n_threads=None)
    assert get_config()["n_threads"] == 3


def test_get_config_returns_a_copy():
    get_config()["n_threads"] = 7
    assert get_config()["n_threads"] == "auto"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "many", "AUTO"])
def test_invalid_n_threads_raise(bad):
    with pytest.raises(ValueError, match="n_threads"):
        set_config(n_threads=bad)
    with pytest.raises(ValueError, match="n_threads"):
        torch_threads(bad)
    with pytest.raises(ValueError, match="n_threads"):
        effective_n_threads(bad)
    assert get_config()["n_threads"] == "auto"


def test_config_is_thread_local():
    set_config(n_threads=1)
    seen = {}

    def other():
        seen["start"] = get_config()["n_threads"]
        set_config(n_threads=3)
        seen["end"] = get_config()["n_threads"]

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    # A new thread starts from the process-wide defaults; its changes stay in it.
    assert seen == {"start": "auto", "end": 3}
    assert get_config()["n_threads"] == 1


def test_auto_free_machine_keeps_torchs_number(machine):
    assert effective_n_threads("auto") == 2
    with torch_threads():
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("busy, expected", [(0, 2), (1, 1), (2, 1), (5, 1), (None, 2)])
def test_auto_caps_by_free_cores(machine, busy, expected):
    machine(busy)
    assert effective_n_threads("auto") == expected


def test_auto_small_work_is_one_thread_on_a_free_machine(machine):
    assert effective_n_threads("auto", work=SMALL_WORK - 1) == 1
    assert effective_n_threads("auto", work=SMALL_WORK) == 2
    assert effective_n_threads("auto", work=None) == 2
    assert effective_n_threads(2, work=1) == 2  # explicit numbers ignore the hint
    with torch_threads(work=1000):
        assert torch.get_num_threads() == 1


def test_callable_work_sees_the_call_arguments(machine):
    seen = []

    def work(model, rows, scale=1):
        seen.append((model, rows, scale))
        return rows * scale

    class Model:
        @torch_threads(work=work)
        def fit(self, rows, scale=1):
            return torch.get_num_threads()

    model = Model()
    assert model.fit(10) == 1
    assert model.fit(10, scale=SMALL_WORK) == 2
    assert seen == [(model, 10, 1), (model, 10, SMALL_WORK)]
    with pytest.raises(TypeError, match="decorator"), torch_threads(work=work):
        pass


def test_layer_work():
    assert layer_work(256, (15, 128, 128, 128, 15)) == 256 * 128 * 128
    assert layer_work(10, (3, 4)) == 120


def test_auto_never_raises_the_users_number(machine, monkeypatch):
    torch.set_num_threads(1)
    assert effective_n_threads("auto") == 1
    monkeypatch.setattr(_threads, "_usable_cores", lambda: 16)
    torch.set_num_threads(3)
    assert effective_n_threads("auto") == 3  # 16 free cores, but the user said 3


def test_auto_is_one_in_a_simulated_worker(monkeypatch):
    monkeypatch.setattr(_threads, "_parallel_worker_kind", lambda: "loky")
    monkeypatch.setattr(_threads, "_busy_cores", lambda: 0)
    assert in_parallel_worker()
    assert effective_n_threads("auto") == 1
    with torch_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    # An explicit number still wins inside a worker.
    assert effective_n_threads(2) == 2


def test_auto_in_joblib_threads_is_one():
    def job():
        with torch_threads():
            return in_parallel_worker(), torch.get_num_threads()

    out = Parallel(n_jobs=2, backend="threading")(delayed(job)() for _ in range(2))
    assert out == [(True, 1), (True, 1)]
    assert not in_parallel_worker()
    assert torch.get_num_threads() == 2


def test_sequential_parallel_is_not_a_worker():
    assert Parallel(n_jobs=1)(delayed(in_parallel_worker)() for _ in range(2)) == [False, False]


def test_nested_auto_keeps_outer_choice(machine):
    with torch_threads(1):
        with torch_threads():  # "auto" on a free machine would say 2
            assert torch.get_num_threads() == 1
        with torch_threads(3):  # explicit numbers still apply
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_busy_cores_reads_this_machine():
    busy = _threads._busy_cores()
    assert busy is None or busy >= 0
    assert _threads._own_running_threads() >= 1


def test_blas_capped_in_main_thread_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (loads its BLAS)

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        if not blas:
            pytest.skip("no BLAS that threadpoolctl controls")
        before = [i["num_threads"] for i in blas]
        with torch_threads(1):
            inside = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                      if i["user_api"] == "blas"]
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                 if i["user_api"] == "blas"]
    assert inside == [1] * len(before)
    assert after == before


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_one_thread_caps_blas_even_when_torch_had_one(machine):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        if not before:
            pytest.skip("no BLAS that threadpoolctl controls")
        with torch_threads():
            assert _blas_threads() == [1] * len(before)
            with torch_threads():  # a nested "auto" block leaves the pools alone
                assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == before


def test_threaded_worker_carries_config_to_threads():
    with config_context(n_threads=3):
        jobs = [delayed(threaded_worker(torch.get_num_threads))() for _ in range(2)]
    # Dispatched outside the context: the wrappers carry the value of dispatch time.
    assert Parallel(n_jobs=2, backend="threading")(jobs) == [3, 3]
    jobs = [delayed(threaded_worker(torch.get_num_threads))() for _ in range(2)]
    assert Parallel(n_jobs=2, backend="threading")(jobs) == [1, 1]  # "auto" in a worker
    assert torch.get_num_threads() == 2


def test_threaded_worker_sequential_keeps_callers_number(machine):
    machine(2)  # busy: the caller's own "auto" block decides, not the job
    with torch_threads(2):
        out = Parallel(n_jobs=1)(delayed(threaded_worker(torch.get_num_threads))()
                                 for _ in range(2))
    assert out == [2, 2]


def test_threaded_worker_pickles_and_passes_arguments():
    with config_context(n_threads=1):
        wrapped = threaded_worker(divmod)
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone.config == {"n_threads": 1}
    assert clone(7, 2) == (3, 1)
    assert wrapped.__name__ == "divmod"


def _worker_report():
    from sklearn_diffusion._threads import _parallel_worker_kind

    with torch_threads():
        return _parallel_worker_kind() is not None, torch.get_num_threads()


def test_auto_is_one_in_loky_processes():
    # joblib would give each worker cpu_count() // n_jobs threads; ask for 2
    # so that the policy's 1 is visible.
    from joblib import parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=2):
        out = Parallel(n_jobs=2)(delayed(_worker_report)() for _ in range(2))
    assert out == [(True, 1), (True, 1)]
