//! The Redis backend through the C ABI (`motp_harness::abi`), against a private
//! `redis-server` per test (`motp_harness::openvpn::RedisServer`): deferred decisions, two
//! plugin handles racing the same code, closing with decisions in flight, Redis outages and
//! recovery, the local fallback, a password file, and crtext prompting.
//!
//! The tests hold one lock, so they run one after the other: the thread-count checks look at
//! the whole test process, and the machine has few cores.

use std::ffi::c_int;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogLine, Plugin, OPENVPN_PLUGIN_CLIENT_CRRESPONSE};
use motp_harness::openvpn::{RedisServer, TempDir};
use openvpn_plugin_sys as sys;

const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
const DEFERRED: c_int = sys::OPENVPN_PLUGIN_FUNC_DEFERRED;

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "q7x2";
const BOB_SECRET: &str = "fedcba98765432100123456789abcdef";
const BOB_PIN: &str = "k4w9z";
const ANSWER: Duration = Duration::from_secs(10);

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

fn forbidden() -> Vec<String> {
    vec![
        ALICE_SECRET.into(),
        ALICE_PIN.into(),
        BOB_SECRET.into(),
        BOB_PIN.into(),
    ]
}

/// No secret, PIN, code or password in any line.
fn assert_clean(lines: &[LogLine], extra: &[String]) {
    for line in lines {
        for f in forbidden().iter().chain(extra) {
            assert!(
                !line.message.contains(f.as_str()),
                "log line leaks {f:?}: {line}"
            );
        }
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

    fn redis(label: &str, redis: &RedisServer, extra: &str) -> Setup {
        Setup::redis_with(label, redis, extra, "")
    }

    fn redis_with(label: &str, redis: &RedisServer, extra: &str, top: &str) -> Setup {
        Setup::new(
            label,
            &format!(
                "backend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\n{extra}",
                redis.url()
            ),
            top,
        )
    }

    fn open(&self) -> Plugin {
        Plugin::open(&self.config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
    }

    fn env(&self, user: &str, password: &str) -> Env {
        Env::openvpn_auth(self.dir.path(), user, password)
    }
}

/// Threads of this process named like the plugin's workers (a new thread names itself, so
/// give fresh ones a moment).
fn worker_threads() -> usize {
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
fn deferred(plugin: &Plugin, env: &Env) -> bool {
    assert_eq!(plugin.auth(env), DEFERRED);
    env.wait_for_control(ANSWER)
        .expect("no answer in auth_control_file")
}

#[test]
fn deferred_logins_accept_reject_and_replay() {
    let _s = serial();
    let dir = TempDir::new("redis-basic");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-basic", &redis, "");
    let plugin = setup.open();
    assert_eq!(
        plugin.type_mask(),
        1 << sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY
    );
    assert_eq!(worker_threads(), motp::plugin::WORKER_THREADS);

    let code = alice_code(0);
    let ok = setup.env("alice", &code);
    assert!(deferred(&plugin, &ok));
    assert_eq!(ok.client_reason(), "");
    let replay = setup.env("alice", &code);
    assert!(!deferred(&plugin, &replay));
    assert_eq!(
        replay.client_reason(),
        "",
        "a plain failure gives no reason"
    );
    let wrong = setup.env("bob", "000000");
    assert!(!deferred(&plugin, &wrong));

    // Without an auth_control_file the decision is made in the call.
    let sync = setup
        .env("alice", &alice_code(1))
        .without("auth_control_file");
    assert_eq!(plugin.auth(&sync), SUCCESS);
    let sync = setup
        .env("alice", &alice_code(1))
        .without("auth_control_file");
    assert_eq!(plugin.auth(&sync), ERROR);

    // The key lives in Redis, with an expiry that outlasts any window and offset the config
    // could be reloaded to (so a live reload can never let a used code back in).
    let ttl = redis.command(&["TTL", "motp:user:alice"]).unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    let keep = motp::state::KEEP_USED_STEP_SECS as i64;
    assert!(ttl > keep - 60 && ttl <= keep, "ttl {ttl}");

    // Worker lines reached the host log on OpenVPN's thread (the calls above), never outside.
    let lines = plugin.close();
    let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .filter(|m| m.starts_with("login accepted ") && m.ends_with(" user=alice"))
            .count()
            == 2,
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("reason=replay")));
    assert!(messages
        .iter()
        .any(|m| m.contains("state on redis redis://127.0.0.1:")));
    assert!(motp_harness::abi::unattributed_logs().is_empty());
    assert_clean(&lines, &[code]);
    assert_eq!(worker_threads(), 0, "workers joined at close");
}

#[test]
fn two_handles_racing_the_same_code_accept_it_exactly_once() {
    let _s = serial();
    let dir = TempDir::new("redis-race");
    let redis = RedisServer::start(dir.path());
    // Every losing racer counts as a failed login (a replay): keep the lock out of the way.
    let setup = Setup::redis_with(
        "redis-race",
        &redis,
        "",
        "max_failures = 1000\nmax_failures_per_ip = 100000\n",
    );
    let a = setup.open();
    let b = setup.open();
    let mut accepted_total = 0;
    // Increasing steps inside the window: every round's code is fresh, and both handles (two
    // servers) offer it at the same moment, each decided on its own worker threads.
    for round in 0..30 {
        let (user, code) = if round % 2 == 0 {
            ("alice", alice_code(round / 2 - 8))
        } else {
            ("bob", bob_code(round / 2 - 8))
        };
        let envs: Vec<Env> = (0..4).map(|_| setup.env(user, &code)).collect();
        for (i, env) in envs.iter().enumerate() {
            let plugin = if i % 2 == 0 { &a } else { &b };
            assert_eq!(plugin.auth(env), DEFERRED);
        }
        let accepted = envs
            .iter()
            .filter(|e| e.wait_for_control(ANSWER).expect("answer"))
            .count();
        assert_eq!(accepted, 1, "round {round}: code accepted {accepted} times");
        accepted_total += accepted;
    }
    assert_eq!(accepted_total, 30);
    drop(a);
    drop(b);
    assert_eq!(worker_threads(), 0);
}

#[test]
fn five_failures_over_two_handles_lock_the_user_on_both() {
    let _s = serial();
    let dir = TempDir::new("redis-lock");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-lock", &redis, "");
    let a = setup.open();
    let b = setup.open();
    for i in 0..5 {
        let plugin = if i % 2 == 0 { &a } else { &b };
        assert!(!deferred(plugin, &setup.env("bob", "abcdef")));
    }
    for plugin in [&a, &b] {
        let env = setup.env("bob", &bob_code(0));
        assert!(!deferred(plugin, &env));
        assert!(
            env.client_reason().starts_with("TEMP[backoff "),
            "{}",
            env.client_reason()
        );
    }
}

#[test]
fn closing_with_decisions_in_flight_answers_every_login_and_leaves_no_thread() {
    let _s = serial();
    let dir = TempDir::new("redis-close");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-close", &redis, "");
    for _cycle in 0..3 {
        let plugin = setup.open();
        let envs: Vec<Env> = (0..60).map(|_| setup.env("bob", "123456")).collect();
        for env in &envs {
            let rc = plugin.auth(env);
            assert!(rc == DEFERRED || rc == ERROR, "{rc}");
        }
        let lines = plugin.close();
        assert_eq!(worker_threads(), 0, "no worker left after close_v1");
        for env in &envs {
            // Queued ones were answered 0 at close; rejected-at-once ones have a reason.
            match env.control_now() {
                Some(b'0') => {}
                None => assert!(env.client_reason().starts_with("TEMP[backoff")),
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert_clean(&lines, &[]);
    }
    assert!(motp_harness::abi::unattributed_logs().is_empty());
}

#[test]
fn redis_outage_fails_closed_fast_logs_once_and_recovers() {
    let _s = serial();
    let dir = TempDir::new("redis-outage");
    // With its data on disk, as the docs advise: the outage loses nothing (a Redis that comes
    // back empty is tested below).
    let mut redis = RedisServer::start_persistent(dir.path());
    let setup = Setup::redis("redis-outage", &redis, "");
    let plugin = setup.open();
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(-3))));
    plugin.take_logs();

    redis.stop();
    for _ in 0..5 {
        let env = setup.env("alice", &alice_code(0));
        let start = Instant::now();
        assert!(!deferred(&plugin, &env));
        assert!(
            start.elapsed() < Duration::from_millis(300 + 700),
            "took {:?}",
            start.elapsed()
        );
        assert!(
            env.client_reason().starts_with("TEMP[backoff "),
            "{}",
            env.client_reason()
        );
    }
    // Synchronous path fails closed too.
    let sync = setup
        .env("alice", &alice_code(0))
        .without("auth_control_file");
    assert_eq!(plugin.auth(&sync), ERROR);
    let lines = plugin.take_logs();
    let errors: Vec<&LogLine> = lines
        .iter()
        .filter(|l| l.flags & sys::PLOG_ERR != 0)
        .collect();
    assert_eq!(errors.len(), 1, "one error per outage: {lines:#?}");
    assert!(errors[0].message.contains("unreachable"), "{}", errors[0]);

    redis.start_again();
    let start = Instant::now();
    let mut back = false;
    while start.elapsed() < Duration::from_secs(15) {
        let env = setup.env("alice", &alice_code(1));
        if deferred(&plugin, &env) {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(back, "logins succeed again after Redis is back");
    // One more call flushes the worker's lines.
    let _ = plugin.auth(&setup.env("nobody", "x").without("auth_control_file"));
    let lines = plugin.take_logs();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.message.contains("reachable again"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l.flags & sys::PLOG_ERR == 0),
        "{lines:#?}"
    );
}

#[test]
fn redis_down_at_open_still_opens_and_fails_closed() {
    let _s = serial();
    let dir = TempDir::new("redis-never");
    let mut redis = RedisServer::start(dir.path());
    redis.stop();
    let setup = Setup::redis("redis-never", &redis, "");
    let plugin = setup.open();
    let env = setup.env("alice", &alice_code(0));
    assert!(!deferred(&plugin, &env));
    assert!(env.client_reason().starts_with("TEMP[backoff "));
}

#[test]
fn local_fallback_decides_while_redis_is_down_and_neither_side_forgets() {
    let _s = serial();
    let dir = TempDir::new("redis-fallback");
    let mut redis = RedisServer::start_persistent(dir.path());
    let state = dir.path().join("fallback-state");
    let setup = Setup::redis(
        "redis-fallback",
        &redis,
        &format!("fallback = \"local\"\ndir = \"{}\"\n", state.display()),
    );
    // Another server on the same Redis, without a fallback.
    let other = Setup::redis("redis-fallback-other", &redis, "");
    let plugin = setup.open();
    let peer = other.open();

    // Through Redis, then the same code during an outage: the fallback knows it (written
    // through while Redis was up).
    let before = alice_code(-2);
    assert!(deferred(&plugin, &setup.env("alice", &before)));
    redis.stop();
    assert!(
        !deferred(&plugin, &setup.env("alice", &before)),
        "a code accepted through Redis must not be accepted again by the fallback"
    );
    // Decided by the fallback during the outage, then Redis is back: the same code is refused
    // here and on the other server (what the fallback decided was merged into Redis).
    let during = alice_code(0);
    assert!(deferred(&plugin, &setup.env("alice", &during)));
    assert!(!deferred(&plugin, &setup.env("alice", &during)));
    redis.start_again();
    let back = Instant::now();
    // The first contact after the outage comes once the reconnect backoff allows it (until
    // then the fallback decides: bob's wrong codes, which change nothing that matters here).
    let mut seen: Vec<LogLine> = Vec::new();
    while !seen.iter().any(|l| l.message.contains("reachable again")) {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "Redis never came back: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(!deferred(&plugin, &setup.env("bob", "000000")));
        let _ = plugin.auth(&setup.env("nobody", "x").without("auth_control_file"));
        seen.extend(plugin.take_logs());
    }
    assert!(
        !deferred(&peer, &other.env("alice", &during)),
        "a code the fallback accepted must be refused by every server once Redis is back"
    );
    assert!(!deferred(&plugin, &setup.env("alice", &during)));
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(1))));
    seen.extend(plugin.close());
    assert!(
        seen.iter()
            .any(|l| l.message.contains("merged what the local store decided")),
        "{seen:#?}"
    );
    drop(peer);
}

