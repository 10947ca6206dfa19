/* hostrows.c -- mg_call_batch's per-row loop.
 *
 * A batch runs in three tight loops: each input column becomes a list of
 * Python values (of the rows that are called: every row under
 * MG_CALL_PASS_NULL, else those with no NULL cell), a small Python loop in
 * the target interpreter calls the function once per row, collecting the
 * results in a list, and the results go into the output column.  The loop
 * is Python on purpose: CPython calls a Python function from bytecode
 * without entering the evaluation loop anew, which a call from C does per
 * row (on 3.13 that entry is about a fifth of a trivial function's cost).
 *
 * The loop is a list comprehension over an iterator of the rows.  When a
 * call raises, the iterator's remaining length says which row it was.
 * Under MG_CALL_ERROR_NULL the results of the rows before it are needed
 * too: there the loop appends to a list the caller holds, a raising row's
 * result becomes None, and the loop resumes on the same iterator. */
#include <stdint.h>
#include <stdlib.h>

#include "py/hostbatch.h"

/* The loops, by number of arguments (0, 1, 2, 3, any): c* return the list
 * of results, r* append them to `out`; `it` iterates over the rows (a
 * range's, a list's, or a zip of the lists). */
static const char ROWS_SOURCE[] =
    "def c0(f, it): return [f() for _ in it]\n"
    "def c1(f, it): return [f(a) for a in it]\n"
    "def c2(f, it): return [f(a, b) for a, b in it]\n"
    "def c3(f, it): return [f(a, b, c) for a, b, c in it]\n"
    "def cn(f, it): return [f(*args) for args in it]\n"
    "def r0(f, it, out):\n"
    "    for _ in it:\n"
    "        out.append(f())\n"
    "def r1(f, it, out):\n"
    "    for a in it:\n"
    "        out.append(f(a))\n"
    "def r2(f, it, out):\n"
    "    for a, b in it:\n"
    "        out.append(f(a, b))\n"
    "def r3(f, it, out):\n"
    "    for a, b, c in it:\n"
    "        out.append(f(a, b, c))\n"
    "def rn(f, it, out):\n"
    "    for args in it:\n"
    "        out.append(f(*args))\n";

static const char *const LOOP_NAMES[10] = {"c0", "c1", "c2", "c3", "cn", "r0", "r1", "r2", "r3", "rn"};

#define ROWS_KEY "manygil.host_rows"

/* This interpreter's loops (a tuple in LOOP_NAMES' order), compiled on
 * first use and kept in its state dict.  Borrowed; NULL with an exception. */
static PyObject *
row_loops(void)
{
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (idict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no interpreter state dict");
        return NULL;
    }
    PyObject *loops = PyDict_GetItemString(idict, ROWS_KEY);
    if (loops != NULL)
        return loops;
    PyObject *ns = PyDict_New();
    PyObject *code = Py_CompileString(ROWS_SOURCE, "<manygil rows>", Py_file_input);
    PyObject *res = NULL;
    if (ns != NULL && code != NULL && PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0)
        res = PyEval_EvalCode(code, ns, ns);
    if (res != NULL && (loops = PyTuple_New(10)) != NULL)
        for (int i = 0; i < 10; i++)
            PyTuple_SET_ITEM(loops, i, Py_NewRef(PyDict_GetItemString(ns, LOOP_NAMES[i])));
    if (loops != NULL && PyDict_SetItemString(idict, ROWS_KEY, loops) < 0)
        Py_CLEAR(loops);
    Py_XDECREF(loops);              /* the state dict keeps it */
    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_XDECREF(ns);
    return loops;
}

/* The rows to call, in *rows (NULL: all of them) and *n; the others (a
 * NULL in some column, without MG_CALL_PASS_NULL) are NULLed in the
 * output.  0 or MG_ENOMEM (b->err set). */
static int
called_rows(mg__batch_t *b, size_t **rows, size_t *n)
{
    *rows = NULL;
    *n = b->nrows;
    if (b->flags & MG_CALL_PASS_NULL)
        return 0;
    size_t first = 0;
    for (int c = 0; c < b->ncols; c++)
        if (b->in[c].validity != NULL)
            goto scan;
    return 0;
scan:
    while (first < b->nrows && !mg__any_null(b, first))
        first++;
    if (first == b->nrows)
        return 0;
    if ((*rows = malloc(b->nrows * sizeof(size_t))) == NULL) {
        mg__set_error(b->err, -1, "MemoryError", "out of memory", "");
        return MG_ENOMEM;
    }
    *n = 0;
    for (size_t i = 0; i < b->nrows; i++) {
        if (mg__any_null(b, i))
            mg__set_valid(b->out->validity, i, 0);
        else
            (*rows)[(*n)++] = i;
    }
    return 0;
}

