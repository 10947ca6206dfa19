/* codec.c -- the value codec (see codec.h for the contract).
 *
 * Wire format: one tag byte, then the payload.  Lengths and counts are
 * unsigned LEB128 varints; small ints are zigzag varints.  The bytes never
 * leave the process, so doubles and code units are in native byte order.
 */
#include "manygil.h"
#include "py/codec.h"
#include "core/channel.h"
#include "core/shbuf.h"

enum {
    T_NONE = 'N', T_TRUE = 'T', T_FALSE = 'F',
    T_INT = 'i',        /* zigzag varint (fits int64) */
    T_BIGINT = 'I',     /* varint n, n bytes signed little-endian */
    T_FLOAT = 'f',      /* 8 bytes */
    T_COMPLEX = 'c',    /* 16 bytes */
    T_ASCII = 'a',      /* varint n, n ASCII bytes */
    T_UCS1 = '1', T_UCS2 = '2', T_UCS4 = '4',  /* varint n code units, raw */
    T_BYTES = 'b', T_BYTEARRAY = 'B',          /* varint n, n bytes */
    T_TUPLE = 't', T_LIST = 'l', T_SET = 's', T_FROZENSET = 'z', /* varint n, items */
    T_DICT = 'd',       /* varint n, n (key, value) pairs */
    T_PICKLE = 'P',     /* varint n, n bytes of pickle protocol 5 */
    T_HANDLE = 'H',     /* varint i: the i-th reference of the encoding */
    T_PICKLE_OOB = 'Q', /* varint k, k x (varint ref index), then as T_PICKLE */
    T_BORROWED = 'W',   /* varint ref index: the sender's bytes/bytearray, lent */
    T_MEMVIEW = 'M',    /* varint ref index (a shared block), u8 readonly,
                           varint n + format, varint ndim, ndim x varint shape */
    T_GLOBAL = 'G',     /* an importable function/class by name: two str
                           values, module and qualname */
    T_ADOPT = 'A',      /* varint ref index: a big bytes/bytearray copied once
                           into a block the receiver can take over as is */
};

/* bytes and bytearray values at least this big are lent, not copied, when
 * the encoding allows it (mg__buf_t.borrow): one copy in all. */
#define BORROW_MIN (64 * 1024)

PyObject *
mg__import_attr(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL)
        return NULL;
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

/* ---- big bytes and bytearray: one copy --------------------------------------
 *
 * When the encoding outlives the sender's call (channels, queues, the pool),
 * a big bytes/bytearray is copied once, by the sender, into a malloc'd block
 * laid out exactly as CPython lays out such an object of that size (see
 * compat.h, mg__block_header: a whole PyBytesObject for bytes, the data
 * buffer of a bytearray -- on 3.15 a bytes object too).  The receiver takes
 * the block over instead of copying it again (compat.h's *_take_block).
 * CPython frees it with PyObject_Free, which for a block that pymalloc did
 * not make (anything over 512 bytes is such a block) calls PyMem_RawFree,
 * i.e. free().  That holds with the default allocators (pymalloc or
 * malloc); with debug hooks (PYTHONMALLOC=debug, -X dev, a debug build),
 * another allocator, or a CPython whose layout compat.h does not vouch for,
 * it does not, so then the receiver copies (two copies, as before). */
/* Where it pays (bench/adopt_threshold.py): from 4 KiB for one value, but a
 * container of many 64-256 KiB values is faster copied twice -- glibc hands
 * such freed blocks back to the OS and the next ones fault their pages in
 * again, while the one big copy buffer stays mapped.  From 1 MiB on, both
 * ways fault and taking the block over wins 1.5-2x either way. */
#ifndef MG_ADOPT_MIN
#define MG_ADOPT_MIN (1024 * 1024)
#endif
#define ADOPT_MIN MG_ADOPT_MIN

static PyObject *corrupt(const char *what);
static int put_varint(mg__buf_t *b, uint64_t v);

static int adopt_ok = -1;       /* -1: not decided yet */

long
mg__codec_adopt_min(void)
{
    return ADOPT_MIN;
}
static uint64_t blocks_adopted, blocks_copied;     /* atomic: for tests */

void
mg__codec_block_stats(uint64_t *adopted, uint64_t *copied)
{
    *adopted = __atomic_load_n(&blocks_adopted, __ATOMIC_RELAXED);
    *copied = __atomic_load_n(&blocks_copied, __ATOMIC_RELAXED);
}

int
mg__codec_adopts(void)
{
    return adopt_ok == 1;
}

/* Whether received blocks can become objects (decided once, early, by the
 * main interpreter: see mg__codec_init). */
