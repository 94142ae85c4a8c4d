/*
 * store_delta.c - applying what changed in PostgreSQL to the snapshot in
 * force, at the cost of what changed.
 *
 * What: the triggers of schema/007_changes.sql log every changed policy
 * row and the usage records of each user in turnpolicy.changes (seq,
 * xid, table, realm, key, bytes).  A full load (store_load.c) notes where
 * the log stands in its own transaction (tp__chglog_start); after that
 * the store thread reads, on each NOTIFY (at most every 25 ms) and on
 * each heartbeat, the rows past that point (tp__chglog_apply) - in one
 * statement, which is all a read takes when the log has nothing new or
 * usage alone - and, when they name rows to read again, reads the log
 * again and those rows in one REPEATABLE READ transaction:
 *   users                a user's row (and its bytes in the budget
 *                        period): its entry is replaced, or removed;
 *   revoked_credentials  added or removed;
 *   usage                the record's bytes added to the user's and the
 *                        realm's sums;
 *   realms and their secrets, rules, keys (few rows): the realms are
 *                        re-read and published as a new snapshot over
 *                        the same tables of users and revocations.
 * Replaced entries are freed after one grace period per read.
 *
 * Which rows: seq > the last seq seen, or written by a transaction that
 * was in progress at the previous read (pg_snapshot_xip).  seq is taken
 * at insert, not at commit, so a row may commit after a higher one; but
 * its transaction had already written the policy row (the trigger runs
 * after it) and so held its xid when the previous read looked: it is in
 * that read's xip list.  Nothing committed is missed and nothing applied
 * twice.  A full load stays the answer to what a read cannot apply: a
 * TRUNCATE, a realm added or removed (realm indices would move), usage
 * deleted, more than DELTA_MAX rows at once, a hole in the log (rows
 * pruned before this store read them) or a log that went backwards
 * (another database).
 *
 * On a hot standby PostgreSQL keeps a snapshot's running transactions
 * where pg_current_snapshot() does not show them: a row committing late
 * there is not found by its xid, so a store reading a standby also loads
 * in full at least every 60 s (store.c), as it did before the log.
 *
 * Invariants: the result equals a full load at the same point
 * (tests/integration/store_driver.c compares them), except that usage
 * sums do not age out of their period between full loads.
 * Threads: the store thread only.  Workload: a read per notification and
 * per heartbeat; a provisioning storm is a few round trips per read.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELTA_MAX 20000

void
tp__chglog_clear(tp__chglog *cl)
{
    free(cl->xip);
    memset(cl, 0, sizeof(*cl));
}

tp_status
tp__chglog_start(PGconn *c, tp__chglog *cl, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    char *xip;

    st = tp__load_query(c, "SELECT to_regclass('turnpolicy.changes') IS NOT "
                        "NULL", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        tp__chglog_clear(cl);
        return TP_OK;
    }
    PQclear(r);
    st = tp__load_query(c, "SELECT coalesce((SELECT max(seq) FROM "
                        "turnpolicy.changes), 0)::text, "
                        "(SELECT coalesce(array_agg(x), '{}')::text FROM "
                        "pg_snapshot_xip(pg_current_snapshot()) x), "
                        "pg_is_in_recovery()", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    xip = strdup(PQgetvalue(r, 0, 1));
    if (xip == NULL) {
        PQclear(r);
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    free(cl->xip);
    cl->xip = xip;
    cl->seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    cl->on = 1;
    cl->standby = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    cl->read_at = mono_now();
    PQclear(r);
    return TP_OK;
}

/* Tables whose rows are part of a realm's own policy. */
static int
realm_table(const char *tab)
{
    static const char *const t[] = {"realms", "secrets", "legacy_secrets",
                                    "host_rules", "peer_rules", "jwt_keys"};
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(tab, t[i]) == 0)
            return 1;
    return 0;
}

/* The same realms, by name, in the same order: the tables' realm
 * indices stay valid. */
