/*
 * redis_driver.c - the store's Redis side against real PostgreSQL 15 and
 * Redis 7: revocations fan out to a node that does not LISTEN (a replica
 * reader) within a second, the per-user allocation quota holds across two
 * store instances, issuance is rate limited, and with Redis stopped
 * revocations still come from PostgreSQL while counters follow the fail
 * mode, until Redis is back.
 *
 * Run by tests/integration/redis.sh.  Environment: TP_TEST_DB,
 * TP_TEST_REDIS_PORT, TP_TEST_REDIS_PASSWORD, TP_TEST_REDIS_STOP,
 * TP_TEST_REDIS_START.
 */
#include "tp_test.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>
#include <libpq-fe.h>

#include "tp_itest.h"

#define REALM "redis.test"

static const char *db;
static PGconn *admin;
static int redis_port;
static const char *redis_pw;

static tp_store *
open_store(int no_listen, tp_fail_mode mode, uint32_t per_minute,
           const char *password)
{
    tp_store_options o;
    tp_store *st;
    tp_error err;

    memset(&o, 0, sizeof(o));
    o.database = db;
    o.no_listen = no_listen;
    o.reload_interval = 3600; /* only NOTIFY or Redis may refresh */
    o.redis_host = "127.0.0.1";
    o.redis_port = redis_port;
    o.redis_password = password;
    o.redis_fail_mode = mode;
    o.issue_per_minute = per_minute;
    st = tp_itest_keep(tp_store_new(&o, &err));
    if (st == NULL) {
        print_error("tp_store_new: %s\n", err.message);
        fail();
    }
    return st;
}

static void
wait_subscribed(tp_store *st)
{
    tp_store_info info;
    double t0 = mono();

    for (;;) {
        tp_store_info_get(st, &info);
        if (info.redis_subscribed)
            return;
        assert_true(mono() - t0 < 5.0);
        usleep(10000);
    }
}

static double
wait_status(tp_store *st, const tp_credential *c, tp_status want,
            double limit)
{
    double t0 = mono();
    tp_error err;

    do {
        if (tp_store_verify(st, REALM, c->username, c->password, tp_now(),
                            NULL, &err) == want)
            return mono() - t0;
        usleep(5000);
    } while (mono() - t0 < limit);
    return -1;
}

static int
setup(void **state)
{
    const char *port = getenv("TP_TEST_REDIS_PORT");

    (void)state;
    db = getenv("TP_TEST_DB");
    redis_pw = getenv("TP_TEST_REDIS_PASSWORD");
    if (db == NULL || port == NULL || redis_pw == NULL)
        return -1;
    redis_port = atoi(port);
    admin = PQconnectdb(db);
    return PQstatus(admin) == CONNECTION_OK ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    PQfinish(admin);
    return 0;
}

/* A replica reader (no LISTEN, no periodic reload) learns revocations and
 * disables through Redis, published by the node that LISTENs. */
