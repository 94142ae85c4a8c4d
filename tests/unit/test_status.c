/*
 * test_status.c - the status table: every code has a unique reason code
 * and a message, unknown values are handled, and the numbering is the
 * append-only one published in turnpolicy.h.
 */
#include "tp_test.h"

static void
test_table(void **state)
{
    int i, j;

    (void)state;
    assert_int_equal(TP_OK, 0);
    for (i = 0; i < TP_STATUS_COUNT_; i++) {
        const char *r = tp_reason((tp_status)i);
        const char *m = tp_strerror((tp_status)i);

        assert_string_not_equal(r, "unknown");
        assert_string_not_equal(m, "unknown status");
        assert_true(strlen(m) > 3);
        for (j = 0; r[j] != '\0'; j++)
            assert_true((r[j] >= 'a' && r[j] <= 'z') || r[j] == '_');
        for (j = 0; j < i; j++)
            assert_string_not_equal(r, tp_reason((tp_status)j));
    }
    assert_string_equal(tp_strerror((tp_status)-1), "unknown status");
    assert_string_equal(tp_reason((tp_status)9999), "unknown");
}

static void
test_stable_numbers(void **state)
{
    (void)state;
    /* Published values: changing one breaks stored metrics and logs. */
    assert_int_equal(TP_EEXPIRED, 6);
    assert_int_equal(TP_EBADPASSWORD, 10);
    assert_int_equal(TP_EHOSTDENIED, 16);
    assert_int_equal(TP_EPEERDENIED, 18);
    assert_int_equal(TP_EJWTSIG, 23);
    assert_string_equal(tp_reason(TP_EEXPIRED), "expired");
    assert_string_equal(tp_reason(TP_EJWTALG), "token_bad_alg");
    assert_string_equal(tp_version(), TP_VERSION_STRING);
    assert_true(tp_now() > 1700000000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_stable_numbers),
    };

    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
