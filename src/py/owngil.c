/* owngil.c -- which extension module a type comes from, and whether that
 * module can be imported in an own-GIL interpreter.
 *
 * Read-only questions about the running process, asked once per type by
 * manygil._owngil (which caches the answers): nothing here is imported or
 * tried in another interpreter.  The import system's rule (PEP 489, PEP
 * 684): an extension loads in an own-GIL interpreter only if it uses
 * multi-phase init and declares Py_mod_multiple_interpreters =
 * Py_MOD_PER_INTERPRETER_GIL_SUPPORTED; single-phase modules (m_slots NULL)
 * and multi-phase ones without that slot value are refused there (manygil's
 * interpreters set check_multi_interp_extensions).
 */
#include "py/compat.h"
#include "py/owngil.h"
#include <dlfcn.h>

/* The shared object (path) that holds a static type's storage, or None
 * when it is the interpreter's own (libpython or the executable) or
 * unknown.  dladdr maps the type object's address to the loaded file. */
static PyObject *
static_type_file(PyTypeObject *tp)
{
    Dl_info mine, core;
    if (!dladdr((void *)tp, &mine) || mine.dli_fname == NULL)
        Py_RETURN_NONE;
    if (dladdr((void *)&PyType_Type, &core) && core.dli_fbase == mine.dli_fbase)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(mine.dli_fname);
}

PyObject *
mg__type_home(PyObject *mod, PyObject *arg)
{
    (void)mod;
    if (!PyType_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_type_home() needs a type");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)arg;
    if (!(PyType_GetFlags(tp) & Py_TPFLAGS_HEAPTYPE))
        return static_type_file(tp);
    PyObject *home = PyType_GetModule(tp);  /* borrowed; TypeError if none */
    if (home == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return Py_NewRef(home);
}

PyObject *
mg__module_gil_support(PyObject *mod, PyObject *arg)
{
    (void)mod;
    if (!PyModule_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_module_gil_support() needs a module");
        return NULL;
    }
    PyModuleDef *def = PyModule_GetDef(arg);
    if (def == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;                     /* not made from a module def */
    }
    if (def->m_slots == NULL)
        return PyUnicode_FromString("single-phase");
    for (PyModuleDef_Slot *s = def->m_slots; s->slot != 0; s++) {
        if (s->slot == Py_mod_multiple_interpreters) {
            if (s->value == Py_MOD_PER_INTERPRETER_GIL_SUPPORTED)
                return PyUnicode_FromString("per-interpreter-gil");
            if (s->value == Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED)
                return PyUnicode_FromString("shared-gil-only");
            return PyUnicode_FromString("main-only");
        }
    }
    return PyUnicode_FromString("shared-gil-only");  /* the slot's default */
}
