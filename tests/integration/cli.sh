#!/bin/bash
# cli.sh - the turnpolicy command-line tool as a user drives it: help for
# every command, configuration lookup order, exit codes (0 valid, 1
# invalid, 2 usage/config), stdin passwords, and that nothing secret is
# printed on errors.
. "$(dirname "$0")/../lib.sh"

d=$tp_tmpdir
tp="$TP_BIN/turnpolicy"
printf 'cli-secret-0123456789abcdef\n' >"$d/k1"
printf 'cli-jwt-secret-0123456789abcdef-0123456789\n' >"$d/jwt"
chmod 600 "$d/k1" "$d/jwt"
cat >"$d/a.conf" <<CONF
jwt_key.j1 = HS256 $d/jwt
jwt_audience = cli-test
[realm a.example]
secret.k1 = signing $d/k1
max_ttl = 900
hosts = edge.skype.com *.communication.azure.com
peer_allow = 127.0.0.0/8
CONF

for c in issue verify key jwt peer-check host-check coturn-peers; do
    if "$tp" "$c" --help | grep -q '^usage: turnpolicy'; then
        ok "$c --help prints usage"
    else
        not_ok "$c --help prints usage"
    fi
done
check "turnpolicy --help" "$tp" --help
check "turnpolicy --version" sh -c "'$tp' --version | grep -q '^turnpolicy [0-9]'"

rc_of() { "$@" >/dev/null 2>&1; echo $?; }
[ "$(rc_of "$tp" frobnicate)" = 2 ] && ok "unknown command exits 2" || not_ok "unknown command exits 2"
[ "$(rc_of "$tp" issue)" = 2 ] && ok "missing --user exits 2" || not_ok "missing --user exits 2"

# Config lookup: --config beats $TURNPOLICY_CONFIG; a missing file is a
# clear error naming it.
TURNPOLICY_CONFIG=/nonexistent/tp.conf "$tp" issue --user u 2>"$d/err"
if [ $? = 2 ] && grep -q 'cannot open /nonexistent/tp.conf' "$d/err"; then
    ok "missing configuration is named (exit 2)"
else
    not_ok "missing configuration is named (exit 2)" "$(cat "$d/err")"
fi
check "TURNPOLICY_CONFIG is used" env TURNPOLICY_CONFIG="$d/a.conf" "$tp" issue --user u --format plain
check "--config beats TURNPOLICY_CONFIG" env TURNPOLICY_CONFIG=/nonexistent "$tp" --config "$d/a.conf" issue --user u

# Exit codes of verify, and the password from stdin.
"$tp" --config "$d/a.conf" issue --user bob --format plain --now 1700000000 >"$d/c"
u=$(sed -n 1p "$d/c"); p=$(sed -n 2p "$d/c")
[ "$u" = "1700003600:bob:k1:1700000000" ] || [ "$u" = "1700000900:bob:k1:1700000000" ] &&
    ok "default ttl capped by the realm ($u)" || not_ok "issued username" "$u"
[ "$(rc_of "$tp" --config "$d/a.conf" verify --username "$u" --password "$p" --now 1700000001)" = 0 ] &&
    ok "verify valid exits 0" || not_ok "verify valid exits 0"
echo "$p" | "$tp" --config "$d/a.conf" verify --username "$u" --password - --now 1700000001 >/dev/null 2>&1 &&
    ok "password read from stdin" || not_ok "password read from stdin"
"$tp" --config "$d/a.conf" verify --username "$u" --password "x$p" --now 1700000001 2>"$d/err"
[ $? = 1 ] && grep -q '^invalid: bad_password:' "$d/err" && ! grep -qF "$p" "$d/err" &&
    ok "bad password exits 1 with the reason, without the password" || not_ok "bad password exit 1"
"$tp" --config "$d/a.conf" verify --username "1700000900:b%x:k1:1700000000" --password "$p" 2>"$d/err"
[ $? = 1 ] && grep -q 'bad_character' "$d/err" && ok "% in a username is refused" || not_ok "% refused"
"$tp" --config "$d/a.conf" verify --username "1700000900:bob:k7:1700000000" --password "$p" 2>"$d/err"
[ $? = 1 ] && grep -q 'unknown_kid' "$d/err" && ok "unknown kid is refused" || not_ok "unknown kid"

