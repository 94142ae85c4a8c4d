/*
 * scale_store.c - the probes of tests/bench/scale.sh (the policy at a
 * large number of users, issue 13), against a real PostgreSQL.
 *
 * Not built by the Makefile (its bench_* binaries run bare): scale.sh
 * compiles it against build/lib/libturnpolicy.a.  Three modes:
 *
 *   scale_store store CONF SECTION REALM ADMIN_CONNINFO VICTIM_PREFIX NVICTIMS
 *     One process holding the library's store, configured from CONF's
 *     SECTION exactly as a deployment's consumer is
 *     (tp_store_options_from_config).  Prints
 *       "loaded base_kb=B rss_kb=R hwm_kb=H load_s=T users=N realms=M"
 *     (B: VmRSS before tp_store_new; R, H: VmRSS and VmHWM after the
 *     first load; T: the time tp_store_new took), then answers one
 *     command per line on stdin with one line on stdout:
 *       reload        -> "reload s=T rss_kb=R hwm_kb=H": a full read
 *                        (tp_store_reload) timed until full_loads
 *                        moves; H is the peak RSS during it (VmHWM,
 *                        reset through /proc/self/clear_refs first).
 *       idle SECS     -> "idle cpu_ms=C wall_s=W"
 *       storm SECS    -> "storm cpu_ms=C wall_s=W revokes=K lat_ms=a,b,..."
 *                        C: CPU time of the process (all threads) over
 *                        the window minus this main thread's own (the
 *                        probe below), i.e. what the store itself burnt.
 *                        storm: about once a second the next victim
 *                        (VICTIM_PREFIX1, 2, ...) gets a credential from
 *                        the store (issued 5 s ago), is checked to verify,
 *                        then revoke_user commits on ADMIN_CONNINFO; from
 *                        the commit's reply on, tp_store_verify is polled
 *                        every 1 ms until it refuses (TP_EREVOKED): that
 *                        is the revocation latency.  The window closes
 *                        after SECS, or after the pending revocation.
 *                        The changes themselves (create_user at 100/s)
 *                        come from pgbench, started by scale.sh.
 *       quit
 *
 *   scale_store tokens KEYFILE REALM ISSUER AUDIENCE PREFIX N TTL
 *     HS256 JWTs (KEYFILE: the secret, trailing newline stripped) for
 *     subjects PREFIX1..PREFIXN issued now: "SUB TOKEN" per line.
 *
 *   scale_store http PORT NWORKERS ADMIN_CONNINFO REALM SECS INTERVAL_MS
 *                    TOKENS STORM
 *     The same probe against an nginx with the module: every INTERVAL_MS
 *     a fresh connection to 127.0.0.1:PORT asks GET /credentials with
 *     the next victim's token (TOKENS: scale_store tokens' output) and
 *     reads the status and X-Pid (the worker that answered; the listen
 *     socket has reuseport so connections spread over the workers).
 *     STORM 1: about once a second the victim is revoked as above; the
 *     latency runs from the commit until every one of NWORKERS workers
 *     has refused it (401 or 403) at least once (and, separately, until
 *     the first refusal).  STORM 0: the same requests without revocations (the
 *     idle baseline of the same probe load).  Prints
 *       "http requests=N errors=E revokes=K lat_ms=a,... first_ms=a,..."
 *
 * Exit status 0, or 1 with a message on stderr.  Everything is on
 * 127.0.0.1 or the PostgreSQL socket.
 */
#include "turnpolicy.h"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_REVOKES 1024
#define REVOKE_TIMEOUT 60.0
#define MAX_WORKERS 64

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_clock(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
sleep_s(double s)
{
    struct timespec ts;

    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* VmRSS or VmHWM of this process in kB (-1 if unreadable). */
static long
status_kb(const char *field)
{
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0). */
static void
reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");

    if (f == NULL)
        return;
    fputs("5", f);
    fclose(f);
}

static void
print_lat(const char *name, const double *v, int n)
{
    int i;

    printf(" %s=", name);
    for (i = 0; i < n; i++)
        printf("%s%.1f", i > 0 ? "," : "", v[i]);
    if (n == 0)
        printf("none");
}

/* revoke_user(realm, user) on db; 0, or -1 with a message. */
static int
revoke_user(PGconn *db, const char *realm, const char *user)
{
    const char *params[2] = {realm, user};
    PGresult *r;
    int ok;

    r = PQexecParams(db, "SELECT turnpolicy.revoke_user($1, $2)", 2, NULL,
                     params, NULL, NULL, 0);
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "scale_store: revoke_user %s: %s", user,
                PQerrorMessage(db));
    PQclear(r);
    return ok ? 0 : -1;
}

