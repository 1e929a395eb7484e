//! Benchmarks `motp.so` through its C ABI, the way OpenVPN 2.6 calls it: the release `.so` is
//! dlopened by `motp_harness::abi`, and every login is one `openvpn_plugin_func_v3` call with
//! OpenVPN's v3 structs and the ~50-variable env OpenVPN builds (credentials first).
//!
//! ```sh
//! cargo build --release -p motp
//! cargo run --release -p motp-harness --bin motp-abi-bench            # all user counts, modes
//! cargo run --release -p motp-harness --bin motp-abi-bench -- --attack 10000000
//! cargo run --release -p motp-harness --bin motp-abi-bench -- --help
//! ```
//!
//! For every state backend (`memory`, and `local` when this build has it), user count and mode,
//! it prints the median ns per call over several timed batches, and calls per second, as
//! markdown, with the part of each call spent in the host's `plugin_log` (the harness's C
//! shim times itself: formatting and writing the line is OpenVPN's work in a real server) and
//! the rest, the plugin's own time. Every env of a batch (its C strings and pointer array) is
//! built before the batch; each call is timed on its own, right after its env was read once
//! (untimed), as OpenVPN has just written it when it calls a plugin, and the timer's own cost
//! is subtracted. Reopening the plugin, pre-passes (accepting the code a replay batch replays,
//! locking the users of a locked batch) and checks of the results are untimed too.
//!
//! Modes:
//! - `valid`: the code of the current step (phone in sync), each user at most once per plugin
//!   instance (a code is accepted once): the batches sweep through distinct users, and when a
//!   batch would need a user again the plugin is reopened (with a fresh state directory for the
//!   local backend) outside the timed region;
//! - `wrong`: a known user, a code valid nowhere in the window (every step is computed);
//! - `unknown`: a username that is not in the table;
//! - `replay`: the code the same user was just accepted with;
//! - `locked`: a user locked by a wrong code (`max_failures = 1`) sends the correct code.
//!
//! Every call's return value is checked, and so is the plugin's log line for it (`login
//! accepted`, `reason="bad code"`, ...), so each mode measures what it says. The harness's
//! `plugin_log` writes each line to stderr: stderr is pointed at /dev/null while the plugin is
//! called (and restored for anything this program prints, and on panic).
//!
//! First the attacker test, while the process is fresh: resident memory of this process before
//! and after N rejected logins with random usernames and random source addresses. Then the
//! modes, and then `floors`: the same machine's cost of the pieces a call is made of (one MD5,
//! 37 MD5s one after another, the window search, writing `auth_failed_reason_file`, the host's
//! `plugin_log`), checked against the targets of issue 7.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use motp::engine::{
    burn_window, burn_window_costing, code_at_step, find_step, find_step_costing, step_of, Code,
};
use motp_harness::abi::{Env, OpenOptions, Plugin};
use motp_harness::openvpn::{unix_now, write_motp_config, TempDir};
use motp_harness::synthetic::{pin, secret};
use openvpn_plugin_sys as sys;

const RADIUS: i64 = 18;
/// Never reached in a run: wrong codes and replays stay what they are.
const NO_LOCKOUT: u32 = u32::MAX;
const LOCKOUT_SECS: u64 = 30 * 24 * 3600;

const USAGE: &str = "\
motp-abi-bench: motp.so through its C ABI (build it first: cargo build --release -p motp)

options:
  --users LIST       user counts, comma-separated (default 10,1000,100000,1000000)
  --modes LIST       valid,wrong,unknown,replay,locked (default all)
  --backend B        memory, local or both (default both; local only if this build has it)
  --batches N        timed batches per mode and user count (default 21)
  --batch-size N     calls per batch (default 1000; a valid batch is at most the user count)
  --local-batches N  timed batches for the local backend (default 11)
  --attack N         rejected logins in the attacker test (default 1000000; 0 skips it)
  --no-floors        skip the floor measurements
  --attack-only      only the attacker test
  --state-parent DIR where the local backend's state directories go (default /var/tmp: on
                     disk, as /var/lib/openvpn-motp is); motp.toml and the per-call
                     auth_failed_reason_file go to $TMPDIR, like OpenVPN's --tmp-dir
";

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Valid,
    Wrong,
    Unknown,
    Replay,
    Locked,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Valid,
        Mode::Wrong,
        Mode::Unknown,
        Mode::Replay,
        Mode::Locked,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Valid => "valid",
            Mode::Wrong => "wrong",
            Mode::Unknown => "unknown",
            Mode::Replay => "replay",
            Mode::Locked => "locked",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Valid => "accept (phone in sync)",
            Mode::Wrong => "wrong code",
            Mode::Unknown => "unknown user",
            Mode::Replay => "replay",
            Mode::Locked => "locked",
        }
    }

    /// What the plugin must log for each call of this mode.
    fn log_marker(self) -> &'static str {
        match self {
            Mode::Valid => "login accepted",
            Mode::Wrong => "reason=\"bad code\"",
            Mode::Unknown => "reason=\"unknown user\"",
            Mode::Replay => "reason=replay",
            Mode::Locked => "reason=locked",
        }
    }

    fn expected_return(self) -> c_int {
        match self {
            Mode::Valid => sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
            _ => sys::OPENVPN_PLUGIN_FUNC_ERROR,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Backend {
    Memory,
    Local,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Local => "local",
        }
    }
}

