/*
 * host.c - upstream host allow-lists for the signaling proxy.
 *
 * What: a tp_hostlist is an ordered list of rules naming the upstream hosts
 * a tenant's signaling proxy may forward to (edge.skype.com,
 * *.communication.azure.com, ...).  tp_hostlist_check() answers "may this
 * request go to host:port/path?" and names the rule that allowed it.
 *
 * Why: the sample ACS proxy forwards to any *.com / *.net host, which makes
 * it an open proxy.  An allow-list with default deny closes that, as long
 * as the names it compares are canonical: every name, in a rule or in a
 * request, goes through the same normalization (host_normalize) first.
 *
 * Rule grammar:   NAME [":" PORT | ":*"] [PATH]
 *   NAME   an LDH DNS name ("edge.skype.com") or "*." followed by one with
 *          at least two labels ("*.communication.azure.com"); a wildcard
 *          matches names with at least one more label, never the suffix
 *          itself.  "*", "*.com" and a "*" anywhere else are refused.
 *   PORT   1..65535, no leading zero.  Without a port a rule means 443;
 *          ":*" means any port.  A request without a port (0) is port 443.
 *   PATH   a prefix starting with "/", matched on segment boundaries:
 *          "/api" matches "/api" and "/api/x", not "/apix".  Compared
 *          byte for byte (case-sensitive, no decoding).
 *
 * Invariants:
 *   - rule names are stored normalized: lowercase, no trailing dot, valid
 *     LDH labels of 1..63 bytes, at most TP__HOST_MAX bytes in all, last
 *     label not numeric (so no IPv4 literal in any spelling is a name),
 *     only ASCII (IDNs must be given as xn-- A-labels);
 *   - no two rules have the same (wildcard, name, port, path);
 *   - a request path that is not tp_path_safe (the one rule the nginx
 *     module applies too: no "." or ".." segment, no backslash, control
 *     byte or space, no escapes %2f %5c %2e %00 in any case) never
 *     matches a rule with a path; rules with a path must be safe too and
 *     hold no "//" or ".." at all.  Blunt on purpose: it refuses some
 *     harmless paths rather than reason about how an upstream decodes
 *     them.  The caller passes the path without the query string.
 *
 * Workload: built once from configuration (tp_hostlist_add), then read by
 * many threads per request (tp_hostlist_check).  Lookups do not allocate:
 * the request host is normalized into a stack buffer.  Lists are a handful
 * of rules, so the check is a linear scan in insertion order (first match
 * wins); a larger list would want a hash of exact names and a suffix trie.
 */
#include "tp_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TP__HOST_MAX 253      /* bytes of a DNS name without trailing dot */
#define TP__LABEL_MAX 63
#define TP__RULE_MAX 1024     /* longest rule text accepted */
#define TP__PORT_DEFAULT 443u
#define TP__PORT_ANY 0u       /* in a rule: ":*" */
#define TP__MSG_MAX 64        /* bytes of untrusted input quoted */

struct host_rule {
    char *text;                  /* the rule as added; owned */
    const char *path;            /* inside text, or NULL for no path */
    size_t path_len;
    size_t name_len;
    unsigned port;               /* 1..65535, or TP__PORT_ANY */
    int wildcard;                /* 1: name is the suffix after "*." */
    char name[TP__HOST_MAX + 1]; /* normalized */
};

struct tp_hostlist {
    struct host_rule *rules;
    size_t count;
    size_t cap;
};

/* Fail with TP_EBADHOST and "host "<host>": <what>", quoting at most
 * TP__MSG_MAX bytes of the untrusted host with unprintable bytes masked. */
