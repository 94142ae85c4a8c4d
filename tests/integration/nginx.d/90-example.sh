# 90-example: proxy-filter/nginx.conf.example, with only its paths and
# ports replaced by the test's, passes nginx -t and proxies a request
# (and refuses one) when run.  Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154

ex=$d/example
mkdir -p "$ex/logs" "$ex/tmp"
ex_http=$(tp_free_port)
ex_https=$(tp_free_port)
ex_fa=$(tp_free_port)
sed -e "s|^load_module .*|load_module $so;|" \
    -e "s|^user www-data;|$user_line|" \
    -e "s|^pid /run/nginx.pid;|pid $ex/nginx.pid;\ndaemon off;|" \
    -e "s|/etc/turnpolicy/turnpolicy.conf|$d/turnpolicy.conf|" \
    -e "s|resolver 127.0.0.1 |resolver 127.0.0.1:$dns_port |" \
    -e "s|/var/log/nginx/|$ex/logs/|" \
    -e "s|/etc/ssl/acs-proxy/fullchain.pem|$d/proxy.pem|" \
    -e "s|/etc/ssl/acs-proxy/privkey.pem|$d/proxy.key|" \
    -e "s|/etc/ssl/certs/ca-certificates.crt|$d/ca.pem|" \
    -e "s|listen 80 default_server;|listen 127.0.0.1:$ex_http default_server;|" \
    -e "s|listen 443 ssl http2 default_server;|listen 127.0.0.1:$ex_https ssl http2 default_server;|" \
    -e "/listen \[::\]:/d" \
    -e "s|listen 127.0.0.1:9180;|listen 127.0.0.1:$ex_fa;|" \
    -e "s|^http {|http {\n    client_body_temp_path $ex/tmp/body;\n    proxy_temp_path $ex/tmp/proxy;\n    fastcgi_temp_path $ex/tmp/fastcgi;\n    uwsgi_temp_path $ex/tmp/uwsgi;\n    scgi_temp_path $ex/tmp/scgi;|" \
    "$TP_ROOT/proxy-filter/nginx.conf.example" >"$ex/nginx.conf"
if "${ngx_env[@]}" /usr/sbin/nginx -t -p "$ex" -c "$ex/nginx.conf" >"$ex/t.out" 2>&1; then
    ok "nginx -t accepts proxy-filter/nginx.conf.example (paths and ports replaced)"
    tp_bg example "${ngx_env[@]}" /usr/sbin/nginx -p "$ex" -c "$ex/nginx.conf"
    if tp_wait_port "$ex_https" 10; then
        for _ in $(seq 50); do
            grep -q 'policy store loaded' "$ex/logs/acs-proxy.error.log" 2>/dev/null && break
            sleep 0.1
        done
        c=$(curl -sS -o "$d/ex.body" -w '%{http_code}' --cacert "$d/ca.pem" \
            --resolve "proxy.test:$ex_https:127.0.0.1" \
            "https://proxy.test:$ex_https/t/$tok_alice/$e/from-example" 2>&1)
        [ "$c" = 200 ] && grep -q '"path": "/from-example"' "$d/ex.body" &&
            ok "the example configuration proxies an allowed request" ||
            not_ok "example proxies" "HTTP $c $(cat "$d/ex.body")"
        c=$(curl -sS -o "$d/ex.body" -w '%{http_code}' --cacert "$d/ca.pem" \
            --resolve "proxy.test:$ex_https:127.0.0.1" \
            "https://proxy.test:$ex_https/t/$tok_alice/evil.com:$up_port/x" 2>&1)
        [ "$c" = 403 ] && ok "... and refuses evil.com" ||
            not_ok "example refuses" "HTTP $c"
        sleep 0.2
        grep -q " evil.com:$up_port/x 403 .*reason=host_denied" "$ex/logs/acs-proxy.access.log" &&
            ! grep -qF "$tok_alice" "$ex/logs/acs-proxy.access.log" &&
            ok "... and its access log names the refused upstream (\$turnpolicy_requested_upstream), not the token" ||
            not_ok "example log names the refused upstream" "$(tail -2 "$ex/logs/acs-proxy.access.log")"
        c=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Forwarded-Uri: /t/$tok_alice/$e/y" \
            "http://127.0.0.1:$ex_fa/auth/forwarded" 2>&1)
        c2=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Original-URI: /t/$tok_alice/$e/y" \
            "http://127.0.0.1:$ex_fa/auth/nginx" 2>&1)
        c3=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Forwarded-Uri: /t/$tok_alice/$e/y" \
            "http://127.0.0.1:$ex_fa/auth/nginx" 2>&1)
        [ "$c" = 200 ] && [ "$c2" = 200 ] && [ "$c3" = 403 ] &&
            ok "... and its forward-auth server answers (X-Forwarded-Uri for Traefik/Caddy, X-Original-URI only for nginx)" ||
            not_ok "example forward-auth" "HTTP $c $c2 $c3"
    else
        not_ok "the example configuration starts" "$(tail -3 "$d/example.out")"
    fi
    kill "$tp_pid_example" 2>/dev/null
else
    not_ok "nginx -t on nginx.conf.example" "$(grep -E 'emerg|error' "$ex/t.out" | head -3)"
fi
