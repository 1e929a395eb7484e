//! import: pam_mobile_otp's motp.conf and openvpn-otp's secrets file to motp.toml.
//!
//! A line is converted only if the plugin will accept exactly the codes the old setup accepted;
//! every other line is refused with its number and the reason, never quoting a secret or PIN.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use motp::config::token::TOTP_PERIODS;
use motp::config::{entry, Config, MAX_OFFSET_SECS, MAX_PIN_LEN, MAX_RECOVERY_CODES};
use motp::engine::{base32, Algorithm};
use motp::secret_hash;
use sha1::{Digest, Sha1};
use toml_edit::{Array, DocumentMut, Item, Table, Value};
use zeroize::Zeroizing;

use crate::cli::{GoogleAuthenticatorArgs, ImportOutput, OpenvpnOtpArgs, PamMotpArgs};
use crate::edit::write_atomically;
use crate::users::{check_username, secret_problem};
use crate::{Fail, Outcome, Status};

/// One user ready for motp.toml.
struct Entry {
    name: String,
    secret: String,
    pin: String,
    offset_secs: i64,
}

/// A TOTP or HOTP token ready for motp.toml.
struct HmacEntry {
    /// The decoded key (written in base32).
    key: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    digits: u8,
    /// `Some(period)` for TOTP, `None` for HOTP.
    period: Option<u32>,
    /// HOTP: the counter of the next code.
    counter: u64,
    /// The static password typed before the code (openvpn-otp's pin), hashed when written.
    password: Option<Zeroizing<String>>,
    /// Normalized recovery codes (pam_google_authenticator's scratch codes), hashed when
    /// written.
    recovery_codes: Vec<Zeroizing<Vec<u8>>>,
}

impl HmacEntry {
    /// The user's table: kind, the base32 secret, the settings that are not the defaults, and
    /// the hashes of the password and recovery codes.
    fn table(&self) -> Table {
        let mut table = self.token_table(None);
        if let Some(password) = &self.password {
            table.insert(
                "password",
                toml_edit::value(secret_hash::hash_password(password.as_bytes())),
            );
        }
        if !self.recovery_codes.is_empty() {
            let mut hashes = Array::new();
            for code in &self.recovery_codes {
                let mut stored = Value::from(secret_hash::hash_recovery_code(code));
                stored.decor_mut().set_prefix("\n    ");
                hashes.push_formatted(stored);
            }
            hashes.set_trailing_comma(true);
            hashes.set_trailing("\n");
            table.insert("recovery_codes", Item::Value(Value::Array(hashes)));
        }
        table
    }

    /// The token's own keys (a `[[users.NAME.tokens]]` entry with `name`): kind, the base32
    /// secret and the settings that are not the defaults.
    fn token_table(&self, name: Option<&str>) -> Table {
        let mut table = Table::new();
        if let Some(name) = name {
            table.insert("name", toml_edit::value(name));
        }
        table.insert(
            "kind",
            toml_edit::value(if self.period.is_some() {
                "totp"
            } else {
                "hotp"
            }),
        );
        table.insert("secret", toml_edit::value(base32::encode(&self.key)));
        if self.algorithm != Algorithm::Sha1 {
            table.insert("algorithm", toml_edit::value(self.algorithm.name()));
        }
        if self.digits != 6 {
            table.insert("digits", toml_edit::value(i64::from(self.digits)));
        }
        match self.period {
            Some(30) => {}
            Some(p) => {
                table.insert("period", toml_edit::value(i64::from(p)));
            }
            None if self.counter != 0 => {
                table.insert("counter", toml_edit::value(self.counter as i64));
            }
            None => {}
        }
        table
    }
}

/// The most tokens motp.so keeps per user: the user's own and 7 `[[users.NAME.tokens]]`.
const MAX_TOKENS_PER_USER: usize = 8;

/// Table positions per imported user: the user's table at `n * POSITION_STRIDE`, its further
/// tokens right after it.
const POSITION_STRIDE: usize = 16;

/// What the import knows of a user whose lines may become several tokens (openvpn-otp).
#[derive(Default)]
struct Imported {
    /// Every line imported for the user, first the one of its own token.
    lines: Vec<usize>,
    /// The names of its further tokens.
    token_names: Vec<String>,
    /// The static password of its totp/hotp lines (`Some(None)`: their PIN is empty), and the
    /// first such line; `None` while it has none.
    password: Option<(Option<Zeroizing<String>>, usize)>,
    /// The first mOTP line (its PIN is inside the code: no static password in front).
    motp_line: Option<usize>,
    /// The position of the user's table.
    position: usize,
    /// Refused: every line of the user is left out.
    refused: bool,
}

/// A line that cannot be carried over.
struct Refusal {
    line: usize,
    user: Option<String>,
    reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(u) => write!(
                f,
                "line {} (user {}): {}",
                self.line,
                printable(u),
                self.reason
            ),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// The converted file: users with the comments that stood above them.
struct Builder {
    doc: DocumentMut,
    pending: String,
    /// Each imported user, with the line its token came from.
    names: HashMap<String, usize>,
    /// A further line of a user becomes a further token (openvpn-otp) rather than refused.
    more_tokens: bool,
    /// The users of `more_tokens` imports.
    imported: HashMap<String, Imported>,
    refusals: Vec<Refusal>,
    warnings: Vec<String>,
    position: usize,
}

impl Builder {
    fn new(source: &Path, format: &str) -> Builder {
        let mut doc = DocumentMut::new();
        let mut users = Table::new();
        users.set_implicit(true);
        doc.insert("users", Item::Table(users));
        doc.decor_mut().set_prefix(format!(
            "# Imported by motpctl from {} ({format}).\n\
             # Users have no common_name: with require_common_name (the default) each user's\n\
             # certificate CN must be the username. Check, then run `motpctl check-config`.\n\n",
            comment_safe(&source.display().to_string())
        ));
        Builder {
            doc,
            pending: String::new(),
            names: HashMap::new(),
            more_tokens: false,
            imported: HashMap::new(),
            refusals: Vec::new(),
            warnings: Vec::new(),
            position: 1,
        }
    }

