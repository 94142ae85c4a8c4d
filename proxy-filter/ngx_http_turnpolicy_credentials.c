
/*
 * ngx_http_turnpolicy_credentials.c - the module's two content handlers,
 * which answer for a request the access phase has already allowed:
 *
 *   turnpolicy_credentials  TURN credentials for the authenticated subject
 *                           (tp_store_issue), as JSON in the shape
 *                           ?format= asks for (ice, rest, acs-native)
 *   turnpolicy_forward_auth 200 and X-Turnpolicy-* headers telling another
 *                           proxy (auth_request, Traefik, Caddy) how to
 *                           pass the forwarded request on
 *
 * Its own file because issuing is the module's one task that may block:
 * tp_store_issue counts the issuance rate in Redis, a round trip, so with
 * thread support it runs in nginx's thread pool and the request waits for
 * the task's completion event.
 *
 * Invariants: nothing is issued unless the access handler authenticated
 * the request (ctx->authenticated); the task (ngx_http_turnpolicy_issue_t)
 * holds only plain values and the store, and the thread calls nothing of
 * nginx's, only the library's; the credential is secret until it expires,
 * so it and the JSON body holding it are wiped when the request's pool
 * goes.  The handlers run in the event loop; _issue_thread runs in a
 * thread of the pool (in the event loop without NGX_THREADS).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


/*
 * nginx's thread pool hands a finished task back to the event loop
 * through a spinlock released by a plain store, a __sync_synchronize()
 * and an eventfd the loop never reads (ngx_thread_pool_cycle,
 * ngx_thread_pool_handler): ThreadSanitizer models none of these, so under
 * `make tsan` every read of the task's results in the loop would be
 * reported as racing with the thread's writes.  The thread releases the
 * task and the completion handler acquires it, which tells ThreadSanitizer
 * about the ordering nginx provides; without it these compile to nothing.
 */
#if defined(__SANITIZE_THREAD__)
#define NGX_HTTP_TURNPOLICY_TSAN  1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NGX_HTTP_TURNPOLICY_TSAN  1
#endif
#endif

#if (NGX_HTTP_TURNPOLICY_TSAN && NGX_THREADS)
#include <sanitizer/tsan_interface.h>
#define ngx_http_turnpolicy_task_release(p)  __tsan_release(p)
#define ngx_http_turnpolicy_task_acquire(p)  __tsan_acquire(p)
#else
#define ngx_http_turnpolicy_task_release(p)  (void) (p)
#define ngx_http_turnpolicy_task_acquire(p)  (void) (p)
#endif


/* A credential being issued (in the thread pool when there is one). */
struct ngx_http_turnpolicy_issue_s {
    tp_store                  *st;
    const char                *realm;
    const char                *sub;
    int64_t                    now;
    tp_cred_json               shape;      /* ?format=; default ice */
    tp_status                  status;
    tp_credential              cred;
    tp_error                   err;
};


static void ngx_http_turnpolicy_issue_thread(void *data, ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_turnpolicy_issue_done(ngx_event_t *ev);
static void ngx_http_turnpolicy_issue_respond(ngx_http_request_t *r);
#endif
static void ngx_http_turnpolicy_issue_wipe(void *data);
static ngx_int_t ngx_http_turnpolicy_credentials_respond(
    ngx_http_request_t *r, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_http_turnpolicy_issue_t *t);
static tp_status ngx_http_turnpolicy_cred_urls(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, char **store, u_char *buf, size_t cap,
    char ***urls, size_t *nurls, tp_error *err);
static ngx_int_t ngx_http_turnpolicy_cred_format(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, tp_cred_json *shape, ngx_int_t *rc);


/*
 * Content handler of a "turnpolicy_credentials on" location: TURN
 * credentials for the subject the access handler authenticated, in the
 * iceServers shape, with the realm's default lifetime.
 */
ngx_int_t
ngx_http_turnpolicy_credentials_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    tp_cred_json                       shape;
    ngx_pool_cleanup_t                *cln;
    ngx_http_turnpolicy_ctx_t         *ctx;
    ngx_http_turnpolicy_issue_t       *t;
    ngx_http_turnpolicy_main_conf_t   *mcf;
#if (NGX_THREADS)
    ngx_thread_task_t                 *task;
    ngx_http_turnpolicy_loc_conf_t    *lcf;
#endif

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL || !ctx->authenticated || mcf->st == NULL) {
        /* the access handler always runs first; never issue without it */
        return NGX_HTTP_FORBIDDEN;
    }

    if (ngx_http_turnpolicy_cred_format(r, ctx, &shape, &rc) != NGX_OK) {
        /* refused: the answer is sent */
        return rc;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

#if (NGX_THREADS)
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);

    /*
     * tp_store_issue counts the issuance rate in Redis (a round trip, up
     * to its timeout): it runs in the thread pool, not in the event loop.
     */

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_turnpolicy_issue_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t = task->ctx;

