//! End to end with the Redis backend: real `openvpn` servers load the debug `motp.so` with
//! `[state] backend = "redis"` against a private `redis-server`, real clients log in.
//!
//! Needs root, `openvpn`, `openssl` and `redis-server`. Decisions are deferred (OpenVPN polls
//! the control file), so a login takes about a second.

use std::path::Path;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Credentials, Outcome, Pki, RedisServer,
    Server, ServerSpec, TempDir,
};

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "1234";
const BOB_SECRET: &str = "fedcba9876543210fedcba9876543210";
const BOB_PIN: &str = "987654";

/// `dir`: where the server remembers the Redis data epoch (the test's own directory).
fn config(redis: &RedisServer, dir: &std::path::Path, top: &str) -> String {
    format!(
        "{top}max_failures = 5\nlockout_secs = 300\n\
         [state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\ndir = \"{}\"\n\
         [users.alice]\nsecret = \"{ALICE_SECRET}\"\npin = \"{ALICE_PIN}\"\n\
         [users.bob]\nsecret = \"{BOB_SECRET}\"\npin = \"{BOB_PIN}\"\n",
        redis.url(),
        dir.display()
    )
}

fn start_server(dir: &Path, pki: &Pki, motp_toml: &str, name: &str) -> Server {
    let path = dir.join(name);
    write_motp_config(&path, motp_toml);
    let spec = ServerSpec::new(pki, motp_harness::plugin_path(), path);
    Server::start(dir, &spec).unwrap_or_else(|log| panic!("server did not start:\n{log}"))
}

fn alice_code(steps_ahead: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, unix_now() + 10 * steps_ahead).to_hex()
}

fn bob_code(steps_ahead: i64) -> String {
    code_at_time(BOB_SECRET, BOB_PIN, unix_now() + 10 * steps_ahead).to_hex()
}

fn file_login(server: &Server, pki: &Pki, user: &str, password: &str) -> Outcome {
    login(
        server,
        pki,
        user,
        &Credentials::File {
            username: user,
            password,
        },
    )
}

#[test]
fn two_servers_share_replay_and_lockout_through_redis() {
    require_tools();
    let dir = TempDir::new("e2e-redis-two");
    let redis = RedisServer::start(dir.path());
    let pki = Pki::create(dir.path(), &["alice", "bob"]);
    let text = config(&redis, &dir.path().join("state"), "");
    let a = start_server(dir.path(), &pki, &text, "motp-a.toml");
    let b = start_server(dir.path(), &pki, &text, "motp-b.toml");

    // A code used on A is refused on B (and the deferred path accepts and rejects).
    let code = alice_code(0);
    let first = file_login(&a, &pki, "alice", &code);
    assert!(first.accepted, "{}", first.log);
    let again = file_login(&b, &pki, "alice", &code);
    assert!(again.rejected(), "{}", again.log);

    // Five failures spread over both servers lock bob on both.
    for i in 0..5 {
        let server = if i % 2 == 0 { &a } else { &b };
        let o = file_login(server, &pki, "bob", "abcdef");
        assert!(o.rejected(), "{}", o.log);
    }
    for server in [&a, &b] {
        let o = file_login(server, &pki, "bob", &bob_code(0));
        assert!(o.rejected(), "{}", o.log);
        let msg = o.auth_failed_message().unwrap_or_default();
        assert!(msg.contains("TEMP"), "{msg}");
    }
    for server in [&a, &b] {
        assert!(server
            .log()
            .contains("PLUGIN_AUTH_USER_PASS_VERIFY status=2"));
        assert!(!server.log().contains(ALICE_SECRET));
        assert!(!server.log().contains(BOB_SECRET));
    }
}

#[test]
fn redis_killed_fails_closed_fast_and_logins_recover_when_it_is_back() {
    require_tools();
    let dir = TempDir::new("e2e-redis-outage");
    // With its data on disk, as the docs advise: it comes back with every used step.
    let mut redis = RedisServer::start_persistent(dir.path());
    let pki = Pki::create(dir.path(), &["alice"]);
    let mut server = start_server(
        dir.path(),
        &pki,
        &config(&redis, &dir.path().join("state"), ""),
        "motp.toml",
    );
    let ok = file_login(&server, &pki, "alice", &alice_code(-2));
    assert!(ok.accepted, "{}", ok.log);

    redis.stop();
    for _ in 0..2 {
        let start = Instant::now();
        let o = file_login(&server, &pki, "alice", &alice_code(0));
        // timeout_ms (300) plus OpenVPN's first control-file polls plus the client's own
        // start-up: far below hand-window.
        assert!(o.rejected(), "{}", o.log);
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            start.elapsed()
        );
        let msg = o.auth_failed_message().unwrap_or_default();
        assert!(msg.contains("TEMP"), "{msg}");
        assert!(server.is_running());
    }

    redis.start_again();
    let start = Instant::now();
    let mut back = None;
    while start.elapsed() < Duration::from_secs(30) {
        let o = file_login(&server, &pki, "alice", &alice_code(1));
        if o.accepted {
            back = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        back.is_some(),
        "logins succeed again after Redis is back:\n{}",
        server.plugin_lines().join("\n")
    );
    // One more login writes out the workers' queued lines.
    let _ = file_login(&server, &pki, "alice", "000000");
    let log = server.log();
    assert_eq!(
        log.matches("unreachable").count(),
        1,
        "one error per outage:\n{}",
        server.plugin_lines().join("\n")
    );
    assert!(log.contains("reachable again"), "{log}");
    assert!(server.is_running());
}

