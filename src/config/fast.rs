//! The fast path of [`Config::parse`](super::Config::parse) for the common shape of a large
//! motp.toml: runs of `[users.NAME]` tables holding `key = value` lines. It reads those runs
//! line by line straight into the user table, and hands every other part of the file (global
//! keys, `[state]`) to `toml`, each such run on its own.
//!
//! It never decides a refusal: on anything it does not know, and on any validation error, it
//! returns `None` and the caller parses the whole file with `toml`, which gives the same answer
//! as before this path existed, with the same messages. So the fast path only has to be right
//! about what it accepts: exactly the files where it yields the same `Config` that `toml` would.
//!
//! Why not a faster generic parser: `toml` lexes the whole file into token and event vectors,
//! then builds a `BTreeMap` document, which for a million users takes several times the time
//! the whole load may take (docs/performance.md, "Config load and memory").

use std::path::Path;

use super::{Config, RawConfig, RawUsers, TableBuilder, UserFields};

/// The config, or `None`: let `toml` decide.
pub(super) fn parse(path: &Path, text: &str) -> Option<Config> {
    let mut reader = Reader {
        text,
        raw: RawConfig::default(),
        users: TableBuilder::default(),
        other_from: Some(0),
        user: None,
    };
    let mut at = 0;
    while at < text.len() {
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        reader.line(at, end)?;
        at = end;
    }
    reader.end_of_run(text.len())?;
    let mut raw = reader.raw;
    raw.users = RawUsers {
        present: true,
        table: reader.users,
        refusal: None,
    };
    raw.validate(path, text).ok()
}

struct Reader<'a> {
    text: &'a str,
    /// The global keys and `[state]`, merged from every run that is not a user table.
    raw: RawConfig,
    users: TableBuilder,
    /// Start of the current run of lines that are not user tables (left to `toml`).
    other_from: Option<usize>,
    /// The user table being read.
    user: Option<PendingUser<'a>>,
}

impl<'a> Reader<'a> {
    /// One line, `text[at..end]`, with its line break.
    fn line(&mut self, at: usize, end: usize) -> Option<()> {
        let text = self.text;
        let line = &text[at..end];
        // A line break is "\n" or "\r\n"; any other "\r" is left in, where it is refused.
        let line = line
            .strip_suffix('\n')
            .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
        let body = line.trim_start_matches(WS);
        if body.starts_with('[') {
            self.end_of_run(at)?;
            match user_header(body) {
                Some(name) => {
                    let name_at = at + (line.len() - body.len()) + "[users.".len();
                    self.user = Some(PendingUser::new(name, name_at));
                }
                // `[state]`, and any header this path does not read: it may be anything, even a
                // `[users...]` header written another way, which `toml` will then report as
                // `users` present (and this path gives up).
                None => self.other_from = Some(at),
            }
            return Some(());
        }
        match &mut self.user {
            Some(user) => user.line(body, at + (line.len() - body.len())),
            None => Some(()),
        }
    }

    /// Ends the current run at `at`: adds the pending user, or parses the other run with `toml`.
    fn end_of_run(&mut self, at: usize) -> Option<()> {
        if let Some(user) = self.user.take() {
            let (name, name_at, fields) = user.finish()?;
            self.users.add(name, name_at, fields).ok()?;
        }
        if let Some(from) = self.other_from.take() {
            let run = &self.text[from..at];
            if !run.is_empty() {
                // A run that ends inside a multi-line construct (a string or an array holding a
                // line that looks like a header) is not valid TOML on its own: `None`.
                let part: RawConfig = toml::from_str(run).ok()?;
                merge(&mut self.raw, part)?;
            }
        }
        Some(())
    }
}

/// Adds the keys of one run to the others'. Runs each parsed on their own are the same document
/// as the whole file only if no key is defined in two of them (the whole file could be invalid,
/// e.g. `[state]` twice) and no run touches `users` (e.g. `users = {}` then `[users.a]`).
fn merge(into: &mut RawConfig, part: RawConfig) -> Option<()> {
    fn one<T>(into: &mut Option<T>, part: Option<T>) -> Option<()> {
        match (&into, part) {
            (Some(_), Some(_)) => None,
            (None, Some(v)) => {
                *into = Some(v);
                Some(())
            }
            (_, None) => Some(()),
        }
    }
    // Destructured whole, so a key added to RawConfig cannot be dropped here unnoticed.
    let RawConfig {
        window_secs,
        max_failures,
        lockout_secs,
        max_failures_per_ip,
        ip_lockout_secs,
        ip_prefix_v4,
        ip_prefix_v6,
        hotp_window,
        max_drift_secs,
        require_common_name,
        crtext_prompt,
        state,
        users,
    } = part;
    if users.present {
        return None;
    }
    one(&mut into.window_secs, window_secs)?;
    one(&mut into.max_failures, max_failures)?;
    one(&mut into.lockout_secs, lockout_secs)?;
    one(&mut into.max_failures_per_ip, max_failures_per_ip)?;
    one(&mut into.ip_lockout_secs, ip_lockout_secs)?;
    one(&mut into.ip_prefix_v4, ip_prefix_v4)?;
    one(&mut into.ip_prefix_v6, ip_prefix_v6)?;
    one(&mut into.hotp_window, hotp_window)?;
    one(&mut into.max_drift_secs, max_drift_secs)?;
    one(&mut into.require_common_name, require_common_name)?;
    one(&mut into.crtext_prompt, crtext_prompt)?;
    one(&mut into.state, state)
}

