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
    // Exit 1: nina's counter file is missing. hobbes' second line is a further token.
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("line 9"), "{r:?}");
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
    // hobbes: the first line is the user's own token, the second a further one ("totp-2"),
    // and either logs in, each with its own replay state.
    let hobbes = config.users.get("hobbes").unwrap();
    assert_eq!(hobbes.key, &john[..]);
    assert_eq!(hobbes.more_tokens.len(), 1);
    assert_eq!(&*hobbes.more_tokens[0].name, "totp-2");
    let second = hobbes.more_tokens[0].key().to_vec();
    assert!(login(&config, &store, "hobbes", &totp(&second, 30, now), now).is_accepted());
    assert!(login(&config, &store, "hobbes", &totp(&john, 30, now), now).is_accepted());
    assert_eq!(
        login(&config, &store, "hobbes", &totp(&second, 30, now), now),
        Decision::Replay
    );
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

/// Several lines of one user become several tokens, each with its own settings, sharing the
/// lines' PIN as the static password; lines that cannot share one are refused, naming them.
#[test]
fn openvpn_otp_users_with_several_lines_log_in_with_any_of_their_tokens() {
    let dir = TempDir::new("import-otp-tokens");
    let secrets = dir.join("otp-secrets");
    fs::write(
        &secrets,
        "# tom: a phone and a hardware token\n\
         tom otp totp:sha1:base32:K7BYLIU5D2V33X6S:77:xxx *\n\
         ann otp totp:sha1:base32:46HV5FIYE33TKWYP::xxx *\n\
         # tom's key fob\n\
         tom otp hotp:sha256:hex:3132333435363738393031323334353637383930:77:xxx *\n\
         tom otp totp-60-6:sha1:base32:LJYHR64TUI7IL3RD:77:xxx *\n\
         ann otp motp:md5:text:0123456789abcdef:1234 *\n\
         pat otp totp:sha1:base32:7VXNJAFPYYKO3ILO:11:xxx *\n\
         pat otp totp:sha1:base32:LJYHR64TUI7IL3RD:22:xxx *\n\
         pat otp totp:sha1:base32:46HV5FIYE33TKWYP:11:xxx *\n\
         sue otp motp:md5:text:fedcba9876543210:4321 *\n\
         sue otp totp:sha1:base32:K7BYLIU5D2V33X6S:99:xxx *\n",
    )
    .unwrap();
    let counters = dir.join("hotp-counters");
    fs::create_dir(&counters).unwrap();
    // SHA1 of tom's HOTP key as written.
    let name: String = {
        use std::fmt::Write;
        let mut hex = String::new();
        for b in sha1_of(b"3132333435363738393031323334353637383930") {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    fs::write(counters.join(name), "5").unwrap();
    let out = dir.join("motp.toml");
    let args = [
        "import",
        "openvpn-otp",
        s(&secrets),
        "--hotp-counters",
        s(&counters),
        "-o",
        s(&out),
    ];
    // pat's PINs differ, sue has an mOTP line and a PIN before a code: refused, nothing written.
    let r = run(&args);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!out.exists());
    let pat = r
        .stderr
        .lines()
        .find(|l| l.starts_with("refused: line 9 (user pat)"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(pat.contains("differs from the PIN of line 8"), "{pat}");
    assert!(pat.contains("one static password per user"), "{pat}");
    assert!(pat.contains("(lines 8, 9)"), "{pat}");
    assert!(
        r.stderr
            .contains("refused: line 10 (user pat): the user is not imported"),
        "{r:?}"
    );
    let sue = r
        .stderr
        .lines()
        .find(|l| l.starts_with("refused: line 12 (user sue)"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(sue.contains("line 11 is an mOTP line"), "{sue}");
    assert!(sue.contains("(lines 11, 12)"), "{sue}");
    for secret in [
        "\"77\"",
        ":11",
        ":22",
        "4321",
        "K7BYLIU5",
        "0123456789abcdef",
    ] {
        assert!(!r.all().contains(secret), "{secret}: {r:?}");
    }

    let mut skip = args.to_vec();
    skip.push("--skip-unconvertible");
    let r = run(&skip);
    assert_eq!(r.code, 1, "{r:?}");
    let text = fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("[users.pat]") && !text.contains("[users.sue]"),
        "{text}"
    );
    assert!(
        text.contains("# tom's key fob\n# line 5: a further token of tom\n[[users.tom.tokens]]"),
        "{text}"
    );
    let config = Config::load(&out).unwrap();
    assert_eq!(config.users.names().collect::<Vec<_>>(), ["tom", "ann"]);
    let tom = config.users.get("tom").unwrap();
    assert!(tom.password.is_some());
    let names: Vec<&str> = tom.more_tokens.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["hotp", "totp-2"]);
    let ann = config.users.get("ann").unwrap();
    assert!(ann.password.is_none());
    assert_eq!(&*ann.more_tokens[0].name, "motp");

    let now = NOW;
    let store = MemoryStore::new();
    // tom types the shared PIN, then the code of any of his tokens.
    let phone = tom.key.to_vec();
    let fob = tom.more_tokens[0].key().to_vec();
    let hw = tom.more_tokens[1].key().to_vec();
    assert_eq!(fob, b"12345678901234567890");
    let fob_at = |c: u64| hotp_text(&fob, c, Algorithm::Sha256, 6);
    assert!(login(
        &config,
        &store,
        "tom",
        &format!("77{}", totp(&phone, 30, now)),
        now
    )
    .is_accepted());
    assert_eq!(
        login(&config, &store, "tom", &format!("77{}", fob_at(4)), now),
        Decision::BadCode,
        "counter 4 was used under openvpn-otp"
    );
    assert!(login(&config, &store, "tom", &format!("77{}", fob_at(5)), now).is_accepted());
    assert!(login(
        &config,
        &store,
        "tom",
        &format!("77{}", totp(&hw, 60, now)),
        now
    )
    .is_accepted());
    assert_eq!(
        login(&config, &store, "tom", &format!("12{}", fob_at(6)), now),
        Decision::BadPassword
    );
    assert!(!login(&config, &store, "tom", &fob_at(6), now).is_accepted());
    assert!(login(&config, &store, "tom", &format!("77{}", fob_at(6)), now).is_accepted());
    // ann: a TOTP token without PIN and an mOTP one, each its code alone.
    let ann_motp = motp::engine::code_at_time("0123456789abcdef", "1234", now).to_hex();
    assert!(login(&config, &store, "ann", &ann_motp, now).is_accepted());
    assert!(login(&config, &store, "ann", &totp(ann.key, 30, now), now).is_accepted());

    // motpctl sees every token: code --token, and verify accepts any of them.
    let r = run(&["code", "tom", "--token", "totp-2", "-c", s(&out), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), totp(&hw, 60, NOW));
    let r = run(&["verify", "tom", &totp(&hw, 60, NOW), "-c", s(&out), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(token `totp-2`)"), "{r:?}");
    let r = run(&["verify", "ann", &ann_motp, "-c", s(&out), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(token `motp`)"), "{r:?}");
}

/// SHA-1, as openvpn-otp names its HOTP counter files.
fn sha1_of(data: &[u8]) -> [u8; 20] {
    let out = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .expect("sha1sum runs");
    let hex = String::from_utf8(out.stdout).unwrap();
    let mut bytes = [0u8; 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}
