"""InterpreterPoolExecutor lifecycle: cancel, shutdown (wait, cancel_futures),
context manager, submit after shutdown.

"Task started" is signalled by the task creating a file (helpers.pool_funcs
.touch_then_sleep); "task never ran" by a file that never appears.
"""
import concurrent.futures as cf
import os
import threading

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers.pool_util import make_pool, wait_for_file, wait_until


def _start_blocker(pool, tmp_path, seconds, value="blocker", name="started"):
    """Submit a task that occupies a worker for ``seconds``; return its future
    once it is running."""
    marker = tmp_path / name
    fut = pool.submit(pf.touch_then_sleep, str(marker), seconds, value)
    assert wait_for_file(marker, 30), "blocking task never started"
    return fut


# --- Future.cancel ------------------------------------------------------------

def test_cancel_queued_task_never_runs(tmp_path):
    with make_pool(1) as pool:
        blocker = _start_blocker(pool, tmp_path, 1.0)
        ran = tmp_path / "queued-ran"
        queued = pool.submit(pf.touch, str(ran))
        assert queued.cancel() is True
        assert queued.cancelled() and queued.done()
        with pytest.raises(cf.CancelledError):
            queued.result(1)
        # A task submitted after the cancelled one still runs, the blocker finishes.
        after = pool.submit(pf.inc, 1)
        assert after.result(30) == 2
        assert blocker.result(30) == "blocker"
    assert not ran.exists()


def test_cancel_running_task_interrupts_it(tmp_path):
    # Issue #5: cancelling a running task interrupts it in its worker (unlike
    # concurrent.futures' pools, where cancel() of a running task is False).
    with make_pool(1) as pool:
        blocker = _start_blocker(pool, tmp_path, 0.5)
        assert blocker.cancel() is True
        assert blocker.cancelled()
        with pytest.raises(cf.CancelledError):
            blocker.result(30)
        assert pool.submit(pf.inc, 1).result(30) == 2


def test_cancel_finished_task_returns_false():
    with make_pool(1) as pool:
        fut = pool.submit(pf.inc, 1)
        assert fut.result(30) == 2
        assert fut.cancel() is False
        assert not fut.cancelled()
        assert fut.result() == 2


def test_cancel_many_queued(tmp_path):
    with make_pool(1) as pool:
        blocker = _start_blocker(pool, tmp_path, 1.0)
        futs = [pool.submit(pf.touch, str(tmp_path / f"q{i}")) for i in range(20)]
        cancelled = [f.cancel() for f in futs[::2]]
        assert cancelled == [True] * 10
        for i, f in enumerate(futs):
            if i % 2:
                assert f.result(30) == str(tmp_path / f"q{i}")
            else:
                assert f.cancelled()
        assert blocker.result(30) == "blocker"
    for i in range(20):
        assert (tmp_path / f"q{i}").exists() == bool(i % 2), i


def test_cancelled_future_in_wait_and_as_completed(tmp_path):
    with make_pool(1) as pool:
        _start_blocker(pool, tmp_path, 0.5)
        a = pool.submit(pf.inc, 1)
        b = pool.submit(pf.inc, 2)
        assert b.cancel()
        done, not_done = cf.wait([a, b], timeout=30)
        assert not not_done
        assert {f for f in cf.as_completed([a, b], timeout=30)} == {a, b}
        assert a.result() == 2 and b.cancelled()


# --- shutdown -----------------------------------------------------------------

