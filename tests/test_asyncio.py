"""asyncio: arecv/asend/aget/aput wait without a thread (a watch on the
channel, one descriptor per loop), cancellation loses no item, acall, and
awaitable pool futures."""
import asyncio
import gc
import os
import random
import threading
import time

import pytest

import manygil
from manygil import _asyncio, _core
from helpers import chan_remote

WAIT = 30


def run(coro, timeout=WAIT):
    """asyncio.run with an overall limit (a broken wake-up fails, not hangs)."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def os_threads():
    return len(os.listdir("/proc/self/task"))


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def until(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


# --- basics ------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_arecv_gets_an_item_sent_later_from_a_thread():
    async def main():
        r, s = manygil.create_channel()
        threading.Timer(0.05, s.send, ({"x": [1, 2]},)).start()
        return await r.arecv(timeout=WAIT)
    assert run(main()) == {"x": [1, 2]}


@pytest.mark.timeout(60)
def test_arecv_returns_at_once_when_an_item_waits():
    async def main():
        r, s = manygil.create_channel()
        s.send("ready")
        return await r.arecv()
    assert run(main()) == "ready"


@pytest.mark.timeout(60)
def test_asend_waits_for_room_in_a_bounded_channel():
    async def main():
        r, s = manygil.create_channel(1)
        await s.asend(1)
        t = asyncio.create_task(s.asend(2))
        await asyncio.sleep(0.05)
        assert not t.done(), "asend on a full channel must wait"
        assert await r.arecv() == 1
        await asyncio.wait_for(t, WAIT)
        return await r.arecv()
    assert run(main()) == 2


@pytest.mark.timeout(60)
def test_queue_aget_and_aput():
    async def main():
        q = manygil.create_queue(1)
        await q.aput("a")
        putter = asyncio.create_task(q.aput("b"))
        await asyncio.sleep(0.02)
        assert not putter.done()
        first = await q.aget()
        await asyncio.wait_for(putter, WAIT)
        getter = asyncio.create_task(q.aget())
        second = await getter
        late = asyncio.create_task(q.aget(timeout=WAIT))
        await asyncio.sleep(0.02)
        q.put("c")
        return first, second, await late
    assert run(main()) == ("a", "b", "c")


@pytest.mark.timeout(60)
def test_close_wakes_async_waiters_with_channel_closed():
    async def main():
        r, s = manygil.create_channel()
        tasks = [asyncio.create_task(r.arecv()) for _ in range(5)]
        await until(lambda: _core._awatch_armed() >= 5)
        s.close()
        return await asyncio.gather(*tasks, return_exceptions=True)
    res = run(main())
    assert all(isinstance(e, manygil.ChannelClosedError) for e in res), res
    assert _core._awatch_armed() == 0


@pytest.mark.timeout(60)
def test_items_sent_before_close_are_still_received():
    async def main():
        r, s = manygil.create_channel()
        s.send(1)
        s.close()
        got = await r.arecv()
        with pytest.raises(manygil.ChannelClosedError):
            await r.arecv()
        return got
    assert run(main()) == 1


# --- timeouts ------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_arecv_timeout_raises_channel_timeout_error():
    async def main():
        r, s = manygil.create_channel()
        t0 = time.monotonic()
        with pytest.raises(manygil.ChannelTimeoutError, match="timed out"):
            await r.arecv(timeout=0.1)
        return time.monotonic() - t0
    took = run(main())
    assert took >= 0.09
    assert _core._awatch_armed() == 0


@pytest.mark.timeout(60)
def test_timeouts_of_asend_aget_aput():
    async def main():
        r, s = manygil.create_channel(1)
        s.send(0)
        with pytest.raises(manygil.ChannelTimeoutError):
            await s.asend(1, timeout=0.05)
        q = manygil.create_queue(1)
        with pytest.raises(manygil.QueueEmpty):
            await q.aget(timeout=0.05)
        q.put(1)
        with pytest.raises(manygil.QueueFull):
            await q.aput(2, timeout=0.05)
        # The item that did not go is not in the channel / queue.
        return r.recv_nowait(), r.recv_nowait(None), q.get_nowait(), q.qsize()
    assert run(main()) == (0, None, 1, 0)


@pytest.mark.timeout(60)
def test_timeout_zero_is_the_nowait_call():
    async def main():
        r, s = manygil.create_channel(1)
        with pytest.raises(manygil.ChannelEmptyError):
            await r.arecv(timeout=0)
        await s.asend(1, timeout=0)
        with pytest.raises(manygil.ChannelFullError):
            await s.asend(2, timeout=0)
        return await r.arecv(timeout=0)
    assert run(main()) == 1


@pytest.mark.timeout(60)
def test_item_arriving_with_the_deadline_is_not_lost():
    async def main():
        lost = 0
        for i in range(50):
            r, s = manygil.create_channel()
            threading.Timer(0.002, s.send, (i,)).start()
            try:
                got = await r.arecv(timeout=0.002)
            except manygil.ChannelTimeoutError:
                got = r.recv(timeout=WAIT)
            lost += got != i
        return lost
    assert run(main()) == 0


# --- bad input -------------------------------------------------------------------

def test_bad_timeouts_raise_at_call_time():
    r, s = manygil.create_channel()
    q = manygil.create_queue()
    with pytest.raises(ValueError, match="non-negative"):
        r.arecv(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        s.asend(1, timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout must be a number or None, not str"):
        q.aget(timeout="1")
    with pytest.raises(TypeError):
        q.aput()
    with pytest.raises(TypeError):
        r.arecv(1, 2)


def test_wrong_ends_have_no_async_method():
    r, s = manygil.create_channel()
    assert not hasattr(s, "arecv") and not hasattr(r, "asend")


@pytest.mark.timeout(60)
def test_unshareable_value_raises_not_shareable():
    async def main():
        r, s = manygil.create_channel()
        with pytest.raises(manygil.NotShareableError):
            await s.asend(threading.Lock())
        return r.recv_nowait(None)
    assert run(main()) is None


def test_awaiting_outside_a_loop_fails_cleanly():
    r, s = manygil.create_channel()
    coro = r.arecv()
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)
    coro.close()
    assert _core._awatch_armed() == 0


def test_private_calls_reject_wrong_objects():
    with pytest.raises(TypeError, match="notifier"):
        _core._awatch(object(), manygil.create_queue(), 2)
    nt = _core._notifier()
    with pytest.raises(TypeError, match="channel end or a queue"):
        _core._awatch(nt, 5, 2)
    r, s = manygil.create_channel()
    with pytest.raises(ValueError):
        _core._awatch(nt, s, 2)         # receiving on a send end
    with pytest.raises(TypeError, match="watch"):
        _core._awatch_arm(nt)


def test_acall_rejects_a_non_callable():
    with manygil.create() as interp:
        with pytest.raises(TypeError, match="callable"):
            interp.acall(5)


# --- many waiters, no threads ------------------------------------------------------

@pytest.mark.timeout(120)
def test_10000_coroutines_on_10000_channels_use_no_thread():
    n = 10_000
    chans = [manygil.create_channel() for _ in range(n)]
    gc.collect()

    async def main():
        threads_before, os_before = threading.active_count(), os_threads()
        fds_before = open_fds()
        tasks = [asyncio.create_task(r.arecv()) for r, _ in chans]
        await until(lambda: _core._awatch_armed() >= n)
        during = threading.active_count(), os_threads(), open_fds() - fds_before
        blocked = [w for w in _core._waits()]
        for i, (_, s) in enumerate(chans):
            s.send(i)
        got = await asyncio.gather(*tasks)
        return (threads_before, os_before), during, blocked, got
    (t0, o0), (t1, o1, fds), blocked, got = run(main(), timeout=100)
    assert (t1, o1) == (t0, o0), "waiting must start no thread"
    assert fds <= 1, "one descriptor per loop, not per waiter"
    assert blocked == [], "async waiters are not blocked threads"
    assert got == list(range(n))
    assert _core._awatch_armed() == 0


@pytest.mark.timeout(60)
def test_many_waiters_on_one_channel_each_get_one_item():
    async def main():
        r, s = manygil.create_channel()
        tasks = [asyncio.create_task(r.arecv()) for _ in range(200)]
        await until(lambda: _core._awatch_armed() >= 200)
        for i in range(200):
            s.send(i)
        return sorted(await asyncio.gather(*tasks))
    assert run(main()) == list(range(200))


# --- cancellation -------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_cancelled_while_waiting_takes_nothing():
    async def main():
        r, s = manygil.create_channel()
        t = asyncio.create_task(r.arecv())
        await until(lambda: _core._awatch_armed() >= 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert _core._awatch_armed() == 0
        s.send("kept")
        return r.recv_nowait()
    assert run(main()) == "kept"


@pytest.mark.timeout(60)
def test_woken_then_cancelled_passes_the_item_to_the_next_waiter(monkeypatch):
    """The hardest order: the waiter's wake-up is delivered, then it is
    cancelled before it runs.  It must not take the item, and the other
    waiter must be woken for it."""
    victims = []
    real = _asyncio._Notifier._on_ready

    def on_ready_then_cancel(self):
        real(self)
        for t in victims:
            t.cancel()
        victims.clear()
    monkeypatch.setattr(_asyncio._Notifier, "_on_ready", on_ready_then_cancel)

    async def main():
        r, s = manygil.create_channel()
        first = asyncio.create_task(r.arecv())
        await until(lambda: _core._awatch_armed() >= 1)
        second = asyncio.create_task(r.arecv())
        await until(lambda: _core._awatch_armed() >= 2)
        victims.append(first)           # the oldest watch is the one fired
        s.send("item")
        got = await asyncio.wait_for(second, WAIT)
        with pytest.raises(asyncio.CancelledError):
            await first
        return got, r.recv_nowait(None)
    assert run(main()) == ("item", None)


def _cancel_race(make, get_async, put, drain, rounds):
    """Rounds of: a coroutine awaits; a thread puts one item at a random
    moment; the loop cancels the coroutine at another.  Every item must end
    up either returned by the coroutine or still in the channel."""
    async def main():
        returned, drained, cancelled = [], [], 0
        for i in range(rounds):
            ends = make()
            t = asyncio.create_task(get_async(ends))
            timer = threading.Timer(random.random() * 0.002, put, (ends, i))
            timer.start()
            await asyncio.sleep(random.random() * 0.002)
            t.cancel()
            try:
                returned.append(await t)
            except asyncio.CancelledError:
                cancelled += 1
            timer.join()
            drained.extend(drain(ends))
        return returned, drained, cancelled
    returned, drained, cancelled = run(main(), timeout=120)
    everything = returned + drained
    assert sorted(everything) == list(range(rounds)), "an item was lost or duplicated"
    return cancelled, len(returned)


@pytest.mark.timeout(150)
def test_cancel_races_arriving_items_on_channels():
    def drain(ends):
        out = []
        while (x := ends[0].recv_nowait(None)) is not None:
            out.append(x)
        return out
    cancelled, returned = _cancel_race(
        manygil.create_channel, lambda e: e[0].arecv(), lambda e, i: e[1].send(i), drain, 400)
    assert cancelled and returned, (cancelled, returned)    # both outcomes were exercised


@pytest.mark.timeout(150)
def test_cancel_races_arriving_items_on_queues():
    def drain(q):
        out = []
        while not q.empty():
            out.append(q.get_nowait())
        return out
    _cancel_race(manygil.create_queue, lambda q: q.aget(), lambda q, i: q.put(i), drain, 300)


@pytest.mark.timeout(150)
def test_cancelled_asend_sends_nothing_or_exactly_once():
    async def main():
        seen = []
        for i in range(200):
            r, s = manygil.create_channel(1)
            s.send(-1)
            t = asyncio.create_task(s.asend(i))
            timer = threading.Timer(random.random() * 0.002, r.recv)
            timer.start()
            await asyncio.sleep(random.random() * 0.002)
            t.cancel()
            try:
                await t
                sent = True
            except asyncio.CancelledError:
                sent = False
            timer.join()
            rest = []
            while (x := r.recv_nowait(None)) is not None:
                rest.append(x)
            seen.append((sent, rest))
        return seen
    for sent, rest in run(main(), timeout=120):
        assert rest == ([rest[0]] if sent else []) and (not rest or rest[0] >= 0), (sent, rest)


# --- other interpreters ----------------------------------------------------------------

@pytest.mark.timeout(90)
def test_sender_in_another_interpreter_wakes_the_loop():
    async def main():
        r, s = manygil.create_channel()
        with manygil.create() as interp:
            t = interp.call_in_thread(chan_remote.send_range, s, 0, 500)
            got = [await r.arecv(timeout=WAIT) for _ in range(500)]
            await asyncio.get_running_loop().run_in_executor(None, t.join, WAIT)
        return got
    assert run(main()) == list(range(500))


@pytest.mark.timeout(90)
def test_acall_runs_in_the_interpreter_and_many_overlap():
    async def main():
        with manygil.create() as a, manygil.create() as b:
            ids = await asyncio.gather(a.acall(chan_remote_interp_id), b.acall(chan_remote_interp_id))
            squares = await asyncio.gather(*(a.acall(pow, i, 2) for i in range(20)))
            with pytest.raises(manygil.ExecutionFailed):
                await a.acall(divmod, 1, 0)
        return ids, (a.id, b.id), squares
    ids, want, squares = run(main())
    assert tuple(ids) == want
    assert squares == [i * i for i in range(20)]


def chan_remote_interp_id():
    import manygil
    return manygil.get_current().id


@pytest.mark.timeout(90)
def test_pool_futures_are_awaitable():
    async def main():
        with manygil.InterpreterPoolExecutor(2) as pool:
            one = await pool.submit(pow, 2, 8)
            many = await asyncio.gather(*(pool.submit(pow, i, 3) for i in range(10)))
            with pytest.raises(ZeroDivisionError):
                await pool.submit(divmod, 1, 0)
        return one, many
    assert run(main()) == (256, [i ** 3 for i in range(10)])


# --- loop lifetime ----------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_loop_closed_while_waits_are_pending():
    fds_before = open_fds()
    chans = [manygil.create_channel() for _ in range(100)]
    loop = asyncio.new_event_loop()

    async def start():
        tasks = [asyncio.create_task(r.arecv()) for r, _ in chans]
        await until(lambda: _core._awatch_armed() >= 100)
        return tasks
    tasks = loop.run_until_complete(start())
    loop.close()
    assert _core._awatch_armed() == 100     # still armed: nothing ran them down yet
    # Items sent now go to a loop that is gone: nothing crashes, nothing is taken.
    for i, (_, s) in enumerate(chans[:50]):
        s.send(i)
    del tasks, loop, start
    for _ in range(3):
        gc.collect()
    assert _core._awatch_armed() == 0, "dropped waits leave no watch behind"
    assert open_fds() <= fds_before, "the loop's descriptor is closed"
    got = [r.recv_nowait(None) for r, _ in chans]
    assert got == list(range(50)) + [None] * 50, "no item was taken by the dead loop"

    async def again():                      # a new loop works on the same channels
        r, s = chans[99]
        s.send("new")
        return await r.arecv(timeout=WAIT)
    assert run(again()) == "new"


@pytest.mark.timeout(90)
def test_a_loop_awaiting_is_not_a_blocked_thread_for_the_deadlock_detector():
    """An interpreter waits for ever on a channel only main can send on,
    while main's thread awaits arecv in its loop: main may still send (from
    any coroutine), so the detector must break nothing."""
    async def main():
        r1, s1 = manygil.create_channel()
        r2, s2 = manygil.create_channel()
        with manygil.create() as interp:
            t = interp.call_in_thread(chan_remote.recv_one, r2, None)
            del r2
            await until(lambda: len(_core._waits()) == 1)
            waiter = asyncio.create_task(r1.arecv())
            await until(lambda: _core._awatch_armed() >= 1)
            broken = _core._deadlock_check()
            s2.send("go")
            s1.send("done")
            got = await waiter
            await asyncio.get_running_loop().run_in_executor(None, t.join, WAIT)
        return broken, got
    assert run(main()) == (0, "done")


def _await_inside(r, n):
    import asyncio

    async def main():
        return [await r.arecv(timeout=30) for _ in range(n)]
    return asyncio.run(main())


@pytest.mark.timeout(90)
def test_a_loop_inside_an_interpreter_awaits_items_from_main():
    r, s = manygil.create_channel()
    with manygil.create() as interp:
        t = threading.Timer(0.1, lambda: [s.send(i) for i in range(100)])
        t.start()
        got = interp.call(_await_inside, r, 100)
        t.join()
    assert got == list(range(100))
