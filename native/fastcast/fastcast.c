/*
 * engine._fastcast: decimal128 values and timestamps as text, for binding.
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

/* -- timestamps ------------------------------------------------------------------------ */

#define SECONDS_PER_DAY 86400LL
#define MIN_SECONDS (-62135596800LL) /* 0001-01-01 00:00:00 since the Unix epoch */
#define MAX_SECONDS 253402300799LL   /* 9999-12-31 23:59:59 */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Gregorian year/month/day of a day count since 1970-01-01 (proleptic calendar; the era
 * arithmetic works in 400-year cycles of 146,097 days starting on March 1st). */
static void civil(int64_t days, int *year, int *month, int *day) {
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                    /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                  /* March = 0 */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

static void put2(char *out, int v) {
    out[0] = (char)('0' + v / 10);
    out[1] = (char)('0' + v % 10);
}

static const int64_t POW10[] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL,
                                10000000LL, 100000000LL, 1000000000LL};

/* timestamp_text(data, validity, offset, length, unit_digits, scale, aware)
 *
 * int64 ticks of 10^-unit_digits s (0, 3, 6, 9) as 'YYYY-MM-DD HH:MM:SS[.f...]' with
 * min(scale, unit_digits) fraction digits, rounded half up to `scale` digits and capped at
 * 9999-12-31 23:59:59 plus the largest fraction (bind_casts._timestamp_text's rules), with
 * ' +00:00' after it when `aware`. Null slots (validity bit 0) get empty text. Returns
 * None when a valid value lies outside years 1-9999 before rounding: the caller's compute
 * path then decides (and reports) those. */
static PyObject *timestamp_text(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, validity = {0};
    PyObject *validity_obj;
    Py_ssize_t offset, length;
    int unit_digits, scale, aware;
    if (!PyArg_ParseTuple(args, "y*Onniip", &data, &validity_obj, &offset, &length,
                          &unit_digits, &scale, &aware))
        return NULL;
    PyObject *result = NULL, *offsets = NULL, *chars = NULL;
    int have_validity = validity_obj != Py_None;
    if (have_validity && PyObject_GetBuffer(validity_obj, &validity, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (offset < 0 || length < 0 || (offset + length) > data.len / 8 || scale < 0 ||
        (unit_digits != 0 && unit_digits != 3 && unit_digits != 6 && unit_digits != 9) ||
        (have_validity && (offset + length + 7) / 8 > validity.len)) {
        PyErr_SetString(PyExc_ValueError, "timestamp_text: arguments out of range");
        goto done;
    }
    const int keep = scale < unit_digits ? scale : unit_digits;
    const int width = 19 + (keep ? keep + 1 : 0) + (aware ? 7 : 0);
    if (length * (Py_ssize_t)width > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "timestamp_text: too many values for int32 offsets");
        goto done;
    }
    offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    chars = PyBytes_FromStringAndSize(NULL, length * width);
    if (!offsets || !chars) goto done;
    {
        const int64_t per_second = POW10[unit_digits];
        const int drop = unit_digits - scale;
        const int64_t step = drop > 0 ? POW10[drop] : 1;
        /* years 1 and 9999 in ticks, clamped to int64 (nanoseconds cover 1677-2262 only) */
        const int64_t upper = MAX_SECONDS < INT64_MAX / per_second - 1
                                  ? MAX_SECONDS * per_second + per_second - 1 : INT64_MAX;
        const int64_t cap = upper - upper % step;
        const int64_t low = MIN_SECONDS > INT64_MIN / per_second ? MIN_SECONDS * per_second
                                                                 : INT64_MIN;
        /* rounding adds step / 2: the compute path refuses what would overflow */
        const int64_t high = upper < INT64_MAX - step / 2 ? upper : INT64_MAX - step / 2;
        const unsigned char *bits = have_validity ? (const unsigned char *)validity.buf : NULL;
        int32_t *off = (int32_t *)PyBytes_AS_STRING(offsets);
        char *out = PyBytes_AS_STRING(chars);
        int32_t pos = 0;
        int outside = 0;
        off[0] = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < length && !outside; i++) {
            Py_ssize_t k = offset + i;
            if (bits && !(bits[k >> 3] & (1u << (k & 7)))) {
                off[i + 1] = pos;
                continue;
            }
            int64_t t;
            memcpy(&t, (const char *)data.buf + k * 8, 8);
            if (t < low || t > high) {
                outside = 1;
                break;
            }
            if (drop > 0) {
                t = floor_div(t + step / 2, step) * step;
                if (t > cap) t = cap;
            }
            int64_t secs = floor_div(t, per_second);
            int64_t frac = t - secs * per_second;
            int64_t days = floor_div(secs, SECONDS_PER_DAY);
            int64_t sod = secs - days * SECONDS_PER_DAY;
            int year, month, day;
            civil(days, &year, &month, &day);
            char *o = out + pos;
            put2(o, year / 100);
            put2(o + 2, year % 100);
            o[4] = '-';
            put2(o + 5, month);
            o[7] = '-';
            put2(o + 8, day);
            o[10] = ' ';
            put2(o + 11, (int)(sod / 3600));
            o[13] = ':';
            put2(o + 14, (int)(sod / 60 % 60));
            o[16] = ':';
            put2(o + 17, (int)(sod % 60));
            int n = 19;
            if (keep) {
                o[n++] = '.';
                int64_t f = frac / POW10[unit_digits - keep];
                for (int d = keep - 1; d >= 0; d--) {
                    o[n + d] = (char)('0' + (int)(f % 10));
                    f /= 10;
                }
                n += keep;
            }
            if (aware) {
                memcpy(o + n, " +00:00", 7);
                n += 7;
            }
            pos += n;
            off[i + 1] = pos;
        }
        Py_END_ALLOW_THREADS
        if (outside) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (_PyBytes_Resize(&chars, pos) < 0) goto done;
    }
    result = PyTuple_Pack(2, offsets, chars);
done:
    Py_XDECREF(offsets);
    Py_XDECREF(chars);
    if (have_validity) PyBuffer_Release(&validity);
    PyBuffer_Release(&data);
    return result;
}

