
/*
 * ngx_http_turnpolicy_share.c - the directory the policy stores of this
 * node's worker processes share (tp_store_options.share_dir).
 *
 * Why: each worker owns a store (ngx_http_turnpolicy_store.c), and a store
 * alone holds every provisioned user (some 90 MB at a million users).
 * Given a share_dir, the stores of a node map one read-only file of users
 * there and hold privately only what changed since, so the node's memory
 * no longer grows with worker_processes.  What goes into the directory
 * (base, base.<pid>.tmp, lock) is the library's business; this file says
 * which directory:
 *
 *   turnpolicy_share_dir PATH   the operator's directory, used as it is:
 *                               it must exist when nginx reads its
 *                               configuration (else nginx -t, start and
 *                               reload refuse it), and it is never removed
 *   turnpolicy_share_dir off    no sharing: each worker holds the users
 *   (no directive)              a private directory the master makes with
 *                               mkdtemp, /dev/shm/turnpolicy.XXXXXX, mode
 *                               0700, owned by the worker user when the
 *                               master runs as root
 *
 * Only a master process with more than one worker shares (with one worker,
 * or master_process off, there is one store on the node): otherwise
 * share_dir stays NULL whatever the directive says.
 *
 * Lifecycle of the private directory, all in the master:
 *   init_module   runs on start and on every reload (ngx_init_cycle, before
 *                 the new workers are forked): the first one makes the
 *                 directory, later ones reuse it (and chown it again: the
 *                 "user" may have changed); mcf->store.share_dir then
 *                 points at it, and every worker's tp_store_new gets it.
 *                 Not made under nginx -t / -T (init_module runs there too,
 *                 but no worker will), nor by nginx -s (which stops before
 *                 init_module).  When it cannot be made (no /dev/shm,
 *                 mkdtemp fails) a notice says so and the workers run
 *                 without sharing: never a reason not to start.
 *   exit_master   when the master exits (quit, terminate; after its workers
 *                 are gone), the directory is removed with the files
 *                 directly in it.  Workers never run it.
 * A binary upgrade (USR2) starts a new master, a new process image: it
 * makes its own directory, and the old master removes its own on exit.  A
 * master killed with SIGKILL leaves its directory behind (tmpfs: until
 * reboot).
 *
 * State: the directory's path in a static buffer of this module (empty:
 * none made), which outlives the configuration cycles of the master (the
 * module stays loaded across reloads) and is inherited by the workers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_turnpolicy.h"


#define NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE  "/dev/shm/turnpolicy.XXXXXX"

/* room the library needs after the directory's path ("/base.<pid>.tmp") */
#define NGX_HTTP_TURNPOLICY_SHARE_ROOM      64


static ngx_int_t ngx_http_turnpolicy_share_make(ngx_cycle_t *cycle,
    ngx_core_conf_t *ccf);
static void ngx_http_turnpolicy_share_remove(ngx_log_t *log);


/* the private directory's path; "" when there is none */
static u_char  ngx_http_turnpolicy_share_path[
                   sizeof(NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE)];


/*
 * turnpolicy_share_dir off | PATH (http{}).  A relative PATH is relative
 * to nginx's prefix.  PATH is checked now, where the error reaches
 * nginx -t: it must be an existing directory.  Not by a signalling
 * nginx -s, which reads the configuration only to find the pid file.
 */
char *
ngx_http_turnpolicy_share_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_turnpolicy_main_conf_t *mcf = conf;

    ngx_str_t        *value, path;
    ngx_file_info_t   fi;

    if (mcf->share != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        mcf->share = NGX_HTTP_TURNPOLICY_SHARE_OFF;
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"\" in \"%V\" directive, it must "
                           "be \"off\" or a directory", &cmd->name);
        return NGX_CONF_ERROR;
    }

    path = value[1];

    /* NUL-terminated: configuration strings and ngx_get_full_name's are */
    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (path.len > NGX_MAX_PATH - NGX_HTTP_TURNPOLICY_SHARE_ROOM) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: the path is too long (at most "
                           "%d bytes)", &cmd->name,
                           NGX_MAX_PATH - NGX_HTTP_TURNPOLICY_SHARE_ROOM);
        return NGX_CONF_ERROR;
    }

    if (ngx_process != NGX_PROCESS_SIGNALLER) {

        if (ngx_file_info(path.data, &fi) == NGX_FILE_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"%V\" directive: \"%V\" must be an "
                               "existing directory, " ngx_file_info_n
                               " failed", &cmd->name, &path);
            return NGX_CONF_ERROR;
        }

        if (!ngx_is_dir(&fi)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" directive: \"%V\" is not a directory",
                               &cmd->name, &path);
            return NGX_CONF_ERROR;
        }
    }

    mcf->share = NGX_HTTP_TURNPOLICY_SHARE_PATH;
    mcf->share_dir = path;

    return NGX_CONF_OK;
}


/*
 * init_module: in the master, on start and on every reload, before the
 * cycle's workers are forked (and in nginx -t).  Sets the share_dir the
 * workers' stores get.  Always NGX_OK: nginx exits when an init_module
 * fails, and not sharing is no reason to.
 */
