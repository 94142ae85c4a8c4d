
/*
 * ngx_http_turnpolicy_filter.c - the response filters of
 * ngx_http_turnpolicy_module: what an upstream answers must not undo what
 * the access phase checked.
 *
 * Redirects.  Any 3xx (300 to 399) or 201 from the upstream of a request
 * the module allowed may send the client only where the realm allows.
 * Its Location is checked with the same allow-list as the request
 * (tp_store_host_check: host, port and path) and rewritten to go through
 * this proxy, "<prefix>/<host[:port]><path>", where <prefix> is the raw
 * path before the upstream host ("/t/<token>"):
 *
 *   "/x?y"              the same upstream, path /x?y
 *   "x?y", "?y", "#f"   the same upstream, resolved against the proxied
 *                       path's directory ("?y" and "#f": the path itself)
 *   "https://h[:p]/x"   host h on port p (none: 443), as is "wss://"
 *
 * With turnpolicy_upstream the client never named the host in its URL:
 * an allowed absolute Location is passed unchanged, a relative one too
 * (it stays on this proxy).  Everything else is refused: other schemes
 * ("http:"), "//host", userinfo, IP literals, ports with leading zeros,
 * encoded or dot path segments (%2e %2f %5c %00, "." and ".."), control
 * bytes, spaces, non-ASCII and '\' anywhere, more than one Location.  A
 * refused redirect becomes the module's own 403 {"error":"redirect_denied"}:
 * every upstream header is dropped (Location, ETag, Last-Modified,
 * Content-Encoding, Set-Cookie...), and the body filter swallows the
 * upstream's body and sends the JSON once, on the last buffer.
 *
 * CORS.  The module owns CORS on this proxy: with ctx->cors (the realm
 * allows the request's Origin), the upstream's Access-Control-* headers
 * are dropped and "Access-Control-Allow-Origin: <origin>" (never "*"),
 * "Access-Control-Allow-Credentials: true" and "Vary: Origin" added,
 * to proxied responses and the module's own refusals and credentials
 * (a response that already carries the module's own
 * Access-Control-Allow-Origin, a preflight, is left as it is).  Without
 * ctx->cors, the upstream's Access-Control-Allow-Origin and
 * -Allow-Credentials are dropped.
 *
 * Only the main request of a location with "turnpolicy on" or
 * "turnpolicy_credentials on" is filtered (it has the module's ctx);
 * forward-auth answers go to another proxy, not a browser, and are not.
 * Nothing here logs the request line or ctx->prefix: both hold the token.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <turnpolicy.h>

#include "ngx_http_turnpolicy.h"


#define NGX_HTTP_TURNPOLICY_REDIRECT_DENIED                                  \
    "{\"error\":\"redirect_denied\"}\n"


static ngx_int_t ngx_http_turnpolicy_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_turnpolicy_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_turnpolicy_redirect(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *host, const char **why);
static ngx_int_t ngx_http_turnpolicy_location(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_table_elt_t *h, ngx_str_t *host, const char **why);
static ngx_int_t ngx_http_turnpolicy_host_check(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const char *host, ngx_uint_t port,
    u_char *path, u_char *end, const char **why);
static ngx_int_t ngx_http_turnpolicy_redirect_deny(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_str_t *host, const char *why);
static ngx_int_t ngx_http_turnpolicy_cors(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx);
static ngx_uint_t ngx_http_turnpolicy_named(ngx_table_elt_t *h,
    ngx_str_t *name);
static ngx_str_t  ngx_http_turnpolicy_hdr_acao =
    ngx_string("Access-Control-Allow-Origin");
static ngx_str_t  ngx_http_turnpolicy_hdr_acac =
    ngx_string("Access-Control-Allow-Credentials");
static ngx_str_t  ngx_http_turnpolicy_hdr_location = ngx_string("Location");
static ngx_str_t  ngx_http_turnpolicy_hdr_origin = ngx_string("Origin");
static ngx_str_t  ngx_http_turnpolicy_no_store = ngx_string("no-store");
static ngx_str_t  ngx_http_turnpolicy_true = ngx_string("true");


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_turnpolicy_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_turnpolicy_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_turnpolicy_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_turnpolicy_header_filter(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        host;
    const char                      *why;
    ngx_http_turnpolicy_ctx_t       *ctx;
    ngx_http_turnpolicy_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);

    if (lcf->forward_auth) {
        return ngx_http_next_header_filter(r);
    }

    /*
     * Any 3xx (clients follow 300, 305 and unknown ones too) and 201
     * Created, whose Location clients may open next.
     */

    if (ctx->allowed && !lcf->credentials
        && ((r->headers_out.status >= NGX_HTTP_SPECIAL_RESPONSE
             && r->headers_out.status < NGX_HTTP_BAD_REQUEST)
            || r->headers_out.status == NGX_HTTP_CREATED))
    {
        ngx_str_null(&host);
        why = "bad Location";

        rc = ngx_http_turnpolicy_redirect(r, lcf, ctx, &host, &why);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED
            && ngx_http_turnpolicy_redirect_deny(r, ctx, &host, why)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_turnpolicy_cors(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * After a refused redirect: consume whatever the upstream sends and, with
 * its last buffer, send the JSON refusal instead (nothing for HEAD).
 */
static ngx_int_t
ngx_http_turnpolicy_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                  *b;
    ngx_uint_t                  last;
    ngx_chain_t                *cl, out;
    ngx_http_turnpolicy_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL || !ctx->redirect_refused || r != r->main
        || in == NULL || ctx->redirect_sent)
    {
        /*
         * in == NULL: nginx pushing out what is still buffered (our JSON,
         * when the client was slow) - it must reach the write filter.
         */
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;

        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (!r->header_only) {
        b->pos = (u_char *) NGX_HTTP_TURNPOLICY_REDIRECT_DENIED;
        b->last = b->pos + sizeof(NGX_HTTP_TURNPOLICY_REDIRECT_DENIED) - 1;
        b->memory = 1;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ctx->redirect_sent = 1;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * The redirect's Location, checked and rewritten.  Returns NGX_OK (none,
 * or allowed), NGX_DECLINED (refuse it: *why says why, *host names the
 * host when it could be parsed) or NGX_ERROR.
 */
static ngx_int_t
ngx_http_turnpolicy_redirect(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *host, const char **why)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *location;

    location = NULL;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || !ngx_http_turnpolicy_named(&h[i],
                                          &ngx_http_turnpolicy_hdr_location))
        {
            continue;
        }

        if (location) {
            *why = "more than one Location";
            return NGX_DECLINED;
        }

        location = &h[i];
    }

    if (location == NULL) {
        return NGX_OK;
    }

    return ngx_http_turnpolicy_location(r, lcf, ctx, location, host, why);
}


