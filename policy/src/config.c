/*
 * config.c - the key = value configuration file shared by the turnpolicy
 * CLI, turnpolicyd and the nginx module, secret files, and the builders
 * that turn a realm's section into a keyring, peer set or host list.
 *
 * Format (one line each; '#' or ';' starts a comment line):
 *
 *     key = value               # global section ""
 *     [realm example.org]       # starts section "realm example.org"
 *     key = "value with spaces"
 *
 * Keys are [a-z0-9_.-]+; a value is the rest of the line with surrounding
 * whitespace trimmed, or a double-quoted string (\" and \\ escapes).  A
 * key may appear once per section and a section header once per file, so
 * a typo cannot silently override an earlier line.  Errors name the file
 * and line.  Files are small (at most 1 MiB, lines at most 4 KiB); the
 * parsed form is a flat array of entries, looked up linearly at startup.
 *
 * Secrets never live in the configuration file itself: it names files
 * (secret.<kid> = <state> <path>), which must not be accessible to others
 * (mode & 0027 == 0: 0600, 0400, 0640 and 0440 are accepted), so the
 * configuration can be world-readable and checked into version control.
 */
#include "tp_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096
#define KEYFILE_MAX (16 * 1024)

typedef struct config_entry {
    size_t section; /* index into sections */
    char *key;
    char *value;
    unsigned line;
} config_entry;

struct tp_config {
    char *name;
    char **sections; /* sections[0] == "" (global) */
    size_t nsections;
    config_entry *entries;
    size_t nentries;
    size_t cap;
};

void
tp_config_free(tp_config *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->nentries; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    for (i = 0; i < cfg->nsections; i++)
        free(cfg->sections[i]);
    free(cfg->entries);
    free(cfg->sections);
    free(cfg->name);
    free(cfg);
}

static char *
dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static long
section_index(const tp_config *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nsections; i++) {
        if (strcmp(cfg->sections[i], name) == 0)
            return (long)i;
    }
    return -1;
}

static int
add_section(tp_config *cfg, const char *name, size_t n)
{
    char **ns;
    char *s;

    s = dup_n(name, n);
    if (s == NULL)
        return -1;
    ns = realloc(cfg->sections, (cfg->nsections + 1) * sizeof(*ns));
    if (ns == NULL) {
        free(s);
        return -1;
    }
    cfg->sections = ns;
    cfg->sections[cfg->nsections++] = s;
    return 0;
}

static const config_entry *
find_entry(const tp_config *cfg, size_t sec, const char *key)
{
    size_t i;

    for (i = 0; i < cfg->nentries; i++) {
        if (cfg->entries[i].section == sec &&
            strcmp(cfg->entries[i].key, key) == 0)
            return &cfg->entries[i];
    }
    return NULL;
}

static int
is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static int
key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Unquote "..." in place into out (at most n bytes + NUL).  Returns the
 * length or -1 on an unterminated string or trailing garbage. */
static long
unquote(const char *s, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 1; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
            out[o++] = s[++i];
        else if (s[i] == '"')
            break;
        else
            out[o++] = s[i];
    }
    if (i != n - 1)
        return -1;
    out[o] = '\0';
    return (long)o;
}

