//! `code`: the code a user's token shows now (or at a given time or counter).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use motp::config::{Config, Token};
use motp::engine::{code_at_time, STEP_SECS};
use motp::factors;

use crate::cli::CodeArgs;
use crate::sys::StdinValues;
use crate::tokens::{self, Tok};
use crate::{Fail, Outcome, Status};

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
