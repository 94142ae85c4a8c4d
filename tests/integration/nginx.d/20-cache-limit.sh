# 20-cache-limit.sh - part of nginx.sh (sourced; see README here): the
# worker's verified-token cache and turnpolicy_limit.
#
# A token cache is per worker, so what it does is seen on one connection
# (one worker) at a time: tc_conn below runs steps on one keep-alive TLS
# connection.  Covered: first use MISS, then HIT ($turnpolicy_token_cache
# in a header and in a log); refused tokens are not cached; a cached
# token is refused once its user is revoked, once its realm's JWT key is
# removed, and once past exp + leeway; a subject over a tight
# turnpolicy_limit gets 429 rate_limited with Retry-After on any worker
# while another subject, and the same subject where the limit is off,
# get 200; it recovers after Retry-After; the count survives a reload;
# the credentials endpoint is limited too; nginx -t refuses bad values.
# shellcheck shell=bash disable=SC2154,SC2015  # nginx.sh's variables; ok() never fails

# tc_conn STEP...: the steps on one TLS connection to nginx (one worker),
# one output line for each request step:
#   "CODE CACHE RETRY-AFTER WORKER TRIES BODY" ("-" for a missing header)
# Steps:
#   GET:PATH                       one request
#   UNTIL:CODE:TRIES:SECONDS:PATH  PATH until CODE, at most TRIES times,
#                                  SECONDS apart; the last answer
#   OTHER                          go on on a new connection that another
#                                  worker serves (prints "worker A B")
#   SLEEP:SECONDS, SLEEPUNTIL:UNIX-TIME
#   SQL:STATEMENT                  psql as the superuser
# A connection nginx closes is an error: the next request would go to
# any worker.
cat >"$d/tc_conn.py" <<'PY'
import http.client, socket, ssl, subprocess, sys, time

port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

class Conn(http.client.HTTPSConnection):
    def connect(self):
        s = socket.create_connection(("127.0.0.1", port), 10)
        self.sock = ctx.wrap_socket(s, server_hostname="proxy.test")

def connect():
    c = Conn("proxy.test", port, timeout=10)
    c.connect()
    c.auto_open = 0
    return c

def get(c, path):
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode(errors="replace").strip() or "-"
    h = lambda n: r.getheader(n) or "-"
    return r.status, h("X-Token-Cache"), h("Retry-After"), h("X-Worker"), body

c = connect()
worker = None
for step in sys.argv[3:]:
    kind, _, arg = step.partition(":")
    if kind == "GET":
        a = get(c, arg)
        worker = a[3]
        print(a[0], a[1], a[2], a[3], 1, a[4], flush=True)
    elif kind == "UNTIL":
        want, tries, pause, path = arg.split(":", 3)
        for n in range(1, int(tries) + 1):
            a = get(c, path)
            if str(a[0]) == want:
                break
            time.sleep(float(pause))
        worker = a[3]
        print(a[0], a[1], a[2], a[3], n, a[4], flush=True)
    elif kind == "OTHER":
        for _ in range(50):
            o = connect()
            w = get(o, "/tc/")[3]
            if worker is not None and w != worker:
                break
            o.close()
        else:
            sys.exit("no connection to another worker in 50 tries")
        print("worker", worker, w, flush=True)
        c, worker = o, w
    elif kind == "SLEEP":
        time.sleep(float(arg))
    elif kind == "SLEEPUNTIL":
        time.sleep(max(0.0, float(arg) - time.time()))
    elif kind == "SQL":
        subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                        "-d", "postgres", "-c", arg], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        sys.exit("unknown step " + step)
PY
tc_conn() { $py "$d/tc_conn.py" "$ngx_port" "$d/ca.pem" "$@" 2>&1; }
# line N of $out, and field F of it (tc_conn's columns, 1-based)
tc_line() { printf '%s\n' "$out" | sed -n "${1}p"; }
tc_field() { tc_line "$1" | cut -d' ' -f"$2"; }

tc_tokens=""
tc_jwt() { # VAR, then jwt's options: VAR=token, remembered for the log check
    local var=$1 t
    shift
    t=$(jwt "$@")
    tc_tokens="$tc_tokens $t"
    printf -v "$var" '%s' "$t"
}

# --------------------------------------------------------------------
# The token cache
# --------------------------------------------------------------------
tc_jwt tok --kid app1 --sub cache-ivan --realm acs.test --ttl 600
out=$(tc_conn "GET:/tc/$tok/$e/one" "GET:/tc/$tok/$e/two" \
              "GET:/tc/$tok/$e/three")
