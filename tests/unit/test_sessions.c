/*
 * test_sessions.c - the pure parts of turnpolicyd's session bookkeeping:
 * coturn's statsdb reports taken apart (tpd_report_parse, sessions.c),
 * the admin CLI's `ps` listing (tpd_cli_parse_ps, enforce.c), and the
 * table's rule (tpd_stats_event, tpd_sessions_gone, tpd_sessions_sweep,
 * tpd_sessions_key_served): only a status report makes a session live;
 * traffic of an id the table does not hold is nobody's.
 *
 * The reports are what coturn 4.6.1 sends (ns_ioalib_engine_impl.c);
 * the `ps` text is coturn 4.6.1's CLI output.  The table runs without a
 * store and without the allocation worker (tpd_test.h), so usage records
 * are refused (usage_failed) and counter pushes are no-ops; times are
 * given, never read from the clock.
 */
#include "tpd_test.h"

#define REALM "example.org"
#define USER "1700003600:ana:k1:1700000000"
#define BOB "1700003600:bob:k1:1700000000"
#define KEY(user, id, kind)                                                 \
    "turn/realm/" REALM "/user/" user "/allocation/" id "/" kind
#define NEW_V4                                                              \
    "new lifetime=600, type=UDP, local=127.0.0.1:3478, "                    \
    "remote=127.0.0.1:5555, ssl=NONE, cipher=NONE"
#define TRAFFIC "rcvp=10, rcvb=1000, sentp=10, sentb=900"
#define NOW TPD_TEST_NOW

/* ------------------------------------------------------------------ */
/* tpd_report_parse                                                    */
/* ------------------------------------------------------------------ */

static int
parse(const char *key, const char *val, tpd_report *r)
{
    return tpd_report_parse(key, strlen(key), val, r);
}

static void
test_report_status(void **state)
{
    tpd_report r;

    assert_int_equal(parse(KEY(USER, "000000000000000042", "status"),
                           NEW_V4, &r), 0);
    assert_int_equal(r.kind, TPD_REPORT_STATUS);
    assert_int_equal(r.status, TPD_STATUS_NEW);
    assert_string_equal(r.realm, REALM);
    assert_string_equal(r.username, USER);
    assert_string_equal(r.un.user_id, "ana");
    assert_string_equal(r.un.kid, "k1");
    assert_int_equal(r.un.form, TP_FORM_V1);
    assert_true(r.un.expires == 1700003600);
    assert_true(r.id == 42);
    assert_true(r.lifetime == 600);
    assert_string_equal(r.client, "127.0.0.1");
    assert_int_equal(r.has_traffic, 0);

    assert_int_equal(parse(KEY(USER, "1", "status"),
                           "refreshed lifetime=0, type=UDP, "
                           "local=127.0.0.1:3478, remote=10.1.2.3:1, "
                           "ssl=NONE, cipher=NONE", &r), 0);
    assert_int_equal(r.status, TPD_STATUS_REFRESHED);
    assert_true(r.lifetime == 0);
    assert_true(r.id == 1);
    assert_string_equal(r.client, "10.1.2.3");

    assert_int_equal(parse(KEY(USER, "7", "status"), "deleted", &r), 0);
    assert_int_equal(r.kind, TPD_REPORT_STATUS);
    assert_int_equal(r.status, TPD_STATUS_DELETED);
    assert_string_equal(r.client, "");
    assert_true(r.lifetime == 0);

    /* a legacy username is one turnpolicy may have granted too */
    assert_int_equal(parse(KEY("1700003600:ana", "7", "status"), "deleted",
                           &r), 0);
    assert_int_equal(r.un.form, TP_FORM_LEGACY);
    assert_string_equal(r.un.user_id, "ana");
}

/* Status values the table must not act on: parsed, status OTHER. */
static void
test_report_status_other(void **state)
{
    static const char *const other[] = {
        "", "deleted ", "Deleted", "deletedx", "new", "new ",
        "NEW lifetime=600", "newlifetime=600", "refreshed",
        "new lifetime=", "new lifetime=abc", "new lifetime=-1",
        "new xlifetime=600", "new lifetime =600",
        "new lifetime=604801", "refreshed lifetime=999999999",
        "new lifetime=99999999999999999999999", "allocated lifetime=600",
    };
    tpd_report r;
    size_t i;

    for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        if (parse(KEY(USER, "1", "status"), other[i], &r) != 0 ||
            r.status != TPD_STATUS_OTHER) {
            print_error("\"%s\": status %d, want OTHER\n", other[i],
                        r.status);
            fail();
        }
        assert_true(r.lifetime == 0 || r.status == TPD_STATUS_OTHER);
        assert_string_equal(r.client, "");
    }
}

