/* module.c -- manygil._core: the extension module the Python package wraps.
 *
 * Multi-phase init, no static PyObject *, safe to load in any own-GIL
 * interpreter (Py_MOD_PER_INTERPRETER_GIL_SUPPORTED).  Per-interpreter
 * state (the channel types) lives in the module state; exception classes
 * live in manygil._errors and are looked up when raised.
 *
 * Sections: argument helpers -> running code elsewhere (exec, call,
 * prepare_main) -> lifecycle -> codec entry points -> module definition.
 */
#include "manygil.h"
#include "py/compat.h"
#include "py/actor.h"
#include "py/codec.h"
#include "py/errors.h"
#include "py/interp.h"
#include "py/host.h"
#include "py/watch.h"
#include "py/fork.h"
#include "py/lockguard.h"
#include "py/state.h"
#include "py/awatch.h"
#include "py/runsrc.h"
#include "py/owngil.h"
#include <marshal.h>

/* ---- argument helpers -------------------------------------------------- */

/* Parse an interpreter id: 0 or -1 with TypeError/OverflowError. */
static int
parse_id(PyObject *o, int64_t *id)
{
    return mg__interp_id_from_object(o, id);
}

/* 1 if nargs is `want`, else 0 with a TypeError. */
static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)",
                 name, want, nargs);
    return 0;
}

/* A call's result that could not be encoded: call_in_target returns this
 * code with the encoding error's info in `out`. */
#define RESULT_UNSHAREABLE MG_EUNSHAREABLE

/* Raise in this interpreter the exception that manygil._errors.<factory>
 * builds from encoded exception info: ExecutionFailed (_execution_failed),
 * or NotShareableError for a result that could not cross
 * (_result_not_shareable). */
static PyObject *
raise_remote(const mg__buf_t *info_buf, const char *factory_name)
{
    PyObject *info = mg__decode(info_buf);
    if (info == NULL)
        return NULL;
    PyObject *factory = mg__import_attr("manygil._errors", factory_name);
    PyObject *exc = factory ? PyObject_CallOneArg(factory, info) : NULL;
    Py_XDECREF(factory);
    Py_DECREF(info);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Run fn in interpreter id and turn the outcome into a Python result in the
 * caller's interpreter: the decoded value, ExecutionFailed, or the error for
 * an MG_E* code. */
static PyObject *
run_and_decode(int64_t id, const char *what, mg__runfn_t fn, void *arg)
{
    mg__buf_t out = MG__BUF_INIT;
    int raised = 0;
    PyObject *res = NULL;
    int rc = mg__interp_run_as(id, what, fn, arg, &out, &raised);
    /* Ctrl-C while the main thread ran code elsewhere: that code was
     * interrupted; here the signal's own handler speaks (KeyboardInterrupt). */
    if (what != NULL && PyErr_CheckSignals() < 0)
        goto done;
    if (rc == RESULT_UNSHAREABLE && out.len > 0)
        raise_remote(&out, "_result_not_shareable");
    else if (rc)
        mg__raise(rc, "interpreter %lld", (long long)id);
    else if (raised)
        raise_remote(&out, "_execution_failed");
    else
        res = mg__decode_consume(&out);
done:
    mg__buf_free(&out);
    return res;
}

static int
put_none(mg__buf_t *out)
{
    mg__buf_clear(out);
    return mg__encode(Py_None, out);
}

/* ---- exec -------------------------------------------------------------- */

typedef struct {
    const char *data;       /* UTF-8 source (NUL-terminated) or marshal bytes */
    Py_ssize_t len;
    int is_marshal;
} exec_arg_t;

/* In the target: compile/unmarshal and run in __main__. */
static int
exec_in_target(void *varg, mg__buf_t *out)
{
    exec_arg_t *arg = varg;
    PyObject *code = NULL, *main = NULL, *res = NULL;
    int rc = -1;
    if (arg->is_marshal)
        code = PyMarshal_ReadObjectFromString(arg->data, arg->len);
    else
        code = Py_CompileString(arg->data, "<string>", Py_file_input);
    if (code == NULL)
        goto done;
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "exec() needs source or a code object");
        goto done;
    }
    main = mg__main_module();
    if (main == NULL)
        goto done;
    PyObject *ns = PyModule_GetDict(main);      /* borrowed */
    mg__user_code_t uc;
    if (mg__user_code_enter(&uc) == 0)          /* interrupts land only here */
        res = PyEval_EvalCode(code, ns, ns);
    mg__user_code_leave(&uc);
    if (res == NULL)
        goto done;
    rc = put_none(out);
