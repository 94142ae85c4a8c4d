/*
 * tp_internal.h - helpers shared by libturnpolicy's source files.
 *
 * Names here use the tp__ prefix: internal but shared between files, never
 * exported from the shared library (-fvisibility=hidden), never part of
 * the public header.
 */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include "turnpolicy.h"

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define TP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TP__PRINTF(a, b)
#endif

#define TP__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Fill err (if not NULL) with st and a formatted message; returns st so
 * callers can `return tp__fail(err, TP_EINVAL, "...")`.  The format must
 * never include a secret, password, token or key. */
tp_status tp__fail(tp_error *err, tp_status st, const char *fmt, ...)
    TP__PRINTF(3, 4);

/* Reset err to TP_OK with an empty message. */
void tp__ok(tp_error *err);

/* Overwrite len bytes of p so the compiler cannot elide it. */
void tp__wipe(void *p, size_t len);

/* Constant-time comparison of two equal-length buffers: 0 if equal. */
int tp__ct_memcmp(const void *a, const void *b, size_t len);

/* Copy a string into a fixed buffer; returns 0, or -1 if it does not fit
 * (dst is then "" ). */
int tp__strlcpy(char *dst, const char *src, size_t cap);

/* Copy s for a message, replacing non-printable bytes with '?' and cutting
 * it at max bytes with "...": safe to put an untrusted identifier in an
 * error message (never use it for secrets). */
void tp__printable(char *dst, size_t cap, const char *s, size_t max);

/* A non-negative decimal int64_t (Unix seconds): no sign, no leading
 * zero, at most 19 digits, at most INT64_MAX.  Returns 0 and sets *out,
 * or -1. */
int tp__parse_i64(const char *s, size_t len, int64_t *out);

/* Base64url without padding (RFC 7515).  decode returns the number of
 * bytes written or -1 on bad input or lack of space. */
long tp__b64url_decode(const char *in, size_t len, unsigned char *out,
                       size_t cap);
/* Encodes into out (NUL-terminated); returns length or -1 if no space. */
long tp__b64url_encode(const unsigned char *in, size_t len, char *out,
                       size_t cap);

/* Read a whole regular file of at most max bytes into a malloc'd,
 * NUL-terminated buffer (*buf, *len).  With check_perms, refuse
 * (TP_EPERM) a file accessible to others or writable by its group.  The
 * caller frees *buf (wiping it first if it held a secret). */
tp_status tp__read_file(const char *path, size_t max, int check_perms,
                        char **buf, size_t *len, tp_error *err);

/* TP_OK if libpq can parse conninfo (a conninfo string or URI; a plain
 * database name always can).  libpq's own parse errors quote the faulty
 * part, which may be the password: the caller reports this one instead
 * (TP_EINVAL, nothing of the string shown) and never libpq's. */
tp_status tp__conninfo_check(const char *conninfo, tp_error *err);

/* A growable string (PostgreSQL array literals); oom set once an
 * allocation failed, after which adding does nothing. */
typedef struct tp__strbuf {
    char *p;
    size_t len, cap;
    int oom;
} tp__strbuf;

void tp__sb_add(tp__strbuf *b, const char *s, size_t n);

/* One element of an array literal: "{" (first) or ",", then v quoted
 * (\ and " escaped), or NULL.  The caller closes with "}". */
void tp__sb_elem(tp__strbuf *b, const char *v, int first);

#endif /* TP_INTERNAL_H */
