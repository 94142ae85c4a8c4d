-- 001_core.sql - turnpolicy core schema: roles, tables, constraints, triggers.
--
-- Applied by `turnpolicy migrate` inside one transaction (no BEGIN/COMMIT
-- here); the tool records it in turnpolicy.schema_migrations.  Needs a role
-- that may CREATE in the database and CREATEROLE (or superuser) for the
-- group roles below, which are cluster-wide and therefore created only when
-- missing.
--
-- Conventions for every later migration:
--   * every table, view and function lives in schema turnpolicy (the coturn
--     compatibility views in turnpolicy_coturn);
--   * identifiers follow the C library's rules exactly (policy/src/cred.c),
--     enforced by CHECK constraints, so whatever the database holds the
--     library can load;
--   * no function is executable by PUBLIC; every SECURITY DEFINER function
--     has SET search_path = pg_catalog, turnpolicy;
--   * secrets and key material never appear in error messages, audit rows
--     or NOTIFY payloads.

---------------------------------------------------------------------------
-- Roles (NOLOGIN groups; grant them to login roles)
---------------------------------------------------------------------------
DO $roles$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
            ('turnpolicy_admin',
             'turnpolicy: provisioning (SQL API, direct DML on policy tables); cannot read secret or key bytes'),
            ('turnpolicy_issuer',
             'turnpolicy: may only call turnpolicy.issue_credential'),
            ('turnpolicy_reader',
             'turnpolicy: what turnpolicyd and the nginx module connect as: reads the policy incl. secrets, inserts usage')
        ) AS v(name, note)
    LOOP
        -- Existing roles are left as they are (and need no CREATEROLE).
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r.name);
                EXECUTE format('COMMENT ON ROLE %I IS %L', r.name, r.note);
            EXCEPTION WHEN duplicate_object THEN
                NULL;  -- created concurrently by a migration of another database
            END;
        END IF;
    END LOOP;
END
$roles$;

---------------------------------------------------------------------------
-- Schema and pgcrypto
---------------------------------------------------------------------------
CREATE SCHEMA turnpolicy;
REVOKE ALL ON SCHEMA turnpolicy FROM PUBLIC;
COMMENT ON SCHEMA turnpolicy IS 'turnpolicy: TURN / signaling policy (source of truth)';

-- Functions created later by this role in the schema start without PUBLIC
-- EXECUTE; every migration also revokes it explicitly at its end.
ALTER DEFAULT PRIVILEGES IN SCHEMA turnpolicy REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- pgcrypto (a trusted extension) may already be installed in any schema.
-- The two wrappers below pin the schema found now, so nothing else needs
-- pgcrypto on its search_path.  They are SECURITY DEFINER so callers need
-- no privilege on pgcrypto itself; only owner-run code calls _hmac_sha1.
DO $crypto$
DECLARE
    s text;
BEGIN
    SELECT n.nspname INTO s
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pgcrypto';
    IF s IS NULL THEN
        CREATE EXTENSION pgcrypto SCHEMA turnpolicy;
        s := 'turnpolicy';
    END IF;
    -- _hmac_sha1(data, key): HMAC-SHA1 of data under key (pgcrypto hmac).
    EXECUTE format($f$
        CREATE FUNCTION turnpolicy._hmac_sha1(data bytea, key bytea)
        RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        SECURITY DEFINER SET search_path = pg_catalog, turnpolicy
        AS 'SELECT %I.hmac($1, $2, ''sha1'')'$f$, s);
    -- _random_bytes(n): n cryptographically random bytes (1..1024).
    EXECUTE format($f$
        CREATE FUNCTION turnpolicy._random_bytes(n integer)
        RETURNS bytea LANGUAGE sql VOLATILE STRICT
        SECURITY DEFINER SET search_path = pg_catalog, turnpolicy
        AS 'SELECT %I.gen_random_bytes($1)'$f$, s);
END
$crypto$;