void
mg__codec_init(int dev_mode)
{
    if (adopt_ok >= 0)
        return;
#if !MG__ADOPT_BLOCKS
    (void)dev_mode;
    adopt_ok = 0;
#else
    const char *alloc = getenv("PYTHONMALLOC");
    adopt_ok = !dev_mode && (alloc == NULL || alloc[0] == '\0' || strcmp(alloc, "pymalloc") == 0
                             || strcmp(alloc, "malloc") == 0);
#endif
}

static void
release_block(void *ptr, int arg)
{
    (void)arg;
    free(ptr);                  /* NULL once taken over */
}

/* Copy a big bytes/bytearray once into a block the receiver can adopt.
 * 0 or -1 with an exception. */
static int
enc_adoptable(mg__buf_t *b, PyObject *o, int is_bytes)
{
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0)   /* pins a bytearray's size */
        return -1;
    size_t n = (size_t)view.len, head = mg__block_header(is_bytes);
    unsigned char *blk = malloc(head + n + 1);
    if (blk == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    /* Small copies keep the GIL (releasing it costs more than they do). */
    int rc = n >= (1 << 20) ? mg__copy_buffer(blk + head, &view) : (memcpy(blk + head, view.buf, n), 0);
    PyBuffer_Release(&view);
    if (rc < 0) {
        free(blk);
        return -1;
    }
    blk[head + n] = '\0';
    size_t index = b->nrefs;
    if (mg__buf_add_ref(b, release_block, blk, is_bytes) < 0) {
        free(blk);
        PyErr_NoMemory();
        return -1;
    }
    if (mg__put_ref_index(b, T_ADOPT, index) < 0 || put_varint(b, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Build the object of an adoptable block: take the block over when `ref`
 * may be consumed (and adopting is safe here), else copy from it. */
static PyObject *
dec_adoptable(mg__bufref_t *ref, size_t n, int consume)
{
    int is_bytes = ref->arg;
    unsigned char *blk = ref->ptr;
    size_t head = mg__block_header(is_bytes);
    if (blk == NULL)
        return corrupt("block already taken");
    if (n > (size_t)PY_SSIZE_T_MAX - head - 1)
        return corrupt("block too big");
#if MG__ADOPT_BLOCKS
    if (consume && adopt_ok == 1) {
        PyObject *o = is_bytes ? mg__bytes_take_block(blk, (Py_ssize_t)n)
                               : mg__bytearray_take_block(blk, (Py_ssize_t)n);
        if (o == NULL)
            return NULL;
        ref->ptr = NULL;
        __atomic_add_fetch(&blocks_adopted, 1, __ATOMIC_RELAXED);
        return o;
    }
#else
    (void)consume;
#endif
    __atomic_add_fetch(&blocks_copied, 1, __ATOMIC_RELAXED);
    const char *data = (const char *)blk + head;
    return is_bytes ? PyBytes_FromStringAndSize(data, (Py_ssize_t)n)
                    : PyByteArray_FromStringAndSize(data, (Py_ssize_t)n);
}

/* ---- encoding ---------------------------------------------------------- */

#define ENC_TOO_DEEP 1      /* not an error: retry the whole value with pickle */

static int
put_varint(mg__buf_t *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return mg__buf_put(b, tmp, n);
}

int
mg__copy_buffer(void *dst, Py_buffer *view)
{
    if (PyBuffer_IsContiguous(view, 'C')) {
        /* A plain (maybe big) memcpy: let other threads run meanwhile. */
        Py_BEGIN_ALLOW_THREADS
        memcpy(dst, view->buf, (size_t)view->len);
        Py_END_ALLOW_THREADS
        return 0;
    }
    return PyBuffer_ToContiguous(dst, view, view->len, 'C');   /* needs the GIL */
}

int
mg__put_ref_index(mg__buf_t *b, int tag, size_t index)
{
    if (mg__buf_put_u8(b, (unsigned char)tag) < 0 || put_varint(b, index) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int
put_tag_len(mg__buf_t *b, int tag, uint64_t n)
{
    if (mg__buf_put_u8(b, (unsigned char)tag) < 0 || put_varint(b, n) < 0)
        return -1;
    return 0;
}

/* Buffer functions return MG_ENOMEM (< 0); turn that into MemoryError. */
#define CHECK_BUF(expr) do { if ((expr) < 0) { PyErr_NoMemory(); return -1; } } while (0)

static int enc(mg__buf_t *b, PyObject *o, int depth);
static int enc_str(mg__buf_t *b, PyObject *o);

/* The object named qualname ("A.b.c") in module, or NULL (no exception). */
static PyObject *
lookup_qualname(PyObject *module, PyObject *qualname)
{
    PyObject *dot = PyUnicode_FromStringAndSize(".", 1);
    PyObject *parts = dot ? PyUnicode_Split(qualname, dot, -1) : NULL;
    Py_XDECREF(dot);
    if (parts == NULL)
        return NULL;
    PyObject *obj = Py_NewRef(module);
    for (Py_ssize_t i = 0; obj != NULL && i < PyList_GET_SIZE(parts); i++) {
        PyObject *next = PyObject_GetAttr(obj, PyList_GET_ITEM(parts, i));
        Py_DECREF(obj);
        obj = next;
    }
    Py_DECREF(parts);
    return obj;
}

/* 0, or -1 with NotShareableError when class or builtin o comes from an
 * extension that refuses own-GIL interpreters (manygil._owngil; cached per
 * object there). */
static int
check_own_gil(PyObject *o)
{
    PyObject *check = mg__import_attr("manygil._owngil", "check_global");
    if (check == NULL)
        return -1;
    PyObject *res = PyObject_CallOneArg(check, o);
    Py_DECREF(check);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* Functions, builtins and classes that the target can find by name are
 * sent as (module, qualname) -- no pickle on either side.  1 if written,
 * 0 if o is not such an object (nothing written), -1 on error. */
static int
enc_global(mg__buf_t *b, PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    if (tp != &PyFunction_Type && tp != &PyCFunction_Type && !PyType_Check(o))
        return 0;
    int rc = 0;
    PyObject *modname = NULL, *qualname = NULL, *module = NULL, *found = NULL;
    modname = PyObject_GetAttrString(o, "__module__");
    qualname = modname ? PyObject_GetAttrString(o, "__qualname__") : NULL;
    if (qualname == NULL) {
        PyErr_Clear();
        goto done;
    }
    if (modname == NULL || qualname == NULL || !PyUnicode_CheckExact(modname)
            || !PyUnicode_CheckExact(qualname)
            || PyUnicode_FindChar(qualname, '<', 0, PyUnicode_GET_LENGTH(qualname), 1) != -1
            || PyUnicode_CompareWithASCIIString(modname, "__main__") == 0
            || PyUnicode_CompareWithASCIIString(modname, "__mp_main__") == 0
            || PyUnicode_CompareWithASCIIString(modname, "_pydatetime") == 0
            || PyUnicode_CompareWithASCIIString(modname, "_pydecimal") == 0)
        goto done;
    module = PyImport_GetModule(modname);          /* already imported only */
    if (module == NULL) {
        PyErr_Clear();
        goto done;
    }
    found = lookup_qualname(module, qualname);
    if (found != o) {
        PyErr_Clear();
        goto done;
    }
    if (tp != &PyFunction_Type && check_own_gil(o) < 0) {
        rc = -1;
        goto done;
    }
    if (mg__buf_put_u8(b, T_GLOBAL) < 0) {
        PyErr_NoMemory();
        rc = -1;
        goto done;
    }
    rc = enc_str(b, modname) < 0 || enc_str(b, qualname) < 0 ? -1 : 1;
done:
    Py_XDECREF(found);
    Py_XDECREF(module);
    Py_XDECREF(qualname);
    Py_XDECREF(modname);
    return rc;
}

/* The reference a lent value holds: the sender's buffer export (keeps a
 * bytearray from being resized meanwhile).  Released in the sender's
 * interpreter, with its GIL: the caller frees the encoding there. */
static void
release_borrowed(void *ptr, int arg)
{
    (void)arg;
    Py_buffer *view = ptr;
    PyBuffer_Release(view);
    PyMem_RawFree(view);
}

/* Lend a big bytes/bytearray value.  0 or -1. */
static int
enc_borrowed(mg__buf_t *b, PyObject *o)
{
    Py_buffer *view = PyMem_RawMalloc(sizeof *view);
    if (view == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
        PyMem_RawFree(view);
        return -1;
    }
    size_t index = b->nrefs;
    if (mg__buf_add_ref(b, release_borrowed, view, PyBytes_Check(o)) < 0) {
        release_borrowed(view, 0);
        PyErr_NoMemory();
        return -1;
    }
    return mg__put_ref_index(b, T_BORROWED, index);
}

/* Copy the bytes of `view` once into a new shared block, recorded as a
 * reference of b (read-only if the view is); *index gets its index.
 * 0 or -1 with an exception. */
static int
copy_to_shared_ref(mg__buf_t *b, Py_buffer *view, size_t *index)
{
    mg__shbuf_t *sb;
    if (mg__shbuf_new((size_t)view->len, 1, &sb) != 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (mg__copy_buffer(sb->data, view) < 0) {
        mg__shbuf_decref(sb);
        return -1;
    }
    *index = b->nrefs;
    if (mg__buf_add_ref(b, mg__shbuf_release_ref, sb, view->readonly) < 0) {
        mg__shbuf_decref(sb);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* A memoryview: its bytes copied once into a shared block; the other side
 * gets a memoryview of the same format and shape over that block. */
static int
enc_memoryview(mg__buf_t *b, PyObject *o)
{
    Py_buffer view;
    size_t index;
    if (PyObject_GetBuffer(o, &view, PyBUF_FULL_RO) < 0)
        return -1;
    int rc = -1;
    if (copy_to_shared_ref(b, &view, &index) < 0 || mg__put_ref_index(b, T_MEMVIEW, index) < 0)
        goto done;
    const char *fmt = view.format ? view.format : "B";
    size_t flen = strlen(fmt);
    int ok = mg__buf_put_u8(b, (unsigned char)view.readonly) == 0
             && put_varint(b, flen) == 0 && mg__buf_put(b, fmt, flen) == 0
             && put_varint(b, (uint64_t)view.ndim) == 0;
    for (int i = 0; ok && i < view.ndim; i++)
        ok = put_varint(b, (uint64_t)view.shape[i]) == 0;
    if (!ok) {
        PyErr_NoMemory();
        goto done;
    }
    rc = 0;
done:
    PyBuffer_Release(&view);
    return rc;
}

/* An out-of-band pickle buffer: copied once into a shared block; its index
 * written.  0 or -1. */
static int
enc_oob_buffer(mg__buf_t *b, PyObject *pb)
{
    Py_buffer view;
    size_t index;
    if (PyObject_GetBuffer(pb, &view, PyBUF_FULL_RO) < 0)
        return -1;
    int rc = copy_to_shared_ref(b, &view, &index);
    if (rc == 0 && put_varint(b, index) < 0) {
        PyErr_NoMemory();
        rc = -1;
    }
    PyBuffer_Release(&view);
    return rc;
}

static int
enc_pickle(mg__buf_t *b, PyObject *o)
{
    PyObject *dumps = mg__import_attr("manygil._pickle", "dumps");
    if (dumps == NULL)
        return -1;
    PyObject *res = PyObject_CallOneArg(dumps, o);
    Py_DECREF(dumps);
    if (res == NULL)
        return -1;
    PyObject *data = res, *oob = NULL;
    int rc = -1;
    if (PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
        data = PyTuple_GET_ITEM(res, 0);
        oob = PyTuple_GET_ITEM(res, 1);
    }
    if (!PyBytes_Check(data) || (oob != NULL && !PyList_Check(oob))) {
        PyErr_SetString(PyExc_TypeError, "manygil._pickle.dumps returned a bad value");
        goto done;
    }
    if (oob != NULL) {
        Py_ssize_t k = PyList_GET_SIZE(oob);
        if (put_tag_len(b, T_PICKLE_OOB, (uint64_t)k) < 0) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < k; i++)
            if (enc_oob_buffer(b, PyList_GET_ITEM(oob, i)) < 0)
                goto done;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (put_tag_len(b, T_PICKLE, (uint64_t)n) < 0 || mg__buf_put(b, PyBytes_AS_STRING(data), (size_t)n) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    rc = 0;
done:
    Py_DECREF(res);
    return rc;
}

static int
enc_int(mg__buf_t *b, PyObject *o)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        uint64_t zz = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        CHECK_BUF(mg__buf_put_u8(b, T_INT));
        CHECK_BUF(put_varint(b, zz));
        return 0;
    }
    size_t n = mg__long_nbytes(o);
    CHECK_BUF(put_tag_len(b, T_BIGINT, n));
    CHECK_BUF(mg__buf_reserve(b, n));
    if (mg__long_to_bytes(o, b->data + b->len, n) < 0)
        return -1;
    b->len += n;
    return 0;
}

static int
enc_str(mg__buf_t *b, PyObject *o)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    int kind = PyUnicode_KIND(o);
    int tag = PyUnicode_IS_ASCII(o) ? T_ASCII
            : kind == PyUnicode_1BYTE_KIND ? T_UCS1
            : kind == PyUnicode_2BYTE_KIND ? T_UCS2 : T_UCS4;
    CHECK_BUF(put_tag_len(b, tag, (uint64_t)n));
    CHECK_BUF(mg__buf_put(b, PyUnicode_DATA(o), (size_t)n * (size_t)kind));
    return 0;
}

/* Encode the items of a sequence (list or tuple) that may be mutated by the
 * pickle fallback while we walk it. */
static int
enc_seq(mg__buf_t *b, PyObject *o, int tag, int depth)
{
    int is_list = tag == T_LIST;
    Py_ssize_t n = is_list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);
    CHECK_BUF(put_tag_len(b, tag, (uint64_t)n));
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_list && PyList_GET_SIZE(o) != n) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size while being shared");
            return -1;
        }
        PyObject *item = is_list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i);
        Py_INCREF(item);
        int rc = enc(b, item, depth + 1);
        Py_DECREF(item);
        if (rc)
            return rc;
    }
    return 0;
}

static int
enc_dict(mg__buf_t *b, PyObject *o, int depth)
{
    Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, seen = 0;
    PyObject *k, *v;
    CHECK_BUF(put_tag_len(b, T_DICT, (uint64_t)n));
    while (PyDict_Next(o, &pos, &k, &v)) {
        if (++seen > n)
            break;
        Py_INCREF(k);
        Py_INCREF(v);
        int rc = enc(b, k, depth + 1);
        if (rc == 0)
            rc = enc(b, v, depth + 1);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc)
            return rc;
    }
    if (seen != n || PyDict_GET_SIZE(o) != n) {
        PyErr_SetString(PyExc_RuntimeError, "dict changed size while being shared");
        return -1;
    }
    return 0;
}

static int
enc_set(mg__buf_t *b, PyObject *o, int tag, int depth)
{
    Py_ssize_t n = PySet_GET_SIZE(o), seen = 0;
    CHECK_BUF(put_tag_len(b, tag, (uint64_t)n));
    PyObject *it = PyObject_GetIter(o);
    if (it == NULL)
        return -1;
    PyObject *item;
    int rc = 0;
    while (rc == 0 && (item = PyIter_Next(it)) != NULL) {
        if (++seen > n)
            rc = -2;
        else
            rc = enc(b, item, depth + 1);
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (rc == -2 || (rc == 0 && !PyErr_Occurred() && seen != n)) {
        PyErr_SetString(PyExc_RuntimeError, "set changed size while being shared");
        return -1;
    }
    if (rc == 0 && PyErr_Occurred())
        return -1;
    return rc;
}

/* 0, -1 with an exception, or ENC_TOO_DEEP. */
static int
enc(mg__buf_t *b, PyObject *o, int depth)
{
    if (depth > MG__CODEC_MAX_DEPTH)
        return ENC_TOO_DEEP;
    PyTypeObject *tp = Py_TYPE(o);
    if (o == Py_None) {
        CHECK_BUF(mg__buf_put_u8(b, T_NONE));
    }
    else if (o == Py_True || o == Py_False) {
        CHECK_BUF(mg__buf_put_u8(b, o == Py_True ? T_TRUE : T_FALSE));
    }
    else if (tp == &PyLong_Type) {
        return enc_int(b, o);
    }
    else if (tp == &PyUnicode_Type) {
        return enc_str(b, o);
    }
    else if (tp == &PyFloat_Type) {
        double v = PyFloat_AS_DOUBLE(o);
        CHECK_BUF(mg__buf_put_u8(b, T_FLOAT));
        CHECK_BUF(mg__buf_put(b, &v, sizeof v));
    }
    else if (tp == &PyBytes_Type || tp == &PyByteArray_Type) {
        int is_bytes = tp == &PyBytes_Type;
        Py_ssize_t n = is_bytes ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);
        if (b->borrow && n >= BORROW_MIN)
            return enc_borrowed(b, o);
        if (!b->borrow && n >= ADOPT_MIN)
            return enc_adoptable(b, o, is_bytes);
        const char *p = is_bytes ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
        CHECK_BUF(put_tag_len(b, is_bytes ? T_BYTES : T_BYTEARRAY, (uint64_t)n));
        CHECK_BUF(mg__buf_put(b, p, (size_t)n));
    }
    else if (tp == &PyTuple_Type) {
        return enc_seq(b, o, T_TUPLE, depth);
    }
    else if (tp == &PyList_Type) {
        return enc_seq(b, o, T_LIST, depth);
    }
    else if (tp == &PyDict_Type) {
        return enc_dict(b, o, depth);
    }
    else if (tp == &PySet_Type || tp == &PyFrozenSet_Type) {
        return enc_set(b, o, tp == &PySet_Type ? T_SET : T_FROZENSET, depth);
    }
    else if (tp == &PyMemoryView_Type) {
        return enc_memoryview(b, o);
    }
    else if (tp == &PyComplex_Type) {
        Py_complex c = PyComplex_AsCComplex(o);
        CHECK_BUF(mg__buf_put_u8(b, T_COMPLEX));
        CHECK_BUF(mg__buf_put(b, &c.real, sizeof c.real));
        CHECK_BUF(mg__buf_put(b, &c.imag, sizeof c.imag));
    }
    else {
        int rc = enc_global(b, o);
        if (rc == 0)
            rc = mg__channel_handle_encode(o, b, T_HANDLE);
        if (rc == 0)
            rc = mg__shbuf_encode(o, b, T_HANDLE);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        return enc_pickle(b, o);
    }
    return 0;
}

int
mg__encode(PyObject *obj, mg__buf_t *out)
{
    size_t start = out->len, start_refs = out->nrefs;
    int rc = enc(out, obj, 0);
    if (rc == ENC_TOO_DEEP) {
        /* Too deep for the native form (or cyclic): pickle keeps cycles and
         * raises a clear NotShareableError when it is really too deep. */
        mg__buf_truncate(out, start, start_refs);
        rc = enc_pickle(out, obj);
    }
    return rc;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    mg__bufref_t *refs;
    size_t nrefs;
    int consume;                /* adoptable blocks may be taken over */
} dec_t;

static PyObject *
corrupt(const char *what)
{
    PyErr_Format(PyExc_ValueError, "malformed manygil encoding: %s", what);
    return NULL;
}

/* Read a varint; 0 or -1 (malformed, exception set). */
static int
get_varint(dec_t *d, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (d->p >= d->end) {
            corrupt("truncated varint");
            return -1;
        }
        unsigned char byte = *d->p++;
        r |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = r;
            return 0;
        }
    }
    corrupt("varint too long");
    return -1;
}

