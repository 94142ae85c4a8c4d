/*
 * store_base.c - one copy of the users per node: a read-only base file
 * the stores of a node (nginx workers) map, under which each store keeps
 * only what changed since.
 *
 * What: with share_dir, a full read does not fill private tables: the
 * store that needs one takes the directory's lock, and unless a base
 * recent enough is already there, it writes one - every user and revoked
 * credential as the entries the tables hold (store_int.h), their hash
 * slots as offsets, the realms' names and byte sums, and where the
 * change log stood - to base.<pid>.tmp and renames it to base.  A store then
 * attaches the base: it maps the file read-only and, in one REPEATABLE
 * READ transaction, loads the realms (small, private: they hold OpenSSL
 * objects) and reads the change log from the base's position to now,
 * applying it to its own, initially empty tables (store_delta.c) before
 * publishing.  Lookups ask the store's tables first, the base after
 * (store_table.c); a removal over the base is a deletion mark.  Other
 * stores notice a new base on their heartbeat and attach it too, so a
 * node converges on one base and every store drops its changes.
 *
 * Layout (native byte order and alignment; the file never leaves the
 * node): a header (base_hdr) at 0, entries from BASE_DATA on, each
 * 8-aligned, then per table an array of uint32_t slots (entry offset / 8,
 * 0 = empty; linear probing on tp__key_hash, as store_table.c), the
 * realms' names (NUL-terminated, in the snapshot's order), their byte
 * sums (uint64_t) and the log's xip text.
 *
 * Why: an nginx node with N workers held N copies (335 MB at 1M users
 * and 4 workers); a base is one, counted once however many map it.
 * The directory is the node's own (owned by this user, writable by no
 * one else), so the file is trusted like memory; it is still checked
 * whole when mapped (base_check; tests/fuzz/fuzz_base.c), so that a file
 * cut short or from another version is refused, never read past.
 *
 * Threads: the store thread (and tp_store_new before it starts).
 * Building writes a new file; a mapped base is never written.  The lock
 * is flock(2): a store that dies holding it releases it.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE_MAGIC "tpbase1"
#define BASE_DATA 256        /* entries start here */
#define BASE_GROW (16u << 20)

typedef struct base_hdr {
    char magic[8];
    uint64_t size;           /* the file's bytes */
    int64_t built_at;        /* Unix ns */
    int64_t seq;             /* the change log's position ... */
    uint64_t xip_off;        /* ... with the xip text here */
    uint64_t nrealms;
    uint64_t names_off;
    uint64_t used_off;       /* uint64_t per realm */
    struct {
        uint64_t mask;
        uint64_t n;
        uint64_t slots_off;
    } tab[2];                /* users, revoked */
} base_hdr;

struct tp__base {
    char *map;
    size_t len;
    dev_t dev;
    ino_t ino;
    const base_hdr *h;
};

struct tp__basew {
    char tmp[32];            /* its name in the directory */
    int fd;
    char *map;
    size_t len;              /* bytes written */
    size_t cap;              /* bytes mapped (the file's size) */
};

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
tp__base_now(void)
{
    return now_ns();
}

static uint32_t
ent_realm(const void *e)
{
    uint32_t r;

    memcpy(&r, e, sizeof(r));
    return r;
}

/* ---- reading ---- */

void *
tp__base_find(const tp__table *t, uint32_t realm, const char *name,
              uint32_t h)
{
    size_t j = h & t->bmask;

    for (;;) {
        uint32_t o = t->bslot[j];
        const char *e;

        if (o == 0)
            return NULL;
        e = t->bmap + (size_t)o * 8;
        if (ent_realm(e) == realm && strcmp(e + t->name_off, name) == 0)
            return (void *)(uintptr_t)e;
        j = (j + 1) & t->bmask;
    }
}

void
tp__base_free(tp__base *b)
{
    if (b == NULL)
        return;
    if (b->map != NULL)
        munmap(b->map, b->len);
    free(b);
}

int64_t
tp__base_built_at(const tp__base *b)
{
    return b != NULL ? b->h->built_at : 0;
}

static char *
path_of(const tp_store *st, const char *name, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", st->share_dir, name);

    return n > 0 && (size_t)n < cap ? buf : NULL;
}

