/* errors.h -- turning MG_E* codes into Python exceptions. */
#ifndef MG_PY_ERRORS_H
#define MG_PY_ERRORS_H

#include "py/compat.h"

/* Set the Python exception that matches MG_E* code `err`, with `detail`
 * (may be NULL) appended to the code's message.  The exception classes are
 * manygil's (InterpreterError and friends) where one fits.  Always returns
 * NULL so callers can `return mg__raise(...)`.  The one place where codes
 * become exceptions. */
PyObject *mg__raise_in(int context, int err, const char *detail_fmt, ...);

/* Contexts change which class a code maps to: a queue's get/put raise
 * QueueEmpty/QueueFull (as queue.Queue does) where a channel raises
 * ChannelEmptyError/ChannelFullError/ChannelTimeoutError; looking a queue
 * up by id raises QueueNotFoundError where a channel's is
 * ChannelNotFoundError. */
enum { MG__CTX_DEFAULT = 0, MG__CTX_QUEUE_GET = 1, MG__CTX_QUEUE_PUT = 2, MG__CTX_QUEUE_FIND = 3 };

#define mg__raise(err, ...) mg__raise_in(MG__CTX_DEFAULT, (err), __VA_ARGS__)

#endif /* MG_PY_ERRORS_H */
