#!/bin/sh
# Builds the .deb, installs it with dpkg, checks what it installed, and removes it cleanly.
# Refuses to run where openvpn-motp is already installed (it would replace the admin's package).
set -eu
cd "$(dirname "$0")/.."
if dpkg-query -W -f='${Status}' openvpn-motp 2>/dev/null | grep -q "install ok installed"; then
    echo "deb-test: openvpn-motp is installed on this machine; not touching it" >&2
    exit 2
fi
scripts/build-deb.sh
deb="$(ls -t target/debian/openvpn-motp_*.deb | head -n1)"
fail() { echo "deb-test: $*" >&2; dpkg -P openvpn-motp >/dev/null 2>&1 || true; exit 1; }

dpkg -i "$deb" >/dev/null
motpctl --version | grep -q '^motpctl ' || fail "motpctl --version"
[ -f /usr/lib/x86_64-linux-gnu/openvpn/plugins/motp.so ] || fail "plugin not installed"
[ "$(readlink /usr/lib/openvpn/motp.so)" = /usr/lib/x86_64-linux-gnu/openvpn/plugins/motp.so ] || fail "/usr/lib/openvpn/motp.so link"
[ "$(stat -c %a:%G /etc/openvpn/motp.toml)" = "640:nogroup" ] || fail "motp.toml mode/group: $(stat -c %a:%G /etc/openvpn/motp.toml)"
[ "$(stat -c %a:%U /var/lib/openvpn-motp)" = "700:nobody" ] || fail "state dir: $(stat -c %a:%U /var/lib/openvpn-motp)"
[ -f /usr/share/man/man1/motpctl.1.gz ] || [ -f /usr/share/man/man1/motpctl.1 ] || fail "motpctl(1)"
[ -f /usr/share/man/man5/motp.toml.5.gz ] || [ -f /usr/share/man/man5/motp.toml.5 ] || fail "motp.toml(5)"
[ -f /usr/share/bash-completion/completions/motpctl ] || fail "bash completion"
dpkg-query -W -f='${Conffiles}' openvpn-motp | grep -q /etc/openvpn/motp.toml || fail "motp.toml is not a conffile"

# Stripped binaries: no debug info and no symbol table (only the dynamic symbols; the 34-byte
# .debug_gdb_scripts that rustc puts in a loaded segment stays), and well under 20 MB installed
# (it was ~80 MB with the release profile's debug info); the symbols are in the -dbgsym package.
plugin=/usr/lib/x86_64-linux-gnu/openvpn/plugins/motp.so
for bin in /usr/bin/motpctl "$plugin"; do
    sections="$(readelf -S --wide "$bin")" || fail "readelf $bin"
    if echo "$sections" | grep -qE '\.(debug_info|debug_line|symtab) '; then
        fail "$bin is not stripped: $(echo "$sections" | grep -oE '\.(debug_[a-z]+|symtab) ' | tr -d '\n')"
    fi
done
size_kib="$(dpkg-query -W -f='${Installed-Size}' openvpn-motp)"
[ "$size_kib" -lt 20480 ] || fail "installed size ${size_kib} KiB, must be under 20 MB"
dbgsym="$(ls -t target/debian/openvpn-motp-dbgsym_*.ddeb | head -n1)"
dpkg-deb -c "$dbgsym" | grep '/usr/lib/debug/.build-id/.*\.debug$' >/dev/null || fail "no debug symbols in $dbgsym"

# The docs: README, every docs/*.md and the example config, as in the repository, and every
# relative link from the installed README and docs to another doc (.md) or the example config
# (.toml) leads to an installed file. (Links to source files, e.g. tests/*.rs, point into the
# repository, which is not installed.)
doc=/usr/share/doc/openvpn-motp
for f in README.md docs/*.md conf/motp.toml; do
    cmp -s "$f" "$doc/$f" || fail "$doc/$f missing or not the repository's $f"
done
for page in "$doc/README.md" "$doc"/docs/*.md; do
    for link in $(grep -oE '\]\([^)#[:space:]]*' "$page" | sed 's/^](//' | grep -E '\.(md|toml)$' | grep -vE '^[a-z]+:'); do
        [ -e "$(dirname "$page")/$link" ] || fail "$page links to $link, which is not installed"
    done
done
# The hidden --now (a test hook) exists in debug builds only: the release motpctl rejects it,
# so no clock an admin types can change what status or unlock see (issue 12).
rc=0; out="$(motpctl status --now=4102444800 -c /etc/openvpn/motp.toml 2>&1)" || rc=$?
{ [ "$rc" -eq 2 ] && echo "$out" | grep -q "unexpected argument '--now'"; } || fail "release motpctl accepts --now (exit $rc): $out"
# The shipped config must pass the tool's check (exit 0 or 1 = warnings only, e.g. no NTP here).
rc=0; motpctl check-config /etc/openvpn/motp.toml --no-clock-check >/dev/null || rc=$?
[ "$rc" -le 1 ] || fail "check-config exit $rc"

dpkg -r openvpn-motp >/dev/null
[ ! -e /usr/bin/motpctl ] || fail "motpctl left after remove"
[ ! -e /usr/lib/openvpn/motp.so ] || fail "plugin link left after remove"
[ -f /etc/openvpn/motp.toml ] || fail "remove must keep the conffile"
dpkg -P openvpn-motp >/dev/null
[ ! -e /etc/openvpn/motp.toml ] || fail "purge must remove the conffile"
[ ! -e /var/lib/openvpn-motp ] || fail "purge must remove the state dir"
echo "deb-test: $deb (${size_kib} KiB installed) installs, checks, removes and purges cleanly"
