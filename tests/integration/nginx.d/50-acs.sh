# 50-acs: what the ACS Calling SDK needs from the proxy (issue 10):
# credentialed CORS for an allowed origin (the SDK's telemetry XHR is sent
# withCredentials), refusals the page can read (CORS headers on 401, 403,
# 429 to an allowed origin, none to others), and the requested upstream in
# the access log for refusals too ($turnpolicy_requested_upstream).
# Sourced by nginx.sh after 40-cors-fwd (bob revoked, carol disabled).
# shellcheck shell=bash disable=SC2154

app=https://app.acs.test
hdr() { printf '%s' "$hdrs" | tr -d '\r' | sed -n "s/^$1: //Ip" | head -1; }
hcount() { printf '%s' "$hdrs" | grep -ci "^$1:"; }
# cors_ok NAME: the response carries the CORS headers for $app, once each
cors_ok() {
    if [ "$(hdr Access-Control-Allow-Origin)" = "$app" ] &&
       [ "$(hdr Access-Control-Allow-Credentials)" = true ] &&
       [ "$(hcount Access-Control-Allow-Origin)" = 1 ] &&
       [ "$(hcount Access-Control-Allow-Credentials)" = 1 ] &&
       hdr Vary | grep -q 'Origin'; then
        ok "$1"
    else
        not_ok "$1" "HTTP $code $(printf '%s' "$hdrs" | tr -d '\r' | tr '\n' '|')"
    fi
}
cors_none() {
    if [ "$(hcount Access-Control-Allow-Origin)" = 0 ] &&
       [ "$(hcount Access-Control-Allow-Credentials)" = 0 ]; then
        ok "$1"
    else
        not_ok "$1" "HTTP $code $(printf '%s' "$hdrs" | tr -d '\r' | tr '\n' '|')"
    fi
}

# --- credentialed CORS for an allowed origin --------------------------------
req "/t/$tok_alice/$e/telemetry" -X OPTIONS -H "Origin: $app" \
    -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: content-type'
[ "$code" = 204 ] && cors_ok "preflight from the realm's origin: 204, exact origin, credentials true, Vary" ||
    not_ok "preflight 204" "HTTP $code"
req "/t/$tok_alice/$e/telemetry" -X POST -H "Origin: $app" \
    -H 'Content-Type: application/json' --data-binary '{"e":1}'
[ "$code" = 200 ] && cors_ok "a credentialed POST from the realm's origin: exact origin, credentials true, Vary" ||
    not_ok "credentialed POST" "HTTP $code"
req "/t/$tok_alice/$e/cors-star" -H "Origin: $app"
[ "$code" = 200 ] && cors_ok "the upstream's ACAO * and ACAC are replaced by the proxy's, once each" ||
    not_ok "upstream CORS replaced" "HTTP $code"
req "/t/$tok_alice/$e/cors-star"
[ "$code" = 200 ] && cors_none "no Origin: no CORS headers (the upstream's dropped)" ||
    not_ok "no Origin" "HTTP $code"

# --- refusals to the realm's origin are readable -----------------------------
# expect_cors NAME CODE REASON PATH [curl args]: refused with the JSON reason
# and the CORS headers for $app; the same from another origin: none.
expect_cors() {
    local name=$1 want=$2 reason=$3 path=$4
    shift 4
    req "$path" -H "Origin: $app" "$@"
    if [ "$code" = "$want" ] && [ "$body" = "{\"error\":\"$reason\"}" ]; then
        cors_ok "$name: $want $reason with the CORS headers"
    else
        not_ok "$name: $want $reason" "HTTP $code $body"
    fi
    req "$path" -H "Origin: https://evil.test" "$@"
    if [ "$code" = "$want" ] || [ "$code" = 403 ]; then
        cors_none "... from another origin: none (HTTP $code)"
    else
        not_ok "$name from another origin" "HTTP $code $body"
    fi
}
expect_cors "expired token" 401 token_expired "/t/$tok_expired/$e/x"
expect_cors "revoked user" 401 revoked "/t/$tok_bob/$e/x"
expect_cors "malformed token" 401 token_malformed "/t/not-a-jwt/$e/x"
expect_cors "tampered token" 401 token_bad_signature "/t/$tok_tampered/$e/x"
expect_cors "token from a realm that does not exist" 401 unknown_realm "/t/$tok_norealm/$e/x"
expect_cors "disabled user" 403 user_disabled "/t/$tok_carol/$e/x"
expect_cors "host not on the list" 403 host_denied "/t/$tok_alice/evil.com:$up_port/x"
tok_frank=$(jwt --kid app1 --sub alice --realm acs.test --ttl 500)
req "/acsr/$tok_frank/$e/x" -H "Origin: $app"
req "/acsr/$tok_frank/$e/x" -H "Origin: $app"
[ "$code" = 429 ] && [ "$body" = '{"error":"rate_limited"}' ] &&
    cors_ok "over the rate limit: 429 rate_limited with the CORS headers" ||
    not_ok "429 with CORS" "HTTP $code $body"
