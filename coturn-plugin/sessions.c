/*
 * sessions.c - the live TURN sessions of this node, learned from coturn's
 * redis-statsdb reports, and what becomes of them: shared allocation
 * counters in Redis while they live, a usage record when they end.
 *
 * What coturn 4.6.1 reports (ns_ioalib_engine_impl.c), each key being
 *   turn/realm/<realm>/user/<username>/allocation/<id 18 digits>/<kind>:
 *   status         SET + PUBLISH "new lifetime=600, type=UDP,
 *                  local=<ip:port>, remote=<client ip:port>, ssl=NONE,
 *                  cipher=NONE" ("refreshed ..." on each Refresh),
 *                  then DEL + PUBLISH "deleted" when the allocation goes;
 *   traffic[/peer] PUBLISH "rcvp=N, rcvb=N, sentp=N, sentb=N" every 4096
 *                  packets: the counts since the previous report;
 *   total_traffic[/peer]  the same with the session's totals, right
 *                  after "deleted".
 * rcvb is what the client sent to the relay (bytes_in), sentb what the
 * relay sent to the client (bytes_out); the /peer variants count the
 * relay <-> peer side and are kept for metrics only.  The client address
 * is the "remote=" of the status report.  coturn builds these keys with
 * the username inside a hiredis format string (GHSA-4g7c-p5wg-j4hp);
 * turnpolicy never grants a username with '%', but the parsing here
 * trusts nothing: every field is bounded and validated.
 *
 * Life of a session: "new" (or the first report of a session we did not
 * see start: "adopted") -> tp_store_alloc_acquire for lifetime + slack,
 * again on every "refreshed" -> "deleted": release, then the usage record
 * once total_traffic arrives (or 5 s later without it).  A session whose
 * lifetime passes without a refresh (coturn restarted) lapses the same
 * way.  Usage session ids are "<coturn id>-<start>" so that ids coturn
 * reuses after a restart stay distinct; counter ids are "<node>:<id>".
 *
 * Each session also keeps what the enforcer (enforce.c) needs to decide
 * again whether it may live: the whole credential username, its expiry,
 * a dirty flag set by "new" and traffic reports, and a mark the enforcer
 * owns.
 *
 * Per user (realm, user id) the table keeps what a decision adds to the
 * policy snapshot: the live sessions on this node (the quota at key
 * lookup) and the bytes the snapshot's budget sums do not have yet - of
 * the user's sessions in the table, and of its finished sessions whose
 * usage records the store has not written before its last snapshot load
 * (tp_store_usage_included; turnpolicyd is the only one recording to its
 * store, so its own count of accepted records numbers them).  Both are
 * kept up to date on every event, so a key lookup costs one hash probe,
 * not a walk of the table.
 *
 * Threads: the table belongs to the loop thread.  The allocation counter
 * calls do blocking Redis I/O (up to 200 ms each), so they run on one
 * worker thread fed by a bounded queue (mu/cv), in pipelined batches;
 * when the queue is full an operation is dropped and counted, never
 * waited for.  An acquire refused over quota (another node holds the
 * user's quota) hands the session id back to the loop
 * (tpd_allocq_take_over_quota) for the enforcer to cancel.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnpolicyd.h"

#define NBUCKETS 16384
#define UBUCKETS 4096
#define DELETED_WAIT 5   /* seconds to wait for total_traffic */
#define LAPSE_SLACK 60   /* seconds past the lifetime before giving up */
#define ADOPT_LIFETIME 3600

/* A user with sessions in the table or bytes not in the snapshot. */
typedef struct user_agg {
    struct user_agg *next;
    uint32_t hash;
    size_t refs;             /* sessions in the table */
    size_t live;             /* ... not reported deleted */
    uint64_t bytes;          /* client-side bytes of those in the table */
    uint64_t pending;        /* bytes of finished sessions whose records
                                the snapshot does not include yet */
    size_t npending;
    char realm[TP_REALM_MAX + 1];
    char user_id[TP_USER_ID_MAX + 1];
} user_agg;

/* A finished session's usage record, numbered in the order the store
 * accepted it, until the snapshot includes it.  FIFO over all users. */
typedef struct pending_rec {
    struct pending_rec *next;
    user_agg *u;
    uint64_t seq;
    uint64_t bytes;
} pending_rec;

