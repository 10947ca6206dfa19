"""manygil.duckdb: loading manygil's DuckDB extension (connect, load, errors)."""
import os
import subprocess
import sys

import pytest

from helpers.duckdb_util import duckdb, mgdb, pinned_version

pytestmark = pytest.mark.timeout(60)


def threads_now():
    return len(os.listdir("/proc/self/task"))


def test_pinned_duckdb_version():
    # The extension's C API version must suit the engine it loads into: the
    # test venvs install the release whose headers built it.
    assert duckdb.__version__ == pinned_version()


LOADED = "SELECT count(*) FROM duckdb_extensions() WHERE extension_name = 'manygil' AND loaded"


def test_connect_returns_a_duckdb_connection_with_the_extension():
    con = mgdb.connect()
    try:
        assert isinstance(con, duckdb.DuckDBPyConnection)
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchall() == [(True,)]
        assert con.execute(LOADED).fetchall() == [(1,)]
        # A cursor shares the database, and so the extension.
        assert con.cursor().execute(LOADED).fetchall() == [(1,)]
    finally:
        con.close()


def test_load_again_is_harmless_and_databases_are_separate():
    a = mgdb.connect()
    assert mgdb.load(a) is a
    assert mgdb.load(a.cursor()) is not None
    assert a.execute(LOADED).fetchall() == [(1,)]
    plain = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    assert plain.execute(LOADED).fetchall() == [(0,)]
    a.close()
    plain.close()


def test_load_into_a_connection_made_by_the_user():
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    assert mgdb.load(con) is con
    assert con.execute(LOADED).fetchall() == [(1,)]
    con.close()


def test_load_without_unsigned_extensions_says_what_to_do():
    con = duckdb.connect()
    with pytest.raises(mgdb.ExtensionError) as exc:
        mgdb.load(con)
    msg = str(exc.value)
    assert "allow_unsigned_extensions" in msg and "manygil.duckdb.connect" in msg
    assert "cannot be changed" in msg
    con.close()


def test_load_rejects_what_is_not_a_connection():
    with pytest.raises(TypeError, match="DuckDBPyConnection"):
        mgdb.load("not a connection")


def test_connect_refuses_a_config_that_forbids_unsigned_extensions():
    with pytest.raises(ValueError, match="allow_unsigned_extensions"):
        mgdb.connect(config={"allow_unsigned_extensions": "false"})


def test_connect_passes_config_and_file_database_through(tmp_path):
    path = str(tmp_path / "t.duckdb")
    con = mgdb.connect(path, config={"threads": "3"})
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
    con.close()
    ro = mgdb.connect(path, read_only=True)
    assert ro.execute("SELECT x FROM t").fetchall() == [(1,)]
    ro.close()


def test_the_database_closes_with_its_connections():
    # The extension keeps nothing of a database: closing the connection
    # ends the database (its worker threads), and a file database can be
    # opened again at once.
    before = threads_now()
    con = mgdb.connect(config={"threads": "6"})
    con.execute("SELECT 1").fetchall()
    assert threads_now() >= before + 5
    con.close()
    assert threads_now() <= before


def test_load_from_sql_also_works_and_registers_nothing():
    # The entry point registers only what create_function staged: a plain LOAD
    # statement (DuckDB runs it without the GIL) just loads the extension.
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    path = mgdb.extension_path().replace("'", "''")
    con.execute(f"LOAD '{path}'")
    assert con.execute(LOADED).fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'manygil%'"
                       ).fetchall() == [(0,)]
    con.close()


def test_process_exit_with_a_connection_open_is_clean():
    code = ("import manygil.duckdb as m\n"
            "con = m.connect(config={'threads': '4'})\n"
            "con.execute('SELECT 1').fetchall()\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr)
    assert "Fatal" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
