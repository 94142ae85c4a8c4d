
/*
 * ngx_http_turnpolicy_resolve.c - the last step of the access phase for a
 * proxied request: resolve the authorized upstream host with the
 * location's "resolver" (nginx's asynchronous resolver), check every
 * address it resolves to against the realm's peer rules
 * (tp_store_peer_check), and name the first in $turnpolicy_upstream_addr
 * so that proxy_pass connects to exactly an address that was checked.
 *
 * Its own file because it is the one place a request waits: the access
 * handler returns NGX_DONE, the resolver's callback runs the phases again,
 * and the handler picks up from ctx->state.
 *
 * Invariants: ctx->state goes START -> RESOLVING -> RESOLVED, and only
 * the resolver's callback sets RESOLVED; a request that ends while its
 * name is being resolved cancels the query (pool cleanup); an answer with
 * no address, an error, or any address the realm does not allow refuses
 * the request (502 upstream_unresolvable, 403 peer_denied): all addresses
 * are checked, not only the one used.  Event loop only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


static void ngx_http_turnpolicy_resolve_handler(ngx_resolver_ctx_t *rctx);
static void ngx_http_turnpolicy_resolve_cleanup(void *data);


/*
 * Start resolving ctx->upstream_host with the location's resolver.
 * Returns NGX_OK when the answer is already there (nginx's resolver
 * cache), NGX_DONE when the request waits for it (the handler runs the
 * phases again), or what the access handler returns after a refusal.
 */
ngx_int_t
ngx_http_turnpolicy_resolve(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx)
{
    ngx_pool_cleanup_t        *cln;
    ngx_resolver_ctx_t        *rctx, temp;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    temp.name = ctx->upstream_host;

    rctx = ngx_resolve_start(clcf->resolver, &temp);
    if (rctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rctx == NGX_NO_RESOLVER) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "no_resolver",
                                        "no resolver is configured");
    }

    rctx->name = ctx->upstream_host;
    rctx->handler = ngx_http_turnpolicy_resolve_handler;
    rctx->data = r;
    rctx->timeout = clcf->resolver_timeout;

    ctx->resolver_ctx = rctx;
    ctx->state = NGX_HTTP_TURNPOLICY_RESOLVING;

    cln->handler = ngx_http_turnpolicy_resolve_cleanup;
    cln->data = ctx;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        ctx->resolver_ctx = NULL;
        ctx->state = NGX_HTTP_TURNPOLICY_START;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->state == NGX_HTTP_TURNPOLICY_RESOLVED) {
        /* answered from the resolver's cache, during ngx_resolve_name() */
        return NGX_OK;
    }

    ctx->waiting = 1;

    return NGX_DONE;
}


static void
ngx_http_turnpolicy_resolve_handler(ngx_resolver_ctx_t *rctx)
{
    ngx_uint_t                  i;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_turnpolicy_ctx_t  *ctx;

    r = rctx->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    ctx->resolve_error = rctx->state;

    if (rctx->state == 0 && rctx->naddrs) {
        ctx->addrs = ngx_pcalloc(r->pool, rctx->naddrs * sizeof(ngx_addr_t));

        if (ctx->addrs == NULL) {
            ctx->resolve_error = NGX_ERROR;

        } else {
            for (i = 0; i < rctx->naddrs; i++) {
                ctx->addrs[i].sockaddr = ngx_pcalloc(r->pool,
                                                     rctx->addrs[i].socklen);
                if (ctx->addrs[i].sockaddr == NULL) {
                    ctx->resolve_error = NGX_ERROR;
                    break;
                }

                ngx_memcpy(ctx->addrs[i].sockaddr, rctx->addrs[i].sockaddr,
                           rctx->addrs[i].socklen);
                ctx->addrs[i].socklen = rctx->addrs[i].socklen;
            }

            ctx->naddrs = i;
        }
    }

    ngx_resolve_name_done(rctx);
    ctx->resolver_ctx = NULL;
    ctx->state = NGX_HTTP_TURNPOLICY_RESOLVED;

    if (!ctx->waiting) {
        return;
    }

    ctx->waiting = 0;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* The request ends while its name is being resolved: forget the query. */
static void
ngx_http_turnpolicy_resolve_cleanup(void *data)
{
    ngx_http_turnpolicy_ctx_t  *ctx = data;

    if (ctx->resolver_ctx) {
        ngx_resolve_name_done(ctx->resolver_ctx);
        ctx->resolver_ctx = NULL;
    }
}


/*
 * Every address the upstream host resolved to must be allowed by the
 * realm's peer rules (the built-in default deny covers loopback, private
 * and link-local networks); then $turnpolicy_upstream_addr names the
 * first, so that nginx connects to an address that was checked.
 */
ngx_int_t
ngx_http_turnpolicy_check_peers(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf, ngx_http_turnpolicy_ctx_t *ctx)
{
    u_char               *p;
    ngx_uint_t            i;
    tp_addr               addr;
    tp_error              err;
    tp_status             status;
    struct sockaddr      *sa;
    tp_peer_decision      dec;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    if (ctx->resolve_error || ctx->naddrs == 0) {
        return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_BAD_GATEWAY,
                                        "upstream_unresolvable",
                                        ctx->resolve_error > 0
                                        ? ngx_resolver_strerror(
                                              ctx->resolve_error)
                                        : "no address");
    }

    for (i = 0; i < ctx->naddrs; i++) {
        sa = ctx->addrs[i].sockaddr;
        ngx_memzero(&addr, sizeof(tp_addr));

        switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
        case AF_INET6:
            sin6 = (struct sockaddr_in6 *) sa;
            addr.family = AF_INET6;
            ngx_memcpy(addr.bytes, sin6->sin6_addr.s6_addr, 16);
            break;
#endif

        case AF_INET:
            sin = (struct sockaddr_in *) sa;
            addr.family = AF_INET;
            ngx_memcpy(addr.bytes, &sin->sin_addr.s_addr, 4);
            break;

        default:
            return ngx_http_turnpolicy_deny(r, ctx, NGX_HTTP_FORBIDDEN,
                                            tp_reason(TP_EPEERDENIED),
                                            "unexpected address family");
        }

        status = tp_store_peer_check(mcf->st, (char *) ctx->realm.data,
                                     &addr, &dec, &err);
        if (status != TP_OK) {
            return ngx_http_turnpolicy_deny_status(r, ctx, status, &err);
        }
    }

    sa = ctx->addrs[0].sockaddr;
    ngx_inet_set_port(sa, ctx->port);

    p = ngx_pnalloc(r->pool, NGX_SOCKADDR_STRLEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->upstream_addr.len = ngx_sock_ntop(sa, ctx->addrs[0].socklen, p,
                                           NGX_SOCKADDR_STRLEN, 1);
    ctx->upstream_addr.data = p;

    ngx_str_set(&ctx->reason, "ok");
    ctx->allowed = 1;

    return NGX_OK;
}
