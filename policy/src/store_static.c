/*
 * store_static.c - a policy store built from C structures instead of
 * PostgreSQL, so that decisions can be tested in memory.
 *
 * What: tp__store_new_static turns a tp__static_policy (realms with their
 * secrets, rules, keys, URIs and origins; users; revoked credentials)
 * into a snapshot with the same structures, orders and index that
 * store_load.c builds from the database - the same tp_keyring,
 * tp_hostlist, tp_peerset and tp_jwt_keys calls, the same sorts
 * (tp__cmp_*), the same user hash and origin index - and publishes it in
 * a tp_store with no thread, no database connection and no Redis.  Every
 * tp_store_* decision then runs unchanged against it.
 *
 * Why: the decisions are the library's reason to exist and must be tested
 * for every refusal they can give; a server per test would make that slow
 * and rare.  Freshness is a knob (tp__static_options: unloaded, stale) so
 * TP_ESTALE is reachable too.  The overlay stays empty; tests that need
 * one call tp__overlay_update themselves, which stands in for the store
 * thread.
 *
 * Invariants: what the database would refuse (a duplicate realm or user,
 * a row naming an unknown realm, a bad network) is refused with
 * TP_EINVAL, not silently built.  Internal only: never exported.
 */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One realm's entry, without the rows that need the sorted index. */
