/*
 * turnpolicy.c - the turnpolicy command-line tool.
 *
 * Offline mode: everything is decided from the configuration file (realms,
 * secret files, allow-lists, JWT keys) with libturnpolicy; nothing here
 * talks to a network.  Each subcommand is a small function that parses its
 * own options, asks the library and prints a result.  The database
 * commands (realm, user, revoke, secret, usage, and issue against the
 * database) live in admin.c; `migrate` goes through the library.
 *
 * Exit codes: 0 success / valid / allowed, 1 invalid / denied (the reason
 * on stderr), 2 usage or configuration error.  Secrets, passwords and
 * tokens are never printed on stderr; the password given to `verify` or
 * `key` may be read from standard input ("-") to keep it out of ps(1).
 */
#include "turnpolicy.h"
#include "cli.h"
#include "admin.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unistd.h>

#define EXIT_INVALID 1
#define EXIT_USAGE 2
#define DEFAULT_CONFIG "/etc/turnpolicy/turnpolicy.conf"
#define MAX_URLS 16

static const char *config_path;

static void log_stderr(void *ud, tp_log_level level, const char *msg);

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
    "else " DEFAULT_CONFIG ".  `turnpolicy COMMAND --help` describes a "
    "command.\n"
    "Exit status: 0 success/valid/allowed, 1 invalid/denied, 2 usage or\n"
    "configuration error.\n"
    "Database commands use --database CONNINFO, else $TURNPOLICY_DATABASE,\n"
    "else the configuration's database_url.\n";

static int
fail_err(const char *what, const tp_error *err)
{
    fprintf(stderr, "turnpolicy: %s: %s\n", what,
            err->message[0] != '\0' ? err->message
                                    : tp_strerror(err->status));
    return EXIT_USAGE;
}

/* The configuration file: --config, else $TURNPOLICY_CONFIG, else the
 * default. */
static const char *
config_file(void)
{
    const char *path = config_path;

    if (path == NULL)
        path = getenv("TURNPOLICY_CONFIG");
    if (path == NULL || path[0] == '\0')
        path = DEFAULT_CONFIG;
    return path;
}

static int
load_config(tp_config **cfg)
{
    tp_error err;

    if (tp_config_load(config_file(), cfg, &err) != TP_OK)
        return fail_err("configuration", &err);
    return 0;
}

/* Nonzero when no configuration file was named and the default one does
 * not exist. */
static int
no_config_file(void)
{
    const char *env = getenv("TURNPOLICY_CONFIG");

    return config_path == NULL && (env == NULL || env[0] == '\0') &&
           access(DEFAULT_CONFIG, F_OK) != 0 && errno == ENOENT;
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

static tp_config *db_cfg; /* loaded by database_url(), freed at exit */

static void
free_db_cfg(void)
{
    tp_config_free(db_cfg);
    db_cfg = NULL;
}

/* The database connection string of a command without --database:
 * $TURNPOLICY_DATABASE, else the configuration's database_url.  NULL when
 * there is none (having said why on stderr if the configuration cannot be
 * read).  The string stays valid until exit. */
static const char *
database_url(void)
{
    const char *db = getenv("TURNPOLICY_DATABASE");

    if (db != NULL)
        return db;
    if (db_cfg == NULL) {
        if (load_config(&db_cfg) != 0)
            return NULL;
        atexit(free_db_cfg);
    }
    return tp_config_get(db_cfg, "", "database_url");
}

/* The realm to use: --realm, else the config's default_realm, else its
 * only [realm ...] section. */
static const char *
pick_realm(const tp_config *cfg, const char *realm)
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

/* Read a password or token given as "-" from stdin (first line). */
static int
read_stdin_arg(const char *arg, char *buf, size_t cap, const char **out)
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

/* Split the realm's "urls" value into at most MAX_URLS pointers into
 * store. */
static size_t
realm_urls(const tp_config *cfg, const char *realm, char *store, size_t cap,
           const char **urls)
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
    for (p = strtok_r(store, " \t,", &save); p != NULL && n < MAX_URLS;
         p = strtok_r(NULL, " \t,", &save))
        urls[n++] = p;
    return n;
}

