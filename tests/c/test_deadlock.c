/* test_deadlock.c -- the deadlock detector (src/core/deadlock.c) on real
 * channels and real blocked waits, with fake interpreters (no Python).
 *
 * Each test builds a situation from channels (handles counted per fake
 * interpreter with mg__channel_attach), threads blocked in
 * mg__channel_recv / mg__channel_send with a wait record, and run / home
 * records placing the threads in interpreters, then calls
 * mg__deadlock_check() directly: the detector thread is never started.
 * Waits the check does not break are unblocked afterwards (an item sent or
 * taken, or the channel closed as a last resort) and every thread is
 * joined within a deadline, so the program always ends. */
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include "manygil.h"
#include "core/buf.h"
#include "core/channel.h"
#include "core/deadlock.h"
#include "core/registry.h"
#include "core/sync.h"
#include "core/waits.h"
#include "test.h"

#define SEC (1000 * 1000 * 1000LL)
#define JOIN_MS 10000           /* a thread that takes longer is stuck */
#define POLL_MS 5000            /* how long to wait for a wait to register */

static int fake_interp;

/* ---- helpers: interpreters ---------------------------------------------- */

static void
interp_add(int64_t id)
{
    CHECK_EQ(mg__registry_add(id, &fake_interp, 0, NULL, NULL), 0);
}

static void
interp_close(int64_t id)
{
    mg__interp_t *rec;
    void *own = NULL, **others = NULL;
    size_t n = 0;
    int rc = mg__registry_begin_close(id, &rec, &own, &others, &n);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        free(others);
        mg__registry_end_close(rec);
    }
}

/* ---- helpers: the activity table ---------------------------------------- */

/* Records of `kind` in the table (0: all). */
static size_t
records(int kind)
{
    mg__wait_t *recs;
    size_t n, count = 0;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        count += kind == 0 || recs[i].kind == kind;
    free(recs);
    return count;
}

