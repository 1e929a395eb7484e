//! A foreign lock on the local store's database: an `sqlite3` shell (as an admin would run it)
//! inside `BEGIN IMMEDIATE`, so every writer waits for it. Needs the `sqlite3` shell (test.sh
//! installs it).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Holds the write lock of the database at `db` until dropped.
pub struct ForeignLock(Child);

impl ForeignLock {
    pub fn hold(db: &Path) -> ForeignLock {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sqlite3 shell is installed (apt-get install sqlite3)");
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"BEGIN IMMEDIATE;\nSELECT 'locked';\n")
            .expect("write to sqlite3");
        stdin.flush().expect("flush");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read from sqlite3");
        assert_eq!(line.trim(), "locked");
        ForeignLock(child)
    }
}

impl Drop for ForeignLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
