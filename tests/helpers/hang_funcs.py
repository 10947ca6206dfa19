"""Functions run inside interpreters and pool workers by tests/test_hangs.py."""
import threading
import time


def add(a, b):
    return a + b


def spin_forever():
    while True:
        pass


def sleep_forever():
    time.sleep(3600)


def hang_marker_spin(seconds):
    """Loops for `seconds` (a distinctive name for stack dumps)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


def hang_marker_sleep(seconds):
    time.sleep(seconds)
    return "slept"


def recv_forever(r):
    """Receive with no timeout; returns the value or the error's type name."""
    try:
        return ("value", r.recv())
    except Exception as e:              # noqa: BLE001 - reported to the test
        return ("error", type(e).__name__, str(e))


def get_forever(q):
    try:
        return ("value", q.get())
    except Exception as e:              # noqa: BLE001
        return ("error", type(e).__name__, str(e))


def recv_with_timeout(r, seconds):
    try:
        return ("value", r.recv(timeout=seconds))
    except Exception as e:              # noqa: BLE001
        return ("error", type(e).__name__, str(e))


def send_later_in_thread(s, value, delay):
    """Start a thread in this interpreter that sends after `delay`."""
    def later():
        time.sleep(delay)
        s.send(value)
    threading.Thread(target=later).start()


def send_later_then_recv(s, value, delay, r):
    """A second thread here sends on s after delay; this one receives on r."""
    send_later_in_thread(s, value, delay)
    return recv_forever(r)
