//! The command line: every subcommand, its options and its help text.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Command, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::tokens::{AlgorithmArg, KindArg};
use crate::{Fail, Outcome, Status};

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

/// Print the code a user's phone or token shows, computed exactly as the plugin does.
///
/// With NAME, the user's token is read from motp.toml, whatever its kind: mOTP and TOTP print
/// the code of the user's clock (the server's clock plus the user's offset_secs); HOTP prints
/// the code of the next counter the plugin expects (the state store's counter when motpctl can
/// read it, else the `counter` of motp.toml; a note on standard error says which). Printing a
/// code uses nothing up.
///
/// Without NAME, give an mOTP token's --secret and --pin: the code is the first 6 hex characters
/// of md5(step ‖ secret ‖ PIN), where step is the Unix time divided by 10. The secret is hashed
/// exactly as written: an uppercase secret gives other codes than the same secret in lowercase
/// (phone apps such as Aegis lowercase it). Give `-` as the secret or PIN to read it from
/// standard input (one line each, secret first), so it does not appear in the process list or
/// the shell history.
///
/// With --token TOKNAME, the code of the user's further token of that name (a
/// `[[users.NAME.tokens]]` entry) instead of the user's own token.
///
/// Use it to check a phone against the server ("does the phone show this code now?") or in
/// scripts.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct CodeArgs {
    /// The user whose code to print (from motp.toml)
    #[arg(
        value_name = "NAME",
        conflicts_with_all = ["secret", "pin"],
        required_unless_present = "secret"
    )]
    pub name: Option<String>,

    /// An mOTP secret (16 to 32 hex characters), or `-` to read it from standard input
    #[arg(long, value_name = "SECRET", requires = "pin")]
    pub secret: Option<String>,

    /// The mOTP PIN, or `-` to read it from standard input
    #[arg(long, value_name = "PIN", requires = "secret")]
    pub pin: Option<String>,

    /// Compute the code for this time instead of now (Unix seconds, e.g. from `date +%s`)
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        allow_hyphen_values = true,
        conflicts_with = "watch"
    )]
    pub at: Option<i64>,

    /// HOTP: print the code of this counter instead of the next one
    #[arg(long, value_name = "N", requires = "name", conflicts_with_all = ["at", "watch"])]
    pub counter: Option<u64>,

    /// The user's further token of this name ([[users.NAME.tokens]]) instead of its own token
    #[arg(long, value_name = "TOKNAME", requires = "name")]
    pub token: Option<String>,

    /// Keep showing the current code, with a countdown to the next one, until Ctrl-C (mOTP and
    /// TOTP)
    #[arg(long)]
    pub watch: bool,

    /// Stop --watch after this many seconds (for scripts and tests)
    #[arg(long, value_name = "SECONDS", hide = true, requires = "watch")]
    pub watch_for: Option<u64>,

    #[command(flatten)]
    pub config: ConfigArg,
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

