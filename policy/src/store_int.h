/*
 * store_int.h - what the policy store's source files share: the snapshot,
 * the overlay, the store handle, and the tp__ functions one file defines
 * for another.
 *
 * The store (the public tp_store) is split by concern:
 *   store.c           lifecycle (tp_store_new/free, info) and the store
 *                     thread that reloads, heartbeats and writes usage
 *   store_snapshot.c  the snapshot and overlay structures, lookups in
 *                     them, and the RCU read side (pin/unpin) with the
 *                     writer's grace period
 *   store_table.c     the tables of users and revoked credentials: one
 *                     writer swaps entries, readers look up lock-free
 *   store_base.c      one copy of them per node (share_dir): a read-only
 *                     base file under the tables, written by one store
 *   store_load.c      building a snapshot from PostgreSQL (libpq)
 *   store_delta.c     applying the change log (schema 007) to the
 *                     snapshot in force: the cost of what changed
 *   store_sync.c      a full read applied in place, entry by entry
 *   store_static.c    building a store from C structures, without a
 *                     database (unit tests)
 *   store_fanout.c    Redis fan-out: publishing changes, the subscription
 *                     and the overlay it feeds
 *   store_usage.c     the usage-record queue and its writer
 *   store_counters.c  shared counters in Redis: issuance rate, live
 *                     allocations (Lua)
 *   store_decide.c    decisions about a subject: credentials, JWTs,
 *                     issuance, session limits, quotas and budgets
 *   store_realm.c     questions about a realm: options, peer and host
 *                     rules, origins, TURN URIs, coturn exports
 *   store_dump.c      the content of a store as text, for tests
 *
 * Threads: a snapshot's realms and an overlay are immutable once
 * published, and so is every table entry; the store thread alone (and
 * tp_store_free after joining it) swaps them.
 * Fields of struct tp_store say which lock guards them or which thread
 * owns them.  Decisions read under tp__pin / tp__unpin and never lock.
 *
 * Names: tp__ for what crosses files (never exported from the shared
 * library), static for everything else.
 */
#ifndef TP_STORE_INT_H
#define TP_STORE_INT_H

#include "tp_internal.h"
#include "tp_redis.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

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
    int64_t realm_budget; /* bytes of all its users per period; 0 = none */
    int64_t budget_period;
    char **urls;         /* TURN URIs, in order */
    size_t nurls;
} realm_entry;

/*
 * A user, immutable once published in a table (store_table.c): one
 * allocation holding the fields, the user id and - when has_cidr - the
 * client network after it (user_cidr).  realm comes first: the table's
 * key is (realm, user_id).
 */
typedef struct user_entry {
    uint32_t realm;         /* index into realms */
    uint8_t active;
    uint8_t has_cidr;       /* client_cidr binding */
    uint8_t cidr_len;
    uint8_t mark;           /* the store thread's only: the last full
                               read (store_sync.c) that found it */
    int64_t revoked_before; /* Unix seconds; 0 = never revoked */
    int64_t user_quota;     /* -1 = the realm's */
    int64_t user_budget;    /* -1 = the realm's */
    uint64_t used;          /* bytes of finished sessions in the period */
    char user_id[];
} user_entry;

/* The largest user entry: a user id of TP_USER_ID_MAX bytes and a client
 * network after it. */
#define USER_ENTRY_MAX                                                        \
    (sizeof(user_entry) + TP_USER_ID_MAX + 1 + _Alignof(tp_addr) +            \
     sizeof(tp_addr))

/* The client network of a user with has_cidr. */
static inline const tp_addr *
user_cidr(const user_entry *u)
{
    size_t off = offsetof(user_entry, user_id) + strlen(u->user_id) + 1;

    off = (off + _Alignof(tp_addr) - 1) & ~(_Alignof(tp_addr) - 1);
    return (const tp_addr *)(const void *)((const char *)u + off);
}

/* A revoked credential; the table's key is (realm, username). */
typedef struct revoked_entry {
    uint32_t realm;
    uint8_t mark;           /* as user_entry's */
    char username[];
} revoked_entry;

typedef struct origin_entry {
    char *origin;
    size_t realm;
} origin_entry;

/* ---- store_table.c: tables changed entry by entry, read lock-free ---- */

