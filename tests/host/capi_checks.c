/* capi_checks.c -- checks of the hosts' C API, as a host sees it: built
 * against an installed manygil (manygil.h from manygil.get_include()),
 * linked with libpython only, the table fetched with mg_import().
 *
 *   capi_checks NAME      runs one check; exit 0 = passed
 *
 * tests/test_host_capi.py builds it and runs every check in its own
 * process with a timeout. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <manygil.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAIL(...) do { fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
                       fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(c) do { if (!(c)) FAIL("check failed: %s", #c); } while (0)
#define CHECK_RC(call, want) do { int rc_ = (call); if (rc_ != (want)) \
    FAIL("%s returned %d (%s), wanted %d", #call, rc_, mg_api->err_name(rc_) ? mg_api->err_name(rc_) : "?", (want)); } while (0)

static const mg_capi_t *A;

static void
start(void)
{
    Py_Initialize();
    if (mg_import() < 0) {
        PyErr_Print();
        FAIL("mg_import failed");
    }
    A = mg_api;
}

static PyThreadState *main_ts;
static void release_main(void) { main_ts = PyEval_SaveThread(); }
static void take_main(void) { PyEval_RestoreThread(main_ts); }

static mg_func_t *
src_func(const char *src, const char *name)
{
    mg_func_t *f;
    CHECK_RC(A->func_from_source(src, name, &f), 0);
    return f;
}

static int
bit(const uint64_t *v, size_t i)
{
    return (v[i / 64] >> (i % 64)) & 1;
}

/* ---- import ------------------------------------------------------------ */

static int
check_import_version_mismatch(void)
{
    start();
    static mg_capi_t fake;
    fake = *A;
    fake.version = MG_CAPI_VERSION + 41;
    PyObject *core = PyImport_ImportModule("manygil._core");
    PyObject *cap = PyCapsule_New(&fake, MG_CAPI_NAME, NULL);
    CHECK(core && cap && PyObject_SetAttrString(core, "_C_API", cap) == 0);
    mg_api = NULL;
    CHECK(mg_import() == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_ImportError));
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *s = PyObject_Str(exc);
    const char *msg = PyUnicode_AsUTF8(s);
    CHECK(strstr(msg, "version 42") != NULL && strstr(msg, "rebuild") != NULL);
    CHECK(mg_api == NULL);
    printf("message: %s\n", msg);
    Py_DECREF(s);
    Py_DECREF(exc);
    Py_DECREF(cap);
    Py_DECREF(core);
    return Py_FinalizeEx();
}

static int
check_import_no_table(void)
{
    start();
    PyObject *core = PyImport_ImportModule("manygil._core");
    CHECK(core && PyObject_DelAttrString(core, "_C_API") == 0);
    mg_api = NULL;
    CHECK(mg_import() == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_ImportError));
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *s = PyObject_Str(exc);
    const char *msg = PyUnicode_AsUTF8(s);
    CHECK(strstr(msg, "no C API for hosts") != NULL && strstr(msg, MG_CAPI_NAME) != NULL);
    CHECK(mg_api == NULL);
    printf("message: %s\n", msg);
    Py_DECREF(s);
    Py_DECREF(exc);
    Py_DECREF(core);
    return Py_FinalizeEx();
}

static int
check_import_not_installed(void)
{
    Py_Initialize();            /* run with PYTHONPATH not reaching manygil */
    CHECK(mg_import() == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_ImportError));
    PyErr_Print();
    return Py_FinalizeEx();
}

/* ---- thread-bound interpreters ------------------------------------------ */

static int64_t seen_ids[2];

static void *
thread_ids(void *arg)
{
    int64_t *ids = arg, again;
    CHECK_RC(A->thread_interp(&ids[0]), 0);
    CHECK_RC(A->thread_interp(&again), 0);
    CHECK(again == ids[0] && ids[0] > 0);
    CHECK_RC(A->interp_exec(ids[0], "import sys; x = 1"), 0);
    return NULL;
}

static int
check_thread_interp(void)
{
    start();
    release_main();
    pthread_t a, b;
    pthread_create(&a, NULL, thread_ids, &seen_ids[0]);
    pthread_join(a, NULL);
    /* The thread ended: its interpreter is closed. */
    CHECK_RC(A->interp_is_running(seen_ids[0]), MG_ENOTFOUND);
    pthread_create(&b, NULL, thread_ids, &seen_ids[1]);
    pthread_join(b, NULL);
    CHECK(seen_ids[1] != seen_ids[0]);
    CHECK_RC(A->interp_is_running(seen_ids[1]), MG_ENOTFOUND);
    /* The main thread can have one too, and release it. */
    int64_t id, id2;
    CHECK_RC(A->thread_interp(&id), 0);
    CHECK_RC(A->thread_release(), 0);
    CHECK_RC(A->interp_is_running(id), MG_ENOTFOUND);
    CHECK_RC(A->thread_release(), 0);
    CHECK_RC(A->thread_interp(&id2), 0);
    CHECK(id2 != id);
    CHECK_RC(A->thread_interp(NULL), MG_EINVAL);
    take_main();
    return Py_FinalizeEx();
}

