/*
 * turnpolicyd_alloc.c - TURN allocations per second against one coturn,
 * for tests/bench/turnpolicyd.sh: the same client, settings and
 * credential shape against coturn + turnpolicyd and against coturn with
 * static-auth-secret.
 *
 * Each of CONC slots loops, over UDP from a fresh socket (a fresh
 * 5-tuple, so a fresh allocation each time):
 *   Allocate (no credentials)    -> 401 with REALM and NONCE
 *   Allocate (long-term creds)   -> success: one allocation counted;
 *                                   this is where coturn looks the key
 *                                   up (turnpolicyd) or derives it
 *                                   (static-auth-secret)
 *   Refresh LIFETIME=0           -> success: the allocation is gone
 * and starts over with the next credential.  Sources cycle through
 * 127.0.1.1-200 x ports 20000-59999 so that no 5-tuple comes back within
 * a run or in the next few runs (coturn remembers a 5-tuple for a while
 * after its allocation is gone: a reuse is 437 Allocation Mismatch).  A 438 (stale nonce) is
 * retried with the new nonce; any other error or a response missing for
 * TIMEOUT_MS counts as a failure and the slot starts over.  Nothing but
 * the server address is contacted: no permission, no peer, no data.
 *
 *   turnpolicyd_alloc HOST PORT REALM CREDFILE CONC SECONDS [WARMUP]
 *
 * CREDFILE has "username password" lines.  Counts start after WARMUP
 * seconds (default 1).  Prints one line:
 *   allocs=N fail=F timeout=T seconds=S rate=R/s p50=X ms p99=Y ms total=M
 * (latency of the authenticated Allocate; M counts the warm-up too).  Exit 0 if rate > 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAX_CREDS 4096
#define MAX_CONC 1024
#define MAX_SAMPLES (1u << 22)
#define TIMEOUT_MS 2000
#define MAGIC 0x2112A442u

#define ALLOCATE 0x0003
#define REFRESH 0x0004
#define SUCCESS 0x0100
#define ERROR 0x0110

#define A_USERNAME 0x0006
#define A_MI 0x0008
#define A_ERROR 0x0009
#define A_LIFETIME 0x000D
#define A_REALM 0x0014
#define A_NONCE 0x0015
#define A_TRANSPORT 0x0019

typedef struct cred {
    char user[256];
    char pass[256];
    unsigned char key[16]; /* MD5(user:realm:pass) */
} cred;

enum state { S_ALLOC0, S_ALLOC, S_REFRESH };

typedef struct slot {
    int fd;
    enum state st;
    unsigned char txid[12];
    double sent;
    const cred *c;
    char nonce[256];
    size_t nonce_len;
    int retries;
} slot;

