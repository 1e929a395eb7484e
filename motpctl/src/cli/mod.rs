//! The command line: every subcommand, its options and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

mod codes;
mod import;
mod man_pages;
mod users;

pub use codes::{CodeArgs, ResyncArgs, VerifyArgs};
pub use import::{
    GoogleAuthenticatorArgs, ImportArgs, ImportFormat, ImportOutput, OpenvpnOtpArgs, PamMotpArgs,
};
pub use man_pages::{write_man_pages, ManArgs};
pub use users::{AddUserArgs, HashPasswordArgs, RecoveryCodesArgs, SetPasswordArgs, UserArgs};

pub const DEFAULT_CONFIG: &str = motp::config::DEFAULT_CONFIG_PATH;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  done, with warnings (printed as `warning:` lines)
  2  error: nothing was changed (or the check found errors)";

const ABOUT: &str = "Manage the openvpn-motp plugin: enrol users, check motp.toml, verify codes, \
fix phone clocks, import old setups";

const LONG_ABOUT: &str = "\
motpctl manages the users and settings of the openvpn-motp plugin (motp.so), which checks a \
certificate plus a one-time code (mOTP, TOTP or HOTP) at every OpenVPN login.

The plugin reads motp.toml (default /etc/openvpn/motp.toml) when OpenVPN starts, and a thread \
of the plugin checks it once a second: a change takes effect one to two seconds after the file \
was written, without a reload or SIGHUP (the [state] table and crtext_prompt only at a SIGHUP or \
restart). A changed file the plugin refuses is ignored and logged, and the old user table keeps \
serving, but the same file at a SIGHUP or restart stops OpenVPN.

Commands that change the file keep its comments, order, owner and mode, check the result the \
same way the plugin does, and replace the file atomically, so the plugin never sees a \
half-written or invalid config. After editing the file by hand, run `motpctl check-config`.

Secrets, PINs and static passwords are never printed, except a secret or PIN that `add-user` \
generates and the recovery codes `recovery-codes` makes (motp.toml keeps only their hashes).";

#[derive(Parser, Debug)]
#[command(
    name = "motpctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Pretend the server clock reads this many Unix seconds (for tests). Debug builds only:
    /// a release motpctl rejects it. It only changes what is computed and shown (codes, the
    /// window searched, how long a lock has left); the state store is always opened with the
    /// real clock and never pruned by motpctl, so it cannot change what the store holds.
    #[cfg(debug_assertions)]
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "UNIX_SECONDS",
        allow_hyphen_values = true
    )]
    pub now: Option<i64>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    Code(CodeArgs),
    CheckConfig(CheckArgs),
    AddUser(AddUserArgs),
    /// Remove a user from motp.toml.
    ///
    /// Deletes the user's [users.NAME] section, with the comment lines directly above its
    /// header (a comment block separated from it by a blank line is kept). The file keeps its
    /// other comments, order, owner and mode; it is replaced atomically, and only if the plugin
    /// would accept the result. The plugin applies the change within one to two seconds (no
    /// reload needed).
    RemoveUser(UserArgs),
    /// Refuse a user's logins, keeping the entry (sets `disabled = true`).
    ///
    /// The user is refused until `motpctl enable NAME`. The file keeps its comments, order,
    /// owner and mode; it is replaced atomically. The plugin applies the change within one to two
    /// seconds (no reload needed).
    Disable(UserArgs),
    /// Let a disabled user log in again (removes `disabled = true`).
    ///
    /// The file keeps its comments, order, owner and mode; it is replaced atomically. The plugin
    /// applies the change within one to two seconds (no reload needed).
    Enable(UserArgs),
    HashPassword(HashPasswordArgs),
    SetPassword(SetPasswordArgs),
    RecoveryCodes(RecoveryCodesArgs),
    Verify(VerifyArgs),
    Resync(ResyncArgs),
    Status(StatusArgs),
    /// Clear a user's lockout and failed-login count.
    ///
    /// Works on the plugin's durable state (`[state] backend = "local"`, the default, or the
    /// Redis that `backend = "redis"` names, for every server sharing it) while OpenVPN runs;
    /// the user can log in again at once. The record of the last accepted code is
    /// kept, so unlocking never allows a replay. Run it as root or as the user that owns the
    /// database. With `backend = "memory"` the state lives inside the OpenVPN process and cannot
    /// be changed (exit 2): the lockout ends by itself after lockout_secs.
    Unlock(UserArgs),
    Import(ImportArgs),
    Completions(CompletionsArgs),
    #[command(hide = true)]
    Man(ManArgs),
    /// Internal (run by `resync`): record phone steps as used by a user, in a process of its
    /// own, because opening a local store switches to the state directory's owner for good.
    #[command(hide = true)]
    RecordUsed(RecordUsedArgs),
    /// Internal (run by `resync`): print an HOTP user's next counter from the state store, in a
    /// process of its own (as `record-used`).
    #[command(hide = true)]
    HotpNext(HotpNextArgs),
}