static void
test_report_lifetime(void **state)
{
    tpd_report r;

    /* 7 days is the most any realm grants */
    assert_int_equal(parse(KEY(USER, "1", "status"), "new lifetime=604800",
                           &r), 0);
    assert_int_equal(r.status, TPD_STATUS_NEW);
    assert_true(r.lifetime == 604800);
    assert_int_equal(parse(KEY(USER, "1", "status"), "new lifetime=604801",
                           &r), 0);
    assert_int_equal(r.status, TPD_STATUS_OTHER);
    /* the field may be anywhere after a space */
    assert_int_equal(parse(KEY(USER, "1", "status"),
                           "new type=UDP, lifetime=30, remote=1.2.3.4:9",
                           &r), 0);
    assert_int_equal(r.status, TPD_STATUS_NEW);
    assert_true(r.lifetime == 30);
    assert_string_equal(r.client, "1.2.3.4");
    /* a field whose name ends in "lifetime" is not it */
    assert_int_equal(parse(KEY(USER, "1", "status"),
                           "new xlifetime=5, lifetime=31", &r), 0);
    assert_true(r.lifetime == 31);
}

static void
expect_client(const char *val, const char *want)
{
    tpd_report r;

    assert_int_equal(parse(KEY(USER, "1", "status"), val, &r), 0);
    assert_int_equal(r.status, TPD_STATUS_NEW);
    if (strcmp(r.client, want) != 0) {
        print_error("\"%s\": client \"%s\", want \"%s\"\n", val, r.client,
                    want);
        fail();
    }
}

static void
test_report_client(void **state)
{
    expect_client("new lifetime=600, remote=192.0.2.1:49152", "192.0.2.1");
    expect_client("new lifetime=600, remote=255.255.255.255:1, ssl=NONE",
                  "255.255.255.255");
    expect_client("new lifetime=600, remote=[::1]:5555, ssl=NONE", "::1");
    expect_client("new lifetime=600, remote=[2001:db8::17]:3478",
                  "2001:db8::17");
    expect_client("new lifetime=600, remote=[::ffff:192.0.2.1]:3478",
                  "::ffff:192.0.2.1");
    /* malformed or absent: "" (never a guess) */
    expect_client("new lifetime=600", "");
    expect_client("new lifetime=600, remote=", "");
    expect_client("new lifetime=600, remote=192.0.2.1", "");
    expect_client("new lifetime=600, remote=256.0.0.1:5", "");
    expect_client("new lifetime=600, remote=host.example:5", "");
    expect_client("new lifetime=600, remote=[::1:5555", "");
    expect_client("new lifetime=600, remote=[]:5", "");
    expect_client("new lifetime=600, remote=[fe80::1%eth0]:5", "");
    expect_client("new lifetime=600, xremote=192.0.2.1:5", "");
    expect_client("new lifetime=600, remote=1.2.3.4.5.6.7.8.9.10.11.12.13."
                  "14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29:1", "");
}

