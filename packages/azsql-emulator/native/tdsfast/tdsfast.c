/*
 * azsql_emulator._tdsfast: decode a run of sp_execute calls in an RPC request (MS-TDS 2.2.6.6).
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


/* ---------------------------------------------------------------------------------------
 * Column-wise decoding (decode_columns): the same walk over a run of sp_execute calls, but
 * the values go into one Arrow-layout buffer per parameter instead of Python objects, and
 * every value is validated as the Python decoder would (lengths, ranges, UTF-16).
 *
 *   INTN -> int64, BITN -> uint8 (0/1), FLTN -> double (real widened, as in Python),
 *   DECIMALN/NUMERICN -> 128-bit two's complement at the wire scale,
 *   DATEN -> int32 days since 1970-01-01, TIMEN -> int64 100 ns units since midnight,
 *   DATETIME2N -> int64 100 ns units since 1970-01-01 (every scale: exact),
 *   NVARCHAR/NCHAR -> UTF-8 data + int32 offsets + each
 *   value's UTF-16 length; BIGVARCHR/BIGCHAR -> the same, for ASCII text only (the
 *   caller makes sure the collation's code page maps ASCII bytes to themselves).
 *
 * A NULL writes a zero value and a 0 validity bit. The walk stops at the first call that
 * differs from the layout or holds a value it does not take exactly (a lone surrogate, a
 * decimal above 2**127, a bad length): the Python path decodes from there.
 * --------------------------------------------------------------------------------------- */

enum { T_DATEN = 0x28, T_TIMEN = 0x29, T_DATETIME2N = 0x2A, T_DECIMALN = 0x6A,
       T_NUMERICN = 0x6C, T_BIGVARCHR = 0xA7, T_BIGCHAR = 0xAF, T_GUID = 0x24,
       T_DATETIMEOFFSETN = 0x2B };

static const int TIME_SIZES[8] = {3, 3, 3, 4, 4, 5, 5, 5};
static const int64_t POW10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
#define DAYS_TO_1970 719162 /* days from 0001-01-01 to 1970-01-01 */
#define MAX_DAYS 3652059    /* date.max's day count + 1: the first day past 9999-12-31 */
#define DAY_HNS INT64_C(864000000000) /* 100 ns units in a day */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} growbuf;

