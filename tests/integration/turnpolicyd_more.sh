#!/bin/bash
# turnpolicyd_more.sh - more end-to-end checks of stock coturn 4.6.1 with
# turnpolicyd (issue 4), all on 127.0.0.1, stopped on exit whatever
# happens:
#   1. refusals at key lookup with the reason in turnpolicyd's counters:
#      expired, unknown kid, retired secret, revoked credential, killed
#      realm, byte budget spent (by a session that just ended on this
#      node, then from the policy snapshot);
#   2. credentials from the SQL function, the CLI (--database) and the
#      library (CLI offline, secret file) relay data;
#   3. peer permissions at CreatePermission (turnpolicyd_perm.py): the
#      default policy refuses 127.0.0.1, ::ffff:127.0.0.1, 10.0.0.1 and
#      169.254.169.254, and on an IPv6 allocation (relay-ip=::1)
#      ::ffff:127.0.0.1 and ::1 with 403; a realm allowing 127.0.0.0/8
#      accepts 127.0.0.1, and ::ffff:127.0.0.1 on an IPv6 allocation;
#   4. PostgreSQL and Redis stopped during a relay lose no usage record;
#   5. turnpolicyd's gauge of live sessions equals what coturn's CLI lists,
#      and drops to 0 when coturn cancels them all (no session leaks).
# Two coturn instances (one per realm: coturn's session realm is its
# default realm) share one turnpolicyd.  Data is only relayed to
# turnutils_peer on 127.0.0.1; other peer addresses only appear in
# CreatePermission requests sent to coturn on 127.0.0.1.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../servers.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
realm=more.test    # allows 127.0.0.0/8
drealm=dflt.test   # default peer policy
tpd_bin="$TP_BIN/turnpolicyd"
tp_cli="$TP_BIN/turnpolicy"
perm_py="$TP_ROOT/tests/integration/turnpolicyd_perm.py"

tp_policy_servers
psql_q() { tp_pg_psql -d postgres -At "$@"; }
if psql_q >"$d/provision.out" 2>&1 <<SQL
SELECT turnpolicy.create_realm(r, max_ttl => 3600, budget_period => 3600)
  FROM unnest(ARRAY['$realm', '$drealm']) AS r;
SELECT turnpolicy.rotate_secret(r) FROM unnest(ARRAY['$realm', '$drealm']) AS r;
SELECT turnpolicy.create_user('$realm', u)
  FROM unnest(ARRAY['exp', 'kid', 'ret', 'rvk', 'kil', 'sql', 'cli', 'lib',
                    'perm', 'pgr', 'rdr', 'after']) AS u;
SELECT turnpolicy.create_user('$drealm', 'perm');
SELECT turnpolicy.create_user('$realm', 'bud', user_byte_budget => 2000);
SELECT turnpolicy.allow_peer('$realm', '127.0.0.0/8');
SQL
then
    ok "realms $realm (peers: 127.0.0.0/8 allowed) and $drealm (default) provisioned"
else
    not_ok "provisioning" "$(cat "$d/provision.out")"
    exit 1
fi

# turnpolicyd: max_staleness long enough to serve a relay while
# PostgreSQL is stopped (section 4).
tpd_port=$(tp_free_port)
pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077; printf '%s\n' "$pw" >"$d/tpd.pw")
tp_turnpolicyd_conf "$d/turnpolicy.conf" "$db" "$tpd_port" "$d/tpd.pw" more \
    "max_staleness = 30" "log_level = debug"
tp_bg tpd "$tpd_bin" --config "$d/turnpolicy.conf"
if ! tp_wait_port "$tpd_port" 15; then
    not_ok "turnpolicyd starts" "$(tail -5 "$d/tpd.out")"
    exit 1
fi
rcli() {
    redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning "$@"
}
counter() { # RESULT -> turnpolicyd_key_lookups_total for it (0 if none yet)
    local n
    n=$(rcli INFO | sed -n "s/^turnpolicyd_key_lookups_total{result=\"$1\"} //p")
    echo "${n:-0}"
}

