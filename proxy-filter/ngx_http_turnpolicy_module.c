
/*
 * ngx_http_turnpolicy_module - the signaling half of turnpolicy for a stock
 * nginx: authenticates the caller of a signaling proxy (such as the Azure
 * Communication Services proxy) with a JSON Web Token, authorizes the
 * upstream host it asks for against its realm's allow-list, checks the
 * addresses that host resolves to against the realm's peer rules, and
 * serves TURN credentials to authenticated subjects.
 *
 * Every decision is made by libturnpolicy's policy store (tp_store): each
 * worker process owns one, created in init_process and freed in
 * exit_process (never in the master).  The store loads the policy from
 * PostgreSQL and keeps it current from a background thread, so decisions
 * on the request path are memory lookups: no blocking I/O in a worker.
 * The only wait a request makes is nginx's own asynchronous resolver.
 *
 * A request through a location with "turnpolicy on" goes:
 *
 *   access phase   token (path segment, header, cookie or argument)
 *                  -> the worker's token cache (SHA-256 of the token), or
 *                     tp_store_jwt_verify (realm from the token's claim)
 *                  -> the subject is a known, active, unrevoked user
 *                  -> the location's turnpolicy_limit for that subject
 *                  -> upstream host[:port] and path -> tp_store_host_check
 *                  -> resolve the host (the location's "resolver")
 *                  -> every address -> tp_store_peer_check
 *   variables      $turnpolicy_upstream_addr etc. for proxy_pass, so nginx
 *                  connects to exactly the address that was checked
 *
 * Refusals are small JSON bodies with libturnpolicy's stable reason codes
 * ({"error":"token_expired"}): 401 with WWW-Authenticate for token
 * failures, 403 for policy denials, 429 with Retry-After over the rate
 * limit, 502 when the host does not resolve, 503 while the policy is
 * unavailable.  The token is never echoed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <turnpolicy.h>

#include "ngx_http_turnpolicy.h"
#include "tp_uri.h"


static ngx_int_t ngx_http_turnpolicy_access_handler(ngx_http_request_t *r);
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
static char *ngx_http_turnpolicy_forward_auth(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
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

static ngx_int_t ngx_http_turnpolicy_init(ngx_conf_t *cf);
static void *ngx_http_turnpolicy_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_turnpolicy_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_turnpolicy_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_turnpolicy_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_turnpolicy_config(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_turnpolicy_config_nginx(ngx_conf_t *cf,
    ngx_http_turnpolicy_main_conf_t *mcf, const tp_config *tc);
static char *ngx_http_turnpolicy_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_turnpolicy_credentials(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_turnpolicy_turn_urls(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static const char *ngx_http_turnpolicy_strdup(ngx_conf_t *cf,
    const char *s);
static ngx_int_t ngx_http_turnpolicy_secret_dup(ngx_conf_t *cf,
    const char *s, const char **out);
static ngx_int_t ngx_http_turnpolicy_strdup_opt(ngx_conf_t *cf,
    const char *s, const char **out);


static ngx_command_t  ngx_http_turnpolicy_commands[] = {

    { ngx_string("turnpolicy_config"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_turnpolicy_config,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_turnpolicy_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_turnpolicy_limit_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_turnpolicy_loc_conf_t, enable),
      NULL },

    { ngx_string("turnpolicy_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_turnpolicy_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_turnpolicy_loc_conf_t, upstream),
      NULL },

    { ngx_string("turnpolicy_credentials"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_turnpolicy_credentials,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy_forward_auth"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_turnpolicy_forward_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("turnpolicy_turn_urls"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_turnpolicy_turn_urls,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_turnpolicy_module_ctx = {
    ngx_http_turnpolicy_add_variables,     /* preconfiguration */
    ngx_http_turnpolicy_init,              /* postconfiguration */

    ngx_http_turnpolicy_create_main_conf,  /* create main configuration */
    ngx_http_turnpolicy_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_turnpolicy_create_loc_conf,   /* create location configuration */
    ngx_http_turnpolicy_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_turnpolicy_module = {
    NGX_MODULE_V1,
    &ngx_http_turnpolicy_module_ctx,       /* module context */
    ngx_http_turnpolicy_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_turnpolicy_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_turnpolicy_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ------------------------------------------------------------------ */
/* Access phase                                                        */
/* ------------------------------------------------------------------ */

/*
 * The access-phase handler.  Returns NGX_DECLINED where the module is off,
 * NGX_OK once the request is allowed, NGX_DONE when it has answered the
 * request itself (a refusal) or waits for the resolver; it is called again
 * when the resolver is done, and picks up from the state kept in its ctx.
 */
static ngx_int_t
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

    /* valid while now < exp + leeway, as tp_jwt_verify decides */

    if (claims->exp > (int64_t) (NGX_MAX_TIME_T_VALUE - mcf->jwt.leeway)) {
        deadline = NGX_MAX_TIME_T_VALUE;

    } else {
        deadline = (time_t) claims->exp + mcf->jwt.leeway;
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


/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static ngx_int_t
ngx_http_turnpolicy_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_turnpolicy_access_handler;

    /* redirects and CORS headers of what the access handler allowed */

    return ngx_http_turnpolicy_filter_init(cf);
}


static void *
ngx_http_turnpolicy_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_turnpolicy_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_turnpolicy_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->file = { 0, NULL };
     *     mcf->store = { NULL, 0, ... };
     *     mcf->jwt = { NULL, ... };
     *     mcf->used = 0;
     *     mcf->st = NULL;
     *     mcf->cache = NULL;
     */

    mcf->cache_size = NGX_CONF_UNSET_UINT;

    return mcf;
}


