#!/bin/sh
# Runs every test of the project. Needs root: the end-to-end tests start real OpenVPN servers,
# which open tun devices. Installs what the tests need (Debian packages) if it is missing.
set -eu
cd "$(dirname "$0")"
need=""
for tool in openvpn openssl valgrind redis-server sqlite3 setpriv prlimit fail2ban-regex; do
    command -v "$tool" >/dev/null 2>&1 || need="$need $tool"
done
[ -f /usr/include/openvpn/openvpn-plugin.h ] || need="$need openvpn"
# setpriv and prlimit come with util-linux, fail2ban-regex with fail2ban.
need="$(echo "$need" | sed 's/setpriv/util-linux/; s/prlimit/util-linux/; s/fail2ban-regex/fail2ban/')"
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
# The version matrix (tests/e2e_versions.rs): OpenVPN 2.7 (Debian sid) and 2.5 (bullseye) beside
# the system's 2.6, fetched once into target/ and reused. A suite that cannot be fetched leaves
# its reason in $versions/SUITE.failed; its tests then report themselves skipped, in
# $versions/skipped/, and the closing line counts them as skipped, not passed.
versions="${MOTP_TEST_OPENVPN_VERSIONS:-${CARGO_TARGET_DIR:-target}/openvpn-versions}"
mkdir -p "$versions"
rm -rf "$versions/skipped"
tested="system $(openvpn --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
for suite in sid bullseye; do
    rm -f "$versions/$suite.failed"
    if v="$(scripts/fetch-openvpn.sh "$suite" "$versions/$suite" 2>"$versions/$suite.err")"; then
        echo "openvpn-versions: $suite: $v"
        tested="$tested, $suite $(echo "$v" | awk '{ print $2 }')"
        rm -f "$versions/$suite.err"
    else
        mv "$versions/$suite.err" "$versions/$suite.failed"
        echo "openvpn-versions: SKIPPED: $suite could not be fetched: $(cat "$versions/$suite.failed")"
    fi
done

log="$(mktemp)"; rc_file="$(mktemp)"
trap 'rm -f "$log" "$rc_file"' EXIT
{ cargo test --workspace 2>&1; echo $? > "$rc_file"; } | tee "$log"
[ "$(cat "$rc_file")" = 0 ] || exit 1

# The SIGHUP lifecycle under valgrind: 1,000 dlopen/open/auth/close/dlclose cycles.
scripts/lifecycle-valgrind.sh 1000
# The Debian package: build, dpkg -i, check, remove, purge (skipped where it is installed for real).
if dpkg-query -W -f='${Status}' openvpn-motp 2>/dev/null | grep -q "install ok installed"; then
    echo "deb-test: skipped, openvpn-motp is installed on this machine"
else
    scripts/deb-test.sh
fi

# The version matrix's tests that did not run (cargo counted them as passed).
skipped=0
if [ -d "$versions/skipped" ] && [ -n "$(ls -A "$versions/skipped")" ]; then
    skipped="$(cat "$versions"/skipped/* | wc -l)"
    echo "version matrix: $skipped tests SKIPPED, their OpenVPN could not be fetched:"
    sed 's/^/  /' "$versions"/skipped/*
else
    echo "version matrix: OpenVPN $tested all tested"
fi
# One closing line for the whole run: the cargo test results added up.
awk -v skipped="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { if (skipped > 0) printf "tests: %d passed, %d failed, %d skipped\n", p - skipped, f, skipped
           else printf "tests: %d passed, %d failed\n", p, f }' "$log"
