#!/bin/bash
# turnpolicyd.sh - turnpolicyd against the stock servers it stands in for
# (run by tests/bench/run.sh, i.e. `make bench`, never by `make check`).
#
# Starts PostgreSQL 15, Redis 7 (turnpolicyd's shared counters),
# turnpolicyd, a second stock redis-server (the GET baseline) and two
# stock coturn 4.6.1, all on 127.0.0.1 in a throwaway directory, stopped
# on exit whatever happens.  Rounds alternate between the two sides;
# medians are printed (the machine is shared: read ratios, not absolutes).
#
#  a. Key lookups: redis-benchmark (Debian's redis-tools, the same binary
#     and flags on both sides: -a PW -c C -n GET_N -P 1 --csv, and the
#     command GET turn/realm/<r>/user/<u>/key for a valid credential)
#     against turnpolicyd (a policy decision per GET) and against a stock
#     redis-server holding that key with a plain SET.  Goal >= 1.0x.
#  b. Allocations: turnpolicyd_alloc.c (compiled here; Allocate 401 ->
#     Allocate with long-term credentials -> Refresh lifetime 0, from
#     ALLOC_CONC concurrent UDP clients for ALLOC_SECONDS) against stock
#     coturn with lt-cred-mech + redis-userdb + redis-statsdb pointed at
#     turnpolicyd, and against stock coturn with use-auth-secret +
#     static-auth-secret.  Same realm, same number of users, credentials
#     of each side's own kind.  Nothing is relayed: no peer is contacted.
#     Goal >= 0.95x.  A third coturn with redis-userdb alone (no statsdb)
#     shows what the key lookups cost apart from the session reports.  A
#     fourth has the first one's configuration pointed at the stock
#     redis-server of (a) instead, preloaded with every bench
#     credential's long-term key (computed by `turnpolicy key`): what
#     coturn's statsdb reporting leaves of static-auth-secret's rate with
#     any backend (the ceiling), and turnpolicyd's rate against it.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"
. "$(dirname "$0")/../redis.sh"
. "$(dirname "$0")/../coturn.sh"

ROUNDS=${ROUNDS:-3}
GET_N=${GET_N:-100000}            # requests per redis-benchmark run
GET_CLIENTS=${GET_CLIENTS:-"2 10 50"}
ALLOC_SECONDS=${ALLOC_SECONDS:-8}
ALLOC_CONC=${ALLOC_CONC:-32}
NUSERS=${NUSERS:-50}
# ALLOC_ONLY=1: skip (a), and run only the turnpolicyd and stock
# redis-server setups of (b) (the issue 13 ratio), e.g. to compare builds.
ALLOC_ONLY=${ALLOC_ONLY:-0}
# ALLOC_PGSTAT=1 (with ALLOC_ONLY=1): PostgreSQL restarted with
# pg_stat_statements, and its statements per allocation printed (costs
# PostgreSQL some CPU itself: for attribution, not for the ratio).
ALLOC_PGSTAT=${ALLOC_PGSTAT:-0}
# ALLOC_PERF=DIR: perf record (call graphs) of turnpolicyd, its Redis and
# PostgreSQL during each turnpolicyd round, into DIR/tpd.<time>.data.
ALLOC_PERF=${ALLOC_PERF:-}
d=$tp_tmpdir
realm=bench.test
cd "$TP_ROOT" || exit 1

