# 40-cors-fwd: CORS preflights and origins, the forward-auth endpoint under
# the contracts of Traefik ForwardAuth (headers as Traefik sends them),
# nginx auth_request and a real Caddy forward_auth, and the credentials
# endpoint's issuance rate limit.  Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154

app=https://app.acs.test
tok_gina=$(jwt --kid app1 --sub gina --realm acs.test --ttl 600)
hdr() { printf '%s' "$hdrs" | tr -d '\r' | sed -n "s/^$1: //Ip" | head -1; }

# --- CORS -----------------------------------------------------------------
req "/t/$tok_alice/$e/x" -X OPTIONS -H "Origin: $app" \
    -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: content-type, x-ms-client-request-id'
if [ "$code" = 204 ] && [ "$(hdr Access-Control-Allow-Origin)" = "$app" ] &&
   [ "$(hdr Access-Control-Allow-Methods)" = "GET, HEAD, POST, PUT, DELETE" ] &&
   [ "$(hdr Access-Control-Allow-Headers)" = "content-type, x-ms-client-request-id" ] &&
   [ "$(hdr Access-Control-Max-Age)" = 600 ] &&
   hdr Vary | grep -q '^Origin' &&
   [ "$(hdr Access-Control-Allow-Credentials)" = true ]; then
    ok "CORS preflight from the realm's origin: 204 with ACAO, credentials, methods, headers, Vary"
else
    not_ok "CORS preflight" "HTTP $code $hdrs"
fi
expect "CORS preflight from another origin: 403" 403 origin_denied \
    "/t/$tok_alice/$e/x" -X OPTIONS -H "Origin: https://evil.test" \
    -H 'Access-Control-Request-Method: GET'
[ -z "$(hdr Access-Control-Allow-Origin)" ] &&
    ok "... and no Access-Control-Allow-Origin" || not_ok "no ACAO on refusal"
expect "CORS preflight from another realm's origin: 403" 403 origin_denied \
    "/t/$tok_alice/$e/x" -X OPTIONS -H "Origin: https://app.closed.test" \
    -H 'Access-Control-Request-Method: GET'
expect "CORS preflight for PATCH: 403" 403 method_denied \
    "/t/$tok_alice/$e/x" -X OPTIONS -H "Origin: $app" \
    -H 'Access-Control-Request-Method: PATCH'
expect "CORS preflight with a malformed header list: 403" 403 bad_request \
    "/t/$tok_alice/$e/x" -X OPTIONS -H "Origin: $app" \
    -H 'Access-Control-Request-Method: GET' \
    -H 'Access-Control-Request-Headers: x-a;evil'
expect "CORS preflight with an expired token from an origin no realm allows: 401" \
    401 token_expired "/t/$tok_expired/$e/x" -X OPTIONS \
    -H "Origin: https://evil.test" -H 'Access-Control-Request-Method: GET'
[ -z "$(hdr Access-Control-Allow-Origin)" ] &&
    ok "... without Access-Control-Allow-Origin" || not_ok "no ACAO" "$hdrs"
# The credentials endpoint takes its token from a header, which preflights
# do not carry: any realm's origin is answered, the request then checks its own.
req /credentials -X OPTIONS -H "Origin: https://app.closed.test" \
    -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: authorization'
