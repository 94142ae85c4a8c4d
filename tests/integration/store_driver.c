/*
 * store_driver.c - the policy store against a real PostgreSQL 15.
 *
 * Run by tests/integration/store.sh, which starts PostgreSQL, applies the
 * migrations and provisions realm "store.test" with user "alice" and
 * "bob".  Environment:
 *   TP_TEST_DB        libpq connection string (superuser, for provisioning)
 *   TP_TEST_PG_STOP   shell command that stops PostgreSQL
 *   TP_TEST_PG_START  shell command that starts it again
 * Changes are made with SQL through libpq, as an administrator would, and
 * the store must see them through LISTEN/NOTIFY within a second.
 */
#include "tp_test.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tp_itest.h"

#include "store_int.h" /* tp__store_dump */

#define REALM "store.test"

static const char *db;
static PGconn *admin;

static uint32_t queue_max;
static long usage_rows(const char *user);

static tp_store *
open_store(uint32_t staleness)
{
    tp_store_options o;
    tp_store *st;
    tp_error err;

    memset(&o, 0, sizeof(o));
    o.database = db;
    o.max_staleness = staleness;
    o.usage_queue_max = queue_max;
    st = tp_itest_keep(tp_store_new(&o, &err));
    if (st == NULL) {
        print_error("tp_store_new: %s\n", err.message);
        fail();
    }
    return st;
}

/* Poll verify until it returns want; returns the seconds it took or -1
 * after limit seconds. */
static double
wait_for(tp_store *st, const tp_credential *c, tp_status want, double limit)
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
    (void)state;
    db = getenv("TP_TEST_DB");
    if (db == NULL)
        return -1;
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

static void
test_load_and_decide(void **state)
{
    tp_store_info info;
    tp_credential c;
    tp_username u;
    tp_error err;
    tp_store *st = open_store(30);

    (void)state;
    tp_store_info_get(st, &info);
    assert_int_equal(info.generation, 1);
    assert_int_equal(info.realms, 3);
    assert_true(info.users >= 2);
    assert_true(info.connected);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, tp_now(), &c, &err),
                 &err);
    TP_ASSERT_OK(tp_store_verify(st, REALM, c.username, c.password, tp_now(),
                                 &u, &err), &err);
    assert_string_equal(u.user_id, "alice");
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_issue(st, REALM, "nobody", 600, tp_now(), &c,
                                    &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_issue(st, "no.such.realm", "alice", 600,
                                    tp_now(), &c, &err), &err);
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_store_verify(st, REALM, c.username, "x", tp_now(),
                                     NULL, &err), &err);
    /* A credential of one realm does not verify in another (both realms
     * have a kid of the same name, with different secrets). */
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_store_verify(st, "other.test", c.username,
                                     c.password, tp_now(), NULL, &err),
                     &err);
    tp_itest_store_free(st);
}

/* The SQL function and the C library issue byte-identical credentials. */
static void
test_sql_c_identical(void **state)
{
    const char *p[4] = {REALM, "alice", "900", "1700000000"};
    PGresult *r;
    tp_credential c;
    tp_error err;
    tp_store *st = open_store(30);

    (void)state;
    r = PQexecParams(admin, "SELECT username, password FROM "
                     "turnpolicy.issue_credential_at($1, $2, $3::int, "
                     "to_timestamp($4::bigint))", 4, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 900, 1700000000, &c,
                                &err), &err);
    assert_string_equal(PQgetvalue(r, 0, 0), c.username);
    assert_string_equal(PQgetvalue(r, 0, 1), c.password);
    PQclear(r);
    tp_itest_store_free(st);
}

static void
test_notify_disable_within_1s(void **state)
{
    const char *p[2] = {REALM, "bob"};
    struct pollfd pfd;
    tp_credential c;
    uint64_t drain, before;
    tp_error err;
    tp_store *st = open_store(30);
    double took, t0;
    int fd;

    (void)state;
    TP_ASSERT_OK(tp_store_issue(st, REALM, "bob", 600, tp_now(), &c, &err),
                 &err);
    /* the change descriptor: quiet (drained), then readable when the
     * change has landed, with the store already deciding on it */
    fd = tp_store_change_fd(st);
    assert_true(fd >= 0);
    assert_int_equal(tp_store_change_fd(NULL), -1);
    while (read(fd, &drain, sizeof(drain)) > 0)
        ;
    pfd.fd = fd;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 0), 0);
    before = tp_store_changes(st);
    tp_itest_sql(admin, "SELECT turnpolicy.disable_user($1, $2)", 2, p);
    t0 = mono();
    assert_int_equal(poll(&pfd, 1, 1000), 1);
    print_message("change descriptor readable after %.3f s\n", mono() - t0);
    assert_true(read(fd, &drain, sizeof(drain)) == sizeof(drain));
    assert_true(tp_store_changes(st) > before);
    TP_ASSERT_STATUS(TP_EDISABLED,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     tp_now(), NULL, &err), &err);
    took = wait_for(st, &c, TP_EDISABLED, 1.0);
    print_message("disabled user refused after %.3f s\n", took);
    assert_true(took >= 0);
    TP_ASSERT_STATUS(TP_EDISABLED,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     tp_now(), NULL, &err), &err);
    tp_itest_sql(admin, "SELECT turnpolicy.enable_user($1, $2)", 2, p);
    took = wait_for(st, &c, TP_OK, 1.0);
    assert_true(took >= 0);
    tp_itest_store_free(st);
}

/*
 * A change committed while the store is loading (after the load's
 * snapshot) is notified with the load's COMMIT: libpq reads the
 * notification with that reply, so the socket does not wake the store
 * again.  It must load again at once, not at the next heartbeat (1 s).
 * The load is held on a lock on jwt_keys (its last table) while bob is
 * disabled (the store had waited for the heartbeat before).
 */
static void
test_notify_during_reload(void **state)
{
    const char *p[2] = {REALM, "bob"};
    tp_credential c;
    tp_error err;
    tp_store *st = open_store(30);
    PGconn *locker = PQconnectdb(db);
    double took, t0;

    (void)state;
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    /* a failed test leaves it idle in the transaction: the server ends
     * it, and the lock, instead of tp_itest_free_stores waiting forever */
    tp_itest_sql(locker, "SET idle_in_transaction_session_timeout = '5s'",
                 0, NULL);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "bob", 600, tp_now(), &c, &err),
                 &err);
    tp_itest_sql(locker, "BEGIN", 0, NULL);
    tp_itest_sql(locker, "LOCK TABLE turnpolicy.jwt_keys IN ACCESS "
                 "EXCLUSIVE MODE", 0, NULL);
    tp_store_reload(st);
    /* the load has its snapshot and waits for the lock */
    t0 = mono();
    for (;;) {
        PGresult *r = PQexec(admin, "SELECT 1 FROM pg_stat_activity WHERE "
                             "wait_event_type = 'Lock' AND query LIKE "
                             "'%turnpolicy.jwt_keys%'");
        int n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;

        PQclear(r);
        assert_true(n >= 0);
        if (n > 0)
            break;
        assert_true(mono() - t0 < 5.0);
        usleep(5000);
    }
    tp_itest_sql(admin, "SELECT turnpolicy.disable_user($1, $2)", 2, p);
    tp_itest_sql(locker, "COMMIT", 0, NULL);
    PQfinish(locker);
    took = wait_for(st, &c, TP_EDISABLED, 2.0);
    print_message("disabled during a reload: refused after %.3f s\n", took);
    tp_itest_sql(admin, "SELECT turnpolicy.enable_user($1, $2)", 2, p);
    assert_true(took >= 0 && took < 0.5);
    assert_true(wait_for(st, &c, TP_OK, 2.0) >= 0);
    tp_itest_store_free(st);
}

