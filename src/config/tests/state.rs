//! `[state]`: the backends, their defaults, and every refusal of their keys (never showing a
//! Redis URL, which may carry a password).

use std::path::Path;

use super::*;

#[test]
fn unknown_state_backend_is_refused() {
    assert_names(
        &refused("[state]\nbackend = \"floppy\"\n"),
        2,
        "state.backend",
    );
}

#[test]
fn state_defaults_to_local_in_var_lib() {
    let local = |dir: &str| StateConfig::Local { dir: dir.into() };
    assert_eq!(parse("").unwrap().state, local(DEFAULT_STATE_DIR));
    assert_eq!(parse("[state]\n").unwrap().state, local(DEFAULT_STATE_DIR));
    assert_eq!(
        parse("[state]\nbackend = \"local\"\n").unwrap().state,
        local(DEFAULT_STATE_DIR)
    );
    assert_eq!(
        parse("[state]\nbackend = \"local\"\ndir = \"/srv/motp\"\n")
            .unwrap()
            .state,
        local("/srv/motp")
    );
    assert_eq!(
        parse("[state]\ndir = \"/srv/motp\"\n").unwrap().state,
        local("/srv/motp")
    );
    assert_eq!(
        parse("[state]\nbackend = \"memory\"\n").unwrap().state,
        StateConfig::Memory
    );
}

#[test]
fn bad_state_dir_is_refused() {
    for dir in ["relative/dir", "", "/", "/var/lib/\\u0007x"] {
        let e = refused(&format!("[state]\ndir = \"{dir}\"\n"));
        assert_names(&e, 2, "state.dir");
        assert!(e.message.contains("absolute path"), "{e}");
    }
    let e = refused("[state]\nbackend = \"memory\"\n\ndir = \"/srv/motp\"\n");
    assert_names(&e, 4, "state.dir");
    assert!(e.message.contains("only applies"), "{e}");
    assert_names(&refused("[state]\nbackend = 3\n"), 2, "state.backend");
    assert_names(
        &refused("[state]\ndirectory = \"/x\"\n"),
        2,
        "state.directory",
    );
}

