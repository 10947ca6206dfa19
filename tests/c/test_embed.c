/* test_embed.c -- the public C API driving own-GIL interpreters from native
 * threads of a program that embeds Python. */
#include <Python.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include "manygil.h"
#include "test.h"

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char SPIN[] =
    "x = 0\n"
    "for i in range(4_000_000):\n"
    "    x += i\n";

typedef struct { int64_t id; const char *code; int rc; } job_t;

static void *
run_job(void *p)
{
    job_t *job = p;
    job->rc = mg_interp_exec(job->id, job->code);
    return NULL;
}

static void *
create_and_run(void *p)
{
    job_t *job = p;
    job->rc = mg_interp_create(&job->id);
    if (job->rc == 0)
        job->rc = mg_interp_exec(job->id, job->code);
    return NULL;
}

static void
test_create_exec_close_from_native_threads(void)
{
    job_t jobs[2] = {{0, "y = 6 * 7\nassert y == 42\n", -99}, {0, "import sys\nassert sys.path\n", -99}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, create_and_run, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(jobs[i].rc, 0);
        CHECK(jobs[i].id > 0);
    }
    CHECK(jobs[0].id != jobs[1].id);
    /* State persists in __main__ across calls, from another thread. */
    CHECK_EQ(mg_interp_exec(jobs[0].id, "assert y == 42\n"), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(mg_interp_close(jobs[i].id), 0);
        CHECK_EQ(mg_interp_close(jobs[i].id), MG_ENOTFOUND);
        CHECK_EQ(mg_interp_exec(jobs[i].id, "pass\n"), MG_ENOTFOUND);
    }
}

static void
test_bad_inputs(void)
{
    int64_t id;
    CHECK_EQ(mg_interp_create(NULL), MG_EINVAL);
    CHECK_EQ(mg_interp_exec(12345, "pass\n"), MG_ENOTFOUND);
    CHECK_EQ(mg_interp_close(12345), MG_ENOTFOUND);
    CHECK_EQ(mg_interp_close(0), MG_EMAININTERP);
    CHECK_EQ(mg_interp_is_running(12345), MG_ENOTFOUND);
    CHECK_EQ(mg_interp_create(&id), 0);
    CHECK_EQ(mg_interp_exec(id, NULL), MG_EINVAL);
    /* A raising script reports MG_EEXEC (its traceback goes to stderr);
     * SystemExit does not end the process. */
    fprintf(stderr, "(expected tracebacks follow)\n");
    CHECK_EQ(mg_interp_exec(id, "1/0\n"), MG_EEXEC);
    CHECK_EQ(mg_interp_exec(id, "raise SystemExit(3)\n"), MG_EEXEC);
    CHECK_EQ(mg_interp_exec(id, "pass\n"), 0);
    CHECK_EQ(mg_interp_close(id), 0);
}

static void
test_close_refused_while_running(void)
{
    int64_t id;
    CHECK_EQ(mg_interp_create(&id), 0);
    job_t job = {id, "import time\ntime.sleep(0.5)\n", -99};
    pthread_t t;
    pthread_create(&t, NULL, run_job, &job);
    usleep(200 * 1000);
    CHECK_EQ(mg_interp_is_running(id), 1);
    CHECK_EQ(mg_interp_close(id), MG_ERUNNING);
    pthread_join(t, NULL);
    CHECK_EQ(job.rc, 0);
    CHECK_EQ(mg_interp_is_running(id), 0);
    CHECK_EQ(mg_interp_close(id), 0);
}

/* A pure C busy loop: the control for what the machine gives two threads. */
static unsigned long c_spin_sink;      /* atomic: keeps the loop's result alive */

static void *
c_spin(void *arg)
{
    volatile unsigned long x = 0;
    unsigned long n = *(unsigned long *)arg;
    for (unsigned long i = 0; i < n; i++)
        x += i;
    __atomic_store_n(&c_spin_sink, x, __ATOMIC_RELAXED);
    return NULL;
}

/* The ratio time(2 C threads) / time(1) for the same loop, measured now. */
static double
c_parallel_ratio(void)
{
    unsigned long n = 300UL * 1000 * 1000;
    double t0 = now();
    c_spin(&n);
    double one = now() - t0;
    pthread_t t[2];
    t0 = now();
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, c_spin, &n);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return (now() - t0) / one;
}

/* Two interpreters on two threads finish CPU-bound work in about the time
 * one takes (ratio measured in this run; skipped on one core, and when two
 * plain C threads cannot show parallelism either: the VM is busy).
 * measures: parallel (scripts/ctests.sh runs this program under the timing lock) */
static void
test_parallel_ratio(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("(skipped parallel ratio: one core)\n");
        return;
    }
    int64_t a, b;
    CHECK_EQ(mg_interp_create(&a), 0);
    CHECK_EQ(mg_interp_create(&b), 0);
    job_t warm[2] = {{a, SPIN, -99}, {b, SPIN, -99}};
    run_job(&warm[0]);
    run_job(&warm[1]);
    /* Up to 8 attempts: these are shared, noisy 2-core VMs, and the test
     * job beside this one takes a core now and then.  An attempt passes
     * under 1.4, or within 0.3 of what two plain C threads get right after
     * it (a shared GIL gives ~2.0 whatever the machine does).  An attempt
     * whose C threads show no parallelism (>= 1.3) tells nothing; with
     * fewer than 2 attempts that tell, the machine is too busy to judge. */
    int ok = 0, measurable = 0;
    for (int attempt = 0; attempt < 8 && !ok; attempt++) {
        double t0 = now();
        job_t one = {a, SPIN, -99};
        run_job(&one);
        double t_one = now() - t0;
        job_t jobs[2] = {{a, SPIN, -99}, {b, SPIN, -99}};
        pthread_t t[2];
        t0 = now();
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, run_job, &jobs[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        double t_two = now() - t0;
        CHECK_EQ(one.rc, 0);
        CHECK_EQ(jobs[0].rc, 0);
        CHECK_EQ(jobs[1].rc, 0);
        double ratio = t_two / t_one;
        if (ratio < 1.4) {
            printf("(parallel ratio attempt %d: %.2f)\n", attempt, ratio);
            ok = 1;
            break;
        }
        double control = c_parallel_ratio();
        printf("(parallel ratio attempt %d: %.2f; two C threads right after: %.2f)\n", attempt,
               ratio, control);
        if (control < 1.3) {
            measurable++;
            ok = ratio < control + 0.3;
        }
    }
    if (!ok && measurable < 2)
        printf("(skipped parallel ratio: machine too busy, two plain C threads showed "
               "parallelism in %d attempt(s) only)\n", measurable);
    else
        CHECK(ok);
    CHECK_EQ(mg_interp_close(a), 0);
    CHECK_EQ(mg_interp_close(b), 0);
}

int
main(void)
{
    Py_InitializeEx(0);
    PyThreadState *main_ts = PyEval_SaveThread();   /* main holds no GIL */
    static const mg_test_case cases[] = {
        {"create_exec_close_from_native_threads", test_create_exec_close_from_native_threads},
        {"bad_inputs", test_bad_inputs},
        {"close_refused_while_running", test_close_refused_while_running},
        {"parallel_ratio", test_parallel_ratio},
        {NULL, NULL},
    };
    int rc = mg_test_run("test_embed", cases);
    PyEval_RestoreThread(main_ts);
    if (Py_FinalizeEx() < 0)
        rc = 1;
    return rc;
}