static void
test_revocations(void **state)
{
    const char *p[2] = {REALM, "carol"};
    tp_credential c, c2;
    tp_error err;
    tp_store *st = open_store(30);
    int64_t now = tp_now();

    (void)state;
    tp_itest_sql(admin, "SELECT turnpolicy.create_user($1, $2)", 2, p);
    tp_store_reload(st);
    /* Wait for the new user to appear, then issue two credentials. */
    {
        double t0 = mono();

        while (tp_store_issue(st, REALM, "carol", 600, now - 5, &c, &err) !=
               TP_OK) {
            assert_true(mono() - t0 < 1.0);
            usleep(5000);
        }
    }
    TP_ASSERT_OK(tp_store_issue(st, REALM, "carol", 300, now - 5, &c2, &err),
                 &err);
    /* Revoke one credential: only that one is refused. */
    {
        const char *q[2] = {REALM, c.username};

        tp_itest_sql(admin, "SELECT turnpolicy.revoke_credential($1, $2)", 2, q);
    }
    assert_true(wait_for(st, &c, TP_EREVOKED, 1.0) >= 0);
    TP_ASSERT_OK(tp_store_verify(st, REALM, c2.username, c2.password,
                                 tp_now(), NULL, &err), &err);
    /* Revoke the user: everything issued before now is refused. */
    tp_itest_sql(admin, "SELECT turnpolicy.revoke_user($1, $2)", 2, p);
    assert_true(wait_for(st, &c2, TP_EREVOKED, 1.0) >= 0);
    TP_ASSERT_STATUS(TP_EREVOKED,
                     tp_store_verify(st, REALM, c2.username, c2.password,
                                     tp_now(), NULL, &err), &err);
    assert_non_null(strstr(err.message, "carol"));
    tp_itest_store_free(st);
}

static void
test_kill_switch_and_rules(void **state)
{
    const char *p[1] = {"other.test"};
    tp_peer_decision d;
    tp_host_match m;
    tp_credential c;
    tp_addr a;
    tp_error err;
    tp_store *st = open_store(30);
    double t0;

    (void)state;
    TP_ASSERT_OK(tp_addr_parse("127.0.0.1", &a, &err), &err);
    TP_ASSERT_OK(tp_store_peer_check(st, REALM, &a, &d, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("10.0.0.1", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EPEERDENIED,
                     tp_store_peer_check(st, REALM, &a, &d, &err), &err);
    TP_ASSERT_STATUS(TP_EPEERDENIED,
                     tp_store_peer_check(st, "other.test", &a, &d, &err),
                     &err);
    TP_ASSERT_OK(tp_store_host_check(st, REALM, "edge.skype.com", 443, NULL,
                                     &m, &err), &err);
    TP_ASSERT_STATUS(TP_EHOSTDENIED,
                     tp_store_host_check(st, REALM, "evil.com", 443, NULL,
                                         &m, &err), &err);

    TP_ASSERT_OK(tp_store_issue(st, "other.test", "dave", 600, tp_now(), &c,
                                &err), &err);
    tp_itest_sql(admin, "SELECT turnpolicy.kill_realm($1)", 1, p);
    t0 = mono();
    while (tp_store_verify(st, "other.test", c.username, c.password,
                           tp_now(), NULL, &err) != TP_EREALMKILLED) {
        assert_true(mono() - t0 < 1.0);
        usleep(5000);
    }
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_issue(st, "other.test", "dave", 600, tp_now(),
                                    &c, &err), &err);
    tp_itest_sql(admin, "SELECT turnpolicy.unkill_realm($1)", 1, p);
    tp_itest_store_free(st);
}

/* PostgreSQL stopped: decisions continue from the snapshot within the
 * bound, then fail closed; after a restart the store recovers. */
static void
test_postgres_down(void **state)
{
    const char *stop = getenv("TP_TEST_PG_STOP");
    const char *start = getenv("TP_TEST_PG_START");
    tp_store_info info;
    tp_credential c;
    tp_error err;
    tp_store *st;
    double t0, stale_at = -1;

    (void)state;
    assert_non_null(stop);
    assert_non_null(start);
    queue_max = 2;
    st = open_store(3);
    queue_max = 0;
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, tp_now(), &c, &err),
                 &err);
    PQfinish(admin);
    admin = NULL;
    assert_int_equal(system(stop), 0);
    /* Sessions that finish while PostgreSQL is down wait in the queue. */
    {
        tp_usage u;

        memset(&u, 0, sizeof(u));
        u.node = "node-down";
        u.realm = REALM;
        u.user_id = "bob";
        u.started = tp_now() - 10;
        u.ended = tp_now();
        u.bytes_in = 10;
        u.bytes_out = 20;
        u.session_id = "2000000000000000001";
        TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
        u.session_id = "2000000000000000002";
        TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
        u.session_id = "2000000000000000003";
        TP_ASSERT_STATUS(TP_EBUSY, tp_store_usage_record(st, &u, &err),
                         &err);
        TP_ASSERT_STATUS(TP_EDB, tp_store_usage_flush(st, 300, &err), &err);
    }
    t0 = mono();
    /* Within the bound: still decided from the snapshot. */
    TP_ASSERT_OK(tp_store_verify(st, REALM, c.username, c.password, tp_now(),
                                 NULL, &err), &err);
    while (mono() - t0 < 8) {
        tp_status s = tp_store_verify(st, REALM, c.username, c.password,
                                      tp_now(), NULL, &err);

        if (s == TP_ESTALE) {
            stale_at = mono() - t0;
            break;
        }
        assert_int_equal(s, TP_OK);
        usleep(20000);
    }
    print_message("failed closed %.2f s after PostgreSQL stopped "
                  "(bound 3 s)\n", stale_at);
    assert_true(stale_at >= 1.5 && stale_at <= 5.0);
    TP_ASSERT_STATUS(TP_ESTALE,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     tp_now(), NULL, &err), &err);
    tp_store_info_get(st, &info);
    assert_false(info.connected);
    assert_int_equal(system(start), 0);
    t0 = mono();
    while (tp_store_verify(st, REALM, c.username, c.password, tp_now(), NULL,
                           &err) != TP_OK) {
        assert_true(mono() - t0 < 10.0);
        usleep(20000);
    }
    print_message("recovered %.2f s after PostgreSQL restarted\n",
                  mono() - t0);
    tp_store_info_get(st, &info);
    assert_true(info.connected);
    assert_true(info.age < 2.0);
    /* Nothing lost: the queued sessions are written once it is back. */
    TP_ASSERT_OK(tp_store_usage_flush(st, 10000, &err), &err);
    tp_itest_store_free(st);
    admin = PQconnectdb(db);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    assert_int_equal(usage_rows("bob"), 2);
}

