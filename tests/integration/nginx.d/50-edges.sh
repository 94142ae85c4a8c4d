# 50-edges: the proxy's edges (issue 9).  Forward-auth reads the URI only
# from the header its front sets; no token reaches $request,
# $turnpolicy_path or the upstream, whatever the URL form (an empty token
# segment, nested URLs whatever the Host, another token nested, the token
# repeated); a Location on any 3xx and on 201 is checked like a
# redirect's; tokens living longer than jwt_max_lifetime (default 24 h)
# are refused with a reason that names the cause, by nginx and the CLI
# alike.  Sourced by nginx.sh after 30-redirect (rd, rd_denied, rd_moved,
# $r1) and 40-cors-fwd (the forward-auth server on $port2, the documented
# auth_request front on $port1).
# shellcheck shell=bash disable=SC2154

ed_body() { cat "$d/body" 2>/dev/null; }

# --- forward-auth: the URI from the front's own header only ---------------
spoof="X-Forwarded-Uri: /t/$tok_alice/$e/spoofed"
code=$(curl -sS -o "$d/body" -w '%{http_code}' -H "$spoof" \
    "http://127.0.0.1:$port1/t/nothing/zzz")
# (auth_request passes the status on, with nginx's own page)
[ "$code" = 401 ] &&
    ok "auth_request front clearing X-Forwarded-Uri: a client's X-Forwarded-Uri is not believed (401 for the real URI)" ||
    not_ok "auth_request X-Forwarded-Uri spoof (clearing front)" "HTTP $code $(ed_body)"
code=$(curl -sS -o "$d/body" -w '%{http_code}' -H "$spoof" \
    "http://127.0.0.1:$port6/t/nothing/zzz")
[ "$code" = 403 ] && grep -q 'turnpolicy: 403 bad_path: no single well-formed forwarded URI' "$ngx/logs/error.log" &&
    ok "auth_request front passing the client's X-Forwarded-Uri on: 403 bad_path, not its URI" ||
    not_ok "auth_request X-Forwarded-Uri spoof (careless front)" "HTTP $code $(ed_body)"
code=$(curl -sS -o "$d/body" -w '%{http_code}' \
    "http://127.0.0.1:$port6/t/$tok_alice/$e/careless/ok?z=1")
body=$(ed_body)
[ "$code" = 200 ] && [ "$(json path)" = "/careless/ok?z=1" ] &&
    ok "... the same front still passes a real request" ||
    not_ok "careless front, real request" "HTTP $code $body"
code=$(curl -sS -o "$d/body" -w '%{http_code}' \
    -H "X-Forwarded-Uri: /t/$tok_alice/$e/x" "http://127.0.0.1:$port2/_auth")
[ "$code" = 403 ] && [ "$(ed_body)" = '{"error":"bad_path"}' ] &&
    ok "forward-auth trusting X-Original-URI (the default) ignores X-Forwarded-Uri alone: 403" ||
    not_ok "default trusted header" "HTTP $code $(ed_body)"
code=$(curl -sS -o "$d/body" -D "$d/hdrs" -w '%{http_code}' \
    -H "X-Original-URI: /t/$tok_alice/$e/same" \
    -H "X-Forwarded-Uri: /t/$tok_alice/$e/same" "http://127.0.0.1:$port2/_auth")
[ "$code" = 200 ] && grep -qi '^X-Turnpolicy-Path: /same' "$d/hdrs" &&
    ok "forward-auth: both URI headers naming the same URI are accepted" ||
    not_ok "identical URI headers" "HTTP $code $(ed_body)"
if grep -q spoofed "$d/upstream.log"; then
    not_ok "no spoofed URI reached the upstream"
else
    ok "no spoofed URI reached the upstream"
fi

# --- no token in $request, $turnpolicy_path or upstream --------------------
fake_jws=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzb21lb25lLWVsc2UifQ.c2lnbmF0dXJl
e0=$(wc -l <"$ngx/logs/error.log")
a0=$(wc -l <"$ngx/logs/access.log")
r0=$(wc -l <"$ngx/logs/request.log")
u0=$(wc -l <"$d/upstream.log")
expect "empty token segment (/t//<token>/host): 401 token_missing" 401 \
    token_missing "/t//$tok_alice/$e/x"
expect "a garbage token before a real one (/t/x/<token>/host): 401" 401 \
    token_malformed "/t/x/$tok_alice/$e/x"