static int gb_grow(growbuf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (!data) { PyErr_NoMemory(); return -1; }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Room for ``extra`` more bytes (not zeroed: every byte below ``len`` gets written). */
static inline int gb_reserve(growbuf *b, Py_ssize_t extra) {
    return b->len + extra <= b->cap ? 0 : gb_grow(b, extra);
}

static inline int gb_put(growbuf *b, const void *src, Py_ssize_t n) {
    if (gb_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

typedef struct {
    const unsigned char *meta;
    Py_ssize_t meta_len;
    int type, scale;
    int plp;          /* bulk-load rows: (max) values as PLP streams (see PLP_FLAG) */
    growbuf values;   /* fixed-width values, or UTF-8 text */
    growbuf offsets;  /* text: int32 offsets, one more than values */
    growbuf units;    /* text: int32 UTF-16 length of each value */
    growbuf validity; /* Arrow bitmap */
    Py_ssize_t nulls;
    int32_t max_units;
    /* the state before the call being decoded, to undo a call that stops half-way */
    Py_ssize_t saved_values, saved_offsets, saved_units, saved_nulls;
    int32_t saved_max_units;
} column;

/* decode_rows: a type OR-ed with this takes its values as PLP streams ((max) columns) */
#define PLP_FLAG 0x10000

static int columnar_type(int type) {
    return type == T_INTN || type == T_BITN || type == T_FLTN || type == T_NVARCHAR ||
           type == T_NCHAR || type == T_BIGVARCHR || type == T_BIGCHAR || type == T_DECIMALN || type == T_NUMERICN || type == T_DATEN ||
           type == T_TIMEN || type == T_DATETIME2N || type == T_GUID || type == T_BIGVARBIN || type == T_DATETIMEOFFSETN;
}

/* Columns kept as Arrow variable-size data (offsets + bytes): text as UTF-8, varbinary as
 * its bytes, uniqueidentifier as its 36-character text (DuckDB casts that to UUID). */
static int is_text(int type) {
    return type == T_NVARCHAR || type == T_NCHAR || type == T_BIGVARCHR || type == T_BIGCHAR ||
           type == T_GUID || type == T_BIGVARBIN;
}

/* UTF-16LE -> UTF-8; -1 on a lone surrogate (Python keeps it with surrogatepass, which
 * no Arrow string can hold: the Python path takes such a call). */
static int put_utf16(column *c, const unsigned char *s, Py_ssize_t units) {
    if (gb_reserve(&c->values, units * 3) < 0) return -2;
    unsigned char *out = (unsigned char *)c->values.data + c->values.len;
    Py_ssize_t k = 0, i = 0;
    /* ASCII runs four units at a time: the common case of names, codes and numbers
     * (the mask reads the units in place, so little-endian hosts only) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (i + 4 <= units) {
        uint64_t w;
        memcpy(&w, s + 2 * i, 8);
        if (w & UINT64_C(0xFF80FF80FF80FF80)) break;
        out[k] = s[2 * i];
        out[k + 1] = s[2 * i + 2];
        out[k + 2] = s[2 * i + 4];
        out[k + 3] = s[2 * i + 6];
        k += 4;
        i += 4;
    }
#endif
    for (; i < units; i++) {
        uint32_t u = u16le(s + 2 * i);
        if (u < 0x80) { out[k++] = (unsigned char)u; continue; }
        if (u < 0x800) {
            out[k++] = (unsigned char)(0xC0 | (u >> 6));
            out[k++] = (unsigned char)(0x80 | (u & 0x3F));
            continue;
        }
        if (u >= 0xD800 && u <= 0xDFFF) {
            if (u >= 0xDC00 || i + 1 >= units) return -1;
            uint32_t lo = u16le(s + 2 * (i + 1));
            if (lo < 0xDC00 || lo > 0xDFFF) return -1;
            uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i++;
            out[k++] = (unsigned char)(0xF0 | (cp >> 18));
            out[k++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            out[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            out[k++] = (unsigned char)(0x80 | (cp & 0x3F));
            continue;
        }
        out[k++] = (unsigned char)(0xE0 | (u >> 12));
        out[k++] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        out[k++] = (unsigned char)(0x80 | (u & 0x3F));
    }
    c->values.len += k;
    return 0;
}

/* 1 = decoded, 0 = stop here, -1 = error set */
static int column_value(column *c, Py_ssize_t row, const unsigned char *buf, Py_ssize_t n,
                        Py_ssize_t *pos) {
    Py_ssize_t p = *pos;
    int is_null = 0;
    if (p >= n) return 0;
    switch (c->type) {
    case T_GUID: {
        /* 1-byte length (0 = NULL); Data1-3 little-endian, Data4 as sent */
        static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        static const char hex[] = "0123456789abcdef";
        int len = buf[p];
        p += 1;
        if (len == 0) {
            is_null = 1;
        } else {
            if (len != 16 || p + 16 > n) return 0;
            char text[36];
            int k = 0;
            for (int i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10) text[k++] = '-';
                unsigned char b = buf[p + order[i]];
                text[k++] = hex[b >> 4];
                text[k++] = hex[b & 15];
            }
            if (gb_put(&c->values, text, 36) < 0) return -1;
            p += 16;
        }
        if (c->values.len > INT32_MAX) return 0;
        int32_t off = (int32_t)c->values.len, units = is_null ? 0 : 36;
        if (gb_put(&c->offsets, &off, 4) < 0 || gb_put(&c->units, &units, 4) < 0) return -1;
        if (units > c->max_units) c->max_units = units;
        break;
    }
    case T_BIGVARBIN:
    case T_BIGVARCHR:
    case T_BIGCHAR:
    case T_NVARCHAR:
    case T_NCHAR: {
        const unsigned char *data = NULL;
        Py_ssize_t len = 0;
        unsigned char *joined = NULL; /* a PLP value in several chunks, put together */
        if (c->plp) {
            /* PLP: u64 total length (~0 = NULL, ~1 = unknown), then chunks of u32 length
             * + bytes, ended by a zero-length chunk */
            if (p + 8 > n) return 0;
            uint64_t total = (uint64_t)int_le(buf + p, 8);
            p += 8;
            if (total == UINT64_MAX) {
                is_null = 1;
            } else {
                Py_ssize_t q = p, sum = 0, chunks = 0, first = p + 4;
                for (;;) {
                    if (q + 4 > n) return 0;
                    uint32_t size = (uint32_t)int_le(buf + q, 4);
                    q += 4;
                    if (size == 0) break;
                    if ((Py_ssize_t)size > n - q || sum > INT32_MAX) return 0;
                    sum += size;
                    q += size;
                    chunks++;
                }
                if (total != UINT64_MAX - 1 && total != (uint64_t)sum) return 0;
                if (chunks > 1) {
                    joined = PyMem_Malloc((size_t)sum);
                    if (!joined) { PyErr_NoMemory(); return -1; }
                    Py_ssize_t at = p, k = 0;
                    for (;;) {
                        uint32_t size = (uint32_t)int_le(buf + at, 4);
                        at += 4;
                        if (size == 0) break;
                        memcpy(joined + k, buf + at, size);
                        k += size;
                        at += size;
                    }
                    data = joined;
                } else {
                    data = buf + first;
                }
                len = sum;
                p = q;
            }
        } else {
            if (p + 2 > n) return 0;
            uint16_t ulen = u16le(buf + p);
            p += 2;
            if (ulen == 0xFFFF) {
                is_null = 1;
            } else {
                if (p + ulen > n) return 0;
                data = buf + p;
                len = ulen;
                p += ulen;
            }
        }
        int32_t units = 0;
        int wide = c->type == T_NVARCHAR || c->type == T_NCHAR;
        int r = 1;
        if (!is_null) {
            if (wide) {
                if (len % 2) {
                    r = 0;
                } else {
                    int put = put_utf16(c, data, len / 2);
                    r = put == -2 ? -1 : put < 0 ? 0 : 1;
                    units = (int32_t)(len / 2);
                }
            } else {
                if (c->type != T_BIGVARBIN)
                    for (Py_ssize_t i = 0; i < len && r == 1; i++)
                        if (data[i] >= 0x80) r = 0; /* code-page text: Python decodes it */
                if (r == 1 && gb_put(&c->values, data, len) < 0) r = -1;
                units = (int32_t)len;
            }
        }
        PyMem_Free(joined);
        if (r != 1) return r;
        if (c->values.len > INT32_MAX) return 0;
        int32_t off = (int32_t)c->values.len;
        if (gb_put(&c->offsets, &off, 4) < 0 || gb_put(&c->units, &units, 4) < 0) return -1;
        if (units > c->max_units) c->max_units = units;
        break;
    }
    default: {
        int len = buf[p];
        p += 1;
        unsigned char out[16];
        int width = 8;
        memset(out, 0, sizeof out);
        if (len == 0) {
            is_null = 1;
            if (c->type == T_BITN) width = 1;
            else if (c->type == T_DATEN) width = 4;
            else if (c->type == T_DECIMALN || c->type == T_NUMERICN ||
                     c->type == T_DATETIMEOFFSETN) width = 16;
        } else {
            if (p + len > n) return 0;
            const unsigned char *v = buf + p;
            p += len;
            switch (c->type) {
            case T_INTN: {
                if (len != 1 && len != 2 && len != 4 && len != 8) return 0;
                int64_t x = len == 1 ? (int64_t)v[0] : int_le(v, len); /* tinyint: unsigned */
                memcpy(out, &x, 8);
                break;
            }
            case T_BITN:
                if (len != 1) return 0;
                out[0] = v[0] != 0;
                width = 1;
                break;
            case T_FLTN: {
                double d;
                if (len == 8) {
                    uint64_t bits = (uint64_t)int_le(v, 8);
                    memcpy(&d, &bits, 8);
                } else if (len == 4) {
                    float f;
                    uint32_t bits = (uint32_t)(v[0] | (v[1] << 8) | (v[2] << 16) |
                                               ((uint32_t)v[3] << 24));
                    memcpy(&f, &bits, 4);
                    d = (double)f;
                } else {
                    return 0;
                }
                memcpy(out, &d, 8);
                break;
            }
            case T_DECIMALN:
            case T_NUMERICN: {
                if (len != 5 && len != 9 && len != 13 && len != 17) return 0;
                unsigned __int128 m = 0;
                for (int i = len - 1; i >= 1; i--) m = (m << 8) | v[i];
                if (m >> 127) return 0; /* beyond a signed 128-bit value */
                __int128 x = v[0] ? (__int128)m : -(__int128)m;
                memcpy(out, &x, 16);
                width = 16;
                break;
            }
            case T_DATEN: {
                if (len != 3) return 0;
                int32_t days = (int32_t)(v[0] | (v[1] << 8) | (v[2] << 16));
                if (days >= MAX_DAYS) return 0;
                int32_t x = days - DAYS_TO_1970;
                memcpy(out, &x, 4);
                width = 4;
                break;
            }
            case T_TIMEN:
            case T_DATETIME2N: {
                int tlen = TIME_SIZES[c->scale];
                if (len != tlen + (c->type == T_DATETIME2N ? 3 : 0)) return 0;
                int64_t ticks = 0;
                for (int i = tlen - 1; i >= 0; i--) ticks = (ticks << 8) | v[i];
                if (ticks >= INT64_C(86400) * POW10[c->scale]) return 0;
                int64_t hns = ticks * POW10[7 - c->scale];
                if (c->type == T_DATETIME2N) {
                    int64_t days = v[tlen] | (v[tlen + 1] << 8) | (v[tlen + 2] << 16);
                    if (days >= MAX_DAYS) return 0;
                    hns += (days - DAYS_TO_1970) * DAY_HNS;
                }
                memcpy(out, &hns, 8);
                break;
            }
            case T_DATETIMEOFFSETN: {
                /* the UTC instant as int64 100 ns units since 1970, then the int16 offset
                 * in minutes; both the instant and the local time within 0001-9999 */
                int tlen = TIME_SIZES[c->scale];
                if (len != tlen + 5) return 0;
                int64_t ticks = 0;
                for (int i = tlen - 1; i >= 0; i--) ticks = (ticks << 8) | v[i];
                if (ticks >= INT64_C(86400) * POW10[c->scale]) return 0;
                int64_t days = v[tlen] | (v[tlen + 1] << 8) | (v[tlen + 2] << 16);
                int16_t offset = (int16_t)(v[tlen + 3] | (v[tlen + 4] << 8));
                if (days >= MAX_DAYS || offset < -840 || offset > 840) return 0;
                int64_t utc = days * DAY_HNS + ticks * POW10[7 - c->scale];
                int64_t local = utc + (int64_t)offset * INT64_C(600000000);
                if (local < 0 || local >= (int64_t)MAX_DAYS * DAY_HNS) return 0;
                int64_t since_1970 = utc - (int64_t)DAYS_TO_1970 * DAY_HNS;
                memcpy(out, &since_1970, 8);
                memcpy(out + 8, &offset, 2);
                width = 16;
                break;
            }
            default:
                return 0;
            }
        }
        if (gb_put(&c->values, out, width) < 0) return -1;
        break;
    }
    }
    if (c->validity.len <= row / 8) { /* rows come one by one: a new byte, zeroed */
        if (gb_reserve(&c->validity, 1) < 0) return -1;
        c->validity.data[c->validity.len++] = 0;
    }
    if (is_null) {
        c->validity.data[row / 8] &= (char)~(1 << (row % 8));
        c->nulls++;
    } else {
        c->validity.data[row / 8] |= (char)(1 << (row % 8));
    }
    *pos = p;
    return 1;
}

static PyObject *gb_bytes(const growbuf *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", b->len);
}

PyDoc_STRVAR(decode_columns_doc,
"decode_columns(payload, pos, first, header, metas, types, scales) -> (count, end, columns)\n\n"
"Decode, column by column, the sp_execute calls from ``payload[pos]`` (the first call's\n"
"start when ``first``, else a batch separator) while each repeats ``header`` and\n"
"``metas`` (as for decode_run). ``columns`` has per parameter a tuple\n"
"``(values, validity, nulls, offsets, units, max_units)``: Arrow buffers as bytes (see\n"
"tdsfast.c for each type's layout); offsets/units are None except for text. ``count``\n"
"is 0 (and columns empty) when a type is not decoded column-wise.");

/* Set up ``count`` columns from the types and scales sequences (and the metas, when not
 * NULL). 1 = ready, 0 = a type is not decoded column-wise, -1 = error set. */
static int columns_init(column *columns, Py_ssize_t count, PyObject *metas, PyObject *types,
                        PyObject *scales) {
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *m = metas ? PySequence_GetItem(metas, i) : NULL;
        PyObject *t = PySequence_GetItem(types, i);
        PyObject *s = PySequence_GetItem(scales, i);
        if ((metas && (!m || !PyBytes_Check(m))) || !t || !s) {
            Py_XDECREF(m); Py_XDECREF(t); Py_XDECREF(s);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "metas must be bytes");
            return -1;
        }
        if (m) {
            columns[i].meta = (const unsigned char *)PyBytes_AS_STRING(m);
            columns[i].meta_len = PyBytes_GET_SIZE(m);
        }
        columns[i].type = (int)PyLong_AsLong(t);
        columns[i].scale = (int)PyLong_AsLong(s);
        if (!metas && (columns[i].type & PLP_FLAG)) { /* bulk-load rows only */
            columns[i].type &= ~PLP_FLAG;
            columns[i].plp = 1;
            if (columns[i].type != T_NVARCHAR && columns[i].type != T_BIGVARCHR &&
                columns[i].type != T_BIGVARBIN) {
                Py_XDECREF(m); Py_DECREF(t); Py_DECREF(s);
                return 0;
            }
        }
        Py_XDECREF(m); /* metas stays alive in the caller's sequence for the whole call */
        Py_DECREF(t);
        Py_DECREF(s);
        if (PyErr_Occurred()) return -1;
        int temporal = columns[i].type == T_TIMEN || columns[i].type == T_DATETIME2N ||
                       columns[i].type == T_DATETIMEOFFSETN;
        if (!columnar_type(columns[i].type) || columns[i].scale < 0 ||
            columns[i].scale > (temporal ? 7 : 38))
            return 0;
        if (is_text(columns[i].type) && gb_put(&columns[i].offsets, &(int32_t){0}, 4) < 0)
            return -1;
    }
    return 1;
}

static void columns_save(column *columns, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        column *c = &columns[i];
        c->saved_values = c->values.len;
        c->saved_offsets = c->offsets.len;
        c->saved_units = c->units.len;
        c->saved_nulls = c->nulls;
        c->saved_max_units = c->max_units;
    }
}

