/* pool.c -- manygil._core._Pool: worker threads, each running its own
 * own-GIL interpreter, serving the task queue of src/core/pool.c.
 *
 * A worker is a native thread with no Python thread state.  It creates its
 * interpreter itself (so N workers start in parallel, without the main
 * GIL), installs the pool's sys.path, runs the initializer, then loops:
 * release its GIL, take a task, run it, hand it back.  After
 * max_tasks_per_worker tasks it ends its interpreter and makes a new one.
 *
 * The _Pool object (in the creating interpreter) submits encoded tasks and
 * collects finished ones; turning them into futures is Python's job
 * (manygil/_pool.py).
 *
 * Who may end a worker, its interpreter and its thread state, and when
 * (joining, exit, abandoned workers): the rule at the top of
 * pool_limits.c.  In short: a worker ends its own interpreter on its own
 * thread, then marks its slot `exited`; joiners wait for that (never for
 * an abandoned worker); at exit every pool is joined before the main
 * interpreter finalizes.
 */
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/errors.h"
#include "py/interp.h"
#include "py/pool_workers.h"
#include "py/runsrc.h"
#include "py/state.h"
#include "core/channel.h"
#include "core/pool.h"
#include "core/sync.h"
#include "core/waits.h"

/* Every workers_t that exists, for mg__join_all_pools.  Lock order: this
 * lock before any w->mu; never held while joining. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static workers_t *live_head;

static void
live_add(workers_t *w)
{
    pthread_mutex_lock(&live_mu);
    w->live_next = live_head;
    if (live_head != NULL)
        live_head->live_prev = w;
    live_head = w;
    pthread_mutex_unlock(&live_mu);
}

/* A new reference to w unless its last one is already gone (live_mu held). */
static int
try_incref_locked(workers_t *w)
{
    int n = __atomic_load_n(&w->refs, __ATOMIC_ACQUIRE);
    while (n > 0)
        if (__atomic_compare_exchange_n(&w->refs, &n, n + 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

void
mg__workers_decref(workers_t *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_lock(&live_mu);
    if (w->live_prev != NULL)
        w->live_prev->live_next = w->live_next;
    else if (live_head == w)
        live_head = w->live_next;
    if (w->live_next != NULL)
        w->live_next->live_prev = w->live_prev;
    pthread_mutex_unlock(&live_mu);
    mg__pool_decref(w->q);
    mg__buf_free(&w->path);
    mg__buf_free(&w->init);
    mg__buf_free(&w->broken_info);
    mg__cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->mu);
    free(w->slots);
    free(w);
}

/* Record why the pool broke (the first reason wins) and break it.  Runs in
 * a worker's interpreter with an exception set, or with none (then
 * `why` describes it). */
static void
break_pool(workers_t *w, const char *why)
{
    mg__buf_t info = MG__BUF_INIT;
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, why);
    if (mg__capture_exception(&info) != 0)
        mg__buf_free(&info);
    mg__mutex_lock(&w->mu);
    if (w->broken_info.len == 0 && w->start_error == NULL)
        mg__buf_move(&w->broken_info, &info);
    mg__mutex_unlock(&w->mu);
    mg__buf_free(&info);
    mg__pool_set_broken(w->q);
}

/* ---- running tasks ----------------------------------------------------- */

/* Call fn over items (fn(*item) when star), stopping at the first error.
 * Returns (results, None) or (results so far, exception info). */
static PyObject *
run_map(PyObject *fn, PyObject *items, int star)
{
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *results = PyList_New(0);
    if (results == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        PyObject *r = star ? PyObject_Call(fn, item, NULL) : PyObject_CallOneArg(fn, item);
        if (r == NULL) {
            mg__buf_t info = MG__BUF_INIT;
            int rc = mg__capture_exception(&info);
            PyObject *decoded = rc == 0 ? mg__decode(&info) : NULL;
            mg__buf_free(&info);
            if (decoded == NULL) {
                Py_DECREF(results);
                return rc == 0 ? NULL : PyErr_NoMemory();
            }
            return Py_BuildValue("(NN)", results, decoded);
        }
        int rc = PyList_Append(results, r);
        Py_DECREF(r);
        if (rc < 0) {
            Py_DECREF(results);
            return NULL;
        }
    }
    return Py_BuildValue("(NO)", results, Py_None);
}

typedef struct {
    PyObject *fn, *items;
    int star;
} map_arg_t;

/* run_map as a mg__run_as_script callback. */
static PyObject *
run_map_cb(void *arg)
{
    map_arg_t *m = arg;
    return run_map(m->fn, m->items, m->star);
}

/* The slot's interrupt window: a task's time limit or cancel() interrupts
 * only its own code, never manygil's decoding or encoding around it (an
 * interrupt there could cut short the first import of a module and leave
 * that module half-initialised in the worker for good).  Interrupters set
 * s->interrupted, then check busy while holding this GIL.  A request that
 * came before the window opened raises at once instead of running the
 * code.  0, or -1 with KeyboardInterrupt set. */
static int
window_open(slot_t *s)
{
    __atomic_store_n(&s->busy, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&s->interrupted, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return -1;
    }
    return 0;
}

/* Close the window: no interrupt can be set from now on, and one set
 * after the code's last bytecode is dropped before encoding starts. */
static void
window_close(slot_t *s)
{
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
    if (__atomic_load_n(&s->interrupted, __ATOMIC_ACQUIRE))
        PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
}

/* Run t in this interpreter (slot s): status and result set, payload
 * freed.  Tasks run as at the top of a script in the worker's __main__
 * (mg__call_as_script): exec, eval, globals, vars work there. */
static void
run_task(mg__task_t *t, slot_t *s)
{
    int64_t start = mg__monotonic_ns();
    PyObject *res = NULL;
    PyObject *p = mg__decode_consume(&t->payload);
    mg__buf_free(&t->payload);
    if (p == NULL)
        goto raised;
    if (t->kind == MG__TASK_CALL) {
        PyObject *fn, *args, *kwargs;
        if (!PyArg_ParseTuple(p, "OO!O:task", &fn, &PyTuple_Type, &args, &kwargs))
            goto raised;
        if (window_open(s) == 0) {
            res = mg__call_as_script(fn, args, kwargs == Py_None ? NULL : kwargs);
            window_close(s);
        }
    }
    else {
        map_arg_t m;
        if (!PyArg_ParseTuple(p, "OO!p:map task", &m.fn, &PyList_Type, &m.items, &m.star))
            goto raised;
        if (window_open(s) == 0) {
            res = mg__run_as_script(run_map_cb, &m);
            window_close(s);
        }
    }
    if (res == NULL || mg__encode(res, &t->result) < 0)
        goto raised;
    t->status = MG__TASK_OK;
    goto done;
raised:
    mg__buf_clear(&t->result);
    t->status = mg__capture_exception(&t->result) == 0 ? MG__TASK_RAISED : MG_ENOMEM;
done:
    Py_XDECREF(res);
    Py_XDECREF(p);
    t->elapsed_ns = mg__monotonic_ns() - start;
}

/* End a worker's interpreter (ts current, its GIL held) and drop the
 * channel handles whose objects did not die with it. */
static void
end_interpreter(PyThreadState *ts, int64_t interp_id)
{
    /* The lifecycle lock is taken without a GIL: let ours go meanwhile. */
    PyEval_SaveThread();
    mg__lifecycle_lock();
    PyEval_RestoreThread(ts);
    mg__threading_keep_main();
    Py_EndInterpreter(ts);
    mg__lifecycle_unlock();
    mg__channels_drop_interp(interp_id);
}

/* In a new worker interpreter (after its bootstrap): the initializer.
 * 0 or -1 with an exception. */
static int
run_initializer(workers_t *w)
{
    if (w->init.len == 0)
        return 0;
    PyObject *init = mg__decode(&w->init);
    if (init == NULL)
        return -1;
    PyObject *fn, *args;
    PyObject *res = NULL;
    if (PyArg_ParseTuple(init, "OO!:initializer", &fn, &PyTuple_Type, &args))
        res = mg__call_as_script(fn, args, NULL);
    Py_DECREF(init);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

typedef struct {
    workers_t *w;
    int slot;
} worker_arg_t;

/* Register the worker's new interpreter (ts current) so that interrupts
 * and stack dumps can enter it, and count the worker as running in it.
 * 0 or an MG_E* code. */
static int
register_interpreter(PyThreadState *ts, int64_t id, mg__interp_t **rec)
{
    void *cached;
    int rc = mg__registry_add(id, PyThreadState_GetInterpreter(ts), 0, NULL, NULL);
    if (rc == 0)
        rc = mg__registry_enter(id, rec, &cached);
    return rc;
}

/* End a registered worker interpreter (ts current, its GIL held). */
static void
end_registered(PyThreadState *ts, int64_t id, mg__interp_t *rec)
{
    mg__interp_t *closing;
    void *own, **others = NULL;
    size_t nothers = 0;
    mg__registry_leave(rec);
    int rc;
    /* Someone (an interrupt, a stack dump) may be inside for a moment. */
    Py_BEGIN_ALLOW_THREADS
    while ((rc = mg__registry_begin_close(id, &closing, &own, &others, &nothers)) == MG_ERUNNING) {
        struct timespec pause = {0, 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    Py_END_ALLOW_THREADS
    if (rc == 0) {
        for (size_t i = 0; i < nothers; i++) {
            PyThreadState_Clear(others[i]);
            PyThreadState_Delete(others[i]);
        }
        free(others);
    }
    end_interpreter(ts, id);
    if (rc == 0)
        mg__registry_end_close(closing);
}

/* Run task t in slot s's worker (GIL held), visible to interrupts and the
 * watchdog while it runs. */
static void
run_slot_task(workers_t *w, slot_t *s, int64_t interp_id, mg__task_t *t)
{
    mg__wait_t run = {
        .interp_id = interp_id,
        .thread_ident = PyThread_get_thread_ident(),
        .kind = MG__ACT_RUN,
        .what = "task",
        .since_ns = mg__monotonic_ns(),
    };
    mg__mutex_lock(&w->mu);
    s->task = t;
    s->run = &run;
    mg__mutex_unlock(&w->mu);
    __atomic_store_n(&s->seq, t->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->started_ns, run.since_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&s->interrupted, 0, __ATOMIC_RELAXED);
    mg__waits_add(&run);
    run_task(t, s);
    mg__mutex_lock(&w->mu);
    s->run = NULL;              /* before the record goes (abandon renames it) */
    mg__mutex_unlock(&w->mu);
    mg__waits_remove(&run);
    /* Interrupters check busy while holding this GIL: after this store no
     * new interrupt can land in the next task. */
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
    int irq = __atomic_load_n(&s->interrupted, __ATOMIC_ACQUIRE);
    if (irq) {
        /* An interrupt that arrived after the task's last bytecode must not
         * fire in the next one. */
        PyThreadState_SetAsyncExc(run.thread_ident, NULL);
        /* Past its time limit (or cancelled) the task's outcome does not
         * count, even if it caught the interrupt and returned. */
        mg__buf_clear(&t->result);
        t->status = irq == MG__IRQ_TIMEOUT ? MG_ETIMEDOUT : MG_ECANCELLED;
    }
    mg__mutex_lock(&w->mu);
    s->task = NULL;
    s->run = NULL;
    mg__mutex_unlock(&w->mu);
}


static void *
worker_main(void *varg)
{
    worker_arg_t *arg = varg;
    workers_t *w = arg->w;
    int slot = arg->slot;
    slot_t *s = &w->slots[slot];
    free(arg);
    if (w->name[0]) {
        /* "prefix_slot", cut to the OS limit, as threading names the
         * stdlib pools' workers ("prefix_n"). */
        char name[32];          /* 15 + "_" + an int's 11: never cut here */
        snprintf(name, sizeof name, "%s_%d", w->name, slot);
        name[15] = '\0';
        pthread_setname_np(pthread_self(), name);
    }
    PyInterpreterConfig config = mg__isolated_config();
    int again = 1;
    while (again) {
        again = 0;
        PyThreadState *ts = NULL;
        mg__lifecycle_lock();
        PyStatus status = Py_NewInterpreterFromConfig(&ts, &config);
        if (PyStatus_Exception(status) || ts == NULL) {
            mg__lifecycle_unlock();
            /* No interpreter to capture an exception in: keep CPython's
             * (static) message for broken_info. */
            mg__mutex_lock(&w->mu);
            if (w->broken_info.len == 0 && w->start_error == NULL)
                w->start_error = status.err_msg ? status.err_msg : "no reason given";
            mg__mutex_unlock(&w->mu);
            mg__pool_set_broken(w->q);
            break;
        }
        int64_t interp_id = PyInterpreterState_GetID(PyThreadState_GetInterpreter(ts));
        int prepared = mg__interp_bootstrap(&w->path);
        mg__lifecycle_unlock();
        mg__interp_t *rec = NULL;
        if (prepared < 0 || register_interpreter(ts, interp_id, &rec) != 0
                || run_initializer(w) < 0) {
            break_pool(w, "worker initialization failed");
            if (rec != NULL)
                end_registered(ts, interp_id, rec);
            else
                end_interpreter(ts, interp_id);
            break;
        }
        mg__mutex_lock(&w->mu);
        s->rec = rec;
        mg__mutex_unlock(&w->mu);
        __atomic_store_n(&s->ident, PyThread_get_thread_ident(), __ATOMIC_RELAXED);
        __atomic_store_n(&s->interp_id, interp_id, __ATOMIC_RELEASE);
        int64_t served = 0;
        int abandoned = 0;
        for (;;) {
            mg__task_t *t;
            Py_BEGIN_ALLOW_THREADS
            t = mg__pool_next_task(w->q);
            Py_END_ALLOW_THREADS
            if (t == NULL)
                break;
            run_slot_task(w, s, interp_id, t);
            mg__pool_finish(w->q, t);
            mg__mutex_lock(&w->mu);
            abandoned = s->abandoned;
            mg__mutex_unlock(&w->mu);
            if (abandoned) {
                /* A replacement serves in our place.  Our task came back:
                 * end our interpreter ourselves -- unless exit has taken
                 * it over (the rule in pool_limits.c). */
                if (!mg__stuck_claim(interp_id)) {
                    PyEval_SaveThread();
                    mg__stuck_block_forever();
                }
                break;
            }
            if (w->max_tasks > 0 && ++served >= w->max_tasks) {
                again = 1;          /* recycle: a fresh interpreter */
                break;
            }
        }
        __atomic_store_n(&s->interp_id, -1, __ATOMIC_RELEASE);
        end_registered(ts, interp_id, rec);
        if (abandoned)
            mg__stuck_done(interp_id);
    }
    /* Done with Python for good: joiners may go on (and the process may
     * finalize); what is left of this thread touches only our memory. */
    mg__mutex_lock(&w->mu);
    s->exited = 1;
    mg__cond_broadcast(&w->changed);
    mg__mutex_unlock(&w->mu);
    mg__workers_decref(w);
    return NULL;
}

/* Start a worker in the next free slot (w->mu held).  0, or -1 when out of
 * slots or threads. */
int
mg__start_worker_locked(workers_t *w)
{
    if (w->nstarted >= w->cap)
        return -1;
    worker_arg_t *arg = malloc(sizeof *arg);
    if (arg == NULL)
        return -1;
    arg->w = w;
    arg->slot = w->nstarted;
    slot_t *s = &w->slots[arg->slot];
    memset(s, 0, sizeof *s);
    s->interp_id = -1;
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
    if (pthread_create(&s->thread, NULL, worker_main, arg) != 0) {
        __atomic_sub_fetch(&w->refs, 1, __ATOMIC_RELAXED);
        free(arg);
        return -1;
    }
    w->nstarted++;
    return 0;
}

/* ---- the _Pool object -------------------------------------------------- */

/* 1 when every worker started so far has exited or been abandoned
 * (w->mu held). */
static int
all_exited_locked(workers_t *w)
{
    for (int i = 0; i < w->nstarted; i++)
        if (!w->slots[i].exited && !w->slots[i].abandoned)
            return 0;
    return 1;
}

/* Wait (no GIL held) until every worker has exited or been abandoned, or
 * until deadline_ns (-1: none).  Replacements started meanwhile are waited
 * for too; an abandoned worker never is.  1 when all are done, else 0. */
static int
join_workers(workers_t *w, int64_t deadline_ns)
{
    mg__mutex_lock(&w->mu);
    int done = 0;
    for (;;) {
        /* Reap the exited threads (never an abandoned, detached one), so
         * that none of the pool's threads is left when join returns. */
        int reaped = 0;
        for (int i = 0; i < w->nstarted; i++) {
            slot_t *s = &w->slots[i];
            if (s->exited && !s->reaped && !s->abandoned) {
                s->reaped = 1;
                pthread_t t = s->thread;
                mg__mutex_unlock(&w->mu);
                pthread_join(t, NULL);
                mg__mutex_lock(&w->mu);
                reaped = 1;
            }
        }
        if (reaped)
            continue;       /* w->mu was dropped: a wake-up may have been missed */
        done = all_exited_locked(w);
        if (done || deadline_ns == 0)
            break;
        if (deadline_ns < 0)
            mg__cond_wait(&w->changed, &w->mu);
        else if (mg__cond_timedwait(&w->changed, &w->mu, deadline_ns))
            deadline_ns = 0;        /* one last look */
    }
    mg__mutex_unlock(&w->mu);
    return done;
}

PyObject *
mg__join_all_pools(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    size_t n = 0, cap = 0;
    workers_t **all = NULL;
    pthread_mutex_lock(&live_mu);
    for (workers_t *w = live_head; w != NULL; w = w->live_next) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            workers_t **grown = realloc(all, ncap * sizeof *all);
            if (grown == NULL)
                break;              /* join those we have */
            all = grown;
            cap = ncap;
        }
        if (try_incref_locked(w))
            all[n++] = w;
    }
    pthread_mutex_unlock(&live_mu);
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) {
        mg__pool_shutdown(all[i]->q, 0);
        (void)join_workers(all[i], -1);
    }
    Py_END_ALLOW_THREADS
    for (size_t i = 0; i < n; i++)
        mg__workers_decref(all[i]);
    free(all);
    return PyLong_FromSize_t(n);
}

static PyObject *
pool_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"workers", "initializer", "max_tasks", "name", NULL};
    int nworkers;
    PyObject *init = Py_None;
    long long max_tasks = 0;
    const char *name = "";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|OLs:_Pool", kwlist, &nworkers, &init,
                                     &max_tasks, &name))
        return NULL;
    if (nworkers <= 0 || nworkers > 1024)
        return PyErr_Format(PyExc_ValueError, "workers must be between 1 and 1024, not %d",
                            nworkers);
    if (max_tasks < 0)
        return PyErr_Format(PyExc_ValueError, "max_tasks must be >= 0");
    workers_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return PyErr_NoMemory();
    w->refs = 1;
    w->nworkers = nworkers;
    w->max_tasks = max_tasks;
    snprintf(w->name, sizeof w->name, "%s", name);
    pthread_mutex_init(&w->mu, NULL);
    if (mg__cond_init(&w->changed) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return PyErr_NoMemory();
    }
    live_add(w);
    pool_t *self = NULL;
    /* Room for replacing abandoned workers a few times over. */
    w->cap = nworkers * 4 + 16;
    w->slots = calloc((size_t)w->cap, sizeof *w->slots);
    if (w->slots == NULL || mg__pool_new(&w->q) != 0) {
        PyErr_NoMemory();
        goto error;
    }
    PyObject *syspath = PySys_GetObject("path");
    if (syspath == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is missing");
        goto error;
    }
    if (mg__encode(syspath, &w->path) < 0)
        goto error;
    if (init != Py_None && mg__encode(init, &w->init) < 0)
        goto error;
    self = PyObject_New(pool_t, tp);
    if (self == NULL)
        goto error;
    self->w = w;
    mg__mutex_lock(&w->mu);
    for (int i = 0; i < nworkers; i++)
        if (mg__start_worker_locked(w) != 0)
            break;
    int started = w->nstarted;
    mg__mutex_unlock(&w->mu);
    if (started == 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not start any worker thread");
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
error:
    mg__workers_decref(w);
    return NULL;
}

