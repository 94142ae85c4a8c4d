/*
 * enforce.c - cuts the live TURN sessions the policy no longer allows,
 * through coturn's admin CLI.
 *
 * coturn 4.6.1 checks a credential once, when a session starts; after
 * that the session lives on through Refreshes whatever happens to the
 * user.  The enforcer decides every live session of the table
 * (sessions.c) again and, when the answer is no, sends `cs <id>` on
 * coturn's telnet CLI (cli-ip/cli-port/cli-password) and confirms with
 * `ps <username>` that the id is gone, retrying with a growing delay.
 *
 * When a session is decided again:
 *   - all of them, whenever tp_store_info's `changes` moves (new
 *     snapshot after a NOTIFY or reload: revocation, disable, kill
 *     switch, retired secret, binding or budget change; or a change
 *     fanned out through Redis): at once, woken by the store's change
 *     descriptor (tp_store_change_fd, tpd_enforcer_watch), with the
 *     periodic tick as the fallback;
 *   - every enforce_interval ms, those with something new: started or
 *     traffic reported since the last look (client binding, byte
 *     budget), a credential expired more than expiry_grace ago, or a
 *     session cancelled earlier that coturn still reports;
 *   - at once, a session whose shared allocation counter was refused
 *     over quota (another node holds the user's quota; sessions.c's
 *     worker hands the id over).
 * The decision is the library's: tp_store_key at time t (which refuses
 * a user whose finished sessions spent the budget: TP_EBUDGET, counted
 * as byte_budget), then tp_store_session_check - the rule the key lookup
 * applies too - with the client address coturn reported and what the
 * snapshot lacks of the user's bytes (its sessions in the table and its
 * finished sessions not yet in the snapshot).
 * t is now, except while the credential is expired by less than
 * expiry_grace: then t is the last second it was valid, so the grace
 * applies to expiry alone while revocation, disable, kill switch and
 * unknown or retired kids apply at once.  (Deciding at now - grace, as
 * first planned, would call a credential issued within the last
 * grace - clock_skew seconds "not yet valid".)  Only definite refusals
 * cut (cut_status below); a stale policy (PostgreSQL away past
 * max_staleness) cuts nothing: new sessions fail closed, live ones are
 * left alone rather than dropped for a database outage.
 *
 * Why in the loop and not in a thread of its own: the decisions read the
 * session table, which belongs to the loop thread (a thread would need a
 * lock or a copy of it), and the CLI traffic is a few short lines per
 * cancellation.  So every CLI socket is non-blocking, driven by a small
 * state machine (connect -> greeting -> password -> prompt -> one
 * command at a time), and the enforcer's descriptors (CLI sockets and a
 * timerfd for its deadlines) sit in an epoll set of their own whose one
 * descriptor the main loop watches.  A scan visits at most SCAN_CHUNK
 * sessions per wake-up and goes on at the next, so a large table never
 * holds key lookups back.
 *
 * coturn 4.6.1's CLI (src/apps/relay/turn_admin_server.c), as used here:
 *   - greeting "TURN Server\r\nCoturn-4.6.1 'Gorst'\r\n\r\nType '?' for
 *     help\r\nEnter password: \r\n"; a right password is answered with
 *     the prompt "> ", a wrong one with "Enter password: \r\n" again (the
 *     fifth attempt closes the connection).  We try once per connection.
 *   - a command is whatever one read delivers (no line splitting), so
 *     exactly one command is in flight and the next waits for "> ";
 *   - `ps <name>` lists the sessions whose username is exactly <name>:
 *     "    N) id=<18 digits>, user <name>:" then indented detail lines,
 *     then "  Total sessions: M" and the prompt.  At most
 *     cli-max-output-sessions (256) are listed; M counts them all.
 *   - `cs <id>` asks the relay thread owning the id to cancel it and
 *     answers "> " at once; the session leaves `ps` when it is gone.
 *   - session ids are unique within one coturn process only, and a
 *     session id we hold may be one coturn no longer has (it restarted,
 *     or we missed its end), so `ps` always goes first: `cs` is sent
 *     only for an id coturn lists under that username, and
 *     cancel_commands / sessions_cancelled count real cuts.  An id no
 *     coturn lists (after YOUNG_S: coturn's CLI learns of a session a
 *     moment after its statsdb report) leaves the session table at once
 *     (tpd_sessions_gone), so a session is never decided twice for
 *     nothing.
 * Output is telnet (libtelnet): IAC sequences are dropped and so are
 * the NULs of "\r\0".
 *
 * Invariants: the CLI password is kept only here, sent only in the
 * password line, wiped from the output buffer once sent and at free, and
 * never logged; log lines name the realm, the escaped username and the
 * reason, never a key.  At most TARGETS_MAX sessions are being cancelled
 * at once; a target is dropped (and counted) after GIVE_UP_MS without
 * confirmation and taken up again RETARGET_MS later if coturn still
 * reports the session.
 */
#define _GNU_SOURCE /* timerfd */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "turnpolicyd.h"