/* Undo the half-decoded row or call: the Python decoder takes it. */
static void columns_restore(column *columns, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        column *c = &columns[i];
        c->values.len = c->saved_values;
        c->offsets.len = c->saved_offsets;
        c->units.len = c->saved_units;
        c->nulls = c->saved_nulls;
        c->max_units = c->saved_max_units;
    }
}

/* (rows, pos, [per column (values, validity, nulls, offsets, units, max_units)]) */
static PyObject *columns_result(column *columns, Py_ssize_t count, Py_ssize_t rows,
                                Py_ssize_t pos) {
    PyObject *cols = PyList_New(count);
    if (!cols) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        column *c = &columns[i];
        Py_ssize_t bitmap = (rows + 7) / 8;
        if (c->validity.len > bitmap) c->validity.len = bitmap; /* an undone row's byte */
        if (bitmap && rows % 8) /* bits past the last row are zero, as Arrow expects */
            c->validity.data[bitmap - 1] &= (char)((1 << (rows % 8)) - 1);
        PyObject *item = is_text(c->type)
            ? Py_BuildValue("(NNnNNi)", gb_bytes(&c->values), gb_bytes(&c->validity), c->nulls,
                            gb_bytes(&c->offsets), gb_bytes(&c->units), (int)c->max_units)
            : Py_BuildValue("(NNnOOi)", gb_bytes(&c->values), gb_bytes(&c->validity), c->nulls,
                            Py_None, Py_None, 0);
        if (!item) { Py_DECREF(cols); return NULL; }
        PyList_SET_ITEM(cols, i, item);
    }
    PyObject *result = Py_BuildValue("(nnO)", rows, pos, cols);
    Py_DECREF(cols);
    return result;
}

