/*
 * engine._bcp: one Arrow record batch into a table through Microsoft ODBC Driver 18's bulk
 * copy API (bcp_initW, bcp_bind, bcp_sendrow, bcp_done; bcp_collen around empty values,
 * bcp_colptr only if a buffer moves),
 * on a connection the caller opened with SQL_COPT_SS_BCP on, inside the caller's transaction.
 *
 * The batch arrives through the Arrow C data interface (a PyCapsule pair from
 * __arrow_c_array__ of a struct array), so no Python object is touched while rows are sent:
 * the GIL is released for the whole row loop. Every value is bound natively, never as text:
 * integers, bit, real/float, decimal128 (SQL_NUMERIC_STRUCT), UTF-8 text (converted to
 * UTF-16 here), binary, date, time, timestamps (datetime2 / datetimeoffset at UTC) and
 * 16-byte uuids (SQLGUID). NULLs go as SQL_NULL_DATA.
 *
 * The bcp functions live in the driver library, not in the driver manager: write() is given
 * the driver's path and resolves them once with dlopen/dlsym. They must be called with the
 * DRIVER MANAGER's connection handle (the driver maps it to its own through the manager).
 */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sql.h>
#include <sqlext.h>

/* Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html) */
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* msodbcsql.h: bcp host types and constants */
enum {
    BCP_SQLINT1 = 0x30,
    BCP_SQLBIT = 0x32,
    BCP_SQLINT2 = 0x34,
    BCP_SQLINT4 = 0x38,
    BCP_SQLFLT4 = 0x3b,
    BCP_SQLFLT8 = 0x3e,
    BCP_SQLUNIQUEID = 0x24,
    BCP_SQLVARBINARY = 0x25,
    BCP_SQLDATEN = 0x28,
    BCP_SQLTIMEN = 0x29,
    BCP_SQLDATETIME2N = 0x2a,
    BCP_SQLDATETIMEOFFSETN = 0x2b,
    BCP_SQLNUMERICN = 0x6c,
    BCP_SQLINT8 = 0x7f,
    BCP_SQLNCHAR = 0xef,
};
#define BCP_DB_IN 1
#define BCP_KEEPNULLS 5 /* bcp_control: NULL stays NULL (not the column default) */
#define BCP_HINTSW 11   /* bcp_control: TABLOCK, ORDER(...), CHECK_CONSTRAINTS, FIRE_TRIGGERS */
#define BCP_SUCCEED 1
#define BCP_NULL_DATA (-1)
#define BCP_VARLEN_DATA (-10)
#define BCP_INDICATOR 8 /* an int64 length/NULL indicator in front of each bound value */
#define FILL_RANGE (-2) /* a value the host type cannot carry */
#define FILL_NOMEM (-3)

typedef int (*bcp_initW_fn)(SQLHDBC, const SQLWCHAR *, const SQLWCHAR *, const SQLWCHAR *, int);
typedef int (*bcp_bind_fn)(SQLHDBC, const unsigned char *, int, int32_t, const unsigned char *,
                           int, int, int);
typedef int (*bcp_colptr_fn)(SQLHDBC, const unsigned char *, int);
typedef int (*bcp_collen_fn)(SQLHDBC, int32_t, int);
typedef int (*bcp_sendrow_fn)(SQLHDBC);
typedef int32_t (*bcp_batch_fn)(SQLHDBC);
typedef int32_t (*bcp_done_fn)(SQLHDBC);
typedef int (*bcp_control_fn)(SQLHDBC, int, void *);

static struct {
    bcp_initW_fn initW;
    bcp_bind_fn bind;
    bcp_colptr_fn colptr;
    bcp_collen_fn collen;
    bcp_sendrow_fn sendrow;
    bcp_batch_fn batch;
    bcp_done_fn done;
    bcp_control_fn control;
} g_bcp;

/* SQL Server's structs for the date/time, numeric and guid host types (sqlext.h and
 * msodbcsql.h layouts) */
typedef struct {
    SQLUSMALLINT hour, minute, second;
    SQLUINTEGER fraction;
} time2_struct;

typedef struct {
    uint32_t data1;
    uint16_t data2, data3;
    uint8_t data4[8];
} guid_struct;

typedef struct {
    SQLSMALLINT year;
    SQLUSMALLINT month, day, hour, minute, second;
    SQLUINTEGER fraction;
    SQLSMALLINT timezone_hour, timezone_minute;
} offset_struct;

