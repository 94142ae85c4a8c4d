
/*
 * ngx_http_turnpolicy_cache.c - the tokens a worker process has verified,
 * so that a client sending the same JWT on every request (the ACS SDK
 * puts it in every proxied URL) pays for its signature and claims parsing
 * once, not per request.
 *
 * What it holds: for each token, the SHA-256 of the token (never the
 * token), the policy generation it was verified under (tp_store_changes,
 * read before verifying), its deadline (tp_jwt_deadline: the instant
 * tp_jwt_verify starts refusing it as expired) and the claims the
 * module uses: sub, realm, alg, exp, iat.  An entry answers only while
 * the generation is still the store's and the deadline has not passed; a
 * policy change (new snapshot: keys removed or added, issuer settings; or
 * a revocation through Redis) drops every entry at once.  Whether the
 * subject may act is not cached: the caller checks it on every request.
 *
 * Shape: a fixed table allocated once per worker (init_process, freed in
 * exit_process), 4-way set-associative: the digest picks a bucket of 4
 * entries; a new token replaces, in its bucket, an empty or dead entry
 * (other generation), else the one with the earliest deadline.  Nothing
 * is allocated after creation; a hit costs one SHA-256 of the token and
 * up to 4 constant-time digest comparisons.  A token whose sub and realm
 * together exceed NGX_HTTP_TURNPOLICY_CACHE_NAMES bytes is not cached
 * (it is verified every time).  Used by the worker's event loop only: no
 * locking.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ngx_http_turnpolicy.h"


#define NGX_HTTP_TURNPOLICY_CACHE_WAYS    4

/* sub and realm, one after the other: an entry is 256 bytes */
#define NGX_HTTP_TURNPOLICY_CACHE_NAMES   189


typedef struct {
    u_char                     digest[SHA256_DIGEST_LENGTH];
    uint64_t                   generation;
    time_t                     deadline;    /* 0: the entry is empty */
    int64_t                    exp;
    int64_t                    iat;
    u_char                     sub_len;
    u_char                     realm_len;
    u_char                     alg;
    u_char                     names[NGX_HTTP_TURNPOLICY_CACHE_NAMES];
} ngx_http_turnpolicy_cache_entry_t;


struct ngx_http_turnpolicy_cache_s {
    EVP_MD                              *sha256;
    EVP_MD_CTX                          *md_ctx;
    ngx_uint_t                           buckets;
    ngx_http_turnpolicy_cache_entry_t   *entries; /* buckets * WAYS */
};


static ngx_int_t ngx_http_turnpolicy_cache_digest(
    ngx_http_turnpolicy_cache_t *c, const ngx_str_t *token, u_char *digest);
static ngx_http_turnpolicy_cache_entry_t *ngx_http_turnpolicy_cache_bucket(
    ngx_http_turnpolicy_cache_t *c, const u_char *digest);


/*
 * A table of at least "entries" entries (rounded up to a multiple of 4),
 * all empty.  Returns NULL (logged) when memory or OpenSSL's SHA-256 is
 * not available; the caller then verifies every token.
 */
ngx_http_turnpolicy_cache_t *
ngx_http_turnpolicy_cache_create(ngx_uint_t entries, ngx_log_t *log)
{
    ngx_uint_t                    buckets;
    ngx_http_turnpolicy_cache_t  *c;

    if (entries == 0 || entries > NGX_HTTP_TURNPOLICY_CACHE_MAX) {
        return NULL;
    }

    buckets = (entries + NGX_HTTP_TURNPOLICY_CACHE_WAYS - 1)
              / NGX_HTTP_TURNPOLICY_CACHE_WAYS;

    c = ngx_calloc(sizeof(ngx_http_turnpolicy_cache_t), log);
    if (c == NULL) {
        return NULL;
    }

    c->buckets = buckets;
    c->entries = ngx_calloc(buckets * NGX_HTTP_TURNPOLICY_CACHE_WAYS
                            * sizeof(ngx_http_turnpolicy_cache_entry_t), log);
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->md_ctx = EVP_MD_CTX_new();

    if (c->entries == NULL || c->sha256 == NULL || c->md_ctx == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "turnpolicy: no token cache (%s): every token is "
                      "verified", c->entries ? "OpenSSL's SHA-256 is not "
                      "available" : "out of memory");
        ngx_http_turnpolicy_cache_destroy(c);
        return NULL;
    }

    return c;
}


/* Free the table; NULL is a no-op. */
void
ngx_http_turnpolicy_cache_destroy(ngx_http_turnpolicy_cache_t *c)
{
    if (c == NULL) {
        return;
    }

    EVP_MD_CTX_free(c->md_ctx);
    EVP_MD_free(c->sha256);

    if (c->entries) {
        ngx_free(c->entries);
    }

    ngx_free(c);
}


/*
 * The claims of a token verified under this generation whose deadline is
 * after now: NGX_OK and *claims (sub, realm, alg, exp, iat as verified;
 * kid and jti empty, nbf 0).  NGX_DECLINED otherwise; an entry found stale
 * or expired is emptied.
 */
