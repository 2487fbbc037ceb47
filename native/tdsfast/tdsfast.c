/*
 * emulator._tdsfast: decode a run of sp_execute calls in an RPC request (MS-TDS 2.2.6.6).
 *
 * A parameter array from Microsoft's driver (pyodbc fast_executemany, turbodbc
 * executemanycolumns) is one RPC message with one sp_execute call per row, every call
 * with the same parameter metadata. The Python decoder reads the first call and learns
 * each parameter's metadata bytes (name length, name, status flags, TYPE_INFO); this
 * module then walks the following calls, checks that each repeats the first call's
 * header and metadata byte for byte, and decodes the values of the common types:
 *
 *   INTN (0x26), BITN (0x68), FLTN (0x6D), NVARCHAR/NCHAR (0xE7/0xEF, not PLP),
 *   BIGVARBIN/BIGBINARY (0xA5/0xAD, not PLP)
 *
 * Values of the other length-prefixed types (decimals, dates and times, GUIDs, money,
 * varchar) are framed here and handed, as raw bytes, to the Python decoder the caller
 * passes for that parameter, so their conversion is the Python one by construction.
 *
 * It stops at the first call that differs (another procedure, another layout, a value it
 * does not frame) and returns how far it got; the Python decoder carries on from there.
 * Values come back exactly as the Python decoder makes them (int, bool, float, str with
 * surrogatepass, bytes), so both paths are interchangeable.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { T_INTN = 0x26, T_BITN = 0x68, T_FLTN = 0x6D, T_NVARCHAR = 0xE7, T_NCHAR = 0xEF,
       T_BIGVARBIN = 0xA5, T_BIGBINARY = 0xAD };

enum { K_NATIVE = 0, K_BYTELEN = 1, K_USHORT = 2 };

static uint16_t u16le(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

typedef struct {
    const unsigned char *meta; /* name length .. end of TYPE_INFO */
    Py_ssize_t meta_len;
    int type;                  /* the TYPE_INFO's type byte */
    int kind;                  /* K_NATIVE, or how a Python-decoded value is framed */
    PyObject *decoder;         /* kind != K_NATIVE: decoder(info, raw) -> value (borrowed) */
    PyObject *info;            /* its TypeInfo (borrowed) */
} param_layout;

/* A length-prefixed value decoded by the caller's Python function; NULL without an
 * exception set means "stop here" (a truncated value: the Python path reports it). */
static PyObject *decode_framed(const param_layout *L, const unsigned char *buf, Py_ssize_t n,
                               Py_ssize_t *pos) {
    Py_ssize_t p = *pos, len;
    if (L->kind == K_BYTELEN) {
        if (p >= n) return NULL;
        len = buf[p];
        p += 1;
        if (len == 0) { *pos = p; Py_RETURN_NONE; }
    } else {
        if (p + 2 > n) return NULL;
        len = u16le(buf + p);
        p += 2;
        if (len == 0xFFFF) { *pos = p; Py_RETURN_NONE; }
    }
    if (p + len > n) return NULL;
    PyObject *raw = PyBytes_FromStringAndSize((const char *)buf + p, len);
    if (!raw) return NULL;
    PyObject *value = PyObject_CallFunctionObjArgs(L->decoder, L->info, raw, NULL);
    Py_DECREF(raw);
    if (value) *pos = p + len;
    return value;
}


static int64_t int_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    if (n == 8) return (int64_t)v;
    uint64_t sign = (uint64_t)1 << (n * 8 - 1);
    return (int64_t)((v ^ sign) - sign);
}

