/*
 * log.c - turnpolicyd's log: one line per event on stderr (with a
 * syslog priority prefix when stderr is the journal), and the flood
 * control that keeps what a client can make us log bounded.
 *
 * Why flood control: turnpolicyd logs what clients cause - a refused key
 * lookup names the realm, the username and the reason - and a client
 * needs no password to cause one (coturn asks for the key of any
 * username an Allocate carries).  Unlimited, a loop of forged Allocates
 * would fill the disk and bury the lines that matter.  Two limits, per
 * LOG_WINDOW seconds:
 *   - identical lines (the same text): LOG_SAME_BURST, then counted;
 *   - lines of one call site (one format string) however they differ:
 *     LOG_SITE_BURST, then counted;
 * and when a window is over, one line says how many were held back
 * ("N more lines like ..."), written by tpd_log_flush (the loop's tick)
 * or the next line of the same kind.  So a flood of one forged username
 * costs a few lines per window, a flood of varied ones LOG_SITE_BURST,
 * and a line of another kind (another reason, another user) still gets
 * through.  Debug lines are not limited: an operator asked for them all.
 *
 * Threads: any thread may log (the allocation worker does); the limiter
 * state is under log_mu, the write itself is one fprintf.  Nothing here
 * sees a secret: callers never pass one (see the review questions in
 * STYLE.md), and the summaries quote what was logged already.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "turnpolicyd.h"

#define LOG_WINDOW 10        /* seconds */
#define LOG_SITE_BURST 200   /* lines per call site per window */
#define LOG_SAME_BURST 5     /* identical lines per window */
#define LOG_SITES 128        /* call sites tracked (open addressing) */
#define LOG_SAME 512         /* distinct lines tracked (direct-mapped) */
#define LOG_QUOTE 160        /* bytes of a line quoted in a summary */

typedef struct log_count {
    int64_t start;           /* monotonic s; the window's start */
    unsigned lines;
    uint64_t suppressed;
    tp_log_level level;
} log_count;

typedef struct log_site {
    const char *fmt;         /* NULL: free slot */
    log_count c;
} log_site;

typedef struct log_same {
    uint64_t hash;           /* 0: free slot */
    log_count c;
    char quote[LOG_QUOTE + 1];
} log_same;

static tp_log_level log_max = TP_LOG_INFO;
static int log_journal; /* stderr is journald: use <N> prefixes */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static log_site log_sites[LOG_SITES];
static log_same log_sames[LOG_SAME];

void
tpd_log_init(tp_log_level max)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;

    log_max = max;
    log_journal = 0;
    if (js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
        fstat(STDERR_FILENO, &sb) == 0 &&
        (unsigned long long)sb.st_dev == dev &&
        (unsigned long long)sb.st_ino == ino)
        log_journal = 1;
}

int
tpd_log_enabled(tp_log_level level)
{
    return level <= log_max;
}

static void
log_write(tp_log_level level, const char *msg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {3, 4, 6, 7};
    char ts[32];
    struct tm tm;
    time_t t;

    if (log_journal) {
        (void)fprintf(stderr, "<%d>%s\n", prio[level], msg);
        return;
    }
    t = time(NULL);
    if (localtime_r(&t, &tm) == NULL ||
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        ts[0] = '\0';
    (void)fprintf(stderr, "%s turnpolicyd %s: %s\n", ts, names[level], msg);
}

static int64_t
log_clock(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec;
}

/* Under log_mu: write the summary of a count whose lines were held back
 * (quoting what) and start a new window. */
static void
log_close(log_count *c, const char *what, int64_t now)
{
    char msg[1024];

    if (c->suppressed > 0) {
        (void)snprintf(msg, sizeof(msg), "%" PRIu64 " more lines like "
                       "\"%.*s\" in the last %" PRId64 " s were not "
                       "logged", c->suppressed, LOG_QUOTE, what,
                       now - c->start);
        log_write(c->level, msg);
    }
    c->start = now;
    c->lines = 0;
    c->suppressed = 0;
}

/* Under log_mu: one more line for c; 1 if it may be written. */
static int
log_count_one(log_count *c, const char *what, unsigned burst, int64_t now)
{
    if (now - c->start >= LOG_WINDOW)
        log_close(c, what, now);
    if (++c->lines <= burst)
        return 1;
    c->suppressed++;
    return 0;
}

static uint64_t
log_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h != 0 ? h : 1;
}

/* 1 if msg (from call site fmt) may be written now. */
static int
log_admit(tp_log_level level, const char *fmt, const char *msg)
{
    uintptr_t at = ((uintptr_t)fmt >> 3) % LOG_SITES;
    uint64_t h = log_hash(msg);
    int64_t now = log_clock();
    log_site *site = NULL;
    log_same *same = &log_sames[h % LOG_SAME];
    int admit = 1;
    size_t i;

    if (pthread_mutex_lock(&log_mu) != 0)
        return 1;
    if (same->hash != h) {
        if (same->hash != 0)
            log_close(&same->c, same->quote, now); /* evicted */
        same->hash = h;
        same->c.start = now;
        same->c.lines = 0;
        same->c.level = level;
        i = strlen(msg);
        if (i > LOG_QUOTE)
            i = LOG_QUOTE;
        memcpy(same->quote, msg, i);
        same->quote[i] = '\0';
    }
    admit = log_count_one(&same->c, same->quote, LOG_SAME_BURST, now);
    for (i = 0; i < LOG_SITES; i++) {
        log_site *c = &log_sites[(at + i) % LOG_SITES];

        if (c->fmt == fmt || c->fmt == NULL) {
            site = c;
            break;
        }
    }
    if (site != NULL && admit) { /* a full table limits sites no more */
        if (site->fmt == NULL) {
            site->fmt = fmt;
            site->c.start = now;
            site->c.level = level;
        }
        admit = log_count_one(&site->c, site->fmt, LOG_SITE_BURST, now);
    }
    (void)pthread_mutex_unlock(&log_mu);
    return admit;
}

void
tpd_log_flush(void)
{
    int64_t now = log_clock();
    size_t i;

    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    for (i = 0; i < LOG_SITES; i++)
        if (log_sites[i].c.suppressed > 0 &&
            now - log_sites[i].c.start >= LOG_WINDOW)
            log_close(&log_sites[i].c, log_sites[i].fmt, now);
    for (i = 0; i < LOG_SAME; i++)
        if (log_sames[i].c.suppressed > 0 &&
            now - log_sames[i].c.start >= LOG_WINDOW)
            log_close(&log_sames[i].c, log_sames[i].quote, now);
    (void)pthread_mutex_unlock(&log_mu);
}

void
tpd_log(tp_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (level > log_max || (unsigned)level > TP_LOG_DEBUG)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (level < TP_LOG_DEBUG && !log_admit(level, fmt, msg))
        return;
    log_write(level, msg);
}

void
tpd_lib_log(void *ud, tp_log_level level, const char *msg)
{
    (void)ud;
    tpd_log(level, "store: %s", msg);
}

const char *
tpd_escape(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;
    unsigned char ch;

    if (cap < 8) {
        if (cap > 0)
            out[0] = '\0';
        return out;
    }
    for (i = 0; i < n; i++) {
        ch = (unsigned char)s[i];
        if (o + 4 + 4 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return out;
}