enum kind {
    K_INT,      /* signed/unsigned integers up to 64 bits -> SQLINT8/4/2/1 */
    K_BOOL,     /* bitmap -> SQLBIT */
    K_F32,
    K_F64,
    K_TEXT,     /* utf8 / large utf8 -> SQLNCHAR (UTF-16) */
    K_BINARY,   /* binary / large binary / fixed binary (not 16) -> SQLVARBINARY */
    K_UUID,     /* fixed_size_binary(16) -> SQLGUID */
    K_DECIMAL,  /* decimal128 -> SQL_NUMERIC_STRUCT */
    K_DATE32,
    K_TIME,     /* time32/time64 -> time2_struct */
    K_TS,       /* naive timestamp -> SQL_TIMESTAMP_STRUCT */
    K_TSTZ,     /* timestamp with a zone -> offset_struct at +00:00 */
};

struct column {
    enum kind kind;
    int width;            /* integer byte width */
    int is_signed;
    int64_t unit_per_sec; /* time/timestamp units per second */
    int precision, scale; /* decimal */
    int large;            /* 64-bit offsets */
    const struct ArrowArray *array;
    const uint8_t *validity;
    /* what bcp_bind points at: the current row's int64 length (or BCP_NULL_DATA), then its
     * value at scratch (bound + BCP_INDICATOR), room for scratch_size bytes. bcp_sendrow
     * reads both from here, so a row costs no bcp_colptr/bcp_collen call (each of those
     * goes through the driver manager's handle lookup, under its mutex). */
    unsigned char *bound;
    unsigned char *scratch;
    size_t scratch_size;
    int moved; /* grow() moved the buffer: bcp_colptr must be told before the next row */
    int empty; /* bcp_collen(0) is in force for this column (its last value was empty) */
};

static int resolve(const char *driver, char *err, size_t errlen)
{
    if (g_bcp.initW != NULL) {
        return 0;
    }
    void *lib = dlopen(driver, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        lib = dlopen(driver, RTLD_NOW);
    }
    if (lib == NULL) {
        snprintf(err, errlen, "cannot load the ODBC driver %s: %s", driver, dlerror());
        return -1;
    }
#define LOOKUP(field, name, type)                                                        \
    do {                                                                                 \
        void *p = dlsym(lib, name);                                                      \
        if (p == NULL) {                                                                 \
            snprintf(err, errlen, "the ODBC driver %s exports no %s", driver, name);    \
            return -1;                                                                   \
        }                                                                                \
        memcpy(&g_bcp.field, &p, sizeof p);                                              \
    } while (0)
    LOOKUP(bind, "bcp_bind", bcp_bind_fn);
    LOOKUP(colptr, "bcp_colptr", bcp_colptr_fn);
    LOOKUP(collen, "bcp_collen", bcp_collen_fn);
    LOOKUP(sendrow, "bcp_sendrow", bcp_sendrow_fn);
    LOOKUP(batch, "bcp_batch", bcp_batch_fn);
    LOOKUP(done, "bcp_done", bcp_done_fn);
    LOOKUP(control, "bcp_control", bcp_control_fn);
    LOOKUP(initW, "bcp_initW", bcp_initW_fn);
#undef LOOKUP
    return 0;
}

static int valid(const struct column *c, int64_t row)
{
    if (c->validity == NULL) {
        return 1;
    }
    int64_t i = row + c->array->offset;
    return (c->validity[i >> 3] >> (i & 7)) & 1;
}

/* days since 1970-01-01 -> civil date (proleptic Gregorian; H. Hinnant's algorithm) */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t read_int(const struct column *c, int64_t row)
{
    const void *data = c->array->buffers[1];
    int64_t i = row + c->array->offset;
    switch (c->width) {
    case 1:
        return c->is_signed ? ((const int8_t *)data)[i] : ((const uint8_t *)data)[i];
    case 2:
        return c->is_signed ? ((const int16_t *)data)[i] : ((const uint16_t *)data)[i];
    case 4:
        return c->is_signed ? (int64_t)((const int32_t *)data)[i]
                            : (int64_t)((const uint32_t *)data)[i];
    default:
        return ((const int64_t *)data)[i];
    }
}

/* room for a value of `need` bytes behind the indicator (write() sizes every buffer for
 * its column's longest value first, so a row never lands here in practice) */
static int grow(struct column *c, size_t need)
{
    if (need <= c->scratch_size) {
        return 0;
    }
    size_t size = c->scratch_size ? c->scratch_size : 64;
    while (size < need) {
        size *= 2;
    }
    unsigned char *p = realloc(c->bound, size + BCP_INDICATOR);
    if (p == NULL) {
        return -1;
    }
    c->moved = c->moved || p != c->bound;
    c->bound = p;
    c->scratch = p + BCP_INDICATOR;
    c->scratch_size = size;
    return 0;
}

/* simdutf's convert_utf8_to_utf16le (units written, 0 for invalid UTF-8), found in the
 * turbodbc extension the connections already use (use_utf16_converter); NULL: the loop in
 * utf16() does the work */
typedef size_t (*utf8_to_utf16le_fn)(const char *, size_t, uint16_t *);
static utf8_to_utf16le_fn g_utf8_to_utf16le;

