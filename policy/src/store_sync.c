/*
 * store_sync.c - a full read of the policy applied in place: the check
 * the store runs every reload_interval, and what it does when the change
 * log cannot say what changed (store_delta.c), without building a second
 * copy of a million users beside the first.
 *
 * What: in one REPEATABLE READ transaction, the realms are read again
 * (tp__realms_load) and - when they are the same realms in the same
 * order - published over the same tables; then every user (with its
 * bytes in the budget period) and every revoked credential is read
 * through a cursor and compared with its entry: an entry that differs is
 * replaced, one that is the same is marked as found.  Entries the read
 * did not find (marked by an earlier read, or created before it) are
 * removed afterwards, the realms' byte sums are set from the same
 * transaction, and the change log's position is taken in it too.
 *
 * The mark: one byte of each entry, written by the store thread only and
 * never read by decisions.  Each sync flips the store's mark; an entry
 * found carries the new one, a change-log entry made between syncs
 * carries the current one; after the read, what still carries the old
 * mark was not found.
 *
 * Readers see the policy move entry by entry from the old state to the
 * new, as with the change log; memory grows by one batch of rows and the
 * entries replaced in it, not by a copy.  A realm added or removed needs
 * new tables (realm indices move): *rebuild, and store.c loads in full.
 *
 * Threads: the store thread only.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sync_ctx {
    tp_store *st;
    snapshot *s;        /* the snapshot in force (realms as read) */
    uint8_t mark;       /* what found entries carry */
    long changed;
} sync_ctx;