static char *
ngx_http_turnpolicy_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_turnpolicy_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->cache_size,
                             NGX_HTTP_TURNPOLICY_CACHE_DEFAULT);

    return NGX_CONF_OK;
}


static void *
ngx_http_turnpolicy_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_turnpolicy_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_turnpolicy_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->token_name = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->credentials = NGX_CONF_UNSET;
    conf->forward_auth = NGX_CONF_UNSET;
    conf->token_source = NGX_CONF_UNSET_UINT;
    conf->upstream = NGX_CONF_UNSET_PTR;
    conf->turn_urls = NGX_CONF_UNSET_PTR;
    conf->limit = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_turnpolicy_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_turnpolicy_loc_conf_t *prev = parent;
    ngx_http_turnpolicy_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    /* not inherited: a nested location has its own content handler */
    if (conf->forward_auth == NGX_CONF_UNSET) {
        conf->forward_auth = 0;
    }

    if (conf->credentials == NGX_CONF_UNSET) {
        conf->credentials = 0;
    }

    if (conf->token_source == NGX_CONF_UNSET_UINT) {
        conf->token_source = prev->token_source;
        conf->token_name = prev->token_name;
    }

    if (conf->token_source == NGX_CONF_UNSET_UINT) {
        conf->token_source = NGX_HTTP_TURNPOLICY_TOKEN_PATH;
    }

    ngx_conf_merge_ptr_value(conf->upstream, prev->upstream, NULL);
    ngx_conf_merge_ptr_value(conf->turn_urls, prev->turn_urls, NULL);
    ngx_conf_merge_ptr_value(conf->limit, prev->limit, NULL);

    if (!conf->enable && !conf->credentials && !conf->forward_auth) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_turnpolicy_module);

    if (mcf->file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"turnpolicy\" in location \"%V\" requires "
                           "\"turnpolicy_config\" in the http block",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    mcf->used = 1;

    if (conf->forward_auth) {
        if (conf->token_source == NGX_HTTP_TURNPOLICY_TOKEN_ARG) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"turnpolicy_token arg:\" is not supported "
                               "with \"turnpolicy_forward_auth\" in location "
                               "\"%V\"", &clcf->name);
            return NGX_CONF_ERROR;
        }

    } else if (conf->token_source == NGX_HTTP_TURNPOLICY_TOKEN_PATH
        && (clcf->named || clcf->exact_match
#if (NGX_PCRE)
            || clcf->regex
#endif
        ))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"turnpolicy_token path\" needs a prefix "
                           "location, not \"%V\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->upstream == NULL && !conf->credentials && !conf->forward_auth
        && (clcf->named || clcf->exact_match
#if (NGX_PCRE)
            || clcf->regex
#endif
        ))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "location \"%V\" has no path prefix to take the "
                           "upstream host after; set \"turnpolicy_upstream\"",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->credentials) {
        if (clcf->handler != ngx_http_turnpolicy_credentials_handler) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"turnpolicy_credentials\" in location "
                               "\"%V\" conflicts with another content "
                               "handler (proxy_pass?)", &clcf->name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (clcf->resolver == NULL || clcf->resolver->connections.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"turnpolicy\" in location \"%V\" requires a "
                           "\"resolver\": the addresses of upstream hosts "
                           "are checked before nginx connects",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * turnpolicy_config <file>: the shared turnpolicy.conf.  Read here, in the
 * master (it may name files only root can read); the store options it
 * gives are used by each worker.  What the keys mean, their defaults and
 * ranges, is the library's (tp_store_options_from_config, the mapping
 * turnpolicyd and the CLI use): from [nginx] database (else the global
 * database_url), redis, redis_password_file, redis_fail_mode, no_listen,
 * max_staleness, reload_interval, issue_per_minute; from the global
 * section the JWT claim checks (jwt_issuer, jwt_audience,
 * jwt_realm_claim, jwt_leeway, jwt_max_lifetime).  Here the result is
 * only copied into the configuration pool.
 */
static char *
ngx_http_turnpolicy_config(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_turnpolicy_main_conf_t *mcf = conf;

    char              *rv;
    ngx_str_t         *value, file;
    tp_error           err;
    tp_config         *tc;
    tp_jwt_keys       *jk;
    tp_store_config    hold;
    tp_store_options   so;

    if (mcf->file.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->file.data = ngx_pnalloc(cf->pool, file.len + 1);
    if (mcf->file.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(mcf->file.data, file.data, file.len + 1);
    mcf->file.len = file.len;

    if (tp_config_load((char *) mcf->file.data, &tc, &err) != TP_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "turnpolicy_config: %s",
                           err.message);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_http_turnpolicy_config_nginx(cf, mcf, tc) != NGX_CONF_OK) {
        goto done;
    }

    if (tp_store_options_from_config(tc, "nginx", &so, &hold, &err)
        != TP_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "turnpolicy_config: %s",
                           err.message);
        goto done;
    }

    if (so.database == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "turnpolicy_config: \"%V\" sets no database_url",
                           &mcf->file);
        tp_store_config_clear(&hold);
        goto done;
    }

    /* the claim checks the store will make: refuse bad ones now */

    jk = tp_jwt_keys_new(&hold.jwt, &err);
    if (jk == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "turnpolicy_config: \"%V\": %s", &mcf->file,
                           err.message);
        tp_store_config_clear(&hold);
        goto done;
    }

    tp_jwt_keys_free(jk);

    /* copied into the pool: tc and hold go away */

    mcf->store = so;
    mcf->jwt = hold.jwt;
    mcf->store.jwt = &mcf->jwt;
    mcf->store.log = ngx_http_turnpolicy_store_log;

    if (ngx_http_turnpolicy_strdup_opt(cf, so.database,
                                       &mcf->store.database) != NGX_OK
        || ngx_http_turnpolicy_strdup_opt(cf, so.redis_host,
                                          &mcf->store.redis_host) != NGX_OK
        || ngx_http_turnpolicy_strdup_opt(cf, hold.jwt.issuer,
                                          &mcf->jwt.issuer) != NGX_OK
        || ngx_http_turnpolicy_strdup_opt(cf, hold.jwt.audience,
                                          &mcf->jwt.audience) != NGX_OK
        || ngx_http_turnpolicy_strdup_opt(cf, hold.jwt.realm_claim,
                                          &mcf->jwt.realm_claim) != NGX_OK
        || ngx_http_turnpolicy_secret_dup(cf, so.redis_password,
                                          &mcf->store.redis_password)
           != NGX_OK)
    {
        tp_store_config_clear(&hold);
        goto done;
    }

    tp_store_config_clear(&hold);

    rv = NGX_CONF_OK;

