/*
 * store_load.c - building a policy snapshot from PostgreSQL.
 *
 * What: tp__snapshot_load reads every realm (with its secrets as a
 * tp_keyring, host rules as a tp_hostlist, peer rules as a tp_peerset,
 * JWT keys as a tp_jwt_keys, TURN URIs, allowed origins), every user
 * (status, revoked_before, quota, byte budget, client network and the
 * bytes used in the budget period) and every revoked credential in one
 * REPEATABLE READ READ ONLY transaction, so a snapshot is one consistent
 * view of the database.
 *
 * Invariants: realms are sorted here with strcmp (store_snapshot.c's
 * order), not by the database's collation; users and revocations go into
 * hash tables (store_table.c), read through a cursor.  Realms are loaded
 * (and sorted) first: every other row names its realm, and a row for a
 * realm the load did not see fails the load.  Secret bytes pass through
 * PGresult buffers (hex) and are wiped before PQclear, and from the
 * decoding buffers once handed to the keyring.  SQL is constant, without
 * parameters (the change log's reads pass theirs as parameters).
 *
 * Threads: the store thread (and tp_store_new before it starts) on the
 * store's own connection.  Workload: a full load at start, every
 * reload_interval and when the change log cannot say what changed
 * (store_delta.c); a million users load in 2-3 s, most of it
 * PostgreSQL's.  The realms alone (tp__realms_load) are re-read when one
 * of them changes.
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode hex into out (cap bytes); returns length or -1. */
static long
unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s), i;

    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

/* One line of the server's (or libpq's) error, for messages. */
void
tp__pg_message(PGconn *c, const PGresult *r, char *buf, size_t cap)
{
    const char *m = NULL;
    size_t n;

    if (r != NULL)
        m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (m == NULL && c != NULL)
        m = PQerrorMessage(c);
    tp__printable(buf, cap, m != NULL ? m : "unknown error", cap - 8);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '?' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

/* Run a query (with n text parameters) in the load transaction. */
tp_status
tp__load_query(PGconn *c, const char *sql, int n, const char *const *params,
               PGresult **out, tp_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    char msg[200];

    if (r == NULL || (PQresultStatus(r) != PGRES_TUPLES_OK &&
                      PQresultStatus(r) != PGRES_COMMAND_OK)) {
        tp__pg_message(c, r, msg, sizeof(msg));
        PQclear(r);
        return tp__fail(err, TP_EDB, "loading the policy: %s", msg);
    }
    *out = r;
    return TP_OK;
}

/* Wipe the text of every value in column col before the result is
 * cleared (it held secret bytes in hex). */
static void
wipe_column(PGresult *r, int col)
{
    int i, n = PQntuples(r);

    for (i = 0; i < n; i++) {
        char *v = PQgetvalue(r, i, col);

        tp__wipe(v, strlen(v));
    }
}

static long
realm_of(const snapshot *s, PGresult *r, int row, tp_error *err)
{
    long ri = tp__find_realm(s, PQgetvalue(r, row, 0));

    if (ri < 0)
        tp__fail(err, TP_EDB, "loading the policy: row for unknown realm "
                 "(changed during the load?)");
    return ri;
}

static tp_status
load_realms(PGconn *c, const tp_jwt_options *jo, snapshot *s,
            tp_error *err)
{
    tp_keyring_options ko;
    PGresult *r = NULL;
    tp_status st;
    int i, n;

    st = tp__load_query(c, "SELECT name, default_ttl, max_ttl, clock_skew, "
                        "killed, peer_default, coalesce(user_quota, 0), "
                        "coalesce(total_quota, 0), coalesce(max_bps, 0), "
                        "coalesce(user_byte_budget, 0), "
                        "coalesce(budget_period, 0), "
                        "coalesce(realm_byte_budget, 0) "
                        "FROM turnpolicy.realms", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    s->realms = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->realms));
    if (s->realms == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory loading realms");
        goto out;
    }
    for (i = 0; i < n; i++) {
        realm_entry *e = &s->realms[i];

        s->nrealms++;
        e->name = strdup(PQgetvalue(r, i, 0));
        if (e->name == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading realms");
            goto out;
        }
        memset(&ko, 0, sizeof(ko));
        ko.default_ttl = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        ko.max_ttl = (uint32_t)strtoul(PQgetvalue(r, i, 2), NULL, 10);
        ko.clock_skew = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
        e->max_ttl = ko.max_ttl;
        e->killed = strcmp(PQgetvalue(r, i, 4), "t") == 0;
        e->user_quota = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        e->total_quota = strtoll(PQgetvalue(r, i, 7), NULL, 10);
        e->max_bps = strtoll(PQgetvalue(r, i, 8), NULL, 10);
        e->user_budget = strtoll(PQgetvalue(r, i, 9), NULL, 10);
        e->budget_period = strtoll(PQgetvalue(r, i, 10), NULL, 10);
        e->realm_budget = strtoll(PQgetvalue(r, i, 11), NULL, 10);
        e->default_ttl = ko.default_ttl;
        e->kr = tp_keyring_new(e->name, &ko, err);
        e->hl = tp_hostlist_new(err);
        e->ps = tp_peerset_new(err);
        e->jk = tp_jwt_keys_new(jo, err);
        if (e->kr == NULL || e->hl == NULL || e->ps == NULL ||
            e->jk == NULL) {
            st = err != NULL && err->status != TP_OK ? err->status
                                                     : TP_ENOMEM;
            goto out;
        }
        tp_peerset_set_default(e->ps, strcmp(PQgetvalue(r, i, 5), "deny") ==
                                              0
                                          ? TP_PEER_DENY
                                          : TP_PEER_ALLOW);
    }
    qsort(s->realms, s->nrealms, sizeof(*s->realms), tp__cmp_realm);
out:
    PQclear(r);
    return st;
}

