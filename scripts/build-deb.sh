#!/bin/sh
# Builds target/debian/openvpn-motp_<version>-1_amd64.deb: motp.so, motpctl (both stripped), the
# example config (conffile), man pages motpctl(1) and motp.toml(5), shell completions, the docs,
# the state dir; and target/debian/openvpn-motp-dbgsym_<version>-1_amd64.ddeb, the binaries'
# debug symbols (see [package.metadata.deb] in motpctl/Cargo.toml).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p motp -p motpctl
# cargo-deb reads assets named target/release/... from the real target dir.
extra="$target/release/deb-extra"
rm -rf "$extra"
mkdir -p "$extra/man" "$extra/completions"
"$target/release/motpctl" man --out "$extra/man" >/dev/null
"$target/release/motpctl" completions bash > "$extra/completions/motpctl.bash"
"$target/release/motpctl" completions zsh > "$extra/completions/_motpctl"
"$target/release/motpctl" completions fish > "$extra/completions/motpctl.fish"
# No cargo-deb warning is let through (a missing doc, an asset glob matching nothing, a field it
# ignores): its output is kept and searched, and any line with "warning" fails the build.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rc=0
cargo deb -p motpctl --no-build --output target/debian/ >"$log" 2>&1 || rc=$?
cat "$log"
if [ "$rc" -ne 0 ]; then
    echo "build-deb: cargo deb failed (exit $rc)" >&2
    exit "$rc"
fi
if grep -qi 'warning' "$log"; then
    echo "build-deb: cargo-deb printed warnings; the package must build without any:" >&2
    grep -i 'warning' "$log" >&2
    exit 1
fi