/* the UTF-8 sequence length by a lead byte's top 5 bits; 0 marks a byte that cannot lead
 * one (a continuation byte, or 0xf8-0xff) */
static const uint8_t utf8_length[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                        0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 4, 0};
/* the lead byte's payload bits by sequence length (0: the replacement character) */
static const uint8_t utf8_lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};

/* UTF-8 -> UTF-16LE into the column's scratch; returns the byte length or FILL_NOMEM.
 *
 * Runs of ASCII go 8 bytes at a time; other characters are decoded without a branch on
 * the sequence length (text mixing scripts would mispredict one per character): the four
 * bytes at i are combined as if a 4-byte sequence and shifted down by the unused bytes.
 * That needs 4 readable bytes, so the last 3 bytes of a value take the plain loop. Arrow
 * validated the UTF-8; a byte that cannot lead a sequence becomes U+FFFD either way. */
static int64_t utf16(struct column *c, const uint8_t *s, int64_t n)
{
    if (grow(c, (size_t)n * 2 + 2) != 0) {
        return FILL_NOMEM;
    }
    uint16_t *out = (uint16_t *)c->scratch;
    if (g_utf8_to_utf16le != NULL && n > 0) {
        /* at most n units: the buffer holds n + 1 */
        size_t units = g_utf8_to_utf16le((const char *)s, (size_t)n, out);
        if (units != 0) {
            return (int64_t)units * 2;
        }
        /* not valid UTF-8: the loop below replaces what does not decode */
    }
    int64_t o = 0;
    int64_t i = 0;
    while (i + 4 <= n) {
        if (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if ((word & UINT64_C(0x8080808080808080)) == 0) {
                for (int k = 0; k < 8; k++) {
                    out[o + k] = s[i + k];
                }
                i += 8;
                o += 8;
                continue;
            }
        }
        uint32_t b0 = s[i];
        unsigned len = utf8_length[b0 >> 3];
        uint32_t full = ((b0 & utf8_lead_mask[len]) << 18) | ((uint32_t)(s[i + 1] & 0x3f) << 12) |
                        ((uint32_t)(s[i + 2] & 0x3f) << 6) | (uint32_t)(s[i + 3] & 0x3f);
        unsigned used = len ? len : 1;
        uint32_t cp = len ? full >> (6 * (4 - len)) : 0xfffd;
        uint32_t high = cp - 0x10000;
        int pair = cp >= 0x10000;
        /* out has room for n + 1 units and o <= i here, so o + 1 is always writable */
        out[o] = (uint16_t)(pair ? (0xd800 | (high >> 10)) : cp);
        out[o + 1] = (uint16_t)(0xdc00 | (high & 0x3ff));
        o += 1 + pair;
        i += used;
    }
    while (i < n) {
        uint32_t cp;
        uint8_t b = s[i];
        if (b < 0x80) {
            cp = b;
            i += 1;
        } else if ((b >> 5) == 6 && i + 1 < n) {
            cp = ((uint32_t)(b & 0x1f) << 6) | (s[i + 1] & 0x3f);
            i += 2;
        } else if ((b >> 4) == 14 && i + 2 < n) {
            cp = ((uint32_t)(b & 0x0f) << 12) | ((uint32_t)(s[i + 1] & 0x3f) << 6) |
                 (s[i + 2] & 0x3f);
            i += 3;
        } else if ((b >> 3) == 30 && i + 3 < n) {
            cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3f) << 12) |
                 ((uint32_t)(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
            i += 4;
        } else {
            cp = 0xfffd; /* Arrow validated the UTF-8; this is not reached for valid input */
            i += 1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out[o++] = (uint16_t)(0xd800 | (cp >> 10));
            out[o++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
        } else {
            out[o++] = (uint16_t)cp;
        }
    }
    return o * 2;
}

/* the current row's value into the scratch buffer; its length (bytes), BCP_NULL_DATA,
 * FILL_RANGE (message in err) or FILL_NOMEM */
static int64_t fill(struct column *c, int64_t row, char *err, size_t errlen)
{
    if (!valid(c, row)) {
        return BCP_NULL_DATA;
    }
    const struct ArrowArray *a = c->array;
    int64_t i = row + a->offset;
    switch (c->kind) {
    case K_INT: {
        if (c->width == 8 && !c->is_signed &&
            ((const uint64_t *)a->buffers[1])[i] > (uint64_t)INT64_MAX) {
            snprintf(err, errlen, "row %lld: %llu is larger than bigint holds", (long long)row,
                     (unsigned long long)((const uint64_t *)a->buffers[1])[i]);
            return FILL_RANGE;
        }
        int64_t v = read_int(c, row);
        memcpy(c->scratch, &v, 8);
        return 8;
    }
    case K_BOOL: {
        const uint8_t *bits = a->buffers[1];
        c->scratch[0] = (bits[i >> 3] >> (i & 7)) & 1;
        return 1;
    }
    case K_F32:
        memcpy(c->scratch, (const float *)a->buffers[1] + i, 4);
        return 4;
    case K_F64:
        memcpy(c->scratch, (const double *)a->buffers[1] + i, 8);
        return 8;
    case K_TEXT:
    case K_BINARY: {
        int64_t start, end;
        if (c->large) {
            start = ((const int64_t *)a->buffers[1])[i];
            end = ((const int64_t *)a->buffers[1])[i + 1];
        } else {
            start = ((const int32_t *)a->buffers[1])[i];
            end = ((const int32_t *)a->buffers[1])[i + 1];
        }
        const uint8_t *data = (const uint8_t *)a->buffers[2] + start;
        if (c->kind == K_TEXT) {
            return utf16(c, data, end - start);
        }
        if (grow(c, (size_t)(end - start) + 1) != 0) {
            return FILL_NOMEM;
        }
        memcpy(c->scratch, data, (size_t)(end - start));
        return end - start;
    }
    case K_UUID: {
        /* RFC 4122 bytes (big-endian fields) -> SQLGUID (host-order Data1-3, Data4 as is) */
        const uint8_t *u = (const uint8_t *)a->buffers[1] + i * 16;
        guid_struct g;
        g.data1 = ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
        g.data2 = (uint16_t)((u[4] << 8) | u[5]);
        g.data3 = (uint16_t)((u[6] << 8) | u[7]);
        memcpy(g.data4, u + 8, 8);
        memcpy(c->scratch, &g, sizeof g);
        return (int64_t)sizeof g;
    }
    case K_DECIMAL: {
        const uint8_t *v = (const uint8_t *)a->buffers[1] + i * 16; /* little-endian 128-bit */
        SQL_NUMERIC_STRUCT n;
        memset(&n, 0, sizeof n);
        n.precision = (SQLCHAR)c->precision;
        n.scale = (SQLSCHAR)c->scale;
        int negative = (v[15] & 0x80) != 0;
        n.sign = negative ? 0 : 1;
        unsigned carry = 1;
        for (int k = 0; k < 16; k++) { /* magnitude: two's complement negated when negative */
            unsigned byte = v[k];
            if (negative) {
                byte = (~byte & 0xffu) + carry;
                carry = byte >> 8;
                byte &= 0xffu;
            }
            n.val[k] = (SQLCHAR)byte;
        }
        memcpy(c->scratch, &n, sizeof n);
        return (int64_t)sizeof n;
    }
    case K_DATE32: {
        SQL_DATE_STRUCT d;
        int y;
        unsigned m, day;
        civil(((const int32_t *)a->buffers[1])[i], &y, &m, &day);
        d.year = (SQLSMALLINT)y;
        d.month = (SQLUSMALLINT)m;
        d.day = (SQLUSMALLINT)day;
        memcpy(c->scratch, &d, sizeof d);
        return (int64_t)sizeof d;
    }
    case K_TIME: {
        int64_t v = c->width == 4 ? ((const int32_t *)a->buffers[1])[i]
                                  : ((const int64_t *)a->buffers[1])[i];
        if (c->unit_per_sec == 1000000000) { /* time(7) holds 100 ns: round, stay in the day */
            v = floordiv(v + 50, 100) * 100;
            if (v > 86399999999900) {
                v = 86399999999900;
            }
        }
        int64_t secs = v / c->unit_per_sec;
        int64_t frac = v % c->unit_per_sec;
        time2_struct t;
        t.hour = (SQLUSMALLINT)(secs / 3600);
        t.minute = (SQLUSMALLINT)(secs / 60 % 60);
        t.second = (SQLUSMALLINT)(secs % 60);
        t.fraction = (SQLUINTEGER)(frac * (1000000000 / c->unit_per_sec));
        memcpy(c->scratch, &t, sizeof t);
        return (int64_t)sizeof t;
    }
    case K_TS:
    case K_TSTZ: {
        int64_t v = ((const int64_t *)a->buffers[1])[i];
        if (c->unit_per_sec == 1000000000) { /* datetime2(7) holds 100 ns: round half up */
            v = floordiv(v + 50, 100) * 100;
        }
        int64_t secs = floordiv(v, c->unit_per_sec);
        int64_t frac = v - secs * c->unit_per_sec;
        int64_t days = floordiv(secs, 86400);
        int64_t sod = secs - days * 86400;
        int y;
        unsigned m, d;
        civil(days, &y, &m, &d);
        if (y < 1 || y > 9999) {
            snprintf(err, errlen, "row %lld: the timestamp is outside 0001-9999",
                     (long long)row);
            return FILL_RANGE;
        }
        uint32_t ns = (uint32_t)(frac * (1000000000 / c->unit_per_sec));
        if (c->kind == K_TS) {
            SQL_TIMESTAMP_STRUCT t = {(SQLSMALLINT)y, (SQLUSMALLINT)m, (SQLUSMALLINT)d,
                                      (SQLUSMALLINT)(sod / 3600), (SQLUSMALLINT)(sod / 60 % 60),
                                      (SQLUSMALLINT)(sod % 60), ns};
            memcpy(c->scratch, &t, sizeof t);
            return (int64_t)sizeof t;
        }
        offset_struct t = {(SQLSMALLINT)y, (SQLUSMALLINT)m, (SQLUSMALLINT)d,
                           (SQLUSMALLINT)(sod / 3600), (SQLUSMALLINT)(sod / 60 % 60),
                           (SQLUSMALLINT)(sod % 60), ns, 0, 0};
        memcpy(c->scratch, &t, sizeof t);
        return (int64_t)sizeof t;
    }
    }
    return BCP_NULL_DATA;
}

/* the bound size of a fixed-length host type */
static int32_t host_size(const struct column *c)
{
    switch (c->kind) {
    case K_INT:
    case K_F64:
        return 8;
    case K_BOOL:
        return 1;
    case K_F32:
        return 4;
    case K_UUID:
        return (int32_t)sizeof(guid_struct);
    case K_DECIMAL:
        return (int32_t)sizeof(SQL_NUMERIC_STRUCT);
    case K_DATE32:
        return (int32_t)sizeof(SQL_DATE_STRUCT);
    case K_TIME:
        return (int32_t)sizeof(time2_struct);
    case K_TS:
        return (int32_t)sizeof(SQL_TIMESTAMP_STRUCT);
    case K_TSTZ:
        return (int32_t)sizeof(offset_struct);
    default:
        return BCP_VARLEN_DATA;
    }
}

/* the bytes a column's values take bound: the host type's size, or for text (as UTF-16,
 * at most 2 bytes per UTF-8 byte) and binary the longest of the first `rows` values */
static size_t value_room(const struct column *c, int64_t rows)
{
    if (c->kind != K_TEXT && c->kind != K_BINARY) {
        return (size_t)host_size(c);
    }
    int64_t longest = 0;
    const struct ArrowArray *a = c->array;
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r + a->offset;
        int64_t len = c->large ? ((const int64_t *)a->buffers[1])[i + 1] -
                                     ((const int64_t *)a->buffers[1])[i]
                               : (int64_t)((const int32_t *)a->buffers[1])[i + 1] -
                                     ((const int32_t *)a->buffers[1])[i];
        longest = len > longest ? len : longest;
    }
    return c->kind == K_TEXT ? (size_t)longest * 2 + 2 : (size_t)longest + 1;
}