/* ---- types --------------------------------------------------------------- */

static int
check_types_roundtrip(void)
{
    start();
    release_main();
    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);
    mg_func_t *ident = src_func("def f(x):\n    return x\n", "f");
    mg_func_t *isnone = src_func("def f(x):\n    return x is None\n", "f");
    enum { N = 70 };            /* more than one validity word */
    uint64_t vin[2] = {0}, vout[2], vout2[2];
    for (int i = 0; i < N; i++)
        if (i % 3)
            vin[i / 64] |= (uint64_t)1 << (i % 64);
    union { uint8_t u8[N]; int8_t i8[N]; int16_t i16[N]; int32_t i32[N]; int64_t i64[N];
            uint16_t u16[N]; uint32_t u32[N]; uint64_t u64[N]; float f32[N]; double f64[N];
            mg_bytes_t b[N]; } in, out;
    static char text[N][16];
    uint8_t flags[N];
    for (int t = MG_T_BOOL; t < MG_T__LAST; t++) {
        memset(&in, 0, sizeof in);
        for (int i = 0; i < N; i++) {
            switch (t) {
            case MG_T_BOOL: in.u8[i] = i & 1; break;
            case MG_T_INT8: in.i8[i] = (int8_t)(i % 2 ? -128 + i : 127 - i); break;
            case MG_T_INT16: in.i16[i] = (int16_t)(i % 2 ? -32768 + i : 32767 - i); break;
            case MG_T_INT32: in.i32[i] = i % 2 ? INT32_MIN + i : INT32_MAX - i; break;
            case MG_T_INT64: in.i64[i] = i % 2 ? INT64_MIN + i : INT64_MAX - i; break;
            case MG_T_UINT8: in.u8[i] = (uint8_t)(255 - i); break;
            case MG_T_UINT16: in.u16[i] = (uint16_t)(65535 - i); break;
            case MG_T_UINT32: in.u32[i] = UINT32_MAX - (uint32_t)i; break;
            case MG_T_UINT64: in.u64[i] = UINT64_MAX - (uint64_t)i; break;
            case MG_T_FLOAT32: in.f32[i] = (float)i / 4.0f - 3.0f; break;
            case MG_T_FLOAT64: in.f64[i] = i * 1e300 / 7.0 - 1e299; break;
            default:
                if (t == MG_T_TEXT)             /* "ré<i>" */
                    snprintf(text[i], sizeof text[i], "r\xc3\xa9%d", i);
                else {                          /* "b\0<i>": a NUL inside */
                    text[i][0] = 'b';
                    text[i][1] = '\0';
                    snprintf(text[i] + 2, sizeof text[i] - 2, "%d", i);
                }
                in.b[i].ptr = text[i];
                in.b[i].len = strlen(text[i] + 2) + 2;
            }
        }
        mg_column_t ci = {t, &in, vin}, co = {t, &out, vout};
        mg_error_t err = {0};
        memset(&out, 0xAB, sizeof out);
        CHECK_RC(A->call_batch(id, ident, 0, N, 1, &ci, &co, &err), 0);
        for (int i = 0; i < N; i++) {
            CHECK(bit(vout, i) == bit(vin, i));
            if (!bit(vin, i))
                continue;
            size_t w = t == MG_T_BOOL || t == MG_T_INT8 || t == MG_T_UINT8 ? 1
                     : t == MG_T_INT16 || t == MG_T_UINT16 ? 2
                     : t == MG_T_INT32 || t == MG_T_UINT32 || t == MG_T_FLOAT32 ? 4 : 8;
            if (t == MG_T_TEXT || t == MG_T_BINARY) {
                CHECK(out.b[i].len == in.b[i].len && memcmp(out.b[i].ptr, in.b[i].ptr, in.b[i].len) == 0);
                CHECK(out.b[i].ptr != in.b[i].ptr);
            }
            else
                CHECK(memcmp((char *)&out + i * w, (char *)&in + i * w, w) == 0);
        }
        /* Pass-None mode: the function sees None for the NULL cells. */
        mg_column_t cb = {MG_T_BOOL, flags, vout2};
        CHECK_RC(A->call_batch(id, isnone, MG_CALL_PASS_NULL, N, 1, &ci, &cb, &err), 0);
        for (int i = 0; i < N; i++)
            CHECK(bit(vout2, i) && flags[i] == !bit(vin, i));
        A->error_clear(&err);
    }
    A->func_free(ident);
    A->func_free(isnone);
    take_main();
    return Py_FinalizeEx();
}

/* ---- errors --------------------------------------------------------------- */

