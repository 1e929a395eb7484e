//! One `openvpn_plugin_func_v3(AUTH_USER_PASS_VERIFY)` call with an environment made of the fuzz
//! input, through the plugin's real C entry points, on a plugin opened once per process.
//!
//! The input is split on NUL bytes into `envp` entries. Two rewrites keep the run meaningful
//! and harmless:
//! - every `@CODE@` becomes alice's code for the current time, and every `@B64CODE@` its base64
//!   (for `SCRV1:<b64>:<b64>` answers), so the fuzzer also reaches the accept, replay and
//!   lockout paths (it could never guess a valid code);
//! - an `auth_failed_reason_file=` entry is pointed at a file in the run's temporary directory,
//!   because the plugin writes that file and the fuzzer must not write anywhere it likes.
//!
//! The call must return SUCCESS (0) or ERROR (1), never crash, and it may only accept when the
//! first `username` is an enabled user, the first `common_name` is that user's CN and the first
//! `password` parses as a code.
#![no_main]

use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use openvpn_plugin_sys as sys;

// The plugin's exported C ABI, resolved from the motp rlib this target links.
extern "C" {
    fn openvpn_plugin_open_v3(
        version: c_int,
        arguments: *const sys::openvpn_plugin_args_open_in,
        retptr: *mut sys::openvpn_plugin_args_open_return,
    ) -> c_int;
    fn openvpn_plugin_func_v3(
        version: c_int,
        arguments: *const sys::openvpn_plugin_args_func_in,
        retptr: *mut sys::openvpn_plugin_args_func_return,
    ) -> c_int;
}

// A no-op `plugin_log` (src/log_sink.c): variadic, so it is written in C.
extern "C" {
    fn motp_fuzz_plugin_log(
        flags: sys::openvpn_plugin_log_flags_t,
        plugin_name: *const c_char,
        format: *const c_char,
        ...
    );
}

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "1234";
const CODE_MARKER: &[u8] = b"@CODE@";
const B64_CODE_MARKER: &[u8] = b"@B64CODE@";
const REASON_FILE_VAR: &[u8] = b"auth_failed_reason_file=";

/// Users in the fuzz config: (username, expected CN, enabled).
const USERS: &[(&str, &str, bool)] = &[
    ("alice", "alice", true),
    ("bob", "bob", false),
    ("carol", "carol.example", true),
];

fn config_text() -> String {
    format!(
        r#"window_secs = 30
max_failures = 3
lockout_secs = 60
require_common_name = true

[state]
backend = "memory"

[users.alice]
secret = "{SECRET}"
pin = "{PIN}"

[users.bob]
secret = "fedcba9876543210"
pin = "0000"
disabled = true

[users.carol]
secret = "00112233445566778899aabbccddeeff"
pin = "p@ss"
offset_secs = -120
common_name = "carol.example"
"#
    )
}

struct Fixture {
    handle: sys::openvpn_plugin_handle_t,
    /// OpenVPN's callbacks outlive the plugin; so do these (the fixture is never dropped).
    _callbacks: Box<sys::openvpn_plugin_callbacks>,
    argv: Vec<*const c_char>,
    _strings: Vec<CString>,
    reason_file: CString,
}

// SAFETY: the handle is a Box<Plugin> that the plugin allows to be used from any thread (OpenVPN
// is single-threaded, libFuzzer calls the target from one thread); the pointers in `argv` point
// into `_strings`, owned here and never mutated.
unsafe impl Send for Fixture {}
// SAFETY: as above; nothing in the fixture is mutated after it is built.
unsafe impl Sync for Fixture {}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join("motp-fuzz")
            .join(format!("func_v3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let config = dir.join("motp.toml");
        write_private(&config, config_text().as_bytes());
        let reason = dir.join("auth_failed_reason");

        let strings = vec![
            CString::new("/usr/lib/openvpn/plugins/motp.so").unwrap(),
            CString::new(config.as_os_str().as_bytes()).unwrap(),
            CString::new("2.6.14").unwrap(),
            CString::new("14").unwrap(),
        ];
        let argv = vec![strings[0].as_ptr(), strings[1].as_ptr(), ptr::null()];
        let open_envp: [*const c_char; 1] = [ptr::null()];
        let mut callbacks = Box::new(sys::openvpn_plugin_callbacks {
            plugin_log: Some(motp_fuzz_plugin_log),
            plugin_vlog: None,
            plugin_secure_memzero: None,
            plugin_base64_encode: None,
            plugin_base64_decode: None,
        });
        let args = sys::openvpn_plugin_args_open_in {
            type_mask: sys::openvpn_plugin_mask(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY),
            argv: argv.as_ptr(),
            envp: open_envp.as_ptr(),
            callbacks: &mut *callbacks,
            ssl_api: sys::SSLAPI_OPENSSL,
            ovpn_version: strings[2].as_ptr(),
            ovpn_version_major: 2,
            ovpn_version_minor: 6,
            ovpn_version_patch: strings[3].as_ptr(),
        };
        let mut ret = sys::openvpn_plugin_args_open_return {
            type_mask: 0,
            handle: ptr::null_mut(),
            return_list: ptr::null_mut(),
        };
        // SAFETY: every pointer in `args` is valid for the call; `callbacks` is kept in the
        // fixture, so it outlives the plugin as OpenVPN's does.
        let rc =
            unsafe { openvpn_plugin_open_v3(sys::OPENVPN_PLUGINV3_STRUCTVER, &args, &mut ret) };
        assert_eq!(
            rc,
            sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
            "open_v3 failed on the fuzz config"
        );
        assert!(!ret.handle.is_null());
        Fixture {
            handle: ret.handle,
            _callbacks: callbacks,
            argv,
            _strings: strings,
            reason_file: CString::new(reason.as_os_str().as_bytes()).unwrap(),
        }
    })
}

