/*
 * test_cred.c - credentials: identifiers, the username grammar, issuing,
 * verifying, long-term keys, rotation states and the JSON shapes.
 *
 * The clock is always injected (NOW); nothing sleeps.  OpenSSL's one-shot
 * HMAC() is the independent reference for the precomputed-pad HMAC.
 */
#include "tp_test.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NOW 1700000000
#define SECRET_A "0123456789abcdef-secret-A"
#define SECRET_B "fedcba9876543210-secret-B"
#define SECRET_C "retired-secret-C-1234567"

static tp_keyring *
make_keyring(void)
{
    tp_keyring_options o = {3600, 86400, 60};
    tp_error err;
    tp_keyring *kr = tp_keyring_new("example.org", &o, &err);

    assert_non_null(kr);
    TP_ASSERT_OK(tp_keyring_add(kr, "k2", SECRET_B, strlen(SECRET_B),
                                TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_OK(tp_keyring_add(kr, "k1", SECRET_A, strlen(SECRET_A),
                                TP_SECRET_VERIFY_ONLY, &err), &err);
    TP_ASSERT_OK(tp_keyring_add(kr, "k0", SECRET_C, strlen(SECRET_C),
                                TP_SECRET_RETIRED, &err), &err);
    return kr;
}

/* Reference password: base64(HMAC-SHA1(secret, username)) via OpenSSL's
 * one-shot HMAC(). */
static void
ref_password(const char *secret, size_t slen, const char *username,
             char out[TP_PASSWORD_LEN + 1])
{
    unsigned char md[20];
    unsigned int mdlen = 0;

    assert_non_null(HMAC(EVP_sha1(), secret, (int)slen,
                         (const unsigned char *)username, strlen(username),
                         md, &mdlen));
    assert_int_equal(mdlen, 20);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, md, 20),
                     TP_PASSWORD_LEN);
}

