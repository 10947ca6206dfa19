/* interrupt.c -- interrupting code that runs in another interpreter, and
 * Ctrl-C forwarding.
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
 * WHO MAY TOUCH WHAT, AND WHEN (interrupts; see interp.c for the rest)
 *
 *  - The helper enters X as a visit (mg__interp_visit): it runs no user
 *    code, so X does not count as running code meanwhile (is_running(),
 *    close() do not see it), and a close of X waits for the visit to leave
 *    instead of failing; once X is closing, no helper can enter it.  The
 *    helper's thread state is its own for that one visit (it has no other):
 *    created and deleted by the helper itself.
 *  - It targets one run (exec/call: the activity record's serial), not a
 *    thread, and only the run's user-code window (mg__user_code_enter/
 *    leave around the user's call or code, opened and closed under X's
 *    GIL): holding X's GIL it raises only while that window is open.  So
 *    an interrupt never lands in manygil's own decoding and importing
 *    around the user's code (an exception raised into importlib can leave
 *    a module lock held for good: every later import of it hangs), never
 *    in the thread's next run, and never in a thread that ended (its
 *    cached state is deleted under X's GIL too) or whose id was reused.
 *    One that comes while the run has not opened its window yet is kept
 *    and raised as the window opens; one that comes after the window
 *    closed is dropped (the run is over).
 *  - The window's close clears an interrupt that was set but has not fired
 *    (it came at the very end of the user's code) before manygil's own
 *    code goes on.
 *  - Requests for a run whose helper has not got X's GIL yet join that
 *    helper instead of starting another (bounded threads).
 *
 * Ctrl-C: while the main thread runs code in another interpreter, CPython's
 * SIGINT handler only flags the main interpreter, which is not running.  We
 * chain a handler in front of it that also writes the interpreter the
 * main thread is in (and which entry into it) to a pipe; a
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
#include "py/errors.h"
#include "py/interp.h"
#include "py/watch.h"
#include "core/registry.h"
#include "core/sync.h"
#include "core/waits.h"

/* ---- interrupts -------------------------------------------------------- */

typedef struct {
    int64_t interp;
    unsigned long ident;
    uint64_t serial;            /* the run to interrupt (0: whatever runs) */
    char exc[64];               /* name of a builtins exception class */
} irq_t;

/* Helpers started and not yet at work (in the target, holding its GIL): a
 * request for the same run meanwhile joins the pending one instead of
 * starting another thread (a caller that interrupts in a loop would start
 * helpers faster than they get the target's GIL, without bound). */
#define MAX_PENDING 256
static struct {
    mg__mutex_t mu;
    irq_t *items[MAX_PENDING];  /* guarded by mu */
    int n;                      /* guarded by mu */
} pending = { .mu = MG__MUTEX_INIT };

/* Forget irq as pending (if it is).  Call before it fires. */
static void
pending_remove(irq_t *irq)
{
    mg__mutex_lock(&pending.mu);
    for (int i = 0; i < pending.n; i++) {
        if (pending.items[i] == irq) {
            pending.items[i] = pending.items[--pending.n];
            break;
        }
    }
    mg__mutex_unlock(&pending.mu);
}

/* Interrupts sent so far (see mg__interrupts_sent). */
static uint64_t interrupts_sent;

uint64_t
mg__interrupts_sent(void)
{
    return __atomic_load_n(&interrupts_sent, __ATOMIC_ACQUIRE);
}

/* Open user-code windows (mg__user_code_t, on their threads' stacks), and
 * interrupts that came for a run before its window opened. */
#define MAX_EARLY 256
static struct {
    mg__mutex_t mu;
    mg__user_code_t *open;                  /* guarded by mu */
    struct { uint64_t serial; char exc[64]; } early[MAX_EARLY];    /* guarded by mu */
    int nearly;                             /* guarded by mu */
} windows = { .mu = MG__MUTEX_INIT };

/* 1 if the run record `serial` is still in the activity table. */
static int
run_in_progress(uint64_t serial)
{
    mg__wait_t *recs;
    size_t n;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return 0;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = recs[i].serial == serial && recs[i].kind == MG__ACT_RUN;
    free(recs);
    return found;
}

static int
early_find_locked(uint64_t serial)
{
    for (int i = 0; i < windows.nearly; i++)
        if (windows.early[i].serial == serial)
            return i;
    return -1;
}

