/*
 * The exported ODBC entry points: generated forwarders for the list in odbc_api.h, and
 * the five the shim implements itself (allocation, freeing, diagnostics, and
 * SQLDriverConnectW, where AccessToken= becomes SQL_COPT_SS_ACCESS_TOKEN and BulkCopy=
 * becomes SQL_COPT_SS_BCP).
 *
 * unixODBC only calls SQLDriverConnectW (it converts an ANSI application's strings
 * itself), so that is the one connect function that needs the token surgery.
 */
#define _DEFAULT_SOURCE /* realpath */

#include "connstr.h"
#include "shim.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Statement and descriptor level: no placeholder can reach these. */
#define SHIM_FWD(name, params, args)                                                         \
    SQLRETURN SQL_API name params                                                            \
    {                                                                                        \
        const struct shim_api *api = shim_driver_api();                                      \
        return api != NULL ? api->name args : SQL_INVALID_HANDLE;                            \
    }
/* Environment and connection level: a placeholder answers for itself. */
#define SHIM_CONN(name, handle, fake_rc, params, args)                                       \
    SQLRETURN SQL_API name params                                                            \
    {                                                                                        \
        if (shim_handle_enter(handle)) {                                                     \
            return fake_rc;                                                                  \
        }                                                                                    \
        const struct shim_api *api = shim_driver_api();                                      \
        return api != NULL ? api->name args : SQL_INVALID_HANDLE;                            \
    }
#define SHIM_OWN(name, params, args)
#include "odbc_api.h"
#undef SHIM_FWD
#undef SHIM_CONN
#undef SHIM_OWN

SQLRETURN SQL_API SQLAllocHandle(SQLSMALLINT type, SQLHANDLE input, SQLHANDLE *output)
{
    struct shim_diag why;
    const struct shim_api *api;
    if (type == SQL_HANDLE_ENV) {
        api = shim_driver_load(&why);
        if (api != NULL) {
            return api->SQLAllocHandle(type, input, output);
        }
    } else if (!shim_placeholder_get(input, &why)) {
        api = shim_driver_api();
        return api != NULL ? api->SQLAllocHandle(type, input, output) : SQL_INVALID_HANDLE;
    } else if (type != SQL_HANDLE_DBC) {
        return SQL_ERROR; /* statements need a connection, which a placeholder never has */
    }
    /* The driver cannot be loaded: hand out a placeholder so that the reason reaches the
     * application as a diagnostic of the connect call (an error here would only become
     * unixODBC's generic IM004/IM005). */
    if (output == NULL) {
        return SQL_ERROR;
    }
    *output = shim_placeholder_new(type, &why);
    return *output != SQL_NULL_HANDLE ? SQL_SUCCESS : SQL_ERROR;
}

SQLRETURN SQL_API SQLFreeHandle(SQLSMALLINT type, SQLHANDLE h)
{
    if (shim_placeholder_free(h)) {
        return SQL_SUCCESS;
    }
    const struct shim_api *api = shim_driver_api();
    if (api == NULL) {
        return SQL_INVALID_HANDLE;
    }
    SQLRETURN rc = api->SQLFreeHandle(type, h);
    /* Only now is the token buffer unreferenced: the driver re-reads it when it
     * reconnects an idle session by itself. */
    if (type == SQL_HANDLE_DBC && SQL_SUCCEEDED(rc)) {
        shim_handle_release(h);
    }
    return rc;
}

SQLRETURN SQL_API SQLGetDiagRecW(SQLSMALLINT type, SQLHANDLE h, SQLSMALLINT rec,
                                 SQLWCHAR *state, SQLINTEGER *native, SQLWCHAR *text,
                                 SQLSMALLINT max, SQLSMALLINT *len)
{
    struct shim_diag d;
    if ((type == SQL_HANDLE_ENV || type == SQL_HANDLE_DBC) && shim_handle_diag(h, &d)) {
        return shim_diag_rec(&d, rec, state, native, text, max, len);
    }
    const struct shim_api *api = shim_driver_api();
    return api != NULL ? api->SQLGetDiagRecW(type, h, rec, state, native, text, max, len)
                       : SQL_INVALID_HANDLE;
}

SQLRETURN SQL_API SQLGetDiagFieldW(SQLSMALLINT type, SQLHANDLE h, SQLSMALLINT rec,
                                   SQLSMALLINT field, SQLPOINTER value, SQLSMALLINT max,
                                   SQLSMALLINT *len)
{
    struct shim_diag d;
    if ((type == SQL_HANDLE_ENV || type == SQL_HANDLE_DBC) && shim_handle_diag(h, &d)) {
        return shim_diag_field(&d, rec, field, value, max, len);
    }
    const struct shim_api *api = shim_driver_api();
    return api != NULL ? api->SQLGetDiagFieldW(type, h, rec, field, value, max, len)
                       : SQL_INVALID_HANDLE;
}

/* Length up to the first NUL, at most `max` units (SIZE_MAX for SQL_NTS): a caller that
 * counts the terminator must not turn it into part of the last value. */
static size_t wide_len(const SQLWCHAR *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != 0) {
        n++;
    }
    return n;
}

