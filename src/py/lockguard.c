/* lockguard.c -- _locked_call(locks, fn, *args, **kwargs).
 *
 * Why.  A KeyboardInterrupt is raised in the main thread at the next check
 * of the eval loop after the signal arrives -- wherever that is.  A `with
 * lock:` whose __enter__ has taken the lock but whose protected block has
 * not begun is such a place: on CPython 3.14+ `with` calls __enter__ with a
 * CALL instruction that checks for signals after the call returns, before
 * the block that would run __exit__ (bpo-29988); threading.Condition's
 * __enter__ is a Python function, so on every version.  The lock is then
 * held for good, and another thread that needs it (the pool's collector
 * resolving a future the main thread was waiting on) blocks for ever.
 *
 * What.  _locked_call records, for each RLock in `locks`, how many holds the
 * calling thread has on it, calls fn(*args, **kwargs), and then -- whether fn
 * returned or raised -- releases every hold beyond that count.  All of that
 * after fn is C: no bytecode runs between fn's end and the release, so no
 * signal handler can raise in between.  A hold fn means to keep past its
 * return would be released too: use it only around calls that leave the
 * locks as they found them.  The locks must be threading.RLock()s (owner
 * and count are what make the repair exact; a plain Lock has neither).
 */
#include "py/lockguard.h"

#define MG__LOCKGUARD_MAX 4

/* How many holds the calling thread has on lock; -1 with an exception. */
static Py_ssize_t
holds(PyObject *lock)
{
    PyObject *n = PyObject_CallMethod(lock, "_recursion_count", NULL);
    if (n == NULL)
        return -1;
    Py_ssize_t count = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return count;
}

/* Release holds on lock until the thread has `keep` left; 0, or -1 with an
 * exception. */
static int
release_to(PyObject *lock, Py_ssize_t keep)
{
    Py_ssize_t now = holds(lock);
    if (now < 0)
        return -1;
    for (; now > keep; now--) {
        PyObject *r = PyObject_CallMethod(lock, "release", NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

PyDoc_STRVAR(locked_call_doc,
"_locked_call(locks, fn, /, *args, **kwargs)\n--\n\n"
"fn(*args, **kwargs); then, even when it raised, release every hold on the\n"
"RLocks in the tuple locks that this thread took during the call and kept.");

static PyObject *
fn_locked_call(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    (void)mod;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "_locked_call() needs locks and a callable");
        return NULL;
    }
    PyObject *locks = args[0];
    if (!PyTuple_Check(locks) || PyTuple_GET_SIZE(locks) > MG__LOCKGUARD_MAX) {
        PyErr_Format(PyExc_TypeError, "_locked_call(): locks must be a tuple of at most %d RLocks",
                     MG__LOCKGUARD_MAX);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(locks);
    Py_ssize_t before[MG__LOCKGUARD_MAX];
    for (Py_ssize_t i = 0; i < n; i++) {
        before[i] = holds(PyTuple_GET_ITEM(locks, i));
        if (before[i] < 0)
            return NULL;
    }
    PyObject *result = PyObject_Vectorcall(args[1], args + 2, nargs - 2, kwnames);
    PyObject *exc = result == NULL ? PyErr_GetRaisedException() : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (release_to(PyTuple_GET_ITEM(locks, i), before[i]) < 0) {
            /* Cannot happen with RLocks; keep the first error. */
            if (exc == NULL)
                exc = PyErr_GetRaisedException();
            else
                PyErr_Clear();
        }
    }
    if (exc != NULL) {
        Py_CLEAR(result);
        PyErr_SetRaisedException(exc);
    }
    return result;
}

PyMethodDef mg__lockguard_functions[] = {
    {"_locked_call", (PyCFunction)(void (*)(void))fn_locked_call, METH_FASTCALL | METH_KEYWORDS,
     locked_call_doc},
    {NULL, NULL, 0, NULL},
};
