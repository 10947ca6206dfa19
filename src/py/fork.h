/* fork.h -- fork() while manygil is loaded (see fork.c for the rule). */
#ifndef MG_PY_FORK_H
#define MG_PY_FORK_H

#include "py/compat.h"

/* _fork_init and _after_fork_child, added to the module by module.c. */
extern PyMethodDef mg__fork_functions[];

/* Raise InterpreterError for a channel or queue made before the fork()
 * that made this process.  Always NULL. */
PyObject *mg__raise_inherited(void);

#endif /* MG_PY_FORK_H */
