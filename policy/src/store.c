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
#include "store_int.h"

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

void
tp__store_log(const tp_store *st, tp_log_level lvl, const char *fmt, ...)
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

/* The connection string may hold a password. */
static void
free_conninfo(char *s)
{
    if (s != NULL)
        tp__wipe(s, strlen(s));
    free(s);
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
        tp__pg_message(c, NULL, msg, sizeof(msg));
        tp__fail(err, TP_EDB, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, store_notice, st);
    if (!st->no_listen) {
        PGresult *r = PQexec(c, "LISTEN turnpolicy");

        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
            tp__pg_message(c, r, msg, sizeof(msg));
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
void
tp__store_publish(tp_store *st, snapshot *s)
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
        tp__publish_diff(st, old, s);
    tp__synchronize_readers(st);
    tp__snapshot_free(old);
}

static void
lost(tp_store *st, const char *why)
{
    if (!st->failing)
        tp__store_log(st, TP_LOG_ERROR, "policy store: %s; deciding from the last "
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
        if (tp__sub_ensure(st))
            dirty = 1;
        if (st->conn == NULL) {
            /* (a background start tries at once, then backs off) */
            if (wait_events(st, first ? 0 : backoff, &sub_ready))
                break;
            first = 0;
            if (sub_ready)
                tp__sub_read(st);
            st->conn = store_connect(st, &err);
            if (st->conn == NULL) {
                if (!st->failing)
                    tp__store_log(st, TP_LOG_ERROR, "policy store: %s", err.message);
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
            int due = tp__usage_wait_ms(st);

            if (due >= 0 && due < ms)
                ms = due;
            if (wait_events(st, ms, &sub_ready))
                break;
        }
        if (sub_ready && tp__sub_read(st))
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
        if (tp__usage_wait_ms(st) == 0 && tp__usage_write(st) != 0) {
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
            if (tp__snapshot_load(st->conn, store_jwt(st), &s, &err) != TP_OK) {
                if (PQstatus(st->conn) != CONNECTION_OK) {
                    lost(st, err.message);
                } else if (!st->failing) {
                    tp__store_log(st, TP_LOG_ERROR, "policy store: %s; keeping the "
                         "previous snapshot", err.message);
                    st->failing = 1;
                }
                continue;
            }
            if (atomic_load(&st->cur) == NULL)
                tp__store_log(st, TP_LOG_INFO, "policy store loaded: %zu realms, "
                     "%zu users", s->nrealms, s->nusers);
            tp__store_publish(st, s);
            /* After the swap: a reader in between counts a record twice
             * (refuses early) rather than not at all. */
            atomic_store(&st->usage_included, done);
            mark_current(st, 1);
            dirty = 0;
            clock_gettime(CLOCK_MONOTONIC, &last_load);
            last_beat = last_load;
            if (st->failing)
                tp__store_log(st, TP_LOG_INFO, "policy store: recovered; snapshot "
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
        if (tp__snapshot_load(st->conn, store_jwt(st), &s, err) != TP_OK)
            goto fail;
        tp__store_publish(st, s);
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

void
tp__store_wake(tp_store *st)
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
        tp__store_wake(st);
        pthread_join(st->thread, NULL);
    }
    PQfinish(st->conn);
    if (st->sub != NULL)
        redisFree(st->sub);
    tp__snapshot_free(atomic_load(&st->cur));
    tp__overlay_free(atomic_load(&st->ov));
    tp__redis_free(st->redis);
    if (st->wake[0] >= 0)
        close(st->wake[0]);
    if (st->wake[1] >= 0)
        close(st->wake[1]);
    tp__usage_free_all(st);
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
    tp__store_wake(st);
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

tp_status
tp__realm_lookup(const snapshot *s, const overlay *ov, const char *realm,
             long *ri, tp_error *err)
{
    char shown[48];

    *ri = realm != NULL ? tp__find_realm(s, realm) : -1;
    if (*ri < 0) {
        tp__printable(shown, sizeof(shown), realm, 40);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm \"%s\" is not "
                        "provisioned", shown);
    }
    if (s->realms[*ri].killed || tp__overlay_has(ov, OV_KILL, realm, "", NULL))
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
    tp_status status = tp__realm_lookup(s, ov, realm, ri, err);
    int64_t before = 0;

    if (status != TP_OK)
        return status;
    *ue = user_id != NULL ? tp__find_user(s, (size_t)*ri, user_id) : NULL;
    if (*ue == NULL)
        return tp__fail(err, TP_EUNKNOWNUSER, "user %s is not provisioned "
                        "in realm %s", user_id != NULL ? user_id : "",
                        realm);
    if (!(*ue)->active || tp__overlay_has(ov, OV_DISABLE, realm, user_id, NULL))
        return tp__fail(err, TP_EDISABLED, "user %s of realm %s is "
                        "disabled", user_id, realm);
    if (issued <= 0)
        return TP_OK;
    if (!tp__overlay_has(ov, OV_REVOKE_USER, realm, user_id, &before) ||
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

    status = tp__realm_lookup(s, ov, realm, &ri, err);
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
    if (tp__is_revoked(s, ri, username) ||
        tp__overlay_has(ov, OV_REVOKE_CRED, r->name, username, NULL))
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_credential_verify(s->realms[ri].kr, username, password,
                                      now, &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, username, &u, err);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_credential_key(s->realms[ri].kr, username, now, hexkey,
                                   &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, username, &u, err);
    tp__unpin(st, parity);
    if (status != TP_OK && hexkey != NULL)
        tp__wipe(hexkey, TP_LTKEY_HEX_LEN + 1);
    if (status == TP_OK && parsed != NULL)
        *parsed = u;
    return status;
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
        s = tp__pin(st, &ov, &parity, &status, err);
        if (s == NULL)
            return status;
        status = issue_check(s, ov, realm, user_id, &ri, &ue, err);
        tp__unpin(st, parity);
        if (status == TP_OK)
            status = tp__rate_check(st, realm, user_id, now, err);
        if (status != TP_OK)
            return status;
    }
    s = tp__pin(st, &ov, &parity, &status, err);
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
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_peerset_check(s->realms[ri].ps, addr, dec, err);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_hostlist_check(s->realms[ri].hl, host, port, path,
                                   match, err);
    /* The match's rule text points into the snapshot, which may be freed
     * once unpinned: do not hand it out. */
    if (match != NULL)
        match->rule = NULL;
    tp__unpin(st, parity);
    return status;
}

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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? tp__find_realm(s, realm) : -1;
    if (ri < 0) {
        tp__unpin(st, parity);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    }
    r = &s->realms[ri];
    out->max_bps = r->max_bps;
    out->user_quota = r->user_quota;
    out->total_quota = r->total_quota;
    out->default_ttl = r->default_ttl;
    out->max_ttl = r->max_ttl;
    out->killed = r->killed || tp__overlay_has(ov, OV_KILL, r->name, "", NULL);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    for (i = 0; i < s->nrealms && status == TP_OK; i++)
        status = fn(ud, s->realms[i].name);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
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
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = tp__find_realm(s, realm);
    if (ri < 0) {
        status = tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    } else {
        key.origin = (char *)origin;
        key.realm = (size_t)ri;
        if (s->norigins == 0 ||
            bsearch(&key, s->origins, s->norigins, sizeof(*s->origins),
                    tp__cmp_origin) == NULL)
            status = tp__fail(err, TP_EORIGIN, "origin is not allowed for "
                              "realm %s", realm);
    }
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? tp__find_realm(s, realm) : -1;
    if (ri < 0)
        status = tp__fail(err, TP_EUNKNOWNREALM, "realm is not provisioned");
    else
        status = tp_peerset_export_coturn(s->realms[ri].ps, which, fn, ud,
                                          err);
    tp__unpin(st, parity);
    return status;
}

/* Find realm (the kill switch honoured, as everywhere) and user under a
 * pin; the caller unpins. */
static tp_status
realm_user(const snapshot *s, const overlay *ov, const char *realm,
           const char *user_id, long *ri, const user_entry **ue,
           tp_error *err)
{
    tp_status status = tp__realm_lookup(s, ov, realm, ri, err);

    if (status != TP_OK)
        return status;
    *ue = user_id != NULL ? tp__find_user(s, (size_t)*ri, user_id) : NULL;
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
    s = tp__pin(st, &ov, &parity, &status, err);
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
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK && ue->has_cidr &&
        !cidr_contains(&ue->cidr, ue->cidr_len, client))
        status = tp__fail(err, TP_ECLIENTADDR, "user %s of realm %s may "
                          "only connect from its bound network", user_id,
                          realm);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *quota = quota_of(&s->realms[ri], ue);
        tp__ok(err);
    }
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *limit = budget_limit(&s->realms[ri], ue);
        *used = ue->used;
        tp__ok(err);
    }
    tp__unpin(st, parity);
    return status;
}

/* The realm claim of a token, before verification: only to choose the
 * key set.  0 and name filled, or -1. */
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
        j = json_loadb((const char *)buf, (size_t)n, 0, &jerr);
        c = j != NULL ? json_object_get(j, claim) : NULL;
        v = c != NULL ? json_string_value(c) : NULL;
        if (v != NULL && tp__strlcpy(name, v, cap) == 0)
            rc = 0;
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

        if (unverified_realm(token, len, claim, name, sizeof(name)) != 0)
            return tp__fail(err, TP_EUNKNOWNREALM, "token names no realm "
                            "(claim \"%s\")", claim);
        realm = name;
    }
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_jwt_verify(s->realms[ri].jk, token, len, now, &cl, err);
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    ri = realm != NULL ? tp__find_realm(s, realm) : -1;
    if (ri < 0) {
        tp__unpin(st, parity);
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
    tp__unpin(st, parity);
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
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = subject_checks(s, ov, realm, user_id, issued_at, &ri, &ue,
                            err);
    tp__unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}