# Two stock coturns, one per realm, both on turnpolicyd.
peer_port=$(tp_free_port)
tp_bg peer /usr/bin/turnutils_peer -L "$TP_PEER_IP" -p "$peer_port"
start_turn() { # NAME REALM -> sets turn_port_NAME, cli_port_NAME; $d/NAME.clipw
    local port cli
    port=$(tp_free_port)
    cli=$(tp_free_port)
    (umask 077; od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$d/$1.clipw")
    tp_coturn_conf "$1" "$port" "$2" relay-ip=::1 \
        "$(tp_coturn_redis_auth "$tpd_port" "$pw")" allow-loopback-peers \
        cli-ip=127.0.0.1 "cli-port=$cli" "cli-password=$(cat "$d/$1.clipw")" \
        "$(tp_coturn_uclient_lines)"
    eval "turn_port_$1=$port cli_port_$1=$cli"
    tp_coturn_start "$1" "$port"
}
if ! ip -6 addr show lo 2>/dev/null | grep -q 'inet6 ::1/128'; then
    not_ok "::1 on lo (IPv6 relay address of the coturns)" "$(ip -6 addr show lo 2>&1)"
    exit 1
fi
if start_turn ta "$realm" && start_turn tb "$drealm"; then
    ok "two coturns (realms $realm, $drealm) on 127.0.0.1:$turn_port_ta, :$turn_port_tb"
else
    not_ok "coturn starts" "$(tail -3 "$d/ta.out" "$d/tb.out")"
    exit 1
fi

relay() { # USER PASS [OUT] -> uclient's status, output in OUT
    timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e "$TP_PEER_IP" \
        -r "$peer_port" -p "$turn_port_ta" -n 20 -l 120 -z 5 127.0.0.1 \
        >"${3:-$d/uclient.out}" 2>&1
}
received() { # [OUT] -> messages echoed back through the relay
    sed -n 's/.*start_mclient: tot_send_msgs=[0-9]*, tot_recv_msgs=\([0-9]*\).*/\1/p' \
        "${1:-$d/uclient.out}" | tail -1
}
relays() { relay "$1" "$2" && [ "$(received)" -gt 0 ] 2>/dev/null; }
refused() {
    ! relay "$1" "$2" && [ -z "$(received)" ] &&
        grep -q 'Cannot complete Allocation' "$d/uclient.out"
}
issue() { # USER [ARGS] -> "username password" on two lines
    local u=$1
    shift
    "$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
        --realm "$realm" --user "$u" --format plain "$@"
}
line() { sed -n "$1p" "$2"; }

# --------------------------------------------------------------------
# 1. Refused at key lookup, with the reason counted
# --------------------------------------------------------------------
issue ret >"$d/ret"      # signed with the first secret, retired below
psql_q >"$d/sql1.out" 2>&1 <<SQL
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.retire_secret('$realm', '$(line 1 "$d/ret" | cut -d: -f3)');
SQL
now=$(date +%s)
issue exp --now $((now - 7200)) --ttl 600 >"$d/exp" 2>"$d/exp.err"
issue kid >"$d/kid"
issue rvk >"$d/rvk"
issue kil >"$d/kil"
ku=$(line 1 "$d/kid" | awk -F: 'BEGIN { OFS = ":" } { $3 = "zz"; print }')
psql_q -c "SELECT turnpolicy.revoke_credential('$realm', '$(line 1 "$d/rvk")')" >>"$d/sql1.out" 2>&1
sleep 1.5   # NOTIFY reaches turnpolicyd within a second
refusal() { # WHAT REASON USER PASS
    local before after
    before=$(counter "$2")
    if refused "$3" "$4"; then
        after=$(counter "$2")
        if [ "$after" -gt "$before" ] 2>/dev/null; then
            ok "$1 is refused: 'Cannot complete Allocation', $2 $before -> $after"
        else
            not_ok "$1 refused with reason $2" "counter $before -> $after"
        fi
    else
        not_ok "$1 refused" "recv=$(received) $(tail -2 "$d/uclient.out" | tr '\n' ' ')"
    fi
}
refusal "an expired credential (issued 2 h ago, ttl 600)" expired \
    "$(line 1 "$d/exp")" "$(line 2 "$d/exp")"
refusal "an unknown kid (zz)" unknown_kid "$ku" "$(line 2 "$d/kid")"
refusal "a credential of a retired secret" retired_kid \
    "$(line 1 "$d/ret")" "$(line 2 "$d/ret")"
refusal "a revoked credential" revoked "$(line 1 "$d/rvk")" "$(line 2 "$d/rvk")"
psql_q -c "SELECT turnpolicy.kill_realm('$realm')" >/dev/null
sleep 1.5
refusal "a credential of a killed realm" realm_killed \
    "$(line 1 "$d/kil")" "$(line 2 "$d/kil")"
psql_q -c "SELECT turnpolicy.unkill_realm('$realm')" >/dev/null
sleep 1.5

# A byte budget of 2000 bytes per hour: one relay of 20 x 120 bytes each
# way spends it; the next session is refused at once (bytes of a session
# that just ended, not yet in the policy snapshot), and still after a
# reload (from the snapshot, with the usage row in PostgreSQL).
metric() { rcli INFO | sed -n "s/^turnpolicyd_$1 //p"; }
issue bud >"$d/bud"
fin=$(metric sessions_finished_total)
if relays "$(line 1 "$d/bud")" "$(line 2 "$d/bud")"; then
    for _ in $(seq 1 150); do
        [ "$(metric sessions_finished_total)" -gt "$fin" ] 2>/dev/null && break
        sleep 0.1
    done
    ok "user bud (budget 2000 bytes) relays once ($(received) echoed)"
else
    not_ok "budget user's first relay" "$(tail -2 "$d/uclient.out" | tr '\n' ' ')"
fi
issue bud >"$d/bud2"
refusal "a user whose byte budget is spent (by a session that just ended)" \
    budget_exhausted "$(line 1 "$d/bud2")" "$(line 2 "$d/bud2")"
for _ in $(seq 1 20); do
    [ "$(psql_q -c "SELECT coalesce(sum(bytes_in + bytes_out), 0) FROM turnpolicy.usage WHERE user_id = 'bud'")" -ge 2000 ] 2>/dev/null && break
    sleep 0.5
done
kill -HUP "$tp_pid_tpd"
sleep 1
refusal "... and after its usage row is written and the policy reloaded" \
    budget_exhausted "$(line 1 "$d/bud2")" "$(line 2 "$d/bud2")"
grep -q "deny realm=$realm user=[0-9]*:bud:[^ ]* reason=budget_exhausted: " "$d/tpd.out" &&
    ok "the refusal is logged with its reason (budget_exhausted)" ||
    not_ok "budget refusal logged" "$(grep budget "$d/tpd.out" | tail -2)"

# --------------------------------------------------------------------
# 2. Three issuers, one relay each
# --------------------------------------------------------------------
psql_q -F ' ' -c "SELECT username, password FROM turnpolicy.issue_credential('$realm', 'sql', 600)" |
    tr ' ' '\n' >"$d/sql"
relays "$(line 1 "$d/sql")" "$(line 2 "$d/sql")" &&
    ok "a credential from turnpolicy.issue_credential (SQL) relays data ($(received) echoed)" ||
    not_ok "SQL credential relays" "$(tail -2 "$d/uclient.out" | tr '\n' ' ')"
issue cli >"$d/cli" 2>"$d/cli.err"
relays "$(line 1 "$d/cli")" "$(line 2 "$d/cli")" &&
    ok "a credential from 'turnpolicy issue --database' (CLI) relays data ($(received) echoed)" ||
    not_ok "CLI credential relays" "$(cat "$d/cli.err") $(tail -2 "$d/uclient.out" | tr '\n' ' ')"
# The library, offline: the signing secret's bytes in a file.
skid=$(psql_q -c "SELECT kid FROM turnpolicy.secrets WHERE realm = '$realm' AND state = 'signing'")
(umask 077
 psql_q -c "SELECT encode(secret, 'hex') FROM turnpolicy.secrets WHERE realm = '$realm' AND kid = '$skid'" |
     xxd -r -p >"$d/secret.$skid"
 printf '[realm %s]\ndefault_ttl = 600\nmax_ttl = 3600\nsecret.%s = signing %s\n' \
     "$realm" "$skid" "$d/secret.$skid" >"$d/offline.conf")
env -u TURNPOLICY_DATABASE "$tp_cli" --config "$d/offline.conf" issue \
    --realm "$realm" --user lib --format plain >"$d/lib" 2>"$d/lib.err"
if [ "$(wc -c <"$d/secret.$skid")" = 43 ] &&
   [ "$(line 1 "$d/lib" | cut -d: -f3)" = "$skid" ] &&
   relays "$(line 1 "$d/lib")" "$(line 2 "$d/lib")"; then
    ok "a credential from the library (CLI offline, secret file $skid) relays data ($(received) echoed)"
else
    not_ok "library credential relays" "$(cat "$d/lib.err") $(line 1 "$d/lib") $(tail -2 "$d/uclient.out" | tr '\n' ' ')"
fi

# --------------------------------------------------------------------
# 3. Peer permissions at CreatePermission (no data sent to any peer)
# --------------------------------------------------------------------
"$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
    --realm "$drealm" --user perm --format plain >"$d/dperm"
issue perm >"$d/perm"
/usr/bin/python3 "$perm_py" "$turn_port_tb" "$(line 1 "$d/dperm")" \
    "$(line 2 "$d/dperm")" "$TP_PEER_IP" "::ffff:$TP_PEER_IP" 10.0.0.1 169.254.169.254 \
    >"$d/dperm.out" 2>&1
perm_res() { sed -n "s/^$1 //p" "$2"; }
if grep -qx 'allocate success' "$d/dperm.out"; then
    for p in "$TP_PEER_IP" "::ffff:$TP_PEER_IP" 10.0.0.1 169.254.169.254; do
        r=$(perm_res "$p" "$d/dperm.out")
        case "$p:$r" in
        *:"error 403") ok "default policy ($drealm): CreatePermission $p -> 403" ;;
        ::ffff:*:error\ 4*) ok "default policy ($drealm): CreatePermission $p refused ($r)" ;;
        *) not_ok "default policy: CreatePermission $p refused" "got '$r'" ;;
        esac
    done