#[test]
fn redis_state_is_parsed_with_defaults() {
    let c = parse("[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\n").unwrap();
    let StateConfig::Redis(r) = &c.state else {
        panic!("{:?}", c.state)
    };
    assert_eq!(r.key_prefix, DEFAULT_REDIS_KEY_PREFIX);
    assert_eq!(r.timeout_ms, DEFAULT_REDIS_TIMEOUT_MS);
    assert_eq!(r.fallback_dir, None);
    assert_eq!(r.password_file, None);
    assert_eq!(r.describe(), "redis://127.0.0.1:6379/2");
    assert!(!c.crtext_prompt);

    let c = parse(
        "crtext_prompt = true\n[state]\nbackend = \"redis\"\n\
         url = \"rediss://:hunter2@redis.example:6380/0\"\npassword_file = \"/etc/openvpn/redis.pw\"\n\
         key_prefix = \"vpn1:\"\ntimeout_ms = 250\nfallback = \"local\"\ndir = \"/srv/motp\"\n",
    )
    .unwrap();
    assert!(c.crtext_prompt);
    let StateConfig::Redis(r) = &c.state else {
        panic!()
    };
    assert_eq!(r.key_prefix, "vpn1:");
    assert_eq!(r.timeout_ms, 250);
    assert_eq!(r.fallback_dir.as_deref(), Some(Path::new("/srv/motp")));
    assert_eq!(r.describe(), "rediss://redis.example:6380/0");
    assert_eq!(r.ca_file, None);
    let c = parse(
        "[state]\nbackend = \"redis\"\nurl = \"rediss://redis.example:6380/0\"\n\
         ca_file = \"/etc/openvpn/redis-ca.pem\"\n",
    )
    .unwrap();
    let StateConfig::Redis(r) = &c.state else {
        panic!()
    };
    assert_eq!(
        r.ca_file.as_deref(),
        Some(Path::new("/etc/openvpn/redis-ca.pem"))
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");

    let c =
        parse("[state]\nbackend = \"redis\"\nurl = \"redis://h\"\nfallback = \"local\"\n").unwrap();
    let StateConfig::Redis(r) = &c.state else {
        panic!()
    };
    assert_eq!(
        r.fallback_dir.as_deref(),
        Some(Path::new(DEFAULT_STATE_DIR))
    );
}

#[test]
fn redis_sentinel_and_min_replicas() {
    let c = parse(
        "[state]\nbackend = \"redis\"\n\
         sentinels = [\"redis://:pw-secret@10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]\n\
         master_name = \"vpn\"\nmin_replicas = 1\n",
    )
    .unwrap();
    let StateConfig::Redis(r) = &c.state else {
        panic!()
    };
    assert_eq!(r.sentinels.len(), 2);
    assert_eq!(r.master_name.as_deref(), Some("vpn"));
    assert_eq!(r.min_replicas, 1);
    assert!(r.url.is_empty());
    assert!(!r.tls());
    let shown = r.describe();
    assert_eq!(
        shown,
        "master vpn via sentinels redis://10.0.0.1:26379/0,redis://10.0.0.2:26379/0"
    );
    assert!(!format!("{c:?}").contains("pw-secret"));

    let r = "[state]\nbackend = \"redis\"\n";
    let s = "sentinels = [\"redis://h:26379\"]\n";
    assert_names(&refused(&format!("{r}{s}")), 3, "state.sentinels");
    assert_names(
        &refused(&format!("{r}url = \"redis://h\"\n{s}master_name = \"m\"\n")),
        3,
        "state.url",
    );
    assert_names(
        &refused(&format!("{r}url = \"redis://h\"\nmaster_name = \"m\"\n")),
        4,
        "state.master_name",
    );
    assert_names(
        &refused(&format!("{r}sentinels = []\nmaster_name = \"m\"\n")),
        3,
        "state.sentinels",
    );
    assert_names(
        &refused(&format!(
            "{r}sentinels = [\"redis://a:1\", \"rediss://b:2\"]\nmaster_name = \"m\"\n"
        )),
        3,
        "state.sentinels",
    );
    assert_names(
        &refused(&format!("{r}{s}master_name = \"two words\"\n")),
        4,
        "state.master_name",
    );
    assert_names(
        &refused(&format!("{r}url = \"redis://h\"\nmin_replicas = 17\n")),
        4,
        "state.min_replicas",
    );
    assert_names(
        &refused("[state]\nmin_replicas = 1\n"),
        2,
        "state.min_replicas",
    );
}

#[test]
fn bad_redis_state_is_refused_without_showing_the_url() {
    let r = "[state]\nbackend = \"redis\"\n";
    assert_names(&refused(r), 2, "state.url");
    for url in [
        "http://:pw-secret@h/",
        "redis//pw-secret",
        "redis://:pw-secret@h:notaport/",
    ] {
        let e = refused(&format!("{r}url = \"{url}\"\n"));
        assert_names(&e, 3, "state.url");
        assert!(!e.to_string().contains("pw-secret"), "{e}");
    }
    let u = "url = \"redis://127.0.0.1\"\n";
    assert_names(
        &refused(&format!("{r}{u}timeout_ms = 0\n")),
        4,
        "state.timeout_ms",
    );
    assert_names(
        &refused(&format!("{r}{u}timeout_ms = 60000\n")),
        4,
        "state.timeout_ms",
    );
    assert_names(
        &refused(&format!("{r}{u}key_prefix = \"a b\"\n")),
        4,
        "state.key_prefix",
    );
    assert_names(
        &refused(&format!("{r}{u}fallback = \"disk\"\n")),
        4,
        "state.fallback",
    );
    assert_names(
        &refused(&format!("{r}{u}password_file = \"rel\"\n")),
        4,
        "state.password_file",
    );
    // `dir` is where a Redis server remembers the data epoch; relative paths are refused.
    assert_names(&refused(&format!("{r}{u}dir = \"srv\"\n")), 4, "state.dir");
    let c = parse(&format!("{r}{u}dir = \"/srv\"\n")).unwrap();
    let StateConfig::Redis(redis) = &c.state else {
        panic!()
    };
    assert_eq!(
        (redis.dir.as_path(), redis.fallback_dir.as_deref()),
        (Path::new("/srv"), None)
    );
    // ca_file: TLS URLs only, an absolute path, and never outside the redis backend.
    let e = refused(&format!("{r}{u}ca_file = \"/etc/ca.pem\"\n"));
    assert_names(&e, 4, "state.ca_file");
    assert!(e.message.contains("rediss://"), "{e}");
    let tls = "url = \"rediss://127.0.0.1\"\n";
    let relative = refused(&format!("{r}{tls}ca_file = \"ca.pem\"\n"));
    assert!(
        !relative.message.contains("  "),
        "one space between words: {relative}"
    );
    assert_names(&relative, 4, "state.ca_file");
    assert_names(
        &refused("[state]\nbackend = \"memory\"\nca_file = \"/etc/ca.pem\"\n"),
        3,
        "state.ca_file",
    );
    assert_names(&refused(&format!("{r}{u}host = \"x\"\n")), 4, "state.host");
    assert_names(
        &refused("[state]\nbackend = \"local\"\nurl = \"redis://h\"\n"),
        3,
        "state.url",
    );
    assert_names(&refused("[state]\ntimeout_ms = 5\n"), 2, "state.timeout_ms");
    assert_names(&refused("crtext_prompt = \"yes\"\n"), 1, "crtext_prompt");
}