/// A Redis restarted between two logins (no login saw it down): the pooled connection is
/// stale, and the very next login is still accepted (reconnected and retried at once).
#[test]
fn the_first_login_after_a_redis_restart_is_accepted() {
    let _s = serial();
    let dir = TempDir::new("redis-restart");
    let mut redis = RedisServer::start_persistent(dir.path());
    let setup = Setup::redis("redis-restart", &redis, "");
    let plugin = setup.open();
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(-1))));
    for step in 0..3 {
        redis.start_again();
        assert!(
            deferred(&plugin, &setup.env("alice", &alice_code(step))),
            "the first login after restart {step}"
        );
    }
    let lines = plugin.close();
    assert!(
        !lines.iter().any(|l| l.message.contains("unreachable")),
        "no outage was declared: {lines:#?}"
    );
}

/// Moves the plugin's clock (debug builds' test hook) while held; every test of this file
/// runs under `serial()`, so none sees another's skew.
struct ClockSkew(PathBuf);

impl ClockSkew {
    fn set(dir: &Path, secs: i64) -> ClockSkew {
        let file = dir.join("clock-skew");
        std::fs::write(&file, secs.to_string()).unwrap();
        std::env::set_var(motp::clock::TEST_SKEW_ENV, &file);
        ClockSkew(file)
    }
    fn to(&self, secs: i64) {
        std::fs::write(&self.0, secs.to_string()).unwrap();
    }
}