static tp_status
load_secrets(PGconn *c, snapshot *s, tp_error *err)
{
    unsigned char key[TP_SECRET_MAX];
    tp_secret_state state;
    PGresult *r = NULL;
    tp_status st;
    long ri, len;
    int i, n;

    st = tp__load_query(c, "SELECT realm, kid, encode(secret, 'hex'), state "
                        "FROM turnpolicy.secrets", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (i = 0; i < n && st == TP_OK; i++) {
        ri = realm_of(s, r, i, err);
        if (ri < 0 || tp_secret_state_parse(PQgetvalue(r, i, 3), &state) !=
                          TP_OK) {
            st = ri < 0 ? TP_EDB
                        : tp__fail(err, TP_EDB, "loading the policy: secret "
                                   "with an unknown state");
            break;
        }
        len = PQgetisnull(r, i, 2) ? 0 : unhex(PQgetvalue(r, i, 2), key,
                                               sizeof(key));
        if (len < 0) {
            tp__wipe(key, sizeof(key)); /* unhex may have written part */
            st = tp__fail(err, TP_EDB, "loading the policy: bad secret "
                          "encoding");
            break;
        }
        st = tp_keyring_add(s->realms[ri].kr, PQgetvalue(r, i, 1), key,
                            (size_t)len, state, err);
        tp__wipe(key, sizeof(key));
    }
    wipe_column(r, 2);
    PQclear(r);
    if (st != TP_OK)
        return st;

    st = tp__load_query(c, "SELECT realm, encode(secret, 'hex') "
                        "FROM turnpolicy.legacy_secrets", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (i = 0; i < n && st == TP_OK; i++) {
        ri = realm_of(s, r, i, err);
        len = ri < 0 ? -1 : unhex(PQgetvalue(r, i, 1), key, sizeof(key));
        if (len < 0) {
            tp__wipe(key, sizeof(key)); /* unhex may have written part */
            st = ri < 0 ? TP_EDB
                        : tp__fail(err, TP_EDB, "loading the policy: bad "
                                   "legacy secret encoding");
            break;
        }
        st = tp_keyring_set_legacy(s->realms[ri].kr, key, (size_t)len, err);
        tp__wipe(key, sizeof(key));
    }
    wipe_column(r, 1);
    PQclear(r);
    return st;
}

/* "a.b.c.d/n" or "x::/n" (PostgreSQL's cidr text) -> address, length. */
int
tp__parse_cidr(const char *text, tp_addr *a, int *len)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
    long l;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (tp_addr_parse(buf, a, NULL) != TP_OK)
        return -1;
    l = slash != NULL ? strtol(slash + 1, NULL, 10)
                      : (a->family == AF_INET ? 32 : 128);
    if (l < 0 || l > (a->family == AF_INET ? 32 : 128))
        return -1;
    *len = (int)l;
    return 0;
}

/* TURN URIs and allowed origins. */
static tp_status
load_extras(PGconn *c, snapshot *s, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    long ri;
    int n, k;

    st = tp__load_query(c, "SELECT r.name, u.url FROM turnpolicy.realms r, "
                        "unnest(r.turn_urls) WITH ORDINALITY AS u(url, n) "
                        "ORDER BY r.name, u.n", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (k = 0; k < n; k++) {
        realm_entry *e;
        char **nu;

        ri = realm_of(s, r, k, err);
        if (ri < 0) {
            st = TP_EDB;
            goto out;
        }
        e = &s->realms[ri];
        nu = realloc(e->urls, (e->nurls + 1) * sizeof(*nu));
        if (nu == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading urls");
            goto out;
        }
        e->urls = nu;
        e->urls[e->nurls] = strdup(PQgetvalue(r, k, 1));
        if (e->urls[e->nurls] == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading urls");
            goto out;
        }
        e->nurls++;
    }
    PQclear(r);
    r = NULL;

    st = tp__load_query(c, "SELECT name, unnest(allowed_origins) FROM "
                        "turnpolicy.realms", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    s->origins = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->origins));
    if (s->origins == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory loading origins");
        goto out;
    }
    for (k = 0; k < n; k++) {
        ri = realm_of(s, r, k, err);
        if (ri < 0) {
            st = TP_EDB;
            goto out;
        }
        s->origins[s->norigins].realm = (size_t)ri;
        s->origins[s->norigins].origin = strdup(PQgetvalue(r, k, 1));
        if (s->origins[s->norigins].origin == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading origins");
            goto out;
        }
        s->norigins++;
    }
    tp__index_origins(s);
    PQclear(r);
    r = NULL;

out:
    PQclear(r);
    return st;
}

/* The columns of tp__user_from_row, from turnpolicy.users u. */
const char tp__user_columns[] =
    "u.realm, u.user_id, u.status, "
    "coalesce(extract(epoch FROM u.revoked_before)::bigint, 0), "
    "coalesce(u.user_quota, -1), coalesce(u.user_byte_budget, -1), "
    "u.client_cidr::text";

size_t
tp__user_row_make(void *buf, size_t cap, PGresult *r, int i, uint32_t ri)
{
    tp_addr cidr;
    int len = 0, has;
    user_entry *u = buf;
    size_t size;

    has = !PQgetisnull(r, i, 6) &&
          tp__parse_cidr(PQgetvalue(r, i, 6), &cidr, &len) == 0;
    size = tp__user_entry_make(buf, cap, ri, PQgetvalue(r, i, 1),
                               has ? &cidr : NULL, len);
    if (size == 0)
        return 0;
    u->active = strcmp(PQgetvalue(r, i, 2), "active") == 0;
    u->revoked_before = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    u->user_quota = strtoll(PQgetvalue(r, i, 4), NULL, 10);
    u->user_budget = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    return size;
}

user_entry *
tp__user_from_row(PGresult *r, int i, uint32_t ri)
{
    _Alignas(user_entry) char buf[USER_ENTRY_MAX];
    size_t size = tp__user_row_make(buf, sizeof(buf), r, i, ri);
    user_entry *u;

    if (size == 0)
        return NULL; /* a user id longer than the schema allows */
    u = malloc(size);
    if (u != NULL)
        memcpy(u, buf, size);
    return u;
}

/* tp__load_cursor hands its callback FETCH_ROWS rows at a time: a
 * million users never sit in one PGresult beside the tables they fill
 * (that would double the load's peak memory). */
#define FETCH_ROWS 20000

tp_status
tp__load_cursor(PGconn *c, const char *sql, tp__rows_fn cb, void *arg,
                tp_store *published, tp_error *err)
{
    char fetch[64], *decl;
    tp__garbage g = {0};
    PGresult *r = NULL;
    tp_status st;
    size_t n = strlen(sql) + 64;

    decl = malloc(n);
    if (decl == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    snprintf(decl, n, "DECLARE tp_load NO SCROLL CURSOR FOR %s", sql);
    st = tp__load_query(c, decl, 0, NULL, &r, err);
    free(decl);
    if (st != TP_OK)
        return st;
    PQclear(r);
    snprintf(fetch, sizeof(fetch), "FETCH %d FROM tp_load", FETCH_ROWS);
    for (;;) {
        st = tp__load_query(c, fetch, 0, NULL, &r, err);
        if (st != TP_OK)
            break;
        if (PQntuples(r) == 0) {
            PQclear(r);
            break;
        }
        st = cb(arg, r, &g, err);
        PQclear(r);
        /* What a batch replaced goes before the next one comes. */
        tp__garbage_flush(published, &g);
        if (st != TP_OK)
            break;
    }
    tp__garbage_clear(&g);
    if (st == TP_OK) {
        st = tp__load_query(c, "CLOSE tp_load", 0, NULL, &r, err);
        if (st == TP_OK)
            PQclear(r);
    }
    return st;
}

static tp_status
user_rows(void *arg, PGresult *r, tp__garbage *g, tp_error *err)
{
    snapshot *s = arg;
    int i, n = PQntuples(r);

    for (i = 0; i < n; i++) {
        long ri = realm_of(s, r, i, err);
        user_entry *u;

        if (ri < 0)
            return TP_EDB;
        u = tp__user_from_row(r, i, (uint32_t)ri);
        if (u == NULL || tp__table_put(&s->tab->users, u, g) != 0) {
            free(u);
            return tp__fail(err, TP_ENOMEM, "out of memory loading users");
        }
    }
    return TP_OK;
}

static tp_status
revoked_rows(void *arg, PGresult *r, tp__garbage *g, tp_error *err)
{
    snapshot *s = arg;
    int i, n = PQntuples(r);

    for (i = 0; i < n; i++) {
        long ri = realm_of(s, r, i, err);
        revoked_entry *v;

        if (ri < 0)
            return TP_EDB;
        v = tp__revoked_entry_new((uint32_t)ri, PQgetvalue(r, i, 1));
        if (v == NULL || tp__table_put(&s->tab->revoked, v, g) != 0) {
            free(v);
            return tp__fail(err, TP_ENOMEM, "out of memory loading "
                            "revocations");
        }
    }
    return TP_OK;
}

/* Bytes used in each realm's budget period, per user and per realm.  The
 * user entries are not published yet: they are filled in place. */
static tp_status
usage_rows(void *arg, PGresult *r, tp__garbage *g, tp_error *err)
{
    snapshot *s = arg;
    int k, n = PQntuples(r);

    (void)g;
    (void)err;
    for (k = 0; k < n; k++) {
        long ri = tp__find_realm(s, PQgetvalue(r, k, 0));

        if (ri >= 0) {
            user_entry *u = (user_entry *)(uintptr_t)tp__find_user(
                s, (size_t)ri, PQgetvalue(r, k, 1));
            uint64_t b = strtoull(PQgetvalue(r, k, 2), NULL, 10);
            uint64_t t = atomic_load(&s->tab->realm_used[ri]);

            if (u != NULL)
                u->used = b;
            /* the realm's total counts users removed since, too */
            atomic_store(&s->tab->realm_used[ri],
                         t > UINT64_MAX - b ? UINT64_MAX : t + b);
        }
    }
    return TP_OK;
}

/* Every user, revoked credential and usage sum into s->tab (not yet
 * published). */
static tp_status
load_users(PGconn *c, snapshot *s, tp__basew *w, tp_error *err)
{
    PGresult *r = NULL;
    char sql[512];
    tp_status st;

    /* The table is sized once, for the users there are. */
    st = tp__load_query(c, "SELECT count(*) FROM turnpolicy.users", 0, NULL,
                        &r, err);
    if (st != TP_OK)
        return st;
    s->tab = tp__tables_new(s->nrealms,
                            w != NULL ? 0
                                      : strtoull(PQgetvalue(r, 0, 0), NULL,
                                                 10));
    PQclear(r);
    if (s->tab == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory loading users");
    s->tab->users.bw = w;
    s->tab->revoked.bw = w;
    snprintf(sql, sizeof(sql), "SELECT %s FROM turnpolicy.users u",
             tp__user_columns);
    st = tp__load_cursor(c, sql, user_rows, s, NULL, err);
    if (st == TP_OK)
        st = tp__load_cursor(c, "SELECT realm, username FROM "
                             "turnpolicy.revoked_credentials", revoked_rows,
                             s, NULL, err);
    if (st == TP_OK)
        st = tp__load_cursor(c, "SELECT u.realm, u.user_id, "
                             "sum(u.bytes_in + u.bytes_out)::text "
                             "FROM turnpolicy.usage u JOIN turnpolicy.realms "
                             "r ON r.name = u.realm WHERE r.budget_period IS "
                             "NOT NULL AND u.ended_at > now() - "
                             "make_interval(secs => r.budget_period) "
                             "GROUP BY u.realm, u.user_id", usage_rows, s,
                             NULL, err);
    return st;
}

static tp_status
load_rules(PGconn *c, snapshot *s, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    long ri;
    int i, n;

    st = tp__load_query(c, "SELECT realm, pattern || "
                        "coalesce(path_prefix, '') FROM turnpolicy.host_rules",
                        0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (i = 0; i < n && st == TP_OK; i++) {
        ri = realm_of(s, r, i, err);
        st = ri < 0 ? TP_EDB
                    : tp_hostlist_add(s->realms[ri].hl, PQgetvalue(r, i, 1),
                                      err);
        /* Two rows may normalize to one rule; that is not an error. */
        if (st == TP_EEXISTS)
            st = TP_OK;
    }
    PQclear(r);
    if (st != TP_OK)
        return st;
    st = tp__load_query(c, "SELECT realm, net::text, action FROM "
                        "turnpolicy.peer_rules", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (i = 0; i < n && st == TP_OK; i++) {
        ri = realm_of(s, r, i, err);
        st = ri < 0 ? TP_EDB
                    : tp_peerset_add(s->realms[ri].ps, PQgetvalue(r, i, 1),
                                     strcmp(PQgetvalue(r, i, 2), "deny") == 0
                                         ? TP_PEER_DENY
                                         : TP_PEER_ALLOW,
                                     err);
    }
    PQclear(r);
    return st;
}

/* JWT verification keys per realm, each pinned to its algorithm. */
static tp_status
load_jwt_keys(PGconn *c, snapshot *s, tp_error *err)
{
    unsigned char *key = NULL;
    PGresult *r = NULL;
    tp_jwt_alg alg;
    tp_status st;
    long ri, len;
    int i, n;

    st = tp__load_query(c, "SELECT realm, kid, alg, encode(key_data, 'hex') "
                        "FROM turnpolicy.jwt_keys", 0, NULL, &r, err);
    if (st != TP_OK)
        return st;
    key = calloc(1, 16384 + 1);
    if (key == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory loading JWT keys");
        goto out;
    }
    n = PQntuples(r);
    for (i = 0; i < n && st == TP_OK; i++) {
        const char *kid = PQgetvalue(r, i, 1);

        ri = realm_of(s, r, i, err);
        if (ri < 0) {
            st = TP_EDB;
            break;
        }
        len = unhex(PQgetvalue(r, i, 3), key, 16384);
        if (len < 0 || tp_jwt_alg_parse(PQgetvalue(r, i, 2), &alg) !=
                           TP_OK) {
            st = tp__fail(err, TP_EDB, "loading the policy: bad JWT key "
                          "row in realm %s", s->realms[ri].name);
            break;
        }
        st = tp_jwt_keys_add(s->realms[ri].jk, kid[0] != '\0' ? kid : NULL,
                             alg, key, (size_t)len, err);
        tp__wipe(key, (size_t)len);
    }
out:
    wipe_column(r, 3);
    PQclear(r);
    if (key != NULL)
        tp__wipe(key, 16384); /* a row refused after unhex left bytes */
    free(key);
    return st;
}

/* A realm's own policy: settings, secrets, rules, URIs, origins, JWT
 * keys - everything but users, revocations and usage. */
tp_status
tp__realms_load(PGconn *c, const tp_jwt_options *jo, snapshot *s,
                tp_error *err)
{
    tp_status st = load_realms(c, jo, s, err);

    if (st == TP_OK)
        st = load_secrets(c, s, err);
    if (st == TP_OK)
        st = load_rules(c, s, err);
    if (st == TP_OK)
        st = load_extras(c, s, err);
    if (st == TP_OK)
        st = load_jwt_keys(c, s, err);
    return st;
}

/* Load a complete snapshot in one consistent read-only transaction, and
 * where the change log stands in it (cl, when not NULL). */
tp_status
tp__snapshot_load(PGconn *c, const tp_jwt_options *jo, snapshot **out,
                  tp__chglog *cl, tp_error *err)
{
    return tp__snapshot_load_into(c, jo, out, cl, NULL, err);
}

tp_status
tp__snapshot_load_into(PGconn *c, const tp_jwt_options *jo, snapshot **out,
                       tp__chglog *cl, tp__basew *w, tp_error *err)
{
    snapshot *s;
    PGresult *r = NULL;
    tp_status st;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    s->loaded_at = tp_now();
    st = tp__load_query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                        0, NULL, &r, err);
    if (st != TP_OK)
        goto fail;
    PQclear(r);
    st = tp__realms_load(c, jo, s, err);
    if (st == TP_OK)
        st = load_users(c, s, w, err);
    if (st == TP_OK && cl != NULL)
        st = tp__chglog_start(c, cl, err);
    if (st != TP_OK) {
        PQclear(PQexec(c, "ROLLBACK"));
        goto fail;
    }
    st = tp__load_query(c, "COMMIT", 0, NULL, &r, err);
    if (st != TP_OK)
        goto fail;
    PQclear(r);
    *out = s;
    return TP_OK;
fail:
    tp__snapshot_free(s);
    return st;
}
