#!/bin/bash
# turnpolicyd.sh - stock coturn 4.6.1 authenticating against turnpolicyd.
#
# Starts PostgreSQL 15, Redis 7, turnpolicyd, Debian's turnserver
# (lt-cred-mech, redis-userdb and redis-statsdb pointed at turnpolicyd)
# and turnutils_peer, all on 127.0.0.1 in a throwaway directory, stopped
# on exit whatever happens.  Real TURN allocations with turnutils_uclient
# show: an issued credential relays data; a wrong password, a disabled,
# revoked or unknown user and a '%' username are refused, with the reason
# in turnpolicyd's counters; the session reaches turnpolicy.usage with
# its bytes; killing turnpolicyd fails new allocations closed, and a
# restart restores service without touching coturn.  Every relayed packet
# goes to 127.0.0.1.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
realm=tpd.test
tpd_bin="$TP_BIN/turnpolicyd"
tp_cli="$TP_BIN/turnpolicy"

# --------------------------------------------------------------------
# Servers: PostgreSQL, Redis, schema, provisioning
# --------------------------------------------------------------------
tp_policy_servers
psql_q() { tp_pg_psql -d postgres -At "$@"; }
if psql_q >"$d/provision.out" 2>&1 <<SQL
SELECT turnpolicy.create_realm('$realm', max_ttl => 3600, user_quota => 5,
       allowed_origins => ARRAY['https://app.tpd.test']);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', u)
  FROM unnest(ARRAY['alice', 'bob', 'carol', 'erin']) AS u;
SELECT turnpolicy.create_user('$realm', 'fay', user_quota => 0);
SELECT turnpolicy.allow_peer('$realm', '$TP_PEER_IP/32');
SQL
then
    ok "realm $realm provisioned (peers: $TP_PEER_IP/32 allowed)"
else
    not_ok "provisioning" "$(cat "$d/provision.out")"
    exit 1
fi

# --------------------------------------------------------------------
# turnpolicyd
# --------------------------------------------------------------------
tpd_port=$(tp_free_port)
metrics_port=$(tp_free_port)
pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077; printf '%s\n' "$pw" >"$d/tpd.pw")
tp_turnpolicyd_conf "$d/turnpolicy.conf" "$db" "$tpd_port" "$d/tpd.pw" itest \
    "metrics = 127.0.0.1:$metrics_port" "max_connections = 64" \
    "max_request = 65536" "max_staleness = 3" "log_level = debug"

start_tpd() { # NAME
    tp_bg "$1" "$tpd_bin" --config "$d/turnpolicy.conf"
    tp_wait_port "$tpd_port" 15
}
if start_tpd tpd; then
    ok "turnpolicyd listens on 127.0.0.1:$tpd_port"
else
    not_ok "turnpolicyd starts" "$(tail -5 "$d/tpd.out")"
    exit 1
fi

rcli() { # redis-cli against turnpolicyd, authenticated
    redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning "$@"
}
counter() { # RESULT -> turnpolicyd_key_lookups_total for it
    rcli INFO | sed -n "s/^turnpolicyd_key_lookups_total{result=\"$1\"} //p"
}
metric() { # NAME -> its value
    rcli INFO | sed -n "s/^turnpolicyd_$1 //p"
}

# Configuration errors are refused before anything listens.
printf '[turnpolicyd]\nlisten = 0.0.0.0:%s\npassword_file = %s\ndatabase = x\n' \
    "$(tp_free_port)" "$d/tpd.pw" >"$d/remote.conf"
if ! timeout 10 "$tpd_bin" --config "$d/remote.conf" >"$d/remote.out" 2>&1 &&
   grep -q 'not a loopback address' "$d/remote.out"; then
    ok "a non-loopback listen address is refused without allow_remote"
else
    not_ok "a non-loopback listen address is refused" "$(cat "$d/remote.out")"
fi
printf '[turnpolicyd]\nlisten = 127.0.0.1:%s\ndatabase = x\n' \
    "$(tp_free_port)" >"$d/nopw.conf"
check_fails "password_file is required" \
    timeout 10 "$tpd_bin" --config "$d/nopw.conf"

# Protocol robustness (before coturn holds any connection).
/usr/bin/python3 "$TP_ROOT/tests/integration/turnpolicyd_proto.py" \
    "$tpd_port" "$d/tpd.pw" 65536 >"$d/proto.out" 2>&1
