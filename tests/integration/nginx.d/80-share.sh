# 80-share: the directory the stores of one nginx's workers share
# (turnpolicy_share_dir, issue 13).  nginx instances of their own, each
# with its own prefix under $d/share-NAME, workers running as nobody when
# the test runs as root (so that the directory's owner is checked for
# real): by default the master makes a private /dev/shm/turnpolicy.XXXXXX,
# 0700, owned by the worker user, keeps it across a reload and removes it
# when it quits; "turnpolicy_share_dir off", one worker and nginx -t make
# nothing; an explicit PATH is used and left in place; nginx -t refuses a
# PATH that is missing or not a directory.  Sourced by nginx.sh.
# shellcheck shell=bash disable=SC2154,SC2015,SC2012

if [ "$(id -u)" = 0 ]; then
    sh_user=nobody sh_group=nogroup sh_user_line="user nobody nogroup;"
else
    sh_user=$(id -un) sh_group=$(id -gn) sh_user_line=""
fi
# The workers run as $sh_user: a password in the URL, not a passfile in $d.
(umask 077
 cat >"$d/share-tp.conf" <<CONF
database_url = "host=127.0.0.1 port=$TP_PG_PORT dbname=postgres user=nginx_reader password=$reader_pw connect_timeout=5"
jwt_issuer = https://backend.test
jwt_audience = turnpolicy
CONF
)
sh_shm() { find /dev/shm -maxdepth 1 -name "turnpolicy.*" 2>/dev/null | sort; }
sh_logged_dir() { # error log -> the share directory it names (first)
    sed -n 's/.*turnpolicy: share directory "\([^"]*\)".*/\1/p' "$1" | head -1
}

# sh_start NAME WORKERS HTTP-TEXT: an nginx with one "turnpolicy on"
# location; sets $sh_p (prefix), $sh_pid; waits until WORKERS policy
# stores are loaded (or 15 s).
sh_start() {
    local name=$1 workers=$2 port
    sh_p=$d/share-$name
    port=$(tp_free_port)
    mkdir -p "$sh_p/logs" "$sh_p/tmp"
    cat >"$sh_p/nginx.conf" <<CONF
load_module $so;
$sh_user_line
worker_processes $workers;
daemon off;
error_log $sh_p/logs/error.log info;
pid $sh_p/nginx.pid;
events { worker_connections 32; }
http {
    turnpolicy_config $d/share-tp.conf;
    $3
    resolver 127.0.0.1:$dns_port ipv6=off;
    access_log off;
    client_body_temp_path $sh_p/tmp/body;
    proxy_temp_path $sh_p/tmp/proxy;
    fastcgi_temp_path $sh_p/tmp/fastcgi;
    uwsgi_temp_path $sh_p/tmp/uwsgi;
    scgi_temp_path $sh_p/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location /t/ { turnpolicy on; return 404; }
    }
}
CONF
    tp_bg "share_$name" "${ngx_env[@]}" /usr/sbin/nginx -p "$sh_p" \
        -c "$sh_p/nginx.conf"
    eval "sh_pid=\$tp_pid_share_$name"
    tp_wait_port "$port" 10
    for _ in $(seq 150); do
        [ "$(grep -c 'policy store loaded' "$sh_p/logs/error.log" 2>/dev/null)" -ge "$workers" ] &&
            return 0
        sleep 0.1
    done
    return 1
}
# sh_quit: nginx -s quit's signal; 0 once the master has exited (10 s)
sh_quit() {
    kill -QUIT "$sh_pid" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$sh_pid" 2>/dev/null || { wait "$sh_pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    return 1
}
sh_workers() { ps -o pid= --ppid "$sh_pid" | tr -d ' '; }

# --- the default: a private directory under /dev/shm ----------------------
main_dir=$(sh_logged_dir "$ngx/logs/error.log")
shm_before=$(sh_shm)
if ! sh_start auto 2 ""; then
    not_ok "an nginx of 2 workers as $sh_user starts and loads the policy" \
        "$(grep -E 'error|emerg|alert' "$sh_p/logs/error.log" | tail -3)"