static int64_t unit_per_sec(char unit)
{
    switch (unit) {
    case 's':
        return 1;
    case 'm':
        return 1000;
    case 'u':
        return 1000000;
    default:
        return 1000000000;
    }
}

/* the column's kind and bcp host type from its Arrow format; -1 when unsupported */
static int classify(struct column *c, const char *f)
{
    static const struct {
        char f;
        int width, is_signed;
    } ints[] = {{'c', 1, 1}, {'C', 1, 0}, {'s', 2, 1}, {'S', 2, 0},
                {'i', 4, 1}, {'I', 4, 0}, {'l', 8, 1}, {'L', 8, 0}};
    if (f[0] != '\0' && f[1] == '\0') {
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            if (f[0] == ints[k].f) {
                c->kind = K_INT;
                c->width = ints[k].width;
                c->is_signed = ints[k].is_signed;
                return BCP_SQLINT8;
            }
        }
        switch (f[0]) {
        case 'b':
            c->kind = K_BOOL;
            return BCP_SQLBIT;
        case 'f':
            c->kind = K_F32;
            return BCP_SQLFLT4;
        case 'g':
            c->kind = K_F64;
            return BCP_SQLFLT8;
        case 'u':
        case 'U':
            c->kind = K_TEXT;
            c->large = f[0] == 'U';
            return BCP_SQLNCHAR;
        case 'z':
        case 'Z':
            c->kind = K_BINARY;
            c->large = f[0] == 'Z';
            return BCP_SQLVARBINARY;
        default:
            return -1;
        }
    }
    if (strcmp(f, "w:16") == 0) {
        c->kind = K_UUID;
        return BCP_SQLUNIQUEID;
    }
    if (strncmp(f, "d:", 2) == 0) {
        int bits = 128;
        if (sscanf(f + 2, "%d,%d,%d", &c->precision, &c->scale, &bits) < 2 || bits != 128 ||
            c->precision > 38 || c->scale < 0) {
            return -1;
        }
        c->kind = K_DECIMAL;
        return BCP_SQLNUMERICN;
    }
    if (strcmp(f, "tdD") == 0) {
        c->kind = K_DATE32;
        return BCP_SQLDATEN;
    }
    if (strncmp(f, "tt", 2) == 0 && f[2] != '\0' && f[3] == '\0') {
        c->kind = K_TIME;
        c->width = (f[2] == 's' || f[2] == 'm') ? 4 : 8;
        c->unit_per_sec = unit_per_sec(f[2]);
        return BCP_SQLTIMEN;
    }
    if (strncmp(f, "ts", 2) == 0 && f[2] != '\0' && f[3] == ':') {
        c->unit_per_sec = unit_per_sec(f[2]);
        c->kind = f[4] == '\0' ? K_TS : K_TSTZ;
        return c->kind == K_TS ? BCP_SQLDATETIME2N : BCP_SQLDATETIMEOFFSETN;
    }
    return -1;
}

