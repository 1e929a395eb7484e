//! An admin corrects a phone's offset while OpenVPN runs (live reload of motp.toml), through
//! the C ABI as OpenVPN calls the plugin, on the local store: the phone's next codes are
//! accepted at once (no run of replays, no lock), and the code accepted before the change stays
//! refused although the new window still covers it.

use std::ffi::c_int;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, Plugin};
use motp_harness::openvpn::{unix_now, write_motp_config, TempDir};
use openvpn_plugin_sys as sys;

const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;
const SECRET: &str = "0123456789abcdef";
const PIN: &str = "q7x2";

fn config_text(state: &Path, offset_secs: i64) -> String {
    format!(
        "max_failures = 3\n[state]\ndir = \"{}\"\n\
         [users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\noffset_secs = {offset_secs}\n",
        state.display()
    )
}

fn login(plugin: &Plugin, dir: &Path, code_at: i64) -> c_int {
    let code = code_at_time(SECRET, PIN, code_at).to_hex();
    plugin.auth(&Env::openvpn_auth(dir, "alice", &code).without("auth_control_file"))
}

/// Waits until the plugin has applied the new motp.toml (its `reloaded` line is written at the
/// next call, so a login of a name nobody has makes it flush).
fn wait_for_reload(plugin: &Plugin, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        plugin.auth(&Env::openvpn_auth(dir, "no-such-user", "000000").without("auth_control_file"));
        if plugin.messages().iter().any(|m| m.contains("reloaded")) {
            return;
        }
        assert!(Instant::now() < deadline, "{:#?}", plugin.messages());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lowering_the_offset_by_live_reload_accepts_the_next_codes_and_keeps_used_ones_used() {
    let dir = TempDir::new("abi-offsets");
    let state = dir.path().join("state");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&state)
        .unwrap();
    let config = dir.path().join("motp.toml");
    // The phone was thought to run two minutes ahead.
    write_motp_config(&config, &config_text(&state, 120));
    let plugin = Plugin::open(&config).unwrap_or_else(|e| panic!("{:?}", e.messages()));
    let used = unix_now() + 120;
    assert_eq!(login(&plugin, dir.path(), used), SUCCESS, "before");

    // It was right: the admin sets the offset back to 0.
    write_motp_config(&config, &config_text(&state, 0));
    wait_for_reload(&plugin, dir.path());
    let now = unix_now();
    // More codes than max_failures, one after another: each accepted.
    for i in 0..5 {
        assert_eq!(
            login(&plugin, dir.path(), now + 10 * i),
            SUCCESS,
            "code {i} after the change; {:#?}",
            plugin.messages()
        );
    }
    // The code accepted before the change is inside the new ±180 s window, later than every
    // code accepted since, and still used.
    assert_eq!(login(&plugin, dir.path(), used), ERROR);
    let last = plugin.messages().last().cloned().unwrap_or_default();
    assert!(last.contains("reason=replay"), "{last}");
}
