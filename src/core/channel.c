/* channel.c -- channels and queues (see channel.h).
 *
 * Lock order: table.mutex, then a channel's mu, then a notifier's mutex (a
 * leaf, taken to post to an async watch); never the other way.  No
 * lock is held while an item is freed (freeing releases references, which
 * may lock other channels), nor while calling into anything else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "manygil.h"
#include "core/channel.h"
#include "core/sync.h"

typedef struct mg__item {
    struct mg__item *next;
    mg__buf_t buf;
} mg__item_t;

typedef struct {
    int64_t interp;
    int64_t send, recv;         /* handle counts */
} mg__holder_t;

#define NBUCKETS 1024

/* How long a receiver spins (without the lock) for an item before it
 * sleeps on the condition variable: adaptive per channel, between these
 * bounds.  On a VM a sleeping CPU takes 5-100 us to wake; in a request /
 * response exchange the reply usually comes sooner.  A spin that succeeds
 * keeps its budget (up to the max); one that fails halves it. */
#define SPIN_MIN_NS (2 * 1000)
#define SPIN_MAX_NS (40 * 1000)


struct mg__channel {
    int64_t id;                 /* immutable */
    int64_t maxsize;            /* immutable; <= 0 = unbounded (< 0 for queues only) */
    int is_queue;               /* immutable */
    int is_inbox;               /* immutable: made with MG__CHANNEL_PIN_SEND */
    mg__mutex_t mu;
    mg__cond_t not_empty;       /* receivers wait here */
    mg__cond_t not_full;        /* senders wait here */
    mg__item_t *head, *tail;    /* guarded by mu */
    int64_t count;              /* guarded by mu; written atomically, read by spinners */
    int send_closed, recv_closed;       /* guarded by mu; written atomically */
    int pinned;                 /* guarded by mu: MG__END_* bits pinned by plain ids */
    int64_t nsend, nrecv;       /* guarded by mu: handle totals */
    mg__holder_t *holders;      /* guarded by mu */
    size_t nholders, capholders;        /* guarded by mu */
    mg__awatch_t *watch_head, *watch_tail;  /* guarded by mu: armed async watches, oldest first */
    int64_t answered_via;       /* guarded by mu: reply channel: its inbox's id (0: none) */
    char *label;                /* guarded by mu: malloc'd, for deadlock messages */
    int64_t spin_ns;            /* atomic: the receivers' spin budget */
    int refs;                   /* atomic */
    int in_table;               /* guarded by table.mutex */
    struct mg__channel *next_in_bucket; /* guarded by table.mutex */
};

static struct {
    mg__mutex_t mutex;
    int64_t next_id;                        /* guarded by mutex */
    mg__channel_t *buckets[NBUCKETS];       /* guarded by mutex */
} table = { .mutex = MG__MUTEX_INIT, .next_id = 1 };

/* Channels with a smaller id were made before the fork() that made this
 * process (0: none).  Written only in the single-threaded child. */
static int64_t first_own_id;

/* ---- lifetime ---------------------------------------------------------- */

void
mg__channel_incref(mg__channel_t *ch)
{
    __atomic_add_fetch(&ch->refs, 1, __ATOMIC_RELAXED);
}

static void
free_items(mg__item_t *it)
{
    while (it != NULL) {
        mg__item_t *next = it->next;
        mg__buf_free(&it->buf);
        free(it);
        it = next;
    }
}

