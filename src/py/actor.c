/* actor.c -- one actor message's method as a run of its own.
 *
 * An actor worker's dispatch loop (manygil._actor_worker) is one long run
 * ("actors") that the watchdog and Interpreter.interrupt leave alone.  Each
 * method it runs for an actor gets a run record of its own ("actor", with
 * the actor's process-unique id (ActorRef._uid) and "Class#id.method" as
 * label) and a user-code window keyed by that record's serial, so that:
 *   - the watchdog reports a method that runs too long, and stack dumps and
 *     hang reports name the actor and the method;
 *   - ActorRef.interrupt() raises into that one method run
 *     (_core._interrupt_run with the record's serial): never into the
 *     loop's own code, never into the next message's method (another
 *     actor's, maybe), which has another serial.
 * The record is quiet (waits.h): it does not wake the deadlock detector,
 * for which nothing changes (the thread is in the same interpreter).
 *
 * Abandoning a worker (a method stuck past its interrupt's grace period,
 * manygil._actors): _actor_abandon(serial) gives up on that method's run
 * record under the activity table's mutex and hands back the call's reply
 * end, which the system answers; the method, should it ever return, finds
 * its record given up on (read after the record left the table: exactly
 * one side wins) and raises SystemExit instead of handing back its value,
 * and the worker's loop ends without touching the inbox, which a
 * replacement worker serves by then.
 */
#include <string.h>
#include "manygil.h"
#include "py/compat.h"
#include "py/actor.h"
#include "py/interp.h"
#include "py/state.h"
#include "core/sync.h"
#include "core/waits.h"

/* Message kinds of manygil._actor_worker (CALL) and what _actor_next
 * returns for a tell that raised (TELL_RAISED); the text of the SystemExit
 * a method of an abandoned worker ends with (_actor_worker._abandoned). */
#define MG__ACTOR_CALL 0
#define MG__ACTOR_TELL_RAISED 5
#define MG__ACTOR_UNDECODABLE 6
#define ABANDONED "manygil: this actor worker was abandoned"

/* Append src[0:len] to dst (holding *n bytes, capacity cap, room kept for
 * the NUL); a cut never splits a UTF-8 character.  0, or -1 once full. */
static int
put_utf8(char *dst, size_t cap, size_t *n, const char *src, Py_ssize_t len)
{
    Py_ssize_t i = 0;
    while (i < len && *n + 1 < cap)
        dst[(*n)++] = src[i++];
    if (i == len)
        return 0;
    /* Cut before src[i]: drop the start of a character it continues. */
    if (((unsigned char)src[i] & 0xC0) == 0x80) {
        while (*n > 0 && ((unsigned char)dst[*n - 1] & 0xC0) == 0x80)
            (*n)--;
        if (*n > 0)
            (*n)--;             /* the lead byte */
    }
    return -1;
}

/* dst = "label.name", cut to fit. */
static void
put_label(char *dst, size_t cap, const char *label, Py_ssize_t llen, const char *name,
          Py_ssize_t nlen)
{
    size_t n = 0;
    if (put_utf8(dst, cap, &n, label, llen) == 0 && put_utf8(dst, cap, &n, ".", 1) == 0)
        (void)put_utf8(dst, cap, &n, name, nlen);
    dst[n] = '\0';
}

/* The actor method this thread runs now, for _actor_current(): set by
 * invoke() for the call's duration (the objects borrowed from its caller),
 * the outer one restored after it. */
typedef struct {
    PyObject *label;        /* "Class#id" */
    PyObject *name;         /* the method's name, or None for __init__ */
} current_t;

static __thread current_t *current_call;

/* getattr(obj, name)(*fargs, **kwargs) -- obj(*fargs, **kwargs) when name is
 * None -- as a run 'actor' of actor `aid` labelled "label.name", with its
 * user-code window (interrupts land only there).  label, name (str or None),
 * fargs (tuple), kwargs (dict or NULL) checked by the caller; reply: the
 * call's reply SendChannel or NULL.  A new reference, or NULL with an
 * exception: SystemExit (ABANDONED) if the worker was abandoned meanwhile. */
