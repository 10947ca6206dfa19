"""Actors (issue 15): spawn, the four call forms, mailboxes, errors, stop,
refs crossing interpreters, many actors per worker, exit."""
import asyncio
import concurrent.futures as cf
import threading
import time

import pytest

import manygil
from helpers import actor_funcs as af
from helpers.proc import describe, run_script, xfail_known_debug_exit_assert

WAIT = 30


@pytest.fixture(scope="module")
def system():
    with manygil.ActorSystem(workers=2) as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def default_system_stopped():
    """Stop the default system the tests made, so that its idle workers'
    waits do not outlive this module (other modules count the waits)."""
    yield
    from manygil import _actors
    if _actors._default is not None:
        assert _actors._default.stop(timeout=WAIT)
    assert not [w for w in manygil._core._activity() if len(w) > 11 and w[11]]


# ---- basics -------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_state_kept_across_calls_and_all_forms(system):
    ref = manygil.spawn(af.Counter, 10, system=system)
    assert ref.incr(5) == 15
    assert ref.incr.submit(5).result(WAIT) == 20
    assert asyncio.run(ref.incr.acall(5)) == 25
    assert ref.incr.tell(5) is None
    assert ref.incr(k=0) == 30
    assert ref.get() == 30
    assert ref.where() != manygil.get_current().id
    ref.stop()
    assert ref.join(WAIT)


@pytest.mark.timeout(60)
def test_kwargs_reach_init(system):
    ref = manygil.spawn(af.Counter, start=1, step=3, system=system)
    assert ref.incr() == 4
    ref.stop()


@pytest.mark.timeout(60)
def test_messages_run_in_arrival_order(system):
    ref = manygil.spawn(af.Log, system=system)
    for i in range(2000):
        ref.add.tell(i)
    futs = [ref.add_slowly.submit(i, 0) for i in range(2000, 2100)]
    assert [f.result(WAIT) for f in futs] == list(range(2000, 2100))
    assert ref.items_() == list(range(2100))
    ref.stop()


@pytest.mark.timeout(60)
def test_many_actors_share_a_worker(system):
    refs = [manygil.spawn(af.Counter, i, system=system) for i in range(10)]
    where = {r.where() for r in refs}
    assert len(where) == 2                     # round-robin over 2 workers
    assert [r.incr(1) for r in refs] == [i + 1 for i in range(10)]
    for r in refs:
        r.stop()


@pytest.mark.timeout(60)
def test_default_system_and_dedicated():
    ref = manygil.spawn(af.Counter, 1)
    own = manygil.spawn(af.Counter, 2, dedicated=True)
    other = manygil.spawn(af.Counter, 3)
    assert ref.incr() == 2 and own.incr() == 3
    here = own.where()
    assert here not in {other.where(), ref.where()}
    own.stop()
    assert own.join(WAIT)
    deadline = time.monotonic() + WAIT
    while here in {i.id for i in manygil.list_all()} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert here not in {i.id for i in manygil.list_all()}   # its interpreter ended
    ref.stop()
    other.stop()


@pytest.mark.timeout(60)
def test_bad_arguments():
    with pytest.raises(TypeError):
        manygil.spawn(42)
    with pytest.raises(ValueError):
        manygil.spawn(af.Counter, mailbox=-1)
    with pytest.raises(TypeError):
        manygil.spawn(af.Counter, system="no")
    with pytest.raises(ValueError):
        manygil.ActorSystem(workers=0)
    ref = manygil.spawn(af.Counter)
    with pytest.raises(ValueError):
        ref.incr(1, timeout=-1)
    with pytest.raises(TypeError):
        ref.incr(1, timeout="soon")
    with pytest.raises(AttributeError):       # the method does not exist there
        ref.nope()
    assert ref.incr(1) == 1                   # the actor goes on
    ref.stop()


# ---- errors -------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_exception_same_type_with_remote_traceback_and_actor_goes_on(system):
    ref = manygil.spawn(af.Faulty, system=system)
    with pytest.raises(KeyError) as ei:
        ref.fail("boom")
    assert "boom" in str(ei.value)
    assert "raise KeyError(msg)" in str(ei.value.__cause__)
    fut = ref.fail.submit("again")
    with pytest.raises(KeyError):
        fut.result(WAIT)
    with pytest.raises(KeyError):
        asyncio.run(ref.fail.acall("async"))
    with pytest.raises(manygil.ExecutionFailed, match="local class"):
        ref.unpicklable_error()
    with pytest.raises(manygil.NotShareableError):
        ref.unshareable_result()
    assert ref.ok() == 5                       # state kept through the failures
    ref.stop()