/// The arguments of the hidden `record-used` command.
#[derive(Args, Debug)]
pub struct RecordUsedArgs {
    #[arg(value_name = "USER")]
    pub user: String,
    #[arg(long, allow_hyphen_values = true)]
    pub offset_secs: i64,
    #[arg(value_name = "STEP", required = true)]
    pub steps: Vec<i64>,
    /// The steps are HOTP counters: the row must outlive pruning
    #[arg(long)]
    pub counter_based: bool,
    /// A further token of the user: record on its own row
    #[arg(long)]
    pub token: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The arguments of the hidden `hotp-next` command.
#[derive(Args, Debug)]
pub struct HotpNextArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A further token of the user: its own row's counter
    #[arg(long)]
    pub token: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The config file option shared by every command that reads or writes motp.toml.
#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// The plugin's config file
    #[arg(short = 'c', long = "config", value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// Check motp.toml as the plugin would, plus what the plugin tolerates but should not.
///
/// Errors are everything the plugin refuses (OpenVPN would not start, a SIGHUP would stop it,
/// and a live change is ignored). Warnings are things that work but will hurt: a secret with uppercase letters (hashed
/// as written, but phone apps such as Aegis lowercase it), an odd-length secret, a 4-digit PIN
/// shared by several users, a config the runtime user cannot read or that another group can read,
/// a state directory the runtime user cannot write, and a system clock that is not synchronised
/// (mOTP codes depend on the server's clock).
///
/// Run it after editing motp.toml by hand: the plugin applies a valid change to the users and
/// policy by itself within one to two seconds (no reload), and ignores a file it refuses. Run it
/// also before a SIGHUP or restart, which such a file would stop. A SIGHUP is only needed for a
/// change to the [state] table (or crtext_prompt); Debian's openvpn-server@NAME unit has no reload command, so send
/// it with `systemctl kill -s HUP openvpn-server@NAME` (or restart the unit).
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  the plugin accepts the config and nothing needs attention
  1  the plugin accepts the config, but there are warnings
  2  the plugin would refuse the config (or it cannot be read)")]
pub struct CheckArgs {
    /// The config file to check [default: /etc/openvpn/motp.toml]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,

    /// The config file to check (same as PATH)
    #[arg(
        short = 'c',
        long = "config",
        value_name = "PATH",
        conflicts_with = "path"
    )]
    pub config: Option<PathBuf>,

    /// The user OpenVPN runs as after dropping privileges (its `user` option, e.g. nobody or
    /// openvpn); enables the checks on who can read the config and write the state directory
    #[arg(short = 'u', long, value_name = "USER")]
    pub runtime_user: Option<String>,

    /// Do not check whether the system clock is synchronised (e.g. in a container)
    #[arg(long)]
    pub no_clock_check: bool,
}

/// Show each user's lockout and failed-login count.
///
/// Reads the plugin's durable state (`[state] backend = "local"`, the default: an SQLite
/// database in the state directory, /var/lib/openvpn-motp unless `dir` says otherwise; or the
/// Redis of `backend = "redis"`), safely while OpenVPN runs. Changes nothing. For the local
/// store, run it as root or as the user that owns the database.
///
/// Per user: locked or not (and for how long), failed logins since the last success, and when
/// the last code was accepted (HOTP: the last accepted counter and the next one expected).
/// For mOTP and TOTP also where the last accepted code showed the phone's clock, relative to
/// offset_secs ("phone clock seen +150 s from offset_secs"): the drift the plugin follows,
/// within max_drift_secs. Each further token ([[users.NAME.tokens]]) gets a line of its own
/// with the same about its own row; the user's line holds the lock and the failures of all.
/// With `backend = "memory"` the state lives inside the OpenVPN process and cannot be shown
/// (exit 2).
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  shown; no user is locked
  1  shown; at least one user is locked
  2  error: the config or the state cannot be read (or backend = \"memory\")")]
pub struct StatusArgs {
    /// Only this user
    #[arg(value_name = "USER")]
    pub user: Option<String>,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// Print a shell completion script.
///
/// For example: `motpctl completions bash > /etc/bash_completion.d/motpctl`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