static void
test_report_traffic(void **state)
{
    static const struct {
        const char *key;
        int kind;
    } kinds[] = {
        {KEY(USER, "000000000000000042", "traffic"), TPD_REPORT_TRAFFIC},
        {KEY(USER, "000000000000000042", "traffic/peer"),
         TPD_REPORT_TRAFFIC_PEER},
        {KEY(USER, "000000000000000042", "total_traffic"),
         TPD_REPORT_TOTAL},
        {KEY(USER, "000000000000000042", "total_traffic/peer"),
         TPD_REPORT_TOTAL_PEER},
    };
    tpd_report r;
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        assert_int_equal(parse(kinds[i].key, TRAFFIC, &r), 0);
        assert_int_equal(r.kind, kinds[i].kind);
        assert_true(r.id == 42);
        assert_string_equal(r.username, USER);
        assert_int_equal(r.has_traffic, 1);
        assert_true(r.rcvb == 1000);
        assert_true(r.sentb == 900);
        assert_int_equal(r.status, TPD_STATUS_OTHER);
    }
    /* both counts are needed */
    assert_int_equal(parse(kinds[0].key, "rcvp=10, rcvb=1000", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    assert_int_equal(parse(kinds[0].key, "sentb=5", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    assert_int_equal(parse(kinds[0].key, "", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    assert_int_equal(parse(kinds[0].key, "xrcvb=1, sentb=2", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    assert_int_equal(parse(kinds[0].key, "rcvb=, sentb=2", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    assert_int_equal(parse(kinds[0].key,
                           "rcvb=99999999999999999999999, sentb=2", &r), 0);
    assert_int_equal(r.has_traffic, 0);
    /* in any order, and large */
    assert_int_equal(parse(kinds[0].key,
                           "sentb=18446744073709551609, rcvb=0", &r), 0);
    assert_int_equal(r.has_traffic, 1);
    assert_true(r.rcvb == 0);
    assert_true(r.sentb == UINT64_C(18446744073709551609));
}

/* Keys that are not a report about a username turnpolicy could have
 * issued: -1. */
static void
test_report_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "turn/realm/" REALM "/user/" USER "/allocation/1",
        "turn/realm/" REALM "/user/" USER "/allocation/1/",
        "turn/realm/" REALM "/user/" USER "/allocation/1/statuss",
        "turn/realm/" REALM "/user/" USER "/allocation/1/peer",
        "turn/realm/" REALM "/user/" USER "/allocation//status",
        "turn/realm/" REALM "/user/" USER "/allocation/1a/status",
        "turn/realm/" REALM "/user/" USER "/allocation/-1/status",
        "turn/realm/" REALM "/user/" USER "/allocation/ 1/status",
        "turn/realm/" REALM "/user/" USER "/allocation/+1/status",
        /* 21 digits, and 2^64 */
        "turn/realm/" REALM "/user/" USER
        "/allocation/000000000000000000001/status",
        "turn/realm/" REALM "/user/" USER
        "/allocation/18446744073709551616/status",
        "turn/realm/" REALM "/user/" USER "/allocaton/1/status",
        "turn/realm/" REALM "/user/" USER "/1/status",
        "/status",
        /* "/allocation/" overlapping the prefix's last slash */
        "turn/realm/allocation/1/status",
        "turn/realm/allocation/1/traffic",
        "turn/realm//user/" USER "/allocation/1/status",
        "turn/realm/" REALM "/usr/" USER "/allocation/1/status",
        "turn/realm/" REALM "/" USER "/allocation/1/status",
        "turn/realm/" REALM "/user//allocation/1/status",
        "turn/realm/" REALM "/user/allocation/1/status",
        "turn/realms/" REALM "/user/" USER "/allocation/1/status",
        "xturn/realm/" REALM "/user/" USER "/allocation/1/status",
        "turn/origin/" REALM "/user/" USER "/allocation/1/status",
        /* realms: only [A-Za-z0-9._-] */
        "turn/realm/exa mple/user/" USER "/allocation/1/status",
        "turn/realm/exa%mple/user/" USER "/allocation/1/status",
        "turn/realm/exa\x7fmple/user/" USER "/allocation/1/status",
        "turn/realm/exa\xc3\xa9mple/user/" USER "/allocation/1/status",
        /* usernames: the credential grammar, printable ASCII */
        "turn/realm/" REALM "/user/alice/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:a%n:k1:1700000000"
        "/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:a n:k1:1700000000"
        "/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:a\tn:k1:1700000000"
        "/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:an\xff:k1:1700000000"
        "/allocation/1/status",
        "turn/realm/" REALM "/user/01700003600:ana:k1:1700000000"
        "/allocation/1/status",
        "turn/realm/" REALM "/user/1700003600:ana:k1:1700000000:1:2:3"
        "/allocation/1/status",
    };
    char key[1024];
    tpd_report r;
    size_t i, n;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], "deleted", &r) != -1) {
            print_error("accepted: %s\n", bad[i]);
            fail();
        }
    }
    /* a NUL inside the key (its length says where it ends) */
    {
        static const char k[] = "turn/realm/" REALM "/user/1700003600:a\0n"
                                ":k1:1700000000/allocation/1/status";

        assert_int_equal(tpd_report_parse(k, sizeof(k) - 1, "deleted", &r),
                         -1);
    }
    /* the key is read by its length, not up to a NUL */
    {
        static const char k[] = KEY(USER, "1", "status") "/peer";

        assert_int_equal(tpd_report_parse(k, sizeof(k) - 1 - 5, "deleted",
                                          &r), 0);
        assert_int_equal(tpd_report_parse(k, sizeof(k) - 1, "deleted", &r),
                         -1);
    }

    /* the largest id that fits, 20 digits */
    assert_int_equal(parse(KEY(USER, "18446744073709551609", "status"),
                           "deleted", &r), 0);
    assert_true(r.id == UINT64_C(18446744073709551609));

    /* realm: TP_REALM_MAX bytes accepted, one more refused */
    n = (size_t)snprintf(key, sizeof(key), "turn/realm/");
    memset(key + n, 'r', TP_REALM_MAX);
    snprintf(key + n + TP_REALM_MAX, sizeof(key) - n - TP_REALM_MAX,
             "/user/%s/allocation/1/status", USER);
    assert_int_equal(parse(key, "deleted", &r), 0);
    assert_int_equal(strlen(r.realm), TP_REALM_MAX);
    memset(key + n, 'r', TP_REALM_MAX + 1);
    snprintf(key + n + TP_REALM_MAX + 1, sizeof(key) - n - TP_REALM_MAX - 1,
             "/user/%s/allocation/1/status", USER);
    assert_int_equal(parse(key, "deleted", &r), -1);

    /* username: longer than TP_USERNAME_MAX refused (a user id of 300) */
    n = (size_t)snprintf(key, sizeof(key), "turn/realm/%s/user/1700003600:",
                         REALM);
    memset(key + n, 'u', 300);
    snprintf(key + n + 300, sizeof(key) - n - 300,
             ":k1:1700000000/allocation/1/status");
    assert_int_equal(parse(key, "deleted", &r), -1);
}

/* ------------------------------------------------------------------ */
/* tpd_cli_parse_ps                                                    */
/* ------------------------------------------------------------------ */

/* coturn 4.6.1's answer to `ps <user>` (turn_admin_server.c), two
 * sessions of the user. */
#define PS_SESSION(n, id)                                                   \
    "    " n ") id=" id ", user <" USER ">:\r\n"                            \
    "      realm: " REALM "\r\n"                                            \
    "      started 3 secs ago\r\n"                                          \
    "      expiring in 597 secs\r\n"                                        \
    "      client protocol UDP, relay protocol UDP\r\n"                     \
    "      client addr 127.0.0.1:5555, server addr 127.0.0.1:3478\r\n"      \
    "      relay addr 127.0.0.1:50123\r\n"                                  \
    "      fingerprints enforced: OFF\r\n"                                  \
    "      mobile: OFF\r\n"                                                 \
    "      usage: rp=10, rb=1000, sp=10, sb=900\r\n"                        \
    "       rate: r=0, s=0, total=0 (bytes per sec)\r\n"                    \
    "\r\n"
#define PS_PROMPT "> "

static void
expect_ps(const char *text, uint64_t id, int found, uint64_t listed,
          uint64_t total)
{
    uint64_t l = 99, t = 99;
    int fd = 99;

    tpd_cli_parse_ps(text, id, &fd, &l, &t);
    if (fd != found || l != listed || t != total) {
        print_error("id %llu: found %d listed %llu total %llu, want %d "
                    "%llu %llu\n", (unsigned long long)id, fd,
                    (unsigned long long)l, (unsigned long long)t, found,
                    (unsigned long long)listed, (unsigned long long)total);
        fail();
    }
}

static void
test_cli_ps(void **state)
{
    static const char two[] =
        "\r\n" PS_SESSION("1", "000000000000000007")
        PS_SESSION("2", "001000000000000012")
        "  Total sessions: 2\r\n\r\n" PS_PROMPT;
    static const char none[] = "\r\n  Total sessions: 0\r\n\r\n" PS_PROMPT;
    /* cli-max-output-sessions cut the listing: 2 of 300 shown */
    static const char cut[] =
        PS_SESSION("1", "000000000000000007")
        PS_SESSION("2", "000000000000000008")
        "  Total sessions: 300\r\n\r\n" PS_PROMPT;
    /* the same with bare LF line ends */
    static const char lf[] =
        "    1) id=000000000000000009, user <" USER ">:\n"
        "      realm: " REALM "\n"
        "  Total sessions: 1\n\n> ";

    expect_ps(two, 7, 1, 2, 2);
    expect_ps(two, UINT64_C(1000000000000012), 1, 2, 2);
    expect_ps(two, 12, 0, 2, 2);   /* another id's digits */
    expect_ps(two, 70, 0, 2, 2);
    expect_ps(two, 0, 0, 2, 2);
    expect_ps(none, 7, 0, 0, 0);
    expect_ps(cut, 7, 1, 2, 300);
    expect_ps(cut, 9, 0, 2, 300);  /* total > listed: cannot tell */
    expect_ps(lf, 9, 1, 1, 1);
    expect_ps("", 7, 0, 0, 0);
    expect_ps(PS_PROMPT, 7, 0, 0, 0);
    /* detail lines that look like numbers are not sessions */
    expect_ps("      1) idx=7\n      7\n  12) id=\n  3)id=7\n"
              "  3) id=abc\n", 7, 0, 0, 0);
    /* a usage line's digits are not an id */
    expect_ps("      usage: rp=7, rb=7, sp=7, sb=7\n", 7, 0, 0, 0);
    /* an id too long for 64 bits is not any id */
    expect_ps("    1) id=99999999999999999999999, user <x>:\n", 7, 0, 1, 0);
    /* a Total line without a number */
    expect_ps("  Total sessions: many\n", 7, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

static int
event(tpd *d, const char *key, const char *val, int64_t now)
{
    return tpd_stats_event(d, key, strlen(key), val, strlen(val), now);
}

static void
expect_user(tpd *d, const char *user_id, size_t live, uint64_t bytes)
{
    size_t l = 99;
    uint64_t b = 99, rb = 99;

    tpd_sessions_user(d->sessions, 0, REALM, user_id, &l, &b, &rb);
    assert_true(rb >= b); /* the realm's sum holds the user's */
    assert_int_equal(l, live);
    assert_true(b == bytes);
}

static void
test_table_new(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(event(d, KEY(USER, "000000000000000042", "status"),
                           NEW_V4, NOW), 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    assert_int_equal(d->n.sessions_started, 1);
    assert_int_equal(d->n.sessions_adopted, 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 42, &ref), 0);
    assert_true(ref.id == 42);
    assert_string_equal(ref.realm, REALM);
    assert_string_equal(ref.user_id, "ana");
    assert_string_equal(ref.username, USER);
    assert_string_equal(ref.client, "127.0.0.1");
    assert_true(ref.cred_expires == 1700003600);
    assert_true(ref.started == NOW);
    assert_int_equal(ref.ended, 0);
    assert_int_equal(*ref.dirty, 1);
    assert_true(ref.bytes == 0);
    expect_user(d, "ana", 1, 0);
    assert_true(tpd_test_logged("session 000000000000000042 new: "
                                "realm=example.org user=ana "
                                "client=127.0.0.1 lifetime=600"));

    /* the same "new" again, and a "refreshed": one session */
    assert_int_equal(event(d, KEY(USER, "000000000000000042", "status"),
                           NEW_V4, NOW + 1), 1);
    assert_int_equal(event(d, KEY(USER, "000000000000000042", "status"),
                           "refreshed lifetime=600, remote=10.0.0.1:1",
                           NOW + 2), 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    assert_int_equal(d->n.sessions_started, 1);
    expect_user(d, "ana", 1, 0);
    /* the first client address reported stays */
    assert_int_equal(tpd_sessions_find(d->sessions, 42, &ref), 0);
    assert_string_equal(ref.client, "127.0.0.1");

    /* a status the table does not act on changes nothing */
    assert_int_equal(event(d, KEY(USER, "000000000000000043", "status"),
                           "allocated", NOW), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 43, &ref), -1);
    /* nor does a report about a username turnpolicy never issued */
    assert_int_equal(event(d, KEY("alice", "000000000000000044", "status"),
                           NEW_V4, NOW), 0);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    tpd_test_free(d);
}

static void
test_table_traffic(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), 0);
    *ref.dirty = 0; /* as the enforcer does */
    /* deltas add up; the peer side is not the user's */
    assert_int_equal(event(d, KEY(USER, "1", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "1", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "1", "traffic/peer"),
                           "rcvp=1, rcvb=5000, sentp=1, sentb=5000", NOW), 1);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), 0);
    assert_true(ref.bytes == 3800);
    assert_true(ref.user_bytes == 3800);
    assert_int_equal(*ref.dirty, 1);
    expect_user(d, "ana", 1, 3800);
    /* a second session of the same user adds to its sum */
    assert_int_equal(event(d, KEY(USER, "2", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "2", "traffic"), TRAFFIC, NOW), 1);
    expect_user(d, "ana", 2, 5700);
    /* a report without both counts changes nothing */
    assert_int_equal(event(d, KEY(USER, "2", "traffic"), "rcvb=7", NOW), 1);
    expect_user(d, "ana", 2, 5700);
    /* totals replace the deltas */
    assert_int_equal(event(d, KEY(USER, "1", "total_traffic"),
                           "rcvp=0, rcvb=100, sentp=0, sentb=50", NOW), 1);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), 0);
    assert_true(ref.bytes == 150);
    expect_user(d, "ana", 2, 2050);
    /* another user's sums are apart */
    expect_user(d, "bob", 0, 0);
    tpd_test_free(d);
}