done:

    tp_config_free(tc);

    return rv;
}


/* The [nginx] section of turnpolicy_config holds store keys only. */
static char *
ngx_http_turnpolicy_config_nginx(ngx_conf_t *cf,
    ngx_http_turnpolicy_main_conf_t *mcf, const tp_config *tc)
{
    static const char *const  known[] = {
        "database", "redis", "redis_password_file", "redis_fail_mode",
        "max_staleness", "reload_interval", "no_listen", "issue_per_minute",
        NULL
    };

    size_t       i, j;
    const char  *v, *key;

    for (i = 0; (key = tp_config_key_at(tc, "nginx", i, &v)) != NULL; i++) {
        for (j = 0; known[j] && ngx_strcmp(known[j], key) != 0; j++) {
            /* void */
        }

        if (known[j] == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "turnpolicy_config: \"%V\": unknown key "
                               "\"%s\" in [nginx]", &mcf->file, key);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* A copy of s (NULL stays NULL) in the configuration pool. */
static ngx_int_t
ngx_http_turnpolicy_strdup_opt(ngx_conf_t *cf, const char *s,
    const char **out)
{
    if (s == NULL) {
        *out = NULL;
        return NGX_OK;
    }

    *out = ngx_http_turnpolicy_strdup(cf, s);

    return *out ? NGX_OK : NGX_ERROR;
}


/* The same for a secret: wiped when the pool goes. */
static ngx_int_t
ngx_http_turnpolicy_secret_dup(ngx_conf_t *cf, const char *s,
    const char **out)
{
    size_t               len;
    ngx_str_t           *wipe;
    ngx_pool_cleanup_t  *cln;

    *out = NULL;

    if (s == NULL) {
        return NGX_OK;
    }

    len = ngx_strlen(s) + 1;

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    wipe = cln->data;
    wipe->len = len;
    wipe->data = ngx_pnalloc(cf->pool, len);

    if (wipe->data == NULL) {
        wipe->len = 0;
        return NGX_ERROR;
    }

    ngx_memcpy(wipe->data, s, len);
    cln->handler = ngx_http_turnpolicy_wipe;

    *out = (const char *) wipe->data;

    return NGX_OK;
}


/* A NUL-terminated copy of s in the configuration pool, or NULL. */
static const char *
ngx_http_turnpolicy_strdup(ngx_conf_t *cf, const char *s)
{
    u_char  *p;
    size_t   len;

    len = ngx_strlen(s);

    p = ngx_pnalloc(cf->pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len + 1);

    return (const char *) p;
}


/* turnpolicy_token path | header:<name> | cookie:<name> | arg:<name> */
static char *
ngx_http_turnpolicy_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_turnpolicy_loc_conf_t *lcf = conf;

    u_char      *p;
    ngx_str_t   *value, name;
    ngx_uint_t   i, source;

    if (lcf->token_source != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&name);

    if (value[1].len == 4 && ngx_strncmp(value[1].data, "path", 4) == 0) {
        lcf->token_source = NGX_HTTP_TURNPOLICY_TOKEN_PATH;
        return NGX_CONF_OK;
    }

    p = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');

    if (p == NULL) {
        goto invalid;
    }

    name.data = p + 1;
    name.len = value[1].data + value[1].len - name.data;

    if (p - value[1].data == 6
        && ngx_strncmp(value[1].data, "header", 6) == 0)
    {
        source = NGX_HTTP_TURNPOLICY_TOKEN_HEADER;

    } else if (p - value[1].data == 6
               && ngx_strncmp(value[1].data, "cookie", 6) == 0)
    {
        source = NGX_HTTP_TURNPOLICY_TOKEN_COOKIE;

    } else if (p - value[1].data == 3
               && ngx_strncmp(value[1].data, "arg", 3) == 0)
    {
        source = NGX_HTTP_TURNPOLICY_TOKEN_ARG;

    } else {
        goto invalid;
    }

    if (name.len == 0 || name.len > 64) {
        goto invalid;
    }

    /* an HTTP token for header names; the same for cookies and args */

    for (i = 0; i < name.len; i++) {
        if (!((name.data[i] >= 'a' && name.data[i] <= 'z')
              || (name.data[i] >= 'A' && name.data[i] <= 'Z')
              || (name.data[i] >= '0' && name.data[i] <= '9')
              || name.data[i] == '-' || name.data[i] == '_'
              || name.data[i] == '.'))
        {
            goto invalid;
        }
    }

    lcf->token_source = source;
    lcf->token_name = name;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, it must be "
                       "\"path\", \"header:<name>\", \"cookie:<name>\" or "
                       "\"arg:<name>\" (names of [A-Za-z0-9._-], at most 64)",
                       &value[1], &cmd->name);

    return NGX_CONF_ERROR;
}


