//! The per-address limit through the C ABI, as OpenVPN calls the plugin: it counts guesses, not
//! refusals that checked no code; an IPv6 client counts per /64; `max_failures_per_ip = 0`
//! turns it off.

use std::ffi::c_int;
use std::os::unix::fs::PermissionsExt;

use motp::engine::code_at_time;
use motp_harness::abi::{Env, Plugin};
use motp_harness::openvpn::TempDir;
use openvpn_plugin_sys as sys;

const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
const ALICE: (&str, &str) = ("0123456789abcdef", "q7x2");
const BOB: (&str, &str) = ("fedcba9876543210", "k4w9z");

fn now() -> i64 {
    motp_harness::openvpn::unix_now()
}

fn code(user: (&str, &str), steps_ahead: i64) -> String {
    code_at_time(user.0, user.1, now() + 10 * steps_ahead).to_hex()
}

struct Setup {
    dir: TempDir,
    plugin: Plugin,
}

impl Setup {
    fn new(label: &str, top: &str) -> Setup {
        let dir = TempDir::new(label);
        let config = dir.path().join("motp.toml");
        std::fs::write(
            &config,
            format!(
                "{top}[state]\nbackend = \"memory\"\n\
                 [users.alice]\nsecret = \"{}\"\npin = \"{}\"\n\
                 [users.bob]\nsecret = \"{}\"\npin = \"{}\"\n",
                ALICE.0, ALICE.1, BOB.0, BOB.1
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let plugin = Plugin::open(&config).unwrap_or_else(|e| panic!("{:?}", e.messages()));
        Setup { dir, plugin }
    }

    /// A login in the call (no deferral) from `ip` (v4 or v6).
    fn login(&self, user: &str, password: &str, ip: &str) -> c_int {
        let env = Env::openvpn_auth(self.dir.path(), user, password)
            .without("auth_control_file")
            .without("untrusted_ip");
        let env = if ip.contains(':') {
            env.with("untrusted_ip6", ip)
        } else {
            env.with("untrusted_ip", ip)
        };
        self.plugin.auth(&env)
    }
}

#[test]
fn a_locked_user_retrying_does_not_lock_the_address_for_everyone() {
    let s = Setup::new(
        "addr-locked-user",
        "max_failures = 3\nmax_failures_per_ip = 20\n",
    );
    let ip = "198.51.100.7";
    for _ in 0..3 {
        assert_eq!(s.login("alice", "000000", ip), ERROR);
    }
    // Alice is locked now; her client retries, well past the address's 20.
    for _ in 0..30 {
        assert_eq!(s.login("alice", &code(ALICE, 0), ip), ERROR);
    }
    assert_eq!(
        s.login("bob", &code(BOB, 0), ip),
        SUCCESS,
        "bob, behind the same address"
    );
}

#[test]
fn ipv6_failures_count_per_64() {
    let s = Setup::new("addr-v6", "max_failures = 1000\nmax_failures_per_ip = 25\n");
    for n in 1..=25 {
        assert_eq!(
            s.login("alice", "000000", &format!("2001:db8:1:2::{n:x}")),
            ERROR
        );
    }
    assert_eq!(
        s.login("bob", &code(BOB, 0), "2001:db8:1:2::ffff"),
        ERROR,
        "another address of the same /64 is locked"
    );
    assert!(s
        .plugin
        .messages()
        .iter()
        .any(|m| m.contains("reason=\"address locked\"") || m.contains("reason=address")));
    assert_eq!(
        s.login("bob", &code(BOB, 0), "2001:db8:1:3::1"),
        SUCCESS,
        "another /64 is not"
    );
}

#[test]
fn zero_max_failures_per_ip_never_locks_an_address() {
    let s = Setup::new("addr-off", "max_failures = 1000\nmax_failures_per_ip = 0\n");
    for _ in 0..200 {
        assert_eq!(s.login("alice", "000000", "203.0.113.9"), ERROR);
    }
    assert_eq!(s.login("bob", &code(BOB, 0), "203.0.113.9"), SUCCESS);
}