/* Check a table's slots: every one names a whole entry inside the data
 * (its name ends there, its client network fits, its realm exists), and
 * they count the table's entries. */
static int
slots_ok(const char *map, size_t len, const base_hdr *h, int k)
{
    uint64_t cap = h->tab[k].mask + 1, i, end, used;
    size_t name_off = k == 0 ? offsetof(user_entry, user_id)
                             : offsetof(revoked_entry, username);
    const uint32_t *s;

    if (cap == 0 || cap > len || (cap & (cap - 1)) != 0 ||
        h->tab[k].n >= cap || h->tab[k].slots_off % 4 != 0 ||
        h->tab[k].slots_off > len || cap * 4 > len - h->tab[k].slots_off)
        return 0;
    s = (const uint32_t *)(const void *)(map + h->tab[k].slots_off);
    end = h->tab[0].slots_off < h->tab[1].slots_off ? h->tab[0].slots_off
                                                    : h->tab[1].slots_off;
    for (i = 0, used = 0; i < cap; i++) {
        uint64_t at = (uint64_t)s[i] * 8;
        const char *name;
        uint32_t realm;

        if (s[i] == 0)
            continue;
        if (at < BASE_DATA || at + name_off >= end)
            return 0;
        name = map + at + name_off;
        memcpy(&realm, map + at, sizeof(realm));
        if (realm >= h->nrealms ||
            memchr(name, '\0', (size_t)(end - at - name_off)) == NULL)
            return 0;
        if (k == 0) {
            const user_entry *u = (const user_entry *)(const void *)(map +
                                                                     at);

            if (u->has_cidr && (uint64_t)((const char *)user_cidr(u) - map) +
                                       sizeof(tp_addr) >
                                   end)
                return 0;
        }
        used++;
    }
    /* (an empty slot ends every probe) */
    return used == h->tab[k].n;
}

/* Is map (len bytes, 8-aligned) a whole base?  Everything a lookup, an
 * iteration or an attach reads is inside it. */
static int
base_check(const char *map, size_t len)
{
    const base_hdr *h = (const base_hdr *)(const void *)map;

    if (len < BASE_DATA || memcmp(h->magic, BASE_MAGIC, sizeof(h->magic)) ||
        h->size != len || h->xip_off >= len ||
        memchr(map + h->xip_off, '\0', len - h->xip_off) == NULL ||
        h->nrealms > len / 8 || h->used_off % 8 != 0 || h->used_off > len ||
        h->nrealms * 8 > len - h->used_off || h->names_off > len ||
        !slots_ok(map, len, h, 0) || !slots_ok(map, len, h, 1))
        return 0;
    return 1;
}

/* Point users and revoked at the base's slots (checked). */
static void
base_tables(const char *map, tp__table *users, tp__table *revoked)
{
    const base_hdr *h = (const base_hdr *)(const void *)map;
    tp__table *tab[2];
    int k;

    tab[0] = users;
    tab[1] = revoked;
    for (k = 0; k < 2; k++) {
        tab[k]->bmap = map;
        tab[k]->bslot = (const uint32_t *)(const void *)((const char *)map +
                                                         h->tab[k].slots_off);
        tab[k]->bmask = (size_t)h->tab[k].mask;
        tab[k]->bn = (size_t)h->tab[k].n;
        atomic_store(&tab[k]->count, tab[k]->bn);
    }
}

int
tp__base_check(const void *map, size_t len, tp__table *users,
               tp__table *revoked, size_t *nrealms)
{
    if (!base_check(map, len))
        return -1;
    base_tables(map, users, revoked);
    *nrealms = (size_t)((const base_hdr *)map)->nrealms;
    return 0;
}

/* Map the node's base; TP_ENOTFOUND when there is none (or it is not
 * usable, said in err). */
