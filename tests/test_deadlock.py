"""Issue #5, deadlock detection: cycles of waits across interpreters raise
``manygil.DeadlockError`` in every wait of the cycle (within ~100 ms), and
look-alikes that can still complete are never broken.

Conventions: the channel ends / queues of a scenario are bound in the
interpreters' ``__main__`` with ``prepare_main`` and the main interpreter then
drops its own handles (``del`` + ``gc.collect()``), so only the interpreters
named by the scenario hold them.  Code runs in the interpreters through
``Interpreter.call`` of functions in ``helpers.dl_funcs``, each from its own
main-interpreter thread (``helpers.chan_util.start``); those functions catch
``DeadlockError`` inside the interpreter and return a report dict.  Latency
is measured from the moment the last wait of the cycle is blocked (its
``since`` in ``manygil._core._waits()``) to the moment the last wait raised.
"""
import gc
import re
import statistics
import time

import pytest

import manygil
from helpers import dl_funcs as dl
from helpers.chan_util import start, wait_until, waits
from helpers.proc import describe, run_script

DETECT_BOUND = 0.100        # the bound, seconds
LATENCY_TRIALS = 7
JOIN = 15.0                 # a cycle that is never broken fails after this
NOT_BROKEN_FOR = 0.6        # well past the detection time (~10-20 ms)


# --- fixtures and helpers ---------------------------------------------------

@pytest.fixture
def make_interps():
    """``make_interps(n)`` -> n fresh interpreters; cleaned up afterwards
    (anything left blocked is woken first, handles are dropped, closed)."""
    made = []

    def make(n):
        new = [manygil.create() for _ in range(n)]
        made.extend(new)
        return new

    yield make
    for it in made:
        if it.is_running():
            try:
                it.call(dl.rescue)
            except Exception:  # noqa: BLE001 - best effort
                pass
            wait_until(lambda it=it: not it.is_running(), 10)
    for it in made:
        try:
            it.call(dl.clear)
        except Exception:  # noqa: BLE001
            pass
        try:
            it.close()
        except manygil.InterpreterError:
            pass
    gc.collect()


@pytest.fixture
def detection_on():
    """Make sure detection is on for the test and stays on afterwards."""
    manygil.configure(deadlock_detection=True)
    try:
        yield
    finally:
        manygil.configure(deadlock_detection=True)


def drop_main_handles():
    gc.collect()


def blocked_keys():
    return {(w[0], w[2]) for w in waits()}


def run_until_done(calls, keys, timeout=JOIN):
    """Watch the waits table while ``calls`` run; return (results, latency).

    ``keys``: the ``(interp id, end id)`` waits of the scenario.  Latency is
    from the last of them blocking (recorded ``since``) to the last call's
    operation ending (its ``t1``); None when the table was not seen with all
    of them (then the caller falls back to the ``t0`` readings).
    """
    since = {}
    deadline = time.monotonic() + timeout
    while any(c.is_alive() for c in calls) and time.monotonic() < deadline:
        for w in waits():
            key = (w[0], w[2])
            if key in keys and key not in since:
                since[key] = w[4] / 1e9
        time.sleep(0.0005)
    results = [c.outcome(timeout=1.0 if time.monotonic() >= deadline else timeout)
               for c in calls]
    latency = None
    if all(r.get("t1") is not None for r in results):
        end = max(r["t1"] for r in results)
        if len(since) == len(keys):
            latency = end - max(since.values())
        else:                       # fallback: just before each wait started
            latency = end - max(r["t0"] for r in results)
    return results, latency


def wait_all_blocked(keys, calls, timeout=10.0):
    ok = wait_until(lambda: keys <= blocked_keys() or not all(c.is_alive() for c in calls),
                    timeout)
    assert ok and keys <= blocked_keys(), (
        f"the waits never all blocked: want {keys}, table {waits()}, "
        f"finished: {[c.result for c in calls if not c.is_alive()]}")


def assert_deadlock(result):
    assert result["kind"] == "deadlock", f"expected DeadlockError, got {result}"
    assert result["type"] == "DeadlockError", result
    assert result["runtime_error"], "DeadlockError must be a RuntimeError"


