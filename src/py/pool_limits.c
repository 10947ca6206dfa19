/* pool_limits.c -- time limits for pool tasks: which task each worker
 * runs, interrupting a running task inside its worker, and giving up on a
 * worker stuck in C code (abandoned: its task no longer counted, a
 * replacement started in a new slot, never waited for).  The policy (when
 * to interrupt, when to abandon, what to report) is Python's
 * (manygil/_pool.py).
 *
 * ---- Who may end a worker, its interpreter and its thread state --------
 *
 * CPython's rule: a thread state is deleted -- by PyThreadState_Delete, or
 * by Py_EndInterpreter's sweep of its interpreter's thread list -- and
 * attached only on a thread whose "gilstate" slot (the per-thread TSS
 * pointer PyGILState_GetThisThreadState reads) holds it, or when it is
 * bound to no thread's slot.  Attaching a thread state binds it to the
 * attaching thread's slot (unbinding the one there before).  A worker's
 * thread state T is the last one its thread attached, so it stays bound to
 * the worker's thread for as long as that thread lives; debug builds check
 * this (pystate.c unbind_gilstate_tstate / tstate_activate asserts).
 *
 *  1. A worker ends its own interpreter (Py_EndInterpreter on its own
 *     thread, T current) when the queue is shut down and empty, when the
 *     pool breaks, to recycle (max_tasks), or -- if abandoned -- when its
 *     stuck task returns, unless exit has taken its interpreter over (4.).
 *     Then it marks its slot `exited` (pool.c) and never touches Python
 *     again.  Nobody else ends a live worker's interpreter.
 *  2. Joining a pool (shutdown(wait=True), exit, dealloc) waits for every
 *     worker to be `exited` or abandoned; it never waits for an abandoned
 *     one.  At exit every pool not yet joined is joined (_pool.py
 *     _shutdown_all, before Python joins its threads): no worker may still
 *     be creating, running or ending an interpreter when the main
 *     interpreter finalizes.  Queued tasks run first (as the stdlib's
 *     ThreadPoolExecutor); a task past its task_timeout is abandoned after
 *     interrupt_grace, so exit waits at most about that long for it.
 *  3. An abandoned worker still stuck at exit (_end_abandoned, in the main
 *     thread, after every pool was joined) is asked to park: a profile and
 *     trace hook installed in its interpreter catches its thread at its
 *     next Python event.  There, on its own thread, it lets the
 *     interpreter's GIL go, drops its registry pin, and attaches (then
 *     releases) a fresh thread state of the main interpreter -- which
 *     unbinds T from its slot -- and blocks for ever.  T is then bound to no
 *     thread, so the main thread may clear and delete it and end the
 *     interpreter.  The parked thread's main-interpreter thread state is
 *     swept by Py_Finalize like a daemon thread's.
 *  4. A worker that never reaches the hook (stuck in C: time.sleep, a
 *     blocking read) cannot unbind T, and no CPython API can end its
 *     interpreter while T exists.  After the park wait the main thread
 *     takes the interpreter over (TAKEN: the worker, should its call
 *     return, releases the GIL and blocks for ever, touching nothing) and
 *     ends it, deleting T from the main thread -- what CPython 3.13+'s own
 *     finalization (finalize_subinterpreters) would do to it, and the one
 *     place this breaks the rule above (debug builds assert there).
 *     Leaving it would abort 3.12 ("remaining subinterpreters") and make
 *     3.13 warn.
 *  5. A worker stuck holding its interpreter's GIL (C code that never
 *     releases it) cannot be parked or taken over: nobody can enter its
 *     interpreter.  It is left alone.
 *
 * Lock order: workers_t.mu, then stuck.mu.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include "manygil.h"
#include "py/compat.h"
#include "py/interp.h"
#include "py/pool_workers.h"
#include "py/state.h"
#include "core/channel.h"

/* ---- abandoned workers still stuck ---------------------------------------- */

