//! The arguments of `import` and its formats.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