static tp_status
parse_line(tp_config *cfg, const char *line, size_t n, unsigned lineno,
           size_t *cur, tp_error *err)
{
    const char *eq, *k, *v;
    size_t klen, vlen, i;
    config_entry *e;
    char *val;
    long vl;

    while (n > 0 && is_ws(line[0])) {
        line++;
        n--;
    }
    while (n > 0 && (is_ws(line[n - 1]) || line[n - 1] == '\r'))
        n--;
    if (n == 0 || line[0] == '#' || line[0] == ';')
        return TP_OK;
    if (line[0] == '[') {
        const char *name = line + 1;
        size_t nn;
        char *tmp;

        if (line[n - 1] != ']')
            return tp__fail(err, TP_ECONFIG, "%s:%u: section header must "
                            "end with ']'", cfg->name, lineno);
        nn = n - 2;
        while (nn > 0 && is_ws(name[0])) {
            name++;
            nn--;
        }
        while (nn > 0 && is_ws(name[nn - 1]))
            nn--;
        if (nn == 0)
            return tp__fail(err, TP_ECONFIG, "%s:%u: empty section name",
                            cfg->name, lineno);
        tmp = dup_n(name, nn);
        if (tmp == NULL)
            return tp__fail(err, TP_ENOMEM, "out of memory");
        if (section_index(cfg, tmp) >= 0) {
            tp__fail(err, TP_ECONFIG, "%s:%u: section [%.64s] is duplicate",
                     cfg->name, lineno, tmp);
            free(tmp);
            return TP_ECONFIG;
        }
        free(tmp);
        if (add_section(cfg, name, nn) != 0)
            return tp__fail(err, TP_ENOMEM, "out of memory");
        *cur = cfg->nsections - 1;
        return TP_OK;
    }
    eq = memchr(line, '=', n);
    if (eq == NULL)
        return tp__fail(err, TP_ECONFIG, "%s:%u: expected \"key = value\"",
                        cfg->name, lineno);
    k = line;
    klen = (size_t)(eq - line);
    while (klen > 0 && is_ws(k[klen - 1]))
        klen--;
    if (klen == 0)
        return tp__fail(err, TP_ECONFIG, "%s:%u: missing key before '='",
                        cfg->name, lineno);
    for (i = 0; i < klen; i++) {
        if (!key_char_ok(k[i]))
            return tp__fail(err, TP_ECONFIG, "%s:%u: key may only contain "
                            "a-z, 0-9, '_', '.' and '-'", cfg->name, lineno);
    }
    v = eq + 1;
    vlen = n - (size_t)(v - line);
    while (vlen > 0 && is_ws(v[0])) {
        v++;
        vlen--;
    }
    val = malloc(vlen + 1);
    if (val == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    if (vlen > 0 && v[0] == '"') {
        vl = unquote(v, vlen, val);
        if (vl < 0) {
            free(val);
            return tp__fail(err, TP_ECONFIG, "%s:%u: unterminated quoted "
                            "value", cfg->name, lineno);
        }
    } else {
        memcpy(val, v, vlen);
        val[vlen] = '\0';
    }
    if (cfg->nentries == cfg->cap) {
        size_t ncap = cfg->cap == 0 ? 16 : cfg->cap * 2;
        config_entry *ne = realloc(cfg->entries, ncap * sizeof(*ne));

        if (ne == NULL) {
            free(val);
            return tp__fail(err, TP_ENOMEM, "out of memory");
        }
        cfg->entries = ne;
        cfg->cap = ncap;
    }
    e = &cfg->entries[cfg->nentries];
    e->key = dup_n(k, klen);
    if (e->key == NULL) {
        free(val);
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    if (find_entry(cfg, *cur, e->key) != NULL) {
        tp__fail(err, TP_ECONFIG, "%s:%u: key \"%s\" is duplicate in "
                 "section [%s]", cfg->name, lineno, e->key,
                 cfg->sections[*cur]);
        free(e->key);
        free(val);
        return TP_ECONFIG;
    }
    e->value = val;
    e->section = *cur;
    e->line = lineno;
    cfg->nentries++;
    return TP_OK;
}

tp_status
tp_config_parse(const char *text, size_t len, const char *name,
                tp_config **out, tp_error *err)
{
    tp_config *cfg;
    size_t pos = 0, cur = 0;
    unsigned lineno = 0;
    tp_status st;

    if (text == NULL || out == NULL)
        return tp__fail(err, TP_EINVAL, "text and output are required");
    *out = NULL;
    if (len > CONFIG_FILE_MAX)
        return tp__fail(err, TP_ETOOLONG, "%s is larger than %d bytes",
                        name != NULL ? name : "config", CONFIG_FILE_MAX);
    if (memchr(text, '\0', len) != NULL)
        return tp__fail(err, TP_ECONFIG, "%s contains a NUL byte",
                        name != NULL ? name : "config");
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    cfg->name = dup_n(name != NULL ? name : "config",
                      strlen(name != NULL ? name : "config"));
    if (cfg->name == NULL || add_section(cfg, "", 0) != 0) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

        lineno++;
        if (n > CONFIG_LINE_MAX) {
            st = tp__fail(err, TP_ECONFIG, "%s:%u: line longer than %d "
                          "bytes", cfg->name, lineno, CONFIG_LINE_MAX);
            goto fail;
        }
        st = parse_line(cfg, text + pos, n, lineno, &cur, err);
        if (st != TP_OK)
            goto fail;
        pos += n + (nl != NULL ? 1 : 0);
    }
    *out = cfg;
    tp__ok(err);
    return TP_OK;

fail:
    tp_config_free(cfg);
    return st;
}

tp_status
tp__read_file(const char *path, size_t max, int check_perms, char **buf,
          size_t *len, tp_error *err)
{
    struct stat sb;
    char shown[128];
    ssize_t r;
    size_t got = 0;
    char *p = NULL;
    int fd;
    tp_status st;

    *buf = NULL;
    tp__printable(shown, sizeof(shown), path, 100);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tp__fail(err, TP_EIO, "cannot open %s: %s", shown,
                        strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = tp__fail(err, TP_EIO, "cannot stat %s: %s", shown,
                      strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = tp__fail(err, TP_EIO, "%s is not a regular file", shown);
        goto fail;
    }
    if (check_perms && (sb.st_mode & 0027) != 0) {
        st = tp__fail(err, TP_EPERM, "%s has mode %04o; a secret file must "
                      "not be accessible to others nor writable by its group "
                      "(chmod 600 %s)", shown, (unsigned)(sb.st_mode & 07777),
                      shown);
        goto fail;
    }
    if ((uint64_t)sb.st_size > max) {
        st = tp__fail(err, TP_ETOOLONG, "%s is larger than %zu bytes", shown,
                      max);
        goto fail;
    }
    p = malloc(max + 1);
    if (p == NULL) {
        st = tp__fail(err, TP_ENOMEM, "out of memory");
        goto fail;
    }
    for (;;) {
        r = read(fd, p + got, max + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = tp__fail(err, TP_EIO, "cannot read %s: %s", shown,
                          strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > max) {
            st = tp__fail(err, TP_ETOOLONG, "%s is larger than %zu bytes",
                          shown, max);
            goto fail;
        }
    }
    close(fd);
    p[got] = '\0';
    *buf = p;
    *len = got;
    return TP_OK;

fail:
    if (p != NULL) {
        tp__wipe(p, max + 1);
        free(p);
    }
    close(fd);
    return st;
}

tp_status
tp_config_load(const char *path, tp_config **out, tp_error *err)
{
    char *text;
    size_t len;
    tp_status st;

    if (path == NULL || out == NULL)
        return tp__fail(err, TP_EINVAL, "path and output are required");
    *out = NULL;
    st = tp__read_file(path, CONFIG_FILE_MAX, 0, &text, &len, err);
    if (st != TP_OK)
        return st;
    st = tp_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

const char *
tp_config_get(const tp_config *cfg, const char *section, const char *key)
{
    const config_entry *e;
    long sec;

    if (cfg == NULL || key == NULL)
        return NULL;
    sec = section_index(cfg, section != NULL ? section : "");
    if (sec < 0)
        return NULL;
    e = find_entry(cfg, (size_t)sec, key);
    return e != NULL ? e->value : NULL;
}

static unsigned
entry_line(const tp_config *cfg, const char *section, const char *key)
{
    long sec = section_index(cfg, section != NULL ? section : "");
    const config_entry *e;

    if (sec < 0)
        return 0;
    e = find_entry(cfg, (size_t)sec, key);
    return e != NULL ? e->line : 0;
}

tp_status
tp_config_get_int(const tp_config *cfg, const char *section, const char *key,
                  int64_t min, int64_t max, int64_t dflt, int64_t *out,
                  tp_error *err)
{
    const char *v = tp_config_get(cfg, section, key);
    char *end;
    long long n;

    if (v == NULL) {
        *out = dflt;
        return TP_OK;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
        return tp__fail(err, TP_ECONFIG, "%s:%u: %s must be an integer from "
                        "%" PRId64 " to %" PRId64, cfg->name,
                        entry_line(cfg, section, key), key, min, max);
    *out = (int64_t)n;
    return TP_OK;
}

const char *
tp_config_section(const tp_config *cfg, size_t index)
{
    if (cfg == NULL || index >= cfg->nsections)
        return NULL;
    return cfg->sections[index];
}

const char *
tp_config_key_at(const tp_config *cfg, const char *section, size_t index,
                 const char **value)
{
    long sec;
    size_t i, seen = 0;

    if (cfg == NULL)
        return NULL;
    sec = section_index(cfg, section != NULL ? section : "");
    if (sec < 0)
        return NULL;
    for (i = 0; i < cfg->nentries; i++) {
        if (cfg->entries[i].section != (size_t)sec)
            continue;
        if (seen++ == index) {
            if (value != NULL)
                *value = cfg->entries[i].value;
            return cfg->entries[i].key;
        }
    }
    return NULL;
}

tp_status
tp_secret_file_read(const char *path, void *buf, size_t cap, size_t *len,
                    tp_error *err)
{
    char *p;
    size_t n;
    tp_status st;

    if (path == NULL || buf == NULL || len == NULL)
        return tp__fail(err, TP_EINVAL, "path, buffer and length are "
                        "required");
    st = tp__read_file(path, cap + 2, 1, &p, &n, err);
    if (st != TP_OK)
        return st;
    if (n > 0 && p[n - 1] == '\n') {
        n--;
        if (n > 0 && p[n - 1] == '\r')
            n--;
    }
    if (n > cap) {
        char shown[128];

        tp__printable(shown, sizeof(shown), path, 100);
        tp__wipe(p, cap + 3);
        free(p);
        return tp__fail(err, TP_ETOOLONG, "secret in %s is longer than %zu "
                        "bytes", shown, cap);
    }
    memcpy(buf, p, n);
    *len = n;
    tp__wipe(p, cap + 3);
    free(p);
    tp__ok(err);
    return TP_OK;
}

/* ------------------------------------------------------------------ */
/* Builders                                                            */
/* ------------------------------------------------------------------ */

static tp_status
realm_section(const tp_config *cfg, const char *realm, char *sec, size_t cap,
              tp_error *err)
{
    tp_status st = tp_realm_check(realm, err);

    if (st != TP_OK)
        return st;
    if (cfg == NULL)
        return tp__fail(err, TP_EINVAL, "configuration is required");
    snprintf(sec, cap, "realm %s", realm);
    if (section_index(cfg, sec) < 0)
        return tp__fail(err, TP_ENOTFOUND, "%s has no [realm %s] section",
                        cfg->name, realm);
    return TP_OK;
}

/* Split "word rest" at the first run of whitespace. */
static int
split2(const char *v, char *first, size_t cap, const char **rest)
{
    size_t n = 0;

    while (v[n] != '\0' && !isspace((unsigned char)v[n]))
        n++;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(first, v, n);
    first[n] = '\0';
    v += n;
    while (*v != '\0' && isspace((unsigned char)*v))
        v++;
    if (*v == '\0')
        return -1;
    *rest = v;
    return 0;
}

tp_keyring *
tp_keyring_from_config(const tp_config *cfg, const char *realm,
                       tp_error *err)
{
    unsigned char secret[TP_SECRET_MAX];
    tp_keyring_options o;
    tp_keyring *kr = NULL;
    const char *key, *val, *path;
    char sec[TP_REALM_MAX + 8];
    char state_s[16];
    tp_secret_state state;
    int64_t v;
    size_t i, len = 0;
    tp_status st;

    if (realm_section(cfg, realm, sec, sizeof(sec), err) != TP_OK)
        return NULL;
    memset(&o, 0, sizeof(o));
    /* 0 lets tp_keyring_new pick: default_ttl = min(3600, max_ttl). */
    if (tp_config_get_int(cfg, sec, "default_ttl", 1, TP_TTL_MAX, 0, &v,
                          err) != TP_OK)
        return NULL;
    o.default_ttl = (uint32_t)v;
    if (tp_config_get_int(cfg, sec, "max_ttl", 1, TP_TTL_MAX, 86400, &v,
                          err) != TP_OK)
        return NULL;
    o.max_ttl = (uint32_t)v;
    if (tp_config_get_int(cfg, sec, "clock_skew", 1, 3600, 60, &v, err) !=
        TP_OK)
        return NULL;
    o.clock_skew = (uint32_t)v;
    kr = tp_keyring_new(realm, &o, err);
    if (kr == NULL)
        return NULL;
    for (i = 0; (key = tp_config_key_at(cfg, sec, i, &val)) != NULL; i++) {
        if (strncmp(key, "secret.", 7) != 0)
            continue;
        if (split2(val, state_s, sizeof(state_s), &path) != 0 ||
            tp_secret_state_parse(state_s, &state) != TP_OK) {
            tp__fail(err, TP_ECONFIG, "%s:%u: %s must be \"<signing|"
                     "verify-only|retired> <path>\"", cfg->name,
                     entry_line(cfg, sec, key), key);
            goto fail;
        }
        st = tp_secret_file_read(path, secret, sizeof(secret), &len, err);
        if (st != TP_OK)
            goto fail;
        st = tp_keyring_add(kr, key + 7, secret, len, state, err);
        tp__wipe(secret, sizeof(secret));
        if (st != TP_OK)
            goto fail;
    }
    path = tp_config_get(cfg, sec, "legacy_secret");
    if (path != NULL) {
        st = tp_secret_file_read(path, secret, sizeof(secret), &len, err);
        if (st != TP_OK)
            goto fail;
        st = tp_keyring_set_legacy(kr, secret, len, err);
        tp__wipe(secret, sizeof(secret));
        if (st != TP_OK)
            goto fail;
    }
    tp__ok(err);
    return kr;

fail:
    tp__wipe(secret, sizeof(secret));
    tp_keyring_free(kr);
    return NULL;
}

/* Call fn for each whitespace- or comma-separated word of v. */
static tp_status
each_word(const char *v, tp_status (*fn)(void *, const char *), void *ud)
{
    char word[512];
    size_t n;
    tp_status st;

    while (*v != '\0') {
        while (*v != '\0' && (isspace((unsigned char)*v) || *v == ','))
            v++;
        n = 0;
        while (v[n] != '\0' && !isspace((unsigned char)v[n]) && v[n] != ',')
            n++;
        if (n == 0)
            break;
        if (n >= sizeof(word))
            return TP_ETOOLONG;
        memcpy(word, v, n);
        word[n] = '\0';
        st = fn(ud, word);
        if (st != TP_OK)
            return st;
        v += n;
    }
    return TP_OK;
}

typedef struct peer_ctx {
    tp_peerset *ps;
    tp_peer_action action;
    tp_error *err;
} peer_ctx;

static tp_status
peer_word(void *ud, const char *w)
{
    peer_ctx *c = ud;

    return tp_peerset_add(c->ps, w, c->action, c->err);
}

tp_peerset *
tp_peerset_from_config(const tp_config *cfg, const char *realm,
                       tp_error *err)
{
    char sec[TP_REALM_MAX + 8];
    const char *v;
    peer_ctx c;
    tp_status st;

    if (realm_section(cfg, realm, sec, sizeof(sec), err) != TP_OK)
        return NULL;
    c.ps = tp_peerset_new(err);
    if (c.ps == NULL)
        return NULL;
    c.err = err;
    v = tp_config_get(cfg, sec, "peer_default");
    if (v != NULL) {
        if (strcmp(v, "allow") == 0) {
            tp_peerset_set_default(c.ps, TP_PEER_ALLOW);
        } else if (strcmp(v, "deny") == 0) {
            tp_peerset_set_default(c.ps, TP_PEER_DENY);
        } else {
            tp__fail(err, TP_ECONFIG, "%s:%u: peer_default must be allow or "
                     "deny", cfg->name, entry_line(cfg, sec, "peer_default"));
            goto fail;
        }
    }
    c.action = TP_PEER_ALLOW;
    v = tp_config_get(cfg, sec, "peer_allow");
    if (v != NULL) {
        st = each_word(v, peer_word, &c);
        if (st != TP_OK) {
            if (st == TP_ETOOLONG)
                tp__fail(err, st, "%s: peer_allow has an overlong entry",
                         cfg->name);
            goto fail;
        }
    }
    c.action = TP_PEER_DENY;
    v = tp_config_get(cfg, sec, "peer_deny");
    if (v != NULL) {
        st = each_word(v, peer_word, &c);
        if (st != TP_OK) {
            if (st == TP_ETOOLONG)
                tp__fail(err, st, "%s: peer_deny has an overlong entry",
                         cfg->name);
            goto fail;
        }
    }
    tp__ok(err);
    return c.ps;

fail:
    tp_peerset_free(c.ps);
    return NULL;
}

typedef struct host_ctx {
    tp_hostlist *hl;
    tp_error *err;
} host_ctx;

static tp_status
host_word(void *ud, const char *w)
{
    host_ctx *c = ud;

    return tp_hostlist_add(c->hl, w, c->err);
}

tp_hostlist *
tp_hostlist_from_config(const tp_config *cfg, const char *realm,
                        tp_error *err)
{
    char sec[TP_REALM_MAX + 8];
    const char *v;
    host_ctx c;
    tp_status st;

    if (realm_section(cfg, realm, sec, sizeof(sec), err) != TP_OK)
        return NULL;
    c.hl = tp_hostlist_new(err);
    if (c.hl == NULL)
        return NULL;
    c.err = err;
    v = tp_config_get(cfg, sec, "hosts");
    if (v != NULL) {
        st = each_word(v, host_word, &c);
        if (st != TP_OK) {
            if (st == TP_ETOOLONG)
                tp__fail(err, st, "%s: hosts has an overlong entry",
                         cfg->name);
            tp_hostlist_free(c.hl);
            return NULL;
        }
    }
    tp__ok(err);
    return c.hl;
}

tp_status
tp_jwt_options_from_config(const tp_config *cfg, tp_jwt_options *out,
                           tp_error *err)
{
    int64_t leeway, lifetime;
    tp_status st;

    if (cfg == NULL || out == NULL)
        return tp__fail(err, TP_EINVAL, "configuration is required");
    memset(out, 0, sizeof(*out));
    st = tp_config_get_int(cfg, "", "jwt_leeway", 0, 3600, 30, &leeway, err);
    if (st == TP_OK)
        st = tp_config_get_int(cfg, "", "jwt_max_lifetime", 60,
                               TP_JWT_LIFETIME_MAX, TP_JWT_LIFETIME_DEFAULT,
                               &lifetime, err);
    if (st != TP_OK)
        return st;
    out->issuer = tp_config_get(cfg, "", "jwt_issuer");
    out->audience = tp_config_get(cfg, "", "jwt_audience");
    out->realm_claim = tp_config_get(cfg, "", "jwt_realm_claim");
    out->leeway = (uint32_t)leeway;
    out->max_lifetime = (uint32_t)lifetime;
    out->require_exp = 1;
    tp__ok(err);
    return TP_OK;
}

/* A yes/no key of section: *out 0 or 1 (default 0).  TP_OK or
 * TP_ECONFIG. */
static tp_status
get_bool(const tp_config *cfg, const char *section, const char *key,
         int *out, tp_error *err)
{
    const char *v = tp_config_get(cfg, section, key);

    *out = 0;
    if (v == NULL || strcmp(v, "no") == 0)
        return TP_OK;
    if (strcmp(v, "yes") == 0) {
        *out = 1;
        return TP_OK;
    }
    return tp__fail(err, TP_ECONFIG, "%s:%u: %s must be yes or no",
                    cfg->name, entry_line(cfg, section, key), key);
}

tp_status
tp_store_options_from_config(const tp_config *cfg, const char *section,
                             tp_store_options *out, tp_store_config *hold,
                             tp_error *err)
{
    const char *v, *colon;
    int64_t n;
    size_t len;
    tp_status st;

    if (cfg == NULL || section == NULL || out == NULL || hold == NULL)
        return tp__fail(err, TP_EINVAL, "configuration, section, options "
                        "and holder are required");
    memset(out, 0, sizeof(*out));
    memset(hold, 0, sizeof(*hold));
    out->database = tp_config_get(cfg, section, "database");
    if (out->database == NULL)
        out->database = tp_config_get(cfg, "", "database_url");
    v = tp_config_get(cfg, section, "redis");
    if (v != NULL) {
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v ||
            (size_t)(colon - v) >= sizeof(hold->redis_host) ||
            tp__parse_i64(colon + 1, strlen(colon + 1), &n) != 0 ||
            n < 1 || n > 65535)
            return tp__fail(err, TP_ECONFIG, "%s:%u: redis must be "
                            "HOST:PORT, not \"%s\"", cfg->name,
                            entry_line(cfg, section, "redis"), v);
        memcpy(hold->redis_host, v, (size_t)(colon - v));
        hold->redis_host[colon - v] = '\0';
        out->redis_host = hold->redis_host;
        out->redis_port = (int)n;
    }
    v = tp_config_get(cfg, section, "redis_password_file");
    if (v != NULL) {
        st = tp_secret_file_read(v, hold->redis_password,
                                 sizeof(hold->redis_password) - 1, &len, err);
        if (st != TP_OK) {
            tp_store_config_clear(hold);
            return st;
        }
        hold->redis_password[len] = '\0';
        out->redis_password = hold->redis_password;
    }
    v = tp_config_get(cfg, section, "redis_fail_mode");
    if (v == NULL || strcmp(v, "closed") == 0) {
        out->redis_fail_mode = TP_FAIL_CLOSED;
    } else if (strcmp(v, "open") == 0) {
        out->redis_fail_mode = TP_FAIL_OPEN;
    } else {
        st = tp__fail(err, TP_ECONFIG, "%s:%u: redis_fail_mode must be "
                      "closed or open", cfg->name,
                      entry_line(cfg, section, "redis_fail_mode"));
        goto fail;
    }
    st = get_bool(cfg, section, "no_listen", &out->no_listen, err);
    if (st != TP_OK)
        goto fail;
    st = tp_config_get_int(cfg, section, "max_staleness", 1, 86400, 30, &n,
                           err);
    if (st != TP_OK)
        goto fail;
    out->max_staleness = (uint32_t)n;
    st = tp_config_get_int(cfg, section, "reload_interval", 1, 86400, 600, &n,
                           err);
    if (st != TP_OK)
        goto fail;
    out->reload_interval = (uint32_t)n;
    st = tp_config_get_int(cfg, section, "issue_per_minute", 0, 1000000, 0,
                           &n, err);
    if (st != TP_OK)
        goto fail;
    out->issue_per_minute = (uint32_t)n;
    st = tp_jwt_options_from_config(cfg, &hold->jwt, err);
    if (st != TP_OK)
        goto fail;
    out->jwt = &hold->jwt;
    tp__ok(err);
    return TP_OK;

fail:
    tp_store_config_clear(hold);
    out->redis_password = NULL;
    return st;
}

void
tp_store_config_clear(tp_store_config *hold)
{
    if (hold != NULL)
        tp__wipe(hold->redis_password, sizeof(hold->redis_password));
}

tp_jwt_keys *
tp_jwt_keys_from_config(const tp_config *cfg, tp_error *err)
{
    tp_jwt_options o;
    tp_jwt_keys *jk;
    const char *key, *val, *path;
    char alg_s[16];
    tp_jwt_alg alg;
    size_t i, len;
    char *buf = NULL;
    tp_status st;

    if (tp_jwt_options_from_config(cfg, &o, err) != TP_OK)
        return NULL;
    jk = tp_jwt_keys_new(&o, err);
    if (jk == NULL)
        return NULL;
    for (i = 0; (key = tp_config_key_at(cfg, "", i, &val)) != NULL; i++) {
        const char *kid;

        if (strncmp(key, "jwt_key.", 8) != 0)
            continue;
        kid = key + 8;
        if (strcmp(kid, "-") == 0)
            kid = NULL;
        if (split2(val, alg_s, sizeof(alg_s), &path) != 0 ||
            tp_jwt_alg_parse(alg_s, &alg) != TP_OK) {
            tp__fail(err, TP_ECONFIG, "%s:%u: %s must be \"<HS256|HS384|"
                     "HS512|RS256|ES256> <path>\"", cfg->name,
                     entry_line(cfg, "", key), key);
            goto fail;
        }
        /* HMAC secrets and private keys must be protected; public keys
         * need not be. */
        st = tp__read_file(path, KEYFILE_MAX, alg <= TP_JWT_HS512, &buf, &len,
                       err);
        if (st != TP_OK)
            goto fail;
        if (alg > TP_JWT_HS512 && strstr(buf, "PRIVATE KEY") != NULL) {
            tp__wipe(buf, KEYFILE_MAX + 1);
            free(buf);
            buf = NULL;
            st = tp__read_file(path, KEYFILE_MAX, 1, &buf, &len, err);
            if (st != TP_OK)
                goto fail;
        }
        if (alg <= TP_JWT_HS512 && len > 0 && buf[len - 1] == '\n')
            len--;
        st = tp_jwt_keys_add(jk, kid, alg, buf, len, err);
        tp__wipe(buf, KEYFILE_MAX + 1);
        free(buf);
        buf = NULL;
        if (st != TP_OK)
            goto fail;
    }
    tp__ok(err);
    return jk;

fail:
    tp_jwt_keys_free(jk);
    return NULL;
}
