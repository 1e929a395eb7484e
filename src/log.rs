//! A `tracing` layer that hands each event, as one line, to a sink: in OpenVPN that sink is the
//! host's `plugin_log`, so decisions land in OpenVPN's own log and syslog.
//!
//! Fields are written `key=value` after the message, in logfmt: a value is bare unless it is
//! empty or holds a space, `=`, `"`, `\` or a non-printable character; then it is quoted
//! `"..."` with `\"`, `\\`, `\n`, `\r`, `\t` and JSON-style `\uXXXX` escapes ([`push_value`]).
//! So an attacker-chosen username can neither start a new line nor add, end or forge a field
//! (`user="x ip=10.9.9.9 reason=accepted"`); lines name the fixed fields first and the username
//! last. Nothing secret is ever recorded as a field. Messages (the words before the fields) are
//! free text: control characters in them become `?` ([`sanitize`]).
//!
//! **Log lines of the plugin's own threads.** OpenVPN's `plugin_log` may only be called on
//! OpenVPN's thread, so a line logged by a worker or the watcher is sent at once, from that
//! thread, to the local syslog socket ([`Syslog`]: `/dev/log`, identifier `openvpn-motp`,
//! facility authpriv for login decisions and daemon for the rest; non-blocking, a missing
//! socket is said once), and also queued: the next call from OpenVPN (any login, or the close)
//! writes the queued copy to OpenVPN's log, so `--log` files and `--status`-only set-ups still
//! get every line (the queue: [`Queued`]). Lines logged on OpenVPN's thread go to OpenVPN's
//! log only, at once.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

mod call_router;
pub use call_router::CallLog;

/// Where finished log lines go.
pub type Sink = Arc<dyn LogSink>;

/// Where log lines go: OpenVPN's `plugin_log`, the queue of the plugin's own threads, a test's
/// list. Any `Fn(Level, &str)` is one.
pub trait LogSink: Send + Sync {
    fn line(&self, level: Level, line: &str);

    /// A line that is already a C string (a [`Line`]): a C host takes it as it stands.
    fn c_line(&self, level: Level, line: NulTerminated<'_>) {
        self.line(
            level,
            crate::ffi::utf8(line.text()).unwrap_or("(log line was not UTF-8)"),
        );
    }
}

/// Bytes that end in a NUL, for a C host that reads a string up to its first NUL: it never
/// reads past this one. The text of a [`Line`] holds no other.
#[derive(Clone, Copy)]
pub struct NulTerminated<'a>(&'a [u8]);

impl<'a> NulTerminated<'a> {
    pub fn new(bytes: &'a [u8]) -> Option<NulTerminated<'a>> {
        (bytes.last() == Some(&0)).then_some(NulTerminated(bytes))
    }

    /// The bytes with their last NUL.
    pub fn with_nul(self) -> &'a [u8] {
        self.0
    }

    /// The bytes without their last NUL.
    pub fn text(self) -> &'a [u8] {
        &self.0[..self.0.len() - 1]
    }
}

impl<F: Fn(Level, &str) + Send + Sync> LogSink for F {
    fn line(&self, level: Level, line: &str) {
        self(level, line)
    }
}

pub struct SinkLayer {
    sink: Sink,
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        self.sink
            .line(*event.metadata().level(), &event_line(event));
    }
}

/// An event as its line: the message, then its fields in logfmt.
fn event_line(event: &Event<'_>) -> String {
    let mut line = LineBuilder::default();
    event.record(&mut line);
    let mut text = line.message;
    if !line.fields.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&line.fields);
    }
    text
}

#[derive(Default)]
struct LineBuilder {
    message: String,
    fields: String,
}

impl Visit for LineBuilder {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

impl LineBuilder {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = sanitize(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            self.fields.push_str(field.name());
            self.fields.push('=');
            push_value(&mut self.fields, value);
        }
    }
}

