/*
 * store_decide.c - the decisions about a subject, answered from the
 * pinned snapshot and overlay: may this credential, token or user act,
 * and within which limits.
 *
 * What: one rule for "may this subject act now" (subject_checks: realm
 * provisioned and not switched off, user provisioned and active, nothing
 * it holds issued before a revoke_user), composed into tp_store_verify
 * and tp_store_key (credentials: plus the credential's own revocation
 * and the byte budget), tp_store_issue, tp_store_subject_check and
 * tp_store_jwt_verify; and one rule for a session's limits
 * (tp_store_session_check: quota, budget, client network), with the
 * single answers tp_store_client_check, tp_store_user_quota and
 * tp_store_budget.
 *
 * Invariants: every call pins at most once at a time and unpins before
 * it returns (no pointer into the snapshot escapes); no call does I/O
 * except tp_store_issue's rate counter, which runs unpinned.  Refusals
 * carry a status and a message that names the realm or user, never a
 * secret.  Key material (hexkey) is wiped on refusal.
 *
 * Threads: any number, lock-free (store_snapshot.c).  Workload: coturn's
 * key lookup and nginx's request path: hundreds of thousands per second.
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address. */
static void
canonical_addr(tp_addr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
                                       0xff};

    if (a->family == AF_INET6 && memcmp(a->bytes, mapped, 12) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = AF_INET;
    }
}

static int
cidr_contains(const tp_addr *net, int len, const tp_addr *addr)
{
    tp_addr a = *addr, n = *net;
    int i;

    canonical_addr(&a);
    canonical_addr(&n);
    if (a.family != n.family)
        return 0;
    for (i = 0; len > 0; i++, len -= 8) {
        uint8_t mask = len >= 8 ? 0xff : (uint8_t)(0xff << (8 - len));

        if ((a.bytes[i] & mask) != (n.bytes[i] & mask))
            return 0;
    }
    return 1;
}

tp_status
tp__realm_lookup(const snapshot *s, const overlay *ov, const char *realm,
                 long *ri, tp_error *err)
{
    char shown[48];

    *ri = realm != NULL ? tp__find_realm(s, realm) : -1;
    if (*ri < 0) {
        tp__printable(shown, sizeof(shown), realm, 40);
        return tp__fail(err, TP_EUNKNOWNREALM, "realm \"%s\" is not "
                        "provisioned", shown);
    }
    if (s->realms[*ri].killed || tp__overlay_has(ov, OV_KILL, realm, "", NULL))
        return tp__fail(err, TP_EREALMKILLED, "realm %s is switched off",
                        realm);
    return TP_OK;
}

/* The byte budget in force for a user (0 = none): its own, else the
 * realm's, and only when the realm has a budget period. */
static uint64_t
budget_limit(const realm_entry *r, const user_entry *ue)
{
    int64_t b = ue->user_budget >= 0 ? ue->user_budget : r->user_budget;

    return b > 0 && r->budget_period > 0 ? (uint64_t)b : 0;
}

/* The realm's byte budget for all its users together (0 = none). */
static uint64_t
realm_budget_limit(const realm_entry *r)
{
    return r->realm_budget > 0 && r->budget_period > 0
               ? (uint64_t)r->realm_budget
               : 0;
}

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The user half of subject_checks, for realm already found at ri (and
 * not switched off) under the same pin. */
static tp_status
user_rule(const snapshot *s, const overlay *ov, const char *realm, long ri,
          const char *user_id, int64_t issued, const user_entry **ue,
          tp_error *err)
{
    int64_t before = 0;

    *ue = user_id != NULL ? tp__find_user(s, (size_t)ri, user_id) : NULL;
    if (*ue == NULL)
        return tp__fail(err, TP_EUNKNOWNUSER, "user %s is not provisioned "
                        "in realm %s", user_id != NULL ? user_id : "",
                        realm);
    if (!(*ue)->active ||
        tp__overlay_has(ov, OV_DISABLE, realm, user_id, NULL))
        return tp__fail(err, TP_EDISABLED, "user %s of realm %s is "
                        "disabled", user_id, realm);
    if (issued <= 0)
        return TP_OK;
    if (!tp__overlay_has(ov, OV_REVOKE_USER, realm, user_id, &before) ||
        before < (*ue)->revoked_before)
        before = (*ue)->revoked_before;
    if (before != 0 && issued < before)
        return tp__fail(err, TP_EREVOKED, "credentials of user %s issued "
                        "before %" PRId64 " are revoked", user_id, before);
    return TP_OK;
}

