/*
 * util.c - small helpers shared by the library: wiping, constant-time
 * comparison, bounded copies, number parsing and base64url.
 *
 * Nothing here allocates.
 */
#include "tp_internal.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <string.h>

void
tp__wipe(void *p, size_t len)
{
    /* explicit_bzero is glibc's non-elidable memset, cheaper than
     * OPENSSL_cleanse for the small states wiped on hot paths. */
    if (p != NULL && len > 0)
        explicit_bzero(p, len);
}

int
tp__ct_memcmp(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) != 0;
}

int
tp__strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n;

    if (cap == 0)
        return -1;
    n = strlen(src);
    if (n >= cap) {
        dst[0] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

void
tp__printable(char *dst, size_t cap, const char *s, size_t max)
{
    size_t i, o = 0;

    if (cap == 0)
        return;
    if (s == NULL)
        s = "(null)";
    for (i = 0; s[i] != '\0' && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= max) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[o] = '\0';
}

int
tp__parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 19)
        return -1;
    if (s[0] == '0' && len > 1)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int
b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long
tp__b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t i, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero (canonical encoding). */
    if (acc != 0)
        return -1;
    return (long)o;
}

long
tp__b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0, need;

    need = (len / 3) * 4 + ((len % 3) ? (len % 3) + 1 : 0);
    if (need + 1 > cap)
        return -1;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) |
                     in[i + 2];

        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);

        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    out[o] = '\0';
    return (long)o;
}

tp_status
tp__conninfo_check(const char *conninfo, tp_error *err)
{
    PQconninfoOption *opts;
    char *perr = NULL;

    if (conninfo == NULL)
        return tp__fail(err, TP_EINVAL, "no database connection string");
    if (strchr(conninfo, '=') == NULL &&
        strncmp(conninfo, "postgresql://", 13) != 0 &&
        strncmp(conninfo, "postgres://", 11) != 0)
        return TP_OK; /* a database name */
    opts = PQconninfoParse(conninfo, &perr);
    PQfreemem(perr);
    if (opts == NULL)
        return tp__fail(err, TP_EINVAL, "the database connection string is "
                        "malformed (not shown: it may hold a password)");
    PQconninfoFree(opts);
    return TP_OK;
}

void
tp__sb_add(tp__strbuf *b, const char *s, size_t n)
{
    size_t cap;
    char *np;

    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        cap = b->cap != 0 ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* One element of an array literal: quoted (with \ and " escaped), or
 * NULL. */
void
tp__sb_elem(tp__strbuf *b, const char *v, int first)
{
    const char *p;

    tp__sb_add(b, first ? "{" : ",", 1);
    if (v == NULL) {
        tp__sb_add(b, "NULL", 4);
        return;
    }
    tp__sb_add(b, "\"", 1);
    for (p = v; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            tp__sb_add(b, "\\", 1);
        tp__sb_add(b, p, 1);
    }
    tp__sb_add(b, "\"", 1);
}