/* traffic and total_traffic of an id the table does not hold never make
 * a session: coturn reports the traffic of clients that never
 * authenticated too. */
static void
test_table_unattributed(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(event(d, KEY(USER, "5", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(d->n.statsdb_unattributed, 1);
    assert_int_equal(event(d, KEY(USER, "5", "total_traffic"), TRAFFIC,
                           NOW), 1);
    assert_int_equal(d->n.statsdb_unattributed, 2);
    /* the peer sides are not worth a count */
    assert_int_equal(event(d, KEY(USER, "5", "traffic/peer"), TRAFFIC,
                           NOW), 1);
    assert_int_equal(event(d, KEY(USER, "5", "total_traffic/peer"), TRAFFIC,
                           NOW), 1);
    assert_int_equal(d->n.statsdb_unattributed, 2);
    /* nobody's: no session, no live count, no bytes, no usage */
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 5, &ref), -1);
    expect_user(d, "ana", 0, 0);
    tpd_sessions_sweep(d, NOW + 100000, 1);
    assert_int_equal(d->n.sessions_started + d->n.sessions_adopted, 0);
    assert_int_equal(d->n.usage_recorded + d->n.usage_failed, 0);
    assert_int_equal(d->n.sessions_finished, 0);

    /* a "new" of another id of the same user does not adopt them */
    assert_int_equal(event(d, KEY(USER, "6", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "5", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(d->n.statsdb_unattributed, 3);
    expect_user(d, "ana", 1, 0);
    /* nor does an id another user holds take this user's traffic */
    assert_int_equal(event(d, KEY(BOB, "6", "traffic"), TRAFFIC, NOW), 0);
    expect_user(d, "ana", 1, 0);
    expect_user(d, "bob", 0, 0);
    assert_int_equal(event(d, KEY(BOB, "6", "status"), "deleted", NOW), 0);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    tpd_test_free(d);
}

static void
test_table_deleted(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "1", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "1", "status"), "deleted", NOW + 9),
                     1);
    /* ended: no longer live, still in the table for its totals */
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), 0);
    assert_int_equal(ref.ended, 1);
    expect_user(d, "ana", 0, 1900);
    /* "refreshed" after "deleted" does not bring it back */
    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW + 9), 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    /* the totals finish it: a usage record (refused: no store) */
    assert_int_equal(event(d, KEY(USER, "1", "total_traffic"),
                           "rcvp=0, rcvb=2000, sentp=0, sentb=1000", NOW + 9),
                     1);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), -1);
    assert_int_equal(d->n.sessions_finished, 1);
    assert_int_equal(d->n.usage_failed, 1);
    assert_int_equal(d->n.usage_recorded, 0);
    assert_true(tpd_test_logged("session 000000000000000001 ended: "
                                "realm=example.org user=ana "
                                "client=127.0.0.1 seconds=9 in=2000 "
                                "out=1000"));
    expect_user(d, "ana", 0, 0);
    /* total_traffic/peer after it: nothing */
    assert_int_equal(event(d, KEY(USER, "1", "total_traffic/peer"), TRAFFIC,
                           NOW + 9), 1);
    assert_int_equal(d->n.statsdb_unattributed, 0);

    /* "deleted" of an id never seen: a tombstone for its totals, never
     * live */
    assert_int_equal(event(d, KEY(USER, "2", "status"), "deleted", NOW), 1);
    assert_int_equal(d->n.sessions_adopted, 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 2, &ref), 0);
    assert_int_equal(ref.ended, 1);
    expect_user(d, "ana", 0, 0);
    /* its totals never come: finished DELETED_WAIT (5 s) later */
    tpd_sessions_sweep(d, NOW + 4, 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 2, &ref), 0);
    tpd_sessions_sweep(d, NOW + 5, 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 2, &ref), -1);
    assert_int_equal(d->n.sessions_finished, 2);

    /* "refreshed" of an id never seen: adopted, live */
    assert_int_equal(event(d, KEY(USER, "3", "status"),
                           "refreshed lifetime=600", NOW), 1);
    assert_int_equal(d->n.sessions_adopted, 2);
    assert_int_equal(d->n.sessions_started, 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    /* at shutdown every deleted session finishes at once */
    assert_int_equal(event(d, KEY(USER, "3", "status"), "deleted", NOW), 1);
    tpd_sessions_sweep(d, NOW, 1);
    assert_int_equal(tpd_sessions_find(d->sessions, 3, &ref), -1);
    assert_int_equal(d->n.sessions_finished, 3);
    tpd_test_free(d);
}

