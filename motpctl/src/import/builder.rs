//! The converted file under construction: users, their comments, the refused lines, and the
//! writing of the result.

use std::collections::HashMap;
use std::path::Path;

use motp::config::Config;
use toml_edit::{DocumentMut, Item, Table};
use zeroize::Zeroizing;

use super::entries::{Entry, HmacEntry};
use super::openvpn_otp::Converted;
use super::{comment_safe, printable};
use crate::cli::ImportOutput;
use crate::edit::write_atomically;
use crate::{Fail, Outcome, Status};

/// The most tokens motp.so keeps per user: the user's own and 7 `[[users.NAME.tokens]]`.
const MAX_TOKENS_PER_USER: usize = 8;

/// Table positions per imported user: the user's table at `n * POSITION_STRIDE`, its further
/// tokens right after it.
const POSITION_STRIDE: usize = 16;

/// What the import knows of a user whose lines may become several tokens (openvpn-otp).
#[derive(Default)]
pub(super) struct Imported {
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
    pub(super) refused: bool,
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
pub(super) struct Builder {
    doc: DocumentMut,
    pending: String,
    /// Each imported user, with the line its token came from.
    names: HashMap<String, usize>,
    /// A further line of a user becomes a further token (openvpn-otp) rather than refused.
    pub(super) more_tokens: bool,
    /// The users of `more_tokens` imports.
    pub(super) imported: HashMap<String, Imported>,
    refusals: Vec<Refusal>,
    pub(super) warnings: Vec<String>,
    position: usize,
}

impl Builder {
    pub(super) fn new(source: &Path, format: &str) -> Builder {
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
    pub(super) fn comment(&mut self, text: Option<&str>) {
        match text {
            Some(t) => {
                self.pending.push('#');
                self.pending.push_str(&comment_safe(t));
                self.pending.push('\n');
            }
            None => self.pending.push('\n'),
        }
    }

    pub(super) fn refuse(&mut self, line: usize, user: Option<&str>, reason: impl Into<String>) {
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
    pub(super) fn add_openvpn_otp(&mut self, line: usize, name: &str, converted: Converted) {
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

    pub(super) fn add(&mut self, line: usize, entry: Entry) {
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

    pub(super) fn add_hmac(&mut self, line: usize, name: &str, entry: &HmacEntry) {
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
    pub(super) fn finish(mut self, out: &ImportOutput) -> Outcome {
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
