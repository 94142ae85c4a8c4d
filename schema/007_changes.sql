-- 007_changes.sql - a change log, so running stores apply what changed
-- instead of reloading everything (issue 13).
--
-- turnpolicy.changes has one row per changed policy row (and per user of
-- each INSERT into usage), written by the same triggers that NOTIFY, in
-- the changing transaction:
--   seq    increasing, in insertion order (not commit order)
--   xid    the writing transaction (xid8)
--   tab    the table: realms, users, secrets, legacy_secrets,
--          revoked_credentials, host_rules, peer_rules, jwt_keys, usage
--   realm  the row's realm (NULL after a TRUNCATE: reload everything)
--   key    users: user_id; revoked_credentials: username; usage: user_id;
--          NULL for the realm-level tables
--   bytes  usage only: bytes_in + bytes_out of the user's new records
-- An UPDATE that moves a user or credential to another key logs the old
-- key too.
--
-- How a store reads it (policy/src/store_delta.c): in one REPEATABLE READ
-- transaction it reads the rows with seq > the last seq it saw, OR whose
-- transaction was in progress at its previous read
-- (pg_snapshot_xip(pg_current_snapshot()) of that read).  A row can
-- commit after a row with a higher seq (seq is taken at insert, not at
-- commit), but the trigger runs after the policy row was written, so the
-- transaction already had its xid: a row committing "late" was in
-- progress at the previous read, and is found by its xid.  Nothing
-- committed is missed and nothing is applied twice.

-- Pruning: the triggers delete, each time the log passes a multiple of
-- 1024 rows, the rows older than one hour beyond the newest 100000.  A store that fell further behind
-- (it polls every second while connected) notices the hole (the oldest
-- row is newer than the next one it expects) and reloads in full.
--
-- NOTIFY turnpolicy keeps its payload (001_core.sql): listeners outside
-- turnpolicy see no difference.
--
-- Applied by `turnpolicy migrate` inside one transaction.

CREATE TABLE turnpolicy.changes (
    seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid   xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    tab   text NOT NULL,
    realm text,
    key   text,
    bytes bigint
);
CREATE INDEX changes_xid ON turnpolicy.changes (xid);
COMMENT ON TABLE turnpolicy.changes IS
    'one row per changed policy row and usage record (written by triggers); running stores read it by seq to apply changes incrementally';

