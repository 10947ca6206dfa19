/* notify.c -- notifiers (see notify.h).  One mutex per notifier, a leaf:
 * posts come with a channel mutex held (channel mutex, then this one). */
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include "manygil.h"
#include "core/notify.h"
#include "core/sync.h"
#ifdef __linux__
#include <sys/eventfd.h>
#endif

struct mg__notifier {
    mg__mutex_t mu;
    int rfd, wfd;               /* guarded by mu; -1 when closed (eventfd: rfd == wfd) */
    uint64_t *tokens;           /* guarded by mu: posted, not yet drained */
    size_t n, cap;              /* guarded by mu */
    int refs;                   /* atomic */
};

int
mg__notifier_create(mg__notifier_t **out)
{
    mg__notifier_t *nt = calloc(1, sizeof *nt);
    if (nt == NULL)
        return MG_ENOMEM;
    if (pthread_mutex_init(&nt->mu, NULL) != 0) {
        free(nt);
        return MG_ENOMEM;
    }
#ifdef __linux__
    nt->rfd = nt->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (nt->rfd < 0)
        goto fail;
#else
    int fds[2];
    if (pipe(fds) != 0)
        goto fail;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    nt->rfd = fds[0];
    nt->wfd = fds[1];
#endif
    nt->refs = 1;
    *out = nt;
    return 0;
fail:
    pthread_mutex_destroy(&nt->mu);
    free(nt);
    return MG_ECREATE;
}

void
mg__notifier_incref(mg__notifier_t *nt)
{
    __atomic_add_fetch(&nt->refs, 1, __ATOMIC_RELAXED);
}

/* Close the descriptors (mu held). */
static void
close_locked(mg__notifier_t *nt)
{
    if (nt->rfd >= 0)
        close(nt->rfd);
    if (nt->wfd >= 0 && nt->wfd != nt->rfd)
        close(nt->wfd);
    nt->rfd = nt->wfd = -1;
}

void
mg__notifier_decref(mg__notifier_t *nt)
{
    if (__atomic_sub_fetch(&nt->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    close_locked(nt);
    free(nt->tokens);
    pthread_mutex_destroy(&nt->mu);
    free(nt);
}

int
mg__notifier_fd(mg__notifier_t *nt)
{
    mg__mutex_lock(&nt->mu);
    int fd = nt->rfd;
    mg__mutex_unlock(&nt->mu);
    return fd;
}

void
mg__notifier_close(mg__notifier_t *nt)
{
    mg__mutex_lock(&nt->mu);
    close_locked(nt);
    nt->n = 0;
    mg__mutex_unlock(&nt->mu);
}

int
mg__notifier_post(mg__notifier_t *nt, uint64_t token)
{
    int posted = 0;
    mg__mutex_lock(&nt->mu);
    if (nt->wfd < 0)
        goto done;
    if (nt->n == nt->cap) {
        size_t cap = nt->cap ? nt->cap * 2 : 16;
        uint64_t *p = realloc(nt->tokens, cap * sizeof *p);
        if (p == NULL)
            goto wake;              /* token lost, but the loop still wakes and rechecks */
        nt->tokens = p;
        nt->cap = cap;
    }
    nt->tokens[nt->n++] = token;
    posted = 1;
    if (nt->n > 1)
        goto done;                  /* already readable since the last drain */
wake:;
    /* eventfd: add 1; pipe: one byte.  EAGAIN means already readable. */
    uint64_t one = 1;
#ifdef __linux__
    ssize_t w = write(nt->wfd, &one, sizeof one);
#else
    ssize_t w = write(nt->wfd, &one, 1);
#endif
    (void)w;
done:
    mg__mutex_unlock(&nt->mu);
    return posted;
}

int
mg__notifier_drain(mg__notifier_t *nt, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    mg__mutex_lock(&nt->mu);
    if (nt->n > 0) {
        uint64_t *copy = malloc(nt->n * sizeof *copy);
        if (copy == NULL) {
            mg__mutex_unlock(&nt->mu);
            return MG_ENOMEM;       /* the descriptor stays readable: the loop comes back */
        }
        for (size_t i = 0; i < nt->n; i++)
            copy[i] = nt->tokens[i];
        *out = copy;
        *n = nt->n;
        nt->n = 0;
    }
    if (nt->rfd >= 0) {
        unsigned char sink[64];
        while (read(nt->rfd, sink, sizeof sink) > 0) {
#ifdef __linux__
            break;                  /* an eventfd read takes the whole count */
#endif
        }
    }
    mg__mutex_unlock(&nt->mu);
    return 0;
}