req "/t/$tok_alice/proxy.example.org:443/t/$tok_alice/$e/lb?q=1"
[ "$code" = 200 ] && [ "$(json path)" = "/lb?q=1" ] && [ "$(json host)" = "$e" ] &&
    ok "a nested URL whose outer host is not this proxy's Host (load balancer, :443) is unwrapped" ||
    not_ok "nested URL, other host" "HTTP $code $body"
req "/t/$tok_alice/proxy.test/t/$tok_alice/$e/noport"
[ "$code" = 200 ] && [ "$(json path)" = /noport ] &&
    ok "a nested URL naming this proxy without its port is unwrapped" ||
    not_ok "nested URL, no port" "HTTP $code $body"
expect "a nested URL carrying another token: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/other.test/t/$tok_dave/$e/x"
expect "a nested URL with a token-shaped segment: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/other.test/t/$fake_jws/$e/x"
expect "a URL nested twice: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/a.test/t/$tok_alice/b.test/t/$tok_alice/$e/x"
expect "our own host without a nested prefix: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/proxy.test:$ngx_port/x"
expect "the token repeated in the upstream path: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/$e/x/$tok_alice"
expect "the token repeated in the query: 403 bad_path" 403 bad_path \
    "/t/$tok_alice/$e/x?t=$tok_alice"
req "/t/$tok_alice/$e/other?sdk=$fake_jws"
[ "$code" = 200 ] && ok "another token-shaped value in the query is passed on (it is the client's)" ||
    not_ok "token-shaped query" "HTTP $code $body"
sleep 0.2
tail -n +"$((a0 + 1))" "$ngx/logs/access.log" >"$d/edges.access"
tail -n +"$((r0 + 1))" "$ngx/logs/request.log" >"$d/edges.request"
tail -n +"$((e0 + 1))" "$ngx/logs/error.log" >"$d/edges.error"
if grep -qF -e "$tok_alice" -e "$tok_dave" -e "$fake_jws" \
        "$d/edges.access" "$d/edges.request" "$d/edges.error"; then
    not_ok "no token in \$request, \$turnpolicy_path or the error log" \
        "$(grep -F -e "$tok_alice" -e "$tok_dave" -e "$fake_jws" "$d/edges.access" "$d/edges.request" "$d/edges.error" | head -3 | sed -e "s/$tok_alice/ALICE/g" -e "s/$tok_dave/DAVE/g" -e "s/$fake_jws/FAKE/g" | cut -c1-300)"
elif [ "$(grep -c '"\[request not shown\]"' "$d/edges.request")" -ge 4 ] &&
     grep -q "GET $e/lb 200" "$d/edges.access"; then
    ok "no token in \$request (withheld when the token is missing, garbage or another is left), \$turnpolicy_path or the error log"
else
    not_ok "redaction of the edge cases" "$(head -3 "$d/edges.request" | cut -c1-160)"
fi
if tail -n +"$((u0 + 1))" "$d/upstream.log" | grep -qF -e "$tok_alice" -e "$tok_dave"; then
    not_ok "no token reached the upstream"
else
    ok "no token reached the upstream ($(($(wc -l <"$d/upstream.log") - u0)) requests)"
fi

# --- a Location on any 3xx and on 201 --------------------------------------
for c in 300 305 399 201; do
    rd "/t/$tok_alice/$e" "$c" "https://evil.com:$up_port/x"
    rd_denied "$c with a Location to a host the realm denies: 403 redirect_denied"
done
rd "/t/$tok_alice/$e" 201 "https://$r1/chat/new"
rd_moved "201 with an allowed Location: rewritten through the proxy" 201 \
    "/t/$tok_alice/$r1/chat/new"
rd "/t/$tok_alice/$e" 300 "/choices"
rd_moved "300 with a relative Location: through the proxy" 300 \
    "/t/$tok_alice/$e/choices"

