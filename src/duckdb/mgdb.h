/*
 * mgdb.h -- internal declarations of manygil's DuckDB extension.
 *
 * The extension (src/duckdb/) is a client of manygil's public C API
 * (include/manygil.h, reached through mg_api after mg_import()) and of
 * DuckDB's extension C API (duckdb_extension.h, C API v1, ABI C_STRUCT).
 * It includes nothing of src/core or src/py.
 *
 *   ext.c    the entry point
 *   udf.c    Python scalar functions: staging, registration, evaluation
 */
#ifndef MGDB_H
#define MGDB_H

#include <stddef.h>
#include <stdint.h>

#include "duckdb_extension.h"

/* The table of DuckDB functions; defined by the entry point in ext.c. */
DUCKDB_EXTENSION_EXTERN

#define MGDB_EXPORT __attribute__((visibility("default")))

/* The version of the functions Python reaches with ctypes (manygil_duckdb_*);
 * python/manygil/duckdb.py checks it. */
#define MGDB_CTYPES_ABI 1

#endif /* MGDB_H */
