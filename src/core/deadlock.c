/* deadlock.c -- the deadlock detector (see deadlock.h).
 *
 * The rule.  Take the waits without deadline.  A thread is located in the
 * interpreter of its innermost run record (exec/call/task), else its home
 * (main thread, threads started inside an interpreter), else where it
 * waits.  An interpreter is stuck when manygil tracks all its threads, at
 * least one thread is located in it, and every thread located in it is
 * blocked in a wait of the set.  A wait stays in the set while the other end
 * of its channel is held only by stuck interpreters (no plain id pins it, no
 * handle travels inside a message).  Start from all waits without deadline
 * and drop waits until nothing changes: what is left can never complete.
 * Waits that a timeout will end, threads manygil does not see (blocked in a
 * lock, sleeping, running), and interpreters it did not create all count as
 * able to act, so a wait someone can still satisfy is never broken.
 *
 * The thread sleeps until the activity table changes while waits without
 * deadline exist, lets things settle for SETTLE_NS, and runs a pass; a pass
 * that finds a set confirms it with a second snapshot before breaking it.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "manygil.h"
#include "core/channel.h"
#include "core/deadlock.h"
#include "core/registry.h"
#include "core/sync.h"
#include "core/waits.h"

#define SETTLE_NS (10 * 1000 * 1000LL)
#define CONFIRM_NS (3 * 1000 * 1000LL)
#define RECHECK_NS (50 * 1000 * 1000LL)
#define MAX_PEERS 64
#define MAX_UNTRACKED 8

static struct {
    mg__mutex_t mutex;
    int started;                /* guarded by mutex */
    int enabled;                /* atomic */
    int64_t untracked[MAX_UNTRACKED];   /* guarded by mutex */
    int nuntracked;             /* guarded by mutex */
} dl = { .mutex = MG__MUTEX_INIT, .enabled = 1 };

int
mg__deadlock_set_enabled(int enabled)
{
    int old = __atomic_exchange_n(&dl.enabled, enabled ? 1 : 0, __ATOMIC_ACQ_REL);
    if (enabled && !old)
        mg__waits_poke();
    return old;
}

int mg__deadlock_enabled(void) { return __atomic_load_n(&dl.enabled, __ATOMIC_ACQUIRE); }

void
mg__deadlock_set_untracked(int64_t id)
{
    mg__mutex_lock(&dl.mutex);
    int seen = 0;
    for (int i = 0; i < dl.nuntracked; i++)
        seen |= dl.untracked[i] == id;
    if (!seen && dl.nuntracked < MAX_UNTRACKED)
        dl.untracked[dl.nuntracked++] = id;
    mg__mutex_unlock(&dl.mutex);
}

static int
is_untracked(int64_t id)
{
    mg__mutex_lock(&dl.mutex);
    int found = 0;
    for (int i = 0; i < dl.nuntracked; i++)
        found |= dl.untracked[i] == id;
    mg__mutex_unlock(&dl.mutex);
    return found;
}

/* ---- one pass ---------------------------------------------------------- */

typedef struct {
    mg__wait_t *w;              /* into the snapshot */
    int in_set;
    int64_t peers[MAX_PEERS];   /* interpreters holding the other end */
    size_t npeers;
} cand_t;

typedef struct {
    mg__wait_t *recs;
    size_t nrecs;
    int64_t *ids;               /* ALIVE interpreters manygil knows */
    size_t nids;
    cand_t *cands;
    size_t ncands;
} pass_t;

static void
pass_free(pass_t *p)
{
    for (size_t i = 0; i < p->nrecs; i++)
        if (p->recs[i].chan != NULL)
            mg__channel_decref(p->recs[i].chan);
    free(p->recs);
    free(p->ids);
    free(p->cands);
    memset(p, 0, sizeof *p);
}

/* The interpreter thread `ident` is located in (see the rule). */
static int64_t
located(const pass_t *p, unsigned long ident)
{
    const mg__wait_t *home = NULL, *wait = NULL;
    for (size_t i = 0; i < p->nrecs; i++) {     /* newest first */
        const mg__wait_t *r = &p->recs[i];
        if (r->thread_ident != ident)
            continue;
        if (r->kind == MG__ACT_RUN)
            return r->interp_id;
        if (r->kind == MG__ACT_HOME && home == NULL)
            home = r;
        if ((r->kind == MG__WAIT_SEND || r->kind == MG__WAIT_RECV) && wait == NULL)
            wait = r;
    }
    return home != NULL ? home->interp_id : wait != NULL ? wait->interp_id : -1;
}