static tp_status
collect_name(void *ud, const char *name)
{
    char *buf = ud;

    strcat(buf, name);
    strcat(buf, ",");
    return TP_OK;
}

static tp_status
collect_origin(void *ud, const char *origin, const char *realm)
{
    char *buf = ud;

    strcat(buf, origin);
    strcat(buf, "=");
    strcat(buf, realm);
    strcat(buf, ",");
    return TP_OK;
}

static tp_status
collect_range(void *ud, const char *range)
{
    char *buf = ud;

    if (strlen(buf) + strlen(range) + 2 < 8192) {
        strcat(buf, range);
        strcat(buf, ",");
    }
    return TP_OK;
}

/* What turnpolicyd serves coturn: realm options, realms, origins, peer
 * ranges; client address bindings. */
static void
test_coturn_views(void **state)
{
    static char buf[8192];
    tp_realm_options o;
    tp_addr a;
    tp_error err;
    tp_store *st = open_store(30);

    (void)state;
    TP_ASSERT_OK(tp_store_realm_options(st, REALM, &o, &err), &err);
    assert_int_equal(o.max_bps, 500000);
    assert_int_equal(o.user_quota, 3);
    assert_int_equal(o.total_quota, 10);
    assert_int_equal(o.max_ttl, 3600);
    assert_false(o.killed);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_realm_options(st, "nope", &o, &err), &err);
    buf[0] = '\0';
    TP_ASSERT_OK(tp_store_realms(st, collect_name, buf, &err), &err);
    assert_string_equal(buf, "other.test,store.test,tenant.test,");
    buf[0] = '\0';
    TP_ASSERT_OK(tp_store_origins(st, collect_origin, buf, &err), &err);
    assert_string_equal(buf, "https://app.store.test=store.test,");
    TP_ASSERT_OK(tp_store_origin_check(st, REALM, "https://app.store.test",
                                       &err), &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_check(st, REALM,
                                           "https://app.store.test.evil",
                                           &err), &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_check(st, REALM, "http://app.store.test",
                                           &err), &err);
    /* the origin belongs to store.test only */
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_check(st, "other.test",
                                           "https://app.store.test", &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_origin_check(st, "nope", "https://app.store.test",
                                           &err), &err);
    assert_true(tp_store_changes(st) >= 1);
    assert_int_equal(tp_store_changes(NULL), 0);
    buf[0] = '\0';
    TP_ASSERT_OK(tp_store_export_coturn(st, REALM, TP_PEER_ALLOW,
                                       collect_range, buf, &err), &err);
    assert_non_null(strstr(buf, "127.0.0.0-127.255.255.255,"));
    buf[0] = '\0';
    TP_ASSERT_OK(tp_store_export_coturn(st, REALM, TP_PEER_DENY,
                                       collect_range, buf, &err), &err);
    assert_non_null(strstr(buf, "10.0.0.0-10.255.255.255,"));
    assert_null(strstr(buf, ",127.0.0.0-127.255.255.255,"));

    TP_ASSERT_OK(tp_addr_parse("203.0.113.9", &a, &err), &err);
    TP_ASSERT_OK(tp_store_client_check(st, REALM, "bound", &a, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("::ffff:203.0.113.9", &a, &err), &err);
    TP_ASSERT_OK(tp_store_client_check(st, REALM, "bound", &a, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("198.51.100.1", &a, &err), &err);
    TP_ASSERT_STATUS(TP_ECLIENTADDR,
                     tp_store_client_check(st, REALM, "bound", &a, &err),
                     &err);
    TP_ASSERT_OK(tp_store_client_check(st, REALM, "alice", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_client_check(st, REALM, "ghost", &a, &err),
                     &err);
    tp_itest_store_free(st);
}

static long
usage_rows(const char *user)
{
    const char *p[1] = {user};
    PGresult *r = PQexecParams(admin, "SELECT count(*), "
                               "coalesce(sum(bytes_in + bytes_out), 0) "
                               "FROM turnpolicy.usage WHERE user_id = $1",
                               1, NULL, p, NULL, NULL, 0);
    long n;

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Finished sessions reach turnpolicy.usage; a re-sent record is not
 * counted twice; budgets see them after a reload. */
static void
test_usage_and_budget(void **state)
{
    tp_usage u;
    tp_store_info info;
    uint64_t limit = 0, used = 0;
    tp_error err;
    tp_store *st = open_store(30);
    double t0;

    (void)state;
    memset(&u, 0, sizeof(u));
    u.node = "node-a";
    u.session_id = "1000000000000000001";
    u.realm = REALM;
    u.user_id = "alice";
    u.started = tp_now() - 60;
    u.ended = tp_now();
    u.bytes_in = 1200;
    u.bytes_out = 3400;
    u.client_addr = "127.0.0.1";
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err); /* resent */
    u.session_id = "1000000000000000002";
    u.client_addr = NULL;
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    TP_ASSERT_OK(tp_store_usage_flush(st, 5000, &err), &err);
    assert_int_equal(usage_rows("alice"), 2);
    tp_store_info_get(st, &info);
    assert_int_equal(info.usage_pending, 0);
    assert_int_equal(info.usage_written, 2);
    /* PostgreSQL refusing for a reason that is not the row's (here the
     * table is missing): the record stays queued until it can be
     * written. */
    tp_itest_sql(admin, "ALTER TABLE turnpolicy.usage RENAME TO usage_away", 0, NULL);
    u.session_id = "1000000000000000003";
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    TP_ASSERT_STATUS(TP_EDB, tp_store_usage_flush(st, 500, &err), &err);
    tp_itest_sql(admin, "ALTER TABLE turnpolicy.usage_away RENAME TO usage", 0, NULL);
    TP_ASSERT_OK(tp_store_usage_flush(st, 5000, &err), &err);
    assert_int_equal(usage_rows("alice"), 3);
    /* A row PostgreSQL refuses (a time out of its range) costs only
     * itself: the rows of the same batch around it are written. */
    u.user_id = "bound";
    u.session_id = "1000000000000000004";
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    u.session_id = "1000000000000000005";
    u.started = u.ended = 100000000000000LL;
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    u.session_id = "1000000000000000006";
    u.started = tp_now() - 60;
    u.ended = tp_now();
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    TP_ASSERT_OK(tp_store_usage_flush(st, 5000, &err), &err);
    assert_int_equal(usage_rows("bound"), 2);
    u.user_id = "bad user";
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_usage_record(st, &u, &err), &err);
    u.user_id = "alice";
    u.ended = u.started - 1;
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_usage_record(st, &u, &err), &err);

    tp_store_reload(st);
    t0 = mono();
    do {
        TP_ASSERT_OK(tp_store_budget(st, REALM, "alice", &limit, &used,
                                     &err), &err);
        if (used == 3 * (1200 + 3400))
            break;
        usleep(10000);
    } while (mono() - t0 < 2.0);
    assert_int_equal(limit, 100000);
    assert_int_equal(used, 3 * (1200 + 3400));
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_budget(st, REALM, "ghost", &limit, &used, &err),
                     &err);
    tp_itest_store_free(st);
}