# --- token lifetime (jwt_max_lifetime, default 24 h) -----------------------
# mint PAYLOAD-JSON: an HS256 token (kid app1) with that payload text as
# written (so that 1e30, 2^70 in digits and \u0000 reach the verifier)
mint() {
    $py - "$d/app1.key" "$1" <<'PY'
import base64, hashlib, hmac, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
m = b64(b'{"alg":"HS256","typ":"JWT","kid":"app1"}') + "." + b64(sys.argv[2].encode())
print(m + "." + b64(hmac.new(key, m.encode(), hashlib.sha256).digest()))
PY
}
now=$(date +%s)
claims='"iss":"https://backend.test","aud":"turnpolicy","realm":"acs.test"'
tok_23h=$(mint "{$claims,\"sub\":\"alice\",\"iat\":$now,\"exp\":$((now + 82800))}")
tok_2d=$(mint "{$claims,\"sub\":\"alice\",\"iat\":$now,\"exp\":$((now + 172800))}")
tok_max=$(mint "{$claims,\"sub\":\"alice\",\"iat\":$now,\"exp\":9223372036854775807}")
tok_1e30=$(mint "{$claims,\"sub\":\"alice\",\"exp\":1e30}")
tok_digits=$(mint "{$claims,\"sub\":\"alice\",\"exp\":1000000000000000000000000000000}")
tok_noiat=$(mint "{$claims,\"sub\":\"alice\",\"exp\":$((now + 3 * 86400))}")
tok_old=$(mint "{$claims,\"sub\":\"alice\",\"iat\":$((now - 172800)),\"exp\":$((now + 600))}")
tok_nul=$(mint "{$claims,\"sub\":\"al\\u0000ice\",\"iat\":$now,\"exp\":$((now + 600))}")
expect "a token living 23 h (under the 24 h default): proxied" 200 "" \
    "/t/$tok_23h/$e/x"
expect "a token living 2 days (exp - iat): 401 token_lifetime_exceeded" 401 \
    token_lifetime_exceeded "/t/$tok_2d/$e/x"
expect "exp = 2^63-1: 401 token_lifetime_exceeded" 401 token_lifetime_exceeded \
    "/t/$tok_max/$e/x"
expect "exp = 1e30 (no iat): 401 token_lifetime_exceeded" 401 \
    token_lifetime_exceeded "/t/$tok_1e30/$e/x"
expect "exp = 10^30 in digits: 401 token_lifetime_exceeded" 401 \
    token_lifetime_exceeded "/t/$tok_digits/$e/x"
expect "no iat, exp 3 days from now: 401 token_lifetime_exceeded" 401 \
    token_lifetime_exceeded "/t/$tok_noiat/$e/x"
expect "iat 2 days ago, exp in 10 min: 401 token_lifetime_exceeded" 401 \
    token_lifetime_exceeded "/t/$tok_old/$e/x"
expect "a NUL in sub: 401 token_malformed (not unknown_realm)" 401 \
    token_malformed "/t/$tok_nul/$e/x"
tok_numrealm=$(mint "{\"iss\":\"https://backend.test\",\"aud\":\"turnpolicy\",\"realm\":5,\"sub\":\"alice\",\"exp\":$((now + 600))}")
expect "a realm claim that is a number: 401 token_bad_claim (not unknown_realm)" \
    401 token_bad_claim "/t/$tok_numrealm/$e/x"
out=$("$tp_cli" --config "$d/cli.conf" jwt verify "$tok_2d" 2>&1)
rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q token_lifetime_exceeded &&
    ok "the CLI (same turnpolicy.conf keys) refuses the 2-day token alike" ||
    not_ok "CLI lifetime" "rc $rc: $out"
printf 'jwt_max_lifetime = 300\n' >"$d/short.conf"
grep '^jwt_' "$d/cli.conf" >>"$d/short.conf"
out=$("$tp_cli" --config "$d/short.conf" jwt verify "$tok_alice" 2>&1)
rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q token_lifetime_exceeded &&
    ok "jwt_max_lifetime = 300 refuses a 600 s token (CLI)" ||
    not_ok "jwt_max_lifetime key" "rc $rc: $out"
out=$("$tp_cli" --config "$d/cli.conf" jwt issue --kid app1 --sub alice \
    --realm acs.test --ttl 90000 2>&1)
rc=$?
[ $rc != 0 ] && printf '%s' "$out" | grep -q jwt_max_lifetime &&
    ok "the CLI does not issue a token the verifier would refuse (ttl 25 h)" ||
    not_ok "CLI issue over the lifetime" "rc $rc: $out"

# --- nginx -t: turnpolicy_forward_auth uri= --------------------------------
bad "turnpolicy_forward_auth with an unknown parameter" \
    'invalid parameter "header=X-A" in "turnpolicy_forward_auth" directive' \
    "$(loc /fa 'turnpolicy_forward_auth /t/ header=X-A;')"
bad "turnpolicy_forward_auth with a bad header name" \
    'invalid header name "X:A" in "turnpolicy_forward_auth" directive' \
    "$(loc /fa 'turnpolicy_forward_auth /t/ uri=X:A;')"
