/* buf.c -- growable malloc'd byte buffers (see buf.h). */
#include <stdlib.h>
#include "manygil.h"
#include "core/buf.h"

int
mg__buf_reserve(mg__buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return MG_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return MG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
mg__buf_add_ref(mg__buf_t *b, void (*release)(void *, int), void *ptr, int arg)
{
    if (b->nrefs == b->refcap) {
        size_t cap = b->refcap ? b->refcap * 2 : 4;
        mg__bufref_t *p = realloc(b->refs, cap * sizeof *p);
        if (p == NULL)
            return MG_ENOMEM;
        b->refs = p;
        b->refcap = cap;
    }
    b->refs[b->nrefs++] = (mg__bufref_t){release, ptr, arg};
    return 0;
}

void
mg__buf_truncate(mg__buf_t *b, size_t len, size_t nrefs)
{
    /* Detach first: a release callback may free another buffer. */
    size_t n = b->nrefs;
    b->nrefs = nrefs;
    for (size_t i = nrefs; i < n; i++)
        b->refs[i].release(b->refs[i].ptr, b->refs[i].arg);
    b->len = len;
}

void
mg__buf_clear(mg__buf_t *b)
{
    mg__buf_truncate(b, 0, 0);
}

void
mg__buf_free(mg__buf_t *b)
{
    mg__buf_clear(b);
    free(b->refs);
    free(b->data);
    b->refs = NULL;
    b->refcap = 0;
    b->data = NULL;
    b->len = b->cap = 0;
}
