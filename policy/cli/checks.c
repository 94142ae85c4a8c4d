/*
 * checks.c - the turnpolicy CLI's policy checks: peer-check (may TURN
 * relay to this address), host-check (may the signaling proxy reach this
 * host) and coturn-peers (a realm's peer rules as turnserver.conf lines).
 *
 * peer-check and host-check answer from the configuration file or, as
 * issue and verify choose (tp_cli_pick_source), from the library's store
 * over PostgreSQL - the rules turnpolicyd and nginx see.  Exit 0 allowed,
 * 1 denied (the rule that decided on stdout), 2 any other error.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

/* Parse the options of a command that takes only --realm, --help and,
 * where db is not NULL, --database.  Returns -1 to go on (realm and *db
 * set or left NULL), else the exit status. */
static int
parse_realm_only(int argc, char **argv, const char *usage,
                 const char **realm, const char **db)
{
    static const struct option opts[] = {
        {"realm", required_argument, NULL, 'r'},
        {"database", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "r:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            *realm = optarg;
            break;
        case 'd':
            if (db == NULL)
                return tp_cli_usage_error(usage, "bad option");
            *db = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage, "bad option");
        }
    }
    return -1;
}

/* host-check and peer-check as issue, verify and key choose: the
 * database given with --database, or $TURNPOLICY_DATABASE /
 * database_url when no [realm] section is configured.  On return *cfg is
 * the configuration (or NULL) and *store the library's store when a
 * database is used (else NULL).  0, or the exit status. */
static int
check_source(const char *usage, const char *db, const char **realm,
             tp_config **cfg, tp_store **store)
{
    tp_error err;
    int rc;

    *store = NULL;
    rc = tp_cli_pick_source(&db, cfg, 1);
    if (rc != 0 || db == NULL)
        return rc;
    if (*realm == NULL && *cfg != NULL)
        *realm = tp_config_get(*cfg, "", "default_realm");
    if (*realm == NULL)
        return tp_cli_usage_error(usage, "--realm is required");
    *store = tp_cli_open_store(db, *cfg, &err);
    if (*store == NULL)
        return tp_cli_fail("database", &err);
    return 0;
}

static const char usage_peer[] =
    "usage: turnpolicy peer-check [--realm R] [--database CONNINFO] ADDRESS\n"
    "Decide whether TURN may relay to ADDRESS (IPv4 or IPv6).  Without a\n"
    "realm (or without a configuration file) only the built-in default\n"
    "deny applies.  With a database (--database, or $TURNPOLICY_DATABASE /\n"
    "database_url when no realm is configured) the realm's rules are\n"
    "PostgreSQL's, as turnpolicyd sees them.  Exit 0 allowed, 1 denied.\n";

int
tp_cli_peer_check(int argc, char **argv)
{
    const char *realm = NULL, *db = NULL;
    tp_config *cfg = NULL;
    tp_peerset *ps = NULL;
    tp_store *store = NULL;
    tp_peer_decision d;
    tp_addr addr;
    tp_error err;
    tp_status st = TP_OK;
    int c, rc = TP_CLI_EXIT_USAGE;

    c = parse_realm_only(argc, argv, usage_peer, &realm, &db);
    if (c >= 0)
        return c;
    if (optind != argc - 1)
        return tp_cli_usage_error(usage_peer,
                                  "exactly one ADDRESS is required");
    if (db != NULL || realm != NULL) {
        rc = check_source(usage_peer, db, &realm, &cfg, &store);
        if (rc != 0)
            goto out;
        rc = TP_CLI_EXIT_USAGE;
    }
    memset(&d, 0, sizeof(d));
    if (store != NULL) {
        st = tp_addr_parse(argv[optind], &addr, &err);
        if (st == TP_OK)
            st = tp_store_peer_check(store, realm, &addr, &d, &err);
    } else if (realm != NULL) {
        /* check_source has loaded it unless there is no file */
        if (cfg == NULL && tp_cli_load_config(&cfg) != 0)
            goto out;
        ps = tp_peerset_from_config(cfg, realm, &err);
    } else {
        ps = tp_peerset_new(&err);
    }
    if (store == NULL && ps == NULL) {
        rc = tp_cli_fail("peers", &err);
        goto out;
    }
    if (store == NULL)
        st = tp_peerset_check_str(ps, argv[optind], &d, &err);
    if (st == TP_OK) {
        printf("allow %s%s%s\n", argv[optind], d.rule[0] ? " by " : "",
               d.rule);
        rc = 0;
    } else if (st == TP_EPEERDENIED) {
        printf("deny %s by %s%s\n", argv[optind],
               d.builtin ? "built-in " : "",
               d.rule[0] ? d.rule : "default");
        rc = TP_CLI_EXIT_REFUSED;
    } else {
        rc = tp_cli_fail("peer-check", &err);
    }
out:
    tp_peerset_free(ps);
    tp_store_free(store);
    tp_config_free(cfg);
    return rc;
}

