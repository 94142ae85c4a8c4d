
/*
 * ngx_http_turnpolicy_access.c - the access-phase handler: who is asking
 * and for what.  For a location with "turnpolicy on" (or credentials, or
 * forward-auth) it splits the raw request path into token, upstream
 * host[:port] and path (tp_uri_split), verifies the token (the worker's
 * token cache, else tp_store_jwt_verify), checks the subject on every
 * request (tp_store_subject_check), counts it against turnpolicy_limit,
 * checks the Origin, and authorizes the upstream host and path against
 * the realm's allow-list (tp_store_host_check); resolving the host and
 * checking its addresses follow in ngx_http_turnpolicy_resolve.c.
 *
 * Its own file because it is the request path of every proxied request:
 * the order of the steps is the module's security argument, and it reads
 * top to bottom here.
 *
 * Invariants: every decision is the library's, from the store's snapshot
 * (no I/O here); the raw path is never decoded, so "%2F" or ".." cannot
 * move the host; the token is redacted from the request line before the
 * first refusal that could log it, and a token repeated in the path or
 * query (it would be forwarded upstream) is refused; ctx->authenticated
 * is set only after the subject check.  Event loop only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"
#include "tp_uri.h"


static ngx_int_t ngx_http_turnpolicy_requested(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport);
static ngx_int_t ngx_http_turnpolicy_split_path(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, const ngx_str_t *uri,
    const ngx_str_t *own_host, ngx_str_t *token, ngx_str_t *hostport,
    ngx_str_t *path, ngx_str_t *before);
static ngx_int_t ngx_http_turnpolicy_forwarded(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf,
    ngx_str_t *uri, ngx_str_t *own_host, ngx_str_t *args);
static tp_status ngx_http_turnpolicy_verify(
    ngx_http_turnpolicy_main_conf_t *mcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *token, tp_jwt_claims *claims, tp_error *err);
static tp_status ngx_http_turnpolicy_subject_check(tp_store *st,
    const tp_jwt_claims *claims, tp_error *err);
static ngx_int_t ngx_http_turnpolicy_limit(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx);
static ngx_int_t ngx_http_turnpolicy_authorize(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport);


/*
 * The access-phase handler.  Returns NGX_DECLINED where the module is off,
 * NGX_OK once the request is allowed, NGX_DONE when it has answered the
 * request itself (a refusal) or waits for the resolver; it is called again
 * when the resolver is done, and picks up from the state kept in its ctx.
 */
ngx_int_t
ngx_http_turnpolicy_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         hostport;
    ngx_http_turnpolicy_ctx_t        *ctx;
    ngx_http_turnpolicy_loc_conf_t   *lcf;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);

    if (!lcf->enable && !lcf->credentials && !lcf->forward_auth) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_turnpolicy_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_turnpolicy_module);

        if (mcf->st == NULL) {
            return ngx_http_turnpolicy_deny(r, ctx,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "policy_unavailable",
                                            "the policy store is not loaded");
        }

        if (r->method == NGX_HTTP_OPTIONS && !lcf->forward_auth) {
            rc = ngx_http_turnpolicy_preflight(r, mcf, lcf, ctx);
            if (rc != NGX_DECLINED) {
                return rc;
            }
        }

        rc = ngx_http_turnpolicy_authenticate(r, mcf, lcf, ctx, &hostport);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_turnpolicy_origin(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }

        if (lcf->credentials) {
            ngx_str_set(&ctx->reason, "ok");
            ctx->allowed = 1;
            return NGX_OK;
        }

        rc = ngx_http_turnpolicy_authorize(r, mcf, ctx, &hostport);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_turnpolicy_resolve(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ctx->allowed) {
        return NGX_OK;
    }

    if (ctx->state == NGX_HTTP_TURNPOLICY_RESOLVING) {
        return NGX_DONE;
    }

    if (ctx->state != NGX_HTTP_TURNPOLICY_RESOLVED) {
        /* refused earlier in this request */
        return NGX_HTTP_FORBIDDEN;
    }

    return ngx_http_turnpolicy_check_peers(r, mcf, ctx);
}


/*
 * Find the token, verify it and its subject; fill ctx->sub, ctx->realm and
 * ctx->path, and *hostport with the upstream asked for in the path (empty
 * when it comes from turnpolicy_upstream).  Returns NGX_OK or what the
 * access handler returns after a refusal.
 */
