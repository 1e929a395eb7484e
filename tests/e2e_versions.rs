//! The version matrix (issue 17): the end-to-end core against OpenVPN 2.5 (Debian bullseye),
//! 2.6 (the system's) and 2.7 (Debian sid) servers, each with a client of its own version, and
//! a 2.6 server with 2.5 and 2.7 clients. The core: a login accepted, its replay refused, a
//! wrong code refused, a static challenge (SCRV1 through the management interface), a session
//! renegotiating with `auth-gen-token` (the plugin called once), and a SIGHUP (the used code
//! still refused after it, the next one accepted). With a 2.7 client also its
//! `static-challenge "…" 1 concat`, for a plain mOTP user and for one with a static password.
//!
//! The other versions are unpacked by `scripts/fetch-openvpn.sh SUITE target/openvpn-versions/
//! SUITE` (test.sh and so CI run it before `cargo test`). A version whose tree is not there is
//! SKIPPED, never passed silently: the test prints `SKIPPED: OpenVPN 2.7 (sid) could not be
//! fetched: <reason>` on stderr (past the test harness's capture) and leaves the line in
//! `target/openvpn-versions/skipped/<test>`, which test.sh lists and counts as skipped.
//!
//! Needs root (tun devices), `openvpn` and `openssl`. One server per test, several logins on it.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login_with, require_tools, unix_now, write_motp_config, Client, Credentials, Outcome, Pki,
    Server, ServerSpec, TempDir, WAIT,
};

/// An OpenVPN the matrix runs: the system's, or one unpacked from a Debian suite.
#[derive(Clone, Copy)]
struct Version {
    /// What its `--version` line must start with after `OpenVPN `.
    series: &'static str,
    /// The Debian suite of scripts/fetch-openvpn.sh; `None`: the system's `openvpn`.
    suite: Option<&'static str>,
}

const V2_5: Version = Version {
    series: "2.5",
    suite: Some("bullseye"),
};
const V2_6: Version = Version {
    series: "2.6",
    suite: None,
};
const V2_7: Version = Version {
    series: "2.7",
    suite: Some("sid"),
};

impl Version {
    fn label(&self) -> String {
        match self.suite {
            Some(suite) => format!("OpenVPN {} ({suite})", self.series),
            None => format!("OpenVPN {} (system)", self.series),
        }
    }
}

/// Where scripts/fetch-openvpn.sh unpacks the suites: `$MOTP_TEST_OPENVPN_VERSIONS`, else
/// `target/openvpn-versions` (of `$CARGO_TARGET_DIR` if set).
fn versions_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MOTP_TEST_OPENVPN_VERSIONS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| motp_harness::workspace_root().join("target"))
        .join("openvpn-versions")
}

/// The binary of `version`, checked to run and to be of its series; `Err(reason)` when its
/// suite was not fetched (the reason test.sh saved from the fetch, if any).
fn binary(version: Version) -> Result<PathBuf, String> {
    let path = match version.suite {
        None => PathBuf::from("openvpn"),
        Some(suite) => {
            let dir = versions_dir().join(suite);
            if !dir.join(".complete").exists() {
                let saved = std::fs::read_to_string(versions_dir().join(format!("{suite}.failed")))
                    .ok()
                    .map(|text| text.trim().replace('\n', " "))
                    .filter(|text| !text.is_empty());
                return Err(saved.unwrap_or_else(|| {
                    format!(
                        "no tree in {} (run scripts/fetch-openvpn.sh {suite} {})",
                        dir.display(),
                        dir.display()
                    )
                }));
            }
            dir.join("openvpn")
        }
    };
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text.lines().next().unwrap_or_default();
    // A tree that is there but runs another version is a failure, not a skip.
    assert!(
        first.starts_with(&format!("OpenVPN {}.", version.series)),
        "{} is not {}: `{first}`",
        path.display(),
        version.label()
    );
    Ok(path)
}

