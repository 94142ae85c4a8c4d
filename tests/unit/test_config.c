/*
 * test_config.c - the shared key = value configuration format, secret
 * files and their permission checks, and the per-realm builders.
 *
 * Files are written into a private temporary directory made by the test
 * and removed afterwards.
 */
#include "tp_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tp-config-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
    static char path[4][256];
    static int slot;
    char *p = path[slot++ % 4];
    FILE *f;

    snprintf(p, 256, "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
    return p;
}

static void
test_parse(void **state)
{
    static const char text[] =
        "# comment\n"
        "; another\n"
        "default_realm = example.org\n"
        "  spaced_key   =   value with spaces   \r\n"
        "quoted = \"  keep \\\"this\\\" \\\\ \"\n"
        "empty =\n"
        "[realm example.org]\n"
        "max_ttl = 600\n"
        "[ other ]\n"
        "max_ttl = 5\n";
    const char *sec, *key, *val = NULL;
    tp_config *cfg;
    tp_error err;
    int64_t v;

    (void)state;
    TP_ASSERT_OK(tp_config_parse(text, strlen(text), "t.conf", &cfg, &err),
                 &err);
    assert_string_equal(tp_config_get(cfg, "", "default_realm"),
                        "example.org");
    assert_string_equal(tp_config_get(cfg, NULL, "spaced_key"),
                        "value with spaces");
    assert_string_equal(tp_config_get(cfg, "", "quoted"),
                        "  keep \"this\" \\ ");
    assert_string_equal(tp_config_get(cfg, "", "empty"), "");
    assert_string_equal(tp_config_get(cfg, "realm example.org", "max_ttl"),
                        "600");
    assert_string_equal(tp_config_get(cfg, "other", "max_ttl"), "5");
    assert_null(tp_config_get(cfg, "", "max_ttl"));
    assert_null(tp_config_get(cfg, "nosuch", "max_ttl"));
    TP_ASSERT_OK(tp_config_get_int(cfg, "realm example.org", "max_ttl", 1,
                                   1000, 7, &v, &err), &err);
    assert_int_equal(v, 600);
    TP_ASSERT_OK(tp_config_get_int(cfg, "", "absent", 1, 1000, 7, &v, &err),
                 &err);
    assert_int_equal(v, 7);
    TP_ASSERT_STATUS(TP_ECONFIG,
                     tp_config_get_int(cfg, "other", "max_ttl", 10, 20, 7,
                                       &v, &err), &err);
    assert_non_null(strstr(err.message, "t.conf:10"));
    TP_ASSERT_STATUS(TP_ECONFIG,
                     tp_config_get_int(cfg, "", "default_realm", 0, 9, 7, &v,
                                       &err), &err);
    sec = tp_config_section(cfg, 1);
    assert_string_equal(sec, "realm example.org");
    assert_null(tp_config_section(cfg, 3));
    key = tp_config_key_at(cfg, "", 0, &val);
    assert_string_equal(key, "default_realm");
    assert_string_equal(val, "example.org");
    assert_null(tp_config_key_at(cfg, "", 4, &val));
    tp_config_free(cfg);
    tp_config_free(NULL);
}

static void
expect_config_error(const char *text, const char *needle)
{
    tp_config *cfg = (tp_config *)1;
    tp_error err;

    TP_ASSERT_STATUS(TP_ECONFIG, tp_config_parse(text, strlen(text), "bad",
                                                 &cfg, &err), &err);
    assert_null(cfg);
    if (strstr(err.message, needle) == NULL) {
        print_error("message \"%s\" lacks \"%s\"\n", err.message, needle);
        fail();
    }
}

static void
test_parse_errors(void **state)
{
    char *huge;
    tp_config *cfg;
    tp_error err;

    (void)state;
    expect_config_error("a = 1\na = 2\n", "bad:2: key \"a\" is duplicate");
    expect_config_error("[x]\n[x]\n", "section [x] is duplicate");
    expect_config_error("[x\n", "must end with ']'");
    expect_config_error("[ ]\n", "empty section name");
    expect_config_error("just words\n", "expected \"key = value\"");
    expect_config_error(" = v\n", "missing key");
    expect_config_error("Key = v\n", "key may only contain");
    expect_config_error("k = \"unterminated\n", "unterminated");
    expect_config_error("k = \"a\" trailing\n", "unterminated");
    TP_ASSERT_STATUS(TP_ECONFIG, tp_config_parse("a\0b", 3, "nul", &cfg,
                                                 &err), &err);
    huge = malloc(5000);
    assert_non_null(huge);
    memset(huge, 'a', 4999);
    huge[4999] = '\0';
    TP_ASSERT_STATUS(TP_ECONFIG, tp_config_parse(huge, 4999, "long", &cfg,
                                                 &err), &err);
    free(huge);
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_config_parse("", 2 * 1024 * 1024, "big",
                                                  &cfg, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_config_parse(NULL, 0, "x", &cfg, &err),
                     &err);
}

