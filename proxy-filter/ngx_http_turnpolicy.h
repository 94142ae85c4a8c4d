/*
 * ngx_http_turnpolicy.h - what the source files of ngx_http_turnpolicy_module
 * share: configuration, the per-request context, and the interfaces of
 *
 *   ngx_http_turnpolicy_module.c       the module: directives, create/merge,
 *                                      turnpolicy_config (master process)
 *   ngx_http_turnpolicy_access.c       access phase: path split, token
 *                                      verification, subject, rate limit,
 *                                      host authorization
 *   ngx_http_turnpolicy_token.c        the token in the request: headers,
 *                                      cookie, argument; redaction of the
 *                                      request line
 *   ngx_http_turnpolicy_resolve.c      resolving the upstream host, peer
 *                                      checks of every address
 *   ngx_http_turnpolicy_cors.c         CORS preflight and Origin checks
 *   ngx_http_turnpolicy_reply.c        refusals, JSON answers, status
 *                                      mapping, headers, $turnpolicy_*
 *   ngx_http_turnpolicy_credentials.c  content handlers: TURN credentials
 *                                      (thread pool) and forward-auth
 *   ngx_http_turnpolicy_store.c        the worker's policy store lifecycle
 *   ngx_http_turnpolicy_share.c        the node's share directory: made by
 *                                      the master, given to every store
 *   ngx_http_turnpolicy_cache.c        verified-token cache (per worker)
 *   ngx_http_turnpolicy_limit.c        per-subject rate limit (shared memory)
 *   ngx_http_turnpolicy_filter.c       response headers: redirects, CORS
 *   tp_uri.c (tp_uri.h)                the pure URI helpers: path splitting,
 *                                      nested URLs, path safety, token
 *                                      shapes (plain C, fuzzed without nginx)
 *
 * Functions shared between these files are declared below, by file, with
 * the ngx_http_turnpolicy_ prefix; everything else is static.
 *
 * Not a public interface: nothing outside proxy-filter/ includes it.
 */


#ifndef _NGX_HTTP_TURNPOLICY_H_INCLUDED_
#define _NGX_HTTP_TURNPOLICY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <turnpolicy.h>


#define NGX_HTTP_TURNPOLICY_TOKEN_PATH    1
#define NGX_HTTP_TURNPOLICY_TOKEN_HEADER  2
#define NGX_HTTP_TURNPOLICY_TOKEN_COOKIE  3
#define NGX_HTTP_TURNPOLICY_TOKEN_ARG     4

#define NGX_HTTP_TURNPOLICY_START         0
#define NGX_HTTP_TURNPOLICY_RESOLVING     1
#define NGX_HTTP_TURNPOLICY_RESOLVED      2

#define NGX_HTTP_TURNPOLICY_RETRY         5000   /* ms between store starts */
#define NGX_HTTP_TURNPOLICY_HOST_MAX      253

/* TURN URIs in a credential: turnpolicy_turn_urls, or the realm's */
#define NGX_HTTP_TURNPOLICY_URLS_MAX      16

#define NGX_HTTP_TURNPOLICY_CACHE_DEFAULT 4096   /* tokens per worker */
#define NGX_HTTP_TURNPOLICY_CACHE_MAX     1048576

/* turnpolicy_share_dir */
#define NGX_HTTP_TURNPOLICY_SHARE_AUTO    0      /* a private dir, /dev/shm */
#define NGX_HTTP_TURNPOLICY_SHARE_OFF     1
#define NGX_HTTP_TURNPOLICY_SHARE_PATH    2      /* the operator's */


typedef struct ngx_http_turnpolicy_limit_s  ngx_http_turnpolicy_limit_t;
typedef struct ngx_http_turnpolicy_cache_s  ngx_http_turnpolicy_cache_t;
typedef struct ngx_http_turnpolicy_issue_s  ngx_http_turnpolicy_issue_t;