static tp_status
host_fail(tp_error *err, const char *host, size_t len, const char *what)
{
    char shown[TP__MSG_MAX + 8];
    size_t i;

    if (err == NULL)
        return TP_EBADHOST;
    for (i = 0; i < len && i < TP__MSG_MAX; i++) {
        unsigned char c = (unsigned char)host[i];

        shown[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    shown[i] = '\0';
    if (i < len)
        memcpy(shown + i, "...", 4);
    return tp__fail(err, TP_EBADHOST, "host \"%s\": %s", shown, what);
}

/*
 * Normalize the len bytes at host into out (cap bytes, NUL-terminated):
 * lowercase, one trailing dot removed, checked per the invariants above.
 * *out_len (if not NULL) receives the length.  Returns TP_OK, TP_EBADHOST
 * or TP_ENOSPACE.  Does not allocate.
 */
static tp_status
host_normalize(const char *host, size_t len, char *out, size_t cap,
               size_t *out_len, tp_error *err)
{
    size_t i, label_len = 0, label_start = 0, full = len;
    int numeric = 1;

    if (len == 0)
        return tp__fail(err, TP_EBADHOST, "empty host name");
    if (host[len - 1] == '.')
        len--;
    if (len == 0)
        return host_fail(err, host, full, "no label");
    if (len > TP__HOST_MAX)
        return host_fail(err, host, full, "longer than 253 bytes");

    for (i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)host[i] : '.';

        if (c == '.') {
            if (label_len == 0)
                return host_fail(err, host, full, "empty label");
            if (host[i - 1] == '-')
                return host_fail(err, host, full, "a label ends with '-'");
            if (i < len) {
                label_start = i + 1;
                label_len = 0;
                numeric = 1;
            }
            continue;
        }
        if (c >= 0x80)
            return host_fail(err, host, full, "non-ASCII byte; give an IDN "
                             "in its xn-- form");
        if (c == '_')
            return host_fail(err, host, full, "'_' is not allowed in host "
                             "names");
        if (c == ':' || c == '[' || c == ']')
            return host_fail(err, host, full, "IP literals and ports are "
                             "not host names");
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return host_fail(err, host, full, "only letters, digits, '-' "
                             "and '.' are allowed");
        if (c == '-' && label_len == 0)
            return host_fail(err, host, full, "a label starts with '-'");
        if (c < '0' || c > '9')
            numeric = 0;
        label_len++;
        if (label_len > TP__LABEL_MAX)
            return host_fail(err, host, full, "a label is longer than 63 "
                             "bytes");
    }
    /* The last label decides whether a resolver might read the name as an
     * IPv4 number (inet_aton takes 127.1, 0x7f.1, 2130706433): refuse an
     * all-decimal or 0x-hexadecimal last label. */
    if (!numeric && label_len >= 2 && host[label_start] == '0' &&
        (host[label_start + 1] == 'x' || host[label_start + 1] == 'X')) {
        numeric = 1;
        for (i = label_start + 2; i < len; i++) {
            char c = host[i];

            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F')))
                numeric = 0;
        }
    }
    if (numeric)
        return host_fail(err, host, full, "looks like an IP address; IP "
                         "literals are not host names");
    if (out == NULL || cap <= len)
        return tp__fail(err, TP_ENOSPACE, "host name needs %zu bytes",
                        len + 1);
    for (i = 0; i < len; i++) {
        char c = host[i];

        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[len] = '\0';
    if (out_len != NULL)
        *out_len = len;
    return TP_OK;
}

tp_status
tp_host_normalize(const char *host, char *out, size_t cap, tp_error *err)
{
    size_t len;
    tp_status st;

    if (host == NULL)
        return tp__fail(err, TP_EBADHOST, "no host name");
    /* One byte more than the longest name with its trailing dot, so a
     * longer string is seen as too long without reading all of it. */
    len = strnlen(host, TP__HOST_MAX + 2);
    if (len > TP__HOST_MAX + 1)
        return tp__fail(err, TP_EBADHOST, "host name is longer than %d "
                        "bytes", TP__HOST_MAX);
    st = host_normalize(host, len, out, cap, NULL, err);
    if (st != TP_OK)
        return st;
    tp__ok(err);
    return TP_OK;
}

int
tp_path_safe(const char *path, size_t len)
{
    /* The bytes that need a closer look: controls, space, '%', '/', '\\'
     * and DEL; a path is mostly other bytes (an SDK token segment is 200
     * or more), passed with one table lookup each. */
    static const unsigned int look[8] = {
        0xffffffffu, /* 0x00-0x1f */
        0x00008021u, /* ' ' '%' '/' */
        0x10000000u, /* '\\' */
        0x80000000u, /* DEL */
        0, 0, 0, 0   /* non-ASCII passes */
    };
    const unsigned char *p = (const unsigned char *)path, *end = p + len;
    const unsigned char *q, *seg;

    if (path == NULL)
        return 0;
    for (q = p; q < end; q++) {
        if (!(look[*q >> 5] & (1u << (*q & 0x1f))))
            continue;
        if (*q < 0x21 || *q == 0x7f || *q == '\\')
            return 0;
        if (*q == '%' && end - q >= 3 &&
            ((q[1] == '2' && (q[2] == 'f' || q[2] == 'F' || q[2] == 'e' ||
                              q[2] == 'E')) ||
             (q[1] == '5' && (q[2] == 'c' || q[2] == 'C')) ||
             (q[1] == '0' && q[2] == '0')))
            return 0;
        if (*q != '/')
            continue;
        seg = q + 1;
        if (seg < end && *seg == '.' &&
            (seg + 1 == end || seg[1] == '/' ||
             (seg[1] == '.' && (seg + 2 == end || seg[2] == '/'))))
            return 0;
    }
    return 1;
}

/* 1 if c appears twice in a row in p[0..len). */
static int
has_pair(const char *p, size_t len, char c)
{
    size_t i;

    for (i = 0; i + 1 < len; i++)
        if (p[i] == c && p[i + 1] == c)
            return 1;
    return 0;
}

/* Returns 1 if the path (len bytes) may be compared with a path prefix:
 * see the invariants in the file comment. */
static int
path_is_safe(const char *p, size_t len)
{
    return len > 0 && p[0] == '/' && tp_path_safe(p, len);
}

/* Parse a rule port ("443", "*"); returns 0 and sets *port, or -1. */
static int
parse_port(const char *s, size_t len, unsigned *port)
{
    unsigned v = 0;
    size_t i;

    if (len == 1 && s[0] == '*') {
        *port = TP__PORT_ANY;
        return 0;
    }
    if (len == 0 || len > 5 || s[0] == '0')
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0'); /* at most 99999: no overflow */
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

static size_t
count_labels(const char *name)
{
    size_t n = 1;

    for (; *name != '\0'; name++) {
        if (*name == '.')
            n++;
    }
    return n;
}

tp_hostlist *
tp_hostlist_new(tp_error *err)
{
    tp_hostlist *hl = calloc(1, sizeof(*hl));

    if (hl == NULL) {
        tp__fail(err, TP_ENOMEM, "cannot allocate a host list");
        return NULL;
    }
    tp__ok(err);
    return hl;
}

void
tp_hostlist_free(tp_hostlist *hl)
{
    size_t i;

    if (hl == NULL)
        return;
    for (i = 0; i < hl->count; i++)
        free(hl->rules[i].text);
    free(hl->rules);
    free(hl);
}

size_t
tp_hostlist_count(const tp_hostlist *hl)
{
    return hl != NULL ? hl->count : 0;
}

tp_status
tp_hostlist_add(tp_hostlist *hl, const char *rule, tp_error *err)
{
    char shown[TP__MSG_MAX + 8];
    struct host_rule r;
    const char *slash, *colon, *name;
    size_t len, hostport_len, name_len, i;
    tp_status st;

    if (hl == NULL || rule == NULL)
        return tp__fail(err, TP_EINVAL, "no host list or no rule");
    len = strnlen(rule, TP__RULE_MAX + 1);
    if (len > TP__RULE_MAX)
        return tp__fail(err, TP_EINVAL, "host rule is longer than %d bytes",
                        TP__RULE_MAX);
    tp__printable(shown, sizeof(shown), rule, TP__MSG_MAX);
    memset(&r, 0, sizeof(r));

    slash = memchr(rule, '/', len);
    hostport_len = slash != NULL ? (size_t)(slash - rule) : len;
    colon = memchr(rule, ':', hostport_len);
    name = rule;
    name_len = colon != NULL ? (size_t)(colon - rule) : hostport_len;
    if (name_len >= 2 && name[0] == '*' && name[1] == '.') {
        r.wildcard = 1;
        name += 2;
        name_len -= 2;
    }
    if (memchr(name, '*', name_len) != NULL)
        return tp__fail(err, TP_EBADHOST, "host rule \"%s\": '*' is only "
                        "allowed as a whole leftmost label, as in "
                        "\"*.example.com\"", shown);
    st = host_normalize(name, name_len, r.name, sizeof(r.name), &r.name_len,
                        err);
    if (st != TP_OK)
        return st;
    if (r.wildcard && count_labels(r.name) < 2)
        return tp__fail(err, TP_EBADHOST, "host rule \"%s\": a wildcard "
                        "needs at least two labels after \"*.\"", shown);

    r.port = TP__PORT_DEFAULT;
    if (colon != NULL) {
        const char *p = colon + 1;

        if (parse_port(p, hostport_len - (size_t)(p - rule), &r.port) != 0)
            return tp__fail(err, TP_EINVAL, "host rule \"%s\": the port "
                            "must be 1..65535 or '*'", shown);
    }
    if (slash != NULL) {
        r.path_len = len - hostport_len;
        /* a rule's own prefix is written by an operator: no "//" or
         * "a..b" either, which only a typo would put there */
        if (!path_is_safe(slash, r.path_len) ||
            has_pair(slash, r.path_len, '/') ||
            has_pair(slash, r.path_len, '.') ||
            memchr(slash, '?', r.path_len) != NULL ||
            memchr(slash, '#', r.path_len) != NULL ||
            memchr(slash, ' ', r.path_len) != NULL)
            return tp__fail(err, TP_EINVAL, "host rule \"%s\": the path "
                            "prefix must not contain '..', '//', '\\', "
                            "'?', '#', spaces, control bytes or encoded "
                            "'/', '\\', '.' or NUL", shown);
    }

    for (i = 0; i < hl->count; i++) {
        const struct host_rule *o = &hl->rules[i];

        if (o->wildcard == r.wildcard && o->port == r.port &&
            strcmp(o->name, r.name) == 0 && o->path_len == r.path_len &&
            (r.path_len == 0 ||
             memcmp(o->path, slash, r.path_len) == 0))
            return tp__fail(err, TP_EEXISTS, "host rule \"%s\" is the same "
                            "as rule %zu", shown, i);
    }

    if (hl->count >= INT_MAX)
        return tp__fail(err, TP_ENOMEM, "too many host rules");
    if (hl->count == hl->cap) {
        struct host_rule *nr;
        size_t ncap = hl->cap != 0 ? hl->cap : 4;

        if (hl->cap != 0) {
            if (hl->cap > SIZE_MAX / 2 / sizeof(*nr))
                return tp__fail(err, TP_ENOMEM, "too many host rules");
            ncap = hl->cap * 2;
        }
        nr = realloc(hl->rules, ncap * sizeof(*nr));
        if (nr == NULL)
            return tp__fail(err, TP_ENOMEM, "cannot grow the host list");
        hl->rules = nr;
        hl->cap = ncap;
    }
    r.text = malloc(len + 1);
    if (r.text == NULL)
        return tp__fail(err, TP_ENOMEM, "cannot copy a host rule");
    memcpy(r.text, rule, len);
    r.text[len] = '\0';
    if (slash != NULL)
        r.path = r.text + hostport_len;
    hl->rules[hl->count++] = r;
    tp__ok(err);
    return TP_OK;
}

/* Does rule r accept the normalized host (hlen bytes)? */
static int
name_matches(const struct host_rule *r, const char *host, size_t hlen)
{
    if (!r->wildcard)
        return hlen == r->name_len && memcmp(host, r->name, hlen) == 0;
    /* At least one label, then '.', then the suffix.  host has no empty
     * label, so anything before the '.' is a whole label. */
    if (hlen < r->name_len + 2)
        return 0;
    return host[hlen - r->name_len - 1] == '.' &&
           memcmp(host + hlen - r->name_len, r->name, r->name_len) == 0;
}

/* Does rule r's path prefix accept path (already found safe)? */
static int
path_matches(const struct host_rule *r, const char *path)
{
    char next;

    if (strncmp(path, r->path, r->path_len) != 0)
        return 0;
    if (r->path[r->path_len - 1] == '/')
        return 1;
    next = path[r->path_len];
    return next == '\0' || next == '/';
}

tp_status
tp_hostlist_check(const tp_hostlist *hl, const char *host, unsigned port,
                  const char *path, tp_host_match *match, tp_error *err)
{
    char name[TP__HOST_MAX + 1];
    char shown[TP__MSG_MAX + 8];
    size_t len, i;
    unsigned eff_port;
    int path_ok;
    tp_status st;

    if (match != NULL) {
        match->rule_index = -1;
        match->rule = NULL;
    }
    if (hl == NULL)
        return tp__fail(err, TP_EINVAL, "no host list");
    if (port > 65535)
        return tp__fail(err, TP_EINVAL, "port %u is out of range", port);
    if (host == NULL)
        return tp__fail(err, TP_EBADHOST, "no host name");
    len = strnlen(host, TP__HOST_MAX + 2);
    if (len > TP__HOST_MAX + 1)
        return tp__fail(err, TP_EBADHOST, "host name is longer than %d "
                        "bytes", TP__HOST_MAX);
    st = host_normalize(host, len, name, sizeof(name), &len, err);
    if (st != TP_OK)
        return st;

    eff_port = port != 0 ? port : TP__PORT_DEFAULT;
    path_ok = path != NULL && path_is_safe(path, strlen(path));
    for (i = 0; i < hl->count; i++) {
        const struct host_rule *r = &hl->rules[i];

        if (r->port != TP__PORT_ANY && r->port != eff_port)
            continue;
        if (!name_matches(r, name, len))
            continue;
        if (r->path != NULL && (!path_ok || !path_matches(r, path)))
            continue;
        if (match != NULL) {
            match->rule_index = (int)i; /* count < INT_MAX: see add */
            match->rule = r->text;
        }
        tp__ok(err);
        return TP_OK;
    }
    if (err != NULL) {
        tp__printable(shown, sizeof(shown), name, TP__MSG_MAX);
        tp__fail(err, TP_EHOSTDENIED, "host \"%s\" port %u%s is not on the "
                 "allow-list", shown, eff_port,
                 path != NULL && !path_ok ? " (unsafe path)" : "");
    }
    return TP_EHOSTDENIED;
}
