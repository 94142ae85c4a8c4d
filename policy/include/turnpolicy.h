/*
 * turnpolicy.h - the one public header of libturnpolicy.
 *
 * libturnpolicy decides who may use an organization's relays: it issues and
 * verifies time-limited TURN credentials (TURN REST API compatible), checks
 * signaling upstream hosts and TURN peer addresses against allow-lists, and
 * verifies JSON Web Tokens.  The coturn plugin (turnpolicyd), the nginx
 * module and the `turnpolicy` CLI only ask this library; nothing else talks
 * to the policy's databases.
 *
 * Conventions (see STYLE.md):
 *   - Every fallible call returns a tp_status (TP_OK == 0) and, when the
 *     caller passes a non-NULL tp_error, fills it with a message meant for a
 *     human fixing the problem.  Messages never contain a secret, password,
 *     token or key.  Status codes are append-only: never renumbered.
 *   - Objects are opaque, created by tp_X_new() and released by tp_X_free();
 *     tp_X_free(NULL) is a no-op.  Functions that fill caller-owned structs
 *     allocate nothing.
 *   - Time is int64_t Unix seconds, always passed in by the caller (so tests
 *     and replays inject a clock); the library never reads the wall clock
 *     except in tp_now().
 *   - Thread safety: once built (no more *_add / *_set calls), tp_keyring,
 *     tp_hostlist, tp_peerset and tp_jwt_keys are immutable and may be
 *     shared by any number of threads for lookups.  Building one is not
 *     thread safe.  tp_config is read-only after tp_config_load.
 *   - The library never logs and never writes to stdout/stderr.
 *
 * The credential username grammar is documented in README.md ("Credential
 * format") and summarized at tp_username below.
 */
#ifndef TURNPOLICY_H
#define TURNPOLICY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TP_EXPORT __attribute__((visibility("default")))
#define TP_NODISCARD __attribute__((warn_unused_result))
#else
#define TP_EXPORT
#define TP_NODISCARD
#endif

/* The one place the version is written (the Makefile reads it here). */
#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 1
#define TP_VERSION_PATCH 0
#define TP_VERSION_STR_(a, b, c) #a "." #b "." #c
#define TP_VERSION_XSTR_(a, b, c) TP_VERSION_STR_(a, b, c)
#define TP_VERSION_STRING                                                  \
    TP_VERSION_XSTR_(TP_VERSION_MAJOR, TP_VERSION_MINOR, TP_VERSION_PATCH)

/* Returns the library's version string ("0.1.0"); static storage. */
TP_EXPORT const char *tp_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/*
 * X(NAME, value, reason-code, message).  Append only; never renumber.
 * The reason code is a stable lowercase token used in logs, metrics and
 * JSON error bodies.
 */
#define TP_STATUS_MAP(X)                                                    \
    X(TP_OK, 0, "ok", "success")                                            \
    X(TP_EINVAL, 1, "invalid_argument", "invalid argument")                 \
    X(TP_ENOMEM, 2, "out_of_memory", "out of memory")                       \
    X(TP_ETOOLONG, 3, "too_long", "value is too long")                      \
    X(TP_EBADCHAR, 4, "bad_character",                                      \
      "value contains a forbidden character")                               \
    X(TP_EMALFORMED, 5, "malformed_username",                               \
      "username does not follow the credential grammar")                    \
    X(TP_EEXPIRED, 6, "expired", "credential has expired")                  \
    X(TP_ENOTYETVALID, 7, "not_yet_valid",                                  \
      "credential was issued in the future")                                \
    X(TP_EUNKNOWNKID, 8, "unknown_kid", "credential signed by an unknown "  \
      "secret")                                                             \
    X(TP_ERETIRED, 9, "retired_kid", "credential signed by a retired "      \
      "secret")                                                             \
    X(TP_EBADPASSWORD, 10, "bad_password", "password does not match")       \
    X(TP_ENOSIGNING, 11, "no_signing_secret",                               \
      "realm has no signing secret")                                        \
    X(TP_ETTL, 12, "bad_ttl", "lifetime out of the allowed range")          \
    X(TP_EEXISTS, 13, "duplicate", "already exists")                        \
    X(TP_ENOSPACE, 14, "buffer_too_small", "output buffer too small")       \
    X(TP_EBADHOST, 15, "bad_host", "not a valid DNS host name")             \
    X(TP_EHOSTDENIED, 16, "host_denied", "host is not on the allow-list")   \
    X(TP_EBADADDR, 17, "bad_address", "not a valid IP address or CIDR")     \
    X(TP_EPEERDENIED, 18, "peer_denied", "peer address is denied")          \
    X(TP_EKEY, 19, "bad_key", "unusable key or secret")                     \
    X(TP_EJWTMALFORMED, 20, "token_malformed", "token is malformed")        \
    X(TP_EJWTALG, 21, "token_bad_alg",                                      \
      "token algorithm not allowed for its key")                            \
    X(TP_EJWTKID, 22, "token_unknown_kid", "token key id is unknown")       \
    X(TP_EJWTSIG, 23, "token_bad_signature", "token signature is invalid")  \
    X(TP_EJWTEXPIRED, 24, "token_expired", "token has expired")             \
    X(TP_EJWTNBF, 25, "token_not_yet_valid", "token is not valid yet")      \
    X(TP_EJWTISS, 26, "token_bad_issuer", "token issuer is not accepted")   \
    X(TP_EJWTAUD, 27, "token_bad_audience",                                 \
      "token audience is not accepted")                                     \
    X(TP_EJWTCLAIM, 28, "token_bad_claim",                                  \
      "token lacks a required claim or has one of the wrong type")          \
    X(TP_ECONFIG, 29, "config_error", "configuration error")                \
    X(TP_EIO, 30, "io_error", "cannot read file")                           \
    X(TP_EPERM, 31, "insecure_permissions",                                 \
      "secret file is readable by group or others")                         \
    X(TP_ECRYPTO, 32, "crypto_error", "cryptographic library failure")      \
    X(TP_ENOTFOUND, 33, "not_found", "no such item")                        \
    X(TP_EDB, 34, "database_error", "database error")                       \
    X(TP_EMIGRATION, 35, "migration_error",                                 \
      "schema migrations are inconsistent")                                 \
    X(TP_EUNKNOWNREALM, 36, "unknown_realm", "no such realm")               \
    X(TP_EUNKNOWNUSER, 37, "unknown_user", "no such user in the realm")     \
    X(TP_EDISABLED, 38, "user_disabled", "user is disabled")                \
    X(TP_EREVOKED, 39, "revoked", "credential or user has been revoked")    \
    X(TP_EREALMKILLED, 40, "realm_killed",                                  \
      "realm is switched off (kill switch)")                                \
    X(TP_ESTALE, 41, "policy_stale",                                        \
      "policy snapshot is older than the staleness bound")                  \
    X(TP_EREDIS, 42, "redis_error", "Redis is unavailable or failed")       \
    X(TP_EQUOTA, 43, "quota_reached", "allocation quota reached")           \
    X(TP_ERATELIMIT, 44, "rate_limited", "too many requests; slow down")   \
    X(TP_ECLIENTADDR, 45, "client_address_denied",                          \
      "client address is outside the user's binding")                       \
    X(TP_EBUSY, 46, "queue_full", "queue is full; try again later")         \
    X(TP_EORIGIN, 47, "origin_denied",                                      \
      "web origin is not allowed for this realm")                           \
    X(TP_EBUDGET, 48, "budget_exhausted",                                   \
      "user's byte budget for the period is used up")                       \
    X(TP_EJWTLIFETIME, 49, "token_lifetime_exceeded",                       \
      "token lifetime exceeds the allowed maximum")                         \
    X(TP_EBADURL, 50, "bad_turn_url",                                       \
      "not a TURN/STUN URL browsers accept")                                \
    X(TP_ENATIVE, 51, "native_unsupported",                                 \
      "no TURN URL of the realm fits the ACS native SDKs")

