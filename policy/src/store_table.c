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

/* FNV-1a over the realm index and the name. */
static uint32_t
key_hash(uint32_t realm, const char *name)
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

void *
tp__table_find(const tp__table *t, uint32_t realm, const char *name)
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
    j = key_hash(realm, name) & s->mask;
    for (;;) {
        void *e = atomic_load_explicit(&s->slot[j], memory_order_acquire);

        if (e == NULL)
            return NULL;
        if (e != TOMBSTONE && ent_realm(e) == realm &&
            strcmp(ent_name(t, e), name) == 0)
            return e;
        j = (j + 1) & s->mask;
    }
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
        j = key_hash(ent_realm(e), ent_name(t, e)) & s->mask;
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

int
tp__table_put(tp__table *t, void *e, tp__garbage *g)
{
    uint32_t realm = ent_realm(e);
    const char *name = ent_name(t, e);
    tp__slots *s = atomic_load(&t->slots);
    size_t j, free_at = SIZE_MAX;

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
    j = key_hash(realm, name) & s->mask;
    for (;;) {
        void *o = atomic_load_explicit(&s->slot[j], memory_order_relaxed);

        if (o == NULL)
            break;
        if (o == TOMBSTONE) {
            if (free_at == SIZE_MAX)
                free_at = j;
        } else if (ent_realm(o) == realm &&
                   strcmp(ent_name(t, o), name) == 0) {
            if (tp__garbage_add(g, o) != 0)
                return -1;
            atomic_store_explicit(&s->slot[j], e, memory_order_release);
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
tp__table_del(tp__table *t, uint32_t realm, const char *name, tp__garbage *g)
{
    tp__slots *s = atomic_load(&t->slots);
    size_t j = key_hash(realm, name) & s->mask;

    for (;;) {
        void *o = atomic_load_explicit(&s->slot[j], memory_order_relaxed);

        if (o == NULL)
            return 0;
        if (o != TOMBSTONE && ent_realm(o) == realm &&
            strcmp(ent_name(t, o), name) == 0) {
            if (tp__garbage_add(g, o) != 0)
                return -1;
            atomic_store_explicit(&s->slot[j], TOMBSTONE,
                                  memory_order_release);
            t->used--;
            t->dead++;
            return 0;
        }
        j = (j + 1) & s->mask;
    }
}

void *
tp__table_next(const tp__table *t, size_t *pos)
{
    const tp__slots *s = atomic_load(&t->slots);

    while (s != NULL && *pos <= s->mask) {
        void *e = atomic_load_explicit(&s->slot[(*pos)++],
                                       memory_order_acquire);

        if (e != NULL && e != TOMBSTONE)
            return e;
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
            free_ent(e);
    }
    free(s);
    atomic_store(&t->slots, NULL);
    t->used = t->dead = 0;
}