grep -E '^(ok|not ok) ' "$d/proto.out"
tp_failed=$((tp_failed + $(grep -c '^not ok ' "$d/proto.out")))
grep -q '^ok ' "$d/proto.out" ||
    not_ok "protocol checks ran" "$(tail -5 "$d/proto.out")"

# max_connections: one more connection is accepted and closed at once.
small_port=$(tp_free_port)
sed -e "s/^listen = .*/listen = 127.0.0.1:$small_port/" -e '/^metrics/d' \
    -e 's/^max_connections = .*/max_connections = 2/' \
    "$d/turnpolicy.conf" >"$d/small.conf"
chmod 600 "$d/small.conf"
tp_bg small "$tpd_bin" --config "$d/small.conf"
if tp_wait_port "$small_port" 15 && /usr/bin/python3 - "$small_port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
time.sleep(0.5)  # let tp_wait_port's probe connection go away
keep = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(3)
assert extra.recv(16) == b"", "third connection not closed"
for s in keep:
    s.settimeout(3)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert s.recv(64).startswith(b"-NOAUTH"), "kept connection not served"
PY
then
    ok "max_connections = 2: a third connection is closed, the two others served"
else
    not_ok "max_connections" "$(tail -3 "$d/small.out")"
fi
kill -TERM "$tp_pid_small"
wait "$tp_pid_small"
rc=$?
[ "$rc" = 0 ] && ok "SIGTERM: turnpolicyd exits 0" ||
    not_ok "SIGTERM exit status" "rc=$rc $(tail -3 "$d/small.out")"

# What coturn will read: realm options, origins, peer sets.
# What redis-benchmark and other Redis tools ask first: answered as Redis
# answers for parameters it does not have.
cfg_out=$(rcli CONFIG GET save 2>&1)
if [ -z "$cfg_out" ] || [ "$cfg_out" = "(empty array)" ]; then
    ok "CONFIG GET answers an empty list"
else
    not_ok "CONFIG GET" "$cfg_out"
fi
[ "$(rcli GET "turn/realm/$realm/user-quota")" = 5 ] &&
    ok "GET turn/realm/$realm/user-quota = 5" ||
    not_ok "GET user-quota" "$(rcli GET "turn/realm/$realm/user-quota")"
[ -z "$(rcli GET "turn/realm/$realm/max-bps")" ] &&
    ok "GET max-bps is nil when unlimited" || not_ok "GET max-bps is nil"
[ "$(rcli KEYS 'turn/origin/*')" = "turn/origin/https://app.tpd.test" ] &&
[ "$(rcli GET turn/origin/https://app.tpd.test)" = "$realm" ] &&
    ok "KEYS turn/origin/* and GET turn/origin/<o> map the origin to the realm" ||
    not_ok "origin mapping" "$(rcli KEYS 'turn/origin/*')"
[ "$(rcli KEYS 'turn/realm/*/denied-peer-ip')" = "turn/realm/$realm/denied-peer-ip" ] &&
    ok "KEYS turn/realm/*/denied-peer-ip lists the realm" ||
    not_ok "KEYS denied-peer-ip" "$(rcli KEYS 'turn/realm/*/denied-peer-ip')"
rcli SMEMBERS "turn/realm/$realm/allowed-peer-ip" >"$d/allowed"
rcli SMEMBERS "turn/realm/$realm/denied-peer-ip" >"$d/denied"
if grep -qxF "$TP_PEER_IP" "$d/allowed" &&
   grep -qx '169.254.0.0-169.254.255.255' "$d/denied" &&
   grep -q '^::ffff:' "$d/denied"; then
    ok "SMEMBERS give the realm's allowed peer ($TP_PEER_IP) and the default deny ($(wc -l <"$d/denied") ranges, IPv4-mapped forms too)"
else
    not_ok "SMEMBERS peer sets" "allowed: $(tr '\n' ' ' <"$d/allowed") denied: $(head -5 "$d/denied" | tr '\n' ' ')"
fi

# statsdb reports (as coturn sends them) drive the session table, the
# shared counters in Redis and the per-user quota (user_quota = 5).
"$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
    --realm "$realm" --user erin --format plain >"$d/erin"