static void
test_fanout_to_replica_reader(void **state)
{
    const char *p[2] = {REALM, "alice"};
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    tp_store *b = open_store(1, TP_FAIL_CLOSED, 0, redis_pw);
    tp_store_info info;
    tp_credential c, c2;
    tp_error err;
    uint64_t reads;
    double took;

    (void)state;
    wait_subscribed(a);
    wait_subscribed(b);
    TP_ASSERT_OK(tp_store_issue(b, REALM, "alice", 600, tp_now() - 2, &c,
                                &err), &err);
    TP_ASSERT_OK(tp_store_verify(b, REALM, c.username, c.password, tp_now(),
                                 NULL, &err), &err);
    tp_store_info_get(b, &info);
    reads = info.change_reads;
    tp_itest_sql(admin, "SELECT turnpolicy.revoke_user($1, $2)", 2, p);
    took = wait_status(b, &c, TP_EREVOKED, 1.0);
    print_message("replica reader refused the revoked user after %.3f s\n",
                  took);
    assert_true(took >= 0);
    /* B does not LISTEN: it reads the change log once a second, and the
     * Redis message A publishes reaches its overlay (whichever comes
     * first refuses) and makes it read the change log at once. */
    {
        double t0 = mono();

        tp_store_info_get(b, &info);
        while (info.overlay < 1) {
            assert_true(mono() - t0 < 1.0);
            usleep(5000);
            tp_store_info_get(b, &info);
        }
        while (info.change_reads <= reads) {
            assert_true(mono() - t0 < 2.0);
            usleep(10000);
            tp_store_info_get(b, &info);
        }
    }

    /* A single revoked credential and a disable travel the same way. */
    TP_ASSERT_OK(tp_store_issue(b, "redis.test", "bob", 600, tp_now(), &c2,
                                &err), &err);
    {
        const char *q[2] = {REALM, c2.username};

        tp_itest_sql(admin, "SELECT turnpolicy.revoke_credential($1, $2)", 2, q);
    }
    assert_true(wait_status(b, &c2, TP_EREVOKED, 1.0) >= 0);
    /* A different ttl, so not the same username as the revoked one even
     * within the same second. */
    TP_ASSERT_OK(tp_store_issue(b, "redis.test", "bob", 599, tp_now(), &c2,
                                &err), &err);
    {
        const char *q[2] = {REALM, "bob"};

        tp_itest_sql(admin, "SELECT turnpolicy.disable_user($1, $2)", 2, q);
        if (wait_status(b, &c2, TP_EDISABLED, 1.0) < 0) {
            tp_status s2 = tp_store_verify(b, REALM, c2.username,
                                           c2.password, tp_now(), NULL,
                                           &err);

            print_error("after disable: %s: %s\n", tp_reason(s2),
                        err.message);
            fail();
        }
        /* B may have read the disable itself (a read another message
         * made it do); the enable must travel through A's message, so A
         * must have applied the disable first: a read of A's that found
         * both would find nothing changed, publish nothing, and leave B
         * to its next heartbeat read. */
        assert_true(wait_status(a, &c2, TP_EDISABLED, 1.0) >= 0);
        tp_itest_sql(admin, "SELECT turnpolicy.enable_user($1, $2)", 2, q);
        if (wait_status(b, &c2, TP_OK, 1.0) < 0) {
            tp_status s2 = tp_store_verify(b, REALM, c2.username,
                                           c2.password, tp_now(), NULL,
                                           &err);

            print_error("after enable: %s: %s\n", tp_reason(s2),
                        err.message);
            fail();
        }
    }
    /* A node that subscribes later picks up the revocations it missed
     * from the keys the publisher keeps (with TTLs). */
    {
        tp_store *late = open_store(1, TP_FAIL_CLOSED, 0, redis_pw);

        wait_subscribed(late);
        tp_store_info_get(late, &info);
        print_message("late node seeded %zu revocation(s) from Redis\n",
                      info.overlay);
        assert_true(info.overlay >= 2); /* alice (user) and bob's credential */
        tp_itest_store_free(late);
    }
    tp_itest_store_free(a);
    tp_itest_store_free(b);
}

/* Two nodes share the per-user quota (realm user_quota = 2). */
static void
test_quota_across_nodes(void **state)
{
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    tp_store *b = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    int64_t now = tp_now();
    uint32_t n = 0;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_alloc_acquire(a, REALM, "carol", "a-1", 60, now,
                                        &n, &err), &err);
    assert_int_equal(n, 1);
    TP_ASSERT_OK(tp_store_alloc_acquire(b, REALM, "carol", "b-1", 60, now,
                                        &n, &err), &err);
    assert_int_equal(n, 2);
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_alloc_acquire(a, REALM, "carol", "a-2", 60,
                                            now, &n, &err), &err);
    assert_int_equal(n, 2);
    /* Refreshing a live session is not a new one. */
    TP_ASSERT_OK(tp_store_alloc_acquire(b, REALM, "carol", "b-1", 60, now,
                                        &n, &err), &err);
    TP_ASSERT_OK(tp_store_alloc_release(b, REALM, "carol", "a-1", &err),
                 &err);
    TP_ASSERT_OK(tp_store_alloc_acquire(a, REALM, "carol", "a-2", 60, now,
                                        &n, &err), &err);
    /* Lapsed sessions stop counting: 61 s later both have expired. */
    TP_ASSERT_OK(tp_store_alloc_acquire(a, REALM, "carol", "a-3", 60,
                                        now + 61, &n, &err), &err);
    assert_int_equal(n, 1);
    /* A user with an override of 1; the realm's quota for the others. */
    {
        int64_t q = -1;

        TP_ASSERT_OK(tp_store_user_quota(a, REALM, "dave", &q, &err), &err);
        assert_int_equal(q, 1);
        TP_ASSERT_OK(tp_store_user_quota(a, REALM, "carol", &q, &err), &err);
        assert_int_equal(q, 2);
        TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                         tp_store_user_quota(a, REALM, "zed", &q, &err),
                         &err);
    }
    TP_ASSERT_OK(tp_store_alloc_acquire(a, REALM, "dave", "d-1", 60, now,
                                        &n, &err), &err);
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_alloc_acquire(b, REALM, "dave", "d-2", 60, now,
                                            &n, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_store_alloc_acquire(a, REALM, "dave", "bad id", 60,
                                            now, &n, &err), &err);
    tp_itest_store_free(a);
    tp_itest_store_free(b);
}

