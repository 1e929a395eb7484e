//! The plugin's side of the Redis backend through the C ABI (`motp_harness::abi`), against a
//! private `redis-server` per test (`motp_harness::openvpn::RedisServer`):
//!
//! - lines of deferred decisions (and of the config watcher) reach syslog at once, from the
//!   plugin's own thread, with no further call from OpenVPN; the copy for OpenVPN's log still
//!   comes at the next call; a missing syslog socket is said once;
//! - crtext prompts are capped per address and per username, and a locked address gets none;
//! - closing with Redis frozen (SIGSTOP) and logins queued returns within a bound and answers
//!   every login `0`.
//!
//! Syslog lines go to a datagram socket of the test's own, named by the debug build's
//! `MOTP_TEST_SYSLOG_SOCKET` hook, never to the machine's /dev/log. The tests hold one lock, so
//! they run one after the other (the variable is process-wide, as are the thread counts).

use std::ffi::c_int;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogLine, Plugin};
use motp_harness::openvpn::{RedisServer, TempDir};
use openvpn_plugin_sys as sys;

const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
const DEFERRED: c_int = sys::OPENVPN_PLUGIN_FUNC_DEFERRED;

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "q7x2";
const BOB_SECRET: &str = "fedcba98765432100123456789abcdef";
const BOB_PIN: &str = "k4w9z";
/// Against hangs only: every wait here normally ends in well under a second.
const BOUND: Duration = Duration::from_secs(10);
const TIMEOUT_MS: u64 = 300;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    motp_harness::openvpn::unix_now()
}

fn alice_code(steps_ahead: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, now() + 10 * steps_ahead).to_hex()
}

fn bob_code(steps_ahead: i64) -> String {
    code_at_time(BOB_SECRET, BOB_PIN, now() + 10 * steps_ahead).to_hex()
}

/// No secret, PIN or code in any text.
fn assert_clean<'a>(texts: impl IntoIterator<Item = &'a str>, codes: &[String]) {
    let secrets = [ALICE_SECRET, ALICE_PIN, BOB_SECRET, BOB_PIN];
    for text in texts {
        for f in secrets
            .iter()
            .copied()
            .chain(codes.iter().map(String::as_str))
        {
            assert!(!text.contains(f), "log line leaks {f:?}: {text}");
        }
    }
}

fn messages(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.message.as_str()).collect()
}

/// A syslog daemon of the test's own: a datagram socket the plugin is pointed at (debug
/// builds' `MOTP_TEST_SYSLOG_SOCKET`) for as long as this lives.
struct Syslog {
    socket: UnixDatagram,
    received: Vec<String>,
}

impl Syslog {
    fn bind(dir: &Path) -> Syslog {
        let path = dir.join("log.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::env::set_var(motp::log::TEST_SYSLOG_ENV, &path);
        Syslog {
            socket,
            received: Vec::new(),
        }
    }

    /// Points the plugin at a socket nobody listens on.
    fn missing(dir: &Path) -> PathBuf {
        let path = dir.join("no-such.sock");
        std::env::set_var(motp::log::TEST_SYSLOG_ENV, &path);
        path
    }

    /// Receives datagrams until one satisfies `want` (returned), for at most [`BOUND`].
    fn wait_for(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + BOUND;
        let mut buf = vec![0u8; 65536];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let line = String::from_utf8(buf[..n].to_vec()).expect("UTF-8 datagram");
                self.received.push(line.clone());
                if want(&line) {
                    return line;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no such syslog line within {BOUND:?}; got {:#?}",
                self.received
            );
        }
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        std::env::remove_var(motp::log::TEST_SYSLOG_ENV);
    }
}

struct Setup {
    dir: TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(label: &str, state: &str, top: &str) -> Setup {
        let dir = TempDir::new(label);
        let config = dir.path().join("motp.toml");
        let setup = Setup { dir, config };
        setup.write(state, top, "");
        setup
    }

    fn redis(label: &str, redis: &RedisServer, top: &str) -> Setup {
        Setup::new(
            label,
            &format!(
                "backend = \"redis\"\nurl = \"{}\"\ntimeout_ms = {TIMEOUT_MS}\n",
                redis.url()
            ),
            top,
        )
    }

    fn write(&self, state: &str, top: &str, more_users: &str) {
        // A Redis server remembers the data epoch in `[state] dir`: the test's own.
        let dir = self.dir.path().join("state");
        let state = if state.contains("backend = \"redis\"") {
            format!("{state}dir = \"{}\"\n", dir.display())
        } else {
            state.to_owned()
        };
        let text = format!(
            "{top}max_failures = 5\nlockout_secs = 300\n\
             [users.alice]\nsecret = \"{ALICE_SECRET}\"\npin = \"{ALICE_PIN}\"\n\
             [users.bob]\nsecret = \"{BOB_SECRET}\"\npin = \"{BOB_PIN}\"\n{more_users}\
             [state]\n{state}"
        );
        let next = self.config.with_extension("toml.new");
        std::fs::write(&next, text).unwrap();
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::rename(&next, &self.config).unwrap();
    }

