/*
 * test_resp.c - turnpolicyd's Redis protocol layer (coturn-plugin/resp.c):
 * the request parser built on hiredis's redisReader, the byte buffers and
 * the reply encoders.
 *
 * The parser is fed as a socket would deliver bytes: whole, byte by byte,
 * pipelined, and hostile (every shape that is not an array of bulk
 * strings, counts past TPD_MAX_ARGS or near 2^31, lengths past
 * max_request, NUL bytes inside arguments).  Each TPD_PARSE_* outcome is
 * reached, and an error is checked to stay latched whatever comes after
 * it.  Replies are compared byte for byte and parsed back with hiredis's
 * own reader.
 */
#include "tpd_test.h"

#include <limits.h>

#include <hiredis/hiredis.h>

#define PING "*1\r\n$4\r\nPING\r\n"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static tpd_parser *
parser(size_t max_request)
{
    tpd_parser *p = tpd_parser_new(max_request);

    assert_non_null(p);
    return p;
}

static void
feed(tpd_parser *p, const char *s, size_t n)
{
    assert_int_equal(tpd_parser_feed(p, s, n), 0);
}

#define FEED(p, lit) feed((p), (lit), sizeof(lit) - 1)

/* The next outcome must be want (and *out NULL unless a request). */
static void
expect_next(tpd_parser *p, int want)
{
    tpd_request *rq = (tpd_request *)&rq; /* not NULL: must be reset */
    int got = tpd_parser_next(p, &rq);

    if (got != want) {
        print_error("tpd_parser_next: got %d, want %d\n", got, want);
        fail();
    }
    if (want == TPD_PARSE_REQUEST) {
        assert_non_null(rq);
        tpd_request_free(rq);
    } else {
        assert_null(rq);
    }
}

/* The next request must have argc arguments equal to args[] (lens[] bytes
 * each, NULs allowed); each NUL-terminated; bytes their sum. */
static void
expect_request(tpd_parser *p, int argc, const char *const *args,
               const size_t *lens)
{
    tpd_request *rq = NULL;
    size_t bytes = 0;
    int i;

    assert_int_equal(tpd_parser_next(p, &rq), TPD_PARSE_REQUEST);
    assert_non_null(rq);
    assert_int_equal(rq->argc, argc);
    assert_int_equal(rq->expected, argc);
    for (i = 0; i < argc; i++) {
        size_t n = lens != NULL ? lens[i] : strlen(args[i]);

        assert_int_equal(rq->len[i], n);
        assert_memory_equal(rq->argv[i], args[i], n);
        assert_int_equal(rq->argv[i][n], '\0');
        bytes += n;
    }
    assert_int_equal(rq->bytes, bytes);
    tpd_request_free(rq);
}

static void
expect_ping(tpd_parser *p)
{
    static const char *const a[] = {"PING"};

    expect_request(p, 1, a, NULL);
}

/* Whatever is fed after an error, the parser answers that error again
 * (the feed itself is refused once hiredis's reader latched it). */
static void
expect_latched(tpd_parser *p, int err)
{
    (void)tpd_parser_feed(p, PING, sizeof(PING) - 1);
    expect_next(p, err);
    expect_next(p, err);
}

/* The parser, fed s whole, must answer err for its first request. */
static void
expect_error(size_t max_request, const char *s, size_t n, int err)
{
    tpd_parser *p = parser(max_request);
    tpd_request *rq = NULL;
    char shown[200];
    int got;

    feed(p, s, n);
    got = tpd_parser_next(p, &rq);
    if (got != err || rq != NULL) {
        print_error("\"%s\": got %d, want %d\n",
                    tpd_escape(s, n, shown, sizeof(shown)), got, err);
        tpd_request_free(rq);
        fail();
    }
    expect_latched(p, err);
    tpd_parser_free(p);
}

#define BAD(lit) expect_error(65536, (lit), sizeof(lit) - 1, TPD_PARSE_ERROR)

static size_t build(char *out, size_t cap, int argc, const size_t *lens);

/* ------------------------------------------------------------------ */
/* well-formed requests                                                */
/* ------------------------------------------------------------------ */

