/* hostbatch.h -- one mg_call_batch in its target interpreter: the batch's
 * description and the pieces its row and vectorized loops share
 * (hostcall.c: errors and the vectorized loop; hostcells.c: cells to
 * Python values and results back; hostrows.c: the per-row loop). */
#ifndef MG_PY_HOSTBATCH_H
#define MG_PY_HOSTBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "py/host.h"

/* mg_call_batch takes 0 to MG__MAX_ARGS input columns. */
#define MG__MAX_ARGS 64

typedef struct {
    mg_func_t *f;
    int flags;                  /* MG_CALL_* */
    size_t nrows;
    int ncols;
    const mg_column_t *in;
    mg_column_t *out;
    mg_error_t *err;
    size_t arena_used;          /* bytes of the thread's arena the output holds */
} mg__batch_t;

static inline int
mg__is_valid(const uint64_t *v, size_t i)
{
    return v == NULL || ((v[i >> 6] >> (i & 63)) & 1);
}

static inline void
mg__set_valid(uint64_t *v, size_t i, int on)
{
    if (on)
        v[i >> 6] |= (uint64_t)1 << (i & 63);
    else
        v[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* Whether row i has a NULL in any input column. */
static inline int
mg__any_null(const mg__batch_t *b, size_t i)
{
    for (int c = 0; c < b->ncols; c++)
        if (!mg__is_valid(b->in[c].validity, i))
            return 1;
    return 0;
}

/* s's UTF-8 text (s a str), else dflt; never leaves an exception set. */
const char *mg__utf8_or(PyObject *s, const char *dflt);

/* Cell i of column c as a new Python value (not for NULL cells), or NULL
 * with an exception (a TEXT cell that is not UTF-8). */
PyObject *mg__cell_to_py(const mg_column_t *c, size_t i);

/* Column c's cells rows[0..n) (rows NULL: base..base+n) as a new list,
 * NULL cells as None; NULL with an exception and *bad the row whose cell
 * could not be made (-1: out of memory). */
PyObject *mg__column_to_list(const mg_column_t *c, const size_t *rows, size_t base, size_t n,
                             int64_t *bad);

/* Store the result `res` of row i in the output column: 0, MG_ENOMEM, or
 * MG_ERESULT with `why` saying what did not fit (no exception left set). */
int mg__put_cell(mg__batch_t *b, size_t i, PyObject *res, char *why, size_t whylen);

/* Replace err's contents: the row, the exception type's name, message and
 * traceback text (copied). */
void mg__set_error(mg_error_t *err, int64_t row, const char *type, const char *msg, const char *tb);

/* Move the raised exception into err (row `row`) and clear it. */
void mg__host_capture(mg_error_t *err, int64_t row);

/* A row's result did not fit (rc from mg__put_cell): NULL under
 * MG_CALL_ERROR_NULL, else the batch fails with err saying so.  0 or rc. */
int mg__result_failed(mg__batch_t *b, size_t i, int rc, const char *why);

/* The call of row `row` (or of the whole batch: -1) raised: under
 * MG_CALL_ERROR_NULL an Exception (never KeyboardInterrupt or SystemExit)
 * is cleared and 1 returned (the caller NULLs the row); else the exception
 * moves into b->err and 0 is returned. */
int mg__call_raised(mg__batch_t *b, int64_t row);

/* The per-row loop (hostrows.c): 0 or a negative MG_E* with b->err set. */
int mg__run_rows(mg__batch_t *b, PyObject *fn);

#endif /* MG_PY_HOSTBATCH_H */