static PyObject *
invoke(PyObject *mod, PyObject *label, long long aid, PyObject *obj, PyObject *name,
       PyObject *fargs, PyObject *kwargs, PyObject *reply)
{
    Py_ssize_t llen, nlen = 0;
    const char *ls = PyUnicode_AsUTF8AndSize(label, &llen);
    const char *ns = name == Py_None ? "__init__" : PyUnicode_AsUTF8AndSize(name, &nlen);
    if (ls == NULL || ns == NULL)
        return NULL;
    if (name == Py_None)
        nlen = (Py_ssize_t)strlen(ns);
    PyObject *fn = name == Py_None ? Py_NewRef(obj) : PyObject_GetAttr(obj, name);
    if (fn == NULL)
        return NULL;
    mg__wait_t run = {
        .interp_id = PyInterpreterState_GetID(PyInterpreterState_Get()),
        .thread_ident = PyThread_get_thread_ident(),
        .kind = MG__ACT_RUN,
        .what = "actor",
        .end_id = aid,
        .quiet = 1,
        .since_ns = mg__monotonic_ns(),
        .reply_id = reply == NULL ? -1 : mg__send_handle_end_id(mod, reply),
    };
    put_label(run.label, sizeof run.label, ls, llen, ns, nlen);
    mg__waits_add(&run);
    mg__user_code_t uc = {
        .serial = run.serial,
        .interp_id = run.interp_id,
        .thread_ident = run.thread_ident,
    };
    current_t cur = {label, name}, *outer = current_call;
    current_call = &cur;
    PyObject *res = NULL;
    if (mg__irq_user_code_enter(&uc) == 0)      /* interrupts land only here */
        res = PyObject_Call(fn, fargs, kwargs);
    mg__irq_user_code_leave_run(&uc, 1);
    current_call = outer;
    mg__waits_remove(&run);
    Py_DECREF(fn);
    if (run.broken) {           /* abandoned meanwhile: the system answered the call */
        Py_XDECREF(res);
        PyErr_Clear();
        PyErr_SetString(PyExc_SystemExit, ABANDONED);
        return NULL;
    }
    return res;
}

