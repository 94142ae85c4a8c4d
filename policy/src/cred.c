/*
 * cred.c - time-limited TURN credentials (TURN REST API compatible).
 *
 * What: a tp_keyring holds one realm's credential secrets, each under a key
 * id (kid) and in one of three states (signing, verify-only, retired), plus
 * an optional legacy secret for the plain "<expiry>:<user>" usernames of
 * existing backends.  It issues credentials
 *
 *     username = <expiry>:<user_id>:<kid>:<iat>
 *     password = base64(HMAC-SHA1(secret(kid), username))
 *
 * verifies them, and derives coturn's long-term key
 * hex(MD5(username ":" realm ":" password)) for a username alone.
 *
 * Why this shape: the password rule is exactly the TURN REST API's, so a
 * stock coturn in use-auth-secret mode accepts the same credentials; the
 * kid in the username lets the verifier pick the secret without trial (so
 * rotation costs nothing and an unknown or retired secret is reported as
 * such), and iat makes "everything issued before T" revocation exact.
 *
 * Invariants: secrets are never stored in the clear - only as HMAC-SHA1
 * pads precomputed when added (the SHA-1 states after absorbing key^ipad
 * and key^opad), wiped on free, never logged, never returned.  At most one
 * secret is signing.  A keyring is immutable once built, so lookups are
 * safe from any number of threads.
 *
 * Workload: issuing and deriving are the hot paths of turnpolicyd (one
 * derivation per new TURN session) and of credential endpoints.  They
 * allocate nothing: two SHA-1 compressions for the HMAC of a short
 * username (the pads are reused), one or two MD5 blocks for the key.
 * OpenSSL's low-level SHA1_* and MD5_* calls are used because they are the
 * only OpenSSL interface whose state is a plain struct that can be copied;
 * they are deprecated in OpenSSL 3 but remain supported and fast.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tp_internal.h"

#include <openssl/evp.h>
#include <openssl/md5.h>
#include <openssl/sha.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHA1_BLOCK 64
#define SHA1_LEN 20

/* HMAC-SHA1 with the key already absorbed into both pads. */
typedef struct hmac_sha1 {
    SHA_CTX inner;
    SHA_CTX outer;
} hmac_sha1;

typedef struct keyring_secret {
    char kid[TP_KID_MAX + 1];
    tp_secret_state state;
    hmac_sha1 mac;
} keyring_secret;

struct tp_keyring {
    char realm[TP_REALM_MAX + 1];
    uint32_t default_ttl;
    uint32_t max_ttl;
    uint32_t clock_skew;
    keyring_secret *secrets; /* owned; nsecrets used of cap */
    size_t nsecrets;
    size_t cap;
    int signing;             /* index into secrets, -1 if none */
    int has_legacy;
    hmac_sha1 legacy;
};

/* ------------------------------------------------------------------ */
/* Identifiers                                                         */
/* ------------------------------------------------------------------ */

/* Characters a user id may contain: printable ASCII except those that
 * break the username grammar (:), coturn's statsdb format strings (%),
 * its Redis key paths (/), or JSON and shell quoting.  A table, because
 * this runs for every byte of every username on the hot path. */
