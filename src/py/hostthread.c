/* hostthread.c -- interpreters for host threads: one bound to each native
 * thread that asks (mg_thread_interp), or a bounded set shared by many
 * (mg_iset_*); and each thread's arena for output cells.
 *
 * The per-thread record is reached through a __thread pointer (the hot
 * path takes no lock) and owned by a pthread key whose destructor closes
 * the thread's interpreter when the thread exits -- unless Python is
 * finalizing or finalized by then: manygil's exit hook ends every
 * interpreter of its own at exit, a bound one included. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "py/host.h"
#include "py/interp.h"
#include "core/sync.h"

typedef struct {
    int64_t interp;             /* the bound interpreter, when `bound` */
    int bound;
    char *arena;                /* output cells of the last batch */
    size_t cap;
} hostthread_t;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_rc;
static __thread hostthread_t *self;

static void
close_bound(hostthread_t *t)
{
    if (t->bound && Py_IsInitialized() && !mg__interp_exit_started())
        (void)mg__interp_close(t->interp);
    t->bound = 0;
}

static void
thread_end(void *arg)
{
    hostthread_t *t = arg;
    close_bound(t);
    free(t->arena);
    free(t);
}

static void
make_key(void)
{
    key_rc = pthread_key_create(&key, thread_end);
}

static hostthread_t *
get_self(void)
{
    if (self != NULL)
        return self;
    pthread_once(&key_once, make_key);
    if (key_rc)
        return NULL;
    hostthread_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (pthread_setspecific(key, t)) {
        free(t);
        return NULL;
    }
    return self = t;
}

char *
mg__host_arena(size_t used, size_t extra)
{
    hostthread_t *t = get_self();
    if (t == NULL)
        return NULL;
    size_t need = used + extra;
    if (need < used)
        return NULL;
    if (t->arena == NULL || need > t->cap) {
        size_t ncap = t->cap ? t->cap : 4096;
        while (ncap < need)
            ncap *= 2;
        char *p = realloc(t->arena, ncap);
        if (p == NULL)
            return NULL;
        t->arena = p;
        t->cap = ncap;
    }
    return t->arena;
}

char *
mg__host_arena_base(void)
{
    return self ? self->arena : NULL;
}

int
mg_thread_interp(int64_t *id)
{
    if (id == NULL)
        return MG_EINVAL;
    hostthread_t *t = get_self();
    if (t == NULL)
        return MG_ENOMEM;
    if (t->bound) {
        *id = t->interp;
        return 0;
    }
    if (!Py_IsInitialized())
        return MG_ENOTINIT;
    if (mg__interp_exit_started())
        return MG_ESHUTDOWN;
    int rc = mg_interp_create(&t->interp);
    if (rc)
        return rc;
    t->bound = 1;
    *id = t->interp;
    return 0;
}

int
mg_thread_release(void)
{
    hostthread_t *t = self;
    if (t == NULL || !t->bound)
        return 0;
    if (!Py_IsInitialized() || mg__interp_exit_started()) {
        t->bound = 0;               /* ended (or being ended) at exit */
        return 0;
    }
    int rc = mg__interp_close(t->interp);
    if (rc == MG_ERUNNING)
        return rc;
    t->bound = 0;                   /* closed, or already gone */
    return 0;
}

/* ---- interpreter sets -------------------------------------------------- */

typedef struct {
    int64_t id;
    int state;                  /* FREE, BUSY, CREATING */
} slot_t;

enum { SLOT_EMPTY = 0, SLOT_FREE, SLOT_BUSY, SLOT_CREATING };

struct mg_iset {
    mg__mutex_t mu;
    mg__cond_t cond;            /* a slot became free, or the set is freed */
    int size;
    int closing;                /* guarded by mu */
    int waiters;                /* guarded by mu: threads inside acquire's wait */
    slot_t *slots;              /* guarded by mu */
};