static int
same_realms(const snapshot *a, const snapshot *b)
{
    size_t i;

    if (a->nrealms != b->nrealms)
        return 0;
    for (i = 0; i < a->nrealms; i++)
        if (strcmp(a->realms[i].name, b->realms[i].name) != 0)
            return 0;
    return 1;
}

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* What one read found, before it is applied. */
typedef struct delta {
    PGresult *log;      /* the change rows */
    PGresult *users;    /* the users they name, present or not */
    PGresult *revoked;  /* the credentials they name, present or not */
    snapshot *realms;   /* re-read realms, or NULL */
    char *xip;
    int64_t seq;
    int need_txn;       /* a probe found rows to read again */
} delta;

/* The columns of a log read (delta_read). */
enum { LOG_XIP, LOG_LO, LOG_HI, LOG_SEQ, LOG_TAB, LOG_REALM, LOG_KEY,
       LOG_BYTES };

static void
delta_clear(delta *d)
{
    PQclear(d->log);
    PQclear(d->users);
    PQclear(d->revoked);
    tp__snapshot_free(d->realms);
    free(d->xip);
    memset(d, 0, sizeof(*d));
}

/* Read the log; unless probe, also the rows it names (the caller has
 * begun a REPEATABLE READ transaction).  A probe sets d->need_txn when
 * there are rows to read again. */
