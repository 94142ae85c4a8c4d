/*
 * test_decide.c - the policy store's decisions, in memory: every refusal
 * tp_store_verify, _key, _issue, _subject_check, _session_check,
 * _client_check, _budget, _user_quota, _host_check, _peer_check,
 * _origin_check and _jwt_verify can give, against a store built by
 * tp__store_new_static (store_static.c) - the snapshot structures
 * store_load.c builds from PostgreSQL, with no server at all.
 *
 * The policy (three realms, a dozen users, one revoked credential) is
 * below.  The clock is injected (NOW); nothing sleeps.  Credentials the
 * store must refuse for their key (unknown, retired kid) are signed here
 * with keyrings of our own.  Overlay entries (what Redis fan-out would
 * deliver) are published with tp__overlay_update, standing in for the
 * store thread.  tests/integration/store.sh covers the same decisions
 * on a snapshot loaded from a real PostgreSQL.
 */
#include "tp_test.h"

#include "store_int.h"

#include <stdlib.h>

#define NOW 1700000000
#define REALM "example.org"
#define KILLED "killed.example"
#define BUDGET "budget.example"
#define TENANT "tenant.example"   /* a realm budget, not yet spent */
#define SPENT "spent.example"     /* a realm budget, spent */
#define SIGNING "0123456789abcdef-signing-k2"
#define VERIFY_ONLY "0123456789abcdef-verify-k1"
#define RETIRED "0123456789abcdef-retired-k0"
#define OTHER "0123456789abcdef-unknown-k9"
#define JWT_KEY "an HS256 key of at least 32 bytes, for tests"

static const tp__static_secret secrets[] = {
    {"k2", SIGNING, sizeof(SIGNING) - 1, TP_SECRET_SIGNING},
    {"k1", VERIFY_ONLY, sizeof(VERIFY_ONLY) - 1, TP_SECRET_VERIFY_ONLY},
    {"k0", RETIRED, sizeof(RETIRED) - 1, TP_SECRET_RETIRED},
};
static const char *const hosts[] = {"media.example.org",
                                    "*.cdn.example.org/live",
                                    "media.example.org"};
static const tp__static_peer peers[] = {
    {"198.51.100.0/24", TP_PEER_DENY},
};
static const tp__static_jwt_key jwt_keys[] = {
    {"j1", TP_JWT_HS256, JWT_KEY, sizeof(JWT_KEY) - 1},
};
static const char *const urls[] = {"turn:turn.example.org:3478",
                                   "turns:turn.example.org:5349"};
static const char *const origins[] = {"https://app.example.org",
                                      "https://app.example.org",
                                      "https://b.example.org"};
static const char *const budget_origins[] = {"https://app.example.org"};

static const tp__static_realm realms[] = {
    {.name = KILLED, .max_ttl = 86400, .killed = 1, .secrets = secrets,
     .nsecrets = 1, .jwt_keys = jwt_keys, .njwt_keys = 1, .hosts = hosts,
     .nhosts = 1},
    {.name = REALM, .max_ttl = 86400, .user_quota = 3, .total_quota = 100,
     .max_bps = 1000000, .secrets = secrets, .nsecrets = 3, .hosts = hosts,
     .nhosts = 3, .peers = peers, .npeers = 1, .jwt_keys = jwt_keys,
     .njwt_keys = 1, .urls = urls, .nurls = 2, .origins = origins,
     .norigins = 3},
    {.name = BUDGET, .max_ttl = 3600, .user_quota = 2, .user_budget = 1000,
     .budget_period = 86400, .secrets = secrets, .nsecrets = 1,
     .origins = budget_origins, .norigins = 1},
    {.name = TENANT, .max_ttl = 3600, .realm_budget = 10000,
     .realm_used = 9000, .budget_period = 86400, .secrets = secrets,
     .nsecrets = 1},
    {.name = SPENT, .max_ttl = 3600, .realm_budget = 10000,
     .realm_used = 10000, .budget_period = 86400, .secrets = secrets,
     .nsecrets = 1},
};

static const tp__static_user users[] = {
    {.realm = REALM, .user_id = "alice"},
    {.realm = REALM, .user_id = "bob", .disabled = 1},
    {.realm = REALM, .user_id = "carol", .revoked_before = NOW - 100},
    {.realm = REALM, .user_id = "dave", .client_cidr = "192.0.2.0/24"},
    {.realm = REALM, .user_id = "erin", .own_quota = 1, .user_quota = 1},
    {.realm = REALM, .user_id = "rita", .revoked_before = NOW + 1},
    {.realm = REALM, .user_id = "vic"},
    {.realm = KILLED, .user_id = "kim"},
    {.realm = BUDGET, .user_id = "gina", .used = 1000},
    {.realm = BUDGET, .user_id = "hank", .used = 500},
    {.realm = BUDGET, .user_id = "ivan", .used = 5000, .own_budget = 1,
     .user_budget = 0},
    {.realm = BUDGET, .user_id = "judy", .used = 10, .own_budget = 1,
     .user_budget = 20},
    {.realm = TENANT, .user_id = "lea", .used = 100},
    {.realm = SPENT, .user_id = "max", .used = 0},
};

/* vic's credential issued at NOW - 10 for 600 s: revoked by name. */
static tp_credential vic_revoked;
static tp__static_revoked revoked[1];

