/*
 * fuzz_resp.c - libFuzzer target for what turnpolicyd does with the bytes
 * of one client connection: the request parser (resp.c), the command
 * dispatcher (commands.c) and the statsdb report parser (sessions.c).
 *
 * Why: the Redis port is the daemon's only input from the network; a
 * malformed, oversized or pipelined stream must never crash it, leak, or
 * make it answer with something that is not a Redis reply.
 *
 * What one input is:
 *   byte 0   flags: bit 0 = the connection starts unauthenticated (so
 *            AUTH, NOAUTH and the failure limit are reached; the password
 *            is PASSWORD below); bit 1 = max_request 64 instead of
 *            65536 (the bounds); bit 2 = a session table of 2 (full);
 *            bit 3 = log level debug (every command is formatted and
 *            escaped for the log, dropped here) instead of info.
 *   byte 1   how the stream is split into tpd_parser_feed calls: 0 = one
 *            feed; otherwise the low 3 bits give the largest chunk
 *            (2^k bytes) and the byte seeds the chunk lengths.
 *   rest     the byte stream, as a socket would deliver it.
 * The seed corpus (tests/fuzz/corpus_resp, written by make_corpus.py) is
 * what stock coturn 4.6.1 sends, with these two bytes in front.
 *
 * The dispatcher runs without a policy store (d->store == NULL: every
 * tp_store_* call answers TP_EINVAL, no database, no I/O) and without the
 * allocation worker (d->allocq == NULL: pushes are no-ops).  Every
 * request without a NUL byte that has three arguments, other than SET and
 * PUBLISH (which reach it through the dispatcher), is also given to
 * tpd_stats_event directly as key/value, so the report parser is reached
 * whatever the command name.
 *
 * Checked, beyond ASan/UBSan/LSan: each request has 1..TPD_MAX_ARGS
 * NUL-terminated arguments within max_request; each command appends
 * exactly one well-formed RESP reply (parsed back with hiredis's own
 * reader); after a parse error the parser keeps returning that error,
 * whatever is fed after it.
 *
 * Linked with every coturn-plugin .c file, turnpolicyd.c compiled with
 * -Dmain=turnpolicyd_main (its real tpd_escape and tpd_log_enabled are
 * used), and tpd_log replaced through -Wl,--wrap=tpd_log by a version
 * that formats the message (so ASan checks every argument) and drops it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "turnpolicyd.h"

#define PASSWORD "fuzz-password"
#define NOW 1700000000
/* At most this many tpd_parser_feed calls per input (each one drains):
 * split points stay arbitrary, but a 60 KB input is not fed byte by
 * byte (which made the average input cost hundreds of calls). */
#define MAX_FEEDS 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_tpd_log(tp_log_level level, const char *fmt, ...)
    TPD_PRINTF(2, 3);

static unsigned char pw_digest[32];

/* The session tables (64 and 2 entries), made once: a table is 160 KiB
 * of buckets, and allocating, walking and freeing it on every input cost
 * two thirds of the time (1,600 execs/s).  Each input starts with empty
 * tables: after it, every session is swept; a table that keeps one (a
 * lifetime beyond the sweep's clock) is replaced. */
static tpd_sessions *tables[2];

static tpd_sessions *
table(int small)
{
    if (tables[small] == NULL) {
        tables[small] = tpd_sessions_new(small ? 2 : 64);
        if (tables[small] == NULL)
            abort();
    }
    return tables[small];
}

void
__wrap_tpd_log(tp_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    (void)level;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned int n = 0;

    (void)argc;
    (void)argv;
    if (EVP_Digest(PASSWORD, strlen(PASSWORD), pw_digest, &n, EVP_sha256(),
                   NULL) != 1 || n != sizeof(pw_digest))
        abort();
    return 0;
}

/* tpd_log_init looks at the environment and stderr: only on a change. */
static void
set_log_level(tp_log_level level)
{
    static int current = -1;

    if ((int)level != current) {
        tpd_log_init(level);
        current = (int)level;
    }
}

/* The one reply a command appended to out[from..): parse it back. */
static redisReader *rd; /* made once; empty between replies */

