//! `motp.so` as production runs it: OpenVPN starts as root, loads the plugin, asks for its
//! initialization point, switches to `user nobody`, and opens it. The state directory belongs to
//! nobody, so every name in it is chosen by whoever runs as nobody: here a racer process, running
//! as nobody, keeps planting symlinks to root's files for the database, its `-wal`, `-shm` and
//! `-journal`, and for the write-probe names of the coming PIDs (`.motp-write-test-*`), while the plugin is opened again and again, as root (a host that ignores the
//! initialization point: the plugin must refuse) and as OpenVPN opens it (in a child process that
//! switches to nobody between loading and opening). Root's files keep their content, owner and
//! mode, and no file appears where a dangling link pointed.
//!
//! `motpctl status` under the same racer is tested in motpctl/tests/runtime_user.rs.
//!
//! Needs root (as the whole suite does) and the `nobody` user.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use motp::engine::code_at_time;
use motp_harness::abi::{requested_initialization_point, Env, OpenOptions, Plugin};
use motp_harness::runtime_user::{nobody_dir, Hostile, Racer, NOBODY, NOGROUP};
use openvpn_plugin_sys as sys;

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "q7x2";
/// Set in the child process: the config to open, and a directory nobody can write answers to.
const CHILD_CONFIG: &str = "MOTP_TEST_RUNTIME_USER_CONFIG";
const CHILD_ANSWERS: &str = "MOTP_TEST_RUNTIME_USER_ANSWERS";
/// Set in the child process: the Unix time whose code it sends.
const CHILD_CODE_AT: &str = "MOTP_TEST_RUNTIME_USER_CODE_AT";
const ROUNDS: usize = 25;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_plugin_asks_to_be_opened_after_openvpn_drops_privileges() {
    assert_eq!(
        requested_initialization_point(&motp_harness::plugin_path()),
        sys::OPENVPN_PLUGIN_INIT_POST_UID_CHANGE
    );
}

struct Setup {
    hostile: Hostile,
    answers: PathBuf,
    /// What the plugin logged in the last child process, for failure messages.
    last_child_log: std::sync::Mutex<String>,
}

impl std::ops::Deref for Setup {
    type Target = Hostile;
    fn deref(&self) -> &Hostile {
        &self.hostile
    }
}

fn setup(label: &str) -> Setup {
    let hostile = Hostile::create(
        label,
        &format!("[users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\n"),
    );
    let answers = hostile.base.join("answers");
    nobody_dir(&answers);
    Setup {
        hostile,
        answers,
        last_child_log: Default::default(),
    }
}

/// Opens the plugin in a child process the way OpenVPN with `user nobody` does and logs alice
/// in once. `Some(true/false)`: opened, and the login's verdict; `None`: the open failed.
fn open_as_openvpn_does(s: &Setup, code_at: i64) -> Option<bool> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_opens_the_plugin_as_the_runtime_user",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_CONFIG, &s.config)
        .env(CHILD_ANSWERS, &s.answers)
        .env(CHILD_CODE_AT, code_at.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("CHILD-RESULT ").nth(1))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"));
    let logs: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split("CHILD-LOG ").nth(1))
        .collect();
    *s.last_child_log.lock().unwrap() = logs.join("\n");
    match line {
        "accepted" => Some(true),
        "rejected" => Some(false),
        "open-failed" => None,
        other => panic!("unexpected child result {other}"),
    }
}