static int
check_errors(void)
{
    start();
    release_main();
    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);
    int64_t x[8] = {1, 2, 3, 0, 5, 300, 7, 8}, out[8];
    uint64_t v[1];
    mg_column_t ci = {MG_T_INT64, x, NULL}, co = {MG_T_INT64, out, v};
    mg_error_t err = {0};

    mg_func_t *inv = src_func("def f(x):\n    return 10 // x\n", "f");
    CHECK_RC(A->call_batch(id, inv, 0, 8, 1, &ci, &co, &err), MG_EEXEC);
    printf("traceback of row %lld:\n%s", (long long)err.row, err.traceback);
    CHECK(err.row == 3 && strcmp(err.type, "ZeroDivisionError") == 0);
    CHECK(strstr(err.message, "division") != NULL);
    CHECK(strstr(err.traceback, "line 2, in f") != NULL && strstr(err.traceback, "10 // x") != NULL);
    /* The row turns NULL instead with MG_CALL_ERROR_NULL. */
    CHECK_RC(A->call_batch(id, inv, MG_CALL_ERROR_NULL, 8, 1, &ci, &co, &err), 0);
    CHECK(!bit(v, 3) && bit(v, 2) && out[2] == 3 && bit(v, 4));

    mg_func_t *str = src_func("def f(x):\n    return str(x)\n", "f");
    CHECK_RC(A->call_batch(id, str, 0, 8, 1, &ci, &co, &err), MG_ERESULT);
    CHECK(err.row == 0 && strstr(err.message, "expected an int for INT64, got str") != NULL);

    int8_t small[8];
    mg_column_t c8 = {MG_T_INT8, small, v};
    mg_func_t *ident = src_func("def f(x):\n    return x\n", "f");
    CHECK_RC(A->call_batch(id, ident, 0, 8, 1, &ci, &c8, &err), MG_ERESULT);
    CHECK(err.row == 5 && strstr(err.message, "300 does not fit INT8") != NULL);
    CHECK_RC(A->call_batch(id, ident, MG_CALL_ERROR_NULL, 8, 1, &ci, &c8, &err), 0);
    CHECK(!bit(v, 5) && small[4] == 5);
    uint8_t u8[8];
    int64_t neg[1] = {-1};
    mg_column_t cn = {MG_T_INT64, neg, NULL}, cu = {MG_T_UINT8, u8, v};
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &cn, &cu, &err), MG_ERESULT);
    CHECK(strstr(err.message, "-1 does not fit UINT8") != NULL);

    /* Text: invalid UTF-8 in, lone surrogate out. */
    mg_bytes_t bad[1] = {{"\xff\xfe", 2}}, tout[1];
    mg_column_t ct = {MG_T_TEXT, bad, NULL}, cto = {MG_T_TEXT, tout, v};
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &ct, &cto, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "UnicodeDecodeError") == 0 && err.row == 0);
    mg_func_t *sur = src_func("def f(x):\n    return '\\ud800'\n", "f");
    CHECK_RC(A->call_batch(id, sur, 0, 1, 1, &ci, &cto, &err), MG_ERESULT);
    CHECK(strstr(err.message, "UTF-8") != NULL);

    /* A user exception's type name is module-qualified. */
    mg_func_t *own = src_func("class Oops(Exception):\n    pass\ndef f(x):\n    raise Oops('no %d' % x)\n", "f");
    CHECK_RC(A->call_batch(id, own, 0, 1, 1, &ci, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "__manygil_host__.Oops") == 0 && strcmp(err.message, "no 1") == 0);

    /* Bad source / name / module: reported at the first call. */
    mg_func_t *syn = src_func("def f(x)\n    return x\n", "f");
    CHECK_RC(A->call_batch(id, syn, 0, 1, 1, &ci, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "SyntaxError") == 0 && err.row == -1);
    mg_func_t *noname = src_func("def g(x):\n    return x\n", "f");
    CHECK_RC(A->call_batch(id, noname, 0, 1, 1, &ci, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "NameError") == 0 && strstr(err.message, "'f'") != NULL);
    mg_func_t *nomod;
    CHECK_RC(A->func_from_name("no_such_module_xyz:f", &nomod), 0);
    CHECK_RC(A->call_batch(id, nomod, 0, 1, 1, &ci, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "ModuleNotFoundError") == 0);
    mg_func_t *notcall;
    CHECK_RC(A->func_from_name("math:pi", &notcall), 0);
    CHECK_RC(A->call_batch(id, notcall, 0, 1, 1, &ci, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "TypeError") == 0 && strstr(err.message, "not callable") != NULL);

    /* Bad arguments. */
    mg_func_t *tmp;
    CHECK_RC(A->func_from_name("nocolon", &tmp), MG_EINVAL);
    CHECK_RC(A->func_from_name(":f", &tmp), MG_EINVAL);
    CHECK_RC(A->func_from_name("m:", &tmp), MG_EINVAL);
    CHECK_RC(A->func_from_source("x = 1", "", &tmp), MG_EINVAL);
    CHECK_RC(A->func_from_object(NULL, &tmp), MG_EINVAL);
    CHECK_RC(A->call_batch(id, NULL, 0, 1, 1, &ci, &co, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(id, ident, 0x80, 1, 1, &ci, &co, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(id, ident, 0, 1, -1, &ci, &co, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, NULL, &co, &err), MG_EINVAL);
    mg_column_t nov = {MG_T_INT64, out, NULL}, badt = {99, out, v};
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &ci, &nov, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &badt, &co, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &ci, NULL, &err), MG_EINVAL);
    CHECK_RC(A->call_batch(987654, ident, 0, 1, 1, &ci, &co, &err), MG_ENOTFOUND);
    CHECK_RC(A->call_batch(id, ident, 0, 0, 1, &ci, &co, &err), 0);
    CHECK_RC(A->call_batch(id, ident, 0, 1, 1, &ci, &co, NULL), 0);   /* err is optional */
    CHECK_RC(A->func_set_initializer(ident, ident), MG_EINVAL);
    CHECK(strcmp(A->strerror(MG_ERESULT), "a result does not fit its column's type") == 0);
    A->error_clear(&err);
    A->error_clear(NULL);
    A->func_free(NULL);
    mg_func_t *fs[] = {inv, str, ident, sur, own, syn, noname, nomod, notcall};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++)
        A->func_free(fs[i]);
    take_main();
    return Py_FinalizeEx();
}

