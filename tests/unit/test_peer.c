/*
 * test_peer.c - TURN peer address sets (policy/src/peer.c): address and
 * CIDR parsing, the built-in default deny, IPv4 embedded in IPv6, realm
 * rules, the default action, and the coturn 4.6.1 export.
 *
 * The export is checked two ways: exact strings and counts for known sets,
 * and a small model of coturn 4.6.1's range matching (written from reading
 * add_ip_list_range / ioa_addr_in_range / addr_less_eq / good_peer_addr,
 * not copied) that must reach tp_peerset_check's decision for boundary and
 * pseudo-random addresses in every IPv6 spelling.
 */
#include "tp_test.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static tp_peerset *
new_set(void)
{
    tp_peerset *ps;
    tp_error err;

    ps = tp_peerset_new(&err);
    assert_non_null(ps);
    return ps;
}

static void
add_rule(tp_peerset *ps, const char *cidr, tp_peer_action action)
{
    tp_error err;

    TP_ASSERT_OK(tp_peerset_add(ps, cidr, action, &err), &err);
}

/* Check addr: want status, and the deciding rule text and builtin flag. */
static void
expect_peer(const tp_peerset *ps, const char *addr, tp_status want,
            const char *rule, int builtin)
{
    tp_peer_decision d;
    tp_error err;
    tp_status got;

    got = tp_peerset_check_str(ps, addr, &d, &err);
    if (got != want || strcmp(d.rule, rule) != 0 || d.builtin != builtin) {
        print_error("%s: got %s rule \"%s\" builtin %d (%s), want %s rule "
                    "\"%s\" builtin %d\n", addr, tp_reason(got), d.rule,
                    d.builtin, err.message, tp_reason(want), rule, builtin);
        fail();
    }
    assert_int_equal(err.status, got);
    if (got == TP_OK)
        assert_int_equal(d.action, TP_PEER_ALLOW);
    else
        assert_int_equal(d.action, TP_PEER_DENY);
}

#define DENIED_BUILTIN(ps, a, r) expect_peer(ps, a, TP_EPEERDENIED, r, 1)
#define DENIED_REALM(ps, a, r) expect_peer(ps, a, TP_EPEERDENIED, r, 0)
#define ALLOWED(ps, a, r) expect_peer(ps, a, TP_OK, r, 0)

/* ------------------------------------------------------------------ */
/* parsing                                                             */
/* ------------------------------------------------------------------ */

