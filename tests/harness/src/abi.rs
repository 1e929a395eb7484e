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

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use openvpn_plugin_sys as sys;

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

/// One message the plugin sent through `plugin_log`/`plugin_vlog`, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `PLOG_*` bits.
    pub flags: c_int,
    /// The plugin name argument (OpenVPN drops messages whose name is empty).
    pub name: String,
    /// The formatted text (lossily decoded if it was not UTF-8).
    pub message: String,
}

impl LogLine {
    /// `ERR`, `WARN`, `NOTE` or `DEBUG` (plus `|ERRNO`, `|NOMUTE`), for assertions and output.
    pub fn level(&self) -> String {
        let mut parts = Vec::new();
        for (bit, name) in [
            (sys::PLOG_ERR, "ERR"),
            (sys::PLOG_WARN, "WARN"),
            (sys::PLOG_NOTE, "NOTE"),
            (sys::PLOG_DEBUG, "DEBUG"),
            (sys::PLOG_ERRNO, "ERRNO"),
            (sys::PLOG_NOMUTE, "NOMUTE"),
        ] {
            if self.flags & bit != 0 {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            format!("{:#x}", self.flags)
        } else {
            parts.join("|")
        }
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level(), self.name, self.message)
    }
}

type Recorder = Arc<Mutex<Vec<LogLine>>>;

fn lock(recorder: &Mutex<Vec<LogLine>>) -> MutexGuard<'_, Vec<LogLine>> {
    recorder
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    static CURRENT: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Lines logged while no plugin call was in progress on the logging thread (a plugin logging
/// from a thread of its own, or after returning). OpenVPN's API does not allow that.
static UNATTRIBUTED: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());

/// Lines that arrived outside any call made through this module (normally none).
pub fn unattributed_logs() -> Vec<LogLine> {
    lock(&UNATTRIBUTED).clone()
}

/// Called by the C `plugin_log`/`plugin_vlog` with the finished message.
///
/// # Safety
/// `name` and `message` must each be NULL or a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn motp_harness_record_log(
    flags: c_int,
    name: *const c_char,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            "(NULL)".to_owned()
        } else {
            // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let line = LogLine {
        flags,
        name: text(name),
        message: text(message),
    };
    // Never unwind into C (an unwind out of an extern "C" fn aborts the test binary).
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let current = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
        match current {
            Some(recorder) => {
                // Shown by libtest only when the test fails.
                eprintln!("[motp.so] {line}");
                lock(&recorder).push(line);
            }
            None => {
                eprintln!("[motp.so, outside any call] {line}");
                lock(&UNATTRIBUTED).push(line);
            }
        }
    }));
}

/// Makes `recorder` the calling thread's log target until dropped.
struct Capture {
    previous: Option<Recorder>,
}

