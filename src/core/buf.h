/* buf.h -- a growable byte buffer in plain malloc'd memory.  Encoded values
 * live in these: they belong to no interpreter and may be freed from any
 * thread, with or without a GIL. */
#ifndef MG_CORE_BUF_H
#define MG_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    unsigned char *data;
    size_t len;
    size_t cap;
} mg__buf_t;

#define MG__BUF_INIT {NULL, 0, 0}

/* Make room for `extra` more bytes.  Returns 0 or MG_ENOMEM (buffer intact). */
int mg__buf_reserve(mg__buf_t *b, size_t extra);

/* Free the memory and reset to empty.  Safe on an empty buffer. */
void mg__buf_free(mg__buf_t *b);

/* Append n bytes.  Returns 0 or MG_ENOMEM. */
static inline int
mg__buf_put(mg__buf_t *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        int rc = mg__buf_reserve(b, n);
        if (rc) return rc;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int
mg__buf_put_u8(mg__buf_t *b, unsigned char v)
{
    if (b->cap == b->len) {
        int rc = mg__buf_reserve(b, 1);
        if (rc) return rc;
    }
    b->data[b->len++] = v;
    return 0;
}

#endif /* MG_CORE_BUF_H */