---------------------------------------------------------------------------
-- Migration bookkeeping (rows are inserted by the migration tool)
---------------------------------------------------------------------------
CREATE TABLE turnpolicy.schema_migrations (
    version    integer PRIMARY KEY CHECK (version > 0),
    name       text NOT NULL,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE turnpolicy.schema_migrations IS
    'one row per applied schema/NNN_*.sql file, written by turnpolicy migrate in the same transaction';

---------------------------------------------------------------------------
-- Validation helpers (IMMUTABLE; used by CHECK constraints and the API)
---------------------------------------------------------------------------

-- _shown(s): untrusted text made safe to quote in an error message: at most
-- 64 characters, bytes outside printable ASCII replaced by '?', quoted.
-- Never pass a secret to it.
CREATE FUNCTION turnpolicy._shown(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN s IS NULL THEN 'NULL'
           ELSE pg_catalog.quote_literal(
                    pg_catalog.regexp_replace(pg_catalog.left(s, 64),
                                              '[^ -~]', '?', 'g'))
                || CASE WHEN pg_catalog.length(s) > 64 THEN '...' ELSE '' END
           END
$$;

-- _ident_error(what, s, max, class): NULL if s is 1..max characters of the
-- bracket-expression class, else a message in the C library's words
-- ("user id ... contains a forbidden character at offset N (byte 0xNN)").
CREATE FUNCTION turnpolicy._ident_error(what text, s text, max integer, class text)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    i integer;
BEGIN
    IF s IS NULL OR s = '' THEN
        RETURN what || ' is empty';
    END IF;
    IF pg_catalog.octet_length(s) > max THEN
        RETURN pg_catalog.format('%s is %s bytes long; the limit is %s',
                                 what, pg_catalog.octet_length(s), max);
    END IF;
    FOR i IN 1 .. pg_catalog.length(s) LOOP
        IF pg_catalog.substr(s, i, 1) !~ ('^[' || class || ']$') THEN
            RETURN pg_catalog.format(
                '%s %s contains a forbidden character at offset %s (%s)',
                what, turnpolicy._shown(s), i - 1,
                CASE WHEN pg_catalog.ascii(pg_catalog.substr(s, i, 1)) < 128
                     THEN 'byte 0x' || pg_catalog.lpad(pg_catalog.to_hex(
                              pg_catalog.ascii(pg_catalog.substr(s, i, 1))), 2, '0')
                     ELSE 'a non-ASCII character' END);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- The character classes of policy/src/cred.c.  A user id: printable ASCII
-- except space " % ' / : ; < > \ and backquote (cred.c user_id_ok[]).
-- Realm names and kids: [A-Za-z0-9._-] (name_char_ok).
CREATE FUNCTION turnpolicy._user_id_error(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT turnpolicy._ident_error('user id', s, 128,
                                   '][!#$&()*+,.=?@^_{|}~0-9A-Za-z-')
$$;

CREATE FUNCTION turnpolicy._realm_error(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT turnpolicy._ident_error('realm', s, 127, 'A-Za-z0-9._-')
$$;

-- A kid: 1..32 of [A-Za-z0-9._-], not all digits (so it is never mistaken
-- for a timestamp field of the username).
CREATE FUNCTION turnpolicy._kid_error(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(turnpolicy._ident_error('kid', s, 32, 'A-Za-z0-9._-'),
                    CASE WHEN s ~ '^[0-9]+$' THEN 'kid must not be all digits' END)
$$;

-- _host_pattern_error(p): NULL if p is a canonical host rule
--   NAME | *.NAME  [":" PORT | ":*"]
-- as policy/src/host.c accepts it, else why not.  Canonical means what
-- allow_host() stores: lowercase, no trailing dot, no ":443" (the default),
-- no path (that is the separate path_prefix column).  NAME is an LDH name,
-- labels 1..63, at most 253 bytes, last label not numeric nor 0x-hex (an IP
-- literal in disguise); a wildcard needs at least two labels after "*.".
CREATE FUNCTION turnpolicy._host_pattern_error(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    name text;
    lab text;
    labs text[];
BEGIN
    IF p IS NULL OR p = '' THEN
        RETURN 'host rule is empty';
    END IF;
    IF pg_catalog.strpos(p, '/') > 0 THEN
        RETURN 'the path belongs in path_prefix, not in the host pattern';
    END IF;
    m := pg_catalog.regexp_match(p, '^(\*\.)?([^:]*)(:(.*))?$');
    name := m[2];
    IF pg_catalog.strpos(name, '*') > 0 THEN
        RETURN '''*'' is only allowed as a whole leftmost label, as in "*.example.com"';
    END IF;
    IF name = '' THEN
        RETURN 'host name is empty';
    END IF;
    IF pg_catalog.octet_length(name) > 253 THEN
        RETURN 'host name is longer than 253 bytes';
    END IF;
    IF name !~ '^[A-Za-z0-9.-]+$' THEN
        RETURN 'only letters, digits, ''-'' and ''.'' are allowed (no ''_''; '
               'give an IDN in its xn-- form; IP literals are not host names)';
    END IF;
    IF name ~ '[A-Z]' THEN
        RETURN 'host name must be lowercase';
    END IF;
    IF pg_catalog.right(name, 1) = '.' THEN
        RETURN 'host name must not end with a dot';
    END IF;
    labs := pg_catalog.string_to_array(name, '.');
    FOREACH lab IN ARRAY labs LOOP
        IF lab = '' THEN
            RETURN 'empty label';
        ELSIF pg_catalog.length(lab) > 63 THEN
            RETURN 'a label is longer than 63 bytes';
        ELSIF pg_catalog.left(lab, 1) = '-' THEN
            RETURN 'a label starts with ''-''';
        ELSIF pg_catalog.right(lab, 1) = '-' THEN
            RETURN 'a label ends with ''-''';
        END IF;
    END LOOP;
    lab := labs[pg_catalog.array_length(labs, 1)];
    IF lab ~ '^[0-9]+$' OR lab ~ '^0x[0-9a-f]*$' THEN
        RETURN 'looks like an IP address; IP literals are not host names';
    END IF;
    IF m[1] IS NOT NULL AND pg_catalog.array_length(labs, 1) < 2 THEN
        RETURN 'a wildcard needs at least two labels after "*."';
    END IF;
    IF m[3] IS NOT NULL THEN
        IF m[4] = '443' THEN
            RETURN 'port 443 is the default; write the rule without ":443"';
        ELSIF m[4] <> '*' AND (m[4] !~ '^[1-9][0-9]{0,4}$'
                               OR m[4]::integer > 65535) THEN
            RETURN 'the port must be 1..65535 or ''*''';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- _path_prefix_error(p): NULL if p is a path prefix host.c accepts: starts
-- with "/", no "..", "//", "\", "?", "#", space, control bytes, nor the
-- escapes %2f %2e %5c %00 (any case); at most 1000 bytes.
CREATE FUNCTION turnpolicy._path_prefix_error(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p IS NULL OR pg_catalog.left(p, 1) <> '/' THEN
            'a path prefix starts with "/"'
        WHEN pg_catalog.octet_length(p) > 1000 THEN
            'a path prefix is at most 1000 bytes'
        WHEN p ~ '[[:cntrl:]]' OR p ~ '\.\.|//|[\\?# ]' OR p ~* '%(2f|2e|5c|00)' THEN
            'the path prefix must not contain ''..'', ''//'', ''\'', ''?'', '
            '''#'', spaces, control bytes or encoded ''/'', ''\'', ''.'' or NUL'
    END
$$;

-- _urls_error(a): NULL if every element is a stun:/stuns:/turn:/turns: URI
-- without spaces, quotes or control characters (at most 16 of 255 bytes).
CREATE FUNCTION turnpolicy._urls_error(a text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN 'the URL list is NULL (use an empty array)'
        WHEN pg_catalog.cardinality(a) > 16 THEN 'at most 16 URLs'
        WHEN EXISTS (SELECT 1 FROM pg_catalog.unnest(a) u
                      WHERE u IS NULL OR pg_catalog.octet_length(u) > 255
                         OR u !~ '^(stuns?|turns?):[!#-~]+$'
                         OR u ~ '[\\"]')
        THEN 'every URL must be stun:, stuns:, turn: or turns: followed by '
             'printable ASCII without spaces, quotes or backslashes'
    END
$$;

-- _origins_error(a): NULL if every element is a web origin as browsers send
-- it: scheme://host[:port], lowercase scheme and host, no path.
CREATE FUNCTION turnpolicy._origins_error(a text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN 'the origin list is NULL (use an empty array)'
        WHEN pg_catalog.cardinality(a) > 64 THEN 'at most 64 origins'
        WHEN EXISTS (SELECT 1 FROM pg_catalog.unnest(a) u
                      WHERE u IS NULL OR pg_catalog.octet_length(u) > 127
                         OR u !~ '^https?://[a-z0-9.-]+(:[1-9][0-9]{0,4})?$')
        THEN 'every origin must be http(s)://host[:port] in lowercase, '
             'without path or trailing slash, at most 127 bytes'
    END
$$;

-- _jwt_key_error(alg, key_data): NULL if key_data suits alg, else why not
-- (never quoting the key): HS*: 32..1024 bytes, no "-----BEGIN" anywhere
-- (a PEM used as an HMAC secret is the HS/RS confusion set-up); RS256 /
-- ES256: a PEM public key ("PUBLIC KEY-----"), never "PRIVATE".
CREATE FUNCTION turnpolicy._jwt_key_error(alg text, key_data bytea) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN key_data IS NULL THEN 'key_data is required'
        WHEN alg IN ('HS256', 'HS384', 'HS512') THEN
            CASE WHEN position('\x2d2d2d2d2d424547494e'::bytea IN key_data) > 0 THEN
                     alg || ' secret is a PEM key; an asymmetric key must be added as RS256 or ES256'
                 WHEN octet_length(key_data) NOT BETWEEN 32 AND 1024 THEN
                     alg || ' secret must be 32..1024 bytes (got ' || octet_length(key_data) || ')'
            END
        WHEN alg IN ('RS256', 'ES256') THEN
            CASE WHEN position('\x50524956415445'::bytea IN key_data) > 0 THEN
                     alg || ' key contains a private key; store only the public key'
                 WHEN octet_length(key_data) > 16384
                      OR position('\x2d2d2d2d2d424547494e'::bytea IN key_data) = 0
                      OR position('\x5055424c4943204b45592d2d2d2d2d'::bytea IN key_data) = 0 THEN
                     alg || ' key must be a PEM public key ("-----BEGIN PUBLIC KEY-----")'
            END
        ELSE 'JWT algorithm ' || turnpolicy._shown(alg)
             || ' is not supported: HS256, HS384, HS512, RS256 or ES256'
    END
$$;

---------------------------------------------------------------------------
-- Tables
---------------------------------------------------------------------------

-- Realms (tenants).  NULL quotas/budgets mean "no limit".
CREATE TABLE turnpolicy.realms (
    name              text PRIMARY KEY
                      CONSTRAINT realms_name_format
                      CHECK (name ~ '^[A-Za-z0-9._-]{1,127}$'),
    default_ttl       integer NOT NULL DEFAULT 3600,
    max_ttl           integer NOT NULL DEFAULT 86400
                      CONSTRAINT realms_max_ttl_range CHECK (max_ttl BETWEEN 1 AND 604800),
    clock_skew        integer NOT NULL DEFAULT 60
                      CONSTRAINT realms_clock_skew_range CHECK (clock_skew BETWEEN 1 AND 3600),
    turn_urls         text[] NOT NULL DEFAULT '{}'
                      CONSTRAINT realms_turn_urls_format
                      CHECK (turnpolicy._urls_error(turn_urls) IS NULL),
    user_quota        integer CONSTRAINT realms_user_quota_range CHECK (user_quota >= 0),
    total_quota       integer CONSTRAINT realms_total_quota_range CHECK (total_quota >= 0),
    max_bps           bigint CONSTRAINT realms_max_bps_range CHECK (max_bps >= 0),
    user_byte_budget  bigint CONSTRAINT realms_user_byte_budget_range CHECK (user_byte_budget >= 0),
    realm_byte_budget bigint CONSTRAINT realms_realm_byte_budget_range CHECK (realm_byte_budget >= 0),
    budget_period     integer CONSTRAINT realms_budget_period_range
                      CHECK (budget_period BETWEEN 60 AND 31622400),
    allowed_origins   text[] NOT NULL DEFAULT '{}'
                      CONSTRAINT realms_allowed_origins_format
                      CHECK (turnpolicy._origins_error(allowed_origins) IS NULL),
    peer_default      text NOT NULL DEFAULT 'allow'
                      CONSTRAINT realms_peer_default_valid CHECK (peer_default IN ('allow', 'deny')),
    killed            boolean NOT NULL DEFAULT false,
    killed_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT realms_default_ttl_range CHECK (default_ttl BETWEEN 1 AND max_ttl),
    CONSTRAINT realms_budget_needs_period
        CHECK ((user_byte_budget IS NULL AND realm_byte_budget IS NULL)
               OR budget_period IS NOT NULL)
);
COMMENT ON TABLE turnpolicy.realms IS
    'tenants: credential lifetimes, TURN URLs, quotas (NULL = unlimited), byte budgets per budget_period seconds, web origins, kill switch';

-- Users of a realm.  Quota/budget columns override the realm's when not NULL.
-- revoked_before: every credential whose iat (Unix seconds) is lower than
-- extract(epoch from revoked_before) is revoked; always whole seconds.
CREATE TABLE turnpolicy.users (
    realm            text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    user_id          text NOT NULL
                     CONSTRAINT users_user_id_format
                     CHECK (user_id ~ '^[][!#$&()*+,.=?@^_{|}~0-9A-Za-z-]{1,128}$'),
    status           text NOT NULL DEFAULT 'active'
                     CONSTRAINT users_status_valid CHECK (status IN ('active', 'disabled')),
    user_quota       integer CONSTRAINT users_user_quota_range CHECK (user_quota >= 0),
    user_byte_budget bigint CONSTRAINT users_user_byte_budget_range CHECK (user_byte_budget >= 0),
    client_cidr      cidr,
    revoked_before   timestamptz
                     CONSTRAINT users_revoked_before_whole_seconds
                     CHECK (revoked_before = date_trunc('second', revoked_before)),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, user_id)
);
COMMENT ON TABLE turnpolicy.users IS
    'users per realm; status active/disabled; optional overrides and client CIDR binding; revoked_before = credentials with iat before it are revoked';

-- Credential secrets.  state: signing (issues and verifies; at most one per
-- realm), verify-only (verifies what it signed), retired (verifies nothing;
-- the bytes are erased, the kid kept so refusals can say "retired").
CREATE TABLE turnpolicy.secrets (
    realm          text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    kid            text NOT NULL
                   CONSTRAINT secrets_kid_format
                   CHECK (kid ~ '^[A-Za-z0-9._-]{1,32}$' AND kid !~ '^[0-9]+$'),
    secret         bytea,
    state          text NOT NULL
                   CONSTRAINT secrets_state_valid
                   CHECK (state IN ('signing', 'verify-only', 'retired')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    verify_only_at timestamptz,
    retired_at     timestamptz,
    PRIMARY KEY (realm, kid),
    CONSTRAINT secrets_secret_length
        CHECK (CASE WHEN state = 'retired' THEN secret IS NULL
                    ELSE pg_catalog.octet_length(secret) BETWEEN 16 AND 1024 END)
);
CREATE UNIQUE INDEX secrets_one_signing_per_realm
    ON turnpolicy.secrets (realm) WHERE state = 'signing';
COMMENT ON TABLE turnpolicy.secrets IS
    'credential secrets per realm and kid: signing (at most one per realm) / verify-only / retired (bytes erased)';

-- The static-auth-secret of an existing deployment, for legacy
-- "<expiry>:<user_id>" usernames.  At most one per realm.
CREATE TABLE turnpolicy.legacy_secrets (
    realm      text PRIMARY KEY REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    secret     bytea NOT NULL
               CONSTRAINT legacy_secrets_length
               CHECK (pg_catalog.octet_length(secret) BETWEEN 1 AND 1024),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE turnpolicy.legacy_secrets IS
    'imported static-auth-secret per realm, verifying legacy <expiry>:<user_id> usernames';

-- Revoked credentials (exact usernames), kept until they expire.
CREATE TABLE turnpolicy.revoked_credentials (
    realm      text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    username   text NOT NULL
               CONSTRAINT revoked_credentials_username_format
               CHECK (pg_catalog.octet_length(username) <= 255
                      AND username ~ ('^(0|[1-9][0-9]{0,17}):[][!#$&()*+,.=?@^_{|}~0-9A-Za-z-]{1,128}'
                                      '(:[A-Za-z0-9._-]{1,32}:(0|[1-9][0-9]{0,17}))?$')
                      AND pg_catalog.split_part(username, ':', 3) !~ '^[0-9]+$'),
    user_id    text NOT NULL,
    expires    bigint NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, username),
    CONSTRAINT revoked_credentials_fields
        CHECK (user_id = pg_catalog.split_part(username, ':', 2)
               AND expires = pg_catalog.split_part(username, ':', 1)::bigint)
);
COMMENT ON TABLE turnpolicy.revoked_credentials IS
    'revoked credentials by exact username; expires (Unix seconds, from the username) allows pruning';

-- Signaling upstream allow-list.  The C rule text is pattern || coalesce(path_prefix, '').
CREATE TABLE turnpolicy.host_rules (
    realm       text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    pattern     text NOT NULL
                CONSTRAINT host_rules_pattern_format
                CHECK (turnpolicy._host_pattern_error(pattern) IS NULL),
    path_prefix text
                CONSTRAINT host_rules_path_prefix_format
                CHECK (path_prefix IS NULL OR turnpolicy._path_prefix_error(path_prefix) IS NULL),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the C library's limit on a whole rule (host.c TP__RULE_MAX)
    CONSTRAINT host_rules_length
        CHECK (pg_catalog.octet_length(pattern) + coalesce(pg_catalog.octet_length(path_prefix), 0) <= 1024)
);
CREATE UNIQUE INDEX host_rules_unique
    ON turnpolicy.host_rules (realm, pattern, (coalesce(path_prefix, '')));
COMMENT ON TABLE turnpolicy.host_rules IS
    'upstream hosts a realm''s signaling proxy may reach: NAME or *.NAME, optional :PORT or :*, optional path prefix; default deny';

-- Peer (relay target) rules on top of the built-in default deny.  A deny
-- always wins; an allow lifts the default deny for what it names.
-- IPv4-mapped prefixes are stored as IPv4 (allow_peer/deny_peer convert).
CREATE TABLE turnpolicy.peer_rules (
    realm      text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    net        cidr NOT NULL
               CONSTRAINT peer_rules_not_v4mapped
               CHECK (NOT (pg_catalog.family(net) = 6 AND net <<= '::ffff:0:0/96'::cidr)),
    action     text NOT NULL CONSTRAINT peer_rules_action_valid CHECK (action IN ('allow', 'deny')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, net)
);
COMMENT ON TABLE turnpolicy.peer_rules IS
    'per-realm peer CIDRs: deny always wins, allow lifts the built-in default deny; one action per prefix';

-- JWT verification keys.  kid '' is the key for tokens without "kid".
-- HS*: raw secret, 32..1024 bytes, never PEM.  RS256/ES256: PEM public key.
CREATE TABLE turnpolicy.jwt_keys (
    realm      text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    kid        text NOT NULL CONSTRAINT jwt_keys_kid_format CHECK (kid ~ '^[A-Za-z0-9._-]{0,32}$'),
    alg        text NOT NULL
               CONSTRAINT jwt_keys_alg_valid
               CHECK (alg IN ('HS256', 'HS384', 'HS512', 'RS256', 'ES256')),
    key_data   bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, kid),
    CONSTRAINT jwt_keys_key_valid CHECK (turnpolicy._jwt_key_error(alg, key_data) IS NULL)
);
COMMENT ON TABLE turnpolicy.jwt_keys IS
    'JWT verification keys per realm and kid ('''' = tokens without kid), algorithm pinned per key';

-- One row per finished TURN session, written by turnpolicyd (as
-- turnpolicy_reader).  (node, session_id) is unique so re-sending a batch
-- with INSERT ... ON CONFLICT DO NOTHING is idempotent.  No foreign keys:
-- metering outlives users and realms.
CREATE TABLE turnpolicy.usage (
    node        text NOT NULL CONSTRAINT usage_node_length CHECK (pg_catalog.octet_length(node) BETWEEN 1 AND 255),
    session_id  text NOT NULL CONSTRAINT usage_session_id_length CHECK (pg_catalog.octet_length(session_id) BETWEEN 1 AND 128),
    realm       text NOT NULL CONSTRAINT usage_realm_length CHECK (pg_catalog.octet_length(realm) BETWEEN 1 AND 127),
    user_id     text NOT NULL CONSTRAINT usage_user_id_length CHECK (pg_catalog.octet_length(user_id) BETWEEN 1 AND 128),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    bytes_in    bigint NOT NULL DEFAULT 0 CONSTRAINT usage_bytes_in_range CHECK (bytes_in >= 0),
    bytes_out   bigint NOT NULL DEFAULT 0 CONSTRAINT usage_bytes_out_range CHECK (bytes_out >= 0),
    client_addr inet,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, session_id),
    CONSTRAINT usage_times_ordered CHECK (ended_at >= started_at)
);
CREATE INDEX usage_realm_user_started ON turnpolicy.usage (realm, user_id, started_at);
COMMENT ON TABLE turnpolicy.usage IS
    'finished TURN sessions for metering; unique (node, session_id)';

-- Every change to the policy tables, written by trigger only.  old_row and
-- new_row never contain the secret / key_data columns.
CREATE TABLE turnpolicy.audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    table_name text NOT NULL,
    op         text NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'truncate')),
    realm      text,
    row_key    jsonb,
    old_row    jsonb,
    new_row    jsonb,
    db_user    text NOT NULL,
    db_role    text NOT NULL,
    txid       bigint NOT NULL DEFAULT pg_catalog.txid_current()
);
CREATE INDEX audit_realm_at ON turnpolicy.audit (realm, at);
COMMENT ON TABLE turnpolicy.audit IS
    'change log of the policy tables: db_user = session_user (the login), db_role = the role in effect (SET ROLE) or the login';

---------------------------------------------------------------------------
-- Triggers
---------------------------------------------------------------------------

-- _touch(): BEFORE UPDATE: bump updated_at when the row really changes.
CREATE FUNCTION turnpolicy._touch() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, turnpolicy AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- _secrets_state(): BEFORE INSERT/UPDATE on secrets: erase the bytes of a
-- retired secret, stamp state changes, and refuse a bad length with a
-- message of its own (a CHECK violation's DETAIL would echo the row, secret
-- included, into the client's error and the server log).
CREATE FUNCTION turnpolicy._secrets_state() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, turnpolicy AS $$
BEGIN
    IF NEW.state = 'retired' THEN
        NEW.secret := NULL;
        IF TG_OP = 'INSERT' OR OLD.state <> 'retired' THEN
            NEW.retired_at := now();
        END IF;
    ELSIF NEW.secret IS NULL OR octet_length(NEW.secret) NOT BETWEEN 16 AND 1024 THEN
        RAISE EXCEPTION 'secret % of realm % is % bytes; 16..1024 are required',
            turnpolicy._shown(NEW.kid), turnpolicy._shown(NEW.realm),
            coalesce(octet_length(NEW.secret), 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.state = 'verify-only' AND (TG_OP = 'INSERT' OR OLD.state <> 'verify-only') THEN
        NEW.verify_only_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- _legacy_secrets_check(): BEFORE INSERT/UPDATE on legacy_secrets: the
-- length rule, without echoing the secret (see _secrets_state).
CREATE FUNCTION turnpolicy._legacy_secrets_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, turnpolicy AS $$
BEGIN
    IF NEW.secret IS NULL OR octet_length(NEW.secret) NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION 'legacy secret of realm % must be 1..1024 bytes',
            turnpolicy._shown(NEW.realm) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN NEW;
END
$$;

-- _jwt_keys_check(): BEFORE INSERT/UPDATE on jwt_keys: _jwt_key_error as
-- a clean error (see _secrets_state).
CREATE FUNCTION turnpolicy._jwt_keys_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    e text := turnpolicy._jwt_key_error(NEW.alg, NEW.key_data);
BEGIN
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'JWT key % of realm %: %', turnpolicy._shown(NEW.kid),
            turnpolicy._shown(NEW.realm), e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN NEW;
END
$$;

-- _audit(key columns...): AFTER row trigger writing one audit row.  Runs as
-- the owner (SECURITY DEFINER) so nobody needs, or gets, INSERT on audit;
-- session_user and the "role" setting still name who made the change.
CREATE FUNCTION turnpolicy._audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    o jsonb;
    n jsonb;
    r jsonb;
    k jsonb := '{}';
    i integer;
    who_role text := current_setting('role');
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        o := to_jsonb(OLD) - 'secret' - 'key_data';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        n := to_jsonb(NEW) - 'secret' - 'key_data';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NULL;  -- nothing changed
    END IF;
    r := coalesce(n, o);
    FOR i IN 0 .. TG_NARGS - 1 LOOP
        k := k || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]);
    END LOOP;
    INSERT INTO turnpolicy.audit (table_name, op, realm, row_key, old_row, new_row,
                                  db_user, db_role)
    VALUES (TG_TABLE_NAME, lower(TG_OP),
            r ->> (CASE WHEN TG_TABLE_NAME = 'realms' THEN 'name' ELSE 'realm' END),
            k, o, n, session_user,
            CASE WHEN who_role IS NULL OR who_role = 'none' THEN session_user::text
                 ELSE who_role END);
    RETURN NULL;
END
$$;

-- _audit_truncate(): statement-level TRUNCATE audit.
CREATE FUNCTION turnpolicy._audit_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    who_role text := current_setting('role');
BEGIN
    INSERT INTO turnpolicy.audit (table_name, op, db_user, db_role)
    VALUES (TG_TABLE_NAME, 'truncate', session_user,
            CASE WHEN who_role IS NULL OR who_role = 'none' THEN session_user::text
                 ELSE who_role END);
    RETURN NULL;
END
$$;

-- _notify(): AFTER row (and TRUNCATE statement) trigger:
--   NOTIFY turnpolicy, '{"table":"<table>","op":"insert|update|delete|truncate","realm":"<realm>"|null}'
-- Identical payloads in one transaction are delivered once (PostgreSQL
-- folds them), so a bulk change costs one message per realm and table.
-- Delivered at commit only.
CREATE FUNCTION turnpolicy._notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    realm text;
    col text := CASE WHEN TG_TABLE_NAME = 'realms' THEN 'name' ELSE 'realm' END;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
            RETURN NULL;
        END IF;
        IF TG_OP = 'DELETE' THEN
            realm := to_jsonb(OLD) ->> col;
        ELSE
            realm := to_jsonb(NEW) ->> col;
        END IF;
    END IF;
    PERFORM pg_catalog.pg_notify('turnpolicy',
        pg_catalog.format('{"table":%s,"op":%s,"realm":%s}',
                          pg_catalog.to_json(TG_TABLE_NAME::text),
                          pg_catalog.to_json(pg_catalog.lower(TG_OP)),
                          coalesce(pg_catalog.to_json(realm)::text, 'null')));
    RETURN NULL;
END
$$;

DO $triggers$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
            ('realms',              ARRAY['name'],                            true),
            ('users',               ARRAY['realm', 'user_id'],                true),
            ('secrets',             ARRAY['realm', 'kid'],                    true),
            ('legacy_secrets',      ARRAY['realm'],                           false),
            ('revoked_credentials', ARRAY['realm', 'username'],               false),
            ('host_rules',          ARRAY['realm', 'pattern', 'path_prefix'], false),
            ('peer_rules',          ARRAY['realm', 'net'],                    false),
            ('jwt_keys',            ARRAY['realm', 'kid'],                    false)
        ) AS v(tab, keys, touch)
    LOOP
        IF t.touch THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON turnpolicy.%I '
                           'FOR EACH ROW EXECUTE FUNCTION turnpolicy._touch()',
                           t.tab || '_touch', t.tab);
        END IF;
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON turnpolicy.%I '
                       'FOR EACH ROW EXECUTE FUNCTION turnpolicy._audit(%s)',
                       t.tab || '_audit', t.tab,
                       (SELECT string_agg(quote_literal(k), ', ') FROM unnest(t.keys) k));
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON turnpolicy.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION turnpolicy._audit_truncate()',
                       t.tab || '_audit_truncate', t.tab);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON turnpolicy.%I '
                       'FOR EACH ROW EXECUTE FUNCTION turnpolicy._notify()',
                       t.tab || '_notify', t.tab);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON turnpolicy.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION turnpolicy._notify()',
                       t.tab || '_notify_truncate', t.tab);
    END LOOP;
