/* runsrc.h -- constant Python sources run in every new interpreter. */
#ifndef MG_PY_RUNSRC_H
#define MG_PY_RUNSRC_H

#include "py/compat.h"

/* A source's code, marshalled once per process (plain malloc, no PyObject):
 * declare one per source, zero-initialized, `static mg__srccache_t c;`. */
typedef struct {
    char *data;                 /* atomic: NULL until published, then immutable */
    Py_ssize_t size;
} mg__srccache_t;

/* Run `src` (file input) with `globals` in the current interpreter, like
 * PyRun_String, but compile it only the first time (in whichever
 * interpreter gets here first); later runs load the marshalled code.
 * Returns the result (None) or NULL with an exception. */
PyObject *mg__run_cached_source(mg__srccache_t *cache, const char *src,
                                const char *filename, PyObject *globals);

#endif /* MG_PY_RUNSRC_H */
