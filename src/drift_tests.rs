//! Drift tracking through the decision: the window follows the phone, within the bound.

use std::path::Path;

use super::LearnedOffsets;
use crate::auth::Decision;
use crate::config::Config;
use crate::engine::{base32, code_at_time, Totp};
use crate::login_fixture::decide_login;
use crate::state::MemoryStore;

const NOW: i64 = 1_700_000_000;

fn config_with(extra: &str) -> Config {
    let text = format!(
        "max_failures = 100\n{extra}\n[users.alice]\nsecret = \"0123456789abcdef\"\npin = \
         \"1234\"\n[users.tina]\nkind = \"totp\"\nsecret = \"{}\"\n",
        base32::encode(b"12345678901234567890")
    );
    Config::parse(Path::new("t.toml"), &text).unwrap()
}

fn login(
    config: &Config,
    store: &MemoryStore,
    learned: Option<&LearnedOffsets>,
    user: &str,
    code: &str,
    now: i64,
) -> Decision {
    decide_login(config, store, learned, user, code, user, now)
}

fn alice(at: i64) -> String {
    code_at_time("0123456789abcdef", "1234", at).to_hex()
}

fn tina(at: i64) -> String {
    let totp = Totp::default();
    format!(
        "{:06}",
        totp.value_at_step(b"12345678901234567890", totp.step_of(at) as u64)
    )
}

/// A phone 150 s, then 300 s, then 450 s ahead (each step within the window of the last):
/// all accepted; a code 300 s ahead of the learned offset refused; a code accepted before
/// refused once the window has moved over it again.
fn follows_the_phone(user: &str, code: fn(i64) -> String, step: i64) {
    let config = config_with("");
    for learned in [None, Some(LearnedOffsets::new(true))] {
        let store = MemoryStore::new();
        let learned = learned.as_ref();
        let mut now = NOW;
        for ahead in [150, 300, 450] {
            now += 1000;
            let decision = login(&config, &store, learned, user, &code(now + ahead), now);
            assert!(
                decision.is_accepted(),
                "{user} {ahead} s ahead: {decision:?}"
            );
        }
        // The window is now centred 450 s ahead: 300 s beyond that is outside it.
        now += 1000;
        assert_eq!(
            login(&config, &store, learned, user, &code(now + 750), now),
            Decision::BadCode
        );
        // Still at 450: accepted; and that code once more, a replay.
        let used = now + 450;
        assert!(login(&config, &store, learned, user, &code(used), now).is_accepted());
        // The phone is set right again (0): its code is 450 s behind the learned centre, outside
        // the window, which stays where the phone was last seen (`motpctl resync` moves it).
        assert_eq!(
            login(
                &config,
                &store,
                learned,
                user,
                &code(now + step),
                now + step
            ),
            Decision::BadCode
        );
        assert_eq!(
            login(&config, &store, learned, user, &code(used), now + step),
            Decision::Replay
        );
    }
}

#[test]
fn the_motp_window_follows_a_drifting_phone() {
    follows_the_phone("alice", alice, 10);
}

#[test]
fn the_totp_window_follows_a_drifting_phone() {
    follows_the_phone("tina", tina, 30);
}

#[test]
fn the_window_never_moves_further_than_max_drift_secs() {
    let config = config_with("max_drift_secs = 300");
    let store = MemoryStore::new();
    let learned = LearnedOffsets::new(true);
    let mut now = NOW;
    // 150, 300 ahead: accepted, and learned. 450: the centre stops at 300, and 450 is within
    // its window (±180 s), so still accepted; 600 would need a centre at 420 or more.
    for (ahead, accepted) in [(150, true), (300, true), (450, true), (600, false)] {
        now += 1000;
        let decision = login(
            &config,
            &store,
            Some(&learned),
            "alice",
            &alice(now + ahead),
            now,
        );
        assert_eq!(
            decision.is_accepted(),
            accepted,
            "{ahead} s ahead: {decision:?}"
        );
    }
    // Off: the window stays where offset_secs puts it.
    let config = config_with("max_drift_secs = 0");
    let store = MemoryStore::new();
    now += 1000;
    assert!(login(&config, &store, None, "alice", &alice(now + 150), now).is_accepted());
    now += 1000;
    assert_eq!(
        login(&config, &store, None, "alice", &alice(now + 300), now),
        Decision::BadCode
    );
}
