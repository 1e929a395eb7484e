//! code, verify and resync: everything that computes mOTP codes.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use motp::config::{Config, MAX_OFFSET_SECS};
use motp::engine::{code_at_step, code_at_time, find_step, step_of, Code, STEP_SECS};
use toml_edit::DocumentMut;

use crate::cli::{CodeArgs, ResyncArgs, VerifyArgs};
use crate::edit::{self, set_value, ConfigFile};
use crate::human::{human_duration, relative};
use crate::sys::StdinValues;
use crate::{Fail, Outcome, Status};
use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Policy;
use motp::state::{ReadOnly, UserState};

/// How far `verify` and `resync` look for a phone's clock: ±24 h, the largest offset_secs the
/// plugin accepts.
pub const SEARCH_STEPS: i64 = MAX_OFFSET_SECS / STEP_SECS;

pub fn code(args: CodeArgs, now: i64) -> Outcome {
    let mut stdin = StdinValues::new();
    let secret = stdin.resolve(&args.secret, "secret")?;
    let pin = stdin.resolve(&args.pin, "PIN")?;
    if !args.watch {
        let at = args.at.unwrap_or(now);
        println!("{}", code_at_time(&secret, &pin, at).to_hex());
        return Ok(Status::Ok);
    }
    let tty = std::io::stdout().is_terminal();
    let started = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        // Re-read the clock every time (the hidden --now only fixes the first reading).
        let t = now + started.elapsed().as_secs() as i64;
        let left = STEP_SECS - t.rem_euclid(STEP_SECS);
        let code = code_at_time(&secret, &pin, t).to_hex();
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

pub fn verify(args: VerifyArgs, now: i64) -> Outcome {
    let path = &args.config.config;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let code = parse_code(&args.code, "CODE")?;
    let name = &args.user;
    let Some(user) = config.users.get(name) else {
        println!("invalid: no user `{name}` in {}", path.display());
        return Ok(Status::Warn);
    };
    let radius = config.policy.window_steps();
    let window = radius * STEP_SECS;
    let offset_note = if user.offset_secs == 0 {
        String::new()
    } else {
        format!("; offset_secs = {}", user.offset_secs)
    };

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
    let decision = auth.decide(
        &LoginRequest {
            username: Some(name.as_bytes()),
            password: Some(args.code.trim().as_bytes()),
            common_name: None,
        },
        now,
    );
    // Which step the code matched, for the explanation only.
    let matched = find_step(
        code,
        user.key,
        step_of(now.saturating_add(user.offset_secs)),
        radius,
    );
    let verdict = matched.map(|m| {
        format!(
            "matches step {:+} (phone {}{offset_note})",
            m.step_offset,
            relative(m.step_offset * STEP_SECS + user.offset_secs),
        )
    });
    let state = || -> UserState {
        let mut seen = UserState::default();
        if let Some(store) = store {
            let _ = store.update(name, &mut |s| seen = *s);
        }
        seen
    };
    match (&decision, &verdict) {
        (Decision::Accepted { .. }, Some(verdict)) => {
            println!("valid: {verdict}");
            match &opened {
                Ok(_) => println!("(not locked, not used yet; nothing was recorded)"),
                Err(why) => {
                    println!("(nothing was recorded; replay and lockout state not checked: {why})")
                }
            }
            return Ok(Status::Ok);
        }
        (Decision::Disabled, Some(verdict)) => {
            println!(
                "invalid: user `{name}` is disabled (`disabled = true`; `motpctl enable {name}`); \
                 the code itself {verdict}"
            );
            return Ok(Status::Warn);
        }
        (Decision::Disabled, None) => {
            println!(
                "invalid: user `{name}` is disabled (`disabled = true`; `motpctl enable {name}`)"
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
        (Decision::Replay, Some(verdict)) => {
            let m = matched.expect("a replay matched a step");
            println!(
                "invalid now: the code {verdict}, but it (or a later one) was already used, \
                 so the plugin refuses it as a replay; {}",
                replay_wait(&state(), m.step, user.offset_secs, radius)
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

    let server_step = step_of(now);
    if let Some(m) = find_step(code, user.key, server_step, SEARCH_STEPS) {
        let phone = m.step_offset * STEP_SECS;
        let sign = match phone.signum() {
            1 => " (positive: the phone runs ahead)",
            -1 => " (negative: the phone runs behind)",
            _ => "",
        };
        println!(
            "invalid: not within the window of ±{window} s{}. The code matches the \
             phone's clock being {}, so offset_secs = {phone}{sign} would fit. Set the phone's \
             clock to network time, or run `motpctl resync {name} CODE1 CODE2` with two \
             consecutive codes, which finds the offset and saves it as offset_secs (one code \
             is not enough: it matches somewhere in ±24 h by chance about once in a thousand \
             tries).",
            if user.offset_secs == 0 {
                String::new()
            } else {
                format!(" (offset_secs = {})", user.offset_secs)
            },
            relative(phone)
        );
        return Ok(Status::Warn);
    }
    // Not even within a day: look for the usual mistake, a secret whose letters differ in case
    // from what the phone hashes.
    if let Some((secret, pin)) = raw_secret_and_pin(path, name) {
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
        "invalid: the code does not match `{name}`'s secret and PIN anywhere within ±24 h: check \
         the PIN typed into the phone app and the secret it holds"
    );
    Ok(Status::Warn)
}

pub fn resync(args: ResyncArgs, now: i64) -> Outcome {
    let path = &args.config.config;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let code1 = parse_code(&args.code1, "CODE1")?;
    let code2 = parse_code(&args.code2, "CODE2")?;
    let name = &args.user;
    let user = config
        .users
        .get(name)
        .ok_or_else(|| format!("no user `{name}` in {}", path.display()))?;

    // One hash per step from -24 h to +24 h (and one more), then look for the pair.
    let server_step = step_of(now);
    let first = server_step - SEARCH_STEPS;
    let codes: Vec<Code> = (first..=server_step + SEARCH_STEPS + 1)
        .map(|s| code_at_step(s.max(0), user.key))
        .collect();
    let matches: Vec<i64> = codes
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[0] == code1 && pair[1] == code2)
        .map(|(i, _)| first + i as i64)
        .collect();
    let step = match matches.as_slice() {
        [] => {
            let hint = if codes.contains(&code1) && codes.contains(&code2) {
                " Both codes match on their own, but not as neighbours: give the older code \
                 first, and the one that followed it right after."
            } else {
                " Check that both codes come from this user's phone, the older first, and that \
                 the phone app has the right PIN."
            };
            return Err(Fail(format!(
                "CODE1 and CODE2 are not two consecutive codes of `{name}` anywhere within ±24 h \
                 of the server's clock; nothing was changed.{hint}"
            )));
        }
        [s] => *s,
        many => {
            return Err(Fail(format!(
                "the two codes fit {} places within ±24 h; nothing was changed. Try again with \
                 two fresh consecutive codes.",
                many.len()
            )))
        }
    };
    // CODE2 is what the phone shows now, so its step is the phone's current step.
    let offset = (step + 1 - server_step) * STEP_SECS;
    if offset.unsigned_abs() > MAX_OFFSET_SECS as u64 {
        return Err(Fail(format!(
            "the phone's clock is {}, more than the ±{MAX_OFFSET_SECS} s offset_secs \
             allows; set the phone's clock instead",
            relative(offset)
        )));
    }
    // The two codes were read out to whoever runs this (a ticket, a phone call): they must not
    // log in afterwards, whatever happens to the offset.
    let recorded = crate::state::record_used(&config, name, &[step, step + 1], offset)?;
    if !recorded {
        eprintln!(
            "note: with `backend = \"memory\"` the plugin's state is inside OpenVPN, out of \
             motpctl's reach: CODE1 and CODE2 were not recorded as used and stay valid for a \
             login for up to window_secs"
        );
    }
    let old = user.offset_secs;
    let description = relative(offset);
    if offset == old {
        println!(
            "{name}: offset_secs is already {offset} (phone {description}); \
             nothing changed"
        );
        return Ok(Status::Ok);
    }
    let mut file = ConfigFile::open(path)?;
    set_value(file.user_mut(name)?, "offset_secs", offset.into());
    file.save()?;
    println!("{name}: offset_secs {old} → {offset} (phone {description})");
    println!("the plugin applies the change within one to two seconds (no reload needed)");
    Ok(Status::Ok)
}