static tp_status
base_map(tp_store *st, tp__base **out, tp_error *err)
{
    char path[4096];
    struct stat sb;
    tp__base *b;
    int fd;

    *out = NULL;
    if (path_of(st, "base", path, sizeof(path)) == NULL)
        return tp__fail(err, TP_EINVAL, "share_dir: path too long");
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return tp__fail(err, TP_ENOTFOUND, "no base yet");
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        close(fd);
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (size_t)sb.st_size < BASE_DATA) {
        close(fd);
        free(b);
        return tp__fail(err, TP_ENOTFOUND, "base: not a base file");
    }
    b->len = (size_t)sb.st_size;
    b->dev = sb.st_dev;
    b->ino = sb.st_ino;
    b->map = mmap(NULL, b->len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (b->map == MAP_FAILED) {
        b->map = NULL;
        tp__base_free(b);
        return tp__fail(err, TP_EIO, "base: mmap: %s", strerror(errno));
    }
    b->h = (const base_hdr *)(const void *)b->map;
    if (!base_check(b->map, b->len)) {
        tp__base_free(b);
        return tp__fail(err, TP_ENOTFOUND, "base: damaged; rebuilding");
    }
    *out = b;
    return TP_OK;
}

/* Are the base's realms s's, by name and in order? */
static int
same_realms(const tp__base *b, const snapshot *s)
{
    const char *p = b->map + b->h->names_off, *end = b->map + b->len;
    size_t i;

    if (b->h->nrealms != s->nrealms)
        return 0;
    for (i = 0; i < s->nrealms; i++) {
        size_t n = strlen(s->realms[i].name) + 1;

        if ((size_t)(end - p) < n || memcmp(p, s->realms[i].name, n) != 0)
            return 0;
        p += n;
    }
    return 1;
}

/* Tables over b (which they own from here), empty of their own. */
static tp__tables *
tables_over(tp__base *b, size_t nrealms)
{
    tp__tables *t = tp__tables_new(nrealms, 0);
    size_t i;

    if (t == NULL) {
        tp__base_free(b);
        return NULL;
    }
    t->base = b;
    base_tables(b->map, &t->users, &t->revoked); /* checked when mapped */
    for (i = 0; i < nrealms; i++) {
        uint64_t u;

        memcpy(&u, b->map + b->h->used_off + i * 8, sizeof(u));
        atomic_store(&t->realm_used[i], u);
    }
    return t;
}

/* ---- building ---- */

void *
tp__basew_find(const tp__table *t, uint32_t realm, const char *name)
{
    size_t j;

    if (t->wslot == NULL)
        return NULL;
    j = tp__key_hash(realm, name) & t->wmask;
    for (;;) {
        uint32_t o = t->wslot[j];
        char *e;

        if (o == 0)
            return NULL;
        e = t->bw->map + (size_t)o * 8;
        if (ent_realm(e) == realm && strcmp(e + t->name_off, name) == 0)
            return e;
        j = (j + 1) & t->wmask;
    }
}

/* Room for n more bytes in the file being written; -1 when none. */
static int
basew_room(tp__basew *w, size_t n)
{
    size_t cap = w->cap;
    char *m;

    if (w->cap - w->len >= n)
        return 0;
    while (cap - w->len < n)
        cap += cap / 2 > BASE_GROW ? cap / 2 : BASE_GROW;
    /* Space reserved, not a sparse file: a full tmpfs must fail here
     * (ENOSPC), not fault (SIGBUS) a store through the mapping. */
    if (posix_fallocate(w->fd, 0, (off_t)cap) != 0)
        return -1;
    /* The file keeps what was written: map it again, larger. */
    m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
    if (m == MAP_FAILED)
        return -1;
    munmap(w->map, w->cap);
    w->map = m;
    w->cap = cap;
    return 0;
}

/* The private slot array of t, sized for twice what it holds. */
static int
wslot_grow(tp__table *t, size_t want)
{
    size_t cap = 1024, i, j;
    uint32_t *s;

    while (cap < want * 2)
        cap *= 2;
    if (cap > (size_t)1 << 31)
        return -1;
    s = calloc(cap, sizeof(*s));
    if (s == NULL)
        return -1;
    for (i = 0; t->wslot != NULL && i <= t->wmask; i++) {
        const char *e;

        if (t->wslot[i] == 0)
            continue;
        e = t->bw->map + (size_t)t->wslot[i] * 8;
        j = tp__key_hash(ent_realm(e), e + t->name_off) & (cap - 1);
        while (s[j] != 0)
            j = (j + 1) & (cap - 1);
        s[j] = t->wslot[i];
    }
    free(t->wslot);
    t->wslot = s;
    t->wmask = cap - 1;
    return 0;
}

