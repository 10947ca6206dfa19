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
 */
#include "manygil.h"
#include "py/interp.h"
#include "py/codec.h"
#include "py/watch.h"
#include "py/runsrc.h"
#include "core/channel.h"
#include "core/sync.h"
#include "core/waits.h"

static int run_switched(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised);

/* ---- switching --------------------------------------------------------- */

typedef struct {
    mg__interp_t *rec;
    PyThreadState *target;      /* thread state used in the target */
    PyThreadState *saved;       /* the caller's, or NULL */
    int ephemeral;              /* delete target on the way out */
    int same;                   /* target is the caller's interpreter */
} mg__switch_t;

/* Enter interpreter id: on success the calling thread holds its GIL with
 * sw->target current.  Returns 0 or MG_ENOTFOUND / MG_ENOMEM. */
static int
switch_in(int64_t id, mg__switch_t *sw)
{
    void *cached;
    int rc = mg__registry_enter(id, &sw->rec, &cached);
    if (rc)
        return rc;
    PyInterpreterState *interp = mg__registry_py_interp(sw->rec);
    PyThreadState *cur = mg__tstate_current();
    sw->saved = NULL;
    sw->ephemeral = 0;
    sw->same = cur != NULL && cur->interp == interp;
    if (sw->same) {
        sw->target = cur;
        return 0;
    }
    sw->target = cached;
    if (sw->target == NULL) {
        /* Ask before creating: a new state becomes the GILState one
         * exactly when the thread has none yet. */
        int had_gilstate = PyGILState_GetThisThreadState() != NULL;
        sw->target = PyThreadState_New(interp);
        if (sw->target == NULL) {
            mg__registry_leave(sw->rec);
            return MG_ENOMEM;
        }
        if (!had_gilstate || mg__registry_cache_tstate(sw->rec, sw->target) != 0)
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
    mg__registry_leave(sw->rec);
    if (sw->saved != NULL)
        PyEval_RestoreThread(sw->saved);
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
    int rc = run_switched(id, fn, arg, out, raised);
    if (sigint)
        mg__sigint_leave();
    if (what != NULL)
        mg__waits_remove(&run);
    return rc;
}

/* mg__interp_run without the bookkeeping. */
static int
run_switched(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised)
{
    mg__switch_t sw;
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
    mg__registry_set_deleter(delete_tstate);
    if (Py_AtExit(at_finalize) < 0)
        return MG_ENOMEM;
    return 0;
}