enum {
    STUCK_WAITING = 0,          /* abandoned, its task still running */
    STUCK_SELF,                 /* its task returned: it ends its interpreter itself */
    STUCK_PARKING,              /* caught by the hook, leaving its interpreter */
    STUCK_PARKED,               /* blocked for ever, its thread state unbound */
    STUCK_TAKEN,                /* exit owns its interpreter; the worker touches nothing */
};

#define MAX_STUCK 256
typedef struct {
    int64_t id;                 /* its interpreter */
    unsigned long ident;        /* its thread */
    mg__interp_t *rec;          /* the worker's registry pin, until dropped */
    int state;                  /* STUCK_* */
} stuck_t;

/* Interpreters of abandoned workers still stuck (process-global). */
static struct {
    mg__mutex_t mu;
    pthread_cond_t changed;     /* with mu: an entry changed state or went */
    stuck_t ents[MAX_STUCK];    /* guarded by mu */
    int n;                      /* guarded by mu */
} stuck = { .mu = MG__MUTEX_INIT, .changed = PTHREAD_COND_INITIALIZER };

/* stuck.mu held. */
static stuck_t *
find_locked(int64_t id)
{
    for (int i = 0; i < stuck.n; i++)
        if (stuck.ents[i].id == id)
            return &stuck.ents[i];
    return NULL;
}

/* stuck.mu held. */
static void
forget_locked(stuck_t *e)
{
    *e = stuck.ents[--stuck.n];
    pthread_cond_broadcast(&stuck.changed);
}

/* Wait on stuck.changed (stuck.mu held) for at most slice_ns (the
 * condition uses the realtime clock: callers re-check their own deadline). */
static void
wait_changed_locked(int64_t slice_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + slice_ns;
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_cond_timedwait(&stuck.changed, &stuck.mu, &ts);
}

void
mg__stuck_add(int64_t id, unsigned long ident, mg__interp_t *rec)
{
    mg__mutex_lock(&stuck.mu);
    if (stuck.n < MAX_STUCK && id >= 0)
        stuck.ents[stuck.n++] = (stuck_t){id, ident, rec, STUCK_WAITING};
    mg__mutex_unlock(&stuck.mu);
}

int
mg__stuck_claim(int64_t id)
{
    mg__mutex_lock(&stuck.mu);
    stuck_t *e = find_locked(id);
    int mine = e == NULL || e->state == STUCK_WAITING;
    if (e != NULL && mine) {
        e->state = STUCK_SELF;
        pthread_cond_broadcast(&stuck.changed);
    }
    mg__mutex_unlock(&stuck.mu);
    return mine;
}

void
mg__stuck_done(int64_t id)
{
    mg__mutex_lock(&stuck.mu);
    stuck_t *e = find_locked(id);
    if (e != NULL)
        forget_locked(e);
    mg__mutex_unlock(&stuck.mu);
}

void
mg__stuck_block_forever(void)
{
    mg__mutex_lock(&stuck.mu);
    for (;;)
        pthread_cond_wait(&stuck.changed, &stuck.mu);
}

/* ---- parking a stuck thread at exit ---------------------------------------
 * Rule 3 above: installed in every stuck interpreter by _end_abandoned, the
 * hook runs on each Python event of each thread there; it acts only on the
 * thread of a WAITING entry. */

