"""The seed channel API on plain int ids: ``manygil.interpreters.create_channel``,
``channel_send``, ``channel_recv``, ``channel_close`` (used the way articles
do, with ids embedded in code via f-strings)."""
import gc
import re
import threading
import time

import pytest

import manygil
from manygil import interpreters as I
from helpers import chan_remote, remote
from helpers.chan_util import start, start_in, timed, wait_until
from helpers.proc import TIMEOUT_SCALE

# "At once": well under any timeout in play; debug and sanitizer builds run
# several times slower (and a first import in an interpreter is slow there).
PROMPT = 1.0 * TIMEOUT_SCALE
UNKNOWN_ID = 10**9 + 7


def waiting_on(chan_id, kind, count=1, timeout=5.0):
    """True once ``count`` waits on ``chan_id`` are recorded (best effort)."""
    try:
        return wait_until(lambda: sum(1 for w in manygil._core._waits()
                                      if w[2] == chan_id and w[3] == kind) >= count,
                          timeout)
    except Exception:  # noqa: BLE001 - waits table tested in test_channels.py
        time.sleep(0.3)
        return False


@pytest.fixture
def chan():
    send_id, recv_id = I.create_channel()
    try:
        yield send_id, recv_id
    finally:
        for cid in (send_id, recv_id):
            try:
                I.channel_close(cid)
            except manygil.ChannelError:
                pass


def test_create_channel_returns_two_distinct_ints(chan):
    send_id, recv_id = chan
    assert type(send_id) is int and type(recv_id) is int
    assert send_id != recv_id
    other = I.create_channel()
    try:
        assert len({send_id, recv_id, *other}) == 4
    finally:
        for cid in other:
            I.channel_close(cid)


def test_send_recv_in_main(chan):
    send_id, recv_id = chan
    I.channel_send(send_id, {"a": 1})
    I.channel_send(send_id, [2])
    assert I.channel_recv(recv_id) == {"a": 1}
    assert I.channel_recv(recv_id, timeout=1) == [2]


def test_seed_example_pairing_across_two_interpreters(chan, tmp_path):
    """The articles' example: one interpreter sends a dict with channel_send,
    another receives it with channel_recv, each via exec() in its own thread,
    ids embedded with f-strings."""
    send_id, recv_id = chan
    out = tmp_path / "got.txt"
    with manygil.create() as a, manygil.create() as b:
        receiver = start(b.exec, (
            "from manygil import interpreters as I\n"
            f"obj = I.channel_recv({recv_id}, timeout=10)\n"
            f"open({str(out)!r}, 'w').write(repr(sorted(obj.items())))\n"))
        waiting_on(recv_id, "recv")
        sender = start(a.exec, (
            "from manygil import interpreters as I\n"
            f"I.channel_send({send_id}, {{'a': 1, 'b': [2, 3]}})\n"))
        sender.outcome()
        receiver.outcome()
    assert out.read_text() == repr([("a", 1), ("b", [2, 3])])


def test_ids_work_as_call_arguments(chan, interp, interp2):
    send_id, recv_id = chan
    receiver = start_in(interp2, chan_remote.seed_recv, recv_id)
    waiting_on(recv_id, "recv")
    assert interp.call(chan_remote.seed_send, send_id, {"x": [1, 2**100]}) is True
    assert receiver.outcome() == {"x": [1, 2**100]}


def test_both_sides_receiving_wrong_end_and_close(chan):
    """Two interpreters both receive on one channel; nobody sends.  One of them
    mistakenly calls channel_recv(send_id): ValueError at once.  The other
    stays blocked until main closes the send side, then gets
    ChannelClosedError."""
    send_id, recv_id = chan
    with manygil.create() as a, manygil.create() as b:
        waiter = start(a.exec, (
            "from manygil import interpreters as I\n"
            f"I.channel_recv({recv_id})\n"))
        waiting_on(recv_id, "recv")
        exc, _, elapsed = timed(b.exec, (
            "from manygil import interpreters as I\n"
            f"I.channel_recv({send_id})\n"))
        assert isinstance(exc, manygil.ExecutionFailed), exc
        assert exc.excinfo.type.__name__ == "ValueError"
        assert re.search(r"send", exc.excinfo.msg, re.I), exc.excinfo.msg
        assert elapsed < PROMPT
        assert waiter.is_alive(), "nobody sent: the receiver must still wait"
        I.channel_close(send_id)
        with pytest.raises(manygil.ExecutionFailed) as info:
            waiter.outcome(timeout=10)
        assert info.value.excinfo.type.__name__ == "ChannelClosedError"


def test_timeout_two_on_both_sides_pairs_up(chan):
    send_id, recv_id = chan
    with manygil.create() as a, manygil.create() as b:
        receiver = start(b.exec, (
            "from manygil import interpreters as I\n"
            f"got = I.channel_recv({recv_id}, timeout=2)\n"))
        waiting_on(recv_id, "recv")
        sender = start(a.exec, (
            "from manygil import interpreters as I\n"
            f"I.channel_send({send_id}, {{'ok': True}}, timeout=2)\n"))
        sender.outcome()
        receiver.outcome()
        assert b.call(remote.get_main, "got") == {"ok": True}


def test_recv_timeout_point_three_seconds(chan):
    _send_id, recv_id = chan
    exc, _, elapsed = timed(I.channel_recv, recv_id, timeout=0.3)
    assert isinstance(exc, manygil.ChannelTimeoutError), exc
    assert isinstance(exc, TimeoutError)
    assert 0.28 <= elapsed < 0.3 + 0.25, elapsed