/* One rule for a session starting (key lookup) and living (enforcer):
 * the node's live count against the quota, the snapshot's bytes plus
 * the node's against the budget, the client against the binding. */
static void
test_session_check(void **state)
{
    tp_session_use use;
    tp_error err;
    tp_addr a;
    tp_store *st = open_store(30);

    (void)state;
    memset(&use, 0, sizeof(use));
    TP_ASSERT_OK(tp_store_session_check(st, REALM, "alice", &use, &err),
                 &err);
    use.live = 2;                      /* the realm's quota is 3 */
    TP_ASSERT_OK(tp_store_session_check(st, REALM, "alice", &use, &err),
                 &err);
    use.live = 3;
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_session_check(st, REALM, "alice", &use, &err),
                     &err);
    assert_non_null(strstr(err.message, "quota 3"));
    use.live = 0;
    /* 'almost' has 4999 of its 5000 bytes in the snapshot */
    TP_ASSERT_OK(tp_store_session_check(st, REALM, "almost", &use, &err),
                 &err);
    use.bytes = 1;
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(st, REALM, "almost", &use, &err),
                     &err);
    assert_non_null(strstr(err.message, "5000 bytes of its budget of 5000"));
    use.bytes = UINT64_MAX;            /* saturates, never wraps */
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(st, REALM, "almost", &use, &err),
                     &err);
    use.bytes = 0;
    TP_ASSERT_OK(tp_addr_parse("198.51.100.1", &a, &err), &err);
    use.client = &a;
    TP_ASSERT_STATUS(TP_ECLIENTADDR,
                     tp_store_session_check(st, REALM, "bound", &use, &err),
                     &err);
    TP_ASSERT_OK(tp_store_session_check(st, REALM, "alice", &use, &err),
                 &err);
    TP_ASSERT_OK(tp_addr_parse("203.0.113.9", &a, &err), &err);
    TP_ASSERT_OK(tp_store_session_check(st, REALM, "bound", &use, &err),
                 &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_session_check(st, REALM, "ghost", &use, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_session_check(st, "nowhere.test", "alice", &use,
                                            &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_store_session_check(st, REALM, "alice", NULL, &err),
                     &err);

    /* tenant.test: 4999 of its 5000 realm bytes used by two users (one
     * no longer provisioned); tom used none, yet one more byte of
     * anybody's in the realm spends it */
    {
        tp_credential c;
        tp_username u;

        use.client = NULL;
        use.realm_bytes = 0;
        TP_ASSERT_OK(tp_store_session_check(st, "tenant.test", "tom", &use,
                                            &err), &err);
        use.realm_bytes = 1;
        TP_ASSERT_STATUS(TP_EBUDGET,
                         tp_store_session_check(st, "tenant.test", "tom",
                                                &use, &err), &err);
        assert_non_null(strstr(err.message, "realm tenant.test"));
        TP_ASSERT_OK(tp_store_issue(st, "tenant.test", "tom", 600, tp_now(),
                                    &c, &err), &err);
        TP_ASSERT_OK(tp_store_verify(st, "tenant.test", c.username,
                                     c.password, tp_now(), &u, &err), &err);
        tp_itest_sql(admin, "INSERT INTO turnpolicy.usage (node, "
                     "session_id, realm, user_id, started_at, ended_at, "
                     "bytes_in, bytes_out) VALUES ('seed', 't3', $1, "
                     "'tina', now() - interval '1 min', now(), 1, 0)", 1,
                     (const char *const[]){"tenant.test"});
        tp_store_reload(st);
        {
            double t0 = mono();
            tp_status got;

            while ((got = tp_store_verify(st, "tenant.test", c.username,
                                          c.password, tp_now(), &u,
                                          &err)) == TP_OK &&
                   mono() - t0 < 3.0)
                usleep(10000);
            TP_ASSERT_STATUS(TP_EBUDGET, got, &err);
            assert_non_null(strstr(err.message, "realm tenant.test"));
        }
    }
    tp_itest_store_free(st);
}

/* A user whose byte budget for the period is used up is refused when a
 * session would start (tp_store_key, tp_store_verify), with the bytes
 * of finished sessions in the period only; a record given to the store
 * counts once a snapshot includes it (tp_store_usage_included). */
static void
test_budget_exhausted(void **state)
{
    char hexkey[TP_LTKEY_HEX_LEN + 1];
    uint64_t limit = 0, used = 0;
    tp_credential c;
    tp_username u;
    tp_usage rec;
    tp_error err;
    tp_status got;
    tp_store *st = open_store(30);
    double t0;

    (void)state;
    TP_ASSERT_OK(tp_store_budget(st, REALM, "spent", &limit, &used, &err),
                 &err);
    assert_int_equal(limit, 5000);
    assert_int_equal(used, 5000);
    /* Issuing is not refused: the budget is checked when it is used. */
    TP_ASSERT_OK(tp_store_issue(st, REALM, "spent", 600, tp_now(), &c, &err),
                 &err);
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     tp_now(), &u, &err), &err);
    assert_non_null(strstr(err.message, "5000"));
    memset(hexkey, 'x', sizeof(hexkey));
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u,
                                  &err), &err);
    assert_int_equal(hexkey[0], '\0'); /* no key handed out */
    assert_string_equal(tp_reason(TP_EBUDGET), "budget_exhausted");
    /* Revocation is the stronger reason and is reported first. */
    tp_itest_sql(admin, "SELECT turnpolicy.revoke_credential($1, $2)", 2,
        (const char *const[]){REALM, c.username});
    t0 = mono();
    while (tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u, &err) !=
               TP_EREVOKED && mono() - t0 < 3.0)
        usleep(10000);
    TP_ASSERT_STATUS(TP_EREVOKED,
                     tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u,
                                  &err), &err);

    /* Bytes outside the period do not count. */
    TP_ASSERT_OK(tp_store_issue(st, REALM, "lapsed", 600, tp_now(), &c, &err),
                 &err);
    TP_ASSERT_OK(tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u,
                              &err), &err);

    /* One byte short: allowed, until one more byte is recorded and a
     * snapshot includes it. */
    TP_ASSERT_OK(tp_store_issue(st, REALM, "almost", 600, tp_now(), &c, &err),
                 &err);
    TP_ASSERT_OK(tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u,
                              &err), &err);
    assert_int_equal(tp_store_usage_included(st), 0);
    memset(&rec, 0, sizeof(rec));
    rec.node = "node-b";
    rec.session_id = "2000000000000000001";
    rec.realm = REALM;
    rec.user_id = "almost";
    rec.started = tp_now() - 5;
    rec.ended = tp_now();
    rec.bytes_out = 1;
    TP_ASSERT_OK(tp_store_usage_record(st, &rec, &err), &err);
    TP_ASSERT_OK(tp_store_usage_flush(st, 5000, &err), &err);
    /* Written, but no snapshot has loaded since (an INSERT into usage
     * does not NOTIFY): the caller still adds it. */
    assert_int_equal(tp_store_usage_included(st), 0);
    TP_ASSERT_OK(tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u,
                              &err), &err);
    tp_store_reload(st);
    t0 = mono();
    do {
        got = tp_store_key(st, REALM, c.username, tp_now(), hexkey, &u, &err);
        if (got != TP_OK)
            break;
        usleep(10000);
    } while (mono() - t0 < 3.0);
    TP_ASSERT_STATUS(TP_EBUDGET, got, &err);
    assert_int_equal(tp_store_usage_included(st), 1);
    TP_ASSERT_OK(tp_store_budget(st, REALM, "almost", &limit, &used, &err),
                 &err);
    assert_int_equal(used, 5000);
    tp_itest_store_free(st);
}