ngx_int_t
ngx_http_turnpolicy_init_module(ngx_cycle_t *cycle)
{
    ngx_core_conf_t                  *ccf;
    ngx_http_turnpolicy_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_turnpolicy_module);

    if (mcf == NULL || !mcf->used) {
        return NGX_OK;
    }

    mcf->store.share_dir = NULL;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (!ccf->master || ccf->worker_processes < 2) {
        /* one store on this node: nothing to share */
        return NGX_OK;
    }

    switch (mcf->share) {

    case NGX_HTTP_TURNPOLICY_SHARE_OFF:
        return NGX_OK;

    case NGX_HTTP_TURNPOLICY_SHARE_PATH:
        mcf->store.share_dir = (const char *) mcf->share_dir.data;
        break;

    default: /* NGX_HTTP_TURNPOLICY_SHARE_AUTO */

        if (ngx_test_config) {
            /* nginx -t: no worker will start */
            return NGX_OK;
        }

        if (ngx_http_turnpolicy_share_make(cycle, ccf) != NGX_OK) {
            return NGX_OK;
        }

        mcf->store.share_dir = (const char *) ngx_http_turnpolicy_share_path;
    }

    if (!ngx_test_config) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "turnpolicy: share directory \"%s\": the workers "
                      "share one copy of the users", mcf->store.share_dir);
    }

    return NGX_OK;
}


/*
 * Make the private directory (the first time), and give it to the worker
 * user.  NGX_OK, or NGX_DECLINED (logged: the workers will not share).
 */
static ngx_int_t
ngx_http_turnpolicy_share_make(ngx_cycle_t *cycle, ngx_core_conf_t *ccf)
{
    char  *path = (char *) ngx_http_turnpolicy_share_path;

    if (path[0] == '\0') {
        ngx_memcpy(path, NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE,
                   sizeof(NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE));

        /* mode 0700 */
        if (mkdtemp(path) == NULL) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, ngx_errno,
                          "turnpolicy: mkdtemp(\"%s\") failed: each worker "
                          "holds its own copy of the users (see "
                          "\"turnpolicy_share_dir\")",
                          NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE);
            path[0] = '\0';
            return NGX_DECLINED;
        }
    }

    /*
     * The workers' user, as this cycle says ("user" may change on a
     * reload); ngx_core_module sets it whenever the master is root.
     * An unset group is (gid_t) -1: chown leaves it.
     */
    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {

        if (chown(path, ccf->user, ccf->group) == -1) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                          "turnpolicy: chown(\"%s\", %d, %d) failed: each "
                          "worker holds its own copy of the users", path,
                          (int) ccf->user, (int) ccf->group);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * exit_master: the master is exiting, its workers are gone.  Remove the
 * private directory and what is in it.
 */
void
ngx_http_turnpolicy_exit_master(ngx_cycle_t *cycle)
{
    if (ngx_http_turnpolicy_share_path[0] == '\0') {
        return;
    }

    ngx_http_turnpolicy_share_remove(cycle->log);

    ngx_http_turnpolicy_share_path[0] = '\0';
}


/*
 * Unlink every entry directly in the private directory (the library's
 * files; a subdirectory is not ours and stays, with an error), then the
 * directory.  Errors are logged; nothing else is done about them.
 */
static void
ngx_http_turnpolicy_share_remove(ngx_log_t *log)
{
    u_char     *p, *name;
    size_t      len;
    ngx_str_t   dirname;
    ngx_dir_t   dir;
    ngx_err_t   err;
    u_char      file[sizeof(NGX_HTTP_TURNPOLICY_SHARE_TEMPLATE) + 256];

    dirname.data = ngx_http_turnpolicy_share_path;
    dirname.len = ngx_strlen(dirname.data);

    if (ngx_open_dir(&dirname, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "turnpolicy: " ngx_open_dir_n " \"%V\" failed",
                      &dirname);
        return;
    }

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            err = ngx_errno;

            if (err != NGX_ENOMOREFILES) {
                ngx_log_error(NGX_LOG_ERR, log, err,
                              "turnpolicy: " ngx_read_dir_n " \"%V\" failed",
                              &dirname);
            }

            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);

        if ((len == 1 && name[0] == '.')
            || (len == 2 && name[0] == '.' && name[1] == '.'))
        {
            continue;
        }

        if (dirname.len + 1 + len + 1 > sizeof(file)) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "turnpolicy: a name too long in \"%V\", left",
                          &dirname);
            continue;
        }

        p = ngx_cpymem(file, dirname.data, dirname.len);
        *p++ = '/';
        p = ngx_cpymem(p, name, len);
        *p = '\0';

        if (ngx_delete_file(file) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "turnpolicy: " ngx_delete_file_n " \"%s\" failed",
                          file);
        }
    }

    if (ngx_close_dir(&dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "turnpolicy: " ngx_close_dir_n " \"%V\" failed",
                      &dirname);
    }

    if (ngx_delete_dir(dirname.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "turnpolicy: " ngx_delete_dir_n " \"%V\" failed",
                      &dirname);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "turnpolicy: share directory \"%V\" removed", &dirname);
}