def assert_names(msg, interp_ids, end_ids, direction=None):
    """The message names every interpreter and channel/queue of the cycle."""
    for i in interp_ids:
        assert re.search(rf"\binterpreters? (?:\d+, )*{i}\b", msg), (i, msg)
    for e in end_ids:
        assert re.search(rf"\b(?:channel|queue|id) {e}\b", msg), (e, msg)
    if direction is not None:
        assert direction in msg, (direction, msg)


def still_blocked_after(calls, keys, seconds=NOT_BROKEN_FOR):
    """All ``keys`` waits block, and stay blocked (nothing raised) for ``seconds``."""
    wait_all_blocked(keys, calls)
    time.sleep(seconds)
    done = [c.result for c in calls if not c.is_alive()]
    assert not done, f"a wait that could still complete ended early: {done}"
    assert keys <= blocked_keys(), waits()


def assert_value(result, value):
    assert result["kind"] == "value", f"expected the value {value!r}, got {result}"
    assert result["value"] == value, result


def report(request, name, latencies):
    text = ", ".join(f"{x * 1000:.1f}" for x in latencies)
    request.node.user_properties.append((name, text))
    print(f"\n{name} (ms): {text}; median {statistics.median(latencies) * 1000:.1f}")


# --- scenarios ----------------------------------------------------------------

def recv_cycle(a, b):
    """A holds recv1/send2, B holds recv2/send1; main keeps nothing.
    Returns the recv end ids (1, 2)."""
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    ids = (r1.id, r2.id)
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, s1, r2, s2
    drop_main_handles()
    return ids


def queue_cycle(a, b, maxsize=0, fill=False):
    """A gets from q1 and puts to q2, B the reverse; main keeps nothing."""
    q1, q2 = manygil.create_queue(maxsize), manygil.create_queue(maxsize)
    if fill:
        for _ in range(maxsize):
            q1.put_nowait(0)
            q2.put_nowait(0)
    ids = (q1.id, q2.id)
    a.prepare_main(r=q1, s=q2)
    b.prepare_main(r=q2, s=q1)
    del q1, q2
    drop_main_handles()
    return ids


def send_cycle(a, b):
    """Bounded (maxsize=1) channels, both full; A sends on 1 and alone can
    receive 2, B sends on 2 and alone can receive 1.  Returns send end ids."""
    r1, s1 = manygil.create_channel(maxsize=1)
    r2, s2 = manygil.create_channel(maxsize=1)
    s1.send_nowait("full")
    s2.send_nowait("full")
    ids = (s1.id, s2.id)
    a.prepare_main(s=s1, r=r2)
    b.prepare_main(s=s2, r=r1)
    del r1, s1, r2, s2
    drop_main_handles()
    return ids


def one_recv_cycle(a, b):
    ida, idb = recv_cycle(a, b)
    calls = [start(a.call, dl.recv, "r"), start(b.call, dl.recv, "r")]
    return run_until_done(calls, {(a.id, ida), (b.id, idb)}), (ida, idb)


# --- 1. receive cycle over channels -----------------------------------------

def test_deadlock_error_is_runtime_error():
    assert issubclass(manygil.DeadlockError, RuntimeError)


@pytest.mark.timeout(60)
def test_recv_cycle_raises_in_both(make_interps, detection_on):
    a, b = make_interps(2)
    (results, _lat), (ida, idb) = one_recv_cycle(a, b)
    for r in results:
        assert_deadlock(r)
        assert_names(r["msg"], (a.id, b.id), (ida, idb), "receive")


@pytest.mark.timeout(60)
def test_recv_cycle_via_exec_crosses_as_execution_failed(make_interps, detection_on):
    a, b = make_interps(2)
    ida, idb = recv_cycle(a, b)
    calls = [start(a.exec, "r.recv()"), start(b.exec, "r.recv()")]
    for c in calls:
        c.join(JOIN)
        assert not c.is_alive(), "a deadlocked wait was never broken"
        err = c.error
        assert isinstance(err, manygil.ExecutionFailed), repr(err)
        assert err.excinfo.type.__name__ == "DeadlockError", err
        assert_names(err.excinfo.msg, (a.id, b.id), (ida, idb), "receive")


