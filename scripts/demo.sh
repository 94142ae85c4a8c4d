#!/bin/bash
# scripts/demo.sh - `make demo`: the main job end to end on throwaway
# servers.  PostgreSQL 15, Redis 7 and a stock coturn 4.6.1 run on
# 127.0.0.1 in temporary directories and are stopped at the end, whatever
# happens.
#
# The story: migrate the schema, provision a realm and a user with SQL,
# issue a credential (in SQL and with the CLI), verify it with the
# library's store, relay real data through an unmodified coturn reading
# the same policy, revoke the user and watch the refusal.
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/pg.sh"
. "$(dirname "$0")/../tests/redis.sh"

d=$tp_tmpdir
tp="$TP_BIN/turnpolicy"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" | sed "s|$d|\$DEMO|g; s|$TP_BIN/||g"; }
run() { show "$@"; "$@"; }
sql() { # show and run SQL as the superuser
    printf '%s\n' "$1" | sed 's/^/  sql> /'
    tp_pg_psql -d postgres -c "$1"
}

say "1. Throwaway PostgreSQL 15 and Redis 7 on 127.0.0.1"
tp_pg_start || { echo "PostgreSQL did not start"; exit 1; }
tp_redis_start || { echo "Redis did not start"; exit 1; }
echo "PostgreSQL on 127.0.0.1:$TP_PG_PORT, Redis on 127.0.0.1:$TP_REDIS_PORT"
printf '127.0.0.1:%s:*:%s:%s\n' "$TP_PG_PORT" "$TP_PG_SUPERUSER" \
    "$TP_PG_PASSWORD" >"$d/pgpass"
chmod 600 "$d/pgpass"
db="host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=$TP_PG_SUPERUSER passfile=$d/pgpass"
export TURNPOLICY_DATABASE=$db

say "2. Apply the schema (forward-only migrations, recorded; safe to re-run)"
run "$tp" migrate --schema-dir "$TP_ROOT/schema" || exit 1
run "$tp" migrate --schema-dir "$TP_ROOT/schema"

turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)
relay_lo=$(( (turn_port % 100) * 100 + 50000 ))

say "3. Provision with SQL: a realm, its first secret, a user, a peer rule"
sql "SELECT turnpolicy.create_realm('demo.example', default_ttl => 600, max_ttl => 3600,
         turn_urls => ARRAY['turn:127.0.0.1:$turn_port?transport=udp']);" >/dev/null
sql "SELECT turnpolicy.rotate_secret('demo.example') AS signing_kid;"
sql "SELECT turnpolicy.create_user('demo.example', 'alice');" >/dev/null
sql "SELECT turnpolicy.allow_peer('demo.example', '127.0.0.1/32');" >/dev/null
sql "CREATE ROLE backend LOGIN IN ROLE turnpolicy_issuer;" >/dev/null

say "4. The backend (role turnpolicy_issuer, which cannot read secrets) issues a credential"
echo "  sql> SELECT username, password, ttl FROM turnpolicy.issue_credential('demo.example', 'alice', 600);  -- as backend"
IFS='|' read -r user pass ttl <<<"$(tp_pg_psql -d postgres -U backend -At -c \
    "SELECT username, password, ttl FROM turnpolicy.issue_credential('demo.example', 'alice', 600)")"
echo "  username=$user password=$pass ttl=$ttl"
tp_pg_psql -d postgres -U backend -c "SELECT secret FROM turnpolicy.secrets" 2>&1 |
    sed 's/^/  (backend reading secrets) /'
# One from two hours ago (admin-only issue_credential_at), for step 8.
IFS='|' read -r u2 p2 <<<"$(tp_pg_psql -d postgres -At -c \
    "SELECT username, password FROM turnpolicy.issue_credential_at('demo.example', 'alice', 600, now() - interval '2 hours')")"
echo "The CLI issues the JSON a browser or the ACS SDK takes as it is:"
run "$tp" issue --database "$db" --realm demo.example --user alice --ttl 300

