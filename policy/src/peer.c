/*
 * peer.c - TURN peer address sets: which addresses a realm's allocations
 * may relay to, and their export as coturn 4.6.1 peer-ip ranges.
 *
 * What: a tp_peerset holds a realm's allow and deny CIDR rules on top of a
 * built-in default deny (builtin_deny[] below: loopback, RFC 1918,
 * link-local with the cloud metadata address, CGNAT, multicast, reserved,
 * IPv6 ULA / link-local / multicast, ...).  tp_peerset_check() decides one
 * address, exactly as the tp_peerset comment in turnpolicy.h says:
 *   1. a realm deny rule matches any form        -> denied
 *   2. a built-in entry matches a form and no realm allow rule matches
 *      that same form                            -> denied
 *   3. a realm allow rule matches any form       -> allowed
 *      otherwise the set's default action (allow unless set to deny).
 * The forms of an address: IPv4-mapped ::ffff:a.b.c.d is canonicalized to
 * the IPv4 address a.b.c.d first (rules given in ::ffff:0:0/96 are
 * canonicalized the same way when added, so an IPv6 rule never matches a
 * mapped address).  An IPv6 address embedding IPv4 - IPv4-compatible
 * ::a.b.c.d (not :: or ::1), NAT64 64:ff9b::a.b.c.d, 6to4
 * 2002:AABB:CCDD::/48 - has two forms, itself and the embedded IPv4, so
 * 64:ff9b::a00:1 is denied like 10.0.0.1.
 *
 * Why: a TURN relay that relays anywhere is an SSRF gadget into the
 * operator's network (169.254.169.254, 127.0.0.1, the LAN), reachable by
 * any user with a credential and through every IPv6 spelling of an IPv4
 * address.
 *
 * coturn 4.6.1 export (tp_peerset_export_coturn), from its source:
 *   - add_ip_list_range() (src/apps/relay/userdb.c) splits a value at the
 *     first '-' and parses each side with make_ioa_addr()
 *     (src/client/ns_turn_ioaddr.c): inet_pton AF_INET, then AF_INET6,
 *     then getaddrinfo() - so only literals must be emitted.  No '-': the
 *     range is [a, a].  Redis values come from SMEMBERS of
 *     turn/realm/<r>/{allowed,denied}-peer-ip (dbd_redis.c).
 *   - ioa_addr_in_range(): in range iff (addr_any(min) || min <= addr) and
 *     (addr_any(max) || addr <= max).  addr_any() is true for 0.0.0.0 and
 *     :: (port 0), so such a bound is unbounded: "::" alone, or
 *     "0.0.0.0" alone, matches every address; a range starting at "::"
 *     matches every IPv4 address too (see the next point).
 *   - addr_less_eq(): different families compare as family numbers
 *     (AF_INET 2 < AF_INET6 10), so an IPv4 range never matches an IPv6
 *     address and vice versa - unless a bound is "any" as above.  IPv4 is
 *     compared as a 32-bit number (any a-b interval works).  IPv6 is
 *     compared byte by byte: a <= b iff a[i] <= b[i] for EVERY i, which
 *     makes [min, max] a box, not an interval: "::1-::1:0" would not
 *     contain ::100.  A box equals the interval exactly when min..max is
 *     one CIDR prefix (prefix bytes fixed, host bytes 00..ff, the one
 *     partial byte a contiguous run), hence IPv6 ranges are emitted as
 *     prefixes.  (coturn 4.17 compares with memcmp; prefixes work there
 *     too.)
 *   - good_peer_addr() (src/server/ns_turn_server.c): multicast (unless
 *     allowed), loopback (unless --allow-loopback-peers: 127/8 and ::1
 *     only, not ::ffff:127.0.0.1) and zero (0.0.0.0/8, ::) are refused
 *     first; then the ALLOWED lists are searched and a match allows; then
 *     the DENIED lists, a match denies; otherwise allowed.  No IPv4-mapped
 *     or embedded-IPv4 awareness.
 * So allowed wins in coturn while realm deny wins here; the export is
 * computed so coturn's order still yields our decision: ALLOW lists
 * exactly the addresses allowed by a realm allow rule (allow minus deny,
 * in every form), DENY lists exactly the denied addresses (realm deny,
 * built-ins not covered by an allow, and everything else when the default
 * is deny), each as the smallest set of prefixes, found by splitting the
 * address space where any rule, built-in or embedded image of one begins
 * or ends and deciding each piece with the same decide() as a lookup.
 * Adjacent IPv4 pieces are merged into one a-b range.  Blocks starting at
 * "::" are split so no range starts at "::" ("::" itself is omitted:
 * coturn refuses it anyway), and "0.0.0.0" alone is omitted likewise.
 * Limits: coturn's own loopback/zero checks still refuse 127/8 and 0/8
 * when a realm allows them (needs --allow-loopback-peers).
 *
 * Invariants: rules are canonical prefixes (host bits zero, IPv4-mapped
 * turned into IPv4), no two rules have the same prefix, rule text is the
 * canonical "addr/len".
 *
 * Workload: a realm has a few rules, built from configuration once, then
 * read by many threads for every CreatePermission / ChannelBind.  Lookups
 * are a linear scan over the rules and the 23 built-ins, allocate nothing
 * and take no locks.  Export runs at configuration time and allocates.
 */