void
mg__channel_decref(mg__channel_t *ch)
{
    if (__atomic_sub_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free_items(ch->head);
    free(ch->holders);
    free(ch->label);
    mg__cond_destroy(&ch->not_empty);
    mg__cond_destroy(&ch->not_full);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

int64_t mg__channel_id(const mg__channel_t *ch) { return ch->id; }
int mg__channel_inherited(const mg__channel_t *ch) { return ch->id < first_own_id; }

void
mg__channels_after_fork_child(void)
{
    /* A thread gone with the fork may have held the table's lock or a
     * channel's: start a new, empty table and leave the inherited channels
     * alone for good (their memory is leaked, their ids never found). */
    table.mutex = (mg__mutex_t)MG__MUTEX_INIT;
    memset(table.buckets, 0, sizeof table.buckets);
    first_own_id = table.next_id;
}
int mg__channel_is_queue(const mg__channel_t *ch) { return ch->is_queue; }
int mg__channel_is_inbox(const mg__channel_t *ch) { return ch->is_inbox; }
int64_t mg__channel_maxsize(const mg__channel_t *ch) { return ch->maxsize; }

int64_t
mg__channel_count(mg__channel_t *ch)
{
    mg__mutex_lock(&ch->mu);
    int64_t n = ch->count;
    mg__mutex_unlock(&ch->mu);
    return n;
}

/* ---- the id table ------------------------------------------------------ */

static void
table_remove(mg__channel_t *ch)
{
    mg__mutex_lock(&table.mutex);
    int was_in = ch->in_table;
    if (was_in) {
        mg__channel_t **pp = &table.buckets[ch->id % NBUCKETS];
        while (*pp != ch)
            pp = &(*pp)->next_in_bucket;
        *pp = ch->next_in_bucket;
        ch->in_table = 0;
    }
    mg__mutex_unlock(&table.mutex);
    if (was_in)
        mg__channel_decref(ch);     /* the table's reference */
}

int
mg__channel_create(int64_t maxsize, int flags, mg__channel_t **out)
{
    if (maxsize < 0 && !(flags & MG__CHANNEL_QUEUE))
        return MG_EINVAL;
    mg__channel_t *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return MG_ENOMEM;
    if (pthread_mutex_init(&ch->mu, NULL) != 0) {
        free(ch);
        return MG_ENOMEM;
    }
    if (mg__cond_init(&ch->not_empty) != 0) {
        pthread_mutex_destroy(&ch->mu);
        free(ch);
        return MG_ENOMEM;
    }
    if (mg__cond_init(&ch->not_full) != 0) {
        mg__cond_destroy(&ch->not_empty);
        pthread_mutex_destroy(&ch->mu);
        free(ch);
        return MG_ENOMEM;
    }
    ch->maxsize = maxsize;
    ch->is_queue = (flags & MG__CHANNEL_QUEUE) != 0;
    ch->is_inbox = (flags & MG__CHANNEL_PIN_SEND) != 0;
    ch->pinned = (flags & MG__CHANNEL_PINNED) ? MG__END_BOTH
               : (flags & MG__CHANNEL_PIN_SEND) ? MG__END_SEND : 0;
    ch->refs = 2;                   /* the table's and the caller's */
    ch->spin_ns = SPIN_MAX_NS / 2;
    mg__mutex_lock(&table.mutex);
    ch->id = table.next_id++;
    ch->in_table = 1;
    ch->next_in_bucket = table.buckets[ch->id % NBUCKETS];
    table.buckets[ch->id % NBUCKETS] = ch;
    mg__mutex_unlock(&table.mutex);
    *out = ch;
    return 0;
}

int
mg__channel_find(int64_t cid, mg__channel_t **out)
{
    if (cid <= 0)
        return MG_ECHNOTFOUND;
    mg__mutex_lock(&table.mutex);
    mg__channel_t *ch = table.buckets[cid % NBUCKETS];
    while (ch != NULL && ch->id != cid)
        ch = ch->next_in_bucket;
    if (ch != NULL)
        mg__channel_incref(ch);
    mg__mutex_unlock(&table.mutex);
    if (ch == NULL)
        return MG_ECHNOTFOUND;
    *out = ch;
    return 0;
}

int
mg__channel_list_queues(mg__channel_t ***out, size_t *n)
{
    size_t cap = 16;
    *n = 0;
    mg__channel_t **all = malloc(cap * sizeof *all);
    if (all == NULL)
        return MG_ENOMEM;
    int rc = 0;
    mg__mutex_lock(&table.mutex);
    for (int b = 0; rc == 0 && b < NBUCKETS; b++) {
        for (mg__channel_t *ch = table.buckets[b]; ch != NULL; ch = ch->next_in_bucket) {
            if (!ch->is_queue || __atomic_load_n(&ch->send_closed, __ATOMIC_ACQUIRE))
                continue;
            if (*n == cap) {
                mg__channel_t **p = realloc(all, cap * 2 * sizeof *p);
                if (p == NULL) {
                    rc = MG_ENOMEM;
                    break;
                }
                all = p;
                cap *= 2;
            }
            mg__channel_incref(ch);
            all[(*n)++] = ch;
        }
    }
    mg__mutex_unlock(&table.mutex);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            mg__channel_decref(all[i]);
        free(all);
        *n = 0;
        return rc;
    }
    *out = all;
    return 0;
}

int
mg__channel_existed(int64_t cid)
{
    mg__mutex_lock(&table.mutex);
    int existed = cid > 0 && cid < table.next_id;
    mg__mutex_unlock(&table.mutex);
    return existed;
}

/* ---- async watches (see channel.h) -------------------------------------- */

static int64_t armed_total;     /* atomic */
static uint64_t next_token = 1; /* atomic */

static int
ready_locked(mg__channel_t *ch, int kind)
{
    if (ch->send_closed || ch->recv_closed)
        return 1;
    if (kind == MG__WAIT_RECV)
        return ch->head != NULL;
    return ch->maxsize == 0 || ch->count < ch->maxsize;
}

static void
unlink_watch_locked(mg__channel_t *ch, mg__awatch_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        ch->watch_head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        ch->watch_tail = w->prev;
    w->prev = w->next = NULL;
    __atomic_sub_fetch(&armed_total, 1, __ATOMIC_RELAXED);
}

/* Fire armed watches of `kind` (0: any kind), oldest first: one that
 * reaches a live notifier, or all when `all` (mu held). */
static void
fire_locked(mg__channel_t *ch, int kind, int all)
{
    mg__awatch_t *w = ch->watch_head;
    while (w != NULL) {
        mg__awatch_t *next = w->next;
        if (kind == 0 || w->kind == kind) {
            unlink_watch_locked(ch, w);
            w->state = 2;
            if (mg__notifier_post(w->nt, w->token) && !all)
                return;
        }
        w = next;
    }
}

mg__awatch_t *
mg__awatch_new(mg__channel_t *ch, mg__notifier_t *nt, int kind)
{
    mg__awatch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    mg__channel_incref(ch);
    mg__notifier_incref(nt);
    w->ch = ch;
    w->nt = nt;
    w->kind = kind;
    w->token = __atomic_fetch_add(&next_token, 1, __ATOMIC_RELAXED);
    return w;
}

int
mg__awatch_arm(mg__awatch_t *w)
{
    mg__channel_t *ch = w->ch;
    int ready;
    mg__mutex_lock(&ch->mu);
    ready = ready_locked(ch, w->kind);
    if (w->state == 1) {
        ready = 0;                  /* armed already */
    }
    else if (ready) {
        w->state = 0;
    }
    else {
        w->state = 1;
        w->next = NULL;
        w->prev = ch->watch_tail;
        if (ch->watch_tail != NULL)
            ch->watch_tail->next = w;
        else
            ch->watch_head = w;
        ch->watch_tail = w;
        __atomic_add_fetch(&armed_total, 1, __ATOMIC_RELAXED);
    }
    mg__mutex_unlock(&ch->mu);
    return ready;
}

int
mg__awatch_disarm(mg__awatch_t *w)
{
    mg__channel_t *ch = w->ch;
    mg__mutex_lock(&ch->mu);
    int fired = w->state == 2;
    if (w->state == 1)
        unlink_watch_locked(ch, w);
    w->state = 0;
    mg__mutex_unlock(&ch->mu);
    return fired;
}

void
mg__awatch_free(mg__awatch_t *w)
{
    if (w == NULL)
        return;
    mg__awatch_disarm(w);
    mg__channel_decref(w->ch);
    mg__notifier_decref(w->nt);
    free(w);
}

void
mg__channel_kick(mg__channel_t *ch, int kind)
{
    mg__mutex_lock(&ch->mu);
    if (ready_locked(ch, kind))
        fire_locked(ch, kind, 0);
    mg__mutex_unlock(&ch->mu);
}

int64_t
mg__awatch_armed_count(void)
{
    return __atomic_load_n(&armed_total, __ATOMIC_RELAXED);
}

/* ---- closing ----------------------------------------------------------- */

/* Close `ends` (mu held).  Items dropped by closing the receive end are
 * moved to *dropped for the caller to free after unlocking.  Returns 1 if
 * both ends are now closed. */
static int
close_locked(mg__channel_t *ch, int ends, mg__item_t **dropped)
{
    if ((ends & MG__END_SEND) && !ch->send_closed)
        __atomic_store_n(&ch->send_closed, 1, __ATOMIC_RELEASE);
    if ((ends & MG__END_RECV) && !ch->recv_closed) {
        __atomic_store_n(&ch->recv_closed, 1, __ATOMIC_RELEASE);
        *dropped = ch->head;
        ch->head = ch->tail = NULL;
        __atomic_store_n(&ch->count, 0, __ATOMIC_RELEASE);
    }
    mg__cond_broadcast(&ch->not_empty);
    mg__cond_broadcast(&ch->not_full);
    fire_locked(ch, 0, 1);
    return ch->send_closed && ch->recv_closed;
}

void
mg__channel_close(mg__channel_t *ch, int ends)
{
    mg__item_t *dropped = NULL;
    mg__mutex_lock(&ch->mu);
    ch->pinned &= ~ends;
    int fully = close_locked(ch, ends, &dropped);
    mg__mutex_unlock(&ch->mu);
    free_items(dropped);
    if (fully)
        table_remove(ch);
}

/* ---- handles ----------------------------------------------------------- */

static mg__holder_t *
find_holder_locked(mg__channel_t *ch, int64_t interp)
{
    for (size_t i = 0; i < ch->nholders; i++)
        if (ch->holders[i].interp == interp)
            return &ch->holders[i];
    return NULL;
}

int
mg__channel_attach(mg__channel_t *ch, int64_t interp, int ends)
{
    int rc = 0;
    mg__mutex_lock(&ch->mu);
    mg__holder_t *h = find_holder_locked(ch, interp);
    if (h == NULL) {
        if (ch->nholders == ch->capholders) {
            size_t cap = ch->capholders ? ch->capholders * 2 : 4;
            mg__holder_t *p = realloc(ch->holders, cap * sizeof *p);
            if (p == NULL) {
                rc = MG_ENOMEM;
                goto done;
            }
            ch->holders = p;
            ch->capholders = cap;
        }
        h = &ch->holders[ch->nholders++];
        *h = (mg__holder_t){interp, 0, 0};
    }
    if (ends & MG__END_SEND) {
        h->send++;
        ch->nsend++;
    }
    if (ends & MG__END_RECV) {
        h->recv++;
        ch->nrecv++;
    }
done:
    mg__mutex_unlock(&ch->mu);
    return rc;
}

/* Take `dsend`/`drecv` handles away from holder h (mu held) and close the
 * ends left without handles or pins.  Returns 1 if both ends are closed. */
static int
detach_locked(mg__channel_t *ch, mg__holder_t *h, int64_t dsend, int64_t drecv,
              mg__item_t **dropped)
{
    h->send -= dsend;
    h->recv -= drecv;
    ch->nsend -= dsend;
    ch->nrecv -= drecv;
    if (h->send == 0 && h->recv == 0)
        *h = ch->holders[--ch->nholders];
    int ends = 0;
    if (ch->nsend == 0 && !(ch->pinned & MG__END_SEND))
        ends |= MG__END_SEND;
    if (ch->nrecv == 0 && !(ch->pinned & MG__END_RECV))
        ends |= MG__END_RECV;
    if (ends == 0)
        return 0;
    return close_locked(ch, ends, dropped);
}

void
mg__channel_detach(mg__channel_t *ch, int64_t interp, int ends)
{
    mg__item_t *dropped = NULL;
    int fully = 0;
    mg__mutex_lock(&ch->mu);
    mg__holder_t *h = find_holder_locked(ch, interp);
    if (h != NULL)
        fully = detach_locked(ch, h, (ends & MG__END_SEND) ? 1 : 0,
                              (ends & MG__END_RECV) ? 1 : 0, &dropped);
    mg__mutex_unlock(&ch->mu);
    free_items(dropped);
    if (fully)
        table_remove(ch);
    mg__waits_poke();               /* fewer holders: a wait may have become hopeless */
}

void
mg__channel_release_transit(void *ptr, int ends)
{
    mg__channel_t *ch = ptr;
    mg__channel_detach(ch, MG__TRANSIT, ends);
    mg__channel_decref(ch);
}

void
mg__channels_drop_interp(int64_t interp)
{
    /* Snapshot the channels (with references), then visit each unlocked. */
    mg__mutex_lock(&table.mutex);
    size_t n = 0, cap = 16;
    mg__channel_t **all = malloc(cap * sizeof *all);
    for (int b = 0; all != NULL && b < NBUCKETS; b++) {
        for (mg__channel_t *ch = table.buckets[b]; ch != NULL; ch = ch->next_in_bucket) {
            if (n == cap) {
                mg__channel_t **p = realloc(all, cap * 2 * sizeof *p);
                if (p == NULL)
                    break;
                all = p;
                cap *= 2;
            }
            mg__channel_incref(ch);
            all[n++] = ch;
        }
    }
    mg__mutex_unlock(&table.mutex);
    for (size_t i = 0; i < n; i++) {
        mg__channel_t *ch = all[i];
        mg__item_t *dropped = NULL;
        int fully = 0;
        mg__mutex_lock(&ch->mu);
        mg__holder_t *h = find_holder_locked(ch, interp);
        if (h != NULL)
            fully = detach_locked(ch, h, h->send, h->recv, &dropped);
        mg__mutex_unlock(&ch->mu);
        free_items(dropped);
        if (fully)
            table_remove(ch);
        mg__channel_decref(ch);
    }
    free(all);
}

/* ---- send and receive -------------------------------------------------- */

/* Spin until ch has an item or is closed, or the budget (or the deadline)
 * passes.  Called without the lock. */
static void
spin_for_item(mg__channel_t *ch, int64_t deadline_ns)
{
    int64_t budget = __atomic_load_n(&ch->spin_ns, __ATOMIC_RELAXED);
    int64_t start = mg__monotonic_ns(), until = start + budget;
    if (deadline_ns > 0 && deadline_ns < until)
        until = deadline_ns;
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(&ch->count, __ATOMIC_ACQUIRE) > 0
                || __atomic_load_n(&ch->send_closed, __ATOMIC_ACQUIRE)
                || __atomic_load_n(&ch->recv_closed, __ATOMIC_ACQUIRE)) {
            int64_t grown = budget + (budget >> 1);
            __atomic_store_n(&ch->spin_ns, grown > SPIN_MAX_NS ? SPIN_MAX_NS : grown,
                             __ATOMIC_RELAXED);
            return;
        }
        mg__spin_step(i);
        if ((i & 15) == 0 && mg__monotonic_ns() >= until)
            break;
    }
    int64_t shrunk = budget >> 1;
    __atomic_store_n(&ch->spin_ns, shrunk < SPIN_MIN_NS ? SPIN_MIN_NS : shrunk, __ATOMIC_RELAXED);
}