    /// A comment (without its `#`) or, for `None`, a blank line, to go above the next user.
    fn comment(&mut self, text: Option<&str>) {
        match text {
            Some(t) => {
                self.pending.push('#');
                self.pending.push_str(&comment_safe(t));
                self.pending.push('\n');
            }
            None => self.pending.push('\n'),
        }
    }

    fn refuse(&mut self, line: usize, user: Option<&str>, reason: impl Into<String>) {
        let refusal = Refusal {
            line,
            user: user.map(str::to_owned),
            reason: reason.into(),
        };
        self.comment(Some(&format!(" motpctl: not imported: {refusal}")));
        self.refusals.push(refusal);
    }

    /// Whether `name` already has a token; if so, the line is refused.
    fn taken(&mut self, line: usize, name: &str) -> bool {
        if !self.names.contains_key(name) {
            return false;
        }
        self.refuse(
            line,
            Some(name),
            "a second line for this user: motp.toml holds one secret per user, and the first \
             line is kept",
        );
        true
    }

    /// openvpn-otp: a line of `name`, the user's own token if it is the first, else a further
    /// token. The user is refused when its lines cannot share one static password.
    fn add_openvpn_otp(&mut self, line: usize, name: &str, converted: Converted) {
        let mut user = self.imported.remove(name).unwrap_or_default();
        if user.refused {
            self.refuse(
                line,
                Some(name),
                format!(
                    "the user is not imported (see line {})",
                    user.lines.last().copied().unwrap_or(line)
                ),
            );
            self.imported.insert(name.to_owned(), user);
            return;
        }
        // The static password this line asks for in front of its code.
        let conflict = match (&converted, &user.password, user.motp_line) {
            (Converted::Motp { .. }, Some((Some(_), at)), _) => Some(format!(
                "line {line} is an mOTP line (its PIN is inside the code, the code alone is \
                 typed) and line {at} has a PIN typed before the code"
            )),
            (Converted::Hmac(h), _, Some(at)) if h.password.is_some() => Some(format!(
                "line {line} has a PIN typed before the code and line {at} is an mOTP line (its \
                 PIN is inside the code, the code alone is typed)"
            )),
            (Converted::Hmac(h), Some((first, at)), _) if h.password != *first => Some(format!(
                "the PIN of line {line} differs from the PIN of line {at}"
            )),
            _ => None,
        };
        if let Some(why) = conflict {
            let mut lines = user.lines.clone();
            lines.push(line);
            let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
            self.drop_user(name);
            self.refuse(
                line,
                Some(name),
                format!(
                    "{why}: motp.so has one static password per user, typed before the code of \
                     any of its tokens, so these lines (lines {}) cannot keep what users type; \
                     the user is not imported. Give the user's lines the same PIN (or none) and \
                     import again, or import one line and add the other tokens with `motpctl \
                     add-user NAME --token TOKNAME`",
                    lines.join(", ")
                ),
            );
            user.refused = true;
            user.lines.push(line);
            self.imported.insert(name.to_owned(), user);
            return;
        }
        if user.lines.len() >= MAX_TOKENS_PER_USER {
            self.refuse(
                line,
                Some(name),
                format!(
                    "more than {MAX_TOKENS_PER_USER} lines for this user: motp.so keeps at most \
                     {MAX_TOKENS_PER_USER} tokens per user"
                ),
            );
            self.imported.insert(name.to_owned(), user);
            return;
        }
        match &converted {
            Converted::Motp { .. } => {
                user.motp_line.get_or_insert(line);
            }
            Converted::Hmac(h) => {
                if user.password.is_none() {
                    user.password = Some((h.password.clone(), line));
                }
            }
        }
        if user.lines.is_empty() {
            user.position = self.position * POSITION_STRIDE;
            match converted {
                Converted::Motp { secret, pin } => self.add(
                    line,
                    Entry {
                        name: name.to_owned(),
                        secret,
                        pin,
                        offset_secs: 0,
                    },
                ),
                Converted::Hmac(entry) => self.add_hmac(line, name, &entry),
            }
            user.lines.push(line);
            self.imported.insert(name.to_owned(), user);
            return;
        }
        // A further token, named after its kind: "totp", "totp-2", ... (the user's own token
        // counts as the first of its kind).
        let kind = match &converted {
            Converted::Motp { .. } => "motp",
            Converted::Hmac(h) if h.period.is_some() => "totp",
            Converted::Hmac(_) => "hotp",
        };
        let own_kind = self.own_kind(name);
        let taken = |n: &str| user.token_names.iter().any(|t| t == n);
        let token_name = if own_kind != Some(kind) && !taken(kind) {
            kind.to_owned()
        } else {
            (2..)
                .map(|i| format!("{kind}-{i}"))
                .find(|n| !taken(n))
                .expect("a free name")
        };
        let mut table = match converted {
            Converted::Motp { secret, pin } => {
                if secret.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.warnings.push(format!(
                        "line {line} (user {}): the secret has uppercase letters; it is carried \
                         over as written (hashed as written), but phone apps such as Aegis \
                         lowercase it",
                        printable(name)
                    ));
                }
                let mut t = Table::new();
                t.insert("name", toml_edit::value(token_name.as_str()));
                t.insert("secret", toml_edit::value(secret.as_str()));
                t.insert("pin", toml_edit::value(pin.as_str()));
                t
            }
            Converted::Hmac(entry) => entry.token_table(Some(&token_name)),
        };
        let pending = std::mem::take(&mut self.pending);
        table.decor_mut().set_prefix(format!(
            "\n{pending}# line {line}: a further token of {name}\n"
        ));
        table.set_position(user.position + user.lines.len());
        if let Some(Item::Table(entry)) = self.doc["users"]
            .as_table_mut()
            .and_then(|t| t.get_mut(name))
        {
            if !entry.contains_key("tokens") {
                entry.insert(
                    "tokens",
                    Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
                );
            }
            if let Some(tokens) = entry
                .get_mut("tokens")
                .and_then(|t| t.as_array_of_tables_mut())
            {
                tokens.push(table);
            }
        }
        user.token_names.push(token_name);
        user.lines.push(line);
        self.imported.insert(name.to_owned(), user);
    }

