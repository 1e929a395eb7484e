//! The C ABI OpenVPN calls: `openvpn_plugin_open_v3`, `openvpn_plugin_func_v3`,
//! `openvpn_plugin_close_v1`. This is the crate's only `unsafe` code.
//!
//! Each entry point runs behind [`panic_boundary`], so a bug here rejects the login (or refuses
//! to open) instead of unwinding into C. Pointers from OpenVPN are checked for NULL before use;
//! what they point to is only borrowed for the duration of the call, as the plugin API promises.

use std::ffi::{c_char, c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use openvpn_plugin_sys as sys;

use crate::config::{TrustedOwners, DEFAULT_CONFIG_PATH};
use crate::env::{AuthEnv, WANTED_FIRST_BYTES, WANTED_NAMES};
use crate::plugin::{Answer, Plugin};

/// No sane host passes more environment entries than this; stop reading rather than run away.
const MAX_ENV_ENTRIES: usize = 16 * 1024;
const PLUGIN_NAME: &CStr = c"motp";

/// The effective uid of the process when OpenVPN loaded the plugin and asked for its
/// initialization point: the user OpenVPN started as (root, on a real server). `u32::MAX` until
/// then, for hosts that never ask.
static LOADED_BY_UID: AtomicU32 = AtomicU32::new(u32::MAX);

/// Runs `body`, turning a panic into `fallback` so no unwind ever crosses into OpenVPN.
fn panic_boundary<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Asks OpenVPN to open the plugin only after it has dropped privileges (`user`/`group`),
/// at start as at every SIGHUP: the state directory then only ever sees the runtime user, and
/// root never opens, creates or renames a file in a directory that user controls. OpenVPN
/// calls this right after loading the plugin, still as the user it started as; that user is
/// remembered so motp.toml can be held to root's (or that user's) ownership later.
#[no_mangle]
pub extern "C" fn openvpn_plugin_select_initialization_point_v1() -> c_int {
    panic_boundary(sys::OPENVPN_PLUGIN_INIT_POST_UID_CHANGE, || {
        LOADED_BY_UID.store(crate::os::effective_uid(), Ordering::Relaxed);
        sys::OPENVPN_PLUGIN_INIT_POST_UID_CHANGE
    })
}

/// # Safety
/// OpenVPN guarantees `arguments` and `retptr` point to valid structs for the call, `argv` and
/// `envp` are NULL-terminated arrays of C strings, and `callbacks` lives as long as the plugin.
#[no_mangle]
pub unsafe extern "C" fn openvpn_plugin_open_v3(
    version: c_int,
    arguments: *const sys::openvpn_plugin_args_open_in,
    retptr: *mut sys::openvpn_plugin_args_open_return,
) -> c_int {
    panic_boundary(sys::OPENVPN_PLUGIN_FUNC_ERROR, || {
        if arguments.is_null() || retptr.is_null() || version < 1 {
            return sys::OPENVPN_PLUGIN_FUNC_ERROR;
        }
        // SAFETY: checked non-NULL above; OpenVPN passes a valid struct for the call's duration.
        let args = unsafe { &*arguments };
        let log_fn = if args.callbacks.is_null() {
            None
        } else {
            // SAFETY: non-NULL; OpenVPN's callbacks struct outlives the plugin.
            unsafe { (*args.callbacks).plugin_log }
        };
        let sink = host_log_sink(log_fn);

        // SAFETY: argv is OpenVPN's NULL-terminated argument array (or NULL).
        let config_arg = unsafe { nth_c_string(args.argv, 1) };
        let config_path = match config_arg {
            Some(arg) => Path::new(std::ffi::OsStr::from_bytes(arg.to_bytes())).to_owned(),
            None => Path::new(DEFAULT_CONFIG_PATH).to_owned(),
        };
        let started_as = match LOADED_BY_UID.load(Ordering::Relaxed) {
            u32::MAX => crate::os::effective_uid(),
            uid => uid,
        };
        match Plugin::open_trusting(&config_path, sink, TrustedOwners::root_and(started_as)) {
            Ok(plugin) => {
                // SAFETY: retptr was checked non-NULL and is OpenVPN's struct to fill.
                let ret = unsafe { &mut *retptr };
                ret.type_mask = sys::openvpn_plugin_mask(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY);
                if plugin.wants_crresponse() {
                    ret.type_mask |=
                        sys::openvpn_plugin_mask(sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE);
                }
                ret.handle = Box::into_raw(Box::new(plugin)).cast();
                sys::OPENVPN_PLUGIN_FUNC_SUCCESS
            }
            Err(_) => sys::OPENVPN_PLUGIN_FUNC_ERROR,
        }
    })
}

/// # Safety
/// `arguments` must be valid for the call, its `handle` one returned by `openvpn_plugin_open_v3`
/// and not yet closed, and `envp` a NULL-terminated array of C strings.
#[no_mangle]
pub unsafe extern "C" fn openvpn_plugin_func_v3(
    _version: c_int,
    arguments: *const sys::openvpn_plugin_args_func_in,
    _retptr: *mut sys::openvpn_plugin_args_func_return,
) -> c_int {
    panic_boundary(sys::OPENVPN_PLUGIN_FUNC_ERROR, || {
        if arguments.is_null() {
            return sys::OPENVPN_PLUGIN_FUNC_ERROR;
        }
        // SAFETY: checked non-NULL; valid for the duration of the call.
        let args = unsafe { &*arguments };
        if args.handle.is_null() {
            return sys::OPENVPN_PLUGIN_FUNC_ERROR;
        }
        // SAFETY: a non-NULL handle is the Box<Plugin> leaked by open_v3 and not yet closed.
        let plugin = unsafe { &*args.handle.cast::<Plugin>() };
        let crresponse = args.type_ == sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE;
        if args.type_ != sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY
            && !(crresponse && plugin.wants_crresponse())
        {
            return sys::OPENVPN_PLUGIN_FUNC_ERROR;
        }
        // SAFETY: envp is OpenVPN's NULL-terminated env array for this call (or NULL). The
        // borrowed strings are used only during this call; a deferred decision works on a copy.
        let env = unsafe { read_env(args.envp) };
        if crresponse {
            // OpenVPN ignores this call's result; the answer goes to auth_control_file.
            plugin.cr_response(&env);
            return sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
        }
        match plugin.auth_user_pass_verify(&env) {
            Answer::Accept => sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
            Answer::Reject => sys::OPENVPN_PLUGIN_FUNC_ERROR,
            Answer::Deferred => sys::OPENVPN_PLUGIN_FUNC_DEFERRED,
        }
    })
}

/// # Safety
/// `handle` must be NULL or a handle from `openvpn_plugin_open_v3` not closed before.
#[no_mangle]
pub unsafe extern "C" fn openvpn_plugin_close_v1(handle: sys::openvpn_plugin_handle_t) {
    panic_boundary((), || {
        if !handle.is_null() {
            // SAFETY: the handle is the Box<Plugin> leaked by open_v3; OpenVPN closes it once.
            // Dropping it answers queued deferred logins and joins the worker threads.
            drop(unsafe { Box::from_raw(handle.cast::<Plugin>()) });
        }
    })
}

/// The `n`th entry of a NULL-terminated `char *` array, if the array reaches that far.
///
/// # Safety
/// `array` must be NULL or a NULL-terminated array of valid C strings.
unsafe fn nth_c_string<'a>(array: *const *const c_char, n: usize) -> Option<&'a CStr> {
    // SAFETY: forwarded contract.
    unsafe { c_string_array(array) }.into_iter().nth(n)
}

/// Borrows every entry of a NULL-terminated `char *` array (at most [`MAX_ENV_ENTRIES`]).
///
/// # Safety
/// `array` must be NULL or a NULL-terminated array of valid C strings that outlive `'a`.
unsafe fn c_string_array<'a>(array: *const *const c_char) -> Vec<&'a CStr> {
    let mut out = Vec::new();
    if array.is_null() {
        return out;
    }
    for i in 0..MAX_ENV_ENTRIES {
        // SAFETY: the array is NULL-terminated and we stop at the terminator.
        let entry = unsafe { *array.add(i) };
        if entry.is_null() {
            break;
        }
        // SAFETY: each non-NULL entry is a valid NUL-terminated C string.
        out.push(unsafe { CStr::from_ptr(entry) });
    }
    out
}

/// Picks the entries the plugin reads out of OpenVPN's env array. Each entry is compared with
/// the few wanted `name=` prefixes byte by byte, stopping at the first difference (most
/// entries differ at their first byte), and only the values kept are measured: no `strlen`
/// of the ~50 entries OpenVPN passes per login.
///
/// # Safety
/// `envp` must be NULL or a NULL-terminated array of valid C strings that outlive `'a`.
unsafe fn read_env<'a>(envp: *const *const c_char) -> AuthEnv<'a> {
    let mut env = AuthEnv::default();
    if envp.is_null() {
        return env;
    }
    for i in 0..MAX_ENV_ENTRIES {
        // SAFETY: the array is NULL-terminated and we stop at the terminator.
        let entry = unsafe { *envp.add(i) }.cast::<u8>();
        if entry.is_null() {
            break;
        }
        // SAFETY: a C string has at least its NUL byte.
        let first = unsafe { *entry };
        if !WANTED_FIRST_BYTES[usize::from(first)] {
            continue;
        }
        for name in WANTED_NAMES {
            if name[0] != first {
                continue;
            }
            // SAFETY: `entry` is a NUL-terminated string. Byte `k` is read only after bytes
            // 0..k matched `name`, which holds no NUL, so none of them was the terminator.
            let is_name = (1..name.len()).all(|k| unsafe { *entry.add(k) } == name[k]);
            // SAFETY: as above, byte `name.len()` is still inside the string.
            if !is_name || unsafe { *entry.add(name.len()) } != b'=' {
                continue;
            }
            // SAFETY: the value starts after the `=` and ends at the string's NUL; OpenVPN
            // keeps envp valid for the whole call.
            let value = unsafe { CStr::from_ptr(entry.add(name.len() + 1).cast()) };
            env.offer(name, value.to_bytes());
            break;
        }
    }
    env
}

/// Sends log lines to OpenVPN's `plugin_log`, or to stderr if the host gave none.
fn host_log_sink(log_fn: sys::plugin_log_t) -> crate::log::Sink {
    Arc::new(move |level, line: &str| {
        let flags = match level {
            tracing::Level::ERROR => sys::PLOG_ERR,
            tracing::Level::WARN => sys::PLOG_WARN,
            tracing::Level::INFO => sys::PLOG_NOTE,
            _ => sys::PLOG_DEBUG,
        };
        // One copy, with the terminating NUL OpenVPN needs; a NUL inside would cut the line.
        // On the stack for the usual line (one per login), so logging allocates nothing.
        let mut on_stack = [0u8; 512];
        let mut on_heap = Vec::new();
        let buffer: &mut [u8] = if line.len() < on_stack.len() {
            &mut on_stack[..line.len() + 1]
        } else {
            on_heap.resize(line.len() + 1, 0);
            &mut on_heap
        };
        for (to, from) in buffer.iter_mut().zip(line.bytes()) {
            *to = if from == 0 { b'?' } else { from };
        }
        buffer[line.len()] = 0;
        match log_fn {
            // SAFETY: OpenVPN's plugin_log is printf-like; "%s" with one string argument is a
            // well-formed call, made on OpenVPN's calling thread. `buffer` is that string: it
            // ends in the NUL written above, and every NUL of `line` was replaced before it.
            Some(log) => unsafe {
                log(
                    flags,
                    PLUGIN_NAME.as_ptr(),
                    c"%s".as_ptr(),
                    buffer.as_ptr().cast::<c_char>(),
                )
            },
            None => eprintln!("motp: {line}"),
        }
    })
}