# key: coturn's documented vector, and the policy-applying form.
[ "$("$tp" key --realm north.gov --username gorst --password hero)" = 7da2270ccfa49786e0115366d3a3d14d ] &&
    ok "key: coturn's gorst/north.gov/hero vector" || not_ok "key vector"
k1=$("$tp" --config "$d/a.conf" key --username "$u" --now 1700000001)
k2=$("$tp" key --realm a.example --username "$u" --password "$p")
[ -n "$k1" ] && [ "$k1" = "$k2" ] && ok "derived key == key of the password" || not_ok "derived key" "$k1 vs $k2"

# Secret file with loose permissions: refused with a fix in the message.
chmod 644 "$d/k1"
"$tp" --config "$d/a.conf" issue --user u 2>"$d/err"
[ $? = 2 ] && grep -q 'chmod 600' "$d/err" && ! grep -q 'cli-secret' "$d/err" &&
    ok "world-readable secret file refused" || not_ok "loose secret perms" "$(cat "$d/err")"
chmod 600 "$d/k1"

# JWT round trip and refusals.
t=$("$tp" --config "$d/a.conf" jwt issue --kid j1 --sub alice --realm a.example --ttl 60)
check "jwt verify accepts an issued token" "$tp" --config "$d/a.conf" jwt verify "$t"
"$tp" --config "$d/a.conf" jwt verify --now $(( $(date +%s) + 3600 )) "$t" 2>"$d/err"
[ $? = 1 ] && grep -q token_expired "$d/err" && ok "jwt verify: expired token exits 1" || not_ok "jwt expired"
sig=${t##*.}
first=${sig:0:1}; [ "$first" = A ] && repl=B || repl=A
"$tp" --config "$d/a.conf" jwt verify "${t%.*}.$repl${sig:1}" 2>"$d/err"
[ $? = 1 ] && grep -q token_bad_signature "$d/err" && ! grep -qF "$t" "$d/err" &&
    ok "jwt verify: tampered token, not echoed" || not_ok "jwt tampered"

# Allow-lists.
[ "$(rc_of "$tp" peer-check 169.254.169.254)" = 1 ] && ok "peer-check: metadata address denied" || not_ok "peer metadata"
[ "$(rc_of "$tp" peer-check ::ffff:10.1.2.3)" = 1 ] && ok "peer-check: ::ffff:10.1.2.3 denied" || not_ok "peer mapped"
[ "$(rc_of "$tp" --config "$d/a.conf" peer-check --realm a.example ::ffff:127.0.0.1)" = 0 ] &&
    ok "peer-check: realm allow of 127/8 covers ::ffff:127.0.0.1" || not_ok "peer realm allow"
[ "$(rc_of "$tp" peer-check not-an-ip)" = 2 ] && ok "peer-check: garbage exits 2" || not_ok "peer garbage"
[ "$(rc_of "$tp" --config "$d/a.conf" host-check x.communication.azure.com)" = 0 ] && ok "host-check: wildcard" || not_ok "host wildcard"
[ "$(rc_of "$tp" --config "$d/a.conf" host-check 'edge.skype.com@evil.com')" = 1 ] && ok "host-check: userinfo trick" || not_ok "host trick"
"$tp" coturn-peers >"$d/peers"
grep -q '^denied-peer-ip=127.0.0.0-127.255.255.255$' "$d/peers" &&
grep -q '^denied-peer-ip=::ffff:169.254.0.0-::ffff:169.254.255.255$' "$d/peers" &&
    ok "coturn-peers prints coturn ranges incl. mapped forms" || not_ok "coturn-peers" "$(head -3 "$d/peers")"
# A credential written into a full disk is lost: not a success, and not
# "invalid" (1) either: any other error is 2.
rc=$(TURNPOLICY_CONFIG="$d/a.conf" "$tp" issue --user u --format plain \
         >/dev/full 2>"$d/err"; echo $?)
[ "$rc" = 2 ] && grep -q 'cannot write the output' "$d/err" &&
    ok "issue into a full disk fails ($rc) and says so" ||
    not_ok "issue into /dev/full" "rc=$rc $(cat "$d/err")"
exit "$tp_failed"