    /// The kind of the user's own token, as imported.
    fn own_kind(&self, name: &str) -> Option<&'static str> {
        let entry = self.doc["users"].as_table()?.get(name)?.as_table()?;
        Some(match entry.get("kind").and_then(|k| k.as_str()) {
            Some("totp") => "totp",
            Some("hotp") => "hotp",
            _ => "motp",
        })
    }

    /// Takes an imported user out again (refused after its first lines): its comments stay.
    fn drop_user(&mut self, name: &str) {
        let removed = self.doc["users"]
            .as_table_mut()
            .and_then(|t| t.remove(name));
        self.names.remove(name);
        if let Some(Item::Table(table)) = removed {
            let mut kept = String::new();
            let mut keep = |prefix: Option<&str>| {
                for l in prefix.unwrap_or("").lines() {
                    if l.trim_start().starts_with('#') && !l.contains(": a further token of ") {
                        kept.push_str(l.trim_start());
                        kept.push('\n');
                    }
                }
            };
            keep(table.decor().prefix().and_then(|p| p.as_str()));
            if let Some(tokens) = table.get("tokens").and_then(|t| t.as_array_of_tables()) {
                for t in tokens.iter() {
                    keep(t.decor().prefix().and_then(|p| p.as_str()));
                }
            }
            self.pending = format!("{kept}{}", self.pending);
        }
    }

    fn add(&mut self, line: usize, entry: Entry) {
        if self.taken(line, &entry.name) {
            return;
        }
        if entry.secret.bytes().any(|b| b.is_ascii_uppercase()) {
            self.warnings.push(format!(
                "line {line} (user {}): the secret has uppercase letters; it is carried over as \
                 written (hashed as written), but phone apps such as Aegis lowercase it",
                printable(&entry.name)
            ));
        }
        let mut table = Table::new();
        table.insert("secret", toml_edit::value(entry.secret.as_str()));
        table.insert("pin", toml_edit::value(entry.pin.as_str()));
        if entry.offset_secs != 0 {
            table.insert("offset_secs", toml_edit::value(entry.offset_secs));
        }
        self.insert(line, entry.name, table);
    }

    fn add_hmac(&mut self, line: usize, name: &str, entry: &HmacEntry) {
        if self.taken(line, name) {
            return;
        }
        self.insert(line, name.to_owned(), entry.table());
    }

    fn insert(&mut self, line: usize, name: String, mut table: Table) {
        let prefix = std::mem::take(&mut self.pending);
        let prefix = if prefix.starts_with('\n') || self.names.is_empty() {
            prefix
        } else {
            format!("\n{prefix}")
        };
        table.decor_mut().set_prefix(prefix);
        table.set_position(self.position * POSITION_STRIDE);
        self.position += 1;
        self.doc["users"]
            .as_table_mut()
            .expect("users is a table")
            .insert(&name, Item::Table(table));
        self.names.insert(name, line);
    }

    /// Prints the refusals and warnings, then writes the result (unless refused).
    fn finish(mut self, out: &ImportOutput) -> Outcome {
        let trailing = std::mem::take(&mut self.pending);
        self.doc.set_trailing(trailing);
        for r in &self.refusals {
            eprintln!("refused: {r}");
        }
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        if !self.refusals.is_empty() && !out.skip_unconvertible {
            return Err(Fail(format!(
                "{} line{} cannot be converted faithfully (see above); nothing was written. \
                 Re-enrol those users, or pass --skip-unconvertible to import the others",
                self.refusals.len(),
                if self.refusals.len() == 1 { "" } else { "s" }
            )));
        }
        let text = self.doc.to_string();
        let shown = out
            .output
            .clone()
            .unwrap_or_else(|| "<standard output>".into());
        Config::parse(&shown, &text).map_err(|e| {
            format!("internal error: the converted config would be refused by the plugin: {e}")
        })?;
        match &out.output {
            None => print!("{text}"),
            Some(path) => {
                if path.exists() && !out.force {
                    return Err(Fail(format!(
                        "{} exists; pass --force to replace it",
                        path.display()
                    )));
                }
                write_atomically(path, text.as_bytes(), 0o600, None)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!(
                    "wrote {} user{} to {} (mode 0600)",
                    self.names.len(),
                    if self.names.len() == 1 { "" } else { "s" },
                    path.display()
                );
            }
        }
        Ok(if self.refusals.is_empty() && self.warnings.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        })
    }
}

/// A name safe to print in a message.
fn printable(text: &str) -> String {
    motp::log::sanitize(text)
}

/// Text that can stand in a TOML comment (no control characters but tab).
fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

fn read_source(path: &Path) -> Result<String, Fail> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| Fail(format!("{} is not UTF-8 text", path.display())))
}

/// Why a PIN cannot go into motp.toml, if it cannot (never quoting it).
fn pin_problem(pin: &str) -> Option<String> {
    if pin.is_empty() {
        return Some("the PIN is empty, and motp.toml requires one".into());
    }
    if !entry::pin_is_valid(pin) {
        return Some(format!(
            "the PIN must be 1 to {MAX_PIN_LEN} characters without spaces for motp.toml"
        ));
    }
    None
}

/// Hours as in motp.conf ("0", "-5", "5.5") to seconds.
fn hours_to_secs(text: &str) -> Result<i64, String> {
    let valid = {
        let t = text.strip_prefix(['-', '+']).unwrap_or(text);
        let mut parts = t.splitn(2, '.');
        let whole = parts.next().unwrap_or("");
        let frac = parts.next();
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
    };
    let hours: f64 = match text.parse() {
        Ok(h) if valid => h,
        _ => return Err("the offset (4th field) is not a number of hours".into()),
    };
    let secs = (hours * 3600.0).round();
    if secs.abs() > MAX_OFFSET_SECS as f64 {
        return Err(format!(
            "the offset is more than 24 hours; motp.toml allows ±{MAX_OFFSET_SECS} seconds"
        ));
    }
    Ok(secs as i64)
}

