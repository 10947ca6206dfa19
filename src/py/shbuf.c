/* shbuf.c -- manygil.SharedBuffer: memory shared by every interpreter.
 *
 * Each SharedBuffer object holds one reference to a block (src/core/
 * shbuf.c).  Passing it to another interpreter (call arguments, channels,
 * queues, the pool) sends a reference, not the bytes: the other side gets
 * its own SharedBuffer object over the same memory.  Synchronising access
 * is the user's job.
 */
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/state.h"
#include "core/shbuf.h"

typedef struct {
    PyObject_HEAD
    mg__shbuf_t *sb;            /* NULL once released */
    int readonly;
    Py_ssize_t exports;         /* buffer views handed out and not released */
} shbuf_obj;

static PyObject *
wrap(PyTypeObject *tp, mg__shbuf_t *sb, int readonly)
{
    shbuf_obj *self = PyObject_New(shbuf_obj, tp);
    if (self == NULL)
        return NULL;
    mg__shbuf_incref(sb);
    self->sb = sb;
    self->readonly = readonly;
    self->exports = 0;
    return (PyObject *)self;
}

/* A new block of n bytes wrapped in an object of type tp. */
static PyObject *
allocate(PyTypeObject *tp, Py_ssize_t n, int populate, mg__shbuf_t **sb_out)
{
    mg__shbuf_t *sb;
    if (mg__shbuf_new((size_t)n, populate, &sb) != 0)
        return PyErr_Format(PyExc_MemoryError, "cannot allocate a shared buffer of %zd bytes", n);
    PyObject *obj = wrap(tp, sb, 0);
    mg__shbuf_decref(sb);
    if (obj != NULL && sb_out != NULL)
        *sb_out = sb;
    return obj;
}

static PyObject *
shbuf_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"nbytes", NULL};
    PyObject *arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:SharedBuffer", kwlist, &arg))
        return NULL;
    if (!PyIndex_Check(arg))
        return PyErr_Format(PyExc_TypeError, "SharedBuffer(nbytes): nbytes must be an int, not %.200s",
                            Py_TYPE(arg)->tp_name);
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        if (PyObject_RichCompareBool(arg, Py_False, Py_LT) == 1)
            return PyErr_Format(PyExc_ValueError, "nbytes must be >= 0");
        return PyErr_Format(PyExc_MemoryError, "cannot allocate a shared buffer of %R bytes", arg);
    }
    if (n < 0)
        return PyErr_Format(PyExc_ValueError, "nbytes must be >= 0, not %zd", n);
    return allocate(tp, n, 0, NULL);
}

static PyObject *
shbuf_frombytes(PyObject *cls, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_FULL_RO) < 0)
        return NULL;
    mg__shbuf_t *sb = NULL;
    PyObject *obj = allocate((PyTypeObject *)cls, view.len, 1, &sb);
    if (obj != NULL && view.len > 0 && mg__copy_buffer(sb->data, &view) < 0)
        Py_CLEAR(obj);
    PyBuffer_Release(&view);
    return obj;
}

static void
shbuf_dealloc(PyObject *op)
{
    shbuf_obj *self = (shbuf_obj *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->sb != NULL)
        mg__shbuf_decref(self->sb);
    PyObject_Free(op);
    Py_DECREF(tp);
}

static int
check_alive(shbuf_obj *self)
{
    if (self->sb == NULL) {
        PyErr_SetString(PyExc_ValueError, "operation on a released SharedBuffer");
        return -1;
    }
    return 0;
}