/* Read a length of n items of `unit` bytes each that must fit in the rest
 * of the input.  0 or -1. */
static int
get_len(dec_t *d, size_t unit, Py_ssize_t *n)
{
    uint64_t v;
    if (get_varint(d, &v) < 0)
        return -1;
    if (v > (uint64_t)(d->end - d->p) / unit) {
        corrupt("length past the end");
        return -1;
    }
    *n = (Py_ssize_t)v;
    return 0;
}

static PyObject *dec(dec_t *d, int depth);

/* Unpickle n bytes at p; `buffers` (a list, or NULL) are its out-of-band
 * buffers. */
static PyObject *
dec_pickle(const unsigned char *p, Py_ssize_t n, PyObject *buffers)
{
    PyObject *loads = mg__import_attr("manygil._pickle", "loads");
    if (loads == NULL)
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize((const char *)p, n);
    PyObject *res = NULL;
    if (data != NULL)
        res = PyObject_CallFunctionObjArgs(loads, data, buffers ? buffers : Py_None, NULL);
    Py_XDECREF(data);
    Py_DECREF(loads);
    return res;
}

static PyObject *
dec_memoryview(dec_t *d)
{
    uint64_t index, ndim;
    Py_ssize_t flen;
    if (get_varint(d, &index) < 0)
        return NULL;
    if (index >= d->nrefs || d->refs[index].release != mg__shbuf_release_ref)
        return corrupt("memoryview without its shared block");
    if (d->p >= d->end)
        return corrupt("truncated memoryview");
    d->p++;                                     /* readonly: kept in the reference */
    if (get_len(d, 1, &flen) < 0)
        return NULL;
    PyObject *fmt = PyUnicode_DecodeASCII((const char *)d->p, flen, "strict");
    d->p += flen;
    if (fmt == NULL || get_varint(d, &ndim) < 0 || ndim > 64) {
        Py_XDECREF(fmt);
        return PyErr_Occurred() ? NULL : corrupt("bad memoryview shape");
    }
    PyObject *shape = PyTuple_New((Py_ssize_t)ndim), *block = NULL, *view = NULL, *res = NULL;
    for (uint64_t i = 0; shape != NULL && i < ndim; i++) {
        uint64_t dim;
        if (get_varint(d, &dim) < 0)
            goto done;
        PyObject *v = PyLong_FromUnsignedLongLong(dim);
        if (v == NULL)
            goto done;
        PyTuple_SET_ITEM(shape, (Py_ssize_t)i, v);
    }
    if (shape == NULL)
        goto done;
    block = mg__shbuf_decode(&d->refs[index]);
    view = block ? PyMemoryView_FromObject(block) : NULL;
    if (view == NULL)
        goto done;
    if (ndim == 1 && PyUnicode_CompareWithASCIIString(fmt, "B") == 0) {
        res = Py_NewRef(view);
        goto done;
    }
    /* The original format and shape; a layout cast() cannot express keeps
     * the plain byte view. */
    res = PyObject_CallMethod(view, "cast", "OO", fmt, shape);
    if (res == NULL) {
        PyErr_Clear();
        res = Py_NewRef(view);
    }
done:
    Py_XDECREF(view);
    Py_XDECREF(block);
    Py_XDECREF(shape);
    Py_DECREF(fmt);
    return res;
}