@pytest.mark.timeout(60)
def test_deadlock_error_rebuilds_in_main(make_interps, detection_on):
    a, b = make_interps(2)
    recv_cycle(a, b)
    calls = [start(a.exec, "r.recv()"), start(b.exec, "r.recv()")]
    for c in calls:
        c.join(JOIN)
        assert not c.is_alive()
        assert isinstance(c.error, manygil.ExecutionFailed), repr(c.error)
        rebuilt = c.error.excinfo.rebuild()
        assert isinstance(rebuilt, manygil.DeadlockError), repr(rebuilt)


@pytest.mark.timeout(120)
def test_recv_cycle_latency_under_100ms(make_interps, detection_on, request):
    a, b = make_interps(2)
    latencies = []
    for _ in range(LATENCY_TRIALS):
        (results, lat), _ids = one_recv_cycle(a, b)
        for r in results:
            assert_deadlock(r)
        latencies.append(lat)
        a.call(dl.clear), b.call(dl.clear)
    report(request, "recv cycle detection latency", latencies)
    assert statistics.median(latencies) < DETECT_BOUND, latencies


@pytest.mark.timeout(60)
def test_three_interpreter_ring(make_interps, detection_on):
    """A waits on 1 (only B sends), B on 2 (only C sends), C on 3 (only A sends)."""
    a, b, c = make_interps(3)
    chans = [manygil.create_channel() for _ in range(3)]
    ids = [r.id for r, _s in chans]
    a.prepare_main(r=chans[0][0], s=chans[2][1])
    b.prepare_main(r=chans[1][0], s=chans[0][1])
    c.prepare_main(r=chans[2][0], s=chans[1][1])
    del chans
    drop_main_handles()
    calls = [start(it.call, dl.recv, "r") for it in (a, b, c)]
    results, _lat = run_until_done(calls, {(a.id, ids[0]), (b.id, ids[1]), (c.id, ids[2])})
    for r in results:
        assert_deadlock(r)
        assert_names(r["msg"], (a.id, b.id, c.id), ids, "receive")


@pytest.mark.timeout(60)
def test_every_thread_of_the_set_raises(make_interps, detection_on):
    """A runs two threads, both in hopeless waits (on 1 and 3, whose send ends
    only B holds); B waits on 2 (only A sends).  All three waits raise."""
    a, b = make_interps(2)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    r3, s3 = manygil.create_channel()
    keys = {(a.id, r1.id), (a.id, r3.id), (b.id, r2.id)}
    a.prepare_main(r=r1, r3=r3, s=s2)
    b.prepare_main(r=r2, s=s1, s3=s3)
    del r1, s1, r2, s2, r3, s3
    drop_main_handles()
    calls = [start(a.call, dl.recv, "r"), start(a.call, dl.recv, "r3"),
             start(b.call, dl.recv, "r")]
    results, _lat = run_until_done(calls, keys)
    for r in results:
        assert_deadlock(r)


@pytest.mark.timeout(60)
def test_wait_hanging_off_a_cycle_raises_too(make_interps, detection_on):
    """A and B in a receive cycle; C waits on 4 whose send end only A holds:
    A can never act, so C's wait is hopeless as well."""
    a, b, c = make_interps(3)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    r4, s4 = manygil.create_channel()
    keys = {(a.id, r1.id), (b.id, r2.id), (c.id, r4.id)}
    r4_id = r4.id
    a.prepare_main(r=r1, s=s2, s4=s4)
    b.prepare_main(r=r2, s=s1)
    c.prepare_main(r=r4)
    del r1, s1, r2, s2, r4, s4
    drop_main_handles()
    # C waits first: were the cycle broken before C's wait began, A would
    # be idle (no longer stuck) and C's wait no longer hopeless.
    calls = [start(c.call, dl.recv, "r")]
    assert wait_until(lambda: (c.id, r4_id) in blocked_keys(), 10), waits()
    calls += [start(a.call, dl.recv, "r"), start(b.call, dl.recv, "r")]
    results, _lat = run_until_done(calls, keys)
    for r in results:
        assert_deadlock(r)


