//! Unit tests of [`super`] (`src/log.rs`).

use super::*;
use parking_lot::Mutex;

#[test]
fn integer_and_string_fields_read_as_the_formatter_writes_them() {
    for (value, signed) in [
        (0, true),
        (7, true),
        (-3, true),
        (i64::MIN, false),
        (i64::MAX, true),
        (1_764_316_800, false),
    ] {
        let mut fast = Line::new("m");
        fast.int_field("n", value, signed);
        let mut slow = Line::new("m");
        if signed {
            slow.field("n", format_args!("{value:+}"));
        } else {
            slow.field("n", value);
        }
        assert_eq!(fast.as_str(), slow.as_str());
    }
    for value in ["bad code", "replay", "", "a\"b", "x=y", "caf\u{e9}"] {
        assert_eq!(
            Line::new("m").str_field("f", value).as_str(),
            Line::new("m").field("f", value).as_str()
        );
        assert_eq!(
            Line::new("m")
                .bytes_field("f", value.as_bytes(), 64)
                .as_str(),
            Line::new("m").field("f", value).as_str()
        );
    }
}

#[test]
fn events_become_single_sanitized_lines() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let d = dispatch(
        Arc::new(move |level, line: &str| seen.lock().push((level, line.to_owned()))),
        Level::INFO,
    );
    tracing::dispatcher::with_default(&d, || {
        tracing::info!(ip = "10.0.0.1", user = "al\nice", "login acc\nepted");
        tracing::debug!("not shown at info");
        tracing::error!("broken");
    });
    let lines = lines.lock();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        (
            Level::INFO,
            "login acc?epted ip=10.0.0.1 user=\"al\\nice\"".to_owned()
        )
    );
    assert_eq!(lines[1], (Level::ERROR, "broken".to_owned()));
}

#[test]
fn direct_lines_match_the_layer_and_are_logfmt() {
    let mut line = Line::new("login rejected");
    line.field("ip", "10.0.0.1")
        .field("until", 5)
        .field("detail", "a\rb")
        .bytes_field("user", b"al\nice\xff\x00x", 64);
    assert_eq!(
        line.as_str(),
        "login rejected ip=10.0.0.1 until=5 detail=\"a\\rb\" user=\"al\\nice\u{fffd}\\u0000x\""
    );
    let mut long = Line::new("m");
    long.bytes_field("user", &[b'a'; 300], 128);
    assert_eq!(long.as_str().len(), "m user=".len() + 128);
    // Invalid UTF-8 alone needs no quotes: U+FFFD is printable.
    let mut lossy = Line::new("m");
    lossy.bytes_field("user", b"a\xffb", 64);
    assert_eq!(lossy.as_str(), "m user=a\u{fffd}b");
}

fn value(v: &str) -> String {
    let mut out = String::new();
    push_value(&mut out, v);
    out
}