static SQLRETURN fail(SQLHDBC h, const struct shim_diag *d)
{
    shim_handle_set_diag(h, d);
    return SQL_ERROR;
}

/* ShimDriver= must name the driver this process loaded (the first load is final). */
static bool names_loaded_driver(const char *path)
{
    char resolved[PATH_MAX];
    const char *candidate = realpath(path, resolved) != NULL ? resolved : path;
    return strcmp(candidate, shim_driver_path()) == 0;
}

SQLRETURN SQL_API SQLDriverConnectW(SQLHDBC h, SQLHWND hwnd, SQLWCHAR *in, SQLSMALLINT in_len,
                                    SQLWCHAR *out, SQLSMALLINT out_max, SQLSMALLINT *out_len,
                                    SQLUSMALLINT completion)
{
    if (shim_handle_enter(h)) {
        return SQL_ERROR; /* a placeholder: its diagnostic says why the driver is missing */
    }
    const struct shim_api *api = shim_driver_api();
    if (api == NULL) {
        return SQL_INVALID_HANDLE;
    }
    if (in == NULL || (in_len < 0 && in_len != SQL_NTS)) {
        /* Nothing the shim can read; the driver reports the bad argument. */
        return api->SQLDriverConnectW(h, hwnd, in, in_len, out, out_max, out_len, completion);
    }
    size_t n = wide_len(in, in_len == SQL_NTS ? SIZE_MAX : (size_t)in_len);
    struct shim_connstr_result cs;
    struct shim_diag d;
    enum shim_connstr_status st = shim_connstr_split(in, n, &cs);
    if (st == SHIM_CS_NO_MEMORY) {
        shim_diag_set(&d, "HY001", SHIM_PREFIX "%s.", shim_connstr_describe(st));
        return fail(h, &d);
    }
    if (st != SHIM_CS_OK) {
        shim_diag_set(&d, "HY000", SHIM_PREFIX "invalid connection string at keyword %s: %s.",
                      cs.bad_keyword, shim_connstr_describe(st));
        return fail(h, &d);
    }
    if (cs.login_timeout >= 0) {
        /* Driver 18 ignores LoginTimeout= in the string but honours the attribute */
        SQLRETURN rc = api->SQLSetConnectAttrW(h, SQL_ATTR_LOGIN_TIMEOUT,
                                               (SQLPOINTER)(uintptr_t)cs.login_timeout,
                                               SQL_IS_UINTEGER);
        if (!SQL_SUCCEEDED(rc)) {
            shim_connstr_result_free(&cs); /* the driver's own diagnostic explains */
            return rc;
        }
    }
    if (cs.rest == NULL) { /* none of the shim's own keywords: pass it on untouched */
        return api->SQLDriverConnectW(h, hwnd, in, in_len, out, out_max, out_len, completion);
    }
    if (cs.shim_driver != NULL && !names_loaded_driver(cs.shim_driver)) {
        shim_diag_set(&d, "HY000",
                      SHIM_PREFIX "ShimDriver=%s is not the driver this process loaded from %s "
                      "(%s). The first connection fixes the driver for the process; use one "
                      "path everywhere, or leave out ShimDriver=.",
                      cs.shim_driver, SHIM_ENV_TARGET, shim_driver_path());
        shim_connstr_result_free(&cs);
        return fail(h, &d);
    }
    if (cs.token != NULL) {
        if (!shim_handle_reserve(h)) {
            shim_connstr_result_free(&cs);
            shim_diag_set(&d, "HY001", SHIM_PREFIX "out of memory while keeping the token.");
            return fail(h, &d);
        }
        SQLRETURN rc = api->SQLSetConnectAttrW(h, SHIM_COPT_SS_ACCESS_TOKEN, cs.token,
                                               SQL_IS_POINTER);
        if (!SQL_SUCCEEDED(rc)) {
            shim_connstr_result_free(&cs); /* the driver's own diagnostic explains */
            return rc;
        }
        /* The driver keeps this pointer: the registry owns the buffer from here on. */
        shim_handle_keep_token(h, cs.token, cs.token_size);
        cs.token = NULL;
        cs.token_size = 0;
    }
    if (cs.bulk_copy >= 0) {
        /* Pre-connect only: the driver decides at login whether bcp_* works here. */
        SQLRETURN rc = api->SQLSetConnectAttrW(
            h, SHIM_COPT_SS_BCP,
            (SQLPOINTER)(uintptr_t)(cs.bulk_copy ? SHIM_BCP_ON : SHIM_BCP_OFF), SQL_IS_INTEGER);
        if (!SQL_SUCCEEDED(rc)) {
            shim_connstr_result_free(&cs); /* the driver's own diagnostic explains */
            return rc;
        }
    }
    SQLSMALLINT rest_len = cs.rest_len <= SHRT_MAX ? (SQLSMALLINT)cs.rest_len : SQL_NTS;
    SQLRETURN rc = api->SQLDriverConnectW(h, hwnd, cs.rest, rest_len, out, out_max, out_len,
                                          completion);
    shim_connstr_result_free(&cs);
    return rc;
}
