//! check-config: what the plugin refuses (errors), and what it tolerates but should not
//! (warnings).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use motp::config::{Config, StateConfig};
use motp::state::DB_FILE_NAME;
use toml_edit::DocumentMut;

use crate::cli::{CheckArgs, DEFAULT_CONFIG};
use crate::sys::{self, Account, ClockSync};
use crate::{Outcome, Status};

/// The findings, printed as they come: `error:`, `warning:`, `note:` and `ok:` lines.
#[derive(Default)]
struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn error(&mut self, message: impl AsRef<str>) {
        self.errors += 1;
        println!("error: {}", message.as_ref());
    }
    fn warning(&mut self, message: impl AsRef<str>) {
        self.warnings += 1;
        println!("warning: {}", message.as_ref());
    }
    fn note(&self, message: impl AsRef<str>) {
        println!("note: {}", message.as_ref());
    }
    fn ok(&self, message: impl AsRef<str>) {
        println!("ok: {}", message.as_ref());
    }
}

pub fn check_config(args: CheckArgs) -> Outcome {
    let path = args
        .path
        .or(args.config)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut report = Report::default();

    let account = match &args.runtime_user {
        None => None,
        Some(name) => match Account::lookup(name) {
            Ok(a) => Some(a),
            Err(e) => {
                report.error(format!("--runtime-user: {e}"));
                None
            }
        },
    };

    match Config::load(&path) {
        Err(e) => report.error(format!(
            "{e} (the plugin would refuse to start with it, and ignore it as a live change)"
        )),
        Ok(config) => {
            let disabled = config
                .users
                .names()
                .filter(|n| config.users.get(n).is_some_and(|u| u.disabled))
                .count();
            report.ok(format!(
                "{} loads: {} user{} ({disabled} disabled), window ±{} s, {} failures lock a \
                 user for {} s, certificate CN {}",
                path.display(),
                config.users.len(),
                if config.users.len() == 1 { "" } else { "s" },
                config.policy.window_secs,
                config.policy.max_failures,
                config.policy.lockout_secs,
                if config.policy.require_common_name {
                    "must match"
                } else {
                    "not checked"
                },
            ));
            if config.users.is_empty() {
                report.warning("no users are configured: every login will be refused");
            }
            if let Ok((text, meta)) = crate::edit::read_text(&path) {
                if let Ok(doc) = text.parse::<DocumentMut>() {
                    check_users(&doc, &mut report);
                }
                check_app_settings(&config, &mut report);
                check_state(&config.state, account.as_ref(), &mut report);
                check_permissions(&path, &meta, account.as_ref(), &mut report);
            }
        }
    }

    if args.no_clock_check {
        report.note("clock synchronisation not checked (--no-clock-check)");
    } else {
        match sys::clock_sync() {
            ClockSync::Synchronised(how) => {
                report.ok(format!("the system clock is synchronised ({how})"))
            }
            ClockSync::NotSynchronised(how) => report.warning(format!(
                "the system clock is not synchronised ({how} says so); mOTP codes depend on it: \
                 enable NTP (e.g. `timedatectl set-ntp true`, chrony or systemd-timesyncd)"
            )),
            ClockSync::Unknown(why) => report.warning(format!(
                "could not check whether the system clock is synchronised: {why}. mOTP codes \
                 depend on it; make sure NTP runs (or pass --no-clock-check)"
            )),
        }
    }

    println!(
        "check-config: {} error{}, {} warning{}",
        report.errors,
        if report.errors == 1 { "" } else { "s" },
        report.warnings,
        if report.warnings == 1 { "" } else { "s" }
    );
    Ok(if report.errors > 0 {
        Status::Failed
    } else if report.warnings > 0 {
        Status::Warn
    } else {
        Status::Ok
    })
}

