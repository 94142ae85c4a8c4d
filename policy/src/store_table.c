/*
 * store_table.c - the tables of users and revoked credentials: hash
 * tables one writer changes entry by entry while readers look up without
 * a lock.
 *
 * What: open addressing with linear probing over an array of atomic
 * pointers to entries.  An entry is immutable once published; it starts
 * with its realm index (uint32_t) and holds its NUL-terminated name at
 * name_off.  A change publishes a new entry into the slot (one atomic
 * store) and hands the replaced one to a garbage list, freed after a
 * grace period (tp__garbage_flush); a removal leaves a tombstone, which
 * keeps the probe chains of other keys intact.  When live entries plus
 * tombstones would pass 3/4 of the slots, the writer builds a new slot
 * array sized for twice the live entries and swaps it in; the old array
 * goes to the garbage list too.
 *
 * Why: one change to one user must cost O(1), not a copy of a million
 * users (issue 13), and decisions keep reading without a lock: a reader
 * sees, slot by slot, either the old or the new entry - never a torn one.
 *
 * Over a base (store_base.c, share_dir): a table may have read-only
 * entries under it, in a mapped file; a lookup asks the table's own
 * slots first and the base after, a removal of a base key leaves a
 * deletion mark (below), and iteration yields the base entries no own
 * slot shadows.  While a base is being written, puts and finds go to
 * the file instead (tp__basew_put / tp__basew_find).
 *
 * Threads: one writer (the store thread, or a builder before the table is
 * published); any number of readers inside tp__pin / tp__unpin.
 * Workload: every decision does one lookup; the writer applies tens to
 * thousands of changes per second.
 */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A removed entry: probing goes on past it. */
static char tombstone_mark;
#define TOMBSTONE ((void *)&tombstone_mark)

/* Over a base, a removed key must hide the base's entry: its slot holds
 * a deletion mark, a pointer to a copy of the key (realm and name, as an
 * entry lays them out) with its low bit set.  Entries are malloc'd, so
 * that bit is otherwise 0. */
#define GONE(p) (((uintptr_t)(p)&1u) != 0)
#define UNTAG(p) ((void *)((uintptr_t)(p) & ~(uintptr_t)1u))

/* FNV-1a over the realm index and the name. */
uint32_t
tp__key_hash(uint32_t realm, const char *name)
{
    uint32_t h = 2166136261u ^ realm;

    h *= 16777619u;
    for (; *name != '\0'; name++) {
        h ^= (unsigned char)*name;
        h *= 16777619u;
    }
    return h;
}

static uint32_t
ent_realm(const void *e)
{
    uint32_t r;

    memcpy(&r, e, sizeof(r));
    return r;
}

static const char *
ent_name(const tp__table *t, const void *e)
{
    return (const char *)e + t->name_off;
}

static tp__slots *
slots_new(size_t cap)
{
    tp__slots *s = calloc(1, sizeof(*s) + cap * sizeof(s->slot[0]));

    if (s == NULL)
        return NULL;
    s->mask = cap - 1;
    return s;
}

int
tp__table_init(tp__table *t, size_t name_off, size_t expect)
{
    size_t cap = 16;
    tp__slots *s;

    while (cap < expect * 2)
        cap *= 2;
    memset(t, 0, sizeof(*t));
    t->name_off = name_off;
    s = slots_new(cap);
    if (s == NULL)
        return -1;
    atomic_store(&t->slots, s);
    return 0;
}

/* The table's own slot for (realm, name): the entry, a deletion mark
 * (tagged), or NULL when the table has nothing for the key. */
static void *
own_find(const tp__table *t, uint32_t realm, const char *name, uint32_t h)
{
    const tp__slots *s = atomic_load_explicit(&t->slots,
                                              memory_order_acquire);
    size_t j;

    /* An empty table (the usual revoked one) costs no hash of the name:
     * a put stores its slot before it counts, so a reader that sees 0
     * has simply come before that put. */
    if (s == NULL ||
        atomic_load_explicit(&t->used, memory_order_acquire) == 0)
        return NULL;
    j = h & s->mask;
    for (;;) {
        void *e = atomic_load_explicit(&s->slot[j], memory_order_acquire);

        if (e == NULL)
            return NULL;
        if (e != TOMBSTONE && ent_realm(UNTAG(e)) == realm &&
            strcmp(ent_name(t, UNTAG(e)), name) == 0)
            return e;
        j = (j + 1) & s->mask;
    }
}

