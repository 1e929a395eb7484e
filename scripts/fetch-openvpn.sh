#!/bin/sh
# Fetches the openvpn of another Debian suite and unpacks it beside the system's, for the
# version matrix of the end-to-end tests (tests/e2e_versions.rs).
#
#   scripts/fetch-openvpn.sh SUITE DEST      SUITE: sid (OpenVPN 2.7) or bullseye (OpenVPN 2.5)
#
# Uses a private apt configuration under DEST (its own sources, lists, cache, and an empty dpkg
# status, so apt sees every dependency as missing): the system's apt sources and dpkg database
# are not touched. The archive is the one the system's own sources name. The .debs are
# unpacked with dpkg-deb -x into DEST/tree, and DEST/openvpn is a wrapper that runs the binary:
# - sid: through the tree's own loader (sid's openvpn needs sid's newer glibc), with the
#   tree's library directory;
# - bullseye: with the system's glibc (its libc6 is left out) and LD_LIBRARY_PATH set to the
#   tree's library directories only.
# A plugin built here loads into both. Prints the version (`openvpn --version | head -1`).
# Idempotent: a complete tree (DEST/.complete) is reused without any download.
# Exits non-zero, with the reason on stderr, when the archive or the suite cannot be had.
set -eu

fail() {
    echo "fetch-openvpn: $*" >&2
    exit 1
}

[ $# -eq 2 ] || fail "usage: $0 SUITE DEST (SUITE: sid or bullseye)"
suite="$1"
case "$suite" in
    sid | bullseye) ;;
    *) fail "unknown suite '$suite' (sid or bullseye)" ;;
esac
mkdir -p "$2" || fail "cannot create $2"
dest="$(cd "$2" && pwd)"
wrapper="$dest/openvpn"

version_of() {
    # `openvpn --version` exits 1 on older releases; the first line is what counts.
    "$wrapper" --version 2>&1 | head -1
}

if [ -f "$dest/.complete" ] && [ -x "$wrapper" ]; then
    v="$(version_of)"
    case "$v" in
        OpenVPN\ 2.*)
            echo "$v"
            exit 0
            ;;
    esac
    echo "fetch-openvpn: the tree in $dest does not run ($v); fetching it again" >&2
fi
rm -f "$dest/.complete"

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

# The archive the system's apt already uses (the first non-security URI of its sources).
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")"
    [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
fi
[ -n "$uri" ] || fail "no Debian archive found in the system's apt sources"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"
arch="$(dpkg --print-architecture)"

apt_dir="$dest/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/parts" "$apt_dir/lists/partial" \
    "$apt_dir/cache/archives/partial" "$dest/debs"
cat >"$apt_dir/sources.list.d/$suite.sources" <<EOF
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: $keyring
EOF
# Signatures are checked; the Release files' dates are not, as the system's own apt setup
# does here (the archive it reaches may serve a snapshot whose Valid-Until has passed).
cat >"$apt_dir/apt.conf" <<EOF
Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "$apt_dir/parts";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt_dir/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$apt_dir/parts";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "/dev/null";
Dir::State::extended_states "$apt_dir/extended_states";
Dir::Cache "$apt_dir/cache";
Dir::Log "$apt_dir";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Install-Recommends "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "2";
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
EOF
APT_CONFIG="$apt_dir/apt.conf"
export APT_CONFIG

log="$dest/fetch.log"
: >"$log"
if ! apt-get update -q >>"$log" 2>&1; then
    fail "apt-get update of suite $suite from the system's archive failed: $(grep -E '^(E|W):' "$log" | head -3 | tr '\n' ' ')"
fi
if ! apt-get install --simulate -q openvpn >"$apt_dir/simulate.txt" 2>>"$log"; then
    fail "suite $suite has no installable openvpn: $(grep -E '^E:' "$log" | head -3 | tr '\n' ' ')"
fi
# The closure of openvpn; bullseye runs on the system's glibc, so its libc6 stays out.
packages="$(awk '$1 == "Inst" { print $2 }' "$apt_dir/simulate.txt")"
if [ "$suite" = bullseye ]; then
    packages="$(echo "$packages" | grep -vx -e libc6 -e libc-bin || true)"
fi
echo "$packages" | grep -qx openvpn || fail "suite $suite: openvpn is not in the closure apt computed"
rm -f "$dest/debs"/*.deb
# shellcheck disable=SC2086 # one package name a word
if ! (cd "$dest/debs" && apt-get download -q $packages >>"$log" 2>&1); then
    fail "downloading openvpn and its dependencies from suite $suite failed: $(grep -E '^(E|W):' "$log" | head -3 | tr '\n' ' ')"
fi

rm -rf "$dest/tree"
mkdir -p "$dest/tree"
for deb in "$dest/debs"/*.deb; do
    dpkg-deb -x "$deb" "$dest/tree" || fail "cannot unpack $deb"
done
tree="$dest/tree"
[ -x "$tree/usr/sbin/openvpn" ] || fail "no usr/sbin/openvpn in the unpacked $suite packages"

triplet="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
libdirs="$tree/usr/lib/$triplet:$tree/lib/$triplet"
if [ "$suite" = sid ]; then
    loader=""
    for candidate in "$tree"/usr/lib/"$triplet"/ld-linux*.so.* "$tree"/lib/"$triplet"/ld-linux*.so.* \
        "$tree"/usr/lib64/ld-linux*.so.* "$tree"/lib64/ld-linux*.so.*; do
        if [ -e "$candidate" ]; then
            loader="$candidate"
            break
        fi
    done
    [ -n "$loader" ] || fail "no ld-linux loader in the unpacked $suite libc6"
    cat >"$wrapper" <<EOF
#!/bin/sh
# OpenVPN of Debian $suite, run through its own glibc (scripts/fetch-openvpn.sh).
exec "$loader" --library-path "$libdirs" "$tree/usr/sbin/openvpn" "\$@"
EOF
else
    cat >"$wrapper" <<EOF
#!/bin/sh
# OpenVPN of Debian $suite, on the system's glibc with its own libraries (scripts/fetch-openvpn.sh).
LD_LIBRARY_PATH="$libdirs"
export LD_LIBRARY_PATH
exec "$tree/usr/sbin/openvpn" "\$@"
EOF
fi
chmod 755 "$wrapper"

v="$(version_of)"
case "$v" in
    OpenVPN\ 2.*) ;;
    *) fail "the unpacked $suite openvpn does not run: $v" ;;
esac
# Only the tree and the wrapper are needed from now on (about 30-40 MB of the 150-200 MB).
rm -rf "$dest/debs" "$apt_dir/lists" "$apt_dir/cache"
touch "$dest/.complete"
echo "$v"