impl Drop for ClockSkew {
    fn drop(&mut self) {
        std::env::remove_var(motp::clock::TEST_SKEW_ENV);
    }
}

/// A Redis that comes back empty (no persistence): every server that knew its data refuses the
/// codes the window could have reached before the loss, and takes codes one window later.
#[test]
fn a_redis_that_lost_its_data_does_not_reopen_replay() {
    let _s = serial();
    let dir = TempDir::new("redis-lost");
    let mut redis = RedisServer::start(dir.path());
    let skew = ClockSkew::set(dir.path(), 0);
    let setup = Setup::redis("redis-lost", &redis, "");
    let plugin = setup.open();
    let used = alice_code(18);
    assert!(deferred(&plugin, &setup.env("alice", &used)));
    plugin.take_logs();

    redis.start_again(); // empty
    assert!(
        !deferred(&plugin, &setup.env("alice", &used)),
        "the code accepted before the loss"
    );
    // Reopened (a SIGHUP): the quarantine is in Redis, the epoch remembered on disk.
    drop(plugin);
    let plugin = setup.open();
    assert!(!deferred(&plugin, &setup.env("alice", &used)));
    let lines = plugin.take_logs();
    let _ = lines;
    // One window (and a step) later by the plugin's clock: codes are taken again.
    skew.to(190);
    let later = code_at_time(ALICE_SECRET, ALICE_PIN, now() + 190).to_hex();
    assert!(deferred(&plugin, &setup.env("alice", &later)));
    let lines = plugin.close();
    let all: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert!(
        !all.iter()
            .any(|m| m.contains("the data this server knew is gone")),
        "the reopened plugin found the epoch it remembered: {all:#?}"
    );
}

