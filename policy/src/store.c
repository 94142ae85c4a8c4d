/*
 * store.c - the policy store: a snapshot of the PostgreSQL policy held in
 * memory, kept current by a background thread, answering decisions.
 *
 * What: tp_store_new connects to PostgreSQL, loads every realm (with its
 * secrets as a tp_keyring, host rules as a tp_hostlist, peer rules as a
 * tp_peerset), every user (status, revoked_before) and every revoked
 * credential in one REPEATABLE READ transaction, and starts a thread that
 * LISTENs on channel "turnpolicy" and reloads when a change is notified,
 * every reload_interval, or on request.
 *
 * Why a snapshot: decisions sit on coturn's authentication path and on
 * nginx's request path, where no I/O may block.  A decision enters a
 * read-side critical section (one atomic increment of a per-parity reader
 * count, no lock), reads the current snapshot and overlay pointers, and
 * leaves; a reload builds a complete new snapshot off to the side, swaps
 * the pointer, and frees the old one only after a two-phase grace period
 * (flip the epoch parity, wait for the old parity's readers to drain,
 * twice) - the scheme of userspace RCU.  So a decision sees either the
 * old policy or the new one, never a mix, and readers never wait.  Only
 * the store thread (and tp_store_free, after joining it) swaps pointers.
 *
 * Freshness: the thread records the last moment it knew the snapshot was
 * current (a successful load, or a heartbeat round trip with no change
 * pending).  Decisions refuse with TP_ESTALE once that is older than
 * max_staleness: PostgreSQL down means "decide from the last snapshot for
 * a bounded time, then fail closed" (DESIGN.md).  NOTIFY does not reach
 * hot-standby replicas; with no_listen the store relies on the periodic
 * reload (and, later, on Redis fan-out).
 *
 * Invariants: realms are sorted by name; users by (realm index, user id);
 * revoked credentials by (realm index, username) - all with strcmp order,
 * sorted here rather than by the database's collation.  A snapshot is
 * immutable once published and freed when its last pin is dropped.
 * Secret bytes pass through PGresult buffers (hex) during a load; those
 * are wiped before PQclear.
 */
#include "tp_internal.h"
#include "tp_redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/sha.h>

#define HEARTBEAT_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct realm_entry {
    char *name;
    tp_keyring *kr;
    tp_hostlist *hl;
    tp_peerset *ps;
    tp_jwt_keys *jk;
    int killed;
    uint32_t max_ttl;
    uint32_t default_ttl;
    int64_t user_quota;  /* live allocations per user; 0 = unlimited */
    int64_t total_quota; /* live allocations per realm; 0 = unlimited */
    int64_t max_bps;     /* 0 = unlimited */
    int64_t user_budget; /* bytes per user per budget_period; 0 = none */
    int64_t budget_period;
    char **urls;         /* TURN URIs, in order */
    size_t nurls;
} realm_entry;

typedef struct user_entry {
    size_t realm;        /* index into realms */
    char *user_id;
    int active;
    int64_t revoked_before; /* Unix seconds; 0 = never revoked */
    int64_t user_quota;  /* -1 = the realm's */
    int64_t user_budget; /* -1 = the realm's */
    uint64_t used;       /* bytes of finished sessions in the period */
    int has_cidr;        /* client_cidr binding */
    tp_addr cidr;
    int cidr_len;
} user_entry;

typedef struct origin_entry {
    char *origin;
    size_t realm;
} origin_entry;

typedef struct revoked_entry {
    size_t realm;
    char *username;
} revoked_entry;

typedef struct snapshot {
    int64_t loaded_at;      /* Unix seconds */
    realm_entry *realms;
    size_t nrealms;
    user_entry *users;
    size_t nusers;
    revoked_entry *revoked;
    size_t nrevoked;
    uint32_t *uhash;        /* open addressing: index + 1 into users */
    size_t uhash_mask;      /* capacity - 1 (a power of two) */
    origin_entry *origins;  /* sorted by origin, then realm index */
    size_t norigins;
} snapshot;

/*
 * Changes learned through Redis before the snapshot has them (a node on a
 * replica).  Immutable once published, like snapshots; entries expire on
 * the monotonic clock.  Revocations are monotonic and kept for the realm's
 * max_ttl; disables and kill switches for OVERLAY_SHORT seconds, by when
 * any replica has caught up (and an enable / unkill removes them).
 */
#define OVERLAY_SHORT 120
#define OVERLAY_MAX 4096
#define CHANNEL "turnpolicy:changes"

enum ov_kind { OV_REVOKE_USER, OV_REVOKE_CRED, OV_DISABLE, OV_KILL };

typedef struct ov_entry {
    enum ov_kind kind;
    char realm[TP_REALM_MAX + 1];
    char key[TP_USERNAME_MAX + 1]; /* user id or username */
    int64_t before;                /* OV_REVOKE_USER */
    double until;                  /* monotonic seconds */
} ov_entry;

typedef struct overlay {
    ov_entry *e;
    size_t n;
} overlay;

typedef struct view {
    snapshot *s;
    overlay *o;
} view;

/* A finished session waiting to be written to turnpolicy.usage. */
#define USAGE_QUEUE_MAX 100000
#define USAGE_BATCH 200
#define USAGE_DELAY_MS 100  /* a record waits this long for company */

typedef struct usage_rec {
    struct usage_rec *next;
    char node[256];
    char session[129];
    char realm[TP_REALM_MAX + 1];
    char user[TP_USER_ID_MAX + 1];
    char client[64];
    int64_t started;
    int64_t ended;
    uint64_t bytes_in;
    uint64_t bytes_out;
} usage_rec;

struct tp_store {
    char *database;
    uint32_t max_staleness;
    uint32_t reload_interval;
    int no_listen;
    tp_log_fn log;
    void *log_ud;

    pthread_mutex_t mu;
    _Atomic(snapshot *) cur;  /* read lock-free; swapped by the thread */
    _Atomic(overlay *) ov;    /* likewise; may be NULL */
    atomic_uint epoch;        /* read-side parity (grace periods) */
    atomic_long readers[2];   /* readers inside, per parity */
    atomic_llong current_ms;  /* CLOCK_MONOTONIC ms: last known current */
    struct timespec current_at; /* guarded by mu: the same, for info */
    uint64_t generation;      /* guarded by mu */
    int connected;            /* guarded by mu */
    int stop;                 /* guarded by mu */
    int reload_requested;     /* guarded by mu */

    int sub_up;               /* guarded by mu */

    tp__redis *redis;         /* command connection; NULL = no Redis */
    redisContext *sub;        /* thread only: the subscription */
    struct timespec sub_retry; /* thread only */
    int sub_backoff;          /* thread only, ms */
    int sub_failing;          /* thread only */
    tp_fail_mode fail_mode;
    uint32_t issue_per_minute;

    atomic_ullong changes;    /* policy in force changed (snapshot or
                                 overlay swapped) */

    pthread_mutex_t uq_mu;    /* the usage queue */
    pthread_cond_t uq_cv;     /* signalled when records are written */
    usage_rec *uq_head;       /* guarded by uq_mu */
    usage_rec *uq_tail;
    size_t uq_len;
    uint64_t uq_written;
    uint64_t uq_done;         /* records taken off the queue for good
                                 (written, resent or refused), in order */
    long long uq_since_ms;    /* CLOCK_MONOTONIC ms the queue stopped
                                 being empty */
    int uq_flush;             /* a flush waits: write at once */
    size_t uq_max;
    atomic_ullong usage_included; /* uq_done when the snapshot in force
                                     began loading */

    tp_jwt_options jwt;       /* copied from the options */
    int jwt_set;

