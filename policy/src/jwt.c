/*
 * jwt.c - JSON Web Token keys, verification and issuing.
 *
 * What: a tp_jwt_keys object holds verification keys by kid, each pinned
 * to exactly one algorithm (HS256/384/512, RS256, ES256), plus the claim
 * checks (issuer, audience, realm claim name, leeway, exp required,
 * maximum lifetime).
 * tp_jwt_verify checks a compact JWS token against it; tp_jwt_issue signs
 * one through libjwt.
 *
 * Why our own verifier: libjwt 1.10.2's jwt_decode takes the algorithm
 * from the token's header (so an HS256 token "signed" with an RSA public
 * key's PEM text passes when that PEM is handed to it: the HS/RS
 * confusion attack), validates no claims, and re-parses a PEM key on every
 * call.  Verification sits on nginx's request path, so here every key is
 * parsed once in tp_jwt_keys_add into ready OpenSSL objects (a keyed
 * HMAC context, an EVP_PKEY) and verify only duplicates or borrows them.
 * libjwt is used for issuing only, which is off the hot path.
 *
 * Order of checks in tp_jwt_verify, each with its own status:
 *   length (TP_ETOOLONG) -> exactly three base64url parts and a JSON
 *   object header with a string "alg" and no "crit" (TP_EJWTMALFORMED) ->
 *   alg known and not "none" (TP_EJWTALG) -> key by kid (TP_EJWTKID) ->
 *   token alg equals the key's pinned alg (TP_EJWTALG) -> signature
 *   (TP_EJWTSIG) -> payload is a JSON object (TP_EJWTMALFORMED) -> claim
 *   presence and types (TP_EJWTCLAIM) -> exp, nbf, iat (TP_EJWTEXPIRED,
 *   TP_EJWTNBF) -> lifetime: exp - iat, or without iat exp - now, at most
 *   max_lifetime (TP_EJWTLIFETIME) -> iss (TP_EJWTISS) -> aud (TP_EJWTAUD).
 * No claim is read before the signature is accepted.  Header parameters
 * that point at keys (jku, jwk, x5u, x5c) are ignored: keys only ever come
 * from tp_jwt_keys_add.
 *
 * Invariants:
 *   - every key has one algorithm; HS* keys are >= 32 bytes and never look
 *     like a PEM; RS256 keys are RSA >= 2048 bits; ES256 keys are P-256.
 *   - kids are unique; at most one kid-less key (kid "").
 *   - the raw key bytes are kept (for libjwt when issuing) and wiped on
 *     free, as is every stack buffer that held a MAC.
 *   - verify allocates only what OpenSSL and jansson allocate internally;
 *     the token is decoded into one fixed stack buffer (tokens are at most
 *     TP_JWT_MAX bytes).
 *   - messages never contain the token, a key or a MAC; untrusted header
 *     values (kid, alg) appear only through tp__printable.
 *
 * Thread safety: building (tp_jwt_keys_add) is not thread safe.  Once
 * built, any number of threads may call tp_jwt_verify and tp_jwt_issue on
 * the same object: verify only reads the keyed HMAC contexts (duplicating
 * them per call) and the EVP_PKEYs, which OpenSSL 3 allows concurrently.
 * On failure the calling thread's OpenSSL error queue is left empty, so a
 * host such as nginx does not find stale errors there.
 */
#include "tp_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#define JWT_HS_KEY_MIN 32        /* bytes of an HS* secret */
#define JWT_KEY_MAX 65536        /* bytes of any key as given */
#define JWT_RSA_BITS_MIN 2048
#define JWT_RSA_BITS_MAX 16384   /* OpenSSL's own verification limit */
#define JWT_ES256_SIG_LEN 64     /* JWS r || s, 32 bytes each */
#define JWT_DER_SIG_MAX 80       /* DER ECDSA-Sig-Value for P-256: <= 72 */
#define JWT_DEFAULT_TTL 300
#define JWT_DECODED_MAX (TP_JWT_MAX / 4 * 3 + 3)

typedef enum jwt_kind {
    JWT_KIND_HMAC,
    JWT_KIND_RSA,
    JWT_KIND_EC
} jwt_kind;

struct jwt_alg_info {
    tp_jwt_alg alg;
    const char *name;     /* JWS "alg" value */
    const char *digest;   /* OpenSSL digest name */
    size_t mac_len;       /* HMAC output bytes; 0 for signatures */
    jwt_kind kind;
    jwt_alg_t libjwt;
};

static const struct jwt_alg_info alg_table[] = {
    {TP_JWT_HS256, "HS256", "SHA256", 32, JWT_KIND_HMAC, JWT_ALG_HS256},
    {TP_JWT_HS384, "HS384", "SHA384", 48, JWT_KIND_HMAC, JWT_ALG_HS384},
    {TP_JWT_HS512, "HS512", "SHA512", 64, JWT_KIND_HMAC, JWT_ALG_HS512},
    {TP_JWT_RS256, "RS256", "SHA256", 0, JWT_KIND_RSA, JWT_ALG_RS256},
    {TP_JWT_ES256, "ES256", "SHA256", 0, JWT_KIND_EC, JWT_ALG_ES256},
};

/* One key.  Either mac (HMAC) or pkey and vctx (RSA, EC) are set. */
struct jwt_key {
    char kid[TP_KID_MAX + 1];        /* "" = the kid-less key */
    const struct jwt_alg_info *info;
    unsigned char *raw;              /* key as given, NUL appended; wiped */
    size_t raw_len;                  /* without the NUL */
    EVP_MAC_CTX *mac;                /* keyed, never updated: dup'ed */
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *vctx;              /* verify-initialized: dup'ed */
    int can_sign;                    /* HMAC, or a private RSA/EC key */
};

