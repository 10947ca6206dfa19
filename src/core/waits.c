/* waits.c -- the activity table (see waits.h).  One mutex; a leaf except
 * that mg__waits_break is called with a channel mutex held (channel mutex,
 * then this one: never the other way). */
#include <stdlib.h>
#include <string.h>
#include "manygil.h"
#include "core/sync.h"
#include "core/waits.h"

static struct {
    mg__mutex_t mutex;
    mg__cond_t changed;         /* broadcast when generation moves (lazily initialized) */
    int cond_ready;             /* guarded by mutex */
    mg__wait_t *head;           /* guarded by mutex */
    size_t count;               /* guarded by mutex */
    size_t forever;             /* guarded by mutex: waits without deadline */
    uint64_t next_serial;       /* guarded by mutex */
    uint64_t generation;        /* atomic */
    int sleepers;               /* guarded by mutex: threads in wait_change */
} waits = { .mutex = MG__MUTEX_INIT, .next_serial = 1 };

/* Called (then cleared) when a wait without deadline is added: the deadlock
 * detector starts its thread then, not before (so a process that only
 * imported manygil has no extra thread: fork() does not warn).  atomic. */
static void (*forever_hook)(void);

/* Run and clear the hook (no waits mutex held: the hook may take its own
 * lock and start a thread; a channel mutex may be held). */
static void
run_forever_hook(void)
{
    if (__atomic_load_n(&forever_hook, __ATOMIC_ACQUIRE) == NULL)
        return;
    void (*fn)(void) = __atomic_exchange_n(&forever_hook, NULL, __ATOMIC_ACQ_REL);
    if (fn != NULL)
        fn();
}

void
mg__waits_set_forever_hook(void (*fn)(void))
{
    __atomic_store_n(&forever_hook, fn, __ATOMIC_RELEASE);
    if (fn != NULL && mg__waits_forever_count() > 0)
        run_forever_hook();
}

static int
is_forever_wait(const mg__wait_t *w)
{
    return (w->kind == MG__WAIT_SEND || w->kind == MG__WAIT_RECV) && w->forever;
}

/* Move the generation and wake sleepers (mutex held).  Only waits without
 * deadline can deadlock: without any, the detector sleeps on, so busy runs
 * (a pool serving tasks) do not wake it. */
static void
changed_locked(void)
{
    __atomic_add_fetch(&waits.generation, 1, __ATOMIC_RELEASE);
    if (waits.sleepers > 0 && waits.forever > 0)
        mg__cond_broadcast(&waits.changed);
}

static void
link_locked(mg__wait_t *w)
{
    w->serial = waits.next_serial++;
    w->prev = NULL;
    w->next = waits.head;
    if (waits.head != NULL)
        waits.head->prev = w;
    waits.head = w;
    waits.count++;
    if (is_forever_wait(w))
        waits.forever++;
    if (!w->quiet)
        changed_locked();
}

static void
unlink_locked(mg__wait_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        waits.head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    waits.count--;
    if (is_forever_wait(w))
        waits.forever--;
    if (!w->quiet)
        changed_locked();
}

void
mg__waits_add(mg__wait_t *w)
{
    w->broken = 0;
    w->why = NULL;
    mg__mutex_lock(&waits.mutex);
    link_locked(w);
    mg__mutex_unlock(&waits.mutex);
    if (is_forever_wait(w))
        run_forever_hook();
}

void
mg__waits_remove(mg__wait_t *w)
{
    mg__mutex_lock(&waits.mutex);
    unlink_locked(w);
    mg__mutex_unlock(&waits.mutex);
}

void
mg__waits_after_fork_child(unsigned long self_ident)
{
    /* The records of threads the child does not have go: waits (on their
     * stacks: unlinked only) and homes (on the heap: freed); the surviving
     * thread's homes stay.  Its locks start anew. */
    waits.mutex = (mg__mutex_t)MG__MUTEX_INIT;
    waits.cond_ready = 0;
    waits.sleepers = 0;
    mg__wait_t *w = waits.head, *keep = NULL;
    waits.head = NULL;
    waits.count = 0;
    waits.forever = 0;
    while (w != NULL) {
        mg__wait_t *next = w->next;
        if (w->kind == MG__ACT_HOME) {
            if (w->thread_ident == self_ident) {
                w->next = keep;
                keep = w;
            }
            else {
                free(w);
            }
        }
        w = next;
    }
    while (keep != NULL) {
        mg__wait_t *next = keep->next;
        link_locked(keep);
        keep = next;
    }
}

void
mg__waits_set_what(mg__wait_t *w, const char *what)
{
    mg__mutex_lock(&waits.mutex);
    w->what = what;
    mg__mutex_unlock(&waits.mutex);
}