/* Copy the wait record of thread `ident` into *out; 1 if there is one. */
static int
find_wait(unsigned long ident, mg__wait_t *out)
{
    mg__wait_t *recs;
    size_t n;
    int found = 0;
    if (mg__waits_snapshot(&recs, &n, NULL) != 0)
        return 0;
    for (size_t i = 0; i < n && !found; i++) {
        if (recs[i].thread_ident == ident
                && (recs[i].kind == MG__WAIT_RECV || recs[i].kind == MG__WAIT_SEND)) {
            *out = recs[i];
            found = 1;
        }
    }
    free(recs);
    return found;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* pthread_join, giving up after `ms`: 0 or an errno value. */
static int
join_within(pthread_t th, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(th, NULL, &ts);
}

/* 1 if `s` contains the formatted text. */
static int has(const char *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
has(const char *s, const char *fmt, ...)
{
    char want[256];
    va_list va;
    va_start(va, fmt);
    vsnprintf(want, sizeof want, fmt, va);
    va_end(va);
    if (s != NULL && strstr(s, want) != NULL)
        return 1;
    fprintf(stderr, "  message lacks \"%s\": %s\n", want, s ? s : "(null)");
    return 0;
}

/* ---- helpers: threads that wait ------------------------------------------ */

enum { LOC_NONE = 0, LOC_RUN = 1, LOC_HOME = 2 };

typedef struct {
    mg__channel_t *ch;
    int64_t interp;             /* the wait's interpreter */
    int kind;                   /* MG__WAIT_RECV or MG__WAIT_SEND */
    int forever;                /* 0: with a deadline timeout_ns ahead */
    int64_t timeout_ns;
    int loc;                    /* LOC_*: the record placing the thread */
    int64_t loc_interp;
    unsigned long ident;        /* atomic: set once the records are in */
    int done;                   /* atomic */
    int rc;                     /* the wait's result, once done */
    char *why;                  /* a broken wait's message (ours to free) */
    size_t got;                 /* bytes received */
    pthread_t thread;
} waiter_t;

static int64_t
end_id_of(mg__channel_t *ch, int kind)
{
    int64_t id = mg__channel_id(ch);
    if (mg__channel_is_queue(ch))
        return id * 2;
    return id * 2 + (kind == MG__WAIT_RECV);
}

static void *
waiter_main(void *p)
{
    waiter_t *t = p;
    unsigned long self = (unsigned long)pthread_self();
    mg__wait_t run = {
        .interp_id = t->loc_interp,
        .thread_ident = self,
        .kind = MG__ACT_RUN,
        .what = "exec",
        .since_ns = mg__monotonic_ns(),
    };
    if (t->loc == LOC_RUN)
        mg__waits_add(&run);
    else if (t->loc == LOC_HOME && mg__waits_home_arrive(t->loc_interp, self) != 0)
        abort();
    __atomic_store_n(&t->ident, self, __ATOMIC_RELEASE);

    int64_t start = mg__monotonic_ns();
    mg__wait_t w = {
        .interp_id = t->interp,
        .thread_ident = self,
        .end_id = end_id_of(t->ch, t->kind),
        .kind = t->kind,
        .forever = t->forever,
        .since_ns = start,
    };
    int64_t deadline = t->forever ? -1 : start + t->timeout_ns;
    mg__buf_t buf = MG__BUF_INIT;
    int rc;
    if (t->kind == MG__WAIT_RECV) {
        rc = mg__channel_recv(t->ch, &buf, deadline, &w);
        t->got = buf.len;
    } else {
        if (mg__buf_put(&buf, "s", 1) != 0)
            abort();
        rc = mg__channel_send(t->ch, &buf, deadline, &w);
    }
    mg__buf_free(&buf);
    t->rc = rc;
    t->why = w.why;             /* the waiter owns the message */

    if (t->loc == LOC_RUN)
        mg__waits_remove(&run);
    else if (t->loc == LOC_HOME)
        mg__waits_home_leave(t->loc_interp, self);
    __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Start a thread blocking on ch from interpreter `interp`, placed there by
 * a record of kind `loc` (LOC_NONE: only its wait), and wait until its
 * wait is in the table. */
static waiter_t *
waiter_start_ex(mg__channel_t *ch, int64_t interp, int kind, int forever, int loc,
                int64_t loc_interp)
{
    waiter_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        abort();
    t->ch = ch;
    t->interp = interp;
    t->kind = kind;
    t->forever = forever;
    t->timeout_ns = 2 * SEC;
    t->loc = loc;
    t->loc_interp = loc_interp;
    t->rc = 12345;
    if (pthread_create(&t->thread, NULL, waiter_main, t) != 0)
        abort();
    int64_t until = mg__monotonic_ns() + POLL_MS * 1000000LL;
    mg__wait_t w;
    for (;;) {
        unsigned long ident = __atomic_load_n(&t->ident, __ATOMIC_ACQUIRE);
        if (ident != 0 && find_wait(ident, &w))
            break;
        if (__atomic_load_n(&t->done, __ATOMIC_ACQUIRE) || mg__monotonic_ns() > until) {
            fprintf(stderr, "  waiter in %lld did not block (done=%d rc=%d)\n",
                    (long long)interp, t->done, t->rc);
            mg_test_failures++;
            break;
        }
        sleep_ms(1);
    }
    return t;
}

static waiter_t *
waiter_start(mg__channel_t *ch, int64_t interp, int kind, int forever)
{
    return waiter_start_ex(ch, interp, kind, forever, LOC_RUN, interp);
}

/* 1 if t is still blocked, its wait in the table and not broken. */
static int
still_blocked(waiter_t *t)
{
    mg__wait_t w;
    if (__atomic_load_n(&t->done, __ATOMIC_ACQUIRE))
        return 0;
    return find_wait(__atomic_load_n(&t->ident, __ATOMIC_ACQUIRE), &w) && !w.broken;
}

/* Join t; if it does not end in time, close its channel (which wakes it),
 * and give up on the whole program if even that fails. */
static void
waiter_join(waiter_t *t)
{
    if (join_within(t->thread, JOIN_MS) == 0)
        return;
    fprintf(stderr, "  waiter in %lld did not end: closing channel %lld\n",
            (long long)t->interp, (long long)mg__channel_id(t->ch));
    mg_test_failures++;
    mg__channel_close(t->ch, MG__END_BOTH);
    if (join_within(t->thread, JOIN_MS) != 0) {
        fprintf(stderr, "  waiter still stuck: giving up\n");
        exit(2);
    }
}

static void
waiter_free(waiter_t *t)
{
    if (t != NULL) {
        free(t->why);
        free(t);
    }
}

/* ---- helpers: threads that run without waiting --------------------------- */

typedef struct {
    int64_t home;               /* -1: no home record */
    int64_t run;                /* -1: no run record (the innermost if both) */
    int ready, quit;            /* atomic */
    pthread_t thread;
} idler_t;

static void *
idler_main(void *p)
{
    idler_t *t = p;
    unsigned long self = (unsigned long)pthread_self();
    mg__wait_t run = {
        .interp_id = t->run,
        .thread_ident = self,
        .kind = MG__ACT_RUN,
        .what = "call",
        .since_ns = mg__monotonic_ns(),
    };
    if (t->home >= 0 && mg__waits_home_arrive(t->home, self) != 0)
        abort();
    if (t->run >= 0)
        mg__waits_add(&run);
    __atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
    /* "Running": not in any wait manygil sees; bounded in any case. */
    for (int i = 0; i < 60000 && !__atomic_load_n(&t->quit, __ATOMIC_ACQUIRE); i++)
        sleep_ms(1);
    if (t->run >= 0)
        mg__waits_remove(&run);
    if (t->home >= 0)
        mg__waits_home_leave(t->home, self);
    return NULL;
}

static idler_t *
idler_start(int64_t home, int64_t run)
{
    idler_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        abort();
    t->home = home;
    t->run = run;
    if (pthread_create(&t->thread, NULL, idler_main, t) != 0)
        abort();
    while (!__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    return t;
}

static void
idler_stop(idler_t *t)
{
    __atomic_store_n(&t->quit, 1, __ATOMIC_RELEASE);
    if (join_within(t->thread, JOIN_MS) != 0) {
        fprintf(stderr, "  idler did not end: giving up\n");
        exit(2);
    }
    free(t);
}

/* ---- helpers: channels ---------------------------------------------------- */

static mg__channel_t *
chan_new(int64_t maxsize, int flags)
{
    mg__channel_t *ch = NULL;
    if (mg__channel_create(maxsize, flags, &ch) != 0)
        abort();
    return ch;
}

static void
attach(mg__channel_t *ch, int64_t interp, int ends)
{
    CHECK_EQ(mg__channel_attach(ch, interp, ends), 0);
}

/* Put one item in without waiting (0 or the error). */
static int
put_item(mg__channel_t *ch)
{
    mg__buf_t buf = MG__BUF_INIT;
    if (mg__buf_put(&buf, "i", 1) != 0)
        abort();
    int rc = mg__channel_send(ch, &buf, 0, NULL);
    mg__buf_free(&buf);
    return rc;
}

/* Take one item without waiting (0 or the error). */
static int
take_item(mg__channel_t *ch)
{
    mg__buf_t buf = MG__BUF_INIT;
    int rc = mg__channel_recv(ch, &buf, 0, NULL);
    mg__buf_free(&buf);
    return rc;
}

/* Drop every handle of the interpreters (as closing them does), close the
 * channels (pinned ones stay open otherwise), release our references and
 * unregister the interpreters in `registered`. */
static void
teardown(mg__channel_t **chs, size_t nchs, const int64_t *holders, size_t nholders,
         const int64_t *registered, size_t nregistered)
{
    for (size_t i = 0; i < nholders; i++)
        mg__channels_drop_interp(holders[i]);
    for (size_t i = 0; i < nchs; i++) {
        mg__channel_close(chs[i], MG__END_BOTH);
        mg__channel_decref(chs[i]);
    }
    for (size_t i = 0; i < nregistered; i++)
        interp_close(registered[i]);
    CHECK_EQ(records(0), 0);            /* every record left the table */
    CHECK_EQ(mg__waits_forever_count(), 0);
}

/* ---- the two-interpreter cycle the tests vary ---------------------------- */

/* A holds ch1's receive end and ch2's send end; B holds ch2's receive end
 * and ch1's send end.  A thread of A waits to receive on ch1 (only B could
 * send), a thread of B on ch2 (only A could send). */
typedef struct {
    int64_t a, b;
    mg__channel_t *ch1, *ch2;
    waiter_t *ta, *tb;
} cycle_t;

static void
cycle_setup(cycle_t *c, int64_t a, int64_t b, int flags1)
{
    memset(c, 0, sizeof *c);
    c->a = a;
    c->b = b;
    interp_add(a);
    interp_add(b);
    c->ch1 = chan_new(0, flags1);
    c->ch2 = chan_new(0, 0);
    attach(c->ch1, a, MG__END_RECV);
    attach(c->ch2, a, MG__END_SEND);
    attach(c->ch2, b, MG__END_RECV);
    attach(c->ch1, b, MG__END_SEND);
}

/* Start both waiters (TB first, so TA's wait is the newest record). */
static void
cycle_wait(cycle_t *c, int forever_a)
{
    c->tb = waiter_start(c->ch2, c->b, MG__WAIT_RECV, 1);
    c->ta = waiter_start(c->ch1, c->a, MG__WAIT_RECV, forever_a);
}

/* Send an item into both channels (wakes waiters the check left alone;
 * harmless after a break) and join the waiters. */
static void
cycle_unblock_join(cycle_t *c)
{
    CHECK_EQ(put_item(c->ch1), 0);
    CHECK_EQ(put_item(c->ch2), 0);
    waiter_join(c->ta);
    waiter_join(c->tb);
}

/* The waiters ended because the check broke their waits. */
static void
cycle_expect_broken(cycle_t *c)
{
    CHECK_EQ(c->ta->rc, MG_EDEADLOCK);
    CHECK_EQ(c->tb->rc, MG_EDEADLOCK);
    CHECK(c->ta->why != NULL);
    CHECK(c->tb->why != NULL);
}

/* The waiters were left alone and got the items cycle_unblock_join sent. */
static void
cycle_expect_served(cycle_t *c)
{
    CHECK_EQ(c->ta->rc, 0);
    CHECK_EQ(c->tb->rc, 0);
    CHECK_EQ(c->ta->got, 1);
    CHECK_EQ(c->tb->got, 1);
    CHECK(c->ta->why == NULL);
    CHECK(c->tb->why == NULL);
}

static void
cycle_teardown(cycle_t *c, const int64_t *extra_holders, size_t nextra)
{
    int64_t holders[8] = {c->a, c->b};
    size_t n = 2;
    for (size_t i = 0; i < nextra && n < 8; i++)
        holders[n++] = extra_holders[i];
    int64_t regs[2] = {c->a, c->b};
    mg__channel_t *chs[2] = {c->ch1, c->ch2};
    teardown(chs, 2, holders, n, regs, 2);
    waiter_free(c->ta);
    waiter_free(c->tb);
}

/* A cycle in which something lets one side act: the check breaks nothing,
 * and both waits are still there afterwards. */
static void
expect_no_deadlock(cycle_t *c)
{
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(c->ta));
    CHECK(still_blocked(c->tb));
    cycle_unblock_join(c);
    cycle_expect_served(c);
}

/* ---- 1. the two-interpreter receive cycle --------------------------------- */

static void
test_receive_cycle(void)
{
    cycle_t c;
    cycle_setup(&c, 11, 12, 0);
    CHECK_EQ(mg__deadlock_check(), 0);          /* nobody waits */

    /* Only A's thread waits: B has no thread, so it counts as able to send. */
    c.ta = waiter_start(c.ch1, 11, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__waits_forever_count(), 1);
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(c.ta));

    c.tb = waiter_start(c.ch2, 12, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__waits_forever_count(), 2);
    CHECK_EQ(mg__deadlock_check(), 2);
    waiter_join(c.ta);
    waiter_join(c.tb);
    cycle_expect_broken(&c);

    int64_t id1 = mg__channel_id(c.ch1), id2 = mg__channel_id(c.ch2);
    for (int i = 0; i < 2; i++) {
        const char *why = i == 0 ? c.ta->why : c.tb->why;
        CHECK(why != NULL && strncmp(why, "deadlock: ", 10) == 0);
        CHECK(has(why, "interpreter 11 "));
        CHECK(has(why, "interpreter 12 "));
        CHECK(has(why, "receive on channel %lld (RecvChannel id %lld)",
                  (long long)id1, (long long)(id1 * 2 + 1)));
        CHECK(has(why, "receive on channel %lld (RecvChannel id %lld)",
                  (long long)id2, (long long)(id2 * 2 + 1)));
        CHECK(has(why, "whose send end only interpreter 12 holds"));
        CHECK(has(why, "whose send end only interpreter 11 holds"));
        CHECK(has(why, "(all blocked in these waits)"));
    }
    CHECK(c.ta->why && c.tb->why && strcmp(c.ta->why, c.tb->why) == 0);

    /* The broken waits left the table; nothing more to find. */
    CHECK_EQ(records(0), 0);
    CHECK_EQ(mg__deadlock_check(), 0);
    cycle_teardown(&c, NULL, 0);
}

/* ---- 2. another thread in A that can still act ---------------------------- */

static void
test_other_thread_running(void)
{
    cycle_t c;
    cycle_setup(&c, 21, 22, 0);
    idler_t *run_a = idler_start(-1, 21);      /* running code in A */
    idler_t *home_b = idler_start(22, -1);     /* a thread that lives in B */
    cycle_wait(&c, 1);
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(c.ta));
    CHECK(still_blocked(c.tb));

    idler_stop(run_a);                          /* A's other thread ends */
    CHECK_EQ(mg__deadlock_check(), 0);          /* B's thread can still act */
    CHECK(still_blocked(c.ta));
    CHECK(still_blocked(c.tb));

    idler_stop(home_b);
    CHECK_EQ(mg__deadlock_check(), 2);
    cycle_unblock_join(&c);
    cycle_expect_broken(&c);
    cycle_teardown(&c, NULL, 0);
}

/* Another thread of A blocked in a wait someone else can satisfy (a pinned
 * channel) is not stuck, so neither is A. */
static void
test_other_thread_in_satisfiable_wait(void)
{
    cycle_t c;
    cycle_setup(&c, 23, 24, 0);
    mg__channel_t *ch3 = chan_new(0, MG__CHANNEL_PINNED);
    attach(ch3, 23, MG__END_RECV);
    waiter_t *tc = waiter_start(ch3, 23, MG__WAIT_RECV, 1);
    cycle_wait(&c, 1);
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(tc));
    CHECK(still_blocked(c.ta));
    CHECK(still_blocked(c.tb));

    CHECK_EQ(put_item(ch3), 0);                 /* the pinned id's owner acts */
    waiter_join(tc);
    CHECK_EQ(tc->rc, 0);
    CHECK_EQ(mg__deadlock_check(), 2);
    cycle_unblock_join(&c);
    cycle_expect_broken(&c);
    waiter_free(tc);
    mg__channel_t *chs[1] = {ch3};
    teardown(chs, 1, NULL, 0, NULL, 0);
    cycle_teardown(&c, NULL, 0);
}

