/*
 * resp.c - the Redis protocol as turnpolicyd speaks it: requests in,
 * replies out.
 *
 * Requests are parsed by hiredis's own redisReader (0.14.1 on Debian 12,
 * 1.x on Debian 13: 1.0 made an array's length a size_t and added RESP3
 * doubles, booleans, maps, sets and pushes, all refused here), which reads
 * any RESP value, given our own object functions instead of hiredis's
 * redisReply builders.  Those functions accept exactly what a Redis
 * client sends - one array of 1..TPD_MAX_ARGS bulk strings - and refuse
 * everything else by returning NULL, which puts the reader in its error
 * state: nested arrays, integers, nils, status lines, inline commands, an
 * array longer than TPD_MAX_ARGS (so "*2000000000" never allocates).
 * coturn 4.6.1 formats every command with hiredis, so it only ever sends
 * such arrays (never inline commands), and pipelines them on its async
 * statsdb connection.
 *
 * Bounds: a request's arguments together, and the bytes buffered for a
 * request not yet complete, are both at most max_request; past that the
 * parser reports TPD_PARSE_TOO_LARGE.  The caller reads the socket in
 * bounded chunks, so the reader never holds more than max_request plus
 * one chunk.
 *
 * Ownership: a tpd_request handed out by tpd_parser_next belongs to the
 * caller (tpd_request_free); the partial request the reader holds while
 * waiting for more bytes belongs to the reader, which frees it through
 * obj_free on error and in redisReaderFree.  Single-threaded; no I/O.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>   /* HIREDIS_MAJOR */
#include <hiredis/read.h>

#include "turnpolicyd.h"

struct tpd_parser {
    redisReader *rd;
    size_t max_request;
    int too_large;    /* set by the object functions */
};

/* ------------------------------------------------------------------ */
/* Object functions for redisReader                                    */
/* ------------------------------------------------------------------ */

/* The length type of createArray: int before hiredis 1.0, size_t since. */
#if HIREDIS_MAJOR >= 1
typedef size_t tpd_nelem;
#else
typedef int tpd_nelem;
#endif

static void *
obj_array(const redisReadTask *task, tpd_nelem elements)
{
    tpd_request *rq;

    /* Only the outer array (not a RESP3 map, set or push), and only a
     * sane number of arguments. */
    if (task->parent != NULL || task->type != REDIS_REPLY_ARRAY ||
        elements > TPD_MAX_ARGS)
        return NULL;
#if HIREDIS_MAJOR < 1
    if (elements < 0)
        return NULL;
#endif
    rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return NULL;
    rq->expected = (int)elements;
    return rq;
}

static void *
obj_string(const redisReadTask *task, char *str, size_t len)
{
    tpd_parser *p = task->privdata;
    tpd_request *rq;
    char *copy;

    /* A bulk string inside the outer array; never a status or error
     * line, never a bare string. */
    if (task->parent == NULL || task->type != REDIS_REPLY_STRING ||
        p == NULL)
        return NULL;
    rq = task->parent->obj;
    if (rq == NULL || task->idx < 0 || task->idx >= rq->expected ||
        task->idx != rq->argc)
        return NULL;
    if (len > p->max_request || rq->bytes > p->max_request - len) {
        p->too_large = 1;
        return NULL;
    }
    copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, str, len);
    copy[len] = '\0';
    rq->argv[rq->argc] = copy;
    rq->len[rq->argc] = len;
    rq->argc++;
    rq->bytes += len;
    return rq;
}

static void *
obj_integer(const redisReadTask *task, long long v)
{
    (void)task;
    (void)v;
    return NULL;
}

static void *
obj_nil(const redisReadTask *task)
{
    (void)task;
    return NULL;
}

#if HIREDIS_MAJOR >= 1
/* RESP3 values (hiredis >= 1.0): never part of a client's request. */
static void *
obj_double(const redisReadTask *task, double v, char *str, size_t len)
{
    (void)task;
    (void)v;
    (void)str;
    (void)len;
    return NULL;
}

static void *
obj_bool(const redisReadTask *task, int v)
{
    (void)task;
    (void)v;
    return NULL;
}
#endif

/* The reader only ever frees its root object, which is a request. */
static void
obj_free(void *obj)
{
    tpd_request_free(obj);
}

#if HIREDIS_MAJOR >= 1
static redisReplyObjectFunctions request_fns = {
    obj_string, obj_array, obj_integer, obj_double, obj_nil, obj_bool,
    obj_free
};
#else
static redisReplyObjectFunctions request_fns = {
    obj_string, obj_array, obj_integer, obj_nil, obj_free
};
#endif

/* ------------------------------------------------------------------ */
/* Parser                                                              */
/* ------------------------------------------------------------------ */

void
tpd_request_free(tpd_request *rq)
{
    int i;

    if (rq == NULL)
        return;
    for (i = 0; i < rq->argc; i++)
        free(rq->argv[i]);
    free(rq);
}

