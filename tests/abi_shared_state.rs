//! Two plugin instances (two handles from the `.so`, as two OpenVPN processes would hold) share
//! one local state directory: the same code offered to both at the same moment is accepted
//! exactly once, and a lock recorded by one holds on the other and after a reopen.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, Plugin};

const SECRET: &str = "5a5a5a5a5a5a5a5a";
const PIN: &str = "pq7w";
const SUCCESS: i32 = 0;

fn setup(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("motp-abi-shared-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let config = dir.join("motp.toml");
    std::fs::write(
        &config,
        format!(
            "max_failures = 3\nlockout_secs = 300\n[state]\ndir = \"{}\"\n\
             [users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

fn offer(plugin: &Plugin, tmp: &Path, code: &str) -> i32 {
    plugin.auth(&Env::openvpn_auth(tmp, "alice", code))
}

#[test]
fn a_code_raced_through_two_instances_is_accepted_once() {
    let dir = setup("race");
    let now = motp::clock::now();
    // 18 distinct codes of the window's future steps, each offered by both instances at once.
    let codes: Vec<String> = (1..=18)
        .map(|i| code_at_time(SECRET, PIN, now + 10 * i).to_hex())
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, codes, barrier) = (dir.clone(), codes.clone(), barrier.clone());
            std::thread::spawn(move || {
                let plugin =
                    Plugin::open(&dir.join("motp.toml")).unwrap_or_else(|e| panic!("{e:?}"));
                codes
                    .iter()
                    .map(|code| {
                        barrier.wait();
                        offer(&plugin, &dir.join("tmp"), code) == SUCCESS
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let results: Vec<Vec<bool>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for (i, code_results) in results[0].iter().zip(&results[1]).enumerate() {
        let accepted = usize::from(*code_results.0) + usize::from(*code_results.1);
        assert_eq!(accepted, 1, "code {i} was accepted {accepted} times");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lock_from_one_instance_holds_on_the_other_and_after_reopen() {
    let dir = setup("lock");
    let tmp = dir.join("tmp");
    let config = dir.join("motp.toml");
    let a = Plugin::open(&config).unwrap_or_else(|e| panic!("{e:?}"));
    let b = Plugin::open(&config).unwrap_or_else(|e| panic!("{e:?}"));
    let now = motp::clock::now();
    let valid: Vec<String> = (-20..=20)
        .map(|i| code_at_time(SECRET, PIN, now + 10 * i).to_hex())
        .collect();
    let wrong = (0u32..)
        .map(|n| format!("{n:06x}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    assert_ne!(offer(&a, &tmp, &wrong), SUCCESS);
    assert_ne!(offer(&b, &tmp, &wrong), SUCCESS);
    assert_ne!(offer(&a, &tmp, &wrong), SUCCESS);
    let good = code_at_time(SECRET, PIN, now).to_hex();
    assert_ne!(
        offer(&b, &tmp, &good),
        SUCCESS,
        "locked on b after failures spread over a and b"
    );
    assert!(
        b.messages().iter().any(|m| m.contains("reason=locked")),
        "{:#?}",
        b.messages()
    );
    drop(a);
    drop(b);
    let c = Plugin::open(&config).unwrap_or_else(|e| panic!("{e:?}"));
    assert_ne!(
        offer(&c, &tmp, &good),
        SUCCESS,
        "still locked after a reopen (SIGHUP)"
    );
    assert!(
        c.messages().iter().any(|m| m.contains("reason=locked")),
        "{:#?}",
        c.messages()
    );
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}