typedef struct {
    ngx_str_t                  file;
    tp_store_options           store;
    tp_jwt_options             jwt;
    ngx_flag_t                 used;      /* some location needs a store */

    ngx_uint_t                 cache_size;  /* turnpolicy_cache; 0 = off */

    ngx_uint_t                 share;       /* turnpolicy_share_dir */
    ngx_str_t                  share_dir;   /* its PATH, NUL-terminated */

    /* per worker process */
    tp_store                  *st;
    ngx_http_turnpolicy_cache_t  *cache;
    ngx_event_t                retry;
    ngx_log_t                 *log;
} ngx_http_turnpolicy_main_conf_t;


typedef struct {
    ngx_flag_t                 enable;
    ngx_flag_t                 credentials;
    ngx_flag_t                 forward_auth;
    ngx_str_t                  forward_prefix; /* of the forwarded URIs */
    ngx_str_t                  forward_uri;    /* the header carrying them */
    ngx_uint_t                 token_source;
    ngx_str_t                  token_name;
    ngx_http_complex_value_t  *upstream;
    ngx_array_t               *turn_urls;   /* of char *, NUL-terminated */
    ngx_http_turnpolicy_limit_t  *limit;    /* turnpolicy_limit; NULL: off */
#if (NGX_THREADS)
    ngx_thread_pool_t         *thread_pool; /* credentials: issuing */
#endif
} ngx_http_turnpolicy_loc_conf_t;


typedef struct {
    ngx_str_t                  sub;
    ngx_str_t                  realm;
    ngx_str_t                  upstream;        /* host[:port], as asked */
    ngx_str_t                  upstream_host;   /* normalized host */
    ngx_str_t                  upstream_addr;   /* checked address:port */
    ngx_str_t                  path;
    ngx_str_t                  args;            /* without an arg: token */
    ngx_str_t                  reason;

    /*
     * The raw request path before "/<host[:port]>" ("/t/<token>" for
     * "/t/<token>/edge.skype.com/x"): a redirect to an allowed host is
     * rewritten to "<prefix>/<host[:port]><path>".  Empty when the
     * upstream comes from turnpolicy_upstream.
     */
    ngx_str_t                  prefix;

    /* the request's Origin, when the realm allows it (CORS headers) */
    ngx_str_t                  origin;

    /*
     * host[:port] as the request named it (path segment or
     * turnpolicy_upstream), kept for refusals too ($turnpolicy_requested_
     * upstream); "[invalid]" when it is not made of host characters
     */
    ngx_str_t                  requested;

    /* a preflight's Access-Control-Request-Headers, echoed */
    ngx_str_t                  acrh;

    in_port_t                  port;
    ngx_uint_t                 state;
    ngx_resolver_ctx_t        *resolver_ctx;
    ngx_int_t                  resolve_error;
    ngx_addr_t                *addrs;
    ngx_uint_t                 naddrs;

    ngx_http_turnpolicy_issue_t  *issue;     /* credentials being issued */

    unsigned                   waiting:1;
    unsigned                   authenticated:1;
    unsigned                   allowed:1;
    unsigned                   checked:1;        /* a token was verified */
    unsigned                   cached:1;         /* ... from the cache */
    unsigned                   cors:1;           /* add CORS headers */
    unsigned                   preflight:1;      /* a CORS preflight */
    unsigned                   redirect_refused:1;
    unsigned                   redirect_sent:1;  /* the JSON is on its way */
    unsigned                   redacted:1;       /* request_line has no token */
} ngx_http_turnpolicy_ctx_t;


extern ngx_module_t  ngx_http_turnpolicy_module;


/*
 * ngx_http_turnpolicy_access.c: the access-phase handler (installed by the
 * module's postconfiguration); _authenticate finds and verifies the token
 * and its subject (the CORS preflight calls it for a URL token); _path_safe
 * is the rule request paths and redirect targets are held to
 * (tp_uri_path_safe): NGX_OK, or NGX_DECLINED.
 */

ngx_int_t ngx_http_turnpolicy_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_turnpolicy_authenticate(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx,
    ngx_str_t *hostport);
ngx_int_t ngx_http_turnpolicy_path_safe(u_char *p, u_char *end);


