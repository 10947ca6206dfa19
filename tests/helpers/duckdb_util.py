"""What the DuckDB tests share: duckdb and manygil.duckdb, or a module-level
skip that says why they cannot run here (no duckdb wheel for this Python,
or a manygil built without its DuckDB extension)."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pinned_version():
    with open(os.path.join(REPO, "src", "duckdb", "duckdb-version.txt")) as f:
        return f.read().strip()


duckdb = pytest.importorskip(
    "duckdb", reason="duckdb does not install for this Python (no wheel on the package index "
                     "for its version or ABI): the DuckDB tests cannot run here")

import manygil.duckdb as mgdb  # noqa: E402

try:
    mgdb.extension_path()
except mgdb.ExtensionError as e:
    pytest.skip(str(e), allow_module_level=True)
