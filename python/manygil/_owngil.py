"""Values whose types come from extensions that cannot load in own-GIL
interpreters (numpy, pandas, ...): found before anything is sent.

A value is pickled for another interpreter only if the target can rebuild
it, and it cannot when the extension module that defines the value's type
refuses own-GIL interpreters.  What an extension accepts is written in its
module def (PEP 489/684: single-phase modules, and multi-phase ones without
``Py_mod_multiple_interpreters = Py_MOD_PER_INTERPRETER_GIL_SUPPORTED``, are
refused), so it is read from the loaded module in this process -- never by
trying an import elsewhere -- once per type, then cached.

Where a type comes from: a static type's storage lies in its extension's
shared object (dladdr); a heap type made by PyType_FromModuleAndSpec knows
its module; any other type is taken to live in the module ``__module__``
names (an extension's own heap types, Python classes).

Not refused: the stdlib's own extensions -- the stdlib keeps pure-Python
fallbacks for those that cannot load (3.12's _datetime, _decimal), which
manygil._pickle uses.  A third-party package that falls back to pure Python
when its accelerator cannot load is refused all the same: the module def
says the accelerator cannot load, not that a fallback exists.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
import types

from . import _core

# type (or builtin function) -> None (crosses) or (package, extension
# module, how it refuses).
refusals: dict[object, tuple[str, str, str] | None] = {}
_MAX_CACHED = 4096                          # bounds the cache for made-up types

_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)
# The stdlib's folders and the site-packages folders, found on first use
# from os.__file__ and sys.path (not sysconfig: importing and initialising
# it in a pool worker could be cut short by a task's interrupt, and would
# stay half-initialised in that worker for good).
_dirs: tuple[tuple[str, ...], tuple[str, ...]] | None = None


def _stdlib_and_site() -> tuple[tuple[str, ...], tuple[str, ...]]:
    global _dirs
    if _dirs is None:
        real = lambda p: os.path.realpath(p) + os.sep   # noqa: E731
        entries = [p for p in sys.path if isinstance(p, str) and p]
        stdlib = {real(os.path.dirname(os.__file__))}
        stdlib.update(real(p) for p in entries if os.path.basename(p) == "lib-dynload")
        site = {real(p) for p in entries
                if os.path.basename(p) in ("site-packages", "dist-packages")}
        _dirs = (tuple(stdlib), tuple(site))
    return _dirs


_by_file: dict[str, object] = {}
_by_file_seen = -1                          # len(sys.modules) when _by_file was built


def find_refusal(tp: type) -> tuple[str, str, str] | None:
    """Why values of type tp cannot cross, or None if they may; cached in
    `refusals` (callers look there first)."""
    if len(refusals) >= _MAX_CACHED:
        refusals.clear()
    home = _core._type_home(tp)
    if isinstance(home, str):
        module = _module_by_file(home)
    elif home is not None:
        module = home
    else:
        module = sys.modules.get(getattr(tp, "__module__", None) or "")
    verdict = _module_refusal(module, tp)
    meta = type(tp)
    if verdict is None and meta is not type and issubclass(meta, type):
        # A class made at run time by an extension's metaclass (numpy's
        # per-dtype classes): it lives and dies with that extension.
        verdict = refusals.get(meta, _UNKNOWN)
        if verdict is _UNKNOWN:
            verdict = find_refusal(meta)
        if verdict is not None:
            verdict = (getattr(tp, "__module__", "?").partition(".")[0],) + verdict[1:]
    refusals[tp] = verdict
    return verdict


def check_global(obj: object) -> None:
    """For the codec, before it sends a class or a builtin function by name:
    NotShareableError if its extension refuses own-GIL interpreters (the
    target could not import it)."""
    refusal = refusals.get(obj, _UNKNOWN)    # type: ignore[call-overload]
    if refusal is _UNKNOWN:
        if isinstance(obj, type):
            refusal = find_refusal(obj)
        else:
            self = getattr(obj, "__self__", None)
            module = self if isinstance(self, types.ModuleType) else None
            refusal = refusals[obj] = _module_refusal(module, obj)  # type: ignore[index]
    if refusal is not None:
        from ._errors import NotShareableError
        raise NotShareableError(message(obj, refusal))


_UNKNOWN = object()


def _module_refusal(module: object, what: object) -> tuple[str, str, str] | None:
    if module is None or not _third_party_extension(module):
        return None
    support = _core._module_gil_support(module)
    if support is None or support == "per-interpreter-gil":
        return None
    name = getattr(module, "__name__", "?")
    package = (getattr(what, "__module__", None) or name).partition(".")[0]
    return (package, name, support)


def message(obj: object, refusal: tuple[str, str, str]) -> str:
    """The NotShareableError text for obj: which module, why, what works."""
    package, ext, _how = refusal
    if isinstance(obj, type):
        kind, named = "class", obj
    elif isinstance(obj, types.BuiltinFunctionType):
        kind, named = "function", obj
    else:
        kind, named = "object", type(obj)
    what = f"{named.__module__}.{named.__qualname__}"
    where = package if ext == package else f"{package} (its extension module {ext})"
    head = (f"cannot share {what!r} {kind}: {where} does not support own-GIL "
            "interpreters, so it cannot be imported in the target")
    hints = []
    if kind == "object":
        try:
            with memoryview(obj) as mv:     # type: ignore[arg-type]
                hints.append("memoryview(x) crosses as a copy"
                             + (" with the same format and shape" if _castable(mv) else
                                " of its bytes (format and shape are kept for "
                                "memoryview.cast()'s formats, not this one)"))
                hints.append("a manygil.SharedBuffer shares the data without copying")
        except (TypeError, ValueError, BufferError):
            pass
        if callable(getattr(obj, "tolist", None)):
            hints.append("x.tolist() crosses as plain Python values")
    if not hints:
        hints.append("send plain Python values (numbers, str, bytes, lists, dicts) instead")
    return f"{head}; {'; '.join(hints)}"


def _castable(mv: memoryview) -> bool:
    try:
        memoryview(b"\0" * mv.itemsize).cast("B").cast(mv.format)
        return True
    except (TypeError, ValueError):
        return False


def _third_party_extension(module: object) -> bool:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(_SUFFIXES):
        return False
    path = os.path.realpath(path)
    stdlib, site = _stdlib_and_site()
    return not path.startswith(stdlib) or path.startswith(site)  # site-packages may sit inside


def _module_by_file(path: str) -> object | None:
    """The loaded extension module whose shared object is path."""
    global _by_file_seen
    path = os.path.realpath(path)
    if path not in _by_file and len(sys.modules) != _by_file_seen:
        _by_file_seen = len(sys.modules)
        for mod in list(sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str) and f.endswith(_SUFFIXES):
                _by_file.setdefault(os.path.realpath(f), mod)
    return _by_file.get(path)
