"""The pickle side of the codec: values the C codec does not write natively.

Pickle protocol 5, plus reductions that let functions and classes cross
between interpreters of one process:

* importable functions and classes cross by reference (module + qualname);
* functions and classes of the main script cross by reference to the script,
  which the target imports under the name ``__mp_main__`` (as
  ``multiprocessing``'s spawn does; keep the ``if __name__ == "__main__":``
  guard in scripts);
* functions that cannot be found by name -- lambdas, nested functions,
  functions typed at the prompt -- cross by value: their code (``marshal``),
  defaults, closure cells and the globals they use; modules they use are
  re-imported by name in the target.
"""
from __future__ import annotations

import _pickle
import builtins
import importlib
import io
import marshal
import os
import sys
import types

from ._errors import NotShareableError

_MAIN_NAMES = ("__main__", "__mp_main__")


# Out-of-band buffers (pickle protocol 5) at least this big travel in shared
# memory: copied once here, used in place by the receiving side.
OOB_MIN = 64 * 1024


def dumps(obj: object) -> bytes | tuple[bytes, list]:
    """Pickle obj for another interpreter; NotShareableError if it cannot.

    Returns the pickle, or (pickle, [PickleBuffer, ...]) when obj exports
    big out-of-band buffers: the C codec moves those to shared memory."""
    buf = io.BytesIO()
    oob: list = []

    def keep_big_buffers_out_of_band(pb: object) -> bool:
        if pb.raw().nbytes < OOB_MIN:       # type: ignore[attr-defined]
            return True                     # small: in-band
        oob.append(pb)
        return False

    try:
        _Pickler(buf, 5, True, keep_big_buffers_out_of_band).dump(obj)
    except NotShareableError:
        raise
    except RecursionError:
        raise NotShareableError(
            f"cannot share {_type_name(obj)} object: it is nested too deeply "
            "(or is a very long chain of references)") from None
    except Exception as exc:
        raise NotShareableError(f"cannot share {_type_name(obj)} object: {exc}") from exc
    return (buf.getvalue(), oob) if oob else buf.getvalue()


def loads(data: bytes, buffers: list | None = None) -> object:
    if not buffers:
        return _pickle.loads(data)
    if _KEYWORDS_UNSAFE and _in_subinterpreter():
        import pickle
        return pickle._loads(data, buffers=buffers)  # type: ignore[attr-defined]
    return _pickle.loads(data, buffers=buffers)


def _type_name(obj: object) -> str:
    tp = type(obj)
    mod = tp.__module__
    name = tp.__qualname__ if mod == "builtins" else f"{mod}.{tp.__qualname__}"
    return repr(name)


# CPython 3.12: calling a C function with keyword arguments inside a
# subinterpreter can corrupt the heap when that interpreter is finalized
# (seen on 3.12.1 with pickle's `protocol=`, `buffer_callback=` and
# `buffers=`: 'free(): invalid pointer' at exit).  So the C pickler is always
# called positionally, and unpickling with out-of-band buffers in a 3.12
# subinterpreter (keyword-only in C) uses the pure-Python unpickler.
_KEYWORDS_UNSAFE = sys.version_info < (3, 13)


def _in_subinterpreter() -> bool:
    from . import _core
    return _core.get_current() != _core.get_main()


class _Pickler(_pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType):
            return _reduce_function(obj)
        if isinstance(obj, type):
            return _reduce_class(obj)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, types.CodeType):
            return marshal.loads, (marshal.dumps(obj),)
        if type(obj).__module__ in _PURE_FALLBACKS:
            return _reduce_pure_fallback(obj)
        return NotImplemented


# CPython 3.12's _datetime and _decimal cannot load in own-GIL interpreters,
# so there `datetime` and `decimal` are the pure-Python _pydatetime and
# _pydecimal.  Their objects are sent as instances of the public module's
# class, so they arrive as the main interpreter's C types (and back).
_PURE_FALLBACKS = {"_pydatetime": "datetime", "_pydecimal": "decimal"}


def _reduce_pure_fallback(obj):
    rv = obj.__reduce_ex__(5)
    if not isinstance(rv, tuple) or not isinstance(rv[0], type):
        return rv
    # The constructor arguments carry the whole value (as for the C types);
    # the pure classes' slot state has no meaning for the C types: drop it.
    public = _PURE_FALLBACKS[type(obj).__module__]
    return _construct, (public, rv[0].__qualname__, rv[1])