static void columns_free(column *columns, Py_ssize_t count) {
    if (!columns) return;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyMem_Free(columns[i].values.data);
        PyMem_Free(columns[i].offsets.data);
        PyMem_Free(columns[i].units.data);
        PyMem_Free(columns[i].validity.data);
    }
    PyMem_Free(columns);
}

static PyObject *decode_columns(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t pos;
    int first;
    PyObject *header_obj, *metas, *types, *scales;
    if (!PyArg_ParseTuple(args, "y*npSOOO", &view, &pos, &first, &header_obj, &metas, &types,
                          &scales))
        return NULL;
    PyObject *result = NULL;
    column *columns = NULL;
    Py_ssize_t count = PySequence_Size(metas), rows = 0;
    if (count < 0 || count != PySequence_Size(types) || count != PySequence_Size(scales) ||
        count > 2100) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "metas, types and scales must have one length");
        goto done;
    }
    columns = PyMem_Calloc((size_t)(count ? count : 1), sizeof(column));
    if (!columns) { PyErr_NoMemory(); goto done; }
    int ready = columns_init(columns, count, metas, types, scales);
    if (ready < 0) goto done;
    if (ready == 0) {
        result = Py_BuildValue("(n n [])", (Py_ssize_t)0, pos);
        goto done;
    }
    const unsigned char *buf = view.buf;
    const unsigned char *header = (const unsigned char *)PyBytes_AS_STRING(header_obj);
    Py_ssize_t header_len = PyBytes_GET_SIZE(header_obj);
    Py_ssize_t n = view.len;
    int at_first = first;
    while (pos < n) {
        Py_ssize_t p = pos;
        if (!at_first) {
            if (buf[p] != 0xFF && buf[p] != 0x80) break; /* batch separator */
            p += 1;
        }
        if (p + header_len > n || memcmp(buf + p, header, (size_t)header_len) != 0) break;
        p += header_len;
        columns_save(columns, count);
        int ok = 1;
        for (Py_ssize_t i = 0; i < count && ok; i++) {
            column *c = &columns[i];
            if (p + c->meta_len > n || memcmp(buf + p, c->meta, (size_t)c->meta_len) != 0) {
                ok = 0;
                break;
            }
            p += c->meta_len;
            int r = column_value(c, rows, buf, n, &p);
            if (r < 0) goto done;
            ok = r;
        }
        if (ok && p < n && buf[p] != 0xFF && buf[p] != 0x80 && buf[p] != 0xFE) ok = 0;
        if (!ok) {
            columns_restore(columns, count);
            break;
        }
        rows++;
        at_first = 0;
        pos = p;
    }
    result = columns_result(columns, count, rows, pos);
