#!/bin/bash
# scale.sh - the policy at many users (issue 13): memory, CPU per change
# and revocation latency of the store, of an nginx node and of
# turnpolicyd + coturn, at growing user counts (run by tests/bench/run.sh,
# i.e. `make bench`, never by `make check`).
#
# Starts PostgreSQL 15, Redis 7 (the stores' fan-out), nginx with the
# module, turnpolicyd and coturn 4.6.1, all on 127.0.0.1 in a throwaway
# directory, stopped on exit whatever happens.  One realm; its users are
# provisioned in bulk (one INSERT ... SELECT generate_series per size,
# the rows create_user would insert; the audit and NOTIFY triggers are
# skipped with session_replication_role = replica, since no store runs
# then), growing through SCALE_SIZES (default 10000 100000 SCALE_USERS;
# SCALE_USERS default 1000000).  At each size:
#
#  1. store: one process holding the library's store (scale_store.c, a
#     driver linking build/lib/libturnpolicy.a, configured from a
#     turnpolicy.conf section as a deployment's consumer is, Redis
#     included): the first load's time and RSS, bytes per user over the
#     process's RSS before the store, and RELOADS full reads
#     (tp_store_reload: median time; peak RSS during it, VmHWM reset
#     through /proc/PID/clear_refs).
#  2. store storm: ROUNDS alternating rounds of RUN seconds, idle then
#     storm.  Storm: pgbench -R RATE runs create_user (new users storm<n>)
#     while the driver revokes a victim about once a second and polls
#     tp_store_verify every 1 ms from the commit until it is refused.
#     CPU per change = (store CPU in the storm round - the idle round's
#     CPU rate x the storm round's wall time) / changes (create_user
#     calls + revocations); the driver's own polling thread is not
#     counted.  Medians over rounds; revocation p50/p99 over every
#     revocation of every round (nearest rank: with ~20 samples p99 is
#     the maximum).
#  3. nginx: worker_processes NGINX_WORKERS, their stores sharing one
#     base of the users per node (the module's default share directory
#     in /dev/shm; each worker keeps only what changed since): node RSS
#     and PSS (master + workers, /proc/PID/smaps_rollup; the base, mapped
#     by every worker, counts once in PSS) once every worker has loaded,
#     the sum of the workers' VmHWM; then the same idle/storm rounds with the CPU of
#     master + workers from /proc/PID/stat, and a probe (scale_store
#     http) asking GET /credentials with a victim's JWT every PROBE_MS on
#     fresh connections (reuseport spreads them over the workers; X-Pid
#     names the worker) in both kinds of round, so its load cancels out.
#     Revocation latency: commit -> every worker has refused (401) at
#     least once ("first": the first worker).
#     At the largest size also, memory only: the node's memory at each
#     worker count of NGINX_SWEEP (default 2 4 8; with one worker nothing
#     is shared), with one base per node and with a copy per worker
#     (turnpolicy_share_dir off) - how it grows per worker.
#  4. at the largest size only: revocation -> live relay cut with
#     turnpolicyd (enforce_interval default) cancelling through coturn's
#     admin CLI, idle (no storm), CUTS times: scale_cut.py streams peer ->
#     relay -> client every 5 ms on one TURN allocation per victim; the
#     latency is the last datagram received after the commit.
#
# Changes reach the stores through the change log (schema 007: each read
# applies what changed); the periodic full read (reload_interval, default
# 600 s, applied in place) is set to 3600 s here so that it does not land
# in a round at random; step 1 measures it (tp_store_reload).  Goal lines
# at the end: the issue's targets at the largest size, PASS/FAIL.  The
# machine is shared: read medians.
# Environment: SCALE_USERS, SCALE_SIZES, ROUNDS, RUN, RATE, RELOADS,
# NGINX_WORKERS, NGINX_SWEEP, PROBE_MS, CUTS, SCALE_NO_NGINX=1,
# SCALE_NO_CUT=1.
# shellcheck disable=SC2154  # tp_tmpdir, tp_pid_* come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"
. "$(dirname "$0")/../redis.sh"
. "$(dirname "$0")/../coturn.sh"

SCALE_USERS=${SCALE_USERS:-1000000}
SCALE_SIZES=${SCALE_SIZES:-"10000 100000 $SCALE_USERS"}
ROUNDS=${ROUNDS:-3}
RUN=${RUN:-8}
RATE=${RATE:-100}
RELOADS=${RELOADS:-3}
NGINX_WORKERS=${NGINX_WORKERS:-4}
NGINX_SWEEP=${NGINX_SWEEP:-"2 4 8"}
PROBE_MS=${PROBE_MS:-5}
CUTS=${CUTS:-20}
NVICTIMS=$((ROUNDS * (RUN + 2) + 10))
d=$tp_tmpdir
realm=bench.test
iss=https://backend.bench.test
aud=turnpolicy
so="$TP_ROOT/$BUILD/nginx/ngx_http_turnpolicy_module.so"
PGBENCH="$TP_PG_BIN/pgbench"
t_start=$(date +%s)
cd "$TP_ROOT" || exit 1

