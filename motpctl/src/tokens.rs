//! What differs between token kinds (mOTP, TOTP, HOTP) for the commands: the code a user's
//! token shows, new TOTP/HOTP secrets, Key URIs (`otpauth://`) and QR codes.

use std::io::IsTerminal;

use clap::ValueEnum;
use motp::config::{Token, User};
use motp::engine::{self, base32, hotp_text, Algorithm};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use zeroize::Zeroizing;

use crate::Fail;

/// `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Mobile-OTP (the default): 6 hex characters from md5(time ‖ secret ‖ PIN)
    Motp,
    /// RFC 6238 time-based codes (Google Authenticator, Aegis, FreeOTP, ...)
    Totp,
    /// RFC 4226 counter-based codes (hardware tokens with a button, some apps)
    Hotp,
}

/// `--algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// HMAC-SHA-1: what almost every app uses
    Sha1,
    /// HMAC-SHA-256
    Sha256,
    /// HMAC-SHA-512
    Sha512,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Algorithm {
        match a {
            AlgorithmArg::Sha1 => Algorithm::Sha1,
            AlgorithmArg::Sha256 => Algorithm::Sha256,
            AlgorithmArg::Sha512 => Algorithm::Sha512,
        }
    }
}

/// The key size RFC 4226 and RFC 6238 recommend for a hash: its output length.
pub fn key_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    }
}

/// A new TOTP/HOTP secret of the hash's size from the OS random source, in base32.
pub fn random_hmac_secret(algorithm: Algorithm) -> Result<Zeroizing<String>, Fail> {
    let bytes = Zeroizing::new(crate::sys::random_bytes(key_len(algorithm))?);
    Ok(Zeroizing::new(base32::encode(&bytes)))
}

/// The digits of a TOTP or HOTP token (6 for mOTP, whose codes are 6 hex characters).
pub fn digits(token: &Token) -> u8 {
    match token {
        Token::Motp => 6,
        Token::Totp(t) => t.digits,
        Token::Hotp { hotp, .. } => hotp.digits,
    }
}

/// How a code of this kind looks, for messages ("the 6 digits the app shows").
pub fn code_shape(token: &Token) -> String {
    match token {
        Token::Motp => "the 6 hex characters the phone shows (0-9, a-f), e.g. 6ed4e4".to_owned(),
        _ => format!("the {} digits the app or token shows", digits(token)),
    }
}

/// Whether `text` has the shape of one of this token's codes (not whether it is right).
pub fn looks_like_code(token: &Token, text: &str) -> bool {
    match token {
        Token::Motp => engine::Code::parse(text.as_bytes()).is_some(),
        _ => engine::OtpCode::parse(text.as_bytes(), digits(token)).is_some(),
    }
}

/// One of a user's tokens as the commands see it: the user's own (`more: None`, in the
/// `[users.NAME]` table) or a further one (`[[users.NAME.tokens]]`), with what its codes are
/// made from and where its replay state lives.
#[derive(Clone, Copy)]
pub struct Tok<'a> {
    pub token: Token,
    pub key: &'a [u8],
    pub offset_secs: i64,
    /// The further token's name and its index in `user.more_tokens`; `None` for the user's
    /// own token.
    more: Option<(&'a str, usize)>,
    user: User<'a>,
}

