/*
 * test_uri.c - the nginx module's pure URI helpers (proxy-filter/tp_uri.c):
 * splitting "/t/<token>/<host>/<path>", nested URLs whatever the outer
 * host, the refusals (another token nested, a second nesting, our own
 * host alone, unsafe paths), token shapes and the request-line redaction.
 *
 * tp_uri.c is plain C outside the library; it is compiled into this test
 * directly, so the unit tests need neither nginx nor a Makefile rule of
 * their own.  The same helpers are fuzzed by tests/fuzz/fuzz_uri.c and
 * exercised through nginx by tests/integration/nginx.d/50-edges.sh.
 */
#include "tp_test.h"

#include "../../proxy-filter/tp_uri.c"

#define JWT "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" \
            ".eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDYwMH0" \
            ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
#define JWT2 "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFwcDEifQ" \
             ".eyJzdWIiOiJib2IiLCJyZWFsbSI6ImFjcy50ZXN0In0" \
             ".b3RoZXItc2lnbmF0dXJl"
#define OWN "proxy.test:8443"
#define BOTH (TP_URI_TOKEN | TP_URI_HOST)

static int
split(const char *uri, const char *prefix, unsigned flags, tp_uri_parts *p)
{
    return tp_uri_split((const unsigned char *)uri, strlen(uri),
                        (const unsigned char *)prefix, strlen(prefix), flags,
                        (const unsigned char *)OWN, sizeof(OWN) - 1, p);
}