int
mg__irq_user_code_enter(mg__user_code_t *uc)
{
    int rc = 0;
    char exc[64] = "";
    mg__mutex_lock(&windows.mu);
    int i = uc->serial != 0 ? early_find_locked(uc->serial) : -1;
    if (i >= 0) {
        memcpy(exc, windows.early[i].exc, sizeof exc);
        windows.early[i] = windows.early[--windows.nearly];
    }
    uc->sent = mg__interrupts_sent();
    uc->next = windows.open;
    windows.open = uc;
    mg__mutex_unlock(&windows.mu);
    if (exc[0] != '\0') {
        /* Interrupted before its first bytecode: it fails the same way. */
        PyObject *cls = PyDict_GetItemString(PyEval_GetBuiltins(), exc);    /* borrowed */
        if (cls != NULL && PyExceptionClass_Check(cls)) {
            PyErr_SetNone(cls);
            rc = -1;
        }
    }
    return rc;
}

void
mg__irq_user_code_leave(mg__user_code_t *uc)
{
    mg__irq_user_code_leave_run(uc, 0);
}

void
mg__irq_user_code_leave_run(mg__user_code_t *uc, int forget)
{
    mg__mutex_lock(&windows.mu);
    mg__user_code_t **pp = &windows.open;
    while (*pp != NULL && *pp != uc)
        pp = &(*pp)->next;
    if (*pp == uc)
        *pp = uc->next;
    int i;
    while (forget && (i = early_find_locked(uc->serial)) >= 0)
        windows.early[i] = windows.early[--windows.nearly];
    mg__mutex_unlock(&windows.mu);
    /* One that arrived at the window's very end must not fire in our own
     * code that follows (encoding the result).  Every interrupt raised into
     * an open window moves the counter first (under windows.mu, while the
     * window was in the list): if it has not moved, there is none to clear
     * (clearing walks the interpreter's threads: an actor's methods open a
     * window per message). */
    if (mg__interrupts_sent() != uc->sent)
        PyThreadState_SetAsyncExc(uc->thread_ident, NULL);
}

void
mg__irq_forget(uint64_t serial)
{
    mg__mutex_lock(&windows.mu);
    int i;
    while ((i = early_find_locked(serial)) >= 0)
        windows.early[i] = windows.early[--windows.nearly];
    mg__mutex_unlock(&windows.mu);
}

/* In the target interpreter: raise builtins.<exc> in thread `ident` if it
 * runs the user's code of run `serial` here (0: of any run); if that run
 * has not reached its user code yet, keep it for when it does.  Never in
 * manygil's own code around it, never in the thread's next run. */
static int
irq_in_target(void *varg, mg__buf_t *out)
{
    (void)out;
    irq_t *irq = varg;
    pending_remove(irq);        /* requests from now on need a new helper */
    PyObject *exc = PyDict_GetItemString(PyEval_GetBuiltins(), irq->exc);  /* borrowed */
    if (exc == NULL || !PyExceptionClass_Check(exc))
        return 0;
    int64_t here = PyInterpreterState_GetID(PyInterpreterState_Get());
    mg__mutex_lock(&windows.mu);
    mg__user_code_t *w = windows.open;
    while (w != NULL && !(w->thread_ident == irq->ident && w->interp_id == here
                          && (irq->serial == 0 || w->serial == irq->serial)))
        w = w->next;
    if (w != NULL) {
        __atomic_add_fetch(&interrupts_sent, 1, __ATOMIC_ACQ_REL);
        PyThreadState_SetAsyncExc(irq->ident, exc);
    }
    else if (irq->serial != 0 && early_find_locked(irq->serial) < 0
             && windows.nearly < MAX_EARLY && run_in_progress(irq->serial)) {
        windows.early[windows.nearly].serial = irq->serial;
        memcpy(windows.early[windows.nearly].exc, irq->exc, sizeof irq->exc);
        windows.nearly++;
    }
    mg__mutex_unlock(&windows.mu);
    return 0;
}

static void *
irq_thread(void *arg)
{
    irq_t *irq = arg;
    mg__buf_t out = MG__BUF_INIT;
    int raised = 0;
    (void)mg__interp_visit(irq->interp, irq_in_target, irq, &out, &raised);
    pending_remove(irq);        /* if the visit could not enter */
    mg__buf_free(&out);
    free(irq);
    return NULL;
}

/* Interrupt run `serial` (0: whatever runs) of thread `ident` in
 * interpreter `interp` with the builtin exception class `exc`, from a new
 * detached thread.  0 or MG_ENOMEM. */
