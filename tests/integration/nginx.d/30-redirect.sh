# 30-redirect: the response filters.  An upstream's redirect to a host
# (and path) the realm allows is rewritten to go through the proxy; any
# other is replaced by the module's 403 {"error":"redirect_denied"}, with
# none of the upstream's headers or body.  The upstream's CORS headers are
# stripped.  The fake upstream answers .../redirect?code=N&to=<Location>
# and .../cors-star (nginx_upstream.py).  Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154

r1=res1.communication.azure.com:$up_port
fp=api.flightproxy.skype.com:$up_port
denied='{"error":"redirect_denied"}'

rd_enc() { $py -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
rd_hdr() { printf '%s' "$hdrs" | tr -d '\r' | sed -n "s/^$1: //Ip" | head -1; }
# rd AT CODE LOCATION [curl args]: GET AT/redirect, the upstream answering
# CODE with LOCATION
rd() {
    local at=$1 c=$2 to=$3
    shift 3
    req "$at/redirect?code=$c&to=$(rd_enc "$to")" "$@"
}
# What the test output may show of a Location: no token.
rd_loc() { local l; l=$(rd_hdr Location); printf '%s' "${l//$tok_alice/<token>}"; }
# rd_moved NAME CODE WANT: the last response is CODE with Location WANT
rd_moved() {
    if [ "$code" = "$2" ] && [ "$(rd_hdr Location)" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "HTTP $code, Location $(rd_loc)"
    fi
}
# rd_denied NAME: the last response is exactly the module's refusal
rd_denied() {
    local why="" h
    [ "$code" = 403 ] || why="HTTP $code"
    [ "$body" = "$denied" ] || why="$why, body ${body:0:60}"
    [ "$(rd_hdr Content-Type)" = application/json ] ||
        why="$why, Content-Type $(rd_hdr Content-Type)"
    [ "$(rd_hdr Content-Length)" = $((${#denied} + 1)) ] ||
        why="$why, Content-Length $(rd_hdr Content-Length)"
    [ "$(rd_hdr Cache-Control)" = no-store ] || why="$why, no Cache-Control"
    for h in Location ETag Last-Modified Content-Encoding Set-Cookie; do
        [ -z "$(rd_hdr "$h")" ] || why="$why, $h kept"
    done
    [ -z "$why" ] && ok "$1" || not_ok "$1" "$why $([ -n "$(rd_hdr Location)" ] && rd_loc)"
}

# --- allowed: rewritten through the proxy ----------------------------------
rd "/t/$tok_alice/$e" 302 "https://$r1/chat/x?y=1"
rd_moved "302 to an allowed host: Location through the proxy" 302 \
    "/t/$tok_alice/$r1/chat/x?y=1"
# Followed by hand, and only to this proxy (curl -L would go wherever a
# broken filter sent it: nothing may leave 127.0.0.1).
rd_to=$(rd_hdr Location)
case $rd_to in
/t/*) req "$rd_to" ;;
*) code=none ;;
esac
[ "$code" = 200 ] && [ "$(json host)" = "$r1" ] &&
    [ "$(json path)" = "/chat/x?y=1" ] &&
    ok "... and following it reaches $r1 through the proxy" ||
    not_ok "following an allowed redirect" "HTTP $code $(json host) $(json path)"
rd "/t/$tok_alice/$r1" 301 "/other/path?q=1"
rd_moved "a relative Location (/path): the same upstream" 301 \
    "/t/$tok_alice/$r1/other/path?q=1"
req "/t/$tok_alice/$e/dir/redirect?code=303&to=$(rd_enc "next?q=2")"
rd_moved "a relative-path Location (next?q=2): against the proxied path" 303 \
    "/t/$tok_alice/$e/dir/next?q=2"
rd "/t/$tok_alice/$e" 307 "HTTPS://Edge.Skype.COM:$up_port"
rd_moved "307, host in capitals, no path: normalized, path /" 307 \
    "/t/$tok_alice/$e/"
rd "/t/$tok_alice/$e" 308 \
    "wss://go.trouter.communication.microsoft.com:$ws_port/v4/c"
rd_moved "308 to an allowed wss:// host" 308 \
    "/t/$tok_alice/go.trouter.communication.microsoft.com:$ws_port/v4/c"
rd "/t/$tok_alice/$fp/api" 302 "https://$fp/api/v2/x"
rd_moved "an allowed host on a path its rule allows (/api/)" 302 \
    "/t/$tok_alice/$fp/api/v2/x"
rd /h 302 "https://$r1/x" -H "X-Turnpolicy-Token: $tok_alice" \
    -H "X-Upstream: $e"
rd_moved "upstream from turnpolicy_upstream: an allowed Location is kept" \
    302 "https://$r1/x"

# --- refused: the module's 403 instead ------------------------------------
rd "/t/$tok_alice/$e" 302 "https://evil.com:$up_port/x"
rd_denied "302 to evil.com: 403 redirect_denied, no upstream header or body"
rd "/t/$tok_alice/$e" 302 "https://x.cloudapp.azure.com:$up_port/x"
rd_denied "302 to x.cloudapp.azure.com: refused"
rd "/t/$tok_alice/$e" 302 "https://127.0.0.1:$up_port/"
rd_denied "302 to an IP literal: refused"
rd "/t/$tok_alice/$e" 302 "http://edge.skype.com:$up_port/"
rd_denied "302 to an allowed host over http: refused"
rd "/t/$tok_alice/$e" 302 "https://edge.skype.com:$up_port@evil.com/"
rd_denied "302 to https://edge.skype.com:PORT@evil.com/ (userinfo): refused"
rd "/t/$tok_alice/$e" 302 "https://edge.skype.com/x"
rd_denied "302 to an allowed host on a port its rule does not allow: refused"
rd "/t/$tok_alice/$fp/api" 302 "https://$fp/admin"
rd_denied "302 to an allowed host on a path its rule does not allow: refused"
rd "/t/$tok_alice/$fp/api" 302 "/admin"
rd_denied "... and as a relative Location: refused"
rd "/t/$tok_alice/$e" 302 "//evil.com/x"
rd_denied "a scheme-relative Location (//evil.com): refused"
rd "/t/$tok_alice/$e" 302 '/\evil.com/x'
rd_denied "a Location with a backslash (/\\evil.com): refused"
rd "/t/$tok_alice/$e" 302 "$(printf '/\t/evil.com/x')"
rd_denied "a Location with a tab (/<TAB>/evil.com): refused"
rd "/t/$tok_alice/$e" 302 "/a/%2e%2e/%2e%2e/evil.com:$up_port/x"
rd_denied "a Location with encoded dot segments: refused"
rd "/t/$tok_alice/$e" 302 "../../evil.com:$up_port/x"
rd_denied "a relative Location with .. segments: refused"
rd "/t/$tok_alice/$e" 302 "javascript:alert(1)"
rd_denied "a javascript: Location: refused"
rd "/t/$tok_alice/$e" 302 "https://edge.skype.com:0$up_port/"
rd_denied "a port with a leading zero: refused"
for c in 301 303 307 308; do
    rd "/t/$tok_alice/$e" "$c" "https://evil.com:$up_port/x"
    rd_denied "$c to evil.com: refused"
done
req "/t/$tok_alice/$e/redirect?code=302&to=$(rd_enc https://evil.com/)&size=0"
rd_denied "a refused redirect without a body: the JSON all the same"
req "/t/$tok_alice/$e/redirect?code=302&to=$(rd_enc https://evil.com/)&size=300000"
rd_denied "a refused redirect with a 300 KB body (buffered to a file): swallowed"
req "/tnb/$tok_alice/$e/redirect?code=302&to=$(rd_enc https://evil.com/)&size=100000"
rd_denied "... and with proxy_buffering off"
req "/tslow/$tok_alice/$e/redirect?code=302&to=$(rd_enc https://evil.com/)&size=0" \
    --max-time 20
rd_denied "... and to a slow client (limit_rate: the JSON is sent in pieces)"
rd /h 302 "https://evil.com:$up_port/x" -H "X-Turnpolicy-Token: $tok_alice" \
    -H "X-Upstream: $e"
rd_denied "upstream from turnpolicy_upstream: evil.com refused too"

# HEAD: the refusal's headers, and nothing after them.
head_out=$($py - "$ngx_port" "$d/ca.pem" \
    "/t/$tok_alice/$e/redirect?code=302&to=$(rd_enc "https://evil.com:$up_port/")" \
    2>&1 <<'PY'
import socket, ssl, sys
port, ca, path = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))),
                     server_hostname="proxy.test") as s:
    s.sendall(("HEAD %s HTTP/1.1\r\nHost: proxy.test\r\n"
               "Connection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
head, _, rest = data.partition(b"\r\n\r\n")
lines = head.decode("latin-1").lower().split("\r\n")
print(lines[0].split(" ")[1])
print("location" if any(l.startswith("location:") for l in lines) else "-")
print("json" if "content-type: application/json" in lines else "-")
print(len(rest))
PY
)
[ "$head_out" = "$(printf '403\n-\njson\n0')" ] &&
    ok "HEAD redirected to evil.com: 403, no Location, no body" ||
    not_ok "HEAD refused redirect" "$head_out"

# --- CORS: the upstream's own headers do not reach the client --------------
req "/t/$tok_alice/$e/cors-star"
[ "$code" = 200 ] && [ "$(json path)" = /cors-star ] &&
    [ -z "$(rd_hdr Access-Control-Allow-Origin)" ] &&
    [ -z "$(rd_hdr Access-Control-Allow-Credentials)" ] &&
    ok "the upstream's Access-Control-Allow-Origin: * and -Credentials are stripped" ||
    not_ok "CORS stripping" "HTTP $code $(rd_hdr Access-Control-Allow-Origin)"

# --- logs -------------------------------------------------------------------
grep -qE "redirect_denied: .*host \"evil.com:$up_port\", realm \"acs.test\"" \
        "$ngx/logs/error.log" &&
    ok "a refused redirect is logged with realm and host" ||
    not_ok "refusal logged" "$(grep -m2 redirect_denied "$ngx/logs/error.log")"
grep -q 'reason=redirect_denied' "$ngx/logs/access.log" &&
    ok "\$turnpolicy_reason is redirect_denied in the access log" ||
    not_ok "access log reason"
if grep -qF "$tok_alice" "$ngx/logs/error.log" "$ngx/logs/access.log"; then
    not_ok "no token in nginx's logs after the redirect tests"
else
    ok "no token in nginx's logs after the redirect tests"
fi
