/* The shim's own diagnostic records, answered through SQLGetDiagRecW / SQLGetDiagFieldW. */
#include "shim.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void shim_diag_set(struct shim_diag *d, const char *state, const char *fmt, ...)
{
    snprintf(d->state, sizeof d->state, "%s", state);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof d->text, fmt, ap);
    va_end(ap);
}

/* Decode one UTF-8 sequence at *s; malformed input yields U+FFFD and advances one byte. */
static uint32_t next_code_point(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t cp;
    size_t n;
    if (p[0] < 0x80) {
        cp = p[0];
        n = 1;
    } else if ((p[0] & 0xE0) == 0xC0) {
        cp = p[0] & 0x1Fu;
        n = 2;
    } else if ((p[0] & 0xF0) == 0xE0) {
        cp = p[0] & 0x0Fu;
        n = 3;
    } else if ((p[0] & 0xF8) == 0xF0) {
        cp = p[0] & 0x07u;
        n = 4;
    } else {
        *s = p + 1;
        return 0xFFFD;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *s = p + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    *s = p + n;
    return cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0xFFFD : cp;
}

/*
 * Write `utf8` as UTF-16 into `out` (room for `cap` units including the NUL; may be NULL)
 * and return the full length in units, so a caller can report truncation.
 */
static size_t to_wide(const char *utf8, SQLWCHAR *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t n = 0;
    while (*s != '\0') {
        uint32_t cp = next_code_point(&s);
        SQLWCHAR units[2];
        size_t k = 1;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[0] = (SQLWCHAR)(0xD800 + (cp >> 10));
            units[1] = (SQLWCHAR)(0xDC00 + (cp & 0x3FF));
            k = 2;
        } else {
            units[0] = (SQLWCHAR)cp;
        }
        for (size_t i = 0; i < k; i++, n++) {
            if (out != NULL && n + 1 < cap) {
                out[n] = units[i];
            }
        }
    }
    if (out != NULL && cap > 0) {
        out[n < cap ? n : cap - 1] = 0;
    }
    return n;
}

static SQLSMALLINT clamp_small(size_t n)
{
    return n > 32767 ? (SQLSMALLINT)32767 : (SQLSMALLINT)n;
}

SQLRETURN shim_diag_rec(const struct shim_diag *d, SQLSMALLINT rec, SQLWCHAR *state,
                        SQLINTEGER *native, SQLWCHAR *text, SQLSMALLINT max, SQLSMALLINT *len)
{
    if (rec < 1 || max < 0) {
        return SQL_ERROR;
    }
    if (rec > 1) {
        return SQL_NO_DATA;
    }
    if (state != NULL) {
        to_wide(d->state, state, 6);
    }
    if (native != NULL) {
        *native = 0;
    }
    size_t n = to_wide(d->text, text, (size_t)max);
    if (len != NULL) {
        *len = clamp_small(n);
    }
    return text != NULL && n >= (size_t)max ? SQL_SUCCESS_WITH_INFO : SQL_SUCCESS;
}

/* A string diagnostic field: `max` and *len count bytes for the W function. */
static SQLRETURN string_field(const char *utf8, SQLPOINTER value, SQLSMALLINT max,
                              SQLSMALLINT *len)
{
    if (max < 0) {
        return SQL_ERROR;
    }
    size_t cap = (size_t)max / sizeof(SQLWCHAR);
    size_t n = to_wide(utf8, value, cap);
    if (len != NULL) {
        *len = clamp_small(n * sizeof(SQLWCHAR));
    }
    return value != NULL && n >= cap ? SQL_SUCCESS_WITH_INFO : SQL_SUCCESS;
}

SQLRETURN shim_diag_field(const struct shim_diag *d, SQLSMALLINT rec, SQLSMALLINT field,
                          SQLPOINTER value, SQLSMALLINT max, SQLSMALLINT *len)
{
    /* The IM class is ODBC's own; everything else the shim raises is ISO 9075. */
    const char *origin = strncmp(d->state, "IM", 2) == 0 ? "ODBC 3.0" : "ISO 9075";
    switch (field) {
    case SQL_DIAG_NUMBER:
        if (value != NULL) {
            *(SQLINTEGER *)value = 1;
        }
        return SQL_SUCCESS;
    case SQL_DIAG_RETURNCODE:
        if (value != NULL) {
            *(SQLRETURN *)value = SQL_ERROR;
        }
        return SQL_SUCCESS;
    default:
        break;
    }
    if (rec < 1) {
        return SQL_ERROR;
    }
    if (rec > 1) {
        return SQL_NO_DATA;
    }
    switch (field) {
    case SQL_DIAG_SQLSTATE:
        return string_field(d->state, value, max, len);
    case SQL_DIAG_MESSAGE_TEXT:
        return string_field(d->text, value, max, len);
    case SQL_DIAG_CLASS_ORIGIN:
    case SQL_DIAG_SUBCLASS_ORIGIN:
        return string_field(origin, value, max, len);
    case SQL_DIAG_CONNECTION_NAME:
    case SQL_DIAG_SERVER_NAME:
        return string_field("", value, max, len);
    case SQL_DIAG_NATIVE:
        if (value != NULL) {
            *(SQLINTEGER *)value = 0;
        }
        return SQL_SUCCESS;
    default:
        return SQL_ERROR;
    }
}
