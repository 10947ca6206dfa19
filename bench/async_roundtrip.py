"""Round trip main <-> interpreter: asyncio (asend/arecv, aput/aget, acall)
against the blocking calls, side by side in one run.

An echo loop runs in a manygil interpreter on its own thread; the main
thread sends a small int and waits for it back, N times.  The blocking
rows wait in recv() (which spins briefly, then sleeps on a condition
variable); the async rows wait in a coroutine on one event loop, woken
through the loop's notifier descriptor.  Prints a table (median of batches,
microseconds per round trip) and the async/blocking ratio.

    python bench/async_roundtrip.py [--n 2000] [--batches 7]
"""
import argparse
import asyncio
import os
import platform
import queue
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manygil                                          # noqa: E402
from channels_echo import echo_channel, echo_queue      # noqa: E402


def ident(x):
    return x


def blocking_channel(r, s, n):
    t0 = time.perf_counter()
    for i in range(n):
        s.send(i)
        r.recv()
    return time.perf_counter() - t0


async def async_channel(r, s, n):
    t0 = time.perf_counter()
    for i in range(n):
        await s.asend(i)
        await r.arecv()
    return time.perf_counter() - t0


def blocking_queue(qi, qo, n):
    t0 = time.perf_counter()
    for i in range(n):
        qi.put(i)
        qo.get()
    return time.perf_counter() - t0


async def async_queue(qi, qo, n):
    t0 = time.perf_counter()
    for i in range(n):
        await qi.aput(i)
        await qo.aget()
    return time.perf_counter() - t0


async def floor_threadsafe(n):
    """asyncio's own floor for a wake-up from another thread: an echo thread
    resolves the coroutine's future with call_soon_threadsafe (what
    run_in_executor and wrap_future do).  Compared with one blocking
    round trip of the same echo through a queue.SimpleQueue."""
    loop = asyncio.get_running_loop()
    q = queue.SimpleQueue()

    def echo():
        while (item := q.get()) is not None:
            loop.call_soon_threadsafe(item[0].set_result, item[1])
    t = threading.Thread(target=echo)
    t.start()
    t0 = time.perf_counter()
    for i in range(n):
        fut = loop.create_future()
        q.put((fut, i))
        await fut
    took = time.perf_counter() - t0
    q.put(None)
    t.join()
    return took


def blocking_simplequeue(n):
    qi, qo = queue.SimpleQueue(), queue.SimpleQueue()

    def echo():
        while (x := qi.get()) is not None:
            qo.put(x)
    t = threading.Thread(target=echo)
    t.start()
    t0 = time.perf_counter()
    for i in range(n):
        qi.put(i)
        qo.get()
    took = time.perf_counter() - t0
    qi.put(None)
    t.join()
    return took


def blocking_call(interp, n):
    t0 = time.perf_counter()
    for i in range(n):
        interp.call(ident, i)
    return time.perf_counter() - t0


async def async_call(interp, n):
    t0 = time.perf_counter()
    for i in range(n):
        await interp.acall(ident, i)
    return time.perf_counter() - t0


def pair(blocking, asynchronous, n, batches):
    """Median microseconds per round trip of each, batches taking turns (so
    that both see the same moments of a shared machine)."""
    blocking(max(n // 10, 10))                          # warm up
    asynchronous(max(n // 10, 10))
    b, a = [], []
    for _ in range(batches):
        b.append(blocking(n) / n * 1e6)
        a.append(asynchronous(n) / n * 1e6)
    return statistics.median(b), statistics.median(a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=7)
    a = ap.parse_args()
    loop = asyncio.new_event_loop()
    aio = lambda coro_fn, *args: (lambda n: loop.run_until_complete(coro_fn(*args, n)))  # noqa
    rows = []
    with manygil.create() as interp:
        r1, s1 = manygil.create_channel()
        r2, s2 = manygil.create_channel()
        t = interp.call_in_thread(echo_channel, r1, s2)
        rows.append(("channel send/recv", *pair(lambda n: blocking_channel(r2, s1, n),
                                                aio(async_channel, r2, s1), a.n, a.batches)))
        s1.send(None)
        t.join()
        qi, qo = manygil.create_queue(), manygil.create_queue()
        t = interp.call_in_thread(echo_queue, qi, qo)
        rows.append(("queue put/get", *pair(lambda n: blocking_queue(qi, qo, n),
                                            aio(async_queue, qi, qo), a.n, a.batches)))
        qi.put(None)
        t.join()
        m = max(a.n // 4, 50)
        rows.append(("call / acall", *pair(lambda n: blocking_call(interp, n),
                                           aio(async_call, interp), m, a.batches)))
    rows.append(("(floor) thread echo: SimpleQueue / call_soon_threadsafe",
                 *pair(blocking_simplequeue, aio(floor_threadsafe), a.n, a.batches)))
    loop.close()
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; median of {a.batches} batches of {a.n}")
    print(f"| round trip main <-> interpreter | blocking (us) | asyncio (us) | asyncio / blocking |")
    print("|---|---:|---:|---:|")
    for name, b, s in rows:
        print(f"| {name} | {b:.1f} | {s:.1f} | {s / b:.2f}x |")


if __name__ == "__main__":
    main()
