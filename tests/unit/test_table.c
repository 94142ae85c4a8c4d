/*
 * test_table.c - the store's lock-free tables (policy/src/store_table.c):
 * put, replace, remove, tombstones, rebuilds and iteration against a
 * reference (alone, and over a base: store_base.c), and readers looking
 * up while one writer churns (run under ASan by `make asan` and under
 * TSan by `make tsan`: a reader must never see a freed or half-written
 * entry, nor miss a key that stays).
 */
#include "tp_test.h"

#include "store_int.h"

#include <pthread.h>
#include <stdlib.h>

#define N 5000

static user_entry *
entry(uint32_t realm, const char *id, int64_t v)
{
    user_entry *u = tp__user_entry_new(realm, id, NULL, 0);

    assert_non_null(u);
    u->user_quota = v;
    u->user_budget = v; /* readers check the two agree */
    return u;
}

static void
name(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "user-%d", i);
}

static void
test_put_find_replace_del(void **state)
{
    tp__table t;
    tp__garbage g = {0};
    user_entry *a, *b;

    (void)state;
    assert_int_equal(tp__table_init(&t, offsetof(user_entry, user_id), 0), 0);
    assert_null(tp__table_find(&t, 0, "alice"));
    a = entry(0, "alice", 1);
    assert_int_equal(tp__table_put(&t, a, &g), 0);
    assert_ptr_equal(tp__table_find(&t, 0, "alice"), a);
    assert_null(tp__table_find(&t, 1, "alice")); /* realm is in the key */
    assert_int_equal(g.n, 0);
    b = entry(0, "alice", 2);
    assert_int_equal(tp__table_put(&t, b, &g), 0); /* replaces a */
    assert_ptr_equal(tp__table_find(&t, 0, "alice"), b);
    assert_int_equal(g.n, 1);
    assert_ptr_equal(g.p[0], a);
    assert_int_equal(atomic_load(&t.used), 1);
    assert_int_equal(tp__table_del(&t, 0, "alice", &g), 0);
    assert_null(tp__table_find(&t, 0, "alice"));
    assert_int_equal(g.n, 2);
    assert_int_equal(atomic_load(&t.used), 0);
    assert_int_equal(t.dead, 1);
    assert_int_equal(tp__table_del(&t, 0, "nobody", &g), 0); /* no-op */
    /* Emptied (find skips the hash while nothing is live): a key put
     * again is found again, in the tombstone's slot or past it. */
    a = entry(0, "alice", 3);
    assert_int_equal(tp__table_put(&t, a, &g), 0);
    assert_int_equal(atomic_load(&t.used), 1);
    assert_ptr_equal(tp__table_find(&t, 0, "alice"), a);
    assert_null(tp__table_find(&t, 0, "bob"));
    tp__garbage_flush(NULL, &g);
    tp__garbage_clear(&g);
    tp__table_free(&t, free);
}

/* Inserts, removals and re-inserts against a reference: every live key
 * is found with its latest value, no removed key is, iteration yields
 * each live entry once, and tombstones never fill the table. */
/* A base as store_base.c lays one out, in memory: keys 0..n-1 (value
 * -(k + 1)) as entries from offset 256, slots of offset / 8. */
typedef struct mem_base {
    char *map;
    size_t len;
    uint32_t *slot;
    size_t mask;
} mem_base;

static void
mem_base_make(mem_base *b, int n, int realms)
{
    size_t at = 256, cap = 16, j;
    char id[32];
    int k;

    while (cap < (size_t)n * 2)
        cap *= 2;
    b->len = 256 + (size_t)n * 64;
    b->map = calloc(1, b->len);
    b->slot = calloc(cap, sizeof(*b->slot));
    b->mask = cap - 1;
    assert_non_null(b->map);
    assert_non_null(b->slot);
    for (k = 0; k < n; k++) {
        size_t size;

        name(id, sizeof(id), k);
        size = tp__user_entry_make(b->map + at, b->len - at,
                                   (uint32_t)(k % realms), id, NULL, 0);
        assert_true(size > 0);
        ((user_entry *)(void *)(b->map + at))->user_quota = -(k + 1);
        ((user_entry *)(void *)(b->map + at))->user_budget = -(k + 1);
        j = tp__key_hash((uint32_t)(k % realms), id) & b->mask;
        while (b->slot[j] != 0)
            j = (j + 1) & b->mask;
        b->slot[j] = (uint32_t)(at / 8);
        at = (at + size + 7) & ~(size_t)7;
    }
}

