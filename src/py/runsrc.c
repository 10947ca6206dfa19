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
 *
 * Also here: calling a function "as at the top of a script" (exec, call and
 * pool tasks), whose frame is built from such a constant source.
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

/* ---- calling as at the top of a script ----------------------------------
 *
 * Builtins that read their caller's frame (exec, eval, globals, locals,
 * vars, dir) find none when C calls them directly ("SystemError: frame does
 * not exist").  So calls made for exec/call/pool tasks go through one small
 * frame that runs as module-level code of __main__: its globals and its
 * locals are __main__'s dict, as at the top of a script, so `exec("x = 1")`
 * binds __main__.x and `dir()` lists __main__'s names.
 *
 * The frame's code is the inner function of SCRIPT_CALL_SRC with the
 * CO_OPTIMIZED/CO_NEWLOCALS/CO_NESTED flags cleared: code that uses a locals
 * dict (like module code) and reaches the function and its arguments through
 * closure cells (free variables, passed with PyEval_EvalCodeEx), never
 * through names: nothing is bound in __main__, not even for a moment.
 * CPython never copies the free variables of unoptimized code into its
 * locals dict (the rule that keeps class bodies clean).  The code object is
 * made once per interpreter and kept in the interpreter's dict
 * (PyInterpreterState_GetDict). */

static const char SCRIPT_CALL_SRC[] =
"def _outer(f, a, k):\n"
"    def _call():\n"
"        return f(*a) if k is None else f(*a, **k)\n"
"    return _call\n"
"_c = _outer(None, None, None).__code__\n"
"if _c.co_freevars != ('a', 'f', 'k'):\n"
"    raise SystemError(f'manygil: unexpected free variables {_c.co_freevars}')\n"
"code = _c.replace(co_flags=_c.co_flags & ~(0x01 | 0x02 | 0x10), co_name='<module>',\n"
"                  co_qualname='<module>', co_filename='<manygil call>')\n";

#define SCRIPT_CALL_KEY "manygil.script_call_code"

/* The frame's code object of the current interpreter (borrowed), or NULL
 * with an exception. */
static PyObject *
script_call_code(void)
{
    static mg__srccache_t cache;
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (idict == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "manygil: no interpreter dict");
        return NULL;
    }
    PyObject *code = PyDict_GetItemString(idict, SCRIPT_CALL_KEY);   /* borrowed */
    if (code != NULL)
        return code;
    PyObject *ns = PyDict_New();
    if (ns == NULL)
        return NULL;
    PyObject *res = NULL;
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0)
        res = mg__run_cached_source(&cache, SCRIPT_CALL_SRC, "<manygil script call>", ns);
    if (res != NULL) {
        code = PyDict_GetItemString(ns, "code");
        if (code == NULL || !PyCode_Check(code)) {
            PyErr_SetString(PyExc_SystemError, "manygil: script call code missing");
            code = NULL;
        }
        else if (PyDict_SetItemString(idict, SCRIPT_CALL_KEY, code) < 0)
            code = NULL;
    }
    Py_XDECREF(res);
    Py_DECREF(ns);      /* idict keeps code alive */
    return code;
}

/* Drop the frame of `code` from the head of the raised exception's
 * traceback: the error reads as if fn had been called directly. */
static void
strip_own_frame(PyObject *code)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL)
        return;
    PyObject *tb = PyException_GetTraceback(exc);
    if (tb != NULL) {
        PyObject *frame = PyObject_GetAttrString(tb, "tb_frame");
        PyObject *next = frame ? PyObject_GetAttrString(tb, "tb_next") : NULL;
        if (next != NULL) {
            PyCodeObject *fc = PyFrame_GetCode((PyFrameObject *)frame);
            if ((PyObject *)fc == code)
                PyException_SetTraceback(exc, next);
            Py_DECREF(fc);
        }
        if (PyErr_Occurred())
            PyErr_Clear();      /* keep the original exception */
        Py_XDECREF(next);
        Py_XDECREF(frame);
        Py_DECREF(tb);
    }
    PyErr_SetRaisedException(exc);
}

PyObject *
mg__call_as_script(PyObject *fn, PyObject *args, PyObject *kwargs)
{
    /* A Python function (or a method of one) runs in a frame of its own,
     * with its own globals, either way: the script frame would only add a
     * caller frame (sys._getframe(1)) at a cost of about half a
     * microsecond per call, so it is called directly. */
    if (PyFunction_Check(fn) || (PyMethod_Check(fn) && PyFunction_Check(PyMethod_GET_FUNCTION(fn))))
        return PyObject_Call(fn, args, kwargs);
    PyObject *code = script_call_code();
    if (code == NULL)
        return NULL;
    PyObject *main = mg__main_module();
    if (main == NULL)
        return NULL;
    PyObject *ns = PyModule_GetDict(main);          /* borrowed */
    PyObject *res = NULL;
    PyObject *closure = PyTuple_New(3);
    if (closure == NULL)
        goto done;
    /* In the order of co_freevars, checked by SCRIPT_CALL_SRC: a, f, k. */
    PyObject *vals[3] = {args, fn, kwargs != NULL ? kwargs : Py_None};
    for (int i = 0; i < 3; i++) {
        PyObject *cell = PyCell_New(vals[i]);
        if (cell == NULL)
            goto done;
        PyTuple_SET_ITEM(closure, i, cell);
    }
    res = PyEval_EvalCodeEx(code, ns, ns, NULL, 0, NULL, 0, NULL, 0, NULL, closure);
    if (res == NULL)
        strip_own_frame(code);
done:
    Py_XDECREF(closure);
    Py_DECREF(main);
    return res;
}

/* A C callback run by mg__run_as_script, wrapped as a no-argument builtin
 * whose `self` is a capsule holding a run_cb_t. */
typedef struct {
    PyObject *(*cb)(void *);
    void *arg;
} run_cb_t;

static PyObject *
run_cb_trampoline(PyObject *capsule, PyObject *unused)
{
    (void)unused;
    run_cb_t *r = PyCapsule_GetPointer(capsule, "manygil.script_cb");
    return r != NULL ? r->cb(r->arg) : NULL;
}

static PyMethodDef run_cb_def = {"<manygil task>", run_cb_trampoline, METH_NOARGS, NULL};

PyObject *
mg__run_as_script(PyObject *(*cb)(void *), void *arg)
{
    run_cb_t r = {cb, arg};
    PyObject *capsule = PyCapsule_New(&r, "manygil.script_cb", NULL);
    if (capsule == NULL)
        return NULL;
    PyObject *fn = PyCFunction_New(&run_cb_def, capsule);
    Py_DECREF(capsule);
    if (fn == NULL)
        return NULL;
    PyObject *args = PyTuple_New(0);
    PyObject *res = args != NULL ? mg__call_as_script(fn, args, NULL) : NULL;
    Py_XDECREF(args);
    Py_DECREF(fn);
    return res;
}