/* ------------------------------------------------------------------ */

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

static int
cmd_issue(int argc, char **argv)
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
    const char *urls[MAX_URLS];
    char urlstore[4096];
    char json[8192];
    int64_t ttl = 0, now = tp_now();
    tp_config *cfg = NULL;
    tp_keyring *kr = NULL;
    tp_credential cred;
    tp_cred_json shape = TP_JSON_ICE;
    tp_turn_url native;
    tp_error err;
    size_t nurls, i;
    int c, rc = EXIT_USAGE, now_given = 0;

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
    if (db == NULL && no_config_file())
        db = getenv("TURNPOLICY_DATABASE");
    if (db == NULL) {
        if (load_config(&cfg) != 0)
            return EXIT_USAGE;
        if (!has_realm_section(cfg)) {
            db = getenv("TURNPOLICY_DATABASE");
            if (db == NULL)
                db = tp_config_get(cfg, "", "database_url");
        }
    }
    if (db != NULL) {
        if (realm == NULL && cfg == NULL && !no_config_file() &&
            load_config(&cfg) != 0)
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
    realm = pick_realm(cfg, realm);
    if (realm == NULL) {
        rc = tp_cli_usage_error(usage_issue, "--realm is required (the "
                         "configuration has several realms)");
        goto out;
    }
    kr = tp_keyring_from_config(cfg, realm, &err);
    if (kr == NULL) {
        rc = fail_err("realm", &err);
        goto out;
    }
    /* the realm's URLs must be usable before anything is issued */
    nurls = realm_urls(cfg, realm, urlstore, sizeof(urlstore), urls);
    for (i = 0; i < nurls; i++) {
        if (tp_turn_url_parse(urls[i], NULL, &err) != TP_OK) {
            rc = fail_err("urls", &err);
            goto out;
        }
    }
    if (strcmp(format, "plain") != 0 && shape == TP_JSON_ACS_NATIVE &&
        tp_native_turn(realm, urls, nurls, &native, &err) != TP_OK) {
        rc = fail_err("acs-native", &err);
        goto out;
    }
    if (tp_credential_issue(kr, user, (uint32_t)ttl, now, &cred, &err) !=
        TP_OK) {
        rc = fail_err("issue", &err);
        goto out;
    }
    if (strcmp(format, "plain") == 0) {
        printf("%s\n%s\n", cred.username, cred.password);
    } else {
        if (tp_credential_json_realm(&cred, realm, urls, nurls, shape, json,
                                     sizeof(json), NULL, &err) != TP_OK) {
            rc = fail_err("json", &err);
            goto out;
        }
        printf("%s\n", json);
    }
    rc = 0;
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
cmd_verify_or_key(int argc, char **argv, int key_mode)
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
    int c, rc = EXIT_USAGE;

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
        read_stdin_arg(password, pwbuf, sizeof(pwbuf), &password) != 0)
        return tp_cli_usage_error(usage, "cannot read the password from stdin");
    if (key_mode && password != NULL) {
        /* Pure derivation: no configuration needed. */
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required");
            goto out;
        }
        if (tp_longterm_key(username, realm, password, hexkey, &err) !=
            TP_OK) {
            rc = fail_err("key", &err);
            goto out;
        }
        printf("%s\n", hexkey);
        rc = 0;
        goto out;
    }
    /* The database (the library's store) when asked for, or when no realm
     * is configured but a database is - as for issue. */
    if (db == NULL && no_config_file())
        db = getenv("TURNPOLICY_DATABASE");
    if (db == NULL) {
        if (load_config(&cfg) != 0)
            goto out;
        if (!has_realm_section(cfg)) {
            db = getenv("TURNPOLICY_DATABASE");
            if (db == NULL)
                db = tp_config_get(cfg, "", "database_url");
        }
    }
    if (db != NULL) {
        tp_store_options so;
        tp_store_config hold;

        if (realm == NULL && cfg != NULL)
            realm = tp_config_get(cfg, "", "default_realm");
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required");
            goto out;
        }
        /* the file's store settings and JWT checks mean here what they
         * mean to turnpolicyd and nginx: the library maps them ([cli]) */
        memset(&so, 0, sizeof(so));
        memset(&hold, 0, sizeof(hold));
        if (cfg != NULL &&
            tp_store_options_from_config(cfg, "cli", &so, &hold, &err) !=
                TP_OK) {
            rc = fail_err("configuration", &err);
            goto out;
        }
        so.database = db;
        so.log = log_stderr;
        store = tp_store_new(&so, &err);
        tp_store_config_clear(&hold);
        if (store == NULL) {
            rc = fail_err("database", &err);
            goto out;
        }
        if (key_mode)
            st = tp_store_key(store, realm, username, now, hexkey, &u, &err);
        else
            st = tp_store_verify(store, realm, username, password, now, &u,
                                 &err);
    } else {
        realm = pick_realm(cfg, realm);
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage, "--realm is required (the "
                             "configuration has several realms)");
            goto out;
        }
        kr = tp_keyring_from_config(cfg, realm, &err);
        if (kr == NULL) {
            rc = fail_err("realm", &err);
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
        rc = EXIT_INVALID;
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

/* ------------------------------------------------------------------ */

static const char usage_jwt[] =
    "usage: turnpolicy jwt issue [--kid K] --sub S [--realm R] [--ttl S] "
    "[--now UNIX]\n"
    "       turnpolicy jwt verify [--now UNIX] TOKEN|-\n"
    "Issue a token with a key from the configuration (jwt_key.<kid>), or\n"
    "verify one: exit 0 and the claims as JSON if valid, 1 with the reason\n"
    "if not.  TOKEN - reads the token from standard input.\n";

static void
print_json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int
cmd_jwt(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kid", required_argument, NULL, 'k'},
        {"sub", required_argument, NULL, 's'},
        {"realm", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 't'},
        {"now", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    tp_jwt_issue_params ip;
    static char tokbuf[TP_JWT_MAX + 2];
    const char *sub_cmd, *token;
    int64_t now = tp_now(), ttl = 300;
    tp_jwt_keys *jk = NULL;
    tp_config *cfg = NULL;
    tp_jwt_claims cl;
    tp_error err;
    tp_status st;
    char *out = NULL;
    int c, rc = EXIT_USAGE;

    if (argc < 2) {
        if (argc == 1 || argv[1] == NULL)
            return tp_cli_usage_error(usage_jwt, "jwt needs issue or verify");
    }
    sub_cmd = argv[1];
    if (strcmp(sub_cmd, "--help") == 0 || strcmp(sub_cmd, "-h") == 0) {
        fputs(usage_jwt, stdout);
        return 0;
    }
    if (strcmp(sub_cmd, "issue") != 0 && strcmp(sub_cmd, "verify") != 0)
        return tp_cli_usage_error(usage_jwt, "unknown jwt command %s", sub_cmd);
    memset(&ip, 0, sizeof(ip));
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "k:s:r:t:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            ip.kid = optarg;
            break;
        case 's':
            ip.sub = optarg;
            break;
        case 'r':
            ip.realm = optarg;
            break;
        case 't':
            if (tp_cli_parse_int64(optarg, 1, 86400 * 366, &ttl) != 0)
                return tp_cli_usage_error(usage_jwt, "bad --ttl %s", optarg);
            break;
        case 'n':
            if (tp_cli_parse_int64(optarg, 1, INT64_MAX / 4, &now) != 0)
                return tp_cli_usage_error(usage_jwt, "bad --now %s", optarg);
            break;
        case 'h':
            fputs(usage_jwt, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage_jwt, "bad option");
        }
    }
    if (load_config(&cfg) != 0)
        return EXIT_USAGE;
    jk = tp_jwt_keys_from_config(cfg, &err);
    if (jk == NULL) {
        rc = fail_err("jwt keys", &err);
        goto out;
    }
    if (strcmp(sub_cmd, "issue") == 0) {
        if (ip.sub == NULL) {
            rc = tp_cli_usage_error(usage_jwt, "--sub is required");
            goto out;
        }
        ip.now = now;
        ip.ttl = (uint32_t)ttl;
        if (tp_jwt_issue(jk, &ip, &out, &err) != TP_OK) {
            rc = fail_err("jwt issue", &err);
            goto out;
        }
        printf("%s\n", out);
        rc = 0;
        goto out;
    }
    if (optind >= argc) {
        rc = tp_cli_usage_error(usage_jwt, "jwt verify needs a TOKEN (or -)");
        goto out;
    }
    if (read_stdin_arg(argv[optind], tokbuf, sizeof(tokbuf), &token) != 0) {
        rc = tp_cli_usage_error(usage_jwt, "cannot read the token from stdin");
        goto out;
    }
    st = tp_jwt_verify(jk, token, strlen(token), now, &cl, &err);
    if (st != TP_OK) {
        fprintf(stderr, "invalid: %s: %s\n", tp_reason(st), err.message);
        rc = EXIT_INVALID;
        goto out;
    }
    printf("{\"sub\":");
    print_json_str(cl.sub);
    printf(",\"realm\":");
    print_json_str(cl.realm);
    printf(",\"kid\":");
    print_json_str(cl.kid);
    printf(",\"alg\":\"%s\",\"exp\":%" PRId64 ",\"nbf\":%" PRId64
           ",\"iat\":%" PRId64 "}\n",
           tp_jwt_alg_name(cl.alg), cl.exp, cl.nbf, cl.iat);
    rc = 0;
out:
    tp_free(out);
    tp_jwt_keys_free(jk);
    tp_config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ */

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
    tp_store_options so;
    tp_error err;

    *cfg = NULL;
    *store = NULL;
    if (db == NULL && no_config_file())
        db = getenv("TURNPOLICY_DATABASE");
    if (db == NULL && !no_config_file()) {
        if (load_config(cfg) != 0)
            return EXIT_USAGE;
        if (!has_realm_section(*cfg)) {
            db = getenv("TURNPOLICY_DATABASE");
            if (db == NULL)
                db = tp_config_get(*cfg, "", "database_url");
        }
    }
    if (db == NULL)
        return 0;
    if (*realm == NULL && *cfg != NULL)
        *realm = tp_config_get(*cfg, "", "default_realm");
    if (*realm == NULL)
        return tp_cli_usage_error(usage, "--realm is required");
    memset(&so, 0, sizeof(so));
    so.database = db;
    so.log = log_stderr;
    *store = tp_store_new(&so, &err);
    if (*store == NULL)
        return fail_err("database", &err);
    return 0;
}

