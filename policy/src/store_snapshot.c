/*
 * store_snapshot.c - the policy snapshot and overlay in memory: lookups in
 * them, and the read-copy-update scheme that lets decisions read them
 * without a lock.
 *
 * What: a snapshot (store_int.h) is the policy as loads and changes made
 * it: realms sorted by name, origins sorted by (origin, realm index) -
 * both in strcmp order and immutable once published - and the tables of
 * users and revoked credentials (store_table.c), which the store thread
 * changes entry by entry and which successive snapshots share while the
 * set of realms stays the same.  The overlay holds changes learned
 * through Redis before the snapshot has them; its entries expire on the
 * monotonic clock.

 * Read side: tp__pin enters a read-side critical section (one atomic
 * increment of a per-parity reader count, no lock), takes the current
 * snapshot and overlay pointers, and refuses with TP_ESTALE when the
 * policy was last confirmed longer than max_staleness ago; tp__unpin
 * leaves.  Write side (the store thread only): swap a pointer, then
 * tp__synchronize_readers waits out a two-phase grace period (flip the
 * epoch parity, wait for the old parity's readers to drain, twice) before
 * the old object is freed - the scheme of userspace RCU.  So a decision
 * sees either the old policy or the new one, never a mix, and readers
 * never wait.
 *
 * Invariants: a snapshot's realms and origins, an overlay, and every
 * table entry are immutable once published; a replaced entry is freed
 * only after a grace period.
 * Workload: every decision pins once and does one or two lookups: users
 * by hash (millions of users), realms by binary search (few).
 */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <stdio.h>

static void
free_entry(void *e)
{
    free(e);
}

static size_t
user_size(const void *e)
{
    const user_entry *u = e;
    size_t at = 0;

    return tp__user_entry_size(u->user_id, u->has_cidr, &at);
}

static size_t
revoked_size(const void *e)
{
    const revoked_entry *v = e;

    return offsetof(revoked_entry, username) + strlen(v->username) + 1;
}

tp__tables *
tp__tables_new(size_t nrealms, size_t nusers)
{
    tp__tables *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->nrealms = nrealms;
    t->realm_used = calloc(nrealms > 0 ? nrealms : 1,
                           sizeof(*t->realm_used));
    if (t->realm_used == NULL ||
        tp__table_init(&t->users, offsetof(user_entry, user_id), nusers) !=
            0 ||
        tp__table_init(&t->revoked, offsetof(revoked_entry, username), 0) !=
            0) {
        tp__tables_free(t);
        return NULL;
    }
    t->users.size = user_size;
    t->revoked.size = revoked_size;
    return t;
}

void
tp__tables_free(tp__tables *t)
{
    if (t == NULL)
        return;
    tp__table_free(&t->users, free_entry);
    tp__table_free(&t->revoked, free_entry);
    tp__base_free(t->base);
    free(t->realm_used);
    free(t);
}

void
tp__snapshot_free(snapshot *s)
{
    size_t i, j;

    if (s == NULL)
        return;
    for (i = 0; i < s->nrealms; i++) {
        free(s->realms[i].name);
        tp_keyring_free(s->realms[i].kr);
        tp_hostlist_free(s->realms[i].hl);
        tp_peerset_free(s->realms[i].ps);
        tp_jwt_keys_free(s->realms[i].jk);
        for (j = 0; j < s->realms[i].nurls; j++)
            free(s->realms[i].urls[j]);
        free(s->realms[i].urls);
    }
    for (i = 0; i < s->norigins; i++)
        free(s->origins[i].origin);
    free(s->origins);
    free(s->realms);
    tp__tables_free(s->tab);
    free(s);
}

/* Writer side (the store thread only): wait until no reader can still
 * hold a pointer read before the last swap.  Two phases, because a reader
 * may have read the epoch just before a flip and counted itself under
 * the parity the first phase does not wait for. */
void
tp__synchronize_readers(tp_store *st)
{
    int phase;

    for (phase = 0; phase < 2; phase++) {
        unsigned e = atomic_fetch_add(&st->epoch, 1u);
        int p = (int)(e & 1u);
        struct timespec ts = {0, 20000};

        while (atomic_load(&st->readers[p]) != 0)
            nanosleep(&ts, NULL);
    }
}

