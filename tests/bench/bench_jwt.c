/*
 * bench_jwt.c - JWT verification throughput: tp_jwt_verify against
 * libjwt 1.10.2's jwt_decode on the same token.
 *
 * Why: the nginx module verifies a JWT on every signaling request.
 * libjwt's jwt_decode re-parses the PEM public key on every call;
 * tp_jwt_verify uses the EVP_PKEY parsed once in tp_jwt_keys_add.  The
 * design goal is RS256 verification at least 15x faster than jwt_decode.
 *
 * Method: keys are generated at start (RSA 2048, P-256, a 32-byte HMAC
 * secret), one token per algorithm is issued with tp_jwt_issue, and both
 * verifiers must accept it before anything is timed, so every timed call
 * is a real success (a failure inside the timed loop aborts the run).
 * Each verifier runs for a fixed wall time (ROUND_SECONDS on
 * CLOCK_MONOTONIC), alternating, for ROUNDS rounds; the medians are
 * reported.  Single thread.
 *
 * Output, one line per algorithm:
 *   rs256_verify: turnpolicy N/s, libjwt jwt_decode M/s, ratio R.RRx
 *   (goal >= 15x)
 * Exit status 0 unless setup or a verification fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "turnpolicy.h"

#define ROUNDS 5
#define ROUND_SECONDS 1.0
#define CHECK_EVERY 16 /* calls between clock reads */

struct pem {
    char *data;
    size_t len;
};

/* One benchmark subject: a token, our keys, and libjwt's key bytes. */
struct subject {
    const char *name;
    const tp_jwt_keys *jk;
    const char *token;
    size_t token_len;
    const unsigned char *lj_key; /* what jwt_decode gets */
    int lj_key_len;
    int64_t now;
};

typedef int (*verify_fn)(const struct subject *s);

static int
verify_tp(const struct subject *s)
{
    tp_jwt_claims c;

    return tp_jwt_verify(s->jk, s->token, s->token_len, s->now, &c,
                         NULL) == TP_OK ? 0 : -1;
}

static int
verify_libjwt(const struct subject *s)
{
    jwt_t *j = NULL;
    int rc;

    rc = jwt_decode(&j, s->token, s->lj_key, s->lj_key_len);
    jwt_free(j);
    return rc == 0 ? 0 : -1;
}