/// Add a user to motp.toml.
///
/// mOTP (the default kind): either give the secret the phone app already has (--secret), or let
/// motpctl make a new one (--generate): 16 lowercase hex characters from the operating system's
/// random source, printed once with a motp:// provisioning URI and a QR code for phone apps that
/// import one. The PIN is not in the URI or the QR code: the user types it into the app. Without
/// --pin, a random 4-digit PIN is made and printed.
///
/// TOTP and HOTP (--kind totp or hotp, for Google Authenticator, Aegis, FreeOTP, hardware
/// tokens): --generate makes a random secret of the hash's size (20 bytes for SHA-1, 32 for
/// SHA-256, 64 for SHA-512) and prints it in base32 with an otpauth:// Key URI and a QR code to
/// scan with the app; --secret takes the base32 secret a hardware token came with. These apps
/// have no PIN: for a second factor typed before the code, run `motpctl set-password NAME`
/// afterwards. Many apps (Google Authenticator among them) ignore every setting but SHA-1, 6
/// digits and 30 seconds and then show wrong codes; motpctl warns when you choose others.
///
/// The certificate's common name must be the username unless --common-name says otherwise (when
/// require_common_name is on, the default).
///
/// With --token TOKNAME, the token is added to an existing user as a further token (a
/// `[[users.NAME.tokens]]` entry named TOKNAME: 1 to 32 letters, digits, '-', '_' or '.'), for
/// a user with a phone and a hardware token, or one moving from mOTP to TOTP: any of the
/// user's tokens then logs in, each keeping its own replay state; the user's static password,
/// recovery codes, lock and common name are shared by all.
///
/// Warnings: an mOTP PIN that is not 4 digits (Aegis and Stratum accept only those), and
/// TOTP/HOTP settings other than SHA-1, 6 digits and 30 s (many apps ignore them).
///
/// The file keeps its comments, order, owner and mode; it is replaced atomically, and only if
/// the plugin would accept the result. The plugin applies the change within one to two seconds
/// (no reload needed).
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct AddUserArgs {
    /// The username, as the client sends it
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The kind of token: motp, totp or hotp
    #[arg(long, value_enum, default_value = "motp", value_name = "KIND")]
    pub kind: KindArg,

    /// The secret the phone app or token already has (mOTP: 16 to 32 hex characters; TOTP and
    /// HOTP: base32), or `-` to read it from standard input
    #[arg(
        long,
        value_name = "SECRET",
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    pub secret: Option<String>,

    /// Make a new random secret and print it with a provisioning URI and a QR code
    #[arg(long)]
    pub generate: bool,

    /// mOTP only: the PIN the user types into the phone app [default: a random 4-digit PIN,
    /// printed]
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,

    /// TOTP/HOTP: the HMAC hash [default: sha1]
    #[arg(long, value_enum, value_name = "HASH")]
    pub algorithm: Option<AlgorithmArg>,

    /// TOTP/HOTP: digits per code, 6 or 8 [default: 6]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(6..=8))]
    pub digits: Option<u8>,

    /// TOTP: seconds per code, a multiple of 10 from 10 to 300 [default: 30]
    #[arg(long, value_name = "SECS")]
    pub period: Option<u32>,

    /// HOTP: the counter of the next code the token will show [default: 0]
    #[arg(long, value_name = "N")]
    pub counter: Option<u64>,

    /// The certificate common name this user logs in with, if it is not the username
    #[arg(long, value_name = "CN")]
    pub common_name: Option<String>,

    /// Add the token to the existing user NAME as a further token of this name
    #[arg(long, value_name = "TOKNAME", conflicts_with = "common_name")]
    pub token: Option<String>,

    /// The issuer shown by phone apps in the provisioning URI [default: this host's name]
    #[arg(long, value_name = "TEXT", requires = "generate")]
    pub issuer: Option<String>,

    /// Do not print the QR code (the secret and URI are still printed)
    #[arg(long, requires = "generate")]
    pub no_qr: bool,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// One user of motp.toml (remove-user, disable, enable, unlock).
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct UserArgs {
    /// The username
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// Print the hash of a static password, for the `password` key of a user in motp.toml.
///
/// Reads the password from standard input: typed twice without echo on a terminal, or one line
/// from a pipe or file (`motpctl hash-password < file`). Never give it on the command line.
/// Prints an Argon2id hash in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$...`, the parameters
/// OWASP recommends, a new random salt every time); the password itself is stored nowhere.
///
/// To set a user's password in motp.toml directly, use `motpctl set-password NAME`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct HashPasswordArgs {}

/// Set (or remove) a user's static password, typed in front of the one-time code.
///
/// With a static password, the user logs in with the password followed by the code in
/// OpenVPN's password field (`secretpw123456` for the password `secretpw` and the code
/// `123456`), or with the password in the first part of a static challenge and the code in the
/// second. Both must be right.
///
/// Reads the password from standard input: typed twice without echo on a terminal, or one line
/// from a pipe or file. Never give it on the command line. motp.toml gets only its Argon2id hash
/// (`password = "$argon2id$..."`), replacing an earlier one; --remove deletes it, and the user
/// logs in with the code alone again.
///
/// The file keeps its comments, order, owner and mode; it is replaced atomically, and only if
/// the plugin would accept the result. The plugin applies the change within one to two seconds
/// (no reload needed).
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct SetPasswordArgs {
    /// The username
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Delete the user's static password instead (reads nothing)
    #[arg(long)]
    pub remove: bool,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// Make new one-time recovery codes for a user who lost their phone or token.
///
/// Prints COUNT new codes (like `k7m2-q9xp-4tfr`), one per line on standard output, and stores
/// only their hashes in the user's `recovery_codes`, replacing the previous set: codes printed
/// before no longer work. Hand the codes to the user now; they cannot be shown again (run the
/// command again for a new set).
///
/// Each code logs in once, typed instead of the one-time code (after the static password if the
/// user has one); dashes, spaces and upper case do not matter. The plugin logs such a login as a
/// recovery login and records the code as used.
///
/// The file keeps its comments, order, owner and mode; it is replaced atomically, and only if
/// the plugin would accept the result. The plugin applies the change within one to two seconds
/// (no reload needed).
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct RecoveryCodesArgs {
    /// The username
    #[arg(value_name = "NAME")]
    pub name: String,

    /// How many codes to make (1 to 32)
    #[arg(long, value_name = "COUNT", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(1..=32))]
    pub count: u8,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// Say whether a code is valid for a user right now, and if not, why not.
///
/// Checks the code the way the plugin does (the user's token of any kind, offset_secs, the
/// window around the server's clock, HOTP's look-ahead after the stored counter), through the
/// plugin's own decision, but changes nothing: the code is not used up and no failure is
/// counted. A right code is also checked against the plugin's state, when motpctl can read it
/// (backend "local" run as root or the database's owner, or "redis"): a locked user, or a code
/// already used (a replay), is reported as not valid now. The certificate CN is not checked.
/// CODE may also be one of the user's recovery codes (reported as valid if it is still unused).
///
/// A user with a static password logs in with the password in front of the code; give CODE
/// alone, and add --with-password to type the password on standard input (never on the command
/// line) and check both. Without it the password is not checked, and the answer says so.
///
/// A user with several tokens ([[users.NAME.tokens]]) logs in with any of them: CODE is
/// checked against all, and the answer names the token that matched.
///
/// A valid code is reported with its step offset: "+1" means the phone is one step (10 s for
/// mOTP, the period for TOTP) ahead of where the server expects it. A code outside the window is
/// searched for within ±24 hours (HOTP: the next 10,000 counters); if found, motpctl tells how
/// far off the phone's clock (or the token's counter) is and suggests `motpctl resync`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  the code is valid now
  1  the code is not valid now (unknown or disabled user, no match in the window,
     user locked, code already used, wrong static password)
  2  error: the config cannot be read, or CODE does not look like one of the user's codes")]
pub struct VerifyArgs {
    /// The username
    #[arg(value_name = "USER")]
    pub user: String,

    /// The code the phone or token shows (mOTP: 6 hex characters; TOTP/HOTP: 6 or 8 digits), or
    /// a recovery code
    #[arg(value_name = "CODE")]
    pub code: String,

    /// Also check the user's static password, read from standard input (without echo on a
    /// terminal)
    #[arg(long)]
    pub with_password: bool,

    #[command(flatten)]
    pub config: ConfigArg,
}

/// Fix a token that drifted: find it from two consecutive codes and save what was found.
///
/// mOTP and TOTP (a phone whose clock is off): ask the user for the code the phone shows, wait
/// until it changes, ask for the new one, and run this right away with both, the older first.
/// motpctl searches ±24 hours around the server's clock for two consecutive steps that give
/// these codes, and writes the phone's offset (the step of CODE2, the code the phone shows now,
/// minus the server's step, times the step length: 10 s for mOTP, the period for TOTP) as the
/// user's offset_secs. It prints the old and the new value.
///
/// HOTP (a token whose button was pressed too often without logging in): ask for two codes in a
/// row; motpctl searches the 10,000 counters after the one the plugin expects for two
/// consecutive counters that give them. The next code the token shows is then accepted.
///
/// Two codes are needed because one code matches somewhere in such a search by chance about
/// once in a hundred or a thousand tries; two consecutive ones practically never do. If they
/// match at more than one place, nothing is written.
///
/// Both codes are recorded as used in the plugin's state store (the local database or Redis,
/// as motp.toml says), before the offset is written: codes read out to an admin never log in.
/// For HOTP that record is what moves the counter on. With `backend = "memory"` the state is
/// out of reach: a note says so, and for HOTP the user's `counter` in motp.toml is set instead.
///
/// With --token TOKNAME, the user's further token of that name is resynced: its own
/// offset_secs in its [[users.NAME.tokens]] entry, its own row in the state store.
///
/// Writing offset_secs also resets drift tracking: the plugin centres the window on the new
/// offset at once, and the two codes recorded say that is where the phone's clock is.
///
/// Better still, set the phone's clock right (automatic network time) and leave offset_secs
/// at 0. The plugin applies the change within one to two seconds (no reload needed).
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  offset_secs (or the HOTP counter) was written or already right, the codes recorded as used
  2  error: no match, an ambiguous match, bad codes, the state store cannot record the codes,
     or the config cannot be written; nothing was changed")]
pub struct ResyncArgs {
    /// The username
    #[arg(value_name = "USER")]
    pub user: String,

    /// A code the phone or token showed
    #[arg(value_name = "CODE1")]
    pub code1: String,

    /// The next code it showed (mOTP: 10 s later; TOTP: one period later; HOTP: the next press)
    #[arg(value_name = "CODE2")]
    pub code2: String,

    /// The user's further token of this name ([[users.NAME.tokens]]) instead of its own token
    #[arg(long, value_name = "TOKNAME")]
    pub token: Option<String>,

    #[command(flatten)]
    pub config: ConfigArg,
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

/// Convert the user files of older OTP setups (pam_mobile_otp, openvpn-otp,
/// pam_google_authenticator) to motp.toml.
///
/// The result goes to standard output, or to a new file with --output (mode 0600). Comments are
/// kept as TOML comments. Every line that cannot be carried over faithfully (so that the same
/// phone would stop working) is reported with its line number and the reason. By default one
/// such line stops the whole import (exit 2, nothing written); with --skip-unconvertible the
/// other users are written, each refused line is left as a comment, and the exit status is 1.
///
/// Imported users have no common_name, so the plugin will require their certificate's CN to be
/// the username (require_common_name, on by default). Check that before switching over.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub format: ImportFormat,
}

#[derive(Subcommand, Debug)]
pub enum ImportFormat {
    PamMotp(PamMotpArgs),
    OpenvpnOtp(OpenvpnOtpArgs),
    GoogleAuthenticator(GoogleAuthenticatorArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ImportOutput {
    /// Write the result to this new file (mode 0600) instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE if it exists
    #[arg(long, requires = "output")]
    pub force: bool,

    /// Import the lines that can be converted and leave the others out (exit 1)
    #[arg(long)]
    pub skip_unconvertible: bool,
}

/// Import pam_mobile_otp's motp.conf (usually /etc/security/motp.conf).
///
/// Each line is `USER SECRET PIN OFFSET_HOURS` (the offset may be left out, meaning 0); `#`
/// starts a comment. OFFSET_HOURS is read as the number of hours the phone's clock is ahead of
/// the server's (negative: behind), which is the module's documented meaning on Linux; it becomes
/// offset_secs = OFFSET_HOURS × 3600 (e.g. -5.5 becomes -19800). If your module was patched to
/// take the phone's time zone instead, check the result with `motpctl verify`.
///
/// Secrets are carried over exactly as written (the module hashed them as written); an uppercase
/// one gets a warning from `motpctl check-config`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  every user was converted
  1  some lines were left out (--skip-unconvertible)
  2  error: a line cannot be converted, or FILE cannot be read or the output written")]
pub struct PamMotpArgs {
    /// The motp.conf to read
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    pub out: ImportOutput,
}

/// Import an openvpn-otp (or ppp-otp) secrets file (usually /etc/ppp/otp-secrets).
///
/// Each line is `USER SERVER METHOD:HASH:ENCODING:KEY:PIN[:UDID] [CLIENT]`, as read by
/// openvpn-otp; `#` starts a comment. SERVER and CLIENT are ignored (openvpn-otp ignores them
/// too).
///
/// totp, totp-60-6 and hotp lines become TOTP and HOTP users: HASH sha1, sha256 or sha512; the
/// KEY decoded as openvpn-otp decodes it (base32, hex, or the text's bytes) and written in
/// base32; TOTP with openvpn-otp's totp_step and totp_digits (--totp-step, --totp-digits if the
/// plugin line set them; totp-60-6 is 60 s, 6 digits). A non-empty PIN becomes the user's
/// static password (stored as an Argon2id hash), so users keep typing the PIN followed by the
/// code. An HOTP token's counter is read from openvpn-otp's counters directory (the file named
/// by the SHA-1 of the key as written); a missing file gives counter 0, with a note. The UDID is
/// ignored, as openvpn-otp ignores it for these methods.
///
/// motp lines become mOTP users when they produce standard mOTP codes: HASH `md5`, ENCODING
/// `text`, a KEY of 16 to 32 hex characters, no UDID, and the PIN stays the mOTP PIN. Refused,
/// with the reason: `hex` or `base32` encoding (openvpn-otp hashes the decoded bytes instead of
/// the text, so the codes differ), and a non-empty UDID (openvpn-otp appends it to the hashed
/// text). Codes made with a UDID are exactly the mOTP codes of the PIN followed by the UDID;
/// --udid-into-pin converts such lines that way, if the phones really were set up with that
/// longer PIN. `plain:` lines (a password without a code) are refused.
///
/// openvpn-otp accepts any of a user's lines: the first line of a user becomes the user's own
/// token, each further line a [[users.NAME.tokens]] entry with its own settings, named after
/// its kind ("totp-2", "hotp", ...; a comment above it gives its line). motp.so has one static
/// password per user, typed before the code of any token: the PIN of every totp/hotp line of a
/// user must be the same (or empty on all), and a user with an mOTP line (whose PIN is inside
/// the code) cannot have a PIN on another line. A user whose lines differ is refused, naming
/// the lines.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  every user was converted
  1  some lines were left out (--skip-unconvertible), or notes
  2  error: a line cannot be converted, or FILE cannot be read or the output written")]
pub struct OpenvpnOtpArgs {
    /// The secrets file to read
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Carry a UDID over as part of the PIN (PIN = PIN followed by UDID), which gives the same
    /// codes openvpn-otp accepted
    #[arg(long)]
    pub udid_into_pin: bool,

    /// openvpn-otp's HOTP counters directory (its hotp_counters setting)
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/spool/openvpn/hotp-counters"
    )]
    pub hotp_counters: PathBuf,

    /// openvpn-otp's totp_step setting: seconds per code of totp lines
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub totp_step: u32,

    /// openvpn-otp's totp_digits setting: digits of totp and hotp codes (6 or 8)
    #[arg(long, value_name = "N", default_value_t = 6,
          value_parser = clap::builder::TypedValueParser::map(
              clap::builder::PossibleValuesParser::new(["6", "8"]),
              |s| s.parse::<u8>().expect("6 or 8")))]
    pub totp_digits: u8,

    #[command(flatten)]
    pub out: ImportOutput,
}

/// Import pam_google_authenticator's `.google_authenticator` files.
///
/// A file holds one user's token: the base32 secret on the first line, options (`" TOTP_AUTH`,
/// `" HOTP_COUNTER n`, `" STEP_SIZE n`, ...), and the 8-digit scratch codes, one per line. The
/// file does not name its user: give FILE with --user NAME, or --homes DIR to import every
/// DIR/USER/.google_authenticator (USER taken from the directory's name, as under /home).
///
/// The token becomes a TOTP user (SHA-1, 6 digits, STEP_SIZE or 30 s), or an HOTP user when
/// HOTP_COUNTER is present (the counter carried over), so the phone app keeps working. The
/// scratch codes become the user's recovery codes (stored as hashes): each still logs in once.
/// WINDOW_SIZE, RATE_LIMIT and DISALLOW_REUSE are noted and not carried over (motp.toml's window
/// and lockout are the same for every user; a code is never accepted twice). If the PAM stack
/// also asked for the Unix password, give the users a static password with `motpctl
/// set-password NAME`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status:
  0  every user was converted
  1  some files were left out (--skip-unconvertible), or options were noted
  2  error: a file cannot be converted or read, or the output written")]
pub struct GoogleAuthenticatorArgs {
    /// A user's .google_authenticator file
    #[arg(
        value_name = "FILE",
        required_unless_present = "homes",
        requires = "user"
    )]
    pub file: Option<PathBuf>,

    /// The user FILE belongs to
    #[arg(long, value_name = "NAME", requires = "file")]
    pub user: Option<String>,

    /// A directory of home directories: import each DIR/USER/.google_authenticator
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "user"])]
    pub homes: Option<PathBuf>,

    #[command(flatten)]
    pub out: ImportOutput,
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

