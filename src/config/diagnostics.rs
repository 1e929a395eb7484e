//! How a refusal of motp.toml is worded and located: the error type, the line and dotted key of
//! a byte offset, and parser messages made fit for a log line (one line, never the offending
//! value, which may be a secret or a PIN).

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::MAX_USERNAME_LEN;

/// A config that cannot be used. `Display` gives the one line the admin needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A refusal found while reading the users, before the path and text are at hand to make a
/// [`ConfigError`] of it.
pub(super) struct Refusal {
    pub(super) at: usize,
    pub(super) key: String,
    pub(super) message: String,
}

/// A TOML syntax or type error, located by its span, without the source snippet or the value.
pub(super) fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start);
    ConfigError {
        path: path.to_owned(),
        line: offset.map(|o| line_of(text, o)),
        key: offset
            .and_then(|o| key_at(text, o))
            .map(|k| one_line(&k, MAX_USERNAME_LEN)),
        message: format!("{}{}", safe_parser_message(e.message()), HINT_SYNTAX),
    }
}

const HINT_SYNTAX: &str = " (see conf/motp.toml or motp.toml(5) for the expected format)";

/// The parser's message, fit for a log line: on one line, and without the offending value.
/// Serde's type errors quote the value they met (`invalid type: string "0123…", expected …`),
/// and any value in motp.toml may be a secret or a PIN written in the wrong place, so the
/// "what was found" part is dropped and only "what was expected" is kept.
fn safe_parser_message(message: &str) -> String {
    let message = one_line(message.trim_end(), 512);
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let expected = rest
                .rfind(", expected ")
                .map(|i| &rest[i + 2..])
                .unwrap_or("");
            let what = prefix.trim_end_matches([':', ' ']);
            return if expected.is_empty() {
                what.to_owned()
            } else {
                format!("{what}, {expected}")
            };
        }
    }
    message
}

/// `text` with line breaks turned into "; " and other control characters into '?', cut to
/// `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let joined = text
        .split(['\n', '\r'])
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    crate::log::sanitize(&joined).chars().take(max).collect()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key written on the line holding `offset`: `table.key` for `key = ...` lines, the
/// table name for `[table]` lines. Only the text left of `=` is used, so values never leak.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let header = |l: &str| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .map(|h| h.trim().trim_matches('[').to_owned())
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('#') || !line.contains('=') {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(header);
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

/// Words refusals of a parsed file: each at the line of a byte offset, naming the key.
pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Checker<'_> {
    pub(super) fn error(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: Some(line_of(self.text, offset)),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A numeric key: `default` when it is absent, its value when within `range`, otherwise
    /// refused at its line with `message(value)`.
    pub(super) fn in_range<T: PartialOrd + Copy>(
        &self,
        value: Option<Spanned<T>>,
        key: &str,
        range: RangeInclusive<T>,
        default: T,
        message: impl FnOnce(T) -> String,
    ) -> Result<T, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(v.into_inner()),
            Some(v) => Err(self.error(v.span().start, key, message(*v.get_ref()))),
        }
    }
}

/// A name safe to print in one log line.
pub(super) fn printable(name: &str) -> String {
    crate::log::sanitize(name)
        .chars()
        .take(MAX_USERNAME_LEN)
        .collect()
}
