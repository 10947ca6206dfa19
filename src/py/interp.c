/* interp.c -- creating, entering and closing own-GIL interpreters.
 *
 * Thread states: a thread that enters interpreter X needs a PyThreadState of
 * X.  We create one on the thread's first entry and cache it in the
 * registry for the (thread, X) pair, so later entries only swap GILs.  It is
 * deleted when X closes (by the closer) or when the thread exits (by the
 * registry's thread-exit hook).  A thread state that CPython made the
 * thread's "GILState" one (the thread had no Python thread state at all) is
 * never cached: CPython's bookkeeping for it only works when it is deleted
 * by its own thread, so such a state lives for one entry only.
 *
 * Switching: save the caller's thread state (releasing its GIL), restore the
 * target's (taking the target's GIL), run, then the reverse.  No GIL is held
 * while waiting for another.
 *
 * WHO MAY END WHAT, AND WHEN (the rule every path here follows)
 *
 * CPython binds a thread state to the OS thread that last attached it (the
 * "gilstate" binding: attaching a state binds it and unbinds the thread's
 * previous one).  Deleting a bound state from another thread breaks that
 * bookkeeping (debug builds assert in unbind_gilstate_tstate; release builds
 * clear the *deleter's* binding and leave the owner's dangling).  Hence:
 *
 *  1. A thread state is deleted by its own thread (PyThreadState_Clear +
 *     PyThreadState_DeleteCurrent while attached), or by another thread with
 *     PyThreadState_Delete only while it is unbound: its thread attached
 *     another state since (a caller switched back home), or never attached
 *     it.  Cached states of threads that are not inside X are unbound: every
 *     switch_out re-attaches the caller's own state, and states of threads
 *     that come with none are never cached.
 *  2. An interpreter is closed (mg__interp_close) only while no thread runs
 *     in it: close refuses (MG_ERUNNING) while one does, waits for brief
 *     visits (interrupt helpers, stack dumps: mg__interp_visit) to leave,
 *     and no one can enter once it is CLOSING.  The closer then deletes the
 *     other threads' cached states (unbound, rule 1) and ends X on its own.
 *  3. At process exit (mg__interp_end_at_exit) threads may still be inside
 *     X for good (daemon threads, abandoned pool workers), and CPython's
 *     finalization ends every interpreter anyway (3.13+) or aborts if one is
 *     left (3.12).  The closer makes X CLOSING, then asks each thread that
 *     entered X through manygil to end its own state: a profile/trace hook
 *     runs on that thread at its next Python event, clears and deletes its
 *     thread state (rule 1) and parks the thread for ever without a GIL.
 *     A thread stuck in C code (time.sleep, a blocking read) cannot do that
 *     within the grace period; on CPython versions whose Py_EndInterpreter
 *     removes remaining thread states itself (3.15+) they are left to it,
 *     elsewhere the closer deletes them: the one case where rule 1 cannot be
 *     kept (a debug build asserts in unbind_gilstate_tstate), because those
 *     versions end an interpreter only once its other states are gone and
 *     only the stuck thread could delete its own.  A thread coming back
 *     from a manygil wait after exit began never re-attaches a state of a
 *     non-main interpreter (mg__exit_gate).
 *  4. A thread that ends deletes its own cached states (thread-exit hook),
 *     each while X is pinned so that a close waits for it.
 */
#include "manygil.h"
#include "py/interp.h"
#include "py/codec.h"
#include "py/watch.h"
#include "py/runsrc.h"
#include "core/channel.h"
#include "core/sync.h"
#include "core/waits.h"
#include <pthread.h>
#include <time.h>

/* The serial of the run (exec/call recorded in the activity table) the
 * calling thread is in, 0 if none. */
static __thread uint64_t current_run;

static int run_switched(int64_t id, int visit, mg__runfn_t fn, void *arg, mg__buf_t *out,
                        int *raised);

/* ---- ids ---------------------------------------------------------------- */

int
mg__interp_id_from_object(PyObject *o, int64_t *id)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "interpreter id must be an int, not %.200s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *id = v;
    return 0;
}

