/*
 * turnpolicyd.c - the daemon: configuration, sockets, the event loop,
 * signals and main().
 *
 * turnpolicyd is what an unmodified coturn 4.6.1 talks to as its
 * `redis-userdb` and `redis-statsdb` (see commands.c for the commands,
 * sessions.c for the session reports).  It listens on loopback TCP only
 * (coturn 4.6.1's Redis driver connects with redisConnect(ip, port) and
 * has no Unix-socket option, so there is no listen_unix), plus an
 * optional loopback HTTP port for Prometheus metrics.
 *
 * Workload: a handful of long-lived connections from coturn (one
 * synchronous per coturn thread, asynchronous pipelined ones for the
 * statsdb), a key lookup per new TURN session, periodic polls of origins
 * and peer lists, a few reports per session.  Everything runs on one
 * thread: an epoll loop over non-blocking sockets, each connection with a
 * bounded request parser and an output buffer.  Policy answers come from
 * the store's in-memory snapshot (no I/O); the only blocking calls (Redis
 * allocation counters) run on the worker in sessions.c.  The enforcer
 * (enforce.c), which talks to coturn's admin CLI, is one more descriptor
 * of the loop (an epoll set of its own: CLI sockets and a timerfd).
 *
 * Invariants:
 *   - at most max_connections connections; one more is accepted and
 *     closed at once;
 *   - a request larger than max_request, or bytes that are not a Redis
 *     request, get one error reply and the connection is closed after it;
 *   - replies go out in request order; a connection whose unsent output
 *     exceeds OUT_SOFT is not read (nor its buffered requests run) until
 *     it drains, so a client that never reads cannot grow our memory;
 *   - replies to statsdb reports wait up to DEFER_MS (or DEFER_BYTES):
 *     coturn sends them on asynchronous hiredis connections and never
 *     waits for the answers, and each reply sent alone costs a send here
 *     and a wake-up of a coturn thread there - about ten per allocation.
 *     Any other request on the connection sends everything at once, so
 *     a client that waits for an answer never waits for a report's;
 *   - each wake-up reads at most one READ_CHUNK per connection, so no
 *     connection starves the others;
 *   - connections that have not authenticated are closed after
 *     IDLE_UNAUTH seconds of silence; authenticated ones may idle
 *     forever (coturn keeps them);
 *   - SIGTERM/SIGINT: stop accepting, close connections, record finished
 *     sessions, flush usage to PostgreSQL (bounded), exit 0.
 *     SIGHUP: reload the policy snapshot now.
 *   - nothing logged contains a password, secret or key.
 */
#define _GNU_SOURCE /* accept4, signalfd */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "turnpolicyd.h"

#define DEFAULT_CONFIG "/etc/turnpolicy/turnpolicy.conf"
#define SECTION "turnpolicyd"
#define READ_CHUNK 16384
#define OUT_SOFT (1024 * 1024)
#define HTTP_MAX 8192
#define IDLE_UNAUTH 10
#define IDLE_HTTP 10
#define DEFER_MS 10
#define DEFER_BYTES 4096
#define EXIT_CONFIG 2

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

typedef struct settings {
    struct sockaddr_storage listen;
    socklen_t listen_len;
    struct sockaddr_storage metrics;
    socklen_t metrics_len;    /* 0 = no metrics port */
    char listen_text[80];
    char metrics_text[80];
    tp_store_options so;      /* the library's mapping of the file */
    tp_store_config hold;     /* what so points at; wiped at exit */
    size_t max_connections;
    size_t max_request;
    size_t max_sessions;
    tpd_enforce_options enforce; /* ncli == 0: no enforcement */
    char cli_pw[TPD_CLI_PASSWORD_MAX + 1]; /* wiped once handed over */
} settings;

static int
cfg_fail(const char *path, const char *fmt, ...) TPD_PRINTF(2, 3);

static int
cfg_fail(const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tpd_log(TP_LOG_ERROR, "%s: [%s] %s", path, SECTION, msg);
    return -1;
}

static int
is_loopback(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

    if (ss->ss_family == AF_INET)
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    return ss->ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
}

/* "a.b.c.d:port" or "[v6]:port", IP literals only (no name lookups). */
static int
parse_endpoint(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    char host[64];
    const char *colon, *hs, *he;
    char *end;
    unsigned long port;

    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (he == NULL || he[1] != ':')
            return -1;
        colon = he + 1;
    } else {
        hs = s;
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        he = colon;
    }
    if ((size_t)(he - hs) >= sizeof(host) || he == hs)
        return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || colon[1] < '0' || colon[1] > '9' ||
        port == 0 || port > 65535)
        return -1;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

