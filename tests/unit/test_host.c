/*
 * test_host.c - host allow-lists (policy/src/host.c): name normalization,
 * rule grammar, exact / wildcard / port / path matching, default deny.
 *
 * Every case asserts the exact status; denials also check that the match
 * reports no rule.
 */
#include "tp_test.h"

#include <stdlib.h>

/* A list built from rules[] that must all be accepted. */
static tp_hostlist *
make_list(const char *const *rules, size_t n)
{
    tp_hostlist *hl;
    tp_error err;
    size_t i;

    hl = tp_hostlist_new(&err);
    assert_non_null(hl);
    for (i = 0; i < n; i++)
        TP_ASSERT_OK(tp_hostlist_add(hl, rules[i], &err), &err);
    assert_int_equal(tp_hostlist_count(hl), n);
    return hl;
}

/* Expect the check to give want, and on TP_OK the rule index idx. */
static void
expect(const tp_hostlist *hl, const char *host, unsigned port,
       const char *path, tp_status want, int idx)
{
    tp_host_match m;
    tp_error err;
    tp_status got;

    got = tp_hostlist_check(hl, host, port, path, &m, &err);
    if (got != want) {
        print_error("host %s port %u path %s: got %s (%s), want %s\n",
                    host != NULL ? host : "(null)", port,
                    path != NULL ? path : "(null)", tp_reason(got),
                    err.message, tp_reason(want));
        fail();
    }
    assert_int_equal(err.status, got);
    if (want == TP_OK) {
        assert_int_equal(m.rule_index, idx);
        assert_non_null(m.rule);
    } else {
        assert_int_equal(m.rule_index, -1);
        assert_null(m.rule);
    }
}

static void
test_normalize(void **state)
{
    char out[256], long_label[80], long_name[300];
    tp_error err;
    size_t i;

    (void)state;
    TP_ASSERT_OK(tp_host_normalize("Edge.SKYPE.com.", out, sizeof(out),
                                   &err), &err);
    assert_string_equal(out, "edge.skype.com");
    TP_ASSERT_OK(tp_host_normalize("xn--bcher-kva.example", out,
                                   sizeof(out), &err), &err);
    assert_string_equal(out, "xn--bcher-kva.example");
    TP_ASSERT_OK(tp_host_normalize("localhost", out, sizeof(out), &err),
                 &err);
    TP_ASSERT_OK(tp_host_normalize("a-b.0x7f.example", out, sizeof(out),
                                   &err), &err);
    TP_ASSERT_OK(tp_host_normalize("1a.example.c0m", out, sizeof(out),
                                   &err), &err);

    TP_ASSERT_STATUS(TP_ENOSPACE, tp_host_normalize("edge.skype.com", out,
                                                    5, &err), &err);
    TP_ASSERT_STATUS(TP_ENOSPACE, tp_host_normalize("a.com", out, 5, &err),
                     &err);
    TP_ASSERT_OK(tp_host_normalize("a.com", out, 6, &err), &err);

    static const char *const bad[] = {
        "", ".", "..", "a..b", ".a", "a.b..", "-a.com", "a-.com",
        "a_b.com", "b\xc3\xbc" "cher.example", "\xe2\x80\x8b" "a.com",
        "127.0.0.1", "0x7f.1", "127.1", "2130706433", "1.2.3.0x7F", "a.0x",
        "[::1]", "::1", "edge.skype.com:443", "edge.skype.com@evil.com",
        "evil.com/edge.skype.com", "a b.com", "a.com\r\n", "a%2ecom",
        "*.a.com",
    };
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tp_status st = tp_host_normalize(bad[i], out, sizeof(out), &err);

        if (st != TP_EBADHOST) {
            print_error("\"%s\": got %s, want bad_host\n", bad[i],
                        tp_reason(st));
            fail();
        }
        assert_non_null(strstr(err.message, "host"));
    }
    TP_ASSERT_STATUS(TP_EBADHOST, tp_host_normalize(NULL, out, sizeof(out),
                                                    &err), &err);

    /* Labels: 63 bytes pass, 64 do not. */
    memset(long_label, 'a', 63);
    strcpy(long_label + 63, ".com");
    TP_ASSERT_OK(tp_host_normalize(long_label, out, sizeof(out), &err),
                 &err);
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".com");
    TP_ASSERT_STATUS(TP_EBADHOST, tp_host_normalize(long_label, out,
                                                    sizeof(out), &err),
                     &err);

    /* Names: 253 bytes pass (254 with a trailing dot), 254 do not. */
    for (i = 0; i < 253; i++)
        long_name[i] = (i % 2 == 1) ? '.' : 'a';
    long_name[253] = '\0';
    TP_ASSERT_OK(tp_host_normalize(long_name, out, sizeof(out), &err),
                 &err);
    assert_int_equal(strlen(out), 253);
    strcpy(long_name + 253, ".");
    TP_ASSERT_OK(tp_host_normalize(long_name, out, sizeof(out), &err),
                 &err);
    strcpy(long_name + 253, "ab");
    TP_ASSERT_STATUS(TP_EBADHOST, tp_host_normalize(long_name, out,
                                                    sizeof(out), &err),
                     &err);
    long_name[254] = '\0';
    long_name[253] = 'a';
    long_name[252] = 'a';
    TP_ASSERT_STATUS(TP_EBADHOST, tp_host_normalize(long_name, out,
                                                    sizeof(out), &err),
                     &err);
}

