"""DuckDB Python UDFs evaluated in parallel, one own-GIL interpreter per
DuckDB worker thread.

    import manygil.duckdb as mgdb

    con = mgdb.connect()                      # a duckdb.DuckDBPyConnection
    mgdb.create_function(con, "plus_one", lambda x: x + 1, ["BIGINT"], "BIGINT")
    con.sql("SELECT sum(plus_one(i)) FROM t").fetchall()

The work is done by manygil's DuckDB extension (manygil.duckdb_extension,
built with the package): DuckDB loads it into the connection's database and
calls it from its own threads; each thread evaluates the UDF in the
interpreter manygil binds to it, so the main interpreter's GIL is never taken
while a query runs.  Python reaches the extension's own functions through
ctypes (the library DuckDB opened, opened again by the same path).
"""
from __future__ import annotations

import ctypes
import os
import threading

__all__ = ["ExtensionError", "connect", "load", "extension_path"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_EXTENSION = os.path.join(_HERE, "manygil.duckdb_extension")
_MISSING = os.path.join(_HERE, "duckdb_extension_missing.txt")
_CTYPES_ABI = 1


class ExtensionError(RuntimeError):
    """manygil's DuckDB extension is missing, or not loaded where it is needed."""


def extension_path() -> str:
    """The path of manygil's DuckDB extension; ExtensionError if this build has none."""
    if not os.path.isfile(_EXTENSION):
        why = "the file is missing"
        if os.path.isfile(_MISSING):
            with open(_MISSING, encoding="utf-8") as f:
                why = f.read().strip()
        raise ExtensionError(f"manygil's DuckDB extension is not installed ({_EXTENSION}): {why}")
    return _EXTENSION


def _duckdb():
    try:
        import duckdb
    except ImportError as e:
        raise ImportError("manygil.duckdb needs the duckdb package (pip install duckdb)") from e
    return duckdb


_lib_lock = threading.Lock()
_lib = None          # the extension's library, once opened


def _library():
    """The extension's exported functions (ctypes.PyDLL: called holding the GIL)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            path = extension_path()
            # RTLD_LOCAL as DuckDB opens it: the same path gives the same handle.
            lib = ctypes.PyDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
            if lib.manygil_duckdb_abi() != _CTYPES_ABI:
                raise ExtensionError(f"{path} does not match this manygil.duckdb "
                                     f"(interface {lib.manygil_duckdb_abi()}, expected {_CTYPES_ABI})")
            _lib = lib
        return _lib


def _unsigned_allowed(con) -> bool:
    rows = con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchall()
    return bool(rows[0][0])


def _loaded(con) -> bool:
    rows = con.execute("SELECT count(*) FROM duckdb_extensions() "
                       "WHERE extension_name = 'manygil' AND loaded").fetchall()
    return rows[0][0] > 0


def load(con):
    """Load manygil's DuckDB extension into con's database (once per database;
    loading again is harmless).  con must have been made with unsigned
    extensions allowed, which cannot be changed on a running database."""
    duckdb = _duckdb()
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise TypeError(f"manygil.duckdb.load() needs a duckdb.DuckDBPyConnection, "
                        f"not {type(con).__name__}")
    if not _loaded(con):
        if not _unsigned_allowed(con):
            raise ExtensionError(
                "this DuckDB connection does not allow unsigned extensions, and manygil's "
                "extension is unsigned: make the connection with manygil.duckdb.connect(...), or "
                "with duckdb.connect(..., config={'allow_unsigned_extensions': 'true'}) and then "
                "call manygil.duckdb.load(con) (the setting cannot be changed once the "
                "database runs)")
        con.load_extension(extension_path())
    _library()
    return con


def connect(database: str = ":memory:", read_only: bool = False, config: dict | None = None):
    """duckdb.connect() with unsigned extensions allowed and manygil's extension
    loaded: a duckdb.DuckDBPyConnection."""
    duckdb = _duckdb()
    config = dict(config or {})
    value = config.get("allow_unsigned_extensions", "true")
    if str(value).lower() not in ("true", "1"):
        raise ValueError("manygil.duckdb.connect() needs allow_unsigned_extensions "
                         f"(config has {value!r}): manygil's extension is unsigned")
    config["allow_unsigned_extensions"] = "true"
    con = duckdb.connect(database, read_only=read_only, config=config)
    try:
        return load(con)
    except BaseException:
        con.close()
        raise
