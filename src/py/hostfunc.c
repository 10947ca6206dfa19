/* hostfunc.c -- callables of the hosts' C API (mg_func_*): resolved once in
 * C (no PyObject kept), built in each interpreter on first use and kept in
 * that interpreter's state dict.
 *
 * Each interpreter keeps {serial: callable} under CACHE_KEY in its
 * PyInterpreterState_GetDict().  mg_func_free takes the serial out of the
 * live list and bumps `live.gen`; an interpreter whose cache saw an older
 * generation drops its entries that are not live at its next lookup (the
 * copies of a freed callable live at most until then, or until the
 * interpreter closes). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "py/host.h"
#include "py/codec.h"
#include "core/sync.h"

#define CACHE_KEY "manygil.host.funcs"
#define INITED_KEY "manygil.host.inited"
#define GEN_KEY "manygil.host.gen"

/* The serials of the callables not freed yet, in increasing order (serials
 * are handed out in order under the mutex, so new ones append). */
static struct {
    mg__mutex_t mu;
    uint64_t next;              /* guarded by mu */
    uint64_t *serials;          /* guarded by mu */
    size_t n, cap;              /* guarded by mu */
    _Atomic uint64_t gen;       /* bumped (under mu) by every free */
} live = {.mu = MG__MUTEX_INIT, .next = 1};

/* Index of serial in live.serials, or -1.  Call with live.mu held. */
static ptrdiff_t
live_find_locked(uint64_t serial)
{
    size_t lo = 0, hi = live.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (live.serials[mid] < serial)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < live.n && live.serials[lo] == serial ? (ptrdiff_t)lo : -1;
}

static mg_func_t *
func_new(int kind)
{
    mg_func_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    mg__mutex_lock(&live.mu);
    if (live.n == live.cap) {
        size_t ncap = live.cap ? live.cap * 2 : 16;
        uint64_t *p = realloc(live.serials, ncap * sizeof *p);
        if (p == NULL) {
            mg__mutex_unlock(&live.mu);
            free(f);
            return NULL;
        }
        live.serials = p;
        live.cap = ncap;
    }
    f->serial = live.next++;
    live.serials[live.n++] = f->serial;
    mg__mutex_unlock(&live.mu);
    f->kind = kind;
    return f;
}

int
mg_func_from_name(const char *spec, mg_func_t **out)
{
    if (spec == NULL || out == NULL)
        return MG_EINVAL;
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0' || strchr(colon + 1, ':') != NULL)
        return MG_EINVAL;
    mg_func_t *f = func_new(MG__FUNC_NAME);
    if (f == NULL)
        return MG_ENOMEM;
    f->a = strndup(spec, (size_t)(colon - spec));
    f->b = strdup(colon + 1);
    if (f->a == NULL || f->b == NULL) {
        mg_func_free(f);
        return MG_ENOMEM;
    }
    *out = f;
    return 0;
}

int
mg_func_from_source(const char *source, const char *name, mg_func_t **out)
{
    if (source == NULL || name == NULL || name[0] == '\0' || out == NULL)
        return MG_EINVAL;
    mg_func_t *f = func_new(MG__FUNC_SOURCE);
    if (f == NULL)
        return MG_ENOMEM;
    f->a = strdup(source);
    f->b = strdup(name);
    if (f->a == NULL || f->b == NULL) {
        mg_func_free(f);
        return MG_ENOMEM;
    }
    *out = f;
    return 0;
}

int
mg_func_from_object(void *callable, mg_func_t **out)
{
    PyObject *obj = callable;
    if (obj == NULL || out == NULL)
        return MG_EINVAL;
    if (mg__tstate_current() == NULL)
        return MG_EINVAL;           /* needs the GIL of the object's interpreter */
    if (!PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "a host callable must be callable, not %.200s",
                     Py_TYPE(obj)->tp_name);
        return MG_EINVAL;
    }
    mg_func_t *f = func_new(MG__FUNC_OBJECT);
    if (f == NULL) {
        PyErr_NoMemory();
        return MG_ENOMEM;
    }
    if (mg__encode(obj, &f->enc) < 0) {
        mg_func_free(f);
        return PyErr_ExceptionMatches(PyExc_MemoryError) ? MG_ENOMEM : MG_EUNSHAREABLE;
    }
    *out = f;
    return 0;
}