static void
test_addr_parse(void **state)
{
    static const char *const bad[] = {
        "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1",
        "0x7f.0.0.1", "127.1", "2130706433", " 1.2.3.4", "1.2.3.4 ",
        "fe80::1%eth0", "fe80::1%25eth0", "[fe80::1%eth0]", "[1.2.3.4]",
        "[::1", "::1]", "[]", "[::1]:3478", "1.2.3.4:3478", ":::",
        "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "abc", "localhost",
        "1.2.3.4/32", "::1/128",
        "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:1",
    };
    tp_addr a;
    tp_error err;
    size_t i;

    (void)state;
    TP_ASSERT_OK(tp_addr_parse("192.0.2.1", &a, &err), &err);
    assert_int_equal(a.family, AF_INET);
    assert_memory_equal(a.bytes, "\xc0\x00\x02\x01", 4);
    TP_ASSERT_OK(tp_addr_parse("2001:db8::1", &a, &err), &err);
    assert_int_equal(a.family, AF_INET6);
    assert_memory_equal(a.bytes, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\1",
                        16);
    TP_ASSERT_OK(tp_addr_parse("[2001:DB8::1]", &a, &err), &err);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.bytes[15], 1);
    /* Parsing keeps an IPv4-mapped address as written (IPv6). */
    TP_ASSERT_OK(tp_addr_parse("::ffff:127.0.0.1", &a, &err), &err);
    assert_int_equal(a.family, AF_INET6);
    TP_ASSERT_OK(tp_addr_parse("0.0.0.0", &a, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("255.255.255.255", &a, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("::", &a, &err), &err);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tp_status st = tp_addr_parse(bad[i], &a, &err);

        if (st != TP_EBADADDR) {
            print_error("\"%s\": got %s, want bad_address\n", bad[i],
                        tp_reason(st));
            fail();
        }
        assert_int_equal(a.family, 0);
    }
    TP_ASSERT_STATUS(TP_EBADADDR, tp_addr_parse("fe80::1%eth0", &a, &err),
                     &err);
    assert_non_null(strstr(err.message, "zone"));
    TP_ASSERT_STATUS(TP_EBADADDR, tp_addr_parse(NULL, &a, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_addr_parse("1.2.3.4", NULL, &err), &err);
}

static void
test_bad_cidr(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "/8", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1",
        "10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0.0/8 ", "10.0.0.0 /8",
        "::/129", "::/1000", "fe80::%eth0/64", "fe80::/10%eth0", "garbage",
        "garbage/8", "10.0.0/8", "", "10.0.0.0/0x8", "[::1]/",
    };
    tp_peerset *ps = new_set();
    tp_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tp_status st = tp_peerset_add(ps, bad[i], TP_PEER_DENY, &err);

        if (st != TP_EBADADDR) {
            print_error("\"%s\": got %s, want bad_address\n", bad[i],
                        tp_reason(st));
            fail();
        }
    }
    /* Host bits set: refused, and the message says so. */
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_add(ps, "10.0.0.1/8",
                                                 TP_PEER_ALLOW, &err), &err);
    assert_non_null(strstr(err.message, "host bits"));
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_add(ps, "fe80::1/64",
                                                 TP_PEER_ALLOW, &err), &err);
    assert_non_null(strstr(err.message, "host bits"));
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_add(ps, "::ffff:10.0.0.0/95",
                                                 TP_PEER_ALLOW, &err), &err);
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_add(ps, "0.0.0.1/0",
                                                 TP_PEER_ALLOW, &err), &err);

    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_add(ps, NULL, TP_PEER_DENY,
                                               &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_add(NULL, "10.0.0.0/8",
                                               TP_PEER_DENY, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_add(ps, "10.0.0.0/8",
                                               (tp_peer_action)7, &err),
                     &err);

    /* Good forms; duplicates after canonicalization are refused. */
    add_rule(ps, "0.0.0.0/0", TP_PEER_ALLOW);
    add_rule(ps, "[2001:db8::]/32", TP_PEER_ALLOW);
    add_rule(ps, "203.0.113.7", TP_PEER_DENY);
    add_rule(ps, "::ffff:198.51.100.0/120", TP_PEER_DENY);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_peerset_add(ps, "198.51.100.0/24",
                                                TP_PEER_ALLOW, &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_peerset_add(ps, "203.0.113.7/32",
                                                TP_PEER_DENY, &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_peerset_add(ps, "2001:DB8::/32",
                                                TP_PEER_DENY, &err), &err);
    /* The mapped rule is stored (and reported) as IPv4. */
    DENIED_REALM(ps, "198.51.100.1", "198.51.100.0/24");
    DENIED_REALM(ps, "203.0.113.7", "203.0.113.7/32");
    ALLOWED(ps, "2001:db8::1", "2001:db8::/32");
    tp_peerset_free(ps);
    tp_peerset_free(NULL);
}

/* ------------------------------------------------------------------ */
/* decisions                                                           */
/* ------------------------------------------------------------------ */

static void
test_default_deny(void **state)
{
    tp_peerset *ps = new_set();

    (void)state;
    /* One address (at least) in every built-in entry. */
    DENIED_BUILTIN(ps, "0.0.0.0", "0.0.0.0/8");
    DENIED_BUILTIN(ps, "0.255.255.255", "0.0.0.0/8");
    DENIED_BUILTIN(ps, "10.1.2.3", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "100.64.0.1", "100.64.0.0/10");
    DENIED_BUILTIN(ps, "100.127.255.255", "100.64.0.0/10");
    DENIED_BUILTIN(ps, "127.0.0.1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "169.254.169.254", "169.254.0.0/16");
    DENIED_BUILTIN(ps, "172.16.0.1", "172.16.0.0/12");
    DENIED_BUILTIN(ps, "172.31.255.255", "172.16.0.0/12");
    DENIED_BUILTIN(ps, "192.0.0.8", "192.0.0.0/24");
    DENIED_BUILTIN(ps, "192.0.2.1", "192.0.2.0/24");
    DENIED_BUILTIN(ps, "192.88.99.1", "192.88.99.0/24");
    DENIED_BUILTIN(ps, "192.168.1.1", "192.168.0.0/16");
    DENIED_BUILTIN(ps, "198.18.0.1", "198.18.0.0/15");
    DENIED_BUILTIN(ps, "198.19.255.255", "198.18.0.0/15");
    DENIED_BUILTIN(ps, "198.51.100.1", "198.51.100.0/24");
    DENIED_BUILTIN(ps, "203.0.113.1", "203.0.113.0/24");
    DENIED_BUILTIN(ps, "224.0.0.1", "224.0.0.0/4");
    DENIED_BUILTIN(ps, "239.255.255.250", "224.0.0.0/4");
    DENIED_BUILTIN(ps, "240.0.0.1", "240.0.0.0/4");
    DENIED_BUILTIN(ps, "255.255.255.255", "240.0.0.0/4");
    DENIED_BUILTIN(ps, "::", "::/128");
    DENIED_BUILTIN(ps, "::1", "::1/128");
    DENIED_BUILTIN(ps, "[::1]", "::1/128");
    DENIED_BUILTIN(ps, "100::1", "100::/64");
    DENIED_BUILTIN(ps, "2001:db8::1", "2001:db8::/32");
    DENIED_BUILTIN(ps, "fc00::1", "fc00::/7");
    DENIED_BUILTIN(ps, "fd12:3456::1", "fc00::/7");
    DENIED_BUILTIN(ps, "fe80::1", "fe80::/10");
    DENIED_BUILTIN(ps, "febf:ffff::1", "fe80::/10");
    DENIED_BUILTIN(ps, "fec0::1", "fec0::/10");
    DENIED_BUILTIN(ps, "ff02::1", "ff00::/8");

    /* IPv4 in IPv6 clothing. */
    DENIED_BUILTIN(ps, "::ffff:127.0.0.1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "::ffff:7f00:1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "::ffff:10.0.0.1", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "::ffff:169.254.169.254", "169.254.0.0/16");
    DENIED_BUILTIN(ps, "::ffff:0.0.0.0", "0.0.0.0/8");
    DENIED_BUILTIN(ps, "64:ff9b::a00:1", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "64:ff9b::169.254.169.254", "169.254.0.0/16");
    DENIED_BUILTIN(ps, "2002:a00:1::", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "2002:7f00:1:1234::1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "::10.0.0.1", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "::127.0.0.1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "::2", "0.0.0.0/8");

    /* Public addresses, in every form, and the edges of the entries. */
    ALLOWED(ps, "8.8.8.8", "");
    ALLOWED(ps, "2001:4860::8888", "");
    ALLOWED(ps, "2001:4860:4860::8888", "");
    ALLOWED(ps, "::ffff:8.8.8.8", "");
    ALLOWED(ps, "64:ff9b::808:808", "");
    ALLOWED(ps, "2002:808:808::1", "");
    ALLOWED(ps, "::8.8.8.8", "");
    ALLOWED(ps, "1.0.0.0", "");
    ALLOWED(ps, "9.255.255.255", "");
    ALLOWED(ps, "11.0.0.0", "");
    ALLOWED(ps, "100.63.255.255", "");
    ALLOWED(ps, "100.128.0.0", "");
    ALLOWED(ps, "172.15.255.255", "");
    ALLOWED(ps, "172.32.0.0", "");
    ALLOWED(ps, "192.0.1.1", "");
    ALLOWED(ps, "198.17.255.255", "");
    ALLOWED(ps, "198.20.0.0", "");
    ALLOWED(ps, "223.255.255.255", "");
    ALLOWED(ps, "100:0:0:1::", "");
    ALLOWED(ps, "2001:db9::", "");
    ALLOWED(ps, "fe00::1", "");
    ALLOWED(ps, "64:ff9c::a00:1", "");
    tp_peerset_free(ps);
}

static void
test_realm_allow(void **state)
{
    tp_peerset *ps = new_set();

    (void)state;
    add_rule(ps, "127.0.0.0/8", TP_PEER_ALLOW);
    ALLOWED(ps, "127.0.0.1", "127.0.0.0/8");
    ALLOWED(ps, "::ffff:127.0.0.1", "127.0.0.0/8");
    ALLOWED(ps, "64:ff9b::7f00:1", "127.0.0.0/8");
    ALLOWED(ps, "2002:7f00:1::", "127.0.0.0/8");
    ALLOWED(ps, "::127.0.0.1", "127.0.0.0/8");
    DENIED_BUILTIN(ps, "10.0.0.1", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "::ffff:10.0.0.1", "10.0.0.0/8");
    DENIED_BUILTIN(ps, "::1", "::1/128");
    ALLOWED(ps, "8.8.8.8", "");

    /* Allowing an embedding region does not allow what it embeds. */
    add_rule(ps, "64:ff9b::/96", TP_PEER_ALLOW);
    ALLOWED(ps, "64:ff9b::808:808", "64:ff9b::/96");
    DENIED_BUILTIN(ps, "64:ff9b::a00:1", "10.0.0.0/8");
    ALLOWED(ps, "64:ff9b::7f00:1", "64:ff9b::/96");

    /* An IPv6 allow does not reach IPv4-mapped addresses (they are
     * IPv4), but it does override IPv6 built-ins. */
    add_rule(ps, "::/0", TP_PEER_ALLOW);
    DENIED_BUILTIN(ps, "::ffff:10.0.0.1", "10.0.0.0/8");
    ALLOWED(ps, "fe80::1", "::/0");
    ALLOWED(ps, "::1", "::/0");
    DENIED_BUILTIN(ps, "::10.0.0.1", "10.0.0.0/8");
    tp_peerset_free(ps);
}

static void
test_realm_deny_beats_allow(void **state)
{
    tp_peerset *ps = new_set();

    (void)state;
    add_rule(ps, "10.0.0.0/8", TP_PEER_ALLOW);
    add_rule(ps, "10.1.0.0/16", TP_PEER_DENY);
    add_rule(ps, "8.8.8.0/24", TP_PEER_DENY);
    add_rule(ps, "2001:4860::/32", TP_PEER_DENY);
    add_rule(ps, "2001:4860:4860::/48", TP_PEER_ALLOW);
    ALLOWED(ps, "10.2.0.1", "10.0.0.0/8");
    ALLOWED(ps, "64:ff9b::a02:1", "10.0.0.0/8");
    DENIED_REALM(ps, "10.1.2.3", "10.1.0.0/16");
    DENIED_REALM(ps, "::ffff:10.1.2.3", "10.1.0.0/16");
    DENIED_REALM(ps, "2002:a01:203::", "10.1.0.0/16");
    DENIED_REALM(ps, "8.8.8.8", "8.8.8.0/24");
    DENIED_REALM(ps, "::ffff:8.8.8.8", "8.8.8.0/24");
    DENIED_REALM(ps, "64:ff9b::808:808", "8.8.8.0/24");
    DENIED_REALM(ps, "2002:808:808::", "8.8.8.0/24");
    DENIED_REALM(ps, "::8.8.8.8", "8.8.8.0/24");
    ALLOWED(ps, "8.8.4.4", "");
    DENIED_REALM(ps, "2001:4860:4860::8888", "2001:4860::/32");
    DENIED_REALM(ps, "2001:4860::1", "2001:4860::/32");
    DENIED_BUILTIN(ps, "192.168.0.1", "192.168.0.0/16");
    tp_peerset_free(ps);
}

static void
test_default_action_deny(void **state)
{
    tp_peerset *ps = new_set();

    (void)state;
    tp_peerset_set_default(ps, TP_PEER_DENY);
    DENIED_REALM(ps, "8.8.8.8", "");
    DENIED_REALM(ps, "2001:4860::8888", "");
    DENIED_BUILTIN(ps, "10.0.0.1", "10.0.0.0/8");
    add_rule(ps, "8.8.8.0/24", TP_PEER_ALLOW);
    add_rule(ps, "192.168.1.0/24", TP_PEER_ALLOW);
    ALLOWED(ps, "8.8.8.8", "8.8.8.0/24");
    ALLOWED(ps, "::ffff:8.8.8.8", "8.8.8.0/24");
    ALLOWED(ps, "192.168.1.1", "192.168.1.0/24");
    DENIED_BUILTIN(ps, "192.168.2.1", "192.168.0.0/16");
    DENIED_REALM(ps, "8.8.4.4", "");
    /* Unknown values are ignored; allow restores the default. */
    tp_peerset_set_default(ps, (tp_peer_action)9);
    DENIED_REALM(ps, "8.8.4.4", "");
    tp_peerset_set_default(ps, TP_PEER_ALLOW);
    ALLOWED(ps, "8.8.4.4", "");
    tp_peerset_set_default(NULL, TP_PEER_DENY);
    tp_peerset_free(ps);
}

static void
test_check_errors(void **state)
{
    static const char *const garbage[] = {
        "", "garbage", "10.0.0.1/8", "fe80::1%eth0", "1.2.3", "[::1]:80",
        "\xff\xfe", "999.0.0.1",
    };
    tp_peerset *ps = new_set();
    tp_peer_decision d;
    tp_addr a;
    tp_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_check_str(ps, garbage[i],
                                                           &d, &err), &err);
        assert_int_equal(d.action, TP_PEER_DENY);
        assert_string_equal(d.rule, "");
    }
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_check_str(ps, NULL, &d, &err),
                     &err);
    memset(&a, 0, sizeof(a));
    a.family = 12345;
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_check(ps, &a, &d, &err), &err);
    TP_ASSERT_STATUS(TP_EBADADDR, tp_peerset_check(ps, NULL, &d, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_check_str(NULL, "8.8.8.8", &d,
                                                     &err), &err);
    /* dec and err may be NULL; the message names the rule. */
    assert_int_equal(tp_peerset_check_str(ps, "10.0.0.1", NULL, NULL),
                     TP_EPEERDENIED);
    TP_ASSERT_STATUS(TP_EPEERDENIED, tp_peerset_check_str(ps, "10.0.0.1",
                                                          NULL, &err), &err);
    assert_non_null(strstr(err.message, "10.0.0.0/8"));
    assert_non_null(strstr(err.message, "built-in"));
    tp_peerset_free(ps);
}