static cred creds[MAX_CREDS];
static size_t ncreds, next_cred;
static slot slots[MAX_CONC];
static struct sockaddr_in server;
static char realm[256];
static int ep;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double *samples;
static size_t nsamples;
static unsigned long n_alloc, n_total, n_fail, n_timeout;
static int counting;
static unsigned long next_src;

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void
die(const char *what)
{
    fprintf(stderr, "turnpolicyd_alloc: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ------------------------------------------------------------------ */
/* STUN messages                                                       */
/* ------------------------------------------------------------------ */

typedef struct msg {
    unsigned char b[1024];
    size_t n;
} msg;

static void
put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static unsigned
get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void
msg_start(msg *m, unsigned type, const unsigned char txid[12])
{
    put16(m->b, type);
    put16(m->b + 2, 0);
    m->b[4] = 0x21;
    m->b[5] = 0x12;
    m->b[6] = 0xA4;
    m->b[7] = 0x42;
    memcpy(m->b + 8, txid, 12);
    m->n = 20;
}

static void
msg_attr(msg *m, unsigned type, const void *v, size_t len)
{
    size_t pad = (4 - len % 4) % 4;

    put16(m->b + m->n, type);
    put16(m->b + m->n + 2, (unsigned)len);
    memcpy(m->b + m->n + 4, v, len);
    memset(m->b + m->n + 4 + len, 0, pad);
    m->n += 4 + len + pad;
    put16(m->b + 2, (unsigned)(m->n - 20));
}

/* USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (HMAC-SHA1 with the
 * long-term key over the message whose length already counts the MI). */
static void
msg_auth(msg *m, const slot *s)
{
    unsigned char mac[20];
    unsigned int maclen = 0;

    msg_attr(m, A_USERNAME, s->c->user, strlen(s->c->user));
    msg_attr(m, A_REALM, realm, strlen(realm));
    msg_attr(m, A_NONCE, s->nonce, s->nonce_len);
    put16(m->b + 2, (unsigned)(m->n - 20 + 24));
    if (HMAC(EVP_sha1(), s->c->key, 16, m->b, m->n, mac, &maclen) == NULL)
        exit(2);
    msg_attr(m, A_MI, mac, 20);
}

static void
send_req(slot *s)
{
    static const unsigned char udp[4] = {17, 0, 0, 0};
    static const unsigned char zero[4] = {0, 0, 0, 0};
    msg m;
    size_t i;

    for (i = 0; i < 12; i += 4) {
        uint64_t r = next_rand();
        memcpy(s->txid + i, &r, 4);
    }
    if (s->st == S_REFRESH) {
        msg_start(&m, REFRESH, s->txid);
        msg_attr(&m, A_LIFETIME, zero, 4);
        msg_auth(&m, s);
    } else {
        msg_start(&m, ALLOCATE, s->txid);
        msg_attr(&m, A_TRANSPORT, udp, 4);
        if (s->st == S_ALLOC)
            msg_auth(&m, s);
    }
    s->sent = mono();
    if (send(s->fd, m.b, m.n, 0) < 0 && errno != EAGAIN)
        die("send");
}

/* Bind fd to the next source address not in use. */
static void
bind_next(int fd)
{
    struct sockaddr_in a;
    int tries;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    for (tries = 0; tries < 1000; tries++, next_src++) {
        a.sin_addr.s_addr = htonl(0x7f000100u + 1 + (uint32_t)(next_src % 200));
        a.sin_port = htons((uint16_t)(20000 + next_src / 200 % 40000));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            next_src++;
            return;
        }
        if (errno != EADDRINUSE)
            die("bind");
    }
    die("bind (no free source address)");
}

/* A new socket (new 5-tuple), the next credential, Allocate. */
static void
slot_start(slot *s)
{
    struct epoll_event ev;

    if (s->fd >= 0)
        close(s->fd);
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0)
        die("socket");
    bind_next(s->fd);
    if (connect(s->fd, (struct sockaddr *)&server, sizeof(server)) != 0)
        die("connect");
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = s;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
        die("epoll_ctl");
    s->c = &creds[next_cred++ % ncreds];
    s->st = S_ALLOC0;
    s->retries = 0;
    s->nonce_len = 0;
    send_req(s);
}

/* Value of attribute type in a response, or NULL. */
static const unsigned char *
find_attr(const unsigned char *b, size_t n, unsigned type, size_t *len)
{
    size_t off = 20, l;

    while (off + 4 <= n) {
        l = get16(b + off + 2);
        if (off + 4 + l > n)
            return NULL;
        if (get16(b + off) == type) {
            *len = l;
            return b + off + 4;
        }
        off += 4 + l + (4 - l % 4) % 4;
    }
    return NULL;
}

