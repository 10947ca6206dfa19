/* pool_workers.h -- what src/py/pool.c (workers, the _Pool type) and
 * src/py/pool_limits.c (interrupting, abandoning and replacing workers)
 * share.  Internal to src/py. */
#ifndef MG_PY_POOL_WORKERS_H
#define MG_PY_POOL_WORKERS_H

#include <pthread.h>
#include "py/compat.h"
#include "core/buf.h"
#include "core/registry.h"
#include "core/pool.h"
#include "core/sync.h"
#include "core/waits.h"

/* One worker thread.  Joining waits on workers_t.changed for `exited`
 * (or `abandoned`), then reaps exited threads with pthread_join (quick: they
 * are returning).  Replacements for abandoned workers take new slots. */
typedef struct {
    pthread_t thread;           /* guarded by workers_t.mu */
    int exited;                 /* guarded by workers_t.mu: its interpreter is ended and
                                 * the thread will not touch Python again */
    int reaped;                 /* guarded by workers_t.mu: pthread_join taken on by a joiner */
    int abandoned;              /* guarded by workers_t.mu: given up on and detached, never
                                 * waited for */
    int64_t interp_id;          /* atomic: the worker's interpreter, or -1 */
    unsigned long ident;        /* atomic: the worker thread's ident */
    uint64_t seq;               /* atomic: the task it runs */
    int busy;                   /* atomic: 1 while task seq's own code runs (its interrupt window) */
    int64_t started_ns;         /* atomic: when task seq started */
    int interrupted;            /* atomic: MG__IRQ_* asked for task seq */
    mg__task_t *task;           /* guarded by workers_t.mu: the task it runs, or NULL */
    mg__wait_t *run;            /* guarded by workers_t.mu: its activity record, or NULL */
    mg__interp_t *rec;          /* guarded by workers_t.mu: its interpreter's registry pin */
} slot_t;

enum { MG__IRQ_TIMEOUT = 1, MG__IRQ_CANCEL = 2 };

/* What the workers share (process-global; no PyObject). */
typedef struct workers_s {
    mg__pool_t *q;              /* immutable */
    int nworkers;               /* immutable */
    slot_t *slots;              /* immutable array of cap slots */
    int cap;                    /* immutable */
    int nstarted;               /* guarded by mu: slots in use */
    mg__buf_t path;             /* immutable: encoded sys.path */
    mg__buf_t init;             /* immutable: encoded (fn, args), or empty */
    int64_t max_tasks;          /* immutable; 0 = unlimited */
    char name[16];              /* immutable: worker thread name (OS limit: 15 chars) */
    mg__mutex_t mu;
    mg__cond_t changed;         /* with mu: a worker exited or was abandoned */
    mg__buf_t broken_info;      /* guarded by mu: why the pool broke */
    const char *start_error;    /* guarded by mu: CPython's static message when a
                                   worker's interpreter could not be created */
    int refs;                   /* atomic */
    struct workers_s *live_prev, *live_next;    /* guarded by pool.c's live list lock */
} workers_t;

typedef struct {
    PyObject_HEAD
    workers_t *w;
} pool_t;

/* _core._join_all_pools(): at exit, shut down every pool that still has
 * workers -- also one whose Python object is already gone or being
 * deallocated on another thread -- and wait for its workers (queued tasks
 * run first; abandoned workers are not waited for). */
PyObject *mg__join_all_pools(PyObject *mod, PyObject *unused);

/* Drop a reference to w (the pool object and each worker hold one). */
void mg__workers_decref(workers_t *w);

/* Start a worker in the next free slot (w->mu held).  0, or -1 when out of
 * slots or threads. */
int mg__start_worker_locked(workers_t *w);

/* (pool_limits.c; the rule at its top says who ends what.)  Remember the
 * interpreter of an abandoned worker (w->mu held): its thread and its
 * registry pin. */
void mg__stuck_add(int64_t id, unsigned long ident, mg__interp_t *rec);

/* The abandoned worker of interpreter id, its task returned (GIL held):
 * 1 if it may end its interpreter itself (then call mg__stuck_done after),
 * 0 if exit has taken the interpreter over: then release the GIL and call
 * mg__stuck_block_forever, touching nothing else. */
int mg__stuck_claim(int64_t id);
void mg__stuck_done(int64_t id);

/* Block the calling thread for ever (it holds no GIL). */
void mg__stuck_block_forever(void);

/* _Pool.running(), .interrupt(seq, cancel), .abandon(seq) (pool_limits.c). */
PyObject *mg__pool_running(PyObject *op, PyObject *unused);
PyObject *mg__pool_interrupt(PyObject *op, PyObject *args);
PyObject *mg__pool_abandon_task(PyObject *op, PyObject *arg);

#endif /* MG_PY_POOL_WORKERS_H */
