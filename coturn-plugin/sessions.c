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
 * Who may enter the table (the rule that keeps a client without the
 * password from touching anybody's quota, budget or live count):
 * coturn reports a session's traffic whether or not it ever
 * authenticated - a client that sends Allocate with a known user's name
 * and a wrong password, an expired or a revoked credential gets a 401,
 * yet its coturn session still reports "traffic" under that username
 * when it is closed (max-allocate-timeout later, 60 s by default).
 * Only the status reports prove an allocation: coturn sends "new" and
 * "refreshed" from turn_report_allocation_set, and "deleted" from
 * clear_allocation only when a->is_valid, i.e. after MESSAGE-INTEGRITY
 * was checked against the key we served.  So:
 *   - "new" or "refreshed" (a session we did not see start, e.g. after a
 *     turnpolicyd restart: "adopted") put a session in the table, live;
 *   - "deleted" of an id we do not have keeps a tombstone (ended, never
 *     live) for the total_traffic that follows, so an allocation that
 *     outlived our memory of it is still metered to its user;
 *   - traffic and total_traffic of an id not in the table are counted
 *     (statsdb_unattributed_total) and go no further: never a session,
 *     a counter acquire, a usage record or a user's bytes.
 * What coturn's CLI lists is the truth when in doubt: the enforcer drops
 * a session from the table once coturn confirms it does not list it
 * (tpd_sessions_gone).
 *
 * Life of a session: "new" (or "adopted" on "refreshed") ->
 * tp_store_alloc_acquire for lifetime + slack, again on every
 * "refreshed" -> "deleted": release, then the usage record once
 * total_traffic arrives (or 5 s later without it).  A session whose
 * lifetime passes without a refresh (coturn restarted) lapses the same
 * way.  Usage session ids are "<coturn id>-<start>" so that ids coturn
 * reuses after a restart stay distinct; counter ids are "<node>:<id>".
 *
 * Served keys: every key turnpolicyd hands coturn is remembered (a hash
 * of realm and username, and when) for KEY_WINDOW seconds.  A "new"
 * report of that username within the window confirms it; one that never
 * comes was a wrong password (coturn checks MESSAGE-INTEGRITY after we
 * answer), or a client that went away: counted as
 * auth_failed_or_abandoned.  Metrics only: decisions never depend on it.
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
 * Threads: the table belongs to the loop thread.  Its shared counter
 * operations go through the allocation-counter queue (allocq.c), which
 * never blocks the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnpolicyd.h"

/* Hash tables are sized from max_sessions: about 2 sessions (users,
 * served keys) a bucket when full, a power of two between these. */
#define BUCKETS_MIN 16
#define BUCKETS_MAX (1u << 20)
#define DELETED_WAIT 5   /* seconds to wait for total_traffic */
#define LAPSE_SLACK 60   /* seconds past the lifetime before giving up */
#define ADOPT_LIFETIME 3600
#define KEY_WINDOW 10    /* seconds for a served key to become a session */
#define KEY_MAX 65536    /* served keys remembered at most */

/* A key served to coturn, waiting for its session's "new" report. */
typedef struct served_key {
    struct served_key *next;         /* bucket chain */
    struct served_key **pprev;       /* what points at it in the chain */
    struct served_key *older, *newer; /* FIFO over all */
    uint64_t hash;
    int64_t at;
} served_key;

/* A realm's bytes not in the snapshot: the sum of its users' (for the
 * realm's byte budget).  Kept while the table lives: realms are few, and
 * only status reports (coturn's own realms) create one. */
typedef struct realm_agg {
    struct realm_agg *next;
    uint64_t bytes;
    uint64_t pending;
    char realm[TP_REALM_MAX + 1];
} realm_agg;

/* A user with sessions in the table or bytes not in the snapshot. */
typedef struct user_agg {
    struct user_agg *next;
    realm_agg *r;            /* NULL only when out of memory */
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
    size_t nb;               /* buckets of each table, a power of 2 */
    session **buckets;
    size_t count;
    size_t max;
    user_agg **users;
    pending_rec *phead, *ptail;
    uint64_t recorded;       /* usage records the store accepted */
    served_key **keys;
    served_key *koldest, *knewest;
    size_t nkeys;
    size_t nlive;            /* sessions not reported deleted */
    realm_agg *realms;
};

enum kind {
    K_STATUS = TPD_REPORT_STATUS,
    K_TRAFFIC = TPD_REPORT_TRAFFIC,
    K_TRAFFIC_PEER = TPD_REPORT_TRAFFIC_PEER,
    K_TOTAL = TPD_REPORT_TOTAL,
    K_TOTAL_PEER = TPD_REPORT_TOTAL_PEER
};

/* ------------------------------------------------------------------ */
/* Table                                                               */
/* ------------------------------------------------------------------ */

tpd_sessions *
tpd_sessions_new(size_t max_sessions)
{
    tpd_sessions *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->max = max_sessions;
    for (s->nb = BUCKETS_MIN; s->nb < BUCKETS_MAX && s->nb < max_sessions / 2;
         s->nb *= 2)
        ;
    s->buckets = calloc(s->nb, sizeof(*s->buckets));
    s->users = calloc(s->nb, sizeof(*s->users));
    s->keys = calloc(s->nb, sizeof(*s->keys));
    if (s->buckets == NULL || s->users == NULL || s->keys == NULL) {
        tpd_sessions_free(s);
        return NULL;
    }
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
    for (i = 0; s->buckets != NULL && i < s->nb; i++) {
        for (e = s->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    for (i = 0; s->users != NULL && i < s->nb; i++) {
        for (u = s->users[i]; u != NULL; u = unext) {
            unext = u->next;
            free(u);
        }
    }
    for (p = s->phead; p != NULL; p = pnext) {
        pnext = p->next;
        free(p);
    }
    while (s->koldest != NULL) {
        served_key *k = s->koldest;

        s->koldest = k->newer;
        free(k);
    }
    while (s->realms != NULL) {
        realm_agg *r = s->realms;

        s->realms = r->next;
        free(r);
    }
    free(s->buckets);
    free(s->users);
    free(s->keys);
    free(s);
}

size_t
tpd_sessions_live(const tpd_sessions *s)
{
    return s->nlive;
}

/* ------------------------------------------------------------------ */
/* Served keys                                                         */
/* ------------------------------------------------------------------ */

static uint64_t
key_hash(const char *realm, const char *username)
{
    uint64_t h = 14695981039346656037ull;
    const char *p;

    for (p = realm; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* a byte no name holds */
    for (p = username; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* O(1): a chain can hold every remembered key (one username asked for
 * again and again), so unlinking never walks it. */
static void
key_unlink(tpd_sessions *s, served_key *k)
{
    *k->pprev = k->next;
    if (k->next != NULL)
        k->next->pprev = k->pprev;
    if (k->older != NULL)
        k->older->newer = k->newer;
    else
        s->koldest = k->newer;
    if (k->newer != NULL)
        k->newer->older = k->older;
    else
        s->knewest = k->older;
    s->nkeys--;
    free(k);
}

void
tpd_sessions_key_served(tpd *d, const char *realm, const char *username,
                        int64_t now)
{
    tpd_sessions *s = d->sessions;
    served_key *k, **slot;

    if (s->nkeys >= KEY_MAX) { /* the oldest cannot be confirmed now */
        d->n.keys_abandoned++;
        key_unlink(s, s->koldest);
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return;
    k->hash = key_hash(realm, username);
    k->at = now;
    slot = &s->keys[k->hash & (s->nb - 1)];
    k->next = *slot;
    if (k->next != NULL)
        k->next->pprev = &k->next;
    k->pprev = slot;
    *slot = k;
    k->older = s->knewest;
    if (s->knewest != NULL)
        s->knewest->newer = k;
    else
        s->koldest = k;
    s->knewest = k;
    s->nkeys++;
}

/* A session of username started: the oldest key served for it is
 * confirmed.  Nothing if none is waiting (e.g. served before a
 * restart). */
static void
key_confirm(tpd *d, const char *realm, const char *username)
{
    tpd_sessions *s = d->sessions;
    uint64_t h = key_hash(realm, username);
    served_key *k, *oldest = NULL;

    for (k = s->keys[h & (s->nb - 1)]; k != NULL; k = k->next)
        if (k->hash == h)
            oldest = k; /* chains are newest first */
    if (oldest == NULL)
        return;
    d->n.keys_confirmed++;
    key_unlink(s, oldest);
}

/* Keys served more than KEY_WINDOW seconds ago never became a session. */
static void
keys_expire(tpd *d, int64_t now)
{
    tpd_sessions *s = d->sessions;

    while (s->koldest != NULL && now - s->koldest->at > KEY_WINDOW) {
        d->n.keys_abandoned++;
        key_unlink(s, s->koldest);
    }
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

/* The aggregate of realm; created when create is set.  NULL if absent,
 * or out of memory. */
static realm_agg *
realm_get(tpd_sessions *s, const char *realm, int create)
{
    realm_agg *r;

    for (r = s->realms; r != NULL; r = r->next)
        if (strcmp(r->realm, realm) == 0)
            return r;
    if (!create)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    snprintf(r->realm, sizeof(r->realm), "%s", realm);
    r->next = s->realms;
    s->realms = r;
    return r;
}

/* The aggregate of (realm, user_id); created (zeroed) when create is set
 * and it does not exist.  NULL if absent, or out of memory. */
static user_agg *
user_get(tpd_sessions *s, const char *realm, const char *user_id,
         int create)
{
    uint32_t h = user_hash(realm, user_id);
    user_agg *u;

    for (u = s->users[h & (s->nb - 1)]; u != NULL; u = u->next)
        if (u->hash == h && strcmp(u->user_id, user_id) == 0 &&
            strcmp(u->realm, realm) == 0)
            return u;
    if (!create)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->hash = h;
    u->r = realm_get(s, realm, 1);
    snprintf(u->realm, sizeof(u->realm), "%s", realm);
    snprintf(u->user_id, sizeof(u->user_id), "%s", user_id);
    u->next = s->users[h & (s->nb - 1)];
    s->users[h & (s->nb - 1)] = u;
    return u;
}

/* Free u once nothing refers to it. */
static void
user_put(tpd_sessions *s, user_agg *u)
{
    user_agg **pp;

    if (u->refs > 0 || u->npending > 0)
        return;
    for (pp = &s->users[u->hash & (s->nb - 1)]; *pp != NULL;
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
        if (p->u->r != NULL)
            p->u->r->pending = sat_sub(p->u->r->pending, p->bytes);
        p->u->npending--;
        user_put(s, p->u);
        free(p);
    }
}

void
tpd_sessions_user(tpd_sessions *s, uint64_t included, const char *realm,
                  const char *user_id, size_t *live, uint64_t *bytes,
                  uint64_t *realm_bytes)
{
    const user_agg *u;
    const realm_agg *r;

    tpd_sessions_prune(s, included);
    u = user_get(s, realm, user_id, 0);
    r = realm_get(s, realm, 0);
    *live = u != NULL ? u->live : 0;
    *bytes = u != NULL ? sat_add(u->bytes, u->pending) : 0;
    *realm_bytes = r != NULL ? sat_add(r->bytes, r->pending) : 0;
}

static session *
find(tpd_sessions *s, uint64_t id)
{
    session *e;

    for (e = s->buckets[id & (s->nb - 1)]; e != NULL; e = e->next)
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
    s->nlive++;
    e->id = id;
    snprintf(e->realm, sizeof(e->realm), "%s", realm);
    snprintf(e->user_id, sizeof(e->user_id), "%s", un->user_id);
    snprintf(e->username, sizeof(e->username), "%s", username);
    e->cred_expires = un->expires;
    e->dirty = 1;
    e->started = now;
    e->expires = now + ADOPT_LIFETIME;
    e->next = s->buckets[id & (s->nb - 1)];
    s->buckets[id & (s->nb - 1)] = e;
    s->count++;
    return e;
}

static void
unlink_session(tpd_sessions *s, session *e)
{
    session **pp;

    for (pp = &s->buckets[e->id & (s->nb - 1)]; *pp != NULL;
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
    ref->realm_bytes = e->u->r != NULL
                           ? sat_add(e->u->r->bytes, e->u->r->pending)
                           : 0;
    ref->cred_expires = e->cred_expires;
    ref->started = e->started;
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

    for (i = *cursor; i < s->nb; i++) {
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

/* coturn reported the session deleted (or its CLI no longer lists it). */
static void
mark_ended(tpd_sessions *s, session *e, int64_t now)
{
    e->ended = 1;
    e->ended_at = now;
    e->u->live--;
    s->nlive--;
}

static void
counter_id(const tpd *d, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%018" PRIu64, d->node, id);
}

void
tpd_sessions_gone(tpd *d, uint64_t id, const char *username, int64_t now)
{
    session *e = find(d->sessions, id);
    char cid[300];

    if (e == NULL || e->ended || strcmp(e->username, username) != 0)
        return;
    mark_ended(d->sessions, e, now);
    counter_id(d, id, cid, sizeof(cid));
    tpd_allocq_push(d->allocq, e->realm, e->user_id, cid, id, 0);
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
    if (u->r != NULL)
        u->r->pending = sat_add(u->r->pending, bytes);
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
    if (e->u->r != NULL)
        e->u->r->bytes = sat_sub(e->u->r->bytes, session_bytes(e));
    e->u->refs--;
    if (!e->ended) {
        e->u->live--;
        d->sessions->nlive--;
    }
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
    keys_expire(d, now);
    if (s->count == 0)
        return;
    for (i = 0; i < s->nb; i++) {
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
    /* in "turn/realm/allocation/..." it overlaps the prefix */
    if (a == NULL || a < key + sizeof(pfx) - 1)
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

int
tpd_report_parse(const char *key, size_t klen, const char *val,
                 tpd_report *r)
{
    enum kind kind;

    memset(r, 0, sizeof(*r));
    if (parse_key(key, klen, r->realm, r->username, &r->id, &kind) != 0)
        return -1;
    /* Only sessions of usernames turnpolicy could have granted. */
    if (tp_realm_check(r->realm, NULL) != TP_OK ||
        tp_username_parse(r->username, &r->un, NULL) != TP_OK)
        return -1;
    r->kind = (int)kind;
    if (kind != K_STATUS) {
        r->has_traffic = field_u64(val, "rcvb", &r->rcvb) == 0 &&
                         field_u64(val, "sentb", &r->sentb) == 0;
        return 0;
    }
    if (strcmp(val, "deleted") == 0) {
        r->status = TPD_STATUS_DELETED;
    } else if (strncmp(val, "new ", 4) == 0 ||
               strncmp(val, "refreshed ", 10) == 0) {
        if (field_u64(val, "lifetime", &r->lifetime) != 0 ||
            r->lifetime > 86400 * 7)
            return 0; /* TPD_STATUS_OTHER */
        r->status = val[0] == 'n' ? TPD_STATUS_NEW : TPD_STATUS_REFRESHED;
        field_client(val, r->client, sizeof(r->client));
    }
    return 0;
}

/* A traffic report on the client side, keeping the user's sum in step:
 * add (a delta since the last report) or set (the session's totals). */
static void
client_traffic(session *e, const tpd_report *r, int add)
{
    uint64_t before = session_bytes(e);

    if (!r->has_traffic)
        return;
    e->bytes_in = add ? sat_add(e->bytes_in, r->rcvb) : r->rcvb;
    e->bytes_out = add ? sat_add(e->bytes_out, r->sentb) : r->sentb;
    e->u->bytes = sat_add(sat_sub(e->u->bytes, before), session_bytes(e));
    if (e->u->r != NULL)
        e->u->r->bytes = sat_add(sat_sub(e->u->r->bytes, before),
                                 session_bytes(e));
}

static void
peer_traffic(session *e, const tpd_report *r, int add)
{
    if (!r->has_traffic)
        return;
    e->peer_in = add ? sat_add(e->peer_in, r->rcvb) : r->rcvb;
    e->peer_out = add ? sat_add(e->peer_out, r->sentb) : r->sentb;
}

static int
status_event(tpd *d, session *e, const tpd_report *r, int64_t now)
{
    const char *user_id = r->un.user_id;
    int is_new = r->status == TPD_STATUS_NEW;
    char cid[300];

    counter_id(d, r->id, cid, sizeof(cid));
    if (r->status == TPD_STATUS_DELETED) {
        if (e == NULL) {
            /* an allocation we did not see (coturn sends "deleted"
             * only for a valid one): a tombstone for its totals */
            e = create(d, r->id, r->realm, r->username, &r->un, now);
            if (e == NULL)
                return 1;
            d->n.sessions_adopted++;
        }
        if (!e->ended) {
            mark_ended(d->sessions, e, now);
            tpd_allocq_push(d->allocq, r->realm, user_id, cid, r->id, 0);
        }
        return 1;
    }
    if (r->status != TPD_STATUS_NEW && r->status != TPD_STATUS_REFRESHED)
        return 0;
    if (e == NULL) {
        e = create(d, r->id, r->realm, r->username, &r->un, now);
        if (e == NULL)
            return 1;
        if (is_new) {
            d->n.sessions_started++;
            key_confirm(d, r->realm, r->username);
        } else {
            d->n.sessions_adopted++;
        }
        snprintf(e->client, sizeof(e->client), "%s", r->client);
        tpd_log(TP_LOG_INFO, "session %018" PRIu64 " %s: realm=%s user=%s "
                "client=%s lifetime=%" PRIu64, r->id,
                is_new ? "new" : "adopted", r->realm, user_id,
                e->client[0] ? e->client : "-", r->lifetime);
    } else if (e->client[0] == '\0') {
        snprintf(e->client, sizeof(e->client), "%s", r->client);
    }
    if (e->ended)
        return 1;
    e->expires = now + (int64_t)r->lifetime;
    if (r->lifetime > 0)
        tpd_allocq_push(d->allocq, r->realm, user_id, cid, r->id,
                        (uint32_t)r->lifetime + d->alloc_slack);
    return 1;
}

int
tpd_stats_event(tpd *d, const char *key, size_t klen, const char *val,
                size_t vlen, int64_t now)
{
    tpd_report r;
    session *e;

    (void)vlen;
    if (tpd_report_parse(key, klen, val, &r) != 0)
        return 0;
    e = find(d->sessions, r.id);
    if (e != NULL && (strcmp(e->realm, r.realm) != 0 ||
                      strcmp(e->username, r.username) != 0))
        return 0; /* another coturn reusing the id: not ours to mix */
    switch ((enum kind)r.kind) {
    case K_STATUS:
        return status_event(d, e, &r, now);
    case K_TRAFFIC:
    case K_TRAFFIC_PEER:
    case K_TOTAL:
        if (e == NULL) {
            /* No allocation coturn reported: maybe a client that never
             * authenticated (see the head comment).  Nobody's.  (The
             * peer side of a session we finished a moment ago, or of
             * one we never had, is not worth a count.) */
            if (r.kind != K_TRAFFIC_PEER)
                d->n.statsdb_unattributed++;
            return 1;
        }
        if (r.kind == K_TRAFFIC) {
            client_traffic(e, &r, 1);
            e->dirty = 1;
        } else if (r.kind == K_TRAFFIC_PEER) {
            peer_traffic(e, &r, 1);
        } else {
            client_traffic(e, &r, 0);
            if (e->ended)
                finish(d, e, e->ended_at);
        }
        return 1;
    case K_TOTAL_PEER:
        if (e != NULL)
            peer_traffic(e, &r, 0);
        return 1;
    }
    return 0;
}