eu=$(sed -n 1p "$d/erin")
status_key() { echo "turn/realm/$realm/user/$eu/allocation/00000000000000990$1/status"; }
for i in 1 2 3 4 5; do
    rcli PUBLISH "$(status_key $i)" "new lifetime=600, type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:4000$i, ssl=NONE, cipher=NONE" >/dev/null
done
sleep 0.5
zkey=$(redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning --scan --pattern '*alloc*erin*' | head -1)
live=$(redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning ZCARD "$zkey" 2>/dev/null)
[ "$(metric sessions_live)" = 5 ] && [ "$live" = 5 ] &&
    ok "5 'new' status reports: 5 live sessions, 5 in the shared Redis counter" ||
    not_ok "session table from statsdb" "live=$(metric sessions_live) redis=$live key=$zkey"
[ -z "$(rcli GET "turn/realm/$realm/user/$eu/key")" ] &&
[ "$(counter quota_reached)" -ge 1 ] 2>/dev/null &&
    ok "a user at its quota of live sessions gets no key (quota_reached=$(counter quota_reached))" ||
    not_ok "quota at key lookup" "n=$(counter quota_reached)"
rcli PUBLISH "$(status_key 1)" deleted >/dev/null
rcli PUBLISH "$(status_key 1 | sed 's#/status$#/total_traffic#')" \
    "rcvp=10, rcvb=1000, sentp=12, sentb=2000" >/dev/null
sleep 0.5
[ "$(rcli GET "turn/realm/$realm/user/$eu/key" | wc -c)" = 33 ] &&
[ "$(metric sessions_live)" = 4 ] &&
    ok "after one 'deleted' + total_traffic the user gets its key again" ||
    not_ok "key after delete" "live=$(metric sessions_live)"
for i in 2 3 4 5; do
    rcli PUBLISH "$(status_key $i)" deleted >/dev/null
done

# A user without a quota (user_quota 0: unlimited, over the realm's 5)
# in a realm without total_quota: nothing to refuse, so the acquires go
# as plain commands instead of the script - the same sets, members and
# expiry, and the releases empty them.
"$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
    --realm "$realm" --user fay --format plain >"$d/fay"
fu=$(sed -n 1p "$d/fay")
fay_key() { echo "turn/realm/$realm/user/$fu/allocation/00000000000000980$1/status"; }
rredis() { redis-cli -p "$TP_REDIS_PORT" -a "$TP_REDIS_PASSWORD" --no-auth-warning "$@"; }
errors0=$(metric alloc_errors_total)
for i in 1 2 3 4 5 6; do
    rcli PUBLISH "$(fay_key $i)" "new lifetime=600, type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:4100$i, ssl=NONE, cipher=NONE" >/dev/null
done
sleep 0.5
fzkey="turnpolicy:{$realm}:alloc:fay"
rzkey="turnpolicy:{$realm}:alloc"
fttl=$(rredis TTL "$fzkey")
rttl=$(rredis TTL "$rzkey")
fscore=$(rredis ZSCORE "$fzkey" "itest:000000000000009806")
now_s=$(date +%s)
if [ "$(rredis ZCARD "$fzkey")" = 6 ] &&
   [ "$(rredis ZSCORE "$rzkey" "itest:000000000000009806")" = "$fscore" ] &&
   [ "${fscore%.*}" -ge $((now_s + 590)) ] 2>/dev/null &&
   [ "${fttl:-0}" -gt 600 ] && [ "${rttl:-0}" -gt 600 ] &&
   [ "$(metric alloc_errors_total)" = "$errors0" ]; then
    ok "a user without quota: 6 sessions in its shared set and the realm's, scored by expiry, keys with a TTL (${fttl} s)"
else
    not_ok "counters without quota" "zcard=$(rredis ZCARD "$fzkey") score=$fscore ttl=$fttl rttl=$rttl errors=$(metric alloc_errors_total) (was $errors0)"
fi
for i in 1 2 3 4 5 6; do
    rcli PUBLISH "$(fay_key $i)" deleted >/dev/null
done
sleep 0.5
[ "$(rredis ZCARD "$fzkey")" = 0 ] &&
[ -z "$(rredis ZSCORE "$rzkey" "itest:000000000000009806")" ] &&
    ok "... and their releases empty both sets" ||
    not_ok "releases without quota" "zcard=$(rredis ZCARD "$fzkey")"

