/* codec.h -- copy values between interpreters as bytes that belong to none.
 *
 * The encoded form is a tagged binary stream written into a mg__buf_t.
 * None, bool, int, float, complex, str, bytes, bytearray, tuple, list, dict,
 * set and frozenset (exact types) are written natively; anything else is
 * pickled (protocol 5) by manygil._pickle, which knows how to send functions
 * and classes.  Containers nested deeper than MG__CODEC_MAX_DEPTH (or
 * cyclic) make the whole value go through pickle, which keeps cycles and
 * reports too-deep values as NotShareableError.
 */
#ifndef MG_PY_CODEC_H
#define MG_PY_CODEC_H

#include "py/compat.h"
#include "core/buf.h"

#define MG__CODEC_MAX_DEPTH 200

/* Append the encoding of obj to out.  0, or -1 with an exception set
 * (NotShareableError when obj cannot cross); out may then hold a partial
 * encoding past its original length. */
int mg__encode(PyObject *obj, mg__buf_t *out);

/* Rebuild a value from an encoding in the current interpreter.  New
 * reference, or NULL with an exception (ValueError for malformed input).
 * Handles (channel ends) in the encoding are resolved through b's
 * references; plain bytes (no references) cannot carry them. */
PyObject *mg__decode(const mg__buf_t *b);

/* mg__decode of an encoding decoded once and then freed (a channel item, a
 * task, a result): big bytes/bytearray values copied into blocks by the
 * sender become the new objects without a second copy (the blocks leave
 * b).  Decode with mg__decode when b may be decoded again. */
PyObject *mg__decode_consume(mg__buf_t *b);

/* Decide once, in the main interpreter, whether received blocks can become
 * objects (only with CPython's default allocators; dev_mode: -X dev). */
void mg__codec_init(int dev_mode);

/* How many big bytes/bytearray blocks receivers took over (one copy in
 * all) and copied from (two), since the start. */
void mg__codec_block_stats(uint64_t *adopted, uint64_t *copied);

/* Whether receivers take blocks over in this process (CPython version,
 * build and allocators allow it: compat.h MG__ADOPT_BLOCKS, mg__codec_init). */
int mg__codec_adopts(void);

/* The size from which bytes/bytearray values take one copy that way. */
long mg__codec_adopt_min(void);

/* mg__decode of plain bytes. */
PyObject *mg__decode_bytes(const unsigned char *data, size_t len);

/* Hooks the codec uses for manygil's own handle objects: channel ends and
 * queues (channel.c), shared buffers (shbuf.c).  *_encode: 1 if obj is
 * such a handle (written to b as `tag` + the index of a reference recorded
 * in b), 0 if it is not one, -1 on error.  *_decode: a new handle in the
 * current interpreter for reference `ref` of an encoding. */
int mg__channel_handle_encode(PyObject *obj, mg__buf_t *b, int tag);
PyObject *mg__channel_handle_decode(const mg__bufref_t *ref);
int mg__shbuf_encode(PyObject *obj, mg__buf_t *b, int tag);
PyObject *mg__shbuf_decode(const mg__bufref_t *ref);

/* Copy the bytes of `view` (any layout) to dst in C order.  0, or -1 with
 * an exception.  Call with the GIL held; it is released around a plain
 * memcpy. */
int mg__copy_buffer(void *dst, Py_buffer *view);

/* Write `tag` and the varint `index` (a reference's index) to b.  0, or -1
 * with MemoryError. */
int mg__put_ref_index(mg__buf_t *b, int tag, size_t index);

/* getattr(import(module), name): a new reference or NULL with an exception. */
PyObject *mg__import_attr(const char *module, const char *name);

#endif /* MG_PY_CODEC_H */
