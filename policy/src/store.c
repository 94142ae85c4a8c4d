/*
 * store.c - the policy store: a snapshot of the PostgreSQL policy held in
 * memory, kept current by a background thread, answering decisions.  This
 * file holds its lifecycle (tp_store_new, tp_store_free, reload, info)
 * and the store thread; store_int.h maps the other files.
 *
 * What: tp_store_new connects to PostgreSQL, loads a snapshot
 * (store_load.c: every realm with its secrets, host, peer and JWT rules,
 * every user and every revoked credential, in one REPEATABLE READ
 * transaction), and starts a thread that LISTENs on channel "turnpolicy"
 * and, on each notification and each heartbeat, applies what the change
 * log says changed (store_delta.c: schema 007's turnpolicy.changes); it
 * loads in full only when the log cannot say (store_delta.c lists when),
 * every reload_interval as a check, or on request.  The same thread keeps
 * the Redis subscription (store_fanout.c) and writes usage records
 * (store_usage.c).
 *
 * Why a snapshot: decisions sit on coturn's authentication path and on
 * nginx's request path, where no I/O may block.  A decision pins the
 * current snapshot and overlay lock-free and reads them
 * (store_snapshot.c).  A change to a user or a credential replaces its
 * entry in a table (store_table.c); a change to a realm publishes a new
 * snapshot over the same tables; a full load builds a complete new
 * snapshot off to the side.  tp__store_publish swaps the pointer and
 * frees the old one after a grace period.  Only the store thread (and
 * tp_store_free, after joining it) changes what readers see.
 *
 * Freshness: the thread records the last moment it knew the snapshot was
 * current (a successful load or change-log read, or - on a schema without
 * the change log - a heartbeat round trip with no change pending).
 * Decisions refuse with TP_ESTALE once that is older than max_staleness: PostgreSQL down means "decide from the last snapshot for
 * a bounded time, then fail closed" (DESIGN.md).  NOTIFY does not reach
 * hot-standby replicas; with no_listen the store reads the change log on
 * each heartbeat, and Redis fan-out from a node that listens brings
 * revocations sooner.
 *
 * Threads: fields of struct tp_store are guarded by mu or uq_mu, atomic,
 * or owned by the thread, as store_int.h says.  The connection string is
 * wiped when freed (it may hold a password).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define READ_GAP_MS 25      /* between change-log reads (read_gap_ms) */
#define STANDBY_RELOAD_S 60 /* full loads on a hot standby (store_delta.c) */
#define SHARE_OWN_MIN 16384 /* a store's own entries over a base before it
                               takes a new base: this + an eighth of it */

void
tp__slog(const tp_store *st, tp_log_level lvl, const char *fmt, ...)
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
    tp__store_changed(st);
    pthread_mutex_lock(&st->mu);
    st->generation++;
    pthread_mutex_unlock(&st->mu);
    mark_current(st, 1);
    tp__publish_diff(st, old, s);
    tp__synchronize_readers(st);
    if (old != NULL && old->tab == s->tab)
        old->tab = NULL; /* the new snapshot carries the tables on */
    tp__snapshot_free(old);
}

