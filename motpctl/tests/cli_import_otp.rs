//! `motpctl` CLI tests: importing openvpn-otp's TOTP/HOTP lines and pam_google_authenticator
//! files, checked through the plugin's own decision: users log in with exactly what they typed
//! before (helpers in `common/mod.rs`).

use std::fs;
use std::path::Path;

use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::engine::{hotp_text, Algorithm};
use motp::state::MemoryStore;
use motp_harness::temp::TempDir;

mod common;
use common::*;

/// openvpn-otp's README lines, with lucie's HOTP key in the key's place (the README's own line
/// puts it where the PIN goes; it is checked separately).
const README: &str = "\
# user server type:hash:encoding:key:pin:udid client
bob otp totp:sha1:base32:K7BYLIU5D2V33X6S:1234:xxx *
alice otp totp:sha1:base32:46HV5FIYE33TKWYP:5uP3rH4x0r:xxx *
john otp totp:sha1:base32:LJYHR64TUI7IL3RD::xxx *
lucie otp hotp:sha1:base32:MT4GWEZTSRBV2QQC::xxx *
mike otp totp-60-6:sha1:hex:5c5a75a87ba1b48cb0b6adfd3b7a5a0e:6543:xxx *
jane otp totp:sha1:text:1234567890:9876:xxx *
hobbes otp totp:sha1:base32:LJYHR64TUI7IL3RD::xxx *
hobbes otp totp:sha1:base32:7VXNJAFPYYKO3ILO::xxx *
nina otp hotp:sha256:hex:3132333435363738393031323334353637383930:42:xxx *
";

/// The plugin's decision on `password` for `user` (with the user's own certificate), on `store`.
fn login(config: &Config, store: &MemoryStore, user: &str, password: &str, now: i64) -> Decision {
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store,
        learned: None,
    };
    auth.decide(
        &LoginRequest {
            username: Some(user.as_bytes()),
            password: Some(password.as_bytes()),
            common_name: Some(user.as_bytes()),
        },
        now,
    )
}

fn totp(key: &[u8], period: i64, now: i64) -> String {
    hotp_text(key, (now / period) as u64, Algorithm::Sha1, 6)
}