/* ---- call forms ----------------------------------------------------------- */

static int
check_call_forms(void)
{
    start();
    /* From objects, holding the main GIL: a closure and a lambda (by value),
     * an importable function (by reference). */
    PyObject *ns = PyDict_New();
    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins());
    PyObject *r = PyRun_String("k = 5\ndef make(k):\n    return lambda x, y: x * k + y\n"
                               "closure = make(3)\nlam = lambda x, y: x - y\n", Py_file_input, ns, ns);
    CHECK(r != NULL);
    Py_DECREF(r);
    mg_func_t *clo, *lam, *hyp, *bad;
    CHECK_RC(A->func_from_object(PyDict_GetItemString(ns, "closure"), &clo), 0);
    CHECK_RC(A->func_from_object(PyDict_GetItemString(ns, "lam"), &lam), 0);
    PyObject *math = PyImport_ImportModule("math");
    PyObject *hypot = PyObject_GetAttrString(math, "hypot");
    CHECK_RC(A->func_from_object(hypot, &hyp), 0);
    CHECK_RC(A->func_from_object(math, &bad), MG_EINVAL);      /* not callable */
    CHECK(PyErr_ExceptionMatches(PyExc_TypeError));
    PyErr_Clear();
    PyObject *gen = PyRun_String("(lambda: (yield))", Py_eval_input, ns, ns);
    PyObject *g = PyObject_CallNoArgs(gen);                   /* a generator's send */
    PyObject *send = PyObject_GetAttrString(g, "send");
    CHECK_RC(A->func_from_object(send, &bad), MG_EUNSHAREABLE);
    CHECK(PyErr_Occurred());
    PyErr_Clear();
    Py_DECREF(send); Py_DECREF(g); Py_DECREF(gen);
    Py_DECREF(hypot); Py_DECREF(math); Py_DECREF(ns);
    release_main();

    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);
    int64_t a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, 40}, out[4];
    double d[4];
    uint64_t v[1], vb[1] = {0xB};       /* row 2 of b is NULL */
    mg_column_t in[2] = {{MG_T_INT64, a, NULL}, {MG_T_INT64, b, vb}};
    mg_column_t co = {MG_T_INT64, out, v}, cd = {MG_T_FLOAT64, d, v};
    mg_error_t err = {0};
    CHECK_RC(A->call_batch(id, clo, 0, 4, 2, in, &co, &err), 0);
    CHECK(out[0] == 13 && out[1] == 26 && !bit(v, 2) && out[3] == 52);
    CHECK_RC(A->call_batch(id, lam, 0, 4, 2, in, &co, &err), 0);
    CHECK(out[0] == -9 && out[3] == -36);
    CHECK_RC(A->call_batch(id, hyp, 0, 4, 2, in, &cd, &err), 0);
    CHECK(d[0] > 10.04 && d[0] < 10.05 && !bit(v, 2));

    /* Vectorized: one call with a list per column. */
    mg_func_t *vec = src_func("def f(xs, ys):\n"
                              "    return [None if y is None else x + y for x, y in zip(xs, ys)]\n", "f");
    CHECK_RC(A->call_batch(id, vec, MG_CALL_VECTORIZED | MG_CALL_PASS_NULL, 4, 2, in, &co, &err), 0);
    CHECK(out[0] == 11 && out[3] == 44 && !bit(v, 2) && bit(v, 3));
    mg_func_t *short_ = src_func("def f(xs, ys):\n    return xs[:2]\n", "f");
    CHECK_RC(A->call_batch(id, short_, MG_CALL_VECTORIZED, 4, 2, in, &co, &err), MG_ERESULT);
    CHECK(strstr(err.message, "returned 2 values for 4 rows") != NULL);
    mg_func_t *notseq = src_func("def f(xs, ys):\n    return 3\n", "f");
    CHECK_RC(A->call_batch(id, notseq, MG_CALL_VECTORIZED, 4, 2, in, &co, &err), MG_ERESULT);

    /* By name; an initializer runs once per interpreter, before the first call. */
    mg_func_t *neg, *init, *count;
    CHECK_RC(A->func_from_name("operator:neg", &neg), 0);
    CHECK_RC(A->call_batch(id, neg, 0, 4, 1, in, &co, &err), 0);
    CHECK(out[2] == -3);
    init = src_func("import builtins\ndef init():\n"
                    "    builtins.mg_inits = getattr(builtins, 'mg_inits', 0) + 1\n", "init");
    count = src_func("import builtins\ndef f(x):\n    return builtins.mg_inits\n", "f");
    CHECK_RC(A->func_set_initializer(count, init), 0);
    for (int k = 0; k < 3; k++) {
        CHECK_RC(A->call_batch(id, count, 0, 4, 1, in, &co, &err), 0);
        CHECK(out[0] == 1 && out[3] == 1);
    }
    A->error_clear(&err);
    mg_func_t *fs[] = {clo, lam, hyp, vec, short_, notseq, neg, count, init};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++)
        A->func_free(fs[i]);
    /* The freed callables' copies are dropped at the interpreter's next batch. */
    mg_func_t *alive = src_func("import builtins\ndef f(x):\n    return 1\n", "f");
    CHECK_RC(A->call_batch(id, alive, 0, 1, 1, in, &co, &err), 0);
    A->func_free(alive);
    take_main();
    return Py_FinalizeEx();
}

