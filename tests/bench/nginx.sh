#!/bin/bash
# nginx.sh - what ngx_http_turnpolicy_module costs a stock nginx (Debian's
# 1.22 with build/nginx/ngx_http_turnpolicy_module.so), measured with wrk
# (run by tests/bench/run.sh, i.e. `make bench`, never by `make check`).
#
# Starts PostgreSQL 15 and Redis 7 (the module's policy store), dnsmasq on
# a loopback port answering 127.0.0.1 for every name, and two nginx, all on
# 127.0.0.1 in a throwaway directory, stopped on exit whatever happens.
# Every nginx runs ONE worker process, and every setup proxies over plain
# HTTP to the same kind of upstream: a server block of that same nginx
# answering `return 200 "ok\n"`, through an upstream{} with keepalive.  So
# one worker does all the server-side work of a request and wrk gets the
# other core of a 2-core machine; a separate upstream nginx would compete
# with wrk for it.  The upstream's (small) cost is in every setup, baseline
# included.  Setups:
#
#  1. baseline: location /t/ with turnpolicy off, proxy_pass to the
#     keepalive upstream{} (the same request URI as 2);
#  2. filter, cached token: turnpolicy on, the path token form
#     /t/<token>/upstream.bench.test:<port>/x with one valid HS256 token
#     repeated; proxy_pass to the checked $turnpolicy_upstream_addr,
#     mapped to the keepalive upstream{} (an address it does not know maps
#     to nothing: proxy_pass fails, the run fails);
#  3. filter, first-seen HS256 tokens and 4. RS256 (2048-bit): NTOKENS
#     distinct valid tokens (tests/bench/nginx_tokens.c) cycled by
#     tests/bench/nginx.lua, on a second nginx whose verified-token cache
#     is off ("turnpolicy_cache off;" when the module knows the directive;
#     otherwise NTOKENS > its 4096 default, and the output says so);
#  5. auth_request: nginx's auth_request module asking our forward-auth
#     endpoint (turnpolicy_forward_auth, a server block of the first
#     nginx, over a keepalive upstream{}) with the one token of 2, the
#     upstream taken from its X-Turnpolicy-Upstream-Addr and
#     X-Turnpolicy-Path (skipped, and said so, when the module has no
#     turnpolicy_forward_auth).  auth_request's subrequest is header-only,
#     so nginx reuses the connection to the endpoint only when its 200
#     has no body; the output says when it has one.
#
# Rounds alternate between the setups; medians of ROUNDS rounds are
# printed, ratios are the medians of the per-round ratios.  Each run must
# have 0 non-2xx/3xx responses and 0 socket errors (the bench fails
# otherwise: measuring 401s is worthless; wrk counts 3xx as success, and
# nothing here answers one).  "worker CPU" is the nginx worker's
# user+system time per request; its ratio is printed too, being less
# sensitive than req/s to the other load of a shared machine.
# PERF="cached ..." adds a profile of those setups (see the end).
# Environment: ROUNDS, WRK_SECONDS, WRK_THREADS, WRK_CONN, NTOKENS, NUSERS.
# Nothing leaves 127.0.0.1.
# shellcheck disable=SC2154,SC2317  # tp_* come from lib.sh; run, warm,
# round are called through each_setup
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"
. "$(dirname "$0")/../redis.sh"

ROUNDS=${ROUNDS:-3}
WRK_SECONDS=${WRK_SECONDS:-3}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONN=${WRK_CONN:-16}
NTOKENS=${NTOKENS:-4500}   # per algorithm; > 4096, the cache's default
NUSERS=${NUSERS:-50}
d=$tp_tmpdir
so="$TP_ROOT/$BUILD/nginx/ngx_http_turnpolicy_module.so"
realm=bench.test
uphost=upstream.bench.test
iss=https://backend.bench.test
aud=turnpolicy
cd "$TP_ROOT" || exit 1