def _construct(module: str, qualname: str, args: tuple):
    return _lookup(importlib.import_module(module), qualname)(*args)


# ---- lookup by name -------------------------------------------------------

def _lookup(module: types.ModuleType | None, qualname: str):
    if module is None or "<" in qualname:
        return None
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _main_ref(module_name: str):
    """How the target finds the main script: ('path', file) or
    ('module', name) for ``python -m``; None when main is interactive."""
    mod = sys.modules.get(module_name)
    if mod is None:
        return None
    spec = getattr(mod, "__spec__", None)
    if spec is not None and spec.name not in _MAIN_NAMES:
        return ("module", spec.name)
    path = getattr(mod, "__file__", None)
    if path:
        return ("path", os.path.abspath(path))
    return None


def _main_attr(ref: tuple, qualname: str):
    """In the target: the object `qualname` of the main script named by ref."""
    obj = _lookup(_main_module(ref), qualname)
    if obj is None:
        raise AttributeError(f"main script has no attribute {qualname!r}")
    return obj


def _main_module(ref: tuple) -> types.ModuleType:
    kind, where = ref
    for name in _MAIN_NAMES:
        mod = sys.modules.get(name)
        if mod is not None and _main_ref(name) == ref:
            return mod
    if kind == "module":
        return importlib.import_module(where)
    import importlib.util
    spec = importlib.util.spec_from_file_location("__mp_main__", where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the main script {where!r}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["__mp_main__"] = mod
    global importing_main
    importing_main = where
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules["__mp_main__"]
        raise
    finally:
        importing_main = None
    return mod


# The main script being imported as __mp_main__ in this interpreter, if any:
# creating interpreters then means the script lacks its main guard.
importing_main: str | None = None


def _reduce_class(cls: type):
    if cls.__module__ in _PURE_FALLBACKS:
        return _lookup, (importlib.import_module(_PURE_FALLBACKS[cls.__module__]),
                         cls.__qualname__)
    if cls.__module__ not in _MAIN_NAMES:
        return NotImplemented
    ref = _main_ref(cls.__module__)
    if ref is None or _lookup(sys.modules.get(cls.__module__), cls.__qualname__) is not cls:
        raise NotShareableError(
            f"cannot share class {cls.__qualname__!r}: it is defined interactively or "
            "inside a function of the main script; define it at the top level of a "
            "module or script")
    return _main_attr, (ref, cls.__qualname__)


def _reduce_function(fn: types.FunctionType):
    module_name = fn.__module__
    qualname = fn.__qualname__
    if module_name in _MAIN_NAMES:
        ref = _main_ref(module_name)
        if ref is not None and _lookup(sys.modules.get(module_name), qualname) is fn:
            return _main_attr, (ref, qualname)
    elif _lookup(sys.modules.get(module_name), qualname) is fn:
        return NotImplemented               # by reference: pickle's save_global
    return _reduce_by_value(fn)


# ---- functions by value ---------------------------------------------------

class _Empty:
    """Marks an empty closure cell."""


def _global_names(code: types.CodeType, out: set) -> set:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _global_names(const, out)
    return out


def _reduce_by_value(fn: types.FunctionType):
    code = fn.__code__
    g = fn.__globals__
    used = {name: g[name] for name in _global_names(code, set()) if name in g}
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_Empty)
    state = (used, fn.__defaults__, fn.__kwdefaults__, tuple(cells),
             fn.__dict__ or None, fn.__doc__, fn.__annotations__ or None)
    args = (marshal.dumps(code), fn.__name__, fn.__qualname__, fn.__module__, len(cells))
    return _make_function, args, state, None, None, _fill_function


def _make_function(code_bytes, name, qualname, module, ncells):
    """The skeleton of a function sent by value: its globals and cells are
    filled by _fill_function once they are unpickled (they may refer back to
    the function itself)."""
    code = marshal.loads(code_bytes)
    g = {"__builtins__": builtins, "__name__": module}
    cells = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    fn = types.FunctionType(code, g, name, None, cells)
    fn.__qualname__ = qualname
    fn.__module__ = module
    return fn


def _fill_function(fn, state):
    used, defaults, kwdefaults, cells, fdict, doc, annotations = state
    fn.__globals__.update(used)
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    for cell, value in zip(fn.__closure__ or (), cells):
        if value is not _Empty:
            cell.cell_contents = value
    if fdict:
        fn.__dict__.update(fdict)
    fn.__doc__ = doc
    if annotations:
        fn.__annotations__ = annotations
