"""manygil.InterpreterPoolExecutor: construction, submit, futures, exceptions,
initializer, worker recycling, concurrency and speed-up.

Functions that run in workers come from helpers.pool_funcs (importable by
reference).  This module passes none of its own module-level functions to a
worker (that would import this test module - and pytest, hashlib - there).
"""
import asyncio
import concurrent.futures as cf
import os
import sys
import threading
import time

import pytest

import manygil
from helpers.timing import calibrate_busy
from helpers import pool_funcs as pf
from helpers.pool_util import make_pool, wait_for_file

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def pool():
    with make_pool(2) as p:
        yield p


# --- construction -------------------------------------------------------------

def test_is_a_concurrent_futures_executor():
    assert issubclass(manygil.InterpreterPoolExecutor, cf.Executor)
    assert issubclass(manygil.BrokenInterpreterPool, cf.BrokenExecutor)


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_max_workers_not_positive_is_value_error(bad):
    with pytest.raises(ValueError):
        manygil.InterpreterPoolExecutor(bad)


@pytest.mark.parametrize("bad", [1.5, "2", 2.0, [2]])
def test_max_workers_not_int_is_type_error(bad):
    with pytest.raises(TypeError):
        manygil.InterpreterPoolExecutor(bad)


def test_default_max_workers_runs_that_many_tasks_at_once(tmp_path):
    """With the default max_workers (os.process_cpu_count() / cpu_count()),
    that many tasks run at the same time (each waits for all the others)."""
    count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    with make_pool() as pool:
        futs = [pool.submit(pf.rendezvous, str(tmp_path), f"t{i}", count, 30)
                for i in range(count)]
        assert [f.result(60) for f in futs] == [True] * count


def test_max_workers_bounds_concurrency(tmp_path):
    """3 workers: 3 tasks can all run together, and never more than 3."""
    rdv = tmp_path / "rdv"
    rdv.mkdir()
    probe = tmp_path / "probe"
    probe.mkdir()
    with make_pool(3) as pool:
        futs = [pool.submit(pf.rendezvous, str(rdv), f"t{i}", 3, 30) for i in range(3)]
        assert [f.result(60) for f in futs] == [True] * 3
        futs = [pool.submit(pf.overlap_probe, str(probe), f"p{i}", 0.2) for i in range(9)]
        seen = [f.result(60) for f in futs]
    assert max(seen) <= 3, seen
    assert min(seen) >= 1, seen


def test_unshareable_initargs_fail_at_construction():
    with pytest.raises(manygil.NotShareableError):
        manygil.InterpreterPoolExecutor(1, initializer=pf.init_set,
                                        initargs=(threading.Lock(),))


def test_workers_start_with_main_sys_path(pool):
    path = pool.submit(pf.get_sys_path).result(30)
    assert TESTS_DIR in path
    for entry in sys.path:
        assert entry in path


def test_module_on_path_added_before_pool_is_importable(tmp_path):
    mod_dir = tmp_path / "extra_path"
    mod_dir.mkdir()
    (mod_dir / "pool_extra_mod_x1.py").write_text("VALUE = 'from-extra-dir'\n")
    sys.path.insert(0, str(mod_dir))
    try:
        with make_pool(1) as pool:
            got = pool.submit(pf.import_attr, "pool_extra_mod_x1", "VALUE").result(30)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop("pool_extra_mod_x1", None)
    assert got == "from-extra-dir"


# --- submit and futures -------------------------------------------------------

def test_submit_returns_future_with_result(pool):
    fut = pool.submit(pf.inc, 41)
    assert isinstance(fut, cf.Future)
    assert fut.result(30) == 42
    assert fut.done() and not fut.cancelled()
    assert fut.exception() is None


def test_submit_args_and_kwargs(pool):
    fut = pool.submit(pf.pack, 1, "two", [3], key={"k": (4, 5)}, other=None)
    assert fut.result(30) == ((1, "two", [3]), {"key": {"k": (4, 5)}, "other": None})


def test_submit_fn_keyword_is_passed_through(pool):
    # fn is positional-only: a keyword named 'fn' reaches the task.
    assert pool.submit(pf.pack, fn=1).result(30) == ((), {"fn": 1})


