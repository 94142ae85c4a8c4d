/*
 * migrate.c - applies the forward-only SQL migrations in schema/ to a
 * PostgreSQL database and records what it applied.
 *
 * Why a tool of our own: the schema is the product's API (users provision
 * with SQL), so upgrades must be exact and repeatable.  Each migration
 * file runs in one transaction together with the row recording it in
 * turnpolicy.schema_migrations (version, name, sha256), so a file is
 * either fully applied and recorded or not at all.
 *
 * Invariants checked before anything is applied (TP_EMIGRATION):
 *   - file names are NNN_name.sql with unique versions;
 *   - every recorded version has its file, with the same sha256 (an
 *     applied migration is never edited; a database newer than this tool
 *     is never "downgraded");
 *   - the recorded versions are exactly the first k files (no gaps).
 * Runs hold a session advisory lock, so two migrators never interleave.
 *
 * Workload: a few files, once per deployment; blocking libpq calls are
 * fine here and must never be used on a request path.  SQL other than the
 * migration files themselves is parameterized.
 */
#include "tp_internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#define MIGRATION_FILE_MAX (4 * 1024 * 1024)
#define MIGRATIONS_MAX 1000
#define MIGRATION_NAME_MAX 128
/* pg_advisory_lock key: "turnpoli" as a big-endian int64. */
#define MIGRATE_LOCK_KEY "8391166396591335785"

typedef struct migration {
    long version;
    char name[MIGRATION_NAME_MAX]; /* file name, e.g. "001_core.sql" */
    char sha256[65];
} migration;

typedef struct migration_set {
    migration *m;
    size_t n;
} migration_set;

static void
logf_(tp_log_fn log, void *ud, tp_log_level lvl, const char *fmt, ...)
    TP__PRINTF(4, 5);

static void
logf_(tp_log_fn log, void *ud, tp_log_level lvl, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log(ud, lvl, msg);
}

/* NNN_name.sql -> version, or -1 if the name does not follow that. */
static long
parse_name(const char *name)
{
    size_t i = 0, len = strlen(name);
    long v = 0;

    if (len < 7 || len >= MIGRATION_NAME_MAX ||
        strcmp(name + len - 4, ".sql") != 0)
        return -1;
    while (name[i] >= '0' && name[i] <= '9') {
        if (v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
        i++;
    }
    if (i == 0 || v == 0 || name[i] != '_' || i + 1 >= len - 4)
        return -1;
    for (i++; i < len - 4; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return -1;
    }
    return v;
}

static int
cmp_migration(const void *a, const void *b)
{
    const migration *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

static tp_status
sha256_hex(const char *buf, size_t len, char out[65], tp_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;

    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32)
        return tp__fail(err, TP_ECRYPTO, "SHA-256 failed");
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return TP_OK;
}

static tp_status
read_migration(const char *dir, const char *name, char **buf, size_t *len,
               tp_error *err)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= sizeof(path))
        return tp__fail(err, TP_EIO, "schema path is too long");
    return tp__read_file(path, MIGRATION_FILE_MAX, 0, buf, len, err);
}

