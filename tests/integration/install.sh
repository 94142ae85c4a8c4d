#!/bin/bash
# install.sh - `make install` into a DESTDIR gives a usable library: the
# header, static and shared libraries, a pkg-config file and the CLI; a
# program built with `pkg-config --cflags --libs turnpolicy` links against
# the shared library and can only see the public tp_ symbols.  turnpolicyd
# is installed with its systemd unit (pointing at the installed binary)
# and the example configurations; `make uninstall` removes everything.
. "$(dirname "$0")/../lib.sh"

d=$tp_tmpdir
prefix=/opt/turnpolicy-test
# A build of its own (plain flags, even under `make asan`), from scratch.
if make -C "$TP_ROOT" --no-print-directory BUILD="$d/build" install \
        PREFIX="$prefix" DESTDIR="$d/root" >"$d/install.out" 2>&1; then
    ok "make install PREFIX=$prefix DESTDIR=..."
else
    not_ok "make install" "$(tail -3 "$d/install.out")"
    exit 1
fi
root=$d/root$prefix
for f in include/turnpolicy.h lib/libturnpolicy.a lib/libturnpolicy.so \
         lib/libturnpolicy.so.0 lib/pkgconfig/turnpolicy.pc bin/turnpolicy \
         bin/turnpolicyd lib/systemd/system/turnpolicyd.service \
         share/turnpolicy/examples/turnpolicyd.conf.example \
         share/turnpolicy/examples/turnserver.conf.snippet \
         share/turnpolicy/examples/nginx.conf.example \
         lib/nginx/modules/ngx_http_turnpolicy_module.so; do
    [ -e "$root/$f" ] && ok "installed $f" || not_ok "installed $f"
done
v=$("$root/bin/turnpolicyd" --version 2>&1)
want=$(for part in MAJOR MINOR PATCH; do
           sed -n "s/^#define TP_VERSION_$part *\([0-9]*\).*/\1/p" \
               "$TP_ROOT/policy/include/turnpolicy.h"
       done | paste -sd.)
[ "$v" = "turnpolicyd $want" ] &&
    ok "the installed turnpolicyd runs ($v)" || not_ok "installed turnpolicyd runs" "$v"
unit=$root/lib/systemd/system/turnpolicyd.service
if grep -qx "ExecStart=$prefix/bin/turnpolicyd --config /etc/turnpolicy/turnpolicy.conf" "$unit" &&
   [ "$(stat -c %a "$unit")" = 644 ]; then
    ok "the systemd unit starts $prefix/bin/turnpolicyd (mode 644)"
else
    not_ok "systemd unit ExecStart" "$(grep ExecStart "$unit") mode $(stat -c %a "$unit")"
fi

cat >"$d/hello.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <turnpolicy.h>
int main(void) {
    char key[TP_LTKEY_HEX_LEN + 1];
    tp_error err;
    if (tp_longterm_key("gorst", "north.gov", "hero", key, &err) != TP_OK)
        return 1;
    puts(key);
    return strcmp(tp_reason(TP_EEXPIRED), "expired") != 0;
}
C
pc="$root/lib/pkgconfig"
# The .pc names the final prefix; point the compiler at the DESTDIR copy.
flags=$(PKG_CONFIG_PATH=$pc pkg-config --define-variable=prefix="$root" \
        --define-variable=libdir="$root/lib" \
        --define-variable=includedir="$root/include" --cflags --libs turnpolicy)
if cc -o "$d/hello" "$d/hello.c" $flags >"$d/cc.out" 2>&1; then
    ok "a program builds with pkg-config --cflags --libs turnpolicy"
else
    not_ok "pkg-config build" "$(head -3 "$d/cc.out")"
fi
out=$(LD_LIBRARY_PATH="$root/lib" "$d/hello")
[ "$out" = 7da2270ccfa49786e0115366d3a3d14d ] && ok "it runs against the shared library" ||
    not_ok "runs against the shared library" "$out"
# Only tp_* symbols are exported (internal tp__ helpers stay hidden).
bad=$(nm -D --defined-only "$root/lib/libturnpolicy.so" | awk '{print $3}' |
      grep -v '^tp_' | grep -v '^_' || true)
hidden=$(nm -D --defined-only "$root/lib/libturnpolicy.so" | awk '{print $3}' | grep '^tp__' || true)
[ -z "$bad$hidden" ] && ok "only public tp_ symbols are exported" ||
    not_ok "exported symbols" "$bad $hidden"

if make -C "$TP_ROOT" --no-print-directory BUILD="$d/build" uninstall \
        PREFIX="$prefix" DESTDIR="$d/root" >"$d/uninstall.out" 2>&1; then
    left=$(find "$d/root" ! -type d | sed "s|^$d/root||")
    [ -z "$left" ] && ok "make uninstall removes every installed file" ||
        not_ok "make uninstall" "left: $(echo "$left" | tr '\n' ' ')"
else
    not_ok "make uninstall" "$(tail -3 "$d/uninstall.out")"
fi
exit "$tp_failed"
