/* notify.h -- a notifier: a file descriptor an event loop watches, plus the
 * list of tokens posted to it since the loop last looked (process-global,
 * no Python).
 *
 * Any thread, in any interpreter, may post a token (a channel became ready
 * for an async waiter); the first post after a drain makes the descriptor
 * readable (an eventfd on Linux, else a pipe).  The loop's reader callback
 * drains: it takes the tokens posted so far and clears the descriptor.
 * Nothing polls: between posts the descriptor is quiet.
 */
#ifndef MG_CORE_NOTIFY_H
#define MG_CORE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg__notifier mg__notifier_t;

/* A new notifier with one reference.  0, MG_ENOMEM, or MG_ECREATE when the
 * descriptor cannot be made (errno says why: e.g. out of descriptors). */
int mg__notifier_create(mg__notifier_t **out);

void mg__notifier_incref(mg__notifier_t *nt);
/* The last reference closes the descriptor (if still open) and frees. */
void mg__notifier_decref(mg__notifier_t *nt);

/* The descriptor to watch for reading; -1 once closed. */
int mg__notifier_fd(mg__notifier_t *nt);

/* Close the descriptor now; later posts are dropped.  Idempotent. */
void mg__notifier_close(mg__notifier_t *nt);

/* Post `token`.  Never blocks for long (a leaf lock and one write); may be
 * called with a channel mutex held.  A closed notifier drops the token and
 * returns 0, else 1. */
int mg__notifier_post(mg__notifier_t *nt, uint64_t token);

/* Clear the descriptor and move the posted tokens into a malloc'd array
 * (*out, caller frees; NULL when *n is 0).  0 or MG_ENOMEM (the tokens
 * stay posted then). */
int mg__notifier_drain(mg__notifier_t *nt, uint64_t **out, size_t *n);

#endif /* MG_CORE_NOTIFY_H */