if [ "$(tc_field 1 1)-$(tc_field 1 2)" = 200-MISS ] &&
   [ "$(tc_field 2 1)-$(tc_field 2 2)" = 200-HIT ] &&
   [ "$(tc_field 3 1)-$(tc_field 3 2)" = 200-HIT ]; then
    ok "cache: a token's first use is a MISS, its next uses on that worker HITs"
else
    not_ok "cache MISS then HIT" "$out"
fi
if grep -q "/one 200 sub=cache-ivan cache=MISS reason=ok" "$ngx/logs/cache.log" &&
   grep -q "/two 200 sub=cache-ivan cache=HIT reason=ok" "$ngx/logs/cache.log"; then
    ok "cache: \$turnpolicy_token_cache in the access log (MISS, then HIT)"
else
    not_ok "cache: \$turnpolicy_token_cache logged" "$(tail -3 "$ngx/logs/cache.log")"
fi

out=$(tc_conn "GET:/tc/")
[ "$(tc_field 1 1)" = 401 ] && [ "$(tc_field 1 2)" = - ] &&
    ok "cache: \$turnpolicy_token_cache is empty when no token was checked" ||
    not_ok "cache: empty variable without a token" "$out"

out=$(tc_conn "GET:/tc/$tok_tampered/$e/x" "GET:/tc/$tok_tampered/$e/x")
[ "$(tc_line 2 | cut -d' ' -f1,2,6)" = '401 MISS {"error":"token_bad_signature"}' ] &&
    ok "cache: a refused token is not cached (MISS twice, token_bad_signature)" ||
    not_ok "cache: refused token not cached" "$out"

# Revocation: the cached token is refused once revoke_user reaches nginx
# (the subject is checked on every request, the cache's generation moves).
tc_jwt tok --kid app1 --sub cache-revoked --realm acs.test --ttl 600
out=$(tc_conn "GET:/tc/$tok/$e/x" "GET:/tc/$tok/$e/x" \
              "SQL:SELECT turnpolicy.revoke_user('acs.test', 'cache-revoked')" \
              "UNTIL:401:100:0.1:/tc/$tok/$e/x")
if [ "$(tc_field 2 2)" = HIT ] && [ "$(tc_field 3 1)" = 401 ] &&
   [ "$(tc_field 3 6)" = '{"error":"revoked"}' ]; then
    ok "cache: a cached token is refused (revoked) after revoke_user, same worker"
else
    not_ok "cache: revoked user's cached token" "$out"
fi

# Key removal: the realm's only JWT key goes; the cached token with it.
(umask 077
 printf 'nginx-test-hs256-cache-0123456789abcdef\n' >"$d/app3.key")
cat >"$d/cli-cache.conf" <<CONF
jwt_issuer = https://backend.test
jwt_audience = turnpolicy
jwt_key.app3 = HS256 $d/app3.key
CONF
tok=$("$tp_cli" --config "$d/cli-cache.conf" jwt issue --kid app3 --sub erin \
          --realm cache.test --ttl 600)
tc_tokens="$tc_tokens $tok"
out=$(tc_conn "GET:/tc/$tok/$e/x" "GET:/tc/$tok/$e/x" \
              "SQL:SELECT turnpolicy.remove_jwt_key('cache.test', 'app3')" \
              "UNTIL:401:100:0.1:/tc/$tok/$e/x")
if [ "$(tc_field 1 1)-$(tc_field 2 1)-$(tc_field 2 2)" = 200-200-HIT ] &&
   [ "$(tc_line 3 | cut -d' ' -f1,2,6)" = '401 MISS {"error":"token_unknown_kid"}' ]; then
    ok "cache: a cached token is refused (token_unknown_kid) once its realm's key is removed"
else
    not_ok "cache: removed key" "$out"
fi

# Expiry: exp + leeway (5 s) is 3 s ahead; a HIT before, 401 after.
now=$(date +%s)
tc_jwt tok --kid app1 --sub cache-ivan --realm acs.test --ttl 60 \
          --now $((now - 62))
out=$(tc_conn "GET:/tc/$tok/$e/x" "GET:/tc/$tok/$e/x" \
              "SLEEPUNTIL:$((now + 4))" "GET:/tc/$tok/$e/x")
if [ "$(tc_field 2 1)-$(tc_field 2 2)" = 200-HIT ] &&
   [ "$(tc_line 3 | cut -d' ' -f1,2,6)" = '401 MISS {"error":"token_expired"}' ]; then
    ok "cache: a cached token is refused (token_expired) once past exp + leeway"
else
    not_ok "cache: expiry of a cached token" "$out"
fi

