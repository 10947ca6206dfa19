/* awatch.c -- notifiers and async watches for manygil._asyncio (see
 * core/notify.h and the async part of core/channel.h).
 *
 * Both are PyCapsules owned by the event loop's side: a notifier capsule
 * per loop, a watch capsule per waiting coroutine.  A capsule's destructor
 * releases what it owns, so a loop closed (or a task dropped) with waits
 * pending leaves nothing armed on any channel.  None of these calls block.
 */
#include <errno.h>
#include "manygil.h"
#include "py/awatch.h"
#include "py/errors.h"
#include "py/fork.h"

#define NOTIFIER_NAME "manygil._notifier"
#define WATCH_NAME "manygil._awatch"

static void
notifier_destroy(PyObject *cap)
{
    mg__notifier_t *nt = PyCapsule_GetPointer(cap, NOTIFIER_NAME);
    if (nt == NULL) {
        PyErr_Clear();
        return;
    }
    mg__notifier_close(nt);         /* watches still armed keep the struct, not the fd */
    mg__notifier_decref(nt);
}

static mg__notifier_t *
get_notifier(PyObject *o)
{
    if (!PyCapsule_IsValid(o, NOTIFIER_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a manygil notifier");
        return NULL;
    }
    return PyCapsule_GetPointer(o, NOTIFIER_NAME);
}

static void
watch_destroy(PyObject *cap)
{
    mg__awatch_t *w = PyCapsule_GetPointer(cap, WATCH_NAME);
    if (w == NULL) {
        PyErr_Clear();
        return;
    }
    /* A channel from before fork(): its lock may be held by a thread that
     * is gone; leave it (and this watch) alone. */
    if (!mg__channel_inherited(w->ch))
        mg__awatch_free(w);
}

static mg__awatch_t *
get_watch(PyObject *o)
{
    if (!PyCapsule_IsValid(o, WATCH_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a manygil watch");
        return NULL;
    }
    mg__awatch_t *w = PyCapsule_GetPointer(o, WATCH_NAME);
    if (w != NULL && mg__channel_inherited(w->ch)) {
        mg__raise_inherited();
        return NULL;
    }
    return w;
}

/* _notifier() -> capsule: a new notifier (its descriptor: _notifier_fd). */
static PyObject *
fn_notifier(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    mg__notifier_t *nt;
    int rc = mg__notifier_create(&nt);
    if (rc == MG_ECREATE)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *cap = PyCapsule_New(nt, NOTIFIER_NAME, notifier_destroy);
    if (cap == NULL) {
        mg__notifier_close(nt);
        mg__notifier_decref(nt);
    }
    return cap;
}

static PyObject *
fn_notifier_fd(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__notifier_t *nt = get_notifier(arg);
    return nt ? PyLong_FromLong(mg__notifier_fd(nt)) : NULL;
}

static PyObject *
fn_notifier_close(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__notifier_t *nt = get_notifier(arg);
    if (nt == NULL)
        return NULL;
    mg__notifier_close(nt);
    Py_RETURN_NONE;
}

/* _notifier_drain(nt) -> [token, ...]: the tokens posted since the last
 * drain; clears the descriptor. */
static PyObject *
fn_notifier_drain(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__notifier_t *nt = get_notifier(arg);
    if (nt == NULL)
        return NULL;
    uint64_t *tokens;
    size_t n;
    int rc = mg__notifier_drain(nt, &tokens, &n);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *t = PyLong_FromUnsignedLongLong(tokens[i]);
        if (t == NULL)
            Py_CLEAR(list);         /* the tokens are lost: their waiters time out or wait */
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    free(tokens);
    return list;
}

/* _awatch(nt, handle, kind) -> (watch, token): an idle watch for receiving
 * (kind 2: MG__WAIT_RECV) or sending (1: MG__WAIT_SEND) on a channel end
 * or queue. */
static PyObject *
fn_awatch(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *ntobj, *handle;
    int kind;
    if (!PyArg_ParseTuple(args, "OOi:_awatch", &ntobj, &handle, &kind))
        return NULL;
    mg__notifier_t *nt = get_notifier(ntobj);
    if (nt == NULL)
        return NULL;
    mg__channel_t *ch;
    int end;
    if (!mg__channel_handle_get(handle, &ch, &end))
        return PyErr_Format(PyExc_TypeError, "expected a channel end or a queue, not %.200s",
                            Py_TYPE(handle)->tp_name);
    if (kind != MG__WAIT_RECV && kind != MG__WAIT_SEND)
        return PyErr_Format(PyExc_ValueError, "bad watch kind %d", kind);
    if (!(end & (kind == MG__WAIT_RECV ? MG__END_RECV : MG__END_SEND)))
        return mg__raise(MG_EWRONGEND, NULL);
    if (mg__channel_inherited(ch))
        return mg__raise_inherited();
    mg__awatch_t *w = mg__awatch_new(ch, nt, kind);
    if (w == NULL)
        return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(w, WATCH_NAME, watch_destroy);
    if (cap == NULL) {
        mg__awatch_free(w);
        return NULL;
    }
    PyObject *res = Py_BuildValue("(NK)", cap, (unsigned long long)w->token);
    return res;
}

/* _awatch_arm(w) -> bool: True if the channel is ready now (not armed). */
static PyObject *
fn_awatch_arm(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__awatch_t *w = get_watch(arg);
    return w ? PyBool_FromLong(mg__awatch_arm(w)) : NULL;
}

/* _awatch_disarm(w) -> bool: True if it had fired. */
static PyObject *
fn_awatch_disarm(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__awatch_t *w = get_watch(arg);
    return w ? PyBool_FromLong(mg__awatch_disarm(w)) : NULL;
}

/* _awatch_kick(w): pass a turn w did not take to the next armed watch. */
static PyObject *
fn_awatch_kick(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__awatch_t *w = get_watch(arg);
    if (w == NULL)
        return NULL;
    mg__channel_kick(w->ch, w->kind);
    Py_RETURN_NONE;
}

static PyObject *
fn_awatch_armed(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    return PyLong_FromLongLong(mg__awatch_armed_count());
}

PyMethodDef mg__awatch_functions[] = {
    {"_notifier", fn_notifier, METH_NOARGS, "_notifier()\n--\n\nA new notifier (capsule)."},
    {"_notifier_fd", fn_notifier_fd, METH_O, "_notifier_fd(nt)\n--\n\nIts descriptor."},
    {"_notifier_close", fn_notifier_close, METH_O, "_notifier_close(nt)\n--\n\n"},
    {"_notifier_drain", fn_notifier_drain, METH_O,
     "_notifier_drain(nt)\n--\n\nThe tokens posted since the last drain."},
    {"_awatch", fn_awatch, METH_VARARGS,
     "_awatch(nt, handle, kind)\n--\n\nA new idle watch: (watch, token)."},
    {"_awatch_arm", fn_awatch_arm, METH_O, "_awatch_arm(w)\n--\n\nTrue if ready now."},
    {"_awatch_disarm", fn_awatch_disarm, METH_O, "_awatch_disarm(w)\n--\n\nTrue if it fired."},
    {"_awatch_kick", fn_awatch_kick, METH_O, "_awatch_kick(w)\n--\n\n"},
    {"_awatch_armed", fn_awatch_armed, METH_NOARGS,
     "_awatch_armed()\n--\n\nNumber of armed watches in the process."},
    {NULL, NULL, 0, NULL},
};
