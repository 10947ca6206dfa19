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


def measure(op, reps=REPS, warmup=50, check_rss=True, settle=0.0, collect=gc.collect,
            slack=SLACK_REFS):
    """Run op() warmup times, then reps times; assert no references (nor
    memory) were kept.  Caches that fill up once (CPython's and ours) may
    still grow in the first half; the second half must keep nothing.
    ``settle``: seconds to wait before each reading, for ops that start
    threads (a joined thread's states are deleted by its exit hooks just
    after join() returns).  ``collect``: run before each reading (to also
    collect another interpreter's garbage: the total counts every one).
    ``slack``: references the second half may keep (a leak of one per
    operation keeps reps / 2)."""
    for _ in range(warmup):
        op()
    time.sleep(settle)
    collect()
    refs0, rss0 = sys.gettotalrefcount(), rss()
    for _ in range(reps // 2):
        op()
    time.sleep(settle)
    collect()
    refs1 = sys.gettotalrefcount()
    for _ in range(reps - reps // 2):
        op()
    time.sleep(settle)
    collect()
    drefs, drss = sys.gettotalrefcount() - refs0, rss() - rss0
    second = sys.gettotalrefcount() - refs1
    assert second < slack and drefs < 4 * slack, (
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
    """interrupt() of a spinning exec, many times: nothing kept.  One thread
    runs every exec (a thread per operation would add its own teardown,
    which finishes after join() returns, to what is measured)."""
    import queue
    jobs, results = queue.Queue(), queue.Queue()
    with manygil.create() as it:
        def serve():
            while jobs.get() is not None:
                results.put(exec_error(it, "while True: pass"))
        th = threading.Thread(target=serve, daemon=True)
        th.start()

        def op():
            jobs.put(1)
            deadline = time.monotonic() + 30 * TIMEOUT_SCALE
            while it.interrupt() == 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            try:
                out = results.get(timeout=10 * TIMEOUT_SCALE)
            except queue.Empty:
                out = None
            while out is None and time.monotonic() < deadline:   # never leave it spinning
                it.interrupt()
                try:
                    out = results.get(timeout=0.05)
                except queue.Empty:
                    pass
            assert out == "KeyboardInterrupt", "interrupt() reached the thread but its code ran on"

        def collect():
            gc.collect()
            it.exec("import gc; gc.collect()")  # its garbage counts in the total too
        # The count settles slowly, like a cache that fills at random (on
        # 3.15-dbg, rounds of 125 interrupts kept 126, 69, 20, 44, 13, 21,
        # 15, 17, 6 references; no Python object is left over in either
        # interpreter: the blocks are allocated inside the interrupted exec,
        # by CPython).  Hence the long warm-up, and a second half of 250
        # with a slack of 125: half of what a leak of one per operation keeps.
        try:
            measure(op, reps=REPS // 2, warmup=800, settle=0.3, collect=collect,
                    slack=125)
        finally:
            jobs.put(None)
            th.join(30)


def _actor_measure(system, op, warmup, slack=SLACK_REFS):
    """measure(op) that also collects the garbage of system's worker
    interpreter before each reading (the total counts every interpreter's,
    and that one's collector runs on its own schedule)."""
    from helpers import actor_funcs as af
    cleaner = manygil.spawn(af.Collector, system=system)

    def collect():
        gc.collect()
        cleaner.collect()
    measure(op, warmup=warmup, collect=collect, slack=slack)


@pytest.mark.timeout(900)
def test_actor_calls_submit_tell_and_refusal():
    """Every way of messaging an actor and a stopped actor's refusal:
    nothing kept, here or in the worker interpreter."""
    import pickle
    from helpers import actor_funcs as af
    from manygil import _core
    with manygil.ActorSystem(workers=1) as system:
        counter = manygil.spawn(af.Counter, 0, system=system)
        gone = manygil.spawn(af.Counter, system=system)
        gone.stop()
        assert gone.join(timeout=30 * TIMEOUT_SCALE)
        stale = pickle.loads(pickle.dumps(gone))    # not marked stopped: the worker refuses
        # A future kept pending all along keeps submit()'s reply thread alive
        # (it ends a second after the last one resolves, and starts again
        # with the next: a thread more or less at a reading is ~100 refs).
        gate_send, gate_recv = _core._channel_ids()
        holder = manygil.spawn(af.Sleeper, system=system, dedicated=True)
        held = holder.block_on.submit(gate_recv)

        def op():
            counter.incr(2)
            assert counter.incr.submit(k=1).result(60) > 0
            counter.incr.tell(3)
            with pytest.raises(manygil.ActorStoppedError):
                gone.get()
            with pytest.raises(manygil.ActorStoppedError):
                stale.get()
            assert counter.get(timeout=60) > 0      # the tell has run before this answer
        try:
            _actor_measure(system, op, warmup=200)
        finally:
            _core._channel_send(gate_send, "go")
            assert held.result(60) == "go"
            holder.stop()
            _core._channel_close(gate_send)
            _core._channel_close(gate_recv)


@pytest.mark.timeout(900)
def test_actor_method_that_raises():
    """A raising method: the exception rebuilt here, the actor going on."""
    from helpers import actor_funcs as af
    with manygil.ActorSystem(workers=1) as system:
        faulty = manygil.spawn(af.Faulty, system=system)

        def op():
            with pytest.raises(KeyError):
                faulty.fail("boom")
        # Its round trip settles slowly (on 3.15-dbg, runs of 600 kept 95,
        # 38, 12, 12, -8 references in a row, and once 55 after a warm-up of
        # 4,000: bounded, cause not traced), hence the long warm-up and a
        # slack of 200 -- still far below the 500 a leak per call keeps.
        _actor_measure(system, op, warmup=4000, slack=200)


@pytest.mark.timeout(900)
def test_actor_spawn_and_stop():
    """Actors spawned and stopped on a running worker: each instance, its
    slot and its refs go."""
    from helpers import actor_funcs as af
    with manygil.ActorSystem(workers=1) as system:
        def op():
            ref = manygil.spawn(af.Log, system=system, mailbox=4)
            ref.add(("item", 1))
            assert ref.items_() == [("item", 1)]
            ref.stop()
            assert ref.join(timeout=30 * TIMEOUT_SCALE)
        # The count settles only after ~1,500 spawns (on 3.15-dbg: 591, 14,
        # then 2 references over successive runs of 600; bounded, its cause
        # not traced), hence the long warm-up.
        measure(op, warmup=1500)