fn write_private(path: &PathBuf, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("write fuzz config");
    file.write_all(bytes).expect("write fuzz config");
}

/// alice's code for the plugin's current time, as 6 lowercase hex characters.
fn current_code() -> [u8; 6] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let hex = motp::engine::code_at_time(SECRET, PIN, now).to_hex();
    hex.as_bytes().try_into().expect("6 hex characters")
}

fn replace_all(entry: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.len());
    let mut rest = entry;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn first_value<'a>(entries: &'a [CString], name: &[u8]) -> Option<&'a [u8]> {
    entries.iter().find_map(|e| {
        let e = e.as_bytes();
        let eq = e.iter().position(|&b| b == b'=')?;
        (&e[..eq] == name).then(|| &e[eq + 1..])
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let code = current_code();
    let code_b64 = STANDARD.encode(code);
    let entries: Vec<CString> = data
        .split(|&b| b == 0)
        .map(|entry| {
            if entry.starts_with(REASON_FILE_VAR) {
                let mut e = REASON_FILE_VAR.to_vec();
                e.extend_from_slice(fixture.reason_file.as_bytes());
                e
            } else {
                let entry = replace_all(entry, B64_CODE_MARKER, code_b64.as_bytes());
                replace_all(&entry, CODE_MARKER, &code)
            }
        })
        .map(|e| CString::new(e).expect("split on NUL, so no interior NUL"))
        .collect();
    let mut envp: Vec<*const c_char> = entries.iter().map(|e| e.as_ptr()).collect();
    envp.push(ptr::null());

    let args = sys::openvpn_plugin_args_func_in {
        type_: sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY,
        argv: fixture.argv.as_ptr(),
        envp: envp.as_ptr(),
        handle: fixture.handle,
        per_client_context: ptr::null_mut(),
        current_cert_depth: 0,
        current_cert: ptr::null_mut(),
    };
    let mut ret = sys::openvpn_plugin_args_func_return {
        return_list: ptr::null_mut(),
    };
    // SAFETY: `args` points at a valid struct whose envp/argv are NULL-terminated arrays of C
    // strings alive for the call, and the handle is the open plugin.
    let rc = unsafe { openvpn_plugin_func_v3(sys::OPENVPN_PLUGIN_VERSION, &args, &mut ret) };
    assert!(
        rc == sys::OPENVPN_PLUGIN_FUNC_SUCCESS || rc == sys::OPENVPN_PLUGIN_FUNC_ERROR,
        "func_v3 returned {rc}"
    );
    if rc == sys::OPENVPN_PLUGIN_FUNC_SUCCESS {
        let user = first_value(&entries, b"username").expect("accepted without a username");
        let &(_, cn, enabled) = USERS
            .iter()
            .find(|(name, _, _)| name.as_bytes() == user)
            .expect("accepted an unknown username");
        assert!(enabled, "accepted a disabled user");
        assert_eq!(
            first_value(&entries, b"common_name"),
            Some(cn.as_bytes()),
            "accepted with the wrong certificate CN"
        );
        let password = first_value(&entries, b"password").expect("accepted without a password");
        assert!(
            motp::password::parse(password).is_ok(),
            "accepted a malformed password"
        );
    }
});