static int
shbuf_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    shbuf_obj *self = (shbuf_obj *)op;
    if (check_alive(self) < 0)
        return -1;
    if (PyBuffer_FillInfo(view, op, self->sb->data, (Py_ssize_t)self->sb->nbytes,
                          self->readonly, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
shbuf_releasebuffer(PyObject *op, Py_buffer *view)
{
    (void)view;
    ((shbuf_obj *)op)->exports--;
}

static PyObject *
shbuf_readonly(PyObject *op, PyObject *unused)
{
    (void)unused;
    shbuf_obj *self = (shbuf_obj *)op;
    if (check_alive(self) < 0)
        return NULL;
    return wrap(Py_TYPE(op), self->sb, 1);
}

static PyObject *
shbuf_release(PyObject *op, PyObject *unused)
{
    (void)unused;
    shbuf_obj *self = (shbuf_obj *)op;
    if (self->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "cannot release a SharedBuffer while %zd buffer view(s) of it exist",
                     self->exports);
        return NULL;
    }
    if (self->sb != NULL) {
        mg__shbuf_decref(self->sb);
        self->sb = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
shbuf_get_nbytes(PyObject *op, void *unused)
{
    (void)unused;
    shbuf_obj *self = (shbuf_obj *)op;
    if (check_alive(self) < 0)
        return NULL;
    return PyLong_FromSize_t(self->sb->nbytes);
}

static Py_ssize_t
shbuf_len(PyObject *op)
{
    shbuf_obj *self = (shbuf_obj *)op;
    if (check_alive(self) < 0)
        return -1;
    return (Py_ssize_t)self->sb->nbytes;
}

static PyObject *
shbuf_repr(PyObject *op)
{
    shbuf_obj *self = (shbuf_obj *)op;
    if (self->sb == NULL)
        return PyUnicode_FromString("<SharedBuffer released>");
    return PyUnicode_FromFormat("<SharedBuffer %zu bytes%s>", self->sb->nbytes,
                                self->readonly ? ", read-only" : "");
}

static PyObject *
shbuf_reduce(PyObject *op, PyObject *unused)
{
    (void)op; (void)unused;
    return PyErr_Format(PyExc_TypeError,
                        "SharedBuffer objects cannot be pickled; they cross to other "
                        "interpreters as manygil values (call arguments, channels, the pool)");
}

static PyObject *
shbuf_enter(PyObject *op, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(op);
}

static PyObject *
shbuf_exit(PyObject *op, PyObject *args)
{
    (void)args;
    return shbuf_release(op, NULL);
}

int
mg__shbuf_encode(PyObject *obj, mg__buf_t *b, int tag)
{
    if (Py_TYPE(obj)->tp_dealloc != shbuf_dealloc)
        return 0;
    shbuf_obj *self = (shbuf_obj *)obj;
    if (check_alive(self) < 0)
        return -1;
    mg__shbuf_incref(self->sb);
    size_t index = b->nrefs;
    if (mg__buf_add_ref(b, mg__shbuf_release_ref, self->sb, self->readonly) < 0) {
        mg__shbuf_decref(self->sb);
        PyErr_NoMemory();
        return -1;
    }
    return mg__put_ref_index(b, tag, index) < 0 ? -1 : 1;
}

PyObject *
mg__shbuf_decode(const mg__bufref_t *ref)
{
    mg__state_t *st = mg__state_current();
    if (st == NULL)
        return NULL;
    return wrap(st->shbuf_type, ref->ptr, ref->arg);
}

static PyMethodDef shbuf_methods[] = {
    {"frombytes", shbuf_frombytes, METH_O | METH_CLASS,
     "frombytes(data)\n--\n\nA new SharedBuffer holding a copy of any bytes-like object."},
    {"readonly", shbuf_readonly, METH_NOARGS,
     "readonly()\n--\n\nA read-only SharedBuffer over the same memory."},
    {"release", shbuf_release, METH_NOARGS,
     "release()\n--\n\nDrop this object's hold on the memory now (BufferError while\n"
     "memoryviews of it exist).  The memory is freed when no interpreter holds it."},
    {"__reduce__", shbuf_reduce, METH_NOARGS, NULL},
    {"__enter__", shbuf_enter, METH_NOARGS, NULL},
    {"__exit__", shbuf_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef shbuf_getset[] = {
    {"nbytes", shbuf_get_nbytes, NULL, "Size in bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot shbuf_slots[] = {
    {Py_tp_new, shbuf_new},
    {Py_tp_dealloc, shbuf_dealloc},
    {Py_tp_repr, shbuf_repr},
    {Py_tp_methods, shbuf_methods},
    {Py_tp_getset, shbuf_getset},
    {Py_bf_getbuffer, shbuf_getbuffer},
    {Py_bf_releasebuffer, shbuf_releasebuffer},
    {Py_sq_length, shbuf_len},
    {Py_tp_doc, (void *)
     "SharedBuffer(nbytes)\n--\n\n"
     "nbytes of zero-filled memory that belongs to no interpreter and is shared,\n"
     "not copied, when passed to another interpreter.  Use it through the buffer\n"
     "protocol: memoryview(buf), memoryview(buf).cast('d'), numpy.frombuffer(buf)."},
    {0, NULL},
};

static PyType_Spec shbuf_spec = {
    .name = "manygil.SharedBuffer",
    .basicsize = sizeof(shbuf_obj),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = shbuf_slots,
};

int
mg__shbuf_type_add(PyObject *m, mg__state_t *st)
{
    st->shbuf_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &shbuf_spec, NULL);
    if (st->shbuf_type == NULL)
        return -1;
    return PyModule_AddType(m, st->shbuf_type);
}
