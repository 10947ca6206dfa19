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

/* Call fn(*args, **kwargs) (kwargs may be NULL) as at the top of a script
 * in the current interpreter's __main__: from a module-level frame whose
 * globals and locals are __main__'s dict, so builtins that use their
 * caller's frame (exec, eval, globals, locals, vars, dir) work on __main__.
 * Nothing is bound in __main__.  The frame does not show in the traceback
 * of an exception fn raises.  A Python function or method, which runs in a
 * frame of its own anyway, is called directly (no caller frame).  Returns
 * the result, or NULL with an exception. */
PyObject *mg__call_as_script(PyObject *fn, PyObject *args, PyObject *kwargs);

/* Run cb(arg) inside such a frame (what cb calls through the C API sees
 * __main__ as its caller's namespace): cb's result, or NULL with an
 * exception.  For loops in C that call many functions (pool map tasks)
 * under one frame. */
PyObject *mg__run_as_script(PyObject *(*cb)(void *), void *arg);

#endif /* MG_PY_RUNSRC_H */
