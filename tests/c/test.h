/* test.h -- a tiny test harness for the C tests: each test file is one
 * program; CHECK records a failure and goes on, the runner prints one line
 * per test and a closing "N passed, N failed" line. */
#ifndef MG_TEST_H
#define MG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mg_test_failures;

#define CHECK(cond) do { \
    if (!(cond)) { \
        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        mg_test_failures++; \
    } } while (0)

#define CHECK_EQ(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { \
        fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
                __FILE__, __LINE__, #a, #b, a_, b_); \
        mg_test_failures++; \
    } } while (0)

typedef void (*mg_test_fn)(void);
typedef struct { const char *name; mg_test_fn fn; } mg_test_case;

/* Run every case; print a line each and the closing count; exit status 0
 * when all passed. */
static int
mg_test_run(const char *file, const mg_test_case *cases)
{
    int passed = 0, failed = 0;
    for (const mg_test_case *c = cases; c->name != NULL; c++) {
        int before = mg_test_failures;
        c->fn();
        int ok = mg_test_failures == before;
        printf("%s::%s %s\n", file, c->name, ok ? "PASSED" : "FAILED");
        fflush(stdout);
        if (ok) passed++; else failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
