/*
 * status.c - status codes, their messages and the per-call error report.
 *
 * The table lives in turnpolicy.h (TP_STATUS_MAP) so the enum, the reason
 * codes and the messages can never drift apart.  Codes are append-only.
 */
#include "tp_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct tp__status_info {
    tp_status status;
    const char *reason;
    const char *message;
};

static const struct tp__status_info status_table[] = {
#define TP_STATUS_ROW_(name, val, code, msg) {name, code, msg},
    TP_STATUS_MAP(TP_STATUS_ROW_)
#undef TP_STATUS_ROW_
};

static const struct tp__status_info *
status_find(tp_status st)
{
    size_t i;

    for (i = 0; i < TP__ARRAY_LEN(status_table); i++) {
        if (status_table[i].status == st)
            return &status_table[i];
    }
    return NULL;
}

const char *
tp_strerror(tp_status st)
{
    const struct tp__status_info *si = status_find(st);

    return si != NULL ? si->message : "unknown status";
}

const char *
tp_reason(tp_status st)
{
    const struct tp__status_info *si = status_find(st);

    return si != NULL ? si->reason : "unknown";
}

const char *
tp_version(void)
{
    return TP_VERSION_STRING;
}

int64_t
tp_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (int64_t)time(NULL);
    return (int64_t)ts.tv_sec;
}

tp_status
tp__fail(tp_error *err, tp_status st, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL)
        return st;
    err->status = st;
    if (fmt == NULL) {
        tp__strlcpy(err->message, tp_strerror(st), sizeof(err->message));
        return st;
    }
    va_start(ap, fmt);
    n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    if (n < 0)
        tp__strlcpy(err->message, tp_strerror(st), sizeof(err->message));
    return st;
}

void
tp__ok(tp_error *err)
{
    if (err == NULL)
        return;
    err->status = TP_OK;
    err->message[0] = '\0';
}
