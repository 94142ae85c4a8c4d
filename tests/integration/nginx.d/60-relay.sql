-- 60-relay: a user whose credentials come from the nginx credentials
-- endpoint and relay through stock coturn on turnpolicyd.
SELECT turnpolicy.create_user('acs.test', 'frank');