/* A thread whose home is A but which runs code in C (its innermost run
 * record) is located in C: it does not keep A able to act. */
static void
test_thread_located_by_innermost_run(void)
{
    cycle_t c;
    cycle_setup(&c, 25, 26, 0);
    interp_add(27);
    idler_t *away = idler_start(25, 27);
    cycle_wait(&c, 1);
    CHECK_EQ(mg__deadlock_check(), 2);
    cycle_unblock_join(&c);
    cycle_expect_broken(&c);
    idler_stop(away);
    interp_close(27);
    cycle_teardown(&c, NULL, 0);

    /* The same thread with only its home in A does keep A able to act. */
    cycle_setup(&c, 28, 29, 0);
    idler_t *home = idler_start(28, -1);
    cycle_wait(&c, 1);
    expect_no_deadlock(&c);
    idler_stop(home);
    cycle_teardown(&c, NULL, 0);
}

/* ---- 3. a wait with a deadline ------------------------------------------- */

static void
test_wait_with_deadline(void)
{
    cycle_t c;
    cycle_setup(&c, 31, 32, 0);
    cycle_wait(&c, 0);                          /* TA: 2 s deadline */
    CHECK_EQ(mg__waits_forever_count(), 1);
    expect_no_deadlock(&c);
    cycle_teardown(&c, NULL, 0);
}

