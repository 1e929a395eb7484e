//! End to end: a real `openvpn` server loads the debug `motp.so`, real `openvpn` clients log in.
//!
//! Needs root (the server opens a tun device), `openvpn` and `openssl`. Each test has its own
//! PKI, port, tun device and temp dir, and kills its processes on drop.

use std::path::PathBuf;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Client, Credentials, Outcome, Pki, Proto,
    Server, ServerSpec, TempDir,
};

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "1234";
const BOB_SECRET: &str = "fedcba9876543210fedcba9876543210";
const BOB_PIN: &str = "987654";
const CAROL_SECRET: &str = "a1b2c3d4e5f60718";
const CAROL_PIN: &str = "5555";

const USERS: &str = r#"
[users.alice]
secret = "0123456789abcdef"
pin = "1234"

[users.bob]
secret = "fedcba9876543210fedcba9876543210"
pin = "987654"

[users.carol]
secret = "a1b2c3d4e5f60718"
pin = "5555"
disabled = true
"#;

/// Everything a test needs: temp dir, PKI, motp.toml and a running server.
struct Setup {
    _dir: TempDir,
    pki: Pki,
    server: Server,
    skew_file: PathBuf,
}

impl Setup {
    fn start(global: &str, extra: &[&str]) -> Setup {
        require_tools();
        let dir = TempDir::new("e2e");
        let pki = Pki::create(dir.path(), &["alice", "bob", "carol", "mallory"]);
        let config = dir.path().join("motp.toml");
        write_motp_config(
            &config,
            &format!("{global}\n{}\n{USERS}", state_section(dir.path())),
        );
        let skew_file = dir.path().join("clock-skew");
        std::fs::write(&skew_file, "0").unwrap();
        let mut spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config);
        spec.extra = extra.iter().map(|s| s.to_string()).collect();
        spec.env = vec![(
            motp::clock::TEST_SKEW_ENV.to_owned(),
            skew_file.display().to_string(),
        )];
        let server = Server::start(dir.path(), &spec)
            .unwrap_or_else(|log| panic!("server did not start:\n{log}"));
        Setup {
            _dir: dir,
            pki,
            server,
            skew_file,
        }
    }

    fn login(&self, cert: &str, username: &str, password: &str) -> Outcome {
        login(
            &self.server,
            &self.pki,
            cert,
            &Credentials::File { username, password },
        )
    }

    /// Moves the plugin's clock (debug-build hook) by `secs` relative to the system clock.
    fn set_server_skew(&self, secs: i64) {
        std::fs::write(&self.skew_file, secs.to_string()).unwrap();
    }

    /// The whole server log must be free of secrets, PINs and the given codes. Each is looked
    /// for as a whole word after the timestamp, so a PIN like 1234 is not "found" in
    /// `us=412345` or a port number.
    fn assert_log_clean(&self, codes: &[&str]) {
        let log = self.server.log();
        let words: Vec<&str> = log
            .lines()
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(l))
            .flat_map(|l| l.split(|c: char| !c.is_ascii_alphanumeric()))
            .collect();
        for secret in [
            ALICE_SECRET,
            ALICE_PIN,
            BOB_SECRET,
            BOB_PIN,
            CAROL_SECRET,
            CAROL_PIN,
        ] {
            assert!(
                !words.contains(&secret),
                "server log contains a secret or PIN"
            );
            assert!(
                secret.len() < 16 || !log.contains(secret),
                "server log contains a secret"
            );
        }
        for code in codes {
            assert!(!words.contains(code), "server log contains the code {code}");
        }
    }
}

fn alice_code(at: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, at).to_hex()
}

fn bob_code(at: i64) -> String {
    code_at_time(BOB_SECRET, BOB_PIN, at).to_hex()
}