int
tp__basew_put(tp__table *t, void *e)
{
    tp__basew *w = t->bw;
    size_t n = t->size(e), at = (w->len + 7) & ~(size_t)7, j;
    uint32_t realm = ent_realm(e);
    const char *name = (const char *)e + t->name_off;

    if ((t->wn + 1) * 4 > (t->wslot != NULL ? t->wmask + 1 : 0) * 3 &&
        wslot_grow(t, t->wn + 1) != 0)
        return -1;
    if (at / 8 > UINT32_MAX || basew_room(w, at - w->len + n) != 0)
        return -1;
    j = tp__key_hash(realm, name) & t->wmask;
    while (t->wslot[j] != 0) {
        const char *o = w->map + (size_t)t->wslot[j] * 8;

        if (ent_realm(o) == realm && strcmp(o + t->name_off, name) == 0)
            break; /* (a load has no duplicate keys) */
        j = (j + 1) & t->wmask;
    }
    memcpy(w->map + at, e, n);
    w->len = at + n;
    if (t->wslot[j] == 0) {
        t->wn++;
        atomic_fetch_add(&t->count, 1);
    }
    t->wslot[j] = (uint32_t)(at / 8);
    free(e); /* the table owned it; the file has it now */
    return 0;
}

/* Append n bytes at an offset aligned to al; the offset, or 0. */
static size_t
basew_add(tp__basew *w, const void *p, size_t n, size_t al)
{
    size_t at = (w->len + al - 1) & ~(al - 1);

    if (basew_room(w, at - w->len + n) != 0)
        return 0;
    memcpy(w->map + at, p, n);
    w->len = at + n;
    return at;
}

static void
basew_abort(tp_store *st, tp__basew *w)
{
    char path[4096];

    if (w->map != NULL)
        munmap(w->map, w->cap);
    if (w->fd >= 0)
        close(w->fd);
    if (path_of(st, w->tmp, path, sizeof(path)) != NULL)
        unlink(path);
    free(w);
}

/* Write what the load put in s->tab, the realms and the log position
 * after the entries, then the header, and make the file the node's
 * base. */
static tp_status
basew_finish(tp_store *st, tp__basew *w, snapshot *s, const tp__chglog *cl,
             int64_t built_at, tp_error *err)
{
    char tmp[4096], path[4096];
    tp__table *tab[2];
    base_hdr h;
    size_t i;
    int k;

    memset(&h, 0, sizeof(h));
    memcpy(h.magic, BASE_MAGIC, sizeof(h.magic));
    h.built_at = built_at;
    h.seq = cl->seq;
    h.nrealms = s->nrealms;
    tab[0] = &s->tab->users;
    tab[1] = &s->tab->revoked;
    for (k = 0; k < 2; k++) {
        if (tab[k]->wslot == NULL && wslot_grow(tab[k], 1) != 0)
            goto oom;
        h.tab[k].mask = tab[k]->wmask;
        h.tab[k].n = tab[k]->wn;
        h.tab[k].slots_off = basew_add(w, tab[k]->wslot,
                                       (tab[k]->wmask + 1) * 4, 8);
        if (h.tab[k].slots_off == 0)
            goto oom;
    }
    h.names_off = w->len;
    for (i = 0; i < s->nrealms; i++)
        if (basew_add(w, s->realms[i].name, strlen(s->realms[i].name) + 1,
                      1) == 0)
            goto oom;
    h.used_off = basew_add(w, "", 0, 8);
    if (h.used_off == 0)
        goto oom;
    for (i = 0; i < s->nrealms; i++) {
        uint64_t u = atomic_load(&s->tab->realm_used[i]);

        if (basew_add(w, &u, sizeof(u), 8) == 0)
            goto oom;
    }
    h.xip_off = basew_add(w, cl->xip != NULL ? cl->xip : "{}",
                          strlen(cl->xip != NULL ? cl->xip : "{}") + 1, 1);
    if (h.xip_off == 0)
        goto oom;
    h.size = w->len;
    memcpy(w->map, &h, sizeof(h));
    if (munmap(w->map, w->cap) != 0 ||
        ftruncate(w->fd, (off_t)w->len) != 0) {
        w->map = NULL;
        basew_abort(st, w);
        return tp__fail(err, TP_EIO, "writing the base: %s",
                        strerror(errno));
    }
    w->map = NULL;
    close(w->fd);
    w->fd = -1;
    if (path_of(st, w->tmp, tmp, sizeof(tmp)) == NULL ||
        path_of(st, "base", path, sizeof(path)) == NULL ||
        rename(tmp, path) != 0) {
        basew_abort(st, w);
        return tp__fail(err, TP_EIO, "publishing the base: %s",
                        strerror(errno));
    }
    free(w);
    return TP_OK;
oom:
    basew_abort(st, w);
    return tp__fail(err, TP_ENOMEM, "out of memory (or space in %s) "
                    "writing the base", st->share_dir);
}