/* ---- switching --------------------------------------------------------- */

typedef struct {
    mg__interp_t *rec;
    PyThreadState *target;      /* thread state used in the target */
    PyThreadState *saved;       /* the caller's, or NULL */
    PyThreadState *rebind;      /* a detached state of the caller's own to attach again */
    int ephemeral;              /* delete target on the way out */
    int same;                   /* target is the caller's interpreter */
    int visit;                  /* a visit (mg__registry_visit), not a run */
} mg__switch_t;

static void
switch_unregister(mg__switch_t *sw)
{
    if (sw->visit)
        mg__registry_unvisit(sw->rec);
    else
        mg__registry_leave(sw->rec);
}

/* Enter interpreter id (as a visit if sw->visit): on success the calling
 * thread holds its GIL with sw->target current.  Returns 0 or MG_ENOTFOUND /
 * MG_ENOMEM.
 *
 * Attaching a state binds it to the thread (CPython's gilstate binding), so
 * a thread leaves with the binding it came with (rule 1): the caller's
 * current state is attached again; a caller with none but with a detached
 * state bound to it (a host thread inside PyGILState_Ensure) attaches that
 * one again for a moment; a caller with neither uses a state here for this
 * entry only (a cached one it had, from creating the interpreter, too). */
static int
switch_in(int64_t id, mg__switch_t *sw)
{
    void *cached;
    int rc = sw->visit ? mg__registry_visit(id, &sw->rec, &cached)
                       : mg__registry_enter(id, &sw->rec, &cached);
    if (rc)
        return rc;
    PyInterpreterState *interp = mg__registry_py_interp(sw->rec);
    PyThreadState *cur = mg__tstate_current();
    sw->saved = NULL;
    sw->rebind = NULL;
    sw->ephemeral = 0;
    sw->same = cur != NULL && PyThreadState_GetInterpreter(cur) == interp;
    if (sw->same) {
        sw->target = cur;
        return 0;
    }
    PyThreadState *bound = PyGILState_GetThisThreadState();
    sw->target = cached;
    if (cur == NULL && bound != NULL && bound != cached)
        sw->rebind = bound;
    else if (cur == NULL && cached != NULL) {
        mg__registry_uncache_tstate(sw->rec, cached);
        sw->ephemeral = 1;
    }
    if (sw->target == NULL) {
        /* A new state becomes the thread's bound one when it has none. */
        sw->target = PyThreadState_New(interp);
        if (sw->target == NULL) {
            switch_unregister(sw);
            return MG_ENOMEM;
        }
        if (bound == NULL || mg__registry_cache_tstate(sw->rec, sw->target) != 0)
            sw->ephemeral = 1;
    }
    if (cur != NULL)
        sw->saved = PyEval_SaveThread();
    PyEval_RestoreThread(sw->target);
    return 0;
}

/* Leave the interpreter entered by switch_in and return to the caller's. */
static void
switch_out(mg__switch_t *sw)
{
    if (!sw->same) {
        if (sw->ephemeral) {
            PyThreadState_Clear(sw->target);
            PyThreadState_DeleteCurrent();
        }
        else {
            PyEval_SaveThread();
        }
    }
    if (sw->saved == NULL && sw->rebind == NULL) {
        switch_unregister(sw);
        return;
    }
    /* Until the caller's own state is current again, the target's state is
     * still the one bound to this thread (its gilstate): a closer deleting
     * it from another thread then breaks CPython's bookkeeping (a debug
     * build asserts in unbind_gilstate_tstate: the close-vs-call race of
     * tests/stress).  So the run ends now -- close no longer fails for it --
     * but the record stays pinned, and a close waits for the pin, until the
     * caller is back in its own state. */
    if (!sw->visit)
        mg__registry_leave_pinned(sw->rec);
    if (sw->saved != NULL)
        PyEval_RestoreThread(sw->saved);
    else {
        PyEval_RestoreThread(sw->rebind);   /* no GIL held: may wait for its GIL */
        PyEval_SaveThread();
    }
    mg__registry_unvisit(sw->rec);
}

/* ---- exception capture ------------------------------------------------- */

