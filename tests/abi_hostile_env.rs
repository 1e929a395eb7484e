//! `motp.so` through its C ABI (`motp_harness::abi`), fed what a hostile or buggy host might
//! pass: 4 KiB passwords, invalid UTF-8, missing or NULL envs, look-alike env names, unknown
//! event types. Moved from tests/abi.rs; the [`Fixture`] and its leak check are in
//! tests/abi_fixture/.

use std::ffi::c_int;

use motp_harness::abi::Env;
use openvpn_plugin_sys as sys;

mod abi_fixture;

use abi_fixture::*;

#[test]
fn four_kib_passwords_are_handled() {
    let f = Fixture::new();
    // OpenVPN's USER_PASS_LEN with PKCS#11 is 4096 bytes (including the NUL).
    for len in [4095, 4096, 4097, 64 * 1024] {
        let env = f.env("alice", "a".repeat(len));
        assert_eq!(f.auth(&env), ERROR, "len {len}");
        assert_rejected(&f.last_line(), "alice", "malformed password");
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
    // A static-challenge answer with a long password part, 4095 bytes in all, still works.
    let tail = format!(":{}", b64(f.alice_code()));
    let static_b64_len = (4095 - "SCRV1:".len() - tail.len()) / 4 * 4;
    let password = format!("SCRV1:{}{tail}", "QUFB".repeat(static_b64_len / 4));
    assert!(password.len() <= 4095 && password.len() > 4090);
    assert_eq!(f.auth(&f.env("alice", &password)), SUCCESS);
    assert!(f.last_line().message.ends_with(" user=alice"));
}

#[test]
fn invalid_utf8_is_rejected_cleanly() {
    let f = Fixture::new();
    let code = f.alice_code();

    let mut env = f.env("alice", &code);
    env.set("username", b"\xff\xfealice\xc3");
    assert_eq!(f.auth(&env), ERROR);
    let line = f.last_line();
    assert_rejected(&line, "\u{fffd}\u{fffd}alice\u{fffd}", "bad username");
    assert_eq!(env.client_reason(), GENERIC_REASON);

    let env = f.env("alice", b"\xff\xfe\xfd\xfc\xfb\xfa");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");

    let env = f.env("alice", &code).with("common_name", b"alice\xff");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");

    // Control characters cannot forge a second log line, nor spaces and `=` a field.
    let env = f.env("alice\nlogin accepted user=root", &code);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(
        &f.last_line(),
        "alice\nlogin accepted user=root",
        "unknown user",
    );
    assert!(f
        .last_line()
        .message
        .ends_with(r#" user="alice\nlogin accepted user=root""#));

    // The code is still unused.
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
}

#[test]
fn missing_or_null_env_is_rejected_without_crashing() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    let event = sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY;

    // NULL envp and an empty one.
    assert_eq!(p.call(event, None), ERROR);
    assert_rejected_from(&f.last_line(), "(none)", "unknown", "bad username");
    assert_eq!(p.call(event, Some(&Env::new())), ERROR);
    let line = f.last_line();
    assert_eq!(
        line.message,
        "login rejected ip=unknown reason=\"bad username\" user=(none)"
    );

    // No username, only a password.
    let env = f.env("alice", &code).without("username");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "(none)", "bad username");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Empty username.
    assert_eq!(p.auth(&f.env("", &code)), ERROR);
    assert_rejected(&f.last_line(), "", "bad username");
    // No password.
    let env = f.env("alice", &code).without("password");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    // Empty password.
    assert_eq!(p.auth(&f.env("alice", "")), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    // No auth_failed_reason_file (OpenVPN 2.5): still a clean reject.
    let env = f.env("alice", "zzzzzz").without("auth_failed_reason_file");
    assert_eq!(p.auth(&env), ERROR);
    // A reason file that cannot be written (nothing is written for a plain failure, and a
    // failed write of a TEMP reason is only logged): the reject stands.
    let env = f
        .env("alice", "zzzzzz")
        .with("auth_failed_reason_file", "/nonexistent-dir/afr");
    assert_eq!(p.auth(&env), ERROR);
    // Entries without '=', and a duplicate username: the first occurrence counts.
    let mut env = Env::new();
    env.push_raw(b"garbage".to_vec())
        .push_raw(b"".to_vec())
        .push("username", "mallory")
        .push("username", "alice")
        .push("password", &code)
        .push("common_name", "alice");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected_from(&f.last_line(), "mallory", "unknown", "unknown user");
    // Only the plugin-relevant variables, nothing else OpenVPN sets.
    assert_eq!(
        p.auth_pairs(&[
            ("username", "alice"),
            ("password", code.as_str()),
            ("common_name", "alice")
        ]),
        SUCCESS
    );
    let line = f.last_line();
    assert!(
        line.message
            .starts_with("login accepted ip=unknown step_offset=")
            && line.message.ends_with(" user=alice"),
        "{line}"
    );

    // NULL arguments and a NULL handle.
    let mut ret = sys::openvpn_plugin_args_func_return {
        return_list: std::ptr::null_mut(),
    };
    // SAFETY: the plugin checks `arguments` for NULL before touching it.
    let code_null_args =
        unsafe { p.func_v3_raw(sys::OPENVPN_PLUGINV3_STRUCTVER, std::ptr::null(), &mut ret) };
    assert_eq!(code_null_args, ERROR);
    let argv = [std::ptr::null()];
    let args = sys::openvpn_plugin_args_func_in {
        type_: event,
        argv: argv.as_ptr(),
        envp: std::ptr::null(),
        handle: std::ptr::null_mut(),
        per_client_context: std::ptr::null_mut(),
        current_cert_depth: -1,
        current_cert: std::ptr::null_mut(),
    };
    // SAFETY: a fully initialised struct; the plugin checks the NULL handle.
    let code_null_handle =
        unsafe { p.func_v3_raw(sys::OPENVPN_PLUGINV3_STRUCTVER, &args, &mut ret) };
    assert_eq!(code_null_handle, ERROR);
}

#[test]
fn env_names_are_matched_whole() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    // Names that merely start like, end like, or repeat a wanted one are not it: the real
    // `password` (a wrong code) decides, not the decoys holding alice's valid code.
    let mut env = Env::new();
    env.push("passwordx", &code)
        .push("passwor", &code)
        .push(&"password".repeat(8), &code)
        .push("xpassword", &code)
        .push("PASSWORD", &code)
        .push_raw(format!("password{code}"))
        .push("username", "alice")
        .push("password", "000000")
        .push("common_name", "alice");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected_from(&f.last_line(), "alice", "unknown", "bad code");
    // A long value in an entry the plugin does not read, and an entry of only `=`, do not
    // disturb the ones it does.
    let mut env = f.env("alice", &code);
    env.push("IV_PLAT_LONG", "x".repeat(64 * 1024))
        .push_raw("=".to_owned());
    assert_eq!(p.auth(&env), SUCCESS);
}

#[test]
fn unknown_event_types_return_error() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    let env = f.env("alice", &code);
    for event in [
        sys::OPENVPN_PLUGIN_UP,
        sys::OPENVPN_PLUGIN_TLS_VERIFY,
        sys::OPENVPN_PLUGIN_CLIENT_CONNECT_V2,
        sys::OPENVPN_PLUGIN_TLS_FINAL,
        sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE,
        sys::OPENVPN_PLUGIN_N,
        99,
        -1,
        c_int::MAX,
    ] {
        assert_eq!(p.call(event, Some(&env)), ERROR, "event {event}");
    }
    // None of them consumed the code.
    assert_eq!(p.auth(&env), SUCCESS);
}
