/*
 * fuzz_peer.c - libFuzzer target for TURN peer address sets
 * (policy/src/peer.c): address parsing (tp_addr_parse), CIDR rules
 * (tp_peerset_add), the decision for an address with its IPv4-mapped,
 * NAT64 and 6to4 forms (tp_peerset_check) and the export as coturn 4.6.1
 * peer-ip ranges (tp_peerset_export_coturn).
 *
 * Why: a peer address is chosen by the TURN client for every
 * CreatePermission / ChannelBind; a spelling that slips past the default
 * deny turns the relay into an SSRF gadget (169.254.169.254, 127.0.0.1).
 *
 * What one input is: lines ('\n'), each cut at its first NUL:
 *   "+CIDR"  an allow rule, "-CIDR" a deny rule (up to 16 rules)
 *   "!"      the set's default becomes deny
 *   other    an address, checked against this input's set, an empty set
 *            and a fixed set built once from tests/unit/test_peer.c's
 *            rules (up to 16 addresses).
 * Built with -DFUZZ_PEER_EXPORT (target fuzz_peer_export), this input's
 * set is then exported and every address decided the way coturn would
 * from the exported lists.  That is a separate target because an export
 * splits the whole address space at every rule and built-in (~4 ms per
 * call instrumented, configuration-time code), which would bring this
 * one from tens of thousands of inputs a second to a few hundred.  A
 * leading '~' (what the seeds for the export start with) is skipped.
 * Seeds: tests/fuzz/corpus_peer, the strings of test_peer.c
 * (make_corpus.py), for both targets.
 *
 * Checked, beyond ASan/UBSan/LSan:
 *   - an IPv4 address and its IPv4-mapped IPv6 form get the same decision
 *     from every set;
 *   - with the empty set, every address in a few built-in ranges written
 *     out here independently (0/8, 10/8, 127/8, 169.254/16, 172.16/12,
 *     192.168/16, 100.64/10, 224/4, ::1, fe80::/10, fc00::/7) is denied by
 *     a built-in rule, and so are their NAT64 (64:ff9b::/96) forms;
 *   - a decision names its rule when it is not the default's;
 *   - every exported range is "a" or "a-b" of parseable addresses of one
 *     family, and coturn's reading of the lists (allowed first, then
 *     denied, else allowed) gives our decision for every address that
 *     coturn does not refuse on its own (loopback, zero, multicast).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "turnpolicy.h"

#define MAX_RULES 16
#define MAX_ADDRS 16
#define LINE_MAX_ 256
#define MAX_RANGES 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tp_peerset *empty, *fixed;

/* Rules of tests/unit/test_peer.c's sets. */
static const char *const fixed_allow[] = {"10.1.0.0/16", "fd00:1::/32",
                                          "192.0.2.0/24", "127.0.0.1/32"};
static const char *const fixed_deny[] = {"198.51.100.0/24", "203.0.113.7/32",
                                         "2001:db8::/32", "8.8.8.8"};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t i;

    (void)argc;
    (void)argv;
    empty = tp_peerset_new(NULL);
    fixed = tp_peerset_new(NULL);
    if (empty == NULL || fixed == NULL)
        abort();
    for (i = 0; i < sizeof(fixed_allow) / sizeof(fixed_allow[0]); i++)
        if (tp_peerset_add(fixed, fixed_allow[i], TP_PEER_ALLOW, NULL) !=
            TP_OK)
            abort();
    for (i = 0; i < sizeof(fixed_deny) / sizeof(fixed_deny[0]); i++)
        if (tp_peerset_add(fixed, fixed_deny[i], TP_PEER_DENY, NULL) != TP_OK)
            abort();
    return 0;
}

/* ------------------------------------------------------------------ */
/* Checks of one decision                                              */
/* ------------------------------------------------------------------ */

/* One decision; only with_err asks for the message (formatting it is
 * most of a check's time, and the same code every time). */