int
mg_func_set_initializer(mg_func_t *f, mg_func_t *init)
{
    if (f == NULL || init == f || (init != NULL && init->init != NULL))
        return MG_EINVAL;
    f->init = init;
    return 0;
}

void
mg_func_free(mg_func_t *f)
{
    if (f == NULL)
        return;
    mg__mutex_lock(&live.mu);
    ptrdiff_t i = live_find_locked(f->serial);
    if (i >= 0) {
        memmove(&live.serials[i], &live.serials[i + 1], (live.n - (size_t)i - 1) * sizeof *live.serials);
        live.n--;
        atomic_fetch_add(&live.gen, 1);
    }
    mg__mutex_unlock(&live.mu);
    free(f->a);
    free(f->b);
    mg__buf_free(&f->enc);
    free(f);
}

/* ---- in the interpreter ------------------------------------------------ */

/* The dict kept under `key` in this interpreter's state dict (borrowed),
 * created empty on first use.  NULL with an exception. */
static PyObject *
interp_dict(const char *key)
{
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (idict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no interpreter state dict");
        return NULL;
    }
    PyObject *d = PyDict_GetItemString(idict, key);
    if (d != NULL)
        return d;
    d = PyDict_New();
    if (d == NULL || PyDict_SetItemString(idict, key, d) < 0) {
        Py_XDECREF(d);
        return NULL;
    }
    Py_DECREF(d);                   /* the state dict keeps it */
    return d;
}

/* Drop the copies of callables freed since this interpreter last looked:
 * the keys of its cache (few: the callables used here) that are not live. */
static int
purge_dead(PyObject *cache, PyObject *inited)
{
    uint64_t gen = atomic_load(&live.gen);
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    PyObject *seen = PyDict_GetItemString(idict, GEN_KEY);
    if (seen != NULL && PyLong_AsUnsignedLongLong(seen) == gen)
        return 0;
    PyObject *dicts[2] = {cache, inited};
    for (int d = 0; d < 2; d++) {
        PyObject *keys = PyDict_Keys(dicts[d]);
        if (keys == NULL)
            return -1;
        Py_ssize_t n = PyList_GET_SIZE(keys);
        uint64_t *serials = malloc((size_t)(n ? n : 1) * sizeof *serials);
        if (serials == NULL) {
            Py_DECREF(keys);
            return 0;               /* try again next time */
        }
        for (Py_ssize_t i = 0; i < n; i++)
            serials[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(keys, i));
        mg__mutex_lock(&live.mu);  /* a leaf lock: nothing waits under it */
        for (Py_ssize_t i = 0; i < n; i++)
            if (live_find_locked(serials[i]) >= 0)
                serials[i] = 0;     /* keep */
        gen = atomic_load(&live.gen);
        mg__mutex_unlock(&live.mu);
        for (Py_ssize_t i = 0; i < n; i++)
            if (serials[i] != 0 && PyDict_DelItem(dicts[d], PyList_GET_ITEM(keys, i)) < 0)
                PyErr_Clear();
        free(serials);
        Py_DECREF(keys);
    }
    PyObject *g = PyLong_FromUnsignedLongLong(gen);
    int rc = g == NULL ? -1 : PyDict_SetItemString(idict, GEN_KEY, g);
    Py_XDECREF(g);
    return rc;
}

/* Look up the dotted qualname in module `modname` (imported here). */
static PyObject *
resolve_name(const char *modname, const char *qualname)
{
    PyObject *obj = PyImport_ImportModule(modname);
    const char *p = qualname;
    while (obj != NULL && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        PyObject *attr = PyUnicode_FromStringAndSize(p, (Py_ssize_t)len);
        PyObject *next = attr ? PyObject_GetAttr(obj, attr) : NULL;
        Py_XDECREF(attr);
        Py_SETREF(obj, next);
        p += len + (dot != NULL);
    }
    return obj;
}

/* Let tracebacks show the lines of a host's source: put them in linecache
 * under `filename` (as IDLE and doctest do for code that has no file). */
