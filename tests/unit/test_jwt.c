/*
 * test_jwt.c - unit tests of the JWT keys, verifier and issuer (jwt.c).
 *
 * Every check asserts an exact status.  RSA and EC keys are generated at
 * run time with OpenSSL and PEM-encoded in memory, so no key file is
 * committed.  Hand-made tokens (odd headers, wrong claim types) are HMAC
 * signed here with OpenSSL directly, independent of the code under test;
 * the HS/RS confusion test also shows that libjwt's own jwt_decode accepts
 * the forged token, which is the attack tp_jwt_verify refuses.
 */
#include "tp_test.h"

#include <stdlib.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define NOW 1700000000LL
#define LEEWAY 30
#define HS_SECRET "0123456789abcdef0123456789abcdef" /* test-only, 32 B */
#define ISSUER "https://issuer.example"
#define AUDIENCE "turn-proxy"

struct pem {
    char *data;
    size_t len;
};

/* Keys generated once for the whole run. */
static struct pem rsa_priv, rsa_pub, ec_priv, ec_pub, rsa1024_pub, p384_pub;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static int
pem_from_bio(BIO *bio, struct pem *out)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);

    if (n <= 0 || p == NULL)
        return -1;
    out->data = malloc((size_t)n + 1);
    if (out->data == NULL)
        return -1;
    memcpy(out->data, p, (size_t)n);
    out->data[n] = '\0';
    out->len = (size_t)n;
    return 0;
}

/* PEM-encode pkey's public part (and private part if priv != NULL). */
static int
pem_encode(EVP_PKEY *pkey, struct pem *pub, struct pem *priv)
{
    BIO *b1 = BIO_new(BIO_s_mem()), *b2 = BIO_new(BIO_s_mem());
    int rc = -1;

    if (b1 == NULL || b2 == NULL)
        goto done;
    if (PEM_write_bio_PUBKEY(b1, pkey) != 1 || pem_from_bio(b1, pub) != 0)
        goto done;
    if (priv != NULL &&
        (PEM_write_bio_PrivateKey(b2, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
         pem_from_bio(b2, priv) != 0))
        goto done;
    rc = 0;

done:
    BIO_free(b1);
    BIO_free(b2);
    return rc;
}

static int
group_setup(void **state)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    int rc = -1;

    (void)state;
    if (rsa == NULL || rsa1024 == NULL || ec == NULL || p384 == NULL)
        goto done;
    if (pem_encode(rsa, &rsa_pub, &rsa_priv) != 0 ||
        pem_encode(ec, &ec_pub, &ec_priv) != 0 ||
        pem_encode(rsa1024, &rsa1024_pub, NULL) != 0 ||
        pem_encode(p384, &p384_pub, NULL) != 0)
        goto done;
    rc = 0;

done:
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(p384);
    return rc;
}

static int
group_teardown(void **state)
{
    (void)state;
    free(rsa_priv.data);
    free(rsa_pub.data);
    free(ec_priv.data);
    free(ec_pub.data);
    free(rsa1024_pub.data);
    free(p384_pub.data);
    return 0;
}

/* base64url without padding, written independently of util.c. */
static void
b64url(const void *in, size_t len, char *out, size_t cap)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t i, o = 0;

    for (i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = len - i;

        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        assert_true(o + 5 < cap);
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (left > 1)
            out[o++] = tbl[(v >> 6) & 63];
        if (left > 2)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
}

static size_t
b64url_dec(const char *in, unsigned char *out, size_t cap)
{
    char tmp[256];
    size_t n = strlen(in), i, pad = (4 - n % 4) % 4;
    int m;

    assert_true(n + 4 < sizeof(tmp));
    for (i = 0; i < n; i++)
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (i % 4 != 0)
        tmp[i++] = '=';
    tmp[i] = '\0';
    assert_true(i / 4 * 3 <= cap);
    m = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)i);
    assert_true(m >= (int)pad);
    return (size_t)m - pad; /* EVP_DecodeBlock counts padding as bytes */
}

/* Build header.payload.signature with HMAC(md) under key into out. */
static void
hs_token(const char *hdr, const char *payload, const void *key,
         size_t keylen, const char *md, char *out, size_t cap)
{
    unsigned char mac[64];
    size_t maclen = 0, n;

    b64url(hdr, strlen(hdr), out, cap);
    n = strlen(out);
    out[n++] = '.';
    b64url(payload, strlen(payload), out + n, cap - n);
    n = strlen(out);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, key, keylen,
                              (const unsigned char *)out, n, mac,
                              sizeof(mac), &maclen));
    out[n++] = '.';
    b64url(mac, maclen, out + n, cap - n);
}

/* HS256 token under the standard test key "hs" with the given payload. */
static void
hs256(const char *payload, char *out, size_t cap)
{
    hs_token("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs\"}", payload,
             HS_SECRET, strlen(HS_SECRET), "SHA256", out, cap);
}