typedef enum tp_status {
#define TP_STATUS_ENUM_(name, val, code, msg) name = val,
    TP_STATUS_MAP(TP_STATUS_ENUM_)
#undef TP_STATUS_ENUM_
    TP_STATUS_COUNT_ /* not a status; one past the last */
} tp_status;

/* Human message for a status ("credential has expired"); static storage.
 * Unknown values give "unknown status". */
TP_EXPORT const char *tp_strerror(tp_status st);

/* Stable reason code for a status ("expired"); static storage. */
TP_EXPORT const char *tp_reason(tp_status st);

#define TP_ERROR_MSG_MAX 256

/* Caller-owned error report for one call.  Never shared between calls in
 * flight; never contains secrets. */
typedef struct tp_error {
    tp_status status;
    char message[TP_ERROR_MSG_MAX];
} tp_error;

/* ------------------------------------------------------------------ */
/* Limits and identifiers                                              */
/* ------------------------------------------------------------------ */

#define TP_REALM_MAX 127    /* bytes, without the NUL */
#define TP_USER_ID_MAX 128
#define TP_KID_MAX 32
#define TP_USERNAME_MAX 255 /* whole TURN username */
#define TP_PASSWORD_LEN 28  /* base64 of a 20-byte HMAC-SHA1 */
#define TP_LTKEY_HEX_LEN 32 /* hex MD5 */
#define TP_SECRET_MIN 16    /* bytes, for signing / verify-only secrets */
#define TP_SECRET_MAX 1024
#define TP_TTL_MAX 604800   /* 7 days: the hard ceiling of any realm */

/*
 * Validate identifiers.  A user id is 1..TP_USER_ID_MAX printable ASCII
 * characters (0x21-0x7e) other than  : % / \ " ' < > ` ;  a realm is
 * 1..TP_REALM_MAX of [A-Za-z0-9._-];  a kid is 1..TP_KID_MAX of
 * [A-Za-z0-9._-] and must not be all digits.  Returns TP_OK, TP_EINVAL
 * (empty or NULL), TP_ETOOLONG or TP_EBADCHAR.
 */
TP_EXPORT tp_status tp_user_id_check(const char *user_id, tp_error *err);
TP_EXPORT tp_status tp_realm_check(const char *realm, tp_error *err);
TP_EXPORT tp_status tp_kid_check(const char *kid, tp_error *err);

/* Current wall-clock time in Unix seconds. */
TP_EXPORT int64_t tp_now(void);

/* ------------------------------------------------------------------ */
/* Credentials                                                         */
/* ------------------------------------------------------------------ */

/*
 * Username grammar (version 1):
 *
 *   v1:     <expiry>:<user_id>:<kid>:<iat>
 *   legacy: <expiry>:<user_id>
 *
 * expiry and iat are decimal Unix seconds (1..10 digits... up to 19, no
 * sign, no leading zeros except "0" itself).  The number of fields is the
 * version: two fields are the legacy TURN REST form verified with the
 * realm's imported legacy secret, four fields are v1.  Later versions only
 * append fields.  password = base64(HMAC-SHA1(secret(kid), username)).
 */
typedef enum tp_username_form {
    TP_FORM_LEGACY = 0,
    TP_FORM_V1 = 1
} tp_username_form;

typedef struct tp_username {
    tp_username_form form;
    int64_t expires;                 /* Unix seconds */
    int64_t issued;                  /* Unix seconds; 0 for legacy */
    char user_id[TP_USER_ID_MAX + 1];
    char kid[TP_KID_MAX + 1];        /* "" for legacy */
} tp_username;

/* Parse a username per the grammar above.  Checks syntax only (no clock,
 * no secrets).  Returns TP_OK, TP_EINVAL, TP_ETOOLONG, TP_EBADCHAR or
 * TP_EMALFORMED. */
TP_EXPORT tp_status tp_username_parse(const char *username, tp_username *out,
                                      tp_error *err);

typedef enum tp_secret_state {
    TP_SECRET_SIGNING = 0,     /* issues and verifies; at most one */
    TP_SECRET_VERIFY_ONLY = 1, /* verifies credentials it signed earlier */
    TP_SECRET_RETIRED = 2      /* verifies nothing; known so refusals can
                                  say "retired" instead of "unknown" */
} tp_secret_state;

/* "signing" | "verify-only" | "retired"  <->  state.  Parsing returns
 * TP_EINVAL for anything else. */
TP_EXPORT const char *tp_secret_state_name(tp_secret_state st);
TP_EXPORT tp_status tp_secret_state_parse(const char *s, tp_secret_state *out);

/*
 * tp_keyring: the credential secrets and lifetime settings of one realm.
 * Secrets are copied in, kept as precomputed HMAC pads, wiped on free and
 * never returned.
 */
typedef struct tp_keyring tp_keyring;

typedef struct tp_keyring_options {
    uint32_t default_ttl; /* seconds; 0 = min(3600, max_ttl) */
    uint32_t max_ttl;     /* seconds; 0 = 86400; <= TP_TTL_MAX */
    uint32_t clock_skew;  /* seconds an iat may lie in the future; 0 = 60 */
} tp_keyring_options;

/* opts may be NULL for defaults.  Returns NULL on error (err filled). */
TP_EXPORT tp_keyring *tp_keyring_new(const char *realm,
                                     const tp_keyring_options *opts,
                                     tp_error *err);
TP_EXPORT void tp_keyring_free(tp_keyring *kr);
TP_EXPORT const char *tp_keyring_realm(const tp_keyring *kr);

/* Add a secret (copied) under kid.  Signing and verify-only secrets must be
 * at least TP_SECRET_MIN bytes.  A second signing secret is TP_EEXISTS, as
 * is a duplicate kid. */
TP_EXPORT tp_status tp_keyring_add(tp_keyring *kr, const char *kid,
                                   const void *secret, size_t len,
                                   tp_secret_state state, tp_error *err);

/* Set the legacy secret that verifies "<expiry>:<user_id>" usernames (the
 * static-auth-secret of an existing deployment; 1..TP_SECRET_MAX bytes).
 * Without one, legacy usernames are refused with TP_EUNKNOWNKID. */
TP_EXPORT tp_status tp_keyring_set_legacy(tp_keyring *kr, const void *secret,
                                          size_t len, tp_error *err);

typedef struct tp_credential {
    char username[TP_USERNAME_MAX + 1];
    char password[TP_PASSWORD_LEN + 1];
    uint32_t ttl;    /* seconds */
    int64_t issued;  /* Unix seconds */
    int64_t expires; /* Unix seconds */
} tp_credential;

/* Issue a v1 credential for user_id valid for ttl seconds (0 = the realm
 * default) from now.  Allocates nothing.  Returns TP_OK, TP_EINVAL,
 * TP_ETOOLONG, TP_EBADCHAR, TP_ETTL or TP_ENOSIGNING. */
TP_EXPORT tp_status tp_credential_issue(const tp_keyring *kr,
                                        const char *user_id, uint32_t ttl,
                                        int64_t now, tp_credential *out,
                                        tp_error *err);

/* Verify a username/password pair at time now.  On TP_OK, *parsed (if not
 * NULL) holds the parsed username.  Checks, in order: grammar, kid known
 * and not retired, password (constant time), not issued in the future
 * beyond the clock skew, lifetime within the realm maximum, not expired. */
TP_EXPORT TP_NODISCARD tp_status tp_credential_verify(
    const tp_keyring *kr, const char *username, const char *password,
    int64_t now, tp_username *parsed, tp_error *err);

