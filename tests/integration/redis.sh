#!/bin/bash
# redis.sh - the store's Redis side (fan-out, shared quota, rate limit,
# Redis failure) against real PostgreSQL 15 and Redis 7 on 127.0.0.1.
# The checks live in redis_driver.c (cmocka, TAP).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"

d=$tp_tmpdir
tp_policy_servers
tp_pg_psql -d postgres >"$d/provision.out" 2>&1 <<'SQL'
SELECT turnpolicy.create_realm('redis.test', max_ttl => 3600, user_quota => 2);
SELECT turnpolicy.rotate_secret('redis.test');
SELECT turnpolicy.create_user('redis.test', u) FROM unnest(ARRAY['alice', 'bob', 'carol', 'erin', 'frank']) AS u;
SELECT turnpolicy.create_user('redis.test', 'dave', user_quota => 1);
SELECT turnpolicy.create_realm('small.test', total_quota => 2);
SELECT turnpolicy.create_user('small.test', u) FROM unnest(ARRAY['x', 'y', 'z']) AS u;
SQL
[ $? = 0 ] && ok "provisioned with SQL" ||
    { not_ok "provisioning" "$(cat "$d/provision.out")"; exit 1; }

TP_TEST_DB="$db" TP_TEST_REDIS_PORT="$TP_REDIS_PORT" \
TP_TEST_REDIS_PASSWORD="$TP_REDIS_PASSWORD" \
TP_TEST_REDIS_STOP="$TP_REDIS_STOP_CMD" TP_TEST_REDIS_START="$TP_REDIS_START_CMD" \
CMOCKA_MESSAGE_OUTPUT=TAP "$TP_ROOT/$BUILD/itests/redis_driver" 2>"$d/driver.err"
rc=$?
[ $rc = 0 ] || { tp_failed=$((tp_failed + 1)); sed 's/^/# /' "$d/driver.err" | tail -20; }
# Every key the store wrote carries a TTL.
nottl=$(redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning --scan --pattern 'turnpolicy:*' |
    while read -r k; do
        t=$(redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning ttl "$k")
        [ "$t" -lt 0 ] && echo "$k"
    done)
nkeys=$(redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning --scan --pattern 'turnpolicy:*' | wc -l)
[ -z "$nottl" ] && [ "$nkeys" -gt 0 ] && ok "all $nkeys Redis keys have a TTL" || not_ok "keys without TTL" "$nottl"
exit "$tp_failed"
