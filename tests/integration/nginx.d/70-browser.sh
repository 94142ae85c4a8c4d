# 70-browser: the real ACS Calling Web SDK in Debian's Chromium, end to end
# through nginx + the module (issue 10).  Sourced by nginx.sh.
#
# $BUILD/browser gets the SDK (npm @azure/communication-calling 2.0.0,
# tests/integration/browser/package.json), bundled by esbuild for a page
# served from https://app.browser.test:<port> (another origin than the
# proxy), and playwright-core to drive /usr/bin/chromium headless with a
# fresh profile, every host name mapped to 127.0.0.1, no proxy, and
# WebRTC kept off UDP except through a proxy (there is none) on the SDK
# pages.  Chromium runs under strace: no connect or send may go outside
# 127.0.0.0/8 and ::1 (check.py).
#
#   call.html, token of walt:  CallClient with proxy.url =
#       https://proxy.test:<port>/b/<token>/, a CallAgent with a locally
#       minted fake ACS token, startCall.  Every request the SDK sends
#       through the proxy is allowed and reaches the fake upstream (one
#       TLS server for every name: /b/ in 70-browser.server.conf) without
#       the token, none loops, no CORS error in the console.
#   call.html, token of rita (revoked) and no token at all: every request
#       refused with 401, readable by the page, nothing upstream.
#   relay.html: iceServers from /credentials-relay (60-relay's location)
#       into networkConfiguration.turn.iceServers and a relay-only
#       RTCPeerConnection pair through coturn on turnpolicyd.
#
# Chromium that cannot start: "ok # SKIP" with the reason, or not ok when
# CI=1.
# shellcheck shell=bash disable=SC2154

browser_skip() { # reason
    if [ "${CI:-}" = 1 ]; then
        not_ok "browser end-to-end (CI=1: Chromium must run)" "$1"
    else
        echo "ok - browser end-to-end # SKIP $1"
    fi
}

# browser_page NAME URL SECONDS [chromium flag...]: run the driver under
# strace; $d/browser-NAME.{json,trace,nginx,upstream}; returns its status
browser_page() {
    local name=$1 url=$2 secs=$3 n0 u0 rc
    shift 3
    n0=$(wc -l <"$ngx/logs/browser.log" 2>/dev/null || echo 0)
    u0=$(wc -l <"$d/upstream.log")
    cat >"$d/chromium-$name" <<SH
#!/bin/sh
exec strace -f -qq -yy --seccomp-bpf -e trace=connect,sendto,sendmsg,sendmmsg \
    -e signal=none -o "$d/browser-$name.trace" /usr/bin/chromium "\$@"
SH
    chmod 755 "$d/chromium-$name"
    (cd "$bdir" && timeout $((secs + 150)) node driver.js "$url" \
        "$d/browser-$name.json" "$secs" "$d/chromium-$name" "$@" \
        >"$d/browser-$name.out" 2>&1)
    rc=$?
    sleep 0.5
    tail -n +$((n0 + 1)) "$ngx/logs/browser.log" >"$d/browser-$name.nginx" 2>/dev/null
    tail -n +$((u0 + 1)) "$d/upstream.log" >"$d/browser-$name.upstream"
    return $rc
}

# browser_check MODE NAME: check.py's verdicts as TAP lines
browser_check() {
    local v name why
    TP_TOKENS="$browser_tokens" $py "$TP_ROOT/tests/integration/browser/check.py" \
        "$1" "$d/browser-$2.json" "$d/browser-$2.nginx" "$d/browser-$2.upstream" \
        "$d/browser-$2.trace" proxy.test >"$d/browser-$2.verdicts" 2>&1 ||
        not_ok "browser check.py $2" "$(tail -2 "$d/browser-$2.verdicts")"
    while IFS=$'\t' read -r v name why; do
        case $v in
        P) ok "browser $2: ${name#*: }" ;;
        F) not_ok "browser $2: ${name#*: }" "$why" ;;
        esac
    done <"$d/browser-$2.verdicts"
}

browser_main() {
    bdir="$TP_ROOT/$BUILD/browser"
    if [ ! -x /usr/bin/chromium ]; then
        browser_skip "/usr/bin/chromium is missing (scripts/install-deps.sh installs it)"
        return
    fi
    # The SDK, esbuild and playwright-core, once per build directory.
    mkdir -p "$bdir"
    cp "$TP_ROOT"/tests/integration/browser/{package.json,entry.js,driver.js,call.html,relay.html} "$bdir/"
    # (again when package.json changed since)
    if ! cmp -s "$bdir/package.json" "$bdir/installed.json"; then
        if ! (cd "$bdir" && timeout 600 npm install --no-audit --no-fund \
                  --loglevel=error >"$d/npm.out" 2>&1); then
            not_ok "npm install of the ACS Calling SDK, esbuild, playwright-core" \
                "$(tail -3 "$d/npm.out")"
            return
        fi
        cp "$bdir/package.json" "$bdir/installed.json"
    fi
    sdkv=$(cd "$bdir" && node -p \
        'require("./node_modules/@azure/communication-calling/package.json").version')
    if (cd "$bdir" && node_modules/.bin/esbuild entry.js --bundle --format=iife \
            --platform=browser --define:process.env.NODE_ENV='"production"' \
            --log-level=error --outfile=sdk.js >"$d/esbuild.out" 2>&1); then
        ok "the ACS Calling Web SDK $sdkv from npm, bundled for a page by esbuild"
    else
        not_ok "esbuild bundles the SDK" "$(tail -3 "$d/esbuild.out")"
        return
    fi
    # Can Chromium start at all?
    printf '<script>window.result={steps:["up"]}</script>' >"$bdir/up.html"
    if ! (cd "$bdir" && timeout 120 node driver.js "file://$bdir/up.html" \
              "$d/browser-up.json" 0 /usr/bin/chromium >"$d/browser-up.out" 2>&1); then
        browser_skip "Chromium cannot start: $(grep -m1 'cannot start' "$d/browser-up.out" || tail -1 "$d/browser-up.out")"
        return
    fi

    # The page's server: another origin than the proxy, TLS (a secure
    # context for WebRTC), loopback only.
    page_port=$(tp_free_port)
    cat >"$d/page_server.py" <<'PY'
import functools, http.server, ssl, sys
port, cert, key, root = sys.argv[1:5]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)),
                                    functools.partial(H, directory=root))
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
    tp_bg page $py "$d/page_server.py" "$page_port" "$d/proxy.pem" "$d/proxy.key" "$bdir"
    tp_wait_port "$page_port" 10 || { not_ok "page server starts" "$(cat "$d/page.out")"; return; }
    origin="https://app.browser.test:$page_port"
    psql_q >/dev/null <<SQL
