//! openvpn-otp's (and ppp-otp's) secrets file.

use std::path::Path;

use motp::config::token::TOTP_PERIODS;
use motp::engine::{base32, Algorithm};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::builder::Builder;
use super::entries::HmacEntry;
use super::{pin_problem, printable, read_source, secret_like, HASH_ADVICE};
use crate::cli::OpenvpnOtpArgs;
use crate::users::{check_username, secret_problem};
use crate::{Fail, Outcome};

/// Splits a secrets-file line into words as openvpn-otp's `read_word` does: whitespace
/// separates, `'` and `"` quote, `\` escapes the next character, and `#` outside quotes starts
/// a comment. Returns the words, the comment text, and whether the `#` came right after a
/// word's last character (cutting what may have been meant as part of the word).
pub(super) fn split_words(line: &str) -> (Vec<String>, Option<String>, bool) {
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
pub(super) enum Converted {
    Motp { secret: String, pin: String },
    Hmac(HmacEntry),
}

/// The plugin arguments of openvpn-otp that decide a TOTP/HOTP line's codes.
pub(super) struct OtpSettings<'a> {
    pub(super) totp_step: u32,
    pub(super) totp_digits: u8,
    pub(super) udid_into_pin: bool,
    pub(super) hotp_counters: &'a Path,
}

/// Converts `METHOD:HASH:ENCODING:KEY:PIN[:UDID]`, or says why it cannot be. Notes for the
/// admin (not reasons to refuse) go to `notes`.
pub(super) fn convert_otp_field(
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