done:
    Py_XDECREF(res);
    Py_XDECREF(main);
    Py_XDECREF(code);
    return rc;
}

PyDoc_STRVAR(exec_doc,
"exec(id, code, /)\n--\n\n"
"Run source code (str) or a code object in the __main__ module of\n"
"interpreter `id`.  Raises ExecutionFailed if it raises.");

static PyObject *
core_exec(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    int64_t id;
    if (!check_nargs("exec", nargs, 2) || parse_id(args[0], &id) < 0)
        return NULL;
    PyObject *src = args[1], *marshalled = NULL;
    exec_arg_t arg = {0};
    if (PyUnicode_Check(src)) {
        arg.data = PyUnicode_AsUTF8AndSize(src, &arg.len);
        if (arg.data == NULL)
            return NULL;
        if ((size_t)arg.len != strlen(arg.data)) {
            PyErr_SetString(PyExc_ValueError, "source code string cannot contain null bytes");
            return NULL;
        }
    }
    else if (PyCode_Check(src)) {
        marshalled = PyMarshal_WriteObjectToString(src, Py_MARSHAL_VERSION);
        if (marshalled == NULL)
            return NULL;
        arg.data = PyBytes_AS_STRING(marshalled);
        arg.len = PyBytes_GET_SIZE(marshalled);
        arg.is_marshal = 1;
    }
    else {
        return PyErr_Format(PyExc_TypeError,
                            "exec() expects a str or a code object, not %.200s", Py_TYPE(src)->tp_name);
    }
    PyObject *res = run_and_decode(id, "exec", exec_in_target, &arg);
    Py_XDECREF(marshalled);
    return res;
}

/* ---- call -------------------------------------------------------------- */

/* After encoding a result failed (exception set): if it failed because the
 * value cannot cross (NotShareableError), capture that into out and return
 * RESULT_UNSHAREABLE; else -1 with the exception still set. */
static int
result_encode_failed(mg__buf_t *out)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *cls = mg__import_attr("manygil._errors", "NotShareableError");
    int unshareable = cls != NULL && PyErr_GivenExceptionMatches(exc, cls);
    Py_XDECREF(cls);
    if (!unshareable) {
        if (cls == NULL)
            PyErr_Clear();          /* the encoding error is the one to report */
        PyErr_SetRaisedException(exc);
        return -1;
    }
    PyErr_SetRaisedException(exc);
    int rc = mg__capture_exception(out);
    return rc ? rc : RESULT_UNSHAREABLE;
}

/* In the target: decode (fn, args, kwargs), call it as at the top of a
 * script in __main__ (mg__call_as_script), encode the result. */
static int
call_in_target(void *varg, mg__buf_t *out)
{
    mg__buf_t *payload = varg;
    PyObject *res = NULL;
    int rc = -1;
    PyObject *triple = mg__decode(payload);
    if (triple == NULL)
        goto done;
    if (!PyTuple_CheckExact(triple) || PyTuple_GET_SIZE(triple) != 3) {
        PyErr_SetString(PyExc_ValueError, "malformed call payload");
        goto done;
    }
    PyObject *fn = PyTuple_GET_ITEM(triple, 0);
    PyObject *fargs = PyTuple_GET_ITEM(triple, 1);
    PyObject *kwargs = PyTuple_GET_ITEM(triple, 2);
    mg__user_code_t uc;
    if (mg__user_code_enter(&uc) == 0)          /* interrupts land only here */
        res = mg__call_as_script(fn, fargs, kwargs == Py_None ? NULL : kwargs);
    mg__user_code_leave(&uc);
    if (res == NULL)
        goto done;
    mg__buf_clear(out);
    rc = mg__encode(res, out);
    if (rc < 0)
        rc = result_encode_failed(out);
done:
    Py_XDECREF(res);
    Py_XDECREF(triple);
    return rc;
}

