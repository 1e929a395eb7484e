//! Unit tests of [`super`] (`src/auth.rs`).

use super::*;
use crate::config::Config;
use crate::engine::code_at_time;
use crate::login_fixture::Fixture;
use crate::state::MemoryStore;
use std::path::Path;

const NOW: i64 = 1_700_000_000;
const CONFIG: &str = r#"
max_failures = 3
lockout_secs = 300
[users.alice]
secret = "0123456789abcdef"
pin = "1234"
[users.carol]
secret = "fedcba9876543210"
pin = "4321"
offset_secs = 3600
common_name = "carol-laptop"
[users.dave]
secret = "00112233445566778899aabbccddeeff"
pin = "1"
disabled = true
"#;

fn alice_code(at: i64) -> String {
    code_at_time("0123456789abcdef", "1234", at).to_hex()
}

#[test]
fn accepts_current_code_then_rejects_replay() {
    let f = Fixture::new(CONFIG);
    assert_eq!(
        f.login("alice", &alice_code(NOW), "alice", NOW),
        Decision::Accepted { step_offset: 0 }
    );
    assert_eq!(
        f.login("alice", &alice_code(NOW), "alice", NOW + 1),
        Decision::Replay
    );
    // An older code inside the window is a replay too; a later one is fine.
    assert_eq!(
        f.login("alice", &alice_code(NOW - 30), "alice", NOW + 2),
        Decision::Replay
    );
    assert_eq!(
        f.login("alice", &alice_code(NOW + 10), "alice", NOW + 3),
        Decision::Accepted { step_offset: 1 }
    );
}

#[test]
fn window_edges_and_offsets() {
    // The window where the config puts it: drift tracking (tested below) moves it.
    let no_drift = format!("max_drift_secs = 0\n{CONFIG}");
    let f = Fixture::new(&no_drift);
    assert!(f
        .login("alice", &alice_code(NOW - 180), "alice", NOW)
        .is_accepted());
    assert_eq!(
        f.login("alice", &alice_code(NOW + 180), "alice", NOW),
        Decision::Accepted { step_offset: 18 }
    );
    let f = Fixture::new(&no_drift);
    assert_eq!(
        f.login("alice", &alice_code(NOW + 190), "alice", NOW),
        Decision::BadCode
    );
    assert_eq!(
        f.login("alice", &alice_code(NOW - 190), "alice", NOW),
        Decision::BadCode
    );
    // carol's phone runs an hour ahead: her code is for NOW + 3600.
    let carol = code_at_time("fedcba9876543210", "4321", NOW + 3600).to_hex();
    assert_eq!(
        f.login("carol", &carol, "carol-laptop", NOW),
        Decision::Accepted { step_offset: 0 }
    );
    let carol_unshifted = code_at_time("fedcba9876543210", "4321", NOW + 10).to_hex();
    assert_eq!(
        f.login("carol", &carol_unshifted, "carol-laptop", NOW),
        Decision::BadCode
    );
}

#[test]
fn lockout_and_unlock_after_the_period() {
    let f = Fixture::new(CONFIG);
    for _ in 0..3 {
        assert_eq!(f.login("alice", "000000", "alice", NOW), Decision::BadCode);
    }
    assert_eq!(
        f.login("alice", &alice_code(NOW), "alice", NOW + 1),
        Decision::Locked { until: NOW + 300 }
    );
    assert_eq!(
        f.login("alice", &alice_code(NOW + 299), "alice", NOW + 299),
        Decision::Locked { until: NOW + 300 }
    );
    assert!(f
        .login("alice", &alice_code(NOW + 300), "alice", NOW + 300)
        .is_accepted());
}

#[test]
fn success_resets_the_failure_count() {
    let f = Fixture::new(CONFIG);
    f.login("alice", "000000", "alice", NOW);
    f.login("alice", "000000", "alice", NOW);
    assert!(f
        .login("alice", &alice_code(NOW), "alice", NOW)
        .is_accepted());
    f.login("alice", "000000", "alice", NOW);
    f.login("alice", "000000", "alice", NOW);
    assert!(f
        .login("alice", &alice_code(NOW + 10), "alice", NOW + 10)
        .is_accepted());
}