/* ------------------------------------------------------------------ */
/* coturn export: strings and counts                                   */
/* ------------------------------------------------------------------ */

#define MAX_RANGES 4096

struct ranges {
    size_t n;
    char *s[MAX_RANGES];
    int stop_after; /* > 0: return TP_ENOSPACE at that call */
};

static tp_status
collect(void *ud, const char *range)
{
    struct ranges *r = ud;

    if (r->stop_after > 0 && (int)r->n + 1 == r->stop_after)
        return TP_ENOSPACE;
    if (r->n >= MAX_RANGES)
        return TP_ENOSPACE;
    r->s[r->n] = strdup(range);
    assert_non_null(r->s[r->n]);
    r->n++;
    return TP_OK;
}

static void
ranges_free(struct ranges *r)
{
    size_t i;

    for (i = 0; i < r->n; i++)
        free(r->s[i]);
    r->n = 0;
}

static int
ranges_has(const struct ranges *r, const char *s)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        if (strcmp(r->s[i], s) == 0)
            return 1;
    }
    return 0;
}

static void
export(const tp_peerset *ps, tp_peer_action which, struct ranges *r)
{
    tp_error err;

    memset(r, 0, sizeof(*r));
    TP_ASSERT_OK(tp_peerset_export_coturn(ps, which, collect, r, &err),
                 &err);
}