/*
 * The one rule for "may this subject act now" (pinned s, ov): the realm
 * is provisioned and not switched off, the user is provisioned and
 * active, and - when issued > 0 - nothing it holds was issued before a
 * revoke_user (snapshot or overlay).  *ri and *ue are set on TP_OK.
 * Used by credential checks (user_checks), issuance and JWT subjects.
 */
static tp_status
subject_checks(const snapshot *s, const overlay *ov, const char *realm,
               const char *user_id, int64_t issued, long *ri,
               const user_entry **ue, tp_error *err)
{
    tp_status status = tp__realm_lookup(s, ov, realm, ri, err);

    if (status != TP_OK)
        return status;
    return user_rule(s, ov, realm, *ri, user_id, issued, ue, err);
}

/* After the credential itself verified (realm found at ri under the
 * same pin): the subject's rule, this credential's own revocation, and
 * the budget as far as the snapshot knows it.  The realm is not looked
 * up again: each lookup costs a search and an overlay check per
 * decision. */
static tp_status
user_checks(const snapshot *s, const overlay *ov, const char *realm,
            long ri, const char *username, const tp_username *u,
            tp_error *err)
{
    const realm_entry *r = &s->realms[ri];
    const user_entry *ue = NULL;
    tp_status status;
    int64_t issued;
    uint64_t limit;

    /* A legacy username has no issue time: assume the earliest it could
     * have been issued within the realm's max_ttl. */
    issued = u->form == TP_FORM_V1 ? u->issued
                                   : u->expires - (int64_t)r->max_ttl;
    /* issued may be <= 0 only for a forged legacy name: check as 1 */
    status = user_rule(s, ov, realm, ri, u->user_id, issued > 0 ? issued : 1,
                       &ue, err);
    if (status != TP_OK)
        return status;
    if (tp__is_revoked(s, ri, username) ||
        tp__overlay_has(ov, OV_REVOKE_CRED, r->name, username, NULL))
        return tp__fail(err, TP_EREVOKED, "this credential of user %s has "
                        "been revoked", u->user_id);
    limit = budget_limit(r, ue);
    if (limit > 0 && ue->used >= limit)
        return tp__fail(err, TP_EBUDGET, "user %s of realm %s used %" PRIu64
                        " of its %" PRIu64 " bytes in the last %" PRId64
                        " s", u->user_id, r->name, ue->used, limit,
                        r->budget_period);
    limit = realm_budget_limit(r);
    if (limit > 0 && tp__realm_used(s, (size_t)ri) >= limit)
        return tp__fail(err, TP_EBUDGET, "realm %s used %" PRIu64 " of its "
                        "%" PRIu64 " bytes (all users) in the last %" PRId64
                        " s", r->name, tp__realm_used(s, (size_t)ri), limit,
                        r->budget_period);
    return TP_OK;
}

tp_status
tp_store_verify(tp_store *st, const char *realm, const char *username,
                const char *password, int64_t now, tp_username *parsed,
                tp_error *err)
{
    tp_status status;
    tp_username u;
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
        status = tp_credential_verify(s->realms[ri].kr, username, password,
                                      now, &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, ri, username, &u, err);
    tp__unpin(st, parity);
    if (status == TP_OK && parsed != NULL)
        *parsed = u;
    return status;
}

tp_status
tp_store_key(tp_store *st, const char *realm, const char *username,
             int64_t now, char hexkey[TP_LTKEY_HEX_LEN + 1],
             tp_username *parsed, tp_error *err)
{
    tp_status status;
    tp_username u;
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
        status = tp_credential_key(s->realms[ri].kr, username, now, hexkey,
                                   &u, err);
    if (status == TP_OK)
        status = user_checks(s, ov, realm, ri, username, &u, err);
    tp__unpin(st, parity);
    if (status != TP_OK && hexkey != NULL)
        tp__wipe(hexkey, TP_LTKEY_HEX_LEN + 1);
    if (status == TP_OK && parsed != NULL)
        *parsed = u;
    return status;
}

/* May user_id of realm be issued a credential (pinned snapshot s)? */
static tp_status
issue_check(const snapshot *s, const overlay *ov, const char *realm,
            const char *user_id, long *ri, const user_entry **ue,
            tp_error *err)
{
    return subject_checks(s, ov, realm, user_id, 0, ri, ue, err);
}

