//! pam_mobile_otp's motp.conf.

use motp::config::MAX_OFFSET_SECS;

use super::builder::Builder;
use super::entries::Entry;
use super::{pin_problem, read_source, secret_like, HASH_ADVICE};
use crate::cli::PamMotpArgs;
use crate::users::{check_username, secret_problem};
use crate::Outcome;

/// Hours as in motp.conf ("0", "-5", "5.5") to seconds.
pub(super) fn hours_to_secs(text: &str) -> Result<i64, String> {
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