/* Tokens are verified with the keys provisioned for the realm they name. */
static void
test_jwt(void **state)
{
    static const char secret[] = "store-test-jwt-secret-0123456789abcdef";
    tp_jwt_issue_params ip;
    tp_jwt_claims cl;
    tp_jwt_keys *jk;
    tp_error err;
    char *tok = NULL, *other = NULL, *wrongkid = NULL;
    tp_store *st = open_store(30);

    (void)state;
    jk = tp_jwt_keys_new(NULL, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "app1", TP_JWT_HS256, secret,
                                 strlen(secret), &err), &err);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, "app9", TP_JWT_HS256, secret,
                                 strlen(secret), &err), &err);
    memset(&ip, 0, sizeof(ip));
    ip.kid = "app1";
    ip.sub = "alice";
    ip.realm = REALM;
    ip.now = tp_now();
    ip.ttl = 60;
    TP_ASSERT_OK(tp_jwt_issue(jk, &ip, &tok, &err), &err);
    ip.realm = "other.test";
    TP_ASSERT_OK(tp_jwt_issue(jk, &ip, &other, &err), &err);
    ip.realm = REALM;
    ip.kid = "app9";
    TP_ASSERT_OK(tp_jwt_issue(jk, &ip, &wrongkid, &err), &err);

    TP_ASSERT_OK(tp_store_jwt_verify(st, NULL, tok, strlen(tok), tp_now(),
                                     &cl, &err), &err);
    assert_string_equal(cl.sub, "alice");
    assert_string_equal(cl.realm, REALM);
    TP_ASSERT_OK(tp_store_jwt_verify(st, REALM, tok, strlen(tok), tp_now(),
                                     &cl, &err), &err);
    /* other.test has no keys: the token's own realm decides the keys. */
    TP_ASSERT_STATUS(TP_EJWTKID,
                     tp_store_jwt_verify(st, NULL, other, strlen(other),
                                         tp_now(), &cl, &err), &err);
    /* A token of store.test presented for other.test. */
    TP_ASSERT_STATUS(TP_EJWTKID,
                     tp_store_jwt_verify(st, "other.test", tok, strlen(tok),
                                         tp_now(), &cl, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTKID,
                     tp_store_jwt_verify(st, NULL, wrongkid,
                                         strlen(wrongkid), tp_now(), &cl,
                                         &err), &err);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED,
                     tp_store_jwt_verify(st, NULL, tok, strlen(tok),
                                         tp_now() + 3600, &cl, &err), &err);
    /* No realm to choose keys by: a payload that does not parse is
     * malformed (not an unknown realm); a token without the claim names
     * no realm. */
    TP_ASSERT_STATUS(TP_EJWTMALFORMED,
                     tp_store_jwt_verify(st, NULL, "a.b.c", 5, tp_now(), &cl,
                                         &err), &err);
    tp_free(other);
    ip.kid = "app1";
    ip.realm = NULL;
    TP_ASSERT_OK(tp_jwt_issue(jk, &ip, &other, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_jwt_verify(st, NULL, other, strlen(other),
                                         tp_now(), &cl, &err), &err);
    tp_free(tok);
    tp_free(other);
    tp_free(wrongkid);
    tp_jwt_keys_free(jk);
    tp_itest_store_free(st);
}

/* The realm's TURN URIs, and whether a token's subject may act. */
static void
test_urls_and_subject(void **state)
{
    const char *p[2] = {REALM, "sam"};
    const char *urls[4];
    char buf[256];
    size_t n = 0;
    tp_error err;
    tp_store *st = open_store(30);
    int64_t iat = tp_now() - 5;
    double t0;

    (void)state;
    TP_ASSERT_OK(tp_store_realm_urls(st, REALM, buf, sizeof(buf), urls, 4, &n,
                                     &err), &err);
    assert_int_equal(n, 2);
    assert_string_equal(urls[0], "turn:127.0.0.1:3478?transport=udp");
    assert_string_equal(urls[1], "turns:relay.store.test:5349?transport=tcp");
    TP_ASSERT_STATUS(TP_ENOSPACE,
                     tp_store_realm_urls(st, REALM, buf, 20, urls, 4, &n,
                                         &err), &err);
    TP_ASSERT_OK(tp_store_realm_urls(st, "other.test", buf, sizeof(buf), urls,
                                     4, &n, &err), &err);
    assert_int_equal(n, 0);

    tp_itest_sql(admin, "SELECT turnpolicy.create_user($1, $2)", 2, p);
    t0 = mono();
    while (tp_store_subject_check(st, REALM, "sam", iat, &err) != TP_OK) {
        assert_true(mono() - t0 < 1.0);
        usleep(5000);
    }
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_subject_check(st, REALM, "ghost", iat, &err),
                     &err);
    tp_itest_sql(admin, "SELECT turnpolicy.revoke_user($1, $2)", 2, p);
    t0 = mono();
    while (tp_store_subject_check(st, REALM, "sam", iat, &err) !=
           TP_EREVOKED) {
        assert_true(mono() - t0 < 1.0);
        usleep(5000);
    }
    /* A token issued after the revocation is fine. */
    TP_ASSERT_OK(tp_store_subject_check(st, REALM, "sam", tp_now() + 2,
                                        &err), &err);
    tp_itest_sql(admin, "SELECT turnpolicy.disable_user($1, $2)", 2, p);
    t0 = mono();
    while (tp_store_subject_check(st, REALM, "sam", 0, &err) !=
           TP_EDISABLED) {
        assert_true(mono() - t0 < 1.0);
        usleep(5000);
    }
    tp_itest_store_free(st);
}