/* coturn's CLI says it does not list the session: it ends. */
static void
test_table_gone(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    /* another username, an unknown id: nothing */
    tpd_sessions_gone(d, 1, BOB, NOW);
    tpd_sessions_gone(d, 2, USER, NOW);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    tpd_sessions_gone(d, 1, USER, NOW + 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), 0);
    assert_int_equal(ref.ended, 1);
    expect_user(d, "ana", 0, 0);
    /* twice, or "deleted" after it: still one end */
    tpd_sessions_gone(d, 1, USER, NOW + 2);
    assert_int_equal(event(d, KEY(USER, "1", "status"), "deleted", NOW + 2),
                     1);
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    expect_user(d, "ana", 0, 0);
    tpd_sessions_sweep(d, NOW + 6, 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), -1);
    assert_int_equal(d->n.sessions_finished, 1);
    tpd_test_free(d);
}

/* A session whose lifetime passes without a refresh (coturn restarted)
 * lapses LAPSE_SLACK (60 s) after. */
static void
test_table_lapse(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;

    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    tpd_sessions_sweep(d, NOW + 660, 0);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    /* a refresh moves the deadline */
    assert_int_equal(event(d, KEY(USER, "1", "status"),
                           "refreshed lifetime=600", NOW + 300), 1);
    tpd_sessions_sweep(d, NOW + 661, 0);
    assert_int_equal(tpd_sessions_live(d->sessions), 1);
    assert_int_equal(d->n.sessions_lapsed, 0);
    tpd_sessions_sweep(d, NOW + 961, 0);
    assert_int_equal(tpd_sessions_live(d->sessions), 0);
    assert_int_equal(tpd_sessions_find(d->sessions, 1, &ref), -1);
    assert_int_equal(d->n.sessions_lapsed, 1);
    assert_int_equal(d->n.sessions_finished, 1);
    expect_user(d, "ana", 0, 0);
    tpd_test_free(d);
}

