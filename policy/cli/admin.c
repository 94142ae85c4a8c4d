/*
 * admin.c - the turnpolicy CLI's database commands: realm add, user
 * add|disable|enable|list, revoke, secret rotate|retire|list, usage, and
 * `issue` against the database (tp_cli_db_issue).
 *
 * Each command parses its options, connects with libpq to the database
 * named by --database (else tp_cli_database_url(): $TURNPOLICY_DATABASE,
 * else the configuration's database_url), calls one function of the SQL
 * API (schema/002_api.sql) or runs one read-only query, and prints one
 * line per item, fields separated by a space.  Every statement goes
 * through PQexecParams with the user's input as parameters; every result
 * is checked for its status, row count and NULLs.  `realm add` is the
 * only command with two statements (create_realm, rotate_secret), run in
 * one transaction.
 *
 * Nothing secret is printed: the connection string (it may hold a
 * password) never appears in a message, secret bytes are never selected,
 * and a server error is reduced to its primary message and SQLSTATE on one
 * line (its DETAIL may echo a row).  The only secret that leaves is the
 * credential `issue` returns, printed on stdout by cli.c's
 * tp_cli_print_credential, which is the point of that command.
 *
 * Exit status: 0 success; 1 the database refused (SQLSTATE P0002 unknown
 * realm/user/kid, 23505 already exists, 55000 disabled user, killed realm,
 * no signing secret, retiring the signer); 2 usage, configuration,
 * connection, malformed input (22xxx), permission or any other error.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URLS_CAP 8192 /* 16 URLs of at most 255 bytes, newline-joined */
#define LINE_MAX_SHOWN 300

/* A timestamptz column as RFC 3339 UTC text, e.g. 2025-11-23T17:46:40Z. */
#define SQL_UTC(x)                                                          \
    "pg_catalog.to_char((" x ") AT TIME ZONE 'UTC', "                      \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Everything a database command may be given; unset fields are NULL/0. */
typedef struct args {
    const char *db;
    const char *realm;
    const char *user;
    const char *username;
    const char *kid;
    const char *since;
    const char *by;
    const char *name; /* the positional argument of `realm add` */
    const char *urls[TP_CLI_MAX_URLS];
    size_t nurls;
    int64_t ttl;
    int64_t max_ttl;
    int no_secret;
} args;

typedef int (*run_fn)(PGconn *c, const args *a);

/* One command: group ("user") and subcommand ("add", or NULL for commands
 * without one), the short letters of the options it takes, those it
 * requires, how many positional arguments, and its usage text. */
typedef struct command {
    const char *group;
    const char *sub;
    const char *allowed;
    const char *required;
    int positional;
    const char *usage;
    run_fn run;
} command;

/* Copy s into out (cap > 0 bytes) as one line of printable ASCII: other
 * bytes become spaces, runs of spaces collapse, at most LINE_MAX_SHOWN
 * bytes ("..." marks a cut). */
