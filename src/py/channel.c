/* channel.c -- SendChannel, RecvChannel and Queue: the Python face of
 * src/core/channel.c, plus the seed API's plain-id functions.
 *
 * A handle object counts as one handle of its end in its interpreter; it
 * crosses to another interpreter as a reference held by the encoding (see
 * mg__handle_encode), and arrives as a new handle there.
 *
 * A handle of a channel made before the fork() that made this process
 * raises InterpreterError on every use and, when it goes away, leaves the
 * channel alone (fork.c): its locks may be held by threads that are gone.
 *
 * Blocking calls release the GIL.  In the main interpreter they wait in
 * slices of SIGNAL_SLICE_NS so that Ctrl-C is noticed (PyErr_CheckSignals);
 * elsewhere they wait in one go.  Data always wakes a waiter at once.
 */
#include "manygil.h"
#include "py/compat.h"
#include "py/codec.h"
#include "py/errors.h"
#include "py/fork.h"
#include "py/interp.h"
#include "py/state.h"
#include "py/awatch.h"
#include "core/channel.h"
#include "core/sync.h"
#include "core/waits.h"

#define SIGNAL_SLICE_NS (50 * 1000 * 1000LL)

typedef struct {
    PyObject_HEAD
    mg__channel_t *ch;
    int64_t interp;             /* the interpreter whose handle this is */
    int end;                    /* MG__END_SEND, _RECV, or _BOTH (queue) */
} handle_t;

/* ---- ids ----------------------------------------------------------------
 * A channel end's id is 2 * channel id (+1 for the receive end); a queue's
 * is 2 * its channel id. */

static int64_t
end_id(mg__channel_t *ch, int end)
{
    return mg__channel_id(ch) * 2 + (end == MG__END_RECV);
}

