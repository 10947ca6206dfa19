"""Main-interpreter helpers for the channel/queue tests (never imported in
subinterpreters)."""
import threading
import time

import manygil


class Call(threading.Thread):
    """Run ``fn(*args, **kwargs)`` in a thread, keeping its result or error."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.result = None
        self.error = None
        self.finished_at = None

    def run(self):
        try:
            self.result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by outcome()
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def outcome(self, timeout=30.0):
        """Join; return the result or raise the error (AssertionError on a hang)."""
        self.join(timeout)
        assert not self.is_alive(), f"{self._fn!r} still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def start(fn, *args, **kwargs):
    call = Call(fn, *args, **kwargs)
    call.start()
    return call


def start_in(interp, fn, *args, **kwargs):
    """Start a thread that runs ``interp.call(fn, ...)``; see :class:`Call`."""
    return start(interp.call, fn, *args, **kwargs)


def wait_until(predicate, timeout=10.0, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def waits():
    return manygil._core._waits()


def has_waiter(end_id, kind, ident=None):
    return any(w[2] == end_id and w[3] == kind and (ident is None or w[1] == ident)
               for w in waits())


def wait_blocked(end, kind, count=1, timeout=5.0):
    """Wait until ``count`` threads are recorded as blocked on ``end``.

    Used only to make "X is blocked now" deterministic; returns False (the
    test then proceeds, merely racier) if the waits table never shows it.
    Afterwards a short pause lets the waiter settle into its wait.
    """
    try:
        ok = wait_until(
            lambda: sum(1 for w in waits() if w[2] == end.id and w[3] == kind) >= count,
            timeout)
    except Exception:  # noqa: BLE001 - waits table broken: tested elsewhere
        time.sleep(0.3)
        return False
    time.sleep(0.02)
    return ok


def timed(fn, *args, **kwargs):
    """``(exception or None, result, elapsed seconds)`` of one call."""
    t0 = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return exc, None, time.monotonic() - t0
    return None, result, time.monotonic() - t0
