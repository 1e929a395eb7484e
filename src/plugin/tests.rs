//! Unit tests of [`super`]: live reload, answer files, reopening, and the prompt table.

use super::crtext::PromptLimit;
use super::reply::write_answer_file;
use super::*;
use crate::engine::code_at_time;
use crate::state::sqlite::tests::TempDir;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};
use tracing::Level;

const ALICE: &str = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n";
const BOB: &str = "[users.bob]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n";
const CAROL: &str = "[users.carol]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"77\"\n";

type Lines = Arc<Mutex<Vec<(Level, String)>>>;

struct Setup {
    dir: TempDir,
    config: PathBuf,
    lines: Lines,
    version: u64,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = TempDir::new(name);
        let config = dir.0.join("motp.toml");
        Setup {
            dir,
            config,
            lines: Lines::default(),
            version: 0,
        }
    }
    fn state_table(&self) -> String {
        format!(
            "[state]\ndir = \"{}\"\n",
            self.dir.0.join("state").display()
        )
    }
    /// Replaces motp.toml (mode 0640, a distinct mtime) in one rename, so the watcher
    /// never sees a version these tests did not mean.
    fn write(&mut self, text: &str) {
        let next = self.config.with_extension("toml.new");
        std::fs::write(&next, text).unwrap();
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o640)).unwrap();
        self.version += 1;
        std::fs::File::options()
            .write(true)
            .open(&next)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(1_600_000_000 + self.version))
            .unwrap();
        std::fs::rename(&next, &self.config).unwrap();
    }
    fn open(&self) -> Result<Plugin, String> {
        let lines = self.lines.clone();
        Plugin::open(
            &self.config,
            Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
        )
    }
    fn take_lines(&self) -> Vec<(Level, String)> {
        std::mem::take(&mut *self.lines.lock())
    }
    /// Opened with a watcher that checks every 10 ms, so tests need not wait a second.
    fn open_watching_fast(&self) -> Result<Plugin, String> {
        let lines = self.lines.clone();
        Plugin::open_watching(
            &self.config,
            Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
            TrustedOwners::root_and(crate::os::effective_uid()),
            Duration::from_millis(10),
        )
    }
    /// Takes the log lines once one matching `want` was written (the watcher's lines are
    /// written out at the plugin's next call, so this keeps calling `flush_logs`).
    fn wait_for_line(
        &self,
        plugin: &Plugin,
        want: impl Fn(Level, &str) -> bool,
    ) -> Vec<(Level, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            plugin.flush_logs();
            if self.lines.lock().iter().any(|(l, m)| want(*l, m)) {
                return self.take_lines();
            }
            assert!(Instant::now() < deadline, "{:?}", self.lines.lock());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn login(plugin: &Plugin, user: &str, secret: &str, pin: &str, step_ahead: i64) -> Answer {
    let code = code_at_time(secret, pin, clock::now() + 10 * step_ahead).to_hex();
    let env = AuthEnv {
        username: Some(user.as_bytes()),
        password: Some(code.as_bytes()),
        common_name: Some(user.as_bytes()),
        ..AuthEnv::default()
    };
    plugin.auth_user_pass_verify(&env)
}
fn alice(p: &Plugin, ahead: i64) -> Answer {
    login(p, "alice", "0123456789abcdef", "1234", ahead)
}
fn bob(p: &Plugin, ahead: i64) -> Answer {
    login(p, "bob", "fedcba9876543210", "4321", ahead)
}
fn carol(p: &Plugin, ahead: i64) -> Answer {
    login(p, "carol", "00112233445566778899aabbccddeeff", "77", ahead)
}
fn errors(lines: &[(Level, String)]) -> Vec<&String> {
    lines
        .iter()
        .filter(|(l, _)| *l == Level::ERROR)
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn user_table_reloads_live_and_a_broken_file_keeps_the_old_one() {
    let mut s = Setup::new("reload");
    let state = s.state_table();
    s.write(&format!("{state}{ALICE}"));
    let plugin = s.open_watching_fast().unwrap();
    assert_eq!(alice(&plugin, 0), Answer::Accept);
    assert_eq!(bob(&plugin, 0), Answer::Reject);
    s.take_lines();

    // A user added: no SIGHUP needed.
    s.write(&format!("{state}{ALICE}{BOB}"));
    s.wait_for_line(&plugin, |_, m| {
        m.starts_with("reloaded ") && m.contains("2 users")
    });
    assert_eq!(bob(&plugin, 0), Answer::Accept);

    // Broken: the previous table keeps serving, one error names file, line and key.
    let broken = format!(
        "{state}{ALICE}{}",
        BOB.replace("fedcba9876543210", "fedcba98")
    );
    s.write(&broken);
    let mut lines = s.wait_for_line(&plugin, |l, _| l == Level::ERROR);
    assert_eq!(alice(&plugin, 1), Answer::Accept);
    assert_eq!(bob(&plugin, 1), Answer::Accept);
    // Many checks later the broken file is still not reported twice.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(alice(&plugin, 2), Answer::Accept);
    lines.extend(s.take_lines());
    let errs = errors(&lines);
    assert_eq!(errs.len(), 1, "{lines:?}");
    let line_no = broken
        .lines()
        .position(|l| l.starts_with("secret = \"fedcba98"))
        .unwrap()
        + 1;
    assert!(
        errs[0].contains(&s.config.display().to_string()),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains(&format!("line {line_no}")), "{}", errs[0]);
    assert!(errs[0].contains("users.bob.secret"), "{}", errs[0]);
    assert!(
        !errs[0].contains("fedcba98"),
        "no secret in the log: {}",
        errs[0]
    );

    // Fixed, with bob removed and carol added: the new table.
    s.write(&format!("{state}{ALICE}{CAROL}"));
    let lines = s.wait_for_line(&plugin, |_, m| m.starts_with("reloaded "));
    assert!(errors(&lines).is_empty(), "{lines:?}");
    assert_eq!(carol(&plugin, 0), Answer::Accept);
    assert_eq!(bob(&plugin, 2), Answer::Reject);
    assert_eq!(alice(&plugin, 3), Answer::Accept);

    // [state] cannot change without a SIGHUP: say so, keep serving.
    s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}{CAROL}"));
    s.wait_for_line(&plugin, |l, m| {
        l == Level::WARN && m.contains("[state] table changed")
    });
    assert_eq!(alice(&plugin, 4), Answer::Accept);
}

#[test]
fn the_watcher_stops_at_close_and_a_login_does_not_wait_for_a_reload() {
    let mut s = Setup::new("watcher");
    let state = s.state_table();
    s.write(&format!("{state}{ALICE}"));
    let lines = s.lines.clone();
    let hour = Duration::from_secs(3600);
    let plugin = Plugin::open_watching(
        &s.config,
        Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
        TrustedOwners::root_and(crate::os::effective_uid()),
        hour,
    )
    .unwrap();
    // Until the watcher looks again, logins use the table in service.
    s.write(&format!("{state}{ALICE}{BOB}"));
    assert_eq!(bob(&plugin, 0), Answer::Reject);
    assert_eq!(alice(&plugin, 0), Answer::Accept);
    // Closing wakes the watcher instead of waiting out its hour (this test would hang).
    let started = Instant::now();
    drop(plugin);
    assert!(started.elapsed() < hour / 2);
}

#[test]
fn a_fifo_put_in_place_of_the_config_neither_hangs_the_reload_nor_the_close() {
    let mut s = Setup::new("fifo");
    let state = s.state_table();
    s.write(&format!("{state}{ALICE}"));
    let plugin = s.open_watching_fast().unwrap();
    s.take_lines();
    let fifo = s.config.with_extension("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::rename(&fifo, &s.config).unwrap();
    let lines = s.wait_for_line(&plugin, |l, m| {
        l == Level::ERROR && m.contains("is not a regular file")
    });
    assert!(!lines.is_empty());
    assert_eq!(
        alice(&plugin, 0),
        Answer::Accept,
        "the table in service stays"
    );
    // The watcher is not stuck in open(): closing returns (a hang fails by the harness's
    // timeout; this bound is only against that).
    let started = Instant::now();
    drop(plugin);
    assert!(started.elapsed() < Duration::from_secs(10));
    // And at open: refused at once.
    let e = s.open().err().unwrap();
    assert!(e.contains("is not a regular file"), "{e}");
}

#[test]
fn a_config_the_runtime_user_could_change_is_refused_at_open_and_at_reload() {
    let mut s = Setup::new("untrusted");
    let state = s.state_table();
    s.write(&format!("{state}{ALICE}"));
    let plugin = s.open_watching_fast().unwrap();
    s.take_lines();
    // Made group-writable: the reload is refused, the table in service stays.
    let next = s.config.with_extension("toml.new");
    std::fs::write(&next, format!("{state}{ALICE}{BOB}")).unwrap();
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o660)).unwrap();
    std::fs::rename(&next, &s.config).unwrap();
    let lines = s.wait_for_line(&plugin, |l, m| {
        l == Level::ERROR && m.contains("writable by its group")
    });
    assert!(
        errors(&lines).iter().all(|m| m.contains("chmod go-w")),
        "{lines:?}"
    );
    assert_eq!(bob(&plugin, 0), Answer::Reject, "bob was not added");
    drop(plugin);
    let e = s.open().err().unwrap();
    assert!(e.contains("writable by its group"), "{e}");
}