/* ---- 4. ends someone else may act on ------------------------------------- */

static void
test_pinned_channel(void)
{
    cycle_t c;
    cycle_setup(&c, 41, 42, MG__CHANNEL_PINNED);
    cycle_wait(&c, 1);
    expect_no_deadlock(&c);
    cycle_teardown(&c, NULL, 0);
}

static void
test_handle_in_transit(void)
{
    cycle_t c;
    cycle_setup(&c, 43, 44, 0);
    attach(c.ch1, MG__TRANSIT, MG__END_SEND);   /* a send handle inside a message */
    cycle_wait(&c, 1);
    expect_no_deadlock(&c);
    int64_t extra[1] = {MG__TRANSIT};
    cycle_teardown(&c, extra, 1);
}

static void
test_unregistered_holder(void)
{
    cycle_t c;
    cycle_setup(&c, 45, 46, 0);
    attach(c.ch1, 99, MG__END_SEND);            /* an interpreter manygil did not make */
    cycle_wait(&c, 1);
    expect_no_deadlock(&c);
    int64_t extra[1] = {99};
    cycle_teardown(&c, extra, 1);

    /* An unregistered interpreter whose only thread receives on a channel
     * it alone holds: not manygil's, so never taken as stuck. */
    mg__channel_t *ch = chan_new(0, 0);
    attach(ch, 98, MG__END_BOTH);
    waiter_t *t = waiter_start(ch, 98, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(t));
    CHECK_EQ(put_item(ch), 0);
    waiter_join(t);
    CHECK_EQ(t->rc, 0);
    waiter_free(t);
    int64_t holders[1] = {98};
    teardown(&ch, 1, holders, 1, NULL, 0);
}

