//! End to end: a real `openvpn` server loads the debug `motp.so`, real `openvpn` clients log in.
//!
//! Needs root (the server opens a tun device), `openvpn` and `openssl`. Each test has its own
//! PKI, port, tun device and temp dir, and kills its processes on drop.

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Client, Credentials, Pki, Server,
    ServerSpec, TempDir,
};

mod e2e_setup;

use e2e_setup::*;

#[test]
fn accepted_login_then_replay_is_rejected() {
    let s = Setup::start("", &[]);
    let code = alice_code(unix_now());
    assert_accepted(&s.login("alice", "alice", &code), "current code");
    let accepted = last_decision(&s.server, "alice");
    assert!(
        accepted.contains("login accepted") && accepted.contains("ip=127.0.0.1"),
        "{accepted}"
    );
    assert!(s
        .server
        .log()
        .contains("PLUGIN_AUTH_USER_PASS_VERIFY status=0"));

    let replay = s.login("alice", "alice", &code);
    assert_rejected(&replay, "replayed code");
    assert!(last_decision(&s.server, "alice").contains("reason=replay"));
    assert!(s
        .server
        .log()
        .contains("PLUGIN_AUTH_USER_PASS_VERIFY status=1"));
    // The client is told only that authentication failed, not why: a bare AUTH_FAILED.
    let msg = replay.auth_failed_message().unwrap_or_default().to_owned();
    assert!(!msg.contains("replay"), "{msg}");
    assert!(
        msg.trim_end()
            .trim_end_matches('\'')
            .ends_with("AUTH_FAILED"),
        "no reason after AUTH_FAILED: {msg}"
    );
    s.assert_log_clean(&[&code]);
}

#[test]
fn wrong_code_unknown_user_and_disabled_user_are_rejected() {
    let s = Setup::start("", &[]);
    let now = unix_now();
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN, now, 180);
    assert_rejected(&s.login("alice", "alice", &wrong), "wrong code");
    assert!(last_decision(&s.server, "alice").contains("reason=\"bad code\""));

    assert_rejected(
        &s.login("mallory", "mallory", &alice_code(now)),
        "unknown user",
    );
    assert!(last_decision(&s.server, "mallory").contains("reason=\"unknown user\""));

    let carol = code_at_time(CAROL_SECRET, CAROL_PIN, now).to_hex();
    assert_rejected(&s.login("carol", "carol", &carol), "disabled user");
    assert!(last_decision(&s.server, "carol").contains("reason=disabled"));

    assert_rejected(
        &s.login("alice", "alice", "not a code"),
        "malformed password",
    );
    assert!(last_decision(&s.server, "alice").contains("reason=\"malformed password\""));
    s.assert_log_clean(&[&wrong, &carol]);
}

#[test]
fn user_is_locked_after_max_failures_and_unlocked_after_the_period() {
    let s = Setup::start("max_failures = 3\nlockout_secs = 120", &[]);
    let now = unix_now();
    let wrong = wrong_code(BOB_SECRET, BOB_PIN, now, 400);
    for i in 0..3 {
        assert_rejected(&s.login("bob", "bob", &wrong), &format!("wrong code {i}"));
    }
    let locked = s.login("bob", "bob", &bob_code(now));
    assert_rejected(&locked, "correct code while locked");
    assert!(last_decision(&s.server, "bob").contains("reason=locked"));
    let msg = locked.auth_failed_message().unwrap_or_default();
    assert!(
        msg.contains("TEMP[backoff"),
        "locked client should be told to back off: {msg}"
    );

    // Two minutes later (on the plugin's clock) the lock has expired.
    s.set_server_skew(125);
    assert_accepted(
        &s.login("bob", "bob", &bob_code(now + 125)),
        "after the lockout period",
    );
}

/// One address (NAT, a campus, a load balancer): bob's client keeps retrying after bob is
/// locked, 30 times; none of those retries checked a code, so none counts against the address,
/// and alice, from the same address, logs in with her code.
#[test]
fn a_locked_user_retrying_from_a_shared_address_does_not_lock_the_others_out() {
    let s = Setup::start(
        "max_failures = 3\nlockout_secs = 600\nmax_failures_per_ip = 5\nip_lockout_secs = 600",
        &[],
    );
    let now = unix_now();
    let wrong = wrong_code(BOB_SECRET, BOB_PIN, now, 400);
    for i in 0..3 {
        assert_rejected(&s.login("bob", "bob", &wrong), &format!("wrong code {i}"));
    }
    // 30 retries, three clients at a time, each with bob's right code: all refused as locked.
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..10 {
                        let outcome = s.login("bob", "bob", &bob_code(unix_now()));
                        assert_rejected(&outcome, "bob while locked");
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
    let lines = s.server.plugin_lines();
    let locked = lines
        .iter()
        .filter(|l| l.contains("reason=locked") && l.contains("user=bob"))
        .count();
    assert_eq!(locked, 30, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("address locked")),
        "{lines:#?}"
    );
    assert_accepted(
        &s.login("alice", "alice", &alice_code(unix_now())),
        "alice from the same address",
    );
}

