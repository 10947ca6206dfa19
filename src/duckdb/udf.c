/*
 * udf.c -- Python scalar functions in DuckDB, evaluated by manygil.
 *
 * Registration (manygil.duckdb.create_function) happens in two steps:
 *   1. Python stages the function (manygil_duckdb_stage, through ctypes,
 *      holding the main interpreter's GIL): the callable is resolved once
 *      with mg_func_from_object (by reference or by value, per manygil's
 *      codec) and the SQL types are mapped to manygil's column types;
 *   2. Python runs LOAD '<extension>' AS <new alias>: DuckDB calls the entry
 *      point (ext.c) with the database, which registers the staged function
 *      there (mgdb__register_staged) and forgets it.
 * Evaluation: DuckDB calls exec_fn per chunk (at most 2048 rows), on any of
 * its worker threads, holding no GIL.  The thread's own interpreter
 * (mg_thread_interp: created on the thread's first chunk, kept for the
 * thread's life) runs the function over the chunk (mg_call_batch).  The
 * buffers a thread needs live in its state (init_fn: once per thread and
 * query), so a chunk allocates nothing after the first.  While a chunk runs,
 * the state names its interpreter for Ctrl-C (sigint.c).
 *
 * Lock order: staged_mutex only.
 */
#include <Python.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manygil.h"
#include "mgdb.h"

/* ---- SQL types and manygil's column types --------------------------------- */

typedef struct {
  const char *sql;             /* DuckDB's canonical name (str(duckdb.sqltype(x))) */
  duckdb_type duck;
  mg_type_t mg;
} type_map_t;

static const type_map_t TYPES[] = {
  {"BOOLEAN", DUCKDB_TYPE_BOOLEAN, MG_T_BOOL},
  {"TINYINT", DUCKDB_TYPE_TINYINT, MG_T_INT8},
  {"SMALLINT", DUCKDB_TYPE_SMALLINT, MG_T_INT16},
  {"INTEGER", DUCKDB_TYPE_INTEGER, MG_T_INT32},
  {"BIGINT", DUCKDB_TYPE_BIGINT, MG_T_INT64},
  {"UTINYINT", DUCKDB_TYPE_UTINYINT, MG_T_UINT8},
  {"USMALLINT", DUCKDB_TYPE_USMALLINT, MG_T_UINT16},
  {"UINTEGER", DUCKDB_TYPE_UINTEGER, MG_T_UINT32},
  {"UBIGINT", DUCKDB_TYPE_UBIGINT, MG_T_UINT64},
  {"FLOAT", DUCKDB_TYPE_FLOAT, MG_T_FLOAT32},
  {"DOUBLE", DUCKDB_TYPE_DOUBLE, MG_T_FLOAT64},
  {"VARCHAR", DUCKDB_TYPE_VARCHAR, MG_T_TEXT},
  {"BLOB", DUCKDB_TYPE_BLOB, MG_T_BINARY},
};
#define NTYPES (sizeof(TYPES) / sizeof(TYPES[0]))
#define SUPPORTED "BOOLEAN, TINYINT, SMALLINT, INTEGER, BIGINT, UTINYINT, USMALLINT, " \
                  "UINTEGER, UBIGINT, FLOAT, DOUBLE, VARCHAR, BLOB"

static const type_map_t *
type_find(const char *sql, size_t len)
{
  for (size_t i = 0; i < NTYPES; i++)
    if (strlen(TYPES[i].sql) == len && memcmp(TYPES[i].sql, sql, len) == 0)
      return &TYPES[i];
  return NULL;
}

static int
is_bytes(mg_type_t t)
{
  return t == MG_T_TEXT || t == MG_T_BINARY;
}

/* ---- a registered function ------------------------------------------------- */

/* mg_call_batch takes 0 to 64 input columns. */
#define MGDB_MAX_PARAMS 64

/* Options of manygil_duckdb_stage (python/manygil/duckdb.py sends them). */
#define MGDB_OPT_SPECIAL_NULL  0x1   /* null_handling="special" */
#define MGDB_OPT_RETURN_NULL   0x2   /* exception_handling="return_null" */
#define MGDB_OPT_SIDE_EFFECTS  0x4   /* side_effects=True */

typedef struct {
  char *name;
  mg_func_t *f;
  mg_func_t *init;             /* initializer= or NULL */
  int flags;                   /* MG_CALL_* */
  int options;                 /* MGDB_OPT_* */
  int nparams;
  const type_map_t *out;
  const type_map_t *in[];      /* nparams */
} udf_t;

static const mg_capi_t *api; /* set once by manygil_duckdb_stage (GIL held), then read-only */