/// The Lua decision script against the Rust rule, on states and attempts drawn at random.
#[test]
fn the_redis_script_decides_exactly_as_the_rule() {
    use motp::rule::{apply, Found, Limits};
    use motp::state::{MemoryStore, StateStore, UserState};
    let _s = serial();
    let dir = TempDir::new("redis-rule");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-rule", &redis, "");
    let config = motp::config::Config::load(&setup.config).unwrap();
    let motp::config::StateConfig::Redis(r) = &config.state else {
        panic!()
    };
    let store = motp::state::RedisStore::open(r, 300, None).unwrap();
    store.probe();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let base_step = 170_000_000i64;
    for round in 0..400 {
        let now = base_step * 10 + next(40) as i64 * 10 + next(10) as i64;
        let mut initial = UserState {
            last_step: None,
            failures: next(4) as u32,
            locked_until: if next(3) == 0 {
                now + next(600) as i64 - 300
            } else {
                0
            },
            ..UserState::default()
        };
        // Accepted before: none; one step as an older version recorded it (no offset); or a few
        // steps under offsets that may differ from the one in force now.
        match next(3) {
            0 => {}
            1 => initial.last_step = Some(base_step + next(40) as i64 - 5),
            _ => {
                for _ in 0..1 + next(10) {
                    initial
                        .record_accepted(base_step + next(40) as i64 - 5, next(200) as i64 - 100);
                }
            }
        }
        let lost = (next(4) == 0).then(|| now - next(400) as i64);
        let limits = Limits {
            max_failures: 1 + next(4) as u32,
            lockout_secs: 60 + next(300),
            offset_secs: next(200) as i64 - 100,
            radius: 1 + next(18) as i64,
        };
        let found = match next(4) {
            0 => Found::Malformed(motp::password::Malformed::NotACode),
            1 => Found::NoMatch,
            _ => Found::Step {
                step: base_step + next(50) as i64 - 5,
                step_offset: 0,
            },
        };
        let user = format!("u{round}");
        store.update(&user, &mut |s| *s = initial).unwrap();
        match lost {
            Some(at) => redis.command(&["SET", "motp:lost_at", &at.to_string()]),
            None => redis.command(&["DEL", "motp:lost_at"]),
        };
        let mut expected_state = UserState {
            history_lost_at: lost,
            ..initial
        };
        let expected = apply(&mut expected_state, &found, now, &limits);
        let got = store.decide(&user, &found, now, &limits).unwrap();
        let mut stored = UserState::default();
        store.update(&user, &mut |s| stored = *s).unwrap();
        let case = format!("{initial:?} lost {lost:?} {found:?} now {now} {limits:?}");
        assert_eq!(got, expected, "{case}");
        assert_eq!(
            UserState {
                history_lost_at: None,
                ..stored
            },
            UserState {
                history_lost_at: None,
                ..expected_state
            },
            "{case}"
        );
    }
    // The memory store applies the same rule (the default `decide`).
    let memory = MemoryStore::new();
    let limits = Limits {
        max_failures: 3,
        lockout_secs: 60,
        offset_secs: 0,
        radius: 18,
    };
    let found = Found::Step {
        step: base_step,
        step_offset: 0,
    };
    assert!(memory
        .decide("x", &found, base_step * 10, &limits)
        .unwrap()
        .is_accepted());
}

