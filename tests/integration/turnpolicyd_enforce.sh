#!/bin/bash
# turnpolicyd_enforce.sh - turnpolicyd cutting live sessions of stock
# coturn 4.6.1 through its admin CLI.
#
# Starts PostgreSQL 15, Redis 7, two turnpolicyd nodes sharing them and
# two Debian turnservers (one per node, each with cli-password), all on
# 127.0.0.1, stopped on exit whatever happens.  Real clients (aioice
# relay-only ICE between two agents, aioice TURN allocations; see
# turnpolicyd_ice.py) show that a live session is cut when its user is
# revoked (traffic stops within 1 s of the commit), its credential
# expires past expiry_grace, its user is disabled, its credential
# revoked, its realm killed, its client address is outside the user's
# binding, its byte budget is spent, or the user's allocation quota is
# held on the other node (shared Redis counter).  Every relayed packet
# goes to 127.0.0.1; the 10.9.9.0/24 binding only names a network.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
realm=enf.test
tpd_bin="$TP_BIN/turnpolicyd"
tp_cli="$TP_BIN/turnpolicy"
ice_py="$TP_ROOT/tests/integration/turnpolicyd_ice.py"
grace=2
t_start=$(date +%s)

# --------------------------------------------------------------------
# PostgreSQL, Redis, schema, provisioning
# --------------------------------------------------------------------
tp_policy_servers
psql_q() { tp_pg_psql -d postgres -At "$@"; }
if psql_q >"$d/provision.out" 2>&1 <<SQL
SELECT turnpolicy.create_realm('$realm', max_ttl => 3600, budget_period => 3600);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', u)
  FROM unnest(ARRAY['peer', 'ana', 'exp', 'dis', 'rc', 'kil']) AS u;
SELECT turnpolicy.create_user('$realm', 'cidr', client_cidr => '10.9.9.0/24');
SELECT turnpolicy.create_user('$realm', 'bud', user_byte_budget => 200000);
SELECT turnpolicy.create_user('$realm', 'quinn', user_quota => 1);
SELECT turnpolicy.allow_peer('$realm', '$TP_PEER_IP/32');
SQL
then
    ok "PostgreSQL, Redis, realm $realm provisioned (peers: $TP_PEER_IP/32)"
else
    not_ok "provisioning" "$(cat "$d/provision.out")"
    exit 1
fi
issue() { # USER [TTL] -> "username|password"
    psql_q -c "SELECT username, password FROM turnpolicy.issue_credential('$realm', '$1', ${2:-600})"
}

# --------------------------------------------------------------------
# Two nodes: turnpolicyd N + coturn N (N = 1, 2)
# --------------------------------------------------------------------
pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
clipw="cli-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077
 printf '%s\n' "$pw" >"$d/tpd.pw"
 printf '%s\n' "$clipw" >"$d/cli.pw"
 printf 'not-%s\n' "$clipw" >"$d/wrong.pw")

tpd_conf() { # N CLI_PORT [PASSWORD_FILE] -> $d/tpdN.conf
    tp_turnpolicyd_conf "$d/tpd$1.conf" "$db" "$(eval echo "\$tpd_port$1")" \
        "$d/tpd.pw" "enf$1" "max_staleness = 5" "expiry_grace = $grace" \
        "coturn_cli = 127.0.0.1:$2" \
        "coturn_cli_password_file = ${3:-$d/cli.pw}" "log_level = debug"
}
coturn_conf() { # N -> $d/turnserverN.conf, on turnpolicyd N
    local tport cport tpd
    tport=$(eval echo "\$turn_port$1")
    cport=$(eval echo "\$cli_port$1")
    tpd=$(eval echo "\$tpd_port$1")
    tp_coturn_conf "turnserver$1" "$tport" "$realm" \
        "$(tp_coturn_redis_auth "$tpd" "$pw")" allow-loopback-peers \
        cli-ip=127.0.0.1 "cli-port=$cport" "cli-password=$clipw"
}
for n in 1 2; do
    eval "tpd_port$n=$(tp_free_port) turn_port$n=$(tp_free_port) cli_port$n=$(tp_free_port)"