def test_submit_builtin_and_lambda(pool):
    assert pool.submit(sorted, [3, 1, 2], reverse=True).result(30) == [3, 2, 1]
    assert pool.submit(lambda x, y=2: x * y, 21).result(30) == 42
    k = 5
    assert pool.submit(lambda x: x + k, 1).result(30) == 6


def test_submit_not_callable_is_type_error(pool):
    with pytest.raises(TypeError):
        pool.submit(42)


def test_tasks_run_in_worker_interpreters(pool):
    ids = {pool.submit(pf.interp_id).result(30) for _ in range(10)}
    assert manygil.get_main().id not in ids
    assert not pool.submit(pf.is_main_interp).result(30)


def test_results_are_copies(pool):
    value = [1, [2, 3], {"a": 4}]
    out = pool.submit(pf.identity, value).result(30)
    assert out == value and out is not value


def test_unshareable_argument_fails_and_pool_survives(pool):
    try:
        fut = pool.submit(pf.identity, threading.Lock())
    except manygil.NotShareableError:
        pass
    else:
        with pytest.raises(manygil.NotShareableError):
            fut.result(30)
    assert pool.submit(pf.inc, 1).result(30) == 2


def test_unshareable_result_fails_and_pool_survives(pool):
    with pytest.raises(manygil.NotShareableError):
        pool.submit(pf.make_lock).result(30)
    assert pool.submit(pf.inc, 1).result(30) == 2


def test_as_completed(pool):
    delays = [0.3, 0.0, 0.2, 0.1, 0.0, 0.25]
    futs = {pool.submit(pf.sleep_return, d, i): i for i, d in enumerate(delays)}
    seen = []
    for fut in cf.as_completed(futs, timeout=60):
        assert fut.done()
        seen.append(fut.result())
        assert seen[-1] == futs[fut]
    assert sorted(seen) == list(range(len(delays)))


def test_wait_all_completed(pool):
    futs = [pool.submit(pf.square, i) for i in range(20)]
    done, not_done = cf.wait(futs, timeout=60)
    assert not not_done
    assert done == set(futs)
    assert sorted(f.result() for f in futs) == [i * i for i in range(20)]


def test_wait_first_completed(pool):
    slow = pool.submit(pf.sleep_return, 3, "slow")
    fast = pool.submit(pf.inc, 1)
    done, not_done = cf.wait([slow, fast], timeout=30, return_when=cf.FIRST_COMPLETED)
    assert fast in done
    assert slow in not_done
    assert slow.result(30) == "slow"


def test_wait_first_exception(pool):
    slow = pool.submit(pf.sleep_return, 3, "slow")
    bad = pool.submit(pf.raise_value_error, "x")
    done, not_done = cf.wait([slow, bad], timeout=30, return_when=cf.FIRST_EXCEPTION)
    assert bad in done and slow in not_done
    assert isinstance(bad.exception(), ValueError)


def test_future_result_timeout(pool):
    fut = pool.submit(pf.sleep_return, 2, "late")
    with pytest.raises(cf.TimeoutError):
        fut.result(timeout=0.05)
    assert fut.result(30) == "late"


def test_done_callback_runs(pool):
    got = []
    ev = threading.Event()

    def cb(f):
        got.append(f.result())
        ev.set()

    pool.submit(pf.inc, 9).add_done_callback(cb)
    assert ev.wait(30)
    assert got == [10]


def test_asyncio_run_in_executor_and_wrap_future(pool):
    async def main():
        loop = asyncio.get_running_loop()
        a = loop.run_in_executor(pool, pf.square, 7)
        b = asyncio.wrap_future(pool.submit(pf.add, 2, 3))
        c = loop.run_in_executor(pool, pf.raise_value_error, "async-boom")
        results = await asyncio.wait_for(
            asyncio.gather(a, b, c, return_exceptions=True), 60)
        return results

    a, b, c = asyncio.run(main())
    assert a == 49 and b == 5
    assert isinstance(c, ValueError) and "async-boom" in str(c)