typedef struct session {
    struct session *next;
    user_agg *u;
    uint64_t id;
    char realm[TP_REALM_MAX + 1];
    char user_id[TP_USER_ID_MAX + 1];
    char username[TP_USERNAME_MAX + 1];
    char client[64];
    int64_t cred_expires;
    int64_t mark;            /* enforce.c's */
    unsigned char dirty;     /* new or traffic since the enforcer looked */
    int64_t started;
    int64_t expires;
    int64_t ended_at;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t peer_in;
    uint64_t peer_out;
    int ended;
} session;

struct tpd_sessions {
    session *buckets[NBUCKETS];
    size_t count;
    size_t max;
    user_agg *users[UBUCKETS];
    pending_rec *phead, *ptail;
    uint64_t recorded;       /* usage records the store accepted */
};

enum kind {
    K_STATUS,
    K_TRAFFIC,
    K_TRAFFIC_PEER,
    K_TOTAL,
    K_TOTAL_PEER
};

/* ------------------------------------------------------------------ */
/* Table                                                               */
/* ------------------------------------------------------------------ */

tpd_sessions *
tpd_sessions_new(size_t max_sessions)
{
    tpd_sessions *s = calloc(1, sizeof(*s));

    if (s != NULL)
        s->max = max_sessions;
    return s;
}