static void
test_secret_files(void **state)
{
    unsigned char buf[64];
    const char *p;
    tp_error err;
    size_t len = 0;

    (void)state;
    p = write_file("s1", "topsecret-value-123\n", 0600);
    TP_ASSERT_OK(tp_secret_file_read(p, buf, sizeof(buf), &len, &err), &err);
    assert_int_equal(len, 19);
    assert_memory_equal(buf, "topsecret-value-123", 19);
    p = write_file("s2", "crlf-secret\r\n", 0640);
    TP_ASSERT_OK(tp_secret_file_read(p, buf, sizeof(buf), &len, &err), &err);
    assert_int_equal(len, 11);
    /* World-readable or group-writable: refused, and the message says how
     * to fix it without showing the secret. */
    p = write_file("s3", "world-readable-secret\n", 0644);
    TP_ASSERT_STATUS(TP_EPERM, tp_secret_file_read(p, buf, sizeof(buf), &len,
                                                   &err), &err);
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_null(strstr(err.message, "world-readable-secret"));
    p = write_file("s4", "group-writable\n", 0620);
    TP_ASSERT_STATUS(TP_EPERM, tp_secret_file_read(p, buf, sizeof(buf), &len,
                                                   &err), &err);
    p = write_file("s5", "0123456789", 0600);
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_secret_file_read(p, buf, 5, &len, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EIO, tp_secret_file_read("/nonexistent/x", buf,
                                                 sizeof(buf), &len, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EIO, tp_secret_file_read(dir, buf, sizeof(buf), &len,
                                                 &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_secret_file_read(NULL, buf, sizeof(buf),
                                                    &len, &err), &err);
}

static void
test_builders(void **state)
{
    char text[2048];
    const char *ka, *kb, *legacy, *conf;
    tp_credential c;
    tp_config *cfg;
    tp_keyring *kr;
    tp_peerset *ps;
    tp_hostlist *hl;
    tp_peer_decision d;
    tp_host_match m;
    tp_error err;

    (void)state;
    ka = write_file("ka", "secret-for-kid-a-0001\n", 0600);
    kb = write_file("kb", "secret-for-kid-b-0002\n", 0400);
    legacy = write_file("legacy", "old-static-auth-secret\n", 0600);
    snprintf(text, sizeof(text),
             "[realm example.org]\n"
             "default_ttl = 300\n"
             "max_ttl = 900\n"
             "secret.ka = verify-only %s\n"
             "secret.kb = signing %s\n"
             "legacy_secret = %s\n"
             "peer_allow = 127.0.0.0/8\n"
             "peer_deny = 203.0.113.7 198.51.100.0/24\n"
             "hosts = edge.skype.com, *.communication.azure.com\n"
             "[realm bad.example]\n"
             "secret.k1 = sometimes %s\n"
             "peer_default = maybe\n",
             ka, kb, legacy, ka);
    conf = write_file("turnpolicy.conf", text, 0644);
    TP_ASSERT_OK(tp_config_load(conf, &cfg, &err), &err);

    kr = tp_keyring_from_config(cfg, "example.org", &err);
    assert_non_null(kr);
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 0, 1700000000, &c, &err),
                 &err);
    assert_int_equal(c.ttl, 300);
    assert_non_null(strstr(c.username, ":kb:"));
    TP_ASSERT_STATUS(TP_ETTL, tp_credential_issue(kr, "alice", 901,
                                                  1700000000, &c, &err),
                     &err);
    tp_keyring_free(kr);

    ps = tp_peerset_from_config(cfg, "example.org", &err);
    assert_non_null(ps);
    TP_ASSERT_OK(tp_peerset_check_str(ps, "127.0.0.1", &d, &err), &err);
    TP_ASSERT_STATUS(TP_EPEERDENIED,
                     tp_peerset_check_str(ps, "198.51.100.9", &d, &err),
                     &err);
    tp_peerset_free(ps);

    hl = tp_hostlist_from_config(cfg, "example.org", &err);
    assert_non_null(hl);
    assert_int_equal(tp_hostlist_count(hl), 2);
    TP_ASSERT_OK(tp_hostlist_check(hl, "x.communication.azure.com", 0, NULL,
                                   &m, &err), &err);
    assert_int_equal(m.rule_index, 1);
    tp_hostlist_free(hl);

    /* Errors: unknown realm, bad state, bad peer_default. */
    assert_null(tp_keyring_from_config(cfg, "nosuch.org", &err));
    assert_int_equal(err.status, TP_ENOTFOUND);
    assert_null(tp_keyring_from_config(cfg, "bad.example", &err));
    assert_int_equal(err.status, TP_ECONFIG);
    assert_non_null(strstr(err.message, "secret.k1"));
    assert_null(tp_peerset_from_config(cfg, "bad.example", &err));
    assert_int_equal(err.status, TP_ECONFIG);
    tp_config_free(cfg);

    TP_ASSERT_STATUS(TP_EIO, tp_config_load("/nonexistent.conf", &cfg, &err),
                     &err);
}

