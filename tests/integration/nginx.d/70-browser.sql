-- 70-browser: a realm provisioned as the README says for the ACS Calling
-- SDK (the acs preset, an HS256 key), loopback peers allowed (every name
-- resolves to 127.0.0.1 here); its web origin is set by 70-browser.sh
-- (the page's port is chosen then).  vera gets relay credentials in
-- acs.test.
SELECT turnpolicy.create_realm('browser.test');
SELECT turnpolicy.rotate_secret('browser.test');
SELECT turnpolicy.create_user('browser.test', u) FROM unnest(ARRAY['walt', 'rita']) AS u;
SELECT turnpolicy.allow_acs_hosts('browser.test');
SELECT turnpolicy.allow_peer('browser.test', '127.0.0.0/8');
SELECT turnpolicy.add_jwt_key('browser.test', 'app1', 'HS256',
       convert_to('nginx-test-hs256-secret-0123456789abcdef', 'UTF8'));
SELECT turnpolicy.create_user('acs.test', 'vera');