    fn open(&self) -> Plugin {
        Plugin::open(&self.config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
    }

    fn env(&self, user: &str, password: &str) -> Env {
        Env::openvpn_auth(self.dir.path(), user, password)
    }

    /// A crtext-capable client from `ip` that sends no code.
    fn crtext(&self, user: &str, ip: &str) -> Env {
        self.env(user, "-")
            .with("IV_SSO", "openurl,crtext")
            .with("untrusted_ip", ip)
    }
}

fn prompt_text(env: &Env) -> String {
    std::fs::read_to_string(env.auth_pending_file().unwrap()).unwrap()
}

/// Threads of this process named like the plugin's worker.
fn worker_threads() -> usize {
    std::thread::sleep(Duration::from_millis(50));
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == motp::deferred::WORKER_THREAD_NAME)
        .count()
}

#[test]
fn a_deferred_decision_reaches_syslog_at_once_without_another_call() {
    let _s = serial();
    let dir = TempDir::new("rp-syslog");
    let mut syslog = Syslog::bind(dir.path());
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("rp-syslog", &redis, "");
    let plugin = setup.open();
    let pid = std::process::id();

    let code = alice_code(0);
    let ok = setup.env("alice", &code);
    assert_eq!(plugin.auth(&ok), DEFERRED);
    // No further call into the plugin: the worker sends the line from its own thread.
    let line = syslog.wait_for(|l| l.contains("login accepted") && l.ends_with(" user=alice"));
    assert!(
        line.starts_with(&format!(
            "<86>openvpn-motp[{pid}]: login accepted ip=192.0.2.10 step_offset="
        )),
        "authpriv.info, identifier and pid, the OpenVPN-log line's format: {line}"
    );
    assert_eq!(ok.wait_for_control(BOUND), Some(true));

    let wrong = setup.env("bob", "000000");
    assert_eq!(plugin.auth(&wrong), DEFERRED);
    let line = syslog.wait_for(|l| l.contains("login rejected") && l.ends_with(" user=bob"));
    assert_eq!(
        line,
        format!(
            "<84>openvpn-motp[{pid}]: login rejected ip=192.0.2.10 reason=\"bad code\" user=bob"
        )
    );
    assert_eq!(wrong.wait_for_control(BOUND), Some(false));

    // The copy for OpenVPN's log came (or comes, at the close) on OpenVPN's thread, once each.
    let lines = plugin.close();
    let all = messages(&lines);
    assert_eq!(
        all.iter()
            .filter(|m| m.starts_with("login accepted ") && m.ends_with(" user=alice"))
            .count(),
        1,
        "{all:#?}"
    );
    assert_eq!(
        all.iter()
            .filter(|m| m.starts_with("login rejected ") && m.ends_with(" user=bob"))
            .count(),
        1,
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|m| m.starts_with("TEST BUILD: ") && m.contains(motp::log::TEST_SYSLOG_ENV)),
        "the test hook says it is active: {all:#?}"
    );
    assert!(!all.iter().any(|m| m.contains("cannot send log lines")));
    assert!(motp_harness::abi::unattributed_logs().is_empty());
    assert_clean(all, std::slice::from_ref(&code));
    assert_clean(syslog.received.iter().map(String::as_str), &[code]);
}

#[test]
fn a_missing_syslog_socket_is_said_once_and_lines_still_reach_openvpns_log() {
    let _s = serial();
    let dir = TempDir::new("rp-nosyslog");
    let missing = Syslog::missing(dir.path());
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("rp-nosyslog", &redis, "");
    let plugin = setup.open();
    for (user, password) in [("alice", alice_code(0)), ("bob", "000000".into())] {
        let env = setup.env(user, &password);
        assert_eq!(plugin.auth(&env), DEFERRED);
        assert!(env.wait_for_control(BOUND).is_some());
    }
    let lines = plugin.close();
    std::env::remove_var(motp::log::TEST_SYSLOG_ENV);
    let all = messages(&lines);
    let said: Vec<&&str> = all
        .iter()
        .filter(|m| m.starts_with("cannot send log lines to syslog"))
        .collect();
    assert_eq!(said.len(), 1, "{all:#?}");
    assert!(
        said[0].contains(&missing.display().to_string()),
        "{}",
        said[0]
    );
    assert!(all
        .iter()
        .any(|m| m.starts_with("login accepted ") && m.ends_with(" user=alice")));
    assert!(all
        .iter()
        .any(|m| m.starts_with("login rejected ") && m.ends_with(" user=bob")));
}