int
mg__waits_snapshot(mg__wait_t **out, size_t *n, void (*ref_chan)(void *))
{
    mg__mutex_lock(&waits.mutex);
    mg__wait_t *arr = malloc((waits.count ? waits.count : 1) * sizeof *arr);
    if (arr == NULL) {
        mg__mutex_unlock(&waits.mutex);
        return MG_ENOMEM;
    }
    size_t i = 0;
    for (mg__wait_t *w = waits.head; w != NULL; w = w->next) {
        arr[i] = *w;
        arr[i].prev = arr[i].next = NULL;
        arr[i].why = NULL;
        if (ref_chan != NULL && w->chan != NULL)
            ref_chan(w->chan);
        i++;
    }
    mg__mutex_unlock(&waits.mutex);
    *out = arr;
    *n = i;
    return 0;
}

int
mg__waits_break(uint64_t serial, const char *why)
{
    int found = 0;
    mg__mutex_lock(&waits.mutex);
    for (mg__wait_t *w = waits.head; w != NULL; w = w->next) {
        if (w->serial == serial && !w->broken) {
            w->broken = 1;
            w->why = strdup(why);       /* NULL on ENOMEM: the waiter copes */
            found = 1;
            break;
        }
    }
    mg__mutex_unlock(&waits.mutex);
    return found;
}

int
mg__waits_give_up_run(uint64_t serial, const char *only, const char *what, mg__wait_t *copy)
{
    int found = 0;
    mg__mutex_lock(&waits.mutex);
    for (mg__wait_t *w = waits.head; w != NULL; w = w->next) {
        if (w->serial == serial && w->kind == MG__ACT_RUN && !w->broken && w->what != NULL
                && strcmp(w->what, only) == 0) {
            w->broken = 1;
            w->what = what;
            *copy = *w;
            copy->prev = copy->next = NULL;
            copy->why = NULL;
            found = 1;
            break;
        }
    }
    mg__mutex_unlock(&waits.mutex);
    return found;
}

int
mg__waits_present(uint64_t serial)
{
    int found = 0;
    mg__mutex_lock(&waits.mutex);
    for (mg__wait_t *w = waits.head; w != NULL && !found; w = w->next)
        found = w->serial == serial && !w->broken;
    mg__mutex_unlock(&waits.mutex);
    return found;
}

uint64_t
mg__waits_generation(void)
{
    return __atomic_load_n(&waits.generation, __ATOMIC_ACQUIRE);
}

void
mg__waits_poke(void)
{
    mg__mutex_lock(&waits.mutex);
    changed_locked();
    mg__mutex_unlock(&waits.mutex);
}

uint64_t
mg__waits_wait_change(uint64_t seen, int64_t timeout_ns)
{
    mg__mutex_lock(&waits.mutex);
    if (!waits.cond_ready) {
        if (mg__cond_init(&waits.changed) != 0) {
            mg__mutex_unlock(&waits.mutex);
            return mg__waits_generation();
        }
        waits.cond_ready = 1;
    }
    int64_t deadline = timeout_ns < 0 ? -1 : mg__monotonic_ns() + timeout_ns;
    waits.sleepers++;
    while (__atomic_load_n(&waits.generation, __ATOMIC_ACQUIRE) == seen) {
        if (deadline < 0)
            mg__cond_wait(&waits.changed, &waits.mutex);
        else if (mg__cond_timedwait(&waits.changed, &waits.mutex, deadline))
            break;
    }
    waits.sleepers--;
    uint64_t g = waits.generation;
    mg__mutex_unlock(&waits.mutex);
    return g;
}

size_t
mg__waits_forever_count(void)
{
    mg__mutex_lock(&waits.mutex);
    size_t n = waits.forever;
    mg__mutex_unlock(&waits.mutex);
    return n;
}

/* ---- homes of threads started inside interpreters ----------------------- */

static int
home_add(int64_t interp, unsigned long ident)
{
    mg__wait_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return MG_ENOMEM;
    w->kind = MG__ACT_HOME;
    w->interp_id = interp;
    w->thread_ident = ident;
    w->since_ns = mg__monotonic_ns();
    mg__mutex_lock(&waits.mutex);
    link_locked(w);
    mg__mutex_unlock(&waits.mutex);
    return 0;
}

/* Remove (and free) one home of (interp, ident). */
static void
home_remove(int64_t interp, unsigned long ident)
{
    mg__wait_t *found = NULL;
    mg__mutex_lock(&waits.mutex);
    for (mg__wait_t *w = waits.head; w != NULL; w = w->next) {
        if (w->kind == MG__ACT_HOME && w->interp_id == interp && w->thread_ident == ident) {
            unlink_locked(w);
            found = w;
            break;
        }
    }
    mg__mutex_unlock(&waits.mutex);
    free(found);
}

int mg__waits_home_announce(int64_t interp) { return home_add(interp, 0); }
void mg__waits_home_cancel(int64_t interp) { home_remove(interp, 0); }

int
mg__waits_home_arrive(int64_t interp, unsigned long ident)
{
    int rc = home_add(interp, ident);
    home_remove(interp, 0);
    return rc;
}

void mg__waits_home_leave(int64_t interp, unsigned long ident) { home_remove(interp, ident); }