void *
tp__table_find(const tp__table *t, uint32_t realm, const char *name)
{
    uint32_t h;
    void *e;

    if (t->bw != NULL)
        return tp__basew_find(t, realm, name);
    if (t->bmap == NULL &&
        atomic_load_explicit(&t->used, memory_order_acquire) == 0)
        return NULL;
    h = tp__key_hash(realm, name);
    e = own_find(t, realm, name, h);
    if (e != NULL)
        return GONE(e) ? NULL : e;
    return t->bmap != NULL ? tp__base_find(t, realm, name, h) : NULL;
}

int
tp__garbage_add(tp__garbage *g, void *p)
{
    if (p == NULL)
        return 0;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        void **np = realloc(g->p, cap * sizeof(*np));

        if (np == NULL)
            return -1;
        g->p = np;
        g->cap = cap;
    }
    g->p[g->n++] = p;
    return 0;
}

void
tp__garbage_flush(tp_store *st, tp__garbage *g)
{
    size_t i;

    if (g->n == 0)
        return;
    if (st != NULL)
        tp__synchronize_readers(st);
    for (i = 0; i < g->n; i++)
        free(g->p[i]);
    g->n = 0;
}

void
tp__garbage_clear(tp__garbage *g)
{
    free(g->p);
    memset(g, 0, sizeof(*g));
}

/* Rebuild the slot array at cap (>= 2 * live entries), without
 * tombstones; the old array goes to g.  -1 when out of memory. */
static int
rehash(tp__table *t, size_t cap, tp__garbage *g)
{
    tp__slots *old = atomic_load(&t->slots), *s;
    size_t i, j;

    s = slots_new(cap);
    if (s == NULL)
        return -1;
    for (i = 0; i <= old->mask; i++) {
        void *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);

        if (e == NULL || e == TOMBSTONE)
            continue;
        j = tp__key_hash(ent_realm(UNTAG(e)), ent_name(t, UNTAG(e))) &
            s->mask;
        while (atomic_load_explicit(&s->slot[j], memory_order_relaxed) !=
               NULL)
            j = (j + 1) & s->mask;
        atomic_store_explicit(&s->slot[j], e, memory_order_relaxed);
    }
    if (tp__garbage_add(g, old) != 0) {
        free(s);
        return -1;
    }
    atomic_store_explicit(&t->slots, s, memory_order_release);
    t->dead = 0;
    return 0;
}

/* Publish e (an entry or a deletion mark) in the table's own slots,
 * replacing what it held for the key; *was receives that (NULL when
 * nothing). */
static int
own_put(tp__table *t, void *e, tp__garbage *g, void **was)
{
    uint32_t realm = ent_realm(UNTAG(e));
    const char *name = ent_name(t, UNTAG(e));
    tp__slots *s = atomic_load(&t->slots);
    size_t j, free_at = SIZE_MAX;

    *was = NULL;
    /* Room first, so the probe below is done in the array kept: at most
     * 3/4 of the slots taken (live or tombstones); a rebuild leaves at
     * most half taken, so rebuilds are at least cap/4 changes apart. */
    if ((t->used + t->dead + 1) * 4 > (s->mask + 1) * 3) {
        size_t cap = 16;

        while (cap <= (t->used + 1) * 2)
            cap *= 2;
        if (rehash(t, cap, g) != 0)
            return -1;
        s = atomic_load(&t->slots);
    }
    j = tp__key_hash(realm, name) & s->mask;
    for (;;) {
        void *o = atomic_load_explicit(&s->slot[j], memory_order_relaxed);

        if (o == NULL)
            break;
        if (o == TOMBSTONE) {
            if (free_at == SIZE_MAX)
                free_at = j;
        } else if (ent_realm(UNTAG(o)) == realm &&
                   strcmp(ent_name(t, UNTAG(o)), name) == 0) {
            if (tp__garbage_add(g, UNTAG(o)) != 0)
                return -1;
            atomic_store_explicit(&s->slot[j], e, memory_order_release);
            *was = o;
            return 0;
        }
        j = (j + 1) & s->mask;
    }
    if (free_at != SIZE_MAX) {
        j = free_at;
        t->dead--;
    }
    atomic_store_explicit(&s->slot[j], e, memory_order_release);
    t->used++;
    return 0;
}

