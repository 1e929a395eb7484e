//! Issue 16's state through the local (SQLite) store, as the plugin opens it, with a fake
//! clock and uptime (`motp::state::Host`): a counter token's counter and a recovery code's use
//! must survive, also the store's pruning of idle rows (a row of an HOTP user has no failures
//! and no lock, so it is idle once accepted), because losing the counter makes every used code
//! of the look-ahead acceptable again.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::state::{Host, SqliteStore, PRUNE_AFTER_SECS};
use motp_harness::temp::TempDir;

mod e2e_setup;

use e2e_setup::{hotp_code, recovery_codes, rfc_key_b32, RFC_KEY};

const T0: i64 = 1_800_000_000;

struct World {
    _dir: TempDir,
    config: Config,
    store: SqliteStore,
    clock: Arc<AtomicI64>,
}

impl World {
    fn new(users: &str) -> World {
        let dir = TempDir::without_digits("store-tokens");
        let clock = Arc::new(AtomicI64::new(T0));
        let (now, up) = (clock.clone(), clock.clone());
        let host = Host {
            now: Arc::new(move || now.load(Ordering::SeqCst)),
            boot: None,
            // Up since T0 - 1000, through every move of the fake clock (time really passes).
            uptime: Arc::new(move || Some(up.load(Ordering::SeqCst) - T0 + 1000)),
        };
        let store = SqliteStore::open_with(&dir.path().join("state"), host).expect("open");
        World {
            config: Config::parse(Path::new("t.toml"), users).expect("config"),
            store,
            clock,
            _dir: dir,
        }
    }

    fn login(&self, user: &str, password: &str) -> Decision {
        let auth = Authenticator {
            policy: &self.config.policy,
            users: &self.config.users,
            store: &self.store,
            learned: None,
        };
        auth.decide(
            &LoginRequest {
                username: Some(user.as_bytes()),
                password: Some(password.as_bytes()),
                common_name: Some(user.as_bytes()),
            },
            self.clock.load(Ordering::SeqCst),
        )
    }

    /// Moves the clock (and the uptime) on by `secs` and prunes, as the plugin does.
    fn later(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
        self.store.prune();
    }
}

#[test]
fn an_hotp_counter_survives_the_pruning_of_idle_rows() {
    let w = World::new(&format!(
        "[users.hank]\nkind = \"hotp\"\nsecret = \"{}\"\n",
        rfc_key_b32()
    ));
    assert!(w.login("hank", &hotp_code(RFC_KEY, 0)).is_accepted());
    assert!(w.login("hank", &hotp_code(RFC_KEY, 1)).is_accepted());
    // (No refused login here: a failure keeps the row from being pruned.) Three days without
    // a login: the user's row is older than PRUNE_AFTER_SECS.
    w.later(PRUNE_AFTER_SECS + 3600);
    assert_eq!(
        w.login("hank", &hotp_code(RFC_KEY, 0)),
        Decision::BadCode,
        "HOTP counter 0, used before the prune, must stay used"
    );
    assert!(w.login("hank", &hotp_code(RFC_KEY, 2)).is_accepted());
}

#[test]
fn a_recovery_codes_use_is_stored() {
    let (codes, hashes) = recovery_codes(2);
    let w = World::new(&format!(
        "[users.rita]\nkind = \"totp\"\nsecret = \"{}\"\nrecovery_codes = {hashes}\n",
        rfc_key_b32()
    ));
    assert_eq!(
        w.login("rita", &codes[0]),
        Decision::RecoveryAccepted { index: 0 }
    );
    assert_eq!(w.login("rita", &codes[0]), Decision::Replay);
    w.later(PRUNE_AFTER_SECS + 3600);
    assert_eq!(
        w.login("rita", &codes[0]),
        Decision::Replay,
        "after a prune"
    );
}
