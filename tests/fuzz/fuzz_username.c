/*
 * fuzz_username.c - libFuzzer target for the library's parsers of what a
 * client presents: TURN usernames (tp_username_parse), the long-term key
 * derivation coturn's key lookup runs on them (tp_credential_key), the
 * username/password check (tp_credential_verify) and JSON Web Tokens
 * (tp_jwt_verify, libjwt underneath).
 *
 * Why: these see attacker-chosen bytes on every TURN allocation and
 * every token-authenticated request, before any policy applies.
 *
 * What one input is: the bytes as a token for tp_jwt_verify (length-
 * delimited, not NUL-terminated: ASan sees any read past the end), and,
 * up to the first '\n' (or the whole input) and cut at its first NUL, a
 * username for the three credential calls; what follows the '\n' is the
 * password for tp_credential_verify.  Seeds: tests/fuzz/corpus_username,
 * written by make_corpus.py (usernames valid at NOW for the keyring
 * below, legacy ones, tokens signed with the keys below).
 *
 * Fixed keys: realm fuzz.test with kid "k1" signing, "k0" verify-only,
 * "old" retired and a legacy secret; HS256 keys "j1" and a kid-less one,
 * issuer "https://issuer.fuzz", audience "turn".  The clock is NOW.
 *
 * Checked, beyond ASan/UBSan/LSan: results agree with each other (a key
 * is only derived for a username that parses; verify never succeeds
 * where the key derivation fails); the hex key is 32 lowercase hex
 * digits; the error message is a terminated string that contains no
 * secret; a failed token verification leaves the claims zeroed.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnpolicy.h"

#define NOW INT64_C(1700000000)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Kept in sync with make_corpus.py. */
static const char realm[] = "fuzz.test";
static const char k1[] = "fuzz-signing-secret-k1-0123456789";
static const char k0[] = "fuzz-verify-only-secret-k0-abcdef";
static const char kold[] = "fuzz-retired-secret-old-ghijklmno";
static const char legacy[] = "fuzz-legacy-static-auth-secret";
static const char j1[] = "fuzz-jwt-hs256-key-j1-0123456789abcdef";
static const char jnokid[] = "fuzz-jwt-hs256-key-nokid-0123456789abc";

static tp_keyring *kr;
static tp_jwt_keys *jk;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tp_jwt_options jo;

    (void)argc;
    (void)argv;
    kr = tp_keyring_new(realm, NULL, NULL);
    if (kr == NULL ||
        tp_keyring_add(kr, "k1", k1, strlen(k1), TP_SECRET_SIGNING,
                       NULL) != TP_OK ||
        tp_keyring_add(kr, "k0", k0, strlen(k0), TP_SECRET_VERIFY_ONLY,
                       NULL) != TP_OK ||
        tp_keyring_add(kr, "old", kold, strlen(kold), TP_SECRET_RETIRED,
                       NULL) != TP_OK ||
        tp_keyring_set_legacy(kr, legacy, strlen(legacy), NULL) != TP_OK)
        abort();
    memset(&jo, 0, sizeof(jo));
    jo.issuer = "https://issuer.fuzz";
    jo.audience = "turn";
    jo.leeway = 30;
    jo.require_exp = 1;
    jk = tp_jwt_keys_new(&jo, NULL);
    if (jk == NULL ||
        tp_jwt_keys_add(jk, "j1", TP_JWT_HS256, j1, strlen(j1), NULL) !=
            TP_OK ||
        tp_jwt_keys_add(jk, NULL, TP_JWT_HS256, jnokid, strlen(jnokid),
                        NULL) != TP_OK)
        abort();
    return 0;
}

static const uint8_t *in_data;
static size_t in_size;

/* The message is terminated and names no secret (unless the input itself
 * holds it: messages may quote what the caller passed). */
static void
check_error(const tp_error *err)
{
    static const char *const secrets[] = {k1, k0, kold, legacy, j1, jnokid};
    size_t i, n;

    if (memchr(err->message, '\0', sizeof(err->message)) == NULL)
        abort();
    for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        n = strlen(secrets[i]);
        /* A message is cut at TP_ERROR_MSG_MAX: look for a prefix long
         * enough to be a leak, not a coincidence. */
        if (n > 16)
            n = 16;
        if (memmem(err->message, strlen(err->message), secrets[i], n) !=
                NULL &&
            memmem(in_data, in_size, secrets[i], n) == NULL)
            abort();
    }
}

static int
all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static void
credential(const char *username, const char *password)
{
    char hexkey[TP_LTKEY_HEX_LEN + 1];
    tp_username un, parsed;
    tp_status sp, sk, sv;
    tp_error err;
    size_t i;

    memset(&err, 0x55, sizeof(err));
    sp = tp_username_parse(username, &un, &err);
    if (sp != TP_OK)
        check_error(&err);

    memset(&err, 0x55, sizeof(err));
    sk = tp_credential_key(kr, username, NOW, hexkey, &parsed, &err);
    if (sk == TP_OK) {
        if (sp != TP_OK || strlen(hexkey) != TP_LTKEY_HEX_LEN ||
            strcmp(parsed.user_id, un.user_id) != 0 ||
            parsed.expires != un.expires)
            abort();
        for (i = 0; i < TP_LTKEY_HEX_LEN; i++)
            if (!((hexkey[i] >= '0' && hexkey[i] <= '9') ||
                  (hexkey[i] >= 'a' && hexkey[i] <= 'f')))
                abort();
    } else {
        check_error(&err);
    }

    memset(&err, 0x55, sizeof(err));
    sv = tp_credential_verify(kr, username, password, NOW, &parsed, &err);
    if (sv == TP_OK && sk != TP_OK)
        abort();
    if (sv != TP_OK)
        check_error(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char username[TP_USERNAME_MAX * 2 + 2], password[128];
    const uint8_t *nl;
    size_t ulen, plen;
    tp_jwt_claims claims;
    tp_error err;
    tp_status st;

    in_data = data;
    in_size = size;
    /* The token: exactly the input bytes. */
    memset(&err, 0x55, sizeof(err));
    memset(&claims, 0x55, sizeof(claims));
    st = tp_jwt_verify(jk, (const char *)data, size, NOW, &claims, &err);
    if (st == TP_OK) {
        if (claims.alg != TP_JWT_HS256 || claims.sub[0] == '\0' ||
            memchr(claims.sub, '\0', sizeof(claims.sub)) == NULL ||
            memchr(claims.realm, '\0', sizeof(claims.realm)) == NULL ||
            memchr(claims.jti, '\0', sizeof(claims.jti)) == NULL ||
            memchr(claims.kid, '\0', sizeof(claims.kid)) == NULL)
            abort();
    } else {
        check_error(&err);
        if (!all_zero(&claims, sizeof(claims)))
            abort();
    }

    /* The username (and password) */
    nl = memchr(data, '\n', size);
    ulen = nl != NULL ? (size_t)(nl - data) : size;
    if (ulen >= sizeof(username))
        ulen = sizeof(username) - 1;
    memcpy(username, data, ulen);
    username[ulen] = '\0';
    password[0] = '\0';
    if (nl != NULL) {
        plen = size - (size_t)(nl - data) - 1;
        if (plen >= sizeof(password))
            plen = sizeof(password) - 1;
        memcpy(password, nl + 1, plen);
        password[plen] = '\0';
    }
    credential(username, password);
    return 0;
}
