//! A `tracing` layer that hands each event, as one line, to a sink: in OpenVPN that sink is the
//! host's `plugin_log`, so decisions land in OpenVPN's own log and syslog.
//!
//! Fields are written `key=value` after the message. Nothing secret is ever recorded as a
//! field; the layer additionally strips control characters so an attacker-chosen username
//! cannot forge log lines.

use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Where finished log lines go.
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

pub struct SinkLayer {
    sink: Sink,
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = LineBuilder::default();
        event.record(&mut line);
        let mut text = line.message;
        if !line.fields.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&line.fields);
        }
        (self.sink)(*event.metadata().level(), &text);
    }
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
        let clean = sanitize(value);
        if field.name() == "message" {
            self.message = clean;
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={}", field.name(), clean);
        }
    }
}

/// One log line built directly, for the line every login writes: the same `message key=value`
/// form and the same sanitising as the `tracing` layer, without its dispatch, its per-field
/// `String`s and the copies they take (about a microsecond of OpenVPN's event loop per login).
pub struct Line {
    text: String,
}

impl Line {
    pub fn new(message: &str) -> Line {
        let mut text = String::with_capacity(160);
        push_sanitized(&mut text, message);
        Line { text }
    }

    /// Appends ` name=value`, the value sanitised.
    pub fn field(mut self, name: &str, value: impl std::fmt::Display) -> Line {
        self.text.push(' ');
        self.text.push_str(name);
        self.text.push('=');
        let _ = write!(Sanitizing(&mut self.text), "{value}");
        self
    }

    /// Appends ` name=value` for bytes from the env: invalid UTF-8 becomes U+FFFD, control
    /// characters `?`, and at most `max` bytes of the value are shown.
    pub fn bytes_field(mut self, name: &str, value: &[u8], max: usize) -> Line {
        self.text.push(' ');
        self.text.push_str(name);
        self.text.push('=');
        for chunk in value[..value.len().min(max)].utf8_chunks() {
            push_sanitized(&mut self.text, chunk.valid());
            if !chunk.invalid().is_empty() {
                self.text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        self
    }

    pub fn send(self, sink: &Sink, level: Level) {
        sink(level, &self.text);
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A `fmt::Write` that replaces control characters as it writes.
struct Sanitizing<'a>(&'a mut String);

impl std::fmt::Write for Sanitizing<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        push_sanitized(self.0, s);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn events_become_single_sanitized_lines() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let d = dispatch(
            Arc::new(move |level, line: &str| seen.lock().push((level, line.to_owned()))),
            Level::INFO,
        );
        tracing::dispatcher::with_default(&d, || {
            tracing::info!(user = "al\nice", ip = "10.0.0.1", "login accepted");
            tracing::debug!("not shown at info");
            tracing::error!("broken");
        });
        let lines = lines.lock();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            (
                Level::INFO,
                "login accepted user=al?ice ip=10.0.0.1".to_owned()
            )
        );
        assert_eq!(lines[1], (Level::ERROR, "broken".to_owned()));
    }

    #[test]
    fn direct_lines_match_the_layer_and_are_sanitized() {
        let line = Line::new("login rejected")
            .bytes_field("user", b"al\nice\xff\x00x", 64)
            .field("ip", "10.0.0.1")
            .field("until", 5)
            .field("detail", "a\rb");
        assert_eq!(
            line.as_str(),
            "login rejected user=al?ice\u{fffd}?x ip=10.0.0.1 until=5 detail=a?b"
        );
        let long = Line::new("m").bytes_field("user", &[b'a'; 300], 128);
        assert_eq!(long.as_str().len(), "m user=".len() + 128);
    }
}
