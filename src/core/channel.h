/* channel.h -- channels and queues between interpreters (process-global).
 *
 * A channel is a FIFO of encoded values (mg__buf_t) with a send end and a
 * receive end; a queue is the same with one handle type for both.  Waits
 * block on condition variables (woken by the other side, never polling),
 * with absolute deadlines on the monotonic clock.
 *
 * Ends are kept open by handles: each interpreter's handle objects count
 * (mg__channel_attach/detach, per interpreter), encodings in flight count
 * (as interpreter MG__TRANSIT), and the seed API's plain ids pin both ends
 * open until closed explicitly.  When the last handle of an end goes, the
 * end closes, and waiters wake.  A channel whose two ends are closed leaves
 * the id table.
 */
#ifndef MG_CORE_CHANNEL_H
#define MG_CORE_CHANNEL_H

#include <stdint.h>
#include "core/buf.h"
#include "core/waits.h"
#include "core/notify.h"

typedef struct mg__channel mg__channel_t;

enum { MG__END_SEND = 1, MG__END_RECV = 2, MG__END_BOTH = 3 };
enum { MG__CHANNEL_QUEUE = 1, MG__CHANNEL_PINNED = 2, MG__CHANNEL_PIN_SEND = 4 };

/* The pseudo-interpreter that owns handles inside encodings in flight. */
#define MG__TRANSIT (-1)

/* Make a channel (flags: MG__CHANNEL_QUEUE, MG__CHANNEL_PINNED, or
 * MG__CHANNEL_PIN_SEND: only the send end pinned, as an actor's inbox that
 * anyone may send to by id while its receive end lives and dies with its
 * handles) holding up
 * to maxsize items (0: unbounded; a queue takes any maxsize <= 0 as
 * unbounded, as queue.Queue does) and enter it in the id table.  *out gets
 * a reference.  0, MG_EINVAL or MG_ENOMEM. */
int mg__channel_create(int64_t maxsize, int flags, mg__channel_t **out);

/* Look up channel `cid`; *out gets a reference.  0 or MG_ECHNOTFOUND. */
int mg__channel_find(int64_t cid, mg__channel_t **out);

/* The open queues (not channels) of this process, in no particular order,
 * each with a reference, in a malloc'd array (caller decrefs each and frees it).  0 or MG_ENOMEM. */
int mg__channel_list_queues(mg__channel_t ***out, size_t *n);

/* 1 if a channel with id `cid` was ever created (it may be gone now). */
int mg__channel_existed(int64_t cid);

void mg__channel_incref(mg__channel_t *ch);
void mg__channel_decref(mg__channel_t *ch);

int64_t mg__channel_id(const mg__channel_t *ch);

/* 1 if ch was made before the fork() that made this process: such a
 * channel must not be used (its other ends are in the parent, its locks may
 * be held by threads the child does not have). */
int mg__channel_inherited(const mg__channel_t *ch);

/* In the child of fork(), single-threaded: forget every channel (see
 * mg__channel_inherited); new ones work as usual. */
void mg__channels_after_fork_child(void);
int mg__channel_is_queue(const mg__channel_t *ch);
/* 1 if ch was made with MG__CHANNEL_PIN_SEND (an actor worker's inbox). */
int mg__channel_is_inbox(const mg__channel_t *ch);
int64_t mg__channel_maxsize(const mg__channel_t *ch);
int64_t mg__channel_count(mg__channel_t *ch);

/* Count a handle of interpreter `interp` on `ends`.  0 or MG_ENOMEM. */
int mg__channel_attach(mg__channel_t *ch, int64_t interp, int ends);

/* Drop a handle counted by mg__channel_attach; an end whose last handle
 * goes (and that no plain id pins) closes. */
void mg__channel_detach(mg__channel_t *ch, int64_t interp, int ends);

/* Drop every handle interpreter `interp` still counts (it was closed). */
void mg__channels_drop_interp(int64_t interp);

/* A release function for mg__buf_add_ref: detaches a MG__TRANSIT handle on
 * the ends in `ends` and drops the reference on ch. */
void mg__channel_release_transit(void *ch, int ends);

/* Append *item (moved in on success).  deadline_ns: -1 waits for ever, 0
 * does not wait, else an absolute mg__monotonic_ns() time.  `w` (filled by
 * the caller) is entered in the waits table while the call blocks.
 * 0, MG_ECHCLOSED, MG_EFULL (no wait allowed) or MG_ETIMEDOUT. */
int mg__channel_send(mg__channel_t *ch, mg__buf_t *item, int64_t deadline_ns,
                     mg__wait_t *w);

/* Take the oldest item into *out (which must be empty).  Same deadline and
 * wait rules.  0, MG_ECHCLOSED (closed and drained), MG_EEMPTY or
 * MG_ETIMEDOUT. */
