#!/bin/bash
# cli_db.sh - the turnpolicy CLI's database commands against a real
# PostgreSQL 15: realm add, user add|disable|enable|list, revoke (user and
# credential), secret rotate|retire|list, usage totals, and issue against
# the database (same output as the offline issue, byte-identical for the
# same secret and time, routed there by --database or by a configuration
# without realms).  Bad input (unknown realm, duplicate user, invalid id,
# bad values) exits 1 or 2 with one clear line and writes nothing; no
# connection password or secret ever appears in the output.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"

d=$tp_tmpdir
tp="$TP_BIN/turnpolicy"
unset TURNPOLICY_DATABASE TURNPOLICY_CONFIG
if ! tp_pg_start; then
    not_ok "PostgreSQL starts"
    exit 1
fi
ok "PostgreSQL 15 started on 127.0.0.1:$TP_PG_PORT"
ISS_PW="iss-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
DB="$(tp_pg_superuser_db tp) connect_timeout=5"
# Its passfile ($d/pgpass) also holds the password of the role iss
# (created below).
printf '127.0.0.1:%s:*:iss:%s\n' "$TP_PG_PORT" "$ISS_PW" >>"$d/pgpass"
q() { tp_pg_psql -d tp -At -c "$1"; }
tp_pg_psql -d postgres -c "CREATE DATABASE tp"
"$tp" migrate --database "$DB" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1 &&
    ok "migrate" || not_ok "migrate" "$(cat "$d/out")"

# t ARGS...: run turnpolicy; $rc, $d/out (stdout), $d/err (stderr); every
# output is also kept in $d/all for the final no-secret check.
t() {
    "$tp" "$@" >"$d/out" 2>"$d/err"
    rc=$?
    cat "$d/out" "$d/err" >>"$d/all"
}
# expect NAME RC [STDERR-REGEX]: the last t exited RC with one line on
# stderr matching the regex (or none at all when RC is 0).
expect() {
    local name=$1 want=$2 re=${3:-}
    if [ "$rc" != "$want" ]; then
        not_ok "$name" "exit $rc, want $want: $(head -3 "$d/err")"
    elif [ -n "$re" ] && { [ "$(wc -l <"$d/err")" != 1 ] || ! grep -Eq "$re" "$d/err"; }; then
        not_ok "$name" "stderr: $(head -3 "$d/err")"
    elif [ -z "$re" ] && [ "$want" = 0 ] && [ -s "$d/err" ]; then
        not_ok "$name" "stderr: $(head -3 "$d/err")"
    else
        ok "$name"
    fi
}
: >"$d/all"

# --- help and usage errors (no database needed) ---------------------------
for c in realm user revoke secret usage "realm add" "user add" "user list" \
         "secret rotate" "secret list"; do
    # shellcheck disable=SC2086
    "$tp" $c --help 2>&1 | grep -q '^usage: turnpolicy' &&
        ok "$c --help prints usage" || not_ok "$c --help prints usage"
done
"$tp" --help | grep -q '^  secret ' && "$tp" --help | grep -q '^  usage ' &&
    ok "turnpolicy --help lists the database commands" || not_ok "main usage"
"$tp" issue --help | grep -q -- '--database' && ok "issue --help mentions --database" ||
    not_ok "issue --help"
t user;                                  expect "user without a command exits 2" 2
t user frob --realm r;                   expect "unknown user command exits 2" 2
t user add --realm r;                    expect "user add without --user exits 2" 2
t user add --realm r --user u --kid x;   expect "an option the command lacks exits 2" 2
t revoke --realm r --user u --username x; expect "revoke with --user and --username exits 2" 2
t usage --by node;                       expect "usage --by node exits 2" 2
t realm add;                             expect "realm add without NAME exits 2" 2
t realm add a b;                         expect "realm add with two names exits 2" 2
t realm add a --ttl 0;                   expect "realm add --ttl 0 exits 2" 2
grep -q '^usage: turnpolicy' "$d/err" && ok "usage errors print the usage" || not_ok "usage on error"