tpd_parser *
tpd_parser_new(size_t max_request)
{
    tpd_parser *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->rd = redisReaderCreateWithFunctions(&request_fns);
    if (p->rd == NULL) {
        free(p);
        return NULL;
    }
    p->rd->privdata = p;
    p->max_request = max_request;
    return p;
}

void
tpd_parser_free(tpd_parser *p)
{
    if (p == NULL)
        return;
    redisReaderFree(p->rd);
    free(p);
}

int
tpd_parser_feed(tpd_parser *p, const char *buf, size_t n)
{
    if (p->too_large)
        return 0; /* refused already: ignored, never buffered */
    if (p->rd->err != 0)
        return -1;
    return redisReaderFeed(p->rd, buf, n) == REDIS_OK ? 0 : -1;
}

int
tpd_parser_next(tpd_parser *p, tpd_request **out)
{
    void *obj = NULL;
    tpd_request *rq;

    *out = NULL;
    for (;;) {
        if (p->too_large)
            return TPD_PARSE_TOO_LARGE;
        if (redisReaderGetReply(p->rd, &obj) != REDIS_OK)
            return p->too_large ? TPD_PARSE_TOO_LARGE : TPD_PARSE_ERROR;
        if (obj == NULL)
            break;
        rq = obj;
        if (rq->argc == 0) {
            /* "*0\r\n": Redis ignores an empty command; so do we. */
            tpd_request_free(rq);
            continue;
        }
        *out = rq;
        return TPD_PARSE_REQUEST;
    }
    /* Nothing complete: bound what waits for the rest. */
    if (p->rd->len - p->rd->pos > p->max_request) {
        p->too_large = 1;
        return TPD_PARSE_TOO_LARGE;
    }
    return TPD_PARSE_MORE;
}

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

int
tpd_buf_append(tpd_buf *b, const void *p, size_t n)
{
    size_t cap;
    char *nd;

    if (n == 0)
        return 0;
    if (n > SIZE_MAX / 4 || b->len > SIZE_MAX / 4)
        return -1;
    if (b->len + n > b->cap) {
        cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        nd = realloc(b->data, cap);
        if (nd == NULL)
            return -1;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
tpd_buf_printf(tpd_buf *b, const char *fmt, ...)
{
    char small[512], *big = NULL;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return tpd_buf_append(b, small, (size_t)n);
    big = malloc((size_t)n + 1);
    if (big == NULL)
        return -1;
    va_start(ap, fmt);
    rc = vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rc = rc == n ? tpd_buf_append(b, big, (size_t)n) : -1;
    free(big);
    return rc;
}

void
tpd_buf_consume(tpd_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
    } else if (b->off >= 65536 && b->off >= b->len / 2) {
        /* Reclaim what was sent; appends never move data themselves. */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
}

size_t
tpd_buf_pending(const tpd_buf *b)
{
    return b->len - b->off;
}

void
tpd_buf_free(tpd_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* A status or error line must not contain CR or LF. */
static int
line_reply(tpd_buf *b, char type, const char *s)
{
    size_t n = strcspn(s, "\r\n");
    size_t start = b->len;

    if (tpd_buf_append(b, &type, 1) != 0)
        return -1;
    if (tpd_buf_append(b, s, n) != 0 || tpd_buf_append(b, "\r\n", 2) != 0) {
        b->len = start;
        return -1;
    }
    return 0;
}

int
tpd_reply_status(tpd_buf *b, const char *s)
{
    return line_reply(b, '+', s);
}

int
tpd_reply_error(tpd_buf *b, const char *s)
{
    return line_reply(b, '-', s);
}

int
tpd_reply_int(tpd_buf *b, long long v)
{
    char s[4] = {':', '0', '\r', '\n'};

    /* 0 and 1 answer every PUBLISH and DEL coturn sends: no printf. */
    if (v == 0 || v == 1) {
        s[1] = (char)('0' + v);
        return tpd_buf_append(b, s, sizeof(s));
    }
    return tpd_buf_printf(b, ":%lld\r\n", v);
}

int
tpd_reply_bulk(tpd_buf *b, const char *p, size_t n)
{
    size_t start = b->len;

    if (tpd_buf_printf(b, "$%zu\r\n", n) != 0)
        return -1;
    if (tpd_buf_append(b, p, n) != 0 || tpd_buf_append(b, "\r\n", 2) != 0) {
        b->len = start;
        return -1;
    }
    return 0;
}

int
tpd_reply_cstr(tpd_buf *b, const char *s)
{
    return tpd_reply_bulk(b, s, strlen(s));
}

int
tpd_reply_nil(tpd_buf *b)
{
    return tpd_buf_append(b, "$-1\r\n", 5);
}

int
tpd_reply_array(tpd_buf *b, size_t n)
{
    return tpd_buf_printf(b, "*%zu\r\n", n);
}