else
    not_ok "Allocate in $drealm for CreatePermission" "$(cat "$d/dperm.out")"
fi
/usr/bin/python3 "$perm_py" "$turn_port_ta" "$(line 1 "$d/perm")" \
    "$(line 2 "$d/perm")" "$TP_PEER_IP" 10.0.0.1 >"$d/perm.out" 2>&1
[ "$(perm_res "$TP_PEER_IP" "$d/perm.out")" = success ] &&
    ok "$realm allows 127.0.0.0/8: CreatePermission $TP_PEER_IP -> success" ||
    not_ok "allowed loopback CreatePermission" "$(tr '\n' ' ' <"$d/perm.out")"
[ "$(perm_res 10.0.0.1 "$d/perm.out")" = "error 403" ] &&
    ok "... while 10.0.0.1 is still refused there (403)" ||
    not_ok "10.0.0.1 in $realm" "got '$(perm_res 10.0.0.1 "$d/perm.out")'"
# IPv6 allocations (REQUESTED-ADDRESS-FAMILY IPv6, relay-ip=::1): an IPv6
# XOR-PEER-ADDRESS is no longer refused with 443 (family mismatch), so the
# IPv4-mapped and ::1 entries of the denied-peer-ip set are what refuse it.
"$tp_cli" --config "$d/turnpolicy.conf" issue --database "$db" \
    --realm "$drealm" --user perm --format plain >"$d/dperm6"