#else
    t = ngx_pcalloc(r->pool, sizeof(ngx_http_turnpolicy_issue_t));
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
#endif

    /* the credential is secret until it expires: wipe it with the pool */

    cln->handler = ngx_http_turnpolicy_issue_wipe;
    cln->data = t;

    t->st = mcf->st;
    t->realm = (char *) ctx->realm.data;
    t->sub = (char *) ctx->sub.data;
    t->now = (int64_t) ngx_time();
    t->shape = shape;
    ctx->issue = t;

#if (NGX_THREADS)
    task->handler = ngx_http_turnpolicy_issue_thread;
    task->event.handler = ngx_http_turnpolicy_issue_done;
    task->event.data = r;

    if (ngx_thread_task_post(lcf->thread_pool, task) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->blocked++;
    r->aio = 1;
    r->main->count++;
    r->write_event_handler = ngx_http_turnpolicy_issue_respond;

    return NGX_DONE;

#else
    ngx_http_turnpolicy_issue_thread(t, r->connection->log);

    return ngx_http_turnpolicy_credentials_respond(r, ctx, t);
#endif
}


/* In a thread of the pool: no nginx calls, only the library's. */
static void
ngx_http_turnpolicy_issue_thread(void *data, ngx_log_t *log)
{
    ngx_http_turnpolicy_issue_t  *t = data;

    t->status = tp_store_issue(t->st, t->realm, t->sub, 0, t->now,
                               &t->cred, &t->err);

    ngx_http_turnpolicy_task_release(t);
}


#if (NGX_THREADS)

/* Back in the event loop when the task is done. */
static void
ngx_http_turnpolicy_issue_done(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_turnpolicy_ctx_t  *ctx;

    r = ev->data;
    c = r->connection;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);
    ngx_http_turnpolicy_task_acquire(ctx->issue);

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    if (r->done) {
        /* finalized (the client went away) while the task ran */
        c->write->handler(c->write);

    } else {
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_turnpolicy_issue_respond(ngx_http_request_t *r)
{
    ngx_http_turnpolicy_ctx_t  *ctx;

    if (r->aio) {
        /* a write event before the task is done */
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    ngx_http_finalize_request(r,
                              ngx_http_turnpolicy_credentials_respond(
                                  r, ctx, ctx->issue));
}

#endif


static void
ngx_http_turnpolicy_issue_wipe(void *data)
{
    ngx_explicit_memzero(data, sizeof(ngx_http_turnpolicy_issue_t));
}


/* The JSON answer for a credential issued (or refused) by t. */
static ngx_int_t
ngx_http_turnpolicy_credentials_respond(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_http_turnpolicy_issue_t *t)
{
    char                             **urls;
    char                              *realm_urls[NGX_HTTP_TURNPOLICY_URLS_MAX];
    size_t                             cap, written, nurls;
    u_char                            *body;
    u_char                             urlbuf[2048];
    ngx_uint_t                         i;
    tp_error                           err;
    tp_status                          status;
    ngx_pool_cleanup_t                *cln;

    if (t->status != TP_OK) {
        return ngx_http_turnpolicy_refuse(r, ctx,
                                    ngx_http_turnpolicy_http_status(t->status),
                                    tp_reason(t->status), t->err.message);
    }

    status = ngx_http_turnpolicy_cred_urls(r, ctx, realm_urls, urlbuf,
                                           sizeof(urlbuf), &urls, &nurls,
                                           &err);
    if (status != TP_OK) {
        ngx_explicit_memzero(&t->cred, sizeof(tp_credential));
        return ngx_http_turnpolicy_refuse(r, ctx,
                                   ngx_http_turnpolicy_http_status(status),
                                   tp_reason(status), err.message);
    }

    cap = 512;

    for (i = 0; i < nurls; i++) {
        cap += 2 * ngx_strlen(urls[i]) + 4;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_str_t));
    body = ngx_pnalloc(r->pool, cap);

    if (cln == NULL || body == NULL) {
        ngx_explicit_memzero(&t->cred, sizeof(tp_credential));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the credential stays secret until it expires: wipe it after use */

    ((ngx_str_t *) cln->data)->data = body;
    ((ngx_str_t *) cln->data)->len = cap;
    cln->handler = ngx_http_turnpolicy_wipe;

    status = tp_credential_json_realm(&t->cred, (char *) ctx->realm.data,
                                      (const char *const *) urls, nurls,
                                      t->shape, (char *) body, cap,
                                      &written, &err);

    ngx_explicit_memzero(&t->cred, sizeof(tp_credential));

    if (status == TP_ENATIVE) {
        /* the realm's URLs changed while the credential was issued */
        return ngx_http_turnpolicy_refuse(r, ctx, NGX_HTTP_CONFLICT,
                                          tp_reason(status), err.message);
    }

    if (status != TP_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "turnpolicy: credential JSON: %s", err.message);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&ctx->reason, "ok");

    return ngx_http_turnpolicy_send_json(r, NGX_HTTP_OK, body, written,
                                         "ok");
}


/*
 * The TURN URIs put in credentials: turnpolicy_turn_urls, else the
 * realm's own (turnpolicy.realms.turn_urls, copied into buf, pointers in
 * store).  TP_OK and *urls, *nurls, or the store's refusal.
 */
static tp_status
ngx_http_turnpolicy_cred_urls(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, char **store, u_char *buf, size_t cap,
    char ***urls, size_t *nurls, tp_error *err)
{
    ngx_http_turnpolicy_loc_conf_t   *lcf;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_turnpolicy_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_turnpolicy_module);

    if (lcf->turn_urls != NULL) {
        *urls = lcf->turn_urls->elts;
        *nurls = lcf->turn_urls->nelts;
        return TP_OK;
    }

    *urls = store;

    return tp_store_realm_urls(mcf->st, (char *) ctx->realm.data,
                               (char *) buf, cap, (const char **) store,
                               NGX_HTTP_TURNPOLICY_URLS_MAX, nurls, err);
}