static void driver_error(SQLHDBC dbc, const char *what, char *err, size_t errlen)
{
    SQLCHAR state[6] = {0};
    SQLCHAR text[1024] = {0};
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    size_t used = (size_t)snprintf(err, errlen, "%s failed", what);
    for (SQLSMALLINT rec = 1; rec <= 4 && used < errlen; rec++) {
        if (!SQL_SUCCEEDED(SQLGetDiagRec(SQL_HANDLE_DBC, dbc, rec, state, &native, text,
                                         (SQLSMALLINT)sizeof text, &len))) {
            break;
        }
        used += (size_t)snprintf(err + used, errlen - used,
                                 "\nstate: %s\nnative error code: %ld\nmessage: %s",
                                 (const char *)state, (long)native, (const char *)text);
    }
}

static PyObject *write_batch(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long handle;
    const char *driver;
    PyObject *table_obj, *schema_capsule, *array_capsule, *hints_obj = NULL;
    if (!PyArg_ParseTuple(args, "KsUOO|U", &handle, &driver, &table_obj, &schema_capsule,
                          &array_capsule, &hints_obj)) {
        return NULL;
    }
    char err[4096] = {0};
    if (resolve(driver, err, sizeof err) != 0) {
        PyErr_SetString(PyExc_OSError, err);
        return NULL;
    }
    struct ArrowSchema *schema = PyCapsule_GetPointer(schema_capsule, "arrow_schema");
    struct ArrowArray *array = PyCapsule_GetPointer(array_capsule, "arrow_array");
    if (schema == NULL || array == NULL) {
        return NULL;
    }
    if (strcmp(schema->format, "+s") != 0 || array->n_children != schema->n_children) {
        PyErr_SetString(PyExc_TypeError, "expected a record batch (an Arrow struct array)");
        return NULL;
    }
    PyObject *wide = PyUnicode_AsEncodedString(table_obj, "utf-16-le", "strict");
    if (wide == NULL) {
        return NULL;
    }
    Py_ssize_t wlen = PyBytes_GET_SIZE(wide);
    SQLWCHAR *table = calloc((size_t)wlen / 2 + 1, sizeof(SQLWCHAR));
    int64_t ncols = schema->n_children;
    struct column *cols = calloc((size_t)(ncols ? ncols : 1), sizeof *cols);
    int *types = calloc((size_t)(ncols ? ncols : 1), sizeof *types);
    if (table == NULL || cols == NULL || types == NULL) {
        Py_DECREF(wide);
        free(table);
        free(cols);
        free(types);
        return PyErr_NoMemory();
    }
    memcpy(table, PyBytes_AS_STRING(wide), (size_t)wlen);
    Py_DECREF(wide);
    SQLWCHAR *hints = NULL;
    if (hints_obj != NULL && PyUnicode_GetLength(hints_obj) > 0) {
        PyObject *whints = PyUnicode_AsEncodedString(hints_obj, "utf-16-le", "strict");
        if (whints == NULL) {
            free(table);
            free(cols);
            free(types);
            return NULL;
        }
        Py_ssize_t hlen = PyBytes_GET_SIZE(whints);
        hints = calloc((size_t)hlen / 2 + 1, sizeof(SQLWCHAR));
        if (hints != NULL) {
            memcpy(hints, PyBytes_AS_STRING(whints), (size_t)hlen);
        }
        Py_DECREF(whints);
        if (hints == NULL) {
            free(table);
            free(cols);
            free(types);
            return PyErr_NoMemory();
        }
    }
    PyObject *result = NULL;
    for (int64_t k = 0; k < ncols; k++) {
        struct column *c = &cols[k];
        c->array = array->children[k];
        types[k] = classify(c, schema->children[k]->format);
        if (types[k] < 0 || schema->children[k]->dictionary != NULL) {
            PyErr_Format(PyExc_TypeError, "column %lld (%s): Arrow type '%s' is not bound by "
                         "the bulk-copy writer; cast it first", (long long)k,
                         schema->children[k]->name ? schema->children[k]->name : "?",
                         schema->children[k]->format);
            goto out;
        }
        c->validity = c->array->null_count != 0 ? c->array->buffers[0] : NULL;
        if (grow(c, value_room(c, array->length)) != 0) {
            PyErr_NoMemory();
            goto out;
        }
        c->moved = 0;
    }
    int64_t nrows = array->length;
    int rc = 0;
    int32_t done_rows = 0;
    SQLHDBC dbc = (SQLHDBC)(uintptr_t)handle;
    Py_BEGIN_ALLOW_THREADS
    if (g_bcp.initW(dbc, table, NULL, NULL, BCP_DB_IN) != BCP_SUCCEED) {
        driver_error(dbc, "bcp_initW", err, sizeof err);
        rc = -1;
    }
    if (rc == 0 && g_bcp.control(dbc, BCP_KEEPNULLS, (void *)(intptr_t)1) != BCP_SUCCEED) {
        driver_error(dbc, "bcp_control(BCPKEEPNULLS)", err, sizeof err);
        rc = -1;
    }
    if (rc == 0 && hints != NULL && g_bcp.control(dbc, BCP_HINTSW, hints) != BCP_SUCCEED) {
        driver_error(dbc, "bcp_control(BCPHINTSW)", err, sizeof err);
        rc = -1;
    }
    for (int64_t k = 0; rc == 0 && k < ncols; k++) {
        /* bound once, with an 8-byte indicator in front of the value: each row writes its
         * length (or BCP_NULL_DATA) there, and the value behind it. Text and binary say
         * SQL_VARLEN_DATA (the indicator gives the length), fixed types their size. */
        int varlen = cols[k].kind == K_TEXT || cols[k].kind == K_BINARY;
        if (g_bcp.bind(dbc, cols[k].bound, BCP_INDICATOR,
                       varlen ? BCP_VARLEN_DATA : host_size(&cols[k]), NULL, 0, types[k],
                       (int)(k + 1)) != BCP_SUCCEED) {
            driver_error(dbc, "bcp_bind", err, sizeof err);
            rc = -1;
        }
    }
    for (int64_t row = 0; rc == 0 && row < nrows; row++) {
        for (int64_t k = 0; k < ncols; k++) {
            struct column *c = &cols[k];
            int64_t len = fill(c, row, err, sizeof err);
            if (len == FILL_RANGE) {
                rc = -2;
                break;
            }
            if (len == FILL_NOMEM) {
                snprintf(err, sizeof err, "out of memory converting row %lld", (long long)row);
                rc = -1;
                break;
            }
            if (len > INT32_MAX) {
                snprintf(err, sizeof err, "row %lld: a value of %lld bytes is too long",
                         (long long)row, (long long)len);
                rc = -2;
                break;
            }
            memcpy(c->bound, &len, sizeof len); /* the indicator: length or BCP_NULL_DATA */
            /* An indicator of 0 is not taken as an empty value for a (max) column: Driver
             * 18 then sent a malformed PLP value (seen against the emulator). An empty
             * value is said with bcp_collen(0) instead, and SQL_VARLEN_DATA (the indicator
             * decides) is restored at the column's next value that is not empty. */
            int want_empty = len == 0 && (c->kind == K_TEXT || c->kind == K_BINARY);
            if (want_empty != c->empty) {
                if (g_bcp.collen(dbc, want_empty ? 0 : BCP_VARLEN_DATA, (int)(k + 1)) !=
                    BCP_SUCCEED) {
                    driver_error(dbc, "bcp_collen", err, sizeof err);
                    rc = -1;
                    break;
                }
                c->empty = want_empty;
            }
            if (c->moved) { /* not reached while value_room sized the buffer */
                if (g_bcp.colptr(dbc, c->bound, (int)(k + 1)) != BCP_SUCCEED) {
                    driver_error(dbc, "bcp_colptr", err, sizeof err);
                    rc = -1;
                    break;
                }
                c->moved = 0;
            }
        }
        if (rc == 0 && g_bcp.sendrow(dbc) != BCP_SUCCEED) {
            driver_error(dbc, "bcp_sendrow", err, sizeof err);
            rc = -1;
        }
    }
    if (rc == 0) {
        int32_t done = g_bcp.done(dbc);
        if (done < 0) {
            driver_error(dbc, "bcp_done", err, sizeof err);
            rc = -1;
        } else {
            done_rows = done;
        }
    } else {
        (void)g_bcp.done(dbc); /* ends the bulk operation; the caller rolls back */
    }
    Py_END_ALLOW_THREADS
    if (rc == 0) {
        result = PyLong_FromLong((long)done_rows);
    } else {
        PyErr_SetString(rc == -2 ? PyExc_ValueError : PyExc_RuntimeError, err);
    }
out:
    for (int64_t k = 0; k < ncols; k++) {
        free(cols[k].bound);
    }
    free(cols);
    free(types);
    free(table);
    free(hints);
    return result;
}