ngx_int_t
ngx_http_turnpolicy_authenticate(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport)
{
    ngx_int_t      rc;
    ngx_str_t      token, path, uri, own, *ownp;
    tp_error       err;
    tp_status      status;
    tp_jwt_claims  claims;

    ngx_str_null(&token);
    ngx_str_null(hostport);

    if (lcf->forward_auth) {
        /* the request another proxy asks about (auth_request, Traefik
         * ForwardAuth, Caddy forward_auth) */
        if (ngx_http_turnpolicy_forwarded(r, lcf, &uri, &own, &ctx->args)
            != NGX_OK)
        {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            "bad_path",
                                            "no single well-formed "
                                            "forwarded URI in the trusted "
                                            "header (turnpolicy_forward_auth "
                                            "uri=), or another URI header "
                                            "that differs");
        }

        ownp = own.len ? &own : NULL;

    } else {
        uri = r->unparsed_uri;
        ownp = r->headers_in.host ? &r->headers_in.host->value : NULL;
    }

    rc = ngx_http_turnpolicy_split_path(r, lcf, &uri, ownp, &token,
                                        hostport, &path, &ctx->prefix);
    if (rc != NGX_OK) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        "bad_path",
                                        "the request path is malformed");
    }

    if (ngx_http_turnpolicy_requested(r, lcf, ctx, hostport) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (lcf->token_source != NGX_HTTP_TURNPOLICY_TOKEN_PATH) {
        rc = ngx_http_turnpolicy_get_token(r, lcf, &token);
        if (rc == NGX_ERROR) {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                            tp_reason(TP_EJWTMALFORMED),
                                            "the token is given twice");
        }
    }

    ngx_http_turnpolicy_redact(r, ctx, &token);

    if (token.len == 0) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                        "token_missing",
                                        "the request carries no token");
    }

    if (token.len > TP_JWT_MAX) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                        tp_reason(TP_ETOOLONG),
                                        "the token is too long");
    }

    if (ngx_http_turnpolicy_token_shape(&token) != NGX_OK) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_UNAUTHORIZED,
                                        tp_reason(TP_EJWTMALFORMED),
                                        "the token is not a compact JWS");
    }

    status = ngx_http_turnpolicy_verify(mcf, ctx, &token, &claims, &err);

    if (status == TP_OK) {
        /* on a cache hit too: revocations and disabling apply at once */
        status = ngx_http_turnpolicy_subject_check(mcf->st, &claims, &err);
    }

    if (status != TP_OK) {
        return ngx_http_turnpolicy_deny_status(r, ctx, status, &err);
    }

    ctx->sub.len = ngx_strlen(claims.sub);
    ctx->realm.len = ngx_strlen(claims.realm);

    ctx->sub.data = ngx_pnalloc(r->pool, ctx->sub.len + 1);
    ctx->realm.data = ngx_pnalloc(r->pool, ctx->realm.len + 1);
    ctx->path.data = ngx_pnalloc(r->pool, path.len + 1);

    if (ctx->sub.data == NULL || ctx->realm.data == NULL
        || ctx->path.data == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_cpystrn(ctx->sub.data, (u_char *) claims.sub, ctx->sub.len + 1);
    ngx_cpystrn(ctx->realm.data, (u_char *) claims.realm,
                ctx->realm.len + 1);

    if (lcf->limit) {
        rc = ngx_http_turnpolicy_limit(r, lcf, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    ngx_cpystrn(ctx->path.data, path.data, path.len + 1);
    ctx->path.len = path.len;

    if (!lcf->forward_auth
        && ngx_http_turnpolicy_strip_arg(r, lcf, &ctx->args) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (tp_uri_find(ctx->path.data, ctx->path.len, token.data, token.len)
            != (size_t) -1
        || tp_uri_find(ctx->args.data, ctx->args.len, token.data, token.len)
           != (size_t) -1)
    {
        /* it would be passed on upstream and into $turnpolicy_path */
        ngx_str_null(&ctx->path);
        ngx_str_null(&ctx->args);

        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        "bad_path",
                                        "the token is repeated in the "
                                        "path or query");
    }

    ctx->authenticated = 1;

    return NGX_OK;
}


/*
 * Keep the upstream the request asks for, host[:port], in ctx->requested
 * for the log ($turnpolicy_requested_upstream), before anything can be
 * refused: from the path (after the token, never the token) or from
 * turnpolicy_upstream.  A value that is not made of host characters
 * ("A-Za-z0-9.-_:" and "[]" of an IPv6 literal; a host name and a port) is
 * kept as "[invalid]".  NGX_OK, or NGX_ERROR (no memory).
 */
static ngx_int_t
ngx_http_turnpolicy_requested(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport)
{
    u_char     *p;
    ngx_str_t   value;

    if (lcf->credentials) {
        return NGX_OK;
    }

    value = *hostport;

    if (lcf->upstream
        && ngx_http_complex_value(r, lcf->upstream, &value) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        return NGX_OK;
    }

    for (p = value.data; p < value.data + value.len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'
              || *p == '_' || *p == ':' || *p == '[' || *p == ']'))
        {
            break;
        }
    }

    if (p < value.data + value.len
        || value.len > NGX_HTTP_TURNPOLICY_HOST_MAX + sizeof(":65535"))
    {
        ngx_str_set(&ctx->requested, "[invalid]");
        return NGX_OK;
    }

    ctx->requested.data = ngx_pnalloc(r->pool, value.len);
    if (ctx->requested.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->requested.data, value.data, value.len);
    ctx->requested.len = value.len;

    return NGX_OK;
}


