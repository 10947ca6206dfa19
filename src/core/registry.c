/* registry.c -- process-global interpreter table and thread-state cache.
 *
 * Lock order: there is one lock here, registry.mutex; it is a leaf.  Code
 * holding it never waits for a GIL or calls into CPython.  Callers may hold
 * a GIL while taking it (the critical sections are short), except around
 * mg__registry_begin_close, which may wait on registry.cond.
 */
#include <stdlib.h>
#include <pthread.h>
#include "manygil.h"
#include "core/registry.h"
#include "core/sync.h"

typedef struct mg__thread mg__thread_t;

/* One cached thread state: a (thread, interpreter) pair. */
typedef struct mg__tsnode {
    mg__interp_t *rec;              /* guarded by registry.mutex */
    mg__thread_t *thread;           /* guarded by registry.mutex */
    void *tstate;                   /* immutable */
    struct mg__tsnode *next_in_rec;    /* guarded by registry.mutex */
    struct mg__tsnode *next_in_thread; /* guarded by registry.mutex */
} mg__tsnode_t;

/* Per-thread bookkeeping, created on the thread's first cached state and
 * freed by the thread-exit hook. */
struct mg__thread {
    mg__tsnode_t *nodes;            /* guarded by registry.mutex */
};

enum { MG__ALIVE = 1, MG__CLOSING = 2 };

struct mg__interp {
    int64_t id;                     /* immutable */
    void *py_interp;                /* immutable */
    int is_main;                    /* immutable */
    int state;                      /* guarded by registry.mutex */
    int running;                    /* guarded by registry.mutex */
    int pins;                       /* guarded by registry.mutex: exit hooks and visits at work */
    int refs;                       /* guarded by registry.mutex: table + pins */
    mg__tsnode_t *nodes;            /* guarded by registry.mutex */
    void *anchor;                   /* guarded by registry.mutex */
    struct mg__interp *next;        /* guarded by registry.mutex */
};

static struct {
    mg__mutex_t mutex;
    mg__cond_t cond;                /* signalled when running/pins drop (untimed waits) */
    pthread_once_t once;
    pthread_key_t key;              /* -> mg__thread_t, destructor: thread_exit */
    int init_rc;
    mg__interp_t *head;             /* guarded by mutex */
    mg__tstate_deleter_t deleter;   /* set once at module load */
    int finalized;                  /* guarded by mutex */
} registry = {
    .mutex = MG__MUTEX_INIT,
    .cond = PTHREAD_COND_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
};

static void thread_exit(void *arg);

static void
registry_init_once(void)
{
    registry.init_rc = pthread_key_create(&registry.key, thread_exit);
}

/* 0 once the registry's thread key exists, else MG_ENOMEM. */
static int
registry_ready(void)
{
    pthread_once(&registry.once, registry_init_once);
    return registry.init_rc ? MG_ENOMEM : 0;
}

void
mg__registry_after_fork_child(void)
{
    registry.mutex = (mg__mutex_t)MG__MUTEX_INIT;
    registry.cond = (mg__cond_t)PTHREAD_COND_INITIALIZER;
}

void
mg__registry_set_deleter(mg__tstate_deleter_t fn)
{
    mg__mutex_lock(&registry.mutex);
    registry.deleter = fn;
    mg__mutex_unlock(&registry.mutex);
}

void
mg__registry_mark_finalized(void)
{
    mg__mutex_lock(&registry.mutex);
    registry.finalized = 1;
    mg__mutex_unlock(&registry.mutex);
}

/* ---- helpers (registry.mutex held) ------------------------------------- */

