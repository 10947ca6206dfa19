"""Task functions for tests/test_dask.py: pure Python, importable in own-GIL
interpreters (no numpy here; see dask_np.py)."""
import time


def in_interpreter() -> bool:
    """True when called in a subinterpreter (a manygil interpreter), not in
    the worker's main interpreter."""
    import manygil
    return manygil.get_current() != manygil.get_main()


def spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def spin_where(n: int) -> tuple:
    return spin(n), in_interpreter()


def combine(a, b) -> int:
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    return (a + b) % 1_000_003


def inc(x: int) -> int:
    return x + 1


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"task {x} failed")
    return x


def spin_for(seconds: float) -> int:
    """Busy pure Python for about `seconds` (interruptible at any bytecode)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def total(xs) -> int:
    return sum(xs)


def scale_list(xs, k):
    return [x * k for x in xs]


def make_generator(n):
    return (i for i in range(n))


def lazy_numpy_square(x):
    """Pure-looking, but imports numpy when called (the worker cannot tell
    before it runs): refused in an interpreter, re-run on threads."""
    np = __import__("numpy")
    return int(np.int64(x) ** 2), in_interpreter()


def calibrate(seconds: float) -> int:
    """n such that spin(n) takes about `seconds` where this runs, from the
    fastest of 3 timings (a busy machine makes single timings long)."""
    n = 100_000
    while True:
        elapsed = min(_timed(spin, n) for _ in range(3))
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def nested_args(a, items, kw=None):
    return a, items, kw, in_interpreter()
