//! add-user, remove-user, disable, enable; status and unlock.

use motp::config::entry;
use motp::config::token::TOTP_PERIODS;
use motp::engine::{base32, Algorithm};
use toml_edit::Value;

use crate::cli::{AddUserArgs, UserArgs};
use crate::edit::{set_value, ConfigFile};
use crate::sys::{self, StdinValues};
use crate::tokens::{self, KeyUri, KindArg};
use crate::{Fail, Outcome, Status};

pub const RELOAD_HINT: &str =
    "the plugin applies the change within one to two seconds (no reload needed)";

pub fn check_username(name: &str) -> Result<(), Fail> {
    match entry::username_problem(name) {
        Some(problem) => Err(Fail(problem)),
        None => Ok(()),
    }
}

/// Why a secret cannot be used, if it cannot (never quoting it).
pub fn secret_problem(secret: &str) -> Option<String> {
    entry::secret_problem(secret).map(|problem| format!("the secret {problem}"))
}

/// Why a further token's name cannot be used, if it cannot (the plugin's rule).
pub fn check_token_name(name: &str) -> Result<(), Fail> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Fail(
            "--token must be 1 to 32 letters, digits, '-', '_' or '.' (it names the token's \
             replay state; e.g. \"phone\" or \"yubikey\")"
                .into(),
        ))
    }
}