static void
test_export_strings(void **state)
{
    static const char *const deny_has[] = {
        "0.0.0.0-0.255.255.255",
        "10.0.0.0-10.255.255.255",
        "100.64.0.0-100.127.255.255",
        "169.254.0.0-169.254.255.255",
        "224.0.0.0-255.255.255.255",
        "::1",
        "::2-::3",
        "::0.128.0.0-::0.255.255.255",
        "::10.0.0.0-::10.255.255.255",
        "::ffff:10.0.0.0-::ffff:10.255.255.255",
        "::ffff:127.0.0.0-::ffff:127.255.255.255",
        "::ffff:0.0.0.0-::ffff:0.255.255.255",
        "64:ff9b::a00:0-64:ff9b::aff:ffff",
        "64:ff9b::a9fe:0-64:ff9b::a9fe:ffff",
        "2002:a00::-2002:aff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2002:e000::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "100::-100::ffff:ffff:ffff:ffff",
        "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    };
    static const char *const allow127[] = {
        "127.0.0.0-127.255.255.255",
        "::127.0.0.0-::127.255.255.255",
        "::ffff:127.0.0.0-::ffff:127.255.255.255",
        "64:ff9b::7f00:0-64:ff9b::7fff:ffff",
        "2002:7f00::-2002:7fff:ffff:ffff:ffff:ffff:ffff:ffff",
    };
    struct ranges r;
    tp_peerset *ps = new_set();
    tp_error err;
    size_t i;

    (void)state;
    /*
     * Default set, denied: 15 IPv4 entries in 14 ranges (224/4 and 240/4
     * merge), the same 14 as IPv4-mapped, NAT64 and 6to4 prefixes; in
     * ::/96 (IPv4-compatible) 13 prefixes plus ::/104 (:: ::1 and
     * 0.0.0.0/8) split into 24 so none starts at "::"; and 5 IPv6 entries
     * (fe80::/10 + fec0::/10 = fe80::/9).  14 * 4 + 13 + 24 + 5 = 98.
     */
    export(ps, TP_PEER_DENY, &r);
    for (i = 0; i < sizeof(deny_has) / sizeof(deny_has[0]); i++) {
        if (!ranges_has(&r, deny_has[i])) {
            print_error("deny export lacks \"%s\"\n", deny_has[i]);
            fail();
        }
    }
    assert_int_equal(r.n, 98);
    assert_string_equal(r.s[0], "0.0.0.0-0.255.255.255");
    assert_string_equal(r.s[13], "224.0.0.0-255.255.255.255");
    assert_string_equal(r.s[14], "::1");
    assert_false(ranges_has(&r, "::"));
    assert_false(ranges_has(&r, "0.0.0.0"));
    for (i = 0; i < r.n; i++)
        assert_true(strncmp(r.s[i], "::-", 3) != 0);
    ranges_free(&r);
    export(ps, TP_PEER_ALLOW, &r);
    assert_int_equal(r.n, 0);

    /* Allow 127/8: exactly its five forms are allowed, and they leave the
     * denied export. */
    add_rule(ps, "127.0.0.0/8", TP_PEER_ALLOW);
    export(ps, TP_PEER_ALLOW, &r);
    assert_int_equal(r.n, 5);
    for (i = 0; i < 5; i++)
        assert_true(ranges_has(&r, allow127[i]));
    assert_string_equal(r.s[0], "127.0.0.0-127.255.255.255");
    ranges_free(&r);
    export(ps, TP_PEER_DENY, &r);
    assert_int_equal(r.n, 98 - 5);
    for (i = 0; i < 5; i++)
        assert_false(ranges_has(&r, allow127[i]));
    ranges_free(&r);

    /* Allow 10/8 minus deny 10.1/16: coturn checks allowed first, so the
     * allowed export leaves the hole out. */
    add_rule(ps, "10.0.0.0/8", TP_PEER_ALLOW);
    add_rule(ps, "10.1.0.0/16", TP_PEER_DENY);
    export(ps, TP_PEER_ALLOW, &r);
    assert_true(ranges_has(&r, "10.0.0.0-10.0.255.255"));
    assert_true(ranges_has(&r, "10.2.0.0-10.255.255.255"));
    assert_true(ranges_has(&r, "::ffff:10.0.0.0-::ffff:10.0.255.255"));
    assert_true(ranges_has(&r, "::ffff:10.2.0.0-::ffff:10.3.255.255"));
    assert_false(ranges_has(&r, "10.0.0.0-10.255.255.255"));
    ranges_free(&r);
    export(ps, TP_PEER_DENY, &r);
    assert_true(ranges_has(&r, "10.1.0.0-10.1.255.255"));
    assert_true(ranges_has(&r, "64:ff9b::a01:0-64:ff9b::a01:ffff"));
    ranges_free(&r);

    /* The callback's status stops the export and is returned. */
    memset(&r, 0, sizeof(r));
    r.stop_after = 3;
    TP_ASSERT_STATUS(TP_ENOSPACE, tp_peerset_export_coturn(
                         ps, TP_PEER_DENY, collect, &r, &err), &err);
    assert_int_equal(r.n, 2);
    ranges_free(&r);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_export_coturn(
                         ps, (tp_peer_action)3, collect, &r, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_export_coturn(
                         ps, TP_PEER_DENY, NULL, &r, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_peerset_export_coturn(
                         NULL, TP_PEER_DENY, collect, &r, &err), &err);
    tp_peerset_free(ps);
}

/* ------------------------------------------------------------------ */
/* coturn export: a model of coturn 4.6.1's matching                   */
/* ------------------------------------------------------------------ */

/*
 * coturn 4.6.1, as read (not copied):
 *   - a value "a-b" is split at the first '-', each side parsed as a
 *     literal (IPv4 first); "a" alone is the range [a, a];
 *   - a bound equal to 0.0.0.0 or :: ("any") is not checked at all;
 *   - a <= b across families is family(a) < family(b); IPv4 compares as a
 *     number; IPv6 is a <= b iff every byte of a <= that byte of b;
 *   - good_peer_addr: 0.0.0.0/8 and :: refused, then any allowed range
 *     allows, then any denied range denies, else allowed.  (Its loopback
 *     and multicast checks depend on options and are left out.)
 */
struct sim_addr {
    int af;
    uint8_t b[16];
};

struct sim_range {
    struct sim_addr min, max;
};

struct sim {
    size_t nallow, ndeny;
    struct sim_range allow[MAX_RANGES], deny[MAX_RANGES];
};

static void
sim_parse(const char *s, struct sim_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->b) == 1) {
        a->af = AF_INET;
        return;
    }
    if (inet_pton(AF_INET6, s, a->b) == 1) {
        a->af = AF_INET6;
        return;
    }
    print_error("coturn would resolve \"%s\" as a host name\n", s);
    fail();
}