static int
parse_timeout(PyObject *o, int64_t *ns)
{
    if (o == NULL || o == Py_None) {
        *ns = -1;
        return 0;
    }
    double secs = PyFloat_AsDouble(o);
    if (secs == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "timeout must be a number or None, not %.200s",
                         Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    if (!(secs >= 0)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a non-negative number or None");
        return -1;
    }
    *ns = secs > 1e9 ? (int64_t)1e18 : (int64_t)(secs * 1e9);
    return 0;
}

/* The type's name without its module ("SendChannel"). */
static const char *
short_name(PyTypeObject *tp)
{
    const char *dot = strrchr(tp->tp_name, '.');
    return dot ? dot + 1 : tp->tp_name;
}

static int64_t
current_interp_id(void)
{
    return PyInterpreterState_GetID(PyInterpreterState_Get());
}

/* ---- blocking ---------------------------------------------------------- */

/* Raise DeadlockError with the detector's message (freed here); -1. */
static int
raise_deadlock(mg__wait_t *w)
{
    PyObject *cls = mg__import_attr("manygil._errors", "DeadlockError");
    if (cls != NULL) {
        PyErr_SetString(cls, w->why ? w->why : mg_strerror(MG_EDEADLOCK));
        Py_DECREF(cls);
    }
    free(w->why);
    w->why = NULL;
    return -1;
}

/* Send *buf to (or receive into *buf from) ch, waiting up to timeout_ns
 * (-1: for ever; 0: not at all).  Returns 0, an MG_E* code, or -1 with a
 * Python exception (a signal handler raised, e.g. KeyboardInterrupt). */
static int
blocking(int is_send, mg__channel_t *ch, int64_t id, mg__buf_t *buf, int64_t timeout_ns)
{
    int rc = is_send ? mg__channel_send(ch, buf, 0, NULL)
                     : mg__channel_recv(ch, buf, 0, NULL);
    if ((rc != MG_EFULL && rc != MG_EEMPTY) || timeout_ns == 0)
        return rc;
    int64_t start = mg__monotonic_ns();
    int64_t deadline = timeout_ns < 0 ? -1 : start + timeout_ns;
    PyInterpreterState *interp = PyInterpreterState_Get();
    int in_main = interp == PyInterpreterState_Main();
    mg__wait_t w = {
        .interp_id = PyInterpreterState_GetID(interp),
        .thread_ident = PyThread_get_thread_ident(),
        .end_id = id,
        .kind = is_send ? MG__WAIT_SEND : MG__WAIT_RECV,
        .forever = deadline < 0,
        .since_ns = start,
    };
    for (;;) {
        int64_t d = deadline;
        if (in_main) {
            int64_t slice = mg__monotonic_ns() + SIGNAL_SLICE_NS;
            if (d < 0 || slice < d)
                d = slice;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = is_send ? mg__channel_send(ch, buf, d, &w) : mg__channel_recv(ch, buf, d, &w);
        mg__exit_gate(w.interp_id);     /* at exit, never back into an ended interpreter */
        Py_END_ALLOW_THREADS
        if (rc == MG_EDEADLOCK)
            return raise_deadlock(&w);
        if (rc != MG_ETIMEDOUT)
            return rc;
        if (deadline >= 0 && mg__monotonic_ns() >= deadline)
            return MG_ETIMEDOUT;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/* Encode obj and send it.  context picks the exception classes. */
static PyObject *
do_send(mg__channel_t *ch, int64_t id, PyObject *obj, int64_t timeout_ns, int context)
{
    if (mg__channel_inherited(ch))
        return mg__raise_inherited();
    mg__buf_t buf = MG__BUF_INIT;
    if (mg__encode(obj, &buf) < 0) {
        mg__buf_free(&buf);
        return NULL;
    }
    int rc = blocking(1, ch, id, &buf, timeout_ns);
    mg__buf_free(&buf);             /* empty unless the send failed */
    if (rc == -1)
        return NULL;
    if (rc)
        return mg__raise_in(context, rc, context == MG__CTX_DEFAULT ? "channel end %lld"
                                                                    : "queue %lld", (long long)id);
    Py_RETURN_NONE;
}

/* Receive and decode.  With `dflt` (not NULL), an empty channel gives it
 * instead of an error. */
static PyObject *
do_recv(mg__channel_t *ch, int64_t id, int64_t timeout_ns, PyObject *dflt, int context)
{
    if (mg__channel_inherited(ch))
        return mg__raise_inherited();
    mg__buf_t buf = MG__BUF_INIT;
    int rc = blocking(0, ch, id, &buf, timeout_ns);
    if (rc == -1)
        return NULL;
    if (rc == MG_EEMPTY && dflt != NULL)
        return Py_NewRef(dflt);
    if (rc)
        return mg__raise_in(context, rc, context == MG__CTX_DEFAULT ? "channel end %lld"
                                                                    : "queue %lld", (long long)id);
    PyObject *res = mg__decode_consume(&buf);
    mg__buf_free(&buf);
    return res;
}

/* ---- handle objects ---------------------------------------------------- */

/* A new handle of `end` of ch in the current interpreter. */
static PyObject *
handle_new(PyTypeObject *tp, mg__channel_t *ch, int end)
{
    int64_t interp = current_interp_id();
    if (mg__channel_attach(ch, interp, end) < 0)
        return PyErr_NoMemory();
    handle_t *h = PyObject_New(handle_t, tp);
    if (h == NULL) {
        mg__channel_detach(ch, interp, end);
        return NULL;
    }
    mg__channel_incref(ch);
    h->ch = ch;
    h->interp = interp;
    h->end = end;
    return (PyObject *)h;
}

static void
handle_dealloc(PyObject *self)
{
    handle_t *h = (handle_t *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (!mg__channel_inherited(h->ch)) {
        mg__channel_detach(h->ch, h->interp, h->end);
        mg__channel_decref(h->ch);
    }
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyObject *
handle_get_id(PyObject *self, void *unused)
{
    (void)unused;
    handle_t *h = (handle_t *)self;
    return PyLong_FromLongLong(end_id(h->ch, h->end));
}

static PyObject *
handle_repr(PyObject *self)
{
    handle_t *h = (handle_t *)self;
    return PyUnicode_FromFormat("%s(id=%lld)", short_name(Py_TYPE(self)),
                                (long long)end_id(h->ch, h->end));
}

static Py_hash_t
handle_hash(PyObject *self)
{
    handle_t *h = (handle_t *)self;
    Py_hash_t v = (Py_hash_t)end_id(h->ch, h->end);
    return v == -1 ? -2 : v;
}

static PyObject *
handle_richcompare(PyObject *a, PyObject *b, int op)
{
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    handle_t *x = (handle_t *)a, *y = (handle_t *)b;
    int eq = x->ch == y->ch && x->end == y->end;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyObject *
handle_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyErr_Format(PyExc_TypeError,
                        "%s objects cannot be pickled; they cross to other interpreters "
                        "as manygil values (call arguments, channels, queues)",
                        short_name(Py_TYPE(self)));
}

static PyGetSetDef handle_getset[] = {
    {"id", handle_get_id, NULL, "The id of this channel end (or queue).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

int
mg__channel_handle_encode(PyObject *obj, mg__buf_t *b, int tag)
{
    if (Py_TYPE(obj)->tp_dealloc != handle_dealloc)
        return 0;
    handle_t *h = (handle_t *)obj;
    if (mg__channel_inherited(h->ch)) {
        mg__raise_inherited();
        return -1;
    }
    if (mg__channel_attach(h->ch, MG__TRANSIT, h->end) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    mg__channel_incref(h->ch);
    size_t index = b->nrefs;
    if (mg__buf_add_ref(b, mg__channel_release_transit, h->ch, h->end) < 0) {
        mg__channel_release_transit(h->ch, h->end);
        PyErr_NoMemory();
        return -1;
    }
    return mg__put_ref_index(b, tag, index) < 0 ? -1 : 1;
}

PyObject *
mg__channel_handle_decode(const mg__bufref_t *ref)
{
    mg__state_t *st = mg__state_current();
    if (st == NULL)
        return NULL;
    mg__channel_t *ch = ref->ptr;
    PyTypeObject *tp = ref->arg == MG__END_SEND ? st->send_type
                     : ref->arg == MG__END_RECV ? st->recv_type : st->queue_type;
    return handle_new(tp, ch, ref->arg);
}

int
mg__channel_handle_get(PyObject *obj, mg__channel_t **ch, int *end)
{
    if (Py_TYPE(obj)->tp_dealloc != handle_dealloc)
        return 0;
    *ch = ((handle_t *)obj)->ch;
    *end = ((handle_t *)obj)->end;
    return 1;
}

/* self.<name>(*args, **kwds) as manygil._asyncio.<name>(self, *args,
 * **kwds): the awaitable variants live in Python. */
static PyObject *
async_delegate(const char *name, PyObject *self, PyObject *args, PyObject *kwds)
{
    /* sys.modules first: the import machinery costs microseconds a call. */
    PyObject *mod, *fn = NULL;
    PyObject *modname = PyUnicode_FromString("manygil._asyncio");
    if (modname == NULL)
        return NULL;
    mod = PyImport_GetModule(modname);
    Py_DECREF(modname);
    if (mod != NULL) {
        fn = PyObject_GetAttrString(mod, name);
        Py_DECREF(mod);
    }
    else if (!PyErr_Occurred()) {
        fn = mg__import_attr("manygil._asyncio", name);
    }
    if (fn == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *full = PyTuple_New(n + 1);
    PyObject *res = NULL;
    if (full != NULL) {
        PyTuple_SET_ITEM(full, 0, Py_NewRef(self));
        for (Py_ssize_t i = 0; i < n; i++)
            PyTuple_SET_ITEM(full, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
        res = PyObject_Call(fn, full, kwds);
        Py_DECREF(full);
    }
    Py_DECREF(fn);
    return res;
}

static PyObject *
handle_asend(PyObject *self, PyObject *args, PyObject *kwds)
{
    return async_delegate("asend", self, args, kwds);
}

static PyObject *
handle_arecv(PyObject *self, PyObject *args, PyObject *kwds)
{
    return async_delegate("arecv", self, args, kwds);
}

static PyObject *
handle_aput(PyObject *self, PyObject *args, PyObject *kwds)
{
    return async_delegate("aput", self, args, kwds);
}

static PyObject *
handle_aget(PyObject *self, PyObject *args, PyObject *kwds)
{
    return async_delegate("aget", self, args, kwds);
}

/* ---- SendChannel ------------------------------------------------------- */

static PyObject *
send_send(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"obj", "timeout", NULL};
    PyObject *obj, *timeout = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:send", kwlist, &obj, &timeout)
            || parse_timeout(timeout, &ns) < 0)
        return NULL;
    handle_t *h = (handle_t *)self;
    return do_send(h->ch, end_id(h->ch, h->end), obj, ns, MG__CTX_DEFAULT);
}

static PyObject *
send_send_nowait(PyObject *self, PyObject *obj)
{
    handle_t *h = (handle_t *)self;
    return do_send(h->ch, end_id(h->ch, h->end), obj, 0, MG__CTX_DEFAULT);
}

static PyObject *
handle_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    handle_t *h = (handle_t *)self;
    if (mg__channel_inherited(h->ch))
        return mg__raise_inherited();
    mg__channel_close(h->ch, h->end);
    Py_RETURN_NONE;
}

static PyMethodDef send_methods[] = {
    {"send", (PyCFunction)(void (*)(void))send_send, METH_VARARGS | METH_KEYWORDS,
     "send(obj, timeout=None)\n--\n\nSend a copy of obj; wait while a bounded channel is full."},
    {"send_nowait", send_send_nowait, METH_O,
     "send_nowait(obj)\n--\n\nSend without waiting (ChannelFullError when full)."},
    {"asend", (PyCFunction)(void (*)(void))handle_asend, METH_VARARGS | METH_KEYWORDS,
     "asend(obj, timeout=None)\n--\n\n"
     "Awaitable send(): the coroutine waits without a thread while the channel is full."},
    {"close", handle_close, METH_NOARGS,
     "close()\n--\n\nClose the send side: receivers drain what is left, then get ChannelClosedError."},
    {"__reduce__", handle_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- RecvChannel ------------------------------------------------------- */

static PyObject *
recv_recv(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:recv", kwlist, &timeout)
            || parse_timeout(timeout, &ns) < 0)
        return NULL;
    handle_t *h = (handle_t *)self;
    return do_recv(h->ch, end_id(h->ch, h->end), ns, NULL, MG__CTX_DEFAULT);
}

static PyObject *
recv_recv_nowait(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"default", NULL};
    PyObject *dflt = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:recv_nowait", kwlist, &dflt))
        return NULL;
    handle_t *h = (handle_t *)self;
    return do_recv(h->ch, end_id(h->ch, h->end), 0, dflt, MG__CTX_DEFAULT);
}

static PyMethodDef recv_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))recv_recv, METH_VARARGS | METH_KEYWORDS,
     "recv(timeout=None)\n--\n\nReceive the next item (a copy); wait while empty."},
    {"recv_nowait", (PyCFunction)(void (*)(void))recv_recv_nowait, METH_VARARGS | METH_KEYWORDS,
     "recv_nowait(default=<missing>)\n--\n\n"
     "Receive without waiting: default if given and empty, else ChannelEmptyError."},
    {"arecv", (PyCFunction)(void (*)(void))handle_arecv, METH_VARARGS | METH_KEYWORDS,
     "arecv(timeout=None)\n--\n\n"
     "Awaitable recv(): the coroutine waits without a thread; cancelling it loses no item."},
    {"close", handle_close, METH_NOARGS,
     "close()\n--\n\nClose the receive side: senders fail with ChannelClosedError at once."},
    {"__reduce__", handle_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- Queue ------------------------------------------------------------- */

/* queue.Queue's (block, timeout) pair as a timeout in ns. */
static int
parse_block_timeout(PyObject *block, PyObject *timeout, int64_t *ns)
{
    int b = PyObject_IsTrue(block);
    if (b < 0)
        return -1;
    if (!b) {
        *ns = 0;
        return 0;
    }
    return parse_timeout(timeout, ns);
}

static PyObject *
queue_put(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"obj", "block", "timeout", NULL};
    PyObject *obj, *block = Py_True, *timeout = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:put", kwlist, &obj, &block, &timeout)
            || parse_block_timeout(block, timeout, &ns) < 0)
        return NULL;
    handle_t *h = (handle_t *)self;
    return do_send(h->ch, end_id(h->ch, h->end), obj, ns, MG__CTX_QUEUE_PUT);
}

static PyObject *
queue_get(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"block", "timeout", NULL};
    PyObject *block = Py_True, *timeout = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:get", kwlist, &block, &timeout)
            || parse_block_timeout(block, timeout, &ns) < 0)
        return NULL;
    handle_t *h = (handle_t *)self;
    return do_recv(h->ch, end_id(h->ch, h->end), ns, NULL, MG__CTX_QUEUE_GET);
}

static PyObject *
queue_put_nowait(PyObject *self, PyObject *obj)
{
    handle_t *h = (handle_t *)self;
    return do_send(h->ch, end_id(h->ch, h->end), obj, 0, MG__CTX_QUEUE_PUT);
}

static PyObject *
queue_get_nowait(PyObject *self, PyObject *unused)
{
    (void)unused;
    handle_t *h = (handle_t *)self;
    return do_recv(h->ch, end_id(h->ch, h->end), 0, NULL, MG__CTX_QUEUE_GET);
}

static PyObject *
queue_qsize(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (mg__channel_inherited(((handle_t *)self)->ch))
        return mg__raise_inherited();
    return PyLong_FromLongLong(mg__channel_count(((handle_t *)self)->ch));
}

static PyObject *
queue_empty(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (mg__channel_inherited(((handle_t *)self)->ch))
        return mg__raise_inherited();
    return PyBool_FromLong(mg__channel_count(((handle_t *)self)->ch) == 0);
}

static PyObject *
queue_full(PyObject *self, PyObject *unused)
{
    (void)unused;
    mg__channel_t *ch = ((handle_t *)self)->ch;
    if (mg__channel_inherited(ch))
        return mg__raise_inherited();
    int64_t max = mg__channel_maxsize(ch);
    return PyBool_FromLong(max > 0 && mg__channel_count(ch) >= max);
}

/* Queue(id): a new handle of the queue with that id (made by
 * create_queue() in any interpreter): TypeError for a non-int (or a bool),
 * ValueError for a negative id, QueueNotFoundError for no such queue. */
static PyObject *
queue_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    PyObject *o;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Queue() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:Queue", &o))
        return NULL;
    if (!PyLong_Check(o) || PyBool_Check(o))
        return PyErr_Format(PyExc_TypeError, "queue id must be an int, not %.200s",
                            Py_TYPE(o)->tp_name);
    long long id = PyLong_AsLongLong(o);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (id < 0)
        return PyErr_Format(PyExc_ValueError, "queue ID must be a non-negative int, got %lld", id);
    mg__channel_t *ch = NULL;
    if ((id & 1) || mg__channel_find(id / 2, &ch) != 0 || !mg__channel_is_queue(ch)) {
        if (ch != NULL)
            mg__channel_decref(ch);
        return mg__raise_in(MG__CTX_QUEUE_FIND, MG_ECHNOTFOUND, "queue %lld", id);
    }
    PyObject *q = handle_new(tp, ch, MG__END_BOTH);
    mg__channel_decref(ch);
    return q;
}

/* Pickled by id, as concurrent.interpreters' queues are: unpickling makes a
 * new handle of the same queue (QueueNotFoundError if it is gone by then).
 * Queues passed as values (call arguments, channel items) cross as handles
 * instead, which keep the queue alive in transit. */
static PyObject *
queue_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    handle_t *h = (handle_t *)self;
    return Py_BuildValue("(O(L))", (PyObject *)Py_TYPE(self), (long long)end_id(h->ch, h->end));
}