fail() {
    echo "turnpolicyd bench: $*" >&2
    exit 1
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

for t in redis-benchmark redis-server turnserver; do
    command -v "$t" >/dev/null || fail "no $t (scripts/install-deps.sh)"
done
make -s "$BUILD/bin/turnpolicyd" "$BUILD/bin/turnpolicy" ||
    fail "cannot build turnpolicyd"
# shellcheck disable=SC2046 # word splitting of pkg-config's flags
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
    -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O2 -g \
    $(pkg-config --cflags openssl) -o "$d/alloc" \
    tests/bench/turnpolicyd_alloc.c $(pkg-config --libs openssl) ||
    fail "cannot compile tests/bench/turnpolicyd_alloc.c"

# --------------------------------------------------------------------
# PostgreSQL, Redis, provisioning, turnpolicyd
# --------------------------------------------------------------------
tp_pg_start || fail "PostgreSQL did not start"
if [ "$ALLOC_PGSTAT" = 1 ]; then
    # TP_PG_START_CMD starts without pg.sh's -o options: same settings here.
    tp_pg_psql -d postgres >"$d/pgstat.out" 2>&1 <<SQL ||
ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';
ALTER SYSTEM SET fsync = off;
ALTER SYSTEM SET full_page_writes = off;
ALTER SYSTEM SET synchronous_commit = off;
ALTER SYSTEM SET max_connections = 50;
SQL
        fail "pg_stat_statements: $(cat "$d/pgstat.out")"
    if ! sh -c "$TP_PG_STOP_CMD && $TP_PG_START_CMD" >>"$d/pgstat.out" 2>&1 ||
       ! tp_pg_psql -d postgres -c 'CREATE EXTENSION pg_stat_statements' \
            >>"$d/pgstat.out" 2>&1; then
        fail "pg_stat_statements: $(cat "$d/pgstat.out")"
    fi
fi
tp_redis_start || fail "Redis did not start"
db=$(tp_pg_superuser_db)
"$TP_BIN/turnpolicy" migrate --database "$db" --schema-dir "$TP_ROOT/schema" \
    >"$d/migrate.out" 2>&1 || fail "migrate: $(cat "$d/migrate.out")"
tp_pg_psql -d postgres -v nusers="$NUSERS" >"$d/provision.out" 2>&1 <<SQL ||
SELECT turnpolicy.create_realm('$realm', max_ttl => 86400);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', 'user' || i)
  FROM generate_series(1, :nusers) AS i;
SQL
    fail "provisioning: $(cat "$d/provision.out")"
tp_pg_psql -d postgres -At -F ' ' -v nusers="$NUSERS" >"$d/creds.tpd" \
    2>"$d/issue.err" <<SQL ||
SELECT c.username, c.password
  FROM generate_series(1, :nusers) AS i,
       LATERAL turnpolicy.issue_credential('$realm', 'user' || i, 7200) AS c;
SQL
    fail "issuing: $(cat "$d/issue.err")"

tpd_port=$(tp_free_port)
pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077; printf '%s\n' "$pw" >"$d/tpd.pw")
tp_turnpolicyd_conf "$d/turnpolicy.conf" "$db" "$tpd_port" "$d/tpd.pw" bench \
    "max_connections = 256" "log_level = warn"
tp_bg tpd "$TP_BIN/turnpolicyd" --config "$d/turnpolicy.conf"
tp_wait_port "$tpd_port" 15 || fail "turnpolicyd: $(tail -5 "$d/tpd.out")"

# The baseline: a stock redis-server, same password scheme, no persistence.
base_port=$(tp_free_port)
base_pw="r-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
tp_bg redis_base /usr/bin/redis-server --bind 127.0.0.1 --port "$base_port" \
    --requirepass "$base_pw" --save '' --appendonly no --dir "$d"
tp_wait_port "$base_port" 10 || fail "redis-server: $(tail -5 "$d/redis_base.out")"

user1=$(awk 'NR == 1 { print $1 }' "$d/creds.tpd")
key="turn/realm/$realm/user/$user1/key"
hexkey=$(redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning \
         GET "$key")
