/*
 * Connection-string surgery for the token shim, on UTF-16 code units (SQLWCHAR on
 * unixODBC): take out AccessToken= and the shim's own keywords (ShimDriver=, BulkCopy=),
 * and turn the token into
 * the ACCESSTOKEN structure Microsoft's driver reads for SQL_COPT_SS_ACCESS_TOKEN.
 *
 * No ODBC headers here, so the unit tests can build this file on its own.
 */
#ifndef AZSQL_SHIM_CONNSTR_H
#define AZSQL_SHIM_CONNSTR_H

#include <stddef.h>
#include <stdint.h>

/* Outcome of shim_connstr_split; messages for each are in shim_connstr_describe. */
enum shim_connstr_status {
    SHIM_CS_OK = 0,
    SHIM_CS_UNTERMINATED_BRACE = 1, /* "{" without the closing "}" */
    SHIM_CS_TEXT_AFTER_BRACE = 2,   /* "key={v}x;": text between "}" and ";" */
    SHIM_CS_EMPTY_TOKEN = 3,        /* AccessToken= with an empty value */
    SHIM_CS_NO_MEMORY = 4,
    SHIM_CS_BAD_BULK_COPY = 5,      /* BulkCopy= neither yes/no, true/false nor 1/0 */
};

/* What shim_connstr_split found. Free with shim_connstr_result_free (it wipes the token). */
struct shim_connstr_result {
    /* The connection string without the removed keywords, NUL-terminated; NULL when
     * nothing was removed (pass the caller's string on unchanged). */
    uint16_t *rest;
    size_t rest_len; /* in code units, without the NUL */
    /* ACCESSTOKEN: uint32 little-endian byte count, then the token as UTF-16LE.
     * NULL when the string has no AccessToken keyword. */
    unsigned char *token;
    size_t token_size; /* bytes, including the 4-byte length */
    /* ShimDriver= value as UTF-8, NUL-terminated; NULL when absent. */
    char *shim_driver;
    /* LoginTimeout= in seconds (0-65535), or -1 when absent or not a number. Microsoft's
     * driver ignores the keyword in a connection string; the shim sets it as the
     * connection's SQL_ATTR_LOGIN_TIMEOUT. The keyword stays in `rest`. */
    long login_timeout;
    /* BulkCopy=: 1 (yes/true/1), 0 (no/false/0), or -1 when absent. The shim sets it as
     * SQL_COPT_SS_BCP before connecting (the driver's bcp_* API needs it on); the driver
     * never sees the keyword. */
    int bulk_copy;
    /* The keyword a syntax error was found in (ASCII, truncated), for messages. */
    char bad_keyword[64];
};

/*
 * Split `text` (`len` code units, no NUL needed) into what the real driver gets and what
 * the shim keeps (LoginTimeout= is read, and kept). Keywords match case-insensitively; values may be braced, with "}}" for a
 * literal "}". When a keyword repeats, the first value counts (as ODBC specifies for
 * SQLDriverConnect) and every occurrence is removed.
 */
enum shim_connstr_status shim_connstr_split(const uint16_t *text, size_t len,
                                            struct shim_connstr_result *out);

/* Release (and, for the token, wipe) everything in `r`; leaves it zeroed. */
void shim_connstr_result_free(struct shim_connstr_result *r);

/* A fixed English sentence for a status (never contains connection-string values). */
const char *shim_connstr_describe(enum shim_connstr_status status);

/* Overwrite `n` bytes at `p` with zeros in a way the compiler cannot drop. */
void shim_wipe(void *p, size_t n);

#endif
