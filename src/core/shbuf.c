/* shbuf.c -- shared buffers (see shbuf.h). */
#include <stdlib.h>
#include <sys/mman.h>
#include "manygil.h"
#include "core/shbuf.h"


int
mg__shbuf_new(size_t nbytes, int populate, mg__shbuf_t **out)
{
    mg__shbuf_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return MG_ENOMEM;
    if (nbytes >= MG__SHBUF_MMAP_MIN) {
        int flags = MAP_PRIVATE | MAP_ANONYMOUS;
        (void)populate;
#ifdef MAP_POPULATE
        if (populate)
            flags |= MAP_POPULATE;
#endif
        void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (p == MAP_FAILED) {
            free(b);
            return MG_ENOMEM;
        }
        b->data = p;
        b->mapped = 1;
    }
    else {
        b->data = calloc(1, nbytes ? nbytes : 1);
        if (b->data == NULL) {
            free(b);
            return MG_ENOMEM;
        }
    }
    b->nbytes = nbytes;
    b->refs = 1;
    *out = b;
    return 0;
}

void
mg__shbuf_incref(mg__shbuf_t *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void
mg__shbuf_decref(mg__shbuf_t *b)
{
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (b->mapped)
        munmap(b->data, b->nbytes);
    else
        free(b->data);
    free(b);
}

void
mg__shbuf_release_ref(void *b, int arg)
{
    (void)arg;
    mg__shbuf_decref(b);
}
