/*
 * fuzz_jwt.c - libFuzzer target for the library's JSON Web Token verifier
 * (tp_jwt_verify in policy/src/jwt.c): compact-form splitting, base64url,
 * the header (alg, kid, crit), the signature checks (HMAC, RSA, ECDSA
 * with its JWS-to-DER conversion) and, past a good signature, the claims
 * (exp, nbf, iat, iss, aud, sub, realm, jti) - plus tp_jwt_issue.
 *
 * Why: tokens arrive from any HTTP client on the signaling proxy's
 * request path; random bytes almost never carry a valid signature, so
 * most modes below sign what the fuzzer wrote to reach the claim checks.
 *
 * What one input is: byte 0 chooses the mode (low 3 bits) and the keys
 * (bit 3: the second key set, with no issuer or audience, exp optional,
 * realm claim "tenant", no leeway); the rest is
 *   mode 0 (and 5..7)  the token itself, length-delimited;
 *   mode 1  a payload, signed HS256 under the fixed header
 *           {"alg":"HS256","typ":"JWT","kid":"hs"} (bit 4: no kid, the
 *           kid-less HS256 key signs);
 *   mode 2  header "\n" payload, both as written, signed HS256 with key
 *           "hs" whatever the header says (alg and kid games);
 *   mode 3  a payload signed ES256 (key "es"), at run time;
 *   mode 4  a subject for tp_jwt_issue (key "hs"), whose token must then
 *           verify with that same subject or be refused by the issuer.
 * Parts of modes 1-3 are base64url-encoded by the harness; raw tokens
 * reach the RS256 key ("rs") and every decoding error.
 *
 * Keys: HS256 secrets are fixed below; the RSA-2048 and P-256 keys are
 * generated once in LLVMFuzzerInitialize (no key file in the tree), so
 * RS256 seeds carry well-formed but wrong signatures.  The clock is NOW.
 *
 * Checked, beyond ASan/UBSan/LSan: on TP_OK the claims hold a subject,
 * and every time claim is within the leeway of NOW as the options
 * require; the token has exactly two dots; on failure the claims are
 * zeroed and the message is terminated and quotes neither a secret nor
 * the token's signature.  Seeds: tests/fuzz/corpus_jwt (make_corpus.py,
 * from tests/unit/test_jwt.c's cases).
 */
#define _GNU_SOURCE /* memmem, memrchr */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "turnpolicy.h"

#define NOW INT64_C(1700000000)
#define LEEWAY 30

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Kept in sync with make_corpus.py. */
static const char hs_key[] = "fuzz-jwt-hs256-key-hs-0123456789abcdef";
static const char nokid_key[] = "fuzz-jwt-hs256-key-nokid-0123456789abc";

static tp_jwt_keys *keys[2];
static EVP_PKEY *es_key;
/* Keyed HMAC-SHA256 contexts, made once (EVP_Q_mac fetched the algorithm
 * on every call: an eighth of the time). */
static EVP_MAC_CTX *mac_hs, *mac_nokid;

static EVP_MAC_CTX *
keyed_mac(const char *key)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[2];
    EVP_MAC_CTX *ctx;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key),
                     params) != 1)
        abort();
    EVP_MAC_free(mac);
    return ctx;
}

