"""UDFs the DuckDB tests register by reference (importable in every interpreter)."""
import re
import threading

# Module-level state: one copy per interpreter.
WORD = re.compile(r"[a-z]+")
INIT_CALLS = 0


def initializer():
    global INIT_CALLS
    INIT_CALLS += 1


def init_calls(_x):
    """How often this interpreter's initializer ran (must be 1)."""
    return INIT_CALLS


def interp_token(_x):
    """Which module copy serves the row: one per interpreter."""
    return id(WORD)


def thread_token(_x):
    return threading.get_ident()


def first_word(s):
    m = WORD.search(s)
    return m.group(0) if m else ""


def describe(x):
    return f"{type(x).__name__}:{x!r}"


def busy(x):
    """About 20 us of pure Python."""
    t = 0
    for i in range(400):
        t += i * i
    return x + (t & 1)


def boom(x):
    if x == 7:
        raise ValueError(f"seven is not allowed ({x})")
    return x


def reciprocal(x):
    return 1000 // (x % 3)


def spin(x):
    """Pure Python for up to 60 s (stopped by an interrupt)."""
    import time
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pass
    return x


def sleep_in_c(x):
    """Blocked in C (time.sleep) for 1.5 s."""
    import time
    time.sleep(1.5)
    return x
