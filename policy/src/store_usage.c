/*
 * store_usage.c - usage records of finished sessions, queued in memory
 * and written to turnpolicy.usage by the store thread.
 *
 * What: tp_store_usage_record validates a record and appends it to a
 * bounded queue (usage_queue_max; TP_EBUSY beyond) without any I/O; the
 * store thread writes the queue in batches of up to USAGE_BATCH rows, one
 * INSERT of unnested arrays per batch, when a batch is full, when its
 * first record has waited USAGE_DELAY_MS, or when tp_store_usage_flush
 * asks.  A refused batch is retried row by row so only the refused row
 * is dropped; a lost connection puts the rows back.
 *
 * Invariants: records leave the queue in order; uq_done counts those
 * taken off for good, which lets the snapshot say which records its
 * budget sums include (tp_store_usage_included).  Every field is checked
 * for printable bytes before it is queued.
 *
 * Threads: the queue is guarded by uq_mu; any thread records, the store
 * thread alone writes.  Workload: one record per finished TURN session;
 * PostgreSQL sees one statement per batch, not one per session.
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -1 when nothing is queued, 0 when the queue is due to be written (a
 * batch is full, its first record waited USAGE_DELAY_MS, or a flush
 * waits), else the ms until it is.  Records are written in batches so
 * that PostgreSQL sees one statement per batch, not a round trip per
 * finished session. */
int
tp__usage_wait_ms(tp_store *st)
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

#define USAGE_INSERT_BATCH                                                  \
    "INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, "     \
    "started_at, ended_at, bytes_in, bytes_out, client_addr) SELECT n, s, " \
    "r, u, to_timestamp(a), to_timestamp(b), i, o, c FROM "                \
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], "              \
    "$5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], "             \
    "$9::inet[]) AS t(n, s, r, u, a, b, i, o, c)"

/* INSERT a whole batch in one statement (arrays unnested); resend: with
 * ON CONFLICT DO NOTHING, else plain (PostgreSQL skips the speculative
 * insertion: about a tenth of its CPU per row).  0 done (*written rows,
 * resends not counted), 1 refused (the caller finds the row by row), 3
 * refused because a row is there already (a plain INSERT of a resent
 * batch: send it again with resend), -1 the connection broke. */
static int
usage_insert_batch(tp_store *st, const usage_rec *batch, size_t *written,
                   int resend)
{
    tp__strbuf col[9];
    const char *v[9], *state;
    char num[24];
    const usage_rec *r;
    PGresult *res;
    int i, rc = 1;

    *written = 0;
    memset(col, 0, sizeof(col));
    for (r = batch; r != NULL; r = r->next) {
        int first = r == batch;

        tp__sb_elem(&col[0], r->node, first);
        tp__sb_elem(&col[1], r->session, first);
        tp__sb_elem(&col[2], r->realm, first);
        tp__sb_elem(&col[3], r->user, first);
        snprintf(num, sizeof(num), "%" PRId64, r->started);
        tp__sb_elem(&col[4], num, first);
        snprintf(num, sizeof(num), "%" PRId64, r->ended);
        tp__sb_elem(&col[5], num, first);
        snprintf(num, sizeof(num), "%" PRIu64, r->bytes_in);
        tp__sb_elem(&col[6], num, first);
        snprintf(num, sizeof(num), "%" PRIu64, r->bytes_out);
        tp__sb_elem(&col[7], num, first);
        tp__sb_elem(&col[8], r->client[0] != '\0' ? r->client : NULL, first);
    }
    for (i = 0; i < 9; i++) {
        tp__sb_add(&col[i], "}", 1);
        if (col[i].oom)
            goto out;
        v[i] = col[i].p;
    }
    res = PQexecParams(st->conn,
                       resend ? USAGE_INSERT_BATCH
                                " ON CONFLICT (node, session_id) DO NOTHING"
                              : USAGE_INSERT_BATCH,
                       9, NULL, v, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        *written = strtoull(PQcmdTuples(res), NULL, 10);
        rc = 0;
    } else if (PQstatus(st->conn) != CONNECTION_OK) {
        rc = -1;
    } else if (!resend && res != NULL &&
               (state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL &&
               strcmp(state, "23505") == 0) {
        rc = 3; /* unique_violation */
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
 * connection broke (the unwritten rows are back in the queue).  Rows of a
 * batch whose COMMIT was lost may be sent again: the plain INSERT then
 * fails on (node, session_id) and the batch goes again with ON CONFLICT
 * DO NOTHING, which skips the rows written before (as does the row by
 * row path).
 */
int
tp__usage_write(tp_store *st)
{
    usage_rec *batch, *r;
    size_t n, written, dropped = 0;
    int rc, ins;

    while ((batch = usage_take(st, &n)) != NULL) {
        rc = usage_insert_batch(st, batch, &written, 0);
        if (rc == 3)
            rc = usage_insert_batch(st, batch, &written, 1);
        if (rc == 0) {
            usage_done(st, batch, n, written);
            if (st->usage_failing)
                tp__slog(st, TP_LOG_INFO, "policy store: usage rows are "
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
                    tp__slog(st, TP_LOG_ERROR, "policy store: PostgreSQL "
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
            tp__slog(st, TP_LOG_ERROR, "policy store: %zu usage record%s "
                     "refused by PostgreSQL and dropped", dropped,
                     dropped == 1 ? "" : "s");
        dropped = 0;
    }
    return 0;
}

void
tp__usage_free_all(tp_store *st)
{
    usage_rec *r = st->uq_head, *next;

    if (st->uq_len > 0)
        tp__slog(st, TP_LOG_ERROR, "policy store: %zu usage record%s could "
                 "not be written to PostgreSQL before shutdown", st->uq_len,
                 st->uq_len == 1 ? "" : "s");
    for (; r != NULL; r = next) {
        next = r->next;
        free(r);
    }
    st->uq_head = st->uq_tail = NULL;
    st->uq_len = 0;
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
        tp__store_wake(st);
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
    tp__store_wake(st);
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
