#!/bin/bash
# store.sh - the library's policy store against a real PostgreSQL:
# snapshot load, LISTEN/NOTIFY refresh within a second, revocations, kill
# switch, SQL-issued == C-issued credentials, and PostgreSQL stopped
# mid-run (decide from the snapshot until the bound, then fail closed,
# recover when it returns), byte budgets.  The checks live in store_driver.c (cmocka,
# TAP); this script provides the server and the provisioning.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"

d=$tp_tmpdir
tp_policy_servers --no-redis
tp_pg_psql -d postgres >"$d/provision.out" 2>&1 <<'SQL'
SELECT turnpolicy.create_realm('store.test', max_ttl => 3600,
         allowed_origins => ARRAY['https://app.store.test'], max_bps => 500000,
         user_quota => 3, total_quota => 10, user_byte_budget => 100000,
         budget_period => 3600,
         turn_urls => ARRAY['turn:127.0.0.1:3478?transport=udp',
                            'turns:relay.store.test:5349?transport=tcp']);
SELECT turnpolicy.rotate_secret('store.test');
SELECT turnpolicy.create_user('store.test', 'alice');
SELECT turnpolicy.create_user('store.test', 'bob');
SELECT turnpolicy.create_user('store.test', 'bound', client_cidr => '203.0.113.0/24');
-- Byte budgets of 5000 bytes per hour (the realm's budget_period):
-- 'spent' used them 5 minutes ago, 'almost' all but one byte, 'lapsed'
-- used them too but two hours ago.
SELECT turnpolicy.create_user('store.test', u, user_byte_budget => 5000)
  FROM unnest(ARRAY['spent', 'almost', 'lapsed']) AS u;
INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, started_at,
                              ended_at, bytes_in, bytes_out)
VALUES ('seed', 's1', 'store.test', 'spent', now() - interval '10 min',
        now() - interval '5 min', 3000, 2000),
       ('seed', 's2', 'store.test', 'almost', now() - interval '10 min',
        now() - interval '5 min', 2999, 2000),
       ('seed', 's3', 'store.test', 'lapsed', now() - interval '3 hours',
        now() - interval '2 hours', 3000, 2000);
SELECT turnpolicy.allow_peer('store.test', '127.0.0.0/8');
SELECT turnpolicy.allow_host('store.test', 'edge.skype.com');
SELECT turnpolicy.add_jwt_key('store.test', 'app1', 'HS256',
         convert_to('store-test-jwt-secret-0123456789abcdef', 'UTF8'));
SELECT turnpolicy.create_realm('other.test');
SELECT turnpolicy.rotate_secret('other.test');
SELECT turnpolicy.create_user('other.test', 'dave');
-- A realm budget of 5000 bytes an hour for all users together: 'tina'
-- used 2000, a user since removed 2999 (it still counts), 'tom' none.
SELECT turnpolicy.create_realm('tenant.test', realm_byte_budget => 5000,
                               budget_period => 3600);
SELECT turnpolicy.rotate_secret('tenant.test');
SELECT turnpolicy.create_user('tenant.test', u)
  FROM unnest(ARRAY['tina', 'tom']) AS u;
INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, started_at,
                              ended_at, bytes_in, bytes_out)
VALUES ('seed', 't1', 'tenant.test', 'tina', now() - interval '10 min',
        now() - interval '5 min', 1000, 1000),
       ('seed', 't2', 'tenant.test', 'gone', now() - interval '10 min',
        now() - interval '5 min', 2000, 999);
SQL
[ $? = 0 ] && ok "realms and users provisioned with SQL" ||
    { not_ok "provisioning" "$(cat "$d/provision.out")"; exit 1; }

export TP_TEST_PG_STOP="$TP_PG_STOP_CMD" TP_TEST_PG_START="$TP_PG_START_CMD"
TP_TEST_DB="$db" CMOCKA_MESSAGE_OUTPUT=TAP "$TP_ROOT/$BUILD/itests/store_driver"
rc=$?
[ $rc = 0 ] || tp_failed=$((tp_failed + 1))
exit "$tp_failed"