#include "tp_internal.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TP__ADDR_TEXT_MAX 64 /* longest address text accepted, with [] */

/* A prefix: fam 4 or 6, len bits of b (network order; IPv4 in b[0..3]). */
struct pfx {
    uint8_t fam;
    uint8_t len;
    uint8_t b[16];
};

struct builtin {
    struct pfx p;
    const char *text;
};

/* The built-in default deny.  IPv4-mapped ::ffff:0:0/96 needs no entry
 * (canonicalized to IPv4); 64:ff9b::/96, 2002::/16 and ::/96 are checked
 * through the IPv4 they embed. */
static const struct builtin builtin_deny[] = {
    /* "this network" (RFC 791); 0.0.0.0 reaches loopback on Linux */
    {{4, 8, {0}}, "0.0.0.0/8"},
    /* private (RFC 1918) */
    {{4, 8, {10}}, "10.0.0.0/8"},
    /* shared address space, carrier-grade NAT (RFC 6598) */
    {{4, 10, {100, 64}}, "100.64.0.0/10"},
    /* loopback (RFC 1122) */
    {{4, 8, {127}}, "127.0.0.0/8"},
    /* link-local, incl. cloud metadata 169.254.169.254 (RFC 3927) */
    {{4, 16, {169, 254}}, "169.254.0.0/16"},
    /* private (RFC 1918) */
    {{4, 12, {172, 16}}, "172.16.0.0/12"},
    /* IETF protocol assignments (RFC 6890) */
    {{4, 24, {192, 0, 0}}, "192.0.0.0/24"},
    /* TEST-NET-1, documentation (RFC 5737) */
    {{4, 24, {192, 0, 2}}, "192.0.2.0/24"},
    /* 6to4 relay anycast, deprecated (RFC 7526) */
    {{4, 24, {192, 88, 99}}, "192.88.99.0/24"},
    /* private (RFC 1918) */
    {{4, 16, {192, 168}}, "192.168.0.0/16"},
    /* benchmarking (RFC 2544) */
    {{4, 15, {198, 18}}, "198.18.0.0/15"},
    /* TEST-NET-2, documentation (RFC 5737) */
    {{4, 24, {198, 51, 100}}, "198.51.100.0/24"},
    /* TEST-NET-3, documentation (RFC 5737) */
    {{4, 24, {203, 0, 113}}, "203.0.113.0/24"},
    /* multicast (RFC 5771) */
    {{4, 4, {224}}, "224.0.0.0/4"},
    /* reserved (RFC 1112), incl. limited broadcast 255.255.255.255 */
    {{4, 4, {240}}, "240.0.0.0/4"},
    /* unspecified address */
    {{6, 128, {0}}, "::/128"},
    /* loopback */
    {{6, 128, {[15] = 1}}, "::1/128"},
    /* discard-only (RFC 6666) */
    {{6, 64, {0x01, 0x00}}, "100::/64"},
    /* documentation (RFC 3849) */
    {{6, 32, {0x20, 0x01, 0x0d, 0xb8}}, "2001:db8::/32"},
    /* unique local (RFC 4193) */
    {{6, 7, {0xfc}}, "fc00::/7"},
    /* link-local (RFC 4291) */
    {{6, 10, {0xfe, 0x80}}, "fe80::/10"},
    /* site-local, deprecated (RFC 3879) */
    {{6, 10, {0xfe, 0xc0}}, "fec0::/10"},
    /* multicast (RFC 4291) */
    {{6, 8, {0xff}}, "ff00::/8"},
};

/* The IPv6 regions that embed an IPv4 address, and where it sits. */
enum embed_kind { EMBED_MAPPED, EMBED_COMPAT, EMBED_NAT64, EMBED_6TO4 };