static int
interrupt_run_async(int64_t interp, unsigned long ident, uint64_t serial, const char *exc)
{
    int rc = 0;
    mg__mutex_lock(&pending.mu);
    for (int i = 0; serial != 0 && i < pending.n; i++) {
        irq_t *p = pending.items[i];
        if (p->interp == interp && p->ident == ident && p->serial == serial
                && strcmp(p->exc, exc) == 0)
            goto done;          /* joins the pending one */
    }
    irq_t *irq = calloc(1, sizeof *irq);
    if (irq == NULL) {
        rc = MG_ENOMEM;
        goto done;
    }
    irq->interp = interp;
    irq->ident = ident;
    irq->serial = serial;
    snprintf(irq->exc, sizeof irq->exc, "%s", exc);
    int tracked = pending.n < MAX_PENDING;
    if (tracked)
        pending.items[pending.n++] = irq;
    /* Under pending.mu: the helper's pending_remove waits until we are done. */
    if (mg__spawn_detached(irq_thread, irq, 0, "manygil-irq") != 0) {
        if (tracked)
            pending.n--;
        free(irq);
        rc = MG_ENOMEM;
    }
done:
    mg__mutex_unlock(&pending.mu);
    return rc;
}

/* Interrupt thread `ident` running in interpreter `interp` with the builtin
 * exception class `exc`, from a new detached thread.  0 or MG_ENOMEM. */
int
mg__interrupt_async(int64_t interp, unsigned long ident, const char *exc)
{
    return interrupt_run_async(interp, ident, 0, exc);
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

/* Interrupt (raise the built-in exception named `name` in) every thread
 * but `self` running exec/call -- or, with `what`, runs of that kind -- in
 * interpreter id (only thread `only` unless 0); one interrupt per thread.
 * 0 with *count set, or MG_ENOMEM / a code of interrupt_run_async. */
int
mg__interrupt_runs(int64_t id, const char *name, const char *what, unsigned long only,
                   unsigned long self, int *count)
{
    mg__wait_t *recs;
    size_t n;
    *count = 0;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return MG_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        mg__wait_t *r = &recs[i];
        if (r->kind != MG__ACT_RUN || r->interp_id != id || r->what == NULL)
            continue;
        if (what != NULL ? strcmp(r->what, what) != 0
                         : strcmp(r->what, "exec") != 0 && strcmp(r->what, "call") != 0)
            continue;
        if (r->thread_ident == self || (only != 0 && r->thread_ident != only))
            continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = recs[j].kind == MG__ACT_RUN && recs[j].interp_id == id
                  && recs[j].thread_ident == r->thread_ident;
        if (dup)
            continue;
        rc = interrupt_run_async(id, r->thread_ident, r->serial, name);
        *count += rc == 0;
    }
    free(recs);
    return rc;
}

/* Parse the target interpreter and the built-in exception class shared by
 * _interrupt and _interrupt_run: 0, or -1 with an exception. */
static int
parse_target(PyObject *idobj, PyObject *exc, int64_t *id, const char **name)
{
    if (mg__interp_id_from_object(idobj, id) < 0)
        return -1;
    *name = builtin_exc_name(exc);
    return *name == NULL ? -1 : 0;
}

const char mg__interrupt_doc[] =

"_interrupt(interp_id, exc, what=None)\n--\n\n"
"Raise the built-in exception class exc in every thread running exec/call\n"
"(or, with what, runs of that kind) in interpreter interp_id, at its next\n"
"bytecode boundary.  Returns the number of threads interrupted.";

PyObject *
mg__fn_interrupt(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"interp_id", "exc", "what", "thread", NULL};
    PyObject *idobj;
    int64_t id;
    PyObject *exc;
    const char *what = NULL;
    unsigned long long only = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|zK:_interrupt", kwlist, &idobj, &exc,
                                     &what, &only))
        return NULL;
    const char *name;
    if (parse_target(idobj, exc, &id, &name) < 0)
        return NULL;
    /* Like every other call on an interpreter: one that does not exist
     * (never did, or closed) is an error, not "nothing was running". */
    int known = mg__registry_is_running(id);
    if (known < 0)
        return mg__raise(known, "interpreter %lld", (long long)id);
    int count;
    int rc = mg__interrupt_runs(id, name, what, (unsigned long)only, PyThread_get_thread_ident(),
                                &count);
    if (rc == MG_ENOMEM)
        return PyErr_NoMemory();
    if (rc)
        return mg__raise(rc, "interrupting interpreter %lld", (long long)id);
    return PyLong_FromLong(count);
}