/* _actor_invoke's checks of name, args and kwargs: 0, or -1 with TypeError. */
static int
check_call(PyObject *name, PyObject *fargs, PyObject *kwargs, const char *fn)
{
    if (name != Py_None && !PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%s(): name must be a str or None", fn);
        return -1;
    }
    if (!PyTuple_Check(fargs)) {
        PyErr_Format(PyExc_TypeError, "%s(): args must be a tuple", fn);
        return -1;
    }
    if (kwargs != Py_None && !PyDict_Check(kwargs)) {
        PyErr_Format(PyExc_TypeError, "%s(): kwargs must be a dict or None", fn);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(actor_invoke_doc,
"_actor_invoke(label, aid, obj, name, args, kwargs, reply)\n--\n\n"
"In an actor worker: return getattr(obj, name)(*args, **kwargs) -- or\n"
"obj(*args, **kwargs) when name is None (the actor's __init__) -- as a run\n"
"'actor' of the actor whose process-unique id is aid, labelled 'label.name'\n"
"(the watchdog, dump_stacks and ActorRef.interrupt see it).  kwargs: a\n"
"dict or None; reply: the call's reply SendChannel or None.  Raises\n"
"SystemExit if the worker was abandoned (_actor_abandon) while the method\n"
"ran.");

static PyObject *
fn_actor_invoke(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7)
        return PyErr_Format(PyExc_TypeError, "_actor_invoke() takes 7 arguments (%zd given)",
                            nargs);
    if (!PyUnicode_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "_actor_invoke(): label must be a str");
    long long aid = PyLong_AsLongLong(args[1]);
    if (aid == -1 && PyErr_Occurred())
        return NULL;
    if (check_call(args[3], args[4], args[5], "_actor_invoke") < 0)
        return NULL;
    return invoke(mod, args[0], aid, args[2], args[3], args[4],
                  args[5] == Py_None ? NULL : args[5], args[6] == Py_None ? NULL : args[6]);
}

/* msg's (label, aid, obj, name, args, kwargs) when it is a tell -- (CALL,
 * aid, name, args, kwargs, None) -- to an actor of `actors` whose slot's
 * `fast` is (label, aid, obj): 1, with *fast a new reference; 0 when it is
 * another message (the Python loop takes it); -1 with an exception. */
static int
fast_tell(PyObject *msg, PyObject *actors, PyObject *fast_attr, PyObject **fast)
{
    *fast = NULL;
    if (!PyTuple_CheckExact(msg) || PyTuple_GET_SIZE(msg) != 6
            || PyTuple_GET_ITEM(msg, 5) != Py_None)
        return 0;
    PyObject *kind = PyTuple_GET_ITEM(msg, 0);
    if (!PyLong_CheckExact(kind))
        return 0;
    int overflow;
    if (PyLong_AsLongAndOverflow(kind, &overflow) != MG__ACTOR_CALL || overflow)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *name = PyTuple_GET_ITEM(msg, 2);
    PyObject *kw = PyTuple_GET_ITEM(msg, 4);
    if (!PyUnicode_CheckExact(name) || !PyTuple_CheckExact(PyTuple_GET_ITEM(msg, 3))
            || (kw != Py_None && !PyDict_CheckExact(kw)))
        return 0;
    PyObject *slot = PyDict_GetItemWithError(actors, PyTuple_GET_ITEM(msg, 1));
    if (slot == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(slot);
    PyObject *f = PyObject_GetAttr(slot, fast_attr);
    Py_DECREF(slot);
    if (f == NULL)
        return -1;
    if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != 3
            || !PyUnicode_Check(PyTuple_GET_ITEM(f, 0))) {
        Py_DECREF(f);
        return 0;
    }
    *fast = f;
    return 1;
}

PyDoc_STRVAR(actor_next_doc,
"_actor_next(inbox, urgent, actors)\n--\n\n"
"In an actor worker's loop: receive from inbox (waiting as long as it\n"
"takes) and run every tell -- (CALL, aid, name, args, kwargs, None) -- to an\n"
"actor whose slot in `actors` (aid -> _Slot) has `fast` = (label, aid,\n"
"obj), as _actor_invoke would, until another message comes: return it.\n"
"Returns it also when `urgent` has an item (the loop reads it first).  A\n"
"tell whose method raises returns (TELL_RAISED, label, name, exception); a\n"
"message that cannot be decoded here (a class or argument that does not\n"
"load in this interpreter) returns (UNDECODABLE, exception): it is gone,\n"
"and so is the reply handle it carried.  ChannelClosedError once the inbox\n"
"is closed and drained.");

static PyObject *
fn_actor_next(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "_actor_next() takes 3 arguments (%zd given)",
                            nargs);
    PyObject *inbox = args[0], *urgent = args[1], *actors = args[2];
    if (!PyDict_Check(actors))
        return PyErr_Format(PyExc_TypeError, "_actor_next(): actors must be a dict");
    if (mg__recv_handle_pending(mod, inbox) < 0         /* both checked before a */
            || mg__recv_handle_pending(mod, urgent) < 0)  /* message is taken */
        return NULL;
    PyObject *fast_attr = PyUnicode_InternFromString("fast");
    if (fast_attr == NULL)
        return NULL;
    PyObject *out = NULL;
    for (;;) {
        int undecodable;
        PyObject *msg = mg__recv_handle_recv(mod, inbox, &undecodable);
        if (msg == NULL) {
            if (undecodable) {
                PyObject *exc = PyErr_GetRaisedException();
                out = Py_BuildValue("(iO)", MG__ACTOR_UNDECODABLE, exc);
                Py_DECREF(exc);
            }
            break;
        }
        int pending = mg__recv_handle_pending(mod, urgent);
        PyObject *fast = NULL;
        /* Urgent items waiting: the Python loop reads them first.  Else a
         * tell runs here (1) or another message goes to the loop (0). */
        int rc = pending < 0 ? -1 : pending > 0 ? 0 : fast_tell(msg, actors, fast_attr, &fast);
        if (rc <= 0) {
            if (rc == 0)
                out = msg;
            else
                Py_DECREF(msg);
            break;
        }
        PyObject *kw = PyTuple_GET_ITEM(msg, 4);
        long long aid = PyLong_AsLongLong(PyTuple_GET_ITEM(fast, 1));
        PyObject *res = aid == -1 && PyErr_Occurred() ? NULL
            : invoke(mod, PyTuple_GET_ITEM(fast, 0), aid, PyTuple_GET_ITEM(fast, 2),
                     PyTuple_GET_ITEM(msg, 2), PyTuple_GET_ITEM(msg, 3),
                     kw == Py_None || PyDict_GET_SIZE(kw) == 0 ? NULL : kw, NULL);
        if (res != NULL) {
            Py_DECREF(res);
            Py_DECREF(fast);
            Py_DECREF(msg);
            continue;
        }
        PyObject *exc = PyErr_GetRaisedException();
        out = Py_BuildValue("(iOOO)", MG__ACTOR_TELL_RAISED, PyTuple_GET_ITEM(fast, 0),
                            PyTuple_GET_ITEM(msg, 2), exc);
        Py_DECREF(exc);
        Py_DECREF(fast);
        Py_DECREF(msg);
        break;
    }
    Py_DECREF(fast_attr);
    return out;
}