    int wake[2];              /* pipe: wakes the thread's poll */
    pthread_t thread;
    int thread_started;
    PGconn *conn;             /* owned by the thread after start */
    int failing;              /* thread only: a failure was logged */
    int usage_failing;        /* thread only: usage refusal logged */
    long long usage_retry_ms; /* thread only: no write before (refused) */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void
slog(const tp_store *st, tp_log_level lvl, const char *fmt, ...)
    TP__PRINTF(3, 4);

static void
slog(const tp_store *st, tp_log_level lvl, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (st->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->log(st->log_ud, lvl, msg);
}

static double
mono_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

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
static void
pg_message(PGconn *c, const PGresult *r, char *buf, size_t cap)
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

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

static void
snapshot_free(snapshot *s)
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
    for (i = 0; i < s->nusers; i++)
        free(s->users[i].user_id);
    for (i = 0; i < s->nrevoked; i++)
        free(s->revoked[i].username);
    for (i = 0; i < s->norigins; i++)
        free(s->origins[i].origin);
    free(s->origins);
    free(s->realms);
    free(s->users);
    free(s->revoked);
    free(s->uhash);
    free(s);
}

/* Read side: enter / leave.  Returns the parity to leave with. */
static int
read_enter(tp_store *st)
{
    int p = (int)(atomic_load(&st->epoch) & 1u);

    atomic_fetch_add(&st->readers[p], 1);
    return p;
}

static void
read_leave(tp_store *st, int p)
{
    atomic_fetch_sub(&st->readers[p], 1);
}

/* Writer side (the store thread only): wait until no reader can still
 * hold a pointer read before the last swap.  Two phases, because a reader
 * may have read the epoch just before a flip and counted itself under
 * the parity the first phase does not wait for. */
static void
synchronize_readers(tp_store *st)
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

static int
cmp_realm(const void *a, const void *b)
{
    return strcmp(((const realm_entry *)a)->name,
                  ((const realm_entry *)b)->name);
}

static int
cmp_user(const void *a, const void *b)
{
    const user_entry *x = a, *y = b;

    if (x->realm != y->realm)
        return x->realm < y->realm ? -1 : 1;
    return strcmp(x->user_id, y->user_id);
}

static int
cmp_revoked(const void *a, const void *b)
{
    const revoked_entry *x = a, *y = b;

    if (x->realm != y->realm)
        return x->realm < y->realm ? -1 : 1;
    return strcmp(x->username, y->username);
}

static long
find_realm(const snapshot *s, const char *name)
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

/* FNV-1a over the realm index and the user id. */
static uint32_t
user_hash(size_t realm, const char *user_id)
{
    uint32_t h = 2166136261u ^ (uint32_t)realm;

    h *= 16777619u;
    for (; *user_id != '\0'; user_id++) {
        h ^= (unsigned char)*user_id;
        h *= 16777619u;
    }
    return h;
}

/* Users are looked up on every decision: a hash table with a load factor
 * of at most 1/2 over the sorted array. */
static int
build_user_hash(snapshot *s)
{
    size_t cap = 16, i, j;

    while (cap < s->nusers * 2)
        cap *= 2;
    s->uhash = calloc(cap, sizeof(*s->uhash));
    if (s->uhash == NULL)
        return -1;
    s->uhash_mask = cap - 1;
    for (i = 0; i < s->nusers; i++) {
        j = user_hash(s->users[i].realm, s->users[i].user_id) &
            s->uhash_mask;
        while (s->uhash[j] != 0)
            j = (j + 1) & s->uhash_mask;
        s->uhash[j] = (uint32_t)(i + 1);
    }
    return 0;
}

static const user_entry *
find_user(const snapshot *s, size_t realm, const char *user_id)
{
    size_t j;

    if (s->uhash == NULL)
        return NULL;
    j = user_hash(realm, user_id) & s->uhash_mask;
    while (s->uhash[j] != 0) {
        const user_entry *u = &s->users[s->uhash[j] - 1];

        if (u->realm == realm && strcmp(u->user_id, user_id) == 0)
            return u;
        j = (j + 1) & s->uhash_mask;
    }
    return NULL;
}

static int
is_revoked(const snapshot *s, size_t realm, const char *username)
{
    revoked_entry key;

    key.realm = realm;
    key.username = (char *)(uintptr_t)username;
    return bsearch(&key, s->revoked, s->nrevoked, sizeof(*s->revoked),
                   cmp_revoked) != NULL;
}

/* ------------------------------------------------------------------ */
/* Overlay: changes received through Redis                             */
/* ------------------------------------------------------------------ */

static double
mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
overlay_free(overlay *o)
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
static int
overlay_has(const overlay *o, enum ov_kind kind, const char *realm,
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
static void
overlay_update(tp_store *st, const ov_entry *add, int cancel_kind,
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
    atomic_fetch_add(&st->changes, 1);
    synchronize_readers(st);
    overlay_free(old);
}

/* Run a query in the load transaction. */
static tp_status
load_query(PGconn *c, const char *sql, PGresult **out, tp_error *err)
{
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    char msg[200];

    if (r == NULL || (PQresultStatus(r) != PGRES_TUPLES_OK &&
                      PQresultStatus(r) != PGRES_COMMAND_OK)) {
        pg_message(c, r, msg, sizeof(msg));
        PQclear(r);
        return tp__fail(err, TP_EDB, "loading the policy: %s", msg);
    }
    *out = r;
    return TP_OK;
}

/* Wipe the text of every value in column col before the result is
 * cleared (it held secret bytes in hex). */
/* The connection string may hold a password. */
static void
free_conninfo(char *s)
{
    if (s != NULL)
        tp__wipe(s, strlen(s));
    free(s);
}

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
    long ri = find_realm(s, PQgetvalue(r, row, 0));

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

    st = load_query(c, "SELECT name, default_ttl, max_ttl, clock_skew, "
                    "killed, peer_default, coalesce(user_quota, 0), "
                    "coalesce(total_quota, 0), coalesce(max_bps, 0), "
                    "coalesce(user_byte_budget, 0), "
                    "coalesce(budget_period, 0) "
                    "FROM turnpolicy.realms", &r, err);
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
    qsort(s->realms, s->nrealms, sizeof(*s->realms), cmp_realm);
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

    st = load_query(c, "SELECT realm, kid, encode(secret, 'hex'), state "
                    "FROM turnpolicy.secrets", &r, err);
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

    st = load_query(c, "SELECT realm, encode(secret, 'hex') "
                    "FROM turnpolicy.legacy_secrets", &r, err);
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
static int
parse_cidr(const char *text, tp_addr *a, int *len)
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

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address. */
static void
canonical_addr(tp_addr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
                                       0xff};

    if (a->family == AF_INET6 && memcmp(a->bytes, mapped, 12) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = AF_INET;
    }
}

static int
cidr_contains(const tp_addr *net, int len, const tp_addr *addr)
{
    tp_addr a = *addr, n = *net;
    int i;

    canonical_addr(&a);
    canonical_addr(&n);
    if (a.family != n.family)
        return 0;
    for (i = 0; len > 0; i++, len -= 8) {
        uint8_t mask = len >= 8 ? 0xff : (uint8_t)(0xff << (8 - len));

        if ((a.bytes[i] & mask) != (n.bytes[i] & mask))
            return 0;
    }
    return 1;
}

static int
cmp_origin(const void *a, const void *b)
{
    const origin_entry *x = a, *y = b;
    int c = strcmp(x->origin, y->origin);

    if (c != 0)
        return c;
    return (x->realm > y->realm) - (x->realm < y->realm);
}

/* Origins and per-user usage in the budget period. */
static tp_status
load_extras(PGconn *c, snapshot *s, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    size_t i, o;
    long ri;
    int n, k;

    st = load_query(c, "SELECT r.name, u.url FROM turnpolicy.realms r, "
                    "unnest(r.turn_urls) WITH ORDINALITY AS u(url, n) "
                    "ORDER BY r.name, u.n", &r, err);
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

    st = load_query(c, "SELECT name, unnest(allowed_origins) FROM "
                    "turnpolicy.realms", &r, err);
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
    if (s->norigins > 1)
        qsort(s->origins, s->norigins, sizeof(*s->origins), cmp_origin);
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
    PQclear(r);
    r = NULL;

    st = load_query(c, "SELECT u.realm, u.user_id, "
                    "sum(u.bytes_in + u.bytes_out)::text "
                    "FROM turnpolicy.usage u JOIN turnpolicy.realms r "
                    "ON r.name = u.realm WHERE r.budget_period IS NOT NULL "
                    "AND u.ended_at > now() - "
                    "make_interval(secs => r.budget_period) "
                    "GROUP BY u.realm, u.user_id", &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    for (k = 0; k < n; k++) {
        ri = find_realm(s, PQgetvalue(r, k, 0));
        if (ri >= 0) {
            user_entry *u = (user_entry *)(uintptr_t)find_user(
                s, (size_t)ri, PQgetvalue(r, k, 1));

            if (u != NULL)
                u->used = strtoull(PQgetvalue(r, k, 2), NULL, 10);
        }
    }
out:
    PQclear(r);
    return st;
}

static tp_status
load_users(PGconn *c, snapshot *s, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    long ri;
    int i, n;

    st = load_query(c, "SELECT realm, user_id, status, "
                    "coalesce(extract(epoch FROM revoked_before)::bigint, 0), "
                    "coalesce(user_quota, -1), coalesce(user_byte_budget, -1), "
                    "client_cidr::text FROM turnpolicy.users", &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    s->users = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->users));
    if (s->users == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory loading users");
        goto out;
    }
    for (i = 0; i < n; i++) {
        user_entry *u = &s->users[s->nusers];

        ri = realm_of(s, r, i, err);
        if (ri < 0) {
            st = TP_EDB;
            goto out;
        }
        u->realm = (size_t)ri;
        u->user_id = strdup(PQgetvalue(r, i, 1));
        if (u->user_id == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading users");
            goto out;
        }
        s->nusers++;
        u->active = strcmp(PQgetvalue(r, i, 2), "active") == 0;
        u->revoked_before = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        u->user_quota = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        u->user_budget = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        if (!PQgetisnull(r, i, 6) &&
            parse_cidr(PQgetvalue(r, i, 6), &u->cidr, &u->cidr_len) == 0)
            u->has_cidr = 1;
    }
    qsort(s->users, s->nusers, sizeof(*s->users), cmp_user);
    if (s->nusers > UINT32_MAX - 1 || build_user_hash(s) != 0) {
        st = tp__fail(err, TP_ENOMEM, "out of memory indexing users");
        goto out;
    }

    PQclear(r);
    r = NULL;
    st = load_query(c, "SELECT realm, username FROM "
                    "turnpolicy.revoked_credentials", &r, err);
    if (st != TP_OK)
        return st;
    n = PQntuples(r);
    s->revoked = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->revoked));
    if (s->revoked == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory loading revocations");
        goto out;
    }
    for (i = 0; i < n; i++) {
        revoked_entry *v = &s->revoked[s->nrevoked];

        ri = realm_of(s, r, i, err);
        if (ri < 0) {
            st = TP_EDB;
            goto out;
        }
        v->realm = (size_t)ri;
        v->username = strdup(PQgetvalue(r, i, 1));
        if (v->username == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory loading "
                          "revocations");
            goto out;
        }
        s->nrevoked++;
    }
    qsort(s->revoked, s->nrevoked, sizeof(*s->revoked), cmp_revoked);
out:
    PQclear(r);
    return st;
}