static const struct {
    struct pfx region;
    unsigned v4_byte; /* offset of the IPv4 address inside the IPv6 one */
} embeddings[] = {
    [EMBED_MAPPED] = {{6, 96, {[10] = 0xff, [11] = 0xff}}, 12},
    [EMBED_COMPAT] = {{6, 96, {0}}, 12},
    [EMBED_NAT64] = {{6, 96, {0x00, 0x64, 0xff, 0x9b}}, 12},
    [EMBED_6TO4] = {{6, 16, {0x20, 0x02}}, 2},
};

struct peer_rule {
    struct pfx p;
    tp_peer_action action;
    char text[TP__ADDR_TEXT_MAX];
};

struct tp_peerset {
    struct peer_rule *rules;
    size_t count;
    size_t cap;
    tp_peer_action dflt;
};

/* At most two forms: the (canonical) address and its embedded IPv4. */
struct forms {
    size_t n;
    struct pfx f[2]; /* len is the full length: 32 or 128 */
};

static int
bit_get(const uint8_t *b, unsigned i)
{
    return (b[i / 8] >> (7 - i % 8)) & 1;
}

/* Does prefix p contain the first q->len bits of q, i.e. q within p? */
static int
pfx_covers(const struct pfx *p, const struct pfx *q)
{
    unsigned full = p->len / 8, rest = p->len % 8;

    if (p->fam != q->fam || p->len > q->len)
        return 0;
    if (memcmp(p->b, q->b, full) != 0)
        return 0;
    if (rest != 0) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));

        if ((p->b[full] & mask) != (q->b[full] & mask))
            return 0;
    }
    return 1;
}

static unsigned
fam_bits(unsigned fam)
{
    return fam == 4 ? 32 : 128;
}

/* Turn an address into its forms (see the file comment). */
static void
addr_forms(const struct pfx *a, struct forms *out)
{
    static const uint8_t zero12[12];
    size_t k;

    out->n = 1;
    out->f[0] = *a;
    if (a->fam != 6)
        return;
    if (pfx_covers(&embeddings[EMBED_MAPPED].region, a)) {
        memset(&out->f[0], 0, sizeof(out->f[0]));
        out->f[0].fam = 4;
        out->f[0].len = 32;
        memcpy(out->f[0].b, a->b + 12, 4);
        return;
    }
    for (k = EMBED_COMPAT; k <= EMBED_6TO4; k++) {
        if (!pfx_covers(&embeddings[k].region, a))
            continue;
        /* :: and ::1 are themselves, not IPv4-compatible addresses. */
        if (k == EMBED_COMPAT && memcmp(a->b, zero12, 12) == 0 &&
            a->b[12] == 0 && a->b[13] == 0 && a->b[14] == 0 &&
            a->b[15] <= 1)
            return;
        memset(&out->f[1], 0, sizeof(out->f[1]));
        out->f[1].fam = 4;
        out->f[1].len = 32;
        memcpy(out->f[1].b, a->b + embeddings[k].v4_byte, 4);
        out->n = 2;
        return;
    }
}

static const struct peer_rule *
rule_find(const tp_peerset *ps, tp_peer_action action, const struct pfx *a)
{
    size_t i;

    for (i = 0; i < ps->count; i++) {
        if (ps->rules[i].action == action && pfx_covers(&ps->rules[i].p, a))
            return &ps->rules[i];
    }
    return NULL;
}

static const struct builtin *
builtin_find(const struct pfx *a)
{
    size_t i;

    for (i = 0; i < TP__ARRAY_LEN(builtin_deny); i++) {
        if (pfx_covers(&builtin_deny[i].p, a))
            return &builtin_deny[i];
    }
    return NULL;
}

static void
set_decision(tp_peer_decision *dec, tp_peer_action action, int builtin,
             const char *rule)
{
    dec->action = action;
    dec->builtin = builtin;
    /* Every rule text is shorter than TP__ADDR_TEXT_MAX == sizeof rule. */
    if (tp__strlcpy(dec->rule, rule, sizeof(dec->rule)) != 0)
        dec->rule[0] = '\0';
}

/* The decision procedure of the file comment.  Allocates nothing. */
static tp_peer_action
decide(const tp_peerset *ps, const struct forms *fm, tp_peer_decision *dec)
{
    const struct peer_rule *r;
    const struct builtin *b;
    size_t k;

    for (k = 0; k < fm->n; k++) {
        r = rule_find(ps, TP_PEER_DENY, &fm->f[k]);
        if (r != NULL) {
            set_decision(dec, TP_PEER_DENY, 0, r->text);
            return TP_PEER_DENY;
        }
    }
    for (k = 0; k < fm->n; k++) {
        b = builtin_find(&fm->f[k]);
        if (b != NULL && rule_find(ps, TP_PEER_ALLOW, &fm->f[k]) == NULL) {
            set_decision(dec, TP_PEER_DENY, 1, b->text);
            return TP_PEER_DENY;
        }
    }
    for (k = 0; k < fm->n; k++) {
        r = rule_find(ps, TP_PEER_ALLOW, &fm->f[k]);
        if (r != NULL) {
            set_decision(dec, TP_PEER_ALLOW, 0, r->text);
            return TP_PEER_ALLOW;
        }
    }
    set_decision(dec, ps->dflt, 0, "");
    return ps->dflt;
}