static void
test_builder_secret_perms(void **state)
{
    char text[512];
    const char *s, *conf;
    tp_config *cfg;
    tp_error err;

    (void)state;
    s = write_file("open", "world-readable-secret-123\n", 0644);
    snprintf(text, sizeof(text), "[realm r]\nsecret.k1 = signing %s\n", s);
    conf = write_file("perm.conf", text, 0644);
    TP_ASSERT_OK(tp_config_load(conf, &cfg, &err), &err);
    assert_null(tp_keyring_from_config(cfg, "r", &err));
    assert_int_equal(err.status, TP_EPERM);
    tp_config_free(cfg);
}

/* The JWT claim checks: one mapping and its defaults for every consumer. */
static void
test_jwt_options(void **state)
{
    static const char both[] = "jwt_issuer = https://i.example\n"
                               "jwt_leeway = 5\n"
                               "jwt_max_lifetime = 3600\n";
    tp_jwt_options o;
    tp_config *cfg;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_config_parse("", 0, "empty", &cfg, &err), &err);
    TP_ASSERT_OK(tp_jwt_options_from_config(cfg, &o, &err), &err);
    assert_int_equal(o.leeway, 30);
    assert_int_equal(o.max_lifetime, TP_JWT_LIFETIME_DEFAULT);
    assert_int_equal(o.require_exp, 1);
    assert_null(o.issuer);
    tp_config_free(cfg);

    TP_ASSERT_OK(tp_config_parse(both, sizeof(both) - 1, "t", &cfg, &err),
                 &err);
    TP_ASSERT_OK(tp_jwt_options_from_config(cfg, &o, &err), &err);
    assert_int_equal(o.leeway, 5);
    assert_int_equal(o.max_lifetime, 3600);
    assert_string_equal(o.issuer, "https://i.example");
    tp_config_free(cfg);

    TP_ASSERT_OK(tp_config_parse("jwt_max_lifetime = 59\n", 22, "t", &cfg,
                                 &err), &err);
    TP_ASSERT_STATUS(TP_ECONFIG, tp_jwt_options_from_config(cfg, &o, &err),
                     &err);
    assert_non_null(strstr(err.message, "jwt_max_lifetime"));
    assert_null(tp_jwt_keys_from_config(cfg, &err));
    assert_int_equal(err.status, TP_ECONFIG);
    tp_config_free(cfg);

    TP_ASSERT_OK(tp_config_parse("jwt_max_lifetime = 2592001\n", 27, "t",
                                 &cfg, &err), &err);
    TP_ASSERT_STATUS(TP_ECONFIG, tp_jwt_options_from_config(cfg, &o, &err),
                     &err);
    tp_config_free(cfg);
}

/* The store options: one mapping, one default and one range per key, for
 * turnpolicyd, nginx and the CLI alike. */
