/* hostcall.c -- mg_call_batch: call a host callable over typed columns in
 * an interpreter, converting cells to Python values and results back.
 *
 * The batch runs inside the target interpreter in one visit
 * (mg__interp_run_as, named "call": the watchdog, the deadlock detector
 * and mg_interp_interrupt see it).  Output TEXT/BINARY cells are copied
 * into the calling thread's arena; while the batch fills it (and it may
 * move) their `ptr` holds an offset, turned into a pointer at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "py/host.h"
#include "py/codec.h"
#include "py/interp.h"

typedef struct {
    mg_func_t *f;
    int flags;
    size_t nrows;
    int ncols;
    const mg_column_t *in;
    mg_column_t *out;
    mg_error_t *err;
    size_t arena_used;
} batch_t;

static const char *const type_names[MG_T__LAST] = {
    [MG_T_BOOL] = "BOOL", [MG_T_INT8] = "INT8", [MG_T_INT16] = "INT16",
    [MG_T_INT32] = "INT32", [MG_T_INT64] = "INT64", [MG_T_UINT8] = "UINT8",
    [MG_T_UINT16] = "UINT16", [MG_T_UINT32] = "UINT32", [MG_T_UINT64] = "UINT64",
    [MG_T_FLOAT32] = "FLOAT32", [MG_T_FLOAT64] = "FLOAT64", [MG_T_TEXT] = "TEXT",
    [MG_T_BINARY] = "BINARY",
};

static inline int
is_valid(const uint64_t *v, size_t i)
{
    return v == NULL || ((v[i >> 6] >> (i & 63)) & 1);
}

static inline void
set_valid(uint64_t *v, size_t i, int on)
{
    if (on)
        v[i >> 6] |= (uint64_t)1 << (i & 63);
    else
        v[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

static int
type_ok(int t)
{
    return t >= MG_T_BOOL && t < MG_T__LAST;
}

/* ---- errors -------------------------------------------------------------- */

static void
set_error(mg_error_t *err, int64_t row, const char *type, const char *msg, const char *tb)
{
    if (err == NULL)
        return;
    mg_error_clear(err);
    err->row = row;
    err->type = type ? strdup(type) : NULL;
    err->message = msg ? strdup(msg) : NULL;
    err->traceback = strdup(tb ? tb : "");
}

void
mg_error_clear(mg_error_t *err)
{
    if (err == NULL)
        return;
    free(err->type);
    free(err->message);
    free(err->traceback);
    err->type = err->message = err->traceback = NULL;
    err->row = -1;
}

/* The exception's "module.QualName" ("ValueError" for builtins). */
static PyObject *
exc_type_name(PyObject *exc)
{
    PyTypeObject *tp = Py_TYPE(exc);
    PyObject *qual = PyType_GetQualName(tp);
    PyObject *mod = qual ? PyObject_GetAttrString((PyObject *)tp, "__module__") : NULL;
    PyObject *res = NULL;
    if (mod != NULL && PyUnicode_Check(mod) && PyUnicode_CompareWithASCIIString(mod, "builtins") != 0)
        res = PyUnicode_FromFormat("%U.%U", mod, qual);
    else if (qual != NULL) {
        res = qual;
        qual = NULL;
    }
    Py_XDECREF(qual);
    Py_XDECREF(mod);
    return res;
}

static PyObject *
format_traceback(PyObject *exc)
{
    PyObject *fmt = mg__import_attr("traceback", "format_exception");
    PyObject *lines = fmt ? PyObject_CallOneArg(fmt, exc) : NULL;
    PyObject *sep = lines ? PyUnicode_FromString("") : NULL;
    PyObject *text = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(fmt);
    return text;
}

static const char *
utf8_or(PyObject *s, const char *dflt)
{
    const char *p = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
    if (p == NULL)
        PyErr_Clear();
    return p ? p : dflt;
}