say "5. The library's store verifies it (snapshot from PostgreSQL, decided in memory)"
run "$tp" verify --realm demo.example --username "$user" --password "$pass"

say "6. A stock coturn 4.6.1 reads the same policy (compat views) and relays real data"
cpw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
tp_pg_psql -d postgres -c "CREATE ROLE coturn LOGIN IN ROLE turnpolicy_coturn PASSWORD '$cpw'" >/dev/null
(umask 077; printf '127.0.0.1:%s:postgres:coturn:%s\n' "$TP_PG_PORT" "$cpw" >"$d/coturn.pgpass")
cat >"$d/turnserver.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$turn_port
min-port=$relay_lo
max-port=$((relay_lo + 99))
use-auth-secret
realm=demo.example
psql-userdb="host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=coturn passfile=$d/coturn.pgpass options='-c search_path=turnpolicy_coturn'"
no-tls
no-dtls
allow-loopback-peers
cli-ip=127.0.0.1
cli-port=$cli_port
cli-password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
pidfile=$d/turnserver.pid
log-file=$d/turnserver.log
simple-log
no-stdout-log
CONF
chmod 600 "$d/turnserver.conf"
tp_bg turnserver /usr/bin/turnserver -c "$d/turnserver.conf"
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
tp_wait_port "$turn_port" 10 || { echo "coturn did not start"; exit 1; }
echo "coturn on 127.0.0.1:$turn_port (psql-userdb -> turnpolicy_coturn views), echo peer on 127.0.0.1:$peer_port"
relay() {
    timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 \
        -r "$peer_port" -p "$turn_port" -n 20 -l 120 -z 5 127.0.0.1 \
        >"$d/uclient.out" 2>&1
    local rc=$?
    grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs|ERROR' "$d/uclient.out" |
        tail -1 | sed 's/^[0-9]*: : /  turnutils_uclient: /'
    return $rc
}
relay "$user" "$pass" && echo "-> relayed through coturn"

say "6b. The same coturn, unmodified, with turnpolicyd as its user database"
tpd_port=$(tp_free_port)
turn2_port=$(tp_free_port)
cli2_port=$(tp_free_port)
relay2_lo=$(( (turn2_port % 100) * 100 + 50000 ))
(umask 077
 od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/tpd.pw"
 od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/cli.pw"
 printf '%s\n' "$TP_REDIS_PASSWORD" >"$d/redis.pw")
cat >"$d/turnpolicyd.conf" <<CONF
database_url = "$db"
[turnpolicyd]
listen = 127.0.0.1:$tpd_port
password_file = $d/tpd.pw
redis = 127.0.0.1:$TP_REDIS_PORT
redis_password_file = $d/redis.pw
node = demo1
coturn_cli = 127.0.0.1:$cli2_port
coturn_cli_password_file = $d/cli.pw
log_level = info
CONF
cat >"$d/turnserver2.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$turn2_port
min-port=$relay2_lo
max-port=$((relay2_lo + 99))
lt-cred-mech
realm=demo.example
redis-userdb="ip=127.0.0.1 port=$tpd_port password=$(cat "$d/tpd.pw") connect_timeout=2"
redis-statsdb="ip=127.0.0.1 port=$tpd_port password=$(cat "$d/tpd.pw") connect_timeout=2"
no-tls
no-dtls
allow-loopback-peers
cli-ip=127.0.0.1
cli-port=$cli2_port
cli-password=$(cat "$d/cli.pw")
pidfile=$d/turnserver2.pid
log-file=$d/turnserver2.log
simple-log
no-stdout-log
CONF
chmod 600 "$d/turnpolicyd.conf" "$d/turnserver2.conf"
tp_bg turnpolicyd "$TP_BIN/turnpolicyd" --config "$d/turnpolicyd.conf"
tp_wait_port "$tpd_port" 10 || { echo "turnpolicyd did not start"; cat "$d/turnpolicyd.out"; exit 1; }
tp_bg turnserver2 /usr/bin/turnserver -c "$d/turnserver2.conf"
tp_wait_port "$turn2_port" 10 || { echo "coturn did not start"; exit 1; }
echo "turnpolicyd on 127.0.0.1:$tpd_port; coturn (lt-cred-mech + redis-userdb -> turnpolicyd) on 127.0.0.1:$turn2_port"
relay2() {
    timeout 60 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 \
        -r "$peer_port" -p "$turn2_port" -n "${3:-20}" -l 120 -z "${4:-5}" \
        127.0.0.1 >"$d/uclient2.out" 2>&1
}
relay2 "$user" "$pass" 20 5 && grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs' "$d/uclient2.out" |
    tail -1 | sed 's/^[0-9]*: : /  turnutils_uclient: /' && echo "-> relayed; turnpolicyd decided the key lookup"