static void
churn_against_reference(int base_n)
{
    static int64_t ref[N]; /* 0: absent, else the value */
    tp__table t;
    tp__garbage g = {0};
    mem_base b = {0};
    char id[32], *copy = NULL;
    size_t pos, seen;
    unsigned seed = 7;
    int i, round;

    memset(ref, 0, sizeof(ref));
    assert_int_equal(tp__table_init(&t, offsetof(user_entry, user_id), 16),
                     0);
    if (base_n > 0) {
        /* Under a base: the table's entries shadow it, removals of base
         * keys are deletion marks; the base is never written. */
        mem_base_make(&b, base_n, 3);
        copy = malloc(b.len);
        assert_non_null(copy);
        memcpy(copy, b.map, b.len);
        t.bmap = b.map;
        t.bslot = b.slot;
        t.bmask = b.mask;
        t.bn = (size_t)base_n;
        atomic_store(&t.count, (size_t)base_n);
        for (i = 0; i < base_n; i++)
            ref[i] = -(i + 1);
    }
    for (round = 0; round < 20 * N; round++) {
        int k = (int)(rand_r(&seed) % N);

        name(id, sizeof(id), k);
        if (rand_r(&seed) % 3 == 0) {
            assert_int_equal(tp__table_del(&t, (uint32_t)(k % 3), id, &g),
                             0);
            ref[k] = 0;
        } else {
            ref[k] = round + 1;
            assert_int_equal(tp__table_put(&t, entry((uint32_t)(k % 3), id,
                                                     ref[k]), &g), 0);
        }
        if (g.n > 1000)
            tp__garbage_flush(NULL, &g);
        /* 3/4 at most taken, live or tombstones */
        assert_true((atomic_load(&t.used) + t.dead) * 4 <=
                    (atomic_load(&t.slots)->mask + 1) * 3);
    }
    seen = 0;
    for (i = 0; i < N; i++) {
        const user_entry *u;

        name(id, sizeof(id), i);
        u = tp__table_find(&t, (uint32_t)(i % 3), id);
        if (ref[i] == 0) {
            assert_null(u);
        } else {
            assert_non_null(u);
            assert_int_equal(u->user_quota, ref[i]);
            seen++;
        }
    }
    if (base_n == 0)
        assert_int_equal(atomic_load(&t.used), seen);
    assert_int_equal(atomic_load(&t.count), seen);
    pos = 0;
    i = 0;
    while (tp__table_next(&t, &pos) != NULL)
        i++;
    assert_int_equal((size_t)i, seen);
    tp__garbage_flush(NULL, &g);
    tp__garbage_clear(&g);
    tp__table_free(&t, free);
    if (base_n > 0) {
        assert_memory_equal(copy, b.map, b.len);
        free(copy);
        free(b.map);
        free(b.slot);
    }
}

static void
test_churn_against_reference(void **state)
{
    (void)state;
    churn_against_reference(0);
}

static void
test_churn_over_base(void **state)
{
    (void)state;
    churn_against_reference(N / 2);
}

struct reader {
    tp_store *st;
    tp__table *t;
    atomic_int *stop;
    long lookups;
    int bad;
};

/* Keys 0..99 are always present (only replaced): a reader must find each
 * every time, whole. */
