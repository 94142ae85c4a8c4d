/*
 * cli.h - the turnpolicy CLI's one internal header: what its source files
 * share and the commands the main file dispatches to.  CLI-only: none of
 * these symbols is part of libturnpolicy.
 *
 * The map (every command parses its own options, asks the library or the
 * SQL API, prints one result):
 *   turnpolicy.c  main: global options (--config), the usage, dispatch
 *   cli.c         shared: errors, strict integers, stdin arguments, the
 *                 configuration file and where the policy comes from
 *                 (configuration or database), printing a credential
 *   credential.c  issue, verify, key (configuration or the library's
 *                 store) and watch (a credential's decision over time)
 *   jwt.c         jwt issue|verify
 *   checks.c      peer-check, host-check, coturn-peers
 *   migrate.c     migrate (forward-only SQL migrations, via the library)
 *   admin.c       the database commands over libpq (realm, user, revoke,
 *                 secret, usage) and `issue` against the database
 *
 * Exit status, for every command: 0 success / valid / allowed;
 * TP_CLI_EXIT_REFUSED (1) the answer is no - invalid, denied, unknown,
 * already exists (the reason on stderr); TP_CLI_EXIT_USAGE (2) usage,
 * configuration, connection or any other error.  Secrets, passwords and
 * tokens never reach stderr.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include "turnpolicy.h"

#include <stddef.h>
#include <stdint.h>

#define TP_CLI_EXIT_REFUSED 1 /* refused: invalid, denied, unknown */
#define TP_CLI_EXIT_USAGE 2   /* usage, configuration or other error */

/* The most TURN URLs of a realm the CLI hands out with a credential. */
#define TP_CLI_MAX_URLS 16

#define TP_CLI_DEFAULT_CONFIG "/etc/turnpolicy/turnpolicy.conf"

/* --config FILE as the main file found it, or NULL (cli.c). */
extern const char *tp_cli_config_path;

/* ---- errors and parsing (cli.c) ---------------------------------- */

/* Print "turnpolicy: <message>" and the command's usage on stderr;
 * returns TP_CLI_EXIT_USAGE. */
int tp_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "turnpolicy: what: <err's message, else its status>" on stderr;
 * returns TP_CLI_EXIT_USAGE. */
int tp_cli_fail(const char *what, const tp_error *err);

/* The library's log callback for the CLI: one line on stderr; debug only
 * with $TURNPOLICY_DEBUG. */
void tp_cli_log(void *ud, tp_log_level level, const char *msg);

/* Parse a decimal integer in min..max into *out: 0, or -1 (not an
 * integer, out of range, trailing characters). */
int tp_cli_parse_int64(const char *s, int64_t min, int64_t max,
                       int64_t *out);

/* A password or token argument: arg itself, or for "-" the first line of
 * stdin read into buf (cap bytes, line ending stripped).  0, or -1. */
int tp_cli_read_stdin_arg(const char *arg, char *buf, size_t cap,
                          const char **out);

/* ---- configuration and database (cli.c) -------------------------- */

/* Load the configuration file (--config, else $TURNPOLICY_CONFIG, else
 * the default) into *cfg: 0, or TP_CLI_EXIT_USAGE after saying why.  The
 * caller tp_config_free()s it. */
int tp_cli_load_config(tp_config **cfg);

/* Nonzero when no configuration file was named and the default one does
 * not exist. */
int tp_cli_no_config_file(void);

/* The database of a command without --database: $TURNPOLICY_DATABASE,
 * else the configuration's database_url.  NULL when there is none
 * (having said why on stderr if the configuration cannot be read).  The
 * string stays valid until exit. */
const char *tp_cli_database_url(void);

/*
 * Where issue, verify, key, peer-check and host-check take the policy
 * from.  *db (the --database option, or NULL) is kept when set; else it
 * becomes $TURNPOLICY_DATABASE when no configuration file exists, else
 * the configuration is loaded into *cfg and, when it has no [realm ...]
 * section, $TURNPOLICY_DATABASE or its database_url.  With
 * config_optional, no configuration file and no $TURNPOLICY_DATABASE
 * leave both NULL; without it the missing file is the error.  *cfg (NULL
 * or loaded) is the caller's to free, also on error; *db may point into
 * it.  Returns 0 (*db NULL: use the configuration), or the exit status.
 */
int tp_cli_pick_source(const char **db, tp_config **cfg,
                       int config_optional);
/* The library's store on database db, with the file's store settings
 * and JWT checks of section [cli] mapped by the library exactly as for
 * turnpolicyd and nginx (cfg may be NULL).  NULL and err filled on
 * failure. */
tp_store *tp_cli_open_store(const char *db, const tp_config *cfg,
                            tp_error *err);

/* The realm to use: realm (--realm) if not NULL, else the configuration's
 * default_realm, else its only [realm ...] section; NULL if none. */
const char *tp_cli_pick_realm(const tp_config *cfg, const char *realm);

/* Split the realm's "urls" value into at most TP_CLI_MAX_URLS pointers
 * into store (cap bytes); returns how many. */
size_t tp_cli_realm_urls(const tp_config *cfg, const char *realm,
                         char *store, size_t cap, const char **urls);

/* Print cred on stdout as format: "plain" (username and password on two
 * lines) or a tp_cred_json name, with the realm's urls.  0, or
 * TP_CLI_EXIT_USAGE after saying why (acs-native: no URL the native SDKs
 * take).  The JSON buffer is wiped; cred is the caller's to wipe. */
int tp_cli_print_credential(const tp_credential *cred, const char *realm,
                            const char **urls, size_t nurls,
                            const char *format);

/* ---- the commands (argv[0] is the command's name) ----------------- */

int tp_cli_issue(int argc, char **argv);            /* credential.c */
int tp_cli_verify(int argc, char **argv);           /* credential.c */
int tp_cli_key(int argc, char **argv);              /* credential.c */
int tp_cli_watch(int argc, char **argv);            /* credential.c */
int tp_cli_jwt(int argc, char **argv);              /* jwt.c */
int tp_cli_peer_check(int argc, char **argv);       /* checks.c */
int tp_cli_host_check(int argc, char **argv);       /* checks.c */
int tp_cli_coturn_peers(int argc, char **argv);     /* checks.c */
int tp_cli_migrate(int argc, char **argv);          /* migrate.c */

/*
 * Run the database command cmd ("realm", "user", "revoke", "secret",
 * "usage") with argv[0] == cmd (admin.c).  Without --database it uses
 * tp_cli_database_url().  Returns the exit status, or -1 if cmd is not a
 * database command.
 */
int tp_cli_admin(const char *cmd, int argc, char **argv);

/*
 * `turnpolicy issue` against the database (admin.c):
 * turnpolicy.issue_credential (or issue_credential_at when now > 0, an
 * admin-only replay), printed as the offline issue prints it.  format is
 * "plain" or a tp_cred_json name (checked by the caller); ttl 0 = the
 * realm's default.  Returns the exit status.
 */
int tp_cli_db_issue(const char *db, const char *realm, const char *user,
                    int64_t ttl, const char *format, int64_t now);

/* The one-line help of the database commands, for the main usage text. */
#define TP_CLI_ADMIN_USAGE                                                  \
    "  realm        add a realm in the database (realm add)\n"              \
    "  user         add, disable, enable or list users (user add|...)\n"    \
    "  revoke       revoke a user's credentials or one credential\n"        \
    "  secret       rotate, retire or list a realm's secrets\n"             \
    "  usage        per-user or per-realm usage totals\n"

#endif /* TP_CLI_H */