req "/acsr/$tok_frank/$e/x" -H "Origin: https://evil.test"
[ "$code" = 429 ] && cors_none "... to an origin the realm does not list: 429, no CORS headers" ||
    not_ok "429 other origin" "HTTP $code $body"
req "/t/$tok_dave/$e/x" -H "Origin: $app"
[ "$code" = 403 ] && [ "$body" = '{"error":"origin_denied"}' ] &&
    cors_none "another realm's token from this origin: 403 origin_denied, no CORS headers" ||
    not_ok "other realm origin_denied" "HTTP $code $body"

# A preflight whose token is refused is answered (the page then reads the
# real request's 401); from an origin no realm lists it is refused.
for t in expired bob carol; do
    eval "tk=\$tok_$t"
    req "/t/$tk/$e/x" -X OPTIONS -H "Origin: $app" \
        -H 'Access-Control-Request-Method: POST' \
        -H 'Access-Control-Request-Headers: content-type'
    [ "$code" = 204 ] && [ "$(hdr Access-Control-Allow-Headers)" = content-type ] &&
        cors_ok "preflight with a refused token ($t) from an allowed origin: 204" ||
        not_ok "preflight refused token $t" "HTTP $code $body"
done
req "/t/$tok_bob/$e/x" -X OPTIONS -H "Origin: https://evil.test" \
    -H 'Access-Control-Request-Method: POST'
[ "$code" = 401 ] && cors_none "... from an origin no realm lists: 401, no CORS headers" ||
    not_ok "preflight refused token other origin" "HTTP $code $body"

# --- $turnpolicy_requested_upstream -----------------------------------------
: >"$ngx/logs/requested.log"
req "/l/$tok_alice/$e/ok"
req "/l/$tok_alice/evil.com:$up_port/x"
req "/l/$tok_expired/$e/x"
req "/l/$tok_bob/go.trouter.communication.microsoft.com/x"
req "/l/$tok_alice/ev%22il.com/x"
req "/l/"
sleep 0.3
log=$(cat "$ngx/logs/requested.log")
want="200 ok up=$e
403 host_denied up=evil.com:$up_port
401 token_expired up=$e
401 revoked up=go.trouter.communication.microsoft.com
403 bad_host up=[invalid]
401 token_missing up=-"
got=$(printf '%s\n' "$log" | sed 's/ req=.*//')
[ "$got" = "$want" ] &&
    ok "\$turnpolicy_requested_upstream: the host[:port] asked for, refusals included" ||
    not_ok "requested upstream in the log" "$(printf '%s' "$got" | tr '\n' '|')"
if grep -qF -e "$tok_alice" -e "$tok_expired" -e "$tok_bob" "$ngx/logs/requested.log"; then
    not_ok "no token in the log with \$turnpolicy_requested_upstream"
else
    ok "no token in the log with \$turnpolicy_requested_upstream and \$request"
fi

# --- credentials endpoint: ?format=acs-native (ACS native SDKs) ------------
tok_hank=$(jwt --kid app1 --sub hank --realm acs.test --ttl 600)
tok_ivy=$(jwt --kid app1 --sub ivy --realm acs.test --ttl 600)
tok_nina=$(jwt --kid app1 --sub nina --realm native.test --ttl 600)
native_check() { # the native shape with URL $1 and udpPort $2, realm $3
    printf '%s' "$body" | $py -c '
import json, sys
b = json.load(sys.stdin)
s = b["iceServers"]
ok = (len(s) == 1 and s[0]["urls"] == [sys.argv[1]]
      and s[0]["udpPort"] == int(sys.argv[2]) and s[0]["realm"] == sys.argv[3]
      and set(s[0]) == {"urls", "udpPort", "realm", "username", "password"}
      and b["ttl"] > 0 and b["expiresOn"].endswith("Z"))
sys.exit(0 if ok else 1)' "$1" "$2" "$3"
}
req "/credentials?format=acs-native" -H "Authorization: Bearer $tok_hank"
if [ "$code" = 200 ] && native_check turn:127.0.0.1 3478 acs.test; then
    ok "credentials ?format=acs-native: one IceServer, turn:<IPv4>, udpPort, realm, username, password"
