"""manygil: parallel Python in one process, on interpreters that each own
their GIL (PEP 684).

    import manygil

    def work(n):
        return sum(i * i for i in range(n))

    with manygil.create() as interp:
        print(interp.call(work, 10_000_000))
"""
from __future__ import annotations

import atexit as _atexit
import sys as _sys

from . import _core
from ._api import Interpreter, create, get_current, get_main, is_shareable, list_all
from ._core import (Queue, RecvChannel, SendChannel, SharedBuffer, create_channel, create_queue,
                    list_queues)
from ._errors import (
    ChannelClosedError,
    ChannelEmptyError,
    ChannelError,
    ChannelFullError,
    ChannelNotFoundError,
    ChannelTimeoutError,
    DeadlockError,
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
    TaskTimeout,
)
from ._watch import HangReport, Watchdog, configure, dump_stacks, format_stacks, watchdog

__version__ = "0.1.0"

__all__ = [
    "DeadlockError",
    "TaskTimeout",
    "configure",
    "watchdog",
    "Watchdog",
    "HangReport",
    "dump_stacks",
    "format_stacks",
    "Interpreter",
    "create",
    "list_all",
    "get_current",
    "get_main",
    "is_shareable",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ExecutionFailed",
    "NotShareableError",
    "SharedBuffer",
    "create_channel",
    "create_queue",
    "SendChannel",
    "RecvChannel",
    "Queue",
    "ChannelError",
    "ChannelNotFoundError",
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelFullError",
    "ChannelTimeoutError",
    "QueueEmpty",
    "QueueFull",
    "QueueError",
    "QueueNotFoundError",
    "list_queues",
    "InterpreterPoolExecutor",
    "BrokenInterpreterPool",
    "map",
    "get_include",
    "spawn",
    "ActorSystem",
    "ActorRef",
    "ActorStoppedError",
]


def get_include() -> str:
    """The folder holding the installed ``manygil.h``: the C API that a
    program embedding Python (a host) uses through ``mg_import()``.
    Compile with ``-I$(python -m manygil include)``; link only libpython."""
    import os
    return os.path.join(os.path.dirname(__file__), "include")


def _close_all_at_exit() -> None:
    """End the interpreters still open when the main interpreter exits.

    Runs after non-daemon threads were joined.  An interpreter that still
    runs code (in a daemon thread, an abandoned pool worker) is ended too,
    without waiting for that thread: the thread is left alone for good (it
    never runs again), so that the process exits cleanly and at once."""
    _core._end_at_exit()
    # Whatever _end_at_exit could not end (it ends abandoned pool workers'
    # interpreters too, so this usually finds nothing left).
    _core._end_abandoned()


if _core.get_current() == _core.get_main():
    _atexit.register(_close_all_at_exit)
    # fork(): refused while interpreters are alive; a child made without any
    # gets fresh process-global state (src/py/fork.c has the rule).
    _core._fork_init()
    import os as _os
    _os.register_at_fork(after_in_child=_core._after_fork_child)
    del _os
    import threading as _threading
    _core._init_main(_threading.main_thread().ident, _threading.active_count() - 1,
                     _sys.flags.dev_mode)
    del _threading

_POOL_NAMES = ("InterpreterPoolExecutor", "BrokenInterpreterPool", "map")
_ACTOR_NAMES = ("spawn", "ActorSystem", "ActorRef", "ActorStoppedError")


def __getattr__(name: str):
    # The pool (and concurrent.futures) load on first use: interpreters that
    # only run tasks never pay for them.
    if name in _POOL_NAMES:
        from . import _pool
        return getattr(_pool, name)
    if name in _ACTOR_NAMES:
        from . import _actors
        return getattr(_actors, name)
    raise AttributeError(f"module 'manygil' has no attribute {name!r}")
