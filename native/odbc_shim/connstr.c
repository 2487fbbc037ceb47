/* Connection-string surgery for the token shim; see connstr.h. */
#define _DEFAULT_SOURCE /* explicit_bzero */

#include "connstr.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ACCESS_TOKEN "accesstoken"
#define KEY_SHIM_DRIVER "shimdriver"
#define KEY_LOGIN_TIMEOUT "logintimeout"
#define KEY_BULK_COPY "bulkcopy"
#define MAX_LOGIN_TIMEOUT 65535L
/* Longest keyword an error message may repeat; longer "keywords" are likely garbage
 * (or a token pasted without a key) and are not echoed. */
#define MAX_NAMED_KEYWORD 32

struct span {
    size_t start, end;
};

/* One "key=value" element: where it is in the input, its key, and its raw value (still
 * escaped when braced). */
struct pair {
    struct span segment, key, value;
    bool braced;
};

void shim_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        explicit_bzero(p, n);
    }
}

static bool is_blank(uint16_t c)
{
    return c == ' ' || c == '\t';
}

static bool key_is(const uint16_t *text, struct span key, const char *lower)
{
    size_t n = strlen(lower);
    if (key.end - key.start != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t c = text[key.start + i];
        if (c >= 'A' && c <= 'Z') {
            c = (uint16_t)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)lower[i]) {
            return false;
        }
    }
    return true;
}