/// One command per decision once connected: the window search runs first, then one script.
/// Counted on Redis's MONITOR feed, which marks the commands a script runs inside Redis as
/// `lua`: those are no round trips.
#[test]
fn a_decision_costs_one_redis_command() {
    use std::io::{BufRead, BufReader, Write};
    let _s = serial();
    let dir = TempDir::new("redis-round-trips");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis_with(
        "redis-round-trips",
        &redis,
        "",
        "max_failures = 1000\nmax_failures_per_ip = 1000\n",
    );
    let plugin = setup.open();
    // Warm: the script is loaded, the epoch known, a connection pooled.
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(-5))));
    let mut monitor = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    monitor.write_all(b"MONITOR\r\n").unwrap();
    let mut feed = BufReader::new(monitor.try_clone().unwrap());
    let mut ok = String::new();
    feed.read_line(&mut ok).unwrap();
    assert!(ok.starts_with("+OK"), "{ok}");
    let wrong = 40;
    for _ in 0..wrong {
        assert!(!deferred(&plugin, &setup.env("bob", "000000")));
    }
    // A marker command, so the feed can be read up to here.
    redis.command(&["ECHO", "motp-test-end"]);
    let mut client_commands = Vec::new();
    loop {
        let mut line = String::new();
        feed.read_line(&mut line).unwrap();
        if line.contains("motp-test-end") {
            break;
        }
        if !line.contains("[0 lua]") {
            client_commands.push(line.trim().to_owned());
        }
    }
    assert_eq!(
        client_commands.len(),
        wrong,
        "one command per decision: {client_commands:#?}"
    );
    assert!(client_commands.iter().all(|c| c.contains("\"EVALSHA\"")));
}

