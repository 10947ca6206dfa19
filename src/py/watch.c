/* watch.c -- the Python face of diagnostics: the activity table, deadlock
 * detection settings, interrupting code in another interpreter, Ctrl-C
 * forwarding, tracking threads started inside interpreters, and running a
 * stack dump inside an interpreter.
 *
 * Interrupts: code running in interpreter X is interrupted by raising an
 * exception in its thread with PyThreadState_SetAsyncExc, which only works
 * from inside X (with X's GIL).  A helper native thread enters X (taking its
 * GIL, which a thread running Python code hands over within the switch
 * interval) and sets it; the interrupted thread raises at its next bytecode
 * boundary.  The helper never holds another GIL while it waits, and the
 * caller never waits for it: a thread stuck in C code holding X's GIL
 * leaves only the helper waiting.
 *
 * Ctrl-C: while the main thread runs code in another interpreter, CPython's
 * SIGINT handler only flags the main interpreter, which is not running.  We
 * chain a handler in front of it that also writes a byte to a pipe; a
 * forwarder thread reads it and interrupts the main thread's code in that
 * interpreter with KeyboardInterrupt.  Back home, the main interpreter's own
 * handler raises KeyboardInterrupt as usual.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/errors.h"
#include "py/interp.h"
#include "py/watch.h"
#include "core/channel.h"
#include "core/deadlock.h"
#include "core/sync.h"
#include "core/waits.h"

/* ---- interrupts -------------------------------------------------------- */

typedef struct {
    int64_t interp;
    unsigned long ident;
    char exc[64];               /* name of a builtins exception class */
} irq_t;

/* Interrupts sent so far (see mg__interrupts_sent). */
static uint64_t interrupts_sent;

uint64_t
mg__interrupts_sent(void)
{
    return __atomic_load_n(&interrupts_sent, __ATOMIC_ACQUIRE);
}

/* 1 if thread `ident` runs Python code in the current interpreter: its
 * thread state here has a frame.  (We hold this interpreter's GIL, so the
 * answer holds until we let it go.) */
static int
runs_here(unsigned long ident)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
            ts = PyThreadState_Next(ts)) {
        if (ts->thread_id != ident)
            continue;
        PyFrameObject *f = PyThreadState_GetFrame(ts);
        Py_XDECREF(f);
        return f != NULL;       /* SetAsyncExc picks this same first match */
    }
    return 0;
}

/* In the target interpreter: raise builtins.<exc> in thread `ident`, if it
 * is still running code here (an interrupt must not stay pending for the
 * thread's next, unrelated call). */
static int
irq_in_target(void *varg, mg__buf_t *out)
{
    (void)out;
    irq_t *irq = varg;
    PyObject *exc = PyDict_GetItemString(PyEval_GetBuiltins(), irq->exc);  /* borrowed */
    if (exc != NULL && PyExceptionClass_Check(exc) && runs_here(irq->ident)) {
        __atomic_add_fetch(&interrupts_sent, 1, __ATOMIC_ACQ_REL);
        PyThreadState_SetAsyncExc(irq->ident, exc);
    }
    return 0;
}

static void *
irq_thread(void *arg)
{
    irq_t *irq = arg;
    mg__buf_t out = MG__BUF_INIT;
    int raised = 0;
    (void)mg__interp_run(irq->interp, irq_in_target, irq, &out, &raised);
    mg__buf_free(&out);
    free(irq);
    return NULL;
}

/* Interrupt thread `ident` running in interpreter `interp` with the builtin
 * exception class `exc`, from a new detached thread.  0 or MG_ENOMEM. */
int
mg__interrupt_async(int64_t interp, unsigned long ident, const char *exc)
{
    irq_t *irq = calloc(1, sizeof *irq);
    if (irq == NULL)
        return MG_ENOMEM;
    irq->interp = interp;
    irq->ident = ident;
    snprintf(irq->exc, sizeof irq->exc, "%s", exc);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, irq_thread, irq);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(irq);
        return MG_ENOMEM;
    }
    return 0;
}