struct hammer {
    tp_store *st;
    const tp_credential *c;
    atomic_int stop;
    long ok, other;
};

static void *
hammer_thread(void *arg)
{
    struct hammer *h = arg;
    tp_error err;

    while (!atomic_load(&h->stop)) {
        tp_status s = tp_store_verify(h->st, REALM, h->c->username,
                                      h->c->password, tp_now(), NULL, &err);

        if (s == TP_OK)
            h->ok++;
        else
            h->other++;
    }
    return NULL;
}

/* Readers never block and never see a freed snapshot while the store
 * thread swaps snapshots and overlays under them (run under TSan/ASan
 * by `make asan` and by hand with -fsanitize=thread). */
static void
test_concurrent_reload(void **state)
{
    const char *p[2] = {REALM, "bob"};
    struct hammer h[2];
    pthread_t t[2];
    tp_credential c;
    tp_store_info info;
    tp_error err;
    tp_store *st = open_store(30);
    int i;
    double t0;

    (void)state;
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, tp_now(), &c, &err),
                 &err);
    for (i = 0; i < 2; i++) {
        h[i].st = st;
        h[i].c = &c;
        atomic_init(&h[i].stop, 0);
        h[i].ok = h[i].other = 0;
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]),
                         0);
    }
    t0 = mono();
    i = 0;
    /* 1.5 s, and at least 20 policy changes (a loaded machine takes
     * longer to make them; 15 s at most) */
    for (;;) {
        tp_store_info_get(st, &info);
        if (mono() - t0 >= 15.0 ||
            (mono() - t0 >= 1.5 && info.changes >= 20))
            break;
        tp_itest_sql(admin, i++ % 2 ? "SELECT turnpolicy.enable_user($1, $2)"
                    : "SELECT turnpolicy.disable_user($1, $2)", 2, p);
        tp_store_reload(st);
        usleep(20000);
    }
    for (i = 0; i < 2; i++) {
        atomic_store(&h[i].stop, 1);
        pthread_join(t[i], NULL);
    }
    tp_store_info_get(st, &info);
    print_message("%ld + %ld decisions during %llu policy changes\n",
                  h[0].ok + h[0].other, h[1].ok + h[1].other,
                  (unsigned long long)info.changes);
    assert_true(info.changes >= 20);
    assert_true(h[0].ok > 0 && h[1].ok > 0);
    assert_int_equal(h[0].other + h[1].other, 0); /* alice never changed */
    tp_itest_sql(admin, "SELECT turnpolicy.enable_user($1, $2)", 2, p);
    tp_itest_store_free(st);
}

/* ---- incremental updates: the change log (schema/007) ---- */

#define DREALM "delta.test"

/* The store's content, or NULL (the caller frees it). */
static char *
dump(tp_store *st)
{
    tp_error err;
    char *out = NULL;

    if (tp__store_dump(st, &out, &err) != TP_OK)
        print_error("dump: %s\n", err.message);
    return out;
}

/* Wait until a and b hold the same policy (limit seconds); 1 if they do.
 * When they do not after a wait, the first differing lines are printed. */
static int
same_policy(tp_store *a, tp_store *b, double limit)
{
    double t0 = mono();
    char *x, *y;
    int same;

    for (;;) {
        x = dump(a);
        y = dump(b);
        same = x != NULL && y != NULL && strcmp(x, y) == 0;
        if (same || mono() - t0 > limit)
            break;
        free(x);
        free(y);
        usleep(20000);
    }
    if (!same && limit > 0 && x != NULL && y != NULL) {
        const char *p = x, *q = y;

        while (*p != '\0' && *p == *q) {
            p++;
            q++;
        }
        while (p > x && p[-1] != '\n') {
            p--;
            q--;
        }
        print_error("incremental: %.200s\nfull load:   %.200s\n", p, q);
    }
    free(x);
    free(y);
    return same;
}

/* Wait until st knows user_id of DREALM (1) or limit seconds pass (0). */
static int
knows_user(tp_store *st, const char *user_id, double limit)
{
    double t0 = mono();
    tp_credential c;
    tp_error err;

    do {
        if (tp_store_issue(st, DREALM, user_id, 600, tp_now(), &c, &err) ==
            TP_OK)
            return 1;
        usleep(10000);
    } while (mono() - t0 < limit);
    return 0;
}

static void
kill_store_connections(void)
{
    tp_itest_sql(admin, "SELECT count(pg_terminate_backend(pid)) FROM "
                 "pg_stat_activity WHERE application_name = 'turnpolicy' "
                 "AND pid <> pg_backend_pid()", 0, NULL);
}

/*
 * A store kept current by the change log holds exactly what a fresh full
 * load holds, after: users created in bulk, disabled, revoked, renamed,
 * moved to their own quota, budget and client network, deleted; usage
 * recorded (of a deleted user too: the realm's sum still counts it; and
 * of a realm that no longer exists);
 * credentials revoked and un-revoked; a realm's settings, URIs, origins
 * and kill switch changed; two transactions committing out of seq order;
 * the stores' connections killed with changes made while they were away.
 * Store "a" listens; store "b" does not (every notification missed: only
 * its heartbeat reads).  Neither loads in full after the realm exists.
 */
