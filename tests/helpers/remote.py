"""Functions and classes used *inside* subinterpreters by the tests.

Everything here is importable by reference from a subinterpreter (the tests
directory is on ``sys.path`` before any interpreter is created).  Keep the
imports light: no pytest, no hypothesis, no hashlib (see helpers/__init__.py).
"""
import dataclasses
import enum
import sys
import time

# Module-level state, used to show that by-reference functions run against
# the subinterpreter's own copy of this module.
STATE = []


def identity(x):
    return x


def pack(*args, **kwargs):
    """Return the arguments as received: ``(args, kwargs)``."""
    return args, kwargs


def apply(fn, *args, **kwargs):
    """Call ``fn`` (which itself crossed into the interpreter)."""
    return fn(*args, **kwargs)


def append_state(value):
    STATE.append(value)
    return len(STATE)


def get_main(name):
    """Read a global from the current interpreter's ``__main__``."""
    import __main__
    return getattr(__main__, name)


def has_main(name):
    import __main__
    return hasattr(__main__, name)


def set_main(name, value):
    import __main__
    setattr(__main__, name, value)


def sleep_then_set(seconds, name, value):
    time.sleep(seconds)
    set_main(name, value)


def sleep(seconds):
    time.sleep(seconds)


def busy(n):
    """CPU-bound pure-Python loop (holds the interpreter's GIL)."""
    total = 0
    for i in range(n):
        total += i
    return total


def current_id():
    import manygil
    return manygil.get_current().id


def main_id():
    import manygil
    return manygil.get_main().id


def all_ids():
    import manygil
    return sorted(i.id for i in manygil.list_all())


def has_module(name):
    return name in sys.modules


def make_adder(n):
    """Return a closure (a function that is not importable by reference)."""
    def add(x):
        return x + n
    return add


def raise_inner(msg):
    raise ValueError(msg)


def fail_deep(msg):
    """Raise ValueError two frames down (for traceback checks)."""
    return raise_inner(msg)


class Outer:
    class InnerError(Exception):
        """An exception whose __qualname__ differs from its __name__."""


def raise_inner_error(msg):
    raise Outer.InnerError(msg)


def exit_with(code):
    sys.exit(code)


@dataclasses.dataclass(frozen=True)
class Pair:
    a: object
    b: object


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


def append_and_return(lst, value):
    lst.append(value)
    return lst


def type_name(x):
    """Fully qualified name of ``type(x)`` as seen inside the interpreter."""
    return f"{type(x).__module__}.{type(x).__qualname__}"


def nesting_depth(x):
    """Depth of a list nested as ``[[[...]]]`` (iterative)."""
    depth = 0
    while isinstance(x, list) and x:
        x = x[0]
        depth += 1
    return depth


def is_self_referencing(x):
    return isinstance(x, list) and len(x) == 1 and x[0] is x


def make_lock():
    import threading
    return threading.Lock()