static tp_status
static_realm(realm_entry *e, const tp__static_realm *in,
             const tp_jwt_options *jo, tp_error *err)
{
    tp_keyring_options ko;

    if (in->name == NULL || tp_realm_check(in->name, NULL) != TP_OK)
        return tp__fail(err, TP_EINVAL, "a realm needs a valid name");
    e->name = strdup(in->name);
    if (e->name == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    memset(&ko, 0, sizeof(ko));
    ko.default_ttl = in->default_ttl;
    ko.max_ttl = in->max_ttl;
    ko.clock_skew = in->clock_skew;
    e->max_ttl = in->max_ttl;
    e->default_ttl = in->default_ttl;
    e->killed = in->killed;
    e->user_quota = in->user_quota;
    e->total_quota = in->total_quota;
    e->max_bps = in->max_bps;
    e->user_budget = in->user_budget;
    e->realm_budget = in->realm_budget;
    e->budget_period = in->budget_period;
    e->kr = tp_keyring_new(e->name, &ko, err);
    e->hl = tp_hostlist_new(err);
    e->ps = tp_peerset_new(err);
    e->jk = tp_jwt_keys_new(jo, err);
    if (e->kr == NULL || e->hl == NULL || e->ps == NULL || e->jk == NULL)
        return err != NULL && err->status != TP_OK ? err->status
                                                   : TP_ENOMEM;
    tp_peerset_set_default(e->ps, in->peer_default);
    return TP_OK;
}

/* The rows of a realm that name it (secrets, rules, keys, URIs). */
static tp_status
static_realm_rows(snapshot *s, realm_entry *e, size_t ri,
                  const tp__static_realm *in, size_t *norigin,
                  tp_error *err)
{
    tp_status st = TP_OK;
    size_t i;

    for (i = 0; i < in->nsecrets && st == TP_OK; i++)
        st = tp_keyring_add(e->kr, in->secrets[i].kid, in->secrets[i].key,
                            in->secrets[i].len, in->secrets[i].state, err);
    if (st == TP_OK && in->legacy != NULL)
        st = tp_keyring_set_legacy(e->kr, in->legacy, in->legacy_len, err);
    for (i = 0; i < in->nhosts && st == TP_OK; i++) {
        st = tp_hostlist_add(e->hl, in->hosts[i], err);
        if (st == TP_EEXISTS) /* as store_load.c: one rule, two rows */
            st = TP_OK;
    }
    for (i = 0; i < in->npeers && st == TP_OK; i++)
        st = tp_peerset_add(e->ps, in->peers[i].net, in->peers[i].action,
                            err);
    for (i = 0; i < in->njwt_keys && st == TP_OK; i++) {
        const tp__static_jwt_key *k = &in->jwt_keys[i];

        st = tp_jwt_keys_add(e->jk, k->kid != NULL && k->kid[0] != '\0'
                                        ? k->kid
                                        : NULL,
                             k->alg, k->key, k->len, err);
    }
    if (st != TP_OK)
        return st;
    if (in->nurls > 0) {
        e->urls = calloc(in->nurls, sizeof(*e->urls));
        if (e->urls == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory");
        for (i = 0; i < in->nurls; i++) {
            e->urls[i] = strdup(in->urls[i]);
            if (e->urls[i] == NULL)
                return tp__fail(err, TP_ENOMEM, "out of memory");
            e->nurls++;
        }
    }
    for (i = 0; i < in->norigins; i++) {
        origin_entry *o = &s->origins[(*norigin)];

        o->realm = ri;
        o->origin = strdup(in->origins[i]);
        if (o->origin == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory");
        (*norigin)++;
        s->norigins = *norigin;
    }
    return TP_OK;
}

static tp_status
static_users(snapshot *s, const tp__static_policy *p, tp_error *err)
{
    tp__garbage g = {0};
    tp_status st = TP_OK;
    size_t i;
    long ri;

    for (i = 0; i < p->nusers && st == TP_OK; i++) {
        const tp__static_user *in = &p->users[i];
        tp_addr cidr;
        int len = 0;
        user_entry *u;

        ri = in->realm != NULL ? tp__find_realm(s, in->realm) : -1;
        if (ri < 0 || in->user_id == NULL ||
            tp_user_id_check(in->user_id, NULL) != TP_OK) {
            st = tp__fail(err, TP_EINVAL, "user %zu: unknown realm or bad "
                          "user id", i);
            break;
        }
        if (in->client_cidr != NULL &&
            tp__parse_cidr(in->client_cidr, &cidr, &len) != 0) {
            st = tp__fail(err, TP_EINVAL, "user %zu: bad network", i);
            break;
        }
        if (tp__find_user(s, (size_t)ri, in->user_id) != NULL) {
            st = tp__fail(err, TP_EINVAL, "user %s is listed twice",
                          in->user_id);
            break;
        }
        u = tp__user_entry_new((uint32_t)ri, in->user_id,
                               in->client_cidr != NULL ? &cidr : NULL, len);
        if (u == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory");
            break;
        }
        u->active = !in->disabled;
        u->revoked_before = in->revoked_before;
        u->user_quota = in->own_quota ? in->user_quota : -1;
        u->user_budget = in->own_budget ? in->user_budget : -1;
        u->used = in->used;
        if (tp__table_put(&s->tab->users, u, &g) != 0) {
            free(u);
            st = tp__fail(err, TP_ENOMEM, "out of memory");
        }
    }
    tp__garbage_flush(NULL, &g);
    tp__garbage_clear(&g);
    return st;
}

static tp_status
static_revoked(snapshot *s, const tp__static_policy *p, tp_error *err)
{
    tp__garbage g = {0};
    tp_status st = TP_OK;
    size_t i;
    long ri;

    for (i = 0; i < p->nrevoked && st == TP_OK; i++) {
        revoked_entry *v;

        ri = p->revoked[i].realm != NULL
                 ? tp__find_realm(s, p->revoked[i].realm)
                 : -1;
        if (ri < 0 || p->revoked[i].username == NULL) {
            st = tp__fail(err, TP_EINVAL, "revoked credential %zu: unknown "
                          "realm or no username", i);
            break;
        }
        v = tp__revoked_entry_new((uint32_t)ri, p->revoked[i].username);
        if (v == NULL || tp__table_put(&s->tab->revoked, v, &g) != 0) {
            free(v);
            st = tp__fail(err, TP_ENOMEM, "out of memory");
        }
    }
    tp__garbage_flush(NULL, &g);
    tp__garbage_clear(&g);
    return st;
}

/* The snapshot of p, as tp__snapshot_load would build it. */
static tp_status
static_snapshot(const tp__static_policy *p, const tp_jwt_options *jo,
                snapshot **out, tp_error *err)
{
    size_t i, norigins = 0, norigin = 0;
    tp_status st = TP_OK;
    snapshot *s;
    long ri;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    s->loaded_at = tp_now();
    s->realms = calloc(p->nrealms > 0 ? p->nrealms : 1, sizeof(*s->realms));
    for (i = 0; i < p->nrealms; i++)
        norigins += p->realms[i].norigins;
    s->origins = calloc(norigins > 0 ? norigins : 1, sizeof(*s->origins));
    if (s->realms == NULL || s->origins == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    for (i = 0; i < p->nrealms && st == TP_OK; i++) {
        s->nrealms++;
        st = static_realm(&s->realms[i], &p->realms[i], jo, err);
    }
    if (st != TP_OK)
        goto fail;
    qsort(s->realms, s->nrealms, sizeof(*s->realms), tp__cmp_realm);
    for (i = 1; i < s->nrealms; i++) {
        if (tp__cmp_realm(&s->realms[i - 1], &s->realms[i]) == 0) {
            st = tp__fail(err, TP_EINVAL, "realm %s is listed twice",
                          s->realms[i].name);
            goto fail;
        }
    }
    for (i = 0; i < p->nrealms && st == TP_OK; i++) {
        ri = tp__find_realm(s, p->realms[i].name);
        st = static_realm_rows(s, &s->realms[ri], (size_t)ri, &p->realms[i],
                               &norigin, err);
    }
    if (st == TP_OK) {
        s->tab = tp__tables_new(s->nrealms, p->nusers);
        if (s->tab == NULL)
            st = tp__fail(err, TP_ENOMEM, "out of memory");
    }
    for (i = 0; i < p->nrealms && st == TP_OK; i++) {
        ri = tp__find_realm(s, p->realms[i].name);
        atomic_store(&s->tab->realm_used[ri], p->realms[i].realm_used);
    }
    if (st == TP_OK)
        st = static_users(s, p, err);
    if (st == TP_OK)
        st = static_revoked(s, p, err);
    if (st != TP_OK)
        goto fail;
    tp__index_origins(s);
    *out = s;
    return TP_OK;
fail:
    tp__snapshot_free(s);
    return st;
}

static int
dup_str(const char *src, const char **dst)
{
    char *c;

    *dst = NULL;
    if (src == NULL)
        return 0;
    c = strdup(src);
    if (c == NULL)
        return -1;
    *dst = c;
    return 0;
}

tp_store *
tp__store_new_static(const tp__static_policy *p, const tp__static_options *o,
                     tp_error *err)
{
    static const tp__static_options none;
    snapshot *s = NULL;
    tp_store *st;
    int mu = 0, uq = 0;

    if (p == NULL) {
        tp__fail(err, TP_EINVAL, "a policy is required");
        return NULL;
    }
    if (o == NULL)
        o = &none;
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    /* As tp_store_new, minus what needs a server. */
    st->wake[0] = st->wake[1] = -1;
    st->change_fd = -1;
    st->max_staleness = o->max_staleness ? o->max_staleness : 30;
    st->reload_interval = 600;
    st->no_listen = 1;
    st->fail_mode = o->redis_fail_mode;
    st->issue_per_minute = o->issue_per_minute;
    st->uq_max = USAGE_QUEUE_MAX;
    st->sub_backoff = 100;
    mu = pthread_mutex_init(&st->mu, NULL) == 0;
    uq = mu && pthread_mutex_init(&st->uq_mu, NULL) == 0;
    if (!uq || pthread_cond_init(&st->uq_cv, NULL) != 0) {
        if (uq)
            pthread_mutex_destroy(&st->uq_mu);
        if (mu)
            pthread_mutex_destroy(&st->mu);
        free(st);
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    if (o->jwt != NULL) {
        st->jwt = *o->jwt;
        st->jwt_set = 1;
        if (dup_str(o->jwt->issuer, &st->jwt.issuer) != 0 ||
            dup_str(o->jwt->audience, &st->jwt.audience) != 0 ||
            dup_str(o->jwt->realm_claim, &st->jwt.realm_claim) != 0) {
            tp__fail(err, TP_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (!o->unloaded) {
        if (static_snapshot(p, st->jwt_set ? &st->jwt : NULL, &s, err) !=
            TP_OK)
            goto fail;
        tp__store_publish(st, s);
        if (o->stale)
            atomic_store(&st->current_ms,
                         atomic_load(&st->current_ms) -
                             ((long long)st->max_staleness + 10) * 1000);
    }
    tp__ok(err);
    return st;
fail:
    tp_store_free(st);
    return NULL;
}