def test_asyncio_gather_many(pool):
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(asyncio.gather(
            *[loop.run_in_executor(pool, pf.inc, i) for i in range(200)]), 60)

    assert asyncio.run(main()) == list(range(1, 201))


def test_large_argument_and_result(pool):
    big = bytes(range(256)) * (40 * 4096)  # 40 MiB
    out = pool.submit(pf.identity, big).result(60)
    assert out == big


def test_unshareable_kwarg_fails(pool):
    try:
        fut = pool.submit(pf.pack, lock=threading.Lock())
    except manygil.NotShareableError:
        return
    with pytest.raises(manygil.NotShareableError):
        fut.result(30)


def test_submit_from_many_threads(pool):
    results = {}
    errors = []

    def worker(t):
        try:
            futs = [(i, pool.submit(pf.add, t * 100_000, i)) for i in range(1000)]
            results[t] = [(t * 100_000 + i, f.result(120)) for i, f in futs]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    for pairs in results.values():
        assert all(want == got for want, got in pairs)


def test_done_callback_may_submit(pool):
    ev = threading.Event()
    out = []

    def cb(f):
        f2 = pool.submit(pf.inc, f.result())
        f2.add_done_callback(lambda g: (out.append(g.result()), ev.set()))

    pool.submit(pf.inc, 1).add_done_callback(cb)
    assert ev.wait(30)
    assert out == [3]


def test_done_callback_may_shut_the_pool_down():
    pool = manygil.InterpreterPoolExecutor(2)
    ev = threading.Event()

    def cb(f):
        pool.shutdown(wait=True)
        ev.set()

    try:
        fut = pool.submit(pf.inc, 1)
        fut.add_done_callback(cb)
        assert ev.wait(30), "shutdown(wait=True) from a done callback hung"
        assert fut.result(0) == 2
        with pytest.raises(RuntimeError):
            pool.submit(pf.inc, 1)
    finally:
        pool.shutdown(wait=False)


def test_asyncio_cancel_propagates_to_queued_task(tmp_path):
    ran = tmp_path / "ran"
    started = tmp_path / "started"
    with make_pool(1) as pool:
        blocker = pool.submit(pf.touch_then_sleep, str(started), 1.0, "b")
        assert wait_for_file(started, 30)

        async def main():
            loop = asyncio.get_running_loop()
            queued = loop.run_in_executor(pool, pf.touch, str(ran))
            await asyncio.sleep(0)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            return await asyncio.wait_for(loop.run_in_executor(pool, pf.inc, 1), 30)

        assert asyncio.run(main()) == 2
        assert blocker.result(30) == "b"
    assert not ran.exists()


@pytest.mark.timeout(300)
def test_100k_tiny_tasks_submit():
    n = 100_000
    with make_pool(2) as pool:
        futs = [pool.submit(pf.inc, i) for i in range(n)]
        results = [f.result(240) for f in futs]
    bad = [(i, r) for i, r in enumerate(results) if r != i + 1]
    assert not bad, bad[:10]


# --- exceptions ---------------------------------------------------------------

def test_exception_type_kept_with_remote_traceback_cause(pool):
    fut = pool.submit(pf.raise_value_error, "boom-1")
    with pytest.raises(ValueError, match="boom-1") as ei:
        fut.result(30)
    cause = ei.value.__cause__
    assert cause is not None
    assert "raise_value_error" in str(cause)
    assert "boom-1" in str(cause)
    assert isinstance(fut.exception(), ValueError)


def test_remote_traceback_names_every_frame(pool):
    with pytest.raises(KeyError) as ei:
        pool.submit(pf.outer_raiser, "k1").result(30)
    text = str(ei.value.__cause__)
    assert "outer_raiser" in text and "_inner_raiser" in text
    assert ei.value.args == ("k1",)


def test_custom_importable_exception_is_rebuilt_as_its_class(pool):
    with pytest.raises(pf.PoolError) as ei:
        pool.submit(pf.raise_pool_error, "custom", 7).result(30)
    exc = ei.value
    assert type(exc) is pf.PoolError
    assert exc.args == ("custom", 7)
    assert exc.code == 7
    assert "raise_pool_error" in str(exc.__cause__)


