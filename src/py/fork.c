/* fork.c -- what manygil does about fork().
 *
 * The rule.  CPython 3.12 and 3.13 cannot make a child with fork() while a
 * subinterpreter exists: the child's PyOS_AfterFork_Child deletes the other
 * interpreters without a thread state and dies (3.13: "Fatal Python error:
 * PyThreadState_Get", 3.12: SIGSEGV) before any at-fork hook could run, so
 * nothing in the child can save it or word it.  Hence:
 *
 * - In the parent, while an interpreter created by manygil is alive (not
 *   yet closed, including abandoned pool workers), os.fork() and
 *   os.forkpty() -- and so multiprocessing's "fork" start method -- raise
 *   InterpreterError before forking (an audit hook: the "os.fork" event is
 *   raised before the fork happens, and a hook's exception aborts it).
 *   subprocess is not affected (its child runs no Python: it execs).
 *   Not seen: interpreters made without manygil (_interpreters), and one
 *   whose creation is under way on another thread at the very moment.
 * - With no interpreter alive the fork goes ahead (manygil starts no thread
 *   at import: the deadlock detector starts with the first wait without
 *   deadline, the Ctrl-C forwarder with the first exec from the main
 *   thread).  In the child (os.register_at_fork, single-threaded), manygil's
 *   process-global locks are made anew (a thread gone with the fork may have
 *   held one), the activity table forgets the threads that are gone, the
 *   detector and the forwarder start again on demand, and channels and
 *   queues made before the fork raise InterpreterError on any use (their
 *   other ends live in the parent: they do not cross processes).  Everything
 *   made in the child works as usual.
 *
 * The same hook refuses sys._current_frames() and sys._current_exceptions()
 * while an interpreter made by manygil is alive.  CPython 3.12 to 3.15 walk
 * the threads of every interpreter there and make frame objects, in the
 * caller's memory, for other interpreters' running frames (and hand out
 * their exception objects); the owning interpreter later frees those with its
 * own allocator and the process aborts ("free(): invalid pointer").  The
 * error names manygil.dump_stacks(), which reads every interpreter's stacks
 * safely.  (pytest-timeout's stack dump meets the refusal too: a timed-out
 * test fails with it instead of taking the process down.)
 *
 * Who may end what: nothing here ends an interpreter or a thread state; the
 * child only drops bookkeeping of threads that no longer exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/fork.h"
#include "py/watch.h"
#include "core/channel.h"
#include "core/deadlock.h"
#include "core/registry.h"
#include "core/waits.h"

/* Raise manygil.InterpreterError(msg).  Returns NULL. */
static PyObject *
raise_interpreter_error(const char *msg)
{
    PyObject *cls = mg__import_attr("manygil._errors", "InterpreterError");
    if (cls == NULL)
        return NULL;
    PyErr_SetString(cls, msg);
    Py_DECREF(cls);
    return NULL;
}

/* The number of interpreters manygil created that still exist (alive, or
 * being closed: until Py_EndInterpreter returned). */
static Py_ssize_t
live_interpreters(void)
{
    return (Py_ssize_t)mg__registry_count_existing(
        PyInterpreterState_GetID(PyInterpreterState_Main()));
}

/* The audit hook's answer to sys._current_frames()/_current_exceptions():
 * -1 with InterpreterError while interpreters are alive, else 0. */
static int
refuse_current_frames(const char *event)
{
    Py_ssize_t live = live_interpreters();
    if (live == 0)
        return 0;
    char msg[500];
    snprintf(msg, sizeof msg,
             "%s() is refused while %zd manygil interpreter%s alive: CPython makes "
             "objects for other interpreters' frames in the caller's memory there, and "
             "the process aborts when their owner frees them; manygil.dump_stacks() "
             "shows every interpreter's threads safely",
             event, live, live == 1 ? " is" : "s are");
    raise_interpreter_error(msg);
    return -1;
}

/* A runtime audit hook (PySys_AddAuditHook): refuse os.fork/os.forkpty and
 * sys._current_frames/_current_exceptions while interpreters are alive.
 * Every other event costs two strncmp. */
static int
fork_audit_hook(const char *event, PyObject *args, void *unused)
{
    (void)args; (void)unused;
    if (strncmp(event, "sys._current_", 13) == 0) {
        if (strcmp(event, "sys._current_frames") != 0
                && strcmp(event, "sys._current_exceptions") != 0)
            return 0;
        return refuse_current_frames(event);
    }
    if (strncmp(event, "os.fork", 7) != 0
            || (strcmp(event, "os.fork") != 0 && strcmp(event, "os.forkpty") != 0))
        return 0;
    Py_ssize_t live = live_interpreters();
    if (live == 0)
        return 0;
    char msg[400];
    snprintf(msg, sizeof msg,
             "cannot fork() while %zd manygil interpreter%s alive: interpreters do not "
             "survive fork() (CPython's child would die at once); close them first "
             "(or shut down the pool), or use subprocess or multiprocessing's "
             "'spawn' or 'forkserver' start method",
             live, live == 1 ? " is" : "s are");
    raise_interpreter_error(msg);
    return -1;
}

static int hook_added;              /* guarded by the main interpreter's GIL */

PyDoc_STRVAR(fork_init_doc,
"_fork_init()\n--\n\n"
"Called once by the package in the main interpreter: refuse fork() while\n"
"interpreters are alive (see fork.c).");

static PyObject *
fn_fork_init(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    if (!hook_added) {
        if (PySys_AddAuditHook(fork_audit_hook, NULL) < 0)
            return NULL;
        hook_added = 1;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(after_fork_child_doc,
"_after_fork_child()\n--\n\n"
"os.register_at_fork(after_in_child=...) in the main interpreter: make\n"
"manygil's process-global state fit for a single-threaded child.");

static PyObject *
fn_after_fork_child(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    unsigned long self = PyThread_get_thread_ident();
    mg__registry_after_fork_child();
    mg__channels_after_fork_child();
    mg__waits_after_fork_child(self);
    mg__deadlock_after_fork_child();
    mg__sigint_after_fork_child();
    if (mg__sigint_ready())
        mg__sigint_init(self, PyInterpreterState_GetID(PyInterpreterState_Main()));
    Py_RETURN_NONE;
}

PyObject *
mg__raise_inherited(void)
{
    return raise_interpreter_error(
        "this channel was created before fork() and belongs to the parent process: "
        "manygil channels and queues do not survive fork(); create new ones in the child");
}

PyMethodDef mg__fork_functions[] = {
    {"_fork_init", fn_fork_init, METH_NOARGS, fork_init_doc},
    {"_after_fork_child", fn_after_fork_child, METH_NOARGS, after_fork_child_doc},
    {NULL, NULL, 0, NULL},
};
