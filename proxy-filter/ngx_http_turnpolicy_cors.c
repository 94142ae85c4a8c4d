
/*
 * ngx_http_turnpolicy_cors.c - cross-origin requests from web pages (the
 * ACS web SDK): the CORS preflight (OPTIONS with Origin and Access-Control-
 * Request-Method), the Origin check of a real request against its realm's
 * allowed origins (tp_store_origin_check; tp_store_origin_realm before the
 * realm is known), and the CORS headers a refusal carries so that an
 * allowed page can read the JSON reason.
 *
 * Its own file because the browser's rules cut across the access phase: a
 * preflight comes without credentials and may be answered before any token
 * is seen, and a refusal decides late whether it may be read cross-origin.
 *
 * Invariants: Access-Control-Allow-Origin is always the exact origin,
 * never "*", and only for an origin some realm allows (the token's realm
 * when it is known); an origin_denied refusal carries no CORS headers;
 * forward-auth locations and subrequests get none either.  The response
 * headers of an allowed request are added by the header filter
 * (ngx_http_turnpolicy_filter.c) from ctx->cors and ctx->origin.  Event
 * loop only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


static ngx_int_t ngx_http_turnpolicy_preflight_send(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx);


/*
 * A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method).
 * Browsers send it without credentials, so the realm comes from a token in
 * the URL (turnpolicy_token path or arg) when there is one; with a header
 * or cookie token, the Origin must be allowed by some realm, and the real
 * request is checked against its own realm.  Answers 204 with the CORS
 * headers, or refuses with 403; NGX_DECLINED when this is not a preflight
 * (an ordinary OPTIONS request, proxied like any other).
 */
ngx_int_t
ngx_http_turnpolicy_preflight(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_str_t         origin, method, headers, hostport;
    tp_error          err;
    tp_status         status;
    ngx_uint_t        i;
    char             *o;

    static ngx_str_t  acrm = ngx_string("Access-Control-Request-Method");
    static ngx_str_t  acrh = ngx_string("Access-Control-Request-Headers");
    static ngx_str_t  origin_name = ngx_string("Origin");

    static ngx_str_t  methods[] = {
        ngx_string("GET"), ngx_string("HEAD"), ngx_string("POST"),
        ngx_string("PUT"), ngx_string("DELETE"), ngx_null_string
    };

    if (ngx_http_turnpolicy_header(r, &acrm, &method) == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_turnpolicy_header(r, &origin_name, &origin) != 1
        || origin.len == 0 || origin.len > 512)
    {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        tp_reason(TP_EORIGIN),
                                        "preflight with no single Origin");
    }

    for (i = 0; methods[i].len; i++) {
        if (method.len == methods[i].len
            && ngx_strncmp(method.data, methods[i].data, method.len) == 0)
        {
            break;
        }
    }

    if (methods[i].len == 0) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        "method_denied",
                                        "preflight for a method the proxy "
                                        "does not forward");
    }

    /* a comma-separated list of header names, echoed when allowed */

    ngx_http_turnpolicy_header(r, &acrh, &headers);

    if (headers.len > 1024) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        "bad_request",
                                        "preflight header list too long");
    }

    for (p = headers.data; p < headers.data + headers.len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == ',' || *p == ' '))
        {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            "bad_request",
                                            "preflight header list is "
                                            "malformed");
        }
    }

    o = ngx_pnalloc(r->pool, origin.len + 1);
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(o, origin.data, origin.len);
    o[origin.len] = '\0';

    /* for the answer, and for a refused token (see _refuse) */
    ctx->preflight = 1;
    ctx->origin.data = (u_char *) o;
    ctx->origin.len = origin.len;
    ctx->acrh = headers;

    if (lcf->token_source == NGX_HTTP_TURNPOLICY_TOKEN_PATH
        || lcf->token_source == NGX_HTTP_TURNPOLICY_TOKEN_ARG)
    {
        rc = ngx_http_turnpolicy_authenticate(r, mcf, lcf, ctx, &hostport);
        if (rc != NGX_OK) {
            return rc;
        }

        status = tp_store_origin_check(mcf->st, (char *) ctx->realm.data, o,
                                       &err);

    } else {
        status = tp_store_origin_realm(mcf->st, o, NULL, 0, &err);
    }

    if (status != TP_OK) {
        if (status == TP_EORIGIN) {
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            tp_reason(TP_EORIGIN),
                                            "preflight from an origin no "
                                            "realm allows here");
        }

        return ngx_http_turnpolicy_deny_status(r, ctx, status, &err);
    }

    ngx_str_set(&ctx->reason, "preflight");

    ngx_http_finalize_request(r, ngx_http_turnpolicy_preflight_send(r, ctx));

    return NGX_DONE;
}


/*
 * The 204 answer to an allowed preflight: the exact origin (never "*"),
 * with credentials (the SDK's telemetry is sent withCredentials), the
 * methods this proxy forwards, the requested headers echoed.  Returns the
 * rc to finalize the request with.
 */