static void
test_untracked_interpreter(void)
{
    cycle_t c;
    cycle_setup(&c, 47, 48, 0);
    mg__deadlock_set_untracked(47);
    mg__deadlock_set_untracked(47);             /* idempotent */
    cycle_wait(&c, 1);
    expect_no_deadlock(&c);
    cycle_teardown(&c, NULL, 0);
}

/* ---- 5. a thread being started ------------------------------------------- */

static void
test_thread_being_started(void)
{
    cycle_t c;
    cycle_setup(&c, 51, 52, 0);
    CHECK_EQ(mg__waits_home_announce(51), 0);
    cycle_wait(&c, 1);
    CHECK_EQ(mg__deadlock_check(), 0);
    CHECK(still_blocked(c.ta));
    CHECK(still_blocked(c.tb));
    mg__waits_home_cancel(51);                  /* the start failed */
    CHECK_EQ(mg__deadlock_check(), 2);
    cycle_unblock_join(&c);
    cycle_expect_broken(&c);
    cycle_teardown(&c, NULL, 0);
}

/* ---- 6. one interpreter alone -------------------------------------------- */

static void
self_deadlock(int64_t id, int flags, int loc, const char *verb, const char *what,
              int64_t end_id_mult_plus)
{
    interp_add(id);
    mg__channel_t *ch = chan_new(0, flags);
    attach(ch, id, MG__END_BOTH);
    waiter_t *t = waiter_start_ex(ch, id, MG__WAIT_RECV, 1, loc, id);
    CHECK_EQ(mg__deadlock_check(), 1);
    CHECK_EQ(put_item(ch), 0);                  /* wakes it if the check did not */
    waiter_join(t);
    CHECK_EQ(t->rc, MG_EDEADLOCK);
    int64_t cid = mg__channel_id(ch);
    CHECK(has(t->why, "interpreter %lld ", (long long)id));
    CHECK(has(t->why, "%s %lld (%s id %lld)", verb, (long long)cid, what,
              (long long)(cid * 2 + end_id_mult_plus)));
    CHECK(has(t->why, "only interpreter %lld holds", (long long)id));
    waiter_free(t);
    int64_t ids[1] = {id};
    teardown(&ch, 1, ids, 1, ids, 1);
}