-- _prune(lo, hi): rows lo..hi were just logged; each time the log passes
-- a multiple of 1024, delete what is older than an hour beyond the newest
-- 100000 rows.
CREATE FUNCTION turnpolicy._prune(lo bigint, hi bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
BEGIN
    IF hi / 1024 > (lo - 1) / 1024 THEN
        DELETE FROM turnpolicy.changes
         WHERE seq <= hi - 100000 AND at < pg_catalog.now() - interval '1 hour';
    END IF;
END
$$;

-- _change(tab, realm, key, bytes): log one change.
CREATE FUNCTION turnpolicy._change(p_tab text, p_realm text, p_key text,
                                   p_bytes bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    s bigint;
BEGIN
    INSERT INTO turnpolicy.changes (tab, realm, key, bytes)
    VALUES (p_tab, p_realm, p_key, p_bytes)
    RETURNING seq INTO s;
    PERFORM turnpolicy._prune(s, s);
END
$$;

-- _notify(): as in 001_core.sql (same NOTIFY payload), plus the change row.
CREATE OR REPLACE FUNCTION turnpolicy._notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    realm text;
    key text;
    old_realm text;
    old_key text;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
            RETURN NULL;
        END IF;
        -- Field references are planned per statement: each table's own
        -- columns are named only in its branch.
        IF TG_TABLE_NAME = 'realms' THEN
            IF TG_OP <> 'INSERT' THEN old_realm := OLD.name; END IF;
            IF TG_OP <> 'DELETE' THEN realm := NEW.name; END IF;
        ELSE
            IF TG_OP <> 'INSERT' THEN old_realm := OLD.realm; END IF;
            IF TG_OP <> 'DELETE' THEN realm := NEW.realm; END IF;
        END IF;
        IF TG_TABLE_NAME = 'users' THEN
            IF TG_OP <> 'INSERT' THEN old_key := OLD.user_id; END IF;
            IF TG_OP <> 'DELETE' THEN key := NEW.user_id; END IF;
        ELSIF TG_TABLE_NAME = 'revoked_credentials' THEN
            IF TG_OP <> 'INSERT' THEN old_key := OLD.username; END IF;
            IF TG_OP <> 'DELETE' THEN key := NEW.username; END IF;
        END IF;
        IF TG_OP = 'DELETE' THEN
            realm := old_realm;
            key := old_key;
        END IF;
        PERFORM turnpolicy._change(TG_TABLE_NAME, realm, key, NULL);
        IF TG_OP = 'UPDATE' AND (old_realm IS DISTINCT FROM realm OR
                                 old_key IS DISTINCT FROM key) THEN
            PERFORM turnpolicy._change(TG_TABLE_NAME, old_realm, old_key, NULL);
        END IF;
    ELSE
        PERFORM turnpolicy._change(TG_TABLE_NAME, NULL, NULL, NULL);
    END IF;
    PERFORM pg_catalog.pg_notify('turnpolicy',
        pg_catalog.format('{"table":%s,"op":%s,"realm":%s}',
                          pg_catalog.to_json(TG_TABLE_NAME::text),
                          pg_catalog.to_json(pg_catalog.lower(TG_OP)),
                          coalesce(pg_catalog.to_json(realm)::text, 'null')));
    RETURN NULL;
END
$$;

-- _usage_added(): usage records count against budgets on every node.  A
-- statement trigger: turnpolicyd writes records in batches (one INSERT of
-- up to 200), logged as one row per user of the batch, one NOTIFY.
CREATE FUNCTION turnpolicy._usage_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    WITH ins AS (
        INSERT INTO turnpolicy.changes (tab, realm, key, bytes)
        SELECT 'usage', n.realm, n.user_id, sum(n.bytes_in + n.bytes_out)
          FROM new_rows n GROUP BY n.realm, n.user_id
        RETURNING seq)
    SELECT min(seq), max(seq) INTO lo, hi FROM ins;
    IF hi IS NOT NULL THEN
        PERFORM turnpolicy._prune(lo, hi);
        PERFORM pg_catalog.pg_notify('turnpolicy',
            '{"table":"usage","op":"insert","realm":null}');
    END IF;
    RETURN NULL;
END
$$;

-- _usage_removed(): usage rows deleted or changed: budget sums must be
-- read again in full (a store seeing this loads in full).
CREATE FUNCTION turnpolicy._usage_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
BEGIN
    PERFORM turnpolicy._change('usage', NULL, NULL, NULL);
    PERFORM pg_catalog.pg_notify('turnpolicy',
        '{"table":"usage","op":"' || pg_catalog.lower(TG_OP) || '","realm":null}');
    RETURN NULL;
END
$$;

-- Budget sums read the usage of each realm's budget period only (a full
-- read, store_sync.c): by realm and end time, so their cost follows the
-- period's rows, not all history.
CREATE INDEX usage_realm_ended_at ON turnpolicy.usage (realm, ended_at);

CREATE TRIGGER usage_added AFTER INSERT ON turnpolicy.usage
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION turnpolicy._usage_added();
CREATE TRIGGER usage_removed AFTER UPDATE OR DELETE OR TRUNCATE ON turnpolicy.usage
    FOR EACH STATEMENT EXECUTE FUNCTION turnpolicy._usage_removed();

COMMENT ON FUNCTION turnpolicy._change(text, text, text, bigint)
    IS 'internal: append one row to turnpolicy.changes';

COMMENT ON FUNCTION turnpolicy._prune(bigint, bigint)
    IS 'internal: prune turnpolicy.changes now and then';

REVOKE ALL ON FUNCTION turnpolicy._change(text, text, text, bigint),
              turnpolicy._prune(bigint, bigint), turnpolicy._notify(),
              turnpolicy._usage_added(), turnpolicy._usage_removed()
    FROM PUBLIC;
GRANT SELECT ON turnpolicy.changes TO turnpolicy_reader, turnpolicy_admin;