/* The coturn long-term key of a username whose password the keyring can
 * derive: hex(MD5(username ":" realm ":" password)), NUL-terminated in
 * hexkey.  Applies the same checks as tp_credential_verify except the
 * password comparison (coturn checks MESSAGE-INTEGRITY with the key).
 * Allocates nothing. */
TP_EXPORT TP_NODISCARD tp_status tp_credential_key(
    const tp_keyring *kr, const char *username, int64_t now,
    char hexkey[TP_LTKEY_HEX_LEN + 1], tp_username *parsed, tp_error *err);

/* hex(MD5(username ":" realm ":" password)): the long-term key of RFC 5389
 * section 15.4 as coturn stores it.  Pure function, no policy. */
TP_EXPORT tp_status tp_longterm_key(const char *username, const char *realm,
                                    const char *password,
                                    char hexkey[TP_LTKEY_HEX_LEN + 1],
                                    tp_error *err);

typedef enum tp_cred_json {
    TP_JSON_ICE = 0, /* {"iceServers":[{"urls":[..],"username":..,
                        "credential":..}],"ttl":N,"expiresOn":"RFC3339"} */
    TP_JSON_REST = 1, /* TURN REST draft: {"username":..,"password":..,
                         "ttl":N,"uris":[..]} */
    TP_JSON_ACS_NATIVE = 2 /* ACS native SDKs: {"iceServers":[{"urls":
                              ["turn:<IPv4>"],"udpPort":N,"realm":..,
                              "username":..,"password":..}],"ttl":N,
                              "expiresOn":..}; needs the realm (below) */
} tp_cred_json;

/* Render cred as JSON into buf (NUL-terminated).  urls is an array of
 * nurls TURN URIs.  *written (if not NULL) receives the length without
 * the NUL.  Returns TP_ENOSPACE if buf is too small; TP_EINVAL for
 * TP_JSON_ACS_NATIVE, which needs the realm (tp_credential_json_realm). */
TP_EXPORT tp_status tp_credential_json(const tp_credential *cred,
                                       const char *const *urls, size_t nurls,
                                       tp_cred_json shape, char *buf,
                                       size_t cap, size_t *written,
                                       tp_error *err);

/* tp_credential_json with the realm the credential belongs to, which
 * TP_JSON_ACS_NATIVE puts in its "realm" and needs: its one URL and
 * udpPort are tp_native_turn()'s choice, TP_ENATIVE when none fits.  The
 * other shapes ignore realm (may be NULL). */
TP_EXPORT tp_status tp_credential_json_realm(const tp_credential *cred,
                                             const char *realm,
                                             const char *const *urls,
                                             size_t nurls, tp_cred_json shape,
                                             char *buf, size_t cap,
                                             size_t *written, tp_error *err);

/* The shape named "ice", "rest" or "acs-native" (the CLI's --format, the
 * credentials endpoint's ?format=): TP_OK and *shape, or TP_EINVAL. */
TP_EXPORT tp_status tp_cred_json_parse(const char *name, tp_cred_json *shape,
                                       tp_error *err);

/* ------------------------------------------------------------------ */
/* TURN/STUN URLs (what a realm hands out)                             */
/* ------------------------------------------------------------------ */

#define TP_TURN_URL_MAX 255 /* bytes of one URL */

typedef enum tp_url_scheme {
    TP_URL_TURN = 1, TP_URL_TURNS = 2, TP_URL_STUN = 3
} tp_url_scheme;
typedef enum tp_url_host {
    TP_URL_NAME = 1, TP_URL_IPV4 = 2, TP_URL_IPV6 = 3
} tp_url_host;
typedef enum tp_url_transport {
    TP_URL_NONE = 0, TP_URL_UDP = 1, TP_URL_TCP = 2, TP_URL_TLS = 3
} tp_url_transport;

typedef struct tp_turn_url {
    tp_url_scheme scheme;
    tp_url_host host_kind;
    tp_url_transport transport;  /* TP_URL_NONE: no ?transport= */
    unsigned port;               /* 0: none given */
    char host[TP_TURN_URL_MAX + 1]; /* as written (IPv6 with brackets) */
} tp_turn_url;

/* Check url against the rules browsers apply to RTCIceServer.urls:
 * "turn:" / "turns:" / "stun:" HOST [":" PORT] ["?transport=" udp|tcp|tls]
 * (no query on stun:), HOST an IPv4 address, a bracketed IPv6 address or
 * an LDH DNS name.  TP_OK and *out (if not NULL), TP_EBADURL (the message
 * says what is wrong), TP_EINVAL (NULL).  Pure, thread-safe. */
TP_EXPORT TP_NODISCARD tp_status tp_turn_url_parse(const char *url,
                                                   tp_turn_url *out,
                                                   tp_error *err);

/* The URL the ACS native SDKs (Android, iOS, Windows) can use: the first
 * of urls that passes the web rules with scheme turn:, an IPv4 host and
 * UDP (no transport or transport=udp); *out->port is its port or 3478.
 * TP_ENATIVE when none fits (hostnames, TCP/TLS only, IPv6 only, no URL)
 * or realm is empty: the message says which.  Pure, thread-safe. */
TP_EXPORT TP_NODISCARD tp_status tp_native_turn(const char *realm,
                                                const char *const *urls,
                                                size_t nurls,
                                                tp_turn_url *out,
                                                tp_error *err);

/* ------------------------------------------------------------------ */
/* Host allow-lists (signaling upstreams)                              */
/* ------------------------------------------------------------------ */

/*
 * Rules: "name.example.com" (exact) or "*.example.com" (any name with at
 * least one more label), optionally followed by ":port" or ":*" and by a
 * path prefix "/p/q".  Without a port a rule matches port 443 (or no
 * port given).  Names are case-insensitive, a trailing dot is ignored,
 * and must be ASCII LDH DNS names (IDNs in their xn-- form); IP literals
 * are not host names.  Nothing matches an empty list: default deny.
 */
typedef struct tp_hostlist tp_hostlist;

TP_EXPORT tp_hostlist *tp_hostlist_new(tp_error *err);
TP_EXPORT void tp_hostlist_free(tp_hostlist *hl);
/* Returns TP_OK, TP_EBADHOST, TP_EINVAL (bad port or path), TP_EEXISTS or
 * TP_ENOMEM. */
TP_EXPORT tp_status tp_hostlist_add(tp_hostlist *hl, const char *rule,
                                    tp_error *err);
TP_EXPORT size_t tp_hostlist_count(const tp_hostlist *hl);

typedef struct tp_host_match {
    int rule_index;     /* index of the matching rule, -1 if none */
    const char *rule;   /* its text as added (owned by hl), NULL if none */
} tp_host_match;

/*
 * The one rule for a raw (undecoded) request path that may be passed on
 * to an upstream or compared with a path prefix: 1 if none of its len
 * bytes is a control byte, space, DEL or '\\', it has no encoded '/',
 * '\\', '.' or NUL (%2f %5c %2e %00, either case) and no segment is "."
 * or ".." - so what an upstream decodes or normalizes stays under the
 * prefix that was checked.  "//" and "a..b" are fine.  Used by host rules
 * and the nginx module alike.  Pure; no allocation.
 */
TP_EXPORT int tp_path_safe(const char *p, size_t len);

/* Check host (no port), port (0 = none given) and path (may be NULL: the
 * path is then not checked against path-prefix rules, which then do not
 * match; a path that does not start with '/' or is not tp_path_safe
 * never matches them either).  The first matching rule wins.  Returns
 * TP_OK (allowed), TP_EHOSTDENIED, TP_EBADHOST, or TP_EINVAL (hl NULL,
 * port > 65535).  Allocates nothing. */