PyDoc_STRVAR(call_doc,
"call(id, fn, args, kwargs, what='call', /)\n--\n\n"
"Call fn(*args, **kwargs) in interpreter `id` and return a copy of the\n"
"result.  fn, args and kwargs are copied there with the codec.  what\n"
"'actors' names the run of an actor worker's dispatch loop: the watchdog\n"
"and Interpreter.interrupt leave it alone (its actors' methods are not one\n"
"long call).");

static PyObject *
core_call(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    int64_t id;
    const char *what = "call";
    if (nargs == 5) {
        if (!PyUnicode_Check(args[4]) || PyUnicode_CompareWithASCIIString(args[4], "actors") != 0)
            return PyErr_Format(PyExc_ValueError, "call(): what must be 'actors'");
        what = "actors";            /* static: run records keep the pointer */
        nargs = 4;
    }
    if (!check_nargs("call", nargs, 4) || parse_id(args[0], &id) < 0)
        return NULL;
    PyObject *fn = args[1], *fargs = args[2], *kwargs = args[3];
    if (!PyCallable_Check(fn))
        return PyErr_Format(PyExc_TypeError, "call() expects a callable, not %.200s", Py_TYPE(fn)->tp_name);
    if (!PyTuple_Check(fargs))
        return PyErr_Format(PyExc_TypeError, "call() args must be a tuple, not %.200s", Py_TYPE(fargs)->tp_name);
    if (kwargs != Py_None && !PyDict_Check(kwargs))
        return PyErr_Format(PyExc_TypeError, "call() kwargs must be a dict, not %.200s", Py_TYPE(kwargs)->tp_name);
    if (kwargs != Py_None && PyDict_GET_SIZE(kwargs) == 0)
        kwargs = Py_None;
    PyObject *triple = PyTuple_Pack(3, fn, fargs, kwargs);
    if (triple == NULL)
        return NULL;
    mg__buf_t payload = MG__BUF_INIT;
    payload.borrow = 1;             /* decoded and freed while we wait */
    PyObject *res = NULL;
    if (mg__encode(triple, &payload) == 0)
        res = run_and_decode(id, what, call_in_target, &payload);
    mg__buf_free(&payload);
    Py_DECREF(triple);
    return res;
}

/* ---- prepare_main ------------------------------------------------------ */

static int
prepare_in_target(void *varg, mg__buf_t *out)
{
    mg__buf_t *payload = varg;
    PyObject *main = NULL;
    int rc = -1;
    PyObject *ns = mg__decode(payload);
    if (ns == NULL)
        goto done;
    main = mg__main_module();
    if (main == NULL || PyDict_Update(PyModule_GetDict(main), ns) < 0)
        goto done;
    rc = put_none(out);
done:
    Py_XDECREF(main);
    Py_XDECREF(ns);
    return rc;
}

/* The rule for names prepare_main may bind: names the runtime or the import
 * system reads from a module's namespace must keep a working value, or the
 * interpreter's __main__ is broken for good (with __builtins__ = 1 no code
 * can run there again, not even code that would repair it).  So
 * __builtins__, __spec__, __loader__ and __path__ are refused (ValueError);
 * __name__, __qualname__, __package__ and __file__ must be str (TypeError).
 * 0, or -1 with the exception set. */
static int
check_main_name(PyObject *name, PyObject *value)
{
    static const char *const refused[] = {"__builtins__", "__spec__", "__loader__", "__path__", NULL};
    static const char *const str_only[] = {"__name__", "__qualname__", "__package__", "__file__", NULL};
    for (int i = 0; refused[i] != NULL; i++)
        if (PyUnicode_CompareWithASCIIString(name, refused[i]) == 0) {
            PyErr_Format(PyExc_ValueError,
                         "prepare_main() cannot bind %s: the interpreter's __main__ "
                         "needs its own (it is set up by the interpreter)", refused[i]);
            return -1;
        }
    for (int i = 0; str_only[i] != NULL; i++)
        if (PyUnicode_CompareWithASCIIString(name, str_only[i]) == 0 && !PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "prepare_main(): %s must be a str, not %.200s",
                         str_only[i], Py_TYPE(value)->tp_name);
            return -1;
        }
    return 0;
}

PyDoc_STRVAR(prepare_main_doc,
"prepare_main(id, ns, /)\n--\n\n"
"Bind copies of the items of dict `ns` in the __main__ of interpreter id.\n"
"__builtins__, __spec__, __loader__, __path__ are refused; __name__,\n"
"__qualname__, __package__, __file__ must be str.");

