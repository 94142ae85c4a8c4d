/*
 * commands.c - the Redis commands coturn 4.6.1 sends, answered from the
 * policy store.
 *
 * coturn's redis-userdb (dbd_redis.c, synchronous hiredis, one connection
 * per thread) sends, as hiredis-formatted arrays (a <*> below is a
 * literal '*' of a KEYS pattern):
 *   AUTH [<user>] <pw>, SELECT <db>              on connect
 *   GET turn/realm/<r>/user/<u>/key              once per new session
 *   KEYS turn/origin/<*>, GET turn/origin/<o>    realm reload, auth ping
 *   GET turn/realm/<r>/{max-bps,total-quota,user-quota}
 *   KEYS turn/realm/<*>/{allowed,denied}-peer-ip, SMEMBERS <each key>
 *   SMEMBERS turn/realm/<r>/secret               only with use-auth-secret
 *   HGETALL turn/oauth/kid/<k>                   only with oauth
 * and its redis-statsdb (async hiredis, pipelined):
 *   AUTH, SELECT, KEYS turn/<*>/allocation/<*>/status (startup
 *   clean-up, from each auth thread),
 *   SET/PUBLISH .../allocation/<id>/status, DEL .../status "",
 *   PUBLISH .../traffic[/peer], .../total_traffic[/peer],
 *   PUBLISH __XXX__ __YYY__ (keep-alive).
 *
 * Lists coturn polls (origins, peer ranges) are answered from the store;
 * while the store cannot answer (PostgreSQL unreachable past
 * max_staleness) the last good answer for the same key is repeated, so a
 * realm's denied-peer-ip set never empties because a database is down
 * (coturn replaces its lists with whatever it reads every 5 s).
 *
 * A key lookup is a policy decision (tp_store_key) counted by reason;
 * a denial is logged with the realm, the username (escaped) and the
 * reason, never with a key.  Writes other than the statsdb reports are
 * refused: the policy is provisioned in PostgreSQL, not through coturn's
 * turnadmin.  Nothing here blocks: the store answers from memory and
 * the allocation counters go through the worker queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "turnpolicyd.h"

#define PFX_REALM "turn/realm/"
#define PFX_ORIGIN "turn/origin/"
#define LIT_LEN(s) (sizeof(s) - 1)

/* Collects bulk strings for an array reply whose length is known only at
 * the end (the snapshot may change between two passes, so one pass). */
typedef struct collect {
    tpd_buf body;
    size_t n;
    const char *prefix;
    const char *suffix;
} collect;

static tp_status
collect_add(collect *c, const char *s)
{
    size_t lp = strlen(c->prefix), ls = strlen(s), lx = strlen(c->suffix);

    if (tpd_buf_printf(&c->body, "$%zu\r\n", lp + ls + lx) != 0 ||
        tpd_buf_append(&c->body, c->prefix, lp) != 0 ||
        tpd_buf_append(&c->body, s, ls) != 0 ||
        tpd_buf_append(&c->body, c->suffix, lx) != 0 ||
        tpd_buf_append(&c->body, "\r\n", 2) != 0)
        return TP_ENOMEM;
    c->n++;
    return TP_OK;
}

static tp_status
collect_name(void *ud, const char *name)
{
    return collect_add(ud, name);
}

static tp_status
collect_origin(void *ud, const char *origin, const char *realm)
{
    (void)realm;
    return collect_add(ud, origin);
}

/* ------------------------------------------------------------------ */
/* Last good answers                                                   */
/* ------------------------------------------------------------------ */

#define CACHE_MAX 4096

typedef struct cache_entry {
    struct cache_entry *next;
    char *key;
    char *reply;
    size_t rlen;
} cache_entry;

struct tpd_cache {
    cache_entry *head;
    size_t n;
};

void
tpd_cache_free(tpd_cache *c)
{
    cache_entry *e, *next;

    if (c == NULL)
        return;
    for (e = c->head; e != NULL; e = next) {
        next = e->next;
        free(e->key);
        free(e->reply);
        free(e);
    }
    free(c);
}

