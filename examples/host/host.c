/* host.c -- a program that embeds Python and evaluates a Python function
 * over a column of rows from 1 and then N native threads, each thread in
 * an interpreter of its own with its own GIL, through the C API of an
 * installed manygil (manygil.h from manygil.get_include(); this program
 * links libpython only).
 *
 *   host ROWS THREADS [--gil]
 *
 * For each thread count k in 1, THREADS it splits ROWS int64 rows among k
 * threads; each thread takes its interpreter (mg_thread_interp) and calls
 *     def f(x): return x + 1
 * over its rows in batches of 2048 (mg_call_batch), checks every result,
 * and the program prints "threads=k rows_per_s=R".  With --gil it does the
 * same the way a host without manygil would: every thread takes the main
 * interpreter's GIL (PyGILState_Ensure) and calls f row by row, and the
 * lines read "gil threads=k rows_per_s=R". */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <manygil.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 2048
#define SOURCE "def f(x):\n    return x + 1\n"

static int64_t *input;
static mg_func_t *func;
static PyObject *main_f;        /* --gil: f in the main interpreter */

typedef struct {
    size_t lo, hi;              /* rows [lo, hi) */
    pthread_barrier_t *start;
    int failed;
    double begun;               /* when it passed the start barrier */
    double done;                /* when its last row was evaluated */
} job_t;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
run_manygil(void *arg)
{
    job_t *job = arg;
    int64_t id, out[BATCH];
    uint64_t valid[BATCH / 64];
    mg_error_t err = {0};
    int rc = mg_api->thread_interp(&id);    /* created here, on first use */
    /* Warm up outside the timing: the interpreter builds f once. */
    mg_column_t in = {MG_T_INT64, input + job->lo, NULL};
    mg_column_t res = {MG_T_INT64, out, valid};
    if (rc == 0)
        rc = mg_api->call_batch(id, func, 0, 1, 1, &in, &res, &err);
    pthread_barrier_wait(job->start);
    job->begun = now();
    for (size_t lo = job->lo; rc == 0 && lo < job->hi; lo += BATCH) {
        size_t n = job->hi - lo < BATCH ? job->hi - lo : BATCH;
        in.data = input + lo;
        rc = mg_api->call_batch(id, func, 0, n, 1, &in, &res, &err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (out[i] != input[lo + i] + 1 || !(valid[i / 64] >> (i % 64) & 1))
                rc = MG_ERESULT;
    }
    job->done = now();          /* before the thread ends and its interpreter closes */
    if (rc) {
        fprintf(stderr, "thread failed: %s (%s: %s)\n%s", mg_api->strerror(rc),
                err.type ? err.type : "-", err.message ? err.message : "-",
                err.traceback ? err.traceback : "");
        job->failed = 1;
    }
    mg_api->error_clear(&err);
    return NULL;                /* the thread's interpreter closes as it ends */
}

static void *
run_gil(void *arg)
{
    job_t *job = arg;
    pthread_barrier_wait(job->start);
    job->begun = now();
    PyGILState_STATE g = PyGILState_Ensure();
    for (size_t i = job->lo; i < job->hi && !job->failed; i++) {
        PyObject *x = PyLong_FromLongLong(input[i]);
        PyObject *r = x ? PyObject_CallOneArg(main_f, x) : NULL;
        long long v = r ? PyLong_AsLongLong(r) : -1;
        if (r == NULL || v != input[i] + 1) {
            PyErr_Print();
            job->failed = 1;
        }
        Py_XDECREF(r);
        Py_XDECREF(x);
        /* What such a host does to let its other threads run. */
        if (i % BATCH == BATCH - 1) {
            PyGILState_Release(g);
            g = PyGILState_Ensure();
        }
    }
    PyGILState_Release(g);
    job->done = now();
    return NULL;
}

/* Run ROWS rows on k threads; rows per second, or -1 on failure. */
static double
run(size_t rows, int k, int gil)
{
    pthread_t th[256];
    job_t jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)k + 1);
    for (int t = 0; t < k; t++) {
        jobs[t] = (job_t){rows * t / k, rows * (t + 1) / k, &start, 0, 0.0, 0.0};
        pthread_create(&th[t], NULL, gil ? run_gil : run_manygil, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    int failed = 0;
    for (int t = 0; t < k; t++) {
        pthread_join(th[t], NULL);
        failed |= jobs[t].failed;
    }
    /* From the first thread's start to the last thread's last row, each
     * stamped by the thread itself: this thread may pass the barrier after
     * the others have finished, and the teardown is not the rows' time. */
    double t0 = jobs[0].begun, end = jobs[0].done;
    for (int t = 1; t < k; t++) {
        t0 = jobs[t].begun < t0 ? jobs[t].begun : t0;
        end = jobs[t].done > end ? jobs[t].done : end;
    }
    double dt = end - t0;
    pthread_barrier_destroy(&start);
    return failed ? -1 : rows / dt;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROWS THREADS [--gil]\n", argv[0]);
        return 2;
    }
    size_t rows = strtoull(argv[1], NULL, 10);
    int threads = atoi(argv[2]);
    int gil = argc > 3 && strcmp(argv[3], "--gil") == 0;
    if (rows == 0 || threads < 1 || threads > 256) {
        fprintf(stderr, "ROWS must be > 0 and THREADS 1..256\n");
        return 2;
    }
    Py_Initialize();
    if (mg_import() < 0) {          /* imports manygil, checks the table */
        PyErr_Print();
        return 1;
    }
    int rc = mg_api->func_from_source(SOURCE, "f", &func);
    if (rc) {
        fprintf(stderr, "func_from_source: %s\n", mg_api->strerror(rc));
        return 1;
    }
    if (gil) {
        PyObject *ns = PyDict_New();
        PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins());
        PyObject *r = PyRun_String(SOURCE, Py_file_input, ns, ns);
        Py_XDECREF(r);
        main_f = PyDict_GetItemString(ns, "f");
        Py_XINCREF(main_f);
        Py_DECREF(ns);
        if (main_f == NULL) {
            PyErr_Print();
            return 1;
        }
    }
    input = malloc(rows * sizeof *input);
    if (input == NULL)
        return 1;
    for (size_t i = 0; i < rows; i++)
        input[i] = (int64_t)(i * 7 % 1000003) - 500000;

    PyThreadState *main_ts = PyEval_SaveThread();   /* host threads run now */
    int status = 0;
    int counts[2] = {1, threads};
    for (int c = 0; c < (threads > 1 ? 2 : 1); c++) {
        double r = run(rows, counts[c], gil);
        if (r < 0) {
            status = 1;
            break;
        }
        printf("%sthreads=%d rows_per_s=%.0f\n", gil ? "gil " : "", counts[c], r);
        fflush(stdout);
    }
    PyEval_RestoreThread(main_ts);
    Py_XDECREF(main_f);
    mg_api->func_free(func);
    free(input);
    if (Py_FinalizeEx() < 0)
        status = 1;
    return status;
}