fail() {
    echo "nginx bench: $*" >&2
    exit 1
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
range() {
    sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
                   END { printf "%.0f-%.0f", lo, hi }'
}

for t in wrk /usr/sbin/nginx dnsmasq curl; do
    command -v "$t" >/dev/null || fail "no $t (scripts/install-deps.sh)"
done
make -s "$BUILD/lib/libturnpolicy.a" "$BUILD/bin/turnpolicy" ||
    fail "cannot build the library"
[ -f "$so" ] || make -s nginx-module || fail "cannot build the nginx module"
pkgs="openssl libjwt jansson libpq hiredis"
# shellcheck disable=SC2046,SC2086 # word splitting of $pkgs and flags
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
    -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O2 -g \
    -Ipolicy/include $(pkg-config --cflags $pkgs) -o "$d/tokens" \
    tests/bench/nginx_tokens.c "$BUILD/lib/libturnpolicy.a" -pthread \
    $(pkg-config --libs $pkgs) ||
    fail "cannot compile tests/bench/nginx_tokens.c"

# --------------------------------------------------------------------
# Keys and tokens (RS256 signing takes a while: in the background)
# --------------------------------------------------------------------
(umask 077
 printf 'bench-hs256-%s\n' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
     >"$d/hs.key"
 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
     -out "$d/rsa.key" 2>/dev/null &&
     openssl pkey -in "$d/rsa.key" -pubout -out "$d/rsa.pub" 2>/dev/null) ||
    fail "cannot make the JWT keys"
tp_bg tok_hs "$d/tokens" HS256 app1 "$d/hs.key" "$realm" "$iss" "$aud" \
    "$NUSERS" "$NTOKENS" 3600
tp_bg tok_rs "$d/tokens" RS256 rsa1 "$d/rsa.key" "$realm" "$iss" "$aud" \
    "$NUSERS" "$NTOKENS" 3600

# --------------------------------------------------------------------
# PostgreSQL, Redis, provisioning, dnsmasq
# --------------------------------------------------------------------
tp_pg_start || fail "PostgreSQL did not start"
tp_redis_start || fail "Redis did not start"
db="host=$TP_PG_SOCKDIR port=$TP_PG_PORT user=$TP_PG_SUPERUSER dbname=postgres"
"$TP_BIN/turnpolicy" migrate --database "$db" --schema-dir "$TP_ROOT/schema" \
    >"$d/migrate.out" 2>&1 || fail "migrate: $(cat "$d/migrate.out")"

up1=$(tp_free_port)   # the upstream server block of nginx "hot"
up2=$(tp_free_port)   # ... of nginx "cold"
dns_port=$(tp_free_port)
p_plain=$(tp_free_port)
p_filter=$(tp_free_port)
p_auth=$(tp_free_port)
p_fwd=$(tp_free_port)
p_cold=$(tp_free_port)
reader_pw="reader-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
tp_pg_psql -d postgres -v rsapub="$(cat "$d/rsa.pub")" \
    -v hskey="$(cat "$d/hs.key")" -v nusers="$NUSERS" \
    >"$d/provision.out" 2>&1 <<SQL ||
CREATE ROLE nginx_reader LOGIN PASSWORD '$reader_pw' IN ROLE turnpolicy_reader;
SELECT turnpolicy.create_realm('$realm', default_ttl => 600, max_ttl => 3600);
SELECT turnpolicy.rotate_secret('$realm');
SELECT turnpolicy.create_user('$realm', 'user' || i)
  FROM generate_series(1, :nusers) AS i;
SELECT turnpolicy.allow_host('$realm', '$uphost:$up1');
SELECT turnpolicy.allow_host('$realm', '$uphost:$up2');
SELECT turnpolicy.allow_peer('$realm', '127.0.0.0/8');
SELECT turnpolicy.add_jwt_key('$realm', 'app1', 'HS256',
       convert_to(:'hskey', 'UTF8'));
SELECT turnpolicy.add_jwt_key('$realm', 'rsa1', 'RS256',
       convert_to(:'rsapub', 'UTF8'));
SQL
    fail "provisioning: $(cat "$d/provision.out")"

tp_bg dnsmasq dnsmasq --keep-in-foreground --port="$dns_port" \
    --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --address=/#/127.0.0.1 --pid-file="$d/dnsmasq.pid" \
    --log-facility="$d/dnsmasq.log"

(umask 077
 printf '127.0.0.1:%s:*:nginx_reader:%s\n' "$TP_PG_PORT" "$reader_pw" \
     >"$d/reader.pgpass")
cat >"$d/turnpolicy.conf" <<CONF
database_url = "host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=nginx_reader passfile=$d/reader.pgpass connect_timeout=5"
jwt_issuer = $iss
jwt_audience = $aud
jwt_leeway = 5

[nginx]
redis = 127.0.0.1:$TP_REDIS_PORT
redis_password_file = $TP_REDIS_PASSWORD_FILE
max_staleness = 30
CONF
chmod 600 "$d/turnpolicy.conf"

# --------------------------------------------------------------------
# nginx: "hot" (baseline, filter, auth_request + forward-auth; the
# module's default cache) and "cold" (filter, cache off)
# --------------------------------------------------------------------
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
# ngx_conf NAME UPSTREAM-PORT FILTER-PORT EXTRA-HTTP SERVERS
#   -> $d/NAME/nginx.conf
ngx_conf() {
    local n=$d/$1
    mkdir -p "$n/logs" "$n/tmp"
    cat >"$n/nginx.conf" <<CONF
load_module $so;
$user_line
worker_processes 1;
daemon off;
error_log $n/logs/error.log notice;
pid $n/nginx.pid;
events { worker_connections 1024; }
http {
    turnpolicy_config $d/turnpolicy.conf;
    $4
    resolver 127.0.0.1:$dns_port ipv6=off valid=3600s;
    resolver_timeout 5s;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    access_log off;
    keepalive_requests 1000000;
    large_client_header_buffers 4 16k;
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    upstream up_keep {
        server 127.0.0.1:$2;
        keepalive 32;
        keepalive_requests 1000000;
    }
    # the checked address -> the keepalive upstream{}; anything else ->
    # "" and proxy_pass fails (500): a run with it fails loudly
    map \$turnpolicy_upstream_addr \$tp_up {
        default "";
        127.0.0.1:$2 up_keep;
    }

    # the upstream
    server {
        listen 127.0.0.1:$2;
        location / { return 200 "ok\n"; }
    }

    # the filter
    server {
        listen 127.0.0.1:$3;
        location /t/ {
            turnpolicy on;
            turnpolicy_token path;
            proxy_set_header Host \$turnpolicy_upstream;
            proxy_set_header Connection "";
            proxy_pass http://\$tp_up\$turnpolicy_path\$is_args\$args;
        }
    }
$5
}
CONF
}
servers_plain="
    # 1. the baseline: no filter, a fixed proxy_pass
    server {
        listen 127.0.0.1:$p_plain;
        location /t/ {
            proxy_set_header Host $uphost:$up1;
            proxy_set_header Connection \"\";
            proxy_pass http://up_keep;
        }
    }"
servers_auth="
    # 5. auth_request asking the forward-auth endpoint below
    upstream fwd_keep {
        server 127.0.0.1:$p_fwd;
        keepalive 32;
        keepalive_requests 1000000;
    }
    map \$fa_addr \$fa_up {
        default \"\";
        127.0.0.1:$up1 up_keep;
    }
    server {
        listen 127.0.0.1:$p_auth;
        location /t/ {
            auth_request /_auth;
            auth_request_set \$fa_addr \$upstream_http_x_turnpolicy_upstream_addr;
            auth_request_set \$fa_host \$upstream_http_x_turnpolicy_upstream;
            auth_request_set \$fa_path \$upstream_http_x_turnpolicy_path;
            proxy_set_header Host \$fa_host;
            proxy_set_header Connection \"\";
            proxy_pass http://\$fa_up\$fa_path;
        }
        location = /_auth {
            internal;
            proxy_pass http://fwd_keep;
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header Connection \"\";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
        }
    }
    # our forward-auth endpoint
    server {
        listen 127.0.0.1:$p_fwd;
        location / {
            turnpolicy_token path;
            turnpolicy_forward_auth /t/;
        }
    }"
# nginx -t FILE: 0, or 1 with the output in $d/nginx-t.out
ngx_t() {
    /usr/sbin/nginx -t -p "$(dirname "$1")" -c "$1" >"$d/nginx-t.out" 2>&1
}
unknown() { grep -q "unknown directive \"$1\"" "$d/nginx-t.out"; }

# Does the module know turnpolicy_cache and turnpolicy_forward_auth?
cache_off="turnpolicy_cache off;"
ngx_conf cold "$up2" "$p_cold" "$cache_off" ""
if ! ngx_t "$d/cold/nginx.conf"; then
    unknown turnpolicy_cache || fail "nginx -t (cold): $(cat "$d/nginx-t.out")"
    cache_off=""
    ngx_conf cold "$up2" "$p_cold" "" ""
    ngx_t "$d/cold/nginx.conf" || fail "nginx -t (cold): $(cat "$d/nginx-t.out")"
fi
fwd=1
ngx_conf hot "$up1" "$p_filter" "" "$servers_plain$servers_auth"
if ! ngx_t "$d/hot/nginx.conf"; then
    unknown turnpolicy_forward_auth ||
        fail "nginx -t (hot): $(cat "$d/nginx-t.out")"
    fwd=0
    ngx_conf hot "$up1" "$p_filter" "" "$servers_plain"
    ngx_t "$d/hot/nginx.conf" || fail "nginx -t (hot): $(cat "$d/nginx-t.out")"
fi

for n in hot cold; do
    tp_bg "nginx_$n" /usr/sbin/nginx -p "$d/$n" -c "$d/$n/nginx.conf"
done
for n in hot cold; do
    for _ in $(seq 150); do
        grep -q 'policy store loaded' "$d/$n/logs/error.log" 2>/dev/null &&
            break
        sleep 0.1
    done
    grep -q 'policy store loaded' "$d/$n/logs/error.log" 2>/dev/null ||
        fail "nginx $n: no policy store: $(tail -5 "$d/$n/logs/error.log")"
done
for p in $p_plain $p_filter $p_cold $dns_port; do
    tp_wait_port "$p" 10 || fail "nothing listens on 127.0.0.1:$p"
done
[ "$fwd" = 1 ] && { tp_wait_port "$p_auth" 10 || fail "auth_request server"; }
worker() { ps --ppid "$1" -o pid= | head -1 | tr -d ' '; }
w_hot=$(worker "$tp_pid_nginx_hot")
w_cold=$(worker "$tp_pid_nginx_cold")
if [ -z "$w_hot" ] || [ -z "$w_cold" ]; then
    fail "no nginx worker processes"
fi

# --------------------------------------------------------------------
# Request paths; each setup answers its first one with 200 "ok"
# --------------------------------------------------------------------
wait "$tp_pid_tok_hs" || fail "HS256 tokens: $(cat "$d/tok_hs.out")"
wait "$tp_pid_tok_rs" || fail "RS256 tokens: $(cat "$d/tok_rs.out")"
for a in hs rs; do
    [ "$(sort -u "$d/tok_$a.out" | wc -l)" = "$NTOKENS" ] ||
        fail "$a tokens: not $NTOKENS distinct ones"
done
tok1=$(head -1 "$d/tok_hs.out")
echo "/t/$tok1/$uphost:$up1/x" >"$d/one.paths"
sed "s|.*|/t/&/$uphost:$up2/x|" "$d/tok_hs.out" >"$d/hs.paths"
sed "s|.*|/t/&/$uphost:$up2/x|" "$d/tok_rs.out" >"$d/rs.paths"

# setup NAME PORT PATHS WORKER: the bench's five setups
setups="plain $p_plain one $w_hot
cached $p_filter one $w_hot
hs $p_cold hs $w_cold
rs $p_cold rs $w_cold"
[ "$fwd" = 1 ] && setups="$setups
auth $p_auth one $w_hot"

for s in plain cached hs rs auth; do
    line=$(echo "$setups" | awk -v s="$s" '$1 == s')
    [ -n "$line" ] || continue
    read -r _ port paths _ <<<"$line"
    body=$(curl -sS -o - -w ' %{http_code}' \
        "http://127.0.0.1:$port$(head -1 "$d/$paths.paths")" 2>&1)
    [ "$body" = "ok
 200" ] || fail "$s: the first request gets '$body', not 200 ok"
done

# auth_request's subrequest is header-only: nginx keeps its upstream
# connection only when the answer has no body (Content-Length: 0).
fwd_note=""
if [ "$fwd" = 1 ]; then
    fwd_len=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' \
        -H "X-Original-URI: $(cat "$d/one.paths")" -H 'X-Original-Method: GET' \
        "http://127.0.0.1:$p_fwd/_auth") || fail "forward-auth: no answer"
    case $fwd_len in
    "200 0") ;;
    "200 "*) fwd_note="# forward-auth answers 200 with a ${fwd_len#200 }-byte body: auth_request's header-only subrequest cannot reuse its connection then, so every check opens a new TCP connection to it" ;;
    *) fail "forward-auth answers $fwd_len" ;;
    esac