static PyObject *
queue_get_maxsize(PyObject *self, void *unused)
{
    (void)unused;
    return PyLong_FromLongLong(mg__channel_maxsize(((handle_t *)self)->ch));
}

static PyMethodDef queue_methods[] = {
    {"put", (PyCFunction)(void (*)(void))queue_put, METH_VARARGS | METH_KEYWORDS,
     "put(obj, block=True, timeout=None)\n--\n\nPut a copy of obj (QueueFull when full)."},
    {"get", (PyCFunction)(void (*)(void))queue_get, METH_VARARGS | METH_KEYWORDS,
     "get(block=True, timeout=None)\n--\n\nTake the next item (QueueEmpty when empty)."},
    {"put_nowait", queue_put_nowait, METH_O, "put_nowait(obj)\n--\n\nput(obj, block=False)."},
    {"get_nowait", queue_get_nowait, METH_NOARGS, "get_nowait()\n--\n\nget(block=False)."},
    {"aput", (PyCFunction)(void (*)(void))handle_aput, METH_VARARGS | METH_KEYWORDS,
     "aput(obj, timeout=None)\n--\n\nAwaitable put(): waits without a thread while full."},
    {"aget", (PyCFunction)(void (*)(void))handle_aget, METH_VARARGS | METH_KEYWORDS,
     "aget(timeout=None)\n--\n\n"
     "Awaitable get(): waits without a thread; cancelling it loses no item."},
    {"qsize", queue_qsize, METH_NOARGS, "qsize()\n--\n\nNumber of items waiting."},
    {"empty", queue_empty, METH_NOARGS, "empty()\n--\n\nTrue if no item waits."},
    {"full", queue_full, METH_NOARGS, "full()\n--\n\nTrue if a bounded queue is full."},
    {"__reduce__", queue_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef queue_getset[] = {
    {"id", handle_get_id, NULL, "The id of this queue.", NULL},
    {"maxsize", queue_get_maxsize, NULL, "The bound as given (<= 0: unbounded).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- types ------------------------------------------------------------- */

#define HANDLE_SLOTS(methods, getset, doc)                          \
    {Py_tp_dealloc, handle_dealloc},                                \
    {Py_tp_repr, handle_repr},                                      \
    {Py_tp_hash, handle_hash},                                      \
    {Py_tp_richcompare, handle_richcompare},                        \
    {Py_tp_methods, methods},                                       \
    {Py_tp_getset, getset},                                         \
    {Py_tp_doc, (void *)doc},                                       \
    {0, NULL}

static PyType_Slot send_slots[] = {
    HANDLE_SLOTS(send_methods, handle_getset,
                 "The send end of a channel (from manygil.create_channel())."),
};
static PyType_Slot recv_slots[] = {
    HANDLE_SLOTS(recv_methods, handle_getset,
                 "The receive end of a channel (from manygil.create_channel())."),
};
static PyType_Slot queue_slots[] = {
    {Py_tp_new, queue_new},
    HANDLE_SLOTS(queue_methods, queue_getset,
                 "Queue(id)\n--\n\n"
                 "A FIFO queue shared between interpreters (from manygil.create_queue()).\n"
                 "Queue(id) makes a new handle of an existing queue."),
};

#define HANDLE_SPEC(tpname, tpslots) {                                \
    .name = "manygil." tpname,                                      \
    .basicsize = sizeof(handle_t),                                  \
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION, \
    .slots = tpslots,                                               \
}

static PyType_Spec send_spec = HANDLE_SPEC("SendChannel", send_slots);
static PyType_Spec recv_spec = HANDLE_SPEC("RecvChannel", recv_slots);
static PyType_Spec queue_spec = {
    .name = "manygil.Queue",
    .basicsize = sizeof(handle_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,    /* Queue(id) looks one up */
    .slots = queue_slots,
};

int
mg__channel_types_add(PyObject *m, mg__state_t *st)
{
    st->send_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &send_spec, NULL);
    st->recv_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &recv_spec, NULL);
    st->queue_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &queue_spec, NULL);
    if (st->send_type == NULL || st->recv_type == NULL || st->queue_type == NULL)
        return -1;
    if (PyModule_AddType(m, st->send_type) < 0 || PyModule_AddType(m, st->recv_type) < 0
            || PyModule_AddType(m, st->queue_type) < 0)
        return -1;
    return 0;
}

/* ---- module functions -------------------------------------------------- */

/* A channel's maxsize must be >= 0; a queue takes any int (<= 0:
 * unbounded, as queue.Queue and concurrent.interpreters do). */
static int
parse_maxsize(PyObject *args, PyObject *kwds, const char *fmt, int is_queue, int64_t *maxsize)
{
    static char *kwlist[] = {"maxsize", NULL};
    long long v = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &v))
        return -1;
    if (v < 0 && !is_queue) {
        PyErr_SetString(PyExc_ValueError, "maxsize must be >= 0 (0: unbounded)");
        return -1;
    }
    *maxsize = v;
    return 0;
}

