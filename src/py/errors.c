/* errors.c -- the one function that turns MG_E* codes into exceptions. */
#include <stdarg.h>
#include "manygil.h"
#include "py/errors.h"
#include "py/codec.h"

/* The manygil exception class for err, as a new reference; NULL if the code
 * maps to a builtin exception (returned through *builtin). */
static PyObject *
error_class(int context, int err, PyObject **builtin)
{
    const char *name = NULL;
    *builtin = NULL;
    if (context == MG__CTX_QUEUE_GET && (err == MG_EEMPTY || err == MG_ETIMEDOUT))
        return mg__import_attr("manygil._errors", "QueueEmpty");
    if (context == MG__CTX_QUEUE_PUT && (err == MG_EFULL || err == MG_ETIMEDOUT))
        return mg__import_attr("manygil._errors", "QueueFull");
    if (context == MG__CTX_QUEUE_FIND && err == MG_ECHNOTFOUND)
        return mg__import_attr("manygil._errors", "QueueNotFoundError");
    switch (err) {
    case MG_ENOTFOUND:
        name = "InterpreterNotFoundError";
        break;
    case MG_ERUNNING:
    case MG_EMAININTERP:
    case MG_ECREATE:
        name = "InterpreterError";
        break;
    case MG_ESHUTDOWN:
        *builtin = PyExc_RuntimeError;
        return NULL;
    case MG_EEXEC:
        name = "ExecutionFailed";
        break;
    case MG_ETOODEEP:
    case MG_EUNSHAREABLE:
        name = "NotShareableError";
        break;
    case MG_ECHNOTFOUND:
        name = "ChannelNotFoundError";
        break;
    case MG_ECHCLOSED:
        name = "ChannelClosedError";
        break;
    case MG_EEMPTY:
        name = "ChannelEmptyError";
        break;
    case MG_EFULL:
        name = "ChannelFullError";
        break;
    case MG_ETIMEDOUT:
        name = "ChannelTimeoutError";
        break;
    case MG_EBROKEN:
        return mg__import_attr("manygil._pool", "BrokenInterpreterPool");
    case MG_EINVAL:
    case MG_ECORRUPT:
    case MG_EWRONGEND:
        *builtin = PyExc_ValueError;
        return NULL;
    default:
        *builtin = PyExc_RuntimeError;
        return NULL;
    }
    return mg__import_attr("manygil._errors", name);
}

PyObject *
mg__raise_in(int context, int err, const char *detail_fmt, ...)
{
    if (err == MG_ENOMEM)
        return PyErr_NoMemory();
    PyObject *builtin, *cls = error_class(context, err, &builtin);
    if (cls == NULL && builtin == NULL)
        return NULL;                /* import failed: that error stands */
    PyObject *msg;
    if (detail_fmt != NULL) {
        va_list va;
        va_start(va, detail_fmt);
        PyObject *detail = PyUnicode_FromFormatV(detail_fmt, va);
        va_end(va);
        msg = detail ? PyUnicode_FromFormat("%U: %s", detail, mg_strerror(err)) : NULL;
        Py_XDECREF(detail);
    }
    else {
        msg = PyUnicode_FromString(mg_strerror(err));
    }
    if (msg != NULL)
        PyErr_SetObject(cls ? cls : builtin, msg);
    Py_XDECREF(msg);
    Py_XDECREF(cls);
    return NULL;
}
