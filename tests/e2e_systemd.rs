//! The Debian unit, emulated: real `openvpn` servers run the way Debian 12's
//! `openvpn-server@.service` runs them, and the plugin must keep working through SIGHUPs.
//!
//! There is no systemd as PID 1 here, so the unit's two restrictions that matter to the plugin
//! are applied by hand ([`debian_unit_launcher`]):
//!
//! - `prlimit --nproc=10:10` (`LimitNPROC=10`): once OpenVPN has dropped to `user nobody`, a
//!   new thread or process fails (`EAGAIN`) while the real uid `nobody` already has 10 tasks on
//!   the machine, threads of every OpenVPN instance included;
//! - `setpriv --bounding-set -all,+ipc_lock,+net_admin,+net_bind_service,+net_raw,+setgid,
//!   +setuid,+setpcap,+sys_chroot,+dac_override,+audit_write` (`CapabilityBoundingSet=`): root
//!   in `openvpn` has no CAP_CHOWN and no CAP_FOWNER (nor CAP_SYS_RESOURCE, which would lift
//!   the NPROC limit). Each test checks in `/proc` that the running server really has these
//!   limits and runs as nobody.
//!
//! ProtectSystem, ProtectHome and PrivateTmp are not emulated.
//!
//! The rest is as the setup guide's "Running under systemd" says: `user nobody` / `group
//! nogroup`, motp.toml 0640 root:nogroup, the state directory made with `install -d -m 0700
//! -o nobody -g nogroup`, the key files 0640 root:nogroup (OpenVPN re-reads them as nobody at
//! SIGHUP, `persist-key` or not), `persist-key`, `persist-tun`. The unit's command line is
//! passed too (`--status <runtime dir>/status-NAME.log --status-version 2
//! --suppress-timestamps`, the runtime dir 0710 root:root as Debian's tmpfiles.d makes
//! `/run/openvpn-server`), and server.conf names a status file of nobody's, in a directory of
//! nobody's, which overrides it: OpenVPN checks the status file again as nobody at SIGHUP and
//! exits if it cannot write it (the third test pins that, as the guide warns).
//!
//! The tun device is the one of the SIGHUP test in tests/e2e_state.rs: persistent and owned by
//! nobody, with `/dev/net/tun` 0666 as on Debian. OpenVPN itself needs nothing beyond the
//! unit's capabilities: CAP_NET_ADMIN opens the tun at start (and Debian's OpenVPN 2.6 keeps
//! CAP_NET_ADMIN after dropping to nobody, "Capabilities retained: CAP_NET_ADMIN"; it does not
//! lift RLIMIT_NPROC, only CAP_SYS_RESOURCE or CAP_SYS_ADMIN would), CAP_DAC_OVERRIDE reads the
//! files as root, CAP_SETUID/CAP_SETGID drop to nobody. No limit was weakened to make OpenVPN
//! run.
//!
//! Before the plugin was opened after OpenVPN's uid change (POST_UID_CHANGE) and kept to one
//! Redis worker, the first test failed (root created the database, could not chown it without
//! CAP_CHOWN, and at the first SIGHUP nobody set it aside and refused the next code too), and
//! so did the second (1 + 1 + 4 tasks per server: the two servers' 12 tasks of nobody left no
//! room for the threads the first server SIGHUPed had to start again, and it exited with
//! `cannot start worker threads: Resource temporarily unavailable`).
//!
//! The last two tests (issue 12, "a small thread budget") lower the limit below what the
//! plugin's threads need, counted from the tasks nobody already has: with room for 4 tasks, a
//! first Redis instance takes 3 (OpenVPN's thread, `motp-worker`, `motp-config`) and a second
//! only its own thread; with room for 1, a local-store instance has no config watcher. OpenVPN
//! itself starts no task as nobody (no `--daemon`, `ifconfig-noexec`, `route-noexec`), at start
//! or at SIGHUP, so the servers run and must keep deciding correctly: the Redis instance on
//! OpenVPN's thread until a retry (every 10 s, at a login) finds room for its worker, the
//! local one applying motp.toml edits at logins more than a second apart.
//!
//! RLIMIT_NPROC counts every task of nobody on the machine, so the tests of this file run one
//! at a time (a static mutex), and each first waits until no other task runs as nobody (cargo
//! runs test binaries one after another, so within one `cargo test` only this file runs
//! OpenVPN as nobody meanwhile; a concurrent `cargo test` of tests/e2e_state.rs could, and would be
//! waited out or reported). Timeouts only guard against hangs; nothing is timed.
//!
//! Needs root, `openvpn`, `openssl`, `prlimit`, `setpriv`, `ip`, and `redis-server` for the
//! Redis test.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::Duration;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, tasks_of_uid, unix_now, write_motp_config, Credentials, Proto, RedisServer, Server,
    TempDir,
};