/* ---- the per-row loop: arities, skipped rows, errors ------------------------ */

static int
check_row_loops(void)
{
    start();
    release_main();
    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);
    enum { N = 8 };
    int64_t a[N] = {1, 2, 3, 4, 5, 6, 7, 8}, b[N] = {8, 7, 6, 5, 4, 3, 2, 1}, out[N];
    uint64_t v[1], va[1] = {0xF9};      /* rows 1 and 2 of a are NULL */
    mg_column_t co = {MG_T_INT64, out, v};
    mg_error_t err = {0};

    /* 0, 2, 3 and 5 arguments. */
    mg_func_t *zero = src_func("n = [0]\ndef f():\n    n[0] += 1\n    return n[0]\n", "f");
    CHECK_RC(A->call_batch(id, zero, 0, N, 0, NULL, &co, &err), 0);
    CHECK(out[0] == 1 && out[7] == 8 && bit(v, 7));
    mg_column_t five[5] = {{MG_T_INT64, a, NULL}, {MG_T_INT64, b, NULL}, {MG_T_INT64, a, NULL},
                           {MG_T_INT64, b, NULL}, {MG_T_INT64, a, NULL}};
    mg_func_t *sum = src_func("def f(*xs):\n    return sum(xs)\n", "f");
    for (int nc = 2; nc <= 5; nc++) {
        CHECK_RC(A->call_batch(id, sum, 0, N, nc, five, &co, &err), 0);
        for (int i = 0; i < N; i++)
            CHECK(out[i] == (nc / 2) * 9 + (nc % 2) * a[i]);
    }

    /* A raising row's number counts the NULL rows that were not called, in
     * every arity; the traceback is the function's, not the loop's. */
    mg_func_t *inv = src_func("def f(x, *rest):\n    return 10 // (x - 4)\n", "f");
    mg_column_t two[2] = {{MG_T_INT64, a, va}, {MG_T_INT64, b, NULL}};
    for (int nc = 1; nc <= 2; nc++) {
        CHECK_RC(A->call_batch(id, inv, 0, N, nc, two, &co, &err), MG_EEXEC);
        CHECK(err.row == 3 && strcmp(err.type, "ZeroDivisionError") == 0);
        CHECK(strstr(err.traceback, "in f") != NULL && strstr(err.traceback, "manygil rows") == NULL);
    }
    mg_func_t *third = src_func("n = [0]\ndef f():\n    n[0] += 1\n    if n[0] == 3:\n"
                                "        raise ValueError('third')\n    return n[0]\n", "f");
    CHECK_RC(A->call_batch(id, third, 0, N, 0, NULL, &co, &err), MG_EEXEC);
    CHECK(err.row == 2 && strcmp(err.message, "third") == 0);

    /* MG_CALL_ERROR_NULL: each raising row is NULL, the rows after it are
     * still called, once each. */
    mg_func_t *odd = src_func("import builtins\nbuiltins.mg_calls = 0\ndef f(x):\n"
                              "    builtins.mg_calls += 1\n    if x % 2:\n"
                              "        raise ValueError(x)\n    return x * 10\n", "f");
    mg_func_t *ncalls = src_func("import builtins\ndef f(x):\n    return builtins.mg_calls\n", "f");
    mg_column_t ca = {MG_T_INT64, a, NULL};
    CHECK_RC(A->call_batch(id, odd, MG_CALL_ERROR_NULL, N, 1, &ca, &co, &err), 0);
    for (int i = 0; i < N; i++)
        CHECK(a[i] % 2 ? !bit(v, i) : (bit(v, i) && out[i] == a[i] * 10));
    CHECK_RC(A->call_batch(id, ncalls, 0, 1, 1, &ca, &co, &err), 0);
    CHECK(out[0] == N);
    mg_func_t *boom = src_func("def f(x):\n    raise KeyError(x)\n", "f");
    CHECK_RC(A->call_batch(id, boom, MG_CALL_ERROR_NULL, N, 1, &ca, &co, &err), 0);
    CHECK(v[0] == 0);

    /* A TEXT cell that is not UTF-8: the batch fails naming its row, or under
     * MG_CALL_ERROR_NULL only that row is NULL. */
    mg_bytes_t texts[3] = {{"ab", 2}, {"\xff", 1}, {"cd", 2}};
    mg_column_t ct = {MG_T_TEXT, texts, NULL};
    mg_func_t *len = src_func("def f(s):\n    return len(s) * 2\n", "f");
    CHECK_RC(A->call_batch(id, len, 0, 3, 1, &ct, &co, &err), MG_EEXEC);
    CHECK(strcmp(err.type, "UnicodeDecodeError") == 0 && err.row == 1);
    CHECK_RC(A->call_batch(id, len, MG_CALL_ERROR_NULL, 3, 1, &ct, &co, &err), 0);
    CHECK(bit(v, 0) && out[0] == 4 && !bit(v, 1) && bit(v, 2) && out[2] == 4);
    CHECK_RC(A->call_batch(id, len, MG_CALL_ERROR_NULL | MG_CALL_VECTORIZED, 3, 1, &ct, &co, &err), 0);
    CHECK((v[0] & 7) == 0);     /* vectorized: the one call could not be made */

    /* Batches longer than the loop's span (2048 rows). */
    enum { BIG = 5000 };
    static int64_t big[BIG], bigout[BIG];
    static uint64_t bigin_v[(BIG + 63) / 64], bigout_v[(BIG + 63) / 64];
    static mg_bytes_t bigtext[BIG];
    for (int i = 0; i < BIG; i++) {
        big[i] = i;
        if (i % 7)
            bigin_v[i / 64] |= (uint64_t)1 << (i % 64);
        bigtext[i].ptr = i == 3000 ? "\xff" : "abc";
        bigtext[i].len = i == 3000 ? 1 : 3;
    }
    mg_column_t cbig = {MG_T_INT64, big, bigin_v}, cbo = {MG_T_INT64, bigout, bigout_v};
    mg_func_t *at = src_func("def f(x):\n    if x == 4321:\n        raise ValueError(x)\n"
                             "    return x + 1\n", "f");
    CHECK_RC(A->call_batch(id, at, 0, BIG, 1, &cbig, &cbo, &err), MG_EEXEC);
    CHECK(err.row == 4321);
    CHECK_RC(A->call_batch(id, at, MG_CALL_ERROR_NULL, BIG, 1, &cbig, &cbo, &err), 0);
    for (int i = 0; i < BIG; i++)
        CHECK(i % 7 == 0 || i == 4321 ? !bit(bigout_v, i) : (bit(bigout_v, i) && bigout[i] == i + 1));
    mg_column_t cbt = {MG_T_TEXT, bigtext, NULL};
    CHECK_RC(A->call_batch(id, len, 0, BIG, 1, &cbt, &cbo, &err), MG_EEXEC);
    CHECK(err.row == 3000 && strcmp(err.type, "UnicodeDecodeError") == 0);
    CHECK_RC(A->call_batch(id, len, MG_CALL_ERROR_NULL, BIG, 1, &cbt, &cbo, &err), 0);
    for (int i = 0; i < BIG; i++)
        CHECK(i == 3000 ? !bit(bigout_v, i) : (bit(bigout_v, i) && bigout[i] == 6));

    A->error_clear(&err);
    mg_func_t *fs[] = {zero, sum, inv, third, odd, ncalls, boom, len, at};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++)
        A->func_free(fs[i]);
    take_main();
    return Py_FinalizeEx();
}