/* A new channel (mg__channel_create(maxsize, flags)) as the pair
 * (RecvChannel, SendChannel).  With `reply`, it is first marked as the reply
 * channel of an actor call answered via channel `via` (mg__channel_set_reply,
 * `label` copied, may be NULL). */
static PyObject *
channel_pair(PyObject *mod, int64_t maxsize, int flags, int reply, int64_t via,
             const char *label)
{
    mg__state_t *st = PyModule_GetState(mod);
    mg__channel_t *ch;
    int rc = mg__channel_create(maxsize, flags, &ch);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *r = handle_new(st->recv_type, ch, MG__END_RECV);
    PyObject *s = r ? handle_new(st->send_type, ch, MG__END_SEND) : NULL;
    PyObject *res = NULL;
    if (s != NULL && reply && mg__channel_set_reply(ch, via, label) != 0)
        PyErr_NoMemory();           /* the handles' release closes the channel */
    else if (s != NULL)
        res = PyTuple_Pack(2, r, s);
    Py_XDECREF(r);
    Py_XDECREF(s);
    mg__channel_decref(ch);
    return res;
}

static PyObject *
fn_create_channel(PyObject *mod, PyObject *args, PyObject *kwds)
{
    int64_t maxsize;
    if (parse_maxsize(args, kwds, "|L:create_channel", 0, &maxsize) < 0)
        return NULL;
    return channel_pair(mod, maxsize, 0, 0, 0, NULL);
}

