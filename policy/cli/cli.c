/*
 * cli.c - what the turnpolicy CLI's commands share: the usage error and
 * the library error every command prints, strict integer parsing of
 * options, passwords and tokens read from stdin, where the policy comes
 * from (the configuration file, its realm, or a database) and the one
 * printer of a credential (offline and database `issue` print alike).
 *
 * The only state is the --config path the main file sets and the
 * configuration tp_cli_database_url() loads once and frees at exit.
 * Nothing here prints a secret: credentials go to stdout only through
 * tp_cli_print_credential, on purpose.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tp_cli_config_path;

int
tp_cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;

    fputs("turnpolicy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return TP_CLI_EXIT_USAGE;
}

int
tp_cli_fail(const char *what, const tp_error *err)
{
    fprintf(stderr, "turnpolicy: %s: %s\n", what,
            err->message[0] != '\0' ? err->message
                                    : tp_strerror(err->status));
    return TP_CLI_EXIT_USAGE;
}

void
tp_cli_log(void *ud, tp_log_level level, const char *msg)
{
    static const char *const names[] = {"error", "warning", "info",
                                        "debug"};

    (void)ud;
    if (level == TP_LOG_DEBUG && getenv("TURNPOLICY_DEBUG") == NULL)
        return;
    fprintf(stderr, "turnpolicy: %s: %s\n",
            (unsigned)level < 4 ? names[level] : "log", msg);
}

int
tp_cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int
tp_cli_read_stdin_arg(const char *arg, char *buf, size_t cap,
                      const char **out)
{
    size_t n;

    if (strcmp(arg, "-") != 0) {
        *out = arg;
        return 0;
    }
    if (fgets(buf, (int)cap, stdin) == NULL)
        return -1;
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    *out = buf;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the configuration and where the policy comes from                   */
/* ------------------------------------------------------------------ */

/* The configuration file: --config, else $TURNPOLICY_CONFIG, else the
 * default. */
static const char *
config_file(void)
{
    const char *path = tp_cli_config_path;

    if (path == NULL)
        path = getenv("TURNPOLICY_CONFIG");
    if (path == NULL || path[0] == '\0')
        path = TP_CLI_DEFAULT_CONFIG;
    return path;
}

int
tp_cli_load_config(tp_config **cfg)
{
    tp_error err;

    if (tp_config_load(config_file(), cfg, &err) != TP_OK)
        return tp_cli_fail("configuration", &err);
    return 0;
}

int
tp_cli_no_config_file(void)
{
    const char *env = getenv("TURNPOLICY_CONFIG");

    return tp_cli_config_path == NULL && (env == NULL || env[0] == '\0') &&
           access(TP_CLI_DEFAULT_CONFIG, F_OK) != 0 && errno == ENOENT;
}

/* Nonzero when cfg has at least one [realm ...] section. */
static int
has_realm_section(const tp_config *cfg)
{
    const char *sec;
    size_t i;

    for (i = 0; (sec = tp_config_section(cfg, i)) != NULL; i++)
        if (strncmp(sec, "realm ", 6) == 0)
            return 1;
    return 0;
}

static tp_config *db_cfg; /* loaded by tp_cli_database_url(), freed at
                           * exit */

static void
free_db_cfg(void)
{
    tp_config_free(db_cfg);
    db_cfg = NULL;
}

const char *
tp_cli_database_url(void)
{
    const char *db = getenv("TURNPOLICY_DATABASE");

    if (db != NULL)
        return db;
    if (db_cfg == NULL) {
        if (tp_cli_load_config(&db_cfg) != 0)
            return NULL;
        atexit(free_db_cfg);
    }
    return tp_config_get(db_cfg, "", "database_url");
}

int
tp_cli_pick_source(const char **db, tp_config **cfg, int config_optional)
{
    *cfg = NULL;
    if (*db == NULL && tp_cli_no_config_file()) {
        *db = getenv("TURNPOLICY_DATABASE");
        if (*db == NULL && config_optional)
            return 0;
    }
    if (*db == NULL) {
        if (tp_cli_load_config(cfg) != 0)
            return TP_CLI_EXIT_USAGE;
        if (!has_realm_section(*cfg)) {
            *db = getenv("TURNPOLICY_DATABASE");
            if (*db == NULL)
                *db = tp_config_get(*cfg, "", "database_url");
        }
    }
    return 0;
}

const char *
tp_cli_pick_realm(const tp_config *cfg, const char *realm)
{
    const char *sec, *found = NULL;
    size_t i, n = 0;

    if (realm != NULL)
        return realm;
    realm = tp_config_get(cfg, "", "default_realm");
    if (realm != NULL)
        return realm;
    for (i = 0; (sec = tp_config_section(cfg, i)) != NULL; i++) {
        if (strncmp(sec, "realm ", 6) == 0) {
            found = sec + 6;
            n++;
        }
    }
    return n == 1 ? found : NULL;
}

size_t
tp_cli_realm_urls(const tp_config *cfg, const char *realm, char *store,
                  size_t cap, const char **urls)
{
    char sec[TP_REALM_MAX + 8];
    const char *v;
    size_t n = 0;
    char *p, *save = NULL;

    snprintf(sec, sizeof(sec), "realm %s", realm);
    v = tp_config_get(cfg, sec, "urls");
    if (v == NULL || strlen(v) >= cap)
        return 0;
    memcpy(store, v, strlen(v) + 1);
    for (p = strtok_r(store, " \t,", &save);
         p != NULL && n < TP_CLI_MAX_URLS; p = strtok_r(NULL, " \t,", &save))
        urls[n++] = p;
    return n;
}

/* ------------------------------------------------------------------ */

int
tp_cli_print_credential(const tp_credential *cred, const char *realm,
                        const char **urls, size_t nurls, const char *format)
{
    char json[8192];
    tp_cred_json shape;
    tp_error err;

    if (strcmp(format, "plain") == 0) {
        printf("%s\n%s\n", cred->username, cred->password);
        return 0;
    }
    /* the shape (acs-native: the realm's URL the native SDKs take, or
     * exit 2) is the library's decision */
    if (tp_cred_json_parse(format, &shape, &err) != TP_OK ||
        tp_credential_json_realm(cred, realm, urls, nurls, shape, json,
                                 sizeof(json), NULL, &err) != TP_OK)
        return tp_cli_fail(err.status == TP_ENATIVE ? "acs-native" : "json",
                           &err);
    printf("%s\n", json);
    memset(json, 0, sizeof(json));
    return 0;
}

tp_store *
tp_cli_open_store(const char *db, const tp_config *cfg, tp_error *err)
{
    tp_store_options so;
    tp_store_config hold;
    tp_store *st;

    memset(&so, 0, sizeof(so));
    memset(&hold, 0, sizeof(hold));
    if (cfg != NULL &&
        tp_store_options_from_config(cfg, "cli", &so, &hold, err) != TP_OK)
        return NULL;
    so.database = db;
    so.log = tp_cli_log;
    st = tp_store_new(&so, err);
    tp_store_config_clear(&hold);
    return st;
}
