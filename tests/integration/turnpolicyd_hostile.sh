#!/bin/bash
# turnpolicyd_hostile.sh - clients that do not know the password cannot
# change what any user may do, on one node or across two sharing Redis.
#
# Starts PostgreSQL, Redis, two turnpolicyd nodes sharing them and two
# Debian turnservers (one per node, with their admin CLI), all on
# 127.0.0.1, stopped on exit whatever happens.  coturn runs with
# max-allocate-timeout=2, so that a session which never authenticated
# is closed (and reported to its statsdb - turnpolicyd) after 2 s
# instead of coturn's default 60 s: the same reports, sooner.
#
# Then, against user dave (quota 2 live allocations, byte budget 1 MB):
#   - the reproduction of the issue: forged usernames "<exp>:dave:k1:1"
#     with password "x", on both nodes, and the reports coturn sends
#     for those sessions when it closes them;
#   - wrong passwords for dave's real, valid username; expired and
#     revoked credentials of dave with their right passwords;
#   - statsdb reports of session ids coturn never reported as
#     allocations (traffic, total_traffic of 50 MB), sent straight to
#     turnpolicyd;
#   - clients killed without Refresh(0) (allocations left for coturn to
#     expire);
# and checks that afterwards dave allocates up to its quota and relays,
# that turnpolicyd's sessions_live equals coturn's `ps` on both nodes,
# that nothing was charged to dave's budget, that no `cs` was sent for
# a session coturn does not have, that the metrics say what happened
# (key_served vs auth_failed_or_abandoned) and that turnpolicyd's log
# grew by a bounded number of lines.
# shellcheck disable=SC2154  # tp_tmpdir comes from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
realm=hostile.test
tpd_bin="$TP_BIN/turnpolicyd"
tp_cli="$TP_BIN/turnpolicy"
ice_py="$TP_ROOT/tests/integration/turnpolicyd_ice.py"
bad_py="$TP_ROOT/tests/integration/turnpolicyd_hostile.py"

tp_policy_servers
psql_q() { tp_pg_psql -d postgres -At "$@"; }
if psql_q >"$d/provision.out" 2>&1 <<SQL
SELECT turnpolicy.create_realm('$realm', max_ttl => 3600, budget_period => 3600);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', 'dave', user_quota => 2,
                              user_byte_budget => 1000000);
SELECT turnpolicy.create_user('$realm', 'peer');
SELECT turnpolicy.allow_peer('$realm', '127.0.0.1/32');
SQL
then
    ok "PostgreSQL, Redis, realm $realm: dave (quota 2, budget 1 MB), peer"
else
    not_ok "provisioning" "$(cat "$d/provision.out")"
    exit 1
fi
issue() { # USER [TTL] -> "username|password"
    psql_q -c "SELECT username, password FROM turnpolicy.issue_credential('$realm', '$1', ${2:-600})"
}

pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
clipw="cli-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077
 printf '%s\n' "$pw" >"$d/tpd.pw"
 printf '%s\n' "$clipw" >"$d/cli.pw")
for n in 1 2; do
    eval "tpd_port$n=$(tp_free_port) turn_port$n=$(tp_free_port) cli_port$n=$(tp_free_port)"
done
for n in 1 2; do
    tport=$(eval echo "\$turn_port$n")
    cport=$(eval echo "\$cli_port$n")
    tpd=$(eval echo "\$tpd_port$n")
    tp_turnpolicyd_conf "$d/tpd$n.conf" "$db" "$tpd" "$d/tpd.pw" "hn$n" \
        "coturn_cli = 127.0.0.1:$cport" \
        "coturn_cli_password_file = $d/cli.pw" "log_level = info"
    tp_coturn_conf "turnserver$n" "$tport" "$realm" \
        "$(tp_coturn_redis_auth "$tpd" "$pw")" allow-loopback-peers \
        cli-ip=127.0.0.1 "cli-port=$cport" "cli-password=$clipw" \
        max-allocate-timeout=2
    tp_bg "tpd$n" "$tpd_bin" --config "$d/tpd$n.conf"
    tp_wait_port "$tpd" 15 || { not_ok "turnpolicyd $n starts" "$(tail -3 "$d/tpd$n.out")"; exit 1; }
    tp_coturn_start "turnserver$n" "$tport" ||
        { not_ok "coturn $n starts" "$(tail -3 "$d/turnserver$n.out")"; exit 1; }