static void
test_complete(void **state)
{
    static const char *const a[] = {"GET", "turn/realm/r/user/u/key"};
    tpd_parser *p = parser(65536);

    expect_next(p, TPD_PARSE_MORE); /* nothing fed yet */
    FEED(p, "*2\r\n$3\r\nGET\r\n$23\r\nturn/realm/r/user/u/key\r\n");
    expect_request(p, 2, a, NULL);
    expect_next(p, TPD_PARSE_MORE);
    expect_next(p, TPD_PARSE_MORE);
    /* the parser goes on with the next request */
    FEED(p, PING);
    expect_ping(p);
    expect_next(p, TPD_PARSE_MORE);
    tpd_parser_free(p);
}

static void
test_partial(void **state)
{
    static const char req[] = "*3\r\n$7\r\nPUBLISH\r\n$5\r\nchan1\r\n"
                              "$11\r\nhello world\r\n";
    static const char *const a[] = {"PUBLISH", "chan1", "hello world"};
    tpd_parser *p = parser(65536);
    size_t i;

    /* one byte at a time: nothing until the very last one */
    for (i = 0; i + 1 < sizeof(req) - 1; i++) {
        feed(p, req + i, 1);
        expect_next(p, TPD_PARSE_MORE);
    }
    feed(p, req + i, 1);
    expect_request(p, 3, a, NULL);
    expect_next(p, TPD_PARSE_MORE);

    /* split inside a length line and inside CRLF */
    FEED(p, "*2\r\n$3\r\nGET\r\n$1");
    expect_next(p, TPD_PARSE_MORE);
    FEED(p, "2\r\nhello world!\r");
    expect_next(p, TPD_PARSE_MORE);
    FEED(p, "\n");
    {
        static const char *const b[] = {"GET", "hello world!"};

        expect_request(p, 2, b, NULL);
    }
    tpd_parser_free(p);
}

static void
test_pipelined(void **state)
{
    static const char *const sel[] = {"SELECT", "0"};
    static const char *const get[] = {"GET", "k"};
    tpd_parser *p = parser(65536);
    int i;

    /* what coturn's async statsdb connection sends in one write */
    FEED(p, "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n" PING
            "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n");
    expect_request(p, 2, sel, NULL);
    expect_ping(p);
    expect_request(p, 2, get, NULL);
    expect_next(p, TPD_PARSE_MORE); /* the fourth is incomplete */
    FEED(p, "$1\r\nk\r\n");
    expect_request(p, 2, get, NULL);
    expect_next(p, TPD_PARSE_MORE);

    /* a long pipeline: every request comes out, in order */
    for (i = 0; i < 1000; i++)
        FEED(p, PING);
    for (i = 0; i < 1000; i++)
        expect_ping(p);
    expect_next(p, TPD_PARSE_MORE);
    tpd_parser_free(p);
}

/* "*0": an empty command, skipped as Redis does. */
static void
test_empty_array(void **state)
{
    tpd_parser *p = parser(65536);

    FEED(p, "*0\r\n");
    expect_next(p, TPD_PARSE_MORE);
    FEED(p, "*0\r\n*0\r\n" PING "*0\r\n");
    expect_ping(p);
    expect_next(p, TPD_PARSE_MORE);
    tpd_parser_free(p);
}

/* Arguments are binary: NULs, CR and LF inside come through whole. */
static void
test_binary_arguments(void **state)
{
    static const char *const a[] = {"GET", "a\0b\r\nc\0", ""};
    static const size_t l[] = {3, 7, 0};
    tpd_parser *p = parser(65536);

    FEED(p, "*3\r\n$3\r\nGET\r\n$7\r\na\0b\r\nc\0\r\n$0\r\n\r\n");
    expect_request(p, 3, a, l);
    tpd_parser_free(p);
}

