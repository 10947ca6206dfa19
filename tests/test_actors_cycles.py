"""Actor call cycles -> DeadlockError (the C detector follows a call's reply
channel into the callee's inbox), and look-alikes that are never broken."""
import time

import pytest

import manygil
from helpers import actor_funcs as af

WAIT = 30


@pytest.fixture
def system():
    with manygil.ActorSystem(workers=2) as s:
        yield s


def _ring(system, n):
    refs = [manygil.spawn(af.Peer, system=system, dedicated=True) for _ in range(n)]
    for i, r in enumerate(refs):
        r.set_peer(refs[(i + 1) % n], r)
    return refs


def _assert_deadlock(exc_info, refs):
    text = str(exc_info.value)
    assert "deadlock" in text
    for r in refs:
        assert r.label in text, (r.label, text)     # names each actor: class and id


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [2, 3])
def test_ring_of_actors_on_separate_workers(system, n):
    refs = _ring(system, n)
    t0 = time.monotonic()
    with pytest.raises(manygil.DeadlockError) as ei:
        refs[0].ping(n)             # round the ring, back to refs[0], which is busy
    elapsed = time.monotonic() - t0
    _assert_deadlock(ei, refs)
    assert elapsed < 5.0
    # Every actor goes on afterwards.
    assert [r.ping(0) for r in refs] == ["done"] * n
    for r in refs:
        r.stop()


@pytest.mark.timeout(60)
def test_two_actors_on_the_same_worker_calling_each_other(system):
    one = manygil.ActorSystem(workers=1)
    try:
        a = manygil.spawn(af.Peer, system=one)
        b = manygil.spawn(af.Peer, system=one)
        a.set_peer(b)
        # B's message waits in the inbox of the worker that is blocked in A:
        # it can never run.  The caller (main, via a's answer) is told too.
        with pytest.raises(manygil.DeadlockError) as ei:
            a.ping(1)
        assert b.label in str(ei.value) and a.label in str(ei.value)
        assert a.ping(0) == "done"
    finally:
        one.stop(WAIT)


@pytest.mark.timeout(60)
def test_self_call_and_wait(system):
    a = manygil.spawn(af.Peer, system=system)
    a.set_peer(a, a)
    with pytest.raises(manygil.DeadlockError) as ei:
        a.self_call()
    assert a.label in str(ei.value)
    assert a.get_n() == 1
    a.stop()


@pytest.mark.timeout(60)
def test_the_actors_in_the_cycle_get_the_error(system):
    a, b = _ring(system, 2)
    # main does not block in a wait (a future is a watch, not a blocked
    # thread), so only the actors' waits form the cycle; a catches its own.
    out = a.outcome_of_ping.submit(3).result(WAIT)
    assert out[0] == "DeadlockError", out
    assert a.label in out[1] and b.label in out[1]
    a.stop()
    b.stop()


@pytest.mark.timeout(60)
def test_detected_promptly(system):
    """Within 100 ms of the cycle forming (the detector's settle time is
    10 ms); measured as the median of a few runs, in the same run."""
    a, b = _ring(system, 2)
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        with pytest.raises(manygil.DeadlockError):
            a.ping(3)
        times.append(time.monotonic() - t0)
    times.sort()
    from conftest import TIMEOUT_SCALE
    assert times[2] < 0.1 * max(1.0, TIMEOUT_SCALE), times
    a.stop()
    b.stop()


@pytest.mark.timeout(60)
def test_waits_with_a_timeout_are_never_broken(system):
    a, b = _ring(system, 2)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        a.ping_with_timeout(3, 1.0)
    assert time.monotonic() - t0 >= 0.9        # it ran to its timeout: not broken early
    a.stop()
    b.stop()


@pytest.mark.timeout(60)
def test_tells_are_never_a_deadlock(system):
    a, b = _ring(system, 2)
    assert a.tell_peer(20) == "told"
    assert a.ping(0) == "done" and b.ping(0) == "done"
    a.stop()
    b.stop()


@pytest.mark.timeout(60)
def test_a_third_actor_that_will_answer_is_no_deadlock(system):
    a = manygil.spawn(af.Peer, system=system, dedicated=True)
    c = manygil.spawn(af.Peer, system=system, dedicated=True)
    a.set_peer(c)
    assert a.ask_slow(0.5) == "slow"           # a waits on c while c sleeps in C
    a.stop()
    c.stop()


@pytest.mark.timeout(60)
def test_submit_then_other_work_is_no_deadlock(system):
    counter = manygil.spawn(af.Counter, system=system)
    fwd = manygil.spawn(af.Forwarder, system=system)
    for _ in range(5):
        assert fwd.submit_then_work(counter, 1) >= 1
    fwd.stop()
    counter.stop()
