//! Loading and opening the plugin: [`OpenOptions`], [`Plugin`] (`open_v3`, `func_v3`,
//! `close_v1`), [`OpenError`] and [`requested_initialization_point`].

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use openvpn_plugin_sys as sys;

use super::log::{lock, Capture, LogHandle, LogLine, Recorder};
use super::{
    host_callbacks, path_bytes, Env, OVPN_VERSION, OVPN_VERSION_MAJOR, OVPN_VERSION_MINOR,
    OVPN_VERSION_PATCH,
};

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
