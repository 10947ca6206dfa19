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
  X(DEADLOCK, -21, "deadlock: no one can ever complete this wait")

typedef enum {
#define MG__ERR_ENUM(name, val, msg) MG_E##name = (val),
  MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
  MG_E__LAST = -22
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

#ifdef __cplusplus
}
#endif
#endif /* MANYGIL_H */