#[test]
fn a_reload_line_reaches_syslog_without_a_login() {
    let _s = serial();
    let dir = TempDir::new("rp-reload");
    let mut syslog = Syslog::bind(dir.path());
    let setup = Setup::new("rp-reload", "backend = \"memory\"\n", "");
    let plugin = setup.open();
    setup.write(
        "backend = \"memory\"\n",
        "",
        "[users.carol]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"m3r\"\n",
    );
    let line = syslog.wait_for(|l| l.contains("reloaded "));
    assert!(
        line.starts_with(&format!(
            "<30>openvpn-motp[{}]: reloaded ",
            std::process::id()
        )),
        "daemon.info: {line}"
    );
    assert!(line.contains("3 users"), "{line}");
    let lines = plugin.close();
    assert!(messages(&lines).iter().any(|m| m.starts_with("reloaded ")));
}

#[test]
fn a_prompt_flood_from_one_address_does_not_stop_another_addresss_client() {
    let _s = serial();
    let dir = TempDir::new("rp-flood");
    let _syslog = Syslog::bind(dir.path());
    let redis = RedisServer::start(dir.path());
    // Three failures lock an address: the refused flood must not count as failures.
    let setup = Setup::redis(
        "rp-flood",
        &redis,
        "crtext_prompt = true\nmax_failures_per_ip = 3\n",
    );
    let plugin = setup.open();
    let per_address = motp::plugin::PROMPTS_PER_ADDRESS;
    let flooder = "198.51.100.7";

    let flood: Vec<Env> = (0..per_address + 6)
        .map(|n| setup.crtext(&format!("u{n}"), flooder))
        .collect();
    for (n, env) in flood.iter().enumerate() {
        if n < per_address {
            assert_eq!(plugin.auth(env), DEFERRED, "prompt {n}");
            assert!(prompt_text(env).starts_with("60\ncrtext\nCR_TEXT:E,R:"));
        } else {
            assert_eq!(
                plugin.auth(env),
                ERROR,
                "login {n} over the address's limit"
            );
            assert_eq!(prompt_text(env), "", "no prompt sent");
            assert!(env.client_reason().starts_with("TEMP[backoff "), "{n}");
        }
    }

    // Another address's client is still prompted, and its answer decided.
    let other = setup.crtext("alice", "203.0.113.9");
    assert_eq!(plugin.auth(&other), DEFERRED);
    assert!(prompt_text(&other).starts_with("60\ncrtext\n"));
    let code = alice_code(0);
    let answer = other
        .clone()
        .without("password")
        .with("crresponse", B64.encode(&code));
    plugin.cr_response(&answer);
    assert_eq!(answer.wait_for_control(BOUND), Some(true));

    // An answered prompt frees its slot; the flood's refusals locked nothing.
    let first = flood[0]
        .clone()
        .without("password")
        .with("crresponse", B64.encode("123456"));
    plugin.cr_response(&first);
    assert_eq!(first.wait_for_control(BOUND), Some(false));
    let again = setup.crtext("bob", flooder);
    assert_eq!(plugin.auth(&again), DEFERRED, "a free slot for the address");
    assert!(prompt_text(&again).starts_with("60\ncrtext\n"));

    // One username (with its certificate) from many addresses: capped too.
    let per_user = motp::plugin::PROMPTS_PER_USER;
    for n in 0..per_user {
        let env = setup.crtext("carol", &format!("192.0.2.{}", 50 + n));
        assert_eq!(plugin.auth(&env), DEFERRED, "carol {n}");
    }
    let over = setup.crtext("carol", "192.0.2.99");
    assert_eq!(plugin.auth(&over), ERROR);
    assert!(over.client_reason().starts_with("TEMP[backoff "));
    // A certificate of someone else naming carol does not use carol's own slots.
    let other_cert = setup
        .crtext("carol", "192.0.2.98")
        .with("common_name", "mallory");
    assert_eq!(plugin.auth(&other_cert), DEFERRED);

    let lines = plugin.close();
    let all = messages(&lines);
    let refused = all
        .iter()
        .filter(|m| {
            m.starts_with(&format!(
                "login rejected ip={flooder} reason=\"too many prompts\""
            )) && m.contains(" user=u")
        })
        .count();
    assert_eq!(refused, 6, "{all:#?}");
    assert!(
        all.iter().any(|m| m
            .starts_with("login rejected ip=192.0.2.99 reason=\"too many prompts\"")
            && m.ends_with(" user=carol")),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|m| m.contains("reason=\"address locked\"")),
        "{all:#?}"
    );
    assert_clean(all, &[code]);
}

