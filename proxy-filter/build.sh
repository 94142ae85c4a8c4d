#!/bin/sh
# proxy-filter/build.sh - build ngx_http_turnpolicy_module as a dynamic
# module for Debian's nginx (package nginx-dev), into
# $BUILD/nginx/ngx_http_turnpolicy_module.so (BUILD defaults to build).
#
# nginx modules must be compiled by nginx's own build system with the same
# configure flags as the nginx binary that loads them (--with-compat keeps
# the module ABI stable).  So: copy /usr/share/nginx/src, run ./configure
# with the flags Debian recorded in its conf_flags file plus
# --add-dynamic-module=proxy-filter, then `make -f objs/Makefile modules`.
# The configured tree is cached in $BUILD/nginx/tree and configured again
# only when the nginx sources, this script or proxy-filter/config change.
#
# Needs $BUILD/lib/libturnpolicy.a (make lib) and pkg-config for the
# library's dependencies.  NGINX_SRC overrides /usr/share/nginx/src.
# SAN (e.g. "-fsanitize=address,undefined" or "-fsanitize=thread") builds
# an instrumented module for `make asan` or `make tsan`; nginx must then
# run with the sanitizer runtimes preloaded (tests/integration/nginx.sh
# does).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) out=$BUILD/nginx ;;
*) out=$root/$BUILD/nginx ;;
esac
src=${NGINX_SRC:-/usr/share/nginx/src}
lib=$(dirname "$out")/lib/libturnpolicy.a
tree=$out/tree
so=ngx_http_turnpolicy_module.so

if [ ! -f "$src/conf_flags" ] || [ ! -x "$src/configure" ]; then
    echo "build.sh: $src is not an nginx source tree (install nginx-dev)" >&2
    exit 1
fi
if [ ! -f "$lib" ]; then
    echo "build.sh: $lib is missing (run make lib first)" >&2
    exit 1
fi
deps=$(pkg-config --libs openssl libjwt jansson libpq hiredis) || {
    echo "build.sh: pkg-config cannot find the library's dependencies" >&2
    exit 1
}

# What the configured tree depends on: reconfigure when it changes.
key=$(cat "$src/conf_flags" "$src/src/core/nginx.h" "$root/proxy-filter/config" \
          "$0" | cksum)
SAN=${SAN:-}
key="$key $lib $deps $SAN"

mkdir -p "$out"
if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$out/configured" 2>/dev/null)" != "$key" ]; then
    rm -rf "$tree" "$out/configured"
    cp -R "$src" "$tree"
    # conf_flags holds a bash array: NGX_CONF_FLAGS=( ... ).
    flags=$(bash -c ". '$src/conf_flags' && printf '%s\n' \"\${NGX_CONF_FLAGS[@]}\"")
    (
        cd "$tree"
        # One flag a line, none contains a newline; keep them as words.
        old_ifs=$IFS
        IFS='
'
        # shellcheck disable=SC2086
        set -- $flags
        IFS=$old_ifs
        TURNPOLICY_INC="$root/policy/include" \
        TURNPOLICY_LIBS="-Wl,--exclude-libs,libturnpolicy.a $lib $deps -pthread" \
            ./configure "$@" \
                --with-cc-opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -D_FORTIFY_SOURCE=2 -Wdate-time $SAN" \
                --with-ld-opt="-Wl,-z,relro -Wl,-z,now $SAN" \
                --add-dynamic-module="$root/proxy-filter"
    ) >"$out/configure.log" 2>&1 || {
        echo "build.sh: nginx ./configure failed; see $out/configure.log" >&2
        tail -20 "$out/configure.log" >&2
        exit 1
    }
    echo "$key" >"$out/configured"
fi

# nginx's Makefile does not know about libturnpolicy.a: relink every time.
# A make of its own: under `make -jN` the parent's jobserver is not passed
# down here, and make would say so with a "warning:" line.
rm -f "$tree/objs/$so"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$tree" -f objs/Makefile modules >"$out/make.log" 2>&1 || {
    echo "build.sh: building the module failed; see $out/make.log" >&2
    grep -E 'error|warning' "$out/make.log" | head -30 >&2
    exit 1
}
if grep -qE '^[^ ]+:[0-9]+(:[0-9]+)?: warning:' "$out/make.log"; then
    echo "build.sh: the module compiles with warnings:" >&2
    grep -A3 'warning:' "$out/make.log" >&2
    exit 1
fi
cp "$tree/objs/$so" "$out/$so.tmp"
mv "$out/$so.tmp" "$out/$so"
echo "built $out/$so"