SELECT turnpolicy.set_allowed_origins('browser.test', ARRAY['$origin']);
SELECT turnpolicy.set_allowed_origins('acs.test', ARRAY['https://app.acs.test', '$origin']);
SQL
    tok_walt=$(jwt --kid app1 --sub walt --realm browser.test --ttl 900)
    tok_rita=$(jwt --kid app1 --sub rita --realm browser.test --ttl 900)
    tok_vera=$(jwt --kid app1 --sub vera --realm acs.test --ttl 900)
    psql_q -c "SELECT turnpolicy.revoke_user('browser.test', 'rita')" >/dev/null
    # A fake ACS user token: the SDK reads its claims, nobody checks it.
    acs_tok=$($py -c '
import base64, json, os, time
b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
r = "00000000-0000-0000-0000-0000000000aa"
now = int(time.time())
print(b({"alg": "RS256", "kid": "fake", "x5t": "fake", "typ": "JWT"}) + "." +
      b({"skypeid": "acs:%s_0000001a-0000-0000-0000-000000000001" % r,
         "scp": 1792, "csi": str(now), "exp": now + 3600, "rgn": "amer",
         "acsScope": "voip", "resourceId": r, "resourceLocation": "unitedstates",
         "iat": now}) + "." +
      base64.urlsafe_b64encode(os.urandom(64)).rstrip(b"=").decode())')
    browser_tokens="$tok_walt $tok_rita $tok_vera"
    sleep 1    # the workers see the origins and the revocation
    enc() { $py -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
    pbase="https://proxy.test:$ngx_port/b"
    nowebrtc=--force-webrtc-ip-handling-policy=disable_non_proxied_udp

    # check.py's packet check must see an address outside loopback
    printf '1 connect(5<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("20.202.248.2")}, 16) = 0\n1 sendto(4<UDPv6:[[::1]:5->[2001:db8::5]:9]>, "x", 1, 0, NULL, 0) = 1\n' \
        >"$d/browser-self.trace"
    echo '{"requests":[],"responses":[],"console":[],"result":{}}' >"$d/browser-self.json"
    : >"$d/browser-self.nginx"
    : >"$d/browser-self.upstream"
    TP_TOKENS="" $py "$TP_ROOT/tests/integration/browser/check.py" relay \
        "$d/browser-self.json" "$d/browser-self.nginx" "$d/browser-self.upstream" \
        "$d/browser-self.trace" proxy.test | grep -q $'^F\t.*outside.*connect 20.202.248.2 sendto 2001:db8::5' &&
        ok "browser: the packet check sees a TCP connect and a UDP send outside loopback" ||
        not_ok "browser: the packet check sees packets outside loopback"

    browser_page allowed "$origin/call.html?proxy=$(enc "$pbase/$tok_walt/")&acs=$acs_tok" 30 "$nowebrtc" ||
        not_ok "browser allowed: the driver ran" "$(tail -2 "$d/browser-allowed.out")"
    browser_check allowed allowed
    browser_page revoked "$origin/call.html?proxy=$(enc "$pbase/$tok_rita/")&acs=$acs_tok" 15 "$nowebrtc" ||
        not_ok "browser revoked: the driver ran" "$(tail -2 "$d/browser-revoked.out")"
    browser_check refused revoked
    browser_page notoken "$origin/call.html?proxy=$(enc "$pbase/")&acs=$acs_tok" 15 "$nowebrtc" ||
        not_ok "browser notoken: the driver ran" "$(tail -2 "$d/browser-notoken.out")"
    browser_check refused notoken

    # Page 2: relay-only through coturn on turnpolicyd (60-relay's ports
    # and /credentials-relay location; 60-relay stopped its servers).
    tp_turnpolicyd_conf "$d/tpd-b.conf" "$db" "$port5" "$d/tpd.pw" nginx-browser
    tp_bg tpdb "$TP_BIN/turnpolicyd" --config "$d/tpd-b.conf"
    tp_coturn_conf turnb "$port4" acs.test \
        "$(tp_coturn_redis_auth "$port5" "$(cat "$d/tpd.pw")")" no-cli allow-loopback-peers
    if tp_wait_port "$port5" 15 && tp_coturn_start turnb "$port4"; then
        browser_page relay "$origin/relay.html?creds=$(enc "https://proxy.test:$ngx_port/credentials-relay")&jwt=$tok_vera" 10 ||
            not_ok "browser relay: the driver ran" "$(tail -2 "$d/browser-relay.out")"
        browser_check relay relay
    else
        not_ok "browser relay: turnpolicyd and coturn start" \
            "$(tail -3 "$d/tpdb.out" "$d/turnb.out" 2>/dev/null)"
    fi
    kill "$tp_pid_turnb" "$tp_pid_tpdb" "$tp_pid_page" 2>/dev/null
}

browser_main