def test_shutdown_wait_runs_queued_tasks_to_completion(tmp_path):
    pool = manygil.InterpreterPoolExecutor(1)
    try:
        blocker = _start_blocker(pool, tmp_path, 0.5)
        futs = [pool.submit(pf.square, i) for i in range(10)]
        pool.shutdown(wait=True)
        assert blocker.done() and all(f.done() for f in futs)
        assert blocker.result(0) == "blocker"
        assert [f.result(0) for f in futs] == [i * i for i in range(10)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_shutdown_while_tasks_run_waits_for_them(tmp_path):
    pool = manygil.InterpreterPoolExecutor(2)
    try:
        markers = [tmp_path / f"run{i}" for i in range(2)]
        futs = [pool.submit(pf.touch_then_sleep, str(m), 0.5, i) for i, m in enumerate(markers)]
        for m in markers:
            assert wait_for_file(m, 30)
        pool.shutdown(wait=True)
        assert all(f.done() for f in futs)
        assert [f.result(0) for f in futs] == [0, 1]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_shutdown_cancel_futures(tmp_path):
    pool = manygil.InterpreterPoolExecutor(1)
    try:
        blocker = _start_blocker(pool, tmp_path, 0.5)
        queued = [pool.submit(pf.touch, str(tmp_path / f"q{i}")) for i in range(10)]
        pool.shutdown(wait=True, cancel_futures=True)
        assert blocker.result(0) == "blocker"
        assert all(f.cancelled() for f in queued)
        for f in queued:
            with pytest.raises(cf.CancelledError):
                f.result(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    assert not any((tmp_path / f"q{i}").exists() for i in range(10))


def test_shutdown_no_wait_then_results_arrive(tmp_path):
    pool = manygil.InterpreterPoolExecutor(1)
    try:
        blocker = _start_blocker(pool, tmp_path, 3.0)
        queued = pool.submit(pf.inc, 41)
        pool.shutdown(wait=False)
        # Returned while the blocker still sleeps (it has ~3 s to go).
        assert not blocker.done()
        assert blocker.result(60) == "blocker"
        assert queued.result(60) == 42
    finally:
        pool.shutdown(wait=True)


def test_shutdown_no_wait_cancel_futures(tmp_path):
    pool = manygil.InterpreterPoolExecutor(1)
    try:
        blocker = _start_blocker(pool, tmp_path, 1.0)
        queued = [pool.submit(pf.touch, str(tmp_path / f"q{i}")) for i in range(5)]
        pool.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in queued)
        assert blocker.result(60) == "blocker"
    finally:
        pool.shutdown(wait=True)
    assert not any((tmp_path / f"q{i}").exists() for i in range(5))


def test_submit_after_shutdown_is_runtime_error():
    pool = manygil.InterpreterPoolExecutor(1)
    assert pool.submit(pf.inc, 1).result(30) == 2
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(pf.inc, 1)
    with pytest.raises(RuntimeError):
        list(pool.map(pf.inc, [1, 2]))


def test_shutdown_twice_is_harmless():
    pool = manygil.InterpreterPoolExecutor(1)
    pool.shutdown()
    pool.shutdown()
    pool.shutdown(wait=False, cancel_futures=True)


def test_shutdown_of_unused_pool():
    pool = manygil.InterpreterPoolExecutor(2)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(pf.inc, 1)


def test_context_manager_waits_and_closes(tmp_path):
    with manygil.InterpreterPoolExecutor(2) as pool:
        futs = [pool.submit(pf.sleep_return, 0.1, i) for i in range(6)]
    assert all(f.done() for f in futs)
    assert [f.result(0) for f in futs] == list(range(6))
    with pytest.raises(RuntimeError):
        pool.submit(pf.inc, 1)


def test_context_manager_exit_on_exception():
    with pytest.raises(KeyError):
        with manygil.InterpreterPoolExecutor(1) as pool:
            fut = pool.submit(pf.sleep_return, 0.2, "done")
            raise KeyError("body")
    assert fut.result(0) == "done"


def test_shutdown_from_another_thread_while_map_runs():
    pool = manygil.InterpreterPoolExecutor(2)
    try:
        it = pool.map(pf.sleep_return, [0.01] * 50, range(50), chunksize=1, buffersize=4)
        first = next(it)
        t = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
        t.start()
        t.join(60)
        assert not t.is_alive()
        # Chunks already queued completed; the iterator then cannot queue
        # more: it either finishes the submitted ones and raises RuntimeError,
        # or stops - but never hangs or yields wrong values.
        rest = []
        try:
            for v in it:
                rest.append(v)
        except RuntimeError:
            pass
        assert [first] + rest == list(range(len(rest) + 1))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_many_pools_created_and_closed():
    for i in range(10):
        with manygil.InterpreterPoolExecutor(2) as pool:
            assert pool.submit(pf.inc, i).result(30) == i + 1


def _os_threads():
    return len(os.listdir("/proc/self/task"))


def _os_thread_names():
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass                    # the thread ended meanwhile
    return names


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc (Linux)")
def test_shutdown_wait_joins_worker_threads():
    """The pool's OS threads (C workers + collector) are gone once
    shutdown(wait=True) returns."""
    before_py = set(threading.enumerate())
    before = _os_threads()
    pool = manygil.InterpreterPoolExecutor(3, thread_name_prefix="zz-pool-test")
    try:
        assert [f.result(30) for f in [pool.submit(pf.inc, i) for i in range(9)]] == list(range(1, 10))
        during = _os_threads()
        new_py = set(threading.enumerate()) - before_py
        assert all(t.name.startswith("zz-pool-test") for t in new_py), new_py
    finally:
        pool.shutdown(wait=True)
    assert during >= before + 3, (before, during)
    # The pool's own OS threads carry its name; other threads of the process
    # (another test's interrupt or stack-reading helpers) may come and go.
    left = [n for n in _os_thread_names() if n.startswith("zz-pool-test")]
    assert not left, left
    assert not (set(threading.enumerate()) - before_py)


def test_submit_racing_shutdown(tmp_path):
    """Submits from a thread while the main thread shuts down with
    cancel_futures: each submit either raises RuntimeError or gives a future
    that ends (result or cancelled); nothing hangs."""
    pool = manygil.InterpreterPoolExecutor(2)
    futs = []
    refused = threading.Event()
    errors = []

    def submitter():
        try:
            for i in range(100_000):
                futs.append((i, pool.submit(pf.inc, i)))
        except RuntimeError:
            refused.set()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=submitter)
    t.start()
    try:
        assert wait_until(lambda: len(futs) > 200, 30)
        pool.shutdown(wait=True, cancel_futures=True)
        t.join(60)
        assert not t.is_alive()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    assert not errors, errors
    assert refused.is_set() or len(futs) == 100_000
    for i, f in futs:
        assert wait_until(f.done, 30), f"future {i} never finished"
        if not f.cancelled():
            assert f.result(0) == i + 1
    assert any(f.cancelled() for _, f in futs) or refused.is_set()


def test_map_close_cancels_queued_chunks(tmp_path):
    with make_pool(1) as pool:
        paths = [str(tmp_path / f"m{i}") for i in range(50)]
        it = pool.map(pf.touch_then_sleep, paths, [0.2] * 50, range(50),
                      chunksize=1, buffersize=5)
        assert next(it) == 0
        it.close()
        pool.shutdown(wait=True)
    ran = sorted(int(p.name[1:]) for p in tmp_path.glob("m*"))
    # Task 0 ran, maybe the one started meanwhile; the queued ones were cancelled.
    assert ran[0] == 0 and len(ran) <= 3, ran