typedef struct tp__slots {
    size_t mask;                /* capacity - 1 (a power of two) */
    _Atomic(void *) slot[];     /* NULL, an entry, or the tombstone */
} tp__slots;

typedef struct tp__basew tp__basew;

typedef struct tp__table {
    _Atomic(tp__slots *) slots;
    size_t name_off;            /* where an entry's name starts */
    atomic_size_t used;         /* slots holding an entry or a deletion
                                   mark (written by the writer) */
    size_t dead;                /* tombstones (writer only) */
    atomic_size_t count;        /* live entries, the base's included */
    size_t (*size)(const void *e); /* an entry's bytes (to copy it) */
    /* A base under the table (store_base.c): read-only entries in a
     * mapped file, shadowed by the table's own entries and deletion
     * marks.  Set before the table is published, then constant. */
    const char *bmap;           /* the mapping; NULL = no base */
    const uint32_t *bslot;      /* entry offset / 8, 0 = empty */
    size_t bmask;
    size_t bn;                  /* the base's entries */
    /* Building a base (a full load in a store with share_dir): puts and
     * finds go to the file being written instead. */
    tp__basew *bw;
    uint32_t *wslot;            /* private until the base is finished */
    size_t wmask, wn;
} tp__table;

/* What a writer replaced, to free after a grace period. */
typedef struct tp__garbage {
    void **p;
    size_t n, cap;
} tp__garbage;

/*
 * What one full load built and changes then update in place, shared by
 * the snapshots that follow it as long as the realms stay the same ones
 * in the same order (a change to a realm's settings or rules publishes a
 * new snapshot over the same tables).
 */
typedef struct tp__base tp__base;

typedef struct tp__tables {
    tp__table users;            /* user_entry */
    tp__table revoked;          /* revoked_entry */
    size_t nrealms;
    _Atomic uint64_t *realm_used; /* per realm index: bytes of all its
                                     sessions (users removed since too) in
                                     the budget period */
    tp__base *base;             /* the mapped base both tables read, or
                                   NULL; unmapped with the tables */
} tp__tables;

typedef struct snapshot {
    int64_t loaded_at;      /* Unix seconds */
    realm_entry *realms;    /* sorted by name */
    size_t nrealms;
    origin_entry *origins;  /* sorted by origin, then realm index */
    size_t norigins;
    tp__tables *tab;        /* owned by the last snapshot holding it */
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

/* Where the store stands in turnpolicy.changes (store_delta.c). */
typedef struct tp__chglog {
    int on;                   /* the schema has the change log */
    int64_t seq;              /* every row up to seq is applied, but for
                                 rows of the transactions in xip */
    char *xip;                /* xid8[] text: in progress at the last read */
    double read_at;           /* monotonic: the last successful read */
    int standby;              /* the server is a hot standby: its
                                 snapshots list no running transactions
                                 (they are in subxip, which SQL does not
                                 show), so late rows need a full load */
} tp__chglog;

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
    int change_fd;            /* eventfd: readable when changes moves;
                                 -1 in a static store */
    pthread_t thread;
    int thread_started;
    PGconn *conn;             /* owned by the thread after start */
    tp__chglog chg;           /* thread only (and tp_store_new) */
    uint8_t mark;             /* thread only: what store_sync.c marks the
                                 entries it finds with (0 or 1) */
    atomic_ullong deltas;     /* change-log reads applied */
    atomic_ullong full_loads; /* full loads */
    char *share_dir;          /* NULL, or where the node's base is */
    int64_t share_need;       /* thread only: a full read wants a base
                                 built at or after this (Unix ns) */
    int failing;              /* thread only: a failure was logged */
    int usage_failing;        /* thread only: usage refusal logged */
    long long usage_retry_ms; /* thread only: no write before (refused) */
};

/* ---- small inline helpers (clocks, read side) ---- */

/* Seconds on CLOCK_MONOTONIC since t (negative if t is in the future). */
static inline double
mono_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double
mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline long long
mono_ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read side: enter / leave.  Returns the parity to leave with. */
static inline int
read_enter(tp_store *st)
{
    int p = (int)(atomic_load(&st->epoch) & 1u);

    atomic_fetch_add(&st->readers[p], 1);
    return p;
}