TP_EXPORT TP_NODISCARD tp_status tp_hostlist_check(const tp_hostlist *hl,
                                                   const char *host,
                                                   unsigned port,
                                                   const char *path,
                                                   tp_host_match *match,
                                                   tp_error *err);

/* Normalize a host name into out (lowercase, no trailing dot) and check it
 * is a valid DNS name.  Returns TP_OK, TP_EBADHOST or TP_ENOSPACE. */
TP_EXPORT tp_status tp_host_normalize(const char *host, char *out,
                                      size_t cap, tp_error *err);

/* ------------------------------------------------------------------ */
/* Peer address sets (TURN relay targets)                              */
/* ------------------------------------------------------------------ */

typedef struct tp_addr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network order; IPv4 in the first 4 bytes */
} tp_addr;

/* Parse an IPv4 dotted quad or an IPv6 address (IPv6 may be in brackets),
 * as inet_pton does; zone ids ("%eth0") are refused.  Returns TP_OK,
 * TP_EBADADDR, or TP_EINVAL if out is NULL. */
TP_EXPORT tp_status tp_addr_parse(const char *s, tp_addr *out, tp_error *err);

typedef enum tp_peer_action {
    TP_PEER_ALLOW = 0,
    TP_PEER_DENY = 1
} tp_peer_action;

/*
 * tp_peerset: a realm's peer rules on top of the built-in default deny
 * (loopback, 0/8, RFC 1918, link-local, CGNAT, multicast, broadcast,
 * reserved, ::, ::1, fc00::/7, fe80::/10, ff00::/8, and their
 * IPv4-mapped, NAT64 64:ff9b::/96 and 6to4 2002::/16 forms).
 *
 * Decision for an address (IPv4-mapped IPv6 is canonicalized to IPv4; an
 * address embedding IPv4 - compatible, NAT64, 6to4 - is checked as itself
 * and as the embedded IPv4):
 *   1. a realm deny rule matches       -> denied
 *   2. the built-in default deny matches and no realm allow rule matches
 *      that same form                  -> denied
 *   3. the set's default action (allow unless set to deny) applies when
 *      no realm allow rule matched     -> allowed / denied
 */
typedef struct tp_peerset tp_peerset;

TP_EXPORT tp_peerset *tp_peerset_new(tp_error *err);
TP_EXPORT void tp_peerset_free(tp_peerset *ps);
/* cidr: "a.b.c.d[/n]" or "ipv6[/n]"; host bits must be zero; an
 * IPv4-mapped ::ffff:a.b.c.d/96+n is stored as a.b.c.d/n.  Returns TP_OK,
 * TP_EBADADDR, TP_EEXISTS (same prefix already added, either action),
 * TP_EINVAL or TP_ENOMEM. */
TP_EXPORT tp_status tp_peerset_add(tp_peerset *ps, const char *cidr,
                                   tp_peer_action action, tp_error *err);
/* Action for addresses no rule names (default TP_PEER_ALLOW). */
TP_EXPORT void tp_peerset_set_default(tp_peerset *ps, tp_peer_action action);

typedef struct tp_peer_decision {
    tp_peer_action action;
    int builtin;      /* 1 if decided by the built-in default deny */
    char rule[64];    /* the CIDR that decided ("" for the default) */
} tp_peer_decision;

/* Returns TP_OK (allowed), TP_EPEERDENIED, TP_EBADADDR, or TP_EINVAL (ps
 * NULL).  dec and err may be NULL.  Allocates nothing. */
TP_EXPORT TP_NODISCARD tp_status tp_peerset_check(const tp_peerset *ps,
                                                  const tp_addr *addr,
                                                  tp_peer_decision *dec,
                                                  tp_error *err);
TP_EXPORT TP_NODISCARD tp_status tp_peerset_check_str(const tp_peerset *ps,
                                                      const char *addr,
                                                      tp_peer_decision *dec,
                                                      tp_error *err);

/* Emit the set as coturn 4.6.1 range strings ("a-b" or a single address),
 * one callback call per range: allowed ranges (which == TP_PEER_ALLOW) or
 * denied ranges including the built-in default deny (TP_PEER_DENY).  IPv6
 * ranges fall on prefix boundaries.  coturn checks allowed ranges first,
 * so ALLOW lists only what a realm allow rule allows (minus realm denies)
 * and DENY what this set denies; see peer.c.  Stops and returns the
 * callback's status if it returns non-TP_OK. */
typedef tp_status (*tp_range_fn)(void *ud, const char *range);
TP_EXPORT tp_status tp_peerset_export_coturn(const tp_peerset *ps,
                                             tp_peer_action which,
                                             tp_range_fn fn, void *ud,
                                             tp_error *err);

/* ------------------------------------------------------------------ */
/* JSON Web Tokens                                                     */
/* ------------------------------------------------------------------ */

typedef enum tp_jwt_alg {
    TP_JWT_HS256 = 1,
    TP_JWT_HS384 = 2,
    TP_JWT_HS512 = 3,
    TP_JWT_RS256 = 4,
    TP_JWT_ES256 = 5
} tp_jwt_alg;

/* "HS256" ... <-> alg; parse returns TP_EJWTALG for anything else
 * (including "none"). */
TP_EXPORT const char *tp_jwt_alg_name(tp_jwt_alg alg);
TP_EXPORT tp_status tp_jwt_alg_parse(const char *s, tp_jwt_alg *out);

#define TP_JWT_MAX 8192      /* longest token accepted, bytes */
#define TP_JWT_SUB_MAX 255
#define TP_JWT_CLAIM_MAX 255

/*
 * tp_jwt_keys: verification (and issuing) keys by kid, each pinned to one
 * algorithm, plus the claim checks.  PEM keys are parsed once, here.
 */
typedef struct tp_jwt_keys tp_jwt_keys;

typedef struct tp_jwt_options {
    const char *issuer;      /* required "iss" value, NULL = not checked */
    const char *audience;    /* must appear in "aud", NULL = not checked */
    const char *realm_claim; /* claim naming the realm; NULL = "realm" */
    uint32_t leeway;         /* seconds of clock tolerance for exp/nbf/iat */
    int require_exp;         /* 1 (default when options are NULL) */
    uint32_t max_lifetime;   /* longest exp - iat (without iat: exp - now)
                                accepted, seconds; 0 = 86400 */
} tp_jwt_options;

#define TP_JWT_LIFETIME_DEFAULT 86400   /* 24 h, the ACS tokens' own */
#define TP_JWT_LIFETIME_MAX 2592000     /* 30 days */

/* opts may be NULL for defaults.  An empty issuer, audience or
 * realm_claim (use NULL instead), a leeway above TP_TTL_MAX and a
 * max_lifetime above TP_JWT_LIFETIME_MAX are refused with TP_EINVAL.
 * Returns NULL on error (err filled). */
TP_EXPORT tp_jwt_keys *tp_jwt_keys_new(const tp_jwt_options *opts,
                                       tp_error *err);
TP_EXPORT void tp_jwt_keys_free(tp_jwt_keys *jk);

/* Add a key.  For HS* key is the secret (>= 32 bytes); for RS256/ES256 it
 * is a PEM public key (or private key, which also allows issuing).  A PEM
 * public key given for an HS* algorithm is refused (TP_EKEY): that is the
 * confusion attack.  kid may be NULL or "" for a token without "kid"; that
 * key is then used only for tokens that carry no kid. */
TP_EXPORT tp_status tp_jwt_keys_add(tp_jwt_keys *jk, const char *kid,
                                    tp_jwt_alg alg, const void *key,
                                    size_t len, tp_error *err);