static void
sim_load(struct sim_range *out, size_t *n, const struct ranges *r)
{
    char buf[128];
    char *dash;
    size_t i;

    for (i = 0; i < r->n; i++) {
        assert_true(strlen(r->s[i]) < sizeof(buf));
        strcpy(buf, r->s[i]);
        dash = strchr(buf, '-');
        if (dash != NULL)
            *dash = '\0';
        sim_parse(buf, &out[i].min);
        if (dash != NULL)
            sim_parse(dash + 1, &out[i].max);
        else
            out[i].max = out[i].min;
    }
    *n = r->n;
}

static int
sim_any(const struct sim_addr *a)
{
    static const uint8_t zero[16];

    return memcmp(a->b, zero, a->af == AF_INET ? 4 : 16) == 0;
}

static int
sim_le(const struct sim_addr *a, const struct sim_addr *b)
{
    int i;

    if (a->af != b->af)
        return a->af < b->af;
    if (a->af == AF_INET)
        return memcmp(a->b, b->b, 4) <= 0;
    for (i = 0; i < 16; i++) {
        if (a->b[i] > b->b[i])
            return 0;
    }
    return 1;
}

static int
sim_in(const struct sim_range *r, const struct sim_addr *a)
{
    return (sim_any(&r->min) || sim_le(&r->min, a)) &&
           (sim_any(&r->max) || sim_le(a, &r->max));
}