END
$triggers$;

CREATE TRIGGER secrets_state BEFORE INSERT OR UPDATE ON turnpolicy.secrets
    FOR EACH ROW EXECUTE FUNCTION turnpolicy._secrets_state();
CREATE TRIGGER legacy_secrets_check BEFORE INSERT OR UPDATE ON turnpolicy.legacy_secrets
    FOR EACH ROW EXECUTE FUNCTION turnpolicy._legacy_secrets_check();
CREATE TRIGGER jwt_keys_check BEFORE INSERT OR UPDATE ON turnpolicy.jwt_keys
    FOR EACH ROW EXECUTE FUNCTION turnpolicy._jwt_keys_check();

---------------------------------------------------------------------------
-- Privileges
---------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA turnpolicy FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA turnpolicy FROM PUBLIC;

GRANT USAGE ON SCHEMA turnpolicy
    TO turnpolicy_admin, turnpolicy_issuer, turnpolicy_reader;

-- admin: full DML on the policy tables, but secret and key bytes are
-- write-only (column privileges without those columns for SELECT).
GRANT SELECT, INSERT, UPDATE, DELETE ON
    turnpolicy.realms, turnpolicy.users, turnpolicy.revoked_credentials,
    turnpolicy.host_rules, turnpolicy.peer_rules
    TO turnpolicy_admin;