struct Options {
    users: Vec<usize>,
    modes: Vec<Mode>,
    backends: Vec<Backend>,
    batches: usize,
    local_batches: usize,
    batch_size: usize,
    attack: u64,
    floors: bool,
    state_parent: PathBuf,
}

fn parse_options() -> Options {
    let mut o = Options {
        users: vec![10, 1_000, 100_000, 1_000_000],
        modes: Mode::ALL.to_vec(),
        backends: vec![Backend::Memory, Backend::Local],
        batches: 21,
        local_batches: 11,
        batch_size: 1000,
        attack: 1_000_000,
        floors: true,
        state_parent: PathBuf::from("/var/tmp"),
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> u64 {
        let v = v.unwrap_or_else(|| die(&format!("{what} needs a value")));
        v.replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| die(&format!("{what}: `{v}` is not a number")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--users" => {
                let v = args.next().unwrap_or_else(|| die("--users needs a list"));
                o.users = v
                    .split(',')
                    .map(|n| {
                        n.replace('_', "")
                            .parse()
                            .unwrap_or_else(|_| die(&format!("--users: `{n}` is not a number")))
                    })
                    .collect();
            }
            "--modes" => {
                let v = args.next().unwrap_or_else(|| die("--modes needs a list"));
                o.modes = v
                    .split(',')
                    .map(|m| {
                        *Mode::ALL
                            .iter()
                            .find(|x| x.name() == m)
                            .unwrap_or_else(|| die(&format!("--modes: unknown mode `{m}`")))
                    })
                    .collect();
            }
            "--backend" => match args.next().as_deref() {
                Some("memory") => o.backends = vec![Backend::Memory],
                Some("local") => o.backends = vec![Backend::Local],
                Some("both") => o.backends = vec![Backend::Memory, Backend::Local],
                _ => die("--backend takes memory, local or both"),
            },
            "--batches" => o.batches = number(args.next(), "--batches").max(1) as usize,
            "--local-batches" => {
                o.local_batches = number(args.next(), "--local-batches").max(1) as usize
            }
            "--batch-size" => o.batch_size = number(args.next(), "--batch-size").max(1) as usize,
            "--attack" => o.attack = number(args.next(), "--attack"),
            "--no-floors" => o.floors = false,
            "--attack-only" => {
                o.users.clear();
                o.floors = false;
            }
            "--state-parent" => {
                o.state_parent = PathBuf::from(
                    args.next()
                        .unwrap_or_else(|| die("--state-parent needs a directory")),
                )
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            // `cargo bench`-style harness flags are ignored.
            "--bench" => {}
            other => die(&format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    o
}

fn die(message: &str) -> ! {
    stderr_restore();
    eprintln!("motp-abi-bench: {message}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// stderr: the harness prints every plugin log line there; silence it while the plugin runs.

extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
}

/// A duplicate of the original stderr, or -1 before [`stderr_setup`].
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);
/// An fd open on /dev/null.
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);

fn stderr_setup() {
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    // SAFETY: dup of fd 2, which is open for the whole process; the copy is never closed.
    let saved = unsafe { dup(2) };
    assert!(saved >= 0, "dup(2) failed");
    SAVED_STDERR.store(saved, Ordering::SeqCst);
    // The /dev/null fd stays open for the life of the process.
    DEV_NULL.store(null.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(null);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stderr_restore();
        default_hook(info);
    }));
}

fn stderr_silence() {
    let null = DEV_NULL.load(Ordering::SeqCst);
    if null >= 0 {
        // SAFETY: both fds are open; dup2 atomically points fd 2 at /dev/null.
        unsafe { dup2(null, 2) };
    }
}

fn stderr_restore() {
    let saved = SAVED_STDERR.load(Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is our open duplicate of the original stderr.
        unsafe { dup2(saved, 2) };
    }
}

// ---------------------------------------------------------------------------------------------
// Users and configs

/// One extra user in every config, never timed: accepted once after each open to warm up the
/// accept path (its code, the store) before a batch.
const WARM_USER: &str = "w0000000";
const WARM_INDEX: usize = 99_999_999;

fn user_name(i: usize) -> String {
    format!("u{i:07}")
}

/// Same length as a user name, never in the table.
fn unknown_name(i: usize) -> String {
    format!("x{i:07}")
}

fn valid_code(i: usize, now: i64) -> String {
    motp_harness::synthetic::code(i, now)
}

fn wrong_code(i: usize, now: i64) -> String {
    motp_harness::synthetic::wrong_code(i, now, RADIUS)
}

/// The `[users.*]` tables for `n` users (reused by every config of that size).
fn users_toml(n: usize) -> String {
    let mut text = String::with_capacity(n * 64);
    for i in 0..n {
        text.push_str(&format!(
            "[users.{}]\nsecret = \"{}\"\npin = \"{}\"\n",
            user_name(i),
            secret(i),
            pin(i)
        ));
    }
    text
}

/// `max_failures_per_ip = <max>` if this build knows the key (checked with the crate's own
/// parser, built from the same source as the `.so`), else nothing.
fn no_ip_limit() -> &'static str {
    static LINE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        let line = "max_failures_per_ip = 4294967295\n";
        match motp::config::Config::parse(Path::new("probe.toml"), line) {
            Ok(_) => line,
            Err(_) => "",
        }
    })
}

