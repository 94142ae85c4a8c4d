/*
 * fuzz_statsdb.c - libFuzzer target for coturn's statsdb reports as
 * turnpolicyd takes them: the report parser (tpd_report_parse) and the
 * session table's state machine (tpd_stats_event, the served-key
 * window, the sweep), in sessions.c.
 *
 * Why: the reports carry a username a client chose (coturn reports the
 * sessions of clients that never authenticated too), so every byte of a
 * key and value is hostile; and the table's rule - only a status report
 * makes a session live - is what keeps such clients from touching any
 * user's quota.
 *
 * What one input is: lines "KEY<TAB>VALUE" (a line without a TAB is a
 * key with an empty value), each one report as PUBLISH would give it;
 * a line starting with '+' instead marks the username after it as
 * served (tpd_sessions_key_served); the clock moves 1 s per line.
 *
 * Checked, beyond ASan/UBSan/LSan: a parsed report has a non-empty
 * realm and username within their bounds, the username parses as a
 * turnpolicy username, a status lifetime is at most 7 days and a
 * client is a literal address; the table never counts more live
 * sessions than status reports made live, and a traffic report of an id
 * the table does not hold never makes one.
 *
 * Runs without a policy store and without the allocation worker
 * (d->store and d->allocq NULL, as in fuzz_resp); tpd_log is replaced
 * through -Wl,--wrap=tpd_log by a version that formats and drops.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnpolicyd.h"

#define NOW 1700000000
#define LINE_MAX_ 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_tpd_log(tp_log_level level, const char *fmt, ...)
    TPD_PRINTF(2, 3);

void
__wrap_tpd_log(tp_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    (void)level;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
}

static void
check_report(const tpd_report *r)
{
    tp_username un;
    tp_addr a;
    size_t lr = strlen(r->realm), lu = strlen(r->username);

    if (lr == 0 || lr > TP_REALM_MAX || lu == 0 || lu > TP_USERNAME_MAX)
        abort();
    if (tp_username_parse(r->username, &un, NULL) != TP_OK ||
        strcmp(un.user_id, r->un.user_id) != 0)
        abort();
    if (r->kind < TPD_REPORT_STATUS || r->kind > TPD_REPORT_TOTAL_PEER)
        abort();
    if (r->kind == TPD_REPORT_STATUS &&
        (r->status == TPD_STATUS_NEW || r->status == TPD_STATUS_REFRESHED) &&
        r->lifetime > 86400 * 7)
        abort();
    if (r->client[0] != '\0' && tp_addr_parse(r->client, &a, NULL) != TP_OK)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[LINE_MAX_ + 1];
    size_t off = 0, n, made_live = 0;
    int64_t now = NOW;
    tpd_report r;
    tpd d;

    memset(&d, 0, sizeof(d));
    snprintf(d.node, sizeof(d.node), "fuzz");
    d.sessions = tpd_sessions_new(64);
    if (d.sessions == NULL)
        return 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        char *tab, *val;
        size_t before;
        int known;

        n = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
        if (n > LINE_MAX_)
            n = LINE_MAX_;
        memcpy(line, data + off, n);
        line[n] = '\0';
        off += n + 1;
        now++;
        n = strlen(line); /* a NUL ends the line, as in a C string */
        if (line[0] == '+') {
            tpd_sessions_key_served(&d, "fuzz.test", line + 1, now);
            continue;
        }
        tab = strchr(line, '\t');
        val = tab != NULL ? tab + 1 : line + n;
        if (tab != NULL)
            *tab = '\0';
        before = tpd_sessions_live(d.sessions);
        if (tpd_report_parse(line, strlen(line), val, &r) == 0) {
            tpd_session_ref ref;

            check_report(&r);
            known = tpd_sessions_find(d.sessions, r.id, &ref) == 0;
            (void)tpd_stats_event(&d, line, strlen(line), val, strlen(val),
                                  now);
            if (r.kind == TPD_REPORT_STATUS &&
                (r.status == TPD_STATUS_NEW ||
                 r.status == TPD_STATUS_REFRESHED) && !known &&
                tpd_sessions_live(d.sessions) == before + 1)
                made_live++;
            if (r.kind != TPD_REPORT_STATUS && !known &&
                tpd_sessions_find(d.sessions, r.id, &ref) == 0)
                abort(); /* a traffic report created a session */
        } else {
            (void)tpd_stats_event(&d, line, strlen(line), val, strlen(val),
                                  now);
            if (tpd_sessions_live(d.sessions) != before)
                abort(); /* an ignored report changed the table */
        }
        if (tpd_sessions_live(d.sessions) > made_live)
            abort();
        if ((now & 15) == 0)
            tpd_sessions_sweep(&d, now, 0);
    }
    tpd_sessions_sweep(&d, now + 100000, 1);
    tpd_sessions_free(d.sessions);
    return 0;
}
