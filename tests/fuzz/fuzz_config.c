/*
 * fuzz_config.c - libFuzzer target for the configuration file parser
 * (tp_config_parse in policy/src/config.c, the same code tp_config_load
 * runs on a file's bytes) and the builders that read a parsed file: each
 * [realm NAME]'s peer set, host list and keyring options, and the global
 * JWT options.
 *
 * Why: the CLI, turnpolicyd and the nginx module all start from this
 * file; a line that parses into something other than what its author
 * meant (a value cut short, a key landing in another section) is a
 * silent misconfiguration of a security policy.
 *
 * What one input is: the file's text, parsed from memory (no temporary
 * file).  Builders that would open files are called only when the
 * configuration names none: tp_keyring_from_config for realms without
 * secret.* or legacy_secret keys, tp_jwt_keys_from_config without
 * jwt_key.* keys.  Seeds: tests/fuzz/corpus_config (make_corpus.py, the
 * configurations of tests/unit/test_config.c and the shipped example).
 *
 * Checked, beyond ASan/UBSan/LSan:
 *   - every key is [a-z0-9_.-]+ and tp_config_get finds the value that
 *     iteration reports; no value holds a newline;
 *   - written back out (every value quoted, '"' and '\' escaped) the
 *     configuration parses to the same sections, keys and values in the
 *     same order (round trip);
 *   - a refusal is a terminated message naming the configuration;
 *   - builders either return an object or fail with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnpolicy.h"

#define NAME "fuzz.conf"
#define MAX_TEXT (256 * 1024)
#define LINE_LIMIT 4096  /* config.c's CONFIG_LINE_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char out_text[2 * MAX_TEXT + 65536];
static size_t out_len;
static int out_overflow;

static void
emit(const char *s, size_t n)
{
    if (out_len + n > sizeof(out_text)) {
        out_overflow = 1;
        return;
    }
    memcpy(out_text + out_len, s, n);
    out_len += n;
}

/* One line: returns 0, or -1 if it would be longer than the parser
 * takes (the round trip is then skipped). */
static int
emit_entry(const char *key, const char *val)
{
    size_t start = out_len;
    const char *p;

    emit(key, strlen(key));
    emit(" = \"", 4);
    for (p = val; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            emit("\\", 1);
        emit(p, 1);
    }
    emit("\"\n", 2);
    return out_len - start - 1 > LINE_LIMIT ? -1 : 0;
}

/* cfg written back out; -1 if that is not possible within the limits. */
static int
write_back(const tp_config *cfg)
{
    const char *sec, *key, *val;
    size_t i, j;

    out_len = 0;
    out_overflow = 0;
    for (i = 0; (sec = tp_config_section(cfg, i)) != NULL; i++) {
        if (i > 0) {
            if (strlen(sec) + 2 > LINE_LIMIT)
                return -1;
            emit("[", 1);
            emit(sec, strlen(sec));
            emit("]\n", 2);
        } else if (sec[0] != '\0') {
            abort(); /* section 0 is the global one */
        }
        for (j = 0; (key = tp_config_key_at(cfg, sec, j, &val)) != NULL;
             j++)
            if (emit_entry(key, val) != 0)
                return -1;
    }
    return out_overflow ? -1 : 0;
}

static void
same(const tp_config *a, const tp_config *b)
{
    const char *sa, *sb, *ka, *kb, *va, *vb;
    size_t i, j;

    for (i = 0;; i++) {
        sa = tp_config_section(a, i);
        sb = tp_config_section(b, i);
        if ((sa == NULL) != (sb == NULL))
            abort();
        if (sa == NULL)
            break;
        if (strcmp(sa, sb) != 0)
            abort();
        for (j = 0;; j++) {
            ka = tp_config_key_at(a, sa, j, &va);
            kb = tp_config_key_at(b, sb, j, &vb);
            if ((ka == NULL) != (kb == NULL))
                abort();
            if (ka == NULL)
                break;
            if (strcmp(ka, kb) != 0 || strcmp(va, vb) != 0)
                abort();
        }
    }
}

static void
check_entries(const tp_config *cfg)
{
    const char *sec, *key, *val, *p;
    size_t i, j;
    int64_t v;

    for (i = 0; (sec = tp_config_section(cfg, i)) != NULL; i++) {
        for (j = 0; (key = tp_config_key_at(cfg, sec, j, &val)) != NULL;
             j++) {
            if (key[0] == '\0' || strchr(val, '\n') != NULL)
                abort();
            for (p = key; *p != '\0'; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '.' || *p == '-'))
                    abort();
            if (tp_config_get(cfg, sec, key) != val)
                abort();
            (void)tp_config_get_int(cfg, sec, key, -1000, 1000, 0, &v, NULL);
        }
    }
}

static int
names_files(const tp_config *cfg, const char *sec, const char *const *pfx)
{
    const char *key, *val;
    size_t j, k;

    for (j = 0; (key = tp_config_key_at(cfg, sec, j, &val)) != NULL; j++)
        for (k = 0; pfx[k] != NULL; k++)
            if (strncmp(key, pfx[k], strlen(pfx[k])) == 0)
                return 1;
    return 0;
}

static void
builders(const tp_config *cfg)
{
    static const char *const realm_files[] = {"secret.", "legacy_secret",
                                              NULL};
    static const char *const jwt_files[] = {"jwt_key.", NULL};
    const char *sec;
    tp_peerset *ps;
    tp_hostlist *hl;
    tp_keyring *kr;
    tp_jwt_keys *jk;
    tp_error err;
    size_t i;

    for (i = 1; (sec = tp_config_section(cfg, i)) != NULL; i++) {
        if (strncmp(sec, "realm ", 6) != 0)
            continue;
        ps = tp_peerset_from_config(cfg, sec + 6, &err);
        if (ps == NULL && memchr(err.message, '\0', sizeof(err.message)) ==
                              NULL)
            abort();
        tp_peerset_free(ps);
        hl = tp_hostlist_from_config(cfg, sec + 6, &err);
        if (hl == NULL && err.message[0] == '\0')
            abort();
        tp_hostlist_free(hl);
        if (!names_files(cfg, sec, realm_files)) {
            kr = tp_keyring_from_config(cfg, sec + 6, &err);
            if (kr == NULL && err.message[0] == '\0')
                abort();
            tp_keyring_free(kr);
        }
    }
    if (!names_files(cfg, "", jwt_files)) {
        jk = tp_jwt_keys_from_config(cfg, &err);
        if (jk == NULL && err.message[0] == '\0')
            abort();
        tp_jwt_keys_free(jk);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_config *cfg = NULL, *again = NULL;
    tp_error err;
    tp_status st;

    if (size > MAX_TEXT)
        return 0;
    st = tp_config_parse((const char *)data, size, NAME, &cfg, &err);
    if (st != TP_OK) {
        if (cfg != NULL || memchr(err.message, '\0', sizeof(err.message)) ==
                               NULL ||
            (st == TP_ECONFIG && strstr(err.message, NAME) == NULL))
            abort();
        return 0;
    }
    check_entries(cfg);
    if (write_back(cfg) == 0) {
        if (tp_config_parse(out_text, out_len, NAME, &again, &err) != TP_OK)
            abort();
        same(cfg, again);
        tp_config_free(again);
    }
    builders(cfg);
    tp_config_free(cfg);
    return 0;
}