static mg__interp_t *
find_locked(int64_t id)
{
    for (mg__interp_t *r = registry.head; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void
unref_locked(mg__interp_t *rec)
{
    if (--rec->refs == 0)
        free(rec);
}

/* Unlink node from its thread's list. */
static void
unlink_from_thread_locked(mg__tsnode_t *node)
{
    mg__tsnode_t **pp = &node->thread->nodes;
    while (*pp != node)
        pp = &(*pp)->next_in_thread;
    *pp = node->next_in_thread;
}

static void
unlink_from_rec_locked(mg__tsnode_t *node)
{
    mg__tsnode_t **pp = &node->rec->nodes;
    while (*pp != node)
        pp = &(*pp)->next_in_rec;
    *pp = node->next_in_rec;
}

/* The calling thread's bookkeeping, created if `create`; NULL on ENOMEM. */
static mg__thread_t *
current_thread(int create)
{
    mg__thread_t *t = pthread_getspecific(registry.key);
    if (t == NULL && create) {
        t = calloc(1, sizeof *t);
        if (t != NULL && pthread_setspecific(registry.key, t) != 0) {
            free(t);
            t = NULL;
        }
    }
    return t;
}

static int
cache_locked(mg__interp_t *rec, void *tstate)
{
    mg__thread_t *t = current_thread(1);
    mg__tsnode_t *node = t ? malloc(sizeof *node) : NULL;
    if (node == NULL)
        return MG_ENOMEM;
    node->rec = rec;
    node->thread = t;
    node->tstate = tstate;
    node->next_in_rec = rec->nodes;
    rec->nodes = node;
    node->next_in_thread = t->nodes;
    t->nodes = node;
    return 0;
}

/* ---- public (internal) API --------------------------------------------- */

int
mg__registry_add(int64_t id, void *py_interp, int is_main, void *creator_tstate,
                 void *anchor)
{
    int rc = registry_ready();
    if (rc)
        return rc;
    mg__interp_t *rec = calloc(1, sizeof *rec);
    if (rec == NULL)
        return MG_ENOMEM;
    rec->id = id;
    rec->py_interp = py_interp;
    rec->is_main = is_main;
    rec->state = MG__ALIVE;
    rec->refs = 1;
    rec->anchor = anchor;

    mg__mutex_lock(&registry.mutex);
    if (find_locked(id) != NULL) {
        rc = MG_EINVAL;
        goto error;
    }
    if (creator_tstate != NULL && cache_locked(rec, creator_tstate) != 0) {
        rc = MG_ENOMEM;
        goto error;
    }
    rec->next = registry.head;
    registry.head = rec;
    mg__mutex_unlock(&registry.mutex);
    return 0;

error:
    mg__mutex_unlock(&registry.mutex);
    free(rec);
    return rc;
}

/* The calling thread's cached state for rec, or NULL.  Registry locked. */
static void *
cached_tstate_locked(mg__interp_t *rec)
{
    mg__thread_t *t = current_thread(0);
    for (mg__tsnode_t *n = t ? t->nodes : NULL; n != NULL; n = n->next_in_thread)
        if (n->rec == rec)
            return n->tstate;
    return NULL;
}

/* Find live interpreter id and count the caller in it: as running (a run:
 * close refuses meanwhile) or as a pin (a brief visit: close waits). */
static int
enter_or_visit(int64_t id, int visit, mg__interp_t **out, void **tstate)
{
    int rc = registry_ready();
    if (rc)
        return rc;
    mg__mutex_lock(&registry.mutex);
    mg__interp_t *rec = find_locked(id);
    if (rec == NULL || rec->state != MG__ALIVE) {
        mg__mutex_unlock(&registry.mutex);
        return MG_ENOTFOUND;
    }
    if (visit)
        rec->pins++;
    else
        rec->running++;
    rec->refs++;
    *tstate = cached_tstate_locked(rec);
    mg__mutex_unlock(&registry.mutex);
    *out = rec;
    return 0;
}

int
mg__registry_enter(int64_t id, mg__interp_t **out, void **tstate)
{
    return enter_or_visit(id, 0, out, tstate);
}

int
mg__registry_cache_tstate(mg__interp_t *rec, void *tstate)
{
    mg__mutex_lock(&registry.mutex);
    int rc = cache_locked(rec, tstate);
    mg__mutex_unlock(&registry.mutex);
    return rc;
}

void
mg__registry_uncache_tstate(mg__interp_t *rec, void *tstate)
{
    mg__mutex_lock(&registry.mutex);
    mg__thread_t *t = current_thread(0);
    for (mg__tsnode_t *n = t ? t->nodes : NULL; n != NULL; n = n->next_in_thread) {
        if (n->rec == rec && n->tstate == tstate) {
            unlink_from_thread_locked(n);
            unlink_from_rec_locked(n);
            free(n);
            break;
        }
    }
    mg__mutex_unlock(&registry.mutex);
}

void
mg__registry_leave(mg__interp_t *rec)
{
    mg__mutex_lock(&registry.mutex);
    rec->running--;
    if (rec->running == 0)
        mg__cond_broadcast(&registry.cond);
    unref_locked(rec);
    mg__mutex_unlock(&registry.mutex);
}

void
mg__registry_leave_pinned(mg__interp_t *rec)
{
    mg__mutex_lock(&registry.mutex);
    rec->running--;
    rec->pins++;                /* the entry's reference goes to the pin */
    if (rec->running == 0)
        mg__cond_broadcast(&registry.cond);
    mg__mutex_unlock(&registry.mutex);
}

int
mg__registry_visit(int64_t id, mg__interp_t **out, void **tstate)
{
    return enter_or_visit(id, 1, out, tstate);
}

void
mg__registry_unvisit(mg__interp_t *rec)
{
    mg__mutex_lock(&registry.mutex);
    if (--rec->pins == 0)
        mg__cond_broadcast(&registry.cond);
    unref_locked(rec);
    mg__mutex_unlock(&registry.mutex);
}

int
mg__registry_running(mg__interp_t *rec)
{
    mg__mutex_lock(&registry.mutex);
    int n = rec->running;
    mg__mutex_unlock(&registry.mutex);
    return n;
}

int
mg__registry_begin_exit(int64_t id, mg__interp_t **out, void **own, int *running)
{
    int rc = registry_ready();
    if (rc)
        return rc;
    mg__mutex_lock(&registry.mutex);
    mg__interp_t *rec = find_locked(id);
    if (rec == NULL || rec->state != MG__ALIVE) {
        rc = MG_ENOTFOUND;
        goto done;
    }
    if (rec->is_main) {
        rc = MG_EMAININTERP;
        goto done;
    }
    rec->state = MG__CLOSING;
    rec->refs++;
    while (rec->pins > 0)
        mg__cond_wait(&registry.cond, &registry.mutex);
    mg__thread_t *self = current_thread(0);
    *own = NULL;
    while (rec->nodes != NULL) {
        mg__tsnode_t *n = rec->nodes;
        rec->nodes = n->next_in_rec;
        unlink_from_thread_locked(n);
        if (n->thread == self && *own == NULL)
            *own = n->tstate;
        free(n);
    }
    rec->anchor = NULL;
    *running = rec->running;
    *out = rec;
done:
    mg__mutex_unlock(&registry.mutex);
    return rc;
}

void *
mg__registry_py_interp(const mg__interp_t *rec)
{
    return rec->py_interp;
}

int
mg__registry_begin_close(int64_t id, mg__interp_t **out, void **own,
                         void ***others, size_t *nothers)
{
    int rc = registry_ready();
    if (rc)
        return rc;
    mg__mutex_lock(&registry.mutex);
    mg__interp_t *rec = find_locked(id);
    if (rec == NULL || rec->state != MG__ALIVE) {
        rc = MG_ENOTFOUND;
        goto done;
    }
    if (rec->is_main) {
        rc = MG_EMAININTERP;
        goto done;
    }
    if (rec->running > 0) {
        rc = MG_ERUNNING;
        goto done;
    }
    size_t count = 1;               /* room for the anchor */
    for (mg__tsnode_t *n = rec->nodes; n != NULL; n = n->next_in_rec)
        count++;
    void **arr = malloc(count * sizeof *arr);
    if (arr == NULL) {
        rc = MG_ENOMEM;
        goto done;
    }
    rec->state = MG__CLOSING;
    rec->refs++;
    /* Thread-exit hooks already holding states of rec finish first. */
    while (rec->pins > 0)
        mg__cond_wait(&registry.cond, &registry.mutex);

    mg__thread_t *self = current_thread(0);
    *own = NULL;
    *nothers = 0;
    while (rec->nodes != NULL) {
        mg__tsnode_t *n = rec->nodes;
        rec->nodes = n->next_in_rec;
        unlink_from_thread_locked(n);
        if (n->thread == self && *own == NULL)
            *own = n->tstate;
        else
            arr[(*nothers)++] = n->tstate;
        free(n);
    }
    if (rec->anchor != NULL) {
        arr[(*nothers)++] = rec->anchor;
        rec->anchor = NULL;
    }
    *others = arr;
    *out = rec;
done:
    mg__mutex_unlock(&registry.mutex);
    return rc;
}

void
mg__registry_end_close(mg__interp_t *rec)
{
    mg__mutex_lock(&registry.mutex);
    mg__interp_t **pp = &registry.head;
    while (*pp != NULL && *pp != rec)
        pp = &(*pp)->next;
    int drop = 1;                   /* the closer's pin */
    if (*pp == rec) {
        *pp = rec->next;
        drop++;                     /* and the table's reference */
    }
    rec->refs -= drop - 1;          /* the pin keeps it alive until the last one */
    unref_locked(rec);
    mg__mutex_unlock(&registry.mutex);
}

int
mg__registry_is_running(int64_t id)
{
    int rc;
    mg__mutex_lock(&registry.mutex);
    mg__interp_t *rec = find_locked(id);
    if (rec == NULL || rec->state != MG__ALIVE)
        rc = MG_ENOTFOUND;
    else
        rc = rec->running > 0;
    mg__mutex_unlock(&registry.mutex);
    return rc;
}

size_t
mg__registry_count_existing(int64_t except_id)
{
    size_t count = 0;
    mg__mutex_lock(&registry.mutex);
    for (mg__interp_t *r = registry.head; r != NULL; r = r->next)
        count += r->id != except_id;
    mg__mutex_unlock(&registry.mutex);
    return count;
}

int
mg__registry_ids(int64_t **ids, size_t *n)
{
    mg__mutex_lock(&registry.mutex);
    size_t count = 0;
    for (mg__interp_t *r = registry.head; r != NULL; r = r->next)
        count += r->state == MG__ALIVE;
    int64_t *arr = malloc((count ? count : 1) * sizeof *arr);
    if (arr == NULL) {
        mg__mutex_unlock(&registry.mutex);
        return MG_ENOMEM;
    }
    size_t i = 0;
    for (mg__interp_t *r = registry.head; r != NULL; r = r->next)
        if (r->state == MG__ALIVE)
            arr[i++] = r->id;
    mg__mutex_unlock(&registry.mutex);
    /* The table is newest-first; report in creation order. */
    for (size_t a = 0, b = i; a + 1 < b; a++, b--) {
        int64_t tmp = arr[a];
        arr[a] = arr[b - 1];
        arr[b - 1] = tmp;
    }
    *ids = arr;
    *n = i;
    return 0;
}

/* pthread key destructor: the thread is ending; delete the thread states it
 * cached, each while the interpreter is pinned so a concurrent close waits
 * for us instead of ending the interpreter under our feet. */
static void
thread_exit(void *arg)
{
    mg__thread_t *t = arg;
    struct pending { mg__interp_t *rec; void *tstate; } *todo = NULL;
    size_t n = 0, cap = 0;

    mg__mutex_lock(&registry.mutex);
    int finalized = registry.finalized;
    mg__tstate_deleter_t deleter = registry.deleter;
    while (t->nodes != NULL) {
        mg__tsnode_t *node = t->nodes;
        t->nodes = node->next_in_thread;
        unlink_from_rec_locked(node);
        if (!finalized && deleter != NULL) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                struct pending *p = realloc(todo, ncap * sizeof *p);
                if (p == NULL) {    /* leak the state rather than crash */
                    free(node);
                    continue;
                }
                todo = p;
                cap = ncap;
            }
            node->rec->pins++;
            node->rec->refs++;
            todo[n].rec = node->rec;
            todo[n].tstate = node->tstate;
            n++;
        }
        free(node);
    }
    mg__mutex_unlock(&registry.mutex);

    for (size_t i = 0; i < n; i++)
        deleter(todo[i].rec->py_interp, todo[i].tstate);

    mg__mutex_lock(&registry.mutex);
    for (size_t i = 0; i < n; i++) {
        todo[i].rec->pins--;
        unref_locked(todo[i].rec);
    }
    if (n)
        mg__cond_broadcast(&registry.cond);
    mg__mutex_unlock(&registry.mutex);
    free(todo);
    free(t);
}