/* Many acquires and releases in one pipelined round trip: each op gets
 * the status it would have had alone, in order; a Redis that lost its
 * script cache (SCRIPT FLUSH, as after a restart) is handled. */
static void
test_alloc_batch(void **state)
{
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    tp_alloc_op ops[6];
    int64_t now = tp_now();
    redisContext *rc;
    redisReply *rep;
    tp_error err;
    size_t i;

    (void)state;
    memset(ops, 0, sizeof(ops));
    for (i = 0; i < 6; i++) {
        ops[i].realm = REALM;
        ops[i].user_id = "erin";
        ops[i].ttl = 60;
    }
    ops[0].session_id = "e-1";
    ops[1].session_id = "e-2";
    ops[2].session_id = "e-3";  /* over erin's quota of 2 */
    ops[3].session_id = "e-1";
    ops[3].ttl = 0;             /* release */
    ops[4].session_id = "f-1";
    ops[4].user_id = "frank";
    ops[5].session_id = "bad id";
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_alloc_batch(a, ops, 6, now, &err),
                     &err);
    TP_ASSERT_OK(ops[0].status, NULL);
    assert_int_equal(ops[0].count, 1);
    TP_ASSERT_OK(ops[1].status, NULL);
    assert_int_equal(ops[1].count, 2);
    TP_ASSERT_STATUS(TP_EQUOTA, ops[2].status, NULL);
    assert_int_equal(ops[2].count, 2);
    TP_ASSERT_OK(ops[3].status, NULL);
    TP_ASSERT_OK(ops[4].status, NULL);
    assert_int_equal(ops[4].count, 1);
    TP_ASSERT_STATUS(TP_EINVAL, ops[5].status, NULL);

    rc = redisConnect("127.0.0.1", redis_port);
    assert_true(rc != NULL && rc->err == 0);
    rep = redisCommand(rc, "AUTH %s", redis_pw);
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = redisCommand(rc, "SCRIPT FLUSH");
    assert_true(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(rc);
    ops[0].session_id = "e-3";  /* e-1 went: room again */
    TP_ASSERT_OK(tp_store_alloc_batch(a, ops, 1, now, &err), &err);
    TP_ASSERT_OK(ops[0].status, NULL);
    assert_int_equal(ops[0].count, 2);
    for (i = 0; i < 3; i++)
        ops[i].ttl = 0;
    ops[1].session_id = "e-2";
    ops[2].session_id = "f-1";
    ops[2].user_id = "frank";
    TP_ASSERT_OK(tp_store_alloc_batch(a, ops, 3, now, &err), &err);
    TP_ASSERT_OK(tp_store_alloc_batch(a, NULL, 0, now, &err), &err);
    tp_itest_store_free(a);
}

/* The realm's total quota holds across nodes too (small.test: 2). */
static void
test_realm_total_quota(void **state)
{
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    tp_store *b = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    int64_t now = tp_now();
    uint32_t n = 0;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_alloc_acquire(a, "small.test", "x", "x-1", 60, now,
                                        &n, &err), &err);
    TP_ASSERT_OK(tp_store_alloc_acquire(b, "small.test", "y", "y-1", 60, now,
                                        &n, &err), &err);
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_alloc_acquire(a, "small.test", "z", "z-1", 60,
                                            now, &n, &err), &err);
    assert_non_null(strstr(err.message, "total quota"));
    TP_ASSERT_OK(tp_store_alloc_release(b, "small.test", "y", "y-1", &err),
                 &err);
    TP_ASSERT_OK(tp_store_alloc_acquire(a, "small.test", "z", "z-1", 60, now,
                                        &n, &err), &err);
    tp_itest_store_free(a);
    tp_itest_store_free(b);
}

