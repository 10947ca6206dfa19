/* compat.h -- every difference between the CPython versions we support
 * (3.12, 3.13, 3.14, 3.15) lives here, behind small shims. */
#ifndef MG_PY_COMPAT_H
#define MG_PY_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>         /* offsetof */

#if PY_VERSION_HEX < 0x030C0000
#  error "manygil needs CPython 3.12 or newer (per-interpreter GIL, PEP 684)"
#endif

/* CPython 3.12 reuses an interpreter's built-in first thread state without
 * resetting it once the interpreter has had no thread state at all, and
 * aborts ("init_threadstate: thread state already initialized").  On 3.12
 * every interpreter keeps one idle "anchor" thread state until it closes. */
#define MG__NEED_ANCHOR_TSTATE (PY_VERSION_HEX < 0x030D0000)

/* CPython 3.12 corrupts shared static types when one interpreter is created
 * or finalized while another is (seen on 3.12.1, pool workers recycling:
 * "descriptor 'close' for '_io.BufferedReader' objects doesn't apply to a
 * '_io.FileIO' object" in the new interpreter).  On 3.12 manygil creates
 * and ends interpreters one at a time. */
#define MG__SERIALIZE_LIFECYCLE (PY_VERSION_HEX < 0x030D0000)

/* Py_EndInterpreter removes the interpreter's remaining thread states itself
 * (and threads coming back to them hang instead of running on): CPython
 * 3.15+ (gh-128639, PR 134606, merged for 3.15 only: 3.14.0rc1 still had the
 * old code, see gh-137295).  Before, it aborts ("not the last thread")
 * unless the caller's state is the only one left. */
#define MG__END_INTERP_REMOVES_THREADS (PY_VERSION_HEX >= 0x030F0000)

