/*
 * nginx_tokens.c - distinct valid JWTs for tests/bench/nginx.sh, one per
 * line on stdout, issued with libturnpolicy's tp_jwt_issue (the same code
 * the `turnpolicy jwt issue` CLI runs, without a process per token).
 *
 * Why: the first-seen-token rows of the nginx bench cycle a few thousand
 * different tokens so that the module's verified-token cache misses on
 * every request; issuing them with the CLI would cost a fork+exec each.
 *
 *   nginx_tokens ALG KID KEYFILE REALM ISSUER AUDIENCE NUSERS N TTL
 *
 * ALG is HS256 (KEYFILE holds the secret, trailing newline stripped) or
 * RS256 (KEYFILE is a PEM private key).  Token i is for subject
 * "user<1 + i % NUSERS>", issued at now - i / NUSERS: every (sub, iat)
 * pair differs, so every token differs, and the oldest is N / NUSERS
 * seconds old.  Exit status 0, or 1 with a message on stderr.
 *
 * Not built by the Makefile (its bench_* binaries run bare); nginx.sh
 * compiles it against build/lib/libturnpolicy.a.
 */
#include "turnpolicy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)n + 1);
    if (buf == NULL)
        goto out;
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = (size_t)n;

out:
    fclose(f);
    return buf;
}

int
main(int argc, char **argv)
{
    tp_jwt_options opts;
    tp_jwt_issue_params p;
    tp_jwt_keys *jk = NULL;
    tp_jwt_alg alg;
    tp_error err;
    char *key = NULL, *tok, sub[32];
    size_t keylen = 0;
    long nusers, n, ttl, i;
    int64_t now;
    int rc = 1;

    if (argc != 10) {
        fprintf(stderr, "usage: nginx_tokens ALG KID KEYFILE REALM ISSUER "
                        "AUDIENCE NUSERS N TTL\n");
        return 1;
    }
    nusers = strtol(argv[7], NULL, 10);
    n = strtol(argv[8], NULL, 10);
    ttl = strtol(argv[9], NULL, 10);
    if (nusers < 1 || n < 1 || ttl < 1 || ttl > TP_TTL_MAX) {
        fprintf(stderr, "nginx_tokens: bad NUSERS, N or TTL\n");
        return 1;
    }
    if (tp_jwt_alg_parse(argv[1], &alg) != TP_OK) {
        fprintf(stderr, "nginx_tokens: unknown algorithm %s\n", argv[1]);
        return 1;
    }
    key = read_file(argv[3], &keylen);
    if (key == NULL) {
        perror(argv[3]);
        return 1;
    }
    if (alg != TP_JWT_RS256 && alg != TP_JWT_ES256) {
        while (keylen > 0 && (key[keylen - 1] == '\n' ||
                              key[keylen - 1] == '\r'))
            key[--keylen] = '\0';
    }

    memset(&opts, 0, sizeof(opts));
    opts.issuer = argv[5];
    opts.audience = argv[6];
    opts.require_exp = 1;
    jk = tp_jwt_keys_new(&opts, &err);
    if (jk == NULL ||
        tp_jwt_keys_add(jk, argv[2], alg, key, keylen, &err) != TP_OK) {
        fprintf(stderr, "nginx_tokens: keys: %s\n", err.message);
        goto out;
    }

    now = (int64_t)time(NULL);
    for (i = 0; i < n; i++) {
        snprintf(sub, sizeof(sub), "user%ld", 1 + i % nusers);
        memset(&p, 0, sizeof(p));
        p.kid = argv[2];
        p.sub = sub;
        p.realm = argv[4];
        p.now = now - i / nusers;
        p.ttl = (uint32_t)ttl;
        if (tp_jwt_issue(jk, &p, &tok, &err) != TP_OK) {
            fprintf(stderr, "nginx_tokens: issue: %s\n", err.message);
            goto out;
        }
        puts(tok);
        tp_free(tok);
    }
    if (fflush(stdout) != 0) {
        perror("nginx_tokens: stdout");
        goto out;
    }
    rc = 0;

out:
    tp_jwt_keys_free(jk);
    if (key != NULL) {
        memset(key, 0, keylen);
        free(key);
    }
    return rc;
}
