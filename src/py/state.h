/* state.h -- manygil._core's per-interpreter module state. */
#ifndef MG_PY_STATE_H
#define MG_PY_STATE_H

#include "py/compat.h"

typedef struct {
    PyTypeObject *send_type;        /* SendChannel */
    PyTypeObject *recv_type;        /* RecvChannel */
    PyTypeObject *queue_type;       /* Queue */
    PyTypeObject *pool_type;        /* _Pool */
    PyTypeObject *shbuf_type;       /* SharedBuffer */
} mg__state_t;

extern PyModuleDef mg__core_module;

/* The module state of manygil._core in the current interpreter (importing
 * it if needed): a borrowed pointer, or NULL with an exception. */
mg__state_t *mg__state_current(void);

/* Create the channel types into st and add them to module m.  0 or -1. */
int mg__channel_types_add(PyObject *m, mg__state_t *st);

/* Create the _Pool type into st and add it to module m.  0 or -1. */
int mg__pool_type_add(PyObject *m, mg__state_t *st);

/* Create the SharedBuffer type into st and add it to module m.  0 or -1. */
int mg__shbuf_type_add(PyObject *m, mg__state_t *st);

/* The end id of SendChannel handle o (a handle of module mod's type), or
 * -1 when o is not one.  No exception is set. */
int64_t mg__send_handle_end_id(PyObject *mod, PyObject *o);

/* The next item of RecvChannel handle o (of module mod's type), waiting as
 * long as it takes, as o.recv() does; NULL with an exception
 * (ChannelClosedError once closed and drained, TypeError for another o).
 * *undecodable = 1 when an item was taken but could not be decoded here
 * (the exception is the decoder's; the item is gone), else 0. */
PyObject *mg__recv_handle_recv(PyObject *mod, PyObject *o, int *undecodable);

/* 1 if an item waits in RecvChannel handle o's channel, 0 if none does,
 * -1 with TypeError for another o. */
int mg__recv_handle_pending(PyObject *mod, PyObject *o);

/* The module-level functions of the channel layer (NULL-terminated). */
extern PyMethodDef mg__channel_functions[];
extern PyMethodDef mg__pool_functions[];

#endif /* MG_PY_STATE_H */
