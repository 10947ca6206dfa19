"""Cross-interpreter queues: ``manygil.create_queue`` behaves like
``queue.Queue`` and is shareable like channel ends."""
import queue
import threading

import pytest

import manygil
from helpers import chan_remote, remote
from helpers.chan_util import start, start_in, timed, wait_blocked
from helpers.timing import max_gap_while



def test_create_queue_type_and_identity():
    q = manygil.create_queue()
    q2 = manygil.create_queue(3)
    assert isinstance(q, manygil.Queue)
    assert type(q.id) is int and q.id != q2.id
    assert q == q and q != q2
    assert hash(q) == hash(q)
    assert len({q, q2, q}) == 2
    assert (q == "queue") is False


def test_exception_classes():
    assert issubclass(manygil.QueueEmpty, queue.Empty)
    assert issubclass(manygil.QueueFull, queue.Full)
    q = manygil.create_queue(1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)


def test_fifo():
    q = manygil.create_queue()
    for i in range(100):
        q.put(i)
    assert [q.get() for _ in range(100)] == list(range(100))


def test_qsize_empty_full():
    q = manygil.create_queue(2)
    assert (q.qsize(), q.empty(), q.full()) == (0, True, False)
    q.put("a")
    assert (q.qsize(), q.empty(), q.full()) == (1, False, False)
    q.put("b")
    assert (q.qsize(), q.empty(), q.full()) == (2, False, True)
    q.get()
    assert (q.qsize(), q.empty(), q.full()) == (1, False, False)


def test_unbounded_is_never_full():
    q = manygil.create_queue()
    for i in range(5_000):
        q.put_nowait(i)
    assert q.qsize() == 5_000
    assert q.full() is False


def test_nowait_and_block_false():
    q = manygil.create_queue(1)
    with pytest.raises(manygil.QueueEmpty):
        q.get_nowait()
    with pytest.raises(manygil.QueueEmpty):
        q.get(block=False)
    q.put_nowait("x")
    with pytest.raises(manygil.QueueFull):
        q.put_nowait("y")
    exc, _, elapsed = timed(q.put, "y", block=False)
    assert isinstance(exc, manygil.QueueFull), exc
    assert elapsed < 0.1
    assert q.get(block=False) == "x"
    assert q.empty()


def test_get_timeout_raises_queue_empty_after_timeout():
    q = manygil.create_queue()
    exc, _, elapsed = timed(q.get, timeout=0.2)
    assert isinstance(exc, manygil.QueueEmpty), exc
    assert 0.18 <= elapsed < 0.2 + 0.25, elapsed


def test_put_timeout_raises_queue_full_after_timeout():
    q = manygil.create_queue(1)
    q.put(1)
    exc, _, elapsed = timed(q.put, 2, timeout=0.2)
    assert isinstance(exc, manygil.QueueFull), exc
    assert 0.18 <= elapsed < 0.2 + 0.25, elapsed
    assert q.qsize() == 1 and q.get_nowait() == 1


@pytest.mark.parametrize("timeout", [-1, -0.01])
def test_negative_timeout_is_value_error(timeout):
    q = manygil.create_queue()
    with pytest.raises(ValueError):
        q.get(timeout=timeout)
    with pytest.raises(ValueError):
        q.put(1, timeout=timeout)


def test_values_are_copies_and_round_trip(interp):
    q = manygil.create_queue()
    items = [2**150, "ü" * 10, b"\x00" * 50, {"a": [1, (2, 3)]}, remote.Pair(1, 2), None]
    value = [1, 2]
    q.put(value)
    value.append(3)
    assert q.get() == [1, 2]
    assert interp.call(chan_remote.queue_put_all, q, items) == len(items)
    assert [q.get(timeout=1) for _ in items] == items


def test_unshareable_is_not_shareable_error():
    q = manygil.create_queue()
    with pytest.raises(manygil.NotShareableError):
        q.put(threading.Lock())
    assert q.empty()
    q.put("ok")
    assert q.get_nowait() == "ok"


# --- sharing -------------------------------------------------------------------

def test_queue_as_call_argument_and_back(interp):
    q = manygil.create_queue()
    assert interp.call(chan_remote.end_info, q) == ("Queue", q.id)
    back = interp.call(remote.identity, q)
    assert back == q and hash(back) == hash(q)
    back.put("via returned handle")
    assert q.get(timeout=1) == "via returned handle"


def test_queue_via_prepare_main(interp):
    q = manygil.create_queue()
    q.put(21)
    interp.prepare_main(q=q)
    interp.exec("q.put(q.get(timeout=10) * 2)")
    assert q.get(timeout=1) == 42


def test_queue_through_a_channel(interp):
    r, s = manygil.create_channel()
    q = manygil.create_queue()
    s.send(q)
    interp.prepare_main(inbox=r)
    interp.exec("inbox.recv(timeout=10).put('through a channel')")
    assert q.get(timeout=1) == "through a channel"


def test_state_seen_from_other_interpreter(interp):
    q = manygil.create_queue(2)
    q.put(1)
    assert interp.call(chan_remote.queue_state, q) == (1, False, False)
    q.put(2)
    assert interp.call(chan_remote.queue_state, q) == (2, False, True)


# --- blocking across interpreters ----------------------------------------------

def test_bounded_put_blocks_until_get_in_other_interpreter(interp):
    q = manygil.create_queue(1)
    q.put("first")
    putter = start(q.put, "second", timeout=10)
    wait_blocked(q, "send")
    assert putter.is_alive(), "put() on a full queue returned without room"
    assert interp.call(chan_remote.queue_get_one, q) == "first"
    putter.outcome()
    assert q.get(timeout=1) == "second"


def test_get_blocks_until_put_in_other_interpreter(interp):
    q = manygil.create_queue()
    getter = start(q.get, timeout=10)
    wait_blocked(q, "recv")
    assert getter.is_alive()
    interp.call(chan_remote.queue_put_all, q, ["hello"])
    assert getter.outcome() == "hello"


def test_blocked_get_releases_gil():
    q = manygil.create_queue()

    def wait():
        with pytest.raises(manygil.QueueEmpty):
            q.get(timeout=0.5)

    max_gap, iterations, duration = max_gap_while(wait)
    assert duration >= 0.45
    assert max_gap < duration / 3, (max_gap, iterations, duration)


def test_work_queue_shared_by_two_interpreters(interp, interp2):
    """Two interpreters take tasks from one queue and put results on another:
    every task is done exactly once."""
    tasks = manygil.create_queue()
    results = manygil.create_queue()
    n = 500
    workers = [start_in(i, chan_remote.queue_worker, tasks, results) for i in (interp, interp2)]
    for x in range(n):
        tasks.put(x)
    for _ in workers:
        tasks.put(None)
    done = [w.outcome(timeout=60) for w in workers]
    assert sum(done) == n
    got = [results.get(timeout=5) for _ in range(n)]
    assert results.empty()
    assert sorted(x for _, x, _ in got) == list(range(n))
    assert all(sq == x * x for _, x, sq in got)
    assert {who for who, _, _ in got} <= {interp.id, interp2.id}