static tp_jwt_keys *
std_keys(void)
{
    tp_jwt_options o;
    tp_jwt_keys *jk;
    tp_error err;

    memset(&o, 0, sizeof(o));
    o.issuer = ISSUER;
    o.audience = AUDIENCE;
    o.realm_claim = "tenant";
    o.leeway = LEEWAY;
    o.require_exp = 1;
    jk = tp_jwt_keys_new(&o, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    return jk;
}

static tp_status
verify(const tp_jwt_keys *jk, const char *tok, int64_t now,
       tp_jwt_claims *c, tp_error *err)
{
    return tp_jwt_verify(jk, tok, strlen(tok), now, c, err);
}

/* Verify a standard-keys HS256 token with payload at NOW. */
static tp_status
verify_payload(const char *payload, tp_error *err)
{
    char tok[2048];
    tp_jwt_keys *jk = std_keys();
    tp_jwt_claims c;
    tp_status st;

    hs256(payload, tok, sizeof(tok));
    st = verify(jk, tok, NOW, &c, err);
    tp_jwt_keys_free(jk);
    return st;
}

#define GOOD_CLAIMS_FMT "\"sub\":\"alice\",\"iss\":\"" ISSUER "\"," \
                        "\"aud\":\"" AUDIENCE "\""

/* Payload with good sub/iss/aud plus extra (must start with ","). */
static void
payload_with(char *buf, size_t cap, const char *extra)
{
    snprintf(buf, cap, "{" GOOD_CLAIMS_FMT ",\"exp\":%lld%s}",
             NOW + 600, extra);
}

static char *
issue(const tp_jwt_keys *jk, const char *kid, const char *sub,
      const char *realm)
{
    tp_jwt_issue_params p;
    tp_error err;
    char *tok = NULL;

    memset(&p, 0, sizeof(p));
    p.kid = kid;
    p.sub = sub;
    p.realm = realm;
    p.now = NOW;
    p.ttl = 600;
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &tok, &err), &err);
    assert_non_null(tok);
    return tok;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void
test_alg_names(void **state)
{
    static const char *names[] = {"HS256", "HS384", "HS512", "RS256",
                                  "ES256"};
    tp_jwt_alg a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        TP_ASSERT_OK(tp_jwt_alg_parse(names[i], &a), (tp_error *)NULL);
        assert_string_equal(tp_jwt_alg_name(a), names[i]);
    }
    TP_ASSERT_STATUS(TP_EJWTALG, tp_jwt_alg_parse("none", &a),
                     (tp_error *)NULL);
    TP_ASSERT_STATUS(TP_EJWTALG, tp_jwt_alg_parse("hs256", &a),
                     (tp_error *)NULL);
    TP_ASSERT_STATUS(TP_EJWTALG, tp_jwt_alg_parse("RS384", &a),
                     (tp_error *)NULL);
    TP_ASSERT_STATUS(TP_EJWTALG, tp_jwt_alg_parse(NULL, &a),
                     (tp_error *)NULL);
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_alg_parse("HS256", NULL),
                     (tp_error *)NULL);
    assert_string_equal(tp_jwt_alg_name((tp_jwt_alg)0), "unknown");
}

static void
test_roundtrip_hs(void **state)
{
    static const tp_jwt_alg algs[] = {TP_JWT_HS256, TP_JWT_HS384,
                                      TP_JWT_HS512};
    static const char secret[] =
        "an HMAC secret of more than sixty-four bytes, for HS512 as well..";
    tp_jwt_options o;
    tp_jwt_claims c;
    tp_error err;
    size_t i;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.issuer = ISSUER;
    o.audience = AUDIENCE;
    o.realm_claim = "tenant";
    o.require_exp = 1;
    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        tp_jwt_keys *jk = tp_jwt_keys_new(&o, &err);
        char *tok;

        assert_non_null(jk);
        TP_ASSERT_OK(tp_jwt_keys_add(jk, "k-1", algs[i], secret,
                                     strlen(secret), &err), &err);
        tok = issue(jk, "k-1", "alice@example.org", "example.org");
        TP_ASSERT_OK(verify(jk, tok, NOW, &c, &err), &err);
        assert_string_equal(c.sub, "alice@example.org");
        assert_string_equal(c.realm, "example.org");
        assert_string_equal(c.kid, "k-1");
        assert_string_equal(c.jti, "");
        assert_int_equal(c.alg, algs[i]);
        assert_int_equal(c.iat, NOW);
        assert_int_equal(c.nbf, NOW);
        assert_int_equal(c.exp, NOW + 600);
        /* claims may be NULL */
        TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
        tp_free(tok);
        tp_jwt_keys_free(jk);
    }
    tp_free(NULL);
}