static void
test_identifiers(void **state)
{
    char longid[TP_USER_ID_MAX + 2];
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_user_id_check("alice@example.org", &err), &err);
    TP_ASSERT_OK(tp_user_id_check("a-b_c.d+e=f!", &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_user_id_check("", &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_user_id_check(NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("a:b", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("50%off", &err), &err);
    assert_non_null(strstr(err.message, "offset 2"));
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("a b", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("a\tb", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("a\nb", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("a/b", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_user_id_check("caf\xc3\xa9", &err),
                     &err);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_user_id_check(longid, &err), &err);
    longid[TP_USER_ID_MAX] = '\0';
    TP_ASSERT_OK(tp_user_id_check(longid, &err), &err);

    TP_ASSERT_OK(tp_realm_check("north.gov", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_realm_check("north gov", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_realm_check("a/b", &err), &err);
    TP_ASSERT_OK(tp_kid_check("k1", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_kid_check("1234", &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_kid_check("k:1", &err), &err);
    TP_ASSERT_STATUS(TP_ETOOLONG,
                     tp_kid_check("k23456789012345678901234567890123", &err),
                     &err);
}

static void
test_username_grammar(void **state)
{
    char big[TP_USERNAME_MAX + 10];
    tp_username u;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_username_parse("1700003600:alice:k1:1700000000", &u,
                                   &err), &err);
    assert_int_equal(u.form, TP_FORM_V1);
    assert_int_equal(u.expires, 1700003600);
    assert_int_equal(u.issued, 1700000000);
    assert_string_equal(u.user_id, "alice");
    assert_string_equal(u.kid, "k1");

    TP_ASSERT_OK(tp_username_parse("1700003600:alice", &u, &err), &err);
    assert_int_equal(u.form, TP_FORM_LEGACY);
    assert_string_equal(u.kid, "");

    /* Missing or extra fields. */
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("alice", &u, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("1700003600:alice:k1",
                                                      &u, &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED,
                     tp_username_parse("1:a:k1:1:extra:x", &u, &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("1700003600::k1:1", &u,
                                                      &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("1700003600:a::1", &u,
                                                      &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse(":alice", &u, &err),
                     &err);
    /* Numbers: digits only, no sign, no leading zero, fits int64. */
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("-5:alice", &u, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("0170:alice", &u,
                                                      &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED, tp_username_parse("12ab:alice", &u,
                                                      &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED,
                     tp_username_parse("99999999999999999999:alice", &u,
                                       &err), &err);
    TP_ASSERT_STATUS(TP_EMALFORMED,
                     tp_username_parse("1700003600:alice:k1:x", &u, &err),
                     &err);
    /* iat after expiry */
    TP_ASSERT_STATUS(TP_EMALFORMED,
                     tp_username_parse("1700000000:alice:k1:1700003600", &u,
                                       &err), &err);
    /* Forbidden characters anywhere: % (coturn statsdb format string),
     * whitespace, control characters. */
    TP_ASSERT_STATUS(TP_EBADCHAR,
                     tp_username_parse("1700003600:al%nice:k1:1700000000",
                                       &u, &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_username_parse("1700003600:al ice", &u,
                                                    &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_username_parse("1700003600:al\x01ice",
                                                    &u, &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_username_parse("%s%s%s%n", &u, &err),
                     &err);
    /* Kid rules apply inside usernames too. */
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_username_parse("1700003600:a:12:1", &u,
                                                    &err), &err);
    /* Overlong username and overlong user id inside a short-enough one. */
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_username_parse(big, &u, &err), &err);
    memcpy(big, "1700003600:", 11);
    memset(big + 11, 'u', TP_USER_ID_MAX + 1);
    big[11 + TP_USER_ID_MAX + 1] = '\0';
    TP_ASSERT_STATUS(TP_ETOOLONG, tp_username_parse(big, &u, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_username_parse("", &u, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_username_parse(NULL, &u, &err), &err);
}

static void
test_issue_verify(void **state)
{
    tp_keyring *kr = make_keyring();
    char ref[TP_PASSWORD_LEN + 1];
    tp_credential c;
    tp_username u;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 600, NOW, &c, &err), &err);
    assert_string_equal(c.username, "1700000600:alice:k2:1700000000");
    assert_int_equal(c.ttl, 600);
    assert_int_equal(c.issued, NOW);
    assert_int_equal(c.expires, NOW + 600);
    assert_int_equal(strlen(c.password), TP_PASSWORD_LEN);
    /* TURN REST rule, checked against OpenSSL's one-shot HMAC. */
    ref_password(SECRET_B, strlen(SECRET_B), c.username, ref);
    assert_string_equal(c.password, ref);

    TP_ASSERT_OK(tp_credential_verify(kr, c.username, c.password, NOW, &u,
                                      &err), &err);
    assert_string_equal(u.user_id, "alice");
    TP_ASSERT_OK(tp_credential_verify(kr, c.username, c.password,
                                      NOW + 599, NULL, &err), &err);
    /* Expired exactly at expiry. */
    TP_ASSERT_STATUS(TP_EEXPIRED,
                     tp_credential_verify(kr, c.username, c.password,
                                          NOW + 600, NULL, &err), &err);
    assert_null(strstr(err.message, c.password));
    /* Issued in the future beyond the skew; within it is fine. */
    TP_ASSERT_STATUS(TP_ENOTYETVALID,
                     tp_credential_verify(kr, c.username, c.password,
                                          NOW - 61, NULL, &err), &err);
    TP_ASSERT_OK(tp_credential_verify(kr, c.username, c.password, NOW - 60,
                                      NULL, &err), &err);
    /* Default ttl. */
    TP_ASSERT_OK(tp_credential_issue(kr, "bob", 0, NOW, &c, &err), &err);
    assert_int_equal(c.ttl, 3600);
    tp_keyring_free(kr);
}

static void
test_tampering(void **state)
{
    tp_keyring *kr = make_keyring();
    char name[TP_USERNAME_MAX + 1];
    char pw[TP_PASSWORD_LEN + 8];
    tp_credential c;
    tp_error err;

    (void)state;
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 600, NOW, &c, &err), &err);
    /* Extend the expiry: signature no longer matches. */
    snprintf(name, sizeof(name), "1700099999:alice:k2:1700000000");
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, name, c.password, NOW, NULL,
                                          &err), &err);
    /* Other user. */
    snprintf(name, sizeof(name), "1700000600:mallory:k2:1700000000");
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, name, c.password, NOW, NULL,
                                          &err), &err);
    /* One flipped password character, shorter, longer, empty. */
    memcpy(pw, c.password, sizeof(c.password));
    pw[5] = pw[5] == 'A' ? 'B' : 'A';
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, c.username, pw, NOW, NULL,
                                          &err), &err);
    memcpy(pw, c.password, sizeof(c.password));
    pw[TP_PASSWORD_LEN - 1] = '\0';
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, c.username, pw, NOW, NULL,
                                          &err), &err);
    snprintf(pw, sizeof(pw), "%sA", c.password);
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, c.username, pw, NOW, NULL,
                                          &err), &err);
    TP_ASSERT_STATUS(TP_EBADPASSWORD,
                     tp_credential_verify(kr, c.username, "", NOW, NULL,
                                          &err), &err);
    /* The message never contains the password. */
    assert_null(strstr(err.message, c.password));
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_credential_verify(kr, c.username, NULL, NOW, NULL,
                                          &err), &err);
    tp_keyring_free(kr);
}

static void
test_rotation_states(void **state)
{
    tp_keyring *kr = make_keyring();
    char name[TP_USERNAME_MAX + 1];
    char pw[TP_PASSWORD_LEN + 1];
    tp_username u;
    tp_error err;

    (void)state;
    /* A credential signed by the verify-only k1 still verifies. */
    snprintf(name, sizeof(name), "1700000600:alice:k1:1700000000");
    ref_password(SECRET_A, strlen(SECRET_A), name, pw);
    TP_ASSERT_OK(tp_credential_verify(kr, name, pw, NOW, &u, &err), &err);
    assert_string_equal(u.kid, "k1");
    /* Retired k0: refused as retired, not as unknown. */
    snprintf(name, sizeof(name), "1700000600:alice:k0:1700000000");
    ref_password(SECRET_C, strlen(SECRET_C), name, pw);
    TP_ASSERT_STATUS(TP_ERETIRED,
                     tp_credential_verify(kr, name, pw, NOW, NULL, &err),
                     &err);
    /* Unknown kid. */
    snprintf(name, sizeof(name), "1700000600:alice:k9:1700000000");
    TP_ASSERT_STATUS(TP_EUNKNOWNKID,
                     tp_credential_verify(kr, name, pw, NOW, NULL, &err),
                     &err);
    /* Lifetime longer than the realm allows, even with a valid MAC. */
    snprintf(name, sizeof(name), "1700090000:alice:k1:1700000000");
    ref_password(SECRET_A, strlen(SECRET_A), name, pw);
    TP_ASSERT_STATUS(TP_ETTL,
                     tp_credential_verify(kr, name, pw, NOW, NULL, &err),
                     &err);
    tp_keyring_free(kr);
}

static void
test_legacy(void **state)
{
    tp_keyring *kr = make_keyring();
    char name[64], pw[TP_PASSWORD_LEN + 1];
    char key[TP_LTKEY_HEX_LEN + 1];
    tp_username u;
    tp_error err;

    (void)state;
    snprintf(name, sizeof(name), "1700000600:alice");
    ref_password("short", 5, name, pw);
    /* No legacy secret configured: refused as an unknown secret. */
    TP_ASSERT_STATUS(TP_EUNKNOWNKID,
                     tp_credential_verify(kr, name, pw, NOW, NULL, &err),
                     &err);
    TP_ASSERT_OK(tp_keyring_set_legacy(kr, "short", 5, &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_keyring_set_legacy(kr, "x", 1, &err),
                     &err);
    TP_ASSERT_OK(tp_credential_verify(kr, name, pw, NOW, &u, &err), &err);
    assert_int_equal(u.form, TP_FORM_LEGACY);
    TP_ASSERT_OK(tp_credential_key(kr, name, NOW, key, NULL, &err), &err);
    /* A legacy credential valid for longer than max_ttl is refused. */
    snprintf(name, sizeof(name), "1800000000:alice");
    ref_password("short", 5, name, pw);
    TP_ASSERT_STATUS(TP_ETTL,
                     tp_credential_verify(kr, name, pw, NOW, NULL, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_keyring_set_legacy(kr, "", 0, &err), &err);
    tp_keyring_free(kr);
}

static void
test_long_secret(void **state)
{
    /* Secrets longer than the SHA-1 block are hashed first (RFC 2104). */
    char secret[200], ref[TP_PASSWORD_LEN + 1];
    tp_credential c;
    tp_keyring *kr;
    tp_error err;

    (void)state;
    memset(secret, 'S', sizeof(secret));
    kr = tp_keyring_new("r", NULL, &err);
    assert_non_null(kr);
    TP_ASSERT_OK(tp_keyring_add(kr, "big", secret, sizeof(secret),
                                TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_OK(tp_credential_issue(kr, "u", 60, NOW, &c, &err), &err);
    ref_password(secret, sizeof(secret), c.username, ref);
    assert_string_equal(c.password, ref);
    tp_keyring_free(kr);
}

static void
test_longterm_key(void **state)
{
    char key[TP_LTKEY_HEX_LEN + 1], key2[TP_LTKEY_HEX_LEN + 1];
    tp_keyring *kr = make_keyring();
    tp_credential c;
    tp_username u;
    tp_error err;

    (void)state;
    /* coturn's documented example (turnadmin -k -u gorst -r north.gov
     * -p hero). */
    TP_ASSERT_OK(tp_longterm_key("gorst", "north.gov", "hero", key, &err),
                 &err);
    assert_string_equal(key, "7da2270ccfa49786e0115366d3a3d14d");
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_longterm_key(NULL, "r", "p", key, &err), &err);

    /* Derived key == key of the issued password. */
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 600, NOW, &c, &err), &err);
    TP_ASSERT_OK(tp_credential_key(kr, c.username, NOW, key, &u, &err),
                 &err);
    TP_ASSERT_OK(tp_longterm_key(c.username, "example.org", c.password, key2,
                                 &err), &err);
    assert_string_equal(key, key2);
    assert_string_equal(u.user_id, "alice");
    /* The key path applies the policy. */
    TP_ASSERT_STATUS(TP_EEXPIRED, tp_credential_key(kr, c.username,
                                                    NOW + 600, key, NULL,
                                                    &err), &err);
    TP_ASSERT_STATUS(TP_EUNKNOWNKID,
                     tp_credential_key(kr, "1700000600:alice:zz:1700000000",
                                       NOW, key, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_ERETIRED,
                     tp_credential_key(kr, "1700000600:alice:k0:1700000000",
                                       NOW, key, NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR,
                     tp_credential_key(kr, "1700000600:a%x:k2:1700000000",
                                       NOW, key, NULL, &err), &err);
    tp_keyring_free(kr);
}

static void
test_keyring_errors(void **state)
{
    tp_keyring_options o = {0, 0, 0};
    tp_credential c;
    tp_keyring *kr;
    tp_error err;

    (void)state;
    assert_null(tp_keyring_new("bad realm", NULL, &err));
    assert_int_equal(err.status, TP_EBADCHAR);
    o.max_ttl = TP_TTL_MAX + 1;
    assert_null(tp_keyring_new("r", &o, &err));
    assert_int_equal(err.status, TP_ETTL);
    o.max_ttl = 100;
    o.default_ttl = 200;
    assert_null(tp_keyring_new("r", &o, &err));
    assert_int_equal(err.status, TP_ETTL);
    o.default_ttl = 50;
    o.clock_skew = 7200;
    assert_null(tp_keyring_new("r", &o, &err));
    assert_int_equal(err.status, TP_EINVAL);
    o.clock_skew = 0;

    kr = tp_keyring_new("r", &o, &err);
    assert_non_null(kr);
    assert_string_equal(tp_keyring_realm(kr), "r");
    /* No signing secret yet. */
    TP_ASSERT_STATUS(TP_ENOSIGNING,
                     tp_credential_issue(kr, "u", 10, NOW, &c, &err), &err);
    TP_ASSERT_STATUS(TP_EKEY, tp_keyring_add(kr, "k1", "short", 5,
                                             TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_OK(tp_keyring_add(kr, "k1", SECRET_A, strlen(SECRET_A),
                                TP_SECRET_SIGNING, &err), &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_keyring_add(kr, "k1", SECRET_B,
                                                strlen(SECRET_B),
                                                TP_SECRET_VERIFY_ONLY, &err),
                     &err);
    TP_ASSERT_STATUS(TP_EEXISTS, tp_keyring_add(kr, "k2", SECRET_B,
                                                strlen(SECRET_B),
                                                TP_SECRET_SIGNING, &err),
                     &err);
    /* The error message names the kid but never the secret. */
    assert_null(strstr(err.message, SECRET_B));
    assert_null(strstr(err.message, SECRET_A));
    TP_ASSERT_STATUS(TP_EINVAL, tp_keyring_add(kr, "k3", SECRET_B,
                                               strlen(SECRET_B),
                                               (tp_secret_state)7, &err),
                     &err);
    /* Several secrets force the array to grow (copy + wipe path). */
    TP_ASSERT_OK(tp_keyring_add(kr, "k3", SECRET_B, strlen(SECRET_B),
                                TP_SECRET_VERIFY_ONLY, &err), &err);
    TP_ASSERT_OK(tp_keyring_add(kr, "k4", SECRET_B, strlen(SECRET_B),
                                TP_SECRET_VERIFY_ONLY, &err), &err);
    TP_ASSERT_OK(tp_keyring_add(kr, "k5", SECRET_B, strlen(SECRET_B),
                                TP_SECRET_RETIRED, &err), &err);
    TP_ASSERT_OK(tp_credential_issue(kr, "u", 10, NOW, &c, &err), &err);
    TP_ASSERT_OK(tp_credential_verify(kr, c.username, c.password, NOW, NULL,
                                      &err), &err);
    /* ttl above the realm maximum; user id with a colon. */
    TP_ASSERT_STATUS(TP_ETTL, tp_credential_issue(kr, "u", 101, NOW, &c,
                                                  &err), &err);
    TP_ASSERT_STATUS(TP_EBADCHAR, tp_credential_issue(kr, "a:b", 10, NOW, &c,
                                                      &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_credential_issue(kr, "u", 10, -1, &c,
                                                    &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL, tp_credential_issue(NULL, "u", 10, NOW, &c,
                                                    &err), &err);
    tp_keyring_free(kr);
    tp_keyring_free(NULL);
}

static void
test_states(void **state)
{
    tp_secret_state st;

    (void)state;
    TP_ASSERT_OK(tp_secret_state_parse("verify-only", &st), NULL);
    assert_int_equal(st, TP_SECRET_VERIFY_ONLY);
    assert_string_equal(tp_secret_state_name(TP_SECRET_RETIRED), "retired");
    assert_string_equal(tp_secret_state_name(TP_SECRET_SIGNING), "signing");
    TP_ASSERT_STATUS(TP_EINVAL, tp_secret_state_parse("active", &st), NULL);
}

static void
test_json(void **state)
{
    const char *urls[] = {"turn:127.0.0.1:3478?transport=udp",
                          "turns:relay.example.org:5349?transport=tcp"};
    tp_keyring *kr = make_keyring();
    char buf[1024], want[1024];
    tp_credential c;
    tp_error err;
    size_t n = 0;

    (void)state;
    TP_ASSERT_OK(tp_credential_issue(kr, "alice", 600, NOW, &c, &err), &err);
    TP_ASSERT_OK(tp_credential_json(&c, urls, 2, TP_JSON_ICE, buf,
                                    sizeof(buf), &n, &err), &err);
    snprintf(want, sizeof(want),
             "{\"iceServers\":[{\"urls\":[\"%s\",\"%s\"],\"username\":\"%s\","
             "\"credential\":\"%s\"}],\"ttl\":600,"
             "\"expiresOn\":\"2023-11-14T22:23:20Z\"}",
             urls[0], urls[1], c.username, c.password);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    TP_ASSERT_OK(tp_credential_json(&c, urls, 1, TP_JSON_REST, buf,
                                    sizeof(buf), NULL, &err), &err);
    snprintf(want, sizeof(want),
             "{\"username\":\"%s\",\"password\":\"%s\",\"ttl\":600,"
             "\"uris\":[\"%s\"]}", c.username, c.password, urls[0]);
    assert_string_equal(buf, want);
    /* Escaping of a hostile URL from a configuration. */
    {
        const char *odd[] = {"turn:\"x\\y\n"};

        TP_ASSERT_OK(tp_credential_json(&c, odd, 1, TP_JSON_REST, buf,
                                        sizeof(buf), NULL, &err), &err);
        assert_non_null(strstr(buf, "\"turn:\\\"x\\\\y\\u000a\""));
    }
    TP_ASSERT_STATUS(TP_ENOSPACE,
                     tp_credential_json(&c, urls, 2, TP_JSON_ICE, buf, 40,
                                        NULL, &err), &err);
    assert_string_equal(buf, "");
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_credential_json(&c, urls, 2, (tp_cred_json)9, buf,
                                        sizeof(buf), NULL, &err), &err);
    TP_ASSERT_STATUS(TP_EINVAL,
                     tp_credential_json(&c, NULL, 2, TP_JSON_ICE, buf,
                                        sizeof(buf), NULL, &err), &err);
    tp_keyring_free(kr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_username_grammar),
        cmocka_unit_test(test_issue_verify),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_rotation_states),
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_long_secret),
        cmocka_unit_test(test_longterm_key),
        cmocka_unit_test(test_keyring_errors),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_json),
    };

    return cmocka_run_group_tests_name("cred", tests, NULL, NULL);
}
