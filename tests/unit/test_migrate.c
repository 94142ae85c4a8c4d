/*
 * test_migrate.c - the migration set checks that need no database, and a
 * connection failure reported as TP_EDB.  Applying migrations to a real
 * PostgreSQL is covered by tests/integration/migrate.sh.
 */
#include "tp_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tp-migrate-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
put(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void
rm(const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static void
test_set_checks(void **state)
{
    tp_error err;
    int n = -1;

    (void)state;
    TP_ASSERT_STATUS(TP_EMIGRATION, tp_db_migrations_check(dir, &n, &err),
                     &err);
    assert_non_null(strstr(err.message, "no migration files"));
    put("001_core.sql", "SELECT 1;\n");
    put("002_more.sql", "SELECT 2;\n");
    put("README.md", "not a migration\n");
    TP_ASSERT_OK(tp_db_migrations_check(dir, &n, &err), &err);
    assert_int_equal(n, 2);

    put("02_dup.sql", "SELECT 3;\n");
    TP_ASSERT_STATUS(TP_EMIGRATION, tp_db_migrations_check(dir, &n, &err),
                     &err);
    assert_non_null(strstr(err.message, "share version 2"));
    rm("02_dup.sql");

    put("003-bad name.sql", "SELECT 3;\n");
    TP_ASSERT_STATUS(TP_EMIGRATION, tp_db_migrations_check(dir, &n, &err),
                     &err);
    assert_non_null(strstr(err.message, "NNN_name.sql"));
    rm("003-bad name.sql");

    put("000_zero.sql", "SELECT 0;\n");
    TP_ASSERT_STATUS(TP_EMIGRATION, tp_db_migrations_check(dir, &n, &err),
                     &err);
    rm("000_zero.sql");

    TP_ASSERT_STATUS(TP_EIO, tp_db_migrations_check("/nonexistent/schema",
                                                    &n, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_db_migrations_check(NULL, &n, &err),
                     &err);
}

static void
test_connect_failure(void **state)
{
    tp_error err;
    int applied = -1;

    (void)state;
    put("001_core.sql", "SELECT 1;\n");
    /* Port 1 on loopback: refused at once; nothing leaves the machine. */
    TP_ASSERT_STATUS(TP_EDB,
                     tp_db_migrate("host=127.0.0.1 port=1 connect_timeout=2 "
                                   "password=hunter2-not-shown",
                                   dir, NULL, NULL, &applied, &err), &err);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err.message, "cannot connect to PostgreSQL"));
    assert_null(strstr(err.message, "hunter2"));
    TP_ASSERT_STATUS(TP_EINVAL, tp_db_migrate(NULL, dir, NULL, NULL, NULL,
                                              &err), &err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_checks),
        cmocka_unit_test(test_connect_failure),
    };

    return cmocka_run_group_tests_name("migrate", tests, setup, teardown);
}