tp_status
tp_store_issue(tp_store *st, const char *realm, const char *user_id,
               uint32_t ttl, int64_t now, tp_credential *out, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL)
        return tp__fail(err, TP_EINVAL, "store is required");
    status = tp_user_id_check(user_id, err);
    if (status != TP_OK)
        return status;
    if (st->issue_per_minute > 0) {
        /* Count only for a user who may be issued one, and not while
         * pinned: the Redis round trip (up to its timeout) would hold
         * back the store thread's snapshot swaps. */
        s = tp__pin(st, &ov, &parity, &status, err);
        if (s == NULL)
            return status;
        status = issue_check(s, ov, realm, user_id, &ri, &ue, err);
        tp__unpin(st, parity);
        if (status == TP_OK)
            status = tp__rate_check(st, realm, user_id, now, err);
        if (status != TP_OK)
            return status;
    }
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = issue_check(s, ov, realm, user_id, &ri, &ue, err);
    /* Just after revoke_user (revoked_before is the next whole second),
     * date the credential at the revocation so it is not born revoked;
     * the SQL issue_credential does the same. */
    if (status == TP_OK && ue->revoked_before > now &&
        ue->revoked_before - now <= 1)
        now = ue->revoked_before;
    if (status == TP_OK)
        status = tp_credential_issue(s->realms[ri].kr, user_id, ttl, now,
                                     out, err);
    tp__unpin(st, parity);
    return status;
}

/* Find realm (the kill switch honoured, as everywhere) and user under a
 * pin; the caller unpins. */
static tp_status
realm_user(const snapshot *s, const overlay *ov, const char *realm,
           const char *user_id, long *ri, const user_entry **ue,
           tp_error *err)
{
    tp_status status = tp__realm_lookup(s, ov, realm, ri, err);

    if (status != TP_OK)
        return status;
    *ue = user_id != NULL ? tp__find_user(s, (size_t)*ri, user_id) : NULL;
    if (*ue == NULL)
        return tp__fail(err, TP_EUNKNOWNUSER, "user is not provisioned in "
                        "realm %s", realm);
    return TP_OK;
}

/* The quota in force for a user (0 = unlimited). */
static int64_t
quota_of(const realm_entry *r, const user_entry *ue)
{
    return ue->user_quota >= 0 ? ue->user_quota : r->user_quota;
}

tp_status
tp_store_session_check(tp_store *st, const char *realm, const char *user_id,
                       const tp_session_use *use, tp_error *err)
{
    const user_entry *ue = NULL;
    const realm_entry *r;
    uint64_t limit, spent;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int64_t quota;
    int parity;
    long ri;

    if (st == NULL || use == NULL)
        return tp__fail(err, TP_EINVAL, "store and use are required");
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status != TP_OK)
        goto out;
    r = &s->realms[ri];
    quota = quota_of(r, ue);
    if (quota > 0 && use->live >= (uint64_t)quota) {
        status = tp__fail(err, TP_EQUOTA, "%zu live allocations on this "
                          "node (quota %" PRId64 ")", use->live, quota);
        goto out;
    }
    limit = budget_limit(r, ue);
    spent = add_sat(ue->used, use->bytes);
    if (limit > 0 && spent >= limit) {
        status = tp__fail(err, TP_EBUDGET, "%" PRIu64 " bytes of its budget "
                          "of %" PRIu64 " used (%" PRIu64 " recorded, %"
                          PRIu64 " on this node not yet recorded)", spent,
                          limit, ue->used, use->bytes);
        goto out;
    }
    limit = realm_budget_limit(r);
    spent = add_sat(tp__realm_used(s, (size_t)ri), use->realm_bytes);
    if (limit > 0 && spent >= limit) {
        status = tp__fail(err, TP_EBUDGET, "realm %s: %" PRIu64 " bytes of "
                          "its budget of %" PRIu64 " (all users) used (%"
                          PRIu64 " recorded, %" PRIu64 " on this node not "
                          "yet recorded)", realm, spent, limit,
                          tp__realm_used(s, (size_t)ri), use->realm_bytes);
        goto out;
    }
    if (use->client != NULL && ue->has_cidr &&
        !cidr_contains(user_cidr(ue), ue->cidr_len, use->client)) {
        status = tp__fail(err, TP_ECLIENTADDR, "user %s of realm %s may "
                          "only connect from its bound network", user_id,
                          realm);
        goto out;
    }
    tp__ok(err);
out:
    tp__unpin(st, parity);
    return status;
}

tp_status
tp_store_client_check(tp_store *st, const char *realm, const char *user_id,
                      const tp_addr *client, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || client == NULL)
        return tp__fail(err, TP_EINVAL, "store and client are required");
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK && ue->has_cidr &&
        !cidr_contains(user_cidr(ue), ue->cidr_len, client))
        status = tp__fail(err, TP_ECLIENTADDR, "user %s of realm %s may "
                          "only connect from its bound network", user_id,
                          realm);
    tp__unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}

tp_status
tp_store_user_quota(tp_store *st, const char *realm, const char *user_id,
                    int64_t *quota, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || quota == NULL)
        return tp__fail(err, TP_EINVAL, "store and output are required");
    *quota = 0;
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *quota = quota_of(&s->realms[ri], ue);
        tp__ok(err);
    }
    tp__unpin(st, parity);
    return status;
}

