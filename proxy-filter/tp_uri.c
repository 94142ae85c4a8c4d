/*
 * tp_uri.c - the pure URI helpers of ngx_http_turnpolicy_module (see
 * tp_uri.h): how a proxied request path is split into token, upstream
 * host and path, which raw paths are safe to pass on undecoded, how the
 * ACS SDK's doubly rewritten URLs are unwrapped, and what looks like a
 * token in a request line.
 *
 * Why here and not in the module: these decide what reaches the upstream
 * and the logs from bytes a hostile client chooses, so they are fuzzed
 * (tests/fuzz/fuzz_uri.c) without nginx.  Nothing here allocates, logs or
 * keeps state; every read stays inside the [p, p + len) it was given.
 *
 * Invariants of tp_uri_split's result, which the fuzzer checks:
 *   - path starts with '/', holds no '?', and is tp_uri_path_safe;
 *   - token, host and path lie inside the URI (path may be the static "/");
 *   - with TP_URI_TOKEN and a non-empty token, path does not start with
 *     the prefix followed by that token (a nested URL is unwrapped once,
 *     a second nesting refused; the module refuses the token anywhere
 *     else in the path or query).
 */

#include <string.h>

#include "tp_uri.h"


static const unsigned char  tp_uri_slash[] = "/";


static int
tp_uri_b64url(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


static int
tp_uri_casecmp(const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t         i;
    unsigned char  x, y;

    for (i = 0; i < n; i++) {
        x = a[i];
        y = b[i];

        if (x >= 'A' && x <= 'Z') {
            x |= 0x20;
        }

        if (y >= 'A' && y <= 'Z') {
            y |= 0x20;
        }

        if (x != y) {
            return 1;
        }
    }

    return 0;
}


int
tp_uri_path_safe(const unsigned char *p, size_t len)
{
    const unsigned char  *q, *seg, *end;

    /*
     * The bytes that need a closer look: controls, space, DEL, '\\', '%'
     * and '/'.  A path is mostly other bytes (a token segment is 200 or
     * more), passed with one table lookup each.
     */
    static const unsigned int  look[] = {
        0xffffffff, /* 0x00-0x1f */
        0x00008021, /* ' ' '%' '/' */
        0x10000000, /* '\\' */
        0x80000000, /* DEL */
        0, 0, 0, 0  /* non-ASCII passes, as in the request line nginx took */
    };

    end = p + len;

    for (q = p; q < end; q++) {

        if (!(look[*q >> 5] & (1U << (*q & 0x1f)))) {
            continue;
        }

        if (*q < 0x21 || *q == 0x7f || *q == '\\') {
            return -1;
        }

        if (*q == '%' && end - q >= 3
            && ((q[1] == '2' && (q[2] == 'f' || q[2] == 'F'
                                 || q[2] == 'e' || q[2] == 'E'))
                || (q[1] == '5' && (q[2] == 'c' || q[2] == 'C'))
                || (q[1] == '0' && q[2] == '0')))
        {
            return -1;
        }

        if (*q != '/') {
            continue;
        }

        seg = q + 1;

        if (seg < end && *seg == '.'
            && (seg + 1 == end || seg[1] == '/'
                || (seg[1] == '.' && (seg + 2 == end || seg[2] == '/'))))
        {
            return -1;
        }
    }

    return 0;
}


/*
 * p past the location prefix, at the '/' that must follow it (or at end);
 * NULL when p does not start with the prefix.  A prefix ending in '/'
 * ("/t/") keeps that '/' as the start of the next segment.
 */
static const unsigned char *
tp_uri_after_prefix(const unsigned char *p, const unsigned char *end,
    const unsigned char *prefix, size_t plen)
{
    if (plen) {
        if ((size_t) (end - p) < plen || memcmp(p, prefix, plen) != 0) {
            return NULL;
        }

        p += plen;

        if (prefix[plen - 1] == '/') {
            p--;
        }
    }

    if (p < end && *p != '/') {
        return NULL;
    }

    return p;
}


/* The segment "/<s>" at p (none at end): *s, *slen; returns its end. */
static const unsigned char *
tp_uri_segment(const unsigned char *p, const unsigned char *end,
    const unsigned char **s, size_t *slen)
{
    const unsigned char  *q;

    if (p >= end) {
        *s = NULL;
        *slen = 0;
        return end;
    }

    q = memchr(p + 1, '/', end - p - 1);
    q = q ? q : end;

    *s = p + 1;
    *slen = q - p - 1;

    return q;
}


int
tp_uri_split(const unsigned char *uri, size_t len,
    const unsigned char *prefix, size_t prefix_len, unsigned flags,
    const unsigned char *own_host, size_t own_len, tp_uri_parts *out)
{
    size_t                slen;
    unsigned              level, nested, own;
    const unsigned char  *p, *q, *end, *s, *host_at;

    memset(out, 0, sizeof(tp_uri_parts));

    end = uri + len;

    q = memchr(uri, '?', len);

    if (q) {
        out->query = q + 1;
        out->query_len = end - q - 1;
        end = q;
    }

    if (tp_uri_path_safe(uri, end - uri) != 0) {
        return TP_URI_EBAD;
    }

    p = tp_uri_after_prefix(uri, end, prefix, prefix_len);
    if (p == NULL) {
        /* an encoded or merged spelling of the prefix */
        return TP_URI_EBAD;
    }

    host_at = NULL;

    for (level = 0; /* void */; level++) {

        if (flags & TP_URI_TOKEN) {
            p = tp_uri_segment(p, end, &out->token, &out->token_len);
        }

        if (flags & TP_URI_HOST) {
            host_at = p < end ? p : NULL;
            p = tp_uri_segment(p, end, &out->host, &out->host_len);
        }

        /*
         * Nested: the rest is the prefix again.  With a path token the
         * same token must follow (anything else shaped like a token is
         * refused: it would be passed on); without one, the outer host
         * must be this proxy's own.
         */

        q = tp_uri_after_prefix(p, end, prefix, prefix_len);
        nested = 0;

        own = (flags & TP_URI_HOST) && own_host != NULL && own_len
              && out->host_len == own_len
              && tp_uri_casecmp(out->host, own_host, own_len) == 0;

        if (flags & TP_URI_TOKEN) {
            if (q != NULL && q < end) {
                (void) tp_uri_segment(q, end, &s, &slen);

                if (out->token_len && slen == out->token_len
                    && memcmp(s, out->token, slen) == 0)
                {
                    nested = 1;

                } else if (tp_uri_jws_like(s, slen)) {
                    return TP_URI_ETOKEN;
                }
            }

        } else if (own && prefix_len && q != NULL) {
            nested = 1;
        }

        if (!nested) {
            if (own) {
                /* a request to ourselves that is not a nested URL */
                return TP_URI_ENESTED;
            }

            break;
        }

        if (level == 1) {
            return TP_URI_ENESTED;
        }

        out->nested = 1;
        p = q;
    }

    if (p == end) {
        out->path = tp_uri_slash;
        out->path_len = 1;

    } else {
        out->path = p;
        out->path_len = end - p;
    }

    if (host_at && out->host_len) {
        out->before_len = host_at - uri;
    }

    return TP_URI_OK;
}


int
tp_uri_jws_like(const unsigned char *p, size_t len)
{
    size_t  i, part, dots;
    size_t  parts[3];

    dots = 0;
    part = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '.') {
            if (dots == 2) {
                return 0;
            }

            parts[dots++] = part;
            part = 0;
            continue;
        }

        if (!tp_uri_b64url(p[i])) {
            return 0;
        }

        part++;
    }

    return dots == 2 && parts[0] >= TP_URI_JWS_PART_MIN
           && parts[1] >= TP_URI_JWS_PART_MIN;
}


