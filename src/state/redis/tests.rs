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
fn kept_fields_are_encoded_only_when_set() {
    let mut s = UserState::default();
    s.record_accepted(170_000_000, -30);
    // Without them: the five fields of today.
    assert_eq!(encode(&s), "170000000:0:0:-30:170000000");
    s.keep = true;
    assert_eq!(encode(&s), "170000000:0:0:-30:170000000:1:0:0");
    s.record_recovery_use(u32::MAX, 31);
    assert_eq!(
        encode(&s),
        "170000000:0:0:-30:170000000:1:4294967295:2147483648"
    );
    assert_eq!(decode(&encode(&s)), Some(s));
    // No step, or a step without its offset: the offset and recent fields stay empty.
    for s in [
        UserState {
            recovery_set: 5,
            recovery_used: 1,
            keep: true,
            ..UserState::default()
        },
        UserState {
            last_step: Some(9),
            failures: 2,
            keep: true,
            ..UserState::default()
        },
        UserState {
            recovery_set: 5,
            ..UserState::default()
        },
    ] {
        let text = encode(&s);
        assert!(text.contains("::"), "{text}");
        assert_eq!(decode(&text), Some(s), "{text}");
    }
    assert_eq!(
        encode(&UserState {
            keep: true,
            ..UserState::default()
        }),
        ":0:0:::1:0:0"
    );
    for bad in [
        "1:0:0:0:1:2:0:0",
        "1:0:0:0:1:1:-1:0",
        "1:0:0:0:1:1:0:4294967296",
        "1:0:0:0:1:1:0",
        ":0:0:5::1:0:0",
        "1:0:0::1:1:0:0",
        "1:0:0:0:1:1:0:0:0",
        "1:0:0:0:1:true:0:0",
    ] {
        assert_eq!(decode(bad), None, "{bad}");
    }
}

#[test]
fn the_floor_merges_as_the_script_does() {
    use super::fallback::merge_floor;
    let mut redis = UserState::default();
    redis.record_accepted(100, 0);
    redis.record_recovery_use(7, 1);
    let mut local = UserState::default();
    local.record_accepted(103, 0);
    local.record_recovery_use(7, 2);
    merge_floor(&mut redis, &local);
    assert_eq!(redis.last_step, Some(103));
    assert_eq!(redis.recent_steps.as_slice(), &[100, 103]);
    assert_eq!((redis.recovery_set, redis.recovery_used), (7, 0b110));
    // Another set: Redis's stays.
    let mut other = UserState::default();
    other.record_recovery_use(8, 0);
    merge_floor(&mut redis, &other);
    assert_eq!((redis.recovery_set, redis.recovery_used), (7, 0b110));
    // Nothing in Redis: the local one's.
    let mut empty = UserState::default();
    merge_floor(&mut empty, &other);
    assert_eq!(
        (empty.recovery_set, empty.recovery_used, empty.keep),
        (8, 1, true)
    );
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