int
mg_iset_new(int size, mg_iset_t **out)
{
    if (size < 1 || out == NULL)
        return MG_EINVAL;
    mg_iset_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MG_ENOMEM;
    s->slots = calloc((size_t)size, sizeof *s->slots);
    if (s->slots == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->slots);
        free(s);
        return MG_ENOMEM;
    }
    if (mg__cond_init(&s->cond) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s->slots);
        free(s);
        return MG_ENOMEM;
    }
    s->size = size;
    *out = s;
    return 0;
}

int
mg_iset_acquire(mg_iset_t *s, double timeout, int64_t *id)
{
    if (s == NULL || id == NULL || timeout != timeout)
        return MG_EINVAL;
    int64_t deadline = timeout < 0 ? -1 : mg__monotonic_ns() + (int64_t)(timeout * 1e9);
    int rc = 0;
    mg__mutex_lock(&s->mu);
    for (;;) {
        if (s->closing) {
            rc = MG_ESHUTDOWN;
            break;
        }
        int empty = -1, i;
        for (i = 0; i < s->size && s->slots[i].state != SLOT_FREE; i++)
            if (empty < 0 && s->slots[i].state == SLOT_EMPTY)
                empty = i;
        if (i < s->size) {
            s->slots[i].state = SLOT_BUSY;
            *id = s->slots[i].id;
            break;
        }
        if (empty >= 0) {
            s->slots[empty].state = SLOT_CREATING;
            mg__mutex_unlock(&s->mu);
            int64_t nid;
            rc = mg_interp_create(&nid);
            mg__mutex_lock(&s->mu);
            s->slots[empty].state = rc ? SLOT_EMPTY : SLOT_BUSY;
            s->slots[empty].id = nid;
            if (rc == 0)
                *id = nid;
            mg__cond_broadcast(&s->cond);
            break;
        }
        if (deadline >= 0 && mg__monotonic_ns() >= deadline) {
            rc = MG_ETIMEDOUT;
            break;
        }
        /* No GIL is held by a host thread here; a thread that holds one
         * must not call this (it would block that interpreter). */
        s->waiters++;
        if (deadline < 0)
            mg__cond_wait(&s->cond, &s->mu);
        else
            (void)mg__cond_timedwait(&s->cond, &s->mu, deadline);
        s->waiters--;
        if (s->closing)
            mg__cond_broadcast(&s->cond);   /* mg_iset_free waits for us */
    }
    mg__mutex_unlock(&s->mu);
    return rc;
}

int
mg_iset_release(mg_iset_t *s, int64_t id)
{
    if (s == NULL)
        return MG_EINVAL;
    int rc = MG_EINVAL;
    mg__mutex_lock(&s->mu);
    for (int i = 0; i < s->size; i++)
        if (s->slots[i].state == SLOT_BUSY && s->slots[i].id == id) {
            s->slots[i].state = SLOT_FREE;
            mg__cond_broadcast(&s->cond);
            rc = 0;
            break;
        }
    mg__mutex_unlock(&s->mu);
    return rc;
}

int
mg_iset_free(mg_iset_t *s)
{
    if (s == NULL)
        return 0;
    mg__mutex_lock(&s->mu);
    for (int i = 0; i < s->size; i++)
        if (s->slots[i].state == SLOT_BUSY || s->slots[i].state == SLOT_CREATING) {
            mg__mutex_unlock(&s->mu);
            return MG_ERUNNING;
        }
    s->closing = 1;
    mg__cond_broadcast(&s->cond);
    mg__mutex_unlock(&s->mu);
    int exiting = !Py_IsInitialized() || mg__interp_exit_started();
    for (int i = 0; i < s->size; i++)
        if (s->slots[i].state == SLOT_FREE && !exiting)
            (void)mg__interp_close(s->slots[i].id);
    /* Waiters see `closing` and leave with MG_ESHUTDOWN: wait until they
     * have all left the set's mutex and condition. */
    mg__mutex_lock(&s->mu);
    while (s->waiters > 0)
        mg__cond_wait(&s->cond, &s->mu);
    mg__mutex_unlock(&s->mu);
    mg__cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s->slots);
    free(s);
    return 0;
}