fi

# --------------------------------------------------------------------
# wrk runs
# --------------------------------------------------------------------
hz=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run NAME PORT PATHS WORKER SECONDS -> "rps p99_ms cpu_us_per_req", or fail
run() {
    local out="$d/wrk.$1.out" c0 c1
    c0=$(cpu "$4")
    wrk -t"$WRK_THREADS" -c"$WRK_CONN" -d"$5"s --latency \
        -s "$TP_ROOT/tests/bench/nginx.lua" "http://127.0.0.1:$2" \
        -- "$d/$3.paths" >"$out" 2>&1 || fail "wrk ($1): $(tail -5 "$out")"
    c1=$(cpu "$4")
    if grep -q 'Non-2xx' "$out" || grep -q 'Socket errors' "$out"; then
        fail "wrk ($1): $(grep -E 'Non-2xx|Socket errors|requests in' "$out" | tr '\n' ';') last error: $(tail -3 "$d"/*/logs/error.log | grep -E 'error|crit|alert' | tail -2)"
    fi
    awk -v c="$((c1 - c0))" -v hz="$hz" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000
            return v * 1000                      # "s"
        }
        $1 == "99%" { p99 = ms($2) }
        / requests in / { n = $1 }
        $1 == "Requests/sec:" { rps = $2 }
        END {
            if (n < 1 || rps <= 0 || p99 == "") exit 1
            printf "%.1f %.3f %.1f\n", rps, p99, c * 1e6 / hz / n
        }' "$out" || fail "wrk ($1): no result: $(cat "$out")"
}
each_setup() { # callback NAME PORT PATHS WORKER
    echo "$setups" | while read -r name port paths w; do
        "$1" "$name" "$port" "$paths" "$w" || exit 1
    done
}
warm() { run "$1" "$2" "$3" "$4" 1 >/dev/null; }
round() {
    local r
    r=$(run "$1" "$2" "$3" "$4" "$WRK_SECONDS") || exit 1
    echo "$r" >>"$d/res.$1"
}
each_setup warm || exit 1
: >"$d/res.plain" && : >"$d/res.cached" && : >"$d/res.hs" &&
    : >"$d/res.rs" && : >"$d/res.auth"
