# tests/servers.sh - the policy's servers for an integration test, in one
# call: PostgreSQL (tests/pg.sh), Redis (tests/redis.sh) and the schema.
# shellcheck shell=bash
#
# Source it after tests/lib.sh; it sources pg.sh and redis.sh itself.
#   tp_policy_servers [--no-redis]
#       start a throwaway PostgreSQL and (unless --no-redis) Redis on
#       127.0.0.1, both stopped on exit, and apply every migration in
#       schema/ to the superuser's database with `turnpolicy migrate`.
#       Sets db (the superuser conninfo, for turnpolicy.conf and the
#       CLI) and prints one TAP line: "ok - ..." naming the servers, or
#       "not ok - ..." with the reason, then exits 1: nothing in a test
#       can run without them.
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"
. "$(dirname "${BASH_SOURCE[0]}")/redis.sh"

tp_policy_servers() {
    local what
    if ! tp_pg_start; then
        not_ok "PostgreSQL starts"
        exit 1
    fi
    what="PostgreSQL on 127.0.0.1:$TP_PG_PORT"
    if [ "${1:-}" != --no-redis ]; then
        if ! tp_redis_start; then
            not_ok "Redis starts" "$(tail -5 "$tp_tmpdir/redis/redis.log" 2>/dev/null)"
            exit 1
        fi
        what="$what, Redis on 127.0.0.1:$TP_REDIS_PORT"
    fi
    db=$(tp_pg_superuser_db)
    if ! "$TP_BIN/turnpolicy" migrate --database "$db" \
            --schema-dir "$TP_ROOT/schema" >"$tp_tmpdir/migrate.out" 2>&1; then
        not_ok "migrate" "$(cat "$tp_tmpdir/migrate.out")"
        exit 1
    fi
    ok "$what, schema applied"
}