struct tp_jwt_keys {
    char *issuer;                    /* NULL = not checked */
    char *audience;                  /* NULL = not checked */
    char *realm_claim;               /* never NULL */
    uint32_t leeway;
    uint32_t max_lifetime;           /* exp - iat, or exp - now */
    int require_exp;
    EVP_MAC *hmac;                   /* fetched once */
    EVP_MD *sha256;                  /* fetched once, for RS256/ES256 */
    struct jwt_key *keys;
    size_t nkeys;
    size_t cap;
};

/* ------------------------------------------------------------------ */
/* Algorithms                                                          */
/* ------------------------------------------------------------------ */

static const struct jwt_alg_info *
alg_info(tp_jwt_alg alg)
{
    size_t i;

    for (i = 0; i < TP__ARRAY_LEN(alg_table); i++) {
        if (alg_table[i].alg == alg)
            return &alg_table[i];
    }
    return NULL;
}

const char *
tp_jwt_alg_name(tp_jwt_alg alg)
{
    const struct jwt_alg_info *ai = alg_info(alg);

    return ai != NULL ? ai->name : "unknown";
}

tp_status
tp_jwt_alg_parse(const char *s, tp_jwt_alg *out)
{
    size_t i;

    if (out == NULL)
        return TP_EINVAL;
    if (s == NULL)
        return TP_EJWTALG;
    /* JWS algorithm names are case-sensitive (RFC 7515 section 4.1.1). */
    for (i = 0; i < TP__ARRAY_LEN(alg_table); i++) {
        if (strcmp(alg_table[i].name, s) == 0) {
            *out = alg_table[i].alg;
            return TP_OK;
        }
    }
    return TP_EJWTALG;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */
/* ------------------------------------------------------------------ */

/* Copy an option string (may be NULL) into *dst.  Empty strings are
 * refused: NULL is how a check is turned off. */
static tp_status
opt_strdup(char **dst, const char *src, const char *what, tp_error *err)
{
    size_t n;

    *dst = NULL;
    if (src == NULL)
        return TP_OK;
    n = strlen(src);
    if (n == 0)
        return tp__fail(err, TP_EINVAL, "JWT %s is empty (use NULL to not "
                        "check it)", what);
    if (n > TP_JWT_CLAIM_MAX)
        return tp__fail(err, TP_ETOOLONG, "JWT %s is longer than %d bytes",
                        what, TP_JWT_CLAIM_MAX);
    *dst = malloc(n + 1);
    if (*dst == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    memcpy(*dst, src, n + 1);
    return TP_OK;
}

tp_jwt_keys *
tp_jwt_keys_new(const tp_jwt_options *opts, tp_error *err)
{
    tp_jwt_keys *jk;
    tp_status st;

    jk = calloc(1, sizeof(*jk));
    if (jk == NULL) {
        tp__fail(err, TP_ENOMEM, "out of memory");
        return NULL;
    }
    jk->require_exp = 1;
    jk->max_lifetime = TP_JWT_LIFETIME_DEFAULT;
    if (opts != NULL) {
        if (opts->leeway > TP_TTL_MAX) {
            tp__fail(err, TP_EINVAL, "JWT leeway %u s exceeds %d s",
                     (unsigned)opts->leeway, TP_TTL_MAX);
            goto fail;
        }
        if (opts->max_lifetime > TP_JWT_LIFETIME_MAX) {
            tp__fail(err, TP_EINVAL, "JWT maximum lifetime %u s exceeds "
                     "%d s", (unsigned)opts->max_lifetime,
                     TP_JWT_LIFETIME_MAX);
            goto fail;
        }
        if (opts->max_lifetime != 0)
            jk->max_lifetime = opts->max_lifetime;
        jk->leeway = opts->leeway;
        jk->require_exp = opts->require_exp != 0;
        st = opt_strdup(&jk->issuer, opts->issuer, "issuer", err);
        if (st != TP_OK)
            goto fail;
        st = opt_strdup(&jk->audience, opts->audience, "audience", err);
        if (st != TP_OK)
            goto fail;
        st = opt_strdup(&jk->realm_claim, opts->realm_claim, "realm claim",
                        err);
        if (st != TP_OK)
            goto fail;
    }
    if (jk->realm_claim == NULL) {
        st = opt_strdup(&jk->realm_claim, "realm", "realm claim", err);
        if (st != TP_OK)
            goto fail;
    }
    jk->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    jk->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (jk->hmac == NULL || jk->sha256 == NULL) {
        ERR_clear_error();
        tp__fail(err, TP_ECRYPTO, "OpenSSL lacks HMAC or SHA-256");
        goto fail;
    }
    tp__ok(err);
    return jk;

fail:
    tp_jwt_keys_free(jk);
    return NULL;
}

void
tp_jwt_keys_free(tp_jwt_keys *jk)
{
    size_t i;

    if (jk == NULL)
        return;
    for (i = 0; i < jk->nkeys; i++) {
        struct jwt_key *k = &jk->keys[i];

        tp__wipe(k->raw, k->raw_len + 1);
        free(k->raw);
        EVP_MAC_CTX_free(k->mac);
        EVP_PKEY_CTX_free(k->vctx);
        EVP_PKEY_free(k->pkey);
    }
    free(jk->keys);
    free(jk->issuer);
    free(jk->audience);
    free(jk->realm_claim);
    EVP_MAC_free(jk->hmac);
    EVP_MD_free(jk->sha256);
    free(jk);
}

/* 0 if kid is 1..TP_KID_MAX of [A-Za-z0-9._-]; else TP_ETOOLONG or
 * TP_EBADCHAR.  The caller handles NULL and "". */
static tp_status
kid_valid(const char *kid, size_t len)
{
    size_t i;

    if (len > TP_KID_MAX)
        return TP_ETOOLONG;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)kid[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return TP_EBADCHAR;
    }
    return TP_OK;
}

/* The key with kid ("" = the kid-less key), or NULL. */
static const struct jwt_key *
key_find(const tp_jwt_keys *jk, const char *kid)
{
    size_t i;

    for (i = 0; i < jk->nkeys; i++) {
        if (strcmp(jk->keys[i].kid, kid) == 0)
            return &jk->keys[i];
    }
    return NULL;
}

/* 1 if the n bytes at p contain "-----BEGIN": a PEM given as an HMAC
 * secret, which is how the HS/RS confusion attack is set up. */
static int
looks_like_pem(const unsigned char *p, size_t n)
{
    static const char tag[] = "-----BEGIN";
    size_t i, tl = sizeof(tag) - 1;

    for (i = 0; i + tl <= n; i++) {
        if (p[i] == '-' && memcmp(p + i, tag, tl) == 0)
            return 1;
    }
    return 0;
}

/* Never prompt for a passphrase: encrypted keys are refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Prepare an HMAC key: a MAC context keyed once, duplicated per use. */
static tp_status
key_prepare_hmac(const tp_jwt_keys *jk, struct jwt_key *k,
                 const unsigned char *key, size_t len, tp_error *err)
{
    OSSL_PARAM params[2];
    char digest[16];

    if (len < JWT_HS_KEY_MIN)
        return tp__fail(err, TP_EKEY, "%s secret must be at least %d bytes",
                        k->info->name, JWT_HS_KEY_MIN);
    if (looks_like_pem(key, len))
        return tp__fail(err, TP_EKEY, "%s secret is a PEM key; an "
                        "asymmetric key must be added as RS256 or ES256",
                        k->info->name);
    if (tp__strlcpy(digest, k->info->digest, sizeof(digest)) != 0)
        return tp__fail(err, TP_ECRYPTO, "internal: digest name");
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    k->mac = EVP_MAC_CTX_new(jk->hmac);
    if (k->mac == NULL) {
        ERR_clear_error();
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    if (EVP_MAC_init(k->mac, key, len, params) != 1) {
        ERR_clear_error();
        return tp__fail(err, TP_ECRYPTO, "cannot key HMAC-%s",
                        k->info->digest);
    }
    if (EVP_MAC_CTX_get_mac_size(k->mac) != k->info->mac_len) {
        ERR_clear_error();
        return tp__fail(err, TP_ECRYPTO, "unexpected HMAC-%s size",
                        k->info->digest);
    }
    k->can_sign = 1;
    return TP_OK;
}

/* 1 if pkey holds the private parameter named param. */
static int
pkey_has_private(const EVP_PKEY *pkey, const char *param)
{
    BIGNUM *bn = NULL;
    int have;

    have = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && bn != NULL;
    BN_clear_free(bn);
    ERR_clear_error();
    return have;
}

/* Parse a PEM public or private key once, check it suits the alg, and
 * set up a verification context for SHA-256 to be duplicated per token
 * (duplicating skips the algorithm fetch a fresh context costs). */
static tp_status
key_prepare_pkey(const tp_jwt_keys *jk, struct jwt_key *k,
                 const unsigned char *key, size_t len, tp_error *err)
{
    OSSL_DECODER_CTX *dctx = NULL;
    const unsigned char *data = key;
    size_t left = len;
    char group[64];
    size_t glen = 0;
    int bits;
    tp_status st = TP_OK;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&k->pkey, "PEM", NULL, NULL, 0,
                                         NULL, NULL);
    if (dctx == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto done;
    }
    if (OSSL_DECODER_CTX_set_pem_password_cb(dctx, no_passphrase,
                                             NULL) != 1) {
        st = tp__fail(err, TP_ECRYPTO, "cannot set up the PEM decoder");
        goto done;
    }
    if (OSSL_DECODER_from_data(dctx, &data, &left) != 1 || k->pkey == NULL) {
        st = tp__fail(err, TP_EKEY, "%s key is not an unencrypted PEM "
                      "public or private key", k->info->name);
        goto done;
    }
    if (k->info->kind == JWT_KIND_RSA) {
        if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
            st = tp__fail(err, TP_EKEY, "RS256 key is not an RSA key");
            goto done;
        }
        bits = EVP_PKEY_get_bits(k->pkey);
        if (bits < JWT_RSA_BITS_MIN || bits > JWT_RSA_BITS_MAX) {
            st = tp__fail(err, TP_EKEY, "RS256 key has %d bits; %d to %d "
                          "allowed", bits, JWT_RSA_BITS_MIN,
                          JWT_RSA_BITS_MAX);
            goto done;
        }
        k->can_sign = pkey_has_private(k->pkey, OSSL_PKEY_PARAM_RSA_D);
    } else {
        if (!EVP_PKEY_is_a(k->pkey, "EC") ||
            EVP_PKEY_get_group_name(k->pkey, group, sizeof(group),
                                    &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            st = tp__fail(err, TP_EKEY, "ES256 key is not a P-256 EC key");
            goto done;
        }
        k->can_sign = pkey_has_private(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY);
    }
    k->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (k->vctx == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto done;
    }
    if (EVP_PKEY_verify_init(k->vctx) != 1 ||
        (k->info->kind == JWT_KIND_RSA &&
         EVP_PKEY_CTX_set_rsa_padding(k->vctx, RSA_PKCS1_PADDING) != 1) ||
        EVP_PKEY_CTX_set_signature_md(k->vctx, jk->sha256) != 1) {
        st = tp__fail(err, TP_ECRYPTO, "cannot set up %s verification",
                      k->info->name);
        goto done;
    }

done:
    OSSL_DECODER_CTX_free(dctx);
    if (st != TP_OK)
        ERR_clear_error();
    return st;
}

tp_status
tp_jwt_keys_add(tp_jwt_keys *jk, const char *kid, tp_jwt_alg alg,
                const void *key, size_t len, tp_error *err)
{
    struct jwt_key k;
    char shown[TP_KID_MAX + 8];
    size_t kidlen;
    tp_status st;

    memset(&k, 0, sizeof(k));
    if (jk == NULL || key == NULL || len == 0)
        return tp__fail(err, TP_EINVAL, "JWT key: missing argument");
    if (kid == NULL)
        kid = "";
    kidlen = strlen(kid);
    st = kid_valid(kid, kidlen);
    if (st == TP_ETOOLONG)
        return tp__fail(err, st, "JWT kid is longer than %d characters",
                        TP_KID_MAX);
    if (st != TP_OK) {
        tp__printable(shown, sizeof(shown), kid, TP_KID_MAX);
        return tp__fail(err, st, "JWT kid \"%s\" may only contain "
                        "A-Z a-z 0-9 . _ -", shown);
    }
    k.info = alg_info(alg);
    if (k.info == NULL)
        return tp__fail(err, TP_EJWTALG, "unsupported JWT algorithm %d",
                        (int)alg);
    if (key_find(jk, kid) != NULL) {
        if (kidlen == 0)
            return tp__fail(err, TP_EEXISTS, "a JWT key without kid is "
                            "already set");
        return tp__fail(err, TP_EEXISTS, "JWT kid \"%s\" is duplicate", kid);
    }
    if (len > JWT_KEY_MAX)
        return tp__fail(err, TP_EKEY, "JWT key is larger than %d bytes",
                        JWT_KEY_MAX);
    memcpy(k.kid, kid, kidlen + 1);

    if (jk->nkeys == jk->cap) {
        size_t ncap = jk->cap == 0 ? 4 : jk->cap * 2;
        struct jwt_key *nk;

        if (ncap > SIZE_MAX / sizeof(*nk)) {
            st = tp__fail(err, TP_ENOMEM, "too many JWT keys");
            goto fail;
        }
        nk = realloc(jk->keys, ncap * sizeof(*nk));
        if (nk == NULL) {
            st = tp__fail(err, TP_ENOMEM, "out of memory");
            goto fail;
        }
        jk->keys = nk;
        jk->cap = ncap;
    }

    if (k.info->kind == JWT_KIND_HMAC)
        st = key_prepare_hmac(jk, &k, key, len, err);
    else
        st = key_prepare_pkey(jk, &k, key, len, err);
    if (st != TP_OK)
        goto fail;

    k.raw = malloc(len + 1);
    if (k.raw == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(k.raw, key, len);
    k.raw[len] = '\0';
    k.raw_len = len;

    jk->keys[jk->nkeys++] = k;
    tp__ok(err);
    return TP_OK;

fail:
    EVP_MAC_CTX_free(k.mac);
    EVP_PKEY_CTX_free(k.vctx);
    EVP_PKEY_free(k.pkey);
    return st;
}

/* ------------------------------------------------------------------ */
/* Signatures                                                          */
/* ------------------------------------------------------------------ */

/* HMAC of in, compared in constant time with sig.  Returns TP_OK,
 * TP_EJWTSIG, or TP_ENOMEM / TP_ECRYPTO when OpenSSL fails. */
static tp_status
sig_check_hmac(const struct jwt_key *k, const char *in, size_t inlen,
               const unsigned char *sig, size_t siglen, tp_error *err)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx;
    tp_status st = TP_OK;

    if (siglen != k->info->mac_len)
        return tp__fail(err, TP_EJWTSIG, "%s signature has %zu bytes, not "
                        "%zu", k->info->name, siglen, k->info->mac_len);
    ctx = EVP_MAC_CTX_dup(k->mac);
    if (ctx == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto done;
    }
    if (EVP_MAC_update(ctx, (const unsigned char *)in, inlen) != 1 ||
        EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) != 1 ||
        maclen != siglen) {
        st = tp__fail(err, TP_ECRYPTO, "HMAC computation failed");
        goto done;
    }
    if (tp__ct_memcmp(mac, sig, siglen) != 0)
        st = tp__fail(err, TP_EJWTSIG, "%s signature does not match",
                      k->info->name);

done:
    EVP_MAC_CTX_free(ctx);
    tp__wipe(mac, sizeof(mac));
    if (st == TP_ENOMEM || st == TP_ECRYPTO)
        ERR_clear_error();
    return st;
}