# No database anywhere: clear, exit 2.
printf 'default_realm = x\n' >"$d/nodb.conf"
t --config "$d/nodb.conf" user list --realm x
[ $rc = 2 ] && grep -q 'no database' "$d/err" && ok "no database configured exits 2" ||
    not_ok "no database" "$rc $(cat "$d/err")"

# --- realm add ------------------------------------------------------------
U1='turn:127.0.0.1:3478?transport=udp'
U2='turns:relay.example.org:5349?transport=tcp'
t realm add ex.org --ttl 600 --max-ttl 3600 --url "$U1" --url "$U2" --database "$DB"
expect "realm add creates a realm" 0
[ "$(cat "$d/out")" = k1 ] && ok "realm add prints the first signing kid (k1)" ||
    not_ok "realm add kid" "$(cat "$d/out")"
[ "$(q "SELECT default_ttl, max_ttl, array_to_string(turn_urls, ' ') FROM turnpolicy.realms WHERE name = 'ex.org'")" = "600|3600|$U1 $U2" ] &&
[ "$(q "SELECT kid, state FROM turnpolicy.secrets WHERE realm = 'ex.org'")" = "k1|signing" ] &&
    ok "realm row (ttls, URLs) and its signing secret are in the database" ||
    not_ok "realm row" "$(q "TABLE turnpolicy.realms")"
t realm add ex.org --database "$DB"
expect "duplicate realm exits 1" 1 "already exists .*SQLSTATE 23505"
t realm add 'bad name!' --database "$DB"
expect "invalid realm name exits 2" 2 "realm .* forbidden character.*SQLSTATE 22023"
t realm add r.ttl --ttl 700 --max-ttl 600 --database "$DB"
expect "--ttl above --max-ttl exits 2" 2 "default_ttl 700 is out of range.*22023"
t realm add r.url --url 'http://x' --database "$DB"
expect "a bad --url exits 2" 2 "turn_urls: .*22023"
[ "$(q "SELECT count(*) FROM turnpolicy.realms WHERE name IN ('r.ttl', 'r.url')")" = 0 ] &&
[ "$(q "SELECT count(*) FROM turnpolicy.secrets WHERE realm <> 'ex.org'")" = 0 ] &&
    ok "refused realms left nothing behind (one transaction)" || not_ok "half-written realm"
t realm add bare.org --max-ttl 600 --no-secret --database "$DB"
expect "realm add --no-secret" 0
[ ! -s "$d/out" ] && [ "$(q "SELECT default_ttl || ' ' || (SELECT count(*) FROM turnpolicy.secrets WHERE realm = 'bare.org') FROM turnpolicy.realms WHERE name = 'bare.org'")" = "600 0" ] &&
    ok "--no-secret: no secret, default ttl min(3600, max-ttl)" || not_ok "--no-secret"

# --- users ----------------------------------------------------------------
export TURNPOLICY_DATABASE="$DB"   # from here on unless --database is given
t user add --realm ex.org --user alice;  expect "user add" 0
grep -qx 'user alice added' "$d/out" && ok "user add says so" || not_ok "user add output" "$(cat "$d/out")"
t user add --realm ex.org --user bob;    expect "user add (second)" 0
t user add --realm bare.org --user carol; expect "user add in another realm" 0
t user add --realm ex.org --user alice
expect "duplicate user exits 1" 1 "user 'alice' already exists in realm 'ex.org' \(SQLSTATE 23505\)"
t user add --realm nope.org --user alice
expect "user add in an unknown realm exits 1" 1 "realm 'nope.org' does not exist \(SQLSTATE P0002\)"
t user add --realm ex.org --user 'a:b'
expect "invalid user id exits 2" 2 "user id 'a:b' contains a forbidden character at offset 1.*SQLSTATE 22023"
t user add --realm ex.org --user "$(printf 'x%.0s' $(seq 129))"
expect "a 129-byte user id exits 2" 2 "user id is 129 bytes long.*22023"
[ "$(q "SELECT string_agg(user_id, ',' ORDER BY user_id) FROM turnpolicy.users")" = "alice,bob,carol" ] &&
    ok "refused users were not written" || not_ok "users table" "$(q "SELECT user_id FROM turnpolicy.users")"
