/*
 * turnpolicyd.h - what the files of turnpolicyd share.
 *
 * turnpolicyd is the endpoint an unmodified coturn 4.6.1 uses as its
 * `redis-userdb` and `redis-statsdb`: it speaks the subset of the Redis
 * protocol coturn sends and answers from libturnpolicy's policy store.
 * One event-loop thread owns every socket (coturn's admin CLI included),
 * the session table and the counters; one worker thread does the
 * blocking Redis calls of the live allocation counters
 * (tp_store_alloc_batch, pipelined) so that no Redis latency ever reaches
 * a key lookup.
 *
 *   turnpolicyd.c  configuration, sockets, epoll loop, signals, main()
 *   resp.c         request parser (hiredis redisReader with our own object
 *                  functions) and reply encoders
 *   commands.c     the commands: AUTH, GET, KEYS, SMEMBERS, SET, PUBLISH...
 *   sessions.c     coturn's statsdb events -> table of live sessions ->
 *                  usage records; the allocation-counter worker
 *   enforce.c      re-decides live sessions and cancels the refused ones
 *                  through coturn's admin CLI (`cs <id>`, confirmed by
 *                  `ps <user>`)
 *   metrics.c      counters in Prometheus text format
 *
 * Invariants: nothing here logs a password (AUTH, CLI), secret,
 * credential password or long-term key; usernames are logged only
 * escaped (tpd_escape).
 * Everything except the worker's queue belongs to the loop thread.
 */
#ifndef TURNPOLICYD_H
#define TURNPOLICYD_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include "turnpolicy.h"

#if defined(__GNUC__)
#define TPD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TPD_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------ */
/* Logging (stderr; journald understands the <N> prefixes)             */
/* ------------------------------------------------------------------ */

void tpd_log_init(tp_log_level max);
void tpd_log(tp_log_level level, const char *fmt, ...) TPD_PRINTF(2, 3);
int tpd_log_enabled(tp_log_level level);
/* Write the summaries of call sites whose lines were held back by the
 * flood control (at most LOG_BURST per LOG_WINDOW s each) once their
 * window is over.  Called from the loop's tick. */
void tpd_log_flush(void);
/* A tp_log_fn for the library (ud unused). */
void tpd_lib_log(void *ud, tp_log_level level, const char *msg);
/* Copy s (n bytes) into out as printable ASCII: other bytes become \xNN,
 * cut with "..." to fit cap.  For usernames and keys in log lines. */