/// Write the man pages (motpctl.1 and one page per subcommand) into a directory.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes `motpctl.1`, `motpctl-<subcommand>.1` (and `motpctl-import-<format>.1`) and
/// `motp.toml.5` into `dir`.
pub fn write_man_pages(dir: &Path) -> Outcome {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    render_page(&cmd, "motpctl", dir, &mut written)?;
    // `help` gets a page (the main page lists it), but not its own list of subcommands.
    let shown = |c: &&Command| !c.is_hide_set();
    for sub in cmd.get_subcommands().filter(shown) {
        let name = format!("motpctl-{}", sub.get_name());
        render_page(sub, &name, dir, &mut written)?;
        if sub.get_name() == "help" {
            continue;
        }
        for subsub in sub
            .get_subcommands()
            .filter(|c| shown(c) && c.get_name() != "help")
        {
            render_page(
                subsub,
                &format!("{name}-{}", subsub.get_name()),
                dir,
                &mut written,
            )?;
        }
    }
    let config_page = dir.join("motp.toml.5");
    fs::write(&config_page, crate::man5::page())
        .map_err(|e| format!("cannot write {}: {e}", config_page.display()))?;
    written.push(config_page);
    for page in written {
        println!("{}", page.display());
    }
    Ok(Status::Ok)
}

fn render_page(
    cmd: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Fail> {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let man = clap_mangen::Man::new(page)
        .title(name.to_uppercase())
        .section("1")
        .source(format!("motpctl {}", env!("CARGO_PKG_VERSION")))
        .manual("openvpn-motp");
    let mut buf = Vec::new();
    man.render(&mut buf)
        .map_err(|e| format!("cannot render the man page {name}: {e}"))?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, buf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    written.push(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