static const unsigned char user_id_ok[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['&'] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['='] = 1,
    ['?'] = 1, ['@'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1,
    ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int
user_id_char_ok(unsigned char c)
{
    return user_id_ok[c];
}

static int
name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Shared checker for user ids, realms and kids. */
static tp_status
ident_check(const char *what, const char *s, size_t len, size_t max,
            int (*ok)(unsigned char), tp_error *err)
{
    char shown[48];
    size_t i;

    if (s == NULL || len == 0)
        return tp__fail(err, TP_EINVAL, "%s is empty", what);
    if (len > max)
        return tp__fail(err, TP_ETOOLONG, "%s is %zu bytes long; the limit "
                        "is %zu", what, len, max);
    for (i = 0; i < len; i++) {
        if (!ok((unsigned char)s[i])) {
            tp__printable(shown, sizeof(shown), s, 32);
            return tp__fail(err, TP_EBADCHAR, "%s \"%s\" contains a "
                            "forbidden character at offset %zu (byte 0x%02x)",
                            what, shown, i, (unsigned char)s[i]);
        }
    }
    return TP_OK;
}

static tp_status
kid_check_n(const char *kid, size_t len, tp_error *err)
{
    tp_status st;
    size_t i;

    st = ident_check("kid", kid, len, TP_KID_MAX, name_char_ok, err);
    if (st != TP_OK)
        return st;
    for (i = 0; i < len; i++) {
        if (kid[i] < '0' || kid[i] > '9')
            return TP_OK;
    }
    return tp__fail(err, TP_EBADCHAR, "kid must not be all digits");
}

tp_status
tp_user_id_check(const char *user_id, tp_error *err)
{
    return ident_check("user id", user_id,
                       user_id != NULL ? strlen(user_id) : 0,
                       TP_USER_ID_MAX, user_id_char_ok, err);
}

tp_status
tp_realm_check(const char *realm, tp_error *err)
{
    return ident_check("realm", realm, realm != NULL ? strlen(realm) : 0,
                       TP_REALM_MAX, name_char_ok, err);
}

tp_status
tp_kid_check(const char *kid, tp_error *err)
{
    return kid_check_n(kid, kid != NULL ? strlen(kid) : 0, err);
}

const char *
tp_secret_state_name(tp_secret_state st)
{
    switch (st) {
    case TP_SECRET_SIGNING:
        return "signing";
    case TP_SECRET_VERIFY_ONLY:
        return "verify-only";
    case TP_SECRET_RETIRED:
        return "retired";
    }
    return "unknown";
}

tp_status
tp_secret_state_parse(const char *s, tp_secret_state *out)
{
    if (s == NULL)
        return TP_EINVAL;
    if (strcmp(s, "signing") == 0)
        *out = TP_SECRET_SIGNING;
    else if (strcmp(s, "verify-only") == 0)
        *out = TP_SECRET_VERIFY_ONLY;
    else if (strcmp(s, "retired") == 0)
        *out = TP_SECRET_RETIRED;
    else
        return TP_EINVAL;
    return TP_OK;
}

/* ------------------------------------------------------------------ */
/* HMAC-SHA1 with precomputed pads                                     */
/* ------------------------------------------------------------------ */

static int
hmac_init(hmac_sha1 *h, const void *key, size_t len)
{
    unsigned char k[SHA1_BLOCK];
    unsigned char pad[SHA1_BLOCK];
    size_t i;
    int ok = 0;

    memset(k, 0, sizeof(k));
    if (len > SHA1_BLOCK) {
        if (SHA1(key, len, k) == NULL)
            goto out;
    } else {
        memcpy(k, key, len);
    }
    for (i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    if (!SHA1_Init(&h->inner) || !SHA1_Update(&h->inner, pad, SHA1_BLOCK))
        goto out;
    for (i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    if (!SHA1_Init(&h->outer) || !SHA1_Update(&h->outer, pad, SHA1_BLOCK))
        goto out;
    ok = 1;
out:
    tp__wipe(k, sizeof(k));
    tp__wipe(pad, sizeof(pad));
    return ok;
}

/*
 * Finish a SHA-1 whose first 64 bytes (a key pad) are already absorbed in
 * *st: hash msg, pad by hand and run the compression function directly.
 * This is the whole cost of an HMAC half: one block for a username of up
 * to 55 bytes, two up to 119.  SHA1_Transform only touches h0..h4.
 */
static void
sha1_after_pad(const SHA_CTX *st, const unsigned char *msg, size_t len,
               unsigned char out[SHA1_LEN])
{
    unsigned char block[2 * SHA1_BLOCK];
    uint64_t bits = (uint64_t)(SHA1_BLOCK + len) * 8;
    SHA_LONG h[5];
    size_t tail, i;
    SHA_CTX c;

    c = *st;
    while (len >= SHA1_BLOCK) {
        SHA1_Transform(&c, msg);
        msg += SHA1_BLOCK;
        len -= SHA1_BLOCK;
    }
    tail = len < 56 ? SHA1_BLOCK : 2 * SHA1_BLOCK;
    memcpy(block, msg, len);
    block[len] = 0x80;
    memset(block + len + 1, 0, tail - len - 1 - 8);
    for (i = 0; i < 8; i++)
        block[tail - 1 - i] = (unsigned char)(bits >> (8 * i));
    SHA1_Transform(&c, block);
    if (tail > SHA1_BLOCK)
        SHA1_Transform(&c, block + SHA1_BLOCK);
    h[0] = c.h0;
    h[1] = c.h1;
    h[2] = c.h2;
    h[3] = c.h3;
    h[4] = c.h4;
    for (i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
    tp__wipe(&c, sizeof(c));
    tp__wipe(block, tail);
}

static int
hmac_compute(const hmac_sha1 *h, const void *msg, size_t len,
             unsigned char out[SHA1_LEN])
{
    unsigned char inner[SHA1_LEN];

    sha1_after_pad(&h->inner, msg, len, inner);
    sha1_after_pad(&h->outer, inner, SHA1_LEN, out);
    tp__wipe(inner, sizeof(inner));
    return 1;
}

/* base64(HMAC-SHA1(mac, username)) into pw (TP_PASSWORD_LEN + 1). */
static tp_status
password_for(const hmac_sha1 *mac, const char *username, size_t len,
             char pw[TP_PASSWORD_LEN + 1], tp_error *err)
{
    unsigned char digest[SHA1_LEN];
    int n;

    if (!hmac_compute(mac, username, len, digest))
        return tp__fail(err, TP_ECRYPTO, "HMAC-SHA1 failed");
    n = EVP_EncodeBlock((unsigned char *)pw, digest, SHA1_LEN);
    tp__wipe(digest, sizeof(digest));
    if (n != TP_PASSWORD_LEN)
        return tp__fail(err, TP_ECRYPTO, "base64 encoding failed");
    return TP_OK;
}

/* ------------------------------------------------------------------ */
/* Keyring                                                             */
/* ------------------------------------------------------------------ */

tp_keyring *
tp_keyring_new(const char *realm, const tp_keyring_options *opts,
               tp_error *err)
{
    tp_keyring *kr;
    uint32_t dttl, mttl, skew;

    if (tp_realm_check(realm, err) != TP_OK)
        return NULL;
    mttl = (opts != NULL && opts->max_ttl != 0) ? opts->max_ttl : 86400;
    dttl = (opts != NULL && opts->default_ttl != 0) ? opts->default_ttl
                                                    : (mttl < 3600 ? mttl
                                                                   : 3600);
    skew = (opts != NULL && opts->clock_skew != 0) ? opts->clock_skew : 60;
    if (mttl > TP_TTL_MAX) {
        tp__fail(err, TP_ETTL, "max_ttl %" PRIu32 " exceeds the limit of %d "
                 "seconds", mttl, TP_TTL_MAX);
        return NULL;
    }
    if (dttl > mttl) {
        tp__fail(err, TP_ETTL, "default_ttl %" PRIu32 " exceeds max_ttl %"
                 PRIu32, dttl, mttl);
        return NULL;
    }
    if (skew > 3600) {
        tp__fail(err, TP_EINVAL, "clock_skew %" PRIu32 " is over an hour",
                 skew);
        return NULL;
    }
    kr = calloc(1, sizeof(*kr));
    if (kr == NULL) {
        tp__fail(err, TP_ENOMEM, "out of memory allocating a keyring");
        return NULL;
    }
    memcpy(kr->realm, realm, strlen(realm) + 1);
    kr->default_ttl = dttl;
    kr->max_ttl = mttl;
    kr->clock_skew = skew;
    kr->signing = -1;
    tp__ok(err);
    return kr;
}

void
tp_keyring_free(tp_keyring *kr)
{
    if (kr == NULL)
        return;
    if (kr->secrets != NULL) {
        tp__wipe(kr->secrets, kr->cap * sizeof(*kr->secrets));
        free(kr->secrets);
    }
    tp__wipe(kr, sizeof(*kr));
    free(kr);
}

const char *
tp_keyring_realm(const tp_keyring *kr)
{
    return kr != NULL ? kr->realm : NULL;
}

static const keyring_secret *
keyring_find(const tp_keyring *kr, const char *kid, size_t len)
{
    size_t i;

    for (i = 0; i < kr->nsecrets; i++) {
        const keyring_secret *s = &kr->secrets[i];

        if (strncmp(s->kid, kid, len) == 0 && s->kid[len] == '\0')
            return s;
    }
    return NULL;
}

tp_status
tp_keyring_add(tp_keyring *kr, const char *kid, const void *secret,
               size_t len, tp_secret_state state, tp_error *err)
{
    keyring_secret *s;
    tp_status st;

    if (kr == NULL || (secret == NULL && len > 0))
        return tp__fail(err, TP_EINVAL, "keyring and secret are required");
    st = tp_kid_check(kid, err);
    if (st != TP_OK)
        return st;
    if (state != TP_SECRET_SIGNING && state != TP_SECRET_VERIFY_ONLY &&
        state != TP_SECRET_RETIRED)
        return tp__fail(err, TP_EINVAL, "unknown secret state %d",
                        (int)state);
    if (state != TP_SECRET_RETIRED && len < TP_SECRET_MIN)
        return tp__fail(err, TP_EKEY, "secret %s is %zu bytes; at least %d "
                        "are required", kid, len, TP_SECRET_MIN);
    if (len > TP_SECRET_MAX)
        return tp__fail(err, TP_EKEY, "secret %s is %zu bytes; at most %d "
                        "are allowed", kid, len, TP_SECRET_MAX);
    if (keyring_find(kr, kid, strlen(kid)) != NULL)
        return tp__fail(err, TP_EEXISTS, "realm %s already has a secret "
                        "with kid %s", kr->realm, kid);
    if (state == TP_SECRET_SIGNING && kr->signing >= 0)
        return tp__fail(err, TP_EEXISTS, "realm %s already has a signing "
                        "secret (%s); add others as verify-only", kr->realm,
                        kr->secrets[kr->signing].kid);
    if (kr->nsecrets == kr->cap) {
        size_t ncap = kr->cap == 0 ? 4 : kr->cap * 2;
        keyring_secret *ns;

        /* Grow by copy so the old array can be wiped, not just freed. */
        ns = calloc(ncap, sizeof(*ns));
        if (ns == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory adding a secret");
        if (kr->secrets != NULL) {
            memcpy(ns, kr->secrets, kr->nsecrets * sizeof(*ns));
            tp__wipe(kr->secrets, kr->cap * sizeof(*ns));
            free(kr->secrets);
        }
        kr->secrets = ns;
        kr->cap = ncap;
    }
    s = &kr->secrets[kr->nsecrets];
    memset(s, 0, sizeof(*s));
    memcpy(s->kid, kid, strlen(kid) + 1);
    s->state = state;
    if (state != TP_SECRET_RETIRED && !hmac_init(&s->mac, secret, len)) {
        tp__wipe(s, sizeof(*s));
        return tp__fail(err, TP_ECRYPTO, "SHA-1 initialization failed");
    }
    if (state == TP_SECRET_SIGNING)
        kr->signing = (int)kr->nsecrets;
    kr->nsecrets++;
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_keyring_set_legacy(tp_keyring *kr, const void *secret, size_t len,
                      tp_error *err)
{
    if (kr == NULL || secret == NULL)
        return tp__fail(err, TP_EINVAL, "keyring and secret are required");
    if (len == 0 || len > TP_SECRET_MAX)
        return tp__fail(err, TP_EKEY, "legacy secret must be 1..%d bytes",
                        TP_SECRET_MAX);
    if (kr->has_legacy)
        return tp__fail(err, TP_EEXISTS, "realm %s already has a legacy "
                        "secret", kr->realm);
    if (!hmac_init(&kr->legacy, secret, len))
        return tp__fail(err, TP_ECRYPTO, "SHA-1 initialization failed");
    kr->has_legacy = 1;
    tp__ok(err);
    return TP_OK;
}

/* ------------------------------------------------------------------ */
/* Username grammar                                                    */
/* ------------------------------------------------------------------ */

/*
 * One pass over the username: every byte is checked against the user-id
 * table (which excludes ':', '%', whitespace and controls), fields are
 * split at ':', then each field gets its own rule.  *lenp receives the
 * length so callers need not measure it again.
 */
static tp_status
parse_username(const char *username, tp_username *out, size_t *lenp,
               tp_error *err)
{
    const char *f[5];
    size_t flen[5];
    size_t len, i, nf = 0, start = 0;
    char shown[48];
    tp_status st;

    if (username == NULL || username[0] == '\0')
        return tp__fail(err, TP_EINVAL, "username is empty");
    for (i = 0;; i++) {
        unsigned char c = (unsigned char)username[i];

        if (c == '\0' || c == ':') {
            if (nf == TP__ARRAY_LEN(f))
                goto malformed;
            f[nf] = username + start;
            flen[nf] = i - start;
            nf++;
            start = i + 1;
            if (c == '\0')
                break;
        } else if (!user_id_ok[c]) {
            if (i >= TP_USERNAME_MAX)
                break;
            tp__printable(shown, sizeof(shown), username, 32);
            return tp__fail(err, TP_EBADCHAR, "username \"%s\" contains a "
                            "forbidden character at offset %zu (byte 0x%02x)",
                            shown, i, c);
        }
        if (i >= TP_USERNAME_MAX)
            return tp__fail(err, TP_ETOOLONG, "username is longer than %d "
                            "bytes", TP_USERNAME_MAX);
    }
    len = i;
    if (nf != 2 && nf != 4)
        goto malformed;
    if (tp__parse_i64(f[0], flen[0], &out->expires) != 0)
        return tp__fail(err, TP_EMALFORMED, "username must start with the "
                        "expiry time in decimal Unix seconds");
    if (flen[1] == 0)
        return tp__fail(err, TP_EMALFORMED, "username has an empty user id");
    if (flen[1] > TP_USER_ID_MAX)
        return tp__fail(err, TP_ETOOLONG, "user id is %zu bytes long; the "
                        "limit is %d", flen[1], TP_USER_ID_MAX);
    memcpy(out->user_id, f[1], flen[1]);
    out->user_id[flen[1]] = '\0';
    if (nf == 2) {
        out->form = TP_FORM_LEGACY;
        out->issued = 0;
        out->kid[0] = '\0';
        *lenp = len;
        return TP_OK;
    }
    if (flen[2] == 0)
        return tp__fail(err, TP_EMALFORMED, "username has an empty kid");
    st = kid_check_n(f[2], flen[2], err);
    if (st != TP_OK)
        return st;
    memcpy(out->kid, f[2], flen[2]);
    out->kid[flen[2]] = '\0';
    if (tp__parse_i64(f[3], flen[3], &out->issued) != 0)
        return tp__fail(err, TP_EMALFORMED, "username must end with the "
                        "issue time in decimal Unix seconds");
    if (out->issued > out->expires)
        return tp__fail(err, TP_EMALFORMED, "username expires before it "
                        "was issued");
    out->form = TP_FORM_V1;
    *lenp = len;
    return TP_OK;

malformed:
    return tp__fail(err, TP_EMALFORMED, "username must be "
                    "<expiry>:<user_id>:<kid>:<iat> (or the legacy "
                    "<expiry>:<user_id>); it has %s%zu field%s",
                    nf == TP__ARRAY_LEN(f) ? "more than " : "", nf,
                    nf == 1 ? "" : "s");
}

tp_status
tp_username_parse(const char *username, tp_username *out, tp_error *err)
{
    tp_status st;
    size_t len;

    if (out == NULL)
        return tp__fail(err, TP_EINVAL, "output is required");
    st = parse_username(username, out, &len, err);
    if (st == TP_OK)
        tp__ok(err);
    return st;
}

/* Decimal of v (>= 0) at p; returns the number of digits. */
static size_t
put_u64(char *p, int64_t v)
{
    char tmp[20];
    size_t n = 0, i;
    uint64_t u = (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/*
 * Resolve the secret for a parsed username and apply the clock checks.
 * On TP_OK *mac points at the pads to use.
 */
static tp_status
resolve(const tp_keyring *kr, const tp_username *u, const hmac_sha1 **mac,
        tp_error *err)
{
    const keyring_secret *s;

    if (u->form == TP_FORM_LEGACY) {
        if (!kr->has_legacy)
            return tp__fail(err, TP_EUNKNOWNKID, "realm %s has no legacy "
                            "secret for <expiry>:<user_id> usernames",
                            kr->realm);
        *mac = &kr->legacy;
        return TP_OK;
    }
    s = keyring_find(kr, u->kid, strlen(u->kid));
    if (s == NULL)
        return tp__fail(err, TP_EUNKNOWNKID, "realm %s has no secret with "
                        "kid %s", kr->realm, u->kid);
    if (s->state == TP_SECRET_RETIRED)
        return tp__fail(err, TP_ERETIRED, "secret %s of realm %s is "
                        "retired", u->kid, kr->realm);
    *mac = &s->mac;
    return TP_OK;
}

static tp_status
clock_checks(const tp_keyring *kr, const tp_username *u, int64_t now,
             tp_error *err)
{
    if (u->form == TP_FORM_V1) {
        if (u->issued > now + (int64_t)kr->clock_skew)
            return tp__fail(err, TP_ENOTYETVALID, "credential issued at %"
                            PRId64 ", %" PRId64 " s in the future",
                            u->issued, u->issued - now);
        if (u->expires - u->issued > (int64_t)kr->max_ttl)
            return tp__fail(err, TP_ETTL, "credential lifetime %" PRId64
                            " s exceeds the realm's max_ttl %" PRIu32,
                            u->expires - u->issued, kr->max_ttl);
    } else if (u->expires > now &&
               u->expires - now > (int64_t)kr->max_ttl) {
        return tp__fail(err, TP_ETTL, "legacy credential expires in %"
                        PRId64 " s, beyond the realm's max_ttl %" PRIu32,
                        u->expires - now, kr->max_ttl);
    }
    if (now >= u->expires)
        return tp__fail(err, TP_EEXPIRED, "credential expired at %" PRId64
                        " (%" PRId64 " s ago)", u->expires,
                        now - u->expires);
    return TP_OK;
}

tp_status
tp_credential_issue(const tp_keyring *kr, const char *user_id, uint32_t ttl,
                    int64_t now, tp_credential *out, tp_error *err)
{
    const keyring_secret *s;
    size_t n, idlen, kidlen;
    tp_status st;
    char *p;

    if (kr == NULL || out == NULL)
        return tp__fail(err, TP_EINVAL, "keyring and output are required");
    st = tp_user_id_check(user_id, err);
    if (st != TP_OK)
        return st;
    if (ttl == 0)
        ttl = kr->default_ttl;
    if (ttl > kr->max_ttl)
        return tp__fail(err, TP_ETTL, "ttl %" PRIu32 " exceeds the max_ttl "
                        "%" PRIu32 " of realm %s", ttl, kr->max_ttl,
                        kr->realm);
    if (now <= 0 || now > INT64_MAX / 2)
        return tp__fail(err, TP_EINVAL, "clock value %" PRId64 " is out of "
                        "range", now);
    if (kr->signing < 0)
        return tp__fail(err, TP_ENOSIGNING, "realm %s has no signing "
                        "secret; add or rotate one", kr->realm);
    s = &kr->secrets[kr->signing];
    idlen = strlen(user_id);
    kidlen = strlen(s->kid);
    /* 19 + 1 + 128 + 1 + 32 + 1 + 19 = 201 <= TP_USERNAME_MAX */
    p = out->username;
    n = put_u64(p, now + (int64_t)ttl);
    p[n++] = ':';
    memcpy(p + n, user_id, idlen);
    n += idlen;
    p[n++] = ':';
    memcpy(p + n, s->kid, kidlen);
    n += kidlen;
    p[n++] = ':';
    n += put_u64(p + n, now);
    p[n] = '\0';
    st = password_for(&s->mac, out->username, n, out->password, err);
    if (st != TP_OK)
        return st;
    out->ttl = ttl;
    out->issued = now;
    out->expires = now + (int64_t)ttl;
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_credential_verify(const tp_keyring *kr, const char *username,
                     const char *password, int64_t now, tp_username *parsed,
                     tp_error *err)
{
    char want[TP_PASSWORD_LEN + 1];
    const hmac_sha1 *mac;
    tp_username u;
    tp_status st;
    size_t len;
    int diff;

    if (kr == NULL || password == NULL)
        return tp__fail(err, TP_EINVAL, "keyring and password are required");
    st = parse_username(username, &u, &len, err);
    if (st != TP_OK)
        return st;
    st = resolve(kr, &u, &mac, err);
    if (st != TP_OK)
        return st;
    st = password_for(mac, username, len, want, err);
    if (st != TP_OK)
        return st;
    /* The length of a valid password is public (always 28). */
    diff = strnlen(password, TP_PASSWORD_LEN + 1) != TP_PASSWORD_LEN ||
           tp__ct_memcmp(want, password, TP_PASSWORD_LEN) != 0;
    tp__wipe(want, sizeof(want));
    if (diff)
        return tp__fail(err, TP_EBADPASSWORD, "password does not match "
                        "username for realm %s", kr->realm);
    st = clock_checks(kr, &u, now, err);
    if (st != TP_OK)
        return st;
    if (parsed != NULL)
        *parsed = u;
    tp__ok(err);
    return TP_OK;
}

static tp_status
md5_hex(const char *username, const char *realm, const char *password,
        char hexkey[TP_LTKEY_HEX_LEN + 1], tp_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[MD5_DIGEST_LENGTH];
    MD5_CTX c;
    size_t i;
    int ok;

    ok = MD5_Init(&c) && MD5_Update(&c, username, strlen(username)) &&
         MD5_Update(&c, ":", 1) && MD5_Update(&c, realm, strlen(realm)) &&
         MD5_Update(&c, ":", 1) &&
         MD5_Update(&c, password, strlen(password)) && MD5_Final(d, &c);
    tp__wipe(&c, sizeof(c));
    if (!ok) {
        tp__wipe(d, sizeof(d));
        return tp__fail(err, TP_ECRYPTO, "MD5 failed");
    }
    for (i = 0; i < MD5_DIGEST_LENGTH; i++) {
        hexkey[2 * i] = hex[d[i] >> 4];
        hexkey[2 * i + 1] = hex[d[i] & 15];
    }
    hexkey[TP_LTKEY_HEX_LEN] = '\0';
    tp__wipe(d, sizeof(d));
    return TP_OK;
}

tp_status
tp_longterm_key(const char *username, const char *realm,
                const char *password, char hexkey[TP_LTKEY_HEX_LEN + 1],
                tp_error *err)
{
    tp_status st;

    if (username == NULL || realm == NULL || password == NULL ||
        hexkey == NULL)
        return tp__fail(err, TP_EINVAL, "username, realm, password and "
                        "output are required");
    st = md5_hex(username, realm, password, hexkey, err);
    if (st == TP_OK)
        tp__ok(err);
    return st;
}

tp_status
tp_credential_key(const tp_keyring *kr, const char *username, int64_t now,
                  char hexkey[TP_LTKEY_HEX_LEN + 1], tp_username *parsed,
                  tp_error *err)
{
    char pw[TP_PASSWORD_LEN + 1];
    const hmac_sha1 *mac;
    tp_username u;
    tp_status st;
    size_t len;

    if (kr == NULL || hexkey == NULL)
        return tp__fail(err, TP_EINVAL, "keyring and output are required");
    st = parse_username(username, &u, &len, err);
    if (st != TP_OK)
        return st;
    st = resolve(kr, &u, &mac, err);
    if (st != TP_OK)
        return st;
    st = clock_checks(kr, &u, now, err);
    if (st != TP_OK)
        return st;
    st = password_for(mac, username, len, pw, err);
    if (st == TP_OK)
        st = md5_hex(username, kr->realm, pw, hexkey, err);
    tp__wipe(pw, sizeof(pw));
    if (st != TP_OK)
        return st;
    if (parsed != NULL)
        *parsed = u;
    tp__ok(err);
    return TP_OK;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

typedef struct jbuf {
    char *p;
    size_t cap;
    size_t len;
    int overflow;
} jbuf;

static void
jb_raw(jbuf *b, const char *s, size_t n)
{
    if (b->overflow || n >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
jb_str(jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6];

    jb_raw(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jb_raw(b, esc, 2);
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            jb_raw(b, esc, 6);
        } else {
            jb_raw(b, (const char *)&c, 1);
        }
    }
    jb_raw(b, "\"", 1);
}

static void
jb_int(jbuf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

    if (n > 0)
        jb_raw(b, tmp, (size_t)n);
}

static void
jb_urls(jbuf *b, const char *const *urls, size_t nurls)
{
    size_t i;

    jb_raw(b, "[", 1);
    for (i = 0; i < nurls; i++) {
        if (i > 0)
            jb_raw(b, ",", 1);
        jb_str(b, urls[i]);
    }
    jb_raw(b, "]", 1);
}

tp_status
tp_credential_json(const tp_credential *cred, const char *const *urls,
                   size_t nurls, tp_cred_json shape, char *buf, size_t cap,
                   size_t *written, tp_error *err)
{
    if (shape == TP_JSON_ACS_NATIVE)
        return tp__fail(err, TP_EINVAL, "the acs-native shape needs the "
                        "realm: use tp_credential_json_realm");
    return tp_credential_json_realm(cred, NULL, urls, nurls, shape, buf, cap,
                                    written, err);
}

tp_status
tp_cred_json_parse(const char *name, tp_cred_json *shape, tp_error *err)
{
    char shown[40];

    if (name == NULL || shape == NULL)
        return tp__fail(err, TP_EINVAL, "name and shape are required");
    if (strcmp(name, "ice") == 0)
        *shape = TP_JSON_ICE;
    else if (strcmp(name, "rest") == 0)
        *shape = TP_JSON_REST;
    else if (strcmp(name, "acs-native") == 0)
        *shape = TP_JSON_ACS_NATIVE;
    else {
        tp__printable(shown, sizeof(shown), name, 32);
        return tp__fail(err, TP_EINVAL, "unknown format \"%s\" (ice, rest "
                        "or acs-native)", shown);
    }
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_credential_json_realm(const tp_credential *cred, const char *realm,
                         const char *const *urls, size_t nurls,
                         tp_cred_json shape, char *buf, size_t cap,
                         size_t *written, tp_error *err)
{
    jbuf b;
    struct tm tm;
    time_t t;
    char ts[32], one[TP_TURN_URL_MAX + 8];
    const char *onep = one;
    tp_turn_url native;
    tp_status st;
    size_t i;

    if (cred == NULL || buf == NULL || cap == 0 ||
        (urls == NULL && nurls > 0))
        return tp__fail(err, TP_EINVAL, "credential and buffer are "
                        "required");
    for (i = 0; i < nurls; i++) {
        if (urls[i] == NULL)
            return tp__fail(err, TP_EINVAL, "url %zu is NULL", i);
    }
    b.p = buf;
    b.cap = cap;
    b.len = 0;
    b.overflow = 0;
    buf[0] = '\0';
    if (shape == TP_JSON_ACS_NATIVE) {
        st = tp_native_turn(realm, urls, nurls, &native, err);
        if (st != TP_OK)
            return st;
        snprintf(one, sizeof(one), "turn:%s", native.host);
    }
    if (shape == TP_JSON_ICE || shape == TP_JSON_ACS_NATIVE) {
        t = (time_t)cred->expires;
        if (gmtime_r(&t, &tm) == NULL ||
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            return tp__fail(err, TP_EINVAL, "expiry %" PRId64 " cannot be "
                            "formatted as a date", cred->expires);
        jb_raw(&b, "{\"iceServers\":[{\"urls\":", 23);
        if (shape == TP_JSON_ICE) {
            jb_urls(&b, urls, nurls);
            jb_raw(&b, ",\"username\":", 12);
            jb_str(&b, cred->username);
            jb_raw(&b, ",\"credential\":", 14);
        } else {
            jb_urls(&b, &onep, 1);
            jb_raw(&b, ",\"udpPort\":", 11);
            jb_int(&b, (int64_t)native.port);
            jb_raw(&b, ",\"realm\":", 9);
            jb_str(&b, realm);
            jb_raw(&b, ",\"username\":", 12);
            jb_str(&b, cred->username);
            jb_raw(&b, ",\"password\":", 12);
        }
        jb_str(&b, cred->password);
        jb_raw(&b, "}],\"ttl\":", 9);
        jb_int(&b, cred->ttl);
        jb_raw(&b, ",\"expiresOn\":", 13);
        jb_str(&b, ts);
        jb_raw(&b, "}", 1);
    } else if (shape == TP_JSON_REST) {
        jb_raw(&b, "{\"username\":", 12);
        jb_str(&b, cred->username);
        jb_raw(&b, ",\"password\":", 12);
        jb_str(&b, cred->password);
        jb_raw(&b, ",\"ttl\":", 7);
        jb_int(&b, cred->ttl);
        jb_raw(&b, ",\"uris\":", 8);
        jb_urls(&b, urls, nurls);
        jb_raw(&b, "}", 1);
    } else {
        return tp__fail(err, TP_EINVAL, "unknown JSON shape %d", (int)shape);
    }
    if (b.overflow) {
        buf[0] = '\0';
        return tp__fail(err, TP_ENOSPACE, "JSON needs more than %zu bytes",
                        cap);
    }
    if (written != NULL)
        *written = b.len;
    tp__ok(err);
    return TP_OK;
}