/// Per-user warnings, from the file as written (the loader only keeps secret ‖ PIN): for the
/// user's own token and each `[[users.NAME.tokens]]` entry.
fn check_users(doc: &DocumentMut, report: &mut Report) {
    let Some(users) = doc.get("users").and_then(|u| u.as_table_like()) else {
        return;
    };
    let mut by_pin: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, entry) in users.iter() {
        let Some(entry) = entry.as_table_like() else {
            continue;
        };
        if let Some(pin) = entry.get("pin").and_then(|p| p.as_str()) {
            if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) {
                by_pin.entry(pin).or_default().push(name);
            }
        }
        check_motp_token(&format!("users.{name}"), entry, report);
        let more: Vec<&dyn toml_edit::TableLike> = match entry.get("tokens") {
            Some(toml_edit::Item::ArrayOfTables(a)) => {
                a.iter().map(|t| t as &dyn toml_edit::TableLike).collect()
            }
            Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => a
                .iter()
                .filter_map(|v| v.as_inline_table())
                .map(|t| t as &dyn toml_edit::TableLike)
                .collect(),
            _ => Vec::new(),
        };
        for (i, token) in more.into_iter().enumerate() {
            check_motp_token(&format!("users.{name}.tokens[{i}]"), token, report);
        }
    }
    for names in by_pin.values().filter(|n| n.len() > 1) {
        report.warning(format!(
            "users {} have the same 4-digit PIN: one PIN known is a PIN for all of them",
            names.join(", ")
        ));
    }
}

/// The warnings about one mOTP token's secret and PIN (`at`: where it is, for messages).
fn check_motp_token(at: &str, entry: &dyn toml_edit::TableLike, report: &mut Report) {
    // TOTP and HOTP secrets are base32 (upper case by convention, decoded, not hashed as
    // written): these warnings are not about them.
    let motp = entry
        .get("kind")
        .and_then(|k| k.as_str())
        .is_none_or(|k| k == "motp");
    if !motp {
        return;
    }
    if let Some(secret) = entry.get("secret").and_then(|s| s.as_str()) {
        if secret.bytes().any(|b| b.is_ascii_uppercase()) {
            report.warning(format!(
                "{at}.secret has uppercase letters: it is hashed exactly as written, but phone \
                 apps such as Aegis lowercase it and then show other codes; write it in \
                 lowercase here and on the phone"
            ));
        }
        if secret.len() % 2 == 1 {
            report.warning(format!(
                "{at}.secret has an odd number of characters: apps that read it as hex bytes \
                 (Aegis) cannot import it"
            ));
        }
    }
    if let Some(pin) = entry.get("pin").and_then(|p| p.as_str()) {
        if !crate::tokens::pin_fits_common_apps(pin) {
            report.warning(format!("{at}.pin {}", crate::tokens::PIN_WARNING));
        }
    }
}

/// TOTP/HOTP settings that common apps ignore (they then show codes the plugin refuses).
fn check_app_settings(config: &Config, report: &mut Report) {
    for name in config.users.names() {
        let Some(user) = config.users.get(name) else {
            continue;
        };
        for (i, tok) in crate::tokens::Tok::all(&user).iter().enumerate() {
            let unusual = crate::tokens::unusual_settings(&tok.token);
            if unusual.is_empty() {
                continue;
            }
            let at = match tok.name() {
                Some(t) => format!("users.{name}.tokens[{}] (`{t}`)", i - 1),
                None => format!("users.{name}"),
            };
            report.warning(format!(
                "{at}: a {} token with {}: {}; check that the user's app shows the codes \
                 (`motpctl verify {name} CODE`)",
                tok.token.kind_name(),
                unusual.join(", "),
                crate::tokens::UNUSUAL_ADVICE
            ));
        }
    }
}

/// Who can read the config: the runtime user must (OpenVPN re-opens the plugin after SIGHUP
/// without root once it dropped privileges), no other group should.
fn check_permissions(path: &Path, meta: &fs::Metadata, account: Option<&Account>, r: &mut Report) {
    let mode = meta.mode() & 0o7777;
    let group = motp::os::group_label(meta.gid());
    if mode & 0o020 != 0 {
        r.warning(format!(
            "{} is writable by group {group} (mode {mode:04o}): its members can add users; \
             run `chmod g-w {}`",
            path.display(),
            path.display()
        ));
    }
    let Some(account) = account else {
        if mode & 0o040 != 0 && meta.gid() != 0 {
            r.note(format!(
                "{} is readable by group {group}; pass --runtime-user to check that this is \
                 OpenVPN's group",
                path.display()
            ));
        } else {
            r.note("pass --runtime-user USER (OpenVPN's `user`) to check who can read the config and write the state");
        }
        return;
    };
    if !account.may(meta.uid(), meta.gid(), mode, 0o4) {
        r.warning(format!(
            "the runtime user {} cannot read {} (owner {}, group {group}, mode {mode:04o}): \
             OpenVPN opens the plugin as that user (at start and at every SIGHUP), fails, and \
             stops. Run \
             `chgrp GROUP {}` with OpenVPN's group and `chmod 0640 {}`",
            account.name,
            path.display(),
            motp::os::user_label(meta.uid()),
            path.display(),
            path.display()
        ));
    }
    if mode & 0o040 != 0 && !account.gids.contains(&meta.gid()) && meta.gid() != 0 {
        r.warning(format!(
            "{} is readable by group {group}, which is not a group of the runtime user {}: its \
             members can read every secret and PIN",
            path.display(),
            account.name
        ));
    }
}

