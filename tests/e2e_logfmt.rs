//! End to end (issue 14, item 1): a real `openvpn` server and client; usernames that try to
//! forge fields of the decision line (`x ip=10.9.9.9 reason=accepted`, one with `"` and `\`)
//! log in with a wrong code. The server's decision line parses as logfmt to the real address
//! and reason and the true username, and `fail2ban-regex` with the shipped filter reports the
//! real address only.
//!
//! Needs root (the server opens a tun device), `openvpn` and `openssl`; the fail2ban part needs
//! `fail2ban-regex` (Debian's `fail2ban` package) and is skipped, saying so, without it.

use std::path::Path;
use std::process::Command;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Credentials, Pki, Server, ServerSpec,
    TempDir,
};

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "1234";

/// Usernames that would forge `ip=` and `reason=` in a line without quoting; both are bound to
/// the certificate `alice`, so the plugin checks their code (`reason="bad code"`).
const FORGER: &str = "x ip=10.9.9.9 reason=accepted";
const QUOTER: &str = r#"y" ip=10.9.9.9 reason=accepted \" z=\"#;

/// A code that is valid at no step of a ±`window` window around `now`.
fn wrong_code(now: i64, window: i64) -> String {
    let valid: Vec<String> = (-window - 20..=window + 20)
        .step_by(10)
        .map(|d| code_at_time(SECRET, PIN, now + d).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{:06x}", (n * 7919) & 0xff_ffff))
        .find(|c| !valid.contains(c))
        .expect("some code is wrong")
}

/// A small logfmt parser: `key=value` pairs separated by spaces, a value bare (up to the next
/// space) or quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes. `None` for anything
/// else (a stray quote, an unknown escape, a key without `=`, text after a closing quote).
fn parse_logfmt(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains([' ', '"', '\\']) {
            return None;
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i + 1,
                    '\\' => match chars.next()?.1 {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hex: String =
                                (0..4).filter_map(|_| chars.next()).map(|x| x.1).collect();
                            out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        _ => return None,
                    },
                    c => out.push(c),
                }
            };
            value = out;
            rest = &quoted[end..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            if value.contains(['"', '=', '\\']) {
                return None;
            }
            rest = &rest[end..];
        }
        pairs.push((key.to_owned(), value));
        match rest.strip_prefix(' ') {
            Some(next) => rest = next,
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(pairs)
}

#[test]
fn the_logfmt_parser_reads_what_it_should() {
    let pairs = parse_logfmt(r#"ip=1.2.3.4 reason="bad code" user="a\"b\\c\u0001""#).unwrap();
    assert_eq!(
        pairs,
        [
            ("ip".to_owned(), "1.2.3.4".to_owned()),
            ("reason".to_owned(), "bad code".to_owned()),
            ("user".to_owned(), "a\"b\\c\u{1}".to_owned()),
        ]
    );
    assert!(parse_logfmt(r#"user=x ip=1 reason=a"b"#).is_none());
    assert!(parse_logfmt(r#"user="x"y"#).is_none());
}

/// The fields of the plugin's decision line for a login that names `user`, from the server's
/// log: the words after `PLUGIN motp: login rejected `.
fn decision_fields(server: &Server, user: &str) -> Vec<(String, String)> {
    let lines = server.plugin_lines();
    let fields: Vec<Vec<(String, String)>> = lines
        .iter()
        .filter_map(|l| l.split_once("PLUGIN motp: login rejected ").map(|x| x.1))
        .map(|rest| {
            parse_logfmt(rest).unwrap_or_else(|| panic!("not logfmt: {rest:?}\n{lines:#?}"))
        })
        .filter(|f| f.iter().any(|(k, v)| k == "user" && v == user))
        .collect();
    assert_eq!(
        fields.len(),
        1,
        "one decision line for {user:?}: {lines:#?}"
    );
    fields.into_iter().next().unwrap()
}

#[test]
fn usernames_cannot_forge_fields_and_fail2ban_bans_the_real_address() {
    require_tools();
    let dir = TempDir::new("e2e-logfmt");
    let pki = Pki::create(dir.path(), &["alice"]);
    let config = dir.path().join("motp.toml");
    let mut users = String::new();
    for name in [FORGER, QUOTER] {
        // A TOML literal key: neither `"` nor `\` is special in it.
        users.push_str(&format!(
            "[users.'{name}']\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\ncommon_name = \"alice\"\n\n"
        ));
    }
    write_motp_config(
        &config,
        &format!(
            "[state]\ndir = \"{}\"\n\n{users}",
            dir.path().join("state").display()
        ),
    );
    let spec = ServerSpec::new(&pki, motp_harness::plugin_path(), config);
    let server = Server::start(dir.path(), &spec)
        .unwrap_or_else(|log| panic!("server did not start:\n{log}"));

    let wrong = wrong_code(unix_now(), 180);
    for user in [FORGER, QUOTER] {
        let outcome = login(
            &server,
            &pki,
            "alice",
            &Credentials::File {
                username: user,
                password: &wrong,
            },
        );
        assert!(
            outcome.rejected(),
            "{user:?}: expected AUTH_FAILED; client log:\n{}",
            outcome.log
        );
        // OpenVPN passes these usernames to the plugin unchanged (it maps only non-printable
        // characters), so the line names the true username.
        let fields = decision_fields(&server, user);
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ip", "reason", "user"], "{fields:?}");
        assert_eq!(fields[0].1, "127.0.0.1", "{fields:?}");
        assert_eq!(fields[1].1, "bad code", "{fields:?}");
        assert_eq!(fields[2].1, user, "{fields:?}");
    }

    fail2ban_matches_the_real_address_only(&server.log_path);
}

fn fail2ban_matches_the_real_address_only(log: &Path) {
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/fail2ban/filter.d/openvpn-motp.conf");
    let output = match Command::new("fail2ban-regex")
        .arg("--out")
        .arg("ip")
        .arg(log)
        .arg(&filter)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!(
                "SKIPPED the fail2ban part: fail2ban-regex cannot run ({e}); \
                 `apt-get install fail2ban` to test the shipped filter"
            );
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fail2ban-regex failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let addresses: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Two wrong codes, both from the client's real address; never the forged one.
    assert_eq!(addresses, ["127.0.0.1", "127.0.0.1"], "{stdout}");
    assert!(!stdout.contains("10.9.9.9"), "{stdout}");
}
