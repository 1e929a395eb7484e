//! Test host for `motp.so`.
//!
//! - [`abi`]: loads the built `.so` with dlopen and calls it through the v3 structs, the way
//!   OpenVPN does, with a `plugin_log` that records what the plugin logged.
//! - [`openvpn`]: real `openvpn` server and client processes on loopback, with a throw-away PKI
//!   ([`pki`]), child processes killed on drop ([`process`]), a private `redis-server`
//!   ([`redis`]) and temporary directories ([`temp`]), all re-exported from [`openvpn`].

pub mod abi;
pub mod interleaved;
pub mod openvpn;
pub mod pki;
pub mod process;
pub mod redis;
pub mod runtime_user;
pub mod sqlite_lock;
pub mod synthetic;
pub mod temp;

use std::path::PathBuf;

/// The workspace root (where `Cargo.toml` and `target/` are).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// The built plugin: `$MOTP_PLUGIN_SO` if set, else `target/<profile>/libmotp.so` for the
/// profile this harness was built in (tests use the debug build, which has the clock hook).
pub fn plugin_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTP_PLUGIN_SO") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let profile = target.join(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    });
    // `cargo build` puts the cdylib in the profile dir; `cargo test` leaves it in deps/.
    // Take whichever was built last.
    [profile.join("libmotp.so"), profile.join("deps/libmotp.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| profile.join("libmotp.so"))
}