/// What goes in pam_mobile_otp's fields, for messages.
const PAM_FIELDS: [&str; 4] = [
    "the username (1st field)",
    "the secret (2nd field)",
    "the PIN (3rd field)",
    "the offset (4th field)",
];

/// What to do about a `#` in the PIN or secret (both formats).
const HASH_ADVICE: &str = "leave this line out of the import and add the user afterwards with \
     `motpctl add-user NAME --secret - --pin -`, which reads both from standard input";

/// Text that may be the secret or a PIN: hex digits only, secret-sized.
fn secret_like(field: &str) -> bool {
    field.len() >= 8 && field.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first field of a motp.conf line, if it can be named in a message: only when it is not
/// made of hex digits only (a line without its user field starts with the secret) and the
/// second field is secret-sized (a line without user and secret starts with the PIN).
fn pam_user<'a>(fields: &[&'a str]) -> Option<&'a str> {
    match fields {
        [user, second, ..] if !user.bytes().all(|b| b.is_ascii_hexdigit()) && second.len() >= 8 => {
            Some(user)
        }
        _ => None,
    }
}

pub fn pam_motp(args: PamMotpArgs) -> Outcome {
    let text = read_source(&args.file)?;
    let mut b = Builder::new(&args.file, "pam_mobile_otp motp.conf");
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        let (data, comment) = match line.find('#') {
            Some(at) => (&line[..at], Some(&line[at + 1..])),
            None => (line, None),
        };
        let fields: Vec<&str> = data.split_whitespace().collect();
        if fields.is_empty() {
            b.comment(comment.or(if line.trim().is_empty() {
                None
            } else {
                Some("")
            }));
            continue;
        }
        // A `#` after the data: a comment only where it stands apart after the PIN. One inside
        // a field, or where the secret or PIN should be, may be part of them: refused, and the
        // rest of the line (maybe the rest of a PIN) is not carried over as a comment.
        if comment.is_some() {
            let glued = !data.ends_with(char::is_whitespace);
            let field = if glued {
                fields.len()
            } else {
                fields.len() + 1
            };
            if glued || field <= 3 {
                let what = PAM_FIELDS.get(field - 1).copied().unwrap_or("a field");
                let how = if glued { "inside" } else { "at the start of" };
                b.refuse(
                    n,
                    pam_user(&fields),
                    format!(
                        "a `#` {how} {what}: it would be read as the start of a comment, \
                         cutting the line there; if it starts a comment, put it after the PIN \
                         and offset with a space before it; if it belongs to the PIN or secret, \
                         {HASH_ADVICE}"
                    ),
                );
                continue;
            }
        }
        if let Some(c) = comment {
            b.comment(Some(c));
        }
        let user = pam_user(&fields);
        if secret_like(fields[0]) && !fields.get(1).is_some_and(|f| secret_like(f)) {
            b.refuse(
                n,
                None,
                "the first field looks like a secret, not a username: the user field seems to \
                 be missing (expected `USER SECRET PIN OFFSET_HOURS`)",
            );
            continue;
        }
        if !(3..=4).contains(&fields.len()) {
            b.refuse(
                n,
                user,
                format!(
                    "expected `USER SECRET PIN OFFSET_HOURS`, found {} fields",
                    fields.len()
                ),
            );
            continue;
        }
        let name = fields[0];
        if let Err(e) = check_username(name) {
            b.refuse(n, None, e.0);
            continue;
        }
        if let Some(problem) = secret_problem(fields[1]) {
            b.refuse(n, user, problem);
            continue;
        }
        if let Some(problem) = pin_problem(fields[2]) {
            b.refuse(n, user, problem);
            continue;
        }
        let offset_secs = match fields.get(3).map(|h| hours_to_secs(h)).unwrap_or(Ok(0)) {
            Ok(s) => s,
            Err(e) => {
                b.refuse(n, user, e);
                continue;
            }
        };
        b.add(
            n,
            Entry {
                name: name.to_owned(),
                secret: fields[1].to_owned(),
                pin: fields[2].to_owned(),
                offset_secs,
            },
        );
    }
    b.finish(&args.out)
}

/// Splits a secrets-file line into words as openvpn-otp's `read_word` does: whitespace
/// separates, `'` and `"` quote, `\` escapes the next character, and `#` outside quotes starts
/// a comment. Returns the words, the comment text, and whether the `#` came right after a
/// word's last character (cutting what may have been meant as part of the word).
fn split_words(line: &str) -> (Vec<String>, Option<String>, bool) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '#' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                return (words, Some(chars.collect()), in_word);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                quote = Some(c);
                in_word = true;
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, None, false)
}

/// `hash `sha256``, or `an unknown hash (not shown)` for a value not in `names`: a field out
/// of place (a missing one shifts the others) may hold the key or the PIN.
fn known(what: &str, value: &str, names: &[&str]) -> String {
    match names.iter().find(|n| n.eq_ignore_ascii_case(value)) {
        Some(name) => format!("{what} `{name}`"),
        None => format!("an unknown {what} (not shown: it may be the key or PIN)"),
    }
}

/// The first word of a secrets-file line, if it can be named in a message: not when it holds a
/// `:` (a line without its USER and SERVER fields starts with the one holding key and PIN) or
/// looks like a key.
fn otp_user(words: &[String]) -> Option<&str> {
    let first = words.first()?.as_str();
    (!first.contains(':') && !secret_like(first)).then_some(first)
}

/// What one openvpn-otp secret converts to.
enum Converted {
    Motp { secret: String, pin: String },
    Hmac(HmacEntry),
}

/// The plugin arguments of openvpn-otp that decide a TOTP/HOTP line's codes.
struct OtpSettings<'a> {
    totp_step: u32,
    totp_digits: u8,
    udid_into_pin: bool,
    hotp_counters: &'a Path,
}

