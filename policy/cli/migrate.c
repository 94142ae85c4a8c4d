/*
 * migrate.c - `turnpolicy migrate`: apply the forward-only SQL migrations
 * of schema/ to PostgreSQL through the library (tp_db_migrate records each
 * file with its sha256 and refuses a changed, missing or half-applied
 * set), or with --check validate the files without a database.  Also
 * where the schema is found when --schema-dir is not given.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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


int
tp_cli_migrate(int argc, char **argv)
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
            return tp_cli_fail("migrate", &err);
        printf("%d migrations in %s are well-formed\n", applied, dir);
        return 0;
    }
    if (db == NULL) {
        db = tp_cli_database_url();
        if (db == NULL)
            return tp_cli_usage_error(usage_migrate,
                                      "no database: use --database, "
                                      "$TURNPOLICY_DATABASE or database_url");
    }
    if (tp_db_migrate(db, dir, tp_cli_log, NULL, &applied, &err) != TP_OK)
        return tp_cli_fail("migrate", &err);
    printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
    return 0;
}