#[test]
fn common_name_binding() {
    let f = Fixture::new(CONFIG);
    assert_eq!(
        f.login("alice", &alice_code(NOW), "bob", NOW),
        Decision::CnMismatch
    );
    let carol = code_at_time("fedcba9876543210", "4321", NOW + 3600).to_hex();
    assert_eq!(f.login("carol", &carol, "carol", NOW), Decision::CnMismatch);
    // The code was not consumed by the mismatching attempt.
    assert!(f
        .login("alice", &alice_code(NOW), "alice", NOW)
        .is_accepted());
    let lax = Fixture::new(&format!("require_common_name = false\n{CONFIG}"));
    assert!(lax
        .login("alice", &alice_code(NOW), "bob", NOW)
        .is_accepted());
}

/// An admin corrects alice's offset while her codes keep coming: under each config the
/// phone's current codes are accepted (no replay run, no lock), and every code accepted
/// under the other offset stays refused.
#[test]
fn an_offset_change_never_locks_the_user_out_and_used_codes_stay_used() {
    let store = MemoryStore::new();
    let with_offset = |offset: i64| {
        Config::parse(
                Path::new("t.toml"),
                &format!(
                    "max_failures = 10\nmax_drift_secs = 0\n[users.alice]\nsecret = \"0123456789abcdef\"\n\
                     pin = \"1234\"\noffset_secs = {offset}\n"
                ),
            )
            .unwrap()
    };
    let login = |config: &Config, code_time: i64, now: i64| {
        let auth = Authenticator {
            policy: &config.policy,
            users: &config.users,
            store: &store,
            learned: None,
        };
        let password = alice_code(code_time);
        auth.decide(
            &LoginRequest {
                username: Some(b"alice"),
                password: Some(password.as_bytes()),
                common_name: Some(b"alice"),
            },
            now,
        )
    };
    // The phone was thought to run 2 min ahead: its codes for NOW + 120 and + 130.
    let ahead = with_offset(120);
    assert!(login(&ahead, NOW + 120, NOW).is_accepted());
    assert!(login(&ahead, NOW + 130, NOW + 10).is_accepted());
    // It was right after all: the offset goes back to 0. Its codes are accepted at once,
    // one after another (in the phone's own order they all come before the last used step:
    // replays, and a lock after a few).
    let exact = with_offset(0);
    for i in 2..8 {
        let at = NOW + 10 * i;
        assert_eq!(
            login(&exact, at, at),
            Decision::Accepted { step_offset: 0 },
            "code {i}"
        );
    }
    // The codes used under the old offset are still inside the window, and still used.
    assert_eq!(login(&exact, NOW + 120, NOW + 80), Decision::Replay);
    assert_eq!(login(&exact, NOW + 130, NOW + 81), Decision::Replay);
    // An older unused code stays refused, as under an unchanged offset.
    assert_eq!(login(&exact, NOW + 40, NOW + 82), Decision::Replay);
    assert!(login(&exact, NOW + 90, NOW + 90).is_accepted());
    // Raised again: the new codes are accepted, none of the old ones.
    let later = with_offset(600);
    assert!(login(&later, NOW + 700, NOW + 100).is_accepted());
    for used in [NOW + 90, NOW + 130] {
        assert_eq!(
            login(&later, used, NOW + 101),
            Decision::BadCode,
            "outside the window"
        );
    }
    assert_eq!(login(&later, NOW + 690, NOW + 102), Decision::Replay);
}

#[test]
fn another_users_certificate_cannot_lock_the_user_out() {
    let f = Fixture::new(CONFIG);
    for _ in 0..10 {
        assert_eq!(f.login("alice", "000000", "bob", NOW), Decision::CnMismatch);
    }
    assert!(f
        .login("alice", &alice_code(NOW), "alice", NOW)
        .is_accepted());
}