typedef struct tp_jwt_claims {
    char sub[TP_JWT_SUB_MAX + 1];
    char realm[TP_JWT_CLAIM_MAX + 1]; /* "" if the token has none */
    char kid[TP_KID_MAX + 1];
    char jti[TP_JWT_CLAIM_MAX + 1];   /* "" if none */
    tp_jwt_alg alg;
    int64_t exp;                      /* 0 if absent */
    int64_t nbf;                      /* 0 if absent */
    int64_t iat;                      /* 0 if absent */
} tp_jwt_claims;

/* Verify token (len bytes, need not be NUL-terminated) at time now.
 * Returns TP_OK and fills claims, or one of TP_ETOOLONG,
 * TP_EJWTMALFORMED, TP_EJWTALG, TP_EJWTKID, TP_EJWTSIG, TP_EJWTEXPIRED,
 * TP_EJWTNBF, TP_EJWTLIFETIME (exp - iat above max_lifetime, or without
 * iat exp further than max_lifetime + leeway from now; times beyond the
 * 64-bit range count as the end of it), TP_EJWTISS, TP_EJWTAUD,
 * TP_EJWTCLAIM (or TP_EINVAL, TP_ENOMEM, TP_ECRYPTO).  claims may be
 * NULL; on failure it is zeroed. */
TP_EXPORT TP_NODISCARD tp_status tp_jwt_verify(const tp_jwt_keys *jk,
                                               const char *token, size_t len,
                                               int64_t now,
                                               tp_jwt_claims *claims,
                                               tp_error *err);

/* How long a verification of claims stays good on time grounds: the
 * first instant at which tp_jwt_verify with opts (NULL: the defaults)
 * refuses them as expired (TP_EJWTEXPIRED), exp + leeway, INT64_MAX when
 * that overflows; 0 when claims->exp is 0 or negative (no deadline to
 * trust a verification by).  For callers that keep a verification, such as
 * nginx's verified-token cache: it may answer while now < the deadline. */
TP_EXPORT int64_t tp_jwt_deadline(const tp_jwt_options *opts,
                                  const tp_jwt_claims *claims);

typedef struct tp_jwt_issue_params {
    const char *kid;       /* key to sign with (NULL/"" = the kid-less key) */
    const char *sub;       /* required */
    const char *realm;     /* written under the realm claim if not NULL */
    const char *issuer;    /* NULL = the keys' issuer option, if any */
    const char *audience;  /* NULL = the keys' audience option, if any */
    int64_t now;
    uint32_t ttl;          /* seconds until exp; 0 = 300 */
} tp_jwt_issue_params;

/* Issue a signed token (via libjwt).  *token receives a malloc'd
 * NUL-terminated string the caller frees with tp_free().  RS256/ES256 need
 * a private key for the kid (TP_EKEY otherwise); an unknown kid is
 * TP_EJWTKID; ttl above TP_TTL_MAX or the keys' max_lifetime is TP_ETTL
 * (the verifier would refuse the token). */
TP_EXPORT tp_status tp_jwt_issue(const tp_jwt_keys *jk,
                                 const tp_jwt_issue_params *p, char **token,
                                 tp_error *err);

/* Free memory the library handed over (tp_jwt_issue tokens, ...). */
TP_EXPORT void tp_free(void *p);

/* ------------------------------------------------------------------ */
/* Configuration file                                                  */
/* ------------------------------------------------------------------ */

/*
 * One format shared by the CLI, turnpolicyd and the nginx module:
 *
 *   # comment
 *   key = value
 *   [realm example.org]
 *   key = value
 *
 * Keys are [a-z0-9_.-]; values run to the end of the line, surrounding
 * whitespace trimmed; a value may be "double quoted" to keep spaces.  A
 * duplicate key in one section is an error.  Entries before any section
 * header belong to section "" (global).
 */
typedef struct tp_config tp_config;

TP_EXPORT tp_status tp_config_load(const char *path, tp_config **out,
                                   tp_error *err);
/* Parse from memory; name is used in messages ("file:line"). */
TP_EXPORT tp_status tp_config_parse(const char *text, size_t len,
                                    const char *name, tp_config **out,
                                    tp_error *err);
TP_EXPORT void tp_config_free(tp_config *cfg);

/* Value of key in section ("" = global), or NULL.  Owned by cfg. */
TP_EXPORT const char *tp_config_get(const tp_config *cfg, const char *section,
                                    const char *key);
/* Integer value in [min, max]; absent -> *out = dflt.  TP_ECONFIG if not
 * an integer in range. */
TP_EXPORT tp_status tp_config_get_int(const tp_config *cfg,
                                      const char *section, const char *key,
                                      int64_t min, int64_t max, int64_t dflt,
                                      int64_t *out, tp_error *err);
/* Iterate sections: index 0..count-1; returns NULL past the end. */
TP_EXPORT const char *tp_config_section(const tp_config *cfg, size_t index);
/* Iterate the entries of a section; NULL past the end. */
TP_EXPORT const char *tp_config_key_at(const tp_config *cfg,
                                       const char *section, size_t index,
                                       const char **value);

/* Read a secret from a file: a regular file with no permissions for
 * others and not writable by its group (mode & 0027 == 0; TP_EPERM
 * otherwise), at most cap bytes (TP_ETOOLONG), one trailing newline
 * removed.  The caller wipes buf after use. */
TP_EXPORT tp_status tp_secret_file_read(const char *path, void *buf,
                                        size_t cap, size_t *len,
                                        tp_error *err);

/* Build a realm's keyring from a config section "[realm NAME]":
 *   default_ttl, max_ttl, clock_skew     integers (seconds)
 *   secret.<kid> = <state> <path>         state: signing|verify-only|retired
 *   legacy_secret = <path>
 */
TP_EXPORT tp_keyring *tp_keyring_from_config(const tp_config *cfg,
                                             const char *realm,
                                             tp_error *err);

/* Build a realm's peer set from its section:
 *   peer_allow = CIDR [CIDR ...]
 *   peer_deny  = CIDR [CIDR ...]
 *   peer_default = allow | deny
 */
TP_EXPORT tp_peerset *tp_peerset_from_config(const tp_config *cfg,
                                             const char *realm,
                                             tp_error *err);

/* Build a realm's upstream host allow-list: hosts = RULE [RULE ...] */
TP_EXPORT tp_hostlist *tp_hostlist_from_config(const tp_config *cfg,
                                               const char *realm,
                                               tp_error *err);

/* The claim checks of the global section, the one mapping every consumer
 * (CLI, nginx module) uses:
 *   jwt_issuer, jwt_audience, jwt_realm_claim   strings (none: unchecked)
 *   jwt_leeway        0..3600 s, default 30
 *   jwt_max_lifetime  60..TP_JWT_LIFETIME_MAX s, default
 *                     TP_JWT_LIFETIME_DEFAULT (24 h)
 * require_exp is 1.  The strings point into cfg (valid while it lives).
 * Returns TP_OK or TP_ECONFIG (err names the key). */
TP_EXPORT tp_status tp_jwt_options_from_config(const tp_config *cfg,
                                               tp_jwt_options *out,
                                               tp_error *err);

/* Build JWT keys from the global section: the options above, and
 *   jwt_key.<kid> = <ALG> <path>    (kid "-" = the kid-less key)
 */
TP_EXPORT tp_jwt_keys *tp_jwt_keys_from_config(const tp_config *cfg,
                                               tp_error *err);

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum tp_log_level {
    TP_LOG_ERROR = 0,
    TP_LOG_WARN = 1,
    TP_LOG_INFO = 2,
    TP_LOG_DEBUG = 3
} tp_log_level;

/* Where the library's few long-running operations report progress; the
 * host routes it (coturn's log, nginx's error log, the CLI's stderr).
 * msg is NUL-terminated, valid only during the call, never contains a
 * secret.  NULL means "do not log". */
typedef void (*tp_log_fn)(void *ud, tp_log_level level, const char *msg);