#[test]
fn password_file_is_used_and_never_logged() {
    let _s = serial();
    let dir = TempDir::new("redis-auth");
    let redis = RedisServer::start(dir.path());
    let password = "s3cr3t-redis-pw";
    assert!(redis
        .command(&["CONFIG", "SET", "requirepass", password])
        .unwrap()
        .starts_with("+OK"));
    let pw_file = dir.path().join("redis.pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let setup = Setup::redis(
        "redis-auth",
        &redis,
        &format!("password_file = \"{}\"\n", pw_file.display()),
    );
    let plugin = setup.open();
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(0))));
    let lines = plugin.close();
    assert_clean(&lines, &[password.into()]);

    // A wrong password: an outage (fail closed), named as such, the password never shown.
    std::fs::write(&pw_file, "wrong-pw-value\n").unwrap();
    let setup = Setup::redis(
        "redis-auth2",
        &redis,
        &format!("password_file = \"{}\"\n", pw_file.display()),
    );
    let plugin = setup.open();
    assert!(!deferred(&plugin, &setup.env("alice", &alice_code(1))));
    let lines = plugin.close();
    assert!(
        lines.iter().any(|l| l.message.contains("unreachable")),
        "{lines:#?}"
    );
    assert_clean(&lines, &[password.into(), "wrong-pw-value".into()]);
}

#[test]
fn tls_redis_with_a_private_ca() {
    let _s = serial();
    let dir = TempDir::new("redis-tls");
    let redis = RedisServer::start_tls(dir.path());
    let over_tls = |label: &str, extra: &str| {
        Setup::new(
            label,
            &format!(
                "backend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 1000\n{extra}",
                redis.tls_url()
            ),
            "",
        )
    };

    // Trusting the CA that signed the server's certificate: decided over TLS, kept in Redis.
    let setup = over_tls(
        "redis-tls-ca",
        &format!("ca_file = \"{}\"\n", redis.ca_file().display()),
    );
    let plugin = setup.open();
    let code = alice_code(0);
    assert!(deferred(&plugin, &setup.env("alice", &code)));
    assert!(!deferred(&plugin, &setup.env("alice", &code)), "replay");
    let lines = plugin.close();
    assert!(
        lines.iter().any(|l| l.message.contains("login accepted")),
        "{lines:#?}"
    );
    // The state is in this Redis: the plain port sees the key the TLS client wrote.
    let keys = redis.command(&["KEYS", "motp:*"]).unwrap_or_default();
    assert!(keys.starts_with("*") && keys != "*0", "{keys}");

    // Without ca_file the system's CAs are used, which do not know this one: the certificate
    // is refused, so Redis is unreachable and every login fails closed.
    let setup = over_tls("redis-tls-noca", "");
    let plugin = setup.open();
    let env = setup.env("alice", &alice_code(1));
    assert!(!deferred(&plugin, &env));
    assert!(env.client_reason().starts_with("TEMP[backoff "));
    let lines = plugin.close();
    assert!(
        lines.iter().any(|l| l.message.contains("unreachable")),
        "{lines:#?}"
    );

    // A ca_file that cannot be read stops the plugin at open, naming the file.
    let missing = dir.path().join("no-such-ca.pem");
    let setup = over_tls(
        "redis-tls-missing",
        &format!("ca_file = \"{}\"\n", missing.display()),
    );
    let error = Plugin::open(&setup.config).err().expect("open refused");
    assert!(
        error
            .messages()
            .iter()
            .any(|m| m.contains("ca_file") && m.contains(&missing.display().to_string())),
        "{:?}",
        error.messages()
    );
}