impl<'a> Tok<'a> {
    /// The user's own token.
    pub fn own(user: &User<'a>) -> Tok<'a> {
        Tok {
            token: user.token,
            key: user.key,
            offset_secs: user.offset_secs,
            more: None,
            user: *user,
        }
    }

    /// Every token of the user: its own first, then the further ones in file order.
    pub fn all(user: &User<'a>) -> Vec<Tok<'a>> {
        std::iter::once(Tok::own(user))
            .chain(user.more_tokens.iter().enumerate().map(|(i, m)| Tok {
                token: m.token,
                key: m.key(),
                offset_secs: m.offset_secs,
                more: Some((&*m.name, i)),
                user: *user,
            }))
            .collect()
    }

    /// The user's own token (`wanted: None`), or the further token of that name.
    pub fn select(user: &User<'a>, username: &str, wanted: Option<&str>) -> Result<Tok<'a>, Fail> {
        let Some(wanted) = wanted else {
            return Ok(Tok::own(user));
        };
        Tok::all(user)
            .into_iter()
            .find(|t| t.name() == Some(wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = user.more_tokens.iter().map(|m| &*m.name).collect();
                Fail(if names.is_empty() {
                    format!(
                        "`{username}` has no further tokens ([[users.{username}.tokens]]); \
                         leave out --token for the user's own token"
                    )
                } else {
                    format!(
                        "`{username}` has no token named `{}`; its further tokens are {} \
                         (leave out --token for the user's own token)",
                        motp::log::sanitize(wanted),
                        names.join(", ")
                    )
                })
            })
    }

    /// The further token's name.
    pub fn name(&self) -> Option<&'a str> {
        self.more.map(|(name, _)| name)
    }

    /// The store row of the token's replay state (the user's own row for its own token).
    pub fn row(&self, username: &str) -> String {
        match self.more {
            Some((_, i)) => self.user.more_tokens[i].state_key(username),
            None => username.to_owned(),
        }
    }

    /// How messages name the token: "`alice`" or "`alice`'s token `phone`".
    pub fn label(&self, username: &str) -> String {
        match self.name() {
            Some(n) => format!("`{username}`'s token `{n}`"),
            None => format!("`{username}`"),
        }
    }

    /// The `--token` arguments that name this token again (for hints).
    pub fn option(&self) -> String {
        match self.name() {
            Some(n) => format!(" --token {n}"),
            None => String::new(),
        }
    }
}

/// The code a clock token (mOTP, TOTP) shows at `phone_time` (the server's time plus the
/// token's offset_secs), with the seconds until the next one.
pub fn clock_code(token: Token, key: &[u8], phone_time: i64) -> (String, i64) {
    match token {
        Token::Totp(totp) => {
            let step = totp.step_of(phone_time);
            let period = i64::from(totp.period);
            (
                hotp_text(key, step.max(0) as u64, totp.algorithm, totp.digits),
                period - phone_time.rem_euclid(period),
            )
        }
        _ => (
            engine::code_at_step(engine::step_of(phone_time).max(0), key).to_hex(),
            engine::STEP_SECS - phone_time.rem_euclid(engine::STEP_SECS),
        ),
    }
}

/// The code an HOTP token shows at `counter`.
pub fn counter_code(token: Token, key: &[u8], counter: u64) -> Option<String> {
    match token {
        Token::Hotp { hotp, .. } => Some(hotp_text(key, counter, hotp.algorithm, hotp.digits)),
        _ => None,
    }
}

/// Whether `pin` is what Aegis and Stratum take as an mOTP PIN: exactly 4 digits.
pub fn pin_fits_common_apps(pin: &str) -> bool {
    pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The warning for an mOTP PIN that is not 4 digits (never quoting it).
pub const PIN_WARNING: &str = "is not 4 digits: Aegis and Stratum accept only 4-digit mOTP \
     PINs, so users of those apps cannot type it (other apps, such as DroidOTP, take longer \
     ones); prefer 4 digits";

/// TOTP/HOTP settings common apps ignore (they then show other codes): "algorithm sha256",
/// "8 digits", "a period of 60 s". Empty for mOTP and for SHA-1, 6 digits, 30 s.
pub fn unusual_settings(token: &Token) -> Vec<String> {
    let (algorithm, digits, period) = match token {
        Token::Motp => return Vec::new(),
        Token::Totp(t) => (t.algorithm, t.digits, Some(t.period)),
        Token::Hotp { hotp, .. } => (hotp.algorithm, hotp.digits, None),
    };
    KeyUri {
        issuer: "",
        account: "",
        secret: "",
        algorithm,
        digits,
        period,
        counter: 0,
    }
    .unusual_settings()
}

/// What to say after [`unusual_settings`].
pub const UNUSUAL_ADVICE: &str = "many apps (Google Authenticator among them) ignore every \
     setting but SHA-1, 6 digits and 30 s, and then show codes the plugin refuses";

/// What the Key URI of a TOTP or HOTP token says.
pub struct KeyUri<'a> {
    pub issuer: &'a str,
    pub account: &'a str,
    pub secret: &'a str,
    pub algorithm: Algorithm,
    pub digits: u8,
    /// `Some(period)` for TOTP, `None` for HOTP.
    pub period: Option<u32>,
    /// HOTP: the counter of the token's next code.
    pub counter: u64,
}

impl KeyUri<'_> {
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...` (Google Authenticator's Key URI
    /// format), with `algorithm`, `digits` and `period` only when they are not the defaults,
    /// and `counter` for HOTP (where it is required).
    pub fn to_uri(&self) -> String {
        use crate::sys::percent_encode as enc;
        let kind = if self.period.is_some() {
            "totp"
        } else {
            "hotp"
        };
        let mut uri = format!(
            "otpauth://{kind}/{}:{}?secret={}&issuer={}",
            enc(self.issuer),
            enc(self.account),
            self.secret,
            enc(self.issuer)
        );
        if self.algorithm != Algorithm::Sha1 {
            uri.push_str(&format!(
                "&algorithm={}",
                self.algorithm.name().to_ascii_uppercase()
            ));
        }
        if self.digits != 6 {
            uri.push_str(&format!("&digits={}", self.digits));
        }
        match self.period {
            Some(30) => {}
            Some(p) => uri.push_str(&format!("&period={p}")),
            None => uri.push_str(&format!("&counter={}", self.counter)),
        }
        uri
    }

    /// The settings common apps ignore (they then show other codes), for a warning.
    pub fn unusual_settings(&self) -> Vec<String> {
        let mut unusual = Vec::new();
        if self.algorithm != Algorithm::Sha1 {
            unusual.push(format!("algorithm {}", self.algorithm.name()));
        }
        if self.digits != 6 {
            unusual.push(format!("{} digits", self.digits));
        }
        if let Some(p) = self.period.filter(|p| *p != 30) {
            unusual.push(format!("a period of {p} s"));
        }
        unusual
    }
}

/// Prints `uri` as a QR code of unicode half blocks (two modules per character cell).
pub fn print_qr(uri: &str) -> Result<(), String> {
    let qr = QrCode::new(uri.as_bytes()).map_err(|e| e.to_string())?;
    let art = qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    // Drawn light-on-dark (light quiet zone and light modules as blocks). On a terminal, the
    // colours are set explicitly so that the code is not inverted on a light theme (many
    // scanners cannot read an inverted code).
    let tty = std::io::stdout().is_terminal();
    for line in art.lines() {
        if tty {
            println!("\x1b[97;40m{line}\x1b[0m");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_uris_leave_defaults_out_and_encode_names() {
        let uri = KeyUri {
            issuer: "ACME VPN",
            account: "carol@x",
            secret: "JBSWY3DPEHPK3PXP",
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: Some(30),
            counter: 0,
        };
        assert_eq!(
            uri.to_uri(),
            "otpauth://totp/ACME%20VPN:carol%40x?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20VPN"
        );
        assert!(uri.unusual_settings().is_empty());
        let uri = KeyUri {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: Some(60),
            ..uri
        };
        assert!(uri
            .to_uri()
            .ends_with("&issuer=ACME%20VPN&algorithm=SHA256&digits=8&period=60"));
        assert_eq!(uri.unusual_settings().len(), 3);
        let uri = KeyUri {
            period: None,
            counter: 7,
            algorithm: Algorithm::Sha1,
            digits: 6,
            ..uri
        };
        assert!(uri.to_uri().starts_with("otpauth://hotp/"));
        assert!(uri.to_uri().ends_with("&counter=7"));
    }

    #[test]
    fn secrets_have_the_hash_size() {
        for (a, n) in [
            (Algorithm::Sha1, 20),
            (Algorithm::Sha256, 32),
            (Algorithm::Sha512, 64),
        ] {
            let s = random_hmac_secret(a).unwrap();
            assert_eq!(base32::decode(&s).unwrap().len(), n);
        }
    }
}