tp_status
tp_store_budget(tp_store *st, const char *realm, const char *user_id,
                uint64_t *limit, uint64_t *used, tp_error *err)
{
    const user_entry *ue = NULL;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || limit == NULL || used == NULL)
        return tp__fail(err, TP_EINVAL, "store and outputs are required");
    *limit = *used = 0;
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = realm_user(s, ov, realm, user_id, &ri, &ue, err);
    if (status == TP_OK) {
        *limit = budget_limit(&s->realms[ri], ue);
        *used = ue->used;
        tp__ok(err);
    }
    tp__unpin(st, parity);
    return status;
}

/* The realm claim of a token, before verification: only to choose the
 * key set.  0 and name filled; -1 when the payload cannot be read (not
 * base64url or not JSON, a NUL in a string: the verifier would call it
 * malformed too); -2 when it names no realm; -3 when the claim is not a
 * realm name's string (a number, too long). */
static int
unverified_realm(const char *token, size_t len, const char *claim,
                 char *name, size_t cap)
{
    unsigned char *buf;
    const char *p1, *p2, *v;
    json_error_t jerr;
    json_t *j, *c;
    long n;
    int rc = -1;

    if (len > TP_JWT_MAX)
        return -1;
    p1 = memchr(token, '.', len);
    if (p1 == NULL)
        return -1;
    p2 = memchr(p1 + 1, '.', len - (size_t)(p1 + 1 - token));
    if (p2 == NULL)
        return -1;
    buf = malloc(TP_JWT_MAX);
    if (buf == NULL)
        return -1;
    n = tp__b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), buf, TP_JWT_MAX);
    if (n > 0) {
        /* integers as reals, as the verifier reads them: 1e30 is JSON */
        j = json_loadb((const char *)buf, (size_t)n, JSON_DECODE_INT_AS_REAL,
                       &jerr);
        c = j != NULL ? json_object_get(j, claim) : NULL;
        v = c != NULL ? json_string_value(c) : NULL;
        if (v != NULL && tp__strlcpy(name, v, cap) == 0)
            rc = 0;
        else if (c != NULL)
            rc = -3;
        else if (j != NULL)
            rc = -2;
        json_decref(j);
    }
    free(buf);
    return rc;
}

tp_status
tp_store_jwt_verify(tp_store *st, const char *realm, const char *token,
                    size_t len, int64_t now, tp_jwt_claims *claims,
                    tp_error *err)
{
    char name[TP_REALM_MAX + 1];
    tp_jwt_claims cl;
    tp_status status;
    overlay *ov = NULL;
    snapshot *s;
    int parity;
    long ri;

    if (st == NULL || token == NULL)
        return tp__fail(err, TP_EINVAL, "store and token are required");
    if (len > TP_JWT_MAX)
        return tp__fail(err, TP_ETOOLONG, "token is longer than %d bytes",
                        TP_JWT_MAX);
    if (realm == NULL) {
        const char *claim = st->jwt.realm_claim != NULL ? st->jwt.realm_claim
                                                        : "realm";

        int rc = unverified_realm(token, len, claim, name, sizeof(name));

        if (rc == -1)
            return tp__fail(err, TP_EJWTMALFORMED, "token payload is not "
                            "base64url JSON (or holds a NUL character)");
        if (rc == -3)
            return tp__fail(err, TP_EJWTCLAIM, "token realm claim \"%s\" is "
                            "not a string of 1 to %d bytes", claim,
                            TP_REALM_MAX);
        if (rc != 0)
            return tp__fail(err, TP_EUNKNOWNREALM, "token names no realm "
                            "(claim \"%s\")", claim);
        realm = name;
    }
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    status = tp__realm_lookup(s, ov, realm, &ri, err);
    if (status == TP_OK)
        status = tp_jwt_verify(s->realms[ri].jk, token, len, now, &cl, err);
    tp__unpin(st, parity);
    if (status == TP_OK && strcmp(cl.realm, realm) != 0)
        status = tp__fail(err, TP_EJWTCLAIM, "token's realm claim does not "
                          "name realm %s", realm);
    if (status == TP_OK && claims != NULL)
        *claims = cl;
    return status;
}

tp_status
tp_store_subject_check(tp_store *st, const char *realm, const char *user_id,
                       int64_t issued_at, tp_error *err)
{
    const user_entry *ue = NULL;
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
    status = subject_checks(s, ov, realm, user_id, issued_at, &ri, &ue,
                            err);
    tp__unpin(st, parity);
    if (status == TP_OK)
        tp__ok(err);
    return status;
}