static void
test_issue_rate_limit(void **state)
{
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 3, redis_pw);
    int64_t now = (tp_now() / 60) * 60 + 1;
    tp_credential c;
    tp_error err;
    int i;

    (void)state;
    for (i = 0; i < 3; i++)
        TP_ASSERT_OK(tp_store_issue(a, REALM, "erin", 600, now, &c, &err),
                     &err);
    TP_ASSERT_STATUS(TP_ERATELIMIT,
                     tp_store_issue(a, REALM, "erin", 600, now, &c, &err),
                     &err);
    /* Another user has a budget of its own; the next minute is fresh. */
    TP_ASSERT_OK(tp_store_issue(a, REALM, "carol", 600, now, &c, &err),
                 &err);
    TP_ASSERT_OK(tp_store_issue(a, REALM, "erin", 600, now + 60, &c, &err),
                 &err);
    tp_itest_store_free(a);
}

static void
test_wrong_redis_password(void **state)
{
    tp_store *a = open_store(0, TP_FAIL_CLOSED, 0, "wrong-password");
    tp_error err;
    uint32_t n;

    (void)state;
    TP_ASSERT_STATUS(TP_EREDIS,
                     tp_store_alloc_acquire(a, REALM, "carol", "x-1", 60,
                                            tp_now(), &n, &err), &err);
    assert_null(strstr(err.message, "wrong-password"));
    tp_itest_store_free(a);
}

/* Redis stopped: revocations still arrive from PostgreSQL (NOTIFY);
 * counters fail closed or open per the mode; everything resumes when
 * Redis is back. */
static void
test_redis_down(void **state)
{
    const char *p[2] = {REALM, "frank"};
    tp_store *closed = open_store(0, TP_FAIL_CLOSED, 0, redis_pw);
    tp_store *open_ = open_store(0, TP_FAIL_OPEN, 0, redis_pw);
    tp_store_info info;
    tp_credential c;
    tp_error err;
    uint32_t n;
    double t0;

    (void)state;
    wait_subscribed(closed);
    TP_ASSERT_OK(tp_store_issue(closed, REALM, "frank", 600, tp_now() - 2,
                                &c, &err), &err);
    assert_int_equal(system(getenv("TP_TEST_REDIS_STOP")), 0);
    TP_ASSERT_STATUS(TP_EREDIS,
                     tp_store_alloc_acquire(closed, REALM, "carol", "z-1",
                                            60, tp_now(), &n, &err), &err);
    TP_ASSERT_OK(tp_store_alloc_acquire(open_, REALM, "carol", "z-1", 60,
                                        tp_now(), &n, &err), &err);
    tp_itest_sql(admin, "SELECT turnpolicy.revoke_user($1, $2)", 2, p);
    assert_true(wait_status(closed, &c, TP_EREVOKED, 1.0) >= 0);

    assert_int_equal(system(getenv("TP_TEST_REDIS_START")), 0);
    t0 = mono();
    while (tp_store_alloc_acquire(closed, REALM, "carol", "z-2", 60,
                                  tp_now(), &n, &err) != TP_OK) {
        assert_true(mono() - t0 < 8.0);
        usleep(50000);
    }
    t0 = mono();
    for (;;) {
        tp_store_info_get(closed, &info);
        if (info.redis_subscribed)
            break;
        assert_true(mono() - t0 < 8.0);
        usleep(50000);
    }
    print_message("counters and subscription back %.2f s after Redis "
                  "restarted\n", mono() - t0);
    tp_itest_store_free(closed);
    tp_itest_store_free(open_);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        tp_itest_test(test_fanout_to_replica_reader),
        tp_itest_test(test_quota_across_nodes),
        tp_itest_test(test_realm_total_quota),
        tp_itest_test(test_alloc_batch),
        tp_itest_test(test_issue_rate_limit),
        tp_itest_test(test_wrong_redis_password),
        tp_itest_test(test_redis_down),
    };

    return cmocka_run_group_tests_name("redis", tests, setup, teardown);
}
