//! Reading the file: its mode, its owners and those of the directories above it, and a FIFO in
//! its place.

use std::fs;
use std::path::PathBuf;

use super::*;

#[test]
fn world_readable_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("motp-config-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("motp.toml");
    fs::write(&file, GOOD).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::load(&file).unwrap_err();
    assert!(e.to_string().contains("chmod 0640"), "{e}");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(Config::load(&file).unwrap().users.len(), 2);
    let e = Config::load(&dir.join("missing.toml")).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
    fs::remove_dir_all(&dir).unwrap();
}

/// A directory of its own under the temp dir, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(label: &str) -> ConfigDir {
        let dir = std::env::temp_dir().join(format!("motp-config-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        ConfigDir(dir)
    }
    fn file(&self, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let file = self.0.join("motp.toml");
        fs::write(&file, GOOD).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        file
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_config_others_could_change_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ConfigDir::new("writable");
    let file = dir.file(0o660);
    let e = Config::load(&file).unwrap_err().to_string();
    assert!(e.contains("writable by its group"), "{e}");
    assert!(e.contains(&format!("chmod go-w {}", file.display())), "{e}");

    let file = dir.file(0o640);
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    let e = Config::load(&file).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{} is a directory", dir.0.display())),
        "{e}"
    );
    assert!(e.contains("chmod go-w"), "{e}");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Config::load(&file).is_ok());
}

#[test]
fn a_config_owned_by_the_runtime_user_is_refused_when_root_started() {
    let dir = ConfigDir::new("owner");
    let file = dir.file(0o640);
    let me = crate::os::effective_uid();
    if me == 0 {
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.contains("belongs to nobody (uid 65534)"), "{e}");
        assert!(e.contains(&format!("chown root {}", file.display())), "{e}");
    }
    // Loaded by a process running as nobody (after OpenVPN's switch), trusting only root
    // and the user OpenVPN started as (root): refused too.
    let as_root_started = TrustedOwners::root_and(0);
    if me == 0 {
        let e = Config::load_trusting(&file, as_root_started)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only root may own it"), "{e}");
    }
    // OpenVPN started by that user itself (no root anywhere): its own file is fine.
    let own = TrustedOwners::root_and(65534);
    if me == 0 {
        assert!(Config::load_trusting(&file, own).is_ok());
    }
}

#[test]
fn a_fifo_in_place_of_the_config_is_refused_without_waiting() {
    let dir = ConfigDir::new("fifo");
    let fifo = dir.0.join("motp.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A blocking open would wait here for a writer forever.
    let e = Config::load(&fifo).unwrap_err().to_string();
    assert!(e.contains("is not a regular file"), "{e}");
}
