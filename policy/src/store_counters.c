/*
 * store_counters.c - counters shared by every node through Redis: the
 * issuance rate per user and minute, and live allocations per user and
 * per realm.
 *
 * What: tp__rate_check counts credentials issued to a user in the current
 * minute (INCR with expiry, in one Lua call); tp_store_alloc_batch
 * acquires and releases allocation slots - a Lua script over two sorted
 * sets scored by expiry takes a slot only under both the user's and the
 * realm's quota, atomically, so two coturn nodes cannot both take the
 * last one.  An acquire with neither quota (nothing to refuse) does the
 * same writes as plain pipelined commands instead: the script's eleven
 * calls cost Redis about twice the CPU, and with no limit to check there
 * is nothing for atomicity to protect.  Quotas come from the snapshot,
 * pinned once per batch and released before any Redis round trip.
 *
 * Failure: when Redis cannot answer, the fail mode decides: closed
 * refuses with TP_EREDIS, open allows.  A restarted Redis that lost its
 * script cache (NOSCRIPT) gets the script once by EVAL.
 *
 * Threads: any; the command connection (tp__redis) serialises its own
 * use.  Workload: one pipeline per batch of allocation events from
 * turnpolicyd; keys carry the realm as a hash tag (Redis Cluster).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

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

tp_status
tp__rate_check(tp_store *st, const char *realm, const char *user_id,
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

/* An acquire without quotas as plain commands (see the head comment):
 * what ALLOC_LUA does when both limits are 0, in the same order, with
 * the user's count from ZCARD (the 4th reply). */
#define PLAIN_CMDS 7
#define PLAIN_ARGS 24
#define PLAIN_ZCARD 3

/* Per-op argument storage for a batch. */
typedef struct alloc_args {
    char key[TP_REALM_MAX + TP_USER_ID_MAX + 32];
    char rkey[TP_REALM_MAX + 32];
    char a1[24], a2[24], a4[24], a5[24], a6[24];
    const char *argv[PLAIN_ARGS];
    size_t lens[PLAIN_ARGS];
    int64_t limit, rlimit;
    int ncmd;                 /* commands in the pipeline: 0, 1 (the
                                 script), 2 (release) or PLAIN_CMDS */
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

/* The plain commands of an acquire without quotas into a->argv (its a1,
 * a2, a5, keys filled): ZREMRANGEBYSCORE, ZADD, EXPIRE, ZCARD on the
 * user's set, ZREMRANGEBYSCORE, ZADD, EXPIRE on the realm's. */
static void
plain_acquire(alloc_args *a, const char *sid, int *argc,
              const char *const **argv, const size_t **lens)
{
    static const int shape[PLAIN_CMDS] = {4, 4, 3, 2, 4, 4, 3};
    const char **v = a->argv;
    int c, j, at = 0;

    for (c = 0; c < 2; c++) {
        const char *key = c == 0 ? a->key : a->rkey;

        v[at++] = "ZREMRANGEBYSCORE";
        v[at++] = key;
        v[at++] = "-inf";
        v[at++] = a->a1;
        v[at++] = "ZADD";
        v[at++] = key;
        v[at++] = a->a2;
        v[at++] = sid;
        v[at++] = "EXPIRE";
        v[at++] = key;
        v[at++] = a->a5;
        if (c == 0) {
            v[at++] = "ZCARD";
            v[at++] = key;
        }
    }
    for (j = 0; j < at; j++)
        a->lens[j] = strlen(v[j]);
    for (c = at = 0; c < PLAIN_CMDS; c++) {
        argc[c] = shape[c];
        argv[c] = a->argv + at;
        lens[c] = a->lens + at;
        at += shape[c];
    }
}

/* An acquire of plain commands succeeded when every reply is one:
 * integers all (ZADD, ZCARD...); the user's count is ZCARD's. */
static tp_status
plain_result(tp_store *st, tp_alloc_op *op, redisReply *const *rep,
             tp_error *err)
{
    int c;

    for (c = 0; c < PLAIN_CMDS; c++) {
        if (rep[c] == NULL || rep[c]->type != REDIS_REPLY_INTEGER) {
            if (rep[c] != NULL && rep[c]->type == REDIS_REPLY_ERROR &&
                err != NULL) {
                char shown[120];

                tp__printable(shown, sizeof(shown), rep[c]->str, 100);
                tp__fail(err, TP_EREDIS, "Redis replied: %s", shown);
            }
            return redis_down(st, err);
        }
    }
    op->count = rep[PLAIN_ZCARD]->integer < 0
                    ? 0
                    : (uint32_t)rep[PLAIN_ZCARD]->integer;
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
    rep = calloc(PLAIN_CMDS * n, sizeof(*rep));
    argv = calloc(PLAIN_CMDS * n, sizeof(*argv));
    lens = calloc(PLAIN_CMDS * n, sizeof(*lens));
    argc = calloc(PLAIN_CMDS * n, sizeof(*argc));
    if (args == NULL || rep == NULL || argv == NULL || lens == NULL ||
        argc == NULL) {
        for (i = 0; i < n; i++)
            ops[i].status = TP_ENOMEM;
        status = tp__fail(err, TP_ENOMEM, "out of memory");
        goto out;
    }
    /* Validate, and take the limits from one snapshot. */
    s = tp__pin(st, &ov, &parity, &status, &epin);
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
            op->status = tp__realm_lookup(s, ov, op->realm, &ri, &e1);
            if (op->status == TP_OK) {
                ue = tp__find_user(s, (size_t)ri, op->user_id);
                a->limit = ue != NULL && ue->user_quota >= 0
                               ? ue->user_quota
                               : s->realms[ri].user_quota;
                a->rlimit = s->realms[ri].total_quota;
            }
        }
        first_error(err, &have, op->status, &e1);
    }
    if (s != NULL)
        tp__unpin(st, parity);
    /* The commands: EVALSHA for an acquire (plain commands without
     * quotas), two ZREMs for a release. */
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
            if (a->limit <= 0 && a->rlimit <= 0) {
                plain_acquire(a, op->session_id, argc + ncmd, argv + ncmd,
                              lens + ncmd);
                ncmd += PLAIN_CMDS;
                a->ncmd = PLAIN_CMDS;
                continue;
            }
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
        } else if (args[i].ncmd == PLAIN_CMDS) {
            op->status = plain_result(st, op, rep + k, &e1);
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
        for (i = 0; i < PLAIN_CMDS * n; i++)
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