/// Redis restarted while no login was going on: the plugin's pooled connection is stale, and
/// the very next login through a real server is still accepted (reconnected and retried at
/// once, not taken for an outage).
#[test]
fn the_next_login_after_a_redis_restart_is_accepted() {
    require_tools();
    let dir = TempDir::new("e2e-redis-restart");
    let mut redis = RedisServer::start_persistent(dir.path());
    let pki = Pki::create(dir.path(), &["alice"]);
    let server = start_server(
        dir.path(),
        &pki,
        &config(&redis, &dir.path().join("state"), ""),
        "motp.toml",
    );
    let ok = file_login(&server, &pki, "alice", &alice_code(-1));
    assert!(ok.accepted, "{}", ok.log);
    redis.start_again();
    let code = alice_code(0);
    let next = file_login(&server, &pki, "alice", &code);
    assert!(next.accepted, "the very next login: {}", next.log);
    let replay = file_login(&server, &pki, "alice", &code);
    assert!(replay.rejected(), "{}", replay.log);
    assert!(
        !server.log().contains("unreachable"),
        "{}",
        server.plugin_lines().join("\n")
    );
}

#[test]
fn crtext_client_is_prompted_and_other_clients_keep_the_normal_path() {
    require_tools();
    let dir = TempDir::new("e2e-redis-crtext");
    let redis = RedisServer::start(dir.path());
    let pki = Pki::create(dir.path(), &["alice", "bob"]);
    let server = start_server(
        dir.path(),
        &pki,
        &config(&redis, &dir.path().join("state"), "crtext_prompt = true\n"),
        "motp.toml",
    );

    // Announces crtext, sends a placeholder: prompted, answers on the management interface.
    let code = alice_code(0);
    let o = login(
        &server,
        &pki,
        "alice",
        &Credentials::CrText {
            username: "alice",
            placeholder: "-",
            code: &code,
        },
    );
    assert!(o.accepted, "{}", o.log);
    assert!(server.log().contains("asked for the code (crtext)"));

    // No crtext announced: the code in the password, as before.
    let o = file_login(&server, &pki, "bob", &bob_code(0));
    assert!(o.accepted, "{}", o.log);
    // No crtext announced and no code: rejected, not prompted.
    let o = file_login(&server, &pki, "bob", "-");
    assert!(o.rejected(), "{}", o.log);
}

/// Issue 16 on Redis: two real servers share an HOTP token's counter and a user's recovery-code
/// uses; the user has a static password, so every login is deferred for Argon2id too.
#[test]
fn two_servers_share_hotp_counters_and_recovery_uses_through_redis() {
    use motp::engine::{base32, hotp_text, Algorithm};
    use motp::secret_hash;
    require_tools();
    let dir = TempDir::new("e2e-redis-tokens");
    let redis = RedisServer::start(dir.path());
    let pki = Pki::create(dir.path(), &["alice", "bob"]);
    let key = b"12345678901234567890";
    let recovery = secret_hash::generate_recovery_codes(1);
    let normalized = secret_hash::normalize_recovery_code(recovery[0].as_bytes()).unwrap();
    let users = format!(
        "[users.hank]\nkind = \"hotp\"\nsecret = \"{}\"\ncommon_name = \"alice\"\n\
         password = \"{}\"\nrecovery_codes = [\"{}\"]\n",
        base32::encode(key),
        secret_hash::hash_password(b"pw"),
        secret_hash::hash_recovery_code(&normalized),
    );
    let text = format!("{}{users}", config(&redis, &dir.path().join("state"), ""));
    let a = start_server(dir.path(), &pki, &text, "motp-a.toml");
    let b = start_server(dir.path(), &pki, &text, "motp-b.toml");
    let hank = |server: &Server, password: &str| {
        login(
            server,
            &pki,
            "alice",
            &Credentials::File {
                username: "hank",
                password,
            },
        )
    };
    let hotp = |counter| format!("pw{}", hotp_text(key, counter, Algorithm::Sha1, 6));

    let o = hank(&a, &hotp(0));
    assert!(o.accepted, "counter 0 on A: {}", o.log);
    let o = hank(&b, &hotp(0));
    assert!(o.rejected(), "counter 0 again, on B: {}", o.log);
    let o = hank(&b, &hotp(1));
    assert!(o.accepted, "counter 1 on B: {}", o.log);
    let with_recovery = format!("pw{}", recovery[0].as_str());
    let o = hank(&b, &with_recovery);
    assert!(o.accepted, "recovery code on B: {}", o.log);
    let o = hank(&a, &with_recovery);
    assert!(o.rejected(), "the recovery code again, on A: {}", o.log);
    assert_eq!(
        redis.command(&["TTL", "motp:user:hank"]).as_deref(),
        Some(":-1\r\n"),
        "the key holding the counter and the uses never expires"
    );
    for server in [&a, &b] {
        assert!(!server.log().contains(recovery[0].as_str()));
    }
}
