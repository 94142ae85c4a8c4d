#!/bin/bash
# coturn_rest.sh - credentials from `turnpolicy issue` work with a stock
# coturn 4.6.1 in TURN REST (use-auth-secret) mode, and tampered or expired
# ones are refused.
#
# Starts Debian's turnserver and turnutils_peer on 127.0.0.1 (free ports,
# throwaway directory, stopped on exit) and relays real data with
# turnutils_uclient: client -> coturn relay -> peer on 127.0.0.1 -> back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)
secret="ci-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

printf '%s\n' "$secret" >"$d/k1.secret"
chmod 600 "$d/k1.secret"
cat >"$d/turnpolicy.conf" <<CONF
[realm test.turnpolicy]
default_ttl = 600
max_ttl = 3600
secret.k1 = signing $d/k1.secret
urls = turn:127.0.0.1:$turn_port?transport=udp
CONF

# The same secret as coturn's static-auth-secret: compat with stock coturn.
tp_coturn_conf turnserver "$turn_port" test.turnpolicy \
    use-auth-secret "static-auth-secret=$secret" allow-loopback-peers \
    cli-ip=127.0.0.1 "cli-port=$cli_port" \
    "cli-password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    "userdb=$d/turndb"

tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
if ! tp_coturn_start turnserver "$turn_port"; then
    not_ok "coturn starts" "$(tail -5 "$d/turnserver.out")"
    exit 1
fi
ok "stock coturn started on 127.0.0.1:$turn_port"

tp=( "$TP_BIN/turnpolicy" --config "$d/turnpolicy.conf" )

# relay USER PASS -> writes $d/uclient.out, returns uclient's status
relay() {
    timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 \
        -r "$peer_port" -p "$turn_port" -n 20 -l 120 -z 5 127.0.0.1 \
        >"$d/uclient.out" 2>&1
}

received() { # total messages echoed back through the relay
    sed -n 's/.*start_mclient: tot_send_msgs=[0-9]*, tot_recv_msgs=\([0-9]*\).*/\1/p' \
        "$d/uclient.out" | tail -1
}

# 1. A fresh credential relays data both ways.
"${tp[@]}" issue --user alice --format plain >"$d/cred" 2>"$d/issue.err"
user=$(sed -n 1p "$d/cred")
pass=$(sed -n 2p "$d/cred")
case "$user" in
*:alice:k1:*) ok "turnpolicy issue returns a v1 username" ;;
*) not_ok "turnpolicy issue returns a v1 username" "got '$user' $(cat "$d/issue.err")" ;;
esac
check "turnpolicy verify accepts it" "${tp[@]}" verify --username "$user" --password "$pass"
if relay "$user" "$pass" && [ "$(received)" -gt 0 ] 2>/dev/null; then
    ok "coturn relays with the issued credential ($(received) messages echoed)"
else
    not_ok "coturn relays with the issued credential" "uclient rc=$?; recv=$(received)"
    sed 's/^/#   /' "$d/uclient.out" | tail -8
fi

# 2. The ICE JSON carries the same kind of credential and the realm's URL.
"${tp[@]}" issue --user bob --ttl 300 >"$d/ice.json"
if /usr/bin/python3 - "$d/ice.json" "$turn_port" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
s = j["iceServers"][0]
assert s["urls"] == ["turn:127.0.0.1:%s?transport=udp" % sys.argv[2]], s
assert s["username"].split(":")[1] == "bob" and len(s["credential"]) == 28
assert j["ttl"] == 300 and j["expiresOn"].endswith("Z")
PY
then ok "issue --format ice returns the RTCIceServer shape"
else not_ok "issue --format ice returns the RTCIceServer shape"; fi
user2=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["iceServers"][0]["username"])' "$d/ice.json")
pass2=$(/usr/bin/python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["iceServers"][0]["credential"])' "$d/ice.json")
if relay "$user2" "$pass2" && [ "$(received)" -gt 0 ] 2>/dev/null; then
    ok "coturn relays with the credential from the ICE JSON"
else
    not_ok "coturn relays with the credential from the ICE JSON" "recv=$(received)"
fi

# 3. Tampered password: coturn refuses the allocation, nothing is relayed.
bad="${pass%?}A"
[ "$bad" = "$pass" ] && bad="${pass%?}B"
check_fails "turnpolicy verify refuses a tampered password" \
    "${tp[@]}" verify --username "$user" --password "$bad"
if ! relay "$user" "$bad" && grep -q 'Cannot complete Allocation' "$d/uclient.out" &&
   [ "$(received)" = "" ]; then
    ok "coturn refuses a tampered password"
else
    not_ok "coturn refuses a tampered password"
fi

# 4. Tampered username (expiry pushed out, same password): refused.
exp=${user%%:*}
rest=${user#*:}
tampered="$((exp + 3000)):$rest"
check_fails "turnpolicy verify refuses a tampered expiry" \
    "${tp[@]}" verify --username "$tampered" --password "$pass"
if ! relay "$tampered" "$pass" && [ "$(received)" = "" ]; then
    ok "coturn refuses a tampered expiry"
else
    not_ok "coturn refuses a tampered expiry"
fi

# 5. Expired: issued two hours ago for ten minutes.
past=$(( $(date +%s) - 7200 ))
"${tp[@]}" issue --user carol --ttl 600 --now "$past" --format plain >"$d/old"
ouser=$(sed -n 1p "$d/old")
opass=$(sed -n 2p "$d/old")
"${tp[@]}" verify --username "$ouser" --password "$opass" 2>"$d/verify.err"
rc=$?
if [ "$rc" = 1 ] && grep -q '^invalid: expired:' "$d/verify.err"; then
    ok "turnpolicy verify says expired (exit 1)"
else
    not_ok "turnpolicy verify says expired (exit 1)" "rc=$rc $(cat "$d/verify.err")"
fi
if ! relay "$ouser" "$opass" && [ "$(received)" = "" ]; then
    ok "coturn refuses an expired credential"
else
    not_ok "coturn refuses an expired credential"
fi

# 6. Nothing secret in what the CLI printed on stderr.
if grep -rqF -- "$secret" "$d"/*.err 2>/dev/null; then
    not_ok "no secret on stderr"
else
    ok "no secret on stderr"
fi
exit "$tp_failed"