static int
get_uint(const tp_config *cfg, const char *path, const char *key,
         int64_t min, int64_t max, int64_t dflt, int64_t *out)
{
    tp_error err;

    if (tp_config_get_int(cfg, SECTION, key, min, max, dflt, out, &err) !=
        TP_OK) {
        tpd_log(TP_LOG_ERROR, "%s: %s", path, err.message);
        return -1;
    }
    return 0;
}

static int
node_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/*
 * coturn_cli = IP:PORT [IP:PORT ...] (loopback unless allow_remote: the
 * telnet CLI sends its password in clear) and coturn_cli_password_file,
 * into s->enforce.  Absent coturn_cli: no enforcement (a warning).
 * Returns 0 or -1 (logged).
 */
static int
load_enforce(const tp_config *cfg, const char *path, settings *s,
             int allow_remote)
{
    tpd_enforce_options *o = &s->enforce;
    const char *list, *v, *p;
    char one[80];
    size_t n, i, pwlen = 0;
    tp_error err;

    list = tp_config_get(cfg, SECTION, "coturn_cli");
    v = tp_config_get(cfg, SECTION, "coturn_cli_password_file");
    o->ncli = 0;
    if (list == NULL) {
        if (v != NULL)
            return cfg_fail(path, "coturn_cli_password_file without "
                            "coturn_cli");
        tpd_log(TP_LOG_WARN, "no coturn_cli configured: revocation, "
                "expiry and budgets refuse new sessions but do not cut "
                "live ones");
        return 0;
    }
    for (p = list; *p != '\0';) {
        p += strspn(p, " ,\t");
        n = strcspn(p, " ,\t");
        if (n == 0)
            break;
        if (n >= sizeof(one))
            return cfg_fail(path, "coturn_cli: \"%.*s\" is too long",
                            (int)(n > 40 ? 40 : n), p);
        memcpy(one, p, n);
        one[n] = '\0';
        p += n;
        if (o->ncli == TPD_MAX_CLI)
            return cfg_fail(path, "coturn_cli: at most %d endpoints",
                            TPD_MAX_CLI);
        if (parse_endpoint(one, &o->cli[o->ncli], &o->cli_len[o->ncli]))
            return cfg_fail(path, "coturn_cli: \"%s\" is not IP:PORT or "
                            "[IPv6]:PORT", one);
        if (!allow_remote && !is_loopback(&o->cli[o->ncli]))
            return cfg_fail(path, "coturn_cli: %s is not a loopback "
                            "address (its password travels in clear; set "
                            "allow_remote = yes to allow it)", one);
        snprintf(o->cli_text[o->ncli], sizeof(o->cli_text[0]), "%s", one);
        o->ncli++;
    }
    if (o->ncli == 0)
        return cfg_fail(path, "coturn_cli is empty");
    if (v == NULL)
        return cfg_fail(path, "coturn_cli needs coturn_cli_password_file "
                        "(the cli-password of turnserver.conf)");
    if (tp_secret_file_read(v, s->cli_pw, TPD_CLI_PASSWORD_MAX, &pwlen,
                            &err) != TP_OK) {
        tpd_log(TP_LOG_ERROR, "%s: coturn_cli_password_file: %s", path,
                err.message);
        return -1;
    }
    s->cli_pw[pwlen] = '\0';
    for (i = 0; i < pwlen; i++)
        if ((unsigned char)s->cli_pw[i] < 0x20 ||
            (unsigned char)s->cli_pw[i] > 0x7e)
            break;
    if (pwlen == 0 || i < pwlen || s->cli_pw[0] == ' ') {
        OPENSSL_cleanse(s->cli_pw, sizeof(s->cli_pw));
        return cfg_fail(path, "the password in %s must be 1..%d printable "
                        "ASCII characters, not starting with a space", v,
                        TPD_CLI_PASSWORD_MAX);
    }
    o->password = s->cli_pw;
    o->pwlen = pwlen;
    return 0;
}

/*
 * Read [turnpolicyd] into s and d.  The AUTH password (password_file) is
 * kept only as its SHA-256; the Redis password is read into redis_pw
 * (wiped by the caller).  Returns 0 or -1 (logged).
 */