/* A minimal description built without importing anything, for when
 * manygil._remote cannot describe the exception. */
static PyObject *
describe_minimal(PyObject *exc)
{
    PyTypeObject *tp = Py_TYPE(exc);
    PyObject *msg = PyObject_Str(exc);
    if (msg == NULL) {
        PyErr_Clear();
        msg = PyUnicode_FromString("<exception str() failed>");
        if (msg == NULL)
            return NULL;
    }
    PyObject *mod = PyObject_GetAttrString((PyObject *)tp, "__module__");
    if (mod == NULL) {
        PyErr_Clear();
        mod = PyUnicode_FromString("builtins");
    }
    PyObject *name = PyType_GetName(tp);
    PyObject *qualname = PyType_GetQualName(tp);
    PyObject *res = NULL;
    if (name != NULL && qualname != NULL)
        res = Py_BuildValue("(OONNsO)", name, qualname, mod, msg, "", Py_None);
    else {
        Py_DECREF(mod);
        Py_DECREF(msg);
    }
    Py_XDECREF(name);
    Py_XDECREF(qualname);
    return res;
}

/* Turn the exception set in this interpreter into encoded info in out:
 * (name, qualname, module, msg, formatted traceback, pickled exc or None).
 * 0 or MG_ENOMEM. */
int
mg__capture_exception(mg__buf_t *out)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *info = NULL;
    PyObject *describe = mg__import_attr("manygil._remote", "describe");
    if (describe != NULL) {
        info = PyObject_CallOneArg(describe, exc);
        Py_DECREF(describe);
    }
    if (info == NULL) {
        PyErr_Clear();
        info = describe_minimal(exc);
    }
    Py_DECREF(exc);
    int rc = 0;
    mg__buf_clear(out);
    if (info == NULL || mg__encode(info, out) < 0) {
        PyErr_Clear();
        rc = MG_ENOMEM;
    }
    Py_XDECREF(info);
    return rc;
}

int
mg__interp_run(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised)
{
    return mg__interp_run_as(id, NULL, fn, arg, out, raised);
}

int
mg__interp_run_as(int64_t id, const char *what, mg__runfn_t fn, void *arg, mg__buf_t *out,
                  int *raised)
{
    mg__wait_t run = {
        .interp_id = id,
        .thread_ident = PyThread_get_thread_ident(),
        .kind = MG__ACT_RUN,
        .what = what,
    };
    if (what != NULL) {
        run.since_ns = mg__monotonic_ns();
        mg__waits_add(&run);
    }
    int sigint = what != NULL && mg__sigint_enter(id);
    uint64_t outer = current_run;
    current_run = what != NULL ? run.serial : 0;
    int rc = run_switched(id, 0, fn, arg, out, raised);
    current_run = outer;
    if (sigint)
        mg__sigint_leave();
    if (what != NULL) {
        mg__irq_forget(run.serial);
        mg__waits_remove(&run);
    }
    return rc;
}

int
mg__user_code_enter(mg__user_code_t *uc)
{
    *uc = (mg__user_code_t){
        .serial = current_run,
        .interp_id = PyInterpreterState_GetID(PyInterpreterState_Get()),
        .thread_ident = PyThread_get_thread_ident(),
    };
    return mg__irq_user_code_enter(uc);
}

void
mg__user_code_leave(mg__user_code_t *uc)
{
    mg__irq_user_code_leave(uc);
}

int
mg__interp_visit(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised)
{
    return run_switched(id, 1, fn, arg, out, raised);
}

/* mg__interp_run (or, with visit, mg__interp_visit) without the
 * bookkeeping. */
static int
run_switched(int64_t id, int visit, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised)
{
    mg__switch_t sw = {.visit = visit};
    int rc = switch_in(id, &sw);
    if (rc)
        return rc;
    /* In the caller's interpreter (same), keep its pending state intact. */
    PyObject *pending = sw.same ? PyErr_GetRaisedException() : NULL;
    *raised = 0;
    uint64_t irqs = mg__interrupts_sent();
    rc = fn(arg, out);
    if (rc == -1) {
        rc = mg__capture_exception(out);
        *raised = rc == 0;
    }
    /* An interrupt that came after the code's last bytecode must not fire
     * in this thread's next call here. */
    if (!sw.same && mg__interrupts_sent() != irqs)
        PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
    if (sw.same)
        PyErr_SetRaisedException(pending);
    switch_out(&sw);
    return rc;
}