done

rcli() { # N ARGS: redis-cli against turnpolicyd N
    local n=$1
    shift
    redis-cli -h 127.0.0.1 -p "$(eval echo "\$tpd_port$n")" -a "$pw" \
        --no-auth-warning "$@"
}
metric() { # N NAME -> value (a series with labels: NAME{...})
    rcli "$1" INFO | awk -v m="turnpolicyd_$2" '$1 == m { print $2 }'
}
wait_metric() { # N NAME VALUE SECONDS: until NAME >= VALUE
    local i
    for i in $(seq 1 $(($4 * 10))); do
        [ "$(metric "$1" "$2")" -ge "$3" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
ps_total() { # N [USERNAME] -> coturn N's session count (all, or of one)
    /usr/bin/python3 "$ice_py" cli --cli "127.0.0.1:$(eval echo "\$cli_port$1")" \
        --password-file "$d/cli.pw" --command "ps${2:+ $2}" |
        sed -n 's/.*Total sessions: *//p'
}
alloc_ok() { # N CRED: one allocation held 0.2 s, then Refresh(0)
    local c=$2
    /usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$(eval echo "\$turn_port$1")" \
        --user "${c%%|*}" --password "${c#*|}" --seconds 0.2 >"$d/alloc.out" 2>&1
}
flood() { # N USER PASSWORD COUNT -> summary line
    /usr/bin/python3 "$bad_py" --turn "127.0.0.1:$(eval echo "\$turn_port$1")" \
        --user "$2" --password "$3" --count "$4"
}

# Warm-up: coturn connects to its databases lazily; one real allocation
# on each node (retried), and both enforcers logged in to their CLI.
for n in 1 2; do
    w=$(issue peer)
    for i in $(seq 1 10); do
        alloc_ok "$n" "$w" && break
        sleep 0.5
    done
done
if wait_metric 1 coturn_cli_up 1 10 && wait_metric 2 coturn_cli_up 1 10 &&
   grep -q '^allocated' "$d/alloc.out"; then
    ok "two nodes up: real allocations work, both enforcers logged in to coturn's CLI"
else
    not_ok "warm-up" "$(cat "$d/alloc.out") $(tail -3 "$d/tpd1.out")"
fi
wait_metric 1 sessions_finished_total 1 5
wait_metric 2 sessions_finished_total 1 5
lines0_1=$(wc -l <"$d/tpd1.out")
lines0_2=$(wc -l <"$d/tpd2.out")
served0=$(metric 1 'key_lookups_total{result="key_served"}')

# --------------------------------------------------------------------
# The flood
# --------------------------------------------------------------------
exp=$(($(date +%s) + 3600))
forged="$exp:dave:k1:1"
good=$(issue dave)
good_user=${good%%|*}
expired=$(issue dave 1)
revoked=$(issue dave 900) # another username than good's (same second)
psql_q -c "SELECT turnpolicy.revoke_credential('$realm', '${revoked%%|*}')" >/dev/null
sleep 2 # the 1 s credential has expired; the revocation has reached both
f1=$(flood 1 "$forged" x 300)
f2=$(flood 2 "$forged" x 20)
w1=$(flood 1 "$good_user" wrong-password 20)
w2=$(flood 2 "$good_user" wrong-password 20)
e1=$(flood 1 "${expired%%|*}" "${expired#*|}" 10)
r1=$(flood 1 "${revoked%%|*}" "${revoked#*|}" 10)
r2=$(flood 2 "${revoked%%|*}" "${revoked#*|}" 10)
all="$f1 | $f2 | $w1 | $w2 | $e1 | $r1 | $r2"
if [ "$(echo "$all" | grep -o 'allocated=0' | wc -l)" = 7 ] &&
   ! echo "$all" | grep -q timeout; then
    ok "380 forged, 40 wrong-password, 10 expired, 20 revoked Allocates: every one refused by coturn (${f1#*errors=})"
else
    not_ok "hostile Allocates refused" "$all"
fi

# coturn closes those sessions max-allocate-timeout (2 s) later and then
# reports them (traffic) under dave's username: wait until turnpolicyd
# has them, so that the checks below look at a node that did get them.
if wait_metric 1 statsdb_unattributed_total 300 20 &&
   wait_metric 2 statsdb_unattributed_total 40 20; then
    ok "coturn reported the failed sessions to turnpolicyd (unattributed: node 1 $(metric 1 statsdb_unattributed_total), node 2 $(metric 2 statsdb_unattributed_total))"
else
    not_ok "coturn's reports of failed sessions arrive" "node 1 $(metric 1 statsdb_unattributed_total) node 2 $(metric 2 statsdb_unattributed_total)"
fi

# Reports of ids coturn never reported as allocations, straight to
# turnpolicyd (what coturn would send for a session that failed, with
# 50 MB in it): neither a live session nor bytes of dave's.
for id in 900000000000000001 900000000000000002 900000000000000003; do
    for n in 1 2; do
        k="turn/realm/$realm/user/$good_user/allocation/$id"
        rcli "$n" PUBLISH "$k/traffic" "rcvp=1, rcvb=25000000, sentp=1, sentb=25000000" >/dev/null
        rcli "$n" PUBLISH "$k/traffic/peer" "rcvp=1, rcvb=9, sentp=1, sentb=9" >/dev/null
        rcli "$n" PUBLISH "$k/total_traffic" "rcvp=1, rcvb=25000000, sentp=1, sentb=25000000" >/dev/null
    done
done
sleep 1
live1=$(metric 1 sessions_live)
live2=$(metric 2 sessions_live)
ps1=$(ps_total 1)
ps2=$(ps_total 2)
if [ "$live1" = 0 ] && [ "$live2" = 0 ] && [ "$ps1" = 0 ] && [ "$ps2" = 0 ]; then
    ok "after the flood: sessions_live = coturn's ps = 0 on both nodes"
else
    not_ok "no ghost sessions" "live $live1/$live2 ps $ps1/$ps2"
fi
usage=$(psql_q -c "SELECT count(*) FROM turnpolicy.usage WHERE user_id = 'dave'" 2>&1)
if [ "$usage" = 0 ]; then
    ok "no usage was recorded for dave (the 150 MB of reports are nobody's)"
else
    not_ok "no usage for dave" "$usage"
fi

# dave: both allocations of its quota at once on node 1 (they relay),
# and one more on node 2 while they live is refused only by the quota.
a1=$(issue dave)
a2=$(issue peer)
/usr/bin/python3 "$ice_py" ice --turn "127.0.0.1:$turn_port1" \
    --user "${a1%%|*}" --password "${a1#*|}" \
    --user2 "${a2%%|*}" --password2 "${a2#*|}" --seconds 2 >"$d/ice.out" 2>&1
n_rx=$(sed -n 's/^result //p' "$d/ice.out" |
       /usr/bin/python3 -c "import json,sys; r=json.load(sys.stdin); print(r['a_to_b']['n'])" 2>/dev/null)
if grep -q '^connected' "$d/ice.out" && [ "${n_rx:-0}" -gt 20 ]; then
    ok "dave relays normally afterwards ($n_rx datagrams through coturn 1)"
else
    not_ok "dave relays after the flood" "$(tail -3 "$d/ice.out")"
fi
h1=$(issue dave)
h2=$(issue dave)
/usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$turn_port1" \
    --user "${h1%%|*}" --password "${h1#*|}" --seconds 6 >"$d/h1.out" 2>&1 &
p1=$!
/usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$turn_port2" \
    --user "${h2%%|*}" --password "${h2#*|}" --seconds 6 >"$d/h2.out" 2>&1 &
p2=$!
for i in $(seq 1 100); do # both allocated before the third starts
    grep -q '^allocated' "$d/h1.out" && grep -q '^allocated' "$d/h2.out" && break
    sleep 0.1
done
sleep 0.5
h3=$(issue dave)
/usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$turn_port2" \
    --user "${h3%%|*}" --password "${h3#*|}" --seconds 3 >"$d/h3.out" 2>&1 &
p3=$!
quota_cuts() { # on both nodes
    echo $(($(metric 1 'sessions_cancelled_total{reason="quota_reached"}') +
            $(metric 2 'sessions_cancelled_total{reason="quota_reached"}')))
}
for i in $(seq 1 40); do [ "$(quota_cuts)" -ge 1 ] && break; sleep 0.1; done
wait "$p1" "$p2" "$p3"
# their releases reach the shared counter before the next allocation
wait_live0() { # N
    local i
    for i in $(seq 1 50); do
        [ "$(metric "$1" sessions_live)" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}
wait_live0 1
wait_live0 2
sleep 0.5
if grep -q '^allocated' "$d/h1.out" && grep -q '^allocated' "$d/h2.out"; then
    ok "dave holds its full quota of 2 allocations, one on each node"
else
    not_ok "dave's quota is whole" "$(cat "$d/h1.out" "$d/h2.out")"
fi
# Node 2 holds one of dave's 2, so it serves the key; the shared count
# (one on each node) then refuses the acquire and the enforcer cuts it.
if [ "$(quota_cuts)" -ge 1 ] ||
   { ! grep -q '^allocated' "$d/h3.out" &&
     grep -q "deny realm=$realm user=[0-9]*:dave:.* reason=quota_reached" "$d/tpd2.out"; }; then
    ok "a third allocation is refused or cut by the quota (the quota still works)"
else
    not_ok "the quota still applies" "$(cat "$d/h3.out")"
fi

# Clients killed without Refresh(0): coturn keeps their allocations
# until their lifetime; turnpolicyd counts exactly what coturn lists.
k1=$(issue dave)
/usr/bin/python3 "$ice_py" alloc --turn "127.0.0.1:$turn_port1" \
    --user "${k1%%|*}" --password "${k1#*|}" --seconds 30 >"$d/k1.out" 2>&1 &
kp=$!
for i in $(seq 1 50); do grep -q '^allocated' "$d/k1.out" && break; sleep 0.1; done
kill -9 "$kp" 2>/dev/null
wait "$kp" 2>/dev/null
sleep 1.5
live1=$(metric 1 sessions_live)
ps1=$(ps_total 1)
if [ "$ps1" = 1 ] && [ "$live1" = "$ps1" ]; then
    ok "a client killed without Refresh(0): sessions_live = coturn's ps = 1"
else
    not_ok "killed client counted as coturn counts it" "live=$live1 ps=$ps1 $(cat "$d/k1.out")"
fi
k2=$(issue dave)
if alloc_ok 2 "$k2" && grep -q '^allocated' "$d/alloc.out"; then
    ok "dave can still allocate beside the orphaned allocation (1 of 2)"
else
    not_ok "allocation beside an orphan" "$(cat "$d/alloc.out")"
fi

# Revoking dave cuts the orphan once: one `cs`, one cancellation.
cs0=$(metric 1 cancel_commands_total)
psql_q -c "SELECT turnpolicy.revoke_user('$realm', 'dave')" >/dev/null
for i in $(seq 1 50); do
    [ "$(ps_total 1)" = 0 ] && break
    sleep 0.1
done
sleep 3 # > RETARGET_MS: a session left in the table would be cut again
cs1=$(metric 1 cancel_commands_total)
cut1=$(metric 1 'sessions_cancelled_total{reason="revoked"}')
if [ "$(ps_total 1)" = 0 ] && [ "$((cs1 - cs0))" = 1 ] && [ "$cut1" = 1 ] &&
   [ "$(metric 1 sessions_live)" = 0 ]; then
    ok "revoking dave cut the orphan with exactly one cs (cancelled{revoked}=1, sessions_live 0)"
else
    not_ok "one cut per session" "cs $cs0 -> $cs1 cancelled=$cut1 ps=$(ps_total 1) live=$(metric 1 sessions_live)"
fi
cuts() { # N -> sum of sessions_cancelled_total over reasons
    rcli "$1" INFO | awk '/^turnpolicyd_sessions_cancelled_total\{/ { s += $2 } END { print s + 0 }'
}
if [ "$(metric 1 cancel_commands_total)" = "$(cuts 1)" ] &&
   [ "$(metric 2 cancel_commands_total)" = "$(cuts 2)" ]; then
    ok "every cs sent was a real cut (node 1: $(cuts 1), node 2: $(cuts 2))"
else
    not_ok "cs only for sessions coturn has" "cs $(metric 1 cancel_commands_total)/$(metric 2 cancel_commands_total) cuts $(cuts 1)/$(cuts 2)"
fi

# Metrics: the wrong passwords got keys (coturn checks the password
# after the lookup) and are counted as auth_failed_or_abandoned, not as
# logins; refusals by reason.
# Every served key either became a session (confirmed) or, 10 s on,
# counts as abandoned; wait for the last ones to fall due.
for i in $(seq 1 150); do
    served=$(metric 1 'key_lookups_total{result="key_served"}')
    abandoned=$(metric 1 auth_failed_or_abandoned_total)
    confirmed=$(metric 1 keys_confirmed_total)
    [ "$((served - confirmed))" = "$abandoned" ] && break
    sleep 0.1
done
bad_ttl=$(metric 1 'key_lookups_total{result="bad_ttl"}')
if [ "$abandoned" -ge 15 ] && [ "$((served - served0))" -ge 15 ] &&
   [ "$((served - confirmed))" = "$abandoned" ] &&
   [ "$confirmed" -ge 3 ] && [ "$bad_ttl" -ge 300 ] &&
   [ "$(metric 1 'key_lookups_total{result="expired"}')" -ge 1 ] &&
   [ "$(metric 1 'key_lookups_total{result="revoked"}')" -ge 1 ]; then
    ok "metrics: key_served=$served = keys_confirmed $confirmed + auth_failed_or_abandoned $abandoned (20 wrong passwords); bad_ttl (the forged iat 1)=$bad_ttl; expired and revoked counted"
else
    not_ok "honest metrics" "served=$served abandoned=$abandoned confirmed=$confirmed bad_ttl=$bad_ttl"
fi
if rcli 1 INFO | grep -q 'decision="allow"'; then
    not_ok "no allow/ok series is left to read as a login"
else
    ok "no allow/ok series is left to read as a login"
fi

# The log: 300 forged lookups on node 1 alone would have been 300 deny
# lines; the flood control keeps 5 identical lines (200 of one kind) per
# 10 s and sums up the rest in one line each.
sleep 1
n1=$(($(wc -l <"$d/tpd1.out") - lines0_1))
n2=$(($(wc -l <"$d/tpd2.out") - lines0_2))
if [ "$n1" -le 150 ] && [ "$n2" -le 150 ] &&
   grep -q 'more lines like "deny realm=' "$d/tpd1.out"; then
    ok "turnpolicyd's log grew by $n1 / $n2 lines for ~400 / ~60 hostile attempts (the rest summed up)"
else
    not_ok "bounded log" "node 1 +$n1, node 2 +$n2 lines; $(grep -c deny "$d/tpd1.out") deny lines"
fi
if grep -qi "wrong-password\|${good#*|}\|${revoked#*|}\|$pw\|$clipw" "$d/tpd1.out" "$d/tpd2.out"; then
    not_ok "no password in turnpolicyd's logs"
else
    ok "no password in turnpolicyd's logs"
fi
