/*
 * fuzz_base.c - libFuzzer target for the check of a base file
 * (policy/src/store_base.c: tp__base_check), what a store maps from its
 * node's share directory before it answers from it.
 *
 * Why: the directory is the node's own, so a base is trusted like memory
 * - but a file cut short by a full disk, one from another version, or a
 * stray write must be refused, never read past its end: every lookup,
 * iteration and client-network read below stays inside the file.
 *
 * What one input is: the file's bytes (seeds: tests/fuzz/corpus_base,
 * written by make_corpus.py as store_base.c lays a base out).  When the
 * check accepts it: every user and revoked credential is iterated (the
 * tables' own lookups run for each), each is looked up by its key, and a
 * user's client network is read.
 *
 * Checked, beyond ASan/UBSan/LSan: the iterations yield as many entries
 * as the header counts; a lookup of an iterated key finds nothing or an
 * entry with that key; realm indices are below the realm count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk(tp__table *t, int users, size_t nrealms)
{
    size_t pos = 0, n = 0;
    const char *e;

    while ((e = tp__table_next(t, &pos)) != NULL) {
        const char *name = e + t->name_off;
        const char *f;
        uint32_t realm;

        memcpy(&realm, e, sizeof(realm));
        if (realm >= nrealms)
            abort();
        /* (a damaged base may hold an entry off its probe chain: then
         * it is not found, which is not unsafe) */
        f = tp__table_find(t, realm, name);
        if (f != NULL && (memcmp(f, &realm, sizeof(realm)) != 0 ||
                          strcmp(f + t->name_off, name) != 0))
            abort();
        if (users && ((const user_entry *)(const void *)e)->has_cidr) {
            volatile int fam =
                user_cidr((const user_entry *)(const void *)e)->family;

            (void)fam;
        }
        n++;
    }
    if (n != atomic_load(&t->count))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp__table users, revoked;
    size_t nrealms;
    char *map;

    /* mapped files are page-aligned: a copy (malloc aligns to 16),
     * exactly size long, so that ASan sees a read past the end */
    map = malloc(size > 0 ? size : 1);
    if (map == NULL)
        return 0;
    memcpy(map, data, size);
    if (tp__table_init(&users, offsetof(user_entry, user_id), 0) != 0 ||
        tp__table_init(&revoked, offsetof(revoked_entry, username), 0) !=
            0)
        abort();
    if (tp__base_check(map, size, &users, &revoked, &nrealms) == 0) {
        walk(&users, 1, nrealms);
        walk(&revoked, 0, nrealms);
    }
    tp__table_free(&users, free);
    tp__table_free(&revoked, free);
    free(map);
    return 0;
}
