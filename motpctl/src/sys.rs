//! What motpctl asks of the system: random bytes, the host name, users and groups, the clock's
//! synchronisation, and secrets typed on standard input.

use std::fs;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

use nix::sys::termios;
use zeroize::Zeroizing;

use crate::Fail;

/// Bytes from the kernel's random source (getrandom(2), as the plugin's salts).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| format!("cannot read the system's random source (getrandom): {e}"))?;
    Ok(buf)
}

/// A new mOTP secret: 16 lowercase hex characters (64 random bits), as phone apps make them.
pub fn random_secret() -> Result<String, Fail> {
    Ok(random_bytes(8)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A new 4-digit PIN, uniformly drawn (rejection sampling, so 0000-9999 are equally likely).
pub fn random_pin() -> Result<String, Fail> {
    loop {
        let b = random_bytes(2)?;
        let n = u16::from_be_bytes([b[0], b[1]]);
        if n < 60000 {
            return Ok(format!("{:04}", n % 10000));
        }
    }
}

/// This machine's name, for the issuer of provisioning URIs.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let name = fs::read_to_string(p).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "openvpn".to_owned())
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads `-` arguments from standard input, one line each, in the order given.
pub struct StdinValues {
    lines: Option<std::io::StdinLock<'static>>,
}

impl StdinValues {
    pub fn new() -> StdinValues {
        StdinValues { lines: None }
    }

    /// `value` itself, or the next line of standard input if it is `-`.
    pub fn resolve(&mut self, value: &str, what: &str) -> Result<String, Fail> {
        if value != "-" {
            return Ok(value.to_owned());
        }
        let lines = self.lines.get_or_insert_with(|| std::io::stdin().lock());
        let mut line = String::new();
        let n = lines
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the {what} from standard input: {e}"))?;
        if n == 0 {
            return Err(Fail(format!(
                "the {what} was to be read from standard input (`-`), but it is empty"
            )));
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

/// Reads one secret line from standard input, wiped when dropped, without its line end. On a
/// terminal, `prompt` is written to standard error and the typed text is not echoed (the
/// terminal's settings are restored afterwards, also on an error); otherwise one line is read
/// as it comes (a pipe, a file). Never prints the secret.
pub fn read_secret(prompt: &str, what: &str) -> Result<Zeroizing<String>, Fail> {
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(String::new());
    let read = if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let echo_off = EchoOff::new(&stdin)
            .map_err(|e| format!("cannot turn off the terminal's echo to read the {what}: {e}"))?;
        let read = stdin.lock().read_line(&mut line);
        drop(echo_off);
        read
    } else {
        stdin.lock().read_line(&mut line)
    };
    let n = read.map_err(|e| format!("cannot read the {what} from standard input: {e}"))?;
    if n == 0 {
        return Err(Fail(format!(
            "no {what} on standard input (type it, or give it as one line)"
        )));
    }
    let end = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(end);
    Ok(line)
}

/// The terminal's echo, off until dropped.
struct EchoOff<'a> {
    fd: &'a std::io::Stdin,
    saved: termios::Termios,
}

impl<'a> EchoOff<'a> {
    fn new(fd: &'a std::io::Stdin) -> nix::Result<EchoOff<'a>> {
        let saved = termios::tcgetattr(fd)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(termios::LocalFlags::ECHO);
        // The newline still shows, so the next prompt starts on a line of its own.
        quiet.local_flags.insert(termios::LocalFlags::ECHONL);
        termios::tcsetattr(fd, termios::SetArg::TCSAFLUSH, &quiet)?;
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, termios::SetArg::TCSAFLUSH, &self.saved);
    }
}

/// A local account as OpenVPN runs under it.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Account {
    /// Looks the user up with `id(1)`, which asks NSS like OpenVPN's setuid does.
    pub fn lookup(name: &str) -> Result<Account, String> {
        let run = |flag: &str| -> Result<String, String> {
            let out = Command::new("id")
                .arg(flag)
                .arg("--")
                .arg(name)
                .output()
                .map_err(|e| format!("cannot run `id` to look up user {name}: {e}"))?;
            if !out.status.success() {
                return Err(format!("no such user: {name}"));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let uid = run("-u")?
            .parse()
            .map_err(|_| format!("`id -u {name}` printed no number"))?;
        let primary: u32 = run("-g")?
            .parse()
            .map_err(|_| format!("`id -g {name}` printed no number"))?;
        let mut gids = vec![primary];
        gids.extend(
            run("-G")?
                .split_whitespace()
                .filter_map(|g| g.parse::<u32>().ok())
                .filter(|g| *g != primary),
        );
        Ok(Account {
            name: name.to_owned(),
            uid,
            gids,
        })
    }

    /// Whether this account has all of `want` (an `rwx` mask such as 0o4) on a file with
    /// this owner, group and mode, by the classic permission bits (root may do anything).
    pub fn may(&self, uid: u32, gid: u32, mode: u32, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let bits = if uid == self.uid {
            (mode >> 6) & 7
        } else if self.gids.contains(&gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & want == want
    }
}

/// Whether the kernel clock is synchronised to a time source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockSync {
    Synchronised(&'static str),
    NotSynchronised(&'static str),
    Unknown(String),
}

/// Asks systemd (`timedatectl`), then systemd-timesyncd's flag file.
pub fn clock_sync() -> ClockSync {
    let timedatectl = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .output();
    if let Ok(out) = &timedatectl {
        if out.status.success() {
            match String::from_utf8_lossy(&out.stdout).trim() {
                "yes" => return ClockSync::Synchronised("timedatectl"),
                "no" => return ClockSync::NotSynchronised("timedatectl"),
                _ => {}
            }
        }
    }
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return ClockSync::Synchronised("/run/systemd/timesync/synchronized");
    }
    ClockSync::Unknown(match timedatectl {
        Err(_) => "timedatectl is not installed and /run/systemd/timesync/synchronized \
                   does not exist"
            .to_owned(),
        Ok(_) => "timedatectl could not tell (is systemd running?) and \
                  /run/systemd/timesync/synchronized does not exist"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_the_right_shape() {
        let s = random_secret().unwrap();
        assert_eq!(s.len(), 16);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(s, random_secret().unwrap());
        let p = random_pin().unwrap();
        assert_eq!(p.len(), 4);
        assert!(p.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("alice.b-c_d~"), "alice.b-c_d~");
        assert_eq!(percent_encode("a b:c@é"), "a%20b%3Ac%40%C3%A9");
    }

    #[test]
    fn permission_bits() {
        let a = Account {
            name: "ovpn".into(),
            uid: 100,
            gids: vec![200, 300],
        };
        assert!(a.may(100, 0, 0o600, 4));
        assert!(!a.may(0, 0, 0o600, 4));
        assert!(a.may(0, 300, 0o640, 4));
        assert!(!a.may(0, 300, 0o640, 2));
        assert!(!a.may(0, 400, 0o640, 4));
        assert!(a.may(0, 400, 0o604, 4));
        // The owner class wins even when it has fewer bits than the group.
        assert!(!a.may(100, 200, 0o070, 4));
    }
}