/* PEM text of pkey's private key, malloc'd. */
static char *
pem_private(EVP_PKEY *pkey, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL, *out;
    long n;

    if (b == NULL ||
        PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        abort();
    n = BIO_get_mem_data(b, &p);
    if (n <= 0 || (out = malloc((size_t)n)) == NULL)
        abort();
    memcpy(out, p, (size_t)n);
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

static tp_jwt_keys *
make_keys(const tp_jwt_options *o, const char *rs_pem, size_t rs_len,
          const char *es_pem, size_t es_len)
{
    tp_jwt_keys *jk = tp_jwt_keys_new(o, NULL);

    if (jk == NULL ||
        tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, hs_key, strlen(hs_key),
                        NULL) != TP_OK ||
        tp_jwt_keys_add(jk, NULL, TP_JWT_HS256, nokid_key,
                        strlen(nokid_key), NULL) != TP_OK ||
        tp_jwt_keys_add(jk, "h5", TP_JWT_HS512, hs_key, strlen(hs_key),
                        NULL) != TP_OK ||
        tp_jwt_keys_add(jk, "rs", TP_JWT_RS256, rs_pem, rs_len, NULL) !=
            TP_OK ||
        tp_jwt_keys_add(jk, "es", TP_JWT_ES256, es_pem, es_len, NULL) !=
            TP_OK)
        abort();
    return jk;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tp_jwt_options o1, o2;
    EVP_PKEY *rsa;
    char *rs_pem, *es_pem;
    size_t rs_len, es_len;

    (void)argc;
    (void)argv;
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    es_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (rsa == NULL || es_key == NULL)
        abort();
    rs_pem = pem_private(rsa, &rs_len);
    es_pem = pem_private(es_key, &es_len);

    memset(&o1, 0, sizeof(o1));
    o1.issuer = "https://issuer.fuzz";
    o1.audience = "turn";
    o1.leeway = LEEWAY;
    o1.require_exp = 1;
    memset(&o2, 0, sizeof(o2));
    o2.realm_claim = "tenant";
    mac_hs = keyed_mac(hs_key);
    mac_nokid = keyed_mac(nokid_key);
    keys[0] = make_keys(&o1, rs_pem, rs_len, es_pem, es_len);
    keys[1] = make_keys(&o2, rs_pem, rs_len, es_pem, es_len);
    free(rs_pem);
    free(es_pem);
    EVP_PKEY_free(rsa);
    return 0;
}

/* base64url without padding of in[0..n) appended at out[*len]. */
static void
b64url(const uint8_t *in, size_t n, char *out, size_t *len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789-_";
    size_t i;
    uint32_t v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[(*len)++] = tbl[v >> 18];
        out[(*len)++] = tbl[(v >> 12) & 63];
        out[(*len)++] = tbl[(v >> 6) & 63];
        out[(*len)++] = tbl[v & 63];
    }
    if (n - i == 1) {
        v = (uint32_t)in[i] << 16;
        out[(*len)++] = tbl[v >> 18];
        out[(*len)++] = tbl[(v >> 12) & 63];
    } else if (n - i == 2) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[(*len)++] = tbl[v >> 18];
        out[(*len)++] = tbl[(v >> 12) & 63];
        out[(*len)++] = tbl[(v >> 6) & 63];
    }
}

/* Room for a token built from at most TP_JWT_MAX input bytes. */
#define TOKEN_CAP (2 * TP_JWT_MAX + 256)

/* header "." payload, base64url-encoded, into tok. */
static size_t
signing_input(const uint8_t *h, size_t hn, const uint8_t *p, size_t pn,
              char *tok)
{
    size_t len = 0;

    b64url(h, hn, tok, &len);
    tok[len++] = '.';
    b64url(p, pn, tok, &len);
    return len;
}

/* The keyed context is re-initialized with its own key (a NULL key keeps
 * it) rather than duplicated: EVP_MAC_CTX_dup allocates a dozen times. */
