/*
 * tp_test.h - what every cmocka unit test of libturnpolicy includes.
 *
 * cmocka needs <stdarg.h>, <stddef.h>, <setjmp.h> and <stdint.h> before
 * <cmocka.h>.  The helpers assert a status and show the error message when
 * it differs, so a failing test says why.
 */
#ifndef TP_TEST_H
#define TP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "turnpolicy.h"

static inline const char *
tp_test_msg(const tp_error *e)
{
    return e != NULL ? e->message : "";
}

/* Assert that expr returns status want; on mismatch print both statuses
 * and err's message. */
#define TP_ASSERT_STATUS(want, expr, errp)                                   \
    do {                                                                     \
        tp_status got_ = (expr);                                             \
        if (got_ != (want)) {                                                \
            print_error("%s:%d: got %s (%s), want %s\n", __FILE__, __LINE__, \
                        tp_reason(got_),                                     \
                        tp_test_msg(errp),                                   \
                        tp_reason(want));                                    \
            fail();                                                          \
        }                                                                    \
    } while (0)

#define TP_ASSERT_OK(expr, errp) TP_ASSERT_STATUS(TP_OK, expr, errp)

#endif /* TP_TEST_H */