for _ in $(seq "$ROUNDS"); do
    each_setup round || exit 1
done

# --------------------------------------------------------------------
# Results
# --------------------------------------------------------------------
col() { awk -v c="$2" '{ print $c }' "$d/res.$1"; }
# ratios NUM DEN -> per-round ratios of req/s, one a line
ratios() { paste -d ' ' "$d/res.$1" "$d/res.$2" | awk '{ print $1 / $4 }'; }
# cpu_ratios NUM DEN -> per-round DEN/NUM worker CPU per request
cpu_ratios() { paste -d ' ' "$d/res.$1" "$d/res.$2" | awk '{ print $6 / $3 }'; }
# ratio_line LABEL NUM DEN GOAL
ratio_line() {
    printf '%s: %.2fx (%s%sby worker CPU per request %.2fx)\n' "$1" \
        "$(ratios "$2" "$3" | median)" "$4" "${4:+; }" \
        "$(cpu_ratios "$2" "$3" | median)"
}
line() { # NAME LABEL
    printf 'nginx_%s: %.0f req/s (%s), p99 %.2f ms, worker CPU %.1f us/req (%s)\n' \
        "$1" "$(col "$1" 1 | median)" "$(col "$1" 1 | range)" \
        "$(col "$1" 2 | median)" "$(col "$1" 3 | median)" "$2"
}
ver=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')
echo "# nginx $ver, 1 worker each; wrk -t$WRK_THREADS -c$WRK_CONN --latency, $ROUNDS alternating rounds of $WRK_SECONDS s per setup; medians (req/s range over rounds)"
echo "# upstream: a server block of the same nginx (return 200, 3 bytes) through upstream{} keepalive 32, plain HTTP everywhere"
if [ -n "$cache_off" ]; then
    echo "# first-seen rows: $NTOKENS distinct tokens cycled on an nginx with turnpolicy_cache off"