static void
test_self_deadlock(void)
{
    /* A thread that lives in the interpreter (home record). */
    self_deadlock(61, 0, LOC_HOME, "receive on channel", "RecvChannel", 1);
    /* A queue, from a thread running code there. */
    self_deadlock(62, MG__CHANNEL_QUEUE, LOC_RUN, "get from queue", "Queue", 0);
    /* A thread with no run or home record: located where it waits. */
    self_deadlock(63, 0, LOC_NONE, "receive on channel", "RecvChannel", 1);
}

/* ---- 7. enabling ---------------------------------------------------------- */

static void
test_set_enabled(void)
{
    CHECK_EQ(mg__deadlock_enabled(), 1);        /* on by default */
    CHECK_EQ(mg__deadlock_set_enabled(0), 1);
    CHECK_EQ(mg__deadlock_enabled(), 0);
    CHECK_EQ(mg__deadlock_set_enabled(0), 0);
    /* The switch is for the thread: a pass run by hand still breaks. */
    self_deadlock(71, 0, LOC_RUN, "receive on channel", "RecvChannel", 1);
    CHECK_EQ(mg__deadlock_set_enabled(5), 0);
    CHECK_EQ(mg__deadlock_enabled(), 1);
    CHECK_EQ(mg__deadlock_set_enabled(1), 1);
}

