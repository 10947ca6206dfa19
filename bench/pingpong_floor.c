/* The floor for a cross-thread round trip: a bare pthread ping-pong.
 *
 *   gcc -O2 -pthread bench/pingpong_floor.c -o /tmp/pingpong_floor && /tmp/pingpong_floor [N] [WARMUP]
 *
 * Two threads, one mutex and one condition variable per direction. The main
 * thread hands a small int to the echo thread and waits for it to come back,
 * N times (after WARMUP untimed round trips); every round trip is timed with
 * CLOCK_MONOTONIC. No spinning: each side sleeps in pthread_cond_wait, so this
 * is what one wake-up per direction costs on this machine.
 *
 * Prints one line:
 *   floor n=N median_us=M p90_us=P mean_us=A
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full;      /* 1 while a value waits to be taken */
    long value;
} slot_t;

static slot_t ping = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static slot_t pong = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void put(slot_t *s, long v) {
    pthread_mutex_lock(&s->mu);
    s->value = v;
    s->full = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static long take(slot_t *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->full)
        pthread_cond_wait(&s->cv, &s->mu);
    s->full = 0;
    long v = s->value;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void *echo(void *arg) {
    (void)arg;
    for (;;) {
        long v = take(&ping);
        if (v < 0)
            break;
        put(&pong, v);
    }
    return NULL;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000;
    long warmup = argc > 2 ? atol(argv[2]) : 200;
    if (n <= 0)
        n = 1;
    long long *t = malloc(sizeof *t * (size_t)n);
    if (!t)
        return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, echo, NULL) != 0)
        return 1;
    for (long i = 0; i < warmup; i++) {
        put(&ping, i);
        if (take(&pong) != i)
            return 2;
    }
    long long sum = 0;
    for (long i = 0; i < n; i++) {
        long long t0 = now_ns();
        put(&ping, i);
        long v = take(&pong);
        t[i] = now_ns() - t0;
        if (v != i)
            return 2;
        sum += t[i];
    }
    put(&ping, -1);
    pthread_join(th, NULL);
    qsort(t, (size_t)n, sizeof *t, cmp_ll);
    printf("floor n=%ld median_us=%.3f p90_us=%.3f mean_us=%.3f\n", n,
           t[n / 2] / 1e3, t[(n * 9) / 10] / 1e3, (double)sum / n / 1e3);
    free(t);
    return 0;
}
