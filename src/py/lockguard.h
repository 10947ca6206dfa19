/* lockguard.h -- run a call so that an exception (Ctrl-C) cannot leave this
 * thread holding an RLock (see lockguard.c). */
#ifndef MG_PY_LOCKGUARD_H
#define MG_PY_LOCKGUARD_H

#include "py/compat.h"

/* _locked_call, added to the module by module.c. */
extern PyMethodDef mg__lockguard_functions[];

#endif /* MG_PY_LOCKGUARD_H */
