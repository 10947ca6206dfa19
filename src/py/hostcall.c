/* hostcall.c -- mg_call_batch: call a host callable over typed columns in
 * an interpreter, converting cells to Python values and results back.
 *
 * The batch runs inside the target interpreter in one visit
 * (mg__interp_run_as, named "call": the watchdog, the deadlock detector
 * and mg_interp_interrupt see it).  Output TEXT/BINARY cells are copied
 * into the calling thread's arena; while the batch fills it (and it may
 * move) their `ptr` holds an offset, turned into a pointer at the end.
 * Here: the batch's errors, the vectorized loop and the entry point; the
 * per-row loop is hostrows.c, the cells hostcells.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "py/hostbatch.h"
#include "py/codec.h"
#include "py/interp.h"

static int
type_ok(int t)
{
    return t >= MG_T_BOOL && t < MG_T__LAST;
}

/* ---- errors -------------------------------------------------------------- */

/* (hostbatch.h) */
void
mg__set_error(mg_error_t *err, int64_t row, const char *type, const char *msg, const char *tb)
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

/* (hostbatch.h) */
void
mg__host_capture(mg_error_t *err, int64_t row)
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
    mg__set_error(err, row, mg__utf8_or(name, "BaseException"), mg__utf8_or(msg, ""), mg__utf8_or(tb, ""));
    Py_XDECREF(name);
    Py_XDECREF(msg);
    Py_XDECREF(tb);
    Py_DECREF(exc);
}

/* (hostbatch.h) */
int
mg__result_failed(mg__batch_t *b, size_t i, int rc, const char *why)
{
    if (rc == MG_ERESULT && (b->flags & MG_CALL_ERROR_NULL)) {
        mg__set_valid(b->out->validity, i, 0);
        return 0;
    }
    if (rc == MG_ERESULT)
        mg__set_error(b->err, (int64_t)i, "TypeError", why, "");
    else
        mg__set_error(b->err, (int64_t)i, "MemoryError", "out of memory", "");
    return rc;
}

/* (hostbatch.h) */
int
mg__call_raised(mg__batch_t *b, int64_t row)
{
    if ((b->flags & MG_CALL_ERROR_NULL) && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 1;
    }
    mg__host_capture(b->err, row);
    return 0;
}

static void
null_all(mg__batch_t *b)
{
    for (size_t i = 0; i < b->nrows; i++)
        mg__set_valid(b->out->validity, i, 0);
}

/* One call with a list per column; NULL-propagating rows come out NULL
 * whatever the function returned for them. */
static int
run_vectorized(mg__batch_t *b, PyObject *fn)
{
    PyObject *lists[MG__MAX_ARGS] = {NULL};
    char why[256];
    int c, rc = 0;
    int64_t row = -1;               /* a cell that could not be made, or the whole batch */
    for (c = 0; c < b->ncols; c++)
        if ((lists[c] = mg__column_to_list(&b->in[c], NULL, 0, b->nrows, &row)) == NULL)
            break;
    PyObject *res = c == b->ncols ? PyObject_Vectorcall(fn, lists, (size_t)b->ncols, NULL) : NULL;
    while (c-- > 0)
        Py_DECREF(lists[c]);
    if (res == NULL) {
        if (mg__call_raised(b, row)) {
            null_all(b);
            return 0;
        }
        return MG_EEXEC;
    }
    PyObject *seq = PySequence_Fast(res, "a vectorized host function must return a sequence");
    Py_DECREF(res);
    if (seq == NULL) {
        PyErr_Clear();
        mg__set_error(b->err, -1, "TypeError", "a vectorized function must return a sequence (a list) "
                  "of one value per row", "");
        return MG_ERESULT;
    }
    if ((size_t)PySequence_Fast_GET_SIZE(seq) != b->nrows) {
        snprintf(why, sizeof why, "the vectorized function returned %zd values for %zu rows",
                 PySequence_Fast_GET_SIZE(seq), b->nrows);
        mg__set_error(b->err, -1, "ValueError", why, "");
        Py_DECREF(seq);
        return MG_ERESULT;
    }
    int pass_null = (b->flags & MG_CALL_PASS_NULL) != 0;
    for (size_t i = 0; i < b->nrows && rc == 0; i++) {
        if (!pass_null && mg__any_null(b, i)) {
            mg__set_valid(b->out->validity, i, 0);
            continue;
        }
        rc = mg__put_cell(b, i, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i), why, sizeof why);
        if (rc)
            rc = mg__result_failed(b, i, rc, why);
    }
    Py_DECREF(seq);
    return rc;
}

/* In the target interpreter. */
static int
batch_in_target(void *arg, mg__buf_t *out)
{
    (void)out;
    mg__batch_t *b = arg;
    PyObject *fn = mg__func_callable(b->f);
    if (fn == NULL) {
        mg__host_capture(b->err, -1);
        return MG_EEXEC;
    }
    Py_INCREF(fn);
    int rc;
    mg__user_code_t uc;
    if (mg__user_code_enter(&uc) == 0)          /* interrupts land only here */
        rc = (b->flags & MG_CALL_VECTORIZED) ? run_vectorized(b, fn) : mg__run_rows(b, fn);
    else {
        mg__host_capture(b->err, -1);
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
    if (f == NULL || ncols < 0 || ncols > MG__MAX_ARGS || (ncols > 0 && in == NULL)
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
    mg__batch_t b = {f, flags, nrows, ncols, in, out, err, 0};
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
            if (mg__is_valid(out->validity, i))
                cells[i].ptr = base + (uintptr_t)cells[i].ptr;
    }
    return rc;
}
