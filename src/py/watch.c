/* watch.c -- the Python face of diagnostics: the activity table, deadlock
 * detection settings, tracking threads started inside interpreters, and
 * reading the Python stacks of another interpreter.  (Interrupts and Ctrl-C:
 * interrupt.c.)
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/errors.h"
#include "py/interp.h"
#include "py/watch.h"
#include "py/runsrc.h"
#include "core/channel.h"
#include "core/deadlock.h"
#include "core/sync.h"
#include "core/waits.h"

/* ---- threads started inside interpreters -------------------------------- */

static int64_t
current_id(void)
{
    return PyInterpreterState_GetID(PyInterpreterState_Get());
}

static PyObject *
note_announce(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    if (mg__waits_home_announce(current_id()) != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
note_cancel(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    mg__waits_home_cancel(current_id());
    Py_RETURN_NONE;
}

static PyObject *
note_arrive(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    if (mg__waits_home_arrive(current_id(), PyThread_get_thread_ident()) != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
note_leave(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    mg__waits_home_leave(current_id(), PyThread_get_thread_ident());
    Py_RETURN_NONE;
}

static PyMethodDef note_defs[] = {
    {"announce", note_announce, METH_NOARGS, NULL},
    {"cancel", note_cancel, METH_NOARGS, NULL},
    {"arrive", note_arrive, METH_NOARGS, NULL},
    {"leave", note_leave, METH_NOARGS, NULL},
};

/* Wrap _thread's start functions (and threading's copies of them) so that
 * every thread started in this interpreter has a home record while it runs:
 * the deadlock detector then knows it may still act. */
static const char TRACK_THREADS_SRC[] =
"def _mg_track_threads(announce, cancel, arrive, leave):\n"
"    import _thread, sys\n"
"    def wrap(start):\n"
"        if getattr(start, '_mg_tracked', False):\n"
"            return start\n"
"        def start_tracked(function, *args, **kwargs):\n"
"            def run(*a, **k):\n"
"                arrive()\n"
"                try:\n"
"                    return function(*a, **k)\n"
"                finally:\n"
"                    leave()\n"
"            announce()\n"
"            try:\n"
"                return start(run, *args, **kwargs)\n"
"            except BaseException:\n"
"                cancel()\n"
"                raise\n"
"        start_tracked._mg_tracked = True\n"
"        start_tracked.__wrapped__ = start\n"
"        return start_tracked\n"
"    for name in ('start_new_thread', 'start_new', 'start_joinable_thread'):\n"
"        if hasattr(_thread, name):\n"
"            setattr(_thread, name, wrap(getattr(_thread, name)))\n"
"    threading = sys.modules.get('threading')\n"
"    if threading is not None:\n"
"        for name in ('_start_new_thread', '_start_joinable_thread'):\n"
"            if hasattr(threading, name):\n"
"                setattr(threading, name, getattr(_thread, name[1:]))\n";

int
mg__track_threads(void)
{
    int rc = -1;
    PyObject *fns[4] = {NULL, NULL, NULL, NULL}, *res = NULL;
    PyObject *ns = PyDict_New();
    if (ns == NULL || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto done;
    static mg__srccache_t track_code;
    res = mg__run_cached_source(&track_code, TRACK_THREADS_SRC, "<manygil thread tracking>", ns);
    if (res == NULL)
        goto done;
    Py_CLEAR(res);
    for (int i = 0; i < 4; i++)
        if ((fns[i] = PyCFunction_New(&note_defs[i], NULL)) == NULL)
            goto done;
    PyObject *track = PyDict_GetItemString(ns, "_mg_track_threads");  /* borrowed */
    if (track == NULL)
        goto done;
    res = PyObject_CallFunctionObjArgs(track, fns[0], fns[1], fns[2], fns[3], NULL);
    if (res != NULL)
        rc = 0;
done:
    for (int i = 0; i < 4; i++)
        Py_XDECREF(fns[i]);
    Py_XDECREF(res);
    Py_XDECREF(ns);
    return rc;
}

PyDoc_STRVAR(init_main_doc,
"_init_main(main_thread_ident, other_threads, dev_mode)\n--\n\n"
"Called once by the package in the main interpreter: the main thread gets\n"
"its home record, threads started from now on are tracked, threads that\n"
"existed before (other_threads > 0) make the main interpreter untracked,\n"
"and the deadlock detector starts.");

static PyObject *
fn_init_main(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned long long ident;
    int others, dev_mode;
    if (!PyArg_ParseTuple(args, "Kip:_init_main", &ident, &others, &dev_mode))
        return NULL;
    mg__codec_init(dev_mode);
    int64_t id = current_id();
    if (mg__sigint_ready())
        Py_RETURN_NONE;             /* once per process */
    mg__sigint_init((unsigned long)ident, id);
    if (others > 0)
        mg__deadlock_set_untracked(id);
    if (mg__waits_home_announce(id) != 0 || mg__waits_home_arrive(id, (unsigned long)ident) != 0)
        return PyErr_NoMemory();
    if (mg__track_threads() < 0)
        return NULL;
    if (mg__deadlock_start() != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- settings and the activity table ----------------------------------- */

PyDoc_STRVAR(configure_doc,
"_configure(deadlock_detection=None)\n--\n\n"
"Set what is given; return the settings as a dict.");

static PyObject *
fn_configure(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"deadlock_detection", NULL};
    PyObject *dd = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:_configure", kwlist, &dd))
        return NULL;
    if (dd != Py_None) {
        int on = PyObject_IsTrue(dd);
        if (on < 0)
            return NULL;
        mg__deadlock_set_enabled(on);
    }
    return Py_BuildValue("{s:O}", "deadlock_detection",
                         mg__deadlock_enabled() ? Py_True : Py_False);
}

static const char *
kind_name(int kind)
{
    switch (kind) {
    case MG__WAIT_SEND: return "send";
    case MG__WAIT_RECV: return "recv";
    case MG__ACT_RUN: return "run";
    default: return "home";
    }
}

PyDoc_STRVAR(activity_doc,
"_activity()\n--\n\n"
"The activity table, newest first: [(kind, interp_id, thread_ident, since_ns,\n"
"what, end_id, channel_id, forever, is_queue, holders, open_to_all, inbox,\n"
"serial, label)], kind in 'send', 'recv',\n"
"'run', 'home'; what names a run ('exec', 'call', 'task', 'actors': an actor\n"
"worker's loop, 'actor': one actor method), else None;\n"
"end_id/channel_id are None for runs and homes (an actor method run's end_id\n"
"is its actor's id); serial: the record's, unique; label: an actor method\n"
"run's 'Class#id.method', else None; holders: the interpreters\n"
"holding the other end of a wait's channel, open_to_all: anyone may act on it\n"
"(a plain id, a handle in flight, closed), inbox: the wait is an actor\n"
"worker's wait for its next message.  since_ns is monotonic\n"
"(compare with time.monotonic_ns()).");

static PyObject *
fn_activity(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    mg__wait_t *recs;
    size_t n;
    if (mg__waits_snapshot(&recs, &n, mg__channel_incref_void) != 0)
        return PyErr_NoMemory();
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < n; i++) {
        mg__wait_t *r = &recs[i];
        int is_wait = r->kind == MG__WAIT_SEND || r->kind == MG__WAIT_RECV;
        int is_actor = r->kind == MG__ACT_RUN && r->label[0] != '\0';
        PyObject *end = is_wait || is_actor ? PyLong_FromLongLong(r->end_id) : Py_NewRef(Py_None);
        PyObject *cid = is_wait ? PyLong_FromLongLong(r->end_id / 2) : Py_NewRef(Py_None);
        /* Waits: who holds the other end (and whether anyone else may). */
        PyObject *holders = PyList_New(0);
        int open_to_all = 0;
        if (holders != NULL && is_wait && r->chan != NULL) {
            int64_t peers[64];
            size_t npeers;
            int end_kind = mg__channel_is_queue(r->chan) ? MG__END_BOTH
                         : r->kind == MG__WAIT_RECV ? MG__END_SEND : MG__END_RECV;
            open_to_all = mg__channel_peers(r->chan, end_kind, peers, 64, &npeers);
            for (size_t k = 0; holders != NULL && k < npeers; k++) {
                PyObject *h = PyLong_FromLongLong(peers[k]);
                if (h == NULL || PyList_Append(holders, h) < 0)
                    Py_CLEAR(holders);
                Py_XDECREF(h);
            }
        }
        PyObject *item = (end && cid && holders) ? Py_BuildValue(
            "(sLkLzOOOOOOOKz)", kind_name(r->kind), (long long)r->interp_id, r->thread_ident,
            (long long)r->since_ns, r->what, end, cid, r->forever && is_wait ? Py_True : Py_False,
            is_wait && r->chan && mg__channel_is_queue(r->chan) ? Py_True : Py_False,
            holders, open_to_all ? Py_True : Py_False,
            r->kind == MG__WAIT_RECV && r->chan && mg__channel_is_inbox(r->chan)
                ? Py_True : Py_False,
            (unsigned long long)r->serial, is_actor ? r->label : NULL) : NULL;
        Py_XDECREF(end);
        Py_XDECREF(cid);
        Py_XDECREF(holders);
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    for (size_t i = 0; i < n; i++)
        if (recs[i].chan != NULL)
            mg__channel_decref(recs[i].chan);
    free(recs);
    return list;
}

PyDoc_STRVAR(deadlock_check_doc,
"_deadlock_check()\n--\n\nRun one deadlock detection pass now; the number of waits broken.");

static PyObject *
fn_deadlock_check(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = mg__deadlock_check();
    Py_END_ALLOW_THREADS
    if (n < 0)
        return mg__raise(n, "deadlock check");
    return PyLong_FromLong(n);
}

/* ---- stack dumps ------------------------------------------------------- */

/* In the target: the stacks of its threads as text (faulthandler's
 * layout), most recent call first; threads without a Python frame are left
 * out.  Only public API, with the target's GIL held. */
static int
stacks_in_target(void *varg, mg__buf_t *out)
{
    (void)varg;
    PyThreadState *self = PyThreadState_Get();
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return -1;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(self));
            ts != NULL; ts = PyThreadState_Next(ts)) {
        PyFrameObject *f = PyThreadState_GetFrame(ts);     /* new reference or NULL */
        if (f == NULL)
            continue;
        PyObject *head = PyUnicode_FromFormat("%s 0x%016lx (most recent call first):",
                                              ts == self ? "Current thread" : "Thread",
                                              ts->thread_id);
        if (head == NULL || PyList_Append(lines, head) < 0) {
            Py_XDECREF(head);
            Py_DECREF(f);
            goto error;
        }
        Py_DECREF(head);
        for (int depth = 0; f != NULL && depth < 100; depth++) {
            PyCodeObject *code = PyFrame_GetCode(f);
            PyObject *line = PyUnicode_FromFormat("  File \"%U\", line %d in %U",
                                                  code->co_filename, PyFrame_GetLineNumber(f),
                                                  code->co_name);
            Py_DECREF(code);
            PyFrameObject *back = PyFrame_GetBack(f);
            Py_DECREF(f);
            f = back;
            if (line == NULL || PyList_Append(lines, line) < 0) {
                Py_XDECREF(line);
                Py_XDECREF(f);
                goto error;
            }
            Py_DECREF(line);
        }
        Py_XDECREF(f);
    }
    PyObject *sep = PyUnicode_FromString("\n");
    PyObject *text = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(lines);
    if (text == NULL)
        return -1;
    mg__buf_clear(out);
    int rc = mg__encode(text, out);
    Py_DECREF(text);
    return rc;
error:
    Py_DECREF(lines);
    return -1;
}

PyDoc_STRVAR(stacks_doc,
"_stacks(interp_id)\n--\n\n"
"The Python stacks of interpreter interp_id's threads as text, entering it\n"
"from this thread (waits for its GIL).");

static PyObject *
fn_stacks(PyObject *mod, PyObject *arg)
{
    (void)mod;
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    mg__buf_t out = MG__BUF_INIT;
    int raised = 0;
    PyObject *res = NULL;
    int rc = mg__interp_visit(id, stacks_in_target, NULL, &out, &raised);
    if (rc)
        mg__raise(rc, "interpreter %lld", id);
    else if (raised)
        PyErr_Format(PyExc_RuntimeError, "could not read the stacks of interpreter %lld", id);
    else
        res = mg__decode(&out);
    mg__buf_free(&out);
    return res;
}

PyMethodDef mg__watch_functions[] = {
    {"_interrupt", (PyCFunction)(void (*)(void))mg__fn_interrupt, METH_VARARGS | METH_KEYWORDS,
     mg__interrupt_doc},
    {"_interrupt_run", mg__fn_interrupt_run, METH_VARARGS, mg__interrupt_run_doc},
    {"_init_main", fn_init_main, METH_VARARGS, init_main_doc},
    {"_configure", (PyCFunction)(void (*)(void))fn_configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"_activity", fn_activity, METH_NOARGS, activity_doc},
    {"_deadlock_check", fn_deadlock_check, METH_NOARGS, deadlock_check_doc},
    {"_stacks", fn_stacks, METH_O, stacks_doc},
    {NULL, NULL, 0, NULL},
};