/* _actor_inbox() -> (RecvChannel, SendChannel): an actor worker's inbox.
 * Its send end is pinned (refs anywhere send to it by id; it closes only
 * by _channel_close of its id), its receive end lives with its handles. */
static PyObject *
fn_actor_inbox(PyObject *mod, PyObject *unused)
{
    (void)unused;
    return channel_pair(mod, 0, MG__CHANNEL_PIN_SEND, 0, 0, NULL);
}

/* _reply_channel(inbox_id, label) -> (RecvChannel, SendChannel): the
 * channel of one actor call's answer; its send end travels in the call's
 * message into the inbox whose end id is inbox_id (see
 * mg__channel_set_reply: the deadlock detector follows it there). */
static PyObject *
fn_reply_channel(PyObject *mod, PyObject *args)
{
    long long via;
    const char *label;
    if (!PyArg_ParseTuple(args, "Lz:_reply_channel", &via, &label))
        return NULL;
    if (via < 0)
        return PyErr_Format(PyExc_ValueError, "bad inbox id %lld", via);
    return channel_pair(mod, 0, 0, 1, via / 2, label);
}

static PyObject *
fn_create_queue(PyObject *mod, PyObject *args, PyObject *kwds)
{
    int64_t maxsize;
    if (parse_maxsize(args, kwds, "|L:create_queue", 1, &maxsize) < 0)
        return NULL;
    mg__state_t *st = PyModule_GetState(mod);
    mg__channel_t *ch;
    int rc = mg__channel_create(maxsize, MG__CHANNEL_QUEUE, &ch);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *q = handle_new(st->queue_type, ch, MG__END_BOTH);
    mg__channel_decref(ch);
    return q;
}