/usr/bin/python3 "$perm_py" -6 "$turn_port_tb" "$(line 1 "$d/dperm6")" \
    "$(line 2 "$d/dperm6")" "::ffff:$TP_PEER_IP" ::1 >"$d/dperm6.out" 2>&1
if grep -qx 'allocate success' "$d/dperm6.out" &&
   grep -qx 'relayed ipv6' "$d/dperm6.out"; then
    for p in "::ffff:$TP_PEER_IP" ::1; do
        r=$(perm_res "$p" "$d/dperm6.out")
        [ "$r" = "error 403" ] &&
            ok "default policy ($drealm), IPv6 allocation: CreatePermission $p -> 403 ($(grep -F "peer IP $p denied in the range" "$d/tb.log" | tail -1 | sed 's/.*range: //'))" ||
            not_ok "default policy, IPv6 allocation: CreatePermission $p -> 403" "got '$r'"
    done
else
    not_ok "IPv6 Allocate in $drealm" "$(tr '\n' ' ' <"$d/dperm6.out")"
fi
issue perm >"$d/perm6"
/usr/bin/python3 "$perm_py" -6 "$turn_port_ta" "$(line 1 "$d/perm6")" \
    "$(line 2 "$d/perm6")" "::ffff:$TP_PEER_IP" ::ffff:10.0.0.1 >"$d/perm6.out" 2>&1