/* Scan dir into a sorted set with content hashes. */
static tp_status
scan_dir(const char *dir, migration_set *set, tp_error *err)
{
    struct dirent *de;
    tp_status st = TP_OK;
    char shown[128];
    size_t i, cap = 0;
    DIR *dp;

    set->m = NULL;
    set->n = 0;
    tp__printable(shown, sizeof(shown), dir, 100);
    dp = opendir(dir);
    if (dp == NULL)
        return tp__fail(err, TP_EIO, "cannot open schema directory %s: %s",
                        shown, strerror(errno));
    while ((de = readdir(dp)) != NULL) {
        size_t nl = strlen(de->d_name);
        char *text;
        size_t len;
        long v;

        if (nl < 4 || strcmp(de->d_name + nl - 4, ".sql") != 0)
            continue;
        v = parse_name(de->d_name);
        if (v < 0) {
            char fn[80];

            tp__printable(fn, sizeof(fn), de->d_name, 64);
            st = tp__fail(err, TP_EMIGRATION, "%s/%s: migration files must "
                          "be named NNN_name.sql (NNN > 0; name of letters, "
                          "digits, '_' and '-')", shown, fn);
            goto out;
        }
        if (set->n == MIGRATIONS_MAX) {
            st = tp__fail(err, TP_EMIGRATION, "%s holds more than %d "
                          "migrations", shown, MIGRATIONS_MAX);
            goto out;
        }
        if (set->n == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            migration *nm = realloc(set->m, ncap * sizeof(*nm));

            if (nm == NULL) {
                st = tp__fail(err, TP_ENOMEM, "out of memory");
                goto out;
            }
            set->m = nm;
            cap = ncap;
        }
        set->m[set->n].version = v;
        memcpy(set->m[set->n].name, de->d_name, nl + 1);
        st = read_migration(dir, de->d_name, &text, &len, err);
        if (st != TP_OK)
            goto out;
        st = sha256_hex(text, len, set->m[set->n].sha256, err);
        free(text);
        if (st != TP_OK)
            goto out;
        set->n++;
    }
    if (set->n > 1)
        qsort(set->m, set->n, sizeof(*set->m), cmp_migration);
    for (i = 1; i < set->n; i++) {
        if (set->m[i].version == set->m[i - 1].version) {
            st = tp__fail(err, TP_EMIGRATION, "%s: %s and %s share version "
                          "%ld", shown, set->m[i - 1].name, set->m[i].name,
                          set->m[i].version);
            goto out;
        }
    }
    if (set->n == 0)
        st = tp__fail(err, TP_EMIGRATION, "%s contains no migration files",
                      shown);
out:
    closedir(dp);
    if (st != TP_OK) {
        free(set->m);
        set->m = NULL;
        set->n = 0;
    }
    return st;
}

tp_status
tp_db_migrations_check(const char *schema_dir, int *count, tp_error *err)
{
    migration_set set;
    tp_status st;

    if (schema_dir == NULL)
        return tp__fail(err, TP_EINVAL, "schema directory is required");
    st = scan_dir(schema_dir, &set, err);
    if (st != TP_OK)
        return st;
    if (count != NULL)
        *count = (int)set.n;
    free(set.m);
    tp__ok(err);
    return TP_OK;
}

/* Copy the server's message (one line) into err as TP_EDB. */
static tp_status
db_fail(tp_error *err, PGconn *c, const PGresult *r, const char *what)
{
    const char *msg = NULL;
    char line[200];
    size_t n;

    if (r != NULL)
        msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        msg = PQerrorMessage(c);
    tp__printable(line, sizeof(line), msg != NULL ? msg : "", 180);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '?' || line[n - 1] == ' '))
        line[--n] = '\0'; /* trailing newline became '?' */
    return tp__fail(err, TP_EDB, "%s: %s", what, line);
}

/* Run a command expecting success; parameters as text. */
static tp_status
exec_params(PGconn *c, const char *sql, int n, const char *const *vals,
            PGresult **out, const char *what, tp_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    tp_status st;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        st = db_fail(err, c, r, what);
        PQclear(r);
        return st;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return TP_OK;
}

typedef struct log_target {
    tp_log_fn log;
    void *ud;
} log_target;

/* Server NOTICEs (e.g. "relation already exists, skipping") go to the
 * host's log at debug level instead of libpq's default, stderr. */
static void
notice_to_log(void *arg, const char *msg)
{
    log_target *t = arg;
    char line[300];

    if (t->log == NULL)
        return;
    tp__printable(line, sizeof(line), msg, 280);
    t->log(t->ud, TP_LOG_DEBUG, line);
}

/* Compare what the database recorded with the files; *first receives the
 * index of the first file to apply. */
static tp_status
check_recorded(PGconn *c, const migration_set *set, size_t *first,
               tp_error *err)
{
    PGresult *r = NULL;
    tp_status st;
    int i, rows;

    *first = 0;
    st = exec_params(c, "SELECT to_regclass('turnpolicy.schema_migrations') "
                     "IS NOT NULL", 0, NULL, &r, "reading the schema", err);
    if (st != TP_OK)
        return st;
    rows = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!rows)
        return TP_OK;
    st = exec_params(c, "SELECT version, name, sha256 FROM "
                     "turnpolicy.schema_migrations ORDER BY version", 0,
                     NULL, &r, "reading turnpolicy.schema_migrations", err);
    if (st != TP_OK)
        return st;
    rows = PQntuples(r);
    for (i = 0; i < rows; i++) {
        long v = strtol(PQgetvalue(r, i, 0), NULL, 10);
        const char *sha = PQgetvalue(r, i, 2);
        char nm[80];

        tp__printable(nm, sizeof(nm), PQgetvalue(r, i, 1), 64);
        if ((size_t)i >= set->n || set->m[i].version != v) {
            size_t j;

            for (j = 0; j < set->n; j++) {
                if (set->m[j].version == v)
                    break;
            }
            if (j == set->n)
                st = tp__fail(err, TP_EMIGRATION, "the database has "
                              "migration %ld (%s) that the schema directory "
                              "lacks: the database is newer than this "
                              "turnpolicy", v, nm);
            else
                st = tp__fail(err, TP_EMIGRATION, "the database has "
                              "migration %ld but not %s before it: a "
                              "half-applied set; restore the missing "
                              "migration or the database", v,
                              set->m[i].name);
            goto out;
        }
        if (strcmp(sha, set->m[i].sha256) != 0) {
            st = tp__fail(err, TP_EMIGRATION, "%s changed after it was "
                          "applied (sha256 differs); migrations are "
                          "forward-only: add a new file instead",
                          set->m[i].name);
            goto out;
        }
    }
    *first = (size_t)rows;
