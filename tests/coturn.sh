# tests/coturn.sh - configuration files for the TURN side of tests that
# run turnpolicyd and Debian's stock coturn (turnserver; 4.6.1 on Debian
# 12 and 13, 4.18 on sid), on 127.0.0.0/8 only.
# shellcheck shell=bash disable=SC2154  # tp_tmpdir comes from lib.sh
#
# Source it after tests/lib.sh (and tests/redis.sh for
# tp_turnpolicyd_conf).  It writes what every such test writes the same
# way; whatever a test sets differently is given at the call, as lines,
# so that it stays visible there.  It gives:
#   tp_turnpolicyd_conf FILE DATABASE PORT PASSWORD_FILE NODE [LINE...]
#       write FILE (mode 0600) for turnpolicyd --config (and the CLI's
#       --config): database_url = "DATABASE", then a [turnpolicyd]
#       section: listen on 127.0.0.1:PORT, the AUTH password in
#       PASSWORD_FILE, the test Redis of tp_redis_start for the shared
#       counters, node = NODE, then each LINE ("key = value") as given.
#   tp_coturn_conf NAME PORT REALM [LINE...]
#       write $tp_tmpdir/NAME.conf (mode 0600) for turnserver -c: listen
#       on 127.0.0.1:PORT (UDP and TCP), relay from $TP_PEER_IP on the 100
#       ports from 50000 + (PORT % 100) * 100 (tests running side by side
#       rarely share them), default realm REALM, no TLS or DTLS, pid file
#       NAME.pid and log NAME.log in $tp_tmpdir, nothing on stdout; then
#       each LINE as given: how coturn authenticates, its admin CLI
#       (cli-ip/cli-port/cli-password, or no-cli), allow-loopback-peers,
#       relay-ip=::1, ...
#   tp_coturn_redis_auth PORT PASSWORD
#       print the lines that make coturn use long-term credentials with
#       both its Redis databases (userdb: the keys; statsdb: the session
#       reports) at 127.0.0.1:PORT, as coturn-plugin/turnserver.conf.snippet
#       points it at turnpolicyd: one LINE for tp_coturn_conf.  PASSWORD
#       ends up in the mode-0600 configuration file only.
#   tp_coturn_start NAME PORT
#       start turnserver -c $tp_tmpdir/NAME.conf with tp_bg NAME (output
#       in NAME.out, stopped on exit) and wait up to 10 s until
#       127.0.0.1:PORT accepts TCP; non-zero if it does not.

#   TP_COTURN_VERSION   the version of /usr/bin/turnserver (e.g. 4.6.1)
#   tp_coturn_at_least V   true if TP_COTURN_VERSION >= V
#   TP_PEER_IP          the loopback address relays and test peers use:
#       127.0.0.1, or 127.0.0.2 from coturn 4.13 on, which refuses to
#       relay to its own database hosts (turnpolicyd on 127.0.0.1).
#   With coturn >= 4.10, tp_coturn_conf adds `cli` when a cli-password
#   line is given (the CLI is off by default there).

TP_COTURN_VERSION=$(/usr/bin/turnserver --version 2>/dev/null |
    grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)*' | head -1)
tp_coturn_at_least() {
    [ -n "$TP_COTURN_VERSION" ] &&
    [ "$(printf '%s\n%s\n' "$1" "$TP_COTURN_VERSION" | sort -V | head -1)" = "$1" ]
}
if tp_coturn_at_least 4.13; then
    TP_PEER_IP=127.0.0.2
else
    TP_PEER_IP=127.0.0.1
fi

# turnutils_uclient 4.18 exits without deleting its allocation (4.6.1's
# sends Refresh lifetime=0), so the session - and its usage report -
# would last its whole lifetime.  Tests that relay with it give such a
# coturn this line: allocations end at most 10 s after their last refresh
# (the client's data phase is over well before).
tp_coturn_uclient_lines() {
    if tp_coturn_at_least 4.18; then
        echo "max-allocate-lifetime=10"
    fi
}

tp_turnpolicyd_conf() {
    local file=$1 db=$2 port=$3 pwfile=$4 node=$5
    shift 5
    if [ -z "${TP_REDIS_PORT:-}" ]; then
        echo "# tp_turnpolicyd_conf: no Redis (tp_redis_start first)" >&2
        return 1
    fi
    {
        printf 'database_url = "%s"\n\n' "$db"
        echo "[turnpolicyd]"
        echo "listen = 127.0.0.1:$port"
        echo "password_file = $pwfile"
        echo "redis = 127.0.0.1:$TP_REDIS_PORT"
        echo "redis_password_file = $TP_REDIS_PASSWORD_FILE"
        echo "node = $node"
        [ "$#" = 0 ] || printf '%s\n' "$@"
    } >"$file"
    chmod 600 "$file"
}

tp_coturn_conf() {
    local name=$1 port=$2 realm=$3 lo
    shift 3
    lo=$(( (port % 100) * 100 + 50000 ))
    {
        echo "listening-ip=127.0.0.1"
        echo "relay-ip=$TP_PEER_IP"
        echo "listening-port=$port"
        echo "min-port=$lo"
        echo "max-port=$((lo + 99))"
        echo "realm=$realm"
        echo "no-tls"
        echo "no-dtls"
        echo "pidfile=$tp_tmpdir/$name.pid"
        echo "log-file=$tp_tmpdir/$name.log"
        echo "simple-log"
        echo "no-stdout-log"
        [ "$#" = 0 ] || printf '%s\n' "$@" | grep -v '^$'
        if tp_coturn_at_least 4.10 && printf '%s\n' "$@" | grep -q '^cli-password='; then
            echo "cli"
        fi
    } >"$tp_tmpdir/$name.conf"
    chmod 600 "$tp_tmpdir/$name.conf"
}

tp_coturn_redis_auth() {
    local db="ip=127.0.0.1 port=$1 password=$2 connect_timeout=2"
    printf 'lt-cred-mech\nredis-userdb="%s"\nredis-statsdb="%s"\n' "$db" "$db"
}

tp_coturn_start() {
    tp_bg "$1" /usr/bin/turnserver -c "$tp_tmpdir/$1.conf"
    tp_wait_port "$2" 10
}
