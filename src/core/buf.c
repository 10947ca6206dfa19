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

void
mg__buf_free(mg__buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
