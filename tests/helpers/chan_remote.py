"""Channel/queue functions run *inside* subinterpreters by the channel tests.

Imported by reference in subinterpreters: keep imports light (no pytest, no
hashlib; see helpers/__init__.py).  Every blocking call here takes a timeout
(default ``WAIT``) so a broken implementation fails a test instead of
leaving an interpreter busy for ever.
"""
import gc
import threading

import manygil
from manygil import interpreters

WAIT = 30.0


# --- channel ends ------------------------------------------------------------

def send_all(send_end, items, timeout=WAIT):
    for item in items:
        send_end.send(item, timeout=timeout)
    return len(items)


def send_range(send_end, start, stop, timeout=WAIT):
    """Send the ints ``start .. stop-1`` in order."""
    for i in range(start, stop):
        send_end.send(i, timeout=timeout)
    return stop - start


def recv_one(recv_end, timeout=WAIT):
    return recv_end.recv(timeout=timeout)


def send_one(send_end, obj, timeout=WAIT):
    send_end.send(obj, timeout=timeout)
    return True


def recv_n(recv_end, n, timeout=WAIT):
    return [recv_end.recv(timeout=timeout) for _ in range(n)]


def recv_until_none(recv_end, timeout=WAIT):
    """Receive until a ``None`` sentinel; return everything before it."""
    got = []
    while True:
        item = recv_end.recv(timeout=timeout)
        if item is None:
            return got
        got.append(item)


def drain_until_closed(recv_end, timeout=WAIT):
    """Receive until ChannelClosedError; return everything received."""
    got = []
    while True:
        try:
            got.append(recv_end.recv(timeout=timeout))
        except manygil.ChannelClosedError:
            return got


def recv_outcome(recv_end, timeout=WAIT):
    """``("item", x)`` or ``("error", ExceptionName)`` for one recv()."""
    try:
        return ("item", recv_end.recv(timeout=timeout))
    except manygil.ChannelError as exc:
        return ("error", type(exc).__name__)


def send_outcome(send_end, obj, timeout=WAIT):
    try:
        send_end.send(obj, timeout=timeout)
        return ("sent", None)
    except manygil.ChannelError as exc:
        return ("error", type(exc).__name__)


def echo(recv_end, send_end, n, timeout=WAIT):
    """Send back each of the next ``n`` items received."""
    for _ in range(n):
        send_end.send(recv_end.recv(timeout=timeout), timeout=timeout)
    return n


def forward_end(recv_end, timeout=WAIT):
    """Receive a channel end/queue from a channel and return it (sends it back)."""
    return recv_end.recv(timeout=timeout)


def end_info(end):
    """What the interpreter sees: ``(type name, id)``."""
    return type(end).__name__, end.id


def close_end(end):
    end.close()


def close_main_global(name):
    import __main__
    getattr(__main__, name).close()


def drop_main_global(name):
    """Delete a global from ``__main__`` and collect, releasing the handle."""
    import __main__
    delattr(__main__, name)
    gc.collect()


def send_via_main_global(name, obj, timeout=WAIT):
    import __main__
    getattr(__main__, name).send(obj, timeout=timeout)


def send_unshareable_then(send_end, after):
    """Try to send a lock (must fail), then send ``after``; return the error name."""
    try:
        send_end.send(threading.Lock(), timeout=WAIT)
    except Exception as exc:  # noqa: BLE001 - the name is the result
        name = type(exc).__name__
    else:
        name = None
    send_end.send(after, timeout=WAIT)
    return name


def thread_ident():
    return threading.get_ident()


# --- queues -------------------------------------------------------------------

def queue_put_all(q, items, timeout=WAIT):
    for item in items:
        q.put(item, timeout=timeout)
    return len(items)


def queue_get_one(q, timeout=WAIT):
    return q.get(timeout=timeout)


def queue_get_n(q, n, timeout=WAIT):
    return [q.get(timeout=timeout) for _ in range(n)]


def queue_worker(tasks, results, timeout=WAIT):
    """Square each task until a ``None`` sentinel; report ``(interp id, x, x*x)``."""
    me = interpreters.get_current()
    done = 0
    while True:
        x = tasks.get(timeout=timeout)
        if x is None:
            return done
        results.put((me, x, x * x), timeout=timeout)
        done += 1


def queue_state(q):
    return q.qsize(), q.empty(), q.full()


# --- seed (int id) API ---------------------------------------------------------

def seed_send(send_id, obj, timeout=WAIT):
    interpreters.channel_send(send_id, obj, timeout=timeout)
    return True


def seed_recv(recv_id, timeout=WAIT):
    return interpreters.channel_recv(recv_id, timeout=timeout)