/* The calling thread's current thread state, or NULL; never fails. */
static inline PyThreadState *
mg__tstate_current(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

/* Number of bytes needed to hold `v` as a signed little-endian integer. */
static inline size_t
mg__long_nbytes(PyObject *v)
{
    size_t bits = (size_t)_PyLong_NumBits(v);    /* |v| bits, v != 0 */
    return bits / 8 + 1;                          /* +1 for the sign bit */
}

/* Write v as n bytes, signed little-endian.  0 or -1 with an exception. */
static inline int
mg__long_to_bytes(PyObject *v, unsigned char *out, size_t n)
{
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t r = PyLong_AsNativeBytes(v, out, (Py_ssize_t)n,
                                        Py_ASNATIVEBYTES_LITTLE_ENDIAN);
    return r < 0 ? -1 : 0;
#else
    return _PyLong_AsByteArray((PyLongObject *)v, out, n, 1, 1);
#endif
}

static inline PyObject *
mg__long_from_bytes(const unsigned char *p, size_t n)
{
    return _PyLong_FromByteArray(p, n, 1, 1);
}

/* A new reference to sys.modules["__main__"] of the current interpreter
 * (created if missing). */
static inline PyObject *
mg__main_module(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyImport_AddModuleRef("__main__");
#else
    PyObject *m = PyImport_AddModule("__main__");
    Py_XINCREF(m);
    return m;
#endif
}

/* ---- a native thread attaching to the main interpreter ------------------
 *
 * A thread with no thread state at all (a host's thread calling the C API)
 * sometimes needs one of the main interpreter, e.g. to create an
 * interpreter.  3.15+ (PEP 788): PyThreadState_EnsureFromView on a view of
 * the main interpreter attaches it, or fails at once when the main
 * interpreter is finalizing (or gone), and keeps it from finalizing while
 * attached.  3.12-3.14: PyGILState_Ensure after a Py_IsFinalizing check;
 * a finalization that starts between the two can still hang the thread in
 * PyGILState_Ensure, which is exactly the race PEP 788 closes. */
typedef struct {
#if PY_VERSION_HEX >= 0x030F0000
    PyThreadStateToken *token;
#else
    PyGILState_STATE gil;
#endif
} mg__main_attach_t;

/* Attach the calling thread (no thread state of its own) to the main
 * interpreter.  0, or -1 when it is finalizing (nothing to undo). */
static inline int
mg__main_attach(mg__main_attach_t *a)
{
#if PY_VERSION_HEX >= 0x030F0000
    PyInterpreterView *view = PyInterpreterView_FromMain();
    if (view == NULL)
        return -1;
    a->token = PyThreadState_EnsureFromView(view);
    PyInterpreterView_Close(view);
    return a->token == NULL ? -1 : 0;
#else
#  if PY_VERSION_HEX >= 0x030D0000
    if (Py_IsFinalizing())
#  else
    if (_Py_IsFinalizing())
#  endif
        return -1;
    a->gil = PyGILState_Ensure();
    return 0;
#endif
}

/* Undo a successful mg__main_attach (same thread). */
static inline void
mg__main_detach(mg__main_attach_t *a)
{
#if PY_VERSION_HEX >= 0x030F0000
    PyThreadState_Release(a->token);
#else
    PyGILState_Release(a->gil);
#endif
}

/* ---- big bytes/bytearray taken over from a malloc'd block ---------------
 *
 * The codec's one-copy path (codec.c, "big bytes and bytearray") builds an
 * object around a block the sender malloc'd.  That writes fields CPython
 * does not publish for writing, so it is allowed only where a version gate
 * says the layout is the one written here and tests/test_big_values.py
 * (run on every supported version, release and debug builds) proves it:
 *
 *   bytes, 3.12-3.15: the block is a whole PyBytesObject (header, data,
 *     NUL); PyObject_InitVar sets the header, ob_shash = -1 is the
 *     documented "hash not computed yet".
 *   bytearray, 3.12-3.14: the block is the data buffer (data, NUL), handed
 *     to an empty bytearray as ob_bytes/ob_start with ob_alloc = n + 1.
 *   bytearray, 3.15: a bytearray keeps its storage in a bytes object
 *     (ob_bytes_object, ob_alloc == its size); the block becomes that bytes
 *     object as above and the bytearray points into it, as CPython's own
 *     bytearray_reinit_from_bytes does.
 * Elsewhere (a newer CPython, a debug or free-threaded build) the receiver
 * copies.  CPython frees such blocks with PyObject_Free, which gives a block
 * pymalloc did not make to free(): codec.c also checks the allocators. */
#if !defined(Py_DEBUG) && !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x03100000
#  define MG__ADOPT_BLOCKS 1
#else
#  define MG__ADOPT_BLOCKS 0
#endif
#if PY_VERSION_HEX >= 0x030F0000
#  define MG__BYTEARRAY_IN_BYTES 1    /* 3.15+: storage is a bytes object */
#else
#  define MG__BYTEARRAY_IN_BYTES 0
#endif

/* Bytes of header before a block's data: the block of a bytes value (and on
 * 3.15 of a bytearray too) is laid out as a whole PyBytesObject. */
static inline size_t
mg__block_header(int is_bytes)
{
    return is_bytes || MG__BYTEARRAY_IN_BYTES ? offsetof(PyBytesObject, ob_sval) : 0;
}

#if MG__ADOPT_BLOCKS
/* The bytes object of size n whose block `blk` the caller gives up (laid
 * out as mg__block_header(1) bytes of header, n of data, a NUL).  Never
 * fails. */
static inline PyObject *
mg__bytes_take_block(void *blk, Py_ssize_t n)
{
    PyObject *o = (PyObject *)blk;
    (void)PyObject_InitVar((PyVarObject *)o, &PyBytes_Type, n);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject *)o)->ob_shash = -1;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    return o;
}

/* The bytearray of size n over block `blk` (laid out as
 * mg__block_header(0) bytes of header, n of data, a NUL).  On success the
 * bytearray owns the block; NULL with an exception (the block is still the
 * caller's). */
static inline PyObject *
mg__bytearray_take_block(void *blk, Py_ssize_t n)
{
    PyObject *o = PyByteArray_FromStringAndSize(NULL, 0);
    if (o == NULL)
        return NULL;
    PyByteArrayObject *ba = (PyByteArrayObject *)o;
#if MG__BYTEARRAY_IN_BYTES
    PyObject *storage = mg__bytes_take_block(blk, n);
    Py_XSETREF(ba->ob_bytes_object, storage);
    ba->ob_bytes = ba->ob_start = PyBytes_AS_STRING(storage);
    ba->ob_alloc = n;
#else
    PyObject_Free(ba->ob_bytes);        /* NULL for an empty one; harmless */
    ba->ob_bytes = ba->ob_start = (char *)blk;
    ba->ob_alloc = n + 1;
#endif
    Py_SET_SIZE(ba, n);
    return o;
}
#endif /* MG__ADOPT_BLOCKS */

#endif /* MG_PY_COMPAT_H */
