"""manygil.InterpreterPoolExecutor as a drop-in for the stdlib pools: where
the APIs overlap it behaves as concurrent.futures does (errors on futures,
the initializer's log record, map()'s edge cases, buffersize's errors,
thread names).  Where a stdlib pool is available on every version
(ThreadPoolExecutor, which 3.14's InterpreterPoolExecutor subclasses), the
test holds both side by side.
"""
import concurrent.futures as cf
import logging
import os
import re
import sys
import threading

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers.pool_util import make_pool, wait_until


@pytest.fixture
def pool():
    with make_pool(2) as p:
        yield p


# --- values that cannot cross: on the future, not from submit() --------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["arg", "kwarg", "callable"])
def test_unshareable_task_fails_its_future(pool, how):
    lock = threading.Lock()
    if how == "arg":
        fut = pool.submit(pf.identity, lock)
    elif how == "kwarg":
        fut = pool.submit(pf.pack, 1, x=lock)
    else:
        fut = pool.submit(lock.acquire)
    assert isinstance(fut, cf.Future)
    exc = fut.exception(30)
    assert isinstance(exc, manygil.NotShareableError)
    assert isinstance(exc.__cause__, TypeError)          # pickle's reason, chained
    assert "lock" in str(exc)
    with pytest.raises(manygil.NotShareableError):
        fut.result(0)
    # The pool is unharmed.
    assert pool.submit(pf.inc, 1).result(30) == 2


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(cf, "InterpreterPoolExecutor"), reason="the stdlib's pool is 3.14+")
def test_unshareable_argument_as_the_stdlib_interpreter_pool(pool):
    lock = threading.Lock()
    with cf.InterpreterPoolExecutor(1) as std:
        ref = std.submit(len, lock).exception(30)
    got = pool.submit(len, lock).exception(30)
    assert type(ref).__name__ == type(got).__name__ == "NotShareableError"
    assert isinstance(ref, TypeError) and isinstance(got, TypeError)
    assert ref.__cause__ is not None and got.__cause__ is not None


@pytest.mark.timeout(60)
def test_unshareable_futures_mix_with_good_ones_in_as_completed(pool):
    bad = threading.Lock()
    futs = {pool.submit(pf.identity, bad if i % 3 == 0 else i): i for i in range(12)}
    seen = {}
    for fut in cf.as_completed(futs, timeout=30):
        i = futs[fut]
        seen[i] = type(fut.exception()).__name__ if fut.exception() else fut.result()
    assert seen == {i: "NotShareableError" if i % 3 == 0 else i for i in range(12)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunksize", [None, 1, 4, 100])
def test_map_raises_unshareable_item_where_its_result_would_be(pool, chunksize):
    items = list(range(10))
    items[6] = threading.Lock()
    got = []
    it = pool.map(pf.identity, items, chunksize=chunksize)
    with pytest.raises(manygil.NotShareableError) as ei:
        for x in it:
            got.append(x)
    assert got == list(range(6))
    assert isinstance(ei.value.__cause__, TypeError)
    assert list(pool.map(pf.inc, range(5))) == [1, 2, 3, 4, 5]


@pytest.mark.timeout(60)
def test_map_with_unshareable_function_raises_on_first_result(pool):
    it = pool.map(threading.Lock().acquire, range(3))
    with pytest.raises(manygil.NotShareableError):
        next(it)


# --- the initializer's failure: logged as the stdlib pools log it -------------

def _init_records(caplog):
    return [r for r in caplog.records if r.getMessage() == "Exception in initializer:"]


@pytest.mark.timeout(60)
def test_initializer_failure_is_logged_like_the_stdlib(caplog):
    caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
    with cf.ThreadPoolExecutor(1, initializer=pf.init_fail, initargs=("std-boom",)) as tp:
        with pytest.raises(cf.BrokenExecutor):
            tp.submit(pf.inc, 1).result(30)
    (ref,) = _init_records(caplog)
    caplog.clear()

    with make_pool(1, initializer=pf.init_fail, initargs=("mg-boom",)) as mp:
        with pytest.raises(manygil.BrokenInterpreterPool) as ei:
            mp.submit(pf.inc, 1).result(30)
        with pytest.raises(manygil.BrokenInterpreterPool):
            mp.submit(pf.inc, 2)
    records = _init_records(caplog)
    assert len(records) == 1, records                    # once per pool
    rec = records[0]
    assert (rec.name, rec.levelno, rec.msg) == (ref.name, ref.levelno, ref.msg)
    assert rec.exc_info is not None and rec.exc_info[0] is pf.InitError
    assert str(rec.exc_info[1]) == "mg-boom"
    text = logging.Formatter().formatException(rec.exc_info)
    assert "init_fail" in text and "mg-boom" in text     # the worker's traceback
    # manygil's BrokenInterpreterPool is kept: its cause is the same exception.
    assert ei.value.__cause__ is rec.exc_info[1]
    assert isinstance(ei.value, cf.thread.BrokenThreadPool)


@pytest.mark.timeout(60)
def test_initializer_failure_is_logged_without_any_task(caplog):
    caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
    mp = manygil.InterpreterPoolExecutor(1, initializer=pf.init_fail, initargs=("idle",))
    try:
        assert wait_until(lambda: mp._core.stats()["broken"])
    finally:
        mp.shutdown(wait=True)          # joins the collector, which logs
    assert len(_init_records(caplog)) == 1


@pytest.mark.timeout(60)
def test_working_initializer_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="concurrent.futures")
    with make_pool(2, initializer=pf.init_set, initargs=("ok",)) as mp:
        assert mp.submit(pf.get_init_state).result(30) == (1, "ok")
    assert not _init_records(caplog)


