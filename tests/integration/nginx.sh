#!/bin/bash
# nginx.sh - ngx_http_turnpolicy_module in Debian's stock nginx 1.22, as
# the ACS signaling proxy, against a fake ACS upstream.
#
# Builds the module (proxy-filter/build.sh), starts PostgreSQL 15 and
# Redis 7, provisions two realms with SQL (acs.test allows loopback peers,
# closed.test does not), starts dnsmasq on a loopback port resolving every
# name to 127.0.0.1, a TLS upstream (tests/integration/nginx_upstream.py,
# certificate from a CA made here) that echoes what it receives, and
# /usr/sbin/nginx with `load_module` serving TLS.  Then, with curl and a
# WebSocket client: allowed hosts with a valid token are proxied
# (GET/POST/PUT/DELETE, wss both ways) without the token path prefix;
# other hosts, IP literals, path tricks and a host resolving to a denied
# address are refused with 403; missing, expired, tampered, alg:none,
# HS-with-RSA-key and wrong-issuer tokens with 401; the credentials
# endpoint returns ICE JSON whose credential the store verifies; a revoked
# or disabled user is refused without reloading nginx; `nginx -t` rejects
# bad directive values; the directory the master makes for the workers'
# stores to share is removed when nginx quits (nginx.d/80-share: the
# directive turnpolicy_share_dir).  Nothing leaves 127.0.0.1.
# shellcheck disable=SC2154,SC2015  # tp_tmpdir, tp_pid_* come from lib.sh; ok() never fails
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"
. "$(dirname "$0")/../redis.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
tp_cli="$TP_BIN/turnpolicy"
so="$TP_ROOT/$BUILD/nginx/ngx_http_turnpolicy_module.so"
py=/usr/bin/python3

# --------------------------------------------------------------------
# Build
# --------------------------------------------------------------------
# `make` builds it (warnings are errors there); build it here only when
# this script runs on its own.
if [ -f "$so" ] ||
   BUILD=$BUILD "$TP_ROOT/proxy-filter/build.sh" >"$d/build.out" 2>&1; then
    ok "module built warning-free against nginx-dev ($(basename "$so"))"
else
    not_ok "module builds" "$(tail -5 "$d/build.out")"
    exit 1
fi

# A module built for `make asan` or `make tsan` needs the sanitizer
# runtimes in nginx.  libtsan cannot be dlopen()ed (its TLS does not fit
# in the static TLS block left after startup): preloaded, it is there
# from the start, the module's threads and locks are tracked, and the
# uninstrumented nginx core is invisible to it: the store's thread meets
# the event loop only through the library's (instrumented) locks and
# atomics, the thread pool's hand-back is annotated in the module
# (ngx_http_turnpolicy_credentials.c) and nginx's own exit handshake is
# suppressed (nginx.tsan.supp).  An nginx built with -fsanitize=thread
# would not do better: ThreadSanitizer would see the same unmodeled
# spinlock, fence and volatile flag, in nginx's code.
ngx_env=()
if nm -D "$so" 2>/dev/null | grep -q '__asan_init'; then
    ngx_env=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
             "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
elif nm -D "$so" 2>/dev/null | grep -q '__tsan_init'; then
    ngx_env=(env "LD_PRELOAD=$(gcc -print-file-name=libtsan.so)"
             "TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} suppressions=$TP_ROOT/tests/integration/nginx.tsan.supp")
fi
# What a crashed worker or a sanitizer report leaves in the logs.
ngx_crash='exited on signal|exited with code [1-9]|AddressSanitizer|ThreadSanitizer|runtime error:'

# --------------------------------------------------------------------
# Servers: PostgreSQL, Redis, schema, provisioning
# --------------------------------------------------------------------
if ! tp_pg_start; then
    not_ok "PostgreSQL starts"
    exit 1
fi
if ! tp_redis_start; then
    not_ok "Redis starts" "$(tail -5 "$d/redis/redis.log" 2>/dev/null)"
    exit 1
fi
ok "PostgreSQL on 127.0.0.1:$TP_PG_PORT, Redis on 127.0.0.1:$TP_REDIS_PORT"

db=$(tp_pg_superuser_db)
if ! "$tp_cli" migrate --database "$db" --schema-dir "$TP_ROOT/schema" \
        >"$d/migrate.out" 2>&1; then
    not_ok "migrate" "$(cat "$d/migrate.out")"
    exit 1
fi

up_port=$(tp_free_port)
closed_port=$(tp_free_port)   # nothing listens there (upstream failures)
ws_port=$(tp_free_port)
dns_port=$(tp_free_port)
ngx_port=$(tp_free_port)

