/*
 * The handle registry (see shim.h): a mutex-protected list, short in practice (one entry
 * per open token connection). The mutex is never held across a call into the driver.
 *
 * `g_attention` counts placeholders and pending shim diagnostics; while it is zero, the
 * per-call checks of connection-level functions skip the lock entirely.
 */
#include "connstr.h"
#include "shim.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    SQLHANDLE handle; /* a placeholder's handle is the entry itself */
    bool placeholder;
    bool has_diag;
    struct shim_diag diag;
    unsigned char *token; /* ACCESSTOKEN the driver points at; wiped when released */
    size_t token_size;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *g_head;
static atomic_size_t g_attention;

static struct entry *find_locked(SQLHANDLE h)
{
    for (struct entry *e = g_head; e != NULL; e = e->next) {
        if (e->handle == h) {
            return e;
        }
    }
    return NULL;
}

static void unlink_locked(struct entry *gone)
{
    for (struct entry **link = &g_head; *link != NULL; link = &(*link)->next) {
        if (*link == gone) {
            *link = gone->next;
            return;
        }
    }
}

static void destroy(struct entry *e)
{
    shim_wipe(e->token, e->token_size);
    free(e->token);
    free(e);
}

static bool needs_attention(void)
{
    return atomic_load_explicit(&g_attention, memory_order_acquire) > 0;
}

SQLHANDLE shim_placeholder_new(SQLSMALLINT type, const struct shim_diag *why)
{
    (void)type;
    struct entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return SQL_NULL_HANDLE;
    }
    e->handle = e;
    e->placeholder = true;
    e->has_diag = true;
    e->diag = *why;
    pthread_mutex_lock(&g_lock);
    e->next = g_head;
    g_head = e;
    atomic_fetch_add(&g_attention, 1);
    pthread_mutex_unlock(&g_lock);
    return e;
}

bool shim_placeholder_free(SQLHANDLE h)
{
    if (!needs_attention()) {
        return false;
    }
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h);
    bool placeholder = e != NULL && e->placeholder;
    if (placeholder) {
        unlink_locked(e);
        atomic_fetch_sub(&g_attention, 1);
    }
    pthread_mutex_unlock(&g_lock);
    if (placeholder) {
        destroy(e);
    }
    return placeholder;
}

bool shim_placeholder_get(SQLHANDLE h, struct shim_diag *why)
{
    if (!needs_attention()) {
        return false;
    }
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h);
    bool placeholder = e != NULL && e->placeholder;
    if (placeholder && why != NULL) {
        *why = e->diag;
    }
    pthread_mutex_unlock(&g_lock);
    return placeholder;
}

bool shim_handle_enter(SQLHANDLE h)
{
    if (!needs_attention()) {
        return false;
    }
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h);
    bool placeholder = e != NULL && e->placeholder;
    if (e != NULL && !placeholder && e->has_diag) {
        e->has_diag = false;
        atomic_fetch_sub(&g_attention, 1);
    }
    pthread_mutex_unlock(&g_lock);
    return placeholder;
}

bool shim_handle_diag(SQLHANDLE h, struct shim_diag *out)
{
    if (!needs_attention()) {
        return false;
    }
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h);
    bool found = e != NULL && e->has_diag;
    if (found) {
        *out = e->diag;
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

static struct entry *ensure_locked(SQLHANDLE h)
{
    struct entry *e = find_locked(h);
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e != NULL) {
            e->handle = h;
            e->next = g_head;
            g_head = e;
        }
    }
    return e;
}

void shim_handle_set_diag(SQLHANDLE h, const struct shim_diag *d)
{
    pthread_mutex_lock(&g_lock);
    struct entry *e = ensure_locked(h);
    if (e != NULL) {
        if (!e->has_diag) {
            atomic_fetch_add(&g_attention, 1);
        }
        e->has_diag = true;
        e->diag = *d;
    }
    pthread_mutex_unlock(&g_lock);
}

bool shim_handle_reserve(SQLHANDLE h)
{
    pthread_mutex_lock(&g_lock);
    bool ok = ensure_locked(h) != NULL;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

void shim_handle_keep_token(SQLHANDLE h, unsigned char *token, size_t size)
{
    unsigned char *old = NULL;
    size_t old_size = 0;
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h); /* reserved by the caller */
    if (e != NULL) {
        old = e->token;
        old_size = e->token_size;
        e->token = token;
        e->token_size = size;
    }
    pthread_mutex_unlock(&g_lock);
    if (e == NULL) {
        /* Not reserved (cannot happen). The driver may still read the buffer, so it is
         * wiped but not freed: a failed re-login rather than a use after free. */
        shim_wipe(token, size);
        return;
    }
    shim_wipe(old, old_size);
    free(old);
}

void shim_handle_release(SQLHANDLE h)
{
    pthread_mutex_lock(&g_lock);
    struct entry *e = find_locked(h);
    if (e != NULL) {
        unlink_locked(e);
        if (e->has_diag) {
            atomic_fetch_sub(&g_attention, 1);
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (e != NULL) {
        destroy(e);
    }
}
