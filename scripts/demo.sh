#!/bin/bash
# scripts/demo.sh - `make demo`: the main job end to end on throwaway
# servers.  PostgreSQL 15, Redis 7 and a stock coturn 4.6.1 run on
# 127.0.0.1 in temporary directories and are stopped at the end, whatever
# happens.
#
# The story: migrate the schema, provision a realm and a user with SQL,
# issue a credential (in SQL and with the CLI), verify it with the
# library's store, relay real data through an unmodified coturn reading
# the same policy, revoke the user and watch the refusal; then the
# signaling proxy: stock nginx with the module, a JWT, an allowed and a
# refused upstream, TURN credentials from it relaying through coturn.
. "$(dirname "$0")/../tests/lib.sh"
. "$(dirname "$0")/../tests/pg.sh"
. "$(dirname "$0")/../tests/redis.sh"
. "$(dirname "$0")/../tests/coturn.sh"

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
db=$(tp_pg_superuser_db)
export TURNPOLICY_DATABASE=$db

say "2. Apply the schema (forward-only migrations, recorded; safe to re-run)"
run "$tp" migrate --schema-dir "$TP_ROOT/schema" || exit 1
run "$tp" migrate --schema-dir "$TP_ROOT/schema"

turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)

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
coturn_db="host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=coturn passfile=$d/coturn.pgpass options='-c search_path=turnpolicy_coturn'"
tp_coturn_conf turnserver "$turn_port" demo.example \
    use-auth-secret "psql-userdb=\"$coturn_db\"" allow-loopback-peers \
    cli-ip=127.0.0.1 "cli-port=$cli_port" \
    "cli-password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