static PGconn *
admin_connect(const char *conninfo)
{
    PGconn *db = PQconnectdb(conninfo);

    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "scale_store: admin connection: %s",
                PQerrorMessage(db));
        PQfinish(db);
        return NULL;
    }
    return db;
}

/* ------------------------------------------------------------------ */
/* store mode                                                          */
/* ------------------------------------------------------------------ */

typedef struct store_ctx {
    tp_store *st;
    PGconn *admin;
    const char *realm;
    const char *prefix;
    long nvictims;
    long next_victim; /* 1-based */
} store_ctx;

/* Revoke the next victim and wait until the store refuses it; the
 * latency in ms, or -1 on failure. */
static double
store_revoke_one(store_ctx *c)
{
    tp_credential cred;
    tp_status rc;
    tp_error err;
    char user[128];
    double t0;

    snprintf(user, sizeof(user), "%s%ld", c->prefix, c->next_victim++);
    if (tp_store_issue(c->st, c->realm, user, 600, tp_now() - 5, &cred,
                       &err) != TP_OK) {
        fprintf(stderr, "scale_store: issue for %s: %s\n", user,
                err.message);
        return -1;
    }
    rc = tp_store_verify(c->st, c->realm, cred.username, cred.password,
                         tp_now(), NULL, &err);
    if (rc != TP_OK) {
        fprintf(stderr, "scale_store: %s does not verify before its "
                "revocation: %s\n", user, err.message);
        return -1;
    }
    if (revoke_user(c->admin, c->realm, user) != 0)
        return -1;
    t0 = mono();
    for (;;) {
        rc = tp_store_verify(c->st, c->realm, cred.username, cred.password,
                             tp_now(), NULL, &err);
        if (rc == TP_EREVOKED)
            return (mono() - t0) * 1e3;
        if (rc != TP_OK) {
            fprintf(stderr, "scale_store: %s: %s while waiting for the "
                    "revocation\n", user, err.message);
            return -1;
        }
        if (mono() - t0 > REVOKE_TIMEOUT) {
            fprintf(stderr, "scale_store: %s still verifies %.0f s after "
                    "its revocation\n", user, REVOKE_TIMEOUT);
            return -1;
        }
        sleep_s(0.001);
    }
}

static int
store_round(store_ctx *c, int storm, double secs)
{
    static double lat[MAX_REVOKES];
    double t0, cpu0, th0, next, now, cpu, l;
    int n = 0;

    t0 = mono();
    cpu0 = cpu_clock(CLOCK_PROCESS_CPUTIME_ID);
    th0 = cpu_clock(CLOCK_THREAD_CPUTIME_ID);
    next = t0 + 0.5;
    while ((now = mono()) - t0 < secs) {
        if (storm && now >= next && c->next_victim <= c->nvictims &&
            n < MAX_REVOKES) {
            l = store_revoke_one(c);
            if (l < 0)
                return -1;
            lat[n++] = l;
            next += 1.0;
            if (next < mono())
                next = mono();
            continue;
        }
        sleep_s(0.01);
    }
    cpu = cpu_clock(CLOCK_PROCESS_CPUTIME_ID) - cpu0 -
          (cpu_clock(CLOCK_THREAD_CPUTIME_ID) - th0);
    printf("%s cpu_ms=%.1f wall_s=%.3f", storm ? "storm" : "idle", cpu,
           mono() - t0);
    if (storm) {
        printf(" revokes=%d", n);
        print_lat("lat_ms", lat, n);
    }
    printf("\n");
    fflush(stdout);
    return 0;
}

static int
store_reload(store_ctx *c)
{
    tp_store_info info;
    uint64_t gen;
    double t0;

    tp_store_info_get(c->st, &info);
    gen = info.full_loads;
    reset_hwm();
    t0 = mono();
    tp_store_reload(c->st);
    for (;;) {
        tp_store_info_get(c->st, &info);
        if (info.full_loads != gen)
            break;
        if (mono() - t0 > 120) {
            fprintf(stderr, "scale_store: no reload within 120 s\n");
            return -1;
        }
        sleep_s(0.001);
    }
    printf("reload s=%.3f rss_kb=%ld hwm_kb=%ld\n", mono() - t0,
           status_kb("VmRSS"), status_kb("VmHWM"));
    fflush(stdout);
    return 0;
}