/* T_PICKLE_OOB: the shared blocks (as SharedBuffer objects), then the
 * pickle that uses them in place. */
static PyObject *
dec_pickle_oob(dec_t *d)
{
    Py_ssize_t k, n;
    if (get_len(d, 1, &k) < 0)
        return NULL;
    PyObject *buffers = PyList_New(k);
    if (buffers == NULL)
        return NULL;
    PyObject *res = NULL;
    for (Py_ssize_t i = 0; i < k; i++) {
        uint64_t index;
        if (get_varint(d, &index) < 0)
            goto done;
        if (index >= d->nrefs || d->refs[index].release != mg__shbuf_release_ref) {
            corrupt("out-of-band buffer without a shared block");
            goto done;
        }
        PyObject *sb = mg__shbuf_decode(&d->refs[index]);
        if (sb == NULL)
            goto done;
        PyList_SET_ITEM(buffers, i, sb);
    }
    if (d->p >= d->end || *d->p++ != T_PICKLE) {
        corrupt("out-of-band buffers without their pickle");
        goto done;
    }
    if (get_len(d, 1, &n) < 0)
        goto done;
    d->p += n;
    res = dec_pickle(d->p - n, n, buffers);
done:
    Py_DECREF(buffers);
    return res;
}

static PyObject *
dec_container(dec_t *d, int tag, int depth)
{
    Py_ssize_t n;
    if (get_len(d, tag == T_DICT ? 2 : 1, &n) < 0)
        return NULL;
    PyObject *c;
    switch (tag) {
    case T_TUPLE: c = PyTuple_New(n); break;
    case T_LIST: c = PyList_New(n); break;
    case T_DICT: c = PyDict_New(); break;
    case T_SET: c = PySet_New(NULL); break;
    default: c = PyFrozenSet_New(NULL); break;
    }
    if (c == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = dec(d, depth + 1);
        if (item == NULL)
            goto error;
        if (tag == T_TUPLE) {
            PyTuple_SET_ITEM(c, i, item);
        }
        else if (tag == T_LIST) {
            PyList_SET_ITEM(c, i, item);
        }
        else if (tag == T_DICT) {
            PyObject *v = dec(d, depth + 1);
            int rc = v ? PyDict_SetItem(c, item, v) : -1;
            Py_DECREF(item);
            Py_XDECREF(v);
            if (rc < 0)
                goto error;
        }
        else {
            int rc = PySet_Add(c, item);
            Py_DECREF(item);
            if (rc < 0)
                goto error;
        }
    }
    return c;
error:
    Py_DECREF(c);   /* tuple/list slots not yet set are NULL: safe */
    return NULL;
}