# --------------------------------------------------------------------
# Stock coturn with redis-userdb and redis-statsdb -> turnpolicyd
# --------------------------------------------------------------------
turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)
tp_coturn_conf turnserver "$turn_port" "$realm" \
    "$(tp_coturn_redis_auth "$tpd_port" "$pw")" allow-loopback-peers \
    cli-ip=127.0.0.1 "cli-port=$cli_port" \
    "cli-password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" verbose \
    "$(tp_coturn_uclient_lines)"
tp_bg peer /usr/bin/turnutils_peer -L "$TP_PEER_IP" -p "$peer_port"
if ! tp_coturn_start turnserver "$turn_port"; then
    not_ok "coturn starts" "$(tail -5 "$d/turnserver.out")"
    exit 1
fi
ok "stock coturn $(/usr/bin/turnserver --version 2>/dev/null | head -1) on 127.0.0.1:$turn_port"

relay() { # USER PASS -> $d/uclient.out, uclient's status
    timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e "$TP_PEER_IP" \
        -r "$peer_port" -p "$turn_port" -n 20 -l 120 -z 5 127.0.0.1 \
        >"$d/uclient.out" 2>&1
}
received() { # messages echoed back through the relay
    sed -n 's/.*start_mclient: tot_send_msgs=[0-9]*, tot_recv_msgs=\([0-9]*\).*/\1/p' \
        "$d/uclient.out" | tail -1
}
relays() { relay "$1" "$2" && [ "$(received)" -gt 0 ] 2>/dev/null; }
refused() { ! relay "$1" "$2" && [ -z "$(received)" ]; }
issue() { # USER -> "username password" on two lines
    "$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
        --realm "$realm" --user "$1" --format plain
}

# 1. A credential from the database relays data.
issue alice >"$d/alice" 2>"$d/issue.err"
au=$(sed -n 1p "$d/alice")
ap=$(sed -n 2p "$d/alice")
kid=$(echo "$au" | cut -d: -f3)
if relays "$au" "$ap"; then
    ok "a credential from 'turnpolicy issue --database' relays data ($(received) messages echoed)"
else
    not_ok "issued credential relays" "recv=$(received) $(tail -3 "$d/uclient.out" | tr '\n' ' ') $(cat "$d/issue.err")"
fi
[ "$(counter key_served)" -ge 1 ] 2>/dev/null &&
    ok "turnpolicyd counted the allowed lookup (ok=$(counter key_served))" ||
    not_ok "allowed lookup counted"

# 2. Wrong password: our key is right, coturn's integrity check fails.
bad="${ap%?}A"
[ "$bad" = "$ap" ] && bad="${ap%?}B"
refused "$au" "$bad" && ok "a wrong password is refused (401)" ||
    not_ok "wrong password refused" "recv=$(received)"

# 3. Disabled, revoked, unknown user, '%' in the username.
issue bob >"$d/bob"
issue carol >"$d/carol"
psql_q -c "SELECT turnpolicy.disable_user('$realm', 'bob')" >/dev/null
psql_q -c "SELECT turnpolicy.revoke_user('$realm', 'carol')" >/dev/null
sleep 2   # NOTIFY reaches the store within a second
refused "$(sed -n 1p "$d/bob")" "$(sed -n 2p "$d/bob")" &&
[ "$(counter user_disabled)" -ge 1 ] 2>/dev/null &&
    ok "a disabled user is refused (user_disabled=$(counter user_disabled))" ||
    not_ok "disabled user refused" "recv=$(received) n=$(counter user_disabled)"
refused "$(sed -n 1p "$d/carol")" "$(sed -n 2p "$d/carol")" &&
[ "$(counter revoked)" -ge 1 ] 2>/dev/null &&
    ok "a revoked user is refused (revoked=$(counter revoked))" ||
    not_ok "revoked user refused" "recv=$(received) n=$(counter revoked)"
now=$(date +%s)
refused "$((now + 600)):ghost:$kid:$now" "$ap" &&
[ "$(counter unknown_user)" -ge 1 ] 2>/dev/null &&
    ok "an unknown user is refused (unknown_user=$(counter unknown_user))" ||
    not_ok "unknown user refused" "n=$(counter unknown_user)"
