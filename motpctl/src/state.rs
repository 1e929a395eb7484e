//! status and unlock: the plugin's lockout and replay state, read and cleared through the same
//! store the plugin uses (`motp::state::SqliteStore` or `RedisStore`, shared safely with
//! running OpenVPNs).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use motp::config::{Config, StateConfig};
use motp::state::{Host, RedisStore, SqliteStore, StateStore, UserState, DB_FILE_NAME};

use crate::cli::{StatusArgs, UserArgs};
use crate::human::human_duration;
use crate::tokens::Tok;

use crate::{Fail, Outcome, Status};

/// The store of this config, or `None` when nothing was ever recorded (no database yet).
fn open_store(config: &Config) -> Result<Option<Box<dyn StateStore>>, Fail> {
    open_store_for(config, false)
}

/// As [`open_store`]; with `create`, a missing local database is created (as the plugin would).
fn open_store_for(config: &Config, create: bool) -> Result<Option<Box<dyn StateStore>>, Fail> {
    let dir = match &config.state {
        StateConfig::Memory => {
            return Err(Fail(format!(
                "not available with `backend = \"memory\"` in the [state] table of {}: that \
                 state lives inside the OpenVPN process, where motpctl cannot reach it. A lockout \
                 ends by itself after lockout_secs; restarting OpenVPN clears them all. Use \
                 backend = \"local\" (the default) to manage it with motpctl",
                config.path.display()
            )))
        }
        StateConfig::Local { dir } => dir,
        // The plugin's own client: the same keys, the same compare-and-set update, so an
        // unlock racing a login on a server is decided like two servers racing. No fallback:
        // motpctl must show and change what Redis holds, or say it cannot.
        StateConfig::Redis(redis) => {
            return RedisStore::open(redis, config.policy.retention_secs(), None)
                .map(|store| Some(Box::new(store) as Box<dyn StateStore>))
                .map_err(Fail);
        }
    };
    let db = dir.join(DB_FILE_NAME);
    match fs::symlink_metadata(&db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fail(format!("cannot examine {}: {e}", db.display()))),
    }
    become_owner_of(dir)?;
    // The real clock, whatever `--now` says: opening records the boot and may mark lost
    // history, and those must be true. Nothing is pruned from motpctl.
    let host = Host::current();
    let sink: motp::log::Sink = Arc::new(|level, line: &str| eprintln!("{level}: {line}"));
    let dispatch = motp::log::dispatch(sink, tracing::Level::WARN);
    tracing::dispatcher::with_default(&dispatch, || SqliteStore::open_without_pruning(dir, host))
        .map(|store| Some(Box::new(store) as Box<dyn StateStore>))
        .map_err(|e| Fail(e.to_string()))
}

/// Makes this process the owner of the state directory before it opens anything in it. Every
/// name in that directory is its owner's choice (the runtime user's, `nobody`): root opening,
/// creating or renaming them could be steered onto any file of the system. So root switches to
/// the directory's uid and gid (no supplementary groups) first; another user must own it.
fn become_owner_of(dir: &Path) -> Result<(), Fail> {
    let meta = fs::metadata(dir).map_err(|e| {
        Fail(format!(
            "cannot examine the state directory {}: {e}",
            dir.display()
        ))
    })?;
    let me = motp::os::effective_uid();
    let (uid, gid) = (meta.uid(), meta.gid());
    if me == uid {
        return Ok(());
    }
    let owner = motp::os::user_label(uid);
    if me != 0 {
        return Err(Fail(format!(
            "the state directory {} belongs to {owner}: run this as root, or as that user \
             (`sudo -u {owner} motpctl ...`)",
            dir.display()
        )));
    }
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[])
        .and_then(|()| setgid(Gid::from_raw(gid)))
        .and_then(|()| setuid(Uid::from_raw(uid)))
        .map_err(|e| {
            Fail(format!(
                "cannot switch to {owner} (uid {uid}, gid {gid}), the owner of the state \
                 directory {}: {e}; motpctl does not open the state as root in a directory \
                 another user controls",
                dir.display()
            ))
        })?;
    if motp::os::effective_uid() != uid {
        return Err(Fail(format!(
            "switching to {owner} (uid {uid}) did not take effect; not opening the state"
        )));
    }
    Ok(())
}