#define IN_MAX (4 << 20)        /* a `ps` reply of 256 sessions is ~150 KB */
#define CONNECT_TIMEOUT_MS 2000
#define CMD_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define AUTH_BACKOFF_MAX_MS 30000
#define RECHECK_MIN_MS 10       /* first `ps` after a `cs` */
#define RECHECK_MAX_MS 1000
#define GIVE_UP_MS 30000
#define RETARGET_MS 2000
#define YOUNG_S 2               /* a session this new may be unlisted yet */
#define SCAN_CHUNK 20000
#define TARGETS_MAX 65536
#define TIMER_TAG TPD_MAX_CLI   /* epoll tag of the timerfd */
#define CHANGE_TAG (TPD_MAX_CLI + 1) /* ... of the store's change fd */
#define MARK_QUEUED (-1)        /* session mark: a target exists */
#define DOWN_LOUD_MS 10000      /* CLI down this long: an error, /health */
/* What fixes an unreachable CLI, for the log and /health. */
#define CLI_HINT "coturn >= 4.10 opens its CLI only with `cli` in " \
    "turnserver.conf, next to cli-ip, cli-port and cli-password, which " \
    "must match coturn_cli and coturn_cli_password_file"

enum cli_state {
    C_DOWN,       /* closed; reconnect at deadline */
    C_CONNECTING,
    C_GREETING,   /* waiting for "Enter password:" */
    C_AUTH,       /* password sent, waiting for the prompt */
    C_IDLE,       /* prompt seen, nothing in flight */
    C_BUSY        /* one command in flight */
};

enum cmd_kind { CMD_NONE, CMD_PS, CMD_CS };

/* A target's progress on one CLI. */
enum tgt_state {
    T_PROBE,      /* does this coturn list it?  (several CLIs) */
    T_CANCEL,     /* send `cs` */
    T_RECHECK,    /* `cs` sent: `ps` at next_at */
    T_GONE        /* not listed by this coturn */
};

typedef struct target {
    uint64_t id;
    char realm[TP_REALM_MAX + 1];
    char user_id[TP_USER_ID_MAX + 1];
    char username[TP_USERNAME_MAX + 1];
    char client[64];
    int why;                     /* tp_status or TPD_CUT_BUDGET */
    int64_t started;             /* the session's first report, Unix s */
    int64_t queued_at;           /* monotonic ms */
    int64_t give_up_at;
    unsigned cs_sent;
    unsigned char st[TPD_MAX_CLI];
    int64_t next_at[TPD_MAX_CLI];
    uint32_t delay[TPD_MAX_CLI];
} target;

typedef struct cli {
    int fd;
    enum cli_state state;
    struct sockaddr_storage addr;
    socklen_t alen;
    char text[80];
    tpd_buf in;                  /* telnet-decoded, NUL-terminated */
    int iac;                     /* telnet decoder state */
    char out[TPD_CLI_PASSWORD_MAX + TP_USERNAME_MAX + 16];
    size_t out_len;
    size_t out_off;
    uint32_t events;
    int64_t deadline;            /* monotonic ms: timeout, or retry */
    uint32_t backoff;
    int failing;                 /* a failure was logged */
    enum cmd_kind cmd;
    uint64_t cmd_id;
    size_t rr;                   /* where the next target search starts */
} cli;

struct tpd_enforcer {
    int ep;
    int tfd;
    int change_fd;               /* the store's; -1 until watched */
    size_t ncli;
    cli c[TPD_MAX_CLI];
    char pw[TPD_CLI_PASSWORD_MAX + 1];
    size_t pwlen;
    uint32_t interval;           /* ms */
    int64_t next_tick;
    uint64_t changes;
    int changes_known;
    int scanning;
    int scan_full;
    size_t cursor;
    target *t;
    size_t nt;
    size_t cap;
    int full_logged;
    int stale_logged;
    int64_t down_since;          /* mono ms a CLI went down; 0: all up */
    int down_told;               /* the DOWN_LOUD_MS error was logged */
    /* for the scan callback */
    tpd *d;
    int64_t now_ms;
    int64_t now_s;
};

static int64_t
mono_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
tpd_cut_reason(int why)
{
    if (why == TPD_CUT_BUDGET)
        return "byte_budget";
    return tp_reason((tp_status)why);
}

/* The refusals that end a live session.  Anything else (stale policy,
 * out of memory, a clock oddity) leaves it alone. */