# --------------------------------------------------------------------
# turnpolicy_limit
# --------------------------------------------------------------------
tc_jwt tok_a --kid app1 --sub limit-a --realm acs.test --ttl 600
tc_jwt tok_b --kid app1 --sub limit-b --realm acs.test --ttl 600
out=$(tc_conn "UNTIL:429:20:0:/rl/$tok_a/$e/x" "GET:/rl/$tok_b/$e/x" \
              "GET:/rl/free/$tok_a/$e/x" "SLEEP:1.1" "GET:/rl/$tok_a/$e/x")
if [ "$(tc_field 1 1)" = 429 ] && [ "$(tc_field 1 3)" = 1 ] &&
   [ "$(tc_field 1 6)" = '{"error":"rate_limited"}' ] &&
   [ "$(tc_field 1 5)" -ge 3 ]; then
    ok "limit: rate=1r/s burst=1: 429 rate_limited, Retry-After: 1, after $(($(tc_field 1 5) - 1)) requests"
else
    not_ok "limit: 429 with Retry-After" "$out"
fi
[ "$(tc_field 2 1)" = 200 ] &&
    ok "limit: another subject still gets 200 there" ||
    not_ok "limit: another subject" "$out"
[ "$(tc_field 3 1)" = 200 ] &&
    ok "limit: the same subject gets 200 in a nested location with turnpolicy_limit off" ||
    not_ok "limit: turnpolicy_limit off" "$out"
[ "$(tc_field 4 1)" = 200 ] &&
    ok "limit: the subject gets 200 again after Retry-After" ||
    not_ok "limit: recovery" "$out"
grep -q " 429 sub=limit-a cache=HIT reason=rate_limited" "$ngx/logs/cache.log" &&
    ok "limit: the 429 is logged with the subject and reason rate_limited" ||
    not_ok "limit: 429 logged" "$(tail -3 "$ngx/logs/cache.log")"

# One count for all workers: limited on one, limited on the other
# (rate=2 r/m: nothing drains while the test finds the other worker).
tc_jwt tok --kid app1 --sub limit-c --realm acs.test --ttl 600
out=$(tc_conn "GET:/rm/$tok/$e/x" "GET:/rm/$tok/$e/x" OTHER "GET:/rm/$tok/$e/x")
if [ "$(tc_field 1 1)-$(tc_field 2 1)-$(tc_field 3 1)-$(tc_field 4 1)" = 200-429-worker-429 ] &&
   [ "$(tc_field 4 4)" != "$(tc_field 2 4)" ]; then
    ok "limit: shared by the workers (429 on worker $(tc_field 2 4), then on $(tc_field 4 4))"
else
    not_ok "limit: shared by the workers" "$out"
fi

# rate=2 r/m: the second request waits ~30 s; the count survives a reload.
tc_jwt tok --kid app1 --sub limit-d --realm acs.test --ttl 600
out=$(tc_conn "GET:/rm/$tok/$e/x" "GET:/rm/$tok/$e/x")
ra=$(tc_field 2 3)
if [ "$(tc_field 1 1)-$(tc_field 2 1)" = 200-429 ] &&
   [ "$ra" -ge 25 ] 2>/dev/null && [ "$ra" -le 31 ]; then
    ok "limit: rate=2 r/m: the second request is refused with Retry-After: $ra"
else
    not_ok "limit: r/m" "$out"
fi
loaded=$(grep -c 'policy store loaded' "$ngx/logs/error.log")
exited=$(grep -c 'exited with code 0' "$ngx/logs/error.log")
kill -HUP "$tp_pid_nginx"
for _ in $(seq 100); do
    [ "$(grep -c 'policy store loaded' "$ngx/logs/error.log")" -ge $((loaded + 2)) ] &&
        [ "$(grep -c 'exited with code 0' "$ngx/logs/error.log")" -ge $((exited + 2)) ] &&
        break
    sleep 0.1
done
out=$(tc_conn "GET:/rm/$tok/$e/x")
[ "$(grep -c 'exited with code 0' "$ngx/logs/error.log")" -ge $((exited + 2)) ] &&
    [ "$(tc_field 1 1)" = 429 ] &&
    ok "limit: the count survives a reload (new workers still refuse, Retry-After: $(tc_field 1 3))" ||
    not_ok "limit: reload keeps the zone" "$out"

# The credentials endpoint is limited like a proxied request.
tc_jwt tok --kid app1 --sub limit-a --realm acs.test --ttl 600
req /rl-credentials -H "Authorization: Bearer $tok"
c1=$code
req /rl-credentials -H "Authorization: Bearer $tok"
if [ "$c1" = 200 ] && [ "$code" = 429 ] && [ "$body" = '{"error":"rate_limited"}' ] &&
   printf '%s' "$hdrs" | grep -qi '^Retry-After: [1-9]'; then
    ok "limit: the credentials endpoint answers 429 with Retry-After too"