fail() {
    echo "scale bench: $*" >&2
    exit 1
}
# the sizes asked for, at most SCALE_USERS, ascending, once each
sizes=$(for s in $SCALE_SIZES; do
            [ "$s" -ge 1 ] 2>/dev/null && [ "$s" -le "$SCALE_USERS" ] && echo "$s"
        done | sort -n | uniq | tr '\n' ' ')
[ -n "$sizes" ] || fail "no size in SCALE_SIZES ($SCALE_SIZES) <= SCALE_USERS"
largest=${sizes% }
largest=${largest##* }

for t in "$PGBENCH" /usr/sbin/nginx turnserver redis-server; do
    command -v "$t" >/dev/null || fail "no $t (scripts/install-deps.sh)"
done
make -s "$BUILD/lib/libturnpolicy.a" "$BUILD/bin/turnpolicy" \
    "$BUILD/bin/turnpolicyd" || fail "cannot build"
[ -f "$so" ] || make -s nginx-module || fail "cannot build the nginx module"
pkgs="openssl libjwt jansson libpq hiredis"
# shellcheck disable=SC2046,SC2086 # word splitting of $pkgs and flags
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
    -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O2 -g \
    -pthread -Ipolicy/include $(pkg-config --cflags $pkgs) \
    -o "$d/scale_store" tests/bench/scale_store.c \
    "$BUILD/lib/libturnpolicy.a" -pthread $(pkg-config --libs $pkgs) ||
    fail "cannot compile tests/bench/scale_store.c"

# --------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'
}
# pct P: the P-th percentile (nearest rank) of the numbers on stdin
pct() {
    sort -g | awk -v p="$1" '{ v[NR] = $1 }
        END { if (!NR) { print "nan"; exit }
              i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1
              print v[i] }'
}
# field LINE KEY: the value of KEY=value in LINE
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# cpu_ticks PID...: utime + stime of those processes, clock ticks
cpu_ticks() {
    local p t=0 v
    for p in "$@"; do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# rollup KEY PID...: sum of KEY (kB) in /proc/PID/smaps_rollup
rollup() {
    local k=$1 p t=0 v
    shift
    for p in "$@"; do
        v=$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# status_kb KEY PID...: sum of KEY (kB) in /proc/PID/status
status_kb() {
    local k=$1 p t=0 v
    shift
    for p in "$@"; do
        v=$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# quiesce PID...: wait (up to 30 s) until those processes burn at most 2
# ticks in 0.5 s: reloads that a round's last changes started are over
quiesce() {
    local c0 c1
    for _ in $(seq 1 60); do
        c0=$(cpu_ticks "$@")
        sleep 0.5
        c1=$(cpu_ticks "$@")
        [ $((c1 - c0)) -le 2 ] && return 0
    done
    echo "# still busy after 30 s: $*" >>"$d/log"
}
# pg_ticks: CPU ticks of PostgreSQL: the postmaster (with its reaped
# children: backends that came and went) and its live children
pg_ticks() {
    local pm p t v
    pm=$(head -1 "$TP_PG_DIR/data/postmaster.pid")
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for p in $(ps --ppid "$pm" -o pid=); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
hz=$(getconf CLK_TCK)
# storm_start: pgbench running create_user at RATE/s for RUN s, in the
# background (pid in $pgb_pid, output in $d/pgbench.out)
storm_start() {
    "$PGBENCH" -h "$TP_PG_SOCKDIR" -p "$TP_PG_PORT" -U "$TP_PG_SUPERUSER" \
        -n -R "$RATE" -T "$RUN" -c 1 -j 1 -f "$d/storm.sql" postgres \
        >"$d/pgbench.out" 2>&1 &
    pgb_pid=$!
}
# storm_done: wait for pgbench; storm_n = the create_user calls it
# committed (not in a $(...): pgbench is this shell's child)
storm_done() {
    wait "$pgb_pid" || fail "pgbench: $(tail -5 "$d/pgbench.out")"
    grep -q 'number of failed transactions: [1-9]' "$d/pgbench.out" &&
        fail "pgbench: failed create_user calls: $(cat "$d/pgbench.out")"
    storm_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$d/pgbench.out")
    [ -n "$storm_n" ] || fail "pgbench: no transaction count: $(cat "$d/pgbench.out")"
}

# --------------------------------------------------------------------
# PostgreSQL, Redis, the realm, the configuration
# --------------------------------------------------------------------
tp_pg_start || fail "PostgreSQL did not start"
tp_redis_start || fail "Redis did not start"
admin_db="host=$TP_PG_SOCKDIR port=$TP_PG_PORT user=$TP_PG_SUPERUSER dbname=postgres"
"$TP_BIN/turnpolicy" migrate --database "$admin_db" \
    --schema-dir "$TP_ROOT/schema" >"$d/migrate.out" 2>&1 ||
    fail "migrate: $(cat "$d/migrate.out")"
reader_pw="reader-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077
 printf 'scale-hs256-%s\n' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
     >"$d/hs.key"
 printf '127.0.0.1:%s:*:scale_reader:%s\n' "$TP_PG_PORT" "$reader_pw" \
     >"$d/reader.pgpass")
tp_pg_psql -d postgres -v hskey="$(cat "$d/hs.key")" >"$d/provision.out" 2>&1 <<SQL ||
CREATE ROLE scale_reader LOGIN PASSWORD '$reader_pw' IN ROLE turnpolicy_reader;
SELECT turnpolicy.create_realm('$realm', default_ttl => 600, max_ttl => 3600);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.allow_peer('$realm', '127.0.0.1/32');
SELECT turnpolicy.add_jwt_key('$realm', 'scale1', 'HS256',
       convert_to(:'hskey', 'UTF8'));
CREATE SEQUENCE public.scale_storm;
SQL
    fail "provisioning: $(cat "$d/provision.out")"
echo "SELECT turnpolicy.create_user('$realm', 'storm' || nextval('public.scale_storm'));" \
    >"$d/storm.sql"
store_conf() { # SECTION -> the section's lines
    echo "[$1]"
    echo "redis = 127.0.0.1:$TP_REDIS_PORT"
    echo "redis_password_file = $TP_REDIS_PASSWORD_FILE"
    echo "max_staleness = 30"
    echo "reload_interval = 3600"
}
{
    echo "database_url = \"host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=scale_reader passfile=$d/reader.pgpass connect_timeout=5\""
    echo "jwt_issuer = $iss"
    echo "jwt_audience = $aud"
    echo
    store_conf store
    echo
    store_conf nginx
} >"$d/turnpolicy.conf"
chmod 600 "$d/turnpolicy.conf"

# grow_to N PREFIX...: bulk users user<have+1>..user<N>, then victims
# PREFIX1..PREFIX$NVICTIMS for each PREFIX; ANALYZE
have=0
grow_to() {
    local n=$1 p t0 victims=""
    shift
    for p in "$@"; do
        victims="$victims
INSERT INTO turnpolicy.users (realm, user_id)
SELECT '$realm', '$p' || i FROM generate_series(1, $NVICTIMS) AS i;"
    done
    t0=$(date +%s.%N)
    tp_pg_psql -d postgres >"$d/grow.out" 2>&1 <<SQL ||
SET session_replication_role = replica;
INSERT INTO turnpolicy.users (realm, user_id)
SELECT '$realm', 'user' || i FROM generate_series($((have + 1)), $n) AS i;
$victims
RESET session_replication_role;
ANALYZE turnpolicy.users;
SQL
        fail "provisioning $n users: $(cat "$d/grow.out")"
    have=$n
    awk -v n="$n" -v t="$(date +%s.%N)" -v t0="$t0" 'BEGIN {
        printf "# %d users provisioned (+ victims) in %.1f s\n", n, t - t0 }'
}

# --------------------------------------------------------------------
# 1 + 2. One process holding the store
# --------------------------------------------------------------------
# ask CMD: send CMD to the driver, print its one-line answer
ask() {
    local n
    n=$(wc -l <"$d/store.out")
    echo "$1" >&7
    for _ in $(seq 1 6000); do
        if [ "$(wc -l <"$d/store.out")" -gt "$n" ]; then
            tail -1 "$d/store.out"
            return 0
        fi
        kill -0 "$store_pid" 2>/dev/null ||
            fail "scale_store died: $(tail -5 "$d/store.err")"
        sleep 0.05
    done
    fail "scale_store: no answer to '$1' in 300 s"
}
store_phase() { # SIZE -> $d/res.SIZE.store
    local size=$1 line r cpu wall n revs
    local out="$d/res.$size.store"
    rm -f "$d/store.in"
    mkfifo "$d/store.in"
    : >"$d/store.out"
    "$d/scale_store" store "$d/turnpolicy.conf" store "$realm" "$admin_db" \
        "vs${size}_" "$NVICTIMS" <"$d/store.in" >"$d/store.out" \
        2>"$d/store.err" &
    store_pid=$!
    tp_pids="$tp_pids $store_pid"
    exec 7>"$d/store.in"
    for _ in $(seq 1 6000); do
        [ -s "$d/store.out" ] && break
        kill -0 "$store_pid" 2>/dev/null ||
            fail "scale_store did not load: $(tail -5 "$d/store.err")"
        sleep 0.05
    done
    line=$(head -1 "$d/store.out")
    echo "$line" >"$out"
    : >"$d/reload.s" && : >"$d/reload.hwm"
    for _ in $(seq 1 "$RELOADS"); do
        line=$(ask reload) || exit 1
        field "$line" s >>"$d/reload.s"
        field "$line" hwm_kb >>"$d/reload.hwm"
    done
    echo "reload_s=$(median <"$d/reload.s") reload_hwm_kb=$(median <"$d/reload.hwm")" >>"$out"
    : >"$d/cpc" && : >"$d/lat" && : >"$d/idle_rate" && : >"$d/pgcpc"
    for r in $(seq 1 "$ROUNDS"); do
        quiesce "$store_pid"
        p0=$(pg_ticks)
        line=$(ask "idle $RUN") || exit 1
        p1=$(pg_ticks)
        cpu=$(field "$line" cpu_ms)
        wall=$(field "$line" wall_s)
        echo "$cpu $wall" | awk '{ print $1 / $2 }' >>"$d/idle_rate"
        pg_idle=$(awk -v c="$((p1 - p0))" -v hz="$hz" -v w="$wall" 'BEGIN { print c * 1000 / hz / w }')
        quiesce "$store_pid"
        p0=$(pg_ticks)
        storm_start
        line=$(ask "storm $RUN") || exit 1
        storm_done
        p1=$(pg_ticks)
        n=$storm_n
        revs=$(field "$line" revokes)
        field "$line" lat_ms | tr ',' '\n' >>"$d/lat"
        echo "$(field "$line" cpu_ms) $(field "$line" wall_s) $n $revs $(tail -1 "$d/idle_rate")" |
            awk '{ print ($1 - $5 * $2) / ($3 + $4) }' >>"$d/cpc"
        awk -v c="$((p1 - p0))" -v hz="$hz" -v w="$(field "$line" wall_s)" \
            -v i="$pg_idle" -v n="$((n + revs))" \
            'BEGIN { print (c * 1000 / hz - i * w) / n }' >>"$d/pgcpc"
        echo "# store round $r: idle $cpu ms CPU in $wall s; storm: $n create_user + $revs revocations, $line" >>"$d/log"
    done
    echo "cpc_ms=$(median <"$d/cpc") pg_cpc_ms=$(median <"$d/pgcpc") idle_ms_per_s=$(median <"$d/idle_rate") lat_p50=$(pct 50 <"$d/lat") lat_p99=$(pct 99 <"$d/lat") lat_n=$(grep -c . "$d/lat")" >>"$out"
    echo quit >&7
    exec 7>&-
    wait "$store_pid" || fail "scale_store: $(tail -5 "$d/store.err")"
}

# --------------------------------------------------------------------
# 3. nginx with NGINX_WORKERS workers
# --------------------------------------------------------------------
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
# nginx_start WORKERS SHARE: nginx in $d/nginx on a new $port, SHARE
# "on" (the module's default: one base per node) or "off" (each worker
# its own copy); returns once every worker has loaded; sets t_loaded,
# workers, pids.
# shellcheck disable=SC2086 # $pids, $workers: lists of pids, split
nginx_start() {
    local nw=$1 share=$2 n=$d/nginx t0 c0 share_line=""
    [ "$share" = off ] && share_line="turnpolicy_share_dir off;"
    port=$(tp_free_port)
    rm -rf "$n"
    mkdir -p "$n/logs" "$n/tmp"
    cat >"$n/nginx.conf" <<CONF
load_module $so;
$user_line
worker_processes $nw;
daemon off;
error_log $n/logs/error.log notice;
pid $n/nginx.pid;
events { worker_connections 1024; }
http {
    turnpolicy_config $d/turnpolicy.conf;
    $share_line
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    access_log off;
    server {
        listen 127.0.0.1:$port reuseport;
        location = /credentials {
            turnpolicy_token header:Authorization;
            turnpolicy_credentials on;
            turnpolicy_turn_urls turn:127.0.0.1:3478?transport=udp;
            add_header X-Pid \$pid always;
        }
    }
}
CONF
    t0=$(date +%s.%N)
    tp_bg nginx /usr/sbin/nginx -p "$n" -c "$n/nginx.conf"
    for _ in $(seq 1 6000); do
        c0=$(grep -c 'policy store loaded' "$n/logs/error.log" 2>/dev/null)
        [ "${c0:-0}" -ge "$nw" ] && break
        kill -0 "$tp_pid_nginx" 2>/dev/null ||
            fail "nginx: $(tail -n 5 "$n/logs/error.log"; tail -n 5 "$d/nginx.out")"
        sleep 0.05
    done
    [ "$(grep -c 'policy store loaded' "$n/logs/error.log")" -ge "$nw" ] ||
        fail "nginx: not every worker loaded in 300 s: $(tail -n 5 "$n/logs/error.log")"
    t_loaded=$(awk -v t0="$t0" -v t="$(date +%s.%N)" 'BEGIN { printf "%.2f", t - t0 }')
    tp_wait_port "$port" 10 || fail "nginx does not listen on $port"
    sleep 0.5
    workers=$(ps --ppid "$tp_pid_nginx" -o pid= | tr -d ' ' | tr '\n' ' ')
    pids="$tp_pid_nginx $workers"
    [ "$(echo "$workers" | wc -w)" = "$nw" ] ||
        fail "nginx: expected $nw workers, have: $workers"
}

nginx_stop() {
    kill "$tp_pid_nginx"
    wait "$tp_pid_nginx" 2>/dev/null
}

# The node's memory: PSS and RSS of master + workers, the workers' VmHWM,
# the master's RSS, and what the share directory holds.  The node's
# memory quoted (node_kb) is the PSS sum without its tmpfs part
# (Pss_Shmem: the base pages the workers map, as far as they touched
# them) plus the share directory (the base whole, once: tmpfs holds it in
# memory whether mapped or not).
# shellcheck disable=SC2086 # $pids, $workers: lists of pids, split
nginx_mem() {
    local shared
    shared=$(du -sk /dev/shm/turnpolicy.* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    local pss shm
    pss=$(rollup Pss $pids)
    shm=$(rollup Pss_Shmem $pids)
    echo "load_s=$t_loaded rss_kb=$(rollup Rss $pids) pss_kb=$pss hwm_kb=$(status_kb VmHWM $workers) master_rss_kb=$(rollup Rss "$tp_pid_nginx") share_kb=$shared node_kb=$((pss - shm + shared))"
}

# How node memory grows with worker_processes, with one base per node and
# with a copy per worker: memory only, no rounds.
nginx_sweep() { # SIZE -> $d/res.SIZE.sweep
    local size=$1 nw share
    : >"$d/res.$size.sweep"
    for share in on off; do
        for nw in $NGINX_SWEEP; do
            nginx_start "$nw" "$share"
            echo "sweep_${share}_$nw: $(nginx_mem)" >>"$d/res.$size.sweep"
            nginx_stop
        done
    done
}

# shellcheck disable=SC2086 # $pids, $workers: lists of pids, split
nginx_phase() { # SIZE -> $d/res.SIZE.nginx
    local size=$1 n=$d/nginx t0 line r c0 c1 cnt revs
    local out="$d/res.$size.nginx" idle_rate
    "$d/scale_store" tokens "$d/hs.key" "$realm" "$iss" "$aud" "vn${size}_" \
        "$NVICTIMS" 3600 >"$d/tokens" 2>"$d/tokens.err" ||
        fail "tokens: $(cat "$d/tokens.err")"
    nginx_start "$NGINX_WORKERS" on
    nginx_mem >"$out"
    # one request to see the probe works (200)
    "$d/scale_store" http "$port" "$NGINX_WORKERS" "$admin_db" "$realm" 0.2 \
        "$PROBE_MS" "$d/tokens" 0 >"$d/probe.out" 2>"$d/probe.err" &&
        grep -q 'errors=0 ' "$d/probe.out" ||
        fail "nginx probe: $(cat "$d/probe.out" "$d/probe.err") $(tail -3 "$n/logs/error.log")"
    : >"$d/ncpc" && : >"$d/nlat" && : >"$d/nfirst" && : >"$d/nidle"
    off=0 # victims revoked so far: each round starts with a fresh one
    for r in $(seq 1 "$ROUNDS"); do
        tail -n +$((off + 1)) "$d/tokens" >"$d/tokens.r"
        quiesce $pids
        c0=$(cpu_ticks $pids)
        t0=$(date +%s.%N)
        "$d/scale_store" http "$port" "$NGINX_WORKERS" "$admin_db" "$realm" \
            "$RUN" "$PROBE_MS" "$d/tokens.r" 0 >"$d/probe.out" 2>"$d/probe.err" ||
            fail "nginx probe (idle): $(cat "$d/probe.err")"
        c1=$(cpu_ticks $pids)
        grep -q 'errors=0 ' "$d/probe.out" ||
            fail "nginx probe (idle): $(cat "$d/probe.out" "$d/probe.err")"
        idle_rate=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t="$(date +%s.%N)" \
            'BEGIN { print c * 1000 / hz / (t - t0) }')
        echo "$idle_rate" >>"$d/nidle"
        quiesce $pids
        c0=$(cpu_ticks $pids)
        t0=$(date +%s.%N)
        storm_start
        "$d/scale_store" http "$port" "$NGINX_WORKERS" "$admin_db" "$realm" \
            "$RUN" "$PROBE_MS" "$d/tokens.r" 1 >"$d/probe.out" 2>"$d/probe.err" ||
            fail "nginx probe (storm): $(cat "$d/probe.err")"
        c1=$(cpu_ticks $pids)
        line=$(cat "$d/probe.out")
        storm_done
        cnt=$storm_n
        grep -q 'errors=0 ' "$d/probe.out" ||
            fail "nginx probe (storm): $line $(cat "$d/probe.err")"
        revs=$(field "$line" revokes)
        off=$((off + revs))
        field "$line" lat_ms | tr ',' '\n' | grep -v none >>"$d/nlat"
        field "$line" first_ms | tr ',' '\n' | grep -v none >>"$d/nfirst"
        awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t="$(date +%s.%N)" \
            -v i="$idle_rate" -v n="$((cnt + revs))" \
            'BEGIN { print (c * 1000 / hz - i * (t - t0)) / n }' >>"$d/ncpc"
        echo "# nginx round $r: idle $idle_rate ms CPU/s; storm: $cnt create_user + $revs revocations, $((c1 - c0)) ticks, $line" >>"$d/log"
    done
    echo "cpc_ms=$(median <"$d/ncpc") idle_ms_per_s=$(median <"$d/nidle") lat_p50=$(pct 50 <"$d/nlat") lat_p99=$(pct 99 <"$d/nlat") first_p50=$(pct 50 <"$d/nfirst") first_p99=$(pct 99 <"$d/nfirst") lat_n=$(grep -c . "$d/nlat")" >>"$out"
    nginx_stop
}

# --------------------------------------------------------------------
# 4. Revocation -> live relay cut (turnpolicyd + coturn), idle
# --------------------------------------------------------------------
cut_phase() { # SIZE -> $d/res.SIZE.cut
    local size=$1 tpd_port turn_port cli_port pw clipw
    local out="$d/res.$size.cut"
    tpd_port=$(tp_free_port)
    turn_port=$(tp_free_port)
    cli_port=$(tp_free_port)
    pw="tpd-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    clipw="cli-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    (umask 077
     printf '%s\n' "$pw" >"$d/tpd.pw"
     printf '%s\n' "$clipw" >"$d/cli.pw")
    tp_turnpolicyd_conf "$d/tpd.conf" \
        "host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=scale_reader passfile=$d/reader.pgpass connect_timeout=5" \
        "$tpd_port" "$d/tpd.pw" scale "reload_interval = 3600" \
        "coturn_cli = 127.0.0.1:$cli_port" \
        "coturn_cli_password_file = $d/cli.pw" "log_level = info"
    tp_coturn_conf turnserver "$turn_port" "$realm" \
        "$(tp_coturn_redis_auth "$tpd_port" "$pw")" allow-loopback-peers \
        cli-ip=127.0.0.1 "cli-port=$cli_port" "cli-password=$clipw"
    tp_bg tpd "$TP_BIN/turnpolicyd" --config "$d/tpd.conf"
    tp_wait_port "$tpd_port" 300 || fail "turnpolicyd: $(tail -5 "$d/tpd.out")"
    tp_coturn_start turnserver "$turn_port" ||
        fail "coturn: $(tail -5 "$d/turnserver.out")"
    # credentials for the victims vc<SIZE>_1..CUTS and a warm-up user
    tp_pg_psql -d postgres -At -F ' ' >"$d/cut.creds" 2>"$d/cut.err" <<SQL ||
SELECT u, c.username, c.password
  FROM generate_series(1, $CUTS) AS i,
       LATERAL (SELECT 'vc${size}_' || i AS u) AS v,
       LATERAL turnpolicy.issue_credential('$realm', v.u, 3600) AS c;
SQL
        fail "issuing: $(cat "$d/cut.err")"
    for _ in $(seq 1 100); do
        [ "$(redis-cli -h 127.0.0.1 -p "$tpd_port" -a "$pw" --no-auth-warning \
             INFO | sed -n 's/^turnpolicyd_coturn_cli_up //p' | tr -d '\r')" = 1 ] && break
        sleep 0.1
    done
    sleep 1
    /usr/bin/python3 tests/bench/scale_cut.py --turn "127.0.0.1:$turn_port" \
        --creds "$d/cut.creds" --realm "$realm" --pid "$tp_pid_tpd" >"$d/cut.out" 2>"$d/cut.err" ||
        fail "scale_cut.py: $(tail -5 "$d/cut.err" "$d/cut.out")"
    sed -n 's/^cut .* lat_ms=\([0-9.]*\).*/\1/p' "$d/cut.out" >"$d/cut.lat"
    grep '^cut ' "$d/cut.out" | sed 's/^/# /' >>"$d/log"
    echo "lat_p50=$(pct 50 <"$d/cut.lat") lat_p99=$(pct 99 <"$d/cut.lat") lat_n=$(grep -c . "$d/cut.lat") timeouts=$(grep -c 'timeout' "$d/cut.out")" >"$out"
    kill "$tp_pid_turnserver" "$tp_pid_tpd"
    wait "$tp_pid_turnserver" "$tp_pid_tpd" 2>/dev/null
}

# --------------------------------------------------------------------
# Run
# --------------------------------------------------------------------
: >"$d/log"
for size in $sizes; do
    grow_to "$size" "vs${size}_" "vn${size}_" "vc${size}_"
    store_phase "$size"
    [ "${SCALE_NO_NGINX:-0}" = 1 ] || nginx_phase "$size"
    [ "${SCALE_NO_NGINX:-0}" = 1 ] || [ "$size" != "$largest" ] || nginx_sweep "$size"
    [ "${SCALE_NO_CUT:-0}" = 1 ] || [ "$size" != "$largest" ] || cut_phase "$size"
    echo "# size $size done after $(( $(date +%s) - t_start )) s"
done
cat "$d/log"

# --------------------------------------------------------------------
# Report
# --------------------------------------------------------------------
# get SIZE KIND KEY
get() { field "$(tr '\n' ' ' 2>/dev/null <"$d/res.$1.$2")" "$3"; }
printf 'scale: %-8s %7s %9s %7s %8s %8s %9s %8s %8s | %9s %9s %8s %8s %8s\n' \
    users load_s store_MB B/user reload_s peak_MB cpu_ms/ch rev_p50 rev_p99 \
    ngx_node ngx_RSS ngx_cpu ngx_p50 ngx_p99
for size in $sizes; do
    base=$(get "$size" store base_kb)
    rss=$(get "$size" store rss_kb)
    printf 'scale: %-8s %7.2f %9s %7.0f %8.2f %8s %9.2f %8.0f %8.0f | %9s %9s %8s %8s %8s\n' \
        "$(get "$size" store users)" "$(get "$size" store load_s)" \
        "$(mb "$rss")" \
        "$(awk -v r="$rss" -v b="$base" -v n="$(get "$size" store users)" 'BEGIN { print (r - b) * 1024 / n }')" \
        "$(get "$size" store reload_s)" "$(mb "$(get "$size" store reload_hwm_kb)")" \
        "$(get "$size" store cpc_ms)" "$(get "$size" store lat_p50)" \
        "$(get "$size" store lat_p99)" \
        "$( [ -f "$d/res.$size.nginx" ] && mb "$(get "$size" nginx node_kb)" || echo -)" \
        "$( [ -f "$d/res.$size.nginx" ] && mb "$(get "$size" nginx rss_kb)" || echo -)" \
        "$( [ -f "$d/res.$size.nginx" ] && printf '%.2f' "$(get "$size" nginx cpc_ms)" || echo -)" \
        "$(get "$size" nginx lat_p50 | awk '{ printf "%.0f", $1 }')" \
        "$(get "$size" nginx lat_p99 | awk '{ printf "%.0f", $1 }')"
done
echo "# columns: store = one process holding the store (scale_store.c): RSS after the first load, bytes per user over the RSS before the store, full reload (median of $RELOADS), peak RSS during a reload (VmHWM), CPU ms per change during a $RATE changes/s create_user storm (median of $ROUNDS rounds of $RUN s, idle rate subtracted), revocation latency commit -> tp_store_verify refuses (ms, p50/p99 nearest rank); nginx = $NGINX_WORKERS workers + master: node memory (PSS sum without its tmpfs part + the share directory) and RSS sum (MB), CPU ms per change of all of them, revocation latency commit -> every worker refused"
for size in $sizes; do
    [ -f "$d/res.$size.nginx" ] &&
        echo "# nginx at $size users: all workers loaded $(get "$size" nginx load_s) s after start; node $(mb "$(get "$size" nginx node_kb)") MB (PSS $(mb "$(get "$size" nginx pss_kb)"), share directory $(mb "$(get "$size" nginx share_kb)")); workers' VmHWM sum $(mb "$(get "$size" nginx hwm_kb)") MB; master RSS $(mb "$(get "$size" nginx master_rss_kb)") MB; first worker refusing p50 $(get "$size" nginx first_p50) ms p99 $(get "$size" nginx first_p99) ms (n=$(get "$size" nginx lat_n)); idle CPU $(get "$size" nginx idle_ms_per_s) ms/s with the probe"
    echo "# store at $size users: revocations n=$(get "$size" store lat_n); PostgreSQL CPU per change $(get "$size" store pg_cpc_ms) ms (create_user itself and the stores' change-log reads, all backends); idle CPU $(get "$size" store idle_ms_per_s) ms/s; the periodic full read (reload_interval, default 600 s, applied in place) costs about $(get "$size" store reload_s) s of one core per process each time"
done

# Goal lines, at the largest size
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { if (v != v + 0) print "FAIL (not measured)"; else print (v <= g ? "PASS" : "FAIL") }'; }
L=$largest
v=$(mb "$(get "$L" store rss_kb)")
echo "scale_goal: store RSS at $L users ($(get "$L" store users) in the snapshot): $v MB (goal <= 200 MB per process): $(verdict "$v" 200)"
v=$(mb "$(get "$L" store reload_hwm_kb)")
echo "scale_goal: store peak RSS during a change (reload) at $L users: $v MB (goal: no 2x peak, <= 200 MB): $(verdict "$v" 200)"
v=$(awk -v r="$(get "$L" store rss_kb)" -v b="$(get "$L" store base_kb)" -v n="$(get "$L" store users)" 'BEGIN { printf "%.0f", (r - b) * 1024 / n }')
echo "scale_goal: store bytes per user at $L users: $v (goal <= 200): $(verdict "$v" 200)"
v=$(printf '%.2f' "$(get "$L" store cpc_ms)")
echo "scale_goal: store CPU per change during the $RATE/s storm at $L users: $v ms (goal <= 2 ms per process): $(verdict "$v" 2)"
v=$(get "$L" store lat_p99)
echo "scale_goal: store revocation p99 during the storm at $L users: $v ms, p50 $(get "$L" store lat_p50) ms (goal <= 1000 ms): $(verdict "$v" 1000)"
if [ -f "$d/res.$L.nginx" ]; then
    v=$(mb "$(get "$L" nginx node_kb)")
    echo "scale_goal: nginx node memory ($NGINX_WORKERS workers) at $L users: $v MB (PSS $(mb "$(get "$L" nginx pss_kb)"), share directory $(mb "$(get "$L" nginx share_kb)")), RSS sum $(mb "$(get "$L" nginx rss_kb)") MB (goal <= 200 MB per node): $(verdict "$v" 200)"
    v=$(awk -v c="$(get "$L" nginx cpc_ms)" -v w="$NGINX_WORKERS" 'BEGIN { printf "%.2f", c / w }')
    echo "scale_goal: nginx CPU per change per worker during the storm at $L users: $v ms ($(printf '%.2f' "$(get "$L" nginx cpc_ms)") ms for the node) (goal <= 2 ms per process): $(verdict "$v" 2)"
    v=$(get "$L" nginx lat_p99)
    echo "scale_goal: nginx revocation p99 (every worker refuses) during the storm at $L users: $v ms, p50 $(get "$L" nginx lat_p50) ms (goal <= 1000 ms): $(verdict "$v" 1000)"
fi
if [ -f "$d/res.$L.sweep" ]; then
    echo "# nginx node memory at $L users by worker_processes (MB: PSS of master + workers without tmpfs + the share directory; in brackets the directory's part)"
    for share in on off; do
        line=""
        for nw in $NGINX_SWEEP; do
            r=$(sed -n "s/^sweep_${share}_$nw: //p" "$d/res.$L.sweep")
            line="$line $nw: $(mb "$(field "$r" node_kb)") ($(mb "$(field "$r" share_kb)"))"
        done
        [ "$share" = on ] && echo "scale: nginx one base per node  -$line" ||
            echo "scale: nginx a copy per worker  -$line"
    done
    r1=$(sed -n "s/^sweep_on_$NGINX_WORKERS: //p" "$d/res.$L.sweep")
    r0=$(sed -n "s/^sweep_off_$NGINX_WORKERS: //p" "$d/res.$L.sweep")
    echo "scale: nginx node memory at $NGINX_WORKERS workers, one base vs a copy per worker (turnpolicy_share_dir off): $(awk -v a="$(field "$r1" node_kb)" -v b="$(field "$r0" node_kb)" 'BEGIN { printf "%.2fx", a / b }')"
    first=$(echo "$NGINX_SWEEP" | awk '{ print $1 }')
    last=$(echo "$NGINX_SWEEP" | awk '{ print $NF }')
    ra=$(sed -n "s/^sweep_on_$first: //p" "$d/res.$L.sweep")
    rb=$(sed -n "s/^sweep_on_$last: //p" "$d/res.$L.sweep")
    v=$(awk -v a="$(field "$ra" node_kb)" -v b="$(field "$rb" node_kb)" -v x="$first" -v y="$last" 'BEGIN { printf "%.1f", (b - a) / 1024 / (y - x) }')
    echo "scale_goal: nginx node memory per extra worker at $L users (one base per node, $first -> $last workers): $v MB per extra worker (goal: a worker adds its own state, not a copy of the users: <= 20 MB): $(verdict "$v" 20)"
fi
if [ -f "$d/res.$L.cut" ]; then
    v=$(get "$L" cut lat_p99)
    echo "scale_goal: revocation -> live relay cut (turnpolicyd + coturn, idle) at $L users: p99 $v ms, p50 $(get "$L" cut lat_p50) ms, n=$(get "$L" cut lat_n), timeouts $(get "$L" cut timeouts) (goal <= 100 ms): $(verdict "$v" 100)"
fi
echo "# scale.sh took $(( $(date +%s) - t_start )) s"
exit 0