/*
 * One Location: the forms in the file comment.  Rewrites h->value in
 * place when the redirect is allowed through the proxy's path.
 */
static ngx_int_t
ngx_http_turnpolicy_location(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_table_elt_t *h, ngx_str_t *host, const char **why)
{
    u_char     *p, *end, *q, *auth, *colon, *rest, *path_end, *d;
    size_t      len;
    ngx_int_t   port;
    ngx_str_t   base, value;
    tp_error    err;
    char        name[NGX_HTTP_TURNPOLICY_HOST_MAX + 1];
    char        norm[NGX_HTTP_TURNPOLICY_HOST_MAX + 2];

    p = h->value.data;
    end = p + h->value.len;

    if (p == end) {
        *why = "empty Location";
        return NGX_DECLINED;
    }

    /* browsers drop tabs and newlines and read '\' as '/' */

    for (q = p; q < end; q++) {
        if (*q < 0x21 || *q > 0x7e || *q == '\\') {
            *why = "control byte, space, non-ASCII or '\\' in Location";
            return NGX_DECLINED;
        }
    }

    if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        *why = "scheme-relative Location";
        return NGX_DECLINED;
    }

    for (q = p; q < end && *q != ':' && *q != '/' && *q != '?' && *q != '#';
         q++)
    {
        /* void */
    }

    if (q == end || *q != ':') {

        /* relative: the same upstream */

        if (lcf->upstream) {
            return NGX_OK;
        }

        base = ctx->path;

        if (p[0] == '/') {
            base.len = 0;

        } else if (p[0] != '?' && p[0] != '#') {
            /* its directory; ctx->path starts with '/' */
            while (base.len && base.data[base.len - 1] != '/') {
                base.len--;
            }
        }

        len = base.len + (end - p);

        value.data = ngx_pnalloc(r->pool, ctx->prefix.len + 1
                                          + ctx->upstream.len + len);
        if (value.data == NULL) {
            return NGX_ERROR;
        }

        d = ngx_cpymem(value.data, ctx->prefix.data, ctx->prefix.len);
        *d++ = '/';
        d = ngx_cpymem(d, ctx->upstream.data, ctx->upstream.len);
        rest = d;
        d = ngx_cpymem(d, base.data, base.len);
        d = ngx_cpymem(d, p, end - p);

        *host = ctx->upstream;

        for (path_end = rest; path_end < d; path_end++) {
            if (*path_end == '?' || *path_end == '#') {
                break;
            }
        }

        port = ngx_strlchr(ctx->upstream.data,
                           ctx->upstream.data + ctx->upstream.len, ':')
               ? ctx->port : 0;

        if (ngx_http_turnpolicy_host_check(r, ctx,
                                           (char *) ctx->upstream_host.data,
                                           port, rest, path_end, why)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }

        goto rewrite;
    }

    /* absolute: "https://" or "wss://", host[:port], then the rest */

    if (!(((q - p == 5 && ngx_strncasecmp(p, (u_char *) "https", 5) == 0)
           || (q - p == 3 && ngx_strncasecmp(p, (u_char *) "wss", 3) == 0))
          && end - q >= 3 && q[1] == '/' && q[2] == '/'))
    {
        *why = "not an https: or wss: URL";
        return NGX_DECLINED;
    }

    auth = q + 3;
    colon = NULL;

    for (q = auth; q < end && *q != '/' && *q != '?' && *q != '#'; q++) {

        if (*q == ':' && colon == NULL) {
            colon = q;
            continue;
        }

        /* no userinfo ('@'), IPv6 literal, '%', second ':' */

        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')
              || (*q >= '0' && *q <= '9') || *q == '-' || *q == '.'))
        {
            *why = "userinfo or a bad byte in the Location's host";
            return NGX_DECLINED;
        }
    }

    rest = q;
    q = colon ? colon : rest;

    if (q == auth || (size_t) (q - auth) > NGX_HTTP_TURNPOLICY_HOST_MAX) {
        *why = "bad host in Location";
        return NGX_DECLINED;
    }

    host->data = auth;
    host->len = rest - auth;

    port = 0;

    if (colon) {
        port = ngx_atoi(colon + 1, rest - colon - 1);

        if (port < 1 || port > 65535 || colon[1] == '0') {
            *why = "bad port in Location";
            return NGX_DECLINED;
        }
    }

    ngx_memcpy(name, auth, q - auth);
    name[q - auth] = '\0';

    if (tp_host_normalize(name, norm, sizeof(norm), &err) != TP_OK) {
        *why = tp_reason(err.status);
        return NGX_DECLINED;
    }

    for (path_end = rest; path_end < end; path_end++) {
        if (*path_end == '?' || *path_end == '#') {
            break;
        }
    }

    if (ngx_http_turnpolicy_host_check(r, ctx, norm, port, rest, path_end,
                                       why)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (lcf->upstream) {
        /* the client's URL named no host: nothing to rewrite */
        return NGX_OK;
    }

    len = ngx_strlen(norm);

    value.data = ngx_pnalloc(r->pool, ctx->prefix.len + 1 + len
                                      + sizeof(":65535") - 1 + 1
                                      + (end - rest));
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    d = ngx_cpymem(value.data, ctx->prefix.data, ctx->prefix.len);
    *d++ = '/';
    d = ngx_cpymem(d, norm, len);

    if (colon) {
        d = ngx_sprintf(d, ":%i", port);
    }

    if (rest == end || *rest != '/') {
        *d++ = '/';
    }

    d = ngx_cpymem(d, rest, end - rest);

rewrite:

    value.len = d - value.data;
    h->value = value;

    /*
     * Keep it relative: nginx's header filter would make a Location
     * starting with '/' absolute with its own idea of the host and port.
     */

    if (r->headers_out.location == h) {
        r->headers_out.location = NULL;
    }

    return NGX_OK;
}


