#!/bin/bash
# migrate.sh - `turnpolicy migrate` against a real PostgreSQL 15: from
# empty, re-run, a failing migration (nothing half-written), a changed
# applied file, a database newer than the tool, a half-applied set, and
# two migrators at once.  The password reaches libpq through a passfile,
# never the connection string.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../pg.sh"

d=$tp_tmpdir
tp="$TP_BIN/turnpolicy"
if ! tp_pg_start; then
    not_ok "PostgreSQL starts"
    exit 1
fi
ok "PostgreSQL 15 started on 127.0.0.1:$TP_PG_PORT"
conn() { echo "$(tp_pg_superuser_db "$1") connect_timeout=5"; }
q() { tp_pg_psql -d "$1" -At -c "$2"; }
nfiles=$(ls "$TP_ROOT"/schema/[0-9]*_*.sql | wc -l)

tp_pg_psql -d postgres -c "CREATE DATABASE m1" -c "CREATE DATABASE m2" \
    -c "CREATE DATABASE m3" -c "CREATE DATABASE m4"

# From empty, then again.
"$tp" migrate --database "$(conn m1)" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1
[ $? = 0 ] && grep -q "^applied $nfiles migration" "$d/out" &&
    ok "migrate applies all $nfiles migrations to an empty database" ||
    not_ok "migrate from empty" "$(cat "$d/out")"
[ "$(q m1 'SELECT count(*) FROM turnpolicy.schema_migrations')" = "$nfiles" ] &&
    ok "every applied file is recorded with its sha256" || not_ok "recorded"
"$tp" migrate --database "$(conn m1)" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1
[ $? = 0 ] && grep -q '^applied 0 migrations' "$d/out" &&
    ok "re-running applies nothing" || not_ok "re-run" "$(cat "$d/out")"
check "migrate --check validates the files offline" "$tp" migrate --check --schema-dir "$TP_ROOT/schema"
! grep -rqF "$TP_PG_PASSWORD" "$d/out" && ok "no password in the output" || not_ok "password in output"

# A failing migration: error names the file; its transaction left nothing.
cp -r "$TP_ROOT/schema" "$d/s2"
cat >"$d/s2/999_broken.sql" <<'SQL'
CREATE TABLE turnpolicy.half_written (x int);
SELECT no_such_function();
SQL
"$tp" migrate --database "$(conn m1)" --schema-dir "$d/s2" >"$d/out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q '999_broken.sql' "$d/out" && grep -q 'no_such_function' "$d/out" &&
    ok "a failing migration is reported with its file and the server's message" ||
    not_ok "failing migration" "rc=$rc $(cat "$d/out")"
[ "$(q m1 "SELECT to_regclass('turnpolicy.half_written') IS NULL")" = t ] &&
[ "$(q m1 'SELECT count(*) FROM turnpolicy.schema_migrations WHERE version = 999')" = 0 ] &&
    ok "nothing of the failed migration was written" || not_ok "half-written migration"

# An applied file changed afterwards.
cp -r "$TP_ROOT/schema" "$d/s3"
echo "-- edited" >>"$d/s3/$(ls "$d/s3" | grep -m1 '^0*1_.*\.sql$')"
"$tp" migrate --database "$(conn m1)" --schema-dir "$d/s3" >"$d/out" 2>&1
[ $? = 2 ] && grep -q 'changed after it was applied' "$d/out" &&
    ok "an edited applied migration is refused" || not_ok "edited migration" "$(cat "$d/out")"

# The database is newer than the tool (it has a version the files lack).
q m1 "INSERT INTO turnpolicy.schema_migrations (version, name, sha256) VALUES (9999, '9999_future.sql', repeat('0', 64))" >/dev/null
"$tp" migrate --database "$(conn m1)" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1
[ $? = 2 ] && grep -q 'newer than this turnpolicy' "$d/out" &&
    ok "a database newer than the tool is refused" || not_ok "newer database" "$(cat "$d/out")"
q m1 "DELETE FROM turnpolicy.schema_migrations WHERE version = 9999" >/dev/null

# A half-applied set: a later version recorded without an earlier one.
if [ "$nfiles" -ge 2 ]; then
    first=$(q m1 'SELECT min(version) FROM turnpolicy.schema_migrations')
    q m1 "DELETE FROM turnpolicy.schema_migrations WHERE version = $first" >/dev/null
    "$tp" migrate --database "$(conn m1)" --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1
    [ $? = 2 ] && grep -q 'half-applied' "$d/out" &&
        ok "a half-applied set is refused" || not_ok "half-applied" "$(cat "$d/out")"
fi

# Two migrators at once serialize on the advisory lock.
"$tp" migrate --database "$(conn m2)" --schema-dir "$TP_ROOT/schema" >"$d/a" 2>&1 &
pa=$!
"$tp" migrate --database "$(conn m2)" --schema-dir "$TP_ROOT/schema" >"$d/b" 2>&1
rb=$?
wait $pa
ra=$?
na=$(sed -n 's/^applied \([0-9]*\).*/\1/p' "$d/a")
nb=$(sed -n 's/^applied \([0-9]*\).*/\1/p' "$d/b")
[ $ra = 0 ] && [ $rb = 0 ] && [ $((na + nb)) = "$nfiles" ] &&
    ok "two concurrent migrators apply each file once ($na + $nb)" ||
    not_ok "concurrent migrators" "$ra/$rb $(cat "$d/a" "$d/b")"

# Connection failure: a clear error, exit 2, no password shown.
"$tp" migrate --database "host=127.0.0.1 port=1 user=x password=sekrit-pw connect_timeout=3" \
    --schema-dir "$TP_ROOT/schema" >"$d/out" 2>&1
[ $? = 2 ] && grep -q 'cannot connect to PostgreSQL' "$d/out" && ! grep -q sekrit-pw "$d/out" &&
    ok "connection failure is clear and shows no password" || not_ok "connect failure" "$(cat "$d/out")"

# database_url from the configuration file.
printf 'database_url = "%s"\n' "$(conn m3)" >"$d/tp.conf"
check "database_url from the configuration is used" \
    "$tp" --config "$d/tp.conf" migrate --schema-dir "$TP_ROOT/schema"
# Without --schema-dir: a binary in a build tree finds the tree's schema/
# (what a newcomer runs before `make install`); $TP_SCHEMA_DIR wins.
out=$("$tp" migrate --check 2>&1)
case $out in
*" migrations in $TP_ROOT/schema are well-formed") ok "migrate from a build tree defaults to the tree's schema/" ;;
*) not_ok "migrate default schema dir in a build tree" "$out" ;;
esac
out=$(TP_SCHEMA_DIR=$d/none "$tp" migrate --check 2>&1)
case $out in
*"$d/none"*) ok "TP_SCHEMA_DIR overrides the default schema directory" ;;
*) not_ok "TP_SCHEMA_DIR" "$out" ;;
esac
exit "$tp_failed"