/* Remove what builders that died left (base.<pid>.tmp of a process that
 * is gone); under the lock, so no live builder's. */
static void
sweep_tmp(tp_store *st)
{
    char path[4096];
    struct dirent *e;
    DIR *d = opendir(st->share_dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        long pid;
        char end[8];

        if (sscanf(e->d_name, "base.%ld.%7s", &pid, end) != 2 ||
            strcmp(end, "tmp") != 0 || pid <= 0)
            continue;
        /* gone (ESRCH), or this process's own from a build that failed */
        if (pid != (long)getpid() &&
            (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        if (path_of(st, e->d_name, path, sizeof(path)) != NULL)
            unlink(path);
    }
    closedir(d);
}

/* open(2), and once more after removing path when it is not ours to open
 * (a file another user made here before a reload changed the user). */
static int
open_ours(const char *path, int flags)
{
    int fd = open(path, flags, 0600);

    if (fd < 0 && errno == EACCES && unlink(path) == 0)
        fd = open(path, flags, 0600);
    return fd;
}

/* A full read of users and revocations into a new base file. */
static tp_status
base_build(tp_store *st, tp_error *err)
{
    char path[4096];
    tp__chglog cl;
    snapshot *s = NULL;
    tp__basew *w;
    int64_t built_at = now_ns();
    tp_status status;

    memset(&cl, 0, sizeof(cl));
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return tp__fail(err, TP_ENOMEM, "out of memory");
    /* Its own name: a builder that died (or one of another user, before a
     * reload changed nginx's user) may have left one. */
    snprintf(w->tmp, sizeof(w->tmp), "base.%ld.tmp", (long)getpid());
    sweep_tmp(st);
    if (path_of(st, w->tmp, path, sizeof(path)) == NULL) {
        free(w);
        return tp__fail(err, TP_EINVAL, "share_dir: path too long");
    }
    w->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                 0600);
    w->cap = BASE_GROW;
    if (w->fd < 0 || (errno = posix_fallocate(w->fd, 0, (off_t)w->cap)) !=
                         0) {
        status = tp__fail(err, TP_EIO, "%s: %s", path, strerror(errno));
        basew_abort(st, w);
        return status;
    }
    w->map = mmap(NULL, w->cap, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
    if (w->map == MAP_FAILED) {
        w->map = NULL;
        status = tp__fail(err, TP_EIO, "%s: mmap: %s", path,
                          strerror(errno));
        basew_abort(st, w);
        return status;
    }
    w->len = BASE_DATA;
    status = tp__snapshot_load_into(st->conn, st->jwt_set ? &st->jwt : NULL,
                                    &s, &cl, w, err);
    if (status == TP_OK && !cl.on)
        status = tp__fail(err, TP_EDB, "share_dir needs the change log "
                          "(schema 007)");
    if (status == TP_OK)
        status = basew_finish(st, w, s, &cl, built_at, err);
    else
        basew_abort(st, w);
    tp__snapshot_free(s);
    tp__chglog_clear(&cl);
    return status;
}

/* ---- attaching ---- */

/* Attach b (consumed): realms, the log since b, into a new snapshot.
 * *full = 1 when b cannot be caught up from (its realms are not the
 * current ones, or the log no longer has what followed it). */
static tp_status
base_attach(tp_store *st, tp__base *b, snapshot **out, int *full,
            tp_error *err)
{
    tp__chglog from;
    snapshot *s;
    PGresult *r = NULL;
    tp_status status;

    *out = NULL;
    *full = 0;
    memset(&from, 0, sizeof(from));
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        tp__base_free(b);
        return tp__fail(err, TP_ENOMEM, "out of memory");
    }
    s->loaded_at = tp_now();
    status = tp__load_query(st->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ "
                            "READ ONLY", 0, NULL, &r, err);
    if (status != TP_OK)
        goto fail;
    PQclear(r);
    status = tp__realms_load(st->conn, st->jwt_set ? &st->jwt : NULL, s,
                             err);
    if (status == TP_OK && !same_realms(b, s))
        *full = 1;
    if (status == TP_OK && !*full) {
        from.on = 1;
        from.seq = b->h->seq;
        from.xip = strdup(b->map + b->h->xip_off);
        s->tab = tables_over(b, s->nrealms);
        b = NULL;
        if (s->tab == NULL || from.xip == NULL)
            status = tp__fail(err, TP_ENOMEM, "out of memory");
    }
    if (status == TP_OK && !*full)
        status = tp__load_query(st->conn, "SELECT pg_is_in_recovery()", 0,
                                NULL, &r, err);
    if (status == TP_OK && !*full) {
        from.standby = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        status = tp__chglog_catch_up(st, s, &from, full, err);
    }
    if (status != TP_OK || *full) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
        goto fail;
    }
    status = tp__load_query(st->conn, "COMMIT", 0, NULL, &r, err);
    if (status != TP_OK)
        goto fail;
    PQclear(r);
    tp__chglog_clear(&st->chg);
    st->chg = from;
    *out = s;
    return TP_OK;
fail:
    tp__chglog_clear(&from);
    tp__base_free(b);
    tp__snapshot_free(s);
    return status;
}