static tp__static_policy policy = {realms, 5, users, 14, revoked, 1};
static tp_store *store;

/* A credential for user_id issued at now by a keyring of our own with
 * one signing secret under kid. */
static void
sign_with(const char *kid, const char *secret, const char *user_id,
          uint32_t ttl, int64_t now, tp_credential *out)
{
    tp_keyring_options ko = {0, 86400, 0};
    tp_keyring *kr;
    tp_error err;

    kr = tp_keyring_new(REALM, &ko, &err);
    assert_non_null(kr);
    TP_ASSERT_OK(tp_keyring_add(kr, kid, secret, strlen(secret),
                                TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_OK(tp_credential_issue(kr, user_id, ttl, now, out, &err),
                 &err);
    tp_keyring_free(kr);
}

static int
setup(void **state)
{
    tp_error err;

    (void)state;
    sign_with("k2", SIGNING, "vic", 600, NOW - 10, &vic_revoked);
    revoked[0].realm = REALM;
    revoked[0].username = vic_revoked.username;
    store = tp__store_new_static(&policy, NULL, &err);
    if (store == NULL) {
        print_error("tp__store_new_static: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tp_store_free(store);
    return 0;
}

/* verify and key on one credential must agree on status want. */
static void
check_cred(const char *realm, const tp_credential *c, int64_t now,
           tp_status want)
{
    char hexkey[TP_LTKEY_HEX_LEN + 1], ref[TP_LTKEY_HEX_LEN + 1];
    tp_username u;
    tp_error err;

    TP_ASSERT_STATUS(want, tp_store_verify(store, realm, c->username,
                                           c->password, now, &u, &err),
                     &err);
    memset(hexkey, 'x', sizeof(hexkey));
    TP_ASSERT_STATUS(want, tp_store_key(store, realm, c->username, now,
                                        hexkey, &u, &err),
                     &err);
    if (want == TP_OK) {
        TP_ASSERT_OK(tp_longterm_key(c->username, realm, c->password, ref,
                                     &err), &err);
        assert_string_equal(hexkey, ref);
    } else {
        /* no key material survives a refusal */
        assert_int_equal(hexkey[0], '\0');
        assert_int_equal(err.status, want);
        assert_true(err.message[0] != '\0');
    }
}

static void
test_issue_verify_key(void **state)
{
    tp_credential c;
    tp_username u;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_issue(store, REALM, "alice", 600, NOW, &c, &err),
                 &err);
    assert_int_equal(c.issued, NOW);
    assert_int_equal(c.expires, NOW + 600);
    check_cred(REALM, &c, NOW + 1, TP_OK);
    TP_ASSERT_OK(tp_store_verify(store, REALM, c.username, c.password,
                                 NOW + 1, &u, &err), &err);
    assert_string_equal(u.user_id, "alice");
    assert_string_equal(u.kid, "k2");
    /* A wrong password is the credential's refusal, not the policy's. */
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_store_verify(store, REALM, c.username,
                                     "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", NOW + 1,
                                     NULL, &err), &err);
    /* The default lifetime (0) is the realm's. */
    TP_ASSERT_OK(tp_store_issue(store, REALM, "alice", 0, NOW, &c, &err),
                 &err);
    assert_true(c.ttl > 0);
    /* A bad user id is refused before anything else. */
    TP_ASSERT_STATUS(TP_EBADCHAR,
                     tp_store_issue(store, REALM, "a b", 600, NOW, &c, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_issue(NULL, REALM, "alice", 600,
                                               NOW, &c, &err), &err);
}

static void
test_keys(void **state)
{
    tp_credential c;

    (void)state;
    /* verify-only k1 still verifies what it signed */
    sign_with("k1", VERIFY_ONLY, "alice", 600, NOW, &c);
    check_cred(REALM, &c, NOW + 1, TP_OK);
    /* retired k0 verifies nothing, and says so */
    sign_with("k0", RETIRED, "alice", 600, NOW, &c);
    check_cred(REALM, &c, NOW + 1, TP_ERETIRED);
    /* a kid the realm never had */
    sign_with("k9", OTHER, "alice", 600, NOW, &c);
    check_cred(REALM, &c, NOW + 1, TP_EUNKNOWNKID);
    /* the right kid with the wrong secret */
    sign_with("k2", OTHER, "alice", 600, NOW, &c);
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_store_verify(store, REALM, c.username, c.password,
                                     NOW + 1, NULL, NULL), NULL);
}

static void
test_lifetime(void **state)
{
    tp_credential c;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_issue(store, REALM, "alice", 600, NOW - 1000, &c,
                                &err), &err);
    check_cred(REALM, &c, NOW, TP_EEXPIRED);
    TP_ASSERT_OK(tp_store_issue(store, REALM, "alice", 600, NOW + 1000, &c,
                                &err), &err);
    check_cred(REALM, &c, NOW, TP_ENOTYETVALID);
    /* Longer than the realm's max_ttl (budget.example: 3600 s). */
    TP_ASSERT_STATUS(TP_ETTL, tp_store_issue(store, BUDGET, "hank", 7200,
                                             NOW, &c, &err), &err);
}

static void
test_unknown_realm(void **state)
{
    tp_credential c;
    tp_session_use use = {0, 0, NULL, 0};
    tp_peer_decision dec;
    tp_host_match m;
    tp_realm_options ro;
    tp_addr a;
    uint64_t limit, used;
    int64_t quota;
    const char *list[4];
    char buf[256];
    size_t n;
    tp_error err;

    (void)state;
    sign_with("k2", SIGNING, "alice", 600, NOW, &c);
    check_cred("nowhere.example", &c, NOW + 1, TP_EUNKNOWNREALM);
    check_cred(NULL, &c, NOW + 1, TP_EUNKNOWNREALM);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_issue(store, "nowhere.example", "alice", 600,
                                    NOW, &c, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_subject_check(store, "nowhere.example",
                                            "alice", NOW, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_session_check(store, "nowhere.example",
                                            "alice", &use, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("192.0.2.1", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_client_check(store, "nowhere.example", "alice",
                                           &a, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_budget(store, "nowhere.example", "alice",
                                     &limit, &used, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_user_quota(store, "nowhere.example", "alice",
                                         &quota, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_peer_check(store, "nowhere.example", &a, &dec,
                                         &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_host_check(store, "nowhere.example",
                                         "media.example.org", 443, "/", &m,
                                         &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_origin_check(store, "nowhere.example",
                                           "https://app.example.org", &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_realm_options(store, "nowhere.example", &ro,
                                            &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_realm_urls(store, "nowhere.example", buf,
                                         sizeof(buf), list, 4, &n, &err),
                     &err);
}

static void
test_killed_realm(void **state)
{
    tp_credential c;
    tp_peer_decision dec;
    tp_host_match m;
    tp_realm_options ro;
    tp_addr a;
    tp_error err;

    (void)state;
    sign_with("k2", SIGNING, "kim", 600, NOW, &c);
    /* (a keyring for the killed realm signs the same way) */
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_verify(store, KILLED, c.username, c.password,
                                     NOW + 1, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_issue(store, KILLED, "kim", 600, NOW, &c,
                                    &err), &err);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_subject_check(store, KILLED, "kim", NOW, &err),
                     &err);
    TP_ASSERT_OK(tp_addr_parse("8.8.8.8", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_peer_check(store, KILLED, &a, &dec, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_host_check(store, KILLED, "media.example.org",
                                         443, "/", &m, &err), &err);
    /* The options still describe it, and say it is off. */
    TP_ASSERT_OK(tp_store_realm_options(store, KILLED, &ro, &err), &err);
    assert_int_equal(ro.killed, 1);
    TP_ASSERT_OK(tp_store_realm_options(store, REALM, &ro, &err), &err);
    assert_int_equal(ro.killed, 0);
    assert_int_equal(ro.user_quota, 3);
    assert_int_equal(ro.total_quota, 100);
    assert_int_equal(ro.max_bps, 1000000);
    assert_int_equal(ro.max_ttl, 86400);
}

static void
test_users(void **state)
{
    tp_session_use use = {0, 0, NULL, 0};
    tp_credential c;
    tp_addr a;
    uint64_t limit, used;
    int64_t quota;
    tp_error err;

    (void)state;
    /* unknown user: a valid credential for nobody provisioned */
    sign_with("k2", SIGNING, "zed", 600, NOW, &c);
    check_cred(REALM, &c, NOW + 1, TP_EUNKNOWNUSER);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER, tp_store_issue(store, REALM, "zed",
                                                     600, NOW, &c, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_subject_check(store, REALM, "zed", NOW, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_session_check(store, REALM, "zed", &use, &err),
                     &err);
    TP_ASSERT_OK(tp_addr_parse("192.0.2.1", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_client_check(store, REALM, "zed", &a, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_budget(store, REALM, "zed", &limit, &used,
                                     &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_user_quota(store, REALM, "zed", &quota, &err),
                     &err);
    /* a user of another realm is unknown here */
    TP_ASSERT_STATUS(TP_EUNKNOWNUSER,
                     tp_store_subject_check(store, REALM, "gina", NOW, &err),
                     &err);

    /* disabled */
    sign_with("k2", SIGNING, "bob", 600, NOW, &c);
    check_cred(REALM, &c, NOW + 1, TP_EDISABLED);
    TP_ASSERT_STATUS(TP_EDISABLED, tp_store_issue(store, REALM, "bob", 600,
                                                  NOW, &c, &err), &err);
    TP_ASSERT_STATUS(TP_EDISABLED,
                     tp_store_subject_check(store, REALM, "bob", NOW, &err),
                     &err);
}

static void
test_revoked(void **state)
{
    tp_credential c;
    tp_error err;

    (void)state;
    /* carol: everything issued before NOW - 100 is revoked */
    sign_with("k2", SIGNING, "carol", 600, NOW - 200, &c);
    check_cred(REALM, &c, NOW, TP_EREVOKED);
    TP_ASSERT_STATUS(TP_EREVOKED,
                     tp_store_subject_check(store, REALM, "carol", NOW - 200,
                                            &err), &err);
    TP_ASSERT_OK(tp_store_subject_check(store, REALM, "carol", NOW - 100,
                                        &err), &err);
    /* issued_at 0: "may it act at all" - not a question of revocation */
    TP_ASSERT_OK(tp_store_subject_check(store, REALM, "carol", 0, &err),
                 &err);
    TP_ASSERT_OK(tp_store_issue(store, REALM, "carol", 600, NOW, &c, &err),
                 &err);
    check_cred(REALM, &c, NOW + 1, TP_OK);

    /* rita was revoked "until the next whole second": a credential issued
     * now is dated at the revocation, so it is not born revoked */
    TP_ASSERT_OK(tp_store_issue(store, REALM, "rita", 600, NOW, &c, &err),
                 &err);
    assert_int_equal(c.issued, NOW + 1);
    check_cred(REALM, &c, NOW + 2, TP_OK);

    /* vic: one credential revoked by name, the others fine */
    check_cred(REALM, &vic_revoked, NOW, TP_EREVOKED);
    TP_ASSERT_OK(tp_store_issue(store, REALM, "vic", 600, NOW, &c, &err),
                 &err);
    check_cred(REALM, &c, NOW + 1, TP_OK);
}

static void
test_budget(void **state)
{
    tp_session_use use = {0, 0, NULL, 0};
    tp_credential c;
    uint64_t limit, used;
    tp_error err;

    (void)state;
    /* gina used her whole budget: her credentials stop working */
    TP_ASSERT_OK(tp_store_issue(store, BUDGET, "gina", 600, NOW, &c, &err),
                 &err);
    check_cred(BUDGET, &c, NOW + 1, TP_EBUDGET);
    TP_ASSERT_OK(tp_store_budget(store, BUDGET, "gina", &limit, &used, &err),
                 &err);
    assert_int_equal(limit, 1000);
    assert_int_equal(used, 1000);
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, BUDGET, "gina", &use,
                                            &err), &err);

    /* hank: 500 recorded; what the node adds counts */
    use.bytes = 499;
    TP_ASSERT_OK(tp_store_session_check(store, BUDGET, "hank", &use, &err),
                 &err);
    use.bytes = 500;
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, BUDGET, "hank", &use,
                                            &err), &err);
    use.bytes = UINT64_MAX; /* saturates, never wraps */
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, BUDGET, "hank", &use,
                                            &err), &err);

    /* ivan's own budget of 0 means none, whatever he used */
    use.bytes = 0;
    TP_ASSERT_OK(tp_store_budget(store, BUDGET, "ivan", &limit, &used, &err),
                 &err);
    assert_int_equal(limit, 0);
    assert_int_equal(used, 5000);
    TP_ASSERT_OK(tp_store_session_check(store, BUDGET, "ivan", &use, &err),
                 &err);
    /* judy's own budget (20) wins over the realm's (1000) */
    TP_ASSERT_OK(tp_store_budget(store, BUDGET, "judy", &limit, &used, &err),
                 &err);
    assert_int_equal(limit, 20);
    use.bytes = 10;
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, BUDGET, "judy", &use,
                                            &err), &err);
    /* a realm without a budget period has no budget */
    TP_ASSERT_OK(tp_store_budget(store, REALM, "alice", &limit, &used, &err),
                 &err);
    assert_int_equal(limit, 0);
}

/* A realm's byte budget holds all its users together: refused at key
 * lookup once the snapshot's total reaches it, and at session check with
 * what the node adds; the message names the realm. */
static void
test_realm_budget(void **state)
{
    tp_session_use use = {0, 0, NULL, 0};
    tp_credential c;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_issue(store, TENANT, "lea", 600, NOW, &c, &err),
                 &err);
    check_cred(TENANT, &c, NOW + 1, TP_OK);
    use.realm_bytes = 999;      /* 9000 recorded + 999 < 10000 */
    TP_ASSERT_OK(tp_store_session_check(store, TENANT, "lea", &use, &err),
                 &err);
    use.realm_bytes = 1000;
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, TENANT, "lea", &use,
                                            &err), &err);
    assert_non_null(strstr(err.message, "realm " TENANT));
    use.realm_bytes = UINT64_MAX; /* saturates */
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, TENANT, "lea", &use,
                                            &err), &err);
    /* spent by finished sessions of the realm: even a user who used
     * nothing is refused at key lookup */
    TP_ASSERT_OK(tp_store_issue(store, SPENT, "max", 600, NOW, &c, &err),
                 &err);
    check_cred(SPENT, &c, NOW + 1, TP_EBUDGET);
    use.realm_bytes = 0;
    TP_ASSERT_STATUS(TP_EBUDGET,
                     tp_store_session_check(store, SPENT, "max", &use, &err),
                     &err);
    assert_non_null(strstr(err.message, "realm " SPENT));
}

static void
test_quota(void **state)
{
    tp_session_use use = {0, 0, NULL, 0};
    int64_t quota;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_user_quota(store, REALM, "alice", &quota, &err),
                 &err);
    assert_int_equal(quota, 3); /* the realm's */
    TP_ASSERT_OK(tp_store_user_quota(store, REALM, "erin", &quota, &err),
                 &err);
    assert_int_equal(quota, 1); /* her own */
    use.live = 2;
    TP_ASSERT_OK(tp_store_session_check(store, REALM, "alice", &use, &err),
                 &err);
    use.live = 3;
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_session_check(store, REALM, "alice", &use,
                                            &err), &err);
    use.live = 1;
    TP_ASSERT_STATUS(TP_EQUOTA,
                     tp_store_session_check(store, REALM, "erin", &use,
                                            &err), &err);
    use.live = 0;
    TP_ASSERT_OK(tp_store_session_check(store, REALM, "erin", &use, &err),
                 &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_user_quota(store, REALM, "alice",
                                                    NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_session_check(store, REALM, "alice",
                                                       NULL, &err), &err);
}

static void
test_client(void **state)
{
    tp_session_use use = {0, 0, NULL, 0};
    tp_addr in4, mapped, out4, v6;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_addr_parse("192.0.2.7", &in4, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("::ffff:192.0.2.7", &mapped, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("203.0.113.1", &out4, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("2001:db8::1", &v6, &err), &err);
    TP_ASSERT_OK(tp_store_client_check(store, REALM, "dave", &in4, &err),
                 &err);
    TP_ASSERT_OK(tp_store_client_check(store, REALM, "dave", &mapped, &err),
                 &err);
    TP_ASSERT_STATUS(TP_ECLIENTADDR,
                     tp_store_client_check(store, REALM, "dave", &out4,
                                           &err), &err);
    TP_ASSERT_STATUS(TP_ECLIENTADDR,
                     tp_store_client_check(store, REALM, "dave", &v6, &err),
                     &err);
    /* no binding: anywhere */
    TP_ASSERT_OK(tp_store_client_check(store, REALM, "alice", &out4, &err),
                 &err);
    /* the session rule applies the same binding, when the address is
     * known */
    use.client = &out4;
    TP_ASSERT_STATUS(TP_ECLIENTADDR,
                     tp_store_session_check(store, REALM, "dave", &use,
                                            &err), &err);
    use.client = &in4;
    TP_ASSERT_OK(tp_store_session_check(store, REALM, "dave", &use, &err),
                 &err);
    use.client = NULL;
    TP_ASSERT_OK(tp_store_session_check(store, REALM, "dave", &use, &err),
                 &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_client_check(store, REALM, "dave",
                                                      NULL, &err), &err);
}

static void
test_hosts_peers(void **state)
{
    tp_peer_decision dec;
    tp_host_match m;
    tp_addr a;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_host_check(store, REALM, "media.example.org", 443,
                                     "/x", &m, &err), &err);
    assert_true(m.rule_index >= 0);
    assert_null(m.rule); /* never a pointer into the snapshot */
    TP_ASSERT_OK(tp_store_host_check(store, REALM, "a.cdn.example.org", 0,
                                     "/live/1", &m, &err), &err);
    TP_ASSERT_STATUS(TP_EHOSTDENIED,
                     tp_store_host_check(store, REALM, "a.cdn.example.org",
                                         0, "/vod/1", &m, &err), &err);
    TP_ASSERT_STATUS(TP_EHOSTDENIED,
                     tp_store_host_check(store, REALM, "evil.example", 443,
                                         "/", &m, &err), &err);
    /* budget.example has no host rules: default deny */
    TP_ASSERT_STATUS(TP_EHOSTDENIED,
                     tp_store_host_check(store, BUDGET, "media.example.org",
                                         443, "/", &m, &err), &err);

    TP_ASSERT_OK(tp_addr_parse("198.51.100.7", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EPEERDENIED,
                     tp_store_peer_check(store, REALM, &a, &dec, &err),
                     &err);
    assert_int_equal(dec.action, TP_PEER_DENY);
    assert_string_equal(dec.rule, "198.51.100.0/24");
    TP_ASSERT_OK(tp_addr_parse("8.8.8.8", &a, &err), &err);
    TP_ASSERT_OK(tp_store_peer_check(store, REALM, &a, &dec, &err), &err);
    /* loopback: the built-in default deny (the check sends nothing) */
    TP_ASSERT_OK(tp_addr_parse("127.0.0.1", &a, &err), &err);
    TP_ASSERT_STATUS(TP_EPEERDENIED,
                     tp_store_peer_check(store, REALM, &a, &dec, &err),
                     &err);
    assert_int_equal(dec.builtin, 1);
}

static tp_status
count_origin(void *ud, const char *origin, const char *realm)
{
    int *n = ud;

    (void)realm;
    if (strcmp(origin, "https://app.example.org") == 0)
        (*n)++;
    return TP_OK;
}

static void
test_origins_urls(void **state)
{
    const char *list[4];
    char buf[256], tiny[16];
    size_t n;
    int seen = 0;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_store_origin_check(store, REALM,
                                       "https://app.example.org", &err),
                 &err);
    TP_ASSERT_OK(tp_store_origin_check(store, REALM, "https://b.example.org",
                                       &err), &err);
    TP_ASSERT_OK(tp_store_origin_check(store, BUDGET,
                                       "https://app.example.org", &err),
                 &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_check(store, BUDGET,
                                           "https://b.example.org", &err),
                     &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_check(store, KILLED,
                                           "https://app.example.org", &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_origin_check(store, REALM, NULL,
                                                      &err), &err);
    /* an origin two realms allow is listed once, with its first realm */
    TP_ASSERT_OK(tp_store_origins(store, count_origin, &seen, &err), &err);
    assert_int_equal(seen, 1);

    TP_ASSERT_OK(tp_store_realm_urls(store, REALM, buf, sizeof(buf), list, 4,
                                     &n, &err), &err);
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "turn:turn.example.org:3478");
    assert_string_equal(list[1], "turns:turn.example.org:5349");
    TP_ASSERT_STATUS(TP_ENOSPACE,
                     tp_store_realm_urls(store, REALM, buf, sizeof(buf),
                                         list, 1, &n, &err), &err);
    TP_ASSERT_STATUS(TP_ENOSPACE,
                     tp_store_realm_urls(store, REALM, tiny, sizeof(tiny),
                                         list, 4, &n, &err), &err);
}

static tp_status
first_realm_of_app(void *ud, const char *origin, const char *realm)
{
    if (strcmp(origin, "https://app.example.org") == 0)
        snprintf(ud, TP_REALM_MAX + 1, "%s", realm);
    return TP_OK;
}

/* tp_store_origin_realm: which realm allows an origin (the first in name
 * order, as tp_store_origins gives it), or none. */
static void
test_origin_realm(void **state)
{
    char realm[TP_REALM_MAX + 1], listed[TP_REALM_MAX + 1] = "", tiny[4];
    tp_error err;

    (void)state;
    /* two realms allow it: budget.example comes before example.org */
    TP_ASSERT_OK(tp_store_origin_realm(store, "https://app.example.org",
                                       realm, sizeof(realm), &err), &err);
    assert_string_equal(realm, BUDGET);
    TP_ASSERT_OK(tp_store_origins(store, first_realm_of_app, listed, &err),
                 &err);
    assert_string_equal(realm, listed);
    TP_ASSERT_OK(tp_store_origin_realm(store, "https://b.example.org",
                                       realm, sizeof(realm), &err), &err);
    assert_string_equal(realm, REALM);
    /* whether any realm does, without the name */
    TP_ASSERT_OK(tp_store_origin_realm(store, "https://b.example.org", NULL,
                                       0, &err), &err);
    /* none does: before, between and after the listed origins, a prefix
     * of one, and one a character longer */
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_realm(store, "", realm, sizeof(realm),
                                           &err), &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_realm(store, "https://an.example.org",
                                           realm, sizeof(realm), &err),
                     &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_realm(store, "https://zz.example.org",
                                           NULL, 0, &err), &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_realm(store, "https://app.example.or",
                                           NULL, 0, &err), &err);
    TP_ASSERT_STATUS(TP_EORIGIN,
                     tp_store_origin_realm(store, "https://app.example.orgx",
                                           NULL, 0, &err), &err);
    /* the name does not fit */
    TP_ASSERT_STATUS(TP_ENOSPACE,
                     tp_store_origin_realm(store, "https://app.example.org",
                                           tiny, sizeof(tiny), &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_store_origin_realm(store, "https://app.example.org",
                                           NULL, 8, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_origin_realm(store, NULL, realm,
                                                      sizeof(realm), &err),
                     &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_store_origin_realm(NULL, "https://app.example.org",
                                           realm, sizeof(realm), &err), &err);
}

/* An HS256 token signed with JWT_KEY (kid) naming realm. */
static char *
token(const char *kid, const char *sub, const char *realm, int64_t now)
{
    const tp__static_jwt_key k = {kid, TP_JWT_HS256, JWT_KEY,
                                  sizeof(JWT_KEY) - 1};
    tp_jwt_issue_params p;
    tp_jwt_keys *jk;
    tp_error err;
    char *t = NULL;

    jk = tp_jwt_keys_new(NULL, &err);
    assert_non_null(jk);
    TP_ASSERT_OK(tp_jwt_keys_add(jk, k.kid, k.alg, k.key, k.len, &err),
                 &err);
    memset(&p, 0, sizeof(p));
    p.kid = kid;
    p.sub = sub;
    p.realm = realm;
    p.now = now;
    p.ttl = 300;
    TP_ASSERT_OK(tp_jwt_issue(jk, &p, &t, &err), &err);
    tp_jwt_keys_free(jk);
    return t;
}

static void
test_jwt(void **state)
{
    tp_jwt_claims cl;
    tp_error err;
    char *t;

    (void)state;
    t = token("j1", "alice", REALM, NOW);
    TP_ASSERT_OK(tp_store_jwt_verify(store, REALM, t, strlen(t), NOW + 1,
                                     &cl, &err), &err);
    assert_string_equal(cl.sub, "alice");
    /* the realm taken from the token's claim */
    TP_ASSERT_OK(tp_store_jwt_verify(store, NULL, t, strlen(t), NOW + 1,
                                     &cl, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTEXPIRED,
                     tp_store_jwt_verify(store, REALM, t, strlen(t),
                                         NOW + 3600, &cl, &err), &err);
    /* verified with another realm's keys: the claim must name it */
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_jwt_verify(store, "nowhere.example", t,
                                         strlen(t), NOW + 1, &cl, &err),
                     &err);
    tp_free(t);
    t = token("j1", "kim", KILLED, NOW);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_jwt_verify(store, NULL, t, strlen(t), NOW + 1,
                                         &cl, &err), &err);
    TP_ASSERT_STATUS(TP_EJWTCLAIM,
                     tp_store_jwt_verify(store, REALM, t, strlen(t), NOW + 1,
                                         &cl, &err), &err);
    tp_free(t);
    t = token("j9", "alice", REALM, NOW);
    TP_ASSERT_STATUS(TP_EJWTKID,
                     tp_store_jwt_verify(store, REALM, t, strlen(t), NOW + 1,
                                         &cl, &err), &err);
    tp_free(t);
    t = token("j1", "alice", NULL, NOW);
    TP_ASSERT_STATUS(TP_EUNKNOWNREALM,
                     tp_store_jwt_verify(store, NULL, t, strlen(t), NOW + 1,
                                         &cl, &err), &err);
    tp_free(t);
}

/* What Redis fan-out delivers before the snapshot has it. */
static void
overlay_add(tp_store *st, enum ov_kind kind, const char *realm,
            const char *key, int64_t before)
{
    ov_entry e;

    memset(&e, 0, sizeof(e));
    e.kind = kind;
    assert_int_equal(tp__strlcpy(e.realm, realm, sizeof(e.realm)), 0);
    assert_int_equal(tp__strlcpy(e.key, key, sizeof(e.key)), 0);
    e.before = before;
    e.until = mono_now() + 60;
    tp__overlay_update(st, &e, -1, NULL, NULL);
}

static void
test_overlay(void **state)
{
    tp_credential a, b, c;
    tp_peer_decision dec;
    tp_addr addr;
    tp_error err;
    tp_store *st;

    (void)state;
    st = tp__store_new_static(&policy, NULL, &err);
    assert_non_null(st);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, NOW, &a, &err),
                 &err);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, NOW + 10, &b,
                                &err), &err);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "erin", 600, NOW, &c, &err),
                 &err);
    overlay_add(st, OV_REVOKE_USER, REALM, "alice", NOW + 5);
    TP_ASSERT_STATUS(TP_EREVOKED,
                     tp_store_verify(st, REALM, a.username, a.password,
                                     NOW + 20, NULL, &err), &err);
    TP_ASSERT_OK(tp_store_verify(st, REALM, b.username, b.password,
                                 NOW + 20, NULL, &err), &err);
    overlay_add(st, OV_REVOKE_CRED, REALM, b.username, 0);
    TP_ASSERT_STATUS(TP_EREVOKED,
                     tp_store_verify(st, REALM, b.username, b.password,
                                     NOW + 20, NULL, &err), &err);
    overlay_add(st, OV_DISABLE, REALM, "erin", 0);
    TP_ASSERT_STATUS(TP_EDISABLED,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     NOW + 1, NULL, &err), &err);
    /* an enable cancels the disable */
    tp__overlay_update(st, NULL, OV_DISABLE, REALM, "erin");
    TP_ASSERT_OK(tp_store_verify(st, REALM, c.username, c.password, NOW + 1,
                                 NULL, &err), &err);
    overlay_add(st, OV_KILL, REALM, "", 0);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_verify(st, REALM, c.username, c.password,
                                     NOW + 1, NULL, &err), &err);
    TP_ASSERT_OK(tp_addr_parse("8.8.8.8", &addr, &err), &err);
    TP_ASSERT_STATUS(TP_EREALMKILLED,
                     tp_store_peer_check(st, REALM, &addr, &dec, &err),
                     &err);
    tp__overlay_update(st, NULL, OV_KILL, REALM, "");
    TP_ASSERT_OK(tp_store_peer_check(st, REALM, &addr, &dec, &err), &err);
    tp_store_free(st);
}