static PyObject *
core_prepare_main(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    int64_t id;
    if (!check_nargs("prepare_main", nargs, 2) || parse_id(args[0], &id) < 0)
        return NULL;
    PyObject *ns = args[1];
    if (!PyDict_Check(ns))
        return PyErr_Format(PyExc_TypeError, "prepare_main() expects a dict, not %.200s", Py_TYPE(ns)->tp_name);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(ns, &pos, &k, &v)) {
        if (!PyUnicode_Check(k))
            return PyErr_Format(PyExc_TypeError,
                                "prepare_main() names must be str, not %.200s", Py_TYPE(k)->tp_name);
        if (check_main_name(k, v) < 0)
            return NULL;
    }
    mg__buf_t payload = MG__BUF_INIT;
    payload.borrow = 1;             /* decoded and freed while we wait */
    PyObject *res = NULL;
    if (mg__encode(ns, &payload) == 0)
        res = run_and_decode(id, NULL, prepare_in_target, &payload);
    mg__buf_free(&payload);
    return res;
}

/* ---- introspection for tests ------------------------------------------ */

static int
count_tstates_in_target(void *varg, mg__buf_t *out)
{
    (void)varg;
    long n = 0;
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t))
        n++;
    PyObject *v = PyLong_FromLong(n);
    if (v == NULL)
        return -1;
    mg__buf_clear(out);
    int rc = mg__encode(v, out);
    Py_DECREF(v);
    return rc;
}

PyDoc_STRVAR(thread_state_count_doc,
"_thread_state_count(id)\n--\n\n"
"Number of thread states interpreter `id` has (for tests of the cache).");

static PyObject *
core_thread_state_count(PyObject *mod, PyObject *arg)
{
    (void)mod;
    int64_t id;
    if (parse_id(arg, &id) < 0)
        return NULL;
    return run_and_decode(id, NULL, count_tstates_in_target, NULL);
}

/* ---- lifecycle --------------------------------------------------------- */

PyDoc_STRVAR(create_doc,
"create()\n--\n\n"
"Create an isolated interpreter with its own GIL and return its id.");

static PyObject *
core_create(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int64_t id;
    const char *why;
    int rc = mg__interp_create(&id, &why);
    if (rc)
        return mg__raise(rc, "%s", why ? why : "interpreter creation failed");
    return PyLong_FromLongLong(id);
}

PyDoc_STRVAR(destroy_doc,
"destroy(id)\n--\n\n"
"Close interpreter `id`.  InterpreterNotFoundError if there is none,\n"
"InterpreterError if it is running code or is the main interpreter.");