static void
test_max_args(void **state)
{
    const char *args[TPD_MAX_ARGS];
    char req[512];
    tpd_parser *p;
    size_t n;
    int i;

    /* exactly TPD_MAX_ARGS: accepted */
    n = (size_t)snprintf(req, sizeof(req), "*%d\r\n", TPD_MAX_ARGS);
    for (i = 0; i < TPD_MAX_ARGS; i++) {
        n += (size_t)snprintf(req + n, sizeof(req) - n, "$1\r\n%c\r\n",
                              'a' + i);
        args[i] = &"abcdefghijklmnop"[i];
    }
    p = parser(65536);
    feed(p, req, n);
    {
        tpd_request *rq = NULL;

        assert_int_equal(tpd_parser_next(p, &rq), TPD_PARSE_REQUEST);
        assert_int_equal(rq->argc, TPD_MAX_ARGS);
        for (i = 0; i < TPD_MAX_ARGS; i++) {
            assert_int_equal(rq->len[i], 1);
            assert_int_equal(rq->argv[i][0], args[i][0]);
        }
        tpd_request_free(rq);
    }
    tpd_parser_free(p);

    /* one more: refused as soon as the count is read, before any
     * argument arrives */
    n = (size_t)snprintf(req, sizeof(req), "*%d\r\n", TPD_MAX_ARGS + 1);
    expect_error(65536, req, n, TPD_PARSE_ERROR);
}

/* ------------------------------------------------------------------ */
/* what is not a request                                               */
/* ------------------------------------------------------------------ */

static void
test_not_requests(void **state)
{
    /* inline commands: coturn never sends them; not supported */
    BAD("PING\r\n");
    BAD("GET turn/realm/r/user/u/key\r\n");
    /* other top-level RESP types */
    BAD("+OK\r\n");
    BAD("-ERR x\r\n");
    BAD(":1\r\n");
    BAD("$4\r\nPING\r\n");
    BAD("$-1\r\n");
    BAD("*-1\r\n");
    /* other element types */
    BAD("*1\r\n:1\r\n");
    BAD("*1\r\n+PING\r\n");
    BAD("*1\r\n-PING\r\n");
    BAD("*1\r\n$-1\r\n");
    BAD("*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nk\r\n"); /* nested array */
    BAD("*1\r\n*0\r\n");
    /* malformed lengths and types */
    BAD("*x\r\n");
    BAD("*1\r\n$x\r\n");
    BAD("*1\r\n?4\r\nPING\r\n");
    BAD("\0\0\0\0");
    BAD("\r\n");
}

/* hiredis 0.14.1 skips the two bytes after a bulk string without checking
 * that they are CRLF: a bulk string longer than announced is cut, and the
 * stream, out of step, fails at the next item. */
static void
test_bulk_overrun(void **state)
{
    static const char *const a[] = {"PI"};
    tpd_parser *p = parser(65536);

    FEED(p, "*1\r\n$2\r\nPING\r\n");
    expect_request(p, 1, a, NULL);
    expect_next(p, TPD_PARSE_ERROR);
    expect_latched(p, TPD_PARSE_ERROR);
    tpd_parser_free(p);
}

/* The error of one request stays: a good request after it in the same
 * buffer, or fed later, is never handed out. */