/* turnpolicy_credentials on|off: this location serves TURN credentials. */
static char *
ngx_http_turnpolicy_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_loc_conf_t *lcf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, &lcf->credentials);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!lcf->credentials) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler && clcf->handler
                         != ngx_http_turnpolicy_credentials_handler)
    {
        return "conflicts with another content handler (proxy_pass?)";
    }

    clcf->handler = ngx_http_turnpolicy_credentials_handler;

#if (NGX_THREADS)
    /* nginx's "default" pool (32 threads) unless thread_pool says more */
    lcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (lcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#endif

    return NGX_CONF_OK;
}


/*
 * turnpolicy_forward_auth PREFIX [uri=HEADER]: this location answers
 * another proxy's "may this request pass?" (nginx auth_request, Traefik
 * ForwardAuth, Caddy forward_auth) for the forwarded URI, whose location
 * prefix is PREFIX (the token and upstream host follow it as in a proxied
 * request).  HEADER is the one request header the front itself sets to
 * that URI (default X-Original-URI, nginx's usual auth_request setup;
 * Traefik and Caddy send X-Forwarded-Uri).
 */
static char *
ngx_http_turnpolicy_forward_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_loc_conf_t *lcf = conf;

    u_char                    *p;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->forward_auth != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive: the "
                           "location prefix of forwarded URIs starts with "
                           "\"/\"", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '%') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    ngx_str_set(&lcf->forward_uri, "X-Original-URI");

    if (cf->args->nelts == 3) {
        if (value[2].len <= 4
            || ngx_strncmp(value[2].data, "uri=", 4) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" "
                               "directive (uri=HEADER)", &value[2],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        lcf->forward_uri.data = value[2].data + 4;
        lcf->forward_uri.len = value[2].len - 4;

        for (p = lcf->forward_uri.data;
             p < lcf->forward_uri.data + lcf->forward_uri.len;
             p++)
        {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                  || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid header name \"%V\" in \"%V\" "
                                   "directive", &lcf->forward_uri,
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "conflicts with another content handler (proxy_pass?)";
    }

    clcf->handler = ngx_http_turnpolicy_forward_auth_handler;

    lcf->forward_auth = 1;
    lcf->forward_prefix = value[1];

    return NGX_CONF_OK;
}


/* turnpolicy_turn_urls <url> ...: TURN/STUN URIs in issued credentials. */
static char *
ngx_http_turnpolicy_turn_urls(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_loc_conf_t *lcf = conf;

    char        **url;
    tp_error      err;
    ngx_str_t    *value;
    ngx_uint_t    i, j;

    if (lcf->turn_urls != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts - 1 > NGX_HTTP_TURNPOLICY_URLS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many URLs in \"%V\" directive (at most %d)",
                           &cmd->name, NGX_HTTP_TURNPOLICY_URLS_MAX);
        return NGX_CONF_ERROR;
    }

    lcf->turn_urls = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                      sizeof(char *));
    if (lcf->turn_urls == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        /* the rules browsers apply (libturnpolicy's, as for the realm's) */
        if (tp_turn_url_parse((char *) value[i].data, NULL, &err) != TP_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive: "
                               "%s", &value[i], &cmd->name, err.message);
            return NGX_CONF_ERROR;
        }

        for (j = 0; j < value[i].len; j++) {
            if (value[i].data[j] < 0x21 || value[i].data[j] > 0x7e
                || value[i].data[j] == '"' || value[i].data[j] == '\\')
            {
                goto invalid;
            }
        }

        url = ngx_array_push(lcf->turn_urls);
        if (url == NULL) {
            return NGX_CONF_ERROR;
        }

        /* configuration strings are NUL-terminated */
        *url = (char *) value[i].data;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, it must be "
                       "a turn:, turns: or stun: URI", &value[i], &cmd->name);

    return NGX_CONF_ERROR;
}