/* 1 = allowed, 0 = denied. */
static int
sim_good_peer(const struct sim *s, const struct sim_addr *a)
{
    size_t i;

    if (a->af == AF_INET ? a->b[0] == 0 : sim_any(a))
        return 0;
    for (i = 0; i < s->nallow; i++) {
        if (sim_in(&s->allow[i], a))
            return 1;
    }
    for (i = 0; i < s->ndeny; i++) {
        if (sim_in(&s->deny[i], a))
            return 0;
    }
    return 1;
}

static void
sim_build(struct sim *s, const tp_peerset *ps)
{
    struct ranges *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    export(ps, TP_PEER_ALLOW, r);
    sim_load(s->allow, &s->nallow, r);
    ranges_free(r);
    export(ps, TP_PEER_DENY, r);
    sim_load(s->deny, &s->ndeny, r);
    ranges_free(r);
    free(r);
}

static size_t probes_run;

static void
probe(const tp_peerset *ps, const struct sim *s, int af, const uint8_t *b)
{
    char text[INET6_ADDRSTRLEN];
    struct sim_addr sa;
    tp_addr a;
    tp_status st;
    int ours, theirs;

    memset(&a, 0, sizeof(a));
    a.family = af;
    memcpy(a.bytes, b, af == AF_INET ? 4 : 16);
    st = tp_peerset_check(ps, &a, NULL, NULL);
    assert_true(st == TP_OK || st == TP_EPEERDENIED);
    ours = st == TP_OK;
    memset(&sa, 0, sizeof(sa));
    sa.af = af;
    memcpy(sa.b, b, af == AF_INET ? 4 : 16);
    theirs = sim_good_peer(s, &sa);
    if (ours != theirs) {
        inet_ntop(af, b, text, sizeof(text));
        print_error("%s: turnpolicy %s, coturn model %s\n", text,
                    ours ? "allows" : "denies", theirs ? "allows" : "denies");
        fail();
    }
    probes_run++;
}

