//! openvpn-motp: an OpenVPN plugin (`motp.so`) that checks certificate + mobile OTP logins.
//!
//! Modules, each with one job:
//! - [`engine`]: the mOTP algorithm and the constant-time window search;
//! - [`password`]: reading the code out of the client's password (bare or SCRV1);
//! - [`config`]: `motp.toml`, validated, as a user table and a policy;
//! - [`state`]: replay and lockout state behind one transactional operation;
//! - [`auth`]: the decision for one login;
//! - [`secret_hash`]: Argon2id hashes of static passwords, hashes of one-time recovery codes;
//! - [`rule`]: what a login does to a user's stored state (lock, replay, failures), pure;
//! - [`env`]: picking the variables the plugin uses out of OpenVPN's env;
//! - [`ip_limit`]: failed logins per source address, in a table of bounded size;
//! - [`log`]: `tracing` events to OpenVPN's `plugin_log`;
//! - [`plugin`]: one loaded instance tying the above together;
//! - [`os`]: who the process runs as, and whether a file is under a trusted owner's control;
//! - `ffi`: the C entry points, the only `unsafe` code.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

/// A module of the plugin's own that tests, benches and fuzz targets reach into: public with
/// the `internals` feature (the test harness turns it on), private otherwise, so that a build
/// of the plugin itself sees which of its items nothing uses.
macro_rules! internal_mod {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "internals")]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        mod $name;
    };
}

// The library API motpctl builds on.
pub mod auth;
pub mod clock;
pub mod config;
pub mod drift;
pub mod engine;
pub mod factors;
pub mod log;
pub mod os;
pub mod secret_hash;
pub mod state;

internal_mod!(env);
internal_mod!(ip_limit);
internal_mod!(md5_lanes);
internal_mod!(password);
internal_mod!(plugin);
internal_mod!(rule);

#[cfg(test)]
mod login_fixture;

// The C entry points OpenVPN calls: the one module allowed `unsafe` (each block says why it
// is sound in a `// SAFETY:` comment).
#[allow(unsafe_code)]
mod ffi;

/// The worker pool, at its path from before it moved under `plugin`.
#[cfg(feature = "internals")]
pub use plugin::deferred;
