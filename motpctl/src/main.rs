//! `motpctl`: the admin's tool for the openvpn-motp plugin.
//!
//! Every command ends with one of three exit codes: 0 (ok), 1 (warnings, or an invalid code for
//! `verify`), 2 (errors: the command could not do what was asked). Secrets, PINs and static
//! passwords are never printed, except the secrets and PINs `add-user` generates and the recovery
//! codes `recovery-codes` makes, which must be handed to the admin once.

mod check;
mod cli;
mod codes;
mod edit;
mod human;
mod import;
mod man5;
mod secrets;
mod state;
mod sys;
mod tokens;
mod users;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Cmd, ImportFormat};

/// What a command reports when it finishes (errors travel as [`Fail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Ok,
    /// Exit 1: done, with warnings (or, for `verify`, the code is not valid).
    Warn,
    /// Exit 2: errors, already reported line by line (no further message).
    Failed,
}

/// An error that stops the command: printed as `motpctl: error: ...`, exit 2.
#[derive(Debug)]
pub struct Fail(pub String);

impl<T: Into<String>> From<T> for Fail {
    fn from(message: T) -> Fail {
        Fail(message.into())
    }
}

pub type Outcome = Result<Status, Fail>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The hidden `--now` exists in debug builds only (the tests'); see `Cli::now`.
    #[cfg(debug_assertions)]
    let now = cli.now.unwrap_or_else(motp::clock::now);
    #[cfg(not(debug_assertions))]
    let now = motp::clock::now();
    let outcome = match cli.cmd {
        Cmd::Code(args) => codes::code(args, now),
        Cmd::CheckConfig(args) => check::check_config(args),
        Cmd::AddUser(args) => users::add_user(args),
        Cmd::RemoveUser(args) => users::remove_user(args),
        Cmd::Disable(args) => users::set_disabled(args, true),
        Cmd::Enable(args) => users::set_disabled(args, false),
        Cmd::HashPassword(args) => secrets::hash_password(args),
        Cmd::SetPassword(args) => secrets::set_password(args),
        Cmd::RecoveryCodes(args) => secrets::recovery_codes(args),
        Cmd::Verify(args) => codes::verify(args, now),
        Cmd::Resync(args) => codes::resync(args, now),
        Cmd::RecordUsed(args) => state::record_used_here(args),
        Cmd::HotpNext(args) => state::hotp_next_here(args),
        Cmd::Status(args) => state::status(args, now),
        Cmd::Unlock(args) => state::unlock(args, now),
        Cmd::Import(args) => match args.format {
            ImportFormat::PamMotp(a) => import::pam_motp(a),
            ImportFormat::OpenvpnOtp(a) => import::openvpn_otp(a),
            ImportFormat::GoogleAuthenticator(a) => import::google_authenticator(a),
        },
        Cmd::Completions(args) => {
            let mut cmd = Cli::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(args.shell, &mut cmd, "motpctl", &mut out);
            out.flush()
                .map(|_| Status::Ok)
                .map_err(|e| Fail(format!("cannot write the completions: {e}")))
        }
        Cmd::Man(args) => cli::write_man_pages(&args.out),
    };
    match outcome {
        Ok(Status::Ok) => ExitCode::from(0),
        Ok(Status::Warn) => ExitCode::from(1),
        Ok(Status::Failed) => ExitCode::from(2),
        Err(Fail(message)) => {
            eprintln!("motpctl: error: {message}");
            ExitCode::from(2)
        }
    }
}
