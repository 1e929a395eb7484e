//! Where a code matched in the plugin's window, found as the plugin searches it (for the
//! messages of `verify`).

use motp::config::{Policy, Token};
use motp::engine::{find_step, step_of, Code, TokenKind, STEP_SECS};
use motp::state::UserState;

use crate::human::relative;
use crate::tokens::Tok;

/// Where a code matched in the plugin's window, for the explanation.
#[derive(Clone, Copy)]
pub(super) enum Hit {
    /// mOTP or TOTP: the step as the store keeps it, the offset in the token's own steps, and
    /// the offset the window was centred on (offset_secs, moved by drift tracking).
    Clock {
        stored_step: i64,
        step_offset: i64,
        center_offset: i64,
    },
    /// HOTP: the counter, and how many counters past the next expected one.
    Counter { counter: u64, ahead: u64 },
}

/// The offset the plugin centres a clock token's window on: offset_secs, moved to where the
/// row's last accepted code showed the phone's clock, within max_drift_secs.
pub(super) fn center_offset(tok: &Tok, state: &UserState, policy: &Policy) -> i64 {
    let learned = state.last_offset_secs.filter(|_| state.last_step.is_some());
    motp::drift::effective_offset(tok.offset_secs, learned, policy.max_drift_secs)
}

/// One token's window search, as the plugin's (for messages; the decision is the plugin's).
pub(super) fn window_hit(
    tok: &Tok,
    code: &str,
    policy: &Policy,
    now: i64,
    hotp_next: u64,
    center_offset: i64,
) -> Option<Hit> {
    let center_time = now.saturating_add(center_offset);
    match tok.token {
        Token::Motp => {
            let code = Code::parse(code.as_bytes())?;
            let m = find_step(code, tok.key, step_of(center_time), policy.window_steps())?;
            Some(Hit::Clock {
                stored_step: m.step,
                step_offset: m.step_offset,
                center_offset,
            })
        }
        Token::Totp(totp) => {
            let code = totp.parse(code.as_bytes())?;
            let radius = policy.window_steps_of(totp.period);
            let m = totp.find(
                code,
                tok.key,
                totp.step_of(center_time),
                radius,
                tok.key.len(),
            )?;
            Some(Hit::Clock {
                stored_step: tok.token.stored_step(m.step),
                step_offset: m.step_offset,
                center_offset,
            })
        }
        Token::Hotp { hotp, .. } => {
            let code = hotp.parse(code.as_bytes())?;
            let counter = hotp.find_ahead(
                code,
                tok.key,
                hotp_next,
                u64::from(policy.hotp_window),
                tok.key.len(),
            )?;
            Some(Hit::Counter {
                counter,
                ahead: counter - hotp_next,
            })
        }
    }
}

/// The length of one of the token's steps, seconds (mOTP 10, TOTP its period).
fn step_secs(token: &Token) -> i64 {
    match token {
        Token::Totp(totp) => i64::from(totp.period),
        _ => STEP_SECS,
    }
}

pub(super) fn describe_hit(tok: &Tok, several: bool, hit: Hit) -> String {
    let which = match (several, tok.name()) {
        (_, Some(n)) => format!(" (token `{n}`)"),
        (true, None) => " (the user's own token)".to_owned(),
        (false, None) => String::new(),
    };
    match hit {
        Hit::Clock {
            step_offset,
            center_offset,
            ..
        } => {
            let mut notes = Vec::new();
            if tok.offset_secs != 0 {
                notes.push(format!("offset_secs = {}", tok.offset_secs));
            }
            if center_offset != tok.offset_secs {
                notes.push(format!(
                    "window centred where the phone's clock was last seen, {:+} s from \
                     offset_secs",
                    center_offset - tok.offset_secs
                ));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            };
            format!(
                "matches step {step_offset:+}{which} (phone {}{notes})",
                relative(step_offset * step_secs(&tok.token) + center_offset),
            )
        }
        Hit::Counter { counter, ahead: 0 } => {
            format!("matches counter {counter}{which}, the next one expected")
        }
        Hit::Counter { counter, ahead } => format!(
            "matches counter {counter}{which}, {ahead} past the next one expected (codes shown \
             but not used)"
        ),
    }
}