/* 1 if thread `ident` is blocked in a wait of the set. */
static int
blocked_in_set(const pass_t *p, unsigned long ident)
{
    for (size_t i = 0; i < p->ncands; i++)
        if (p->cands[i].in_set && p->cands[i].w->thread_ident == ident)
            return 1;
    return 0;
}

static int
stuck(const pass_t *p, int64_t interp)
{
    int known = 0;
    for (size_t i = 0; i < p->nids; i++)
        known |= p->ids[i] == interp;
    if (!known || is_untracked(interp))
        return 0;
    int threads = 0;
    for (size_t i = 0; i < p->nrecs; i++) {
        const mg__wait_t *r = &p->recs[i];
        if (r->kind == MG__ACT_HOME && r->thread_ident == 0 && r->interp_id == interp)
            return 0;               /* a thread is starting there */
        if (r->thread_ident == 0)
            continue;
        /* Visit each thread once: at its newest record. */
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = p->recs[j].thread_ident != r->thread_ident;
        if (!first || located(p, r->thread_ident) != interp)
            continue;
        if (!blocked_in_set(p, r->thread_ident))
            return 0;
        threads++;
    }
    return threads > 0;
}

/* Snapshot and find the hopeless set.  Returns its size, or MG_ENOMEM. */
static int
find_set(pass_t *p)
{
    memset(p, 0, sizeof *p);
    if (mg__waits_snapshot(&p->recs, &p->nrecs, mg__channel_incref_void) != 0)
        return MG_ENOMEM;
    if (mg__registry_ids(&p->ids, &p->nids) != 0 || (p->cands = calloc(p->nrecs + 1, sizeof *p->cands)) == NULL) {
        pass_free(p);
        return MG_ENOMEM;
    }
    for (size_t i = 0; i < p->nrecs; i++) {
        mg__wait_t *w = &p->recs[i];
        if (!(w->kind == MG__WAIT_SEND || w->kind == MG__WAIT_RECV) || !w->forever || w->chan == NULL)
            continue;
        cand_t *c = &p->cands[p->ncands];
        int end = mg__channel_is_queue(w->chan) ? MG__END_BOTH
                : w->kind == MG__WAIT_RECV ? MG__END_SEND : MG__END_RECV;
        if (mg__channel_peers(w->chan, end, c->peers, MAX_PEERS, &c->npeers) != 0)
            continue;               /* someone else may act */
        c->w = w;
        c->in_set = 1;
        p->ncands++;
    }
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < p->ncands; i++) {
            cand_t *c = &p->cands[i];
            if (!c->in_set)
                continue;
            int hopeless = 1;
            for (size_t k = 0; k < c->npeers && hopeless; k++)
                hopeless = stuck(p, c->peers[k]);
            /* The waiter's own interpreter must be stuck too: another of
             * its threads could otherwise still act for it. */
            if (hopeless)
                hopeless = stuck(p, c->w->interp_id);
            if (!hopeless) {
                c->in_set = 0;
                changed = 1;
            }
        }
    }
    int n = 0;
    for (size_t i = 0; i < p->ncands; i++)
        n += p->cands[i].in_set;
    return n;
}

/* Append to a growing message; ignores ENOMEM (the message is truncated). */
static void
append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    char tmp[512];
    va_list va;
    va_start(va, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, va);
    va_end(va);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof tmp)
        n = sizeof tmp - 1;
    if (*len + (size_t)n + 1 > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 256) + (size_t)n;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL)
            return;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, tmp, (size_t)n + 1);
    *len += (size_t)n;
}