else
    not_ok "limit: credentials endpoint" "$c1 $code $body"
fi

# --------------------------------------------------------------------
# No token of this part in nginx's logs
# --------------------------------------------------------------------
leaked=""
for t in $tc_tokens; do
    grep -qF "$t" "$ngx"/logs/*.log "$d/nginx.out" 2>/dev/null && leaked=1
done
[ -z "$leaked" ] &&
    ok "cache/limit: none of their $(echo "$tc_tokens" | wc -w) tokens in nginx's logs" ||
    not_ok "cache/limit: a token in nginx's logs"

# --------------------------------------------------------------------
# nginx -t
# --------------------------------------------------------------------
ngx_conf "$d/good.conf" "turnpolicy_cache off;
    turnpolicy_limit rate=600r/m burst=10 zone=1m;
    server { listen 127.0.0.1:$(tp_free_port);
             turnpolicy_limit rate=5 r/s;
             location / { turnpolicy_limit off; }
             location /x/ { location /x/y/ { turnpolicy_limit rate=1r/s; } } }"
if "${ngx_env[@]}" /usr/sbin/nginx -t -p "$ngx" -c "$d/good.conf" >"$d/good.out" 2>&1; then
    ok "nginx -t accepts turnpolicy_cache off and turnpolicy_limit at every level"
else
    not_ok "nginx -t accepts turnpolicy_cache/turnpolicy_limit" "$(grep emerg "$d/good.out")"
fi
bad "turnpolicy_cache abc" 'invalid value "abc" in "turnpolicy_cache" directive' \
    "turnpolicy_cache abc;"
bad "turnpolicy_cache -1" 'invalid value "-1" in "turnpolicy_cache" directive' \
    "turnpolicy_cache -1;"
bad "turnpolicy_cache above 1048576" 'invalid value "1048577" in "turnpolicy_cache"' \
    "turnpolicy_cache 1048577;"
bad "turnpolicy_cache in a location" '"turnpolicy_cache" directive is not allowed here' \
    "$(loc /x 'turnpolicy_cache 10;')"
bad "a duplicate turnpolicy_cache" '"turnpolicy_cache" directive is duplicate' \
    "turnpolicy_cache 10; turnpolicy_cache off;"
bad "turnpolicy_limit rate=0r/s" 'invalid rate "rate=0r/s" in "turnpolicy_limit" directive' \
    "$(loc /x 'turnpolicy_limit rate=0r/s;')"
bad "turnpolicy_limit rate=abc" 'invalid rate "rate=abc" in "turnpolicy_limit" directive' \
    "$(loc /x 'turnpolicy_limit rate=abc;')"
bad "turnpolicy_limit rate=10 (no unit)" 'invalid rate "rate=10"' \
    "$(loc /x 'turnpolicy_limit rate=10;')"
bad "turnpolicy_limit rate=10r/h" 'invalid rate "rate=10r/h"' \
    "$(loc /x 'turnpolicy_limit rate=10r/h;')"
bad "turnpolicy_limit rate=2000000r/s" 'invalid rate "rate=2000000r/s"' \
    "$(loc /x 'turnpolicy_limit rate=2000000r/s;')"
bad "turnpolicy_limit burst=-1" 'invalid burst "burst=-1" in "turnpolicy_limit" directive' \
    "$(loc /x 'turnpolicy_limit rate=1r/s burst=-1;')"
bad "turnpolicy_limit zone=4k (too small)" 'zone size "zone=4k" in "turnpolicy_limit" directive is too small' \
    "$(loc /x 'turnpolicy_limit rate=1r/s zone=4k;')"
bad "turnpolicy_limit zone=lots" 'invalid zone size "zone=lots"' \
    "$(loc /x 'turnpolicy_limit rate=1r/s zone=lots;')"
bad "turnpolicy_limit without rate=" '"turnpolicy_limit" directive needs "rate=N r/s"' \
    "$(loc /x 'turnpolicy_limit burst=5;')"
bad "turnpolicy_limit delay=1" 'invalid parameter "delay=1" in "turnpolicy_limit"' \
    "$(loc /x 'turnpolicy_limit rate=1r/s delay=1;')"
bad "turnpolicy_limit off with a rate" 'invalid parameter "off"' \
    "$(loc /x 'turnpolicy_limit off rate=1r/s;')"
bad "a duplicate turnpolicy_limit" '"turnpolicy_limit" directive is duplicate' \
    "$(loc /x 'turnpolicy_limit rate=1r/s; turnpolicy_limit off;')"
