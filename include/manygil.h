/*
 * manygil.h -- public C API of manygil.
 *
 * manygil runs Python in subinterpreters that each own their GIL (PEP 684).
 * This header is what an embedder (a program that links libpython and wants
 * to run Python on many native threads) includes.  It needs no Python.h.
 *
 * Conventions (libuv-like):
 *   - every function returns 0 (or a non-negative value) on success and a
 *     negative MG_E* code on failure; mg_strerror() names the code;
 *   - interpreters are named by their CPython interpreter id (int64_t);
 *   - every function may be called from any native thread, holding no GIL
 *     (a thread that currently holds a GIL may call them too: it is released
 *     while the call waits).
 */
#ifndef MANYGIL_H
#define MANYGIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define MG_EXTERN __declspec(dllexport)
#else
#  define MG_EXTERN __attribute__((visibility("default")))
#endif

#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0

/* The one table of error codes: X(NAME, value, message). */
#define MG_ERRNO_MAP(X)                                                          \
  X(NOMEM,     -1, "out of memory")                                              \
  X(INVAL,     -2, "invalid argument")                                           \
  X(NOTFOUND,  -3, "interpreter not found (never existed or already closed)")   \
  X(RUNNING,   -4, "interpreter is running code (in this or another thread)")   \
  X(MAININTERP,-5, "the main interpreter cannot be closed")                      \
  X(CREATE,    -6, "could not create an interpreter")                           \
  X(EXEC,      -7, "the code raised an exception inside the interpreter")       \
  X(NOTINIT,   -8, "Python is not initialized")                                 \
  X(SHUTDOWN,  -9, "manygil is shutting down")                                  \
  X(TOODEEP,  -10, "value is nested too deeply")                                \
  X(CORRUPT,  -11, "encoded value is malformed")                                \
  X(UNSHAREABLE, -12, "value cannot be shared between interpreters")           \
  X(CHNOTFOUND, -13, "channel not found")                                       \
  X(CHCLOSED, -14, "channel is closed")                                         \
  X(EMPTY,    -15, "channel is empty")                                          \
  X(FULL,     -16, "channel is full")                                           \
  X(TIMEDOUT, -17, "timed out")                                                 \
  X(WRONGEND, -18, "wrong end of the channel for this operation")              \
  X(BROKEN,   -19, "the pool is broken (a worker failed to start)")             \
  X(CANCELLED, -20, "the task was cancelled")                                  \
  X(DEADLOCK, -21, "deadlock: no one can ever complete this wait")         \
  X(RESULT,   -22, "a result does not fit its column's type")                 \
  X(VERSION,  -23, "manygil's C API table does not match this header")

typedef enum {
#define MG__ERR_ENUM(name, val, msg) MG_E##name = (val),
  MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
  MG_E__LAST = -24
} mg_errno_t;

/* Return a static, human readable message for an MG_E* code ("unknown error"
 * for anything else).  Never returns NULL. */
MG_EXTERN const char *mg_strerror(int err);

/* Return the symbolic name ("MG_ENOTFOUND") of an MG_E* code, or NULL. */
MG_EXTERN const char *mg_err_name(int err);

/* ---- Interpreters (embedding) -------------------------------------------
 * These need an initialized Python (Py_Initialize) and the calling thread
 * may be any thread.  A native thread that has never run Python gets the
 * thread states it needs; they are released when the thread exits or the
 * interpreter is closed. */

/* Create an isolated interpreter with its own GIL; store its id in *id.
 * It starts with the main interpreter's sys.path. */
MG_EXTERN int mg_interp_create(int64_t *id);

/* Run NUL-terminated UTF-8 source `code` in the interpreter's __main__.
 * Returns MG_EEXEC if the code raised (the traceback is printed to the
 * interpreter's sys.stderr), MG_ENOTFOUND for an unknown id.  While it
 * runs, the call is visible to manygil's watchdog, deadlock detector and
 * Interpreter.interrupt() like an Interpreter.exec. */