static void
test_roundtrip_rs256(void **state)
{
    tp_jwt_keys *signer, *verifier;
    tp_jwt_claims c;
    tp_error err;
    jwt_t *j = NULL;
    char *tok;

    (void)state;
    signer = tp_jwt_keys_new(NULL, &err);
    verifier = tp_jwt_keys_new(NULL, &err);
    assert_non_null(signer);
    assert_non_null(verifier);
    TP_ASSERT_OK(tp_jwt_keys_add(signer, "rsa-2024", TP_JWT_RS256,
                                 rsa_priv.data, rsa_priv.len, &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(verifier, "rsa-2024", TP_JWT_RS256,
                                 rsa_pub.data, rsa_pub.len, &err), &err);
    tok = issue(signer, "rsa-2024", "bob", "r1");
    TP_ASSERT_OK(verify(verifier, tok, NOW + 10, &c, &err), &err);
    assert_string_equal(c.sub, "bob");
    assert_string_equal(c.realm, "r1"); /* default claim name "realm" */
    assert_string_equal(c.kid, "rsa-2024");
    assert_int_equal(c.alg, TP_JWT_RS256);
    TP_ASSERT_OK(verify(signer, tok, NOW, &c, &err), &err);
    /* libjwt agrees it is a valid RS256 token */
    assert_int_equal(jwt_decode(&j, tok, (unsigned char *)rsa_pub.data,
                                (int)rsa_pub.len), 0);
    jwt_free(j);
    tp_free(tok);
    tp_jwt_keys_free(signer);
    tp_jwt_keys_free(verifier);
}

static void
test_roundtrip_es256(void **state)
{
    tp_jwt_keys *signer, *verifier;
    tp_jwt_claims c;
    tp_error err;
    jwt_t *j = NULL;
    unsigned char der[72];
    char *tok, *sig, forged[2048];

    (void)state;
    signer = tp_jwt_keys_new(NULL, &err);
    verifier = tp_jwt_keys_new(NULL, &err);
    assert_non_null(signer);
    assert_non_null(verifier);
    TP_ASSERT_OK(tp_jwt_keys_add(signer, NULL, TP_JWT_ES256, ec_priv.data,
                                 ec_priv.len, &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(verifier, "", TP_JWT_ES256, ec_pub.data,
                                 ec_pub.len, &err), &err);
    tok = issue(signer, NULL, "carol", NULL);
    /* libjwt 1.10.2 writes the JWS form: r || s, 64 bytes = 86 chars */
    sig = strrchr(tok, '.');
    assert_non_null(sig);
    assert_int_equal(strlen(sig + 1), 86);
    TP_ASSERT_OK(verify(verifier, tok, NOW, &c, &err), &err);
    assert_string_equal(c.sub, "carol");
    assert_string_equal(c.realm, "");
    assert_string_equal(c.kid, "");
    assert_int_equal(c.alg, TP_JWT_ES256);
    assert_int_equal(jwt_decode(&j, tok, (unsigned char *)ec_pub.data,
                                (int)ec_pub.len), 0);
    jwt_free(j);

    /* A DER-shaped (72-byte) signature is not the JWS form. */
    memset(der, 0x30, sizeof(der));
    snprintf(forged, sizeof(forged), "%.*s.", (int)(sig - tok), tok);
    b64url(der, sizeof(der), forged + strlen(forged),
           sizeof(forged) - strlen(forged));
    TP_ASSERT_STATUS(TP_EJWTSIG, verify(verifier, forged, NOW, &c, &err),
                     &err);
    /* Flip one bit of s. */
    snprintf(forged, sizeof(forged), "%s", tok);
    sig = strrchr(forged, '.') + 1;
    sig[40] = sig[40] == 'A' ? 'B' : 'A';
    TP_ASSERT_STATUS(TP_EJWTSIG, verify(verifier, forged, NOW, &c, &err),
                     &err);
    tp_free(tok);
    tp_jwt_keys_free(signer);
    tp_jwt_keys_free(verifier);
}

/* RFC 7515 appendix A.1: the HS256 example. */
static void
test_rfc7515_a1(void **state)
{
    static const char tok[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
        "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char k[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iP"
        "S4hcgUuTwjAzZr1Z9CAow";
    unsigned char key[96];
    size_t keylen;
    tp_jwt_options o;
    tp_jwt_keys *jk;
    tp_jwt_claims c;
    tp_error err;
    char bad[sizeof(tok)];

    (void)state;
    keylen = b64url_dec(k, key, sizeof(key));
    assert_int_equal(keylen, 64);
    memset(&o, 0, sizeof(o));
    o.require_exp = 1;
    jk = tp_jwt_keys_new(&o, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, NULL, TP_JWT_HS256, key, keylen, &err),
                 &err);
    /* The signature verifies: the verifier reaches the claims and stops
     * at the one the example lacks, "sub". */
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify(jk, tok, 1300819000, &c, &err),
                     &err);
    assert_non_null(strstr(err.message, "\"sub\""));
    /* The same token with one signature byte changed fails earlier. */
    memcpy(bad, tok, sizeof(tok));
    bad[sizeof(tok) - 10] = bad[sizeof(tok) - 10] == 'A' ? 'B' : 'A';
    TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, bad, 1300819000, &c, &err),
                     &err);
    /* And with one payload character changed. */
    memcpy(bad, tok, sizeof(tok));
    bad[60] = bad[60] == 'A' ? 'B' : 'A';
    TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, bad, 1300819000, &c, &err),
                     &err);
    tp_jwt_keys_free(jk);
}

