/*
 * turnpolicy.c - the turnpolicy command-line tool's main: the global
 * options (--config, --help, --version), the usage text naming every
 * command, and the dispatch to the file that holds each command (the map
 * is in cli.h).  Nothing is decided here.
 *
 * Offline commands decide from the configuration file with libturnpolicy
 * and talk to no network; the database commands go to PostgreSQL (the SQL
 * API, or the library's store).  Exit codes: 0 success / valid /
 * allowed, 1 invalid / denied (the reason on stderr), 2 usage,
 * configuration or any other error (cli.h).  Secrets, passwords and
 * tokens are never printed on stderr; the password given to `verify` or
 * `key` may be read from standard input ("-") to keep it out of ps(1).
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_main[] =
    "usage: turnpolicy [--config FILE] COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  issue        issue a TURN credential for a user\n"
    "  verify       verify a TURN username and password\n"
    "  key          print the coturn long-term key of a credential\n"
    "  jwt          issue or verify a JSON Web Token (jwt issue|verify)\n"
    "  peer-check   decide whether TURN may relay to an address\n"
    "  host-check   decide whether the signaling proxy may reach a host\n"
    "  migrate      apply the SQL migrations to the PostgreSQL database\n"
    "  watch        run a policy store and print a credential's decision "
    "as it changes\n"
    TP_CLI_ADMIN_USAGE
    "  coturn-peers print a realm's peer rules as coturn "
    "allowed/denied-peer-ip lines\n"
    "  version      print the version\n"
    "\n"
    "The configuration is read from --config FILE, else $TURNPOLICY_CONFIG,\n"
    "else " TP_CLI_DEFAULT_CONFIG ".  `turnpolicy COMMAND --help` "
    "describes a command.\n"
    "Exit status: 0 success/valid/allowed, 1 invalid/denied, 2 usage,\n"
    "configuration or other error.\n"
    "Database commands use --database CONNINFO, else $TURNPOLICY_DATABASE,\n"
    "else the configuration's database_url.\n";

static int
run_command(int argc, char **argv)
{
    int i = 1, rc;
    const char *cmd;

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            tp_cli_config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            tp_cli_config_path = argv[i] + 9;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            fputs(usage_main, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("turnpolicy %s\n", tp_version());
            return 0;
        } else {
            fprintf(stderr, "turnpolicy: unknown option %s\n%s", argv[i],
                    usage_main);
            return TP_CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fputs(usage_main, stderr);
        return TP_CLI_EXIT_USAGE;
    }
    cmd = argv[i];
    argc -= i;
    argv += i;
    optind = 1;
    if (strcmp(cmd, "issue") == 0)
        return tp_cli_issue(argc, argv);
    if (strcmp(cmd, "verify") == 0)
        return tp_cli_verify(argc, argv);
    if (strcmp(cmd, "key") == 0)
        return tp_cli_key(argc, argv);
    if (strcmp(cmd, "jwt") == 0)
        return tp_cli_jwt(argc, argv);
    if (strcmp(cmd, "peer-check") == 0)
        return tp_cli_peer_check(argc, argv);
    if (strcmp(cmd, "host-check") == 0)
        return tp_cli_host_check(argc, argv);
    if (strcmp(cmd, "coturn-peers") == 0)
        return tp_cli_coturn_peers(argc, argv);
    if (strcmp(cmd, "migrate") == 0)
        return tp_cli_migrate(argc, argv);
    if (strcmp(cmd, "watch") == 0)
        return tp_cli_watch(argc, argv);
    rc = tp_cli_admin(cmd, argc, argv);
    if (rc >= 0)
        return rc;
    if (strcmp(cmd, "version") == 0) {
        printf("turnpolicy %s\n", tp_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    fprintf(stderr, "turnpolicy: unknown command %s\n%s", cmd, usage_main);
    return TP_CLI_EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    int rc = run_command(argc, argv);

    /* A credential, key or new kid printed into a full disk or a closed
     * pipe is lost: never report success for it. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == 0)
            fputs("turnpolicy: cannot write the output\n", stderr);
        return rc == 0 ? TP_CLI_EXIT_USAGE : rc;
    }
    return rc;
}