fi
sh_dir=$(sh_logged_dir "$sh_p/logs/error.log")
if [ ! -d /dev/shm ]; then
    # (then the rest of this section fails: it is about /dev/shm)
    grep -q 'mkdtemp("/dev/shm/turnpolicy.XXXXXX") failed' "$sh_p/logs/error.log" &&
        ok "no /dev/shm: a notice, and nginx runs without sharing" ||
        not_ok "no /dev/shm: a notice" "$(grep turnpolicy "$sh_p/logs/error.log" | head -3)"
fi
case $sh_dir in
/dev/shm/turnpolicy.??????)
    if [ -d "$sh_dir" ] &&
       [ "$(stat -c '%U:%G %a' "$sh_dir")" = "$sh_user:$sh_group 700" ]; then
        ok "default: the master makes $sh_dir, mode 0700, owned by the worker user ($sh_user:$sh_group)"
    else
        not_ok "default share directory" "$(ls -ld "$sh_dir" 2>&1)"
    fi ;;
*)
    not_ok "default: the master names its share directory in the error log" \
        "'$sh_dir'; $(grep turnpolicy "$sh_p/logs/error.log" | head -3)" ;;
esac
if [ -n "$main_dir" ] && [ -d "$main_dir" ] && [ "$main_dir" != "$sh_dir" ] &&
   [ "$(comm -13 <(echo "$shm_before") <(sh_shm))" = "$sh_dir" ]; then
    ok "each master its own directory (the suite's nginx: $main_dir); one made per start"
else
    not_ok "one directory per master" "main '$main_dir', this '$sh_dir', new: $(comm -13 <(echo "$shm_before") <(sh_shm) | tr '\n' ' ')"
fi
# What the stores put there (libturnpolicy): files base and lock, base
# mapped by every worker.
workers=$(sh_workers)
mapped=0
for w in $workers; do
    grep -qF "$sh_dir/base" "/proc/$w/maps" 2>/dev/null && mapped=$((mapped + 1))
done
if [ -f "$sh_dir/base" ] && [ -f "$sh_dir/lock" ] && [ "$mapped" = 2 ]; then
    ok "the stores share it: base and lock there, base mapped by both workers"
else
    not_ok "the stores share the directory" "$(ls -l "$sh_dir" 2>&1 | tr '\n' ' '); mapped by $mapped of: $workers"
fi
# A reload keeps the directory: the new workers get the same one.
n0=$(grep -c 'policy store loaded' "$sh_p/logs/error.log")
kill -HUP "$sh_pid"
for _ in $(seq 100); do
    [ "$(grep -c 'policy store loaded' "$sh_p/logs/error.log")" -ge $((n0 + 2)) ] && break
    sleep 0.1
done
if [ "$(grep -c "turnpolicy: share directory \"$sh_dir\"" "$sh_p/logs/error.log")" = 2 ] &&
   [ "$(grep -c 'turnpolicy: share directory' "$sh_p/logs/error.log")" = 2 ] &&
   [ -d "$sh_dir" ] && [ "$(comm -13 <(echo "$shm_before") <(sh_shm))" = "$sh_dir" ]; then
    ok "a reload keeps the same directory (no new one)"
else
    not_ok "reload keeps the directory" "$(grep 'share directory' "$sh_p/logs/error.log" | tail -2)"
fi
[ -f "$sh_dir/base" ] && [ -f "$sh_dir/lock" ] &&
    ok "... and its files" || not_ok "files after a reload" "$(ls "$sh_dir" 2>&1)"
if sh_quit && [ -n "$sh_dir" ] && [ ! -e "$sh_dir" ]; then
    ok "nginx quits: its directory is removed with its files"
