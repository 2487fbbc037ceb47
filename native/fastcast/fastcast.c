/*
 * engine._fastcast: decimal128 values as plain positional text, for binding.
 *
 * turbodbc binds no decimals, so the engine sends them as text the server parses into
 * the decimal column (engine/bind_casts.py). Arrow's own decimal-to-string cast writes
 * small values in scientific notation (1E-10), so the Python path builds the text from
 * the unscaled digits with eight compute passes; it was the largest part of the engine's
 * casting cost on decimal-heavy tables. This module writes the same text in one pass.
 *
 * decimal128_text(data, offset, length, scale) -> (offsets, chars)
 *
 *   data:   the array's value buffer (16-byte little-endian two's complement integers);
 *   offset: the array's offset into it, in values; length: how many values;
 *   scale:  digits after the point (0..38).
 *
 * Returns the int32 offsets (length + 1 of them) and the UTF-8 characters of a string
 * array: "-12.3400", "0.0001", "-5" for scale 0. The caller supplies the validity bitmap;
 * the text of a null slot is whatever its bytes hold, which the bitmap hides. The output
 * matches bind_casts._decimal_text's Python path character for character (tested).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

#define TEN19 10000000000000000000ULL /* 10^19, the largest power of ten in a uint64 */
#define MAX_TEXT 42                   /* sign + 39 digits + point + one leading zero */

/* Write the decimal digits of v, most significant first, into out; returns the count. */
static int u64_digits(uint64_t v, char *out) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* One value's text into out (at least MAX_TEXT bytes); returns its length. */
static int decimal_text(const unsigned char *p, int scale, char *out) {
    uint64_t lo, hi;
    memcpy(&lo, p, 8); /* little-endian host (x86-64, aarch64): checked at import */
    memcpy(&hi, p + 8, 8);
    u128 v = ((u128)hi << 64) | lo;
    int negative = (hi >> 63) != 0;
    u128 mag = negative ? (u128)0 - v : v;

    char digits[40];
    int n;
    if ((mag >> 64) == 0) {
        n = u64_digits((uint64_t)mag, digits);
    } else { /* |v| < 10^38 for decimal(38): high part < 10^19 fits a uint64 */
        uint64_t high = (uint64_t)(mag / TEN19);
        uint64_t low = (uint64_t)(mag % TEN19);
        n = u64_digits(high, digits);
        char tail[20];
        int m = u64_digits(low, tail);
        memset(digits + n, '0', (size_t)(19 - m));
        memcpy(digits + n + 19 - m, tail, (size_t)m);
        n += 19;
    }
    int len = 0;
    if (negative) out[len++] = '-';
    if (scale == 0) {
        memcpy(out + len, digits, (size_t)n);
        return len + n;
    }
    if (n <= scale) { /* |value| < 1: "0." then the fraction's leading zeros */
        out[len++] = '0';
        out[len++] = '.';
        memset(out + len, '0', (size_t)(scale - n));
        len += scale - n;
        memcpy(out + len, digits, (size_t)n);
        return len + n;
    }
    int whole = n - scale;
    memcpy(out + len, digits, (size_t)whole);
    len += whole;
    out[len++] = '.';
    memcpy(out + len, digits + whole, (size_t)scale);
    return len + scale;
}

static PyObject *decimal128_text(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    Py_ssize_t offset, length;
    int scale;
    if (!PyArg_ParseTuple(args, "y*nni", &data, &offset, &length, &scale)) return NULL;
    PyObject *result = NULL, *offsets = NULL, *chars = NULL;
    if (offset < 0 || length < 0 || scale < 0 || scale > 38 ||
        (offset + length) > data.len / 16) {
        PyErr_SetString(PyExc_ValueError, "decimal128_text: offset, length or scale out of range");
        goto done;
    }
    if (length * (Py_ssize_t)MAX_TEXT > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "decimal128_text: too many values for int32 offsets");
        goto done;
    }
    offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    chars = PyBytes_FromStringAndSize(NULL, length * MAX_TEXT);
    if (!offsets || !chars) goto done;
    {
        int32_t *off = (int32_t *)PyBytes_AS_STRING(offsets);
        char *out = PyBytes_AS_STRING(chars);
        const unsigned char *values = (const unsigned char *)data.buf + offset * 16;
        int32_t pos = 0;
        off[0] = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < length; i++) {
            pos += decimal_text(values + i * 16, scale, out + pos);
            off[i + 1] = pos;
        }
        Py_END_ALLOW_THREADS
        if (_PyBytes_Resize(&chars, pos) < 0) goto done;
    }
    result = PyTuple_Pack(2, offsets, chars);
done:
    Py_XDECREF(offsets);
    Py_XDECREF(chars);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"decimal128_text", decimal128_text, METH_VARARGS,
     "decimal128_text(data, offset, length, scale) -> (int32 offsets, utf-8 chars)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastcast",
    "Vectorised casts for binding (see native/fastcast/fastcast.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastcast(void);
PyMODINIT_FUNC PyInit__fastcast(void) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "_fastcast assumes a little-endian host");
        return NULL;
    }
    return PyModule_Create(&module);
}
