"""The functional API that articles about PEP 684/554 teach, on ints.

    from manygil import interpreters
    interp = interpreters.create()
    interpreters.run_string(interp, "print('hello from', __name__)")
    interpreters.destroy(interp)
"""
from __future__ import annotations

from typing import Any

from . import _core
from ._errors import ExecutionFailed, InterpreterError, InterpreterNotFoundError, NotShareableError

from ._errors import (ChannelClosedError, ChannelEmptyError, ChannelError,
                      ChannelNotFoundError, ChannelTimeoutError)

__all__ = ["create", "destroy", "run_string", "list_all", "get_current", "get_main",
           "create_channel", "channel_send", "channel_recv", "channel_close",
           "InterpreterError", "InterpreterNotFoundError", "ExecutionFailed",
           "NotShareableError", "ChannelError", "ChannelNotFoundError",
           "ChannelClosedError", "ChannelEmptyError", "ChannelTimeoutError"]


def create() -> int:
    """Create an isolated own-GIL interpreter and return its id."""
    return _core.create()


def destroy(id: int) -> None:
    """Close interpreter ``id`` (InterpreterNotFoundError if there is none)."""
    _core.destroy(id)


def run_string(id: int, script: str, shared: dict[str, Any] | None = None) -> None:
    """Run source code in interpreter ``id``'s __main__, blocking the calling
    thread only.  ``shared`` values are bound in __main__ first.  Raises
    ExecutionFailed if the code raises."""
    if not isinstance(script, str):
        raise TypeError(f"run_string() expects source code as str, not {type(script).__name__}")
    if shared:
        _core.prepare_main(id, dict(shared))
    _core.exec(id, script)


def list_all() -> list[int]:
    """Ids of the main interpreter and every open manygil interpreter."""
    return _core.list_all()


def get_current() -> int:
    return _core.get_current()


def get_main() -> int:
    return _core.get_main()


def create_channel() -> tuple[int, int]:
    """Create a channel named by two plain ints: ``(send_id, recv_id)``.

    The ids work from any interpreter (embed them in code, pass them as
    values).  They keep the channel open until :func:`channel_close`."""
    return _core._channel_ids()


def channel_send(send_id: int, obj: Any, timeout: float | None = None) -> None:
    """Send a copy of ``obj``; ``timeout`` in seconds (ChannelTimeoutError).
    ValueError if ``send_id`` is a receive id."""
    _core._channel_send(send_id, obj, timeout)


def channel_recv(recv_id: int, timeout: float | None = None) -> Any:
    """Receive the next item, waiting up to ``timeout`` seconds (None: for
    ever).  ValueError if ``recv_id`` is a send id."""
    return _core._channel_recv(recv_id, timeout)


def channel_close(id: int) -> None:
    """Close one side: a send id closes sending (receivers drain what is
    left, then get ChannelClosedError); a receive id closes receiving."""
    _core._channel_close(id)
