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

# One closing line for the whole run: the cargo test results added up.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