#[test]
fn values_are_bare_unless_they_need_quotes() {
    for bare in [
        "alice",
        "10.0.0.1",
        "+0",
        "-2",
        "2001:db8::1",
        "a.b-c_d@e",
        "ümlaut",
    ] {
        assert_eq!(value(bare), bare);
    }
    assert_eq!(value(""), "\"\"");
    assert_eq!(value("bad code"), "\"bad code\"");
    assert_eq!(
        value("x ip=10.9.9.9 reason=accepted"),
        "\"x ip=10.9.9.9 reason=accepted\""
    );
    assert_eq!(value("a=b"), "\"a=b\"");
    assert_eq!(value("a\"b"), "\"a\\\"b\"");
    assert_eq!(value("a\\b"), "\"a\\\\b\"");
    assert_eq!(value("\\\" ip=1.2.3.4"), "\"\\\\\\\" ip=1.2.3.4\"");
    assert_eq!(value("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
    assert_eq!(
        value("\0\x1b\x7f\u{85}"),
        "\"\\u0000\\u001b\\u007f\\u0085\""
    );
    assert_eq!(value("a\u{2028}b\u{202e}c"), "\"a\\u2028b\\u202ec\"");
    assert_eq!(value("a\u{a0}b"), "\"a\\u00a0b\"");
    assert_eq!(value("\u{e0041}"), "\"\\udb40\\udc41\"");
    // The field's own text cannot be confused with a field of the line: `Line` and the layer
    // agree, and the value ends at its closing quote.
    let mut line = Line::new("login rejected");
    line.field("ip", "127.0.0.1")
        .field("reason", "bad code")
        .field("user", "x\" reason=accepted");
    assert_eq!(
        line.as_str(),
        "login rejected ip=127.0.0.1 reason=\"bad code\" user=\"x\\\" reason=accepted\""
    );
}

#[test]
fn syslog_lines_are_rfc3164_with_the_facility_of_their_kind() {
    assert_eq!(
        format_syslog(Level::INFO, "login accepted ip=10.0.0.1 user=alice", 42),
        "<86>openvpn-motp[42]: login accepted ip=10.0.0.1 user=alice"
    );
    assert_eq!(
        format_syslog(Level::WARN, "login rejected reason=replay user=x", 7),
        "<84>openvpn-motp[7]: login rejected reason=replay user=x"
    );
    assert_eq!(
        format_syslog(Level::ERROR, "redis at x unreachable", 7),
        "<27>openvpn-motp[7]: redis at x unreachable"
    );
    assert_eq!(
        format_syslog(Level::INFO, "reloaded /etc/openvpn/motp.toml", 7),
        "<30>openvpn-motp[7]: reloaded /etc/openvpn/motp.toml"
    );
    let long = "é".repeat(MAX_SYSLOG_LINE);
    let sent = format_syslog(Level::INFO, &long, 1);
    assert!(sent.len() <= "<30>openvpn-motp[1]: ".len() + MAX_SYSLOG_LINE);
}

#[test]
fn syslog_sends_without_blocking_and_says_a_missing_socket_once() {
    let dir = std::env::temp_dir().join(format!("motp-syslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let missing = Syslog::at(&path);
    let first = missing.send(Level::INFO, "login accepted user=a");
    assert!(
        first.as_deref().is_some_and(|m| m.contains("log.sock")),
        "{first:?}"
    );
    assert_eq!(missing.send(Level::INFO, "login accepted user=b"), None);

    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver.set_nonblocking(true).unwrap();
    assert_eq!(missing.send(Level::INFO, "login accepted user=c"), None);
    let mut buf = [0u8; 4096];
    let n = receiver.recv(&mut buf).unwrap();
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap()
        .ends_with("]: login accepted user=c"));
    // Nobody reads: the daemon's queue fills and lines are dropped, the sender never waits.
    let started = std::time::Instant::now();
    let mut said = 0;
    for _ in 0..10_000 {
        said += usize::from(missing.send(Level::INFO, "login accepted user=d").is_some());
    }
    assert!(said <= 1, "a full queue is said at most once per streak");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records what a C host would read: the bytes up to the NUL.
struct CHost(Mutex<Vec<Vec<u8>>>);

impl LogSink for CHost {
    fn line(&self, _: Level, _: &str) {
        panic!("a Line is sent as a C string");
    }
    fn c_line(&self, _: Level, line: NulTerminated<'_>) {
        let bytes = line.with_nul();
        let first_nul = bytes.iter().position(|&b| b == 0);
        assert_eq!(first_nul, Some(bytes.len() - 1), "one NUL, at the end");
        self.0.lock().push(line.text().to_vec());
    }
}

#[test]
fn lines_on_the_stack_and_on_the_heap_reach_a_c_host_whole() {
    let host = Arc::new(CHost(Mutex::new(Vec::new())));
    let sink: Sink = host.clone();
    let mut expected = Vec::new();
    // Around the end of the stack buffer: "m f=" is 4 bytes, " n=7" 4 more.
    for len in (INLINE_LINE - 12..INLINE_LINE + 4).chain([3 * INLINE_LINE]) {
        let value = "v".repeat(len);
        let mut line = Line::new("m");
        line.str_field("f", &value).int_field("n", 7, false);
        let text = format!("m f={value} n=7");
        assert_eq!(line.as_str(), text, "value of {len} bytes");
        line.send(&sink, Level::INFO);
        expected.push(text.into_bytes());
    }
    // An escaped value: the escape of a NUL is text, not a NUL.
    let mut line = Line::new("m");
    line.bytes_field("user", b"a\0b", 64);
    line.send(&sink, Level::INFO);
    expected.push(b"m user=\"a\\u0000b\"".to_vec());
    assert_eq!(*host.0.lock(), expected);
}

#[test]
fn the_word_at_a_time_check_agrees_with_the_table() {
    // Every byte value at every place of a word, and the lengths around a word's.
    for len in [1, 7, 8, 9, 15, 16, 17] {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b;
                assert_eq!(
                    all_plain_ascii(&bytes),
                    plain_ascii(b),
                    "byte {b:#04x} at {at} of {len}"
                );
            }
        }
    }
    // Two unusual bytes in one word, each on its own plain.
    for (a, b) in [
        (b'!', b'~'),
        (0x20, b'~'),
        (b'!', 0x7f),
        (b'<', b'>'),
        (b'[', b']'),
    ] {
        let bytes = [b'x', a, b'y', b, b'z', b'0', b'9', b'.'];
        assert_eq!(all_plain_ascii(&bytes), plain_ascii(a) && plain_ascii(b));
    }
    assert!(all_plain_ascii(b""));
}

#[test]
fn a_line_sent_twice_or_with_a_long_message_stays_whole() {
    let host = Arc::new(CHost(Mutex::new(Vec::new())));
    let sink: Sink = host.clone();
    let long_message: &'static str = Box::leak("m".repeat(2 * INLINE_LINE).into_boxed_str());
    let mut long = Line::new(long_message);
    long.int_field("n", 7, false);
    let mut short = Line::new("m");
    short.str_field("f", &"v".repeat(2 * INLINE_LINE));
    let expected = [long.as_str().to_owned(), short.as_str().to_owned()];
    assert_eq!(expected[0], format!("{long_message} n=7"));
    for line in [&mut long, &mut short] {
        line.send(&sink, Level::INFO);
        line.send(&sink, Level::INFO);
    }
    assert_eq!(long.as_str(), expected[0], "unchanged by sending");
    assert_eq!(short.as_str(), expected[1], "unchanged by sending");
    let sent: Vec<Vec<u8>> = expected
        .iter()
        .flat_map(|line| [line.as_bytes().to_vec(), line.as_bytes().to_vec()])
        .collect();
    assert_eq!(*host.0.lock(), sent);
}
