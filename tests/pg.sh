# tests/pg.sh - a throwaway PostgreSQL (15 or newer) for integration tests.
# shellcheck shell=bash disable=SC2034,SC2120,SC2154
#
# Source it after tests/lib.sh.  It gives:
#   tp_pg_start          initdb + start a server on 127.0.0.1 (free port);
#                        returns non-zero (and prints why) if it cannot
#   tp_pg_stop           stop it (pg_ctl stop -m immediate) and remove its
#                        files; also runs on exit, whatever happens
#   tp_pg_psql ARGS...   psql as the superuser over the server's socket,
#                        quiet, -X, ON_ERROR_STOP, no .psqlrc
#   tp_pg_superuser_db [DBNAME]   print a libpq connection string for the
#                        superuser over TCP: "$TP_PG_CONN dbname=DBNAME
#                        passfile=$tp_tmpdir/pgpass" (DBNAME: postgres if
#                        not given).  The password is only in that passfile
#                        (mode 0600), which the first call writes; a test
#                        may append its own roles' lines to it
# and, once started, these variables:
#   TP_PG_PORT           the TCP port on 127.0.0.1
#   TP_PG_SOCKDIR        the unix socket directory (mode 0700)
#   TP_PG_SUPERUSER      "postgres"
#   TP_PG_PASSWORD       the superuser's password (TCP uses scram-sha-256;
#                        the socket uses trust, and only its owner can enter it)
#   TP_PG_DIR            the server's directory (data/, log, socket)
#   TP_PG_CONN           "host=127.0.0.1 port=... user=postgres" (TCP)
#   TP_PG_STOP_CMD, TP_PG_START_CMD  shell commands that stop the server
#                        (pg_ctl -m fast) and start it again on the same
#                        port and socket (failure tests; usable from a
#                        child process; run as the data directory's owner)
#   PGHOST PGPORT PGUSER exported for psql and libpq (socket); PGDATABASE
#                        is left to the caller
#
# initdb refuses to run as root, so when uid is 0 the server runs as the
# "postgres" user (runuser) in its own mktemp -d directory, since
# $tp_tmpdir (mode 0700, root) is closed to it.  Otherwise it lives in
# $tp_tmpdir/pg.  Durability is off (fsync, full_page_writes,
# synchronous_commit): the data is thrown away anyway.

# The server's binaries: $TP_PG_BIN if set, else the highest
# /usr/lib/postgresql/NN/bin that has initdb (Debian 12 ships 15,
# Debian 13 17; several may be installed side by side).
tp__pg_find_bin() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] || continue
        best="$best$d
"
    done
    printf '%s' "$best" | sort -V | tail -1
}
TP_PG_BIN=${TP_PG_BIN:-$(tp__pg_find_bin)}
TP_PG_SUPERUSER=postgres
TP_PG_DIR=""
TP_PG_PORT=""
TP_PG_SOCKDIR=""
TP_PG_PASSWORD=""
TP_PG_CONN=""
TP_PG_STOP_CMD=""
TP_PG_START_CMD=""
tp__pg_running=0

# Run a server-side command as the user that owns the data directory.
tp__pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