/* Move the raised exception into err (row `row`) and clear it. */
static void
capture_exception(mg_error_t *err, int64_t row)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL)
        return;
    PyObject *name = exc_type_name(exc);
    if (name == NULL)
        PyErr_Clear();
    PyObject *msg = PyObject_Str(exc);
    if (msg == NULL)
        PyErr_Clear();
    PyObject *tb = format_traceback(exc);
    if (tb == NULL)
        PyErr_Clear();
    set_error(err, row, utf8_or(name, "BaseException"), utf8_or(msg, ""), utf8_or(tb, ""));
    Py_XDECREF(name);
    Py_XDECREF(msg);
    Py_XDECREF(tb);
    Py_DECREF(exc);
}

/* ---- cells -> Python ------------------------------------------------------ */

static PyObject *
cell_to_py(const mg_column_t *c, size_t i)
{
    const void *d = c->data;
    switch (c->type) {
    case MG_T_BOOL: return PyBool_FromLong(((const uint8_t *)d)[i] != 0);
    case MG_T_INT8: return PyLong_FromLong(((const int8_t *)d)[i]);
    case MG_T_INT16: return PyLong_FromLong(((const int16_t *)d)[i]);
    case MG_T_INT32: return PyLong_FromLong(((const int32_t *)d)[i]);
    case MG_T_INT64: return PyLong_FromLongLong(((const int64_t *)d)[i]);
    case MG_T_UINT8: return PyLong_FromLong(((const uint8_t *)d)[i]);
    case MG_T_UINT16: return PyLong_FromLong(((const uint16_t *)d)[i]);
    case MG_T_UINT32: return PyLong_FromUnsignedLong(((const uint32_t *)d)[i]);
    case MG_T_UINT64: return PyLong_FromUnsignedLongLong(((const uint64_t *)d)[i]);
    case MG_T_FLOAT32: return PyFloat_FromDouble(((const float *)d)[i]);
    case MG_T_FLOAT64: return PyFloat_FromDouble(((const double *)d)[i]);
    case MG_T_TEXT: {
        const mg_bytes_t *b = &((const mg_bytes_t *)d)[i];
        return PyUnicode_DecodeUTF8(b->ptr, (Py_ssize_t)b->len, "strict");
    }
    case MG_T_BINARY: {
        const mg_bytes_t *b = &((const mg_bytes_t *)d)[i];
        return PyBytes_FromStringAndSize(b->ptr, (Py_ssize_t)b->len);
    }
    default:
        PyErr_SetString(PyExc_SystemError, "bad column type");
        return NULL;
    }
}

/* ---- Python -> the output cell ------------------------------------------ */

/* Copy n bytes into the arena as cell i (its ptr = offset for now). */
static int
put_bytes(batch_t *b, size_t i, const char *p, size_t n)
{
    char *base = mg__host_arena(b->arena_used, n);
    if (base == NULL)
        return MG_ENOMEM;
    if (n)
        memcpy(base + b->arena_used, p, n);
    mg_bytes_t *cell = &((mg_bytes_t *)b->out->data)[i];
    cell->ptr = (const char *)(uintptr_t)b->arena_used;
    cell->len = n;
    b->arena_used += n;
    return 0;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), MG_ERESULT)

/* "<repr of res, cut at 60> does not fit TYPE (range)" into why. */
static int
does_not_fit(char *why, size_t whylen, PyObject *res, const char *tname, const char *range)
{
    PyObject *r = PyObject_Repr(res);
    if (r == NULL)
        PyErr_Clear();
    snprintf(why, whylen, "%.60s%s does not fit %s (%s)", utf8_or(r, "?"),
             r && PyUnicode_GET_LENGTH(r) > 60 ? "..." : "", tname, range);
    Py_XDECREF(r);
    return MG_ERESULT;
}

/* Store the result `res` of row i in the output column: 0, MG_ENOMEM, or
 * MG_ERESULT with `why` saying what did not fit (no exception left set). */