#[test]
fn answer_files_are_never_created_followed_or_waited_on() {
    use std::os::unix::ffi::OsStrExt;
    let s = Setup::new("answers");
    let raw = |p: &Path| p.as_os_str().as_bytes().to_vec();
    // OpenVPN's file, empty: written. A longer leftover is cut to the answer.
    let acf = s.dir.0.join("acf");
    std::fs::write(&acf, b"").unwrap();
    write_control(&raw(&acf), true);
    assert_eq!(std::fs::read(&acf).unwrap(), b"1");
    std::fs::write(&acf, b"0000").unwrap();
    write_control(&raw(&acf), true);
    assert_eq!(std::fs::read(&acf).unwrap(), b"1");
    // Removed: stays removed (OpenVPN then refuses the login at hand-window).
    let gone = s.dir.0.join("gone");
    write_control(&raw(&gone), true);
    write_client_reason(&raw(&gone), "TEMP[backoff 5]: x");
    assert!(!gone.exists());
    // A symlink in its place: not followed, the target keeps its content.
    let target = s.dir.0.join("target");
    std::fs::write(&target, b"precious").unwrap();
    let link = s.dir.0.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    write_control(&raw(&link), true);
    write_client_reason(&raw(&link), "TEMP[backoff 5]: x");
    assert!(write_answer_file(&raw(&link), b"1").is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    // A FIFO: refused at once, not waited on.
    let fifo = s.dir.0.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert!(write_answer_file(&raw(&fifo), b"1").is_err());
}

#[test]
fn state_survives_reopening_the_plugin() {
    let mut s = Setup::new("sighup");
    s.write(&format!("{}{ALICE}", s.state_table()));
    let plugin = s.open().unwrap();
    assert_eq!(alice(&plugin, 0), Answer::Accept);
    drop(plugin);
    let plugin = s.open().unwrap();
    assert_eq!(alice(&plugin, 0), Answer::Reject, "replay after SIGHUP");
    assert_eq!(alice(&plugin, 1), Answer::Accept);
}

#[test]
fn open_refuses_an_invalid_config_or_an_unusable_state_dir() {
    let mut s = Setup::new("refuse");
    s.write(&format!(
        "{}{}",
        s.state_table(),
        BOB.replace("pin = \"4321\"", "pin = \"\"")
    ));
    let e = s.open().err().unwrap();
    assert!(e.contains("users.bob.pin"), "{e}");

    let blocker = s.dir.0.join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let state_dir = blocker.join("state");
    s.write(&format!(
        "[state]\ndir = \"{}\"\n{ALICE}",
        state_dir.display()
    ));
    let e = s.open().err().unwrap();
    assert!(
        e.contains(&format!("state directory {}", state_dir.display())),
        "{e}"
    );
    assert!(e.contains("install -d"), "{e}");
    assert!(errors(&s.take_lines())
        .iter()
        .any(|m| m.contains("install -d")));
}

#[test]
fn memory_backend_still_works_and_warns() {
    let mut s = Setup::new("memory");
    s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}"));
    let plugin = s.open().unwrap();
    assert!(s
        .take_lines()
        .iter()
        .any(|(l, m)| *l == Level::WARN && m.contains("\"memory\"")));
    assert_eq!(alice(&plugin, 0), Answer::Accept);
    assert_eq!(alice(&plugin, 0), Answer::Reject);
}
#[test]
fn prompts_are_capped_per_address_and_user_and_expire_at_the_prompt_timeout() {
    let t0 = Instant::now();
    // As Plugin::prompt keys them: the network of the default prefixes (/32, /64).
    let ip = |s: &str| {
        Some(ip_limit::network(
            s.parse::<IpAddr>().unwrap(),
            ip_limit::DEFAULT_PREFIX_V4,
            ip_limit::DEFAULT_PREFIX_V6,
        ))
    };
    let acf = |n: usize| format!("/tmp/acf-{n}").into_bytes();
    let mut p = Prompts::default();
    // One address: eight prompts (any usernames), then refused; others still prompted.
    for n in 0..PROMPTS_PER_ADDRESS {
        let user = format!("u{n}");
        assert_eq!(
            p.admit(&acf(n), ip("198.51.100.7"), user.as_bytes(), b"x", t0),
            Ok(())
        );
    }
    assert_eq!(
        p.admit(&acf(100), ip("198.51.100.7"), b"other", b"x", t0),
        Err(PromptLimit::Address)
    );
    assert_eq!(
        p.admit(&acf(101), ip("203.0.113.9"), b"alice", b"alice", t0),
        Ok(())
    );
    // An answer frees its slot.
    assert!(p.take(&acf(0), t0));
    assert!(!p.take(&acf(0), t0), "answered once");
    assert_eq!(
        p.admit(&acf(102), ip("198.51.100.7"), b"u0", b"x", t0),
        Ok(())
    );
    // One IPv6 /64 is one address.
    for n in 0..PROMPTS_PER_ADDRESS {
        let addr = format!("2001:db8:1:2::{:x}", n + 1);
        let user = format!("v{n}");
        assert_eq!(
            p.admit(&acf(200 + n), ip(&addr), user.as_bytes(), b"x", t0),
            Ok(())
        );
    }
    assert_eq!(
        p.admit(&acf(300), ip("2001:db8:1:2:ffff::1"), b"w", b"x", t0),
        Err(PromptLimit::Address)
    );
    assert_eq!(
        p.admit(&acf(301), ip("2001:db8:1:3::1"), b"w", b"x", t0),
        Ok(())
    );
    // Not counted per address (the per-address limit is off): only the other limits.
    for n in 0..2 * PROMPTS_PER_ADDRESS {
        let user = format!("lb{n}");
        assert_eq!(
            p.admit(&acf(600 + n), None, user.as_bytes(), b"x", t0),
            Ok(())
        );
    }
    // One username with one certificate: four, from any addresses.
    for n in 0..PROMPTS_PER_USER {
        let addr = format!("192.0.2.{}", n + 1);
        assert_eq!(
            p.admit(&acf(400 + n), ip(&addr), b"bob", b"bob", t0),
            Ok(())
        );
    }
    assert_eq!(
        p.admit(&acf(410), ip("192.0.2.99"), b"bob", b"bob", t0),
        Err(PromptLimit::User)
    );
    // Another certificate naming bob fills its own slots, not bob's.
    assert_eq!(
        p.admit(&acf(411), ip("192.0.2.98"), b"bob", b"mallory", t0),
        Ok(())
    );

    // Expiry: still there just before the prompt's timeout, gone at it, slots released.
    let live = p.len();
    let before = t0 + PROMPT_EXPIRY - Duration::from_millis(1);
    assert_eq!(
        p.admit(&acf(500), ip("198.51.100.7"), b"z", b"z", before),
        Err(PromptLimit::Address)
    );
    assert_eq!(p.len(), live);
    let after = t0 + PROMPT_EXPIRY;
    assert!(
        !p.take(&acf(101), after),
        "an expired prompt is not answered"
    );
    assert_eq!(p.len(), 0);
    assert!(p.per_address.is_empty() && p.per_user.is_empty());
    assert_eq!(
        p.admit(&acf(501), ip("198.51.100.7"), b"bob", b"bob", after),
        Ok(())
    );
    assert!(PROMPT_EXPIRY >= Duration::from_secs(u64::from(CRTEXT_TIMEOUT_SECS)));
}

#[test]
fn the_prompt_table_stays_bounded_however_many_come_and_go() {
    let t0 = Instant::now();
    let mut p = Prompts::default();
    let ip: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
    for n in 0..20_000u32 {
        let acf = n.to_be_bytes();
        assert_eq!(p.admit(&acf, ip, b"alice", b"alice", t0), Ok(()));
        assert!(p.take(&acf, t0));
        assert!(p.order.len() < 2 * MAX_PENDING_PROMPTS);
    }
    // Many addresses: the table's own limit.
    for n in 0..MAX_PENDING_PROMPTS as u32 {
        let addr = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)));
        assert_eq!(
            p.admit(&n.to_be_bytes(), addr, &n.to_be_bytes(), b"", t0),
            Ok(())
        );
    }
    assert_eq!(
        p.admit(
            b"one more",
            Some("192.0.2.1".parse().unwrap()),
            b"u",
            b"u",
            t0
        ),
        Err(PromptLimit::Table)
    );
}