/* Decode one value at buf[*pos]; NULL with no exception set means "stop here". */
static PyObject *decode_value(int type, const unsigned char *buf, Py_ssize_t n, Py_ssize_t *pos) {
    Py_ssize_t p = *pos;
    if (p >= n) return NULL;
    switch (type) {
    case T_INTN: {
        int len = buf[p];
        if (len == 0) { *pos = p + 1; Py_RETURN_NONE; }
        if ((len != 1 && len != 2 && len != 4 && len != 8) || p + 1 + len > n) return NULL;
        *pos = p + 1 + len;
        if (len == 1) return PyLong_FromLong(buf[p + 1]); /* tinyint is unsigned */
        return PyLong_FromLongLong(int_le(buf + p + 1, len));
    }
    case T_BITN: {
        int len = buf[p];
        if (len == 0) { *pos = p + 1; Py_RETURN_NONE; }
        if (len != 1 || p + 2 > n) return NULL;
        *pos = p + 2;
        return PyBool_FromLong(buf[p + 1] != 0);
    }
    case T_FLTN: {
        int len = buf[p];
        if (len == 0) { *pos = p + 1; Py_RETURN_NONE; }
        if (len == 8 && p + 9 <= n) {
            double d;
            uint64_t bits = (uint64_t)int_le(buf + p + 1, 8);
            memcpy(&d, &bits, 8);
            *pos = p + 9;
            return PyFloat_FromDouble(d);
        }
        if (len == 4 && p + 5 <= n) {
            float f;
            uint32_t bits = (uint32_t)(buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) |
                                       ((uint32_t)buf[p + 4] << 24));
            memcpy(&f, &bits, 4);
            *pos = p + 5;
            return PyFloat_FromDouble((double)f);
        }
        return NULL;
    }
    case T_NVARCHAR:
    case T_NCHAR:
    case T_BIGVARBIN:
    case T_BIGBINARY: {
        if (p + 2 > n) return NULL;
        uint16_t len = u16le(buf + p);
        if (len == 0xFFFF) { *pos = p + 2; Py_RETURN_NONE; }
        if (p + 2 + len > n) return NULL;
        *pos = p + 2 + len;
        if (type == T_BIGVARBIN || type == T_BIGBINARY)
            return PyBytes_FromStringAndSize((const char *)buf + p + 2, len);
        if (len % 2) return NULL; /* UTF-16 comes in pairs of bytes */
        int order = -1; /* little-endian */
        return PyUnicode_DecodeUTF16((const char *)buf + p + 2, len, "surrogatepass", &order);
    }
    default:
        return NULL;
    }
}

static int supported(int type) {
    return type == T_INTN || type == T_BITN || type == T_FLTN || type == T_NVARCHAR ||
           type == T_NCHAR || type == T_BIGVARBIN || type == T_BIGBINARY;
}

PyDoc_STRVAR(decode_run_doc,
"decode_run(payload, pos, header, metas, types, decoders, infos) -> (rows, end)\n\n"
"Decode the sp_execute calls that start at ``payload[pos]`` (at a batch separator)\n"
"while each repeats ``header`` (the call's bytes from its name length to its option\n"
"flags) and, per parameter, ``metas[i]`` (name length to the end of TYPE_INFO), for\n"
"parameter types ``types[i]``. ``decoders[i]`` is None for a type decoded here, or\n"
"``(kind, decoder)``: kind 1 for a 1-byte length prefix, 2 for a 2-byte one, and\n"
"``decoder(infos[i], raw)`` making the value. ``rows`` holds one tuple of values per\n"
"call, its first value being the first parameter (the handle). ``end`` is where\n"
"decoding stopped: at the separator before the first call not decoded, or at the end.");

