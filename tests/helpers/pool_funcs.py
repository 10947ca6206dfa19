"""Functions run *inside* InterpreterPoolExecutor workers by the pool tests.

Importable by reference from every worker (the tests directory is on
``sys.path`` before any pool is made, and workers copy main's ``sys.path``).
Keep the imports light: no pytest, no hypothesis, no hashlib (see
helpers/__init__.py).
"""
import os
import sys
import time

from helpers import remote as _remote

# ---- plain values ------------------------------------------------------------


def inc(x):
    return x + 1


def square(x):
    return x * x


def add(a, b):
    return a + b


def add3(a, b, c):
    return a + b + c


def pack(*args, **kwargs):
    return args, kwargs


def identity(x):
    return x


def sleep_return(seconds, value=None):
    time.sleep(seconds)
    return value


# CPU-bound pure-Python loop (holds the worker's own GIL): the one in remote.
busy = _remote.busy


def get_sys_path():
    return list(sys.path)


def import_attr(module, attr):
    """Import ``module`` in the worker and return ``module.attr``."""
    import importlib
    return getattr(importlib.import_module(module), attr)


def interp_id():
    import manygil
    return manygil.get_current().id


def is_main_interp():
    import manygil
    return manygil.get_current().id == manygil.get_main().id


# ---- per-interpreter state ---------------------------------------------------

_CALLS = 0
_TOKEN = object()


def count_calls():
    """How many times this function ran in *this* interpreter."""
    global _CALLS
    _CALLS += 1
    return _CALLS


def count_calls_item(_item):
    return count_calls()


def token():
    """id() of a module-level object: differs between interpreters that
    imported this module separately (may repeat after one is freed)."""
    return id(_TOKEN)


_INIT_CALLS = 0
_INIT_VALUE = None


def init_set(value):
    global _INIT_CALLS, _INIT_VALUE
    _INIT_CALLS += 1
    _INIT_VALUE = value


def get_init_state():
    """(times the initializer ran here, the value it set)."""
    return _INIT_CALLS, _INIT_VALUE


class InitError(Exception):
    pass


def init_fail(msg="initializer failed"):
    raise InitError(msg)


# ---- files as cross-interpreter signals --------------------------------------


def touch(path):
    with open(path, "w"):
        pass
    return path


def touch_then_sleep(path, seconds, value=None):
    """Signal 'started' by creating ``path``, then sleep."""
    touch(path)
    time.sleep(seconds)
    return value


def wait_for_file(path, timeout):
    """Block until ``path`` exists (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def rendezvous(directory, name, expected, timeout):
    """Create ``directory/name`` then wait until ``expected`` files exist
    there: True if they all appeared within ``timeout`` (so ``expected``
    tasks were running at the same time)."""
    touch(os.path.join(directory, name))
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def overlap_probe(directory, name, seconds):
    """Register in ``directory`` for ``seconds``; return the largest number
    of registered tasks seen meanwhile (tasks running at the same time)."""
    path = os.path.join(directory, name)
    touch(path)
    seen = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            seen = max(seen, len(os.listdir(directory)))
            time.sleep(0.005)
    finally:
        os.remove(path)
    return seen


# ---- exceptions --------------------------------------------------------------


class PoolError(Exception):
    """Importable custom exception: rebuilt as itself in main."""

    def __init__(self, msg, code=0):
        super().__init__(msg, code)
        self.msg = msg
        self.code = code


class TwoArgError(Exception):
    """Needs two arguments but passes only one to Exception.__init__, so it
    pickles as ``TwoArgError(a)``: unpickling raises TypeError, so it
    cannot be rebuilt in main."""

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raise_value_error(msg):
    raise ValueError(msg)


def _inner_raiser(msg):
    raise KeyError(msg)


def outer_raiser(msg):
    return _inner_raiser(msg)


def raise_pool_error(msg, code):
    raise PoolError(msg, code)


def raise_two_arg_error(a, b):
    raise TwoArgError(a, b)


def raise_exec_defined(msg):
    """Raise an instance of a class created by exec() in the worker: its
    class cannot be found by name anywhere."""
    ns = {}
    exec("class ExecDefinedError(Exception):\n    pass\n", ns)
    raise ns["ExecDefinedError"](msg)


def fail_on(x, bad):
    """2*x, except ValueError for ``x == bad``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return 2 * x


def exit_with(code):
    sys.exit(code)


def make_lock():
    import threading
    return threading.Lock()