static int
store_mode(int argc, char **argv)
{
    tp_store_options so;
    tp_store_config hold;
    tp_store_info info;
    tp_config *cfg = NULL;
    store_ctx c;
    tp_error err;
    char line[256];
    long base;
    double t0, secs;
    int rc = 1;

    if (argc != 8) {
        fprintf(stderr, "usage: scale_store store CONF SECTION REALM "
                "ADMIN_CONNINFO VICTIM_PREFIX NVICTIMS\n");
        return 2;
    }
    memset(&c, 0, sizeof(c));
    c.realm = argv[4];
    c.prefix = argv[6];
    c.nvictims = strtol(argv[7], NULL, 10);
    c.next_victim = 1;
    if (tp_config_load(argv[2], &cfg, &err) != TP_OK ||
        tp_store_options_from_config(cfg, argv[3], &so, &hold, &err) !=
            TP_OK) {
        fprintf(stderr, "scale_store: %s\n", err.message);
        goto out;
    }
    c.admin = admin_connect(argv[5]);
    if (c.admin == NULL)
        goto out;
    base = status_kb("VmRSS");
    t0 = mono();
    c.st = tp_store_new(&so, &err);
    tp_store_config_clear(&hold);
    if (c.st == NULL) {
        fprintf(stderr, "scale_store: store: %s\n", err.message);
        goto out;
    }
    tp_store_info_get(c.st, &info);
    printf("loaded base_kb=%ld rss_kb=%ld hwm_kb=%ld load_s=%.3f users=%zu "
           "realms=%zu\n", base, status_kb("VmRSS"), status_kb("VmHWM"),
           mono() - t0, info.users, info.realms);
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        if (strncmp(line, "reload", 6) == 0) {
            if (store_reload(&c) != 0)
                goto out;
        } else if (sscanf(line, "idle %lf", &secs) == 1) {
            if (store_round(&c, 0, secs) != 0)
                goto out;
        } else if (sscanf(line, "storm %lf", &secs) == 1) {
            if (store_round(&c, 1, secs) != 0)
                goto out;
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            fprintf(stderr, "scale_store: unknown command: %s", line);
            goto out;
        }
    }
    rc = 0;
out:
    tp_store_free(c.st);
    PQfinish(c.admin);
    tp_config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ */
/* tokens mode                                                         */
/* ------------------------------------------------------------------ */

