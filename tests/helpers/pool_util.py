"""Main-interpreter helpers for the pool tests (never imported in workers)."""
import contextlib
import os
import time

import manygil


@contextlib.contextmanager
def make_pool(*args, **kwargs):
    """An InterpreterPoolExecutor that is always shut down (queued tasks
    cancelled) when the block exits.  Its time limits (task_timeout,
    interrupt_grace) scale with MANYGIL_TIMEOUT_SCALE: under a debug build
    or a sanitizer a worker's first task (importing its function) alone can
    take longer than the short limits the tests use.  With a task_timeout
    and no initializer, each worker imports the tests' worker functions
    (helpers.wd_funcs) as it starts, so that a replacement worker's first
    task does not spend its time limit on that import on a loaded machine."""
    if "task_timeout" in kwargs and "initializer" not in kwargs:
        from helpers import wd_funcs
        kwargs["initializer"] = wd_funcs.wd_interp_id
    scale = float(os.environ.get("MANYGIL_TIMEOUT_SCALE", "1"))
    for limit in ("task_timeout", "interrupt_grace"):
        if isinstance(kwargs.get(limit), (int, float)) and not isinstance(kwargs[limit], bool):
            kwargs[limit] = kwargs[limit] * scale
    pool = manygil.InterpreterPoolExecutor(*args, **kwargs)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def wait_until(predicate, timeout=30.0, interval=0.005):
    """Poll ``predicate`` until true; return its final truthiness."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def wait_for_file(path, timeout=30.0):
    return wait_until(lambda: os.path.exists(path), timeout)


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")