static PyObject *
dec(dec_t *d, int depth)
{
    if (depth > MG__CODEC_MAX_DEPTH)
        return corrupt("nested too deeply");
    if (d->p >= d->end)
        return corrupt("truncated value");
    int tag = *d->p++;
    Py_ssize_t n;
    switch (tag) {
    case T_NONE: Py_RETURN_NONE;
    case T_TRUE: Py_RETURN_TRUE;
    case T_FALSE: Py_RETURN_FALSE;
    case T_INT: {
        uint64_t zz;
        if (get_varint(d, &zz) < 0)
            return NULL;
        int64_t v = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
        return PyLong_FromLongLong(v);
    }
    case T_BIGINT:
        if (get_len(d, 1, &n) < 0)
            return NULL;
        if (n == 0)
            return corrupt("empty integer");
        d->p += n;
        return mg__long_from_bytes(d->p - n, (size_t)n);
    case T_FLOAT: case T_COMPLEX: {
        double v[2];
        size_t size = tag == T_FLOAT ? sizeof(double) : 2 * sizeof(double);
        if ((size_t)(d->end - d->p) < size)
            return corrupt("truncated float");
        memcpy(v, d->p, size);
        d->p += size;
        return tag == T_FLOAT ? PyFloat_FromDouble(v[0]) : PyComplex_FromDoubles(v[0], v[1]);
    }
    case T_ASCII: {
        if (get_len(d, 1, &n) < 0)
            return NULL;
        PyObject *s = PyUnicode_New(n, 127);
        if (s == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (d->p[i] > 127) {
                Py_DECREF(s);
                return corrupt("non-ASCII byte in ASCII string");
            }
        }
        memcpy(PyUnicode_DATA(s), d->p, (size_t)n);
        d->p += n;
        return s;
    }
    case T_UCS1: case T_UCS2: case T_UCS4: {
        int kind = tag == T_UCS1 ? PyUnicode_1BYTE_KIND
                 : tag == T_UCS2 ? PyUnicode_2BYTE_KIND : PyUnicode_4BYTE_KIND;
        if (get_len(d, (size_t)kind, &n) < 0)
            return NULL;
        const unsigned char *p = d->p;
        d->p += (size_t)n * (size_t)kind;
        if (kind == PyUnicode_4BYTE_KIND) {
            /* FromKindAndData trusts its input; reject invalid code points. */
            for (Py_ssize_t i = 0; i < n; i++) {
                Py_UCS4 ch;
                memcpy(&ch, p + 4 * i, 4);
                if (ch > 0x10ffff)
                    return corrupt("code point out of range");
            }
        }
        return PyUnicode_FromKindAndData(kind, p, n);
    }
    case T_BYTES: case T_BYTEARRAY:
        if (get_len(d, 1, &n) < 0)
            return NULL;
        d->p += n;
        return tag == T_BYTES
            ? PyBytes_FromStringAndSize((const char *)d->p - n, n)
            : PyByteArray_FromStringAndSize((const char *)d->p - n, n);
    case T_TUPLE: case T_LIST: case T_DICT: case T_SET: case T_FROZENSET:
        return dec_container(d, tag, depth);
    case T_PICKLE:
        if (get_len(d, 1, &n) < 0)
            return NULL;
        d->p += n;
        return dec_pickle(d->p - n, n, NULL);
    case T_PICKLE_OOB:
        return dec_pickle_oob(d);
    case T_BORROWED: {
        uint64_t i;
        if (get_varint(d, &i) < 0)
            return NULL;
        if (i >= d->nrefs || d->refs[i].release != release_borrowed)
            return corrupt("lent value without its reference");
        Py_buffer *view = d->refs[i].ptr;
        return d->refs[i].arg
            ? PyBytes_FromStringAndSize(view->buf, view->len)
            : PyByteArray_FromStringAndSize(view->buf, view->len);
    }
    case T_ADOPT: {
        uint64_t i, n;
        if (get_varint(d, &i) < 0 || get_varint(d, &n) < 0)
            return NULL;
        if (i >= d->nrefs || d->refs[i].release != release_block)
            return corrupt("adoptable value without its block");
        return dec_adoptable(&d->refs[i], (size_t)n, d->consume);
    }
    case T_MEMVIEW:
        return dec_memoryview(d);
    case T_GLOBAL: {
        PyObject *modname = dec(d, depth + 1);
        PyObject *qualname = modname ? dec(d, depth + 1) : NULL;
        PyObject *res = NULL;
        if (qualname != NULL && PyUnicode_Check(modname) && PyUnicode_Check(qualname)) {
            PyObject *module = PyImport_Import(modname);
            if (module != NULL) {
                res = lookup_qualname(module, qualname);
                Py_DECREF(module);
            }
        }
        else if (qualname != NULL) {
            corrupt("bad global reference");
        }
        Py_XDECREF(modname);
        Py_XDECREF(qualname);
        return res;
    }
    case T_HANDLE: {
        uint64_t i;
        if (get_varint(d, &i) < 0)
            return NULL;
        if (i >= d->nrefs)
            return corrupt("handle without a reference");
        const mg__bufref_t *ref = &d->refs[i];
        if (ref->release == mg__channel_release_transit)
            return mg__channel_handle_decode(ref);
        if (ref->release == mg__shbuf_release_ref)
            return mg__shbuf_decode(ref);
        return corrupt("unknown kind of reference");
    }
    default:
        return corrupt("unknown tag");
    }
}

static PyObject *
decode(const mg__buf_t *b, int consume)
{
    dec_t d = {b->data, b->data + b->len, b->refs, b->nrefs, consume};
    PyObject *res = dec(&d, 0);
    if (res != NULL && d.p != d.end) {
        Py_DECREF(res);
        return corrupt("trailing bytes");
    }
    return res;
}

PyObject *
mg__decode(const mg__buf_t *b)
{
    return decode(b, 0);
}

PyObject *
mg__decode_consume(mg__buf_t *b)
{
    return decode(b, 1);
}

PyObject *
mg__decode_bytes(const unsigned char *data, size_t len)
{
    mg__buf_t b = {(unsigned char *)data, len, len, NULL, 0, 0, 0};
    return mg__decode(&b);
}
