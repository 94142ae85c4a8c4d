
/*
 * ngx_http_turnpolicy_reply.c - what the module says back: refusals as
 * small JSON bodies with libturnpolicy's stable reason codes, the HTTP
 * status for each tp_status, the JSON sender every answer goes through
 * (Cache-Control: no-store; WWW-Authenticate on a 401), response headers,
 * and the $turnpolicy_* variables that carry the decision into proxy_pass
 * and the access log.
 *
 * Its own file because the access phase, the CORS preflight and the
 * credentials endpoint all answer the same way: one place decides the
 * shape of a refusal, the status it maps to, and what is logged.
 *
 * Invariants: a refusal never echoes the token; it is logged at "info"
 * without nginx's request line, and a request refused before its token was
 * read loses its request line ("[request not shown]") so that $request
 * shows no token either; ctx->reason is set for every answer ($turnpolicy_
 * reason).  Event loop only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


static ngx_int_t ngx_http_turnpolicy_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_turnpolicy_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/*
 * Refuse the request from the access phase: answer it and finalize it.
 * Returns NGX_DONE, what the access handler then returns.
 */
ngx_int_t
ngx_http_turnpolicy_deny(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_uint_t status, const char *reason,
    const char *detail)
{
    ngx_http_finalize_request(r, ngx_http_turnpolicy_refuse(r, ctx, status,
                                                           reason, detail));

    return NGX_DONE;
}


/* Refuse from the access phase for what libturnpolicy said. */
ngx_int_t
ngx_http_turnpolicy_deny_status(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, tp_status status, const tp_error *err)
{
    return ngx_http_turnpolicy_deny(r, ctx,
                                    ngx_http_turnpolicy_http_status(status),
                                    tp_reason(status), err->message);
}


/*
 * Answer with a JSON body {"error":"<reason>"}; log why at "info" without
 * nginx's request line (a path token is part of it).  Returns the rc to
 * finalize the request with.
 */
ngx_int_t
ngx_http_turnpolicy_refuse(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_uint_t status, const char *reason,
    const char *detail)
{
    u_char     *body, *p;
    size_t      len;
    ngx_int_t   rc;
    ngx_log_t   log;

    log = *r->connection->log;
    log.handler = NULL;

    ngx_log_error(NGX_LOG_INFO, &log, 0,
                  "turnpolicy: %ui %s: %s, client: %V", status, reason,
                  detail, &r->connection->addr_text);

    if (!ctx->redacted) {
        /*
         * Refused before its token was read (a bad path, no policy, a bad
         * preflight): the request line may still hold a token, in the
         * path or the query.  $request and later messages get none of it.
         */
        ngx_str_set(&r->request_line, "[request not shown]");
        ctx->redacted = 1;
    }

    ctx->reason.data = (u_char *) reason;
    ctx->reason.len = ngx_strlen(reason);

    if (ngx_http_turnpolicy_refusal_cors(r, ctx, reason, &rc) == NGX_DONE)
    {
        return rc;
    }

    len = sizeof("{\"error\":\"\"}\n") - 1 + ctx->reason.len;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"%V\"}\n", &ctx->reason);

    return ngx_http_turnpolicy_send_json(r, status, body, p - body, reason);
}


/* HTTP status for a refusal by libturnpolicy. */
ngx_uint_t
ngx_http_turnpolicy_http_status(tp_status status)
{
    switch (status) {

    case TP_ESTALE:
    case TP_EREDIS:
    case TP_ENOMEM:
        return NGX_HTTP_SERVICE_UNAVAILABLE;

    case TP_ERATELIMIT:
        return NGX_HTTP_TOO_MANY_REQUESTS;

    case TP_ENATIVE:
        return NGX_HTTP_CONFLICT;

    case TP_EHOSTDENIED:
    case TP_EBADHOST:
    case TP_EPEERDENIED:
    case TP_EBADADDR:
    case TP_EREALMKILLED:
    case TP_EUNKNOWNUSER:
    case TP_EDISABLED:
    case TP_EORIGIN:
        return NGX_HTTP_FORBIDDEN;

    case TP_ETOOLONG:
    case TP_EBADCHAR:
    case TP_EINVAL:
    case TP_EJWTMALFORMED:
    case TP_EJWTALG:
    case TP_EJWTKID:
    case TP_EJWTSIG:
    case TP_EJWTEXPIRED:
    case TP_EJWTNBF:
    case TP_EJWTLIFETIME:
    case TP_EJWTISS:
    case TP_EJWTAUD:
    case TP_EJWTCLAIM:
    case TP_EUNKNOWNREALM:
    case TP_EREVOKED:
    case TP_EKEY:
        return NGX_HTTP_UNAUTHORIZED;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * Send a complete JSON response, never cached; a 401 carries the RFC 6750
 * challenge.  Returns the rc to finalize the request with.
 */
ngx_int_t
ngx_http_turnpolicy_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, const char *reason)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");

        if (ngx_strcmp(reason, "token_missing") == 0) {
            ngx_str_set(&h->value, "Bearer");

        } else {
            ngx_str_set(&h->value, "Bearer error=\"invalid_token\"");
        }

        r->headers_out.www_authenticate = h;
#if (nginx_version >= 1023000)
        h->next = NULL;    /* 1.23 chains multi-value headers */
#endif
    }

    if (len == 0) {
        r->header_only = 1;
    }

    /* before the header goes: a 500 after it could not be sent */
    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_turnpolicy_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;
    h->lowcase_key = NULL;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * $turnpolicy_*: the decision, for proxy_pass (the upstream that was
 * checked, the path without the token) and for the access log
 */
static ngx_http_variable_t  ngx_http_turnpolicy_vars[] = {

    { ngx_string("turnpolicy_sub"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, sub),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_realm"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, realm),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_upstream"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, upstream),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_requested_upstream"), NULL,
      ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, requested),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_upstream_host"), NULL,
      ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, upstream_host),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_upstream_addr"), NULL,
      ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, upstream_addr),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_path"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, path),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_args"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, args),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_reason"), NULL, ngx_http_turnpolicy_variable,
      offsetof(ngx_http_turnpolicy_ctx_t, reason),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("turnpolicy_token_cache"), NULL,
      ngx_http_turnpolicy_cache_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* a string of the request's ctx at offset data; not found when empty */
static ngx_int_t
ngx_http_turnpolicy_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_turnpolicy_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/* $turnpolicy_token_cache: HIT, MISS, or empty (no token checked) */
static ngx_int_t
ngx_http_turnpolicy_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_turnpolicy_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL || !ctx->checked) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ctx->cached) {
        v->data = (u_char *) "HIT";
        v->len = sizeof("HIT") - 1;

    } else {
        v->data = (u_char *) "MISS";
        v->len = sizeof("MISS") - 1;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_turnpolicy_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_turnpolicy_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}