static void
test_stale(void **state)
{
    tp__static_options o;
    tp_credential c;
    tp_peer_decision dec;
    tp_addr a;
    tp_error err;
    tp_store *st;

    (void)state;
    sign_with("k2", SIGNING, "alice", 600, NOW, &c);
    TP_ASSERT_OK(tp_addr_parse("8.8.8.8", &a, &err), &err);
    memset(&o, 0, sizeof(o));
    o.unloaded = 1; /* PostgreSQL never reached */
    st = tp__store_new_static(&policy, &o, &err);
    assert_non_null(st);
    TP_ASSERT_STATUS(TP_ESTALE, tp_store_verify(st, REALM, c.username,
                                                c.password, NOW + 1, NULL,
                                                &err), &err);
    tp_store_free(st);
    o.unloaded = 0;
    o.stale = 1; /* last confirmed longer than max_staleness ago */
    o.max_staleness = 5;
    st = tp__store_new_static(&policy, &o, &err);
    assert_non_null(st);
    TP_ASSERT_STATUS(TP_ESTALE, tp_store_verify(st, REALM, c.username,
                                                c.password, NOW + 1, NULL,
                                                &err), &err);
    TP_ASSERT_STATUS(TP_ESTALE, tp_store_issue(st, REALM, "alice", 600, NOW,
                                               &c, &err), &err);
    TP_ASSERT_STATUS(TP_ESTALE, tp_store_peer_check(st, REALM, &a, &dec,
                                                    &err), &err);
    TP_ASSERT_STATUS(TP_ESTALE, tp_store_subject_check(st, REALM, "alice",
                                                       NOW, &err), &err);
    tp_store_free(st);
}

