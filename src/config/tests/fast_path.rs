//! The fast path reads exactly what `toml` reads, the same way, and leaves everything else to
//! it.

use std::path::Path;

use super::*;

/// Everything a config holds, keys included, for comparing the two parsers' results.
fn dump(c: &Config) -> String {
    let mut users: Vec<String> = c
        .users
        .names()
        .map(|n| {
            let u = c.users.get(n).unwrap();
            format!(
                "{n:?} {:?} {} {:?} {}",
                u.key, u.offset_secs, u.common_name, u.disabled
            )
        })
        .collect();
    users.sort();
    format!("{:?} {:?} {} {users:?}", c.policy, c.state, c.crtext_prompt)
}

/// Whatever the fast path accepts, `toml` reads the same.
fn fast_agrees(text: &str) -> bool {
    let path = Path::new("/etc/openvpn/motp.toml");
    let Some(fast) = fast::parse(path, text) else {
        return false;
    };
    let slow = Config::parse_toml(path, text)
        .unwrap_or_else(|e| panic!("fast path accepted what toml refuses ({e}):\n{text:?}"));
    assert_eq!(dump(&fast), dump(&slow), "{text:?}");
    true
}

#[test]
fn fast_path_reads_the_usual_shapes_as_toml_does() {
    let example = include_str!("../../../conf/motp.toml");
    let state_last = "window_secs = 60\n# users\n[users.alice]\nsecret = \"0123456789abcdef\"\n\
                      pin = \"1234\"\n\n# Bob\n[users.bob]\n  secret=\"fedcba9876543210\" # x\n\
                      pin = \"4321\"\ncommon_name = \"bob laptop ✓\"\n[state]\n\
                      backend = \"memory\"\n# end of file\n[users.carol]\n\
                      secret = \"0123456789abcdef0123456789ABCDEF\"\npin = \"p!n\"\n\
                      offset_secs = -86400\ndisabled = false";
    for text in [
        GOOD,
        "",
        "# nothing\n",
        example,
        &format!("{example}\n[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n"),
        state_last,
        &state_last.replace('\n', "\r\n"),
        "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"1\"\noffset_secs = +0\n\
         [users.B-_9]\nsecret = \"0123456789abcdef\"\npin = \"x\"\t#\ttab\n",
    ] {
        assert!(fast_agrees(text), "fast path declined:\n{text}");
    }
}