static void
delta_equals_full_load(const char *share)
{
    static const char *const changes[] = {
        "SELECT count(turnpolicy.create_user('" DREALM "', 'd' || g)) "
        "FROM generate_series(1, 300) g",
        "SELECT turnpolicy.disable_user('" DREALM "', 'd7')",
        "SELECT turnpolicy.revoke_user('" DREALM "', 'd8')",
        "UPDATE turnpolicy.users SET user_quota = 2, user_byte_budget = 7777 "
        "WHERE realm = '" DREALM "' AND user_id = 'd9'",
        "UPDATE turnpolicy.users SET client_cidr = '198.51.100.0/24' "
        "WHERE realm = '" DREALM "' AND user_id = 'd10'",
        "INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, "
        "started_at, ended_at, bytes_in, bytes_out) VALUES "
        "('delta', 'u1', '" DREALM "', 'd13', now() - interval '1 min', "
        "now(), 100, 23), ('delta', 'u2', '" DREALM "', 'd11', "
        "now() - interval '1 min', now(), 1000, 1), ('delta', 'u3', '"
        DREALM "', 'd13', now() - interval '1 min', now(), 5, 5)",
        "DELETE FROM turnpolicy.users WHERE realm = '" DREALM "' AND "
        "user_id IN ('d11', 'd12')",
        /* metering outlives realms: usage of a realm that is gone */
        "INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, "
        "started_at, ended_at, bytes_in, bytes_out) VALUES ('delta', 'u4', "
        "'gone.test', 'x', now() - interval '1 min', now(), 7, 7)",
        "UPDATE turnpolicy.users SET user_id = 'd14x' WHERE realm = '"
        DREALM "' AND user_id = 'd14'",
        "SELECT turnpolicy.revoke_credential('" DREALM "', "
        "'4000000000:d15:k1:1700000000')",
        "SELECT turnpolicy.revoke_credential('" DREALM "', "
        "'4000000000:d16:k1:1700000000')",
        "DELETE FROM turnpolicy.revoked_credentials WHERE realm = '" DREALM
        "' AND username = '4000000000:d16:k1:1700000000'",
        "SELECT turnpolicy.set_turn_urls('" DREALM "', "
        "ARRAY['turn:127.0.0.1:3479?transport=udp'])",
        "SELECT turnpolicy.kill_realm('other.test')",
        "UPDATE turnpolicy.realms SET user_quota = 5 WHERE name = '" DREALM
        "'",
        "SELECT turnpolicy.unkill_realm('other.test')",
        "SELECT turnpolicy.kill_realm('" DREALM "')",
        "SELECT turnpolicy.unkill_realm('" DREALM "')",
        "SELECT turnpolicy.enable_user('" DREALM "', 'd7')",
        "SELECT turnpolicy.disable_user('" DREALM "', 'd20')",
    };
    tp_store_options o;
    tp_store_info ia, ib;
    uint64_t fa, fb, ra, rb;
    tp_store *a, *b, *c;
    tp_error err;
    PGconn *late;
    size_t i = 0;

    tp_itest_sql(admin, "SELECT turnpolicy.create_realm('" DREALM "', "
                 "budget_period => 3600, realm_byte_budget => 1000000)",
                 0, NULL);
    tp_itest_sql(admin, "SELECT turnpolicy.rotate_secret('" DREALM "')", 0,
                 NULL);
    tp_itest_sql(admin, "SELECT turnpolicy.create_user('" DREALM "', "
                 "'d0')", 0, NULL);
    if (share != NULL) {
        /* The users in the base, so changes replace and remove base
         * entries too. */
        tp_itest_sql(admin, changes[i++], 0, NULL);
    }
    memset(&o, 0, sizeof(o));
    o.database = db;
    o.usage_queue_max = queue_max;
    o.share_dir = share;
    a = tp_itest_keep(tp_store_new(&o, &err));
    assert_non_null(a);
    o.no_listen = 1;
    b = tp_itest_keep(tp_store_new(&o, &err));
    assert_non_null(b);
    tp_store_info_get(a, &ia);
    tp_store_info_get(b, &ib);
    fa = ia.full_loads;
    fb = ib.full_loads;
    ra = ia.change_reads;
    rb = ib.change_reads;

    if (share != NULL) {
        /* one base for both: "a" read PostgreSQL, "b" attached it */
        assert_int_equal(ia.full_loads, 1);
        assert_int_equal(ib.full_loads, 0);
        assert_true(ia.users >= 301); /* and the other realms' */
        assert_int_equal(ib.users, ia.users);
    }
    for (; i < sizeof(changes) / sizeof(changes[0]); i++) {
        tp_itest_sql(admin, changes[i], 0, NULL);
        if (i == 6)
            kill_store_connections(); /* changes 7.. made while away */
        if (i % 4 == 3)
            usleep(300000); /* some reads see one change, some several */
    }
    assert_true(knows_user(a, "d300", 3.0));

    /* Two transactions committing out of seq order: "late" takes its
     * seq first and commits after "early" has been read. */
    late = PQconnectdb(db);
    assert_int_equal(PQstatus(late), CONNECTION_OK);
    tp_itest_sql(late, "BEGIN", 0, NULL);
    tp_itest_sql(late, "SELECT turnpolicy.create_user('" DREALM "', "
                 "'late')", 0, NULL);
    tp_itest_sql(admin, "SELECT turnpolicy.create_user('" DREALM "', "
                 "'early')", 0, NULL);
    assert_true(knows_user(a, "early", 3.0));
    assert_true(knows_user(b, "early", 3.0));
    assert_false(knows_user(a, "late", 0.0));
    tp_itest_sql(late, "COMMIT", 0, NULL);
    PQfinish(late);
    assert_true(knows_user(a, "late", 3.0));
    assert_true(knows_user(b, "late", 3.0));

    c = open_store(30); /* a fresh full load of the same database */
    assert_true(same_policy(a, c, 5.0));
    assert_true(same_policy(b, c, 5.0));
    if (share != NULL) {
        /* A store starting now attaches the base of before the changes
         * and catches up from the log. */
        tp_store *d;

        o.no_listen = 0;
        d = tp_itest_keep(tp_store_new(&o, &err));
        assert_non_null(d);
        assert_true(same_policy(d, c, 0.0));
        tp_store_info_get(d, &ia);
        assert_int_equal(ia.full_loads, 0);
        tp_store_info_get(c, &ib);
        assert_int_equal(ia.users, ib.users);
        tp_itest_store_free(d);
    }

    /* ... and they got there by reading changes, not by loading again. */
    tp_store_info_get(a, &ia);
    tp_store_info_get(b, &ib);
    print_message("listening store: %llu change reads, %llu full loads; "
                  "heartbeat-only store: %llu, %llu\n",
                  (unsigned long long)(ia.change_reads - ra),
                  (unsigned long long)(ia.full_loads - fa),
                  (unsigned long long)(ib.change_reads - rb),
                  (unsigned long long)(ib.full_loads - fb));
    assert_int_equal(ia.full_loads, fa);
    assert_int_equal(ib.full_loads, fb);
    assert_true(ia.change_reads > ra + 3);
    assert_true(ib.change_reads > rb);
    tp_itest_store_free(c);

    /* Changes the log does not have (triggers off, as a restore from a
     * dump may do): only a full read finds them.  tp_store_reload applies
     * one in place - users and a credential removed, users changed and
     * added, usage rows gone - and the result is a fresh load's. */
    tp_itest_sql(admin, "BEGIN", 0, NULL);
    tp_itest_sql(admin, "SET LOCAL session_replication_role = replica", 0,
                 NULL);
    tp_itest_sql(admin, "DELETE FROM turnpolicy.users WHERE realm = '"
                 DREALM "' AND user_id IN ('d20', 'd21', 'early')", 0, NULL);
    tp_itest_sql(admin, "UPDATE turnpolicy.users SET status = 'disabled', "
                 "user_quota = 9 WHERE realm = '" DREALM "' AND user_id = "
                 "'d22'", 0, NULL);
    tp_itest_sql(admin, "INSERT INTO turnpolicy.users (realm, user_id) "
                 "VALUES ('" DREALM "', 'quiet')", 0, NULL);
    tp_itest_sql(admin, "DELETE FROM turnpolicy.revoked_credentials WHERE "
                 "realm = '" DREALM "'", 0, NULL);
    tp_itest_sql(admin, "DELETE FROM turnpolicy.usage WHERE realm = '"
                 DREALM "' AND session_id = 'u3'", 0, NULL);
    tp_itest_sql(admin, "COMMIT", 0, NULL);
    c = open_store(30);
    usleep(1500000); /* a's heartbeat reads find nothing to apply */
    assert_false(same_policy(a, c, 0.0));
    tp_store_info_get(a, &ia);
    fa = ia.full_loads;
    tp_store_reload(a);
    assert_true(same_policy(a, c, 5.0));
    tp_store_info_get(a, &ia);
    assert_int_equal(ia.full_loads, fa + 1);
    assert_true(knows_user(a, "quiet", 0.0));
    assert_false(knows_user(a, "d21", 0.0));
    if (share != NULL) {
        /* "a" wrote a new base; "b" takes it on its next heartbeat. */
        assert_true(same_policy(b, c, 5.0));
        tp_store_info_get(b, &ib);
        assert_int_equal(ib.full_loads, fb);
    }
    tp_itest_store_free(a);
    tp_itest_store_free(b);
    tp_itest_store_free(c);
    /* as it was, for the next run */
    tp_itest_sql(admin, "DELETE FROM turnpolicy.realms WHERE name = '"
                 DREALM "'", 0, NULL);
    tp_itest_sql(admin, "DELETE FROM turnpolicy.usage WHERE node = 'delta'",
                 0, NULL);
}