static int
park_fn(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj; (void)frame; (void)what; (void)arg;
    unsigned long me = PyThread_get_thread_ident();
    PyInterpreterState *here = PyInterpreterState_Get();
    int64_t here_id = PyInterpreterState_GetID(here);
    mg__mutex_lock(&stuck.mu);
    stuck_t *e = find_locked(here_id);
    int mine = e != NULL && e->ident == me && e->state == STUCK_WAITING;
    mg__interp_t *rec = mine ? e->rec : NULL;
    if (mine) {
        e->state = STUCK_PARKING;
        pthread_cond_broadcast(&stuck.changed);
    }
    mg__mutex_unlock(&stuck.mu);
    if (!mine)
        return 0;
    /* Leave the interpreter for good: its GIL, then its registry pin. */
    PyThreadState *ts = PyEval_SaveThread();
    if (rec != NULL)
        mg__registry_leave(rec);
    /* Attach a thread state of the main interpreter once: this thread's
     * gilstate slot then holds it, not ts, so ts may be deleted by the
     * thread that ends the interpreter.  (It takes the main GIL, which the
     * main thread does not hold while it waits for us.) */
    PyThreadState *anchor = PyThreadState_New(PyInterpreterState_Main());
    if (anchor != NULL) {
        PyEval_RestoreThread(anchor);
        PyEval_SaveThread();
    }
    (void)ts;
    mg__mutex_lock(&stuck.mu);
    e = find_locked(here_id);
    if (e != NULL) {
        e->rec = NULL;
        /* Without the anchor (out of memory) ts is still bound to us:
         * ending the interpreter is then rule 4's take-over. */
        e->state = anchor != NULL ? STUCK_PARKED : STUCK_TAKEN;
        pthread_cond_broadcast(&stuck.changed);
    }
    mg__mutex_unlock(&stuck.mu);
    mg__stuck_block_forever();
    return 0;
}

static int
install_park(void *unused, mg__buf_t *out)
{
    (void)unused; (void)out;
    PyEval_SetProfileAllThreads(park_fn, NULL);
    PyEval_SetTraceAllThreads(park_fn, NULL);
    return 0;
}

/* End interpreter `id` from the main thread (no GIL held): its worker
 * has parked (rule 3) or the interpreter was taken over (rule 4), and its
 * pin is gone.  0 or an MG_E* code. */
