//! The shipped example config must stay valid.

#[test]
fn example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/motp.toml");
    let text = std::fs::read_to_string(&path).expect("conf/motp.toml exists");
    let config = motp::config::Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.users.len(), 1);
    assert!(config.users.get("alice").is_some());
}
