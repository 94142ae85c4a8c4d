/*
 * store_bench.c - decisions per second from the policy store's in-memory
 * snapshot versus the bare credential check, against a real PostgreSQL.
 *
 * Run by tests/bench/store.sh, which starts a throwaway PostgreSQL,
 * migrates it, provisions realm "bench.test" with users user1..userN and a
 * signing secret, compiles this file and runs it with the connection
 * string as argv[1].  It is not built by the Makefile (the bench_*
 * binaries run without a database).
 *
 * Ours: tp_store_verify - pin the current snapshot (lock-free reader count),
 * realm lookup, tp_credential_verify with the realm's keyring, user
 * lookup (known, active), revocation checks, unpin.
 * Baseline: tp_credential_verify alone on a tp_keyring built in-process
 * from the same secret and realm settings (read from the database as the
 * superuser: this is a benchmark, not a deployment), over the same
 * credentials.  Goal: ratio >= 0.8x, i.e. the policy around the
 * credential check costs at most a quarter of the check itself.
 *
 * Both sides must return TP_OK for every call; anything else aborts the
 * run.  Each side runs for a fixed time per round, rounds alternate
 * (1 thread ours, 1 thread baseline, 2 threads ours, 2 threads baseline),
 * and the medians of the rates and of the per-round ratios are printed.
 * The 2-thread lines show what the snapshot pin's shared reader count
 * costs under contention (the store is documented as safe from any
 * number of threads; a keyring is immutable once built).
 */
#include "turnpolicy.h"

#include <libpq-fe.h>
#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REALM "bench.test"
#define NCRED 1024
#define ROUNDS 7
#define ROUND_SECONDS 0.5
#define NTHREADS 2

static tp_credential creds[NCRED];

typedef struct worker {
    tp_store *st;         /* ours when not NULL */
    const tp_keyring *kr; /* else the baseline */
    int64_t now;
    double rate;          /* calls per second, out */
} worker;

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
median(const double *v)
{
    double s[ROUNDS];

    memcpy(s, v, sizeof(s));
    qsort(s, ROUNDS, sizeof(double), cmp_double);
    return s[ROUNDS / 2];
}

static void *
run(void *arg)
{
    worker *w = arg;
    double t0 = mono(), t;
    unsigned long n = 0;
    tp_status rc;
    tp_error err;
    size_t i;

    do {
        for (i = 0; i < 256; i++) {
            const tp_credential *c = &creds[(n + i) % NCRED];

            if (w->st != NULL)
                rc = tp_store_verify(w->st, REALM, c->username, c->password,
                                     w->now, NULL, &err);
            else
                rc = tp_credential_verify(w->kr, c->username, c->password,
                                          w->now, NULL, &err);
            if (rc != TP_OK) {
                fprintf(stderr, "store_bench: %s verify of %s: %s\n",
                        w->st != NULL ? "store" : "bare", c->username,
                        err.message);
                exit(1);
            }
        }
        n += 256;
        t = mono();
    } while (t - t0 < ROUND_SECONDS);
    w->rate = (double)n / (t - t0);
    return NULL;
}

/* Total calls per second of nthreads workers running side by side. */
static double
round_rate(tp_store *st, const tp_keyring *kr, int64_t now, int nthreads)
{
    pthread_t tid[NTHREADS];
    worker w[NTHREADS];
    double total = 0;
    int i;

    for (i = 0; i < nthreads; i++) {
        w[i].st = st;
        w[i].kr = kr;
        w[i].now = now;
        w[i].rate = 0;
    }
    if (nthreads == 1) {
        run(&w[0]);
        return w[0].rate;
    }
    for (i = 0; i < nthreads; i++) {
        if (pthread_create(&tid[i], NULL, run, &w[i]) != 0) {
            fprintf(stderr, "store_bench: pthread_create failed\n");
            exit(1);
        }
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        total += w[i].rate;
    }
    return total;
}