# coturn passes the username through hiredis's format: "%%" arrives as "%".
refused "$((now + 600)):mal%%lory:$kid:$now" "$ap" &&
[ "$(counter bad_character)" -ge 1 ] 2>/dev/null &&
    ok "a '%' username is refused (bad_character=$(counter bad_character))" ||
    not_ok "'%' username refused" "n=$(counter bad_character)"
[ -z "$(rcli GET "turn/realm/no.such/user/$au/key")" ] &&
[ "$(counter unknown_realm)" -ge 1 ] 2>/dev/null &&
    ok "an unknown realm gets nil (unknown_realm=$(counter unknown_realm))" ||
    not_ok "unknown realm" "n=$(counter unknown_realm)"
if grep -q "deny realm=$realm user=[^ ]*:bob:[^ ]* reason=user_disabled" "$d/tpd.out"; then
    ok "denials are logged with realm, username and reason"
else
    not_ok "denial logged" "$(grep deny "$d/tpd.out" | head -3)"
fi

# 4. The finished relay reaches turnpolicy.usage with its bytes.
row=""
for _ in $(seq 1 30); do
    row=$(psql_q -c "SELECT count(*), coalesce(min(bytes_in), 0), coalesce(min(bytes_out), 0), max(client_addr::text)
                     FROM turnpolicy.usage WHERE realm = '$realm' AND user_id = 'alice' AND node = 'itest'")
    case "$row" in 0\|*|"") sleep 0.5 ;; *) break ;; esac
done
IFS='|' read -r n bin bout caddr <<<"$row"
if [ "${n:-0}" -ge 1 ] && [ "${bin:-0}" -gt 0 ] && [ "${bout:-0}" -gt 0 ]; then
    ok "usage row for alice: $n session(s), bytes_in=$bin bytes_out=$bout client=$caddr"
else
    not_ok "usage row with bytes" "row='$row' $(grep -E 'session|usage' "$d/tpd.out" | tail -5)"
fi
m=$(curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null)
if echo "$m" | grep -q '^turnpolicyd_sessions_finished_total [1-9]' &&
   echo "$m" | grep -q '^turnpolicyd_alloc_acquired_total [1-9]' &&
   echo "$m" | grep -q 'key_lookups_total{result="user_disabled"} [1-9]'; then
    ok "Prometheus metrics on 127.0.0.1:$metrics_port: sessions, counters, decisions"
else
    not_ok "metrics endpoint" "$(echo "$m" | grep -E 'sessions|alloc_acq' | tr '\n' ' ')"
