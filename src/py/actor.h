/* actor.h -- _core's functions for actor workers (actor.c). */
#ifndef MG_PY_ACTOR_H
#define MG_PY_ACTOR_H

#include "py/compat.h"

/* _actor_invoke: run one actor method as a run record of its own. */
extern PyMethodDef mg__actor_functions[];

#endif /* MG_PY_ACTOR_H */
