//! The shipped example config must stay valid, both as shipped (no users) and with its
//! commented-out example user switched on.

use std::path::Path;

fn example() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/motp.toml");
    let text = std::fs::read_to_string(&path).expect("conf/motp.toml exists");
    (path, text)
}

#[test]
fn example_config_is_valid_as_shipped() {
    let (path, text) = example();
    let config = motp::config::Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.users.len(),
        0,
        "the shipped example must not enable a user"
    );
}

#[test]
fn example_user_is_valid_when_uncommented() {
    let (path, text) = example();
    let start = text.find("# [users.alice]").expect("example user present");
    let (head, users) = text.split_at(start);
    // Uncomment the `# key = value` lines (and the table header), keep the prose comments.
    let uncommented: String = users
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest.to_owned(),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = motp::config::Config::parse(&path, &format!("{head}{uncommented}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let alice = config.users.get("alice").expect("alice is defined");
    assert_eq!(alice.key, b"0123456789abcdef1234");
}