mod debian_unit;

use debian_unit::*;

/// One test at a time: the NPROC budget of nobody is machine-wide.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn local_store_survives_two_sighups_under_the_debian_unit() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let unit = Unit::prepare("e2e-unit-local", |state| {
        format!("[state]\ndir = \"{}\"\n\n{USERS}", state.display())
    });
    let mut server = unit.start(Proto::Udp);

    let now = unix_now();
    let code = alice_code(now);
    assert_accepted(&unit.login(&server, &code), "current code");
    reload(&mut server, "first SIGHUP");
    reload(&mut server, "second SIGHUP");
    assert_replay(
        &server,
        &unit.login(&server, &code),
        "the used code after two SIGHUPs",
    );
    assert_accepted(
        &unit.login(&server, &alice_code(now + 10)),
        "the next code after two SIGHUPs",
    );

    // Nothing was set aside, and every state file belongs to nobody.
    assert_no_plugin_trouble(&server, "local store");
    let mut files = Vec::new();
    for entry in fs::read_dir(&unit.state).expect("read state dir") {
        let entry = entry.expect("state dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("motp-state.db.corrupt-"),
            "the state database was set aside: {name}"
        );
        let meta = entry.metadata().expect("state file metadata");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOGROUP),
            "{name} is not owned by nobody:nogroup"
        );
        files.push(name);
    }
    assert!(
        files.iter().any(|f| f == "motp-state.db"),
        "no motp-state.db in the state dir: {files:?}"
    );
    eprintln!(
        "local store: state files {files:?}; tasks of nobody: {:?}",
        tasks_of_uid(NOBODY)
    );
}

#[test]
fn udp_and_tcp_servers_on_redis_survive_sighups_under_the_debian_unit() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let redis_dir = TempDir::new("e2e-unit-redis-server");
    let redis = RedisServer::start(redis_dir.path());
    let unit = Unit::prepare("e2e-unit-redis", |state| {
        format!(
            // Replays and malformed passwords count as failures: keep this test's few of them
            // far from a lock.
            "max_failures = 20\n\n\
             [state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\ndir = \"{}\"\n\n{USERS}",
            redis.url(),
            state.display()
        )
    });
    let mut udp = unit.start(Proto::Udp);
    let mut tcp = unit.start(Proto::Tcp);

    let now = unix_now();
    let first = alice_code(now);
    assert_accepted(&unit.login(&udp, &first), "a code through UDP");
    assert_refused(&unit.login(&tcp, &first), "the same code through TCP");

    for round in 1..=2 {
        reload(&mut udp, &format!("UDP server, SIGHUP {round}"));
        reload(&mut tcp, &format!("TCP server, SIGHUP {round}"));
    }
    assert!(udp.is_running() && tcp.is_running());

    // Both still decide, and still share what was used.
    let second = alice_code(now + 10);
    assert_accepted(&unit.login(&tcp, &second), "a fresh code through TCP");
    assert_refused(&unit.login(&udp, &second), "that code through UDP");
    let third = alice_code(now + 20);
    assert_accepted(&unit.login(&udp, &third), "a fresh code through UDP");
    assert_refused(&unit.login(&tcp, &third), "that code through TCP");
    assert_refused(&unit.login(&udp, &first), "the first code again");
    // One more call per server writes out the workers' queued lines: each refusal above was
    // a replay.
    for server in [&udp, &tcp] {
        assert_refused(&unit.login(server, "not a code"), "a malformed password");
    }
    assert_eq!(replays_logged(&udp), 2, "{:#?}", udp.plugin_lines());
    assert_eq!(replays_logged(&tcp), 2, "{:#?}", tcp.plugin_lines());
    for (server, what) in [(&udp, "UDP server"), (&tcp, "TCP server")] {
        assert_no_plugin_trouble(server, what);
    }
    assert!(udp.is_running() && tcp.is_running());
    eprintln!(
        "redis: {} tasks of nobody after the SIGHUPs: {:?}",
        tasks_of_uid(NOBODY).len(),
        tasks_of_uid(NOBODY)
    );
}

