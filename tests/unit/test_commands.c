/*
 * test_commands.c - the Redis commands turnpolicyd answers
 * (coturn-plugin/commands.c, tpd_command): AUTH and NOAUTH, SELECT, PING,
 * QUIT, INFO, GET of user keys, realm options and origins, malformed key
 * names, KEYS and SMEMBERS, the statsdb SET/PUBLISH/DEL that go to the
 * session table, and unknown commands.
 *
 * Runs without a policy store (tpd_test.h: every tp_store_* answers
 * TP_EINVAL), so a key lookup is always refused and a list is always
 * empty; what is checked is the protocol: each command appends exactly
 * one well-formed RESP reply (parsed back with hiredis's reader) of the
 * expected type and text, the counters move as the metrics say, the
 * connection flags (authed, close_after_reply, report) are set, and no
 * password reaches a log line.
 */
#include "tpd_test.h"

#include <stdarg.h>

#include <hiredis/hiredis.h>

#define USER "1700003600:ana:k1:1700000000"
#define STATUS_KEY(id)                                                      \
    "turn/realm/example.org/user/" USER "/allocation/" id "/status"
#define NEW_VALUE                                                           \
    "new lifetime=600, type=UDP, local=127.0.0.1:3478, "                    \
    "remote=127.0.0.1:5555, ssl=NONE, cipher=NONE"

typedef struct fixture {
    tpd *d;
    tpd_client c;
    tpd_buf out;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->d = tpd_test_new(64);
    f->c.authed = 1;
    *state = f;
    return 0;
}

static int
setup_noauth(void **state)
{
    fixture *f;

    if (setup(state) != 0)
        return -1;
    f = *state;
    f->c.authed = 0;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    tpd_buf_free(&f->out);
    tpd_test_free(f->d);
    free(f);
    return 0;
}

/* Run a command of argc arguments given as (pointer, length) pairs; the
 * reply it appended must be exactly one well-formed RESP reply, returned
 * (freeReplyObject). */
static redisReply *
run_n(fixture *f, int argc, ...)
{
    tpd_request *rq = calloc(1, sizeof(*rq));
    redisReader *rd = redisReaderCreate();
    void *reply = NULL, *extra = NULL;
    size_t from = f->out.len;
    va_list ap;
    int i;

    assert_non_null(rq);
    assert_non_null(rd);
    assert_true(argc >= 1 && argc <= TPD_MAX_ARGS);
    va_start(ap, argc);
    for (i = 0; i < argc; i++) {
        const char *s = va_arg(ap, const char *);
        size_t n = va_arg(ap, size_t);

        rq->argv[i] = malloc(n + 1);
        assert_non_null(rq->argv[i]);
        memcpy(rq->argv[i], s, n);
        rq->argv[i][n] = '\0';
        rq->len[i] = n;
        rq->bytes += n;
    }
    va_end(ap);
    rq->argc = rq->expected = argc;
    assert_int_equal(tpd_command(f->d, &f->c, rq, &f->out), 0);
    tpd_request_free(rq);

    assert_true(f->out.len > from); /* a reply, */
    assert_int_equal(redisReaderFeed(rd, f->out.data + from,
                                     f->out.len - from), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply); /* complete, */
    assert_int_equal(redisReaderGetReply(rd, &extra), REDIS_OK);
    assert_null(extra); /* and only one */
    redisReaderFree(rd);
    tpd_buf_consume(&f->out, tpd_buf_pending(&f->out));
    return reply;
}

#define A(lit) (lit), sizeof(lit) - 1
#define S(s) (s), strlen(s)
#define RUN1(f, a) run_n((f), 1, A(a))
#define RUN2(f, a, b) run_n((f), 2, A(a), A(b))
#define RUN3(f, a, b, c) run_n((f), 3, A(a), A(b), A(c))

static void
expect_type(redisReply *r, int type, const char *str)
{
    if (r->type != type) {
        print_error("reply type %d, want %d (%s)\n", r->type, type,
                    r->str != NULL ? r->str : "");
        fail();
    }
    if (str != NULL) {
        assert_non_null(r->str);
        assert_string_equal(r->str, str);
    }
    freeReplyObject(r);
}

#define EXPECT_STATUS(r, s) expect_type((r), REDIS_REPLY_STATUS, (s))
#define EXPECT_ERROR(r, s) expect_type((r), REDIS_REPLY_ERROR, (s))
#define EXPECT_BULK(r, s) expect_type((r), REDIS_REPLY_STRING, (s))
#define EXPECT_NIL(r) expect_type((r), REDIS_REPLY_NIL, NULL)