static int
load_settings(const tp_config *cfg, const char *path, settings *s, tpd *d,
              tp_log_level *level)
{
    static const char *const known[] = {
        "listen", "allow_remote", "listen_unix", "metrics",
        "password_file", "database", "redis", "redis_password_file",
        "redis_fail_mode", "node", "max_connections", "max_request",
        "max_sessions", "max_staleness", "reload_interval", "no_listen",
        "expiry_grace", "alloc_slack", "log_level", "coturn_cli",
        "coturn_cli_password_file", "enforce_interval", NULL
    };
    unsigned char pw[1024];
    unsigned int mdlen = 0;
    const char *v, *key;
    int64_t x;
    size_t i, j, pwlen = 0;
    tp_error err;
    int allow_remote = 0, rc = -1;

    for (i = 0; (key = tp_config_key_at(cfg, SECTION, i, &v)) != NULL;
         i++) {
        for (j = 0; known[j] != NULL && strcmp(known[j], key) != 0; j++)
            ;
        if (known[j] == NULL)
            return cfg_fail(path, "unknown key \"%s\"", key);
    }

    v = tp_config_get(cfg, SECTION, "log_level");
    if (v == NULL || strcmp(v, "info") == 0)
        *level = TP_LOG_INFO;
    else if (strcmp(v, "error") == 0)
        *level = TP_LOG_ERROR;
    else if (strcmp(v, "warn") == 0)
        *level = TP_LOG_WARN;
    else if (strcmp(v, "debug") == 0)
        *level = TP_LOG_DEBUG;
    else
        return cfg_fail(path, "log_level must be error, warn, info or "
                        "debug");
    tpd_log_init(*level);

    v = tp_config_get(cfg, SECTION, "allow_remote");
    if (v != NULL && strcmp(v, "yes") == 0)
        allow_remote = 1;
    else if (v != NULL && strcmp(v, "no") != 0)
        return cfg_fail(path, "allow_remote must be yes or no");
    if (tp_config_get(cfg, SECTION, "listen_unix") != NULL)
        return cfg_fail(path, "listen_unix is not supported: coturn "
                        "4.6.1's redis-userdb connects over TCP only");

    v = tp_config_get(cfg, SECTION, "listen");
    if (v == NULL)
        return cfg_fail(path, "listen = 127.0.0.1:PORT is required");
    if (parse_endpoint(v, &s->listen, &s->listen_len) != 0)
        return cfg_fail(path, "listen: \"%s\" is not IP:PORT or [IPv6]:PORT",
                        v);
    if (!allow_remote && !is_loopback(&s->listen))
        return cfg_fail(path, "listen: %s is not a loopback address (set "
                        "allow_remote = yes to allow it)", v);
    snprintf(s->listen_text, sizeof(s->listen_text), "%s", v);
    v = tp_config_get(cfg, SECTION, "metrics");
    if (v != NULL) {
        if (parse_endpoint(v, &s->metrics, &s->metrics_len) != 0)
            return cfg_fail(path, "metrics: \"%s\" is not IP:PORT", v);
        if (!allow_remote && !is_loopback(&s->metrics))
            return cfg_fail(path, "metrics: %s is not a loopback address",
                            v);
        snprintf(s->metrics_text, sizeof(s->metrics_text), "%s", v);
    }

    v = tp_config_get(cfg, SECTION, "password_file");
    if (v == NULL)
        return cfg_fail(path, "password_file is required (the password "
                        "coturn sends with AUTH)");
    if (tp_secret_file_read(v, pw, sizeof(pw), &pwlen, &err) != TP_OK) {
        tpd_log(TP_LOG_ERROR, "%s: password_file: %s", path, err.message);
        goto out;
    }
    if (pwlen == 0) {
        cfg_fail(path, "password_file %s is empty", v);
        goto out;
    }
    if (memchr(pw, ' ', pwlen) != NULL || memchr(pw, '\0', pwlen) != NULL) {
        /* coturn splits its connection string on spaces. */
        cfg_fail(path, "the password in %s must not contain spaces", v);
        goto out;
    }
    if (EVP_Digest(pw, pwlen, d->pw_digest, &mdlen, EVP_sha256(), NULL) !=
            1 || mdlen != sizeof(d->pw_digest)) {
        cfg_fail(path, "cannot hash the password (OpenSSL)");
        goto out;
    }

    /* database, Redis, staleness and reloads: the library's mapping,
     * the same for every consumer of the file */
    if (tp_store_options_from_config(cfg, SECTION, &s->so, &s->hold,
                                     &err) != TP_OK) {
        tpd_log(TP_LOG_ERROR, "%s", err.message);
        goto out;
    }
    if (s->so.database == NULL) {
        cfg_fail(path, "database (or the global database_url) is "
                 "required");
        goto out;
    }

    v = tp_config_get(cfg, SECTION, "node");
    if (v != NULL) {
        snprintf(d->node, sizeof(d->node), "%s", v);
    } else if (gethostname(d->node, sizeof(d->node) - 1) != 0) {
        cfg_fail(path, "cannot read the host name; set node = NAME");
        goto out;
    }
    d->node[sizeof(d->node) - 1] = '\0';
    if (!node_ok(d->node)) {
        cfg_fail(path, "node \"%s\" must be 1..64 of [A-Za-z0-9._-]",
                 d->node);
        goto out;
    }

    if (get_uint(cfg, path, "max_connections", 1, 65536, 256, &x) != 0)
        goto out;
    s->max_connections = (size_t)x;
    if (get_uint(cfg, path, "max_request", 1024, 16 << 20, 65536, &x) != 0)
        goto out;
    s->max_request = (size_t)x;
    if (get_uint(cfg, path, "max_sessions", 16, 10000000, 1000000, &x) != 0)
        goto out;
    s->max_sessions = (size_t)x;
    if (get_uint(cfg, path, "expiry_grace", 0, 86400, 60, &x) != 0)
        goto out;
    d->expiry_grace = (uint32_t)x;
    if (get_uint(cfg, path, "alloc_slack", 1, 3600, 60, &x) != 0)
        goto out;
    d->alloc_slack = (uint32_t)x;
    if (get_uint(cfg, path, "enforce_interval", 10, 60000, 250, &x) != 0)
        goto out;
    s->enforce.interval_ms = (uint32_t)x;
    if (load_enforce(cfg, path, s, allow_remote) != 0)
        goto out;
    rc = 0;

out:
    OPENSSL_cleanse(pw, sizeof(pw));
    return rc;
}

