/*
 * turnurl.c - the TURN/STUN URLs a realm hands out, checked against what
 * clients accept.
 *
 * What: tp_turn_url_parse() splits a URL and checks it against the rules
 * browsers apply to RTCIceServer.urls (the "web rules"); tp_native_turn()
 * picks, from a realm's list, the one URL the ACS native SDKs (Android,
 * iOS, Windows) can use, and says why none fits.
 *
 * Why: a realm's URLs are typed by an operator once and then handed to
 * every client.  A URL a browser rejects breaks every call of the realm
 * (RTCPeerConnection throws), and the native SDKs are stricter still: one
 * IceServer whose only URL is "turn:<IPv4>", a separate udpPort, a
 * required realm, UDP only ("Failed to set media proxy" otherwise).  Both
 * checks live here once; schema/005_acs.sql has the same rules in SQL
 * (turnpolicy.turn_url_error, turnpolicy.acs_native_turn), kept identical
 * and tested against each other (tests/integration/schema.sh).
 *
 * Web rules:   SCHEME ":" HOST [":" PORT] ["?transport=" T]
 *   SCHEME  "turn", "turns" or "stun" (lowercase)
 *   HOST    an IPv4 address (four decimal octets 0..255, no leading zero),
 *           an IPv6 address in brackets, or a DNS name: LDH labels of
 *           1..63 bytes, at most 253 bytes, last label not all digits
 *   PORT    1..65535, no leading zero
 *   T       "udp", "tcp" or "tls"; turn: and turns: only
 *   at most TP_TURN_URL_MAX bytes.
 *
 * Native rule: the first URL (in the realm's order) that passes the web
 * rules with scheme "turn", an IPv4 host and no transport or
 * "transport=udp" gives urls ["turn:<IPv4>"] and udpPort (its port, else
 * 3478).  None such: TP_ENATIVE.  An empty realm: TP_ENATIVE too.
 *
 * Pure functions: no allocation, no I/O; safe from any thread.
 */
#include "tp_internal.h"

#include <arpa/inet.h>
#include <string.h>

#define TP__MSG_MAX 64 /* bytes of a URL quoted in a message */

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1 if s[0..len) is a dotted quad of 0..255 without leading zeros. */
static int
is_ipv4(const char *s, size_t len)
{
    size_t i = 0, start;
    int octets = 0, v;

    while (octets < 4) {
        start = i;
        v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3) {
            v = v * 10 + (s[i] - '0');
            i++;
        }
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return 0;
        octets++;
        if (octets < 4) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    return i == len;
}

/* 1 if s[0..len) is an LDH DNS name whose last label is not all digits. */
static int
is_dns_name(const char *s, size_t len)
{
    size_t i, label = 0;
    int digits_only = 1;
    char c;

    if (len == 0 || len > 253)
        return 0;
    for (i = 0; i < len; i++) {
        c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            digits_only = 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              is_digit(c) || c == '-'))
            return 0;
        if (c == '-' && label == 0)
            return 0;
        if (!is_digit(c))
            digits_only = 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && s[len - 1] != '-' && !digits_only;
}

