#!/bin/bash
# scripts/compat.sh - the compatibility matrix (`make compat`): build and
# test this tree on each Debian release it supports, and print a lane x
# suite matrix ending with "N passed, N failed".
#
# Lanes (COMPAT_LANES, default "debian12 trixie sid"):
#   debian12  this machine as it is (Debian 12), the whole `make check`
#   trixie    a Debian 13 chroot, the whole `make check` on a copy of the
#             tree (PostgreSQL 17, hiredis 1.2, libjwt 1.17, nginx 1.26)
#   sid       a Debian unstable chroot with the newest coturn and nginx
#             Debian has (4.18 and 1.30 when written): the build, the unit
#             tests and the turnpolicyd, enforcer and nginx integration
#             suites, run with that coturn's own turnutils
# A lane's versions are read from the chroot, never assumed.
#
# Chroots are made with `debootstrap --variant=minbase` from Debian's
# mirror (COMPAT_MIRROR, default the one this machine's apt uses) and
# kept under COMPAT_DIR (default build/compat; /var/cache/turnpolicy-compat
# keeps them across clones).  Each run refreshes their packages, copies the
# tree (tracked and untracked-but-not-ignored files) to /root/turnpolicy in
# the chroot, mounts proc, dev, dev/pts and dev/shm, and unmounts them
# whatever happens.  Servers in a chroot share this machine's loopback, as
# every test does.  Root only.
#
#   scripts/compat.sh [LANE...]      run lanes (default COMPAT_LANES)
#   scripts/compat.sh shell LANE     a shell in a lane's chroot (debugging)
#   scripts/compat.sh run LANE CMD   CMD in a fresh copy of the tree there
#
# Exit status 0 only if every lane ran and every suite passed.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
COMPAT_DIR=${COMPAT_DIR:-$root/build/compat}
case $COMPAT_DIR in
/*) ;;
*) COMPAT_DIR=$root/$COMPAT_DIR ;;
esac
COMPAT_LANES=${COMPAT_LANES:-debian12 trixie sid}
# The suites the sid lane runs (tests/integration/NAME.sh).
SID_SUITES=${SID_SUITES:-turnpolicyd turnpolicyd_more turnpolicyd_enforce nginx}

if [ "$(id -u)" -ne 0 ]; then
    echo "compat: needs root (debootstrap, chroot, mount)" >&2
    exit 2
fi

# The mirror this machine's apt uses for Debian, else deb.debian.org.
default_mirror() {
    local m
    m=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
            /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        awk '{print $2}' | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}
COMPAT_MIRROR=${COMPAT_MIRROR:-$(default_mirror)}
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "# installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1; } ||
        { echo "compat: cannot install debootstrap" >&2; exit 2; }
fi

mounted=()
umount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"
    done
    mounted=()
}
trap umount_all EXIT
trap 'umount_all; exit 130' INT TERM

mount_chroot() { # dir
    local c=$1
    mount -t proc proc "$c/proc" && mounted+=("$c/proc") &&
    mount --bind /dev "$c/dev" && mounted+=("$c/dev") &&
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$c/dev/pts" &&
        mounted+=("$c/dev/pts") &&
    mount -t tmpfs -o mode=1777 tmpfs "$c/dev/shm" && mounted+=("$c/dev/shm")
}

# In the chroot, with a clean environment.
in_chroot() { # dir, command...
    local c=$1
    shift
    chroot "$c" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        ${CI:+CI="$CI"} "$@"
}

# Make (once) and refresh the chroot for a Debian suite.
prepare_chroot() { # suite, dir
    local suite=$1 c=$2
    if [ ! -f "$c/.turnpolicy-ready" ]; then
        rm -rf "$c"
        mkdir -p "$(dirname "$c")"
        echo "# debootstrap $suite into $c (once)"
        debootstrap --variant=minbase "$suite" "$c" "$COMPAT_MIRROR" \
            >"$c.debootstrap.log" 2>&1 || {
            echo "# debootstrap failed; see $c.debootstrap.log"
            tail -5 "$c.debootstrap.log" | sed 's/^/#   /'
            return 1
        }
        # sid's Release may be past Valid-Until on a snapshot mirror.
        printf 'Acquire::Check-Valid-Until "false";\n' \
            >"$c/etc/apt/apt.conf.d/99turnpolicy-compat"
        # Packages must not start system services in the chroot.
        printf '#!/bin/sh\nexit 101\n' >"$c/usr/sbin/policy-rc.d"
        chmod 755 "$c/usr/sbin/policy-rc.d"
        touch "$c/.turnpolicy-ready"
    fi
    cp /etc/resolv.conf "$c/etc/resolv.conf" 2>/dev/null
    cp /etc/hosts "$c/etc/hosts" 2>/dev/null
    in_chroot "$c" apt-get update -qq >"$c.apt.log" 2>&1 &&
    in_chroot "$c" apt-get -y -qq upgrade >>"$c.apt.log" 2>&1 &&
    in_chroot "$c" apt-get install -y -qq --no-install-recommends \
        make git ca-certificates >>"$c.apt.log" 2>&1 || {
        echo "# apt in the $suite chroot failed; see $c.apt.log"
        tail -5 "$c.apt.log" | sed 's/^/#   /'
        return 1
    }
    # This machine's own trust additions (a company CA, a TLS-inspecting
    # egress proxy): what reaches the registries here must reach them from
    # the chroot too (npm, for the browser test, uses the system store).
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        mkdir -p "$c/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt \
            "$c/usr/local/share/ca-certificates/"
        in_chroot "$c" update-ca-certificates >>"$c.apt.log" 2>&1
    fi
    printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$c/etc/npmrc"
}

copy_tree() { # dir
    local dst=$1/root/turnpolicy
    rm -rf "$dst"
    mkdir -p "$dst"
    (cd "$root" && git ls-files -z -co --exclude-standard |
        tar --null -T - -cf -) | tar -C "$dst" -xf -
}

# Versions a lane was tested with, from its package database.
versions() { # dir or "" for this machine
    local c=${1:-/} p v out=""
    for p in coturn nginx postgresql libhiredis-dev libjwt-dev; do
        v=$(chroot "$c" dpkg-query -W -f='${Version}' "$p" 2>/dev/null)
        out="$out ${p%-dev}=${v:-none}"
    done
    echo "${out# }"
}

# Per lane: log, results ("suite passed failed" lines), seconds.
declare -A lane_secs lane_versions
suites_seen=()

record() { # lane, suite, passed, failed
    local s
    for s in "${suites_seen[@]}"; do
        [ "$s" = "$2" ] && break
    done
    [ "${s:-}" = "$2" ] || suites_seen+=("$2")
    echo "$2 $3 $4" >>"$COMPAT_DIR/$1.results"
}

# tests/run.sh's per-suite lines "NAME: N passed, N failed" into results.
collect() { # lane, log
    local name p f
    while read -r name p f; do
        record "$1" "$name" "$p" "$f"
    done < <(sed -nE 's/^([A-Za-z0-9_.-]+): ([0-9]+) passed, ([0-9]+) failed$/\1 \2 \3/p' "$2")
}

run_lane() { # lane
    local lane=$1 c log start rc suite
    log=$COMPAT_DIR/$lane.log
    : >"$COMPAT_DIR/$lane.results"
    : >"$log"
    start=$(date +%s)
    echo "# lane $lane: log in $log"
    case $lane in
    debian12)
        if ! grep -q '^VERSION_ID="12"' /etc/os-release; then
            echo "# this machine is not Debian 12" | tee -a "$log"
            record "$lane" lane 0 1
        else
            lane_versions[$lane]=$(versions "")
            (cd "$root" && make check BUILD=build/compat-native) >>"$log" 2>&1
            rc=$?
            collect "$lane" "$log"
            [ "$rc" -eq 0 ] || grep -q ' failed$' "$COMPAT_DIR/$lane.results" ||
                record "$lane" make-check 0 1
        fi
        ;;
    trixie|sid)
        c=$COMPAT_DIR/$lane
        if ! prepare_chroot "$lane" "$c" >>"$log" 2>&1; then
            tail -3 "$log"
            record "$lane" chroot 0 1
        elif ! mount_chroot "$c" >>"$log" 2>&1; then
            tail -3 "$log"
            record "$lane" mount 0 1
            umount_all
        else
            copy_tree "$c"
            if [ "$lane" = trixie ]; then
                in_chroot "$c" make -C /root/turnpolicy check >>"$log" 2>&1
                rc=$?
            else
                in_chroot "$c" sh -c 'cd /root/turnpolicy &&
                    scripts/install-deps.sh && make all tests &&
                    TP_SUITES="$1" tests/run.sh' sh "$SID_SUITES" \
                    >>"$log" 2>&1
                rc=$?
            fi
            lane_versions[$lane]=$(versions "$c")
            umount_all
            collect "$lane" "$log"
            if [ "$rc" -ne 0 ] && ! grep -q ' [1-9][0-9]*$' "$COMPAT_DIR/$lane.results"; then
                record "$lane" build 0 1
                grep -E 'error|E: ' "$log" | head -5 | sed 's/^/#   /'
            fi
        fi
        ;;
    *)
        echo "# unknown lane $lane (debian12, trixie, sid)"
        record "$lane" lane 0 1
        ;;
    esac
    lane_secs[$lane]=$(($(date +%s) - start))
    echo "# lane $lane: $(awk '{p+=$2; f+=$3} END {printf "%d passed, %d failed", p, f}' "$COMPAT_DIR/$lane.results") in ${lane_secs[$lane]} s"
}

if [ "${1:-}" = shell ]; then
    c=$COMPAT_DIR/${2:?lane}
    mount_chroot "$c" || exit 1
    chroot "$c" /bin/bash -l
    exit $?
fi
if [ "${1:-}" = run ]; then
    c=$COMPAT_DIR/${2:?lane}
    shift 2
    mount_chroot "$c" || exit 1
    copy_tree "$c"
    in_chroot "$c" sh -c 'cd /root/turnpolicy && "$@"' sh "$@"
    exit $?
fi

[ $# -gt 0 ] && COMPAT_LANES=$*
mkdir -p "$COMPAT_DIR"
# shellcheck disable=SC2086
set -- $COMPAT_LANES
for lane; do
    run_lane "$lane"
done

# The matrix: one row a suite, one column a lane.
echo
printf '%-24s' "suite \\ lane"
for lane; do printf ' %-14s' "$lane"; done
echo
total_p=0
total_f=0
for suite in "${suites_seen[@]}"; do
    printf '%-24s' "$suite"
    for lane; do
        read -r p f < <(awk -v s="$suite" '$1 == s {print $2, $3}' "$COMPAT_DIR/$lane.results")
        if [ -z "${p:-}" ]; then
            cell="-"
        elif [ "$f" -eq 0 ]; then
            cell="passed ($p)"
        else
            cell="FAILED ($f/$((p + f)))"
        fi
        printf ' %-14s' "$cell"
        total_p=$((total_p + ${p:-0}))
        total_f=$((total_f + ${f:-0}))
        p=""
        f=""
    done
    echo
done
echo
for lane; do
    echo "$lane: ${lane_versions[$lane]:-?}; ${lane_secs[$lane]:-?} s"
done
echo
echo "compat: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ] && [ "$total_p" -gt 0 ]
