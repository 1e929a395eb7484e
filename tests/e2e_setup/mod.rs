//! The shared setup of tests/e2e.rs and tests/e2e_state.rs (moved from tests/e2e.rs): the
//! users, a [`Setup`] with its PKI, motp.toml and running server, the codes, and the login
//! assertions.

#![allow(dead_code)]

use std::path::PathBuf;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, write_motp_config, Credentials, Outcome, Pki, Server, ServerSpec, TempDir,
};

pub const ALICE_SECRET: &str = "0123456789abcdef";
pub const ALICE_PIN: &str = "1234";
pub const BOB_SECRET: &str = "fedcba9876543210fedcba9876543210";
pub const BOB_PIN: &str = "987654";
pub const CAROL_SECRET: &str = "a1b2c3d4e5f60718";
pub const CAROL_PIN: &str = "5555";

pub const USERS: &str = r#"
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
pub struct Setup {
    pub _dir: TempDir,
    pub pki: Pki,
    pub server: Server,
    pub skew_file: PathBuf,
}

impl Setup {
    pub fn start(global: &str, extra: &[&str]) -> Setup {
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

    pub fn login(&self, cert: &str, username: &str, password: &str) -> Outcome {
        login(
            &self.server,
            &self.pki,
            cert,
            &Credentials::File { username, password },
        )
    }

    /// Moves the plugin's clock (debug-build hook) by `secs` relative to the system clock.
    pub fn set_server_skew(&self, secs: i64) {
        std::fs::write(&self.skew_file, secs.to_string()).unwrap();
    }

    /// The whole server log must be free of secrets, PINs and the given codes. Each is looked
    /// for as a whole word after the timestamp, so a PIN like 1234 is not "found" in
    /// `us=412345` or a port number.
    pub fn assert_log_clean(&self, codes: &[&str]) {
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

pub fn alice_code(at: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, at).to_hex()
}

pub fn bob_code(at: i64) -> String {
    code_at_time(BOB_SECRET, BOB_PIN, at).to_hex()
}

/// A code that is valid at no step of a ±`window` window around `now` for this secret.
pub fn wrong_code(secret: &str, pin: &str, now: i64, window: i64) -> String {
    let valid: Vec<String> = (-window - 20..=window + 20)
        .step_by(10)
        .map(|d| code_at_time(secret, pin, now + d).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{:06x}", (n * 7919) & 0xff_ffff))
        .find(|c| !valid.contains(c))
        .expect("some code is wrong")
}

pub fn assert_accepted(outcome: &Outcome, what: &str) {
    assert!(
        outcome.accepted,
        "{what}: expected the login to be accepted; client log:\n{}",
        outcome.log
    );
}

pub fn assert_rejected(outcome: &Outcome, what: &str) {
    assert!(
        outcome.rejected(),
        "{what}: expected AUTH_FAILED; client log:\n{}",
        outcome.log
    );
}

/// The last plugin line that ends with `user=<name>` (the username is the last field).
pub fn last_decision(server: &Server, user: &str) -> String {
    let needle = format!(" user={user}");
    server
        .plugin_lines()
        .into_iter()
        .rev()
        .find(|l| l.ends_with(&needle))
        .unwrap_or_default()
}

/// `[state]` with a state dir of this test's own (never the system's /var/lib/openvpn-motp).
pub fn state_section(dir: &std::path::Path) -> String {
    format!("[state]\ndir = \"{}\"\n", dir.join("state").display())
}

pub fn file_login<'a>(username: &'a str, password: &'a str) -> Credentials<'a> {
    Credentials::File { username, password }
}
// --- Token kinds (issue 16): TOTP/HOTP codes, static passwords, recovery codes ---------------

/// RFC 4226's and RFC 6238's SHA-1 key, `12345678901234567890` (base32
/// `GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ`): its HOTP codes are the RFC's (counter 0: 755224).
pub const RFC_KEY: &[u8] = b"12345678901234567890";

/// [`RFC_KEY`] in base32, as motp.toml holds a TOTP/HOTP secret.
pub fn rfc_key_b32() -> String {
    motp::engine::base32::encode(RFC_KEY)
}

/// The 6-digit SHA-1 TOTP code (30 s period) of `key` at unix time `at`.
pub fn totp_code(key: &[u8], at: i64) -> String {
    let totp = motp::engine::Totp::default();
    format!("{:06}", totp.value_at_step(key, totp.step_of(at) as u64))
}

/// The 6-digit SHA-1 HOTP code of `key` at `counter`.
pub fn hotp_code(key: &[u8], counter: u64) -> String {
    motp::engine::hotp_text(key, counter, motp::engine::Algorithm::Sha1, 6)
}

/// `count` fresh recovery codes and their stored hashes as a TOML array.
pub fn recovery_codes(count: usize) -> (Vec<String>, String) {
    use motp::secret_hash;
    let codes: Vec<String> = secret_hash::generate_recovery_codes(count)
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| {
            let normalized = secret_hash::normalize_recovery_code(c.as_bytes()).expect("own code");
            format!("\"{}\"", secret_hash::hash_recovery_code(&normalized))
        })
        .collect();
    (codes, format!("[{}]", hashes.join(", ")))
}