const char *tpd_escape(const char *s, size_t n, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Byte buffers and RESP replies                                       */
/* ------------------------------------------------------------------ */

/* data[off..len) is what is still to be sent. */
typedef struct tpd_buf {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
} tpd_buf;

/* All return 0, or -1 when memory is exhausted (the buffer is then
 * unchanged). */
int tpd_buf_append(tpd_buf *b, const void *p, size_t n);
int tpd_buf_printf(tpd_buf *b, const char *fmt, ...) TPD_PRINTF(2, 3);
void tpd_buf_consume(tpd_buf *b, size_t n);
void tpd_buf_free(tpd_buf *b);
size_t tpd_buf_pending(const tpd_buf *b);

int tpd_reply_status(tpd_buf *b, const char *s);      /* +s */
int tpd_reply_error(tpd_buf *b, const char *s);       /* -s */
int tpd_reply_int(tpd_buf *b, long long v);           /* :v */
int tpd_reply_bulk(tpd_buf *b, const char *p, size_t n);
int tpd_reply_cstr(tpd_buf *b, const char *s);        /* bulk of a string */
int tpd_reply_nil(tpd_buf *b);                        /* $-1 */
int tpd_reply_array(tpd_buf *b, size_t n);            /* *n header */

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

#define TPD_MAX_ARGS 16

/* One command: an array of 1..TPD_MAX_ARGS bulk strings.  Each argv[i]
 * is NUL-terminated after len[i] bytes (it may hold NULs itself). */
typedef struct tpd_request {
    int argc;
    int expected;
    size_t bytes;
    char *argv[TPD_MAX_ARGS];
    size_t len[TPD_MAX_ARGS];
} tpd_request;

typedef struct tpd_parser tpd_parser;

enum {
    TPD_PARSE_MORE = 0,      /* no complete request buffered */
    TPD_PARSE_REQUEST = 1,   /* *out holds one */
    TPD_PARSE_ERROR = -1,    /* not a Redis request: close */
    TPD_PARSE_TOO_LARGE = -2 /* buffered request above max_request */
};

/* NULL when out of memory. */
tpd_parser *tpd_parser_new(size_t max_request);
void tpd_parser_free(tpd_parser *p);
/* 0, or -1 when out of memory (or after a protocol error hiredis's
 * reader latched).  After TPD_PARSE_TOO_LARGE bytes are still accepted
 * and ignored; tpd_parser_next keeps returning the error either way. */
int tpd_parser_feed(tpd_parser *p, const char *buf, size_t n);
/* Next complete request (caller frees it with tpd_request_free), or
 * one of TPD_PARSE_*.  After an error every call returns that error. */
int tpd_parser_next(tpd_parser *p, tpd_request **out);
void tpd_request_free(tpd_request *rq);

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

/* Why a live session was cancelled: a tp_status (tp_reason names it:
 * revoked, expired, user_disabled, client_address_denied, quota_reached,
 * ...) or TPD_CUT_BUDGET ("byte_budget"). */
#define TPD_CUT_BUDGET ((int)TP_STATUS_COUNT_)
#define TPD_CUT_SLOTS (TP_STATUS_COUNT_ + 1)

typedef struct tpd_counters {
    uint64_t decisions[TP_STATUS_COUNT_]; /* key lookups by tp_status
                                     (TP_OK: a key was served) */
    uint64_t key_malformed;      /* GET .../key we could not even parse */
    uint64_t keys_confirmed;     /* served keys that became a session */
    uint64_t keys_abandoned;     /* ... that did not within KEY_WINDOW */
    uint64_t commands;
    uint64_t unknown_commands;
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t noauth;
    uint64_t protocol_errors;
    uint64_t too_large;
    uint64_t conns_accepted;
    uint64_t conns_refused;
    uint64_t conns_open;
    uint64_t statsdb_events;
    uint64_t statsdb_ignored;
    uint64_t statsdb_unattributed; /* reports of no allocation we know */
    uint64_t sessions_started;
    uint64_t sessions_adopted;   /* first seen after their "new" event */
    uint64_t sessions_finished;
    uint64_t sessions_lapsed;    /* never reported deleted */
    uint64_t sessions_dropped;   /* table full */
    uint64_t usage_recorded;
    uint64_t usage_failed;
    uint64_t cached_answers;     /* peer/origin lists served from the
                                    last good answer (store stale) */
    /* enforcement (enforce.c) */
    uint64_t cancelled[TPD_CUT_SLOTS]; /* confirmed gone, by reason */
    uint64_t enforce_checks;     /* live sessions re-decided */
    uint64_t cancel_commands;    /* `cs` sent */
    uint64_t cancel_not_found;   /* refused, but no coturn listed it */
    uint64_t cancel_gave_up;     /* not confirmed within the deadline */
    uint64_t cli_failures;       /* CLI connections failed or lost */
    uint64_t cli_auth_failed;    /* CLI refused our password */
} tpd_counters;

/* Written by the allocation worker, read by the loop: under q->mu. */
typedef struct tpd_alloc_counters {
    uint64_t acquired;
    uint64_t over_quota;
    uint64_t released;
    uint64_t errors;
    uint64_t dropped;            /* queue full */
    uint64_t batches;            /* round trips to Redis */
} tpd_alloc_counters;

/* ------------------------------------------------------------------ */
/* The daemon                                                          */
/* ------------------------------------------------------------------ */

typedef struct tpd_sessions tpd_sessions;
typedef struct tpd_allocq tpd_allocq;
typedef struct tpd_cache tpd_cache;
typedef struct tpd_enforcer tpd_enforcer;

typedef struct tpd {
    tp_store *store;
    char node[256];
    unsigned char pw_digest[32];  /* SHA-256 of the AUTH password */
    uint32_t expiry_grace;        /* seconds a session may outlive its
                                     credential (enforce.c) */
    uint32_t alloc_slack;         /* seconds added to counter TTLs */
    tpd_counters n;
    tpd_sessions *sessions;
    tpd_allocq *allocq;
    tpd_cache *cache;             /* last good list answers (commands.c) */
    tpd_enforcer *enforcer;       /* NULL: no coturn_cli configured */
    int64_t started;              /* Unix seconds */
} tpd;

/* Per-connection protocol state the commands see. */
typedef struct tpd_client {
    int authed;
    unsigned auth_failures;
    int close_after_reply;        /* set by QUIT and repeated bad AUTH */
    int report;                   /* set by tpd_command when the request
                                     was a statsdb report (SET, PUBLISH,
                                     DEL of a session key): its reply may
                                     wait (see turnpolicyd.c) */
} tpd_client;

/* Run one request, appending its reply to out.  Returns 0, or -1 when
 * out of memory (the connection is then closed). */
int tpd_command(tpd *d, tpd_client *c, const tpd_request *rq, tpd_buf *out);
/* Free the answers tpd_command cached.  NULL ok. */
void tpd_cache_free(tpd_cache *c);

/* Sessions (sessions.c).  NULL when out of memory. */
tpd_sessions *tpd_sessions_new(size_t max_sessions);
void tpd_sessions_free(tpd_sessions *s);
size_t tpd_sessions_live(const tpd_sessions *s);
/* One coturn statsdb report, taken apart (tpd_report_parse): the key
 * turn/realm/<realm>/user/<username>/allocation/<id>/<kind> and what
 * the value says for that kind. */
enum {
    TPD_REPORT_STATUS,          /* .../status */
    TPD_REPORT_TRAFFIC,         /* .../traffic: a delta */
    TPD_REPORT_TRAFFIC_PEER,    /* .../traffic/peer */
    TPD_REPORT_TOTAL,           /* .../total_traffic: the totals */
    TPD_REPORT_TOTAL_PEER       /* .../total_traffic/peer */
};
enum {
    TPD_STATUS_OTHER,           /* not a status we act on */
    TPD_STATUS_NEW,             /* "new lifetime=N, ..., remote=IP:P" */
    TPD_STATUS_REFRESHED,       /* "refreshed lifetime=N, ..." */
    TPD_STATUS_DELETED          /* "deleted" */
};
typedef struct tpd_report {
    char realm[TP_REALM_MAX + 1];
    char username[TP_USERNAME_MAX + 1];
    tp_username un;             /* username, parsed */
    uint64_t id;                /* coturn's session id */
    int kind;                   /* TPD_REPORT_* */
    int status;                 /* TPD_STATUS_* (kind STATUS) */
    uint64_t lifetime;          /* new, refreshed: seconds, <= 7 days */
    char client[64];            /* new, refreshed: the client IP, or "" */
    int has_traffic;            /* traffic kinds: rcvb and sentb found */
    uint64_t rcvb, sentb;
} tpd_report;
/* Take a report apart; val is NUL-terminated.  0 (r filled), or -1
 * when it is not about a username turnpolicy could have issued (a
 * malformed key, realm or username).  Pure: no table, no I/O. */
int tpd_report_parse(const char *key, size_t klen, const char *val,
                     tpd_report *r);
/* One statsdb event: key and value of a PUBLISH (or SET) coturn sent.
 * Returns 1 if it was a session event, 0 if ignored. */
int tpd_stats_event(tpd *d, const char *key, size_t klen, const char *val,
                    size_t vlen, int64_t now);
/* What a decision about (realm, user_id) adds to the policy snapshot:
 * *live, its sessions on this node not reported deleted, and *bytes, the
 * client-side bytes the snapshot's budget sums lack (its sessions in the
 * table, and finished ones whose usage records are numbered above
 * included = tp_store_usage_included()).  One hash probe. */
void tpd_sessions_user(tpd_sessions *s, uint64_t included, const char *realm,
                       const char *user_id, size_t *live, uint64_t *bytes,
                       uint64_t *realm_bytes);
/* Forget the bytes of usage records numbered up to included (the
 * snapshot has them). */
void tpd_sessions_prune(tpd_sessions *s, uint64_t included);
/* What the enforcer sees of a live session.  The strings and pointers
 * are valid until the table changes (the next statsdb event or sweep). */
typedef struct tpd_session_ref {
    uint64_t id;                 /* coturn's session id */
    const char *realm;
    const char *user_id;
    const char *username;        /* the whole credential username */
    const char *client;          /* client IP ("" if not reported) */
    uint64_t bytes;              /* client side, in + out, as reported */
    uint64_t user_bytes;         /* the same for all the user's sessions
                                    in the table plus its finished ones
                                    the snapshot lacks (see
                                    tpd_sessions_user) */
    uint64_t realm_bytes;        /* the same for all the realm's users */
    int64_t cred_expires;        /* the credential's expiry, Unix s */
    int64_t started;             /* first reported, Unix s */
    int ended;                   /* coturn reported it deleted */
    unsigned char *dirty;        /* set on "new" and traffic reports;
                                    the enforcer clears it */
    int64_t *mark;               /* the enforcer's; 0 when created */
} tpd_session_ref;
typedef void (*tpd_session_fn)(void *ud, const tpd_session_ref *ref);
/* Visit sessions bucket by bucket from *cursor until at least budget were
 * visited or the table ends.  Returns 1 (and *cursor = 0) at the end,
 * else 0 with *cursor where to go on.  fn must not change the table. */
int tpd_sessions_scan(tpd_sessions *s, size_t *cursor, size_t budget,
                      tpd_session_fn fn, void *ud);
/* The session with this id: 0 and *ref filled, or -1. */
int tpd_sessions_find(tpd_sessions *s, uint64_t id, tpd_session_ref *ref);
/* coturn's CLI confirmed it does not list session id (of username): it
 * ends now (no longer live, its shared counter released); its usage is
 * recorded when coturn's totals come or a few seconds later. */
void tpd_sessions_gone(tpd *d, uint64_t id, const char *username,
                       int64_t now);
/* A key for username (realm) was served to coturn at now: remembered a
 * few seconds for the metrics of what became of it (keys_confirmed,
 * keys_abandoned).  Loop thread. */
void tpd_sessions_key_served(tpd *d, const char *realm,
                             const char *username, int64_t now);
/* Finish what is finished: deleted sessions whose totals did not come
 * within a few seconds, and sessions past their lifetime.  all != 0 (at
 * shutdown): every deleted session now. */
void tpd_sessions_sweep(tpd *d, int64_t now, int all);

/* Allocation-counter worker (sessions.c). */
tpd_allocq *tpd_allocq_new(tp_store *st, size_t cap);
/* Stop after the queued work or timeout_ms, join, free.  NULL ok. */
void tpd_allocq_free(tpd_allocq *q, int timeout_ms);
/* Queue an acquire (ttl > 0) or a release (ttl == 0) of session id
 * (counter id sid); never blocks. */
void tpd_allocq_push(tpd_allocq *q, const char *realm, const char *user_id,
                     const char *sid, uint64_t id, uint32_t ttl);
void tpd_allocq_counters(tpd_allocq *q, tpd_alloc_counters *out);
/* Move into ids (at most cap) the sessions whose acquire was refused
 * over quota since the last call; returns how many. */
size_t tpd_allocq_take_over_quota(tpd_allocq *q, uint64_t *ids,
                                  size_t cap);

/* In a reply of coturn's CLI to `ps <name>`: is id listed (*found), how
 * many sessions are listed and the "Total sessions" it gives.  s is
 * NUL-terminated; pure. */
void tpd_cli_parse_ps(const char *s, uint64_t id, int *found,
                      uint64_t *listed, uint64_t *total);

/* Enforcer (enforce.c): loop thread only. */
#define TPD_MAX_CLI 8
#define TPD_CLI_PASSWORD_MAX 128  /* coturn's CLI_PASSWORD_LENGTH - 1 */

typedef struct tpd_enforce_options {
    size_t ncli;                          /* 1..TPD_MAX_CLI */
    struct sockaddr_storage cli[TPD_MAX_CLI];
    socklen_t cli_len[TPD_MAX_CLI];
    char cli_text[TPD_MAX_CLI][80];       /* for log lines */
    const char *password;                 /* pwlen bytes; copied */
    size_t pwlen;
    uint32_t interval_ms;                 /* periodic re-decision */
} tpd_enforce_options;

typedef struct tpd_enforcer_status {
    size_t cli_up;                        /* authenticated connections */
    size_t cli_total;
    size_t pending;                       /* sessions being cancelled */
    int64_t down_ms;                      /* some CLI not logged in since */
    int loud;                             /* down long enough to alarm */
} tpd_enforcer_status;

/* Start connecting to every CLI.  NULL (logged) on failure. */
tpd_enforcer *tpd_enforcer_new(const tpd_enforce_options *o);
/* Close the connections, wipe the password, free.  NULL ok. */
void tpd_enforcer_free(tpd_enforcer *e);
/* Decide live sessions again as soon as fd (tp_store_change_fd) is
 * readable, instead of at the next enforce_interval tick.  0, or -1
 * (logged: the periodic tick still works). */
int tpd_enforcer_watch(tpd_enforcer *e, int fd);
/* One descriptor for the event loop: when it is readable, call
 * tpd_enforcer_run. */
int tpd_enforcer_fd(const tpd_enforcer *e);
void tpd_enforcer_run(tpd_enforcer *e, tpd *d);
void tpd_enforcer_status_get(const tpd_enforcer *e, tpd_enforcer_status *o);
/* The label of a cancellation reason (a tp_status or TPD_CUT_BUDGET). */
const char *tpd_cut_reason(int why);

/* Metrics (metrics.c): Prometheus text exposition of everything. */
int tpd_metrics_render(tpd *d, tpd_buf *out);

#endif /* TURNPOLICYD_H */