static void
test_error_latched(void **state)
{
    tpd_parser *p = parser(65536);

    FEED(p, PING ":1\r\n" PING);
    expect_ping(p); /* before the bad one: served */
    expect_next(p, TPD_PARSE_ERROR);
    expect_next(p, TPD_PARSE_ERROR); /* the PING after it: never */
    /* the reader latched it: more bytes are refused */
    assert_int_equal(tpd_parser_feed(p, PING, sizeof(PING) - 1), -1);
    expect_next(p, TPD_PARSE_ERROR);
    tpd_parser_free(p);

    /* an error in the middle of a request being assembled: its first
     * arguments (held by the reader) are freed (LSan) */
    p = parser(65536);
    FEED(p, "*3\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    expect_next(p, TPD_PARSE_MORE);
    FEED(p, ":7\r\n");
    expect_next(p, TPD_PARSE_ERROR);
    expect_latched(p, TPD_PARSE_ERROR);
    tpd_parser_free(p);
}

/* A bulk string announced huge: MORE while what waits is small, then
 * TOO_LARGE once it passes max_request (64). */
static void
huge_bulk(const char *head)
{
    tpd_parser *p = parser(64);
    char junk[128];

    feed(p, head, strlen(head));
    expect_next(p, TPD_PARSE_MORE);
    memset(junk, 'x', sizeof(junk));
    feed(p, junk, sizeof(junk));
    expect_next(p, TPD_PARSE_TOO_LARGE);
    expect_latched(p, TPD_PARSE_TOO_LARGE);
    tpd_parser_free(p);
}

/* turnpolicyd.h: "After TPD_PARSE_TOO_LARGE bytes are still accepted and
 * ignored": whichever bound was passed, feeding more succeeds, buffers
 * nothing, and the error stays. */
static void
test_too_large_feed(void **state)
{
    static const size_t l[] = {65};
    char req[256], junk[4096];
    tpd_parser *p;
    size_t n;
    int i;

    memset(junk, 'x', sizeof(junk));
    /* an argument over the bound (refused inside hiredis's reader) */
    p = parser(64);
    n = build(req, sizeof(req), 1, l);
    feed(p, req, n);
    expect_next(p, TPD_PARSE_TOO_LARGE);
    for (i = 0; i < 100; i++)
        feed(p, junk, sizeof(junk));
    feed(p, PING, sizeof(PING) - 1);
    expect_next(p, TPD_PARSE_TOO_LARGE);
    tpd_parser_free(p);

    /* what waits for the rest over the bound (refused by the parser) */
    p = parser(64);
    FEED(p, "*1\r\n$1000\r\n");
    feed(p, junk, 100);
    expect_next(p, TPD_PARSE_TOO_LARGE);
    for (i = 0; i < 100; i++)
        feed(p, junk, sizeof(junk));
    feed(p, PING, sizeof(PING) - 1);
    expect_next(p, TPD_PARSE_TOO_LARGE);
    tpd_parser_free(p);
}

/* Counts near 2^31 and past it never allocate or wait for the bytes. */
static void
test_huge_counts(void **state)
{
    BAD("*2000000000\r\n");
    BAD("*2147483647\r\n");
    BAD("*2147483648\r\n");
    BAD("*99999999999999999999999\r\n");
    BAD("*-2\r\n");
    BAD("*1\r\n$-2\r\n");

    /* bulk lengths of 2 GB and more: refused once what waits for them
     * passes max_request, not after they arrived */
    huge_bulk("*1\r\n$2000000000\r\n");
    huge_bulk("*1\r\n$4294967296\r\n");
    huge_bulk("*1\r\n$9223372036854775807\r\n");
    /* past what a long long holds: hiredis refuses the length itself */
    BAD("*1\r\n$99999999999999999999999\r\n");
}

/* ------------------------------------------------------------------ */
/* max_request                                                         */
/* ------------------------------------------------------------------ */

/* A request of argc arguments of lens[i] bytes of 'x'. */
static size_t
build(char *out, size_t cap, int argc, const size_t *lens)
{
    size_t n;
    int i;

    n = (size_t)snprintf(out, cap, "*%d\r\n", argc);
    for (i = 0; i < argc; i++) {
        n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n", lens[i]);
        assert_true(n + lens[i] + 2 < cap);
        memset(out + n, 'x', lens[i]);
        n += lens[i];
        memcpy(out + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

static void
test_max_request(void **state)
{
    char req[1024];
    tpd_parser *p;
    size_t n;

    /* arguments summing exactly max_request: accepted */
    {
        static const size_t l[] = {3, 60, 1};
        tpd_request *rq = NULL;

        p = parser(64);
        n = build(req, sizeof(req), 3, l);
        feed(p, req, n);
        assert_int_equal(tpd_parser_next(p, &rq), TPD_PARSE_REQUEST);
        assert_int_equal(rq->bytes, 64);
        tpd_request_free(rq);
        expect_next(p, TPD_PARSE_MORE);
        tpd_parser_free(p);
    }
    /* one byte more, spread over arguments each under the bound */
    {
        static const size_t l[] = {3, 60, 2};

        n = build(req, sizeof(req), 3, l);
        expect_error(64, req, n, TPD_PARSE_TOO_LARGE);
    }
    /* one argument alone over the bound */
    {
        static const size_t l[] = {65};

        n = build(req, sizeof(req), 1, l);
        expect_error(64, req, n, TPD_PARSE_TOO_LARGE);
    }
    /* the bound is per request, not per connection: many requests of
     * max_request bytes each, pipelined, all accepted */
    {
        static const size_t l[] = {32, 32};
        int i;

        p = parser(64);
        n = build(req, sizeof(req), 2, l);
        for (i = 0; i < 50; i++)
            feed(p, req, n);
        for (i = 0; i < 50; i++)
            expect_next(p, TPD_PARSE_REQUEST);
        expect_next(p, TPD_PARSE_MORE);
        tpd_parser_free(p);
    }
}

/* What waits for the rest of a request is bounded too: a peer that
 * announces a small request and never ends it cannot make the parser
 * buffer more than about max_request. */
static void
test_buffered_bound(void **state)
{
    tpd_parser *p = parser(64);
    size_t fed;
    int rc = TPD_PARSE_MORE;

    FEED(p, "*1\r\n$1000\r\n");
    fed = 4 + 7;
    while (rc == TPD_PARSE_MORE && fed < 1000) {
        feed(p, "y", 1);
        fed++;
        rc = tpd_parser_next(p, &(tpd_request *){NULL});
    }
    assert_int_equal(rc, TPD_PARSE_TOO_LARGE);
    /* refused as soon as what hiredis has not consumed (the bytes after
     * "*1\r\n$") passes 64 */
    assert_true(fed > 64);
    assert_true(fed <= 64 + 5 + 1);
    expect_latched(p, TPD_PARSE_TOO_LARGE);
    tpd_parser_free(p);

    /* a count line that never ends: the same bound */
    p = parser(64);
    FEED(p, "*");
    for (fed = 1, rc = TPD_PARSE_MORE; rc == TPD_PARSE_MORE && fed < 1000;
         fed++) {
        feed(p, "1", 1);
        rc = tpd_parser_next(p, &(tpd_request *){NULL});
    }
    assert_int_equal(rc, TPD_PARSE_TOO_LARGE);
    assert_true(fed > 64);
    assert_true(fed <= 64 + 2);
    tpd_parser_free(p);
}

/* Freeing a parser in the middle of a request frees what it holds. */
static void
test_free_partial(void **state)
{
    tpd_parser *p = parser(65536);

    FEED(p, "*4\r\n$3\r\nSET\r\n$5\r\nhello\r\n$2\r\nwo");
    expect_next(p, TPD_PARSE_MORE);
    tpd_parser_free(p); /* LSan: the partial request is freed */
    tpd_parser_free(NULL);
    tpd_request_free(NULL);
}

/* ------------------------------------------------------------------ */
/* buffers and replies                                                 */
/* ------------------------------------------------------------------ */

/* b's pending bytes are exactly s (n bytes), and hiredis reads them as
 * exactly one reply; the reply is returned (freeReplyObject). */
static redisReply *
expect_reply(const tpd_buf *b, const char *s, size_t n)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL, *extra = NULL;

    assert_non_null(rd);
    assert_int_equal(tpd_buf_pending(b), n);
    assert_memory_equal(b->data + b->off, s, n);
    assert_int_equal(redisReaderFeed(rd, b->data + b->off, n), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    assert_int_equal(redisReaderGetReply(rd, &extra), REDIS_OK);
    assert_null(extra);
    redisReaderFree(rd);
    return reply;
}

#define EXPECT_REPLY(b, lit) expect_reply((b), (lit), sizeof(lit) - 1)

static void
test_replies(void **state)
{
    tpd_buf b;
    redisReply *r;
    char big[2000];

    memset(&b, 0, sizeof(b));
    assert_int_equal(tpd_reply_status(&b, "OK"), 0);
    r = EXPECT_REPLY(&b, "+OK\r\n");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));

    /* a status or error line never carries a CR or LF: cut there */
    assert_int_equal(tpd_reply_error(&b, "ERR one\r\n+OK"), 0);
    r = EXPECT_REPLY(&b, "-ERR one\r\n");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_status(&b, "a\nb"), 0);
    freeReplyObject(EXPECT_REPLY(&b, "+a\r\n"));
    tpd_buf_consume(&b, tpd_buf_pending(&b));

    assert_int_equal(tpd_reply_int(&b, 0), 0);
    freeReplyObject(EXPECT_REPLY(&b, ":0\r\n"));
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_int(&b, 1), 0);
    freeReplyObject(EXPECT_REPLY(&b, ":1\r\n"));
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_int(&b, -7), 0);
    freeReplyObject(EXPECT_REPLY(&b, ":-7\r\n"));
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_int(&b, LLONG_MIN), 0);
    r = EXPECT_REPLY(&b, ":-9223372036854775808\r\n");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer == LLONG_MIN);
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));

    /* bulk strings are binary */
    assert_int_equal(tpd_reply_bulk(&b, "a\0\r\nb", 5), 0);
    r = EXPECT_REPLY(&b, "$5\r\na\0\r\nb\r\n");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 5);
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_cstr(&b, ""), 0);
    freeReplyObject(EXPECT_REPLY(&b, "$0\r\n\r\n"));
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_reply_nil(&b), 0);
    r = EXPECT_REPLY(&b, "$-1\r\n");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));

    /* an array header followed by its elements */
    assert_int_equal(tpd_reply_array(&b, 2), 0);
    assert_int_equal(tpd_reply_cstr(&b, "x"), 0);
    assert_int_equal(tpd_reply_nil(&b), 0);
    r = EXPECT_REPLY(&b, "*2\r\n$1\r\nx\r\n$-1\r\n");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
    tpd_buf_consume(&b, tpd_buf_pending(&b));

    /* tpd_buf_printf past its 512-byte stack buffer */
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tpd_buf_printf(&b, "<%s>", big), 0);
    assert_int_equal(tpd_buf_pending(&b), sizeof(big) + 1);
    assert_int_equal(b.data[b.off], '<');
    assert_int_equal(b.data[b.off + sizeof(big)], '>');
    assert_int_equal(b.data[b.off + 1000], 'z');
    tpd_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* What was sent is consumed; a buffer whose front was sent moves its
 * rest down once the sent part is large, and nothing is lost. */