static void
test_alg_none(void **state)
{
    tp_jwt_keys *jk = std_keys();
    tp_error err;
    char tok[1024], payload[512];
    size_t n;

    (void)state;
    TP_ASSERT_OK(tp_jwt_keys_add(jk, NULL, TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    payload_with(payload, sizeof(payload), "");
    b64url("{\"alg\":\"none\"}", 14, tok, sizeof(tok));
    n = strlen(tok);
    tok[n++] = '.';
    b64url(payload, strlen(payload), tok + n, sizeof(tok) - n);
    strcat(tok, ".");
    TP_ASSERT_STATUS(TP_EJWTALG, verify(jk, tok, NOW, NULL, &err), &err);
    /* with a kid too, and other spellings */
    hs_token("{\"alg\":\"none\",\"kid\":\"hs\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTALG, verify(jk, tok, NOW, NULL, &err), &err);
    hs_token("{\"alg\":\"None\",\"kid\":\"hs\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTALG, verify(jk, tok, NOW, NULL, &err), &err);
    hs_token("{\"alg\":\"HS384\",\"kid\":\"hs\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA384", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTALG, verify(jk, tok, NOW, NULL, &err), &err);
    tp_jwt_keys_free(jk);
}

/* The HS/RS confusion attack: an HS256 token whose HMAC key is the RSA
 * public key's PEM text, naming the RS256 key. */
static void
test_hs_rs_confusion(void **state)
{
    tp_jwt_keys *jk;
    tp_error err;
    jwt_t *forge = NULL, *j = NULL;
    char *tok;

    (void)state;
    jk = tp_jwt_keys_new(NULL, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "rsa", TP_JWT_RS256, rsa_pub.data,
                                 rsa_pub.len, &err), &err);

    assert_int_equal(jwt_new(&forge), 0);
    assert_int_equal(jwt_set_alg(forge, JWT_ALG_HS256,
                                 (unsigned char *)rsa_pub.data,
                                 (int)rsa_pub.len), 0);
    assert_int_equal(jwt_add_header(forge, "kid", "rsa"), 0);
    assert_int_equal(jwt_add_grant(forge, "sub", "admin"), 0);
    assert_int_equal(jwt_add_grant_int(forge, "exp", (long)NOW + 600), 0);
    tok = jwt_encode_str(forge);
    assert_non_null(tok);

    /* libjwt's own verifier, given the public key, accepts the forgery */
    assert_int_equal(jwt_decode(&j, tok, (unsigned char *)rsa_pub.data,
                                (int)rsa_pub.len), 0);
    assert_string_equal(jwt_get_grant(j, "sub"), "admin");
    jwt_free(j);

    /* ours refuses it: HS256 is not the algorithm pinned for "rsa" */
    TP_ASSERT_STATUS(TP_EJWTALG, verify(jk, tok, NOW, NULL, &err), &err);
    /* and refuses to load the PEM as an HMAC secret in the first place */
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "hs", TP_JWT_HS256,
                                              rsa_pub.data, rsa_pub.len,
                                              &err), &err);
    free(tok);
    jwt_free(forge);
    tp_jwt_keys_free(jk);
}

static void
test_kid(void **state)
{
    tp_jwt_keys *jk = std_keys();
    tp_error err;
    char tok[2048], payload[512];

    (void)state;
    payload_with(payload, sizeof(payload), "");
    hs_token("{\"alg\":\"HS256\",\"kid\":\"other\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTKID, verify(jk, tok, NOW, NULL, &err), &err);
    hs_token("{\"alg\":\"HS256\",\"kid\":\"../hs\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTKID, verify(jk, tok, NOW, NULL, &err), &err);
    hs_token("{\"alg\":\"HS256\",\"kid\":\"\"}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTKID, verify(jk, tok, NOW, NULL, &err), &err);
    /* no kid, and no kid-less key */
    hs_token("{\"alg\":\"HS256\"}", payload, HS_SECRET, strlen(HS_SECRET),
             "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTKID, verify(jk, tok, NOW, NULL, &err), &err);
    /* no kid, with a kid-less key: used */
    TP_ASSERT_OK(tp_jwt_keys_add(jk, NULL, TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
    /* kid as a number is malformed */
    hs_token("{\"alg\":\"HS256\",\"kid\":7}", payload, HS_SECRET,
             strlen(HS_SECRET), "SHA256", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    tp_jwt_keys_free(jk);
}

static void
test_time_claims(void **state)
{
    tp_error err;
    char p[512];

    (void)state;
    /* exp <= now - leeway is expired */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}",
             NOW - LEEWAY - 1);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}",
             NOW - LEEWAY);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED, verify_payload(p, &err), &err);
    /* expired, but within the leeway */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}",
             NOW - LEEWAY + 1);
    TP_ASSERT_OK(verify_payload(p, &err), &err);
    /* real-valued NumericDate */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld.5}", NOW + 5);
    TP_ASSERT_OK(verify_payload(p, &err), &err);
    /* nbf */
    payload_with(p, sizeof(p), ",\"nbf\":1700000031");
    TP_ASSERT_STATUS(TP_EJWTNBF, verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"nbf\":1700000030");
    TP_ASSERT_OK(verify_payload(p, &err), &err);
    /* iat in the future */
    payload_with(p, sizeof(p), ",\"iat\":1700000031");
    TP_ASSERT_STATUS(TP_EJWTNBF, verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"iat\":1700000030");
    TP_ASSERT_OK(verify_payload(p, &err), &err);
}

/* tp_jwt_deadline is where tp_jwt_verify starts refusing the claims as
 * expired: verify at deadline - 1 passes, at the deadline it is
 * TP_EJWTEXPIRED; saturating; 0 without exp. */
static void
test_deadline(void **state)
{
    tp_jwt_keys *jk = std_keys();
    tp_jwt_options o;
    tp_jwt_claims c;
    tp_error err;
    int64_t deadline;
    char p[512], tok[2048];

    (void)state;
    memset(&o, 0, sizeof(o));
    o.leeway = LEEWAY;

    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}", NOW + 60);
    hs256(p, tok, sizeof(tok));
    TP_ASSERT_OK(verify(jk, tok, NOW, &c, &err), &err);
    deadline = tp_jwt_deadline(&o, &c);
    assert_int_equal(deadline, NOW + 60 + LEEWAY);
    TP_ASSERT_OK(verify(jk, tok, deadline - 1, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED, verify(jk, tok, deadline, NULL, &err),
                     &err);

    /* NULL options: no leeway */
    assert_int_equal(tp_jwt_deadline(NULL, &c), NOW + 60);

    /* exp + leeway beyond the 64-bit range: the end of it */
    c.exp = INT64_MAX - 1;
    assert_true(tp_jwt_deadline(&o, &c) == INT64_MAX);

    /* no exp: nothing to trust a verification until */
    c.exp = 0;
    assert_int_equal(tp_jwt_deadline(&o, &c), 0);
    c.exp = -5;
    assert_int_equal(tp_jwt_deadline(&o, &c), 0);
    assert_int_equal(tp_jwt_deadline(&o, NULL), 0);

    tp_jwt_keys_free(jk);
}

