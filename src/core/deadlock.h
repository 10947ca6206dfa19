/* deadlock.h -- the deadlock detector (process-global, no Python).
 *
 * A background thread watches the activity table (waits.h).  When waits
 * without deadline form a set no one can complete -- every interpreter
 * holding a handle to the other end of each awaited channel has all its
 * threads blocked in waits of the set -- it breaks every wait of the set:
 * each returns MG_EDEADLOCK with a message naming the cycle.  See
 * mg__deadlock_find for the exact rule.
 */
#ifndef MG_CORE_DEADLOCK_H
#define MG_CORE_DEADLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Arm the detector (idempotent): its thread starts when the first wait
 * without deadline is added (before that it would have nothing to look
 * at), so importing manygil starts no thread.  Returns 0. */
int mg__deadlock_start(void);

/* In a child of fork() (single-threaded): the detector thread is gone;
 * arm it again so a new one starts on demand. */
void mg__deadlock_after_fork_child(void);

/* Turn detection on or off (on by default); returns the previous value. */
int mg__deadlock_set_enabled(int enabled);
int mg__deadlock_enabled(void);

/* Mark interpreter `id` as having threads manygil does not know about (the
 * main interpreter when threads existed before manygil was imported): it
 * is then never taken as stuck. */
void mg__deadlock_set_untracked(int64_t id);

/* Run one detection pass now and break what it finds.  Returns the number
 * of waits broken (0 if none), or MG_ENOMEM.  Used by the thread and tests. */
int mg__deadlock_check(void);

#endif /* MG_CORE_DEADLOCK_H */