else
    echo "# turnpolicy_cache is not in this module: no verified-token cache, every request verifies its token (the cached row too); first-seen rows cycle $NTOKENS distinct tokens (> 4096, the planned default) so they would miss anyway"
fi
line plain "baseline: turnpolicy off, fixed proxy_pass"
line cached "one HS256 token repeated"
line hs "first-seen HS256 tokens"
line rs "first-seen RS256 tokens, RSA 2048"
if [ "$fwd" = 1 ]; then
    line auth "auth_request + turnpolicy_forward_auth, one HS256 token repeated"
    [ -n "$fwd_note" ] && echo "$fwd_note"
else
    echo "nginx_auth_request: not measured: forward-auth not available (the module has no turnpolicy_forward_auth)"
fi
ratio_line "nginx filter (cached token) vs nginx without filter" \
    cached plain "goal >= 0.95x"
ratio_line "nginx filter (first-seen HS256 tokens) vs nginx without filter" \
    hs plain ""
ratio_line "nginx filter (first-seen RS256 tokens) vs nginx without filter" \
    rs plain ""
if [ "$fwd" = 1 ]; then
    ratio_line "nginx filter (cached token) vs auth_request + forward-auth" \
        cached auth "goal >= 1.8x"
else
    echo "nginx filter (cached token) vs auth_request + forward-auth: not measured: forward-auth not available"