[ ${#hexkey} = 32 ] || fail "turnpolicyd gives no key for $user1: '$hexkey' $(tail -3 "$d/tpd.out")"
redis-cli -h 127.0.0.1 -p "$base_port" -a "$base_pw" --no-auth-warning \
    SET "$key" "$hexkey" >/dev/null || fail "SET on the baseline"

# --------------------------------------------------------------------
# a. GET turn/realm/<r>/user/<u>/key: turnpolicyd vs redis-server
# --------------------------------------------------------------------
# bench PORT PW CLIENTS -> "rps p99_ms", or fail
bench() {
    local out="$d/rb.out" line
    redis-benchmark -h 127.0.0.1 -p "$1" -a "$2" -c "$3" -n "$GET_N" -P 1 \
        --csv GET "$key" >"$out" 2>"$d/rb.err" ||
        fail "redis-benchmark -p $1 -c $3: $(tail -3 "$d/rb.err") $(tail -3 "$out")"
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
    # "p95_latency_ms","p99_latency_ms","max_latency_ms"
    line=$(grep -v '^"test"' "$out" | tail -1 | tr -d '"')
    echo "$line" | awk -F, 'NF >= 8 && $2 > 0 { print $2, $7; ok = 1 }
                            END { exit !ok }' ||
        fail "redis-benchmark -p $1: no result: $(cat "$out" "$d/rb.err")"
}
[ "$ALLOC_ONLY" = 1 ] && GET_CLIENTS=
for c in $GET_CLIENTS; do
    : >"$d/t.$c" && : >"$d/b.$c" && : >"$d/tp99.$c" && : >"$d/bp99.$c" &&
        : >"$d/r.$c"
    for _ in $(seq "$ROUNDS"); do
        res=$(bench "$base_port" "$base_pw" "$c") || exit 1
        read -r brps bp99 <<<"$res"
        res=$(bench "$tpd_port" "$pw" "$c") || exit 1
        read -r trps tp99 <<<"$res"
        echo "$trps" >>"$d/t.$c"
        echo "$tp99" >>"$d/tp99.$c"
        echo "$brps" >>"$d/b.$c"
        echo "$bp99" >>"$d/bp99.$c"
        echo "$trps $brps" | awk '{ print $1 / $2 }' >>"$d/r.$c"
    done
    printf 'turnpolicyd_get (%d clients): %.0f/s p99 %.3f ms; redis-server %.0f/s p99 %.3f ms; ratio %.2fx (goal >= 1.0x; medians of %d x %d GETs)\n' \
        "$c" "$(median <"$d/t.$c")" "$(median <"$d/tp99.$c")" \
        "$(median <"$d/b.$c")" "$(median <"$d/bp99.$c")" \
        "$(median <"$d/r.$c")" "$ROUNDS" "$GET_N"
done
if grep -qi 'config' "$d/rb.err"; then
    echo "# redis-benchmark against turnpolicyd said: $(grep -i -m1 config "$d/rb.err")"
fi
decisions=$(redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning \
            INFO | sed -n 's/^turnpolicyd_key_lookups_total{result="key_served"} //p')
echo "# turnpolicyd answered $decisions key lookups with a key (allow/ok)"

# --------------------------------------------------------------------
# b. Allocations through coturn: turnpolicyd vs static-auth-secret
# --------------------------------------------------------------------
static_secret="s-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
/usr/bin/python3 - "$static_secret" "$NUSERS" >"$d/creds.static" <<'PY'
import base64, hashlib, hmac, sys, time
secret, n = sys.argv[1].encode(), int(sys.argv[2])
exp = int(time.time()) + 7200
for i in range(1, n + 1):
    u = "%d:user%d" % (exp, i)
    p = base64.b64encode(hmac.new(secret, u.encode(), hashlib.sha1).digest())
    print(u, p.decode())
PY

# The fourth setup's database: every bench credential's long-term key in
# the stock redis-server, as coturn's redis-userdb reads it.  Passwords go
# to `turnpolicy key` on stdin, keys only into a private file and Redis.
resp() {
    local a
    printf '*%d\r\n' "$#"
    for a in "$@"; do printf '$%d\r\n%s\r\n' "${#a}" "$a"; done
}
(umask 077; : >"$d/keys.resp")
while read -r u p; do
    k=$(printf '%s\n' "$p" | "$TP_BIN/turnpolicy" key --realm "$realm" \
        --username "$u" --password - 2>"$d/key.err") ||
        fail "turnpolicy key for $u: $(cat "$d/key.err")"
    [ "$u" != "$user1" ] || [ "$k" = "$hexkey" ] ||
        fail "turnpolicy key and turnpolicyd disagree on the key of $u"
    resp SET "turn/realm/$realm/user/$u/key" "$k" >>"$d/keys.resp"
done <"$d/creds.tpd"
export REDISCLI_AUTH=$base_pw # redis-cli's password, kept out of ps(1)
redis-cli -h 127.0.0.1 -p "$base_port" --pipe <"$d/keys.resp" \
    >"$d/pipe.out" 2>&1 || fail "loading keys: $(tail -3 "$d/pipe.out")"
grep -q "errors: 0, replies: $NUSERS\$" "$d/pipe.out" ||
    fail "loading keys: $(tail -3 "$d/pipe.out")"
[ "$(redis-cli -h 127.0.0.1 -p "$base_port" DBSIZE)" = "$NUSERS" ] ||
    fail "the stock redis-server does not hold exactly the $NUSERS keys"
redis-cli -h 127.0.0.1 -p "$base_port" CONFIG RESETSTAT >/dev/null
unset REDISCLI_AUTH

# coturn NAME AUTH-LINES... -> starts it; sets port_NAME.  Both relay
# from ports 2000-19999: below tp_free_port's range and below the
# ephemeral ports (a collision costs coturn a retry), and wide, because
# coturn keeps a deleted allocation's port for about a second: a 4000-port
# range capped both sides at 4000 allocations/s (508 Insufficient
# Capacity).  Only one of them allocates at a time.  Nothing but the
# AUTH-LINES differs between them.  (Not tp_coturn_conf: its 100 relay
# ports would cap the rates measured here.)
coturn() {
    local name=$1 port
    shift
    port=$(tp_free_port)
    {
        echo "listening-ip=127.0.0.1"
        echo "relay-ip=127.0.0.1"
        echo "listening-port=$port"
        echo "min-port=2000"
        echo "max-port=19999"
        echo "realm=$realm"
        printf '%s\n' "$@"
        echo "no-tls"
        echo "no-dtls"
        echo "no-cli"
        echo "pidfile=$d/$name.pid"
        echo "log-file=$d/$name.log"
        echo "simple-log"
        echo "no-stdout-log"
    } >"$d/$name.conf"
    chmod 600 "$d/$name.conf"
    tp_coturn_start "$name" "$port" || fail "coturn $name: $(tail -5 "$d/$name.out")"
    eval "port_$name=$port"
}
coturn turn_tpd "$(tp_coturn_redis_auth "$tpd_port" "$pw")"
coturn turn_static use-auth-secret "static-auth-secret=$static_secret"
coturn turn_userdb lt-cred-mech \
    "redis-userdb=\"ip=127.0.0.1 port=$tpd_port password=$pw connect_timeout=2\""
coturn turn_redis "$(tp_coturn_redis_auth "$base_port" "$base_pw")"
sleep 1 # coturn's userdb connections and realm reload

# CPU ticks (user + system, with reaped children) of PID and its live
# children: where the work of a run went.
cpu() {
    local p t=0 v
    for p in "$1" $(ps --ppid "$1" -o pid= 2>/dev/null); do
        v=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
pg_pid=$(head -1 "$TP_PG_DIR/data/postmaster.pid")
redis_pid=$(cat "$d/redis/redis.pid")
# alloc NAME CREDS -> "rate p99" of one run on coturn NAME, or fail.
# Adds the run's allocations and CPU ticks to $d/cpu.NAME.
alloc() {
    local out="$d/alloc.out" port coturn_pid before after n
    port=$(eval "echo \$port_$1")
    coturn_pid=$(eval "echo \$tp_pid_$1")
    local perf_pid=
    if [ -n "$ALLOC_PERF" ] && [ "$1" = turn_tpd ]; then
        # ALLOC_PERF_EVENTS=E1,E2...: count those (perf stat) instead.
        local how=(record -q -g -F 999 -o "$ALLOC_PERF/tpd.$(date +%s).data")
        [ -z "${ALLOC_PERF_EVENTS:-}" ] ||
            how=(stat --per-thread -e "$ALLOC_PERF_EVENTS"
                 -o "$ALLOC_PERF/tpd.$(date +%s).txt")
        local pids
        pids=$( { echo "$tp_pid_tpd" "$redis_pid" "$pg_pid"
                  ps --ppid "$pg_pid" -o pid=; } | tr -s ' \n' ',' |
                sed 's/^,//; s/,$//')
        perf "${how[@]}" -p "$pids" >"$d/perf.out" 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    before="$(cpu "$coturn_pid") $(cpu "$tp_pid_tpd") $(cpu "$redis_pid") $(cpu "$pg_pid") $(cpu "$tp_pid_redis_base")"
    "$d/alloc" 127.0.0.1 "$port" "$realm" "$2" "$ALLOC_CONC" "$ALLOC_SECONDS" 1 \
        >"$out" 2>"$d/alloc.err" ||
        fail "allocations via $1: $(cat "$out" "$d/alloc.err" | tail -4)"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" && wait "$perf_pid"
    fi
    after="$(cpu "$coturn_pid") $(cpu "$tp_pid_tpd") $(cpu "$redis_pid") $(cpu "$pg_pid") $(cpu "$tp_pid_redis_base")"
    sed -n 's/.*rate=\([0-9.]*\)\/s.*p99=\([0-9.]*\) ms.*/\1 \2/p' "$out"
    grep -q ' fail=0 timeout=0 ' "$out" ||
        echo "# $1: $(cat "$out") $(head -2 "$d/alloc.err" | tr '\n' ' ')" >&2
    n=$(sed -n 's/.* total=\([0-9]*\).*/\1/p' "$out")
    echo "$n $before $after" >>"$d/cpu.$1"
}
# cpu_line NAME -> CPU ms per 1000 allocations (warm-up included) by
# coturn, turnpolicyd, turnpolicyd's Redis, PostgreSQL, the stock
# redis-server (the fourth setup's userdb + statsdb)
cpu_line() {
    awk -v hz="$(getconf CLK_TCK)" '
        { n += $1
          for (i = 0; i < 5; i++) t[i] += $(7 + i) - $(2 + i) }
        END { f = 1000 * 1000 / hz / n
              printf "coturn %.0f, turnpolicyd %.0f, redis %.0f, postgres %.0f, stock redis-server %.0f",
                  t[0] * f, t[1] * f, t[2] * f, t[3] * f, t[4] * f }' "$d/cpu.$1"
}
# range: "min-max" of the numbers on stdin
range() {
    sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f-%.2f", a, b }'
}
# Rounds: static-auth-secret, turnpolicyd (userdb + statsdb, the
# deployment of turnserver.conf.snippet), turnpolicyd (userdb only: what
# the key lookups alone cost), stock redis-server (userdb + statsdb).
if [ "$ALLOC_ONLY" = 1 ]; then
    REDISCLI_AUTH=$TP_REDIS_PASSWORD redis-cli -h 127.0.0.1 \
        -p "$TP_REDIS_PORT" CONFIG RESETSTAT >/dev/null
    [ "$ALLOC_PGSTAT" = 1 ] &&
        tp_pg_psql -d postgres -c 'SELECT pg_stat_statements_reset()' >/dev/null
fi
: >"$d/as" && : >"$d/asp" && : >"$d/at" && : >"$d/atp" && : >"$d/ar" &&
    : >"$d/au" && : >"$d/aup" && : >"$d/aur" && : >"$d/ad" &&
    : >"$d/adp" && : >"$d/adr" && : >"$d/atd"
for _ in $(seq "$ROUNDS"); do
    if [ "$ALLOC_ONLY" = 1 ]; then
        res=$(alloc turn_tpd "$d/creds.tpd") || exit 1
        read -r trate tp99 <<<"$res"
        sleep 1
        res=$(alloc turn_redis "$d/creds.tpd") || exit 1
        read -r drate dp99 <<<"$res"
        sleep 1
        echo "$trate" >>"$d/at"
        echo "$tp99" >>"$d/atp"
        echo "$drate" >>"$d/ad"
        echo "$dp99" >>"$d/adp"
        echo "$trate $drate" | awk '{ print $1 / $2 }' >>"$d/atd"
        continue
    fi
    res=$(alloc turn_static "$d/creds.static") || exit 1
    read -r srate sp99 <<<"$res"
    sleep 1 # the relay ports of the previous run come free
    res=$(alloc turn_tpd "$d/creds.tpd") || exit 1
    read -r trate tp99 <<<"$res"
    sleep 1
    res=$(alloc turn_userdb "$d/creds.tpd") || exit 1
    read -r urate up99 <<<"$res"
    sleep 1
    res=$(alloc turn_redis "$d/creds.tpd") || exit 1
    read -r drate dp99 <<<"$res"
    sleep 1
    echo "$srate" >>"$d/as"
    echo "$sp99" >>"$d/asp"
    echo "$trate" >>"$d/at"
    echo "$tp99" >>"$d/atp"
    echo "$urate" >>"$d/au"
    echo "$up99" >>"$d/aup"
    echo "$trate $srate" | awk '{ print $1 / $2 }' >>"$d/ar"
    echo "$urate $srate" | awk '{ print $1 / $2 }' >>"$d/aur"
    echo "$drate" >>"$d/ad"
    echo "$dp99" >>"$d/adp"
    echo "$drate $srate" | awk '{ print $1 / $2 }' >>"$d/adr"
    echo "$trate $drate" | awk '{ print $1 / $2 }' >>"$d/atd"
done
if [ "$ALLOC_ONLY" = 1 ]; then
    printf 'coturn_alloc: with turnpolicyd %.0f/s (p99 %.2f ms), with stock redis-server %.0f/s (p99 %.2f ms) (medians of %d x %d s, %d concurrent clients)\n' \
        "$(median <"$d/at")" "$(median <"$d/atp")" "$(median <"$d/ad")" \
        "$(median <"$d/adp")" "$ROUNDS" "$ALLOC_SECONDS" "$ALLOC_CONC"
else
printf 'coturn_alloc: with turnpolicyd %.0f/s (p99 %.2f ms), static-auth-secret %.0f/s (p99 %.2f ms), ratio %.2fx (goal >= 0.95x; medians of %d x %d s, %d concurrent clients)\n' \
    "$(median <"$d/at")" "$(median <"$d/atp")" "$(median <"$d/as")" \
    "$(median <"$d/asp")" "$(median <"$d/ar")" "$ROUNDS" "$ALLOC_SECONDS" \
    "$ALLOC_CONC"
printf 'coturn_alloc_userdb_only: with turnpolicyd as redis-userdb alone %.0f/s (p99 %.2f ms), ratio %.2fx to static-auth-secret\n' \
    "$(median <"$d/au")" "$(median <"$d/aup")" "$(median <"$d/aur")"
printf 'coturn_alloc_redis: coturn with stock redis-server as userdb+statsdb %.0f/s (p99 %.2f ms), ratio %.2fx to static-auth-secret (rounds %s; the ceiling for any statsdb backend here)\n' \
    "$(median <"$d/ad")" "$(median <"$d/adp")" "$(median <"$d/adr")" \
    "$(range <"$d/adr")"
fi
printf 'coturn_alloc: turnpolicyd vs stock redis-server (same coturn config): %.2fx (rounds %s; goal >= 0.95x: turnpolicyd as cheap as Redis there)\n' \
    "$(median <"$d/atd")" "$(range <"$d/atd")"
for n in turn_static turn_tpd turn_userdb turn_redis; do
    [ -s "$d/cpu.$n" ] || continue
    echo "# CPU ms per 1000 allocations, $n: $(cpu_line $n)"
done
# The fourth setup went through the stock redis-server: a key found for
# every allocation, and statsdb reports arriving.  (Its misses are
# coturn's reads of realm options, at startup and at each realm reload:
# unset here, so coturn uses its defaults.)
info=$(REDISCLI_AUTH=$base_pw redis-cli -h 127.0.0.1 -p "$base_port" INFO all)
calls() { echo "$info" | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p" | tr -d '\r'; }
st() { echo "$info" | sed -n "s/^$1:\([0-9]*\).*/\1/p" | tr -d '\r'; }
n_alloc=$(awk '{ n += $1 } END { print n + 0 }' "$d/cpu.turn_redis")
n_hit=$(st keyspace_hits) n_set=$(calls set)
echo "# stock redis-server during the allocation runs: ${n_hit:-0} keys found for $n_alloc allocations, $(st keyspace_misses) misses, ${n_set:-0} SET, $(calls del) DEL, $(calls publish) PUBLISH"
[ "$n_alloc" -gt 0 ] && [ "${n_hit:-0}" -ge "$n_alloc" ] &&
    [ "${n_set:-0}" -gt 0 ] ||
    fail "coturn turn_redis did not look its keys up in, or report to, the stock redis-server"
info=$(redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning INFO)
m() { echo "$info" | sed -n "s/^turnpolicyd_$1 //p"; }
n_ok=$(echo "$info" | sed -n 's/^turnpolicyd_key_lookups_total{result="key_served"} //p')
if [ "$ALLOC_ONLY" = 1 ]; then
    # What turnpolicyd asked of its own Redis, per allocation.
    n_alloc=$(awk '{ n += $1 } END { print n + 0 }' "$d/cpu.turn_tpd")
    REDISCLI_AUTH=$TP_REDIS_PASSWORD redis-cli -h 127.0.0.1 \
        -p "$TP_REDIS_PORT" INFO commandstats | tr -d '\r' |
        awk -F'[:=,]' -v n="$n_alloc" '/^cmdstat_/ && n > 0 {
            printf "# turnpolicyd'"'"'s Redis: %s %.2f calls per allocation (%d us)\n",
                substr($1, 9), $3 / n, $5 }'
    echo "# turnpolicyd's Redis after the runs: $(REDISCLI_AUTH=$TP_REDIS_PASSWORD \
        redis-cli -h 127.0.0.1 -p "$TP_REDIS_PORT" DBSIZE) keys, realm set $(
        REDISCLI_AUTH=$TP_REDIS_PASSWORD redis-cli -h 127.0.0.1 \
        -p "$TP_REDIS_PORT" ZCARD "turnpolicy:{$realm}:alloc") sessions"
    [ "$ALLOC_PGSTAT" = 1 ] &&
        tp_pg_psql -d postgres -At -F ' ' -v n="$n_alloc" <<'SQL' |
SELECT round(calls::numeric / :n, 3), round(total_exec_time::numeric, 1),
       regexp_replace(left(query, 150), '\s+', ' ', 'g')
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15;
SQL
        sed 's/^/# PostgreSQL (calls per allocation, ms total): /'
fi
echo "# turnpolicyd during the allocation runs: $((n_ok - decisions)) keys allowed, $(m statsdb_events_total) statsdb events, sessions started $(m sessions_started_total) finished $(m sessions_finished_total) dropped $(m sessions_dropped_total), alloc counters acquired $(m alloc_acquired_total) released $(m alloc_released_total) dropped $(m alloc_dropped_total) errors $(m alloc_errors_total), usage recorded $(m usage_recorded_total)"
exit 0
