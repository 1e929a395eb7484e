//! `resync`: a token's clock offset (mOTP, TOTP) or counter (HOTP) found from two consecutive
//! codes, and saved.

use motp::config::{Config, Token, MAX_OFFSET_SECS};
use motp::engine::{code_at_step, step_of, Code, Hotp, OtpCode, Totp, STEP_SECS};

use super::{parse_code, SEARCH_STEPS};
use crate::cli::ResyncArgs;
use crate::edit::{set_value, ConfigFile};
use crate::human::relative;
use crate::tokens::Tok;
use crate::users::RELOAD_HINT;
use crate::{Fail, Outcome, Status};

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