static ngx_int_t
ngx_http_turnpolicy_preflight_send(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx)
{
    ngx_int_t         rc;
    ngx_uint_t        i;
    ngx_str_t        *v;

    static ngx_str_t  values[] = {
        ngx_string("Access-Control-Allow-Methods"),
        ngx_string("GET, HEAD, POST, PUT, DELETE"),
        ngx_string("Access-Control-Allow-Credentials"),
        ngx_string("true"),
        ngx_string("Access-Control-Max-Age"),
        ngx_string("600"),
        ngx_string("Vary"),
        ngx_string("Origin, Access-Control-Request-Method, "
                   "Access-Control-Request-Headers"),
        ngx_null_string
    };

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    if (ngx_http_turnpolicy_add_header(r, "Access-Control-Allow-Origin",
                                       &ctx->origin) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->acrh.len
        && ngx_http_turnpolicy_add_header(r, "Access-Control-Allow-Headers",
                                          &ctx->acrh) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; values[i].len; i += 2) {
        v = &values[i + 1];

        if (ngx_http_turnpolicy_add_header(r, (char *) values[i].data, v)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_send_header(r);
}


/*
 * A refusal to a page of an allowed origin carries the CORS headers, so
 * that the page reads the JSON reason instead of a CORS failure: allowed
 * by the realm of the token when it is known, else by some realm (a token
 * that failed names no realm one can trust).  An origin_denied refusal,
 * other origins and a store not loaded yet get none.  A preflight whose
 * token or subject is refused (401, 403 user_disabled, 429...) is
 * answered as an allowed preflight: the real request then gets the
 * refusal with its reason, readable.  Returns NGX_OK
 * (ctx->cors set or not), NGX_DONE when the preflight answer is the
 * response (*rc: the rc to finalize with).
 */
ngx_int_t
ngx_http_turnpolicy_refusal_cors(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const char *reason, ngx_int_t *rc)
{
    char                             *o;
    ngx_str_t                         origin;
    tp_error                          err;
    tp_status                         allowed;
    ngx_http_turnpolicy_loc_conf_t   *lcf;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    static ngx_str_t  origin_name = ngx_string("Origin");

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);

    if (ctx->cors || mcf->st == NULL || lcf->forward_auth || r != r->main
        || ngx_strcmp(reason, tp_reason(TP_EORIGIN)) == 0
        || ngx_http_turnpolicy_header(r, &origin_name, &origin) != 1
        || origin.len == 0 || origin.len > 512)
    {
        return NGX_OK;
    }

    o = ngx_pnalloc(r->pool, origin.len + 1);
    if (o == NULL) {
        return NGX_OK;
    }

    ngx_memcpy(o, origin.data, origin.len);
    o[origin.len] = '\0';

    if (ctx->realm.len) {
        allowed = tp_store_origin_check(mcf->st, (char *) ctx->realm.data,
                                        o, &err);

    } else {
        allowed = tp_store_origin_realm(mcf->st, o, NULL, 0, &err);
    }

    if (allowed != TP_OK) {
        return NGX_OK;
    }

    ctx->origin.data = (u_char *) o;
    ctx->origin.len = origin.len;

    if (ctx->preflight) {
        *rc = ngx_http_turnpolicy_preflight_send(r, ctx);
        return NGX_DONE;
    }

    ctx->cors = 1;

    return NGX_OK;
}


/*
 * A request from a web page (it has an Origin) must come from an origin
 * its realm allows; the response then carries the CORS headers (the
 * header filter adds them).  Requests without Origin are not browsers'
 * cross-origin requests and pass.
 */
ngx_int_t
ngx_http_turnpolicy_origin(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx)
{
    char                              *o;
    ngx_str_t                          origin;
    tp_error                           err;
    tp_status                          status;
    ngx_http_turnpolicy_main_conf_t   *mcf;

    static ngx_str_t  origin_name = ngx_string("Origin");

    switch (ngx_http_turnpolicy_header(r, &origin_name, &origin)) {

    case 0:
        return NGX_OK;

    case 1:
        if (origin.len > 0 && origin.len <= 512) {
            break;
        }

        /* fall through */

    default:
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                        tp_reason(TP_EORIGIN),
                                        "no single well-formed Origin");
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);

    o = ngx_pnalloc(r->pool, origin.len + 1);
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(o, origin.data, origin.len);
    o[origin.len] = '\0';

    status = tp_store_origin_check(mcf->st, (char *) ctx->realm.data, o,
                                   &err);
    if (status != TP_OK) {
        return ngx_http_turnpolicy_deny_status(r, ctx, status, &err);
    }

    ctx->origin.data = (u_char *) o;
    ctx->origin.len = origin.len;
    ctx->cors = 1;

    return NGX_OK;
}
