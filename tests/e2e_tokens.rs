//! Token kinds with a real OpenVPN server and client (issue 16): a TOTP login and its replay,
//! HOTP counters, a static password in front of the code (plain `auth-user-pass`, and SCRV1
//! through a static challenge), a recovery code accepted once. With a password user in the
//! table every login is deferred to the plugin's worker thread.

mod e2e_setup;

use e2e_setup::{
    assert_accepted, assert_rejected, hotp_code, recovery_codes, rfc_key_b32, Setup, RFC_KEY,
};
use motp::secret_hash;
use motp_harness::openvpn::{login, unix_now, Credentials};

fn totp_code(at: i64) -> String {
    e2e_setup::totp_code(RFC_KEY, at)
}

/// Waits for the next TOTP step, so the next accepted code is a fresh one.
fn next_totp_step(code: &str) {
    while totp_code(unix_now()) == code {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn totp_hotp_static_passwords_and_recovery_codes_log_in_through_openvpn() {
    let b32 = rfc_key_b32();
    let password = secret_hash::hash_password(b"hunter2");
    let (recovery, hashes) = recovery_codes(2);
    // The token users' certificates are alice's and bob's (the PKI's names), so they carry
    // `common_name`.
    let users = format!(
        "max_failures = 20\n\
         [users.tina]\nkind = \"totp\"\nsecret = \"{b32}\"\ncommon_name = \"alice\"\n\
         [users.hank]\nkind = \"hotp\"\nsecret = \"{b32}\"\ncommon_name = \"alice\"\n\
         [users.pat]\nkind = \"totp\"\nsecret = \"{b32}\"\npassword = \"{password}\"\n\
         recovery_codes = {hashes}\ncommon_name = \"bob\"\n"
    );
    let s = Setup::start(&users, &[]);

    // TOTP: accepted, then the same code refused.
    let code = totp_code(unix_now());
    assert_accepted(&s.login("alice", "tina", &code), "TOTP code");
    assert_rejected(&s.login("alice", "tina", &code), "the TOTP code again");

    // HOTP: counter 0, then 1; 0 again is refused.
    let h0 = hotp_code(RFC_KEY, 0);
    let h1 = hotp_code(RFC_KEY, 1);
    assert_accepted(&s.login("alice", "hank", &h0), "HOTP counter 0");
    assert_accepted(&s.login("alice", "hank", &h1), "HOTP counter 1");
    assert_rejected(&s.login("alice", "hank", &h0), "HOTP counter 0 again");

    // A static password in front of the code: a wrong one refuses and uses nothing.
    next_totp_step(&code);
    let code = totp_code(unix_now());
    assert_rejected(
        &s.login("bob", "pat", &format!("hunter3{code}")),
        "wrong static password",
    );
    assert_accepted(
        &s.login("bob", "pat", &format!("hunter2{code}")),
        "static password and code",
    );

    // The static challenge: SCRV1 with the password in its first part.
    next_totp_step(&code);
    let code = totp_code(unix_now());
    let outcome = login(
        &s.server,
        &s.pki,
        "bob",
        &Credentials::StaticChallenge {
            username: "pat",
            password: "hunter2",
            code: &code,
        },
    );
    assert_accepted(&outcome, "SCRV1: static password and code");

    // A recovery code, after the static password: once.
    let with_recovery = format!("hunter2{}", recovery[1]);
    assert_accepted(&s.login("bob", "pat", &with_recovery), "recovery code");
    assert_rejected(
        &s.login("bob", "pat", &with_recovery),
        "recovery code again",
    );

    // Decided on the worker thread (a password user is in the table), each decision's line
    // reaches OpenVPN's log at the plugin's next call: one more login brings the last ones in.
    assert_rejected(&s.login("alice", "tina", "000000"), "a flushing login");
    let reasons = |user: &str| -> Vec<String> {
        let needle = format!(" user={user}");
        s.server
            .plugin_lines()
            .into_iter()
            .filter(|l| l.ends_with(&needle) && l.contains("login "))
            .map(|l| match l.find("login ") {
                Some(at) => l[at..].to_owned(),
                None => l,
            })
            .collect()
    };
    let tina = reasons("tina");
    assert!(tina[0].starts_with("login accepted"), "{tina:#?}");
    assert!(tina[1].contains("reason=replay"), "{tina:#?}");
    let hank = reasons("hank");
    assert_eq!(hank.len(), 3, "{hank:#?}");
    assert!(hank[2].starts_with("login rejected"), "{hank:#?}");
    let pat = reasons("pat");
    assert_eq!(pat.len(), 5, "{pat:#?}");
    assert!(pat[0].contains("reason=\"bad password\""), "{pat:#?}");
    assert!(
        pat[3].contains("via=\"recovery code\"") && pat[3].contains("recovery_code=2"),
        "{pat:#?}"
    );
    assert!(pat[4].contains("reason=replay"), "{pat:#?}");

    // The server log holds no secret, password or code.
    let mut typed = vec![code.clone(), h0, h1, "hunter2".to_owned()];
    typed.extend(recovery.iter().cloned());
    s.assert_log_clean(&typed.iter().map(String::as_str).collect::<Vec<_>>());
}