void
tpd_sessions_free(tpd_sessions *s)
{
    session *e, *next;
    user_agg *u, *unext;
    pending_rec *p, *pnext;
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < NBUCKETS; i++) {
        for (e = s->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    for (i = 0; i < UBUCKETS; i++) {
        for (u = s->users[i]; u != NULL; u = unext) {
            unext = u->next;
            free(u);
        }
    }
    for (p = s->phead; p != NULL; p = pnext) {
        pnext = p->next;
        free(p);
    }
    free(s);
}

size_t
tpd_sessions_live(const tpd_sessions *s)
{
    return s->count;
}

/* ------------------------------------------------------------------ */
/* Per-user aggregates                                                 */
/* ------------------------------------------------------------------ */

static uint32_t
user_hash(const char *realm, const char *user_id)
{
    uint32_t h = 2166136261u;
    const char *p;

    for (p = realm; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* a byte no name holds */
    for (p = user_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* The aggregate of (realm, user_id); created (zeroed) when create is set
 * and it does not exist.  NULL if absent, or out of memory. */
static user_agg *
user_get(tpd_sessions *s, const char *realm, const char *user_id,
         int create)
{
    uint32_t h = user_hash(realm, user_id);
    user_agg *u;

    for (u = s->users[h % UBUCKETS]; u != NULL; u = u->next)
        if (u->hash == h && strcmp(u->user_id, user_id) == 0 &&
            strcmp(u->realm, realm) == 0)
            return u;
    if (!create)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->hash = h;
    snprintf(u->realm, sizeof(u->realm), "%s", realm);
    snprintf(u->user_id, sizeof(u->user_id), "%s", user_id);
    u->next = s->users[h % UBUCKETS];
    s->users[h % UBUCKETS] = u;
    return u;
}

/* Free u once nothing refers to it. */
static void
user_put(tpd_sessions *s, user_agg *u)
{
    user_agg **pp;

    if (u->refs > 0 || u->npending > 0)
        return;
    for (pp = &s->users[u->hash % UBUCKETS]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            free(u);
            return;
        }
    }
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t
sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* Client-side bytes of a session, in + out. */
static uint64_t
session_bytes(const session *e)
{
    return sat_add(e->bytes_in, e->bytes_out);
}

void
tpd_sessions_prune(tpd_sessions *s, uint64_t included)
{
    pending_rec *p;

    while ((p = s->phead) != NULL && p->seq <= included) {
        s->phead = p->next;
        if (s->phead == NULL)
            s->ptail = NULL;
        p->u->pending = sat_sub(p->u->pending, p->bytes);
        p->u->npending--;
        user_put(s, p->u);
        free(p);
    }
}

void
tpd_sessions_user(tpd_sessions *s, uint64_t included, const char *realm,
                  const char *user_id, size_t *live, uint64_t *bytes)
{
    const user_agg *u;

    tpd_sessions_prune(s, included);
    u = user_get(s, realm, user_id, 0);
    *live = u != NULL ? u->live : 0;
    *bytes = u != NULL ? sat_add(u->bytes, u->pending) : 0;
}

static session *
find(tpd_sessions *s, uint64_t id)
{
    session *e;

    for (e = s->buckets[id % NBUCKETS]; e != NULL; e = e->next)
        if (e->id == id)
            return e;
    return NULL;
}

static session *
create(tpd *d, uint64_t id, const char *realm, const char *username,
       const tp_username *un, int64_t now)
{
    tpd_sessions *s = d->sessions;
    session *e;

    if (s->count >= s->max) {
        d->n.sessions_dropped++;
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e != NULL)
        e->u = user_get(s, realm, un->user_id, 1);
    if (e == NULL || e->u == NULL) {
        free(e);
        d->n.sessions_dropped++;
        return NULL;
    }
    e->u->refs++;
    e->u->live++;
    e->id = id;
    snprintf(e->realm, sizeof(e->realm), "%s", realm);
    snprintf(e->user_id, sizeof(e->user_id), "%s", un->user_id);
    snprintf(e->username, sizeof(e->username), "%s", username);
    e->cred_expires = un->expires;
    e->dirty = 1;
    e->started = now;
    e->expires = now + ADOPT_LIFETIME;
    e->next = s->buckets[id % NBUCKETS];
    s->buckets[id % NBUCKETS] = e;
    s->count++;
    return e;
}

static void
unlink_session(tpd_sessions *s, session *e)
{
    session **pp;

    for (pp = &s->buckets[e->id % NBUCKETS]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            s->count--;
            return;
        }
    }
}

static void
make_ref(session *e, tpd_session_ref *ref)
{
    ref->id = e->id;
    ref->realm = e->realm;
    ref->user_id = e->user_id;
    ref->username = e->username;
    ref->client = e->client;
    ref->bytes = session_bytes(e);
    ref->user_bytes = sat_add(e->u->bytes, e->u->pending);
    ref->cred_expires = e->cred_expires;
    ref->ended = e->ended;
    ref->dirty = &e->dirty;
    ref->mark = &e->mark;
}

int
tpd_sessions_scan(tpd_sessions *s, size_t *cursor, size_t budget,
                  tpd_session_fn fn, void *ud)
{
    tpd_session_ref ref;
    size_t i, seen = 0;
    session *e;

    for (i = *cursor; i < NBUCKETS; i++) {
        if (seen >= budget) {
            *cursor = i;
            return 0;
        }
        for (e = s->buckets[i]; e != NULL; e = e->next) {
            make_ref(e, &ref);
            fn(ud, &ref);
            seen++;
        }
    }
    *cursor = 0;
    return 1;
}

int
tpd_sessions_find(tpd_sessions *s, uint64_t id, tpd_session_ref *ref)
{
    session *e = find(s, id);

    if (e == NULL)
        return -1;
    make_ref(e, ref);
    return 0;
}

/* coturn reported the session deleted (or we learned it ended). */
static void
mark_ended(session *e, int64_t now)
{
    e->ended = 1;
    e->ended_at = now;
    e->u->live--;
}

static void
counter_id(const tpd *d, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%018" PRIu64, d->node, id);
}

/* The store accepted one more usage record, of bytes for u: keep the
 * bytes counted until a snapshot includes the record.  Out of memory:
 * they are not (the budget is then enforced from the next snapshot). */
static void
pending(tpd_sessions *s, user_agg *u, uint64_t bytes)
{
    pending_rec *p;

    s->recorded++;
    if (bytes == 0)
        return;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->u = u;
    p->seq = s->recorded;
    p->bytes = bytes;
    u->pending = sat_add(u->pending, bytes);
    u->npending++;
    if (s->ptail != NULL)
        s->ptail->next = p;
    else
        s->phead = p;
    s->ptail = p;
}

/* Write the usage record and forget the session. */
static void
finish(tpd *d, session *e, int64_t ended)
{
    char sid[64];
    tp_usage u;
    tp_error err;
    tp_status st;

    snprintf(sid, sizeof(sid), "%018" PRIu64 "-%" PRId64, e->id,
             e->started);
    memset(&u, 0, sizeof(u));
    u.node = d->node;
    u.session_id = sid;
    u.realm = e->realm;
    u.user_id = e->user_id;
    u.started = e->started;
    u.ended = ended >= e->started ? ended : e->started;
    u.bytes_in = e->bytes_in;
    u.bytes_out = e->bytes_out;
    u.client_addr = e->client[0] != '\0' ? e->client : NULL;
    st = tp_store_usage_record(d->store, &u, &err);
    if (st == TP_OK) {
        d->n.usage_recorded++;
        pending(d->sessions, e->u, session_bytes(e));
    } else {
        d->n.usage_failed++;
        tpd_log(TP_LOG_WARN, "usage of session %s (realm %s) not queued: "
                "%s", sid, e->realm, err.message);
    }
    tpd_log(TP_LOG_INFO, "session %018" PRIu64 " ended: realm=%s user=%s "
            "client=%s seconds=%" PRId64 " in=%" PRIu64 " out=%" PRIu64,
            e->id, e->realm, e->user_id, e->client[0] ? e->client : "-",
            u.ended - u.started, e->bytes_in, e->bytes_out);
    d->n.sessions_finished++;
    unlink_session(d->sessions, e);
    e->u->bytes = sat_sub(e->u->bytes, session_bytes(e));
    e->u->refs--;
    if (!e->ended)
        e->u->live--;
    user_put(d->sessions, e->u);
    free(e);
}

void
tpd_sessions_sweep(tpd *d, int64_t now, int all)
{
    tpd_sessions *s = d->sessions;
    session *e, *next;
    char cid[300];
    size_t i;

    tpd_sessions_prune(s, tp_store_usage_included(d->store));
    if (s->count == 0)
        return;
    for (i = 0; i < NBUCKETS; i++) {
        for (e = s->buckets[i]; e != NULL; e = next) {
            next = e->next;
            if (e->ended) {
                if (all || now - e->ended_at >= DELETED_WAIT)
                    finish(d, e, e->ended_at);
            } else if (now > e->expires + LAPSE_SLACK) {
                d->n.sessions_lapsed++;
                counter_id(d, e->id, cid, sizeof(cid));
                tpd_allocq_push(d->allocq, e->realm, e->user_id, cid,
                                e->id, 0);
                finish(d, e, e->expires);
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Parsing coturn's reports                                            */
/* ------------------------------------------------------------------ */

static int
ends_with(const char *s, size_t n, const char *sfx, size_t *cut)
{
    size_t ls = strlen(sfx);

    if (n < ls || memcmp(s + n - ls, sfx, ls) != 0)
        return 0;
    *cut = n - ls;
    return 1;
}

/* key -> realm, username, id, kind.  0 or -1. */
static int
parse_key(const char *key, size_t n, char realm[TP_REALM_MAX + 1],
          char user[TP_USERNAME_MAX + 1], uint64_t *id, enum kind *kind)
{
    static const char pfx[] = "turn/realm/", alloc[] = "/allocation/";
    const char *r, *slash, *a, *p;
    size_t cut, rl, ul, i;
    uint64_t v = 0;

    if (ends_with(key, n, "/total_traffic/peer", &cut))
        *kind = K_TOTAL_PEER;
    else if (ends_with(key, n, "/traffic/peer", &cut))
        *kind = K_TRAFFIC_PEER;
    else if (ends_with(key, n, "/total_traffic", &cut))
        *kind = K_TOTAL;
    else if (ends_with(key, n, "/traffic", &cut))
        *kind = K_TRAFFIC;
    else if (ends_with(key, n, "/status", &cut))
        *kind = K_STATUS;
    else
        return -1;
    /* key[0..cut) = turn/realm/<r>/user/<u>/allocation/<id> */
    if (cut < sizeof(pfx) - 1 || memcmp(key, pfx, sizeof(pfx) - 1) != 0)
        return -1;
    a = NULL;
    for (p = key + cut; p > key + sizeof(alloc) - 1; p--) {
        if (memcmp(p - (sizeof(alloc) - 1), alloc, sizeof(alloc) - 1) == 0) {
            a = p - (sizeof(alloc) - 1);
            break;
        }
    }
    if (a == NULL)
        return -1;
    p = a + sizeof(alloc) - 1;
    if (p == key + cut || (size_t)(key + cut - p) > 20)
        return -1;
    for (; p < key + cut; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    r = key + sizeof(pfx) - 1;
    slash = memchr(r, '/', (size_t)(a - r));
    if (slash == NULL)
        return -1;
    rl = (size_t)(slash - r);
    if (rl == 0 || rl > TP_REALM_MAX ||
        (size_t)(a - slash) < sizeof("/user/") ||
        memcmp(slash, "/user/", 6) != 0)
        return -1;
    ul = (size_t)(a - (slash + 6));
    if (ul == 0 || ul > TP_USERNAME_MAX)
        return -1;
    for (i = 0; i < rl + ul; i++) {
        unsigned char ch = i < rl ? (unsigned char)r[i]
                                  : (unsigned char)slash[6 + i - rl];
        if (ch < 0x21 || ch > 0x7e)
            return -1;
    }
    memcpy(realm, r, rl);
    realm[rl] = '\0';
    memcpy(user, slash + 6, ul);
    user[ul] = '\0';
    *id = v;
    return 0;
}

/* The unsigned decimal after "name=" in v (at its start or after a space),
 * or -1. */
static int
field_u64(const char *v, const char *name, uint64_t *out)
{
    size_t ln = strlen(name);
    const char *p = v;
    uint64_t x = 0;
    int digits = 0;

    for (;;) {
        p = strstr(p, name);
        if (p == NULL)
            return -1;
        if ((p == v || p[-1] == ' ') && p[ln] == '=')
            break;
        p += ln;
    }
    for (p += ln + 1; *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
        digits++;
    }
    if (digits == 0 || digits > 20)
        return -1;
    *out = x;
    return 0;
}

/* "remote=1.2.3.4:5678" or "remote=[::1]:5678" -> "1.2.3.4" / "::1",
 * checked by tp_addr_parse; "" if absent or malformed. */
static void
field_client(const char *v, char *out, size_t cap)
{
    const char *p = strstr(v, "remote="), *end;
    char tmp[64];
    size_t n;
    tp_addr a;

    out[0] = '\0';
    if (p == NULL || (p != v && p[-1] != ' '))
        return;
    p += 7;
    if (*p == '[') {
        p++;
        end = strchr(p, ']');
    } else {
        end = p + strcspn(p, ", ");
        /* the port is after the last ':' of an IPv4 address */
        while (end > p && end[-1] != ':')
            end--;
        if (end > p)
            end--;
    }
    if (end == NULL || end <= p)
        return;
    n = (size_t)(end - p);
    if (n >= sizeof(tmp) || n >= cap)
        return;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (tp_addr_parse(tmp, &a, NULL) != TP_OK)
        return;
    memcpy(out, tmp, n + 1);
}

static void
traffic(const char *v, uint64_t *in, uint64_t *out, int add)
{
    uint64_t rcvb, sentb;

    if (field_u64(v, "rcvb", &rcvb) != 0 || field_u64(v, "sentb", &sentb))
        return;
    if (add) {
        *in = rcvb > UINT64_MAX - *in ? UINT64_MAX : *in + rcvb;
        *out = sentb > UINT64_MAX - *out ? UINT64_MAX : *out + sentb;
    } else {
        *in = rcvb;
        *out = sentb;
    }
}

/* traffic() on the client side, keeping the user's sum in step. */
static void
client_traffic(session *e, const char *v, int add)
{
    uint64_t before = session_bytes(e);

    traffic(v, &e->bytes_in, &e->bytes_out, add);
    e->u->bytes = sat_add(sat_sub(e->u->bytes, before), session_bytes(e));
}

static int
status_event(tpd *d, session *e, const char *realm, const char *user,
             const tp_username *un, uint64_t id, const char *v, int64_t now)
{
    const char *user_id = un->user_id;
    uint64_t lifetime = 0;
    char cid[300];
    int is_new = strncmp(v, "new ", 4) == 0;

    counter_id(d, id, cid, sizeof(cid));
    if (strcmp(v, "deleted") == 0) {
        if (e == NULL) {
            e = create(d, id, realm, user, un, now);
            if (e == NULL)
                return 1;
            d->n.sessions_adopted++;
        }
        if (!e->ended) {
            mark_ended(e, now);
            tpd_allocq_push(d->allocq, realm, user_id, cid, id, 0);
        }
        return 1;
    }
    if (!is_new && strncmp(v, "refreshed ", 10) != 0)
        return 0;
    if (field_u64(v, "lifetime", &lifetime) != 0 || lifetime > 86400 * 7)
        return 0;
    if (e == NULL) {
        e = create(d, id, realm, user, un, now);
        if (e == NULL)
            return 1;
        if (is_new)
            d->n.sessions_started++;
        else
            d->n.sessions_adopted++;
        field_client(v, e->client, sizeof(e->client));
        tpd_log(TP_LOG_INFO, "session %018" PRIu64 " %s: realm=%s user=%s "
                "client=%s lifetime=%" PRIu64, id,
                is_new ? "new" : "adopted", realm, user_id,
                e->client[0] ? e->client : "-", lifetime);
    } else if (e->client[0] == '\0') {
        field_client(v, e->client, sizeof(e->client));
    }
    if (e->ended)
        return 1;
    e->expires = now + (int64_t)lifetime;
    if (lifetime > 0)
        tpd_allocq_push(d->allocq, realm, user_id, cid, id,
                        (uint32_t)lifetime + d->alloc_slack);
    return 1;
}

int
tpd_stats_event(tpd *d, const char *key, size_t klen, const char *val,
                size_t vlen, int64_t now)
{
    char realm[TP_REALM_MAX + 1], user[TP_USERNAME_MAX + 1];
    tp_username un;
    enum kind kind;
    uint64_t id;
    session *e;

    (void)vlen;
    if (parse_key(key, klen, realm, user, &id, &kind) != 0)
        return 0;
    /* Only sessions of usernames turnpolicy could have granted. */
    if (tp_realm_check(realm, NULL) != TP_OK ||
        tp_username_parse(user, &un, NULL) != TP_OK)
        return 0;
    e = find(d->sessions, id);
    if (e != NULL && (strcmp(e->realm, realm) != 0 ||
                      strcmp(e->username, user) != 0))
        return 0; /* another coturn reusing the id: not ours to mix */
    switch (kind) {
    case K_STATUS:
        return status_event(d, e, realm, user, &un, id, val, now);
    case K_TRAFFIC:
    case K_TRAFFIC_PEER:
        /* Not a reason to adopt a session: coturn 4.18 (not 4.6.1) reports
         * the traffic of sessions refused before they allocated (with
         * their username), which would stay here as ghosts counted
         * against the user's quota.  A live session we did not see
         * start is adopted at its next status report, and its totals
         * come with total_traffic at the end. */
        if (e == NULL)
            return 1;
        if (kind == K_TRAFFIC) {
            client_traffic(e, val, 1);
            e->dirty = 1;
        } else {
            traffic(val, &e->peer_in, &e->peer_out, 1);
        }
        return 1;
    case K_TOTAL:
        if (e == NULL) {
            e = create(d, id, realm, user, &un, now);
            if (e == NULL)
                return 1;
            d->n.sessions_adopted++;
            mark_ended(e, now);
        }
        client_traffic(e, val, 0);
        if (e->ended)
            finish(d, e, e->ended_at);
        return 1;
    case K_TOTAL_PEER:
        if (e != NULL)
            traffic(val, &e->peer_in, &e->peer_out, 0);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Allocation-counter worker                                           */
/* ------------------------------------------------------------------ */

typedef struct alloc_op {
    char realm[TP_REALM_MAX + 1];
    char user_id[TP_USER_ID_MAX + 1];
    char session[160];
    uint64_t id;  /* coturn's session id */
    uint32_t ttl; /* 0 = release */
} alloc_op;

#define OVER_MAX 4096
#define BATCH_MAX 256      /* ops per round trip to Redis */
#define LINGER_US 2000     /* a lone op waits this long for company */

struct tpd_allocq {
    tp_store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    alloc_op *ops;
    alloc_op *batch;          /* the worker's: BATCH_MAX each */
    tp_alloc_op *batch_ops;
    size_t cap;
    size_t head;
    size_t count;
    int stop;
    struct timespec deadline; /* CLOCK_MONOTONIC; after it, drop */
    tpd_alloc_counters n;
    uint64_t over[OVER_MAX];  /* refused over quota, for the enforcer */
    size_t nover;
};

static int
past(const struct timespec *t)
{
    struct timespec now;

    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 1;
    return now.tv_sec > t->tv_sec ||
           (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static int
stopping(tpd_allocq *q)
{
    int stop = 1;

    if (pthread_mutex_lock(&q->mu) == 0) {
        stop = q->stop;
        (void)pthread_mutex_unlock(&q->mu);
    }
    return stop;
}

static void
to_op(const alloc_op *a, tp_alloc_op *o)
{
    memset(o, 0, sizeof(*o));
    o->realm = a->realm;
    o->user_id = a->user_id;
    o->session_id = a->session;
    o->ttl = a->ttl;
}

/*
 * A lost release leaves the session counted in the shared Redis set until
 * its TTL (lifetime + slack), where it can wrongly trip the user's quota
 * on other nodes.  So releases that fail because Redis is unreachable are
 * retried for a few seconds (the store's own reconnect backoff runs
 * meanwhile); acquires are not retried: the next refresh acquires again.
 */
static void
retry_releases(tpd_allocq *q, const alloc_op *b, tp_alloc_op *o, size_t n)
{
    tp_alloc_op again[BATCH_MAX];
    size_t idx[BATCH_MAX], m, i;
    struct timespec pause;
    long ms = 100;
    tp_error err;

    for (;;) {
        for (i = m = 0; i < n; i++)
            if (b[i].ttl == 0 && o[i].status == TP_EREDIS) {
                to_op(&b[i], &again[m]);
                idx[m++] = i;
            }
        if (m == 0 || ms > 3200 || stopping(q))
            return;
        pause.tv_sec = ms / 1000;
        pause.tv_nsec = (ms % 1000) * 1000000L;
        (void)nanosleep(&pause, NULL);
        ms *= 2;
        (void)tp_store_alloc_batch(q->st, again, m, tp_now(), &err);
        for (i = 0; i < m; i++)
            o[idx[i]].status = again[i].status;
    }
}

/*
 * The worker takes up to BATCH_MAX queued ops at a time (after lingering
 * LINGER_US when fewer are waiting, so that bursts share a round trip)
 * and runs them with tp_store_alloc_batch: one pipelined round trip to
 * Redis instead of one (acquire) or two (release) per op.
 */
static void *
worker(void *arg)
{
    static const struct timespec linger = {0, LINGER_US * 1000L};
    tpd_allocq *q = arg;
    alloc_op *b;
    tp_alloc_op *o;
    int failing = 0;
    size_t n, i;
    tp_error err;

    /* allocated by tpd_allocq_new: a worker that cannot start its
     * batches must fail the daemon's start, not drop every push later */
    b = q->batch;
    o = q->batch_ops;
    for (;;) {
        if (pthread_mutex_lock(&q->mu) != 0)
            break;
        while (q->count == 0 && !q->stop)
            (void)pthread_cond_wait(&q->cv, &q->mu);
        if (q->count == 0 || (q->stop && past(&q->deadline))) {
            q->n.dropped += q->count;
            q->count = 0;
            (void)pthread_mutex_unlock(&q->mu);
            break;
        }
        if (q->count < BATCH_MAX / 4 && !q->stop) {
            (void)pthread_mutex_unlock(&q->mu);
            (void)nanosleep(&linger, NULL);
            if (pthread_mutex_lock(&q->mu) != 0)
                break;
        }
        for (n = 0; q->count > 0 && n < BATCH_MAX; n++) {
            b[n] = q->ops[q->head];
            q->head = (q->head + 1) % q->cap;
            q->count--;
        }
        (void)pthread_mutex_unlock(&q->mu);

        for (i = 0; i < n; i++)
            to_op(&b[i], &o[i]);
        (void)tp_store_alloc_batch(q->st, o, n, tp_now(), &err);
        retry_releases(q, b, o, n);
        for (i = 0; i < n; i++) {
            if (o[i].status == TP_EQUOTA) {
                /* The session exists already: coturn granted it before
                 * the shared count caught up.  The enforcer cancels it
                 * (the id goes back to the loop below). */
                tpd_log(TP_LOG_WARN, "over quota: realm=%s user=%s "
                        "session=%s (%" PRIu32 " live in all)", b[i].realm,
                        b[i].user_id, b[i].session, o[i].count);
            } else if (o[i].status != TP_OK && !failing) {
                tpd_log(TP_LOG_WARN, "allocation counter %s failed: %s",
                        b[i].ttl > 0 ? "acquire" : "release",
                        tp_strerror(o[i].status));
                failing = 1;
            } else if (o[i].status == TP_OK && failing) {
                tpd_log(TP_LOG_INFO, "allocation counters work again");
                failing = 0;
            }
        }
        if (pthread_mutex_lock(&q->mu) != 0)
            break;
        for (i = 0; i < n; i++) {
            if (o[i].status == TP_EQUOTA) {
                q->n.over_quota++;
                if (q->nover < OVER_MAX)
                    q->over[q->nover++] = b[i].id;
            } else if (o[i].status != TP_OK) {
                q->n.errors++;
            } else if (b[i].ttl > 0) {
                q->n.acquired++;
            } else {
                q->n.released++;
            }
        }
        q->n.batches++;
        (void)pthread_mutex_unlock(&q->mu);
    }
    return NULL;
}

tpd_allocq *
tpd_allocq_new(tp_store *st, size_t cap)
{
    tpd_allocq *q = calloc(1, sizeof(*q));
    int mu = 0, cv = 0;

    if (q == NULL)
        return NULL;
    q->st = st;
    q->cap = cap;
    q->ops = calloc(cap, sizeof(*q->ops));
    q->batch = calloc(BATCH_MAX, sizeof(*q->batch));
    q->batch_ops = calloc(BATCH_MAX, sizeof(*q->batch_ops));
    if (q->ops == NULL || q->batch == NULL || q->batch_ops == NULL)
        goto fail;
    if (pthread_mutex_init(&q->mu, NULL) != 0)
        goto fail;
    mu = 1;
    if (pthread_cond_init(&q->cv, NULL) != 0)
        goto fail;
    cv = 1;
    if (pthread_create(&q->thread, NULL, worker, q) != 0)
        goto fail;
    return q;

fail:
    if (cv)
        pthread_cond_destroy(&q->cv);
    if (mu)
        pthread_mutex_destroy(&q->mu);
    free(q->ops);
    free(q->batch);
    free(q->batch_ops);
    free(q);
    return NULL;
}

void
tpd_allocq_free(tpd_allocq *q, int timeout_ms)
{
    if (q == NULL)
        return;
    if (pthread_mutex_lock(&q->mu) == 0) {
        if (clock_gettime(CLOCK_MONOTONIC, &q->deadline) == 0) {
            q->deadline.tv_sec += timeout_ms / 1000;
            q->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (q->deadline.tv_nsec >= 1000000000L) {
                q->deadline.tv_sec++;
                q->deadline.tv_nsec -= 1000000000L;
            }
        }
        q->stop = 1;
        (void)pthread_cond_signal(&q->cv);
        (void)pthread_mutex_unlock(&q->mu);
    }
    (void)pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->ops);
    free(q->batch);
    free(q->batch_ops);
    free(q);
}

void
tpd_allocq_push(tpd_allocq *q, const char *realm, const char *user_id,
                const char *sid, uint64_t id, uint32_t ttl)
{
    alloc_op *op;

    if (q == NULL || pthread_mutex_lock(&q->mu) != 0)
        return;
    if (q->count == q->cap || q->stop) {
        q->n.dropped++;
    } else {
        op = &q->ops[(q->head + q->count) % q->cap];
        snprintf(op->realm, sizeof(op->realm), "%s", realm);
        snprintf(op->user_id, sizeof(op->user_id), "%s", user_id);
        snprintf(op->session, sizeof(op->session), "%s", sid);
        op->id = id;
        op->ttl = ttl;
        q->count++;
        (void)pthread_cond_signal(&q->cv);
    }
    (void)pthread_mutex_unlock(&q->mu);
}

void
tpd_allocq_counters(tpd_allocq *q, tpd_alloc_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (q == NULL || pthread_mutex_lock(&q->mu) != 0)
        return;
    *out = q->n;
    (void)pthread_mutex_unlock(&q->mu);
}

size_t
tpd_allocq_take_over_quota(tpd_allocq *q, uint64_t *ids, size_t cap)
{
    size_t n;

    if (q == NULL || pthread_mutex_lock(&q->mu) != 0)
        return 0;
    n = q->nover < cap ? q->nover : cap;
    memcpy(ids, q->over, n * sizeof(*ids));
    memmove(q->over, q->over + n, (q->nover - n) * sizeof(*ids));
    q->nover -= n;
    (void)pthread_mutex_unlock(&q->mu);
    return n;
}