/* ---- sharing a bounded set ------------------------------------------------ */

static mg_iset_t *set;
static mg_func_t *sq;

static void *
set_worker(void *arg)
{
    (void)arg;
    for (int k = 0; k < 50; k++) {
        int64_t id, x[16], out[16];
        uint64_t v[1];
        for (int i = 0; i < 16; i++)
            x[i] = k + i;
        mg_column_t ci = {MG_T_INT64, x, NULL}, co = {MG_T_INT64, out, v};
        CHECK_RC(A->iset_acquire(set, -1, &id), 0);
        CHECK_RC(A->call_batch(id, sq, 0, 16, 1, &ci, &co, NULL), 0);
        CHECK_RC(A->iset_release(set, id), 0);
        for (int i = 0; i < 16; i++)
            CHECK(out[i] == x[i] * x[i]);
    }
    return NULL;
}

static int
check_iset(void)
{
    start();
    release_main();
    sq = src_func("def f(x):\n    return x * x\n", "f");
    CHECK_RC(A->iset_new(0, &set), MG_EINVAL);
    CHECK_RC(A->iset_new(2, &set), 0);
    pthread_t th[6];
    for (int t = 0; t < 6; t++)
        pthread_create(&th[t], NULL, set_worker, NULL);
    for (int t = 0; t < 6; t++)
        pthread_join(th[t], NULL);
    int64_t a, b, c;
    CHECK_RC(A->iset_acquire(set, 0, &a), 0);
    CHECK_RC(A->iset_acquire(set, 0, &b), 0);
    CHECK(a != b);
    CHECK_RC(A->iset_acquire(set, 0.05, &c), MG_ETIMEDOUT);     /* both in use */
    CHECK_RC(A->iset_free(set), MG_ERUNNING);
    CHECK_RC(A->iset_release(set, a), 0);
    CHECK_RC(A->iset_release(set, a), MG_EINVAL);               /* not acquired */
    CHECK_RC(A->iset_release(set, 424242), MG_EINVAL);
    CHECK_RC(A->iset_acquire(set, 0, &c), 0);
    CHECK(c == a);                                              /* reused, not created */
    CHECK_RC(A->iset_release(set, c), 0);
    CHECK_RC(A->iset_release(set, b), 0);
    CHECK_RC(A->iset_free(set), 0);
    CHECK_RC(A->interp_is_running(a), MG_ENOTFOUND);            /* closed with the set */
    CHECK_RC(A->iset_acquire(NULL, 0, &a), MG_EINVAL);
    A->func_free(sq);
    take_main();
    return Py_FinalizeEx();
}