/// A code that is valid at no step of a ±`window` window around `now` for this secret.
fn wrong_code(secret: &str, pin: &str, now: i64, window: i64) -> String {
    let valid: Vec<String> = (-window - 20..=window + 20)
        .step_by(10)
        .map(|d| code_at_time(secret, pin, now + d).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{:06x}", (n * 7919) & 0xff_ffff))
        .find(|c| !valid.contains(c))
        .expect("some code is wrong")
}

fn assert_accepted(outcome: &Outcome, what: &str) {
    assert!(
        outcome.accepted,
        "{what}: expected the login to be accepted; client log:\n{}",
        outcome.log
    );
}

fn assert_rejected(outcome: &Outcome, what: &str) {
    assert!(
        outcome.rejected(),
        "{what}: expected AUTH_FAILED; client log:\n{}",
        outcome.log
    );
}

/// The last plugin line that ends with `user=<name>` (the username is the last field).
fn last_decision(server: &Server, user: &str) -> String {
    let needle = format!(" user={user}");
    server
        .plugin_lines()
        .into_iter()
        .rev()
        .find(|l| l.ends_with(&needle))
        .unwrap_or_default()
}

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
    let s = Setup::start("", &[]);
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

/// `[state]` with a state dir of this test's own (never the system's /var/lib/openvpn-motp).
fn state_section(dir: &std::path::Path) -> String {
    format!("[state]\ndir = \"{}\"\n", dir.join("state").display())
}

fn file_login<'a>(username: &'a str, password: &'a str) -> Credentials<'a> {
    Credentials::File { username, password }
}

#[test]
fn udp_and_tcp_servers_share_state() {
    require_tools();
    let dir = TempDir::new("e2e-shared");
    let pki = Pki::create(dir.path(), &["alice", "bob"]);
    let config = dir.path().join("motp.toml");
    write_motp_config(
        &config,
        &format!("max_failures = 3\n{}\n{USERS}", state_section(dir.path())),
    );
    let udp_spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config.clone());
    let udp =
        Server::start(dir.path(), &udp_spec).unwrap_or_else(|log| panic!("udp server:\n{log}"));
    let mut tcp_spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config);
    tcp_spec.proto = Proto::Tcp;
    let tcp =
        Server::start(dir.path(), &tcp_spec).unwrap_or_else(|log| panic!("tcp server:\n{log}"));

    let now = unix_now();
    let code = alice_code(now);
    assert_accepted(
        &login(&udp, &pki, "alice", &file_login("alice", &code)),
        "alice over UDP",
    );
    assert_rejected(
        &login(&tcp, &pki, "alice", &file_login("alice", &code)),
        "the same code over TCP",
    );
    assert!(last_decision(&tcp, "alice").contains("reason=replay"));
    let next = alice_code(now + 10);
    assert_accepted(
        &login(&tcp, &pki, "alice", &file_login("alice", &next)),
        "a later code over TCP",
    );

    // Failures on both servers add up to one lock.
    let wrong = wrong_code(BOB_SECRET, BOB_PIN, now, 400);
    assert_rejected(
        &login(&udp, &pki, "bob", &file_login("bob", &wrong)),
        "bob wrong 1 (udp)",
    );
    assert_rejected(
        &login(&tcp, &pki, "bob", &file_login("bob", &wrong)),
        "bob wrong 2 (tcp)",
    );
    assert_rejected(
        &login(&udp, &pki, "bob", &file_login("bob", &wrong)),
        "bob wrong 3 (udp)",
    );
    assert_rejected(
        &login(&tcp, &pki, "bob", &file_login("bob", &bob_code(now))),
        "bob locked on tcp",
    );
    assert!(last_decision(&tcp, "bob").contains("reason=locked"));
}

#[test]
fn state_survives_sighup_after_dropping_privileges() {
    require_tools();
    let dir = TempDir::new("e2e-sighup");
    let pki = Pki::create(dir.path(), &["alice"]);
    // As the setup guide says: motp.toml 0640 root:nogroup, state dir owned by nobody.
    let config = dir.path().join("motp.toml");
    write_motp_config(&config, &format!("{}\n{USERS}", state_section(dir.path())));
    let run = |args: &[&str]| {
        let status = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    run(&["chown", "root:nogroup", &config.display().to_string()]);
    // A SIGHUP re-reads the server's keys too, as nobody.
    for key in ["server.key", "tls-crypt.key"] {
        run(&["chgrp", "nogroup", &pki.file(key)]);
        run(&["chmod", "0640", &pki.file(key)]);
    }
    let state = dir.path().join("state").display().to_string();
    run(&[
        "install", "-d", "-m", "0700", "-o", "nobody", "-g", "nogroup", &state,
    ]);
    // Debian's /dev/net/tun is 0666; some sandboxes make it 0600, which stops any unprivileged
    // reopen of the (persistent, nobody-owned) tun device after SIGHUP.
    run(&["chmod", "0666", "/dev/net/tun"]);
    let mut spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config);
    spec.tun_owner = Some(("nobody".into(), "nogroup".into()));
    spec.extra = ["user nobody", "group nogroup", "persist-key"]
        .map(String::from)
        .to_vec();
    let mut server =
        Server::start(dir.path(), &spec).unwrap_or_else(|log| panic!("server:\n{log}"));

    let now = unix_now();
    let code = alice_code(now);
    assert_accepted(
        &login(&server, &pki, "alice", &file_login("alice", &code)),
        "before SIGHUP",
    );
    server.sighup();
    let log = server.log();
    assert!(
        log.contains("PLUGIN_CLOSE"),
        "SIGHUP must have unloaded the plugin:\n{log}"
    );
    assert_rejected(
        &login(&server, &pki, "alice", &file_login("alice", &code)),
        "same code after SIGHUP",
    );
    assert!(last_decision(&server, "alice").contains("reason=replay"));
    let next = alice_code(now + 10);
    assert_accepted(
        &login(&server, &pki, "alice", &file_login("alice", &next)),
        "new code after SIGHUP",
    );
}