# --- 2. the same with queues --------------------------------------------------

@pytest.mark.timeout(120)
def test_queue_get_cycle_raises_in_both(make_interps, detection_on, request):
    a, b = make_interps(2)
    latencies, named = [], []
    for _ in range(5):
        q1, q2 = queue_cycle(a, b)
        calls = [start(a.call, dl.get, "r"), start(b.call, dl.get, "r")]
        results, lat = run_until_done(calls, {(a.id, q1), (b.id, q2)})
        for r in results:
            assert_deadlock(r)
            named.append((r["msg"], (q1, q2)))
        latencies.append(lat)
        a.call(dl.clear), b.call(dl.clear)
    report(request, "queue cycle detection latency", latencies)
    assert statistics.median(latencies) < DETECT_BOUND, latencies
    for msg, ids in named:
        assert_names(msg, (a.id, b.id), ids, "get")


@pytest.mark.timeout(60)
def test_bounded_queue_put_cycle(make_interps, detection_on):
    """Both queues (maxsize=1) full; A puts to q2, B puts to q1; only A and B
    hold them."""
    a, b = make_interps(2)
    q1, q2 = queue_cycle(a, b, maxsize=1, fill=True)
    calls = [start(a.call, dl.put, "s", 1), start(b.call, dl.put, "s", 1)]
    results, _lat = run_until_done(calls, {(a.id, q2), (b.id, q1)})
    for r in results:
        assert_deadlock(r)
        assert_names(r["msg"], (a.id, b.id), (q1, q2), "put")


# --- 3. send-side cycle on full bounded channels ----------------------------------

@pytest.mark.timeout(120)
def test_send_cycle_on_full_bounded_channels(make_interps, detection_on, request):
    a, b = make_interps(2)
    latencies = []
    for _ in range(5):
        sa, sb = send_cycle(a, b)
        calls = [start(a.call, dl.send, "s", 1), start(b.call, dl.send, "s", 1)]
        results, lat = run_until_done(calls, {(a.id, sa), (b.id, sb)})
        for r in results:
            assert_deadlock(r)
            assert_names(r["msg"], (a.id, b.id), (sa, sb), "send")
        latencies.append(lat)
        a.call(dl.clear), b.call(dl.clear)
    report(request, "send cycle detection latency", latencies)
    assert statistics.median(latencies) < DETECT_BOUND, latencies


@pytest.mark.timeout(60)
def test_mixed_recv_and_send_cycle(make_interps, detection_on):
    """A waits to receive on 1 (only B can send); B waits to send on the full
    bounded channel 2 (only A can receive)."""
    a, b = make_interps(2)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel(maxsize=1)
    s2.send_nowait("full")
    keys = {(a.id, r1.id), (b.id, s2.id)}
    ids = (r1.id, s2.id)
    a.prepare_main(r=r1, r2=r2)
    b.prepare_main(s=s1, s2=s2)
    del r1, s1, r2, s2
    drop_main_handles()
    calls = [start(a.call, dl.recv, "r"), start(b.call, dl.send, "s2", 1)]
    results, _lat = run_until_done(calls, keys)
    for r in results:
        assert_deadlock(r)
        assert_names(r["msg"], (a.id, b.id), ids)


# --- 4. look-alikes that must never be broken ---------------------------------------

@pytest.mark.timeout(60)
def test_slow_sender_not_broken(make_interps, detection_on):
    """(a) B sleeps (outside manygil) 0.5 s, then sends; A answers."""
    a, b = make_interps(2)
    ida, idb = recv_cycle(a, b)
    ca = start(a.call, dl.recv_then_send, "r", "s", "!")
    wait_all_blocked({(a.id, ida)}, [ca])
    time.sleep(0.05)
    cb = start(b.call, dl.sleep_send_recv, 0.5, "hello")
    ra, rb = ca.outcome(JOIN), cb.outcome(JOIN)
    assert_value(ra, "hello")
    assert_value(rb, "hello!")