/* Block on c until signalled or the deadline (mu held); registers w in the
 * waits table on the first block.  Returns 0 or MG_ETIMEDOUT. */
static int
wait_locked(mg__channel_t *ch, mg__cond_t *c, int64_t deadline_ns, mg__wait_t *w,
            int *registered)
{
    if (w != NULL && !*registered) {
        w->chan = ch;
        mg__waits_add(w);
        *registered = 1;
    }
    if (w != NULL && w->broken)
        return MG_EDEADLOCK;
    int rc = 0;
    if (deadline_ns < 0)
        mg__cond_wait(c, &ch->mu);
    else
        rc = mg__cond_timedwait(c, &ch->mu, deadline_ns) ? MG_ETIMEDOUT : 0;
    /* The deadlock detector sets the flag under ch->mu, then wakes us. */
    return (w != NULL && w->broken) ? MG_EDEADLOCK : rc;
}

int
mg__channel_send(mg__channel_t *ch, mg__buf_t *item, int64_t deadline_ns, mg__wait_t *w)
{
    mg__item_t *node = malloc(sizeof *node);
    if (node == NULL)
        return MG_ENOMEM;
    int rc, registered = 0;
    mg__mutex_lock(&ch->mu);
    for (;;) {
        if (ch->send_closed || ch->recv_closed) {
            rc = MG_ECHCLOSED;
            break;
        }
        if (ch->maxsize <= 0 || ch->count < ch->maxsize) {
            node->next = NULL;
            mg__buf_move(&node->buf, item);
            if (ch->tail != NULL)
                ch->tail->next = node;
            else
                ch->head = node;
            ch->tail = node;
            __atomic_store_n(&ch->count, ch->count + 1, __ATOMIC_RELEASE);
            node = NULL;
            mg__cond_signal(&ch->not_empty);
            if (ch->watch_head != NULL)
                fire_locked(ch, MG__WAIT_RECV, 0);
            rc = 0;
            break;
        }
        if (deadline_ns == 0) {
            rc = MG_EFULL;
            break;
        }
        int wrc = wait_locked(ch, &ch->not_full, deadline_ns, w, &registered);
        if (wrc == MG_EDEADLOCK || (wrc == MG_ETIMEDOUT && ch->count >= ch->maxsize
                                    && !ch->send_closed && !ch->recv_closed)) {
            rc = wrc;
            break;
        }
    }
    /* Leave the table under ch->mu: the detector, holding it, then sees a
     * wait present exactly while its waiter still waits (break_set). */
    if (registered)
        mg__waits_remove(w);
    mg__mutex_unlock(&ch->mu);
    free(node);
    return rc;
}