/* Keys like std_keys with max_lifetime set (0: the default). */
static tp_jwt_keys *
lifetime_keys(uint32_t max_lifetime)
{
    tp_jwt_options o;
    tp_jwt_keys *jk;
    tp_error err;

    memset(&o, 0, sizeof(o));
    o.issuer = ISSUER;
    o.audience = AUDIENCE;
    o.leeway = LEEWAY;
    o.require_exp = 1;
    o.max_lifetime = max_lifetime;
    jk = tp_jwt_keys_new(&o, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    return jk;
}

static tp_status
verify_with(const tp_jwt_keys *jk, const char *payload, tp_error *err)
{
    char tok[2048];

    hs256(payload, tok, sizeof(tok));
    return verify(jk, tok, NOW, NULL, err);
}

/* The maximum lifetime: exp - iat, or without iat exp - now (+ leeway);
 * times beyond the 64-bit range are the end of it, never "not a number". */
static void
test_lifetime(void **state)
{
    tp_jwt_keys *jk = lifetime_keys(0); /* 24 h */
    tp_jwt_keys *one_h = lifetime_keys(3600);
    tp_jwt_options o;
    tp_error err;
    char p[512];

    (void)state;
    /* exp - iat at the default maximum, and one second over */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,\"exp\":%lld}",
             NOW, NOW + TP_JWT_LIFETIME_DEFAULT);
    TP_ASSERT_OK(verify_with(jk, p, &err), &err);
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,\"exp\":%lld}",
             NOW, NOW + TP_JWT_LIFETIME_DEFAULT + 1);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, p, &err), &err);
    assert_null(strstr(err.message, "eyJ"));
    /* issued long ago, still valid: the lifetime is too long */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,\"exp\":%lld}",
             NOW - 2 * 86400, NOW + 60);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, p, &err), &err);
    /* no iat: exp at most max_lifetime + leeway from now */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}",
             NOW + TP_JWT_LIFETIME_DEFAULT + LEEWAY);
    TP_ASSERT_OK(verify_with(jk, p, &err), &err);
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld}",
             NOW + TP_JWT_LIFETIME_DEFAULT + LEEWAY + 1);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, p, &err), &err);
    /* 2^63 - 1, 1e30, 10^30 in digits, 1e300: too long-lived */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,"
             "\"exp\":9223372036854775807}", NOW);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, p, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, "{" GOOD_CLAIMS_FMT
                     ",\"exp\":1e30}", &err), &err);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, "{" GOOD_CLAIMS_FMT
                     ",\"exp\":1000000000000000000000000000000}", &err),
                     &err);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, "{" GOOD_CLAIMS_FMT
                     ",\"exp\":1e300}", &err), &err);
    /* and the other end: expired, not malformed */
    TP_ASSERT_STATUS(TP_EJWTEXPIRED, verify_with(jk, "{" GOOD_CLAIMS_FMT
                     ",\"exp\":-1e30}", &err), &err);
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":-1e30,"
             "\"exp\":%lld}", NOW + 60);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(jk, p, &err), &err);
    /* a NUL in a string claim: malformed, whatever the claim */
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify_with(jk, "{\"sub\":\"al\\u0000"
                     "ice\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\","
                     "\"exp\":1700000600}", &err), &err);
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify_with(jk, "{\"sub\":\"alice\","
                     "\"iss\":\"" ISSUER "\\u0000x\",\"aud\":\"" AUDIENCE
                     "\",\"exp\":1700000600}", &err), &err);

    /* a configured maximum */
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,\"exp\":%lld}",
             NOW, NOW + 3600);
    TP_ASSERT_OK(verify_with(one_h, p, &err), &err);
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"iat\":%lld,\"exp\":%lld}",
             NOW, NOW + 3601);
    TP_ASSERT_STATUS(TP_EJWTLIFETIME, verify_with(one_h, p, &err), &err);

    /* issuing what verify would refuse is refused */
    {
        tp_jwt_issue_params ip;
        char *tok = NULL;

        memset(&ip, 0, sizeof(ip));
        ip.kid = "hs";
        ip.sub = "alice";
        ip.now = NOW;
        ip.ttl = 3601;
        TP_ASSERT_STATUS(TP_ETTL, tp_jwt_issue(one_h, &ip, &tok, &err),
                         &err);
        assert_null(tok);
        ip.ttl = 3600;
        TP_ASSERT_OK(tp_jwt_issue(one_h, &ip, &tok, &err), &err);
        TP_ASSERT_OK(verify(one_h, tok, NOW, NULL, &err), &err);
        tp_free(tok);
    }

    /* the option's range */
    memset(&o, 0, sizeof(o));
    o.max_lifetime = TP_JWT_LIFETIME_MAX + 1;
    assert_null(tp_jwt_keys_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    o.max_lifetime = TP_JWT_LIFETIME_MAX;
    tp_jwt_keys_free(tp_jwt_keys_new(&o, &err));
    tp_jwt_keys_free(jk);
    tp_jwt_keys_free(one_h);
}

