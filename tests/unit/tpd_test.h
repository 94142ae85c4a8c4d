/*
 * tpd_test.h - what the cmocka unit tests of turnpolicyd's pure parts
 * (test_resp.c, test_commands.c, test_sessions.c) share.
 *
 * They are linked with every coturn-plugin object (turnpolicyd.c with
 * its main() renamed) and with -Wl,--wrap=tpd_log (see the Makefile):
 * tpd_log calls from resp.c, commands.c, sessions.c and enforce.c land in
 * __wrap_tpd_log below, which keeps the formatted lines so a test can
 * check what was logged - and that no password or key ever was.
 *
 * The daemon state a test builds (tpd_test_new) has a session table but
 * no policy store (d->store == NULL: every tp_store_* call answers
 * TP_EINVAL, no database, no I/O), no allocation worker (d->allocq ==
 * NULL: pushes are no-ops) and no enforcer, as in tests/fuzz/fuzz_resp.c.
 */
#ifndef TPD_TEST_H
#define TPD_TEST_H

#include <stdlib.h>

#include <openssl/evp.h>

#include "tp_test.h"
#include "turnpolicyd.h"

#define TPD_TEST_PASSWORD "unit-test-password"
#define TPD_TEST_NOW INT64_C(1700000000)

void __wrap_tpd_log(tp_log_level level, const char *fmt, ...)
    TPD_PRINTF(2, 3);

/* Every line logged since tpd_test_log_reset, each followed by '\n'
 * (lines past the end of the buffer are dropped, but counted). */
static char tpd_test_logbuf[1 << 16];
static size_t tpd_test_loglen;
static unsigned tpd_test_lines;

void
__wrap_tpd_log(tp_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    size_t len;

    (void)level;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tpd_test_lines++;
    len = strlen(msg);
    if (tpd_test_loglen + len + 2 > sizeof(tpd_test_logbuf))
        return; /* full: later lines are dropped */
    memcpy(tpd_test_logbuf + tpd_test_loglen, msg, len);
    tpd_test_loglen += len;
    tpd_test_logbuf[tpd_test_loglen++] = '\n';
    tpd_test_logbuf[tpd_test_loglen] = '\0';
}

static inline void
tpd_test_log_reset(void)
{
    tpd_test_loglen = 0;
    tpd_test_lines = 0;
    tpd_test_logbuf[0] = '\0';
}

static inline int
tpd_test_logged(const char *s)
{
    return strstr(tpd_test_logbuf, s) != NULL;
}

/* A daemon with a table of max_sessions sessions, no store, no worker,
 * no enforcer, its AUTH password TPD_TEST_PASSWORD. */
static inline tpd *
tpd_test_new(size_t max_sessions)
{
    tpd *d = calloc(1, sizeof(*d));
    unsigned int n = 0;

    assert_non_null(d);
    snprintf(d->node, sizeof(d->node), "unit");
    assert_int_equal(EVP_Digest(TPD_TEST_PASSWORD, strlen(TPD_TEST_PASSWORD),
                                d->pw_digest, &n, EVP_sha256(), NULL),
                     1);
    assert_int_equal(n, sizeof(d->pw_digest));
    d->alloc_slack = 60;
    d->started = TPD_TEST_NOW;
    d->sessions = tpd_sessions_new(max_sessions);
    assert_non_null(d->sessions);
    tpd_test_log_reset();
    return d;
}

static inline void
tpd_test_free(tpd *d)
{
    if (d == NULL)
        return;
    tpd_sessions_free(d->sessions);
    tpd_cache_free(d->cache);
    free(d);
}

#endif /* TPD_TEST_H */
