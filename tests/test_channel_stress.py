"""Many senders and receivers in many interpreters at once: every item is
received exactly once, per-producer order is kept, nothing is lost when
interpreters holding channel ends come and go."""
import gc

import pytest

import manygil
from helpers import chan_remote
from helpers.chan_util import start, start_in


def _check_exactly_once(received, expected):
    flat = [x for got in received for x in got]
    assert len(flat) == len(expected), (len(flat), len(expected))
    assert len(set(flat)) == len(flat), "some item was received twice"
    assert set(flat) == set(expected), "some item was lost"


def _check_per_producer_order(received, ranges):
    """Each consumer sees every producer's items in sending order (FIFO)."""
    for got in received:
        for start_, stop in ranges:
            mine = [x for x in got if start_ <= x < stop]
            assert mine == sorted(mine), f"producer {start_}..{stop} reordered"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("maxsize", [0, 64])
def test_two_producers_two_consumers_100k_items(maxsize):
    """2 producer and 2 consumer interpreters, 100,000 ints through one
    channel (unbounded, then bounded): each is received exactly once.  One
    ``None`` sentinel per consumer is sent after the producers finish."""
    n_each = 50_000
    ranges = [(0, n_each), (n_each, 2 * n_each)]
    r, s = manygil.create_channel(maxsize)
    interps = [manygil.create() for _ in range(4)]
    try:
        consumers = [start_in(i, chan_remote.recv_until_none, r, 60) for i in interps[2:]]
        producers = [start_in(i, chan_remote.send_range, s, a, b, 60)
                     for i, (a, b) in zip(interps[:2], ranges)]
        assert [p.outcome(timeout=100) for p in producers] == [n_each, n_each]
        for _ in consumers:
            s.send(None, timeout=60)
        received = [c.outcome(timeout=100) for c in consumers]
    finally:
        for i in interps:
            i.close()
    _check_exactly_once(received, range(2 * n_each))
    _check_per_producer_order(received, ranges)


@pytest.mark.timeout(120)
def test_main_threads_and_interpreters_mixed():
    """Senders: 2 threads in main + 2 interpreters; receivers: 1 thread in main
    + 2 interpreters; bounded channel so senders block often."""
    per_sender = 5_000
    ranges = [(k * per_sender, (k + 1) * per_sender) for k in range(4)]
    r, s = manygil.create_channel(8)
    interps = [manygil.create() for _ in range(4)]
    try:
        receivers = [start(chan_remote.recv_until_none, r, 60)]
        receivers += [start_in(i, chan_remote.recv_until_none, r, 60) for i in interps[2:]]
        senders = [start(chan_remote.send_range, s, *ranges[0], 60),
                   start(chan_remote.send_range, s, *ranges[1], 60)]
        senders += [start_in(i, chan_remote.send_range, s, a, b, 60)
                    for i, (a, b) in zip(interps[:2], ranges[2:])]
        for t in senders:
            assert t.outcome(timeout=100) == per_sender
        for _ in receivers:
            s.send(None, timeout=60)
        received = [t.outcome(timeout=100) for t in receivers]
    finally:
        for i in interps:
            i.close()
    _check_exactly_once(received, range(4 * per_sender))
    _check_per_producer_order(received, ranges)


@pytest.mark.timeout(120)
def test_queue_many_producers_many_consumers():
    n_each = 10_000
    q = manygil.create_queue(32)
    interps = [manygil.create() for _ in range(4)]
    try:
        results = manygil.create_queue()
        consumers = [start_in(i, chan_remote.queue_worker, q, results, 60)
                     for i in interps[2:]]
        producers = [start_in(i, chan_remote.queue_put_all, q,
                              list(range(k * n_each, (k + 1) * n_each)), 60)
                     for k, i in enumerate(interps[:2])]
        assert [p.outcome(timeout=100) for p in producers] == [n_each, n_each]
        for _ in consumers:
            q.put(None, timeout=60)
        assert sum(c.outcome(timeout=100) for c in consumers) == 2 * n_each
        got = [results.get(timeout=10)[1] for _ in range(2 * n_each)]
    finally:
        for i in interps:
            i.close()
    assert sorted(got) == list(range(2 * n_each))
    assert results.empty()


@pytest.mark.timeout(120)
def test_interpreters_come_and_go_while_holding_ends():
    """Repeatedly: a fresh interpreter gets both ends, sends items and receives
    some, and is closed.  Main's handles keep the channel open throughout and
    every item not received inside arrives in main, in FIFO order."""
    r, s = manygil.create_channel()
    pending = []  # model of the channel's content, in FIFO order
    for round_ in range(20):
        with manygil.create() as b:
            b.prepare_main(out=s, inbox=r)
            items = [(round_, k) for k in range(50)]
            b.call(chan_remote.send_all, s, items)
            pending.extend(items)
            assert b.call(chan_remote.recv_n, r, 10) == pending[:10]
            del pending[:10]
        gc.collect()
    assert [r.recv(timeout=5) for _ in pending] == pending
    with pytest.raises(manygil.ChannelTimeoutError):
        r.recv(timeout=0.05)


@pytest.mark.timeout(120)
def test_close_while_many_wait(interp, interp2):
    """Closing the send end while 6 receivers (main threads and two
    interpreters) are draining a busy channel: all items are received exactly
    once, then every receiver ends with ChannelClosedError."""
    r, s = manygil.create_channel()
    threads = [start(chan_remote.drain_until_closed, r) for _ in range(2)]
    threads += [start_in(i, chan_remote.drain_until_closed, r)
                for i in (interp, interp2) for _ in range(2)]
    for i in range(20_000):
        s.send(i)
    s.close()
    received = [t.outcome(timeout=100) for t in threads]
    _check_exactly_once(received, range(20_000))
