//! import: pam_mobile_otp's motp.conf and openvpn-otp's secrets file to motp.toml.
//!
//! A line is converted only if the plugin will accept exactly the codes the old setup accepted;
//! every other line is refused with its number and the reason, never quoting a secret or PIN.

use std::collections::HashSet;
use std::path::Path;

use motp::config::{entry, Config, MAX_OFFSET_SECS, MAX_PIN_LEN};
use toml_edit::{DocumentMut, Item, Table};

use crate::cli::{ImportOutput, OpenvpnOtpArgs, PamMotpArgs};
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
    names: HashSet<String>,
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
            names: HashSet::new(),
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

    fn add(&mut self, line: usize, entry: Entry) {
        if self.names.contains(&entry.name) {
            self.refuse(
                line,
                Some(&entry.name),
                "a second line for this user: motp.toml holds one secret per user, and the \
                 first line is kept",
            );
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
        let prefix = std::mem::take(&mut self.pending);
        let prefix = if prefix.starts_with('\n') || self.names.is_empty() {
            prefix
        } else {
            format!("\n{prefix}")
        };
        table.decor_mut().set_prefix(prefix);
        table.set_position(self.position);
        self.position += 1;
        self.doc["users"]
            .as_table_mut()
            .expect("users is a table")
            .insert(&entry.name, Item::Table(table));
        self.names.insert(entry.name);
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

/// Converts `METHOD:HASH:ENCODING:KEY:PIN[:UDID]`, or says why it cannot be.
fn convert_otp_field(field: &str, udid_into_pin: bool) -> Result<(String, String), String> {
    if field.len() >= 6 && field[..6].eq_ignore_ascii_case("plain:") {
        return Err(
            "a static password (`plain:`), not a one-time code; motp.so has no \
                    static passwords"
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
    if lower.starts_with("totp") || lower.starts_with("hotp") {
        return Err(format!(
            "a {} token (RFC {}), another algorithm than mOTP: keep openvpn-otp for this user \
             or enrol an mOTP app",
            lower.to_ascii_uppercase(),
            if lower.starts_with("totp") {
                "6238"
            } else {
                "4226"
            }
        ));
    }
    if lower != "motp" {
        return Err(format!(
            "{}: only motp lines can be converted",
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
    } else if udid_into_pin {
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
    Ok((key.to_owned(), pin))
}

pub fn openvpn_otp(args: OpenvpnOtpArgs) -> Outcome {
    let text = read_source(&args.file)?;
    let mut b = Builder::new(&args.file, "openvpn-otp secrets");
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
        match convert_otp_field(&words[2], args.udid_into_pin) {
            Ok((secret, pin)) => b.add(
                n,
                Entry {
                    name: user.to_owned(),
                    secret,
                    pin,
                    offset_secs: 0,
                },
            ),
            Err(reason) => b.refuse(n, otp_user(&words), reason),
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
        let ok = convert_otp_field("motp:md5:text:0123456789abcdef:1234:", false).unwrap();
        assert_eq!(ok, ("0123456789abcdef".into(), "1234".into()));
        let ok = convert_otp_field("MOTP:MD5:TEXT:0123456789abcdef:1234", false).unwrap();
        assert_eq!(ok.1, "1234");
        assert!(
            convert_otp_field("motp:md5:text:0123456789abcdef:1234:xxx", false)
                .unwrap_err()
                .contains("UDID")
        );
        let ok = convert_otp_field("motp:md5:text:0123456789abcdef:1234:xxx", true).unwrap();
        assert_eq!(ok.1, "1234xxx");
        for (field, why) in [
            ("motp:md5:hex:0123456789abcdef:1234:", "hex"),
            ("totp:sha1:base32:K7BYLIU5D2V33X6S:1234:xxx", "TOTP"),
            ("hotp:sha1:base32::MT4GWEZTSRBV2QQC:xxx", "HOTP"),
            ("plain:hunter2", "static"),
            ("motp:sha1:text:0123456789abcdef:1234:", "sha1"),
            ("motp:md5:text:0123456789abcdef::", "PIN is empty"),
            ("motp:md5:text:0123:1234:", "16 to 32"),
            ("motp:md5", "METHOD"),
        ] {
            let e = convert_otp_field(field, false).unwrap_err();
            assert!(e.contains(why), "{field}: {e}");
            assert!(!e.contains("0123456789abcdef"), "{e}");
        }
    }
}
