/*
 * store_fanout.c - Redis fan-out of policy changes between nodes.
 *
 * Why: NOTIFY does not reach hot-standby replicas, and a reload takes a
 * moment.  A node that LISTENs on PostgreSQL publishes, after each
 * reload, what other nodes must apply at once (revocations, disables and
 * enables, kill switches) on the Redis channel "turnpolicy:changes"
 * (tp__publish_diff); revocations are also kept as keys with a TTL so a
 * node that was away catches up when it subscribes again.  Every node
 * subscribes (tp__sub_ensure, tp__sub_read) and applies the messages to
 * the overlay (store_snapshot.c) until its own snapshot has them.
 *
 * Invariants: a message is untrusted input: JSON with duplicate keys is
 * refused, realm and user names are checked like any caller's, TTLs are
 * bounded by TP_TTL_MAX, and the overlay holds at most OVERLAY_MAX
 * entries.  Losing Redis loses nothing but speed: revocations still come
 * from PostgreSQL at the next reload.
 *
 * Threads: the store thread only (the subscription connection is its
 * own; publishing uses the shared command connection).  Workload: a few
 * messages per policy change, none in between.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CHANNEL "turnpolicy:changes"

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
    long ri = tp__find_realm(s, realm);

    return ri < 0 ? NULL : tp__find_user(s, (size_t)ri, user_id);
}

/* Publish what changed from old to new that other nodes must apply at
 * once: revocations, disables/enables, kill switches. */
void
tp__publish_diff(tp_store *st, const snapshot *old, const snapshot *new)
{
    size_t i;

    if (st->redis == NULL || old == NULL)
        return;
    for (i = 0; i < new->nrealms; i++) {
        const realm_entry *r = &new->realms[i];
        long oi = tp__find_realm(old, r->name);
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
        long oi = tp__find_realm(old, realm);

        if (oi >= 0 && tp__is_revoked(old, (size_t)oi, v->username))
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
        tp__overlay_update(st, &e, -1, NULL, NULL);
    } else if (strcmp(t, "revoke_cred") == 0 && username != NULL &&
               strlen(username) <= TP_USERNAME_MAX) {
        e.kind = OV_REVOKE_CRED;
        memcpy(e.key, username, strlen(username) + 1);
        tp__overlay_update(st, &e, -1, NULL, NULL);
    } else if ((strcmp(t, "disable") == 0 || strcmp(t, "enable") == 0) &&
               user != NULL && tp_user_id_check(user, NULL) == TP_OK) {
        e.kind = OV_DISABLE;
        memcpy(e.key, user, strlen(user) + 1);
        e.until = mono_now() + OVERLAY_SHORT;
        if (t[0] == 'd')
            tp__overlay_update(st, &e, -1, NULL, NULL);
        else
            tp__overlay_update(st, NULL, OV_DISABLE, realm, user);
    } else if (strcmp(t, "kill") == 0) {
        e.kind = OV_KILL;
        e.until = mono_now() + OVERLAY_SHORT;
        tp__overlay_update(st, &e, -1, NULL, NULL);
    } else if (strcmp(t, "unkill") == 0) {
        tp__overlay_update(st, NULL, OV_KILL, realm, "");
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
        tp__slog(st, TP_LOG_ERROR, "policy store: Redis subscription lost "
                 "(%s); revocations still come from PostgreSQL, retrying",
                 why);
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
                    !tp__overlay_has(atomic_load(&st->ov), OV_REVOKE_USER,
                                     e.realm, e.key, NULL))
                    tp__overlay_update(st, &e, -1, NULL, NULL);
            } else if (rb[3] == 'c') {
                e.kind = OV_REVOKE_CRED;
                if (!tp__overlay_has(atomic_load(&st->ov), OV_REVOKE_CRED,
                                     e.realm, e.key, NULL))
                    tp__overlay_update(st, &e, -1, NULL, NULL);
            }
            freeReplyObject(v);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0 && seen < OVERLAY_MAX);
}

/* (Re)subscribe when due.  Returns 1 if a reload is wanted (we may have
 * missed messages while away). */
int
tp__sub_ensure(tp_store *st)
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
        tp__slog(st, TP_LOG_INFO, "policy store: Redis subscription restored");
    st->sub_failing = 0;
    st->sub_backoff = 100;
    sub_set(st, 1);
    return 1;
}

/* Read what the subscription has; returns 1 if a reload is wanted. */
int
tp__sub_read(tp_store *st)
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
