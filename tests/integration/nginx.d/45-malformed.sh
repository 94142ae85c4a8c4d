# 45-malformed: odd and oversized input answered with a clear 4xx, never a
# crash (nginx.sh checks the error log for crashed workers and sanitizer
# reports at its end; `make asan` runs this with the ASan/UBSan module).
# Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154

expect "Authorization: 'Bearer' alone: 401" 401 token_malformed /credentials \
    -H 'Authorization: Bearer'
expect "a token of two segments: 401" 401 token_malformed /credentials \
    -H 'Authorization: Bearer abc.def'
expect "a token of 8000 dots: 401" 401 token_malformed /credentials \
    -H "Authorization: Bearer $(head -c 8000 /dev/zero | tr '\0' .)"
expect "a token whose header is not JSON: 401" 401 "" /credentials \
    -H "Authorization: Bearer $(printf '{{{' | base64 | tr -d '=').e30.c2ln"
expect "a cookie token given twice, differently: 401 or the first" 200 "" \
    "/c/$e/x" -H "Cookie: tp=$tok_alice; tp=garbage"
expect "an empty cookie value: 401" 401 token_missing "/c/$e/x" -H 'Cookie: tp='
req "/t/$tok_alice/$e$(head -c 6000 /dev/zero | tr '\0' '/' | sed 's|//|/a|g')"
[ "$code" = 200 ] && [ "$(json path | tr -cd / | wc -c)" -ge 2999 ] &&
    ok "a path of 3000 segments is proxied whole" ||
    not_ok "long path" "HTTP $code"
# Raw requests curl would not send: control bytes, bare LF, a NUL.
raw() { # BYTES -> the status code nginx answers (000 if it closes)
    $py - "$ngx_port" "$1" "$d/ca.pem" <<'PY'
import socket, ssl, sys
port, data, ca = int(sys.argv[1]), sys.argv[2].encode().decode("unicode_escape").encode("latin-1"), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                    server_hostname="proxy.test")
s.sendall(data)
buf = b""
try:
    while b"\r\n" not in buf:
        b = s.recv(4096)
        if not b: break
        buf += b
except OSError:
    pass
line = buf.split(b"\r\n", 1)[0].split()
print(line[1].decode() if len(line) > 1 else "000")
PY
}
c=$(raw "GET /t/$tok_alice/$e/x\\x01y HTTP/1.1\\r\\nHost: proxy.test\\r\\n\\r\\n")
[ "$c" = 400 ] || [ "$c" = 403 ] && ok "a control byte in the path: $c" ||
    not_ok "control byte in the path" "got $c"
c=$(raw "GET /credentials HTTP/1.1\\r\\nHost: proxy.test\\r\\nAuthorization: Bearer a\\x00b.c.d\\r\\n\\r\\n")
[ "$c" = 400 ] || [ "$c" = 401 ] && ok "a NUL in the Authorization header: $c" ||
    not_ok "NUL in a header" "got $c"
c=$(raw "GET /t/$tok_alice/$e/x HTTP/1.1\\r\\nHost: proxy.test\\r\\nOrigin: \\xff\\xfe\\r\\n\\r\\n")
[ "$c" = 403 ] && ok "a non-UTF-8 Origin: 403" || not_ok "binary Origin" "got $c"
c=$(raw "OPTIONS /t/$tok_alice/$e/x HTTP/1.1\\r\\nHost: proxy.test\\r\\nOrigin: https://app.acs.test\\r\\nAccess-Control-Request-Method: \\r\\n\\r\\n")
[ "$c" = 403 ] && ok "a preflight with an empty method: 403" || not_ok "empty preflight method" "got $c"

# nginx quotes the request line in its error messages ("request: ...") and
# in $request: a token in the path or query shows as [token] there once the
# module has read it.  (Requests nginx's own parser rejects, like the
# control byte above, are logged at "info" as sent, before any module runs:
# keep error_log at "notice" or above in production.)
expect "an allowed host whose port is closed: 502" 502 "" \
    "/t/$tok_alice/edge.skype.com:$closed_port/x"
req "/a/edge.skype.com:$closed_port/x?access_token=$tok_bob2"
sleep 0.2
grep -F ":$closed_port" "$ngx/logs/error.log" >"$d/closed.log"
if [ ! -s "$d/closed.log" ]; then
    not_ok "nginx logged the failed upstream"
elif grep -qF -e "$tok_alice" -e "$tok_bob2" "$d/closed.log"; then
    not_ok "no token in nginx's error messages about a failed upstream"
elif grep -q "request: \"GET /t/\[token\]/edge.skype.com:$closed_port/x HTTP/1.1\"" \
        "$d/closed.log" &&
     grep -q "request: \"GET /a/edge.skype.com:$closed_port/x?access_token=\[token\] HTTP/1.1\"" \
        "$d/closed.log"; then
    ok "nginx's upstream error messages show the request with [token] (path and argument)"
else
    not_ok "redacted request line" "$(head -2 "$d/closed.log")"
fi

# The SDK's nested URL carries the token twice: neither copy in the error
# message about the failed upstream.
req "/t/$tok_alice/proxy.test:$ngx_port/t/$tok_alice/edge.skype.com:$closed_port/nested"
sleep 0.2
if [ "$code" = 502 ] && grep -F '/nested' "$ngx/logs/error.log" >"$d/nested.log" &&
   ! grep -qF "$tok_alice" "$d/nested.log" &&
   grep -q 'request: "GET /t/\[token\]/proxy.test:[0-9]*/t/\[token\]/edge' "$d/nested.log"; then
    ok "a nested URL's two copies of the token are both [token] in nginx's messages"
else
    not_ok "nested URL redaction" "HTTP $code $(sed "s/$tok_alice/TOKEN/g" "$d/nested.log" | head -2)"
fi
# $request in an access log ("combined"): refused requests too, even
# before the module read the token (a bad path).  (Lines nginx's parser
# refused above, before any module ran, are nginx's own: not counted.)
n0=$(wc -l <"$ngx/logs/request.log")
req "/t/$tok_bob2/$e/../x"
req "/t/$tok_bob2/evil.com:$up_port/x"
sleep 0.2
tail -n +"$((n0 + 1))" "$ngx/logs/request.log" >"$d/request.tail"
if grep -qF -e "$tok_bob2" -e "$tok_alice" "$d/request.tail"; then
    not_ok "no token in \$request (combined access log)" "$(grep -F -e "$tok_bob2" -e "$tok_alice" "$d/request.tail" | head -3 | sed -e "s/$tok_bob2/BOB2/g" -e "s/$tok_alice/ALICE/g" | cut -c1-200)"
elif grep -q '"\[request not shown\]" 403' "$d/request.tail" &&
     grep -q '"GET /t/\[token\]/evil.com' "$d/request.tail"; then
    ok "no token in \$request: [token] once read, the line withheld before"
else
    not_ok "\$request redaction" "$(tail -2 "$d/request.tail")"
fi