static void
test_require_exp(void **state)
{
    static const char p[] = "{\"sub\":\"alice\"}";
    tp_jwt_options o;
    tp_jwt_keys *jk;
    tp_error err;
    char tok[1024];

    (void)state;
    hs256(p, tok, sizeof(tok));
    jk = tp_jwt_keys_new(NULL, &err); /* defaults: exp required */
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify(jk, tok, NOW, NULL, &err), &err);
    tp_jwt_keys_free(jk);

    memset(&o, 0, sizeof(o));
    o.require_exp = 0;
    jk = tp_jwt_keys_new(&o, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
    tp_jwt_keys_free(jk);
}

static void
test_iss_aud(void **state)
{
    tp_error err;
    char p[512];
    long long exp = NOW + 600;

    (void)state;
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"https://evil.example\","
             "\"aud\":\"" AUDIENCE "\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTISS, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"aud\":\"" AUDIENCE "\","
             "\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTISS, verify_payload(p, &err), &err);

    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":\"other\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTAUD, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":[\"x\",\"y\"],\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTAUD, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":[],\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTAUD, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTAUD, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":[\"x\",\"" AUDIENCE "\"],\"exp\":%lld}", exp);
    TP_ASSERT_OK(verify_payload(p, &err), &err);
}

static void
test_claim_types(void **state)
{
    tp_error err;
    char p[1024], longsub[TP_JWT_SUB_MAX + 2];
    long long exp = NOW + 600;

    (void)state;
    snprintf(p, sizeof(p), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
             "\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":42,\"iss\":\"" ISSUER "\",\"aud\":\""
             AUDIENCE "\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"\",\"iss\":\"" ISSUER "\",\"aud\":\""
             AUDIENCE "\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    memset(longsub, 'x', sizeof(longsub) - 1);
    longsub[sizeof(longsub) - 1] = '\0'; /* TP_JWT_SUB_MAX + 1 chars */
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"iss\":\"" ISSUER "\",\"aud\""
             ":\"" AUDIENCE "\",\"exp\":%lld}", longsub, exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    longsub[sizeof(longsub) - 2] = '\0'; /* exactly TP_JWT_SUB_MAX */
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"iss\":\"" ISSUER "\",\"aud\""
             ":\"" AUDIENCE "\",\"exp\":%lld}", longsub, exp);
    TP_ASSERT_OK(verify_payload(p, &err), &err);

    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":\"%lld\"}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"nbf\":\"now\"");
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"iat\":true");
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":1,\"aud\":\"" AUDIENCE
             "\",\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":{\"a\":1},\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    snprintf(p, sizeof(p), "{\"sub\":\"a\",\"iss\":\"" ISSUER "\","
             "\"aud\":[\"" AUDIENCE "\",3],\"exp\":%lld}", exp);
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    /* the realm claim is "tenant" in std_keys */
    payload_with(p, sizeof(p), ",\"tenant\":5");
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"tenant\":\"example.org\","
                 "\"jti\":\"id-1\"");
    TP_ASSERT_OK(verify_payload(p, &err), &err);
    payload_with(p, sizeof(p), ",\"jti\":[]");
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify_payload(p, &err), &err);
    /* a "realm" claim is not the configured one: ignored */
    payload_with(p, sizeof(p), ",\"realm\":5");
    TP_ASSERT_OK(verify_payload(p, &err), &err);
}

static void
test_claims_copied(void **state)
{
    tp_jwt_keys *jk = std_keys();
    tp_jwt_claims c;
    tp_error err;
    char p[512], tok[1024], longrealm[TP_JWT_CLAIM_MAX + 2];

    (void)state;
    payload_with(p, sizeof(p), ",\"tenant\":\"example.org\","
                 "\"jti\":\"id-1\",\"nbf\":1699999999,\"iat\":1699999998");
    hs256(p, tok, sizeof(tok));
    TP_ASSERT_OK(verify(jk, tok, NOW, &c, &err), &err);
    assert_string_equal(c.sub, "alice");
    assert_string_equal(c.realm, "example.org");
    assert_string_equal(c.jti, "id-1");
    assert_string_equal(c.kid, "hs");
    assert_int_equal(c.alg, TP_JWT_HS256);
    assert_int_equal(c.exp, NOW + 600);
    assert_int_equal(c.nbf, 1699999999);
    assert_int_equal(c.iat, 1699999998);

    memset(longrealm, 'r', sizeof(longrealm) - 1);
    longrealm[sizeof(longrealm) - 1] = '\0';
    snprintf(p, sizeof(p), "{" GOOD_CLAIMS_FMT ",\"exp\":%lld,"
             "\"tenant\":\"%s\"}", NOW + 600, longrealm);
    hs256(p, tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTCLAIM, verify(jk, tok, NOW, &c, &err), &err);
    /* claims are cleared on failure */
    assert_string_equal(c.sub, "");
    assert_int_equal(c.exp, 0);
    tp_jwt_keys_free(jk);
}