fn prompt_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn crtext_prompts_clients_that_support_it_and_takes_the_code_from_crresponse() {
    let _s = serial();
    let dir = TempDir::new("redis-crtext");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::new(
        "redis-crtext",
        &format!(
            "backend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\n",
            redis.url()
        ),
        "crtext_prompt = true\n",
    );
    let plugin = setup.open();
    assert_eq!(
        plugin.type_mask(),
        (1 << sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY) | (1 << OPENVPN_PLUGIN_CLIENT_CRRESPONSE)
    );

    // Announces crtext, sends no code: prompted.
    let env = setup
        .env("alice", "")
        .with("IV_SSO", "openurl,webauth,crtext");
    assert_eq!(plugin.auth(&env), DEFERRED);
    assert_eq!(
        prompt_text(&env.auth_pending_file().unwrap()),
        "120\ncrtext\nCR_TEXT:E,R:Enter your mOTP code\n"
    );
    assert_eq!(env.control_now(), None, "no decision before the answer");
    // The answer: same per-client env, password gone, crresponse added.
    let code = alice_code(0);
    let answer = env
        .clone()
        .without("password")
        .with("crresponse", B64.encode(&code));
    assert_eq!(plugin.cr_response(&answer), SUCCESS);
    assert_eq!(answer.wait_for_control(ANSWER), Some(true));

    // A wrong answer is rejected like a wrong password.
    let env = setup.env("alice", "-").with("IV_SSO", "crtext");
    assert_eq!(plugin.auth(&env), DEFERRED);
    let answer = env.clone().with("crresponse", B64.encode("123456"));
    plugin.cr_response(&answer);
    assert_eq!(answer.wait_for_control(ANSWER), Some(false));
    assert_eq!(
        answer.client_reason(),
        "",
        "a plain failure gives no reason"
    );

    // A cr-response nobody asked for is ignored.
    let stray = setup
        .env("alice", "")
        .with("crresponse", B64.encode(alice_code(1)));
    plugin.cr_response(&stray);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stray.control_now(), None);

    // No crtext in IV_SSO, or a code in the password: the normal path.
    let env = setup.env("alice", &alice_code(1));
    assert!(deferred(&plugin, &env));
    let env = setup.env("alice", &alice_code(2)).with("IV_SSO", "crtext");
    assert!(deferred(&plugin, &env));
    assert_eq!(prompt_text(&env.auth_pending_file().unwrap()), "");
    let env = setup.env("alice", "");
    assert!(!deferred(&plugin, &env));

    let lines = plugin.close();
    assert!(lines
        .iter()
        .any(|l| l.message.contains("asked for the code (crtext)")));
    assert!(lines.iter().any(|l| l.message.contains("not prompted")));
    assert_clean(&lines, &[code]);
}

#[test]
fn crtext_works_with_the_memory_backend_too() {
    let _s = serial();
    let setup = Setup::new(
        "crtext-memory",
        "backend = \"memory\"\n",
        "crtext_prompt = true\n",
    );
    let plugin = setup.open();
    let env = setup.env("bob", "").with("IV_SSO", "crtext");
    assert_eq!(plugin.auth(&env), DEFERRED);
    let answer = env.clone().with("crresponse", B64.encode(bob_code(0)));
    plugin.cr_response(&answer);
    // Decided in the call: the answer is there already.
    assert_eq!(answer.control_now(), Some(b'1'));
    // Without crtext_prompt the CRRESPONSE type is not registered and is refused.
    let plain = Setup::new("crtext-off", "backend = \"memory\"\n", "");
    let plugin = plain.open();
    assert_eq!(
        plugin.type_mask(),
        1 << sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY
    );
    assert_eq!(plugin.cr_response(&answer), ERROR);
}