echo "A long relay keeps running while we revoke (1 packet / 10 ms for 30 s)..."
relay2 "$user" "$pass" 3000 10 &
long_relay=$!
sleep 2

say "7. Revoke the user: every node refuses within a second, live media is cut"
echo "Two nodes watch the credential: A LISTENs on PostgreSQL; B reads as if"
echo "from a hot-standby replica (no NOTIFY there) and learns through Redis."
printf '%s\n' "$TP_REDIS_PASSWORD" >"$d/redis.pw"
chmod 600 "$d/redis.pw"
watch_args=(--realm demo.example --username "$user" --password "$pass" --seconds 4
            --redis "127.0.0.1:$TP_REDIS_PORT" --redis-password-file "$d/redis.pw")
"$tp" watch "${watch_args[@]}" >"$d/nodeA.out" 2>&1 &
wa=$!
"$tp" watch "${watch_args[@]}" --no-listen >"$d/nodeB.out" 2>&1 &
wb=$!
sleep 1
sql "SELECT turnpolicy.revoke_user('demo.example', 'alice');"
wait $wa $wb
echo "node A (LISTEN):"; sed 's/^/  /' "$d/nodeA.out"
echo "node B (replica reader, via Redis):"; sed 's/^/  /' "$d/nodeB.out"
run "$tp" verify --realm demo.example --username "$user" --password "$pass"
echo "(exit status $?: 1 = refused)"
sleep 1
echo "turnpolicyd cut the running relay through coturn's admin CLI:"
grep -h 'cancelled session' "$d/turnpolicyd.out" | sed 's/^/  /' | head -3
kill "$long_relay" 2>/dev/null; wait "$long_relay" 2>/dev/null
echo "A new allocation with the revoked credential (coturn asks turnpolicyd):"
relay2 "$user" "$pass" 5 5 || grep -m1 ERROR "$d/uclient2.out" | sed 's/^[0-9]*: : /  turnutils_uclient: /'
echo "(Compat mode, coturn reading the views directly, cannot revoke one user:"
echo " that is what turnpolicyd adds.)"
echo "turnpolicyd's decisions so far:"
grep -h 'deny realm=' "$d/turnpolicyd.out" | sed 's/^/  /' | tail -2

say "8. Other refusals: expired, forged, unknown realm, disabled user, private peers"
run "$tp" verify --realm demo.example --username "$u2" --password "$p2"
run "$tp" verify --realm demo.example --username "${user%%:*}:mallory:${user#*:*:}" --password "$pass"
run "$tp" verify --realm nosuch.example --username "$user" --password "$pass"
sql "SELECT turnpolicy.disable_user('demo.example', 'alice');" >/dev/null
run "$tp" verify --realm demo.example --username "$user" --password "$pass"
for a in 127.0.0.2 ::ffff:10.0.0.1 169.254.169.254 8.8.8.8; do
    run "$tp" peer-check "$a"
done

say "Done: PostgreSQL, Redis and coturn stopped; temporary files removed."
