//! Envs: OpenVPN's ~50 variables as C strings, built before the clock starts.

use std::ffi::{c_char, CString};
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::Ordering;

use motp_harness::abi::Env;

/// The entries every call shares, as C strings, from `Env::openvpn_auth`.
///
/// Like OpenVPN, which creates a fresh, empty `auth_failed_reason_file` in `--tmp-dir` for
/// every authentication, each call env gets its own empty file (created when the env is built,
/// removed when it is dropped, both outside the timed region). Rewriting one file over and over
/// would measure something else: on ext4, truncating a file that has data and writing it again
/// starts writeback at close (`auto_da_alloc`), hundreds of microseconds.
pub struct Template {
    pub names: Vec<Vec<u8>>,
    pub fixed: Vec<CString>,
    /// Where the per-call reason files go; `None`: the env has no `auth_failed_reason_file`.
    pub reason_dir: Option<PathBuf>,
}

/// The entries that differ per call.
pub const VARYING: [&str; 8] = [
    "auth_failed_reason_file",
    "username",
    "password",
    "common_name",
    "X509_0_CN",
    "tls_id_0",
    "untrusted_ip",
    "untrusted_port",
];

impl Template {
    pub fn new(tmp: &Path, with_reason_file: bool) -> Template {
        let mut env = Env::openvpn_auth(tmp, "template", "000000");
        if !with_reason_file {
            env.remove("auth_failed_reason_file");
        }
        let names = env
            .entries()
            .iter()
            .map(|e| e.split(|&b| b == b'=').next().unwrap_or(e).to_vec())
            .collect();
        let fixed = env
            .entries()
            .iter()
            .map(|e| CString::new(e.clone()).expect("no NUL in the env"))
            .collect();
        Template {
            names,
            fixed,
            reason_dir: with_reason_file.then(|| tmp.to_owned()),
        }
    }

    pub fn len(&self) -> usize {
        self.fixed.len()
    }

    /// The env of one login: `username`, its certificate CN (the same name), `password`, and
    /// optionally the client's address.
    pub fn build(&self, username: &str, password: &str, from: Option<(&str, u16)>) -> CallEnv<'_> {
        static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let reason = self.reason_dir.as_ref().map(|dir| {
            let n = FILES.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("openvpn_afr_{n:016x}.tmp"));
            File::create(&path).expect("create auth_failed_reason_file");
            path
        });
        let mut owned = Vec::with_capacity(VARYING.len() + 1);
        let mut ptrs = Vec::with_capacity(self.fixed.len() + 1);
        for (name, fixed) in self.names.iter().zip(&self.fixed) {
            let value = match name.as_slice() {
                b"auth_failed_reason_file" => reason.as_ref().map(|p| p.display().to_string()),
                b"username" | b"common_name" | b"X509_0_CN" => Some(username.to_owned()),
                b"password" => Some(password.to_owned()),
                b"tls_id_0" => Some(format!("CN={username}, O=Example VPN")),
                b"untrusted_ip" => from.map(|(ip, _)| ip.to_owned()),
                b"untrusted_port" => from.map(|(_, port)| port.to_string()),
                _ => None,
            };
            match value {
                Some(v) => {
                    let mut entry = name.clone();
                    entry.push(b'=');
                    entry.extend_from_slice(v.as_bytes());
                    let c = CString::new(entry).expect("no NUL");
                    ptrs.push(c.as_ptr());
                    owned.push(c);
                }
                None => ptrs.push(fixed.as_ptr()),
            }
        }
        ptrs.push(ptr::null());
        CallEnv {
            _owned: owned,
            ptrs,
            reason,
            _template: PhantomData,
        }
    }
}

impl Drop for CallEnv<'_> {
    fn drop(&mut self) {
        if let Some(path) = &self.reason {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One call's NULL-terminated `envp`; points into its own strings and the template's.
pub struct CallEnv<'t> {
    pub _owned: Vec<CString>,
    pub ptrs: Vec<*const c_char>,
    pub reason: Option<PathBuf>,
    pub _template: PhantomData<&'t Template>,
}
