/*
 * fuzz_uri.c - libFuzzer target for the nginx module's URI helpers
 * (proxy-filter/tp_uri.c): tp_uri_split (prefix, token and host segments,
 * nested-prefix unwrapping), tp_uri_path_safe, the token-shape tests and
 * the request-line redaction.
 *
 * Why: these decide, from bytes a client chooses, which host and path the
 * proxy asks the policy about, what is passed upstream and what reaches
 * the logs; they are plain C, so they run here without nginx.
 *
 * What one input is: byte 0 selects the call (bits 0-1: TP_URI_TOKEN and
 * TP_URI_HOST; bit 2: this proxy's own host is "proxy.test:8443"; bits
 * 4-5: the location prefix "", "/", "/t" or "/t/"; ASCII '3' is the usual
 * "/t/" with token and host, '7' the same with the own host); the rest is
 * the raw request URI.  Seeds: tests/fuzz/corpus_uri.
 *
 * Checked, beyond ASan/UBSan: every pointer of the result lies inside the
 * URI (the path may be the static "/"); the path starts with '/', holds
 * no '?', is tp_uri_path_safe and does not start with the prefix and the
 * token again (nested URLs are unwrapped once or refused); before_len
 * points at "/<host>"; the query follows the '?'; a tp_uri_jws_like
 * segment is found by tp_uri_has_jws; redaction writes exactly the length
 * it announced, and replaces every copy tp_uri_find reports.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const prefixes[] = {"", "/", "/t", "/t/"};
static const unsigned char own[] = "proxy.test:8443";
static const unsigned char mark[] = "[token]";

static int
inside(const unsigned char *p, size_t len, const unsigned char *base,
       size_t blen)
{
    return p >= base && p + len <= base + blen;
}

static void
check_split(const unsigned char *uri, size_t len, unsigned sel)
{
    const char *prefix = prefixes[(sel >> 4) & 3];
    size_t plen = strlen(prefix);
    unsigned flags = sel & (TP_URI_TOKEN | TP_URI_HOST);
    const unsigned char *q, *s;
    tp_uri_parts parts;
    size_t i;
    int rc;

    rc = tp_uri_split(uri, len, (const unsigned char *)prefix, plen, flags,
                      (sel & 4) ? own : NULL, (sel & 4) ? sizeof(own) - 1 : 0,
                      &parts);
    if (rc != TP_URI_OK) {
        if (rc != TP_URI_EBAD && rc != TP_URI_ETOKEN && rc != TP_URI_ENESTED)
            abort();
        return;
    }

    if (parts.path == NULL || parts.path_len == 0 || parts.path[0] != '/')
        abort();
    if (!(parts.path_len == 1 && memcmp(parts.path, "/", 1) == 0) &&
        !inside(parts.path, parts.path_len, uri, len))
        abort();
    if (memchr(parts.path, '?', parts.path_len) != NULL)
        abort();
    if (tp_uri_path_safe(parts.path, parts.path_len) != 0)
        abort();
    if (parts.token_len && !inside(parts.token, parts.token_len, uri, len))
        abort();
    if (parts.host_len) {
        if (!inside(parts.host, parts.host_len, uri, len) ||
            memchr(parts.host, '/', parts.host_len) != NULL)
            abort();
        if (parts.before_len >= len || uri[parts.before_len] != '/' ||
            uri + parts.before_len + 1 != parts.host)
            abort();
    } else if (parts.before_len != 0) {
        abort();
    }
    if (parts.query != NULL &&
        (!inside(parts.query, parts.query_len, uri, len) ||
         parts.query == uri || parts.query[-1] != '?'))
        abort();
    if (!(flags & TP_URI_TOKEN) && parts.token_len)
        abort();
    if (!(flags & TP_URI_HOST) && parts.host_len)
        abort();

    /* no nested prefix with the token is left at the start of the path */
    if ((flags & TP_URI_TOKEN) && parts.token_len) {
        q = (const unsigned char *)parts.path;
        if (plen && parts.path_len >= plen &&
            memcmp(q, prefix, plen) == 0) {
            q += plen;
            if (prefix[plen - 1] == '/')
                q--;
        } else if (plen) {
            q = NULL;
        }
        if (q != NULL && q < parts.path + parts.path_len && *q == '/') {
            s = q + 1;
            for (i = 0; s + i < parts.path + parts.path_len && s[i] != '/';
                 i++) {
                /* void */
            }
            if (i == parts.token_len && memcmp(s, parts.token, i) == 0)
                abort();
        }
    }
}

/* Redaction output: at most 7 bytes ("[token]") for each input byte. */
#define OUT_MAX (7 * 65536)
static unsigned char out[OUT_MAX];

static void
check_redact(const unsigned char *line, size_t len, const unsigned char *tok,
             size_t tok_len)
{
    size_t n, w, at, copies, i;

    at = tp_uri_find(line, len, tok, tok_len);
    if (at != (size_t)-1 && (at + tok_len > len ||
                             memcmp(line + at, tok, tok_len) != 0))
        abort();
    copies = 0;
    for (i = 0; tok_len &&
         (at = tp_uri_find(line + i, len - i, tok, tok_len)) != (size_t)-1;
         i += at + tok_len)
        copies++;
    n = tp_uri_redacted_len(line, len, tok, tok_len, sizeof(mark) - 1);
    if (n != len - copies * tok_len + copies * (sizeof(mark) - 1))
        abort();
    if (n > OUT_MAX)
        return;
    w = tp_uri_redact(line, len, tok, tok_len, mark, sizeof(mark) - 1, out);
    if (w != n)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *uri, *seg, *end, *q;
    unsigned sel;
    size_t len;

    if (size == 0)
        return 0;
    sel = data[0];
    uri = data + 1;
    len = size - 1;

    check_split(uri, len, sel);

    /* every '/'-separated segment: the shape tests agree */
    end = uri + len;
    for (seg = uri; seg < end; seg = q + 1) {
        q = memchr(seg, '/', (size_t)(end - seg));
        q = q != NULL ? q : end;
        if (tp_uri_jws_like(seg, (size_t)(q - seg)) &&
            !tp_uri_has_jws(seg, (size_t)(q - seg)))
            abort();
        if (q == end)
            break;
    }
    (void)tp_uri_has_jws(uri, len);

    /* redaction of the input by its first segment (the usual token) */
    seg = len > 1 ? memchr(uri + 1, '/', len - 1) : NULL;
    check_redact(uri, len, uri + (len ? 1 : 0),
                 seg != NULL ? (size_t)(seg - uri - 1) : (len ? len - 1 : 0));
    return 0;
}