tp_coturn_start turnserver "$turn_port" || { echo "coturn did not start"; exit 1; }
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
(umask 077
 od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/tpd.pw"
 od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$d/cli.pw")
tp_turnpolicyd_conf "$d/turnpolicyd.conf" "$db" "$tpd_port" "$d/tpd.pw" demo1 \
    "coturn_cli = 127.0.0.1:$cli2_port" "coturn_cli_password_file = $d/cli.pw" \
    "log_level = info"
tp_coturn_conf turnserver2 "$turn2_port" demo.example \
    "$(tp_coturn_redis_auth "$tpd_port" "$(cat "$d/tpd.pw")")" \
    allow-loopback-peers cli-ip=127.0.0.1 "cli-port=$cli2_port" \
    "cli-password=$(cat "$d/cli.pw")"
tp_bg turnpolicyd "$TP_BIN/turnpolicyd" --config "$d/turnpolicyd.conf"
tp_wait_port "$tpd_port" 10 || { echo "turnpolicyd did not start"; cat "$d/turnpolicyd.out"; exit 1; }
tp_coturn_start turnserver2 "$turn2_port" || { echo "coturn did not start"; exit 1; }
echo "turnpolicyd on 127.0.0.1:$tpd_port; coturn (lt-cred-mech + redis-userdb -> turnpolicyd) on 127.0.0.1:$turn2_port"
relay2() { # USER PASS [COUNT [MS]]; output in $d/uclient2.out (or $out2)
    timeout 60 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 \
        -r "$peer_port" -p "$turn2_port" -n "${3:-20}" -l 120 -z "${4:-5}" \
        127.0.0.1 >"${out2:-$d/uclient2.out}" 2>&1
}
relay2 "$user" "$pass" 20 5 && grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs' "$d/uclient2.out" |
    tail -1 | sed 's/^[0-9]*: : /  turnutils_uclient: /' && echo "-> relayed; turnpolicyd decided the key lookup"
echo "A long relay keeps running while we revoke (1 packet / 10 ms for 30 s)..."
out2=$d/long-relay.out relay2 "$user" "$pass" 3000 10 &
long_relay=$!
sleep 2

say "7. Revoke the user: every node refuses within a second, live media is cut"
echo "Two nodes watch the credential: A LISTENs on PostgreSQL; B reads as if"
echo "from a hot-standby replica (no NOTIFY there) and learns through Redis."
watch_args=(--realm demo.example --username "$user" --password "$pass" --seconds 4
            --redis "127.0.0.1:$TP_REDIS_PORT" --redis-password-file "$TP_REDIS_PASSWORD_FILE")
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
# (timeout passes the signal on to turnutils_uclient)
kill $(pgrep -P "$long_relay") "$long_relay" 2>/dev/null
wait "$long_relay" 2>/dev/null
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

say "9. The signaling proxy: stock nginx 1.22 with ngx_http_turnpolicy_module"
echo "A fake ACS upstream (TLS, our own CA) answers for edge.skype.com; a local"
echo "dnsmasq resolves every name to 127.0.0.1. Nothing leaves this machine."
up_port=$(tp_free_port)
dns_port=$(tp_free_port)
ngx_port=$(tp_free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=demo-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
for n in upstream proxy; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$d/$n.key" \
        -out "$d/$n.csr" 2>/dev/null
    printf 'subjectAltName=DNS:edge.skype.com,DNS:proxy.demo\n' >"$d/$n.ext"
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null
done
tp_bg dnsmasq dnsmasq --keep-in-foreground --port="$dns_port" \
    --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --address=/#/127.0.0.1 --pid-file="$d/dnsmasq.pid"
tp_bg upstream /usr/bin/python3 "$TP_ROOT/tests/integration/nginx_upstream.py" \
    "$up_port" "$d/upstream.pem" "$d/upstream.key" "$d/upstream.log"
jwt_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(umask 077; printf '%s\n' "$jwt_secret" >"$d/app.jwtkey")
sql "SELECT turnpolicy.create_user('demo.example', 'bob');
SELECT turnpolicy.allow_host('demo.example', 'edge.skype.com:$up_port');
SELECT turnpolicy.allow_peer('demo.example', '127.0.0.0/8');" >/dev/null
echo "  sql> SELECT turnpolicy.add_jwt_key('demo.example', 'app', 'HS256', <the app's JWT secret>);"
tp_pg_psql -d postgres -At -c "SELECT turnpolicy.add_jwt_key('demo.example', 'app', 'HS256', convert_to('$jwt_secret', 'UTF8'))" >/dev/null
cat >"$d/proxy.conf" <<CONF
database_url = "$db"
jwt_issuer = https://backend.demo
jwt_key.app = HS256 $d/app.jwtkey
[nginx]
redis = 127.0.0.1:$TP_REDIS_PORT
redis_password_file = $TP_REDIS_PASSWORD_FILE
CONF
chmod 600 "$d/proxy.conf"
mkdir -p "$d/nginx/logs" "$d/nginx/tmp"
so="$TP_ROOT/$BUILD/nginx/ngx_http_turnpolicy_module.so"
cat >"$d/nginx/nginx.conf" <<CONF
load_module $so;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
daemon off;
pid $d/nginx/nginx.pid;
error_log $d/nginx/logs/error.log notice;
events { worker_connections 64; }
http {
    turnpolicy_config $d/proxy.conf;
    resolver 127.0.0.1:$dns_port valid=60s ipv6=off;
    client_body_temp_path $d/nginx/tmp/body;
    proxy_temp_path $d/nginx/tmp/proxy;
    fastcgi_temp_path $d/nginx/tmp/fastcgi;
    uwsgi_temp_path $d/nginx/tmp/uwsgi;
    scgi_temp_path $d/nginx/tmp/scgi;
    access_log $d/nginx/logs/access.log;
    server {
        listen 127.0.0.1:$ngx_port ssl;
        ssl_certificate $d/proxy.pem;
        ssl_certificate_key $d/proxy.key;
        location /t/ {
            turnpolicy on;
            proxy_pass https://\$turnpolicy_upstream_addr\$turnpolicy_path\$is_args\$args;
            proxy_set_header Host \$turnpolicy_upstream;
            proxy_ssl_server_name on;
            proxy_ssl_name \$turnpolicy_upstream_host;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $d/ca.pem;
        }
        location = /credentials {
            turnpolicy_token header:Authorization;
            turnpolicy_credentials on;
            turnpolicy_turn_urls turn:127.0.0.1:$turn2_port?transport=udp;
        }
    }
}
CONF
tp_bg nginx /usr/sbin/nginx -p "$d/nginx" -c "$d/nginx/nginx.conf"
tp_wait_port "$ngx_port" 10 && tp_wait_port "$up_port" 10 ||
    { echo "nginx or the upstream did not start"; tail -3 "$d/nginx.out" "$d/upstream.out"; exit 1; }
for _ in $(seq 50); do
    grep -q 'policy store loaded' "$d/nginx/logs/error.log" && break
    sleep 0.1
done
echo "The app's backend signs a JWT for bob (HS256, kid app):"
token=$("$tp" --config "$d/proxy.conf" jwt issue --kid app --sub bob --realm demo.example --ttl 600)
echo "  ${token:0:24}... (the SDK gets proxy.url = https://proxy.demo:$ngx_port/t/<token>)"
p() { # PATH [curl args]
    local path=$1
    shift
    printf '$ curl https://proxy.demo:%s%s\n' "$ngx_port" "${path//$token/<token>}"
    curl -sS --cacert "$d/ca.pem" --resolve "proxy.demo:$ngx_port:127.0.0.1" \
        -w '  -> HTTP %{http_code}\n' "$@" "https://proxy.demo:$ngx_port$path" |
        sed 's/^{/  {/'
}
p "/t/$token/edge.skype.com:$up_port/api/v1/chat?x=1"
p "/t/$token/evil.com:$up_port/steal"
p "/t/$token/169.254.169.254/latest/meta-data"
p "/t/not.a.token/edge.skype.com:$up_port/x"
echo "TURN credentials for bob, in the iceServers shape, used as they are by a TURN client:"
p /credentials -H "Authorization: Bearer $token" -o "$d/ice.json"
sed 's/"credential":"[^"]*"/"credential":"<secret>"/; s/^/  /' "$d/ice.json"
echo
read -r iu ip <<<"$(/usr/bin/python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["iceServers"][0]
print(s["username"], s["credential"])' "$d/ice.json")"
relay2 "$iu" "$ip" 20 5 && grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs' "$d/uclient2.out" |
    tail -1 | sed 's/^[0-9]*: : /  turnutils_uclient: /' &&
    echo "-> relayed through coturn + turnpolicyd with the endpoint's credential"
sql "SELECT turnpolicy.revoke_user('demo.example', 'bob');" >/dev/null
echo "  sql> SELECT turnpolicy.revoke_user('demo.example', 'bob');"
sleep 0.5
p "/t/$token/edge.skype.com:$up_port/api/v1/chat"
echo "(no nginx reload: the worker's policy store heard the NOTIFY)"

say "Done: PostgreSQL, Redis, coturn and nginx stopped; temporary files removed."