static int
cmp_channel_id(const void *a, const void *b)
{
    int64_t x = mg__channel_id(*(mg__channel_t *const *)a);
    int64_t y = mg__channel_id(*(mg__channel_t *const *)b);
    return (x > y) - (x < y);
}

static PyObject *
fn_list_queues(PyObject *mod, PyObject *unused)
{
    (void)unused;
    mg__state_t *st = PyModule_GetState(mod);
    mg__channel_t **all;
    size_t n;
    int rc = mg__channel_list_queues(&all, &n);
    if (rc)
        return mg__raise(rc, NULL);
    qsort(all, n, sizeof *all, cmp_channel_id);
    PyObject *list = PyList_New(0);
    for (size_t i = 0; i < n; i++) {
        PyObject *q = list != NULL ? handle_new(st->queue_type, all[i], MG__END_BOTH) : NULL;
        if (q == NULL || PyList_Append(list, q) < 0)
            Py_CLEAR(list);
        Py_XDECREF(q);
        mg__channel_decref(all[i]);
    }
    free(all);
    return list;
}

static PyObject *
fn_channel_ids(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    int64_t maxsize;
    if (parse_maxsize(args, kwds, "|L:create_channel", 0, &maxsize) < 0)
        return NULL;
    mg__channel_t *ch;
    int rc = mg__channel_create(maxsize, MG__CHANNEL_PINNED, &ch);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *res = Py_BuildValue("(LL)", (long long)end_id(ch, MG__END_SEND),
                                  (long long)end_id(ch, MG__END_RECV));
    mg__channel_decref(ch);
    return res;
}