/*
 * The shape ?format= asks for (ice when absent; "acs-native" for the ACS
 * native SDKs), checked before anything is issued: an unknown format is
 * 400 bad_format, a realm whose URLs the native SDKs cannot use 409
 * native_unsupported (the library decides, tp_native_turn).  NGX_OK and
 * *shape, or NGX_DONE when refused (*rc: the rc to finalize with).
 */
static ngx_int_t
ngx_http_turnpolicy_cred_format(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, tp_cred_json *shape, ngx_int_t *rc)
{
    char        name[16], *store[NGX_HTTP_TURNPOLICY_URLS_MAX], **urls;
    size_t      nurls;
    u_char      buf[2048];
    tp_error    err;
    tp_status   status;
    ngx_str_t   value;

    *shape = TP_JSON_ICE;

    if (ngx_http_arg(r, (u_char *) "format", sizeof("format") - 1, &value)
        != NGX_OK)
    {
        return NGX_OK;
    }

    if (value.len >= sizeof(name)) {
        value.len = 0;
    }

    ngx_memcpy(name, value.data, value.len);
    name[value.len] = '\0';

    if (tp_cred_json_parse(name, shape, &err) != TP_OK) {
        *rc = ngx_http_turnpolicy_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "bad_format",
                                         "format is not ice, rest or "
                                         "acs-native");
        return NGX_DONE;
    }

    if (*shape != TP_JSON_ACS_NATIVE) {
        return NGX_OK;
    }

    status = ngx_http_turnpolicy_cred_urls(r, ctx, store, buf, sizeof(buf),
                                           &urls, &nurls, &err);

    if (status == TP_OK) {
        status = tp_native_turn((char *) ctx->realm.data,
                                (const char *const *) urls, nurls, NULL,
                                &err);
    }

    if (status != TP_OK) {
        *rc = ngx_http_turnpolicy_refuse(r, ctx,
                                    ngx_http_turnpolicy_http_status(status),
                                    tp_reason(status), err.message);
        return NGX_DONE;
    }

    return NGX_OK;
}


void
ngx_http_turnpolicy_wipe(void *data)
{
    ngx_str_t  *s = data;

    ngx_explicit_memzero(s->data, s->len);
}


/*
 * The forward-auth answer once the access phase allowed the forwarded
 * request: 200 and what the caller needs to proxy it the same way,
 *
 *     X-Turnpolicy-Sub            the token's subject
 *     X-Turnpolicy-Realm          its realm
 *     X-Turnpolicy-Upstream       host[:port] asked for
 *     X-Turnpolicy-Upstream-Host  the host alone (the TLS name to verify)
 *     X-Turnpolicy-Upstream-Addr  the checked address:port (connect here)
 *     X-Turnpolicy-Path           the path and query after token and host
 *
 * (refusals were answered by the access phase: 401, 403, 429, 503).
 */
ngx_int_t
ngx_http_turnpolicy_forward_auth_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_str_t                   path;
    ngx_http_turnpolicy_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_turnpolicy_module);

    if (ctx == NULL || !ctx->allowed) {
        return NGX_HTTP_FORBIDDEN;
    }

    path.len = ctx->path.len + (ctx->args.len ? 1 + ctx->args.len : 0);
    path.data = ngx_pnalloc(r->pool, path.len);
    if (path.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(path.data, ctx->path.data, ctx->path.len);

    if (ctx->args.len) {
        *p++ = '?';
        ngx_memcpy(p, ctx->args.data, ctx->args.len);
    }

    if (ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Sub", &ctx->sub)
            != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Realm",
                                          &ctx->realm) != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Upstream",
                                          &ctx->upstream) != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Upstream-Host",
                                          &ctx->upstream_host) != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Upstream-Addr",
                                          &ctx->upstream_addr) != NGX_OK
        || ngx_http_turnpolicy_add_header(r, "X-Turnpolicy-Path", &path)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * No body: nginx's auth_request reads only the header, and keeps the
     * connection to us only when nothing follows it.
     */

    return ngx_http_turnpolicy_send_json(r, NGX_HTTP_OK, NULL, 0, "ok");
}