static inline void
read_leave(tp_store *st, int p)
{
    atomic_fetch_sub(&st->readers[p], 1);
}

/* ---- store.c: lifecycle and the store thread ---- */

/* The policy decisions see moved (a new snapshot or overlay): count it in
 * st->changes and wake whoever watches tp_store_change_fd.  Store thread
 * (or a static store's builder). */
void tp__store_changed(tp_store *st);

/* Log through the host's callback (nothing when it gave none). */
void tp__slog(const tp_store *st, tp_log_level lvl, const char *fmt, ...)
    TP__PRINTF(3, 4);

/* Has tp_store_free asked the thread to stop? */
int tp__store_stopping(tp_store *st);

/* Wake the store thread's poll (a usage record, a reload, a stop). */
void tp__store_wake(tp_store *st);

/* Publish s as the current snapshot (the store owns it from here), mark
 * the policy current, tell other nodes what changed (when LISTENing), wait
 * a grace period and free the previous snapshot.  Store thread, or before
 * it starts. */
void tp__store_publish(tp_store *st, snapshot *s);

/* ---- store_snapshot.c: structures, lookups, RCU ---- */

/* Free a snapshot and everything it owns (NULL is a no-op). */
void tp__snapshot_free(snapshot *s);

/* Writer side (the store thread only): return when no reader can still
 * hold a pointer read before the last swap. */
void tp__synchronize_readers(tp_store *st);

/* qsort orders: realms by name, origins by (origin, realm) - strcmp. */
int tp__cmp_realm(const void *a, const void *b);
int tp__cmp_origin(const void *a, const void *b);

/* Sort s->origins (tp__cmp_origin) and drop a realm's duplicates. */
void tp__index_origins(snapshot *s);

/* Index of realm name in s (sorted), or -1. */
long tp__find_realm(const snapshot *s, const char *name);

/* New empty tables for nrealms realms sized for about nusers users; NULL
 * when out of memory.  tp__tables_free frees them and their entries. */
tp__tables *tp__tables_new(size_t nrealms, size_t nusers);
void tp__tables_free(tp__tables *t);

/* The user user_id of realm index realm, or NULL. */
const user_entry *tp__find_user(const snapshot *s, size_t realm,
                                const char *user_id);

/* Is username of realm index realm in the revoked credentials? */
int tp__is_revoked(const snapshot *s, size_t realm, const char *username);

/* Bytes of realm index ri's sessions in its budget period. */
uint64_t tp__realm_used(const snapshot *s, size_t ri);

/* A new user entry (malloc'd; NULL when out of memory); cidr may be NULL. */
user_entry *tp__user_entry_new(uint32_t realm, const char *user_id,
                               const tp_addr *cidr, int cidr_len);

/* The same, built in buf (cap bytes, aligned for user_entry): its size,
 * or 0 when it does not fit. */
size_t tp__user_entry_make(void *buf, size_t cap, uint32_t realm,
                           const char *user_id, const tp_addr *cidr,
                           int cidr_len);

/* Bytes of a user entry for user_id (with a client network or not), and
 * where the network starts (*cidr_at, when has_cidr). */
size_t tp__user_entry_size(const char *user_id, int has_cidr,
                           size_t *cidr_at);

/* Do two user entries say the same? */
int tp__user_entry_same(const user_entry *a, const user_entry *b);

/* A copy of u, or NULL when out of memory. */
user_entry *tp__user_entry_dup(const user_entry *u);

/* A new revoked-credential entry, or NULL when out of memory. */
revoked_entry *tp__revoked_entry_new(uint32_t realm, const char *username);

/* ---- store_table.c ---- */

/* An empty table for entries whose name starts at name_off, sized for
 * about expect entries; 0, or -1 when out of memory. */
int tp__table_init(tp__table *t, size_t name_off, size_t expect);

/* Reader (pinned) or writer: the entry (realm, name), or NULL. */
void *tp__table_find(const tp__table *t, uint32_t realm, const char *name);

/* Writer: publish e, replacing the entry with its key if any (which goes
 * to g, like a replaced slot array).  0, or -1 when out of memory (e is
 * then not published; the caller still owns it). */
int tp__table_put(tp__table *t, void *e, tp__garbage *g);

/* Writer: remove (realm, name) if present (the entry goes to g). */
int tp__table_del(tp__table *t, uint32_t realm, const char *name,
                  tp__garbage *g);

