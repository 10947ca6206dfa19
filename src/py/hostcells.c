/* hostcells.c -- a batch's cells as Python values, and the function's
 * results back into the output column (hostbatch.h). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "py/hostbatch.h"

static const char *const type_names[MG_T__LAST] = {
    [MG_T_BOOL] = "BOOL", [MG_T_INT8] = "INT8", [MG_T_INT16] = "INT16",
    [MG_T_INT32] = "INT32", [MG_T_INT64] = "INT64", [MG_T_UINT8] = "UINT8",
    [MG_T_UINT16] = "UINT16", [MG_T_UINT32] = "UINT32", [MG_T_UINT64] = "UINT64",
    [MG_T_FLOAT32] = "FLOAT32", [MG_T_FLOAT64] = "FLOAT64", [MG_T_TEXT] = "TEXT",
    [MG_T_BINARY] = "BINARY",
};

const char *
mg__utf8_or(PyObject *s, const char *dflt)
{
    const char *p = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
    if (p == NULL)
        PyErr_Clear();
    return p ? p : dflt;
}

/* ---- cells -> Python ------------------------------------------------------ */

PyObject *
mg__cell_to_py(const mg_column_t *c, size_t i)
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

/* Fill list with column c's cells rows[0..n) made by MAKE from the typed
 * data, NULL cells as None (mg__column_to_list's typed loops). */
#define FILL(T, MAKE)                                                         \
    do {                                                                      \
        const T *d = c->data;                                                 \
        for (size_t k = 0; k < n; k++) {                                      \
            size_t i = rows ? rows[k] : base + k;                                    \
            PyObject *o = mg__is_valid(c->validity, i) ? MAKE(d[i]) : Py_NewRef(Py_None); \
            if (o == NULL) {                                                  \
                *bad = (int64_t)i;                                            \
                goto fail;                                                    \
            }                                                                 \
            PyList_SET_ITEM(list, (Py_ssize_t)k, o);                          \
        }                                                                     \
    } while (0)

/* (hostbatch.h) */
PyObject *
mg__column_to_list(const mg_column_t *c, const size_t *rows, size_t base, size_t n,
                   int64_t *bad)
{
    *bad = -1;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        return NULL;
    switch (c->type) {
    case MG_T_INT64: FILL(int64_t, PyLong_FromLongLong); break;
    case MG_T_INT32: FILL(int32_t, PyLong_FromLong); break;
    case MG_T_FLOAT64: FILL(double, PyFloat_FromDouble); break;
    default:
        for (size_t k = 0; k < n; k++) {
            size_t i = rows ? rows[k] : base + k;
            PyObject *o = mg__is_valid(c->validity, i) ? mg__cell_to_py(c, i) : Py_NewRef(Py_None);
            if (o == NULL) {
                *bad = (int64_t)i;
                goto fail;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)k, o);
        }
    }
    return list;
fail:
    Py_DECREF(list);                /* the items not set yet are NULL */
    return NULL;
}

#undef FILL

/* ---- Python -> the output cell ------------------------------------------ */

/* Copy n bytes into the arena as cell i (its ptr = offset for now). */
static int
put_bytes(mg__batch_t *b, size_t i, const char *p, size_t n)
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
    snprintf(why, whylen, "%.60s%s does not fit %s (%s)", mg__utf8_or(r, "?"),
             r && PyUnicode_GET_LENGTH(r) > 60 ? "..." : "", tname, range);
    Py_XDECREF(r);
    return MG_ERESULT;
}

/* (hostbatch.h) */
int
mg__put_cell(mg__batch_t *b, size_t i, PyObject *res, char *why, size_t whylen)
{
    mg_column_t *o = b->out;
    void *d = o->data;
    const char *tname = type_names[o->type];
    if (res == Py_None) {
        mg__set_valid(o->validity, i, 0);
        return 0;
    }
    int t = o->type;
    if (t == MG_T_INT64 && PyLong_CheckExact(res)) {     /* the common case, first */
        int ov = 0;
        long long v = PyLong_AsLongLongAndOverflow(res, &ov);
        if (!ov) {
            ((int64_t *)d)[i] = (int64_t)v;
            mg__set_valid(o->validity, i, 1);
            return 0;
        }
    }
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
    mg__set_valid(o->validity, i, 1);
    return 0;
}