/* ------------------------------------------------------------------ */
/* Database schema                                                     */
/* ------------------------------------------------------------------ */

/*
 * Apply the forward-only migrations in schema_dir (files NNN_name.sql,
 * NNN a positive decimal version) to the PostgreSQL database conninfo
 * (a libpq connection string or URI; put the password in a passfile, not
 * here).  Each file runs in its own transaction together with the row
 * that records it in turnpolicy.schema_migrations (version, name, sha256),
 * under an advisory lock so concurrent runs serialize.  Safe to re-run:
 * applied files are skipped.  Refused with TP_EMIGRATION, before anything
 * is applied, when: two files share a version, a file name is malformed,
 * an applied file's content changed (sha256 differs), the database
 * records a version no file has (it is newer than this tool), or the
 * applied versions are not a prefix of the files (a half-applied set).
 * TP_EDB for connection or SQL errors (the server's message and the file
 * are in err).  *applied (if not NULL) receives the number of files
 * applied.  Blocking; for tools, not for request paths.
 */
TP_EXPORT tp_status tp_db_migrate(const char *conninfo,
                                  const char *schema_dir, tp_log_fn log,
                                  void *ud, int *applied, tp_error *err);

/* The migration files in schema_dir, checked as tp_db_migrate checks
 * them but without a database: TP_OK and *count, or TP_EMIGRATION /
 * TP_EIO. */
TP_EXPORT tp_status tp_db_migrations_check(const char *schema_dir,
                                           int *count, tp_error *err);

/* ------------------------------------------------------------------ */
/* Policy store: PostgreSQL snapshot kept current in the background   */
/* ------------------------------------------------------------------ */

/*
 * tp_store loads a snapshot of the policy (realms, secrets, users,
 * revocations, host and peer rules) from PostgreSQL, keeps it current
 * from LISTEN/NOTIFY on channel "turnpolicy" plus a periodic reload, and
 * answers decisions from memory.  A background thread owns the database
 * connection; decisions never do I/O and never block on it: they pin the
 * current snapshot lock-free (an atomic reader count; the old snapshot is
 * freed after a grace period), so readers never wait for each other or
 * for a reload.  All tp_store_* decision calls are safe from any number
 * of threads.
 *
 * Failure: while PostgreSQL is unreachable, decisions use the last
 * snapshot for max_staleness seconds after the last moment the store knew
 * it was current, then fail closed with TP_ESTALE; the thread reconnects
 * with exponential backoff (100 ms .. 5 s) and reloads.  Each failure is
 * logged once, and the recovery once.
 */
typedef struct tp_store tp_store;

typedef enum tp_fail_mode {
    TP_FAIL_CLOSED = 0, /* counters refuse (TP_EREDIS) when Redis is down */
    TP_FAIL_OPEN = 1    /* counters allow when Redis is down */
} tp_fail_mode;

/*
 * Redis (optional) carries what must be shared between nodes: revocations
 * fan out on channel "turnpolicy:changes" (nodes that LISTEN publish the
 * revocations, disables and kill switches they see in each new snapshot;
 * every node applies what it receives at once, so a node reading a
 * replica refuses a revoked user before its replica catches up), live
 * allocation counters per user, and issuance rate counters.  Every key
 * has a TTL.  Redis down: revocations still come from PostgreSQL; the
 * counters follow redis_fail_mode.
 */
typedef struct tp_store_options {
    const char *database;      /* libpq connection string; required */
    uint32_t max_staleness;    /* seconds; 0 = 30 */
    uint32_t reload_interval;  /* a full reload as a check (changes are
                                  applied from the change log as they
                                  come); 0 = 600 */
    int no_listen;             /* 1: do not LISTEN (a hot-standby replica,
                                  which NOTIFY does not reach) */
    const char *redis_host;    /* NULL = no Redis */
    int redis_port;            /* 0 = 6379 */
    const char *redis_password; /* NULL = no AUTH; copied, never logged */
    tp_fail_mode redis_fail_mode;
    uint32_t issue_per_minute; /* credentials per user per minute that
                                  tp_store_issue allows; 0 = no limit */
    uint32_t usage_queue_max;  /* usage records kept while PostgreSQL is
                                  away; 0 = 100000 */
    const tp_jwt_options *jwt; /* claim checks for tp_store_jwt_verify
                                  (copied); NULL = defaults */
    tp_log_fn log;             /* may be NULL */
    void *log_ud;
    int background_start;      /* 1: tp_store_new does no I/O; the thread
                                  connects and loads the first snapshot
                                  (retrying), and decisions fail closed
                                  with TP_ESTALE until it has (for event
                                  loops that must not block) */
    const char *share_dir;     /* NULL = this store holds every user
                                  itself.  Else a directory the stores of
                                  one node share (nginx workers; tmpfs,
                                  writable by each, used by nobody else):
                                  users and revocations are read once per
                                  node into a read-only file there, mapped
                                  by every store, which holds privately
                                  only what changed since */
} tp_store_options;

/*
 * What tp_store_options_from_config points an options struct at that the
 * configuration does not hold as it is: the Redis host (split from
 * HOST:PORT), the Redis password (read from its file) and the JWT
 * options.  Caller-owned (no allocation); it must outlive the
 * tp_store_new call that reads the options (which copies them), then be
 * wiped with tp_store_config_clear.
 */
typedef struct tp_store_config {
    char redis_host[256];
    char redis_password[1024];
    tp_jwt_options jwt;
} tp_store_config;

/*
 * The one mapping of the shared configuration file (turnpolicy.conf) to
 * store options, for every consumer (turnpolicyd, the nginx module, the
 * CLI), with one default and one range per key.  From [section]:
 *   database             libpq string; else the global database_url
 *                        (NULL if neither: the caller may have another
 *                        source, and tp_store_new refuses none)
 *   redis                HOST:PORT (Redis for fan-out and counters)
 *   redis_password_file  a file holding Redis's password
 *   redis_fail_mode      closed (default) | open
 *   no_listen            no (default) | yes (a hot-standby replica)
 *   max_staleness        seconds, 1..86400, default 30
 *   reload_interval      seconds, 1..86400, default 600
 *   issue_per_minute     0..1000000, default 0 (no limit)
 * and from the global section the JWT options (tp_jwt_options_from_
 * config).  Other keys of the section are the consumer's own: this does
 * not refuse them.  *out is zeroed first; log, log_ud and
 * background_start are the caller's to set.  TP_OK, or TP_ECONFIG /
 * TP_EINVAL / TP_EIO naming the file, line and key.
 */
TP_EXPORT tp_status tp_store_options_from_config(const tp_config *cfg,
                                                 const char *section,
                                                 tp_store_options *out,
                                                 tp_store_config *hold,
                                                 tp_error *err);
/* Wipe hold (the Redis password).  NULL ok. */
TP_EXPORT void tp_store_config_clear(tp_store_config *hold);

/* Connect, load the first snapshot (blocking, bounded by the connection
 * string's connect_timeout) and start the background thread.  NULL and
 * err filled (TP_EDB, TP_EINVAL, TP_ENOMEM) on failure.  With
 * background_start, only TP_EINVAL / TP_ENOMEM / TP_EIO fail here. */
TP_EXPORT tp_store *tp_store_new(const tp_store_options *opts,
                                 tp_error *err);
/* Stop the thread, close the connection, free everything.  NULL ok. */
TP_EXPORT void tp_store_free(tp_store *st);

/* Verify a credential against the snapshot: staleness, realm known and
 * not killed, the credential itself (tp_credential_verify), user known
 * and active, credential not revoked and not issued before the user's
 * revocation, and the user's byte budget and its realm's
 * (realm_byte_budget, all users together) not used up (TP_EBUDGET when
 * the snapshot's bytes of finished sessions in the period reach either
 * limit; see tp_store_session_check for what a caller with live sessions
 * adds).  Returns TP_OK or the first failing status. */