const WS: [char; 2] = [' ', '\t'];

/// `NAME` of a `[users.NAME]` line (leading blanks already removed) with a bare-key name and
/// nothing after it but blanks and a comment.
fn user_header(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("[users.")?;
    let (name, rest) = bare_key(rest);
    let rest = rest.strip_prefix(']')?;
    (!name.is_empty() && end_of_line(rest)).then_some(name)
}

/// The leading TOML bare key of `s` (`A-Za-z0-9_-`, maybe empty) and the rest.
fn bare_key(s: &str) -> (&str, &str) {
    let len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    s.split_at(len)
}

/// Nothing left but blanks and maybe a comment.
fn end_of_line(rest: &str) -> bool {
    let rest = rest.trim_start_matches(WS);
    rest.is_empty() || rest.strip_prefix('#').is_some_and(comment_ok)
}

/// TOML allows tab and no other control character in a comment.
fn comment_ok(comment: &str) -> bool {
    comment
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
}

/// A basic string `"..."` without escapes at the start of `s`: its content and the rest. With a
/// backslash (an escape), a control character or no closing quote: `None`.
fn basic_string(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('"')?;
    let len = s
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || (b < 0x20 && b != b'\t') || b == 0x7f)?;
    (s.as_bytes()[len] == b'"').then(|| (&s[..len], &s[len + 1..]))
}

/// A decimal integer in TOML's plainest form (`0`, `-30`, `+5`; no `_`, no leading zero, no
/// other base) at the start of `s`, and the rest.
fn integer(s: &str) -> Option<(i64, &str)> {
    let digits_from = usize::from(s.starts_with(['+', '-']));
    let digits = s[digits_from..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let end = digits_from + digits;
    if digits == 0 || (digits > 1 && s.as_bytes()[digits_from] == b'0') {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn boolean(s: &str) -> Option<(bool, &str)> {
    if let Some(rest) = s.strip_prefix("true") {
        Some((true, rest))
    } else {
        s.strip_prefix("false").map(|rest| (false, rest))
    }
}

/// A `[users.NAME]` table being read; each field with the offset of its value.
struct PendingUser<'a> {
    name: &'a str,
    name_at: usize,
    secret: Option<(&'a str, usize)>,
    pin: Option<(&'a str, usize)>,
    offset_secs: Option<(i64, usize)>,
    common_name: Option<(&'a str, usize)>,
    disabled: Option<bool>,
}

impl<'a> PendingUser<'a> {
    fn new(name: &'a str, name_at: usize) -> Self {
        PendingUser {
            name,
            name_at,
            secret: None,
            pin: None,
            offset_secs: None,
            common_name: None,
            disabled: None,
        }
    }

    /// One line of the table, leading blanks removed, starting at offset `at`: blank, a
    /// comment, or `key = value` with a key of the table and a value of its type.
    fn line(&mut self, body: &'a str, at: usize) -> Option<()> {
        if body.is_empty() {
            return Some(());
        }
        if let Some(comment) = body.strip_prefix('#') {
            return comment_ok(comment).then_some(());
        }
        let (key, rest) = bare_key(body);
        let value = rest.trim_start_matches(WS).strip_prefix('=')?;
        let value = value.trim_start_matches(WS);
        let value_at = at + (body.len() - value.len());
        fn set<T>(field: &mut Option<T>, value: T) -> Option<()> {
            // A key given twice is a TOML error: `toml` reports it.
            field.is_none().then(|| *field = Some(value))
        }
        let rest = match key {
            "secret" | "pin" | "common_name" => {
                let (s, rest) = basic_string(value)?;
                let field = match key {
                    "secret" => &mut self.secret,
                    "pin" => &mut self.pin,
                    _ => &mut self.common_name,
                };
                set(field, (s, value_at))?;
                rest
            }
            "offset_secs" => {
                let (n, rest) = integer(value)?;
                set(&mut self.offset_secs, (n, value_at))?;
                rest
            }
            "disabled" => {
                let (b, rest) = boolean(value)?;
                set(&mut self.disabled, b)?;
                rest
            }
            _ => return None,
        };
        end_of_line(rest).then_some(())
    }

    fn finish(self) -> Option<(&'a str, usize, UserFields<'a>)> {
        let fields = UserFields {
            secret: self.secret?,
            pin: Some(self.pin?),
            token: Default::default(),
            password: None,
            recovery_codes: None,
            more_tokens: Vec::new(),
            offset_secs: self.offset_secs,
            common_name: self.common_name,
            disabled: self.disabled.unwrap_or(false),
        };
        Some((self.name, self.name_at, fields))
    }
}