static int
put_cell(batch_t *b, size_t i, PyObject *res, char *why, size_t whylen)
{
    mg_column_t *o = b->out;
    void *d = o->data;
    const char *tname = type_names[o->type];
    if (res == Py_None) {
        set_valid(o->validity, i, 0);
        return 0;
    }
    int t = o->type;
    switch (t) {
    case MG_T_BOOL:
        if (PyBool_Check(res) || PyLong_CheckExact(res)) {
            int ov = 0;
            long long v = PyLong_AsLongLongAndOverflow(res, &ov);
            if (ov || (v != 0 && v != 1))
                return WHY("the int does not fit BOOL (0 or 1)");
            ((uint8_t *)d)[i] = (uint8_t)v;
            break;
        }
        return WHY("expected a bool for BOOL, got %.100s", Py_TYPE(res)->tp_name);
    case MG_T_INT8: case MG_T_INT16: case MG_T_INT32: case MG_T_INT64: {
        if (!PyLong_Check(res))
            return WHY("expected an int for %s, got %.100s", tname, Py_TYPE(res)->tp_name);
        int ov = 0;
        long long v = PyLong_AsLongLongAndOverflow(res, &ov);
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return WHY("the int cannot be read");
        }
        static const long long lo[] = {INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN};
        static const long long hi[] = {INT8_MAX, INT16_MAX, INT32_MAX, INT64_MAX};
        int k = t - MG_T_INT8;
        if (ov || v < lo[k] || v > hi[k]) {
            char range[64];
            snprintf(range, sizeof range, "%lld to %lld", lo[k], hi[k]);
            return does_not_fit(why, whylen, res, tname, range);
        }
        switch (t) {
        case MG_T_INT8: ((int8_t *)d)[i] = (int8_t)v; break;
        case MG_T_INT16: ((int16_t *)d)[i] = (int16_t)v; break;
        case MG_T_INT32: ((int32_t *)d)[i] = (int32_t)v; break;
        default: ((int64_t *)d)[i] = (int64_t)v; break;
        }
        break;
    }
    case MG_T_UINT8: case MG_T_UINT16: case MG_T_UINT32: case MG_T_UINT64: {
        if (!PyLong_Check(res))
            return WHY("expected an int for %s, got %.100s", tname, Py_TYPE(res)->tp_name);
        static const unsigned long long hi[] = {UINT8_MAX, UINT16_MAX, UINT32_MAX, UINT64_MAX};
        int k = t - MG_T_UINT8;
        unsigned long long v = PyLong_AsUnsignedLongLong(res);
        if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v > hi[k]) {
            PyErr_Clear();
            char range[64];
            snprintf(range, sizeof range, "0 to %llu", hi[k]);
            return does_not_fit(why, whylen, res, tname, range);
        }
        switch (t) {
        case MG_T_UINT8: ((uint8_t *)d)[i] = (uint8_t)v; break;
        case MG_T_UINT16: ((uint16_t *)d)[i] = (uint16_t)v; break;
        case MG_T_UINT32: ((uint32_t *)d)[i] = (uint32_t)v; break;
        default: ((uint64_t *)d)[i] = (uint64_t)v; break;
        }
        break;
    }
    case MG_T_FLOAT32: case MG_T_FLOAT64: {
        double v;
        if (PyFloat_Check(res))
            v = PyFloat_AS_DOUBLE(res);
        else if (PyLong_Check(res)) {
            v = PyLong_AsDouble(res);
            if (v == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return WHY("the int is too large for %s", tname);
            }
        }
        else
            return WHY("expected a float for %s, got %.100s", tname, Py_TYPE(res)->tp_name);
        if (t == MG_T_FLOAT32)
            ((float *)d)[i] = (float)v;
        else
            ((double *)d)[i] = v;
        break;
    }
    case MG_T_TEXT: case MG_T_BINARY: {
        Py_ssize_t n;
        if (PyUnicode_Check(res)) {
            const char *p = PyUnicode_AsUTF8AndSize(res, &n);
            if (p == NULL) {
                PyErr_Clear();
                return WHY("the str cannot be encoded as UTF-8 (it holds a lone surrogate)");
            }
            int rc = put_bytes(b, i, p, (size_t)n);
            if (rc)
                return rc;
            break;
        }
        if (t == MG_T_TEXT)
            return WHY("expected a str for TEXT, got %.100s", Py_TYPE(res)->tp_name);
        if (PyBytes_Check(res)) {
            int rc = put_bytes(b, i, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
            if (rc)
                return rc;
            break;
        }
        Py_buffer view;
        if (!PyObject_CheckBuffer(res) || PyObject_GetBuffer(res, &view, PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear();
            return WHY("expected bytes for BINARY, got %.100s", Py_TYPE(res)->tp_name);
        }
        int rc = put_bytes(b, i, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        if (rc)
            return rc;
        break;
    }
    default:
        return WHY("bad output type");
    }
    set_valid(o->validity, i, 1);
    return 0;
}

/* A row's result did not fit: NULL under MG_CALL_ERROR_NULL, else the
 * batch fails with err saying so. */
static int
result_failed(batch_t *b, size_t i, int rc, const char *why)
{
    if (rc == MG_ERESULT && (b->flags & MG_CALL_ERROR_NULL)) {
        set_valid(b->out->validity, i, 0);
        return 0;
    }
    if (rc == MG_ERESULT)
        set_error(b->err, (int64_t)i, "TypeError", why, "");
    else
        set_error(b->err, (int64_t)i, "MemoryError", "out of memory", "");
    return rc;
}

/* The call of row i (or of the whole batch: row -1) raised: NULL under
 * MG_CALL_ERROR_NULL for an Exception (never KeyboardInterrupt or
 * SystemExit), else the batch fails.  Returns 1 when the row was NULLed. */
static int
call_raised(batch_t *b, int64_t row)
{
    if ((b->flags & MG_CALL_ERROR_NULL) && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 1;
    }
    capture_exception(b->err, row);
    return 0;
}

static int
any_null(const batch_t *b, size_t i)
{
    for (int c = 0; c < b->ncols; c++)
        if (!is_valid(b->in[c].validity, i))
            return 1;
    return 0;
}

#define MAX_ARGS 64

static int
run_rows(batch_t *b, PyObject *fn)
{
    PyObject *args[MAX_ARGS];
    char why[256];
    int pass_null = (b->flags & MG_CALL_PASS_NULL) != 0;
    for (size_t i = 0; i < b->nrows; i++) {
        if (!pass_null && any_null(b, i)) {
            set_valid(b->out->validity, i, 0);
            continue;
        }
        int c = 0;
        for (; c < b->ncols; c++) {
            if (!is_valid(b->in[c].validity, i))
                args[c] = Py_NewRef(Py_None);
            else if ((args[c] = cell_to_py(&b->in[c], i)) == NULL)
                break;
        }
        PyObject *res = c == b->ncols ? PyObject_Vectorcall(fn, args, (size_t)b->ncols, NULL) : NULL;
        while (c-- > 0)
            Py_DECREF(args[c]);
        if (res == NULL) {
            if (call_raised(b, (int64_t)i)) {
                set_valid(b->out->validity, i, 0);
                continue;
            }
            return MG_EEXEC;
        }
        int rc = put_cell(b, i, res, why, sizeof why);
        Py_DECREF(res);
        if (rc && (rc = result_failed(b, i, rc, why)) != 0)
            return rc;
    }
    return 0;
}

static void
null_all(batch_t *b)
{
    for (size_t i = 0; i < b->nrows; i++)
        set_valid(b->out->validity, i, 0);
}

/* One call with a list per column; NULL-propagating rows come out NULL
 * whatever the function returned for them. */
static int
run_vectorized(batch_t *b, PyObject *fn)
{
    PyObject *lists[MAX_ARGS];
    char why[256];
    int c, rc = 0;
    for (c = 0; c < b->ncols; c++) {
        lists[c] = PyList_New((Py_ssize_t)b->nrows);
        if (lists[c] == NULL)
            break;
        size_t i = 0;
        for (; i < b->nrows; i++) {
            PyObject *v = is_valid(b->in[c].validity, i) ? cell_to_py(&b->in[c], i) : Py_NewRef(Py_None);
            if (v == NULL)
                break;
            PyList_SET_ITEM(lists[c], (Py_ssize_t)i, v);
        }
        if (i < b->nrows) {
            c++;
            break;
        }
    }
    PyObject *res = c == b->ncols && !PyErr_Occurred()
                    ? PyObject_Vectorcall(fn, lists, (size_t)b->ncols, NULL) : NULL;
    while (c-- > 0)
        Py_DECREF(lists[c]);
    if (res == NULL) {
        if (call_raised(b, -1)) {
            null_all(b);
            return 0;
        }
        return MG_EEXEC;
    }
    PyObject *seq = PySequence_Fast(res, "a vectorized host function must return a sequence");
    Py_DECREF(res);
    if (seq == NULL) {
        PyErr_Clear();
        set_error(b->err, -1, "TypeError", "a vectorized function must return a sequence (a list) "
                  "of one value per row", "");
        return MG_ERESULT;
    }
    if ((size_t)PySequence_Fast_GET_SIZE(seq) != b->nrows) {
        snprintf(why, sizeof why, "the vectorized function returned %zd values for %zu rows",
                 PySequence_Fast_GET_SIZE(seq), b->nrows);
        set_error(b->err, -1, "ValueError", why, "");
        Py_DECREF(seq);
        return MG_ERESULT;
    }
    int pass_null = (b->flags & MG_CALL_PASS_NULL) != 0;
    for (size_t i = 0; i < b->nrows && rc == 0; i++) {
        if (!pass_null && any_null(b, i)) {
            set_valid(b->out->validity, i, 0);
            continue;
        }
        rc = put_cell(b, i, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i), why, sizeof why);
        if (rc)
            rc = result_failed(b, i, rc, why);
    }
    Py_DECREF(seq);
    return rc;
}