else
    not_ok "credentials acs-native" "HTTP $code $body"
fi
nu=$(printf '%s' "$body" | $py -c 'import json,sys; print(json.load(sys.stdin)["iceServers"][0]["username"])')
np=$(printf '%s' "$body" | $py -c 'import json,sys; print(json.load(sys.stdin)["iceServers"][0]["password"])')
if vout=$("$tp_cli" verify --database "$db" --realm acs.test --username "$nu" \
        --password "$np" 2>&1); then
    ok "... the native credential verifies in the store"
else
    not_ok "native credential verifies" "$vout"
fi
req "/credentials?format=rest" -H "Authorization: Bearer $tok_hank"
[ "$code" = 200 ] && [ "$(json ttl)" = 600 ] && [ -n "$(json uris)" ] &&
    ok "credentials ?format=rest: the TURN REST shape" || not_ok "rest format" "HTTP $code $body"
req "/credentials-realm?format=acs-native" -H "Authorization: Bearer $tok_nina"
[ "$code" = 200 ] && native_check turn:127.0.0.1 3479 native.test &&
    ok "credentials-realm ?format=acs-native: from the realm's turn_urls (udpPort 3479)" ||
    not_ok "realm urls acs-native" "HTTP $code $body"
req "/credentials?format=bogus" -H "Authorization: Bearer $tok_ivy"
[ "$code" = 400 ] && [ "$body" = '{"error":"bad_format"}' ] &&
    ok "credentials ?format=bogus: 400 bad_format" || not_ok "bad format" "HTTP $code $body"
# Every way a realm's URLs fail the native rules: 409 before issuing.
# nora polls until the worker has the new URLs; nina is asked once each.
tok_nora=$(jwt --kid app1 --sub nora --realm native.test --ttl 600)
set_native_urls() { # SQL array; waits until nora gets the status $2 (or 200)
    psql_q -c "SELECT turnpolicy.set_turn_urls('native.test', $1)" >/dev/null
    for _ in $(seq 50); do
        req "/credentials-realm?format=acs-native" -H "Authorization: Bearer $tok_nora"
        [ "$code" = "$2" ] && break
        sleep 0.1
    done
}
while IFS='|' read -r why urls; do
    set_native_urls "$urls" 409
    req "/credentials-realm?format=acs-native" -H "Authorization: Bearer $tok_nina"
    if [ "$code" = 409 ] && [ "$body" = '{"error":"native_unsupported"}' ]; then
        ok "credentials ?format=acs-native, $why: 409 native_unsupported"
    else
        not_ok "credentials acs-native $why" "HTTP $code $body"
    fi
    req "/credentials-realm?format=acs-native" -H "Authorization: Bearer $tok_nina"
done <<'CASES'
hostnames only|ARRAY['turn:relay.native.test:3478?transport=udp']
TCP/TLS only|ARRAY['turn:127.0.0.1:443?transport=tcp', 'turns:127.0.0.1:5349?transport=tcp']
IPv6 only|ARRAY['turn:[::1]:3478?transport=udp']
no URL|'{}'::text[]
CASES
# nina: 1 credential, 8 refusals; with issue_per_minute = 5 the next one
# passes only if refusals counted nothing.
set_native_urls "ARRAY['turn:127.0.0.1']" 200
req "/credentials-realm?format=acs-native" -H "Authorization: Bearer $tok_nina"
[ "$code" = 200 ] && native_check turn:127.0.0.1 3478 native.test &&
    ok "... refusals issue nothing (the issuance limit is untouched); fixed URLs issue again" ||
    not_ok "after refusals" "HTTP $code $body"
bad "turnpolicy_turn_urls with a transport browsers reject" \
    'invalid value "turn:relay.test?transport=sctp" in "turnpolicy_turn_urls" directive: URL' \
    "$(loc /c 'turnpolicy_credentials on; turnpolicy_turn_urls turn:relay.test?transport=sctp;')"
