//! Through the ABI, as OpenVPN calls it: while any user has a static password, every login is
//! answered `DEFERRED` (Argon2id runs on the plugin's worker, never on OpenVPN's thread), and
//! the worker writes the right answer into `auth_control_file`. A table without passwords
//! decides TOTP logins in the call.

mod redis_setup;

use std::os::unix::fs::PermissionsExt;

use motp::engine::{base32, Totp};
use motp::secret_hash;
use motp_harness::abi::{Env, Plugin};
use motp_harness::temp::TempDir;
use redis_setup::{alice_code, now, ALICE_PIN, ALICE_SECRET, ANSWER, DEFERRED, ERROR, SUCCESS};

const KEY: &[u8] = b"12345678901234567890";

fn totp_code(at: i64) -> String {
    let totp = Totp::default();
    format!("{:06}", totp.value_at_step(KEY, totp.step_of(at) as u64))
}

fn open(dir: &TempDir, extra_users: &str) -> Plugin {
    let config = dir.path().join("motp.toml");
    let text = format!(
        "max_failures = 50\nmax_failures_per_ip = 0\n\
         [users.alice]\nsecret = \"{ALICE_SECRET}\"\npin = \"{ALICE_PIN}\"\n\
         [users.tina]\nkind = \"totp\"\nsecret = \"{}\"\n{extra_users}\
         [state]\nbackend = \"memory\"\n",
        base32::encode(KEY)
    );
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    Plugin::open(&config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
}

/// The call's answer must be DEFERRED; then the answer the worker wrote.
fn deferred(plugin: &Plugin, env: &Env) -> bool {
    assert_eq!(plugin.auth(env), DEFERRED, "{:#?}", plugin.messages());
    env.wait_for_control(ANSWER)
        .expect("no answer in auth_control_file")
}

#[test]
fn with_a_password_user_every_login_is_deferred_and_answered_right() {
    let dir = TempDir::new("abi-tokens-deferred");
    let hash = secret_hash::hash_password(b"hunter2");
    let plugin = open(
        &dir,
        &format!(
            "[users.pat]\nkind = \"totp\"\nsecret = \"{}\"\npassword = \"{hash}\"\n",
            base32::encode(KEY)
        ),
    );
    let env = |user: &str, password: &str| Env::openvpn_auth(dir.path(), user, password);
    let code = totp_code(now());
    // Every user, with or without a password, accepted or not: DEFERRED, then the answer.
    assert!(deferred(&plugin, &env("pat", &format!("hunter2{code}"))));
    assert!(
        !deferred(&plugin, &env("pat", &format!("hunter2{code}"))),
        "replay"
    );
    assert!(!deferred(
        &plugin,
        &env("pat", &format!("hunter3{}", totp_code(now() + 30)))
    ));
    assert!(deferred(&plugin, &env("tina", &code)));
    assert!(deferred(&plugin, &env("alice", &alice_code(0))));
    assert!(!deferred(&plugin, &env("nobody", "123456")));
}

#[test]
fn without_password_users_token_kinds_are_decided_in_the_call() {
    let dir = TempDir::new("abi-tokens-in-call");
    let plugin = open(&dir, "");
    let env = |user: &str, password: &str| Env::openvpn_auth(dir.path(), user, password);
    let code = totp_code(now());
    assert_eq!(plugin.auth(&env("tina", &code)), SUCCESS);
    assert_eq!(plugin.auth(&env("tina", &code)), ERROR);
    assert_eq!(plugin.auth(&env("alice", &alice_code(0))), SUCCESS);
}

/// Two plugin instances on one Redis, as two servers: an HOTP counter and a recovery code
/// used through one are used for the other.
#[test]
fn hotp_counters_and_recovery_uses_are_shared_on_redis() {
    let _serial = redis_setup::serial();
    let redis_dir = TempDir::new("abi-tokens-redis-server");
    let redis = motp_harness::openvpn::RedisServer::start(redis_dir.path());
    let codes = secret_hash::generate_recovery_codes(2);
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| {
            let normalized = secret_hash::normalize_recovery_code(c.as_bytes()).unwrap();
            format!("\"{}\"", secret_hash::hash_recovery_code(&normalized))
        })
        .collect();
    let open_on_redis = |dir: &TempDir| {
        let config = dir.path().join("motp.toml");
        let text = format!(
            "max_failures = 50\nmax_failures_per_ip = 0\n\
             [users.hank]\nkind = \"hotp\"\nsecret = \"{}\"\nrecovery_codes = [{}]\n\
             [state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\ndir = \"{}\"\n",
            base32::encode(KEY),
            hashes.join(", "),
            redis.url(),
            dir.path().join("state").display()
        );
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        Plugin::open(&config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
    };
    let (dir_a, dir_b) = (TempDir::new("abi-tokens-a"), TempDir::new("abi-tokens-b"));
    let (a, b) = (open_on_redis(&dir_a), open_on_redis(&dir_b));
    let on = |plugin: &Plugin, dir: &TempDir, password: &str| {
        deferred(plugin, &Env::openvpn_auth(dir.path(), "hank", password))
    };
    let hotp = |counter| motp::engine::hotp_text(KEY, counter, motp::engine::Algorithm::Sha1, 6);
    assert!(on(&a, &dir_a, &hotp(0)), "counter 0 on A");
    assert!(!on(&b, &dir_b, &hotp(0)), "counter 0 again, on B");
    assert!(on(&b, &dir_b, &hotp(1)), "counter 1 on B");
    assert!(!on(&a, &dir_a, &hotp(1)), "counter 1 again, on A");
    assert!(on(&a, &dir_a, &codes[0]), "recovery code on A");
    assert!(!on(&b, &dir_b, &codes[0]), "the same recovery code on B");
    assert!(on(&b, &dir_b, &codes[1]), "the other recovery code on B");
    // The key holding the counter and the uses never expires.
    let ttl = redis.command(&["TTL", "motp:user:hank"]).unwrap();
    assert_eq!(ttl, ":-1\r\n");
}
