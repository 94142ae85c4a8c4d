#!/bin/bash
# relay.sh - the media path: packets relayed through stock coturn with
# turnpolicyd as its user database and statsdb, against the same coturn
# with static-auth-secret (run by tests/bench/run.sh, i.e. `make bench`,
# never by `make check`).
#
# turnpolicyd is asked once per session (the key) and then hears a
# traffic report every 4096 packets; nothing else of it is on the media
# path.  This measures whether that costs relaying anything.  Two stock
# coturn 4.6.1 on 127.0.0.1 (A: use-auth-secret + static-auth-secret,
# B: lt-cred-mech + redis-userdb/redis-statsdb at turnpolicyd), one
# turnutils_peer echoing on 127.0.0.1, and turnutils_uclient from the
# same package driving RELAY_CLIENTS sessions of RELAY_MSGS messages of
# 120 bytes, one every RELAY_INTERVAL_MS, through each side in turn.
# Rounds alternate between the sides; the rate is the messages echoed
# back through the relay (each crossed coturn twice) per wall-clock
# second of the client's run, medians printed.  Goal >= 0.98x.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"
. "$(dirname "$0")/../coturn.sh"

ROUNDS=${ROUNDS:-5}
RELAY_CLIENTS=${RELAY_CLIENTS:-20}
RELAY_MSGS=${RELAY_MSGS:-1500}
RELAY_INTERVAL_MS=${RELAY_INTERVAL_MS:-2}
d=$tp_tmpdir
realm=relay.test

fail() {
    echo "relay bench: $*" >&2
    exit 1
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for t in turnserver turnutils_uclient turnutils_peer; do
    command -v "$t" >/dev/null || fail "no $t (scripts/install-deps.sh)"
done

tp_policy_servers >/dev/null
tp_pg_psql -d postgres -At >"$d/provision.out" 2>&1 <<SQL || fail "provisioning: $(cat "$d/provision.out")"
SELECT turnpolicy.create_realm('$realm', max_ttl => 3600, user_quota => 0);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', 'bench');
SELECT turnpolicy.allow_peer('$realm', '127.0.0.1/32');
SQL

pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
secret="s-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
clipw="cli-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077; printf '%s\n' "$pw" >"$d/tpd.pw")
tpd_port=$(tp_free_port)
port_a=$(tp_free_port)
port_b=$(tp_free_port)
peer_port=$(tp_free_port)
tp_turnpolicyd_conf "$d/tpd.conf" "$db" "$tpd_port" "$d/tpd.pw" bench \
    "log_level = warn"
tp_bg tpd "$TP_BIN/turnpolicyd" --config "$d/tpd.conf"
tp_wait_port "$tpd_port" 15 || fail "turnpolicyd: $(tail -3 "$d/tpd.out")"
tp_coturn_conf side_a "$port_a" "$realm" use-auth-secret \
    "static-auth-secret=$secret" allow-loopback-peers cli-ip=127.0.0.1 \
    "cli-port=$(tp_free_port)" "cli-password=$clipw"
tp_coturn_conf side_b "$port_b" "$realm" \
    "$(tp_coturn_redis_auth "$tpd_port" "$pw")" allow-loopback-peers \
    cli-ip=127.0.0.1 "cli-port=$(tp_free_port)" "cli-password=$clipw"
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
tp_coturn_start side_a "$port_a" || fail "coturn A: $(tail -3 "$d/side_a.out")"
tp_coturn_start side_b "$port_b" || fail "coturn B: $(tail -3 "$d/side_b.out")"

cred_a() { # a REST credential of static-auth-secret: user|password
    local u
    u="$(($(date +%s) + 3600)):bench"
    printf '%s|%s\n' "$u" "$(printf '%s' "$u" |
        openssl dgst -sha1 -hmac "$secret" -binary | base64)"
}
cred_b() {
    tp_pg_psql -d postgres -At -c "SELECT username, password FROM turnpolicy.issue_credential('$realm', 'bench', 3600)"
}
# run PORT CRED -> "echoed seconds" of one turnutils_uclient run: the
# messages echoed back, and the wall-clock seconds of the whole run
# (allocations included; uclient's own "transmit time" is whole seconds)
run() {
    local out="$d/uclient.out" t0 t1
    t0=$(date +%s.%N)
    timeout 300 /usr/bin/turnutils_uclient -u "${2%%|*}" -w "${2#*|}" \
        -e 127.0.0.1 -r "$peer_port" -p "$1" -m "$RELAY_CLIENTS" \
        -n "$RELAY_MSGS" -l 120 -z "$RELAY_INTERVAL_MS" 127.0.0.1 \
        >"$out" 2>&1
    t1=$(date +%s.%N)
    awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        '/tot_recv_msgs=/ { sub(/.*tot_recv_msgs=/, ""); sub(/[^0-9].*/, ""); r = $0 }
         END { if (r > 0 && t > 0) print r, t }' "$out"
}

# warm-up: coturn B connects to turnpolicyd lazily
run "$port_b" "$(cred_b)" >/dev/null
: >"$d/a"
: >"$d/b"
for i in $(seq 1 "$ROUNDS"); do
    for side in a b; do
        if [ "$side" = a ]; then r=$(run "$port_a" "$(cred_a)")
        else r=$(run "$port_b" "$(cred_b)"); fi
        [ -n "$r" ] || fail "side $side, round $i: no result ($(tail -3 "$d/uclient.out"))"
        set -- $r
        awk -v r="$1" -v t="$2" 'BEGIN { printf "%.0f\n", r / t }' >>"$d/$side"
    done
done
ra=$(median <"$d/a")
rb=$(median <"$d/b")
echo "relay: $RELAY_CLIENTS sessions x $RELAY_MSGS messages (120 B, every $RELAY_INTERVAL_MS ms), $ROUNDS rounds alternating"
echo "  static-auth-secret (baseline): median $ra msgs/s echoed  [$(tr '\n' ' ' <"$d/a")]"
echo "  turnpolicyd userdb+statsdb:    median $rb msgs/s echoed  [$(tr '\n' ' ' <"$d/b")]"
awk -v a="$ra" -v b="$rb" 'BEGIN { printf "  ratio turnpolicyd / static-auth-secret: %.3fx (goal >= 0.98x)\n", b / a }'