fi
[ "$(curl -s --max-time 5 "http://127.0.0.1:$metrics_port/health")" = ok ] &&
    ok "/health says ok" || not_ok "/health"

# 5. turnpolicyd killed: new allocations fail (closed).  Restarted:
#    coturn reconnects by itself.
issue alice >"$d/alice2"
au2=$(sed -n 1p "$d/alice2")
ap2=$(sed -n 2p "$d/alice2")
kill -9 "$tp_pid_tpd"
wait "$tp_pid_tpd" 2>/dev/null
refused "$au2" "$ap2" && ok "with turnpolicyd down, a new allocation fails" ||
    not_ok "fail closed without turnpolicyd" "recv=$(received)"
t0=$(date +%s.%N)
start_tpd tpd2 || not_ok "turnpolicyd restarts" "$(tail -3 "$d/tpd2.out")"
back=""
for i in $(seq 1 30); do
    if relays "$au2" "$ap2"; then back=$i; break; fi
    sleep 1
done
t1=$(date +%s.%N)
if [ -n "$back" ]; then
    ok "after a restart coturn relays again without being restarted (attempt $back, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s)"
else
    not_ok "service restored after restart" "$(tail -3 "$d/uclient.out")"
fi
# Killed and restarted with no allocation in between: coturn's userdb
# connections are stale (it only notices on their next command).
kill -9 "$tp_pid_tpd2"
wait "$tp_pid_tpd2" 2>/dev/null
start_tpd tpd3 || not_ok "turnpolicyd restarts again" "$(tail -3 "$d/tpd3.out")"
issue alice >"$d/alice3"
t0=$(date +%s.%N)
back=""
for i in $(seq 1 30); do
    if relays "$(sed -n 1p "$d/alice3")" "$(sed -n 2p "$d/alice3")"; then
        back=$i; break
    fi
    sleep 1
done
t1=$(date +%s.%N)
stale=$(grep -c 'get_redis_connection: Cannot connect to redis, err=3' "$d/turnserver.log")
if [ -n "$back" ]; then
    ok "restarted with no traffic while down: relays again (attempt $back, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s; coturn saw $stale stale connection(s) in all)"
else
    not_ok "service restored after an idle restart" "$(tail -3 "$d/uclient.out")"
fi
echo "# coturn log around the restarts:"
grep -iE 'redis' "$d/turnserver.log" | tail -8 | sed 's/^/#   /'

# 6. Nothing secret in any log.
ltkey=$("$tp_cli" key --realm "$realm" --username "$au" --password "$ap" 2>/dev/null)
leak=""
for s in "$pw" "$TP_REDIS_PASSWORD" "$TP_PG_PASSWORD" "$ap" "$ap2" "$ltkey"; do
    [ -n "$s" ] && grep -qF -- "$s" "$d"/tpd*.out && leak="$leak ${s:0:4}..."
done
[ -n "$ltkey" ] && [ -z "$leak" ] &&
    ok "no password, credential or long-term key in turnpolicyd's log" ||
    not_ok "secrets in the log" "ltkey=${ltkey:0:4} leak=$leak"

# What coturn sent, for the record.
echo "# commands coturn sent (first argument shape):"
cat "$d"/tpd*.out | sed -n 's/.* cmd \([A-Za-z]*\)\(.*\)/\1\2/p' |
    sed -e 's#/user/[^/]*/#/user/<u>/#' -e 's#/allocation/[0-9]*/#/allocation/<id>/#' \
        -e "s#/realm/$realm/#/realm/<r>/#" | sort | uniq -c | sort -rn |
    head -30 | sed 's/^/#   /'

# 7. PostgreSQL down past max_staleness (3 s): key lookups fail closed,
#    the peer lists coturn polls stay what they were, /health says 503;
#    PostgreSQL back: lookups work again.
issue alice >"$d/alice4"
a4=$(sed -n 1p "$d/alice4")
denied_before=$(rcli SMEMBERS "turn/realm/$realm/denied-peer-ip" | sort | md5sum)
eval "$TP_PG_STOP_CMD"
sleep 5
[ -z "$(rcli GET "turn/realm/$realm/user/$a4/key")" ] &&
[ "$(counter policy_stale)" -ge 1 ] 2>/dev/null &&
    ok "PostgreSQL down past max_staleness: key lookups refused (policy_stale=$(counter policy_stale))" ||
    not_ok "stale policy fails closed" "n=$(counter policy_stale)"
[ "$(rcli SMEMBERS "turn/realm/$realm/denied-peer-ip" | sort | md5sum)" = "$denied_before" ] &&
[ "$(metric cached_answers_total)" -ge 1 ] 2>/dev/null &&
    ok "... while the denied-peer-ip set coturn polls stays the same (cached_answers=$(metric cached_answers_total))" ||
    not_ok "denied set kept while stale" "cached=$(metric cached_answers_total)"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$metrics_port/health")" = 503 ] &&
    ok "... and /health answers 503" || not_ok "/health 503 when stale"
eval "$TP_PG_START_CMD"
key=""
for _ in $(seq 1 40); do
    key=$(rcli GET "turn/realm/$realm/user/$a4/key")
    [ -n "$key" ] && break
    sleep 0.5
done
[ ${#key} = 32 ] && ok "PostgreSQL back: key lookups work again" ||
    not_ok "recovery after PostgreSQL restart" "$(tail -3 "$d/tpd3.out")"

# 8. SIGTERM: flush and exit 0.
kill -TERM "$tp_pid_tpd3"
rc=""
for _ in $(seq 1 100); do
    if ! kill -0 "$tp_pid_tpd3" 2>/dev/null; then
        wait "$tp_pid_tpd3"; rc=$?; break
    fi
    sleep 0.1
done
[ "$rc" = 0 ] && grep -q 'stopped' "$d/tpd3.out" &&
    ok "SIGTERM: turnpolicyd flushes and exits 0" ||
    not_ok "SIGTERM exit" "rc=$rc $(tail -3 "$d/tpd3.out")"
exit "$tp_failed"
