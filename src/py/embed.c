/* embed.c -- the public C API of include/manygil.h (mg_interp_*). */
#include "manygil.h"
#include "py/compat.h"
#include "py/interp.h"
#include "py/watch.h"

int
mg_interp_create(int64_t *id)
{
    if (id == NULL)
        return MG_EINVAL;
    if (!Py_IsInitialized())
        return MG_ENOTINIT;
    /* Creating needs a thread state of some interpreter: borrow the main
     * interpreter's for a native thread that has none (refused while the
     * main interpreter finalizes: compat.h, mg__main_attach). */
    int attach = mg__tstate_current() == NULL;
    mg__main_attach_t main;
    if (attach && mg__main_attach(&main) < 0)
        return MG_ESHUTDOWN;
    const char *why;
    int rc = mg__interp_init_main();
    if (rc == 0)
        rc = mg__interp_create(id, &why);
    if (attach)
        mg__main_detach(&main);
    return rc;
}

/* In the target: run NUL-terminated source in __main__; on an exception
 * print it to the interpreter's sys.stderr and report MG_EEXEC. */
static int
exec_source(void *arg, mg__buf_t *out)
{
    (void)out;
    const char *src = arg;
    PyObject *main = mg__main_module();
    PyObject *res = NULL;
    if (main != NULL) {
        PyObject *ns = PyModule_GetDict(main);
        mg__user_code_t uc;
        if (mg__user_code_enter(&uc) == 0)      /* interrupts land only here */
            res = PyRun_String(src, Py_file_input, ns, ns);
        mg__user_code_leave(&uc);
        Py_DECREF(main);
    }
    if (res == NULL) {
        PyObject *exc = PyErr_GetRaisedException();
        if (exc != NULL) {
            PyErr_DisplayException(exc);
            Py_DECREF(exc);
        }
        return MG_EEXEC;
    }
    Py_DECREF(res);
    return 0;
}

int
mg_interp_exec(int64_t id, const char *code)
{
    if (code == NULL)
        return MG_EINVAL;
    if (!Py_IsInitialized())
        return MG_ENOTINIT;
    mg__buf_t out = MG__BUF_INIT;
    int raised;
    int rc = mg__interp_run_as(id, "exec", exec_source, (void *)code, &out, &raised);
    mg__buf_free(&out);
    return rc;
}

int
mg_interp_close(int64_t id)
{
    if (!Py_IsInitialized())
        return MG_ENOTINIT;
    return mg__interp_close(id);
}

int
mg_interp_is_running(int64_t id)
{
    return mg__registry_is_running(id);
}

int
mg_interp_interrupt(int64_t id)
{
    int known = mg__registry_is_running(id);
    if (known < 0)
        return known;
    int count;
    int rc = mg__interrupt_runs(id, "KeyboardInterrupt", NULL, 0, 0, &count);
    return rc ? rc : count;
}