/* use_utf16_converter(library): take simdutf's UTF-8 -> UTF-16LE conversion from an
 * already loaded library that exports it (turbodbc's extension, which converts parameter
 * arrays' text with it); False when it is not there (the scalar loop stays) */
static PyObject *use_utf16_converter(PyObject *self, PyObject *args)
{
    (void)self;
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) {
        return NULL;
    }
    if (path[0] == '\0') { /* back to the writer's own loop */
        g_utf8_to_utf16le = NULL;
        Py_RETURN_FALSE;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD); /* never loads anything new */
    void *fn = lib != NULL ? dlsym(lib, "_ZN7simdutf23convert_utf8_to_utf16leEPKcmPDs") : NULL;
    if (fn == NULL) {
        Py_RETURN_FALSE;
    }
    memcpy(&g_utf8_to_utf16le, &fn, sizeof fn); /* the library stays loaded: no dlclose */
    Py_RETURN_TRUE;
}

/* SELECT @@TRANCOUNT on the connection, through the driver manager: one SQL batch, no
 * prepared statement to drop later, no result buffer of the caller's ODBC library */
static PyObject *trancount(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long handle;
    if (!PyArg_ParseTuple(args, "K", &handle)) {
        return NULL;
    }
    SQLHDBC dbc = (SQLHDBC)(uintptr_t)handle;
    SQLHSTMT stmt = SQL_NULL_HSTMT;
    SQLINTEGER depth = -1;
    SQLLEN got = 0;
    char err[4096] = {0};
    const char *what = NULL;
    SQLRETURN rc;
    Py_BEGIN_ALLOW_THREADS
    rc = SQLAllocHandle(SQL_HANDLE_STMT, dbc, &stmt);
    if (!SQL_SUCCEEDED(rc)) {
        what = "SQLAllocHandle";
    } else {
        static SQLCHAR query[] = "SELECT @@TRANCOUNT";
        rc = SQLExecDirect(stmt, query, SQL_NTS);
        if (!SQL_SUCCEEDED(rc)) {
            what = "SQLExecDirect(SELECT @@TRANCOUNT)";
        } else if (!SQL_SUCCEEDED(rc = SQLFetch(stmt))) {
            what = "SQLFetch";
        } else if (!SQL_SUCCEEDED(rc = SQLGetData(stmt, 1, SQL_C_SLONG, &depth, 0, &got)) ||
                   got == SQL_NULL_DATA) {
            what = "SQLGetData";
        }
        if (what != NULL) {
            SQLCHAR state[6] = {0}, text[1024] = {0};
            SQLINTEGER native = 0;
            SQLSMALLINT len = 0;
            if (SQL_SUCCEEDED(SQLGetDiagRec(SQL_HANDLE_STMT, stmt, 1, state, &native, text,
                                            (SQLSMALLINT)sizeof text, &len))) {
                snprintf(err, sizeof err, "%s failed\nstate: %s\nnative error code: %ld\n"
                         "message: %s", what, (const char *)state, (long)native,
                         (const char *)text);
            }
        }
        (void)SQLFreeHandle(SQL_HANDLE_STMT, stmt); /* closes the cursor too */
    }
    if (what != NULL && err[0] == '\0' && stmt == SQL_NULL_HSTMT) {
        driver_error(dbc, what, err, sizeof err);
    }
    Py_END_ALLOW_THREADS
    if (what != NULL) {
        PyErr_SetString(PyExc_RuntimeError, err[0] ? err : what);
        return NULL;
    }
    return PyLong_FromLong((long)depth);
}

