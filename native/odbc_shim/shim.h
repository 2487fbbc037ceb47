/*
 * Internals of the ODBC token shim: the real driver's entry points, the handle registry
 * and the shim's own diagnostics. Nothing here is exported (see exports.map).
 */
#ifndef AZSQL_SHIM_H
#define AZSQL_SHIM_H

#include <stdbool.h>
#include <stddef.h>

#include <sql.h>
#include <sqlext.h>
#include <sqlucode.h>

_Static_assert(sizeof(SQLWCHAR) == 2, "the shim expects unixODBC's 2-byte SQLWCHAR (UTF-16)");

/* Environment variable naming the real driver; engine.native_shim sets it. */
#define SHIM_ENV_TARGET "AZSQL_BULK_SHIM_TARGET"
/* Prefix of every diagnostic the shim raises itself. */
#define SHIM_PREFIX "[azsql-bulk][ODBC token shim] "
/* Microsoft's pre-connect attribute for an Entra access token (msodbcsql.h). */
#define SHIM_COPT_SS_ACCESS_TOKEN 1256
/* Microsoft's pre-connect attribute that enables the bcp_* API on a connection, and its
 * values SQL_BCP_ON / SQL_BCP_OFF (msodbcsql.h). */
#define SHIM_COPT_SS_BCP 1219
#define SHIM_BCP_ON 1
#define SHIM_BCP_OFF 0

/* The real driver's entry points, one typed pointer per name in odbc_api.h. */
struct shim_api {
#define SHIM_FWD(name, params, args) SQLRETURN(SQL_API *name) params;
#define SHIM_CONN(name, handle, fake_rc, params, args) SQLRETURN(SQL_API *name) params;
#define SHIM_OWN(name, params, args) SQLRETURN(SQL_API *name) params;
#include "odbc_api.h"
#undef SHIM_FWD
#undef SHIM_CONN
#undef SHIM_OWN
};

/* One diagnostic record raised by the shim itself (native error 0). Never holds a token. */
struct shim_diag {
    char state[6];  /* SQLSTATE, e.g. "IM002" */
    char text[768]; /* UTF-8 message, starts with SHIM_PREFIX */
};

void shim_diag_set(struct shim_diag *d, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* SQLGetDiagRecW / SQLGetDiagFieldW answers for a handle whose only record is `d`. */
SQLRETURN shim_diag_rec(const struct shim_diag *d, SQLSMALLINT rec, SQLWCHAR *state,
                        SQLINTEGER *native, SQLWCHAR *text, SQLSMALLINT max, SQLSMALLINT *len);
SQLRETURN shim_diag_field(const struct shim_diag *d, SQLSMALLINT rec, SQLSMALLINT field,
                          SQLPOINTER value, SQLSMALLINT max, SQLSMALLINT *len);

/* The real driver: loaded on first use (retried after a failure), never unloaded. */
const struct shim_api *shim_driver_load(struct shim_diag *why);
/* The loaded driver's entry points, or NULL when it is not loaded; never loads. */
const struct shim_api *shim_driver_api(void);
/* Resolved path of the loaded driver ("" before it is loaded). */
const char *shim_driver_path(void);

/*
 * Handle registry. It holds placeholder handles (handed out when the real driver cannot
 * be loaded, so the error reaches the application as a diagnostic) and, per real
 * connection handle, the ACCESSTOKEN buffer the driver points at and a pending shim
 * diagnostic.
 */
SQLHANDLE shim_placeholder_new(SQLSMALLINT type, const struct shim_diag *why);
/* Frees `h` when it is a placeholder; returns whether it was one. */
bool shim_placeholder_free(SQLHANDLE h);
/* Whether `h` is a placeholder; copies its diagnostic into `why` when non-NULL. */
bool shim_placeholder_get(SQLHANDLE h, struct shim_diag *why);
/* Called on entry to connection-level functions: true for a placeholder; otherwise
 * clears a pending shim diagnostic (ODBC: each call replaces the previous diagnostics). */
bool shim_handle_enter(SQLHANDLE h);
/* The shim diagnostic pending on `h`, if any. */
bool shim_handle_diag(SQLHANDLE h, struct shim_diag *out);
/* Record `d` as the diagnostic of the real connection handle `h` (dropped when out of
 * memory; the caller still returns SQL_ERROR). */
void shim_handle_set_diag(SQLHANDLE h, const struct shim_diag *d);
/* Make sure `h` has a registry entry, so shim_handle_keep_token cannot fail. */
bool shim_handle_reserve(SQLHANDLE h);
/* Take ownership of `token` for `h`; the previous buffer, if any, is wiped and freed. */
void shim_handle_keep_token(SQLHANDLE h, unsigned char *token, size_t size);
/* Forget `h`, wiping its token. Call only after the driver freed the handle. */
void shim_handle_release(SQLHANDLE h);

#endif
