"""Closing channels: explicit close of either end, waking every waiter, and
handle lifetime (an end closes when its last handle goes, in every
interpreter, including when an interpreter holding handles is closed)."""
import gc
import time

import pytest

import manygil
from helpers import chan_remote, remote
from helpers.chan_util import start, start_in, timed, wait_blocked

PROMPT = 1.0  # generous bound on "at once" / "promptly"


# --- explicit close of the send end ----------------------------------------------

def test_close_send_end_receivers_drain_then_closed():
    r, s = manygil.create_channel()
    for i in range(3):
        s.send(i)
    s.close()
    assert [r.recv(timeout=1) for _ in range(3)] == [0, 1, 2]
    exc, _, elapsed = timed(r.recv, timeout=5)
    assert isinstance(exc, manygil.ChannelClosedError), exc
    assert elapsed < PROMPT, "recv on a closed, drained channel must not wait"
    with pytest.raises(manygil.ChannelClosedError):
        r.recv_nowait()
    with pytest.raises(manygil.ChannelClosedError):
        r.recv_nowait(default="d")


def test_send_after_own_close_is_closed_error():
    r, s = manygil.create_channel()
    s.close()
    with pytest.raises(manygil.ChannelClosedError):
        s.send(1)
    with pytest.raises(manygil.ChannelClosedError):
        s.send_nowait(1)
    del r


def test_close_send_end_from_subinterpreter(interp):
    r, s = manygil.create_channel()
    s.send("last")
    interp.call(chan_remote.close_end, s)
    assert r.recv(timeout=1) == "last"
    with pytest.raises(manygil.ChannelClosedError):
        r.recv(timeout=5)


# --- explicit close of the recv end ----------------------------------------------

def test_close_recv_end_senders_fail_at_once():
    r, s = manygil.create_channel()
    s.send("pending")
    r.close()
    exc, _, elapsed = timed(s.send, 1, timeout=5)
    assert isinstance(exc, manygil.ChannelClosedError), exc
    assert elapsed < PROMPT
    with pytest.raises(manygil.ChannelClosedError):
        s.send_nowait(1)
    with pytest.raises(manygil.ChannelClosedError):
        r.recv(timeout=1)


def test_close_recv_end_from_subinterpreter(interp):
    r, s = manygil.create_channel()
    interp.call(chan_remote.close_end, r)
    with pytest.raises(manygil.ChannelClosedError):
        s.send(1, timeout=5)


# --- closing twice -----------------------------------------------------------

def test_close_twice_is_harmless():
    r, s = manygil.create_channel()
    s.close()
    s.close()
    r.close()
    r.close()
    s.close()


# --- waiters wake on close --------------------------------------------------------

def _close_now(end):
    t = time.monotonic()
    end.close()
    return t


def test_blocked_recv_wakes_when_send_end_closes():
    r, s = manygil.create_channel()
    receiver = start(r.recv)
    wait_blocked(r, "recv")
    closed_at = _close_now(s)
    with pytest.raises(manygil.ChannelClosedError):
        receiver.outcome(timeout=10)
    assert receiver.finished_at - closed_at < PROMPT


def test_blocked_send_wakes_when_recv_end_closes():
    r, s = manygil.create_channel(1)
    s.send(0)
    sender = start(s.send, 1)
    wait_blocked(s, "send")
    closed_at = _close_now(r)
    with pytest.raises(manygil.ChannelClosedError):
        sender.outcome(timeout=10)
    assert sender.finished_at - closed_at < PROMPT


def test_every_waiter_wakes_on_close(interp, interp2):
    """Receivers blocked in two main threads and two subinterpreters all wake
    with ChannelClosedError when the send end is closed."""
    r, s = manygil.create_channel()
    local = [start(chan_remote.recv_outcome, r) for _ in range(2)]
    remote_ = [start_in(i, chan_remote.recv_outcome, r) for i in (interp, interp2)]
    wait_blocked(r, "recv", count=4)
    s.close()
    for waiter in local + remote_:
        assert waiter.outcome(timeout=10) == ("error", "ChannelClosedError")


def test_every_blocked_sender_wakes_on_recv_close(interp):
    r, s = manygil.create_channel(1)
    s.send(0)
    senders = [start(chan_remote.send_outcome, s, i) for i in range(2)]
    senders.append(start_in(interp, chan_remote.send_outcome, s, "x"))
    wait_blocked(s, "send", count=3)
    r.close()
    for waiter in senders:
        assert waiter.outcome(timeout=10) == ("error", "ChannelClosedError")


# --- handle lifetime --------------------------------------------------------------

def test_dropping_last_send_handle_closes_send_end():
    """``del s`` (the only handle) closes sending: receivers drain, then get
    ChannelClosedError at once instead of waiting for the timeout."""
    r, s = manygil.create_channel()
    s.send("a")
    s.send("b")
    del s
    gc.collect()
    assert r.recv(timeout=1) == "a"
    assert r.recv(timeout=1) == "b"
    exc, _, elapsed = timed(r.recv, timeout=1)
    assert isinstance(exc, manygil.ChannelClosedError), exc
    assert elapsed < 0.5