static tp_status
load_rules(PGconn *c, snapshot *s, tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    long ri;
    int i, n;

    st = load_query(c, "SELECT realm, pattern || coalesce(path_prefix, '') "
                    "FROM turnpolicy.host_rules", &r, err);
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
    st = load_query(c, "SELECT realm, net::text, action FROM "
                    "turnpolicy.peer_rules", &r, err);
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

    st = load_query(c, "SELECT realm, kid, alg, encode(key_data, 'hex') "
                    "FROM turnpolicy.jwt_keys", &r, err);
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

/* Load a complete snapshot in one consistent read-only transaction. */
static tp_status
snapshot_load(PGconn *c, const tp_jwt_options *jo, snapshot **out,
              tp_error *err)
{
    snapshot *s;
    PGresult *r = NULL;
    tp_status st;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    s->loaded_at = tp_now();
    st = load_query(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &r,
                    err);
    if (st != TP_OK)
        goto fail;
    PQclear(r);
    st = load_realms(c, jo, s, err);
    if (st == TP_OK)
        st = load_secrets(c, s, err);
    if (st == TP_OK)
        st = load_users(c, s, err);
    if (st == TP_OK)
        st = load_rules(c, s, err);
    if (st == TP_OK)
        st = load_extras(c, s, err);
    if (st == TP_OK)
        st = load_jwt_keys(c, s, err);
    if (st != TP_OK) {
        PQclear(PQexec(c, "ROLLBACK"));
        goto fail;
    }
    st = load_query(c, "COMMIT", &r, err);
    if (st != TP_OK)
        goto fail;
    PQclear(r);
    *out = s;
    return TP_OK;
fail:
    snapshot_free(s);
    return st;
}

/* ------------------------------------------------------------------ */
/* Redis fan-out (store thread)                                        */
/* ------------------------------------------------------------------ */

static void
publish_event(tp_store *st, json_t *ev)
{
    const char *argv[3];
    size_t lens[3];
    redisReply *rep;
    tp_error err;
    char *payload;

    if (ev == NULL)
        return;
    payload = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (payload == NULL)
        return;
    argv[0] = "PUBLISH";
    argv[1] = CHANNEL;
    argv[2] = payload;
    lens[0] = 7;
    lens[1] = strlen(CHANNEL);
    lens[2] = strlen(payload);
    rep = tp__redis_cmd(st->redis, 3, argv, lens, &err);
    freeReplyObject(rep);
    free(payload);
}

/*
 * Revocations are also kept as keys (with the realm's max_ttl as TTL, after
 * which nothing they revoke can still be valid), so a node that was away
 * from Redis catches up when it subscribes again (sub_seed):
 *   turnpolicy:{<realm>}:ru:<user_id>   = revoked_before (Unix seconds)
 *   turnpolicy:{<realm>}:rc:<username>  = 1
 */
static void
remember_revocation(tp_store *st, const char *realm, const char *kind,
                    const char *name, int64_t value, uint32_t ttl)
{
    char key[TP_REALM_MAX + TP_USERNAME_MAX + 32], val[24], ex[24];
    const char *argv[5];
    size_t lens[5];
    redisReply *rep;
    tp_error err;
    int i;

    snprintf(key, sizeof(key), "turnpolicy:{%s}:%s:%s", realm, kind, name);
    snprintf(val, sizeof(val), "%" PRId64, value);
    snprintf(ex, sizeof(ex), "%" PRIu32, ttl + 60);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = val;
    argv[3] = "EX";
    argv[4] = ex;
    for (i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    rep = tp__redis_cmd(st->redis, 5, argv, lens, &err);
    freeReplyObject(rep);
}

static const user_entry *
find_user_by_name(const snapshot *s, const char *realm, const char *user_id)
{
    long ri = find_realm(s, realm);

    return ri < 0 ? NULL : find_user(s, (size_t)ri, user_id);
}

/* Publish what changed from old to new that other nodes must apply at
 * once: revocations, disables/enables, kill switches. */
static void
publish_diff(tp_store *st, const snapshot *old, const snapshot *new)
{
    size_t i;

    if (st->redis == NULL || old == NULL)
        return;
    for (i = 0; i < new->nrealms; i++) {
        const realm_entry *r = &new->realms[i];
        long oi = find_realm(old, r->name);
        int was = oi >= 0 && old->realms[oi].killed;

        if (r->killed != was)
            publish_event(st, json_pack("{s:s,s:s}", "t",
                                        r->killed ? "kill" : "unkill",
                                        "realm", r->name));
    }
    for (i = 0; i < new->nusers; i++) {
        const user_entry *u = &new->users[i];
        const realm_entry *r = &new->realms[u->realm];
        const user_entry *ou = find_user_by_name(old, r->name, u->user_id);

        if (u->revoked_before != 0 &&
            (ou == NULL || u->revoked_before > ou->revoked_before))
            remember_revocation(st, r->name, "ru", u->user_id,
                                u->revoked_before, r->max_ttl);
        if (u->revoked_before != 0 &&
            (ou == NULL || u->revoked_before > ou->revoked_before))
            publish_event(st, json_pack("{s:s,s:s,s:s,s:I,s:I}", "t",
                                        "revoke_user", "realm", r->name,
                                        "user", u->user_id, "before",
                                        (json_int_t)u->revoked_before,
                                        "ttl", (json_int_t)r->max_ttl));
        if (ou != NULL && ou->active != u->active)
            publish_event(st, json_pack("{s:s,s:s,s:s}", "t",
                                        u->active ? "enable" : "disable",
                                        "realm", r->name, "user",
                                        u->user_id));
    }
    for (i = 0; i < new->nrevoked; i++) {
        const revoked_entry *v = &new->revoked[i];
        const char *realm = new->realms[v->realm].name;
        long oi = find_realm(old, realm);

        if (oi >= 0 && is_revoked(old, (size_t)oi, v->username))
            continue;
        remember_revocation(st, realm, "rc", v->username, 1,
                            new->realms[v->realm].max_ttl);
        publish_event(st, json_pack("{s:s,s:s,s:s,s:I}", "t", "revoke_cred",
                                    "realm", realm, "username", v->username,
                                    "ttl",
                                    (json_int_t)new->realms[v->realm]
                                        .max_ttl));
    }
}

/* Apply one fan-out message; returns 1 if the snapshot should reload. */
static int
handle_message(tp_store *st, const char *payload, size_t len)
{
    const char *t = NULL, *realm = NULL, *user = NULL, *username = NULL;
    json_int_t before = 0, ttl = 0;
    json_error_t jerr;
    ov_entry e;
    json_t *j;
    int ok;

    j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return 0;
    ok = json_unpack(j, "{s:s,s:s,s?s,s?s,s?I,s?I}", "t", &t, "realm",
                     &realm, "user", &user, "username", &username, "before",
                     &before, "ttl", &ttl) == 0 &&
         tp_realm_check(realm, NULL) == TP_OK;
    if (!ok) {
        json_decref(j);
        return 0;
    }
    memset(&e, 0, sizeof(e));
    memcpy(e.realm, realm, strlen(realm) + 1);
    if (ttl <= 0 || ttl > TP_TTL_MAX)
        ttl = TP_TTL_MAX;
    e.until = mono_now() + (double)ttl + 60;
    if (strcmp(t, "revoke_user") == 0 && user != NULL &&
        tp_user_id_check(user, NULL) == TP_OK && before > 0) {
        e.kind = OV_REVOKE_USER;
        memcpy(e.key, user, strlen(user) + 1);
        e.before = before;
        overlay_update(st, &e, -1, NULL, NULL);
    } else if (strcmp(t, "revoke_cred") == 0 && username != NULL &&
               strlen(username) <= TP_USERNAME_MAX) {
        e.kind = OV_REVOKE_CRED;
        memcpy(e.key, username, strlen(username) + 1);
        overlay_update(st, &e, -1, NULL, NULL);
    } else if ((strcmp(t, "disable") == 0 || strcmp(t, "enable") == 0) &&
               user != NULL && tp_user_id_check(user, NULL) == TP_OK) {
        e.kind = OV_DISABLE;
        memcpy(e.key, user, strlen(user) + 1);
        e.until = mono_now() + OVERLAY_SHORT;
        if (t[0] == 'd')
            overlay_update(st, &e, -1, NULL, NULL);
        else
            overlay_update(st, NULL, OV_DISABLE, realm, user);
    } else if (strcmp(t, "kill") == 0) {
        e.kind = OV_KILL;
        e.until = mono_now() + OVERLAY_SHORT;
        overlay_update(st, &e, -1, NULL, NULL);
    } else if (strcmp(t, "unkill") == 0) {
        overlay_update(st, NULL, OV_KILL, realm, "");
    }
    json_decref(j);
    return 1;
}

static void
sub_set(tp_store *st, int up)
{
    pthread_mutex_lock(&st->mu);
    st->sub_up = up;
    pthread_mutex_unlock(&st->mu);
}

static void
sub_drop(tp_store *st, const char *why)
{
    if (!st->sub_failing)
        slog(st, TP_LOG_ERROR, "policy store: Redis subscription lost (%s); "
             "revocations still come from PostgreSQL, retrying", why);
    st->sub_failing = 1;
    if (st->sub != NULL)
        redisFree(st->sub);
    st->sub = NULL;
    sub_set(st, 0);
    clock_gettime(CLOCK_MONOTONIC, &st->sub_retry);
    st->sub_retry.tv_sec += st->sub_backoff / 1000;
    st->sub_retry.tv_nsec += (long)(st->sub_backoff % 1000) * 1000000L;
    if (st->sub_retry.tv_nsec >= 1000000000L) {
        st->sub_retry.tv_sec++;
        st->sub_retry.tv_nsec -= 1000000000L;
    }
    st->sub_backoff = st->sub_backoff * 2 > 5000 ? 5000 : st->sub_backoff * 2;
}

/* Apply the revocations kept as keys (remember_revocation): what this
 * node may have missed while it was not subscribed.  Bounded: at most
 * OVERLAY_MAX keys are read. */
static void
sub_seed(tp_store *st)
{
    char cursor[32] = "0";
    size_t seen = 0;
    tp_error err;

    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", "turnpolicy:{*}:r?:*",
                               "COUNT", "500"};
        size_t lens[6];
        redisReply *rep;
        size_t i;

        for (i = 0; i < 6; i++)
            lens[i] = strlen(argv[i]);
        rep = tp__redis_cmd(st->redis, 6, argv, lens, &err);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
            rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY ||
            tp__strlcpy(cursor, rep->element[0]->str, sizeof(cursor)) != 0) {
            freeReplyObject(rep);
            return;
        }
        for (i = 0; i < rep->element[1]->elements && seen < OVERLAY_MAX;
             i++, seen++) {
            const redisReply *k = rep->element[1]->element[i];
            const char *gargv[2] = {"GET", NULL};
            size_t glens[2];
            redisReply *v;
            const char *lb, *rb;
            char realm[TP_REALM_MAX + 1];
            ov_entry e;

            if (k->type != REDIS_REPLY_STRING)
                continue;
            lb = strchr(k->str, '{');
            rb = lb != NULL ? strchr(lb, '}') : NULL;
            if (rb == NULL || (size_t)(rb - lb - 1) > TP_REALM_MAX ||
                strncmp(rb, "}:r", 3) != 0 || rb[4] != ':')
                continue;
            memcpy(realm, lb + 1, (size_t)(rb - lb - 1));
            realm[rb - lb - 1] = '\0';
            memset(&e, 0, sizeof(e));
            if (tp_realm_check(realm, NULL) != TP_OK ||
                tp__strlcpy(e.key, rb + 5, sizeof(e.key)) != 0)
                continue;
            memcpy(e.realm, realm, strlen(realm) + 1);
            gargv[1] = k->str;
            glens[0] = 3;
            glens[1] = k->len;
            v = tp__redis_cmd(st->redis, 2, gargv, glens, &err);
            if (v == NULL || v->type != REDIS_REPLY_STRING) {
                freeReplyObject(v);
                continue;
            }
            e.until = mono_now() + TP_TTL_MAX;
            if (rb[3] == 'u' && tp_user_id_check(e.key, NULL) == TP_OK) {
                e.kind = OV_REVOKE_USER;
                e.before = strtoll(v->str, NULL, 10);
                if (e.before > 0 &&
                    !overlay_has(atomic_load(&st->ov), OV_REVOKE_USER,
                                 e.realm, e.key, NULL))
                    overlay_update(st, &e, -1, NULL, NULL);
            } else if (rb[3] == 'c') {
                e.kind = OV_REVOKE_CRED;
                if (!overlay_has(atomic_load(&st->ov), OV_REVOKE_CRED,
                                 e.realm, e.key, NULL))
                    overlay_update(st, &e, -1, NULL, NULL);
            }
            freeReplyObject(v);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0 && seen < OVERLAY_MAX);
}

/* (Re)subscribe when due.  Returns 1 if a reload is wanted (we may have
 * missed messages while away). */
static int
sub_ensure(tp_store *st)
{
    const char *argv[2] = {"SUBSCRIBE", CHANNEL};
    size_t lens[2] = {9, strlen(CHANNEL)};
    redisReply *rep;
    tp_error err;

    if (st->redis == NULL || st->sub != NULL || mono_since(&st->sub_retry) < 0)
        return 0;
    st->sub = tp__redis_connect(st->redis, &err);
    if (st->sub == NULL) {
        sub_drop(st, err.message);
        return 0;
    }
    rep = redisCommandArgv(st->sub, 2, argv, lens);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        sub_drop(st, "SUBSCRIBE failed");
        return 0;
    }
    freeReplyObject(rep);
    sub_seed(st);
    if (st->sub_failing)
        slog(st, TP_LOG_INFO, "policy store: Redis subscription restored");
    st->sub_failing = 0;
    st->sub_backoff = 100;
    sub_set(st, 1);
    return 1;
}

/* Read what the subscription has; returns 1 if a reload is wanted. */
static int
sub_read(tp_store *st)
{
    void *reply = NULL;
    int want = 0;

    if (redisBufferRead(st->sub) != REDIS_OK) {
        sub_drop(st, st->sub->errstr);
        return 1;
    }
    for (;;) {
        redisReply *r;

        if (redisGetReplyFromReader(st->sub, &reply) != REDIS_OK) {
            sub_drop(st, "protocol error");
            return 1;
        }
        if (reply == NULL)
            break;
        r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING)
            want |= handle_message(st, r->element[2]->str,
                                   r->element[2]->len);
        freeReplyObject(reply);
    }
    return want;
}

/* ------------------------------------------------------------------ */
/* Usage records (queue written by the store thread)                  */
/* ------------------------------------------------------------------ */

static long long
mono_ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -1 when nothing is queued, 0 when the queue is due to be written (a
 * batch is full, its first record waited USAGE_DELAY_MS, or a flush
 * waits), else the ms until it is.  Records are written in batches so
 * that PostgreSQL sees one statement per batch, not a round trip per
 * finished session. */
static int
usage_wait_ms(tp_store *st)
{
    long long age, now = mono_ms_now();
    int ms;

    pthread_mutex_lock(&st->uq_mu);
    if (st->uq_head == NULL) {
        ms = -1;
    } else if (st->uq_flush || st->uq_len >= USAGE_BATCH) {
        ms = 0;
    } else {
        age = now - st->uq_since_ms;
        ms = age >= USAGE_DELAY_MS ? 0 : (int)(USAGE_DELAY_MS - age);
    }
    pthread_mutex_unlock(&st->uq_mu);
    /* After a refusal, not again before usage_retry_ms. */
    if (ms == 0 && st->usage_retry_ms > now)
        ms = (int)(st->usage_retry_ms - now);
    return ms;
}

/* Take up to USAGE_BATCH records off the queue (the thread only). */
static usage_rec *
usage_take(tp_store *st, size_t *n)
{
    usage_rec *head, *r;

    *n = 0;
    pthread_mutex_lock(&st->uq_mu);
    head = st->uq_head;
    r = head;
    while (r != NULL && *n < USAGE_BATCH) {
        (*n)++;
        if (*n == USAGE_BATCH || r->next == NULL)
            break;
        r = r->next;
    }
    if (r != NULL) {
        st->uq_head = r->next;
        if (st->uq_head == NULL)
            st->uq_tail = NULL;
        r->next = NULL;
    }
    pthread_mutex_unlock(&st->uq_mu);
    return head != NULL && *n > 0 ? head : NULL;
}

/* Put unwritten records back at the front, in order. */
static void
usage_requeue(tp_store *st, usage_rec *list)
{
    usage_rec *last = list;

    if (list == NULL)
        return;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&st->uq_mu);
    last->next = st->uq_head;
    st->uq_head = list;
    if (st->uq_tail == NULL)
        st->uq_tail = last;
    pthread_mutex_unlock(&st->uq_mu);
}

/* INSERT one usage row.  0 done (*inserted 1, or 0 for a resend), 1 the
 * row itself is refused (a data error: it can never be written), 2 the
 * database refuses for another reason (permissions, a missing table: keep
 * the row and try later), -1 the connection broke. */