static void
test_rate_without_redis(void **state)
{
    tp__static_options o;
    tp_credential c;
    uint32_t count;
    tp_error err;
    tp_store *st;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.issue_per_minute = 5;
    o.redis_fail_mode = TP_FAIL_CLOSED;
    st = tp__store_new_static(&policy, &o, &err);
    assert_non_null(st);
    TP_ASSERT_STATUS(TP_EREDIS, tp_store_issue(st, REALM, "alice", 600, NOW,
                                               &c, &err), &err);
    /* a refused subject is refused before any counting */
    TP_ASSERT_STATUS(TP_EDISABLED, tp_store_issue(st, REALM, "bob", 600,
                                                  NOW, &c, &err), &err);
    TP_ASSERT_STATUS(TP_EREDIS,
                     tp_store_alloc_acquire(st, REALM, "alice", "s1", 600,
                                            NOW, &count, &err), &err);
    tp_store_free(st);
    o.redis_fail_mode = TP_FAIL_OPEN;
    st = tp__store_new_static(&policy, &o, &err);
    assert_non_null(st);
    TP_ASSERT_OK(tp_store_issue(st, REALM, "alice", 600, NOW, &c, &err),
                 &err);
    TP_ASSERT_OK(tp_store_alloc_acquire(st, REALM, "alice", "s1", 600, NOW,
                                        &count, &err), &err);
    tp_store_free(st);
}