/* ---- creation ---------------------------------------------------------- */

static pthread_mutex_t lifecycle_mutex = PTHREAD_MUTEX_INITIALIZER;

void
mg__lifecycle_lock(void)
{
    if (!MG__SERIALIZE_LIFECYCLE)
        return;
    if (pthread_mutex_trylock(&lifecycle_mutex) == 0)
        return;
    PyThreadState *cur = mg__tstate_current();
    PyThreadState *saved = cur ? PyEval_SaveThread() : NULL;
    pthread_mutex_lock(&lifecycle_mutex);
    if (saved != NULL)
        PyEval_RestoreThread(saved);
}

void
mg__lifecycle_unlock(void)
{
    if (MG__SERIALIZE_LIFECYCLE)
        pthread_mutex_unlock(&lifecycle_mutex);
}

PyInterpreterConfig
mg__isolated_config(void)
{
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    return config;
}

/* Source run in each new interpreter (in a private namespace): turn the
 * terse ImportError CPython gives for extensions that cannot run under
 * their own GIL into one that names the module and says what to do. */
static const char IMPORT_HINT_SRC[] =
"import _frozen_importlib_external as _ext\n"
"_orig = _ext.ExtensionFileLoader.create_module\n"
"def create_module(self, spec, _orig=_orig):\n"
"    try:\n"
"        return _orig(self, spec)\n"
"    except ImportError as e:\n"
"        text = str(e)\n"
"        if 'manygil' in text or not ('interpreter' in text or 'more than once' in text):\n"
"            raise\n"
"        raise ImportError(\n"
"            f'{text}\\nhint: extension module {spec.name!r} cannot be loaded in a manygil '\n"
"            f'interpreter (each owns its GIL; the module does not support that). Import it '\n"
"            f'in the main interpreter and pass data across; check modules with '\n"
"            f'`python -m manygil check {spec.name}`.',\n"
"            name=spec.name, path=getattr(spec, 'origin', None)) from None\n"
"_ext.ExtensionFileLoader.create_module = create_module\n";