tp_status
tp_addr_parse(const char *s, tp_addr *out, tp_error *err)
{
    char buf[TP__ADDR_TEXT_MAX];
    char shown[TP__ADDR_TEXT_MAX + 8];
    const char *p;
    size_t len;
    int v6;

    if (out == NULL)
        return tp__fail(err, TP_EINVAL, "no output address");
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return tp__fail(err, TP_EBADADDR, "no address");
    len = strnlen(s, sizeof(buf));
    tp__printable(shown, sizeof(shown), s, TP__ADDR_TEXT_MAX);
    if (len == 0)
        return tp__fail(err, TP_EBADADDR, "empty address");
    if (len >= sizeof(buf))
        return tp__fail(err, TP_EBADADDR, "address \"%s\" is too long",
                        shown);
    if (memchr(s, '%', len) != NULL)
        return tp__fail(err, TP_EBADADDR, "address \"%s\": zone ids "
                        "(\"%%eth0\") are not accepted", shown);
    p = s;
    v6 = memchr(s, ':', len) != NULL;
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']' || !v6)
            return tp__fail(err, TP_EBADADDR, "address \"%s\": brackets "
                            "must enclose a whole IPv6 address", shown);
        p = s + 1;
        len -= 2;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (v6) {
        if (inet_pton(AF_INET6, buf, out->bytes) != 1)
            goto bad;
        out->family = AF_INET6;
    } else {
        if (inet_pton(AF_INET, buf, out->bytes) != 1)
            goto bad;
        out->family = AF_INET;
    }
    tp__ok(err);
    return TP_OK;

bad:
    memset(out, 0, sizeof(*out));
    return tp__fail(err, TP_EBADADDR, "\"%s\" is not an IPv4 dotted quad or "
                    "an IPv6 address", shown);
}

/* tp_addr -> full-length prefix; -1 if the family is unknown. */
static int
addr_to_pfx(const tp_addr *a, struct pfx *p)
{
    memset(p, 0, sizeof(*p));
    if (a->family == AF_INET) {
        p->fam = 4;
        p->len = 32;
        memcpy(p->b, a->bytes, 4);
        return 0;
    }
    if (a->family == AF_INET6) {
        p->fam = 6;
        p->len = 128;
        memcpy(p->b, a->bytes, 16);
        return 0;
    }
    return -1;
}

/* Canonical text of a prefix ("10.0.0.0/8"), or of an address when
 * with_len is 0.  cap >= TP__ADDR_TEXT_MAX. */
static void
pfx_text(const struct pfx *p, int with_len, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN];

    if (inet_ntop(p->fam == 4 ? AF_INET : AF_INET6, p->b, a,
                  sizeof(a)) == NULL)
        tp__strlcpy(a, "?", sizeof(a));
    if (with_len)
        snprintf(out, cap, "%s/%u", a, (unsigned)p->len);
    else
        snprintf(out, cap, "%s", a);
}

tp_peerset *
tp_peerset_new(tp_error *err)
{
    tp_peerset *ps = calloc(1, sizeof(*ps));

    if (ps == NULL) {
        tp__fail(err, TP_ENOMEM, "cannot allocate a peer set");
        return NULL;
    }
    ps->dflt = TP_PEER_ALLOW;
    tp__ok(err);
    return ps;
}

void
tp_peerset_free(tp_peerset *ps)
{
    if (ps == NULL)
        return;
    free(ps->rules);
    free(ps);
}

void
tp_peerset_set_default(tp_peerset *ps, tp_peer_action action)
{
    if (ps == NULL)
        return;
    if (action == TP_PEER_ALLOW || action == TP_PEER_DENY)
        ps->dflt = action;
}