impl Capture {
    fn start(recorder: &Recorder) -> Capture {
        let previous = CURRENT.with(|c| c.replace(Some(recorder.clone())));
        Capture { previous }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
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

/// A NULL-terminated `char *` array that owns its strings.
struct CArray {
    _strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl CArray {
    /// Panics on an interior NUL: C cannot pass one, so a test asking for it is wrong.
    fn new(entries: &[Vec<u8>]) -> CArray {
        let strings: Vec<CString> = entries
            .iter()
            .map(|e| {
                CString::new(e.clone()).unwrap_or_else(|_| {
                    panic!(
                        "env/argv entry {:?} contains a NUL byte, which C cannot pass",
                        String::from_utf8_lossy(e)
                    )
                })
            })
            .collect();
        let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(ptr::null());
        CArray {
            _strings: strings,
            pointers,
        }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.pointers.as_ptr()
    }
}

fn path_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

/// How to open the plugin. [`OpenOptions::new`] gives what OpenVPN 2.6 passes for
/// `plugin /path/motp.so /path/motp.toml`; the fields allow the odd cases.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The `.so` to dlopen.
    pub so_path: PathBuf,
    /// `argv` as passed to `open_v3` and every `func_v3` (argv[0] is the `.so` path).
    pub argv: Vec<Vec<u8>>,
    /// `envp` at open time.
    pub envp: Vec<Vec<u8>>,
    /// The `version` argument (`OPENVPN_PLUGINv3_STRUCTVER` = 5 from OpenVPN 2.4.12 on).
    pub version: c_int,
    /// Pass the callback table (OpenVPN always does); `false` passes NULL.
    pub callbacks: bool,
    /// `(uid, gid)` OpenVPN switches to (`user`/`group`). When set, the plugin is loaded as the
    /// current user, asked for its initialization point, and the whole process switches to
    /// this user before `open_v3` if the plugin asked for `POST_UID_CHANGE` (after it
    /// otherwise). Irreversible: for a child process of a test only.
    pub runtime_user: Option<(u32, u32)>,
}

impl OpenOptions {
    /// `plugin <plugin_path()> <config>`.
    pub fn new(config: &Path) -> OpenOptions {
        let so_path = crate::plugin_path();
        OpenOptions {
            argv: vec![path_bytes(&so_path), path_bytes(config)],
            so_path,
            envp: open_env(),
            version: sys::OPENVPN_PLUGINV3_STRUCTVER,
            callbacks: true,
            runtime_user: None,
        }
    }

    pub fn open(self) -> Result<Plugin, OpenError> {
        Plugin::open_with(self)
    }
}

/// The environment OpenVPN 2.6 passes to `open_v3` for a UDP server (`plugin` at PRE_DAEMON).
fn open_env() -> Vec<Vec<u8>> {
    [
        "config=/etc/openvpn/server/server.conf",
        "daemon=0",
        "daemon_log_redirect=0",
        "daemon_start_time=1764316800",
        "daemon_pid=4242",
        "proto_1=udp",
        "local_port_1=1194",
        "remote_port_1=1194",
        "verb=3",
        "dev=tun0",
        "dev_type=tun",
        "script_context=init",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// What `openvpn_plugin_select_initialization_point_v1` answers, as OpenVPN asks right after
/// loading; `OPENVPN_PLUGIN_INIT_PRE_DAEMON` (OpenVPN's default) when it is not exported.
fn requested_point(library: &Library) -> c_int {
    // SAFETY: the symbol, if present, is `int (*)(void)` as the header declares; it is called
    // while `library` is loaded.
    unsafe {
        match library.get::<unsafe extern "C" fn() -> c_int>(
            b"openvpn_plugin_select_initialization_point_v1\0",
        ) {
            Ok(select) => select(),
            Err(_) => sys::OPENVPN_PLUGIN_INIT_PRE_DAEMON,
        }
    }
}

/// The initialization point the plugin at `so` asks for (it is loaded and unloaded for this).
pub fn requested_initialization_point(so: &Path) -> c_int {
    // SAFETY: as in `Plugin::open_with`.
    let library = unsafe { Library::open(Some(so), RTLD_NOW | RTLD_LOCAL) }
        .unwrap_or_else(|e| panic!("cannot dlopen {}: {e}", so.display()));
    requested_point(&library)
}

/// Switches the whole process to `uid`/`gid` with no supplementary groups, as OpenVPN's
/// `user`/`group` do.
fn become_user(uid: u32, gid: u32) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[])
        .and_then(|()| setgid(Gid::from_raw(gid)))
        .and_then(|()| setuid(Uid::from_raw(uid)))
        .unwrap_or_else(|e| panic!("cannot switch to uid {uid} gid {gid}: {e}"));
}

/// `open_v3` refused, or returned success with a NULL handle (OpenVPN treats both as fatal).
#[derive(Debug, Clone)]
pub struct OpenError {
    /// What `open_v3` returned.
    pub code: c_int,
    /// `open_v3` returned `OPENVPN_PLUGIN_FUNC_SUCCESS` but no handle.
    pub null_handle: bool,
    /// Everything the plugin logged during the attempt.
    pub logs: Vec<LogLine>,
}

impl OpenError {
    pub fn messages(&self) -> Vec<String> {
        self.logs.iter().map(|l| l.message.clone()).collect()
    }
}

/// One open instance of the plugin. Dropping it calls `close_v1` and then `dlclose`.
pub struct Plugin {
    handle: sys::openvpn_plugin_handle_t,
    type_mask: c_int,
    func_v3: sys::openvpn_plugin_func_v3_fn,
    close_v1: sys::openvpn_plugin_close_v1_fn,
    log: Recorder,
    argv: CArray,
    _open_envp: CArray,
    _callbacks: Option<Box<sys::openvpn_plugin_callbacks>>,
    // Declared last, so it is dropped (dlclose) after everything that points into the library.
    _library: Library,
}

impl Plugin {
    /// Opens [`crate::plugin_path()`] with `config` as its argument, as OpenVPN would.
    pub fn open(config: &Path) -> Result<Plugin, OpenError> {
        OpenOptions::new(config).open()
    }

    pub fn open_with(options: OpenOptions) -> Result<Plugin, OpenError> {
        let so = &options.so_path;
        // SAFETY: loading the plugin runs its initialisers; motp.so has no load-time code that
        // needs more than a normal process. RTLD_NOW | RTLD_LOCAL is what OpenVPN uses.
        let library =
            unsafe { Library::open(Some(so), RTLD_NOW | RTLD_LOCAL) }.unwrap_or_else(|e| {
                panic!(
                    "cannot dlopen {}: {e} (is it built? `cargo build` builds it)",
                    so.display()
                )
            });
        // SAFETY: the symbol types are the header's, as checked by openvpn-plugin-sys's layout
        // test; the copies are only used while `library` is loaded (it is dropped last).
        let (open_v3, func_v3, close_v1) = unsafe {
            let open: sys::openvpn_plugin_open_v3_fn = *library
                .get::<sys::openvpn_plugin_open_v3_fn>(b"openvpn_plugin_open_v3\0")
                .expect("motp.so exports openvpn_plugin_open_v3");
            let func: sys::openvpn_plugin_func_v3_fn = *library
                .get::<sys::openvpn_plugin_func_v3_fn>(b"openvpn_plugin_func_v3\0")
                .expect("motp.so exports openvpn_plugin_func_v3");
            let close: sys::openvpn_plugin_close_v1_fn = *library
                .get::<sys::openvpn_plugin_close_v1_fn>(b"openvpn_plugin_close_v1\0")
                .expect("motp.so exports openvpn_plugin_close_v1");
            (open, func, close)
        };

        let init_point = requested_point(&library);
        let switch = || {
            if let Some((uid, gid)) = options.runtime_user {
                become_user(uid, gid);
            }
        };
        if init_point == sys::OPENVPN_PLUGIN_INIT_POST_UID_CHANGE {
            switch();
        }

        let argv = CArray::new(&options.argv);
        let envp = CArray::new(&options.envp);
        let mut callbacks = options.callbacks.then(|| Box::new(host_callbacks()));
        let callbacks_ptr = callbacks
            .as_deref_mut()
            .map_or(ptr::null_mut(), |c| c as *mut _);
        let version_string = CString::new(format!(
            "OpenVPN {OVPN_VERSION} x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] \
             [PKCS11] [MH/PKTINFO] [AEAD] [DCO]"
        ))
        .expect("no NUL");
        let args = sys::openvpn_plugin_args_open_in {
            // OpenVPN passes every type it supports; the plugin answers with the ones it wants.
            type_mask: (1 << sys::OPENVPN_PLUGIN_N) - 1,
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            callbacks: callbacks_ptr,
            ssl_api: sys::SSLAPI_OPENSSL,
            ovpn_version: version_string.as_ptr(),
            ovpn_version_major: OVPN_VERSION_MAJOR,
            ovpn_version_minor: OVPN_VERSION_MINOR,
            ovpn_version_patch: OVPN_VERSION_PATCH.as_ptr(),
        };
        let mut return_list: *mut sys::openvpn_plugin_string_list = ptr::null_mut();
        let mut ret = sys::openvpn_plugin_args_open_return {
            type_mask: 0,
            handle: ptr::null_mut(),
            return_list: &mut return_list,
        };

        let log: Recorder = Arc::default();
        let code = {
            let _capture = Capture::start(&log);
            // SAFETY: `args` and everything it points to (argv, envp, callbacks, version
            // strings) outlive the call; `ret` is a valid struct for the plugin to fill.
            unsafe { open_v3(options.version, &args, &mut ret) }
        };
        assert!(
            return_list.is_null(),
            "motp.so set a return_list at open, which it has no reason to do"
        );
        if init_point != sys::OPENVPN_PLUGIN_INIT_POST_UID_CHANGE {
            switch();
        }
        if code != sys::OPENVPN_PLUGIN_FUNC_SUCCESS || ret.handle.is_null() {
            // OpenVPN calls no close on a failed open; it exits (M_FATAL). `library` is dropped.
            return Err(OpenError {
                code,
                null_handle: code == sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
                logs: lock(&log).clone(),
            });
        }
        Ok(Plugin {
            handle: ret.handle,
            type_mask: ret.type_mask,
            func_v3,
            close_v1,
            log,
            argv,
            _open_envp: envp,
            _callbacks: callbacks,
            _library: library,
        })
    }

    /// The event mask the plugin asked for.
    pub fn type_mask(&self) -> c_int {
        self.type_mask
    }

    /// The opaque handle `open_v3` returned.
    pub fn handle(&self) -> sys::openvpn_plugin_handle_t {
        self.handle
    }

    /// `AUTH_USER_PASS_VERIFY` with `env`: 0 = success, 1 = error, 2 = deferred.
    pub fn auth(&self, env: &Env) -> c_int {
        self.call(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, Some(env))
    }

    /// `OPENVPN_PLUGIN_CLIENT_CRRESPONSE` with `env` (OpenVPN ignores the result).
    pub fn cr_response(&self, env: &Env) -> c_int {
        self.call(sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE, Some(env))
    }

    /// `AUTH_USER_PASS_VERIFY` with exactly these `name=value` entries, in this order.
    pub fn auth_pairs<V: AsRef<[u8]>>(&self, pairs: &[(&str, V)]) -> c_int {
        self.auth(&Env::from_pairs(pairs))
    }

    /// `func_v3` for `event`; `env = None` passes a NULL `envp`.
    pub fn call(&self, event: c_int, env: Option<&Env>) -> c_int {
        let envp = env.map(|e| CArray::new(&e.entries));
        // SAFETY: the array is NULL or NULL-terminated, built just above, alive for the call.
        unsafe { self.call_envp(event, envp.as_ref().map_or(ptr::null(), CArray::as_ptr)) }
    }

    /// `func_v3` for `event` with an env array the caller built (the ABI bench builds its
    /// arrays ahead of its timed calls), as OpenVPN passes it.
    ///
    /// # Safety
    /// `envp` must be NULL or a NULL-terminated array of C strings valid for the call.
    pub unsafe fn call_envp(&self, event: c_int, envp: *const *const c_char) -> c_int {
        let args = sys::openvpn_plugin_args_func_in {
            type_: event,
            argv: self.argv.as_ptr(),
            envp,
            handle: self.handle,
            per_client_context: ptr::null_mut(),
            // OpenVPN passes -1 and no certificate for everything but TLS_VERIFY.
            current_cert_depth: -1,
            current_cert: ptr::null_mut(),
        };
        let mut return_list: *mut sys::openvpn_plugin_string_list = ptr::null_mut();
        let mut ret = sys::openvpn_plugin_args_func_return {
            return_list: &mut return_list,
        };
        // SAFETY: `args` is fully initialised, its arrays are NULL-terminated and outlive the
        // call, and the handle is open (it is only closed in Drop).
        let code = unsafe { self.func_v3_raw(sys::OPENVPN_PLUGINV3_STRUCTVER, &args, &mut ret) };
        assert!(
            return_list.is_null(),
            "motp.so set a return_list, which it has no reason to do"
        );
        code
    }

    /// Calls `openvpn_plugin_func_v3` exactly as given, with this instance's log capture.
    ///
    /// # Safety
    /// The arguments must be what the plugin API allows (the plugin does check for NULL).
    pub unsafe fn func_v3_raw(
        &self,
        version: c_int,
        args: *const sys::openvpn_plugin_args_func_in,
        ret: *mut sys::openvpn_plugin_args_func_return,
    ) -> c_int {
        let _capture = Capture::start(&self.log);
        // SAFETY: forwarded to the caller.
        unsafe { (self.func_v3)(version, args, ret) }
    }

    /// Every line this instance has logged so far (open, calls, and close once dropped).
    pub fn logs(&self) -> Vec<LogLine> {
        lock(&self.log).clone()
    }

    /// Just the messages of [`Plugin::logs`].
    pub fn messages(&self) -> Vec<String> {
        self.logs().into_iter().map(|l| l.message).collect()
    }

    /// Removes and returns the lines logged so far.
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *lock(&self.log))
    }