/// A stable client address per user index (10.0.0.0/8), as if each user had their own.
fn address(i: usize) -> (String, u16) {
    let n = (i as u32) % (1 << 24);
    (
        format!("10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff),
        40_000 + (i % 20_000) as u16,
    )
}

struct Workspace {
    /// motp.toml files and the per-call reason files: `$TMPDIR`, like OpenVPN's `--tmp-dir`.
    dir: TempDir,
    /// The local backend's state directories: on disk, like /var/lib/openvpn-motp.
    state: PathBuf,
    files: usize,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Workspace {
    /// Writes a motp.toml (0640) and returns its path. `local` names a fresh state directory.
    /// The per-address failure limit, where this build has one, is lifted like the per-user
    /// one, so that wrong codes stay wrong codes (the attacker test keeps the defaults).
    fn config(
        &mut self,
        backend: Backend,
        max_failures: u32,
        lockout: u64,
        users: &str,
    ) -> PathBuf {
        self.config_with(backend, max_failures, lockout, users, no_ip_limit())
    }

    fn config_with(
        &mut self,
        backend: Backend,
        max_failures: u32,
        lockout: u64,
        users: &str,
        extra: &str,
    ) -> PathBuf {
        self.files += 1;
        let n = self.files;
        let state = match backend {
            Backend::Memory => "[state]\nbackend = \"memory\"\n".to_owned(),
            Backend::Local => {
                let dir = self.state.join(format!("state-{n}"));
                format!(
                    "[state]\nbackend = \"local\"\ndir = \"{}\"\n",
                    dir.display()
                )
            }
        };
        let path = self.dir.path().join(format!("motp-{n}.toml"));
        let mut text = String::with_capacity(users.len() + 256);
        text.push_str(&format!(
            "# motp-abi-bench\nmax_failures = {max_failures}\nlockout_secs = {lockout}\n{extra}{state}\n"
        ));
        text.push_str(users);
        text.push_str(&format!(
            "[users.{WARM_USER}]\nsecret = \"{}\"\npin = \"{}\"\n",
            secret(WARM_INDEX),
            pin(WARM_INDEX)
        ));
        write_motp_config(&path, &text);
        path
    }
}

// ---------------------------------------------------------------------------------------------
// Envs: OpenVPN's ~50 variables as C strings, built before the clock starts.

/// The entries every call shares, as C strings, from `Env::openvpn_auth`.
///
/// Like OpenVPN, which creates a fresh, empty `auth_failed_reason_file` in `--tmp-dir` for
/// every authentication, each call env gets its own empty file (created when the env is built,
/// removed when it is dropped, both outside the timed region). Rewriting one file over and over
/// would measure something else: on ext4, truncating a file that has data and writing it again
/// starts writeback at close (`auto_da_alloc`), hundreds of microseconds.
struct Template {
    names: Vec<Vec<u8>>,
    fixed: Vec<CString>,
    /// Where the per-call reason files go; `None`: the env has no `auth_failed_reason_file`.
    reason_dir: Option<PathBuf>,
}

/// The entries that differ per call.
const VARYING: [&str; 8] = [
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
    fn new(tmp: &Path, with_reason_file: bool) -> Template {
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

    fn len(&self) -> usize {
        self.fixed.len()
    }

    /// The env of one login: `username`, its certificate CN (the same name), `password`, and
    /// optionally the client's address.
    fn build(&self, username: &str, password: &str, from: Option<(&str, u16)>) -> CallEnv<'_> {
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
struct CallEnv<'t> {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
    reason: Option<PathBuf>,
    _template: PhantomData<&'t Template>,
}

// ---------------------------------------------------------------------------------------------
// One open plugin instance.

struct Instance {
    plugin: Plugin,
}

impl Instance {
    fn open(config: &Path) -> Result<Instance, String> {
        let options = OpenOptions::new(config);
        stderr_silence();
        let opened = options.open();
        stderr_restore();
        match opened {
            Ok(plugin) => {
                plugin.take_logs();
                Ok(Instance { plugin })
            }
            Err(e) => Err(e.messages().join(" | ")),
        }
    }

    /// One `AUTH_USER_PASS_VERIFY`, built as OpenVPN builds it. The caller silences stderr.
    #[inline]
    fn call(&self, env: &CallEnv) -> c_int {
        // SAFETY: `env.ptrs` is a NULL-terminated array of C strings owned by `env` and its
        // template, both alive for the call.
        unsafe {
            self.plugin
                .call_envp(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, env.ptrs.as_ptr())
        }
    }

    /// Calls every env untimed (pre-passes, warm-up); returns the log lines.
    fn run_untimed(&self, envs: &[CallEnv]) -> Vec<String> {
        stderr_silence();
        for env in envs {
            self.call(env);
        }
        stderr_restore();
        self.take_messages()
    }

    /// Reads and clears the instance's log.
    fn take_messages(&self) -> Vec<String> {
        self.plugin
            .take_logs()
            .into_iter()
            .map(|l| l.message)
            .collect()
    }
}

impl CallEnv<'_> {
    /// Reads every byte of the env, as OpenVPN has just done when it calls a plugin (it builds
    /// the array and writes the per-client strings right before the call), so the plugin meets
    /// it in the CPU cache, not in memory last touched a batch ago.
    fn touch(&self) -> usize {
        let mut sum = 0usize;
        for &p in &self.ptrs[..self.ptrs.len() - 1] {
            // SAFETY: every pointer is a NUL-terminated string owned by this env or its template.
            sum = sum.wrapping_add(unsafe { CStr::from_ptr(p) }.to_bytes().len());
        }
        std::hint::black_box(sum)
    }
}

/// Times one batch, each call on its own: the env is touched (untimed) right before its call,
/// and the timer's own cost ([`timer_overhead`]) is subtracted. Returns the time in the calls,
/// the part of it spent in the host's `plugin_log` (formatting and writing the plugin's
/// lines, OpenVPN's work in a real server), and how many calls returned `expected`.
fn timed_batch(
    instance: &Instance,
    envs: &[CallEnv],
    expected: c_int,
) -> (Duration, Duration, usize) {
    stderr_silence();
    let mut matching = 0usize;
    // SAFETY: a plain read of the C shim's counter, on the only thread that updates it.
    let host_before = unsafe { motp_test_host_log_ns() };
    let mut in_calls = Duration::ZERO;
    for env in envs {
        env.touch();
        let start = Instant::now();
        let code = instance.call(env);
        in_calls += start.elapsed();
        matching += usize::from(code == expected);
    }
    // SAFETY: as above.
    let host = unsafe { motp_test_host_log_ns() } - host_before;
    stderr_restore();
    let overhead = timer_overhead() * envs.len() as u32;
    (
        in_calls.saturating_sub(overhead),
        Duration::from_nanos(host),
        matching,
    )
}

/// What `Instant::now()` twice and an `elapsed()` cost with nothing between them: the median
/// over 21 batches of 10,000, measured once.
fn timer_overhead() -> Duration {
    static OVERHEAD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let ns = measure(21, 10_000, |_| {
            let start = Instant::now();
            std::hint::black_box(start.elapsed());
        });
        Duration::from_nanos(ns as u64)
    })
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone, Debug)]
struct Stats {
    median: f64,
    /// Median over the batches of the ns per call spent in the host's `plugin_log`.
    host_median: f64,
    /// Median over the batches of the ns per call outside it: the plugin's own time.
    own_median: f64,
    min: f64,
    max: f64,
    batches: usize,
    calls: usize,
}

fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    // The middle element, or the mean of the two middle ones.
    (v[(n - 1) / 2] + v[n / 2]) / 2.0
}

fn stats(per_call_ns: &[f64], calls: usize) -> Stats {
    stats_with_host(per_call_ns, &vec![0.0; per_call_ns.len()], calls)
}

fn stats_with_host(per_call_ns: &[f64], host_ns: &[f64], calls: usize) -> Stats {
    let mut v = per_call_ns.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let own: Vec<f64> = per_call_ns
        .iter()
        .zip(host_ns)
        .map(|(t, h)| t - h)
        .collect();
    Stats {
        median: median_of(per_call_ns),
        host_median: median_of(host_ns),
        own_median: median_of(&own),
        min: v[0],
        max: v[n - 1],
        batches: n,
        calls,
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} us", ns / 1000.0)
    } else if ns >= 10_000.0 {
        format!("{:.1} us", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_count(n: f64) -> String {
    let n = n.round() as u64;
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|g| g.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

// ---------------------------------------------------------------------------------------------
// One mode at one user count.

struct ModeRun<'a> {
    backend: Backend,
    users: usize,
    users_toml: &'a str,
    mode: Mode,
    batches: usize,
    batch_size: usize,
    template: &'a Template,
}

fn run_mode(ws: &mut Workspace, r: &ModeRun) -> Result<Stats, String> {
    let mode = r.mode;
    let (max_failures, lockout) = match mode {
        Mode::Locked => (1, LOCKOUT_SECS),
        _ => (NO_LOCKOUT, 300),
    };
    let mut config = ws.config(r.backend, max_failures, lockout, r.users_toml);
    let mut instance = Instance::open(&config)?;
    // A valid batch uses each user once; the others cycle through the table.
    let batch = if mode == Mode::Valid {
        r.batch_size.min(r.users)
    } else {
        r.batch_size
    };
    let mut cursor = 0usize;
    let mut used_since_open = 0usize;
    let mut per_call = Vec::with_capacity(r.batches);
    let mut host_per_call = Vec::with_capacity(r.batches);
    let mut calls = 0usize;
    let mut warmed = false;
    let mut straddled = 0;

    while per_call.len() < r.batches {
        if mode == Mode::Valid && used_since_open + batch > r.users {
            // Every user has accepted a code in this instance: start a fresh one.
            drop(instance);
            if r.backend == Backend::Local {
                config = ws.config(r.backend, max_failures, lockout, r.users_toml);
            }
            instance = Instance::open(&config)?;
            used_since_open = 0;
            cursor = 0;
        }
        if !warmed || mode == Mode::Valid {
            // After an open: a few unknown-user logins and one accept of the extra user wake up
            // lazy state and caches (no user of the table is touched).
            let mut warm: Vec<CallEnv> = (0..4)
                .map(|i| r.template.build(&unknown_name(i), "000000", None))
                .collect();
            warm.push(
                r.template
                    .build(WARM_USER, &valid_code(WARM_INDEX, unix_now()), None),
            );
            instance.run_untimed(&warm);
        }

        let now = unix_now();
        let step = step_of(now);
        let indices: Vec<usize> = (0..batch).map(|k| (cursor + k) % r.users).collect();
        cursor = (cursor + batch) % r.users;
        used_since_open += batch;

        // Pre-passes, untimed.
        match mode {
            Mode::Replay => {
                let first: Vec<CallEnv> = indices
                    .iter()
                    .map(|&i| {
                        let (ip, port) = address(i);
                        r.template
                            .build(&user_name(i), &valid_code(i, now), Some((&ip, port)))
                    })
                    .collect();
                instance.run_untimed(&first);
            }
            Mode::Locked => {
                let lock: Vec<CallEnv> = indices
                    .iter()
                    .map(|&i| {
                        let (ip, port) = address(i);
                        r.template
                            .build(&user_name(i), &wrong_code(i, now), Some((&ip, port)))
                    })
                    .collect();
                instance.run_untimed(&lock);
            }
            _ => {}
        }
        let envs: Vec<CallEnv> = indices
            .iter()
            .map(|&i| match mode {
                Mode::Valid | Mode::Replay | Mode::Locked => {
                    r.template.build(&user_name(i), &valid_code(i, now), None)
                }
                Mode::Wrong => r.template.build(&user_name(i), &wrong_code(i, now), None),
                Mode::Unknown => r
                    .template
                    .build(&unknown_name(i), &valid_code(i, now), None),
            })
            .collect();

        let (elapsed, host, matching) = timed_batch(&instance, &envs, mode.expected_return());

        let lines = instance.take_messages();
        let logged = lines
            .iter()
            .filter(|l| l.contains(mode.log_marker()))
            .count();
        if matching != envs.len() || logged != envs.len() {
            return Err(format!(
                "{} {} users, mode {}: {matching}/{} calls returned {}, {logged} log lines say \
                 `{}`; first lines: {:?}",
                r.backend.name(),
                r.users,
                mode.name(),
                envs.len(),
                mode.expected_return(),
                mode.log_marker(),
                lines.iter().take(3).collect::<Vec<_>>()
            ));
        }
        if step_of(unix_now()) != step {
            // The step changed during the batch: codes moved off the window's centre.
            straddled += 1;
            if straddled > 50 {
                return Err("the clock step keeps changing during batches".into());
            }
            continue;
        }
        if !warmed {
            warmed = true;
            continue; // the first batch of an instance warms caches; not counted
        }
        per_call.push(elapsed.as_nanos() as f64 / envs.len() as f64);
        host_per_call.push(host.as_nanos() as f64 / envs.len() as f64);
        calls += envs.len();
    }
    drop(instance);
    Ok(stats_with_host(&per_call, &host_per_call, calls))
}

// ---------------------------------------------------------------------------------------------
// Floors: what each piece of a call costs on this machine, measured in this process.

struct Floor {
    what: &'static str,
    ns: f64,
}

/// Median ns per iteration of `f` over `batches` batches of `per_batch` iterations.
fn measure(batches: usize, per_batch: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut v = Vec::with_capacity(batches);
    for b in 0..=batches {
        let start = Instant::now();
        for k in 0..per_batch {
            f(b * per_batch + k);
        }
        if b > 0 {
            v.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
        }
    }
    stats(&v, batches * per_batch).median
}

extern "C" {
    /// The harness's `plugin_log` (c/host_callbacks.c), as the plugin calls it.
    fn motp_test_plugin_log(flags: c_int, name: *const c_char, format: *const c_char, ...);
    /// Nanoseconds spent in `motp_test_plugin_log` so far (c/host_callbacks.c).
    fn motp_test_host_log_ns() -> u64;
}

/// Issue 7's reference for a rejection: 37 MD5s of the mOTP message, one after another.
const SEQUENTIAL_37: &str = "37 MD5s one after another: 37 × engine::code_at_step";

fn floors(ws: &mut Workspace) -> Vec<Floor> {
    let key = [secret(1), pin(1)].concat();
    let key = key.as_bytes();
    let center = step_of(unix_now());
    let current = code_at_step(center, key);
    let wrong = Code::parse(wrong_code(1, unix_now()).as_bytes()).expect("code");
    let mut out = Vec::new();

    out.push(Floor {
        what: "1 MD5: engine::code_at_step (29-byte message)",
        ns: measure(21, 20_000, |i| {
            std::hint::black_box(code_at_step(center + (i & 1) as i64, key));
        }),
    });
    out.push(Floor {
        what: SEQUENTIAL_37,
        ns: measure(21, 2_000, |_| {
            for offset in -RADIUS..=RADIUS {
                std::hint::black_box(code_at_step(center + offset, std::hint::black_box(key)));
            }
        }),
    });
    out.push(Floor {
        what: "the window: engine::find_step, wrong code (all 37 codes)",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step(std::hint::black_box(wrong), key, center, RADIUS));
        }),
    });
    out.push(Floor {
        what: "the window: engine::burn_window (unknown user)",
        ns: measure(21, 2_000, |_| {
            burn_window(std::hint::black_box(wrong), center, RADIUS);
        }),
    });
    // A table with one long key (a 32-hex secret and a 20-character PIN: two MD5 blocks per
    // code): every search, and the burn for unknown users, costs what that key costs.
    let long_key = b"00112233445566778899aabbccddeeffa-very-long-pin-of-20";
    let cost = long_key.len();
    out.push(Floor {
        what: "52-byte key (2 blocks per code): engine::find_step_costing, wrong code",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step_costing(wrong, long_key, center, RADIUS, cost));
        }),
    });
    out.push(Floor {
        what: "20-byte key in that table: engine::find_step_costing padded to 52, wrong code",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step_costing(wrong, key, center, RADIUS, cost));
        }),
    });
    out.push(Floor {
        what: "unknown user in that table: engine::burn_window_costing padded to 52",
        ns: measure(21, 2_000, |_| {
            burn_window_costing(std::hint::black_box(wrong), center, RADIUS, cost);
        }),
    });
    out.push(Floor {
        what: "accept search: engine::find_step at the current step",
        ns: measure(21, 20_000, |_| {
            std::hint::black_box(find_step(
                std::hint::black_box(current),
                key,
                center,
                RADIUS,
            ));
        }),
    });

    // Into fresh empty files, as OpenVPN hands them over (created and removed untimed).
    let mut per_write = Vec::new();
    for round in 0..=21 {
        let files: Vec<PathBuf> = (0..1_000)
            .map(|k| {
                let p = ws.dir.path().join(format!("afr-floor-{k}.tmp"));
                File::create(&p).expect("create");
                p
            })
            .collect();
        let start = Instant::now();
        for p in &files {
            std::fs::write(p, "Authentication failed").expect("write");
        }
        if round > 0 {
            per_write.push(start.elapsed().as_nanos() as f64 / files.len() as f64);
        }
        for p in &files {
            let _ = std::fs::remove_file(p);
        }
    }
    out.push(Floor {
        what: "write auth_failed_reason_file (fresh empty file: open, write, close; TEMP reasons only)",
        ns: stats(&per_write, per_write.len()).median,
    });

    // The host's plugin_log: formatting and recording a typical decision line. Outside any
    // plugin call the harness files lines as "unattributed" (kept for the process's life), so
    // this is measured on few lines.
    let line =
        CString::new("login rejected ip=192.0.2.10 reason=\"bad code\" user=u0000001".as_bytes())
            .expect("no NUL");
    stderr_silence();
    let host_log = measure(11, 1_000, |_| {
        // SAFETY: "%s" with one NUL-terminated string: a well-formed printf-style call.
        unsafe {
            motp_test_plugin_log(
                sys::PLOG_WARN,
                c"motp".as_ptr(),
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        };
    });
    stderr_restore();
    out.push(Floor {
        what: "host plugin_log: the harness's C vsnprintf + record + stderr write",
        ns: host_log,
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Attacker: N rejected logins, random usernames and source addresses.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn random_name(rng: &mut XorShift) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-@";
    let len = 3 + (rng.next() % 30) as usize;
    (0..len)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// `count` logins with random usernames, codes and source addresses; returns how many were
/// rejected. The envs are built first, the log is cleared after.
fn attack_chunk(instance: &Instance, template: &Template, count: u64, rng: &mut XorShift) -> u64 {
    let addresses: Vec<(String, u16)> = (0..count)
        .map(|_| {
            let r = rng.next();
            (
                format!(
                    "{}.{}.{}.{}",
                    1 + (r % 223),
                    (r >> 8) & 0xff,
                    (r >> 16) & 0xff,
                    1 + ((r >> 24) % 254)
                ),
                1024 + ((r >> 32) % 64_000) as u16,
            )
        })
        .collect();
    let envs: Vec<CallEnv> = addresses
        .iter()
        .map(|(ip, port)| {
            let code = format!("{:06x}", rng.next() & 0xff_ffff);
            template.build(&random_name(rng), &code, Some((ip, *port)))
        })
        .collect();
    let mut rejected = 0;
    stderr_silence();
    for env in &envs {
        rejected += u64::from(instance.call(env) == sys::OPENVPN_PLUGIN_FUNC_ERROR);
    }
    stderr_restore();
    instance.plugin.take_logs();
    rejected
}

fn attack(ws: &mut Workspace, template: &Template, n: u64) -> Result<(), String> {
    // The defaults: 5 failures per user, and (where this build has it) the per-address limit.
    let config = ws.config_with(Backend::Memory, 5, 300, &users_toml(1000), "");
    let instance = Instance::open(&config)?;
    let mut rng = XorShift(0x853c_49e6_748f_ea9b);
    const CHUNK: u64 = 10_000;
    let mut done = 0u64;
    let mut checkpoints = Vec::new();
    // Warm up (first allocations, lazy statics), then measure.
    attack_chunk(&instance, template, CHUNK.min(n.max(1)), &mut rng);
    let mut rejected = 0u64;
    let before = rss_bytes();
    println!(
        "attacker test: {} logins, random usernames (3-32 chars) and random IPv4 source \
         addresses/ports, memory backend, 1,000-user table; VmRSS before: {:.1} MB",
        fmt_count(n as f64),
        before as f64 / 1e6
    );
    let start = Instant::now();
    let step = (n / 10).max(CHUNK);
    let mut next_report = step;
    while done < n {
        let count = CHUNK.min(n - done);
        rejected += attack_chunk(&instance, template, count, &mut rng);
        done += count;
        if done >= next_report || done == n {
            let rss = rss_bytes();
            checkpoints.push((done, rss));
            next_report += step;
        }
    }
    let elapsed = start.elapsed();
    let after = rss_bytes();
    drop(instance);
    println!();
    println!("| rejected logins so far | VmRSS | growth since before |");
    println!("|---:|---:|---:|");
    for (count, rss) in &checkpoints {
        println!(
            "| {} | {:.1} MB | {:+.1} MB |",
            fmt_count(*count as f64),
            *rss as f64 / 1e6,
            (*rss as f64 - before as f64) / 1e6
        );
    }
    println!();
    println!(
        "attacker test: {} of {} rejected; VmRSS before {:.1} MB, after {:.1} MB ({:+.1} MB, {:+.2} bytes per login); \
         {:.1} s, {} calls/s including building the envs",
        fmt_count(rejected as f64),
        fmt_count(n as f64),
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after as f64 - before as f64) / 1e6,
        (after as f64 - before as f64) / n.max(1) as f64,
        elapsed.as_secs_f64(),
        fmt_count(n as f64 / elapsed.as_secs_f64()),
    );
    if rejected != n {
        return Err(format!(
            "only {rejected} of {n} attacker logins were rejected"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// The type of the filesystem holding `path`, from /proc/mounts (longest matching mount point).
fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "?".into(), |(_, kind)| kind)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs ({model}), load average {}", load_average())
}

fn main() {
    let opts = parse_options();
    stderr_setup();
    if cfg!(debug_assertions) {
        eprintln!(
            "motp-abi-bench: this is a debug build of the bench; run it with --release \
             (cargo run --release -p motp-harness --bin motp-abi-bench)"
        );
    }
    let so = motp_harness::plugin_path();
    let Ok(meta) = std::fs::metadata(&so) else {
        die(&format!(
            "{} is missing; build it first: cargo build --release -p motp",
            so.display()
        ));
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .map_or("?".into(), |d| format!("{:.0} min", d.as_secs_f64() / 60.0));
    println!("# motp.so through the C ABI");
    println!();
    println!(
        "plugin: {} (built {age} ago); machine: {}",
        so.display(),
        machine()
    );
    let state = opts
        .state_parent
        .join(format!("motp-abi-bench-state-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("create the state parent directory");
    let mut ws = Workspace {
        dir: TempDir::new("abi-bench"),
        state,
        files: 0,
    };
    let template = Template::new(ws.dir.path(), true);
    println!(
        "env: {} variables per call as OpenVPN 2.6 passes them (username and password first); \
         temp files (motp.toml, a fresh auth_failed_reason_file per call) in {} ({}; set \
         TMPDIR to move them); local state in {} ({})",
        template.len(),
        ws.dir.path().display(),
        filesystem_of(ws.dir.path()),
        ws.state.display(),
        filesystem_of(&ws.state),
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // First, while this process is fresh: its heap holds nothing yet that a later run freed
    // (glibc keeps freed memory, which would hide growth).
    if opts.attack > 0 {
        println!();
        println!("## attacker test, load average {}", load_average());
        println!();
        if let Err(e) = attack(&mut ws, &template, opts.attack) {
            stderr_restore();
            eprintln!("motp-abi-bench: {e}");
            std::process::exit(1);
        }
    }
    let mut results: BTreeMap<(Backend, usize, Mode), Stats> = BTreeMap::new();
    let mut loads: BTreeMap<Backend, (String, String)> = BTreeMap::new();

    for &backend in opts.backends.iter().filter(|_| !opts.users.is_empty()) {
        let load_before = load_average();
        let batches = match backend {
            Backend::Memory => opts.batches,
            Backend::Local => opts.local_batches,
        };
        if backend == Backend::Local {
            // Does this build have the local backend?
            let probe = ws.config(Backend::Local, 5, 300, &users_toml(1));
            if let Err(e) = Instance::open(&probe) {
                println!();
                println!("backend \"local\" not measured: the plugin refused it: {e}");
                continue;
            }
        }
        for &users in &opts.users {
            let toml = users_toml(users);
            for &mode in &opts.modes {
                let run = ModeRun {
                    backend,
                    users,
                    users_toml: &toml,
                    mode,
                    batches,
                    batch_size: opts.batch_size,
                    template: &template,
                };
                match run_mode(&mut ws, &run) {
                    Ok(s) => {
                        println!(
                            "  {:<6} {:>9} users  {:<24} median {:>9}/call (host log {}, plugin {})  {:>9} calls/s  ({} batches, {} calls, load {})",
                            backend.name(),
                            fmt_count(users as f64),
                            mode.describe(),
                            fmt_ns(s.median),
                            fmt_ns(s.host_median),
                            fmt_ns(s.own_median),
                            fmt_count(1e9 / s.median),
                            s.batches,
                            fmt_count(s.calls as f64),
                            load_average()
                        );
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                        results.insert((backend, users, mode), s);
                    }
                    Err(e) => {
                        stderr_restore();
                        eprintln!("motp-abi-bench: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
        loads.insert(backend, (load_before, load_average()));
    }

    // The tables.
    for (&backend, (load_before, load_after)) in &loads {
        println!();
        println!(
            "## backend \"{}\": median ns per call (calls/s), load average {load_before} → {load_after}",
            backend.name()
        );
        println!();
        let mut header = "| mode |".to_owned();
        let mut rule = "|---|".to_owned();
        for &users in &opts.users {
            header.push_str(&format!(" {} users |", fmt_count(users as f64)));
            rule.push_str("---:|");
        }
        println!("{header}");
        println!("{rule}");
        for &mode in &opts.modes {
            let mut row = format!("| {} |", mode.describe());
            for &users in &opts.users {
                match results.get(&(backend, users, mode)) {
                    Some(s) => row.push_str(&format!(
                        " {} ({}/s) |",
                        fmt_ns(s.median),
                        fmt_count(1e9 / s.median)
                    )),
                    None => row.push_str(" - |"),
                }
            }
            println!("{row}");
        }
        println!();
        println!(
            "| users | mode | median | of which host plugin_log | plugin's own | min | max | calls/s | batches × calls |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for &users in &opts.users {
            for &mode in &opts.modes {
                if let Some(s) = results.get(&(backend, users, mode)) {
                    println!(
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} × {} |",
                        fmt_count(users as f64),
                        mode.describe(),
                        fmt_ns(s.median),
                        fmt_ns(s.host_median),
                        fmt_ns(s.own_median),
                        fmt_ns(s.min),
                        fmt_ns(s.max),
                        fmt_count(1e9 / s.median),
                        s.batches,
                        s.calls / s.batches.max(1)
                    );
                }
            }
        }
    }

    if opts.floors {
        println!();
        println!(
            "## floors (this process, same machine), load average {}",
            load_average()
        );
        println!();
        let f = floors(&mut ws);
        println!("| piece of a login | median ns |");
        println!("|---|---:|");
        for floor in &f {
            println!("| {} | {:.0} |", floor.what, floor.ns);
        }
        // The targets of issue 7 that these numbers decide.
        let md5x37 = f
            .iter()
            .find(|floor| floor.what == SEQUENTIAL_37)
            .expect("measured above")
            .ns;
        println!();
        println!("## targets (memory backend)");
        println!();
        let get = |users: usize, mode: Mode| results.get(&(Backend::Memory, users, mode));
        if let Some(s) = get(1000, Mode::Valid) {
            println!(
                "- accept at 1,000 users: {} through the ABI (target < 500 ns): {}; the plugin's \
                 own time, without the host's plugin_log: {}: {}",
                fmt_ns(s.median),
                verdict(s.median < 500.0),
                fmt_ns(s.own_median),
                verdict(s.own_median < 500.0)
            );
        }
        let accepts: Vec<(usize, f64)> = opts
            .users
            .iter()
            .filter_map(|&u| get(u, Mode::Valid).map(|s| (u, s.median)))
            .collect();
        if let Some(&(u, worst)) = accepts.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            println!(
                "- accept at every user count: worst {} at {} users (target < 1 us): {}",
                fmt_ns(worst),
                fmt_count(u as f64),
                verdict(worst < 1000.0)
            );
        }
        let own_accepts = opts
            .users
            .iter()
            .filter_map(|&u| get(u, Mode::Valid).map(|s| (u, s.own_median)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((u, worst)) = own_accepts {
            println!(
                "- accept at every user count, the plugin's own time: worst {} at {} users \
                 (target < 1 us): {}",
                fmt_ns(worst),
                fmt_count(u as f64),
                verdict(worst < 1000.0)
            );
        }
        for &users in &opts.users {
            if let Some(s) = get(users, Mode::Wrong) {
                println!(
                    "- wrong code at {} users: {} = {:.2} × 37 MD5s ({:.0} ns here) (target ≤ 1.2×): {}; \
                     the plugin's own time {} = {:.2}×: {}",
                    fmt_count(users as f64),
                    fmt_ns(s.median),
                    s.median / md5x37,
                    md5x37,
                    verdict(s.median <= 1.2 * md5x37),
                    fmt_ns(s.own_median),
                    s.own_median / md5x37,
                    verdict(s.own_median <= 1.2 * md5x37)
                );
            }
            if let (Some(w), Some(u)) = (get(users, Mode::Wrong), get(users, Mode::Unknown)) {
                let diff = (u.median - w.median) / w.median;
                println!(
                    "- unknown user vs wrong code at {} users: {} vs {} ({:+.1}%) (target within 10%): {}",
                    fmt_count(users as f64),
                    fmt_ns(u.median),
                    fmt_ns(w.median),
                    diff * 100.0,
                    verdict(diff.abs() <= 0.10)
                );
            }
        }
        for &users in &opts.users {
            for mode in Mode::ALL {
                if let Some(s) = results.get(&(Backend::Local, users, mode)) {
                    if s.median >= 100_000.0 {
                        println!(
                            "- local backend, {} at {} users: {} (target < 100 us): missed",
                            mode.describe(),
                            fmt_count(users as f64),
                            fmt_ns(s.median)
                        );
                    }
                }
            }
        }
        if loads.contains_key(&Backend::Local) {
            let worst = results
                .iter()
                .filter(|((b, _, _), _)| *b == Backend::Local)
                .map(|(_, s)| s.median)
                .fold(0.0, f64::max);
            println!(
                "- local backend, every mode and user count: worst {} (target < 100 us): {}",
                fmt_ns(worst),
                verdict(worst < 100_000.0)
            );
        }
    }

    println!();
    println!("done; load average {}", load_average());
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}