/// Converts `METHOD:HASH:ENCODING:KEY:PIN[:UDID]`, or says why it cannot be. Notes for the
/// admin (not reasons to refuse) go to `notes`.
fn convert_otp_field(
    field: &str,
    settings: &OtpSettings,
    notes: &mut Vec<String>,
) -> Result<Converted, String> {
    if field.len() >= 6 && field[..6].eq_ignore_ascii_case("plain:") {
        return Err(
            "a static password alone (`plain:`), without a one-time code: motp.so always asks \
             for a code; enrol a token for this user (`motpctl add-user`) and give the password \
             with `motpctl set-password`"
                .into(),
        );
    }
    let parts: Vec<&str> = field.split(':').collect();
    if parts.len() < 5 || parts.len() > 6 {
        return Err(
            "expected METHOD:HASH:ENCODING:KEY:PIN[:UDID] in the 3rd field \
                    (openvpn-otp refuses this line too)"
                .into(),
        );
    }
    let (method, hash, encoding, key, pin) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let udid = parts.get(5).copied().unwrap_or("");
    let lower = method.to_ascii_lowercase();
    // openvpn-otp compares the first four letters: any `totp...` other than `totp-60-6` is
    // TOTP with the plugin's totp_step and totp_digits, any `hotp...` HOTP.
    if lower.starts_with("totp") || lower.starts_with("hotp") {
        let totp = lower.starts_with("totp");
        if !matches!(lower.as_str(), "totp" | "totp-60-6" | "hotp") {
            notes.push(format!(
                "method `{}...` is read as openvpn-otp reads it: {}",
                &lower[..4],
                if totp {
                    "TOTP with totp_step and totp_digits"
                } else {
                    "HOTP"
                }
            ));
        }
        return convert_hmac(&lower, totp, hash, encoding, key, pin, settings, notes)
            .map(Converted::Hmac);
    }
    if lower != "motp" {
        return Err(format!(
            "{}: openvpn-otp knows motp, totp, totp-60-6 and hotp",
            known("method", method, &["motp", "totp", "totp-60-6", "hotp"])
        ));
    }
    if !hash.eq_ignore_ascii_case("md5") {
        return Err(format!(
            "{}: openvpn-otp hashes with it instead of MD5, so the codes are not mOTP codes",
            known("hash", hash, &["sha1", "sha256", "sha512", "md5"])
        ));
    }
    match encoding.to_ascii_lowercase().as_str() {
        "text" => {}
        "hex" => {
            return Err(
                "`hex` encoding: openvpn-otp hashes the hex-decoded bytes of the key, \
                        while mOTP apps (and motp.so) hash the key's text, so the same key gives \
                        other codes; re-enrol this user with a new secret"
                    .into(),
            )
        }
        "base32" => {
            return Err(
                "`base32` encoding: openvpn-otp hashes the base32-decoded bytes of the \
                        key, while mOTP apps (and motp.so) hash the key's text, so the same key \
                        gives other codes; re-enrol this user with a new secret"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "{}; openvpn-otp refuses it too",
                known("encoding", other, &["text", "hex", "base32"])
            ))
        }
    }
    if let Some(problem) = secret_problem(key) {
        return Err(problem);
    }
    let pin = if udid.is_empty() {
        pin.to_owned()
    } else if settings.udid_into_pin {
        format!("{pin}{udid}")
    } else {
        return Err("non-empty UDID: openvpn-otp appends it to the hashed text \
                    (md5(step‖key‖PIN‖UDID)), so codes from a phone holding only the PIN do not \
                    match; if the phones use the PIN followed by the UDID as their PIN, pass \
                    --udid-into-pin, else re-enrol this user"
            .into());
    };
    if let Some(problem) = pin_problem(&pin) {
        return Err(problem);
    }
    Ok(Converted::Motp {
        secret: key.to_owned(),
        pin,
    })
}

/// A totp/hotp line's token: the key decoded as openvpn-otp decodes it, the pin as the static
/// password typed in front of the code, HOTP's counter from openvpn-otp's counters directory.
#[allow(clippy::too_many_arguments)]
fn convert_hmac(
    method: &str,
    totp: bool,
    hash: &str,
    encoding: &str,
    key: &str,
    pin: &str,
    settings: &OtpSettings,
    notes: &mut Vec<String>,
) -> Result<HmacEntry, String> {
    let algorithm = Algorithm::from_name(hash).ok_or_else(|| {
        format!(
            "{}: motp.so computes TOTP and HOTP with sha1, sha256 or sha512",
            known("hash", hash, &["sha1", "sha256", "sha512", "md5"])
        )
    })?;
    if key.is_empty() {
        return Err(
            "the key (4th part) is empty, so openvpn-otp computed codes with an empty \
                    key. If the key stands in the PIN's place (as in openvpn-otp's README \
                    example `hotp:sha1:base32::KEY:xxx`), write the line as \
                    `METHOD:HASH:ENCODING:KEY:PIN:UDID` and import again"
                .into(),
        );
    }
    let bytes: Zeroizing<Vec<u8>> = match encoding.to_ascii_lowercase().as_str() {
        "base32" => base32::decode(key).map_err(|e| format!("the key is not base32: {e}"))?,
        "hex" => decode_hex(key)?,
        "text" => Zeroizing::new(key.as_bytes().to_vec()),
        other => {
            return Err(format!(
                "{}; openvpn-otp refuses it too",
                known("encoding", other, &["text", "hex", "base32"])
            ))
        }
    };
    if !(base32::MIN_SECRET_LEN..=base32::MAX_SECRET_LEN).contains(&bytes.len()) {
        return Err(format!(
            "the key is {} bytes long; motp.so takes TOTP/HOTP keys of {} to {} bytes (at least \
             80 bits): re-enrol this user with a new secret (`motpctl add-user NAME --kind \
             totp --generate`)",
            bytes.len(),
            base32::MIN_SECRET_LEN,
            base32::MAX_SECRET_LEN
        ));
    }
    let (period, digits) = match method {
        "totp-60-6" => (Some(60), 6),
        _ if totp => (Some(settings.totp_step), settings.totp_digits),
        _ => (None, settings.totp_digits),
    };
    let counter = if totp {
        0
    } else {
        read_hotp_counter(settings.hotp_counters, key, notes)?
    };
    let password = (!pin.is_empty()).then(|| Zeroizing::new(pin.to_owned()));
    if pin.chars().any(char::is_control) {
        return Err("the PIN has a control character, which a client cannot send".into());
    }
    Ok(HmacEntry {
        key: bytes,
        algorithm,
        digits,
        period,
        counter,
        password,
        recovery_codes: Vec::new(),
    })
}