static int
cut_status(tp_status st)
{
    switch (st) {
    case TP_EMALFORMED:
    case TP_EEXPIRED:
    case TP_EUNKNOWNKID:
    case TP_ERETIRED:
    case TP_ETTL:
    case TP_EUNKNOWNREALM:
    case TP_EUNKNOWNUSER:
    case TP_EDISABLED:
    case TP_EREVOKED:
    case TP_EREALMKILLED:
    case TP_ECLIENTADDR:
    case TP_EQUOTA:
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* Targets                                                             */
/* ------------------------------------------------------------------ */

static target *
find_target(tpd_enforcer *e, uint64_t id)
{
    size_t i;

    for (i = 0; i < e->nt; i++)
        if (e->t[i].id == id)
            return &e->t[i];
    return NULL;
}

/* Start cancelling the session of ref for reason why.  0, or -1 when
 * the queue is full or memory short (logged). */
static int
enqueue(tpd_enforcer *e, const tpd_session_ref *ref, int why)
{
    char shown[160];
    target *t, *grown;
    size_t i, ncap;

    if (e->nt == e->cap) {
        if (e->cap >= TARGETS_MAX) {
            if (!e->full_logged)
                tpd_log(TP_LOG_WARN, "%d sessions are being cancelled "
                        "already; more wait for the next pass",
                        TARGETS_MAX);
            e->full_logged = 1;
            return -1;
        }
        ncap = e->cap == 0 ? 16 : e->cap * 2;
        grown = realloc(e->t, ncap * sizeof(*e->t));
        if (grown == NULL) {
            tpd_log(TP_LOG_ERROR, "out of memory queueing a cancellation");
            return -1;
        }
        e->t = grown;
        e->cap = ncap;
    }
    e->full_logged = 0;
    t = &e->t[e->nt++];
    memset(t, 0, sizeof(*t));
    t->id = ref->id;
    snprintf(t->realm, sizeof(t->realm), "%s", ref->realm);
    snprintf(t->user_id, sizeof(t->user_id), "%s", ref->user_id);
    snprintf(t->username, sizeof(t->username), "%s", ref->username);
    snprintf(t->client, sizeof(t->client), "%s", ref->client);
    t->why = why;
    t->started = ref->started;
    t->queued_at = e->now_ms;
    t->give_up_at = e->now_ms + GIVE_UP_MS;
    for (i = 0; i < e->ncli; i++) {
        t->st[i] = T_PROBE;
        t->next_at[i] = 0;
        t->delay[i] = RECHECK_MIN_MS;
    }
    *ref->mark = MARK_QUEUED;
    tpd_log(TP_LOG_DEBUG, "session %018" PRIu64 " refused (%s): "
            "cancelling; realm=%s user=%s", t->id, tpd_cut_reason(why),
            t->realm, tpd_escape(t->username, strlen(t->username), shown,
                                 sizeof(shown)));
    return 0;
}

/* Forget target t; the session (if still in the table) may be taken up
 * again RETARGET_MS from now. */
static void
drop_target(tpd_enforcer *e, target *t)
{
    tpd_session_ref ref;
    size_t i = (size_t)(t - e->t);

    if (tpd_sessions_find(e->d->sessions, t->id, &ref) == 0 &&
        strcmp(ref.username, t->username) == 0)
        *ref.mark = e->now_ms > 0 ? e->now_ms : 1;
    if (i + 1 < e->nt)
        e->t[i] = e->t[e->nt - 1];
    e->nt--;
}

/* Done when no CLI lists the session any more. */
static void
maybe_complete(tpd_enforcer *e, target *t)
{
    char shown[160];
    size_t i;

    for (i = 0; i < e->ncli; i++)
        if (t->st[i] != T_GONE)
            return;
    tpd_escape(t->username, strlen(t->username), shown, sizeof(shown));
    if (t->cs_sent > 0) {
        e->d->n.cancelled[t->why]++;
        tpd_log(TP_LOG_INFO, "cancelled session %018" PRIu64 ": realm=%s "
                "user=%s reason=%s client=%s (confirmed %" PRId64 " ms "
                "after the decision)", t->id, t->realm, shown,
                tpd_cut_reason(t->why), t->client[0] ? t->client : "-",
                e->now_ms - t->queued_at);
    } else {
        /* Gone already, or a session coturn forgot (restarted) whose
         * end we missed. */
        e->d->n.cancel_not_found++;
        tpd_log(TP_LOG_DEBUG, "session %018" PRIu64 " (realm=%s user=%s "
                "reason=%s) is not listed by coturn: nothing to cancel",
                t->id, t->realm, shown, tpd_cut_reason(t->why));
    }
    /* Either way coturn no longer has it: it leaves the live table now,
     * so it is decided (and cut) once, not every RETARGET_MS. */
    tpd_sessions_gone(e->d, t->id, t->username, e->now_s);
    drop_target(e, t);
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

/* -1 if the session may live, else why it may not. */
static int
decide(tpd_enforcer *e, const tpd_session_ref *r)
{
    char hexkey[TP_LTKEY_HEX_LEN + 1];
    tpd *d = e->d;
    int64_t t = e->now_s;
    tp_session_use use;
    tp_username un;
    tp_addr a;
    tp_status st;

    if (r->cred_expires <= e->now_s &&
        r->cred_expires > e->now_s - (int64_t)d->expiry_grace)
        t = r->cred_expires - 1; /* in its grace: decide as if valid */
    st = tp_store_key(d->store, r->realm, r->username, t, hexkey, &un,
                      NULL);
    OPENSSL_cleanse(hexkey, sizeof(hexkey));
    if (st == TP_OK) {
        /* The same rule as the key lookup, with what this node knows:
         * every byte of the user the snapshot lacks (two sessions may
         * spend the budget together) and the client address.  Not the
         * node-local count: a living session is over quota only when the
         * shared counter refused it (take_over_quota). */
        memset(&use, 0, sizeof(use));
        use.bytes = r->user_bytes;
        use.realm_bytes = r->realm_bytes;
        if (r->client[0] != '\0' &&
            tp_addr_parse(r->client, &a, NULL) == TP_OK)
            use.client = &a;
        st = tp_store_session_check(d->store, r->realm, r->user_id, &use,
                                    NULL);
    }
    if (st == TP_EBUDGET)
        return TPD_CUT_BUDGET;
    if (st == TP_ESTALE) {
        if (!e->stale_logged)
            tpd_log(TP_LOG_WARN, "policy stale: live sessions are not "
                    "re-decided until it is current again");
        e->stale_logged = 1;
        return -1;
    }
    if (st == TP_OK) {
        if (e->stale_logged)
            tpd_log(TP_LOG_INFO, "policy current: live sessions are "
                    "re-decided again");
        e->stale_logged = 0;
        return -1;
    }
    return cut_status(st) ? (int)st : -1;
}

static void
visit(void *ud, const tpd_session_ref *r)
{
    tpd_enforcer *e = ud;
    int again = 0, need, why;

    if (r->ended || *r->mark == MARK_QUEUED)
        return;
    if (*r->mark > 0) {
        if (e->now_ms - *r->mark < RETARGET_MS)
            return;
        again = 1; /* cancelled (or tried) and still reported live */
    }
    need = e->scan_full || *r->dirty || again ||
           r->cred_expires <= e->now_s - (int64_t)e->d->expiry_grace;
    *r->dirty = 0;
    if (!need)
        return;
    e->d->n.enforce_checks++;
    why = decide(e, r);
    if (why < 0) {
        *r->mark = 0;
        return;
    }
    if (enqueue(e, r, why) != 0)
        *r->dirty = 1; /* the next pass tries again */
}

static void
take_over_quota(tpd_enforcer *e)
{
    uint64_t ids[64];
    tpd_session_ref ref;
    size_t n, i;

    do {
        n = tpd_allocq_take_over_quota(e->d->allocq, ids, 64);
        for (i = 0; i < n; i++) {
            if (tpd_sessions_find(e->d->sessions, ids[i], &ref) != 0 ||
                ref.ended || *ref.mark == MARK_QUEUED)
                continue;
            (void)enqueue(e, &ref, TP_EQUOTA); /* full: logged */
        }
    } while (n == 64);
}

/* ------------------------------------------------------------------ */
/* CLI connections                                                     */
/* ------------------------------------------------------------------ */

static int
cli_events(tpd_enforcer *e, cli *c, uint32_t want)
{
    struct epoll_event ev;

    if (want == c->events)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.u32 = (uint32_t)(c - e->c);
    if (epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        tpd_log(TP_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    c->events = want;
    return 0;
}

static void
cli_reset(cli *c)
{
    OPENSSL_cleanse(c->out, sizeof(c->out));
    c->out_len = c->out_off = 0;
    tpd_buf_free(&c->in);
    c->iac = 0;
    c->cmd = CMD_NONE;
    c->events = 0;
}

/* Forget the decoded input (it stays NUL-terminated). */
static void
in_clear(cli *c)
{
    c->in.off = c->in.len = 0;
    if (c->in.data != NULL)
        c->in.data[0] = '\0';
}

static void cli_fail(tpd_enforcer *e, cli *c, int auth, const char *fmt,
                     ...) TPD_PRINTF(4, 5);

/* Close c and schedule a reconnection with backoff.  The first failure
 * of a streak is logged as a warning (auth: an error), the others at
 * debug level. */
static void
cli_fail(tpd_enforcer *e, cli *c, int auth, const char *fmt, ...)
{
    char msg[256];
    uint32_t max = auth ? AUTH_BACKOFF_MAX_MS : BACKOFF_MAX_MS;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->fd >= 0) {
        (void)epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
        if (close(c->fd) != 0)
            tpd_log(TP_LOG_DEBUG, "close: %s", strerror(errno));
    }
    c->fd = -1;
    cli_reset(c);
    c->state = C_DOWN;
    if (auth) {
        e->d->n.cli_auth_failed++;
        if (c->backoff < 5000)
            c->backoff = 5000; /* a password does not fix itself fast */
    }
    c->deadline = mono_ms() + c->backoff;
    c->backoff = c->backoff * 2 > max ? max : c->backoff * 2;
    e->d->n.cli_failures++;
    if (!c->failing)
        tpd_log(auth ? TP_LOG_ERROR : TP_LOG_WARN, "coturn CLI %s: %s; "
                "retrying (live sessions cannot be cancelled there "
                "meanwhile)%s", c->text, msg, auth ? "" : "; " CLI_HINT);
    else
        tpd_log(TP_LOG_DEBUG, "coturn CLI %s: %s", c->text, msg);
    c->failing = 1;
}

/* Send what is buffered; the buffer (which may hold the password) is
 * wiped once sent.  0, or -1 (c failed). */
static int
cli_flush(tpd_enforcer *e, cli *c)
{
    ssize_t n;

    while (c->out_off < c->out_len) {
        n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                 MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return cli_events(e, c, EPOLLIN | EPOLLOUT) == 0 ? 0 : -1;
        if (n <= 0) {
            cli_fail(e, c, 0, "send: %s",
                     n < 0 ? strerror(errno) : "nothing sent");
            return -1;
        }
        c->out_off += (size_t)n;
    }
    OPENSSL_cleanse(c->out, sizeof(c->out));
    c->out_len = c->out_off = 0;
    if (cli_events(e, c, EPOLLIN) != 0) {
        cli_fail(e, c, 0, "cannot watch the connection");
        return -1;
    }
    return 0;
}

/* Queue one line (the CRLF is added) and send it. */
static int
cli_line(tpd_enforcer *e, cli *c, const char *p, size_t n)
{
    if (n + 2 > sizeof(c->out)) {
        cli_fail(e, c, 0, "command too long");
        return -1;
    }
    memcpy(c->out, p, n);
    memcpy(c->out + n, "\r\n", 2);
    c->out_len = n + 2;
    c->out_off = 0;
    in_clear(c);
    return cli_flush(e, c);
}

static void
cli_connect(tpd_enforcer *e, cli *c, int64_t now)
{
    struct epoll_event ev;
    int fd, rc;

    fd = socket(c->addr.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cli_fail(e, c, 0, "socket: %s", strerror(errno));
        return;
    }
    c->fd = fd;
    cli_reset(c);
    rc = connect(fd, (const struct sockaddr *)&c->addr, c->alen);
    if (rc != 0 && errno != EINPROGRESS) {
        cli_fail(e, c, 0, "connect: %s", strerror(errno));
        return;
    }
    c->state = rc == 0 ? C_GREETING : C_CONNECTING;
    c->deadline = now + CONNECT_TIMEOUT_MS;
    memset(&ev, 0, sizeof(ev));
    ev.events = rc == 0 ? EPOLLIN : EPOLLOUT;
    ev.data.u32 = (uint32_t)(c - e->c);
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        cli_fail(e, c, 0, "epoll_ctl: %s", strerror(errno));
        return;
    }
    c->events = ev.events;
}

/* Does the decoded input end with coturn's prompt "> " (at the start of
 * a line)?  Usernames cannot hold a newline, so no listed line can. */
static int
at_prompt(const tpd_buf *in)
{
    const char *p = in->data + in->off;
    size_t n = tpd_buf_pending(in);

    return n >= 2 && p[n - 2] == '>' && p[n - 1] == ' ' &&
           (n == 2 || p[n - 3] == '\n');
}

/* Telnet-decode n bytes into c->in (IAC sequences and NULs dropped),
 * keeping it NUL-terminated.  0, or -1 if it grew past IN_MAX. */
static int
cli_decode(cli *c, const unsigned char *p, size_t n)
{
    char tmp[4096];
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char ch = p[i];

        switch (c->iac) {
        case 0:
            if (ch == 255)
                c->iac = 1;
            else if (ch != 0)
                tmp[o++] = (char)ch;
            break;
        case 1: /* after IAC */
            if (ch == 255) {
                tmp[o++] = (char)ch;
                c->iac = 0;
            } else if (ch >= 251 && ch <= 254) {
                c->iac = 2;           /* WILL/WONT/DO/DONT <opt> */
            } else if (ch == 250) {
                c->iac = 3;           /* SB ... IAC SE */
            } else {
                c->iac = 0;
            }
            break;
        case 2:
            c->iac = 0;
            break;
        case 3:
            if (ch == 255)
                c->iac = 4;
            break;
        default: /* 4: IAC inside SB */
            c->iac = ch == 240 ? 0 : 3;
            break;
        }
    }
    if (tpd_buf_pending(&c->in) + o > IN_MAX)
        return -1;
    if (tpd_buf_append(&c->in, tmp, o) != 0 ||
        tpd_buf_append(&c->in, "", 1) != 0)
        return -1;
    c->in.len--; /* keep the NUL out of the length */
    return 0;
}

void
tpd_cli_parse_ps(const char *s, uint64_t id, int *found, uint64_t *listed,
                 uint64_t *total)
{
    const char *line, *p, *colon;
    uint64_t v;

    *found = 0;
    *listed = *total = 0;
    for (line = s; line != NULL && *line != '\0';
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        for (p = line; *p == ' ' || *p == '\t'; p++)
            ;
        if (strncmp(p, "Total sessions", 14) == 0) {
            colon = strchr(p, ':');
            if (colon != NULL)
                *total = strtoull(colon + 1, NULL, 10);
            continue;
        }
        if (*p < '0' || *p > '9')
            continue;
        while (*p >= '0' && *p <= '9')
            p++;
        if (strncmp(p, ") id=", 5) != 0)
            continue;
        p += 5;
        if (*p < '0' || *p > '9')
            continue;
        v = 0;
        while (*p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10)
            v = v * 10 + (uint64_t)(*p++ - '0');
        (*listed)++;
        if (v == id)
            *found = 1;
    }
}

/* The prompt came back after c->cmd. */
static void
cli_reply(tpd_enforcer *e, cli *c, int64_t now)
{
    size_t ci = (size_t)(c - e->c);
    uint64_t listed, total;
    target *t = find_target(e, c->cmd_id);
    enum cmd_kind kind = c->cmd;
    int found;

    c->state = C_IDLE;
    c->cmd = CMD_NONE;
    if (t == NULL)
        return; /* given up meanwhile */
    if (kind == CMD_PS) {
        tpd_cli_parse_ps(c->in.data + c->in.off, t->id, &found, &listed,
                         &total);
        if (found && t->cs_sent > 0 && t->delay[ci] < RECHECK_MAX_MS) {
            /* `cs` takes a moment: look again before saying it twice */
            t->st[ci] = T_RECHECK;
            t->next_at[ci] = now + t->delay[ci];
            t->delay[ci] = t->delay[ci] * 2 > RECHECK_MAX_MS
                               ? RECHECK_MAX_MS
                               : t->delay[ci] * 2;
        } else if (found || (total > listed && e->ncli == 1)) {
            t->st[ci] = T_CANCEL;
            t->next_at[ci] = 0;
        } else if (total > listed ||
                   (t->cs_sent == 0 && e->now_s - t->started < YOUNG_S)) {
            /* listing cut at cli-max-output-sessions, or a session
             * reported a moment ago that coturn's CLI may not show
             * yet: cannot tell, ask again */
            t->st[ci] = T_RECHECK;
            t->next_at[ci] = now + t->delay[ci];
            t->delay[ci] = t->delay[ci] * 2 > RECHECK_MAX_MS
                               ? RECHECK_MAX_MS
                               : t->delay[ci] * 2;
        } else {
            t->st[ci] = T_GONE;
        }
    } else {
        t->cs_sent++;
        e->d->n.cancel_commands++;
        t->st[ci] = T_RECHECK;
        t->next_at[ci] = now + t->delay[ci];
        t->delay[ci] = t->delay[ci] * 2 > RECHECK_MAX_MS
                           ? RECHECK_MAX_MS
                           : t->delay[ci] * 2;
    }
    maybe_complete(e, t);
}

static void
cli_input(tpd_enforcer *e, cli *c, int64_t now)
{
    const char *in = c->in.data != NULL ? c->in.data + c->in.off : "";

    switch (c->state) {
    case C_GREETING:
        if (strstr(in, "Enter password:") != NULL) {
            c->state = C_AUTH;
            c->deadline = now + CMD_TIMEOUT_MS;
            (void)cli_line(e, c, e->pw, e->pwlen);
        } else if (at_prompt(&c->in)) {
            c->state = C_IDLE; /* no password asked (not coturn 4.6.1) */
        }
        break;
    case C_AUTH:
        if (strstr(in, "Enter password:") != NULL) {
            cli_fail(e, c, 1, "the password in coturn_cli_password_file "
                     "was refused (cli-password in turnserver.conf)");
        } else if (at_prompt(&c->in)) {
            tpd_log(TP_LOG_INFO, "coturn CLI %s: connected%s", c->text,
                    c->failing ? " again" : "");
            c->failing = 0;
            c->backoff = BACKOFF_MIN_MS;
            c->state = C_IDLE;
            in_clear(c);
        }
        break;
    case C_BUSY:
        if (at_prompt(&c->in)) {
            cli_reply(e, c, now);
            in_clear(c);
        }
        break;
    default:
        in_clear(c); /* nothing was asked */
        break;
    }
}

static void
cli_io(tpd_enforcer *e, cli *c, uint32_t events, int64_t now)
{
    unsigned char buf[4096];
    socklen_t len = sizeof(int);
    int soerr = 0, i;
    ssize_t n;

    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            soerr = errno;
        if (soerr != 0) {
            cli_fail(e, c, 0, "connect: %s", strerror(soerr));
            return;
        }
        c->state = C_GREETING;
        c->deadline = now + CMD_TIMEOUT_MS;
        if (cli_events(e, c, EPOLLIN) != 0)
            cli_fail(e, c, 0, "cannot watch the connection");
        return;
    }
    if ((events & EPOLLOUT) && cli_flush(e, c) != 0)
        return;
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    for (i = 0; i < 16; i++) {
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            cli_fail(e, c, 0, "%s", n == 0 ? "closed by coturn"
                                          : strerror(errno));
            return;
        }
        if (cli_decode(c, buf, (size_t)n) != 0) {
            cli_fail(e, c, 0, "reply larger than %d bytes", IN_MAX);
            return;
        }
    }
    cli_input(e, c, now);
}