/// Says loudly that `test` did not run, on stderr past libtest's capture, and leaves the line
/// for test.sh's summary.
fn report_skip(test: &str, version: Version, reason: &str) {
    let line = format!(
        "SKIPPED: {} could not be fetched: {reason}",
        version.label()
    );
    let _ = writeln!(std::io::stderr(), "\n{test}: {line}");
    let dir = versions_dir().join("skipped");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(test), format!("{test}: {line}\n"));
}

const ALICE: (&str, &str) = ("0123456789abcdef", "1234");
const BOB: (&str, &str) = ("fedcba9876543210fedcba9876543210", "987654");
const DAVE: (&str, &str) = ("1122334455667788", "4321");
const ERIN: (&str, &str) = ("8877665544332211", "2468");
const FRANK: (&str, &str) = ("a1b2c3d4e5f60718", "1357");
/// Erin's static password, typed in front of her code.
const ERIN_PASSWORD: &str = "correct horse";

fn secret_of(user: &str) -> (&'static str, &'static str) {
    match user {
        "alice" => ALICE,
        "bob" => BOB,
        "dave" => DAVE,
        "erin" => ERIN,
        "frank" => FRANK,
        _ => panic!("no user {user}"),
    }
}

/// Hands out each user's codes, each of a newer 10 s step than the last one handed out
/// (replay protection refuses any other), without waiting for the clock: a step ahead of the
/// clock is inside the ±180 s window; one more than 60 s ahead waits for the clock.
struct Codes {
    last: Mutex<HashMap<&'static str, i64>>,
}

impl Codes {
    fn new() -> Codes {
        Codes {
            last: Mutex::new(HashMap::new()),
        }
    }

    fn next(&self, user: &'static str) -> String {
        let mut last = self.last.lock().unwrap();
        let step = last
            .get(user)
            .map_or(unix_now() / 10, |l| (l + 1).max(unix_now() / 10));
        while step > unix_now() / 10 + 6 {
            std::thread::sleep(Duration::from_millis(500));
        }
        last.insert(user, step);
        let (secret, pin) = secret_of(user);
        code_at_time(secret, pin, step * 10).to_hex()
    }
}

