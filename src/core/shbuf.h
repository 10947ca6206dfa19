/* shbuf.h -- shared buffers: blocks of memory that belong to no interpreter.
 *
 * A block has an atomic reference count; every interpreter's SharedBuffer
 * object holds one reference, and so does every encoding in flight that
 * names the block.  Large blocks are mmap'd, so freeing the last reference
 * returns the memory to the OS.  The contents are never moved or resized.
 */
#ifndef MG_CORE_SHBUF_H
#define MG_CORE_SHBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg__shbuf {
    unsigned char *data;        /* immutable */
    size_t nbytes;              /* immutable */
    int mapped;                 /* immutable: from mmap (else malloc) */
    int refs;                   /* atomic */
} mg__shbuf_t;

/* Blocks of at least this size are mmap'd. */
#define MG__SHBUF_MMAP_MIN (256 * 1024)

/* A new zero-filled block of nbytes (0 allowed); *out gets the reference.
 * With `populate`, a mapped block gets its pages up front (cheaper than one
 * fault per page when the caller is about to write all of it).
 * 0 or MG_ENOMEM. */
int mg__shbuf_new(size_t nbytes, int populate, mg__shbuf_t **out);

void mg__shbuf_incref(mg__shbuf_t *b);
void mg__shbuf_decref(mg__shbuf_t *b);

/* A release function for mg__buf_add_ref (arg unused). */
void mg__shbuf_release_ref(void *b, int arg);

#endif /* MG_CORE_SHBUF_H */
