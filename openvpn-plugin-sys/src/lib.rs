//! Raw bindings of OpenVPN's `openvpn-plugin.h` (plugin API v3, `OPENVPN_PLUGINv3_STRUCTVER` 5).
//!
//! Hand-written rather than generated so the crate needs no libclang at build time. Nothing but
//! the C declarations lives here; `tests/layout.rs` compiles a C program against the installed
//! header and checks every size and offset against these definitions.
#![no_std]
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_uint, c_void};

pub const OPENVPN_PLUGIN_VERSION: c_int = 3;
pub const OPENVPN_PLUGINV3_STRUCTVER: c_int = 5;

pub const OPENVPN_PLUGIN_UP: c_int = 0;
pub const OPENVPN_PLUGIN_DOWN: c_int = 1;
pub const OPENVPN_PLUGIN_ROUTE_UP: c_int = 2;
pub const OPENVPN_PLUGIN_IPCHANGE: c_int = 3;
pub const OPENVPN_PLUGIN_TLS_VERIFY: c_int = 4;
pub const OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY: c_int = 5;
pub const OPENVPN_PLUGIN_CLIENT_CONNECT: c_int = 6;
pub const OPENVPN_PLUGIN_CLIENT_DISCONNECT: c_int = 7;
pub const OPENVPN_PLUGIN_LEARN_ADDRESS: c_int = 8;
pub const OPENVPN_PLUGIN_CLIENT_CONNECT_V2: c_int = 9;
pub const OPENVPN_PLUGIN_TLS_FINAL: c_int = 10;
pub const OPENVPN_PLUGIN_ROUTE_PREDOWN: c_int = 12;
pub const OPENVPN_PLUGIN_CLIENT_CONNECT_DEFER: c_int = 13;
pub const OPENVPN_PLUGIN_CLIENT_CONNECT_DEFER_V2: c_int = 14;
pub const OPENVPN_PLUGIN_CLIENT_CRRESPONSE: c_int = 15;
pub const OPENVPN_PLUGIN_N: c_int = 16;

/// `OPENVPN_PLUGIN_MASK(x)`.
pub const fn openvpn_plugin_mask(event: c_int) -> c_int {
    1 << event
}

pub const OPENVPN_PLUGIN_FUNC_SUCCESS: c_int = 0;
pub const OPENVPN_PLUGIN_FUNC_ERROR: c_int = 1;
pub const OPENVPN_PLUGIN_FUNC_DEFERRED: c_int = 2;

pub const OPENVPN_PLUGIN_INIT_PRE_CONFIG_PARSE: c_int = 1;
pub const OPENVPN_PLUGIN_INIT_PRE_DAEMON: c_int = 2;
pub const OPENVPN_PLUGIN_INIT_POST_DAEMON: c_int = 3;
pub const OPENVPN_PLUGIN_INIT_POST_UID_CHANGE: c_int = 4;

pub type openvpn_plugin_handle_t = *mut c_void;

/// `openvpn_plugin_log_flags_t` (a C enum used as a bit set, so an int here).
pub type openvpn_plugin_log_flags_t = c_int;
pub const PLOG_ERR: openvpn_plugin_log_flags_t = 1 << 0;
pub const PLOG_WARN: openvpn_plugin_log_flags_t = 1 << 1;
pub const PLOG_NOTE: openvpn_plugin_log_flags_t = 1 << 2;
pub const PLOG_DEBUG: openvpn_plugin_log_flags_t = 1 << 3;
pub const PLOG_ERRNO: openvpn_plugin_log_flags_t = 1 << 8;
pub const PLOG_NOMUTE: openvpn_plugin_log_flags_t = 1 << 9;

/// `ovpnSSLAPI`.
pub type ovpnSSLAPI = c_int;
pub const SSLAPI_NONE: ovpnSSLAPI = 0;
pub const SSLAPI_OPENSSL: ovpnSSLAPI = 1;
pub const SSLAPI_MBEDTLS: ovpnSSLAPI = 2;