static void *
reader_thread(void *arg)
{
    struct reader *r = arg;
    char id[32];
    int i = 0;

    while (!atomic_load(r->stop)) {
        int p = read_enter(r->st);
        const user_entry *u;

        name(id, sizeof(id), i % 100);
        u = tp__table_find(r->t, 0, id);
        if (u == NULL || u->user_quota != u->user_budget ||
            strcmp(u->user_id, id) != 0)
            r->bad++;
        read_leave(r->st, p);
        r->lookups++;
        i++;
    }
    return NULL;
}

static void
readers_during_churn(int with_base)
{
    static const tp__static_policy none;
    tp__table t;
    tp__garbage g = {0};
    struct reader r[2];
    pthread_t th[2];
    atomic_int stop;
    tp_error err;
    tp_store *st = tp__store_new_static(&none, NULL, &err);
    mem_base b = {0};
    char id[32];
    int i, k;

    assert_non_null(st);
    atomic_init(&stop, 0);
    assert_int_equal(tp__table_init(&t, offsetof(user_entry, user_id), 0), 0);
    if (with_base) {
        /* The kept keys start in the base (realm 0): the first put of
         * each shadows it while readers look. */
        mem_base_make(&b, 150, 1);
        t.bmap = b.map;
        t.bslot = b.slot;
        t.bmask = b.mask;
        t.bn = 150;
        atomic_store(&t.count, 150);
    }
    for (i = 0; i < 100 && !with_base; i++) {
        name(id, sizeof(id), i);
        assert_int_equal(tp__table_put(&t, entry(0, id, i), &g), 0);
    }
    for (k = 0; k < 2; k++) {
        r[k].st = st;
        r[k].t = &t;
        r[k].stop = &stop;
        r[k].lookups = 0;
        r[k].bad = 0;
        assert_int_equal(pthread_create(&th[k], NULL, reader_thread, &r[k]),
                         0);
    }
    /* The writer: replace the kept keys, add and remove others (slot
     * arrays rebuilt as the table grows and its tombstones pile up), and
     * free what it replaced after each grace period. */
    for (k = 0; k < 200; k++) {
        for (i = 0; i < 100; i++) {
            name(id, sizeof(id), i);
            assert_int_equal(tp__table_put(&t, entry(0, id, k * 1000 + i),
                                           &g), 0);
        }
        for (i = 0; i < 50; i++) {
            name(id, sizeof(id), 1000 + k * 50 + i);
            assert_int_equal(tp__table_put(&t, entry(1, id, i), &g), 0);
            if (k > 0) {
                name(id, sizeof(id), 1000 + (k - 1) * 50 + i);
                assert_int_equal(tp__table_del(&t, 1, id, &g), 0);
            }
        }
        for (i = 100; i < 150 && with_base; i++) {
            /* base keys removed (a deletion mark) and back (replacing
             * the mark) */
            name(id, sizeof(id), i);
            if (k % 2 == 0)
                assert_int_equal(tp__table_del(&t, 0, id, &g), 0);
            else
                assert_int_equal(tp__table_put(&t, entry(0, id, k), &g),
                                 0);
        }
        tp__garbage_flush(st, &g);
    }
    atomic_store(&stop, 1);
    for (k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        assert_true(r[k].lookups > 0);
        assert_int_equal(r[k].bad, 0);
    }
    print_message("%ld + %ld lookups during 200 rounds of changes\n",
                  r[0].lookups, r[1].lookups);
    /* 100 kept, the last round's 50 in realm 1, and over the base its
     * 50 others, back after the last (odd) round */
    assert_int_equal(atomic_load(&t.count), with_base ? 200 : 150);
    tp__garbage_clear(&g);
    tp__table_free(&t, free);
    tp_store_free(st);
    free(b.map);
    free(b.slot);
}

static void
test_readers_during_churn(void **state)
{
    (void)state;
    readers_during_churn(0);
}

static void
test_readers_over_base(void **state)
{
    (void)state;
    readers_during_churn(1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_find_replace_del),
        cmocka_unit_test(test_churn_against_reference),
        cmocka_unit_test(test_churn_over_base),
        cmocka_unit_test(test_readers_during_churn),
        cmocka_unit_test(test_readers_over_base),
    };

    return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
