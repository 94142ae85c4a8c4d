/*
 * tp_itest.h - what the cmocka drivers of the integration tests share
 * (they include tp_test.h first): a monotonic clock and SQL run as the
 * test's administrator connection, which fails the test with the server's
 * message when the statement fails.
 */
#ifndef TP_ITEST_H
#define TP_ITEST_H

#include <time.h>

#include <libpq-fe.h>

static inline double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run q with n text parameters on c; fail() unless it succeeds. */
static inline void
tp_itest_sql(PGconn *c, const char *q, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, q, n, NULL, params, NULL, NULL, 0);

    if (r == NULL || (PQresultStatus(r) != PGRES_TUPLES_OK &&
                      PQresultStatus(r) != PGRES_COMMAND_OK)) {
        print_error("SQL failed: %s: %s\n", q, PQerrorMessage(c));
        PQclear(r);
        fail();
    }
    PQclear(r);
}

#endif /* TP_ITEST_H */