/* A builtin exception class's name, or NULL with TypeError. */
static const char *
builtin_exc_name(PyObject *exc)
{
    if (PyType_Check(exc) && PyExceptionClass_Check(exc)) {
        const char *name = ((PyTypeObject *)exc)->tp_name;
        PyObject *found = strchr(name, '.') ? NULL
                        : PyDict_GetItemString(PyEval_GetBuiltins(), name);
        if (found == exc)
            return name;
    }
    PyErr_Format(PyExc_TypeError,
                 "exc must be a built-in exception class (e.g. KeyboardInterrupt, TimeoutError), "
                 "not %R: the exception is raised in another interpreter, where only built-in "
                 "classes are shared", exc);
    return NULL;
}

PyDoc_STRVAR(interrupt_doc,
"_interrupt(interp_id, exc, what=None)\n--\n\n"
"Raise the built-in exception class exc in every thread running exec/call\n"
"(or, with what, runs of that kind) in interpreter interp_id, at its next\n"
"bytecode boundary.  Returns the number of threads interrupted.");

static PyObject *
fn_interrupt(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"interp_id", "exc", "what", "thread", NULL};
    long long id;
    PyObject *exc;
    const char *what = NULL;
    unsigned long long only = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LO|zK:_interrupt", kwlist, &id, &exc,
                                     &what, &only))
        return NULL;
    const char *name = builtin_exc_name(exc);
    if (name == NULL)
        return NULL;
    mg__wait_t *recs;
    size_t n;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return PyErr_NoMemory();
    unsigned long self = PyThread_get_thread_ident();
    int count = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        mg__wait_t *r = &recs[i];
        if (r->kind != MG__ACT_RUN || r->interp_id != id || r->what == NULL)
            continue;
        if (what != NULL ? strcmp(r->what, what) != 0
                         : strcmp(r->what, "exec") != 0 && strcmp(r->what, "call") != 0)
            continue;
        if (r->thread_ident == self || (only != 0 && r->thread_ident != only))
            continue;
        /* One interrupt per thread even if it has several runs there. */
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = recs[j].kind == MG__ACT_RUN && recs[j].interp_id == id
                  && recs[j].thread_ident == r->thread_ident;
        if (dup)
            continue;
        rc = mg__interrupt_async(id, r->thread_ident, name);
        count += rc == 0;
    }
    free(recs);
    if (rc)
        return mg__raise(rc, "interrupting interpreter %lld", id);
    return PyLong_FromLong(count);
}

/* ---- Ctrl-C forwarding ------------------------------------------------- */

static struct {
    pthread_once_t once;
    int fds[2];                 /* the pipe: handler -> forwarder */
    int ready;
    struct sigaction prev;      /* the handler we chain to */
    int64_t target;             /* atomic: interpreter the main thread runs code in, or -1 */
    unsigned long main_ident;   /* set once by _init_main */
    int64_t main_id;
} sigint = { .once = PTHREAD_ONCE_INIT, .fds = {-1, -1}, .target = -1, .main_id = -1 };

static void
on_sigint(int sig, siginfo_t *info, void *uc)
{
    int saved = errno;
    if (sigint.prev.sa_flags & SA_SIGINFO) {
        if (sigint.prev.sa_sigaction != NULL)
            sigint.prev.sa_sigaction(sig, info, uc);
    }
    else if (sigint.prev.sa_handler != SIG_DFL && sigint.prev.sa_handler != SIG_IGN) {
        sigint.prev.sa_handler(sig);
    }
    if (__atomic_load_n(&sigint.target, __ATOMIC_ACQUIRE) >= 0) {
        char c = 1;
        ssize_t w = write(sigint.fds[1], &c, 1);
        (void)w;
    }
    errno = saved;
}

