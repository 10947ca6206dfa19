/* host.h -- the hosts' C API (include/manygil.h: callables, batch calls,
 * thread-bound interpreters, interpreter sets), internals shared by
 * hostfunc.c, hostcall.c, hostthread.c and capi.c. */
#ifndef MG_PY_HOST_H
#define MG_PY_HOST_H

#include "manygil.h"
#include "py/compat.h"
#include "core/buf.h"

/* What a callable is made from. */
enum { MG__FUNC_NAME = 1, MG__FUNC_SOURCE, MG__FUNC_OBJECT };

struct mg_func {
    uint64_t serial;            /* immutable: the key of the interpreters' copies */
    int kind;                   /* MG__FUNC_* */
    char *a, *b;                /* NAME: module, qualname; SOURCE: source, name */
    mg__buf_t enc;              /* OBJECT: the encoded callable */
    mg_func_t *init;            /* or NULL: called once per interpreter first */
};

/* In the current interpreter (its GIL held): f's callable there, built and
 * kept on first use (after running f's initializer there).  Borrowed
 * reference (kept by the interpreter), or NULL with an exception set. */
PyObject *mg__func_callable(mg_func_t *f);

/* The calling thread's scratch memory for output TEXT/BINARY cells: make
 * room for `extra` more bytes past *used and return the base (it may move
 * while a batch fills it: cells hold offsets until the batch ends), or NULL
 * when out of memory. */
char *mg__host_arena(size_t used, size_t extra);

/* The base of the calling thread's arena (NULL if it has none). */
char *mg__host_arena_base(void);

/* The capsule's table. */
extern const mg_capi_t mg__capi;

/* Add the capsule "_C_API" holding the table to module mod.  0 or -1. */
int mg__capi_add(PyObject *mod);

#endif /* MG_PY_HOST_H */