/// One log line built directly, for the line every login writes: the same `message key=value`
/// form and the same logfmt values as the `tracing` layer, without its dispatch, its per-field
/// `String`s and the copies they take (docs/performance.md, "Figures behind design choices").
///
/// Built as bytes, every piece UTF-8 (a `&str`, or env bytes that are printable ASCII) and
/// none a NUL (every value is escaped first), in a buffer on the stack: a login's line
/// allocates nothing, and is handed to a C host as it stands, with a NUL after it
/// ([`LogSink::c_line`]). A line longer than that buffer moves to the heap.
pub struct Line {
    inline: [u8; INLINE_LINE],
    /// Bytes of `inline` in use, while the line is there.
    len: usize,
    /// The whole line once it outgrew `inline`; no allocation until then.
    heap: Vec<u8>,
}

/// Room for a login's line on the stack, its NUL included: an address and a username of
/// usual length fit with the fixed fields many times over.
const INLINE_LINE: usize = 256;

impl Line {
    /// `message` is the plugin's own words (a constant), not checked for control characters.
    #[inline(always)]
    pub fn new(message: &'static str) -> Line {
        let mut line = Line {
            inline: [0; INLINE_LINE],
            len: 0,
            heap: Vec::new(),
        };
        // The plugin's messages are a few words: written in place rather than pushed, the
        // line is built where the caller keeps it instead of being copied there.
        let message = message.as_bytes();
        if message.len() < INLINE_LINE {
            line.inline[..message.len()].copy_from_slice(message);
            line.len = message.len();
        } else {
            line.push_on_heap(message);
        }
        line
    }

    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        // `<`: one byte stays free for the NUL of `send`.
        if end < INLINE_LINE && !self.on_heap() {
            self.inline[self.len..end].copy_from_slice(bytes);
            self.len = end;
        } else {
            self.push_on_heap(bytes);
        }
    }

    #[cold]
    fn push_on_heap(&mut self, bytes: &[u8]) {
        if !self.on_heap() {
            self.heap.reserve(2 * INLINE_LINE + bytes.len());
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn push_byte(&mut self, byte: u8) {
        self.push(&[byte]);
    }

    #[inline(always)]
    fn on_heap(&self) -> bool {
        self.heap.capacity() != 0
    }

    #[inline(always)]
    fn text(&self) -> &[u8] {
        if self.on_heap() {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }

    /// Appends ` name=value`, the value in logfmt ([`push_value`]).
    #[inline(always)]
    pub fn field(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Line {
        self.push_name(name);
        self.push_value(&value.to_string());
        self
    }

    /// [`field`](Self::field) for a string: pushed as it is when it needs no quotes (the usual
    /// case), without the formatter.
    #[inline(always)]
    pub fn str_field(&mut self, name: &str, value: &str) -> &mut Line {
        self.push_name(name);
        self.push_value(value);
        self
    }

    /// [`field`](Self::field) for an integer, `+` before a positive one if `signed`, written
    /// without the formatter (one of these is on every login line).
    #[inline(always)]
    pub fn int_field(&mut self, name: &str, value: i64, signed: bool) -> &mut Line {
        self.push_name(name);
        if signed && value >= 0 {
            self.push_byte(b'+');
        }
        if value < 0 {
            self.push_byte(b'-');
        }
        let mut n = value.unsigned_abs();
        if n < 10 {
            // The usual step offset (0, or a step or two).
            self.push_byte(b'0' + n as u8);
            return self;
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
        self
    }

    /// Appends ` name=value` for bytes from the env: invalid UTF-8 becomes U+FFFD, at most `max`
    /// bytes of the value are shown, and the value is written in logfmt ([`push_value`]).
    #[inline(always)]
    pub fn bytes_field(&mut self, name: &str, value: &[u8], max: usize) -> &mut Line {
        self.push_name(name);
        let shown = &value[..value.len().min(max)];
        // The usual value (an address, a plain username): printable ASCII that needs no
        // quotes, hence UTF-8, copied as it is after one scan.
        if !shown.is_empty() && all_plain_ascii(shown) {
            self.push(shown);
            return self;
        }
        self.push_value(&String::from_utf8_lossy(shown));
        self
    }

    #[inline(always)]
    fn push_name(&mut self, name: &str) {
        self.push_byte(b' ');
        self.push(name.as_bytes());
        self.push_byte(b'=');
    }

    /// [`push_value`] into the line.
    fn push_value(&mut self, value: &str) {
        if needs_quotes(value) {
            quote_into(value, |piece| self.push(piece.as_bytes()));
        } else {
            self.push(value.as_bytes());
        }
    }

    /// Hands the line to `sink`, with a NUL after it for a C host (the line itself is
    /// unchanged: it can be sent again, or read with [`as_str`](Self::as_str)).
    pub fn send(&mut self, sink: &Sink, level: Level) {
        if self.on_heap() {
            self.heap.push(0);
            if let Some(line) = NulTerminated::new(&self.heap) {
                sink.c_line(level, line);
            }
            self.heap.pop();
        } else {
            // `push` kept this byte free.
            self.inline[self.len] = 0;
            if let Some(line) = NulTerminated::new(&self.inline[..=self.len]) {
                sink.c_line(level, line);
            }
        }
    }

    pub fn as_str(&self) -> &str {
        // Every piece pushed is UTF-8 (see the type's doc): this cannot fail.
        crate::ffi::utf8(self.text()).unwrap_or("(log line was not UTF-8)")
    }
}

/// Appends `value` as a logfmt value: bare (`alice`, `10.0.0.1`, `+0`) unless it is empty or
/// holds a space, `=`, `"`, `\` or a non-printable character (`is_unprintable`); then quoted
/// and escaped (`"bad code"`, `"x ip=10.9.9.9"`, `"a\"b\\c\n"`), so the value ends exactly at its
/// closing quote.
pub fn push_value(out: &mut String, value: &str) {
    if needs_quotes(value) {
        push_quoted(out, value);
    } else {
        out.push_str(value);
    }
}

/// A byte of a value that can stand bare: printable ASCII but the space, `=`, `"` and `\`.
#[inline(always)]
fn plain_ascii(b: u8) -> bool {
    PLAIN_ASCII[usize::from(b)]
}

/// [`plain_ascii`] as a table: one load per byte of every login line's address and username.
const PLAIN_ASCII: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_graphic() && !matches!(byte, b'=' | b'"' | b'\\');
        b += 1;
    }
    table
};

/// Whether every byte of `bytes` is [`plain_ascii`]: eight bytes at a time
/// ([`word_is_plain_ascii`]), the rest through the table.
#[inline(always)]
fn all_plain_ascii(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let words_plain = words
        .by_ref()
        .all(|w| word_is_plain_ascii(u64::from_le_bytes(w.try_into().unwrap_or_default())));
    words_plain && words.remainder().iter().all(|&b| plain_ascii(b))
}

/// [`plain_ascii`] for the eight bytes of `word` at once, with the usual bit tricks on bytes
/// below 0x80 (checked first): a byte below 0x21 makes `word − 0x21…21` borrow into its top
/// bit, a byte equal to `c` makes `word ^ c…c` hold a zero byte.
#[inline(always)]
fn word_is_plain_ascii(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let has_byte = |c: u8| below(word ^ (ONES * u64::from(c)), 1);
    word & HIGH == 0
        && below(word, 0x21) | has_byte(0x7f) | has_byte(b'=') | has_byte(b'"') | has_byte(b'\\')
            == 0
}

fn needs_quotes(value: &str) -> bool {
    // Printable ASCII other than the four is the usual value (a name, an address, a number):
    // decided on bytes, without decoding characters.
    if all_plain_ascii(value.as_bytes()) {
        return value.is_empty();
    }
    value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, ' ' | '=' | '"' | '\\') || is_unprintable(c))
}

