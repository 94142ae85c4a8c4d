-- 006_acs_preset.sql - the "acs" host preset, derived from the ACS Calling
-- Web SDK packages themselves (issue 10), kept in one place, re-appliable.
--
-- turnpolicy.acs_preset() is THE list: every upstream the Calling SDK
-- can send through networkConfiguration.proxy.url, exact names wherever
-- the package names them exactly, never a whole *.azure.com, *.azure.net,
-- *.microsoft.com or *.skype.com.  Each row says where it came from.
-- Derived from npm @azure/communication-calling 1.46.1 (GA 1.x) and 2.0.0
-- (GA 2.x, "latest"), dist/sdk.bundle.js, whose service maps are the same
-- in both: scripts/acs-hosts.sh VERSION... lists what a newer package
-- names, to compare with this list.  Left out on purpose: the US
-- government and air-gapped clouds (Gcc*/Dod/AirGap* maps), TURN relays
-- (relay.communication.microsoft.com, worldaz.tr.skype.com, turn.azure.com,
-- eu.relay.skype.com, *.relay.teams.microsoft.com: media over TURN, not
-- HTTP through the proxy), static assets the page loads itself
-- (statics.teams.cdn.office.net, res*.cdn.office.net), PowerPoint Live
-- (*.pptservicescast.officeapps.live.com) and documentation links.
--
-- allow_acs_hosts(realm) adds the preset and records that the realm uses
-- it (turnpolicy.realm_presets); reapply_acs_preset() brings every such
-- realm up to the current list, as this migration does for realms that
-- have the preset of 002_api.sql.  A later change of the list is a new
-- migration that replaces acs_preset() and calls reapply_acs_preset().
--
-- Applied by `turnpolicy migrate` inside one transaction.

CREATE FUNCTION turnpolicy.acs_preset()
RETURNS TABLE (pattern text, source text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    VALUES
    -- the ACS resource's own endpoints (the token's resource, chat, identity)
    ('*.communication.azure.com',            '002_api.sql preset: the ACS resource endpoints <name>.communication.azure.com'),
    -- public cloud (Public_* service map of 1.46.1 and 2.0.0)
    ('ecs.communication.microsoft.com',      '1.46.1, 2.0.0: Public_EcsServer_Url (configuration, sent with "//" after the host)'),
    ('go.trouter.communication.microsoft.com',    '1.46.1, 2.0.0: Public_TrouterServiceUrl /v4/a (and its WebSocket)'),
    ('go-eu.trouter.communication.microsoft.com', '1.46.1, 2.0.0: Public_TrouterServiceUrl_EUDB'),
    ('registrar.communication.microsoft.com',     '1.46.1, 2.0.0: Public_RegistrarServiceUrl /registrar/prod/v3/registrations'),
    ('api.flightproxy.skype.com',            '1.46.1, 2.0.0: Public_ConversationServiceUrl /api/v2/cpconv'),
    ('edge.skype.com',                       '1.46.1, 2.0.0: Public_MdnTrapServiceUrl /trap, Public_MdnTrapServiceTokenUrl /trap/tokens'),
    ('api.userstore.skype.com',              '1.46.1, 2.0.0: Public_CallStore_Url /api/v1/user/'),
    ('api.cc.skype.com',                     '1.46.1, 2.0.0: URL_DEFAULTS.UPLOAD_LOG_URL /cc/v1/uploadlog/'),
    ('auth.relay.communication.microsoft.com',    '1.46.1, 2.0.0: relay token service (Service.url, tokenUrl /tokens)'),
    ('global.mtgw.prod.communication.microsoft.com', '1.46.1, 2.0.0: baseServiceUrl, acsmt/v1/useraggregatepolicysettings'),
    -- telemetry (1DS OneCollector, POSTed withCredentials)
    ('ic3.events.data.microsoft.com',        '1.46.1, 2.0.0: telemetry Public, onedsCollectorURL /OneCollector/1.0/'),
    ('eu-ic3.events.data.microsoft.com',     '1.46.1, 2.0.0: telemetry PublicEUDB'),
    ('browser.events.data.microsoft.com',    '1.46.1, 2.0.0: 1DS default collector /OneCollector/1.0/'),
    -- Teams interoperability (Enterprise_* service map: Teams users, CTE)
    ('api.flightproxy.teams.microsoft.com',  '1.46.1, 2.0.0: Enterprise_ConversationServiceUrl /api/v2/epconv'),
    ('go.trouter.teams.microsoft.com',       '1.46.1, 2.0.0: Enterprise_TrouterServiceUrl /v4/a'),
    ('go-eu.trouter.teams.microsoft.com',    '1.46.1, 2.0.0: Enterprise_TrouterServiceUrl_EUDB'),
    ('calling.teams.microsoft.com',          '1.46.1, 2.0.0: the calling configuration''s default service URL'),
    ('config.teams.microsoft.com',           '1.46.1, 2.0.0: Enterprise_Ecs_ServerUrl'),
    ('teams.microsoft.com',                  '1.46.1, 2.0.0: Enterprise_MdnTrapServiceUrl /trap, /trap/tokens'),
    ('teams.events.data.microsoft.com',      '1.46.1, 2.0.0: telemetry Enterprise'),
    ('eu-teams.events.data.microsoft.com',   '1.46.1, 2.0.0: telemetry EnterpriseEUDB')
