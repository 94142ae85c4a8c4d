#!/bin/bash
# acs_native.sh - TURN URLs for the ACS Calling SDKs, web and native, in
# the library (through the turnpolicy CLI) and in SQL (schema/005_acs.sql)
# against a real PostgreSQL 15:
#  * every case of tests/data/turn_urls.cases gets the same answer from
#    the library (turnpolicy issue from a configuration with those urls)
#    and from turnpolicy.turn_url_error / acs_native_turn;
#  * provisioning refuses a URL browsers reject (create_realm,
#    set_turn_urls, turnpolicy realm add --url: 22023 / exit 1-2);
#  * turnpolicy issue --format acs-native (offline and --database) and
#    turnpolicy.issue_credential_json(..., 'acs-native') give the native
#    shape, the same credential for the same time, and refuse every realm
#    whose URLs cannot satisfy the native rules (no IPv4 UDP URL, TCP only,
#    IPv6 only, no URL): CLI exit 2, SQL 55000, nothing issued.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"

d=$tp_tmpdir
tp="$TP_BIN/turnpolicy"
py=/usr/bin/python3
cases="$TP_ROOT/tests/data/turn_urls.cases"
unset TURNPOLICY_DATABASE TURNPOLICY_CONFIG
if ! tp_pg_start; then
    not_ok "PostgreSQL starts"
    exit 1
fi
DB="$(tp_pg_superuser_db tp) connect_timeout=5"
tp_pg_psql -d postgres -c "CREATE DATABASE tp" >/dev/null
"$tp" migrate --database "$DB" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1 &&
    ok "migrate (with 005_acs.sql)" || { not_ok "migrate" "$(cat "$d/out")"; exit 1; }
q() { tp_pg_psql -d tp -At -v ON_ERROR_STOP=1 "$@"; }
# sqlstate SQL: run it; prints "ok", or the SQLSTATE it failed with
# (the message in $d/sql.err)
sqlstate() {
    if tp_pg_psql -d tp -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" \
            >"$d/sql.out" 2>"$d/sql.err"; then
        echo ok
    else
        sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' "$d/sql.err" | head -1
    fi
}