@pytest.mark.timeout(60)
def test_raising_init_makes_spawn_raise(system):
    with pytest.raises(ValueError, match="bad start") as ei:
        manygil.spawn(af.Faulty, True, system=system)
    assert "bad start" in str(ei.value.__cause__)
    ok = manygil.spawn(af.Faulty, system=system)    # the worker is fine
    assert ok.ok() == 1
    ok.stop()


@pytest.mark.timeout(60)
def test_unshareable_argument_raises_at_the_call(system):
    ref = manygil.spawn(af.Log, system=system)
    with pytest.raises(manygil.NotShareableError):
        ref.add(threading.Lock())
    with pytest.raises(manygil.NotShareableError):
        ref.add.tell(threading.Lock())
    ref.add(1)
    assert ref.items_() == [1]
    ref.stop()


# ---- timeouts and bounded mailboxes ---------------------------------------------

@pytest.mark.timeout(60)
def test_timeouts_on_every_form(system):
    ref = manygil.spawn(af.Sleeper, system=system)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ref.sleep(1.0, timeout=0.1)
    assert time.monotonic() - t0 < 0.9
    with pytest.raises(TimeoutError):
        ref.sleep.submit(1.0, timeout=0.1).result(WAIT)
    with pytest.raises(TimeoutError):
        asyncio.run(ref.sleep.acall(1.0, timeout=0.1))
    assert ref.sleep(0, timeout=WAIT) == 0     # a late answer is not taken for this one
    ref.stop()


@pytest.mark.timeout(60)
def test_bounded_mailbox_with_slow_actor(system):
    ref = manygil.spawn(af.Log, system=system, mailbox=2)
    first = ref.add_slowly.submit("a", 0.5)      # runs (took its credit out)
    time.sleep(0.1)
    ref.add_slowly.tell("b", 0)
    ref.add_slowly.tell("c", 0)                   # mailbox now full
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="mailbox full"):
        ref.add.tell("d", timeout=0.1)
    with pytest.raises(TimeoutError, match="mailbox full"):
        ref.add("d", timeout=0.1)
    with pytest.raises(TimeoutError, match="mailbox full"):
        ref.add.submit("d", timeout=0.1)
    assert time.monotonic() - t0 < 0.45 + 0.3
    ref.add.tell("e", timeout=WAIT)               # waits for room, then goes in
    assert first.result(WAIT) == "a"
    assert asyncio.run(ref.items_.acall()) == ["a", "b", "c", "e"]
    ref.stop()
    ref.join(WAIT)


# ---- stop -----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_stop_with_drain_lets_waiting_callers_finish(system):
    ref = manygil.spawn(af.Log, system=system)
    futs = [ref.add_slowly.submit(i, 0.02) for i in range(10)]
    ref.stop()
    assert [f.result(WAIT) for f in futs] == list(range(10))
    assert ref.join(WAIT)
    with pytest.raises(manygil.ActorStoppedError):
        ref.add(1)
    with pytest.raises(manygil.ActorStoppedError):
        ref.add.tell(1)
    ref.stop()                                    # harmless twice


@pytest.mark.timeout(60)
def test_stop_without_drain_fails_queued_callers(system):
    ref = manygil.spawn(af.Log, system=system)
    running = ref.add_slowly.submit("run", 0.4)
    time.sleep(0.1)
    queued = [ref.add_slowly.submit(i, 0) for i in range(5)]
    blocked = []
    t = threading.Thread(target=lambda: blocked.append(_outcome(ref.add_slowly, "sync", 0)))
    t.start()
    time.sleep(0.05)
    ref.stop(drain=False)
    assert running.result(WAIT) == "run"         # the running method finishes
    for f in queued:
        with pytest.raises(manygil.ActorStoppedError, match="without drain"):
            f.result(WAIT)
    t.join(WAIT)
    assert blocked and isinstance(blocked[0], manygil.ActorStoppedError)
    assert ref.join(WAIT)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except BaseException as e:
        return e


@pytest.mark.timeout(60)
def test_join_timeout_and_with_block(system):
    ref = manygil.spawn(af.Sleeper, system=system)
    ref.sleep.tell(0.5)
    assert ref.join(timeout=0.05) is False        # not stopped yet
    with manygil.spawn(af.Counter, system=system) as c:
        assert c.incr() == 1
    with pytest.raises(manygil.ActorStoppedError):
        c.incr()
    ref.stop()
    assert ref.join(WAIT)