static void
test_tamper(void **state)
{
    tp_jwt_keys *hs = std_keys(), *rs;
    tp_error err;
    char *tok, *dot, saved;
    size_t i;

    (void)state;
    rs = tp_jwt_keys_new(NULL, &err);
    assert_non_null(rs);
    TP_ASSERT_OK(tp_jwt_keys_add(rs, "rsa", TP_JWT_RS256, rsa_priv.data,
                                 rsa_priv.len, &err), &err);
    for (i = 0; i < 2; i++) {
        tp_jwt_keys *jk = i == 0 ? hs : rs;

        tok = issue(jk, i == 0 ? "hs" : "rsa", "alice", NULL);
        TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
        /* payload: one character in its middle */
        dot = strchr(tok, '.') + 1;
        saved = dot[10];
        dot[10] = saved == 'A' ? 'B' : 'A';
        TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, tok, NOW, NULL, &err), &err);
        dot[10] = saved;
        TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
        /* signature: its first character */
        dot = strrchr(tok, '.') + 1;
        saved = dot[0];
        dot[0] = saved == 'A' ? 'B' : 'A';
        TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, tok, NOW, NULL, &err), &err);
        /* signature: truncated, and empty */
        dot[0] = saved;
        dot[4] = '\0';
        TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, tok, NOW, NULL, &err), &err);
        dot[0] = '\0';
        TP_ASSERT_STATUS(TP_EJWTSIG, verify(jk, tok, NOW, NULL, &err), &err);
        tp_free(tok);
    }
    tp_jwt_keys_free(hs);
    tp_jwt_keys_free(rs);
}

static void
test_malformed(void **state)
{
    /* headers that are not a JSON object with a string alg */
    static const char *bad_headers[] = {
        "not json",
        "[\"alg\",\"HS256\"]",
        "\"HS256\"",
        "{\"typ\":\"JWT\",\"kid\":\"hs\"}",
        "{\"alg\":256,\"kid\":\"hs\"}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"kid\":\"hs\"} trailing",
        "",
    };
    tp_jwt_keys *jk = std_keys();
    tp_error err;
    char *big, tok[1024], p[512], hdr[256];
    size_t n, i;

    (void)state;
    big = malloc(TP_JWT_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', TP_JWT_MAX + 1);
    big[TP_JWT_MAX + 1] = '\0';
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_jwt_verify(jk, big, TP_JWT_MAX + 1, NOW,
                                                NULL, &err), &err);
    /* exactly TP_JWT_MAX bytes is not too long, just not a token */
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, tp_jwt_verify(jk, big, TP_JWT_MAX,
                                                     NOW, NULL, &err), &err);
    free(big);

    TP_ASSERT_STATUS(TP_EJWTMALFORMED, tp_jwt_verify(jk, "", 0, NOW, NULL,
                                                     &err), &err);
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, "..", NOW, NULL, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, "a$b!.eyJ9.abc", NOW,
                                              NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, "%%%%.%%%%.%%%%", NOW,
                                              NULL, &err), &err);

    payload_with(p, sizeof(p), "");
    hs256(p, tok, sizeof(tok));
    TP_ASSERT_OK(verify(jk, tok, NOW, NULL, &err), &err);
    /* two parts */
    *strrchr(tok, '.') = '\0';
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    /* four parts */
    hs256(p, tok, sizeof(tok));
    strcat(tok, ".AAAA");
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    /* a NUL inside the given length */
    hs256(p, tok, sizeof(tok));
    n = strlen(tok);
    tok[3] = '\0';
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, tp_jwt_verify(jk, tok, n, NOW, NULL,
                                                     &err), &err);
    /* garbage in the signature part */
    hs256(p, tok, sizeof(tok));
    strcat(tok, "*");
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);

    /* headers that are not a JSON object with a string alg */
    for (i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        snprintf(hdr, sizeof(hdr), "%s", bad_headers[i]);
        hs_token(hdr, p, HS_SECRET, strlen(HS_SECRET), "SHA256", tok,
                 sizeof(tok));
        TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                         &err);
    }
    /* signed, but the payload is not a JSON object */
    hs256("not json", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    hs256("[1,2]", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    hs256("", tok, sizeof(tok));
    TP_ASSERT_STATUS(TP_EJWTMALFORMED, verify(jk, tok, NOW, NULL, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_verify(NULL, "a.b.c", 5, NOW, NULL,
                                              &err), &err);
    tp_jwt_keys_free(jk);
}

static void
test_keys_add_errors(void **state)
{
    static const char short_secret[] = "0123456789abcdef0123456789abcde";
    static const char garbage_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                      "Z2FyYmFnZQ==\n"
                                      "-----END PUBLIC KEY-----\n";
    char kid[TP_KID_MAX + 2];
    tp_jwt_options o;
    tp_jwt_keys *jk;
    tp_error err;

    (void)state;
    jk = tp_jwt_keys_new(NULL, &err);
    assert_non_null(jk);
    /* HMAC secrets */
    assert_int_equal(strlen(short_secret), 31);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_HS256,
                                              short_secret, 31, &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_HS384,
                                              rsa_priv.data, rsa_priv.len,
                                              &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_HS512,
                                              ec_pub.data, ec_pub.len,
                                              &err), &err);
    /* the message names the problem, never the key */
    assert_null(strstr(err.message, "BEGIN"));
    /* asymmetric keys */
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_RS256,
                                              garbage_pem,
                                              strlen(garbage_pem), &err),
                     &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_RS256,
                                              HS_SECRET, strlen(HS_SECRET),
                                              &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_RS256,
                                              ec_pub.data, ec_pub.len,
                                              &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_RS256,
                                              rsa1024_pub.data,
                                              rsa1024_pub.len, &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_ES256,
                                              rsa_pub.data, rsa_pub.len,
                                              &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_keys_add(jk, "a", TP_JWT_ES256,
                                              p384_pub.data, p384_pub.len,
                                              &err), &err);
    /* kids */
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "a", TP_JWT_HS256, HS_SECRET, 32, &err),
                 &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_jwt_keys_add(jk, "a", TP_JWT_RS256,
                                                 rsa_pub.data, rsa_pub.len,
                                                 &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, NULL, TP_JWT_RS256, rsa_pub.data,
                                 rsa_pub.len, &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_jwt_keys_add(jk, "", TP_JWT_HS256,
                                                 HS_SECRET, 32, &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_jwt_keys_add(jk, "a b", TP_JWT_HS256,
                                                  HS_SECRET, 32, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_jwt_keys_add(jk, "k/1", TP_JWT_HS256,
                                                  HS_SECRET, 32, &err),
                     &err);
    memset(kid, 'k', sizeof(kid) - 1);
    kid[sizeof(kid) - 1] = '\0'; /* TP_KID_MAX + 1 */
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_jwt_keys_add(jk, kid, TP_JWT_HS256,
                                                  HS_SECRET, 32, &err),
                     &err);
    kid[TP_KID_MAX] = '\0';
    TP_ASSERT_OK(tp_jwt_keys_add(jk, kid, TP_JWT_ES256, ec_pub.data,
                                 ec_pub.len, &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "b.2_x-y", TP_JWT_ES256, ec_priv.data,
                                 ec_priv.len, &err), &err);
    /* other argument errors */
    TP_ASSERT_STATUS(TP_EJWTALG, tp_jwt_keys_add(jk, "c", (tp_jwt_alg)99,
                                                 HS_SECRET, 32, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_keys_add(jk, "c", TP_JWT_HS256, NULL,
                                                32, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_keys_add(NULL, "c", TP_JWT_HS256,
                                                HS_SECRET, 32, &err), &err);
    tp_jwt_keys_free(jk);
    tp_jwt_keys_free(NULL);

    /* options */
    memset(&o, 0, sizeof(o));
    o.issuer = "";
    assert_null(tp_jwt_keys_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    o.issuer = NULL;
    o.leeway = TP_TTL_MAX + 1;
    assert_null(tp_jwt_keys_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
}

static void
test_issue_errors(void **state)
{
    tp_jwt_keys *jk;
    tp_jwt_issue_params p;
    tp_error err;
    char *tok = (char *)"untouched";

    (void)state;
    jk = tp_jwt_keys_new(NULL, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "rsa", TP_JWT_RS256, rsa_pub.data,
                                 rsa_pub.len, &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "ec", TP_JWT_ES256, ec_pub.data,
                                 ec_pub.len, &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "hs", TP_JWT_HS256, HS_SECRET,
                                 strlen(HS_SECRET), &err), &err);
    memset(&p, 0, sizeof(p));
    p.sub = "alice";
    p.now = NOW;
    p.kid = "rsa";
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_issue(jk, &p, &tok, &err), &err);
    assert_null(tok);
    p.kid = "ec";
    TP_ASSERT_STATUS(TP_EKEY, tp_jwt_issue(jk, &p, &tok, &err), &err);
    p.kid = "nope";
    TP_ASSERT_STATUS(TP_EJWTKID, tp_jwt_issue(jk, &p, &tok, &err), &err);
    p.kid = NULL;
    TP_ASSERT_STATUS(TP_EJWTKID, tp_jwt_issue(jk, &p, &tok, &err), &err);
    p.kid = "hs";
    p.sub = NULL;
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_issue(jk, &p, &tok, &err), &err);
    p.sub = "alice";
    p.ttl = TP_TTL_MAX + 1;
    TP_ASSERT_STATUS(TP_ETTL, tp_jwt_issue(jk, &p, &tok, &err), &err);
    p.ttl = 0; /* default 300 s */
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &tok, &err), &err);
    TP_ASSERT_OK(verify(jk, tok, NOW + 299, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED, verify(jk, tok, NOW + 300, NULL, &err),
                     &err);
    tp_free(tok);
    TP_ASSERT_STATUS(TP_EINVAL, tp_jwt_issue(jk, NULL, &tok, &err), &err);
    tp_jwt_keys_free(jk);
}

