/* interp.h -- interpreter lifecycle, thread states and switching. */
#ifndef MG_PY_INTERP_H
#define MG_PY_INTERP_H

#include "py/compat.h"
#include "core/buf.h"
#include "core/registry.h"

/* A function run inside a target interpreter (its GIL held).  Returns 0 with
 * the encoded result in `out`, -1 with a Python exception set (it is then
 * captured into `out` as exception info), or another negative MG_E* code
 * with no exception set (passed through to the caller). */
typedef int (*mg__runfn_t)(void *arg, mg__buf_t *out);

/* Parse an interpreter id (an int): 0, or -1 with TypeError ("interpreter
 * id must be an int") or OverflowError.  The one parser of every call that
 * takes an interpreter id. */
int mg__interp_id_from_object(PyObject *o, int64_t *id);

/* Register the main interpreter and install the thread-exit hook.  Called
 * by the module in the main interpreter.  0 or MG_E*. */
int mg__interp_init_main(void);

/* Create an isolated own-GIL interpreter with a copy of the current
 * interpreter's sys.path and store its id.  Call with the current thread
 * holding a GIL.  0, or a negative code with *why (a static string, may be
 * NULL) saying what CPython reported; no Python exception is left set. */
int mg__interp_create(int64_t *id, const char **why);

/* Close interpreter id (see mg__registry_begin_close for the codes).  The
 * calling thread may hold a GIL (released while it works) or not. */
int mg__interp_close(int64_t id);

/* Right before Py_EndInterpreter(ts), ts current: on 3.12, let threading's
 * _shutdown find its main thread's lock held even when the thread state that
 * imported threading is gone (no-op elsewhere; never fails). */
void mg__threading_keep_main(void);

/* Run fn(arg, out) in interpreter id from any thread.  The caller's GIL (if
 * any) is released meanwhile.  Returns 0 with *raised = 0 and the encoded
 * result in out, 0 with *raised = 1 and encoded exception info in out, or a
 * negative MG_E* code (nothing ran or fn passed a code through). */
int mg__interp_run(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out,
                   int *raised);

/* mg__interp_run recorded in the activity table as a run named `what`
 * ("exec", "call"...: a static string; NULL records nothing), so the
 * watchdog, interrupts and the deadlock detector see it.  When the main
 * thread runs code in another interpreter this way, Ctrl-C interrupts that
 * code (see mg__sigint_enter). */
int mg__interp_run_as(int64_t id, const char *what, mg__runfn_t fn, void *arg,
                      mg__buf_t *out, int *raised);

/* mg__interp_run as a brief visit that runs no user code (an interrupt, a
 * stack dump): it does not count as running code there (is_running, close),
 * and a close waits for it to leave instead of failing. */
int mg__interp_visit(int64_t id, mg__runfn_t fn, void *arg, mg__buf_t *out, int *raised);

/* At process exit, from the main interpreter: end interpreter id even if
 * threads still run in it (see rule 3 in interp.c).  Threads running
 * Python code there are parked for good (each after deleting its own thread
 * state); the interpreter is then ended.  0, MG_ENOTFOUND, MG_EMAININTERP,
 * MG_ENOMEM. */
int mg__interp_end_at_exit(int64_t id);

/* The process is exiting: from now on mg__exit_gate parks threads. */
void mg__interp_exit_begin(void);

/* 1 once mg__interp_exit_begin was called (the main thread has finished the
 * program and manygil's exit hook runs), else 0. */
int mg__interp_exit_started(void);

/* Call with no GIL held, before re-attaching to interpreter interp_id after
 * a blocking wait: once mg__interp_end_at_exit has begun, a thread coming
 * back to any interpreter but the main one never returns (it is parked for
 * ever: its interpreter is being or has been ended). */
void mg__exit_gate(int64_t interp_id);

/* Clear and delete every thread state of interp but keep (attached: the
 * caller holds interp's GIL).  Only states that are not bound to a running
 * thread, or of threads that will never touch them again (rule 3). */
void mg__delete_other_tstates(PyInterpreterState *interp, PyThreadState *keep);

/* The window of a run (mg__interp_run_as with a `what`) in which it runs
 * the user's code: interrupts land only there, never in manygil's own
 * decoding and importing around it (an exception raised into importlib
 * can leave a module lock held for good).  Nodes live on the caller's
 * stack, in a list of interrupt.c's. */
typedef struct mg__user_code {
    uint64_t serial;            /* the run, 0 if not in one */
    int64_t interp_id;
    unsigned long thread_ident;
    uint64_t sent;              /* mg__interrupts_sent() as the window opened */
    struct mg__user_code *next; /* guarded by interrupt.c's mutex */
} mg__user_code_t;

/* In the target, holding its GIL, just before running the user's code:
 * open the window.  Returns 0, or -1 with the exception of an interrupt
 * that came before the window opened set (then do not run the code, but
 * still call mg__user_code_leave). */
int mg__user_code_enter(mg__user_code_t *uc);

/* Close the window (holding the same GIL): an interrupt that arrived but
 * has not fired yet is dropped. */
void mg__user_code_leave(mg__user_code_t *uc);

/* (interrupt.c) the same, on its lists; and forget what is kept for run
 * `serial` once it ended. */
int mg__irq_user_code_enter(mg__user_code_t *uc);
void mg__irq_user_code_leave(mg__user_code_t *uc);
/* The same, and (forget != 0) mg__irq_forget(uc->serial), under one lock:
 * for a window that is its run's only one (an actor's method). */
void mg__irq_user_code_leave_run(mg__user_code_t *uc, int forget);
void mg__irq_forget(uint64_t serial);

/* (watch.c) If the calling thread is the main thread of the main
 * interpreter and `id` is another interpreter, arrange for SIGINT to
 * interrupt the code it is about to run there and return 1 (then call
 * mg__sigint_leave afterwards); else 0. */
int mg__sigint_enter(int64_t id);
void mg__sigint_leave(void);

/* Bracket Py_NewInterpreterFromConfig / Py_EndInterpreter (and the new
 * interpreter's bootstrap) on CPython versions that cannot create or end
 * two interpreters at once (MG__SERIALIZE_LIFECYCLE); no-ops elsewhere.
 * The lock is taken with no GIL held: mg__lifecycle_lock releases the
 * caller's GIL (if any) while it waits. */
void mg__lifecycle_lock(void);
void mg__lifecycle_unlock(void);

/* The configuration of every manygil interpreter: isolated, own GIL, no
 * fork/exec, no daemon threads, only extensions that support it. */
PyInterpreterConfig mg__isolated_config(void);

/* In a new interpreter: set sys.path from an encoded list and install the
 * import hint for extensions that cannot load.  0 or -1 with an exception. */
int mg__interp_bootstrap(const mg__buf_t *path);

/* Move the exception set in this interpreter into `out` as encoded info:
 * (name, qualname, module, msg, formatted traceback, pickled or None).
 * Clears the exception.  0 or MG_ENOMEM. */
int mg__capture_exception(mg__buf_t *out);

#endif /* MG_PY_INTERP_H */
