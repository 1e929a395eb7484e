//! The arguments of the commands that enrol and change users: add-user; remove-user, disable,
//! enable and unlock (one user); hash-password, set-password, recovery-codes.

use clap::Args;

use super::{ConfigArg, EXIT_CODES};
use crate::tokens::{AlgorithmArg, KindArg};

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
