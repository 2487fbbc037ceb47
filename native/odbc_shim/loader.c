/*
 * Loading the real driver. unixODBC allocates the driver's environment handle before
 * any connection string reaches the driver, so the path comes from the environment
 * (SHIM_ENV_TARGET), read when the first environment handle is allocated.
 *
 * A mutex rather than pthread_once: a failed load (variable not set yet, wrong path) is
 * retried on the next environment allocation, while a successful one is final. The
 * library is opened with RTLD_NODELETE and never closed: the driver keeps threads and
 * pointers (the access token among them) that must outlive any dlclose.
 */
#define _DEFAULT_SOURCE /* realpath */

#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == sizeof(SQLRETURN(*)(void)),
               "function pointers must have the size of dlsym's void *");

static const struct {
    const char *name;
    size_t offset;
} k_symbols[] = {
#define SHIM_FWD(name, params, args) {#name, offsetof(struct shim_api, name)},
#define SHIM_CONN(name, handle, fake_rc, params, args) {#name, offsetof(struct shim_api, name)},
#define SHIM_OWN(name, params, args) {#name, offsetof(struct shim_api, name)},
#include "odbc_api.h"
#undef SHIM_FWD
#undef SHIM_CONN
#undef SHIM_OWN
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_api g_api;
static char g_path[PATH_MAX];
static _Atomic(const struct shim_api *) g_loaded;

const struct shim_api *shim_driver_api(void)
{
    return atomic_load_explicit(&g_loaded, memory_order_acquire);
}

const char *shim_driver_path(void)
{
    return shim_driver_api() != NULL ? g_path : "";
}

/* Whether `sym` is this library's own SQLAllocHandle (the variable names the shim). */
static bool is_own_symbol(void *sym)
{
    SQLRETURN(SQL_API * own)(SQLSMALLINT, SQLHANDLE, SQLHANDLE *) = SQLAllocHandle;
    void *own_ptr;
    memcpy(&own_ptr, &own, sizeof own_ptr);
    return sym == own_ptr;
}

static const struct shim_api *load_locked(struct shim_diag *why)
{
    const char *target = getenv(SHIM_ENV_TARGET);
    if (target == NULL || *target == '\0') {
        shim_diag_set(why, "IM002",
                      SHIM_PREFIX "%s is not set, so the shim does not know which ODBC driver to "
                      "load. Set it to the path of Microsoft's libmsodbcsql-18.*.so before the "
                      "first connection in this process (engine.native_shim.prepare_environment "
                      "does this; ShimDriver= alone is not enough, because unixODBC sets up the "
                      "driver before it passes on the connection string).",
                      SHIM_ENV_TARGET);
        return NULL;
    }
    char resolved[PATH_MAX];
    if (realpath(target, resolved) == NULL) {
        shim_diag_set(why, "IM003",
                      SHIM_PREFIX "cannot load the ODBC driver %s named by %s: %s. Point %s at "
                      "Microsoft's libmsodbcsql-18.*.so (`azsql-bulk doctor` shows where it is).",
                      target, SHIM_ENV_TARGET, strerror(errno), SHIM_ENV_TARGET);
        return NULL;
    }
    dlerror();
    void *lib = dlopen(resolved, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (lib == NULL) {
        const char *reason = dlerror();
        shim_diag_set(why, "IM003",
                      SHIM_PREFIX "cannot load the ODBC driver named by %s: %s. Install the "
                      "library it names, or point %s at Microsoft's libmsodbcsql-18.*.so "
                      "(see `azsql-bulk doctor`).",
                      SHIM_ENV_TARGET, reason != NULL ? reason : resolved, SHIM_ENV_TARGET);
        return NULL;
    }
    struct shim_api api;
    for (size_t i = 0; i < sizeof k_symbols / sizeof k_symbols[0]; i++) {
        void *sym = dlsym(lib, k_symbols[i].name);
        if (sym == NULL) {
            shim_diag_set(why, "IM003",
                          SHIM_PREFIX "%s names %s, which does not export %s; point it at "
                          "Microsoft's libmsodbcsql-18.*.so.",
                          SHIM_ENV_TARGET, resolved, k_symbols[i].name);
        } else if (is_own_symbol(sym)) {
            shim_diag_set(why, "IM003",
                          SHIM_PREFIX "%s names the shim itself (%s); point it at Microsoft's "
                          "libmsodbcsql-18.*.so.",
                          SHIM_ENV_TARGET, resolved);
        }
        if (sym == NULL || is_own_symbol(sym)) {
            dlclose(lib); /* RTLD_NODELETE keeps it mapped; this only drops our reference */
            return NULL;
        }
        memcpy((char *)&api + k_symbols[i].offset, &sym, sizeof sym);
    }
    g_api = api;
    memcpy(g_path, resolved, sizeof g_path);
    atomic_store_explicit(&g_loaded, &g_api, memory_order_release);
    return &g_api;
}

const struct shim_api *shim_driver_load(struct shim_diag *why)
{
    const struct shim_api *api = shim_driver_api();
    if (api != NULL) {
        return api;
    }
    pthread_mutex_lock(&g_lock);
    api = shim_driver_api();
    if (api == NULL) {
        api = load_locked(why);
    }
    pthread_mutex_unlock(&g_lock);
    return api;
}
