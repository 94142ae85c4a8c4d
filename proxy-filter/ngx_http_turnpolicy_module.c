
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
 *
 * This file is the module's definition and its configuration: the
 * directive table, the create/merge hooks, the directive handlers, and
 * turnpolicy_config (the shared turnpolicy.conf, mapped to store options
 * by the library).  It runs while nginx reads its configuration, in the
 * master process; what it builds is read-only afterwards, in the workers.
 * The request path lives in files of one concern each, listed in
 * ngx_http_turnpolicy.h: access, token, resolve, cors, reply,
 * credentials, store (the worker's policy store), share (the directory
 * the workers' stores share), cache, limit, filter.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <turnpolicy.h>

#include "ngx_http_turnpolicy.h"


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
static char *ngx_http_turnpolicy_forward_auth(ngx_conf_t *cf,
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

    { ngx_string("turnpolicy_share_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_turnpolicy_share_directive,
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
    ngx_http_turnpolicy_init_module,       /* init module */
    ngx_http_turnpolicy_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_turnpolicy_exit_process,      /* exit process */
    ngx_http_turnpolicy_exit_master,       /* exit master */
    NGX_MODULE_V1_PADDING
};


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
     *     mcf->share_dir = { 0, NULL };
     *     mcf->st = NULL;
     *     mcf->cache = NULL;
     */

    mcf->cache_size = NGX_CONF_UNSET_UINT;
    mcf->share = NGX_CONF_UNSET_UINT;

    return mcf;
}


static char *
ngx_http_turnpolicy_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_turnpolicy_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->cache_size,
                             NGX_HTTP_TURNPOLICY_CACHE_DEFAULT);
    ngx_conf_init_uint_value(mcf->share, NGX_HTTP_TURNPOLICY_SHARE_AUTO);

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