/*
 * NGX_OK if the raw path p..end (no query) can be passed on as it is
 * (tp_uri_path_safe: no control byte, space or '\\', no "." or ".."
 * segment, no encoded '/', '\\', '.' or NUL).  Request paths and redirect
 * targets are held to the same rule.
 */
ngx_int_t
ngx_http_turnpolicy_path_safe(u_char *p, u_char *end)
{
    return tp_uri_path_safe(p, end - p) == 0 ? NGX_OK : NGX_DECLINED;
}


/*
 * Split the raw request path (r->unparsed_uri up to '?', not decoded: the
 * ACS SDK writes the upstream host into it, and decoding would let %2F or
 * ".." move the host) after the location's prefix into
 *
 *     [/<token>]  when turnpolicy_token is "path"
 *     [/<host[:port]>]  unless turnpolicy_upstream is set
 *     <path>      the rest, "/" if empty
 *
 * with tp_uri_split (nested URLs unwrapped, see tp_uri.h).  An unsafe
 * path, a nested prefix with another token or one nested twice is refused
 * (NGX_DECLINED); a missing token or host is left empty for the caller to
 * refuse.  *before is the raw path before "/<host[:port]>".
 */
static ngx_int_t
ngx_http_turnpolicy_split_path(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, const ngx_str_t *uri,
    const ngx_str_t *own_host, ngx_str_t *token, ngx_str_t *hostport,
    ngx_str_t *path, ngx_str_t *before)
{
    unsigned                   flags;
    ngx_str_t                  prefix;
    tp_uri_parts               parts;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /*
     * The location prefix ("" at server level, where the first segment
     * follows).  Regex and exact-match locations have no prefix to strip;
     * the configuration refuses the path token there.
     */

    prefix = clcf->name;

    if (clcf->named || clcf->exact_match
#if (NGX_PCRE)
        || clcf->regex
#endif
        )
    {
        ngx_str_null(&prefix);
    }

    if (lcf->forward_auth) {
        /* the forwarded request's location, not ours */
        prefix = lcf->forward_prefix;
    }

    flags = 0;

    if (lcf->token_source == NGX_HTTP_TURNPOLICY_TOKEN_PATH) {
        flags |= TP_URI_TOKEN;
    }

    if (lcf->upstream == NULL && !lcf->credentials) {
        flags |= TP_URI_HOST;
    }

    if (tp_uri_split(uri->data, uri->len, prefix.data, prefix.len, flags,
                     own_host ? own_host->data : NULL,
                     own_host ? own_host->len : 0, &parts)
        != TP_URI_OK)
    {
        return NGX_DECLINED;
    }

    if (flags & TP_URI_TOKEN) {
        token->data = (u_char *) parts.token;
        token->len = parts.token_len;
    }

    hostport->data = (u_char *) parts.host;
    hostport->len = parts.host_len;

    path->data = (u_char *) parts.path;
    path->len = parts.path_len;

    before->data = uri->data;
    before->len = parts.before_len;

    return NGX_OK;
}