def test_unrebuildable_exception_is_execution_failed(pool):
    with pytest.raises(manygil.ExecutionFailed) as ei:
        pool.submit(pf.raise_two_arg_error, "two-args", 2).result(30)
    info = ei.value.excinfo
    assert info.type.__name__ == "TwoArgError"
    assert "two-args" in str(ei.value)
    assert "raise_two_arg_error" in info.formatted


def test_exec_defined_exception_class_is_execution_failed(pool):
    with pytest.raises(manygil.ExecutionFailed) as ei:
        pool.submit(pf.raise_exec_defined, "from-exec").result(30)
    assert ei.value.excinfo.type.__name__ == "ExecDefinedError"
    assert "from-exec" in str(ei.value)
    assert "raise_exec_defined" in str(ei.value)


def test_chained_exception_traceback_text(pool):
    def chained():
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("outer-fail") from exc

    with pytest.raises(RuntimeError, match="outer-fail") as ei:
        pool.submit(chained).result(30)
    text = str(ei.value.__cause__)
    assert "KeyError" in text and "chained" in text


def test_exception_result_raised_every_time(pool):
    fut = pool.submit(pf.raise_value_error, "again")
    for _ in range(3):
        with pytest.raises(ValueError, match="again"):
            fut.result(30)


def test_exception_from_lambda(pool):
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(30)


def test_system_exit_in_task_does_not_kill_pool(pool):
    fut = pool.submit(pf.exit_with, 3)
    exc = fut.exception(30)
    assert isinstance(exc, (SystemExit, manygil.ExecutionFailed)), exc
    if isinstance(exc, SystemExit):
        assert exc.code == 3
    assert [pool.submit(pf.inc, i).result(30) for i in range(4)] == [1, 2, 3, 4]


def test_pool_keeps_working_after_many_exceptions(pool):
    futs = [pool.submit(pf.fail_on, i, i) if i % 2 else pool.submit(pf.inc, i)
            for i in range(50)]
    for i, f in enumerate(futs):
        if i % 2:
            assert isinstance(f.exception(30), ValueError)
        else:
            assert f.result(30) == i + 1


# --- initializer --------------------------------------------------------------

def test_initializer_runs_once_per_worker():
    with make_pool(2, initializer=pf.init_set, initargs=("ready",)) as pool:
        states = [f.result(30) for f in [pool.submit(pf.get_init_state) for _ in range(20)]]
    assert set(states) == {(1, "ready")}


def test_initializer_failure_breaks_pool():
    pool = manygil.InterpreterPoolExecutor(1, initializer=pf.init_fail, initargs=("init-boom",))
    try:
        futs = [pool.submit(pf.inc, i) for i in range(3)]
        for f in futs:
            with pytest.raises(manygil.BrokenInterpreterPool):
                f.result(30)
        with pytest.raises(manygil.BrokenInterpreterPool) as ei:
            pool.submit(pf.inc, 1).result(30)
        # The reason is not lost: the message or the cause carry it.
        assert "init-boom" in str(ei.value) + str(ei.value.__cause__)
        # Once broken is known, submit itself refuses.
        with pytest.raises(manygil.BrokenInterpreterPool) as ei:
            pool.submit(pf.inc, 1)
        assert isinstance(ei.value, cf.BrokenExecutor)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_initializer_failure_breaks_map():
    with make_pool(2, initializer=pf.init_fail) as pool:
        with pytest.raises(manygil.BrokenInterpreterPool):
            list(pool.map(pf.inc, range(10), timeout=60))


def test_initializer_not_callable_is_type_error():
    with pytest.raises(TypeError):
        manygil.InterpreterPoolExecutor(1, initializer=42)


# --- max_tasks_per_worker ---------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_max_tasks_per_worker_invalid(bad):
    with pytest.raises((ValueError, TypeError)):
        manygil.InterpreterPoolExecutor(1, max_tasks_per_worker=bad)


def test_max_tasks_per_worker_recycles_interpreter():
    with make_pool(1, max_tasks_per_worker=2) as pool:
        counts = [pool.submit(pf.count_calls).result(30) for _ in range(10)]
    assert max(counts) <= 2, counts
    assert counts == [1, 2] * 5, counts