tp_status
tp_turn_url_parse(const char *url, tp_turn_url *out, tp_error *err)
{
    char shown[TP__MSG_MAX + 8], v6[64];
    unsigned char a6[16];
    const char *p, *host, *end, *q;
    size_t len, hlen;
    unsigned port = 0;
    tp_turn_url u;

    memset(&u, 0, sizeof(u));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (url == NULL)
        return tp__fail(err, TP_EINVAL, "the URL is NULL");
    if (strchr(url, '@') != NULL)
        /* userinfo may be a password typed in the wrong place: not shown */
        return tp__fail(err, TP_EBADURL, "a TURN URL takes no user or "
                        "password (\"@\"): give them as credentials");
    tp__printable(shown, sizeof(shown), url, TP__MSG_MAX);
    len = strlen(url);
    if (len > TP_TURN_URL_MAX)
        return tp__fail(err, TP_EBADURL, "URL \"%s\" is longer than %d "
                        "bytes", shown, TP_TURN_URL_MAX);
    if (strncmp(url, "turn:", 5) == 0) {
        u.scheme = TP_URL_TURN;
        p = url + 5;
    } else if (strncmp(url, "turns:", 6) == 0) {
        u.scheme = TP_URL_TURNS;
        p = url + 6;
    } else if (strncmp(url, "stun:", 5) == 0) {
        u.scheme = TP_URL_STUN;
        p = url + 5;
    } else {
        return tp__fail(err, TP_EBADURL, "URL \"%s\": the scheme must be "
                        "turn:, turns: or stun:", shown);
    }
    end = url + len;
    q = strchr(p, '?');
    if (q == NULL)
        q = end;

    /* host, then an optional port, up to the query */
    host = p;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(q - p));

        if (rb == NULL || (size_t)(rb - p - 1) >= sizeof(v6))
            return tp__fail(err, TP_EBADURL, "URL \"%s\": malformed IPv6 "
                            "address", shown);
        memcpy(v6, p + 1, (size_t)(rb - p - 1));
        v6[rb - p - 1] = '\0';
        if (inet_pton(AF_INET6, v6, a6) != 1)
            return tp__fail(err, TP_EBADURL, "URL \"%s\": malformed IPv6 "
                            "address", shown);
        hlen = (size_t)(rb - p + 1);
        u.host_kind = TP_URL_IPV6;
        p = rb + 1;
    } else {
        while (p < q && *p != ':')
            p++;
        hlen = (size_t)(p - host);
        if (is_ipv4(host, hlen))
            u.host_kind = TP_URL_IPV4;
        else if (is_dns_name(host, hlen))
            u.host_kind = TP_URL_NAME;
        else
            return tp__fail(err, TP_EBADURL, "URL \"%s\": the host must be "
                            "an IPv4 address, an IPv6 address in brackets "
                            "or a DNS name", shown);
    }
    if (p < q) {
        if (*p != ':' || p + 1 == q || p[1] == '0' || q - p - 1 > 5)
            return tp__fail(err, TP_EBADURL, "URL \"%s\": bad port", shown);
        for (p++; p < q; p++) {
            if (!is_digit(*p))
                return tp__fail(err, TP_EBADURL, "URL \"%s\": bad port",
                                shown);
            port = port * 10 + (unsigned)(*p - '0');
        }
        if (port > 65535)
            return tp__fail(err, TP_EBADURL, "URL \"%s\": bad port", shown);
    }
    if (q < end) {
        if (u.scheme == TP_URL_STUN)
            return tp__fail(err, TP_EBADURL, "URL \"%s\": a stun: URL takes "
                            "no query", shown);
        if (strcmp(q, "?transport=udp") == 0)
            u.transport = TP_URL_UDP;
        else if (strcmp(q, "?transport=tcp") == 0)
            u.transport = TP_URL_TCP;
        else if (strcmp(q, "?transport=tls") == 0)
            u.transport = TP_URL_TLS;
        else
            return tp__fail(err, TP_EBADURL, "URL \"%s\": the query must be "
                            "?transport=udp, tcp or tls", shown);
    }
    if (hlen >= sizeof(u.host))
        return tp__fail(err, TP_EBADURL, "URL \"%s\": host too long", shown);
    memcpy(u.host, host, hlen);
    u.host[hlen] = '\0';
    u.port = port;
    if (out != NULL)
        *out = u;
    tp__ok(err);
    return TP_OK;
}

tp_status
tp_native_turn(const char *realm, const char *const *urls, size_t nurls,
               tp_turn_url *out, tp_error *err)
{
    tp_turn_url u;
    size_t i;
    int seen = 0, tcp_only = 1, v6_only = 1;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (urls == NULL && nurls > 0)
        return tp__fail(err, TP_EINVAL, "urls is NULL");
    if (realm == NULL || realm[0] == '\0')
        return tp__fail(err, TP_ENATIVE, "the ACS native SDKs need a realm");
    for (i = 0; i < nurls; i++) {
        if (urls[i] == NULL || tp_turn_url_parse(urls[i], &u, NULL) != TP_OK)
            continue;
        if (u.scheme == TP_URL_STUN)
            continue;
        seen = 1;
        if (u.host_kind != TP_URL_IPV6)
            v6_only = 0;
        if (u.transport == TP_URL_UDP || u.transport == TP_URL_NONE)
            tcp_only = 0;
        if (u.scheme == TP_URL_TURN && u.host_kind == TP_URL_IPV4 &&
            (u.transport == TP_URL_NONE || u.transport == TP_URL_UDP)) {
            if (u.port == 0)
                u.port = 3478;
            if (out != NULL)
                *out = u;
            tp__ok(err);
            return TP_OK;
        }
    }
    if (nurls == 0)
        return tp__fail(err, TP_ENATIVE, "the realm has no TURN URL; the ACS "
                        "native SDKs need turn:<IPv4>[:port] over UDP");
    return tp__fail(err, TP_ENATIVE, "no TURN URL of the realm fits the ACS "
                    "native SDKs (%s): they need turn:<IPv4>[:port] over UDP",
                    !seen ? "no turn: or turns: URL"
                    : v6_only ? "IPv6 only"
                    : tcp_only ? "TCP/TLS only"
                    : "no turn: URL with an IPv4 address and UDP");
}