static void
assert_part(const unsigned char *p, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

static void
test_split_plain(void **state)
{
    static const char uri[] = "/t/" JWT "/edge.skype.com:443/api/v1?x=1";
    tp_uri_parts p;

    (void)state;
    assert_int_equal(split(uri, "/t/", BOTH, &p), TP_URI_OK);
    assert_part(p.token, p.token_len, JWT);
    assert_part(p.host, p.host_len, "edge.skype.com:443");
    assert_part(p.path, p.path_len, "/api/v1");
    assert_part(p.query, p.query_len, "x=1");
    assert_int_equal(p.before_len, strlen("/t/" JWT));
    assert_int_equal(p.nested, 0);

    /* the SDK's '//' after the host is kept; no path is "/" */
    assert_int_equal(split("/t/" JWT "/h.test//ecs", "/t/", BOTH, &p),
                     TP_URI_OK);
    assert_part(p.path, p.path_len, "//ecs");
    assert_int_equal(split("/t/" JWT "/h.test", "/t/", BOTH, &p), TP_URI_OK);
    assert_part(p.path, p.path_len, "/");

    /* an empty token segment: the token is empty, the JWT is the host */
    assert_int_equal(split("/t//" JWT "/edge.skype.com/x", "/t/", BOTH, &p),
                     TP_URI_OK);
    assert_int_equal(p.token_len, 0);
    assert_part(p.host, p.host_len, JWT);
}

static void
test_split_nested(void **state)
{
    tp_uri_parts p;

    (void)state;
    /* our own host, another host, our host without its port: unwrapped */
    assert_int_equal(split("/t/" JWT "/" OWN "/t/" JWT "/e.test/x?q=1",
                           "/t/", BOTH, &p), TP_URI_OK);
    assert_part(p.host, p.host_len, "e.test");
    assert_part(p.path, p.path_len, "/x");
    assert_int_equal(p.nested, 1);
    assert_int_equal(p.before_len,
                     strlen("/t/" JWT "/" OWN "/t/" JWT));
    assert_int_equal(split("/t/" JWT "/lb.example:443/t/" JWT "/e.test/x",
                           "/t/", BOTH, &p), TP_URI_OK);
    assert_part(p.host, p.host_len, "e.test");
    assert_part(p.path, p.path_len, "/x");
    assert_int_equal(split("/t/" JWT "/proxy.test/t/" JWT "/e.test/x",
                           "/t/", BOTH, &p), TP_URI_OK);
    assert_part(p.host, p.host_len, "e.test");

    /* another token, or anything shaped like one, nested: refused */
    assert_int_equal(split("/t/" JWT "/a.test/t/" JWT2 "/e.test/x", "/t/",
                           BOTH, &p), TP_URI_ETOKEN);
    /* nested twice; our own host without a nested prefix */
    assert_int_equal(split("/t/" JWT "/a.test/t/" JWT "/b.test/t/" JWT
                           "/e.test/x", "/t/", BOTH, &p), TP_URI_ENESTED);
    assert_int_equal(split("/t/" JWT "/" OWN "/x", "/t/", BOTH, &p),
                     TP_URI_ENESTED);
    /* an upstream path that merely starts with the prefix is a path */
    assert_int_equal(split("/t/" JWT "/e.test/t/x/y", "/t/", BOTH, &p),
                     TP_URI_OK);
    assert_part(p.path, p.path_len, "/t/x/y");

    /* header or cookie tokens: recognised by our own Host */
    assert_int_equal(split("/p/" OWN "/p/e.test/v1", "/p/", TP_URI_HOST, &p),
                     TP_URI_OK);
    assert_part(p.host, p.host_len, "e.test");
    assert_part(p.path, p.path_len, "/v1");
    assert_int_equal(split("/p/lb.example/p/e.test/v1", "/p/", TP_URI_HOST,
                           &p), TP_URI_OK);
    assert_part(p.host, p.host_len, "lb.example");
}

static void
test_split_refused(void **state)
{
    static const char *const bad[] = {
        "/t/" JWT "/e.test%2F..%2Fevil.com/x",
        "/t/" JWT "/e.test/%2e%2E/x",
        "/t/" JWT "/e.test/../evil.com/x",
        "/t/" JWT "/e.test/./x",
        "/t/" JWT "/e.test/a\\b",
        "/t/" JWT "/e.test/a b",
        "/t/" JWT "/e.test/a%00",
        "/t/" JWT "/e.test/a\x7f",
        "/u/" JWT "/e.test/x",
        "/tt/" JWT "/e.test/x",
        "/t",
    };
    tp_uri_parts p;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(split(bad[i], "/t/", BOTH, &p), TP_URI_EBAD);
    /* a prefix without a trailing '/' must end at a segment */
    assert_int_equal(split("/tx/y", "/t", BOTH, &p), TP_URI_EBAD);
    assert_int_equal(split("/t/" JWT "/e.test", "/t", BOTH, &p), TP_URI_OK);
    /* "%2e" inside the query is the query's business */
    assert_int_equal(split("/t/" JWT "/e.test/x?a=%2e%2e", "/t/", BOTH, &p),
                     TP_URI_OK);
}

static void
test_shapes(void **state)
{
    static const unsigned char line[] = "GET /t/" JWT "/" OWN "/t/" JWT
                                        "/e.test/x HTTP/1.1";
    static const unsigned char want[] = "GET /t/[token]/" OWN
                                        "/t/[token]/e.test/x HTTP/1.1";
    static const unsigned char trouter[] =
        "GET /t/[token]/go.trouter.communication.microsoft.com:443"
        "/v4/c?epid=1.2.3&tc=%7B%22cv%22:%222024.1.1%22%7D HTTP/1.1";
    unsigned char out[sizeof(line) + 16];
    size_t n;

    (void)state;
    assert_true(tp_uri_jws_like((const unsigned char *)JWT, strlen(JWT)));
    assert_false(tp_uri_jws_like((const unsigned char *)"edge.skype.com",
                                 14));
    assert_false(tp_uri_jws_like((const unsigned char *)"a.b.c", 5));
    assert_false(tp_uri_jws_like((const unsigned char *)JWT ".x",
                                 strlen(JWT) + 2));
    assert_true(tp_uri_has_jws(line, sizeof(line) - 1));
    assert_true(tp_uri_has_jws((const unsigned char *)"?sdk=" JWT2,
                               strlen("?sdk=" JWT2)));
    assert_false(tp_uri_has_jws(trouter, sizeof(trouter) - 1));

    n = tp_uri_redacted_len(line, sizeof(line) - 1,
                            (const unsigned char *)JWT, strlen(JWT), 7);
    assert_int_equal(n, sizeof(want) - 1);
    assert_int_equal(tp_uri_redact(line, sizeof(line) - 1,
                                   (const unsigned char *)JWT, strlen(JWT),
                                   (const unsigned char *)"[token]", 7, out),
                     n);
    assert_memory_equal(out, want, n);
    assert_false(tp_uri_has_jws(out, n));

    assert_int_equal(tp_uri_find((const unsigned char *)"abcabd", 6,
                                 (const unsigned char *)"abd", 3), 3);
    assert_int_equal(tp_uri_find((const unsigned char *)"ab", 2,
                                 (const unsigned char *)"abc", 3),
                     (size_t)-1);
    assert_int_equal(tp_uri_find((const unsigned char *)"ab", 2,
                                 (const unsigned char *)"", 0), (size_t)-1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_plain),
        cmocka_unit_test(test_split_nested),
        cmocka_unit_test(test_split_refused),
        cmocka_unit_test(test_shapes),
    };

    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