/* Parse "addr[/len]" into a canonical prefix. */
static tp_status
parse_cidr(const char *cidr, struct pfx *out, tp_error *err)
{
    char buf[TP__ADDR_TEXT_MAX];
    char shown[TP__ADDR_TEXT_MAX + 8];
    const char *slash;
    unsigned len, max, i;
    size_t n;
    tp_addr a;
    tp_status st;

    n = strnlen(cidr, sizeof(buf));
    tp__printable(shown, sizeof(shown), cidr, TP__ADDR_TEXT_MAX);
    if (n >= sizeof(buf))
        return tp__fail(err, TP_EBADADDR, "CIDR \"%s\" is too long", shown);
    slash = memchr(cidr, '/', n);
    memcpy(buf, cidr, n);
    buf[slash != NULL ? (size_t)(slash - cidr) : n] = '\0';
    st = tp_addr_parse(buf, &a, err);
    if (st != TP_OK)
        return st;
    if (addr_to_pfx(&a, out) != 0)
        return tp__fail(err, TP_EBADADDR, "CIDR \"%s\": unknown family",
                        shown);
    max = out->len;
    len = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        size_t dn = n - (size_t)(d - cidr);

        if (dn == 0 || dn > 3 || (d[0] == '0' && dn > 1))
            return tp__fail(err, TP_EBADADDR, "CIDR \"%s\": the prefix "
                            "length must be 0..%u", shown, max);
        len = 0;
        for (i = 0; i < dn; i++) {
            if (d[i] < '0' || d[i] > '9')
                return tp__fail(err, TP_EBADADDR, "CIDR \"%s\": the prefix "
                                "length must be 0..%u", shown, max);
            len = len * 10 + (unsigned)(d[i] - '0'); /* <= 999 */
        }
        if (len > max)
            return tp__fail(err, TP_EBADADDR, "CIDR \"%s\": the prefix "
                            "length must be 0..%u", shown, max);
    }
    for (i = len; i < max; i++) {
        if (bit_get(out->b, i))
            return tp__fail(err, TP_EBADADDR, "CIDR \"%s\" has host bits "
                            "set after /%u", shown, len);
    }
    out->len = (uint8_t)len;
    /* ::ffff:a.b.c.d/96+n is the IPv4 prefix a.b.c.d/n. */
    if (out->fam == 6 && len >= 96 &&
        pfx_covers(&embeddings[EMBED_MAPPED].region, out)) {
        struct pfx v4;

        memset(&v4, 0, sizeof(v4));
        v4.fam = 4;
        v4.len = (uint8_t)(len - 96);
        memcpy(v4.b, out->b + 12, 4);
        *out = v4;
    }
    return TP_OK;
}

