/* registry.h -- the process-global table of interpreters manygil drives,
 * and the per-(thread, interpreter) thread-state cache.
 *
 * The registry never touches CPython: interpreters and thread states are
 * opaque pointers here (the src/py layer owns what they point to).  It
 * provides the lifecycle state machine:
 *
 *   add -> ALIVE --begin_close--> CLOSING --end_close--> (removed)
 *
 * A thread that runs code in an interpreter brackets it with enter/leave;
 * `running` counts such threads and close refuses while it is non-zero.
 * A brief visit that runs no user code (an interrupt, a stack dump) is
 * bracketed with visit/unvisit instead: close waits for it to end.
 * Thread states cached for (thread, interpreter) pairs are handed back to
 * their owner on enter, collected by begin_close so the closer can delete
 * them, and deleted by a thread-exit hook when their thread ends.
 */
#ifndef MG_CORE_REGISTRY_H
#define MG_CORE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg__interp mg__interp_t;

/* Called (with no GIL held) when a thread that cached `tstate` for
 * `py_interp` exits: it must attach, clear and delete the thread state. */
typedef void (*mg__tstate_deleter_t)(void *py_interp, void *tstate);

/* Install the thread-exit deleter (once, at module load). */
void mg__registry_set_deleter(mg__tstate_deleter_t fn);

/* In the child of fork(), single-threaded: make the registry's lock anew (a
 * thread gone with the fork may have held it).  Only valid while no
 * interpreter but the main one exists (fork.c refuses fork() otherwise). */
void mg__registry_after_fork_child(void);

/* Tell the registry that Python has been finalized: thread-exit hooks then
 * free their bookkeeping without touching thread states. */
void mg__registry_mark_finalized(void);

/* Register an interpreter.  If `creator_tstate` is not NULL it becomes the
 * calling thread's cached thread state for it.  `anchor` (may be NULL) is a
 * thread state owned by the record itself, handed to the closer with the
 * others.  0, MG_ENOMEM or MG_EINVAL (id already registered). */
int mg__registry_add(int64_t id, void *py_interp, int is_main,
                     void *creator_tstate, void *anchor);

/* Find an ALIVE interpreter and count the calling thread as running in it.
 * On success *rec is pinned until mg__registry_leave and *tstate is the
 * calling thread's cached thread state for it, or NULL.  MG_ENOTFOUND. */
int mg__registry_enter(int64_t id, mg__interp_t **rec, void **tstate);

/* Cache `tstate` as the calling thread's thread state for rec (which the
 * thread has entered).  0 or MG_ENOMEM (then the caller keeps ownership). */
int mg__registry_cache_tstate(mg__interp_t *rec, void *tstate);

/* Forget `tstate` as the calling thread's cached state for rec (the caller
 * takes it back and deletes it). */
void mg__registry_uncache_tstate(mg__interp_t *rec, void *tstate);

/* Undo mg__registry_enter. */
void mg__registry_leave(mg__interp_t *rec);

/* Undo mg__registry_enter, but keep rec pinned as a visit is (undo with
 * mg__registry_unvisit): the thread runs no more code there, yet something
 * of it is still in use -- a thread that left the interpreter but whose
 * state there is still the one bound to it until it is back in its own.
 * A close no longer fails for it; it waits for the pin. */
void mg__registry_leave_pinned(mg__interp_t *rec);

/* Enter an ALIVE interpreter for a brief visit that runs no user code (an
 * interrupt, a stack dump): like mg__registry_enter, but the visit does not
 * count as running (is_running and close do not see it); instead a close
 * waits for it to end (mg__registry_begin_close waits for pins).
 * MG_ENOTFOUND. */
int mg__registry_visit(int64_t id, mg__interp_t **rec, void **tstate);

/* Undo mg__registry_visit. */
void mg__registry_unvisit(mg__interp_t *rec);

/* The opaque interpreter pointer of an entered/closing record. */
void *mg__registry_py_interp(const mg__interp_t *rec);

/* Start closing interpreter `id`.  May wait (briefly) for thread-exit hooks
 * that are deleting thread states of it: call with no GIL held.
 * On success the record is CLOSING (no one can enter), *own is the calling
 * thread's cached thread state (or NULL), and *others (with *nothers entries) is a malloc'd
 * array of every other cached thread state, which the caller must delete
 * and free.  MG_ENOTFOUND (unknown or already closing), MG_EMAININTERP,
 * MG_ERUNNING, MG_ENOMEM. */
int mg__registry_begin_close(int64_t id, mg__interp_t **rec, void **own,
                             void ***others, size_t *nothers);

/* At process exit: start closing interpreter `id` even though threads may
 * still run in it (daemon threads, abandoned workers).  Waits for visits
 * and thread-exit hooks (no GIL held).  The record becomes CLOSING; the
 * other threads' cached thread states and the anchor are forgotten, not
 * handed over (the caller finds them in CPython's own list).
 * *running is how many threads are still inside.  Finish with
 * *own is the calling thread's cached state (or NULL), still to be used or
 * deleted by the caller.  Finish with mg__registry_end_close.
 * MG_ENOTFOUND, MG_EMAININTERP. */
int mg__registry_begin_exit(int64_t id, mg__interp_t **rec, void **own, int *running);

/* Threads running in an entered or closing record now. */
int mg__registry_running(mg__interp_t *rec);

/* Finish closing: remove the record and drop the closer's pin. */
void mg__registry_end_close(mg__interp_t *rec);

/* 1 if a thread is running code in interpreter id, 0 if not, MG_ENOTFOUND. */
int mg__registry_is_running(int64_t id);

/* Snapshot the ids of all ALIVE interpreters into a malloc'd array
 * (caller frees).  0 or MG_ENOMEM. */
int mg__registry_ids(int64_t **ids, size_t *n);

/* The number of records other than except_id's in any state: ALIVE or
 * CLOSING (an interpreter being ended still exists until end_close). */
size_t mg__registry_count_existing(int64_t except_id);

#endif /* MG_CORE_REGISTRY_H */
