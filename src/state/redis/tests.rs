use std::fs;

use super::epoch::{load_epoch_file, new_epoch_id, save_epoch, valid_epoch, EPOCH_FILE};
use super::value::{decode, encode};
use crate::state::UserState;

#[test]
fn encoding_round_trips_and_rejects_foreign_values() {
    for s in [
        UserState::default(),
        UserState {
            last_step: Some(170_000_000),
            failures: 3,
            locked_until: 1_700_000_300,
            ..UserState::default()
        },
        UserState {
            last_step: None,
            failures: 1,
            locked_until: 0,
            ..UserState::default()
        },
        {
            let mut s = UserState::default();
            s.record_accepted(170_000_000, 3600);
            s.record_accepted(169_999_000, -7200);
            s
        },
    ] {
        assert_eq!(decode(&encode(&s)), Some(s));
    }
    assert_eq!(encode(&UserState::default()), "");
    // Written by an older version: no offset, no recent steps.
    assert_eq!(
        decode("170000000:0:0"),
        Some(UserState {
            last_step: Some(170_000_000),
            ..UserState::default()
        })
    );
    for bad in [
        "x",
        "1:2",
        "1:2:3:4",
        "a:1:1",
        "1:-1:0",
        "1:0:0:x:1",
        "1:0:0:0:1,,2",
        ":0:0:0:1",
        "1:0:0:0:1,2,3,4,5,6,7,8,9",
        "+1:0:0",
    ] {
        assert_eq!(decode(bad), None, "{bad}");
    }
}

#[test]
fn the_epoch_file_is_checked_not_trusted() {
    let dir = std::env::temp_dir().join(format!("motp-epoch-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(EPOCH_FILE);
    let epoch = "0123456789abcdef0123456789abcdef";
    assert_eq!(load_epoch_file(&file, "redis://h", "motp:"), Ok(None));
    save_epoch(&file, "redis://h", "motp:", epoch).unwrap();
    assert_eq!(
        load_epoch_file(&file, "redis://h", "motp:"),
        Ok(Some(epoch.to_owned()))
    );
    // Another Redis or prefix: nothing remembered for this one.
    assert_eq!(load_epoch_file(&file, "redis://other", "motp:"), Ok(None));
    fs::write(&file, "garbage\n").unwrap();
    assert!(load_epoch_file(&file, "redis://h", "motp:").is_err());
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
    assert!(load_epoch_file(&file, "redis://h", "motp:").is_err());
    // Saving replaces the link, never writes through it.
    save_epoch(&file, "redis://h", "motp:", epoch).unwrap();
    assert!(fs::symlink_metadata(&file).unwrap().is_file());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn epochs_are_32_lowercase_hex_digits() {
    let id = new_epoch_id().unwrap();
    assert!(valid_epoch(&id), "{id}");
    assert!(!valid_epoch("0123456789ABCDEF0123456789abcdef"));
    assert!(!valid_epoch("short"));
}