static tp_peer_action
decide_err(const tp_peerset *ps, const tp_addr *a, int with_err)
{
    tp_peer_decision dec;
    tp_error err;
    tp_status st;

    memset(&err, 0, sizeof(err));
    st = tp_peerset_check(ps, a, &dec, with_err ? &err : NULL);
    if (st != TP_OK && st != TP_EPEERDENIED)
        abort();
    if ((st == TP_OK) != (dec.action == TP_PEER_ALLOW) ||
        memchr(dec.rule, '\0', sizeof(dec.rule)) == NULL ||
        memchr(err.message, '\0', sizeof(err.message)) == NULL)
        abort();
    if (with_err && err.status != st)
        abort();
    if (dec.builtin && (dec.action != TP_PEER_DENY || dec.rule[0] == '\0'))
        abort();
    return dec.action;
}

static tp_peer_action
decide(const tp_peerset *ps, const tp_addr *a)
{
    return decide_err(ps, a, 0);
}

static int
in4(const tp_addr *a, uint8_t b0, uint8_t b1, unsigned len)
{
    uint32_t v = (uint32_t)a->bytes[0] << 24 | (uint32_t)a->bytes[1] << 16;
    uint32_t p = (uint32_t)b0 << 24 | (uint32_t)b1 << 16;
    uint32_t mask = len == 0 ? 0 : ~UINT32_C(0) << (32 - len);

    return (v & mask) == (p & mask);
}

/* In one of the built-in ranges written out here (a subset). */
static int
known_denied(const tp_addr *a)
{
    static const uint8_t loop6[16] = {[15] = 1};

    if (a->family == AF_INET)
        return in4(a, 0, 0, 8) || in4(a, 10, 0, 8) || in4(a, 127, 0, 8) ||
               in4(a, 169, 254, 16) || in4(a, 172, 16, 12) ||
               in4(a, 192, 168, 16) || in4(a, 100, 64, 10) ||
               in4(a, 224, 0, 4);
    return memcmp(a->bytes, loop6, 16) == 0 ||
           (a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80) ||
           (a->bytes[0] & 0xfe) == 0xfc;
}

static void
check_addr(const tp_peerset *mine, const tp_addr *a)
{
    tp_peer_action d_mine = decide_err(mine, a, 1);
    tp_peer_action d_empty = decide(empty, a);
    tp_peer_action d_fixed = decide(fixed, a);
    tp_addr m;

    if (known_denied(a) && d_empty != TP_PEER_DENY)
        abort();
    if (a->family != AF_INET)
        return;
    /* ::ffff:a.b.c.d and 64:ff9b::a.b.c.d */
    memset(&m, 0, sizeof(m));
    m.family = AF_INET6;
    m.bytes[10] = m.bytes[11] = 0xff;
    memcpy(m.bytes + 12, a->bytes, 4);
    if (decide(mine, &m) != d_mine || decide(empty, &m) != d_empty ||
        decide(fixed, &m) != d_fixed)
        abort();
    memset(m.bytes, 0, 12);
    m.bytes[1] = 0x64;
    m.bytes[2] = 0xff;
    m.bytes[3] = 0x9b;
    if (known_denied(a) && decide(empty, &m) != TP_PEER_DENY)
        abort();
}

/* ------------------------------------------------------------------ */
/* coturn's reading of an export                                       */
/* ------------------------------------------------------------------ */

typedef struct range {
    tp_addr lo, hi;
} range;

typedef struct ranges {
    range r[MAX_RANGES];
    size_t n;
    int full;
} ranges;

static ranges allowed, denied;

static tp_status
collect(void *ud, const char *text)
{
    ranges *rs = ud;
    char lo[128];
    const char *dash = strchr(text, '-');
    size_t n = dash != NULL ? (size_t)(dash - text) : strlen(text);
    range *r;

    if (rs->n == MAX_RANGES) {
        rs->full = 1;
        return TP_OK;
    }
    r = &rs->r[rs->n];
    if (n >= sizeof(lo))
        abort();
    memcpy(lo, text, n);
    lo[n] = '\0';
    if (tp_addr_parse(lo, &r->lo, NULL) != TP_OK ||
        tp_addr_parse(dash != NULL ? dash + 1 : lo, &r->hi, NULL) != TP_OK ||
        r->lo.family != r->hi.family)
        abort();
    rs->n++;
    return TP_OK;
}