/* Drop the first entry (the row loop's own frame) of the raised
 * exception's traceback. */
static void
strip_loop_frame(void)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *tb = exc ? PyException_GetTraceback(exc) : NULL;
    if (tb != NULL) {
        PyObject *next = PyObject_GetAttrString(tb, "tb_next");
        if (next == NULL || PyException_SetTraceback(exc, next) < 0)
            PyErr_Clear();
        Py_XDECREF(next);
        Py_DECREF(tb);
    }
    PyErr_SetRaisedException(exc);
}

/* Some called rows: row k of the span is batch row rows[k], or base + k
 * when rows is NULL. */
typedef struct {
    const size_t *rows;
    size_t base, n;
} span_t;

#define SPAN_ROW(sp, k) ((sp)->rows ? (sp)->rows[k] : (sp)->base + (k))

/* Store the results (out) of the span's rows. */
static int
store_results(mg__batch_t *b, PyObject *out, const span_t *sp)
{
    char why[256];
    int64_t *d = b->out->type == MG_T_INT64 ? b->out->data : NULL;
    for (size_t k = 0; k < sp->n; k++) {
        size_t i = SPAN_ROW(sp, k);
        PyObject *res = PyList_GET_ITEM(out, (Py_ssize_t)k);
        if (d != NULL && PyLong_CheckExact(res) && PyUnstable_Long_IsCompact((PyLongObject *)res)) {
            d[i] = (int64_t)PyUnstable_Long_CompactValue((PyLongObject *)res);   /* the common case */
            mg__set_valid(b->out->validity, i, 1);
            continue;
        }
        int rc = mg__put_cell(b, i, res, why, sizeof why);
        if (rc && (rc = mg__result_failed(b, i, rc, why)) != 0)
            return rc;
    }
    return 0;
}

typedef struct {
    PyObject *it;               /* over the span's rows */
    PyObject *pos;              /* the iterator whose remaining length says where it is */
    span_t sp;
} rows_iter_t;

/* The batch row that the call which just raised was given: from the rows
 * the iterator has not given yet (-1 if it cannot tell). */
static int64_t
raising_row(const rows_iter_t *ri)
{
    PyObject *exc = PyErr_GetRaisedException();
    Py_ssize_t left = PyObject_LengthHint(ri->pos, -1);
    if (left < 0)
        PyErr_Clear();
    PyErr_SetRaisedException(exc);
    if (left < 0 || (size_t)left >= ri->sp.n)
        return -1;
    return (int64_t)SPAN_ROW(&ri->sp, ri->sp.n - 1 - (size_t)left);
}

/* Call fn over the rows; the list of results, or NULL with b->err set. */
static PyObject *
collect(mg__batch_t *b, PyObject *loops, PyObject *fn, const rows_iter_t *ri)
{
    int arity = b->ncols < 4 ? b->ncols : 4;
    if (!(b->flags & MG_CALL_ERROR_NULL)) {
        PyObject *args[2] = {fn, ri->it};
        PyObject *out = PyObject_Vectorcall(PyTuple_GET_ITEM(loops, arity), args, 2, NULL);
        if (out == NULL) {
            int64_t row = raising_row(ri);
            strip_loop_frame();
            mg__call_raised(b, row);
        }
        return out;
    }
    PyObject *out = PyList_New(0);
    PyObject *args[3] = {fn, ri->it, out};
    while (out != NULL) {
        PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(loops, 5 + arity), args, 3, NULL);
        if (r != NULL) {
            Py_DECREF(r);
            break;
        }
        size_t k = (size_t)PyList_GET_SIZE(out);
        int64_t row = k < ri->sp.n ? (int64_t)SPAN_ROW(&ri->sp, k) : -1;
        strip_loop_frame();
        if (row < 0 || !mg__call_raised(b, row) || PyList_Append(out, Py_None) < 0) {
            if (PyErr_Occurred())       /* past the last row (an interrupt) or no memory */
                mg__host_capture(b->err, row);
            Py_CLEAR(out);
        }
    }
    return out;
}