@pytest.mark.timeout(60)
def test_main_holding_send_end_not_broken(make_interps, detection_on):
    """(b) A waits on 1, B waits on 2 (only A sends); main still holds 1's send
    end and sends after 0.5 s."""
    a, b = make_interps(2)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    keys = {(a.id, r1.id), (b.id, r2.id)}
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, r2, s2
    drop_main_handles()
    calls = [start(a.call, dl.recv_then_send, "r", "s", "!"), start(b.call, dl.recv, "r")]
    still_blocked_after(calls, keys, 0.5)
    s1.send("from-main")
    ra, rb = (c.outcome(JOIN) for c in calls)
    assert_value(ra, "from-main")
    assert_value(rb, "from-main!")


@pytest.mark.timeout(60)
def test_main_holding_queue_not_broken(make_interps, detection_on):
    """(b, queues) A and B in a get cycle, but main still holds q1 and puts
    after 0.5 s."""
    a, b = make_interps(2)
    q1, q2 = manygil.create_queue(), manygil.create_queue()
    keys = {(a.id, q1.id), (b.id, q2.id)}
    a.prepare_main(r=q1, s=q2)
    b.prepare_main(r=q2, s=q1)
    del q2
    drop_main_handles()
    calls = [start(a.call, dl.get_then_put, "r", "s", "!"), start(b.call, dl.get, "r")]
    still_blocked_after(calls, keys, 0.5)
    q1.put("from-main")
    ra, rb = (c.outcome(JOIN) for c in calls)
    assert_value(ra, "from-main")
    assert_value(rb, "from-main!")


@pytest.mark.timeout(60)
def test_main_thread_in_timed_wait_still_counts_as_able(make_interps, detection_on):
    """(b') main holds 1's send end; its main thread is itself blocked in a
    manygil wait *with* a timeout meanwhile, then sends."""
    a, b = make_interps(2)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    rx, _sx = manygil.create_channel()
    keys = {(a.id, r1.id), (b.id, r2.id)}
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, r2, s2
    drop_main_handles()
    calls = [start(a.call, dl.recv_then_send, "r", "s", "!"), start(b.call, dl.recv, "r")]
    wait_all_blocked(keys, calls)
    with pytest.raises(manygil.ChannelTimeoutError):
        rx.recv(timeout=0.6)
    assert all(c.is_alive() for c in calls), [c.result for c in calls]
    s1.send("late")
    ra, rb = (c.outcome(JOIN) for c in calls)
    assert_value(ra, "late")
    assert_value(rb, "late!")


@pytest.mark.timeout(60)
def test_second_thread_in_same_interpreter_not_broken(make_interps, detection_on):
    """(c) A's exec thread waits on 1 while a thread A started with threading
    sleeps 0.5 s and then sends on 2, where B waits; B answers on 1."""
    a, b = make_interps(2)
    ida, idb = recv_cycle(a, b)
    cb = start(b.call, dl.recv_then_send, "r", "s", "!")
    wait_all_blocked({(b.id, idb)}, [cb])
    ca = start(a.call, dl.thread_sends_later_then_recv, 0.5, "from-thread")
    ra, rb = ca.outcome(JOIN), cb.outcome(JOIN)
    assert_value(rb, "from-thread")
    assert_value(ra, "from-thread!")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["channels", "queues"])
def test_cycle_of_timed_waits_is_never_broken(make_interps, detection_on, kind):
    """(d) a real cycle, but each wait has a timeout: each ends with the
    ordinary timeout error after its timeout, never DeadlockError."""
    a, b = make_interps(2)
    if kind == "channels":
        recv_cycle(a, b)
        fn, expected = dl.recv, "ChannelTimeoutError"
    else:
        queue_cycle(a, b)
        fn, expected = dl.get, "QueueEmpty"
    calls = [start(a.call, fn, "r", 1.0), start(b.call, fn, "r", 1.0)]
    for c in calls:
        r = c.outcome(JOIN)
        assert r["kind"] == "error" and r["type"] == expected, r
        assert r["t1"] - r["t0"] >= 0.9, f"ended before its timeout: {r}"