int
mg__interp_bootstrap(const mg__buf_t *path)
{
    int rc = -1;
    PyObject *ns = NULL, *res = NULL;
    PyObject *list = mg__decode(path);
    if (list == NULL || PySys_SetObject("path", list) < 0)
        goto done;
    ns = PyDict_New();
    if (ns == NULL || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto done;
    static mg__srccache_t hint_code;
    res = mg__run_cached_source(&hint_code, IMPORT_HINT_SRC, "<manygil import hints>", ns);
    if (res == NULL || mg__track_threads() < 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(res);
    Py_XDECREF(ns);
    Py_XDECREF(list);
    return rc;
}

int
mg__interp_create(int64_t *id, const char **why)
{
    PyThreadState *cur = PyThreadState_Get();
    int cacheable = PyGILState_GetThisThreadState() != NULL;
    PyThreadState *anchor = NULL;
    mg__buf_t path = MG__BUF_INIT;
    *why = NULL;

    PyObject *syspath = PySys_GetObject("path");   /* borrowed */
    if (syspath == NULL || mg__encode(syspath, &path) < 0) {
        PyErr_Clear();
        mg__buf_free(&path);
        *why = "could not copy sys.path";
        return MG_ECREATE;
    }

    PyInterpreterConfig config = mg__isolated_config();
    PyThreadState *ts = NULL;
    mg__lifecycle_lock();
    PyStatus status = Py_NewInterpreterFromConfig(&ts, &config);
    if (PyStatus_Exception(status) || ts == NULL) {
        /* CPython restored the caller's thread state. */
        mg__lifecycle_unlock();
        mg__buf_free(&path);
        *why = status.err_msg;
        return MG_ECREATE;
    }
    /* Now in the new interpreter, holding its GIL. */
    PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
    *id = PyInterpreterState_GetID(interp);
    int rc = 0;
    if (mg__interp_bootstrap(&path) < 0) {
        PyErr_Print();
        *why = "bootstrap of the new interpreter failed";
        rc = MG_ECREATE;
        Py_EndInterpreter(ts);
        goto done;
    }
    if (MG__NEED_ANCHOR_TSTATE) {
        anchor = PyThreadState_New(interp);
        if (anchor == NULL) {
            rc = MG_ENOMEM;
            Py_EndInterpreter(ts);
            goto done;
        }
        /* No thread runs on the anchor: do not let it pass for this one
         * (PyThreadState_SetAsyncExc picks the first state with a matching
         * thread id, and the anchor is newer than the creator's). */
        anchor->thread_id = 0;
    }
    rc = mg__registry_add(*id, interp, 0, cacheable ? ts : NULL, anchor);
    if (rc) {
        if (anchor != NULL) {
            PyThreadState_Clear(anchor);
            PyThreadState_Delete(anchor);
        }
        Py_EndInterpreter(ts);
        goto done;
    }
    if (cacheable) {
        PyEval_SaveThread();
    }
    else {
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
    }
done:
    mg__lifecycle_unlock();
    PyEval_RestoreThread(cur);
    mg__buf_free(&path);
    return rc;
}

/* ---- closing ----------------------------------------------------------- */

void
mg__threading_keep_main(void)
{
#if PY_VERSION_HEX < 0x030D0000
    /* 3.12's threading._shutdown (run by Py_EndInterpreter) asserts that
     * threading._main_thread's sentinel lock is held; CPython releases it
     * when the thread state that imported threading is deleted, and in
     * interpreters of host threads that is an earlier per-call state.  When
     * the same OS thread ends the interpreter, tie a new sentinel to the
     * state ending it (the stdlib's own _MainThread._set_tstate_lock), so
     * _shutdown runs as usual. */
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *mods = PyImport_GetModuleDict();                      /* borrowed */
    PyObject *threading = mods ? PyDict_GetItemString(mods, "threading") : NULL;
    PyObject *main = threading ? PyObject_GetAttrString(threading, "_main_thread") : NULL;
    PyObject *lock = main ? PyObject_GetAttrString(main, "_tstate_lock") : NULL;
    PyObject *held = lock && lock != Py_None ? PyObject_CallMethod(lock, "locked", NULL) : NULL;
    /* Only on the thread that imported threading does _shutdown look at
     * that lock; elsewhere it joins the locks it knows, a new one included. */
    PyObject *ident = held == Py_False ? PyObject_GetAttrString(main, "ident") : NULL;
    int same_thread = ident != NULL && PyLong_Check(ident)
                      && PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident();
    Py_XDECREF(ident);
    if (same_thread) {
        PyObject *r = PyObject_CallMethod(main, "_set_tstate_lock", NULL);
        Py_XDECREF(r);
    }
    Py_XDECREF(held);
    Py_XDECREF(lock);
    Py_XDECREF(main);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
#endif
}

int
mg__interp_close(int64_t id)
{
    PyThreadState *cur = mg__tstate_current();
    PyThreadState *saved = cur ? PyEval_SaveThread() : NULL;
    mg__interp_t *rec;
    void *own, **others = NULL;
    size_t nothers = 0;
    int rc = mg__registry_begin_close(id, &rec, &own, &others, &nothers);
    if (rc)
        goto done;
    PyThreadState *ts = own;
    if (ts == NULL) {
        ts = PyThreadState_New(mg__registry_py_interp(rec));
        if (ts == NULL) {
            /* Out of memory: the interpreter stays CLOSING (unusable, not
             * closed) and the other threads' states leak. */
            rc = MG_ENOMEM;
            goto done;
        }
    }
    mg__lifecycle_lock();           /* no GIL held here */
    PyEval_RestoreThread(ts);
    for (size_t i = 0; i < nothers; i++) {
        PyThreadState_Clear(others[i]);
        PyThreadState_Delete(others[i]);
    }
    mg__threading_keep_main();
    Py_EndInterpreter(ts);          /* leaves no current thread state */
    mg__lifecycle_unlock();
    mg__registry_end_close(rec);
    /* Handles whose objects did not die with the interpreter. */
    mg__channels_drop_interp(id);
done:
    free(others);
    if (saved != NULL)
        PyEval_RestoreThread(saved);
    return rc;
}

/* ---- ending interpreters at exit (rule 3) -------------------------------- */

/* How long the closer waits for threads inside an interpreter to park. */
#define EXIT_GRACE_NS (200 * 1000 * 1000LL)
#define MAX_PARK_IDENTS 64

static struct {
    mg__mutex_t mu;
    pthread_cond_t cond;        /* a thread parked (parked threads wait on it for ever) */
    int started;                /* atomic: mg__interp_end_at_exit has begun */
    int64_t main_id;            /* set once by mg__interp_init_main */
    PyInterpreterState *interp; /* guarded by mu: the interpreter being ended, or NULL */
    unsigned long idents[MAX_PARK_IDENTS];  /* guarded by mu: threads to park there */
    int nidents;                /* guarded by mu */
    int parked;                 /* guarded by mu: how many of them parked */
} at_exit = {
    .mu = MG__MUTEX_INIT,
    .cond = PTHREAD_COND_INITIALIZER,
    .main_id = -1,
};

/* Wait for ever, holding no GIL and no thread state.  Never returns. */
static void
park_forever(void)
{
    mg__mutex_lock(&at_exit.mu);
    at_exit.parked++;
    pthread_cond_broadcast(&at_exit.cond);
    for (;;)
        pthread_cond_wait(&at_exit.cond, &at_exit.mu);
}

void
mg__exit_gate(int64_t interp_id)
{
    if (__atomic_load_n(&at_exit.started, __ATOMIC_ACQUIRE) && interp_id != at_exit.main_id)
        park_forever();
}

/* Profile and trace hook installed in an interpreter being ended at exit:
 * on a thread that entered it through manygil, delete the thread's own
 * state (rule 1) and park the thread; elsewhere do nothing. */
static int
park_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj; (void)frame; (void)what; (void)arg;
    unsigned long me = PyThread_get_thread_ident();
    PyInterpreterState *here = PyInterpreterState_Get();
    int mine = 0;
    mg__mutex_lock(&at_exit.mu);
    for (int i = 0; here == at_exit.interp && i < at_exit.nidents && !mine; i++)
        mine = at_exit.idents[i] == me;
    mg__mutex_unlock(&at_exit.mu);
    if (!mine)
        return 0;
    PyThreadState_Clear(PyThreadState_Get());
    PyThreadState_DeleteCurrent();          /* releases the GIL */
    park_forever();
    return 0;
}

/* The threads running in interpreter id through manygil (exec, call, pool
 * tasks: run records), into at_exit.idents.  Its own `threading` threads
 * are not among them: Py_EndInterpreter waits for those as usual. */
static void
collect_runners_locked(int64_t id)
{
    mg__wait_t *recs;
    size_t n;
    at_exit.nidents = 0;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return;
    for (size_t i = 0; i < n && at_exit.nidents < MAX_PARK_IDENTS; i++)
        if (recs[i].kind == MG__ACT_RUN && recs[i].interp_id == id)
            at_exit.idents[at_exit.nidents++] = recs[i].thread_ident;
    free(recs);
}

int
mg__interp_exit_started(void)
{
    return __atomic_load_n(&at_exit.started, __ATOMIC_ACQUIRE);
}

void
mg__interp_exit_begin(void)
{
    __atomic_store_n(&at_exit.started, 1, __ATOMIC_RELEASE);
}

void
mg__delete_other_tstates(PyInterpreterState *interp, PyThreadState *keep)
{
    PyThreadState *o = PyInterpreterState_ThreadHead(interp);
    while (o != NULL) {
        PyThreadState *next = PyThreadState_Next(o);
        if (o != keep) {
            PyThreadState_Clear(o);
            PyThreadState_Delete(o);
        }
        o = next;
    }
}

int
mg__interp_end_at_exit(int64_t id)
{
    mg__interp_exit_begin();
    PyThreadState *cur = mg__tstate_current();
    PyThreadState *saved = cur ? PyEval_SaveThread() : NULL;
    mg__interp_t *rec;
    void *own = NULL;
    int running = 0;
    int rc = mg__registry_begin_exit(id, &rec, &own, &running);
    if (rc)
        goto done;
    PyInterpreterState *interp = mg__registry_py_interp(rec);
    /* Our own cached state if we have one: it may be the one the
     * interpreter's threading module counts as its main thread's. */
    PyThreadState *ts = own != NULL ? own : PyThreadState_New(interp);
    if (ts == NULL) {
        rc = MG_ENOMEM;                 /* left CLOSING: unusable, not ended */
        goto done;
    }
    if (running > 0) {
        int64_t deadline = mg__monotonic_ns() + EXIT_GRACE_NS;
        mg__mutex_lock(&at_exit.mu);
        at_exit.interp = interp;
        at_exit.parked = 0;
        collect_runners_locked(id);
        mg__mutex_unlock(&at_exit.mu);
        PyEval_RestoreThread(ts);
        PyEval_SetProfileAllThreads(park_hook, NULL);
        PyEval_SetTraceAllThreads(park_hook, NULL);
        PyEval_SaveThread();
        mg__mutex_lock(&at_exit.mu);
        while (at_exit.parked < mg__registry_running(rec) && mg__monotonic_ns() < deadline) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_nsec += 5 * 1000 * 1000;
            if (t.tv_nsec >= 1000000000L) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&at_exit.cond, &at_exit.mu, &t);
        }
        mg__mutex_unlock(&at_exit.mu);
        PyEval_RestoreThread(ts);
        PyEval_SetProfileAllThreads(NULL, NULL);
        PyEval_SetTraceAllThreads(NULL, NULL);
        /* No thread can be in the hook now (it would hold this GIL). */
        mg__mutex_lock(&at_exit.mu);
        at_exit.interp = NULL;
        at_exit.nidents = 0;
        mg__mutex_unlock(&at_exit.mu);
    }
    else {
        PyEval_RestoreThread(ts);
    }
    /* Left: cached states of threads not inside (unbound: rule 1) and the
     * states of threads stuck in C code (see rule 3). */
    if (!MG__END_INTERP_REMOVES_THREADS)
        mg__delete_other_tstates(interp, ts);
    PyEval_SaveThread();
    mg__lifecycle_lock();
    PyEval_RestoreThread(ts);
    mg__threading_keep_main();
    Py_EndInterpreter(ts);              /* leaves no current thread state */
    mg__lifecycle_unlock();
    mg__registry_end_close(rec);
    mg__channels_drop_interp(id);