/* ---- interrupts, the main GIL, teardown ----------------------------------- */

static int64_t spin_id;
static volatile int spin_rc = 1;
static mg_error_t spin_err;

static void *
spinner(void *arg)
{
    (void)arg;
    mg_func_t *spin = src_func("def f(x):\n    while True:\n        pass\n", "f");
    int64_t x[1] = {0}, out[1];
    uint64_t v[1];
    mg_column_t ci = {MG_T_INT64, x, NULL}, co = {MG_T_INT64, out, v};
    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);     /* creating takes the main GIL briefly */
    /* Warm up: building a callable imports modules the first time, and on
     * 3.13+ CPython runs each extension module's init function (its first
     * import in an interpreter) under the main interpreter's GIL. */
    mg_func_t *warm = src_func("def f(x):\n    return x\n", "f");
    CHECK_RC(A->call_batch(id, warm, 0, 1, 1, &ci, &co, &spin_err), 0);
    A->func_free(warm);
    __atomic_store_n(&spin_id, id, __ATOMIC_SEQ_CST);
    spin_rc = A->call_batch(id, spin, MG_CALL_ERROR_NULL, 1, 1, &ci, &co, &spin_err);
    A->func_free(spin);
    return NULL;
}

static int
check_interrupt(void)
{
    start();
    pthread_t th;
    release_main();
    pthread_create(&th, NULL, spinner, NULL);
    while (__atomic_load_n(&spin_id, __ATOMIC_SEQ_CST) == 0)
        usleep(1000);
    /* From here the main thread keeps the main interpreter's GIL: the host
     * thread's calls must not need it. */
    take_main();
    int running = 0;
    for (int i = 0; i < 2000 && running != 1; i++) {
        usleep(5000);
        running = spin_id ? A->interp_is_running(spin_id) : 0;
    }
    CHECK(running == 1);
    CHECK(A->interp_interrupt(spin_id) == 1);
    /* Formatting the KeyboardInterrupt's traceback may import modules for
     * the first time in that interpreter, which may need the main GIL. */
    release_main();
    pthread_join(th, NULL);
    take_main();
    /* KeyboardInterrupt is not an Exception: MG_CALL_ERROR_NULL keeps it. */
    CHECK_RC(spin_rc, MG_EEXEC);
    CHECK(strcmp(spin_err.type, "KeyboardInterrupt") == 0);
    CHECK_RC(A->interp_interrupt(999999), MG_ENOTFOUND);
    A->error_clear(&spin_err);
    return Py_FinalizeEx();
}

static pthread_mutex_t late_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t late_cond = PTHREAD_COND_INITIALIZER;
static int late_phase;

static void *
late_thread(void *arg)
{
    mg_func_t *f = arg;
    int64_t id, x[1] = {1}, out[1];
    uint64_t v[1];
    mg_column_t ci = {MG_T_INT64, x, NULL}, co = {MG_T_INT64, out, v};
    CHECK_RC(A->thread_interp(&id), 0);
    CHECK_RC(A->call_batch(id, f, 0, 1, 1, &ci, &co, NULL), 0);
    pthread_mutex_lock(&late_mu);
    late_phase = 1;
    pthread_cond_broadcast(&late_cond);
    while (late_phase != 2)
        pthread_cond_wait(&late_cond, &late_mu);
    pthread_mutex_unlock(&late_mu);
    /* Python is finalized now: calls fail cleanly, the thread's end too. */
    CHECK_RC(A->call_batch(id, f, 0, 1, 1, &ci, &co, NULL), MG_ENOTINIT);
    CHECK_RC(A->thread_interp(&id), 0);         /* still bound, unusable */
    CHECK_RC(A->thread_release(), 0);
    CHECK_RC(A->thread_interp(&id), MG_ENOTINIT);
    return NULL;
}