TP_EXPORT TP_NODISCARD tp_status tp_store_verify(tp_store *st,
                                                 const char *realm,
                                                 const char *username,
                                                 const char *password,
                                                 int64_t now,
                                                 tp_username *parsed,
                                                 tp_error *err);

/* The same decision for a username alone, giving coturn's long-term key
 * (what turnpolicyd answers coturn with). */
TP_EXPORT TP_NODISCARD tp_status tp_store_key(
    tp_store *st, const char *realm, const char *username, int64_t now,
    char hexkey[TP_LTKEY_HEX_LEN + 1], tp_username *parsed, tp_error *err);

/* Issue a credential for a known, active user of a live realm. */
TP_EXPORT tp_status tp_store_issue(tp_store *st, const char *realm,
                                   const char *user_id, uint32_t ttl,
                                   int64_t now, tp_credential *out,
                                   tp_error *err);

/* Peer and host decisions with the realm's rules from the snapshot. */
TP_EXPORT TP_NODISCARD tp_status tp_store_peer_check(tp_store *st,
                                                     const char *realm,
                                                     const tp_addr *addr,
                                                     tp_peer_decision *dec,
                                                     tp_error *err);
TP_EXPORT TP_NODISCARD tp_status tp_store_host_check(
    tp_store *st, const char *realm, const char *host, unsigned port,
    const char *path, tp_host_match *match, tp_error *err);

/*
 * Live allocation counting across nodes (Redis).  acquire records
 * session_id as live for user_id until now + ttl (call it again to extend)
 * and refuses with TP_EQUOTA when the user already has its quota of live
 * sessions (the user's user_quota, else the realm's; NULL or 0 means
 * unlimited, as in coturn) or the realm its total_quota.  *count receives the live count including
 * this session.  release forgets the session.  Without Redis, or with
 * Redis down: TP_OK if redis_fail_mode is TP_FAIL_OPEN, else TP_EREDIS.
 * These calls do blocking Redis I/O bounded by a 200 ms timeout.
 */
TP_EXPORT tp_status tp_store_alloc_acquire(tp_store *st, const char *realm,
                                           const char *user_id,
                                           const char *session_id,
                                           uint32_t ttl, int64_t now,
                                           uint32_t *count, tp_error *err);
TP_EXPORT tp_status tp_store_alloc_release(tp_store *st, const char *realm,
                                           const char *user_id,
                                           const char *session_id,
                                           tp_error *err);

/* One acquire (ttl > 0) or release (ttl == 0) of tp_store_alloc_batch. */
typedef struct tp_alloc_op {
    const char *realm;
    const char *user_id;
    const char *session_id;
    uint32_t ttl;
    tp_status status;     /* out: what tp_store_alloc_acquire / _release
                             would have returned for this op alone */
    uint32_t count;       /* out: an acquire's live count, as *count */
} tp_alloc_op;

/*
 * The ops of ops[0..n), in order, as if each were a tp_store_alloc_acquire
 * or tp_store_alloc_release call, in one pipelined round trip to Redis
 * (the acquire script by EVALSHA, loaded with EVAL when Redis does not
 * have it).  Each op's status is set.  Returns TP_OK when every op is
 * TP_OK or TP_EQUOTA, else the first other status; err describes the
 * first op that did not succeed.  Blocking Redis I/O, 200 ms timeout.
 */
TP_EXPORT tp_status tp_store_alloc_batch(tp_store *st, tp_alloc_op *ops,
                                         size_t n, int64_t now,
                                         tp_error *err);

typedef struct tp_store_info {
    uint64_t generation;  /* snapshots published so far (1 after new):
                             full loads and realm changes */
    uint64_t full_loads;  /* full reads of the whole policy (a load that
                             builds new tables, or the periodic check,
                             applied in place) */
    uint64_t change_reads; /* reads of the change log (schema 007) that
                             applied what changed without a full load */
    int64_t loaded_at;    /* Unix seconds of the current snapshot */
    double age;           /* seconds since the store last knew it was
                             current (monotonic clock) */
    int connected;        /* the background connection is up */
    size_t realms;
    size_t users;
    int redis_subscribed; /* the Redis fan-out subscription is up */
    size_t overlay;       /* changes received through Redis, in force */
    uint64_t changes;     /* bumped whenever the policy in force changes
                             (new snapshot or overlay): re-check live
                             sessions when it moves */
    size_t usage_pending; /* usage records not yet in PostgreSQL */
    uint64_t usage_written; /* rows inserted (a resent record is not) */
} tp_store_info;

TP_EXPORT void tp_store_info_get(tp_store *st, tp_store_info *info);

/* tp_store_info.changes alone: one atomic load, no lock, for callers that
 * cache decisions and must drop them when the policy changes (0 for
 * NULL). */
TP_EXPORT uint64_t tp_store_changes(tp_store *st);

/* A descriptor (owned by the store; do not close it) that becomes
 * readable whenever tp_store_changes() moves: a new snapshot, or a
 * revocation, disable or kill switch fanned out through Redis.  For event
 * loops that act on changes at once (turnpolicyd's enforcer): watch it
 * for reading, drain it (read 8 bytes; non-blocking), then look at the
 * policy.  -1 for NULL. */
TP_EXPORT int tp_store_change_fd(tp_store *st);

/* Ask the background thread to reload now (for tools and tests); returns
 * at once.  Decisions see the new snapshot when it is loaded. */
TP_EXPORT void tp_store_reload(tp_store *st);

/*
 * Verify a JWT with the keys provisioned for a realm (turnpolicy.jwt_keys,
 * each pinned to its algorithm) and the store's claim checks.  With realm
 * NULL, the realm is taken from the token's realm claim - read before
 * verification only to choose the key set; the verified claims must then
 * name the same realm.  Returns tp_jwt_verify's statuses, or
 * TP_EUNKNOWNREALM (no such realm, or no realm claim), TP_EREALMKILLED,
 * TP_ESTALE.  No I/O.
 */
TP_EXPORT TP_NODISCARD tp_status tp_store_jwt_verify(
    tp_store *st, const char *realm, const char *token, size_t len,
    int64_t now, tp_jwt_claims *claims, tp_error *err);

/* What coturn asks per realm (turnpolicyd answers from this). */
typedef struct tp_realm_options {
    int64_t max_bps;      /* 0 = unlimited */
    int64_t user_quota;   /* live allocations per user; 0 = unlimited */
    int64_t total_quota;  /* live allocations per realm; 0 = unlimited */
    uint32_t default_ttl;
    uint32_t max_ttl;
    int killed;
} tp_realm_options;

/* TP_OK and *out for a provisioned realm, TP_EUNKNOWNREALM, TP_ESTALE. */
TP_EXPORT tp_status tp_store_realm_options(tp_store *st, const char *realm,
                                           tp_realm_options *out,
                                           tp_error *err);

/* Call fn for every realm name (fn's string is valid during the call).
 * Stops at the first non-TP_OK from fn and returns it. */
typedef tp_status (*tp_name_fn)(void *ud, const char *name);
TP_EXPORT tp_status tp_store_realms(tp_store *st, tp_name_fn fn, void *ud,
                                    tp_error *err);

/* Call fn(ud, origin, realm) for every allowed web origin of every realm
 * (coturn's origin -> realm mapping; an origin listed by several realms
 * is given once, for the first realm in name order). */
typedef tp_status (*tp_origin_fn)(void *ud, const char *origin,
                                  const char *realm);
TP_EXPORT tp_status tp_store_origins(tp_store *st, tp_origin_fn fn,
                                     void *ud, tp_error *err);

