//! `motp.so` through its C ABI, loaded and called the way OpenVPN 2.6 does
//! (`motp_harness::abi`): dlopen with RTLD_NOW|RTLD_LOCAL, `open_v3` with
//! `OPENVPN_PLUGINv3_STRUCTVER`, `func_v3` with a realistic `AUTH_USER_PASS_VERIFY` env,
//! `close_v1` and dlclose.
//!
//! Every test works in its own temp dir with its own plugin instance, so they run in parallel.
//! Every test also checks, when its [`Fixture`] is dropped, that no secret, PIN, code or
//! password it used appears in anything the plugin logged (open, calls and close).
//!
//! The PINs are not all-digit on purpose: log lines carry timestamps, ports and pids, and a
//! 4-digit PIN would show up in those by chance and make the leak check flaky.

use openvpn_plugin_sys as sys;

mod abi_fixture;

use abi_fixture::*;

// ---------------------------------------------------------------------------------------------

#[test]
fn accepts_a_valid_code() {
    let f = Fixture::new();
    let open_log = f.messages();
    assert!(
        open_log
            .iter()
            .any(|m| m.starts_with("ready: 2 users from ")
                && m.contains("window ±180 s, lock after 1000 failures for 300 s, CN binding on")),
        "{open_log:#?}"
    );

    let env = f.env("alice", f.alice_code());
    assert_eq!(f.auth(&env), SUCCESS);
    let line = f.last_line();
    // The step can tick between computing the code and the call: +0, or -1 right at a boundary.
    assert!(
        line.message == "login accepted ip=192.0.2.10 step_offset=+0 user=alice"
            || line.message == "login accepted ip=192.0.2.10 step_offset=-1 user=alice",
        "{line}"
    );
    assert_eq!((line.name.as_str(), line.flags), ("motp", sys::PLOG_NOTE));
    assert_eq!(
        env.client_reason(),
        "",
        "nothing is written for an accepted login"
    );

    // A phone 60 s behind is inside the ±180 s window and logged with its offset.
    let env = f
        .env("bob", f.code(BOB_SECRET, BOB_PIN, 60))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);
    let message = f.last_line().message;
    assert!(
        message.starts_with("login accepted ip=192.0.2.10 step_offset=-")
            && ["-6", "-7"]
                .iter()
                .any(|o| message.ends_with(&format!("step_offset={o} user=bob"))),
        "{message}"
    );
    // IPv6 clients are logged by their IPv6 address.
    let env = f
        .env("alice", f.code(ALICE_SECRET, ALICE_PIN, -20))
        .without("untrusted_ip")
        .with("untrusted_ip6", "2001:db8::7");
    assert_eq!(f.auth(&env), SUCCESS);
    assert!(f.last_line().message.contains(" ip=2001:db8::7 "));
}

#[test]
fn wrong_code_is_rejected_with_a_generic_reason() {
    let f = Fixture::new();
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    let env = f.env("alice", &wrong);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Bob's valid code is wrong for alice.
    let env = f.env("alice", f.code(BOB_SECRET, BOB_PIN, 0));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
    // A code from 10 minutes ago is outside the window.
    let env = f.env("alice", f.code(ALICE_SECRET, ALICE_PIN, 600));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
}

