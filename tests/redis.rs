//! The Redis backend through the C ABI (`motp_harness::abi`), against a private
//! `redis-server` per test (`motp_harness::openvpn::RedisServer`): deferred decisions, two
//! plugin handles racing the same code, closing with decisions in flight, Redis outages and
//! recovery, the local fallback, lost Redis data, and a live reload widening the window.
//!
//! The tests hold one lock, so they run one after the other: the thread-count checks look at
//! the whole test process, and the machine has few cores.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogLine};
use motp_harness::openvpn::{RedisServer, TempDir};
use openvpn_plugin_sys as sys;

mod redis_setup;

use redis_setup::*;

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

/// Moves Redis's clock forward by `secs` for every key with an expiry (Redis's own clock cannot
/// be moved): each TTL is lowered by `secs`, and a key whose TTL would run out is deleted, as
/// Redis would have expired it. Returns the keys deleted.
fn redis_time_passes(redis: &RedisServer, secs: i64) -> Vec<String> {
    let keys = redis.command(&["KEYS", "*"]).unwrap();
    let keys: Vec<&str> = keys
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .collect();
    assert!(!keys.is_empty(), "no keys in Redis");
    let mut expired = Vec::new();
    for key in keys {
        let ttl = redis_ttl(redis, key);
        if ttl < 0 {
            continue; // no expiry (-1)
        }
        if ttl <= secs {
            redis.command(&["DEL", key]).unwrap();
            expired.push(key.to_owned());
        } else {
            let left = (ttl - secs).to_string();
            let reply = redis.command(&["EXPIRE", key, &left]).unwrap();
            assert!(reply.starts_with(":1"), "EXPIRE {key}: {reply}");
        }
    }
    expired
}

fn redis_ttl(redis: &RedisServer, key: &str) -> i64 {
    let ttl = redis.command(&["TTL", key]).unwrap();
    ttl.trim_start_matches(':').trim().parse().unwrap()
}

/// A live reload that widens `window_secs`: a code accepted under the narrow window is still
/// refused once the time its key would have lived under that window (and more) has passed,
/// while it is inside the wider window. Both clocks move: the plugin's (the debug-build hook)
/// and Redis's (every TTL lowered by the same amount).
#[test]
fn widening_the_window_by_live_reload_never_takes_a_used_code_again() {
    let _s = serial();
    let dir = TempDir::new("redis-widen");
    let redis = RedisServer::start(dir.path());
    let skew = ClockSkew::set(dir.path(), 0);
    let setup = Setup::redis_with("redis-widen", &redis, "", "window_secs = 60\n");
    let plugin = setup.open();
    let used = alice_code(0);
    assert!(deferred(&plugin, &setup.env("alice", &used)));

    // What a key would have lived had its expiry been computed from the narrow window.
    let narrow = motp::config::Policy {
        window_secs: 60,
        lockout_secs: 300,
        ..motp::config::Policy::default()
    }
    .retention_secs() as i64;
    let before = redis_ttl(&redis, "motp:user:alice");
    assert!(before > 0, "the key expires: {before}");

    // The admin widens the window to the most the config allows, live.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    assert!(text.contains("window_secs = 60\n"));
    let widened = setup.dir.path().join("motp.toml.new");
    std::fs::write(
        &widened,
        text.replace("window_secs = 60\n", "window_secs = 3600\n"),
    )
    .unwrap();
    std::fs::set_permissions(&widened, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::rename(&widened, &setup.config).unwrap();
    wait_for_reload(&plugin, &setup);

    // Ten minutes pass: far past the narrow window's key life, well inside the wide window.
    let jump = 600;
    assert!(
        jump > narrow,
        "the jump outlasts a narrow-window key ({narrow} s)"
    );
    let after = redis_ttl(&redis, "motp:user:alice");
    assert!(
        after > jump,
        "the used code's key outlives the jump: TTL {after} s (before the reload {before} s)"
    );
    let expired = redis_time_passes(&redis, jump);
    assert!(
        !expired.iter().any(|k| k == "motp:user:alice"),
        "alice's key expired: {expired:?}"
    );
    skew.to(jump);
    assert!(
        !deferred(&plugin, &setup.env("alice", &used)),
        "the code accepted before the reload, now inside the wider window"
    );
    // The plugin still takes a fresh code at the new time (the refusal was the replay).
    let fresh = code_at_time(ALICE_SECRET, ALICE_PIN, now() + jump).to_hex();
    assert!(deferred(&plugin, &setup.env("alice", &fresh)));
    let lines = plugin.close();
    assert!(
        lines
            .iter()
            .any(|l| l.message.contains("reason=replay") && l.message.contains("user=alice")),
        "{lines:#?}"
    );
    assert_clean(&lines, &[used, fresh]);
}

/// Waits until the plugin has applied the new motp.toml (its `reloaded` line reaches the host
/// log at the next call, so a login of a name nobody has makes it flush).
fn wait_for_reload(plugin: &motp_harness::abi::Plugin, setup: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = setup
            .env("no-such-user", "000000")
            .without("auth_control_file");
        plugin.auth(&probe);
        if plugin.messages().iter().any(|m| m.contains("reloaded")) {
            return;
        }
        assert!(Instant::now() < deadline, "{:#?}", plugin.messages());
        std::thread::sleep(Duration::from_millis(200));
    }
}
