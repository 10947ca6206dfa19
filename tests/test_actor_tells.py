"""Tells on the worker's fast path (_core._actor_next runs them in C until
another message comes): order, failures, stop(drain=False), the label a
method's own calls carry, and the fast path's bad inputs."""
import pytest

import manygil
from manygil import _core
from helpers import actor_funcs as af
from helpers.actor_util import wait_running

WAIT = 30
pytestmark = pytest.mark.timeout(120)


def test_tells_and_calls_to_two_actors_keep_each_actor_s_order(one_worker_system):
    a = manygil.spawn(af.Log, system=one_worker_system)
    b = manygil.spawn(af.Log, system=one_worker_system)
    for i in range(2000):
        a.add.tell(("a", i))
        b.add.tell(item=("b", i))               # kwargs: the fast path too
        if i % 250 == 0:
            assert a.items_()[-1] == ("a", i)   # a call sees every tell before it
    assert a.items_() == [("a", i) for i in range(2000)]
    assert b.items_() == [("b", i) for i in range(2000)]


def test_a_raising_tell_in_a_stream_is_reported_and_the_stream_goes_on(one_worker_system, capfd):
    f = manygil.spawn(af.Faulty, system=one_worker_system)
    for i in range(300):
        if i % 100 == 50:
            f.fail.tell(f"boom{i}")
        else:
            f.ok.tell()
    assert f.ok() == 301                        # every tell ran, the raising ones too
    err = capfd.readouterr().err
    for i in (50, 150, 250):
        assert f"KeyError: 'boom{i}'" in err
    assert err.count("fail() sent with tell() raised") == 3


class Recorder:
    """Each note() sends 1 to a channel (by its plain id): what ran shows
    even after the actor stopped."""

    def note(self, send_id):
        from manygil import _core
        _core._channel_send(send_id, 1)


def test_stop_without_drain_drops_the_tells_queued_behind_a_busy_worker(one_worker_system):
    gate_send, gate_recv = _core._channel_ids()
    notes_send, notes_recv = _core._channel_ids()
    blocker = manygil.spawn(af.Sleeper, system=one_worker_system)
    victim = manygil.spawn(Recorder, system=one_worker_system)
    other = manygil.spawn(af.Counter, system=one_worker_system)
    try:
        victim.note(notes_send)                       # one before the worker blocks
        busy = blocker.block_on.submit(gate_recv)     # the worker waits on the gate,
        wait_running(blocker)       # already: the drop is read by _actor_next, not before
        for _ in range(500):
            victim.note.tell(notes_send)
            other.incr.tell()
        victim.stop(drain=False)
        _core._channel_send(gate_send, "go")
        assert busy.result(WAIT) == "go"
        assert victim.join(timeout=WAIT)
        assert other.get() == 500                     # the other actor's tells all ran
        ran = 0
        while True:
            try:
                _core._channel_recv(notes_recv, 0)
            except (manygil.ChannelEmptyError, manygil.ChannelTimeoutError):
                break
            ran += 1
        assert ran == 1, f"{ran - 1} tells queued before stop(drain=False) ran"
        with pytest.raises(manygil.ActorStoppedError):
            victim.note(notes_send)
    finally:
        for end in (gate_send, gate_recv, notes_send, notes_recv):
            _core._channel_close(end)


class Asker:
    """Reports what _core._actor_current() says inside its own methods."""

    def current(self):
        from manygil import _core
        return _core._actor_current()

    def current_via_tell(self, log):
        from manygil import _core
        log.add.tell(_core._actor_current())


def test_actor_current_names_the_method_running_here(one_worker_system):
    assert _core._actor_current() is None             # not in an actor method
    ref = manygil.spawn(Asker, system=one_worker_system)
    assert ref.current() == (ref.label, "current")
    log = manygil.spawn(af.Log, system=one_worker_system)
    ref.current_via_tell.tell(log)
    assert ref.current() == (ref.label, "current")    # after the tell ran
    assert log.items_() == [(ref.label, "current_via_tell")]


def test_actor_next_rejects_bad_arguments():
    recv, send = _core.create_channel()
    try:
        with pytest.raises(TypeError, match="takes 3 arguments"):
            _core._actor_next(recv, recv)
        with pytest.raises(TypeError, match="actors must be a dict"):
            _core._actor_next(recv, recv, [])
        send.send("x")
        with pytest.raises(TypeError, match="expected a RecvChannel"):
            _core._actor_next(send, recv, {})
        with pytest.raises(TypeError, match="expected a RecvChannel"):
            _core._actor_next(recv, send, {})
        assert recv.recv_nowait() == "x"                # checked before anything was taken
        send.send((0, 1, "m", (), None, None))          # a tell to no actor here: handed back
        assert _core._actor_next(recv, recv, {}) == (0, 1, "m", (), None, None)
        send.close()
        with pytest.raises(manygil.ChannelClosedError):
            _core._actor_next(recv, recv, {})
    finally:
        recv.close()