PyDoc_STRVAR(actor_current_doc,
"_actor_current()\n--\n\n"
"(label, method name) of the actor method this thread runs now -- name\n"
"'__init__' while an actor is created -- or None.");

static PyObject *
fn_actor_current(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    current_t *cur = current_call;
    if (cur == NULL)
        Py_RETURN_NONE;
    if (cur->name == Py_None)
        return Py_BuildValue("(Os)", cur->label, "__init__");
    return PyTuple_Pack(2, cur->label, cur->name);
}

PyDoc_STRVAR(actor_abandon_doc,
"_actor_abandon(serial)\n--\n\n"
"Give up on the actor method run `serial` (its worker is abandoned): returns\n"
"(interpreter id, reply end id or -1, label) if it was still running, else\n"
"None (it returned first: nothing was done).");

static PyObject *
fn_actor_abandon(PyObject *mod, PyObject *arg)
{
    (void)mod;
    unsigned long long serial = PyLong_AsUnsignedLongLong(arg);
    if (serial == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    mg__wait_t copy;
    if (!mg__waits_give_up_run((uint64_t)serial, "actor", "abandoned actor method", &copy))
        Py_RETURN_NONE;
    return Py_BuildValue("(LLs)", (long long)copy.interp_id, (long long)copy.reply_id,
                         copy.label);
}

PyMethodDef mg__actor_functions[] = {
    {"_actor_invoke", (PyCFunction)(void (*)(void))fn_actor_invoke, METH_FASTCALL,
     actor_invoke_doc},
    {"_actor_next", (PyCFunction)(void (*)(void))fn_actor_next, METH_FASTCALL,
     actor_next_doc},
    {"_actor_current", fn_actor_current, METH_NOARGS, actor_current_doc},
    {"_actor_abandon", fn_actor_abandon, METH_O, actor_abandon_doc},
    {NULL, NULL, 0, NULL},
};
