//! The arguments of the commands that compute one-time codes: code, verify and resync.

use clap::Args;

use super::{ConfigArg, EXIT_CODES};

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