static int
usage_insert(tp_store *st, const usage_rec *r, int *inserted)
{
    char started[24], ended[24], bin[24], bout[24];
    const char *v[9];
    PGresult *res;

    *inserted = 0;
    snprintf(started, sizeof(started), "%" PRId64, r->started);
    snprintf(ended, sizeof(ended), "%" PRId64, r->ended);
    snprintf(bin, sizeof(bin), "%" PRIu64, r->bytes_in);
    snprintf(bout, sizeof(bout), "%" PRIu64, r->bytes_out);
    v[0] = r->node;
    v[1] = r->session;
    v[2] = r->realm;
    v[3] = r->user;
    v[4] = started;
    v[5] = ended;
    v[6] = bin;
    v[7] = bout;
    v[8] = r->client[0] != '\0' ? r->client : NULL;
    res = PQexecParams(st->conn,
                       "INSERT INTO turnpolicy.usage (node, session_id, "
                       "realm, user_id, started_at, ended_at, bytes_in, "
                       "bytes_out, client_addr) VALUES ($1, $2, $3, $4, "
                       "to_timestamp($5), to_timestamp($6), $7, $8, "
                       "$9::inet) ON CONFLICT (node, session_id) DO NOTHING",
                       9, NULL, v, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = res != NULL ? PQresultErrorField(
                                              res, PG_DIAG_SQLSTATE)
                                        : NULL;
        int data_error = state != NULL && (strncmp(state, "22", 2) == 0 ||
                                           strncmp(state, "23", 2) == 0);

        PQclear(res);
        if (PQstatus(st->conn) != CONNECTION_OK)
            return -1;
        return data_error ? 1 : 2;
    }
    /* "0" when the record was already there (a resend). */
    *inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return 0;
}

/* A growable string for array literals. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void
sb_add(strbuf *b, const char *s, size_t n)
{
    size_t cap;
    char *np;

    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        cap = b->cap != 0 ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* One element of an array literal: quoted (with \ and " escaped), or
 * NULL. */
static void
sb_elem(strbuf *b, const char *v, int first)
{
    const char *p;

    sb_add(b, first ? "{" : ",", 1);
    if (v == NULL) {
        sb_add(b, "NULL", 4);
        return;
    }
    sb_add(b, "\"", 1);
    for (p = v; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(b, "\\", 1);
        sb_add(b, p, 1);
    }
    sb_add(b, "\"", 1);
}

/* INSERT a whole batch in one statement (arrays unnested).  0 done
 * (*written rows, resends not counted), 1 refused (the caller finds the
 * row by row), -1 the connection broke. */
static int
usage_insert_batch(tp_store *st, const usage_rec *batch, size_t *written)
{
    strbuf col[9];
    const char *v[9];
    char num[24];
    const usage_rec *r;
    PGresult *res;
    int i, rc = 1;

    *written = 0;
    memset(col, 0, sizeof(col));
    for (r = batch; r != NULL; r = r->next) {
        int first = r == batch;

        sb_elem(&col[0], r->node, first);
        sb_elem(&col[1], r->session, first);
        sb_elem(&col[2], r->realm, first);
        sb_elem(&col[3], r->user, first);
        snprintf(num, sizeof(num), "%" PRId64, r->started);
        sb_elem(&col[4], num, first);
        snprintf(num, sizeof(num), "%" PRId64, r->ended);
        sb_elem(&col[5], num, first);
        snprintf(num, sizeof(num), "%" PRIu64, r->bytes_in);
        sb_elem(&col[6], num, first);
        snprintf(num, sizeof(num), "%" PRIu64, r->bytes_out);
        sb_elem(&col[7], num, first);
        sb_elem(&col[8], r->client[0] != '\0' ? r->client : NULL, first);
    }
    for (i = 0; i < 9; i++) {
        sb_add(&col[i], "}", 1);
        if (col[i].oom)
            goto out;
        v[i] = col[i].p;
    }
    res = PQexecParams(st->conn,
                       "INSERT INTO turnpolicy.usage (node, session_id, "
                       "realm, user_id, started_at, ended_at, bytes_in, "
                       "bytes_out, client_addr) SELECT n, s, r, u, "
                       "to_timestamp(a), to_timestamp(b), i, o, c FROM "
                       "unnest($1::text[], $2::text[], $3::text[], "
                       "$4::text[], $5::bigint[], $6::bigint[], "
                       "$7::bigint[], $8::bigint[], $9::inet[]) AS "
                       "t(n, s, r, u, a, b, i, o, c) "
                       "ON CONFLICT (node, session_id) DO NOTHING",
                       9, NULL, v, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        *written = strtoull(PQcmdTuples(res), NULL, 10);
        rc = 0;
    } else if (PQstatus(st->conn) != CONNECTION_OK) {
        rc = -1;
    }
    PQclear(res);
out:
    for (i = 0; i < 9; i++)
        free(col[i].p);
    return rc;
}

/* Free the rows of a written batch and take them off the queue count. */
static void
usage_done(tp_store *st, usage_rec *batch, size_t n, size_t written)
{
    usage_rec *next;

    for (; batch != NULL; batch = next) {
        next = batch->next;
        free(batch);
    }
    pthread_mutex_lock(&st->uq_mu);
    st->uq_len -= n;
    st->uq_done += n;
    if (st->uq_len == 0)
        st->uq_flush = 0;
    st->uq_written += written;
    pthread_cond_broadcast(&st->uq_cv);
    pthread_mutex_unlock(&st->uq_mu);
}

/*
 * Write queued usage rows: each batch of up to USAGE_BATCH in one
 * INSERT of unnested arrays (one round trip and one commit per batch:
 * with synchronous_commit on, that is one WAL flush).  If the batch is
 * refused, it is written row by row so that only the refused row is
 * dropped.  Returns -1 if the
 * connection broke (the unwritten rows are back in the queue; rows of a
 * batch whose COMMIT was lost may be sent again, which ON CONFLICT makes
 * harmless).
 */
static int
usage_write(tp_store *st)
{
    usage_rec *batch, *r;
    size_t n, written, dropped = 0;
    int rc, ins;

    while ((batch = usage_take(st, &n)) != NULL) {
        rc = usage_insert_batch(st, batch, &written);
        if (rc == 0) {
            usage_done(st, batch, n, written);
            if (st->usage_failing)
                slog(st, TP_LOG_INFO, "policy store: usage rows are "
                     "written again");
            st->usage_failing = 0;
            continue;
        }
        if (rc < 0 || PQstatus(st->conn) != CONNECTION_OK) {
            usage_requeue(st, batch);
            return -1;
        }
        /* Slow path: autocommit row by row to isolate the refused one. */
        while (batch != NULL) {
            r = batch;
            rc = usage_insert(st, r, &ins);
            if (rc < 0) {
                usage_requeue(st, batch);
                return -1;
            }
            if (rc == 2) {
                /* Not the row's fault: keep everything, try again on a
                 * later turn, say so once. */
                usage_requeue(st, batch);
                if (!st->usage_failing)
                    slog(st, TP_LOG_ERROR, "policy store: PostgreSQL "
                         "refuses usage rows (permissions or schema?); "
                         "keeping them queued and retrying");
                st->usage_failing = 1;
                st->usage_retry_ms = mono_ms_now() + 500;
                return 0;
            }
            if (rc > 0)
                dropped++;
            batch = r->next;
            r->next = NULL;
            usage_done(st, r, 1, (size_t)ins);
        }
        if (dropped > 0)
            slog(st, TP_LOG_ERROR, "policy store: %zu usage record%s "
                 "refused by PostgreSQL and dropped", dropped,
                 dropped == 1 ? "" : "s");
        dropped = 0;
    }
    return 0;
}

static void
usage_free_all(tp_store *st)
{
    usage_rec *r = st->uq_head, *next;

    if (st->uq_len > 0)
        slog(st, TP_LOG_ERROR, "policy store: %zu usage record%s could not "
             "be written to PostgreSQL before shutdown", st->uq_len,
             st->uq_len == 1 ? "" : "s");
    for (; r != NULL; r = next) {
        next = r->next;
        free(r);
    }
    st->uq_head = st->uq_tail = NULL;
    st->uq_len = 0;
}

/* ------------------------------------------------------------------ */
/* Background thread                                                   */
/* ------------------------------------------------------------------ */

/* Server notices on the store's connection go to the host's log. */
static void
store_notice(void *arg, const char *msg)
{
    const tp_store *st = arg;
    char line[300];

    if (st->log == NULL)
        return;
    tp__printable(line, sizeof(line), msg, 280);
    st->log(st->log_ud, TP_LOG_DEBUG, line);
}

static PGconn *
store_connect(tp_store *st, tp_error *err)
{
    static const char *const keys[] = {"connect_timeout",
                                       "application_name", "dbname", NULL};
    const char *vals[4];
    char msg[200];
    PGconn *c;

    /* Later keywords win, so the user's own connection string can still
     * override the defaults given first. */
    vals[0] = "5";
    vals[1] = "turnpolicy";
    vals[2] = st->database;
    vals[3] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        pg_message(c, NULL, msg, sizeof(msg));
        tp__fail(err, TP_EDB, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, store_notice, st);
    if (!st->no_listen) {
        PGresult *r = PQexec(c, "LISTEN turnpolicy");

        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_message(c, r, msg, sizeof(msg));
            tp__fail(err, TP_EDB, "LISTEN turnpolicy failed: %s", msg);
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
    }
    return c;
}

static void
mark_current(tp_store *st, int connected)
{
    pthread_mutex_lock(&st->mu);
    if (connected) {
        clock_gettime(CLOCK_MONOTONIC, &st->current_at);
        atomic_store(&st->current_ms,
                     (long long)st->current_at.tv_sec * 1000 +
                         st->current_at.tv_nsec / 1000000);
    }
    st->connected = connected;
    pthread_mutex_unlock(&st->mu);
}

/* Publish s as the current snapshot; the store keeps one pin.  A node
 * that LISTENs tells the others (Redis) what changed. */
static void
publish(tp_store *st, snapshot *s)
{
    snapshot *old;

    old = atomic_load(&st->cur);
    atomic_store(&st->cur, s);
    atomic_fetch_add(&st->changes, 1);
    pthread_mutex_lock(&st->mu);
    st->generation++;
    pthread_mutex_unlock(&st->mu);
    mark_current(st, 1);
    if (!st->no_listen)
        publish_diff(st, old, s);
    synchronize_readers(st);
    snapshot_free(old);
}


static void
lost(tp_store *st, const char *why)
{
    if (!st->failing)
        slog(st, TP_LOG_ERROR, "policy store: %s; deciding from the last "
             "snapshot for up to %" PRIu32 " s, reconnecting", why,
             st->max_staleness);
    st->failing = 1;
    PQfinish(st->conn);
    st->conn = NULL;
    mark_current(st, 0);
}

/* Wait for the socket (or the wake pipe) up to ms; returns 1 if the
 * thread should stop. */
static int
wait_events(tp_store *st, int ms, int *sub_ready)
{
    struct pollfd p[3];
    char buf[64];
    int n = 1, stop, subi = -1;

    *sub_ready = 0;
    p[0].fd = st->wake[0];
    p[0].events = POLLIN;
    if (st->conn != NULL) {
        p[n].fd = PQsocket(st->conn);
        p[n].events = POLLIN;
        n++;
    }
    if (st->sub != NULL) {
        subi = n;
        p[n].fd = st->sub->fd;
        p[n].events = POLLIN;
        n++;
    }
    if (poll(p, (nfds_t)n, ms) > 0) {
        if (p[0].revents & POLLIN) {
            while (read(st->wake[0], buf, sizeof(buf)) > 0)
                ;
        }
        if (subi > 0 && (p[subi].revents & (POLLIN | POLLHUP | POLLERR)))
            *sub_ready = 1;
    }
    pthread_mutex_lock(&st->mu);
    stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    return stop;
}

/* The JWT claim checks the store was given (NULL: the defaults). */
static const tp_jwt_options *
store_jwt(const tp_store *st)
{
    return st->jwt_set ? &st->jwt : NULL;
}