tp_pg_start() {
    local pw pgctl
    if [ ! -x "$TP_PG_BIN/initdb" ]; then
        echo "# no PostgreSQL server binaries in ${TP_PG_BIN:-/usr/lib/postgresql/*/bin} (install the postgresql package, or set TP_PG_BIN)" >&2
        return 1
    fi
    if [ "$(id -u)" = 0 ]; then
        TP_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/turnpolicy-pg.XXXXXX") || return 1
        chown postgres: "$TP_PG_DIR"
    else
        TP_PG_DIR="$tp_tmpdir/pg"
        mkdir -p "$TP_PG_DIR"
    fi
    chmod 700 "$TP_PG_DIR"
    TP_PG_SOCKDIR="$TP_PG_DIR/sock"
    tp__pg_as mkdir -m 700 "$TP_PG_SOCKDIR"
    TP_PG_PASSWORD="tp-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    pw="$TP_PG_DIR/pwfile"
    (umask 077; printf '%s\n' "$TP_PG_PASSWORD" >"$pw")
    [ "$(id -u)" = 0 ] && chown postgres: "$pw"
    if ! tp__pg_as "$TP_PG_BIN/initdb" -D "$TP_PG_DIR/data" \
            -U "$TP_PG_SUPERUSER" --pwfile="$pw" -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync \
            >"$TP_PG_DIR/initdb.log" 2>&1; then
        echo "# initdb failed:" >&2
        sed 's/^/#   /' "$TP_PG_DIR/initdb.log" | tail -10 >&2
        return 1
    fi
    rm -f "$pw"
    TP_PG_PORT=$(tp_free_port)
    # The same settings as the -o options below, for a plain `pg_ctl
    # start` (TP_PG_START_CMD) to come back on the same port and socket.
    tp__pg_as sh -c "cat >>'$TP_PG_DIR/data/postgresql.conf'" <<CONF
port = $TP_PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TP_PG_SOCKDIR'
CONF
    pgctl="$TP_PG_BIN/pg_ctl -D $TP_PG_DIR/data -l $TP_PG_DIR/server.log -w -t 30 -s"
    [ "$(id -u)" = 0 ] && pgctl="runuser -u postgres -- $pgctl"
    TP_PG_STOP_CMD="$pgctl -m fast stop"
    TP_PG_START_CMD="$pgctl start"
    # Stop at exit from here on, even if start fails half-way.
    tp__pg_running=1
    if ! tp__pg_as "$TP_PG_BIN/pg_ctl" -D "$TP_PG_DIR/data" \
            -l "$TP_PG_DIR/server.log" -w -t 30 -s \
            -o "-c listen_addresses=127.0.0.1 -p $TP_PG_PORT" \
            -o "-c unix_socket_directories='$TP_PG_SOCKDIR'" \
            -o "-c unix_socket_permissions=0700" \
            -o "-c fsync=off -c full_page_writes=off" \
            -o "-c synchronous_commit=off -c max_connections=50" \
            start >"$TP_PG_DIR/pg_ctl.log" 2>&1; then
        echo "# PostgreSQL did not start:" >&2
        tail -10 "$TP_PG_DIR/server.log" 2>/dev/null | sed 's/^/#   /' >&2
        return 1
    fi
    export PGHOST="$TP_PG_SOCKDIR" PGPORT="$TP_PG_PORT"
    export PGUSER="$TP_PG_SUPERUSER"
    TP_PG_CONN="host=127.0.0.1 port=$TP_PG_PORT user=$TP_PG_SUPERUSER"
    return 0
}

tp_pg_stop() {
    if [ "$tp__pg_running" = 1 ] && [ -n "$TP_PG_DIR" ] &&
       [ -f "$TP_PG_DIR/data/postmaster.pid" ]; then
        tp__pg_as "$TP_PG_BIN/pg_ctl" -D "$TP_PG_DIR/data" -m immediate \
            -w -t 20 -s stop >/dev/null 2>&1
    fi
    tp__pg_running=0
    if [ -n "$TP_PG_DIR" ] && [ -d "$TP_PG_DIR" ]; then
        if [ "${TP_KEEP_TMP:-0}" = 1 ]; then
            echo "# kept $TP_PG_DIR" >&2
        else
            rm -rf "$TP_PG_DIR"
        fi
    fi
    TP_PG_DIR=""
}

tp_pg_psql() {
    PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" \
        psql -X -q -v ON_ERROR_STOP=1 "$@"
}

tp_pg_superuser_db() {
    local passfile="$tp_tmpdir/pgpass"
    if [ ! -e "$passfile" ]; then
        (umask 077
         printf '127.0.0.1:%s:*:%s:%s\n' "$TP_PG_PORT" "$TP_PG_SUPERUSER" \
             "$TP_PG_PASSWORD" >"$passfile")
    fi
    echo "$TP_PG_CONN dbname=${1:-postgres} passfile=$passfile"
}

# Chain tp_pg_stop in front of whatever the EXIT trap already does
# (tp_cleanup from lib.sh, or another helper's chain).
tp__pg_chain_exit() {
    local prev
    prev=$(trap -p EXIT)
    if [ -n "$prev" ]; then
        eval "set -- $prev"
        prev=$3
    fi
    case "$prev" in
    *tp_pg_stop*) return 0 ;;
    esac
    # shellcheck disable=SC2064
    trap "tp_pg_stop; ${prev:-:}" EXIT
}
tp__pg_chain_exit