/// Records the codes of phone steps `steps`, shown with offset `offset_secs`, as used by
/// `name` (as if the plugin had accepted them), so that codes an admin was given (`resync`)
/// cannot log in afterwards. `Ok(false)`: the state lives in OpenVPN's memory
/// (`backend = "memory"`), out of reach; nothing recorded.
///
/// Runs `motpctl record-used` as a child process: opening a local store switches this process
/// to the state directory's owner for good (see [`become_owner_of`]), and the caller still has
/// motp.toml, root's file, to write.
pub fn record_used(
    config: &Config,
    name: &str,
    token: Option<&str>,
    steps: &[i64],
    offset_secs: i64,
    counter_based: bool,
) -> Result<bool, Fail> {
    if matches!(config.state, StateConfig::Memory) {
        return Ok(false);
    }
    let exe = std::env::current_exe()
        .map_err(|e| Fail(format!("cannot find motpctl's own executable: {e}")))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("record-used")
        .arg(name)
        .arg(format!("--offset-secs={offset_secs}"))
        .arg("-c")
        .arg(&config.path);
    if counter_based {
        command.arg("--counter-based");
    }
    if let Some(token) = token {
        command.arg(format!("--token={token}"));
    }
    for step in steps {
        command.arg(step.to_string());
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Fail(format!("cannot run motpctl record-used: {e}")))?;
    if out.status.success() {
        return Ok(true);
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why
        .trim()
        .trim_start_matches("motpctl: ")
        .trim_start_matches("error: ");
    Err(Fail(format!(
        "cannot record the codes as used in the state store: {why}; nothing was changed"
    )))
}

/// `motpctl record-used`: [`record_used`]'s child.
pub fn record_used_here(args: crate::cli::RecordUsedArgs) -> Outcome {
    let config = load(&args.config.config)?;
    let Some(user) = config.users.get(&args.user) else {
        return Err(Fail(format!(
            "no user `{}` in {}",
            args.user,
            args.config.config.display()
        )));
    };
    let row = Tok::select(&user, &args.user, args.token.as_deref())?.row(&args.user);
    let store = open_store_for(&config, true)?
        .ok_or_else(|| Fail("the state database could not be created".to_owned()))?;
    store
        .update(&row, &mut |s| {
            for step in &args.steps {
                s.record_accepted(*step, args.offset_secs);
            }
            // As the plugin's rule does for a counter token: the counter must outlive pruning.
            s.keep |= args.counter_based;
        })
        .map_err(|e| Fail(e.to_string()))?;
    Ok(Status::Ok)
}

/// The counter of the next code an HOTP user's token must show, read from the state store in a
/// child process (`motpctl hotp-next`, for the same reason as [`record_used`]: the caller
/// still has motp.toml to write), with where it comes from for messages. With `backend =
/// "memory"` the config's seed `seed` (the plugin's own counter is out of reach).
pub fn hotp_next_from_child(
    config: &Config,
    name: &str,
    token: Option<&str>,
    seed: u64,
) -> Result<(u64, String), Fail> {
    if matches!(config.state, StateConfig::Memory) {
        return Ok((
            seed,
            "the `counter` of motp.toml; with `backend = \"memory\"` the plugin's own counter \
             is out of motpctl's reach"
                .to_owned(),
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Fail(format!("cannot find motpctl's own executable: {e}")))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("hotp-next")
        .arg(name)
        .arg("-c")
        .arg(&config.path);
    if let Some(token) = token {
        command.arg(format!("--token={token}"));
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Fail(format!("cannot run motpctl hotp-next: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let parsed = (
        words.next().and_then(|w| w.parse::<u64>().ok()),
        words.next(),
    );
    match parsed {
        (Some(next), Some(last)) if out.status.success() => Ok((
            next,
            if last == "-" {
                "the `counter` of motp.toml (no code accepted yet)".to_owned()
            } else {
                format!("the one after the last accepted, {last}, from the state store")
            },
        )),
        _ => {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why
                .trim()
                .trim_start_matches("motpctl: ")
                .trim_start_matches("error: ");
            Err(Fail(format!(
                "cannot read the token's counter from the state store: {why}; nothing was changed"
            )))
        }
    }
}

/// `motpctl hotp-next`: [`hotp_next_from_child`]'s child. Prints the next counter and the last
/// accepted one (`-` for none).
pub fn hotp_next_here(args: crate::cli::HotpNextArgs) -> Outcome {
    let config = load(&args.config.config)?;
    let Some(user) = config.users.get(&args.name) else {
        return Err(Fail(format!(
            "no user `{}` in {}",
            args.name,
            args.config.config.display()
        )));
    };
    let tok = Tok::select(&user, &args.name, args.token.as_deref())?;
    let motp::config::Token::Hotp { seed, .. } = tok.token else {
        return Err(Fail(format!(
            "{} is not an HOTP token",
            tok.label(&args.name)
        )));
    };
    let state = match open_store(&config)? {
        Some(store) => read(&*store, &tok.row(&args.name))?,
        None => UserState::default(),
    };
    let next = motp::factors::hotp_next_counter(state.last_step, seed);
    match state.last_step {
        Some(last) => println!("{next} {last}"),
        None => println!("{next} -"),
    }
    Ok(Status::Ok)
}

/// The store for `verify` to read: `Ok(None)` when nothing is recorded yet, `Err` with the
/// reason when the state cannot be read (memory backend, not our database, ...).
pub fn open_for_reading(config: &Config) -> Result<Option<Box<dyn StateStore>>, String> {
    open_store(config).map_err(|Fail(e)| e)
}

/// The user's state, read without changing anything ([`StateStore::peek`]).
fn read(store: &dyn StateStore, name: &str) -> Result<UserState, Fail> {
    store.peek(name).map_err(|e| Fail(e.to_string()))
}

/// One line of `status`: the user's own row (`tok` its own token: lock, failures, replay and
/// drift), or a further token's row (replay and drift only; its lock is the user's).
fn describe(config: &Config, name: &str, tok: &Tok, state: &UserState, now: i64) -> String {
    let mut parts = Vec::new();
    let own = tok.name().is_none();
    if own {
        if state.locked_until > now {
            parts.push(format!(
                "LOCKED for another {} (until Unix time {}; `motpctl unlock {name}`)",
                human_duration(state.locked_until - now),
                state.locked_until
            ));
        } else {
            parts.push("not locked".to_owned());
        }
        parts.push(match state.failures {
            0 => "no failed logins".to_owned(),
            n => format!(
                "{n} failed login{} (locks at {})",
                if n == 1 { "" } else { "s" },
                config.policy.max_failures
            ),
        });
    } else {
        parts.push(format!("{} token", tok.token.kind_name()));
    }
    if let motp::config::Token::Hotp { seed, .. } = tok.token {
        let next = motp::factors::hotp_next_counter(state.last_step, seed);
        parts.push(match state.last_step {
            Some(last) => format!("HOTP counter: last accepted {last}, next expected {next}"),
            None => format!("HOTP counter: no code accepted yet, next expected {next} (the seed)"),
        });
    } else if let Some(step) = state.last_step {
        // The offset the code was accepted with: where it showed the phone's clock (an older
        // store did not record it: the one in force now).
        let offset = state.last_offset_secs.unwrap_or(tok.offset_secs);
        let age = now.saturating_add(offset) - step * motp::engine::STEP_SECS;
        parts.push(if age >= 0 {
            format!("last code accepted about {} ago", human_duration(age))
        } else {
            "last code accepted is ahead of the clock".to_owned()
        });
        if let Some(seen) = state.last_offset_secs {
            parts.push(drift_note(
                seen,
                tok.offset_secs,
                config.policy.max_drift_secs,
            ));
        }
    }
    if own {
        match state.recovery_used.count_ones() {
            0 => {}
            n => parts.push(format!(
                "{n} recovery code{} used",
                if n == 1 { "" } else { "s" }
            )),
        }
    }
    if state.keep {
        // A counter token's counter or used recovery codes: never pruned, never expired.
        parts.push("state kept (never pruned)".to_owned());
    }
    if own {
        parts.push(format!("{} token", tok.token.kind_name()));
    }
    match tok.name() {
        Some(t) => format!("{name} token {t}: {}", parts.join(", ")),
        None => format!("{name}: {}", parts.join(", ")),
    }
}

/// Where the last accepted code showed the phone's clock, against the configured
/// offset_secs: the drift the plugin's window follows, within max_drift_secs.
fn drift_note(seen: i64, configured: i64, max_drift_secs: u32) -> String {
    let drift = seen.saturating_sub(configured);
    let bound = i64::from(max_drift_secs);
    let how = if max_drift_secs == 0 {
        " (drift tracking off: max_drift_secs = 0; the window stays at offset_secs)".to_owned()
    } else if drift.abs() > bound {
        format!(
            " (beyond max_drift_secs = {bound}: the window follows only {bound} s; `motpctl \
             resync` sets offset_secs)"
        )
    } else {
        String::new()
    };
    format!("phone clock seen {drift:+} s from offset_secs{how}")
}

fn load(path: &Path) -> Result<Config, Fail> {
    Config::load(path).map_err(|e| Fail(e.to_string()))
}

pub fn status(args: StatusArgs, now: i64) -> Outcome {
    let config = load(&args.config.config)?;
    let mut names: Vec<&str> = match &args.user {
        Some(u) if config.users.get(u).is_none() => {
            return Err(Fail(format!(
                "no user `{u}` in {}",
                args.config.config.display()
            )))
        }
        Some(u) => vec![u.as_str()],
        None => config.users.names().collect(),
    };
    names.sort_unstable();
    let Some(store) = open_store(&config)? else {
        println!("no state recorded yet (no state database): no user is locked");
        return Ok(Status::Ok);
    };
    let mut locked = 0;
    let mut lost = None;
    for name in names {
        let Some(user) = config.users.get(name) else {
            continue;
        };
        for tok in Tok::all(&user) {
            let state = read(&*store, &tok.row(name))?;
            if tok.name().is_none() && state.locked_until > now {
                locked += 1;
            }
            lost = lost.or(state.history_lost_at);
            println!("{}", describe(&config, name, &tok, &state, now));
        }
    }
    if let Some(at) = lost {
        println!(
            "note: the state store lost its history {} ago (a damaged database, or a crash \
             before a reboot); codes that may have been used before then are refused as replays",
            human_duration(now - at)
        );
    }
    Ok(if locked > 0 { Status::Warn } else { Status::Ok })
}

pub fn unlock(args: UserArgs, now: i64) -> Outcome {
    let config = load(&args.config.config)?;
    let name = &args.name;
    if config.users.get(name).is_none() {
        return Err(Fail(format!(
            "no user `{name}` in {}",
            args.config.config.display()
        )));
    }
    let Some(store) = open_store(&config)? else {
        println!("{name}: not locked (no state recorded yet); nothing changed");
        return Ok(Status::Ok);
    };
    let mut before = UserState::default();
    store
        .update(name, &mut |s| {
            before = *s;
            s.failures = 0;
            s.locked_until = 0;
        })
        .map_err(|e| Fail(e.to_string()))?;
    let failures = match before.failures {
        0 => String::new(),
        n => format!(
            "; {n} failed login{} forgotten",
            if n == 1 { "" } else { "s" }
        ),
    };
    if before.locked_until > now {
        println!(
            "{name}: unlocked (it was locked for another {}){failures}",
            human_duration(before.locked_until - now)
        );
    } else if before.failures > 0 {
        println!("{name}: was not locked{failures}");
    } else {
        println!("{name}: not locked, no failed logins; nothing changed");
    }
    Ok(Status::Ok)
}