@pytest.mark.timeout(60)
def test_system_stop_stops_its_actors_and_fails_later_calls():
    s = manygil.ActorSystem(workers=1)
    ref = manygil.spawn(af.Log, system=s)
    futs = [ref.add_slowly.submit(i, 0.01) for i in range(5)]
    assert s.stop(timeout=WAIT)
    assert [f.result(WAIT) for f in futs] == list(range(5))   # queued messages ran
    with pytest.raises(manygil.ActorStoppedError):
        ref.add(1)
    with pytest.raises(manygil.ActorStoppedError):
        manygil.spawn(af.Log, system=s)
    assert ref.join(WAIT)


@pytest.mark.timeout(60)
def test_callers_of_a_worker_that_ends_do_not_hang():
    s = manygil.ActorSystem(workers=1)
    ref = manygil.spawn(af.Sleeper, system=s)
    slow = ref.sleep.submit(0.3)
    before = [ref.sleep.submit(0) for _ in range(3)]
    s._workers[0].exit()              # the loop ends after the messages before EXIT ...
    after = [ref.sleep.submit(0) for _ in range(3)]
    blocked = []
    t = threading.Thread(target=lambda: blocked.append(_outcome(ref.sleep, 0)))
    t.start()
    assert slow.result(WAIT) == 0.3
    assert [f.result(WAIT) for f in before] == [0, 0, 0]
    # ... and the messages behind EXIT are dropped: their callers wake.
    for f in after:
        with pytest.raises(manygil.ActorStoppedError):
            f.result(WAIT)
    t.join(WAIT)
    assert isinstance(blocked[0], manygil.ActorStoppedError)
    assert s.stop(WAIT)
    with pytest.raises(manygil.ActorStoppedError):
        ref.sleep(0)


# ---- refs crossing interpreters -----------------------------------------------

@pytest.mark.timeout(60)
def test_refs_cross_as_arguments_results_and_to_other_actors(system):
    counter = manygil.spawn(af.Counter, system=system)
    fwd = manygil.spawn(af.Forwarder, counter, system=system)   # a ref as __init__ arg
    assert fwd.via(2) == 2
    assert fwd.via_ref(counter, 3) == 5
    back = fwd.ref_back(counter)                                  # a ref as a result
    assert back == counter and hash(back) == hash(counter)
    assert back.incr(1) == 6
    with manygil.create() as interp:
        assert interp.call(af.ref_in_task, counter, 4) == 10
    fwd.stop()
    counter.stop()


@pytest.mark.timeout(60)
def test_refs_through_channels_and_pool_tasks(system):
    counter = manygil.spawn(af.Counter, system=system)
    recv, send = manygil.create_channel()
    with manygil.create() as interp:
        t = threading.Thread(target=lambda: out.append(interp.call(af.recv_ref_and_call, recv, 7)))
        out = []
        t.start()
        send.send(counter)
        t.join(WAIT)
    assert out == [7]
    with manygil.InterpreterPoolExecutor(2) as pool:
        assert sorted(pool.map(af.ref_in_task, [counter] * 20, [1] * 20)) == list(range(8, 28))
    assert counter.get() == 27
    counter.stop()


@pytest.mark.timeout(60)
def test_submit_inside_an_actor_then_other_work(system):
    counter = manygil.spawn(af.Counter, system=system)
    fwd = manygil.spawn(af.Forwarder, system=system)
    assert fwd.submit_then_work(counter, 5) == 5
    fwd.stop()
    counter.stop()


@pytest.mark.timeout(90)
def test_ordering_under_concurrent_senders_from_several_interpreters(system):
    log = manygil.spawn(af.Log, system=system)
    n = 500
    interps = [manygil.create() for _ in range(3)]
    try:
        threads = [threading.Thread(target=it.call, args=(af.send_many, log, k, n))
                   for k, it in enumerate(interps)]
        for t in threads:
            t.start()
        for i in range(n):
            log.add.tell(("main", i))
        for t in threads:
            t.join(WAIT)
    finally:
        for it in interps:
            it.close()
    items = log.items_()
    for tag in ("main", 0, 1, 2):
        mine = [i for t, i in items if t == tag and i != "end"]
        assert mine == list(range(n)), tag        # each sender's order is kept
    assert len(items) == 4 * n + 3
    log.stop()