#[test]
fn openvpn_otp_readme_lines_log_in_as_before() {
    let dir = TempDir::new("import-otp-totp");
    let secrets = dir.join("otp-secrets");
    fs::write(&secrets, README).unwrap();
    let counters = dir.join("hotp-counters");
    fs::create_dir(&counters).unwrap();
    // SHA1("MT4GWEZTSRBV2QQC"), as openvpn-otp's README says; nina's file is missing.
    fs::write(
        counters.join("a0b2e3795f7ca9e60183af274a004cdd0ac9276f"),
        "7",
    )
    .unwrap();
    let out = dir.join("motp.toml");
    let r = run(&[
        "import",
        "openvpn-otp",
        s(&secrets),
        "--hotp-counters",
        s(&counters),
        "-o",
        s(&out),
    ]);
    // Exit 1: hobbes' second token is skipped, nina's counter file is missing.
    assert_eq!(r.code, 1, "{r:?}");
    let skipped = r
        .stderr
        .lines()
        .find(|l| l.contains("line 9 (user hobbes)"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        skipped.contains("several tokens per user are not supported yet"),
        "{skipped}"
    );
    assert!(skipped.contains("line 8"), "{skipped}");
    assert!(r.stderr.contains("line 10 (user nina)"), "{r:?}");
    assert!(r.stderr.contains("counter 0"), "{r:?}");
    for secret in [
        "K7BYLIU5D2V33X6S",
        "5uP3rH4x0r",
        "1234567890",
        "5c5a75a87ba1b48cb0b6adfd3b7a5a0e",
        "6543",
        "9876",
        "7VXNJAFPYYKO3ILO",
    ] {
        assert!(!r.all().contains(secret), "{secret}: {r:?}");
    }
    let text = fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("5uP3rH4x0r") && !text.contains("\"1234\""),
        "{text}"
    );
    let r = run(&["check-config", s(&out), "--no-clock-check"]);
    assert!(r.code <= 1, "{r:?}");
    let config = Config::load(&out).unwrap();
    assert_eq!(config.users.len(), 8);

    let now = NOW;
    let store = MemoryStore::new();
    let bob = config.users.get("bob").unwrap().key.to_vec();
    // bob types his PIN, then the code, as before.
    let code = totp(&bob, 30, now);
    assert!(login(&config, &store, "bob", &format!("1234{code}"), now).is_accepted());
    // The same again is a replay; the code alone, or a wrong PIN, is refused.
    assert_eq!(
        login(&config, &store, "bob", &format!("1234{code}"), now),
        Decision::Replay
    );
    let next = totp(&bob, 30, now + 30);
    assert_eq!(
        login(&config, &store, "bob", &format!("1235{next}"), now + 30),
        Decision::BadPassword
    );
    assert!(!login(&config, &store, "bob", &next, now + 30).is_accepted());
    assert!(login(&config, &store, "bob", &format!("1234{next}"), now + 30).is_accepted());

    let alice = config.users.get("alice").unwrap().key.to_vec();
    let code = totp(&alice, 30, now);
    assert!(login(&config, &store, "alice", &format!("5uP3rH4x0r{code}"), now).is_accepted());
    let john = config.users.get("john").unwrap().key.to_vec();
    assert!(login(&config, &store, "john", &totp(&john, 30, now), now).is_accepted());
    // Text key: its bytes; hex key and 60 s steps for the hardware token.
    let jane = config.users.get("jane").unwrap().key.to_vec();
    assert_eq!(jane, b"1234567890");
    assert!(login(
        &config,
        &store,
        "jane",
        &format!("9876{}", totp(&jane, 30, now)),
        now
    )
    .is_accepted());
    let mike = config.users.get("mike").unwrap().key.to_vec();
    assert_eq!(mike.len(), 16);
    assert!(login(
        &config,
        &store,
        "mike",
        &format!("6543{}", totp(&mike, 60, now)),
        now
    )
    .is_accepted());
    // hobbes kept the first token.
    assert_eq!(config.users.get("hobbes").unwrap().key, &john[..]);
    // lucie's HOTP token goes on from counter 7 of openvpn-otp's file.
    let lucie = config.users.get("lucie").unwrap().key.to_vec();
    let at = |c: u64| hotp_text(&lucie, c, Algorithm::Sha1, 6);
    assert_eq!(
        login(&config, &store, "lucie", &at(6), now),
        Decision::BadCode,
        "counter 6 was used under openvpn-otp"
    );
    assert!(login(&config, &store, "lucie", &at(7), now).is_accepted());
    // Used: the search starts after it now.
    assert!(!login(&config, &store, "lucie", &at(7), now).is_accepted());
    assert!(login(&config, &store, "lucie", &at(8), now).is_accepted());
    // nina: SHA-256, hex key, PIN 42, counter 0.
    let nina = config.users.get("nina").unwrap().key.to_vec();
    assert_eq!(nina, b"12345678901234567890");
    let code = hotp_text(&nina, 0, Algorithm::Sha256, 6);
    assert!(login(&config, &store, "nina", &format!("42{code}"), now).is_accepted());

    // The same through motpctl verify: john's next code.
    let r = run(&[
        "verify",
        "john",
        &totp(&john, 30, NOW),
        "-c",
        s(&out),
        NOW_ARG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    // bob's code alone is a valid code, the password not checked; with it, both.
    let r = run(&[
        "verify",
        "bob",
        &totp(&bob, 30, NOW),
        "-c",
        s(&out),
        NOW_ARG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("static password was not checked"),
        "{r:?}"
    );
    let r = run_with_stdin(
        &[
            "verify",
            "bob",
            &totp(&bob, 30, NOW),
            "--with-password",
            "-c",
            s(&out),
            NOW_ARG,
        ],
        "1234\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_with_stdin(
        &[
            "verify",
            "bob",
            &totp(&bob, 30, NOW),
            "--with-password",
            "-c",
            s(&out),
            NOW_ARG,
        ],
        "4321\n",
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("static password is wrong"), "{r:?}");
}

#[test]
fn openvpn_otp_readme_hotp_line_with_the_key_in_the_pin_place_is_refused() {
    let dir = TempDir::new("import-otp-readme-hotp");
    let secrets = dir.join("otp-secrets");
    fs::write(
        &secrets,
        "lucie otp hotp:sha1:base32::MT4GWEZTSRBV2QQC:xxx *\n\
         kim otp totp:md5:base32:K7BYLIU5D2V33X6S:1:xxx *\n\
         lee otp totp:sha1:text:short:1:xxx *\n",
    )
    .unwrap();
    let r = run(&["import", "openvpn-otp", s(&secrets)]);
    assert_eq!(r.code, 2, "{r:?}");
    for (line, why) in [
        ("line 1 (user lucie)", "key (4th part) is empty"),
        ("line 2 (user kim)", "sha1, sha256 or sha512"),
        ("line 3 (user lee)", "5 bytes"),
    ] {
        let found = r
            .stderr
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{line} not refused: {r:?}"));
        assert!(found.contains(why), "{found}");
    }
    assert!(!r.all().contains("MT4GWEZTSRBV2QQC"), "{r:?}");
    assert!(!r.all().contains("short"), "{r:?}");
}

#[test]
fn google_authenticator_file_round_trip() {
    let dir = TempDir::new("import-ga");
    let home = dir.join("home");
    for (user, text) in [
        (
            "carol",
            "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\
             \" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n",
        ),
        (
            "dave",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" HOTP_COUNTER 3\n11112222\n",
        ),
    ] {
        fs::create_dir_all(home.join(user)).unwrap();
        fs::write(home.join(user).join(".google_authenticator"), text).unwrap();
    }
    // One file, --user.
    let out = dir.join("one.toml");
    let r = run(&[
        "import",
        "google-authenticator",
        s(&home.join("carol/.google_authenticator")),
        "--user",
        "carol",
        "-o",
        s(&out),
    ]);
    assert_eq!(r.code, 1, "options were noted: {r:?}");
    assert!(r.stderr.contains("WINDOW_SIZE"), "{r:?}");
    assert!(r.stderr.contains("RATE_LIMIT"), "{r:?}");
    for secret in ["JBSWY3DPEHPK3PXP", "12345678", "87654321"] {
        assert!(!r.all().contains(secret), "{secret}: {r:?}");
        assert!(!fs::read_to_string(&out).unwrap().contains("12345678"));
    }
    let config = Config::load(&out).unwrap();
    let carol = config.users.get("carol").unwrap();
    assert_eq!(carol.key, b"Hello!\xde\xad\xbe\xef");
    assert_eq!(carol.recovery_codes.len(), 2);
    let store = MemoryStore::new();
    let code = totp(carol.key, 30, NOW);
    assert!(login(&config, &store, "carol", &code, NOW).is_accepted());
    // A scratch code logs in once.
    assert!(matches!(
        login(&config, &store, "carol", "87654321", NOW),
        Decision::RecoveryAccepted { .. }
    ));
    assert_eq!(
        login(&config, &store, "carol", "87654321", NOW),
        Decision::Replay
    );
    assert!(matches!(
        login(&config, &store, "carol", "12345678", NOW),
        Decision::RecoveryAccepted { .. }
    ));
    // motpctl verify says so too (a fresh store: nothing used).
    let r = run(&["verify", "carol", "12345678", "-c", s(&out), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("recovery code"), "{r:?}");
    let r = run(&["verify", "carol", "11111111", "-c", s(&out), NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");

    // A directory of home directories: both users, dave's HOTP counter carried over.
    let all = dir.join("all.toml");
    let r = run(&[
        "import",
        "google-authenticator",
        "--homes",
        s(&home),
        "-o",
        s(&all),
    ]);
    assert!(r.code <= 1, "{r:?}");
    let config = Config::load(&all).unwrap();
    assert_eq!(config.users.len(), 2);
    let dave = config.users.get("dave").unwrap();
    assert_eq!(dave.key, b"12345678901234567890");
    let store = MemoryStore::new();
    let at = |c: u64| hotp_text(dave.key, c, Algorithm::Sha1, 6);
    assert!(!login(&config, &store, "dave", &at(2), NOW).is_accepted());
    assert!(login(&config, &store, "dave", &at(3), NOW).is_accepted());
    assert!(matches!(
        login(&config, &store, "dave", "1111-2222", NOW),
        Decision::RecoveryAccepted { .. }
    ));

    // A bad line is refused with its number, without echoing it.
    let bad = dir.join("bad");
    fs::write(&bad, "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n1234567x\n").unwrap();
    let r = run(&["import", "google-authenticator", s(&bad), "--user", "eve"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("line 3"), "{r:?}");
    assert!(!r.all().contains("1234567x"), "{r:?}");
    let r = run(&["import", "google-authenticator", s(&bad)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(Path::new(&bad).exists());
}
