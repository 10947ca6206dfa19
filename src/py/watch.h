/* watch.h -- diagnostics shared with the rest of src/py (watch.c, interrupt.c). */
#ifndef MG_PY_WATCH_H
#define MG_PY_WATCH_H

#include <stdint.h>
#include "py/compat.h"

/* Interrupt thread `ident` running in interpreter `interp` by raising the
 * builtins exception class named `exc` at its next bytecode boundary, from
 * a new detached thread (the caller does not wait).  0 or MG_ENOMEM. */
int mg__interrupt_async(int64_t interp, unsigned long ident, const char *exc);

/* Raise the built-in exception named `name` in every thread but `self`
 * running exec/call (with `what`: runs of that kind) in interpreter id,
 * or only in thread `only` unless it is 0.  0 with *count, or MG_E*. */
int mg__interrupt_runs(int64_t id, const char *name, const char *what, unsigned long only,
                       unsigned long self, int *count);

/* A counter that moves whenever an interrupt is sent: a call that sees it
 * move while it ran clears any interrupt left pending for its thread. */
uint64_t mg__interrupts_sent(void);

/* In the current interpreter: make threads started from now on (by
 * _thread or threading) known to the deadlock detector.  0 or -1 with an
 * exception. */
int mg__track_threads(void);

/* (interrupt.c) _core._interrupt, _core._interrupt_run and their docstrings. */
PyObject *mg__fn_interrupt(PyObject *mod, PyObject *args, PyObject *kwds);
extern const char mg__interrupt_doc[];
PyObject *mg__fn_interrupt_run(PyObject *mod, PyObject *args);
extern const char mg__interrupt_run_doc[];

/* (interrupt.c) Ctrl-C forwarding: remember the main thread and the main
 * interpreter (once); whether that was done. */
void mg__sigint_init(unsigned long main_ident, int64_t main_id);
int mg__sigint_ready(void);
/* In the child of fork(): forget the parent's Ctrl-C forwarder (fork.c). */
void mg__sigint_after_fork_child(void);

/* _core's diagnostic functions (_interrupt, _activity, _configure...). */
extern PyMethodDef mg__watch_functions[];

#endif /* MG_PY_WATCH_H */
