//! add-user, remove-user, disable, enable; status and unlock.

use std::io::IsTerminal;

use motp::config::entry;
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use toml_edit::Value;

use crate::cli::{AddUserArgs, UserArgs};
use crate::edit::{set_value, ConfigFile};
use crate::sys::{self, StdinValues};
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

pub fn add_user(args: AddUserArgs) -> Outcome {
    check_username(&args.name)?;
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

    let mut file = ConfigFile::open(&args.config.config)?;
    let mut fields: Vec<(&str, Value)> = vec![
        ("secret", secret.as_str().into()),
        ("pin", pin.as_str().into()),
    ];
    if let Some(cn) = &args.common_name {
        fields.push(("common_name", cn.as_str().into()));
    }
    file.add_user(&args.name, fields)?;
    file.save()?;

    println!(
        "added user {} to {}",
        args.name,
        args.config.config.display()
    );
    if args.generate {
        let issuer = args.issuer.clone().unwrap_or_else(sys::hostname);
        let uri = format!(
            "motp://{}:{}?secret={secret}",
            sys::percent_encode(&issuer),
            sys::percent_encode(&args.name)
        );
        println!("secret: {secret}");
        println!("provisioning URI: {uri}");
        if !args.no_qr {
            match QrCode::new(uri.as_bytes()) {
                Ok(qr) => {
                    let art = qr
                        .render::<Dense1x2>()
                        .dark_color(Dense1x2::Light)
                        .light_color(Dense1x2::Dark)
                        .quiet_zone(true)
                        .build();
                    // Drawn light-on-dark (light quiet zone and light modules as blocks). On
                    // a terminal, the colours are set explicitly so that the code is not
                    // inverted on a light theme (many scanners cannot read an inverted code).
                    let tty = std::io::stdout().is_terminal();
                    for line in art.lines() {
                        if tty {
                            println!("\x1b[97;40m{line}\x1b[0m");
                        } else {
                            println!("{line}");
                        }
                    }
                }
                Err(e) => {
                    eprintln!("warning: cannot make a QR code for the URI: {e}");
                    status = Status::Warn;
                }
            }
        }
    }
    if pin_generated {
        println!("PIN: {pin} (tell the user; it is not in the URI or the QR code)");
    }
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