    /// A handle on this instance's log that stays readable after the plugin is closed.
    pub fn log_handle(&self) -> LogHandle {
        LogHandle(self.log.clone())
    }

    /// Closes the plugin and unloads the library (what SIGHUP does); returns the whole log.
    pub fn close(self) -> Vec<LogLine> {
        let log = self.log_handle();
        drop(self);
        log.lines()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _capture = Capture::start(&self.log);
        // SAFETY: the handle came from open_v3 and is closed exactly once, here, while the
        // library is still loaded (`_library` is dropped after this runs).
        unsafe { (self.close_v1)(self.handle) };
    }
}

/// A plugin instance's log, readable after the instance is gone.
#[derive(Clone)]
pub struct LogHandle(Recorder);

impl LogHandle {
    pub fn lines(&self) -> Vec<LogLine> {
        lock(&self.0).clone()
    }
}

/// The `envp` of one plugin call: `name=value` entries in order (an entry may also be raw bytes
/// without `=`, as a hostile or buggy host might pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    entries: Vec<Vec<u8>>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn from_pairs<V: AsRef<[u8]>>(pairs: &[(&str, V)]) -> Env {
        let mut env = Env::new();
        for (name, value) in pairs {
            env.push(name, value);
        }
        env
    }

    /// What OpenVPN 2.6.14 passes at `AUTH_USER_PASS_VERIFY` for a client whose certificate CN is
    /// `username`: username and password first, then the certificate, address, deferral files,
    /// peer info and general variables. The three deferral files are created, empty, in
    /// `tmp_dir` (OpenVPN creates them in `--tmp-dir`).
    pub fn openvpn_auth(tmp_dir: &Path, username: &str, password: impl AsRef<[u8]>) -> Env {
        static FILES: AtomicU64 = AtomicU64::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let file = |kind: &str| {
            let path = tmp_dir.join(format!(
                "openvpn_{kind}_{:016x}{:016x}.tmp",
                std::process::id(),
                n
            ));
            std::fs::write(&path, b"").unwrap_or_else(|e| {
                panic!("cannot create {}: {e}", path.display());
            });
            path
        };
        let control = file("acf");
        let pending = file("apf");
        let reason = file("afr");

        let mut env = Env::new();
        env.push("username", username)
            .push("password", password)
            .push("common_name", username)
            .push("X509_0_CN", username)
            .push("X509_0_O", "Example VPN")
            .push("X509_1_CN", "Example VPN CA")
            .push("X509_1_O", "Example VPN")
            .push("tls_id_0", format!("CN={username}, O=Example VPN"))
            .push("tls_id_1", "CN=Example VPN CA, O=Example VPN")
            .push("tls_serial_0", "161793207837393437474126390238373920551")
            .push(
                "tls_serial_hex_0",
                "79:b8:3e:0f:6a:3c:9e:47:15:0c:77:dc:1c:27:49:27",
            )
            .push("tls_serial_1", "501916426216823452117217373216112338458")
            .push(
                "tls_serial_hex_1",
                "7a:0c:4f:32:b5:e1:2e:55:a0:c4:65:f1:0b:9e:1d:1a",
            )
            .push(
                "tls_digest_0",
                "5e:84:5a:0d:3b:5e:cd:2a:9b:22:3f:c8:3b:1a:ab:6d:58:4b:89:c2",
            )
            .push(
                "tls_digest_sha256_0",
                "a1:0b:9f:6f:53:88:62:9c:49:8f:0e:6b:6c:40:91:7a:2c:1b:f4:13:22:8d:7e:6f:0c:\
                 9a:f1:3c:57:21:0d:94",
            )
            .push(
                "tls_digest_1",
                "0d:27:bb:f9:66:e0:5a:8c:2f:70:b4:19:43:6e:d0:9e:3c:5a:71:18",
            )
            .push(
                "tls_digest_sha256_1",
                "3f:41:c2:08:9d:72:e5:6b:b0:5e:13:a4:8c:27:f9:60:11:de:4b:93:7a:c8:06:52:e1:\
                 b7:2d:08:9f:44:c6:1e",
            )
            .push("untrusted_ip", "192.0.2.10")
            .push("untrusted_port", "51234")
            .push("auth_control_file", path_bytes(&control))
            .push("auth_pending_file", path_bytes(&pending))
            .push("auth_failed_reason_file", path_bytes(&reason))
            .push("IV_VER", OVPN_VERSION)
            .push("IV_PLAT", "linux")
            .push("IV_PLAT_VER", "6.1.0-28-amd64")
            .push("IV_TCPNL", "1")
            .push("IV_MTU", "1600")
            .push("IV_NCP", "2")
            .push("IV_CIPHERS", "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305")
            .push("IV_PROTO", "990")
            .push("IV_LZ4", "1")
            .push("IV_LZ4v2", "1")
            .push("IV_LZO", "1")
            .push("IV_COMP_STUB", "1")
            .push("IV_COMP_STUBv2", "1")
            .push("IV_HWADDR", "02:00:5e:10:00:01")
            .push("IV_SSL", "OpenSSL_3.0.17_1_Jul_2025")
            .push("script_type", "user-pass-verify")
            .push("config", "/etc/openvpn/server/server.conf")
            .push("daemon", "0")
            .push("daemon_log_redirect", "0")
            .push("daemon_start_time", "1764316800")
            .push("daemon_pid", "4242")
            .push("proto_1", "udp")
            .push("local_port_1", "1194")
            .push("remote_port_1", "1194")
            .push("dev", "tun0")
            .push("verb", "3")
            .push("tun_mtu", "1500")
            .push("ifconfig_local", "10.8.0.1")
            .push("ifconfig_netmask", "255.255.255.0")
            .push("script_context", "init");
        env
    }

    /// Appends `name=value` (even if `name` is already present).
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Env {
        let mut entry = Vec::with_capacity(name.len() + 1 + value.as_ref().len());
        entry.extend_from_slice(name.as_bytes());
        entry.push(b'=');
        entry.extend_from_slice(value.as_ref());
        self.entries.push(entry);
        self
    }

    /// Appends an entry verbatim (it need not contain `=`).
    pub fn push_raw(&mut self, entry: impl Into<Vec<u8>>) -> &mut Env {
        self.entries.push(entry.into());
        self
    }

    /// Replaces the value of the first `name=` entry in place, or appends one.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Env {
        let position = self.position(name);
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_ref());
        match position {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
        self
    }

    /// Removes every `name=` entry.
    pub fn remove(&mut self, name: &str) -> &mut Env {
        self.entries.retain(|e| !is_entry_for(e, name));
        self
    }

    /// [`Env::set`], by value.
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Env {
        self.set(name, value);
        self
    }

    /// [`Env::remove`], by value.
    pub fn without(mut self, name: &str) -> Env {
        self.remove(name);
        self
    }

    /// The value of the first `name=` entry.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name)
            .map(|i| &self.entries[i][name.len() + 1..])
    }

    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `auth_failed_reason_file` this env names, if any.
    pub fn auth_failed_reason_file(&self) -> Option<PathBuf> {
        self.get("auth_failed_reason_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// What the plugin wrote to `auth_failed_reason_file` (empty if nothing).
    pub fn client_reason(&self) -> String {
        let path = self
            .auth_failed_reason_file()
            .expect("this env has an auth_failed_reason_file");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The `auth_control_file` this env names, if any.
    pub fn auth_control_file(&self) -> Option<PathBuf> {
        self.get("auth_control_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// The `auth_pending_file` this env names, if any.
    pub fn auth_pending_file(&self) -> Option<PathBuf> {
        self.get("auth_pending_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// The deferred answer: `Some(true)` once `1` is the first byte of `auth_control_file`,
    /// `Some(false)` for `0`, `None` if neither arrived within `timeout`.
    pub fn wait_for_control(&self, timeout: std::time::Duration) -> Option<bool> {
        let path = self
            .auth_control_file()
            .expect("this env has an auth_control_file");
        let start = std::time::Instant::now();
        loop {
            match std::fs::read(&path).ok().and_then(|b| b.first().copied()) {
                Some(b'1') => return Some(true),
                Some(b'0') => return Some(false),
                _ if start.elapsed() > timeout => return None,
                _ => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        }
    }

    /// The first byte of `auth_control_file` now (`None` while nothing is written).
    pub fn control_now(&self) -> Option<u8> {
        let path = self.auth_control_file()?;
        std::fs::read(path).ok().and_then(|b| b.first().copied())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| is_entry_for(e, name))
    }
}

fn is_entry_for(entry: &[u8], name: &str) -> bool {
    entry.len() > name.len() && entry.starts_with(name.as_bytes()) && entry[name.len()] == b'='
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_plugin_log_formats_and_records_on_the_calling_thread() {
        let recorder: Recorder = Arc::default();
        {
            let _capture = Capture::start(&recorder);
            // SAFETY: the format takes exactly one C string and one int, both supplied.
            unsafe {
                motp_test_plugin_log(
                    sys::PLOG_WARN | sys::PLOG_NOMUTE,
                    c"motp".as_ptr(),
                    c"%s=%d".as_ptr(),
                    c"answer".as_ptr(),
                    42 as c_int,
                )
            };
        }
        let lines = lock(&recorder).clone();
        assert_eq!(
            lines,
            vec![LogLine {
                flags: sys::PLOG_WARN | sys::PLOG_NOMUTE,
                name: "motp".into(),
                message: "answer=42".into(),
            }]
        );
        assert_eq!(lines[0].to_string(), "WARN|NOMUTE motp: answer=42");
    }

    #[test]
    fn c_base64_and_memzero_follow_openvpn_contracts() {
        let callbacks = host_callbacks();
        let encode = callbacks.plugin_base64_encode.expect("encode set");
        let decode = callbacks.plugin_base64_decode.expect("decode set");
        for (plain, b64) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"6ed4e4", "NmVkNGU0"),
        ] {
            let mut out: *mut c_char = ptr::null_mut();
            // SAFETY: valid input buffer and out-pointer.
            let n = unsafe { encode(plain.as_ptr().cast(), plain.len() as c_int, &mut out) };
            // SAFETY: encode returned a malloc()ed NUL-terminated string.
            let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
            // SAFETY: the C side allocated it with malloc; free it the same way.
            unsafe { libc_free(out.cast()) };
            assert_eq!((n as usize, text.as_str()), (b64.len(), b64));

            let input = CString::new(b64).unwrap();
            let mut buf = [0u8; 16];
            // SAFETY: NUL-terminated input and a writable buffer of the given size.
            let n = unsafe { decode(input.as_ptr(), buf.as_mut_ptr().cast(), 16) };
            assert_eq!(&buf[..n as usize], plain);
        }
        let mut small = [0u8; 2];
        // SAFETY: as above; the output does not fit, which must be reported, not overflowed.
        let n = unsafe { decode(c"Zm9v".as_ptr(), small.as_mut_ptr().cast(), 2) };
        assert_eq!(n, -1);
        // SAFETY: as above.
        let n = unsafe { decode(c"Zm9v!".as_ptr(), small.as_mut_ptr().cast(), 2) };
        assert_eq!(n, -1);

        let mut secret = *b"0123456789abcdef";
        // SAFETY: the pointer and length describe `secret`.
        unsafe {
            callbacks.plugin_secure_memzero.expect("memzero set")(
                secret.as_mut_ptr().cast(),
                secret.len(),
            )
        };
        assert_eq!(secret, [0; 16]);
        assert!(callbacks.plugin_log.is_some() && callbacks.plugin_vlog.is_some());
    }

    extern "C" {
        #[link_name = "free"]
        fn libc_free(p: *mut std::ffi::c_void);
    }

    #[test]
    fn env_set_replaces_in_place_and_get_reads_the_first() {
        let dir = std::env::temp_dir();
        let env = Env::openvpn_auth(&dir, "alice", "123456");
        assert_eq!(env.entries()[0], b"username=alice");
        assert_eq!(env.entries()[1], b"password=123456");
        assert!(env.len() >= 20);
        let env = env.with("password", "abcdef").without("common_name");
        assert_eq!(env.entries()[1], b"password=abcdef");
        assert_eq!(env.get("common_name"), None);
        assert_eq!(env.get("X509_0_CN"), Some(&b"alice"[..]));
        let reason = env.auth_failed_reason_file().unwrap();
        assert_eq!(env.client_reason(), "");
        for name in [
            "auth_control_file",
            "auth_pending_file",
            "auth_failed_reason_file",
        ] {
            let _ = std::fs::remove_file(std::ffi::OsStr::from_bytes(env.get(name).unwrap()));
        }
        assert!(!reason.exists());
    }
}