out:
    PQclear(r);
    return st;
}

static tp_status
apply_one(PGconn *c, const char *dir, const migration *m, tp_error *err)
{
    char version[24], what[MIGRATION_NAME_MAX + 32];
    const char *vals[3];
    PGresult *r = NULL;
    char *text = NULL;
    size_t len;
    tp_status st;

    st = read_migration(dir, m->name, &text, &len, err);
    if (st != TP_OK)
        return st;
    snprintf(version, sizeof(version), "%ld", m->version);
    snprintf(what, sizeof(what), "applying %s", m->name);
    st = exec_params(c, "BEGIN", 0, NULL, NULL, what, err);
    if (st != TP_OK)
        goto out;
    /* The simple-query protocol runs the file's statements in order; it
     * is the migration itself, so it cannot be parameterized. */
    r = PQexec(c, text);
    if (r == NULL || (PQresultStatus(r) != PGRES_COMMAND_OK &&
                      PQresultStatus(r) != PGRES_TUPLES_OK)) {
        st = db_fail(err, c, r, what);
        goto rollback;
    }
    vals[0] = version;
    vals[1] = m->name;
    vals[2] = m->sha256;
    st = exec_params(c, "INSERT INTO turnpolicy.schema_migrations "
                     "(version, name, sha256) VALUES ($1::int, $2, $3)", 3,
                     vals, NULL, what, err);
    if (st != TP_OK)
        goto rollback;
    st = exec_params(c, "COMMIT", 0, NULL, NULL, what, err);
    goto out;

rollback:
    PQclear(PQexec(c, "ROLLBACK"));
out:
    PQclear(r);
    free(text);
    return st;
}

tp_status
tp_db_migrate(const char *conninfo, const char *schema_dir, tp_log_fn log,
              void *ud, int *applied, tp_error *err)
{
    log_target target;
    migration_set set = {NULL, 0};
    PGconn *c = NULL;
    size_t first = 0, i;
    tp_status st;
    int locked = 0;

    if (applied != NULL)
        *applied = 0;
    if (conninfo == NULL || schema_dir == NULL)
        return tp__fail(err, TP_EINVAL, "connection string and schema "
                        "directory are required");
    st = tp__conninfo_check(conninfo, err);
    if (st != TP_OK)
        return st;
    st = scan_dir(schema_dir, &set, err);
    if (st != TP_OK)
        return st;
    c = PQconnectdb(conninfo);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        st = db_fail(err, c, NULL, "cannot connect to PostgreSQL");
        goto out;
    }
    target.log = log;
    target.ud = ud;
    PQsetNoticeProcessor(c, notice_to_log, &target);
    st = exec_params(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0,
                     NULL, NULL, "taking the migration lock", err);
    if (st != TP_OK)
        goto out;
    locked = 1;
    st = check_recorded(c, &set, &first, err);
    if (st != TP_OK)
        goto out;
    if (first == set.n)
        logf_(log, ud, TP_LOG_INFO, "schema is up to date (%zu migrations)",
              set.n);
    for (i = first; i < set.n; i++) {
        st = apply_one(c, schema_dir, &set.m[i], err);
        if (st != TP_OK)
            goto out;
        logf_(log, ud, TP_LOG_INFO, "applied %s", set.m[i].name);
        if (applied != NULL)
            (*applied)++;
    }
    tp__ok(err);
out:
    if (locked)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY
                          ")"));
    PQfinish(c);
    free(set.m);
    return st;
}