/* run_span's "row *bad's cell could not be made and the row is NULL now:
 * call the others" */
#define SKIP_ROW 1

/* The called rows go to the loop in spans of at most this many (DuckDB's
 * chunk size): the Python values of a span (its cells and results) live at
 * once, so a host's batch of a million rows does not make a million ints
 * first. */
#define SPAN 2048

/* Call fn over a span of the called rows and store the results: 0,
 * MG_E*, or SKIP_ROW. */
static int
run_span(mg__batch_t *b, PyObject *loops, PyObject *fn, span_t sp, int64_t *bad)
{
    int rc = MG_EEXEC;
    size_t n = sp.n;
    rows_iter_t ri = {NULL, NULL, sp};
    PyObject *lists = PyTuple_New(b->ncols), *out = NULL;
    *bad = -1;
    for (int c = 0; lists != NULL && c < b->ncols; c++) {
        PyObject *l = mg__column_to_list(&b->in[c], sp.rows, sp.base, n, bad);
        if (l == NULL)
            Py_CLEAR(lists);
        else
            PyTuple_SET_ITEM(lists, c, l);
    }
    if (lists == NULL && *bad >= 0) {   /* a TEXT cell that is not UTF-8 */
        if (mg__call_raised(b, *bad)) {
            mg__set_valid(b->out->validity, (size_t)*bad, 0);
            return SKIP_ROW;
        }
        return MG_EEXEC;
    }
    if (lists != NULL) {
        PyObject *range = b->ncols == 0 ? PyObject_CallFunction((PyObject *)&PyRange_Type, "n",
                                                                (Py_ssize_t)n) : NULL;
        ri.pos = b->ncols ? PyObject_GetIter(PyTuple_GET_ITEM(lists, 0))
                          : range ? PyObject_GetIter(range) : NULL;
        Py_XDECREF(range);
        if (ri.pos != NULL && b->ncols < 2)
            ri.it = Py_NewRef(ri.pos);
        else if (ri.pos != NULL) {
            PyObject *tmp = PyTuple_GET_ITEM(lists, 0);     /* zip(pos, lists[1], ...) */
            PyTuple_SET_ITEM(lists, 0, Py_NewRef(ri.pos));
            ri.it = PyObject_Call((PyObject *)&PyZip_Type, lists, NULL);
            Py_DECREF(tmp);
        }
    }
    if (ri.it == NULL) {
        mg__host_capture(b->err, -1);   /* out of memory */
        goto done;
    }
    if ((out = collect(b, loops, fn, &ri)) == NULL)
        goto done;
    if ((size_t)PyList_GET_SIZE(out) != n) {
        mg__set_error(b->err, -1, "SystemError", "the row loop lost results", "");
        goto done;
    }
    rc = store_results(b, out, &sp);
done:
    Py_XDECREF(out);
    Py_XDECREF(ri.it);
    Py_XDECREF(ri.pos);
    Py_XDECREF(lists);
    return rc;
}

/* (hostbatch.h) */
int
mg__run_rows(mg__batch_t *b, PyObject *fn)
{
    size_t *rows, n;
    int rc = called_rows(b, &rows, &n);
    if (rc || n == 0)
        return rc;
    PyObject *loops = row_loops();
    if (loops == NULL) {
        mg__host_capture(b->err, -1);
        rc = MG_EEXEC;
    }
    int64_t bad;
    for (size_t k0 = 0; rc == 0 && k0 < n;) {
        span_t sp = {rows ? rows + k0 : NULL, k0, n - k0 < SPAN ? n - k0 : SPAN};
        if ((rc = run_span(b, loops, fn, sp, &bad)) == 0) {
            k0 += sp.n;
            continue;
        }
        if (rc != SKIP_ROW)
            break;
        /* Drop row `bad` from the called rows and go on from the same place. */
        if (rows == NULL && (rows = malloc(n * sizeof(size_t))) == NULL) {
            mg__set_error(b->err, -1, "MemoryError", "out of memory", "");
            return MG_ENOMEM;
        }
        if (sp.rows == NULL)
            for (size_t k = 0; k < n; k++)
                rows[k] = k;
        size_t k = k0;
        while (k < n && rows[k] != (size_t)bad)
            k++;
        for (; k + 1 < n; k++)
            rows[k] = rows[k + 1];
        n--;
        rc = 0;
    }
    free(rows);
    return rc;
}
