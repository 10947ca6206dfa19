/* owngil.h -- where a type comes from; whether an extension module loads in
 * an own-GIL interpreter (see owngil.c). */
#ifndef MG_PY_OWNGIL_H
#define MG_PY_OWNGIL_H
#include "py/compat.h"

/* _core._type_home(tp): for a static type, the path of the shared object
 * that holds it (None for CPython's own types); for a heap type made with
 * PyType_FromModuleAndSpec, its module; else None. */
PyObject *mg__type_home(PyObject *mod, PyObject *tp);

/* _core._module_gil_support(module): None if the module was not made from a
 * C module def; else "per-interpreter-gil" (loads in own-GIL interpreters),
 * "shared-gil-only", "main-only" or "single-phase" (all three refused). */
PyObject *mg__module_gil_support(PyObject *mod, PyObject *module);

#endif