fi
# PERF="NAME..." (plain, cached, hs, rs, auth): one more run of each
# under `perf record` on its worker; prints where the worker's time went
# (self time: Debian's nginx has no frame pointers for call graphs).
for p in ${PERF:-}; do
    line=$(echo "$setups" | awk -v s="$p" '$1 == s')
    [ -n "$line" ] || fail "PERF=$p: no such setup"
    read -r _ port paths w <<<"$line"
    command -v perf >/dev/null || fail "PERF: no perf"
    perf record -q -o "$d/perf.data" -p "$w" -- sleep "$WRK_SECONDS" \
        >"$d/perf.out" 2>&1 &
    ppid=$!
    res=$(run "$p" "$port" "$paths" "$w" "$WRK_SECONDS") || exit 1
    wait "$ppid" || fail "perf record: $(tail -3 "$d/perf.out")"
    read -r rps _ us <<<"$res"
    printf '# perf, worker of setup %s (%.0f req/s, %.1f us CPU/req under perf), self time by library:\n' \
        "$p" "$rps" "$us"
    # "12.34%  libfoo.so" -> "12.34%  4.2 us/req  libfoo.so"
    perf report -i "$d/perf.data" --sort dso --stdio 2>/dev/null |
        awk -v us="$us" '/^ *[0-9.]+%/ {
            printf "#   %7s %6.1f us/req  %s\n", $1, $1 * us / 100, $2 }' |
        head -12
    echo "# ... and by user-space symbol (top 25):"
    perf report -i "$d/perf.data" --sort dso,symbol --stdio 2>/dev/null |
        awk -v us="$us" '/^ *[0-9.]+%/ && $2 != "[kernel.kallsyms]" {
            printf "#   %7s %6.2f us/req  %s %s\n", $1, $1 * us / 100, $2, $4 }' |
        head -25
done
if grep -E '\[(alert|crit|emerg)\]|exited on signal' "$d"/*/logs/error.log \
        >"$d/alerts" 2>/dev/null; then
    fail "nginx logged: $(head -3 "$d/alerts")"
fi
exit 0
