-- 40-cors-fwd: web origins per realm, and users for the issuance rate
-- limit and credentials via CORS.
SELECT turnpolicy.set_allowed_origins('acs.test', ARRAY['https://app.acs.test']);
SELECT turnpolicy.set_allowed_origins('closed.test', ARRAY['https://app.closed.test']);
SELECT turnpolicy.create_user('acs.test', u) FROM unnest(ARRAY['erin', 'gina']) AS u;