static void
test_store_options(void **state)
{
    char text[1024];
    const char *pw;
    tp_store_options so;
    tp_store_config hold;
    tp_config *cfg;
    tp_error err;

    (void)state;
    /* defaults; database from the global section */
    TP_ASSERT_OK(tp_config_parse("database_url = \"dbname=x\"\n", 25, "t",
                                 &cfg, &err), &err);
    TP_ASSERT_OK(tp_store_options_from_config(cfg, "nginx", &so, &hold,
                                              &err), &err);
    assert_string_equal(so.database, "dbname=x");
    assert_int_equal(so.max_staleness, 30);
    assert_int_equal(so.reload_interval, 600);
    assert_int_equal(so.issue_per_minute, 0);
    assert_int_equal(so.no_listen, 0);
    assert_int_equal(so.redis_fail_mode, TP_FAIL_CLOSED);
    assert_null(so.redis_host);
    assert_null(so.redis_password);
    assert_non_null(so.jwt);
    assert_int_equal(so.jwt->leeway, 30);
    tp_store_config_clear(&hold);
    tp_config_free(cfg);

    /* every key of a section */
    pw = write_file("redis.pw", "redis-secret-42\n", 0600);
    snprintf(text, sizeof(text),
             "database_url = \"dbname=global\"\n"
             "jwt_leeway = 7\n"
             "[turnpolicyd]\n"
             "database = \"dbname=own\"\n"
             "redis = 127.0.0.1:6380\n"
             "redis_password_file = %s\n"
             "redis_fail_mode = open\n"
             "no_listen = yes\n"
             "max_staleness = 5\n"
             "reload_interval = 90\n"
             "issue_per_minute = 12\n", pw);
    TP_ASSERT_OK(tp_config_parse(text, strlen(text), "t", &cfg, &err), &err);
    TP_ASSERT_OK(tp_store_options_from_config(cfg, "turnpolicyd", &so,
                                              &hold, &err), &err);
    assert_string_equal(so.database, "dbname=own");
    assert_string_equal(so.redis_host, "127.0.0.1");
    assert_int_equal(so.redis_port, 6380);
    assert_string_equal(so.redis_password, "redis-secret-42");
    assert_int_equal(so.redis_fail_mode, TP_FAIL_OPEN);
    assert_int_equal(so.no_listen, 1);
    assert_int_equal(so.max_staleness, 5);
    assert_int_equal(so.reload_interval, 90);
    assert_int_equal(so.issue_per_minute, 12);
    assert_int_equal(so.jwt->leeway, 7);
    tp_store_config_clear(&hold);
    assert_int_equal(hold.redis_password[0], '\0'); /* wiped */
    /* another section does not see those keys */
    TP_ASSERT_OK(tp_store_options_from_config(cfg, "nginx", &so, &hold,
                                              &err), &err);
    assert_string_equal(so.database, "dbname=global");
    assert_null(so.redis_host);
    tp_config_free(cfg);

    /* refusals name the key */
    {
        static const char *const bad[] = {
            "[s]\nredis = nocolon\n", "[s]\nredis = h:0\n",
            "[s]\nredis = h:65536\n", "[s]\nredis = :6379\n",
            "[s]\nredis_fail_mode = maybe\n", "[s]\nno_listen = 1\n",
            "[s]\nmax_staleness = 0\n", "[s]\nreload_interval = 86401\n",
            "[s]\nissue_per_minute = -1\n", "jwt_leeway = 3601\n",
            "[s]\nredis_password_file = /nonexistent/pw\n",
        };
        static const char *const key[] = {
            "redis", "redis", "redis", "redis", "redis_fail_mode",
            "no_listen", "max_staleness", "reload_interval",
            "issue_per_minute", "jwt_leeway", "/nonexistent/pw",
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            TP_ASSERT_OK(tp_config_parse(bad[i], strlen(bad[i]), "t", &cfg,
                                         &err), &err);
            assert_int_not_equal(tp_store_options_from_config(cfg, "s", &so,
                                                              &hold, &err),
                                 TP_OK);
            if (strstr(err.message, key[i]) == NULL)
                fail_msg("%s: message \"%s\" does not name %s", bad[i],
                         err.message, key[i]);
            tp_config_free(cfg);
        }
    }
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_store_options_from_config(NULL, "s", &so, &hold,
                                                  &err), &err);
    tp_store_config_clear(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_builder_secret_perms),
        cmocka_unit_test(test_jwt_options),
        cmocka_unit_test(test_store_options),
    };

    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