/*
 * May the realm's client be sent to host (normalized), port (0: none
 * given) and path p..end ("" is "/")?  NGX_OK or NGX_DECLINED with *why.
 */
static ngx_int_t
ngx_http_turnpolicy_host_check(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const char *host, ngx_uint_t port,
    u_char *path, u_char *end, const char **why)
{
    u_char                           *s;
    tp_error                          err;
    tp_status                         status;
    tp_host_match                     match;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    if (ngx_http_turnpolicy_path_safe(path, end) != NGX_OK) {
        *why = "dot segment or encoded '/', '\\', '.' or NUL in the path";
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);

    if (mcf->st == NULL) {
        *why = "the policy store is not loaded";
        return NGX_DECLINED;
    }

    s = ngx_pnalloc(r->pool, (end - path) + 2);
    if (s == NULL) {
        *why = "out of memory";
        return NGX_DECLINED;
    }

    if (path == end) {
        *ngx_cpymem(s, "/", 1) = '\0';

    } else {
        *ngx_cpymem(s, path, end - path) = '\0';
    }

    status = tp_store_host_check(mcf->st, (char *) ctx->realm.data, host,
                                 (unsigned) port, (char *) s, &match, &err);

    if (status != TP_OK) {
        *why = tp_reason(status);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Turn the upstream's redirect into the module's 403 redirect_denied:
 * no header of the upstream's is kept; the body filter replaces its body.
 * Logged at "info" with the realm and the host only.
 */
static ngx_int_t
ngx_http_turnpolicy_redirect_deny(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_str_t *host, const char *why)
{
    ngx_log_t   log;
    ngx_str_t   none = ngx_string("-");

    /* without the connection's handler: the request line holds the token */

    log = *r->connection->log;
    log.handler = NULL;

    ngx_log_error(NGX_LOG_INFO, &log, 0,
                  "turnpolicy: 403 redirect_denied: %s, host \"%V\", "
                  "realm \"%V\", client: %V", why,
                  host->len ? host : &none, &ctx->realm,
                  &r->connection->addr_text);

    ngx_http_clean_header(r);

    r->headers_out.status = NGX_HTTP_FORBIDDEN;
    r->headers_out.content_length_n =
                             sizeof(NGX_HTTP_TURNPOLICY_REDIRECT_DENIED) - 1;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->allow_ranges = 0;

    if (ngx_http_turnpolicy_add_header(r, "Cache-Control",
                                       &ngx_http_turnpolicy_no_store)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&ctx->reason, "redirect_denied");
    ctx->redirect_refused = 1;

    return NGX_OK;
}


/* The CORS response headers, as the file comment says. */
static ngx_int_t
ngx_http_turnpolicy_cors(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx)
{
    ngx_uint_t        i, acao;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    acao = 0;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len < sizeof("Access-Control-") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Access-Control-",
                               sizeof("Access-Control-") - 1)
               != 0)
        {
            continue;
        }

        if (r->upstream == NULL) {
            /* the module's own, a preflight's */
            acao |= ngx_http_turnpolicy_named(&h[i],
                                              &ngx_http_turnpolicy_hdr_acao);
            continue;
        }

        if (ctx->cors
            || ngx_http_turnpolicy_named(&h[i], &ngx_http_turnpolicy_hdr_acao)
            || ngx_http_turnpolicy_named(&h[i], &ngx_http_turnpolicy_hdr_acac))
        {
            h[i].hash = 0;
        }
    }

    if (!ctx->cors || acao || ctx->origin.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_turnpolicy_add_header(r, "Access-Control-Allow-Origin",
                                       &ctx->origin)
           != NGX_OK
        || ngx_http_turnpolicy_add_header(r,
                                          "Access-Control-Allow-Credentials",
                                          &ngx_http_turnpolicy_true)
           != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "Vary",
                                          &ngx_http_turnpolicy_hdr_origin)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Is h the header named name (case-insensitive)?  1 or 0. */
static ngx_uint_t
ngx_http_turnpolicy_named(ngx_table_elt_t *h, ngx_str_t *name)
{
    return h->key.len == name->len
           && ngx_strncasecmp(h->key.data, name->data, name->len) == 0;
}


/*
 * Add a response header; key and value must live as long as the request.
 * Returns NGX_OK or NGX_ERROR.
 */