/* In the target interpreter. */
static int
batch_in_target(void *arg, mg__buf_t *out)
{
    (void)out;
    batch_t *b = arg;
    PyObject *fn = mg__func_callable(b->f);
    if (fn == NULL) {
        capture_exception(b->err, -1);
        return MG_EEXEC;
    }
    Py_INCREF(fn);
    int rc;
    mg__user_code_t uc;
    if (mg__user_code_enter(&uc) == 0)          /* interrupts land only here */
        rc = (b->flags & MG_CALL_VECTORIZED) ? run_vectorized(b, fn) : run_rows(b, fn);
    else {
        capture_exception(b->err, -1);
        rc = MG_EEXEC;
    }
    mg__user_code_leave(&uc);
    Py_DECREF(fn);
    if (PyErr_Occurred())           /* never leave one behind */
        PyErr_Clear();
    return rc;
}

static int
check_column(const mg_column_t *c, int is_out)
{
    if (c == NULL || !type_ok(c->type) || c->data == NULL)
        return 0;
    return !is_out || c->validity != NULL;
}

int
mg_call_batch(int64_t interp, mg_func_t *f, int flags, size_t nrows, int ncols,
              const mg_column_t *in, mg_column_t *out, mg_error_t *err)
{
    mg_error_clear(err);            /* zero-initialised or from an earlier call */
    if (f == NULL || ncols < 0 || ncols > MAX_ARGS || (ncols > 0 && in == NULL)
        || (flags & ~(MG_CALL_PASS_NULL | MG_CALL_VECTORIZED | MG_CALL_ERROR_NULL)))
        return MG_EINVAL;
    if (nrows == 0)
        return 0;
    if (!check_column(out, 1))
        return MG_EINVAL;
    for (int c = 0; c < ncols; c++)
        if (!check_column(&in[c], 0))
            return MG_EINVAL;
    if (!Py_IsInitialized())
        return MG_ENOTINIT;
    batch_t b = {f, flags, nrows, ncols, in, out, err, 0};
    mg__buf_t res = MG__BUF_INIT;
    int raised = 0;
    int rc = mg__interp_run_as(interp, "call", batch_in_target, &b, &res, &raised);
    mg__buf_free(&res);
    if (rc == 0 && raised)
        rc = MG_EEXEC;              /* not reached: the batch catches its own */
    if (rc == 0 && (out->type == MG_T_TEXT || out->type == MG_T_BINARY)) {
        char *base = mg__host_arena_base();
        mg_bytes_t *cells = out->data;
        for (size_t i = 0; i < nrows; i++)
            if (is_valid(out->validity, i))
                cells[i].ptr = base + (uintptr_t)cells[i].ptr;
    }
    return rc;
}