static void
test_table_full(void **state)
{
    tpd *d = tpd_test_new(2);

    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "2", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "3", "status"), NEW_V4, NOW), 1);
    assert_int_equal(d->n.sessions_dropped, 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 2);
    expect_user(d, "ana", 2, 0);
    /* a place frees once one is finished */
    assert_int_equal(event(d, KEY(USER, "1", "status"), "deleted", NOW), 1);
    tpd_sessions_sweep(d, NOW + 5, 0);
    assert_int_equal(event(d, KEY(USER, "3", "status"), NEW_V4, NOW + 5), 1);
    assert_int_equal(d->n.sessions_dropped, 1);
    assert_int_equal(tpd_sessions_live(d->sessions), 2);
    tpd_test_free(d);
}

/* Served keys: confirmed by a "new" of the username within KEY_WINDOW
 * (10 s), else abandoned. */
static void
test_keys_served(void **state)
{
    tpd *d = tpd_test_new(64);

    tpd_sessions_key_served(d, REALM, USER, NOW);
    tpd_sessions_key_served(d, REALM, BOB, NOW);
    tpd_sessions_key_served(d, "other.org", USER, NOW);
    /* "refreshed" (adopted) is not the start of a session */
    assert_int_equal(event(d, KEY(USER, "1", "status"),
                           "refreshed lifetime=600", NOW + 1), 1);
    assert_int_equal(d->n.keys_confirmed, 0);
    assert_int_equal(event(d, KEY(USER, "2", "status"), NEW_V4, NOW + 2), 1);
    assert_int_equal(d->n.keys_confirmed, 1);
    /* one key, one confirmation */
    assert_int_equal(event(d, KEY(USER, "3", "status"), NEW_V4, NOW + 2), 1);
    assert_int_equal(d->n.keys_confirmed, 1);
    /* within the window nothing is abandoned */
    tpd_sessions_sweep(d, NOW + 10, 0);
    assert_int_equal(d->n.keys_abandoned, 0);
    /* after it, bob's and the other realm's are */
    tpd_sessions_sweep(d, NOW + 11, 0);
    assert_int_equal(d->n.keys_abandoned, 2);
    assert_int_equal(d->n.keys_confirmed, 1);
    /* and a late "new" confirms nothing */
    assert_int_equal(event(d, KEY(BOB, "4", "status"), NEW_V4, NOW + 12), 1);
    assert_int_equal(d->n.keys_confirmed, 1);
    tpd_sessions_sweep(d, NOW + 100, 0);
    assert_int_equal(d->n.keys_abandoned, 2);

    /* two keys served for one username, one session: one of each */
    tpd_sessions_key_served(d, REALM, USER, NOW + 200);
    tpd_sessions_key_served(d, REALM, USER, NOW + 201);
    assert_int_equal(event(d, KEY(USER, "5", "status"), NEW_V4, NOW + 202),
                     1);
    assert_int_equal(d->n.keys_confirmed, 2);
    tpd_sessions_sweep(d, NOW + 212, 0);
    assert_int_equal(d->n.keys_abandoned, 3);
    tpd_test_free(d);
}

