//! No answer tells which usernames exist, with `require_common_name = false` (any certificate may
//! name any user), through the C ABI as OpenVPN calls the plugin, on the local store: a locked
//! user is answered `TEMP` only when the client holds that user's certificate, and like any
//! other failure otherwise; while the store is unavailable (another process holds the
//! database's lock) every login gets the same `TEMP`, names that do not exist included.

use std::ffi::c_int;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, Plugin};
use motp_harness::openvpn::TempDir;
use motp_harness::sqlite_lock::ForeignLock;
use openvpn_plugin_sys as sys;

const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
const ALICE: (&str, &str) = ("0123456789abcdef", "q7x2");
const BOB: (&str, &str) = ("fedcba9876543210", "k4w9z");
const DAVE: (&str, &str) = ("00112233445566778899aabbccddeeff", "d4v3");

fn code(user: (&str, &str), steps_ahead: i64) -> String {
    code_at_time(
        user.0,
        user.1,
        motp_harness::openvpn::unix_now() + 10 * steps_ahead,
    )
    .to_hex()
}

struct Setup {
    dir: TempDir,
    plugin: Plugin,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let dir = TempDir::new(label);
        let state = dir.path().join("state");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&state)
            .unwrap();
        let config = dir.path().join("motp.toml");
        std::fs::write(
            &config,
            format!(
                "require_common_name = false\nmax_failures = 3\nlockout_secs = 300\n\
                 max_failures_per_ip = 0\n\
                 [state]\ndir = \"{}\"\n\
                 [users.alice]\nsecret = \"{}\"\npin = \"{}\"\n\
                 [users.bob]\nsecret = \"{}\"\npin = \"{}\"\n\
                 [users.dave]\nsecret = \"{}\"\npin = \"{}\"\ndisabled = true\n",
                state.display(),
                ALICE.0,
                ALICE.1,
                BOB.0,
                BOB.1,
                DAVE.0,
                DAVE.1
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let plugin = Plugin::open(&config).unwrap_or_else(|e| panic!("{:?}", e.messages()));
        Setup { dir, plugin }
    }

    /// One login decided in the call, by a client whose certificate CN is `cn`: what the client
    /// sees (the verdict and the text OpenVPN sends after `AUTH_FAILED`).
    fn answer(&self, user: &str, password: &str, cn: &str) -> (c_int, String) {
        let mut env =
            Env::openvpn_auth(self.dir.path(), user, password).without("auth_control_file");
        env.set("common_name", cn).set("X509_0_CN", cn);
        let verdict = self.plugin.auth(&env);
        (verdict, env.client_reason())
    }

    fn lock_alice(&self) {
        for _ in 0..3 {
            assert_eq!(self.answer("alice", "000000", "mallory").0, ERROR);
        }
        // Her own certificate is told to wait: the lock is there.
        let (verdict, reason) = self.answer("alice", "000000", "alice");
        assert_eq!(verdict, ERROR);
        assert!(reason.starts_with("TEMP[backoff "), "{reason:?}");
    }
}

#[test]
fn a_locked_user_is_answered_like_an_unknown_name_unless_the_certificate_is_its_own() {
    let s = Setup::new("usernames-locked");
    s.lock_alice();
    let bare = (ERROR, String::new());
    // Mallory's certificate, naming: alice (locked, with her right code), a name nobody has,
    // a disabled user, and bob with a wrong code.
    assert_eq!(
        s.answer("alice", &code(ALICE, 1), "mallory"),
        bare,
        "locked alice"
    );
    assert_eq!(
        s.answer("no-such-user", &code(ALICE, 1), "mallory"),
        bare,
        "unknown"
    );
    assert_eq!(
        s.answer("dave", &code(DAVE, 0), "mallory"),
        bare,
        "disabled"
    );
    assert_eq!(s.answer("bob", "000000", "mallory"), bare, "wrong code");
    // The log still says why.
    let log = s.plugin.messages().join("\n");
    assert!(
        log.contains("reason=locked") && log.contains("user=alice"),
        "{log}"
    );
    assert!(log.contains("reason=\"unknown user\""), "{log}");
    // Alice's own certificate is told to wait.
    let (verdict, reason) = s.answer("alice", &code(ALICE, 2), "alice");
    assert_eq!(verdict, ERROR);
    assert!(reason.starts_with("TEMP[backoff "), "{reason:?}");
    // Bob, not locked, logs in with mallory's certificate (CN binding is off).
    assert_eq!(s.answer("bob", &code(BOB, 0), "mallory").0, SUCCESS);
}

#[test]
fn while_the_store_is_unavailable_every_login_gets_the_same_temp_answer() {
    let s = Setup::new("usernames-outage");
    s.lock_alice();
    let db = s.dir.path().join("state").join(motp::state::DB_FILE_NAME);
    let lock = ForeignLock::hold(&db);
    let answers = [
        (
            "locked alice",
            s.answer("alice", &code(ALICE, 1), "mallory"),
        ),
        (
            "locked alice, own certificate",
            s.answer("alice", &code(ALICE, 1), "alice"),
        ),
        (
            "unknown",
            s.answer("no-such-user", &code(ALICE, 1), "mallory"),
        ),
        ("disabled", s.answer("dave", &code(DAVE, 0), "mallory")),
        ("bad username", s.answer("", &code(BOB, 0), "mallory")),
        ("bob, right code", s.answer("bob", &code(BOB, 0), "mallory")),
        ("bob, wrong code", s.answer("bob", "000000", "mallory")),
    ];
    let expected = (
        ERROR,
        "TEMP[backoff 30]: authentication temporarily unavailable".to_owned(),
    );
    for (what, answer) in &answers {
        assert_eq!(answer, &expected, "{what}");
    }
    drop(lock);
    // Back: bob's code was not used up by the refused login.
    assert_eq!(s.answer("bob", &code(BOB, 0), "mallory").0, SUCCESS);
    assert_eq!(
        s.answer("no-such-user", "000000", "mallory"),
        (ERROR, String::new())
    );
}