/* JWS ES256 signatures are r || s (32 bytes each); OpenSSL wants DER.
 * Returns TP_OK with *derlen set, TP_EJWTSIG for a wrong length, or
 * TP_ENOMEM / TP_ECRYPTO. */
static tp_status
es256_to_der(const unsigned char *sig, size_t siglen,
             unsigned char der[JWT_DER_SIG_MAX], size_t *derlen,
             tp_error *err)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *p;
    int n;
    tp_status st = TP_OK;

    if (siglen != JWT_ES256_SIG_LEN)
        return tp__fail(err, TP_EJWTSIG, "ES256 signature has %zu bytes, "
                        "not %d", siglen, JWT_ES256_SIG_LEN);
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, JWT_ES256_SIG_LEN / 2, NULL);
    s = BN_bin2bn(sig + JWT_ES256_SIG_LEN / 2, JWT_ES256_SIG_LEN / 2, NULL);
    if (es == NULL || r == NULL || s == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto done;
    }
    if (ECDSA_SIG_set0(es, r, s) != 1) {
        st = tp__fail(err, TP_ECRYPTO, "cannot build an ECDSA signature");
        goto done;
    }
    r = NULL; /* owned by es now */
    s = NULL;
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || n > JWT_DER_SIG_MAX) {
        st = tp__fail(err, TP_ECRYPTO, "cannot encode an ECDSA signature");
        goto done;
    }
    p = der;
    if (i2d_ECDSA_SIG(es, &p) != n) {
        st = tp__fail(err, TP_ECRYPTO, "cannot encode an ECDSA signature");
        goto done;
    }
    *derlen = (size_t)n;

done:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return st;
}

/* RS256 / ES256 signature over in: SHA-256 with the prefetched digest,
 * then the key's prepared context, duplicated because a context is not
 * shared between threads.  Returns TP_OK, TP_EJWTSIG, TP_ENOMEM or
 * TP_ECRYPTO. */
static tp_status
sig_check_pkey(const tp_jwt_keys *jk, const struct jwt_key *k,
               const char *in, size_t inlen, const unsigned char *sig,
               size_t siglen, tp_error *err)
{
    unsigned char der[JWT_DER_SIG_MAX];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t derlen = 0;
    EVP_PKEY_CTX *pctx = NULL;
    tp_status st = TP_OK;

    if (k->info->kind == JWT_KIND_EC) {
        st = es256_to_der(sig, siglen, der, &derlen, err);
        if (st != TP_OK)
            goto done;
        sig = der;
        siglen = derlen;
    }
    if (EVP_Digest(in, inlen, md, &mdlen, jk->sha256, NULL) != 1) {
        st = tp__fail(err, TP_ECRYPTO, "SHA-256 failed");
        goto done;
    }
    pctx = EVP_PKEY_CTX_dup(k->vctx);
    if (pctx == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto done;
    }
    if (EVP_PKEY_verify(pctx, sig, siglen, md, mdlen) != 1)
        st = tp__fail(err, TP_EJWTSIG, "%s signature does not verify",
                      k->info->name);

done:
    EVP_PKEY_CTX_free(pctx);
    if (st != TP_OK)
        ERR_clear_error();
    return st;
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

/* Pick the key for a parsed header: checks alg, crit and kid.  Returns
 * TP_OK with *key and c->alg, c->kid set, or TP_EJWTMALFORMED,
 * TP_EJWTALG, TP_EJWTKID. */
static tp_status
header_check(const tp_jwt_keys *jk, json_t *hdr, const struct jwt_key **key,
             tp_jwt_claims *c, tp_error *err)
{
    json_t *jalg, *jkid;
    const char *alg, *kid = "";
    char shown[48];
    tp_jwt_alg a;
    const struct jwt_key *k;

    if (!json_is_object(hdr))
        return tp__fail(err, TP_EJWTMALFORMED, "token header is not a JSON "
                        "object");
    jalg = json_object_get(hdr, "alg");
    if (!json_is_string(jalg))
        return tp__fail(err, TP_EJWTMALFORMED, "token header has no \"alg\" "
                        "string");
    /* No extension is understood, so a critical one must be refused
     * (RFC 7515 section 4.1.11). */
    if (json_object_get(hdr, "crit") != NULL)
        return tp__fail(err, TP_EJWTMALFORMED, "token header has an "
                        "unsupported \"crit\" parameter");
    alg = json_string_value(jalg);
    if (tp_jwt_alg_parse(alg, &a) != TP_OK) {
        tp__printable(shown, sizeof(shown), alg, 16);
        return tp__fail(err, TP_EJWTALG, "token algorithm \"%s\" is not "
                        "allowed", shown);
    }
    jkid = json_object_get(hdr, "kid");
    if (jkid != NULL) {
        if (!json_is_string(jkid))
            return tp__fail(err, TP_EJWTMALFORMED, "token \"kid\" is not a "
                            "string");
        kid = json_string_value(jkid);
        if (kid[0] == '\0' || kid_valid(kid, strlen(kid)) != TP_OK) {
            tp__printable(shown, sizeof(shown), kid, TP_KID_MAX);
            return tp__fail(err, TP_EJWTKID, "token kid \"%s\" is not a "
                            "valid key id", shown);
        }
    }
    k = key_find(jk, kid);
    if (k == NULL) {
        if (kid[0] == '\0')
            return tp__fail(err, TP_EJWTKID, "token has no kid and no key "
                            "without kid is configured");
        return tp__fail(err, TP_EJWTKID, "token kid \"%s\" is unknown", kid);
    }
    if (k->info->alg != a)
        return tp__fail(err, TP_EJWTALG, "token algorithm %s is not the %s "
                        "pinned for its key", tp_jwt_alg_name(a),
                        k->info->name);
    *key = k;
    c->alg = a;
    memcpy(c->kid, kid, strlen(kid) + 1);
    return TP_OK;
}

/* NumericDate (RFC 7519): integer or real seconds (the payload is parsed
 * with integers as reals, so that 1e30 or 2^70 written as digits parse).
 * Returns 0 and sets *out (reals truncated; beyond the 64-bit range:
 * INT64_MIN or INT64_MAX, which the time checks then refuse as expired or
 * too long-lived), or -1 for another type. */
static int
claim_time(const json_t *v, int64_t *out)
{
    double d;

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return -1;
    d = json_real_value(v);
    if (d != d) /* NaN: jansson never makes one */
        return -1;
    if (d >= 9.0e18)
        *out = INT64_MAX;
    else if (d <= -9.0e18)
        *out = INT64_MIN;
    else
        *out = (int64_t)d;
    return 0;
}

/* Optional string claim copied into dst (cap bytes with the NUL); absent
 * leaves dst "".  Returns 0, or -1 for a non-string, an empty string or
 * one that does not fit. */
static int
claim_string(const json_t *body, const char *name, char *dst, size_t cap)
{
    const json_t *v = json_object_get(body, name);
    size_t n;

    dst[0] = '\0';
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return -1;
    n = json_string_length(v);
    if (n == 0 || n >= cap || strlen(json_string_value(v)) != n)
        return -1;
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

static int64_t
sat_add(int64_t a, uint32_t b)
{
    return a > INT64_MAX - (int64_t)b ? INT64_MAX : a + (int64_t)b;
}

/* A token with this exp is expired from exp + leeway on: the one rule for
 * claims_check and tp_jwt_deadline. */
static int64_t
exp_deadline(int64_t exp, uint32_t leeway)
{
    return sat_add(exp, leeway);
}

int64_t
tp_jwt_deadline(const tp_jwt_options *opts, const tp_jwt_claims *claims)
{
    if (claims == NULL || claims->exp <= 0)
        return 0;
    return exp_deadline(claims->exp, opts != NULL ? opts->leeway : 0);
}

/* Check the claims of a payload whose signature is already verified and
 * fill c.  Returns TP_OK, TP_EJWTMALFORMED, TP_EJWTCLAIM, TP_EJWTEXPIRED,
 * TP_EJWTNBF, TP_EJWTISS or TP_EJWTAUD. */
static tp_status
claims_check(const tp_jwt_keys *jk, const json_t *body, int64_t now,
             tp_jwt_claims *c, tp_error *err)
{
    const json_t *jexp, *jnbf, *jiat, *jiss, *jaud, *v;
    int64_t hi = sat_add(now, jk->leeway);
    int aud_ok = 0;
    size_t i;

    if (!json_is_object(body))
        return tp__fail(err, TP_EJWTMALFORMED, "token payload is not a JSON "
                        "object");

    /* Presence and types. */
    jexp = json_object_get(body, "exp");
    jnbf = json_object_get(body, "nbf");
    jiat = json_object_get(body, "iat");
    if (jexp == NULL && jk->require_exp)
        return tp__fail(err, TP_EJWTCLAIM, "token has no \"exp\" claim");
    if (jexp != NULL && claim_time(jexp, &c->exp) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token \"exp\" is not a number");
    if (jnbf != NULL && claim_time(jnbf, &c->nbf) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token \"nbf\" is not a number");
    if (jiat != NULL && claim_time(jiat, &c->iat) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token \"iat\" is not a number");
    jiss = json_object_get(body, "iss");
    if (jiss != NULL && !json_is_string(jiss))
        return tp__fail(err, TP_EJWTCLAIM, "token \"iss\" is not a string");
    jaud = json_object_get(body, "aud");
    if (jaud != NULL && !json_is_string(jaud)) {
        if (!json_is_array(jaud))
            return tp__fail(err, TP_EJWTCLAIM, "token \"aud\" is neither a "
                            "string nor an array");
        json_array_foreach(jaud, i, v) {
            if (!json_is_string(v))
                return tp__fail(err, TP_EJWTCLAIM, "token \"aud\" array "
                                "holds a non-string");
        }
    }
    v = json_object_get(body, "sub");
    if (v == NULL)
        return tp__fail(err, TP_EJWTCLAIM, "token has no \"sub\" claim");
    if (claim_string(body, "sub", c->sub, sizeof(c->sub)) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token \"sub\" is not a string "
                        "of 1 to %d bytes", TP_JWT_SUB_MAX);
    if (claim_string(body, jk->realm_claim, c->realm, sizeof(c->realm)) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token realm claim is not a "
                        "string of 1 to %d bytes", TP_JWT_CLAIM_MAX);
    if (claim_string(body, "jti", c->jti, sizeof(c->jti)) != 0)
        return tp__fail(err, TP_EJWTCLAIM, "token \"jti\" is not a string "
                        "of 1 to %d bytes", TP_JWT_CLAIM_MAX);

    /* Time. */
    if (jexp != NULL && now >= exp_deadline(c->exp, jk->leeway))
        return tp__fail(err, TP_EJWTEXPIRED, "token expired at %lld (now "
                        "%lld, leeway %u s)", (long long)c->exp,
                        (long long)now, (unsigned)jk->leeway);
    if (jnbf != NULL && c->nbf > hi)
        return tp__fail(err, TP_EJWTNBF, "token not valid before %lld (now "
                        "%lld, leeway %u s)", (long long)c->nbf,
                        (long long)now, (unsigned)jk->leeway);
    if (jiat != NULL && c->iat > hi)
        return tp__fail(err, TP_EJWTNBF, "token issued in the future at "
                        "%lld (now %lld, leeway %u s)", (long long)c->iat,
                        (long long)now, (unsigned)jk->leeway);
    /* Lifetime: exp - iat, or without iat how far exp is from now. */
    if (jexp != NULL && jiat != NULL &&
        c->exp > sat_add(c->iat, jk->max_lifetime))
        return tp__fail(err, TP_EJWTLIFETIME, "token lifetime from iat %lld "
                        "to exp %lld exceeds %u s", (long long)c->iat,
                        (long long)c->exp, (unsigned)jk->max_lifetime);
    if (jexp != NULL && jiat == NULL &&
        c->exp > sat_add(hi, jk->max_lifetime))
        return tp__fail(err, TP_EJWTLIFETIME, "token without iat expires at "
                        "%lld, more than %u s after now %lld (leeway %u s)",
                        (long long)c->exp, (unsigned)jk->max_lifetime,
                        (long long)now, (unsigned)jk->leeway);

    /* Issuer and audience. */
    if (jk->issuer != NULL &&
        (jiss == NULL || strcmp(json_string_value(jiss), jk->issuer) != 0))
        return tp__fail(err, TP_EJWTISS, "token issuer is not the expected "
                        "one");
    if (jk->audience != NULL) {
        if (json_is_string(jaud)) {
            aud_ok = strcmp(json_string_value(jaud), jk->audience) == 0;
        } else if (jaud != NULL) {
            json_array_foreach(jaud, i, v) {
                if (strcmp(json_string_value(v), jk->audience) == 0) {
                    aud_ok = 1;
                    break;
                }
            }
        }
        if (!aud_ok)
            return tp__fail(err, TP_EJWTAUD, "token audience does not "
                            "include the expected one");
    }
    return TP_OK;
}

tp_status
tp_jwt_verify(const tp_jwt_keys *jk, const char *token, size_t len,
              int64_t now, tp_jwt_claims *claims, tp_error *err)
{
    unsigned char buf[JWT_DECODED_MAX];
    const char *dot1, *dot2;
    const struct jwt_key *key = NULL;
    json_t *hdr = NULL, *body = NULL;
    json_error_t jerr;
    tp_jwt_claims c;
    size_t hlen, plen, slen, used = 0;
    long n;
    tp_status st;

    memset(&c, 0, sizeof(c));
    if (claims != NULL)
        memset(claims, 0, sizeof(*claims));
    if (jk == NULL || (token == NULL && len > 0)) {
        st = tp__fail(err, TP_EINVAL, "JWT verify: missing argument");
        goto done;
    }
    if (len > TP_JWT_MAX) {
        st = tp__fail(err, TP_ETOOLONG, "token is longer than %d bytes",
                      TP_JWT_MAX);
        goto done;
    }

    if (len == 0) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token is empty");
        goto done;
    }

    /* header "." payload "." signature, none of them containing a dot. */
    dot1 = memchr(token, '.', len);
    dot2 = NULL;
    if (dot1 != NULL)
        dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 - token) - 1);
    if (dot2 == NULL ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 - token) - 1) != NULL) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token does not have exactly "
                      "three parts");
        goto done;
    }
    hlen = (size_t)(dot1 - token);
    plen = (size_t)(dot2 - dot1 - 1);
    slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token has an empty part");
        goto done;
    }

    /* No decode below writes more than 3/4 of its input into buf. */
    used = len / 4 * 3 + 3;
    n = tp__b64url_decode(token, hlen, buf, sizeof(buf));
    if (n < 0) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token header is not "
                      "base64url");
        goto done;
    }
    hdr = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES,
                     &jerr);
    if (hdr == NULL) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token header is not JSON");
        goto done;
    }
    st = header_check(jk, hdr, &key, &c, err);
    if (st != TP_OK)
        goto done;

    n = tp__b64url_decode(dot2 + 1, slen, buf, sizeof(buf));
    if (n < 0) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token signature is not "
                      "base64url");
        goto done;
    }
    /* The signing input is the first two parts as sent. */
    if (key->info->kind == JWT_KIND_HMAC)
        st = sig_check_hmac(key, token, (size_t)(dot2 - token), buf,
                            (size_t)n, err);
    else
        st = sig_check_pkey(jk, key, token, (size_t)(dot2 - token), buf,
                            (size_t)n, err);
    if (st != TP_OK)
        goto done;

    n = tp__b64url_decode(dot1 + 1, plen, buf, sizeof(buf));
    if (n < 0) {
        st = tp__fail(err, TP_EJWTMALFORMED, "token payload is not "
                      "base64url");
        goto done;
    }
    body = json_loadb((const char *)buf, (size_t)n,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (body == NULL) {
        /* jerr is not shown: it quotes the payload */
        st = tp__fail(err, TP_EJWTMALFORMED, "token payload is not JSON "
                      "(or holds a NUL character)");
        goto done;
    }
    st = claims_check(jk, body, now, &c, err);
    if (st != TP_OK)
        goto done;

    if (claims != NULL)
        *claims = c;
    tp__ok(err);

done:
    json_decref(hdr);
    json_decref(body);
    tp__wipe(buf, used);
    return st;
}