#[test]
fn user_table_reloads_without_sighup() {
    let ReloadSetup {
        dir: _dir,
        pki,
        config,
        base,
        server,
    } = ReloadSetup::start("e2e-reload", false);
    let now = unix_now();
    let dora_code = code_at_time("d0d0d0d0d0d0d0d0", "2468", now).to_hex();
    assert_rejected(
        &login(&server, &pki, "dora", &file_login("dora", &dora_code)),
        "dora before she is added",
    );

    // Add dora while the server runs.
    add_dora(&config, &base);
    assert_accepted(
        &login(&server, &pki, "dora", &file_login("dora", &dora_code)),
        "dora after she is added",
    );

    // Break the file: existing users keep working, and the log names the problem.
    write_motp_config(
        &config,
        &format!("{base}\n[users.dora]\nsecret = \"d0d0\"\npin = \"2468\"\n"),
    );
    wait_for_config_check();
    assert_accepted(
        &login(
            &server,
            &pki,
            "alice",
            &file_login("alice", &alice_code(now)),
        ),
        "alice, file broken",
    );
    let errors: Vec<String> = server
        .plugin_lines()
        .into_iter()
        .filter(|l| l.contains("users.dora.secret"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error naming the key, logged once: {errors:#?}"
    );
    assert!(
        errors[0].contains(&config.display().to_string()),
        "{}",
        errors[0]
    );
    let line = config_line_of(&server, &config);
    assert!(
        errors[0].contains(&format!("line {line}")),
        "{} (expected line {line})",
        errors[0]
    );
}

#[test]
fn under_daemon_the_plugin_threads_keep_working() {
    // Threads do not survive a fork: had OpenVPN opened the plugin before `--daemon` forks,
    // the daemon would have no config watcher and live reload would silently stop. OpenVPN
    // 2.4+ daemonizes first; this pins that the plugin's threads work in the daemon.
    let ReloadSetup {
        dir: _dir,
        pki,
        config,
        base,
        mut server,
    } = ReloadSetup::start("e2e-daemon", true);
    assert!(server.is_running(), "the daemon serves");
    assert!(
        server.log().contains("PLUGIN motp: ready"),
        "{}",
        server.log()
    );
    let now = unix_now();
    assert_accepted(
        &login(
            &server,
            &pki,
            "alice",
            &file_login("alice", &alice_code(now)),
        ),
        "alice, daemonized server",
    );

    add_dora(&config, &base);
    let dora_code = code_at_time("d0d0d0d0d0d0d0d0", "2468", unix_now()).to_hex();
    assert_accepted(
        &login(&server, &pki, "dora", &file_login("dora", &dora_code)),
        "dora, added while the daemon runs",
    );
    assert!(
        server
            .plugin_lines()
            .iter()
            .any(|l| l.contains("reloaded ") && l.contains("4 users")),
        "{:#?}",
        server.plugin_lines()
    );
}

/// A server whose motp.toml the test edits: alice, bob, carol; dora is added later.
struct ReloadSetup {
    dir: TempDir,
    pki: Pki,
    config: PathBuf,
    /// The file's text before dora is added.
    base: String,
    server: Server,
}

impl ReloadSetup {
    fn start(label: &str, daemon: bool) -> ReloadSetup {
        require_tools();
        let dir = TempDir::new(label);
        let pki = Pki::create(dir.path(), &["alice", "dora"]);
        let config = dir.path().join("motp.toml");
        let base = format!("{}\n{USERS}", state_section(dir.path()));
        write_motp_config(&config, &base);
        let mut spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config.clone());
        spec.daemon = daemon;
        let server =
            Server::start(dir.path(), &spec).unwrap_or_else(|log| panic!("server:\n{log}"));
        ReloadSetup {
            dir,
            pki,
            config,
            base,
            server,
        }
    }
}

/// Adds dora (secret d0d0d0d0d0d0d0d0, PIN 2468) and waits until the plugin has seen it.
fn add_dora(config: &std::path::Path, base: &str) {
    write_motp_config(
        config,
        &format!("{base}\n[users.dora]\nsecret = \"d0d0d0d0d0d0d0d0\"\npin = \"2468\"\n"),
    );
    wait_for_config_check();
}

/// Waits out the plugin's config watcher: it looks at motp.toml once a second, off OpenVPN's
/// thread, acts on a change the next check still sees, and its log lines reach OpenVPN's log
/// with the next login.
fn wait_for_config_check() {
    std::thread::sleep(
        motp::plugin::CONFIG_CHECK_INTERVAL * 3 + std::time::Duration::from_millis(500),
    );
}

/// The line of `secret = "d0d0"` in the broken config.
fn config_line_of(_server: &Server, config: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines().position(|l| l.contains("\"d0d0\"")).unwrap() + 1
}
