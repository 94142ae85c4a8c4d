/*
 * test_turnurl.c - TURN/STUN URL rules (tp_turn_url_parse), the ACS native
 * SDKs' choice (tp_native_turn) and the acs-native credential JSON.
 *
 * The cases are tests/data/turn_urls.cases, which the SQL functions of
 * schema/005_acs.sql are held to as well (tests/integration/acs_native.sh):
 * one table, two implementations that must agree.  Run from the top of
 * the tree (tests/run.sh does).
 */
#include "tp_test.h"

#include <stdlib.h>

#define CASES "tests/data/turn_urls.cases"

static void
test_cases(void **state)
{
    FILE *f;
    char line[2048], *p, *arrow, *tok, *save = NULL;
    const char *urls[32];
    size_t n;
    int count = 0;
    tp_turn_url u;
    tp_error err;
    tp_status st;

    (void)state;
    f = fopen(CASES, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        count++;
        if (strncmp(line, "ok ", 3) == 0) {
            st = tp_turn_url_parse(line + 3, &u, &err);
            if (st != TP_OK)
                print_error("ok case refused: %s: %s\n", line + 3,
                            err.message);
            assert_int_equal(st, TP_OK);
        } else if (strncmp(line, "bad ", 4) == 0) {
            st = tp_turn_url_parse(line + 4, &u, &err);
            if (st != TP_EBADURL)
                print_error("bad case accepted: %s\n", line + 4);
            assert_int_equal(st, TP_EBADURL);
            assert_true(strlen(err.message) > 10);
        } else {
            assert_int_equal(strncmp(line, "native", 6), 0);
            arrow = strstr(line, "=>");
            assert_non_null(arrow);
            *arrow = '\0';
            n = 0;
            for (tok = strtok_r(line + 6, " ", &save); tok != NULL;
                 tok = strtok_r(NULL, " ", &save))
                urls[n++] = tok;
            p = arrow + 3;
            st = tp_native_turn("example.org", urls, n, &u, &err);
            if (strcmp(p, "refuse") == 0) {
                TP_ASSERT_STATUS(TP_ENATIVE, st, &err);
            } else {
                char want[300];

                TP_ASSERT_OK(st, &err);
                snprintf(want, sizeof(want), "turn:%s %u", u.host, u.port);
                assert_string_equal(want, p);
            }
        }
    }
    fclose(f);
    assert_true(count > 40);
}

static void
test_parse_fields(void **state)
{
    tp_turn_url u;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_turn_url_parse("turns:relay.example.org:5349?"
                                   "transport=tcp", &u, &err), &err);
    assert_int_equal(u.scheme, TP_URL_TURNS);
    assert_int_equal(u.host_kind, TP_URL_NAME);
    assert_int_equal(u.transport, TP_URL_TCP);
    assert_int_equal(u.port, 5349);
    assert_string_equal(u.host, "relay.example.org");
    TP_ASSERT_OK(tp_turn_url_parse("turn:[2001:db8::7]", &u, NULL), NULL);
    assert_int_equal(u.host_kind, TP_URL_IPV6);
    assert_string_equal(u.host, "[2001:db8::7]");
    assert_int_equal(u.port, 0);
    TP_ASSERT_STATUS(TP_EINVAL, tp_turn_url_parse(NULL, &u, &err), &err);
    TP_ASSERT_STATUS(TP_EBADURL, tp_turn_url_parse("turn:alice:s3cret@relay."
                                                   "example.org", &u, &err),
                     &err);
    assert_null(strstr(err.message, "s3cret"));
    {
        char big[400];

        memset(big, 'a', sizeof(big) - 1);
        memcpy(big, "turn:", 5);
        big[sizeof(big) - 1] = '\0';
        TP_ASSERT_STATUS(TP_EBADURL, tp_turn_url_parse(big, &u, &err), &err);
        /* the message quotes a bounded, printable part of it */
        assert_true(strlen(err.message) < 200);
    }
}

