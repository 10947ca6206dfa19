"""Reference leaks of the main operations, on debug builds (Py_DEBUG).

Each operation runs a warm-up, then REPS times more; sys.gettotalrefcount()
(which on 3.12+ sums every interpreter's count, and adds the count an ended
interpreter was left with) must not grow by more than a few references in
all -- a leak of one reference per operation shows as >= REPS.  The resident
memory over the measured repetitions is checked too, except for create/close
(CPython's own interpreters grow the process by ~1.6 MiB per cycle: see
test_resources.py, which compares that with CPython's own) and under ASan.

On release builds there is no total reference count: these tests skip.
"""
import gc
import os
import sys
import threading
import time

import pytest

import manygil
from helpers import pool_funcs as pf
from helpers import remote
from helpers.proc import TIMEOUT_SCALE

pytestmark = pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"),
                                reason="needs a debug build (sys.gettotalrefcount)")

REPS = 1000
SLACK_REFS = 50                 # interned strings, caches filled once, freelists
SLACK_RSS = 8 << 20


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(op, reps=REPS, warmup=50, check_rss=True, settle=0.0):
    """Run op() warmup times, then reps times; assert no references (nor
    memory) were kept.  Caches that fill up once (CPython's and ours) may
    still grow in the first half; the second half must keep nothing.
    ``settle``: seconds to wait before each reading, for ops that start
    threads (a joined thread's states are deleted by its exit hooks just
    after join() returns)."""
    for _ in range(warmup):
        op()
    time.sleep(settle)
    gc.collect()
    refs0, rss0 = sys.gettotalrefcount(), rss()
    for _ in range(reps // 2):
        op()
    time.sleep(settle)
    gc.collect()
    refs1 = sys.gettotalrefcount()
    for _ in range(reps - reps // 2):
        op()
    time.sleep(settle)
    gc.collect()
    drefs, drss = sys.gettotalrefcount() - refs0, rss() - rss0
    second = sys.gettotalrefcount() - refs1
    assert second < SLACK_REFS and drefs < 4 * SLACK_REFS, (
        f"{drefs} references kept over {reps} repetitions ({second} in the second half)")
    if check_rss and not os.environ.get("MANYGIL_SANITIZER"):
        assert drss < SLACK_RSS, f"RSS grew {drss / 2**20:.1f} MiB over {reps} repetitions"


def exec_error(it, code):
    """The type name of what exec(code) raised in `it`, or None."""
    try:
        it.exec(code)
    except manygil.ExecutionFailed as e:
        return e.excinfo.type.__name__
    return None


@pytest.mark.timeout(900)
def test_create_exec_call_close():
    def op():
        it = manygil.create()
        it.exec("x = [1, 2, 3]")
        assert it.call(remote.identity, ("a", 1)) == ("a", 1)
        it.close()
    measure(op, check_rss=False)


@pytest.mark.timeout(300)
def test_exec_and_call_into_one_interpreter():
    with manygil.create() as it:
        def op():
            it.exec("y = {'k': (1, 2.5, 'x')}")
            it.call(remote.identity, [b"x" * 100, {"k": 1.5}])
            assert exec_error(it, "raise ValueError('boom')") == "ValueError"
        measure(op)


@pytest.mark.timeout(300)
def test_channel_send_recv():
    r, s = manygil.create_channel()
    big = b"z" * (1 << 20)          # the one-copy path too

    def op():
        s.send(("msg", [1, 2], {"a": None}))
        r.recv()
        s.send(big)
        r.recv()
        s.send_nowait(bytearray(big))
        r.recv_nowait()
        with pytest.raises(manygil.ChannelEmptyError):
            r.recv_nowait()
        with pytest.raises(manygil.ChannelTimeoutError):
            r.recv(timeout=0.001)
    measure(op)


@pytest.mark.timeout(300)
def test_channel_through_an_interpreter():
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    with manygil.create() as it:
        it.prepare_main(r=r1, s=s2)
        th = threading.Thread(target=it.exec, args=(
            "while True:\n"
            "    v = r.recv()\n"
            "    if v is None: break\n"
            "    s.send(v)\n",))
        th.start()

        def op():
            s1.send([1, "two", 3.0])
            assert r2.recv() == [1, "two", 3.0]
        try:
            measure(op)
        finally:
            s1.send(None)
            th.join(30 * TIMEOUT_SCALE)


@pytest.mark.timeout(300)
def test_queue_put_get():
    q = manygil.create_queue(maxsize=2)

    def op():
        q.put((1, "x"))
        q.put_nowait(b"y" * 1000)
        with pytest.raises(manygil.QueueFull):
            q.put_nowait(0)
        q.get()
        q.get_nowait()
        with pytest.raises(manygil.QueueEmpty):
            q.get(timeout=0)
    measure(op)


@pytest.mark.timeout(900)
def test_pool_submit_and_map(tmp_path):
    # Every worker imports the task's module at start: a worker that got its
    # first task only after the warm-up added ~10,000 references (one import)
    # to the first half.  Its interpreter may also still be starting when the
    # warm-up ends on a busy machine (CI once saw ~5,600 references in the
    # first half, 8 in the second): two tasks that wait for each other prove
    # both workers run before anything is counted.
    with manygil.InterpreterPoolExecutor(2, initializer=pf.identity, initargs=(None,)) as pool:
        both = [pool.submit(pf.rendezvous, str(tmp_path), str(i), 2, 120) for i in range(2)]
        assert [f.result(180) for f in both] == [True, True]
        def op():
            assert pool.submit(pf.identity, (1, "a")).result(60) == (1, "a")
            assert list(pool.map(pf.identity, range(4))) == [0, 1, 2, 3]
        measure(op, warmup=200)


@pytest.mark.timeout(300)
def test_shared_buffer_round_trips():
    with manygil.create() as it:
        def op():
            buf = manygil.SharedBuffer(4096)
            memoryview(buf)[:3] = b"abc"
            back = it.call(remote.identity, buf)
            assert bytes(memoryview(back)[:3]) == b"abc"
            ro = buf.readonly()
            del back, ro
            buf.release()
        measure(op)


@pytest.mark.timeout(900)
def test_deadlock_detection():
    with manygil.create() as it:
        def op():
            r, s = manygil.create_channel()
            it.prepare_main(r=r, s=s)      # only `it` holds the send end
            del r, s
            gc.collect()
            err = []
            th = threading.Thread(target=lambda: err.append(exec_error(it, "r.recv()")), daemon=True)
            th.start()
            th.join(30 * TIMEOUT_SCALE)
            assert err == ["DeadlockError"], err
            it.exec("r = s = None")
        measure(op, reps=REPS // 4)


@pytest.mark.timeout(900)
def test_interrupts():
    with manygil.create() as it:
        def op():
            out = []
            th = threading.Thread(target=lambda: out.append(exec_error(it, "while True: pass")),
                                  daemon=True)
            th.start()
            deadline = time.monotonic() + 30 * TIMEOUT_SCALE
            while it.interrupt() == 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            th.join(10 * TIMEOUT_SCALE)
            ran_on = th.is_alive()
            while th.is_alive() and time.monotonic() < deadline:   # never leave it spinning
                it.interrupt()
                th.join(0.05)
            assert not ran_on, "interrupt() reached the thread but its code ran on"
            assert out == ["KeyboardInterrupt"], out
        measure(op, reps=REPS // 4, settle=0.3)
