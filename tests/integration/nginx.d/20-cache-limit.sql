-- 20-cache-limit: what 20-cache-limit.sh needs.  Users of acs.test for
-- the revocation of a cached token and the rate limits; realm cache.test
-- with a JWT key of its own (app3), which the test removes.
SELECT turnpolicy.create_user('acs.test', u)
  FROM unnest(ARRAY['cache-ivan', 'cache-revoked', 'limit-a', 'limit-b',
                    'limit-c', 'limit-d']) AS u;
SELECT turnpolicy.create_realm('cache.test');
SELECT turnpolicy.create_user('cache.test', 'erin');
SELECT turnpolicy.allow_host('cache.test', 'edge.skype.com:' || :'up_port');
SELECT turnpolicy.allow_peer('cache.test', '127.0.0.0/8');
SELECT turnpolicy.add_jwt_key('cache.test', 'app3', 'HS256',
       convert_to('nginx-test-hs256-cache-0123456789abcdef', 'UTF8'));