/* ------------------------------------------------------------------ */
/* Issuing                                                             */
/* ------------------------------------------------------------------ */

/* Map a libjwt return code to a status. */
static tp_status
libjwt_fail(tp_error *err, int rc, const char *what)
{
    if (rc == ENOMEM)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    if (rc == EEXIST)
        return tp__fail(err, TP_EINVAL, "JWT claim %s is given twice", what);
    return tp__fail(err, TP_ECRYPTO, "libjwt failed to %s (error %d)", what,
                    rc);
}

tp_status
tp_jwt_issue(const tp_jwt_keys *jk, const tp_jwt_issue_params *p,
             char **token, tp_error *err)
{
    const struct jwt_key *k;
    const char *kid, *iss, *aud;
    jwt_t *jwt = NULL;
    char *out = NULL;
    uint32_t ttl;
    size_t n;
    int rc;
    tp_status st = TP_OK;

    if (token != NULL)
        *token = NULL;
    if (jk == NULL || p == NULL || token == NULL)
        return tp__fail(err, TP_EINVAL, "JWT issue: missing argument");
    kid = p->kid != NULL ? p->kid : "";
    k = key_find(jk, kid);
    if (k == NULL) {
        char shown[TP_KID_MAX + 8];

        if (kid[0] == '\0')
            return tp__fail(err, TP_EJWTKID, "no JWT key without kid");
        tp__printable(shown, sizeof(shown), kid, TP_KID_MAX);
        return tp__fail(err, TP_EJWTKID, "no JWT key with kid \"%s\"",
                        shown);
    }
    if (!k->can_sign)
        return tp__fail(err, TP_EKEY, "JWT key \"%s\" is a public key; "
                        "issuing needs the private key", kid);
    if (p->sub == NULL || p->sub[0] == '\0')
        return tp__fail(err, TP_EINVAL, "JWT subject is missing");
    n = strlen(p->sub);
    if (n > TP_JWT_SUB_MAX)
        return tp__fail(err, TP_ETOOLONG, "JWT subject is longer than %d "
                        "bytes", TP_JWT_SUB_MAX);
    iss = p->issuer != NULL ? p->issuer : jk->issuer;
    aud = p->audience != NULL ? p->audience : jk->audience;
    if ((p->realm != NULL && strlen(p->realm) > TP_JWT_CLAIM_MAX) ||
        (iss != NULL && strlen(iss) > TP_JWT_CLAIM_MAX) ||
        (aud != NULL && strlen(aud) > TP_JWT_CLAIM_MAX))
        return tp__fail(err, TP_ETOOLONG, "JWT realm, issuer or audience "
                        "is longer than %d bytes", TP_JWT_CLAIM_MAX);
    ttl = p->ttl != 0 ? p->ttl : JWT_DEFAULT_TTL;
    if (ttl > TP_TTL_MAX)
        return tp__fail(err, TP_ETTL, "JWT lifetime %u s exceeds %d s",
                        (unsigned)ttl, TP_TTL_MAX);
    if (ttl > jk->max_lifetime)
        return tp__fail(err, TP_ETTL, "JWT lifetime %u s exceeds the "
                        "maximum token lifetime, %u s (jwt_max_lifetime)",
                        (unsigned)ttl, (unsigned)jk->max_lifetime);
    if (p->now < 0 || p->now > (int64_t)LONG_MAX - TP_TTL_MAX)
        return tp__fail(err, TP_EINVAL, "JWT issue time is out of range");

    rc = jwt_new(&jwt);
    if (rc != 0) {
        st = libjwt_fail(err, rc, "create a token");
        goto done;
    }
    rc = jwt_set_alg(jwt, k->info->libjwt, k->raw, (int)k->raw_len);
    if (rc != 0) {
        st = libjwt_fail(err, rc, "set the algorithm");
        goto done;
    }
    if (kid[0] != '\0') {
        rc = jwt_add_header(jwt, "kid", kid);
        if (rc != 0) {
            st = libjwt_fail(err, rc, "add kid");
            goto done;
        }
    }
    rc = jwt_add_grant(jwt, "sub", p->sub);
    if (rc != 0) {
        st = libjwt_fail(err, rc, "sub");
        goto done;
    }
    if (p->realm != NULL) {
        rc = jwt_add_grant(jwt, jk->realm_claim, p->realm);
        if (rc != 0) {
            st = libjwt_fail(err, rc, "realm");
            goto done;
        }
    }
    if (iss != NULL) {
        rc = jwt_add_grant(jwt, "iss", iss);
        if (rc != 0) {
            st = libjwt_fail(err, rc, "iss");
            goto done;
        }
    }
    if (aud != NULL) {
        rc = jwt_add_grant(jwt, "aud", aud);
        if (rc != 0) {
            st = libjwt_fail(err, rc, "aud");
            goto done;
        }
    }
    rc = jwt_add_grant_int(jwt, "iat", (long)p->now);
    if (rc != 0) {
        st = libjwt_fail(err, rc, "iat");
        goto done;
    }
    rc = jwt_add_grant_int(jwt, "nbf", (long)p->now);
    if (rc != 0) {
        st = libjwt_fail(err, rc, "nbf");
        goto done;
    }
    rc = jwt_add_grant_int(jwt, "exp", (long)(p->now + (int64_t)ttl));
    if (rc != 0) {
        st = libjwt_fail(err, rc, "exp");
        goto done;
    }
    errno = 0;
    out = jwt_encode_str(jwt);
    if (out == NULL) {
        st = libjwt_fail(err, errno != 0 ? errno : EINVAL, "sign the token");
        goto done;
    }
    if (strlen(out) > TP_JWT_MAX) {
        st = tp__fail(err, TP_ETOOLONG, "issued token is longer than %d "
                      "bytes", TP_JWT_MAX);
        goto done;
    }
    *token = out;
    out = NULL;
    tp__ok(err);

done:
    free(out);
    jwt_free(jwt); /* wipes its copy of the key */
    ERR_clear_error();
    return st;
}

void
tp_free(void *p)
{
    free(p);
}
