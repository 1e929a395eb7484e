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
use crate::env::{
    AuthEnv, Wanted, WantedSet, NEEDED_WITHOUT_PROMPT, WANTED_FIRST_BYTES,
    WANTED_FIRST_BYTES_WITHOUT_PROMPT,
};
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
        // The user's index slot and the store's slot are fetched into the cache as soon as the
        // username is read, and the entry the index slot points to once the env is read: in a
        // big table these are cache misses, which then overlap the work before the lookup.
        let config = plugin.config_in_service();
        let mut user_slot = None;
        // Without prompts (crtext) nothing reads IV_SSO: the IV_* entries are skipped whole,
        // and the reader stops once it has what a login without prompts reads.
        let (first_bytes, needed) = if plugin.wants_crresponse() {
            (&WANTED_FIRST_BYTES, WantedSet::NONE)
        } else {
            (&WANTED_FIRST_BYTES_WITHOUT_PROMPT, NEEDED_WITHOUT_PROMPT)
        };
        // SAFETY: envp is OpenVPN's NULL-terminated env array for this call (or NULL). The
        // borrowed strings are used only during this call; a deferred decision works on a copy.
        let env = unsafe {
            read_env(args.envp, first_bytes, needed, |name| {
                user_slot = config.users.prefetch_slot(name);
                plugin.prefetch_state(name);
            })
        };
        if let Some(slot) = user_slot {
            config.users.prefetch_entry(slot);
        }
        if crresponse {
            // OpenVPN ignores this call's result; the answer goes to auth_control_file.
            plugin.cr_response(&env);
            return sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
        }
        match plugin.auth_user_pass_verify_with(&env, config) {
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

/// Asks the kernel to back the memory from `start` to `start + len` with transparent huge
/// pages where it can (Linux, `madvise(MADV_HUGEPAGE)` on the whole 2 MiB pages inside; a
/// no-op elsewhere and for smaller ranges). For the user table's big arrays, before they are
/// first written: a lookup in a table of a million users then needs a handful of TLB entries
/// instead of one per 4 KiB page touched. A hint: the memory's contents and mapping do not
/// change, and a refusal (THP off, `ENOMEM`) is ignored.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE_PAGE: usize = 2 << 20;
        let from = (start as usize).next_multiple_of(HUGE_PAGE);
        let to = (start as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
        if to > from {
            // SAFETY: MADV_HUGEPAGE only marks the range's mappings as candidates for huge
            // pages: it maps, unmaps and changes no memory, so no reference anywhere can see a
            // difference; on a range that is not mapped it fails with ENOMEM, ignored here.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// The system clock in Unix seconds: `time(2)`, one read of the kernel's clock page (vDSO),
/// where `SystemTime::now()` and its duration since the epoch cost several times that per
/// login (docs/performance.md, "Accept path after the reshape").
pub(crate) fn unix_time() -> i64 {
    // SAFETY: time(2) with a null pointer only returns the time; it writes through no pointer
    // and cannot fail.
    let seconds: libc::time_t = unsafe { libc::time(std::ptr::null_mut()) };
    #[allow(clippy::useless_conversion)] // time_t is i64 on 64-bit Linux, i32 on some others
    i64::from(seconds)
}

/// `bytes` as text if they are valid UTF-8: [`std::str::from_utf8`], with a fast path for
/// ASCII. What the plugin checks on every login is short and nearly always ASCII (the
/// username, the log line), where std's general validation costs several times the ASCII
/// check (docs/performance.md, "Accept path after the reshape").
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8 (ASCII is UTF-8's one-byte range).
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Starts loading the cache line that holds `item`, without waiting for it: a later read then
/// finds it in the cache (x86-64 `prefetcht0`; nothing elsewhere).
#[inline]
pub(crate) fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that reads nothing into the program and never faults; the
    // address is that of a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// [`prefetch`] of the cache line at `address`, which need not be mapped: for a table whose
/// current address is read without its lock.
#[inline]
pub(crate) fn prefetch_address(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that reads nothing into the program and never faults, even
    // on an address that is not mapped.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
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

/// Picks the entries the plugin reads out of OpenVPN's env array ([`wanted_entry`]), and
/// measures only the values kept: no `strlen` of the ~50 entries OpenVPN passes per login.
///
/// # Safety
/// `envp` must be NULL or a NULL-terminated array of valid C strings that outlive `'a`.
/// `first_bytes` is [`WANTED_FIRST_BYTES`], or [`WANTED_FIRST_BYTES_WITHOUT_PROMPT`] for a
/// plugin that never reads `IV_SSO`. Reading stops once every name of `needed` has been met
/// ([`NEEDED_WITHOUT_PROMPT`]; [`WantedSet::NONE`]: never).
unsafe fn read_env<'a>(
    envp: *const *const c_char,
    first_bytes: &[bool; 256],
    needed: WantedSet,
    mut on_username: impl FnMut(&'a [u8]),
) -> AuthEnv<'a> {
    let mut env = AuthEnv::default();
    let mut met = WantedSet::NONE;
    if envp.is_null() {
        return env;
    }
    for i in 0..MAX_ENV_ENTRIES {
        // SAFETY: the array is NULL-terminated and we stop at the terminator.
        let entry = unsafe { *envp.add(i) }.cast::<u8>();
        if entry.is_null() {
            break;
        }
        // SAFETY: each non-NULL entry is a valid NUL-terminated C string, and OpenVPN keeps
        // envp valid for the whole call.
        if let Some((wanted, value)) = unsafe { wanted_entry(entry, first_bytes) } {
            if wanted == Wanted::Username && env.username.is_none() {
                on_username(value);
            }
            env.offer_wanted(wanted, value);
            met = met.with(wanted);
            if met.contains_all(needed) {
                break;
            }
        }
    }
    env
}

/// Which of [`WANTED_NAMES`](crate::env::WANTED_NAMES) the env entry `entry` is, followed by
/// `=`, and its value. The first bytes (up to four) pick the candidate names: most entries are
/// out after one table lookup, OpenVPN's many `IV_*` after their fourth byte. Only a candidate
/// is measured (`strlen`), then compared with its names whole.
///
/// # Safety
/// `entry` must be a valid NUL-terminated C string that outlives `'a`.
unsafe fn wanted_entry<'a>(
    entry: *const u8,
    first_bytes: &[bool; 256],
) -> Option<(Wanted, &'a [u8])> {
    use Wanted::*;
    // SAFETY: a C string has at least its NUL byte.
    let first = unsafe { *entry };
    if !first_bytes[usize::from(first)] {
        return None;
    }
    // SAFETY: `first` starts a wanted name, so it is not the NUL: byte 1 is in the string.
    let second = unsafe { *entry.add(1) };
    let is_iv_sso = || {
        // SAFETY: bytes 0 and 1 are `IV`, not the NUL, so byte 2 is in the string; byte 3 is
        // read only when byte 2 was `_`.
        unsafe { *entry.add(2) == b'_' && *entry.add(3) == b'S' }
    };
    match (first, second) {
        (b'u', b's') | (b'u', b'n') | (b'p', b'a') | (b'c', b'o') | (b'c', b'r') | (b'a', b'u') => {
        }
        (b'I', b'V') if is_iv_sso() => {}
        _ => return None,
    }
    // SAFETY: `entry` is a NUL-terminated string valid for `'a`.
    let bytes = unsafe { CStr::from_ptr(entry.cast()) }.to_bytes();
    let named = |name: &'static [u8], wanted: Wanted| {
        debug_assert_eq!(name, wanted.name());
        let value = bytes.strip_prefix(name)?.strip_prefix(b"=")?;
        Some((wanted, value))
    };
    match second {
        b's' => named(b"username", Username),
        b'n' => {
            named(b"untrusted_ip", UntrustedIp).or_else(|| named(b"untrusted_ip6", UntrustedIp6))
        }
        b'a' => named(b"password", Password),
        b'o' => named(b"common_name", CommonName),
        b'r' => named(b"crresponse", Crresponse),
        b'u' => named(b"auth_control_file", AuthControlFile)
            .or_else(|| named(b"auth_failed_reason_file", AuthFailedReasonFile))
            .or_else(|| named(b"auth_pending_file", AuthPendingFile)),
        _ => named(b"IV_SSO", IvSso),
    }
}

/// Sends log lines to OpenVPN's `plugin_log`, or to stderr if the host gave none.
fn host_log_sink(log_fn: sys::plugin_log_t) -> crate::log::Sink {
    Arc::new(HostLog { log_fn })
}

struct HostLog {
    log_fn: sys::plugin_log_t,
}

impl crate::log::LogSink for HostLog {
    fn line(&self, level: tracing::Level, line: &str) {
        // One copy, with the terminating NUL OpenVPN needs; a NUL inside would cut the line.
        // On the stack for a short line, so logging it allocates nothing.
        let mut on_stack = [0u8; 256];
        let mut on_heap = Vec::new();
        let buffer: &mut [u8] = if line.len() < on_stack.len() {
            &mut on_stack[..line.len() + 1]
        } else {
            on_heap.resize(line.len() + 1, 0);
            &mut on_heap
        };
        buffer[..line.len()].copy_from_slice(line.as_bytes());
        buffer[line.len()] = 0;
        for byte in &mut buffer[..line.len()] {
            if *byte == 0 {
                *byte = b'?';
            }
        }
        if let Some(line) = crate::log::NulTerminated::new(buffer) {
            self.c_line(level, line);
        }
    }

    fn c_line(&self, level: tracing::Level, line: crate::log::NulTerminated<'_>) {
        let flags = match level {
            tracing::Level::ERROR => sys::PLOG_ERR,
            tracing::Level::WARN => sys::PLOG_WARN,
            tracing::Level::INFO => sys::PLOG_NOTE,
            _ => sys::PLOG_DEBUG,
        };
        match self.log_fn {
            // SAFETY: OpenVPN's plugin_log is printf-like; "%s" with one string argument is a
            // well-formed call, made on OpenVPN's calling thread. The string's bytes end in a
            // NUL (`NulTerminated`), so reading it up to its first NUL stays inside them; a NUL
            // before the last would only end the line early, and none is there: `line()`
            // replaces them, and `Line` writes none.
            Some(log) => unsafe {
                log(
                    flags,
                    PLUGIN_NAME.as_ptr(),
                    c"%s".as_ptr(),
                    line.with_nul().as_ptr().cast::<c_char>(),
                )
            },
            None => eprintln!("motp: {}", String::from_utf8_lossy(line.text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::WANTED_NAMES;
    use std::ffi::CString;

    /// `read_env` over `entries`, as OpenVPN would pass them.
    fn read(entries: &[Vec<u8>]) -> Vec<Option<Vec<u8>>> {
        read_with(entries, &WANTED_FIRST_BYTES, WantedSet::NONE)
    }

    fn read_with(
        entries: &[Vec<u8>],
        first_bytes: &[bool; 256],
        needed: WantedSet,
    ) -> Vec<Option<Vec<u8>>> {
        let owned: Vec<CString> = entries
            .iter()
            .map(|e| CString::new(e.clone()).unwrap())
            .collect();
        let mut array: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        array.push(std::ptr::null());
        // SAFETY: a NULL-terminated array of C strings that outlive the call.
        let mut env = unsafe { read_env(array.as_ptr(), first_bytes, needed, |_| {}) };
        Wanted::ALL
            .iter()
            .map(|&w| env.slot_of(w).map(<[u8]>::to_vec))
            .collect()
    }

    #[test]
    fn the_reader_stops_once_a_login_without_prompts_has_what_it_reads() {
        let entries: Vec<Vec<u8>> = [
            "username=alice",
            "password=123456",
            "common_name=alice",
            "untrusted_ip=10.0.0.1",
            "auth_control_file=/tmp/acf",
            "auth_failed_reason_file=/tmp/afr",
            "untrusted_ip6=::1",
            "auth_pending_file=/tmp/apf",
        ]
        .iter()
        .map(|e| e.as_bytes().to_vec())
        .collect();
        let whole = read_with(
            &entries,
            &WANTED_FIRST_BYTES_WITHOUT_PROMPT,
            WantedSet::NONE,
        );
        let stopped = read_with(
            &entries,
            &WANTED_FIRST_BYTES_WITHOUT_PROMPT,
            NEEDED_WITHOUT_PROMPT,
        );
        assert_eq!(whole[Wanted::UntrustedIp6 as usize], Some(b"::1".to_vec()));
        assert_eq!(stopped[Wanted::UntrustedIp6 as usize], None, "not read");
        assert_eq!(stopped[Wanted::AuthPendingFile as usize], None, "not read");
        for wanted in Wanted::ALL
            .into_iter()
            .filter(|&w| NEEDED_WITHOUT_PROMPT.contains(w))
        {
            assert_eq!(
                stopped[wanted as usize], whole[wanted as usize],
                "{wanted:?}"
            );
        }
        // Without one of them (an IPv6 client: no untrusted_ip), the whole env is read.
        let ipv6: Vec<Vec<u8>> = entries
            .into_iter()
            .filter(|e| !e.starts_with(b"untrusted_ip="))
            .collect();
        let stopped = read_with(
            &ipv6,
            &WANTED_FIRST_BYTES_WITHOUT_PROMPT,
            NEEDED_WITHOUT_PROMPT,
        );
        assert_eq!(
            stopped[Wanted::UntrustedIp6 as usize],
            Some(b"::1".to_vec())
        );
        assert_eq!(
            stopped[Wanted::AuthPendingFile as usize],
            Some(b"/tmp/apf".to_vec())
        );
    }

    #[test]
    fn env_reader_agrees_with_the_name_matcher() {
        let mut entries: Vec<Vec<u8>> = Vec::new();
        for name in WANTED_NAMES {
            for cut in 0..=name.len() {
                entries.push([&name[..cut], b"=short"].concat());
                entries.push(name[..cut].to_vec());
            }
            for extra in [&b"x"[..], b"_", b"6", b" ", b"=", b"=="] {
                entries.push([name, extra, b"=longer"].concat());
                entries.push([name, b"=", extra].concat());
            }
            let mut upper = name.to_vec();
            upper[1] = upper[1].to_ascii_uppercase();
            entries.push([&upper[..], b"=case"].concat());
        }
        for other in [
            &b"untrusted_port=1194"[..],
            b"IV_SSO2=x",
            b"IV_VER=2.6",
            b"tls_id_0=CN=x",
            b"config=/etc/openvpn",
            b"auth_x=1",
            b"",
            b"=",
            b"u",
            b"IV",
        ] {
            entries.push(other.to_vec());
        }
        // Every entry first, then every wanted name with a value of its own: the first
        // occurrence wins in both readers.
        let mut all = entries.clone();
        for (i, name) in WANTED_NAMES.iter().enumerate() {
            all.push([name, &b"="[..], i.to_string().as_bytes()].concat());
        }
        for start in 0..all.len() {
            let slice = &all[start..];
            let mut expected = AuthEnv::parse(slice.iter().map(Vec::as_slice));
            let expected: Vec<_> = Wanted::ALL
                .iter()
                .map(|&w| expected.slot_of(w).map(<[u8]>::to_vec))
                .collect();
            assert_eq!(read(slice), expected, "from entry {start}");
            // Without prompts: the same, but IV_SSO is never read.
            let mut without_prompt = expected.clone();
            without_prompt[Wanted::IvSso as usize] = None;
            assert_eq!(
                read_with(slice, &WANTED_FIRST_BYTES_WITHOUT_PROMPT, WantedSet::NONE),
                without_prompt,
                "from entry {start}, without prompts"
            );
            // Stopping once the names a login without prompts reads are met: those names,
            // and the client's address, read as from the whole env.
            let stopped = read_with(
                slice,
                &WANTED_FIRST_BYTES_WITHOUT_PROMPT,
                NEEDED_WITHOUT_PROMPT,
            );
            for wanted in Wanted::ALL {
                if NEEDED_WITHOUT_PROMPT.contains(wanted) {
                    assert_eq!(
                        stopped[wanted as usize], expected[wanted as usize],
                        "{wanted:?} from entry {start}, stopping early"
                    );
                }
            }
            let address = |read: &[Option<Vec<u8>>]| {
                read[Wanted::UntrustedIp as usize]
                    .clone()
                    .or_else(|| read[Wanted::UntrustedIp6 as usize].clone())
            };
            assert_eq!(address(&stopped), address(&expected), "from entry {start}");
        }
    }
}