int
tp__cmp_realm(const void *a, const void *b)
{
    return strcmp(((const realm_entry *)a)->name,
                  ((const realm_entry *)b)->name);
}

long
tp__find_realm(const snapshot *s, const char *name)
{
    size_t lo = 0, hi = s->nrealms;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->realms[mid].name);

        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const user_entry *
tp__find_user(const snapshot *s, size_t realm, const char *user_id)
{
    if (s->tab == NULL || realm > UINT32_MAX)
        return NULL;
    return tp__table_find(&s->tab->users, (uint32_t)realm, user_id);
}

int
tp__is_revoked(const snapshot *s, size_t realm, const char *username)
{
    if (s->tab == NULL || realm > UINT32_MAX)
        return 0;
    return tp__table_find(&s->tab->revoked, (uint32_t)realm, username) !=
           NULL;
}

uint64_t
tp__realm_used(const snapshot *s, size_t ri)
{
    if (s->tab == NULL || ri >= s->tab->nrealms)
        return 0;
    return atomic_load_explicit(&s->tab->realm_used[ri],
                                memory_order_relaxed);
}

/* Bytes of a user entry for user_id (with a client network or not), and
 * where the network starts. */
size_t
tp__user_entry_size(const char *user_id, int has_cidr, size_t *cidr_at)
{
    size_t size = offsetof(user_entry, user_id) + strlen(user_id) + 1;

    if (!has_cidr)
        return size;
    *cidr_at = (size + _Alignof(tp_addr) - 1) & ~(_Alignof(tp_addr) - 1);
    return *cidr_at + sizeof(tp_addr);
}

size_t
tp__user_entry_make(void *buf, size_t cap, uint32_t realm,
                    const char *user_id, const tp_addr *cidr, int cidr_len)
{
    size_t at = 0, size = tp__user_entry_size(user_id, cidr != NULL, &at);
    user_entry *u = buf;

    if (size > cap)
        return 0;
    memset(u, 0, offsetof(user_entry, user_id));
    u->realm = realm;
    u->active = 1;
    u->user_quota = -1;
    u->user_budget = -1;
    memcpy(u->user_id, user_id, strlen(user_id) + 1);
    if (cidr != NULL) {
        memcpy((char *)u + at, cidr, sizeof(*cidr));
        u->has_cidr = 1;
        u->cidr_len = (uint8_t)cidr_len;
    }
    return size;
}

user_entry *
tp__user_entry_new(uint32_t realm, const char *user_id, const tp_addr *cidr,
                   int cidr_len)
{
    size_t at = 0, size = tp__user_entry_size(user_id, cidr != NULL, &at);
    user_entry *u = malloc(size);

    if (u != NULL)
        tp__user_entry_make(u, size, realm, user_id, cidr, cidr_len);
    return u;
}

user_entry *
tp__user_entry_dup(const user_entry *u)
{
    size_t at = 0, size = tp__user_entry_size(u->user_id, u->has_cidr, &at);
    user_entry *c;

    c = malloc(size);
    if (c != NULL)
        memcpy(c, u, size);
    return c;
}

int
tp__user_entry_same(const user_entry *a, const user_entry *b)
{
    return a->realm == b->realm && a->active == b->active &&
           a->revoked_before == b->revoked_before &&
           a->user_quota == b->user_quota &&
           a->user_budget == b->user_budget && a->used == b->used &&
           a->has_cidr == b->has_cidr &&
           strcmp(a->user_id, b->user_id) == 0 &&
           (!a->has_cidr ||
            (a->cidr_len == b->cidr_len &&
             memcmp(user_cidr(a), user_cidr(b), sizeof(tp_addr)) == 0));
}

revoked_entry *
tp__revoked_entry_new(uint32_t realm, const char *username)
{
    size_t len = strlen(username) + 1;
    revoked_entry *v = malloc(offsetof(revoked_entry, username) + len);

    if (v == NULL)
        return NULL;
    v->realm = realm;
    v->mark = 0;
    memcpy(v->username, username, len);
    return v;
}

void
tp__overlay_free(overlay *o)
{
    if (o != NULL) {
        free(o->e);
        free(o);
    }
}

static int
ov_same(const ov_entry *a, enum ov_kind kind, const char *realm,
        const char *key)
{
    return a->kind == kind && strcmp(a->realm, realm) == 0 &&
           strcmp(a->key, key) == 0;
}

