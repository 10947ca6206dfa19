/* runsrc.c -- constant Python sources, compiled once per process.
 *
 * Why: CPython 3.12/3.13 do not give back an isolated interpreter's object
 * heap when it is destroyed (its arenas stay mapped and resident: about
 * 1.6 MiB per interpreter), so every page an interpreter touches during its
 * life is kept for good.  Compiling source touches the parser's and
 * compiler's memory; loading marshalled code touches a fraction of it.  So
 * the sources manygil runs in each new interpreter (import hints, thread
 * tracking) are compiled once and loaded from marshal afterwards: that is
 * most of what manygil added to CPython's own per-interpreter growth.
 *
 * The cache holds bytes only (no object of any interpreter); it is written
 * once (compare-and-swap: a loser frees its copy) and never freed.
 */
#include <stdlib.h>
#include <string.h>
#include "py/runsrc.h"
#include <marshal.h>

PyObject *
mg__run_cached_source(mg__srccache_t *cache, const char *src, const char *filename,
                      PyObject *globals)
{
    PyObject *code = NULL, *res = NULL;
    char *data = __atomic_load_n(&cache->data, __ATOMIC_ACQUIRE);
    if (data != NULL) {
        code = PyMarshal_ReadObjectFromString(data, cache->size);
    }
    else {
        code = Py_CompileString(src, filename, Py_file_input);
        PyObject *bytes = code ? PyMarshal_WriteObjectToString(code, Py_MARSHAL_VERSION) : NULL;
        if (bytes == NULL) {
            Py_CLEAR(code);
            goto done;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(bytes);
        char *copy = malloc((size_t)n);
        if (copy != NULL) {
            memcpy(copy, PyBytes_AS_STRING(bytes), (size_t)n);
            /* size first: readers see it once data is published. */
            char *expected = NULL;
            __atomic_store_n(&cache->size, n, __ATOMIC_RELAXED);
            if (!__atomic_compare_exchange_n(&cache->data, &expected, copy, 0,
                                             __ATOMIC_RELEASE, __ATOMIC_RELAXED))
                free(copy);         /* another interpreter published the same bytes */
        }
        Py_DECREF(bytes);
    }
    if (code == NULL)
        goto done;
    res = PyEval_EvalCode(code, globals, globals);
done:
    Py_XDECREF(code);
    return res;
}