$$;

-- Which realms use a preset, so that a new list reaches them.
CREATE TABLE turnpolicy.realm_presets (
    realm      text NOT NULL REFERENCES turnpolicy.realms (name) ON DELETE CASCADE,
    preset     text NOT NULL CONSTRAINT realm_presets_known CHECK (preset IN ('acs')),
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, preset)
);
COMMENT ON TABLE turnpolicy.realm_presets IS
    'realms that use a host preset (allow_acs_hosts); reapply_acs_preset() updates them';
CREATE TRIGGER realm_presets_audit AFTER INSERT OR UPDATE OR DELETE ON turnpolicy.realm_presets
    FOR EACH ROW EXECUTE FUNCTION turnpolicy._audit('realm', 'preset');
GRANT SELECT, INSERT, UPDATE, DELETE ON turnpolicy.realm_presets TO turnpolicy_admin;
GRANT SELECT ON turnpolicy.realm_presets TO turnpolicy_reader;

-- allow_acs_hosts(realm): add the rules of acs_preset() the realm lacks and
-- record that it uses the preset.  Returns how many rules were added.
-- Caller: turnpolicy_admin.  Errors: 22004, 22023, P0002 (realm).
CREATE OR REPLACE FUNCTION turnpolicy.allow_acs_hosts(realm text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM turnpolicy._realm_row(allow_acs_hosts.realm);
    INSERT INTO turnpolicy.host_rules (realm, pattern)
    SELECT allow_acs_hosts.realm, p.pattern
      FROM turnpolicy.acs_preset() AS p
     WHERE NOT EXISTS (SELECT 1 FROM turnpolicy.host_rules AS h
                        WHERE h.realm = allow_acs_hosts.realm
                          AND h.pattern = p.pattern AND h.path_prefix IS NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO turnpolicy.realm_presets (realm, preset)
    VALUES (allow_acs_hosts.realm, 'acs')
    ON CONFLICT ON CONSTRAINT realm_presets_pkey DO UPDATE SET applied_at = now();
    RETURN n;
END
$$;

-- reapply_acs_preset(): allow_acs_hosts for every realm that uses the
-- preset.  Returns how many rules were added in all.  Rules a realm
-- removed by hand come back: remove the realm from realm_presets first.
-- Caller: turnpolicy_admin.
CREATE FUNCTION turnpolicy.reapply_acs_preset() RETURNS integer
LANGUAGE sql AS $$
    SELECT coalesce(sum(turnpolicy.allow_acs_hosts(p.realm)), 0)::integer
      FROM turnpolicy.realm_presets AS p WHERE p.preset = 'acs'
$$;

-- Realms created with the preset of 002_api.sql (all six of its rules):
-- they use the preset; bring them up to the list above.
INSERT INTO turnpolicy.realm_presets (realm, preset)
SELECT h.realm, 'acs' FROM turnpolicy.host_rules AS h
 WHERE h.path_prefix IS NULL
   AND h.pattern IN ('*.communication.azure.com', 'edge.skype.com',
                     'api.flightproxy.skype.com',
                     'go.trouter.communication.microsoft.com',
                     'ecs.communication.microsoft.com',
                     'ic3.events.data.microsoft.com')
 GROUP BY h.realm HAVING count(DISTINCT h.pattern) = 6
ON CONFLICT DO NOTHING;
SELECT turnpolicy.reapply_acs_preset();

COMMENT ON FUNCTION turnpolicy.acs_preset()
    IS 'the "acs" host preset: host patterns and where each came from (SDK package, version, evidence)';
COMMENT ON FUNCTION turnpolicy.allow_acs_hosts(text)
    IS 'admin: the ACS Calling SDK host preset (acs_preset()); returns rules added';
COMMENT ON FUNCTION turnpolicy.reapply_acs_preset()
    IS 'admin: bring every realm that uses the acs preset up to the current list';

REVOKE ALL ON FUNCTION turnpolicy.acs_preset(), turnpolicy.reapply_acs_preset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION turnpolicy.acs_preset(), turnpolicy.reapply_acs_preset()
    TO turnpolicy_admin;
