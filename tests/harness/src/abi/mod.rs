//! A test host that loads `motp.so` the way OpenVPN 2.6 does and calls it through the v3 structs.
//!
//! - [`Plugin::open`] `dlopen`s the `.so` with `RTLD_NOW | RTLD_LOCAL` (as OpenVPN's `plugin.c`
//!   does), resolves `openvpn_plugin_open_v3`, `openvpn_plugin_func_v3` and
//!   `openvpn_plugin_close_v1`, and calls `open_v3` with `OPENVPN_PLUGINv3_STRUCTVER` and an
//!   `openvpn_plugin_args_open_in` filled as OpenVPN fills it: `argv = [so path, config path]`,
//!   an environment, and the five callbacks. Dropping the [`Plugin`] calls `close_v1` and then
//!   `dlclose`, which is what a SIGHUP does.
//! - The callbacks are C (`c/host_callbacks.c`): `plugin_log` is printf-style and variadic, which
//!   stable Rust cannot define. The C side formats each message and hands the finished text to
//!   [`motp_harness_record_log`]. OpenVPN calls plugins on its one thread and the plugin logs
//!   synchronously inside the call, so every call here installs the instance's log as the
//!   calling thread's "current recorder": tests running in parallel threads, and several
//!   instances in one test, each see exactly their own lines ([`Plugin::logs`]).
//! - [`Env`] builds the `envp` of an `AUTH_USER_PASS_VERIFY` call; [`Env::openvpn_auth`] gives the
//!   ~40 variables OpenVPN 2.6 really passes (username and password first).

use std::ffi::{c_char, c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use openvpn_plugin_sys as sys;

mod env;
mod log;
mod open;
#[cfg(test)]
mod tests;

pub use env::Env;
pub use log::{motp_harness_record_log, unattributed_logs, LogHandle, LogLine};
pub use open::{requested_initialization_point, OpenError, OpenOptions, Plugin};

pub use sys::{
    OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, OPENVPN_PLUGIN_CLIENT_CRRESPONSE,
    OPENVPN_PLUGIN_FUNC_DEFERRED, OPENVPN_PLUGIN_FUNC_ERROR, OPENVPN_PLUGIN_FUNC_SUCCESS,
};

/// What OpenVPN 2.6.14 reports about itself in `openvpn_plugin_args_open_in`.
pub const OVPN_VERSION: &str = "2.6.14";
const OVPN_VERSION_MAJOR: u32 = 2;
const OVPN_VERSION_MINOR: u32 = 6;
const OVPN_VERSION_PATCH: &CStr = c".14";

// The C half (c/host_callbacks.c), compiled by build.rs.
extern "C" {
    /// The callback table OpenVPN would pass: log, vlog, secure_memzero, base64 encode/decode.
    fn motp_test_callbacks() -> *const sys::openvpn_plugin_callbacks;
    /// The `plugin_log` given to the plugin (printf-style).
    pub fn motp_test_plugin_log(
        flags: sys::openvpn_plugin_log_flags_t,
        name: *const c_char,
        format: *const c_char,
        ...
    );
    /// The `plugin_secure_memzero` given to the plugin.
    pub fn motp_test_secure_memzero(data: *mut std::ffi::c_void, len: usize);
    /// The `plugin_base64_encode` given to the plugin (result malloc()ed).
    pub fn motp_test_base64_encode(
        data: *const std::ffi::c_void,
        size: c_int,
        out: *mut *mut c_char,
    ) -> c_int;
    /// The `plugin_base64_decode` given to the plugin.
    pub fn motp_test_base64_decode(
        text: *const c_char,
        data: *mut std::ffi::c_void,
        size: c_int,
    ) -> c_int;
}

/// A copy of the C callback table, as OpenVPN passes it.
pub fn host_callbacks() -> sys::openvpn_plugin_callbacks {
    // SAFETY: motp_test_callbacks returns a pointer to a static, initialised table.
    let table = unsafe { &*motp_test_callbacks() };
    sys::openvpn_plugin_callbacks {
        plugin_log: table.plugin_log,
        plugin_vlog: table.plugin_vlog,
        plugin_secure_memzero: table.plugin_secure_memzero,
        plugin_base64_encode: table.plugin_base64_encode,
        plugin_base64_decode: table.plugin_base64_decode,
    }
}

fn path_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}
