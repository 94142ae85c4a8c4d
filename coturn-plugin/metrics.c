/*
 * metrics.c - turnpolicyd's counters in the Prometheus text format
 * (version 0.0.4), served on the loopback HTTP port (metrics = ...) and
 * as the bulk reply of the Redis INFO command after AUTH.
 *
 * Every decision reason appears, zero or not, and so does every reason
 * a live session can be cancelled for, so a dashboard or a test can rely
 * on the series existing.  Loop thread only; the allocation
 * worker's counters are copied under its lock.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "turnpolicyd.h"

static int
counter(tpd_buf *b, const char *name, const char *help, uint64_t v)
{
    return tpd_buf_printf(b, "# HELP turnpolicyd_%s %s\n"
                          "# TYPE turnpolicyd_%s counter\n"
                          "turnpolicyd_%s %" PRIu64 "\n",
                          name, help, name, name, v);
}

static int
gauge(tpd_buf *b, const char *name, const char *help, double v)
{
    return tpd_buf_printf(b, "# HELP turnpolicyd_%s %s\n"
                          "# TYPE turnpolicyd_%s gauge\n"
                          "turnpolicyd_%s %.17g\n",
                          name, help, name, name, v);
}

/* The reasons the enforcer cancels for (enforce.c's cut_status, plus
 * the byte budget); others are shown only if non-zero. */
static const int cut_reasons[] = {
    TP_EREVOKED, TP_EDISABLED, TP_EREALMKILLED, TP_EEXPIRED,
    TP_EUNKNOWNKID, TP_ERETIRED, TP_EUNKNOWNUSER, TP_EUNKNOWNREALM,
    TP_EMALFORMED, TP_ETTL, TP_ECLIENTADDR, TP_EQUOTA, TPD_CUT_BUDGET
};

static int
cancellations(tpd_buf *b, const tpd_counters *n)
{
    unsigned char shown[TPD_CUT_SLOTS];
    size_t i;
    int rc, w;

    memset(shown, 0, sizeof(shown));
    rc = tpd_buf_printf(b, "# HELP turnpolicyd_sessions_cancelled_total "
                        "Live sessions cancelled through coturn's CLI "
                        "(confirmed gone), by reason.\n"
                        "# TYPE turnpolicyd_sessions_cancelled_total "
                        "counter\n");
    for (i = 0; i < sizeof(cut_reasons) / sizeof(cut_reasons[0]); i++) {
        w = cut_reasons[i];
        shown[w] = 1;
        rc |= tpd_buf_printf(b, "turnpolicyd_sessions_cancelled_total{"
                             "reason=\"%s\"} %" PRIu64 "\n",
                             tpd_cut_reason(w), n->cancelled[w]);
    }
    for (w = 0; w < TPD_CUT_SLOTS; w++)
        if (!shown[w] && n->cancelled[w] != 0)
            rc |= tpd_buf_printf(b, "turnpolicyd_sessions_cancelled_total{"
                                 "reason=\"%s\"} %" PRIu64 "\n",
                                 tpd_cut_reason(w), n->cancelled[w]);
    return rc;
}

