//! Child processes for the tests: tools that must be installed, commands that must succeed, and
//! long-running processes killed on drop.

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single wait for OpenVPN may take before the test gives up.
pub const WAIT: Duration = Duration::from_secs(30);

/// Fails early, with the fix, when one of these Debian packages' commands is missing (each
/// tool here is named like its package).
pub fn require(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed; run: apt-get install -y {}",
            tools.join(" ")
        );
    }
}

/// Runs `cmd` to completion; panics (with its stderr) unless it succeeded.
pub(crate) fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback port free right now for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed (and reaped) on drop; or, once [`Proc::follow_daemon`] was called,
/// the daemon it forked (`--daemon`: the started process exits, its child serves).
pub struct Proc {
    child: Child,
    daemon: Option<u32>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc {
            child,
            daemon: None,
        }
    }
    /// From now on stands for the daemon whose pid `pid_file` holds (the daemon writes it
    /// after the started process exited). `false` if the started process failed or no pid
    /// appeared within the harness's wait.
    pub fn follow_daemon(&mut self, pid_file: &Path) -> bool {
        if !self.child.wait().is_ok_and(|status| status.success()) {
            return false;
        }
        let start = Instant::now();
        while start.elapsed() < WAIT {
            let pid = fs::read_to_string(pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            if pid.is_some() {
                self.daemon = pid;
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
    pub fn pid(&self) -> u32 {
        self.daemon.unwrap_or_else(|| self.child.id())
    }
    pub fn has_exited(&mut self) -> bool {
        match self.daemon {
            // Reparented to init, so never reaped by us: gone, or a zombie nobody reaped.
            Some(pid) => fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true),
            None => matches!(self.child.try_wait(), Ok(Some(_))),
        }
    }
    pub fn signal(&self, signal: &str) {
        run(Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]));
    }
    pub fn kill(&mut self) {
        if let Some(pid) = self.daemon {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.has_exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a log file as text (missing file → empty).
pub fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