static size_t
sign_hs256(EVP_MAC_CTX *keyed, char *tok, size_t len)
{
    unsigned char mac[32];
    size_t maclen = 0;

    if (EVP_MAC_init(keyed, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(keyed, (unsigned char *)tok, len) != 1 ||
        EVP_MAC_final(keyed, mac, &maclen, sizeof(mac)) != 1 ||
        maclen != sizeof(mac))
        abort();
    tok[len++] = '.';
    b64url(mac, maclen, tok, &len);
    return len;
}

/* ES256: DER signature -> JWS r || s. */
static size_t
sign_es256(char *tok, size_t len)
{
    unsigned char der[80], rs[64];
    const unsigned char *p = der;
    size_t derlen = sizeof(der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *sig;
    const BIGNUM *r, *s;

    if (md == NULL ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, es_key) != 1 ||
        EVP_DigestSign(md, der, &derlen, (unsigned char *)tok, len) != 1 ||
        (sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
        abort();
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, rs, 32) != 32 || BN_bn2binpad(s, rs + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    tok[len++] = '.';
    b64url(rs, sizeof(rs), tok, &len);
    return len;
}

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static int
terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void
check(int alt, const char *tok, size_t len, tp_status st,
      const tp_jwt_claims *c, const tp_error *err)
{
    const char *sig;
    size_t ndots = 0, i;

    if (st == TP_OK) {
        for (i = 0; i < len; i++)
            ndots += tok[i] == '.';
        if (ndots != 2 || !terminated(c->sub, sizeof(c->sub)) ||
            c->sub[0] == '\0' || !terminated(c->realm, sizeof(c->realm)) ||
            !terminated(c->jti, sizeof(c->jti)) ||
            !terminated(c->kid, sizeof(c->kid)))
            abort();
        if (!alt && (c->exp == 0 || c->exp <= NOW - LEEWAY))
            abort(); /* exp required, not past */
        if (alt && c->exp != 0 && c->exp <= NOW)
            abort();
        if (c->nbf > NOW + (alt ? 0 : LEEWAY) ||
            c->iat > NOW + (alt ? 0 : LEEWAY))
            abort();
        return;
    }
    if (!all_zero(c, sizeof(*c)) ||
        !terminated(err->message, sizeof(err->message)))
        abort();
    if (strstr(err->message, hs_key) != NULL ||
        strstr(err->message, nokid_key) != NULL)
        abort();
    /* The signature part (if long enough to tell) is never quoted. */
    sig = memrchr(tok, '.', len);
    if (sig != NULL && len - (size_t)(sig + 1 - tok) >= 16 &&
        memmem(err->message, strlen(err->message), sig + 1, 16) != NULL)
        abort();
}

static void
issue(const tp_jwt_keys *jk, const uint8_t *data, size_t size)
{
    char sub[TP_JWT_SUB_MAX + 2];
    tp_jwt_issue_params ip;
    tp_jwt_claims c;
    tp_error err;
    tp_status st;
    char *tok = NULL;

    if (size >= sizeof(sub))
        size = sizeof(sub) - 1;
    memcpy(sub, data, size);
    sub[size] = '\0';
    memset(&ip, 0, sizeof(ip));
    ip.kid = "hs";
    ip.sub = sub;
    ip.realm = "fuzz.test";
    ip.now = NOW;
    ip.ttl = 60;
    st = tp_jwt_issue(jk, &ip, &tok, &err);
    if (st != TP_OK) {
        if (tok != NULL || !terminated(err.message, sizeof(err.message)))
            abort();
        return;
    }
    st = tp_jwt_verify(jk, tok, strlen(tok), NOW, &c, &err);
    /* What it issued verifies, for the same subject; a subject the
     * verifier refuses (empty, too long) the issuer refused first. */
    if (st != TP_OK || strcmp(c.sub, sub) != 0 ||
        strcmp(c.realm, "fuzz.test") != 0)
        abort();
    tp_free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tok[TOKEN_CAP];
    static const char hdr_hs[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\","
                                 "\"kid\":\"hs\"}";
    static const char hdr_nokid[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char hdr_es[] = "{\"alg\":\"ES256\",\"kid\":\"es\"}";
    const uint8_t *nl;
    const char *t, *h;
    EVP_MAC_CTX *key;
    const tp_jwt_keys *jk;
    tp_jwt_claims c;
    tp_error err;
    tp_status st;
    size_t len;
    int mode, alt;

    if (size < 1 || size > TP_JWT_MAX + 1)
        return 0;
    mode = data[0] & 7;
    alt = (data[0] >> 3) & 1;
    jk = keys[alt];
    data++;
    size--;

    switch (mode) {
    case 1:
        h = (data[-1] & 16) ? hdr_nokid : hdr_hs;
        key = (data[-1] & 16) ? mac_nokid : mac_hs;
        len = signing_input((const uint8_t *)h, strlen(h), data, size, tok);
        len = sign_hs256(key, tok, len);
        t = tok;
        break;
    case 2:
        nl = memchr(data, '\n', size);
        if (nl == NULL)
            return 0;
        len = signing_input(data, (size_t)(nl - data), nl + 1,
                            size - (size_t)(nl - data) - 1, tok);
        len = sign_hs256(mac_hs, tok, len);
        t = tok;
        break;
    case 3:
        len = signing_input((const uint8_t *)hdr_es, strlen(hdr_es), data,
                            size, tok);
        len = sign_es256(tok, len);
        t = tok;
        break;
    case 4:
        issue(jk, data, size);
        return 0;
    default:
        t = (const char *)data;
        len = size;
        break;
    }
    st = tp_jwt_verify(jk, t, len, NOW, &c, &err);
    check(alt, t, len, st, &c, &err);
    return 0;
}
