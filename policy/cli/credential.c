/*
 * credential.c - the turnpolicy CLI's TURN credential commands: issue,
 * verify and key, each answered from the configuration file (realms and
 * their secret files, no network) or, when a database is named or no
 * realm is configured, from PostgreSQL (issue through the SQL API in
 * admin.c, verify and key through the library's store); and watch, which
 * runs a store like a node would and prints one credential's decision as
 * it changes.
 *
 * Which of the two answers is cli.c's tp_cli_pick_source, the same for
 * every command that has both.  The password given to verify, key or
 * watch may be read from stdin ("-") to keep it out of ps(1); it is wiped
 * before returning and never printed.  Exit status as in cli.h.
 */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_issue[] =
    "usage: turnpolicy issue [--realm R] --user U [--ttl SECONDS]\n"
    "                        [--format ice|rest|acs-native|plain] "
    "[--now UNIX]\n"
    "                        [--database CONNINFO]\n"
    "Issue a TURN credential signed with the realm's signing secret.\n"
    "It comes from the database (turnpolicy.issue_credential) with\n"
    "--database, or when the configuration has no [realm] section and\n"
    "$TURNPOLICY_DATABASE or database_url names one; else from the\n"
    "configuration's secret files.\n"
    "  ice    {\"iceServers\":[{\"urls\",\"username\",\"credential\"}],"
    "\"ttl\",\"expiresOn\"} (default)\n"
    "  rest   TURN REST API draft {\"username\",\"password\",\"ttl\","
    "\"uris\"}\n"
    "  acs-native  the ACS native SDKs' (Android, iOS, Windows) shape:\n"
    "         {\"iceServers\":[{\"urls\":[\"turn:<IPv4>\"],\"udpPort\","
    "\"realm\",\"username\",\"password\"}],\"ttl\",\"expiresOn\"};\n"
    "         exit 2 when no URL of the realm is turn: with an IPv4\n"
    "         address over UDP\n"
    "  plain  username and password on two lines\n"
    "--now sets the issue time (Unix seconds), for tests and replays\n"
    "(against the database: issue_credential_at, admin only).\n";

