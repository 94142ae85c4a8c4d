#!/bin/bash
# schema.sh - the PostgreSQL schema (schema/*.sql) against a real
# PostgreSQL 15: migrations from empty and re-run, every SQL API function
# with good and bad input (SQLSTATE, message, nothing half-written), role
# permissions, NOTIFY, audit, credentials byte-identical to the C library
# (build/bin/turnpolicy), the coturn compat views against the CLI's peer
# export, and a stock coturn 4.6.1 reading them through psql-userdb.
#
# Starts a throwaway PostgreSQL (tests/pg.sh) and coturn on 127.0.0.1,
# both stopped on exit.
# shellcheck disable=SC2154 # tp_tmpdir, tp_failed come from lib.sh
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"
. "$(dirname "$0")/../coturn.sh"

d=$tp_tmpdir
DB=tp
TP=( "$TP_BIN/turnpolicy" )
if [ ! -x "$TP_BIN/turnpolicy" ]; then
    not_ok "build/bin/turnpolicy exists" "run make first"
    exit 1
fi
if ! tp_pg_start; then
    not_ok "PostgreSQL 15 starts"
    exit 1
fi
ok "PostgreSQL 15 started on 127.0.0.1:$TP_PG_PORT"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# su [psql args...]: superuser on $DB, unaligned tuples only
su() { tp_pg_psql -At -d "$DB" "$@"; }

# as ROLE SQL: run SQL as a login role (socket, trust); verbose errors show
# the SQLSTATE ("ERROR:  P0002: ...").
as() {
    local role=$1
    shift
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 \
        -v VERBOSITY=verbose -U "$role" -d "$DB" -c "$*"
}

# state: a digest of every table's content (incl. audit), to prove that a
# refused call wrote nothing.
state() {
    su -c "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
        SELECT 'r' || t::text AS x FROM turnpolicy.realms t UNION ALL
        SELECT 'u' || t::text FROM turnpolicy.users t UNION ALL
        SELECT 's' || t::text FROM turnpolicy.secrets t UNION ALL
        SELECT 'l' || t::text FROM turnpolicy.legacy_secrets t UNION ALL
        SELECT 'c' || t::text FROM turnpolicy.revoked_credentials t UNION ALL
        SELECT 'h' || t::text FROM turnpolicy.host_rules t UNION ALL
        SELECT 'p' || t::text FROM turnpolicy.peer_rules t UNION ALL
        SELECT 'j' || t::text FROM turnpolicy.jwt_keys t UNION ALL
        SELECT 'g' || t::text FROM turnpolicy.usage t UNION ALL
        SELECT 'a' || count(*)::text FROM turnpolicy.audit) s"
}

# expect_ok NAME ROLE SQL [WANT]: SQL succeeds (and prints WANT if given)
expect_ok() {
    local name=$1 role=$2 sql=$3 out
    if ! out=$(as "$role" "$sql" 2>"$d/err.out"); then
        not_ok "$name" "failed"
        sed 's/^/#   /' "$d/err.out" | head -5
        return 1
    fi
    if [ $# -ge 4 ] && [ "$out" != "$4" ]; then
        not_ok "$name" "got '$out', want '$4'"
        return 1
    fi
    ok "$name"
}

# expect_err NAME ROLE SQLSTATE REGEX SQL: SQL fails with that SQLSTATE, a
# message matching REGEX, and leaves every table as it was.
expect_err() {
    local name=$1 role=$2 code=$3 re=$4 sql=$5 before after
    before=$(state)
    if as "$role" "$sql" >"$d/err.out" 2>&1; then
        not_ok "$name" "succeeded but must fail"
        return 1
    fi
    after=$(state)
    if ! grep -q "ERROR:  $code:" "$d/err.out"; then
        not_ok "$name" "want SQLSTATE $code"
        sed 's/^/#   /' "$d/err.out" | head -5
        return 1
    fi
    if [ -n "$re" ] && ! grep -qE -- "$re" "$d/err.out"; then
        not_ok "$name" "message does not match /$re/"
        sed 's/^/#   /' "$d/err.out" | head -5
        return 1
    fi
    if [ "$before" != "$after" ]; then
        not_ok "$name" "refused, but something was written"
        return 1
    fi
    ok "$name ($code: $(sed -n 's/^ERROR:  [0-9A-Z]*: //p' "$d/err.out" | head -1 | cut -c1-70))"
}

# same NAME GOT WANT
same() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "got '$2', want '$3'"
    fi
}