done:
    columns_free(columns, count);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(decode_rows_doc,
"decode_rows(payload, pos, types, scales) -> (count, end, columns)\n\n"
"Decode, column by column, the ROW tokens (0xD1) of a bulk load from ``payload[pos]``:\n"
"each holds one value per column, encoded as for decode_columns, with no per-value\n"
"metadata; a type OR-ed with PLP_FLAG (nvarchar, varchar, varbinary) takes PLP streams,\n"
"the (max) types. Stops at the first other token, or before the first row holding a value it\n"
"does not take exactly (``end`` is then that row's offset). ``columns`` as for\n"
"decode_columns; ``count`` is 0 (and columns empty) when a type is not decoded here.");

static PyObject *decode_rows(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *types, *scales;
    if (!PyArg_ParseTuple(args, "y*nOO", &view, &pos, &types, &scales)) return NULL;
    PyObject *result = NULL;
    column *columns = NULL;
    Py_ssize_t count = PySequence_Size(types), rows = 0;
    if (count < 0 || count != PySequence_Size(scales) || count > 4096) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "types and scales must have one length");
        goto done;
    }
    columns = PyMem_Calloc((size_t)(count ? count : 1), sizeof(column));
    if (!columns) { PyErr_NoMemory(); goto done; }
    int ready = columns_init(columns, count, NULL, types, scales);
    if (ready < 0) goto done;
    if (ready == 0) {
        result = Py_BuildValue("(n n [])", (Py_ssize_t)0, pos);
        goto done;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t n = view.len;
    while (pos < n && buf[pos] == 0xD1) {
        Py_ssize_t p = pos + 1;
        columns_save(columns, count);
        int ok = 1;
        for (Py_ssize_t i = 0; i < count && ok; i++) {
            int r = column_value(&columns[i], rows, buf, n, &p);
            if (r < 0) goto done;
            ok = r;
        }
        if (!ok) {
            columns_restore(columns, count);
            break;
        }
        rows++;
        pos = p;
    }
    result = columns_result(columns, count, rows, pos);
done:
    columns_free(columns, count);
    PyBuffer_Release(&view);
    return result;
}