/* Free a function; DuckDB calls it when the function leaves the catalog (the
 * database closes), on any thread, holding no GIL. */
static void
udf_free(void *p)
{
  udf_t *u = p;
  if (u == NULL)
    return;
  api->func_free(u->f);
  api->func_free(u->init);
  free(u->name);
  free(u);
}

void
mgdb__interrupt(int64_t id)
{
  if (api != NULL)
    api->interp_interrupt(id);
}

static pthread_mutex_t staged_mutex = PTHREAD_MUTEX_INITIALIZER;
static udf_t *staged;          /* guarded by staged_mutex */

/* ---- per-thread state -------------------------------------------------------- */

typedef struct {
  mgdb_running_t run;          /* listed for Ctrl-C (sigint.c) */
  size_t cap;                  /* rows the buffers hold */
  mg_bytes_t *out_bytes;       /* cap cells, when the result is VARCHAR/BLOB */
  mg_error_t err;
  int nparams;
  mg_column_t *cols;           /* nparams */
  mg_bytes_t **in_bytes;       /* nparams; cap cells each for VARCHAR/BLOB */
} state_t;

static void
state_free(void *p)
{
  state_t *st = p;
  if (st == NULL)
    return;
  mgdb__running_remove(&st->run);
  for (int i = 0; i < st->nparams; i++)
    free(st->in_bytes[i]);
  free(st->in_bytes);
  free(st->cols);
  free(st->out_bytes);
  if (api != NULL)
    api->error_clear(&st->err);
  free(st);
}

/* Grow st's buffers to n rows.  0 or -1 (out of memory). */
static int
state_reserve(state_t *st, const udf_t *u, size_t n)
{
  if (n <= st->cap)
    return 0;
  for (int i = 0; i < u->nparams; i++) {
    if (!is_bytes(u->in[i]->mg))
      continue;
    mg_bytes_t *b = realloc(st->in_bytes[i], n * sizeof(mg_bytes_t));
    if (b == NULL)
      return -1;
    st->in_bytes[i] = b;
  }
  if (is_bytes(u->out->mg)) {
    mg_bytes_t *b = realloc(st->out_bytes, n * sizeof(mg_bytes_t));
    if (b == NULL)
      return -1;
    st->out_bytes = b;
  }
  st->cap = n;
  return 0;
}

/* DuckDB: once per worker thread (and query) before its first chunk. */
static void
init_fn(duckdb_init_info info)
{
  const udf_t *u = duckdb_scalar_function_init_get_extra_info(info);
  state_t *st = calloc(1, sizeof(*st));
  if (st != NULL) {
    st->nparams = u->nparams;
    st->cols = calloc(u->nparams ? u->nparams : 1, sizeof(mg_column_t));
    st->in_bytes = calloc(u->nparams ? u->nparams : 1, sizeof(mg_bytes_t *));
  }
  if (st != NULL)
    mgdb__running_add(&st->run);
  if (st == NULL || st->cols == NULL || st->in_bytes == NULL || state_reserve(st, u, 2048) < 0) {
    state_free(st);
    duckdb_scalar_function_init_set_error(info, "manygil: out of memory");
    return;
  }
  duckdb_scalar_function_init_set_state(info, st, state_free);
}

/* ---- evaluating a chunk --------------------------------------------------------- */

static int
row_valid(const uint64_t *validity, idx_t row)
{
  return validity == NULL || ((validity[row / 64] >> (row % 64)) & 1);
}

/* Point cells at the chunk's strings (duckdb_string_t: up to 12 bytes
 * inline, else a pointer).  NULL rows get an empty cell. */
static void
strings_to_cells(const duckdb_string_t *s, const uint64_t *validity, idx_t n, mg_bytes_t *cells)
{
  for (idx_t r = 0; r < n; r++) {
    if (!row_valid(validity, r)) {
      cells[r].ptr = "";
      cells[r].len = 0;
      continue;
    }
    uint32_t len = s[r].value.inlined.length;
    cells[r].len = len;
    cells[r].ptr = len <= 12 ? s[r].value.inlined.inlined : s[r].value.pointer.ptr;
  }
}

/* Tell DuckDB why the chunk failed: the error names the UDF and carries the
 * Python exception's type, message and traceback. */
