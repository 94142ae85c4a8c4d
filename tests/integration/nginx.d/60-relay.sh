# 60-relay: the credentials endpoint's iceServers JSON, used as is by a
# TURN client: turnutils_uclient relays through stock coturn 4.6.1 whose
# user database is turnpolicyd (issue 4), to turnutils_peer on 127.0.0.1.
# Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154

tpd_port=$port5
turn_port=$port4
(umask 077
 printf 'tpd-%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$d/tpd.pw")
tpd_pw=$(cat "$d/tpd.pw")
tp_turnpolicyd_conf "$d/tpd.conf" "$db" "$tpd_port" "$d/tpd.pw" nginx-relay
tp_bg tpd "$TP_BIN/turnpolicyd" --config "$d/tpd.conf"
peer_port=$(tp_free_port)
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
tp_coturn_conf turn "$turn_port" acs.test \
    "$(tp_coturn_redis_auth "$tpd_port" "$tpd_pw")" no-cli allow-loopback-peers
if tp_wait_port "$tpd_port" 15 && tp_coturn_start turn "$turn_port"; then
    tok_frank=$(jwt --kid app1 --sub frank --realm acs.test --ttl 600)
    req /credentials-relay -H "Authorization: Bearer $tok_frank"
    # host port username credential, from the JSON as a client reads it
    ice=$(printf '%s' "$body" | $py -c '
import json, sys, urllib.parse
s = json.load(sys.stdin)["iceServers"][0]
u = s["urls"][0]
assert u.startswith("turn:") and u.endswith("?transport=udp"), u
host, port = u[5:].split("?")[0].rsplit(":", 1)
print(host, port, s["username"], s["credential"])' 2>&1)
    read -r ice_host ice_port ice_user ice_pass <<<"$ice"
    if [ "$code" = 200 ] && [ "$ice_port" = "$turn_port" ] &&
       timeout 30 /usr/bin/turnutils_uclient -u "$ice_user" -w "$ice_pass" \
           -e 127.0.0.1 -r "$peer_port" -p "$ice_port" -n 20 -l 120 -z 5 \
           "$ice_host" >"$d/uclient.out" 2>&1; then
        got=$(sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' "$d/uclient.out" | tail -1)
        [ "${got:-0}" -gt 0 ] &&
            ok "credentials endpoint JSON relays through coturn + turnpolicyd ($got messages echoed)" ||
            not_ok "relay with endpoint credentials" "$(tail -3 "$d/uclient.out")"
    else
        not_ok "relay with endpoint credentials" "HTTP $code $ice $(tail -3 "$d/uclient.out" 2>/dev/null)"
    fi
    # The same credential after its user is disabled: coturn asks
    # turnpolicyd, which refuses (the store saw the NOTIFY).
    psql_q -c "SELECT turnpolicy.disable_user('acs.test', 'frank')" >/dev/null
    sleep 1.5
    if ! timeout 30 /usr/bin/turnutils_uclient -u "$ice_user" -w "$ice_pass" \
            -e 127.0.0.1 -r "$peer_port" -p "$ice_port" -n 5 -l 120 -z 5 \
            "$ice_host" >"$d/uclient2.out" 2>&1 &&
       grep -q 'Cannot complete Allocation' "$d/uclient2.out"; then
        ok "... and is refused once frank is disabled"
    else
        not_ok "refused after disable" "$(tail -3 "$d/uclient2.out")"
    fi
    if grep -qF "$ice_pass" "$d/tpd.out" "$d/turn.log" "$ngx/logs/error.log" \
            "$ngx/logs/access.log" 2>/dev/null; then
        not_ok "the TURN password reaches no log"
    else
        ok "the TURN password reaches no log (nginx, turnpolicyd, coturn)"
    fi
else
    not_ok "turnpolicyd and coturn start" "$(tail -3 "$d/tpd.out" "$d/turn.out" 2>/dev/null)"
fi
kill "$tp_pid_turn" "$tp_pid_tpd" "$tp_pid_peer" 2>/dev/null