#[test]
fn the_units_own_status_file_stops_a_server_running_as_nobody_at_sighup() {
    // What the setup guide warns about, whatever the plugin does: the unit's `--status` file is
    // created by root in a directory only root may write, and OpenVPN checks it again as nobody
    // at SIGHUP, and exits. (The other tests name a status file of nobody's in server.conf.)
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let unit = Unit::prepare("e2e-unit-status", |state| {
        format!("[state]\ndir = \"{}\"\n\n{USERS}", state.display())
    });
    let mut server = unit
        .try_start(Proto::Udp, false)
        .unwrap_or_else(|log| panic!("server did not start under the unit:\n{log}"));
    let log = match server.try_sighup() {
        Ok(()) => panic!(
            "the server survived SIGHUP with the unit's status file; if OpenVPN no longer \
             checks it as nobody, update docs/setup.md (\"Running under systemd\"):\n{}",
            server.log()
        ),
        Err(log) => log,
    };
    assert!(
        log.contains("--status fails with") && log.contains("Permission denied"),
        "{log}"
    );
    assert!(!server.is_running());
}

// Issue 12, "a small thread budget": an NPROC limit too small for the plugin's threads (the
// uid's other OpenVPN instances took the room) must never stop OpenVPN. Each test counts from
// the tasks nobody already has, so the arithmetic holds whatever else runs as nobody.

