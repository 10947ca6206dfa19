/* sync.h -- the platform primitives the core uses: a mutex and a condition
 * variable on the monotonic clock.  Thin wrappers over pthreads; each one
 * aborts only on programmer error (a failing pthread call on a valid,
 * initialized object), never on a runtime condition. */
#ifndef MG_CORE_SYNC_H
#define MG_CORE_SYNC_H

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>

typedef pthread_mutex_t mg__mutex_t;
typedef pthread_cond_t mg__cond_t;

#define MG__MUTEX_INIT PTHREAD_MUTEX_INITIALIZER

static inline void mg__mutex_lock(mg__mutex_t *m) { if (pthread_mutex_lock(m)) abort(); }
static inline void mg__mutex_unlock(mg__mutex_t *m) { if (pthread_mutex_unlock(m)) abort(); }

/* Initialize a condition variable whose timed waits use CLOCK_MONOTONIC.
 * Returns 0 or an errno value. */
static inline int
mg__cond_init(mg__cond_t *c)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc) return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

static inline void mg__cond_destroy(mg__cond_t *c) { pthread_cond_destroy(c); }
static inline void mg__cond_wait(mg__cond_t *c, mg__mutex_t *m) { if (pthread_cond_wait(c, m)) abort(); }
static inline void mg__cond_broadcast(mg__cond_t *c) { pthread_cond_broadcast(c); }

/* Wait on c until signalled or the monotonic clock reaches deadline_ns (c
 * must have been made by mg__cond_init).  0 or ETIMEDOUT. */
static inline int
mg__cond_timedwait(mg__cond_t *c, mg__mutex_t *m, int64_t deadline_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
    ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
    int rc = pthread_cond_timedwait(c, m, &ts);
    if (rc != 0 && rc != ETIMEDOUT)
        abort();
    return rc;
}

static inline void mg__cond_signal(mg__cond_t *c) { pthread_cond_signal(c); }

/* One step of a spin-wait.  Every 8th step yields the CPU, so that when the
 * thread we wait for shares our CPU it runs now instead of after our spin
 * budget (a same-CPU ping-pong would otherwise cost two full budgets). */
static inline void
mg__spin_step(unsigned i)
{
    if ((i & 7) == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Monotonic time in nanoseconds. */
static inline int64_t
mg__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Start fn(arg) on a new detached thread with a stack of stack_size bytes
 * (0: the default), named `name` for tools like top (NULL: unnamed).
 * 0 or -1.
 *
 * The thread is created joinable and detached only after it is named: the
 * handle of a thread created detached is dead as soon as that thread ends,
 * which a short one (an interrupt helper) may do before pthread_create even
 * returns, and naming it then writes into a freed thread descriptor (seen:
 * a segfault in pthread_setname_np under Interpreter.interrupt() in a loop). */
static inline int
mg__spawn_detached(void *(*fn)(void *), void *arg, size_t stack_size, const char *name)
{
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    if (stack_size)
        pthread_attr_setstacksize(&attr, stack_size);
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (name != NULL)
        pthread_setname_np(t, name);
    pthread_detach(t);
    return 0;
}

#endif /* MG_CORE_SYNC_H */