static void
expect_int(redisReply *r, long long v)
{
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer == v);
    freeReplyObject(r);
}

static void
expect_empty_array(redisReply *r)
{
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

/* ------------------------------------------------------------------ */
/* AUTH                                                                */
/* ------------------------------------------------------------------ */

static void
test_auth_right(void **state)
{
    fixture *f = *state;

    tpd_log_init(TP_LOG_DEBUG); /* log_command runs: AUTH never shown */
    EXPECT_STATUS(RUN2(f, "AUTH", TPD_TEST_PASSWORD), "OK");
    assert_true(f->c.authed);
    assert_int_equal(f->d->n.auth_ok, 1);
    assert_int_equal(f->d->n.auth_failed, 0);
    assert_int_equal(f->c.close_after_reply, 0);
    /* case-insensitive, as Redis */
    EXPECT_STATUS(RUN2(f, "auth", TPD_TEST_PASSWORD), "OK");
    assert_int_equal(f->d->n.auth_ok, 2);
    assert_false(tpd_test_logged(TPD_TEST_PASSWORD));
    tpd_log_init(TP_LOG_INFO);
}

static void
test_auth_wrong(void **state)
{
    fixture *f = *state;
    static const char *const wrong[] = {
        "", TPD_TEST_PASSWORD "x", "unit-test-passwor", "UNIT-TEST-PASSWORD",
    };
    size_t i;

    tpd_log_init(TP_LOG_DEBUG);
    for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        EXPECT_ERROR(run_n(f, 2, A("AUTH"), S(wrong[i])),
                     "ERR invalid password");
        assert_false(f->c.authed);
        assert_int_equal(f->c.auth_failures, i + 1);
        assert_int_equal(f->c.close_after_reply, 0); /* 4 so far */
    }
    assert_int_equal(f->d->n.auth_failed, 4);
    /* the password with a NUL appended is another password */
    EXPECT_ERROR(run_n(f, 2, A("AUTH"), TPD_TEST_PASSWORD,
                       sizeof(TPD_TEST_PASSWORD)),
                 "ERR invalid password");
    /* the fifth failure closes the connection after its reply */
    assert_int_equal(f->c.auth_failures, 5);
    assert_int_equal(f->c.close_after_reply, 1);
    assert_int_equal(f->d->n.auth_failed, 5);
    assert_int_equal(f->d->n.auth_ok, 0);
    assert_false(f->c.authed);
    /* logged, without any of the passwords tried */
    assert_true(tpd_test_logged("AUTH failed (5 on this connection)"));
    assert_false(tpd_test_logged("unit-test-passwor"));
    assert_false(tpd_test_logged("UNIT-TEST"));
    tpd_log_init(TP_LOG_INFO);
}

static void
test_auth_then_right(void **state)
{
    fixture *f = *state;

    EXPECT_ERROR(RUN2(f, "AUTH", "nope"), "ERR invalid password");
    EXPECT_STATUS(RUN2(f, "AUTH", TPD_TEST_PASSWORD), "OK");
    assert_true(f->c.authed);
    assert_int_equal(f->c.close_after_reply, 0);
    /* a wrong AUTH after a right one does not log the connection out
     * (as Redis 6), but still counts */
    EXPECT_ERROR(RUN2(f, "AUTH", "nope"), "ERR invalid password");
    assert_int_equal(f->d->n.auth_failed, 2);
}

static void
test_auth_arity(void **state)
{
    fixture *f = *state;

    EXPECT_ERROR(RUN1(f, "AUTH"),
                 "ERR wrong number of arguments for 'auth' command");
    assert_false(f->c.authed);
    assert_int_equal(f->c.auth_failures, 0);
    assert_int_equal(f->d->n.auth_failed, 0);
    /* Redis 6's AUTH <user> <password>, which coturn >= 4.6.3 sends when
     * its connection string has user=: the password decides, the name is
     * not checked */
    EXPECT_ERROR(RUN3(f, "AUTH", "default", "not-the-password"),
                 "ERR invalid password");
    assert_false(f->c.authed);
    EXPECT_STATUS(RUN3(f, "AUTH", "default", TPD_TEST_PASSWORD), "OK");
    assert_true(f->c.authed);
}

