/*
 * redis.c - the store's Redis connections: one for commands (counters,
 * publishing), shared by threads under a mutex, and one subscriber owned
 * by the store thread.
 *
 * Why Redis: PostgreSQL is the source of truth, but NOTIFY does not reach
 * nodes reading a hot-standby replica, and live counters shared between
 * coturn nodes must be fast.  Redis carries both; everything written has
 * a TTL so nothing leaks when a node dies.
 *
 * Failure: a command on a broken connection fails at once (TP_EREDIS)
 * and the connection is retried no sooner than the backoff allows
 * (100 ms doubling to 5 s), so a dead Redis costs callers a failed check,
 * not a connect timeout per call.  The first failure and the recovery are
 * logged once each; the password is never logged.
 *
 * hiredis 0.14.1 (Debian 12): no redisConnectWithOptions; commands are
 * sent argv-style only (no format strings with untrusted data).
 */
#include "tp_redis.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct tp__redis {
    char *host;
    int port;
    char *password;      /* wiped on free */
    int timeout_ms;
    tp_log_fn log;
    void *log_ud;

    pthread_mutex_t mu;
    redisContext *c;     /* guarded by mu */
    struct timespec next_try; /* guarded by mu */
    int backoff_ms;      /* guarded by mu */
    int failing;         /* guarded by mu */
};

static void
rlog(const tp__redis *r, tp_log_level lvl, const char *fmt, ...)
    TP__PRINTF(3, 4);

static void
rlog(const tp__redis *r, tp_log_level lvl, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    if (r->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->log(r->log_ud, lvl, msg);
}

tp__redis *
tp__redis_new(const char *host, int port, const char *password,
              int timeout_ms, tp_log_fn log, void *log_ud)
{
    tp__redis *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->host = strdup(host);
    r->password = password != NULL ? strdup(password) : NULL;
    if (r->host == NULL || (password != NULL && r->password == NULL) ||
        pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->host);
        if (r->password != NULL)
            tp__wipe(r->password, strlen(r->password));
        free(r->password);
        free(r);
        return NULL;
    }
    r->port = port;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 200;
    r->log = log;
    r->log_ud = log_ud;
    r->backoff_ms = BACKOFF_MIN_MS;
    return r;
}

void
tp__redis_free(tp__redis *r)
{
    if (r == NULL)
        return;
    if (r->c != NULL)
        redisFree(r->c);
    if (r->password != NULL) {
        tp__wipe(r->password, strlen(r->password));
        free(r->password);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->host);
    free(r);
}

/* Connect and authenticate; NULL with err filled on failure. */
redisContext *
tp__redis_connect(const tp__redis *r, tp_error *err)
{
    struct timeval tv;
    redisContext *c;
    redisReply *rep;

    tv.tv_sec = r->timeout_ms / 1000;
    tv.tv_usec = (r->timeout_ms % 1000) * 1000;
    c = redisConnectWithTimeout(r->host, r->port, tv);
    if (c == NULL || c->err) {
        tp__fail(err, TP_EREDIS, "cannot connect to Redis at %s:%d: %s",
                 r->host, r->port, c != NULL ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK ||
        redisEnableKeepAlive(c) != REDIS_OK) {
        tp__fail(err, TP_EREDIS, "cannot configure the Redis connection");
        redisFree(c);
        return NULL;
    }
    if (r->password != NULL) {
        const char *argv[2] = {"AUTH", r->password};
        size_t lens[2] = {4, strlen(r->password)};

        rep = redisCommandArgv(c, 2, argv, lens);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            tp__fail(err, TP_EREDIS, "Redis at %s:%d refused AUTH",
                     r->host, r->port);
            freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

static int
due(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec ||
           (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void
schedule_retry(tp__redis *r)
{
    clock_gettime(CLOCK_MONOTONIC, &r->next_try);
    r->next_try.tv_nsec += (long)(r->backoff_ms % 1000) * 1000000L;
    r->next_try.tv_sec += r->backoff_ms / 1000 +
                          r->next_try.tv_nsec / 1000000000L;
    r->next_try.tv_nsec %= 1000000000L;
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : r->backoff_ms * 2;
}

/* With r->mu held: make sure r->c is up.  0, or -1 (err filled, mu
 * still held). */
static int
ensure_connected(tp__redis *r, tp_error *err)
{
    if (r->c != NULL)
        return 0;
    if (!due(&r->next_try)) {
        tp__fail(err, TP_EREDIS, "Redis at %s:%d is unreachable "
                 "(retrying)", r->host, r->port);
        return -1;
    }
    r->c = tp__redis_connect(r, err);
    if (r->c == NULL) {
        if (!r->failing)
            rlog(r, TP_LOG_ERROR, "%s", err != NULL ? err->message
                                                    : "Redis is down");
        r->failing = 1;
        schedule_retry(r);
        return -1;
    }
    if (r->failing)
        rlog(r, TP_LOG_INFO, "Redis at %s:%d is back", r->host, r->port);
    r->failing = 0;
    r->backoff_ms = BACKOFF_MIN_MS;
    return 0;
}

/* With r->mu held: the connection broke; log once, drop it. */
static void
broken(tp__redis *r, tp_error *err)
{
    tp__fail(err, TP_EREDIS, "Redis at %s:%d: %s", r->host, r->port,
             r->c->errstr[0] != '\0' ? r->c->errstr : "no reply");
    if (!r->failing)
        rlog(r, TP_LOG_ERROR, "Redis at %s:%d: %s", r->host, r->port,
             r->c->errstr);
    r->failing = 1;
    redisFree(r->c);
    r->c = NULL;
    schedule_retry(r);
}

tp_status
tp__redis_pipeline(tp__redis *r, size_t n, const int *argc,
                   const char *const *const *argv,
                   const size_t *const *lens, redisReply **replies,
                   tp_error *err)
{
    size_t i, got = 0;
    void *rep;

    for (i = 0; i < n; i++)
        replies[i] = NULL;
    if (n == 0)
        return TP_OK;
    pthread_mutex_lock(&r->mu);
    if (ensure_connected(r, err) != 0) {
        pthread_mutex_unlock(&r->mu);
        return TP_EREDIS;
    }
    for (i = 0; i < n; i++) {
        if (redisAppendCommandArgv(r->c, argc[i], (const char **)argv[i],
                                   lens[i]) != REDIS_OK)
            goto fail;
    }
    for (got = 0; got < n; got++) {
        rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK || rep == NULL)
            goto fail;
        replies[got] = rep;
    }
    pthread_mutex_unlock(&r->mu);
    return TP_OK;

fail:
    /* Replies still owed would answer the next caller's commands: the
     * connection cannot be used again. */
    broken(r, err);
    pthread_mutex_unlock(&r->mu);
    for (i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    return TP_EREDIS;
}

redisReply *
tp__redis_cmd(tp__redis *r, int argc, const char **argv, const size_t *lens,
              tp_error *err)
{
    redisReply *rep = NULL;

    pthread_mutex_lock(&r->mu);
    if (ensure_connected(r, err) != 0) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    rep = redisCommandArgv(r->c, argc, argv, lens);
    if (rep == NULL) {
        broken(r, err);
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (rep->type == REDIS_REPLY_ERROR) {
        char shown[120];

        tp__printable(shown, sizeof(shown), rep->str, 100);
        tp__fail(err, TP_EREDIS, "Redis replied: %s", shown);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}