static void
one_line(char *out, size_t cap, const char *s)
{
    size_t n = 0, limit = cap - 1;

    if (limit > LINE_MAX_SHOWN)
        limit = LINE_MAX_SHOWN;
    for (; s != NULL && *s != '\0' && n < limit; s++) {
        char ch = (*s >= 0x20 && *s < 0x7f) ? *s : ' ';

        if (ch == ' ' && (n == 0 || out[n - 1] == ' '))
            continue;
        out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    if (s != NULL && *s != '\0' && n >= 3)
        memcpy(out + n - 3, "...", 3);
}

/* Exit status for a server error: 1 when the database refused the request
 * as such, 2 for everything else. */
static int
sqlstate_exit(const char *state)
{
    if (state != NULL &&
        (strcmp(state, "P0002") == 0 || strcmp(state, "23505") == 0 ||
         strcmp(state, "55000") == 0))
        return TP_CLI_EXIT_REFUSED;
    return TP_CLI_EXIT_USAGE;
}

/* Say on one line why what failed: the server's primary message and
 * SQLSTATE from r, else the connection's message.  Never the DETAIL (it
 * may echo a row) nor the connection string.  Returns the exit status. */
static int
db_fail(PGconn *c, const PGresult *r, const char *what)
{
    const char *msg = NULL, *state = NULL;
    char line[LINE_MAX_SHOWN + 1];

    if (r != NULL) {
        msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    }
    if (msg == NULL && c != NULL)
        msg = PQerrorMessage(c);
    one_line(line, sizeof(line), msg);
    if (line[0] == '\0')
        snprintf(line, sizeof(line), "%s", "unknown error (no message)");
    if (state != NULL)
        fprintf(stderr, "turnpolicy: %s: %s (SQLSTATE %s)\n", what, line,
                state);
    else
        fprintf(stderr, "turnpolicy: %s: %s\n", what, line);
    return sqlstate_exit(state);
}

/* Server NOTICEs and WARNINGs, one line each on stderr. */
static void
notice_receiver(void *ud, const PGresult *r)
{
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    char line[LINE_MAX_SHOWN + 1];

    (void)ud;
    one_line(line, sizeof(line),
             PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
    fprintf(stderr, "turnpolicy: server %s: %s\n",
            sev != NULL && strcmp(sev, "WARNING") == 0 ? "warning"
                                                       : "notice",
            line);
}

/* Connect to db (a connection string, URI or database name).  Returns the
 * connection, or NULL with the reason on stderr and *rc = 2.  The caller
 * PQfinish()es it. */
static PGconn *
db_connect(const char *db, int *rc)
{
    const char *keys[4], *vals[4];
    PQconninfoOption *parsed;
    char *perr = NULL;
    PGconn *c;
    int n = 0;

    *rc = TP_CLI_EXIT_USAGE;
    /* libpq's parse errors quote the string: say only that it is bad. */
    if (strchr(db, '=') != NULL || strncmp(db, "postgresql://", 13) == 0 ||
        strncmp(db, "postgres://", 11) == 0) {
        parsed = PQconninfoParse(db, &perr);
        if (parsed == NULL) {
            PQfreemem(perr);
            fputs("turnpolicy: the database connection string is "
                  "malformed (not shown: it may hold a password)\n",
                  stderr);
            return NULL;
        }
        PQconninfoFree(parsed);
    }
    if (getenv("PGCONNECT_TIMEOUT") == NULL) {
        keys[n] = "connect_timeout"; /* db's own setting overrides it */
        vals[n++] = "10";
    }
    keys[n] = "dbname";
    vals[n++] = db;
    keys[n] = "fallback_application_name";
    vals[n++] = "turnpolicy";
    keys[n] = NULL;
    vals[n] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        fputs("turnpolicy: cannot connect to PostgreSQL: out of memory\n",
              stderr);
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        db_fail(c, NULL, "cannot connect to PostgreSQL");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, notice_receiver, NULL);
    *rc = 0;
    return c;
}

/*
 * Run sql with n text parameters (a NULL value is SQL NULL).  Returns the
 * result, which has at least min_rows and at most max_rows rows, or NULL
 * with the reason on stderr (what names the action) and *rc set.  The
 * caller PQclear()s it.
 */
static PGresult *
db_query(PGconn *c, const char *sql, int n, const char *const *vals,
         int min_rows, int max_rows, const char *what, int *rc)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rows;

    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        *rc = db_fail(c, r, what);
        PQclear(r);
        return NULL;
    }
    rows = PQntuples(r);
    if (rows < min_rows || (max_rows >= 0 && rows > max_rows)) {
        fprintf(stderr, "turnpolicy: %s: unexpected reply from the "
                "database (%d rows)\n", what, rows);
        *rc = TP_CLI_EXIT_USAGE;
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Run a statement without parameters or rows (BEGIN, COMMIT). */
static int
db_command(PGconn *c, const char *sql, const char *what)
{
    int rc = 0;
    PGresult *r = db_query(c, sql, 0, NULL, 0, 0, what, &rc);

    PQclear(r);
    return r != NULL ? 0 : rc;
}

/* The value at (row, col), or NULL after saying so on stderr when it is
 * NULL but must not be. */
static const char *
need_value(const PGresult *r, int row, int col, const char *what)
{
    if (col >= PQnfields(r) || PQgetisnull(r, row, col)) {
        fprintf(stderr, "turnpolicy: %s: unexpected NULL from the "
                "database (row %d, column %d)\n", what, row, col);
        return NULL;
    }
    return PQgetvalue(r, row, col);
}

/* The boolean a function returned: 1 true, 0 false, -1 (said on stderr)
 * anything else. */
static int
need_bool(const PGresult *r, const char *what)
{
    const char *v = need_value(r, 0, 0, what);

    if (v == NULL)
        return -1;
    if (strcmp(v, "t") == 0)
        return 1;
    if (strcmp(v, "f") == 0)
        return 0;
    fprintf(stderr, "turnpolicy: %s: unexpected reply from the database\n",
            what);
    return -1;
}

/* Print the rows of r, every column NOT NULL, space-separated. */
static int
print_rows(const PGresult *r, const char *what)
{
    int i, j, cols = PQnfields(r);
    const char *v;

    for (i = 0; i < PQntuples(r); i++) {
        for (j = 0; j < cols; j++) {
            v = need_value(r, i, j, what);
            if (v == NULL)
                return TP_CLI_EXIT_USAGE;
            printf("%s%s", j > 0 ? " " : "", v);
        }
        putchar('\n');
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* realm                                                               */
/* ------------------------------------------------------------------ */

static const char usage_realm[] =
    "usage: turnpolicy realm add NAME [--ttl S] [--max-ttl S] "
    "[--url URL]... [--no-secret]\n"
    "                            [--database CONNINFO]\n"
    "Create a realm (turnpolicy.create_realm) and its first signing secret\n"
    "(turnpolicy.rotate_secret) in one transaction, and print the secret's\n"
    "kid.  --ttl is the default credential lifetime (default min(3600,\n"
    "max-ttl)), --max-ttl the longest (default 86400, at most 604800);\n"
    "each --url adds a TURN URI handed out with credentials (at most 16).\n"
    "--no-secret creates no secret (add one later with secret rotate).\n"
    "The database is --database, else $TURNPOLICY_DATABASE, else the\n"
    "configuration's database_url.  Exit 1 if the realm exists, 2 for\n"
    "bad values (nothing is written then).\n";

static int
run_realm_add(PGconn *c, const args *a)
{
    char ttl[24], max_ttl[24], urls[URLS_CAP];
    const char *vals[4];
    const char *kid = NULL;
    char kidbuf[TP_KID_MAX + 1];
    PGresult *r = NULL;
    size_t i, off = 0, len;
    int64_t max = a->max_ttl != 0 ? a->max_ttl : 86400;
    int64_t def = a->ttl != 0 ? a->ttl : (max < 3600 ? max : 3600);
    int rc = TP_CLI_EXIT_USAGE;

    for (i = 0; i < a->nurls; i++) {
        len = strlen(a->urls[i]);
        if (off + len + 2 > sizeof(urls))
            return tp_cli_usage_error(usage_realm,
                                      "the --url values are too long");
        if (i > 0)
            urls[off++] = '\n';
        memcpy(urls + off, a->urls[i], len);
        off += len;
    }
    urls[off] = '\0';
    snprintf(ttl, sizeof(ttl), "%" PRId64, def);
    snprintf(max_ttl, sizeof(max_ttl), "%" PRId64, max);
    vals[0] = a->name;
    vals[1] = ttl;
    vals[2] = max_ttl;
    vals[3] = a->nurls > 0 ? urls : NULL;
    if (db_command(c, "BEGIN", "realm add") != 0)
        return TP_CLI_EXIT_USAGE;
    r = db_query(c,
                 "SELECT turnpolicy.create_realm(name => $1, "
                 "default_ttl => $2::integer, max_ttl => $3::integer, "
                 "turn_urls => COALESCE(pg_catalog.string_to_array("
                 "$4::text, E'\\n'), '{}'::text[]))",
                 4, vals, 1, 1, "realm add", &rc);
    if (r == NULL)
        goto out;
    PQclear(r);
    r = NULL;
    if (!a->no_secret) {
        r = db_query(c, "SELECT turnpolicy.rotate_secret($1)", 1, vals, 1,
                     1, "realm add: first secret", &rc);
        if (r == NULL)
            goto out;
        kid = need_value(r, 0, 0, "realm add: first secret");
        if (kid == NULL || strlen(kid) > TP_KID_MAX) {
            if (kid != NULL)
                fputs("turnpolicy: realm add: unexpected kid from the "
                      "database\n", stderr);
            rc = TP_CLI_EXIT_USAGE;
            goto out;
        }
        memcpy(kidbuf, kid, strlen(kid) + 1);
        kid = kidbuf;
    }
    rc = db_command(c, "COMMIT", "realm add");
    if (rc == 0 && kid != NULL)
        printf("%s\n", kid);
out:
    PQclear(r);
    if (rc != 0 && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexecParams(c, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
    return rc;
}

/* ------------------------------------------------------------------ */
/* user                                                                */
/* ------------------------------------------------------------------ */

static const char usage_user[] =
    "usage: turnpolicy user add --realm R --user U [--database CONNINFO]\n"
    "       turnpolicy user disable --realm R --user U\n"
    "       turnpolicy user enable --realm R --user U\n"
    "       turnpolicy user list --realm R\n"
    "add creates an active user (turnpolicy.create_user); disable stops\n"
    "the user's credentials from verifying; enable undoes it (not a\n"
    "revoke).  list prints one line per user: USER_ID STATUS CREATED_AT\n"
    "(UTC).  Exit 1 for an unknown realm or user or an existing user, 2\n"
    "for an invalid user id.  The database is --database, else\n"
    "$TURNPOLICY_DATABASE, else the configuration's database_url.\n";

static int
run_user_add(PGconn *c, const args *a)
{
    const char *vals[2] = {a->realm, a->user};
    int rc = 0;
    PGresult *r = db_query(c, "SELECT turnpolicy.create_user($1, $2)", 2,
                           vals, 1, 1, "user add", &rc);

    if (r == NULL)
        return rc;
    PQclear(r);
    printf("user %s added\n", a->user);
    return 0;
}

/* disable (enable == 0) or enable a user. */
static int
set_user_status(PGconn *c, const args *a, int enable)
{
    const char *vals[2] = {a->realm, a->user};
    const char *what = enable ? "user enable" : "user disable";
    const char *word = enable ? "enabled" : "disabled";
    int rc = 0, changed;
    PGresult *r = db_query(c,
                           enable ? "SELECT turnpolicy.enable_user($1, $2)"
                                  : "SELECT turnpolicy.disable_user($1, $2)",
                           2, vals, 1, 1, what, &rc);

    if (r == NULL)
        return rc;
    changed = need_bool(r, what);
    PQclear(r);
    if (changed < 0)
        return TP_CLI_EXIT_USAGE;
    printf("user %s %s%s\n", a->user, changed ? "" : "was already ", word);
    return 0;
}

static int
run_user_disable(PGconn *c, const args *a)
{
    return set_user_status(c, a, 0);
}

static int
run_user_enable(PGconn *c, const args *a)
{
    return set_user_status(c, a, 1);
}

/* Print "realm 'R' does not exist" the way the SQL API words it. */
static int
no_realm(const char *realm, const char *what)
{
    char shown[LINE_MAX_SHOWN + 1];

    one_line(shown, sizeof(shown), realm);
    fprintf(stderr, "turnpolicy: %s: realm '%.64s' does not exist\n", what,
            shown);
    return TP_CLI_EXIT_REFUSED;
}

/* Run sql, a list of the realm's items ($1) as `realm LEFT JOIN items`:
 * one row per item, or one row of NULLs for a realm without any, or none
 * for an unknown realm (exit 1).  Prints the rows; returns the exit
 * status. */
static int
list_in_realm(PGconn *c, const char *sql, const char *realm,
              const char *what)
{
    const char *vals[1] = {realm};
    int rc = 0;
    PGresult *r = db_query(c, sql, 1, vals, 0, -1, what, &rc);

    if (r == NULL)
        return rc;
    if (PQntuples(r) == 0)
        rc = no_realm(realm, what);
    else if (!(PQntuples(r) == 1 && PQgetisnull(r, 0, 0)))
        rc = print_rows(r, what);
    PQclear(r);
    return rc;
}

static int
run_user_list(PGconn *c, const args *a)
{
    return list_in_realm(c,
                         "SELECT u.user_id, u.status, "
                         SQL_UTC("u.created_at")
                         " FROM turnpolicy.realms AS r"
                         " LEFT JOIN turnpolicy.users AS u"
                         " ON u.realm = r.name"
                         " WHERE r.name = $1 ORDER BY u.user_id",
                         a->realm, "user list");
}

/* ------------------------------------------------------------------ */
/* revoke                                                              */
/* ------------------------------------------------------------------ */

static const char usage_revoke[] =
    "usage: turnpolicy revoke --realm R --user U [--database CONNINFO]\n"
    "       turnpolicy revoke --realm R --username USERNAME\n"
    "--user revokes every credential issued to the user until now\n"
    "(turnpolicy.revoke_user; the user stays active and may get new ones).\n"
    "--username revokes one credential by its exact TURN username\n"
    "(turnpolicy.revoke_credential; idempotent).  Exit 1 for an unknown\n"
    "realm or user, 2 for a malformed username.  The database is\n"
    "--database, else $TURNPOLICY_DATABASE, else the configuration's\n"
    "database_url.\n";

static int
run_revoke(PGconn *c, const args *a)
{
    const char *vals[2] = {a->realm, a->user != NULL ? a->user
                                                     : a->username};
    const char *v;
    int rc = 0, changed;
    PGresult *r;

    if (a->user != NULL) {
        r = db_query(c,
                     "SELECT " SQL_UTC("t") " FROM "
                     "turnpolicy.revoke_user($1, $2) AS t",
                     2, vals, 1, 1, "revoke", &rc);
        if (r == NULL)
            return rc;
        v = need_value(r, 0, 0, "revoke");
        if (v != NULL)
            printf("user %s revoked: credentials issued before %s\n",
                   a->user, v);
        PQclear(r);
        return v != NULL ? 0 : TP_CLI_EXIT_USAGE;
    }
    r = db_query(c, "SELECT turnpolicy.revoke_credential($1, $2)", 2, vals,
                 1, 1, "revoke", &rc);
    if (r == NULL)
        return rc;
    changed = need_bool(r, "revoke");
    PQclear(r);
    if (changed < 0)
        return TP_CLI_EXIT_USAGE;
    printf("%s %s\n", changed ? "revoked" : "already revoked", a->username);
    return 0;
}

/* ------------------------------------------------------------------ */
/* secret                                                              */
/* ------------------------------------------------------------------ */

static const char usage_secret[] =
    "usage: turnpolicy secret rotate --realm R [--database CONNINFO]\n"
    "       turnpolicy secret retire --realm R --kid K\n"
    "       turnpolicy secret list --realm R\n"
    "rotate creates a new random signing secret, demotes the previous one\n"
    "to verify-only and prints the new kid (turnpolicy.rotate_secret).\n"
    "retire erases a verify-only secret once max_ttl has passed since the\n"
    "rotation.  list prints KID STATE CREATED_AT (UTC), never the secret.\n"
    "Exit 1 for an unknown realm or kid or retiring the signing secret.\n"
    "The database is --database, else $TURNPOLICY_DATABASE, else the\n"
    "configuration's database_url.\n";

static int
run_secret_rotate(PGconn *c, const args *a)
{
    const char *vals[1] = {a->realm};
    const char *kid;
    int rc = 0;
    PGresult *r = db_query(c, "SELECT turnpolicy.rotate_secret($1)", 1, vals,
                           1, 1, "secret rotate", &rc);

    if (r == NULL)
        return rc;
    kid = need_value(r, 0, 0, "secret rotate");
    if (kid != NULL)
        printf("%s\n", kid);
    PQclear(r);
    return kid != NULL ? 0 : TP_CLI_EXIT_USAGE;
}

static int
run_secret_retire(PGconn *c, const args *a)
{
    const char *vals[2] = {a->realm, a->kid};
    int rc = 0, changed;
    PGresult *r = db_query(c, "SELECT turnpolicy.retire_secret($1, $2)", 2,
                           vals, 1, 1, "secret retire", &rc);

    if (r == NULL)
        return rc;
    changed = need_bool(r, "secret retire");
    PQclear(r);
    if (changed < 0)
        return TP_CLI_EXIT_USAGE;
    printf("secret %s %sretired\n", a->kid, changed ? "" : "was already ");
    return 0;
}

static int
run_secret_list(PGconn *c, const args *a)
{
    /* Only the columns turnpolicy_admin may read; never s.secret. */
    return list_in_realm(c,
                         "SELECT s.kid, s.state, " SQL_UTC("s.created_at")
                         " FROM turnpolicy.realms AS r"
                         " LEFT JOIN turnpolicy.secrets AS s"
                         " ON s.realm = r.name"
                         " WHERE r.name = $1 ORDER BY s.created_at, s.kid",
                         a->realm, "secret list");
}

/* ------------------------------------------------------------------ */
/* usage                                                               */
/* ------------------------------------------------------------------ */

static const char usage_usage[] =
    "usage: turnpolicy usage [--realm R] [--user U] [--since TIME] "
    "[--by user|realm]\n"
    "                        [--database CONNINFO]\n"
    "Totals of the finished TURN sessions in turnpolicy.usage that started\n"
    "at or after TIME (a PostgreSQL timestamp such as 2025-11-01 or\n"
    "'2025-11-01 12:00Z', or Unix seconds), one line per user:\n"
    "  REALM USER_ID SESSIONS BYTES_IN BYTES_OUT SECONDS\n"
    "or with --by realm one line per realm:\n"
    "  REALM USERS SESSIONS BYTES_IN BYTES_OUT SECONDS\n"
    "The database is --database, else $TURNPOLICY_DATABASE, else the\n"
    "configuration's database_url.\n";

#define USAGE_WHERE                                                         \
    " FROM turnpolicy.usage AS u"                                           \
    " WHERE ($1::text IS NULL OR u.realm = $1::text)"                       \
    " AND ($2::text IS NULL OR u.user_id = $2::text)"                       \
    " AND ($3::timestamptz IS NULL OR u.started_at >= $3::timestamptz)"     \
    " AND ($4::bigint IS NULL"                                              \
    " OR u.started_at >= pg_catalog.to_timestamp($4::bigint))"

#define USAGE_SUMS                                                          \
    "pg_catalog.count(*), pg_catalog.sum(u.bytes_in), "                     \
    "pg_catalog.sum(u.bytes_out), pg_catalog.round(pg_catalog.sum("        \
    "EXTRACT(epoch FROM u.ended_at - u.started_at)))::bigint"

static int
run_usage(PGconn *c, const args *a)
{
    const char *vals[4] = {a->realm, a->user, NULL, NULL};
    const char *p;
    int rc = 0, by_realm = a->by != NULL && strcmp(a->by, "realm") == 0;
    PGresult *r;

    if (a->since != NULL) {
        for (p = a->since; *p >= '0' && *p <= '9'; p++)
            ;
        vals[*p == '\0' && p != a->since ? 3 : 2] = a->since;
    }
    if (by_realm)
        r = db_query(c,
                     "SELECT u.realm, pg_catalog.count(DISTINCT u.user_id), "
                     USAGE_SUMS USAGE_WHERE
                     " GROUP BY u.realm ORDER BY u.realm",
                     4, vals, 0, -1, "usage", &rc);
    else
        r = db_query(c,
                     "SELECT u.realm, u.user_id, " USAGE_SUMS USAGE_WHERE
                     " GROUP BY u.realm, u.user_id"
                     " ORDER BY u.realm, u.user_id",
                     4, vals, 0, -1, "usage", &rc);
    if (r == NULL)
        return rc;
    rc = print_rows(r, "usage");
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* issue                                                               */
/* ------------------------------------------------------------------ */

/* Fill cred from row 0 of an issue_credential result (username, password,
 * ttl, expires epoch) and urls (at most TP_CLI_MAX_URLS pointers into r)
 * from column 4 of every row.  Returns 0, or 2 after saying why. */
static int
credential_from_row(const PGresult *r, tp_credential *cred,
                    const char **urls, size_t *nurls)
{
    const char *user, *pw, *ttl, *exp;
    int64_t t, e;
    tp_username u;
    tp_error err;
    int i;

    user = need_value(r, 0, 0, "issue");
    pw = need_value(r, 0, 1, "issue");
    ttl = need_value(r, 0, 2, "issue");
    exp = need_value(r, 0, 3, "issue");
    if (user == NULL || pw == NULL || ttl == NULL || exp == NULL)
        return TP_CLI_EXIT_USAGE;
    if (strlen(user) > TP_USERNAME_MAX || strlen(pw) != TP_PASSWORD_LEN ||
        tp_cli_parse_int64(ttl, 1, TP_TTL_MAX, &t) != 0 ||
        tp_cli_parse_int64(exp, 1, INT64_MAX / 4, &e) != 0) {
        fputs("turnpolicy: issue: unexpected credential from the "
              "database\n", stderr);
        return TP_CLI_EXIT_USAGE;
    }
    memcpy(cred->username, user, strlen(user) + 1);
    memcpy(cred->password, pw, TP_PASSWORD_LEN + 1);
    cred->ttl = (uint32_t)t;
    cred->expires = e;
    cred->issued = e - t;
    if (tp_username_parse(user, &u, &err) == TP_OK && u.form == TP_FORM_V1)
        cred->issued = u.issued;
    *nurls = 0;
    for (i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 4))
            continue;
        if (*nurls == TP_CLI_MAX_URLS) {
            fputs("turnpolicy: issue: more TURN URLs than the CLI "
                  "handles\n", stderr);
            return TP_CLI_EXIT_USAGE;
        }
        urls[(*nurls)++] = PQgetvalue(r, i, 4);
    }
    return 0;
}

int
tp_cli_db_issue(const char *db, const char *realm, const char *user,
                int64_t ttl, const char *format, int64_t now)
{
    char ttlbuf[24], nowbuf[24];
    const char *vals[4];
    const char *urls[TP_CLI_MAX_URLS];
    size_t nurls = 0;
    tp_credential cred;
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc;

    memset(&cred, 0, sizeof(cred));
    snprintf(ttlbuf, sizeof(ttlbuf), "%" PRId64, ttl);
    snprintf(nowbuf, sizeof(nowbuf), "%" PRId64, now);
    vals[0] = realm;
    vals[1] = user;
    vals[2] = ttl > 0 ? ttlbuf : NULL;
    vals[3] = nowbuf;
    c = db_connect(db, &rc);
    if (c == NULL)
        return rc;
    /* One row per URL (one row with a NULL url when there are none); the
     * function in FROM runs once. */
    if (now > 0)
        r = db_query(c,
                     "SELECT c.username, c.password, c.ttl,"
                     " EXTRACT(epoch FROM c.expires_at)::bigint, x.url"
                     " FROM turnpolicy.issue_credential_at($1, $2,"
                     " $3::integer, pg_catalog.to_timestamp($4::bigint))"
                     " AS c LEFT JOIN LATERAL pg_catalog.unnest(c.urls)"
                     " WITH ORDINALITY AS x(url, i) ON true ORDER BY x.i",
                     4, vals, 1, TP_CLI_MAX_URLS, "issue", &rc);
    else
        r = db_query(c,
                     "SELECT c.username, c.password, c.ttl,"
                     " EXTRACT(epoch FROM c.expires_at)::bigint, x.url"
                     " FROM turnpolicy.issue_credential($1, $2, $3::integer)"
                     " AS c LEFT JOIN LATERAL pg_catalog.unnest(c.urls)"
                     " WITH ORDINALITY AS x(url, i) ON true ORDER BY x.i",
                     3, vals, 1, TP_CLI_MAX_URLS, "issue", &rc);
    if (r == NULL)
        goto out;
    rc = credential_from_row(r, &cred, urls, &nurls);
    if (rc == 0)
        rc = tp_cli_print_credential(&cred, realm, urls, nurls, format);
out:
    memset(&cred, 0, sizeof(cred));
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */
/* ------------------------------------------------------------------ */

static const command commands[] = {
    {"realm", "add", "tmlnd", "", 1, usage_realm, run_realm_add},
    {"user", "add", "rud", "ru", 0, usage_user, run_user_add},
    {"user", "disable", "rud", "ru", 0, usage_user, run_user_disable},
    {"user", "enable", "rud", "ru", 0, usage_user, run_user_enable},
    {"user", "list", "rd", "r", 0, usage_user, run_user_list},
    {"revoke", NULL, "ruUd", "r", 0, usage_revoke, run_revoke},
    {"secret", "rotate", "rd", "r", 0, usage_secret, run_secret_rotate},
    {"secret", "retire", "rkd", "rk", 0, usage_secret, run_secret_retire},
    {"secret", "list", "rd", "r", 0, usage_secret, run_secret_list},
    {"usage", NULL, "rusbd", "", 0, usage_usage, run_usage},
};

static const struct option all_opts[] = {
    {"database", required_argument, NULL, 'd'},
    {"realm", required_argument, NULL, 'r'},
    {"user", required_argument, NULL, 'u'},
    {"username", required_argument, NULL, 'U'},
    {"kid", required_argument, NULL, 'k'},
    {"ttl", required_argument, NULL, 't'},
    {"max-ttl", required_argument, NULL, 'm'},
    {"url", required_argument, NULL, 'l'},
    {"no-secret", no_argument, NULL, 'n'},
    {"since", required_argument, NULL, 's'},
    {"by", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* The long name of the option with short letter ch. */
static const char *
opt_name(int ch)
{
    const struct option *o;

    for (o = all_opts; o->name != NULL; o++)
        if (o->val == ch)
            return o->name;
    return "?";
}

/* Parse cmd's options into a.  Returns -1 to go on, else an exit
 * status (help printed: 0; usage error: 2). */
static int
parse_args(const command *cmd, int argc, char **argv, args *a)
{
    const char *req;
    int c;

    memset(a, 0, sizeof(*a));
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:r:u:U:k:t:m:l:ns:b:h", all_opts,
                            NULL)) != -1) {
        if (c == 'h') {
            fputs(cmd->usage, stdout);
            return 0;
        }
        if (c == '?' || c == ':' || strchr(cmd->allowed, c) == NULL)
            return tp_cli_usage_error(cmd->usage, "bad option%s%s",
                               c == '?' || c == ':' ? "" : " --",
                               c == '?' || c == ':' ? "" : opt_name(c));
        switch (c) {
        case 'd':
            a->db = optarg;
            break;
        case 'r':
            a->realm = optarg;
            break;
        case 'u':
            a->user = optarg;
            break;
        case 'U':
            a->username = optarg;
            break;
        case 'k':
            a->kid = optarg;
            break;
        case 't':
            if (tp_cli_parse_int64(optarg, 1, TP_TTL_MAX, &a->ttl) != 0)
                return tp_cli_usage_error(cmd->usage, "bad --ttl %s", optarg);
            break;
        case 'm':
            if (tp_cli_parse_int64(optarg, 1, TP_TTL_MAX, &a->max_ttl) != 0)
                return tp_cli_usage_error(cmd->usage, "bad --max-ttl %s",
                                          optarg);
            break;
        case 'l':
            if (a->nurls == TP_CLI_MAX_URLS)
                return tp_cli_usage_error(cmd->usage, "at most %d --url",
                                   TP_CLI_MAX_URLS);
            if (strpbrk(optarg, "\r\n") != NULL)
                return tp_cli_usage_error(cmd->usage,
                                          "a --url must not contain "
                                   "a line break");
            a->urls[a->nurls++] = optarg;
            break;
        case 'n':
            a->no_secret = 1;
            break;
        case 's':
            a->since = optarg;
            break;
        case 'b':
            if (strcmp(optarg, "user") != 0 && strcmp(optarg, "realm") != 0)
                return tp_cli_usage_error(cmd->usage, "--by is user or realm");
            a->by = optarg;
            break;
        default:
            return tp_cli_usage_error(cmd->usage, "bad option");
        }
    }
    if (argc - optind > cmd->positional)
        return tp_cli_usage_error(cmd->usage, "unexpected argument %s",
                           argv[optind + cmd->positional]);
    if (argc - optind < cmd->positional)
        return tp_cli_usage_error(cmd->usage, "NAME is required");
    if (cmd->positional > 0)
        a->name = argv[optind];
    if (strchr(cmd->allowed, 'U') != NULL &&
        (a->user == NULL) == (a->username == NULL))
        return tp_cli_usage_error(cmd->usage, "give exactly one of --user and "
                           "--username");
    for (req = cmd->required; *req != '\0'; req++) {
        if ((*req == 'r' && a->realm == NULL) ||
            (*req == 'u' && a->user == NULL) ||
            (*req == 'k' && a->kid == NULL))
            return tp_cli_usage_error(cmd->usage, "--%s is required",
                               opt_name(*req));
    }
    return -1;
}

int
tp_cli_admin(const char *name, int argc, char **argv)
{
    const command *cmd = NULL, *group = NULL;
    const char *db;
    PGconn *c;
    args a;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].group, name) == 0) {
            group = &commands[i];
            break;
        }
    }
    if (group == NULL)
        return -1;
    if (group->sub == NULL) {
        cmd = group;
    } else {
        if (argc < 2)
            return tp_cli_usage_error(group->usage, "%s needs a command",
                                      name);
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
            fputs(group->usage, stdout);
            return 0;
        }
        for (; i < sizeof(commands) / sizeof(commands[0]) &&
               strcmp(commands[i].group, name) == 0;
             i++) {
            if (strcmp(commands[i].sub, argv[1]) == 0) {
                cmd = &commands[i];
                break;
            }
        }
        if (cmd == NULL)
            return tp_cli_usage_error(group->usage,
                                      "unknown %s command %s", name,
                               argv[1]);
        argc--;
        argv++;
    }
    rc = parse_args(cmd, argc, argv, &a);
    if (rc >= 0)
        return rc;
    db = a.db != NULL ? a.db : tp_cli_database_url();
    if (db == NULL)
        return tp_cli_usage_error(cmd->usage, "no database: use --database, "
                           "$TURNPOLICY_DATABASE or database_url");
    c = db_connect(db, &rc);
    if (c == NULL)
        return rc;
    rc = cmd->run(c, &a);
    PQfinish(c);
    return rc;
}