def test_dropping_last_recv_handle_closes_recv_end():
    r, s = manygil.create_channel()
    del r
    gc.collect()
    with pytest.raises(manygil.ChannelClosedError):
        s.send(1, timeout=1)


def test_copy_of_handle_keeps_end_open():
    """Two handles to the send end (one came back from an interpreter): dropping
    one leaves the end open."""
    r, s = manygil.create_channel()
    q = manygil.create_queue()
    q.put(s)
    s_copy = q.get(timeout=1)
    assert s_copy == s
    del s
    gc.collect()
    s_copy.send("still open")
    assert r.recv(timeout=1) == "still open"
    with pytest.raises(manygil.ChannelTimeoutError):
        r.recv(timeout=0.1)


def test_handle_held_by_interpreter_keeps_end_open(interp):
    r, s = manygil.create_channel()
    interp.prepare_main(out=s)
    del s
    gc.collect()
    with pytest.raises(manygil.ChannelTimeoutError):
        r.recv(timeout=0.2)
    interp.call(chan_remote.send_via_main_global, "out", "from B")
    assert r.recv(timeout=1) == "from B"


@pytest.mark.parametrize("how", ["prepare_main", "call_argument"])
def test_closing_interpreter_with_only_send_end_wakes_receiver(how):
    """Main gives the send end to interpreter B and drops its own handle; a
    thread in main blocked in recv() wakes with ChannelClosedError when B is
    closed."""
    r, s = manygil.create_channel()
    b = manygil.create()
    try:
        if how == "prepare_main":
            b.prepare_main(out=s)
        else:
            b.call(remote.set_main, "out", s)
        del s
        gc.collect()
        receiver = start(r.recv, timeout=10)
        wait_blocked(r, "recv")
        assert receiver.is_alive(), "B's handle must keep the send end open"
    finally:
        b.close()
    with pytest.raises(manygil.ChannelClosedError):
        receiver.outcome(timeout=10)
    assert receiver.finished_at is not None


def test_interpreter_dropping_its_handle_closes_end(interp):
    r, s = manygil.create_channel()
    interp.prepare_main(out=s)
    del s
    gc.collect()
    receiver = start(r.recv, timeout=10)
    wait_blocked(r, "recv")
    interp.call(chan_remote.drop_main_global, "out")
    with pytest.raises(manygil.ChannelClosedError):
        receiver.outcome(timeout=10)


def test_closing_interpreter_with_only_recv_end_fails_senders():
    r, s = manygil.create_channel(1)
    b = manygil.create()
    try:
        b.prepare_main(inbox=r)
        del r
        gc.collect()
        s.send(0)
        sender = start(s.send, 1, timeout=10)
        wait_blocked(s, "send")
        assert sender.is_alive()
    finally:
        b.close()
    with pytest.raises(manygil.ChannelClosedError):
        sender.outcome(timeout=10)


def test_items_sent_by_destroyed_interpreter_are_delivered():
    """Nothing is lost: B sends 3 items and is closed; main receives all 3,
    then (B held the only send handle) ChannelClosedError."""
    r, s = manygil.create_channel()
    b = manygil.create()
    try:
        b.prepare_main(out=s)
        del s
        gc.collect()
        b.exec("out.send({'n': 1})\nout.send([2, 2])\nout.send('three')")
    finally:
        b.close()
    assert r.recv(timeout=1) == {"n": 1}
    assert r.recv(timeout=1) == [2, 2]
    assert r.recv(timeout=1) == "three"
    with pytest.raises(manygil.ChannelClosedError):
        r.recv(timeout=1)


def test_values_sent_by_destroyed_interpreter_are_intact():
    """Items created in B (big ints, nested containers, picklable objects)
    survive B's destruction."""
    r, s = manygil.create_channel()
    items = [2**300, {"k": [b"x" * 100, ("t", 1.5)]}, remote.Pair("a", [1]), "é" * 50]
    with manygil.create() as b:
        b.call(chan_remote.send_all, s, items)
    gc.collect()
    assert [r.recv(timeout=1) for _ in items] == items


def test_blocked_recv_in_subinterpreter_wakes_on_close(interp):
    r, s = manygil.create_channel()
    waiter = start_in(interp, chan_remote.recv_outcome, r)
    wait_blocked(r, "recv")
    s.close()
    assert waiter.outcome(timeout=10) == ("error", "ChannelClosedError")


def test_receiver_in_other_interpreter_sees_closed_channel(interp):
    """The recv end of a channel whose send side is closed, passed to another
    interpreter, drains there and then reports ChannelClosedError."""
    r, s = manygil.create_channel()
    s.send("left over")
    s.close()
    assert interp.call(chan_remote.recv_outcome, r, 1) == ("item", "left over")
    assert interp.call(chan_remote.recv_outcome, r, 1) == ("error", "ChannelClosedError")
