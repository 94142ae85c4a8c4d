/*
 * fuzz_host.c - libFuzzer target for the upstream host allow-lists
 * (policy/src/host.c): the rule grammar (tp_hostlist_add), host name
 * normalization (tp_host_normalize) and the check of a request's host,
 * port and path against the rules (tp_hostlist_check).
 *
 * Why: the signaling proxy asks this for every request, with a host and
 * path that came from the client's URL; a name that normalizes one way
 * here and another way in the upstream connection is an open proxy.
 *
 * What one input is: lines ('\n'), each cut at its first NUL.  Every line
 * is (up to 16 of them) added as a rule to a list made for this input,
 * normalized as a host name, and read as a request "host[:port][/path]"
 * checked against that list and against a fixed list built once from the
 * rules of tests/unit/test_host.c.  Seeds: tests/fuzz/corpus_host, every
 * string of test_host.c (make_corpus.py).
 *
 * Checked, beyond ASan/UBSan/LSan:
 *   - a normalized name is lowercase LDH with no trailing dot, at most
 *     253 bytes, and normalizes to itself;
 *   - a host and its normalized form get the same answer and rule;
 *   - a rule without a wildcard that was accepted matches the request
 *     spelled like it ("a.example.com:8443/api" -> host, port, path);
 *   - an answer other than TP_OK names no rule; TP_OK names one whose
 *     text is the one added at that index.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnpolicy.h"

#define MAX_RULES 16
#define LINE_MAX_ 2048

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rules tests/unit/test_host.c builds its lists from. */
static const char *const fixed_rules[] = {
    "edge.skype.com",
    "*.communication.azure.com",
    "api.flightproxy.skype.com",
    "*.Trouter.Communication.Microsoft.com",
    "b.example.com:8443",
    "c.example.com:*",
    "*.d.example.com:443",
    "p.example.com/api",
    "p.example.com:*/v2/calls/",
    "q.example.com/",
    "xn--bcher-kva.example",
};

static tp_hostlist *fixed;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t i;

    (void)argc;
    (void)argv;
    fixed = tp_hostlist_new(NULL);
    if (fixed == NULL)
        abort();
    for (i = 0; i < sizeof(fixed_rules) / sizeof(fixed_rules[0]); i++)
        if (tp_hostlist_add(fixed, fixed_rules[i], NULL) != TP_OK)
            abort();
    return 0;
}

/* A request as the proxy would pass it. */
typedef struct request {
    char host[LINE_MAX_ + 1];
    unsigned port;
    const char *path;   /* into the line, or NULL */
} request;

/* "host[:port][/path]": port digits (":*" -> 8443, any other text ->
 * what strtoul reads, possibly above 65535), path from the first '/'
 * after the host. */
static void
split(const char *line, request *rq)
{
    size_t hl = strcspn(line, ":/");
    const char *p = line + hl;

    memcpy(rq->host, line, hl);
    rq->host[hl] = '\0';
    rq->port = 0;
    if (*p == ':') {
        p++;
        if (*p == '*') {
            rq->port = 8443;
            p++;
        } else {
            rq->port = (unsigned)strtoul(p, NULL, 10);
        }
        p += strcspn(p, "/");
    }
    rq->path = *p == '/' ? p : NULL;
}

static void
check_answer(const tp_hostlist *hl, tp_status st, const tp_host_match *m,
             const tp_error *err)
{
    if (memchr(err->message, '\0', sizeof(err->message)) == NULL)
        abort();
    if (st != TP_OK) {
        if (m->rule_index != -1 || m->rule != NULL)
            abort();
        return;
    }
    if (m->rule_index < 0 || (size_t)m->rule_index >= tp_hostlist_count(hl) ||
        m->rule == NULL)
        abort();
}

static void
normalized(const char *host, const char *out)
{
    char again[256];
    size_t i, n = strlen(out);

    if (n == 0 || n > 253 || out[n - 1] == '.')
        abort();
    for (i = 0; i < n; i++) {
        char c = out[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            abort();
    }
    if (tp_host_normalize(out, again, sizeof(again), NULL) != TP_OK ||
        strcmp(again, out) != 0)
        abort();
    (void)host;
}

/* Check rq against hl, and its normalized spelling the same way.  Only
 * the first check formats a message (with_err): formatting is a third
 * of a check's time and the same code each time. */
static tp_status
query(const tp_hostlist *hl, const request *rq, const char *norm,
      int with_err)
{
    tp_host_match m, m2;
    tp_error err;
    tp_status st, st2;

    memset(&err, 0, sizeof(err));
    st = tp_hostlist_check(hl, rq->host, rq->port, rq->path, &m,
                           with_err ? &err : NULL);
    check_answer(hl, st, &m, &err);
    if (norm != NULL) {
        st2 = tp_hostlist_check(hl, norm, rq->port, rq->path, &m2, NULL);
        check_answer(hl, st2, &m2, &err);
        if (st2 != st || m2.rule_index != m.rule_index)
            abort();
    }
    return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[LINE_MAX_ + 1];
    char norm[256];
    tp_hostlist *mine;
    tp_status added, st;
    request rq;
    size_t off, n, nrules = 0;
    const uint8_t *nl;
    int have_norm;

    mine = tp_hostlist_new(NULL);
    if (mine == NULL)
        abort();
    for (off = 0; off < size; off += n + 1) {
        nl = memchr(data + off, '\n', size - off);
        n = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
        if (n > LINE_MAX_)
            break;
        memcpy(line, data + off, n);
        line[n] = '\0';

        added = TP_EINVAL;
        if (nrules < MAX_RULES) {
            added = tp_hostlist_add(mine, line, NULL);
            if (added == TP_OK)
                nrules++;
            if (tp_hostlist_count(mine) != nrules)
                abort();
        }
        split(line, &rq);
        have_norm = tp_host_normalize(rq.host, norm, sizeof(norm), NULL) ==
                    TP_OK;
        if (have_norm)
            normalized(rq.host, norm);
        (void)query(fixed, &rq, have_norm ? norm : NULL, 0);
        st = query(mine, &rq, have_norm ? norm : NULL, 1);
        /* An exact rule just accepted allows the request spelled like
         * it. */
        if (added == TP_OK && line[0] != '*' && st != TP_OK)
            abort();
    }
    tp_hostlist_free(mine);
    return 0;
}