fn decode_hex(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    if text.len() % 2 == 1 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "the key is not hex (an even number of the characters 0-9, a-f): openvpn-otp \
             would have decoded only part of it"
                .into(),
        );
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let digit = |b: u8| (b as char).to_digit(16).expect("checked") as u8;
        out.push(digit(pair[0]) << 4 | digit(pair[1]));
    }
    Ok(out)
}

/// The counter openvpn-otp keeps for an HOTP key: the file named by the lowercase hex SHA-1 of
/// the key string (as written in the secrets file) in `dir`, holding the counter of the next
/// code in decimal. A missing file gives 0, with a note.
fn read_hotp_counter(dir: &Path, key: &str, notes: &mut Vec<String>) -> Result<u64, String> {
    let digest = Sha1::digest(key.as_bytes());
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(&name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            notes.push(format!(
                "no HOTP counter file {} (openvpn-otp refused this token's codes without one): \
                 imported with counter 0; if the token is further on, run `motpctl resync` with \
                 two of its codes",
                path.display()
            ));
            return Ok(0);
        }
        Err(e) => {
            return Err(format!(
                "cannot read the HOTP counter file {}: {e} (run as root, or pass \
                 --hotp-counters DIR)",
                path.display()
            ))
        }
    };
    // openvpn-otp reads it with atoi: leading digits, the rest ignored.
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 / 2 => Ok(n),
        _ => Err(format!(
            "the HOTP counter file {} does not start with a counter (a decimal number)",
            path.display()
        )),
    }
}

pub fn openvpn_otp(args: OpenvpnOtpArgs) -> Outcome {
    let text = read_source(&args.file)?;
    if !TOTP_PERIODS.contains(&args.totp_step) || args.totp_step % 10 != 0 {
        return Err(Fail(format!(
            "--totp-step must be a multiple of 10 seconds from {} to {}: motp.so cannot keep \
             other periods",
            TOTP_PERIODS.start(),
            TOTP_PERIODS.end()
        )));
    }
    let settings = OtpSettings {
        totp_step: args.totp_step,
        totp_digits: args.totp_digits,
        udid_into_pin: args.udid_into_pin,
        hotp_counters: &args.hotp_counters,
    };
    let mut b = Builder::new(&args.file, "openvpn-otp secrets");
    b.more_tokens = true;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        let (words, comment, cut) = split_words(line);
        if words.is_empty() {
            b.comment(comment.as_deref().or(if line.trim().is_empty() {
                None
            } else {
                Some("")
            }));
            continue;
        }
        let user = otp_user(&words);
        // openvpn-otp, too, reads an unquoted `#` as the start of a comment, also inside a
        // word. One that cuts the first three fields may have been meant as part of the key or
        // PIN: refused. A comment before the CLIENT field is not carried over either (it may
        // hold the rest of the key field); the line is refused below for its missing fields.
        if comment.is_some() && cut && words.len() <= 3 {
            b.refuse(
                n,
                user,
                format!(
                    "an unquoted `#` inside the {} field: openvpn-otp reads it as the start \
                     of a comment and cuts the field there (this line then has no CLIENT field, \
                     so openvpn-otp skips it); if it belongs to the key or PIN, put the field in \
                     quotes ('...') and import again, or {}",
                    ["1st (USER)", "2nd (SERVER)", "3rd (METHOD:...:KEY:PIN)"][words.len() - 1],
                    HASH_ADVICE
                ),
            );
            continue;
        }
        if words.len() >= 4 {
            if let Some(c) = &comment {
                b.comment(Some(c));
            }
        }
        if words.len() < 3 {
            b.refuse(
                n,
                user,
                "expected `USER SERVER METHOD:HASH:ENCODING:KEY:PIN[:UDID] CLIENT`",
            );
            continue;
        }
        if words.len() == 3 {
            b.refuse(
                n,
                user,
                "no CLIENT field (e.g. `*`) after the secret: openvpn-otp skips such a line, so \
                 this user could not log in; add ` *` to the line if that was not intended",
            );
            continue;
        }
        let user = words[0].as_str();
        if user == "*" {
            b.refuse(n, None, "`*` is not a username (no wildcards in motp.toml)");
            continue;
        }
        if let Err(e) = check_username(user) {
            b.refuse(n, None, e.0);
            continue;
        }
        let mut notes = Vec::new();
        let converted = convert_otp_field(&words[2], &settings, &mut notes);
        if converted.is_ok() && !b.imported.get(user).is_some_and(|u| u.refused) {
            for note in notes {
                b.warnings
                    .push(format!("line {n} (user {}): {note}", printable(user)));
            }
        }
        match converted {
            Ok(converted) => b.add_openvpn_otp(n, user, converted),
            Err(reason) => b.refuse(n, otp_user(&words), reason),
        }
    }
    b.finish(&args.out)
}