MG_EXTERN int mg_interp_exec(int64_t id, const char *code);

/* Close an interpreter.  MG_ERUNNING if some thread runs code in it,
 * MG_ENOTFOUND if it does not exist, MG_EMAININTERP for id 0. */
MG_EXTERN int mg_interp_close(int64_t id);

/* 1 if some thread is running code in the interpreter, 0 if not, or
 * MG_ENOTFOUND. */
MG_EXTERN int mg_interp_is_running(int64_t id);

/* Raise KeyboardInterrupt in the code running in the interpreter (at its
 * next bytecode), as Interpreter.interrupt() does.  Returns how many runs
 * were interrupted (0 if none ran) or MG_ENOTFOUND. */
MG_EXTERN int mg_interp_interrupt(int64_t id);

/* ---- Interpreters bound to host threads ---------------------------------
 * A host (a database, a server) calls Python from its own native threads.
 * Each such thread asks for its interpreter: */

/* Store in *id the interpreter bound to the calling thread, creating it on
 * the thread's first call (isolated, own GIL, the main interpreter's
 * sys.path).  Every later call on the thread returns the same id; it is
 * closed when the thread exits (if Python still runs) or by
 * mg_thread_release().  0, or MG_E* (MG_ECREATE, MG_ENOTINIT...). */
MG_EXTERN int mg_thread_interp(int64_t *id);

/* Close the calling thread's interpreter now; the next mg_thread_interp()
 * creates a new one.  0 (also when the thread had none) or MG_ERUNNING. */
MG_EXTERN int mg_thread_release(void);

/* A bounded set of interpreters shared by any number of host threads: a
 * thread acquires one (waiting while all are in use), calls, releases it.
 * Interpreters are created on first need, up to `size`. */
typedef struct mg_iset mg_iset_t;

/* New set of at most `size` (>= 1) interpreters.  0, MG_EINVAL, MG_ENOMEM. */
MG_EXTERN int mg_iset_new(int size, mg_iset_t **out);

/* Acquire an interpreter of the set for the calling thread: a free one, a
 * new one while fewer than `size` exist, else wait for a release (timeout
 * in seconds, < 0 = for ever).  0 with *id, MG_ETIMEDOUT, MG_ECREATE,
 * MG_ESHUTDOWN (the set is being freed), MG_EINVAL. */
MG_EXTERN int mg_iset_acquire(mg_iset_t *set, double timeout, int64_t *id);

/* Give back an interpreter acquired from the set.  0 or MG_EINVAL (not one
 * of the set's, or not acquired). */
MG_EXTERN int mg_iset_release(mg_iset_t *set, int64_t id);

/* Close the set's interpreters and free it.  MG_ERUNNING (and nothing is
 * freed) while some interpreter of it is acquired. */
MG_EXTERN int mg_iset_free(mg_iset_t *set);

/* ---- Callables and batch calls -------------------------------------------
 * A callable is resolved once (mg_func_*) and then called in any manygil
 * interpreter over a batch of rows of typed columns.  Each interpreter
 * builds its own copy of the callable on first use and keeps it (module
 * state of the callable's module lives once per interpreter). */
typedef struct mg_func mg_func_t;

/* By reference: "package.module:qualname" (the module is imported in each
 * interpreter, then the dotted qualname looked up in it).  0, MG_EINVAL
 * (no ':'), MG_ENOMEM.  Errors in importing show on the first call. */
MG_EXTERN int mg_func_from_name(const char *spec, mg_func_t **out);

/* From source: `source` (UTF-8) runs once per interpreter in a fresh
 * namespace, and the callable is that namespace's `name`. */
MG_EXTERN int mg_func_from_source(const char *source, const char *name, mg_func_t **out);