static cache_entry *
cache_get(const tpd *d, const char *key)
{
    cache_entry *e;

    if (d->cache == NULL)
        return NULL;
    for (e = d->cache->head; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Remember reply as the answer for key.  Best effort: out of memory or
 * a full cache only means no fallback for that key. */
static void
cache_put(tpd *d, const char *key, const char *reply, size_t rlen)
{
    cache_entry *e = cache_get(d, key);
    char *copy;

    if (e != NULL && e->rlen == rlen && memcmp(e->reply, reply, rlen) == 0)
        return;
    if (d->cache == NULL) {
        d->cache = calloc(1, sizeof(*d->cache));
        if (d->cache == NULL)
            return;
    }
    copy = malloc(rlen != 0 ? rlen : 1);
    if (copy == NULL)
        return;
    memcpy(copy, reply, rlen);
    if (e == NULL) {
        if (d->cache->n >= CACHE_MAX) {
            free(copy);
            return;
        }
        e = calloc(1, sizeof(*e));
        if (e == NULL || (e->key = strdup(key)) == NULL) {
            free(e);
            free(copy);
            return;
        }
        e->next = d->cache->head;
        d->cache->head = e;
        d->cache->n++;
    }
    free(e->reply);
    e->reply = copy;
    e->rlen = rlen;
}

/* Answer with the collected array (st == TP_OK; remembered under key),
 * else with the last good answer for key (unless the realm is gone),
 * else with an empty array.  Frees the collection.  0 or -1 (memory). */
static int
collect_finish(tpd *d, const char *key, tp_status st, collect *c,
               tpd_buf *out)
{
    const cache_entry *e;
    tpd_buf reply;
    int rc = 0;

    memset(&reply, 0, sizeof(reply));
    if (st == TP_ENOMEM) {
        rc = -1;
    } else if (st == TP_OK) {
        if (tpd_reply_array(&reply, c->n) != 0 ||
            tpd_buf_append(&reply, c->body.data + c->body.off,
                           tpd_buf_pending(&c->body)) != 0 ||
            tpd_buf_append(out, reply.data, reply.len) != 0)
            rc = -1;
        else
            cache_put(d, key, reply.data, reply.len);
    } else if (st != TP_EUNKNOWNREALM && (e = cache_get(d, key)) != NULL) {
        d->n.cached_answers++;
        rc = tpd_buf_append(out, e->reply, e->rlen);
    } else {
        rc = tpd_reply_array(out, 0);
    }
    tpd_buf_free(&reply);
    tpd_buf_free(&c->body);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Key helpers                                                         */
/* ------------------------------------------------------------------ */

static int
has_prefix(const char *s, size_t n, const char *pfx)
{
    size_t lp = strlen(pfx);

    return n >= lp && memcmp(s, pfx, lp) == 0;
}

static int
has_suffix(const char *s, size_t n, const char *sfx)
{
    size_t ls = strlen(sfx);

    return n >= ls && memcmp(s + n - ls, sfx, ls) == 0;
}

/* "turn/realm/<r>/<rest>": copy <r> into realm and point *rest after its
 * slash.  0, or -1 if the key does not have that shape or <r> is longer
 * than TP_REALM_MAX. */
static int
split_realm(const char *key, size_t n, char realm[TP_REALM_MAX + 1],
            const char **rest, size_t *restlen)
{
    const char *r, *slash;
    size_t rl;

    if (!has_prefix(key, n, PFX_REALM))
        return -1;
    r = key + LIT_LEN(PFX_REALM);
    slash = memchr(r, '/', n - LIT_LEN(PFX_REALM));
    if (slash == NULL)
        return -1;
    rl = (size_t)(slash - r);
    if (rl == 0 || rl > TP_REALM_MAX)
        return -1;
    memcpy(realm, r, rl);
    realm[rl] = '\0';
    *rest = slash + 1;
    *restlen = n - (size_t)(*rest - key);
    return 0;
}

static int
arg_is(const tpd_request *rq, int i, const char *s)
{
    return strlen(s) == rq->len[i] && strcasecmp(rq->argv[i], s) == 0;
}

static int
has_nul(const tpd_request *rq)
{
    int i;

    for (i = 0; i < rq->argc; i++)
        if (memchr(rq->argv[i], '\0', rq->len[i]) != NULL)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* AUTH                                                                */
/* ------------------------------------------------------------------ */

/* SHA-256 of both sides, compared in constant time: neither the
 * password's length nor its content leaks through timing. */
static int
password_ok(const tpd *d, const char *pw, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok;

    if (EVP_Digest(pw, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != sizeof(d->pw_digest))
        return 0;
    ok = CRYPTO_memcmp(md, d->pw_digest, sizeof(d->pw_digest)) == 0;
    OPENSSL_cleanse(md, sizeof(md));
    return ok;
}

/* AUTH <password>, or AUTH <user> <password> (Redis 6 ACL form; coturn
 * 4.6.3 and later send it when its connection string has user=).  There
 * is one password and no users here: the name is not checked, and never
 * logged. */
static int
cmd_auth(tpd *d, tpd_client *c, const tpd_request *rq, tpd_buf *out)
{
    int pw = rq->argc - 1;

    if (rq->argc != 2 && rq->argc != 3)
        return tpd_reply_error(out, "ERR wrong number of arguments for "
                               "'auth' command");
    if (password_ok(d, rq->argv[pw], rq->len[pw])) {
        c->authed = 1;
        d->n.auth_ok++;
        return tpd_reply_status(out, "OK");
    }
    d->n.auth_failed++;
    c->auth_failures++;
    tpd_log(TP_LOG_WARN, "AUTH failed (%u on this connection)",
            c->auth_failures);
    if (c->auth_failures >= 5)
        c->close_after_reply = 1;
    return tpd_reply_error(out, "ERR invalid password");
}

/* ------------------------------------------------------------------ */
/* GET                                                                 */
/* ------------------------------------------------------------------ */

static void
count_decision(tpd *d, tp_status st)
{
    if ((unsigned)st < TP_STATUS_COUNT_)
        d->n.decisions[st]++;
}

/*
 * What the snapshot cannot know, for a user the store allows: this node's
 * live sessions of the user (against its quota: the shared count in Redis
 * is applied when the allocation is reported, and an allocation over it
 * is cancelled by the enforcer) and the bytes of its sessions on this
 * node and of its finished sessions the snapshot does not include yet
 * (against its budget).  The rule is the library's
 * (tp_store_session_check); this only gathers the node's numbers.
 */
static tp_status
live_checks(tpd *d, const char *realm, const char *user_id, tp_error *err)
{
    tp_session_use use;

    memset(&use, 0, sizeof(use));
    tpd_sessions_user(d->sessions, tp_store_usage_included(d->store), realm,
                      user_id, &use.live, &use.bytes, &use.realm_bytes);
    return tp_store_session_check(d->store, realm, user_id, &use, err);
}

/* The policy decision for GET turn/realm/<realm>/user/<user>/key. */
static int
get_user_key(tpd *d, const char *realm, const char *user, size_t ulen,
             tpd_buf *out)
{
    char hexkey[TP_LTKEY_HEX_LEN + 1], shown[160];
    char name[TP_USERNAME_MAX + 1];
    tp_username parsed;
    tp_status st;
    tp_error err;
    int rc;

    err.message[0] = '\0';
    if (ulen > TP_USERNAME_MAX)
        st = TP_ETOOLONG;
    else if (memchr(user, '\0', ulen) != NULL)
        st = TP_EBADCHAR;
    else {
        memcpy(name, user, ulen);
        name[ulen] = '\0';
        st = tp_store_key(d->store, realm, name, tp_now(), hexkey, &parsed,
                          &err);
    }
    if (st == TP_OK)
        st = live_checks(d, realm, parsed.user_id, &err);
    count_decision(d, st);
    tpd_escape(user, ulen, shown, sizeof(shown));
    if (st != TP_OK) {
        tpd_log(TP_LOG_INFO, "deny realm=%s user=%s reason=%s%s%s", realm,
                shown, tp_reason(st), err.message[0] != '\0' ? ": " : "",
                err.message);
        return tpd_reply_nil(out);
    }
    tpd_log(TP_LOG_DEBUG, "key served realm=%s user=%s", realm, shown);
    tpd_sessions_key_served(d, realm, name, tp_now());
    rc = tpd_reply_bulk(out, hexkey, TP_LTKEY_HEX_LEN);
    OPENSSL_cleanse(hexkey, sizeof(hexkey));
    return rc;
}

/* GET turn/realm/<r>/{max-bps,user-quota,total-quota}: a decimal, or
 * nil for "unlimited" and for an unknown realm (coturn then keeps its
 * own setting). */
static int
get_realm_option(tpd *d, const char *realm, const char *opt, size_t n,
                 tpd_buf *out)
{
    tp_realm_options ro;
    int64_t v;
    char num[32];

    if (tp_store_realm_options(d->store, realm, &ro, NULL) != TP_OK)
        return tpd_reply_nil(out);
    if (n == LIT_LEN("max-bps") && memcmp(opt, "max-bps", n) == 0)
        v = ro.max_bps;
    else if (n == LIT_LEN("user-quota") && memcmp(opt, "user-quota", n) == 0)
        v = ro.user_quota;
    else if (n == LIT_LEN("total-quota") &&
             memcmp(opt, "total-quota", n) == 0)
        v = ro.total_quota;
    else
        return tpd_reply_nil(out);
    if (v <= 0)
        return tpd_reply_nil(out);
    snprintf(num, sizeof(num), "%lld", (long long)v);
    return tpd_reply_cstr(out, num);
}

static int
cmd_get(tpd *d, const tpd_request *rq, tpd_buf *out)
{
    char realm[TP_REALM_MAX + 1], shown[160];
    const char *key = rq->argv[1], *rest, *user;
    size_t n = rq->len[1], restlen, ulen;

    if (split_realm(key, n, realm, &rest, &restlen) == 0) {
        if (has_prefix(rest, restlen, "user/") &&
            has_suffix(rest, restlen, "/key") &&
            restlen > LIT_LEN("user/") + LIT_LEN("/key")) {
            user = rest + LIT_LEN("user/");
            ulen = restlen - LIT_LEN("user/") - LIT_LEN("/key");
            return get_user_key(d, realm, user, ulen, out);
        }
        return get_realm_option(d, realm, rest, restlen, out);
    }
    if (has_prefix(key, n, PFX_REALM) && strstr(key, "/key") != NULL) {
        /* A key lookup whose realm we cannot even take apart. */
        d->n.key_malformed++;
        tpd_log(TP_LOG_INFO, "deny key=%s reason=malformed_key",
                tpd_escape(key, n, shown, sizeof(shown)));
        return tpd_reply_nil(out);
    }
    if (has_prefix(key, n, PFX_ORIGIN) && n > LIT_LEN(PFX_ORIGIN)) {
        /* (an origin with a NUL in it is nobody's) */
        if (memchr(key, '\0', n) != NULL ||
            tp_store_origin_realm(d->store, key + LIT_LEN(PFX_ORIGIN), realm,
                                  sizeof(realm), NULL) != TP_OK)
            return tpd_reply_nil(out);
        return tpd_reply_cstr(out, realm);
    }
    return tpd_reply_nil(out);
}

/* ------------------------------------------------------------------ */
/* KEYS, SMEMBERS                                                      */
/* ------------------------------------------------------------------ */

static int
cmd_keys(tpd *d, const tpd_request *rq, tpd_buf *out)
{
    const char *pat = rq->argv[1];
    collect c;
    tp_status st;

    memset(&c, 0, sizeof(c));
    if (strcmp(pat, PFX_ORIGIN "*") == 0) {
        c.prefix = PFX_ORIGIN;
        c.suffix = "";
        st = tp_store_origins(d->store, collect_origin, &c, NULL);
    } else if (strcmp(pat, PFX_REALM "*/allowed-peer-ip") == 0 ||
               strcmp(pat, PFX_REALM "*/denied-peer-ip") == 0) {
        c.prefix = PFX_REALM;
        c.suffix = strchr(pat + LIT_LEN(PFX_REALM), '/');
        st = tp_store_realms(d->store, collect_name, &c, NULL);
    } else {
        /* turn/<*>/allocation/<*>/status (statsdb clean-up at coturn's
         * start: nothing is stored), users, secrets, oauth keys, admin
         * users: none are served to coturn. */
        return tpd_reply_array(out, 0);
    }
    return collect_finish(d, pat, st, &c, out);
}

static int
cmd_smembers(tpd *d, const tpd_request *rq, tpd_buf *out)
{
    char realm[TP_REALM_MAX + 1];
    const char *rest;
    size_t restlen;
    tp_peer_action which;
    collect c;
    tp_status st;

    memset(&c, 0, sizeof(c));
    c.prefix = "";
    c.suffix = "";
    if (split_realm(rq->argv[1], rq->len[1], realm, &rest, &restlen) != 0)
        return tpd_reply_array(out, 0);
    if (restlen == LIT_LEN("allowed-peer-ip") &&
        memcmp(rest, "allowed-peer-ip", restlen) == 0)
        which = TP_PEER_ALLOW;
    else if (restlen == LIT_LEN("denied-peer-ip") &&
             memcmp(rest, "denied-peer-ip", restlen) == 0)
        which = TP_PEER_DENY;
    else
        return tpd_reply_array(out, 0); /* secrets: never served */
    st = tp_store_export_coturn(d->store, realm, which, collect_name, &c,
                                NULL);
    return collect_finish(d, rq->argv[1], st, &c, out);
}

/* ------------------------------------------------------------------ */
/* statsdb: SET, PUBLISH, DEL                                          */
/* ------------------------------------------------------------------ */

static int
is_stats_key(const char *key, size_t n)
{
    return has_prefix(key, n, "turn/") &&
           strstr(key, "/allocation/") != NULL;
}

static const char read_only[] =
    "ERR turnpolicyd is read-only: provision turnpolicy with SQL";

/* coturn SETs and PUBLISHes the same status; the PUBLISH, which also
 * carries "deleted" and the traffic reports, is the one we act on. */
static int
cmd_set(const tpd_request *rq, tpd_buf *out)
{
    if (!is_stats_key(rq->argv[1], rq->len[1]))
        return tpd_reply_error(out, read_only);
    return tpd_reply_status(out, "OK");
}

static int
cmd_del(const tpd_request *rq, tpd_buf *out)
{
    if (!is_stats_key(rq->argv[1], rq->len[1]))
        return tpd_reply_error(out, read_only);
    return tpd_reply_int(out, 1);
}

static int
cmd_publish(tpd *d, const tpd_request *rq, tpd_buf *out)
{
    if (is_stats_key(rq->argv[1], rq->len[1])) {
        d->n.statsdb_events++;
        if (!tpd_stats_event(d, rq->argv[1], rq->len[1], rq->argv[2],
                             rq->len[2], tp_now()))
            d->n.statsdb_ignored++;
    }
    return tpd_reply_int(out, 0);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

static void
log_command(const tpd_request *rq)
{
    char a1[200], a2[200];

    if (!tpd_log_enabled(TP_LOG_DEBUG))
        return;
    if (arg_is(rq, 0, "auth")) {
        tpd_log(TP_LOG_DEBUG, "cmd AUTH (%d args)", rq->argc);
        return;
    }
    tpd_escape(rq->argv[0], rq->len[0], a1, sizeof(a1));
    tpd_log(TP_LOG_DEBUG, "cmd %s%s%s%s%s", a1, rq->argc > 1 ? " " : "",
            rq->argc > 1 ? tpd_escape(rq->argv[1], rq->len[1], a2,
                                      sizeof(a2)) : "",
            rq->argc > 2 ? " " : "", rq->argc > 2 ? "..." : "");
}

int
tpd_command(tpd *d, tpd_client *c, const tpd_request *rq, tpd_buf *out)
{
    tpd_buf info;
    int rc;

    d->n.commands++;
    c->report = 0;
    log_command(rq);
    if (arg_is(rq, 0, "quit")) {
        c->close_after_reply = 1;
        return tpd_reply_status(out, "OK");
    }
    if (arg_is(rq, 0, "auth"))
        return cmd_auth(d, c, rq, out);
    if (!c->authed) {
        d->n.noauth++;
        return tpd_reply_error(out, "NOAUTH Authentication required.");
    }
    if (has_nul(rq))
        return tpd_reply_error(out, "ERR arguments must not contain NUL");
    if (arg_is(rq, 0, "ping")) {
        if (rq->argc == 2)
            return tpd_reply_bulk(out, rq->argv[1], rq->len[1]);
        return tpd_reply_status(out, "PONG");
    }
    if (arg_is(rq, 0, "select") && rq->argc == 2)
        return tpd_reply_status(out, "OK");
    if (arg_is(rq, 0, "get") && rq->argc == 2)
        return cmd_get(d, rq, out);
    if (arg_is(rq, 0, "keys") && rq->argc == 2)
        return cmd_keys(d, rq, out);
    if (arg_is(rq, 0, "smembers") && rq->argc == 2)
        return cmd_smembers(d, rq, out);
    if (arg_is(rq, 0, "config") && rq->argc >= 2 && arg_is(rq, 1, "get"))
        return tpd_reply_array(out, 0); /* as Redis for unknown params
                                           (redis-benchmark asks) */
    if (arg_is(rq, 0, "hgetall") && rq->argc == 2)
        return tpd_reply_array(out, 0); /* oauth keys, admin users */
    if (arg_is(rq, 0, "publish") && rq->argc == 3) {
        c->report = is_stats_key(rq->argv[1], rq->len[1]);
        return cmd_publish(d, rq, out);
    }
    if (arg_is(rq, 0, "set") && rq->argc >= 3) {
        c->report = is_stats_key(rq->argv[1], rq->len[1]);
        return cmd_set(rq, out);
    }
    if (arg_is(rq, 0, "del") && rq->argc >= 2) {
        c->report = is_stats_key(rq->argv[1], rq->len[1]);
        return cmd_del(rq, out);
    }
    if (arg_is(rq, 0, "info")) {
        memset(&info, 0, sizeof(info));
        rc = tpd_metrics_render(d, &info);
        if (rc == 0)
            rc = tpd_reply_bulk(out, info.data + info.off,
                                tpd_buf_pending(&info));
        tpd_buf_free(&info);
        return rc;
    }
    d->n.unknown_commands++;
    return tpd_reply_error(out, "ERR unknown command or wrong number of "
                           "arguments");
}
