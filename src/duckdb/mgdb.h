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
 *   sigint.c Ctrl-C interrupts the chunks being evaluated
 */
#ifndef MGDB_H
#define MGDB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "duckdb_extension.h"

/* The table of DuckDB functions; defined by the entry point in ext.c. */
DUCKDB_EXTENSION_EXTERN

#define MGDB_EXPORT __attribute__((visibility("default")))

/* The version of the functions Python reaches with ctypes (manygil_duckdb_*);
 * python/manygil/duckdb.py checks it. */
#define MGDB_CTYPES_ABI 1

/* 1 if Python staged a function for registration (manygil_duckdb_stage). */
int mgdb__staged(void);

/* Register the staged function on conn (a connection to the database being
 * loaded into) and forget it.  0, or -1 with the reason in err. */
int mgdb__register_staged(duckdb_connection conn, char *err, size_t errlen);

/* A DuckDB thread's evaluation state, listed while it exists so that Ctrl-C
 * can reach the interpreter it is running a chunk in. */
typedef struct mgdb_running {
  _Atomic int64_t interp;      /* the interpreter evaluating a chunk, 0 if none */
  struct mgdb_running *prev, *next;   /* guarded by sigint.c's running_mutex */
} mgdb_running_t;

void mgdb__running_add(mgdb_running_t *r);
void mgdb__running_remove(mgdb_running_t *r);

/* Chain the extension's SIGINT handler in front of the current one (Python's)
 * unless it is there already or SIGINT is not handled.  Any thread. */
void mgdb__sigint_chain(void);

/* mg_interp_interrupt(id) through manygil's table (udf.c). */
void mgdb__interrupt(int64_t id);

#endif /* MGDB_H */
