#!/bin/bash
# store.sh - policy store and SQL issuing throughput against a throwaway
# PostgreSQL 15 (started and always stopped here; run by tests/bench/run.sh,
# i.e. `make bench`, never by `make check`).
#
#  1. store_bench.c (compiled here: it needs a database, so the Makefile's
#     bench_* rule, whose binaries run bare, does not build it): decisions
#     from the store's snapshot (tp_store_verify) vs the bare credential
#     check (tp_credential_verify), 1 and 2 threads.  Goal >= 0.8x.
#  2. pgbench: turnpolicy.issue_credential() calls/s as a LOGIN role that
#     is a member of turnpolicy_issuer, vs `SELECT 1` (the floor of one
#     round trip through the same connection) as the named baseline, with
#     1 and 2 clients (-M prepared).  Rounds alternate; medians printed.
#
# Provisioning: realm bench.test, users user1..user$NUSERS (one INSERT,
# one transaction), one signing secret from rotate_secret().
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=tests/pg.sh
. "$(dirname "$0")/../pg.sh"

NUSERS=${NUSERS:-10000}
PG_ROUNDS=${PG_ROUNDS:-3}  # alternating pgbench rounds per client count
PG_SECONDS=${PG_SECONDS:-2}
PGBENCH="$TP_PG_BIN/pgbench"
d=$tp_tmpdir
cd "$TP_ROOT" || exit 1

fail() {
    echo "store bench: $*" >&2
    exit 1
}

[ -x "$PGBENCH" ] || fail "no pgbench in $TP_PG_BIN"
# The static library with the Makefile's flags, then the driver.
make -s "$BUILD/lib/libturnpolicy.a" "$BUILD/bin/turnpolicy" ||
    fail "cannot build the library"
pkgs="openssl libjwt jansson libpq hiredis"
# shellcheck disable=SC2046,SC2086 # word splitting of $pkgs and flags
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
    -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O2 -g \
    -pthread -Ipolicy/include $(pkg-config --cflags $pkgs) \
    -o "$d/store_bench" tests/bench/store_bench.c \
    "$BUILD/lib/libturnpolicy.a" -pthread $(pkg-config --libs $pkgs) ||
    fail "cannot compile tests/bench/store_bench.c"

tp_pg_start || fail "PostgreSQL did not start"
db="host=$TP_PG_SOCKDIR port=$TP_PG_PORT user=$TP_PG_SUPERUSER dbname=postgres"
"$TP_BIN/turnpolicy" migrate --database "$db" \
    --schema-dir "$TP_ROOT/schema" >"$d/migrate.out" 2>&1 ||
    fail "migrate: $(cat "$d/migrate.out")"
t0=$(date +%s.%N)
tp_pg_psql -d postgres -v nusers="$NUSERS" >"$d/provision.out" 2>&1 <<'SQL' ||
BEGIN;
SELECT turnpolicy.create_realm('bench.test');
SELECT turnpolicy.rotate_secret('bench.test');
INSERT INTO turnpolicy.users (realm, user_id)
SELECT 'bench.test', 'user' || i FROM generate_series(1, :nusers) AS i;
COMMIT;
CREATE ROLE bench_issuer LOGIN IN ROLE turnpolicy_issuer;
ANALYZE;
SQL
    fail "provisioning: $(cat "$d/provision.out")"
awk -v n="$NUSERS" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN {
    printf "# provisioned 1 realm, %d users, 1 signing secret in %.1f s\n",
        n, t1 - t0 }'

# 1. The store's snapshot vs the bare check.
${TP_BENCH_WRAP:-} "$d/store_bench" "$db" || fail "store_bench failed"

# 2. SQL issuing through pgbench, as the issuer role over the socket.
cat >"$d/issue.sql" <<SQL
\set uid random(1, $NUSERS)
SELECT * FROM turnpolicy.issue_credential('bench.test', 'user' || :uid, 600);
SQL
echo 'SELECT 1;' >"$d/select1.sql"

# pgbench_tps SCRIPT CLIENTS: tps of one fixed-time run, or fail.
pgbench_tps() {
    local out="$d/pgbench.out" tps
    "$PGBENCH" -h "$TP_PG_SOCKDIR" -p "$TP_PG_PORT" -U bench_issuer \
        -n -M prepared -T "$PG_SECONDS" -c "$2" -j "$2" -f "$1" postgres \
        >"$out" 2>&1 || fail "pgbench $(basename "$1"): $(tail -5 "$out")"
    grep -q 'number of failed transactions: 0 ' "$out" ||
        ! grep -q 'number of failed transactions' "$out" ||
        fail "pgbench $(basename "$1"): failed transactions: $(cat "$out")"
    tps=$(awk '/^tps = / { print $3; exit }' "$out")
    [ -n "$tps" ] || fail "pgbench $(basename "$1"): no tps line"
    echo "$tps"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

for c in 1 2; do
    : >"$d/issue.$c" && : >"$d/base.$c" && : >"$d/ratio.$c"
    for _ in $(seq "$PG_ROUNDS"); do
        b=$(pgbench_tps "$d/select1.sql" "$c") || exit 1
        i=$(pgbench_tps "$d/issue.sql" "$c") || exit 1
        echo "$b" >>"$d/base.$c"
        echo "$i" >>"$d/issue.$c"
        echo "$i $b" | awk '{ print $1 / $2 }' >>"$d/ratio.$c"
    done
    printf 'pg_issue_credential: %.0f calls/s (%d client%s), SELECT 1 baseline %.0f/s, ratio %.2fx (medians of %d x %d s pgbench runs)\n' \
        "$(median <"$d/issue.$c")" "$c" "$([ "$c" = 1 ] || echo s)" \
        "$(median <"$d/base.$c")" "$(median <"$d/ratio.$c")" \
        "$PG_ROUNDS" "$PG_SECONDS"
done
exit 0