/* Probe an IPv4 address as itself and in every IPv6 spelling. */
static void
probe_v4(const tp_peerset *ps, const struct sim *s, uint32_t v)
{
    uint8_t v4[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
                     (uint8_t)(v >> 8), (uint8_t)v};
    uint8_t v6[16];

    probe(ps, s, AF_INET, v4);
    memset(v6, 0, 16);                       /* ::a.b.c.d */
    memcpy(v6 + 12, v4, 4);
    probe(ps, s, AF_INET6, v6);
    v6[10] = v6[11] = 0xff;                  /* ::ffff:a.b.c.d */
    probe(ps, s, AF_INET6, v6);
    memset(v6, 0, 12);                       /* 64:ff9b::a.b.c.d */
    v6[1] = 0x64;
    v6[2] = 0xff;
    v6[3] = 0x9b;
    probe(ps, s, AF_INET6, v6);
    memset(v6, 0, 16);                       /* 2002:AABB:CCDD::v */
    v6[0] = 0x20;
    v6[1] = 0x02;
    memcpy(v6 + 2, v4, 4);
    v6[15] = (uint8_t)(v * 7);
    probe(ps, s, AF_INET6, v6);
}

static void
v6_step(uint8_t *b, int up)
{
    int i;

    for (i = 15; i >= 0; i--) {
        if (up) {
            b[i] = (uint8_t)(b[i] + 1);
            if (b[i] != 0)
                return;
        } else {
            b[i] = (uint8_t)(b[i] - 1);
            if (b[i] != 0xff)
                return;
        }
    }
}

/* Probe around the edges of a CIDR: first, last and their neighbours. */
static void
probe_cidr(const tp_peerset *ps, const struct sim *s, const char *cidr)
{
    char buf[64];
    uint8_t first[16], last[16], t[16];
    char *slash;
    unsigned len, i, bits;
    int af;

    strcpy(buf, cidr);
    af = strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
    slash = strchr(buf, '/');
    len = af == AF_INET ? 32 : 128;
    if (slash != NULL) {
        *slash = '\0';
        len = (unsigned)atoi(slash + 1);
    }
    memset(first, 0, sizeof(first));
    assert_int_equal(inet_pton(af, buf, first), 1);
    bits = af == AF_INET ? 32 : 128;
    memcpy(last, first, 16);
    for (i = len; i < bits; i++)
        last[i / 8] |= (uint8_t)(0x80 >> (i % 8));
    if (af == AF_INET) {
        uint32_t f = ((uint32_t)first[0] << 24) | ((uint32_t)first[1] << 16) |
                     ((uint32_t)first[2] << 8) | first[3];
        uint32_t l = ((uint32_t)last[0] << 24) | ((uint32_t)last[1] << 16) |
                     ((uint32_t)last[2] << 8) | last[3];

        probe_v4(ps, s, f);
        probe_v4(ps, s, l);
        probe_v4(ps, s, f + (l - f) / 2);
        if (f != 0)
            probe_v4(ps, s, f - 1);
        if (l != UINT32_MAX)
            probe_v4(ps, s, l + 1);
        return;
    }
    probe(ps, s, AF_INET6, first);
    probe(ps, s, AF_INET6, last);
    memcpy(t, first, 16);
    v6_step(t, 0);
    probe(ps, s, AF_INET6, t);
    memcpy(t, last, 16);
    v6_step(t, 1);
    probe(ps, s, AF_INET6, t);
    memcpy(t, first, 16);
    for (i = 0; i < 4; i++) {   /* a few addresses just inside */
        v6_step(t, 1);
        probe(ps, s, AF_INET6, t);
    }
    memcpy(t, first, 16);       /* and one with a high host byte set */
    if (len <= 120) {
        t[15] = 0x80;
        t[(len + 7) / 8 < 15 ? (len + 7) / 8 : 14] |= 0x01;
        probe(ps, s, AF_INET6, t);
    }
}

static const char *const builtin_cidrs[] = {
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128",
    "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8", "::ffff:0.0.0.0/96", "64:ff9b::/96", "2002::/16", "::/96",
};

struct scenario {
    const char *allow[6];
    const char *deny[6];
    tp_peer_action dflt;
};