/*
 * The request a forward-auth caller asks about: its URI from the one
 * header the front sets itself (turnpolicy_forward_auth uri=, default
 * X-Original-URI: nginx auth_request; X-Forwarded-Uri for Traefik and
 * Caddy), the caller's own host from X-Forwarded-Host.  Fronts pass the
 * client's other headers on, so the other well-known URI header, when
 * present, must say the same: a client adding X-Forwarded-Uri behind a
 * front that sets X-Original-URI is refused, not believed.  *uri is the
 * path without the query, *args the query.  NGX_DECLINED when the header
 * is missing, repeated, not a path, carries control bytes, or another URI
 * header differs.
 */
static ngx_int_t
ngx_http_turnpolicy_forwarded(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_str_t *uri,
    ngx_str_t *own_host, ngx_str_t *args)
{
    u_char      *p, *q;
    ngx_str_t    v, o;
    ngx_uint_t   i, n;

    static ngx_str_t  uri_headers[] = {
        ngx_string("X-Original-URI"),
        ngx_string("X-Forwarded-Uri")
    };
    static ngx_str_t  fwd_host = ngx_string("X-Forwarded-Host");

    n = ngx_http_turnpolicy_header(r, &lcf->forward_uri, &v);

    if (n != 1 || v.len == 0 || v.data[0] != '/') {
        return NGX_DECLINED;
    }

    for (i = 0; i < sizeof(uri_headers) / sizeof(ngx_str_t); i++) {

        if (uri_headers[i].len == lcf->forward_uri.len
            && ngx_strncasecmp(uri_headers[i].data, lcf->forward_uri.data,
                               lcf->forward_uri.len) == 0)
        {
            continue;
        }

        n = ngx_http_turnpolicy_header(r, &uri_headers[i], &o);

        if (n > 1
            || (n == 1
                && (o.len != v.len
                    || ngx_strncmp(o.data, v.data, v.len) != 0)))
        {
            return NGX_DECLINED;
        }
    }

    for (p = v.data; p < v.data + v.len; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return NGX_DECLINED;
        }
    }

    q = ngx_strlchr(v.data, v.data + v.len, '?');

    uri->data = v.data;
    uri->len = q ? (size_t) (q - v.data) : v.len;

    if (q) {
        args->data = q + 1;
        args->len = v.data + v.len - q - 1;

    } else {
        ngx_str_null(args);
    }

    if (ngx_http_turnpolicy_header(r, &fwd_host, own_host) > 1) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The token's claims: from the worker's cache when this token was
 * verified under the policy in force and has not expired since, else
 * from tp_store_jwt_verify (and then cached).  The generation is read
 * before verifying, so a policy change during the verification leaves an
 * entry that never answers.  Returns TP_OK or the verification's status.
 */
static tp_status
ngx_http_turnpolicy_verify(ngx_http_turnpolicy_main_conf_t *mcf,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_str_t *token, tp_jwt_claims *claims,
    tp_error *err)
{
    time_t     now, deadline;
    int64_t    until;
    uint64_t   generation;
    tp_status  status;

    now = ngx_time();
    generation = tp_store_changes(mcf->st);

    ctx->checked = 1;

    if (mcf->cache
        && ngx_http_turnpolicy_cache_get(mcf->cache, token, generation, now,
                                         claims)
           == NGX_OK)
    {
        ctx->cached = 1;
        return TP_OK;
    }

    status = tp_store_jwt_verify(mcf->st, NULL, (const char *) token->data,
                                 token->len, (int64_t) now, claims, err);

    if (status != TP_OK || mcf->cache == NULL || claims->exp <= 0) {
        return status;
    }

    /* trusted while now < the instant tp_jwt_verify starts refusing it */

    until = tp_jwt_deadline(&mcf->jwt, claims);

    if (until > (int64_t) NGX_MAX_TIME_T_VALUE) {
        deadline = NGX_MAX_TIME_T_VALUE;

    } else {
        deadline = (time_t) until;
    }

    ngx_http_turnpolicy_cache_put(mcf->cache, token, generation, deadline,
                                  claims);

    return TP_OK;
}


/*
 * Count the request against the location's turnpolicy_limit for the
 * subject in ctx.  Returns NGX_OK, or what the access handler returns
 * after a refusal: 429 with Retry-After when over the limit.
 */