static void *
forwarder_main(void *unused)
{
    (void)unused;
    for (;;) {
        char c;
        ssize_t r = read(sigint.fds[0], &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        int64_t target = __atomic_load_n(&sigint.target, __ATOMIC_ACQUIRE);
        if (target < 0)
            continue;
        irq_t irq = { .interp = target, .ident = sigint.main_ident };
        snprintf(irq.exc, sizeof irq.exc, "KeyboardInterrupt");
        mg__buf_t out = MG__BUF_INIT;
        int raised;
        (void)mg__interp_run(target, irq_in_target, &irq, &out, &raised);
        mg__buf_free(&out);
    }
}

static void
sigint_init_once(void)
{
    if (pipe(sigint.fds) != 0)
        return;
    /* The handler must never block on a full pipe. */
    int fl = fcntl(sigint.fds[1], F_GETFL);
    fcntl(sigint.fds[1], F_SETFL, fl | O_NONBLOCK);
    fcntl(sigint.fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(sigint.fds[1], F_SETFD, FD_CLOEXEC);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    /* The forwarder must not take SIGINT itself. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&t, &attr, forwarder_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        pthread_setname_np(t, "manygil-sigint");
        sigint.ready = 1;
    }
}

int
mg__sigint_enter(int64_t id)
{
    if (sigint.main_id < 0 || id == sigint.main_id
            || PyThread_get_thread_ident() != sigint.main_ident)
        return 0;
    pthread_once(&sigint.once, sigint_init_once);
    if (!sigint.ready)
        return 0;
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) != 0)
        return 0;
    int ours = (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigint;
    if (!ours) {
        if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
            return 0;           /* Ctrl-C kills the process or is ignored anyway */
        struct sigaction mine = cur;
        mine.sa_flags = cur.sa_flags | SA_SIGINFO;
        mine.sa_sigaction = on_sigint;
        sigint.prev = cur;
        if (sigaction(SIGINT, &mine, NULL) != 0)
            return 0;
    }
    __atomic_store_n(&sigint.target, id, __ATOMIC_RELEASE);
    return 1;
}

void
mg__sigint_leave(void)
{
    __atomic_store_n(&sigint.target, -1, __ATOMIC_RELEASE);
}

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
    res = PyRun_String(TRACK_THREADS_SRC, Py_file_input, ns, ns);
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
    if (sigint.main_id >= 0)
        Py_RETURN_NONE;             /* once per process */
    sigint.main_ident = (unsigned long)ident;
    sigint.main_id = id;
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
"what, end_id, channel_id, forever, is_queue)], kind in 'send', 'recv',\n"
"'run', 'home'; what names a run ('exec', 'call', 'task'), else None;\n"
"end_id/channel_id are None for runs and homes.  since_ns is monotonic\n"
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
        PyObject *end = is_wait ? PyLong_FromLongLong(r->end_id) : Py_NewRef(Py_None);
        PyObject *cid = is_wait ? PyLong_FromLongLong(r->end_id / 2) : Py_NewRef(Py_None);
        PyObject *item = (end && cid) ? Py_BuildValue(
            "(sLkLzOOOO)", kind_name(r->kind), (long long)r->interp_id, r->thread_ident,
            (long long)r->since_ns, r->what, end, cid, r->forever && is_wait ? Py_True : Py_False,
            is_wait && r->chan && mg__channel_is_queue(r->chan) ? Py_True : Py_False) : NULL;
        Py_XDECREF(end);
        Py_XDECREF(cid);
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
    int rc = mg__interp_run(id, stacks_in_target, NULL, &out, &raised);
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
    {"_interrupt", (PyCFunction)(void (*)(void))fn_interrupt, METH_VARARGS | METH_KEYWORDS,
     interrupt_doc},
    {"_init_main", fn_init_main, METH_VARARGS, init_main_doc},
    {"_configure", (PyCFunction)(void (*)(void))fn_configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"_activity", fn_activity, METH_NOARGS, activity_doc},
    {"_deadlock_check", fn_deadlock_check, METH_NOARGS, deadlock_check_doc},
    {"_stacks", fn_stacks, METH_O, stacks_doc},
    {NULL, NULL, 0, NULL},
};