static int
end_stuck(int64_t id)
{
    mg__interp_t *rec;
    void *own, **others = NULL;
    size_t nothers = 0;
    int rc;
    /* A thread may be inside for a moment (an interrupt, a stack dump for
     * the abandonment's report): let it leave. */
    int64_t until = mg__monotonic_ns() + 5000 * 1000 * 1000LL;
    while ((rc = mg__registry_begin_close(id, &rec, &own, &others, &nothers)) == MG_ERUNNING
           && mg__monotonic_ns() < until) {
        struct timespec pause = {0, 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (rc)
        return rc;
    PyInterpreterState *interp = mg__registry_py_interp(rec);
    PyThreadState *ts = own != NULL ? own : PyThreadState_New(interp);
    if (ts == NULL) {
        free(others);
        return MG_ENOMEM;       /* left CLOSING: unusable, not ended */
    }
    mg__lifecycle_lock();
    PyEval_RestoreThread(ts);
    PyEval_SetProfileAllThreads(NULL, NULL);
    PyEval_SetTraceAllThreads(NULL, NULL);
    for (size_t i = 0; i < nothers; i++) {
        PyThreadState_Clear(others[i]);
        PyThreadState_Delete(others[i]);
    }
    free(others);
    /* The worker's thread state, and any a thread started by its task
     * left (Py_EndInterpreter must find ts the last one). */
    mg__delete_other_tstates(interp, ts);
    Py_EndInterpreter(ts);
    mg__lifecycle_unlock();
    mg__registry_end_close(rec);
    mg__channels_drop_interp(id);
    return 0;
}

PyDoc_STRVAR(end_abandoned_doc,
"_end_abandoned()\n--\n\n"
"At exit, after every pool was joined: end the interpreters of abandoned\n"
"pool workers that are still stuck (see the rule at the top of\n"
"src/py/pool_limits.c): each is parked if it runs Python code, taken over\n"
"if it stays in C.  Returns how many were ended.");

static PyObject *
fn_end_abandoned(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int64_t ids[MAX_STUCK];
    mg__mutex_lock(&stuck.mu);
    int n = 0;
    for (int i = 0; i < stuck.n; i++)
        if (stuck.ents[i].state == STUCK_WAITING)
            ids[n++] = stuck.ents[i].id;
    mg__mutex_unlock(&stuck.mu);
    int ended = 0;
    for (int i = 0; i < n; i++) {
        int64_t id = ids[i];
        mg__buf_t out = MG__BUF_INIT;
        int raised;
        /* Enters the interpreter: blocks if its worker holds its GIL for
         * ever (rule 5; nothing can be done then). */
        int rc = mg__interp_run(id, install_park, NULL, &out, &raised);
        mg__buf_free(&out);
        if (rc != 0)
            continue;
        int end = 0;
        Py_BEGIN_ALLOW_THREADS
        int64_t start = mg__monotonic_ns();
        mg__mutex_lock(&stuck.mu);
        for (;;) {
            stuck_t *e = find_locked(id);
            if (e == NULL)
                break;                  /* it ended its interpreter itself */
            if (e->state == STUCK_TAKEN) {
                end = 1;                /* the hook could not unbind (rule 4) */
                break;
            }
            int64_t waited = mg__monotonic_ns() - start;
            if (e->state == STUCK_PARKED) {
                end = 1;
                forget_locked(e);
                break;
            }
            if (e->state == STUCK_WAITING && waited > 200 * 1000 * 1000LL) {
                /* Stuck in C (rule 4): take it over (the entry stays, so
                 * that the worker finds it TAKEN); drop its pin for it. */
                e->state = STUCK_TAKEN;
                mg__interp_t *rec = e->rec;
                e->rec = NULL;
                pthread_cond_broadcast(&stuck.changed);
                if (rec != NULL)
                    mg__registry_leave(rec);
                end = 1;
                break;
            }
            /* PARKING (it needs only the main GIL) or SELF (it is ending
             * its interpreter itself): wait for it. */
            wait_changed_locked(5 * 1000 * 1000LL);
        }
        mg__mutex_unlock(&stuck.mu);
        if (end && end_stuck(id) == 0)
            ended++;
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromLong(ended);
}

PyMethodDef mg__pool_functions[] = {
    {"_end_abandoned", fn_end_abandoned, METH_NOARGS, end_abandoned_doc},
    {"_join_all_pools", mg__join_all_pools, METH_NOARGS,
     "_join_all_pools()\n--\n\nAt exit: shut down and join every pool that still has workers,\n"
     "also those whose Python object is gone or being deallocated on another\n"
     "thread.  Returns how many were joined."},
    {NULL, NULL, 0, NULL},
};

typedef struct {
    workers_t *w;               /* a reference */
    int slot;
    uint64_t seq;
} pool_irq_t;

/* In the worker's interpreter (its GIL held, so the worker is not between
 * tasks): interrupt the task if it is still the one running. */
static int
pool_irq_in_target(void *varg, mg__buf_t *out)
{
    (void)out;
    pool_irq_t *irq = varg;
    slot_t *s = &irq->w->slots[irq->slot];
    if (__atomic_load_n(&s->busy, __ATOMIC_ACQUIRE)
            && __atomic_load_n(&s->seq, __ATOMIC_RELAXED) == irq->seq)
        PyThreadState_SetAsyncExc(__atomic_load_n(&s->ident, __ATOMIC_RELAXED),
                                  PyExc_KeyboardInterrupt);
    return 0;
}

static void *
pool_irq_thread(void *varg)
{
    pool_irq_t *irq = varg;
    int64_t id = __atomic_load_n(&irq->w->slots[irq->slot].interp_id, __ATOMIC_ACQUIRE);
    mg__buf_t out = MG__BUF_INIT;
    int raised;
    if (id >= 0)
        (void)mg__interp_visit(id, pool_irq_in_target, irq, &out, &raised);
    mg__buf_free(&out);
    mg__workers_decref(irq->w);
    free(irq);
    return NULL;
}

/* The slot running task seq (not abandoned), or -1.  w->mu held. */
static int
find_running_locked(workers_t *w, uint64_t seq)
{
    for (int i = 0; i < w->nstarted; i++) {
        slot_t *s = &w->slots[i];
        if (!s->abandoned && s->task != NULL && s->task->seq == seq)
            return i;
    }
    return -1;
}

PyObject *
mg__pool_running(PyObject *op, PyObject *unused)
{
    (void)unused;
    workers_t *w = ((pool_t *)op)->w;
    PyObject *list = PyList_New(0);
    mg__mutex_lock(&w->mu);
    for (int i = 0; list != NULL && i < w->nstarted; i++) {
        slot_t *s = &w->slots[i];
        if (s->abandoned || s->task == NULL)
            continue;
        PyObject *item = Py_BuildValue("(KLLkii)", (unsigned long long)s->task->seq,
                                       (long long)__atomic_load_n(&s->started_ns, __ATOMIC_RELAXED),
                                       (long long)__atomic_load_n(&s->interp_id, __ATOMIC_RELAXED),
                                       __atomic_load_n(&s->ident, __ATOMIC_RELAXED),
                                       __atomic_load_n(&s->interrupted, __ATOMIC_RELAXED),
                                       __atomic_load_n(&s->busy, __ATOMIC_ACQUIRE));
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    mg__mutex_unlock(&w->mu);
    return list;
}

PyObject *
mg__pool_interrupt(PyObject *op, PyObject *args)
{
    workers_t *w = ((pool_t *)op)->w;
    unsigned long long seq;
    int cancel;
    if (!PyArg_ParseTuple(args, "Kp:interrupt", &seq, &cancel))
        return NULL;
    pool_irq_t *irq = malloc(sizeof *irq);
    if (irq == NULL)
        return PyErr_NoMemory();
    mg__mutex_lock(&w->mu);
    int i = find_running_locked(w, seq);
    if (i >= 0)
        __atomic_store_n(&w->slots[i].interrupted, cancel ? MG__IRQ_CANCEL : MG__IRQ_TIMEOUT,
                         __ATOMIC_RELEASE);
    mg__mutex_unlock(&w->mu);
    if (i < 0) {
        free(irq);
        Py_RETURN_FALSE;
    }
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
    *irq = (pool_irq_t){w, i, seq};
    if (mg__spawn_detached(pool_irq_thread, irq, 0, "manygil-irq") != 0) {
        mg__workers_decref(w);
        free(irq);
        return PyErr_NoMemory();
    }
    Py_RETURN_TRUE;
}

PyObject *
mg__pool_abandon_task(PyObject *op, PyObject *arg)
{
    workers_t *w = ((pool_t *)op)->w;
    unsigned long long seq = PyLong_AsUnsignedLongLong(arg);
    if (seq == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    int replaced = 0;
    mg__mutex_lock(&w->mu);
    int i = find_running_locked(w, seq);
    if (i >= 0) {
        slot_t *s = &w->slots[i];
        s->abandoned = 1;
        pthread_detach(s->thread);              /* never joined (not yet exited) */
        mg__cond_broadcast(&w->changed);        /* joiners stop waiting for it */
        mg__pool_abandon(w->q, s->task);
        if (s->run != NULL)
            mg__waits_set_what(s->run, "abandoned task");   /* the watchdog said so */
        mg__stuck_add(__atomic_load_n(&s->interp_id, __ATOMIC_ACQUIRE),
                      __atomic_load_n(&s->ident, __ATOMIC_RELAXED), s->rec);
        /* A replacement keeps the pool's capacity; a pool shut down with
         * nothing queued needs none (at exit it would only be waited for). */
        int64_t queued, running;
        int shutdown, broken;
        mg__pool_stats(w->q, &queued, &running, &shutdown, &broken);
        if ((shutdown && queued == 0) || broken)
            replaced = 2;
        else
            replaced = mg__start_worker_locked(w) == 0;
    }
    mg__mutex_unlock(&w->mu);
    if (i < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(replaced);
}