/// What one `.google_authenticator` file holds, converted.
fn convert_google_authenticator(
    text: &str,
    notes: &mut Vec<String>,
) -> Result<HmacEntry, (usize, String)> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let secret = lines.next().unwrap_or("");
    if let Some(problem) = base32::secret_problem(secret.trim()) {
        return Err((
            1,
            format!("the first line must be the base32 secret: it {problem}"),
        ));
    }
    let key = base32::decode(secret.trim()).map_err(|e| (1, e.to_string()))?;
    let (mut totp, mut hotp_counter, mut step) = (false, None, None);
    let mut recovery_codes = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if let Some(option) = line.strip_prefix("\" ") {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or("");
            let number = |words: &mut std::str::SplitWhitespace| {
                words.next().and_then(|w| w.parse::<u64>().ok())
            };
            match name {
                "TOTP_AUTH" => totp = true,
                "HOTP_COUNTER" => {
                    hotp_counter = Some(
                        number(&mut words)
                            .filter(|c| *c <= i64::MAX as u64 / 2)
                            .ok_or((n, "HOTP_COUNTER must be followed by a counter".to_owned()))?,
                    )
                }
                "STEP_SIZE" => {
                    step = Some(
                        number(&mut words)
                            .ok_or((n, "STEP_SIZE must be followed by seconds".to_owned()))?,
                    )
                }
                "WINDOW_SIZE" => notes.push(format!(
                    "line {n}: WINDOW_SIZE is not carried over: motp.toml's window is the same \
                     for every user (window_secs, default ±180 s; hotp_window for HOTP, default \
                     10)"
                )),
                "DISALLOW_REUSE" => notes.push(format!(
                    "line {n}: DISALLOW_REUSE: motp.so always refuses a code used before"
                )),
                "RATE_LIMIT" => notes.push(format!(
                    "line {n}: RATE_LIMIT is not carried over: motp.so locks a user after \
                     max_failures failed logins (and an address after max_failures_per_ip)"
                )),
                "OTP_DISABLED" => {
                    return Err((
                        n,
                        "OTP_DISABLED: pam_google_authenticator let this user in without a \
                         code; motp.so always asks for one. Remove the line to import the token, \
                         or leave the user out"
                            .to_owned(),
                    ))
                }
                _ => notes.push(format!(
                    "line {n}: option {} ignored (not known to motpctl)",
                    if name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                        name
                    } else {
                        "(not shown)"
                    }
                )),
            }
            continue;
        }
        let code = line.trim();
        if code.len() == secret_hash::SCRATCH_CODE_LEN && code.bytes().all(|b| b.is_ascii_digit()) {
            let normalized = secret_hash::normalize_recovery_code(code.as_bytes())
                .ok_or((n, "not a scratch code".to_owned()))?;
            recovery_codes.push(normalized);
            continue;
        }
        if code.is_empty() {
            continue;
        }
        return Err((
            n,
            "neither an option (`\" NAME ...`) nor an 8-digit scratch code".to_owned(),
        ));
    }
    if recovery_codes.len() > MAX_RECOVERY_CODES {
        return Err((
            0,
            format!(
                "{} scratch codes; motp.toml keeps at most {MAX_RECOVERY_CODES} recovery codes \
                 per user",
                recovery_codes.len()
            ),
        ));
    }
    let period = match (hotp_counter, totp) {
        (Some(_), _) => None,
        (None, true) => {
            let p = step.unwrap_or(30);
            match u32::try_from(p) {
                Ok(p) if TOTP_PERIODS.contains(&p) && p % 10 == 0 => Some(p),
                _ => {
                    return Err((
                        0,
                        format!(
                            "STEP_SIZE {p}: motp.so takes TOTP periods that are a multiple of \
                             10 seconds from {} to {}; re-enrol this user",
                            TOTP_PERIODS.start(),
                            TOTP_PERIODS.end()
                        ),
                    ))
                }
            }
        }
        (None, false) => {
            return Err((
                0,
                "neither `\" TOTP_AUTH` nor `\" HOTP_COUNTER`: pam_google_authenticator took \
                 only the scratch codes of this file. Add `\" TOTP_AUTH` if the user's app shows \
                 time-based codes"
                    .to_owned(),
            ))
        }
    };
    Ok(HmacEntry {
        key,
        algorithm: Algorithm::Sha1,
        digits: 6,
        period,
        counter: hotp_counter.unwrap_or(0),
        password: None,
        recovery_codes,
    })
}

/// Every `(user, file)` to import: FILE with --user, or each DIR/USER/.google_authenticator.
fn google_authenticator_sources(
    args: &GoogleAuthenticatorArgs,
) -> Result<Vec<(String, PathBuf)>, Fail> {
    if let Some(dir) = &args.homes {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let file = entry.path().join(".google_authenticator");
            if file.is_file() {
                found.push((entry.file_name().to_string_lossy().into_owned(), file));
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(Fail(format!(
                "no DIR/USER/.google_authenticator files in {}",
                dir.display()
            )));
        }
        return Ok(found);
    }
    match (&args.file, &args.user) {
        (Some(file), Some(user)) => Ok(vec![(user.clone(), file.clone())]),
        (Some(_), None) => Err(Fail(
            "give the user the file belongs to with --user NAME (the file does not name it)".into(),
        )),
        _ => Err(Fail("give FILE --user NAME, or --homes DIR".into())),
    }
}