static void
run_scenario(const struct scenario *sc)
{
    static const char *const fixed[] = {
        "127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "169.254.169.254",
        "8.8.8.8", "::ffff:8.8.8.8", "2001:4860::8888", "64:ff9b::a00:1",
        "2002:a00:1::", "::10.0.0.1", "::1", "::2", "fe80::1", "ff02::1",
        "255.255.255.255", "0.0.0.1", "1.1.1.1", "ffff::1", "::ffff:0:1",
        "2002::1", "64:ff9b::", "::ff:ffff", "::1:0:0:0", "100::",
    };
    struct sim *s = calloc(1, sizeof(*s));
    tp_peerset *ps = new_set();
    uint32_t x = 0x12345678;
    uint8_t b[16];
    tp_addr a;
    size_t i, j;

    assert_non_null(s);
    tp_peerset_set_default(ps, sc->dflt);
    for (i = 0; i < 6 && sc->allow[i] != NULL; i++)
        add_rule(ps, sc->allow[i], TP_PEER_ALLOW);
    for (i = 0; i < 6 && sc->deny[i] != NULL; i++)
        add_rule(ps, sc->deny[i], TP_PEER_DENY);
    sim_build(s, ps);

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        tp_error err;

        TP_ASSERT_OK(tp_addr_parse(fixed[i], &a, &err), &err);
        probe(ps, s, a.family, a.bytes);
    }
    for (i = 0; i < sizeof(builtin_cidrs) / sizeof(builtin_cidrs[0]); i++)
        probe_cidr(ps, s, builtin_cidrs[i]);
    for (i = 0; i < 6 && sc->allow[i] != NULL; i++)
        probe_cidr(ps, s, sc->allow[i]);
    for (i = 0; i < 6 && sc->deny[i] != NULL; i++)
        probe_cidr(ps, s, sc->deny[i]);
    /* Pseudo-random addresses (xorshift32, fixed seed). */
    for (i = 0; i < 3000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        probe_v4(ps, s, x);
        for (j = 0; j < 16; j++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b[j] = (uint8_t)x;
        }
        probe(ps, s, AF_INET6, b);
        b[0] = (uint8_t)(0xfc | (b[0] & 3)); /* fc00::/6: ULA, fe80, ... */
        probe(ps, s, AF_INET6, b);
        memset(b, 0, 10);                    /* ::/80 */
        probe(ps, s, AF_INET6, b);
    }
    tp_peerset_free(ps);
    free(s);
}

static void
test_export_matches_coturn(void **state)
{
    static const struct scenario scenarios[] = {
        {{NULL}, {NULL}, TP_PEER_ALLOW},
        {{"127.0.0.0/8", NULL}, {NULL}, TP_PEER_ALLOW},
        {{"10.0.0.0/8", "fd00::/8", "2001:db8:1::/48", "64:ff9b::/96",
          NULL},
         {"10.1.0.0/16", "8.8.8.0/24", "2001:4860::/32", "10.0.0.7", NULL},
         TP_PEER_ALLOW},
        {{"8.8.8.0/24", "2001:4860::/32", "192.168.1.0/24", NULL},
         {"8.8.8.8", NULL},
         TP_PEER_DENY},
        {{"::ffff:1.2.3.0/120", "2002::/16", NULL},
         {"1.2.3.128/25", "fe80::/64", NULL},
         TP_PEER_ALLOW},
        {{NULL}, {NULL}, TP_PEER_DENY},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        run_scenario(&scenarios[i]);
    assert_true(probes_run > 100000);
}

/* The model is strict enough to catch what the export avoids: a range
 * starting at "::" matches every IPv4 address, and a non-prefix IPv6
 * range is a box, not an interval. */
static void
test_coturn_model_pitfalls(void **state)
{
    struct sim_range r;
    struct sim_addr a;

    (void)state;
    sim_parse("::", &r.min);
    sim_parse("::ff:ffff", &r.max);
    sim_parse("8.8.8.8", &a);
    assert_true(sim_in(&r, &a));
    sim_parse("0.0.0.0", &r.min);
    sim_parse("0.255.255.255", &r.max);
    sim_parse("::1", &a);
    assert_false(sim_in(&r, &a));
    sim_parse("::1", &r.min);
    sim_parse("::1:0", &r.max);
    sim_parse("::100", &a);
    assert_false(sim_in(&r, &a));
    sim_parse("10.0.0.0", &r.min);
    sim_parse("10.255.255.255", &r.max);
    sim_parse("::ffff:10.0.0.1", &a);
    assert_false(sim_in(&r, &a));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_bad_cidr),
        cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_realm_allow),
        cmocka_unit_test(test_realm_deny_beats_allow),
        cmocka_unit_test(test_default_action_deny),
        cmocka_unit_test(test_check_errors),
        cmocka_unit_test(test_export_strings),
        cmocka_unit_test(test_export_matches_coturn),
        cmocka_unit_test(test_coturn_model_pitfalls),
    };

    return cmocka_run_group_tests_name("peer", tests, NULL, NULL);
}
