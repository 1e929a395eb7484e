//! A client's management interface, played as the user and the GUI would: the answers to a
//! static challenge and to a crtext prompt.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::b64;
use crate::process::WAIT;

/// A connection to a client's management interface (as a GUI would hold it).
struct Management {
    sock: PathBuf,
    writer: UnixStream,
    lines: std::io::Lines<BufReader<UnixStream>>,
}

impl Management {
    /// Connects, waiting for the client to open the socket.
    fn connect(sock: &Path) -> Management {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > WAIT => {
                    panic!("management socket {} never came up: {e}", sock.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(WAIT)).expect("set timeout");
        let writer = stream.try_clone().expect("clone socket");
        Management {
            sock: sock.to_owned(),
            writer,
            lines: BufReader::new(stream).lines(),
        }
    }

    /// Reads lines until one starts with `prefix`, and returns it.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.next() {
                Some(Ok(line)) if line.starts_with(prefix) => return line,
                Some(Ok(_)) => continue,
                _ => panic!(
                    "management interface closed before `{prefix}` on {}",
                    self.sock.display()
                ),
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.writer, "{command}")
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.sock.display()));
    }
}

/// Plays the user (and the GUI) at the client's management interface for a static
/// challenge: sends `username` and `answer` (an SCRV1 string, or for `concat` the password and
/// code as typed). Returns the prompt line (`...SC:<flags>,<text>`).
pub(super) fn answer_static_challenge(sock: &Path, username: &str, answer: &str) -> String {
    let mut m = Management::connect(sock);
    let prompt = m.wait_for(">PASSWORD:Need 'Auth' username/password SC:");
    m.send(&format!("username \"Auth\" \"{username}\""));
    m.wait_for("SUCCESS: 'Auth' username");
    m.send(&format!("password \"Auth\" \"{answer}\""));
    m.wait_for("SUCCESS: 'Auth' password");
    prompt
}

/// Plays the user (and the GUI) for a crtext prompt: releases the hold, waits for the
/// `CR_TEXT` prompt the server sent, answers it. Returns the prompt line.
pub(super) fn answer_crtext(sock: &Path, code: &str) -> String {
    let mut m = Management::connect(sock);
    m.wait_for(">HOLD:");
    m.send("hold release");
    let prompt = m.wait_for(">INFOMSG:CR_TEXT:");
    m.send(&format!("cr-response {}", b64(code.as_bytes())));
    // The 2.6 client sends the answer as a control message and confirms nothing here.
    prompt
}
