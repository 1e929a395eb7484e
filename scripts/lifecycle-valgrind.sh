#!/bin/sh
# 1,000 dlopen/open/auth/close/dlclose cycles of the release motp.so under valgrind, the way
# OpenVPN reloads the plugin at every SIGHUP. Fails on any definite leak, any memory error,
# or any thread left running after openvpn_plugin_close_v1.
# Usage: scripts/lifecycle-valgrind.sh [CYCLES]   (needs: valgrind, cc, openvpn's header)
set -eu
cd "$(dirname "$0")/.."
cycles="${1:-1000}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p motp
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -Wall -Wextra -Werror -I/usr/include/openvpn -o "$work/lifecycle" tests/c/lifecycle.c -ldl
cat > "$work/motp.toml" <<TOML
[state]
backend = "memory"
[users.alice]
secret = "0123456789abcdef"
pin = "1234"
TOML
chmod 0600 "$work/motp.toml"
valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$work/lifecycle" "$target/release/libmotp.so" "$work/motp.toml" "$cycles"
echo "lifecycle-valgrind: passed ($cycles cycles, no definite leak, no memory error)"