static void
lost(tp_store *st, const char *why)
{
    if (!st->failing)
        tp__slog(st, TP_LOG_ERROR, "policy store: %s; deciding from the last "
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

/* Drop the notifications libpq has already read; returns 1 if there were
 * any.  A query's reply can carry them (PostgreSQL sends what arrived
 * during a transaction before its ReadyForQuery), and once in libpq's
 * queue they no longer make the socket readable: poll() would not wake
 * for them. */
static int
take_notifies(PGconn *c)
{
    PGnotify *nf;
    int any = 0;

    while ((nf = PQnotifies(c)) != NULL) {
        any = 1;
        PQfreemem(nf);
    }
    return any;
}

/* The JWT claim checks the store was given (NULL: the defaults). */
static const tp_jwt_options *
store_jwt(const tp_store *st)
{
    return st->jwt_set ? &st->jwt : NULL;
}

/* ms until the change log may be read again after the read at last:
 * notifications closer together than READ_GAP_MS (a busy node's usage
 * batches, a provisioning storm) share one read. */
static int
read_gap_ms(const struct timespec *last)
{
    double since = mono_since(last) * 1000;

    return since >= READ_GAP_MS ? 0 : (int)(READ_GAP_MS - since) + 1;
}

int
tp__store_stopping(tp_store *st)
{
    int stop;

    pthread_mutex_lock(&st->mu);
    stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    return stop;
}

/* With share_dir: the node's base (store_base.c), written first when
 * none recent enough is there (*built).  A schema without the change log
 * cannot keep a base current: the store then holds its users itself. */
static tp_status
share_load(tp_store *st, snapshot **s, int *built, tp_error *err)
{
    PGresult *r = NULL;
    tp_status status;
    int has_log;

    status = tp__load_query(st->conn, "SELECT to_regclass("
                            "'turnpolicy.changes') IS NOT NULL", 0, NULL, &r,
                            err);
    if (status != TP_OK)
        return status;
    has_log = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (has_log) {
        status = tp__base_refresh(st, s, built, err);
        if (status == TP_OK)
            st->share_need = 0;
        return status;
    }
    tp__slog(st, TP_LOG_WARN, "policy store: share_dir %s not used: the "
             "schema has no change log (migrate to 007); each process "
             "holds its own users", st->share_dir);
    free(st->share_dir);
    st->share_dir = NULL;
    *built = 1;
    return tp__snapshot_load(st->conn, store_jwt(st), s, &st->chg, err);
}

/* A full read is wanted that a base built at or after at can answer. */
static void
share_want(tp_store *st, int64_t at)
{
    if (at > st->share_need)
        st->share_need = at;
}

/* With share_dir: is it time to take another base - a newer one another
 * store of the node wrote, or a new one because this store's own
 * changes have grown to a good part of the base? */
static int
share_due(tp_store *st)
{
    const snapshot *s = atomic_load(&st->cur);
    const tp__tables *t;
    int64_t built;

    if (st->share_dir == NULL || s == NULL || s->tab == NULL ||
        s->tab->base == NULL)
        return 0;
    t = s->tab;
    built = tp__base_built_at(t->base);
    if (tp__base_newer(st) ||
        atomic_load(&t->users.used) > t->users.bn / 8 + SHARE_OWN_MIN) {
        share_want(st, built + 1);
        return 1;
    }
    return 0;
}

/* A full read: applied in place to the tables in force when there are
 * any and the realms are the same ones (store_sync.c, *s = NULL), else a
 * full load into new tables (*s, for the caller to publish). */
static tp_status
sync_or_load(tp_store *st, snapshot **s, int *full_read, tp_error *err)
{
    int rebuild = 0;
    tp_status status;

    *s = NULL;
    *full_read = 1;
    if (st->share_dir != NULL)
        return share_load(st, s, full_read, err);
    if (atomic_load(&st->cur) != NULL) {
        status = tp__snapshot_sync(st, &rebuild, err);
        if (status != TP_OK || !rebuild)
            return status;
    }
    return tp__snapshot_load(st->conn, store_jwt(st), s, &st->chg, err);
}

/* The usage records taken off the queue so far. */
static uint64_t
usage_done(tp_store *st)
{
    uint64_t done;

    pthread_mutex_lock(&st->uq_mu);
    done = st->uq_done;
    pthread_mutex_unlock(&st->uq_mu);
    return done;
}

/* Apply the change log; 0 when the snapshot is current, 1 when a full
 * load is needed, -1 when the connection was lost. */
static int
read_changes(tp_store *st)
{
    uint64_t done = usage_done(st);
    tp_error err;
    int full = 0;

    if (tp__chglog_apply(st, &full, &err) != TP_OK) {
        if (PQstatus(st->conn) != CONNECTION_OK) {
            lost(st, err.message);
            return -1;
        }
        if (!st->failing)
            tp__slog(st, TP_LOG_ERROR, "policy store: reading changes: %s; "
                     "loading in full", err.message);
        return 1;
    }
    if (full)
        return 1;
    /* Usage rows committed before the read are in its sums now. */
    atomic_store(&st->usage_included, done);
    mark_current(st, 1);
    if (st->failing)
        tp__slog(st, TP_LOG_INFO, "policy store: recovered");
    st->failing = 0;
    return 0;
}

static void *
store_thread(void *arg)
{
    tp_store *st = arg;
    struct timespec last_load, last_beat, last_stat;
    int backoff = BACKOFF_MIN_MS, dirty = 0, sub_ready = 0, due = 0;
    int first = atomic_load(&st->cur) == NULL; /* background_start */
    uint64_t done;
    snapshot *s;
    tp_error err;
    int full_read;

    clock_gettime(CLOCK_MONOTONIC, &last_load);
    last_beat = last_stat = last_load;
    for (;;) {
        /* (Re)subscribing may have missed fan-out messages: the change
         * log has them, or a full load. */
        if (tp__sub_ensure(st))
            due = 1;
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
                    tp__slog(st, TP_LOG_ERROR, "policy store: %s",
                             err.message);
                st->failing = 1;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            /* Changes made while away are in the change log. */
            due = 1;
        } else {
            int ms = st->sub != NULL || st->redis == NULL ? HEARTBEAT_MS
                                                          : 100;
            int uw = tp__usage_wait_ms(st);

            if (uw >= 0 && uw < ms)
                ms = uw;
            /* Notifications libpq read with our own queries' replies are
             * in its queue already: the socket will not wake us for them
             * (take_notifies). */
            if (take_notifies(st->conn))
                due = 1;
            if (due)
                ms = read_gap_ms(&last_beat);
            if (wait_events(st, ms, &sub_ready))
                break;
        }
        if (sub_ready && tp__sub_read(st))
            due = 1;
        if (!PQconsumeInput(st->conn) || PQstatus(st->conn) != CONNECTION_OK) {
            lost(st, "connection to PostgreSQL lost");
            continue;
        }
        if (take_notifies(st->conn))
            due = 1;
        if (tp__usage_wait_ms(st) == 0 && tp__usage_write(st) != 0) {
            lost(st, "connection to PostgreSQL lost while writing usage");
            continue;
        }
        pthread_mutex_lock(&st->mu);
        if (st->reload_requested) {
            dirty = 1;
            st->reload_requested = 0;
            share_want(st, tp__base_now());
        }
        pthread_mutex_unlock(&st->mu);
        if (mono_since(&last_load) >=
            (st->chg.standby && st->reload_interval > STANDBY_RELOAD_S
                 ? STANDBY_RELOAD_S
                 : st->reload_interval)) {
            dirty = 1;
            /* a base another store built in the last half interval is
             * the check this one wanted */
            share_want(st, tp__base_now() -
                               (int64_t)st->reload_interval * 500000000);
        }
        if (!dirty && mono_since(&last_stat) * 1000 >= HEARTBEAT_MS) {
            clock_gettime(CLOCK_MONOTONIC, &last_stat);
            if (share_due(st))
                dirty = 1;
        }
        /* The change log, on a notification and on every heartbeat (a
         * missed notification costs at most one heartbeat). */
        if (!dirty && st->chg.on && atomic_load(&st->cur) != NULL &&
            ((due && read_gap_ms(&last_beat) == 0) ||
             mono_since(&last_beat) * 1000 >= HEARTBEAT_MS)) {
            int rc = read_changes(st);

            if (rc < 0)
                continue;
            clock_gettime(CLOCK_MONOTONIC, &last_beat);
            due = 0;
            if (rc > 0) {
                dirty = 1;
                share_want(st, tp__base_now());
            } else {
                continue;
            }
        }
        if (due && !st->chg.on) {
            dirty = 1; /* a schema without the change log */
            due = 0;
        }
        if (dirty) {
            /* Usage rows committed before this load are in its sums. */
            done = usage_done(st);
            if (sync_or_load(st, &s, &full_read, &err) != TP_OK) {
                if (tp__store_stopping(st))
                    break;
                if (PQstatus(st->conn) != CONNECTION_OK) {
                    lost(st, err.message);
                } else if (!st->failing) {
                    tp__slog(st, TP_LOG_ERROR, "policy store: %s; keeping the "
                             "previous snapshot", err.message);
                    st->failing = 1;
                }
                continue;
            }
            if (s != NULL && atomic_load(&st->cur) == NULL)
                tp__slog(st, TP_LOG_INFO, "policy store loaded: %zu realms, "
                         "%zu users%s", s->nrealms,
                         (size_t)atomic_load(&s->tab->users.count),
                         s->tab->base != NULL ? " (the node's shared copy)"
                                              : "");
            if (s != NULL) {
                tp__store_publish(st, s);
                st->mark = 0; /* new tables: their entries carry 0 */
            }
            /* After the swap: a reader in between counts a record twice
             * (refuses early) rather than not at all. */
            atomic_store(&st->usage_included, done);
            mark_current(st, 1);
            if (full_read)
                atomic_fetch_add(&st->full_loads, 1);
            dirty = 0;
            due = 0;
            clock_gettime(CLOCK_MONOTONIC, &last_load);
            last_beat = last_load;
            if (st->failing)
                tp__slog(st, TP_LOG_INFO, "policy store: recovered; snapshot "
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
                if (take_notifies(st->conn))
                    dirty = 1;
                else
                    mark_current(st, 1);
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

/* A share_dir must be this user's alone: a base file there is trusted
 * like the store's own memory. */
static tp_status
share_dir_check(const char *dir, tp_error *err)
{
    struct stat sb;

    if (dir[0] != '/' || strlen(dir) > 3000)
        return tp__fail(err, TP_EINVAL, "share_dir: an absolute directory "
                        "path is required");
    if (stat(dir, &sb) != 0)
        return tp__fail(err, TP_EINVAL, "share_dir %s: %s", dir,
                        strerror(errno));
    if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
        (sb.st_mode & 022) != 0)
        return tp__fail(err, TP_EINVAL, "share_dir %s: must be a directory "
                        "owned by this user (uid %u) and writable by no one "
                        "else", dir, (unsigned)geteuid());
    return TP_OK;
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
    st->change_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st->change_fd < 0) {
        tp__fail(err, TP_EIO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    st->database = strdup(opts->database);
    st->max_staleness = opts->max_staleness ? opts->max_staleness : 30;
    st->reload_interval = opts->reload_interval ? opts->reload_interval
                                                : 600;
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
    if (opts->share_dir != NULL && share_dir_check(opts->share_dir, err) !=
                                       TP_OK)
        goto fail;
    if (opts->share_dir != NULL &&
        (st->share_dir = strdup(opts->share_dir)) == NULL) {
        tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    if (!opts->background_start) {
        int full_read = 1;

        st->conn = store_connect(st, err);
        if (st->conn == NULL)
            goto fail;
        if (sync_or_load(st, &s, &full_read, err) != TP_OK)
            goto fail;
        tp__store_publish(st, s);
        if (full_read)
            atomic_fetch_add(&st->full_loads, 1);
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
    if (st->change_fd >= 0)
        close(st->change_fd);
    tp__usage_free_all(st);
    tp__chglog_clear(&st->chg);
    free(st->share_dir);
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

void
tp__store_changed(tp_store *st)
{
    uint64_t one = 1;
    ssize_t r;

    atomic_fetch_add(&st->changes, 1);
    if (st->change_fd >= 0) {
        /* never blocks: a full counter already wakes the watcher */
        r = write(st->change_fd, &one, sizeof(one));
        (void)r;
    }
}

int
tp_store_change_fd(tp_store *st)
{
    return st != NULL ? st->change_fd : -1;
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
            info->users = s->tab != NULL
                              ? atomic_load(&s->tab->users.count)
                              : 0;
        }
        info->overlay = o != NULL ? o->n : 0;
        read_leave(st, p);
    }
    info->changes = atomic_load(&st->changes);
    info->full_loads = atomic_load(&st->full_loads);
    info->change_reads = atomic_load(&st->deltas);
    pthread_mutex_lock(&st->uq_mu);
    info->usage_pending = st->uq_len;
    info->usage_written = st->uq_written;
    pthread_mutex_unlock(&st->uq_mu);
    pthread_mutex_lock(&st->mu);
    pthread_mutex_unlock(&st->mu);
}