/* Before AUTH only AUTH and QUIT are answered. */
static void
test_noauth(void **state)
{
    fixture *f = *state;

    EXPECT_ERROR(RUN2(f, "GET", "turn/realm/example.org/user/" USER "/key"),
                 "NOAUTH Authentication required.");
    EXPECT_ERROR(RUN1(f, "PING"), "NOAUTH Authentication required.");
    EXPECT_ERROR(RUN2(f, "SELECT", "0"), "NOAUTH Authentication required.");
    EXPECT_ERROR(RUN1(f, "INFO"), "NOAUTH Authentication required.");
    EXPECT_ERROR(RUN3(f, "PUBLISH", STATUS_KEY("000000000000000001"),
                      NEW_VALUE),
                 "NOAUTH Authentication required.");
    EXPECT_ERROR(RUN1(f, "NOSUCHCOMMAND"), "NOAUTH Authentication required.");
    assert_int_equal(f->d->n.noauth, 6);
    assert_int_equal(f->d->n.commands, 6);
    /* nothing reached the table or the decisions */
    assert_int_equal(tpd_sessions_live(f->d->sessions), 0);
    assert_int_equal(f->d->n.statsdb_events, 0);
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 0);
    assert_int_equal(f->d->n.unknown_commands, 0);
    assert_int_equal(f->c.report, 0);
    /* QUIT works unauthenticated */
    EXPECT_STATUS(RUN1(f, "QUIT"), "OK");
    assert_int_equal(f->c.close_after_reply, 1);
    assert_int_equal(f->d->n.noauth, 6);
}

/* ------------------------------------------------------------------ */
/* SELECT, PING, QUIT, INFO                                            */
/* ------------------------------------------------------------------ */

static void
test_connection_commands(void **state)
{
    fixture *f = *state;
    redisReply *r;

    EXPECT_STATUS(RUN2(f, "SELECT", "0"), "OK");
    EXPECT_STATUS(RUN2(f, "select", "15"), "OK");
    EXPECT_STATUS(RUN1(f, "PING"), "PONG");
    EXPECT_STATUS(RUN1(f, "pInG"), "PONG");
    /* PING <message> echoes it, binary-safe but without NULs */
    r = RUN2(f, "PING", "hello\r\nworld");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 12);
    assert_memory_equal(r->str, "hello\r\nworld", 12);
    freeReplyObject(r);
    assert_int_equal(f->c.close_after_reply, 0);

    r = RUN1(f, "INFO");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    /* the counters so far, in Prometheus text */
    assert_non_null(strstr(r->str, "# TYPE turnpolicyd_commands_total "
                                   "counter\n"));
    assert_non_null(strstr(r->str, "\nturnpolicyd_commands_total 6\n"));
    assert_non_null(strstr(r->str, "turnpolicyd_key_lookups_total{result="
                                   "\"malformed_key\"} 0\n"));
    freeReplyObject(r);

    EXPECT_STATUS(RUN1(f, "QUIT"), "OK");
    assert_int_equal(f->c.close_after_reply, 1);
    assert_int_equal(f->d->n.commands, 7);
    assert_int_equal(f->d->n.unknown_commands, 0);
}

/* ------------------------------------------------------------------ */
/* GET                                                                 */
/* ------------------------------------------------------------------ */

static void
test_get_user_key(void **state)
{
    fixture *f = *state;
    char key[600];
    size_t i;

    /* no store: refused (nil) and counted by reason */
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/user/" USER "/key"));
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 1);
    assert_int_equal(f->d->n.decisions[TP_OK], 0);
    assert_int_equal(f->d->n.key_malformed, 0);
    assert_true(tpd_test_logged("deny realm=example.org user=" USER
                                " reason=invalid_argument"));
    /* a username longer than any turnpolicy grants: refused before the
     * store, as too long */
    snprintf(key, sizeof(key), "turn/realm/example.org/user/");
    for (i = strlen(key); i < 28 + TP_USERNAME_MAX + 1; i++)
        key[i] = 'u';
    snprintf(key + i, sizeof(key) - i, "/key");
    EXPECT_NIL(run_n(f, 2, A("GET"), S(key)));
    assert_int_equal(f->d->n.decisions[TP_ETOOLONG], 1);
    /* exactly TP_USERNAME_MAX bytes: the store is asked */
    memmove(key + 28 + TP_USERNAME_MAX, "/key", 5);
    EXPECT_NIL(run_n(f, 2, A("GET"), S(key)));
    assert_int_equal(f->d->n.decisions[TP_ETOOLONG], 1);
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 2);
    /* a username with bytes a log must not carry raw: escaped */
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/user/a\x1b[31m\n/key"));
    assert_true(tpd_test_logged("user=a\\x1b[31m\\x0a reason="));
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 3);
    /* no key served, nothing remembered as served */
    assert_int_equal(f->d->n.keys_confirmed + f->d->n.keys_abandoned, 0);
}