/* ---------------------------------------------------------------------------------------
 * Decimal conversions for column-wise inserts, as checks._make_decimal does them:
 * ROUND_HALF_UP to the column's scale, then |value| < 10**(precision - scale). They
 * return None when any value is not decided exactly here (the caller then runs row by
 * row, where the error, if any, is raised).
 * --------------------------------------------------------------------------------------- */

static __int128 pow10_128(int k) {
    __int128 r = 1;
    while (k-- > 0) r *= 10;
    return r;
}

/* value * 10**(to - from), rounded half away from zero; 0 when out of range */
static int rescale_one(__int128 v, int from, int to, __int128 limit, __int128 *out) {
    int neg = v < 0;
    unsigned __int128 m = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    if (to >= from) {
        unsigned __int128 f = (unsigned __int128)pow10_128(to - from);
        if (m != 0 && m > ((unsigned __int128)limit) / f) return 0;
        m *= f;
    } else {
        unsigned __int128 f = (unsigned __int128)pow10_128(from - to);
        unsigned __int128 q = m / f, r = m % f;
        if (r * 2 >= f) q += 1;
        m = q;
    }
    if (m >= (unsigned __int128)limit) return 0;
    *out = neg ? -(__int128)m : (__int128)m;
    return 1;
}

PyDoc_STRVAR(rescale_decimals_doc,
"rescale_decimals(values, validity, from_scale, precision, scale) -> bytes | None\n\n"
"128-bit decimals at ``from_scale`` rounded half-up to ``scale`` (decimal(precision,\n"
"scale)); None when a non-NULL value does not fit.");

