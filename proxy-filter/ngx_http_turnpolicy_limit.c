
/*
 * ngx_http_turnpolicy_limit.c - a request rate limit per authenticated
 * subject (realm + sub of the verified token), the same for all worker
 * processes, so that one user (or one stolen token) cannot flood the
 * signaling upstream or the credentials endpoint however the requests
 * are spread over connections and workers.
 *
 *     turnpolicy_limit rate=N(r/s|r/m) [burst=N] [zone=SIZE] | off;
 *
 * in http{}, server{} and location{}, inherited like any location
 * setting ("off" stops an inherited limit).  The module calls
 * ngx_http_turnpolicy_limit_check() once the subject is known to be
 * allowed; NGX_BUSY means 429 with Retry-After.
 *
 * The algorithm is a leaky bucket counted in milli-requests, without
 * delaying: each subject has "excess", the requests it made beyond the
 * rate.  A request adds 1000, time drains rate * elapsed; a request that
 * would take the excess above burst * 1000 is refused and changes
 * nothing, so a client that keeps trying still gets the rate.  The first
 * request of a subject is always let through.
 *
 * Where: each directive occurrence has its own shared memory zone (slab
 * pool) holding a red-black tree of subjects, keyed by the CRC32 of
 * realm "\0" sub and compared on the whole key, and an LRU queue.  Every
 * check first frees up to two least recently seen subjects whose bucket
 * has drained (forgetting them changes no decision); when the slab is
 * full the least recently seen subjects are forgotten whatever their
 * state, with a warning.  One mutex per zone, held for a lookup.
 *
 * Zone names, and reloads: a zone is named
 *
 *     turnpolicy_limit:<config file>:<line>:<n>:<rate>:<burst>
 *
 * (n counts the occurrences at that file:line, for a file included
 * twice; rate and burst in milli-requests).  nginx hands a reloaded
 * configuration the old zone, counters and all, when name and size are
 * the same: so an unchanged directive keeps its subjects' buckets across
 * a reload, while a directive given another rate, burst or size gets a
 * fresh zone instead of buckets counted under other settings.  A
 * directive that only moved to another line starts afresh too, which is
 * harmless: at worst a subject gets one more burst.  A name from
 * file:line does not need the configuration to name its zones, as
 * limit_req_zone does, and two occurrences never share one by accident.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


#define NGX_HTTP_TURNPOLICY_LIMIT_ZONE       (1024 * 1024)
#define NGX_HTTP_TURNPOLICY_LIMIT_MAX        1000000  /* rate, burst */
#define NGX_HTTP_TURNPOLICY_LIMIT_EXPIRE     2     /* drained, per check */
#define NGX_HTTP_TURNPOLICY_LIMIT_EVICT      16    /* forced, per check */
#define NGX_HTTP_TURNPOLICY_LIMIT_KEY        (TP_JWT_CLAIM_MAX + 1         \
                                              + TP_JWT_SUB_MAX)
#define NGX_HTTP_TURNPOLICY_LIMIT_DAY        86400000  /* ms */


typedef struct {
    ngx_rbtree_t                     rbtree;
    ngx_rbtree_node_t                sentinel;
    ngx_queue_t                      lru;       /* most recent first */
} ngx_http_turnpolicy_limit_sh_t;


/* a subject: in the zone's slab pool */
typedef struct {
    ngx_str_node_t                   sn;        /* key: crc32, str: key */
    ngx_queue_t                      lru;
    ngx_msec_t                       last;      /* when excess was set */
    ngx_uint_t                       excess;    /* milli-requests */
    u_char                           key[1];    /* realm "\0" sub */
} ngx_http_turnpolicy_limit_node_t;


/* one directive occurrence: in the configuration's pool */
struct ngx_http_turnpolicy_limit_s {
    ngx_shm_zone_t                  *shm_zone;
    ngx_http_turnpolicy_limit_sh_t  *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_uint_t                       rate;      /* milli-requests/s */
    ngx_uint_t                       burst;     /* milli-requests */
};


static int64_t ngx_http_turnpolicy_limit_left(
    ngx_http_turnpolicy_limit_t *limit,
    ngx_http_turnpolicy_limit_node_t *node, ngx_msec_t now);
static void ngx_http_turnpolicy_limit_expire(
    ngx_http_turnpolicy_limit_t *limit, ngx_msec_t now);
static ngx_http_turnpolicy_limit_node_t *ngx_http_turnpolicy_limit_alloc(
    ngx_http_turnpolicy_limit_t *limit, size_t size, ngx_log_t *log);
