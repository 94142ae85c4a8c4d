-- 002_api.sql - the SQL provisioning API and credential issuance.
--
-- Provisioning functions are SECURITY INVOKER: they run with the caller's
-- privileges (turnpolicy_admin has DML on the policy tables), so the audit
-- trail names the real caller and direct DML obeys the same CHECK
-- constraints.  Only issue_credential / issue_credential_at are SECURITY
-- DEFINER: they read the signing secret on behalf of roles that cannot.
--
-- Errors (SQLSTATE):
--   22004 null_value_not_allowed        a required argument is NULL
--   22023 invalid_parameter_value       malformed id, name, TTL, rule, key...
--   P0002 no_data_found                 unknown realm, user, kid, rule
--   23505 unique_violation              already exists
--   55000 object_not_in_prerequisite_state  killed realm, disabled user,
--                                       no signing secret, retiring the signer
--   42501 insufficient_privilege        (from PostgreSQL) role may not call it
-- Messages quote identifiers through _shown() and never contain secrets.

---------------------------------------------------------------------------
-- Internal helpers
---------------------------------------------------------------------------

-- _need(value, what): raise 22004 when a required argument is NULL.
CREATE FUNCTION turnpolicy._need(v anyelement, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION '% is required (got NULL)', what
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
END
$$;

-- _realm_row(name, for_update): the realm's row; 22023 if the name is
-- malformed, P0002 if there is no such realm.  for_update = true takes FOR UPDATE (callers
-- that change a realm's secrets serialize on it).
CREATE FUNCTION turnpolicy._realm_row(name text, for_update boolean DEFAULT false)
RETURNS turnpolicy.realms LANGUAGE plpgsql AS $$
DECLARE
    r turnpolicy.realms;
    e text;
BEGIN
    PERFORM turnpolicy._need(_realm_row.name, 'realm');
    e := turnpolicy._realm_error(_realm_row.name);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION '%', e USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A realm name is 1..127 characters of [A-Za-z0-9._-].';
    END IF;
    IF for_update THEN
        SELECT * INTO r FROM turnpolicy.realms AS t WHERE t.name = _realm_row.name FOR UPDATE;
    ELSE
        SELECT * INTO r FROM turnpolicy.realms AS t WHERE t.name = _realm_row.name;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % does not exist', turnpolicy._shown(_realm_row.name)
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN r;
END
$$;

-- _check_user_id(user_id): 22004/22023 unless a valid user id.
CREATE FUNCTION turnpolicy._check_user_id(user_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e text;
BEGIN
    PERFORM turnpolicy._need(user_id, 'user_id');
    e := turnpolicy._user_id_error(user_id);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION '%', e USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A user id is 1..128 bytes of printable ASCII except space " % '' / : ; < > \ and backquote.';
    END IF;
END
$$;

-- _check_kid(kid): 22004/22023 unless a valid secret kid.
CREATE FUNCTION turnpolicy._check_kid(kid text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e text;
BEGIN
    PERFORM turnpolicy._need(kid, 'kid');
    e := turnpolicy._kid_error(kid);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION '%', e USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A kid is 1..32 characters of [A-Za-z0-9._-], not all digits.';
    END IF;
END
$$;

-- _no_user(realm, user_id): raise P0002 "user ... does not exist in realm ...".
CREATE FUNCTION turnpolicy._no_user(realm text, user_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'user % does not exist in realm %',
        turnpolicy._shown(user_id), turnpolicy._shown(realm)
        USING ERRCODE = 'no_data_found';
END
$$;

---------------------------------------------------------------------------
-- Realms
---------------------------------------------------------------------------

-- create_realm(name, ...): create a realm (tenant).  Quotas and budgets
-- NULL = unlimited; budgets need budget_period (seconds).
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (bad name or values),
-- 23505 (exists).
CREATE FUNCTION turnpolicy.create_realm(
    name text,
    default_ttl integer DEFAULT 3600,
    max_ttl integer DEFAULT 86400,
    turn_urls text[] DEFAULT '{}',
    allowed_origins text[] DEFAULT '{}',
    user_quota integer DEFAULT NULL,
    total_quota integer DEFAULT NULL,
    max_bps bigint DEFAULT NULL,
    user_byte_budget bigint DEFAULT NULL,
    realm_byte_budget bigint DEFAULT NULL,
    budget_period integer DEFAULT NULL,
    peer_default text DEFAULT 'allow',
    clock_skew integer DEFAULT 60)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e text;
BEGIN
    PERFORM turnpolicy._need(create_realm.name, 'realm name');
    e := turnpolicy._realm_error(create_realm.name);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION '%', e USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A realm name is 1..127 characters of [A-Za-z0-9._-].';
    END IF;
    IF create_realm.max_ttl IS NULL OR create_realm.max_ttl NOT BETWEEN 1 AND 604800 THEN
        RAISE EXCEPTION 'max_ttl % is out of range: 1..604800 seconds', coalesce(create_realm.max_ttl::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_realm.default_ttl IS NULL OR create_realm.default_ttl NOT BETWEEN 1 AND create_realm.max_ttl THEN
        RAISE EXCEPTION 'default_ttl % is out of range: 1..max_ttl (%)',
            coalesce(create_realm.default_ttl::text, 'NULL'), create_realm.max_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_realm.clock_skew IS NULL OR create_realm.clock_skew NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'clock_skew % is out of range: 1..3600 seconds', coalesce(create_realm.clock_skew::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    e := turnpolicy._urls_error(create_realm.turn_urls);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'turn_urls: %', e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    e := turnpolicy._origins_error(create_realm.allowed_origins);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'allowed_origins: %', e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_realm.user_quota < 0 OR create_realm.total_quota < 0 OR create_realm.max_bps < 0
       OR create_realm.user_byte_budget < 0 OR create_realm.realm_byte_budget < 0 THEN
        RAISE EXCEPTION 'quotas, max_bps and budgets must not be negative (NULL = unlimited)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_realm.budget_period NOT BETWEEN 60 AND 31622400 THEN
        RAISE EXCEPTION 'budget_period % is out of range: 60..31622400 seconds', create_realm.budget_period
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (create_realm.user_byte_budget IS NOT NULL OR create_realm.realm_byte_budget IS NOT NULL)
       AND create_realm.budget_period IS NULL THEN
        RAISE EXCEPTION 'a byte budget needs budget_period (seconds)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_realm.peer_default IS NULL OR create_realm.peer_default NOT IN ('allow', 'deny') THEN
        RAISE EXCEPTION 'peer_default must be ''allow'' or ''deny'''
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.realms AS r WHERE r.name = create_realm.name) THEN
        RAISE EXCEPTION 'realm % already exists', turnpolicy._shown(create_realm.name)
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO turnpolicy.realms (name, default_ttl, max_ttl, clock_skew, turn_urls,
                                   allowed_origins, user_quota, total_quota, max_bps,
                                   user_byte_budget, realm_byte_budget, budget_period,
                                   peer_default)
    VALUES (create_realm.name, create_realm.default_ttl, create_realm.max_ttl,
            create_realm.clock_skew, create_realm.turn_urls, create_realm.allowed_origins,
            create_realm.user_quota, create_realm.total_quota, create_realm.max_bps,
            create_realm.user_byte_budget, create_realm.realm_byte_budget,
            create_realm.budget_period, create_realm.peer_default);
END
$$;

-- kill_realm(realm): the kill switch.  Nothing of the realm verifies or is
-- issued until unkill_realm().  Returns false if it was already killed.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002.
CREATE FUNCTION turnpolicy.kill_realm(realm text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r turnpolicy.realms := turnpolicy._realm_row(kill_realm.realm, true);
BEGIN
    IF r.killed THEN
        RETURN false;
    END IF;
    UPDATE turnpolicy.realms AS t SET killed = true, killed_at = now()
     WHERE t.name = kill_realm.realm;
    RETURN true;
END
$$;

-- unkill_realm(realm): undo kill_realm.  Returns false if it was not killed.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002.
CREATE FUNCTION turnpolicy.unkill_realm(realm text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r turnpolicy.realms := turnpolicy._realm_row(unkill_realm.realm, true);
BEGIN
    IF NOT r.killed THEN
        RETURN false;
    END IF;
    UPDATE turnpolicy.realms AS t SET killed = false, killed_at = NULL
     WHERE t.name = unkill_realm.realm;
    RETURN true;
END
$$;

---------------------------------------------------------------------------
-- Users
---------------------------------------------------------------------------

-- create_user(realm, user_id, ...): add an active user.  user_quota and
-- user_byte_budget override the realm's (NULL = use the realm's);
-- client_cidr binds the user to client addresses.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (invalid id / values),
-- P0002 (unknown realm), 23505 (user exists).
CREATE FUNCTION turnpolicy.create_user(
    realm text,
    user_id text,
    user_quota integer DEFAULT NULL,
    user_byte_budget bigint DEFAULT NULL,
    client_cidr cidr DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM turnpolicy._realm_row(create_user.realm);
    PERFORM turnpolicy._check_user_id(create_user.user_id);
    IF create_user.user_quota < 0 OR create_user.user_byte_budget < 0 THEN
        RAISE EXCEPTION 'user_quota and user_byte_budget must not be negative (NULL = the realm''s)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.users AS u
                WHERE u.realm = create_user.realm AND u.user_id = create_user.user_id) THEN
        RAISE EXCEPTION 'user % already exists in realm %',
            turnpolicy._shown(create_user.user_id), turnpolicy._shown(create_user.realm)
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO turnpolicy.users (realm, user_id, user_quota, user_byte_budget, client_cidr)
    VALUES (create_user.realm, create_user.user_id, create_user.user_quota,
            create_user.user_byte_budget, create_user.client_cidr);
END
$$;

-- disable_user(realm, user_id): status = disabled; the user's credentials
-- stop verifying and live sessions are cut by turnpolicyd.  Returns false
-- if already disabled.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm or user).
CREATE FUNCTION turnpolicy.disable_user(realm text, user_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    PERFORM turnpolicy._realm_row(disable_user.realm);
    PERFORM turnpolicy._check_user_id(disable_user.user_id);
    SELECT u.status INTO s FROM turnpolicy.users AS u
     WHERE u.realm = disable_user.realm AND u.user_id = disable_user.user_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM turnpolicy._no_user(disable_user.realm, disable_user.user_id);
    END IF;
    IF s = 'disabled' THEN
        RETURN false;
    END IF;
    UPDATE turnpolicy.users AS u SET status = 'disabled'
     WHERE u.realm = disable_user.realm AND u.user_id = disable_user.user_id;
    RETURN true;
END
$$;

-- enable_user(realm, user_id): status = active.  Returns false if already
-- active.  Does not undo revoke_user (credentials issued before the
-- revocation stay revoked).
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm or user).
CREATE FUNCTION turnpolicy.enable_user(realm text, user_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    PERFORM turnpolicy._realm_row(enable_user.realm);
    PERFORM turnpolicy._check_user_id(enable_user.user_id);
    SELECT u.status INTO s FROM turnpolicy.users AS u
     WHERE u.realm = enable_user.realm AND u.user_id = enable_user.user_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM turnpolicy._no_user(enable_user.realm, enable_user.user_id);
    END IF;
    IF s = 'active' THEN
        RETURN false;
    END IF;
    UPDATE turnpolicy.users AS u SET status = 'active'
     WHERE u.realm = enable_user.realm AND u.user_id = enable_user.user_id;
    RETURN true;
END
$$;

-- revoke_user(realm, user_id): revoke every credential of the user issued
-- so far: revoked_before = now() rounded UP to the next whole second, so a
-- credential issued earlier in the same second (same iat) is revoked too.
-- issue_credential gives credentials issued after this call (in the same
-- second) iat = revoked_before, so they stay valid.  The user stays
-- active.  Returns the new revoked_before.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm or user).
CREATE FUNCTION turnpolicy.revoke_user(realm text, user_id text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := pg_catalog.to_timestamp(pg_catalog.ceil(extract(epoch FROM now())));
BEGIN
    PERFORM turnpolicy._realm_row(revoke_user.realm);
    PERFORM turnpolicy._check_user_id(revoke_user.user_id);
    UPDATE turnpolicy.users AS u
       SET revoked_before = greatest(u.revoked_before, t)
     WHERE u.realm = revoke_user.realm AND u.user_id = revoke_user.user_id
    RETURNING u.revoked_before INTO t;
    IF NOT FOUND THEN
        PERFORM turnpolicy._no_user(revoke_user.realm, revoke_user.user_id);
    END IF;
    RETURN t;
END
$$;

-- revoke_credential(realm, username): revoke one credential by its exact
-- username (v1 "<expiry>:<user_id>:<kid>:<iat>" or legacy
-- "<expiry>:<user_id>").  The user need not exist.  Idempotent: returns
-- false if it was already revoked.  Rows can be pruned once expired
-- (prune_revocations).
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (malformed username),
-- P0002 (unknown realm).
CREATE FUNCTION turnpolicy.revoke_credential(realm text, username text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    f text[];
    e text;
    n integer;
BEGIN
    PERFORM turnpolicy._realm_row(revoke_credential.realm);
    PERFORM turnpolicy._need(revoke_credential.username, 'username');
    f := pg_catalog.string_to_array(revoke_credential.username, ':');
    IF pg_catalog.octet_length(revoke_credential.username) > 255 THEN
        e := 'username is longer than 255 bytes';
    ELSIF pg_catalog.cardinality(f) NOT IN (2, 4) THEN
        e := 'username must be <expiry>:<user_id>:<kid>:<iat> (or the legacy <expiry>:<user_id>)';
    ELSIF f[1] !~ '^(0|[1-9][0-9]{0,17})$' THEN
        e := 'username must start with the expiry time in decimal Unix seconds';
    ELSE
        e := turnpolicy._user_id_error(f[2]);
        IF e IS NULL AND pg_catalog.cardinality(f) = 4 THEN
            e := turnpolicy._kid_error(f[3]);
            IF e IS NULL AND f[4] !~ '^(0|[1-9][0-9]{0,17})$' THEN
                e := 'username must end with the issue time in decimal Unix seconds';
            END IF;
        END IF;
    END IF;
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'cannot revoke %: %', turnpolicy._shown(revoke_credential.username), e
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO turnpolicy.revoked_credentials (realm, username, user_id, expires)
    VALUES (revoke_credential.realm, revoke_credential.username, f[2], f[1]::bigint)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END
$$;

-- prune_revocations(grace_seconds): delete credential revocations whose
-- credential expired more than grace_seconds ago.  Returns the count.
-- Caller: turnpolicy_admin (e.g. from cron).  Errors: 22023 (negative grace).
CREATE FUNCTION turnpolicy.prune_revocations(grace_seconds integer DEFAULT 3600)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF grace_seconds IS NULL OR grace_seconds < 0 THEN
        RAISE EXCEPTION 'grace_seconds must be >= 0' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM turnpolicy.revoked_credentials AS c
     WHERE c.expires < extract(epoch FROM now())::bigint - grace_seconds;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

---------------------------------------------------------------------------
-- Secrets
---------------------------------------------------------------------------

-- rotate_secret(realm): one call rotation.  Generates a new signing secret
-- (32 random bytes from gen_random_bytes, stored as their 43-character
-- base64url text so the same bytes also work as a coturn static-auth-secret
-- and in a secret file), demotes the previous signing secret to
-- verify-only, and returns the new kid ("k<N>", N one more than the
-- highest such kid the realm ever had).  Retire the old kid with
-- retire_secret() once max_ttl has passed.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (unknown realm).
CREATE FUNCTION turnpolicy.rotate_secret(realm text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    kid text;
BEGIN
    PERFORM turnpolicy._realm_row(rotate_secret.realm, true);
    SELECT coalesce(max(pg_catalog.substr(s.kid, 2)::bigint), 0) + 1 INTO n
      FROM turnpolicy.secrets AS s
     WHERE s.realm = rotate_secret.realm AND s.kid ~ '^k[0-9]{1,18}$';
    kid := 'k' || n;
    UPDATE turnpolicy.secrets AS s SET state = 'verify-only'
     WHERE s.realm = rotate_secret.realm AND s.state = 'signing';
    INSERT INTO turnpolicy.secrets (realm, kid, secret, state)
    VALUES (rotate_secret.realm, kid,
            pg_catalog.convert_to(
                pg_catalog.translate(pg_catalog.rtrim(pg_catalog.encode(
                    turnpolicy._random_bytes(32), 'base64'), '='), '+/', '-_'),
                'UTF8'),
            'signing');
    RETURN kid;
END
$$;

-- add_secret(realm, kid, secret, state): import an existing secret (bytes:
-- pass decode('...', 'hex') or convert_to('...', 'UTF8')) as 'signing'
-- (only when the realm has none), 'verify-only' (default) or 'retired'.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (kid, state, length
-- 16..1024 bytes), P0002 (realm), 23505 (kid exists, or a second signing
-- secret).
CREATE FUNCTION turnpolicy.add_secret(realm text, kid text, secret bytea,
                                      state text DEFAULT 'verify-only')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    other text;
BEGIN
    PERFORM turnpolicy._realm_row(add_secret.realm, true);
    PERFORM turnpolicy._check_kid(add_secret.kid);
    IF add_secret.state IS NULL OR add_secret.state NOT IN ('signing', 'verify-only', 'retired') THEN
        RAISE EXCEPTION 'secret state must be signing, verify-only or retired'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF add_secret.state <> 'retired' THEN
        PERFORM turnpolicy._need(add_secret.secret, 'secret');
        IF pg_catalog.octet_length(add_secret.secret) NOT BETWEEN 16 AND 1024 THEN
            RAISE EXCEPTION 'secret % is % bytes; 16..1024 are required',
                add_secret.kid, pg_catalog.octet_length(add_secret.secret)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.secrets AS s
                WHERE s.realm = add_secret.realm AND s.kid = add_secret.kid) THEN
        RAISE EXCEPTION 'realm % already has a secret with kid %',
            turnpolicy._shown(add_secret.realm), add_secret.kid
            USING ERRCODE = 'unique_violation';
    END IF;
    IF add_secret.state = 'signing' THEN
        SELECT s.kid INTO other FROM turnpolicy.secrets AS s
         WHERE s.realm = add_secret.realm AND s.state = 'signing';
        IF FOUND THEN
            RAISE EXCEPTION 'realm % already has a signing secret (%)',
                turnpolicy._shown(add_secret.realm), other
                USING ERRCODE = 'unique_violation',
                      HINT = 'Add it as verify-only, or use rotate_secret().';
        END IF;
    END IF;
    INSERT INTO turnpolicy.secrets (realm, kid, secret, state)
    VALUES (add_secret.realm, add_secret.kid, add_secret.secret, add_secret.state);
END
$$;

-- retire_secret(realm, kid): the secret verifies nothing any more; its
-- bytes are erased (the kid stays so refusals say "retired").  Returns
-- false if it was already retired.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm or kid),
-- 55000 (it is the signing secret: rotate first).
CREATE FUNCTION turnpolicy.retire_secret(realm text, kid text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    PERFORM turnpolicy._realm_row(retire_secret.realm, true);
    PERFORM turnpolicy._check_kid(retire_secret.kid);
    SELECT t.state INTO s FROM turnpolicy.secrets AS t
     WHERE t.realm = retire_secret.realm AND t.kid = retire_secret.kid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % has no secret with kid %',
            turnpolicy._shown(retire_secret.realm), retire_secret.kid
            USING ERRCODE = 'no_data_found';
    END IF;
    IF s = 'signing' THEN
        RAISE EXCEPTION 'secret % is the signing secret of realm %',
            retire_secret.kid, turnpolicy._shown(retire_secret.realm)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call rotate_secret() first, then retire it once max_ttl has passed.';
    END IF;
    IF s = 'retired' THEN
        RETURN false;
    END IF;
    UPDATE turnpolicy.secrets AS t SET state = 'retired'
     WHERE t.realm = retire_secret.realm AND t.kid = retire_secret.kid;
    RETURN true;
END
$$;

-- import_legacy_secret(realm, secret): the static-auth-secret of an
-- existing deployment (1..1024 bytes), verifying legacy "<expiry>:<user_id>"
-- usernames.  Pass convert_to('the-secret', 'UTF8') (coturn reads it as
-- text).
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (length), P0002,
-- 23505 (the realm has one: remove_legacy_secret first).
CREATE FUNCTION turnpolicy.import_legacy_secret(realm text, secret bytea)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM turnpolicy._realm_row(import_legacy_secret.realm, true);
    PERFORM turnpolicy._need(import_legacy_secret.secret, 'secret');
    IF pg_catalog.octet_length(import_legacy_secret.secret) NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION 'legacy secret must be 1..1024 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.legacy_secrets AS l
                WHERE l.realm = import_legacy_secret.realm) THEN
        RAISE EXCEPTION 'realm % already has a legacy secret',
            turnpolicy._shown(import_legacy_secret.realm)
            USING ERRCODE = 'unique_violation',
                  HINT = 'Call remove_legacy_secret() first.';
    END IF;
    INSERT INTO turnpolicy.legacy_secrets (realm, secret)
    VALUES (import_legacy_secret.realm, import_legacy_secret.secret);
END
$$;

-- remove_legacy_secret(realm): stop accepting legacy usernames.  Returns
-- false if there was none.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm).
CREATE FUNCTION turnpolicy.remove_legacy_secret(realm text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM turnpolicy._realm_row(remove_legacy_secret.realm, true);
    DELETE FROM turnpolicy.legacy_secrets AS l WHERE l.realm = remove_legacy_secret.realm;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END
$$;

---------------------------------------------------------------------------
-- Host allow-list (signaling upstreams)
---------------------------------------------------------------------------

-- _host_canonical(pattern, path_prefix): split "NAME[:PORT][/path]" when
-- no separate path is given, lowercase the name, drop one trailing dot and
-- a ":443".  Returns {pattern, path_prefix}.  22023 for a path given twice.
CREATE FUNCTION turnpolicy._host_canonical(pattern text, path_prefix text)
RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    p text := pattern;
    path text := path_prefix;
    m text[];
BEGIN
    PERFORM turnpolicy._need(p, 'host pattern');
    IF pg_catalog.strpos(p, '/') > 0 THEN
        IF path IS NOT NULL THEN
            RAISE EXCEPTION 'host rule %: give the path either in the pattern or as path_prefix, not both',
                turnpolicy._shown(pattern) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        path := pg_catalog.substr(p, pg_catalog.strpos(p, '/'));
        p := pg_catalog.left(p, pg_catalog.strpos(p, '/') - 1);
    END IF;
    m := pg_catalog.regexp_match(p, '^([^:]*)(:.*)?$');
    p := pg_catalog.translate(m[1], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
    IF pg_catalog.right(p, 1) = '.' AND pg_catalog.length(p) > 1 THEN
        p := pg_catalog.left(p, -1);
    END IF;
    IF m[2] IS NOT NULL AND m[2] <> ':443' THEN
        p := p || m[2];
    END IF;
    RETURN ARRAY[p, path];
END
$$;

-- allow_host(realm, pattern, path_prefix): allow the realm's signaling
-- proxy to reach upstream hosts matching pattern ("edge.skype.com",
-- "*.communication.azure.com", optional ":port" / ":*"; without a port
-- 443) and, if given, only paths under path_prefix ("/api" matches "/api"
-- and "/api/x").  The path may also be appended to the pattern.  Stored
-- canonical (lowercase, no trailing dot, no ":443").
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (rule invalid, with the
-- reason), P0002 (realm), 23505 (same rule exists).
CREATE FUNCTION turnpolicy.allow_host(realm text, pattern text, path_prefix text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c text[];
    e text;
BEGIN
    PERFORM turnpolicy._realm_row(allow_host.realm);
    c := turnpolicy._host_canonical(allow_host.pattern, allow_host.path_prefix);
    e := turnpolicy._host_pattern_error(c[1]);
    IF e IS NULL AND c[2] IS NOT NULL THEN
        e := turnpolicy._path_prefix_error(c[2]);
    END IF;
    IF e IS NULL AND octet_length(c[1]) + coalesce(octet_length(c[2]), 0) > 1024 THEN
        e := 'a rule (host and path) is at most 1024 bytes';
    END IF;
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'host rule %: %', turnpolicy._shown(allow_host.pattern), e
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.host_rules AS h
                WHERE h.realm = allow_host.realm AND h.pattern = c[1]
                  AND coalesce(h.path_prefix, '') = coalesce(c[2], '')) THEN
        RAISE EXCEPTION 'realm % already allows host rule %',
            turnpolicy._shown(allow_host.realm), turnpolicy._shown(c[1] || coalesce(c[2], ''))
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO turnpolicy.host_rules (realm, pattern, path_prefix)
    VALUES (allow_host.realm, c[1], c[2]);
END
$$;

-- remove_host(realm, pattern, path_prefix): delete a rule added by
-- allow_host (same canonicalization).
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm or rule).
CREATE FUNCTION turnpolicy.remove_host(realm text, pattern text, path_prefix text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c text[];
BEGIN
    PERFORM turnpolicy._realm_row(remove_host.realm);
    c := turnpolicy._host_canonical(remove_host.pattern, remove_host.path_prefix);
    DELETE FROM turnpolicy.host_rules AS h
     WHERE h.realm = remove_host.realm AND h.pattern = c[1]
       AND coalesce(h.path_prefix, '') = coalesce(c[2], '');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % has no host rule %',
            turnpolicy._shown(remove_host.realm), turnpolicy._shown(c[1] || coalesce(c[2], ''))
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- allow_acs_hosts(realm): the "acs" preset: the narrow Azure Communication
-- Services names the ACS Calling Web SDK reaches through a proxy.  Never
-- *.azure.com, *.azure.net, *.cloudapp.azure.com or *.microsoft.com
-- (anyone can rent names under those).  Rules already present are kept.
-- Returns how many rules were added.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm).
CREATE FUNCTION turnpolicy.allow_acs_hosts(realm text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM turnpolicy._realm_row(allow_acs_hosts.realm);
    INSERT INTO turnpolicy.host_rules (realm, pattern)
    SELECT allow_acs_hosts.realm, p
      FROM pg_catalog.unnest(ARRAY[
               '*.communication.azure.com',
               'edge.skype.com',
               'api.flightproxy.skype.com',
               'go.trouter.communication.microsoft.com',
               'ecs.communication.microsoft.com',
               'ic3.events.data.microsoft.com']) AS p
     WHERE NOT EXISTS (SELECT 1 FROM turnpolicy.host_rules AS h
                        WHERE h.realm = allow_acs_hosts.realm AND h.pattern = p
                          AND h.path_prefix IS NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

---------------------------------------------------------------------------
-- Peer rules
---------------------------------------------------------------------------

-- _peer_canonical(net): IPv4-mapped ::ffff:a.b.c.d/n (n >= 96) becomes
-- a.b.c.d/(n-96), as the C library canonicalizes it.
CREATE FUNCTION turnpolicy._peer_canonical(net cidr) RETURNS cidr
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN pg_catalog.family(net) = 6 AND net <<= '::ffff:0:0/96'::cidr THEN
            pg_catalog.set_masklen(
                pg_catalog.regexp_replace(pg_catalog.host(net), '^::ffff:', '')::inet,
                pg_catalog.masklen(net) - 96)::cidr
        ELSE net
    END
$$;

-- _peer_rule(realm, net, action): shared body of allow_peer / deny_peer.
CREATE FUNCTION turnpolicy._peer_rule(realm text, net cidr, action text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c cidr;
    other text;
BEGIN
    PERFORM turnpolicy._realm_row(_peer_rule.realm);
    PERFORM turnpolicy._need(_peer_rule.net, 'peer CIDR');
    c := turnpolicy._peer_canonical(_peer_rule.net);
    SELECT p.action INTO other FROM turnpolicy.peer_rules AS p
     WHERE p.realm = _peer_rule.realm AND p.net = c;
    IF FOUND THEN
        RAISE EXCEPTION 'realm % already has a % rule for %',
            turnpolicy._shown(_peer_rule.realm), other, c
            USING ERRCODE = 'unique_violation',
                  HINT = 'Call remove_peer() first to change it.';
    END IF;
    INSERT INTO turnpolicy.peer_rules (realm, net, action)
    VALUES (_peer_rule.realm, c, _peer_rule.action);
END
$$;

-- allow_peer(realm, cidr): let the realm's allocations relay to cidr even
-- where the built-in default deny (private, loopback, link-local, ...)
-- would refuse it.  A deny rule still wins where they overlap.
-- Caller: turnpolicy_admin.  Errors: 22004, 22P02 (not a CIDR, host bits
-- set: from the cidr type), P0002 (realm), 23505 (prefix has a rule).
CREATE FUNCTION turnpolicy.allow_peer(realm text, net cidr) RETURNS void
LANGUAGE sql AS $$
    SELECT turnpolicy._peer_rule(realm, net, 'allow')
$$;

-- deny_peer(realm, cidr): never relay to cidr from this realm.
-- Caller: turnpolicy_admin.  Errors: as allow_peer.
CREATE FUNCTION turnpolicy.deny_peer(realm text, net cidr) RETURNS void
LANGUAGE sql AS $$
    SELECT turnpolicy._peer_rule(realm, net, 'deny')
$$;

-- remove_peer(realm, cidr): delete the realm's rule for exactly this prefix.
-- Caller: turnpolicy_admin.  Errors: 22004, P0002 (realm or rule).
CREATE FUNCTION turnpolicy.remove_peer(realm text, net cidr) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM turnpolicy._realm_row(remove_peer.realm);
    PERFORM turnpolicy._need(remove_peer.net, 'peer CIDR');
    DELETE FROM turnpolicy.peer_rules AS p
     WHERE p.realm = remove_peer.realm AND p.net = turnpolicy._peer_canonical(remove_peer.net);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % has no peer rule for %',
            turnpolicy._shown(remove_peer.realm), remove_peer.net
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

---------------------------------------------------------------------------
-- JWT keys
---------------------------------------------------------------------------

-- add_jwt_key(realm, kid, alg, key_data): a JWT verification key pinned to one
-- algorithm.  kid '' = the key for tokens without "kid".  HS256/384/512:
-- the raw secret, 32..1024 bytes, never a PEM.  RS256/ES256: a PEM public
-- key (text is fine: '-----BEGIN PUBLIC KEY-----...' converts to bytea);
-- private keys are refused.  The PEM is parsed by the library when it
-- loads the realm.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023 (kid, alg, key), P0002
-- (realm), 23505 (kid exists).
CREATE FUNCTION turnpolicy.add_jwt_key(realm text, kid text, alg text, key_data bytea)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e text;
BEGIN
    PERFORM turnpolicy._realm_row(add_jwt_key.realm);
    PERFORM turnpolicy._need(add_jwt_key.kid, 'kid (use '''' for tokens without kid)');
    IF add_jwt_key.kid !~ '^[A-Za-z0-9._-]{0,32}$' THEN
        RAISE EXCEPTION 'JWT kid % may only contain up to 32 of [A-Za-z0-9._-]',
            turnpolicy._shown(add_jwt_key.kid) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF add_jwt_key.alg IS NULL OR add_jwt_key.alg NOT IN ('HS256', 'HS384', 'HS512', 'RS256', 'ES256') THEN
        RAISE EXCEPTION 'JWT algorithm % is not supported: HS256, HS384, HS512, RS256 or ES256',
            turnpolicy._shown(add_jwt_key.alg) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM turnpolicy._need(add_jwt_key.key_data, 'key_data');
    e := turnpolicy._jwt_key_error(add_jwt_key.alg, add_jwt_key.key_data);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION '%', e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM turnpolicy.jwt_keys AS j
                WHERE j.realm = add_jwt_key.realm AND j.kid = add_jwt_key.kid) THEN
        RAISE EXCEPTION 'realm % already has a JWT key with kid %',
            turnpolicy._shown(add_jwt_key.realm), turnpolicy._shown(add_jwt_key.kid)
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO turnpolicy.jwt_keys (realm, kid, alg, key_data)
    VALUES (add_jwt_key.realm, add_jwt_key.kid, add_jwt_key.alg, add_jwt_key.key_data);
END
$$;

-- remove_jwt_key(realm, kid): delete a JWT key.
-- Caller: turnpolicy_admin.  Errors: 22004, P0002 (realm or kid).
CREATE FUNCTION turnpolicy.remove_jwt_key(realm text, kid text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM turnpolicy._realm_row(remove_jwt_key.realm);
    PERFORM turnpolicy._need(remove_jwt_key.kid, 'kid');
    DELETE FROM turnpolicy.jwt_keys AS j
     WHERE j.realm = remove_jwt_key.realm AND j.kid = remove_jwt_key.kid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % has no JWT key with kid %',
            turnpolicy._shown(remove_jwt_key.realm), turnpolicy._shown(remove_jwt_key.kid)
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

---------------------------------------------------------------------------
-- Credentials
---------------------------------------------------------------------------

-- issue_credential_at(realm, user_id, requested_ttl, at): what
-- issue_credential computes, with the clock given (tests, replays).
-- Byte-identical to tp_credential_issue() for the same secret and time:
--   iat      = floor(epoch(at))       (raised to the user's revoked_before
--                                      when that is up to 1 s later, so a
--                                      credential issued right after
--                                      revoke_user is not born revoked)
--   expiry   = iat + ttl              (ttl NULL or 0 = the realm's default_ttl)
--   username = expiry:user_id:kid:iat (kid of the realm's signing secret)
--   password = base64(HMAC-SHA1(secret, username))
-- SECURITY DEFINER (reads the secret).  Caller: turnpolicy_admin only.
-- Errors: 22004; 22023 (invalid user id, ttl outside 1..max_ttl, time out
-- of range); P0002 (unknown realm or user); 55000 (realm killed, user
-- disabled, no signing secret, time before the user's revocation).
CREATE FUNCTION turnpolicy.issue_credential_at(realm text, user_id text,
                                               requested_ttl integer, at timestamptz)
RETURNS TABLE (username text, password text, ttl integer, expires_at timestamptz, urls text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    r turnpolicy.realms;
    u turnpolicy.users;
    s turnpolicy.secrets;
    t integer;
    iat bigint;
    rb bigint;
    uname text;
BEGIN
    r := turnpolicy._realm_row(issue_credential_at.realm);
    PERFORM turnpolicy._check_user_id(issue_credential_at.user_id);
    PERFORM turnpolicy._need(issue_credential_at.at, 'time');
    IF r.killed THEN
        RAISE EXCEPTION 'realm % is killed', turnpolicy._shown(r.name)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO u FROM turnpolicy.users AS x
     WHERE x.realm = r.name AND x.user_id = issue_credential_at.user_id;
    IF NOT FOUND THEN
        PERFORM turnpolicy._no_user(r.name, issue_credential_at.user_id);
    END IF;
    IF u.status <> 'active' THEN
        RAISE EXCEPTION 'user % of realm % is %', turnpolicy._shown(u.user_id),
            turnpolicy._shown(r.name), u.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    t := coalesce(nullif(issue_credential_at.requested_ttl, 0), r.default_ttl);
    IF t < 1 OR t > r.max_ttl THEN
        RAISE EXCEPTION 'ttl % is out of range for realm %: 1..% seconds (max_ttl)',
            t, turnpolicy._shown(r.name), r.max_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    iat := floor(extract(epoch FROM issue_credential_at.at))::bigint;
    IF iat <= 0 OR iat > 99999999999 THEN
        RAISE EXCEPTION 'time % is out of range', issue_credential_at.at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF u.revoked_before IS NOT NULL THEN
        rb := extract(epoch FROM u.revoked_before)::bigint;
        IF iat < rb THEN
            IF rb - extract(epoch FROM issue_credential_at.at) <= 1 THEN
                iat := rb;
            ELSE
                RAISE EXCEPTION 'user % of realm % was revoked at %, after the requested time',
                    turnpolicy._shown(u.user_id), turnpolicy._shown(r.name), u.revoked_before
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
        END IF;
    END IF;
    SELECT * INTO s FROM turnpolicy.secrets AS x
     WHERE x.realm = r.name AND x.state = 'signing';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'realm % has no signing secret', turnpolicy._shown(r.name)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call turnpolicy.rotate_secret(realm) or add_secret(..., ''signing'').';
    END IF;
    uname := (iat + t)::text || ':' || u.user_id || ':' || s.kid || ':' || iat::text;
    RETURN QUERY SELECT
        uname,
        translate(encode(turnpolicy._hmac_sha1(convert_to(uname, 'UTF8'), s.secret), 'base64'),
                  E'\n\r', ''),
        t,
        to_timestamp(iat + t),
        r.turn_urls;
END
$$;

-- issue_credential(realm, user_id, requested_ttl): a TURN credential for
-- the user, now.  Returns one row: username, password, ttl (seconds),
-- expires_at, urls (the realm's TURN URIs) - the pieces of
-- {"iceServers":[{"urls":...,"username":...,"credential":...}],"ttl":...}.
-- SECURITY DEFINER.  Caller: turnpolicy_issuer, turnpolicy_admin.
-- Errors: as issue_credential_at.
CREATE FUNCTION turnpolicy.issue_credential(realm text, user_id text,
                                            requested_ttl integer DEFAULT NULL)
RETURNS TABLE (username text, password text, ttl integer, expires_at timestamptz, urls text[])
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
    SELECT * FROM turnpolicy.issue_credential_at(realm, user_id, requested_ttl, now())
$$;

---------------------------------------------------------------------------
-- Comments (\df+ shows them)
---------------------------------------------------------------------------
COMMENT ON FUNCTION turnpolicy.create_realm(text, integer, integer, text[], text[], integer, integer, bigint, bigint, bigint, integer, text, integer)
    IS 'admin: create a realm; 23505 if it exists, 22023 for bad values';
COMMENT ON FUNCTION turnpolicy.kill_realm(text) IS 'admin: kill switch on (nothing verifies or issues)';
COMMENT ON FUNCTION turnpolicy.unkill_realm(text) IS 'admin: kill switch off';
COMMENT ON FUNCTION turnpolicy.create_user(text, text, integer, bigint, cidr) IS 'admin: add an active user';
COMMENT ON FUNCTION turnpolicy.disable_user(text, text) IS 'admin: disable a user (credentials stop verifying)';
COMMENT ON FUNCTION turnpolicy.enable_user(text, text) IS 'admin: re-enable a user';
COMMENT ON FUNCTION turnpolicy.revoke_user(text, text) IS 'admin: revoke every credential issued to the user so far';
COMMENT ON FUNCTION turnpolicy.revoke_credential(text, text) IS 'admin: revoke one credential by username';
COMMENT ON FUNCTION turnpolicy.prune_revocations(integer) IS 'admin: drop revocations of long-expired credentials';
COMMENT ON FUNCTION turnpolicy.rotate_secret(text) IS 'admin: new random signing secret, previous becomes verify-only; returns the kid';
COMMENT ON FUNCTION turnpolicy.add_secret(text, text, bytea, text) IS 'admin: import a secret';
COMMENT ON FUNCTION turnpolicy.retire_secret(text, text) IS 'admin: retire a verify-only secret (bytes erased)';
COMMENT ON FUNCTION turnpolicy.import_legacy_secret(text, bytea) IS 'admin: import a static-auth-secret for legacy usernames';
COMMENT ON FUNCTION turnpolicy.remove_legacy_secret(text) IS 'admin: drop the legacy secret';
COMMENT ON FUNCTION turnpolicy.allow_host(text, text, text) IS 'admin: allow an upstream host pattern (+ path prefix)';
COMMENT ON FUNCTION turnpolicy.remove_host(text, text, text) IS 'admin: remove an upstream host rule';
COMMENT ON FUNCTION turnpolicy.allow_acs_hosts(text) IS 'admin: the narrow Azure Communication Services preset';
COMMENT ON FUNCTION turnpolicy.allow_peer(text, cidr) IS 'admin: allow relaying to a CIDR (lifts the built-in deny)';
COMMENT ON FUNCTION turnpolicy.deny_peer(text, cidr) IS 'admin: deny relaying to a CIDR (always wins)';
COMMENT ON FUNCTION turnpolicy.remove_peer(text, cidr) IS 'admin: remove a peer rule';
COMMENT ON FUNCTION turnpolicy.add_jwt_key(text, text, text, bytea) IS 'admin: add a JWT verification key pinned to one algorithm';
COMMENT ON FUNCTION turnpolicy.remove_jwt_key(text, text) IS 'admin: remove a JWT key';
COMMENT ON FUNCTION turnpolicy.issue_credential_at(text, text, integer, timestamptz) IS 'admin: issue_credential with a given clock (tests, replays)';
COMMENT ON FUNCTION turnpolicy.issue_credential(text, text, integer) IS 'issuer: a TURN credential for a user, now';

---------------------------------------------------------------------------
-- Privileges
---------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA turnpolicy FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    turnpolicy._need(anyelement, text),
    turnpolicy._realm_row(text, boolean),
    turnpolicy._check_user_id(text),
    turnpolicy._check_kid(text),
    turnpolicy._no_user(text, text),
    turnpolicy._host_canonical(text, text),
    turnpolicy._peer_canonical(cidr),
    turnpolicy._peer_rule(text, cidr, text),
    turnpolicy.create_realm(text, integer, integer, text[], text[], integer, integer, bigint, bigint, bigint, integer, text, integer),
    turnpolicy.kill_realm(text),
    turnpolicy.unkill_realm(text),
    turnpolicy.create_user(text, text, integer, bigint, cidr),
    turnpolicy.disable_user(text, text),
    turnpolicy.enable_user(text, text),
    turnpolicy.revoke_user(text, text),
    turnpolicy.revoke_credential(text, text),
    turnpolicy.prune_revocations(integer),
    turnpolicy.rotate_secret(text),
    turnpolicy.add_secret(text, text, bytea, text),
    turnpolicy.retire_secret(text, text),
    turnpolicy.import_legacy_secret(text, bytea),
    turnpolicy.remove_legacy_secret(text),
    turnpolicy.allow_host(text, text, text),
    turnpolicy.remove_host(text, text, text),
    turnpolicy.allow_acs_hosts(text),
    turnpolicy.allow_peer(text, cidr),
    turnpolicy.deny_peer(text, cidr),
    turnpolicy.remove_peer(text, cidr),
    turnpolicy.add_jwt_key(text, text, text, bytea),
    turnpolicy.remove_jwt_key(text, text),
    turnpolicy.issue_credential_at(text, text, integer, timestamptz),
    turnpolicy.issue_credential(text, text, integer)
    TO turnpolicy_admin;

GRANT EXECUTE ON FUNCTION turnpolicy.issue_credential(text, text, integer)
    TO turnpolicy_issuer;