static int
unhex(const char *hex, unsigned char *out, size_t max, size_t *len)
{
    size_t n = strlen(hex), i;
    unsigned v;

    if (n % 2 != 0 || n / 2 > max)
        return -1;
    for (i = 0; i < n / 2; i++) {
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    *len = n / 2;
    return 0;
}

/* The realm's signing secret and lifetime settings, as the store loads
 * them, in a keyring of our own.  NULL on failure (reason printed). */
static tp_keyring *
keyring_from_db(const char *conninfo)
{
    static const char *const q =
        "SELECT s.kid, encode(s.secret, 'hex'), r.default_ttl, r.max_ttl, "
        "r.clock_skew FROM turnpolicy.secrets s JOIN turnpolicy.realms r "
        "ON r.name = s.realm WHERE s.realm = $1 AND s.state = 'signing'";
    const char *params[1] = {REALM};
    unsigned char secret[TP_SECRET_MAX];
    tp_keyring_options o;
    tp_keyring *kr = NULL;
    PGresult *res = NULL;
    size_t len = 0;
    tp_error err;
    PGconn *db;

    db = PQconnectdb(conninfo);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "store_bench: connect: %s", PQerrorMessage(db));
        goto done;
    }
    res = PQexecParams(db, q, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "store_bench: no signing secret for %s: %s\n",
                REALM, PQerrorMessage(db));
        goto done;
    }
    if (unhex(PQgetvalue(res, 0, 1), secret, sizeof(secret), &len) != 0) {
        fprintf(stderr, "store_bench: bad secret encoding\n");
        goto done;
    }
    memset(&o, 0, sizeof(o));
    o.default_ttl = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
    o.max_ttl = (uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10);
    o.clock_skew = (uint32_t)strtoul(PQgetvalue(res, 0, 4), NULL, 10);
    kr = tp_keyring_new(REALM, &o, &err);
    if (kr == NULL) {
        fprintf(stderr, "store_bench: keyring: %s\n", err.message);
        goto done;
    }
    if (tp_keyring_add(kr, PQgetvalue(res, 0, 0), secret, len,
                       TP_SECRET_SIGNING, &err) != TP_OK) {
        fprintf(stderr, "store_bench: keyring: %s\n", err.message);
        tp_keyring_free(kr);
        kr = NULL;
    }
done:
    memset(secret, 0, sizeof(secret));
    PQclear(res);
    PQfinish(db);
    return kr;
}

int
main(int argc, char **argv)
{
    double ours[2][ROUNDS], base[2][ROUNDS], ratio[2][ROUNDS];
    tp_store_options so;
    tp_store_info info;
    tp_keyring *kr = NULL;
    tp_store *st = NULL;
    char user[32];
    int64_t now;
    tp_error err;
    int r, k, rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: store_bench CONNINFO\n");
        return 2;
    }
    kr = keyring_from_db(argv[1]);
    if (kr == NULL)
        goto done;
    memset(&so, 0, sizeof(so));
    so.database = argv[1];
    st = tp_store_new(&so, &err);
    if (st == NULL) {
        fprintf(stderr, "store_bench: store: %s\n", err.message);
        goto done;
    }
    tp_store_info_get(st, &info);
    now = tp_now();
    for (r = 0; r < NCRED; r++) {
        snprintf(user, sizeof(user), "user%d", r + 1);
        if (tp_store_issue(st, REALM, user, 600, now, &creds[r], &err) !=
            TP_OK) {
            fprintf(stderr, "store_bench: issue %s: %s\n", user,
                    err.message);
            goto done;
        }
    }
    for (r = 0; r < ROUNDS; r++) {
        for (k = 0; k < 2; k++) {
            ours[k][r] = round_rate(st, NULL, now, k + 1);
            base[k][r] = round_rate(NULL, kr, now, k + 1);
            ratio[k][r] = ours[k][r] / base[k][r];
        }
    }
    printf("# snapshot: %zu realm(s), %zu users; %d credentials verified "
           "round-robin\n", info.realms, info.users, NCRED);
    for (k = 0; k < 2; k++)
        printf("store_verify%s: snapshot decisions %.0f/s, bare credential "
               "check %.0f/s, ratio %.2fx (goal >= 0.8x; medians of %d "
               "rounds)\n", k == 0 ? "" : " (2 threads)", median(ours[k]),
               median(base[k]), median(ratio[k]), ROUNDS);
    rc = 0;
done:
    tp_store_free(st);
    tp_keyring_free(kr);
    return rc;
}