/*
 * ngx_http_turnpolicy_token.c: _header gives request header "name" and
 * returns how many times it is present (0: *value empty; more: the first);
 * _get_token reads the token from a header, cookie or argument (NGX_ERROR:
 * a header given twice); _token_shape is NGX_OK for a compact JWS;
 * _strip_arg gives the query without the token's argument; _redact takes
 * the token out of the request line (sets ctx->redacted).
 */

ngx_uint_t ngx_http_turnpolicy_header(ngx_http_request_t *r,
    const ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_http_turnpolicy_get_token(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_str_t *token);
ngx_int_t ngx_http_turnpolicy_token_shape(ngx_str_t *token);
ngx_int_t ngx_http_turnpolicy_strip_arg(ngx_http_request_t *r,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_str_t *args);
void ngx_http_turnpolicy_redact(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const ngx_str_t *token);


/*
 * ngx_http_turnpolicy_cors.c: _preflight answers a CORS preflight (204
 * with the CORS headers, or a refusal; NGX_DECLINED when the OPTIONS
 * request is no preflight); _origin checks a real request's Origin
 * against its realm (sets ctx->cors for the header filter);
 * _refusal_cors lets an allowed page read a refusal (NGX_DONE when the
 * preflight answer is the response, *rc the rc to finalize with).
 */

ngx_int_t ngx_http_turnpolicy_preflight(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf,
    ngx_http_turnpolicy_loc_conf_t *lcf, ngx_http_turnpolicy_ctx_t *ctx);
ngx_int_t ngx_http_turnpolicy_origin(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx);
ngx_int_t ngx_http_turnpolicy_refusal_cors(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, const char *reason, ngx_int_t *rc);


/*
 * ngx_http_turnpolicy_resolve.c: _resolve starts resolving
 * ctx->upstream_host (NGX_OK: answered from the resolver's cache; NGX_DONE:
 * the request waits and the access handler runs again); _check_peers
 * checks every address against the realm's peer rules and fills
 * $turnpolicy_upstream_addr (NGX_OK, or what the access handler returns
 * after a refusal).
 */

ngx_int_t ngx_http_turnpolicy_resolve(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx);
ngx_int_t ngx_http_turnpolicy_check_peers(ngx_http_request_t *r,
    ngx_http_turnpolicy_main_conf_t *mcf, ngx_http_turnpolicy_ctx_t *ctx);


/*
 * ngx_http_turnpolicy_reply.c: answers and refusals.  _deny and
 * _deny_status refuse from the access phase (answer, finalize, return
 * NGX_DONE); _refuse builds the JSON refusal {"error":"<reason>"} and
 * returns the rc to finalize with; _send_json sends any complete JSON
 * answer (no-store; a 401 carries WWW-Authenticate); _http_status maps
 * libturnpolicy's refusals to HTTP.  The $turnpolicy_* variables are
 * registered by _add_variables (preconfiguration).
 */

ngx_int_t ngx_http_turnpolicy_deny(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_uint_t status, const char *reason,
    const char *detail);
ngx_int_t ngx_http_turnpolicy_deny_status(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, tp_status status, const tp_error *err);
ngx_int_t ngx_http_turnpolicy_refuse(ngx_http_request_t *r,
    ngx_http_turnpolicy_ctx_t *ctx, ngx_uint_t status, const char *reason,
    const char *detail);
ngx_uint_t ngx_http_turnpolicy_http_status(tp_status status);
ngx_int_t ngx_http_turnpolicy_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len, const char *reason);
/* push a response header (key: a string that outlives the request) */
ngx_int_t ngx_http_turnpolicy_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);
ngx_int_t ngx_http_turnpolicy_add_variables(ngx_conf_t *cf);


/*
 * ngx_http_turnpolicy_cache.c: tokens this worker verified, keyed by the
 * SHA-256 of the token (the token itself is not kept).  An entry answers
 * only under the policy generation it was verified in (tp_store_changes:
 * a new snapshot may have new keys or issuer settings) and before its
 * deadline (tp_jwt_deadline: when the library would start refusing the
 * token as expired).  The subject is still checked on
 * every request (revocation, disabling): the cache saves the signature and
 * the claims parsing, nothing else.
 */