/// The state backend: memory is lost at every SIGHUP; the local store's directory must belong
/// to the user the plugin runs as (OpenVPN opens it after switching to its runtime user) and be
/// writable by no one else, or the plugin refuses to open it.
fn check_state(state: &StateConfig, account: Option<&Account>, r: &mut Report) {
    let dir = match state {
        StateConfig::Memory => {
            r.note(
                "state backend \"memory\": lockouts and replay protection are lost whenever \
                 OpenVPN reloads the plugin (SIGHUP) or restarts, and motpctl status/unlock \
                 cannot reach them",
            );
            return;
        }
        StateConfig::Local { dir } => dir,
        StateConfig::Redis(redis) => match &redis.fallback_dir {
            // The fallback store must be as usable as a local one.
            Some(dir) => dir,
            None => return,
        },
    };
    let meta = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            r.error(format!(
                "the state directory {} is not a directory: the plugin will not start",
                dir.display()
            ));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match account {
                Some(a) => r.warning(format!(
                    "the state directory {} does not exist: the plugin, running as {}, creates \
                     it only if it may write the directory above; create it: `install -d -m \
                     0700 -o {} {}`",
                    dir.display(),
                    a.name,
                    a.name,
                    dir.display()
                )),
                None => r.note(format!(
                    "the state directory {} does not exist yet; the plugin creates it (mode \
                     0700) as the user it runs as; pass --runtime-user to check more",
                    dir.display()
                )),
            }
            return;
        }
        Err(e) => {
            r.warning(format!("the state directory {}: {e}", dir.display()));
            return;
        }
    };
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        r.error(format!(
            "the state directory {} is writable by its group or by everyone (mode {mode:04o}): \
             the plugin refuses it, as others could plant files there; run `chmod go-w {}`",
            dir.display(),
            dir.display()
        ));
        return;
    }
    let Some(account) = account else {
        r.note(format!(
            "state directory {} exists (owner {}); pass --runtime-user to check that it belongs \
             to the user OpenVPN runs as",
            dir.display(),
            motp::os::user_label(meta.uid()),
        ));
        return;
    };
    if meta.uid() != account.uid {
        r.error(format!(
            "the state directory {} belongs to {}, not to the runtime user {}: the plugin, \
             opened by OpenVPN after switching to {}, refuses a directory it does not own; run \
             `chown {} {}`",
            dir.display(),
            motp::os::user_label(meta.uid()),
            account.name,
            account.name,
            account.name,
            dir.display()
        ));
        return;
    }
    if !account.may(meta.uid(), meta.gid(), mode, 0o3) {
        r.error(format!(
            "the runtime user {} cannot write the state directory {} (mode {mode:04o}): run \
             `chmod 0700 {}`",
            account.name,
            dir.display(),
            dir.display()
        ));
        return;
    }
    let mut files_ok = true;
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.join(format!("{DB_FILE_NAME}{suffix}"));
        let Ok(m) = fs::symlink_metadata(&file) else {
            continue;
        };
        if !account.may(m.uid(), m.gid(), m.mode() & 0o7777, 0o6) {
            files_ok = false;
            r.warning(format!(
                "the runtime user {} cannot read and write {} (owner {}): the plugin would set \
                 it aside as unusable and lose the replay history; run `chown {} {}`",
                account.name,
                file.display(),
                motp::os::user_label(m.uid()),
                account.name,
                file.display()
            ));
        }
    }
    if files_ok {
        r.ok(format!(
            "the state directory {} is writable by {}",
            dir.display(),
            account.name
        ));
    }
}
