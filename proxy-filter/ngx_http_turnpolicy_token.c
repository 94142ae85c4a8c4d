
/*
 * ngx_http_turnpolicy_token.c - reading the token out of the request, and
 * keeping it out of everything nginx writes about the request: request
 * header lookup, the token from a header ("Bearer "), a cookie or a query
 * argument, its compact-JWS shape, $turnpolicy_args without the token's
 * argument, and the redaction of the request line ($request and nginx's
 * error messages).
 *
 * Its own file because a token is a secret that travels in the request
 * itself: how it is found and how every copy of it is kept out of logs is
 * one concern, whatever the request then asks for.
 *
 * Invariants: the request itself (r->unparsed_uri, r->args) is never
 * changed; once _redact ran (ctx->redacted), the request line shows
 * "[token]" for every copy of the token, or "[request not shown]" when
 * the token could not be found where it should be or something else
 * shaped like a token is left; a header given twice is reported, never
 * resolved by picking one.  Event loop only; no allocation beyond the
 * request's pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"
#include "tp_uri.h"


/*
 * The value of request header "name" in *value; returns how many times
 * the header is present (0: *value is empty; more than 1: the first).
 */
ngx_uint_t
ngx_http_turnpolicy_header(ngx_http_request_t *r, const ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_str_null(value);

    part = &r->headers_in.headers.part;
    h = part->elts;
    n = 0;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != name->len
            || ngx_strncasecmp(h[i].key.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (n++ == 0) {
            *value = h[i].value;
        }
    }

    return n;
}


/*
 * The token from a header ("Bearer " is stripped), a cookie or a query
 * argument.  Returns NGX_OK (token->len may be 0: none) or NGX_ERROR when
 * the header is given more than once.
 */
ngx_int_t
ngx_http_turnpolicy_get_token(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_str_t *token)
{
    ngx_str_t  value;

    ngx_str_null(&value);

    switch (lcf->token_source) {

    case NGX_HTTP_TURNPOLICY_TOKEN_HEADER:
        if (ngx_http_turnpolicy_header(r, &lcf->token_name, &value) > 1) {
            return NGX_ERROR;
        }

        if (value.len > 7
            && ngx_strncasecmp(value.data, (u_char *) "Bearer ", 7) == 0)
        {
            value.data += 7;
            value.len -= 7;

            while (value.len && value.data[0] == ' ') {
                value.data++;
                value.len--;
            }
        }

        break;

    case NGX_HTTP_TURNPOLICY_TOKEN_COOKIE:
#if (nginx_version >= 1029006)
        /* 1.29.6: Cookie pairs are split on ';' only, by a function of
         * their own (the multi-header one splits on ',') */
        if (ngx_http_parse_cookie_lines(r, r->headers_in.cookie,
                                        &lcf->token_name, &value)
            == NULL)
#elif (nginx_version >= 1023000)
        /* since nginx 1.23 the Cookie headers are a chain */
        if (ngx_http_parse_multi_header_lines(r, r->headers_in.cookie,
                                              &lcf->token_name, &value)
            == NULL)
#else
        if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies,
                                              &lcf->token_name, &value)
            == NGX_DECLINED)
#endif
        {
            ngx_str_null(&value);
        }

        break;

    default: /* NGX_HTTP_TURNPOLICY_TOKEN_ARG */
        if (ngx_http_arg(r, lcf->token_name.data, lcf->token_name.len,
                         &value)
            != NGX_OK)
        {
            ngx_str_null(&value);
        }

        break;
    }

    *token = value;

    return NGX_OK;
}


/*
 * A compact JWS: three base64url parts separated by dots (the last may be
 * empty: alg "none", which the library refuses with its own reason).
 */
ngx_int_t
ngx_http_turnpolicy_token_shape(ngx_str_t *token)
{
    u_char      c;
    ngx_uint_t  i, dots;

    dots = 0;

    for (i = 0; i < token->len; i++) {
        c = token->data[i];

        if (c == '.') {
            dots++;
            continue;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return NGX_DECLINED;
        }
    }

    return dots == 2 ? NGX_OK : NGX_DECLINED;
}


/*
 * $turnpolicy_args: the query string without the token's argument (with
 * "turnpolicy_token arg:NAME"; otherwise $args as it is), so that the
 * token is not forwarded upstream.
 */
ngx_int_t
ngx_http_turnpolicy_strip_arg(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_str_t *args)
{
    u_char      *p, *q, *end, *eq, *dst;
    ngx_str_t   *name;

    if (lcf->token_source != NGX_HTTP_TURNPOLICY_TOKEN_ARG
        || r->args.len == 0)
    {
        *args = r->args;
        return NGX_OK;
    }

    name = &lcf->token_name;

    args->data = ngx_pnalloc(r->pool, r->args.len);
    if (args->data == NULL) {
        return NGX_ERROR;
    }

    dst = args->data;
    end = r->args.data + r->args.len;

    for (p = r->args.data; p < end; p = q + 1) {
        q = ngx_strlchr(p, end, '&');
        q = q ? q : end;

        eq = ngx_strlchr(p, q, '=');
        eq = eq ? eq : q;

        if ((size_t) (eq - p) == name->len
            && ngx_strncasecmp(p, name->data, name->len) == 0)
        {
            continue;
        }

        if (dst != args->data) {
            *dst++ = '&';
        }

        dst = ngx_cpymem(dst, p, q - p);
    }

    args->len = dst - args->data;

    return NGX_OK;
}


/*
 * A token in the path or the query is part of the request line, which
 * nginx writes into $request and into every error message about the
 * request ("request: ..."): from here on, those show "[token]" instead of
 * every copy of it (the SDK's nested URLs carry it twice).  When the token
 * is empty or not shaped like one (it was not found where it should be:
 * "/t//<token>/host"), or something else shaped like a token is left in
 * the line (another token), the whole line is withheld instead.  The
 * request itself (r->unparsed_uri, r->args) is not changed.  A request
 * refused before its token is known loses its whole request line too
 * (see ngx_http_turnpolicy_refuse).
 */
void
ngx_http_turnpolicy_redact(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const ngx_str_t *token)
{
    u_char  *p;
    size_t   len;

    static u_char  mark[] = "[token]";

    ctx->redacted = 1;

    if (r->request_line.data == NULL) {
        return;
    }

    if (token->len == 0 || token->len > TP_JWT_MAX
        || ngx_http_turnpolicy_token_shape((ngx_str_t *) token) != NGX_OK)
    {
        goto withhold;
    }

    if (tp_uri_find(r->request_line.data, r->request_line.len, token->data,
                    token->len)
        != (size_t) -1)
    {
        len = tp_uri_redacted_len(r->request_line.data, r->request_line.len,
                                  token->data, token->len, sizeof(mark) - 1);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            goto withhold;
        }

        r->request_line.len = tp_uri_redact(r->request_line.data,
                                            r->request_line.len,
                                            token->data, token->len, mark,
                                            sizeof(mark) - 1, p);
        r->request_line.data = p;
    }

    if (!tp_uri_has_jws(r->request_line.data, r->request_line.len)) {
        return;
    }

withhold:

    ngx_str_set(&r->request_line, "[request not shown]");
}