static void
pool_dealloc(PyObject *op)
{
    pool_t *self = (pool_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->w != NULL) {
        /* Unreferenced pool: stop taking work and wait (without the GIL)
         * for the workers to finish what is queued and end their
         * interpreters, so that none outlives the pool unseen. */
        mg__pool_shutdown(self->w->q, 0);
        Py_BEGIN_ALLOW_THREADS
        (void)join_workers(self->w, -1);
        Py_END_ALLOW_THREADS
        mg__workers_decref(self->w);
    }
    PyObject_Free(op);
    Py_DECREF(tp);
}

static PyObject *
submit_task(pool_t *self, uint64_t seq, int kind, PyObject *payload_obj)
{
    mg__buf_t payload = MG__BUF_INIT;
    if (mg__encode(payload_obj, &payload) < 0) {
        mg__buf_free(&payload);
        return NULL;
    }
    mg__task_t *t = mg__task_new(seq, kind, &payload);
    if (t == NULL) {
        mg__buf_free(&payload);
        return PyErr_NoMemory();
    }
    int rc = mg__pool_submit(self->w->q, t);
    if (rc) {
        mg__task_free(t);
        return mg__raise(rc, "cannot submit");
    }
    Py_RETURN_NONE;
}

static PyObject *
pool_submit(PyObject *op, PyObject *args)
{
    unsigned long long seq;
    PyObject *fn, *fargs, *kwargs;
    if (!PyArg_ParseTuple(args, "KOO!O:submit", &seq, &fn, &PyTuple_Type, &fargs, &kwargs))
        return NULL;
    if (!PyCallable_Check(fn))
        return PyErr_Format(PyExc_TypeError, "submit() expects a callable, not %.200s",
                            Py_TYPE(fn)->tp_name);
    if (kwargs != Py_None && (!PyDict_Check(kwargs) || PyDict_GET_SIZE(kwargs) == 0))
        kwargs = Py_None;
    PyObject *payload = PyTuple_Pack(3, fn, fargs, kwargs);
    if (payload == NULL)
        return NULL;
    PyObject *res = submit_task((pool_t *)op, seq, MG__TASK_CALL, payload);
    Py_DECREF(payload);
    return res;
}