pub fn google_authenticator(args: GoogleAuthenticatorArgs) -> Outcome {
    let sources = google_authenticator_sources(&args)?;
    let shown = args
        .homes
        .clone()
        .or_else(|| args.file.clone())
        .unwrap_or_default();
    let mut b = Builder::new(&shown, "pam_google_authenticator");
    for (user, file) in sources {
        let text = read_source(&file)?;
        let shown_file = comment_safe(&file.display().to_string());
        if let Err(e) = check_username(&user) {
            b.refuse(0, None, format!("{shown_file}: {}", e.0));
            continue;
        }
        b.comment(Some(&format!(" from {shown_file}")));
        let mut notes = Vec::new();
        match convert_google_authenticator(&text, &mut notes) {
            Ok(entry) => {
                for note in notes {
                    b.warnings
                        .push(format!("{shown_file} (user {}): {note}", printable(&user)));
                }
                b.add_hmac(1, &user, &entry);
            }
            Err((line, reason)) => {
                let at = if line == 0 {
                    shown_file.clone()
                } else {
                    format!("{shown_file} line {line}")
                };
                b.refuse(line, Some(&user), format!("{at}: {reason}"));
            }
        }
    }
    b.finish(&args.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_openvpn_otp() {
        let (w, c, cut) = split_words("bob otp 'motp:md5:text:0123456789abcdef:12 34:' * # phone");
        assert_eq!(
            w,
            ["bob", "otp", "motp:md5:text:0123456789abcdef:12 34:", "*"]
        );
        assert_eq!(c.as_deref(), Some(" phone"));
        assert!(!cut);
        let (w, c, cut) = split_words("  # only a comment");
        assert!(w.is_empty());
        assert_eq!(c.as_deref(), Some(" only a comment"));
        assert!(!cut);
        let (w, _, cut) = split_words(r"a\ b c#d");
        assert_eq!(w, ["a b", "c"]);
        assert!(cut);
        let (w, c, _) = split_words("u s 'motp:md5:text:0123456789abcdef:1#2:' *");
        assert_eq!(w[2], "motp:md5:text:0123456789abcdef:1#2:");
        assert_eq!(c, None);
    }

    #[test]
    fn hours_convert_to_seconds() {
        assert_eq!(hours_to_secs("0"), Ok(0));
        assert_eq!(hours_to_secs("-5.5"), Ok(-19800));
        assert_eq!(hours_to_secs("+2"), Ok(7200));
        assert_eq!(hours_to_secs("24"), Ok(86400));
        assert!(hours_to_secs("25").is_err());
        assert!(hours_to_secs("1h").is_err());
        assert!(hours_to_secs("nan").is_err());
        assert!(hours_to_secs("1e3").is_err());
        assert!(hours_to_secs(".5").is_err());
    }

    #[test]
    fn otp_fields() {
        let dir = std::env::temp_dir().join("motpctl-no-such-counters");
        let settings = OtpSettings {
            totp_step: 30,
            totp_digits: 6,
            udid_into_pin: false,
            hotp_counters: &dir,
        };
        let with_udid = OtpSettings {
            udid_into_pin: true,
            ..settings
        };
        let motp = |field: &str, s: &OtpSettings| match convert_otp_field(field, s, &mut vec![]) {
            Ok(Converted::Motp { secret, pin }) => Ok((secret, pin)),
            Ok(Converted::Hmac(_)) => panic!("{field} is mOTP"),
            Err(e) => Err(e),
        };
        let ok = motp("motp:md5:text:0123456789abcdef:1234:", &settings).unwrap();
        assert_eq!(ok, ("0123456789abcdef".into(), "1234".into()));
        let ok = motp("MOTP:MD5:TEXT:0123456789abcdef:1234", &settings).unwrap();
        assert_eq!(ok.1, "1234");
        assert!(motp("motp:md5:text:0123456789abcdef:1234:xxx", &settings)
            .unwrap_err()
            .contains("UDID"));
        let ok = motp("motp:md5:text:0123456789abcdef:1234:xxx", &with_udid).unwrap();
        assert_eq!(ok.1, "1234xxx");
        let Ok(Converted::Hmac(t)) = convert_otp_field(
            "totp-60-6:sha1:hex:5c5a75a87ba1b48cb0b6adfd3b7a5a0e:6543:xxx",
            &settings,
            &mut vec![],
        ) else {
            panic!("totp-60-6 converts");
        };
        assert_eq!((t.period, t.digits, t.key.len()), (Some(60), 6, 16));
        assert_eq!(t.password.as_deref().map(String::as_str), Some("6543"));
        let mut notes = vec![];
        let Ok(Converted::Hmac(h)) =
            convert_otp_field("hotp:sha1:base32:MT4GWEZTSRBV2QQC::", &settings, &mut notes)
        else {
            panic!("hotp converts");
        };
        assert_eq!((h.period, h.counter, h.password.is_none()), (None, 0, true));
        assert!(notes[0].contains("counter 0"), "{notes:?}");
        for (field, why) in [
            ("motp:md5:hex:0123456789abcdef:1234:", "hex"),
            ("hotp:sha1:base32::MT4GWEZTSRBV2QQC:xxx", "empty"),
            (
                "totp:md5:base32:K7BYLIU5D2V33X6S:1234:",
                "sha1, sha256 or sha512",
            ),
            ("totp:sha1:text:12345:1234:", "5 bytes"),
            ("totp:sha1:hex:0123456789abcdef012:1234:", "not hex"),
            ("totp:sha1:base32:K7BYLIU5D2V33X6!:1234:", "not base32"),
            ("plain:hunter2", "static password"),
            ("motp:sha1:text:0123456789abcdef:1234:", "sha1"),
            ("motp:md5:text:0123456789abcdef::", "PIN is empty"),
            ("motp:md5:text:0123:1234:", "16 to 32"),
            ("motp:md5", "METHOD"),
        ] {
            let e = match convert_otp_field(field, &settings, &mut vec![]) {
                Err(e) => e,
                Ok(_) => panic!("{field} converts"),
            };
            assert!(e.contains(why), "{field}: {e}");
            for secret in [
                "0123456789abcdef",
                "K7BYLIU5",
                "MT4GWEZT",
                "hunter2",
                "12345:",
            ] {
                assert!(!e.contains(secret), "{e}");
            }
        }
    }

    #[test]
    fn google_authenticator_files() {
        let mut notes = vec![];
        let t = convert_google_authenticator(
            "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" \
             DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n",
            &mut notes,
        )
        .unwrap();
        assert_eq!(
            (t.period, t.digits, t.recovery_codes.len()),
            (Some(30), 6, 2)
        );
        assert_eq!(&t.key[..], b"Hello!\xde\xad\xbe\xef");
        assert_eq!(notes.len(), 3, "{notes:?}");
        let h = convert_google_authenticator("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 7\n", &mut vec![])
            .unwrap();
        assert_eq!((h.period, h.counter), (None, 7));
        for (text, line, why) in [
            ("JBSWY3DPEHPK3PXP\n", 0, "neither"),
            ("JBSWY3DP!\n\" TOTP_AUTH\n", 1, "base32"),
            (
                "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" STEP_SIZE 45\n",
                0,
                "STEP_SIZE 45",
            ),
            ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n1234567\n", 3, "scratch"),
            (
                "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" OTP_DISABLED\n",
                3,
                "OTP_DISABLED",
            ),
        ] {
            let Err((n, e)) = convert_google_authenticator(text, &mut vec![]) else {
                panic!("{text:?} converts");
            };
            assert_eq!(n, line, "{text:?}: {e}");
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(!e.contains("JBSWY3DP") && !e.contains("1234567"), "{e}");
        }
    }
}