static int
check_finalize_with_host_thread(void)
{
    start();
    mg_func_t *f = src_func("def f(x):\n    return x\n", "f");
    release_main();
    pthread_t th;
    pthread_create(&th, NULL, late_thread, f);
    pthread_mutex_lock(&late_mu);
    while (late_phase != 1)
        pthread_cond_wait(&late_cond, &late_mu);
    pthread_mutex_unlock(&late_mu);
    take_main();
    /* The host thread still has its interpreter: finalizing ends it. */
    CHECK(Py_FinalizeEx() == 0);
    pthread_mutex_lock(&late_mu);
    late_phase = 2;
    pthread_cond_broadcast(&late_cond);
    pthread_mutex_unlock(&late_mu);
    pthread_join(th, NULL);
    A->func_free(f);
    printf("finalized with a host thread bound\n");
    return 0;
}

/* ---- nothing leaks ----------------------------------------------------------- */

static long
rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    if (f)
        fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Every path of a batch (text out, raising rows, results that do not fit,
 * vectorized calls, NULL modes, callables made and freed, an mg_error_t
 * reused without clearing) many times over: the process must not grow. */
static void
leak_round(int64_t id, int k)
{
    enum { N = 256 };
    static int64_t x[N];
    static mg_bytes_t t[N], tout[N];
    static char buf[N][24];
    uint64_t v[N / 64], vin[N / 64];
    mg_error_t err = {0};
    for (int i = 0; i < N; i++) {
        x[i] = k * N + i;
        t[i].ptr = buf[i];
        t[i].len = (size_t)snprintf(buf[i], sizeof buf[i], "row %d/%d", k, i);
    }
    memset(vin, 0x5A, sizeof vin);
    mg_column_t ci = {MG_T_INT64, x, vin}, ct = {MG_T_TEXT, t, NULL}, cto = {MG_T_TEXT, tout, v};
    mg_column_t co = {MG_T_INT64, x, v};
    static mg_func_t *up, *boom, *vec;
    if (up == NULL) {
        up = src_func("def f(s):\n    return s.upper() * 3\n", "f");
        boom = src_func("def f(x):\n    if x % 7 == 3:\n        raise ValueError(x)\n    return x\n", "f");
        vec = src_func("def f(xs):\n    return [None if x is None else str(x) for x in xs]\n", "f");
    }
    CHECK_RC(A->call_batch(id, up, 0, N, 1, &ct, &cto, &err), 0);
    CHECK_RC(A->call_batch(id, boom, 0, N, 1, &ci, &co, &err), MG_EEXEC);
    CHECK_RC(A->call_batch(id, boom, MG_CALL_ERROR_NULL | MG_CALL_PASS_NULL, N, 1, &ci, &co, &err), 0);
    CHECK_RC(A->call_batch(id, vec, MG_CALL_VECTORIZED | MG_CALL_PASS_NULL, N, 1, &ci, &cto, &err), 0);
    CHECK_RC(A->call_batch(id, up, 0, N, 1, &ct, &co, &err), MG_ERESULT);   /* str for INT64 */
    mg_func_t *tmp = src_func("def f(x):\n    return x\n", "f");
    CHECK_RC(A->call_batch(id, tmp, 0, N, 1, &ci, &co, &err), 0);
    A->func_free(tmp);
    A->error_clear(&err);
}

static int
check_no_growth(void)
{
    start();
    release_main();
    int64_t id;
    CHECK_RC(A->thread_interp(&id), 0);
    for (int k = 0; k < 300; k++)
        leak_round(id, k);
    long before = rss_kb();
    int rounds = 3000;
    for (int k = 0; k < rounds; k++)
        leak_round(id, k);
    long grew = rss_kb() - before;
    printf("RSS grew by %ld KiB over %d rounds\n", grew, rounds);
    CHECK(grew < 4 * 1024);     /* measured: ~0.7 MiB, flat from 10,000 to 30,000 rounds */
    take_main();
    return Py_FinalizeEx();
}

static const struct { const char *name; int (*fn)(void); } checks[] = {
    {"import_version_mismatch", check_import_version_mismatch},
    {"import_no_table", check_import_no_table},
    {"import_not_installed", check_import_not_installed},
    {"thread_interp", check_thread_interp},
    {"types_roundtrip", check_types_roundtrip},
    {"errors", check_errors},
    {"call_forms", check_call_forms},
    {"row_loops", check_row_loops},
    {"iset", check_iset},
    {"interrupt", check_interrupt},
    {"finalize_with_host_thread", check_finalize_with_host_thread},
    {"no_growth", check_no_growth},
};

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
            printf("%s\n", checks[i].name);
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < sizeof checks / sizeof *checks; i++)
        if (strcmp(argv[1], checks[i].name) == 0) {
            int rc = checks[i].fn();
            if (rc == 0)
                printf("PASSED %s\n", checks[i].name);
            return rc ? 1 : 0;
        }
    fprintf(stderr, "usage: %s CHECK | --list\n", argv[0]);
    return 2;
}
