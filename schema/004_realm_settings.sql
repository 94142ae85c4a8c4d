-- 004_realm_settings.sql - change a realm's web origins and TURN URIs after
-- create_realm (the nginx module answers CORS for allowed_origins; the
-- credentials endpoint hands out turn_urls).  The realms trigger of 001
-- sends the NOTIFY, so running stores pick the change up at once.
--
-- Applied by `turnpolicy migrate` inside one transaction.

-- set_allowed_origins(realm, origins): replace the realm's web origins
-- ("https://app.example.org", as browsers send them; '{}' = none).
-- Returns the previous list.  Caller: turnpolicy_admin.
-- Errors: 22004 (NULL), 22023 (a malformed origin), P0002 (no such realm).
CREATE FUNCTION turnpolicy.set_allowed_origins(realm text, origins text[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    r turnpolicy.realms := turnpolicy._realm_row(set_allowed_origins.realm, true);
    e text;
BEGIN
    PERFORM turnpolicy._need(set_allowed_origins.origins, 'origins');
    e := turnpolicy._origins_error(set_allowed_origins.origins);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'allowed_origins: %', e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE turnpolicy.realms AS t SET allowed_origins = set_allowed_origins.origins
     WHERE t.name = set_allowed_origins.realm;
    RETURN r.allowed_origins;
END
$$;

-- set_turn_urls(realm, urls): replace the realm's TURN URIs
-- (stun:/stuns:/turn:/turns:, in the order clients should try them).
-- Returns the previous list.  Caller: turnpolicy_admin.
-- Errors: 22004, 22023, P0002.
CREATE FUNCTION turnpolicy.set_turn_urls(realm text, urls text[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    r turnpolicy.realms := turnpolicy._realm_row(set_turn_urls.realm, true);
    e text;
BEGIN
    PERFORM turnpolicy._need(set_turn_urls.urls, 'urls');
    e := turnpolicy._urls_error(set_turn_urls.urls);
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'turn_urls: %', e USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE turnpolicy.realms AS t SET turn_urls = set_turn_urls.urls
     WHERE t.name = set_turn_urls.realm;
    RETURN r.turn_urls;
END
$$;

COMMENT ON FUNCTION turnpolicy.set_allowed_origins(text, text[])
    IS 'admin: replace the realm''s allowed web origins (CORS); returns the previous list';
COMMENT ON FUNCTION turnpolicy.set_turn_urls(text, text[])
    IS 'admin: replace the realm''s TURN URIs; returns the previous list';

REVOKE ALL ON FUNCTION turnpolicy.set_allowed_origins(text, text[]),
                       turnpolicy.set_turn_urls(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION turnpolicy.set_allowed_origins(text, text[]),
                          turnpolicy.set_turn_urls(text, text[])
    TO turnpolicy_admin;