# migrate DB [ROLE]: apply schema/NNN_*.sql files not yet recorded in
# turnpolicy.schema_migrations, each in one transaction with its record
# row, as `turnpolicy migrate` does.  Prints how many it applied.
migrate() {
    local db=$1 role=${2:-$TP_PG_SUPERUSER} f base v sum have n=0
    for f in "$TP_ROOT"/schema/[0-9][0-9][0-9]_*.sql; do
        base=$(basename "$f" .sql)
        v=$((10#${base%%_*}))
        have=$(tp_pg_psql -At -U "$role" -d "$db" -c \
            "SELECT to_regclass('turnpolicy.schema_migrations') IS NOT NULL") || return 1
        if [ "$have" = t ]; then
            have=$(tp_pg_psql -At -U "$role" -d "$db" -c \
                "SELECT version FROM turnpolicy.schema_migrations WHERE version = $v") || return 1
        else
            have=""
        fi
        [ -n "$have" ] && continue
        sum=$(sha256sum "$f" | cut -d' ' -f1)
        printf "INSERT INTO turnpolicy.schema_migrations (version, name, sha256) VALUES (%d, '%s', '%s');\n" \
            "$v" "$base" "$sum" >"$d/record.sql"
        tp_pg_psql -U "$role" -d "$db" --single-transaction -f "$f" -f "$d/record.sql" \
            >"$d/migrate.out" 2>&1 || { cat "$d/migrate.out" >&2; return 1; }
        n=$((n + 1))
    done
    echo "$n"
}

catalog() { # a digest of the schema objects
    su -c "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
        SELECT c.oid::regclass::text || ':' || c.relkind::text AS x FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('turnpolicy', 'turnpolicy_coturn')
        UNION ALL
        SELECT p.oid::regprocedure::text || coalesce(p.proacl::text, '') FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('turnpolicy', 'turnpolicy_coturn')) s"
}

# ---------------------------------------------------------------------------
# 1. migrations
# ---------------------------------------------------------------------------
nfiles=$(ls "$TP_ROOT"/schema/[0-9][0-9][0-9]_*.sql | wc -l)
tp_pg_psql -d postgres -c "CREATE DATABASE $DB" >/dev/null
t0=$(date +%s%N)
n=$(migrate "$DB")
same "migrations apply to an empty database ($nfiles files, $(( ($(date +%s%N) - t0) / 1000000 )) ms)" "$n" "$nfiles"
if [ "$n" != "$nfiles" ]; then
    exit 1 # nothing else can work
fi
rows=$(su -c "SELECT string_agg(version || '=' || sha256, ' ' ORDER BY version) FROM turnpolicy.schema_migrations")
want=""
for f in "$TP_ROOT"/schema/[0-9][0-9][0-9]_*.sql; do
    b=$(basename "$f")
    want="$want $((10#${b%%_*}))=$(sha256sum "$f" | cut -d' ' -f1)"
done
same "schema_migrations records every file with its sha256" "$rows" "${want# }"
before=$(catalog)
n=$(migrate "$DB")
same "re-running the migrations applies nothing" "$n" "0"
same "re-running leaves the schema unchanged" "$(catalog)" "$before"
if tp_pg_psql -d "$DB" --single-transaction -f "$TP_ROOT/schema/001_core.sql" >"$d/raw.out" 2>&1; then
    not_ok "applying 001 twice by hand is refused"
else
    same "applying 001 twice by hand is refused and rolls back" "$(catalog)" "$before"
fi

# Roles already exist (cluster-wide): a second database migrated by its
# owner, who has neither superuser nor CREATEROLE.
su -c "CREATE ROLE t_migrator LOGIN NOSUPERUSER NOCREATEROLE" >/dev/null
tp_pg_psql -d postgres -c "CREATE DATABASE tp2 OWNER t_migrator" >/dev/null
if n=$(migrate tp2 t_migrator 2>"$d/m2.err") && [ "$n" = "$nfiles" ]; then
    ok "a second database migrates as its owner (no CREATEROLE; roles exist; pgcrypto trusted)"
else
    not_ok "a second database migrates as its owner" "$(head -3 "$d/m2.err")"
fi
same "the roles exist once" \
    "$(su -c "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'turnpolicy\_%'")" "4"

su >/dev/null <<'SQL'
CREATE ROLE t_admin LOGIN IN ROLE turnpolicy_admin;
CREATE ROLE t_issuer LOGIN IN ROLE turnpolicy_issuer;
CREATE ROLE t_reader LOGIN IN ROLE turnpolicy_reader;
CREATE ROLE t_coturn LOGIN IN ROLE turnpolicy_coturn;
CREATE ROLE t_nobody LOGIN;
SQL
coturn_pw="c-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
su -c "ALTER ROLE t_coturn PASSWORD '$coturn_pw'" >/dev/null

# ---------------------------------------------------------------------------
# 2. identifiers: the SQL rules are the C rules
# ---------------------------------------------------------------------------
# The user id characters, read from cred.c's user_id_ok[] table.
c_chars=$(sed -n '/user_id_ok\[256\] = {/,/^};/p' "$TP_ROOT/policy/src/cred.c" |
    grep -o "\['.'\] = 1" | cut -c3 | LC_ALL=C sort | tr -d '\n')
sql_chars=$(su -c "SELECT string_agg(chr(c), '' ORDER BY c) FROM generate_series(1, 127) c
                    WHERE turnpolicy._user_id_error(chr(c)) IS NULL")
chk_chars=$(su -c "SELECT string_agg(chr(c), '' ORDER BY c) FROM generate_series(1, 127) c
                    WHERE chr(c) ~ '^[][!#\$&()*+,.=?@^_{|}~0-9A-Za-z-]{1,128}\$'")
if [ ${#c_chars} -gt 80 ] && [ "$sql_chars" = "$c_chars" ] && [ "$chk_chars" = "$c_chars" ]; then
    ok "user id characters = cred.c user_id_ok[] (${#c_chars} characters, function and CHECK)"
else
    not_ok "user id characters = cred.c user_id_ok[]" "C '$c_chars' SQL '$sql_chars' CHECK '$chk_chars'"
fi
same "kid/realm characters = cred.c name_char_ok" \
    "$(su -c "SELECT string_agg(chr(c), '' ORDER BY c) FROM generate_series(1, 127) c
               WHERE turnpolicy._realm_error(chr(c)) IS NULL AND turnpolicy._kid_error('k' || chr(c)) IS NULL")" \
    "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

# ---------------------------------------------------------------------------
# 3. realms
# ---------------------------------------------------------------------------
R=example.org
expect_ok "create_realm" t_admin \
    "SELECT turnpolicy.create_realm('$R', 600, 3600, ARRAY['turn:127.0.0.1:3478?transport=udp'],
        ARRAY['https://app.example.org'], user_quota => 5, total_quota => 100, max_bps => 1000000)"
expect_err "create_realm: duplicate" t_admin 23505 "realm 'example.org' already exists" \
    "SELECT turnpolicy.create_realm('$R')"
expect_err "create_realm: invalid name" t_admin 22023 "realm 'bad realm' contains a forbidden character at offset 3" \
    "SELECT turnpolicy.create_realm('bad realm')"
expect_err "create_realm: NULL name" t_admin 22004 "required" "SELECT turnpolicy.create_realm(NULL)"
expect_err "create_realm: max_ttl over 7 days" t_admin 22023 "max_ttl 700000 is out of range" \
    "SELECT turnpolicy.create_realm('r2', 600, 700000)"
expect_err "create_realm: default_ttl over max_ttl" t_admin 22023 "default_ttl 7200" \
    "SELECT turnpolicy.create_realm('r2', 7200, 3600)"
expect_err "create_realm: bad TURN URL" t_admin 22023 "turn_urls" \
    "SELECT turnpolicy.create_realm('r2', turn_urls => ARRAY['http://x'])"
expect_err "create_realm: bad origin" t_admin 22023 "allowed_origins" \
    "SELECT turnpolicy.create_realm('r2', allowed_origins => ARRAY['https://App.example.org/'])"
expect_err "create_realm: budget without period" t_admin 22023 "budget_period" \
    "SELECT turnpolicy.create_realm('r2', user_byte_budget => 1000)"
expect_err "direct INSERT obeys the same CHECKs" t_admin 23514 "realms_max_ttl_range" \
    "INSERT INTO turnpolicy.realms (name, max_ttl) VALUES ('r2', 700000)"
# 004: origins and TURN URIs after create_realm (restored afterwards)
prev=$(as t_admin "SELECT allowed_origins FROM turnpolicy.realms WHERE name = '$R'")
expect_ok "set_allowed_origins returns the previous list" t_admin \
    "SELECT turnpolicy.set_allowed_origins('$R', ARRAY['https://b.example.org:8443'])" "$prev"
expect_ok "... and the realm has the new one" t_admin \
    "SELECT allowed_origins FROM turnpolicy.realms WHERE name = '$R'" \
    "{https://b.example.org:8443}"
expect_ok "... and back" t_admin \
    "SELECT turnpolicy.set_allowed_origins('$R', '$prev')" "{https://b.example.org:8443}"
expect_err "set_allowed_origins: a path is not an origin" t_admin 22023 "allowed_origins" \
    "SELECT turnpolicy.set_allowed_origins('$R', ARRAY['https://app.example.org/x'])"
expect_err "set_allowed_origins: NULL" t_admin 22004 "required" \
    "SELECT turnpolicy.set_allowed_origins('$R', NULL)"
expect_err "set_allowed_origins: unknown realm" t_admin P0002 "does not exist" \
    "SELECT turnpolicy.set_allowed_origins('nope.example', '{}')"
expect_err "set_allowed_origins: not for the issuer role" t_issuer 42501 "permission denied" \
    "SELECT turnpolicy.set_allowed_origins('$R', '{}')"
prev=$(as t_admin "SELECT turn_urls FROM turnpolicy.realms WHERE name = '$R'")
expect_ok "set_turn_urls returns the previous list" t_admin \
    "SELECT turnpolicy.set_turn_urls('$R', ARRAY['turns:relay.example.org:5349?transport=tcp'])" "$prev"
expect_ok "... and back" t_admin \
    "SELECT turnpolicy.set_turn_urls('$R', '$prev')" "{turns:relay.example.org:5349?transport=tcp}"
expect_err "set_turn_urls: an http: URL" t_admin 22023 "turn_urls" \
    "SELECT turnpolicy.set_turn_urls('$R', ARRAY['http://x'])"

# ---------------------------------------------------------------------------
# 4. users
# ---------------------------------------------------------------------------
SPECIAL='x!#$&()*+,-.=?@[]^_{|}~Z'
expect_ok "create_user" t_admin \
    "SELECT turnpolicy.create_user('$R', 'alice'), turnpolicy.create_user('$R', 'bob', 2, 1000, '198.51.100.0/24'),
            turnpolicy.create_user('$R', '$SPECIAL')"
expect_err "create_user: duplicate" t_admin 23505 "user 'alice' already exists in realm 'example.org'" \
    "SELECT turnpolicy.create_user('$R', 'alice')"
expect_err "create_user: unknown realm" t_admin P0002 "realm 'nope.example' does not exist" \
    "SELECT turnpolicy.create_user('nope.example', 'alice')"
expect_err "create_user: space in id" t_admin 22023 "user id 'has space' contains a forbidden character at offset 3 \(byte 0x20\)" \
    "SELECT turnpolicy.create_user('$R', 'has space')"
expect_err "create_user: % in id" t_admin 22023 "offset 1 \(byte 0x25\)" \
    "SELECT turnpolicy.create_user('$R', 'a%s')"
expect_err "create_user: : in id" t_admin 22023 "byte 0x3a" "SELECT turnpolicy.create_user('$R', 'a:b')"
expect_err "create_user: non-ASCII id" t_admin 22023 "non-ASCII" "SELECT turnpolicy.create_user('$R', 'jos$(printf '\xc3\xa9')')"
expect_err "create_user: 129-byte id" t_admin 22023 "is 129 bytes long; the limit is 128" \
    "SELECT turnpolicy.create_user('$R', repeat('a', 129))"
expect_err "create_user: empty id" t_admin 22023 "user id is empty" "SELECT turnpolicy.create_user('$R', '')"
expect_err "create_user: NULL id" t_admin 22004 "user_id is required" "SELECT turnpolicy.create_user('$R', NULL)"
expect_err "direct INSERT of a bad user id hits the CHECK" t_admin 23514 "users_user_id_format" \
    "INSERT INTO turnpolicy.users (realm, user_id) VALUES ('$R', 'a/b')"
expect_ok "disable_user" t_admin "SELECT turnpolicy.disable_user('$R', 'alice')" "t"
expect_ok "disable_user again returns false" t_admin "SELECT turnpolicy.disable_user('$R', 'alice')" "f"
expect_ok "enable_user" t_admin "SELECT turnpolicy.enable_user('$R', 'alice')" "t"
expect_err "disable_user: unknown user" t_admin P0002 "user 'carol' does not exist in realm 'example.org'" \
    "SELECT turnpolicy.disable_user('$R', 'carol')"
expect_err "enable_user: unknown realm" t_admin P0002 "does not exist" \
    "SELECT turnpolicy.enable_user('nope.example', 'alice')"

# ---------------------------------------------------------------------------
# 5. secrets
# ---------------------------------------------------------------------------
expect_ok "rotate_secret creates k1" t_admin "SELECT turnpolicy.rotate_secret('$R')" "k1"
expect_ok "rotate_secret again creates k2" t_admin "SELECT turnpolicy.rotate_secret('$R')" "k2"
same "rotation: k2 signing, k1 verify-only, 43-byte printable secrets" \
    "$(su -c "SELECT string_agg(kid || '=' || state || '/' || octet_length(secret) || '/' ||
                               (turnpolicy._compat_text(secret) IS NOT NULL), ' ' ORDER BY kid)
               FROM turnpolicy.secrets WHERE realm = '$R'")" \
    "k1=verify-only/43/true k2=signing/43/true"
expect_err "rotate_secret: unknown realm" t_admin P0002 "does not exist" "SELECT turnpolicy.rotate_secret('nope.example')"
LEAK="SUPERSECRET-do-not-leak-0001"
expect_err "add_secret: second signing secret" t_admin 23505 "already has a signing secret \(k2\)" \
    "SELECT turnpolicy.add_secret('$R', 'imp', convert_to('$LEAK', 'UTF8'), 'signing')"
if grep -qF "$LEAK" "$d/err.out"; then not_ok "the secret is not in the error"; else ok "the secret is not in the error"; fi
expect_err "add_secret: 15 bytes" t_admin 22023 "secret imp is 15 bytes; 16..1024 are required" \
    "SELECT turnpolicy.add_secret('$R', 'imp', convert_to('short-secret-15', 'UTF8'))"
expect_err "add_secret: all-digit kid" t_admin 22023 "kid must not be all digits" \
    "SELECT turnpolicy.add_secret('$R', '123', convert_to('$LEAK', 'UTF8'))"
expect_err "add_secret: kid too long" t_admin 22023 "kid is 33 bytes long" \
    "SELECT turnpolicy.add_secret('$R', repeat('k', 33), convert_to('$LEAK', 'UTF8'))"
expect_err "add_secret: duplicate kid" t_admin 23505 "already has a secret with kid k1" \
    "SELECT turnpolicy.add_secret('$R', 'k1', convert_to('$LEAK', 'UTF8'))"
expect_err "add_secret: bad state" t_admin 22023 "signing, verify-only or retired" \
    "SELECT turnpolicy.add_secret('$R', 'imp', convert_to('$LEAK', 'UTF8'), 'active')"
expect_err "direct INSERT of a second signing secret hits the unique index" t_admin 23505 "secrets_one_signing_per_realm" \
    "INSERT INTO turnpolicy.secrets (realm, kid, secret, state) VALUES ('$R', 'imp', convert_to('$LEAK', 'UTF8'), 'signing')"
expect_err "direct INSERT of a short secret is refused" t_admin 22023 "secret 'imp' of realm 'example.org' is 10 bytes" \
    "INSERT INTO turnpolicy.secrets (realm, kid, secret, state) VALUES ('$R', 'imp', convert_to('SHORT-LEAK', 'UTF8'), 'verify-only')"
if grep -qE "SHORT-LEAK|53484f52542d4c45414b" "$d/err.out"; then
    not_ok "... without echoing the secret (no DETAIL row)"
else
    ok "... without echoing the secret (no DETAIL row)"
fi
expect_ok "add_secret verify-only" t_admin \
    "SELECT turnpolicy.add_secret('$R', 'imp', convert_to('$LEAK', 'UTF8'))"
expect_err "retire_secret: the signing secret" t_admin 55000 "k2 is the signing secret" \
    "SELECT turnpolicy.retire_secret('$R', 'k2')"
expect_ok "retire_secret k1" t_admin "SELECT turnpolicy.retire_secret('$R', 'k1')" "t"
expect_ok "retire_secret k1 again returns false" t_admin "SELECT turnpolicy.retire_secret('$R', 'k1')" "f"
same "a retired secret's bytes are erased" \
    "$(su -c "SELECT state || ':' || (secret IS NULL) || ':' || (retired_at IS NOT NULL) FROM turnpolicy.secrets WHERE realm = '$R' AND kid = 'k1'")" \
    "retired:true:true"
expect_err "retire_secret: unknown kid" t_admin P0002 "has no secret with kid k9" \
    "SELECT turnpolicy.retire_secret('$R', 'k9')"
expect_ok "rotate_secret numbering continues past retired kids" t_admin "SELECT turnpolicy.rotate_secret('$R')" "k3"
legacy="legacy-static-auth-secret-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
expect_ok "import_legacy_secret" t_admin "SELECT turnpolicy.import_legacy_secret('$R', convert_to('$legacy', 'UTF8'))"
expect_err "import_legacy_secret: already there" t_admin 23505 "already has a legacy secret" \
    "SELECT turnpolicy.import_legacy_secret('$R', convert_to('other-secret', 'UTF8'))"
expect_err "import_legacy_secret: empty" t_admin 22023 "1..1024 bytes" \
    "SELECT turnpolicy.import_legacy_secret('$R', ''::bytea)"

# ---------------------------------------------------------------------------
# 6. issue_credential
# ---------------------------------------------------------------------------
out=$(as t_issuer "SELECT username, password, ttl, extract(epoch FROM expires_at)::bigint, urls
                   FROM turnpolicy.issue_credential('$R', 'alice', 300)" 2>&1)
IFS='|' read -r u p t e urls <<<"$out"
exp=${u%%:*}
iat=${u##*:}
if [[ "$u" =~ ^[0-9]+:alice:k3:[0-9]+$ ]] && [ $((exp - iat)) = 300 ] &&
   [ "$t" = 300 ] && [ "$e" = "$exp" ] && [[ "$p" =~ ^[A-Za-z0-9+/]{27}=$ ]] &&
   [ "$urls" = "{turn:127.0.0.1:3478?transport=udp}" ] &&
   [ $(( $(date +%s) - iat )) -le 2 ] && [ $(( $(date +%s) - iat )) -ge 0 ]; then
    ok "issue_credential as turnpolicy_issuer: <expiry>:alice:k3:<iat>, ttl 300, urls"
else
    not_ok "issue_credential as turnpolicy_issuer" "$out"
fi
expect_ok "issue_credential: NULL ttl = the realm's default_ttl" t_issuer \
    "SELECT ttl FROM turnpolicy.issue_credential('$R', 'alice')" "600"
expect_ok "issue_credential: ttl 0 = the realm's default_ttl" t_issuer \
    "SELECT ttl FROM turnpolicy.issue_credential('$R', 'alice', 0)" "600"
expect_ok "issue_credential_at (admin) is deterministic" t_admin \
    "SELECT username FROM turnpolicy.issue_credential_at('$R', 'alice', 300, to_timestamp(1700000000.75))" \
    "1700000300:alice:k3:1700000000"
expect_err "issue_credential: unknown realm" t_issuer P0002 "realm 'nope.example' does not exist" \
    "SELECT * FROM turnpolicy.issue_credential('nope.example', 'alice')"
expect_err "issue_credential: unknown user" t_issuer P0002 "user 'carol' does not exist" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'carol')"
expect_err "issue_credential: invalid user id" t_issuer 22023 "forbidden character" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'a b')"
expect_err "issue_credential: ttl over max_ttl" t_issuer 22023 "ttl 3601 is out of range for realm 'example.org': 1..3600" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'alice', 3601)"
expect_err "issue_credential: negative ttl" t_issuer 22023 "ttl -5 is out of range" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'alice', -5)"
as t_admin "SELECT turnpolicy.disable_user('$R', 'alice')" >/dev/null
expect_err "issue_credential: disabled user" t_issuer 55000 "user 'alice' of realm 'example.org' is disabled" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'alice')"
as t_admin "SELECT turnpolicy.enable_user('$R', 'alice')" >/dev/null
as t_admin "SELECT turnpolicy.create_realm('empty.test'), turnpolicy.create_user('empty.test', 'alice')" >/dev/null
expect_err "issue_credential: no signing secret" t_issuer 55000 "realm 'empty.test' has no signing secret" \
    "SELECT * FROM turnpolicy.issue_credential('empty.test', 'alice')"
expect_err "turnpolicy_issuer cannot call issue_credential_at" t_issuer 42501 "permission denied for function issue_credential_at" \
    "SELECT * FROM turnpolicy.issue_credential_at('$R', 'alice', 300, now())"

# ---------------------------------------------------------------------------
# 7. SQL-issued credentials are byte-identical to the C library's
# ---------------------------------------------------------------------------
as t_admin "SELECT turnpolicy.create_realm('cli.test', 600, 3600),
                   turnpolicy.create_user('cli.test', 'alice'),
                   turnpolicy.create_user('cli.test', '$SPECIAL'),
                   turnpolicy.rotate_secret('cli.test'),
                   turnpolicy.create_realm('bin.test', 900, 7200),
                   turnpolicy.create_user('bin.test', 'bob'),
                   turnpolicy.add_secret('bin.test', 'b-1', decode('00ff0a0d2522275c3a0001020304050607fe80', 'hex'), 'signing')" \
    >/dev/null
secret_file() { # realm kid file: the secret bytes, read as turnpolicy_reader
    local hex
    hex=$(as t_reader "SELECT encode(secret, 'hex') FROM turnpolicy.secrets WHERE realm = '$1' AND kid = '$2'")
    (umask 077; /usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' \
        "$hex" >"$3")
}
kid=$(as t_reader "SELECT kid FROM turnpolicy.secrets WHERE realm = 'cli.test' AND state = 'signing'")
secret_file cli.test "$kid" "$d/cli.secret"
secret_file bin.test b-1 "$d/bin.secret"
cat >"$d/cli.conf" <<CONF
[realm cli.test]
default_ttl = 600
max_ttl = 3600
secret.$kid = signing $d/cli.secret
urls = turn:127.0.0.1:3478?transport=udp

[realm bin.test]
default_ttl = 900
max_ttl = 7200
secret.b-1 = signing $d/bin.secret
CONF
cli=( "${TP[@]}" --config "$d/cli.conf" )
compare_cred() { # name realm user ttl|"" now
    local c_out s_out ttl_opt=() ttl_sql=NULL
    if [ -n "$4" ]; then ttl_opt=(--ttl "$4"); ttl_sql=$4; fi
    c_out=$("${cli[@]}" issue --realm "$2" --user "$3" "${ttl_opt[@]}" --now "$5" --format plain 2>&1)
    s_out=$(as t_admin "SELECT username || chr(10) || password FROM
                        turnpolicy.issue_credential_at('$2', '$3', $ttl_sql, to_timestamp($5))" 2>&1)
    if [ -n "$c_out" ] && [ "$c_out" = "$s_out" ]; then
        ok "$1: SQL = C ($(head -1 <<<"$s_out"))"
    else
        not_ok "$1: SQL = C" "C: $(tr '\n' ' ' <<<"$c_out") SQL: $(tr '\n' ' ' <<<"$s_out")"
    fi
}
compare_cred "byte-identical credential, ttl 300" cli.test alice 300 1700000000
compare_cred "byte-identical credential, default ttl" cli.test alice "" 1712345678
compare_cred "byte-identical credential, every allowed punctuation" cli.test "$SPECIAL" 3600 1800000000
compare_cred "byte-identical credential, binary secret (NUL, CR, LF, high bytes)" bin.test bob 7200 1700000001
out=$(as t_issuer "SELECT username || ' ' || password FROM turnpolicy.issue_credential('cli.test', 'alice', 120)")
check "the C library verifies a credential from issue_credential (now)" \
    "${cli[@]}" verify --realm cli.test --username "${out% *}" --password "${out#* }"

# ---------------------------------------------------------------------------
# 8. revocations
# ---------------------------------------------------------------------------
rb=$(as t_admin "SELECT extract(epoch FROM turnpolicy.revoke_user('$R', 'bob'))::bigint")
now=$(date +%s)
if [[ "$rb" =~ ^[0-9]+$ ]] && [ "$rb" -ge "$now" ] && [ "$rb" -le $((now + 2)) ]; then
    ok "revoke_user returns revoked_before = now rounded up to a whole second"
else
    not_ok "revoke_user returns revoked_before = now rounded up to a whole second" "got '$rb' now $now"
fi
u=$(as t_issuer "SELECT username FROM turnpolicy.issue_credential('$R', 'bob', 60)")
iat=${u##*:}
if [ -n "$iat" ] && [ "$iat" -ge "$rb" ]; then
    ok "a credential issued right after revoke_user is not revoked (iat $iat >= $rb)"
else
    not_ok "a credential issued right after revoke_user is not revoked" "$u vs $rb"
fi
expect_err "issue_credential_at before the revocation" t_admin 55000 "was revoked at" \
    "SELECT * FROM turnpolicy.issue_credential_at('$R', 'bob', 60, to_timestamp($rb - 10))"
expect_err "revoke_user: unknown user" t_admin P0002 "does not exist" "SELECT turnpolicy.revoke_user('$R', 'carol')"
expect_ok "revoke_credential (v1 username)" t_admin \
    "SELECT turnpolicy.revoke_credential('$R', '1700000300:alice:k3:1700000000')" "t"
expect_ok "revoke_credential is idempotent" t_admin \
    "SELECT turnpolicy.revoke_credential('$R', '1700000300:alice:k3:1700000000')" "f"
expect_ok "revoke_credential (legacy username)" t_admin \
    "SELECT turnpolicy.revoke_credential('$R', '1700000300:alice')" "t"
expect_ok "revoke_credential (unexpired)" t_admin \
    "SELECT turnpolicy.revoke_credential('$R', '$u')" "t"
expect_err "revoke_credential: 3 fields" t_admin 22023 "must be <expiry>:<user_id>:<kid>:<iat>" \
    "SELECT turnpolicy.revoke_credential('$R', '1700000300:alice:k3')"
expect_err "revoke_credential: bad expiry" t_admin 22023 "expiry time" \
    "SELECT turnpolicy.revoke_credential('$R', '0170:alice')"
expect_err "revoke_credential: all-digit kid" t_admin 22023 "all digits" \
    "SELECT turnpolicy.revoke_credential('$R', '1700000300:alice:123:1700000000')"
expect_err "revoke_credential: unknown realm" t_admin P0002 "does not exist" \
    "SELECT turnpolicy.revoke_credential('nope.example', '1700000300:alice')"
expect_ok "prune_revocations drops the expired ones" t_admin "SELECT turnpolicy.prune_revocations(0)" "2"
same "the unexpired revocation stays" \
    "$(as t_reader "SELECT string_agg(username, ',') FROM turnpolicy.revoked_credentials")" "$u"

# ---------------------------------------------------------------------------
# 9. host allow-list
# ---------------------------------------------------------------------------
expect_ok "allow_host" t_admin "SELECT turnpolicy.allow_host('$R', 'Edge.Skype.COM.')"
same "allow_host canonicalizes (case, trailing dot)" \
    "$(su -c "SELECT pattern FROM turnpolicy.host_rules WHERE realm = '$R'")" "edge.skype.com"
expect_ok "allow_host: wildcard, port, any port, path" t_admin \
    "SELECT turnpolicy.allow_host('$R', '*.communication.azure.com'),
            turnpolicy.allow_host('$R', 'api.example.com:8443', '/v1'),
            turnpolicy.allow_host('$R', 'x.example.com:*'),
            turnpolicy.allow_host('$R', 'y.example.com:443'),
            turnpolicy.allow_host('$R', 'z.example.com/api/'),
            turnpolicy.allow_host('$R', 'xn--bcher-kva.example')"
same "allow_host stores canonical rules" \
    "$(su -c "SELECT string_agg(pattern || coalesce(path_prefix, ''), ' ' ORDER BY pattern) FROM turnpolicy.host_rules WHERE realm = '$R'")" \
    "*.communication.azure.com api.example.com:8443/v1 edge.skype.com x.example.com:* xn--bcher-kva.example y.example.com z.example.com/api/"
bad_host() { expect_err "allow_host refuses $1" t_admin 22023 "$2" "SELECT turnpolicy.allow_host('$R', '$1')"; }
bad_host '*.com' "at least two labels"
bad_host '*' "whole leftmost label"
bad_host 'a*.example.com' "whole leftmost label"
bad_host 'foo_bar.example.com' "no '_'"
bad_host '10.0.0.1' "IP address"
bad_host 'x.0x1f' "IP address"
bad_host 'x.example.com:0' "port must be 1..65535"
bad_host 'x.example.com:65536' "port must be 1..65535"
bad_host 'ex ample.com' "only letters"
bad_host "b$(printf '\xc3\xbc')cher.example" "xn--"
bad_host '-a.example.com' "starts with '-'"
bad_host 'a..example.com' "empty label"
bad_host 'x.example.com/a/../b' "path prefix must not contain"
bad_host 'x.example.com/a%2Fb' "path prefix must not contain"
expect_err "allow_host: path twice" t_admin 22023 "not both" \
    "SELECT turnpolicy.allow_host('$R', 'x.example.com/a', '/b')"
expect_err "allow_host: duplicate" t_admin 23505 "already allows host rule 'edge.skype.com'" \
    "SELECT turnpolicy.allow_host('$R', 'EDGE.skype.com:443')"
expect_err "allow_host: unknown realm" t_admin P0002 "does not exist" \
    "SELECT turnpolicy.allow_host('nope.example', 'edge.skype.com')"
expect_ok "remove_host" t_admin "SELECT turnpolicy.remove_host('$R', 'X.example.com:*')"
expect_err "remove_host: no such rule" t_admin P0002 "has no host rule 'x.example.com:\*'" \
    "SELECT turnpolicy.remove_host('$R', 'x.example.com:*')"
expect_ok "allow_acs_hosts adds the preset (two of its rules were already there)" t_admin \
    "SELECT turnpolicy.allow_acs_hosts('$R')" "$(($(su -c 'SELECT count(*) FROM turnpolicy.acs_preset()') - 2))"
expect_ok "allow_acs_hosts again adds nothing" t_admin "SELECT turnpolicy.allow_acs_hosts('$R')" "0"
same "the acs preset never allows *.azure.com, *.azure.net, *.cloudapp.azure.com or *.microsoft.com" \
    "$(su -c "SELECT count(*) FROM turnpolicy.host_rules
               WHERE pattern IN ('*.azure.com', '*.azure.net', '*.cloudapp.azure.com', '*.microsoft.com',
                                 '*.windows.net', '*.skype.com')")" "0"
# The C library loads every stored rule (no duplicates after its own
# normalization) and decides with them.
hosts=$(su -c "SELECT string_agg(pattern || coalesce(path_prefix, ''), ' ') FROM turnpolicy.host_rules WHERE realm = '$R'")
printf '[realm %s]\nsecret.k1 = signing %s\nhosts = %s\n' "$R" "$d/cli.secret" "$hosts" >"$d/hosts.conf"
check "the C library accepts the stored host rules: go.trouter.communication.microsoft.com allowed" \
    "${TP[@]}" --config "$d/hosts.conf" host-check --realm "$R" go.trouter.communication.microsoft.com
check_fails "... and evil.azure.com denied" \
    "${TP[@]}" --config "$d/hosts.conf" host-check --realm "$R" evil.azure.com

# ---------------------------------------------------------------------------
# 10. peer rules
# ---------------------------------------------------------------------------
expect_ok "allow_peer / deny_peer" t_admin \
    "SELECT turnpolicy.allow_peer('$R', '10.1.0.0/16'), turnpolicy.deny_peer('$R', '10.1.2.0/24'),
            turnpolicy.deny_peer('$R', '8.8.8.8'), turnpolicy.allow_peer('$R', '::ffff:192.168.1.0/120'),
            turnpolicy.allow_peer('$R', '2001:db8:1::/48'), turnpolicy.allow_peer('$R', '127.0.0.1')"
same "an IPv4-mapped rule is stored as IPv4" \
    "$(su -c "SELECT count(*) FROM turnpolicy.peer_rules WHERE realm = '$R' AND net = '192.168.1.0/24' AND action = 'allow'")" "1"
expect_err "allow_peer: prefix already has a rule" t_admin 23505 "already has a deny rule for 10.1.2.0/24" \
    "SELECT turnpolicy.allow_peer('$R', '10.1.2.0/24')"
expect_err "allow_peer: host bits set" t_admin 22P02 "invalid cidr value" \
    "SELECT turnpolicy.allow_peer('$R', '10.0.0.1/8')"
expect_err "deny_peer: not an address" t_admin 22P02 "invalid input syntax for type cidr" \
    "SELECT turnpolicy.deny_peer('$R', 'nonsense')"
expect_err "deny_peer: unknown realm" t_admin P0002 "does not exist" \
    "SELECT turnpolicy.deny_peer('nope.example', '8.8.4.4')"
expect_err "direct INSERT of an IPv4-mapped prefix hits the CHECK" t_admin 23514 "peer_rules_not_v4mapped" \
    "INSERT INTO turnpolicy.peer_rules (realm, net, action) VALUES ('$R', '::ffff:10.0.0.0/104', 'deny')"
expect_ok "remove_peer" t_admin "SELECT turnpolicy.remove_peer('$R', '2001:db8:1::/48')"
expect_err "remove_peer: no such rule" t_admin P0002 "has no peer rule" \
    "SELECT turnpolicy.remove_peer('$R', '2001:db8:1::/48')"
allow=$(su -c "SELECT string_agg(net::text, ' ') FROM turnpolicy.peer_rules WHERE realm = '$R' AND action = 'allow'")
deny=$(su -c "SELECT string_agg(net::text, ' ') FROM turnpolicy.peer_rules WHERE realm = '$R' AND action = 'deny'")
printf '[realm %s]\nsecret.k1 = signing %s\npeer_allow = %s\npeer_deny = %s\n' \
    "$R" "$d/cli.secret" "$allow" "$deny" >"$d/peers.conf"
if "${TP[@]}" --config "$d/peers.conf" peer-check --realm "$R" 10.1.2.7 >/dev/null 2>&1; then
    not_ok "the C library loads the stored peer rules: 10.1.2.7 denied (deny wins)"
elif "${TP[@]}" --config "$d/peers.conf" peer-check --realm "$R" 10.1.3.7 >/dev/null 2>&1; then
    ok "the C library loads the stored peer rules: 10.1.2.7 denied (deny wins), 10.1.3.7 allowed"
else
    not_ok "the C library loads the stored peer rules" "10.1.3.7 denied"
fi

# ---------------------------------------------------------------------------
# 11. JWT keys
# ---------------------------------------------------------------------------
# Public test keys (no openssl CLI needed); the private one is only markers:
# the schema refuses anything that says PRIVATE.
cat >"$d/rsa.pub" <<'PEM'
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuu8fBAWIQIXUvb8ckLp0
ZXk/NQNLaBhB1oJlWoGqTC9rV99YBSL2ubEpKcOYv3rrwkBwDLNmGwJnb1HubtqA
pbExCM5wj0mpXRyAbK+1xcR0b90/BiieSzgIpFBzqUlToIz0eTqaGyWve0IlRecO
dGP1GMz12PMzSEXa9R1Ce55FMCs1G/RaauhMlultTZwYmTM2CTSOgDzP76PTmIuB
qZ0FCLc8y4deREWI0SctDLbB91tcxKTCPX45NXoWlJcrF8uOyUxy/iWuXxsPGMp1
9aSXQHsLCom9KcpCow/jvxCCjqOGukQxRf3TUi+zid8QqYPGsmaoYR4SdQJiDjHG
2QIDAQAB
-----END PUBLIC KEY-----
PEM
cat >"$d/ec.pub" <<'PEM'
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzktVYFvb6BBMv7h6ddC7TfSEuZnS
rJy48EFkm9LkYph7xyp1TvWODcM7FSRotocWh9hDMvEDUVg6VL0Vly52YA==
-----END PUBLIC KEY-----
PEM
printf -- '-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC6\n-----END PRIVATE KEY-----\n%s' \
    "$(cat "$d/rsa.pub")" >"$d/rsa.pem"
hs="hs256-secret-of-at-least-32-bytes-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
expect_ok "add_jwt_key: HS256, RS256 and ES256 public keys, kid-less key" t_admin \
    "SELECT turnpolicy.add_jwt_key('$R', 'app1', 'HS256', convert_to('$hs', 'UTF8')),
            turnpolicy.add_jwt_key('$R', 'idp', 'RS256', '$(cat "$d/rsa.pub")'),
            turnpolicy.add_jwt_key('$R', 'ec', 'ES256', '$(cat "$d/ec.pub")'),
            turnpolicy.add_jwt_key('$R', '', 'HS512', convert_to(repeat('s', 64), 'UTF8'))"
expect_err "add_jwt_key: HS256 secret of 31 bytes" t_admin 22023 "32..1024 bytes \(got 31\)" \
    "SELECT turnpolicy.add_jwt_key('$R', 'short', 'HS256', convert_to(repeat('s', 31), 'UTF8'))"
expect_err "add_jwt_key: a PEM as HS256 secret (HS/RS confusion)" t_admin 22023 "is a PEM key" \
    "SELECT turnpolicy.add_jwt_key('$R', 'conf', 'HS256', '$(cat "$d/rsa.pub")')"
expect_err "add_jwt_key: a private key" t_admin 22023 "private key" \
    "SELECT turnpolicy.add_jwt_key('$R', 'priv', 'RS256', '$(cat "$d/rsa.pem")')"
expect_err "add_jwt_key: RS256 not PEM" t_admin 22023 "PEM public key" \
    "SELECT turnpolicy.add_jwt_key('$R', 'raw', 'RS256', convert_to(repeat('s', 64), 'UTF8'))"
expect_err "add_jwt_key: alg none" t_admin 22023 "algorithm 'none' is not supported" \
    "SELECT turnpolicy.add_jwt_key('$R', 'n', 'none', convert_to(repeat('s', 64), 'UTF8'))"
expect_err "add_jwt_key: bad kid" t_admin 22023 "JWT kid 'a b'" \
    "SELECT turnpolicy.add_jwt_key('$R', 'a b', 'HS256', convert_to(repeat('s', 64), 'UTF8'))"
expect_err "add_jwt_key: duplicate kid" t_admin 23505 "already has a JWT key with kid 'app1'" \
    "SELECT turnpolicy.add_jwt_key('$R', 'app1', 'HS256', convert_to(repeat('s', 64), 'UTF8'))"
expect_err "direct INSERT of a short HS key is refused" t_admin 22023 "JWT key 'x' of realm 'example.org': HS384 secret must be 32..1024 bytes" \
    "INSERT INTO turnpolicy.jwt_keys (realm, kid, alg, key_data) VALUES ('$R', 'x', 'HS384', 'short')"
expect_ok "remove_jwt_key" t_admin "SELECT turnpolicy.remove_jwt_key('$R', '')"

# ---------------------------------------------------------------------------
# 12. kill switch
# ---------------------------------------------------------------------------
expect_ok "kill_realm" t_admin "SELECT turnpolicy.kill_realm('cli.test')" "t"
expect_ok "kill_realm again returns false" t_admin "SELECT turnpolicy.kill_realm('cli.test')" "f"
expect_err "issue_credential: killed realm" t_issuer 55000 "realm 'cli.test' is killed" \
    "SELECT * FROM turnpolicy.issue_credential('cli.test', 'alice')"
expect_ok "unkill_realm" t_admin "SELECT turnpolicy.unkill_realm('cli.test')" "t"
expect_ok "issue_credential works again" t_issuer \
    "SELECT count(*) FROM turnpolicy.issue_credential('cli.test', 'alice')" "1"

# ---------------------------------------------------------------------------
# 13. usage (written by turnpolicyd as turnpolicy_reader)
# ---------------------------------------------------------------------------
usage_row="('node-1', '4242', '$R', 'alice', now() - interval '5 minutes', now(), 1000, 2000, '203.0.113.9')"
usage_cols="(node, session_id, realm, user_id, started_at, ended_at, bytes_in, bytes_out, client_addr)"
expect_ok "usage: turnpolicy_reader inserts a session" t_reader \
    "INSERT INTO turnpolicy.usage $usage_cols VALUES $usage_row"
expect_ok "usage: re-sending the batch is idempotent" t_reader \
    "INSERT INTO turnpolicy.usage $usage_cols VALUES $usage_row ON CONFLICT DO NOTHING;
     SELECT count(*), sum(bytes_in + bytes_out) FROM turnpolicy.usage" "1|3000"
expect_err "usage: a plain duplicate is a unique violation" t_reader 23505 "usage_pkey" \
    "INSERT INTO turnpolicy.usage $usage_cols VALUES $usage_row"
expect_err "usage: ended before started" t_reader 23514 "usage_times_ordered" \
    "INSERT INTO turnpolicy.usage (node, session_id, realm, user_id, started_at, ended_at)
     VALUES ('node-1', '4243', '$R', 'alice', now(), now() - interval '1 s')"

# ---------------------------------------------------------------------------
# 14. permissions
# ---------------------------------------------------------------------------
expect_err "turnpolicy_issuer cannot SELECT secrets" t_issuer 42501 "permission denied for table secrets" \
    "SELECT secret FROM turnpolicy.secrets"
expect_err "turnpolicy_issuer cannot SELECT users" t_issuer 42501 "permission denied" \
    "SELECT * FROM turnpolicy.users"
expect_err "turnpolicy_issuer cannot provision" t_issuer 42501 "permission denied for function create_user" \
    "SELECT turnpolicy.create_user('$R', 'mallory')"
expect_ok "turnpolicy_reader reads secrets, legacy secrets and JWT keys" t_reader \
    "SELECT (SELECT count(*) FROM turnpolicy.secrets WHERE secret IS NOT NULL) > 0,
            (SELECT count(*) FROM turnpolicy.legacy_secrets) > 0,
            (SELECT count(*) FROM turnpolicy.jwt_keys) > 0" "t|t|t"
expect_err "turnpolicy_reader cannot UPDATE realms" t_reader 42501 "permission denied for table realms" \
    "UPDATE turnpolicy.realms SET killed = true"
expect_err "turnpolicy_reader cannot INSERT users" t_reader 42501 "permission denied for table users" \
    "INSERT INTO turnpolicy.users (realm, user_id) VALUES ('$R', 'mallory')"
expect_err "turnpolicy_reader cannot DELETE secrets" t_reader 42501 "permission denied for table secrets" \
    "DELETE FROM turnpolicy.secrets"
expect_err "turnpolicy_reader cannot call the API" t_reader 42501 "permission denied for function disable_user" \
    "SELECT turnpolicy.disable_user('$R', 'alice')"
expect_err "turnpolicy_reader cannot issue" t_reader 42501 "permission denied for function issue_credential" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'alice')"
expect_err "turnpolicy_reader cannot UPDATE usage" t_reader 42501 "permission denied for table usage" \
    "UPDATE turnpolicy.usage SET bytes_in = 0"
expect_err "turnpolicy_admin cannot read secret bytes" t_admin 42501 "permission denied for table secrets" \
    "SELECT secret FROM turnpolicy.secrets"
expect_ok "turnpolicy_admin reads the other secret columns" t_admin \
    "SELECT string_agg(kid || ':' || state, ' ' ORDER BY kid) FROM turnpolicy.secrets WHERE realm = '$R'" \
    "imp:verify-only k1:retired k2:verify-only k3:signing"
expect_err "turnpolicy_admin cannot read JWT key bytes" t_admin 42501 "permission denied for table jwt_keys" \
    "SELECT key_data FROM turnpolicy.jwt_keys"
expect_err "turnpolicy_admin cannot read the legacy secret" t_admin 42501 "permission denied for table legacy_secrets" \
    "SELECT * FROM turnpolicy.legacy_secrets"
expect_err "turnpolicy_admin cannot write audit rows" t_admin 42501 "permission denied for table audit" \
    "INSERT INTO turnpolicy.audit (table_name, op, db_user, db_role) VALUES ('x', 'insert', 'x', 'x')"
expect_err "turnpolicy_admin cannot delete audit rows" t_admin 42501 "permission denied for table audit" \
    "DELETE FROM turnpolicy.audit"
expect_err "a role without grants cannot issue" t_nobody 42501 "permission denied" \
    "SELECT * FROM turnpolicy.issue_credential('$R', 'alice')"
same "no function is executable by PUBLIC" \
    "$(su -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname IN ('turnpolicy', 'turnpolicy_coturn')
                 AND has_function_privilege('t_nobody', p.oid, 'EXECUTE')")" "0"
same "every SECURITY DEFINER function pins search_path = pg_catalog, turnpolicy" \
    "$(su -c "SELECT count(*) FILTER (WHERE NOT coalesce('search_path=pg_catalog, turnpolicy' = ANY (p.proconfig), false))
                    || '/' || (count(*) >= 5)
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'turnpolicy' AND p.prosecdef")" "0/true"
same "issue_credential and issue_credential_json are the only functions turnpolicy_issuer may call" \
    "$(su -c "SELECT string_agg(p.proname, ',' ORDER BY p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'turnpolicy' AND has_function_privilege('t_issuer', p.oid, 'EXECUTE')")" \
    "issue_credential,issue_credential_json"
expect_err "turnpolicy_coturn cannot read turnpolicy.secrets" t_coturn 42501 "permission denied" \
    "SELECT * FROM turnpolicy.secrets"

# ---------------------------------------------------------------------------
# 15. NOTIFY
# ---------------------------------------------------------------------------
coproc LSN { psql -X -At -U t_reader -d "$DB" 2>&1; }
lsn_pid=$LSN_PID # bash unsets LSN_PID when the coprocess ends
lsn_in=${LSN[1]}
lsn_out=${LSN[0]}
echo "LISTEN turnpolicy;" >&"$lsn_in"
# drain: run a query in the listener, return the notifications printed
# before its result comes back (psql prints them after each command).
drain() {
    local line got="" i
    for i in 1 2; do
        mark="$(date +%s%N)-$i"
        echo "SELECT 'mark-$mark';" >&"$lsn_in"
        while IFS= read -r -t 5 line <&"$lsn_out"; do
            [ "$line" = "mark-$mark" ] && break
            case "$line" in
            Asynchronous*) got="$got$(sed 's/.*with payload "\(.*\)" received.*/\1/' <<<"$line")
" ;;
            esac
        done
    done
    printf '%s' "$got"
}
drain >/dev/null
t0=$(date +%s%N)
as t_admin "SELECT turnpolicy.disable_user('$R', 'alice')" >/dev/null
got=$(drain)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$got" = '{"table":"users","op":"update","realm":"example.org"}' ] && [ "$ms" -lt 1000 ]; then
    ok "disable_user NOTIFYs turnpolicy {\"table\":\"users\",\"op\":\"update\",\"realm\":\"example.org\"} (${ms} ms)"
else
    not_ok "disable_user NOTIFYs turnpolicy" "got '$got' after $ms ms"
fi
as t_admin "SELECT turnpolicy.create_user('$R', 'alice')" >/dev/null 2>&1
same "a refused call NOTIFYs nothing" "$(drain)" ""
as t_admin "SELECT turnpolicy.rotate_secret('bin.test'), turnpolicy.kill_realm('empty.test')" >/dev/null
got=$(drain)
got=$(LC_ALL=C sort <<<"$got" | tr '\n' ' ')
same "rotation and kill switch NOTIFY once per table and realm (no secret in the payload)" "$got" \
    '{"table":"realms","op":"update","realm":"empty.test"} {"table":"secrets","op":"insert","realm":"bin.test"} {"table":"secrets","op":"update","realm":"bin.test"} '
as t_admin "SELECT turnpolicy.enable_user('$R', 'alice')" >/dev/null
echo '\q' >&"$lsn_in"
wait "$lsn_pid" 2>/dev/null

# ---------------------------------------------------------------------------
# 16. audit
# ---------------------------------------------------------------------------
same "audit: create_user by t_admin" \
    "$(su -c "SELECT op || ' ' || db_user || ' ' || db_role || ' ' || row_key::text FROM turnpolicy.audit
               WHERE table_name = 'users' AND realm = '$R' AND row_key ->> 'user_id' = 'bob' AND op = 'insert'")" \
    'insert t_admin t_admin {"realm": "example.org", "user_id": "bob"}'
as t_admin "SET ROLE turnpolicy_admin; SELECT turnpolicy.disable_user('$R', 'bob')" >/dev/null
same "audit: SET ROLE is recorded next to the login, with old and new status" \
    "$(su -c "SELECT db_user || ' ' || db_role || ' ' || (old_row ->> 'status') || '->' || (new_row ->> 'status')
               FROM turnpolicy.audit WHERE table_name = 'users' AND op = 'update' ORDER BY id DESC LIMIT 1")" \
    "t_admin turnpolicy_admin active->disabled"
n0=$(su -c "SELECT count(*) FROM turnpolicy.audit")
as t_admin "UPDATE turnpolicy.users SET status = status" >/dev/null
same "audit: an UPDATE that changes nothing writes nothing" "$(su -c "SELECT count(*) FROM turnpolicy.audit")" "$n0"
same "audit: every table has rows (realms users secrets legacy_secrets revoked_credentials host_rules peer_rules jwt_keys realm_presets)" \
    "$(su -c "SELECT count(DISTINCT table_name) FROM turnpolicy.audit")" "9"
same "audit: no secret or key column in any row" \
    "$(su -c "SELECT count(*) FROM turnpolicy.audit
               WHERE old_row ? 'secret' OR new_row ? 'secret' OR old_row ? 'key_data' OR new_row ? 'key_data'")" "0"
same "audit: no secret or key bytes anywhere in it (text, hex, base64)" \
    "$(su -c "SELECT count(*) FROM turnpolicy.audit a, (
                  SELECT secret AS b FROM turnpolicy.secrets WHERE secret IS NOT NULL
                  UNION ALL SELECT secret FROM turnpolicy.legacy_secrets
                  UNION ALL SELECT key_data FROM turnpolicy.jwt_keys) k
               WHERE strpos(a::text, encode(k.b, 'hex')) > 0
                  OR strpos(a::text, replace(encode(k.b, 'base64'), chr(10), '')) > 0
                  OR strpos(a::text, coalesce(turnpolicy._compat_text(k.b), chr(1))) > 0")" "0"

# ---------------------------------------------------------------------------
# 17. coturn compat views
# ---------------------------------------------------------------------------
CONNINFO="host=127.0.0.1 port=$TP_PG_PORT dbname=$DB user=t_coturn passfile=$d/pgpass options='-c search_path=turnpolicy_coturn'"
(umask 077; printf '127.0.0.1:%s:%s:t_coturn:%s\n' "$TP_PG_PORT" "$DB" "$coturn_pw" >"$d/pgpass")
cq() { psql -X -At -v ON_ERROR_STOP=1 "$CONNINFO" -c "$1"; }
same "turn_secret (coturn's query): signing + verify-only + legacy, printable only" \
    "$(cq "select value from turn_secret where realm='$R'" | LC_ALL=C sort | tr '\n' ' ')" \
    "$(su -c "SELECT convert_from(secret, 'UTF8') FROM turnpolicy.secrets WHERE realm = '$R' AND state <> 'retired'
              UNION ALL SELECT '$legacy'" | LC_ALL=C sort | tr '\n' ' ')"
same "turn_secret: a binary secret is left out" \
    "$(cq "select value from turn_secret where realm='bin.test'")" \
    "$(su -c "SELECT convert_from(secret, 'UTF8') FROM turnpolicy.secrets WHERE realm = 'bin.test' AND kid = 'k1'")"
same "turn_secret: a killed realm has none" "$(cq "select count(*) from turn_secret where realm='empty.test'")" "0"
same "allowed_peer_ip: allows not overlapping a deny, as coturn ranges" \
    "$(cq "select ip_range,realm from allowed_peer_ip" | LC_ALL=C sort | tr '\n' ' ')" \
    "127.0.0.1|example.org 192.168.1.0-192.168.1.255|example.org "
same "denied_peer_ip: the realm's deny rules" \
    "$(cq "select ip_range from denied_peer_ip where realm='$R'" | LC_ALL=C sort | tr '\n' ' ')" \
    "10.1.2.0-10.1.2.255 8.8.8.8 "
printf '[realm r0]\nsecret.k1 = signing %s\n\n[realm r1]\nsecret.k1 = signing %s\npeer_default = deny\n' \
    "$d/cli.secret" "$d/cli.secret" >"$d/builtin.conf"
"${TP[@]}" --config "$d/builtin.conf" coturn-peers --realm r0 >"$d/peers0.txt" 2>&1
"${TP[@]}" --config "$d/builtin.conf" coturn-peers --realm r1 >"$d/peers1.txt" 2>&1
cq "select 'denied-peer-ip=' || ip_range from denied_peer_ip where realm=''" >"$d/view0.txt"
if [ -s "$d/peers0.txt" ] && cmp -s <(LC_ALL=C sort "$d/peers0.txt") <(LC_ALL=C sort "$d/view0.txt"); then
    ok "denied_peer_ip (realm '') = turnpolicy coturn-peers built-in deny ($(wc -l <"$d/view0.txt") ranges)"
else
    not_ok "denied_peer_ip (realm '') = turnpolicy coturn-peers built-in deny" \
        "$(diff <(LC_ALL=C sort "$d/peers0.txt") <(LC_ALL=C sort "$d/view0.txt") | head -5 | tr '\n' ' ')"
fi
as t_admin "SELECT turnpolicy.create_realm('closed.test', peer_default => 'deny')" >/dev/null
cq "select 'denied-peer-ip=' || ip_range from denied_peer_ip where realm='closed.test'" >"$d/view1.txt"
if [ -s "$d/peers1.txt" ] && cmp -s <(LC_ALL=C sort "$d/peers1.txt") <(LC_ALL=C sort "$d/view1.txt"); then
    ok "denied_peer_ip (peer_default deny) = turnpolicy coturn-peers with peer_default = deny ($(wc -l <"$d/view1.txt") ranges)"
else
    not_ok "denied_peer_ip (peer_default deny) = CLI" \
        "$(diff <(LC_ALL=C sort "$d/peers1.txt") <(LC_ALL=C sort "$d/view1.txt") | head -5 | tr '\n' ' ')"
fi
same "coturn_ranges splits ::/126 so no range starts at ::" \
    "$(su -c "SELECT string_agg(r, ' ') FROM turnpolicy.coturn_ranges('::/126') r")" "::1 ::2-::3"
same "turn_origin_to_realm" "$(cq "select origin,realm from turn_origin_to_realm")" "https://app.example.org|example.org"
same "turn_realm_option" "$(cq "select realm,opt,value from turn_realm_option order by realm,opt" | tr '\n' ' ')" \
    "example.org|max-bps|1000000 example.org|total-quota|100 example.org|user-quota|5 "
empty_ok=1
for q in "select hmackey from turnusers_lt where name='a' and realm='b'" \
         "select name,realm from turnusers_lt order by realm,name" \
         "select ikm_key,timestamp,lifetime,as_rs_alg,realm from oauth_key where kid='a'" \
         "select ikm_key,timestamp,lifetime,as_rs_alg,realm,kid from oauth_key order by kid" \
         "select realm,password from admin_user where name='a'" \
         "select name,realm,password from admin_user order by realm,name" \
         "select value,realm from turn_secret order by realm,value" \
         "select value from turn_secret" \
         "select ip_range,realm from denied_peer_ip" \
         "select realm,opt,value from turn_realm_option" \
         "select origin,realm from turn_origin_to_realm order by realm,origin"; do
    cq "$q" >/dev/null 2>"$d/cq.err" || { empty_ok=0; not_ok "coturn query: $q" "$(head -1 "$d/cq.err")"; }
done
[ "$empty_ok" = 1 ] && ok "every SELECT coturn 4.6.1's dbd_pgsql.c sends runs as turnpolicy_coturn"
if cq "insert into turn_secret (realm,value) values ('x','y')" >/dev/null 2>&1; then
    not_ok "turnpolicy_coturn cannot write"
else
    ok "turnpolicy_coturn cannot write"
fi

# ---------------------------------------------------------------------------
# 18. a stock coturn 4.6.1 on the compat views
# ---------------------------------------------------------------------------
if [ ! -x /usr/bin/turnserver ] || [ ! -x /usr/bin/turnutils_uclient ]; then
    not_ok "coturn is installed" "scripts/install-deps.sh installs it"
    exit "$tp_failed"
fi
CR=compat.test
turn_port=$(tp_free_port)
cli_port=$(tp_free_port)
peer_port=$(tp_free_port)
as t_admin "SELECT turnpolicy.create_realm('$CR', 600, 3600), turnpolicy.create_user('$CR', 'dana'),
                   turnpolicy.rotate_secret('$CR')" >/dev/null
tp_coturn_conf turnserver "$turn_port" "$CR" \
    use-auth-secret "psql-userdb=\"$CONNINFO\"" allow-loopback-peers \
    cli-ip=127.0.0.1 "cli-port=$cli_port" \
    "cli-password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
tp_bg peer /usr/bin/turnutils_peer -L 127.0.0.1 -p "$peer_port"
if ! tp_coturn_start turnserver "$turn_port"; then
    not_ok "coturn starts with psql-userdb" "$(tail -3 "$d/turnserver.out" "$d/turnserver.log" 2>/dev/null)"
    exit "$tp_failed"
fi
relay() { # user pass -> messages echoed back through the relay ("" if none)
    timeout 20 /usr/bin/turnutils_uclient -u "$1" -w "$2" -e 127.0.0.1 -r "$peer_port" \
        -p "$turn_port" -n 10 -l 120 -z 5 127.0.0.1 >"$d/uclient.out" 2>&1
    sed -n 's/.*start_mclient: tot_send_msgs=[0-9]*, tot_recv_msgs=\([0-9]*\).*/\1/p' "$d/uclient.out" | tail -1
}
IFS='|' read -r cu cp <<<"$(as t_issuer "SELECT username, password FROM turnpolicy.issue_credential('$CR', 'dana', 600)")"
got=$(relay "$cu" "$cp")
if [ "${got:-0}" = 0 ] && grep -q "denied in the range: 127.0.0.0-127.255.255.255" "$d/turnserver.log" 2>/dev/null; then
    ok "coturn (psql-userdb) accepts the SQL-issued credential and denies 127.0.0.1 by the built-in deny view"
else
    not_ok "coturn denies 127.0.0.1 by the built-in deny view" "echoed '$got'; $(grep -i 'psql\|postgres\|denied' "$d/turnserver.log" | tail -3 | tr '\n' ' ')"
fi
as t_admin "SELECT turnpolicy.allow_peer('$CR', '127.0.0.1')" >/dev/null
t0=$(date +%s)
got=0
while [ "${got:-0}" = 0 ] && [ $(( $(date +%s) - t0 )) -lt 15 ]; do
    sleep 1 # coturn re-reads the peer lists every 5 s
    got=$(relay "$cu" "$cp")
done
if [ "${got:-0}" -gt 0 ] 2>/dev/null; then
    ok "coturn relays after allow_peer('$CR', '127.0.0.1') ($got messages echoed, $(( $(date +%s) - t0 )) s)"
else
    not_ok "coturn relays after allow_peer" "echoed '$got'; $(tail -3 "$d/uclient.out" | tr '\n' ' ')"
fi
bad="${cp%?}A"
[ "$bad" = "$cp" ] && bad="${cp%?}B"
got=$(relay "$cu" "$bad")
same "coturn refuses a wrong password" "${got:-0}" "0"
as t_admin "SELECT turnpolicy.kill_realm('$CR')" >/dev/null
got=$(relay "$cu" "$cp")
same "coturn refuses the realm's credentials once it is killed (no turn_secret rows)" "${got:-0}" "0"
if grep -qF "$coturn_pw" "$d/turnserver.log"; then
    not_ok "coturn's log holds no database password (passfile)"
else
    ok "coturn's log holds no database password (passfile)"
fi

exit "$tp_failed"
