/*
 * tp_uri.h - the pure URI helpers of ngx_http_turnpolicy_module: splitting
 * a proxied request path "<prefix>/<token>/<host[:port]>/<path>", the
 * path safety rule, nested-prefix unwrapping, and what looks like a token
 * in a request line.  Plain C, no nginx types, no allocation, no I/O: the
 * module and a libFuzzer target (tests/fuzz/fuzz_uri.c) link the same
 * object.  Not a public interface: nothing outside proxy-filter/ and
 * tests/ includes it.
 *
 * All functions take raw bytes (pointer and length, not NUL-terminated),
 * read only inside them, and are safe on any input, including empty.
 * Thread safe: no state.
 */

#ifndef TP_URI_H_INCLUDED_
#define TP_URI_H_INCLUDED_

#include <stddef.h>


/* tp_uri_split flags */
#define TP_URI_TOKEN   1U      /* a "/<token>" segment follows the prefix */
#define TP_URI_HOST    2U      /* then a "/<host[:port]>" segment */

/* tp_uri_split results */
#define TP_URI_OK       0
#define TP_URI_EBAD    -1      /* unsafe path, or the prefix does not match */
#define TP_URI_ETOKEN  -2      /* a nested prefix carries another token */
#define TP_URI_ENESTED -3      /* nested twice, or our own host not nested */


typedef struct {
    const unsigned char  *token;      /* the token segment (len 0: none) */
    size_t                token_len;
    const unsigned char  *host;       /* host[:port] segment (0: none) */
    size_t                host_len;
    const unsigned char  *path;       /* the rest, no query; "/" if empty */
    size_t                path_len;
    const unsigned char  *query;      /* after '?', NULL when there is none */
    size_t                query_len;
    size_t                before_len; /* bytes before the last "/<host>"
                                         (0: no host in the path) */
    unsigned              nested;     /* 1: a nested prefix was unwrapped */
} tp_uri_parts;


/*
 * 0 if the raw path p[0..len) (no query) can be split and passed on as it
 * is: no control byte, space, DEL or '\\', no "." or ".." segment, no
 * encoded '/', '\\', '.' or NUL ("%2f" "%5c" "%2e" "%00", any case).
 * -1 otherwise.  Request paths and redirect targets are held to it.
 */
int tp_uri_path_safe(const unsigned char *p, size_t len);

/*
 * Split the raw request URI uri[0..len) ("/t/<token>/<host>/x?q", not
 * decoded) after the location prefix (prefix_len 0: none, the first
 * segment follows), as flags say.  A missing token or host is left empty
 * for the caller to refuse.
 *
 * Nested URLs (the ACS SDK rewrites some URLs twice:
 * "/t/<token>/<proxy host>/t/<token>/<host>/x") are unwrapped once,
 * whatever the outer host is, when the rest of the path is the prefix
 * followed by the same token: the outer host is then dropped.  A nested
 * prefix followed by something shaped like another token is refused
 * (TP_URI_ETOKEN), so that no token is ever passed on as part of the
 * path.  Without a path token (TP_URI_TOKEN unset), a nested prefix is
 * recognised by the outer host being own_host (the request's Host; NULL
 * or own_len 0: unknown), compared without case.  A second nesting, or
 * own_host asked for without a nested prefix, is TP_URI_ENESTED.
 *
 * Returns TP_URI_OK (out filled; its pointers point into uri, or to a
 * static "/"), TP_URI_EBAD, TP_URI_ETOKEN or TP_URI_ENESTED.
 */
int tp_uri_split(const unsigned char *uri, size_t len,
    const unsigned char *prefix, size_t prefix_len, unsigned flags,
    const unsigned char *own_host, size_t own_len, tp_uri_parts *out);

/*
 * 1 if p[0..len) is shaped like a compact JWS (a JSON Web Token): three
 * base64url parts separated by two dots, the first two at least
 * TP_URI_JWS_PART_MIN bytes long (the shortest JOSE header and claims
 * set); 0 otherwise.  Host names ("edge.skype.com") are not.
 */
#define TP_URI_JWS_PART_MIN  16
int tp_uri_jws_like(const unsigned char *p, size_t len);

/* 1 if some maximal run of base64url bytes and dots in p[0..len) is
 * tp_uri_jws_like (a token somewhere in a request line), 0 otherwise. */
int tp_uri_has_jws(const unsigned char *p, size_t len);

/* Offset of the first copy of needle[0..nlen) in p[0..len), or (size_t)-1
 * when there is none or nlen is 0. */
size_t tp_uri_find(const unsigned char *p, size_t len,
    const unsigned char *needle, size_t nlen);

/*
 * Copy line[0..len) to out with every copy of tok[0..tok_len) replaced by
 * mark[0..mark_len).  out must hold tp_uri_redacted_len() bytes.  Returns
 * the bytes written.
 */
size_t tp_uri_redacted_len(const unsigned char *line, size_t len,
    const unsigned char *tok, size_t tok_len, size_t mark_len);
size_t tp_uri_redact(const unsigned char *line, size_t len,
    const unsigned char *tok, size_t tok_len, const unsigned char *mark,
    size_t mark_len, unsigned char *out);


#endif /* TP_URI_H_INCLUDED_ */