static tp_status
sync_users(void *arg, PGresult *r, tp__garbage *g, tp_error *err)
{
    sync_ctx *x = arg;
    int i, n = PQntuples(r);

    for (i = 0; i < n; i++) {
        long ri = tp__find_realm(x->s, PQgetvalue(r, i, 0));
        _Alignas(user_entry) char buf[USER_ENTRY_MAX];
        user_entry *old, *nu, *row = (user_entry *)(void *)buf;
        size_t size;

        if (ri < 0)
            return tp__fail(err, TP_EDB, "reading the policy: row for "
                            "unknown realm");
        /* Built on the stack first: most rows are unchanged. */
        size = tp__user_row_make(buf, sizeof(buf), r, i, (uint32_t)ri);
        if (size == 0)
            return tp__fail(err, TP_EDB, "reading the policy: user id "
                            "too long");
        row->used = strtoull(PQgetvalue(r, i, 7), NULL, 10);
        row->mark = x->mark;
        old = tp__table_find(&x->s->tab->users, (uint32_t)ri, row->user_id);
        if (old != NULL && tp__user_entry_same(old, row)) {
            old->mark = x->mark; /* the writer's byte; readers skip it */
            continue;
        }
        nu = malloc(size);
        if (nu == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory reading users");
        memcpy(nu, buf, size);
        tp__publish_user(x->st, &x->s->realms[ri], old, nu);
        if (tp__table_put(&x->s->tab->users, nu, g) != 0) {
            free(nu);
            return tp__fail(err, TP_ENOMEM, "out of memory reading users");
        }
        x->changed++;
    }
    return TP_OK;
}

static tp_status
sync_revoked(void *arg, PGresult *r, tp__garbage *g, tp_error *err)
{
    sync_ctx *x = arg;
    int i, n = PQntuples(r);

    for (i = 0; i < n; i++) {
        long ri = tp__find_realm(x->s, PQgetvalue(r, i, 0));
        const char *name = PQgetvalue(r, i, 1);
        revoked_entry *old, *v;

        if (ri < 0)
            return tp__fail(err, TP_EDB, "reading the policy: row for "
                            "unknown realm");
        old = tp__table_find(&x->s->tab->revoked, (uint32_t)ri, name);
        if (old != NULL) {
            old->mark = x->mark;
            continue;
        }
        v = tp__revoked_entry_new((uint32_t)ri, name);
        if (v == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory");
        v->mark = x->mark;
        if (tp__table_put(&x->s->tab->revoked, v, g) != 0) {
            free(v);
            return tp__fail(err, TP_ENOMEM, "out of memory");
        }
        tp__publish_revoked(x->st, &x->s->realms[ri], name);
        x->changed++;
    }
    return TP_OK;
}

/* Remove what the read did not find; -1 when out of memory. */
static int
sweep(sync_ctx *x, tp__garbage *g)
{
    tp__tables *t = x->s->tab;
    size_t pos = 0;
    user_entry *u;
    revoked_entry *v;

    /* Deleting leaves tombstones only: the slot array is not rebuilt
     * under the iteration. */
    while ((u = tp__table_next(&t->users, &pos)) != NULL) {
        if (u->mark == x->mark)
            continue;
        if (tp__table_del(&t->users, u->realm, u->user_id, g) != 0)
            return -1;
        x->changed++;
    }
    pos = 0;
    while ((v = tp__table_next(&t->revoked, &pos)) != NULL) {
        if (v->mark == x->mark)
            continue;
        if (tp__table_del(&t->revoked, v->realm, v->username, g) != 0)
            return -1;
        x->changed++;
    }
    return 0;
}

/* After a sync that failed half way: every entry carries the store's
 * mark again, as between syncs. */
static void
remark(tp__tables *t, uint8_t mark)
{
    size_t pos = 0;
    user_entry *u;
    revoked_entry *v;

    while ((u = tp__table_next(&t->users, &pos)) != NULL)
        u->mark = mark;
    pos = 0;
    while ((v = tp__table_next(&t->revoked, &pos)) != NULL)
        v->mark = mark;
}

/* The realms' byte sums, from the read's transaction. */
static tp_status
realm_sums(sync_ctx *x, PGresult **out, tp_error *err)
{
    return tp__load_query(x->st->conn,
                          "SELECT g.realm, sum(g.bytes_in + g.bytes_out)"
                          "::text FROM turnpolicy.usage g JOIN "
                          "turnpolicy.realms r ON r.name = g.realm WHERE "
                          "r.budget_period IS NOT NULL AND g.ended_at > "
                          "now() - make_interval(secs => r.budget_period) "
                          "GROUP BY g.realm", 0, NULL, out, err);
}

tp_status
tp__snapshot_sync(tp_store *st, int *rebuild, tp_error *err)
{
    snapshot *cur = atomic_load(&st->cur), *ns = NULL;
    PGresult *r = NULL, *sums = NULL;
    tp__garbage g = {0};
    char sql[1024];
    sync_ctx x;
    tp_status status;
    size_t i;
    int k;

    memset(&x, 0, sizeof(x));
    *rebuild = 0;
    if (cur == NULL || cur->tab == NULL) {
        *rebuild = 1;
        return TP_OK;
    }
    status = tp__load_query(st->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ "
                            "READ ONLY", 0, NULL, &r, err);
    if (status != TP_OK)
        return status;
    PQclear(r);
    ns = calloc(1, sizeof(*ns));
    if (ns == NULL) {
        status = tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    ns->loaded_at = tp_now();
    status = tp__realms_load(st->conn, st->jwt_set ? &st->jwt : NULL, ns,
                             err);
    if (status != TP_OK)
        goto fail;
    if (ns->nrealms != cur->nrealms) {
        *rebuild = 1;
        goto fail;
    }
    for (i = 0; i < ns->nrealms; i++) {
        if (strcmp(ns->realms[i].name, cur->realms[i].name) != 0) {
            *rebuild = 1;
            goto fail;
        }
    }
    /* The realms first, over the same tables (the tables' realm indices
     * are the same ones). */
    ns->tab = cur->tab;
    tp__store_publish(st, ns);
    ns = NULL;
    x.st = st;
    x.s = atomic_load(&st->cur);
    st->mark ^= 1;
    x.mark = st->mark;
    snprintf(sql, sizeof(sql), "SELECT %s, coalesce(x.used, 0)::text FROM "
             "turnpolicy.users u LEFT JOIN (SELECT g.realm, g.user_id, "
             "sum(g.bytes_in + g.bytes_out) AS used FROM turnpolicy.usage g "
             "JOIN turnpolicy.realms r ON r.name = g.realm WHERE "
             "r.budget_period IS NOT NULL AND g.ended_at > now() - "
             "make_interval(secs => r.budget_period) GROUP BY 1, 2) x ON "
             "x.realm = u.realm AND x.user_id = u.user_id",
             tp__user_columns);
    status = tp__load_cursor(st->conn, sql, sync_users, &x, st, err);
    if (status == TP_OK)
        status = tp__load_cursor(st->conn, "SELECT realm, username FROM "
                                 "turnpolicy.revoked_credentials",
                                 sync_revoked, &x, st, err);
    if (status == TP_OK)
        status = realm_sums(&x, &sums, err);
    if (status == TP_OK)
        status = tp__chglog_start(st->conn, &st->chg, err);
    if (status != TP_OK)
        goto fail;
    status = tp__load_query(st->conn, "COMMIT", 0, NULL, &r, err);
    if (status != TP_OK) {
        PQclear(sums);
        remark(x.s->tab, st->mark);
        return status;
    }
    PQclear(r);
    for (i = 0; i < x.s->tab->nrealms; i++) {
        uint64_t b = 0;

        for (k = 0; k < PQntuples(sums); k++)
            if (strcmp(PQgetvalue(sums, k, 0), x.s->realms[i].name) == 0)
                b = strtoull(PQgetvalue(sums, k, 1), NULL, 10);
        atomic_store(&x.s->tab->realm_used[i], b);
    }
    PQclear(sums);
    if (sweep(&x, &g) != 0) {
        tp__garbage_flush(st, &g);
        tp__garbage_clear(&g);
        remark(x.s->tab, st->mark);
        *rebuild = 1; /* out of memory: try the other way */
        return TP_OK;
    }
    tp__garbage_flush(st, &g);
    tp__garbage_clear(&g);
    if (x.changed > 0)
        tp__store_changed(st);
    return TP_OK;
fail:
    PQclear(PQexec(st->conn, "ROLLBACK"));
    PQclear(sums);
    tp__snapshot_free(ns);
    if (x.s != NULL)
        remark(x.s->tab, st->mark);
    return status;
}