@pytest.mark.timeout(60)
def test_cycle_closed_by_one_timed_wait_is_never_broken(make_interps, detection_on):
    """(d') A waits without timeout, B with timeout 0.6 s: B times out; A's
    wait stays (B can still act, e.g. when main calls into it) and is
    satisfied later by B."""
    a, b = make_interps(2)
    ida, idb = recv_cycle(a, b)
    ca = start(a.call, dl.recv, "r")
    cb = start(b.call, dl.recv, "r", 0.6)
    wait_all_blocked({(a.id, ida), (b.id, idb)}, [ca, cb])
    rb = cb.outcome(JOIN)
    assert rb["kind"] == "error" and rb["type"] == "ChannelTimeoutError", rb
    time.sleep(0.3)
    assert ca.is_alive(), f"A's wait was broken: {ca.result}"
    assert b.call(dl.send_now, "s", "late") is True
    assert_value(ca.outcome(JOIN), "late")


@pytest.mark.timeout(60)
def test_idle_interpreter_holding_send_end_not_broken(make_interps, detection_on):
    """A waits on 1 whose send end only B holds, but nothing runs in B: main
    can still call into B, so the wait is not hopeless."""
    a, b = make_interps(2)
    ida, _idb = recv_cycle(a, b)
    ca = start(a.call, dl.recv, "r")
    still_blocked_after([ca], {(a.id, ida)})
    assert b.call(dl.send_now, "s", "from-b") is True
    assert_value(ca.outcome(JOIN), "from-b")


@pytest.mark.timeout(60)
def test_seed_plain_id_channels_never_raise(make_interps, detection_on):
    """(e) waits without timeout on seed-API channels (plain ids: anyone can
    reach them) are left alone; main sends by id after 0.6 s."""
    from manygil import interpreters as seed
    a, b = make_interps(2)
    s1, r1 = seed.create_channel()
    s2, r2 = seed.create_channel()
    try:
        calls = [start(a.call, dl.seed_recv, r1), start(b.call, dl.seed_recv, r2)]
        still_blocked_after(calls, {(a.id, r1), (b.id, r2)})
        seed.channel_send(s1, "one")
        seed.channel_send(s2, "two")
        ra, rb = (c.outcome(JOIN) for c in calls)
        assert_value(ra, "one")
        assert_value(rb, "two")
    finally:
        for cid in (s1, s2):
            try:
                seed.channel_close(cid)
            except Exception:  # noqa: BLE001
                pass


@pytest.mark.timeout(60)
def test_handle_inside_a_queued_message_not_broken(make_interps, detection_on):
    """The only handle to 1's send end travels inside a message queued in a
    third channel (main holds its receive end).  A waits on 1, B on 2 (only
    A sends): not broken; main takes the handle out and sends."""
    a, b = make_interps(2)
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    rc, sc = manygil.create_channel()
    keys = {(a.id, r1.id), (b.id, r2.id)}
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2)
    sc.send(s1)
    del r1, s1, r2, s2, sc
    drop_main_handles()
    calls = [start(a.call, dl.recv_then_send, "r", "s", "!"), start(b.call, dl.recv, "r")]
    still_blocked_after(calls, keys)
    s1 = rc.recv(timeout=5)
    s1.send("carried")
    ra, rb = (c.outcome(JOIN) for c in calls)
    assert_value(ra, "carried")
    assert_value(rb, "carried!")
    del s1


MAIN_THREAD_WITH_HELPER_THREAD = r"""
import gc, threading, time, manygil
from helpers import dl_funcs as dl
a = manygil.create()
r1, s1 = manygil.create_channel()
r2, s2 = manygil.create_channel()
a.prepare_main(r=r2, s=s1)      # A waits on 2 and alone can send on 1
del r2, s1
gc.collect()
out = {}
t = threading.Thread(target=lambda: out.setdefault("a", a.call(dl.recv_then_send, "r", "s", "!")))
t.start()
def helper():                   # a second thread of main: sends on 2 later
    time.sleep(0.6)
    s2.send("from-helper")
h = threading.Thread(target=helper)
h.start()
try:
    print("MAIN GOT", r1.recv())   # main thread waits without timeout on 1
except manygil.DeadlockError as e:
    print("MAIN DeadlockError", e)
t.join(); h.join()
print("A GOT", out["a"]["kind"], out["a"].get("value"))
a.call(dl.clear)
a.close()
"""