static void name_keyword(char *dst, size_t cap, const uint16_t *text, struct span key)
{
    size_t n = key.end - key.start;
    if (n == 0 || n > MAX_NAMED_KEYWORD || n >= cap) {
        snprintf(dst, cap, "%s", "(unnamed)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t c = text[key.start + i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* Parse the element starting at *pos (separators already skipped); *pos ends on the ';'
 * after it or at the end of the text. */
static enum shim_connstr_status next_pair(const uint16_t *t, size_t len, size_t *pos,
                                          struct pair *p)
{
    size_t i = *pos;
    p->segment.start = p->key.start = i;
    while (i < len && t[i] != '=' && t[i] != ';') {
        i++;
    }
    p->key.end = i;
    while (p->key.end > p->key.start && is_blank(t[p->key.end - 1])) {
        p->key.end--;
    }
    if (i >= len || t[i] == ';') {
        /* A keyword without '=': not ours to judge, the driver gets it unchanged. */
        p->value.start = p->value.end = i;
        p->braced = false;
    } else {
        i++;
        while (i < len && is_blank(t[i])) {
            i++;
        }
        if (i < len && t[i] == '{') {
            p->braced = true;
            p->value.start = ++i;
            for (;;) {
                if (i >= len) {
                    return SHIM_CS_UNTERMINATED_BRACE;
                }
                if (t[i] == '}') {
                    if (i + 1 < len && t[i + 1] == '}') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i++;
            }
            p->value.end = i++;
            while (i < len && is_blank(t[i])) {
                i++;
            }
            if (i < len && t[i] != ';') {
                return SHIM_CS_TEXT_AFTER_BRACE;
            }
        } else {
            p->braced = false;
            p->value.start = i;
            while (i < len && t[i] != ';') {
                i++;
            }
            p->value.end = i;
            while (p->value.end > p->value.start && is_blank(t[p->value.end - 1])) {
                p->value.end--;
            }
        }
    }
    p->segment.end = i;
    *pos = i;
    return SHIM_CS_OK;
}

/* Code units of the value once "}}" is undone; calls `emit` for each when non-NULL. */
static size_t value_units(const uint16_t *t, const struct pair *p, uint16_t *emit)
{
    size_t n = 0;
    for (size_t i = p->value.start; i < p->value.end; i++) {
        if (emit != NULL) {
            emit[n] = t[i];
        }
        n++;
        if (p->braced && t[i] == '}') {
            i++; /* the second '}' of an escaped pair */
        }
    }
    return n;
}

static enum shim_connstr_status encode_token(const uint16_t *t, const struct pair *p,
                                             struct shim_connstr_result *out)
{
    size_t units = value_units(t, p, NULL);
    if (units == 0) {
        return SHIM_CS_EMPTY_TOKEN;
    }
    if (units > (UINT32_MAX - 4u) / 2u) {
        return SHIM_CS_NO_MEMORY;
    }
    size_t size = 4 + 2 * units;
    unsigned char *buf = malloc(size);
    if (buf == NULL) {
        return SHIM_CS_NO_MEMORY;
    }
    uint32_t bytes = (uint32_t)(2 * units);
    for (int b = 0; b < 4; b++) {
        buf[b] = (unsigned char)(bytes >> (8 * b));
    }
    size_t o = 4;
    for (size_t i = p->value.start; i < p->value.end; i++) {
        uint16_t c = t[i];
        buf[o++] = (unsigned char)(c & 0xffu);
        buf[o++] = (unsigned char)(c >> 8);
        if (p->braced && c == '}') {
            i++;
        }
    }
    out->token = buf;
    out->token_size = size;
    return SHIM_CS_OK;
}

/* UTF-16 to UTF-8; an unpaired surrogate becomes U+FFFD. */
static char *to_utf8(const uint16_t *u, size_t n)
{
    char *s = malloc(3 * n + 1);
    if (s == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = u[i];
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 &&
            u[i + 1] <= 0xDFFF) {
            cp = 0x10000u + ((cp - 0xD800u) << 10) + (u[i + 1] - 0xDC00u);
            i++;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        if (cp < 0x80) {
            s[o++] = (char)cp;
        } else if (cp < 0x800) {
            s[o++] = (char)(0xC0 | (cp >> 6));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s[o++] = (char)(0xE0 | (cp >> 12));
            s[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            s[o++] = (char)(0xF0 | (cp >> 18));
            s[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            s[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    s[o] = '\0';
    return s;
}

static enum shim_connstr_status keep_driver(const uint16_t *t, const struct pair *p,
                                            struct shim_connstr_result *out)
{
    size_t n = value_units(t, p, NULL);
    uint16_t *plain = malloc((n + 1) * sizeof *plain);
    if (plain == NULL) {
        return SHIM_CS_NO_MEMORY;
    }
    value_units(t, p, plain);
    out->shim_driver = to_utf8(plain, n);
    free(plain);
    return out->shim_driver != NULL ? SHIM_CS_OK : SHIM_CS_NO_MEMORY;
}

/* A LoginTimeout value: decimal digits (blanks around them allowed), else -1. */
static long timeout_seconds(const uint16_t *t, const struct pair *p)
{
    long v = -1;
    size_t i = p->value.start, end = p->value.end;
    while (i < end && is_blank(t[i])) {
        i++;
    }
    while (end > i && is_blank(t[end - 1])) {
        end--;
    }
    for (; i < end; i++) {
        if (t[i] < '0' || t[i] > '9') {
            return -1;
        }
        v = (v < 0 ? 0 : v) * 10 + (long)(t[i] - '0');
        if (v > MAX_LOGIN_TIMEOUT) {
            return -1;
        }
    }
    return v;
}

/* Whether the value (blanks trimmed, case folded) is exactly `lower`. */
static bool value_is(const uint16_t *t, const struct pair *p, const char *lower)
{
    struct span v = p->value;
    while (v.start < v.end && is_blank(t[v.start])) {
        v.start++;
    }
    while (v.end > v.start && is_blank(t[v.end - 1])) {
        v.end--;
    }
    return key_is(t, v, lower);
}

/* A BulkCopy value: 1 for yes/true/1, 0 for no/false/0, -1 for anything else. Braced
 * values count too (the Python builder braces nothing here, a hand-written string may). */
static int bulk_copy_flag(const uint16_t *t, const struct pair *p)
{
    if (value_is(t, p, "yes") || value_is(t, p, "true") || value_is(t, p, "1")) {
        return 1;
    }
    if (value_is(t, p, "no") || value_is(t, p, "false") || value_is(t, p, "0")) {
        return 0;
    }
    return -1;
}

enum shim_connstr_status shim_connstr_split(const uint16_t *text, size_t len,
                                            struct shim_connstr_result *out)
{
    memset(out, 0, sizeof *out);
    out->login_timeout = -1;
    out->bulk_copy = -1;
    bool seen_timeout = false, seen_bulk_copy = false;
    /* Kept elements are re-joined with one ';' each, so the rest is never longer. */
    uint16_t *rest = malloc((len + 1) * sizeof *rest);
    if (rest == NULL) {
        return SHIM_CS_NO_MEMORY;
    }
    size_t rest_len = 0, pos = 0;
    bool removed = false;
    enum shim_connstr_status st = SHIM_CS_OK;

    while (st == SHIM_CS_OK) {
        while (pos < len && (text[pos] == ';' || is_blank(text[pos]))) {
            pos++;
        }
        if (pos >= len) {
            break;
        }
        struct pair p = {0};
        st = next_pair(text, len, &pos, &p);
        if (st == SHIM_CS_OK && key_is(text, p.key, KEY_ACCESS_TOKEN)) {
            removed = true;
            if (out->token == NULL) {
                st = encode_token(text, &p, out);
            }
        } else if (st == SHIM_CS_OK && key_is(text, p.key, KEY_SHIM_DRIVER)) {
            removed = true;
            if (out->shim_driver == NULL) {
                st = keep_driver(text, &p, out);
            }
        } else if (st == SHIM_CS_OK && key_is(text, p.key, KEY_BULK_COPY)) {
            removed = true;
            if (!seen_bulk_copy) { /* the first value counts; every copy is removed */
                seen_bulk_copy = true;
                out->bulk_copy = bulk_copy_flag(text, &p);
                if (out->bulk_copy < 0) {
                    st = SHIM_CS_BAD_BULK_COPY;
                }
            }
        } else if (st == SHIM_CS_OK) {
            if (key_is(text, p.key, KEY_LOGIN_TIMEOUT) && !seen_timeout) {
                seen_timeout = true; /* the first value counts, as for every keyword */
                out->login_timeout = p.braced ? -1 : timeout_seconds(text, &p);
            }
            if (rest_len > 0) {
                rest[rest_len++] = ';';
            }
            size_t n = p.segment.end - p.segment.start;
            memcpy(rest + rest_len, text + p.segment.start, n * sizeof *rest);
            rest_len += n;
        }
        if (st != SHIM_CS_OK) {
            name_keyword(out->bad_keyword, sizeof out->bad_keyword, text, p.key);
        }
    }

    if (st != SHIM_CS_OK) {
        char keyword[sizeof out->bad_keyword];
        memcpy(keyword, out->bad_keyword, sizeof keyword);
        free(rest);
        shim_connstr_result_free(out);
        memcpy(out->bad_keyword, keyword, sizeof keyword);
        return st;
    }
    if (!removed) {
        free(rest);
        return SHIM_CS_OK; /* login_timeout stays as read */
    }
    rest[rest_len] = 0;
    out->rest = rest;
    out->rest_len = rest_len;
    return SHIM_CS_OK;
}

void shim_connstr_result_free(struct shim_connstr_result *r)
{
    shim_wipe(r->token, r->token_size);
    free(r->token);
    free(r->rest);
    free(r->shim_driver);
    memset(r, 0, sizeof *r);
}

const char *shim_connstr_describe(enum shim_connstr_status status)
{
    switch (status) {
    case SHIM_CS_OK:
        return "no error";
    case SHIM_CS_UNTERMINATED_BRACE:
        return "a braced value has no closing '}' (inside braces write a literal '}' as '}}')";
    case SHIM_CS_TEXT_AFTER_BRACE:
        return "text follows the closing '}' of a braced value before the next ';' "
               "(inside braces write a literal '}' as '}}')";
    case SHIM_CS_EMPTY_TOKEN:
        return "AccessToken= is empty; pass the Entra access token (a JWT) as its value";
    case SHIM_CS_NO_MEMORY:
        return "out of memory while preparing the connection string";
    case SHIM_CS_BAD_BULK_COPY:
        return "BulkCopy= takes yes or no (also true/false, 1/0)";
    }
    return "unknown error";
}