/*
 * utf16_max(data, offsets, validity, offset, length, wide, floor) -> int
 *
 * The longest UTF-8 value of a string array in UTF-16 code units (how nvarchar counts),
 * exact whenever it exceeds floor; 0 or some length not above floor otherwise. A value
 * whose byte length is within floor or within the longest found so far is skipped, as
 * its UTF-16 length cannot be larger. offsets are int32, or int64 when wide (large_string);
 * validity is None or the array's bitmap. Arrow has validated the UTF-8.
 */
static PyObject *utf16_max(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, offsets, validity;
    PyObject *validity_obj;
    Py_ssize_t offset, length;
    int wide;
    long long floor;
    if (!PyArg_ParseTuple(args, "y*y*OnnpL", &data, &offsets, &validity_obj, &offset, &length,
                          &wide, &floor))
        return NULL;
    int have_validity = validity_obj != Py_None;
    if (have_validity && PyObject_GetBuffer(validity_obj, &validity, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&offsets);
        PyBuffer_Release(&data);
        return NULL;
    }
    Py_ssize_t width = wide ? 8 : 4;
    int ok = offset >= 0 && length >= 0 && (offset + length + 1) * width <= offsets.len &&
             (!have_validity || (offset + length + 7) / 8 <= validity.len);
    long long best = 0;
    if (ok) {
        const unsigned char *bytes = (const unsigned char *)data.buf;
        const unsigned char *bits = have_validity ? (const unsigned char *)validity.buf : NULL;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = offset; i < offset + length; i++) {
            if (bits && !(bits[i >> 3] & (1u << (i & 7)))) continue;
            long long start, end;
            if (wide) {
                int64_t a, b;
                memcpy(&a, (const char *)offsets.buf + i * 8, 8);
                memcpy(&b, (const char *)offsets.buf + (i + 1) * 8, 8);
                start = a, end = b;
            } else {
                int32_t a, b;
                memcpy(&a, (const char *)offsets.buf + i * 4, 4);
                memcpy(&b, (const char *)offsets.buf + (i + 1) * 4, 4);
                start = a, end = b;
            }
            long long n = end - start;
            if (n <= best || n <= floor) continue;
            if (start < 0 || end > data.len) { ok = 0; break; }
            long long units = 0;
            const unsigned char *p = bytes + start;
            for (long long k = 0; k < n; k++)
                units += ((p[k] & 0xC0) != 0x80) + (p[k] >= 0xF0);
            if (units > best) best = units;
        }
        Py_END_ALLOW_THREADS
    }
    if (have_validity) PyBuffer_Release(&validity);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "utf16_max: buffers do not match offset/length");
        return NULL;
    }
    return PyLong_FromLongLong(best);
}

static PyMethodDef methods[] = {
    {"utf16_max", utf16_max, METH_VARARGS,
     "utf16_max(data, offsets, validity, offset, length, wide, floor) -> int"},
    {"decimal128_text", decimal128_text, METH_VARARGS,
     "decimal128_text(data, offset, length, scale) -> (int32 offsets, utf-8 chars)"},
    {"timestamp_text", timestamp_text, METH_VARARGS,
     "timestamp_text(data, validity, offset, length, unit_digits, scale, aware) -> "
     "(int32 offsets, utf-8 chars) or None"},
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