/* Resolve a plain end id for an operation on `want` (MG__END_SEND/RECV,
 * or 0 for either).  *ch gets a reference.  0 or -1 with an exception. */
static int
resolve_id(PyObject *o, int want, mg__channel_t **ch, int *end)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "channel id must be an int, not %.200s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    long long id = PyLong_AsLongLong(o);
    if (id == -1 && PyErr_Occurred())
        return -1;
    int rc = id < 0 ? MG_ECHNOTFOUND : mg__channel_find(id / 2, ch);
    if (rc) {
        mg__raise(rc, "channel end %lld", id);
        return -1;
    }
    *end = (id & 1) ? MG__END_RECV : MG__END_SEND;
    if (mg__channel_is_queue(*ch)) {
        mg__channel_decref(*ch);
        PyErr_Format(PyExc_ValueError, "id %lld is a queue, not a channel end", id);
        return -1;
    }
    if (want != 0 && *end != want) {
        mg__channel_decref(*ch);
        PyErr_Format(PyExc_ValueError,
                     want == MG__END_SEND
                         ? "id %lld is the receive end of its channel: cannot send on it"
                         : "id %lld is the send end of its channel: cannot receive on it",
                     id);
        return -1;
    }
    return 0;
}

static PyObject *
fn_channel_send(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"id", "obj", "timeout", NULL};
    PyObject *id, *obj, *timeout = Py_None;
    int64_t ns;
    mg__channel_t *ch;
    int end;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:channel_send", kwlist, &id, &obj, &timeout)
            || parse_timeout(timeout, &ns) < 0 || resolve_id(id, MG__END_SEND, &ch, &end) < 0)
        return NULL;
    PyObject *res = do_send(ch, end_id(ch, end), obj, ns, MG__CTX_DEFAULT);
    mg__channel_decref(ch);
    return res;
}

static PyObject *
fn_channel_recv(PyObject *mod, PyObject *args, PyObject *kwds)
{
    (void)mod;
    static char *kwlist[] = {"id", "timeout", NULL};
    PyObject *id, *timeout = Py_None;
    int64_t ns;
    mg__channel_t *ch;
    int end;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:channel_recv", kwlist, &id, &timeout)
            || parse_timeout(timeout, &ns) < 0 || resolve_id(id, MG__END_RECV, &ch, &end) < 0)
        return NULL;
    PyObject *res = do_recv(ch, end_id(ch, end), ns, NULL, MG__CTX_DEFAULT);
    mg__channel_decref(ch);
    return res;
}

static PyObject *
fn_channel_close(PyObject *mod, PyObject *arg)
{
    (void)mod;
    mg__channel_t *ch;
    int end;
    if (PyLong_Check(arg)) {
        /* Closing a channel that was closed on both sides (and so left the
         * id table) again is harmless; an id that never existed is not. */
        long long id = PyLong_AsLongLong(arg);
        if (id == -1 && PyErr_Occurred())
            return NULL;
        if (id >= 0 && mg__channel_find(id / 2, &ch) == 0)
            mg__channel_decref(ch);
        else if (id >= 0 && mg__channel_existed(id / 2))
            Py_RETURN_NONE;
    }
    if (resolve_id(arg, 0, &ch, &end) < 0)
        return NULL;
    mg__channel_close(ch, end);
    mg__channel_decref(ch);
    Py_RETURN_NONE;
}

int64_t
mg__send_handle_end_id(PyObject *mod, PyObject *o)
{
    mg__state_t *st = PyModule_GetState(mod);
    if (o == NULL || st == NULL || !Py_IS_TYPE(o, st->send_type))
        return -1;
    handle_t *h = (handle_t *)o;
    return end_id(h->ch, h->end);
}