static void *
store_thread(void *arg)
{
    tp_store *st = arg;
    struct timespec last_load, last_beat;
    int backoff = BACKOFF_MIN_MS, dirty = 0, sub_ready = 0;
    int first = atomic_load(&st->cur) == NULL; /* background_start */
    uint64_t done;
    snapshot *s;
    tp_error err;

    clock_gettime(CLOCK_MONOTONIC, &last_load);
    last_beat = last_load;
    for (;;) {
        if (sub_ensure(st))
            dirty = 1;
        if (st->conn == NULL) {
            /* (a background start tries at once, then backs off) */
            if (wait_events(st, first ? 0 : backoff, &sub_ready))
                break;
            first = 0;
            if (sub_ready)
                sub_read(st);
            st->conn = store_connect(st, &err);
            if (st->conn == NULL) {
                if (!st->failing)
                    slog(st, TP_LOG_ERROR, "policy store: %s", err.message);
                st->failing = 1;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            dirty = 1; /* changes may have been missed while away */
        } else {
            int ms = st->sub != NULL || st->redis == NULL ? HEARTBEAT_MS
                                                          : 100;
            int due = usage_wait_ms(st);

            if (due >= 0 && due < ms)
                ms = due;
            if (wait_events(st, ms, &sub_ready))
                break;
        }
        if (sub_ready && sub_read(st))
            dirty = 1;
        if (!PQconsumeInput(st->conn) || PQstatus(st->conn) != CONNECTION_OK) {
            lost(st, "connection to PostgreSQL lost");
            continue;
        }
        for (;;) {
            PGnotify *nf = PQnotifies(st->conn);

            if (nf == NULL)
                break;
            dirty = 1;
            PQfreemem(nf);
        }
        if (usage_wait_ms(st) == 0 && usage_write(st) != 0) {
            lost(st, "connection to PostgreSQL lost while writing usage");
            continue;
        }
        pthread_mutex_lock(&st->mu);
        if (st->reload_requested) {
            dirty = 1;
            st->reload_requested = 0;
        }
        pthread_mutex_unlock(&st->mu);
        if (mono_since(&last_load) >= st->reload_interval)
            dirty = 1;
        if (dirty) {
            /* Usage rows committed before this load are in its sums. */
            pthread_mutex_lock(&st->uq_mu);
            done = st->uq_done;
            pthread_mutex_unlock(&st->uq_mu);
            if (snapshot_load(st->conn, store_jwt(st), &s, &err) != TP_OK) {
                if (PQstatus(st->conn) != CONNECTION_OK) {
                    lost(st, err.message);
                } else if (!st->failing) {
                    slog(st, TP_LOG_ERROR, "policy store: %s; keeping the "
                         "previous snapshot", err.message);
                    st->failing = 1;
                }
                continue;
            }
            if (atomic_load(&st->cur) == NULL)
                slog(st, TP_LOG_INFO, "policy store loaded: %zu realms, "
                     "%zu users", s->nrealms, s->nusers);
            publish(st, s);
            /* After the swap: a reader in between counts a record twice
             * (refuses early) rather than not at all. */
            atomic_store(&st->usage_included, done);
            mark_current(st, 1);
            dirty = 0;
            clock_gettime(CLOCK_MONOTONIC, &last_load);
            last_beat = last_load;
            if (st->failing)
                slog(st, TP_LOG_INFO, "policy store: recovered; snapshot "
                     "reloaded");
            st->failing = 0;
            continue;
        }
        if (mono_since(&last_beat) * 1000 >= HEARTBEAT_MS) {
            PGresult *r = PQexec(st->conn, "SELECT 1");

            clock_gettime(CLOCK_MONOTONIC, &last_beat);
            if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
                PQclear(r);
                lost(st, "PostgreSQL stopped answering");
                continue;
            }
            PQclear(r);
            /* Notifications that arrived with the reply are handled on
             * the next turn; only a quiet round trip proves freshness. */
            if (PQisBusy(st->conn) == 0 && !dirty) {
                PGnotify *nf = PQnotifies(st->conn);

                if (nf != NULL) {
                    PQfreemem(nf);
                    dirty = 1;
                } else {
                    mark_current(st, 1);
                }
            }
        }
    }
    PQfinish(st->conn);
    st->conn = NULL;
    if (st->sub != NULL)
        redisFree(st->sub);
    st->sub = NULL;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

/* *dst = a copy of src (NULL stays NULL); -1 when out of memory. */
static int
dup_opt(const char *src, const char **dst)
{
    char *p;

    *dst = NULL;
    if (src == NULL)
        return 0;
    p = strdup(src);
    if (p == NULL)
        return -1;
    *dst = p;
    return 0;
}

tp_store *
tp_store_new(const tp_store_options *opts, tp_error *err)
{
    tp_store *st;
    snapshot *s = NULL;
    int i;

    if (opts == NULL || opts->database == NULL) {
        tp__fail(err, TP_EINVAL, "a database connection string is required");
        return NULL;
    }
    if (tp__conninfo_check(opts->database, err) != TP_OK)
        return NULL;
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    st->wake[0] = st->wake[1] = -1;
    st->database = strdup(opts->database);
    st->max_staleness = opts->max_staleness ? opts->max_staleness : 30;
    st->reload_interval = opts->reload_interval ? opts->reload_interval : 60;
    st->no_listen = opts->no_listen;
    st->log = opts->log;
    st->log_ud = opts->log_ud;
    st->fail_mode = opts->redis_fail_mode;
    st->issue_per_minute = opts->issue_per_minute;
    st->uq_max = opts->usage_queue_max ? opts->usage_queue_max
                                       : USAGE_QUEUE_MAX;
    st->sub_backoff = 100;
    if (st->database == NULL || pthread_mutex_init(&st->mu, NULL) != 0) {
        free_conninfo(st->database);
        free(st);
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&st->uq_mu, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        free_conninfo(st->database);
        free(st);
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    if (pthread_cond_init(&st->uq_cv, NULL) != 0) {
        pthread_mutex_destroy(&st->uq_mu);
        pthread_mutex_destroy(&st->mu);
        free_conninfo(st->database);
        free(st);
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    if (opts->jwt != NULL) {
        /* A failed copy must not silently drop an issuer or audience
         * check: refuse to start instead. */
        st->jwt = *opts->jwt;
        st->jwt.issuer = NULL;
        st->jwt.audience = NULL;
        st->jwt.realm_claim = NULL;
        st->jwt_set = 1;
        if (dup_opt(opts->jwt->issuer, &st->jwt.issuer) != 0 ||
            dup_opt(opts->jwt->audience, &st->jwt.audience) != 0 ||
            dup_opt(opts->jwt->realm_claim, &st->jwt.realm_claim) != 0) {
            tp__fail(err, TP_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (opts->redis_host != NULL) {
        st->redis = tp__redis_new(opts->redis_host,
                                  opts->redis_port > 0 ? opts->redis_port
                                                       : 6379,
                                  opts->redis_password, 200, opts->log,
                                  opts->log_ud);
        if (st->redis == NULL) {
            tp__fail(err, TP_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (pipe(st->wake) != 0) {
        tp__fail(err, TP_EIO, "pipe: %s", strerror(errno));
        goto fail;
    }
    for (i = 0; i < 2; i++) {
        int fl = fcntl(st->wake[i], F_GETFL);

        if (fl < 0 || fcntl(st->wake[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(st->wake[i], F_SETFD, FD_CLOEXEC) != 0) {
            tp__fail(err, TP_EIO, "fcntl: %s", strerror(errno));
            goto fail;
        }
    }
    if (!opts->background_start) {
        st->conn = store_connect(st, err);
        if (st->conn == NULL)
            goto fail;
        if (snapshot_load(st->conn, store_jwt(st), &s, err) != TP_OK)
            goto fail;
        publish(st, s);
        mark_current(st, 1);
    }
    if (pthread_create(&st->thread, NULL, store_thread, st) != 0) {
        tp__fail(err, TP_ENOMEM, "cannot start the store thread");
        goto fail;
    }
    st->thread_started = 1;
    tp__ok(err);
    return st;
fail:
    tp_store_free(st);
    return NULL;
}

static void
wake(tp_store *st)
{
    ssize_t r = write(st->wake[1], "x", 1);

    (void)r; /* a full pipe already wakes the thread */
}

void
tp_store_free(tp_store *st)
{
    if (st == NULL)
        return;
    if (st->thread_started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_mutex_unlock(&st->mu);
        wake(st);
        pthread_join(st->thread, NULL);
    }
    PQfinish(st->conn);
    if (st->sub != NULL)
        redisFree(st->sub);
    snapshot_free(atomic_load(&st->cur));
    overlay_free(atomic_load(&st->ov));
    tp__redis_free(st->redis);
    if (st->wake[0] >= 0)
        close(st->wake[0]);
    if (st->wake[1] >= 0)
        close(st->wake[1]);
    usage_free_all(st);
    free((char *)(uintptr_t)st->jwt.issuer);
    free((char *)(uintptr_t)st->jwt.audience);
    free((char *)(uintptr_t)st->jwt.realm_claim);
    pthread_cond_destroy(&st->uq_cv);
    pthread_mutex_destroy(&st->uq_mu);
    pthread_mutex_destroy(&st->mu);
    free_conninfo(st->database);
    free(st);
}

void
tp_store_reload(tp_store *st)
{
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    st->reload_requested = 1;
    pthread_mutex_unlock(&st->mu);
    wake(st);
}

uint64_t
tp_store_changes(tp_store *st)
{
    return st != NULL ? atomic_load(&st->changes) : 0;
}

uint64_t
tp_store_usage_included(tp_store *st)
{
    return st != NULL ? atomic_load(&st->usage_included) : 0;
}

void
tp_store_info_get(tp_store *st, tp_store_info *info)
{
    memset(info, 0, sizeof(*info));
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    info->generation = st->generation;
    info->age = mono_since(&st->current_at);
    info->connected = st->connected;
    info->redis_subscribed = st->sub_up;
    pthread_mutex_unlock(&st->mu);
    {
        int p = read_enter(st);
        const snapshot *s = atomic_load(&st->cur);
        const overlay *o = atomic_load(&st->ov);

        if (s != NULL) {
            info->loaded_at = s->loaded_at;
            info->realms = s->nrealms;
            info->users = s->nusers;
        }
        info->overlay = o != NULL ? o->n : 0;
        read_leave(st, p);
    }
    info->changes = atomic_load(&st->changes);
    pthread_mutex_lock(&st->uq_mu);
    info->usage_pending = st->uq_len;
    info->usage_written = st->uq_written;
    pthread_mutex_unlock(&st->uq_mu);
    pthread_mutex_lock(&st->mu);
    pthread_mutex_unlock(&st->mu);
}

/* Enter the read side and take the current snapshot and overlay, or fail
 * closed when the snapshot is too old.  On success the caller must call
 * unpin with *parity. */
static snapshot *
pin(tp_store *st, overlay **ov, int *parity, tp_status *status,
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

static void
unpin(tp_store *st, int parity)
{
    read_leave(st, parity);
}

static tp_status
realm_lookup(const snapshot *s, const overlay *ov, const char *realm,
             long *ri, tp_error *err)
{
    char shown[48];

    *ri = realm != NULL ? find_realm(s, realm) : -1;
    if (*ri < 0) {
        tp__printable(shown, sizeof(shown), realm, 40);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm \"%s\" is not "
                        "provisioned", shown);
    }
    if (s->realms[*ri].killed || overlay_has(ov, OV_KILL, realm, "", NULL))
        return tp__fail(err, TP_EREALMKILLED, "realm %s is switched off",
                        realm);
    return TP_OK;
}

/* The byte budget in force for a user (0 = none): its own, else the
 * realm's, and only when the realm has a budget period. */
static uint64_t
budget_limit(const realm_entry *r, const user_entry *ue)
{
    int64_t b = ue->user_budget >= 0 ? ue->user_budget : r->user_budget;

    return b > 0 && r->budget_period > 0 ? (uint64_t)b : 0;
}

/*
 * The one rule for "may this subject act now" (pinned s, ov): the realm
 * is provisioned and not switched off, the user is provisioned and
 * active, and - when issued > 0 - nothing it holds was issued before a
 * revoke_user (snapshot or overlay).  *ri and *ue are set on TP_OK.
 * Used by credential checks (user_checks), issuance and JWT subjects.
 */
static tp_status
subject_checks(const snapshot *s, const overlay *ov, const char *realm,
               const char *user_id, int64_t issued, long *ri,
               const user_entry **ue, tp_error *err)
{
    tp_status status = realm_lookup(s, ov, realm, ri, err);
    int64_t before = 0;

    if (status != TP_OK)
        return status;
    *ue = user_id != NULL ? find_user(s, (size_t)*ri, user_id) : NULL;
    if (*ue == NULL)
        return tp__fail(err, TP_EUNKNOWNUSER, "user %s is not provisioned "
                        "in realm %s", user_id != NULL ? user_id : "",
                        realm);
    if (!(*ue)->active || overlay_has(ov, OV_DISABLE, realm, user_id, NULL))
        return tp__fail(err, TP_EDISABLED, "user %s of realm %s is "
                        "disabled", user_id, realm);
    if (issued <= 0)
        return TP_OK;
    if (!overlay_has(ov, OV_REVOKE_USER, realm, user_id, &before) ||
        before < (*ue)->revoked_before)
        before = (*ue)->revoked_before;
    if (before != 0 && issued < before)
        return tp__fail(err, TP_EREVOKED, "credentials of user %s issued "
                        "before %" PRId64 " are revoked", user_id, before);
    return TP_OK;
}

/* After the credential itself verified: the subject's rule, this
 * credential's own revocation, and the budget as far as the snapshot
 * knows it. */
static tp_status
user_checks(const snapshot *s, const overlay *ov, const char *realm,
            const char *username, const tp_username *u, tp_error *err)
{
    const user_entry *ue = NULL;
    const realm_entry *r;
    tp_status status;
    int64_t issued;
    uint64_t limit;
    long ri;

    status = realm_lookup(s, ov, realm, &ri, err);
    if (status != TP_OK)
        return status;
    r = &s->realms[ri];
    /* A legacy username has no issue time: assume the earliest it could
     * have been issued within the realm's max_ttl. */
    issued = u->form == TP_FORM_V1 ? u->issued
                                   : u->expires - (int64_t)r->max_ttl;
    /* issued may be <= 0 only for a forged legacy name: check as 1 */
    status = subject_checks(s, ov, realm, u->user_id, issued > 0 ? issued : 1,
                            &ri, &ue, err);
    if (status != TP_OK)
        return status;
    if (is_revoked(s, ri, username) ||
        overlay_has(ov, OV_REVOKE_CRED, r->name, username, NULL))
        return tp__fail(err, TP_EREVOKED, "this credential of user %s has "
                        "been revoked", u->user_id);
    limit = budget_limit(r, ue);
    if (limit > 0 && ue->used >= limit)
        return tp__fail(err, TP_EBUDGET, "user %s of realm %s used %" PRIu64
                        " of its %" PRIu64 " bytes in the last %" PRId64
                        " s", u->user_id, r->name, ue->used, limit,
                        r->budget_period);
    return TP_OK;
}

tp_status
tp_store_verify(tp_store *st, const char *realm, const char *username,
                const char *password, int64_t now, tp_username *parsed,
                tp_error *err)
{
    tp_status status;
    tp_username u;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_credential_verify(s->realms[ri].kr, username, password,
                                      now, &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, username, &u, err);
    unpin(st, parity);
    if (status == TP_OK && parsed != NULL)
        *parsed = u;
    return status;
}

tp_status
tp_store_key(tp_store *st, const char *realm, const char *username,
             int64_t now, char hexkey[TP_LTKEY_HEX_LEN + 1],
             tp_username *parsed, tp_error *err)
{
    tp_status status;
    tp_username u;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_credential_key(s->realms[ri].kr, username, now, hexkey,
                                   &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, username, &u, err);
    unpin(st, parity);
    if (status != TP_OK && hexkey != NULL)
        tp__wipe(hexkey, TP_LTKEY_HEX_LEN + 1);
    if (status == TP_OK && parsed != NULL)
        *parsed = u;
    return status;
}

/* ------------------------------------------------------------------ */
/* Counters (Redis)                                                    */
/* ------------------------------------------------------------------ */

/* What a counter does when Redis cannot answer. */
static tp_status
redis_down(const tp_store *st, tp_error *err)
{
    if (st->fail_mode == TP_FAIL_OPEN) {
        tp__ok(err);
        return TP_OK;
    }
    if (st->redis == NULL)
        return tp__fail(err, TP_EREDIS, "no Redis is configured for "
                        "shared counters (fail mode: closed)");
    if (err != NULL && err->status != TP_EREDIS)
        tp__fail(err, TP_EREDIS, "Redis is unavailable");
    return TP_EREDIS;
}

/* Issuance per user per minute: INCR a key that expires with its
 * minute (plus a margin). */
static const char RATE_LUA[] =
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
    "return n";

static tp_status
rate_check(tp_store *st, const char *realm, const char *user_id,
           int64_t now, tp_error *err)
{
    char key[TP_REALM_MAX + TP_USER_ID_MAX + 64];
    const char *argv[5];
    size_t lens[5];
    redisReply *rep;

    if (st->issue_per_minute == 0)
        return TP_OK;
    if (st->redis == NULL)
        return redis_down(st, err);
    snprintf(key, sizeof(key), "turnpolicy:{%s}:rate:%s:%" PRId64, realm,
             user_id, now / 60);
    argv[0] = "EVAL";
    argv[1] = RATE_LUA;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = "120";
    lens[0] = 4;
    lens[1] = sizeof(RATE_LUA) - 1;
    lens[2] = 1;
    lens[3] = strlen(key);
    lens[4] = 3;
    rep = tp__redis_cmd(st->redis, 5, argv, lens, err);
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return redis_down(st, err);
    }
    if (rep->integer > (long long)st->issue_per_minute) {
        freeReplyObject(rep);
        return tp__fail(err, TP_ERATELIMIT, "user %s of realm %s asked for "
                        "more than %" PRIu32 " credentials this minute",
                        user_id, realm, st->issue_per_minute);
    }
    freeReplyObject(rep);
    return TP_OK;
}

/*
 * Live sessions of a user (KEYS[1]) and of its realm (KEYS[2]): sorted
 * sets of session ids scored by when they lapse.  The script drops lapsed
 * ones, refreshes a known session, and adds a new one only under both
 * limits - atomically, so two coturn nodes cannot both take the last
 * slot.  Returns the user's count; -(count+1) when the user's quota is
 * reached; -(1000000000 + realm count) when the realm's is.  (Both keys
 * carry the realm's hash tag, so this also works on Redis Cluster.)
 */
static const char ALLOC_LUA[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) "
    "local limit = tonumber(ARGV[4]) "
    "local rlimit = tonumber(ARGV[6]) "
    "if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false then "
    "  local n = redis.call('ZCARD', KEYS[1]) "
    "  if limit > 0 and n >= limit then return -(n + 1) end "
    "  local m = redis.call('ZCARD', KEYS[2]) "
    "  if rlimit > 0 and m >= rlimit then return -(1000000000 + m) end "
    "end "
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[5]) "
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[5]) "
    "return redis.call('ZCARD', KEYS[1])";

static int
session_ok(const char *id)
{
    size_t i, n = id != NULL ? strlen(id) : 0;

    if (n == 0 || n > 128)
        return 0;
    for (i = 0; i < n; i++) {
        if (id[i] < 0x21 || id[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* Per-op argument storage for a batch. */
typedef struct alloc_args {
    char key[TP_REALM_MAX + TP_USER_ID_MAX + 32];
    char rkey[TP_REALM_MAX + 32];
    char a1[24], a2[24], a4[24], a5[24], a6[24];
    const char *argv[11];
    size_t lens[11];
    int64_t limit, rlimit;
    int ncmd;                 /* commands in the pipeline: 0, 1 or 2 */
} alloc_args;

/* The hex SHA-1 of ALLOC_LUA, for EVALSHA (computed once). */
static pthread_once_t alloc_sha_once = PTHREAD_ONCE_INIT;
static char alloc_sha[41];

static void
alloc_sha_init(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];
    int i;

    if (SHA1((const unsigned char *)ALLOC_LUA, sizeof(ALLOC_LUA) - 1, md) ==
        NULL) {
        /* no SHA-1: an unknown sha makes every EVALSHA fall back to EVAL */
        memset(md, 0, sizeof(md));
    }
    for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
        alloc_sha[2 * i] = hex[md[i] >> 4];
        alloc_sha[2 * i + 1] = hex[md[i] & 15];
    }
    alloc_sha[40] = '\0';
}

/* Fill op's status (and err, for the first op that fails) from the
 * acquire script's reply. */
static tp_status
acquire_result(tp_store *st, tp_alloc_op *op, const alloc_args *a,
               const redisReply *rep, tp_error *err)
{
    long long v;

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR && err != NULL) {
            char shown[120];

            tp__printable(shown, sizeof(shown), rep->str, 100);
            tp__fail(err, TP_EREDIS, "Redis replied: %s", shown);
        }
        return redis_down(st, err);
    }
    v = rep->integer;
    if (v <= -1000000000LL)
        return tp__fail(err, TP_EQUOTA, "realm %s already has %lld live "
                        "allocations (total quota %" PRId64 ")", op->realm,
                        -v - 1000000000LL, a->rlimit);
    if (v < 0) {
        op->count = (uint32_t)(-v - 1);
        return tp__fail(err, TP_EQUOTA, "user %s of realm %s already has "
                        "%lld live allocation%s (quota %" PRId64 ")",
                        op->user_id, op->realm, -v - 1,
                        -v - 1 == 1 ? "" : "s", a->limit);
    }
    op->count = (uint32_t)v;
    return TP_OK;
}

static int
is_noscript(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_ERROR &&
           strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

/* Keep the first failure's message in err. */
static void
first_error(tp_error *err, int *have, tp_status st, const tp_error *e)
{
    if (st == TP_OK || err == NULL || *have)
        return;
    *err = *e;
    err->status = st;
    *have = 1;
}

tp_status
tp_store_alloc_batch(tp_store *st, tp_alloc_op *ops, size_t n, int64_t now,
                     tp_error *err)
{
    const user_entry *ue;
    overlay *ov = NULL;
    alloc_args *args = NULL;
    redisReply **rep = NULL, **again = NULL;
    const char *const **argv = NULL;
    const size_t **lens = NULL;
    int *argc = NULL;
    tp_error e1, epin;
    tp_status status, rs;
    snapshot *s;
    size_t i, k, ncmd = 0, nretry;
    int parity, have = 0;
    long ri;

    if (err != NULL)
        tp__ok(err);
    if (st == NULL || (ops == NULL && n > 0))
        return tp__fail(err, TP_EINVAL, "store and operations are required");
    if (n == 0)
        return TP_OK;
    (void)pthread_once(&alloc_sha_once, alloc_sha_init);
    args = calloc(n, sizeof(*args));
    rep = calloc(2 * n, sizeof(*rep));
    argv = calloc(2 * n, sizeof(*argv));
    lens = calloc(2 * n, sizeof(*lens));
    argc = calloc(2 * n, sizeof(*argc));
    if (args == NULL || rep == NULL || argv == NULL || lens == NULL ||
        argc == NULL) {
        for (i = 0; i < n; i++)
            ops[i].status = TP_ENOMEM;
        status = tp__fail(err, TP_ENOMEM, "out of memory");
        goto out;
    }
    /* Validate, and take the limits from one snapshot. */
    s = pin(st, &ov, &parity, &status, &epin);
    for (i = 0; i < n; i++) {
        tp_alloc_op *op = &ops[i];
        alloc_args *a = &args[i];

        op->count = 0;
        op->status = TP_OK;
        if (!session_ok(op->session_id) ||
            tp_realm_check(op->realm, NULL) != TP_OK ||
            tp_user_id_check(op->user_id, NULL) != TP_OK) {
            op->status = tp__fail(&e1, TP_EINVAL, "a realm, a user id and "
                                  "a session id (1..128 printable bytes) "
                                  "are required");
        } else if (op->ttl > 0 && s == NULL) {
            op->status = status; /* TP_ESTALE */
            e1 = epin;
        } else if (op->ttl > 0) {
            op->status = realm_lookup(s, ov, op->realm, &ri, &e1);
            if (op->status == TP_OK) {
                ue = find_user(s, (size_t)ri, op->user_id);
                a->limit = ue != NULL && ue->user_quota >= 0
                               ? ue->user_quota
                               : s->realms[ri].user_quota;
                a->rlimit = s->realms[ri].total_quota;
            }
        }
        first_error(err, &have, op->status, &e1);
    }
    if (s != NULL)
        unpin(st, parity);
    /* The commands: EVALSHA for an acquire, two ZREMs for a release. */
    for (i = 0; i < n; i++) {
        tp_alloc_op *op = &ops[i];
        alloc_args *a = &args[i];

        if (op->status != TP_OK)
            continue;
        snprintf(a->key, sizeof(a->key), "turnpolicy:{%s}:alloc:%s",
                 op->realm, op->user_id);
        snprintf(a->rkey, sizeof(a->rkey), "turnpolicy:{%s}:alloc",
                 op->realm);
        if (op->ttl > 0) {
            snprintf(a->a1, sizeof(a->a1), "%" PRId64, now);
            snprintf(a->a2, sizeof(a->a2), "%" PRId64,
                     now + (int64_t)op->ttl);
            snprintf(a->a4, sizeof(a->a4), "%" PRId64, a->limit);
            snprintf(a->a5, sizeof(a->a5), "%" PRIu32, op->ttl + 60);
            snprintf(a->a6, sizeof(a->a6), "%" PRId64, a->rlimit);
            a->argv[0] = "EVALSHA";
            a->argv[1] = alloc_sha;
            a->argv[2] = "2";
            a->argv[3] = a->key;
            a->argv[4] = a->rkey;
            a->argv[5] = a->a1;
            a->argv[6] = a->a2;
            a->argv[7] = op->session_id;
            a->argv[8] = a->a4;
            a->argv[9] = a->a5;
            a->argv[10] = a->a6;
            for (k = 0; k < 11; k++)
                a->lens[k] = strlen(a->argv[k]);
            argc[ncmd] = 11;
            argv[ncmd] = a->argv;
            lens[ncmd++] = a->lens;
            a->ncmd = 1;
        } else {
            /* argv[0..2] = ZREM key sid; argv[3..5] = ZREM rkey sid */
            a->argv[0] = a->argv[3] = "ZREM";
            a->argv[1] = a->key;
            a->argv[4] = a->rkey;
            a->argv[2] = a->argv[5] = op->session_id;
            for (k = 0; k < 6; k++)
                a->lens[k] = strlen(a->argv[k]);
            argc[ncmd] = 3;
            argv[ncmd] = a->argv;
            lens[ncmd++] = a->lens;
            argc[ncmd] = 3;
            argv[ncmd] = a->argv + 3;
            lens[ncmd++] = a->lens + 3;
            a->ncmd = 2;
        }
    }
    if (ncmd == 0)
        goto done;
    if (st->redis == NULL)
        rs = tp__fail(&e1, TP_EREDIS, "no Redis is configured");
    else
        rs = tp__redis_pipeline(st->redis, ncmd, argc, argv, lens, rep, &e1);
    if (rs == TP_OK) {
        /* Redis lost its script cache (a restart): EVAL those once (then
         * EVALSHA finds the script again). */
        for (i = k = nretry = 0; i < n; i++) {
            if (args[i].ncmd == 1 && is_noscript(rep[k])) {
                freeReplyObject(rep[k]);
                rep[k] = NULL;
                args[i].argv[0] = "EVAL";
                args[i].argv[1] = ALLOC_LUA;
                args[i].lens[0] = 4;
                args[i].lens[1] = sizeof(ALLOC_LUA) - 1;
                argc[nretry] = 11;
                argv[nretry] = args[i].argv;
                lens[nretry++] = args[i].lens;
            }
            k += (size_t)args[i].ncmd;
        }
        if (nretry > 0) {
            again = calloc(nretry, sizeof(*again));
            if (again != NULL &&
                tp__redis_pipeline(st->redis, nretry, argc, argv, lens,
                                   again, NULL) == TP_OK) {
                for (i = k = nretry = 0; i < n; i++) {
                    if (args[i].ncmd == 1 && rep[k] == NULL)
                        rep[k] = again[nretry++];
                    k += (size_t)args[i].ncmd;
                }
            }
            free(again);
        }
    }
    for (i = k = 0; i < n; i++) {
        tp_alloc_op *op = &ops[i];

        if (args[i].ncmd == 0)
            continue;
        e1.status = rs;
        if (rs != TP_OK) {
            op->status = redis_down(st, &e1);
        } else if (args[i].ncmd == 1) {
            op->status = acquire_result(st, op, &args[i], rep[k], &e1);
        } else if (rep[k] == NULL || rep[k]->type == REDIS_REPLY_ERROR ||
                   rep[k + 1] == NULL ||
                   rep[k + 1]->type == REDIS_REPLY_ERROR) {
            tp__fail(&e1, TP_EREDIS, "Redis refused ZREM");
            op->status = redis_down(st, &e1);
        }
        first_error(err, &have, op->status, &e1);
        k += (size_t)args[i].ncmd;
    }
done:
    status = TP_OK;
    for (i = 0; i < n; i++) {
        if (ops[i].status != TP_OK && ops[i].status != TP_EQUOTA) {
            status = ops[i].status;
            break;
        }
    }
out:
    if (rep != NULL)
        for (i = 0; i < 2 * n; i++)
            freeReplyObject(rep[i]);
    free(args);
    free(rep);
    free(argv);
    free(lens);
    free(argc);
    return status;
}

tp_status
tp_store_alloc_acquire(tp_store *st, const char *realm, const char *user_id,
                       const char *session_id, uint32_t ttl, int64_t now,
                       uint32_t *count, tp_error *err)
{
    tp_alloc_op op;

    if (count != NULL)
        *count = 0;
    if (st == NULL || !session_ok(session_id) || ttl == 0)
        return tp__fail(err, TP_EINVAL, "store, a session id (1..128 "
                        "printable bytes) and a ttl are required");
    if (tp_user_id_check(user_id, err) != TP_OK)
        return err != NULL ? err->status : TP_EINVAL;
    memset(&op, 0, sizeof(op));
    op.realm = realm;
    op.user_id = user_id;
    op.session_id = session_id;
    op.ttl = ttl;
    (void)tp_store_alloc_batch(st, &op, 1, now, err);
    if (count != NULL)
        *count = op.count;
    if (op.status == TP_OK && err != NULL)
        tp__ok(err);
    return op.status;
}

tp_status
tp_store_alloc_release(tp_store *st, const char *realm, const char *user_id,
                       const char *session_id, tp_error *err)
{
    tp_alloc_op op;

    if (st == NULL || !session_ok(session_id) ||
        tp_realm_check(realm, NULL) != TP_OK ||
        tp_user_id_check(user_id, NULL) != TP_OK)
        return tp__fail(err, TP_EINVAL, "store, realm, user id and session "
                        "id are required");
    memset(&op, 0, sizeof(op));
    op.realm = realm;
    op.user_id = user_id;
    op.session_id = session_id;
    (void)tp_store_alloc_batch(st, &op, 1, 0, err);
    if (op.status == TP_OK && err != NULL)
        tp__ok(err);
    return op.status;
}

/* May user_id of realm be issued a credential (pinned snapshot s)? */
static tp_status
issue_check(const snapshot *s, const overlay *ov, const char *realm,
            const char *user_id, long *ri, const user_entry **ue,
            tp_error *err)
{
    return subject_checks(s, ov, realm, user_id, 0, ri, ue, err);
}

tp_status
tp_store_issue(tp_store *st, const char *realm, const char *user_id,
               uint32_t ttl, int64_t now, tp_credential *out, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    status = tp_user_id_check(user_id, err);
    if (status != TP_OK)
        return status;
    if (st->issue_per_minute > 0) {
        /* Count only for a user who may be issued one, and not while
         * pinned: the Redis round trip (up to its timeout) would hold
         * back the store thread's snapshot swaps. */
        s = pin(st, &ov, &parity, &status, err);
        if (s == NULL)
            return status;
        status = issue_check(s, ov, realm, user_id, &ri, &ue, err);
        unpin(st, parity);
        if (status == TP_OK)
            status = rate_check(st, realm, user_id, now, err);
        if (status != TP_OK)
            return status;
    }
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = issue_check(s, ov, realm, user_id, &ri, &ue, err);
    /* Just after revoke_user (revoked_before is the next whole second),
     * date the credential at the revocation so it is not born revoked;
     * the SQL issue_credential does the same. */
    if (status == TP_OK && ue->revoked_before > now &&
        ue->revoked_before - now <= 1)
        now = ue->revoked_before;
    if (status == TP_OK)
        status = tp_credential_issue(s->realms[ri].kr, user_id, ttl, now,
                                     out, err);
    unpin(st, parity);
    return status;
}

tp_status
tp_store_peer_check(tp_store *st, const char *realm, const tp_addr *addr,
                    tp_peer_decision *dec, tp_error *err)
{
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_peerset_check(s->realms[ri].ps, addr, dec, err);
    unpin(st, parity);
    return status;
}

tp_status
tp_store_host_check(tp_store *st, const char *realm, const char *host,
                    unsigned port, const char *path, tp_host_match *match,
                    tp_error *err)
{
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_hostlist_check(s->realms[ri].hl, host, port, path,
                                   match, err);
    /* The match's rule text points into the snapshot, which may be freed
     * once unpinned: do not hand it out. */
    if (match != NULL)
        match->rule = NULL;
    unpin(st, parity);
    return status;
}

/* ------------------------------------------------------------------ */
/* What turnpolicyd serves coturn                                      */
/* ------------------------------------------------------------------ */

tp_status
tp_store_realm_options(tp_store *st, const char *realm, tp_realm_options *out,
                       tp_error *err)
{
    const realm_entry *r;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || out == NULL)
        return tp__fail(err, TP_EINVAL, "store and output are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? find_realm(s, realm) : -1;
    if (ri < 0) {
        unpin(st, parity);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    }
    r = &s->realms[ri];
    out->max_bps = r->max_bps;
    out->user_quota = r->user_quota;
    out->total_quota = r->total_quota;
    out->default_ttl = r->default_ttl;
    out->max_ttl = r->max_ttl;
    out->killed = r->killed || overlay_has(ov, OV_KILL, r->name, "", NULL);
    unpin(st, parity);
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_store_realms(tp_store *st, tp_name_fn fn, void *ud, tp_error *err)
{
    tp_status status = TP_OK;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    size_t i;

    if (st == NULL || fn == NULL)
        return tp__fail(err, TP_EINVAL, "store and callback are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    for (i = 0; i < s->nrealms && status == TP_OK; i++)
        status = fn(ud, s->realms[i].name);
    unpin(st, parity);
    return status;
}

tp_status
tp_store_origins(tp_store *st, tp_origin_fn fn, void *ud, tp_error *err)
{
    tp_status status = TP_OK;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    size_t i;

    if (st == NULL || fn == NULL)
        return tp__fail(err, TP_EINVAL, "store and callback are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    /* Sorted by origin, then realm index (= name order): the first pair
     * of each origin is its first realm. */
    for (i = 0; i < s->norigins && status == TP_OK; i++) {
        if (i > 0 && strcmp(s->origins[i - 1].origin,
                            s->origins[i].origin) == 0)
            continue;
        status = fn(ud, s->origins[i].origin,
                    s->realms[s->origins[i].realm].name);
    }
    unpin(st, parity);
    return status;
}

tp_status
tp_store_origin_check(tp_store *st, const char *realm, const char *origin,
                      tp_error *err)
{
    tp_status status = TP_OK;
    overlay *ov = NULL;
    snapshot *s;
    origin_entry key;
    int parity;
    long ri;

    if (st == NULL || realm == NULL || origin == NULL)
        return tp__fail(err, TP_EINVAL, "store, realm and origin are "
                        "required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = find_realm(s, realm);
    if (ri < 0) {
        status = tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    } else {
        key.origin = (char *)origin;
        key.realm = (size_t)ri;
        if (s->norigins == 0 ||
            bsearch(&key, s->origins, s->norigins, sizeof(*s->origins),
                    cmp_origin) == NULL)
            status = tp__fail(err, TP_EORIGIN, "origin is not allowed for "
                              "realm %s", realm);
    }
    unpin(st, parity);
    return status;
}

tp_status
tp_store_export_coturn(tp_store *st, const char *realm, tp_peer_action which,
                       tp_range_fn fn, void *ud, tp_error *err)
{
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || fn == NULL)
        return tp__fail(err, TP_EINVAL, "store and callback are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? find_realm(s, realm) : -1;
    if (ri < 0)
        status = tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    else
        status = tp_peerset_export_coturn(s->realms[ri].ps, which, fn, ud,
                                          err);
    unpin(st, parity);
    return status;
}

/* Find realm (the kill switch honoured, as everywhere) and user under a
 * pin; the caller unpins. */
static tp_status
realm_user(const snapshot *s, const overlay *ov, const char *realm,
           const char *user_id, long *ri, const user_entry **ue,
           tp_error *err)
{
    tp_status status = realm_lookup(s, ov, realm, ri, err);

    if (status != TP_OK)
        return status;
    *ue = user_id != NULL ? find_user(s, (size_t)*ri, user_id) : NULL;
    if (*ue == NULL)
        return tp__fail(err, TP_EUNKNOWNUSER, "user is not provisioned in "
                        "realm %s", realm);
    return TP_OK;
}

/* The quota in force for a user (0 = unlimited). */
static int64_t
quota_of(const realm_entry *r, const user_entry *ue)
{
    return ue->user_quota >= 0 ? ue->user_quota : r->user_quota;
}

tp_status
tp_store_session_check(tp_store *st, const char *realm, const char *user_id,
                       const tp_session_use *use, tp_error *err)
{
    const user_entry *ue = NULL;
    const realm_entry *r;
    uint64_t limit, spent;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int64_t quota;
    int parity;
    long ri;

    if (st == NULL || use == NULL)
        return tp__fail(err, TP_EINVAL, "store and use are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status != TP_OK)
        goto out;
    r = &s->realms[ri];
    quota = quota_of(r, ue);
    if (quota > 0 && use->live >= (uint64_t)quota) {
        status = tp__fail(err, TP_EQUOTA, "%zu live allocations on this "
                          "node (quota %" PRId64 ")", use->live, quota);
        goto out;
    }
    limit = budget_limit(r, ue);
    spent = ue->used > UINT64_MAX - use->bytes ? UINT64_MAX
                                               : ue->used + use->bytes;
    if (limit > 0 && spent >= limit) {
        status = tp__fail(err, TP_EBUDGET, "%" PRIu64 " bytes of its budget "
                          "of %" PRIu64 " used (%" PRIu64 " recorded, %"
                          PRIu64 " on this node not yet recorded)", spent,
                          limit, ue->used, use->bytes);
        goto out;
    }
    if (use->client != NULL && ue->has_cidr &&
        !cidr_contains(&ue->cidr, ue->cidr_len, use->client)) {
        status = tp__fail(err, TP_ECLIENTADDR, "user %s of realm %s may "
                          "only connect from its bound network", user_id,
                          realm);
        goto out;
    }
    tp__ok(err);
out:
    unpin(st, parity);
    return status;
}

tp_status
tp_store_client_check(tp_store *st, const char *realm, const char *user_id,
                      const tp_addr *client, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || client == NULL)
        return tp__fail(err, TP_EINVAL, "store and client are required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK && ue->has_cidr &&
        !cidr_contains(&ue->cidr, ue->cidr_len, client))
        status = tp__fail(err, TP_ECLIENTADDR, "user %s of realm %s may "
                          "only connect from its bound network", user_id,
                          realm);
    unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}

tp_status
tp_store_user_quota(tp_store *st, const char *realm, const char *user_id,
                    int64_t *quota, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || quota == NULL)
        return tp__fail(err, TP_EINVAL, "store and output are required");
    *quota = 0;
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *quota = quota_of(&s->realms[ri], ue);
        tp__ok(err);
    }
    unpin(st, parity);
    return status;
}

tp_status
tp_store_budget(tp_store *st, const char *realm, const char *user_id,
                uint64_t *limit, uint64_t *used, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || limit == NULL || used == NULL)
        return tp__fail(err, TP_EINVAL, "store and outputs are required");
    *limit = *used = 0;
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *limit = budget_limit(&s->realms[ri], ue);
        *used = ue->used;
        tp__ok(err);
    }
    unpin(st, parity);
    return status;
}

/* Copy src into a fixed field; -1 if it does not fit or has bytes that
 * have no business in a log or an identifier. */
static int
copy_field(char *dst, size_t cap, const char *src, int required)
{
    size_t i, n = src != NULL ? strlen(src) : 0;

    if (n == 0) {
        dst[0] = '\0';
        return required ? -1 : 0;
    }
    if (n >= cap)
        return -1;
    for (i = 0; i < n; i++) {
        if ((unsigned char)src[i] < 0x21 || (unsigned char)src[i] > 0x7e)
            return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

tp_status
tp_store_usage_record(tp_store *st, const tp_usage *u, tp_error *err)
{
    usage_rec *r;
    tp_addr a;
    int kick;

    if (st == NULL || u == NULL)
        return tp__fail(err, TP_EINVAL, "store and record are required");
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    if (copy_field(r->node, sizeof(r->node), u->node, 1) != 0 ||
        copy_field(r->session, sizeof(r->session), u->session_id, 1) != 0 ||
        tp_realm_check(u->realm, NULL) != TP_OK ||
        tp_user_id_check(u->user_id, NULL) != TP_OK ||
        copy_field(r->client, sizeof(r->client), u->client_addr, 0) != 0 ||
        (r->client[0] != '\0' && tp_addr_parse(r->client, &a, NULL) !=
                                     TP_OK) ||
        u->started <= 0 || u->ended < u->started ||
        u->bytes_in > (uint64_t)INT64_MAX ||
        u->bytes_out > (uint64_t)INT64_MAX) {
        free(r);
        return tp__fail(err, TP_EINVAL, "usage record is malformed (node, "
                        "session id, realm, user id, times or address)");
    }
    memcpy(r->realm, u->realm, strlen(u->realm) + 1);
    memcpy(r->user, u->user_id, strlen(u->user_id) + 1);
    r->started = u->started;
    r->ended = u->ended;
    r->bytes_in = u->bytes_in;
    r->bytes_out = u->bytes_out;
    pthread_mutex_lock(&st->uq_mu);
    if (st->uq_len >= st->uq_max) {
        pthread_mutex_unlock(&st->uq_mu);
        free(r);
        return tp__fail(err, TP_EBUSY, "%zu usage records are waiting for "
                        "PostgreSQL; refusing more", st->uq_max);
    }
    if (st->uq_tail != NULL) {
        st->uq_tail->next = r;
    } else {
        st->uq_head = r;
        st->uq_since_ms = mono_ms_now();
    }
    st->uq_tail = r;
    st->uq_len++;
    /* The thread learns the deadline of the first record, and comes at
     * once for a full batch. */
    kick = st->uq_len == 1 || st->uq_len == USAGE_BATCH;
    pthread_mutex_unlock(&st->uq_mu);
    if (kick)
        wake(st);
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_store_usage_flush(tp_store *st, int timeout_ms, tp_error *err)
{
    struct timespec deadline;
    size_t left;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->uq_mu);
    if (st->uq_len > 0)
        st->uq_flush = 1;
    pthread_mutex_unlock(&st->uq_mu);
    wake(st);
    pthread_mutex_lock(&st->uq_mu);
    while (st->uq_len > 0) {
        if (pthread_cond_timedwait(&st->uq_cv, &st->uq_mu, &deadline) != 0)
            break;
    }
    left = st->uq_len;
    pthread_mutex_unlock(&st->uq_mu);
    if (left > 0)
        return tp__fail(err, TP_EDB, "%zu usage record%s not yet written "
                        "(PostgreSQL unreachable?)", left,
                        left == 1 ? "" : "s");
    tp__ok(err);
    return TP_OK;
}

/* The realm claim of a token, before verification: only to choose the
 * key set.  0 and name filled; -1 when the payload cannot be read (not
 * base64url or not JSON, a NUL in a string: the verifier would call it
 * malformed too); -2 when it names no realm; -3 when the claim is not a
 * realm name's string (a number, too long). */
static int
unverified_realm(const char *token, size_t len, const char *claim,
                 char *name, size_t cap)
{
    unsigned char *buf;
    const char *p1, *p2, *v;
    json_error_t jerr;
    json_t *j, *c;
    long n;
    int rc = -1;

    if (len > TP_JWT_MAX)
        return -1;
    p1 = memchr(token, '.', len);
    if (p1 == NULL)
        return -1;
    p2 = memchr(p1 + 1, '.', len - (size_t)(p1 + 1 - token));
    if (p2 == NULL)
        return -1;
    buf = malloc(TP_JWT_MAX);
    if (buf == NULL)
        return -1;
    n = tp__b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), buf, TP_JWT_MAX);
    if (n > 0) {
        /* integers as reals, as the verifier reads them: 1e30 is JSON */
        j = json_loadb((const char *)buf, (size_t)n, JSON_DECODE_INT_AS_REAL,
                       &jerr);
        c = j != NULL ? json_object_get(j, claim) : NULL;
        v = c != NULL ? json_string_value(c) : NULL;
        if (v != NULL && tp__strlcpy(name, v, cap) == 0)
            rc = 0;
        else if (c != NULL)
            rc = -3;
        else if (j != NULL)
            rc = -2;
        json_decref(j);
    }
    free(buf);
    return rc;
}

tp_status
tp_store_jwt_verify(tp_store *st, const char *realm, const char *token,
                    size_t len, int64_t now, tp_jwt_claims *claims,
                    tp_error *err)
{
    char name[TP_REALM_MAX + 1];
    tp_jwt_claims cl;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || token == NULL)
        return tp__fail(err, TP_EINVAL, "store and token are required");
    if (len > TP_JWT_MAX)
        return tp__fail(err, TP_ETOOLONG, "token is longer than %d bytes",
                        TP_JWT_MAX);
    if (realm == NULL) {
        const char *claim = st->jwt.realm_claim != NULL ? st->jwt.realm_claim
                                                        : "realm";

        int rc = unverified_realm(token, len, claim, name, sizeof(name));

        if (rc == -1)
            return tp__fail(err, TP_EJWTMALFORMED, "token payload is not "
                            "base64url JSON (or holds a NUL character)");
        if (rc == -3)
            return tp__fail(err, TP_EJWTCLAIM, "token realm claim \"%s\" is "
                            "not a string of 1 to %d bytes", claim,
                            TP_REALM_MAX);
        if (rc != 0)
            return tp__fail(err, TP_EUNKNOWNREALM, "token names no realm "
                            "(claim \"%s\")", claim);
        realm = name;
    }
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_jwt_verify(s->realms[ri].jk, token, len, now, &cl, err);
    unpin(st, parity);
    if (status == TP_OK && strcmp(cl.realm, realm) != 0)
        status = tp__fail(err, TP_EJWTCLAIM, "token's realm claim does not "
                          "name realm %s", realm);
    if (status == TP_OK && claims != NULL)
        *claims = cl;
    return status;
}

tp_status
tp_store_realm_urls(tp_store *st, const char *realm, char *buf, size_t cap,
                    const char **urls, size_t max, size_t *n, tp_error *err)
{
    const realm_entry *r;
    tp_status status = TP_OK;
    overlay *ov = NULL;
    snapshot *s;
    size_t i, used = 0;
    int parity;
    long ri;

    if (st == NULL || buf == NULL || urls == NULL || n == NULL)
        return tp__fail(err, TP_EINVAL, "store and outputs are required");
    *n = 0;
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? find_realm(s, realm) : -1;
    if (ri < 0) {
        unpin(st, parity);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    }
    r = &s->realms[ri];
    for (i = 0; i < r->nurls; i++) {
        size_t len = strlen(r->urls[i]) + 1;

        if (i >= max || len > cap - used) {
            status = tp__fail(err, TP_ENOSPACE, "realm %s has more TURN "
                              "URIs than fit", realm);
            break;
        }
        memcpy(buf + used, r->urls[i], len);
        urls[i] = buf + used;
        used += len;
        (*n)++;
    }
    unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}

tp_status
tp_store_subject_check(tp_store *st, const char *realm, const char *user_id,
                       int64_t issued_at, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    s = pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = subject_checks(s, ov, realm, user_id, issued_at, &ri, &ue,
                            err);
    unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}