static void
on_response(slot *s, const unsigned char *b, size_t n)
{
    unsigned type, code = 0;
    const unsigned char *v;
    size_t len;

    if (n < 20 || memcmp(b + 8, s->txid, 12) != 0)
        return; /* not the answer we wait for (a late retransmission) */
    type = get16(b);
    if ((type & 0x0110) == SUCCESS) {
        if (s->st == S_ALLOC) {
            n_total++;
            if (counting) {
                n_alloc++;
                if (nsamples < MAX_SAMPLES)
                    samples[nsamples++] = (mono() - s->sent) * 1000.0;
            }
            s->st = S_REFRESH;
            send_req(s);
        } else {
            slot_start(s); /* Refresh done (or an unexpected success) */
        }
        return;
    }
    v = find_attr(b, n, A_ERROR, &len);
    if (v != NULL && len >= 4)
        code = (unsigned)v[2] * 100 + v[3];
    v = find_attr(b, n, A_NONCE, &len);
    if ((code == 401 && s->st == S_ALLOC0) || (code == 438 && s->retries < 3)) {
        if (v == NULL || len >= sizeof(s->nonce))
            goto fail;
        memcpy(s->nonce, v, len);
        s->nonce_len = len;
        if (s->st == S_ALLOC0)
            s->st = S_ALLOC;
        s->retries++;
        send_req(s);
        return;
    }
fail:
    if (counting)
        n_fail++;
    if (n_fail <= 3 && counting)
        fprintf(stderr, "turnpolicyd_alloc: %s answered %u for %s\n",
                s->st == S_REFRESH ? "Refresh" : "Allocate", code,
                s->c->user);
    slot_start(s);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void
load_creds(const char *path)
{
    char line[600], buf[1024];
    unsigned int n = 0;
    FILE *f = fopen(path, "r");
    cred *c;
    int len;

    if (f == NULL)
        die(path);
    while (ncreds < MAX_CREDS && fgets(line, sizeof(line), f) != NULL) {
        c = &creds[ncreds];
        if (sscanf(line, "%255s %255s", c->user, c->pass) != 2)
            continue;
        len = snprintf(buf, sizeof(buf), "%s:%s:%s", c->user, realm,
                       c->pass);
        if (len < 0 || (size_t)len >= sizeof(buf) ||
            EVP_Digest(buf, (size_t)len, c->key, &n, EVP_md5(), NULL) != 1)
            exit(2);
        ncreds++;
    }
    fclose(f);
    if (ncreds == 0) {
        fprintf(stderr, "turnpolicyd_alloc: no credentials in %s\n", path);
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    struct epoll_event evs[64];
    unsigned char buf[2048];
    double t0, t_count = 0, t_end, now, secs, warmup = 1.0;
    int conc, i, n;
    ssize_t r;

    if (argc < 7) {
        fprintf(stderr, "usage: turnpolicyd_alloc HOST PORT REALM CREDFILE "
                "CONC SECONDS [WARMUP]\n");
        return 2;
    }
    memset(&server, 0, sizeof(server));
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1)
        return 2;
    snprintf(realm, sizeof(realm), "%s", argv[3]);
    load_creds(argv[4]);
    conc = atoi(argv[5]);
    secs = atof(argv[6]);
    if (argc > 7)
        warmup = atof(argv[7]);
    if (conc < 1 || conc > MAX_CONC || secs <= 0)
        return 2;
    samples = malloc(MAX_SAMPLES * sizeof(*samples));
    ep = epoll_create1(0);
    if (samples == NULL || ep < 0)
        die("setup");
    rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    /* Runs start >= 9 s apart and take < 20000 sources a second: a run
     * starting 180000 sources on from the previous one never meets its
     * 5-tuples (the cycle of 8000000 wraps after 400 s). */
    next_src = (unsigned long)time(NULL) * 20000ul % (200ul * 40000ul);

    t0 = mono();
    t_end = t0 + warmup + secs;
    for (i = 0; i < conc; i++) {
        slots[i].fd = -1;
        slot_start(&slots[i]);
    }
    for (;;) {
        now = mono();
        if (!counting && now >= t0 + warmup) {
            counting = 1;
            t_count = now;
        }
        if (now >= t_end)
            break;
        n = epoll_wait(ep, evs, 64, 20);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (i = 0; i < n; i++) {
            slot *s = evs[i].data.ptr;

            while ((r = recv(s->fd, buf, sizeof(buf), 0)) > 0) {
                on_response(s, buf, (size_t)r);
                if (s->fd < 0)
                    break;
            }
        }
        now = mono();
        for (i = 0; i < conc; i++) {
            if ((now - slots[i].sent) * 1000.0 > TIMEOUT_MS) {
                if (counting)
                    n_timeout++;
                slot_start(&slots[i]);
            }
        }
    }
    now = mono();
    secs = now - t_count;
    qsort(samples, nsamples, sizeof(*samples), cmp_double);
    printf("allocs=%lu fail=%lu timeout=%lu seconds=%.2f rate=%.0f/s "
           "p50=%.2f ms p99=%.2f ms total=%lu\n", n_alloc, n_fail, n_timeout,
           secs, (double)n_alloc / secs,
           nsamples ? samples[nsamples / 2] : 0.0,
           nsamples ? samples[(size_t)((double)nsamples * 0.99)] : 0.0,
           n_total);
    return n_alloc > 0 ? 0 : 1;
}