static tp_status
collect(void *ud, const char *name)
{
    char *buf = ud;

    strcat(buf, name);
    strcat(buf, " ");
    return TP_OK;
}

static void
test_listings(void **state)
{
    char names[256] = "", ranges[4096] = "";
    tp_store_info info;
    tp_error err;

    (void)state;
    /* in name order, a killed realm included */
    TP_ASSERT_OK(tp_store_realms(store, collect, names, &err), &err);
    assert_string_equal(names, "budget.example example.org killed.example "
                               "spent.example tenant.example ");
    TP_ASSERT_OK(tp_store_export_coturn(store, REALM, TP_PEER_DENY, collect,
                                        ranges, &err), &err);
    assert_non_null(strstr(ranges, "198.51.100.0-198.51.100.255"));
    tp_store_info_get(store, &info);
    assert_int_equal(info.realms, 5);
    assert_int_equal(info.users, 14);
    assert_int_equal(info.connected, 1);
    assert_int_equal(info.overlay, 0);
}

/* The usage queue takes records without any I/O; with no store thread
 * nothing writes them, so a flush reports them as pending. */
static void
test_usage_queue(void **state)
{
    tp_usage u = {"node-1", "sess-1", REALM, "alice", NOW - 60, NOW, 10, 20,
                  "192.0.2.7"};
    tp_store_info info;
    tp_error err;
    tp_store *st;

    (void)state;
    st = tp__store_new_static(&policy, NULL, &err);
    assert_non_null(st);
    TP_ASSERT_OK(tp_store_usage_record(st, &u, &err), &err);
    u.client_addr = "not-an-address";
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_usage_record(st, &u, &err), &err);
    u.client_addr = NULL;
    u.ended = u.started - 1;
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_usage_record(st, &u, &err), &err);
    u.ended = NOW;
    u.session_id = "two words";
    TP_ASSERT_STATUS(TP_EINVAL, tp_store_usage_record(st, &u, &err), &err);
    tp_store_info_get(st, &info);
    assert_int_equal(info.usage_pending, 1);
    TP_ASSERT_STATUS(TP_EDB, tp_store_usage_flush(st, 10, &err), &err);
    tp_store_free(st); /* drops the queued record (LSan: nothing leaks) */
}