int
mg__channel_recv(mg__channel_t *ch, mg__buf_t *out, int64_t deadline_ns, mg__wait_t *w)
{
    int rc, registered = 0;
    mg__item_t *node = NULL;
    if (deadline_ns != 0)
        spin_for_item(ch, deadline_ns);
    mg__mutex_lock(&ch->mu);
    for (;;) {
        if (ch->head != NULL) {
            node = ch->head;
            ch->head = node->next;
            if (ch->head == NULL)
                ch->tail = NULL;
            __atomic_store_n(&ch->count, ch->count - 1, __ATOMIC_RELEASE);
            mg__cond_signal(&ch->not_full);
            if (ch->watch_head != NULL && ch->maxsize > 0)
                fire_locked(ch, MG__WAIT_SEND, 0);
            rc = 0;
            break;
        }
        if (ch->send_closed || ch->recv_closed) {
            rc = MG_ECHCLOSED;
            break;
        }
        if (deadline_ns == 0) {
            rc = MG_EEMPTY;
            break;
        }
        int wrc = wait_locked(ch, &ch->not_empty, deadline_ns, w, &registered);
        if (wrc == MG_EDEADLOCK || (wrc == MG_ETIMEDOUT && ch->head == NULL
                                    && !ch->send_closed && !ch->recv_closed)) {
            rc = wrc;
            break;
        }
    }
    /* Leave the table under ch->mu: the detector, holding it, then sees a
     * wait present exactly while its waiter still waits (break_set). */
    if (registered)
        mg__waits_remove(w);
    mg__mutex_unlock(&ch->mu);
    if (node != NULL) {
        mg__buf_move(out, &node->buf);
        free(node);
    }
    return rc;
}

