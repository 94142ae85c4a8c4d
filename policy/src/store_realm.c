/*
 * store_realm.c - questions about a realm, answered from the pinned
 * snapshot: its peer and host rules, its options and TURN URIs, the
 * origins allowed to use it, and the lists turnpolicyd exports to coturn.
 *
 * Invariants: a call pins once and unpins before it returns; what it
 * hands out is copied (tp_store_realm_urls into the caller's buffer) or
 * cleared (a host match's rule text), never a pointer into the snapshot.
 * Peer and host checks honour the realm's kill switch, as decisions do;
 * the options (which report it in .killed), listings, the origin check
 * and the coturn exports look a realm up without it.
 *
 * Threads: any number, lock-free.  Workload: a peer check per TURN
 * permission, a host check per proxied request, listings on reload.
 */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
tp_store_origin_realm(tp_store *st, const char *origin, char *realm,
                      size_t cap, tp_error *err)
{
    tp_status status = TP_OK;
    overlay *ov = NULL;
    const char *name;
    snapshot *s;
    size_t lo, hi, mid, len;
    int parity;

    if (st == NULL || origin == NULL || (realm == NULL && cap != 0))
        return tp__fail(err, TP_EINVAL, "store and origin are required");
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    /* The first pair of origin (sorted by origin, then realm index = name
     * order): its first realm. */
    lo = 0;
    hi = s->norigins;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (strcmp(s->origins[mid].origin, origin) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->norigins || strcmp(s->origins[lo].origin, origin) != 0) {
        status = tp__fail(err, TP_EORIGIN, "origin is not allowed for any "
                          "realm");
    } else if (realm != NULL) {
        name = s->realms[s->origins[lo].realm].name;
        len = strlen(name);
        if (len >= cap)
            status = tp__fail(err, TP_ENOSPACE, "realm name needs %zu "
                              "bytes, %zu given", len + 1, cap);
        else
            memcpy(realm, name, len + 1);
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
