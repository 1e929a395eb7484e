//! `verify`: whether a code is valid for a user now, decided by the plugin's own rule.

use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::{Config, Policy, Token};
use motp::state::{ReadOnly, UserState};
use motp::{factors, secret_hash};
use zeroize::Zeroizing;

use super::explain::{explain_hotp_miss, explain_motp_miss, explain_totp_miss, replay_wait};
use super::window::{center_offset, describe_hit, window_hit, Hit};
use crate::cli::VerifyArgs;
use crate::human::human_duration;
use crate::sys;
use crate::tokens::{self, Tok};
use crate::{Fail, Outcome, Status};

pub fn verify(args: VerifyArgs, now: i64) -> Outcome {
    let path = &args.config.config;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let name = &args.user;
    let Some(user) = config.users.get(name) else {
        println!("invalid: no user `{name}` in {}", path.display());
        return Ok(Status::Warn);
    };
    let toks = Tok::all(&user);
    let several = toks.len() > 1;
    let typed = args.code.trim().to_owned();
    let code_like = toks
        .iter()
        .any(|t| tokens::looks_like_code(&t.token, &typed));
    let recovery_like = !user.recovery_codes.is_empty()
        && !code_like
        && secret_hash::normalize_recovery_code(typed.as_bytes()).is_some();
    if !code_like && !recovery_like {
        let mut shapes: Vec<String> = toks.iter().map(|t| tokens::code_shape(&t.token)).collect();
        shapes.dedup();
        return Err(Fail(format!(
            "CODE must be {}{}; got {} characters",
            shapes.join(", or "),
            if user.recovery_codes.is_empty() {
                ""
            } else {
                ", or one of the user's recovery codes"
            },
            typed.chars().count()
        )));
    }
    if args.with_password && user.password.is_none() {
        return Err(Fail(format!(
            "`{name}` has no static password (`motpctl set-password {name}` sets one); leave out \
             --with-password"
        )));
    }
    let password = if args.with_password {
        Some(sys::read_secret("Static password: ", "static password")?)
    } else {
        None
    };
    let radius = config.policy.window_steps();

    // The plugin's own decision, on a read-only view of its store (nothing is recorded), for a
    // client holding the user's certificate: the CN is not checked here.
    let opened = crate::state::open_for_reading(&config);
    let store = opened.as_ref().ok().and_then(|s| s.as_deref());
    let view = ReadOnly::new(store);
    let policy = Policy {
        require_common_name: false,
        ..config.policy.clone()
    };
    let auth = Authenticator {
        policy: &policy,
        users: &config.users,
        store: &view,
        learned: None,
    };
    let sent = Zeroizing::new(
        [
            password.as_ref().map_or(&b""[..], |p| p.as_bytes()),
            typed.as_bytes(),
        ]
        .concat(),
    );
    let decision = auth.decide(
        &LoginRequest {
            username: Some(name.as_bytes()),
            password: Some(&sent),
            common_name: None,
        },
        now,
    );
    let state_of = |row: &str| -> UserState {
        match store {
            Some(store) => store.peek(row).unwrap_or_default(),
            None => UserState::default(),
        }
    };
    let state = || state_of(name);
    // Where the code matched (the first token whose window holds it), for the explanation.
    let mut matched: Option<(Tok, Hit, UserState)> = None;
    let mut hotp_next_of = Vec::with_capacity(toks.len());
    for tok in &toks {
        let row_state = state_of(&tok.row(name));
        let next = match tok.token {
            Token::Hotp { seed, .. } => factors::hotp_next_counter(row_state.last_step, seed),
            _ => 0,
        };
        hotp_next_of.push(next);
        if matched.is_some() {
            continue;
        }
        let center = center_offset(tok, &row_state, &policy);
        if let Some(hit) = window_hit(tok, &typed, &policy, now, next, center) {
            matched = Some((*tok, hit, row_state));
        }
    }
    let verdict = matched.map(|(tok, hit, _)| describe_hit(&tok, several, hit));
    let recovery_index = || {
        secret_hash::normalize_recovery_code(typed.as_bytes())
            .and_then(|n| secret_hash::recovery_match(user.recovery_codes, &n))
    };
    let checked_state = match &opened {
        Ok(_) => "not locked, not used yet; nothing was recorded".to_owned(),
        Err(why) => format!("nothing was recorded; replay and lockout state not checked: {why}"),
    };
    match (&decision, &verdict) {
        (Decision::Accepted { .. }, Some(verdict)) => {
            println!("valid: {verdict}");
            println!("({checked_state})");
            return Ok(Status::Ok);
        }
        (Decision::Accepted { step_offset }, None) => {
            println!("valid: matches step {step_offset:+}");
            println!("({checked_state})");
            return Ok(Status::Ok);
        }
        (Decision::RecoveryAccepted { index }, _) => {
            println!(
                "valid: recovery code {} of {} of `{name}`, not used yet (a login with it uses \
                 it up)",
                index + 1,
                user.recovery_codes.len()
            );
            println!("({checked_state})");
            return Ok(Status::Ok);
        }
        (Decision::BadPassword, _) if password.is_some() => {
            println!(
                "invalid: the {} is right, but the static password is wrong (a login like this \
                 counts as a failure and uses nothing up)",
                if matched.is_some() {
                    "code"
                } else {
                    "recovery code"
                }
            );
            return Ok(Status::Warn);
        }
        (Decision::BadPassword, _) => {
            // The code matched; the password in front of it was not given. The rule never got
            // to the state: check lock and replay here (the lock on the user's row, the replay
            // on the matching token's row).
            let seen = state();
            let what = verdict
                .clone()
                .unwrap_or_else(|| "is one of the user's recovery codes".to_owned());
            if seen.locked_until > now {
                println!(
                    "invalid now: the code {what}, but `{name}` is locked for another {} \
                     (`motpctl unlock {name}`)",
                    human_duration(seen.locked_until - now)
                );
                return Ok(Status::Warn);
            }
            let used = match matched {
                Some((
                    _,
                    Hit::Clock {
                        stored_step,
                        center_offset,
                        ..
                    },
                    row,
                )) => row.may_have_been_used_as(stored_step, center_offset, radius, false),
                Some((_, Hit::Counter { counter, .. }, row)) => {
                    row.may_have_been_used_as(counter as i64, 0, radius, true)
                }
                None => recovery_index()
                    .is_some_and(|i| seen.recovery_code_used(user.recovery_set, i as u8)),
            };
            if used {
                println!(
                    "invalid now: the code {what}, but it (or a later one) was already used, so \
                     the plugin refuses it as a replay"
                );
                return Ok(Status::Warn);
            }
            println!("valid: the code {what}");
            println!(
                "(the static password was not checked: `{name}` types it in front of the code; \
                 add --with-password to type it here too. {checked_state})"
            );
            return Ok(Status::Ok);
        }
        (Decision::Disabled, _) => {
            let code_part = verdict
                .as_ref()
                .map_or(String::new(), |v| format!("; the code itself {v}"));
            println!(
                "invalid: user `{name}` is disabled (`disabled = true`; `motpctl enable \
                 {name}`){code_part}"
            );
            return Ok(Status::Warn);
        }
        (Decision::Locked { until }, _) => {
            let code_part = match &verdict {
                Some(verdict) => format!("the code {verdict}, but "),
                None => String::new(),
            };
            println!(
                "invalid now: {code_part}`{name}` is locked for another {} \
                 (`motpctl unlock {name}`)",
                human_duration(until - now)
            );
            return Ok(Status::Warn);
        }
        (Decision::Replay, None) => {
            println!(
                "invalid now: this recovery code of `{name}` was already used; each works once \
                 (`motpctl recovery-codes {name}` makes a new set)"
            );
            return Ok(Status::Warn);
        }
        (Decision::Replay, Some(verdict)) => {
            let wait = match matched {
                Some((
                    Tok {
                        token: Token::Motp, ..
                    },
                    Hit::Clock {
                        stored_step,
                        center_offset,
                        ..
                    },
                    row,
                )) => replay_wait(&row, stored_step, center_offset, radius),
                Some((
                    Tok {
                        token: Token::Hotp { .. },
                        ..
                    },
                    _,
                    _,
                )) => "press the token's button for its next code (a code must come after the \
                       last one accepted)"
                    .to_owned(),
                _ => "wait for the app's next code (a code must be newer than the last one \
                      accepted)"
                    .to_owned(),
            };
            println!(
                "invalid now: the code {verdict}, but it (or a later one) was already used, \
                 so the plugin refuses it as a replay; {wait}"
            );
            return Ok(Status::Warn);
        }
        (Decision::StateUnavailable, _) => {
            return Err(Fail(format!(
                "cannot tell: the state store cannot be read{}",
                match &opened {
                    Err(why) => format!(" ({why})"),
                    Ok(_) => String::new(),
                }
            )));
        }
        _ => {}
    }
    if recovery_like {
        println!(
            "invalid: not one of `{name}`'s current recovery codes (a new set from `motpctl \
             recovery-codes` replaces the old one)"
        );
        return Ok(Status::Warn);
    }
    // Not in any token's window: explain for each token the code could be from.
    let mut explained = false;
    for (tok, next) in toks.iter().zip(&hotp_next_of) {
        if !tokens::looks_like_code(&tok.token, &typed) {
            continue;
        }
        if explained {
            print!("also: ");
        }
        explained = true;
        match tok.token {
            Token::Motp => {
                explain_motp_miss(path, name, tok, &typed, now, radius)?;
            }
            Token::Totp(totp) => explain_totp_miss(name, tok, totp, &typed, now, &policy),
            Token::Hotp { hotp, .. } => explain_hotp_miss(name, tok, hotp, &typed, *next, &policy),
        }
    }
    Ok(Status::Warn)
}
