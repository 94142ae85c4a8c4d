#!/bin/sh
# acs-hosts.sh - the upstream hosts a version of the ACS Calling Web SDK
# names, to compare with the "acs" preset (schema/*_acs_preset.sql,
# turnpolicy.acs_preset()) when a new SDK version ships.
#
#   scripts/acs-hosts.sh 2.0.0 1.46.1     (npm view @azure/communication-calling
#                                           dist-tags versions: the current GA)
#
# Fetches each package with `npm pack` into a temporary directory and
# prints, per version, the https:// service URLs of its public and Teams
# (Enterprise) service maps and telemetry collectors, then the host names
# that are not in the preset of the newest migration.  A maintainer then
# decides, per host, whether the SDK sends it through proxy.url (a new
# migration replacing turnpolicy.acs_preset() and calling
# turnpolicy.reapply_acs_preset()) or not (say why in its comment).
set -eu
[ $# -gt 0 ] || { echo "usage: $0 VERSION..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
preset=$(ls "$root"/schema/*_acs_preset.sql | tail -1)
grep -oE "^ +\('[^']+'" "$preset" | sed "s/^ *('//; s/'$//" | sort -u >"$tmp/preset"
for v in "$@"; do
    (cd "$tmp" && npm pack --silent "@azure/communication-calling@$v" >/dev/null)
    mkdir -p "$tmp/$v"
    tar -xzf "$tmp/azure-communication-calling-$v.tgz" -C "$tmp/$v"
    b="$tmp/$v/package/dist/sdk.bundle.js"
    echo "== @azure/communication-calling@$v: service maps"
    grep -oE '(Public|Enterprise)[A-Za-z_]*[:=]"https://[^"]*"' "$b" | sort -u
    grep -oE '(Public|PublicEUDB|Enterprise|EnterpriseEUDB):"https://[^"]*events[^"]*"' "$b" | sort -u
    grep -oE '"https://[a-z0-9.-]+\.(communication\.microsoft\.com|skype\.com|events\.data\.microsoft\.com)[^"]*"' "$b" | sort -u
    grep -oE 'https://[a-z0-9.-]+' "$b" | sed 's|https://||' | sort -u >"$tmp/$v.hosts"
    echo "== @azure/communication-calling@$v: named, not in the preset ($(basename "$preset"))"
    grep -E '(communication\.microsoft\.com|skype\.com|events\.data\.microsoft\.com|teams\.microsoft\.com)$' \
        "$tmp/$v.hosts" | comm -23 - "$tmp/preset" || true
done