/* Which realm allows web origin ("https://app.example.org", compared
 * exactly as provisioned)?  The first in name order when several do, the
 * realm tp_store_origins gives for it.  Its name is copied to realm (cap
 * bytes; TP_REALM_MAX + 1 always fits); realm may be NULL, with cap 0, to
 * ask only whether some realm does.  TP_OK, TP_EORIGIN if no realm allows
 * origin, TP_ENOSPACE if cap is too small, TP_EINVAL, TP_ESTALE.  No I/O. */
TP_EXPORT TP_NODISCARD tp_status tp_store_origin_realm(tp_store *st,
                                                       const char *origin,
                                                       char *realm,
                                                       size_t cap,
                                                       tp_error *err);

/* May a web page of origin ("https://app.example.org", compared exactly as
 * provisioned) use this realm?  TP_OK if it is one of the realm's
 * allowed_origins, TP_EORIGIN if not, TP_EUNKNOWNREALM, TP_ESTALE.  No I/O. */
TP_EXPORT TP_NODISCARD tp_status tp_store_origin_check(tp_store *st,
                                                       const char *realm,
                                                       const char *origin,
                                                       tp_error *err);

/* The realm's peer policy in coturn 4.6.1's range forms (as
 * tp_peerset_export_coturn). */
TP_EXPORT tp_status tp_store_export_coturn(tp_store *st, const char *realm,
                                           tp_peer_action which,
                                           tp_range_fn fn, void *ud,
                                           tp_error *err);

/* Is client (a TURN client's address) inside the user's client_cidr
 * binding?  TP_OK if it is or the user has none; TP_ECLIENTADDR if not;
 * TP_EUNKNOWNUSER / TP_EUNKNOWNREALM / TP_ESTALE. */
TP_EXPORT TP_NODISCARD tp_status tp_store_client_check(
    tp_store *st, const char *realm, const char *user_id,
    const tp_addr *client, tp_error *err);

/* The realm's TURN URIs (as provisioned, in order) for credential
 * responses: up to max pointers into buf (cap bytes, caller-owned), *n
 * receives the count.  TP_ENOSPACE if they do not fit; TP_EUNKNOWNREALM;
 * TP_ESTALE. */
TP_EXPORT tp_status tp_store_realm_urls(tp_store *st, const char *realm,
                                        char *buf, size_t cap,
                                        const char **urls, size_t max,
                                        size_t *n, tp_error *err);

/* May this subject act now?  The user is provisioned and active in a live
 * realm and, when issued_at > 0 (a token's iat), was not revoked after
 * that (revoke_user).  TP_OK, TP_EUNKNOWNREALM, TP_EREALMKILLED,
 * TP_EUNKNOWNUSER, TP_EDISABLED, TP_EREVOKED, TP_ESTALE.  No I/O. */
TP_EXPORT TP_NODISCARD tp_status tp_store_subject_check(
    tp_store *st, const char *realm, const char *user_id, int64_t issued_at,
    tp_error *err);

/*
 * What the node deciding about a session knows that the snapshot does
 * not (turnpolicyd's session table): tp_store_session_check's input.
 */
typedef struct tp_session_use {
    size_t live;             /* the user's live sessions on this node,
                                not counting the one decided about */
    uint64_t bytes;          /* the user's client-side bytes the
                                snapshot's budget sums lack: its sessions
                                on this node (the one decided about
                                included) and its finished ones not yet
                                in the snapshot (tp_store_usage_included) */
    const tp_addr *client;   /* the client's address, or NULL if unknown */
    uint64_t realm_bytes;    /* the same as bytes for every user of the
                                realm together (the realm's budget) */
} tp_session_use;

/*
 * May this user have this session, given what the node adds (use)?  The
 * one rule for a session starting (turnpolicyd's key lookup) and a
 * session living (its enforcer):
 *   - quota: refused when use->live reaches the user's quota (the user's
 *     user_quota, else the realm's; 0 = unlimited): TP_EQUOTA;
 *   - budget: refused once the bytes of finished sessions in the
 *     snapshot plus use->bytes reach the user's byte budget (its own,
 *     else the realm's, in the realm's budget_period): TP_EBUDGET; and
 *     once the realm's bytes (all its users, snapshot plus
 *     use->realm_bytes) reach realm_byte_budget: TP_EBUDGET, the
 *     message naming the realm;
 *   - client binding: refused when use->client is outside the user's
 *     client_cidr: TP_ECLIENTADDR.
 * The credential and the user themselves are tp_store_key's (call it
 * first).  err's message says which limit and by how much.  TP_OK, one
 * of the above, TP_EUNKNOWNREALM, TP_EUNKNOWNUSER, TP_ESTALE, TP_EINVAL.
 * No I/O, lock-free.
 */
TP_EXPORT TP_NODISCARD tp_status tp_store_session_check(
    tp_store *st, const char *realm, const char *user_id,
    const tp_session_use *use, tp_error *err);

/* The live-allocation quota in force for a user: the user's user_quota,
 * else the realm's (0 = unlimited).  TP_OK, TP_EUNKNOWNREALM,
 * TP_EUNKNOWNUSER, TP_ESTALE. */
TP_EXPORT tp_status tp_store_user_quota(tp_store *st, const char *realm,
                                        const char *user_id,
                                        int64_t *quota, tp_error *err);

/* Byte budget of a user: *limit (0 = none) for the realm's
 * budget_period, and *used, the bytes of finished sessions in the current
 * period as of the last snapshot (sessions still live, and records given
 * to tp_store_usage_record that the snapshot does not include yet - see
 * tp_store_usage_included - are the caller's to add).  tp_store_key and
 * tp_store_verify refuse with TP_EBUDGET once used >= limit.  TP_OK,
 * TP_EUNKNOWNREALM, TP_EUNKNOWNUSER, TP_ESTALE. */
TP_EXPORT tp_status tp_store_budget(tp_store *st, const char *realm,
                                    const char *user_id, uint64_t *limit,
                                    uint64_t *used, tp_error *err);

/*
 * One finished TURN session, for metering.  tp_store_usage_record copies
 * it into a queue that the store thread writes to turnpolicy.usage in
 * batches (INSERT ... ON CONFLICT (node, session_id) DO NOTHING, so a
 * retried batch is harmless).  While PostgreSQL is down the queue keeps
 * the records and the thread retries; TP_EBUSY once it holds 100000.
 * Never blocks on I/O.
 */
typedef struct tp_usage {
    const char *node;        /* this turnpolicyd's name; required */
    const char *session_id;  /* coturn's allocation id; required */
    const char *realm;
    const char *user_id;
    int64_t started;         /* Unix seconds */
    int64_t ended;
    uint64_t bytes_in;       /* client -> relay */
    uint64_t bytes_out;      /* relay -> client */
    const char *client_addr; /* "ip" or NULL */
} tp_usage;

TP_EXPORT tp_status tp_store_usage_record(tp_store *st, const tp_usage *u,
                                          tp_error *err);

/* How many of the records tp_store_usage_record accepted (TP_OK) the
 * snapshot in force accounts for: records are written in the order they
 * were accepted, and the first N (N = this value) were written - or
 * refused by PostgreSQL for good - before the snapshot began loading, so
 * its budget sums (tp_store_budget's *used) include them.  A caller that
 * numbers the records it recorded 1, 2, ... adds the bytes of those
 * numbered above N to *used.  One atomic load; may lag the snapshot by
 * an instant (then a record counts twice, never not at all). */
TP_EXPORT uint64_t tp_store_usage_included(tp_store *st);

/* Wait up to timeout_ms for the usage queue to drain to PostgreSQL;
 * TP_OK when empty, else TP_EDB (records still queued). */
TP_EXPORT tp_status tp_store_usage_flush(tp_store *st, int timeout_ms,
                                         tp_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TURNPOLICY_H */