int
tp__table_put(tp__table *t, void *e, tp__garbage *g)
{
    void *was;
    int existed;

    if (t->bw != NULL)
        return tp__basew_put(t, e);
    /* Counting needs to know whether the key was live before: in the
     * table's own slots, or else in the base. */
    if (own_put(t, e, g, &was) != 0)
        return -1;
    if (was != NULL)
        existed = !GONE(was);
    else
        existed = t->bmap != NULL &&
                  tp__base_find(t, ent_realm(e), ent_name(t, e),
                                tp__key_hash(ent_realm(e),
                                             ent_name(t, e))) != NULL;
    if (!existed)
        atomic_fetch_add(&t->count, 1);
    return 0;
}

int
tp__table_del(tp__table *t, uint32_t realm, const char *name, tp__garbage *g)
{
    tp__slots *s = atomic_load(&t->slots);
    uint32_t h = tp__key_hash(realm, name);
    size_t j = h & s->mask;

    if (t->bmap != NULL && tp__base_find(t, realm, name, h) != NULL) {
        /* The base has it: a deletion mark hides it. */
        size_t len = strlen(name);
        char *m;
        void *o = own_find(t, realm, name, h), *was;

        if (o != NULL && GONE(o))
            return 0;
        m = calloc(1, t->name_off + len + 1);
        if (m == NULL)
            return -1;
        memcpy(m, &realm, sizeof(realm));
        memcpy(m + t->name_off, name, len + 1);
        if (own_put(t, (void *)((uintptr_t)m | 1u), g, &was) != 0) {
            free(m);
            return -1;
        }
        atomic_fetch_sub(&t->count, 1);
        return 0;
    }
    for (;;) {
        void *o = atomic_load_explicit(&s->slot[j], memory_order_relaxed);

        if (o == NULL)
            return 0;
        if (o != TOMBSTONE && ent_realm(UNTAG(o)) == realm &&
            strcmp(ent_name(t, UNTAG(o)), name) == 0) {
            if (tp__garbage_add(g, UNTAG(o)) != 0)
                return -1;
            atomic_store_explicit(&s->slot[j], TOMBSTONE,
                                  memory_order_release);
            t->used--;
            t->dead++;
            if (!GONE(o))
                atomic_fetch_sub(&t->count, 1);
            return 0;
        }
        j = (j + 1) & s->mask;
    }
}

void *
tp__table_next(const tp__table *t, size_t *pos)
{
    const tp__slots *s = atomic_load(&t->slots);
    size_t own = s != NULL ? s->mask + 1 : 0;

    while (*pos < own) {
        void *e = atomic_load_explicit(&s->slot[(*pos)++],
                                       memory_order_acquire);

        if (e != NULL && e != TOMBSTONE && !GONE(e))
            return e;
    }
    /* Then the base's entries the table does not shadow. */
    while (t->bmap != NULL && *pos - own <= t->bmask) {
        uint32_t o = t->bslot[*pos - own];
        const void *e;

        (*pos)++;
        if (o == 0)
            continue;
        e = t->bmap + (size_t)o * 8;
        if (own_find(t, ent_realm(e), ent_name(t, e),
                     tp__key_hash(ent_realm(e), ent_name(t, e))) == NULL)
            return (void *)(uintptr_t)e;
    }
    return NULL;
}

void
tp__table_free(tp__table *t, void (*free_ent)(void *))
{
    tp__slots *s = atomic_load(&t->slots);
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i <= s->mask; i++) {
        void *e = atomic_load_explicit(&s->slot[i], memory_order_relaxed);

        if (e != NULL && e != TOMBSTONE)
            free_ent(UNTAG(e));
    }
    free(s);
    atomic_store(&t->slots, NULL);
    t->used = t->dead = 0;
    t->count = 0;
    free(t->wslot);
    t->wslot = NULL;
}