static void
test_static_refuses(void **state)
{
    static const tp__static_realm twice[] = {{.name = REALM},
                                             {.name = REALM}};
    static const tp__static_user stray[] = {{.realm = "x.example",
                                             .user_id = "a"}};
    static const tp__static_user dup[] = {{.realm = REALM, .user_id = "a"},
                                          {.realm = REALM, .user_id = "a"}};
    static const tp__static_user badnet[] = {{.realm = REALM,
                                              .user_id = "a",
                                              .client_cidr = "10.0.0.0/33"}};
    tp__static_policy p;
    tp_error err;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.realms = twice;
    p.nrealms = 2;
    assert_null(tp__store_new_static(&p, NULL, &err));
    assert_int_equal(err.status, TP_EINVAL);
    p.nrealms = 1;
    p.users = stray;
    p.nusers = 1;
    assert_null(tp__store_new_static(&p, NULL, &err));
    assert_int_equal(err.status, TP_EINVAL);
    p.users = dup;
    p.nusers = 2;
    assert_null(tp__store_new_static(&p, NULL, &err));
    assert_int_equal(err.status, TP_EINVAL);
    p.users = badnet;
    p.nusers = 1;
    assert_null(tp__store_new_static(&p, NULL, &err));
    assert_int_equal(err.status, TP_EINVAL);
    assert_null(tp__store_new_static(NULL, NULL, &err));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_verify_key),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_unknown_realm),
        cmocka_unit_test(test_killed_realm),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_realm_budget),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_hosts_peers),
        cmocka_unit_test(test_origins_urls),
        cmocka_unit_test(test_origin_realm),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_rate_without_redis),
        cmocka_unit_test(test_listings),
        cmocka_unit_test(test_usage_queue),
        cmocka_unit_test(test_static_refuses),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
