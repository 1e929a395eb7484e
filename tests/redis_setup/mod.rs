//! The shared setup of tests/redis.rs and tests/redis_options.rs (moved from tests/redis.rs):
//! the users, the one lock (`serial()`, per test process), the config with a Redis `[state]`,
//! the leak check, the worker-thread count and the deferred call.

#![allow(dead_code)]

use std::ffi::c_int;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogLine, Plugin};
use motp_harness::openvpn::{RedisServer, TempDir};
use openvpn_plugin_sys as sys;

pub const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
pub const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
pub const DEFERRED: c_int = sys::OPENVPN_PLUGIN_FUNC_DEFERRED;

pub const ALICE_SECRET: &str = "0123456789abcdef";
pub const ALICE_PIN: &str = "q7x2";
pub const BOB_SECRET: &str = "fedcba98765432100123456789abcdef";
pub const BOB_PIN: &str = "k4w9z";
pub const ANSWER: Duration = Duration::from_secs(10);

pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now() -> i64 {
    motp_harness::openvpn::unix_now()
}

pub fn alice_code(steps_ahead: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, now() + 10 * steps_ahead).to_hex()
}

pub fn bob_code(steps_ahead: i64) -> String {
    code_at_time(BOB_SECRET, BOB_PIN, now() + 10 * steps_ahead).to_hex()
}

pub fn forbidden() -> Vec<String> {
    vec![
        ALICE_SECRET.into(),
        ALICE_PIN.into(),
        BOB_SECRET.into(),
        BOB_PIN.into(),
    ]
}

/// No secret, PIN, code or password in any line.
pub fn assert_clean(lines: &[LogLine], extra: &[String]) {
    for line in lines {
        for f in forbidden().iter().chain(extra) {
            assert!(
                !line.message.contains(f.as_str()),
                "log line leaks {f:?}: {line}"
            );
        }
    }
}

pub struct Setup {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new(label: &str, state: &str, top: &str) -> Setup {
        let dir = TempDir::new(label);
        let config = dir.path().join("motp.toml");
        let mf = if top.contains("max_failures") {
            ""
        } else {
            "max_failures = 5\n"
        };
        // A Redis server remembers the data epoch in `[state] dir`: the test's own, never the
        // machine's /var/lib/openvpn-motp.
        let state = if state.contains("backend = \"redis\"") && !state.contains("dir =") {
            format!("{state}dir = \"{}\"\n", dir.path().join("state").display())
        } else {
            state.to_owned()
        };
        let text = format!(
            "{top}{mf}lockout_secs = 300\n\
             [users.alice]\nsecret = \"{ALICE_SECRET}\"\npin = \"{ALICE_PIN}\"\n\
             [users.bob]\nsecret = \"{BOB_SECRET}\"\npin = \"{BOB_PIN}\"\n\
             [state]\n{state}"
        );
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        Setup { dir, config }
    }

    pub fn redis(label: &str, redis: &RedisServer, extra: &str) -> Setup {
        Setup::redis_with(label, redis, extra, "")
    }

    pub fn redis_with(label: &str, redis: &RedisServer, extra: &str, top: &str) -> Setup {
        Setup::new(
            label,
            &format!(
                "backend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\n{extra}",
                redis.url()
            ),
            top,
        )
    }

    pub fn open(&self) -> Plugin {
        Plugin::open(&self.config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
    }

    pub fn env(&self, user: &str, password: &str) -> Env {
        Env::openvpn_auth(self.dir.path(), user, password)
    }
}

/// Threads of this process named like the plugin's workers (a new thread names itself, so
/// give fresh ones a moment).
pub fn worker_threads() -> usize {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == motp::deferred::WORKER_THREAD_NAME)
            .count()
    };
    std::thread::sleep(Duration::from_millis(50));
    count()
}

/// Deferred call: asserts DEFERRED and returns the answer written to auth_control_file.
pub fn deferred(plugin: &Plugin, env: &Env) -> bool {
    assert_eq!(plugin.auth(env), DEFERRED);
    env.wait_for_control(ANSWER)
        .expect("no answer in auth_control_file")
}