static const char usage_host[] =
    "usage: turnpolicy host-check [--realm R] [--database CONNINFO] HOST "
    "[PORT [PATH]]\n"
    "Decide whether the signaling proxy may forward to HOST (the realm's\n"
    "`hosts` allow-list; default deny), from the configuration or, with a\n"
    "database (--database, or $TURNPOLICY_DATABASE / database_url when no\n"
    "realm is configured), from PostgreSQL.  Exit 0 allowed, 1 denied.\n";

int
tp_cli_host_check(int argc, char **argv)
{
    const char *realm = NULL, *path = NULL, *db = NULL;
    tp_config *cfg = NULL;
    tp_hostlist *hl = NULL;
    tp_store *store = NULL;
    tp_host_match m;
    int64_t port = 0;
    tp_error err;
    tp_status st;
    int c, rc = TP_CLI_EXIT_USAGE;

    c = parse_realm_only(argc, argv, usage_host, &realm, &db);
    if (c >= 0)
        return c;
    if (optind >= argc || argc - optind > 3)
        return tp_cli_usage_error(usage_host, "HOST [PORT [PATH]] expected");
    if (argc - optind >= 2 &&
        tp_cli_parse_int64(argv[optind + 1], 0, 65535, &port) != 0)
        return tp_cli_usage_error(usage_host, "bad PORT %s", argv[optind + 1]);
    if (argc - optind == 3)
        path = argv[optind + 2];
    rc = check_source(usage_host, db, &realm, &cfg, &store);
    if (rc != 0)
        goto out;
    rc = TP_CLI_EXIT_USAGE;
    if (store != NULL) {
        st = tp_store_host_check(store, realm, argv[optind], (unsigned)port,
                                 path, &m, &err);
    } else {
        if (cfg == NULL && tp_cli_load_config(&cfg) != 0)
            goto out;
        realm = tp_cli_pick_realm(cfg, realm);
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage_host, "--realm is required");
            goto out;
        }
        hl = tp_hostlist_from_config(cfg, realm, &err);
        if (hl == NULL) {
            rc = tp_cli_fail("hosts", &err);
            goto out;
        }
        st = tp_hostlist_check(hl, argv[optind], (unsigned)port, path, &m,
                               &err);
    }
    if (st == TP_OK) {
        if (m.rule != NULL)
            printf("allow %s by %s\n", argv[optind], m.rule);
        else /* the store's rules live in its snapshot */
            printf("allow %s by the realm's rule %d\n", argv[optind],
                   m.rule_index + 1);
        rc = 0;
    } else if (st == TP_EHOSTDENIED || st == TP_EBADHOST) {
        printf("deny %s: %s\n", argv[optind], tp_reason(st));
        rc = TP_CLI_EXIT_REFUSED;
    } else {
        rc = tp_cli_fail("host-check", &err);
    }
out:
    tp_hostlist_free(hl);
    tp_store_free(store);
    tp_config_free(cfg);
    return rc;
}

static const char usage_coturn_peers[] =
    "usage: turnpolicy coturn-peers [--realm R]\n"
    "Print the realm's peer policy (with the built-in default deny) as\n"
    "turnserver.conf lines `allowed-peer-ip=...` and `denied-peer-ip=...`\n"
    "in the range forms coturn 4.6.1 compares correctly.\n";

static tp_status
print_range(void *ud, const char *range)
{
    printf("%s=%s\n", (const char *)ud, range);
    return TP_OK;
}

int
tp_cli_coturn_peers(int argc, char **argv)
{
    const char *realm = NULL;
    tp_config *cfg = NULL;
    tp_peerset *ps = NULL;
    tp_error err;
    int c, rc = TP_CLI_EXIT_USAGE;

    c = parse_realm_only(argc, argv, usage_coturn_peers, &realm, NULL);
    if (c >= 0)
        return c;
    if (realm != NULL) {
        if (tp_cli_load_config(&cfg) != 0)
            return TP_CLI_EXIT_USAGE;
        ps = tp_peerset_from_config(cfg, realm, &err);
    } else {
        ps = tp_peerset_new(&err);
    }
    if (ps == NULL) {
        rc = tp_cli_fail("peers", &err);
        goto out;
    }
    if (tp_peerset_export_coturn(ps, TP_PEER_ALLOW, print_range,
                                 (void *)"allowed-peer-ip", &err) != TP_OK ||
        tp_peerset_export_coturn(ps, TP_PEER_DENY, print_range,
                                 (void *)"denied-peer-ip", &err) != TP_OK) {
        rc = tp_cli_fail("coturn-peers", &err);
        goto out;
    }
    rc = 0;
out:
    tp_peerset_free(ps);
    tp_config_free(cfg);
    return rc;
}