fn push_quoted(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    quote_into(value, |piece| out.push_str(piece));
}

/// `value` quoted and escaped (see [`push_value`]), handed to `put` piece by piece.
fn quote_into(value: &str, mut put: impl FnMut(&str)) {
    put("\"");
    for c in value.chars() {
        match c {
            '"' => put("\\\""),
            '\\' => put("\\\\"),
            '\n' => put("\\n"),
            '\r' => put("\\r"),
            '\t' => put("\\t"),
            c if is_unprintable(c) => {
                // JSON's form: `\u00XX`; beyond the BMP, a UTF-16 surrogate pair.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let mut escape = String::with_capacity(6);
                    let _ = write!(escape, "\\u{unit:04x}");
                    put(&escape);
                }
            }
            c => put(c.encode_utf8(&mut [0u8; 4])),
        }
    }
    put("\"");
}

/// A character a reader could not see or that could move or break the line: control characters
/// (C0, DEL, C1), whitespace other than the space (U+00A0, U+2028 line separator, ...), and the
/// invisible format characters that hide or reorder text (soft hyphen, zero-width characters,
/// bidirectional controls, the BOM, Unicode tags).
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

fn push_sanitized(out: &mut String, text: &str) {
    if !text.chars().any(char::is_control) {
        out.push_str(text);
        return;
    }
    out.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
}

