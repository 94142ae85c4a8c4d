/*
 * tp_itest.h - what the cmocka drivers of the integration tests share
 * (they include tp_test.h first): a monotonic clock and SQL run as the
 * test's administrator connection, which fails the test with the server's
 * message when the statement fails; and the stores a test opened, so that
 * a failed test does not leave them running.
 */
#ifndef TP_ITEST_H
#define TP_ITEST_H

#include <time.h>

#include <libpq-fe.h>

#include "turnpolicy.h"

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

/*
 * The stores of the running test.  A failed assertion longjmps out of the
 * test: a store it opened would keep its thread running (reloading on a
 * NOTIFY or a Redis message that arrives late) into exit(), where OpenSSL
 * and libpq free their globals under it and the thread crashes.  So every
 * store a test opens is kept here (tp_itest_keep), a test frees its
 * stores with tp_itest_store_free, and tp_itest_free_stores, every test's
 * teardown (cmocka runs it after a failure too), frees what is left.
 */
#define TP_ITEST_STORES_MAX 8
static tp_store *tp_itest_stores[TP_ITEST_STORES_MAX];

/* Keep st (may be NULL) until the test frees it or ends; returns st. */
static inline tp_store *
tp_itest_keep(tp_store *st)
{
    size_t i;

    if (st == NULL)
        return NULL;
    for (i = 0; i < TP_ITEST_STORES_MAX; i++) {
        if (tp_itest_stores[i] == NULL) {
            tp_itest_stores[i] = st;
            return st;
        }
    }
    tp_store_free(st);
    print_error("more than %d stores open in one test\n",
                TP_ITEST_STORES_MAX);
    fail();
    return NULL;
}

/* tp_store_free for a store tp_itest_keep holds. */
static inline void
tp_itest_store_free(tp_store *st)
{
    size_t i;

    for (i = 0; i < TP_ITEST_STORES_MAX; i++) {
        if (tp_itest_stores[i] == st)
            tp_itest_stores[i] = NULL;
    }
    tp_store_free(st);
}

/* Teardown of every test: free the stores a failed test left open. */
static inline int
tp_itest_free_stores(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TP_ITEST_STORES_MAX; i++) {
        tp_store_free(tp_itest_stores[i]);
        tp_itest_stores[i] = NULL;
    }
    return 0;
}

/* A test of a driver's list, with the teardown above. */
#define tp_itest_test(f) cmocka_unit_test_teardown(f, tp_itest_free_stores)

#endif /* TP_ITEST_H */