/* Past KEY_MAX (65536) remembered keys, the oldest is given up. */
static void
test_keys_max(void **state)
{
    tpd *d = tpd_test_new(64);
    char user[64];
    int i;

    for (i = 0; i < 65536; i++) {
        snprintf(user, sizeof(user), "1700003600:u%d:k1:1700000000", i);
        tpd_sessions_key_served(d, REALM, user, NOW);
    }
    assert_int_equal(d->n.keys_abandoned, 0);
    tpd_sessions_key_served(d, REALM, USER, NOW);
    assert_int_equal(d->n.keys_abandoned, 1);
    /* the oldest (u0) was the one given up: its "new" confirms nothing */
    assert_int_equal(event(d, "turn/realm/" REALM "/user/1700003600:u0:k1:"
                           "1700000000/allocation/1/status", NEW_V4, NOW),
                     1);
    assert_int_equal(d->n.keys_confirmed, 0);
    assert_int_equal(event(d, "turn/realm/" REALM "/user/1700003600:u1:k1:"
                           "1700000000/allocation/2/status", NEW_V4, NOW),
                     1);
    assert_int_equal(d->n.keys_confirmed, 1);
    /* the rest (u2..u65535 and ana's) after the window */
    tpd_sessions_sweep(d, NOW + 11, 0);
    assert_int_equal(d->n.keys_abandoned, 1 + 65534 + 1);
    tpd_test_free(d);
}

/* One username asked for again and again (a client retrying, or
 * redis-benchmark): every remembered key sits in one hash chain, and
 * giving the oldest up must not walk it (it did: turnpolicyd answered
 * 0.1-0.3x redis-server's GET rate in tests/bench/turnpolicyd.sh, 85% of
 * its CPU in key_unlink).  Here 200000 keys take milliseconds; a walk
 * takes seconds. */
static void
test_keys_one_user(void **state)
{
    tpd *d = tpd_test_new(64);
    int i;

    for (i = 0; i < 200000; i++)
        tpd_sessions_key_served(d, REALM, USER, NOW);
    assert_int_equal(d->n.keys_abandoned, 200000 - 65536);
    /* another username's key gives up the oldest of ana's */
    tpd_sessions_key_served(d, REALM, BOB, NOW);
    assert_int_equal(d->n.keys_abandoned, 200000 - 65536 + 1);
    /* each "new" confirms one of its own */
    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW + 1), 1);
    assert_int_equal(event(d, KEY(BOB, "2", "status"), NEW_V4, NOW + 1), 1);
    assert_int_equal(d->n.keys_confirmed, 2);
    /* the rest of ana's after the window: every key served is counted */
    tpd_sessions_sweep(d, NOW + 11, 0);
    assert_int_equal(d->n.keys_abandoned + d->n.keys_confirmed, 200001);
    tpd_sessions_sweep(d, NOW + 100, 0);
    assert_int_equal(d->n.keys_abandoned + d->n.keys_confirmed, 200001);
    tpd_test_free(d);
}