static PyObject *
core_destroy(PyObject *mod, PyObject *arg)
{
    (void)mod;
    int64_t id;
    if (parse_id(arg, &id) < 0)
        return NULL;
    int rc = mg__interp_close(id);
    if (rc)
        return mg__raise(rc, "cannot close interpreter %lld", (long long)id);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(end_at_exit_doc,
"_end_at_exit()\n--\n\n"
"At process exit (after non-daemon threads were joined): end every manygil\n"
"interpreter, newest first.  One that a thread still runs code in (a\n"
"daemon thread, an abandoned worker) is ended too, without waiting for\n"
"that thread: it is parked for good (see interp.c).  Returns how many\n"
"were ended.");

static PyObject *
core_end_at_exit(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int64_t *ids;
    size_t n;
    int rc = mg__registry_ids(&ids, &n);
    if (rc)
        return mg__raise(rc, NULL);
    int64_t main_id = PyInterpreterState_GetID(PyInterpreterState_Main());
    long ended = 0;
    mg__interp_exit_begin();
    for (size_t i = n; i-- > 0;) {
        if (ids[i] == main_id)
            continue;
        rc = mg__interp_close(ids[i]);
        if (rc == MG_ERUNNING)
            rc = mg__interp_end_at_exit(ids[i]);
        ended += rc == 0;
    }
    free(ids);
    return PyLong_FromLong(ended);
}

PyDoc_STRVAR(is_running_doc,
"is_running(id)\n--\n\n"
"True if some thread is running code in interpreter `id`.");

static PyObject *
core_is_running(PyObject *mod, PyObject *arg)
{
    (void)mod;
    int64_t id;
    if (parse_id(arg, &id) < 0)
        return NULL;
    int rc = mg__registry_is_running(id);
    if (rc < 0)
        return mg__raise(rc, "interpreter %lld", (long long)id);
    /* The main interpreter runs the program's main thread until exit
     * begins (as concurrent.interpreters says of it). */
    if (id == PyInterpreterState_GetID(PyInterpreterState_Main()) && !mg__interp_exit_started())
        rc = 1;
    return PyBool_FromLong(rc);
}

PyDoc_STRVAR(whence_doc,
"_whence(id)\n--\n\n"
"Where interpreter `id` came from, in concurrent.interpreters' words:\n"
"'runtime init' (the main interpreter), 'C-API' (made by manygil with\n"
"Py_NewInterpreterFromConfig), or None for the current interpreter when\n"
"manygil did not make it.  InterpreterNotFoundError for any other id.");

static PyObject *
core_whence(PyObject *mod, PyObject *arg)
{
    (void)mod;
    int64_t id;
    if (parse_id(arg, &id) < 0)
        return NULL;
    if (id < 0)
        return PyErr_Format(PyExc_ValueError,
                            "interpreter ID must be a non-negative int, got %lld", (long long)id);
    if (id == PyInterpreterState_GetID(PyInterpreterState_Main()))
        return PyUnicode_FromString("runtime init");
    if (mg__registry_is_running(id) >= 0)
        return PyUnicode_FromString("C-API");
    if (id == PyInterpreterState_GetID(PyInterpreterState_Get()))
        Py_RETURN_NONE;
    return mg__raise(MG_ENOTFOUND, "interpreter %lld", (long long)id);
}

PyDoc_STRVAR(list_all_doc,
"list_all()\n--\n\n"
"Ids of the main interpreter and every open manygil interpreter.");

static PyObject *
core_list_all(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    int64_t *ids;
    size_t n;
    int rc = mg__registry_ids(&ids, &n);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *v = PyLong_FromLongLong(ids[i]);
        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    free(ids);
    return list;
}

static PyObject *
core_get_current(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    return PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Get()));
}

static PyObject *
core_get_main(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    return PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Main()));
}

/* ---- codec entry points ------------------------------------------------ */

PyDoc_STRVAR(encode_doc,
"encode(obj, /)\n--\n\n"
"Encode obj the way it crosses between interpreters; returns bytes.");

static PyObject *
core_encode(PyObject *mod, PyObject *obj)
{
    (void)mod;
    mg__buf_t b = MG__BUF_INIT;
    PyObject *res = NULL;
    if (mg__encode(obj, &b) == 0)
        res = PyBytes_FromStringAndSize((const char *)b.data, (Py_ssize_t)b.len);
    mg__buf_free(&b);
    return res;
}

PyDoc_STRVAR(decode_doc,
"decode(data, /)\n--\n\n"
"Rebuild a value from the bytes encode() produced (ValueError if malformed).");

