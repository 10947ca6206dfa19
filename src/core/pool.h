/* pool.h -- the task queue of a pool of interpreter workers (process-global).
 *
 * Submitters (any thread, with or without a GIL) push tasks; worker threads
 * take them in FIFO order, run them in their interpreters and hand them
 * back finished; a collector takes finished tasks in batches.  The core
 * knows nothing of Python: a task's payload and result are encodings.
 *
 *   submit -> queued --next_task--> running --finish--> finished --collect-->
 *            \--cancel / shutdown(cancel) / broken--> finished (status set)
 */
#ifndef MG_CORE_POOL_H
#define MG_CORE_POOL_H

#include <stdint.h>
#include "core/buf.h"

enum { MG__TASK_CALL = 1, MG__TASK_MAP = 2 };
enum { MG__TASK_OK = 0, MG__TASK_RAISED = 1 };  /* or a negative MG_E* code */

typedef struct mg__task {
    struct mg__task *next;      /* guarded by the pool's mutex while queued */
    uint64_t seq;               /* the submitter's name for it */
    int kind;                   /* MG__TASK_CALL or MG__TASK_MAP */
    int status;                 /* set by the worker (or cancel/broken) */
    int64_t elapsed_ns;         /* run time in the worker */
    int abandoned;              /* guarded by the pool's mutex: see mg__pool_abandon */
    mg__buf_t payload;          /* input */
    mg__buf_t result;           /* output: a value, or exception info */
} mg__task_t;

typedef struct mg__pool mg__pool_t;

/* A new task owning *payload (moved in).  NULL on ENOMEM (payload kept). */
mg__task_t *mg__task_new(uint64_t seq, int kind, mg__buf_t *payload);
void mg__task_free(mg__task_t *t);

/* Free a list of tasks linked by next. */
void mg__task_free_list(mg__task_t *t);

/* A new pool queue; *out gets a reference.  0 or MG_ENOMEM. */
int mg__pool_new(mg__pool_t **out);
void mg__pool_incref(mg__pool_t *p);
void mg__pool_decref(mg__pool_t *p);

/* Queue t (ownership passes to the pool).  0, MG_ESHUTDOWN or MG_EBROKEN
 * (then the caller keeps t). */
int mg__pool_submit(mg__pool_t *p, mg__task_t *t);

/* Worker: the next task, waiting for one (spinning briefly first).  NULL
 * once the pool is shut down and its queue is empty, or broken. */
mg__task_t *mg__pool_next_task(mg__pool_t *p);

/* Worker: hand back a task with status/result set. */
void mg__pool_finish(mg__pool_t *p, mg__task_t *t);

/* The task t, taken by a worker that is being given up on, no longer
 * counts as running; when (if ever) the worker finishes it, it is freed
 * instead of collected.  Call before the worker's mg__pool_finish (the
 * caller makes sure t is still running). */
void mg__pool_abandon(mg__pool_t *p, mg__task_t *t);

/* Collector: take every finished task (a list linked by next, oldest
 * first), waiting until there is one or the deadline passes (-1: no
 * deadline; 0: no wait) or the pool has no more to give (shut down, queue
 * empty, no task running) or mg__pool_nudge() was called since the last
 * collect returned.  Returns the list, or NULL; *nudged is set to 1 when
 * a nudge ended the wait (and to 0 otherwise). */
mg__task_t *mg__pool_collect(mg__pool_t *p, int64_t deadline_ns, int *nudged);

/* Make a collect that is waiting (or the next one) return at once. */
void mg__pool_nudge(mg__pool_t *p);

/* Remove the queued task `seq` (not yet taken by a worker) and finish it
 * as MG_ECANCELLED.  1 if it was queued, 0 if not. */
int mg__pool_cancel(mg__pool_t *p, uint64_t seq);

/* Refuse new tasks; with cancel_pending, finish the queued ones as
 * MG_ECANCELLED.  Workers exit once the queue is empty.  Idempotent. */
void mg__pool_shutdown(mg__pool_t *p, int cancel_pending);

/* Mark the pool broken: queued and future tasks finish as MG_EBROKEN;
 * workers exit.  Idempotent. */
void mg__pool_set_broken(mg__pool_t *p);

/* Tasks queued, running (taken, not finished), and whether shut down. */
void mg__pool_stats(mg__pool_t *p, int64_t *queued, int64_t *running, int *shutdown,
                    int *broken);

#endif /* MG_CORE_POOL_H */