/* ---- 8. a send cycle ------------------------------------------------------ */

static void
test_send_cycle(void)
{
    /* Two full channels of one slot; each interpreter sends on one whose
     * receive end only the other holds. */
    interp_add(81);
    interp_add(82);
    mg__channel_t *ch1 = chan_new(1, 0), *ch2 = chan_new(1, 0);
    attach(ch1, 81, MG__END_SEND);
    attach(ch1, 82, MG__END_RECV);
    attach(ch2, 82, MG__END_SEND);
    attach(ch2, 81, MG__END_RECV);
    CHECK_EQ(put_item(ch1), 0);
    CHECK_EQ(put_item(ch2), 0);
    waiter_t *tb = waiter_start(ch2, 82, MG__WAIT_SEND, 1);
    waiter_t *ta = waiter_start(ch1, 81, MG__WAIT_SEND, 1);
    CHECK_EQ(mg__deadlock_check(), 2);
    CHECK_EQ(take_item(ch1), 0);                /* wakes them if the check did not */
    CHECK_EQ(take_item(ch2), 0);
    waiter_join(ta);
    waiter_join(tb);
    CHECK_EQ(ta->rc, MG_EDEADLOCK);
    CHECK_EQ(tb->rc, MG_EDEADLOCK);
    int64_t id1 = mg__channel_id(ch1), id2 = mg__channel_id(ch2);
    CHECK(has(ta->why, "interpreter 81 "));
    CHECK(has(ta->why, "interpreter 82 "));
    CHECK(has(ta->why, "send on channel %lld (SendChannel id %lld), whose receive end "
              "only interpreter 82 holds", (long long)id1, (long long)(id1 * 2)));
    CHECK(has(ta->why, "send on channel %lld (SendChannel id %lld), whose receive end "
              "only interpreter 81 holds", (long long)id2, (long long)(id2 * 2)));
    waiter_free(ta);
    waiter_free(tb);
    mg__channel_t *chs[2] = {ch1, ch2};
    int64_t ids[2] = {81, 82};
    teardown(chs, 2, ids, 2, ids, 2);
}

/* ---- 9. chains and partial sets ------------------------------------------ */