static int
any(const tp_addr *a)
{
    static const uint8_t zero[16];

    return memcmp(a->bytes, zero, a->family == AF_INET ? 4 : 16) == 0;
}

/* coturn's addr_less_eq: families by number, IPv4 as a number, IPv6
 * byte by byte (every byte <=). */
static int
le(const tp_addr *x, const tp_addr *y)
{
    int i;

    if (x->family != y->family)
        return x->family < y->family;
    if (x->family == AF_INET)
        return memcmp(x->bytes, y->bytes, 4) <= 0;
    for (i = 0; i < 16; i++)
        if (x->bytes[i] > y->bytes[i])
            return 0;
    return 1;
}

static int
listed(const ranges *rs, const tp_addr *a)
{
    size_t i;

    for (i = 0; i < rs->n; i++)
        if ((any(&rs->r[i].lo) || le(&rs->r[i].lo, a)) &&
            (any(&rs->r[i].hi) || le(a, &rs->r[i].hi)))
            return 1;
    return 0;
}

/* What coturn's good_peer_addr refuses before looking at the lists. */
static int
coturn_refuses(const tp_addr *a)
{
    static const uint8_t loop6[16] = {[15] = 1};

    if (a->family == AF_INET)
        return in4(a, 0, 0, 8) || in4(a, 127, 0, 8) || in4(a, 224, 0, 4);
    return any(a) || memcmp(a->bytes, loop6, 16) == 0 || a->bytes[0] == 0xff;
}

static void
check_export(const tp_peerset *mine, const tp_addr *addrs, size_t n)
{
    size_t i;
    int coturn_allows;

    allowed.n = denied.n = 0;
    allowed.full = denied.full = 0;
    if (tp_peerset_export_coturn(mine, TP_PEER_ALLOW, collect, &allowed,
                                 NULL) != TP_OK ||
        tp_peerset_export_coturn(mine, TP_PEER_DENY, collect, &denied,
                                 NULL) != TP_OK)
        abort();
    if (allowed.full || denied.full)
        return;
    for (i = 0; i < n; i++) {
        if (coturn_refuses(&addrs[i]))
            continue;
        coturn_allows = listed(&allowed, &addrs[i]) ||
                        !listed(&denied, &addrs[i]);
        if (coturn_allows != (decide(mine, &addrs[i]) == TP_PEER_ALLOW))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_addr addrs[MAX_ADDRS];
    char line[LINE_MAX_ + 1];
    tp_peerset *mine;
    size_t off, n, nrules = 0, naddrs = 0;
    const uint8_t *nl;
#ifdef FUZZ_PEER_EXPORT
    const int export = 1;
#else
    const int export = 0;
#endif

    mine = tp_peerset_new(NULL);
    if (mine == NULL)
        abort();
    for (off = size > 0 && data[0] == '~'; off < size; off += n + 1) {
        nl = memchr(data + off, '\n', size - off);
        n = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
        if (n > LINE_MAX_)
            break;
        memcpy(line, data + off, n);
        line[n] = '\0';
        if (line[0] == '+' || line[0] == '-') {
            if (nrules++ < MAX_RULES)
                (void)tp_peerset_add(mine, line + 1, line[0] == '+' ?
                                     TP_PEER_ALLOW : TP_PEER_DENY, NULL);
        } else if (line[0] == '!' && line[1] == '\0') {
            tp_peerset_set_default(mine, TP_PEER_DENY);
        } else if (naddrs < MAX_ADDRS &&
                   tp_addr_parse(line, &addrs[naddrs], NULL) == TP_OK) {
            if (addrs[naddrs].family != AF_INET &&
                addrs[naddrs].family != AF_INET6)
                abort();
            check_addr(mine, &addrs[naddrs]);
            naddrs++;
        }
    }
    if (export)
        check_export(mine, addrs, naddrs);
    tp_peerset_free(mine);
    return 0;
}