static PyObject *decode_run(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *header_obj, *metas, *types, *decoders, *infos;
    if (!PyArg_ParseTuple(args, "y*nSOOOO", &view, &pos, &header_obj, &metas, &types,
                          &decoders, &infos))
        return NULL;
    PyObject *result = NULL, *rows = NULL;
    param_layout *layout = NULL;
    Py_ssize_t count = PySequence_Size(metas);
    if (count < 0 || count != PySequence_Size(types) || count > 2100 ||
        !PyList_Check(decoders) || !PyList_Check(infos) ||
        PyList_GET_SIZE(decoders) != count || PyList_GET_SIZE(infos) != count) {
        PyErr_SetString(PyExc_ValueError, "metas and types must be sequences of one length");
        goto done;
    }
    layout = PyMem_Calloc((size_t)(count ? count : 1), sizeof(param_layout));
    if (!layout) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *m = PySequence_GetItem(metas, i);
        PyObject *t = PySequence_GetItem(types, i);
        if (!m || !t || !PyBytes_Check(m)) {
            Py_XDECREF(m); Py_XDECREF(t);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "metas must be bytes");
            goto done;
        }
        layout[i].meta = (const unsigned char *)PyBytes_AS_STRING(m);
        layout[i].meta_len = PyBytes_GET_SIZE(m);
        layout[i].type = (int)PyLong_AsLong(t);
        /* metas stays alive in the caller's sequence for the whole call */
        Py_DECREF(m);
        Py_DECREF(t);
        if (PyErr_Occurred()) goto done;
        PyObject *d = PyList_GET_ITEM(decoders, i); /* borrowed; the list outlives us */
        if (d != Py_None) {
            PyObject *kind_obj, *fn;
            if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != 2) {
                PyErr_SetString(PyExc_TypeError, "decoders[i] must be None or (kind, fn)");
                goto done;
            }
            kind_obj = PyTuple_GET_ITEM(d, 0);
            fn = PyTuple_GET_ITEM(d, 1);
            layout[i].kind = (int)PyLong_AsLong(kind_obj);
            if (PyErr_Occurred()) goto done;
            if (layout[i].kind != K_BYTELEN && layout[i].kind != K_USHORT) {
                PyErr_SetString(PyExc_ValueError, "decoder kind must be 1 or 2");
                goto done;
            }
            layout[i].decoder = fn;
            layout[i].info = PyList_GET_ITEM(infos, i);
            continue;
        }
        layout[i].kind = K_NATIVE;
        if (!supported(layout[i].type)) { /* nothing to do: the caller decodes */
            result = Py_BuildValue("(Nn)", PyList_New(0), pos);
            goto done;
        }
    }
    const unsigned char *buf = view.buf;
    const unsigned char *header = (const unsigned char *)PyBytes_AS_STRING(header_obj);
    Py_ssize_t header_len = PyBytes_GET_SIZE(header_obj);
    Py_ssize_t n = view.len;
    rows = PyList_New(0);
    if (!rows) goto done;
    while (pos < n) {
        Py_ssize_t p = pos;
        if (buf[p] != 0xFF && buf[p] != 0x80) break; /* batch separator */
        p += 1;
        if (p + header_len > n || memcmp(buf + p, header, (size_t)header_len) != 0) break;
        p += header_len;
        PyObject *row = PyTuple_New(count);
        if (!row) goto done;
        int ok = 1;
        for (Py_ssize_t i = 0; i < count; i++) {
            const param_layout *L = &layout[i];
            if (p + L->meta_len > n || memcmp(buf + p, L->meta, (size_t)L->meta_len) != 0) {
                ok = 0;
                break;
            }
            p += L->meta_len;
            PyObject *value = L->kind == K_NATIVE ? decode_value(L->type, buf, n, &p)
                                                  : decode_framed(L, buf, n, &p);
            if (!value) { ok = 0; break; }
            PyTuple_SET_ITEM(row, i, value);
        }
        if (PyErr_Occurred()) { Py_DECREF(row); goto done; }
        if (!ok || (p < n && buf[p] != 0xFF && buf[p] != 0x80 && buf[p] != 0xFE)) {
            Py_DECREF(row); /* not this layout after all: the Python decoder takes it */
            break;
        }
        if (PyList_Append(rows, row) < 0) { Py_DECREF(row); goto done; }
        Py_DECREF(row);
        pos = p;
    }
    result = Py_BuildValue("(On)", rows, pos);
done:
    Py_XDECREF(rows);
    PyMem_Free(layout);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_run", decode_run, METH_VARARGS, decode_run_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tdsfast",
    "Native decoding of sp_execute parameter arrays for the emulator (see tdsfast.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tdsfast(void);
PyMODINIT_FUNC PyInit__tdsfast(void) { return PyModule_Create(&module); }