/* Writer: the next entry from *pos (start at 0), or NULL at the end. */
void *tp__table_next(const tp__table *t, size_t *pos);

/* Free the slots and every entry (nobody may read the table any more). */
void tp__table_free(tp__table *t, void (*free_ent)(void *));

/* Keep p for freeing after the next flush; -1 when out of memory. */
int tp__garbage_add(tp__garbage *g, void *p);

/* Free what g holds, after a grace period when st is not NULL (the table
 * was published). */
void tp__garbage_flush(tp_store *st, tp__garbage *g);
void tp__garbage_clear(tp__garbage *g);

void tp__overlay_free(overlay *o);

/* Is there a live overlay entry of kind for (realm, key)?  For
 * OV_REVOKE_USER, *before receives the latest revocation time. */
int tp__overlay_has(const overlay *o, enum ov_kind kind, const char *realm,
                    const char *key, int64_t *before);

/* Publish a new overlay (store thread only): see store_snapshot.c. */
void tp__overlay_update(tp_store *st, const ov_entry *add, int cancel_kind,
                        const char *cancel_realm, const char *cancel_key);

/* Enter the read side and return the current snapshot (and *ov), or NULL
 * with *status = TP_ESTALE when there is none or it is too old.  On
 * success the caller calls tp__unpin(st, *parity). */
snapshot *tp__pin(tp_store *st, overlay **ov, int *parity,
                  tp_status *status, tp_error *err);
void tp__unpin(tp_store *st, int parity);

/* ---- store_load.c: PostgreSQL ---- */

/* One printable line of the server's (or libpq's) error for messages. */
void tp__pg_message(PGconn *c, const PGresult *r, char *buf, size_t cap);

/* Run sql with n text parameters; *out is the caller's on TP_OK. */
tp_status tp__load_query(PGconn *c, const char *sql, int n,
                         const char *const *params, PGresult **out,
                         tp_error *err);

/* Load a complete snapshot in one REPEATABLE READ transaction; *out is
 * the caller's on TP_OK.  cl (may be NULL) receives where the change log
 * stands in that transaction. */
tp_status tp__snapshot_load(PGconn *c, const tp_jwt_options *jo,
                            snapshot **out, tp__chglog *cl, tp_error *err);

/* Realms with their secrets, rules, URIs, origins and JWT keys into s
 * (no tables), inside the caller's transaction. */
tp_status tp__realms_load(PGconn *c, const tp_jwt_options *jo, snapshot *s,
                          tp_error *err);

/* A batch of rows for tp__load_cursor's caller (arg is its own). */
typedef tp_status (*tp__rows_fn)(void *arg, PGresult *r, tp__garbage *g,
                                 tp_error *err);

/* Run sql through a cursor in the caller's transaction, handing cb the
 * rows a batch at a time; what a batch put in g is freed after it, after
 * a grace period when published (the store) is not NULL. */
tp_status tp__load_cursor(PGconn *c, const char *sql, tp__rows_fn cb,
                          void *arg, tp_store *published, tp_error *err);

/* The select list of a users row for tp__user_from_row ("u" = users). */
extern const char tp__user_columns[];

/* A user entry from row i of r (tp__user_columns), or NULL (no memory). */
user_entry *tp__user_from_row(PGresult *r, int i, uint32_t ri);

/* The same into buf (cap bytes, aligned): its size, or 0 if too small. */
size_t tp__user_row_make(void *buf, size_t cap, PGresult *r, int i,
                         uint32_t ri);

/* "a.b.c.d/n" or "x::/n" (PostgreSQL's cidr text) -> address, prefix
 * length; 0, or -1. */
int tp__parse_cidr(const char *text, tp_addr *a, int *len);

/* The same, with the users and revocations written to the base file w
 * (store_base.c) instead of private tables. */
tp_status tp__snapshot_load_into(PGconn *c, const tp_jwt_options *jo,
                                 snapshot **out, tp__chglog *cl,
                                 tp__basew *w, tp_error *err);

/* ---- store_base.c: one copy of the users per node (share_dir) ---- */

/* FNV-1a over a table key (store_table.c); bases hash alike. */
uint32_t tp__key_hash(uint32_t realm, const char *name);