#[test]
fn a_redis_instance_without_room_for_its_threads_still_decides_and_retries_the_worker() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let redis_dir = TempDir::new("e2e-unit-starved-redis-server");
    let redis = RedisServer::start(redis_dir.path());
    let unit = Unit::prepare("e2e-unit-starved-redis", |state| {
        format!(
            "max_failures = 20\n\n\
             [state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\ndir = \"{}\"\n\n{USERS}",
            redis.url(),
            state.display()
        )
    });
    // Room for 4 tasks of nobody: the first instance takes 3 (OpenVPN's thread, the worker,
    // the config watcher), the second only its own thread. OpenVPN itself starts nothing as
    // nobody (no --daemon, ifconfig-noexec, route-noexec), at start or at SIGHUP.
    let nproc = nproc_leaving_room_for(4);
    let mut full = unit.start_with_nproc(Proto::Udp, nproc);
    assert_tasks(
        &full,
        &["openvpn", "motp-worker", "motp-config"],
        "first instance",
    );
    let mut starved = unit.start_with_nproc(Proto::Tcp, nproc);
    assert_tasks(&starved, &["openvpn"], "second instance");
    assert!(full.is_running() && starved.is_running());

    // The starved instance said why and what to do, and was ready only after that.
    assert_explained(&starved, WORKER_FAILED, "second instance");
    assert_explained(&starved, WATCHER_FAILED, "second instance");
    assert_ready_after(
        &starved,
        &[WORKER_FAILED, WATCHER_FAILED],
        1,
        "second instance",
    );
    assert_no_plugin_trouble(&full, "first instance");

    // Decided on OpenVPN's thread, and still right: accepted once, then a replay, on either
    // instance (Redis is shared).
    let now = unix_now();
    let first = alice_code(now);
    assert_accepted(
        &unit.login(&starved, &first),
        "a fresh code, starved instance",
    );
    assert_replay(
        &starved,
        &unit.login(&starved, &first),
        "that code again, starved instance",
    );
    assert_refused(
        &unit.login(&full, &first),
        "that code through the first instance",
    );
    let second = alice_code(now + 10);
    assert_accepted(&unit.login(&full, &second), "a fresh code, first instance");
    assert_replay(
        &starved,
        &unit.login(&starved, &second),
        "the first instance's code, starved instance",
    );

    // The worker is tried again (every 10 s): still no room, logged again, still decided.
    std::thread::sleep(PAST_WORKER_RETRY);
    let failures = count_in_log(&starved, WORKER_FAILED);
    let third = alice_code(now + 20);
    assert_accepted(
        &unit.login(&starved, &third),
        "a fresh code after the retry, starved instance",
    );
    assert!(
        count_in_log(&starved, WORKER_FAILED) > failures,
        "the worker was not tried again after 10 s:\n{}",
        starved.log()
    );
    assert_tasks(&starved, &["openvpn"], "second instance after the retry");

    // A SIGHUP reopens the plugin: the same failures, then `ready:`, and it serves on.
    reload_confined_to(&mut starved, "starved instance, SIGHUP", nproc);
    assert_ready_after(
        &starved,
        &[WORKER_FAILED, WATCHER_FAILED],
        2,
        "second instance after SIGHUP",
    );
    let fourth = alice_code(now + 30);
    assert_accepted(
        &unit.login(&starved, &fourth),
        "a fresh code after SIGHUP, starved instance",
    );
    assert_replay(
        &starved,
        &unit.login(&starved, &fourth),
        "that code again after SIGHUP, starved instance",
    );
    assert!(full.is_running() && starved.is_running());

    // Room again (the first instance stops): the next retry starts the worker, and logins are
    // deferred to it again.
    let held = tasks_of_uid(NOBODY).len();
    drop(full);
    wait_until_nobody_holds_at_most(held - 3);
    std::thread::sleep(PAST_WORKER_RETRY);
    let fifth = alice_code(now + 40);
    assert_accepted(
        &unit.login(&starved, &fifth),
        "a fresh code once there is room, starved instance",
    );
    assert!(
        starved
            .log()
            .contains("started the worker thread; logins are deferred again"),
        "the worker did not start once there was room:\n{}",
        starved.log()
    );
    assert_tasks(
        &starved,
        &["openvpn", "motp-worker"],
        "second instance after the worker started",
    );
    assert_refused(
        &unit.login(&starved, &fifth),
        "that code again, decided by the worker",
    );
    // One more call writes out the worker's queued lines: that refusal was a replay too.
    assert_refused(&unit.login(&starved, "not a code"), "a malformed password");
    assert_eq!(replays_logged(&starved), 4, "{:#?}", starved.plugin_lines());
    assert!(starved.is_running());
    eprintln!(
        "starved redis instance: {:#?}",
        starved
            .plugin_lines()
            .iter()
            .filter(|l| l.contains("cannot start") || l.contains("ready:") || l.contains("started"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_local_store_instance_without_room_for_its_watcher_applies_edits_at_logins() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let unit = Unit::prepare("e2e-unit-starved-local", |state| {
        format!(
            "max_failures = 20\n\n[state]\ndir = \"{}\"\n\n{USERS}",
            state.display()
        )
    });
    // Room for OpenVPN's own thread only.
    let nproc = nproc_leaving_room_for(1);
    let mut server = unit.start_with_nproc(Proto::Udp, nproc);
    assert_tasks(&server, &["openvpn"], "local instance");
    assert_explained(&server, WATCHER_FAILED, "local instance");
    assert_eq!(
        count_in_log(&server, WATCHER_FAILED),
        1,
        "logged once:\n{}",
        server.log()
    );
    assert_ready_after(&server, &[WATCHER_FAILED], 1, "local instance");

    let now = unix_now();
    let first = alice_code(now);
    assert_accepted(&unit.login(&server, &first), "a fresh code");
    assert_replay(&server, &unit.login(&server, &first), "that code again");

    // Add carol (bound to alice's certificate, the only client certificate here) the way an
    // admin tool does: a new file, root:nogroup 0640, renamed over motp.toml.
    let carol_secret = "fedcba9876543210";
    let carol_pin = "9999";
    let edited = unit.dir.path().join("motp.toml.new");
    write_motp_config(
        &edited,
        &format!(
            "max_failures = 20\n\n[state]\ndir = \"{}\"\n\n{USERS}\n\
             [users.carol]\nsecret = \"{carol_secret}\"\npin = \"{carol_pin}\"\n\
             common_name = \"alice\"\n",
            unit.state.display()
        ),
    );
    run(&["chown", "root:nogroup", &edited.display().to_string()]);
    fs::rename(&edited, &unit.config).expect("rename the edited motp.toml into place");
    let meta = fs::metadata(&unit.config).expect("motp.toml metadata");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, NOGROUP, 0o640)
    );

    let carol = |server: &Server, password: &str| {
        login(
            server,
            &unit.pki,
            "alice",
            &Credentials::File {
                username: "carol",
                password,
            },
        )
    };
    let last_carol = |server: &Server| {
        server
            .plugin_lines()
            .into_iter()
            .rev()
            .find(|l| l.ends_with(" user=carol"))
            .unwrap_or_default()
    };
    let carol_code = code_at_time(carol_secret, carol_pin, unix_now()).to_hex();
    // First login more than a second after the last check: it sees the new version only.
    std::thread::sleep(Duration::from_millis(1100));
    let outcome = carol(&server, &carol_code);
    assert!(
        outcome.rejected(),
        "carol before the reload: {}",
        outcome.log
    );
    assert!(
        last_carol(&server).contains("unknown user"),
        "{}",
        last_carol(&server)
    );
    assert!(
        !server.log().contains("reloaded"),
        "applied after one check:\n{}",
        server.log()
    );
    // The second, more than a second later, sees the same version again and applies it.
    std::thread::sleep(Duration::from_millis(1100));
    assert_accepted(&carol(&server, &carol_code), "carol after two checks");
    let reloaded: Vec<String> = server
        .plugin_lines()
        .into_iter()
        .filter(|l| l.contains("PLUGIN motp: reloaded "))
        .collect();
    assert!(
        reloaded.len() == 1 && reloaded[0].contains("2 users"),
        "{reloaded:#?}\n{}",
        server.log()
    );
    let outcome = carol(&server, &carol_code);
    assert!(outcome.rejected(), "carol's code again: {}", outcome.log);
    assert!(
        last_carol(&server).contains("reason=replay"),
        "{}",
        last_carol(&server)
    );
    assert_accepted(
        &unit.login(&server, &alice_code(now + 10)),
        "alice after the reload",
    );

    // At SIGHUP the plugin opens with the edited file, the watcher fails again, `ready:` after.
    reload_confined_to(&mut server, "local instance, SIGHUP", nproc);
    assert_tasks(&server, &["openvpn"], "local instance after SIGHUP");
    assert_ready_after(&server, &[WATCHER_FAILED], 2, "local instance after SIGHUP");
    let carol_next = code_at_time(carol_secret, carol_pin, unix_now() + 10).to_hex();
    assert_accepted(&carol(&server, &carol_next), "carol after SIGHUP");
    assert!(server.is_running());
    assert_no_plugin_trouble_but_the_watcher(&server);
    eprintln!(
        "starved local instance: {:#?}",
        server
            .plugin_lines()
            .iter()
            .filter(|l| l.contains("cannot start")
                || l.contains("ready:")
                || l.contains("reloaded"))
            .collect::<Vec<_>>()
    );
}
