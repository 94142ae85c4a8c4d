/*
 * allocq.c - the allocation-counter worker: the shared per-user count of
 * live allocations in Redis (tp_store_alloc_batch), kept off the loop.
 *
 * Why a thread: the counter calls do blocking Redis I/O (up to 200 ms
 * each) and the loop answers coturn's key lookups, which must never wait
 * for Redis.  So the loop pushes acquires ("new"/"refreshed": lifetime +
 * slack) and releases ("deleted", lapsed, gone) onto a bounded queue
 * (mu/cv) and one worker thread runs them in pipelined batches; when the
 * queue is full an operation is dropped and counted, never waited for.
 * An acquire refused over quota (another node holds the user's quota)
 * hands the session id back to the loop (tpd_allocq_take_over_quota)
 * for the enforcer to cancel.
 *
 * Invariants: only the worker calls the store's counter functions; the
 * counters (tpd_alloc_counters) and the over-quota ids are written by
 * the worker and read by the loop, both under mu.  Releases that fail
 * because Redis is away are retried for a few seconds (a lost release
 * would count a dead session against the user's quota on every node
 * until its TTL); acquires are not: the next refresh acquires again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnpolicyd.h"

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