/* A token issued with the keys' issuer and audience options verifies
 * against the same options. */
static void
test_issue_iss_aud(void **state)
{
    tp_jwt_keys *jk = std_keys();
    tp_jwt_issue_params p;
    tp_jwt_claims c;
    tp_error err;
    char *tok = NULL;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.kid = "hs";
    p.sub = "dave";
    p.realm = "example.org";
    p.now = NOW;
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &tok, &err), &err);
    TP_ASSERT_OK(verify(jk, tok, NOW, &c, &err), &err);
    assert_string_equal(c.realm, "example.org");
    tp_free(tok);
    p.issuer = "someone-else";
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &tok, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTISS, verify(jk, tok, NOW, &c, &err), &err);
    tp_free(tok);
    p.issuer = NULL;
    p.audience = "another-service";
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &tok, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTAUD, verify(jk, tok, NOW, &c, &err), &err);
    tp_free(tok);
    tp_jwt_keys_free(jk);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_roundtrip_hs),
        cmocka_unit_test(test_roundtrip_rs256),
        cmocka_unit_test(test_roundtrip_es256),
        cmocka_unit_test(test_rfc7515_a1),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs_rs_confusion),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_require_exp),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_claims_copied),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_keys_add_errors),
        cmocka_unit_test(test_issue_errors),
        cmocka_unit_test(test_issue_iss_aud),
    };

    return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}