GRANT SELECT (realm, kid, state, created_at, updated_at, verify_only_at, retired_at),
      INSERT, UPDATE (state, secret), DELETE
    ON turnpolicy.secrets TO turnpolicy_admin;
GRANT SELECT (realm, created_at), INSERT, DELETE
    ON turnpolicy.legacy_secrets TO turnpolicy_admin;
GRANT SELECT (realm, kid, alg, created_at), INSERT, DELETE
    ON turnpolicy.jwt_keys TO turnpolicy_admin;
GRANT SELECT ON turnpolicy.usage, turnpolicy.audit, turnpolicy.schema_migrations
    TO turnpolicy_admin;

-- reader: everything needed to decide (incl. secrets and keys), plus usage.
GRANT SELECT ON
    turnpolicy.realms, turnpolicy.users, turnpolicy.secrets,
    turnpolicy.legacy_secrets, turnpolicy.revoked_credentials,
    turnpolicy.host_rules, turnpolicy.peer_rules, turnpolicy.jwt_keys,
    turnpolicy.schema_migrations
    TO turnpolicy_reader;
GRANT SELECT, INSERT ON turnpolicy.usage TO turnpolicy_reader;

-- Validators referenced by CHECK constraints must be executable by the
-- roles that write those tables.
GRANT EXECUTE ON FUNCTION
    turnpolicy._shown(text),
    turnpolicy._ident_error(text, text, integer, text),
    turnpolicy._user_id_error(text),
    turnpolicy._realm_error(text),
    turnpolicy._kid_error(text),
    turnpolicy._host_pattern_error(text),
    turnpolicy._path_prefix_error(text),
    turnpolicy._urls_error(text[]),
    turnpolicy._origins_error(text[]),
    turnpolicy._jwt_key_error(text, bytea)
    TO turnpolicy_admin;
GRANT EXECUTE ON FUNCTION turnpolicy._random_bytes(integer) TO turnpolicy_admin;