# turnpolicyd exports more.test's allow rules in IPv4-mapped form as well,
# so ::ffff:127.0.0.1 is allowed there (coturn's own loopback check passes
# with allow-loopback-peers), while ::ffff:10.0.0.1 stays denied.
if grep -qx 'relayed ipv6' "$d/perm6.out" &&
   [ "$(perm_res "::ffff:$TP_PEER_IP" "$d/perm6.out")" = success ]; then
    ok "$realm allows 127.0.0.0/8, IPv6 allocation: CreatePermission ::ffff:$TP_PEER_IP -> success"
else
    not_ok "$realm, IPv6 allocation: CreatePermission ::ffff:$TP_PEER_IP -> success" \
        "$(tr '\n' ' ' <"$d/perm6.out") $(grep -F "::ffff:$TP_PEER_IP" "$d/ta.log" | tail -1)"
fi
[ "$(perm_res ::ffff:10.0.0.1 "$d/perm6.out")" = "error 403" ] &&
    ok "... while ::ffff:10.0.0.1 is still refused there (403)" ||
    not_ok "::ffff:10.0.0.1 in $realm" "got '$(perm_res ::ffff:10.0.0.1 "$d/perm6.out")'"
issue perm >"$d/perm2"
relays "$(line 1 "$d/perm2")" "$(line 2 "$d/perm2")" &&
    ok "... and a turnutils_uclient relay to $TP_PEER_IP works there ($(received) echoed)" ||
    not_ok "loopback relay in $realm" "$(tail -2 "$d/uclient.out" | tr '\n' ' ')"

# --------------------------------------------------------------------
# 4. PostgreSQL / Redis stopped during a relay: no usage record lost
# --------------------------------------------------------------------
usage_rows() { # USER -> rows with bytes in turnpolicy.usage
    psql_q -c "SELECT count(*) FROM turnpolicy.usage WHERE realm = '$realm'
               AND user_id = '$1' AND bytes_in > 0 AND bytes_out > 0" 2>/dev/null
}
wait_usage() { # USER SECONDS
    local i
    for i in $(seq 1 $(($2 * 2))); do
        [ "$(usage_rows "$1")" -ge 1 ] 2>/dev/null && return 0
        sleep 0.5
    done
    return 1
}
slow_relay() { # USER PASS OUT: ~2 s of sending, end time in OUT.end
    (timeout 30 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e "$TP_PEER_IP" \
        -r "$peer_port" -p "$turn_port_ta" -n 60 -l 120 -z 30 127.0.0.1 \
        >"$3" 2>&1; date +%s.%N >"$3.end") &
}
issue pgr >"$d/pgr"
slow_relay "$(line 1 "$d/pgr")" "$(line 2 "$d/pgr")" "$d/pgr.out"
rpid=$!
sleep 1
eval "$TP_PG_STOP_CMD"
t_stop=$(date +%s.%N)
wait "$rpid"
sleep 2     # turnpolicyd gets the session's end while PostgreSQL is down
if [ "$(received "$d/pgr.out")" -gt 0 ] 2>/dev/null &&
   awk "BEGIN { exit !($(cat "$d/pgr.out.end") > $t_stop) }"; then
    ok "a relay finished while PostgreSQL was stopped ($(received "$d/pgr.out") echoed)"
else
    not_ok "relay across the PostgreSQL stop" "recv=$(received "$d/pgr.out")"
fi
eval "$TP_PG_START_CMD"
wait_usage pgr 20 &&
    ok "PostgreSQL back: the queued usage row of that session is written" ||
    not_ok "usage row after PostgreSQL restart" "$(grep -iE 'usage|queue' "$d/tpd.out" | tail -3 | tr '\n' ' ')"