int
tpd_metrics_render(tpd *d, tpd_buf *b)
{
    const tpd_counters *n = &d->n;
    tpd_enforcer_status es;
    tpd_alloc_counters a;
    tp_store_info si;
    int rc = 0, st;

    tp_store_info_get(d->store, &si);
    tpd_allocq_counters(d->allocq, &a);
    tpd_enforcer_status_get(d->enforcer, &es);

    /* What turnpolicyd decided is all it knows at lookup time: coturn
     * checks the client's MESSAGE-INTEGRITY with the key afterwards, so
     * a served key is not a login; keys_confirmed / keys_abandoned say
     * what became of it. */
    rc |= tpd_buf_printf(b, "# HELP turnpolicyd_key_lookups_total Key "
                         "lookups by coturn: key_served, or the refusal "
                         "reason.\n"
                         "# TYPE turnpolicyd_key_lookups_total counter\n");
    for (st = 0; st < TP_STATUS_COUNT_ && rc == 0; st++)
        rc |= tpd_buf_printf(b, "turnpolicyd_key_lookups_total{result="
                             "\"%s\"} %" PRIu64 "\n",
                             st == TP_OK ? "key_served"
                                         : tp_reason((tp_status)st),
                             n->decisions[st]);
    rc |= tpd_buf_printf(b, "turnpolicyd_key_lookups_total{result="
                         "\"malformed_key\"} %" PRIu64 "\n",
                         n->key_malformed);
    rc |= counter(b, "keys_confirmed_total",
                  "Served keys followed by a new session of that username "
                  "within 10 s (the client knew the password).",
                  n->keys_confirmed);
    rc |= counter(b, "auth_failed_or_abandoned_total",
                  "Served keys not followed by a session within 10 s: a "
                  "wrong password (coturn answered 401) or a client that "
                  "gave up.", n->keys_abandoned);
    rc |= counter(b, "commands_total", "Redis commands received.",
                  n->commands);
    rc |= counter(b, "unknown_commands_total",
                  "Commands answered with an error.", n->unknown_commands);
    rc |= counter(b, "auth_ok_total", "Successful AUTH.", n->auth_ok);
    rc |= counter(b, "auth_failed_total", "AUTH with a wrong password.",
                  n->auth_failed);
    rc |= counter(b, "noauth_total", "Commands refused before AUTH.",
                  n->noauth);
    rc |= counter(b, "protocol_errors_total",
                  "Connections closed for malformed input.",
                  n->protocol_errors);
    rc |= counter(b, "too_large_total",
                  "Connections closed for an oversized request.",
                  n->too_large);
    rc |= counter(b, "connections_total", "Connections accepted.",
                  n->conns_accepted);
    rc |= counter(b, "connections_refused_total",
                  "Connections closed at once (max_connections).",
                  n->conns_refused);
    rc |= gauge(b, "connections", "Open connections.",
                (double)n->conns_open);
    rc |= counter(b, "statsdb_events_total", "coturn session reports.",
                  n->statsdb_events);
    rc |= counter(b, "statsdb_ignored_total",
                  "Session reports not about a turnpolicy username.",
                  n->statsdb_ignored);
    rc |= counter(b, "statsdb_unattributed_total",
                  "Traffic reports of a session coturn never reported as "
                  "an allocation (e.g. a client that failed to "
                  "authenticate): counted for no user.",
                  n->statsdb_unattributed);
    rc |= gauge(b, "sessions_live", "Live TURN allocations on this node "
                "(reported new or refreshed, not yet deleted).",
                (double)tpd_sessions_live(d->sessions));
    rc |= counter(b, "sessions_started_total", "Sessions reported new.",
                  n->sessions_started);
    rc |= counter(b, "sessions_adopted_total",
                  "Sessions first seen after their start.",
                  n->sessions_adopted);
    rc |= counter(b, "sessions_finished_total", "Sessions ended.",
                  n->sessions_finished);
    rc |= counter(b, "sessions_lapsed_total",
                  "Sessions past their lifetime without a report.",
                  n->sessions_lapsed);
    rc |= counter(b, "sessions_dropped_total",
                  "Sessions not tracked (table full).", n->sessions_dropped);
    rc |= counter(b, "usage_recorded_total", "Usage records queued.",
                  n->usage_recorded);
    rc |= counter(b, "usage_failed_total", "Usage records refused.",
                  n->usage_failed);
    rc |= counter(b, "cached_answers_total",
                  "Peer/origin lists repeated from the last good answer "
                  "(policy stale).", n->cached_answers);
    rc |= counter(b, "alloc_acquired_total",
                  "Shared allocation counter acquires.", a.acquired);
    rc |= counter(b, "alloc_over_quota_total",
                  "Acquires refused by the per-user quota.", a.over_quota);
    rc |= counter(b, "alloc_released_total",
                  "Shared allocation counter releases.", a.released);
    rc |= counter(b, "alloc_errors_total",
                  "Counter calls that failed (Redis).", a.errors);
    rc |= counter(b, "alloc_dropped_total",
                  "Counter calls dropped (queue full).", a.dropped);
    rc |= counter(b, "alloc_batches_total",
                  "Pipelined round trips to Redis for the counters.",
                  a.batches);
    rc |= gauge(b, "store_age_seconds",
                "Seconds since the policy was last known current.",
                si.age);
    rc |= gauge(b, "store_connected", "PostgreSQL connection is up.",
                (double)si.connected);
    rc |= counter(b, "store_generation_total", "Snapshots loaded.",
                  si.generation);
    rc |= gauge(b, "store_realms", "Realms in the snapshot.",
                (double)si.realms);
    rc |= gauge(b, "store_users", "Users in the snapshot.",
                (double)si.users);
    rc |= gauge(b, "store_redis_subscribed",
                "Redis change fan-out is subscribed.",
                (double)si.redis_subscribed);
    rc |= gauge(b, "usage_pending", "Usage records not yet in PostgreSQL.",
                (double)si.usage_pending);
    rc |= counter(b, "usage_written_total",
                  "Usage records written to PostgreSQL.", si.usage_written);
    rc |= cancellations(b, n);
    rc |= counter(b, "enforce_checks_total",
                  "Live sessions decided again.", n->enforce_checks);
    rc |= counter(b, "cancel_commands_total", "cs commands sent to coturn.",
                  n->cancel_commands);
    rc |= counter(b, "cancel_not_found_total",
                  "Refused sessions no coturn listed.", n->cancel_not_found);
    rc |= counter(b, "cancel_gave_up_total",
                  "Cancellations not confirmed in time (retried later).",
                  n->cancel_gave_up);
    rc |= gauge(b, "cancel_pending", "Sessions being cancelled.",
                (double)es.pending);
    rc |= counter(b, "coturn_cli_failures_total",
                  "coturn CLI connections failed or lost.", n->cli_failures);
    rc |= counter(b, "coturn_cli_auth_failed_total",
                  "coturn CLI password refused.", n->cli_auth_failed);
    rc |= gauge(b, "coturn_cli_up", "coturn CLI connections logged in.",
                (double)es.cli_up);
    rc |= gauge(b, "coturn_cli_configured", "coturn CLI endpoints.",
                (double)es.cli_total);
    rc |= gauge(b, "enforcer_up", "1 when every coturn CLI endpoint is "
                "logged in (live sessions can be cut), else 0.",
                es.cli_total > 0 && es.cli_up == es.cli_total ? 1.0 : 0.0);
    rc |= gauge(b, "start_time_seconds", "Unix time turnpolicyd started.",
                (double)d->started);
    return rc != 0 ? -1 : 0;
}