/* ---- for the deadlock detector ----------------------------------------- */

void mg__channel_incref_void(void *ch) { mg__channel_incref(ch); }

int
mg__channel_peers(mg__channel_t *ch, int end, int64_t *interps, size_t cap, size_t *n)
{
    int rc = 0;
    int64_t via = 0;
    *n = 0;
    mg__mutex_lock(&ch->mu);
    int closed = (end & MG__END_SEND) ? ch->send_closed : ch->recv_closed;
    if (ch->send_closed || ch->recv_closed || closed || (ch->pinned & end)) {
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < ch->nholders; i++) {
        const mg__holder_t *h = &ch->holders[i];
        int64_t count = ((end & MG__END_SEND) ? h->send : 0) + ((end & MG__END_RECV) ? h->recv : 0);
        if (count == 0)
            continue;
        if (h->interp == MG__TRANSIT && end == MG__END_SEND && ch->answered_via > 0) {
            via = ch->answered_via;     /* in the inbox's queue: see below */
            continue;
        }
        if (h->interp == MG__TRANSIT || *n == cap) {
            rc = 1;
            goto done;
        }
        interps[(*n)++] = h->interp;
    }
done:
    mg__mutex_unlock(&ch->mu);
    if (rc == 0 && via > 0) {
        /* Whoever receives on the inbox will hold it (one lock at a time:
         * the inbox is not a reply channel, so this does not recurse). */
        mg__channel_t *inbox;
        size_t m = 0;
        if (mg__channel_find(via, &inbox) != 0)
            return 1;
        rc = inbox->id == ch->id ? 1
           : mg__channel_peers(inbox, MG__END_RECV, interps + *n, cap - *n, &m);
        mg__channel_decref(inbox);
        *n += m;
    }
    return rc;
}