/// Writes a new user, or with `--token` a further token of an existing user; returns what
/// to call it in messages ("user alice", "totp token phone of user alice").
fn insert_token(
    args: &AddUserArgs,
    kind: &str,
    mut fields: Vec<(&'static str, Value)>,
) -> Result<String, Fail> {
    let mut file = ConfigFile::open(&args.config.config)?;
    let what = match &args.token {
        Some(token) => {
            check_token_name(token)?;
            fields.insert(0, ("name", token.as_str().into()));
            file.add_token(&args.name, fields).map_err(|Fail(e)| {
                Fail(if e.starts_with("no user") {
                    format!("{e}: --token adds a further token to an existing user; add the user first, without --token")
                } else {
                    e
                })
            })?;
            format!("{kind} token {token} of user {}", args.name)
        }
        None => {
            file.add_user(&args.name, fields)?;
            if kind == "motp" {
                format!("user {}", args.name)
            } else {
                format!("{kind} user {}", args.name)
            }
        }
    };
    file.save()?;
    Ok(what)
}

/// The account name in a provisioning URI: the username, with the token's name for a further
/// token (so the app's list tells the user's tokens apart).
fn account(args: &AddUserArgs) -> String {
    match &args.token {
        Some(token) => format!("{} ({token})", args.name),
        None => args.name.clone(),
    }
}

pub fn add_user(args: AddUserArgs) -> Outcome {
    check_username(&args.name)?;
    if args.kind != KindArg::Motp {
        return add_hmac_user(args);
    }
    for (given, option) in [
        (args.algorithm.is_some(), "--algorithm"),
        (args.digits.is_some(), "--digits"),
        (args.period.is_some(), "--period"),
        (args.counter.is_some(), "--counter"),
    ] {
        if given {
            return Err(Fail(format!(
                "{option} is a setting of TOTP and HOTP tokens; add --kind totp or --kind hotp, \
                 or leave {option} out for an mOTP user"
            )));
        }
    }
    let mut stdin = StdinValues::new();
    let mut status = Status::Ok;

    let secret = match (&args.secret, args.generate) {
        (_, true) => sys::random_secret()?,
        (Some(s), false) => stdin.resolve(s, "secret")?,
        (None, false) => return Err(Fail("give --secret SECRET or --generate".into())),
    };
    if let Some(problem) = secret_problem(&secret) {
        return Err(Fail(problem));
    }
    if secret.bytes().any(|b| b.is_ascii_uppercase()) {
        eprintln!(
            "warning: the secret has uppercase letters; it is hashed exactly as written, but \
             phone apps such as Aegis lowercase it and will show other codes. Prefer lowercase \
             here and on the phone."
        );
        status = Status::Warn;
    }
    let (pin, pin_generated) = match &args.pin {
        Some(p) => (stdin.resolve(p, "PIN")?, false),
        None => (sys::random_pin()?, true),
    };
    if !tokens::pin_fits_common_apps(&pin) {
        eprintln!("warning: the PIN {}", tokens::PIN_WARNING);
        status = Status::Warn;
    }

    let mut fields: Vec<(&str, Value)> = vec![
        ("secret", secret.as_str().into()),
        ("pin", pin.as_str().into()),
    ];
    if let Some(cn) = &args.common_name {
        fields.push(("common_name", cn.as_str().into()));
    }
    let what = insert_token(&args, "motp", fields)?;

    println!("added {what} to {}", args.config.config.display());
    if args.generate {
        let issuer = args.issuer.clone().unwrap_or_else(sys::hostname);
        let uri = format!(
            "motp://{}:{}?secret={secret}",
            sys::percent_encode(&issuer),
            sys::percent_encode(&account(&args))
        );
        println!("secret: {secret}");
        println!("provisioning URI: {uri}");
        if !args.no_qr {
            if let Err(e) = tokens::print_qr(&uri) {
                eprintln!("warning: cannot make a QR code for the URI: {e}");
                status = Status::Warn;
            }
        }
    }
    if pin_generated {
        println!("PIN: {pin} (tell the user; it is not in the URI or the QR code)");
    }
    println!("{RELOAD_HINT}");
    Ok(status)
}

/// `add-user --kind totp|hotp`.
fn add_hmac_user(args: AddUserArgs) -> Outcome {
    let totp = args.kind == KindArg::Totp;
    let kind = if totp { "totp" } else { "hotp" };
    if args.pin.is_some() {
        return Err(Fail(format!(
            "--pin is for mOTP users: {kind} apps have no PIN. For a second factor typed before \
             the code, add the user without --pin and run `motpctl set-password {}`",
            args.name
        )));
    }
    if totp && args.counter.is_some() {
        return Err(Fail(
            "--counter is a setting of HOTP tokens; a TOTP token counts time (--period)".into(),
        ));
    }
    if !totp && args.period.is_some() {
        return Err(Fail(
            "--period is a setting of TOTP tokens; an HOTP token counts button presses \
             (--counter)"
                .into(),
        ));
    }
    let algorithm: Algorithm = args.algorithm.map_or(Algorithm::Sha1, Into::into);
    let digits = args.digits.unwrap_or(6);
    if digits != 6 && digits != 8 {
        return Err(Fail("--digits must be 6 or 8".into()));
    }
    let period = args.period.unwrap_or(30);
    if totp && (!TOTP_PERIODS.contains(&period) || period % 10 != 0) {
        return Err(Fail(format!(
            "--period must be a multiple of 10 seconds from {} to {} (apps use 30; hardware \
             tokens often 60)",
            TOTP_PERIODS.start(),
            TOTP_PERIODS.end()
        )));
    }
    let counter = args.counter.unwrap_or(0);
    if counter > i64::MAX as u64 / 2 {
        return Err(Fail("--counter is too large".into()));
    }
    let secret = match (&args.secret, args.generate) {
        (_, true) => tokens::random_hmac_secret(algorithm)?,
        (Some(s), false) => {
            let mut stdin = StdinValues::new();
            zeroize::Zeroizing::new(stdin.resolve(s, "secret")?)
        }
        (None, false) => return Err(Fail("give --secret SECRET or --generate".into())),
    };
    if let Some(problem) = base32::secret_problem(&secret) {
        return Err(Fail(format!("the secret {problem}")));
    }

    let mut fields: Vec<(&str, Value)> =
        vec![("kind", kind.into()), ("secret", secret.as_str().into())];
    if algorithm != Algorithm::Sha1 {
        fields.push(("algorithm", algorithm.name().into()));
    }
    if digits != 6 {
        fields.push(("digits", i64::from(digits).into()));
    }
    if totp && period != 30 {
        fields.push(("period", i64::from(period).into()));
    }
    if !totp && counter != 0 {
        fields.push(("counter", (counter as i64).into()));
    }
    if let Some(cn) = &args.common_name {
        fields.push(("common_name", cn.as_str().into()));
    }
    let what = insert_token(&args, kind, fields)?;

    println!("added {what} to {}", args.config.config.display());
    let mut status = Status::Ok;
    let account = account(&args);
    let key_uri = KeyUri {
        issuer: "",
        account: &account,
        secret: &secret,
        algorithm,
        digits,
        period: totp.then_some(period),
        counter,
    };
    let unusual = key_uri.unusual_settings();
    if !unusual.is_empty() {
        eprintln!(
            "warning: {} {}: {}. Check the app's first code with `motpctl verify {} CODE`, or \
             use the defaults",
            unusual.join(", "),
            if unusual.len() == 1 {
                "is set"
            } else {
                "are set"
            },
            tokens::UNUSUAL_ADVICE,
            args.name
        );
        status = Status::Warn;
    }
    if args.generate {
        let issuer = args.issuer.clone().unwrap_or_else(sys::hostname);
        let key_uri = KeyUri {
            issuer: &issuer,
            account: &account,
            secret: &secret,
            algorithm,
            digits,
            period: totp.then_some(period),
            counter,
        };
        let uri = zeroize::Zeroizing::new(key_uri.to_uri());
        println!("secret (base32): {}", secret.as_str());
        println!("provisioning URI: {}", uri.as_str());
        if !args.no_qr {
            if let Err(e) = tokens::print_qr(&uri) {
                eprintln!("warning: cannot make a QR code for the URI: {e}");
                status = Status::Warn;
            }
        }
        if !totp {
            eprintln!(
                "note: an HOTP app shows the next code each time the user asks for one; codes \
                 asked for but not used move it ahead (the plugin looks up to hotp_window codes \
                 ahead; `motpctl resync {}{} CODE1 CODE2` catches up from further)",
                args.name,
                args.token
                    .as_ref()
                    .map_or(String::new(), |t| format!(" --token {t}"))
            );
        }
    }
    println!(
        "the user logs in with the code the app shows{}",
        if args.common_name.is_some() || args.token.is_some() {
            ""
        } else {
            " (and a certificate whose CN is the username)"
        }
    );
    println!("{RELOAD_HINT}");
    Ok(status)
}

pub fn remove_user(args: UserArgs) -> Outcome {
    let mut file = ConfigFile::open(&args.config.config)?;
    file.remove_user(&args.name)?;
    file.save()?;
    println!(
        "removed user {} from {}",
        args.name,
        args.config.config.display()
    );
    println!("{RELOAD_HINT}");
    Ok(Status::Ok)
}

pub fn set_disabled(args: UserArgs, disabled: bool) -> Outcome {
    let mut file = ConfigFile::open(&args.config.config)?;
    let user = file.user_mut(&args.name)?;
    let was = user
        .get("disabled")
        .and_then(|i| i.as_bool())
        .unwrap_or(false);
    if was == disabled {
        println!(
            "user {} is already {}; nothing changed",
            args.name,
            if disabled { "disabled" } else { "enabled" }
        );
        return Ok(Status::Ok);
    }
    if disabled {
        set_value(user, "disabled", true.into());
    } else {
        user.remove("disabled");
    }
    file.save()?;
    println!(
        "user {} is now {} in {}",
        args.name,
        if disabled { "disabled" } else { "enabled" },
        args.config.config.display()
    );
    println!("{RELOAD_HINT}");
    Ok(Status::Ok)
}
