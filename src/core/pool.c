/* pool.c -- a pool's task queue (see pool.h).
 *
 * One mutex per pool, a leaf: held only for list operations.  Workers wait
 * on `work`, the collector on `done`.  Task payloads and results are freed
 * outside the mutex (freeing may release channel references).
 */
#include <stdlib.h>
#include "manygil.h"
#include "core/pool.h"
#include "core/sync.h"

#define SPIN_NS (50 * 1000)

struct mg__pool {
    mg__mutex_t mu;
    mg__cond_t work;            /* a task was queued, or shutdown/broken */
    mg__cond_t done;            /* a task finished, or nothing more will */
    mg__task_t *qhead, *qtail;  /* guarded by mu: queued */
    mg__task_t *dhead, *dtail;  /* guarded by mu: finished, not collected */
    int64_t queued;             /* guarded by mu; written atomically (spinners read it) */
    int64_t running;            /* guarded by mu */
    int sleepers;               /* guarded by mu: workers waiting on `work` */
    int shutdown;               /* guarded by mu; written atomically */
    int broken;                 /* guarded by mu; written atomically */
    int nudged;                 /* guarded by mu: mg__pool_nudge() not yet seen by collect */
    int refs;                   /* atomic */
};

mg__task_t *
mg__task_new(uint64_t seq, int kind, mg__buf_t *payload)
{
    mg__task_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->seq = seq;
    t->kind = kind;
    mg__buf_move(&t->payload, payload);
    return t;
}

void
mg__task_free(mg__task_t *t)
{
    if (t == NULL)
        return;
    mg__buf_free(&t->payload);
    mg__buf_free(&t->result);
    free(t);
}

void
mg__task_free_list(mg__task_t *t)
{
    while (t != NULL) {
        mg__task_t *next = t->next;
        mg__task_free(t);
        t = next;
    }
}

int
mg__pool_new(mg__pool_t **out)
{
    mg__pool_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MG_ENOMEM;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto error;
    if (mg__cond_init(&p->work) != 0) {
        pthread_mutex_destroy(&p->mu);
        goto error;
    }
    if (mg__cond_init(&p->done) != 0) {
        mg__cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        goto error;
    }
    p->refs = 1;
    *out = p;
    return 0;
error:
    free(p);
    return MG_ENOMEM;
}

void
mg__pool_incref(mg__pool_t *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void
mg__pool_decref(mg__pool_t *p)
{
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    mg__task_free_list(p->qhead);
    mg__task_free_list(p->dhead);
    mg__cond_destroy(&p->work);
    mg__cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Append t to the finished list (mu held). */
static void
push_done_locked(mg__pool_t *p, mg__task_t *t)
{
    t->next = NULL;
    if (p->dtail != NULL)
        p->dtail->next = t;
    else
        p->dhead = t;
    p->dtail = t;
}

/* Finish every queued task with `status` (mu held). */
static void
drain_queue_locked(mg__pool_t *p, int status)
{
    while (p->qhead != NULL) {
        mg__task_t *t = p->qhead;
        p->qhead = t->next;
        t->status = status;
        push_done_locked(p, t);
    }
    p->qtail = NULL;
    __atomic_store_n(&p->queued, 0, __ATOMIC_RELEASE);
}

int
mg__pool_submit(mg__pool_t *p, mg__task_t *t)
{
    int rc = 0;
    mg__mutex_lock(&p->mu);
    if (p->broken)
        rc = MG_EBROKEN;
    else if (p->shutdown)
        rc = MG_ESHUTDOWN;
    else {
        t->next = NULL;
        if (p->qtail != NULL)
            p->qtail->next = t;
        else
            p->qhead = t;
        p->qtail = t;
        __atomic_store_n(&p->queued, p->queued + 1, __ATOMIC_RELEASE);
        if (p->sleepers > 0)        /* spinning workers see `queued` */
            mg__cond_signal(&p->work);
    }
    mg__mutex_unlock(&p->mu);
    return rc;
}

mg__task_t *
mg__pool_next_task(mg__pool_t *p)
{
    /* Tiny tasks come in bursts: spin a little before sleeping. */
    int64_t until = mg__monotonic_ns() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(&p->queued, __ATOMIC_ACQUIRE) > 0
                || __atomic_load_n(&p->shutdown, __ATOMIC_ACQUIRE)
                || __atomic_load_n(&p->broken, __ATOMIC_ACQUIRE))
            break;
        mg__spin_step(i);
        if ((i & 15) == 0 && mg__monotonic_ns() >= until)
            break;
    }
    mg__task_t *t = NULL;
    mg__mutex_lock(&p->mu);
    for (;;) {
        if (p->broken)
            break;
        if (p->qhead != NULL) {
            t = p->qhead;
            p->qhead = t->next;
            if (p->qhead == NULL)
                p->qtail = NULL;
            __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELEASE);
            p->running++;
            break;
        }
        if (p->shutdown)
            break;
        p->sleepers++;
        mg__cond_wait(&p->work, &p->mu);
        p->sleepers--;
    }
    mg__mutex_unlock(&p->mu);
    if (t != NULL)
        t->next = NULL;
    return t;
}