static void
test_buf_consume(void **state)
{
    tpd_buf b;
    size_t i, total = 0, sent = 0;
    char chunk[1000];

    memset(&b, 0, sizeof(b));
    assert_int_equal(tpd_buf_append(&b, "", 0), 0);
    assert_null(b.data);
    for (i = 0; i < 200; i++) {
        memset(chunk, (int)('a' + i % 26), sizeof(chunk));
        assert_int_equal(tpd_buf_append(&b, chunk, sizeof(chunk)), 0);
        total += sizeof(chunk);
        /* send 700 bytes of each 1000 appended */
        tpd_buf_consume(&b, 700);
        sent += 700;
        assert_int_equal(tpd_buf_pending(&b), total - sent);
        /* the next byte to send is the one after what was sent */
        assert_int_equal(b.data[b.off], (char)('a' + (sent / 1000) % 26));
    }
    /* compaction happened: the buffer did not grow to 200 kB */
    assert_true(b.cap < total);
    tpd_buf_consume(&b, tpd_buf_pending(&b));
    assert_int_equal(tpd_buf_pending(&b), 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    tpd_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_empty_array),
        cmocka_unit_test(test_binary_arguments),
        cmocka_unit_test(test_max_args),
        cmocka_unit_test(test_not_requests),
        cmocka_unit_test(test_bulk_overrun),
        cmocka_unit_test(test_error_latched),
        cmocka_unit_test(test_too_large_feed),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_max_request),
        cmocka_unit_test(test_buffered_bound),
        cmocka_unit_test(test_free_partial),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_buf_consume),
    };

    return cmocka_run_group_tests_name("resp", tests, NULL, NULL);
}