static PyObject *
pool_submit_map(PyObject *op, PyObject *args)
{
    unsigned long long seq;
    PyObject *fn, *items;
    int star;
    if (!PyArg_ParseTuple(args, "KOO!p:submit_map", &seq, &fn, &PyList_Type, &items, &star))
        return NULL;
    PyObject *payload = Py_BuildValue("(OOO)", fn, items, star ? Py_True : Py_False);
    if (payload == NULL)
        return NULL;
    PyObject *res = submit_task((pool_t *)op, seq, MG__TASK_MAP, payload);
    Py_DECREF(payload);
    return res;
}

/* collect(timeout=None, into=None): the finished tasks, each as
 * (seq, status, value, elapsed_ns) -- value is the result (OK), exception
 * info (RAISED) or None (a negative MG_E* status).  Without `into`, returns
 * them as a list ([] on timeout, on a nudge, or when nothing more will
 * finish).  With `into` (a deque, or anything with append), appends them to
 * it and returns how many: an exception raised in the caller right after
 * the call (KeyboardInterrupt) then loses none; -1 means a nudge (nudge())
 * ended the wait with none, 0 a timeout or nothing more to finish. */
static PyObject *
pool_collect(PyObject *op, PyObject *args)
{
    pool_t *self = (pool_t *)op;
    PyObject *timeout = Py_None, *into = Py_None;
    if (!PyArg_ParseTuple(args, "|OO:collect", &timeout, &into))
        return NULL;
    int64_t deadline = -1;
    if (timeout != Py_None) {
        double secs = PyFloat_AsDouble(timeout);
        if (secs == -1.0 && PyErr_Occurred())
            return NULL;
        deadline = secs <= 0 ? 0 : mg__monotonic_ns() + (int64_t)(secs * 1e9);
    }
    PyObject *append = NULL;
    if (into != Py_None && (append = PyObject_GetAttrString(into, "append")) == NULL)
        return NULL;
    mg__task_t *done;
    int nudged;
    Py_BEGIN_ALLOW_THREADS
    done = mg__pool_collect(self->w->q, deadline, &nudged);
    Py_END_ALLOW_THREADS
    PyObject *list = PyList_New(0);
    Py_ssize_t count = 0;
    for (mg__task_t *t = done; list != NULL && t != NULL; t = t->next) {
        PyObject *value;
        if (t->status >= 0) {
            value = mg__decode_consume(&t->result);
            if (value == NULL) {
                /* The result cannot be rebuilt here: report it as raised. */
                mg__buf_t info = MG__BUF_INIT;
                value = mg__capture_exception(&info) == 0 ? mg__decode(&info) : NULL;
                mg__buf_free(&info);
                t->status = MG__TASK_RAISED;
                if (value == NULL) {
                    Py_CLEAR(list);
                    break;
                }
            }
        }
        else {
            value = Py_NewRef(Py_None);
        }
        PyObject *item = Py_BuildValue("(KiNL)", (unsigned long long)t->seq, t->status, value,
                                       (long long)t->elapsed_ns);
        if (item == NULL)
            Py_CLEAR(list);
        else if (append != NULL) {
            PyObject *r = PyObject_CallOneArg(append, item);
            if (r == NULL)
                Py_CLEAR(list);
            Py_XDECREF(r);
            count++;
        }
        else if (PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    mg__task_free_list(done);
    if (append == NULL || list == NULL) {
        Py_XDECREF(append);
        return list;
    }
    Py_DECREF(append);
    Py_DECREF(list);
    return PyLong_FromSsize_t(count == 0 && nudged ? -1 : count);
}

/* nudge(): make a waiting collect() (or the next one) return at once. */
static PyObject *
pool_nudge(PyObject *op, PyObject *Py_UNUSED(arg))
{
    mg__pool_nudge(((pool_t *)op)->w->q);
    Py_RETURN_NONE;
}

static PyObject *
pool_cancel(PyObject *op, PyObject *arg)
{
    unsigned long long seq = PyLong_AsUnsignedLongLong(arg);
    if (seq == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(mg__pool_cancel(((pool_t *)op)->w->q, seq));
}

static PyObject *
pool_shutdown(PyObject *op, PyObject *arg)
{
    int cancel = PyObject_IsTrue(arg);
    if (cancel < 0)
        return NULL;
    mg__pool_shutdown(((pool_t *)op)->w->q, cancel);
    Py_RETURN_NONE;
}

/* join(timeout=None) -> bool: wait for every worker to exit (abandoned
 * ones excepted); False on timeout.  Ctrl-C interrupts the wait. */
static PyObject *
pool_join(PyObject *op, PyObject *args)
{
    workers_t *w = ((pool_t *)op)->w;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTuple(args, "|O:join", &timeout))
        return NULL;
    int64_t deadline = -1;
    if (timeout != Py_None) {
        double secs = PyFloat_AsDouble(timeout);
        if (secs == -1.0 && PyErr_Occurred())
            return NULL;
        deadline = mg__monotonic_ns() + (secs <= 0 ? 0 : (int64_t)(secs * 1e9));
    }
    for (;;) {
        /* Wake now and then to notice signals (Ctrl-C in the main thread). */
        int64_t slice = mg__monotonic_ns() + 100 * 1000 * 1000;
        int last = deadline >= 0 && deadline <= slice;
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = join_workers(w, last ? deadline : slice);
        Py_END_ALLOW_THREADS
        if (done || last)
            return PyBool_FromLong(done);
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
}

static PyObject *
pool_stats(PyObject *op, PyObject *unused)
{
    (void)unused;
    int64_t queued, running;
    int shutdown, broken;
    mg__pool_stats(((pool_t *)op)->w->q, &queued, &running, &shutdown, &broken);
    return Py_BuildValue("{sLsLsOsO}", "queued", (long long)queued, "running",
                         (long long)running, "shutdown", shutdown ? Py_True : Py_False,
                         "broken", broken ? Py_True : Py_False);
}

static PyObject *
pool_broken_info(PyObject *op, PyObject *unused)
{
    (void)unused;
    workers_t *w = ((pool_t *)op)->w;
    mg__mutex_lock(&w->mu);
    PyObject *res;
    if (w->broken_info.len)
        res = mg__decode(&w->broken_info);
    else if (w->start_error != NULL)
        res = PyUnicode_FromString(w->start_error);
    else
        res = Py_NewRef(Py_None);
    mg__mutex_unlock(&w->mu);
    return res;
}

static PyMethodDef pool_methods[] = {
    {"running", mg__pool_running, METH_NOARGS,
     "running()\n--\n\nTasks being run: [(seq, started_ns, interp_id, thread_ident, interrupted, "
     "in_code)]; in_code: the task's own code runs now (its interrupt can land there)."},
    {"interrupt", mg__pool_interrupt, METH_VARARGS,
     "interrupt(seq, cancel)\n--\n\nInterrupt running task seq (as cancelled, or timed out); "
     "False if it is not running."},
    {"abandon", mg__pool_abandon_task, METH_O,
     "abandon(seq)\n--\n\nGive up on the worker running task seq and start a replacement: "
     "None if seq is not running, else 1 (replaced), 0 (no replacement could start) or 2 "
     "(none needed: the pool is shut down with nothing queued, or broken)."},
    {"submit", pool_submit, METH_VARARGS, "submit(seq, fn, args, kwargs)\n--\n\nQueue a call."},
    {"submit_map", pool_submit_map, METH_VARARGS,
     "submit_map(seq, fn, items, star)\n--\n\nQueue a chunk: fn over items."},
    {"collect", pool_collect, METH_VARARGS,
     "collect(timeout=None, into=None)\n--\n\nFinished tasks: [(seq, status, value, elapsed_ns)]; "
     "[] when nothing more will finish (or on timeout or a nudge).  With into: appended to it, "
     "and their number returned (-1: a nudge ended the wait)."},
    {"nudge", pool_nudge, METH_NOARGS,
     "nudge()\n--\n\nMake a waiting collect() (or the next one) return at once."},
    {"cancel", pool_cancel, METH_O, "cancel(seq)\n--\n\nUnqueue a task not yet started."},
    {"shutdown", pool_shutdown, METH_O,
     "shutdown(cancel_pending)\n--\n\nRefuse new tasks; workers exit when the queue is empty."},
    {"join", pool_join, METH_VARARGS,
     "join(timeout=None)\n--\n\nWait for the workers to end their interpreters (abandoned "
     "ones are never waited for); False if the timeout passed first."},
    {"stats", pool_stats, METH_NOARGS, "stats()\n--\n\nQueue counters."},
    {"broken_info", pool_broken_info, METH_NOARGS,
     "broken_info()\n--\n\nException info of the failure that broke the pool; a str (CPython's "
     "message) when a worker's interpreter could not be created; or None."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_methods, pool_methods},
    {Py_tp_doc, (void *)"_Pool(workers, initializer=None, max_tasks=0, name=''): the C side "
                        "of InterpreterPoolExecutor (name: the worker threads' OS name)."},
    {0, NULL},
};

static PyType_Spec pool_spec = {
    .name = "manygil._core._Pool",
    .basicsize = sizeof(pool_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};

int
mg__pool_type_add(PyObject *m, mg__state_t *st)
{
    st->pool_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &pool_spec, NULL);
    if (st->pool_type == NULL)
        return -1;
    return PyModule_AddType(m, st->pool_type);
}