int
tp_uri_has_jws(const unsigned char *p, size_t len)
{
    size_t  i, prev, cur;

    prev = 0;
    cur = 0;

    for (i = 0; i < len; i++) {
        if (tp_uri_b64url(p[i])) {
            cur++;
            continue;
        }

        if (p[i] == '.') {
            /* "<header>.<payload>." inside one run */
            if (prev >= TP_URI_JWS_PART_MIN && cur >= TP_URI_JWS_PART_MIN) {
                return 1;
            }

            prev = cur;
            cur = 0;
            continue;
        }

        prev = 0;
        cur = 0;
    }

    return 0;
}


size_t
tp_uri_find(const unsigned char *p, size_t len, const unsigned char *needle,
    size_t nlen)
{
    size_t                i;
    const unsigned char  *q;

    if (nlen == 0 || nlen > len) {
        return (size_t) -1;
    }

    for (i = 0; i <= len - nlen; i = (q - p) + 1) {
        q = memchr(p + i, needle[0], len - nlen + 1 - i);
        if (q == NULL) {
            break;
        }

        if (memcmp(q, needle, nlen) == 0) {
            return q - p;
        }
    }

    return (size_t) -1;
}


size_t
tp_uri_redacted_len(const unsigned char *line, size_t len,
    const unsigned char *tok, size_t tok_len, size_t mark_len)
{
    size_t  at, i, n;

    n = len;

    for (i = 0;
         (at = tp_uri_find(line + i, len - i, tok, tok_len)) != (size_t) -1;
         i += at + tok_len)
    {
        n = n - tok_len + mark_len;
    }

    return n;
}


size_t
tp_uri_redact(const unsigned char *line, size_t len,
    const unsigned char *tok, size_t tok_len, const unsigned char *mark,
    size_t mark_len, unsigned char *out)
{
    size_t          at, i;
    unsigned char  *d;

    d = out;

    for (i = 0;
         (at = tp_uri_find(line + i, len - i, tok, tok_len)) != (size_t) -1;
         i += at + tok_len)
    {
        memcpy(d, line + i, at);
        d += at;
        memcpy(d, mark, mark_len);
        d += mark_len;
    }

    memcpy(d, line + i, len - i);
    d += len - i;

    return d - out;
}
