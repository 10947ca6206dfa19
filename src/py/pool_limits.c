/* pool_limits.c -- time limits for pool tasks: which task each worker
 * runs, interrupting a running task inside its worker, and giving up on a
 * worker stuck in C code (abandoned: detached, its task no longer counted,
 * a replacement started in a new slot).  The policy (when to interrupt,
 * when to abandon, what to report) is Python's (manygil/_pool.py).
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

/* ---- interrupting and abandoning running tasks -------------------------- */

/* Interpreters of abandoned workers still stuck, with their threads
 * (process-global). */
#define MAX_STUCK 256
static struct {
    mg__mutex_t mu;
    int64_t ids[MAX_STUCK];     /* guarded by mu */
    unsigned long idents[MAX_STUCK];    /* guarded by mu */
    int n;                      /* guarded by mu */
} stuck = { .mu = MG__MUTEX_INIT };

void
mg__stuck_note(int64_t id, unsigned long ident, int add)
{
    mg__mutex_lock(&stuck.mu);
    if (add && stuck.n < MAX_STUCK) {
        stuck.ids[stuck.n] = id;
        stuck.idents[stuck.n++] = ident;
    }
    else if (!add) {
        for (int i = 0; i < stuck.n; i++)
            if (stuck.ids[i] == id) {
                stuck.n--;
                stuck.ids[i] = stuck.ids[stuck.n];
                stuck.idents[i] = stuck.idents[stuck.n];
                break;
            }
    }
    mg__mutex_unlock(&stuck.mu);
}

/* ---- parking a stuck thread at exit --------------------------------------
 * A stuck worker still running Python code (it swallows every interrupt)
 * cannot have its interpreter ended under it.  Before ending it, we install
 * a profile and a trace function in that interpreter: at the thread's next
 * call, C call or line it lets its GIL go and waits for ever on a condition
 * nobody signals, never touching the interpreter again.  (A thread stuck in
 * C code meets it only when that code returns.) */

static mg__mutex_t park_mu = MG__MUTEX_INIT;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static unsigned long park_ident;        /* guarded by park_mu: the thread to park */
static int parked;                      /* guarded by park_mu */

static int
park_fn(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj; (void)frame; (void)what; (void)arg;
    unsigned long me = PyThread_get_thread_ident();
    mg__mutex_lock(&park_mu);
    int mine = park_ident != 0 && me == park_ident;
    mg__mutex_unlock(&park_mu);
    if (!mine)
        return 0;
    PyEval_SaveThread();                /* no GIL from now on, for ever */
    mg__mutex_lock(&park_mu);
    parked = 1;
    pthread_cond_broadcast(&park_cond);
    for (;;)
        pthread_cond_wait(&park_cond, &park_mu);
}

static int
install_park(void *unused, mg__buf_t *out)
{
    (void)unused; (void)out;
    PyEval_SetProfileAllThreads(park_fn, NULL);
    PyEval_SetTraceAllThreads(park_fn, NULL);
    return 0;
}

/* Park thread `ident` of interpreter `id` if it runs Python code: 1 if it
 * parked within `wait_ns`, else 0. */
static int
park(int64_t id, unsigned long ident, int64_t wait_ns)
{
    mg__mutex_lock(&park_mu);
    park_ident = ident;
    parked = 0;
    mg__mutex_unlock(&park_mu);
    mg__buf_t out = MG__BUF_INIT;
    int raised;
    int rc = mg__interp_run(id, install_park, NULL, &out, &raised);
    mg__buf_free(&out);
    int done = 0;
    if (rc == 0) {
        int64_t deadline = mg__monotonic_ns() + wait_ns;
        mg__mutex_lock(&park_mu);
        while (!parked && mg__monotonic_ns() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 5 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&park_cond, &park_mu, &ts);
        }
        done = parked;
        mg__mutex_unlock(&park_mu);
    }
    mg__mutex_lock(&park_mu);
    park_ident = 0;
    mg__mutex_unlock(&park_mu);
    return done;
}

PyDoc_STRVAR(end_abandoned_doc,
"_end_abandoned()\n--\n\n"
"At exit: end the interpreters of abandoned pool workers that are still\n"
"stuck, as CPython 3.13 does itself, so that finalization does not abort on\n"
"3.12.  A worker still running Python code is parked first (see park());\n"
"one stuck in C must not return from it afterwards -- the process is about\n"
"to end.  Returns how many were ended.");

static PyObject *
fn_end_abandoned(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int64_t ids[MAX_STUCK];
    unsigned long idents[MAX_STUCK];
    mg__mutex_lock(&stuck.mu);
    int n = stuck.n;
    memcpy(ids, stuck.ids, (size_t)n * sizeof *ids);
    memcpy(idents, stuck.idents, (size_t)n * sizeof *idents);
    stuck.n = 0;
    mg__mutex_unlock(&stuck.mu);
    int ended = 0;
    for (int i = 0; i < n; i++) {
        Py_BEGIN_ALLOW_THREADS
        (void)park(ids[i], idents[i], 200 * 1000 * 1000LL);
        Py_END_ALLOW_THREADS
        mg__interp_t *rec;
        void *cached;
        if (mg__registry_enter(ids[i], &rec, &cached) != 0)
            continue;
        PyInterpreterState *interp = mg__registry_py_interp(rec);
        PyThreadState *saved = PyEval_SaveThread();
        mg__lifecycle_lock();
        PyThreadState *ts = PyThreadState_New(interp);
        if (ts != NULL) {
            PyEval_RestoreThread(ts);
            PyEval_SetProfileAllThreads(NULL, NULL);
            PyEval_SetTraceAllThreads(NULL, NULL);
            PyThreadState *o = PyInterpreterState_ThreadHead(interp);
            while (o != NULL) {
                PyThreadState *next = PyThreadState_Next(o);
                if (o != ts) {
                    PyThreadState_Clear(o);
                    PyThreadState_Delete(o);
                }
                o = next;
            }
            Py_EndInterpreter(ts);
            ended++;
        }
        mg__lifecycle_unlock();
        PyEval_RestoreThread(saved);
    }
    return PyLong_FromLong(ended);
}

PyMethodDef mg__pool_functions[] = {
    {"_end_abandoned", fn_end_abandoned, METH_NOARGS, end_abandoned_doc},
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
        (void)mg__interp_run(id, pool_irq_in_target, irq, &out, &raised);
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
        PyObject *item = Py_BuildValue("(KLLki)", (unsigned long long)s->task->seq,
                                       (long long)__atomic_load_n(&s->started_ns, __ATOMIC_RELAXED),
                                       (long long)__atomic_load_n(&s->interp_id, __ATOMIC_RELAXED),
                                       __atomic_load_n(&s->ident, __ATOMIC_RELAXED),
                                       __atomic_load_n(&s->interrupted, __ATOMIC_RELAXED));
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
        mg__cond_broadcast(&w->changed);        /* joiners stop waiting for it */
        mg__pool_abandon(w->q, s->task);
        if (s->run != NULL)
            mg__waits_set_what(s->run, "abandoned task");   /* the watchdog said so */
        mg__stuck_note(__atomic_load_n(&s->interp_id, __ATOMIC_ACQUIRE),
                       __atomic_load_n(&s->ident, __ATOMIC_RELAXED), 1);
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