int
mg__channel_set_reply(mg__channel_t *ch, int64_t via_cid, const char *label)
{
    char *copy = NULL;
    if (label != NULL && (copy = strdup(label)) == NULL)
        return MG_ENOMEM;
    mg__mutex_lock(&ch->mu);
    ch->answered_via = via_cid;
    free(ch->label);
    ch->label = copy;
    mg__mutex_unlock(&ch->mu);
    return 0;
}

void
mg__channel_label(mg__channel_t *ch, char *buf, size_t size)
{
    mg__mutex_lock(&ch->mu);
    snprintf(buf, size, "%s", ch->label != NULL ? ch->label : "");
    mg__mutex_unlock(&ch->mu);
}

static int
cmp_chan_id(const void *a, const void *b)
{
    int64_t x = (*(mg__channel_t *const *)a)->id, y = (*(mg__channel_t *const *)b)->id;
    return (x > y) - (x < y);
}

/* Can a waiter of `kind` on ch complete now (an item to take, room to put,
 * or a closed end that wakes it)?  Call with ch->mu held. */
static int
satisfiable_locked(mg__channel_t *ch, int kind)
{
    if (ch->send_closed || ch->recv_closed)
        return 1;
    if (kind == MG__WAIT_RECV)
        return ch->head != NULL;
    return ch->maxsize <= 0 || ch->count < ch->maxsize;
}

int
mg__channel_break_set(mg__channel_t *const *chans, const uint64_t *serials, const int *kinds,
                      size_t n, const char *why)
{
    mg__channel_t **locked = malloc((n ? n : 1) * sizeof *locked);
    if (locked == NULL)
        return 0;                   /* the next pass tries again */
    memcpy(locked, chans, n * sizeof *locked);
    qsort(locked, n, sizeof *locked, cmp_chan_id);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || locked[m - 1] != locked[i])
            locked[m++] = locked[i];
    for (size_t i = 0; i < m; i++)  /* in id order: no other path holds two */
        mg__mutex_lock(&locked[i]->mu);
    int hopeless = 1;
    for (size_t i = 0; i < n && hopeless; i++)
        hopeless = mg__waits_present(serials[i]) && !satisfiable_locked(chans[i], kinds[i]);
    int broken = 0;
    for (size_t i = 0; i < n && hopeless; i++)
        broken += mg__waits_break(serials[i], why);
    for (size_t i = 0; i < m; i++) {
        if (broken) {
            mg__cond_broadcast(&locked[i]->not_empty);
            mg__cond_broadcast(&locked[i]->not_full);
        }
        mg__mutex_unlock(&locked[i]->mu);
    }
    free(locked);
    return broken;
}