static void
report(duckdb_function_info info, const udf_t *u, int rc, const mg_error_t *err, idx_t n)
{
  const char *type = err->type ? err->type : "";
  const char *msg = err->message ? err->message : "";
  const char *tb = err->traceback ? err->traceback : "";
  size_t size = strlen(u->name) + strlen(type) + strlen(msg) + strlen(tb) + 256;
  char *text = malloc(size);
  if (text == NULL) {
    duckdb_scalar_function_set_error(info, "manygil: a Python UDF failed (and out of memory)");
    return;
  }
  if (rc == MG_EEXEC)
    snprintf(text, size, "Python UDF %s raised %s: %s (row %lld of a %llu-row chunk)%s%s", u->name,
             type, msg, (long long)err->row, (unsigned long long)n, *tb ? "\n" : "", tb);
  else if (rc == MG_ERESULT)
    snprintf(text, size, "Python UDF %s returned a value that does not fit its return type %s: "
             "%s (row %lld of a %llu-row chunk)", u->name, u->out->sql, msg,
             (long long)err->row, (unsigned long long)n);
  else
    snprintf(text, size, "Python UDF %s could not run: %s%s%s%s%s", u->name,
             api->strerror(rc), *type ? ": " : "", type, *msg ? ": " : "", msg);
  duckdb_scalar_function_set_error(info, text);
  free(text);
}

/* DuckDB: evaluate the function over one chunk (flat vectors), on a DuckDB
 * thread holding no GIL. */
static void
exec_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output)
{
  const udf_t *u = duckdb_scalar_function_get_extra_info(info);
  state_t *st = duckdb_scalar_function_get_state(info);
  idx_t n = duckdb_data_chunk_get_size(input);
  if (n == 0)
    return;
  if (state_reserve(st, u, n) < 0) {
    duckdb_scalar_function_set_error(info, "manygil: out of memory");
    return;
  }
  for (int i = 0; i < u->nparams; i++) {
    duckdb_vector v = duckdb_data_chunk_get_vector(input, (idx_t)i);
    mg_column_t *c = &st->cols[i];
    c->type = u->in[i]->mg;
    c->validity = duckdb_vector_get_validity(v);
    c->data = duckdb_vector_get_data(v);
    if (is_bytes(c->type)) {
      strings_to_cells(c->data, c->validity, n, st->in_bytes[i]);
      c->data = st->in_bytes[i];
    }
  }
  mg_column_t out;
  out.type = u->out->mg;
  duckdb_vector_ensure_validity_writable(output);
  out.validity = duckdb_vector_get_validity(output);
  out.data = is_bytes(out.type) ? (void *)st->out_bytes : duckdb_vector_get_data(output);

  int64_t interp;
  int rc = api->thread_interp(&interp);
  if (rc == 0) {
    atomic_store_explicit(&st->run.interp, interp, memory_order_release);
    rc = api->call_batch(interp, u->f, u->flags, (size_t)n, u->nparams, st->cols, &out, &st->err);
    atomic_store_explicit(&st->run.interp, 0, memory_order_release);
  }
  if (rc < 0) {
    report(info, u, rc, &st->err, n);
    api->error_clear(&st->err);
    return;
  }
  if (is_bytes(out.type)) {
    for (idx_t r = 0; r < n; r++)
      if (row_valid(out.validity, r))
        duckdb_vector_assign_string_element_len(output, r, st->out_bytes[r].ptr,
                                                st->out_bytes[r].len);
  }
}

/* ---- staging and registering ---------------------------------------------------- */

/* Map a comma-separated list of canonical SQL type names.  The number of
 * types, or -1 with a Python ValueError naming the unsupported type. */
static int
parse_types(const char *name, const char *list, const type_map_t **out, int max)
{
  int n = 0;
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const type_map_t *t = type_find(p, len);
    if (t == NULL) {
      PyErr_Format(PyExc_ValueError, "manygil.duckdb UDF %s: the SQL type %.*s is not supported "
                   "(supported: " SUPPORTED ")", name, (int)len, p);
      return -1;
    }
    if (n == max) {
      PyErr_Format(PyExc_ValueError, "manygil.duckdb UDF %s: more than %d parameters", name, max);
      return -1;
    }
    out[n++] = t;
    p += len;
    if (*p == ',')
      p++;
  }
  return n;
}

/* Resolve a callable; 0, or -1 with a Python exception that names the UDF. */
static int
resolve(const char *name, const char *what, PyObject *callable, mg_func_t **out)
{
  int rc = api->func_from_object(callable, out);
  if (rc == 0)
    return 0;
  if (PyErr_Occurred()) {
    PyObject *exc = PyErr_GetRaisedException();
    PyErr_Format(PyExc_TypeError, "manygil.duckdb UDF %s: the %s cannot be sent to DuckDB's "
                 "threads' interpreters: %S", name, what, exc);
    PyObject *now = PyErr_GetRaisedException();
    PyException_SetCause(now, exc);      /* steals exc */
    PyErr_SetRaisedException(now);
  } else {
    PyErr_Format(PyExc_RuntimeError, "manygil.duckdb UDF %s: %s", name, api->strerror(rc));
  }
  return -1;
}