# --- map() ------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_map_with_no_iterables_yields_nothing_like_the_stdlib(pool):
    with cf.ThreadPoolExecutor(1) as tp:
        assert list(tp.map(pf.inc)) == []
    assert list(pool.map(pf.inc)) == []
    assert list(pool.map(pf.inc, timeout=1, chunksize=3, buffersize=2)) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", ["foo", 2.0, b"1", [1]])
def test_buffersize_of_wrong_type(pool, bad):
    with pytest.raises(TypeError) as ei:
        pool.map(pf.inc, [1], buffersize=bad)
    assert str(ei.value) == "buffersize must be an integer or None"
    if sys.version_info >= (3, 14):                      # buffersize is new in 3.14
        with cf.ThreadPoolExecutor(1) as tp:
            with pytest.raises(TypeError) as ref:
                tp.map(pf.inc, [1], buffersize=bad)
        assert str(ref.value) == str(ei.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [0, -1, False])
def test_buffersize_not_positive(pool, bad):
    with pytest.raises(ValueError) as ei:
        pool.map(pf.inc, [1], buffersize=bad)
    assert str(ei.value) == "buffersize must be None or > 0"
    if sys.version_info >= (3, 14):
        with cf.ThreadPoolExecutor(1) as tp:
            with pytest.raises(ValueError) as ref:
                tp.map(pf.inc, [1], buffersize=bad)
        assert str(ref.value) == str(ei.value)
    # Checked before the no-iterables shortcut, as in the stdlib.
    with pytest.raises(ValueError):
        pool.map(pf.inc, buffersize=bad)


@pytest.mark.timeout(60)
def test_buffersize_true_is_one(pool):
    assert list(pool.map(pf.inc, range(5), buffersize=True)) == [1, 2, 3, 4, 5]


# --- construction: the stdlib's signature and names ---------------------------

@pytest.mark.timeout(60)
def test_stdlib_positional_signature():
    # InterpreterPoolExecutor(max_workers, thread_name_prefix, initializer, initargs)
    with manygil.InterpreterPoolExecutor(1, "zzpos", pf.init_set, ("pos",)) as mp:
        assert mp.submit(pf.get_init_state).result(30) == (1, "pos")
        assert mp._thread_name_prefix == "zzpos"


@pytest.mark.timeout(60)
def test_default_thread_name_prefix_like_the_stdlib():
    a = manygil.InterpreterPoolExecutor(1)
    b = manygil.InterpreterPoolExecutor(1)
    try:
        pa, pb = a._thread_name_prefix, b._thread_name_prefix
        assert re.fullmatch(r"InterpreterPoolExecutor-\d+", pa), pa
        assert re.fullmatch(r"InterpreterPoolExecutor-\d+", pb), pb
        assert pa != pb
        new = [t.name for t in threading.enumerate() if t.name.startswith(pa)]
        assert new, threading.enumerate()
    finally:
        a.shutdown()
        b.shutdown()


def _os_thread_names(raw=False):
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm", "rb") as f:
                name = f.read().rstrip(b"\n")
        except OSError:
            continue
        names.append(name if raw else name.decode(errors="replace"))
    return names


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc (Linux)")
def test_worker_threads_are_named_prefix_n():
    with manygil.InterpreterPoolExecutor(3, thread_name_prefix="zzdrop") as mp:
        assert [f.result(30) for f in [mp.submit(pf.inc, i) for i in range(6)]] == list(range(1, 7))
        names = sorted(n for n in _os_thread_names() if re.fullmatch(r"zzdrop_\d+", n))
    assert names == ["zzdrop_0", "zzdrop_1", "zzdrop_2"]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc (Linux)")
def test_long_prefix_is_cut_to_the_os_limit():
    with manygil.InterpreterPoolExecutor(1, thread_name_prefix="zzéééééééééééé-long") as mp:
        assert mp.submit(pf.inc, 1).result(30) == 2
        names = _os_thread_names(raw=True)
    # The worker's: "zzéééééé_0" cut to 15 bytes, never inside a UTF-8
    # sequence.  (Python's own threads, the collector, are named by CPython.)
    assert "zzéééééé_".encode() in names, names


@pytest.mark.timeout(60)
def test_thread_name_prefix_must_be_a_str():
    with pytest.raises(TypeError):
        manygil.InterpreterPoolExecutor(1, thread_name_prefix=3)