static void
test_native_messages(void **state)
{
    const char *v6[] = {"turn:[2001:db8::7]:3478"};
    const char *tcp[] = {"turn:203.0.113.7?transport=tcp",
                         "turns:203.0.113.7:443?transport=tcp"};
    const char *ok[] = {"turn:203.0.113.7"};
    tp_turn_url u;
    tp_error err;

    (void)state;
    TP_ASSERT_STATUS(TP_ENATIVE, tp_native_turn("r", v6, 1, &u, &err), &err);
    assert_non_null(strstr(err.message, "IPv6 only"));
    TP_ASSERT_STATUS(TP_ENATIVE, tp_native_turn("r", tcp, 2, &u, &err),
                     &err);
    assert_non_null(strstr(err.message, "TCP/TLS only"));
    TP_ASSERT_STATUS(TP_ENATIVE, tp_native_turn("r", NULL, 0, &u, &err),
                     &err);
    TP_ASSERT_STATUS(TP_ENATIVE, tp_native_turn("", ok, 1, &u, &err), &err);
    assert_non_null(strstr(err.message, "realm"));
    TP_ASSERT_STATUS(TP_ENATIVE, tp_native_turn(NULL, ok, 1, &u, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_native_turn("r", NULL, 1, &u, &err),
                     &err);
}

static void
test_native_json(void **state)
{
    const char *urls[] = {"turns:relay.example.org:5349?transport=tcp",
                          "turn:203.0.113.7:3479?transport=udp"};
    const char *v6[] = {"turn:[2001:db8::7]"};
    unsigned char secret[32];
    tp_keyring *kr;
    tp_credential c;
    tp_cred_json shape;
    char buf[1024], want[1024];
    tp_error err;

    (void)state;
    memset(secret, 7, sizeof(secret));
    kr = tp_keyring_new("example.org", NULL, &err);
    assert_non_null(kr);
    TP_ASSERT_OK(tp_keyring_add(kr, "k1", secret, sizeof(secret),
                                TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 600, 1700000000, &c, &err),
                 &err);
    TP_ASSERT_OK(tp_credential_json_realm(&c, "example.org", urls, 2,
                                          TP_JSON_ACS_NATIVE, buf,
                                          sizeof(buf), NULL, &err), &err);
    snprintf(want, sizeof(want),
             "{\"iceServers\":[{\"urls\":[\"turn:203.0.113.7\"],"
             "\"udpPort\":3479,\"realm\":\"example.org\",\"username\":\"%s\","
             "\"password\":\"%s\"}],\"ttl\":600,"
             "\"expiresOn\":\"2023-11-14T22:23:20Z\"}",
             c.username, c.password);
    assert_string_equal(buf, want);
    TP_ASSERT_STATUS(TP_ENATIVE,
                     tp_credential_json_realm(&c, "example.org", v6, 1,
                                              TP_JSON_ACS_NATIVE, buf,
                                              sizeof(buf), NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_credential_json(&c, urls, 2, TP_JSON_ACS_NATIVE, buf,
                                        sizeof(buf), NULL, &err), &err);
    TP_ASSERT_OK(tp_cred_json_parse("acs-native", &shape, &err), &err);
    assert_int_equal(shape, TP_JSON_ACS_NATIVE);
    TP_ASSERT_OK(tp_cred_json_parse("ice", &shape, &err), &err);
    assert_int_equal(shape, TP_JSON_ICE);
    TP_ASSERT_OK(tp_cred_json_parse("rest", &shape, &err), &err);
    assert_int_equal(shape, TP_JSON_REST);
    TP_ASSERT_STATUS(TP_EINVAL, tp_cred_json_parse("native", &shape, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_cred_json_parse(NULL, &shape, &err),
                     &err);
    memset(&c, 0, sizeof(c));
    tp_keyring_free(kr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_native_messages),
        cmocka_unit_test(test_native_json),
    };

    return cmocka_run_group_tests_name("turnurl", tests, NULL, NULL);
}