# The JWT keys: HS256 secrets shared by the realm (SQL) and the token
# issuer (the CLI's jwt_key.<kid>), and an RSA key pair for the
# HS-with-RSA-key confusion test.
(umask 077
 printf 'nginx-test-hs256-secret-0123456789abcdef\n' >"$d/app1.key"
 printf 'nginx-test-hs256-closed-0123456789abcdef\n' >"$d/app2.key"
 printf 'reader-%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" \
     >"$d/reader.pw")
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$d/rsa.key" 2>/dev/null &&
    openssl pkey -in "$d/rsa.key" -pubout -out "$d/rsa.pub" 2>/dev/null
reader_pw=$(cat "$d/reader.pw")
# Hosts are allowed on the upstream's test ports only; port 443 is not.
psql_q() { tp_pg_psql -d postgres -At "$@"; }
if psql_q -v rsapub="$(cat "$d/rsa.pub")" >"$d/provision.out" 2>&1 <<SQL
CREATE ROLE nginx_reader LOGIN PASSWORD '$reader_pw' IN ROLE turnpolicy_reader;
SELECT turnpolicy.create_realm('acs.test', default_ttl => 600, max_ttl => 3600,
       turn_urls => ARRAY['turn:127.0.0.1:3478?transport=udp']);
SELECT turnpolicy.rotate_secret('acs.test');
SELECT turnpolicy.create_user('acs.test', u)
  FROM unnest(ARRAY['alice', 'bob', 'carol']) AS u;
SELECT turnpolicy.allow_host('acs.test', 'edge.skype.com:$up_port');
SELECT turnpolicy.allow_host('acs.test', '*.communication.azure.com:$up_port');
SELECT turnpolicy.allow_host('acs.test', 'api.flightproxy.skype.com:$up_port', '/api/');
SELECT turnpolicy.allow_host('acs.test', 'go.trouter.communication.microsoft.com:$ws_port');
SELECT turnpolicy.allow_peer('acs.test', '127.0.0.0/8');
SELECT turnpolicy.add_jwt_key('acs.test', 'app1', 'HS256',
       convert_to('nginx-test-hs256-secret-0123456789abcdef', 'UTF8'));
SELECT turnpolicy.add_jwt_key('acs.test', 'rsa1', 'RS256',
       convert_to(:'rsapub', 'UTF8'));
SELECT turnpolicy.create_realm('closed.test');
SELECT turnpolicy.rotate_secret('closed.test');
SELECT turnpolicy.create_user('closed.test', 'dave');
SELECT turnpolicy.allow_host('closed.test', 'edge.skype.com:$up_port');
SELECT turnpolicy.add_jwt_key('closed.test', 'app2', 'HS256',
       convert_to('nginx-test-hs256-closed-0123456789abcdef', 'UTF8'));
SQL
then
    ok "realms acs.test (loopback peers allowed) and closed.test provisioned"
else
    not_ok "provisioning" "$(cat "$d/provision.out")"
    exit 1
fi
# The parts under nginx.d/ provision what they need (psql variables
# :up_port, :ws_port, :closed_port; see nginx.d/README).
for f in "$TP_ROOT"/tests/integration/nginx.d/*.sql; do
    [ -e "$f" ] || continue
    if ! psql_q -v ON_ERROR_STOP=1 -v up_port="$up_port" -v ws_port="$ws_port" \
            -v closed_port="$closed_port" \
            -f "$f" >"$d/provision-part.out" 2>&1; then
        not_ok "provisioning $(basename "$f")" "$(cat "$d/provision-part.out")"
        exit 1
    fi
done

# --------------------------------------------------------------------
# Tokens (the CLI issues them with the same keys)
# --------------------------------------------------------------------
cat >"$d/cli.conf" <<CONF
jwt_issuer = https://backend.test
jwt_audience = turnpolicy
jwt_key.app1 = HS256 $d/app1.key
jwt_key.app2 = HS256 $d/app2.key
CONF
cat >"$d/cli-evil.conf" <<CONF
jwt_issuer = https://evil.test
jwt_audience = turnpolicy
jwt_key.app1 = HS256 $d/app1.key
CONF
jwt() { "$tp_cli" --config "$d/cli.conf" jwt issue "$@"; }
tok_alice=$(jwt --kid app1 --sub alice --realm acs.test --ttl 600)
tok_bob=$(jwt --kid app1 --sub bob --realm acs.test --ttl 600)
tok_carol=$(jwt --kid app1 --sub carol --realm acs.test --ttl 600)
tok_nobody=$(jwt --kid app1 --sub mallory --realm acs.test --ttl 600)
tok_dave=$(jwt --kid app2 --sub dave --realm closed.test --ttl 600)
tok_expired=$(jwt --kid app1 --sub alice --realm acs.test --ttl 60 \
                  --now $(($(date +%s) - 3600)))
tok_evil=$("$tp_cli" --config "$d/cli-evil.conf" jwt issue --kid app1 \
               --sub alice --realm acs.test --ttl 600)
tok_norealm=$(jwt --kid app1 --sub alice --realm nosuch.test --ttl 600)
# Flip one character in the middle of the signature.
tok_tampered=$($py - "$tok_alice" <<'PY'
import sys
h, p, s = sys.argv[1].split(".")
i = len(s) // 2
s = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
print(".".join([h, p, s]))
PY
)
# alg:none with alice's claims; and HS256 signed with the realm's RSA
# public key PEM as the HMAC secret (kid rsa1): the confusion attack.
forge() {
    $py - "$tok_alice" "$@" <<'PY'
import base64, hashlib, hmac, json, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
claims = json.loads(unb64(sys.argv[1].split(".")[1]))
if sys.argv[2] == "none":
    h = {"alg": "none", "typ": "JWT", "kid": "app1"}
    print(b64(json.dumps(h).encode()) + "." +
          b64(json.dumps(claims).encode()) + ".")
else:
    h = {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}
    m = b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())
    key = open(sys.argv[3], "rb").read()
    print(m + "." + b64(hmac.new(key, m.encode(), hashlib.sha256).digest()))
PY
}
tok_none=$(forge none)
tok_confused=$(forge rsa "$d/rsa.pub")
if [ -n "$tok_alice" ] && [ -n "$tok_expired" ] && [ -n "$tok_none" ] &&
   [ -n "$tok_confused" ] && [ -n "$tok_dave" ]; then
    ok "tokens issued with turnpolicy jwt issue (and forged ones)"
else
    not_ok "tokens"
    exit 1
fi

# --------------------------------------------------------------------
# TLS: a CA, the upstream's certificate (every test name) and the proxy's
# --------------------------------------------------------------------
tls() {
    local name=$1 san=$2
    openssl req -new -newkey rsa:2048 -nodes -keyout "$d/$name.key" \
        -subj "/CN=$name" -out "$d/$name.csr" 2>/dev/null &&
    # The extensions Python >= 3.13 requires (VERIFY_X509_STRICT).
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n' \
        "$san" >"$d/$name.ext" &&
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/$name.ext" \
        -out "$d/$name.pem" 2>/dev/null
}
if openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$d/ca.key" \
        -subj "/CN=turnpolicy test CA" -days 2 -out "$d/ca.pem" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null &&
   tls upstream "DNS:edge.skype.com,DNS:*.communication.azure.com,DNS:api.flightproxy.skype.com,DNS:go.trouter.communication.microsoft.com,DNS:evil.com,DNS:x.cloudapp.azure.com" &&
   tls proxy "DNS:proxy.test"; then
    ok "test CA and certificates made with openssl"
else
    not_ok "openssl certificates"
    exit 1
fi

# --------------------------------------------------------------------
# dnsmasq (every name -> 127.0.0.1), the fake upstream, nginx
# --------------------------------------------------------------------
tp_bg dnsmasq dnsmasq --keep-in-foreground --port="$dns_port" \
    --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --address=/#/127.0.0.1 --pid-file="$d/dnsmasq.pid" \
    --log-facility="$d/dnsmasq.log"
tp_bg upstream $py "$TP_ROOT/tests/integration/nginx_upstream.py" \
    "$up_port" "$d/upstream.pem" "$d/upstream.key" "$d/upstream.log" \
    --ws-port "$ws_port"
if tp_wait_port "$up_port" 10 && tp_wait_port "$ws_port" 10; then
    ok "dnsmasq on 127.0.0.1:$dns_port, TLS upstream on 127.0.0.1:$up_port (+ wss $ws_port)"
else
    not_ok "upstream starts" "$(cat "$d/upstream.out")"
    exit 1
fi

(umask 077
 printf '127.0.0.1:%s:*:nginx_reader:%s\n' "$TP_PG_PORT" "$reader_pw" \
     >"$d/reader.pgpass")
cat >"$d/turnpolicy.conf" <<CONF
database_url = "host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=nginx_reader passfile=$d/reader.pgpass connect_timeout=5"
jwt_issuer = https://backend.test
jwt_audience = turnpolicy
jwt_leeway = 5

[nginx]
redis = 127.0.0.1:$TP_REDIS_PORT
redis_password_file = $TP_REDIS_PASSWORD_FILE
max_staleness = 30
issue_per_minute = 5
CONF

ngx=$d/nginx
mkdir -p "$ngx/logs" "$ngx/tmp"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
# Everything in http{} but the server: shared by the nginx -t tests.
http_common="
    turnpolicy_config $d/turnpolicy.conf;
    resolver 127.0.0.1:$dns_port ipv6=off valid=10s;
    resolver_timeout 5s;
    client_body_temp_path $ngx/tmp/body;
    proxy_temp_path $ngx/tmp/proxy;
    fastcgi_temp_path $ngx/tmp/fastcgi;
    uwsgi_temp_path $ngx/tmp/uwsgi;
    scgi_temp_path $ngx/tmp/scgi;
    log_format tp '\$remote_addr \$request_method \$turnpolicy_upstream\$turnpolicy_path '
                  '\$status sub=\$turnpolicy_sub realm=\$turnpolicy_realm reason=\$turnpolicy_reason';
    access_log $ngx/logs/access.log tp;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
"
ngx_conf() { # file, extra http{} text
    cat >"$1" <<CONF
load_module $so;
$user_line
worker_processes 2;
daemon off;
error_log $ngx/logs/error.log info;
pid $ngx/nginx.pid;
events { worker_connections 128; }
http {
$http_common
$2
}
CONF
}
# nginx.d/*.http.conf and *.server.conf: the parts' own configuration,
# with @D@, @NGX@, @UP_PORT@, @WS_PORT@, @DNS_PORT@, @NGX_PORT@ and
# @PORT1@..@PORT7@ (free ports the parts may listen on) replaced.
port1=$(tp_free_port)
port2=$(tp_free_port)
port3=$(tp_free_port)
port4=$(tp_free_port)
port5=$(tp_free_port)
port6=$(tp_free_port)
port7=$(tp_free_port)
mkdir -p "$d/nginx.d"
for kind in http server; do
    for f in "$TP_ROOT"/tests/integration/nginx.d/*."$kind".conf; do
        [ -e "$f" ] || continue
        sed -e "s|@D@|$d|g" -e "s|@NGX@|$ngx|g" -e "s|@UP_PORT@|$up_port|g" \
            -e "s|@WS_PORT@|$ws_port|g" -e "s|@DNS_PORT@|$dns_port|g" \
            -e "s|@NGX_PORT@|$ngx_port|g" -e "s|@PORT1@|$port1|g" \
            -e "s|@PORT2@|$port2|g" -e "s|@PORT3@|$port3|g" \
            -e "s|@PORT4@|$port4|g" -e "s|@PORT5@|$port5|g" \
            -e "s|@PORT6@|$port6|g" -e "s|@PORT7@|$port7|g" "$f"
    done >"$d/nginx.d/$kind.conf"
done
ngx_conf "$ngx/nginx.conf" "
    include $d/nginx.d/http.conf;
    server {
        listen 127.0.0.1:$ngx_port ssl;
        server_name proxy.test;
        ssl_certificate $d/proxy.pem;
        ssl_certificate_key $d/proxy.key;
        large_client_header_buffers 4 32k;

        proxy_set_header Host \$turnpolicy_upstream;
        proxy_ssl_name \$turnpolicy_upstream_host;
        proxy_ssl_server_name on;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate $d/ca.pem;
        proxy_http_version 1.1;
        proxy_set_header Upgrade \$http_upgrade;
        proxy_set_header Connection \$connection_upgrade;
        proxy_redirect off;

        location /t/ {
            turnpolicy on;
            turnpolicy_token path;
            proxy_pass https://\$turnpolicy_upstream_addr\$turnpolicy_path\$is_args\$args;
        }

        # the other token sources; the upstream from a variable
        location /h/ {
            turnpolicy on;
            turnpolicy_token header:X-Turnpolicy-Token;
            turnpolicy_upstream \$http_x_upstream;
            # (proxy_set_header here replaces the server's: repeat Host)
            proxy_set_header Host \$turnpolicy_upstream;
            proxy_set_header X-Turnpolicy-Token \"\";
            proxy_pass https://\$turnpolicy_upstream_addr\$turnpolicy_path\$is_args\$args;
        }
        location /c/ {
            turnpolicy on;
            turnpolicy_token cookie:tp;
            proxy_pass https://\$turnpolicy_upstream_addr\$turnpolicy_path\$is_args\$args;
        }
        location /a/ {
            turnpolicy on;
            turnpolicy_token arg:access_token;
            proxy_pass https://\$turnpolicy_upstream_addr\$turnpolicy_path?\$turnpolicy_args;
        }

        location = /credentials {
            turnpolicy_token header:Authorization;
            turnpolicy_credentials on;
            turnpolicy_turn_urls turn:127.0.0.1:3478?transport=udp
                                 turns:127.0.0.1:5349?transport=tcp;
        }

        # Without turnpolicy_turn_urls: the realm's own turn_urls.
        location = /credentials-realm {
            turnpolicy_token header:Authorization;
            turnpolicy_credentials on;
        }

        include $d/nginx.d/server.conf;

        location / {
            return 404;
        }
    }
"
if "${ngx_env[@]}" /usr/sbin/nginx -t -p "$ngx" -c "$ngx/nginx.conf" >"$d/nginx-t.out" 2>&1
then
    ok "nginx -t accepts the configuration with load_module"
else
    not_ok "nginx -t" "$(tail -3 "$d/nginx-t.out")"
    exit 1
fi
tp_bg nginx "${ngx_env[@]}" /usr/sbin/nginx -p "$ngx" -c "$ngx/nginx.conf"
loaded=0
for _ in $(seq 100); do
    [ "$(grep -c 'policy store loaded' "$ngx/logs/error.log" 2>/dev/null)" -ge 2 ] &&
        { loaded=1; break; }
    sleep 0.1
done
if [ $loaded = 1 ] && tp_wait_port "$ngx_port" 5; then
    ok "nginx started; each of its 2 workers loaded a policy store"
else
    not_ok "nginx starts" "$(tail -5 "$ngx/logs/error.log" 2>/dev/null)"
    exit 1
fi

# --------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------
base="https://proxy.test:$ngx_port"
# req PATH [curl args]: sets $code, $body and $hdrs.
req() {
    local p=$1
    shift
    code=$(curl -sS --path-as-is --cacert "$d/ca.pem" \
        --resolve "proxy.test:$ngx_port:127.0.0.1" -o "$d/body" \
        -D "$d/hdrs" -w '%{http_code}' "$@" "$base$p" 2>"$d/curl.err")
    body=$(cat "$d/body" 2>/dev/null)
    hdrs=$(cat "$d/hdrs" 2>/dev/null)
}
# expect NAME CODE REASON PATH [curl args]: REASON "" = any body.
expect() {
    local name=$1 want=$2 reason=$3
    shift 3
    req "$@"
    if [ "$code" != "$want" ]; then
        not_ok "$name" "HTTP $code, want $want: $body $(cat "$d/curl.err")"
    elif [ -n "$reason" ] && [ "$body" != "{\"error\":\"$reason\"}" ]; then
        not_ok "$name" "body $body, want reason $reason"
    else
        ok "$name"
    fi
}
json() { # field of $body
    printf '%s' "$body" | $py -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" 2>/dev/null
}
e=edge.skype.com:$up_port

req "/t/$tok_alice/$e/api/v1/thing?x=1&y=2"
if [ "$code" = 200 ] && [ "$(json method)" = GET ] &&
   [ "$(json path)" = "/api/v1/thing?x=1&y=2" ] && [ "$(json host)" = "$e" ]; then
    ok "GET to an allowed host is proxied as GET /api/v1/thing?x=1&y=2, Host $e"
else
    not_ok "GET proxied" "HTTP $code $body"
fi
for m in POST PUT DELETE; do
    req "/t/$tok_alice/$e/calls/$m" -X "$m" -H 'Content-Type: application/json' \
        --data-binary "{\"m\":\"$m\"}"
    if [ "$code" = 200 ] && [ "$(json method)" = "$m" ] &&
       [ "$(json path)" = "/calls/$m" ] && [ "$(json body)" = "{\"m\":\"$m\"}" ]; then
        ok "$m with a body is proxied"
    else
        not_ok "$m proxied" "HTTP $code $body"
    fi
done
req "/t/$tok_alice/res1.communication.azure.com:$up_port/chat"
[ "$code" = 200 ] && [ "$(json host)" = "res1.communication.azure.com:$up_port" ] &&
    ok "*.communication.azure.com matches res1.communication.azure.com" ||
    not_ok "wildcard host" "HTTP $code $body"
req "/t/$tok_alice/proxy.test:$ngx_port/t/$tok_alice/$e/nested?q=1"
[ "$code" = 200 ] && [ "$(json path)" = "/nested?q=1" ] &&
    ok "the SDK's doubly rewritten URL (own host, nested prefix) is unwrapped" ||
    not_ok "nested prefix" "HTTP $code $body"
req "/t/$tok_alice/$e//ecs/config"
[ "$code" = 200 ] && [ "$(json path)" = "//ecs/config" ] &&
    ok "the SDK's '//' after the host is kept as it is" ||
    not_ok "double slash" "HTTP $code $body"
expect "a path-prefix rule admits its prefix" 200 "" \
    "/t/$tok_alice/api.flightproxy.skype.com:$up_port/api/v2/cpconv"
expect "a path-prefix rule refuses other paths" 403 host_denied \
    "/t/$tok_alice/api.flightproxy.skype.com:$up_port/admin"
if grep -qF "$tok_alice" "$d/upstream.log"; then
    not_ok "the token path prefix is not sent upstream"
else
    ok "the token path prefix is not sent upstream ($(wc -l <"$d/upstream.log") requests seen)"
fi

# Header, cookie and argument tokens; the upstream from a variable.
req /h/echo -H "X-Turnpolicy-Token: $tok_alice" -H "X-Upstream: $e"
[ "$code" = 200 ] && [ "$(json path)" = /echo ] && [ "$(json host)" = "$e" ] &&
    ok "header token, upstream from turnpolicy_upstream \$http_x_upstream" ||
    not_ok "header token" "HTTP $code $body"
expect "turnpolicy_upstream naming evil.com: 403" 403 host_denied /h/echo \
    -H "X-Turnpolicy-Token: Bearer $tok_alice" -H "X-Upstream: evil.com:$up_port"
expect "the token header given twice: 401" 401 token_malformed /h/echo \
    -H "X-Turnpolicy-Token: $tok_alice" -H "X-Turnpolicy-Token: $tok_bob" \
    -H "X-Upstream: $e"
req "/c/$e/x" -H "Cookie: a=b; tp=$tok_alice; c=d"
[ "$code" = 200 ] && [ "$(json path)" = /x ] && ok "cookie token" ||
    not_ok "cookie token" "HTTP $code $body"
req "/a/$e/x?keep=1&access_token=$tok_alice&also=2"
[ "$code" = 200 ] && [ "$(json path)" = "/x?keep=1&also=2" ] &&
    ok "argument token, removed from \$turnpolicy_args" ||
    not_ok "argument token" "HTTP $code $body"

# WebSocket upgrade through the proxy, messages both ways.
ws_out=$($py - "wss://proxy.test:$ngx_port/t/$tok_alice/go.trouter.communication.microsoft.com:$ws_port/v4/c" \
    "$d/ca.pem" "$ngx_port" 2>&1 <<'PY'
import asyncio, ssl, sys, websockets
url, ca, port = sys.argv[1:4]
async def main():
    ctx = ssl.create_default_context(cafile=ca)
    # proxy.test -> 127.0.0.1: connect to the address, verify the name
    async with websockets.connect(url, ssl=ctx, host="127.0.0.1",
                                  port=int(port),
                                  server_hostname="proxy.test") as ws:
        for m in ("hello", "world"):
            await ws.send(m)
            print(await ws.recv())
asyncio.run(main())
PY
)
[ "$ws_out" = "$(printf 'echo:hello\necho:world')" ] &&
    ok "wss upgrade is proxied and carries messages both ways" ||
    not_ok "wss" "$ws_out"

# Hosts and paths the realm does not allow.
expect "evil.com is refused" 403 host_denied "/t/$tok_alice/evil.com:$up_port/x"
expect "x.cloudapp.azure.com is refused" 403 host_denied \
    "/t/$tok_alice/x.cloudapp.azure.com:$up_port/x"
expect "an IP literal is refused" 403 bad_host "/t/$tok_alice/127.0.0.1:$up_port/x"
expect "an allowed host on a port not allowed (443) is refused" 403 host_denied \
    "/t/$tok_alice/edge.skype.com/x"
expect "edge.skype.com@evil.com is refused" 403 bad_host \
    "/t/$tok_alice/edge.skype.com@evil.com:$up_port/x"
expect "an encoded slash is refused" 403 bad_path \
    "/t/$tok_alice/$e%2F..%2Fevil.com/x"
expect "a .. segment is refused" 403 bad_path \
    "/t/$tok_alice/$e/../../evil.com:$up_port/x"
expect "a host resolving to an address the realm does not allow is refused" \
    403 peer_denied "/t/$tok_dave/$e/x"

# Tokens.
expect "no token: 401" 401 token_missing "/t/"
printf '%s' "$hdrs" | grep -qi '^WWW-Authenticate: Bearer' &&
    ok "401 carries WWW-Authenticate: Bearer" || not_ok "WWW-Authenticate"
expect "expired token: 401" 401 token_expired "/t/$tok_expired/$e/x"
printf '%s' "$hdrs" | grep -qi '^WWW-Authenticate: Bearer error="invalid_token"' &&
    ok "... with error=\"invalid_token\"" || not_ok "invalid_token challenge"
expect "tampered token: 401" 401 token_bad_signature "/t/$tok_tampered/$e/x"
expect "alg:none token: 401" 401 "" "/t/$tok_none/$e/x"
expect "HS256 token signed with the realm's RSA public key: 401" 401 \
    token_bad_alg "/t/$tok_confused/$e/x"
expect "token from another issuer: 401" 401 token_bad_issuer "/t/$tok_evil/$e/x"
expect "token naming an unknown realm: 401" 401 unknown_realm \
    "/t/$tok_norealm/$e/x"
expect "token whose subject is not a user of the realm: 403" 403 unknown_user \
    "/t/$tok_nobody/$e/x"
expect "garbage token: 401" 401 token_malformed "/t/not-a-token/$e/x"
expect "oversized token (9000 bytes): 401" 401 too_long \
    "/t/$(head -c 9000 /dev/zero | tr '\0' a)/$e/x"
expect "oversized Authorization header: 401" 401 too_long /credentials \
    -H "Authorization: Bearer $(head -c 20000 /dev/zero | tr '\0' a)"
if grep -qF -e "$tok_alice" -e "$tok_tampered" -e "$tok_expired" \
        "$ngx/logs/error.log" "$ngx/logs/access.log"; then
    not_ok "no token in nginx's logs"
else
    ok "no token in nginx's error and access logs"
fi

# Credentials endpoint.
expect "credentials without a token: 401" 401 token_missing /credentials
req /credentials -H "Authorization: Bearer $tok_alice"
cred=$(printf '%s' "$body" | $py -c '
import json, sys
j = json.load(sys.stdin)
s = j["iceServers"][0]
assert s["urls"] == ["turn:127.0.0.1:3478?transport=udp",
                     "turns:127.0.0.1:5349?transport=tcp"], s["urls"]
assert j["ttl"] == 600, j["ttl"]
print(s["username"]); print(s["credential"])' 2>&1)
cred_user=$(printf '%s\n' "$cred" | sed -n 1p)
cred_pass=$(printf '%s\n' "$cred" | sed -n 2p)
if [ "$code" = 200 ] && printf '%s' "$hdrs" | grep -qi '^Cache-Control: no-store' &&
   case $cred_user in *:alice:*) true ;; *) false ;; esac; then
    ok "credentials endpoint: ICE JSON for alice (realm TTL 600, no-store)"
else
    not_ok "credentials endpoint" "HTTP $code $body $cred"
fi
if printf '%s' "$cred_pass" | "$tp_cli" verify --database "$db" --realm acs.test \
        --username "$cred_user" --password - >"$d/verify.out" 2>&1; then
    ok "the issued credential verifies with turnpolicy verify --database"
else
    not_ok "credential verifies" "$(cat "$d/verify.out")"
fi
req /credentials -X PUT -H "Authorization: Bearer $tok_alice"
[ "$code" = 405 ] && ok "credentials endpoint: PUT is 405" ||
    not_ok "credentials PUT" "HTTP $code"

# Revocation and disabling reach running workers (no reload).
psql_q -c "SELECT turnpolicy.revoke_user('acs.test', 'bob')" >/dev/null
psql_q -c "SELECT turnpolicy.disable_user('acs.test', 'carol')" >/dev/null
t0=$(date +%s%N)
refused=""
for _ in $(seq 100); do
    req "/t/$tok_bob/$e/x"
    c1=$code
    req "/t/$tok_bob/$e/x"   # the other worker, most likely
    [ "$c1" = 401 ] && [ "$code" = 401 ] && { refused=1; break; }
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ -n "$refused" ] && [ "$body" = '{"error":"revoked"}' ] &&
    ok "bob's token is refused ($body) ${ms} ms after revoke_user, no reload" ||
    not_ok "revocation" "HTTP $code $body"
expect "a disabled user's token: 403" 403 user_disabled "/t/$tok_carol/$e/x"
sleep 1.1   # revoked_before is the next whole second
tok_bob2=$(jwt --kid app1 --sub bob --realm acs.test --ttl 600)
expect "a token issued to bob after the revocation is accepted" 200 "" \
    "/t/$tok_bob2/$e/x"
expect "alice is unaffected" 200 "" "/t/$tok_alice/$e/x"

# Reload: new workers load their own stores, old ones free theirs.
kill -HUP "$tp_pid_nginx"
for _ in $(seq 100); do
    [ "$(grep -c 'policy store loaded' "$ngx/logs/error.log")" -ge 4 ] &&
        [ "$(grep -c 'worker process .* exited with code 0' "$ngx/logs/error.log")" -ge 2 ] &&
        break
    sleep 0.1
done
req "/t/$tok_alice/$e/after-reload"
[ "$code" = 200 ] &&
    [ "$(grep -c 'exited with code 0' "$ngx/logs/error.log")" -ge 2 ] &&
    ok "reload: new workers load the policy, old ones exit cleanly" ||
    not_ok "reload" "HTTP $code; $(grep -E 'exited|loaded' "$ngx/logs/error.log" | tail -4)"

# bad NAME MESSAGE HTTP-TEXT: nginx -t refuses the configuration with
# MESSAGE (grep -F); loc PREFIX TEXT: a server with one location.
bad() { # name, expected message (grep -F), http{} text
    local name=$1 msg=$2
    ngx_conf "$d/bad.conf" "$3"
    if "${ngx_env[@]}" /usr/sbin/nginx -t -p "$ngx" -c "$d/bad.conf" >"$d/bad.out" 2>&1; then
        not_ok "nginx -t refuses $name" "accepted"
    elif grep -qF -- "$msg" "$d/bad.out"; then
        ok "nginx -t refuses $name"
    else
        not_ok "nginx -t refuses $name" "$(grep emerg "$d/bad.out")"
    fi
}
loc() { printf 'server { listen 127.0.0.1:%s; location %s { %s } }' \
    "$(tp_free_port)" "$1" "$2"; }

# --------------------------------------------------------------------
# The parts: nginx.d/*.sh, sourced here with nginx running (see
# nginx.d/README for what they may use)
# --------------------------------------------------------------------
for f in "$TP_ROOT"/tests/integration/nginx.d/*.sh; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC1090
    . "$f"
done

# --------------------------------------------------------------------
# nginx -t refuses bad directive values with a clear message
# --------------------------------------------------------------------
bad "turnpolicy_token bogus:x" 'invalid value "bogus:x" in "turnpolicy_token" directive' \
    "$(loc /t/ 'turnpolicy on; turnpolicy_token bogus:x;')"
bad "turnpolicy_token header: (no name)" 'invalid value "header:" in "turnpolicy_token"' \
    "$(loc /t/ 'turnpolicy on; turnpolicy_token header:;')"
bad "turnpolicy maybe" 'invalid value "maybe" in "turnpolicy" directive' \
    "$(loc /t/ 'turnpolicy maybe;')"
bad "turnpolicy_token path in a regex location" '"turnpolicy_token path" needs a prefix location' \
    "$(loc '~ ^/t/' 'turnpolicy on;')"
bad "a non-TURN URL in turnpolicy_turn_urls" 'invalid value "http://x" in "turnpolicy_turn_urls"' \
    "$(loc /c 'turnpolicy_credentials on; turnpolicy_turn_urls http://x;')"
bad "turnpolicy_credentials with proxy_pass" 'conflicts with another content handler' \
    "$(loc /c 'proxy_pass https://127.0.0.1; turnpolicy_credentials on; turnpolicy_turn_urls turn:x;')"
bad "a duplicate turnpolicy_config" '"turnpolicy_config" directive is duplicate' \
    "turnpolicy_config $d/turnpolicy.conf;"
echo "database_url = x" >"$d/tp-unknown.conf"
printf '[nginx]\nfrobnicate = 1\n' >>"$d/tp-unknown.conf"
http_common=${http_common/$d\/turnpolicy.conf/$d/tp-unknown.conf}
bad "an unknown key in [nginx]" 'unknown key "frobnicate" in [nginx]' ""
http_common=${http_common/$d\/tp-unknown.conf/$d/nonexistent.conf}
bad "a missing turnpolicy_config file" 'turnpolicy_config:' ""
http_common=${http_common/turnpolicy_config $d\/nonexistent.conf;/}
bad "turnpolicy without turnpolicy_config" 'requires "turnpolicy_config"' \
    "$(loc /t/ 'turnpolicy on;')"
http_common="turnpolicy_config $d/turnpolicy.conf;"
bad "turnpolicy without a resolver" 'requires a "resolver"' \
    "$(loc /t/ 'turnpolicy on;')"

# --------------------------------------------------------------------
if grep -E '\[(alert|crit|emerg)\]|exited on signal' "$ngx/logs/error.log" \
        >"$d/alerts" 2>/dev/null; then
    not_ok "nginx logged no alert and no worker crashed" "$(head -3 "$d/alerts")"
else
    ok "nginx logged no alert and no worker crashed"
fi
# The credentials endpoint without turnpolicy_turn_urls hands out the
# realm's provisioned TURN URIs.
req /credentials-realm -H "Authorization: Bearer $tok_alice"
if [ "$code" = 200 ] && printf '%s' "$body" | $py -c '
import json, sys
j = json.load(sys.stdin)
assert j["iceServers"][0]["urls"] == ["turn:127.0.0.1:3478?transport=udp"], j
' >/dev/null 2>&1; then
    ok "credentials endpoint without turnpolicy_turn_urls: the realm's turn_urls"
else
    not_ok "credentials endpoint with the realm's turn_urls" "code=$code"
fi
# No worker crashed or tripped a sanitizer during everything above (the
# malformed and oversized requests included).
if grep -qE "$ngx_crash" "$ngx/logs/error.log" "$tp_tmpdir/nginx.out" 2>/dev/null; then
    not_ok "no nginx worker crashed" "$(grep -m3 -E "$ngx_crash" "$ngx/logs/error.log" "$tp_tmpdir/nginx.out")"
else
    ok "no nginx worker crashed or tripped a sanitizer"
fi
# nginx quits (not killed by the harness): the share directory its master
# made (turnpolicy_share_dir's default; nginx.d/80-share) goes with it.
main_dir=$(sed -n 's/.*turnpolicy: share directory "\([^"]*\)".*/\1/p' \
    "$ngx/logs/error.log" | head -1)
kill -QUIT "$tp_pid_nginx"
for _ in $(seq 100); do
    kill -0 "$tp_pid_nginx" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$tp_pid_nginx" 2>/dev/null; then
    not_ok "nginx quits" "still running after 10 s"
elif [ -n "$main_dir" ] && [ ! -e "$main_dir" ]; then
    ok "nginx quits; its share directory $main_dir is gone with it"
else
    not_ok "nginx removes its share directory when it quits" "'$main_dir': $(ls -la "$main_dir" 2>&1 | head -3)"
fi
exit "$tp_failed"
