//! code, verify and resync: everything that computes one-time codes (mOTP, TOTP, HOTP).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use motp::config::{Config, Token, MAX_OFFSET_SECS};
use motp::engine::{
    code_at_step, code_at_time, find_step, step_of, Code, Hotp, OtpCode, TokenKind, Totp, STEP_SECS,
};
use motp::{factors, secret_hash};
use toml_edit::DocumentMut;
use zeroize::Zeroizing;

use crate::cli::{CodeArgs, ResyncArgs, VerifyArgs};
use crate::edit::{self, set_value, ConfigFile};
use crate::human::{human_duration, relative};
use crate::sys::{self, StdinValues};
use crate::tokens::{self, Tok};
use crate::users::RELOAD_HINT;
use crate::{Fail, Outcome, Status};
use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Policy;
use motp::state::{ReadOnly, UserState};

/// How far `verify` and `resync` look for a phone's clock: ±24 h, the largest offset_secs the
/// plugin accepts.
pub const SEARCH_STEPS: i64 = MAX_OFFSET_SECS / STEP_SECS;

pub fn code(args: CodeArgs, now: i64) -> Outcome {
    let Some(name) = &args.name else {
        return code_of_secret(&args, now);
    };
    let path = &args.config.config;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let user = config
        .users
        .get(name)
        .ok_or_else(|| format!("no user `{name}` in {}", path.display()))?;
    let tok = Tok::select(&user, name, args.token.as_deref())?;
    let label = tok.label(name);
    if let Token::Hotp { seed, .. } = tok.token {
        if args.watch || args.at.is_some() {
            return Err(Fail(format!(
                "{label} is an HOTP token, whose codes follow a counter, not the clock: \
                 leave out --watch and --at (--counter N prints the code of counter N)"
            )));
        }
        let counter = match args.counter {
            Some(c) => c,
            None => {
                let (counter, from) = hotp_next(&config, &tok.row(name), seed);
                eprintln!("note: counter {counter}, {from}");
                counter
            }
        };
        let code = tokens::counter_code(tok.token, tok.key, counter).expect("an HOTP token");
        println!("{code}");
        return Ok(Status::Ok);
    }
    if args.counter.is_some() {
        return Err(Fail(format!(
            "--counter is for HOTP tokens; {label} is a {} token, whose codes follow the clock \
             (--at UNIX_SECONDS)",
            tok.token.kind_name()
        )));
    }
    let offset = tok.offset_secs;
    show_clock_codes(&args, now, |t| {
        tokens::clock_code(tok.token, tok.key, t.saturating_add(offset))
    })
}

/// `code --secret --pin`: an mOTP token that need not be in motp.toml.
fn code_of_secret(args: &CodeArgs, now: i64) -> Outcome {
    let mut stdin = StdinValues::new();
    let secret = stdin.resolve(args.secret.as_deref().unwrap_or("-"), "secret")?;
    let pin = stdin.resolve(args.pin.as_deref().unwrap_or("-"), "PIN")?;
    show_clock_codes(args, now, |t| {
        (
            code_at_time(&secret, &pin, t).to_hex(),
            STEP_SECS - t.rem_euclid(STEP_SECS),
        )
    })
}

/// Prints the code at `--at` or now, or keeps printing it with `--watch`. `code_at` gives the
/// code at a server time and the seconds until the next one.
fn show_clock_codes(args: &CodeArgs, now: i64, code_at: impl Fn(i64) -> (String, i64)) -> Outcome {
    if !args.watch {
        let at = args.at.unwrap_or(now);
        println!("{}", code_at(at).0);
        return Ok(Status::Ok);
    }
    let tty = std::io::stdout().is_terminal();
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        // Re-read the clock every time (the hidden --now only fixes the first reading).
        let t = now + started.elapsed().as_secs() as i64;
        let (code, left) = code_at(t);
        let line = format!("{code}  next in {left:>2} s");
        let written = if tty {
            write!(out, "\r{line}").and_then(|_| out.flush())
        } else {
            writeln!(out, "{line}")
        };
        written.map_err(|e| format!("cannot write to standard output: {e}"))?;
        if args
            .watch_for
            .is_some_and(|limit| started.elapsed().as_secs() + 1 > limit)
        {
            if tty {
                let _ = writeln!(out);
            }
            return Ok(Status::Ok);
        }
        // Sleep to the next whole second of elapsed time.
        let elapsed = started.elapsed();
        let next = Duration::from_secs(elapsed.as_secs() + 1);
        std::thread::sleep(next.saturating_sub(elapsed));
    }
}