static PyObject *rescale_decimals(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer values, validity;
    int from, precision, scale;
    if (!PyArg_ParseTuple(args, "y*y*iii", &values, &validity, &from, &precision, &scale))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t rows = values.len / 16;
    if (precision < 1 || precision > 38 || scale < 0 || scale > precision || from < 0 ||
        from > 38 || values.len % 16 || validity.len < (rows + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "bad decimal buffers or precision/scale");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, values.len);
    if (!out) goto done;
    char *dst = PyBytes_AS_STRING(out);
    const unsigned char *bits = validity.buf;
    __int128 limit = pow10_128(precision);
    for (Py_ssize_t i = 0; i < rows; i++) {
        __int128 v, r = 0;
        memcpy(&v, (const char *)values.buf + 16 * i, 16);
        if ((bits[i / 8] >> (i % 8)) & 1) {
            if (!rescale_one(v, from, scale, limit, &r)) {
                Py_DECREF(out);
                out = Py_None;
                Py_INCREF(out);
                goto done;
            }
        }
        memcpy(dst + 16 * i, &r, 16);
    }
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&validity);
    return out;
}

/* Parse "  [+-]digits[.digits]  " (ASCII, at least one digit); 0 for anything else,
 * which the caller leaves to Python's Decimal (exponents, other blanks, other digits). */
