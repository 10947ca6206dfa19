/* capi.c -- the table of include/manygil.h that an installed manygil hands
 * to hosts, as the capsule manygil._core._C_API (mg_import() fetches it). */
#include "py/host.h"

const mg_capi_t mg__capi = {
    .version = MG_CAPI_VERSION,
    .size = sizeof(mg_capi_t),
    .strerror = mg_strerror,
    .err_name = mg_err_name,
    .interp_create = mg_interp_create,
    .interp_exec = mg_interp_exec,
    .interp_close = mg_interp_close,
    .interp_is_running = mg_interp_is_running,
    .interp_interrupt = mg_interp_interrupt,
    .thread_interp = mg_thread_interp,
    .thread_release = mg_thread_release,
    .iset_new = mg_iset_new,
    .iset_acquire = mg_iset_acquire,
    .iset_release = mg_iset_release,
    .iset_free = mg_iset_free,
    .func_from_name = mg_func_from_name,
    .func_from_source = mg_func_from_source,
    .func_from_object = mg_func_from_object,
    .func_set_initializer = mg_func_set_initializer,
    .func_free = mg_func_free,
    .call_batch = mg_call_batch,
    .error_clear = mg_error_clear,
};

/* Add the capsule to the module (any interpreter's _core).  0 or -1. */
int
mg__capi_add(PyObject *mod)
{
    PyObject *cap = PyCapsule_New((void *)&mg__capi, MG_CAPI_NAME, NULL);
    if (cap == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(mod, "_C_API", cap);
    Py_DECREF(cap);
    return rc;
}