@pytest.mark.timeout(60)
def test_main_thread_waiting_with_another_main_thread_alive_not_broken(tmp_path):
    """(b'') main's main thread waits without timeout on 1 (only A sends), A
    waits on 2 whose send end only main holds, but another thread of main
    (not in a manygil wait) sends on 2 after 0.6 s.  Run in a child process
    so that main's threads are exactly these."""
    proc = run_script(tmp_path, MAIN_THREAD_WITH_HELPER_THREAD, timeout=40)
    assert proc.returncode == 0, describe(proc)
    assert "MAIN GOT from-helper!" in proc.stdout, describe(proc)
    assert "A GOT value from-helper" in proc.stdout, describe(proc)


# --- 5. configure ------------------------------------------------------------------

def test_configure_returns_settings():
    settings = manygil.configure()
    assert isinstance(settings, dict)
    assert "deadlock_detection" in settings
    assert settings["deadlock_detection"] is True      # the default


@pytest.mark.timeout(60)
def test_disabled_detection_leaves_cycle_alone(make_interps):
    a, b = make_interps(2)
    try:
        manygil.configure(deadlock_detection=False)
        assert manygil.configure()["deadlock_detection"] is False
        ida, idb = recv_cycle(a, b)
        calls = [start(a.call, dl.recv, "r"),
                 start(b.call, dl.recv_then_send, "r", "s", "!")]
        still_blocked_after(calls, {(a.id, ida), (b.id, idb)})
        # Break it by hand: a second thread into A sends on 2 (A holds it).
        assert a.call(dl.send_now, "s", "manual") is True
        ra, rb = (c.outcome(JOIN) for c in calls)
        assert_value(rb, "manual")
        assert_value(ra, "manual!")
    finally:
        manygil.configure(deadlock_detection=True)
    assert manygil.configure()["deadlock_detection"] is True


@pytest.mark.timeout(60)
def test_reenabled_detection_finds_new_cycle(make_interps):
    a, b = make_interps(2)
    try:
        manygil.configure(deadlock_detection=False)
        manygil.configure(deadlock_detection=True)
        assert manygil.configure()["deadlock_detection"] is True
        (results, _lat), _ids = one_recv_cycle(a, b)
        for r in results:
            assert_deadlock(r)
    finally:
        manygil.configure(deadlock_detection=True)


# --- 6. after a deadlock ---------------------------------------------------------------

@pytest.mark.timeout(90)
def test_interpreters_usable_after_deadlock(make_interps, detection_on):
    a, b = make_interps(2)
    (results, _lat), _ids = one_recv_cycle(a, b)
    for r in results:
        assert_deadlock(r)
    # Plain code runs in each.
    a.exec("x = 40 + 2")
    b.exec("y = 'ok'")
    assert a.call(dl.compute, 100) == sum(i * i for i in range(100))
    assert b.call(dl.interp_id) == b.id
    # The channels of the broken cycle were not closed by it: B -> A works.
    assert b.call(dl.send_now, "s", 5) is True
    assert a.call(dl.recv_now, "r") == 5
    a.call(dl.clear), b.call(dl.clear)
    # A fresh conversation between the two, each side in its own thread.
    r1, s1 = manygil.create_channel()
    r2, s2 = manygil.create_channel()
    a.prepare_main(r=r1, s=s2)
    b.prepare_main(r=r2, s=s1)
    del r1, s1, r2, s2
    drop_main_handles()
    ca = start(a.call, dl.ping_pong, "r", "s", 10, True)
    cb = start(b.call, dl.ping_pong, "r", "s", 10, False)
    assert ca.outcome(JOIN) == list(range(1, 21, 2))
    assert cb.outcome(JOIN) == list(range(0, 20, 2))
    a.call(dl.clear), b.call(dl.clear)
    # And a new deadlock between them is found again.
    (results, _lat), _ids = one_recv_cycle(a, b)
    for r in results:
        assert_deadlock(r)
