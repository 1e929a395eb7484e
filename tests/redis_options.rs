//! The Redis backend through the C ABI (`motp_harness::abi`), against a private `redis-server`
//! per test: the decision script against the Rust rule, one command per decision, a password
//! file, TLS with a private CA, and crtext prompting. Moved from tests/redis.rs; the setup is in
//! tests/redis_setup/.
//!
//! As in tests/redis.rs, the tests hold one lock (`serial()`), so they run one after the other:
//! the thread-count checks look at the whole test process, and the machine has few cores.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use motp_harness::abi::{Plugin, OPENVPN_PLUGIN_CLIENT_CRRESPONSE};
use motp_harness::openvpn::{RedisServer, TempDir};
use openvpn_plugin_sys as sys;

mod redis_setup;

use redis_setup::*;

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
    // How often each new outcome came up: the draw must reach them all.
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    for round in 0..800 {
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
        // Kept (a counter), and recovery codes of one of a few sets used before.
        initial.keep = next(4) == 0;
        if next(2) == 0 {
            initial.recovery_set = next(3) as u32 + 1;
            initial.recovery_used = match next(4) {
                0 => 0,
                1 => 1 << next(32),
                2 => next(1 << 32) as u32,
                _ => u32::MAX ^ (1 << next(32)),
            };
            initial.keep = true;
        }
        let lost = (next(4) == 0).then(|| now - next(400) as i64);
        let limits = Limits {
            max_failures: 1 + next(4) as u32,
            lockout_secs: 60 + next(300),
            offset_secs: next(200) as i64 - 100,
            radius: 1 + next(18) as i64,
            counter_based: next(3) == 0,
            learned_offset_secs: next(200) as i64 - 100,
        };
        let found = match next(8) {
            7 => Found::Settled {
                accepted: next(2) == 0,
                step_offset: next(3) as i64 - 1,
            },
            0 => Found::Malformed(motp::password::Malformed::NotACode),
            1 => Found::NoMatch,
            2 => Found::BadPassword,
            3 | 4 => Found::Recovery {
                set: next(3) as u32 + 1,
                index: next(34) as u8,
            },
            _ => Found::Step {
                step: base_step + next(50) as i64 - 5,
                step_offset: next(3) as i64 - 1,
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
        let outcome = match (&found, &got, limits.counter_based) {
            (Found::Recovery { index, .. }, _, _) if *index >= 32 => "recovery index >= 32",
            (Found::Recovery { .. }, motp::auth::Decision::RecoveryAccepted { .. }, _) => {
                "recovery accepted"
            }
            (Found::Recovery { .. }, motp::auth::Decision::Replay, _) => "recovery replay",
            (Found::BadPassword, motp::auth::Decision::BadPassword, _) => "bad password",
            (Found::Settled { .. }, motp::auth::Decision::Accepted { .. }, _) => "settled accepted",
            (Found::Settled { .. }, motp::auth::Decision::Replay, _) => "settled replay",
            (Found::Step { .. }, motp::auth::Decision::Accepted { .. }, true) => "counter accepted",
            (Found::Step { .. }, motp::auth::Decision::Replay, true) => "counter replay",
            (_, motp::auth::Decision::Locked { .. }, _) => "locked",
            _ => "other",
        };
        *seen.entry(outcome).or_default() += 1;
        // A peek sees what the next decision would start from, the mark included.
        assert_eq!(store.peek(&user).unwrap(), expected_state, "{case}");
        // A kept key never expires; any other one does.
        let ttl = redis
            .command(&["TTL", &format!("motp:user:{user}")])
            .unwrap();
        let remembered = UserState {
            history_lost_at: None,
            ..expected_state
        } != UserState::default();
        if expected_state.keep {
            assert_eq!(ttl, ":-1\r\n", "{case}");
        } else if remembered {
            assert!(!ttl.starts_with(":-"), "{ttl} {case}");
        }
    }
    for outcome in [
        "recovery accepted",
        "recovery replay",
        "recovery index >= 32",
        "bad password",
        "counter accepted",
        "counter replay",
        "settled accepted",
        "settled replay",
        "locked",
    ] {
        assert!(seen.get(outcome).copied().unwrap_or(0) >= 5, "{seen:?}");
    }
    // The memory store applies the same rule (the default `decide`).
    let memory = MemoryStore::new();
    let limits = Limits {
        max_failures: 3,
        lockout_secs: 60,
        offset_secs: 0,
        radius: 18,
        counter_based: false,
        learned_offset_secs: 0,
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

/// A kept key (a counter token's counter, used recovery codes) has no expiry, set by the
/// decision script or by `update`; other keys keep theirs.
#[test]
fn a_kept_key_has_no_ttl() {
    use motp::rule::{Found, Limits};
    use motp::state::StateStore;
    let _s = serial();
    let dir = TempDir::new("redis-kept-ttl");
    let redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-kept-ttl", &redis, "");
    let config = motp::config::Config::load(&setup.config).unwrap();
    let motp::config::StateConfig::Redis(r) = &config.state else {
        panic!()
    };
    let store = motp::state::RedisStore::open(r, 300, None).unwrap();
    store.probe();
    let ttl = |user: &str| {
        let reply = redis
            .command(&["TTL", &format!("motp:user:{user}")])
            .unwrap();
        reply.trim().trim_start_matches(':').parse::<i64>().unwrap()
    };
    let now = motp::clock::now();
    let step = now / 10;
    let clock = Limits {
        max_failures: 3,
        lockout_secs: 60,
        offset_secs: 0,
        radius: 18,
        counter_based: false,
        learned_offset_secs: 0,
    };
    let counter = Limits {
        counter_based: true,
        learned_offset_secs: 0,
        ..clock
    };
    let at = |step| Found::Step {
        step,
        step_offset: 0,
    };
    assert!(store
        .decide("totp", &at(step), now, &clock)
        .unwrap()
        .is_accepted());
    assert!(ttl("totp") > 0);
    assert!(store
        .decide("hotp", &at(5), now, &counter)
        .unwrap()
        .is_accepted());
    assert_eq!(ttl("hotp"), -1);
    // Failures and a lock on a kept key: still no expiry.
    for _ in 0..3 {
        store.decide("hotp", &at(5), now, &counter).unwrap();
    }
    assert!(store.peek("hotp").unwrap().locked_until > now);
    assert_eq!(ttl("hotp"), -1);
    let recovery = Found::Recovery { set: 3, index: 2 };
    assert_eq!(
        store.decide("scratch", &recovery, now, &clock).unwrap(),
        motp::auth::Decision::RecoveryAccepted { index: 2 }
    );
    assert_eq!(ttl("scratch"), -1);
    // A key that had an expiry loses it once kept.
    assert_eq!(
        store.decide("totp", &recovery, now, &clock).unwrap(),
        motp::auth::Decision::RecoveryAccepted { index: 2 }
    );
    assert_eq!(ttl("totp"), -1);
    // motpctl's update (compare-and-set) writes the same way.
    store.update("bob", &mut |s| s.failures = 1).unwrap();
    assert!(ttl("bob") > 0);
    store.update("bob", &mut |s| s.keep = true).unwrap();
    assert_eq!(ttl("bob"), -1);
    assert_eq!(
        store
            .decide("bob", &Found::BadPassword, now, &clock)
            .unwrap(),
        motp::auth::Decision::BadPassword
    );
    assert_eq!(store.peek("bob").unwrap().failures, 2);
}

/// `peek` on Redis: one read that changes nothing; during an outage the local fallback's
/// view, or an error without one.
#[test]
fn a_redis_peek_reads_redis_or_the_fallback() {
    use motp::rule::{Found, Limits};
    use motp::state::{MemoryStore, StateStore};
    let _s = serial();
    let dir = TempDir::new("redis-peek");
    let mut redis = RedisServer::start(dir.path());
    let setup = Setup::redis("redis-peek", &redis, "");
    let config = motp::config::Config::load(&setup.config).unwrap();
    let motp::config::StateConfig::Redis(r) = &config.state else {
        panic!()
    };
    let with_fallback =
        motp::state::RedisStore::open(r, 300, Some(Box::new(MemoryStore::new()))).unwrap();
    with_fallback.probe();
    let mut plain_config = r.clone();
    plain_config.dir = dir.path().join("plain");
    let plain = motp::state::RedisStore::open(&plain_config, 300, None).unwrap();
    plain.probe();
    let limits = Limits {
        max_failures: 3,
        lockout_secs: 60,
        offset_secs: 0,
        radius: 18,
        counter_based: true,
        learned_offset_secs: 0,
    };
    let now = motp::clock::now();
    let at = |step| Found::Step {
        step,
        step_offset: 0,
    };
    assert_eq!(plain.peek("alice").unwrap(), Default::default());
    assert_eq!(
        redis.command(&["EXISTS", "motp:user:alice"]).unwrap(),
        ":0\r\n"
    );
    assert!(with_fallback
        .decide("alice", &at(12), now, &limits)
        .unwrap()
        .is_accepted());
    let seen = plain.peek("alice").unwrap();
    assert_eq!((seen.last_step, seen.keep), (Some(12), true));
    assert_eq!(with_fallback.peek("alice").unwrap(), seen);
    redis.stop();
    assert!(plain.peek("alice").is_err(), "no fallback: fail closed");
    let local = with_fallback.peek("alice").unwrap();
    assert_eq!(
        (local.last_step, local.keep),
        (Some(12), true),
        "written through"
    );
    // Decided locally during the outage, then seen through Redis once it is back.
    assert!(with_fallback
        .decide("alice", &at(13), now, &limits)
        .unwrap()
        .is_accepted());
    redis.start_again();
    std::thread::sleep(Duration::from_millis(1200));
    let mut back = None;
    for _ in 0..50 {
        if let Ok(state) = with_fallback.peek("alice") {
            if redis
                .command(&["GET", "motp:user:alice"])
                .is_some_and(|v| v.contains("13"))
            {
                back = Some(state);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let back = back.expect("merged into Redis after the outage");
    assert_eq!(back.last_step, Some(13));
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
    // Warm: the script is loaded, the epoch known, a connection pooled, and bob's clock offset
    // read (drift tracking reads it once per user and process, then keeps it).
    assert!(deferred(&plugin, &setup.env("alice", &alice_code(-5))));
    assert!(!deferred(&plugin, &setup.env("bob", "000000")));
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

/// A `password_file` everyone can read, or one the runtime user owns while the process is
/// root, is refused at open with a message naming the file and the fix; the password itself is
/// never shown. Needs no Redis: the file is read before any connection.
#[test]
fn a_password_file_others_could_read_or_change_is_refused() {
    let _s = serial();
    motp_harness::runtime_user::require_root();
    let dir = TempDir::new("redis-pw-perm");
    let password = "s3cr3t-redis-pw";
    let pw_file = dir.path().join("redis.pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let setup = Setup::new(
        "redis-pw-perm",
        &format!(
            "backend = \"redis\"\nurl = \"redis://127.0.0.1:1/0\"\ntimeout_ms = 300\n\
             password_file = \"{}\"\n",
            pw_file.display()
        ),
        "",
    );
    let refused = |want: &[&str]| {
        // Through the store's own open (as motpctl and the plugin build it)...
        let config = motp::config::Config::load(&setup.config).unwrap();
        let motp::config::StateConfig::Redis(r) = &config.state else {
            panic!()
        };
        let e = motp::state::RedisStore::open(r, 300, None)
            .err()
            .expect("the store must refuse the password file");
        for w in want {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
        assert!(e.contains(&pw_file.display().to_string()), "{e}");
        assert!(!e.contains(password), "{e}");
        // ...and through the plugin: OpenVPN does not start with it.
        let e = Plugin::open(&setup.config)
            .err()
            .expect("the plugin must refuse");
        let messages = e.messages().join("\n");
        for w in want {
            assert!(messages.contains(w), "{w:?} not in {messages}");
        }
        assert!(!messages.contains(password), "{messages}");
    };

    // Readable by every user.
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&["readable by every user (mode 0644)", "chmod 0640"]);

    // Mode 0640, but owned by nobody while the process is root.
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&pw_file, Some(65534), Some(65534)).unwrap();
    refused(&[
        "belongs to nobody (uid 65534)",
        &format!("chown root {}", pw_file.display()),
    ]);

    // Root's and 0640: taken (the store opens; Redis is not needed for that).
    std::os::unix::fs::chown(&pw_file, Some(0), Some(0)).unwrap();
    let config = motp::config::Config::load(&setup.config).unwrap();
    let motp::config::StateConfig::Redis(r) = &config.state else {
        panic!()
    };
    assert!(motp::state::RedisStore::open(r, 300, None).is_ok());
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
        "60\ncrtext\nCR_TEXT:E,R:Enter your one-time code\n"
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