/// Replaces control characters (newlines, NUL, escapes) so one event stays one line.
pub fn sanitize(text: &str) -> String {
    let mut clean = String::with_capacity(text.len());
    push_sanitized(&mut clean, text);
    clean
}

/// A dispatcher that sends every event at or above `max_level` to `sink`.
pub fn dispatch(sink: Sink, max_level: Level) -> tracing::Dispatch {
    let filter = tracing_subscriber::filter::LevelFilter::from_level(max_level);
    tracing::Dispatch::new(
        tracing_subscriber::registry().with(SinkLayer { sink }.with_filter(filter)),
    )
}

/// The local syslog socket (glibc's `_PATH_LOG`; journald and rsyslog listen on it).
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// The identifier (RFC 3164 TAG) of every line sent to syslog: `journalctl -t openvpn-motp`.
pub const SYSLOG_IDENT: &str = "openvpn-motp";
/// Debug builds only (never release builds): a datagram socket to send syslog lines to instead
/// of [`SYSLOG_SOCKET`], so tests never write to the machine's log.
pub const TEST_SYSLOG_ENV: &str = "MOTP_TEST_SYSLOG_SOCKET";

/// `LOG_AUTHPRIV`: the facility of login decisions. They name users and client addresses, and
/// authpriv is the facility for authentication messages with private content (sshd's and
/// sudo's): Debian's rsyslog writes it to /var/log/auth.log (root:adm 0640), Red Hat's to
/// /var/log/secure (0600), never to a world-readable file, and fail2ban reads it there.
const FACILITY_AUTHPRIV: u8 = 10;
/// `LOG_DAEMON`: everything else (reloads, Redis outages), where OpenVPN's own syslog lines go.
const FACILITY_DAEMON: u8 = 3;
/// Longest line sent (RFC 3164 relays may cut at 1024 bytes; rsyslog accepts 8 KiB locally).
const MAX_SYSLOG_LINE: usize = 2048;

/// Sends lines to the local syslog daemon as RFC 3164 datagrams,
/// `<PRI>openvpn-motp[PID]: <line>`, from whatever thread logs them. A send never blocks (the
/// socket is non-blocking: a full daemon queue drops the line), and a socket that is missing
/// (a chroot, a container without syslog) is reported once per failing streak, to the caller.
///
/// The datagram carries no TIMESTAMP (nor HOSTNAME, as glibc's local messages): this code
/// cannot tell local time without unsafe code or a time-zone library, and a UTC time would be
/// off by the zone for a daemon that trusted it. RFC 3164 (4.3.3) has the receiver stamp a
/// message without one; journald and rsyslog's imuxsock (`IgnoreTimestamp`, on by default)
/// stamp local messages with their reception time in any case.
pub struct Syslog {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    pid: u32,
    failing: AtomicBool,
}

impl Syslog {
    /// The socket at [`SYSLOG_SOCKET`], or (debug builds) at `$MOTP_TEST_SYSLOG_SOCKET`. In the
    /// crate's own unit tests, without that variable: nowhere (they never write to the
    /// machine's log).
    pub fn open() -> Syslog {
        match test_socket() {
            Some(path) => Syslog::at(&path),
            None if cfg!(test) => Syslog {
                socket: None,
                path: PathBuf::new(),
                pid: 0,
                failing: AtomicBool::new(true),
            },
            None => Syslog::at(Path::new(SYSLOG_SOCKET)),
        }
    }

