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
cargo deb -p motpctl --no-build --output target/debian/
