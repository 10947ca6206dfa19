/* compat.h -- every difference between the CPython versions we support
 * (3.12, 3.13, 3.14) lives here, behind small shims. */
#ifndef MG_PY_COMPAT_H
#define MG_PY_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

#endif /* MG_PY_COMPAT_H */