static tp_status
delta_read(tp_store *st, const tp__chglog *cl, const snapshot *cur, int probe,
           delta *d, int *full, tp_error *err)
{
    tp__strbuf ur = {0}, uk = {0}, vr = {0}, vk = {0};
    const char *params[2];
    char seqtxt[24], sql[1024];
    int realm_changed = 0, nu = 0, nv = 0, i, n;
    PGresult *h;
    tp_status status;

    /* One statement, so one snapshot, for where the log stands and what
     * it has past us (a row with NULL seq when it has nothing). */
    snprintf(seqtxt, sizeof(seqtxt), "%" PRId64, cl->seq);
    params[0] = seqtxt;
    params[1] = cl->xip != NULL ? cl->xip : "{}";
    snprintf(sql, sizeof(sql), "SELECT h.xip, h.lo::text, h.hi::text, "
             "c.seq::text, c.tab, c.realm, c.key, coalesce(c.bytes, 0)::text "
             "FROM (SELECT (SELECT coalesce(array_agg(x), '{}')::text FROM "
             "pg_snapshot_xip(pg_current_snapshot()) x) AS xip, (SELECT "
             "min(seq) FROM turnpolicy.changes) AS lo, (SELECT max(seq) FROM "
             "turnpolicy.changes) AS hi) h LEFT JOIN LATERAL (SELECT seq, "
             "tab, realm, key, bytes FROM turnpolicy.changes WHERE seq > "
             "$1::bigint OR xid = ANY($2::xid8[]) ORDER BY seq LIMIT %d) c "
             "ON true", DELTA_MAX + 1);
    status = tp__load_query(st->conn, sql, 2, params, &d->log, err);
    if (status != TP_OK)
        return status;
    h = d->log;
    if ((PQgetisnull(h, 0, 2) && cl->seq > 0) ||
        (!PQgetisnull(h, 0, 2) &&
         strtoll(PQgetvalue(h, 0, 2), NULL, 10) < cl->seq) ||
        (!PQgetisnull(h, 0, 1) &&
         strtoll(PQgetvalue(h, 0, 1), NULL, 10) > cl->seq + 1)) {
        *full = 1; /* emptied, another database, or rows pruned unread */
        return TP_OK;
    }
    d->xip = strdup(PQgetvalue(h, 0, 0));
    if (d->xip == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    n = PQntuples(d->log);
    if (n > DELTA_MAX) {
        *full = 1;
        return TP_OK;
    }
    d->seq = cl->seq;
    for (i = 0; i < n && !*full; i++) {
        int64_t seq = strtoll(PQgetvalue(d->log, i, LOG_SEQ), NULL, 10);
        const char *tab = PQgetvalue(d->log, i, LOG_TAB);
        const char *realm = PQgetvalue(d->log, i, LOG_REALM);
        const char *key = PQgetvalue(d->log, i, LOG_KEY);

        if (PQgetisnull(d->log, i, LOG_SEQ))
            continue; /* the log has nothing past us */
        if (seq > d->seq)
            d->seq = seq;
        if (PQgetisnull(d->log, i, LOG_REALM)) {
            *full = 1; /* a TRUNCATE, or usage deleted */
        } else if (realm_table(tab)) {
            realm_changed = 1;
            if (tp__find_realm(cur, realm) < 0)
                *full = 1; /* a realm added */
        } else if (strcmp(tab, "usage") == 0) {
            /* applied by delta_apply; a realm removed since (metering
             * outlives realms) is skipped there, as a full load does */
        } else if (tp__find_realm(cur, realm) < 0) {
            *full = 1; /* a realm added in this read's rows */
        } else if (strcmp(tab, "users") == 0 &&
                   !PQgetisnull(d->log, i, LOG_KEY)) {
            tp__sb_elem(&ur, realm, nu == 0);
            tp__sb_elem(&uk, key, nu == 0);
            nu++;
        } else if (strcmp(tab, "revoked_credentials") == 0 &&
                   !PQgetisnull(d->log, i, LOG_KEY)) {
            tp__sb_elem(&vr, realm, nv == 0);
            tp__sb_elem(&vk, key, nv == 0);
            nv++;
        }
    }
    tp__sb_add(&ur, "}", 1);
    tp__sb_add(&uk, "}", 1);
    tp__sb_add(&vr, "}", 1);
    tp__sb_add(&vk, "}", 1);
    if (ur.oom || uk.oom || vr.oom || vk.oom) {
        status = tp__fail(err, TP_ENOMEM, "out of memory");
        goto out;
    }
    if (*full)
        goto out;
    if (probe) {
        /* Outside a transaction: usage alone is applied from this read;
         * rows to read again need one snapshot with the log (a user's
         * sum must count exactly the usage rows this read applies). */
        d->need_txn = realm_changed || nu > 0 || nv > 0;
        goto out;
    }
    if (realm_changed) {
        d->realms = calloc(1, sizeof(*d->realms));
        if (d->realms == NULL) {
            status = tp__fail(err, TP_ENOMEM, "out of memory");
            goto out;
        }
        d->realms->loaded_at = tp_now();
        status = tp__realms_load(st->conn, st->jwt_set ? &st->jwt : NULL,
                                 d->realms, err);
        if (status != TP_OK)
            goto out;
        if (!same_realms(cur, d->realms)) {
            *full = 1; /* a realm removed */
            goto out;
        }
    }
    if (nu > 0) {
        params[0] = ur.p;
        params[1] = uk.p;
        snprintf(sql, sizeof(sql), "SELECT %s, coalesce(x.used, 0)::text, "
                 "u.user_id IS NULL, k.realm, k.user_id "
                 "FROM unnest($1::text[], $2::text[]) AS k(realm, user_id) "
                 "LEFT JOIN turnpolicy.users u ON u.realm = k.realm AND "
                 "u.user_id = k.user_id "
                 "LEFT JOIN turnpolicy.realms r ON r.name = u.realm "
                 "LEFT JOIN LATERAL (SELECT sum(g.bytes_in + g.bytes_out) "
                 "AS used FROM turnpolicy.usage g WHERE r.budget_period IS "
                 "NOT NULL AND g.realm = u.realm AND g.user_id = u.user_id "
                 "AND g.ended_at > now() - make_interval(secs => "
                 "r.budget_period)) x ON true", tp__user_columns);
        status = tp__load_query(st->conn, sql, 2, params, &d->users, err);
        if (status != TP_OK)
            goto out;
    }
    if (nv > 0) {
        params[0] = vr.p;
        params[1] = vk.p;
        status = tp__load_query(st->conn, "SELECT k.realm, k.username, "
                                "EXISTS (SELECT 1 FROM "
                                "turnpolicy.revoked_credentials v WHERE "
                                "v.realm = k.realm AND v.username = "
                                "k.username) FROM unnest($1::text[], "
                                "$2::text[]) AS k(realm, username)", 2,
                                params, &d->revoked, err);
    }
out:
    free(ur.p);
    free(uk.p);
    free(vr.p);
    free(vk.p);
    return status;
}

/* A copy of u with bytes more used; NULL when out of memory. */
static user_entry *
user_plus(const user_entry *u, uint64_t bytes)
{
    user_entry *c = tp__user_entry_dup(u);

    if (c != NULL)
        c->used = add_sat(c->used, bytes); /* mark: the one u carries */
    return c;
}

/* Give s the realms and origins of r (and r those of s). */
static void
swap_realms(snapshot *s, snapshot *r)
{
    snapshot t = *s;

    s->realms = r->realms;
    s->nrealms = r->nrealms;
    s->origins = r->origins;
    s->norigins = r->norigins;
    r->realms = t.realms;
    r->nrealms = t.nrealms;
    r->origins = t.origins;
    r->norigins = t.norigins;
}

/* Apply what delta_read found to cur: the snapshot in force (published:
 * changes are told to other nodes, a new snapshot is published for new
 * realms), or one not yet published.  Returns the number of entries
 * changed, or -1 when out of memory (the caller then loads in full). */
static long
delta_apply(tp_store *st, snapshot *cur, int published, delta *d,
            tp__garbage *g)
{
    tp__tables *t = cur->tab;
    long changed = 0;
    int i, n;

    if (d->realms != NULL && !published) {
        swap_realms(cur, d->realms);
        changed++;
    } else if (d->realms != NULL) {
        d->realms->tab = t;
        tp__store_publish(st, d->realms); /* frees the previous one */
        d->realms = NULL;
        cur = atomic_load(&st->cur);
        changed++;
    }
    /* Usage first: a user re-read below gets its exact sum anyway. */
    n = PQntuples(d->log);
    for (i = 0; i < n; i++) {
        const char *realm = PQgetvalue(d->log, i, LOG_REALM);
        const user_entry *u;
        uint64_t bytes;
        user_entry *nu;
        long ri;

        if (PQgetisnull(d->log, i, LOG_SEQ) ||
            strcmp(PQgetvalue(d->log, i, LOG_TAB), "usage") != 0)
            continue;
        ri = tp__find_realm(cur, realm);
        if (ri < 0 || cur->realms[ri].budget_period <= 0)
            continue;
        bytes = strtoull(PQgetvalue(d->log, i, LOG_BYTES), NULL, 10);
        atomic_store(&t->realm_used[ri],
                     add_sat(atomic_load(&t->realm_used[ri]), bytes));
        changed++;
        u = tp__find_user(cur, (size_t)ri, PQgetvalue(d->log, i, LOG_KEY));
        if (u == NULL)
            continue;
        nu = user_plus(u, bytes);
        if (nu == NULL || tp__table_put(&t->users, nu, g) != 0) {
            free(nu);
            return -1;
        }
    }
    n = d->users != NULL ? PQntuples(d->users) : 0;
    for (i = 0; i < n; i++) {
        long ri = tp__find_realm(cur, PQgetvalue(d->users, i, 9));
        const char *id = PQgetvalue(d->users, i, 10);
        const user_entry *old;
        user_entry *nu;

        if (ri < 0)
            continue;
        old = tp__find_user(cur, (size_t)ri, id);
        if (strcmp(PQgetvalue(d->users, i, 8), "t") == 0) {
            if (old != NULL) {
                if (tp__table_del(&t->users, (uint32_t)ri, id, g) != 0)
                    return -1;
                changed++;
            }
            continue;
        }
        nu = tp__user_from_row(d->users, i, (uint32_t)ri);
        if (nu == NULL)
            return -1;
        nu->used = strtoull(PQgetvalue(d->users, i, 7), NULL, 10);
        nu->mark = st->mark;
        if (old != NULL && tp__user_entry_same(old, nu)) {
            free(nu);
            continue;
        }
        if (published)
            tp__publish_user(st, &cur->realms[ri], old, nu);
        if (tp__table_put(&t->users, nu, g) != 0) {
            free(nu);
            return -1;
        }
        changed++;
    }
    n = d->revoked != NULL ? PQntuples(d->revoked) : 0;
    for (i = 0; i < n; i++) {
        long ri = tp__find_realm(cur, PQgetvalue(d->revoked, i, 0));
        const char *name = PQgetvalue(d->revoked, i, 1);
        int present = strcmp(PQgetvalue(d->revoked, i, 2), "t") == 0;
        revoked_entry *v;

        if (ri < 0 || present == tp__is_revoked(cur, (size_t)ri, name))
            continue;
        changed++;
        if (!present) {
            if (tp__table_del(&t->revoked, (uint32_t)ri, name, g) != 0)
                return -1;
            continue;
        }
        v = tp__revoked_entry_new((uint32_t)ri, name);
        if (v != NULL)
            v->mark = st->mark;
        if (v == NULL || tp__table_put(&t->revoked, v, g) != 0) {
            free(v);
            return -1;
        }
        if (published)
            tp__publish_revoked(st, &cur->realms[ri], name);
    }
    return changed;
}

tp_status
tp__chglog_catch_up(tp_store *st, snapshot *s, tp__chglog *from, int *full,
                    tp_error *err)
{
    tp__garbage g = {0};
    tp_status status;
    delta d;
    long changed;

    *full = 0;
    memset(&d, 0, sizeof(d));
    status = delta_read(st, from, s, 0, &d, full, err);
    if (status != TP_OK || *full) {
        delta_clear(&d);
        return status;
    }
    changed = delta_apply(st, s, 0, &d, &g);
    tp__garbage_flush(NULL, &g); /* nobody reads s yet */
    tp__garbage_clear(&g);
    if (changed < 0) {
        delta_clear(&d);
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    free(from->xip);
    from->xip = d.xip;
    d.xip = NULL;
    from->seq = d.seq;
    from->read_at = mono_now();
    delta_clear(&d);
    return TP_OK;
}

tp_status
tp__chglog_apply(tp_store *st, int *full, tp_error *err)
{
    snapshot *cur = atomic_load(&st->cur);
    tp__garbage g = {0};
    PGresult *r = NULL;
    delta d;
    tp_status status;
    long changed;

    *full = 0;
    memset(&d, 0, sizeof(d));
    if (!st->chg.on || cur == NULL || cur->tab == NULL) {
        *full = 1;
        return TP_OK;
    }
    /* Most reads find nothing, or usage alone: one statement. */
    status = delta_read(st, &st->chg, cur, 1, &d, full, err);
    if (status != TP_OK || *full) {
        delta_clear(&d);
        return status;
    }
    if (d.need_txn) {
        delta_clear(&d);
        status = tp__load_query(st->conn, "BEGIN ISOLATION LEVEL REPEATABLE "
                                "READ READ ONLY", 0, NULL, &r, err);
        if (status != TP_OK)
            return status;
        PQclear(r);
        status = delta_read(st, &st->chg, cur, 0, &d, full, err);
        if (status != TP_OK || *full) {
            PQclear(PQexec(st->conn, "ROLLBACK"));
            delta_clear(&d);
            return status;
        }
        status = tp__load_query(st->conn, "COMMIT", 0, NULL, &r, err);
        if (status != TP_OK) {
            delta_clear(&d);
            return status;
        }
        PQclear(r);
    }
    changed = delta_apply(st, cur, 1, &d, &g);
    /* What was replaced goes after one grace period for the whole read. */
    tp__garbage_flush(st, &g);
    tp__garbage_clear(&g);
    if (changed < 0) {
        delta_clear(&d);
        *full = 1;
        return TP_OK;
    }
    if (changed > 0)
        tp__store_changed(st);
    free(st->chg.xip);
    st->chg.xip = d.xip;
    d.xip = NULL;
    st->chg.seq = d.seq;
    st->chg.read_at = mono_now();
    atomic_fetch_add(&st->deltas, 1);
    delta_clear(&d);
    return TP_OK;
}