# --- the library and SQL agree on every case -------------------------------
umask 077
printf 'secret-for-acs-native-tests-0123456789\n' >"$d/k1"
# conf URLS...: a configuration whose realm example.org has those urls
conf() {
    {
        printf '[realm example.org]\ndefault_ttl = 600\nmax_ttl = 3600\n'
        printf 'secret.k1 = signing %s\n' "$d/k1"
        [ $# -gt 0 ] && printf 'urls = "%s"\n' "$*"
    } >"$d/conf"
}
lib_web=0 sql_web=0 lib_native=0 sql_native=0 n=0 mism=""
while IFS= read -r line; do
    case $line in '#'* | '') continue ;; esac
    n=$((n + 1))
    kind=${line%% *}
    rest=${line#* }
    case $kind in
    ok | bad)
        conf "$rest"
        "$tp" --config "$d/conf" issue --user alice --now 1700000000 \
            >/dev/null 2>"$d/err"
        lrc=$?
        se=$(q -c "SELECT turnpolicy.turn_url_error(\$u\$$rest\$u\$) IS NULL")
        want=$([ "$kind" = ok ] && echo 0 || echo 2)
        [ "$lrc" = "$want" ] && lib_web=$((lib_web + 1)) || mism="$mism|lib:$line($lrc)"
        [ "$se" = "$([ "$kind" = ok ] && echo t || echo f)" ] &&
            sql_web=$((sql_web + 1)) || mism="$mism|sql:$line($se)"
        ;;
    native)
        urls=${line#native}
        urls=${urls%%=>*}
        want=${line##*=> }
        # shellcheck disable=SC2086
        set -- $urls
        conf "$@"
        out=$("$tp" --config "$d/conf" issue --user alice --now 1700000000 \
                  --format acs-native 2>"$d/err")
        lrc=$?
        if [ "$lrc" = 0 ]; then
            got=$(printf '%s' "$out" | $py -c 'import json,sys
s=json.load(sys.stdin)["iceServers"][0]; print(s["urls"][0], s["udpPort"])')
        elif [ "$lrc" = 2 ] && grep -q 'acs-native: ' "$d/err"; then
            got=refuse
        else
            got="exit $lrc"
        fi
        arr=$(printf '%s\n' "$@" | $py -c 'import sys
print("ARRAY[" + ",".join("$u$%s$u$" % l.strip() for l in sys.stdin if l.strip()) + "]::text[]")')
        sg=$(q -c "SELECT coalesce(url || ' ' || udp_port, 'refuse') FROM turnpolicy.acs_native_turn($arr)")
        [ "$got" = "$want" ] && lib_native=$((lib_native + 1)) || mism="$mism|lib:$line($got)"
        [ "$sg" = "$want" ] && sql_native=$((sql_native + 1)) || mism="$mism|sql:$line($sg)"
        ;;
    esac
done <"$cases"
webn=$(grep -cE '^(ok|bad) ' "$cases")
natn=$(grep -c '^native' "$cases")
[ "$lib_web" = "$webn" ] && [ "$sql_web" = "$webn" ] &&
    ok "web rules: library and SQL agree with all $webn URL cases" ||
    not_ok "web rules agree" "library $lib_web, SQL $sql_web of $webn:$mism"
[ "$lib_native" = "$natn" ] && [ "$sql_native" = "$natn" ] &&
    ok "native rule: library and SQL pick the same URL in all $natn cases" ||
    not_ok "native rule agrees" "library $lib_native, SQL $sql_native of $natn:$mism"
conf "turn:203.0.113.7" "turns:relay example.org"
"$tp" --config "$d/conf" issue --user alice >/dev/null 2>"$d/err"
[ $? = 2 ] && grep -q '^turnpolicy: urls: URL "example.org": the scheme' "$d/err" &&
    ok "offline issue refuses a realm URL browsers reject: exit 2, the URL named" ||
    not_ok "offline bad URL" "$(cat "$d/err")"

# --- provisioning refuses URLs browsers reject ------------------------------
[ "$(sqlstate "SELECT turnpolicy.create_realm('bad.test', turn_urls => ARRAY['turn:203.0.113.7', 'turn:relay.example.org?transport=sctp'])")" = 22023 ] &&
    grep -q 'transport=udp, tcp or tls' "$d/sql.err" &&
    ok "create_realm with ?transport=sctp: 22023, says why" ||
    not_ok "create_realm bad url" "$(cat "$d/sql.err")"
[ "$(q -c "SELECT count(*) FROM turnpolicy.realms WHERE name = 'bad.test'")" = 0 ] &&
    ok "... and creates nothing" || not_ok "bad realm created"
q -c "SELECT turnpolicy.create_realm('web.test', turn_urls => ARRAY['turn:relay.example.org'])" >/dev/null
bad=0
for u in 'stuns:stun.example.org' 'turn:203.0.113.256' 'turn:[2001:db8::zz]' \
         'turn:relay.example.org:0' 'stun:s.example.org?transport=udp'; do
    [ "$(sqlstate "SELECT turnpolicy.set_turn_urls('web.test', ARRAY['$u'])")" = 22023 ] ||
        bad=$((bad + 1))
done
[ $bad = 0 ] && [ "$(q -c "SELECT turn_urls FROM turnpolicy.realms WHERE name = 'web.test'")" = '{turn:relay.example.org}' ] &&
    ok "set_turn_urls refuses 5 URLs browsers reject with 22023 and keeps the old list" ||
    not_ok "set_turn_urls validation" "$bad accepted"
[ "$(sqlstate "UPDATE turnpolicy.realms SET turn_urls = ARRAY['turn:x..y'] WHERE name = 'web.test'")" = 22023 ] &&
    ok "a direct UPDATE of turn_urls is held to the same rules (trigger)" ||
    not_ok "direct update validated"
"$tp" realm add cli.test --url 'turn:relay.example.org?transport=quic' --database "$DB" \
    >"$d/out" 2>"$d/err"
rc=$?
[ $rc != 0 ] && grep -q 'transport' "$d/err" &&
    ok "turnpolicy realm add --url with a bad transport fails (exit $rc), says why" ||
    not_ok "realm add bad url" "exit $rc $(cat "$d/err")"

# --- acs-native from SQL, the CLI (--database) and offline -----------------
q >/dev/null <<'SQL'
SELECT turnpolicy.create_realm('acs.test', turn_urls => ARRAY[
    'turns:relay.acs.test:5349?transport=tcp', 'turn:203.0.113.7:3479?transport=udp']);
SELECT turnpolicy.rotate_secret('acs.test');
SELECT turnpolicy.create_user('acs.test', 'alice');
SQL
now=1800000000
sqljson=$(q -c "SELECT turnpolicy.issue_credential_json_at('acs.test', 'alice', 600, 'acs-native', to_timestamp($now))")
clijson=$("$tp" issue --database "$DB" --realm acs.test --user alice --ttl 600 \
              --now $now --format acs-native 2>"$d/err")
cmp=$($py - "$sqljson" "$clijson" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
s = b["iceServers"]
ok = (a == b and len(s) == 1 and s[0]["urls"] == ["turn:203.0.113.7"]
      and s[0]["udpPort"] == 3479 and s[0]["realm"] == "acs.test"
      and set(s[0]) == {"urls", "udpPort", "realm", "username", "password"}
      and b["ttl"] == 600 and b["expiresOn"] == "2027-01-15T08:10:00Z")
print("same" if ok else "differ: %r %r" % (a, b))
PY
)
[ "$cmp" = same ] &&
    ok "acs-native: SQL issue_credential_json and the CLI (library shape) give the same native JSON" ||
    not_ok "acs-native SQL vs CLI" "$cmp $(cat "$d/err")"
user=$(printf '%s' "$clijson" | $py -c 'import json,sys; print(json.load(sys.stdin)["iceServers"][0]["username"])')
pass=$(printf '%s' "$clijson" | $py -c 'import json,sys; print(json.load(sys.stdin)["iceServers"][0]["password"])')
"$tp" verify --database "$DB" --realm acs.test --username "$user" --password "$pass" \
    --now $((now + 10)) >/dev/null 2>&1 &&
    ok "... its username/password verify" || not_ok "native credential verifies"
for f in ice rest; do
    s=$(q -c "SELECT turnpolicy.issue_credential_json_at('acs.test', 'alice', 600, '$f', to_timestamp($now))")
    c=$("$tp" issue --database "$DB" --realm acs.test --user alice --ttl 600 --now $now --format $f)
    $py -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$s" "$c" &&
        ok "format $f: SQL issue_credential_json and the CLI agree" ||
        not_ok "format $f SQL vs CLI" "$s / $c"
done
[ "$(sqlstate "SELECT turnpolicy.issue_credential_json('acs.test', 'alice', 600, 'native')")" = 22023 ] &&
    ok "issue_credential_json with an unknown format: 22023" || not_ok "unknown format"
"$tp" issue --database "$DB" --realm acs.test --user alice --format native >/dev/null 2>"$d/err"
[ $? = 2 ] && grep -q 'unknown --format native' "$d/err" &&
    ok "turnpolicy issue --format native: exit 2" || not_ok "CLI unknown format"

# Every way the realm's URLs can fail the native rules, in each interface.
q >/dev/null <<'SQL'
SELECT turnpolicy.create_user('acs.test', 'bob');
SQL
i=0
while IFS='|' read -r why urls; do
    i=$((i + 1))
    q -c "SELECT turnpolicy.set_turn_urls('acs.test', $urls)" >/dev/null
    st=$(sqlstate "SELECT turnpolicy.issue_credential_json('acs.test', 'bob', 600, 'acs-native')")
    msg=$(cat "$d/sql.err")
    "$tp" issue --database "$DB" --realm acs.test --user bob --format acs-native \
        >"$d/out" 2>"$d/err"
    crc=$?
    [ "$st" = 55000 ] && printf '%s' "$msg" | grep -q "($why)" &&
        ok "SQL acs-native refused, $why: 55000 ($why)" ||
        not_ok "SQL acs-native $why" "$st $msg"
    [ $crc = 2 ] && [ ! -s "$d/out" ] && grep -q "acs-native: .*$why" "$d/err" &&
        ok "CLI --database --format acs-native refused, $why: exit 2, nothing printed" ||
        not_ok "CLI acs-native $why" "exit $crc $(cat "$d/err")"
    # shellcheck disable=SC2046
    conf $(q -c "SELECT array_to_string(turn_urls, ' ') FROM turnpolicy.realms WHERE name = 'acs.test'")
    "$tp" --config "$d/conf" issue --user bob --format acs-native >"$d/out" 2>"$d/err"
    crc=$?
    [ $crc = 2 ] && [ ! -s "$d/out" ] && grep -q "acs-native: .*$why" "$d/err" &&
        ok "CLI offline --format acs-native refused, $why: exit 2" ||
        not_ok "CLI offline acs-native $why" "exit $crc $(cat "$d/err")"
done <<'CASES'
no turn: URL with an IPv4 address and UDP|ARRAY['turn:relay.acs.test:3478?transport=udp', 'turns:relay.acs.test:5349?transport=tcp']
TCP/TLS only|ARRAY['turn:203.0.113.7:443?transport=tcp', 'turns:203.0.113.7:5349?transport=tcp']
IPv6 only|ARRAY['turn:[2001:db8::7]:3478?transport=udp']
the realm has no TURN URL|'{}'::text[]
CASES
conf turn:203.0.113.7
"$tp" --config "$d/conf" issue --user bob --format acs-native --realm example.org >/dev/null 2>&1 &&
    ok "offline acs-native issues for a realm with turn:<IPv4>" || not_ok "offline native ok"

# --- the acs host preset (006_acs_preset.sql) -------------------------------
# A realm provisioned with the old preset before 006: migrate a fresh
# database to 005, add the six rules of 002's preset, then migrate on.
tp_pg_psql -d postgres -c "CREATE DATABASE tp_old" >/dev/null
mkdir -p "$d/schema5"
cp "$TP_ROOT"/schema/00[1-5]_*.sql "$d/schema5/"
DBO="$(tp_pg_superuser_db tp_old) connect_timeout=5"
"$tp" migrate --database "$DBO" --schema-dir "$d/schema5" >"$d/out" 2>&1 ||
    not_ok "migrate to 005" "$(cat "$d/out")"
tp_pg_psql -d tp_old -At >/dev/null <<'SQL'
SELECT turnpolicy.create_realm('old.test');
SELECT turnpolicy.create_realm('other.test');
SELECT turnpolicy.allow_acs_hosts('old.test');
SELECT turnpolicy.allow_host('other.test', 'edge.skype.com');
SQL
"$tp" migrate --database "$DBO" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1 &&
    ok "migrate 006 over a database with a realm on the old preset" ||
    not_ok "migrate 006" "$(cat "$d/out")"
qo() { tp_pg_psql -d tp_old -At -c "$1"; }
np=$(qo "SELECT count(*) FROM turnpolicy.acs_preset()")
[ "$(qo "SELECT count(*) FROM turnpolicy.host_rules WHERE realm = 'old.test'")" = "$np" ] &&
    [ "$(qo "SELECT count(*) FROM turnpolicy.host_rules h JOIN turnpolicy.acs_preset() p USING (pattern) WHERE h.realm = 'old.test'")" = "$np" ] &&
    ok "the realm created with the old preset now has all $np rules of the new one" ||
    not_ok "old realm updated" "$(qo "SELECT string_agg(pattern, ' ') FROM turnpolicy.host_rules WHERE realm = 'old.test'")"
[ "$(qo "SELECT string_agg(pattern, ' ') FROM turnpolicy.host_rules WHERE realm = 'other.test'")" = edge.skype.com ] &&
    ok "a realm that never used the preset is left as it was" || not_ok "other realm untouched"
[ "$(qo "SELECT count(*) FROM turnpolicy.host_rules WHERE realm = 'old.test' AND pattern = 'registrar.communication.microsoft.com'")" = 1 ] &&
    ok "... registrar.communication.microsoft.com (the host the old preset missed) is allowed" ||
    not_ok "registrar in the preset"
qo "DELETE FROM turnpolicy.host_rules WHERE realm = 'old.test' AND pattern LIKE 'go%'" >/dev/null
[ "$(qo "SELECT turnpolicy.reapply_acs_preset()")" = 4 ] &&
    ok "reapply_acs_preset() puts back the 4 preset rules removed from a realm using it" ||
    not_ok "reapply"
[ "$(qo "SELECT count(*) FROM turnpolicy.acs_preset()
          WHERE pattern IN ('*.azure.com', '*.azure.net', '*.microsoft.com', '*.skype.com',
                            '*.cloudapp.azure.com', '*.windows.net', '*.live.com', '*.office.net')
             OR (pattern LIKE '*.%' AND pattern <> '*.communication.azure.com')
             OR source !~ '(1\.46\.1|2\.0\.0|002_api)'")" = 0 ] &&
    ok "the preset has no wide wildcard, and every entry says where it came from" ||
    not_ok "preset narrow"
# The library takes every preset rule as it is.
hosts=$(qo "SELECT string_agg(pattern, ' ') FROM turnpolicy.acs_preset()")
printf '[realm p.test]\nsecret.k1 = signing %s\nhosts = %s\n' "$d/k1" "$hosts" >"$d/p.conf"
"$tp" --config "$d/p.conf" host-check --realm p.test registrar.communication.microsoft.com >/dev/null 2>&1 &&
    ! "$tp" --config "$d/p.conf" host-check --realm p.test evil.microsoft.com >/dev/null 2>&1 &&
    ok "the library loads the preset: registrar allowed, evil.microsoft.com denied" ||
    not_ok "library loads the preset"
[ "$(sqlstate "SELECT turnpolicy.set_turn_urls('web.test', ARRAY['turn:alice:s3cret@relay.example.org'])")" = 22023 ] &&
    ! grep -q s3cret "$d/sql.err" &&
    ok "a URL with a password in it is refused without quoting it" ||
    not_ok "userinfo URL" "$(cat "$d/sql.err")"