/// A code valid at no step near now for `user`.
fn wrong_code(user: &str) -> String {
    let (secret, pin) = secret_of(user);
    let now = unix_now();
    let valid: Vec<String> = (-400..=400)
        .step_by(10)
        .map(|d| code_at_time(secret, pin, now + d).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{:06x}", (n * 7919) & 0xff_ffff))
        .find(|c| !valid.contains(c))
        .expect("some code is wrong")
}

/// One server of one version, its clients of another.
struct Matrix {
    _dir: TempDir,
    pki: Pki,
    server: Server,
    client: PathBuf,
    what: String,
    codes: Codes,
}

impl Matrix {
    /// A server with these users; erin, if among them, has [`ERIN_PASSWORD`]. (While any
    /// user has a static password, the plugin decides every login on its worker thread, and
    /// its decision lines reach OpenVPN's log at the plugin's next call.)
    fn start(
        server_bin: &Path,
        client_bin: PathBuf,
        what: String,
        token_option: &str,
        names: &[&'static str],
    ) -> Matrix {
        require_tools();
        let dir = TempDir::new("e2e-versions");
        let pki = Pki::create(dir.path(), names);
        let config = dir.path().join("motp.toml");
        let mut users = String::new();
        for name in names {
            let (secret, pin) = secret_of(name);
            users.push_str(&format!(
                "\n[users.{name}]\nsecret = \"{secret}\"\npin = \"{pin}\"\n"
            ));
            if *name == "erin" {
                let hash = motp::secret_hash::hash_password(ERIN_PASSWORD.as_bytes());
                users.push_str(&format!("password = \"{hash}\"\n"));
            }
        }
        write_motp_config(
            &config,
            &format!(
                "[state]\ndir = \"{}\"\n{users}",
                dir.path().join("state").display()
            ),
        );
        let mut spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config);
        spec.extra = vec![token_option.to_owned()];
        spec.openvpn = Some(server_bin.to_owned());
        let server = Server::start(dir.path(), &spec)
            .unwrap_or_else(|log| panic!("{what}: server did not start:\n{log}"));
        Matrix {
            _dir: dir,
            pki,
            server,
            client: client_bin,
            what,
            codes: Codes::new(),
        }
    }

    fn login(&self, user: &str, creds: &Credentials) -> Outcome {
        login_with(&self.client, &self.server, &self.pki, user, creds)
    }

    fn file(&self, user: &str, password: &str) -> Outcome {
        self.login(
            user,
            &Credentials::File {
                username: user,
                password,
            },
        )
    }

    fn accepted(&self, outcome: &Outcome, what: &str) {
        assert!(
            outcome.accepted,
            "{} {what}: expected the login to be accepted; client log:\n{}\nserver log:\n{}",
            self.what,
            outcome.log,
            self.server.log()
        );
    }

    fn rejected(&self, outcome: &Outcome, what: &str, user: &str, reason: &str) {
        assert!(
            outcome.rejected(),
            "{} {what}: expected AUTH_FAILED; client log:\n{}",
            self.what,
            outcome.log
        );
        let decision = self.last_decision(user);
        assert!(
            decision.contains(reason),
            "{} {what}: expected {reason} in the plugin's decision: {decision}",
            self.what
        );
    }

    /// The plugin's last decision line about `user` (the username is its last field).
    fn last_decision(&self, user: &str) -> String {
        self.decisions(user).pop().unwrap_or_default()
    }

    fn decisions(&self, user: &str) -> Vec<String> {
        let needle = format!(" user={user}");
        self.server
            .plugin_lines()
            .into_iter()
            .filter(|l| l.contains("login ") && l.ends_with(&needle))
            .collect()
    }
}

/// The matrix's core for one (server, client) pair; skipped, loudly, when either version was
/// not fetched.
fn core(test: &str, server_version: Version, client_version: Version) {
    let started = Instant::now();
    let server_bin = match binary(server_version) {
        Ok(path) => path,
        Err(reason) => return report_skip(test, server_version, &reason),
    };
    let client_bin = match binary(client_version) {
        Ok(path) => path,
        Err(reason) => return report_skip(test, client_version, &reason),
    };
    let what = format!(
        "{} server, {} client:",
        server_version.label(),
        client_version.label()
    );
    // 2.6 and 2.7 take a renewal time, which must be at least twice hand-window (90 s here);
    // 2.5's auth-gen-token has none (`auth-gen-token [lifetime] [external-auth]`).
    let token_option = if server_version.series == "2.5" {
        "auth-gen-token 0"
    } else {
        "auth-gen-token 0 180"
    };
    let m = Matrix::start(
        &server_bin,
        client_bin.clone(),
        what.clone(),
        token_option,
        &["alice", "bob", "dave", "frank"],
    );
    let server_first = m.server.log().lines().next().unwrap_or_default().to_owned();
    assert!(
        m.server
            .log()
            .contains(&format!("OpenVPN {}.", server_version.series)),
        "{what} the server log does not name its version:\n{server_first}"
    );

    // Renegotiation with auth-gen-token, in the background of the other logins: the client
    // renegotiates every 5 s and sends the token the server pushed, not its code again.
    let frank_code = m.codes.next("frank");
    let mut renegotiating = Client::start_with(
        &m.client,
        &m.server,
        &m.pki,
        "frank",
        &Credentials::File {
            username: "frank",
            password: &frank_code,
        },
        &["reneg-sec 5"],
    );
    let first = renegotiating.outcome();
    m.accepted(&first, "frank's initial login");
    assert!(
        first
            .log
            .contains(&format!("OpenVPN {}.", client_version.series)),
        "{what} the client log does not name its version:\n{}",
        first.log
    );

    // Accepted, then its replay refused, then a wrong code refused.
    let code = m.codes.next("alice");
    let outcome = m.file("alice", &code);
    m.accepted(&outcome, "current code");
    let decision = m.last_decision("alice");
    assert!(
        decision.contains("login accepted"),
        "{what} {decision}\n{:#?}",
        m.server.plugin_lines()
    );
    let replay = m.file("alice", &code);
    m.rejected(&replay, "replayed code", "alice", "reason=replay");
    m.rejected(
        &m.file("alice", &wrong_code("alice")),
        "wrong code",
        "alice",
        "reason=\"bad code\"",
    );

    // Static challenge: SCRV1 through the management interface, as GUIs answer it.
    let bob_code = m.codes.next("bob");
    let mut client = Client::start_with(
        &m.client,
        &m.server,
        &m.pki,
        "bob",
        &Credentials::StaticChallenge {
            username: "bob",
            password: "ignored-static-part",
            code: &bob_code,
        },
        &[],
    );
    let outcome = client.outcome();
    m.accepted(&outcome, "SCRV1 static challenge");
    let prompt = client.prompt.clone().unwrap_or_default();
    assert!(prompt.contains("SC:1,Enter code"), "{what} {prompt}");
    drop(client);

    // 2.7's `static-challenge "…" 1 concat`: the client announces SC:3 and sends what the GUI
    // concatenated, the static password (none for a plain mOTP user) followed by the code.
    if client_version.series == "2.7" {
        concat_without_password(&m);
    }

    // The renegotiations: at least two completed, the session kept, the plugin called once.
    let start = Instant::now();
    let renegotiated = |log: &str| log.matches("Control Channel:").count().saturating_sub(1);
    while renegotiated(&renegotiating.log()) < 2 && start.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = renegotiating.log();
    assert!(
        renegotiated(&log) >= 2 && log.matches("TLS: soft reset").count() >= 2,
        "{what} expected two renegotiations; client log:\n{log}"
    );
    assert!(renegotiating.is_running(), "{what} client dropped:\n{log}");
    assert!(!log.contains("AUTH_FAILED"), "{what} client log:\n{log}");
    let decisions = m.decisions("frank");
    assert_eq!(
        decisions.len(),
        1,
        "{what} the plugin decided more than once for one session: {decisions:#?}"
    );
    drop(renegotiating);

    // SIGHUP: the plugin is unloaded and opened again; the used code is still refused, the
    // next one accepted.
    let mut m = m;
    m.server.sighup();
    assert!(
        m.server.log().contains("PLUGIN_CLOSE"),
        "{what} SIGHUP must have unloaded the plugin:\n{}",
        m.server.log()
    );
    m.rejected(
        &m.file("alice", &code),
        "code used before SIGHUP",
        "alice",
        "reason=replay",
    );
    let next = m.codes.next("alice");
    m.accepted(&m.file("alice", &next), "next code after SIGHUP");
    drop(m);

    // A static password typed in front of the code, on a server of its own: with one such
    // user the plugin decides on its worker thread, which the checks above do not need.
    if client_version.series == "2.7" {
        let m = Matrix::start(
            &server_bin,
            client_bin,
            format!("{what} (static password)"),
            token_option,
            &["erin", "dave", "alice"],
        );
        concat_with_password(&m);
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {what} passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A 2.7 client's `concat` static challenge: `user` types `password` and the code into one
/// prompt (the GUI concatenates them), after the client announced SC:3 (echo + concat).
fn concat_login(m: &Matrix, user: &str, password: &str, code: &str) -> Outcome {
    let mut client = Client::start_with(
        &m.client,
        &m.server,
        &m.pki,
        user,
        &Credentials::StaticChallengeConcat {
            username: user,
            password,
            code,
        },
        &[],
    );
    let outcome = client.outcome();
    let prompt = client.prompt.clone().unwrap_or_default();
    assert!(
        prompt.contains("SC:3,Enter code"),
        "{} a concat client announces SC:3 (echo + concat): {prompt}",
        m.what
    );
    outcome
}

/// Dave, a plain mOTP user: his static password is empty, so just the code arrives.
fn concat_without_password(m: &Matrix) {
    let dave = m.codes.next("dave");
    m.accepted(
        &concat_login(m, "dave", "", &dave),
        "concat, no static password",
    );
    assert!(m.last_decision("dave").contains("login accepted"));
    m.rejected(
        &concat_login(m, "dave", "", &dave),
        "concat replay",
        "dave",
        "reason=replay",
    );
    // Something typed in front of the code is not a code, for a user without a password.
    m.rejected(
        &concat_login(m, "dave", "hunter2", &m.codes.next("dave")),
        "concat, a password in front for a user without one",
        "dave",
        "reason=\"malformed password\"",
    );
}

/// Erin's static password followed by her code. The decisions are read at the end: they reach
/// the log one plugin call late (see [`Matrix::start`]).
fn concat_with_password(m: &Matrix) {
    let what = &m.what;
    let erin = m.codes.next("erin");
    let rejected = |outcome: &Outcome, case: &str| {
        assert!(
            outcome.rejected(),
            "{what} {case}: expected AUTH_FAILED; client log:\n{}",
            outcome.log
        );
    };
    rejected(
        &concat_login(m, "erin", "wrong horse", &erin),
        "concat, wrong static password",
    );
    // The wrong password used no code: the same code with the right password is accepted.
    m.accepted(
        &concat_login(m, "erin", ERIN_PASSWORD, &erin),
        "concat, static password and code",
    );
    rejected(
        &concat_login(m, "erin", ERIN_PASSWORD, &erin),
        "concat replay with the static password",
    );
    rejected(
        &concat_login(m, "erin", "", &m.codes.next("erin")),
        "concat, static password left out",
    );
    // Dave, on the same server, still logs in with just his code, and not with a password
    // in front of it.
    m.accepted(
        &concat_login(m, "dave", "", &m.codes.next("dave")),
        "concat, no static password, beside a user with one",
    );
    rejected(
        &concat_login(m, "dave", "hunter2", &m.codes.next("dave")),
        "concat, a password in front for a user without one, beside a user with one",
    );

    let expected: [(&str, &[&str]); 2] = [
        (
            "erin",
            &[
                "reason=\"bad password\"",
                "login accepted",
                "reason=replay",
                "reason=\"bad password\"",
            ],
        ),
        ("dave", &["login accepted", "reason=\"bad code\""]),
    ];
    let complete = || {
        expected
            .iter()
            .all(|(u, e)| m.decisions(u).len() >= e.len())
    };
    let start = Instant::now();
    while !complete() && start.elapsed() < WAIT {
        // Another call into the plugin brings the deferred lines into the log.
        let _ = m.file("alice", &wrong_code("alice"));
    }
    for (user, reasons) in expected {
        let decisions = m.decisions(user);
        assert_eq!(decisions.len(), reasons.len(), "{what} {decisions:#?}");
        for (line, reason) in decisions.iter().zip(reasons) {
            assert!(line.contains(reason), "{what} expected {reason}: {line}");
        }
    }
}

#[test]
fn server_2_5_client_2_5() {
    core("server_2_5_client_2_5", V2_5, V2_5);
}

#[test]
fn server_2_6_client_2_6() {
    core("server_2_6_client_2_6", V2_6, V2_6);
}

#[test]
fn server_2_7_client_2_7() {
    core("server_2_7_client_2_7", V2_7, V2_7);
}

#[test]
fn server_2_6_client_2_5() {
    core("server_2_6_client_2_5", V2_6, V2_5);
}

#[test]
fn server_2_6_client_2_7() {
    core("server_2_6_client_2_7", V2_6, V2_7);
}