ngx_http_turnpolicy_cache_t *ngx_http_turnpolicy_cache_create(
    ngx_uint_t entries, ngx_log_t *log);
void ngx_http_turnpolicy_cache_destroy(ngx_http_turnpolicy_cache_t *c);
/*
 * NGX_OK and *claims (sub, realm, alg, exp, iat; kid and jti empty, nbf 0),
 * or NGX_DECLINED (not cached, stale, expired)
 */
ngx_int_t ngx_http_turnpolicy_cache_get(ngx_http_turnpolicy_cache_t *c,
    const ngx_str_t *token, uint64_t generation, time_t now,
    tp_jwt_claims *claims);
void ngx_http_turnpolicy_cache_put(ngx_http_turnpolicy_cache_t *c,
    const ngx_str_t *token, uint64_t generation, time_t deadline,
    const tp_jwt_claims *claims);
/* "turnpolicy_cache N | off" in http{} */
char *ngx_http_turnpolicy_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/*
 * ngx_http_turnpolicy_limit.c: "turnpolicy_limit rate=N(r/s|r/m)
 * [burst=N] [zone=SIZE] | off" in http{}, server{} and location{} (the
 * directive handler; inherited by merging), and the check for an
 * authenticated subject: NGX_OK, NGX_BUSY (over the limit: 429, and
 * *retry_after the seconds until a request would pass, at least 1) or
 * NGX_ERROR.  Shared by all workers.
 */

char *ngx_http_turnpolicy_limit_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_turnpolicy_limit_check(ngx_http_request_t *r,
    ngx_http_turnpolicy_limit_t *limit, const ngx_str_t *realm,
    const ngx_str_t *sub, time_t *retry_after);


/*
 * ngx_http_turnpolicy_credentials.c: the content handlers of
 * "turnpolicy_credentials on" (TURN credentials, issued in the thread
 * pool) and "turnpolicy_forward_auth" (the forwarded request's upstream
 * and path, as X-Turnpolicy-* headers); _wipe is a pool cleanup that wipes
 * the ngx_str_t it is given (a credential body, a secret).
 */

ngx_int_t ngx_http_turnpolicy_credentials_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_turnpolicy_forward_auth_handler(ngx_http_request_t *r);
void ngx_http_turnpolicy_wipe(void *data);


/*
 * ngx_http_turnpolicy_store.c: the worker's policy store, created in
 * init_process (retried every NGX_HTTP_TURNPOLICY_RETRY ms until
 * PostgreSQL answers; mcf->st stays NULL meanwhile) and freed in
 * exit_process; the store's log callback (runs on the store's thread too).
 */

ngx_int_t ngx_http_turnpolicy_init_process(ngx_cycle_t *cycle);
void ngx_http_turnpolicy_exit_process(ngx_cycle_t *cycle);
void ngx_http_turnpolicy_store_log(void *ud, tp_log_level level,
    const char *msg);


/*
 * ngx_http_turnpolicy_share.c: the directory the stores of this node's
 * workers share (tp_store_options.share_dir), so that the node holds one
 * copy of the users whatever worker_processes says.  "turnpolicy_share_dir
 * off | PATH" in http{} (PATH must exist: refused at configuration time
 * otherwise); without it the master makes a private directory under
 * /dev/shm once (_init_module, on start; kept across reloads), owned by
 * the worker user, and removes it with its files when it exits
 * (_exit_master).  Only for a master with more than one worker; never
 * fatal: without a directory the workers hold the users each.
 */

char *ngx_http_turnpolicy_share_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_turnpolicy_init_module(ngx_cycle_t *cycle);
void ngx_http_turnpolicy_exit_master(ngx_cycle_t *cycle);


/*
 * ngx_http_turnpolicy_filter.c: header (and body) filters for requests the
 * module allowed: a redirect's Location is checked against the realm's
 * allow-list and rewritten through the proxy, or refused (403
 * redirect_denied, body replaced); CORS response headers for an allowed
 * Origin.  Installed from the module's postconfiguration.
 */

ngx_int_t ngx_http_turnpolicy_filter_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_TURNPOLICY_H_INCLUDED_ */
