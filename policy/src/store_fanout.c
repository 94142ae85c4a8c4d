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

void
tp__publish_realm(tp_store *st, const realm_entry *old, const realm_entry *nu)
{
    int was = old != NULL && old->killed;

    if (st->redis == NULL || st->no_listen || nu->killed == was)
        return;
    publish_event(st, json_pack("{s:s,s:s}", "t",
                                nu->killed ? "kill" : "unkill", "realm",
                                nu->name));
}

void
tp__publish_user(tp_store *st, const realm_entry *r, const user_entry *old,
                 const user_entry *nu)
{
    if (st->redis == NULL || st->no_listen || nu == NULL)
        return;
    if (nu->revoked_before != 0 &&
        (old == NULL || nu->revoked_before > old->revoked_before)) {
        remember_revocation(st, r->name, "ru", nu->user_id,
                            nu->revoked_before, r->max_ttl);
        publish_event(st, json_pack("{s:s,s:s,s:s,s:I,s:I}", "t",
                                    "revoke_user", "realm", r->name, "user",
                                    nu->user_id, "before",
                                    (json_int_t)nu->revoked_before, "ttl",
                                    (json_int_t)r->max_ttl));
    }
    if (old != NULL && old->active != nu->active)
        publish_event(st, json_pack("{s:s,s:s,s:s}", "t",
                                    nu->active ? "enable" : "disable",
                                    "realm", r->name, "user", nu->user_id));
}

void
tp__publish_revoked(tp_store *st, const realm_entry *r, const char *username)
{
    if (st->redis == NULL || st->no_listen)
        return;
    remember_revocation(st, r->name, "rc", username, 1, r->max_ttl);
    publish_event(st, json_pack("{s:s,s:s,s:s,s:I}", "t", "revoke_cred",
                                "realm", r->name, "username", username,
                                "ttl", (json_int_t)r->max_ttl));
}

/* Publish what changed from old to new that other nodes must apply at
 * once: revocations, disables/enables, kill switches.  After a full load
 * only (a change-log read publishes entry by entry): O(users). */
void
tp__publish_diff(tp_store *st, const snapshot *old, const snapshot *new)
{
    const user_entry *u;
    const revoked_entry *v;
    size_t i, pos;

    if (st->redis == NULL || st->no_listen || old == NULL)
        return;
    for (i = 0; i < new->nrealms; i++) {
        long oi = tp__find_realm(old, new->realms[i].name);

        tp__publish_realm(st, oi >= 0 ? &old->realms[oi] : NULL,
                          &new->realms[i]);
    }
    /* (Attaching a base repeats the policy: its changes were told as
     * they were applied.) */
    if (old->tab == new->tab || new->tab->base != NULL)
        return;
    pos = 0;
    while ((u = tp__table_next(&new->tab->users, &pos)) != NULL) {
        const realm_entry *r = &new->realms[u->realm];
        long oi = tp__find_realm(old, r->name);
        const user_entry *ou =
            oi < 0 ? NULL : tp__find_user(old, (size_t)oi, u->user_id);

        if (ou == NULL && u->revoked_before == 0)
            continue;
        tp__publish_user(st, r, ou, u);
    }
    pos = 0;
    while ((v = tp__table_next(&new->tab->revoked, &pos)) != NULL) {
        const realm_entry *r = &new->realms[v->realm];
        long oi = tp__find_realm(old, r->name);

        if (oi >= 0 && tp__is_revoked(old, (size_t)oi, v->username))
            continue;
        tp__publish_revoked(st, r, v->username);
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