/// The counter of the next code an HOTP token must show for the plugin, and where it comes
/// from (for a note): the state store's last accepted counter (on the token's row `name`),
/// else the config's seed.
fn hotp_next(config: &Config, name: &str, seed: u64) -> (u64, String) {
    if matches!(config.state, motp::config::StateConfig::Memory) {
        return (
            seed,
            "the `counter` of motp.toml; with `backend = \"memory\"` the plugin's own counter \
             is out of reach, and codes accepted since may have moved it on"
                .to_owned(),
        );
    }
    let opened = crate::state::open_for_reading(config);
    match &opened {
        Ok(Some(store)) => match store.peek(name) {
            Ok(state) => {
                let next = factors::hotp_next_counter(state.last_step, seed);
                let from = match state.last_step {
                    Some(last) => {
                        format!("the one after the last accepted ({last}, from the state store)")
                    }
                    None => "the `counter` of motp.toml (no code accepted yet)".to_owned(),
                };
                (next, from)
            }
            Err(e) => (
                seed,
                format!("the `counter` of motp.toml: the state store cannot be read ({e})"),
            ),
        },
        Ok(None) => (
            seed,
            "the `counter` of motp.toml (no state recorded yet)".to_owned(),
        ),
        Err(why) => (
            seed,
            format!(
                "the `counter` of motp.toml: the state store cannot be read, so codes accepted \
                 since may have moved it on ({why})"
            ),
        ),
    }
}

/// Parses a code as typed, or says what is wrong with it.
fn parse_code(text: &str, what: &str) -> Result<Code, Fail> {
    Code::parse(text.trim().as_bytes()).ok_or_else(|| {
        Fail(format!(
            "{what} must be the 6 hex characters the phone shows (0-9, a-f), e.g. 6ed4e4; \
             got {} characters",
            text.trim().chars().count()
        ))
    })
}

