//! Drift tracking with a real OpenVPN server (issue 17): the window follows a phone whose
//! clock runs further and further ahead, within `max_drift_secs`, and what was learned is in
//! the state store, so it survives a SIGHUP.

mod e2e_setup;

use e2e_setup::{alice_code, assert_accepted, assert_rejected, last_decision, Setup};
use motp_harness::openvpn::unix_now;

/// Waits until the phone's next code (at `ahead`) differs from `code`, so each accepted code is
/// a fresh step.
fn next_step(ahead: i64, code: &str) {
    while alice_code(unix_now() + ahead) == code {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn the_window_follows_a_phone_running_ahead_and_remembers_it_across_sighup() {
    let mut s = Setup::start("max_failures = 20", &[]);
    // The phone is 150, then 300, then 450 s ahead: the plugin's clock is moved back instead.
    for ahead in [150, 300, 450] {
        let code = alice_code(unix_now() + ahead);
        let outcome = s.login("alice", "alice", &code);
        assert_accepted(&outcome, &format!("phone {ahead} s ahead"));
        next_step(ahead, &code);
    }
    // 300 s ahead of what was learned: outside the window.
    let outcome = s.login("alice", "alice", &alice_code(unix_now() + 750));
    assert_rejected(&outcome, "phone 750 s ahead");
    assert!(last_decision(&s.server, "alice").contains("reason=\"bad code\""));

    // OpenVPN reloads the plugin; the learned offset is read back from the state store.
    s.server.sighup();
    let code = alice_code(unix_now() + 450);
    let outcome = s.login("alice", "alice", &code);
    assert_accepted(&outcome, "phone 450 s ahead after SIGHUP");
    // And the code accepted just now is used, wherever the window is.
    let outcome = s.login("alice", "alice", &code);
    assert_rejected(&outcome, "the same code again");
    assert!(last_decision(&s.server, "alice").contains("reason=replay"));
}

#[test]
fn the_window_stops_at_max_drift_secs() {
    let s = Setup::start("max_drift_secs = 200", &[]);
    for (ahead, accepted) in [(150, true), (300, true), (560, false)] {
        let code = alice_code(unix_now() + ahead);
        let outcome = s.login("alice", "alice", &code);
        let what = format!("phone {ahead} s ahead");
        if accepted {
            assert_accepted(&outcome, &what);
            next_step(ahead, &code);
        } else {
            // The centre stops at +200: 560 is 360 s beyond it.
            assert_rejected(&outcome, &what);
        }
    }
}
