/*
 * sigint.c -- Ctrl-C stops the Python UDFs that are running.
 *
 * On Ctrl-C, duckdb-python (polling PyErr_CheckSignals in the main thread
 * while a query runs) interrupts the query; DuckDB then waits for the chunks
 * being evaluated to finish, and a UDF busy in Python would keep it waiting.
 * So the extension chains its own SIGINT handler in front of the one
 * installed when a function is registered (Python's): it writes a byte to a
 * pipe and calls the previous handler, which does what it always did.  A
 * thread of the extension reads the pipe and interrupts every interpreter
 * that is evaluating a chunk at that moment (mg_interp_interrupt: a
 * KeyboardInterrupt at its next bytecode), so the chunk fails and the query
 * ends.  A handler installed later (signal.signal) replaces the chain; the
 * next registration chains again.
 *
 * Running chunks are listed by the per-thread states of udf.c
 * (mgdb__running_add/remove, the `running` field set around each batch).
 *
 * Lock order: running_mutex only.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "mgdb.h"

static pthread_mutex_t running_mutex = PTHREAD_MUTEX_INITIALIZER;
static mgdb_running_t *running_list;   /* guarded by running_mutex */

void
mgdb__running_add(mgdb_running_t *r)
{
  atomic_store_explicit(&r->interp, 0, memory_order_relaxed);
  pthread_mutex_lock(&running_mutex);
  r->prev = NULL;
  r->next = running_list;
  if (running_list != NULL)
    running_list->prev = r;
  running_list = r;
  pthread_mutex_unlock(&running_mutex);
}

void
mgdb__running_remove(mgdb_running_t *r)
{
  pthread_mutex_lock(&running_mutex);
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    running_list = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  pthread_mutex_unlock(&running_mutex);
}

/* Interrupt every interpreter evaluating a chunk now. */
static void
interrupt_running(void)
{
  pthread_mutex_lock(&running_mutex);
  for (mgdb_running_t *r = running_list; r != NULL; r = r->next) {
    int64_t id = atomic_load_explicit(&r->interp, memory_order_acquire);
    if (id > 0)
      mgdb__interrupt(id);
  }
  pthread_mutex_unlock(&running_mutex);
}

/* ---- the handler and its thread ----------------------------------------------- */

static int wake[2] = {-1, -1};         /* the pipe: written by the handler */
static struct sigaction previous;      /* written before on_sigint is installed */

static void
on_sigint(int sig, siginfo_t *info, void *uctx)
{
  int saved = errno;
  char c = 1;
  if (wake[1] >= 0 && write(wake[1], &c, 1) < 0) {
    /* pipe full: an interrupt is pending already */
  }
  errno = saved;
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != NULL)
      previous.sa_sigaction(sig, info, uctx);
  } else if (previous.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);
    raise(sig);
  } else if (previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
  }
}

static void *
watch_main(void *arg)
{
  (void)arg;
  char buf[64];
  for (;;) {
    ssize_t n = read(wake[0], buf, sizeof(buf));
    if (n > 0)
      interrupt_running();
    else if (n < 0 && errno != EINTR)
      return NULL;
  }
}

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int started;                    /* written once under start_once */

static void
start(void)
{
  if (pipe(wake) < 0)
    return;
  for (int i = 0; i < 2; i++)
    fcntl(wake[i], F_SETFD, FD_CLOEXEC);
  fcntl(wake[1], F_SETFL, O_NONBLOCK);
  pthread_attr_t attr;
  pthread_t tid;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* The thread blocks every signal: SIGINT stays the main thread's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&tid, &attr, watch_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  started = rc == 0;
}

void
mgdb__sigint_chain(void)
{
  pthread_once(&start_once, start);
  if (!started)
    return;
  struct sigaction cur;
  if (sigaction(SIGINT, NULL, &cur) < 0)
    return;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigint)
    return;                            /* chained already */
  if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
    return;                            /* no Python handler: Ctrl-C is not Python's to handle */
  previous = cur;
  struct sigaction mine;
  memset(&mine, 0, sizeof(mine));
  mine.sa_sigaction = on_sigint;
  mine.sa_flags = SA_SIGINFO | (cur.sa_flags & SA_ONSTACK);
  mine.sa_mask = cur.sa_mask;
  sigaction(SIGINT, &mine, NULL);
}
