//! End to end, state and reloads: real `openvpn` servers load the debug `motp.so` and share or
//! keep its state (UDP and TCP servers on one state, a SIGHUP after dropping privileges), and
//! the user table reloads without a SIGHUP, under `--daemon` too. Moved from tests/e2e.rs; the
//! setup is in tests/e2e_setup/.
//!
//! Needs root (the server opens a tun device), `openvpn` and `openssl`. Each test has its own
//! PKI, port, tun device and temp dir, and kills its processes on drop.

use std::path::PathBuf;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Pki, Proto, Server, ServerSpec, TempDir,
};

mod e2e_setup;

use e2e_setup::*;

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