static char *
describe(const pass_t *p)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    append(&buf, &len, &cap, "deadlock: ");
    int first = 1;
    for (size_t i = 0; i < p->ncands; i++) {
        const cand_t *c = &p->cands[i];
        if (!c->in_set)
            continue;
        const mg__wait_t *w = c->w;
        int64_t cid = w->end_id / 2;
        int queue = mg__channel_is_queue(w->chan);
        int recv = w->kind == MG__WAIT_RECV;
        append(&buf, &len, &cap, "%sinterpreter %lld (thread %#lx) waits to %s %s %lld",
               first ? "" : "; ", (long long)w->interp_id, w->thread_ident,
               queue ? (recv ? "get from" : "put into") : (recv ? "receive on" : "send on"),
               queue ? "queue" : "channel", (long long)cid);
        append(&buf, &len, &cap, " (%s id %lld)",
               queue ? "Queue" : recv ? "RecvChannel" : "SendChannel", (long long)w->end_id);
        char label[200];
        mg__channel_label(w->chan, label, sizeof label);
        if (label[0] != '\0')
            append(&buf, &len, &cap, " [%s]", label);
        append(&buf, &len, &cap, ", whose %s only interpreter%s ",
               queue ? "handles" : recv ? "send end" : "receive end",
               c->npeers > 1 ? "s" : "");
        for (size_t k = 0; k < c->npeers; k++)
            append(&buf, &len, &cap, "%s%lld", k ? ", " : "", (long long)c->peers[k]);
        append(&buf, &len, &cap, " hold%s", c->npeers > 1 ? "" : "s");
        first = 0;
    }
    append(&buf, &len, &cap, " (all blocked in these waits)");
    return buf;
}

int
mg__deadlock_check(void)
{
    pass_t a, b;
    int n = find_set(&a);
    if (n <= 0)
        goto out_a;
    /* Confirm: the same waits (same serials) must come out of a second look. */
    struct timespec ts = {0, CONFIRM_NS};
    nanosleep(&ts, NULL);
    int m = find_set(&b);
    if (m < 0) {
        n = m;
        goto out_a;
    }
    for (size_t i = 0; i < b.ncands; i++) {
        cand_t *cb = &b.cands[i];
        if (!cb->in_set)
            continue;
        int again = 0;
        for (size_t j = 0; j < a.ncands && !again; j++)
            again = a.cands[j].in_set && a.cands[j].w->serial == cb->w->serial;
        cb->in_set = again;
    }
    char *why = describe(&b);
    mg__channel_t **chans = malloc((b.ncands + 1) * sizeof *chans);
    uint64_t *serials = malloc((b.ncands + 1) * sizeof *serials);
    int *kinds = malloc((b.ncands + 1) * sizeof *kinds);
    n = 0;
    if (chans != NULL && serials != NULL && kinds != NULL) {
        size_t k = 0;
        for (size_t i = 0; i < b.ncands; i++) {
            cand_t *c = &b.cands[i];
            if (c->in_set) {
                chans[k] = c->w->chan;
                serials[k] = c->w->serial;
                kinds[k++] = c->w->kind;
            }
        }
        n = mg__channel_break_set(chans, serials, kinds, k, why ? why : "deadlock");
    }
    free(chans);
    free(serials);
    free(kinds);
    free(why);
    pass_free(&b);
out_a:
    pass_free(&a);
    return n;
}

/* ---- the thread -------------------------------------------------------- */

static void *
detector_main(void *unused)
{
    (void)unused;
    uint64_t seen = mg__waits_generation();
    uint64_t checked = seen - 1;
    for (;;) {
        /* Sleep until something changes; with waits that could deadlock,
         * look again now and then even without news. */
        int64_t limit = mg__waits_forever_count() ? RECHECK_NS : -1;
        seen = mg__waits_wait_change(seen, limit);
        if (!mg__deadlock_enabled() || mg__waits_forever_count() == 0)
            continue;
        if (seen == checked)
            continue;
        struct timespec ts = {0, SETTLE_NS};
        nanosleep(&ts, NULL);
        checked = seen = mg__waits_generation();
        mg__deadlock_check();
    }
    return NULL;
}

/* The forever hook (waits.h): start the thread now that a wait without
 * deadline exists.  If the thread cannot start, try again at the next one. */
static void
start_detector_thread(void)
{
    mg__mutex_lock(&dl.mutex);
    if (!dl.started) {
        if (mg__spawn_detached(detector_main, NULL, 256 * 1024, "manygil-deadlk") == 0)
            dl.started = 1;
    }
    int retry = !dl.started;
    mg__mutex_unlock(&dl.mutex);
    if (retry)
        mg__waits_set_forever_hook(start_detector_thread);
}

int
mg__deadlock_start(void)
{
    mg__mutex_lock(&dl.mutex);
    int started = dl.started;
    mg__mutex_unlock(&dl.mutex);
    if (!started)
        mg__waits_set_forever_hook(start_detector_thread);
    return 0;
}

void
mg__deadlock_after_fork_child(void)
{
    /* The thread did not survive fork(): start one again on demand. */
    dl.mutex = (mg__mutex_t)MG__MUTEX_INIT;
    if (dl.started) {
        dl.started = 0;
        mg__waits_set_forever_hook(start_detector_thread);
    }
}