static const char usage_peer[] =
    "usage: turnpolicy peer-check [--realm R] [--database CONNINFO] ADDRESS\n"
    "Decide whether TURN may relay to ADDRESS (IPv4 or IPv6).  Without a\n"
    "realm (or without a configuration file) only the built-in default\n"
    "deny applies.  With a database (--database, or $TURNPOLICY_DATABASE /\n"
    "database_url when no realm is configured) the realm's rules are\n"
    "PostgreSQL's, as turnpolicyd sees them.  Exit 0 allowed, 1 denied.\n";

static int
cmd_peer_check(int argc, char **argv)
{
    const char *realm = NULL, *db = NULL;
    tp_config *cfg = NULL;
    tp_peerset *ps = NULL;
    tp_store *store = NULL;
    tp_peer_decision d;
    tp_addr addr;
    tp_error err;
    tp_status st = TP_OK;
    int c, rc = EXIT_USAGE;

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
        rc = EXIT_USAGE;
    }
    memset(&d, 0, sizeof(d));
    if (store != NULL) {
        st = tp_addr_parse(argv[optind], &addr, &err);
        if (st == TP_OK)
            st = tp_store_peer_check(store, realm, &addr, &d, &err);
    } else if (realm != NULL) {
        if (load_config(&cfg) != 0)
            return EXIT_USAGE;
        if (cfg == NULL && load_config(&cfg) != 0)
            goto out;
        ps = tp_peerset_from_config(cfg, realm, &err);
    } else {
        ps = tp_peerset_new(&err);
    }
    if (store == NULL && ps == NULL) {
        rc = fail_err("peers", &err);
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
        rc = EXIT_INVALID;
    } else {
        rc = fail_err("peer-check", &err);
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

static int
cmd_host_check(int argc, char **argv)
{
    const char *realm = NULL, *path = NULL, *db = NULL;
    tp_config *cfg = NULL;
    tp_hostlist *hl = NULL;
    tp_store *store = NULL;
    tp_host_match m;
    int64_t port = 0;
    tp_error err;
    tp_status st;
    int c, rc = EXIT_USAGE;

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
    rc = EXIT_USAGE;
    if (store != NULL) {
        st = tp_store_host_check(store, realm, argv[optind], (unsigned)port,
                                 path, &m, &err);
    } else {
        if (cfg == NULL && load_config(&cfg) != 0)
            goto out;
        realm = pick_realm(cfg, realm);
        if (realm == NULL) {
            rc = tp_cli_usage_error(usage_host, "--realm is required");
            goto out;
        }
        hl = tp_hostlist_from_config(cfg, realm, &err);
        if (hl == NULL) {
            rc = fail_err("hosts", &err);
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
        rc = EXIT_INVALID;
    } else {
        rc = fail_err("host-check", &err);
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

static int
cmd_coturn_peers(int argc, char **argv)
{
    const char *realm = NULL;
    tp_config *cfg = NULL;
    tp_peerset *ps = NULL;
    tp_error err;
    int c, rc = EXIT_USAGE;

    c = parse_realm_only(argc, argv, usage_coturn_peers, &realm, NULL);
    if (c >= 0)
        return c;
    if (realm != NULL) {
        if (load_config(&cfg) != 0)
            return EXIT_USAGE;
        ps = tp_peerset_from_config(cfg, realm, &err);
    } else {
        ps = tp_peerset_new(&err);
    }
    if (ps == NULL) {
        rc = fail_err("peers", &err);
        goto out;
    }
    if (tp_peerset_export_coturn(ps, TP_PEER_ALLOW, print_range,
                                 (void *)"allowed-peer-ip", &err) != TP_OK ||
        tp_peerset_export_coturn(ps, TP_PEER_DENY, print_range,
                                 (void *)"denied-peer-ip", &err) != TP_OK) {
        rc = fail_err("coturn-peers", &err);
        goto out;
    }
    rc = 0;
out:
    tp_peerset_free(ps);
    tp_config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ */

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

static int
cmd_watch(int argc, char **argv)
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
    int c, rc = EXIT_USAGE;

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
    if (read_stdin_arg(password, pwbuf, sizeof(pwbuf), &password) != 0)
        return tp_cli_usage_error(usage_watch, "cannot read the password");
    if (db == NULL)
        db = database_url();
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
            rc = fail_err("redis password", &err);
            goto out;
        }
        rpw[n] = '\0';
        so.redis_password = rpw;
    }
    so.database = db;
    so.reload_interval = 3600;
    so.log = log_stderr;
    store = tp_store_new(&so, &err);
    if (store == NULL) {
        rc = fail_err("database", &err);
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
    rc = last == TP_OK ? 0 : EXIT_INVALID;
out:
    tp_store_free(store);
    memset(pwbuf, 0, sizeof(pwbuf));
    memset(rpw, 0, sizeof(rpw));
    return rc;
}

#ifndef TP_SCHEMA_DIR
#define TP_SCHEMA_DIR "/usr/local/share/turnpolicy/schema"
#endif

/* Where migrate finds the schema without --schema-dir: $TP_SCHEMA_DIR;
 * else, for a binary in a build tree (BUILD/bin/turnpolicy, BUILD at
 * most three levels under the tree), that tree's schema/; else the
 * installed TP_SCHEMA_DIR.  The result is static. */
static const char *
default_schema_dir(void)
{
    static char dir[4096];
    char probe[4200];
    const char *env = getenv("TP_SCHEMA_DIR");
    ssize_t n;
    char *slash;
    int up;

    if (env != NULL && env[0] != '\0')
        return env;
    n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (n <= 0 || (size_t)n >= sizeof(dir) - 1)
        return TP_SCHEMA_DIR;
    dir[n] = '\0';
    for (up = 0; up < 4; up++) {
        slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            break;
        *slash = '\0';
        snprintf(probe, sizeof(probe), "%s/policy/include/turnpolicy.h",
                 dir);
        if (access(probe, R_OK) != 0)
            continue;
        snprintf(probe, sizeof(probe), "%s/schema/001_core.sql", dir);
        if (access(probe, R_OK) != 0)
            continue;
        if (strlen(dir) + sizeof("/schema") > sizeof(dir))
            break;
        strcat(dir, "/schema");
        return dir;
    }
    return TP_SCHEMA_DIR;
}

static const char usage_migrate[] =
    "usage: turnpolicy migrate [--database CONNINFO] [--schema-dir DIR] "
    "[--check]\n"
    "Apply the forward-only migrations in DIR (default: $TP_SCHEMA_DIR,\n"
    "else the schema/ of the source tree the binary was built in, else\n"
    TP_SCHEMA_DIR ")\n"
    "to the database: a libpq connection string or URI from --database,\n"
    "else $TURNPOLICY_DATABASE, else the configuration's database_url.\n"
    "Keep the password out of it (use a passfile=...).  Safe to re-run;\n"
    "refuses a changed, missing or half-applied set.  --check validates\n"
    "the files without a database.  Needs a role that may create schemas,\n"
    "roles and the pgcrypto extension.\n";

static void
log_stderr(void *ud, tp_log_level level, const char *msg)
{
    static const char *const names[] = {"error", "warning", "info",
                                        "debug"};

    (void)ud;
    if (level == TP_LOG_DEBUG && getenv("TURNPOLICY_DEBUG") == NULL)
        return;
    fprintf(stderr, "turnpolicy: %s: %s\n",
            (unsigned)level < 4 ? names[level] : "log", msg);
}

static int
cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"database", required_argument, NULL, 'd'},
        {"schema-dir", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db = NULL, *dir = default_schema_dir();
    int c, check_only = 0, applied = 0;
    tp_error err;

    while ((c = getopt_long(argc, argv, "d:s:ch", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 's':
            dir = optarg;
            break;
        case 'c':
            check_only = 1;
            break;
        case 'h':
            fputs(usage_migrate, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage_migrate, "bad option");
        }
    }
    if (check_only) {
        if (tp_db_migrations_check(dir, &applied, &err) != TP_OK)
            return fail_err("migrate", &err);
        printf("%d migrations in %s are well-formed\n", applied, dir);
        return 0;
    }
    if (db == NULL) {
        db = database_url();
        if (db == NULL)
            return tp_cli_usage_error(usage_migrate,
                                      "no database: use --database, "
                                      "$TURNPOLICY_DATABASE or database_url");
    }
    if (tp_db_migrate(db, dir, log_stderr, NULL, &applied, &err) != TP_OK)
        return fail_err("migrate", &err);
    printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------ */

static int
run_command(int argc, char **argv)
{
    int i = 1, rc;
    const char *cmd;

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
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
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    cmd = argv[i];
    argc -= i;
    argv += i;
    optind = 1;
    if (strcmp(cmd, "issue") == 0)
        return cmd_issue(argc, argv);
    if (strcmp(cmd, "verify") == 0)
        return cmd_verify_or_key(argc, argv, 0);
    if (strcmp(cmd, "key") == 0)
        return cmd_verify_or_key(argc, argv, 1);
    if (strcmp(cmd, "jwt") == 0)
        return cmd_jwt(argc, argv);
    if (strcmp(cmd, "peer-check") == 0)
        return cmd_peer_check(argc, argv);
    if (strcmp(cmd, "host-check") == 0)
        return cmd_host_check(argc, argv);
    if (strcmp(cmd, "coturn-peers") == 0)
        return cmd_coturn_peers(argc, argv);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc, argv);
    if (strcmp(cmd, "watch") == 0)
        return cmd_watch(argc, argv);
    rc = tp_cli_admin(cmd, argc, argv, database_url);
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
    return EXIT_USAGE;
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
        return rc == 0 ? EXIT_FAILURE : rc;
    }
    return rc;
}
