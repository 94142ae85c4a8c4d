/*
 * admin.h - the turnpolicy CLI's database commands (admin.c), as the main
 * file (turnpolicy.c) calls them.  CLI-only: these symbols are not part of
 * libturnpolicy.
 *
 * Exit codes follow the CLI: 0 success, 1 refused by the database (unknown
 * realm, user or kid, already exists, disabled user, killed realm), 2 usage,
 * configuration, connection or any other error.
 */
#ifndef TP_CLI_ADMIN_H
#define TP_CLI_ADMIN_H

#include <stdint.h>

/*
 * Run the database command cmd ("realm", "user", "revoke", "secret",
 * "usage") with argv[0] == cmd.  database() returns the connection string
 * to use when the command has no --database option ($TURNPOLICY_DATABASE,
 * else the configuration's database_url), or NULL (having said why on
 * stderr); the string must stay valid until tp_cli_admin returns.
 * Returns the exit status, or -1 if cmd is not a database command.
 */
int tp_cli_admin(const char *cmd, int argc, char **argv,
                 const char *(*database)(void));

/*
 * `turnpolicy issue` against the database: turnpolicy.issue_credential
 * (or issue_credential_at when now > 0, an admin-only replay), printed as
 * the offline issue prints it.  format is "ice", "rest" or "plain"
 * (checked by the caller); ttl 0 = the realm's default.  Returns the exit
 * status.
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

#endif