static void
cache_lines(PyObject *filename, const char *source)
{
    PyObject *cache = mg__import_attr("linecache", "cache");
    PyObject *src = cache ? PyUnicode_FromString(source) : NULL;
    PyObject *lines = src ? PyObject_CallMethod(src, "splitlines", "O", Py_True) : NULL;
    PyObject *entry = lines ? Py_BuildValue("(nOOO)", PyUnicode_GET_LENGTH(src), Py_None, lines,
                                            filename) : NULL;
    if (entry == NULL || PyObject_SetItem(cache, filename, entry) < 0)
        PyErr_Clear();              /* tracebacks then show no source lines */
    Py_XDECREF(entry);
    Py_XDECREF(lines);
    Py_XDECREF(src);
    Py_XDECREF(cache);
}

/* Run the source in a fresh namespace (its functions' file is
 * "<host source NAME>") and take `name` from it. */
static PyObject *
resolve_source(const char *source, const char *name)
{
    PyObject *ns = PyDict_New(), *res = NULL, *fn = NULL, *code = NULL;
    PyObject *filename = PyUnicode_FromFormat("<host source %s>", name);
    if (ns == NULL || filename == NULL)
        goto done;
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto done;
    PyObject *modname = PyUnicode_FromString("__manygil_host__");
    if (modname == NULL || PyDict_SetItemString(ns, "__name__", modname) < 0) {
        Py_XDECREF(modname);
        goto done;
    }
    Py_DECREF(modname);
    code = Py_CompileStringObject(source, filename, Py_file_input, NULL, -1);
    if (code == NULL)
        goto done;
    cache_lines(filename, source);
    res = PyEval_EvalCode(code, ns, ns);
    if (res == NULL)
        goto done;
    fn = PyDict_GetItemString(ns, name);
    if (fn == NULL)
        PyErr_Format(PyExc_NameError, "the host source defines no name '%s'", name);
    else
        Py_INCREF(fn);
done:
    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_XDECREF(filename);
    Py_XDECREF(ns);
    return fn;
}

static PyObject *
build(mg_func_t *f)
{
    PyObject *fn;
    switch (f->kind) {
    case MG__FUNC_NAME:
        fn = resolve_name(f->a, f->b);
        break;
    case MG__FUNC_SOURCE:
        fn = resolve_source(f->a, f->b);
        break;
    default:
        fn = mg__decode(&f->enc);
        break;
    }
    if (fn != NULL && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "the host callable resolved to a %.200s, which is not callable",
                     Py_TYPE(fn)->tp_name);
        Py_CLEAR(fn);
    }
    return fn;
}

PyObject *
mg__func_callable(mg_func_t *f)
{
    PyObject *cache = interp_dict(CACHE_KEY);
    PyObject *inited = cache ? interp_dict(INITED_KEY) : NULL;
    if (inited == NULL || purge_dead(cache, inited) < 0)
        return NULL;
    PyObject *key = PyLong_FromUnsignedLongLong(f->serial);
    if (key == NULL)
        return NULL;
    PyObject *fn = PyDict_GetItemWithError(cache, key);
    if (fn != NULL || PyErr_Occurred())
        goto done;
    if (f->init != NULL) {
        PyObject *ikey = PyLong_FromUnsignedLongLong(f->init->serial);
        int done_before = ikey ? PyDict_Contains(inited, ikey) : -1;
        PyObject *init = done_before == 0 ? build(f->init) : NULL;
        PyObject *r = init ? PyObject_CallNoArgs(init) : NULL;
        int ok = done_before == 1 || (r != NULL && PyDict_SetItem(inited, ikey, Py_True) == 0);
        Py_XDECREF(r);
        Py_XDECREF(init);
        Py_XDECREF(ikey);
        if (!ok)
            goto done;
    }
    /* A failing row imports traceback to format its traceback, then: it is
     * pure Python on 3.12-3.15 (no extension module's first import, which
     * would take the main interpreter's GIL), and importing it here would
     * cost every interpreter ~1.4 MiB. */
    PyObject *built = build(f);
    if (built != NULL) {
        if (PyDict_SetItem(cache, key, built) == 0)
            fn = built;             /* the cache keeps it */
        Py_DECREF(built);
    }
done:
    Py_DECREF(key);
    return fn;
}
