"""Common prelude of the fault suite's child scripts (tests/stress/scripts).

Importable in every interpreter of the child (subinterpreters start with a
copy of the main interpreter's sys.path, whose first entry is this folder),
so the functions below cross to them by reference.

Children print ``DONE`` as their last line when they reached their end; the
parent (tests/stress/_harness.py) checks it, the exit code, stderr and time.
"""
import os
import sys
import time


def count(pos: int, default: int) -> int:
    """The repetition count given as argument ``pos`` (or the default)."""
    if len(sys.argv) > pos:
        return int(sys.argv[pos])
    return default


def arg(pos: int, default: str = "") -> str:
    return sys.argv[pos] if len(sys.argv) > pos else default


def fail(msg: str) -> None:
    """Report a broken expectation and exit 1 (the parent shows stderr)."""
    print(f"CHILD-FAIL: {msg}", file=sys.stderr, flush=True)
    os._exit(1)


def wait_until(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


# ---- functions that run inside interpreters (cross by reference) ----------

def ident(x):
    return x


def short(k):
    """A short pure-Python loop: sum(range(k))."""
    s = 0
    for i in range(k):
        s += i
    return s


def spin(seconds, value=None):
    """Busy pure-Python loop for ``seconds`` (interruptible at every
    bytecode boundary); returns ``value``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return value


def spin_swallow(seconds, value=None):
    """Like spin, but catches an interrupt and returns "swallowed"."""
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    except BaseException:       # noqa: BLE001 - the point of the task
        return "swallowed"
    return value


def nap(seconds, value=None):
    """time.sleep (C code: an interrupt is seen when it returns)."""
    time.sleep(seconds)
    return value


def spin_forever():
    while True:
        pass


def recv_forever(recv):
    return recv.recv()


def write_file_after(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("written\n")
    return path


def echo_channel(recv, send):
    """Echo every item back until the request channel closes."""
    n = 0
    while True:
        try:
            item = recv.recv()
        except Exception:       # noqa: BLE001 - ChannelClosedError ends the loop
            return n
        send.send(item)
        n += 1


def echo_queue(requests, replies):
    """Echo every item back until None arrives."""
    n = 0
    while True:
        item = requests.get()
        if item is None:
            return n
        replies.put(item)
        n += 1


def buffer_touch(buf, value):
    """Write ``value`` into every byte of a SharedBuffer; return the sum."""
    m = memoryview(buf)
    m[:] = bytes([value]) * len(m)
    total = sum(m)
    m.release()
    return total


def _rebuild_slowly(value, seconds):
    spin(seconds)
    return SlowPickle(value, seconds)


class SlowPickle:
    """A value whose pickling and unpickling run Python code for a while
    (so an interrupt can land while it is encoded or decoded)."""

    def __init__(self, value, seconds=0.005):
        self.value = value
        self.seconds = seconds

    def __reduce__(self):
        spin(self.seconds)
        return (_rebuild_slowly, (self.value, self.seconds))

    def __eq__(self, other):
        return isinstance(other, SlowPickle) and other.value == self.value

    def __repr__(self):
        return f"SlowPickle({self.value!r})"


def spin_slow_result(seconds, value=None):
    """spin, then return a value whose encoding runs Python code."""
    spin(seconds)
    return SlowPickle(value, 0.01)


def spin_slow_arg(seconds, arg):
    """spin; ``arg`` (a SlowPickle) ran Python code while it was decoded."""
    spin(seconds)
    return arg.value


class Echo:
    """An actor class for the sigint sweep: its method answers its argument."""

    def echo(self, x):
        return x