const char mg__interrupt_run_doc[] =

"_interrupt_run(interp_id, thread_ident, serial, exc)\n--\n\n"
"Raise the built-in exception class exc in the run whose activity record\n"
"is `serial` (an actor's method: see _actor_invoke) of thread thread_ident\n"
"in interpreter interp_id, if that run is still in progress when the\n"
"request reaches the interpreter (else nothing happens).  The caller does\n"
"not wait.  Returns None.";

PyObject *
mg__fn_interrupt_run(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *idobj, *exc;
    unsigned long long ident, serial;
    int64_t id;
    if (!PyArg_ParseTuple(args, "OKKO:_interrupt_run", &idobj, &ident, &serial, &exc))
        return NULL;
    const char *name;
    if (parse_target(idobj, exc, &id, &name) < 0)
        return NULL;
    if (serial == 0)
        return PyErr_Format(PyExc_ValueError, "_interrupt_run(): serial must be > 0");
    if (interrupt_run_async(id, (unsigned long)ident, serial, name) != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- Ctrl-C forwarding ------------------------------------------------- */

static struct {
    pthread_once_t once;
    int fds[2];                 /* the pipe: handler -> forwarder */
    int ready;
    struct sigaction prev;      /* the handler we chain to */
    int64_t target;             /* atomic: interpreter the main thread runs code in, or -1 */
    int64_t entered;            /* atomic: how many times the main thread set target */
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
    /* The target as it is now, when the signal arrives, and which entry
     * into it: by the time the forwarder reads them the main thread may
     * have left (16 bytes < PIPE_BUF: the write is atomic). */
    int64_t seen[2];
    seen[1] = __atomic_load_n(&sigint.entered, __ATOMIC_ACQUIRE);
    seen[0] = __atomic_load_n(&sigint.target, __ATOMIC_ACQUIRE);
    if (seen[0] >= 0) {
        ssize_t w = write(sigint.fds[1], seen, sizeof seen);
        (void)w;
    }
    errno = saved;
}

static void *
forwarder_main(void *unused)
{
    (void)unused;
    for (;;) {
        int64_t seen[2];
        ssize_t r = read(sigint.fds[0], seen, sizeof seen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof seen)
            return NULL;
        int64_t target = seen[0];
        /* Still the same entry?  If the main thread has left it since,
         * CPython's own handler (chained in on_sigint) raises the
         * KeyboardInterrupt in the main interpreter instead. */
        if (__atomic_load_n(&sigint.target, __ATOMIC_ACQUIRE) != target
                || __atomic_load_n(&sigint.entered, __ATOMIC_ACQUIRE) != seen[1])
            continue;
        irq_t irq = { .interp = target, .ident = sigint.main_ident };
        snprintf(irq.exc, sizeof irq.exc, "KeyboardInterrupt");
        mg__buf_t out = MG__BUF_INIT;
        int raised;
        (void)mg__interp_visit(target, irq_in_target, &irq, &out, &raised);
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
    /* The forwarder must not take SIGINT itself: it inherits this mask. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = mg__spawn_detached(forwarder_main, NULL, 0, "manygil-sigint");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        sigint.ready = 1;
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
    __atomic_add_fetch(&sigint.entered, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&sigint.target, id, __ATOMIC_RELEASE);
    return 1;
}

void
mg__sigint_leave(void)
{
    __atomic_store_n(&sigint.target, -1, __ATOMIC_RELEASE);
}

void
mg__sigint_init(unsigned long main_ident, int64_t main_id)
{
    sigint.main_ident = main_ident;
    sigint.main_id = main_id;
}

void
mg__sigint_after_fork_child(void)
{
    /* The forwarder thread is gone and the pipe is the parent's too (a
     * Ctrl-C here must not reach the parent's forwarder): make a new pipe
     * and thread on demand.  on_sigint stays installed and chains on. */
    __atomic_store_n(&sigint.target, -1, __ATOMIC_RELEASE);
    if (sigint.fds[0] >= 0)
        close(sigint.fds[0]);
    if (sigint.fds[1] >= 0)
        close(sigint.fds[1]);
    sigint.fds[0] = sigint.fds[1] = -1;
    sigint.ready = 0;
    sigint.once = (pthread_once_t)PTHREAD_ONCE_INIT;
}

int
mg__sigint_ready(void)
{
    return sigint.main_id >= 0;
}