#[test]
fn replayed_code_is_rejected() {
    let f = Fixture::new();
    let code = f.alice_code();
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
    let env = f.env("alice", &code);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // An older code, still inside the window, is a replay too once a newer one was used.
    let older = f.code(ALICE_SECRET, ALICE_PIN, 60);
    assert_eq!(f.auth(&f.env("alice", older)), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
    // The same code in static-challenge form is the same code.
    let env = f.env("alice", format!("SCRV1:{}:{}", b64("pw"), b64(&code)));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
}

#[test]
fn unknown_user_is_rejected() {
    let f = Fixture::new();
    let env = f.env("mallory", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "mallory", "unknown user");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Usernames are case-sensitive, as OpenVPN passes them.
    let env = f.env("Alice", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "Alice", "unknown user");
}

#[test]
fn certificate_common_name_must_match() {
    let f = Fixture::new();
    let code = f.alice_code();
    // Alice's credentials over Bob's certificate.
    let env = f.env("alice", &code).with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // No common_name at all.
    let env = f.env("alice", &code).without("common_name");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");
    // The mismatching attempts did not use up the code.
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
    // Bob is bound to an explicit CN, not to his username.
    let bob = f.code(BOB_SECRET, BOB_PIN, 0);
    assert_eq!(f.auth(&f.env("bob", &bob)), ERROR);
    assert_rejected(&f.last_line(), "bob", "CN mismatch");
    assert_eq!(
        f.auth(&f.env("bob", &bob).with("common_name", BOB_CN)),
        SUCCESS
    );
}

#[test]
fn scrv1_static_challenge_answer_is_accepted() {
    let f = Fixture::new();
    let env = f.env(
        "alice",
        format!("SCRV1:{}:{}", b64("static password"), b64(f.alice_code())),
    );
    f.forbid(b64("static password"));
    f.forbid("static password");
    assert_eq!(f.auth(&env), SUCCESS);
    assert!(f.last_line().message.ends_with(" user=alice"));

    // Empty password part; upper-case code with the trailing newline old GUIs add.
    let code = f.code(BOB_SECRET, BOB_PIN, 0).to_uppercase();
    let env = f
        .env("bob", format!("SCRV1::{}", b64(format!("{code}\n"))))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);

    // Bad base64 in the response.
    let env = f.env("alice", "SCRV1:cGFzcw==:!!!!!!!!");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    assert_eq!(env.client_reason(), GENERIC_REASON);
}

#[test]
fn scrv1_with_1000_colons_is_rejected() {
    let f = Fixture::new();
    for password in [
        format!("SCRV1{}", ":".repeat(1000)),
        format!("SCRV1:{}{}", b64("pw"), ":".repeat(1000)),
        format!(
            "SCRV1:{}:{}{}",
            b64("pw"),
            b64(f.alice_code()),
            ":".repeat(1000)
        ),
    ] {
        let env = f.env("alice", &password);
        assert_eq!(f.auth(&env), ERROR);
        assert_rejected(&f.last_line(), "alice", "malformed password");
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
    assert_eq!(f.auth(&f.env("alice", f.alice_code())), SUCCESS);
}

#[test]
fn lockout_after_max_failures_sends_temp_backoff() {
    let f = Fixture::with_config(&config_with_max_failures(3));
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    for attempt in 1..=3 {
        let env = f.env("alice", &wrong);
        assert_eq!(f.auth(&env), ERROR, "attempt {attempt}");
        assert_rejected(&f.last_line(), "alice", "bad code");
        assert_eq!(env.client_reason(), GENERIC_REASON, "attempt {attempt}");
    }
    // Locked now: even the right code is refused, and the client is told to back off.
    let env = f.env("alice", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "locked");
    let reason = env.client_reason();
    let backoff: i64 = reason
        .strip_prefix("TEMP[backoff ")
        .and_then(|r| r.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a TEMP[backoff N] reason: {reason:?}"));
    assert!((1..=300).contains(&backoff), "{reason}");
    for word in ["code", "PIN", "pin", "CN", "certificate", "user", "secret"] {
        assert!(
            !reason.contains(word),
            "the reason must not say which factor failed: {reason}"
        );
    }
    // Locking one user does not lock another.
    let env = f
        .env("bob", f.code(BOB_SECRET, BOB_PIN, 0))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);
}

#[test]
fn generic_reasons_never_name_the_failing_factor() {
    let f = Fixture::new();
    let code = f.alice_code();
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    let cases = [
        f.env("alice", &wrong),
        f.env("mallory", &code),
        f.env("alice", &code).with("common_name", "eve"),
        f.env("alice", "not a code"),
        f.env("alice", format!("SCRV1{}", ":".repeat(5))),
    ];
    for env in &cases {
        assert_eq!(f.auth(env), ERROR);
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
}
