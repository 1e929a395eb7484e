//! pam_google_authenticator's `.google_authenticator` files.

use std::path::PathBuf;

use motp::config::token::TOTP_PERIODS;
use motp::config::MAX_RECOVERY_CODES;
use motp::engine::{base32, Algorithm};
use motp::secret_hash;

use super::builder::Builder;
use super::entries::HmacEntry;
use super::{comment_safe, printable, read_source};
use crate::cli::GoogleAuthenticatorArgs;
use crate::users::check_username;
use crate::{Fail, Outcome};

/// What one `.google_authenticator` file holds, converted.
pub(super) fn convert_google_authenticator(
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