issue rdr >"$d/rdr"
slow_relay "$(line 1 "$d/rdr")" "$(line 2 "$d/rdr")" "$d/rdr.out"
rpid=$!
sleep 1
eval "$TP_REDIS_STOP_CMD"
t_stop=$(date +%s.%N)
wait "$rpid"
sleep 1
if [ "$(received "$d/rdr.out")" -gt 0 ] 2>/dev/null &&
   awk "BEGIN { exit !($(cat "$d/rdr.out.end") > $t_stop) }"; then
    ok "a relay finished while Redis was stopped ($(received "$d/rdr.out") echoed)"
else
    not_ok "relay across the Redis stop" "recv=$(received "$d/rdr.out")"
fi
$TP_REDIS_START_CMD >/dev/null
tp_wait_port "$TP_REDIS_PORT" 10
wait_usage rdr 15 &&
    ok "Redis stopped during the relay: its usage row is still written" ||
    not_ok "usage row across a Redis restart" "$(grep -iE 'redis|usage' "$d/tpd.out" | tail -3 | tr '\n' ' ')"
back=""
issue after >"$d/after"
for i in $(seq 1 10); do
    if relays "$(line 1 "$d/after")" "$(line 2 "$d/after")"; then back=$i; break; fi
    sleep 1
done
live=$(rcli INFO | sed -n 's/^turnpolicyd_sessions_live //p')
[ -n "$back" ] && [ "$(counter redis_error)" -ge 0 ] &&
    ok "Redis back: new relays work again (attempt $back; sessions_live=${live:-?}, redis_error=$(counter redis_error))" ||
    not_ok "service after Redis restart" "$(tail -2 "$d/uclient.out" | tr '\n' ' ')"
# --------------------------------------------------------------------
# 5. turnpolicyd's live sessions are the ones coturn holds
# --------------------------------------------------------------------
# turnutils_uclient leaves one allocation of each run behind (coturn
# lets it expire), so sessions are still live here: the gauge must equal
# what the coturns' CLIs list, and reach 0 once they are all cancelled.
ice_py="$TP_ROOT/tests/integration/turnpolicyd_ice.py"
coturn_cmd() { # NAME COMMAND -> the CLI's answer
    /usr/bin/python3 "$ice_py" cli --cli "127.0.0.1:$(eval echo "\$cli_port_$1")" \
        --password-file "$d/$1.clipw" --command "$2" 2>&1
}
coturn_total() { # -> sessions listed by both coturns
    local n t=0 v
    for n in ta tb; do
        v=$(coturn_cmd "$n" ps | sed -n 's/.*Total sessions: *//p')
        t=$((t + ${v:-1000000}))
    done
    echo "$t"
}
gauge() { rcli INFO | sed -n 's/^turnpolicyd_sessions_live //p'; }
same=""
for _ in $(seq 1 5); do
    g1=$(gauge)
    t=$(coturn_total)
    g2=$(gauge)
    [ "$g1" = "$t" ] && [ "$g2" = "$t" ] && { same=$t; break; }
    sleep 1
done
[ -n "$same" ] && [ "$same" -gt 0 ] &&
    ok "turnpolicyd_sessions_live ($same) equals the sessions coturn's CLI lists (ps)" ||
    not_ok "sessions_live equals coturn's ps" "gauge $g1/$g2, coturn $t"
for n in ta tb; do
    for id in $(coturn_cmd "$n" ps | sed -n 's/^ *[0-9]*) id=\([0-9]*\),.*/\1/p'); do
        coturn_cmd "$n" "cs $id" >/dev/null
    done
done
for _ in $(seq 1 100); do
    [ "$(gauge)" = 0 ] && break
    sleep 0.1
done
t=$(coturn_total)
[ "$(gauge)" = 0 ] && [ "$t" = 0 ] &&
    ok "every session cancelled through coturn's CLI: turnpolicyd_sessions_live reaches 0 (finished $(rcli INFO | sed -n 's/^turnpolicyd_sessions_finished_total //p'), lapsed $(rcli INFO | sed -n 's/^turnpolicyd_sessions_lapsed_total //p'))" ||
    not_ok "no session left in turnpolicyd's table" "gauge $(gauge), coturn $t"
exit "$tp_failed"