/// The child's side of [`open_as_openvpn_does`]: does nothing unless the parent set it up.
#[test]
#[ignore = "run by symlinks_planted_by_the_runtime_user_never_reach_roots_files"]
fn child_opens_the_plugin_as_the_runtime_user() {
    let (Some(config), Some(answers)) = (
        std::env::var_os(CHILD_CONFIG),
        std::env::var_os(CHILD_ANSWERS),
    ) else {
        return;
    };
    let mut options = OpenOptions::new(Path::new(&config));
    options.runtime_user = Some((NOBODY, NOGROUP));
    let plugin = match options.open() {
        Ok(plugin) => plugin,
        Err(e) => {
            for message in e.messages() {
                println!("CHILD-LOG {message}");
            }
            println!("CHILD-RESULT open-failed");
            return;
        }
    };
    assert_eq!(
        motp::os::effective_uid(),
        NOBODY,
        "opened after the switch to nobody"
    );
    let at: i64 = std::env::var(CHILD_CODE_AT)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(now);
    let code = code_at_time(SECRET, PIN, at).to_hex();
    let env = Env::openvpn_auth(Path::new(&answers), "alice", &code);
    let verdict = plugin.auth(&env);
    for message in plugin.messages() {
        println!("CHILD-LOG {message}");
    }
    drop(plugin);
    println!(
        "CHILD-RESULT {}",
        if verdict == sys::OPENVPN_PLUGIN_FUNC_SUCCESS {
            "accepted"
        } else {
            "rejected"
        }
    );
}

#[test]
fn symlinks_planted_by_the_runtime_user_never_reach_roots_files() {
    let s = setup("runtime-user-racer");
    let racer = Racer::start(&s.state, &s.victims);
    // Let the racer get going before the first open.
    let started = Instant::now();
    while fs::symlink_metadata(s.state.join("motp-state.db")).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "racer never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut opened_as_nobody = 0;
    for _ in 0..ROUNDS {
        // A host that opens the plugin as root, in a directory nobody owns: refused, and
        // nothing in the directory is touched.
        let refused = Plugin::open(&s.config).err().expect("root must refuse");
        let messages = refused.messages().join("\n");
        assert!(
            messages.contains("belongs to nobody") && messages.contains("runs as root"),
            "{messages}"
        );
        // As OpenVPN opens it: as nobody, whatever the racer left there.
        if open_as_openvpn_does(&s, now()).is_some() {
            opened_as_nobody += 1;
        }
    }
    drop(racer);
    s.victims.assert_untouched();
    let probe_links = fs::read_dir(&s.state)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".motp-write-test-")
                && e.file_type().is_ok_and(|t| t.is_symlink())
        })
        .count();
    assert!(probe_links > 0, "the racer planted write-probe links");
    // While the racer runs the plugin mostly refuses to open (fail closed: it cannot keep a
    // database the racer keeps replacing); how often it got through depends on timing.
    println!("opened as nobody in {opened_as_nobody} of {ROUNDS} rounds under the racer");

    // Without the racer, the runtime user's store works across reopenings (SIGHUPs): a code
    // is accepted once, its replay refused after the reopen, and the files belong to nobody.
    for name in [
        "motp-state.db",
        "motp-state.db-wal",
        "motp-state.db-shm",
        "motp-state.db-journal",
    ] {
        let _ = fs::remove_file(s.state.join(name));
        let _ = fs::remove_file(s.state.join(format!("{name}.t")));
    }
    // Codes from the future of every code used above, so none was accepted before.
    let at = now() + 60;
    let child_log = || s.last_child_log.lock().unwrap().clone();
    assert_eq!(
        open_as_openvpn_does(&s, at),
        Some(true),
        "a fresh code; the plugin logged:\n{}",
        child_log()
    );
    assert_eq!(
        open_as_openvpn_does(&s, at),
        Some(false),
        "the same code after reopening; the plugin logged:\n{}",
        child_log()
    );
    assert_eq!(
        open_as_openvpn_does(&s, at + 10),
        Some(true),
        "the next code; the plugin logged:\n{}",
        child_log()
    );
    for name in ["motp-state.db", "motp-state.db-wal", "motp-state.db-shm"] {
        if let Ok(meta) = fs::symlink_metadata(s.state.join(name)) {
            assert!(meta.is_file(), "{name}");
            assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600), "{name}");
        }
    }
    assert!(s.state.join("motp-state.db").exists());
}
