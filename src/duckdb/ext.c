/*
 * ext.c -- the entry point of manygil's DuckDB extension.
 *
 * DuckDB calls manygil_init_c_api() when a connection loads the extension:
 * once per database for a plain LOAD (manygil.duckdb.load), and again for
 * every LOAD '<path>' AS <alias> with a new alias.  The database handle it
 * lends is valid only during that call and must not be kept, so the
 * extension keeps nothing of a database: a function is registered by such an
 * aliased LOAD, whose entry point takes the registration that Python staged
 * just before (manygil_duckdb_stage, udf.c), opens a connection, registers
 * the function in the database's catalog and disconnects.  The database's
 * lifetime stays DuckDB's own; a function's state (udf.c) is freed by DuckDB
 * with the catalog.
 */
#include <Python.h>

#define DUCKDB_EXTENSION_NAME manygil
#include "mgdb.h"

/* DUCKDB_EXTENSION_ENTRYPOINT_CUSTOM below defines duckdb_ext_api, the
 * table of DuckDB functions (mgdb.h declares it for every file). */

DUCKDB_EXTENSION_ENTRYPOINT_CUSTOM(duckdb_extension_info info, struct duckdb_extension_access *access)
{
  if (!Py_IsInitialized()) {
    access->set_error(info, "manygil's DuckDB extension runs Python functions: load it from "
                            "Python with manygil.duckdb.load(con) or manygil.duckdb.connect()");
    return false;
  }
  if (!mgdb__staged())
    return true;               /* a plain LOAD: nothing to register */
  duckdb_database *db = access->get_database(info);
  if (db == NULL)
    return false;              /* DuckDB has set the error */
  duckdb_connection conn;
  if (duckdb_connect(*db, &conn) == DuckDBError) {
    access->set_error(info, "manygil: could not open a connection to the database");
    return false;
  }
  char err[512];
  int rc = mgdb__register_staged(conn, err, sizeof(err));
  duckdb_disconnect(&conn);
  if (rc < 0) {
    access->set_error(info, err);
    return false;
  }
  return true;
}

/* The version of the functions Python reaches with ctypes (MGDB_CTYPES_ABI). */
MGDB_EXPORT int
manygil_duckdb_abi(void)
{
  return MGDB_CTYPES_ABI;
}