static double
now_mono(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Calls fn for ROUND_SECONDS; returns calls per second.  Exits on a
 * failed verification. */
static double
run_round(verify_fn fn, const struct subject *s, const char *who)
{
    double start = now_mono(), elapsed;
    unsigned long calls = 0;
    int i;

    do {
        for (i = 0; i < CHECK_EVERY; i++) {
            if (fn(s) != 0) {
                fprintf(stderr, "bench_jwt: %s: %s verification failed\n",
                        s->name, who);
                exit(1);
            }
        }
        calls += CHECK_EVERY;
        elapsed = now_mono() - start;
    } while (elapsed < ROUND_SECONDS);
    return (double)calls / elapsed;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
bench(const struct subject *s, const char *goal)
{
    double tp[ROUNDS], lj[ROUNDS], mt, ml;
    int r;

    /* Both must accept the token before anything is timed. */
    if (verify_tp(s) != 0 || verify_libjwt(s) != 0) {
        fprintf(stderr, "bench_jwt: %s: a verifier rejects the token\n",
                s->name);
        exit(1);
    }
    for (r = 0; r < ROUNDS; r++) {
        tp[r] = run_round(verify_tp, s, "turnpolicy");
        lj[r] = run_round(verify_libjwt, s, "libjwt");
    }
    mt = median(tp, ROUNDS);
    ml = median(lj, ROUNDS);
    printf("%s: turnpolicy %.0f/s, libjwt jwt_decode %.0f/s, ratio %.2fx "
           "(%s)\n", s->name, mt, ml, ml > 0 ? mt / ml : 0.0, goal);
    fflush(stdout);
}

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

static int
pem_encode(EVP_PKEY *pkey, struct pem *pub, struct pem *priv)
{
    BIO *b1 = BIO_new(BIO_s_mem()), *b2 = BIO_new(BIO_s_mem());
    int rc = -1;

    if (b1 == NULL || b2 == NULL)
        goto done;
    if (PEM_write_bio_PUBKEY(b1, pkey) != 1 || pem_from_bio(b1, pub) != 0)
        goto done;
    if (PEM_write_bio_PrivateKey(b2, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        pem_from_bio(b2, priv) != 0)
        goto done;
    rc = 0;

done:
    BIO_free(b1);
    BIO_free(b2);
    return rc;
}

/* Signer with the private key, verifier with the public one (as in a
 * deployment); issues a token for kid into *token. */
static int
setup(const char *kid, tp_jwt_alg alg, const void *sign_key,
      size_t sign_len, const void *verify_key, size_t verify_len,
      int64_t now, tp_jwt_keys **verifier, char **token)
{
    tp_jwt_keys *signer = NULL;
    tp_jwt_issue_params p;
    tp_error err;
    int rc = -1;

    *verifier = NULL;
    *token = NULL;
    signer = tp_jwt_keys_new(NULL, &err);
    if (signer == NULL)
        goto done;
    *verifier = tp_jwt_keys_new(NULL, &err);
    if (*verifier == NULL)
        goto done;
    if (tp_jwt_keys_add(signer, kid, alg, sign_key, sign_len, &err) !=
            TP_OK ||
        tp_jwt_keys_add(*verifier, kid, alg, verify_key, verify_len,
                        &err) != TP_OK)
        goto done;
    memset(&p, 0, sizeof(p));
    p.kid = kid;
    p.sub = "bench-user@example.org";
    p.realm = "example.org";
    p.now = now;
    p.ttl = 3600;
    if (tp_jwt_issue(signer, &p, token, &err) != TP_OK)
        goto done;
    rc = 0;

done:
    if (rc != 0)
        fprintf(stderr, "bench_jwt: setup %s: %s\n", kid, err.message);
    tp_jwt_keys_free(signer);
    return rc;
}

int
main(void)
{
    static const char hs_secret[] = "bench-only HMAC secret, 32+ bytes!";
    EVP_PKEY *rsa = NULL, *ec = NULL;
    struct pem rsa_pub = {0}, rsa_priv = {0}, ec_pub = {0}, ec_priv = {0};
    tp_jwt_keys *rs_keys = NULL, *hs_keys = NULL, *es_keys = NULL;
    char *rs_tok = NULL, *hs_tok = NULL, *es_tok = NULL;
    int64_t now = tp_now();
    struct subject s;
    int rc = 1;

    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    if (rsa == NULL || ec == NULL ||
        pem_encode(rsa, &rsa_pub, &rsa_priv) != 0 ||
        pem_encode(ec, &ec_pub, &ec_priv) != 0) {
        fprintf(stderr, "bench_jwt: key generation failed\n");
        goto done;
    }
    if (setup("rs", TP_JWT_RS256, rsa_priv.data, rsa_priv.len, rsa_pub.data,
              rsa_pub.len, now, &rs_keys, &rs_tok) != 0 ||
        setup("hs", TP_JWT_HS256, hs_secret, strlen(hs_secret), hs_secret,
              strlen(hs_secret), now, &hs_keys, &hs_tok) != 0 ||
        setup("es", TP_JWT_ES256, ec_priv.data, ec_priv.len, ec_pub.data,
              ec_pub.len, now, &es_keys, &es_tok) != 0)
        goto done;

    printf("# %d rounds of %.1f s each, alternating; medians; 1 thread; "
           "token %zu bytes (RS256)\n", ROUNDS, ROUND_SECONDS,
           strlen(rs_tok));
    s.name = "rs256_verify";
    s.jk = rs_keys;
    s.token = rs_tok;
    s.token_len = strlen(rs_tok);
    s.lj_key = (const unsigned char *)rsa_pub.data;
    s.lj_key_len = (int)rsa_pub.len;
    s.now = now;
    bench(&s, "goal >= 15x");

    s.name = "hs256_verify";
    s.jk = hs_keys;
    s.token = hs_tok;
    s.token_len = strlen(hs_tok);
    s.lj_key = (const unsigned char *)hs_secret;
    s.lj_key_len = (int)strlen(hs_secret);
    bench(&s, "information");

    s.name = "es256_verify";
    s.jk = es_keys;
    s.token = es_tok;
    s.token_len = strlen(es_tok);
    s.lj_key = (const unsigned char *)ec_pub.data;
    s.lj_key_len = (int)ec_pub.len;
    bench(&s, "information");
    rc = 0;

done:
    tp_free(rs_tok);
    tp_free(hs_tok);
    tp_free(es_tok);
    tp_jwt_keys_free(rs_keys);
    tp_jwt_keys_free(hs_keys);
    tp_jwt_keys_free(es_keys);
    free(rsa_pub.data);
    free(rsa_priv.data);
    free(ec_pub.data);
    free(ec_priv.data);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return rc;
}