def test_without_max_tasks_per_worker_interpreter_is_reused():
    with make_pool(1) as pool:
        counts = [pool.submit(pf.count_calls).result(30) for _ in range(6)]
    assert counts == [1, 2, 3, 4, 5, 6]


def test_recycled_workers_run_initializer_again():
    with make_pool(1, max_tasks_per_worker=2, initializer=pf.init_set,
                   initargs=("again",)) as pool:
        states = [pool.submit(pf.get_init_state).result(30) for _ in range(6)]
    assert states == [(1, "again")] * 6


def test_recycling_under_load_loses_nothing():
    with make_pool(2, max_tasks_per_worker=3) as pool:
        futs = [pool.submit(pf.square, i) for i in range(300)]
        assert [f.result(60) for f in futs] == [i * i for i in range(300)]
        counts = [f.result(60) for f in [pool.submit(pf.count_calls) for _ in range(30)]]
        assert max(counts) <= 3
        assert list(pool.map(pf.inc, range(500), timeout=120)) == list(range(1, 501))


# --- CPU-bound speed-up (same-run ratio) --------------------------------------

class _Control:
    """Same workload on two plain manygil interpreters driven by two threads:
    the speed-up this machine gives right now without the pool."""

    def __init__(self, n):
        self.n = n
        self.interps = [manygil.create(), manygil.create()]
        for it in self.interps:
            it.call(pf.busy, 1)

    def _four(self, it):
        for _ in range(4):
            it.call(pf.busy, self.n)

    def run(self):
        threads = [threading.Thread(target=self._four, args=(it,)) for it in self.interps]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    def close(self):
        for it in self.interps:
            it.close()


@pytest.mark.timeout(240)
def test_cpu_bound_parallel_speedup(two_cores):
    """8 CPU-bound tasks of ~0.15 s: 2 workers vs sequential in main, same
    run, best of 3.  Own-GIL workers should give ~2x; assert > 1.4 (or, on
    a busy machine, within 0.2 of the control below and > 1.25).

    Noisy on a shared machine: when the 3 rounds miss, 3 more rounds run
    interleaved with a control (the same work on two plain interpreters in
    two threads).  If the control does not reach 1.4 either, the machine has
    no 2 free cores now and the test skips; otherwise the pool must too."""
    n = calibrate_busy(0.15)

    def sequential():
        t0 = time.perf_counter()
        out = [pf.busy(n) for _ in range(8)]
        return time.perf_counter() - t0, out

    with make_pool(2) as pool:
        # warm-up: both workers started and helpers.pool_funcs imported.
        assert [f.result(60) for f in [pool.submit(pf.busy, 10) for _ in range(4)]] == [45] * 4

        def pooled():
            t0 = time.perf_counter()
            out = [f.result(120) for f in [pool.submit(pf.busy, n) for _ in range(8)]]
            return time.perf_counter() - t0, out

        best, samples = 0.0, []
        for _ in range(3):
            t_seq, seq = sequential()
            t_par, par = pooled()
            assert par == seq
            samples.append(round(t_seq / t_par, 2))
            best = max(best, t_seq / t_par)
            if best > 1.4:
                return
        control = _Control(n)
        try:
            best_control, control_samples = 0.0, []
            for _ in range(3):
                t_seq, _ = sequential()
                t_par, _ = pooled()
                t_ctl = control.run()
                samples.append(round(t_seq / t_par, 2))
                control_samples.append(round(t_seq / t_ctl, 2))
                best = max(best, t_seq / t_par)
                best_control = max(best_control, t_seq / t_ctl)
        finally:
            control.close()
    msg = (f"speed-up (sequential / pool) samples {samples}; control "
           f"(2 plain interpreters) samples {control_samples}")
    if best <= 1.4 and best_control <= 1.4:
        pytest.skip("machine too busy: " + msg)
    # The control ran interleaved with the pool, so the two see the same
    # machine: a pool within noise of it (and well above a serialised 1.0)
    # passes.  CI once saw the pool miss 1.4 in all six rounds while one
    # control round reached it.
    assert best > 1.4 or (best > 1.25 and best >= best_control - 0.2), msg