static void ngx_http_turnpolicy_limit_free(
    ngx_http_turnpolicy_limit_t *limit,
    ngx_http_turnpolicy_limit_node_t *node);
static ngx_int_t ngx_http_turnpolicy_limit_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_turnpolicy_limit_zone_name(ngx_conf_t *cf,
    ngx_http_turnpolicy_limit_t *limit, ngx_str_t *name);
static ngx_int_t ngx_http_turnpolicy_limit_zone_exists(ngx_conf_t *cf,
    ngx_str_t *name);


/*
 * May this subject make one more request now?  NGX_OK (counted), NGX_BUSY
 * (not counted; *retry_after: whole seconds, at least 1, until a request
 * would pass) or NGX_ERROR (the zone cannot hold one more subject).
 */
ngx_int_t
ngx_http_turnpolicy_limit_check(ngx_http_request_t *r,
    ngx_http_turnpolicy_limit_t *limit, const ngx_str_t *realm,
    const ngx_str_t *sub, time_t *retry_after)
{
    u_char                             buf[NGX_HTTP_TURNPOLICY_LIMIT_KEY];
    int64_t                            excess, need;
    uint32_t                           hash;
    ngx_str_t                          key;
    ngx_msec_t                         now;
    ngx_msec_int_t                     ms;
    ngx_http_turnpolicy_limit_sh_t    *sh;
    ngx_http_turnpolicy_limit_node_t  *node;

    if (realm->len > TP_JWT_CLAIM_MAX || sub->len > TP_JWT_SUB_MAX) {
        return NGX_ERROR;
    }

    key.data = buf;
    key.len = realm->len + 1 + sub->len;

    ngx_memcpy(buf, realm->data, realm->len);
    buf[realm->len] = '\0';
    ngx_memcpy(buf + realm->len + 1, sub->data, sub->len);

    hash = ngx_crc32_short(key.data, key.len);
    now = ngx_current_msec;
    sh = limit->sh;

    ngx_shmtx_lock(&limit->shpool->mutex);

    ngx_http_turnpolicy_limit_expire(limit, now);

    node = (ngx_http_turnpolicy_limit_node_t *)
               ngx_str_rbtree_lookup(&sh->rbtree, &key, hash);

    if (node) {
        ngx_queue_remove(&node->lru);
        ngx_queue_insert_head(&sh->lru, &node->lru);

        excess = ngx_http_turnpolicy_limit_left(limit, node, now) + 1000;

        if (excess < 0) {
            excess = 0;
        }

        if ((uint64_t) excess > limit->burst) {

            /*
             * The first instant when node->excess drained by
             * rate * (ms + wait) / 1000 leaves room for 1000 more.
             */

            ms = (ngx_msec_int_t) (now - node->last);
            ms = ngx_max(ms, 0);
            ms = ngx_min(ms, NGX_HTTP_TURNPOLICY_LIMIT_DAY);

            need = ((int64_t) node->excess + 1000 - (int64_t) limit->burst)
                   * 1000;
            need = (need + (int64_t) limit->rate - 1) / (int64_t) limit->rate
                   - ms;

            ngx_shmtx_unlock(&limit->shpool->mutex);

            *retry_after = (time_t) ngx_max((need + 999) / 1000, 1);

            return NGX_BUSY;
        }

        node->excess = (ngx_uint_t) excess;
        node->last = now;

        ngx_shmtx_unlock(&limit->shpool->mutex);

        return NGX_OK;
    }

    node = ngx_http_turnpolicy_limit_alloc(limit,
               offsetof(ngx_http_turnpolicy_limit_node_t, key) + key.len,
               r->connection->log);

    if (node == NULL) {
        ngx_shmtx_unlock(&limit->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "turnpolicy: no memory for one more subject in "
                      "zone \"%V\"", &limit->shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_memcpy(node->key, key.data, key.len);
    node->sn.node.key = hash;
    node->sn.str.data = node->key;
    node->sn.str.len = key.len;
    node->last = now;
    node->excess = 0;

    ngx_rbtree_insert(&sh->rbtree, &node->sn.node);
    ngx_queue_insert_head(&sh->lru, &node->lru);

    ngx_shmtx_unlock(&limit->shpool->mutex);

    return NGX_OK;
}


/*
 * The subject's excess drained until now (negative once the bucket has
 * been empty for a while: the next request then adds less than 1000).
 */
static int64_t
ngx_http_turnpolicy_limit_left(ngx_http_turnpolicy_limit_t *limit,
    ngx_http_turnpolicy_limit_node_t *node, ngx_msec_t now)
{
    ngx_msec_int_t  ms;

    /* workers' clocks are updated at different moments: never negative */

    ms = (ngx_msec_int_t) (now - node->last);
    ms = ngx_max(ms, 0);
    ms = ngx_min(ms, NGX_HTTP_TURNPOLICY_LIMIT_DAY);

    return (int64_t) node->excess - (int64_t) limit->rate * ms / 1000;
}


/*
 * Forget up to NGX_HTTP_TURNPOLICY_LIMIT_EXPIRE least recently seen
 * subjects whose next request would be counted as a new subject's.
 * The zone's mutex is held.
 */
static void
ngx_http_turnpolicy_limit_expire(ngx_http_turnpolicy_limit_t *limit,
    ngx_msec_t now)
{
    ngx_uint_t                         n;
    ngx_queue_t                       *q;
    ngx_http_turnpolicy_limit_node_t  *node;

    for (n = 0; n < NGX_HTTP_TURNPOLICY_LIMIT_EXPIRE; n++) {

        if (ngx_queue_empty(&limit->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&limit->sh->lru);
        node = ngx_queue_data(q, ngx_http_turnpolicy_limit_node_t, lru);

        if (ngx_http_turnpolicy_limit_left(limit, node, now) + 1000 > 0) {
            return;
        }

        ngx_http_turnpolicy_limit_free(limit, node);
    }
}


/*
 * A node of size bytes; when the slab is full, the least recently seen
 * subjects are forgotten to make room.  NULL if even that fails.  The
 * zone's mutex is held.
 */
static ngx_http_turnpolicy_limit_node_t *
ngx_http_turnpolicy_limit_alloc(ngx_http_turnpolicy_limit_t *limit,
    size_t size, ngx_log_t *log)
{
    ngx_uint_t                         n;
    ngx_queue_t                       *q;
    ngx_http_turnpolicy_limit_node_t  *node;

    for (n = 0; /* void */; n++) {

        node = ngx_slab_alloc_locked(limit->shpool, size);

        if (node != NULL || n == NGX_HTTP_TURNPOLICY_LIMIT_EVICT
            || ngx_queue_empty(&limit->sh->lru))
        {
            break;
        }

        if (n == 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "turnpolicy: zone \"%V\" is full, forgetting the "
                          "least recently seen subjects; give "
                          "\"turnpolicy_limit\" a larger zone=",
                          &limit->shm_zone->shm.name);
        }

        q = ngx_queue_last(&limit->sh->lru);
        ngx_http_turnpolicy_limit_free(limit,
            ngx_queue_data(q, ngx_http_turnpolicy_limit_node_t, lru));
    }

    return node;
}


static void
ngx_http_turnpolicy_limit_free(ngx_http_turnpolicy_limit_t *limit,
    ngx_http_turnpolicy_limit_node_t *node)
{
    ngx_queue_remove(&node->lru);
    ngx_rbtree_delete(&limit->sh->rbtree, &node->sn.node);
    ngx_slab_free_locked(limit->shpool, node);
}


/*
 * The zone's init handler.  data is the limit of the previous cycle's
 * zone of the same name and size, on a reload: its tree goes on.
 */
static ngx_int_t
ngx_http_turnpolicy_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_turnpolicy_limit_t  *olimit = data;

    size_t                        len;
    ngx_slab_pool_t              *shpool;
    ngx_http_turnpolicy_limit_t  *limit;

    limit = shm_zone->data;

    if (olimit) {
        /* the same name: the same file:line, rate and burst */
        limit->sh = olimit->sh;
        limit->shpool = olimit->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    limit->shpool = shpool;

    if (shm_zone->shm.exists) {
        limit->sh = shpool->data;
        return NGX_OK;
    }

    limit->sh = ngx_slab_alloc(shpool, sizeof(ngx_http_turnpolicy_limit_sh_t));
    if (limit->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = limit->sh;

    ngx_rbtree_init(&limit->sh->rbtree, &limit->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&limit->sh->lru);

    len = sizeof(" in turnpolicy_limit zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in turnpolicy_limit zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is expected: the check makes room and says so */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * turnpolicy_limit rate=N(r/s|r/m) [burst=N] [zone=SIZE] | off
 *
 * rate: requests per second or minute, 1 to 1000000 ("rate=10r/s" or
 * "rate=10 r/s"); burst: requests beyond the rate let through at once,
 * 0 (default) to 1000000; zone: the shared memory for this occurrence's
 * subjects (default 1m, at least 8 pages).
 */
char *
ngx_http_turnpolicy_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_loc_conf_t *lcf = conf;

    u_char                       *p;
    size_t                        len;
    ssize_t                       size;
    ngx_int_t                     rate, burst, scale;
    ngx_str_t                    *value, *arg, s, name;
    ngx_uint_t                    i;
    ngx_shm_zone_t               *shm_zone;
    ngx_http_turnpolicy_limit_t  *limit;

    if (lcf->limit != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    arg = &value[1];

    if (cf->args->nelts == 2
        && value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0)
    {
        lcf->limit = NULL;
        return NGX_CONF_OK;
    }

    rate = 0;
    scale = 1;
    burst = 0;
    size = NGX_HTTP_TURNPOLICY_LIMIT_ZONE;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0 && rate == 0) {
            arg = &value[i];
            p = value[i].data + 5;
            len = value[i].len - 5;

            if (len > 3 && ngx_strncmp(p + len - 3, "r/", 2) == 0) {
                s.data = p + len - 3;
                s.len = 3;
                len -= 3;

            } else if (i + 1 < cf->args->nelts) {
                s = value[++i];

            } else {
                goto invalid_rate;
            }

            if (s.len == 3 && ngx_strncmp(s.data, "r/s", 3) == 0) {
                scale = 1;

            } else if (s.len == 3 && ngx_strncmp(s.data, "r/m", 3) == 0) {
                scale = 60;

            } else {
                goto invalid_rate;
            }

            rate = ngx_atoi(p, len);

            if (rate < 1 || rate > NGX_HTTP_TURNPOLICY_LIMIT_MAX) {
                goto invalid_rate;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (burst == NGX_ERROR || burst > NGX_HTTP_TURNPOLICY_LIMIT_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst \"%V\" in \"%V\" "
                                   "directive, it must be a number of "
                                   "requests from 0 to %d", &value[i],
                                   &cmd->name,
                                   NGX_HTTP_TURNPOLICY_LIMIT_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" in \"%V\" "
                                   "directive", &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone size \"%V\" in \"%V\" directive is "
                                   "too small, it must be at least %uzk",
                                   &value[i], &cmd->name,
                                   8 * ngx_pagesize / 1024);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive needs \"rate=N r/s\" or "
                           "\"rate=N r/m\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    limit = ngx_pcalloc(cf->pool, sizeof(ngx_http_turnpolicy_limit_t));
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    limit->rate = (ngx_uint_t) rate * 1000 / scale;
    limit->burst = (ngx_uint_t) burst * 1000;

    if (ngx_http_turnpolicy_limit_zone_name(cf, limit, &name) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_turnpolicy_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_turnpolicy_limit_init_zone;
    shm_zone->data = limit;
    limit->shm_zone = shm_zone;

    lcf->limit = limit;

    return NGX_CONF_OK;

invalid_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid rate \"%V\" in \"%V\" directive, it must be "
                       "\"rate=N r/s\" or \"rate=N r/m\" with N from 1 to %d",
                       arg, &cmd->name, NGX_HTTP_TURNPOLICY_LIMIT_MAX);

    return NGX_CONF_ERROR;
}


/*
 * The zone name of this occurrence, not yet used in this configuration
 * (see the top of the file).
 */
static ngx_int_t
ngx_http_turnpolicy_limit_zone_name(ngx_conf_t *cf,
    ngx_http_turnpolicy_limit_t *limit, ngx_str_t *name)
{
    u_char      *p;
    ngx_str_t   *file;
    ngx_uint_t   n;

    file = &cf->conf_file->file.name;

    name->data = ngx_pnalloc(cf->pool, sizeof("turnpolicy_limit:") + file->len
                                       + 4 * (NGX_INT_T_LEN + 1));
    if (name->data == NULL) {
        return NGX_ERROR;
    }

    for (n = 1; /* void */; n++) {
        p = ngx_sprintf(name->data, "turnpolicy_limit:%V:%ui:%ui:%ui:%ui",
                        file, cf->conf_file->line, n, limit->rate,
                        limit->burst);
        name->len = p - name->data;

        if (!ngx_http_turnpolicy_limit_zone_exists(cf, name)) {
            return NGX_OK;
        }
    }
}


static ngx_int_t
ngx_http_turnpolicy_limit_zone_exists(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    part = &cf->cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].shm.name.len == name->len
            && ngx_strncmp(zone[i].shm.name.data, name->data, name->len)
               == 0)
        {
            return 1;
        }
    }
}