static void
test_default_deny(void **state)
{
    tp_hostlist *hl;
    tp_error err;

    (void)state;
    hl = tp_hostlist_new(&err);
    assert_non_null(hl);
    assert_int_equal(tp_hostlist_count(hl), 0);
    expect(hl, "edge.skype.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "edge.skype.com", 443, "/", TP_EHOSTDENIED, -1);
    expect(hl, "", 0, NULL, TP_EBADHOST, -1);
    expect(hl, NULL, 0, NULL, TP_EBADHOST, -1);
    expect(hl, "edge.skype.com", 70000, NULL, TP_EINVAL, -1);
    TP_ASSERT_STATUS(TP_EINVAL, tp_hostlist_check(NULL, "a.com", 0, NULL,
                                                  NULL, &err), &err);
    assert_int_equal(tp_hostlist_count(NULL), 0);
    tp_hostlist_free(hl);
    tp_hostlist_free(NULL);
}

static void
test_exact_and_wildcard(void **state)
{
    static const char *const rules[] = {
        "edge.skype.com",             /* 0 */
        "*.communication.azure.com",  /* 1 */
        "api.flightproxy.skype.com.", /* 2 */
        "XN--BCHER-KVA.example",      /* 3 */
        "*.Trouter.Communication.Microsoft.com", /* 4 */
    };
    tp_hostlist *hl = make_list(rules, 5);

    (void)state;
    expect(hl, "edge.skype.com", 0, NULL, TP_OK, 0);
    expect(hl, "EDGE.Skype.COM", 0, NULL, TP_OK, 0);
    expect(hl, "edge.skype.com.", 0, NULL, TP_OK, 0);
    expect(hl, "api.flightproxy.skype.com", 0, NULL, TP_OK, 2);
    expect(hl, "xn--bcher-kva.example", 0, NULL, TP_OK, 3);
    expect(hl, "b\xc3\xbc" "cher.example", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "x.communication.azure.com", 0, NULL, TP_OK, 1);
    expect(hl, "a.b.communication.azure.com", 0, "/x", TP_OK, 1);
    expect(hl, "go.trouter.communication.microsoft.com", 0, NULL, TP_OK,
           4);
    /* A wildcard never matches its suffix, nor a look-alike. */
    expect(hl, "communication.azure.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "evilcommunication.azure.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "communication.azure.com.evil.com", 0, NULL, TP_EHOSTDENIED,
           -1);
    expect(hl, "skype.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "x.edge.skype.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "edge.skype.co", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "edge.skype.com.evil.com", 0, NULL, TP_EHOSTDENIED, -1);
    /* Hosts that are not names. */
    expect(hl, "edge.skype.com@evil.com", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "evil.com#edge.skype.com", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "edge.skype.com:443", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "127.0.0.1", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "0x7f.1", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "[::1]", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "edge..skype.com", 0, NULL, TP_EBADHOST, -1);
    expect(hl, "edge_1.skype.com", 0, NULL, TP_EBADHOST, -1);
    tp_hostlist_free(hl);
}

static void
test_ports(void **state)
{
    static const char *const rules[] = {
        "a.example.com",        /* 0: 443 or none */
        "b.example.com:8443",   /* 1 */
        "c.example.com:*",      /* 2 */
        "*.d.example.com:443",  /* 3 */
    };
    tp_hostlist *hl = make_list(rules, 4);

    (void)state;
    expect(hl, "a.example.com", 0, NULL, TP_OK, 0);
    expect(hl, "a.example.com", 443, NULL, TP_OK, 0);
    expect(hl, "a.example.com", 80, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "a.example.com", 8443, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "b.example.com", 8443, NULL, TP_OK, 1);
    expect(hl, "b.example.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "b.example.com", 443, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "c.example.com", 0, NULL, TP_OK, 2);
    expect(hl, "c.example.com", 1, NULL, TP_OK, 2);
    expect(hl, "c.example.com", 65535, NULL, TP_OK, 2);
    expect(hl, "c.example.com", 65536, NULL, TP_EINVAL, -1);
    expect(hl, "x.d.example.com", 0, NULL, TP_OK, 3);
    expect(hl, "x.d.example.com", 444, NULL, TP_EHOSTDENIED, -1);
    tp_hostlist_free(hl);
}

static void
test_paths(void **state)
{
    static const char *const rules[] = {
        "p.example.com/api",        /* 0 */
        "p.example.com:*/v2/calls/", /* 1 */
        "q.example.com/",           /* 2 */
        "r.example.com",            /* 3: any path */
    };
    tp_hostlist *hl = make_list(rules, 4);

    (void)state;
    expect(hl, "p.example.com", 0, "/api", TP_OK, 0);
    expect(hl, "p.example.com", 0, "/api/x", TP_OK, 0);
    expect(hl, "p.example.com", 0, "/api/", TP_OK, 0);
    expect(hl, "p.example.com", 0, "/apix", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/ap", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/API", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "api", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "", TP_EHOSTDENIED, -1);
    /* Unsafe paths never match a path rule. */
    expect(hl, "p.example.com", 0, "/api/../admin", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/./x", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/.", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/x y", TP_EHOSTDENIED, -1);
    /* ... but "//" and "a..b" are no escape from the prefix */
    expect(hl, "p.example.com", 0, "/api//x", TP_OK, 0);
    expect(hl, "p.example.com", 0, "/api/a..b", TP_OK, 0);
    expect(hl, "p.example.com", 0, "/api/%2F..", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/%2fx", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/%5cx", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/%2e%2e/x", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/%00", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api\\x", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/\tx", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 0, "/api/a.b", TP_OK, 0);
    expect(hl, "p.example.com", 9000, "/v2/calls/1", TP_OK, 1);
    expect(hl, "p.example.com", 9000, "/v2/calls", TP_EHOSTDENIED, -1);
    expect(hl, "p.example.com", 9000, "/api", TP_EHOSTDENIED, -1);
    expect(hl, "q.example.com", 0, "/", TP_OK, 2);
    expect(hl, "q.example.com", 0, "/anything/at/all", TP_OK, 2);
    expect(hl, "q.example.com", 0, NULL, TP_EHOSTDENIED, -1);
    expect(hl, "r.example.com", 0, NULL, TP_OK, 3);
    expect(hl, "r.example.com", 0, "/a/../b", TP_OK, 3);
    tp_hostlist_free(hl);
}

static void
test_bad_rules(void **state)
{
    static const char *const badhost[] = {
        "*", "*.", "*.com", "*.com.", "**.example.com", "a.*.example.com",
        "*a.example.com", "*.*.example.com", "", ":443", "/api",
        "127.0.0.1", "10.0.0.1:443", "[::1]", "[::1]:443", "::1",
        "a_b.example.com", "b\xc3\xbc" "cher.example", "a..example.com",
        "edge.skype.com@evil.com", "user@edge.skype.com", "-a.example.com",
    };
    static const char *const badinval[] = {
        "a.example.com:", "a.example.com:0", "a.example.com:65536",
        "a.example.com:0443", "a.example.com:44a", "a.example.com:-1",
        "a.example.com:**", "a.example.com:123456", "a.example.com:443:443",
        "a.example.com/../x", "a.example.com/a//b", "a.example.com/a\\b",
        "a.example.com/a%2fb", "a.example.com/a?x=1", "a.example.com/a#f",
        "a.example.com/a b", "a.example.com/a%2E%2E",
    };
    char big[1100];
    tp_hostlist *hl;
    tp_error err;
    size_t i;

    (void)state;
    hl = tp_hostlist_new(&err);
    assert_non_null(hl);
    for (i = 0; i < sizeof(badhost) / sizeof(badhost[0]); i++) {
        tp_status st = tp_hostlist_add(hl, badhost[i], &err);

        if (st != TP_EBADHOST) {
            print_error("rule \"%s\": got %s, want bad_host\n", badhost[i],
                        tp_reason(st));
            fail();
        }
    }
    for (i = 0; i < sizeof(badinval) / sizeof(badinval[0]); i++) {
        tp_status st = tp_hostlist_add(hl, badinval[i], &err);

        if (st != TP_EINVAL) {
            print_error("rule \"%s\": got %s, want invalid_argument\n",
                        badinval[i], tp_reason(st));
            fail();
        }
    }
    assert_int_equal(tp_hostlist_count(hl), 0);
    TP_ASSERT_STATUS(TP_EINVAL, tp_hostlist_add(hl, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_hostlist_add(NULL, "a.com", &err), &err);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    TP_ASSERT_STATUS(TP_EINVAL, tp_hostlist_add(hl, big, &err), &err);

    /* Duplicates, after normalization; "no port" is port 443. */
    TP_ASSERT_OK(tp_hostlist_add(hl, "edge.skype.com", &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_hostlist_add(hl, "EDGE.skype.com.",
                                                 &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_hostlist_add(hl, "edge.skype.com:443",
                                                 &err), &err);
    TP_ASSERT_OK(tp_hostlist_add(hl, "edge.skype.com:*", &err), &err);
    TP_ASSERT_OK(tp_hostlist_add(hl, "*.edge.skype.com", &err), &err);
    TP_ASSERT_OK(tp_hostlist_add(hl, "edge.skype.com/api", &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_hostlist_add(hl, "edge.skype.com/api",
                                                 &err), &err);
    TP_ASSERT_OK(tp_hostlist_add(hl, "edge.skype.com/api/", &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_hostlist_add(hl, "*.Edge.Skype.com",
                                                 &err), &err);
    assert_int_equal(tp_hostlist_count(hl), 5);
    tp_hostlist_free(hl);
}

static void
test_first_match_and_text(void **state)
{
    static const char *const rules[] = {
        "*.skype.com:*",     /* 0 */
        "Edge.Skype.com",    /* 1: shadowed by 0 */
        "other.example.org", /* 2 */
    };
    tp_hostlist *hl = make_list(rules, 3);
    tp_error *no_err = NULL;
    tp_host_match m;
    tp_error err;
    char many[32];
    int i;

    (void)state;
    TP_ASSERT_OK(tp_hostlist_check(hl, "edge.skype.com", 0, NULL, &m, &err),
                 &err);
    assert_int_equal(m.rule_index, 0);
    assert_string_equal(m.rule, "*.skype.com:*");
    TP_ASSERT_OK(tp_hostlist_check(hl, "OTHER.example.org.", 0, NULL, &m,
                                   &err), &err);
    assert_int_equal(m.rule_index, 2);
    assert_string_equal(m.rule, "other.example.org");
    /* match and err may be NULL. */
    TP_ASSERT_OK(tp_hostlist_check(hl, "other.example.org", 0, NULL, NULL,
                                   no_err), no_err);
    TP_ASSERT_STATUS(TP_EHOSTDENIED,
                     tp_hostlist_check(hl, "x.example.org", 0, NULL, NULL,
                                       no_err), no_err);
    /* Growth keeps earlier rules and their indexes. */
    for (i = 0; i < 40; i++) {
        snprintf(many, sizeof(many), "h%d.example.net", i);
        TP_ASSERT_OK(tp_hostlist_add(hl, many, &err), &err);
    }
    expect(hl, "h39.example.net", 0, NULL, TP_OK, 42);
    expect(hl, "other.example.org", 0, NULL, TP_OK, 2);
    tp_hostlist_free(hl);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_exact_and_wildcard),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_first_match_and_text),
    };

    return cmocka_run_group_tests_name("host", tests, NULL, NULL);
}
