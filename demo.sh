#!/bin/sh
# The main job: a real OpenVPN server and client on loopback, logging in with mOTP through
# motp.so. Needs root (the server opens a tun device). Installs OpenVPN if missing.
set -eu
cd "$(dirname "$0")"
if ! command -v openvpn >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvpn openssl
fi
cargo build --release --quiet -p motp -p motp-harness --bin motp-demo
exec "${CARGO_TARGET_DIR:-target}/release/motp-demo"