tp_status
tp_peerset_add(tp_peerset *ps, const char *cidr, tp_peer_action action,
               tp_error *err)
{
    struct peer_rule r;
    size_t i;
    tp_status st;

    if (ps == NULL || cidr == NULL)
        return tp__fail(err, TP_EINVAL, "no peer set or no CIDR");
    if (action != TP_PEER_ALLOW && action != TP_PEER_DENY)
        return tp__fail(err, TP_EINVAL, "peer action must be allow or deny");
    memset(&r, 0, sizeof(r));
    st = parse_cidr(cidr, &r.p, err);
    if (st != TP_OK)
        return st;
    r.action = action;
    pfx_text(&r.p, 1, r.text, sizeof(r.text));
    for (i = 0; i < ps->count; i++) {
        const struct peer_rule *o = &ps->rules[i];

        if (o->p.fam == r.p.fam && o->p.len == r.p.len &&
            memcmp(o->p.b, r.p.b, sizeof(r.p.b)) == 0)
            return tp__fail(err, TP_EEXISTS, "peer rule %s is already "
                            "there (%s)", r.text,
                            o->action == TP_PEER_ALLOW ? "allow" : "deny");
    }
    if (ps->count == ps->cap) {
        struct peer_rule *nr;
        size_t ncap = ps->cap != 0 ? ps->cap : 8;

        if (ps->cap != 0) {
            if (ps->cap > SIZE_MAX / 2 / sizeof(*nr))
                return tp__fail(err, TP_ENOMEM, "too many peer rules");
            ncap = ps->cap * 2;
        }
        nr = realloc(ps->rules, ncap * sizeof(*nr));
        if (nr == NULL)
            return tp__fail(err, TP_ENOMEM, "cannot grow the peer set");
        ps->rules = nr;
        ps->cap = ncap;
    }
    ps->rules[ps->count++] = r;
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_peerset_check(const tp_peerset *ps, const tp_addr *addr,
                 tp_peer_decision *dec, tp_error *err)
{
    char shown[TP__ADDR_TEXT_MAX];
    tp_peer_decision local;
    struct forms fm;
    struct pfx a;

    if (dec == NULL)
        dec = &local;
    set_decision(dec, TP_PEER_DENY, 0, "");
    if (ps == NULL)
        return tp__fail(err, TP_EINVAL, "no peer set");
    if (addr == NULL || addr_to_pfx(addr, &a) != 0)
        return tp__fail(err, TP_EBADADDR, "peer address is not IPv4 or "
                        "IPv6");
    addr_forms(&a, &fm);
    if (decide(ps, &fm, dec) == TP_PEER_ALLOW) {
        tp__ok(err);
        return TP_OK;
    }
    if (err != NULL) {
        pfx_text(&a, 0, shown, sizeof(shown));
        tp__fail(err, TP_EPEERDENIED, "peer %s is denied by %s%s", shown,
                 dec->rule[0] == '\0' ? "the realm's default action" :
                 dec->builtin ? "built-in rule " : "realm rule ", dec->rule);
    }
    return TP_EPEERDENIED;
}

tp_status
tp_peerset_check_str(const tp_peerset *ps, const char *addr,
                     tp_peer_decision *dec, tp_error *err)
{
    tp_addr a;
    tp_status st;

    if (dec != NULL)
        set_decision(dec, TP_PEER_DENY, 0, "");
    st = tp_addr_parse(addr, &a, err);
    if (st != TP_OK)
        return st;
    return tp_peerset_check(ps, &a, dec, err);
}

/* ------------------------------------------------------------------ */
/* coturn export                                                       */
/* ------------------------------------------------------------------ */

enum block_class { CLS_NONE, CLS_ALLOW, CLS_DENY, CLS_MIXED };

struct block {
    struct pfx p;
    enum block_class cls;
};

struct export_ctx {
    const tp_peerset *ps;
    struct pfx *cuts;      /* prefixes where the decision may change */
    size_t ncuts;
    struct block *blocks;  /* uniform blocks found, in no order */
    size_t nblocks;
    size_t capblocks;
    tp_status st;
};

static void
push_block(struct export_ctx *x, const struct pfx *p, enum block_class c)
{
    struct block *nb;
    size_t ncap;

    if (x->st != TP_OK || c == CLS_NONE)
        return;
    if (x->nblocks == x->capblocks) {
        ncap = x->capblocks != 0 ? x->capblocks : 64;
        if (x->capblocks != 0) {
            if (x->capblocks > SIZE_MAX / 2 / sizeof(*nb)) {
                x->st = TP_ENOMEM;
                return;
            }
            ncap = x->capblocks * 2;
        }
        nb = realloc(x->blocks, ncap * sizeof(*nb));
        if (nb == NULL) {
            x->st = TP_ENOMEM;
            return;
        }
        x->blocks = nb;
        x->capblocks = ncap;
    }
    x->blocks[x->nblocks].p = *p;
    x->blocks[x->nblocks].cls = c;
    x->nblocks++;
}

/* Decision class of a block on which the decision is constant. */
static enum block_class
block_class(const tp_peerset *ps, const struct pfx *p)
{
    tp_peer_decision dec;
    struct forms fm;
    struct pfx a = *p;

    a.len = (uint8_t)fam_bits(p->fam);
    addr_forms(&a, &fm);
    if (decide(ps, &fm, &dec) == TP_PEER_DENY)
        return CLS_DENY;
    return dec.rule[0] != '\0' ? CLS_ALLOW : CLS_NONE;
}

static void
swap_pfx(struct pfx *a, struct pfx *b)
{
    struct pfx t = *a;

    *a = *b;
    *b = t;
}

/*
 * Classify block p.  cuts[lo..hi) are the cut prefixes inside p (p itself
 * included).  When none lies strictly inside p, every address of p has
 * the same memberships, hence the same decision.  Otherwise split p in
 * two; equal halves merge, unequal uniform halves are recorded.  Depth is
 * at most 129.
 */
static enum block_class
classify(struct export_ctx *x, const struct pfx *p, size_t lo, size_t hi)
{
    struct pfx half[2];
    enum block_class c[2];
    size_t i, mid, k;

    /* Drop cuts equal to p: they cover all of p. */
    for (i = lo; i < hi; i++) {
        if (x->cuts[i].len == p->len)
            swap_pfx(&x->cuts[i], &x->cuts[lo++]);
    }
    if (lo == hi)
        return block_class(x->ps, p);
    /* Partition the rest by the bit after p. */
    mid = lo;
    for (i = lo; i < hi; i++) {
        if (!bit_get(x->cuts[i].b, p->len))
            swap_pfx(&x->cuts[i], &x->cuts[mid++]);
    }
    for (k = 0; k < 2; k++) {
        half[k] = *p;
        half[k].len = (uint8_t)(p->len + 1);
        if (k == 1)
            half[k].b[p->len / 8] |= (uint8_t)(0x80 >> (p->len % 8));
    }
    c[0] = classify(x, &half[0], lo, mid);
    c[1] = classify(x, &half[1], mid, hi);
    if (c[0] == c[1] && c[0] != CLS_MIXED)
        return c[0];
    for (k = 0; k < 2; k++) {
        if (c[k] != CLS_MIXED)
            push_block(x, &half[k], c[k]);
    }
    return CLS_MIXED;
}

static void
add_cut(struct export_ctx *x, const struct pfx *p)
{
    x->cuts[x->ncuts++] = *p;
}

/* Every prefix whose membership can change a decision: rules, built-ins,
 * the embedding regions (and :: / ::1, not IPv4-compatible) and the image
 * of every IPv4 rule or built-in in each embedding region. */
static tp_status
collect_cuts(struct export_ctx *x)
{
    const tp_peerset *ps = x->ps;
    size_t nv4 = 0, n, i, k;

    for (i = 0; i < ps->count; i++)
        nv4 += ps->rules[i].p.fam == 4;
    for (i = 0; i < TP__ARRAY_LEN(builtin_deny); i++)
        nv4 += builtin_deny[i].p.fam == 4;
    /* count is far below SIZE_MAX / sizeof(struct pfx) (the rules array
     * exists and each rule is larger), so only the product can overflow. */
    if (nv4 > (SIZE_MAX / sizeof(struct pfx) - ps->count - 64) /
                  (TP__ARRAY_LEN(embeddings) + 1))
        return TP_ENOMEM;
    n = ps->count + TP__ARRAY_LEN(builtin_deny) + TP__ARRAY_LEN(embeddings) +
        nv4 * TP__ARRAY_LEN(embeddings);
    x->cuts = malloc(n * sizeof(*x->cuts));
    if (x->cuts == NULL)
        return TP_ENOMEM;
    for (i = 0; i < ps->count; i++)
        add_cut(x, &ps->rules[i].p);
    for (i = 0; i < TP__ARRAY_LEN(builtin_deny); i++)
        add_cut(x, &builtin_deny[i].p);
    for (k = 0; k < TP__ARRAY_LEN(embeddings); k++)
        add_cut(x, &embeddings[k].region);
    for (i = 0; i < ps->count + TP__ARRAY_LEN(builtin_deny); i++) {
        const struct pfx *v4 = i < ps->count ? &ps->rules[i].p :
                               &builtin_deny[i - ps->count].p;

        if (v4->fam != 4)
            continue;
        for (k = 0; k < TP__ARRAY_LEN(embeddings); k++) {
            struct pfx img = embeddings[k].region;

            memcpy(img.b + embeddings[k].v4_byte, v4->b, 4);
            img.len = (uint8_t)(img.len + v4->len);
            add_cut(x, &img);
        }
    }
    return TP_OK;
}

static int
block_cmp(const void *pa, const void *pb)
{
    const struct block *a = pa, *b = pb;

    if (a->p.fam != b->p.fam)
        return a->p.fam < b->p.fam ? -1 : 1;
    return memcmp(a->p.b, b->p.b, sizeof(a->p.b));
}

/* Last address of a prefix into last (16 bytes). */
static void
pfx_last(const struct pfx *p, uint8_t *last)
{
    unsigned i, bits = fam_bits(p->fam);

    memcpy(last, p->b, 16);
    for (i = p->len; i < bits; i++)
        last[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

static uint32_t
v4_num(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
           ((uint32_t)b[2] << 8) | b[3];
}

static tp_status
emit_range(tp_range_fn fn, void *ud, int fam, const uint8_t *lo,
           const uint8_t *hi)
{
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    char out[2 * INET6_ADDRSTRLEN + 2];
    int af = fam == 4 ? AF_INET : AF_INET6;
    size_t n = fam == 4 ? 4 : 16;

    if (inet_ntop(af, lo, a, sizeof(a)) == NULL ||
        inet_ntop(af, hi, b, sizeof(b)) == NULL)
        return TP_EINVAL;
    if (memcmp(lo, hi, n) == 0)
        snprintf(out, sizeof(out), "%s", a);
    else
        snprintf(out, sizeof(out), "%s-%s", a, b);
    return fn(ud, out);
}

/* Emit the IPv4 interval [lo, hi]; "0.0.0.0" alone would be coturn's
 * "any" (it matches everything), so it is left out: coturn refuses
 * 0.0.0.0/8 peers itself. */
static tp_status
emit_v4(tp_range_fn fn, void *ud, uint32_t lo, uint32_t hi)
{
    uint8_t a[4], b[4];
    unsigned i;

    if (hi == 0)
        return TP_OK;
    for (i = 0; i < 4; i++) {
        a[i] = (uint8_t)(lo >> (24 - 8 * i));
        b[i] = (uint8_t)(hi >> (24 - 8 * i));
    }
    return emit_range(fn, ud, 4, a, b);
}

/* Emit IPv6 block p.  A block containing "::" would start at coturn's
 * "any" (and so match every IPv4 address); it is emitted as p minus ::,
 * i.e. ::1/128, ::2/127, ::4/126 ... up to p's length. */
static tp_status
emit_v6(tp_range_fn fn, void *ud, const struct pfx *p)
{
    static const struct pfx any = {6, 128, {0}};
    uint8_t last[16];
    unsigned j;
    tp_status st;

    if (!pfx_covers(p, &any)) {
        pfx_last(p, last);
        return emit_range(fn, ud, 6, p->b, last);
    }
    for (j = 128; j > p->len; j--) {
        struct pfx q;

        memset(&q, 0, sizeof(q));
        q.fam = 6;
        q.len = (uint8_t)j;
        q.b[(j - 1) / 8] = (uint8_t)(0x80 >> ((j - 1) % 8));
        pfx_last(&q, last);
        st = emit_range(fn, ud, 6, q.b, last);
        if (st != TP_OK)
            return st;
    }
    return TP_OK;
}

/* Emit the blocks of class want (sorted): adjacent IPv4 blocks merged
 * into one interval, IPv6 blocks as prefixes. */
static tp_status
emit_blocks(struct export_ctx *x, enum block_class want, tp_range_fn fn,
            void *ud)
{
    uint8_t last[16];
    uint32_t lo = 0, hi = 0, s, e;
    int open = 0;
    size_t i;
    tp_status st;

    for (i = 0; i < x->nblocks; i++) {
        const struct block *bl = &x->blocks[i];

        if (bl->cls != want)
            continue;
        if (bl->p.fam == 4) {
            pfx_last(&bl->p, last);
            s = v4_num(bl->p.b);
            e = v4_num(last);
            if (open && hi != UINT32_MAX && s == hi + 1) {
                hi = e;
                continue;
            }
            if (open) {
                st = emit_v4(fn, ud, lo, hi);
                if (st != TP_OK)
                    return st;
            }
            lo = s;
            hi = e;
            open = 1;
            continue;
        }
        if (open) { /* blocks are sorted: IPv4 is over */
            st = emit_v4(fn, ud, lo, hi);
            if (st != TP_OK)
                return st;
            open = 0;
        }
        st = emit_v6(fn, ud, &bl->p);
        if (st != TP_OK)
            return st;
    }
    if (open)
        return emit_v4(fn, ud, lo, hi);
    return TP_OK;
}

tp_status
tp_peerset_export_coturn(const tp_peerset *ps, tp_peer_action which,
                         tp_range_fn fn, void *ud, tp_error *err)
{
    struct export_ctx x;
    struct pfx root;
    enum block_class c, want;
    size_t n4, i;
    unsigned fam;
    tp_status st;

    if (ps == NULL || fn == NULL)
        return tp__fail(err, TP_EINVAL, "no peer set or no callback");
    if (which != TP_PEER_ALLOW && which != TP_PEER_DENY)
        return tp__fail(err, TP_EINVAL, "export which must be allow or "
                        "deny");
    want = which == TP_PEER_ALLOW ? CLS_ALLOW : CLS_DENY;
    memset(&x, 0, sizeof(x));
    x.ps = ps;
    x.st = collect_cuts(&x);
    if (x.st != TP_OK) {
        st = tp__fail(err, x.st, "cannot allocate the export");
        goto out;
    }
    /* IPv4 cuts first, then IPv6, so each family's cuts are contiguous. */
    n4 = 0;
    for (i = 0; i < x.ncuts; i++) {
        if (x.cuts[i].fam == 4)
            swap_pfx(&x.cuts[i], &x.cuts[n4++]);
    }
    for (fam = 4; fam <= 6; fam += 2) {
        memset(&root, 0, sizeof(root));
        root.fam = (uint8_t)fam;
        c = fam == 4 ? classify(&x, &root, 0, n4) :
                       classify(&x, &root, n4, x.ncuts);
        if (c != CLS_MIXED)
            push_block(&x, &root, c);
    }
    if (x.st != TP_OK) {
        st = tp__fail(err, x.st, "cannot allocate the export");
        goto out;
    }
    if (x.nblocks > 1)
        qsort(x.blocks, x.nblocks, sizeof(*x.blocks), block_cmp);
    st = emit_blocks(&x, want, fn, ud);
    if (st != TP_OK) {
        tp__fail(err, st, "coturn export stopped: %s", tp_strerror(st));
        goto out;
    }
    tp__ok(err);

out:
    free(x.cuts);
    free(x.blocks);
    return st;
}