/* Keys that look like key lookups but whose realm cannot be taken
 * apart: nil, counted as malformed, never a decision. */
static void
test_get_malformed(void **state)
{
    fixture *f = *state;
    char key[400];
    uint64_t before;
    size_t i;
    int st;

    EXPECT_NIL(RUN2(f, "GET", "turn/realm//user/" USER "/key"));
    assert_int_equal(f->d->n.key_malformed, 1);
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/key"));
    /* "turn/realm/<r>/key" has a realm: a realm option nobody knows */
    assert_int_equal(f->d->n.key_malformed, 1);
    /* a realm longer than TP_REALM_MAX */
    snprintf(key, sizeof(key), "turn/realm/");
    for (i = strlen(key); i < 11 + TP_REALM_MAX + 1; i++)
        key[i] = 'r';
    snprintf(key + i, sizeof(key) - i, "/user/%s/key", USER);
    EXPECT_NIL(run_n(f, 2, A("GET"), S(key)));
    assert_int_equal(f->d->n.key_malformed, 2);
    /* one byte shorter: a realm, asked to the store */
    memmove(key + 11 + TP_REALM_MAX, key + 11 + TP_REALM_MAX + 1,
            strlen(key + 11 + TP_REALM_MAX + 1) + 1);
    EXPECT_NIL(run_n(f, 2, A("GET"), S(key)));
    assert_int_equal(f->d->n.key_malformed, 2);
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 1);
    /* no slash after the realm at all */
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org-user-x/key"));
    assert_int_equal(f->d->n.key_malformed, 2);
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/x/key"));
    assert_int_equal(f->d->n.key_malformed, 2);
    EXPECT_NIL(RUN2(f, "GET", "turn/realm//key"));
    assert_int_equal(f->d->n.key_malformed, 3);
    assert_true(tpd_test_logged("deny key=turn/realm//key "
                                "reason=malformed_key"));
    /* a NUL inside the key: refused before any parsing */
    before = f->d->n.key_malformed;
    EXPECT_ERROR(run_n(f, 2, A("GET"),
                       A("turn/realm/example.org/user/a\0b/key")),
                 "ERR arguments must not contain NUL");
    assert_int_equal(f->d->n.key_malformed, before);
    for (st = 0; st < TP_STATUS_COUNT_; st++)
        if (st != TP_EINVAL)
            assert_int_equal(f->d->n.decisions[st], 0);
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 1);
}

