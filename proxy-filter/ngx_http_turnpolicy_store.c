
/*
 * ngx_http_turnpolicy_store.c - the policy store of a worker process: its
 * creation in init_process, its retry timer, its release in exit_process,
 * and the log callback through which the store speaks to nginx's log.
 *
 * Its own file because it is the module's only contact with threads and
 * signals: everything else runs in the event loop and asks a store that is
 * already there.
 *
 * Invariants: a store (mcf->st) exists only in worker processes (or the
 * single process), never in the master, the cache manager or the loader;
 * mcf->st is NULL until tp_store_new succeeds, and requests answer 503
 * policy_unavailable meanwhile; the store's background thread starts with
 * every signal blocked.  init_process, exit_process and the retry timer
 * run in the event loop; the log callback also runs on the store's own
 * thread (ngx_log_error on the cycle's log, as nginx's thread pools do).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <pthread.h>
#include <signal.h>

#include "ngx_http_turnpolicy.h"


static ngx_int_t ngx_http_turnpolicy_store_start(
    ngx_http_turnpolicy_main_conf_t *mcf);
static void ngx_http_turnpolicy_store_retry(ngx_event_t *ev);


ngx_int_t
ngx_http_turnpolicy_init_process(ngx_cycle_t *cycle)
{
    ngx_http_turnpolicy_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* cache manager and loader: no requests, no store */
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_turnpolicy_module);

    if (mcf == NULL || !mcf->used) {
        return NGX_OK;
    }

    mcf->log = cycle->log;
    mcf->store.log_ud = cycle->log;

    mcf->retry.handler = ngx_http_turnpolicy_store_retry;
    mcf->retry.data = mcf;
    mcf->retry.log = cycle->log;
    mcf->retry.cancelable = 1;

    if (mcf->cache_size) {
        /* NULL (logged): every token is verified */
        mcf->cache = ngx_http_turnpolicy_cache_create(mcf->cache_size,
                                                      cycle->log);
    }

    if (ngx_http_turnpolicy_store_start(mcf) != NGX_OK) {
        /* serve 503 until PostgreSQL answers */
        ngx_add_timer(&mcf->retry, NGX_HTTP_TURNPOLICY_RETRY);
    }

    return NGX_OK;
}


void
ngx_http_turnpolicy_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_turnpolicy_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_turnpolicy_module);

    if (mcf == NULL) {
        return;
    }

    if (mcf->retry.timer_set) {
        ngx_del_timer(&mcf->retry);
    }

    tp_store_free(mcf->st);
    mcf->st = NULL;

    ngx_http_turnpolicy_cache_destroy(mcf->cache);
    mcf->cache = NULL;
}


/*
 * Create the worker's store.  It connects to PostgreSQL and loads the
 * first snapshot on its own thread (background_start): the worker never
 * waits for the database, and answers 503 policy_stale until the policy
 * is there.  The store's thread is started with every signal blocked, so
 * that signals meant for nginx are delivered to the event loop's thread.
 */
static ngx_int_t
ngx_http_turnpolicy_store_start(ngx_http_turnpolicy_main_conf_t *mcf)
{
    int             rc;
    sigset_t        all, old;
    tp_error        err;
    tp_store       *st;

    sigfillset(&all);

    rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0) {
        ngx_log_error(NGX_LOG_ALERT, mcf->log, rc,
                      "turnpolicy: pthread_sigmask() failed");
        return NGX_ERROR;
    }

    mcf->store.background_start = 1;

    st = tp_store_new(&mcf->store, &err);

    rc = pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ngx_log_error(NGX_LOG_ALERT, mcf->log, rc,
                      "turnpolicy: pthread_sigmask() failed");
    }

    if (st == NULL) {
        ngx_log_error(NGX_LOG_ERR, mcf->log, 0,
                      "turnpolicy: policy store not started (%s), "
                      "retrying in %d ms: %s", tp_reason(err.status),
                      NGX_HTTP_TURNPOLICY_RETRY, err.message);
        return NGX_ERROR;
    }

    mcf->st = st;

    return NGX_OK;
}


static void
ngx_http_turnpolicy_store_retry(ngx_event_t *ev)
{
    ngx_http_turnpolicy_main_conf_t  *mcf = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_http_turnpolicy_store_start(mcf) != NGX_OK) {
        ngx_add_timer(ev, NGX_HTTP_TURNPOLICY_RETRY);
    }
}


/*
 * The store's log callback.  It runs on the store's thread as well as in
 * the event loop; ngx_log_error() on the cycle's log (no connection log
 * handler) is what nginx's own thread pools use too.
 */
void
ngx_http_turnpolicy_store_log(void *ud, tp_log_level level, const char *msg)
{
    ngx_log_t   *log = ud;
    ngx_uint_t   l;

    switch (level) {

    case TP_LOG_ERROR:
        l = NGX_LOG_ERR;
        break;

    case TP_LOG_WARN:
        l = NGX_LOG_WARN;
        break;

    case TP_LOG_INFO:
        /* the store's INFO: loaded, recovered, Redis back - rare events
         * an operator wants at nginx's default level */
        l = NGX_LOG_NOTICE;
        break;

    default:
        l = NGX_LOG_DEBUG;
        break;
    }

    if (log != NULL) {
        ngx_log_error(l, log, 0, "turnpolicy: %s", msg);
    }
}
