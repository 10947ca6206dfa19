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
    PyObject *label = args[0], *obj = args[2], *name = args[3], *fargs = args[4],
             *kwargs = args[5];
    if (!PyUnicode_Check(label))
        return PyErr_Format(PyExc_TypeError, "_actor_invoke(): label must be a str");
    long long aid = PyLong_AsLongLong(args[1]);
    if (aid == -1 && PyErr_Occurred())
        return NULL;
    if (name != Py_None && !PyUnicode_Check(name))
        return PyErr_Format(PyExc_TypeError, "_actor_invoke(): name must be a str or None");
    if (!PyTuple_Check(fargs))
        return PyErr_Format(PyExc_TypeError, "_actor_invoke(): args must be a tuple");
    if (kwargs != Py_None && !PyDict_Check(kwargs))
        return PyErr_Format(PyExc_TypeError, "_actor_invoke(): kwargs must be a dict or None");
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
        .reply_id = mg__send_handle_end_id(mod, args[6]),
    };
    put_label(run.label, sizeof run.label, ls, llen, ns, nlen);
    mg__waits_add(&run);
    mg__user_code_t uc = {
        .serial = run.serial,
        .interp_id = run.interp_id,
        .thread_ident = run.thread_ident,
    };
    PyObject *res = NULL;
    if (mg__irq_user_code_enter(&uc) == 0)      /* interrupts land only here */
        res = PyObject_Call(fn, fargs, kwargs == Py_None ? NULL : kwargs);
    mg__irq_user_code_leave_run(&uc, 1);
    mg__waits_remove(&run);
    Py_DECREF(fn);
    if (run.broken) {           /* abandoned meanwhile: the system answered the call */
        Py_XDECREF(res);
        PyErr_Clear();
        PyErr_SetString(PyExc_SystemExit, "manygil: this actor worker was abandoned");
        return NULL;
    }
    return res;
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
    {"_actor_abandon", fn_actor_abandon, METH_O, actor_abandon_doc},
    {NULL, NULL, 0, NULL},
};