#[repr(C)]
pub struct openvpn_plugin_string_list {
    pub next: *mut openvpn_plugin_string_list,
    pub name: *mut c_char,
    pub value: *mut c_char,
}

/// `plugin_log_t`: printf-style and variadic.
pub type plugin_log_t = Option<
    unsafe extern "C" fn(
        flags: openvpn_plugin_log_flags_t,
        plugin_name: *const c_char,
        format: *const c_char,
        ...
    ),
>;
/// `plugin_vlog_t`. The `va_list` is passed as an opaque pointer: Rust never calls it.
pub type plugin_vlog_t = Option<
    unsafe extern "C" fn(
        flags: openvpn_plugin_log_flags_t,
        plugin_name: *const c_char,
        format: *const c_char,
        arglist: *mut c_void,
    ),
>;
pub type plugin_secure_memzero_t = Option<unsafe extern "C" fn(data: *mut c_void, len: usize)>;
pub type plugin_base64_encode_t =
    Option<unsafe extern "C" fn(data: *const c_void, size: c_int, str_: *mut *mut c_char) -> c_int>;
pub type plugin_base64_decode_t =
    Option<unsafe extern "C" fn(str_: *const c_char, data: *mut c_void, size: c_int) -> c_int>;

#[repr(C)]
pub struct openvpn_plugin_callbacks {
    pub plugin_log: plugin_log_t,
    pub plugin_vlog: plugin_vlog_t,
    pub plugin_secure_memzero: plugin_secure_memzero_t,
    pub plugin_base64_encode: plugin_base64_encode_t,
    pub plugin_base64_decode: plugin_base64_decode_t,
}

#[repr(C)]
pub struct openvpn_plugin_args_open_in {
    pub type_mask: c_int,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub callbacks: *mut openvpn_plugin_callbacks,
    pub ssl_api: ovpnSSLAPI,
    pub ovpn_version: *const c_char,
    pub ovpn_version_major: c_uint,
    pub ovpn_version_minor: c_uint,
    pub ovpn_version_patch: *const c_char,
}

#[repr(C)]
pub struct openvpn_plugin_args_open_return {
    pub type_mask: c_int,
    pub handle: openvpn_plugin_handle_t,
    pub return_list: *mut *mut openvpn_plugin_string_list,
}

#[repr(C)]
pub struct openvpn_plugin_args_func_in {
    pub type_: c_int,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub handle: openvpn_plugin_handle_t,
    pub per_client_context: *mut c_void,
    pub current_cert_depth: c_int,
    /// `openvpn_x509_cert_t *` (an OpenSSL `X509 *` in Debian's build); opaque here.
    pub current_cert: *mut c_void,
}

#[repr(C)]
pub struct openvpn_plugin_args_func_return {
    pub return_list: *mut *mut openvpn_plugin_string_list,
}

pub type openvpn_plugin_open_v3_fn = unsafe extern "C" fn(
    version: c_int,
    arguments: *const openvpn_plugin_args_open_in,
    retptr: *mut openvpn_plugin_args_open_return,
) -> c_int;
pub type openvpn_plugin_func_v3_fn = unsafe extern "C" fn(
    version: c_int,
    arguments: *const openvpn_plugin_args_func_in,
    retptr: *mut openvpn_plugin_args_func_return,
) -> c_int;
pub type openvpn_plugin_close_v1_fn = unsafe extern "C" fn(handle: openvpn_plugin_handle_t);
pub type openvpn_plugin_client_constructor_v1_fn =
    unsafe extern "C" fn(handle: openvpn_plugin_handle_t) -> *mut c_void;
pub type openvpn_plugin_client_destructor_v1_fn =
    unsafe extern "C" fn(handle: openvpn_plugin_handle_t, per_client_context: *mut c_void);