/* An idle CLI takes the next target that has work for it. */
static void
cli_next(tpd_enforcer *e, cli *c, int64_t now)
{
    size_t ci = (size_t)(c - e->c), k, idx;
    char line[TP_USERNAME_MAX + 32];
    target *t;
    int n;

    for (k = 0; k < e->nt; k++) {
        idx = (c->rr + k) % e->nt;
        t = &e->t[idx];
        if (t->st[ci] == T_GONE || t->next_at[ci] > now)
            continue;
        c->rr = idx + 1;
        if (t->st[ci] == T_CANCEL) {
            c->cmd = CMD_CS;
            n = snprintf(line, sizeof(line), "cs %018" PRIu64, t->id);
        } else {
            c->cmd = CMD_PS;
            n = snprintf(line, sizeof(line), "ps %s", t->username);
        }
        if (n < 0 || (size_t)n >= sizeof(line))
            return;
        c->cmd_id = t->id;
        c->state = C_BUSY;
        c->deadline = now + CMD_TIMEOUT_MS;
        (void)cli_line(e, c, line, (size_t)n);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* The enforcer                                                        */
/* ------------------------------------------------------------------ */

static void
arm(tpd_enforcer *e, int64_t now)
{
    struct itimerspec its;
    int64_t when = e->next_tick;
    size_t i, k;
    cli *c;

    if (e->scanning)
        when = now;
    for (i = 0; i < e->ncli; i++) {
        c = &e->c[i];
        if (c->state != C_IDLE) {
            if (c->deadline < when)
                when = c->deadline;
            continue;
        }
        for (k = 0; k < e->nt; k++)
            if (e->t[k].st[i] != T_GONE && e->t[k].next_at[i] < when)
                when = e->t[k].next_at[i];
    }
    for (k = 0; k < e->nt; k++)
        if (e->t[k].give_up_at < when)
            when = e->t[k].give_up_at;
    if (when <= now)
        when = now + 1;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(when / 1000);
    its.it_value.tv_nsec = (long)(when % 1000) * 1000000L;
    if (timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        tpd_log(TP_LOG_ERROR, "timerfd_settime: %s", strerror(errno));
}

/* Say loudly, once per outage, when some CLI has not been logged in for
 * DOWN_LOUD_MS (from start, too: coturn starts after turnpolicyd, so a
 * short wait is normal), and when all are back. */
static void
watch_up(tpd_enforcer *e, int64_t now)
{
    size_t i, up = 0;

    for (i = 0; i < e->ncli; i++)
        if (e->c[i].state == C_IDLE || e->c[i].state == C_BUSY)
            up++;
    if (up == e->ncli) {
        if (e->down_told)
            tpd_log(TP_LOG_INFO, "coturn CLI: all %zu logged in again; "
                    "live sessions are enforced", e->ncli);
        e->down_since = 0;
        e->down_told = 0;
        return;
    }
    if (e->down_since == 0)
        e->down_since = now;
    if (!e->down_told && now - e->down_since >= DOWN_LOUD_MS) {
        tpd_log(TP_LOG_ERROR, "the session enforcer reaches %zu of %zu "
                "coturn CLI endpoints after %d s: revocation, expiry and "
                "budgets do not cut live sessions there; %s", up, e->ncli,
                DOWN_LOUD_MS / 1000, CLI_HINT);
        e->down_told = 1;
    }
}

static void
tick(tpd_enforcer *e)
{
    tp_store_info si;

    take_over_quota(e);
    tpd_sessions_prune(e->d->sessions,
                       tp_store_usage_included(e->d->store));
    tp_store_info_get(e->d->store, &si);
    if (!e->changes_known || si.changes != e->changes) {
        /* policy changed: everything, from the start */
        e->changes = si.changes;
        e->changes_known = 1;
        e->scanning = 1;
        e->scan_full = 1;
        e->cursor = 0;
    } else if (!e->scanning) {
        e->scanning = 1;
        e->scan_full = 0;
        e->cursor = 0;
    }
}

void
tpd_enforcer_run(tpd_enforcer *e, tpd *d)
{
    struct epoll_event evs[TPD_MAX_CLI + 2];
    char shown[160];
    uint64_t expirations;
    int64_t now;
    size_t i, k, gave_up = 0;
    int n, changed = 0;

    e->d = d;
    n = epoll_wait(e->ep, evs, TPD_MAX_CLI + 2, 0);
    if (n < 0 && errno != EINTR)
        tpd_log(TP_LOG_ERROR, "epoll_wait (enforcer): %s", strerror(errno));
    e->now_ms = now = mono_ms();
    e->now_s = tp_now();
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        if (evs[i].data.u32 == TIMER_TAG) {
            if (read(e->tfd, &expirations, sizeof(expirations)) < 0 &&
                errno != EAGAIN)
                tpd_log(TP_LOG_DEBUG, "timerfd: %s", strerror(errno));
        } else if (evs[i].data.u32 == CHANGE_TAG) {
            /* the policy moved: decide again now, not at the next tick */
            if (read(e->change_fd, &expirations, sizeof(expirations)) < 0 &&
                errno != EAGAIN)
                tpd_log(TP_LOG_DEBUG, "change fd: %s", strerror(errno));
            changed = 1;
        } else if (evs[i].data.u32 < e->ncli) {
            cli_io(e, &e->c[evs[i].data.u32], evs[i].events, now);
        }
    }
    e->now_ms = now = mono_ms();
    e->now_s = tp_now();
    for (i = 0; i < e->ncli; i++) {
        cli *c = &e->c[i];

        if (c->state == C_DOWN && now >= c->deadline)
            cli_connect(e, c, now);
        else if (c->state != C_DOWN && c->state != C_IDLE &&
                 now >= c->deadline)
            cli_fail(e, c, 0, "no answer within %d ms",
                     c->state == C_CONNECTING ? CONNECT_TIMEOUT_MS
                                              : CMD_TIMEOUT_MS);
    }
    watch_up(e, now);
    if (changed || now >= e->next_tick) {
        tick(e);
        e->next_tick = now + e->interval;
    }
    if (e->scanning &&
        tpd_sessions_scan(d->sessions, &e->cursor, SCAN_CHUNK, visit, e))
        e->scanning = 0;
    for (k = 0; k < e->nt;) {
        target *t = &e->t[k];

        if (now < t->give_up_at) {
            k++;
            continue;
        }
        d->n.cancel_gave_up++;
        /* One warning per pass, however many (a CLI down during a kill
         * switch would otherwise log every session). */
        if (gave_up++ == 0)
            tpd_log(TP_LOG_WARN, "session %018" PRIu64 " (realm=%s "
                    "user=%s reason=%s): cancellation not confirmed "
                    "within %d s; trying again later", t->id, t->realm,
                    tpd_escape(t->username, strlen(t->username), shown,
                               sizeof(shown)),
                    tpd_cut_reason(t->why), GIVE_UP_MS / 1000);
        drop_target(e, t); /* moves the last one into k */
    }
    if (gave_up > 1)
        tpd_log(TP_LOG_WARN, "... and %zu more cancellations not "
                "confirmed", gave_up - 1);
    for (i = 0; i < e->ncli; i++)
        if (e->c[i].state == C_IDLE)
            cli_next(e, &e->c[i], now);
    arm(e, now);
}

tpd_enforcer *
tpd_enforcer_new(const tpd_enforce_options *o)
{
    struct epoll_event ev;
    tpd_enforcer *e;
    size_t i;

    if (o->ncli == 0 || o->ncli > TPD_MAX_CLI || o->pwlen == 0 ||
        o->pwlen > TPD_CLI_PASSWORD_MAX) {
        tpd_log(TP_LOG_ERROR, "enforcer: bad options");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        tpd_log(TP_LOG_ERROR, "out of memory");
        return NULL;
    }
    e->ep = e->tfd = e->change_fd = -1;
    for (i = 0; i < TPD_MAX_CLI; i++)
        e->c[i].fd = -1;
    e->ncli = o->ncli;
    memcpy(e->pw, o->password, o->pwlen);
    e->pwlen = o->pwlen;
    e->interval = o->interval_ms;
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    if (e->ep < 0) {
        tpd_log(TP_LOG_ERROR, "epoll_create1: %s", strerror(errno));
        goto fail;
    }
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (e->tfd < 0) {
        tpd_log(TP_LOG_ERROR, "timerfd_create: %s", strerror(errno));
        goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = TIMER_TAG;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->tfd, &ev) != 0) {
        tpd_log(TP_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    for (i = 0; i < e->ncli; i++) {
        cli *c = &e->c[i];

        c->addr = o->cli[i];
        c->alen = o->cli_len[i];
        snprintf(c->text, sizeof(c->text), "%s", o->cli_text[i]);
        c->state = C_DOWN;
        c->deadline = 0; /* connect on the first run */
        c->backoff = BACKOFF_MIN_MS;
    }
    e->next_tick = mono_ms();
    e->down_since = e->next_tick; /* down until logged in */
    arm(e, e->next_tick);
    return e;

fail:
    tpd_enforcer_free(e);
    return NULL;
}

void
tpd_enforcer_free(tpd_enforcer *e)
{
    size_t i;

    if (e == NULL)
        return;
    for (i = 0; i < TPD_MAX_CLI; i++) {
        if (e->c[i].fd >= 0 && close(e->c[i].fd) != 0)
            tpd_log(TP_LOG_DEBUG, "close: %s", strerror(errno));
        cli_reset(&e->c[i]);
    }
    if (e->tfd >= 0)
        (void)close(e->tfd);
    if (e->ep >= 0)
        (void)close(e->ep);
    free(e->t);
    OPENSSL_cleanse(e, sizeof(*e));
    free(e);
}

int
tpd_enforcer_watch(tpd_enforcer *e, int fd)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = CHANGE_TAG;
    if (fd < 0 || epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        tpd_log(TP_LOG_ERROR, "enforcer: cannot watch the policy's "
                "changes (%s); deciding every enforce_interval only",
                fd < 0 ? "no descriptor" : strerror(errno));
        return -1;
    }
    e->change_fd = fd;
    return 0;
}

int
tpd_enforcer_fd(const tpd_enforcer *e)
{
    return e->ep;
}

void
tpd_enforcer_status_get(const tpd_enforcer *e, tpd_enforcer_status *o)
{
    size_t i;

    memset(o, 0, sizeof(*o));
    if (e == NULL)
        return;
    o->cli_total = e->ncli;
    o->pending = e->nt;
    for (i = 0; i < e->ncli; i++)
        if (e->c[i].state == C_IDLE || e->c[i].state == C_BUSY)
            o->cli_up++;
    if (e->down_since != 0)
        o->down_ms = mono_ms() - e->down_since;
    o->loud = e->down_told;
}