t user list --realm ex.org;  expect "user list" 0
grep -Eq '^alice active [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$d/out" &&
[ "$(wc -l <"$d/out")" = 2 ] && [ "$(cut -d' ' -f1 "$d/out" | tr '\n' ,)" = "alice,bob," ] &&
    ok "user list: USER_ID STATUS CREATED_AT, one line per user, sorted" ||
    not_ok "user list output" "$(cat "$d/out")"
t user list --realm nope.org
expect "user list of an unknown realm exits 1" 1 "realm 'nope.org' does not exist"
t realm add empty.org --no-secret; t user list --realm empty.org
[ $rc = 0 ] && [ ! -s "$d/out" ] && ok "user list of a realm without users prints nothing" ||
    not_ok "empty user list"
t user disable --realm ex.org --user bob;  expect "user disable" 0
grep -qx 'user bob disabled' "$d/out" && ok "user disable says so" || not_ok "disable output"
t user disable --realm ex.org --user bob
[ $rc = 0 ] && grep -qx 'user bob was already disabled' "$d/out" &&
    ok "disabling twice is not an error and says so" || not_ok "disable twice"
t user list --realm ex.org
grep -q '^bob disabled ' "$d/out" && ok "user list shows the status" || not_ok "list status"
t user disable --realm ex.org --user zed
expect "disable an unknown user exits 1" 1 "user 'zed' does not exist in realm 'ex.org'.*P0002"
t issue --realm ex.org --user bob --database "$DB"
expect "issue for a disabled user exits 1" 1 "user 'bob' of realm 'ex.org' is disabled.*55000"
t user enable --realm ex.org --user bob;   expect "user enable" 0
grep -qx 'user bob enabled' "$d/out" && ok "user enable says so" || not_ok "enable output"

