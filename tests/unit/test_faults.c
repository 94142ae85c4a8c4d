/*
 * test_faults.c - failures that the real environment rarely produces on
 * demand: allocation failures and a failing crypto primitive.
 *
 * The Makefile links this test with -Wl,--wrap for calloc, malloc,
 * realloc and EVP_EncodeBlock, so the library's own calls go through the
 * wrappers below; each wrapper fails when its countdown reaches zero and
 * otherwise calls the real function.  Every case checks that the failure
 * is reported with the right status and nothing leaks (under ASan/LSan).
 */
#include "tp_test.h"

#include <stdlib.h>

void *__real_calloc(size_t n, size_t size);
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
int __real_EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *p, size_t size);
int __wrap_EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);

static int alloc_countdown = -1; /* -1: never fail */
static int encode_fail;

static int
alloc_should_fail(void)
{
    if (alloc_countdown < 0)
        return 0;
    return alloc_countdown-- == 0;
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return alloc_should_fail() ? NULL : __real_calloc(n, size);
}

void *
__wrap_malloc(size_t size)
{
    return alloc_should_fail() ? NULL : __real_malloc(size);
}

void *
__wrap_realloc(void *p, size_t size)
{
    return alloc_should_fail() ? NULL : __real_realloc(p, size);
}

int
__wrap_EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    return encode_fail ? -1 : __real_EVP_EncodeBlock(t, f, n);
}

static void
test_keyring_oom(void **state)
{
    tp_keyring *kr;
    tp_error err;

    (void)state;
    alloc_countdown = 0;
    kr = tp_keyring_new("r", NULL, &err);
    alloc_countdown = -1;
    assert_null(kr);
    assert_int_equal(err.status, TP_ENOMEM);

    kr = tp_keyring_new("r", NULL, &err);
    assert_non_null(kr);
    alloc_countdown = 0;
    TP_ASSERT_STATUS(TP_ENOMEM, tp_keyring_add(kr, "k1",
                                               "0123456789abcdef", 16,
                                               TP_SECRET_SIGNING, &err),
                     &err);
    alloc_countdown = -1;
    tp_keyring_free(kr);
}

/* Every allocation of a config parse fails in turn: each must come back
 * as TP_ENOMEM (never a crash, never a leak). */
static void
test_config_oom_each_step(void **state)
{
    static const char text[] = "a = 1\n[realm r]\nb = \"2\"\nc = 3\n";
    tp_config *cfg;
    tp_error err;
    tp_status st;
    int i, failures = 0;

    (void)state;
    for (i = 0; i < 64; i++) {
        alloc_countdown = i;
        st = tp_config_parse(text, strlen(text), "oom", &cfg, &err);
        alloc_countdown = -1;
        if (st == TP_OK) {
            tp_config_free(cfg);
            break;
        }
        assert_int_equal(st, TP_ENOMEM);
        assert_null(cfg);
        failures++;
    }
    /* The parse allocates several times and eventually succeeds. */
    assert_true(failures >= 5);
    assert_true(i < 64);
}

static void
test_crypto_failure(void **state)
{
    tp_keyring *kr;
    tp_credential c;
    tp_error err;

    (void)state;
    kr = tp_keyring_new("r", NULL, &err);
    assert_non_null(kr);
    TP_ASSERT_OK(tp_keyring_add(kr, "k1", "0123456789abcdef", 16,
                                TP_SECRET_SIGNING, &err), &err);
    encode_fail = 1;
    TP_ASSERT_STATUS(TP_ECRYPTO, tp_credential_issue(kr, "u", 60,
                                                     1700000000, &c, &err),
                     &err);
    encode_fail = 0;
    TP_ASSERT_OK(tp_credential_issue(kr, "u", 60, 1700000000, &c, &err),
                 &err);
    tp_keyring_free(kr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_oom),
        cmocka_unit_test(test_config_oom_each_step),
        cmocka_unit_test(test_crypto_failure),
    };

    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