/* ------------------------------------------------------------------ */
/* Event loop                                                          */
/* ------------------------------------------------------------------ */

enum htype {
    H_LISTEN_RESP,
    H_LISTEN_HTTP,
    H_SIGNAL,
    H_ENFORCE,
    H_CONN_RESP,
    H_CONN_HTTP
};

typedef struct handle {
    enum htype type;
    int fd;
} handle;

typedef struct conn {
    handle h;                  /* first: epoll data points here */
    struct conn *prev, *next;
    tpd_parser *parser;        /* RESP */
    tpd_client client;
    tpd_buf in;                /* HTTP request */
    tpd_buf out;
    int64_t last_active;       /* monotonic seconds */
    uint32_t events;           /* epoll mask in force */
    int closing;               /* no more input; close once out drains */
    int64_t defer_until;       /* monotonic ms; 0 = replies not held */
    struct conn *dprev, *dnext; /* in loop.deferred while held */
} conn;

typedef struct loop {
    tpd *d;
    const settings *s;
    int ep;
    handle lresp, lhttp, sig, enf;
    conn *conns;
    size_t nconns;
    conn *deferred;            /* connections holding report replies */
    int paused;                /* listeners off after EMFILE */
    int stop;
} loop;

static int64_t
mono_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec;
}

