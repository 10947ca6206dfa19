/* awatch.h -- the private functions manygil._asyncio builds on: notifiers
 * (a descriptor per event loop) and async watches on channel ends. */
#ifndef MG_PY_AWATCH_H
#define MG_PY_AWATCH_H

#include "py/compat.h"
#include "core/channel.h"

/* If obj is a SendChannel, RecvChannel or Queue, set *ch (borrowed) and
 * *end and return 1; else 0.  (Defined in channel.c.) */
int mg__channel_handle_get(PyObject *obj, mg__channel_t **ch, int *end);

extern PyMethodDef mg__awatch_functions[];

#endif /* MG_PY_AWATCH_H */