/* Under the directory's lock: attach the node's base when it was built
 * at or after st->share_need, else read PostgreSQL in full into a new
 * base (*built = 1) and attach that.  *out: a snapshot caught up with
 * the change log, for the caller to publish (st->chg then says where it
 * stands).  Store thread, or tp_store_new. */
tp_status tp__base_refresh(tp_store *st, snapshot **out, int *built,
                           tp_error *err);

/* Has another store of the node written a newer base? */
int tp__base_newer(tp_store *st);

/* When b was built (Unix ns); 0 for NULL.  tp__base_now: the clock. */
int64_t tp__base_built_at(const tp__base *b);
int64_t tp__base_now(void);

void tp__base_free(tp__base *b);

/* Is map (len bytes) a whole base?  0, with users and revoked (fresh
 * tables) reading it and *nrealms its realm count; -1 when not. */
int tp__base_check(const void *map, size_t len, tp__table *users,
                   tp__table *revoked, size_t *nrealms);

/* Table lookups and puts below the tables (store_table.c calls them). */
void *tp__base_find(const tp__table *t, uint32_t realm, const char *name,
                    uint32_t h);
void *tp__basew_find(const tp__table *t, uint32_t realm, const char *name);
int tp__basew_put(tp__table *t, void *e);

/* ---- store_sync.c: a full read applied in place ---- */

/* Read the whole policy again in one transaction and apply the
 * differences to the snapshot in force entry by entry (no second copy);
 * entries the read did not find are removed.  *rebuild = 1 when the
 * realms are not the same ones (a full load must build new tables).
 * Store thread. */
tp_status tp__snapshot_sync(tp_store *st, int *rebuild, tp_error *err);

/* ---- store_delta.c: the change log ---- */

/* Inside a load's transaction: where the change log stands (cl->on = 0
 * when the schema has none). */
tp_status tp__chglog_start(PGconn *c, tp__chglog *cl, tp_error *err);

/* Read the changes since the last read and apply them to the snapshot in
 * force (store thread).  *full = 1 when only a full load will do (a hole
 * in the log, a truncate, a realm added or removed, too many changes).
 * TP_EDB when the read failed. */
tp_status tp__chglog_apply(tp_store *st, int *full, tp_error *err);

void tp__chglog_clear(tp__chglog *cl);

/* Inside the caller's REPEATABLE READ transaction: read the log from
 * *from and apply it to s, not yet published (a base being attached);
 * *from then says where s stands.  *full as tp__chglog_apply. */
tp_status tp__chglog_catch_up(tp_store *st, snapshot *s, tp__chglog *from,
                              int *full, tp_error *err);

/* ---- store_fanout.c: Redis fan-out (store thread) ---- */

/* Publish the changes from old to new other nodes must apply at once. */
void tp__publish_diff(tp_store *st, const snapshot *old, const snapshot *new);

/* The same for one user (old or nu may be NULL), one new revoked
 * credential, and one realm's kill switch. */
void tp__publish_user(tp_store *st, const realm_entry *r,
                      const user_entry *old, const user_entry *nu);
void tp__publish_revoked(tp_store *st, const realm_entry *r,
                         const char *username);
void tp__publish_realm(tp_store *st, const realm_entry *old,
                       const realm_entry *nu);

/* (Re)subscribe when due; 1 if a reload is wanted. */
int tp__sub_ensure(tp_store *st);

/* Read what the subscription has; 1 if a reload is wanted. */
int tp__sub_read(tp_store *st);

/* ---- store_usage.c: usage records (store thread) ---- */

/* ms until the queue should be written (0: now), or -1 when empty. */
int tp__usage_wait_ms(tp_store *st);

/* Write what is due; 0, or -1 when the connection is lost. */
int tp__usage_write(tp_store *st);

/* Drop what is still queued (tp_store_free), logging how much. */
void tp__usage_free_all(tp_store *st);

/* ---- store_counters.c: Redis counters ---- */

/* Count one issuance of user_id this minute; TP_ERATELIMIT over
 * issue_per_minute, TP_EREDIS per the fail mode. */
tp_status tp__rate_check(tp_store *st, const char *realm,
                         const char *user_id, int64_t now, tp_error *err);

/* ---- store_decide.c ---- */

