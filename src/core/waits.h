/* waits.h -- the process-global table of blocked waits.
 *
 * Every wait that blocks on a channel or queue is recorded here while it
 * lasts: which interpreter and thread, which channel end, since when.  The
 * deadlock detector and the watchdog read it. */
#ifndef MG_CORE_WAITS_H
#define MG_CORE_WAITS_H

#include <stddef.h>
#include <stdint.h>

enum { MG__WAIT_SEND = 1, MG__WAIT_RECV = 2 };

typedef struct mg__wait {
    int64_t interp_id;
    unsigned long thread_ident;
    int64_t end_id;             /* the channel end (or queue) waited on */
    int kind;                   /* MG__WAIT_SEND or MG__WAIT_RECV */
    int64_t since_ns;           /* monotonic */
    struct mg__wait *prev, *next;   /* guarded by the table's mutex */
} mg__wait_t;

/* Add / remove a record (owned by the caller, typically on its stack). */
void mg__waits_add(mg__wait_t *w);
void mg__waits_remove(mg__wait_t *w);

/* Copy the records into a malloc'd array (prev/next cleared); caller frees.
 * 0 or MG_ENOMEM. */
int mg__waits_snapshot(mg__wait_t **out, size_t *n);

#endif /* MG_CORE_WAITS_H */