else
    not_ok "the directory is removed when nginx quits" "$(ls -la "$sh_dir" 2>&1 | head -5)"
fi

# --- off, one worker: nothing made ---------------------------------------
shm_before=$(sh_shm)
sh_start off 2 "turnpolicy_share_dir off;" ||
    not_ok "an nginx with turnpolicy_share_dir off starts" "$(tail -3 "$sh_p/logs/error.log")"
if [ "$(sh_shm)" = "$shm_before" ] &&
   ! grep -q 'share directory' "$sh_p/logs/error.log"; then
    ok "turnpolicy_share_dir off: no directory made, none given to the stores"
else
    not_ok "turnpolicy_share_dir off makes nothing" "$(comm -13 <(echo "$shm_before") <(sh_shm))"
fi
sh_quit || not_ok "nginx (share off) quits"
sh_start one 1 "" ||
    not_ok "an nginx with one worker starts" "$(tail -3 "$sh_p/logs/error.log")"
if [ "$(sh_shm)" = "$shm_before" ] &&
   ! grep -q 'share directory' "$sh_p/logs/error.log"; then
    ok "worker_processes 1: no directory made (nothing to share)"
else
    not_ok "one worker makes nothing" "$(comm -13 <(echo "$shm_before") <(sh_shm))"
fi
sh_quit || not_ok "nginx (one worker) quits"
if "${ngx_env[@]}" /usr/sbin/nginx -t -p "$ngx" -c "$ngx/nginx.conf" >"$d/share-t.out" 2>&1 &&
   [ "$(sh_shm)" = "$shm_before" ]; then
    ok "nginx -t makes no directory"
else
    not_ok "nginx -t makes no directory" "$(tail -2 "$d/share-t.out")"
fi

# --- an explicit PATH: used as it is, never removed ------------------------
own=$(mktemp -d "${TMPDIR:-/tmp}/tp-share-test.XXXXXX")
chown "$sh_user:$sh_group" "$own"
chmod 700 "$own"
echo keep >"$own/operator-file"
sh_start path 2 "turnpolicy_share_dir $own;" ||
    not_ok "an nginx with turnpolicy_share_dir PATH starts" "$(tail -3 "$sh_p/logs/error.log")"
if [ "$(sh_logged_dir "$sh_p/logs/error.log")" = "$own" ] &&
   [ "$(sh_shm)" = "$shm_before" ]; then
    ok "turnpolicy_share_dir PATH: the stores get PATH, nothing is made"
else
    not_ok "explicit share directory" "$(grep 'share directory' "$sh_p/logs/error.log")"
fi
[ -f "$own/base" ] && ok "... and share it (base there)" ||
    not_ok "stores share PATH" "$(ls "$own" 2>&1)"
if sh_quit && [ -d "$own" ] && [ -f "$own/operator-file" ]; then
    ok "... and nginx leaves PATH and its files when it quits"
else
    not_ok "PATH left in place" "$(ls -la "$own" 2>&1)"
fi
rm -rf "$own"

# --- nginx -t refuses a PATH that cannot be one ----------------------------
bad "turnpolicy_share_dir naming a missing directory" \
    "\"turnpolicy_share_dir\" directive: \"$d/no-such-dir\" must be an existing directory, stat() failed (2: No such file or directory)" \
    "turnpolicy_share_dir $d/no-such-dir;"
bad "turnpolicy_share_dir naming a file" \
    "\"turnpolicy_share_dir\" directive: \"$d/share-tp.conf\" is not a directory" \
    "turnpolicy_share_dir $d/share-tp.conf;"
bad "a duplicate turnpolicy_share_dir" '"turnpolicy_share_dir" directive is duplicate' \
    "turnpolicy_share_dir off; turnpolicy_share_dir off;"
bad "turnpolicy_share_dir in a server" '"turnpolicy_share_dir" directive is not allowed here' \
    "server { listen 127.0.0.1:$(tp_free_port); turnpolicy_share_dir off; }"
