//! Why a code is not valid now, for `verify`: how long a replayed code's phone must wait, and
//! where a code outside the window matches (the phone's clock, the token's counter, the case
//! of the secret).

use std::path::Path;

use motp::config::{Policy, MAX_OFFSET_SECS};
use motp::engine::{find_step, step_of, Hotp, TokenKind, Totp, STEP_SECS};
use toml_edit::DocumentMut;

use super::resync::HOTP_RESYNC_SPAN;
use super::{parse_code, SEARCH_STEPS};
use crate::edit;
use crate::human::{human_duration, relative};
use crate::tokens::Tok;
use crate::{Outcome, Status};

/// How long until the phone shows a code the plugin takes again, after a replay: the first
/// later step the plugin's rule ([`motp::state::UserState::may_have_been_used`]) lets through.
pub(super) fn replay_wait(
    state: &motp::state::UserState,
    step: i64,
    offset_secs: i64,
    radius: i64,
) -> String {
    // Two of the widest windows and the widest offset change bound how far a used step reaches.
    let reach = 2 * i64::from(motp::config::MAX_WINDOW_SECS) / STEP_SECS
        + 2 * motp::config::MAX_OFFSET_SECS / STEP_SECS
        + 2;
    let first_free = (step.saturating_add(1)..step.saturating_add(reach))
        .find(|s| !state.may_have_been_used(*s, offset_secs, radius))
        .unwrap_or(step.saturating_add(reach));
    let steps = first_free.saturating_sub(step).max(1);
    let after_loss = state.history_lost_at.map_or(i64::MIN, |lost| {
        step_of(lost.saturating_add(offset_secs)).saturating_add(radius)
    });
    let why = if after_loss >= step {
        "the state store started without its history, and every code the window could have \
         reached before that counts as used"
    } else {
        "a code must be newer than the last one accepted"
    };
    if steps == 1 {
        format!("wait for the phone's next code ({why})")
    } else {
        format!(
            "the phone's codes are taken again in about {} ({why})",
            human_duration(steps.saturating_mul(STEP_SECS))
        )
    }
}

/// The secret and PIN of one user, as written in the file (for diagnostics only).
fn raw_secret_and_pin(path: &Path, user: &str) -> Option<(String, String)> {
    let (text, _) = edit::read_text(path).ok()?;
    let doc: DocumentMut = text.parse().ok()?;
    let entry = doc.get("users")?.get(user)?;
    Some((
        entry.get("secret")?.as_str()?.to_owned(),
        entry.get("pin")?.as_str()?.to_owned(),
    ))
}

/// Why an mOTP code is not in the window: the phone's clock, or the case of the secret.
pub(super) fn explain_motp_miss(
    path: &Path,
    name: &str,
    tok: &Tok,
    typed: &str,
    now: i64,
    radius: i64,
) -> Outcome {
    let code = parse_code(typed, "CODE")?;
    let window = radius * STEP_SECS;
    let server_step = step_of(now);
    let who = tok.label(name);
    if let Some(m) = find_step(code, tok.key, server_step, SEARCH_STEPS) {
        let phone = m.step_offset * STEP_SECS;
        println!("{}", clock_advice(name, tok, phone, window));
        return Ok(Status::Warn);
    }
    // Not even within a day: look for the usual mistake, a secret whose letters differ in case
    // from what the phone hashes (the user's own token, as written in the file).
    if let Some((secret, pin)) = raw_secret_and_pin(path, name).filter(|_| tok.name().is_none()) {
        for (variant, what) in [
            (secret.to_ascii_lowercase(), "lowercase"),
            (secret.to_ascii_uppercase(), "uppercase"),
        ] {
            if variant == secret {
                continue;
            }
            let key = [variant.as_bytes(), pin.as_bytes()].concat();
            if find_step(code, &key, server_step, SEARCH_STEPS).is_some() {
                println!(
                    "invalid: the code matches the user's secret written in {what}: the phone \
                     app hashes it in {what} (Aegis lowercases secrets). Write the secret in \
                     {what} in {}.",
                    path.display()
                );
                return Ok(Status::Warn);
            }
        }
    }
    println!(
        "invalid: the code does not match {who}'s secret and PIN anywhere within ±24 h: check \
         the PIN typed into the phone app and the secret it holds"
    );
    Ok(Status::Warn)
}

/// The advice for a code found `phone` seconds off the server's clock, outside the window.
fn clock_advice(name: &str, tok: &Tok, phone: i64, window: i64) -> String {
    let sign = match phone.signum() {
        1 => " (positive: the phone runs ahead)",
        -1 => " (negative: the phone runs behind)",
        _ => "",
    };
    format!(
        "invalid: not within the window of ±{window} s{}{}. The code matches the phone's clock \
         being {}, so offset_secs = {phone}{sign} would fit. Set the phone's clock to network \
         time, or run `motpctl resync {name}{} CODE1 CODE2` with two consecutive codes, which \
         finds the offset and saves it as offset_secs (one code is not enough: it matches \
         somewhere in ±24 h by chance now and then).",
        tok.name()
            .map_or(String::new(), |n| format!(" of token `{n}`")),
        if tok.offset_secs == 0 {
            String::new()
        } else {
            format!(" (offset_secs = {})", tok.offset_secs)
        },
        relative(phone),
        tok.option()
    )
}

pub(super) fn explain_totp_miss(
    name: &str,
    tok: &Tok,
    totp: Totp,
    typed: &str,
    now: i64,
    policy: &Policy,
) {
    let period = i64::from(totp.period);
    let window = policy.window_steps_of(totp.period) * period;
    let found = totp.parse(typed.as_bytes()).and_then(|code| {
        totp.find(
            code,
            tok.key,
            totp.step_of(now),
            MAX_OFFSET_SECS / period,
            tok.key.len(),
        )
    });
    match found {
        Some(m) => println!(
            "{}",
            clock_advice(name, tok, m.step_offset * period, window)
        ),
        None => println!(
            "invalid: the code does not match {}'s secret anywhere within ±24 h: check that \
             the app holds this secret (scan the QR code again) and that its settings \
             are {} digits, {} and {} s (many apps ignore others)",
            tok.label(name),
            totp.digits,
            totp.algorithm.name().to_ascii_uppercase(),
            totp.period
        ),
    }
}

pub(super) fn explain_hotp_miss(
    name: &str,
    tok: &Tok,
    hotp: Hotp,
    typed: &str,
    next: u64,
    policy: &Policy,
) {
    let Some(code) = hotp.parse(typed.as_bytes()) else {
        return;
    };
    let who = tok.label(name);
    let window = u64::from(policy.hotp_window);
    if let Some(c) = hotp.find_ahead(code, tok.key, next, HOTP_RESYNC_SPAN, tok.key.len()) {
        println!(
            "invalid: the code matches counter {c} of {who}, {} past the next one expected, \
             beyond hotp_window = {window}: the token's button was pressed without logging in. \
             Run `motpctl resync {name}{} CODE1 CODE2` with two codes in a row from the token",
            c - next,
            tok.option()
        );
        return;
    }
    let back = next.saturating_sub(HOTP_RESYNC_SPAN);
    if next > 0 {
        if let Some(c) = hotp.find_ahead(code, tok.key, back, next - back - 1, tok.key.len()) {
            println!(
                "invalid: the code matches counter {c} of {who}, before the next one expected \
                 ({next}): an old code, already passed; press the button for a new one"
            );
            return;
        }
    }
    println!(
        "invalid: the code does not match {who}'s secret within {HOTP_RESYNC_SPAN} counters \
         of the next one expected ({next}): check that the token holds this secret"
    );
}
