#!/bin/bash
# scripts/demo.sh - `make demo`: the main job end to end on throwaway
# servers.  Everything runs on 127.0.0.1 in a temporary directory and is
# stopped at the end, whatever happens.
#
# Today (offline mode): a realm with a rotating secret is configured, a
# backend issues a TURN credential, turnpolicy verifies it, a stock coturn
# (Debian's, TURN REST mode with the same secret) relays real data with
# it, and tampered / expired credentials, private peer addresses, hosts
# off the allow-list and forged tokens are refused.
. "$(dirname "$0")/../tests/lib.sh"

d=$tp_tmpdir
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$d|\$DEMO|g; s|$TP_BIN/||g"; "$@"; }

turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)
relay_lo=$(( (turn_port % 100) * 100 + 50000 ))

say "1. A realm: two secrets (k2 signs, k1 still verifies), allow-lists, a JWT key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/k1.secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/k2.secret"
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/jwt.key"
chmod 600 "$d"/*.secret "$d/jwt.key"
cat >"$d/turnpolicy.conf" <<CONF
jwt_issuer = https://backend.example
jwt_audience = turnpolicy
jwt_realm_claim = tenant
jwt_key.app1 = HS256 $d/jwt.key

[realm demo.example]
default_ttl = 600
max_ttl = 3600
secret.k1 = verify-only $d/k1.secret
secret.k2 = signing $d/k2.secret
urls = turn:127.0.0.1:$turn_port?transport=udp turn:127.0.0.1:$turn_port?transport=tcp
hosts = edge.skype.com *.communication.azure.com api.flightproxy.skype.com
peer_allow = 127.0.0.1/32
CONF
sed "s|$d|\$DEMO|g" "$d/turnpolicy.conf"
export TURNPOLICY_CONFIG=$d/turnpolicy.conf

say "2. The backend issues a credential (the shape RTCPeerConnection and the ACS SDK take)"
echo '$ turnpolicy issue --user alice --ttl 600'
"$TP_BIN/turnpolicy" issue --user alice --ttl 600 >"$d/ice.json" || exit 1
cat "$d/ice.json"
user=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["iceServers"][0]["username"])' "$d/ice.json")
pass=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["iceServers"][0]["credential"])' "$d/ice.json")

say "3. turnpolicy verifies it and derives coturn's long-term key"
run "$TP_BIN/turnpolicy" verify --username "$user" --password "$pass"
run "$TP_BIN/turnpolicy" key --username "$user"

say "4. A stock coturn 4.6.1 (use-auth-secret, same secret) relays data with it"
cat >"$d/turnserver.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$turn_port
min-port=$relay_lo
max-port=$((relay_lo + 99))
use-auth-secret
static-auth-secret=$(cat "$d/k2.secret")
realm=demo.example
no-tls
no-dtls
allow-loopback-peers
cli-ip=127.0.0.1
cli-port=$cli_port
cli-password=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
userdb=$d/turndb
pidfile=$d/turnserver.pid
log-file=$d/turnserver.log
simple-log
no-stdout-log
CONF
chmod 600 "$d/turnserver.conf"
tp_bg turnserver /usr/bin/turnserver -c "$d/turnserver.conf"
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
tp_wait_port "$turn_port" 10 || { echo "coturn did not start"; exit 1; }
echo "coturn listening on 127.0.0.1:$turn_port, echo peer on 127.0.0.1:$peer_port"
relay() {
    timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 \
        -r "$peer_port" -p "$turn_port" -n 20 -l 120 -z 5 127.0.0.1 \
        >"$d/uclient.out" 2>&1
    local rc=$?
    grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs|ERROR' "$d/uclient.out" |
        tail -1 | sed 's/^[0-9]*: : /   turnutils_uclient: /'
    return $rc
}
relay "$user" "$pass" && echo "-> relayed"

say "5. Tampered and expired credentials are refused by turnpolicy and by coturn"
bad="${pass%?}A"; [ "$bad" = "$pass" ] && bad="${pass%?}B"
run "$TP_BIN/turnpolicy" verify --username "$user" --password "$bad"
relay "$user" "$bad" || echo "-> refused by coturn"
"$TP_BIN/turnpolicy" issue --user carol --ttl 600 --now $(( $(date +%s) - 7200 )) --format plain >"$d/old"
run "$TP_BIN/turnpolicy" verify --username "$(sed -n 1p "$d/old")" --password "$(sed -n 2p "$d/old")"
relay "$(sed -n 1p "$d/old")" "$(sed -n 2p "$d/old")" || echo "-> refused by coturn"

say "6. Peer addresses: private ranges denied by default, the realm's own rule wins"
for a in 127.0.0.1 ::ffff:127.0.0.2 10.0.0.1 169.254.169.254 64:ff9b::a00:1 8.8.8.8; do
    run "$TP_BIN/turnpolicy" peer-check --realm demo.example "$a"
done

say "7. Signaling hosts: exact names and *.suffix, default deny"
for h in edge.skype.com myres.communication.azure.com evil.com x.cloudapp.azure.com 127.0.0.1; do
    run "$TP_BIN/turnpolicy" host-check "$h"
done

say "8. JWTs: pinned algorithm, issuer, audience, expiry"
tok=$("$TP_BIN/turnpolicy" jwt issue --kid app1 --sub alice --realm demo.example --ttl 300)
echo "token: ${tok:0:24}... (${#tok} bytes)"
run "$TP_BIN/turnpolicy" jwt verify "$tok"
none="$(printf '{"alg":"none","kid":"app1"}' | base64 -w0 | tr '+/' '-_' | tr -d '=').${tok#*.}"
none="${none%.*}."
echo "same claims with alg:none and no signature:"
run "$TP_BIN/turnpolicy" jwt verify "$none"

say "Done: all servers stopped, $d removed."
