/* test_registry.c -- the interpreter registry and thread-state cache, with
 * fake interpreters and thread states (no Python). */
#include <pthread.h>
#include <unistd.h>
#include "manygil.h"
#include "core/registry.h"
#include "test.h"

static int fake_interp_a, fake_interp_b;
static int ts1, ts2, ts3, anchor;

/* Thread-exit deleter: records what it was asked to delete. */
static pthread_mutex_t deleted_mu = PTHREAD_MUTEX_INITIALIZER;
static void *deleted[16];
static int ndeleted;
static int delete_delay_ms;

static void
fake_deleter(void *py_interp, void *tstate)
{
    (void)py_interp;
    if (delete_delay_ms)
        usleep(delete_delay_ms * 1000);
    pthread_mutex_lock(&deleted_mu);
    deleted[ndeleted++] = tstate;
    pthread_mutex_unlock(&deleted_mu);
}

static void
test_add_enter_leave(void)
{
    CHECK_EQ(mg__registry_add(100, &fake_interp_a, 0, &ts1, &anchor), 0);
    CHECK_EQ(mg__registry_add(100, &fake_interp_a, 0, NULL, NULL), MG_EINVAL);
    mg__interp_t *rec;
    void *ts = NULL;
    CHECK_EQ(mg__registry_enter(100, &rec, &ts), 0);
    CHECK(ts == &ts1);                      /* the creator's cached state */
    CHECK(mg__registry_py_interp(rec) == &fake_interp_a);
    CHECK_EQ(mg__registry_is_running(100), 1);
    mg__registry_leave(rec);
    CHECK_EQ(mg__registry_is_running(100), 0);
    CHECK_EQ(mg__registry_enter(999, &rec, &ts), MG_ENOTFOUND);
    CHECK_EQ(mg__registry_is_running(999), MG_ENOTFOUND);
}

static void
test_close_refused_while_running_and_for_main(void)
{
    CHECK_EQ(mg__registry_add(1, &fake_interp_b, 1, NULL, NULL), 0);
    mg__interp_t *rec;
    void *own, **others;
    size_t n;
    CHECK_EQ(mg__registry_begin_close(1, &rec, &own, &others, &n), MG_EMAININTERP);

    void *ts;
    CHECK_EQ(mg__registry_enter(100, &rec, &ts), 0);
    mg__interp_t *rec2;
    CHECK_EQ(mg__registry_begin_close(100, &rec2, &own, &others, &n), MG_ERUNNING);
    mg__registry_leave(rec);
}

typedef struct { int64_t id; void *tstate; } enter_arg;

/* Another thread enters, caches a thread state, and exits. */
static void *
enter_cache_exit(void *p)
{
    enter_arg *a = p;
    mg__interp_t *rec;
    void *ts;
    if (mg__registry_enter(a->id, &rec, &ts) == 0) {
        if (ts == NULL)
            mg__registry_cache_tstate(rec, a->tstate);
        mg__registry_leave(rec);
    }
    return NULL;
}

static void
test_thread_exit_deletes_cached_states(void)
{
    ndeleted = 0;
    enter_arg a = {100, &ts2};
    pthread_t t;
    pthread_create(&t, NULL, enter_cache_exit, &a);
    pthread_join(t, NULL);
    CHECK_EQ(ndeleted, 1);
    CHECK(deleted[0] == &ts2);
}

static void *
cache_then_linger_exit(void *p)
{
    delete_delay_ms = 200;          /* the exit hook is slow */
    enter_cache_exit(p);
    return NULL;
}

static void
test_close_collects_states_and_waits_for_exit_hooks(void)
{
    /* A thread caches ts3 and exits slowly while we close: close must
     * either collect ts3 itself or wait until the hook deleted it. */
    ndeleted = 0;
    enter_arg a = {100, &ts3};
    pthread_t t;
    pthread_create(&t, NULL, cache_then_linger_exit, &a);
    usleep(50 * 1000);
    mg__interp_t *rec;
    void *own = NULL, **others = NULL;
    size_t n = 0;
    CHECK_EQ(mg__registry_begin_close(100, &rec, &own, &others, &n), 0);
    pthread_mutex_lock(&deleted_mu);
    int hook_deleted = ndeleted;
    pthread_mutex_unlock(&deleted_mu);
    int collected_ts3 = 0, collected_anchor = 0;
    for (size_t i = 0; i < n; i++) {
        collected_ts3 += others[i] == &ts3;
        collected_anchor += others[i] == &anchor;
    }
    CHECK(own == &ts1);                 /* this thread created it */
    CHECK_EQ(collected_anchor, 1);
    CHECK_EQ(collected_ts3 + hook_deleted, 1);   /* exactly one owner */
    free(others);
    /* Closing: nobody can enter; closing again is "not found". */
    void *ts;
    mg__interp_t *r2;
    CHECK_EQ(mg__registry_enter(100, &r2, &ts), MG_ENOTFOUND);
    CHECK_EQ(mg__registry_begin_close(100, &r2, &own, &others, &n), MG_ENOTFOUND);
    mg__registry_end_close(rec);
    pthread_join(t, NULL);
    delete_delay_ms = 0;
    CHECK_EQ(mg__registry_is_running(100), MG_ENOTFOUND);
}

static void
test_ids_in_creation_order(void)
{
    CHECK_EQ(mg__registry_add(7, &fake_interp_a, 0, NULL, NULL), 0);
    CHECK_EQ(mg__registry_add(8, &fake_interp_a, 0, NULL, NULL), 0);
    int64_t *ids;
    size_t n;
    CHECK_EQ(mg__registry_ids(&ids, &n), 0);
    CHECK_EQ(n, 3);
    if (n == 3) {
        CHECK_EQ(ids[0], 1);
        CHECK_EQ(ids[1], 7);
        CHECK_EQ(ids[2], 8);
    }
    free(ids);
}

int
main(void)
{
    mg__registry_set_deleter(fake_deleter);
    static const mg_test_case cases[] = {
        {"add_enter_leave", test_add_enter_leave},
        {"close_refused_while_running_and_for_main", test_close_refused_while_running_and_for_main},
        {"thread_exit_deletes_cached_states", test_thread_exit_deletes_cached_states},
        {"close_collects_states_and_waits_for_exit_hooks", test_close_collects_states_and_waits_for_exit_hooks},
        {"ids_in_creation_order", test_ids_in_creation_order},
        {NULL, NULL},
    };
    return mg_test_run("test_registry", cases);
}