#[test]
fn without_a_per_address_limit_prompts_are_not_counted_per_address() {
    let _s = serial();
    let dir = TempDir::new("rp-noaddr");
    let _syslog = Syslog::bind(dir.path());
    let redis = RedisServer::start(dir.path());
    // Every client comes through one address (a load balancer): the site turned the
    // per-address limit off, so one address must not cap prompting either.
    let setup = Setup::redis(
        "rp-noaddr",
        &redis,
        "crtext_prompt = true\nmax_failures_per_ip = 0\n",
    );
    let plugin = setup.open();
    for n in 0..3 * motp::plugin::PROMPTS_PER_ADDRESS {
        let env = setup.crtext(&format!("u{n}"), "10.0.0.1");
        assert_eq!(plugin.auth(&env), DEFERRED, "prompt {n}");
        assert!(prompt_text(&env).starts_with("60\ncrtext\n"));
    }
    let lines = plugin.close();
    assert!(!messages(&lines)
        .iter()
        .any(|m| m.contains("too many prompts")));
}

#[test]
fn a_locked_address_is_refused_before_any_prompt() {
    let _s = serial();
    let dir = TempDir::new("rp-locked");
    let _syslog = Syslog::bind(dir.path());
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis(
        "rp-locked",
        &redis,
        "crtext_prompt = true\nmax_failures_per_ip = 3\n",
    );
    let plugin = setup.open();
    let attacker = "198.51.100.20";
    for _ in 0..3 {
        let env = setup.env("eve", "000000").with("untrusted_ip", attacker);
        assert_eq!(plugin.auth(&env), DEFERRED);
        assert_eq!(env.wait_for_control(BOUND), Some(false));
    }
    let env = setup.crtext("alice", attacker);
    assert_eq!(plugin.auth(&env), ERROR, "refused in the call");
    assert_eq!(prompt_text(&env), "", "not prompted");
    assert!(
        env.client_reason().starts_with("TEMP[backoff "),
        "{}",
        env.client_reason()
    );
    assert_eq!(env.control_now(), None);
    // Another address still is.
    let other = setup.crtext("alice", "203.0.113.10");
    assert_eq!(plugin.auth(&other), DEFERRED);
    assert!(prompt_text(&other).starts_with("60\ncrtext\n"));

    let lines = plugin.close();
    let all = messages(&lines);
    assert!(
        all.iter().any(|m| m.starts_with(&format!(
            "login rejected ip={attacker} reason=\"address locked\" until="
        )) && m.ends_with(" user=alice")),
        "{all:#?}"
    );
    assert!(!all
        .iter()
        .any(|m| m.contains("asked for the code") && m.contains(&format!("ip={attacker}"))));
}

/// Holds a `redis-server` stopped with SIGSTOP (it accepts connections, in the kernel, and
/// answers nothing), and lets it go on drop.
struct Frozen(u32);

impl Frozen {
    fn freeze(redis: &RedisServer) -> Frozen {
        let info = redis.command(&["INFO", "server"]).expect("INFO server");
        let pid: u32 = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no process_id in {info}"));
        let signal = |name: &str| {
            assert!(Command::new("kill")
                .args([name, &pid.to_string()])
                .status()
                .unwrap()
                .success());
        };
        signal("-STOP");
        assert!(!redis.ping(), "stopped");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn close_returns_in_bounded_time_with_redis_frozen_and_logins_queued() {
    let _s = serial();
    let dir = TempDir::new("rp-close");
    let _syslog = Syslog::bind(dir.path());
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("rp-close", &redis, "");
    // The command in progress is bounded by timeout_ms and nothing starts after the close
    // began (no retry, no reconnect); the rest is a margin against a loaded machine.
    let bound = Duration::from_millis(TIMEOUT_MS + 700);
    for round in 0..2 {
        let plugin = setup.open();
        // Connected and decided once: the pooled connection is the one that hangs.
        let warm = setup.env("alice", &alice_code(round));
        assert_eq!(plugin.auth(&warm), DEFERRED);
        assert_eq!(warm.wait_for_control(BOUND), Some(true));

        let frozen = Frozen::freeze(&redis);
        let queued: Vec<Env> = (0..6).map(|n| setup.env("bob", &bob_code(n))).collect();
        for env in &queued {
            assert_eq!(plugin.auth(env), DEFERRED);
        }
        // The first one is inside a Redis command by now.
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let lines = plugin.close();
        let took = started.elapsed();
        drop(frozen);
        eprintln!("round {round}: close took {took:?} with Redis frozen");
        assert!(took < bound, "close took {took:?} (bound {bound:?})");
        assert_eq!(worker_threads(), 0, "no worker left after close_v1");
        for (n, env) in queued.iter().enumerate() {
            assert_eq!(env.control_now(), Some(b'0'), "login {n} answered 0");
        }
        let all = messages(&lines);
        assert!(
            all.iter()
                .filter(|m| m.starts_with("login rejected ") && m.ends_with(" user=bob"))
                .count()
                == queued.len(),
            "{all:#?}"
        );
        assert!(redis.ping(), "Redis runs again");
    }
}
