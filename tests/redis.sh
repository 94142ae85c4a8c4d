# tests/redis.sh - a throwaway Redis 7 for integration tests.
#
# Source it after tests/lib.sh.  tp_redis_start starts redis-server on
# 127.0.0.1 on a free port, with a random password and no persistence, in
# $tp_tmpdir/redis; it is always stopped on exit.  It sets
#   TP_REDIS_PORT, TP_REDIS_PASSWORD
#   TP_REDIS_PASSWORD_FILE  the password and a newline, in a file (mode
#                        0600), for the *_password_file settings of
#                        turnpolicyd, the nginx module and the CLI
#   TP_REDIS_STOP_CMD, TP_REDIS_START_CMD  shell commands that stop it and
#                        bring it back on the same port (failure tests;
#                        usable from a child process)

TP_REDIS_PORT=""
TP_REDIS_PASSWORD=""
TP_REDIS_PASSWORD_FILE=""
TP_REDIS_STOP_CMD=""
TP_REDIS_START_CMD=""

tp_redis_start() {
    local dir="$tp_tmpdir/redis"
    TP_REDIS_PORT=$(tp_free_port)
    TP_REDIS_PASSWORD="r-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    mkdir -p "$dir"
    TP_REDIS_PASSWORD_FILE="$dir/password"
    (umask 077; printf '%s\n' "$TP_REDIS_PASSWORD" >"$TP_REDIS_PASSWORD_FILE")
    cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $TP_REDIS_PORT
requirepass $TP_REDIS_PASSWORD
save ""
appendonly no
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
CONF
    chmod 600 "$dir/redis.conf"
    TP_REDIS_START_CMD="/usr/bin/redis-server $dir/redis.conf"
    TP_REDIS_STOP_CMD="kill \$(cat $dir/redis.pid) && while [ -e $dir/redis.pid ]; do sleep 0.05; done"
    tp__redis_chain_exit
    $TP_REDIS_START_CMD >/dev/null && tp_wait_port "$TP_REDIS_PORT" 10
}

tp_redis_stop() {
    local pidf="$tp_tmpdir/redis/redis.pid"
    [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
    return 0
}

tp__redis_chain_exit() {
    local prev
    prev=$(trap -p EXIT)
    if [ -n "$prev" ]; then
        eval "set -- $prev"
        prev=$3
    fi
    case "$prev" in
    *tp_redis_stop*) return 0 ;;
    esac
    # shellcheck disable=SC2064
    trap "tp_redis_stop; ${prev:-:}" EXIT
}