#[test]
fn an_address_with_too_many_failures_is_refused_for_every_username() {
    let f = Fixture::new(&format!(
        "max_failures_per_ip = 4\nip_lockout_secs = 600\n{CONFIG}"
    ));
    let auth = Authenticator {
        policy: &f.config.policy,
        users: &f.config.users,
        store: &f.store,
        learned: None,
    };
    let limiter = IpLimiter::new(100);
    let attacker: Option<std::net::IpAddr> = Some("192.0.2.66".parse().unwrap());
    let neighbour: Option<std::net::IpAddr> = Some("192.0.2.67".parse().unwrap());
    let req = |user: &'static str, pw: &'static str| LoginRequest {
        username: Some(user.as_bytes()),
        password: Some(pw.as_bytes()),
        common_name: Some(user.as_bytes()),
    };
    // Spraying: unknown users and wrong codes for several users all count.
    for user in ["nobody1", "nobody2", "alice", "carol"] {
        assert!(!auth
            .decide_from(&req(user, "000000"), attacker, &limiter, NOW)
            .is_accepted());
    }
    let code = alice_code(NOW);
    let good = LoginRequest {
        username: Some(b"alice"),
        password: Some(code.as_bytes()),
        common_name: Some(b"alice"),
    };
    assert_eq!(
        auth.decide_from(&good, attacker, &limiter, NOW + 1),
        Decision::AddressLocked { until: NOW + 600 }
    );
    // Another address is unaffected, and its success does not unlock the attacker.
    assert!(auth
        .decide_from(&good, neighbour, &limiter, NOW + 2)
        .is_accepted());
    assert!(matches!(
        auth.decide_from(&req("alice", "000000"), attacker, &limiter, NOW + 3),
        Decision::AddressLocked { .. }
    ));
}

#[test]
fn missing_common_name_is_a_mismatch() {
    let f = Fixture::new(CONFIG);
    let auth = Authenticator {
        policy: &f.config.policy,
        users: &f.config.users,
        store: &f.store,
        learned: None,
    };
    let code = alice_code(NOW);
    let request = LoginRequest {
        username: Some(b"alice"),
        password: Some(code.as_bytes()),
        common_name: None,
    };
    assert_eq!(auth.decide(&request, NOW), Decision::CnMismatch);
}

#[test]
fn unknown_disabled_and_bad_usernames() {
    let f = Fixture::new(CONFIG);
    assert_eq!(
        f.login("mallory", "123456", "mallory", NOW),
        Decision::UnknownUser
    );
    let dave = code_at_time("00112233445566778899aabbccddeeff", "1", NOW).to_hex();
    assert_eq!(f.login("dave", &dave, "dave", NOW), Decision::Disabled);
    assert_eq!(f.login("", "123456", "", NOW), Decision::BadUsername);
    assert_eq!(
        f.login(&"a".repeat(129), "123456", "a", NOW),
        Decision::BadUsername
    );
}

#[test]
fn static_challenge_and_malformed_passwords() {
    use base64::Engine;
    let f = Fixture::new(CONFIG);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let scrv1 = format!("SCRV1:{}:{}", b64("ignored"), b64(&alice_code(NOW)));
    assert!(f.login("alice", &scrv1, "alice", NOW).is_accepted());
    assert_eq!(
        f.login("alice", "SCRV1:abc", "alice", NOW),
        Decision::MalformedPassword(Malformed::BadChallengeFormat)
    );
    assert_eq!(
        f.login("alice", "hunter2", "alice", NOW),
        Decision::MalformedPassword(Malformed::NotACode)
    );
}

#[test]
fn locked_user_cannot_log_in_with_a_correct_code_and_lock_does_not_extend() {
    let f = Fixture::new(CONFIG);
    for _ in 0..3 {
        f.login("alice", "000000", "alice", NOW);
    }
    for t in [NOW + 10, NOW + 100, NOW + 200] {
        assert_eq!(
            f.login("alice", "000000", "alice", t),
            Decision::Locked { until: NOW + 300 }
        );
    }
    assert!(f
        .login("alice", &alice_code(NOW + 301), "alice", NOW + 301)
        .is_accepted());
}
