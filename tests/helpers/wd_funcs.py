"""Functions run *inside* subinterpreters and pool workers by
tests/test_interrupts.py, tests/test_watchdog.py and tests/test_dump_stacks.py.

Importable by reference from every interpreter (the tests directory is on
``sys.path`` before any interpreter is made).  Keep the imports light: no
pytest, no numpy, no hypothesis, no hashlib (see helpers/__init__.py).

The functions have distinctive names so that stack dumps and hang reports
can be searched for them.
"""
import time

# ---- plain ------------------------------------------------------------------


def wd_add(a, b):
    return a + b


def wd_interp_id():
    import manygil
    return manygil.get_current().id


_CALLS = 0


def wd_count_calls():
    """(this interpreter's id, how many times this ran in this interpreter)."""
    global _CALLS
    _CALLS += 1
    return wd_interp_id(), _CALLS


# ---- things that do not stop by themselves ------------------------------------


def wd_spin_forever():
    """Pure-Python endless loop: stops only when interrupted."""
    while True:
        pass


def wd_sleep_forever():
    """Stuck in C (time.sleep) for an hour: no bytecode boundary to interrupt."""
    time.sleep(3600)


def wd_spin_with_limit(seconds):
    """Pure-Python loop for at most ``seconds`` (a safety net if an
    interrupt never comes); returns "finished" if it ran out the clock."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


# ---- hangs the watchdog should see ----------------------------------------------


def wd_stuck_in_here(seconds):
    """A call that makes no progress for ``seconds`` (sleeping in C)."""
    time.sleep(seconds)
    return "woke"


def wd_stuck_in_recv_here(r, seconds):
    """A call blocked in a channel receive (with a timeout) for ``seconds``,
    with nobody sending; returns what happened."""
    try:
        return ("value", r.recv(timeout=seconds))
    except Exception as e:              # noqa: BLE001 - reported to the test
        return ("error", type(e).__name__)


def wd_stuck_then_busy(r, wait_seconds, busy_seconds):
    """Blocked in a receive for ``wait_seconds``, then busy in Python for
    ``busy_seconds`` more: one call that makes no visible progress."""
    try:
        r.recv(timeout=wait_seconds)
    except Exception:                   # noqa: BLE001
        pass
    end = time.monotonic() + busy_seconds
    while time.monotonic() < end:
        pass
    return "done"


def wd_recv_marker(r):
    """Blocked in a receive without timeout until something arrives."""
    return r.recv()


def wd_recv_timeout_marker(r, seconds):
    try:
        return ("value", r.recv(timeout=seconds))
    except Exception as e:              # noqa: BLE001
        return ("error", type(e).__name__)


def wd_queue_get_marker(q, seconds):
    try:
        return ("value", q.get(timeout=seconds))
    except Exception as e:              # noqa: BLE001
        return ("error", type(e).__name__)


def wd_task_runs_long(seconds):
    """A pool task busy in Python for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "ran"


# ---- loops for stack dumps ---------------------------------------------------------


def _flag_set(buf):
    return memoryview(buf)[0] != 0


def wd_spin_forever_marker(buf, limit=5.0):
    """Loop in Python until byte 0 of the SharedBuffer ``buf`` is non-zero
    or ``limit`` seconds pass.  Byte 1 is set to 1 once the loop runs."""
    m = memoryview(buf)
    m[1] = 1
    end = time.monotonic() + limit
    n = 0
    while m[0] == 0 and time.monotonic() < end:
        n += 1
    return n


def wd_outer_frame_marker(buf, limit=5.0):
    """Calls wd_spin_forever_marker one frame down (both names should show)."""
    return wd_spin_forever_marker(buf, limit)


# ---- tasks that do not take an interrupt well -------------------------------------


def wd_swallow_interrupts(limit):
    """Spin in Python, swallowing every exception raised into it, for up to
    ``limit`` seconds: it never stops when interrupted.  (Written with
    ``while True`` + ``if``: on 3.13 an async exception raised at the
    condition of ``while cond:`` inside ``try`` is not caught by it.)"""
    end = time.monotonic() + limit
    swallowed = 0
    while True:
        try:
            while True:
                try:
                    if time.monotonic() > end:
                        return ("ran out", swallowed)
                except BaseException:   # noqa: BLE001 - the point of this task
                    swallowed += 1
        except BaseException:           # noqa: BLE001 - raised between the inner statements
            swallowed += 1


def wd_catch_interrupt_and_return(limit):
    """Spin until interrupted, then return normally (a value) at once."""
    end = time.monotonic() + limit
    try:
        while True:
            if time.monotonic() > end:
                return ("ran out", None)
    except BaseException as e:          # noqa: BLE001
        return ("caught", type(e).__name__)


def wd_sleep_then_spin(sleep_seconds, limit):
    """In C (time.sleep) first, then a Python loop for up to ``limit`` s."""
    time.sleep(sleep_seconds)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        pass
    return "ran out"


def wd_hold_gil_in_c(n):
    """C code that keeps this interpreter's GIL for a long time: sum() of n
    ones from itertools.repeat runs entirely in C, never at a bytecode
    boundary, and allocates nothing (sum(range(n)) makes an int per item:
    under ASan with PYTHONMALLOC=malloc each goes through the quarantine,
    and a run calibrated at 8 s took over 120 s in CI)."""
    import itertools
    return sum(itertools.repeat(1, n))


def _arrive_late(value, seconds):
    time.sleep(seconds)
    return value


class SlowToDecode:
    """An argument whose decoding in the worker takes `seconds` (in C, in
    time.sleep: no interrupt can land there) before the task's code runs."""

    def __init__(self, value, seconds):
        self.value, self.seconds = value, seconds

    def __reduce__(self):
        return (_arrive_late, (self.value, self.seconds))
