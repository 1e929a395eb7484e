//! Compiles `c/host_callbacks.c`, the C half of the test host (`src/abi/`), against the real
//! `openvpn-plugin.h`: `$OPENVPN_PLUGIN_INCLUDE_DIR/openvpn/openvpn-plugin.h`, default
//! `/usr/include`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=c/host_callbacks.c");
    println!("cargo:rerun-if-env-changed=OPENVPN_PLUGIN_INCLUDE_DIR");

    let include = std::env::var_os("OPENVPN_PLUGIN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = include.join("openvpn/openvpn-plugin.h");
    if !header.is_file() {
        panic!(
            "OpenVPN's plugin header {} was not found; the test host is compiled against it. \
             Install it with `apt-get install openvpn`, or point OPENVPN_PLUGIN_INCLUDE_DIR at \
             the directory holding openvpn/openvpn-plugin.h.",
            header.display()
        );
    }
    println!("cargo:rerun-if-changed={}", header.display());

    // The header includes <openssl/x509.h> unconditionally, though the host only needs a pointer
    // to the certificate type (declared in the C file). An empty stand-in keeps OpenSSL's headers
    // out of the build.
    let stub = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("stub");
    std::fs::create_dir_all(stub.join("openssl")).expect("create stub include dir");
    std::fs::write(
        stub.join("openssl/x509.h"),
        "/* stand-in written by tests/harness/build.rs */\n",
    )
    .expect("write stub header");

    cc::Build::new()
        .file("c/host_callbacks.c")
        .include(&stub)
        .include(&include)
        .flag_if_supported("-std=c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("motp_host_callbacks");
}