@pytest.mark.timeout(90)
def test_actor_to_actor_tells_keep_order(system):
    log = manygil.spawn(af.Log, system=system)
    senders = [manygil.spawn(af.Forwarder, system=system) for _ in range(2)]
    futs = [s.tell_many.submit(log, k, 300) for k, s in enumerate(senders)]
    assert [f.result(WAIT) for f in futs] == [300, 300]
    items = log.items_()
    for k in range(2):
        assert [i for t, i in items if t == k] == list(range(300))
    for a in senders + [log]:
        a.stop()


# ---- asyncio ----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_acall_many_concurrent_without_threads(system):
    ref = manygil.spawn(af.Counter, system=system)

    async def main():
        before = threading.active_count()
        coros = [ref.incr.acall(1) for _ in range(200)]
        got = await asyncio.gather(*coros)
        return sorted(got), threading.active_count() - before

    got, extra_threads = asyncio.run(main())
    assert got == list(range(1, 201))
    assert extra_threads == 0
    ref.stop()


# ---- scale ----------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_ten_thousand_actors_on_two_workers():
    with manygil.ActorSystem(workers=2) as s:
        refs = [manygil.spawn(af.Counter, i, system=s) for i in range(10_000)]
        futs = [r.incr.submit(1) for r in refs]
        assert [f.result(WAIT) for f in futs] == [i + 1 for i in range(10_000)]
        assert len({r.id for r in refs}) == 10_000


# ---- exit and Ctrl-C -------------------------------------------------------------

EXIT_WITH_OPEN_SYSTEMS = r"""
import manygil, time
from helpers import actor_funcs as af
if __name__ == "__main__":
    s = manygil.ActorSystem(workers=2)
    a = manygil.spawn(af.Counter, system=s)
    b = manygil.spawn(af.Sleeper)                   # the default system
    stuck = manygil.spawn(af.Sleeper, dedicated=True)
    stuck.sleep.tell(3600)                          # stuck in C at exit
    a.incr.tell(1)
    print("READY", a.incr(1), b.sleep(0), flush=True)
"""


@pytest.mark.timeout(90)
def test_open_systems_stop_at_exit_without_hang(tmp_path):
    t0 = time.monotonic()
    proc = run_script(tmp_path, EXIT_WITH_OPEN_SYSTEMS, timeout=60)
    xfail_known_debug_exit_assert(proc.returncode, proc.stderr)
    assert proc.returncode == 0, describe(proc)
    assert "READY 2 0" in proc.stdout, describe(proc)
    assert "Fatal" not in proc.stderr and "Exception ignored" not in proc.stderr, describe(proc)
    assert time.monotonic() - t0 < 30


CTRL_C_WAITING_ON_CALL = r"""
import os, signal, threading, time
import manygil
from helpers import actor_funcs as af
if __name__ == "__main__":
    ref = manygil.spawn(af.Sleeper)
    threading.Thread(target=lambda: (time.sleep(0.5), os.kill(os.getpid(), signal.SIGINT)),
                     daemon=True).start()
    t0 = time.monotonic()
    try:
        ref.sleep(5)
        print("NOT-INTERRUPTED", flush=True)
    except KeyboardInterrupt:
        print("OK-KI %.2f" % (time.monotonic() - t0), flush=True)
    print("USABLE", ref.sleep(0, timeout=30), flush=True)
"""


@pytest.mark.timeout(90)
def test_ctrl_c_while_main_waits_on_actor_call(tmp_path):
    proc = run_script(tmp_path, CTRL_C_WAITING_ON_CALL, timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "OK-KI" in proc.stdout and "USABLE 0" in proc.stdout, describe(proc)
    waited = float(proc.stdout.split("OK-KI ")[1].split()[0])
    assert waited < 4.0, describe(proc)        # promptly, not after the 5 s call


# ---- the safety net leaves idle workers alone ------------------------------------

@pytest.mark.timeout(60)
def test_watchdog_does_not_report_idle_workers_or_their_loop():
    reports = []
    with manygil.ActorSystem(workers=2) as s:
        ref = manygil.spawn(af.Counter, system=s)
        assert ref.incr() == 1
        with manygil.watchdog(warn_after=0.1, on_hang=reports.append):
            time.sleep(0.6)
        assert ref.incr() == 2
    assert reports == [], [r.description for r in reports]


@pytest.mark.timeout(60)
def test_interpreter_interrupt_leaves_the_dispatch_loop_alone(system):
    ref = manygil.spawn(af.Counter, system=system)
    where = ref.where()
    assert manygil.Interpreter(where).interrupt() == 0     # the loop is no exec/call
    assert ref.incr() == 1
    ref.stop()