static int
ep_set(loop *L, int op, handle *h, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = h;
    if (epoll_ctl(L->ep, op, h->fd, &ev) != 0) {
        tpd_log(TP_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
undefer(loop *L, conn *c)
{
    if (c->defer_until == 0)
        return;
    if (c->dprev != NULL)
        c->dprev->dnext = c->dnext;
    else
        L->deferred = c->dnext;
    if (c->dnext != NULL)
        c->dnext->dprev = c->dprev;
    c->dprev = c->dnext = NULL;
    c->defer_until = 0;
}

static void
conn_close(loop *L, conn *c)
{
    undefer(L, c);
    if (epoll_ctl(L->ep, EPOLL_CTL_DEL, c->h.fd, NULL) != 0 &&
        errno != EBADF && errno != ENOENT)
        tpd_log(TP_LOG_WARN, "epoll_ctl(DEL): %s", strerror(errno));
    if (close(c->h.fd) != 0)
        tpd_log(TP_LOG_DEBUG, "close: %s", strerror(errno));
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        L->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    L->nconns--;
    L->d->n.conns_open = L->nconns;
    tpd_parser_free(c->parser);
    tpd_buf_free(&c->in);
    tpd_buf_free(&c->out);
    free(c);
}

/* Send what we can, then set the epoll mask the connection's state asks
 * for.  Closes it (and returns -1) when done or broken. */
static int
conn_flush(loop *L, conn *c)
{
    uint32_t want = 0;
    size_t pending;
    ssize_t n;

    undefer(L, c);
    while ((pending = tpd_buf_pending(&c->out)) > 0) {
        n = send(c->h.fd, c->out.data + c->out.off, pending, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            conn_close(L, c);
            return -1;
        }
        tpd_buf_consume(&c->out, (size_t)n);
    }
    pending = tpd_buf_pending(&c->out);
    if (c->closing && pending == 0) {
        conn_close(L, c);
        return -1;
    }
    if (!c->closing && pending < OUT_SOFT)
        want |= EPOLLIN;
    if (pending > 0)
        want |= EPOLLOUT;
    if (want != c->events) {
        if (ep_set(L, EPOLL_CTL_MOD, &c->h, want) != 0) {
            conn_close(L, c);
            return -1;
        }
        c->events = want;
    }
    return 0;
}

/* Run the complete requests buffered in c, in order, while its output
 * is below OUT_SOFT; then flush.  Returns 0, or -1 if c was closed. */
static int
resp_process(loop *L, conn *c)
{
    tpd_request *rq;
    int rc, reports = 1, ran = 0;

    while (!c->closing && tpd_buf_pending(&c->out) < OUT_SOFT) {
        rc = tpd_parser_next(c->parser, &rq);
        if (rc == TPD_PARSE_MORE)
            break;
        if (rc == TPD_PARSE_ERROR) {
            L->d->n.protocol_errors++;
            tpd_log(TP_LOG_INFO, "closing a connection: protocol error");
            (void)tpd_reply_error(&c->out, "ERR protocol error");
            c->closing = 1;
            break;
        }
        if (rc == TPD_PARSE_TOO_LARGE) {
            L->d->n.too_large++;
            tpd_log(TP_LOG_INFO, "closing a connection: request larger "
                    "than max_request (%zu bytes)", L->s->max_request);
            (void)tpd_reply_error(&c->out, "ERR request too large");
            c->closing = 1;
            break;
        }
        rc = tpd_command(L->d, &c->client, rq, &c->out);
        tpd_request_free(rq);
        ran = 1;
        reports &= c->client.report;
        if (rc != 0) {
            tpd_log(TP_LOG_ERROR, "out of memory answering a request");
            conn_close(L, c);
            return -1;
        }
        if (c->client.close_after_reply)
            c->closing = 1;
    }
    if (ran && reports && !c->closing && c->events == EPOLLIN &&
        tpd_buf_pending(&c->out) < DEFER_BYTES) {
        if (c->defer_until == 0) {
            c->defer_until = mono_ms() + DEFER_MS;
            c->dprev = NULL;
            c->dnext = L->deferred;
            if (L->deferred != NULL)
                L->deferred->dprev = c;
            L->deferred = c;
        }
        return 0;
    }
    return conn_flush(L, c);
}

/* Send the report replies held past their time; returns the epoll
 * timeout (ms) until the next one is due, at most max_ms. */
static int
flush_deferred(loop *L, int max_ms)
{
    int64_t now = mono_ms(), wait = max_ms;
    conn *c, *next;

    for (c = L->deferred; c != NULL; c = next) {
        next = c->dnext;
        if (c->defer_until <= now)
            (void)conn_flush(L, c); /* unlinks it; may close it */
        else if (c->defer_until - now < wait)
            wait = c->defer_until - now;
    }
    return (int)wait;
}

static void
http_respond(loop *L, conn *c)
{
    const char *req = c->in.data;
    const char *status = "404 Not Found", *ctype = "text/plain";
    tpd_buf body;
    tp_store_info si;
    tpd_enforcer_status es;
    uint32_t stale;
    int ok = 0;

    memset(&body, 0, sizeof(body));
    if (strncmp(req, "GET /metrics ", 13) == 0 ||
        strncmp(req, "GET /metrics\r", 13) == 0) {
        if (tpd_metrics_render(L->d, &body) == 0) {
            status = "200 OK";
            ctype = "text/plain; version=0.0.4";
            ok = 1;
        } else {
            status = "500 Internal Server Error";
        }
    } else if (strncmp(req, "GET /health ", 12) == 0) {
        tp_store_info_get(L->d->store, &si);
        tpd_enforcer_status_get(L->d->enforcer, &es);
        stale = L->s->so.max_staleness;
        if (si.age <= (double)stale && es.loud) {
            /* decisions work, but revocation cannot cut live sessions */
            status = "503 Service Unavailable";
            ok = tpd_buf_printf(&body, "enforcer down: %zu of %zu coturn "
                                "CLI endpoints logged in for %" PRId64
                                " s; coturn >= 4.10 opens its CLI only "
                                "with `cli` in turnserver.conf (and "
                                "cli-ip, cli-port, cli-password matching "
                                "coturn_cli, coturn_cli_password_file)\n",
                                es.cli_up, es.cli_total,
                                es.down_ms / 1000) == 0;
        } else if (si.age <= (double)stale) {
            status = "200 OK";
            ok = tpd_buf_printf(&body, "ok\n") == 0;
        } else {
            status = "503 Service Unavailable";
            ok = tpd_buf_printf(&body, "policy stale: %.0f s\n", si.age) ==
                 0;
        }
    } else if (strncmp(req, "GET ", 4) != 0) {
        status = "405 Method Not Allowed";
    }
    if (!ok && tpd_buf_pending(&body) == 0)
        (void)tpd_buf_printf(&body, "%s\n", status);
    if (tpd_buf_printf(&c->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                       status, ctype, tpd_buf_pending(&body)) != 0 ||
        tpd_buf_append(&c->out, body.data + body.off,
                       tpd_buf_pending(&body)) != 0) {
        tpd_buf_free(&body);
        conn_close(L, c);
        return;
    }
    tpd_buf_free(&body);
    c->closing = 1;
    (void)conn_flush(L, c);
}

static void
conn_readable(loop *L, conn *c)
{
    char buf[READ_CHUNK];
    ssize_t n;

    n = recv(c->h.fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                  errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(L, c);
        return;
    }
    c->last_active = mono_now();
    if (c->h.type == H_CONN_HTTP) {
        if (c->in.len + (size_t)n > HTTP_MAX ||
            tpd_buf_append(&c->in, buf, (size_t)n) != 0 ||
            tpd_buf_append(&c->in, "", 1) != 0) {
            conn_close(L, c);
            return;
        }
        c->in.len--; /* keep the NUL out of the length */
        if (strstr(c->in.data, "\r\n\r\n") != NULL ||
            strstr(c->in.data, "\n\n") != NULL)
            http_respond(L, c);
        return;
    }
    if (tpd_parser_feed(c->parser, buf, (size_t)n) != 0) {
        tpd_log(TP_LOG_ERROR, "out of memory reading a request");
        conn_close(L, c);
        return;
    }
    (void)resp_process(L, c);
}

static void
set_listeners(loop *L, int on)
{
    uint32_t ev = on ? EPOLLIN : 0;

    (void)ep_set(L, EPOLL_CTL_MOD, &L->lresp, ev);
    if (L->lhttp.fd >= 0)
        (void)ep_set(L, EPOLL_CTL_MOD, &L->lhttp, ev);
    L->paused = !on;
}

static void
accept_all(loop *L, handle *lh)
{
    int fd, one = 1, i;
    conn *c;

    for (i = 0; i < 64; i++) {
        fd = accept4(lh->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            tpd_log(TP_LOG_WARN, "accept: %s; not accepting for a second",
                    strerror(errno));
            set_listeners(L, 0);
            return;
        }
        if (L->nconns >= L->s->max_connections) {
            L->d->n.conns_refused++;
            tpd_log(TP_LOG_WARN, "max_connections (%zu) reached: closing "
                    "a new connection", L->s->max_connections);
            (void)close(fd);
            continue;
        }
        c = calloc(1, sizeof(*c));
        if (c != NULL && lh->type == H_LISTEN_RESP) {
            c->parser = tpd_parser_new(L->s->max_request);
            if (c->parser == NULL) {
                free(c);
                c = NULL;
            }
        }
        if (c == NULL) {
            tpd_log(TP_LOG_ERROR, "out of memory accepting a connection");
            (void)close(fd);
            continue;
        }
        if (lh->type == H_LISTEN_RESP &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
            tpd_log(TP_LOG_DEBUG, "TCP_NODELAY: %s", strerror(errno));
        c->h.type = lh->type == H_LISTEN_RESP ? H_CONN_RESP : H_CONN_HTTP;
        c->h.fd = fd;
        c->events = EPOLLIN;
        c->last_active = mono_now();
        if (ep_set(L, EPOLL_CTL_ADD, &c->h, EPOLLIN) != 0) {
            tpd_parser_free(c->parser);
            free(c);
            (void)close(fd);
            continue;
        }
        c->next = L->conns;
        if (L->conns != NULL)
            L->conns->prev = c;
        L->conns = c;
        L->nconns++;
        L->d->n.conns_open = L->nconns;
        if (c->h.type == H_CONN_RESP)
            L->d->n.conns_accepted++;
    }
}

static int
open_listener(const struct sockaddr_storage *ss, socklen_t len,
              const char *text)
{
    int fd, one = 1;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        tpd_log(TP_LOG_ERROR, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, 128) != 0) {
        tpd_log(TP_LOG_ERROR, "cannot listen on %s: %s", text,
                strerror(errno));
        (void)close(fd);
        return -1;
    }
    return fd;
}

/* Once a second: close idle unauthenticated and HTTP connections, finish
 * ended sessions, resume listening after EMFILE. */
static void
tick(loop *L)
{
    int64_t now = mono_now();
    conn *c, *next;

    for (c = L->conns; c != NULL; c = next) {
        next = c->next;
        if ((c->h.type == H_CONN_HTTP && now - c->last_active > IDLE_HTTP) ||
            (c->h.type == H_CONN_RESP && !c->client.authed &&
             now - c->last_active > IDLE_UNAUTH))
            conn_close(L, c);
    }
    tpd_sessions_sweep(L->d, tp_now(), 0);
    tpd_log_flush();
    if (L->paused)
        set_listeners(L, 1);
}

static void
on_signal(loop *L)
{
    struct signalfd_siginfo si;
    ssize_t n;

    for (;;) {
        n = read(L->sig.fd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si))
            return;
        if (si.ssi_signo == SIGHUP) {
            tpd_log(TP_LOG_INFO, "SIGHUP: reloading the policy");
            tp_store_reload(L->d->store);
        } else {
            tpd_log(TP_LOG_INFO, "signal %u: shutting down",
                    (unsigned)si.ssi_signo);
            L->stop = 1;
        }
    }
}

static int
run_loop(loop *L)
{
    struct epoll_event evs[64];
    int64_t last_tick = mono_now();
    handle *h;
    uint32_t e;
    int n, i;

    while (!L->stop) {
        n = epoll_wait(L->ep, evs, 64,
                       L->deferred != NULL ? flush_deferred(L, 1000)
                                           : 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            tpd_log(TP_LOG_ERROR, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (i = 0; i < n; i++) {
            h = evs[i].data.ptr;
            e = evs[i].events;
            switch (h->type) {
            case H_LISTEN_RESP:
            case H_LISTEN_HTTP:
                accept_all(L, h);
                break;
            case H_SIGNAL:
                on_signal(L);
                break;
            case H_ENFORCE:
                tpd_enforcer_run(L->d->enforcer, L->d);
                break;
            case H_CONN_RESP:
            case H_CONN_HTTP:
                /* A connection closed earlier in this batch cannot
                 * appear: each fd has one event per epoll_wait. */
                if (e & (EPOLLERR | EPOLLHUP)) {
                    conn_close(L, (conn *)h);
                    break;
                }
                if (e & EPOLLOUT) {
                    if (h->type == H_CONN_RESP
                            ? resp_process(L, (conn *)h) != 0
                            : conn_flush(L, (conn *)h) != 0)
                        break; /* closed */
                }
                if ((e & EPOLLIN) && !((conn *)h)->closing)
                    conn_readable(L, (conn *)h);
                break;
            }
        }
        if (L->deferred != NULL)
            (void)flush_deferred(L, 0);
        if (mono_now() != last_tick) {
            last_tick = mono_now();
            tick(L);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const char usage[] =
    "usage: turnpolicyd [--config FILE]\n"
    "The policy endpoint stock coturn uses as its redis-userdb and\n"
    "redis-statsdb.  Reads section [turnpolicyd] of the configuration\n"
    "(--config FILE, else $TURNPOLICY_CONFIG, else " DEFAULT_CONFIG ").\n"
    "Runs in the foreground and logs to stderr.  SIGHUP reloads the\n"
    "policy; SIGTERM flushes usage records and exits.\n";

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}
    };
    const char *path = NULL;
    tp_config *cfg = NULL;
    tp_log_level level = TP_LOG_INFO;
    settings s;
    sigset_t mask;
    tp_error err;
    tpd d;
    loop L;
    int opt, rc = EXIT_CONFIG;

    memset(&s, 0, sizeof(s));
    memset(&d, 0, sizeof(d));
    memset(&L, 0, sizeof(L));
    L.ep = L.lresp.fd = L.lhttp.fd = L.sig.fd = L.enf.fd = -1;
    tpd_log_init(TP_LOG_INFO);

    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("turnpolicyd %s\n", tp_version());
            return 0;
        default:
            fputs(usage, stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_CONFIG;
    }
    if (path == NULL)
        path = getenv("TURNPOLICY_CONFIG");
    if (path == NULL || path[0] == '\0')
        path = DEFAULT_CONFIG;

    /* Signals arrive through a signalfd; block them before any thread
     * (store, worker) exists so that no thread takes them. */
    if (sigemptyset(&mask) != 0 || sigaddset(&mask, SIGTERM) != 0 ||
        sigaddset(&mask, SIGINT) != 0 || sigaddset(&mask, SIGHUP) != 0 ||
        sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        tpd_log(TP_LOG_ERROR, "cannot set up signals: %s", strerror(errno));
        goto out;
    }

    if (tp_config_load(path, &cfg, &err) != TP_OK) {
        tpd_log(TP_LOG_ERROR, "configuration: %s", err.message);
        goto out;
    }
    if (load_settings(cfg, path, &s, &d, &level) != 0)
        goto out;
    rc = EXIT_FAILURE;

    s.so.log = tpd_lib_log;
    d.store = tp_store_new(&s.so, &err);
    tp_store_config_clear(&s.hold);
    if (d.store == NULL) {
        tpd_log(TP_LOG_ERROR, "policy store: %s", err.message);
        goto out;
    }
    d.started = tp_now();
    d.sessions = tpd_sessions_new(s.max_sessions);
    d.allocq = tpd_allocq_new(d.store, 65536);
    if (d.sessions == NULL || d.allocq == NULL) {
        tpd_log(TP_LOG_ERROR, "out of memory");
        goto out;
    }

    L.d = &d;
    L.s = &s;
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    if (L.ep < 0) {
        tpd_log(TP_LOG_ERROR, "epoll_create1: %s", strerror(errno));
        goto out;
    }
    L.sig.type = H_SIGNAL;
    L.sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (L.sig.fd < 0 || ep_set(&L, EPOLL_CTL_ADD, &L.sig, EPOLLIN) != 0) {
        tpd_log(TP_LOG_ERROR, "signalfd: %s", strerror(errno));
        goto out;
    }
    L.lresp.type = H_LISTEN_RESP;
    L.lresp.fd = open_listener(&s.listen, s.listen_len, s.listen_text);
    if (L.lresp.fd < 0 || ep_set(&L, EPOLL_CTL_ADD, &L.lresp, EPOLLIN))
        goto out;
    if (s.metrics_len != 0) {
        L.lhttp.type = H_LISTEN_HTTP;
        L.lhttp.fd = open_listener(&s.metrics, s.metrics_len,
                                   s.metrics_text);
        if (L.lhttp.fd < 0 ||
            ep_set(&L, EPOLL_CTL_ADD, &L.lhttp, EPOLLIN) != 0)
            goto out;
    }
    if (s.enforce.ncli > 0) {
        d.enforcer = tpd_enforcer_new(&s.enforce);
        OPENSSL_cleanse(s.cli_pw, sizeof(s.cli_pw));
        if (d.enforcer == NULL)
            goto out;
        (void)tpd_enforcer_watch(d.enforcer, tp_store_change_fd(d.store));
        L.enf.type = H_ENFORCE;
        L.enf.fd = tpd_enforcer_fd(d.enforcer);
        if (ep_set(&L, EPOLL_CTL_ADD, &L.enf, EPOLLIN) != 0)
            goto out;
    }
    tpd_log(TP_LOG_INFO, "turnpolicyd %s node %s listening on %s%s%s; "
            "%zu coturn CLI(s) for enforcement, expiry_grace %" PRIu32
            " s", tp_version(), d.node, s.listen_text,
            s.metrics_len != 0 ? ", metrics on " : "", s.metrics_text,
            s.enforce.ncli, d.expiry_grace);

    if (run_loop(&L) != 0)
        goto out;
    rc = 0;

out:
    if (L.lresp.fd >= 0)
        (void)close(L.lresp.fd);
    if (L.lhttp.fd >= 0)
        (void)close(L.lhttp.fd);
    while (L.conns != NULL)
        conn_close(&L, L.conns);
    tpd_enforcer_free(d.enforcer); /* closes L.enf.fd */
    OPENSSL_cleanse(s.cli_pw, sizeof(s.cli_pw));
    tp_store_config_clear(&s.hold); /* settings may fail late */
    if (d.sessions != NULL && d.store != NULL)
        tpd_sessions_sweep(&d, tp_now(), 1);
    tpd_allocq_free(d.allocq, 2000);
    if (d.store != NULL) {
        if (tp_store_usage_flush(d.store, 5000, &err) != TP_OK) {
            tpd_log(TP_LOG_ERROR, "usage records not written before exit: "
                    "%s", err.message);
            if (rc == 0)
                rc = EXIT_FAILURE;
        }
        tp_store_free(d.store);
    }
    tpd_sessions_free(d.sessions);
    tpd_cache_free(d.cache);
    if (L.sig.fd >= 0)
        (void)close(L.sig.fd);
    if (L.ep >= 0)
        (void)close(L.ep);
    tp_config_free(cfg);
    OPENSSL_cleanse(&d.pw_digest, sizeof(d.pw_digest));
    if (rc == 0)
        tpd_log(TP_LOG_INFO, "stopped");
    return rc;
}