#[test]
fn certificate_of_another_user_is_rejected() {
    let s = Setup::start("", &[]);
    let code = alice_code(unix_now());
    assert_rejected(
        &s.login("bob", "alice", &code),
        "bob's certificate, alice's username",
    );
    assert!(last_decision(&s.server, "alice").contains("reason=\"CN mismatch\""));
    // The attempt did not consume alice's code.
    assert_accepted(
        &s.login("alice", "alice", &code),
        "alice with her own certificate",
    );
}

#[test]
fn phone_clock_170_seconds_off_is_accepted_200_is_not() {
    // The window's width where the config puts it: drift tracking, which would follow the
    // phone between the tries, is tested on its own (tests/e2e_drift.rs).
    let s = Setup::start("max_drift_secs = 0", &[]);
    // The phone is in sync with the real clock; the plugin's clock is moved instead.
    for (server_skew, accepted) in [(-170, true), (170, true), (-200, false), (200, false)] {
        s.set_server_skew(server_skew);
        // A fresh step for each accepted attempt, so replay protection does not interfere.
        let now = unix_now();
        let code = alice_code(now);
        let outcome = s.login("alice", "alice", &code);
        let what = format!(
            "phone {} s {}",
            server_skew.abs(),
            if server_skew < 0 { "ahead" } else { "behind" }
        );
        if accepted {
            assert_accepted(&outcome, &what);
            // Wait for the next step so the next accepted code is newer than this one.
            while alice_code(unix_now()) == code {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        } else {
            assert_rejected(&outcome, &what);
            assert!(
                last_decision(&s.server, "alice").contains("reason=\"bad code\""),
                "{what}"
            );
        }
    }
}

#[test]
fn static_challenge_login_is_accepted() {
    let s = Setup::start("", &[]);
    let code = alice_code(unix_now());
    let creds = Credentials::StaticChallenge {
        username: "alice",
        password: "static-pass",
        code: &code,
    };
    let outcome = login(&s.server, &s.pki, "alice", &creds);
    assert_accepted(&outcome, "SCRV1 static challenge");
    assert!(last_decision(&s.server, "alice").contains("login accepted"));
    s.assert_log_clean(&[&code]);
}

#[test]
fn session_survives_renegotiation_with_auth_gen_token() {
    // OpenVPN wants the token renewal time at least twice hand-window (90 s here).
    let s = Setup::start("", &["auth-gen-token 0 180", "reneg-sec 5"]);
    let code = alice_code(unix_now());
    let mut client = Client::start(
        &s.server,
        &s.pki,
        "alice",
        &Credentials::File {
            username: "alice",
            password: &code,
        },
        &[],
    );
    assert_accepted(&client.outcome(), "initial login");

    // Wait for at least two renegotiations (every 5 s).
    let start = std::time::Instant::now();
    let renegotiations = |log: &str| log.matches("TLS: soft reset").count();
    while renegotiations(&s.server.log()) < 2
        && start.elapsed() < std::time::Duration::from_secs(40)
    {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let server_log = s.server.log();
    assert!(
        renegotiations(&server_log) >= 2,
        "expected two renegotiations; server log:\n{server_log}"
    );
    assert!(
        client.is_running(),
        "client dropped; log:\n{}",
        client.log()
    );
    assert!(
        !client.log().contains("AUTH_FAILED"),
        "client log:\n{}",
        client.log()
    );
    // The OTP was checked once; renegotiations used the token, not a replay of the code.
    let decisions: Vec<_> = s
        .server
        .plugin_lines()
        .into_iter()
        .filter(|l| l.contains("login "))
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
}

#[test]
fn bad_config_stops_the_server_and_names_file_line_and_key() {
    require_tools();
    let dir = TempDir::new("e2e-badconf");
    let pki = Pki::create(dir.path(), &[]);
    let config = dir.path().join("motp.toml");
    write_motp_config(
        &config,
        "window_secs = 60\n\n[users.alice]\nsecret = \"0123456789abcdeX\"\npin = \"1234\"\n",
    );
    let spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config.clone());
    let log = match Server::start(dir.path(), &spec) {
        Ok(mut server) => panic!(
            "server started with a bad config; running={}",
            server.is_running()
        ),
        Err(log) => log,
    };
    let line = log
        .lines()
        .find(|l| l.contains("PLUGIN motp:") && l.contains("cannot start"))
        .unwrap_or_else(|| {
            panic!("no plugin error line in the server log:\n{log}");
        });
    assert!(line.contains(&config.display().to_string()), "{line}");
    assert!(line.contains("line 4"), "{line}");
    assert!(line.contains("users.alice.secret"), "{line}");
    assert!(
        !log.contains("0123456789abcdeX"),
        "the secret leaked into the log"
    );
    assert!(
        log.contains("PLUGIN_INIT: plugin initialization function failed"),
        "{log}"
    );
}
