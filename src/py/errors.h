/* errors.h -- turning MG_E* codes into Python exceptions. */
#ifndef MG_PY_ERRORS_H
#define MG_PY_ERRORS_H

#include "py/compat.h"

/* Set the Python exception that matches MG_E* code `err`, with `detail`
 * (may be NULL) appended to the code's message.  The exception classes are
 * manygil's (InterpreterError and friends) where one fits.  Always returns
 * NULL so callers can `return mg__raise(...)`.  The one place where codes
 * become exceptions. */
PyObject *mg__raise(int err, const char *detail_fmt, ...);

#endif /* MG_PY_ERRORS_H */