static void
test_three_interpreter_chain(void)
{
    /* A waits on B (ch1), B waits on C (ch2), C waits on A (ch3). */
    interp_add(91);
    interp_add(92);
    interp_add(93);
    mg__channel_t *ch1 = chan_new(0, 0), *ch2 = chan_new(0, 0), *ch3 = chan_new(0, 0);
    attach(ch1, 91, MG__END_RECV);
    attach(ch1, 92, MG__END_SEND);
    attach(ch2, 92, MG__END_RECV);
    attach(ch2, 93, MG__END_SEND);
    attach(ch3, 93, MG__END_RECV);
    attach(ch3, 91, MG__END_SEND);
    idler_t *c_runs = idler_start(-1, 93);
    /* B's wait first: A's (the newest) is examined before B's drops out,
     * so finding nothing takes more than one round. */
    waiter_t *tb = waiter_start(ch2, 92, MG__WAIT_RECV, 1);
    waiter_t *ta = waiter_start(ch1, 91, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__deadlock_check(), 0);          /* C can still send to B */
    CHECK(still_blocked(ta));
    CHECK(still_blocked(tb));
    idler_stop(c_runs);
    CHECK_EQ(mg__deadlock_check(), 0);          /* C has no thread: not stuck */
    CHECK(still_blocked(ta));
    CHECK(still_blocked(tb));

    waiter_t *tc = waiter_start(ch3, 93, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__deadlock_check(), 3);
    CHECK_EQ(put_item(ch1), 0);
    CHECK_EQ(put_item(ch2), 0);
    CHECK_EQ(put_item(ch3), 0);
    waiter_join(ta);
    waiter_join(tb);
    waiter_join(tc);
    CHECK_EQ(ta->rc, MG_EDEADLOCK);
    CHECK_EQ(tb->rc, MG_EDEADLOCK);
    CHECK_EQ(tc->rc, MG_EDEADLOCK);
    for (int i = 91; i <= 93; i++)
        CHECK(has(tc->why, "interpreter %d ", i));
    waiter_free(ta);
    waiter_free(tb);
    waiter_free(tc);
    mg__channel_t *chs[3] = {ch1, ch2, ch3};
    int64_t ids[3] = {91, 92, 93};
    teardown(chs, 3, ids, 3, ids, 3);
}

/* The waiter's own interpreter must be stuck too: A's thread waits on a
 * channel only a stuck B could send on, but A has another thread running
 * (which could still act for it).  Only B's wait is hopeless. */
static void
test_waiter_interp_must_be_stuck(void)
{
    interp_add(101);
    interp_add(102);
    mg__channel_t *ch1 = chan_new(0, 0), *ch2 = chan_new(0, 0);
    attach(ch1, 101, MG__END_RECV);
    attach(ch1, 102, MG__END_SEND);
    attach(ch2, 102, MG__END_BOTH);             /* B waits on itself */
    idler_t *run_a = idler_start(-1, 101);
    waiter_t *tb = waiter_start(ch2, 102, MG__WAIT_RECV, 1);
    waiter_t *ta = waiter_start(ch1, 101, MG__WAIT_RECV, 1);
    CHECK_EQ(mg__deadlock_check(), 1);
    CHECK(still_blocked(ta));
    CHECK_EQ(put_item(ch2), 0);                 /* wakes B if the check did not */
    waiter_join(tb);
    CHECK_EQ(tb->rc, MG_EDEADLOCK);
    CHECK(has(tb->why, "interpreter 102 "));
    CHECK(tb->why == NULL || strstr(tb->why, "interpreter 101") == NULL);
    CHECK_EQ(put_item(ch1), 0);
    waiter_join(ta);
    CHECK_EQ(ta->rc, 0);
    CHECK(ta->why == NULL);
    idler_stop(run_a);
    waiter_free(ta);
    waiter_free(tb);
    mg__channel_t *chs[2] = {ch1, ch2};
    int64_t ids[2] = {101, 102};
    teardown(chs, 2, ids, 2, ids, 2);
}

int
main(void)
{
    static const mg_test_case cases[] = {
        {"receive_cycle", test_receive_cycle},
        {"other_thread_running", test_other_thread_running},
        {"other_thread_in_satisfiable_wait", test_other_thread_in_satisfiable_wait},
        {"thread_located_by_innermost_run", test_thread_located_by_innermost_run},
        {"wait_with_deadline", test_wait_with_deadline},
        {"pinned_channel", test_pinned_channel},
        {"handle_in_transit", test_handle_in_transit},
        {"unregistered_holder", test_unregistered_holder},
        {"untracked_interpreter", test_untracked_interpreter},
        {"thread_being_started", test_thread_being_started},
        {"self_deadlock", test_self_deadlock},
        {"set_enabled", test_set_enabled},
        {"send_cycle", test_send_cycle},
        {"three_interpreter_chain", test_three_interpreter_chain},
        {"waiter_interp_must_be_stuck", test_waiter_interp_must_be_stuck},
        {NULL, NULL},
    };
    return mg_test_run("test_deadlock", cases);
}