/* From a Python object (a PyObject *, passed as void * so that this header
 * needs no Python.h), by the codec's rules: importable functions by
 * reference, lambdas, closures and __main__'s functions by value.  The
 * calling thread must hold the GIL of the object's interpreter.  0,
 * MG_EUNSHAREABLE (a Python exception saying why is set), MG_ENOMEM. */
MG_EXTERN int mg_func_from_object(void *callable, mg_func_t **out);

/* Call `init` (no arguments) once in each interpreter before the first call
 * of f there; f keeps a reference to init.  0 or MG_EINVAL. */
MG_EXTERN int mg_func_set_initializer(mg_func_t *f, mg_func_t *init);

/* Free f (and drop the copies the interpreters keep, each at its next
 * batch call or when it closes).  NULL is allowed. */
MG_EXTERN void mg_func_free(mg_func_t *f);

/* Column types.  A cell of TEXT (UTF-8) or BINARY is an mg_bytes_t. */
typedef enum {
  MG_T_BOOL = 1,                       /* uint8_t, 0 or 1 */
  MG_T_INT8, MG_T_INT16, MG_T_INT32, MG_T_INT64,
  MG_T_UINT8, MG_T_UINT16, MG_T_UINT32, MG_T_UINT64,
  MG_T_FLOAT32, MG_T_FLOAT64,
  MG_T_TEXT, MG_T_BINARY,
  MG_T__LAST
} mg_type_t;

typedef struct mg_bytes {
  const char *ptr;
  size_t len;
} mg_bytes_t;

/* A column of `nrows` cells.  validity: bit (i % 64) of word i / 64 is 1
 * when row i holds a value, 0 for NULL (DuckDB's layout).  An input column
 * may pass NULL (no NULLs); an output column must give nrows bits, which
 * the call writes.  Output TEXT/BINARY cells point into memory owned by the
 * calling thread, valid until its next mg_call_batch(). */
typedef struct mg_column {
  mg_type_t type;
  void *data;
  uint64_t *validity;
} mg_column_t;

/* Flags of mg_call_batch. */
#define MG_CALL_PASS_NULL  0x1  /* pass None for NULL cells (default: a NULL
                                   in any argument makes the row NULL and
                                   the function is not called for it) */
#define MG_CALL_VECTORIZED 0x2  /* call once with one list per column; the
                                   result is a sequence of nrows values */
#define MG_CALL_ERROR_NULL 0x4  /* a row whose call raises (or whose result
                                   does not fit) becomes NULL */

/* What went wrong in a batch: malloc'd strings (NULL when unknown), freed
 * by mg_error_clear().  Zero-initialise before the first use. */
typedef struct mg_error {
  int64_t row;        /* the row (-1: not a row: import, init, batch) */
  char *type;         /* the exception's qualified name, "ValueError" */
  char *message;      /* str() of the exception, or what did not fit */
  char *traceback;    /* the formatted traceback, "" if none */
} mg_error_t;

/* Call f in interpreter `interp` over `nrows` rows: `ncols` (0 to 64) input
 * columns `in` (the arguments, in order) and one output column `out`.  The result
 * of each row is converted to out->type: None is NULL; an int must fit (no
 * truncation), bool/int/float are accepted for FLOAT*, bool or int 0/1 for
 * BOOL, str for TEXT, bytes-like (or str, as UTF-8) for BINARY.  Returns 0,
 * or stops at the first failing row: MG_EEXEC (the function raised) or
 * MG_ERESULT (its result did not fit), *err saying which row and why (err
 * may be NULL).  Also MG_EINVAL, MG_ENOTFOUND, MG_ENOMEM.  The calling
 * thread may be any thread; it never takes the main interpreter's GIL
 * (unless interp is 0).  While it runs it is a run named "call" for the
 * watchdog, the deadlock detector and mg_interp_interrupt(). */
MG_EXTERN int mg_call_batch(int64_t interp, mg_func_t *f, int flags, size_t nrows,
                            int ncols, const mg_column_t *in, mg_column_t *out,
                            mg_error_t *err);