ngx_int_t
ngx_http_turnpolicy_cache_get(ngx_http_turnpolicy_cache_t *c,
    const ngx_str_t *token, uint64_t generation, time_t now,
    tp_jwt_claims *claims)
{
    u_char                              digest[SHA256_DIGEST_LENGTH];
    ngx_uint_t                          i;
    ngx_http_turnpolicy_cache_entry_t  *e;

    if (ngx_http_turnpolicy_cache_digest(c, token, digest) != NGX_OK) {
        return NGX_DECLINED;
    }

    e = ngx_http_turnpolicy_cache_bucket(c, digest);

    for (i = 0; i < NGX_HTTP_TURNPOLICY_CACHE_WAYS; i++, e++) {

        if (e->deadline == 0
            || CRYPTO_memcmp(e->digest, digest, sizeof(digest)) != 0)
        {
            continue;
        }

        if (e->generation != generation || now >= e->deadline) {
            e->deadline = 0;
            return NGX_DECLINED;
        }

        ngx_memcpy(claims->sub, e->names, e->sub_len);
        claims->sub[e->sub_len] = '\0';
        ngx_memcpy(claims->realm, e->names + e->sub_len, e->realm_len);
        claims->realm[e->realm_len] = '\0';
        claims->kid[0] = '\0';
        claims->jti[0] = '\0';
        claims->alg = (tp_jwt_alg) e->alg;
        claims->exp = e->exp;
        claims->nbf = 0;
        claims->iat = e->iat;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Remember a token verified under generation (read before verifying),
 * valid until deadline (tp_jwt_deadline).  A token without exp, with a
 * deadline not after its own exp, or whose names do not fit, is not kept.
 */
void
ngx_http_turnpolicy_cache_put(ngx_http_turnpolicy_cache_t *c,
    const ngx_str_t *token, uint64_t generation, time_t deadline,
    const tp_jwt_claims *claims)
{
    u_char                              digest[SHA256_DIGEST_LENGTH];
    size_t                              sub_len, realm_len;
    time_t                              rank, victim_rank;
    ngx_uint_t                          i;
    ngx_http_turnpolicy_cache_entry_t  *e, *victim;

    if (claims->exp <= 0 || deadline < claims->exp) {
        return;
    }

    sub_len = ngx_strlen(claims->sub);
    realm_len = ngx_strlen(claims->realm);

    if (sub_len + realm_len > NGX_HTTP_TURNPOLICY_CACHE_NAMES) {
        return;
    }

    if (ngx_http_turnpolicy_cache_digest(c, token, digest) != NGX_OK) {
        return;
    }

    e = ngx_http_turnpolicy_cache_bucket(c, digest);
    victim = NULL;
    victim_rank = 0;

    for (i = 0; i < NGX_HTTP_TURNPOLICY_CACHE_WAYS; i++, e++) {

        if (e->deadline != 0
            && CRYPTO_memcmp(e->digest, digest, sizeof(digest)) == 0)
        {
            /* the same token: one entry per token */
            victim = e;
            break;
        }

        /* empty or of another generation (dead): 0, the first to go */
        rank = (e->deadline == 0 || e->generation != generation)
               ? 0 : e->deadline;

        if (victim == NULL || rank < victim_rank) {
            victim = e;
            victim_rank = rank;
        }
    }

    e = victim;

    ngx_memcpy(e->digest, digest, sizeof(digest));
    e->generation = generation;
    e->deadline = deadline;
    e->exp = claims->exp;
    e->iat = claims->iat;
    e->sub_len = (u_char) sub_len;
    e->realm_len = (u_char) realm_len;
    e->alg = (u_char) claims->alg;
    ngx_memcpy(e->names, claims->sub, sub_len);
    ngx_memcpy(e->names + sub_len, claims->realm, realm_len);
}


/* SHA-256 of the token into digest: NGX_OK, or NGX_ERROR (OpenSSL). */
static ngx_int_t
ngx_http_turnpolicy_cache_digest(ngx_http_turnpolicy_cache_t *c,
    const ngx_str_t *token, u_char *digest)
{
    if (EVP_DigestInit_ex(c->md_ctx, c->sha256, NULL) != 1
        || EVP_DigestUpdate(c->md_ctx, token->data, token->len) != 1
        || EVP_DigestFinal_ex(c->md_ctx, digest, NULL) != 1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The first entry of the bucket a digest selects. */
static ngx_http_turnpolicy_cache_entry_t *
ngx_http_turnpolicy_cache_bucket(ngx_http_turnpolicy_cache_t *c,
    const u_char *digest)
{
    uint64_t  h;

    ngx_memcpy(&h, digest, sizeof(uint64_t));

    return c->entries + (h % c->buckets) * NGX_HTTP_TURNPOLICY_CACHE_WAYS;
}


/*
 * turnpolicy_cache N | off: tokens cached per worker process (0 or off:
 * none; default NGX_HTTP_TURNPOLICY_CACHE_DEFAULT).
 */
char *
ngx_http_turnpolicy_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_main_conf_t *mcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (mcf->cache_size != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        mcf->cache_size = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n > NGX_HTTP_TURNPOLICY_CACHE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, it must "
                           "be \"off\" or a number of tokens per worker from "
                           "0 to %d", &value[1], &cmd->name,
                           NGX_HTTP_TURNPOLICY_CACHE_MAX);
        return NGX_CONF_ERROR;
    }

    mcf->cache_size = (ngx_uint_t) n;

    return NGX_CONF_OK;
}