/* Is there an entry of kind for (realm, key)?  For OV_REVOKE_USER,
 * *before receives the latest revocation time. */
int
tp__overlay_has(const overlay *o, enum ov_kind kind, const char *realm,
                const char *key, int64_t *before)
{
    double now;
    size_t i;
    int found = 0;

    if (o == NULL || o->n == 0)
        return 0;
    now = mono_now();
    for (i = 0; i < o->n; i++) {
        const ov_entry *e = &o->e[i];

        if (e->until < now || !ov_same(e, kind, realm, key))
            continue;
        if (before != NULL && (!found || e->before > *before))
            *before = e->before;
        found = 1;
    }
    return found;
}

/*
 * Publish a new overlay: the old entries that have not expired and are
 * not cancelled, plus add (if not NULL).  cancel_kind/cancel_* remove
 * matching entries (an enable cancels a disable, an unkill a kill).
 * Called by the store thread only.
 */
void
tp__overlay_update(tp_store *st, const ov_entry *add, int cancel_kind,
                   const char *cancel_realm, const char *cancel_key)
{
    overlay *old, *o;
    double now = mono_now();
    size_t i, n = 0;

    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return;
    old = atomic_load(&st->ov); /* only this thread swaps it */
    o->e = calloc((old != NULL ? old->n : 0) + 1, sizeof(*o->e));
    if (o->e == NULL) {
        free(o);
        return;
    }
    for (i = 0; old != NULL && i < old->n; i++) {
        const ov_entry *e = &old->e[i];

        if (e->until < now)
            continue;
        if (cancel_kind >= 0 &&
            ov_same(e, (enum ov_kind)cancel_kind, cancel_realm, cancel_key))
            continue;
        if (n < OVERLAY_MAX)
            o->e[n++] = *e;
    }
    if (add != NULL && n < OVERLAY_MAX)
        o->e[n++] = *add;
    o->n = n;
    atomic_store(&st->ov, o);
    tp__store_changed(st);
    tp__synchronize_readers(st);
    tp__overlay_free(old);
}

int
tp__cmp_origin(const void *a, const void *b)
{
    const origin_entry *x = a, *y = b;
    int c = strcmp(x->origin, y->origin);

    if (c != 0)
        return c;
    return (x->realm > y->realm) - (x->realm < y->realm);
}

/* Sort s->origins and keep one pair of a realm listing an origin twice. */
void
tp__index_origins(snapshot *s)
{
    size_t i, o;

    if (s->norigins > 1)
        qsort(s->origins, s->norigins, sizeof(*s->origins), tp__cmp_origin);
    /* A realm listing an origin twice: keep one pair. */
    for (i = 0, o = 0; i < s->norigins; i++) {
        if (o > 0 && s->origins[o - 1].realm == s->origins[i].realm &&
            strcmp(s->origins[o - 1].origin, s->origins[i].origin) == 0) {
            free(s->origins[i].origin);
            continue;
        }
        s->origins[o++] = s->origins[i];
    }
    s->norigins = o;
}

/* Enter the read side and take the current snapshot and overlay, or fail
 * closed when the snapshot is too old.  On success the caller must call
 * unpin with *parity. */
snapshot *
tp__pin(tp_store *st, overlay **ov, int *parity, tp_status *status,
        tp_error *err)
{
    struct timespec now;
    long long age_ms;
    snapshot *s;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    age_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
             atomic_load(&st->current_ms);
    *parity = read_enter(st);
    s = atomic_load(&st->cur);
    if (s == NULL) {
        read_leave(st, *parity);
        *status = tp__fail(err, TP_ESTALE, "no policy loaded yet: "
                           "PostgreSQL not reached; failing closed");
        return NULL;
    }
    if (age_ms > (long long)st->max_staleness * 1000) {
        read_leave(st, *parity);
        *status = tp__fail(err, TP_ESTALE, "policy last confirmed %lld s "
                           "ago (bound %" PRIu32 " s): PostgreSQL is "
                           "unreachable; failing closed", age_ms / 1000,
                           st->max_staleness);
        return NULL;
    }
    *ov = atomic_load(&st->ov);
    return s;
}

void
tp__unpin(tp_store *st, int parity)
{
    read_leave(st, parity);
}