/* Free what *err holds and zero it. */
MG_EXTERN void mg_error_clear(mg_error_t *err);

/* ---- The table an installed manygil hands to hosts -----------------------
 * A host links only libpython.  After Py_Initialize, holding the main
 * interpreter's GIL, it calls mg_import() once (in the translation unit
 * that uses the API, as PyDateTime_IMPORT): that imports manygil and
 * fetches this table from the capsule manygil._core._C_API.  Then every
 * function above is reached through it: mg_api->call_batch(...).
 * The table only grows: members are appended, `size` says how far it
 * goes; MG_CAPI_VERSION changes when a member changes meaning. */
#define MG_CAPI_VERSION 1
#define MG_CAPI_NAME "manygil._core._C_API"

typedef struct mg_capi {
  uint32_t version;               /* MG_CAPI_VERSION of the manygil built */
  uint32_t size;                  /* sizeof(mg_capi_t) of the manygil built */
  const char *(*strerror)(int err);
  const char *(*err_name)(int err);
  int (*interp_create)(int64_t *id);
  int (*interp_exec)(int64_t id, const char *code);
  int (*interp_close)(int64_t id);
  int (*interp_is_running)(int64_t id);
  int (*interp_interrupt)(int64_t id);
  int (*thread_interp)(int64_t *id);
  int (*thread_release)(void);
  int (*iset_new)(int size, mg_iset_t **out);
  int (*iset_acquire)(mg_iset_t *set, double timeout, int64_t *id);
  int (*iset_release)(mg_iset_t *set, int64_t id);
  int (*iset_free)(mg_iset_t *set);
  int (*func_from_name)(const char *spec, mg_func_t **out);
  int (*func_from_source)(const char *source, const char *name, mg_func_t **out);
  int (*func_from_object)(void *callable, mg_func_t **out);
  int (*func_set_initializer)(mg_func_t *f, mg_func_t *init);
  void (*func_free)(mg_func_t *f);
  int (*call_batch)(int64_t interp, mg_func_t *f, int flags, size_t nrows, int ncols,
                    const mg_column_t *in, mg_column_t *out, mg_error_t *err);
  void (*error_clear)(mg_error_t *err);
} mg_capi_t;

#if defined(Py_PYTHON_H) && !defined(MG_BUILDING)
/* The table, once mg_import() succeeded (one per translation unit). */
static const mg_capi_t *mg_api __attribute__((unused)) = NULL;

/* Import manygil and fetch its table.  Call holding a GIL (the main
 * interpreter's).  0, or -1 with a Python exception set: ImportError when
 * manygil is not installed, or when its table is older or of another
 * version than this header. */
static inline int
mg_import(void)
{
  const mg_capi_t *api = (const mg_capi_t *)PyCapsule_Import(MG_CAPI_NAME, 0);
  if (api == NULL) {
    /* An installed manygil without the table: PyCapsule_Import says
     * AttributeError; the contract is ImportError. */
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_ImportError,
                   "the installed manygil has no C API for hosts (%s): install a "
                   "manygil that ships manygil.h version %u",
                   MG_CAPI_NAME, (unsigned)MG_CAPI_VERSION);
    }
    return -1;
  }
  if (api->version != MG_CAPI_VERSION || api->size < sizeof(mg_capi_t)) {
    PyErr_Format(PyExc_ImportError,
                 "manygil's C API is version %u (%u bytes); this program was built "
                 "with manygil.h version %u (%u bytes): rebuild it against the "
                 "installed manygil's header (manygil.get_include())",
                 (unsigned)api->version, (unsigned)api->size,
                 (unsigned)MG_CAPI_VERSION, (unsigned)sizeof(mg_capi_t));
    return -1;
  }
  mg_api = api;
  return 0;
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* MANYGIL_H */