/* The enforcer walks the table in slices: every session once. */
typedef struct seen {
    uint64_t ids[200];
    size_t n;
} seen;

static void
visit(void *ud, const tpd_session_ref *ref)
{
    seen *s = ud;
    size_t i;

    for (i = 0; i < s->n; i++)
        assert_true(s->ids[i] != ref->id);
    assert_true(s->n < 200);
    assert_string_equal(ref->username, USER);
    s->ids[s->n++] = ref->id;
}

static void
test_scan(void **state)
{
    tpd *d = tpd_test_new(1000);
    char key[200];
    size_t cursor = 0, rounds = 0;
    seen s;
    int i, done = 0;

    for (i = 1; i <= 150; i++) {
        snprintf(key, sizeof(key), KEY(USER, "%d", "status"), i);
        assert_int_equal(event(d, key, NEW_V4, NOW), 1);
    }
    assert_int_equal(tpd_sessions_live(d->sessions), 150);
    memset(&s, 0, sizeof(s));
    while (!done) {
        size_t before = s.n;

        done = tpd_sessions_scan(d->sessions, &cursor, 10, visit, &s);
        rounds++;
        assert_true(rounds < 1000);
        /* at least the budget per slice, unless the table ends */
        if (!done)
            assert_true(s.n - before >= 10);
    }
    assert_int_equal(cursor, 0);
    assert_int_equal(s.n, 150);
    assert_true(rounds > 1);
    /* an empty table: done at once */
    tpd_sessions_sweep(d, NOW, 0);
    tpd_test_free(d);
    d = tpd_test_new(16);
    memset(&s, 0, sizeof(s));
    cursor = 0;
    assert_int_equal(tpd_sessions_scan(d->sessions, &cursor, 10, visit, &s),
                     1);
    assert_int_equal(s.n, 0);
    tpd_test_free(d);
}

/* The realm's bytes (its byte budget) are its users' together, from the
 * same reports, and follow them to the end of their sessions. */
static void
test_table_realm_bytes(void **state)
{
    tpd *d = tpd_test_new(64);
    tpd_session_ref ref;
    uint64_t b, rb;
    size_t l;

    (void)state;
    assert_int_equal(event(d, KEY(USER, "1", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(USER, "1", "traffic"), TRAFFIC, NOW), 1);
    assert_int_equal(event(d, KEY(BOB, "2", "status"), NEW_V4, NOW), 1);
    assert_int_equal(event(d, KEY(BOB, "2", "traffic"), TRAFFIC, NOW),
                     1);
    tpd_sessions_user(d->sessions, 0, REALM, "ana", &l, &b, &rb);
    assert_true(b == 1900);
    assert_true(rb == 3800);
    assert_int_equal(tpd_sessions_find(d->sessions, 2, &ref), 0);
    assert_true(ref.user_bytes == 1900);
    assert_true(ref.realm_bytes == 3800);
    /* a user with no session of its own still sees the realm's sum */
    tpd_sessions_user(d->sessions, 0, REALM, "carol", &l, &b, &rb);
    assert_true(b == 0 && rb == 3800);
    /* another realm's is apart */
    tpd_sessions_user(d->sessions, 0, "other.org", "ana", &l, &b, &rb);
    assert_true(rb == 0);
    /* traffic of an id no status report made a session: nobody's */
    assert_int_equal(event(d, KEY(USER, "9", "traffic"), TRAFFIC, NOW), 1);
    tpd_sessions_user(d->sessions, 0, REALM, "ana", &l, &b, &rb);
    assert_true(rb == 3800);
    tpd_test_free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_status),
        cmocka_unit_test(test_report_status_other),
        cmocka_unit_test(test_report_lifetime),
        cmocka_unit_test(test_report_client),
        cmocka_unit_test(test_report_traffic),
        cmocka_unit_test(test_report_malformed),
        cmocka_unit_test(test_cli_ps),
        cmocka_unit_test(test_table_new),
        cmocka_unit_test(test_table_traffic),
        cmocka_unit_test(test_table_unattributed),
        cmocka_unit_test(test_table_deleted),
        cmocka_unit_test(test_table_gone),
        cmocka_unit_test(test_table_lapse),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_keys_served),
        cmocka_unit_test(test_keys_max),
        cmocka_unit_test(test_keys_one_user),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_table_realm_bytes),
    };

    return cmocka_run_group_tests_name("sessions", tests, NULL, NULL);
}