void
mg__pool_finish(mg__pool_t *p, mg__task_t *t)
{
    mg__mutex_lock(&p->mu);
    int abandoned = t->abandoned;
    if (!abandoned) {
        p->running--;
        push_done_locked(p, t);
        mg__cond_signal(&p->done);
    }
    mg__mutex_unlock(&p->mu);
    if (abandoned)
        mg__task_free(t);
}

void
mg__pool_abandon(mg__pool_t *p, mg__task_t *t)
{
    mg__mutex_lock(&p->mu);
    if (!t->abandoned) {
        t->abandoned = 1;
        p->running--;
        mg__cond_broadcast(&p->done);
    }
    mg__mutex_unlock(&p->mu);
}

mg__task_t *
mg__pool_collect(mg__pool_t *p, int64_t deadline_ns, int *nudged)
{
    mg__task_t *list = NULL;
    mg__mutex_lock(&p->mu);
    *nudged = 0;
    for (;;) {
        if (p->dhead != NULL) {
            list = p->dhead;
            p->dhead = p->dtail = NULL;
            break;
        }
        if (p->nudged) {
            p->nudged = 0;
            *nudged = 1;
            break;
        }
        if ((p->shutdown || p->broken) && p->qhead == NULL && p->running == 0)
            break;
        if (deadline_ns == 0)
            break;
        if (deadline_ns < 0)
            mg__cond_wait(&p->done, &p->mu);
        else if (mg__cond_timedwait(&p->done, &p->mu, deadline_ns))
            deadline_ns = 0;    /* one last look */
    }
    mg__mutex_unlock(&p->mu);
    return list;
}

void
mg__pool_nudge(mg__pool_t *p)
{
    mg__mutex_lock(&p->mu);
    p->nudged = 1;
    mg__cond_broadcast(&p->done);
    mg__mutex_unlock(&p->mu);
}

int
mg__pool_cancel(mg__pool_t *p, uint64_t seq)
{
    int found = 0;
    mg__mutex_lock(&p->mu);
    mg__task_t **pp = &p->qhead, *prev = NULL;
    while (*pp != NULL && (*pp)->seq != seq) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp != NULL) {
        mg__task_t *t = *pp;
        *pp = t->next;
        if (p->qtail == t)
            p->qtail = prev;
        __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELEASE);
        t->status = MG_ECANCELLED;
        push_done_locked(p, t);
        mg__cond_signal(&p->done);
        found = 1;
    }
    mg__mutex_unlock(&p->mu);
    return found;
}

void
mg__pool_shutdown(mg__pool_t *p, int cancel_pending)
{
    mg__mutex_lock(&p->mu);
    __atomic_store_n(&p->shutdown, 1, __ATOMIC_RELEASE);
    if (cancel_pending)
        drain_queue_locked(p, MG_ECANCELLED);
    mg__cond_broadcast(&p->work);
    mg__cond_broadcast(&p->done);
    mg__mutex_unlock(&p->mu);
}

void
mg__pool_set_broken(mg__pool_t *p)
{
    mg__mutex_lock(&p->mu);
    __atomic_store_n(&p->broken, 1, __ATOMIC_RELEASE);
    drain_queue_locked(p, MG_EBROKEN);
    mg__cond_broadcast(&p->work);
    mg__cond_broadcast(&p->done);
    mg__mutex_unlock(&p->mu);
}

void
mg__pool_stats(mg__pool_t *p, int64_t *queued, int64_t *running, int *shutdown, int *broken)
{
    mg__mutex_lock(&p->mu);
    *queued = p->queued;
    *running = p->running;
    *shutdown = p->shutdown;
    *broken = p->broken;
    mg__mutex_unlock(&p->mu);
}
