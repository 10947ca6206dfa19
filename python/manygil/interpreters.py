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

__all__ = ["create", "destroy", "run_string", "list_all", "get_current", "get_main",
           "InterpreterError", "InterpreterNotFoundError", "ExecutionFailed",
           "NotShareableError"]


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