/* o as a RecvChannel handle of module mod's type, or NULL with TypeError. */
static handle_t *
as_recv_handle(PyObject *mod, PyObject *o)
{
    mg__state_t *st = PyModule_GetState(mod);
    if (st == NULL || !Py_IS_TYPE(o, st->recv_type)) {
        PyErr_Format(PyExc_TypeError, "expected a RecvChannel, not %.200s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    return (handle_t *)o;
}

PyObject *
mg__recv_handle_recv(PyObject *mod, PyObject *o, int *undecodable)
{
    *undecodable = 0;
    handle_t *h = as_recv_handle(mod, o);
    if (h == NULL)
        return NULL;
    if (mg__channel_inherited(h->ch))
        return mg__raise_inherited();
    int64_t id = end_id(h->ch, h->end);
    mg__buf_t buf = MG__BUF_INIT;
    int rc = blocking(0, h->ch, id, &buf, -1);
    if (rc == -1)
        return NULL;
    if (rc)
        return mg__raise_in(MG__CTX_DEFAULT, rc, "channel end %lld", (long long)id);
    PyObject *res = mg__decode_consume(&buf);
    mg__buf_free(&buf);
    *undecodable = res == NULL;
    return res;
}

int
mg__recv_handle_pending(PyObject *mod, PyObject *o)
{
    handle_t *h = as_recv_handle(mod, o);
    return h == NULL ? -1 : mg__channel_count(h->ch) > 0;
}

/* _channel_adopt(id) -> RecvChannel or SendChannel: a new handle, in this
 * interpreter, of the channel end with plain id `id` (an actor worker that
 * replaces an abandoned one serves the same inbox: it becomes one of the
 * holders the deadlock detector sees). */
static PyObject *
fn_channel_adopt(PyObject *mod, PyObject *arg)
{
    mg__state_t *st = PyModule_GetState(mod);
    mg__channel_t *ch;
    int end;
    if (resolve_id(arg, 0, &ch, &end) < 0)
        return NULL;
    PyObject *h = handle_new(end == MG__END_RECV ? st->recv_type : st->send_type, ch, end);
    mg__channel_decref(ch);
    return h;
}

static PyObject *
fn_waits(PyObject *mod, PyObject *unused)
{
    (void)mod; (void)unused;
    mg__wait_t *ws;
    size_t n;
    int rc = mg__waits_snapshot(&ws, &n, NULL);
    if (rc)
        return mg__raise(rc, NULL);
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (ws[i].kind != MG__WAIT_SEND && ws[i].kind != MG__WAIT_RECV)
            continue;               /* runs and homes: see _activity() */
        PyObject *t = Py_BuildValue("(LkLsL)", (long long)ws[i].interp_id, ws[i].thread_ident,
                                    (long long)ws[i].end_id,
                                    ws[i].kind == MG__WAIT_SEND ? "send" : "recv",
                                    (long long)ws[i].since_ns);
        if (t == NULL || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    free(ws);
    return list;
}

PyMethodDef mg__channel_functions[] = {
    {"create_channel", (PyCFunction)(void (*)(void))fn_create_channel, METH_VARARGS | METH_KEYWORDS,
     "create_channel(maxsize=0)\n--\n\nA new channel: (RecvChannel, SendChannel)."},
    {"create_queue", (PyCFunction)(void (*)(void))fn_create_queue, METH_VARARGS | METH_KEYWORDS,
     "create_queue(maxsize=0)\n--\n\nA new queue shared between interpreters (maxsize <= 0: unbounded)."},
    {"list_queues", fn_list_queues, METH_NOARGS,
     "list_queues()\n--\n\nA new handle of every open queue of the process, by id."},
    {"_actor_inbox", fn_actor_inbox, METH_NOARGS,
     "_actor_inbox()\n--\n\nAn actor inbox: (RecvChannel, SendChannel), send end pinned."},
    {"_reply_channel", fn_reply_channel, METH_VARARGS,
     "_reply_channel(inbox_id, label)\n--\n\nThe answer channel of one actor call."},
    {"_channel_ids", (PyCFunction)(void (*)(void))fn_channel_ids, METH_VARARGS | METH_KEYWORDS,
     "_channel_ids(maxsize=0)\n--\n\nA new channel named by plain ids: (send_id, recv_id)."},
    {"_channel_send", (PyCFunction)(void (*)(void))fn_channel_send, METH_VARARGS | METH_KEYWORDS,
     "_channel_send(id, obj, timeout=None)\n--\n\n"},
    {"_channel_recv", (PyCFunction)(void (*)(void))fn_channel_recv, METH_VARARGS | METH_KEYWORDS,
     "_channel_recv(id, timeout=None)\n--\n\n"},
    {"_channel_close", fn_channel_close, METH_O, "_channel_close(id)\n--\n\n"},
    {"_channel_adopt", fn_channel_adopt, METH_O,
     "_channel_adopt(id)\n--\n\nA handle in this interpreter of the channel end with plain id id."},
    {"_waits", fn_waits, METH_NOARGS,
     "_waits()\n--\n\nThe blocked waits: [(interp_id, thread_ident, end_id, kind, since_ns)]."},
    {NULL, NULL, 0, NULL},
};