[ "$code" = 204 ] && [ "$(hdr Access-Control-Allow-Origin)" = https://app.closed.test ] &&
    ok "CORS preflight to the credentials endpoint (header token): 204" ||
    not_ok "credentials preflight" "HTTP $code $hdrs"
expect "... from an origin no realm allows: 403" 403 origin_denied /credentials \
    -X OPTIONS -H "Origin: https://evil.test" -H 'Access-Control-Request-Method: POST'
expect "a real request from the realm's origin is proxied" 200 "" \
    "/t/$tok_alice/$e/x" -H "Origin: $app"
[ "$(hdr Access-Control-Allow-Origin)" = "$app" ] && hdr Vary | grep -q 'Origin' &&
    ok "... with Access-Control-Allow-Origin: $app and Vary: Origin" ||
    not_ok "ACAO on a proxied response" "$hdrs"
req "/t/$tok_alice/$e/cors-star" -H "Origin: $app"
[ "$code" = 200 ] &&
    [ "$(printf '%s' "$hdrs" | grep -ci '^Access-Control-Allow-Origin:')" = 1 ] &&
    [ "$(hdr Access-Control-Allow-Origin)" = "$app" ] &&
    ok "the upstream's Access-Control-Allow-Origin: * is replaced by the origin" ||
    not_ok "upstream ACAO replaced" "$hdrs"
req /credentials -H "Origin: $app" -H "Authorization: Bearer $tok_gina"
[ "$code" = 200 ] && [ "$(hdr Access-Control-Allow-Origin)" = "$app" ] &&
    ok "credentials from a page of the realm's origin carry Access-Control-Allow-Origin" ||
    not_ok "ACAO on credentials" "HTTP $code $hdrs"
expect "a refusal for a page of the realm's origin is readable by it (ACAO)" \
    403 host_denied "/t/$tok_alice/evil.com:$up_port/x" -H "Origin: $app"
[ "$(hdr Access-Control-Allow-Origin)" = "$app" ] &&
    ok "... Access-Control-Allow-Origin on the 403" ||
    not_ok "ACAO on a refusal" "$hdrs"
expect "a real request from another origin: 403" 403 origin_denied \
    "/t/$tok_alice/$e/x" -H "Origin: https://evil.test"
expect "a real request from another realm's origin: 403" 403 origin_denied \
    "/credentials" -H "Origin: https://app.closed.test" \
    -H "Authorization: Bearer $tok_alice"
expect "two Origin headers: 403" 403 origin_denied \
    "/t/$tok_alice/$e/x" -H "Origin: $app" -H "Origin: https://evil.test"

# --- forward-auth: Traefik ForwardAuth's request (X-Forwarded-*) ------------
fa=http://127.0.0.1:$port2
fwd() { # URI [curl args]: as Traefik asks, sets $code $body $hdrs
    local u=$1
    shift
    code=$(curl -sS -o "$d/body" -D "$d/hdrs" -w '%{http_code}' \
        -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Proto: https' \
        -H 'X-Forwarded-Host: proxy.example.org' -H 'X-Forwarded-For: 192.0.2.7' \
        -H "X-Forwarded-Uri: $u" "$@" "$fa/" 2>"$d/curl.err")
    body=$(cat "$d/body")
    hdrs=$(cat "$d/hdrs")
}
fwd "/t/$tok_alice/$e/api/v1/thing?x=1&y=2"
if [ "$code" = 200 ] && [ "$(hdr X-Turnpolicy-Sub)" = alice ] &&
   [ "$(hdr X-Turnpolicy-Realm)" = acs.test ] &&
   [ "$(hdr X-Turnpolicy-Upstream)" = "$e" ] &&
   [ "$(hdr X-Turnpolicy-Upstream-Host)" = edge.skype.com ] &&
   [ "$(hdr X-Turnpolicy-Upstream-Addr)" = "127.0.0.1:$up_port" ] &&
   [ "$(hdr X-Turnpolicy-Path)" = "/api/v1/thing?x=1&y=2" ] &&
   [ -z "$body" ] && [ "$(hdr Content-Length)" = 0 ]; then
    ok "forward-auth (Traefik's X-Forwarded-*): 200 with sub, realm, upstream, checked address, path; no body"
else
    not_ok "forward-auth allowed" "HTTP $code $hdrs"
fi
fwd "/t/$tok_alice/evil.com:$up_port/x"
[ "$code" = 403 ] && [ "$body" = '{"error":"host_denied"}' ] &&
    ok "forward-auth: a host not on the list is 403 host_denied" ||
    not_ok "forward-auth host_denied" "HTTP $code $body"
fwd "/t/$tok_expired/$e/x"
[ "$code" = 401 ] && hdr WWW-Authenticate | grep -q '^Bearer error="invalid_token"' &&
    ok "forward-auth: an expired token is 401 with WWW-Authenticate" ||
    not_ok "forward-auth expired" "HTTP $code $hdrs"
fwd "/t/$tok_dave/$e/x"
[ "$code" = 403 ] && [ "$body" = '{"error":"peer_denied"}' ] &&
    ok "forward-auth: a host resolving to a denied address is 403 peer_denied" ||
    not_ok "forward-auth peer_denied" "HTTP $code $body"
fwd "/t/$tok_alice/$e/../evil.com/x"
[ "$code" = 403 ] && [ "$body" = '{"error":"bad_path"}' ] &&
    ok "forward-auth: a .. segment in the forwarded URI is 403 bad_path" ||
    not_ok "forward-auth bad_path" "HTTP $code $body"
code=$(curl -sS -o "$d/body" -w '%{http_code}' "$fa/" 2>/dev/null)
[ "$code" = 403 ] && [ "$(cat "$d/body")" = '{"error":"bad_path"}' ] &&
    ok "forward-auth without X-Forwarded-Uri: 403 bad_path" ||
    not_ok "forward-auth without uri" "HTTP $code"
fwd "/t/$tok_alice/$e/x" -H "X-Forwarded-Uri: /t/$tok_alice/$e/y"
[ "$code" = 403 ] && ok "forward-auth with two X-Forwarded-Uri: 403" ||
    not_ok "forward-auth duplicate uri" "HTTP $code"
fwd "/t/nothing/zzz" -H "X-Original-URI: /t/$tok_alice/$e/spoofed"
[ "$code" = 403 ] && [ "$body" = '{"error":"bad_path"}' ] &&
    ok "forward-auth (uri=X-Forwarded-Uri): a client's differing X-Original-URI is 403 bad_path" ||
    not_ok "forward-auth X-Original-URI spoof" "HTTP $code $body"
fwd "/t/$tok_alice/$e/x" -H "Origin: https://evil.test"
[ "$code" = 403 ] && [ "$body" = '{"error":"origin_denied"}' ] &&
    ok "forward-auth: the forwarded Origin is checked too" ||
    not_ok "forward-auth origin" "HTTP $code $body"
code=$(curl -sS -o "$d/body" -D "$d/hdrs" -w '%{http_code}' \
    -H "X-Forwarded-Uri: /p/$e/v1" -H "Authorization: Bearer $tok_alice" \
    "$fa/hdr/" 2>/dev/null)
hdrs=$(cat "$d/hdrs")
[ "$code" = 200 ] && [ "$(hdr X-Turnpolicy-Path)" = /v1 ] &&
    ok "forward-auth with the token in the forwarded Authorization header" ||
    not_ok "forward-auth header token" "HTTP $code"

# --- forward-auth behind nginx auth_request ---------------------------------
ar=http://127.0.0.1:$port1
code=$(curl -sS -o "$d/body" -w '%{http_code}' \
    "$ar/t/$tok_alice/$e/via/auth_request?q=1" 2>"$d/curl.err")
body=$(cat "$d/body")
[ "$code" = 200 ] && [ "$(json path)" = "/via/auth_request?q=1" ] &&
    [ "$(json host)" = "$e" ] &&
    ok "nginx auth_request + forward-auth: allowed request proxied to the checked address" ||
    not_ok "auth_request allowed" "HTTP $code $body $(cat "$d/curl.err")"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$ar/t/$tok_alice/evil.com:$up_port/x")
[ "$code" = 403 ] && ok "nginx auth_request + forward-auth: evil.com is 403" ||
    not_ok "auth_request denied" "HTTP $code"
code=$(curl -sS -o /dev/null -D "$d/hdrs" -w '%{http_code}' "$ar/t/$tok_tampered/$e/x")
hdrs=$(cat "$d/hdrs")
[ "$code" = 401 ] && hdr WWW-Authenticate | grep -q '^Bearer' &&
    ok "nginx auth_request + forward-auth: a tampered token is 401 with WWW-Authenticate" ||
    not_ok "auth_request 401" "HTTP $code"

# --- forward-auth behind a real Caddy (Debian's caddy) ----------------------
if [ -x /usr/bin/caddy ]; then
    mkdir -p "$d/caddy"
    cat >"$d/Caddyfile" <<CADDY
{
	admin off
	auto_https off
}
http://127.0.0.1:$port3 {
	forward_auth 127.0.0.1:$port2 {
		uri /
		copy_headers X-Turnpolicy-Sub X-Turnpolicy-Upstream-Addr X-Turnpolicy-Path
	}
	respond "sub={header.X-Turnpolicy-Sub} addr={header.X-Turnpolicy-Upstream-Addr} path={header.X-Turnpolicy-Path}" 200
}
CADDY
    HOME=$d/caddy XDG_DATA_HOME=$d/caddy XDG_CONFIG_HOME=$d/caddy \
        tp_bg caddy /usr/bin/caddy run --config "$d/Caddyfile" --adapter caddyfile
    if tp_wait_port "$port3" 30; then
        out=$(curl -sS "http://127.0.0.1:$port3/t/$tok_alice/$e/v1/x?z=3" 2>&1)
        [ "$out" = "sub=alice addr=127.0.0.1:$up_port path=/v1/x?z=3" ] &&
            ok "Caddy forward_auth: allowed, with the copied X-Turnpolicy-* headers" ||
            not_ok "Caddy forward_auth allowed" "$out"
        code=$(curl -sS -o "$d/body" -w '%{http_code}' \
            "http://127.0.0.1:$port3/t/$tok_alice/x.cloudapp.azure.com:$up_port/x")
        [ "$code" = 403 ] && [ "$(cat "$d/body")" = '{"error":"host_denied"}' ] &&
            ok "Caddy forward_auth: a denied host's 403 reaches the client as is" ||
            not_ok "Caddy forward_auth denied" "HTTP $code $(cat "$d/body")"
        code=$(curl -sS -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:$port3/t/$tok_none/$e/x")
        [ "$code" = 401 ] && ok "Caddy forward_auth: an alg:none token's 401 reaches the client" ||
            not_ok "Caddy forward_auth 401" "HTTP $code"
        # A client naming a valid token's URL in the URI headers: Caddy
        # overwrites X-Forwarded-Uri; X-Original-URI passes and differs.
        code=$(curl -sS -o "$d/body" -w '%{http_code}' \
            -H "X-Forwarded-Uri: /t/$tok_alice/$e/spoofed" \
            "http://127.0.0.1:$port3/t/nothing/zzz")
        [ "$code" = 401 ] && [ "$(cat "$d/body")" = '{"error":"token_malformed"}' ] &&
            ok "Caddy forward_auth: a client's X-Forwarded-Uri is replaced by Caddy's (401 for the real URI)" ||
            not_ok "Caddy X-Forwarded-Uri spoof" "HTTP $code $(cat "$d/body")"
        code=$(curl -sS -o "$d/body" -w '%{http_code}' \
            -H "X-Original-URI: /t/$tok_alice/$e/spoofed" \
            "http://127.0.0.1:$port3/t/nothing/zzz")
        [ "$code" = 403 ] && [ "$(cat "$d/body")" = '{"error":"bad_path"}' ] &&
            ok "Caddy forward_auth: a client's X-Original-URI that differs is 403 bad_path" ||
            not_ok "Caddy X-Original-URI spoof" "HTTP $code $(cat "$d/body")"
    else
        not_ok "Caddy starts" "$(grep -E '"(error|fatal)"|^Error' "$d/caddy.out" | head -3)"
    fi
    kill "$tp_pid_caddy" 2>/dev/null
else
    not_ok "Caddy forward_auth" "/usr/bin/caddy missing: run scripts/install-deps.sh"
fi

# --- credentials endpoint: issuance rate (issue_per_minute = 5) -------------
tok_erin=$(jwt --kid app1 --sub erin --realm acs.test --ttl 600)
# Counted per minute: start early in one, so that all six fall in it.
while [ "$(date +%-S)" -gt 50 ]; do sleep 1; done
codes=""
for _ in 1 2 3 4 5 6; do
    req /credentials -H "Authorization: Bearer $tok_erin"
    codes="$codes $code"
done
[ "$codes" = " 200 200 200 200 200 429" ] && [ "$body" = '{"error":"rate_limited"}' ] &&
    ok "credentials endpoint: the 6th credential in a minute is 429 rate_limited" ||
    not_ok "issuance rate limit" "codes$codes body $body"
req /credentials -H "Authorization: Bearer $tok_alice"
[ "$code" = 200 ] && ok "... another subject still gets credentials" ||
    not_ok "issuance rate limit is per subject" "HTTP $code $body"

# --- nginx -t: turnpolicy_forward_auth values ------------------------------
bad "turnpolicy_forward_auth without a leading /" \
    'invalid value "t/" in "turnpolicy_forward_auth" directive' \
    "$(loc /fa 'turnpolicy_forward_auth t/;')"
bad "turnpolicy_forward_auth with an arg: token" \
    '"turnpolicy_token arg:" is not supported with "turnpolicy_forward_auth"' \
    "$(loc /fa 'turnpolicy_token arg:t; turnpolicy_forward_auth /t/;')"
bad "turnpolicy_forward_auth with proxy_pass" 'conflicts with another content handler' \
    "$(loc /fa 'proxy_pass http://127.0.0.1:1; turnpolicy_forward_auth /t/;')"
bad "a duplicate turnpolicy_forward_auth" '"turnpolicy_forward_auth" directive is duplicate' \
    "$(loc /fa 'turnpolicy_forward_auth /t/; turnpolicy_forward_auth /u/;')"