# --- issue against the database -------------------------------------------
t issue --database "$DB" --realm ex.org --user alice --format plain
expect "issue --database --format plain" 0
u=$(sed -n 1p "$d/out"); p=$(sed -n 2p "$d/out")
now=$(date +%s)
iat=${u##*:}
[[ "$u" =~ ^[0-9]+:alice:k1:[0-9]+$ ]] && [ ${#p} = 28 ] && [ $(( ${u%%:*} - iat )) = 600 ] &&
[ $(( iat - now )) -le 2 ] && [ $(( now - iat )) -le 5 ] &&
    ok "plain: <expiry>:alice:k1:<iat> with the realm's default ttl, 28-byte password" ||
    not_ok "issued plain" "$u"
K1=$(q "SELECT convert_from(secret, 'UTF8') FROM turnpolicy.secrets WHERE realm = 'ex.org' AND kid = 'k1'")
(umask 077; printf '%s' "$K1" >"$d/k1")
cat >"$d/off.conf" <<CONF
[realm ex.org]
secret.k1 = signing $d/k1
default_ttl = 600
max_ttl = 3600
urls = $U1 $U2
CONF
check "the database's credential verifies with the C library" \
    "$tp" --config "$d/off.conf" verify --username "$u" --password "$p"
for f in plain ice rest; do
    "$tp" --config "$d/off.conf" issue --user alice --ttl 900 --now 1700000000 --format $f >"$d/c.off" 2>&1
    t issue --database "$DB" --realm ex.org --user alice --ttl 900 --now 1700000000 --format $f
    [ $rc = 0 ] && cmp -s "$d/out" "$d/c.off" &&
        ok "--format $f: database and offline issue are byte-identical" ||
        not_ok "identical $f" "$(cat "$d/out" "$d/err" "$d/c.off")"
done
grep -qF '"iceServers":[{"urls":["turn:127.0.0.1:3478?transport=udp","turns:relay.example.org:5349?transport=tcp"]' "$d/c.off" ||
    grep -qF '"uris":["turn:127.0.0.1:3478?transport=udp","turns:relay.example.org:5349?transport=tcp"]' "$d/c.off" &&
    ok "the realm's URLs are handed out in order" || not_ok "urls" "$(cat "$d/c.off")"
t issue --database "$DB" --realm ex.org --user alice
expect "issue (ice, default format)" 0
grep -q '"ttl":600,"expiresOn":"20' "$d/out" && ok "ice JSON carries ttl and expiresOn" ||
    not_ok "ice json" "$(cat "$d/out")"
t issue --database "$DB" --realm ex.org --user alice --ttl 3601
expect "ttl above the realm's max_ttl exits 2" 2 "ttl 3601 is out of range .*22023"
t issue --database "$DB" --realm nope.org --user alice
expect "issue in an unknown realm exits 1" 1 "realm 'nope.org' does not exist.*P0002"
t issue --database "$DB" --realm ex.org --user nobody
expect "issue for an unknown user exits 1" 1 "user 'nobody' does not exist.*P0002"
t issue --database "$DB" --realm ex.org --user 'bad user'
expect "issue for an invalid user id exits 2" 2 "forbidden character.*22023"
t issue --database "$DB" --realm bare.org --user carol
expect "issue in a realm without a signing secret exits 1" 1 "has no signing secret.*55000"
t issue --database "$DB" --user alice
expect "issue --database without --realm exits 2" 2

# Routing: a configuration without realms but with a database -> database;
# one with realms stays offline even when a database is known.
printf 'database_url = "%s"\ndefault_realm = ex.org\n' "$DB" >"$d/db.conf"
env -u TURNPOLICY_DATABASE "$tp" --config "$d/db.conf" issue --user alice --format plain >"$d/out" 2>"$d/err"
[ $? = 0 ] && grep -Eq '^[0-9]+:alice:k1:[0-9]+$' "$d/out" &&
    ok "issue uses database_url when no realm is configured (default_realm applies)" ||
    not_ok "database_url routing" "$(cat "$d/err")"
cat "$d/out" "$d/err" >>"$d/all"
printf 'jwt_leeway = 30\n' >"$d/norealm.conf"
t --config "$d/norealm.conf" issue --realm ex.org --user alice --format plain
[ $rc = 0 ] && grep -q ':alice:k1:' "$d/out" &&
    ok "issue uses \$TURNPOLICY_DATABASE when no realm is configured" || not_ok "env routing" "$(cat "$d/err")"
if [ ! -e /etc/turnpolicy/turnpolicy.conf ]; then
    t issue --realm ex.org --user alice --format plain
    [ $rc = 0 ] && grep -q ':alice:k1:' "$d/out" &&
        ok "issue uses \$TURNPOLICY_DATABASE when there is no configuration file" ||
        not_ok "no config routing" "$(cat "$d/err")"
fi
printf 'offline-secret-0123456789abcdef' >"$d/off1"; chmod 600 "$d/off1"
printf '[realm ex.org]\nsecret.off1 = signing %s\n' "$d/off1" >"$d/realm.conf"
t --config "$d/realm.conf" issue --user alice --format plain --now 1700000000
[ $rc = 0 ] && grep -q '^1700003600:alice:off1:1700000000$' "$d/out" &&
    ok "a configuration with realms keeps issue offline" || not_ok "offline kept" "$(cat "$d/out" "$d/err")"

# The issuer role may issue but not provision.
q "CREATE ROLE iss LOGIN PASSWORD '$ISS_PW' IN ROLE turnpolicy_issuer" >/dev/null
ISS="host=127.0.0.1 port=$TP_PG_PORT user=iss dbname=tp passfile=$d/pgpass"
t issue --database "$ISS" --realm ex.org --user alice --format rest
[ $rc = 0 ] && grep -q '"username":"[0-9]*:alice:k1:' "$d/out" &&
    ok "turnpolicy_issuer can issue (rest format)" || not_ok "issuer issue" "$(cat "$d/err")"
t user add --database "$ISS" --realm ex.org --user mallory
expect "turnpolicy_issuer cannot add users (exit 2)" 2 "permission denied.*SQLSTATE 42501"
t issue --database "$ISS" --realm ex.org --user alice --now 1700000000
expect "issue --now needs the admin role" 2 "permission denied.*42501"

# --- revoke ---------------------------------------------------------------
t revoke --realm ex.org --username "$u"
[ $rc = 0 ] && grep -qx "revoked $u" "$d/out" &&
[ "$(q "SELECT user_id FROM turnpolicy.revoked_credentials WHERE username = '$u'")" = alice ] &&
    ok "revoke --username records the credential" || not_ok "revoke credential" "$(cat "$d/out" "$d/err")"
t revoke --realm ex.org --username "$u"
[ $rc = 0 ] && grep -qx "already revoked $u" "$d/out" && ok "revoking it again says so" ||
    not_ok "revoke twice" "$(cat "$d/out")"
t revoke --realm ex.org --username 'not-a-username'
expect "a malformed username exits 2" 2 "cannot revoke 'not-a-username': .*22023"
t revoke --realm nope.org --username "$u"
expect "revoke in an unknown realm exits 1" 1 "realm 'nope.org' does not exist"
t revoke --realm ex.org --user alice
[ $rc = 0 ] && grep -Eq '^user alice revoked: credentials issued before [0-9-]{10}T[0-9:]{8}Z$' "$d/out" &&
[ "$(q "SELECT revoked_before IS NOT NULL FROM turnpolicy.users WHERE user_id = 'alice'")" = t ] &&
    ok "revoke --user sets revoked_before" || not_ok "revoke user" "$(cat "$d/out" "$d/err")"
t revoke --realm ex.org --user zed
expect "revoke an unknown user exits 1" 1 "user 'zed' does not exist.*P0002"
t issue --database "$DB" --realm ex.org --user alice --format plain
expect "a revoked user still gets new credentials" 0

# --- secrets --------------------------------------------------------------
t secret rotate --realm ex.org;  expect "secret rotate" 0
[ "$(cat "$d/out")" = k2 ] && ok "secret rotate prints the new kid" || not_ok "rotate kid" "$(cat "$d/out")"
K2=$(q "SELECT convert_from(secret, 'UTF8') FROM turnpolicy.secrets WHERE realm = 'ex.org' AND kid = 'k2'")
t secret list --realm ex.org;    expect "secret list" 0
sed 's/ [^ ]*$//' "$d/out" | tr '\n' , >"$d/states"
[ "$(cat "$d/states")" = "k1 verify-only,k2 signing," ] &&
grep -Eq '^k2 signing [0-9-]{10}T[0-9:]{8}Z$' "$d/out" &&
    ok "secret list: KID STATE CREATED_AT in creation order" || not_ok "secret list" "$(cat "$d/out")"
t issue --database "$DB" --realm ex.org --user alice --format plain
grep -q ':alice:k2:' "$d/out" && ok "issue signs with the new kid" || not_ok "new kid" "$(cat "$d/out")"
t secret retire --realm ex.org --kid k2
expect "retiring the signing secret exits 1" 1 "k2 is the signing secret .*55000"
t secret retire --realm ex.org --kid k1
[ $rc = 0 ] && grep -qx 'secret k1 retired' "$d/out" &&
[ "$(q "SELECT state, secret IS NULL FROM turnpolicy.secrets WHERE kid = 'k1'")" = "retired|t" ] &&
    ok "secret retire erases the old secret" || not_ok "retire" "$(cat "$d/out" "$d/err")"
t secret retire --realm ex.org --kid k1
[ $rc = 0 ] && grep -qx 'secret k1 was already retired' "$d/out" && ok "retiring twice says so" ||
    not_ok "retire twice"
t secret retire --realm ex.org --kid k9
expect "retiring an unknown kid exits 1" 1 "has no secret with kid k9.*P0002"
t secret retire --realm ex.org --kid 123
expect "an all-digit kid exits 2" 2 "kid must not be all digits.*22023"
t secret rotate --realm nope.org
expect "secret rotate in an unknown realm exits 1" 1 "realm 'nope.org' does not exist"
t secret list --realm nope.org
expect "secret list of an unknown realm exits 1" 1 "does not exist"
t secret list --realm bare.org
[ $rc = 0 ] && [ ! -s "$d/out" ] && ok "secret list of a realm without secrets prints nothing" ||
    not_ok "empty secret list"

# --- usage ----------------------------------------------------------------
q "INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, started_at, ended_at, bytes_in, bytes_out) VALUES
   ('n1', 's1', 'ex.org', 'alice', '2025-01-01 00:00Z', '2025-01-01 00:10Z', 100, 200),
   ('n1', 's2', 'ex.org', 'alice', '2025-02-01 00:00Z', '2025-02-01 00:00:30Z', 1, 2),
   ('n1', 's3', 'ex.org', 'bob', '2025-02-01 00:00Z', '2025-02-01 01:00Z', 10, 20),
   ('n2', 's1', 'other.org', 'carol', '2025-02-01 00:00Z', '2025-02-01 00:01Z', 5, 5)" >/dev/null
t usage;  expect "usage" 0
printf 'ex.org alice 2 101 202 630\nex.org bob 1 10 20 3600\nother.org carol 1 5 5 60\n' >"$d/want"
cmp -s "$d/out" "$d/want" && ok "usage: per-user totals (sessions, bytes in/out, seconds)" ||
    not_ok "usage per user" "$(cat "$d/out")"
t usage --by realm
printf 'ex.org 2 3 111 222 4230\nother.org 1 1 5 5 60\n' >"$d/want"
[ $rc = 0 ] && cmp -s "$d/out" "$d/want" && ok "usage --by realm: per-realm totals" ||
    not_ok "usage by realm" "$(cat "$d/out" "$d/err")"
t usage --realm ex.org --user bob
[ $rc = 0 ] && [ "$(cat "$d/out")" = "ex.org bob 1 10 20 3600" ] && ok "usage --realm --user filters" ||
    not_ok "usage filter" "$(cat "$d/out")"
t usage --realm ex.org --since 2025-01-15
[ $rc = 0 ] && [ "$(head -1 "$d/out")" = "ex.org alice 1 1 2 30" ] && ok "usage --since TIMESTAMP" ||
    not_ok "usage since" "$(cat "$d/out" "$d/err")"
t usage --realm ex.org --since 1736899200
[ $rc = 0 ] && [ "$(head -1 "$d/out")" = "ex.org alice 1 1 2 30" ] && ok "usage --since UNIX seconds" ||
    not_ok "usage since epoch" "$(cat "$d/out" "$d/err")"
t usage --since yesterday-ish
expect "usage --since garbage exits 2" 2 "invalid input syntax for type timestamp.*SQLSTATE 22007"
t usage --realm nope.org
[ $rc = 0 ] && [ ! -s "$d/out" ] && ok "usage of a realm without sessions prints nothing" || not_ok "empty usage"

# --- host-check and peer-check against the database -----------------------
q "SELECT turnpolicy.create_realm('chk.org')" >/dev/null
q "SELECT turnpolicy.allow_acs_hosts('chk.org')" >/dev/null
q "SELECT turnpolicy.allow_peer('chk.org', '203.0.113.0/24')" >/dev/null
t host-check --database "$DB" --realm chk.org edge.skype.com
expect "host-check --database: an ACS host the realm allows exits 0" 0
grep -q '^allow edge.skype.com by the realm.s rule [0-9]' "$d/out" ||
    not_ok "host-check --database names the rule" "$(cat "$d/out")"
t host-check --database "$DB" --realm chk.org evil.example.com 443
[ $rc = 1 ] && grep -q '^deny evil.example.com' "$d/out" &&
    ok "host-check --database: a host off the list is denied (exit 1)" ||
    not_ok "host-check --database deny" "$rc $(cat "$d/out" "$d/err")"
t peer-check --database "$DB" --realm chk.org 203.0.113.9
[ $rc = 0 ] && grep -q '^allow 203.0.113.9 by 203.0.113.0/24' "$d/out" &&
    ok "peer-check --database: the realm's allow_peer range from PostgreSQL" ||
    not_ok "peer-check --database allow" "$rc $(cat "$d/out" "$d/err")"
t peer-check --database "$DB" --realm chk.org 169.254.169.254
[ $rc = 1 ] && grep -q '^deny 169.254.169.254 by built-in' "$d/out" &&
    ok "peer-check --database: the built-in default deny still applies" ||
    not_ok "peer-check --database deny" "$rc $(cat "$d/out" "$d/err")"
printf 'database_url = "%s"\ndefault_realm = chk.org\n' "$DB" >"$d/dbonly.conf"
chmod 600 "$d/dbonly.conf"
t --config "$d/dbonly.conf" peer-check --realm chk.org 203.0.113.10
[ $rc = 0 ] && grep -q '^allow 203.0.113.10 by 203.0.113.0/24' "$d/out" &&
    ok "peer-check with a configuration without realms uses its database_url" ||
    not_ok "peer-check via database_url" "$rc $(cat "$d/out" "$d/err")"
t --config "$d/dbonly.conf" host-check api.flightproxy.skype.com
expect "host-check with database_url and default_realm from the configuration" 0

# --- connection errors never show the connection string -------------------
t user list --realm ex.org --database "host=127.0.0.1 port=1 user=x password=sekrit-pw-1 connect_timeout=3"
[ $rc = 2 ] && grep -q 'cannot connect to PostgreSQL' "$d/err" && ! grep -q sekrit "$d/err" &&
    [ "$(wc -l <"$d/err")" = 1 ] &&
    ok "connection refused: one line, exit 2, no password" || not_ok "refused" "$(cat "$d/err")"
t user list --realm ex.org --database "password=sekrit-pw-2 bogus"
[ $rc = 2 ] && grep -q 'malformed' "$d/err" && ! grep -q sekrit "$d/err" &&
    ok "malformed connection string: exit 2, not echoed" || not_ok "malformed" "$(cat "$d/err")"
t user list --realm ex.org --database "postgresql://postgres:sekrit-pw-3@127.0.0.1:$TP_PG_PORT/tp"
[ $rc = 2 ] && grep -q 'password authentication failed' "$d/err" && ! grep -q sekrit "$d/err" &&
    ok "wrong password in a URI: exit 2, not echoed" || not_ok "bad password" "$(cat "$d/err")"
t issue --realm ex.org --user alice --database "dbname=tp host=127.0.0.1 port=$TP_PG_PORT user=postgres password=sekrit-pw-4"
[ $rc = 2 ] && ! grep -q sekrit "$d/err" && ok "issue: connection failure hides the password" ||
    not_ok "issue conn failure" "$(cat "$d/err")"

# --- nothing secret in any output -----------------------------------------
leak=""
for s in "$TP_PG_PASSWORD" "$ISS_PW" "$K1" "$K2"; do
    [ -n "$s" ] && grep -qF -- "$s" "$d/all" && leak="$leak ${s:0:4}..."
done
[ -n "$K1" ] && [ -n "$K2" ] && [ -z "$leak" ] &&
    ok "no connection password or realm secret in any output ($(wc -l <"$d/all") lines)" ||
    not_ok "secret in output" "$leak"
exit "$tp_failed"