static void
test_delta_equals_full_load(void **state)
{
    (void)state;
    delta_equals_full_load(NULL);
}

/*
 * The same with share_dir, as the workers of one nginx node: the stores
 * read users and revocations from one base file and keep only what
 * changed since; they must still hold what a full load holds.
 */
static void
test_share_equals_full_load(void **state)
{
    char dir[] = "/tmp/tp-share-XXXXXX", path[64];
    static const char *const files[] = {"base", "lock"};
    tp_store_options o;
    tp_error err;
    size_t i;

    (void)state;
    assert_non_null(mkdtemp(dir));
    /* what a builder that died left is removed by the next one */
    snprintf(path, sizeof(path), "%s/base.2147483646.tmp", dir);
    {
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fclose(f);
    }
    delta_equals_full_load(dir);
    assert_int_equal(access(path, F_OK), -1);
    /* Someone else's directory, or one others may write, is refused. */
    assert_int_equal(chmod(dir, 0777), 0);
    memset(&o, 0, sizeof(o));
    o.database = db;
    o.share_dir = dir;
    assert_null(tp_store_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    assert_non_null(strstr(err.message, "writable by no one else"));
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void
test_connect_failure(void **state)
{
    tp_store_options o;
    tp_error err;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.database = "host=127.0.0.1 port=1 connect_timeout=2";
    assert_null(tp_store_new(&o, &err));
    assert_int_equal(err.status, TP_EDB);
    o.database = NULL;
    assert_null(tp_store_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    tp_store_free(NULL);
    /* libpq quotes the faulty part of a malformed string: the password */
    o.database = "postgresql://u:hunter2%zz@127.0.0.1:1/db";
    assert_null(tp_store_new(&o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    assert_null(strstr(err.message, "hunter2"));
    assert_non_null(strstr(err.message, "malformed"));
    o.database = "host=127.0.0.1 password='hunter2";
    assert_null(tp_store_new(&o, &err));
    assert_null(strstr(err.message, "hunter2"));
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_db_migrate("postgresql://u:hunter2%zz@h/db",
                                   "schema", NULL, NULL, NULL, &err), &err);
    assert_null(strstr(err.message, "hunter2"));
}

/* background_start: no I/O in tp_store_new; closed until loaded. */
static void
test_background_start(void **state)
{
    tp_store_options o;
    tp_store_info info;
    tp_error err;
    tp_store *st;
    double t0;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.database = "host=127.0.0.1 port=1 connect_timeout=2";
    o.background_start = 1;
    t0 = mono();
    st = tp_itest_keep(tp_store_new(&o, &err));
    assert_non_null(st);
    assert_true(mono() - t0 < 0.5);
    TP_ASSERT_STATUS(TP_ESTALE,
                     tp_store_subject_check(st, REALM, "alice", 0, &err),
                     &err);
    assert_non_null(strstr(err.message, "no policy loaded yet"));
    tp_store_info_get(st, &info);
    assert_int_equal(info.generation, 0);
    tp_itest_store_free(st);

    o.database = db;
    st = tp_itest_keep(tp_store_new(&o, &err));
    assert_non_null(st);
    for (t0 = mono(); mono() - t0 < 10; ) {
        if (tp_store_subject_check(st, REALM, "alice", 0, &err) == TP_OK)
            break;
        usleep(10000);
    }
    TP_ASSERT_OK(tp_store_subject_check(st, REALM, "alice", 0, &err), &err);
    print_message("background start: loaded %.3f s after tp_store_new\n",
                  mono() - t0);
    tp_itest_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        tp_itest_test(test_load_and_decide),
        tp_itest_test(test_sql_c_identical),
        tp_itest_test(test_notify_disable_within_1s),
        tp_itest_test(test_notify_during_reload),
        tp_itest_test(test_revocations),
        tp_itest_test(test_kill_switch_and_rules),
        tp_itest_test(test_coturn_views),
        tp_itest_test(test_usage_and_budget),
        tp_itest_test(test_session_check),
        tp_itest_test(test_budget_exhausted),
        tp_itest_test(test_jwt),
        tp_itest_test(test_urls_and_subject),
        tp_itest_test(test_concurrent_reload),
        tp_itest_test(test_connect_failure),
        tp_itest_test(test_background_start),
        tp_itest_test(test_postgres_down),
        tp_itest_test(test_delta_equals_full_load),
        tp_itest_test(test_share_equals_full_load),
    };

    return cmocka_run_group_tests_name("store", tests, setup, teardown);
}