static int
tokens_mode(int argc, char **argv)
{
    tp_jwt_options opts;
    tp_jwt_issue_params p;
    tp_jwt_keys *jk = NULL;
    tp_error err;
    char key[1024], sub[128], *tok;
    size_t keylen = 0;
    long n, ttl, i;
    int64_t now;
    int rc = 1;

    if (argc != 9) {
        fprintf(stderr, "usage: scale_store tokens KEYFILE REALM ISSUER "
                "AUDIENCE PREFIX N TTL\n");
        return 2;
    }
    n = strtol(argv[7], NULL, 10);
    ttl = strtol(argv[8], NULL, 10);
    if (n < 1 || ttl < 1 || ttl > TP_TTL_MAX) {
        fprintf(stderr, "scale_store: bad N or TTL\n");
        return 2;
    }
    if (tp_secret_file_read(argv[2], key, sizeof(key) - 1, &keylen, &err) !=
        TP_OK) {
        fprintf(stderr, "scale_store: %s\n", err.message);
        return 1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.issuer = argv[4];
    opts.audience = argv[5];
    opts.require_exp = 1;
    jk = tp_jwt_keys_new(&opts, &err);
    if (jk == NULL ||
        tp_jwt_keys_add(jk, "scale1", TP_JWT_HS256, key, keylen, &err) !=
            TP_OK) {
        fprintf(stderr, "scale_store: keys: %s\n", err.message);
        goto out;
    }
    now = tp_now();
    for (i = 1; i <= n; i++) {
        snprintf(sub, sizeof(sub), "%s%ld", argv[6], i);
        memset(&p, 0, sizeof(p));
        p.kid = "scale1";
        p.sub = sub;
        p.realm = argv[3];
        p.now = now;
        p.ttl = (uint32_t)ttl;
        if (tp_jwt_issue(jk, &p, &tok, &err) != TP_OK) {
            fprintf(stderr, "scale_store: issue: %s\n", err.message);
            goto out;
        }
        printf("%s %s\n", sub, tok);
        tp_free(tok);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    tp_jwt_keys_free(jk);
    memset(key, 0, sizeof(key));
    return rc;
}

/* ------------------------------------------------------------------ */
/* http mode                                                           */
/* ------------------------------------------------------------------ */

/* One GET /credentials with the token on a fresh connection: the
 * status (0 on a transport error) and the answering worker's pid. */
static int
http_get(int port, const char *token, long *pid)
{
    struct sockaddr_in a;
    struct timeval tv = {2, 0};
    char req[4096], buf[8192], *p;
    size_t got = 0;
    ssize_t k;
    int fd, status = 0, len;

    *pid = 0;
    len = snprintf(req, sizeof(req), "GET /credentials HTTP/1.1\r\n"
                   "Host: scale.bench\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n", token);
    if (len <= 0 || (size_t)len >= sizeof(req))
        return 0;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        write(fd, req, (size_t)len) != len)
        goto out;
    while (got < sizeof(buf) - 1) {
        k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    p = strstr(buf, "\r\nX-Pid: ");
    if (p != NULL)
        *pid = strtol(p + 9, NULL, 10);
out:
    close(fd);
    return status;
}

static int
http_mode(int argc, char **argv)
{
    static char subs[MAX_REVOKES][128], toks[MAX_REVOKES][2048];
    static double lat[MAX_REVOKES], first[MAX_REVOKES];
    long refused[MAX_WORKERS], pid;
    int port, nworkers, storm, ntok = 0, cur = 0, nrev = 0, nref = 0;
    int pending = 0, status, i, known;
    long requests = 0, errors = 0;
    double secs, interval, t0, now, next_rev, t_commit = 0, t_first = 0;
    PGconn *admin = NULL;
    FILE *f;

    if (argc != 10) {
        fprintf(stderr, "usage: scale_store http PORT NWORKERS "
                "ADMIN_CONNINFO REALM SECS INTERVAL_MS TOKENS STORM\n");
        return 2;
    }
    port = atoi(argv[2]);
    nworkers = atoi(argv[3]);
    secs = atof(argv[6]);
    interval = atof(argv[7]) / 1e3;
    storm = atoi(argv[9]);
    if (nworkers < 1 || nworkers > MAX_WORKERS) {
        fprintf(stderr, "scale_store: NWORKERS 1..%d\n", MAX_WORKERS);
        return 2;
    }
    f = fopen(argv[8], "r");
    if (f == NULL) {
        perror(argv[8]);
        return 1;
    }
    while (ntok < MAX_REVOKES &&
           fscanf(f, "%127s %2047s", subs[ntok], toks[ntok]) == 2)
        ntok++;
    fclose(f);
    if (ntok == 0) {
        fprintf(stderr, "scale_store: no tokens in %s\n", argv[8]);
        return 1;
    }
    if (storm) {
        admin = admin_connect(argv[4]);
        if (admin == NULL)
            return 1;
    }
    t0 = mono();
    next_rev = t0 + 0.5;
    for (;;) {
        now = mono();
        if (!pending && now - t0 >= secs)
            break;
        if (storm && !pending && now >= next_rev && cur < ntok) {
            if (revoke_user(admin, argv[5], subs[cur]) != 0) {
                PQfinish(admin);
                return 1;
            }
            t_commit = mono();
            pending = 1;
            nref = 0;
            t_first = 0;
        }
        status = http_get(port, toks[cur < ntok ? cur : ntok - 1], &pid);
        requests++;
        if (status == 200) {
            /* allowed: not revoked yet, or a worker that has not seen it */
        } else if ((status == 401 || status == 403) && pending) {
            now = mono();
            if (t_first == 0)
                t_first = now;
            for (known = 0, i = 0; i < nref; i++)
                known |= refused[i] == pid;
            if (!known && nref < MAX_WORKERS)
                refused[nref++] = pid;
            if (nref >= nworkers) {
                lat[nrev] = (now - t_commit) * 1e3;
                first[nrev] = (t_first - t_commit) * 1e3;
                nrev++;
                pending = 0;
                cur++;
                next_rev += 1.0;
                if (next_rev < now)
                    next_rev = now;
            }
        } else {
            errors++;
            if (errors == 1)
                fprintf(stderr, "scale_store: http status %d for %s\n",
                        status, subs[cur < ntok ? cur : ntok - 1]);
        }
        if (pending && mono() - t_commit > REVOKE_TIMEOUT) {
            fprintf(stderr, "scale_store: %s not refused by all %d workers "
                    "%.0f s after its revocation (%d did)\n", subs[cur],
                    nworkers, REVOKE_TIMEOUT, nref);
            PQfinish(admin);
            return 1;
        }
        sleep_s(interval);
    }
    PQfinish(admin);
    printf("http requests=%ld errors=%ld revokes=%d", requests, errors,
           nrev);
    print_lat("lat_ms", lat, nrev);
    print_lat("first_ms", first, nrev);
    printf(" wall_s=%.3f\n", mono() - t0);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "store") == 0)
        return store_mode(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "tokens") == 0)
        return tokens_mode(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "http") == 0)
        return http_mode(argc, argv);
    fprintf(stderr, "usage: scale_store store|tokens|http ...\n");
    return 2;
}