static ngx_int_t
ngx_http_turnpolicy_limit(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx)
{
    time_t      retry_after;
    ngx_str_t   value;
    ngx_int_t   rc;

    rc = ngx_http_turnpolicy_limit_check(r, lcf->limit, &ctx->realm,
                                         &ctx->sub, &retry_after);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc != NGX_BUSY) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.len = ngx_sprintf(value.data, "%T", retry_after) - value.data;

    if (ngx_http_turnpolicy_add_header(r, "Retry-After", &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_TOO_MANY_REQUESTS,
                                    tp_reason(TP_ERATELIMIT),
                                    "the subject is over its request rate");
}


/*
 * Is the token's subject a known, active user of its live realm whose
 * tokens issued at claims->iat are not revoked (turnpolicy.revoke_user)?
 * Answered from the store's snapshot: no I/O.  A token without iat counts
 * as issued at the epoch: refused once the user was ever revoked.
 */
static tp_status
ngx_http_turnpolicy_subject_check(tp_store *st, const tp_jwt_claims *claims,
    tp_error *err)
{
    return tp_store_subject_check(st, claims->realm, claims->sub,
                                  claims->iat > 0 ? claims->iat : 1, err);
}


/*
 * Parse the upstream host[:port] (from the path or turnpolicy_upstream)
 * and check it and the path against the realm's allow-list.
 */
static ngx_int_t
ngx_http_turnpolicy_authorize(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport)
{
    u_char                          *colon, *p;
    ngx_int_t                        port;
    ngx_str_t                        value;
    tp_error                         err;
    tp_status                        status;
    tp_host_match                    match;
    ngx_http_turnpolicy_loc_conf_t  *lcf;
    char                             host[NGX_HTTP_TURNPOLICY_HOST_MAX + 1];
    char                             norm[NGX_HTTP_TURNPOLICY_HOST_MAX + 2];

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);

    if (lcf->upstream) {
        if (ngx_http_complex_value(r, lcf->upstream, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        value = *hostport;
    }

    if (value.len == 0) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        tp_reason(TP_EBADHOST),
                                        "no upstream host in the request");
    }

    /* host[:port]; an IPv6 literal "[...]" is not a host name anyway */

    colon = NULL;
    port = 0;

    for (p = value.data; p < value.data + value.len; p++) {
        if (*p == ':') {
            colon = p;

        } else if (*p == '\0') {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            tp_reason(TP_EBADHOST),
                                            "bad upstream host");
        }
    }

    if (colon) {
        port = ngx_atoi(colon + 1, value.data + value.len - colon - 1);

        /* ngx_atoi() takes digits only; no leading zeros either */
        if (port < 1 || port > 65535 || colon[1] == '0') {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            tp_reason(TP_EBADHOST),
                                            "bad upstream port");
        }
    }

    p = colon ? colon : value.data + value.len;

    if (p == value.data || (size_t) (p - value.data) > sizeof(host) - 1) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        tp_reason(TP_EBADHOST),
                                        "bad upstream host");
    }

    ngx_memcpy(host, value.data, p - value.data);
    host[p - value.data] = '\0';

    status = tp_host_normalize(host, norm, sizeof(norm), &err);

    if (status == TP_OK) {
        status = tp_store_host_check(mcf->st, (char *) ctx->realm.data, norm,
                                     (unsigned) port,
                                     (char *) ctx->path.data, &match, &err);
    }

    if (status != TP_OK) {
        return ngx_http_turnpolicy_deny_status(r, ctx, status, &err);
    }

    ctx->port = (in_port_t) (port ? port : 443);

    ctx->upstream_host.len = ngx_strlen(norm);
    ctx->upstream_host.data = ngx_pnalloc(r->pool,
                                          ctx->upstream_host.len + 1);
    ctx->upstream.data = ngx_pnalloc(r->pool, ctx->upstream_host.len
                                              + sizeof(":65535"));

    if (ctx->upstream_host.data == NULL || ctx->upstream.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_cpystrn(ctx->upstream_host.data, (u_char *) norm,
                ctx->upstream_host.len + 1);

    if (port) {
        p = ngx_sprintf(ctx->upstream.data, "%s:%i", norm, port);

    } else {
        p = ngx_sprintf(ctx->upstream.data, "%s", norm);
    }

    ctx->upstream.len = p - ctx->upstream.data;
    *p = '\0';

    return NGX_OK;
}