static void
test_get_realm_options(void **state)
{
    fixture *f = *state;

    /* no store: nil, coturn keeps its own settings */
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/max-bps"));
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/user-quota"));
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/total-quota"));
    EXPECT_NIL(RUN2(f, "GET", "turn/realm/example.org/no-such-option"));
    EXPECT_NIL(RUN2(f, "GET", "turn/origin/https://app.example.org"));
    EXPECT_NIL(RUN2(f, "GET", "turn/origin/"));
    EXPECT_NIL(RUN2(f, "GET", "turn/secret/1"));
    EXPECT_NIL(RUN2(f, "GET", ""));
    /* none of these is a key lookup */
    assert_int_equal(f->d->n.decisions[TP_EINVAL], 0);
    assert_int_equal(f->d->n.key_malformed, 0);
    assert_int_equal(f->d->n.unknown_commands, 0);
    /* GET with another arity is not GET */
    EXPECT_ERROR(RUN1(f, "GET"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN3(f, "GET", "a", "b"),
                 "ERR unknown command or wrong number of arguments");
    assert_int_equal(f->d->n.unknown_commands, 2);
}

/* ------------------------------------------------------------------ */
/* KEYS, SMEMBERS, HGETALL, CONFIG                                     */
/* ------------------------------------------------------------------ */

static void
test_lists(void **state)
{
    fixture *f = *state;

    /* what coturn polls: empty arrays while the store cannot answer and
     * nothing was answered before */
    expect_empty_array(RUN2(f, "KEYS", "turn/origin/*"));
    expect_empty_array(RUN2(f, "KEYS", "turn/realm/*/allowed-peer-ip"));
    expect_empty_array(RUN2(f, "KEYS", "turn/realm/*/denied-peer-ip"));
    expect_empty_array(RUN2(f, "KEYS", "turn/*/allocation/*/status"));
    expect_empty_array(RUN2(f, "KEYS", "turn/user/*"));
    expect_empty_array(RUN2(f, "KEYS", "*"));
    expect_empty_array(
        RUN2(f, "SMEMBERS", "turn/realm/example.org/allowed-peer-ip"));
    expect_empty_array(
        RUN2(f, "SMEMBERS", "turn/realm/example.org/denied-peer-ip"));
    /* secrets are never served, whatever the store holds */
    expect_empty_array(RUN2(f, "SMEMBERS", "turn/realm/example.org/secret"));
    expect_empty_array(RUN2(f, "SMEMBERS", "turn/realm//denied-peer-ip"));
    expect_empty_array(RUN2(f, "SMEMBERS", "nothing"));
    expect_empty_array(RUN2(f, "HGETALL", "turn/oauth/kid/k1"));
    expect_empty_array(RUN3(f, "CONFIG", "GET", "save"));
    expect_empty_array(RUN2(f, "config", "get"));
    assert_int_equal(f->d->n.cached_answers, 0);
    assert_int_equal(f->d->n.unknown_commands, 0);
    /* other arities */
    EXPECT_ERROR(RUN1(f, "KEYS"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN3(f, "SMEMBERS", "a", "b"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN2(f, "CONFIG", "SET"),
                 "ERR unknown command or wrong number of arguments");
    assert_int_equal(f->d->n.unknown_commands, 3);
}

/* ------------------------------------------------------------------ */
/* statsdb                                                             */
/* ------------------------------------------------------------------ */

static void
test_statsdb(void **state)
{
    fixture *f = *state;

    /* coturn SETs the status (ignored: the PUBLISH is the event) */
    EXPECT_STATUS(RUN3(f, "SET", STATUS_KEY("000000000000000001"),
                       NEW_VALUE), "OK");
    assert_int_equal(f->c.report, 1);
    assert_int_equal(tpd_sessions_live(f->d->sessions), 0);
    assert_int_equal(f->d->n.statsdb_events, 0);
    /* with an expiry, as coturn does for a refreshed status */
    EXPECT_STATUS(run_n(f, 5, A("SET"), A(STATUS_KEY("000000000000000001")),
                        A(NEW_VALUE), A("EX"), A("660")), "OK");
    assert_int_equal(f->c.report, 1);

    /* PUBLISH of the status: a session, live */
    expect_int(RUN3(f, "PUBLISH", STATUS_KEY("000000000000000001"),
                    NEW_VALUE), 0);
    assert_int_equal(f->c.report, 1);
    assert_int_equal(f->d->n.statsdb_events, 1);
    assert_int_equal(f->d->n.statsdb_ignored, 0);
    assert_int_equal(tpd_sessions_live(f->d->sessions), 1);
    assert_int_equal(f->d->n.sessions_started, 1);

    /* a report the table does not act on: counted as ignored */
    expect_int(RUN3(f, "PUBLISH", "turn/realm/example.org/user/alice/"
                    "allocation/000000000000000002/status", NEW_VALUE), 0);
    assert_int_equal(f->c.report, 1);
    assert_int_equal(f->d->n.statsdb_events, 2);
    assert_int_equal(f->d->n.statsdb_ignored, 1);
    assert_int_equal(tpd_sessions_live(f->d->sessions), 1);

    /* coturn's keep-alive: not a report */
    expect_int(RUN3(f, "PUBLISH", "__XXX__", "__YYY__"), 0);
    assert_int_equal(f->c.report, 0);
    assert_int_equal(f->d->n.statsdb_events, 2);

    /* DEL of the status, then PUBLISH "deleted": no longer live */
    expect_int(RUN2(f, "DEL", STATUS_KEY("000000000000000001")), 1);
    assert_int_equal(f->c.report, 1);
    assert_int_equal(tpd_sessions_live(f->d->sessions), 1);
    expect_int(RUN3(f, "PUBLISH", STATUS_KEY("000000000000000001"),
                    "deleted"), 0);
    assert_int_equal(tpd_sessions_live(f->d->sessions), 0);
    assert_int_equal(f->c.report, 1);

    /* report is reset by the next command that is not one */
    EXPECT_STATUS(RUN1(f, "PING"), "PONG");
    assert_int_equal(f->c.report, 0);

    /* writes to anything else: read-only, not reports */
    EXPECT_ERROR(RUN3(f, "SET", "turn/realm/example.org/max-bps", "1"),
                 "ERR turnpolicyd is read-only: provision turnpolicy with "
                 "SQL");
    assert_int_equal(f->c.report, 0);
    EXPECT_ERROR(RUN2(f, "DEL", "turn/realm/example.org/secret"),
                 "ERR turnpolicyd is read-only: provision turnpolicy with "
                 "SQL");
    assert_int_equal(f->c.report, 0);
    /* "/allocation/" must come after "turn/" */
    EXPECT_ERROR(RUN3(f, "SET", "x/allocation/1/status", "new"),
                 "ERR turnpolicyd is read-only: provision turnpolicy with "
                 "SQL");
    assert_int_equal(f->c.report, 0);
    /* other arities are not statsdb commands */
    EXPECT_ERROR(RUN2(f, "PUBLISH", STATUS_KEY("000000000000000001")),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN2(f, "SET", STATUS_KEY("000000000000000001")),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN1(f, "DEL"),
                 "ERR unknown command or wrong number of arguments");
    assert_int_equal(f->c.report, 0);
    assert_int_equal(f->d->n.statsdb_events, 3);
}

/* ------------------------------------------------------------------ */
/* what is not a command                                               */
/* ------------------------------------------------------------------ */

static void
test_unknown(void **state)
{
    fixture *f = *state;

    EXPECT_ERROR(RUN1(f, "FLUSHALL"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN3(f, "HSET", "turn/user/x", "k"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN1(f, ""),
                 "ERR unknown command or wrong number of arguments");
    /* a command name that is a prefix or an extension of a known one */
    EXPECT_ERROR(RUN1(f, "PIN"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN1(f, "PINGX"),
                 "ERR unknown command or wrong number of arguments");
    EXPECT_ERROR(RUN1(f, "QUITX"),
                 "ERR unknown command or wrong number of arguments");
    assert_int_equal(f->c.close_after_reply, 0);
    assert_int_equal(f->d->n.unknown_commands, 6);
    /* a NUL anywhere after AUTH: refused, not unknown */
    EXPECT_ERROR(run_n(f, 1, A("PING\0")),
                 "ERR arguments must not contain NUL");
    EXPECT_ERROR(run_n(f, 2, A("PING"), A("a\0")),
                 "ERR arguments must not contain NUL");
    assert_int_equal(f->d->n.unknown_commands, 6);
    assert_int_equal(f->d->n.commands, 8);
}

/* Usernames and keys reach log lines only through tpd_escape: printable
 * ASCII, everything else (and the backslash) as \xNN, cut to fit. */
static void
test_escape(void **state)
{
    char out[64], big[300];
    size_t cap;

    assert_string_equal(tpd_escape("ana", 3, out, sizeof(out)), "ana");
    assert_string_equal(tpd_escape("a\0b\r\n\x1b[0m\\\x7f\xff", 12, out,
                                   sizeof(out)),
                        "a\\x00b\\x0d\\x0a\\x1b[0m\\x5c\\x7f\\xff");
    assert_string_equal(tpd_escape("", 0, out, sizeof(out)), "");
    /* cut, and always terminated within cap */
    memset(big, 'u', sizeof(big));
    for (cap = 0; cap <= sizeof(out); cap++) {
        memset(out, '#', sizeof(out));
        (void)tpd_escape(big, sizeof(big), out, cap);
        if (cap == 0) {
            assert_int_equal(out[0], '#'); /* nothing written */
            continue;
        }
        assert_non_null(memchr(out, '\0', cap));
        if (cap >= 8) {
            assert_true(strlen(out) >= 3);
            assert_string_equal(out + strlen(out) - 3, "...");
        }
    }
    for (cap = 8; cap <= sizeof(out); cap++) {
        (void)tpd_escape("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", 16, out, cap);
        assert_true(strlen(out) < cap);
        assert_null(strchr(out, '\n'));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_right, setup_noauth,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong, setup_noauth,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_then_right, setup_noauth,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_arity, setup_noauth,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_noauth, setup_noauth, teardown),
        cmocka_unit_test_setup_teardown(test_connection_commands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_get_user_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_realm_options, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statsdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test(test_escape),
    };

    return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