static void
check_reply(const tpd_buf *out, size_t from)
{
    void *reply = NULL, *extra = NULL;

    if (rd == NULL && (rd = redisReaderCreate()) == NULL)
        abort();
    if (out->len == from)
        abort(); /* no reply at all */
    if (redisReaderFeed(rd, out->data + from, out->len - from) != REDIS_OK ||
        redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
        abort(); /* malformed or incomplete */
    if (redisReaderGetReply(rd, &extra) != REDIS_OK || extra != NULL ||
        rd->pos != rd->len)
        abort(); /* more than one reply */
    freeReplyObject(reply);
}

static void
check_request(const tpd_request *rq, size_t max_request)
{
    int i;

    if (rq->argc < 1 || rq->argc > TPD_MAX_ARGS || rq->bytes > max_request)
        abort();
    for (i = 0; i < rq->argc; i++)
        if (rq->argv[i] == NULL || rq->argv[i][rq->len[i]] != '\0')
            abort();
}

static int
has_nul(const tpd_request *rq)
{
    int i;

    for (i = 0; i < rq->argc; i++)
        if (memchr(rq->argv[i], '\0', rq->len[i]) != NULL)
            return 1;
    return 0;
}

/* Drain complete requests.  Returns 0 to go on, 1 when the connection
 * would be closed. */
static int
drain(tpd *d, tpd_client *c, tpd_parser *p, size_t max_request)
{
    tpd_request *rq;
    tpd_buf out;
    size_t from;
    int rc, again;

    memset(&out, 0, sizeof(out));
    for (;;) {
        rc = tpd_parser_next(p, &rq);
        if (rc == TPD_PARSE_MORE)
            break;
        if (rc != TPD_PARSE_REQUEST) {
            /* Sticky: the same error again, even after more bytes (the
             * feed itself may accept or refuse them). */
            (void)tpd_parser_feed(p, "*1\r\n$4\r\nPING\r\n", 14);
            again = tpd_parser_next(p, &rq);
            if (again != rc || rq != NULL)
                abort();
            tpd_buf_free(&out);
            return 1;
        }
        check_request(rq, max_request);
        if (rq->argc == 3 && !has_nul(rq) &&
            strcasecmp(rq->argv[0], "SET") != 0 &&
            strcasecmp(rq->argv[0], "PUBLISH") != 0)
            (void)tpd_stats_event(d, rq->argv[1], rq->len[1], rq->argv[2],
                                  rq->len[2], NOW);
        from = out.len;
        if (tpd_command(d, c, rq, &out) != 0) {
            tpd_request_free(rq);
            tpd_buf_free(&out);
            return 1; /* out of memory: the daemon closes */
        }
        check_reply(&out, from);
        tpd_request_free(rq);
        if (c->close_after_reply) {
            tpd_buf_free(&out);
            return 1;
        }
        /* What the loop does once a reply is written to the socket. */
        tpd_buf_consume(&out, tpd_buf_pending(&out));
    }
    tpd_buf_free(&out);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max_request, off, n, maxchunk, minchunk;
    tpd_client client;
    tpd_parser *p;
    uint32_t lcg;
    uint8_t flags, split;
    tpd *d;

    if (size < 2)
        return 0;
    flags = data[0];
    split = data[1];
    data += 2;
    size -= 2;
    max_request = (flags & 2) ? 64 : 65536;
    set_log_level((flags & 8) ? TP_LOG_DEBUG : TP_LOG_INFO);

    d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    snprintf(d->node, sizeof(d->node), "fuzz");
    memcpy(d->pw_digest, pw_digest, sizeof(pw_digest));
    d->alloc_slack = 60;
    d->started = NOW;
    d->sessions = table((flags & 4) != 0);
    p = tpd_parser_new(max_request);
    if (p == NULL)
        abort();
    memset(&client, 0, sizeof(client));
    client.authed = !(flags & 1);

    maxchunk = (size_t)1 << (split & 7);
    minchunk = size / MAX_FEEDS;
    lcg = split;
    for (off = 0; off < size; off += n) {
        if (split == 0) {
            n = size;
        } else {
            lcg = lcg * 1103515245u + 12345u;
            n = minchunk + 1 + (lcg >> 16) % maxchunk;
            if (n > size - off)
                n = size - off;
        }
        if (tpd_parser_feed(p, (const char *)data + off, n) != 0)
            break;
        if (drain(d, &client, p, max_request) != 0)
            break;
    }

    /* Finish every session: usage records (refused without a store),
     * releases (dropped without a worker). */
    tpd_sessions_sweep(d, INT64_C(4102444800), 1); /* 2100 */
    if (tpd_sessions_live(d->sessions) != 0) {
        tpd_sessions_free(d->sessions);
        tables[(flags & 4) != 0] = NULL;
    }
    tpd_parser_free(p);
    tpd_cache_free(d->cache);
    free(d);
    return 0;
}