def test_recv_timeout_in_subinterpreter(chan, interp):
    _send_id, recv_id = chan
    with pytest.raises(manygil.ExecutionFailed) as info:
        interp.exec("from manygil import interpreters as I\n"
                    f"I.channel_recv({recv_id}, timeout=0.05)\n")
    assert info.value.excinfo.type.__name__ == "ChannelTimeoutError"


# --- close ----------------------------------------------------------------------

def test_close_send_id_receivers_drain_then_closed(chan):
    send_id, recv_id = chan
    I.channel_send(send_id, 1)
    I.channel_send(send_id, 2)
    I.channel_close(send_id)
    assert I.channel_recv(recv_id, timeout=1) == 1
    assert I.channel_recv(recv_id, timeout=1) == 2
    exc, _, elapsed = timed(I.channel_recv, recv_id, timeout=5)
    assert isinstance(exc, manygil.ChannelClosedError), exc
    assert elapsed < PROMPT
    with pytest.raises(manygil.ChannelClosedError):
        I.channel_send(send_id, 3)


def test_close_recv_id_senders_fail(chan):
    send_id, recv_id = chan
    I.channel_close(recv_id)
    exc, _, elapsed = timed(I.channel_send, send_id, 1, timeout=5)
    assert isinstance(exc, manygil.ChannelClosedError), exc
    assert elapsed < PROMPT


def test_close_twice_is_harmless(chan):
    send_id, recv_id = chan
    I.channel_close(send_id)
    I.channel_close(send_id)
    other_send, other_recv = I.create_channel()
    I.channel_close(other_recv)
    I.channel_close(other_recv)
    I.channel_close(other_send)


def test_close_again_after_both_sides_closed_is_harmless(chan):
    """Closing twice is harmless also once both sides are closed (the object
    API's close() behaves so; the int ids should too)."""
    send_id, recv_id = chan
    I.channel_close(send_id)
    I.channel_close(recv_id)
    I.channel_close(recv_id)
    I.channel_close(send_id)


def test_close_from_subinterpreter_wakes_main_receiver(chan, interp):
    send_id, recv_id = chan
    receiver = start(I.channel_recv, recv_id, timeout=10)
    waiting_on(recv_id, "recv")
    interp.exec(f"from manygil import interpreters as I\nI.channel_close({send_id})")
    with pytest.raises(manygil.ChannelClosedError):
        receiver.outcome(timeout=10)


def test_int_ids_keep_channel_open_without_handles(chan):
    """No handle counting for ints: the channel stays open after the
    interpreters that used it are gone and after garbage collection."""
    send_id, recv_id = chan
    with manygil.create() as a:
        a.exec(f"from manygil import interpreters as I\nI.channel_send({send_id}, 'kept')")
    with manygil.create() as b:
        b.exec(f"from manygil import interpreters as I\nx = I.channel_recv({recv_id}, timeout=5)")
    gc.collect()
    I.channel_send(send_id, "still open")
    assert I.channel_recv(recv_id, timeout=1) == "still open"
    with pytest.raises(manygil.ChannelTimeoutError):
        I.channel_recv(recv_id, timeout=0.1)


def test_items_from_destroyed_interpreter_are_delivered(chan):
    send_id, recv_id = chan
    with manygil.create() as a:
        a.exec("from manygil import interpreters as I\n"
               f"for i in range(3):\n    I.channel_send({send_id}, {{'i': i}})\n")
    assert [I.channel_recv(recv_id, timeout=1) for _ in range(3)] == [{"i": i} for i in range(3)]


# --- bad inputs --------------------------------------------------------------------

def test_wrong_end_is_value_error(chan):
    send_id, recv_id = chan
    exc, _, elapsed = timed(I.channel_recv, send_id)
    assert type(exc) is ValueError, exc
    assert re.search(r"send", str(exc), re.I), str(exc)
    assert elapsed < PROMPT
    exc, _, elapsed = timed(I.channel_send, recv_id, 1)
    assert type(exc) is ValueError, exc
    assert re.search(r"recv|receiv", str(exc), re.I), str(exc)
    assert elapsed < PROMPT
    I.channel_send(send_id, "ok")
    assert I.channel_recv(recv_id, timeout=1) == "ok", "a wrong-end call must not enqueue"


def test_unknown_id_is_not_found():
    with pytest.raises(manygil.ChannelNotFoundError):
        I.channel_send(UNKNOWN_ID, 1)
    with pytest.raises(manygil.ChannelNotFoundError):
        I.channel_recv(UNKNOWN_ID, timeout=0.1)
    with pytest.raises(manygil.ChannelNotFoundError):
        I.channel_close(UNKNOWN_ID)


@pytest.mark.parametrize("bad", ["1", 1.0, None, [1]])
def test_non_int_id_is_type_error(bad):
    with pytest.raises(TypeError):
        I.channel_send(bad, 1)
    with pytest.raises(TypeError):
        I.channel_recv(bad, timeout=0.1)
    with pytest.raises(TypeError):
        I.channel_close(bad)


def test_negative_timeout_is_value_error(chan):
    send_id, recv_id = chan
    with pytest.raises(ValueError):
        I.channel_recv(recv_id, timeout=-1)
    with pytest.raises(ValueError):
        I.channel_send(send_id, 1, timeout=-0.5)


def test_unshareable_is_not_shareable_error(chan):
    send_id, recv_id = chan
    with pytest.raises(manygil.NotShareableError):
        I.channel_send(send_id, threading.Lock())
    I.channel_send(send_id, "next")
    assert I.channel_recv(recv_id, timeout=1) == "next"
    with pytest.raises(manygil.ChannelTimeoutError):
        I.channel_recv(recv_id, timeout=0.05)


def test_seed_exports():
    for name in ("ChannelError", "ChannelNotFoundError", "ChannelClosedError",
                 "ChannelEmptyError", "ChannelTimeoutError"):
        assert getattr(I, name) is getattr(manygil, name)