int mg__channel_recv(mg__channel_t *ch, mg__buf_t *out, int64_t deadline_ns,
                     mg__wait_t *w);

/* Close `ends` explicitly (and unpin them).  Closing the receive end drops
 * the items left.  Harmless when already closed. */
void mg__channel_close(mg__channel_t *ch, int ends);

/* ---- async waiters ------------------------------------------------------
 * An async waiter (a coroutine on an event loop) occupies no thread: it
 * leaves a watch on the channel and its loop sleeps.  When the channel may
 * have become ready for it (an item arrived, for MG__WAIT_RECV; room was
 * made, for MG__WAIT_SEND; an end closed, for both) the watch fires once:
 * it leaves the channel and its token is posted to its notifier.  The
 * waiter then tries the non-blocking call itself -- the take happens in the
 * waiter's own step, so a waiter cancelled before that takes nothing.
 * Each arrival or removal fires one watch of the kind it serves (a waiter
 * that gives up after being fired passes the turn on with
 * mg__channel_kick); a close fires all.  Watches are not waits: they are
 * not in the activity table, and the deadlock detector does not count an
 * event loop as a blocked thread. */

typedef struct mg__awatch {
    mg__channel_t *ch;          /* immutable; the watch holds a reference */
    mg__notifier_t *nt;         /* immutable; the watch holds a reference */
    uint64_t token;             /* immutable: unique in the process */
    int kind;                   /* immutable: MG__WAIT_RECV or MG__WAIT_SEND */
    int state;                  /* guarded by ch->mu: 0 idle, 1 armed, 2 fired */
    struct mg__awatch *prev, *next;     /* guarded by ch->mu */
} mg__awatch_t;

/* A new idle watch of `kind` on ch for nt (both get a reference), with a
 * fresh token.  NULL when out of memory. */
mg__awatch_t *mg__awatch_new(mg__channel_t *ch, mg__notifier_t *nt, int kind);

/* Arm w (idle or fired): returns 1 if the channel is ready for it now (w
 * stays idle: try the call again), else 0 (armed: it fires later). */
int mg__awatch_arm(mg__awatch_t *w);

/* Disarm w; returns 1 if it had fired (and its waiter has not acted on it
 * yet -- the caller decides), else 0.  w is idle afterwards. */
int mg__awatch_disarm(mg__awatch_t *w);

/* Disarm and free w (dropping its references). */
void mg__awatch_free(mg__awatch_t *w);

/* If ch is ready for `kind`, fire one armed watch of that kind (the turn a
 * fired waiter gave up). */
void mg__channel_kick(mg__channel_t *ch, int kind);

/* Number of watches armed, process-wide (for tests). */
int64_t mg__awatch_armed_count(void);

/* ---- for the deadlock detector ---------------------------------------- */

/* mg__channel_incref for a void pointer (a mg__waits_snapshot callback). */
void mg__channel_incref_void(void *ch);

/* The interpreters holding handles on `end` (MG__END_SEND, _RECV, or _BOTH
 * for a queue) of ch, into interps (up to cap; *n set).  Returns 1 if
 * anyone else may act on that end: a plain id pins it, a handle travels
 * inside an encoding, more than cap holders, or the channel is closed
 * (a waiter wakes by itself); else 0.  A reply channel's travelling send
 * end (mg__channel_set_reply) counts as held by the holders of its inbox's
 * receive end instead. */
int mg__channel_peers(mg__channel_t *ch, int end, int64_t *interps, size_t cap, size_t *n);

/* Mark ch as the reply channel of one actor call: its send end, while it
 * travels (MG__TRANSIT), is bound for whoever receives on channel via_cid
 * (the actor's inbox), so the detector counts the holders of that receive
 * end as the ones who will answer.  label (copied; may be NULL) names the
 * call in deadlock messages.  0 or MG_ENOMEM. */
int mg__channel_set_reply(mg__channel_t *ch, int64_t via_cid, const char *label);

/* Copy ch's label (or "") into buf (size > 0), truncated. */
void mg__channel_label(mg__channel_t *ch, char *buf, size_t size);

/* Break a hopeless set of n waits (wait serials[i], of kind kinds[i]
 * MG__WAIT_SEND/_RECV, blocked on chans[i]) all at once: with every one of
 * their channels' mutexes held, if each wait is still there and none can
 * complete now (an item to take, room to put, a closed end), each is
 * broken -- it returns MG_EDEADLOCK and its waiter finds `why` in its
 * record -- else none is (a waiter already woken, or about to be, makes
 * the set's premise false).  Returns how many were broken. */
int mg__channel_break_set(mg__channel_t *const *chans, const uint64_t *serials, const int *kinds,
                          size_t n, const char *why);

#endif /* MG_CORE_CHANNEL_H */
