"""Actors (issue 15), hangs: ActorRef.interrupt(), and the watchdog and
stack dumps naming the actor and the method that runs."""
import time

import pytest

import manygil
from helpers import actor_funcs as af
from helpers.actor_util import method_runs, wait_running

WAIT = 30


@pytest.fixture
def system():
    """One worker: actors share it, so an interrupt meant for one must not
    land in another's method."""
    with manygil.ActorSystem(workers=1) as s:
        yield s
    assert s.stop(timeout=WAIT)


def spinning(system):
    """A Spinner on system, running spin(60) now: (its ref, the call's future)."""
    ref = manygil.spawn(af.Spinner, system=system)
    fut = ref.spin.submit(60)
    wait_running(ref)
    return ref, fut


@pytest.mark.timeout(60)
def test_interrupt_stops_the_running_method_and_the_actor_goes_on(system):
    ref, fut = spinning(system)
    t0 = time.monotonic()
    assert ref.interrupt() is True
    with pytest.raises(KeyboardInterrupt):
        fut.result(WAIT)
    assert time.monotonic() - t0 < 10
    # The state is as the method left it; the next message runs.
    assert ref.counts() == (1, 0)
    assert ref.spin(0) == "spun"
    assert ref.counts() == (2, 1)
    assert not method_runs(ref)


@pytest.mark.timeout(60)
def test_interrupt_when_nothing_runs_does_nothing(system):
    ref = manygil.spawn(af.Spinner, system=system)
    assert ref.interrupt() is False
    assert ref.spin(0) == "spun"            # no interrupt was kept for later
    assert ref.counts() == (1, 1)


@pytest.mark.timeout(60)
def test_interrupt_lands_only_in_its_own_actors_method(system):
    busy = manygil.spawn(af.Spinner, system=system)
    other = manygil.spawn(af.Counter, system=system)
    fut = busy.spin.submit(60)
    wait_running(busy)
    queued = other.incr.submit(5)           # waits behind busy's method
    assert other.interrupt() is False       # other runs nothing: busy goes on
    time.sleep(0.2)
    assert not fut.done() and not queued.done()
    assert busy.interrupt() is True
    with pytest.raises(KeyboardInterrupt):
        fut.result(WAIT)
    assert queued.result(WAIT) == 5         # other's queued message untouched
    assert other.get() == 5


@pytest.mark.timeout(60)
def test_interrupt_with_another_exception_and_bad_classes(system):
    ref, fut = spinning(system)
    assert ref.interrupt(TimeoutError) is True
    with pytest.raises(TimeoutError):
        fut.result(WAIT)

    class Mine(Exception):
        pass
    for bad in (Mine, ValueError("x"), "KeyboardInterrupt", int, None):
        with pytest.raises(TypeError, match="built-in exception class"):
            ref.interrupt(bad)
    assert ref.spin(0) == "spun"


@pytest.mark.timeout(60)
def test_interrupt_from_another_interpreter(system):
    ref, fut = spinning(system)
    with manygil.create() as it:
        assert it.call(af.interrupt_ref, ref) is True
    with pytest.raises(KeyboardInterrupt):
        fut.result(WAIT)
    assert ref.spin(0) == "spun"


@pytest.mark.timeout(60)
def test_interrupted_tell_is_reported_and_the_actor_goes_on(system, capfd):
    ref = manygil.spawn(af.Spinner, system=system)
    ref.spin.tell(60)
    wait_running(ref)
    assert ref.interrupt() is True
    assert ref.counts() == (1, 0)           # runs after the interrupted tell
    err = capfd.readouterr().err
    assert "spin() sent with tell() raised" in err and "KeyboardInterrupt" in err


@pytest.mark.timeout(120)
def test_interrupts_never_land_in_a_later_message(system):
    """Interrupts racing short methods: each lands in the method it was
    sent to or nowhere -- never in the loop between messages (the worker
    would end) nor in the next message (it would fail a call that was
    never interrupted while running)."""
    ref = manygil.spawn(af.Spinner, system=system)
    bystander = manygil.spawn(af.Counter, system=system)
    interrupted = 0
    for i in range(300):
        # 0 to 19 ms: an interrupt reaches the worker after the switch
        # interval (5 ms) of its GIL, so shorter methods end first.
        fut = ref.spin.submit(0.001 * (i % 20))
        nxt = bystander.incr.submit()
        while not fut.done():
            ref.interrupt()
        try:
            assert fut.result(WAIT) == "spun"
        except KeyboardInterrupt:
            interrupted += 1
        assert nxt.result(WAIT) == i + 1    # the bystander is never hit
    started, finished = ref.counts()
    assert started == 300 and started == finished + interrupted
    assert interrupted > 0


@pytest.mark.timeout(60)
def test_stack_dumps_name_the_actor_and_its_method(system):
    ref, fut = spinning(system)
    text = manygil.format_stacks()
    assert f"runs actor method {ref.label}.spin()" in text, text
    assert "in spin" in text                # the method's own frame
    assert ref.interrupt()
    with pytest.raises(KeyboardInterrupt):
        fut.result(WAIT)


@pytest.mark.timeout(60)
def test_watchdog_reports_a_long_method_naming_the_actor(system):
    ref = manygil.spawn(af.Spinner, system=system)
    reports = []
    with manygil.watchdog(warn_after=0.2, on_hang=reports.append):
        fut = ref.spin.submit(60)
        deadline = time.monotonic() + WAIT
        while not reports and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ref.interrupt()
        with pytest.raises(KeyboardInterrupt):
            fut.result(WAIT)
    assert len(reports) == 1, [r.description for r in reports]
    r = reports[0]
    assert r.kind == "actor"
    assert f"runs actor method {ref.label}.spin()" in r.description
    assert "in spin" in r.stacks
    # Short methods, however many, are not reported.
    reports.clear()
    with manygil.watchdog(warn_after=0.3, on_hang=reports.append):
        for _ in range(50):
            ref.spin(0.01)
    assert reports == []