static int parse_decimal_text(const unsigned char *s, Py_ssize_t len, int scale,
                              __int128 limit, __int128 *out) {
    Py_ssize_t i = 0, end = len;
    while (i < end && s[i] == ' ') i++;
    while (end > i && s[end - 1] == ' ') end--;
    int neg = 0;
    if (i < end && (s[i] == '+' || s[i] == '-')) { neg = s[i] == '-'; i++; }
    unsigned __int128 m = 0;
    int digits = 0, frac = 0, dot = 0, round_up = 0;
    /* m * 10 + 9 stays below 2**128, and m >= cap means m * 10 >= limit already */
    const unsigned __int128 cap = ((unsigned __int128)limit + 9) / 10;
    for (; i < end; i++) {
        unsigned char ch = s[i];
        if (ch == '.') {
            if (dot) return 0;
            dot = 1;
            continue;
        }
        if (ch < '0' || ch > '9') return 0;
        digits++;
        if (dot && frac >= scale) { /* a digit past the column's scale */
            if (frac == scale) round_up = ch >= '5';
            frac++;
            continue;
        }
        if (m >= cap) return 0; /* out of range whatever follows (the caller's error) */
        m = m * 10 + (ch - '0');
        if (dot) frac++;
    }
    if (!digits) return 0;
    int kept = frac < scale ? frac : scale;
    m *= (unsigned __int128)pow10_128(scale - kept);
    if (round_up) m += 1;
    if (m >= (unsigned __int128)limit) return 0;
    *out = neg ? -(__int128)m : (__int128)m;
    return 1;
}

PyDoc_STRVAR(text_decimals_doc,
"text_decimals(offsets, data, validity, precision, scale) -> bytes | None\n\n"
"UTF-8 texts (Arrow string buffers) as 128-bit decimal(precision, scale) values, rounded\n"
"half-up; None when a non-NULL text is not plain decimal digits or does not fit.");

static PyObject *text_decimals(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer offsets, data, validity;
    int precision, scale;
    if (!PyArg_ParseTuple(args, "y*y*y*ii", &offsets, &data, &validity, &precision, &scale))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t rows = offsets.len / 4 - 1;
    if (precision < 1 || precision > 38 || scale < 0 || scale > precision || rows < 0 ||
        offsets.len % 4 || validity.len < (rows + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "bad string buffers or precision/scale");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, rows * 16);
    if (!out) goto done;
    char *dst = PyBytes_AS_STRING(out);
    const int32_t *off = offsets.buf;
    const unsigned char *bits = validity.buf, *text = data.buf;
    __int128 limit = pow10_128(precision - scale);
    limit *= pow10_128(scale);
    for (Py_ssize_t i = 0; i < rows; i++) {
        __int128 r = 0;
        if ((bits[i / 8] >> (i % 8)) & 1) {
            if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > data.len ||
                !parse_decimal_text(text + off[i], off[i + 1] - off[i], scale, limit, &r)) {
                Py_DECREF(out);
                out = Py_None;
                Py_INCREF(out);
                goto done;
            }
        }
        memcpy(dst + 16 * i, &r, 16);
    }
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&validity);
    return out;
}

static PyMethodDef methods[] = {
    {"decode_run", decode_run, METH_VARARGS, decode_run_doc},
    {"decode_columns", decode_columns, METH_VARARGS, decode_columns_doc},
    {"decode_rows", decode_rows, METH_VARARGS, decode_rows_doc},
    {"rescale_decimals", rescale_decimals, METH_VARARGS, rescale_decimals_doc},
    {"text_decimals", text_decimals, METH_VARARGS, text_decimals_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tdsfast",
    "Native decoding of sp_execute parameter arrays and bulk-load rows for the emulator "
    "(see tdsfast.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tdsfast(void);
PyMODINIT_FUNC PyInit__tdsfast(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "PLP_FLAG", PLP_FLAG) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