done
tpd_conf 1 "$cli_port1"
tpd_conf 2 "$cli_port2"
coturn_conf 1
coturn_conf 2

# Node 1: coturn first.  Node 2: turnpolicyd first, so its CLI is
# unreachable for a while (logged once, retried with backoff).
tp_coturn_start turnserver1 "$cli_port1" || not_ok "coturn 1 CLI listens" "$(tail -3 "$d/turnserver1.out")"
tp_bg tpd1 "$tpd_bin" --config "$d/tpd1.conf"
tp_bg tpd2 "$tpd_bin" --config "$d/tpd2.conf"
tp_wait_port "$tpd_port1" 15 && tp_wait_port "$tpd_port2" 15 ||
    { not_ok "turnpolicyd 1 and 2 start" "$(tail -3 "$d/tpd1.out" "$d/tpd2.out")"; exit 1; }
sleep 1
tp_coturn_start turnserver2 "$turn_port2" && tp_wait_port "$turn_port1" 10 ||
    { not_ok "coturn 1 and 2 start" "$(tail -3 "$d/turnserver2.out")"; exit 1; }

rcli() { # N ARGS: redis-cli against turnpolicyd N
    local n=$1
    shift
    redis-cli -h 127.0.0.1 -p "$(eval echo "\$tpd_port$n")" -a "$pw" \
        --no-auth-warning "$@"
}
cancelled() { # N REASON -> turnpolicyd_sessions_cancelled_total{reason}
    rcli "$1" INFO | sed -n "s/^turnpolicyd_sessions_cancelled_total{reason=\"$2\"} //p"
}
metric() { # N NAME
    rcli "$1" INFO | sed -n "s/^turnpolicyd_$2 //p"
}
wait_metric() { # N NAME VALUE SECONDS: until NAME >= VALUE
    local i
    for i in $(seq 1 $(($4 * 10))); do
        [ "$(metric "$1" "$2")" -ge "$3" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
ps_user() { # N USERNAME -> coturn N's session count for it
    /usr/bin/python3 "$ice_py" cli --cli "127.0.0.1:$(eval echo "\$cli_port$1")" \
        --password-file "$d/cli.pw" --command "ps $2" |
        sed -n 's/.*Total sessions: *//p'
}

# Warm-up: one allocation through each coturn (its Redis-protocol
# connections to turnpolicyd come up lazily), retried until it works.
for n in 1 2; do
    w=$(issue peer)
    for i in $(seq 1 10); do
        /usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$(eval echo "\$turn_port$n")" \
            --user "${w%%|*}" --password "${w#*|}" --seconds 0.1 >"$d/warm$n.out" 2>&1 && break
        sleep 0.5
    done
    [ "$i" = 1 ] || echo "# coturn $n: warm-up allocation needed $i attempts: $(head -1 "$d/warm$n.out")"
done
if wait_metric 1 coturn_cli_up 1 10 && wait_metric 2 coturn_cli_up 1 15; then
    ok "both turnpolicyd log in to their coturn's CLI"
else
    not_ok "CLI login" "$(grep -i cli "$d/tpd1.out" "$d/tpd2.out" | tail -5)"
fi
n_warn=$(grep -c "coturn CLI 127.0.0.1:$cli_port2: .*retrying" "$d/tpd2.out")
if [ "$n_warn" = 1 ] && grep -q "coturn CLI 127.0.0.1:$cli_port2: connected again" "$d/tpd2.out" &&
   [ "$(metric 2 coturn_cli_failures_total)" -ge 2 ] 2>/dev/null; then
    ok "node 2's CLI unreachable at start: logged once, retried ($(metric 2 coturn_cli_failures_total) failures), then connected"
else
    not_ok "unreachable CLI logged once" "warn lines=$n_warn $(grep -i 'coturn CLI' "$d/tpd2.out" | head -3)"
fi

# --------------------------------------------------------------------
# Live sessions cut on node 1
# --------------------------------------------------------------------
ice_run() { # NAME A_CRED B_CRED SECONDS [ARGS]: ICE in the background
    local name=$1 a=$2 b=$3 secs=$4
    shift 4
    /usr/bin/python3 "$ice_py" ice --turn "127.0.0.1:$turn_port1" \
        --user "${a%%|*}" --password "${a#*|}" \
        --user2 "${b%%|*}" --password2 "${b#*|}" --seconds "$secs" "$@" \
        >"$d/$name.ice" 2>&1 &
    ice_pid=$!
}
wait_connected() { # NAME
    local i
    for i in $(seq 1 100); do
        grep -q '^connected' "$d/$1.ice" && return 0
        grep -q '^refused' "$d/$1.ice" && return 1
        sleep 0.1
    done
    return 1
}
ice_field() { # NAME EXPR (r = the result dict) -> value
    sed -n 's/^result //p' "$d/$1.ice" |
        /usr/bin/python3 -c "import json, sys; r = json.load(sys.stdin); print($2)"
}
last_rx() { # NAME -> Unix time of the last datagram received either way
    ice_field "$1" "max(r['a_to_b']['last'] or 0, r['b_to_a']['last'] or 0)"
}
secs() { awk "BEGIN { printf \"%.3f\", ($1) }"; }

# cut_test USER SQL REASON WHAT: a running ICE pair (USER <-> peer),
# SQL run after 1 s of traffic (@U@ = USER's username); its traffic
# must stop within 1 s of the commit, and the cut be counted as REASON.
cut_test() {
    local user=$1 sql=$2 reason=$3 what=$4 a b t0 last n before lat
    a=$(issue "$user")
    b=$(issue peer)
    before=$(cancelled 1 "$reason")
    ice_run "$user" "$a" "$b" 2.5
    if ! wait_connected "$user"; then
        not_ok "$what: ICE connects" "$(tail -3 "$d/$user.ice")"
        wait "$ice_pid"
        return
    fi
    sleep 1
    t0=$(date +%s.%N)
    psql_q -c "${sql//@U@/${a%%|*}}" >/dev/null
    wait "$ice_pid"
    last=$(last_rx "$user")
    n=$(ice_field "$user" "r['a_to_b']['n']")
    lat=$(secs "$last - $t0")
    if [ -n "$last" ] && [ "$(secs "$lat < 1.0")" = 1.000 ] &&
       [ "$n" -gt 20 ] && [ "$(cancelled 1 "$reason")" -gt "$before" ] &&
       [ "$(ps_user 1 "${a%%|*}")" = 0 ]; then
        ok "$what: traffic stopped $lat s after the commit ($n datagrams before; cancelled{reason=\"$reason\"}=$(cancelled 1 "$reason"); gone from coturn's ps)"
    else
        not_ok "$what" "last-commit=$lat n=$n cancelled=$(cancelled 1 "$reason") ps=$(ps_user 1 "${a%%|*}") $(tail -2 "$d/$user.ice")"
    fi
    echo "$lat" >>"$d/latencies"
}

# An expiring credential (ttl 5 s) runs alongside: coturn would keep
# refreshing it; turnpolicyd cuts it expiry_grace (2 s) after expiry.
ttl=5
ea=$(issue exp "$ttl")
eb=$(issue peer)
ice_run exp "$ea" "$eb" $((ttl + grace + 2))
exp_pid=$ice_pid

cut_test ana "SELECT turnpolicy.revoke_user('$realm', 'ana')" revoked \
    "revoking the user of a running relay (coturn $TP_COTURN_VERSION; aioice, a datagram every 10 ms each way)"
cut_test dis "SELECT turnpolicy.disable_user('$realm', 'dis')" user_disabled \
    "disabling the user of a running relay"

wait "$exp_pid"
iat=$(echo "${ea%%|*}" | cut -d: -f4)
last=$(last_rx exp)
first=$(ice_field exp "r['a_to_b']['first'] or 0")
cut_at=$(secs "${last:-0} - $iat")
if grep -q '^connected' "$d/exp.ice" &&
   [ "$(secs "($cut_at >= $ttl + $grace - 0.5) && ($cut_at <= $ttl + $grace + 1)")" = 1.000 ] &&
   [ "$(cancelled 1 expired)" -ge 1 ] 2>/dev/null; then
    ok "a credential with ttl $ttl s: relayed from +$(secs "$first - $iat") s, cut at +$cut_at s after issue (expiry_grace $grace s; cancelled{reason=\"expired\"}=$(cancelled 1 expired))"
else
    not_ok "expired credential cut after the grace" "cut_at=$cut_at first=$first expired=$(cancelled 1 expired) $(tail -2 "$d/exp.ice")"
fi

cut_test rc "SELECT turnpolicy.revoke_credential('$realm', '@U@')" revoked \
    "revoking the credential of a running relay"
if grep -q "cancelled session [0-9]*: realm=$realm user=[0-9]*:ana:[^ ]* reason=revoked client=127.0.0.1" "$d/tpd1.out"; then
    ok "one log line per cancellation: realm, user, reason, client"
else
    not_ok "cancellation logged" "$(grep cancelled "$d/tpd1.out" | head -3)"
fi

# A user bound to 10.9.9.0/24 allocating from 127.0.0.1: coturn grants
# the allocation (the key lookup has no address), the enforcer cuts it
# as soon as coturn reports the client address.
ca=$(issue cidr)
/usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$turn_port1" \
    --user "${ca%%|*}" --password "${ca#*|}" --seconds 2 >"$d/cidr.alloc" 2>&1 &
cidr_pid=$!
t0=$(date +%s.%N)
got=""
for _ in $(seq 1 30); do
    [ "$(cancelled 1 client_address_denied)" -ge 1 ] 2>/dev/null && { got=$(date +%s.%N); break; }
    sleep 0.1
done
if grep -q '^allocated' "$d/cidr.alloc" && [ -n "$got" ] &&
   [ "$(ps_user 1 "${ca%%|*}")" = 0 ]; then
    ok "a client outside the user's client_cidr (10.9.9.0/24) is cut $(secs "$got - $t0") s after allocating"
else
    not_ok "client_cidr binding cuts" "$(cat "$d/cidr.alloc") n=$(cancelled 1 client_address_denied)"
fi
wait "$cidr_pid"

# Byte budget: 200000 bytes for 'bud'; 1000-byte datagrams every 1 ms
# each way.  coturn reports traffic every 4096 packets.
ba=$(issue bud)
bb=$(issue peer)
ice_run bud "$ba" "$bb" 3 --interval-ms 1 --size 1000
if wait_connected bud; then
    t0=$(date +%s.%N)
    wait "$ice_pid"
    n=$(ice_field bud "r['a_to_b']['n']")
    stop=$(secs "$(last_rx bud) - $t0")
    if [ "$(cancelled 1 byte_budget)" -ge 1 ] 2>/dev/null &&
       [ "$(secs "$stop < 2.5")" = 1.000 ] &&
       [ "$(ps_user 1 "${ba%%|*}")" = 0 ]; then
        ok "byte budget (200000 bytes) spent: cut after $n datagrams of 1000 bytes, $stop s into a 3 s stream"
    else
        not_ok "byte budget cut" "n=$n stop=$stop budget=$(cancelled 1 byte_budget)"
    fi
else
    not_ok "budget: ICE connects" "$(tail -2 "$d/bud.ice")"
    wait "$ice_pid"
fi

# --------------------------------------------------------------------
# Per-user allocation quota across two nodes sharing Redis
# --------------------------------------------------------------------
alloc_bg() { # NAME NODE CRED SECONDS
    /usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$(eval echo "\$turn_port$2")" \
        --user "${3%%|*}" --password "${3#*|}" --seconds "$4" >"$d/$1.alloc" 2>&1 &
}
wait_alloc() { # NAME
    local i
    for i in $(seq 1 50); do
        grep -qE '^(allocated|refused)' "$d/$1.alloc" && break
        sleep 0.1
    done
    sed -n 1p "$d/$1.alloc"
}
q1=$(issue quinn)
q2=$(issue quinn)
q3=$(issue quinn)
alloc_bg q1 1 "$q1" 3
q1_pid=$!
r1=$(wait_alloc q1)
wait_metric 1 alloc_acquired_total 1 3
alloc_bg q2 2 "$q2" 3
q2_pid=$!
r2=$(wait_alloc q2)
if [ "${r1%% *}" = allocated ] && [ "${r2%% *}" = allocated ] &&
   wait_metric 2 cancel_commands_total 1 3 &&
   [ "$(cancelled 2 quota_reached)" -ge 1 ] 2>/dev/null &&
   [ "$(ps_user 2 "${q2%%|*}")" = 0 ] && [ "$(ps_user 1 "${q1%%|*}")" = 1 ]; then
    ok "user_quota 1, one allocation live on node 1: node 2's allocation is cut (over_quota=$(metric 2 alloc_over_quota_total), cancelled{reason=\"quota_reached\"}=$(cancelled 2 quota_reached)); node 1's lives on"
else
    not_ok "quota across two nodes" "r1=$r1 r2=$r2 over=$(metric 2 alloc_over_quota_total) cut=$(cancelled 2 quota_reached) ps2=$(ps_user 2 "${q2%%|*}") ps1=$(ps_user 1 "${q1%%|*}")"
fi
alloc_bg q3 1 "$q3" 1
r3=$(wait_alloc q3)
[ "${r3%% *}" = refused ] &&
    ok "... and a second allocation on node 1 is refused at the key lookup ($r3)" ||
    not_ok "second allocation on node 1 refused" "$r3"
wait "$q2_pid" "$q1_pid"

# --------------------------------------------------------------------
# Configuration and CLI failures
# --------------------------------------------------------------------
tpd_port3=$(tp_free_port)
tpd_conf 3 "$cli_port1" "$d/wrong.pw"
tp_bg tpd3 "$tpd_bin" --config "$d/tpd3.conf"
tp_wait_port "$tpd_port3" 15
if wait_metric 3 coturn_cli_auth_failed_total 1 5 &&
   [ "$(grep -c 'error: coturn CLI .* was refused' "$d/tpd3.out")" = 1 ] &&
   [ "$(metric 3 coturn_cli_up)" = 0 ]; then
    ok "a wrong CLI password: logged once as an error, counted, retried with backoff"
else
    not_ok "wrong CLI password" "$(grep -i cli "$d/tpd3.out" | head -3)"
fi
kill "$tp_pid_tpd3"
# A CLI that refuses connections (coturn >= 4.10 without `cli`): after
# 10 s an error that names the fix, /health 503, turnpolicyd_enforcer_up 0.
tpd_port4=$(tp_free_port)
metrics4=$(tp_free_port)
tpd_conf 4 "$(tp_free_port)"
echo "metrics = 127.0.0.1:$metrics4" >>"$d/tpd4.conf"
tp_bg tpd4 "$tpd_bin" --config "$d/tpd4.conf"
tp_wait_port "$tpd_port4" 15
for _ in $(seq 1 150); do
    grep -q 'error: the session enforcer reaches 0 of 1' "$d/tpd4.out" && break
    sleep 0.1
done
health4=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$metrics4/health")
if grep -q 'error: the session enforcer reaches 0 of 1 .*`cli` in turnserver.conf' "$d/tpd4.out" &&
   [ "${health4##* }" = 503 ] && [ "${health4#enforcer down: 0 of 1}" != "$health4" ] &&
   [ "$(metric 4 enforcer_up)" = 0 ] && [ "$(metric 1 enforcer_up)" = 1 ]; then
    ok "an unreachable coturn CLI: an error naming \`cli\` after 10 s, /health 503, enforcer_up 0 (1 where it is reachable)"
else
    not_ok "unreachable CLI is loud" "health=$health4 up4=$(metric 4 enforcer_up) up1=$(metric 1 enforcer_up) $(grep -i 'cli' "$d/tpd4.out" | head -3)"
fi
kill "$tp_pid_tpd4"
sed -e "s/^coturn_cli = .*/coturn_cli = 10.0.0.1:5766/" "$d/tpd1.conf" >"$d/remote.conf"
chmod 600 "$d/remote.conf"
if ! timeout 10 "$tpd_bin" --config "$d/remote.conf" >"$d/remote.out" 2>&1 &&
   grep -q 'coturn_cli: 10.0.0.1:5766 is not a loopback address' "$d/remote.out"; then
    ok "a non-loopback coturn_cli is refused (the CLI password travels in clear)"
else
    not_ok "non-loopback coturn_cli refused" "$(cat "$d/remote.out")"
fi
sed -e '/^coturn_cli_password_file/d' "$d/tpd1.conf" >"$d/nopw.conf"
chmod 600 "$d/nopw.conf"
check_fails "coturn_cli without coturn_cli_password_file is refused" \
    timeout 10 "$tpd_bin" --config "$d/nopw.conf"

# --------------------------------------------------------------------
# Kill switch: one ICE pair across both nodes, both sides cut
# --------------------------------------------------------------------
ka=$(issue kil)
kb=$(issue peer)
ice_run kill "$ka" "$kb" 2.5 --turn2 "127.0.0.1:$turn_port2"
if wait_connected kill; then
    sleep 1
    t0=$(date +%s.%N)
    psql_q -c "SELECT turnpolicy.kill_realm('$realm')" >/dev/null
    wait "$ice_pid"
    lat=$(secs "$(last_rx kill) - $t0")
    echo "$lat" >>"$d/latencies"
    if [ "$(secs "$lat < 1.0")" = 1.000 ] &&
       wait_metric 1 cancel_commands_total 1 1 &&
       [ "$(cancelled 1 realm_killed)" -ge 1 ] 2>/dev/null &&
       [ "$(cancelled 2 realm_killed)" -ge 1 ] 2>/dev/null; then
        ok "killing the realm cuts a relay spanning both nodes: traffic stopped $lat s after the commit (realm_killed: node 1 $(cancelled 1 realm_killed), node 2 $(cancelled 2 realm_killed))"
    else
        not_ok "kill switch cuts both nodes" "lat=$lat n1=$(cancelled 1 realm_killed) n2=$(cancelled 2 realm_killed)"
    fi
else
    not_ok "kill: ICE across two nodes connects" "$(tail -2 "$d/kill.ice")"
    wait "$ice_pid"
fi

# --------------------------------------------------------------------
# Nothing secret in the logs
# --------------------------------------------------------------------
leak=""
for s in "$pw" "$clipw" "not-$clipw" "$TP_REDIS_PASSWORD" "$TP_PG_PASSWORD" \
         "${ea#*|}" "${ka#*|}"; do
    grep -qF -- "$s" "$d"/tpd*.out && leak="$leak ${s:0:4}..."
done
[ -z "$leak" ] && ok "no CLI password, AUTH password or credential in turnpolicyd's logs" ||
    not_ok "secrets in the log" "$leak"
# SIGTERM with CLI connections and finished cancellations: exit 0 (under
# ASan, LeakSanitizer runs then).
for n in 1 2; do
    kill -TERM "$(eval echo "\$tp_pid_tpd$n")"
done
rc1=""
rc2=""
for _ in $(seq 1 100); do
    [ -z "$rc1" ] && ! kill -0 "$tp_pid_tpd1" 2>/dev/null && { wait "$tp_pid_tpd1"; rc1=$?; }
    [ -z "$rc2" ] && ! kill -0 "$tp_pid_tpd2" 2>/dev/null && { wait "$tp_pid_tpd2"; rc2=$?; }
    [ -n "$rc1" ] && [ -n "$rc2" ] && break
    sleep 0.1
done
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && grep -q stopped "$d/tpd1.out" &&
    ok "SIGTERM: both turnpolicyd exit 0" ||
    not_ok "SIGTERM exit" "rc1=$rc1 rc2=$rc2 $(tail -3 "$d/tpd1.out")"

echo "# cut latencies (commit -> last datagram), s: $(tr '\n' ' ' <"$d/latencies")"
echo "# $(basename "$0") took $(( $(date +%s) - t_start )) s"
exit "$tp_failed"
