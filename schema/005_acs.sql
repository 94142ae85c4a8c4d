-- 005_acs.sql - the ACS Calling SDKs, web and native (issue 10).
--
-- * A realm's TURN URLs are held to the rules browsers apply to
--   RTCIceServer.urls when they are provisioned (create_realm,
--   set_turn_urls, any INSERT or UPDATE OF turn_urls): a URL a browser
--   rejects would break every call of the realm.
-- * The ACS native SDKs (Android, iOS, Windows) take one IceServer: one
--   "turn:<IPv4>" URL, udpPort, a realm, username and password, UDP only.
--   acs_native_turn() picks that URL from a realm's list;
--   issue_credential_json(..., 'acs-native') issues in that shape and
--   refuses (55000) a realm whose URLs cannot satisfy it.
--
-- The rules are libturnpolicy's (policy/src/turnurl.c: tp_turn_url_parse,
-- tp_native_turn), written again in SQL because the database issues
-- credentials itself; tests/data/turn_urls.cases holds both to the same
-- cases (tests/integration/acs_native.sh).  Change one, change both.
--
-- Applied by `turnpolicy migrate` inside one transaction.

-- turn_url_error(url): NULL if url passes the web rules, else why not:
--   ("turn" | "turns" | "stun") ":" HOST [":" PORT] ["?transport=" T]
--   HOST  IPv4 (four decimal octets 0..255, no leading zero), an IPv6
--         address in brackets, or an LDH DNS name (labels 1..63 bytes, at
--         most 253 bytes, last label not all digits)
--   PORT  1..65535, no leading zero;  T  udp, tcp or tls (not on stun:)
--   at most 255 bytes.
CREATE FUNCTION turnpolicy.turn_url_error(url text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
DECLARE
    ipv4 constant text := '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
                          '(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$';
    label constant text := '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
    m text[];
    hostport text;
    host text;
    rest text;
    a inet;
BEGIN
    IF url IS NULL THEN
        RETURN 'a URL is NULL';
    END IF;
    IF position('@' IN url) > 0 THEN
        -- userinfo may be a password typed in the wrong place: not shown
        RETURN 'a TURN URL takes no user or password ("@"): give them as credentials';
    END IF;
    IF octet_length(url) > 255 THEN
        RETURN 'URL ' || turnpolicy._shown(url) || ' is longer than 255 bytes';
    END IF;
    m := regexp_match(url, '^(turn|turns|stun):([^?]*)(\?.*)?$');
    IF m IS NULL THEN
        RETURN 'URL ' || turnpolicy._shown(url)
               || ': the scheme must be turn:, turns: or stun:';
    END IF;
    hostport := m[2];
    IF left(hostport, 1) = '[' THEN
        IF position(']' IN hostport) = 0 THEN
            RETURN 'URL ' || turnpolicy._shown(url) || ': malformed IPv6 address';
        END IF;
        host := substr(hostport, 2, position(']' IN hostport) - 2);
        rest := substr(hostport, position(']' IN hostport) + 1);
        IF host !~ '^[0-9A-Fa-f:.]+$' OR octet_length(host) >= 64 THEN
            RETURN 'URL ' || turnpolicy._shown(url) || ': malformed IPv6 address';
        END IF;
        BEGIN
            a := host::inet;
        EXCEPTION WHEN invalid_text_representation THEN
            a := NULL;
        END;
        IF a IS NULL OR family(a) <> 6 OR masklen(a) <> 128 THEN
            RETURN 'URL ' || turnpolicy._shown(url) || ': malformed IPv6 address';
        END IF;
    ELSE
        host := split_part(hostport, ':', 1);
        rest := substr(hostport, octet_length(host) + 1);
        IF host !~ ipv4
           AND (octet_length(host) NOT BETWEEN 1 AND 253
                OR host !~ ('^(' || label || '\.)*' || label || '$')
                OR host ~ '(^|\.)[0-9]+$')
        THEN
            RETURN 'URL ' || turnpolicy._shown(url) || ': the host must be an '
                   'IPv4 address, an IPv6 address in brackets or a DNS name';
        END IF;
    END IF;
    IF rest <> '' AND (rest !~ '^:[1-9][0-9]{0,4}$'
                       OR substr(rest, 2)::integer > 65535) THEN
        RETURN 'URL ' || turnpolicy._shown(url) || ': bad port';
    END IF;
    IF m[3] IS NOT NULL THEN
        IF m[1] = 'stun' THEN
            RETURN 'URL ' || turnpolicy._shown(url) || ': a stun: URL takes no query';
        END IF;
        IF m[3] NOT IN ('?transport=udp', '?transport=tcp', '?transport=tls') THEN
            RETURN 'URL ' || turnpolicy._shown(url)
                   || ': the query must be ?transport=udp, tcp or tls';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- acs_native_turn(urls): the URL the ACS native SDKs can use: the first of
-- urls that passes turn_url_error with scheme turn:, an IPv4 host and no
-- transport or transport=udp, as url = 'turn:<IPv4>' and udp_port (its
-- port, else 3478).  Both NULL when none fits.
CREATE FUNCTION turnpolicy.acs_native_turn(urls text[], OUT url text, OUT udp_port integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
DECLARE
    u text;
    m text[];
BEGIN
    FOREACH u IN ARRAY coalesce(urls, '{}'::text[]) LOOP
        CONTINUE WHEN u IS NULL OR turnpolicy.turn_url_error(u) IS NOT NULL;
        -- valid, digits and dots only: an IPv4 address (names never end
        -- in a numeric label)
        m := regexp_match(u, '^turn:([0-9.]+)(:([0-9]+))?(\?transport=udp)?$');
        IF m IS NOT NULL THEN
            url := 'turn:' || m[1];
            udp_port := coalesce(m[3]::integer, 3478);
            RETURN;
        END IF;
    END LOOP;
END
$$;

-- _acs_native_why(urls): why acs_native_turn found nothing, in the
-- library's words.
CREATE FUNCTION turnpolicy._acs_native_why(urls text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    WITH t AS (SELECT u FROM unnest(coalesce(urls, '{}'::text[])) AS u
                WHERE u ~ '^turns?:' AND turnpolicy.turn_url_error(u) IS NULL)
    SELECT CASE
        WHEN coalesce(cardinality(urls), 0) = 0 THEN 'the realm has no TURN URL'
        WHEN NOT EXISTS (SELECT 1 FROM t) THEN 'no turn: or turns: URL'
        WHEN NOT EXISTS (SELECT 1 FROM t WHERE u !~ '^turns?:\[') THEN 'IPv6 only'
        WHEN NOT EXISTS (SELECT 1 FROM t WHERE u !~ '\?transport=(tcp|tls)$')
            THEN 'TCP/TLS only'
        ELSE 'no turn: URL with an IPv4 address and UDP'
    END
$$;

-- Every URL of a realm passes the web rules when it is written.  (A
-- trigger, not a stricter CHECK: a realm provisioned before this
-- migration with a URL browsers reject can still be killed, renamed or
-- have its quotas changed; set_turn_urls fixes it.)
CREATE FUNCTION turnpolicy._realms_turn_urls_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    e text;
BEGIN
    SELECT turnpolicy.turn_url_error(u) INTO e
      FROM unnest(NEW.turn_urls) WITH ORDINALITY AS x(u, i)
     WHERE turnpolicy.turn_url_error(u) IS NOT NULL
     ORDER BY i LIMIT 1;
    IF e IS NOT NULL THEN
        RAISE EXCEPTION 'turn_urls: %', e USING ERRCODE = 'invalid_parameter_value',
            HINT = 'turn:, turns: or stun: host[:port][?transport=udp|tcp|tls], as browsers accept them.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER realms_turn_urls_check BEFORE INSERT OR UPDATE OF turn_urls
    ON turnpolicy.realms
    FOR EACH ROW EXECUTE FUNCTION turnpolicy._realms_turn_urls_check();

-- Realms provisioned earlier with a URL browsers reject: say so once.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT name, turnpolicy.turn_url_error(u) AS e
               FROM turnpolicy.realms, unnest(turn_urls) AS u
              WHERE turnpolicy.turn_url_error(u) IS NOT NULL LOOP
        RAISE WARNING 'realm %: %; fix it with turnpolicy.set_turn_urls',
            turnpolicy._shown(r.name), r.e;
    END LOOP;
END
$$;

-- issue_credential_json_at(realm, user_id, requested_ttl, format, at): a
-- credential as issue_credential_at issues it, as JSON in the shape
-- format names:
--   'ice'         {"iceServers":[{"urls","username","credential"}],"ttl","expiresOn"}
--   'rest'        {"username","password","ttl","uris"}
--   'acs-native'  {"iceServers":[{"urls":["turn:<IPv4>"],"udpPort","realm",
--                  "username","password"}],"ttl","expiresOn"}
-- Errors: those of issue_credential_at; 22023 an unknown format; 55000
-- (before anything is issued) a realm whose URLs the native SDKs cannot use.
CREATE FUNCTION turnpolicy.issue_credential_json_at(realm text, user_id text,
        requested_ttl integer, format text, at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
DECLARE
    r turnpolicy.realms;
    c record;
    n record;
    expires text;
BEGIN
    PERFORM turnpolicy._need(issue_credential_json_at.format, 'format');
    IF issue_credential_json_at.format NOT IN ('ice', 'rest', 'acs-native') THEN
        RAISE EXCEPTION 'unknown format %: ice, rest or acs-native',
            turnpolicy._shown(issue_credential_json_at.format)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    r := turnpolicy._realm_row(issue_credential_json_at.realm);
    IF issue_credential_json_at.format = 'acs-native' THEN
        SELECT * INTO n FROM turnpolicy.acs_native_turn(r.turn_urls);
        IF n.url IS NULL THEN
            RAISE EXCEPTION 'realm % has no TURN URL the ACS native SDKs accept (%): they need turn:<IPv4>[:port] over UDP',
                turnpolicy._shown(r.name), turnpolicy._acs_native_why(r.turn_urls)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Add one with turnpolicy.set_turn_urls.';
        END IF;
    END IF;
    SELECT * INTO c FROM turnpolicy.issue_credential_at(r.name,
        issue_credential_json_at.user_id, issue_credential_json_at.requested_ttl,
        issue_credential_json_at.at);
    expires := to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    IF issue_credential_json_at.format = 'rest' THEN
        RETURN jsonb_build_object('username', c.username, 'password', c.password,
                                  'ttl', c.ttl, 'uris', to_jsonb(c.urls));
    ELSIF issue_credential_json_at.format = 'acs-native' THEN
        RETURN jsonb_build_object('iceServers', jsonb_build_array(jsonb_build_object(
                   'urls', jsonb_build_array(n.url), 'udpPort', n.udp_port,
                   'realm', r.name, 'username', c.username, 'password', c.password)),
               'ttl', c.ttl, 'expiresOn', expires);
    END IF;
    RETURN jsonb_build_object('iceServers', jsonb_build_array(jsonb_build_object(
               'urls', to_jsonb(c.urls), 'username', c.username,
               'credential', c.password)),
           'ttl', c.ttl, 'expiresOn', expires);
END
$$;

-- issue_credential_json(realm, user_id, requested_ttl, format): the same,
-- now.  Caller: turnpolicy_issuer (a backend), turnpolicy_admin.
CREATE FUNCTION turnpolicy.issue_credential_json(realm text, user_id text,
        requested_ttl integer DEFAULT NULL, format text DEFAULT 'ice')
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, turnpolicy AS $$
    SELECT turnpolicy.issue_credential_json_at(realm, user_id, requested_ttl, format, now())
$$;

COMMENT ON FUNCTION turnpolicy.turn_url_error(text)
    IS 'NULL if the URL passes the rules browsers apply to RTCIceServer.urls, else why not';
COMMENT ON FUNCTION turnpolicy.acs_native_turn(text[])
    IS 'the turn:<IPv4> URL and udpPort the ACS native SDKs can use (NULLs: none)';
COMMENT ON FUNCTION turnpolicy.issue_credential_json_at(text, text, integer, text, timestamptz)
    IS 'admin: issue_credential_json with a given clock (tests, replays)';
COMMENT ON FUNCTION turnpolicy.issue_credential_json(text, text, integer, text)
    IS 'issuer: a TURN credential as JSON: ice, rest or acs-native (ACS native SDKs)';

REVOKE ALL ON FUNCTION turnpolicy.turn_url_error(text),
                       turnpolicy.acs_native_turn(text[]),
                       turnpolicy._acs_native_why(text[]),
                       turnpolicy._realms_turn_urls_check(),
                       turnpolicy.issue_credential_json_at(text, text, integer, text, timestamptz),
                       turnpolicy.issue_credential_json(text, text, integer, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION turnpolicy.turn_url_error(text),
                          turnpolicy.acs_native_turn(text[]),
                          turnpolicy._acs_native_why(text[]),
                          turnpolicy.issue_credential_json_at(text, text, integer, text, timestamptz),
                          turnpolicy.issue_credential_json(text, text, integer, text)
    TO turnpolicy_admin;
GRANT EXECUTE ON FUNCTION turnpolicy.issue_credential_json(text, text, integer, text)
    TO turnpolicy_issuer;