/* Stage a function for the next aliased LOAD (python/manygil/duckdb.py):
 * `params` and `ret` are canonical SQL type names (params comma-separated),
 * options MGDB_OPT_*.  Call holding the main interpreter's GIL (ctypes.PyDLL).
 * 0, or -1 with a Python exception set. */
MGDB_EXPORT int
manygil_duckdb_stage(const char *name, PyObject *func, PyObject *init, const char *params,
                     const char *ret, int options)
{
  if (api == NULL) {
    if (mg_import() < 0)
      return -1;
    api = mg_api;
  }
  mgdb__sigint_chain();
  const type_map_t *in[MGDB_MAX_PARAMS];
  int nparams = parse_types(name, params, in, MGDB_MAX_PARAMS);
  if (nparams < 0)
    return -1;
  const type_map_t *out;
  if (parse_types(name, ret, &out, 1) != 1) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_ValueError, "manygil.duckdb UDF %s: one return type is needed", name);
    return -1;
  }
  udf_t *u = calloc(1, sizeof(*u) + (size_t)nparams * sizeof(u->in[0]));
  if (u == NULL || (u->name = strdup(name)) == NULL) {
    free(u);
    PyErr_NoMemory();
    return -1;
  }
  u->nparams = nparams;
  memcpy(u->in, in, (size_t)nparams * sizeof(in[0]));
  u->out = out;
  u->options = options;
  u->flags = ((options & MGDB_OPT_SPECIAL_NULL) ? MG_CALL_PASS_NULL : 0)
           | ((options & MGDB_OPT_RETURN_NULL) ? MG_CALL_ERROR_NULL : 0);
  if (resolve(name, "function", func, &u->f) < 0)
    goto error;
  if (init != Py_None) {
    if (resolve(name, "initializer", init, &u->init) < 0)
      goto error;
    int rc = api->func_set_initializer(u->f, u->init);
    if (rc < 0) {
      PyErr_Format(PyExc_RuntimeError, "manygil.duckdb UDF %s: initializer: %s", name,
                   api->strerror(rc));
      goto error;
    }
  }
  pthread_mutex_lock(&staged_mutex);
  udf_t *old = staged;
  staged = u;
  pthread_mutex_unlock(&staged_mutex);
  udf_free(old);
  return 0;
error:
  udf_free(u);
  return -1;
}

/* Drop a staged function that no LOAD took (the LOAD failed). */
MGDB_EXPORT void
manygil_duckdb_discard(void)
{
  pthread_mutex_lock(&staged_mutex);
  udf_t *u = staged;
  staged = NULL;
  pthread_mutex_unlock(&staged_mutex);
  udf_free(u);
}

int
mgdb__staged(void)
{
  pthread_mutex_lock(&staged_mutex);
  int any = staged != NULL;
  pthread_mutex_unlock(&staged_mutex);
  return any;
}

int
mgdb__register_staged(duckdb_connection conn, char *err, size_t errlen)
{
  pthread_mutex_lock(&staged_mutex);
  udf_t *u = staged;
  staged = NULL;
  pthread_mutex_unlock(&staged_mutex);
  if (u == NULL) {
    snprintf(err, errlen, "manygil: no function was staged for this LOAD");
    return -1;
  }
  duckdb_scalar_function f = duckdb_create_scalar_function();
  duckdb_scalar_function_set_name(f, u->name);
  for (int i = 0; i < u->nparams; i++) {
    duckdb_logical_type t = duckdb_create_logical_type(u->in[i]->duck);
    duckdb_scalar_function_add_parameter(f, t);
    duckdb_destroy_logical_type(&t);
  }
  duckdb_logical_type rt = duckdb_create_logical_type(u->out->duck);
  duckdb_scalar_function_set_return_type(f, rt);
  duckdb_destroy_logical_type(&rt);
  if (u->options & MGDB_OPT_SPECIAL_NULL)
    duckdb_scalar_function_set_special_handling(f);
  if (u->options & MGDB_OPT_SIDE_EFFECTS)
    duckdb_scalar_function_set_volatile(f);
  duckdb_scalar_function_set_function(f, exec_fn);
  duckdb_scalar_function_set_init(f, init_fn);
  /* From here the function owns u (udf_free when it is destroyed). */
  duckdb_scalar_function_set_extra_info(f, u, udf_free);
  char name[256];
  snprintf(name, sizeof(name), "%s", u->name);
  duckdb_state st = duckdb_register_scalar_function(conn, f);
  duckdb_destroy_scalar_function(&f);
  if (st == DuckDBError) {
    snprintf(err, errlen, "manygil: DuckDB refused to register the function %s", name);
    return -1;
  }
  return 0;
}