/* The node's base is not the one the tables in force read (a store
 * elsewhere on the node wrote a newer one)? */
int
tp__base_newer(tp_store *st)
{
    const snapshot *s = atomic_load(&st->cur);
    char path[4096];
    struct stat sb;

    if (st->share_dir == NULL || s == NULL || s->tab == NULL ||
        s->tab->base == NULL ||
        path_of(st, "base", path, sizeof(path)) == NULL ||
        stat(path, &sb) != 0)
        return 0;
    return sb.st_ino != s->tab->base->ino || sb.st_dev != s->tab->base->dev;
}

tp_status
tp__base_refresh(tp_store *st, snapshot **out, int *built, tp_error *err)
{
    char path[4096];
    tp__base *b = NULL;
    tp_status status;
    int fd, full = 0, round;

    *out = NULL;
    *built = 0;
    if (path_of(st, "lock", path, sizeof(path)) == NULL)
        return tp__fail(err, TP_EINVAL, "share_dir: path too long");
    fd = open_ours(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return tp__fail(err, TP_EIO, "%s: %s", path, strerror(errno));
    /* One store of the node reads PostgreSQL in full at a time; the
     * others wait and take what it wrote - or stop, when told to (a
     * worker exiting must not wait for another's full read). */
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        struct timespec ts = {0, 10000000};

        if (errno != EWOULDBLOCK && errno != EINTR) {
            status = tp__fail(err, TP_EIO, "%s: flock: %s", path,
                              strerror(errno));
            close(fd);
            return status;
        }
        if (tp__store_stopping(st)) {
            close(fd);
            return tp__fail(err, TP_EIO, "stopping");
        }
        nanosleep(&ts, NULL);
    }
    for (round = 0; round < 2; round++) {
        if (round == 0) {
            status = base_map(st, &b, err);
            if (status == TP_ENOMEM)
                break;
            if (status != TP_OK || b->h->built_at < st->share_need) {
                tp__base_free(b);
                b = NULL;
                continue; /* none, or too old: build */
            }
        } else {
            double t0 = mono_now();

            status = base_build(st, err);
            if (status != TP_OK)
                break;
            *built = 1;
            status = base_map(st, &b, err);
            if (status != TP_OK)
                break;
            tp__slog(st, TP_LOG_INFO, "policy store: wrote the node's base "
                     "in %s: %" PRIu64 " users, %" PRIu64 " revoked "
                     "credentials, %.1f MB, %.2f s", st->share_dir,
                     b->h->tab[0].n, b->h->tab[1].n,
                     (double)b->len / 1048576.0, mono_now() - t0);
        }
        status = base_attach(st, b, out, &full, err);
        b = NULL;
        if (status != TP_OK || !full)
            break;
    }
    if (status == TP_OK && *out == NULL)
        status = tp__fail(err, TP_EDB, "the policy changed while the base "
                          "was read; reading again");
    close(fd); /* and the lock with it */
    return status;
}
