/* buf.h -- a growable byte buffer in plain malloc'd memory.  Encoded values
 * live in these: they belong to no interpreter and may be freed from any
 * thread, with or without a GIL. */
#ifndef MG_CORE_BUF_H
#define MG_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A reference an encoding holds on a process-global object it names (a
 * channel end, a shared buffer): it keeps the object alive while the bytes
 * are in flight, and is released when the buffer is freed or cleared. */
typedef struct {
    void (*release)(void *ptr, int arg);
    void *ptr;
    int arg;
} mg__bufref_t;

typedef struct {
    unsigned char *data;
    size_t len;
    size_t cap;
    mg__bufref_t *refs;
    size_t nrefs;
    size_t refcap;
    int borrow;     /* the encoder may point at the sender's memory: set only
                     * when the encoding is decoded and freed while the
                     * sending thread waits (Interpreter.call, prepare_main) */
} mg__buf_t;

#define MG__BUF_INIT {NULL, 0, 0, NULL, 0, 0, 0}

/* Make room for `extra` more bytes.  Returns 0 or MG_ENOMEM (buffer intact). */
int mg__buf_reserve(mg__buf_t *b, size_t extra);

/* Record a reference the contents hold.  0 or MG_ENOMEM (then the caller
 * still owns the reference). */
int mg__buf_add_ref(mg__buf_t *b, void (*release)(void *, int), void *ptr, int arg);

/* Release the references and forget the contents (keeps the memory).
 * Must not be called while holding a channel lock: releasing a reference
 * may take one. */
void mg__buf_clear(mg__buf_t *b);

/* Cut the contents back to `len` bytes and `nrefs` references (a mark
 * taken earlier), releasing the references past the mark. */
void mg__buf_truncate(mg__buf_t *b, size_t len, size_t nrefs);

/* Release the references, free the memory and reset to empty.  Safe on an
 * empty buffer.  Same locking rule as mg__buf_clear. */
void mg__buf_free(mg__buf_t *b);

/* Move the contents (and references) of *src into *dst, which must be
 * empty; *src becomes empty. */
static inline void
mg__buf_move(mg__buf_t *dst, mg__buf_t *src)
{
    *dst = *src;
    src->data = NULL;
    src->len = src->cap = 0;
    src->refs = NULL;
    src->nrefs = src->refcap = 0;
    src->borrow = 0;
}

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