static PyObject *
core_decode(PyObject *mod, PyObject *arg)
{
    (void)mod;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *res = mg__decode_bytes(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return res;
}

PyDoc_STRVAR(is_shareable_doc,
"is_shareable(obj, /)\n--\n\n"
"True if obj can be copied to another interpreter (natively or by pickle).");

static PyObject *
core_is_shareable(PyObject *mod, PyObject *obj)
{
    (void)mod;
    mg__buf_t b = MG__BUF_INIT;
    int rc = mg__encode(obj, &b);
    mg__buf_free(&b);
    if (rc == 0)
        Py_RETURN_TRUE;
    if (PyErr_ExceptionMatches(PyExc_MemoryError))
        return NULL;
    PyErr_Clear();
    Py_RETURN_FALSE;
}

static PyObject *
core_codec_stats(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    uint64_t adopted, copied;
    mg__codec_block_stats(&adopted, &copied);
    return Py_BuildValue("{sKsKsO}", "blocks_adopted", (unsigned long long)adopted,
                         "blocks_copied", (unsigned long long)copied,
                         "adopts", mg__codec_adopts() ? Py_True : Py_False);
}

/* ---- module definition ------------------------------------------------- */

static PyMethodDef core_methods[] = {
    {"create", core_create, METH_NOARGS, create_doc},
    {"destroy", core_destroy, METH_O, destroy_doc},
    {"exec", (PyCFunction)(void (*)(void))core_exec, METH_FASTCALL, exec_doc},
    {"call", (PyCFunction)(void (*)(void))core_call, METH_FASTCALL, call_doc},
    {"prepare_main", (PyCFunction)(void (*)(void))core_prepare_main, METH_FASTCALL,
     prepare_main_doc},
    {"is_running", core_is_running, METH_O, is_running_doc},
    {"_whence", core_whence, METH_O, whence_doc},
    {"_end_at_exit", core_end_at_exit, METH_NOARGS, end_at_exit_doc},
    {"list_all", core_list_all, METH_NOARGS, list_all_doc},
    {"get_current", core_get_current, METH_NOARGS, "get_current()\n--\n\nId of the current interpreter."},
    {"get_main", core_get_main, METH_NOARGS, "get_main()\n--\n\nId of the main interpreter."},
    {"encode", core_encode, METH_O, encode_doc},
    {"decode", core_decode, METH_O, decode_doc},
    {"is_shareable", core_is_shareable, METH_O, is_shareable_doc},
    {"_codec_stats", core_codec_stats, METH_NOARGS,
     "_codec_stats()\n--\n\nBig bytes/bytearray blocks taken over by receivers (one copy) "
     "and copied from (two copies), process-wide."},
    {"_thread_state_count", core_thread_state_count, METH_O, thread_state_count_doc},
    {"_type_home", mg__type_home, METH_O,
     "_type_home(tp, /)\n--\n\nThe shared object file or module a type comes from, or None."},
    {"_module_gil_support", mg__module_gil_support, METH_O,
     "_module_gil_support(module, /)\n--\n\nHow an extension module supports interpreters, or None."},
    {NULL, NULL, 0, NULL},
};

mg__state_t *
mg__state_current(void)
{
    PyObject *mod = PyImport_ImportModule("manygil._core");
    if (mod == NULL)
        return NULL;
    mg__state_t *st = PyModule_GetState(mod);
    Py_DECREF(mod);     /* sys.modules keeps it alive */
    return st;
}

static int
core_traverse(PyObject *mod, visitproc visit, void *arg)
{
    mg__state_t *st = PyModule_GetState(mod);
    Py_VISIT(st->send_type);
    Py_VISIT(st->recv_type);
    Py_VISIT(st->queue_type);
    Py_VISIT(st->pool_type);
    Py_VISIT(st->shbuf_type);
    return 0;
}

static int
core_clear(PyObject *mod)
{
    mg__state_t *st = PyModule_GetState(mod);
    Py_CLEAR(st->send_type);
    Py_CLEAR(st->recv_type);
    Py_CLEAR(st->queue_type);
    Py_CLEAR(st->pool_type);
    Py_CLEAR(st->shbuf_type);
    return 0;
}

static void
core_free(void *mod)
{
    core_clear((PyObject *)mod);
}

static int
core_exec_module(PyObject *mod)
{
    int rc = mg__interp_init_main();
    if (rc) {
        mg__raise(rc, "manygil could not register the main interpreter");
        return -1;
    }
    if (mg__channel_types_add(mod, PyModule_GetState(mod)) < 0
            || mg__pool_type_add(mod, PyModule_GetState(mod)) < 0
            || mg__shbuf_type_add(mod, PyModule_GetState(mod)) < 0
            || PyModule_AddFunctions(mod, mg__channel_functions) < 0
            || PyModule_AddFunctions(mod, mg__watch_functions) < 0
            || PyModule_AddFunctions(mod, mg__fork_functions) < 0
            || PyModule_AddFunctions(mod, mg__lockguard_functions) < 0
            || PyModule_AddFunctions(mod, mg__pool_functions) < 0
            || PyModule_AddFunctions(mod, mg__awatch_functions) < 0
            || PyModule_AddFunctions(mod, mg__actor_functions) < 0
            || mg__capi_add(mod) < 0)
        return -1;
    if (PyModule_AddIntConstant(mod, "CODEC_MAX_DEPTH", MG__CODEC_MAX_DEPTH) < 0
            || PyModule_AddIntConstant(mod, "ADOPT_MIN", mg__codec_adopt_min()) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec_module},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

PyModuleDef mg__core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "manygil._core",
    .m_doc = "C core of manygil: own-GIL interpreters, the value codec, channels.",
    .m_size = sizeof(mg__state_t),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&mg__core_module);
}