/// How long until the phone shows a code the plugin takes again, after a replay: the first
/// later step the plugin's rule ([`motp::state::UserState::may_have_been_used`]) lets through.
fn replay_wait(state: &motp::state::UserState, step: i64, offset_secs: i64, radius: i64) -> String {
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

/// Where a code matched in the plugin's window, for the explanation.
#[derive(Clone, Copy)]
enum Hit {
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
fn center_offset(tok: &Tok, state: &UserState, policy: &Policy) -> i64 {
    let learned = state.last_offset_secs.filter(|_| state.last_step.is_some());
    motp::drift::effective_offset(tok.offset_secs, learned, policy.max_drift_secs)
}

/// One token's window search, as the plugin's (for messages; the decision is the plugin's).
fn window_hit(
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

fn describe_hit(tok: &Tok, several: bool, hit: Hit) -> String {
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

/// Why an mOTP code is not in the window: the phone's clock, or the case of the secret.
fn explain_motp_miss(
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

fn explain_totp_miss(name: &str, tok: &Tok, totp: Totp, typed: &str, now: i64, policy: &Policy) {
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

fn explain_hotp_miss(name: &str, tok: &Tok, hotp: Hotp, typed: &str, next: u64, policy: &Policy) {
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

/// How many counters HOTP's `resync` (and `verify`'s explanation) search after the expected one.
pub const HOTP_RESYNC_SPAN: u64 = 10_000;

pub fn resync(args: ResyncArgs, now: i64) -> Outcome {
    let path = &args.config.config;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let name = &args.user;
    let user = config
        .users
        .get(name)
        .ok_or_else(|| format!("no user `{name}` in {}", path.display()))?;
    let tok = Tok::select(&user, name, args.token.as_deref())?;
    match tok.token {
        Token::Motp => resync_motp(&args, &config, &tok, now),
        Token::Totp(totp) => resync_totp(&args, &config, &tok, totp, now),
        Token::Hotp { hotp, seed } => resync_hotp(&args, &config, &tok, hotp, seed),
    }
}

/// Parses CODE1 and CODE2 for a TOTP or HOTP token.
fn parse_otp_pair(args: &ResyncArgs, digits: u8) -> Result<(OtpCode, OtpCode), Fail> {
    let parse = |text: &str, what: &str| {
        OtpCode::parse(text.trim().as_bytes(), digits).ok_or_else(|| {
            Fail(format!(
                "{what} must be the {digits} digits the app or token shows; got {} characters",
                text.trim().chars().count()
            ))
        })
    };
    Ok((parse(&args.code1, "CODE1")?, parse(&args.code2, "CODE2")?))
}

/// The step of the only pair `(codes[i], codes[i + 1]) == (code1, code2)`, `first` being the
/// step of `codes[0]`; or the refusal to print.
fn only_pair<C: PartialEq + Copy>(
    codes: &[C],
    first: i64,
    code1: C,
    code2: C,
    name: &str,
    older_hint: &str,
) -> Result<i64, Fail> {
    let matches: Vec<i64> = codes
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[0] == code1 && pair[1] == code2)
        .map(|(i, _)| first + i as i64)
        .collect();
    match matches.as_slice() {
        [] => {
            let hint = if codes.contains(&code1) && codes.contains(&code2) {
                " Both codes match on their own, but not as neighbours: give the older code \
                 first, and the one that followed it right after."
            } else {
                older_hint
            };
            Err(Fail(format!(
                "CODE1 and CODE2 are not two consecutive codes of `{name}` anywhere within ±24 h \
                 of the server's clock; nothing was changed.{hint}"
            )))
        }
        [s] => Ok(*s),
        many => Err(Fail(format!(
            "the two codes fit {} places within ±24 h; nothing was changed. Try again with \
             two fresh consecutive codes.",
            many.len()
        ))),
    }
}

fn resync_motp(args: &ResyncArgs, config: &Config, tok: &Tok, now: i64) -> Outcome {
    let code1 = parse_code(&args.code1, "CODE1")?;
    let code2 = parse_code(&args.code2, "CODE2")?;
    // One hash per step from -24 h to +24 h (and one more), then look for the pair.
    let server_step = step_of(now);
    let first = server_step - SEARCH_STEPS;
    let codes: Vec<Code> = (first..=server_step + SEARCH_STEPS + 1)
        .map(|s| code_at_step(s.max(0), tok.key))
        .collect();
    let step = only_pair(
        &codes,
        first,
        code1,
        code2,
        &args.user,
        " Check that both codes come from this user's phone, the older first, and that the \
         phone app has the right PIN.",
    )?;
    // CODE2 is what the phone shows now, so its step is the phone's current step.
    let offset = (step + 1 - server_step) * STEP_SECS;
    save_offset(args, config, tok, offset, &[step, step + 1])
}

fn resync_totp(args: &ResyncArgs, config: &Config, tok: &Tok, totp: Totp, now: i64) -> Outcome {
    let (code1, code2) = parse_otp_pair(args, totp.digits)?;
    let period = i64::from(totp.period);
    let search = MAX_OFFSET_SECS / period;
    let server_step = totp.step_of(now);
    let first = (server_step - search).max(0);
    let codes: Vec<u32> = (first..=server_step + search + 1)
        .map(|s| totp.value_at_step(tok.key, s as u64))
        .collect();
    let step = only_pair(
        &codes,
        first,
        code1.value(),
        code2.value(),
        &args.user,
        " Check that both codes come from this user's app, the older first, and that the app's \
         settings match the user's (digits, algorithm, period).",
    )?;
    let offset = (step + 1 - server_step) * period;
    let stored = [tok.token.stored_step(step), tok.token.stored_step(step + 1)];
    save_offset(args, config, tok, offset, &stored)
}

/// Records the two codes (`stored` steps) as used, then writes `offset` as offset_secs.
fn save_offset(
    args: &ResyncArgs,
    config: &Config,
    tok: &Tok,
    offset: i64,
    stored: &[i64],
) -> Outcome {
    let name = &args.user;
    let shown = match tok.name() {
        Some(t) => format!("{name} token {t}"),
        None => name.to_owned(),
    };
    let path = &args.config.config;
    if offset.unsigned_abs() > MAX_OFFSET_SECS as u64 {
        return Err(Fail(format!(
            "the phone's clock is {}, more than the ±{MAX_OFFSET_SECS} s offset_secs \
             allows; set the phone's clock instead",
            relative(offset)
        )));
    }
    // The two codes were read out to whoever runs this (a ticket, a phone call): they must not
    // log in afterwards, whatever happens to the offset.
    let recorded = crate::state::record_used(config, name, tok.name(), stored, offset, false)?;
    if !recorded {
        eprintln!(
            "note: with `backend = \"memory\"` the plugin's state is inside OpenVPN, out of \
             motpctl's reach: CODE1 and CODE2 were not recorded as used and stay valid for a \
             login for up to window_secs"
        );
    }
    let old = tok.offset_secs;
    let description = relative(offset);
    if offset == old {
        println!(
            "{shown}: offset_secs is already {offset} (phone {description}); \
             nothing changed in the config; drift tracking starts again from there"
        );
        return Ok(Status::Ok);
    }
    let mut file = ConfigFile::open(path)?;
    set_value(
        file.token_mut(name, tok.name())?,
        "offset_secs",
        offset.into(),
    );
    file.save()?;
    println!(
        "{shown}: offset_secs {old} → {offset} (phone {description}; drift tracking starts \
         again from there)"
    );
    println!("{RELOAD_HINT}");
    Ok(Status::Ok)
}

fn resync_hotp(args: &ResyncArgs, config: &Config, tok: &Tok, hotp: Hotp, seed: u64) -> Outcome {
    let name = &args.user;
    let path = &args.config.config;
    let (code1, code2) = parse_otp_pair(args, hotp.digits)?;
    let (next, from) = crate::state::hotp_next_from_child(config, name, tok.name(), seed)?;
    let who = tok.label(name);
    let shown = match tok.name() {
        Some(t) => format!("{name} token {t}"),
        None => name.to_owned(),
    };
    let Some(c) = hotp.find_pair(code1, code2, tok.key, next, HOTP_RESYNC_SPAN) else {
        let back = next.saturating_sub(HOTP_RESYNC_SPAN);
        let hint = if hotp
            .find_pair(code1, code2, tok.key, back, next - back)
            .is_some()
        {
            " They are older codes, from before the last one accepted: ask for two new ones."
        } else {
            " Check that both codes come from this user's token, in the order shown."
        };
        return Err(Fail(format!(
            "CODE1 and CODE2 are not two consecutive codes of {who} within the \
             {HOTP_RESYNC_SPAN} counters after the next one expected ({next}, {from}); nothing \
             was changed.{hint}"
        )));
    };
    let (Ok(c_i64), Some(after)) = (i64::try_from(c), c.checked_add(2)) else {
        return Err(Fail("the token's counter is out of range".into()));
    };
    let recorded =
        crate::state::record_used(config, name, tok.name(), &[c_i64, c_i64 + 1], 0, true)?;
    if recorded {
        println!(
            "{shown}: the token is at counter {c} (it was {} past the next one expected, {next}); \
             both codes were recorded as used, the plugin now accepts the token's next code \
             (counter {after})",
            c - next
        );
        return Ok(Status::Ok);
    }
    // The memory backend: the plugin's counter is out of reach, the config's seed is not. The
    // plugin starts its search at the larger of the two.
    let mut file = ConfigFile::open(path)?;
    set_value(
        file.token_mut(name, tok.name())?,
        "counter",
        (after as i64).into(),
    );
    file.save()?;
    eprintln!(
        "note: with `backend = \"memory\"` the plugin's state is inside OpenVPN, out of motpctl's \
         reach: the counter is moved on in motp.toml instead, which also makes CODE1 and CODE2 \
         unusable"
    );
    println!("{shown}: counter {seed} → {after} (the token's next code)");
    println!("{RELOAD_HINT}");
    Ok(Status::Ok)
}
