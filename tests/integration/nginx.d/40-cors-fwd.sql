-- 40-cors-fwd: web origins per realm (no SQL function sets them after
-- create_realm yet: an admin UPDATE, which NOTIFY carries like any change),
-- and a user for the issuance rate limit.
UPDATE turnpolicy.realms SET allowed_origins = ARRAY['https://app.acs.test']
 WHERE name = 'acs.test';
UPDATE turnpolicy.realms SET allowed_origins = ARRAY['https://app.closed.test']
 WHERE name = 'closed.test';
SELECT turnpolicy.create_user('acs.test', 'erin');