static PyMethodDef methods[] = {
    {"write", write_batch, METH_VARARGS,
     "write(hdbc, driver_path, table, schema_capsule, array_capsule, hints='') -> rows\n\n"
     "Bulk-copy one Arrow record batch into `table` on the driver manager's connection "
     "handle `hdbc` (SQL_COPT_SS_BCP on), inside its open transaction. Raises ValueError "
     "for a value the host type cannot carry, RuntimeError with the driver's diagnostics."},
    {"use_utf16_converter", use_utf16_converter, METH_VARARGS,
     "use_utf16_converter(library_path) -> bool\n\n"
     "Convert text with simdutf::convert_utf8_to_utf16le from `library_path`, a library this "
     "process has already loaded (turbodbc_intern exports it); False when it is not there, "
     "and the writer's own conversion stays. An empty path goes back to the writer's own."},
    {"trancount", trancount, METH_VARARGS,
     "trancount(hdbc) -> int\n\n"
     "SELECT @@TRANCOUNT on the driver manager's connection handle `hdbc` (one round trip; "
     "RuntimeError with the driver's diagnostics)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bcp",
                                    "Arrow record batches through the ODBC bulk copy API.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__bcp(void);

PyMODINIT_FUNC PyInit__bcp(void)
{
    return PyModule_Create(&module);
}