int
tp_cli_issue(int argc, char **argv)
{
    static const struct option opts[] = {
        {"realm", required_argument, NULL, 'r'},
        {"user", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"now", required_argument, NULL, 'n'},
        {"database", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *realm = NULL, *user = NULL, *format = "ice", *db = NULL;
    const char *urls[TP_CLI_MAX_URLS];
    char urlstore[4096];
    int64_t ttl = 0, now = tp_now();
    tp_config *cfg = NULL;
    tp_keyring *kr = NULL;
    tp_credential cred;
    tp_cred_json shape = TP_JSON_ICE;
    tp_turn_url native;
    tp_error err;
    size_t nurls, i;
    int c, rc = TP_CLI_EXIT_USAGE, now_given = 0;

    while ((c = getopt_long(argc, argv, "r:u:t:f:n:d:h", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'r':
            realm = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 't':
            if (tp_cli_parse_int64(optarg, 1, TP_TTL_MAX, &ttl) != 0)
                return tp_cli_usage_error(usage_issue, "bad --ttl %s", optarg);
            break;
        case 'f':
            format = optarg;
            break;
        case 'n':
            if (tp_cli_parse_int64(optarg, 1, INT64_MAX / 4, &now) != 0)
                return tp_cli_usage_error(usage_issue, "bad --now %s", optarg);
            now_given = 1;
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            fputs(usage_issue, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage_issue, "bad option");
        }
    }
    if (user == NULL)
        return tp_cli_usage_error(usage_issue, "--user is required");
    if (strcmp(format, "plain") != 0 &&
        tp_cred_json_parse(format, &shape, NULL) != TP_OK)
        return tp_cli_usage_error(usage_issue, "unknown --format %s", format);
    /* The database when asked for, or when no realm is configured but a
     * database is. */
    rc = tp_cli_pick_source(&db, &cfg, 0);
    if (rc != 0)
        goto out;
    rc = TP_CLI_EXIT_USAGE;
    if (db != NULL) {
        if (realm == NULL && cfg == NULL && !tp_cli_no_config_file() &&
            tp_cli_load_config(&cfg) != 0)
            goto out;
        if (realm == NULL && cfg != NULL)
            realm = tp_config_get(cfg, "", "default_realm");
        if (realm == NULL)
            rc = tp_cli_usage_error(usage_issue, "--realm is required");
        else
            rc = tp_cli_db_issue(db, realm, user, ttl, format,
                                 now_given ? now : 0);
        goto out;
    }
    realm = tp_cli_pick_realm(cfg, realm);
    if (realm == NULL) {
        rc = tp_cli_usage_error(usage_issue, "--realm is required (the "
                         "configuration has several realms)");
        goto out;
    }
    kr = tp_keyring_from_config(cfg, realm, &err);
    if (kr == NULL) {
        rc = tp_cli_fail("realm", &err);
        goto out;
    }
    /* the realm's URLs must be usable before anything is issued */
    nurls = tp_cli_realm_urls(cfg, realm, urlstore, sizeof(urlstore), urls);
    for (i = 0; i < nurls; i++) {
        if (tp_turn_url_parse(urls[i], NULL, &err) != TP_OK) {
            rc = tp_cli_fail("urls", &err);
            goto out;
        }
    }
    if (strcmp(format, "plain") != 0 && shape == TP_JSON_ACS_NATIVE &&
        tp_native_turn(realm, urls, nurls, &native, &err) != TP_OK) {
        rc = tp_cli_fail("acs-native", &err);
        goto out;
    }
    if (tp_credential_issue(kr, user, (uint32_t)ttl, now, &cred, &err) !=
        TP_OK) {
        rc = tp_cli_fail("issue", &err);
        goto out;
    }
    rc = tp_cli_print_credential(&cred, realm, urls, nurls, format);
out:
    memset(&cred, 0, sizeof(cred));
    tp_keyring_free(kr);
    tp_config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ */

static const char usage_verify[] =
    "usage: turnpolicy verify [--realm R] --username X --password Y|- "
    "[--now UNIX]\n"
    "                         [--database CONNINFO]\n"
    "With a database (--database, or $TURNPOLICY_DATABASE / database_url\n"
    "when no realm is configured) the library's store decides: user\n"
    "known and active, not revoked, realm not killed.\n"
    "Verify a TURN credential.  Exit 0 if valid (the parsed username is\n"
    "printed), 1 if not, with the reason on stderr.  --password - reads "
    "it\nfrom standard input.\n";

static const char usage_key[] =
    "usage: turnpolicy key --realm R --username X --password Y|-\n"
    "       turnpolicy key [--realm R] --username X [--now UNIX] "
    "[--database CONNINFO]\n"
    "Print the coturn long-term key hex(MD5(username:realm:password)).\n"
    "With --password, the key of that password (no policy involved).\n"
    "Without it, the key turnpolicy derives for a credential it issued\n"
    "(exit 1 with the reason if the policy refuses the username).\n";

static int
verify_or_key(int argc, char **argv, int key_mode)
{
    static const struct option opts[] = {
        {"realm", required_argument, NULL, 'r'},
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"now", required_argument, NULL, 'n'},
        {"database", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *usage = key_mode ? usage_key : usage_verify;
    const char *realm = NULL, *username = NULL, *password = NULL;
    const char *db = NULL;
    tp_store *store = NULL;
    char pwbuf[512];
    char hexkey[TP_LTKEY_HEX_LEN + 1];
    int64_t now = tp_now();
    tp_config *cfg = NULL;
    tp_keyring *kr = NULL;
    tp_username u;
    tp_error err;
    tp_status st;
    int c, rc = TP_CLI_EXIT_USAGE;

    while ((c = getopt_long(argc, argv, "r:u:p:n:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            realm = optarg;
            break;
        case 'u':
            username = optarg;
            break;
        case 'p':
            password = optarg;
            break;
        case 'n':
            if (tp_cli_parse_int64(optarg, 1, INT64_MAX / 4, &now) != 0)
                return tp_cli_usage_error(usage, "bad --now %s", optarg);
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage, "bad option");
        }
    }
    if (username == NULL)
        return tp_cli_usage_error(usage, "--username is required");
    if (password == NULL && !key_mode)
        return tp_cli_usage_error(usage, "--password is required");
    if (password != NULL &&
        tp_cli_read_stdin_arg(password, pwbuf, sizeof(pwbuf), &password) != 0)
        return tp_cli_usage_error(usage,
                                  "cannot read the password from stdin");
    if (key_mode && password != NULL) {
        /* Pure derivation: no configuration needed. */
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required");
            goto out;
        }
        if (tp_longterm_key(username, realm, password, hexkey, &err) !=
            TP_OK) {
            rc = tp_cli_fail("key", &err);
            goto out;
        }
        printf("%s\n", hexkey);
        rc = 0;
        goto out;
    }
    /* The database (the library's store) when asked for, or when no realm
     * is configured but a database is - as for issue. */
    rc = tp_cli_pick_source(&db, &cfg, 0);
    if (rc != 0)
        goto out;
    rc = TP_CLI_EXIT_USAGE;
    if (db != NULL) {
        if (realm == NULL && cfg != NULL)
            realm = tp_config_get(cfg, "", "default_realm");
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required");
            goto out;
        }
        store = tp_cli_open_store(db, cfg, &err);
        if (store == NULL) {
            rc = tp_cli_fail("database", &err);
            goto out;
        }
        if (key_mode)
            st = tp_store_key(store, realm, username, now, hexkey, &u, &err);
        else
            st = tp_store_verify(store, realm, username, password, now, &u,
                                 &err);
    } else {
        realm = tp_cli_pick_realm(cfg, realm);
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required (the "
                             "configuration has several realms)");
            goto out;
        }
        kr = tp_keyring_from_config(cfg, realm, &err);
        if (kr == NULL) {
            rc = tp_cli_fail("realm", &err);
            goto out;
        }
        if (key_mode)
            st = tp_credential_key(kr, username, now, hexkey, &u, &err);
        else
            st = tp_credential_verify(kr, username, password, now, &u,
                                      &err);
    }
    if (st != TP_OK) {
        fprintf(stderr, "invalid: %s: %s\n", tp_reason(st), err.message);
        rc = TP_CLI_EXIT_REFUSED;
        goto out;
    }
    if (key_mode) {
        printf("%s\n", hexkey);
    } else {
        printf("valid: realm=%s user=%s kid=%s issued=%" PRId64
               " expires=%" PRId64 " (in %" PRId64 " s)\n",
               realm, u.user_id, u.form == TP_FORM_LEGACY ? "(legacy)" : u.kid,
               u.issued, u.expires, u.expires - now);
    }
    rc = 0;
out:
    memset(pwbuf, 0, sizeof(pwbuf));
    memset(hexkey, 0, sizeof(hexkey));
    tp_keyring_free(kr);
    tp_store_free(store);
    tp_config_free(cfg);
    return rc;
}

int
tp_cli_verify(int argc, char **argv)
{
    return verify_or_key(argc, argv, 0);
}

int
tp_cli_key(int argc, char **argv)
{
    return verify_or_key(argc, argv, 1);
}

/* ------------------------------------------------------------------ */

static const char usage_watch[] =
    "usage: turnpolicy watch --realm R --username X --password Y|-\n"
    "                        [--database CONNINFO] [--seconds N] "
    "[--no-listen]\n"
    "                        [--redis HOST:PORT] [--redis-password-file F]\n"
    "Run a policy store like a node would and print the decision for one\n"
    "credential every time it changes, for N seconds (default 10).\n"
    "--no-listen behaves like a node reading a hot-standby replica: it\n"
    "learns of changes only through Redis (or its periodic reload).\n";

static double
mono_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
tp_cli_watch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"realm", required_argument, NULL, 'r'},
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"database", required_argument, NULL, 'd'},
        {"seconds", required_argument, NULL, 's'},
        {"no-listen", no_argument, NULL, 'L'},
        {"redis", required_argument, NULL, 'R'},
        {"redis-password-file", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *realm = NULL, *username = NULL, *password = NULL;
    const char *db = NULL, *redis = NULL, *rpw_file = NULL;
    char pwbuf[512], host[256], rpw[512];
    int64_t seconds = 10;
    tp_store_options so;
    tp_store *store = NULL;
    tp_status last = (tp_status)-1, stt;
    tp_error err;
    double t0;
    int c, rc = TP_CLI_EXIT_USAGE;

    memset(&so, 0, sizeof(so));
    rpw[0] = '\0';
    while ((c = getopt_long(argc, argv, "r:u:p:d:s:LR:P:h", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'r':
            realm = optarg;
            break;
        case 'u':
            username = optarg;
            break;
        case 'p':
            password = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 's':
            if (tp_cli_parse_int64(optarg, 1, 3600, &seconds) != 0)
                return tp_cli_usage_error(usage_watch, "bad --seconds %s",
                                          optarg);
            break;
        case 'L':
            so.no_listen = 1;
            break;
        case 'R':
            redis = optarg;
            break;
        case 'P':
            rpw_file = optarg;
            break;
        case 'h':
            fputs(usage_watch, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage_watch, "bad option");
        }
    }
    if (realm == NULL || username == NULL || password == NULL)
        return tp_cli_usage_error(usage_watch,
                                  "--realm, --username and --password "
                           "are required");
    if (tp_cli_read_stdin_arg(password, pwbuf, sizeof(pwbuf), &password) != 0)
        return tp_cli_usage_error(usage_watch, "cannot read the password");
    if (db == NULL)
        db = tp_cli_database_url();
    if (db == NULL) {
        rc = tp_cli_usage_error(usage_watch, "no database: use --database, "
                                "$TURNPOLICY_DATABASE or database_url");
        goto out;
    }
    if (redis != NULL) {
        const char *colon = strrchr(redis, ':');
        int64_t port;

        if (colon == NULL || (size_t)(colon - redis) >= sizeof(host) ||
            tp_cli_parse_int64(colon + 1, 1, 65535, &port) != 0) {
            rc = tp_cli_usage_error(usage_watch, "--redis wants HOST:PORT");
            goto out;
        }
        memcpy(host, redis, (size_t)(colon - redis));
        host[colon - redis] = '\0';
        so.redis_host = host;
        so.redis_port = (int)port;
    }
    if (rpw_file != NULL) {
        size_t n = 0;

        if (tp_secret_file_read(rpw_file, rpw, sizeof(rpw) - 1, &n, &err) !=
            TP_OK) {
            rc = tp_cli_fail("redis password", &err);
            goto out;
        }
        rpw[n] = '\0';
        so.redis_password = rpw;
    }
    so.database = db;
    so.reload_interval = 3600;
    so.log = tp_cli_log;
    store = tp_store_new(&so, &err);
    if (store == NULL) {
        rc = tp_cli_fail("database", &err);
        goto out;
    }
    t0 = mono_seconds();
    while (mono_seconds() - t0 < (double)seconds) {
        stt = tp_store_verify(store, realm, username, password, tp_now(),
                              NULL, &err);
        if (stt != last) {
            if (stt == TP_OK)
                printf("t+%.3fs valid\n", mono_seconds() - t0);
            else
                printf("t+%.3fs %s: %s\n", mono_seconds() - t0,
                       tp_reason(stt), err.message);
            fflush(stdout);
            last = stt;
        }
        usleep(2000);
    }
    rc = last == TP_OK ? 0 : TP_CLI_EXIT_REFUSED;
out:
    tp_store_free(store);
    memset(pwbuf, 0, sizeof(pwbuf));
    memset(rpw, 0, sizeof(rpw));
    return rc;
}
