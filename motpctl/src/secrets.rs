//! hash-password, set-password, recovery-codes: the hashes of a user's static password and
//! recovery codes in motp.toml (`motp::secret_hash`). Passwords are read from standard input
//! (without echo on a terminal), never from the command line; neither they nor the codes go to
//! standard error or into the file in clear.

use std::io::IsTerminal;

use motp::secret_hash;
use toml_edit::{Array, Value};
use zeroize::Zeroizing;

use crate::cli::{HashPasswordArgs, RecoveryCodesArgs, SetPasswordArgs};
use crate::edit::{set_value, ConfigFile};
use crate::sys;
use crate::users::RELOAD_HINT;
use crate::{Fail, Outcome, Status};

/// The longest static password accepted, bytes. OpenVPN (built with PKCS#11, as Debian's is)
/// takes passwords of up to 4095 bytes, and the code still has to follow.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why `password` cannot be a static password, if it cannot (never quoting it).
fn password_problem(password: &str) -> Option<String> {
    if password.is_empty() {
        return Some(
            "the password is empty; a static password must have at least one character".into(),
        );
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Some(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        ));
    }
    if password.chars().any(char::is_control) {
        return Some(
            "the password has a control character (a tab, an escape, ...), which an OpenVPN \
             client's password prompt cannot send"
                .into(),
        );
    }
    None
}

/// Reads the password: once from a pipe, twice (must match) on a terminal when `confirm`.
fn read_password(confirm: bool) -> Result<Zeroizing<String>, Fail> {
    let password = sys::read_secret("Password: ", "password")?;
    if let Some(problem) = password_problem(&password) {
        return Err(Fail(problem));
    }
    if confirm && std::io::stdin().is_terminal() {
        let again = sys::read_secret("Password again: ", "password")?;
        if *again != *password {
            return Err(Fail("the two passwords differ; nothing was changed".into()));
        }
    }
    Ok(password)
}

pub fn hash_password(_args: HashPasswordArgs) -> Outcome {
    let password = read_password(true)?;
    println!("{}", secret_hash::hash_password(password.as_bytes()));
    Ok(Status::Ok)
}

pub fn set_password(args: SetPasswordArgs) -> Outcome {
    crate::users::check_username(&args.name)?;
    let mut file = ConfigFile::open(&args.config.config)?;
    let user = file.user_mut(&args.name)?;
    let had = user.contains_key("password");
    if args.remove {
        if !had {
            println!("user {} has no static password; nothing changed", args.name);
            return Ok(Status::Ok);
        }
        user.remove("password");
    } else {
        let password = read_password(true)?;
        let phc = secret_hash::hash_password(password.as_bytes());
        set_value(user, "password", phc.into());
    }
    file.save()?;
    let path = args.config.config.display();
    match (args.remove, had) {
        (true, _) => println!(
            "removed the static password of user {} in {path}",
            args.name
        ),
        (false, true) => println!(
            "replaced the static password of user {} in {path}",
            args.name
        ),
        (false, false) => println!("set a static password for user {} in {path}", args.name),
    }
    if !args.remove {
        println!(
            "{} now logs in with the password followed by the code (or the password in a static \
             challenge's first part)",
            args.name
        );
    }
    println!("{RELOAD_HINT}");
    Ok(Status::Ok)
}

pub fn recovery_codes(args: RecoveryCodesArgs) -> Outcome {
    crate::users::check_username(&args.name)?;
    let count = usize::from(args.count);
    let mut file = ConfigFile::open(&args.config.config)?;
    let user = file.user_mut(&args.name)?;
    let previous = user
        .get("recovery_codes")
        .and_then(|i| i.as_array())
        .map_or(0, Array::len);
    let codes = secret_hash::generate_recovery_codes(count);
    let mut hashes = Array::new();
    for code in &codes {
        let normalized = secret_hash::normalize_recovery_code(code.as_bytes())
            .expect("a generated code is a valid code");
        let mut stored = Value::from(secret_hash::hash_recovery_code(&normalized));
        stored.decor_mut().set_prefix("\n    ");
        hashes.push_formatted(stored);
    }
    hashes.set_trailing_comma(true);
    hashes.set_trailing("\n");
    set_value(user, "recovery_codes", Value::Array(hashes));
    file.save()?;

    // Only now that the hashes are stored: a code printed but not stored would never work.
    for code in &codes {
        println!("{}", code.as_str());
    }
    eprintln!(
        "wrote {count} recovery code hashes for user {} to {}",
        args.name,
        args.config.config.display()
    );
    eprintln!(
        "these codes are shown only this once and are not stored in clear: hand them to the \
         user now. Each works once, in place of the one-time code (after the static password if \
         the user has one)."
    );
    if previous > 0 {
        eprintln!(
            "the previous {previous} recovery codes of {} no longer work",
            args.name
        );
    }
    eprintln!("{RELOAD_HINT}");
    Ok(Status::Ok)
}
