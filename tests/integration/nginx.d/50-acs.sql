-- 50-acs: subjects for the credentials endpoint's formats, and a realm
-- whose TURN URLs the tests change to each case the ACS native SDKs
-- cannot use.
SELECT turnpolicy.create_user('acs.test', u) FROM unnest(ARRAY['hank', 'ivy']) AS u;
SELECT turnpolicy.create_realm('native.test',
       turn_urls => ARRAY['turn:127.0.0.1:3479?transport=udp']);
SELECT turnpolicy.rotate_secret('native.test');
SELECT turnpolicy.create_user('native.test', u) FROM unnest(ARRAY['nina', 'nora']) AS u;
SELECT turnpolicy.add_jwt_key('native.test', 'app1', 'HS256',
       convert_to('nginx-test-hs256-secret-0123456789abcdef', 'UTF8'));