/* Realm realm in pinned s: TP_EUNKNOWNREALM, TP_EREALMKILLED (snapshot
 * or overlay), or TP_OK with *ri set. */
tp_status tp__realm_lookup(const snapshot *s, const overlay *ov,
                           const char *realm, long *ri, tp_error *err);

/* ---- store_dump.c: the content of a store, for tests ---- */

/* Every realm (settings, byte sum, URIs), origin, user and revoked
 * credential of the snapshot in force, one sorted line each, in *out
 * (malloc'd; the caller frees it).  No secrets. */
tp_status tp__store_dump(tp_store *st, char **out, tp_error *err);

/* ---- store_static.c: a store without PostgreSQL (unit tests) ---- */

/* One realm's policy, as the rows of turnpolicy.realms and the tables
 * that name it would give it.  Arrays may be NULL when their count is 0. */
typedef struct tp__static_secret {
    const char *kid;
    const void *key;
    size_t len;
    tp_secret_state state;
} tp__static_secret;

typedef struct tp__static_peer {
    const char *net;          /* "a.b.c.d/n", "x::/n" or an address */
    tp_peer_action action;
} tp__static_peer;

typedef struct tp__static_jwt_key {
    const char *kid;          /* NULL or "" = the kid-less key */
    tp_jwt_alg alg;
    const void *key;
    size_t len;
} tp__static_jwt_key;

typedef struct tp__static_realm {
    const char *name;
    uint32_t default_ttl, max_ttl, clock_skew; /* 0 = the keyring's */
    int killed;
    tp_peer_action peer_default;
    int64_t user_quota, total_quota, max_bps; /* 0 = unlimited */
    int64_t user_budget, budget_period;       /* 0 = none */
    int64_t realm_budget;                     /* 0 = none */
    uint64_t realm_used;      /* bytes of all its users in the period */
    const tp__static_secret *secrets;
    size_t nsecrets;
    const void *legacy;       /* legacy secret, or NULL */
    size_t legacy_len;
    const char *const *hosts; /* pattern || path_prefix, as loaded */
    size_t nhosts;
    const tp__static_peer *peers;
    size_t npeers;
    const tp__static_jwt_key *jwt_keys;
    size_t njwt_keys;
    const char *const *urls;
    size_t nurls;
    const char *const *origins;
    size_t norigins;
} tp__static_realm;

typedef struct tp__static_user {
    const char *realm;
    const char *user_id;
    int disabled;
    int64_t revoked_before;   /* Unix seconds; 0 = never */
    int own_quota;            /* 1: user_quota is its own, else the realm's */
    int64_t user_quota;
    int own_budget;           /* 1: user_budget is its own */
    int64_t user_budget;
    uint64_t used;            /* bytes in the budget period */
    const char *client_cidr;  /* NULL = no binding */
} tp__static_user;

typedef struct tp__static_revoked {
    const char *realm;
    const char *username;
} tp__static_revoked;

typedef struct tp__static_policy {
    const tp__static_realm *realms;
    size_t nrealms;
    const tp__static_user *users;
    size_t nusers;
    const tp__static_revoked *revoked;
    size_t nrevoked;
} tp__static_policy;

/* Store options a static store honours (others have no meaning here). */
typedef struct tp__static_options {
    const tp_jwt_options *jwt;  /* NULL = the defaults */
    uint32_t max_staleness;     /* 0 = 30 s */
    uint32_t issue_per_minute;  /* > 0 needs Redis: none here */
    tp_fail_mode redis_fail_mode;
    int unloaded;               /* 1: no snapshot at all (TP_ESTALE) */
    int stale;                  /* 1: last confirmed beyond max_staleness */
} tp__static_options;

/*
 * A tp_store answering from policy p, built into the same snapshot
 * structures store_load.c builds from PostgreSQL (same orders, same
 * index, same keyrings), with no thread, no database and no Redis.  Free
 * with tp_store_free.  Returns NULL with err filled (TP_EINVAL for a row
 * the database would refuse: a duplicate realm or user, a row of an
 * unknown realm, a bad network; or the keyring's, rule set's or key
 * set's own status).
 */
tp_store *tp__store_new_static(const tp__static_policy *p,
                               const tp__static_options *o, tp_error *err);

#endif /* TP_STORE_INT_H */
