/* waits.h -- the process-global activity table: what threads are doing.
 *
 * Three kinds of records, each owned by the code that adds it (typically on
 * its stack) and entered here while it lasts:
 *   - a blocked wait on a channel or queue (MG__WAIT_SEND / _RECV): which
 *     interpreter and thread, which channel end, since when, with or without
 *     a deadline;
 *   - a run (MG__ACT_RUN): a thread running code in an interpreter through
 *     manygil (exec, call, a pool task), since when;
 *   - a home (MG__ACT_HOME): a thread that lives in an interpreter (the main
 *     thread in the main interpreter, threads started with `threading`
 *     inside a manygil interpreter).  thread_ident 0 marks a thread being
 *     started whose ident is not known yet.
 * The deadlock detector, the watchdog, interrupts and stack dumps read it.
 * A generation counter moves on every change (and on mg__waits_poke), so
 * the detector can sleep until something happens.
 */
#ifndef MG_CORE_WAITS_H
#define MG_CORE_WAITS_H

#include <stddef.h>
#include <stdint.h>

enum { MG__WAIT_SEND = 1, MG__WAIT_RECV = 2, MG__ACT_RUN = 3, MG__ACT_HOME = 4 };

typedef struct mg__wait {
    int64_t interp_id;
    unsigned long thread_ident;
    int64_t end_id;             /* waits: the channel end (or queue) waited on;
                                 * actor method runs: the actor's process-unique id */
    int kind;                   /* MG__WAIT_* or MG__ACT_* */
    int forever;                /* waits: no deadline */
    int64_t since_ns;           /* monotonic */
    void *chan;                 /* waits: the mg__channel_t (the waiter holds a reference) */
    const char *what;           /* runs: "exec", "call", "task"... (static string) */
    uint64_t serial;            /* set by mg__waits_add: unique per record */
    int broken;                 /* waits: set by the deadlock detector; runs: given up on
                                 * (mg__waits_give_up_run) */
    char *why;                  /* waits: malloc'd message of a broken wait; the waiter frees */
    int quiet;                  /* runs inside a run of the same thread and interpreter
                                 * (an actor's method): adding or removing it does not
                                 * move the generation (nothing changes for deadlocks) */
    int64_t reply_id;           /* actor method runs: the send end of the call's reply
                                 * channel, or -1 (a tell, __init__) */
    char label[96];             /* runs: who runs what ("Counter#3.incr"), or "" */
    struct mg__wait *prev, *next;   /* guarded by the table's mutex */
} mg__wait_t;

/* Add / remove a record (owned by the caller). */
void mg__waits_add(mg__wait_t *w);
void mg__waits_remove(mg__wait_t *w);

/* Rename a run record (its `what`), e.g. when a pool gives up on a task. */
void mg__waits_set_what(mg__wait_t *w, const char *what);

/* Copy the records into a malloc'd array (prev/next cleared, why NULL);
 * caller frees.  Records are newest first.  Channels of waits get a
 * reference each when `ref_chan` is not NULL (it is called on each wait's
 * chan under the table's mutex).  0 or MG_ENOMEM. */
int mg__waits_snapshot(mg__wait_t **out, size_t *n, void (*ref_chan)(void *));

/* Mark the wait `serial` broken with message `why` (copied); 1 if it was
 * found.  Call with the wait's channel mutex held (the waiter reads the flag
 * under it). */
int mg__waits_break(uint64_t serial, const char *why);

/* Give up on the run `serial` if it is a run named `only` (an actor method
 * whose worker is abandoned): mark it broken, rename it `what` (static) and
 * copy it into *copy; 1 if it was found (still running, not given up on
 * before).  The run's thread
 * reads `broken` after removing its record: whoever gets there first
 * decides. */
int mg__waits_give_up_run(uint64_t serial, const char *only, const char *what,
                          mg__wait_t *copy);
/* 1 if the wait `serial` is in the table and not broken, else 0.  Call with
 * the wait's channel mutex held for an answer that holds until released
 * (waiters enter and leave the table under it). */
int mg__waits_present(uint64_t serial);

/* The generation counter; mg__waits_poke moves it (something relevant to
 * deadlocks changed elsewhere, e.g. a channel handle was dropped). */
uint64_t mg__waits_generation(void);
void mg__waits_poke(void);

/* Block until the generation differs from `seen` or `timeout_ns` passes
 * (-1: no limit).  Returns the generation. */
uint64_t mg__waits_wait_change(uint64_t seen, int64_t timeout_ns);

/* In the child of fork(), single-threaded: drop the records of the threads
 * that did not survive (all but self_ident's homes) and make the lock anew. */
void mg__waits_after_fork_child(unsigned long self_ident);

/* Number of waits without deadline in the table. */
size_t mg__waits_forever_count(void);

/* Have fn called once, on the thread that adds the next wait without
 * deadline (at once if there is one already; outside the table's mutex,
 * maybe with a channel mutex held); NULL: cancel.  For starting the
 * deadlock detector only when it can have work. */
void mg__waits_set_forever_hook(void (*fn)(void));

/* Homes of threads started with `threading` in interpreter `interp`: a
 * parent notes a start before it happens (a home with ident 0), the child
 * replaces it with its own on arrival and removes it when it ends; a start
 * that failed is undone with mg__waits_home_cancel.  Records live on the
 * heap.  0 or MG_ENOMEM. */
int mg__waits_home_announce(int64_t interp);
void mg__waits_home_cancel(int64_t interp);
int mg__waits_home_arrive(int64_t interp, unsigned long ident);
void mg__waits_home_leave(int64_t interp, unsigned long ident);

#endif /* MG_CORE_WAITS_H */