#[test]
fn fast_path_leaves_everything_else_to_toml() {
    let user = "secret = \"0123456789abcdef\"\npin = \"1234\"\n";
    let cases = [
        // TOML errors.
        format!("[users.a]\n{user}[users.a]\n{user}"),
        format!("[users.a]\n{user}pin = \"1\"\n"),
        format!("[users.a]\n{user}[state]\n[state]\n"),
        format!("[state]\n[users.a]\n{user}[state]\n"),
        format!("users = {{}}\n[users.a]\n{user}"),
        format!("[users.a]\n{user}disabled = true # \u{7}\n"),
        format!("[users.a]\n{user}# \u{7f}\n"),
        format!("[users.a]\n{user}\r"),
        format!("[users.a]\n{user}common_name = \"a\rb\"\n"),
        format!("[users.a] x\n{user}"),
        format!("[users.a]]\n{user}"),
        format!("[[users.a]]\n{user}"),
        "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"12\n".to_owned(),
        format!("[users.a]\n{user}offset_secs = 00\n"),
        format!("[users.a]\n{user}offset_secs = 1_0\n"),
        format!("[users.a]\n{user}offset_secs = 0x10\n"),
        format!("[users.a]\n{user}offset_secs = 99999999999999999999\n"),
        format!("[users.a]\n{user}offset_secs = -\n"),
        format!("[users.a]\n{user}disabled = yes\n"),
        format!("[users.a]\n{user}disabled = truex\n"),
        format!("[state]\nurl = \"\"\"\n[users.a]\n{user}\"\"\"\n"),
        format!("x = [\n[users.a]\n{user}]\n"),
        // Valid TOML this path does not read: `toml` decides.
        format!("[users]\n[users.a]\n{user}"),
        format!("[users.\"a\"]\n{user}"),
        format!("[ users.a ]\n{user}"),
        format!("[users.a.b]\n{user}"),
        "users.a.secret = \"0123456789abcdef\"\nusers.a.pin = \"1\"\n".to_owned(),
        format!("\"\\u0075sers\" = {{}}\n[users.a]\n{user}"),
        "[users.a]\nsecret = '0123456789abcdef'\npin = \"1234\"\n".to_owned(),
        "[users.a]\nsecret = \"0123456789abcde\\u0066\"\npin = \"1234\"\n".to_owned(),
        "[users.a]\n\"secret\" = \"0123456789abcdef\"\npin = \"1234\"\n".to_owned(),
        "[users.a]\nsecret = \"\"\"0123456789abcdef\"\"\"\npin = \"1234\"\n".to_owned(),
        format!("[users.a]\n{user}disabled = false\ndisabled = false\n"),
        format!("[users.a]\n{user}common_name = {{ x = 1 }}\n"),
        // Refusals: always worded by the `toml` path.
        format!("[users.a]\n{user}extra = 1\n"),
        "[users.a]\nsecret = \"0123456789abcdef\"\n".to_owned(),
        "[users.a]\nsecret = \"0123\"\npin = \"1\"\n".to_owned(),
        format!("[users.a]\n{user}offset_secs = 86401\n"),
        format!("[users.a]\n{user}common_name = \"\"\n"),
        format!("[users.{}]\n{user}", "u".repeat(MAX_USERNAME_LEN + 1)),
        format!("window_secs = 3601\n[users.a]\n{user}"),
        format!("[users.a]\n{user}[state]\nbackend = \"floppy\"\n"),
    ];
    for text in &cases {
        assert!(!fast_agrees(text), "fast path accepted:\n{text}");
    }
}

fn lines(valid: &[&'static str], odd: &[&'static str]) -> impl Strategy<Value = &'static str> {
    use proptest::sample::select;
    proptest::prop_oneof![8 => select(valid.to_vec()), 1 => select(odd.to_vec())]
}

use proptest::prelude::Strategy;

proptest::proptest! {
    /// Files stitched from lines the fast path reads and lines it must leave to `toml`.
    #[test]
    fn fast_path_never_disagrees_with_toml(
        head in proptest::collection::vec(lines(
            &["window_secs = 60", "crtext_prompt = true", "# comment", ""],
            &["max_failures = 0", "users = {}", "state = {}", "x = 1", "window_secs = ["],
        ), 0..3),
        tables in proptest::collection::vec((
            lines(
                &["[users.alice]", "[users.bob]", "[users.b-o_b9]", " [users.carol] # c",
                  "[state]"],
                &["[users]", "[users.\"alice\"]", "[[users.carol]]", "[users.dave]x",
                  "[users.a.b]", "[ users.erin ]", "[state.x]"],
            ),
            proptest::collection::vec(lines(
                &["secret = \"0123456789abcdef\"", "secret=\"0123456789ABCDEF01\" # s",
                  "pin = \"1234\"", "\tpin = \"p!n\"", "offset_secs = -30",
                  "offset_secs = +30", "common_name = \"alice.example\"", "disabled = true",
                  "disabled = false # off", "backend = \"memory\"", "dir = \"/srv/motp\"",
                  "# comment", "", "  "],
                &["secret = \"0123456789abcdeg\"", "secret = '0123456789abcdef'",
                  "pin = \"12 34\"", "pin = \"\"", "pin = 1234", "pin = \"\\u0031\"",
                  "offset_secs = 030", "offset_secs = 90000", "common_name = \"\"",
                  "disabled = 1", "#\u{1}", "\r", "url = \"\"\"", "\"\"\"", "]", "x = 1"],
            ), 0..6),
        ), 0..5),
        crlf in proptest::bool::ANY,
    ) {
        let mut all: Vec<&str> = head;
        for (header, fields) in tables {
            all.push(header);
            all.extend(fields);
        }
        let text = all.join(if crlf { "\r\n" } else { "\n" });
        fast_agrees(&text);
    }
}