done:
    if (saved != NULL)
        PyEval_RestoreThread(saved);
    return rc;
}

/* ---- the main interpreter and thread exit ------------------------------ */

/* Registry thread-exit hook: delete a cached thread state on its thread. */
static void
delete_tstate(void *py_interp, void *tstate)
{
    (void)py_interp;
    if (mg__tstate_current() != NULL)
        return;                     /* a thread exiting attached: leave it */
    PyEval_RestoreThread(tstate);
    PyThreadState_Clear(tstate);
    PyThreadState_DeleteCurrent();
}

static void
at_finalize(void)
{
    mg__registry_mark_finalized();
}

int
mg__interp_init_main(void)
{
    /* Idempotent: only the first registration of the main interpreter (by
     * whichever interpreter loads the module first) installs the hooks. */
    PyInterpreterState *main_interp = PyInterpreterState_Main();
    int rc = mg__registry_add(PyInterpreterState_GetID(main_interp), main_interp, 1,
                              NULL, NULL);
    if (rc == MG_EINVAL)
        return 0;
    if (rc)
        return rc;
    at_exit.main_id = PyInterpreterState_GetID(main_interp);
    mg__registry_set_deleter(delete_tstate);
    if (Py_AtExit(at_finalize) < 0)
        return MG_ENOMEM;
    return 0;
}
