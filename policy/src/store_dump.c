/*
 * store_dump.c - the decision-relevant content of a store as sorted text
 * lines, so tests can compare a store kept current by the change log
 * with one that loaded everything afresh (tests/integration/
 * store_driver.c).
 *
 * What: one line per realm (settings, its byte sum, TURN URIs), origin,
 * user (every field of user_entry) and revoked credential, sorted with
 * strcmp.  Secrets, keys and rules are not dumped: they are re-read as a
 * whole with their realm (tp__realms_load) by both paths.  No secret
 * appears in the output.
 *
 * Threads: any; reads under a pin like a decision, at rest (a table
 * rebuilt during the dump may show an entry twice or not at all).  Not on
 * any hot path.
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lines {
    char **v;
    size_t n, cap;
    int oom;
} lines;

static void
add(lines *l, const char *fmt, ...) TP__PRINTF(2, 3);

static void
add(lines *l, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    char *c;

    if (l->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **nv = realloc(l->v, cap * sizeof(*nv));

        if (nv == NULL) {
            l->oom = 1;
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    c = strdup(buf);
    if (c == NULL) {
        l->oom = 1;
        return;
    }
    l->v[l->n++] = c;
}

static int
cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
dump_realms(const snapshot *s, lines *l)
{
    size_t i, j;

    for (i = 0; i < s->nrealms; i++) {
        const realm_entry *r = &s->realms[i];
        char urls[1024] = "";
        size_t n = 0;

        for (j = 0; j < r->nurls && n < sizeof(urls); j++)
            n += (size_t)snprintf(urls + n, sizeof(urls) - n, " %s",
                                  r->urls[j]);
        add(l, "realm %s killed=%d ttl=%" PRIu32 "/%" PRIu32 " quota=%"
            PRId64 "/%" PRId64 " bps=%" PRId64 " budget=%" PRId64 "/%"
            PRId64 "/%" PRId64 "s used=%" PRIu64 " urls=%s", r->name,
            r->killed, r->default_ttl, r->max_ttl, r->user_quota,
            r->total_quota, r->max_bps, r->user_budget, r->realm_budget,
            r->budget_period, tp__realm_used(s, i), urls);
    }
    for (i = 0; i < s->norigins; i++)
        add(l, "origin %s %s", s->origins[i].origin,
            s->realms[s->origins[i].realm].name);
}

static void
dump_tables(const snapshot *s, lines *l)
{
    const user_entry *u;
    const revoked_entry *v;
    size_t pos = 0;

    /* (A table rebuilt under the iteration may list an entry twice or
     * not at all: callers dump a store at rest.) */
    while ((u = tp__table_next(&s->tab->users, &pos)) != NULL) {
        char net[INET6_ADDRSTRLEN + 8] = "-";

        if (u->has_cidr) {
            const tp_addr *a = user_cidr(u);

            inet_ntop(a->family, a->bytes, net, sizeof(net) - 4);
            snprintf(net + strlen(net), 5, "/%u", u->cidr_len);
        }
        add(l, "user %s %s active=%u revoked_before=%" PRId64 " quota=%"
            PRId64 " budget=%" PRId64 " used=%" PRIu64 " cidr=%s",
            s->realms[u->realm].name, u->user_id, u->active,
            u->revoked_before, u->user_quota, u->user_budget, u->used, net);
    }
    pos = 0;
    while ((v = tp__table_next(&s->tab->revoked, &pos)) != NULL)
        add(l, "revoked %s %s", s->realms[v->realm].name, v->username);
}

tp_status
tp__store_dump(tp_store *st, char **out, tp_error *err)
{
    lines l = {0};
    overlay *ov;
    tp_status status;
    snapshot *s;
    size_t i, len = 1;
    int parity;
    char *p;

    *out = NULL;
    s = tp__pin(st, &ov, &parity, &status, err);
    if (s == NULL)
        return status;
    dump_realms(s, &l);
    if (s->tab != NULL)
        dump_tables(s, &l);
    tp__unpin(st, parity);
    if (!l.oom)
        qsort(l.v, l.n, sizeof(*l.v), cmp_line);
    for (i = 0; i < l.n; i++)
        len += strlen(l.v[i]) + 1;
    p = l.oom ? NULL : malloc(len);
    if (p != NULL) {
        size_t n = 0;

        for (i = 0; i < l.n; i++) {
            size_t k = strlen(l.v[i]);

            memcpy(p + n, l.v[i], k);
            p[n + k] = '\n';
            n += k + 1;
        }
        p[n] = '\0';
    }
    for (i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    if (p == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    *out = p;
    return TP_OK;
}