    pub fn at(path: &Path) -> Syslog {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .ok();
        Syslog {
            socket,
            path: path.to_owned(),
            pid: std::process::id(),
            failing: AtomicBool::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one line. `Some(message)` when this send starts a streak of failures: the caller
    /// logs it once (elsewhere); later failures are silent until a send succeeds again.
    pub fn send(&self, level: Level, line: &str) -> Option<String> {
        let result = match &self.socket {
            Some(socket) => socket
                .send_to(format_syslog(level, line, self.pid).as_bytes(), &self.path)
                .map(|_| ()),
            None => Err(std::io::Error::other("no socket could be created")),
        };
        match result {
            Ok(()) => {
                self.failing.store(false, Ordering::Relaxed);
                None
            }
            Err(e) => (!self.failing.swap(true, Ordering::Relaxed)).then(|| {
                format!(
                    "cannot send log lines to syslog at {} ({e}); lines of deferred logins and \
                     reloads reach OpenVPN's log only at its next call to the plugin",
                    self.path.display()
                )
            }),
        }
    }
}

/// The test hook's socket path, if set (debug builds only).
pub fn test_socket() -> Option<PathBuf> {
    if cfg!(debug_assertions) {
        std::env::var_os(TEST_SYSLOG_ENV).map(PathBuf::from)
    } else {
        None
    }
}

/// `<PRI>openvpn-motp[PID]: line`, with `PRI` = facility × 8 + severity; at most
/// [`MAX_SYSLOG_LINE`] bytes of the line.
pub fn format_syslog(level: Level, line: &str, pid: u32) -> String {
    let severity: u8 = match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    };
    let facility = if is_login_line(line) {
        FACILITY_AUTHPRIV
    } else {
        FACILITY_DAEMON
    };
    let mut end = line.len().min(MAX_SYSLOG_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "<{}>{SYSLOG_IDENT}[{pid}]: {}",
        u16::from(facility) * 8 + u16::from(severity),
        &line[..end]
    )
}

/// Worker log lines kept for OpenVPN's thread at most; more are counted and dropped.
const MAX_QUEUED_LOG_LINES: usize = 4096;

#[derive(Default)]
struct LogQueue {
    lines: Vec<(tracing::Level, String)>,
    dropped: usize,
}

impl LogQueue {
    fn push(&mut self, level: tracing::Level, line: &str) {
        if self.lines.len() < MAX_QUEUED_LOG_LINES {
            self.lines.push((level, line.to_owned()));
        } else {
            self.dropped += 1;
        }
    }
}

/// The lines logged on the plugin's own threads (workers, the config watcher), waiting for
/// OpenVPN's thread to write them to OpenVPN's log (see the module doc). Clones share one queue.
#[derive(Clone, Default)]
pub struct Queued(Arc<QueueShared>);

#[derive(Default)]
struct QueueShared {
    queue: Mutex<LogQueue>,
    /// Set after a line is queued, cleared by the flush that takes it: a login with nothing
    /// queued (the usual case) does not take the lock.
    pending: AtomicBool,
}

impl Queued {
    /// The sink of the plugin's own threads: a line goes to syslog now, from that thread (never
    /// blocking), and into this queue for OpenVPN's log at its next call.
    pub fn thread_sink(&self) -> Sink {
        let shared = self.0.clone();
        let syslog = Syslog::open();
        Arc::new(move |level, line: &str| {
            let trouble = syslog.send(level, line);
            let mut q = shared.queue.lock();
            q.push(level, line);
            if let Some(trouble) = trouble {
                q.push(tracing::Level::WARN, &trouble);
            }
            shared.pending.store(true, Ordering::Release);
        })
    }

    /// Writes the lines queued since the last call to `sink`. OpenVPN's thread only.
    pub fn flush(&self, sink: &Sink) {
        // A plain load first: the usual call finds nothing queued, and a swap is a locked
        // read-modify-write on every call (twice per login).
        if !self.0.pending.load(Ordering::Relaxed) || !self.0.pending.swap(false, Ordering::Acquire)
        {
            return;
        }
        let (lines, dropped) = {
            let mut q = self.0.queue.lock();
            (std::mem::take(&mut q.lines), std::mem::take(&mut q.dropped))
        };
        for (level, line) in lines {
            sink.line(level, &line);
        }
        if dropped > 0 {
            sink.line(
                tracing::Level::WARN,
                &format!("{dropped} log lines of worker threads were dropped (too many at once)"),
            );
        }
    }
}

/// A decision about one login (`login accepted|rejected ...`, `asked for the code ...`): the
/// line starts with the plugin's own words; user-chosen text only follows a field name.
fn is_login_line(line: &str) -> bool {
    line.starts_with("login ") || line.starts_with("asked for the code")
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
