//! A user's token as motp.toml describes it: `kind` (mOTP, the default, or TOTP/HOTP) and
//! the parameters of that kind, checked once at load so the decision only reads them. An mOTP
//! user's key stays in the user table's text (`secret ‖ pin`, hashed as written); a TOTP or
//! HOTP secret is base32 in the file and its decoded bytes are the HMAC key.

use zeroize::Zeroizing;

use super::diagnostics::Refusal;
use super::entry;
use crate::engine::{base32, Algorithm, Hotp, Totp};

/// The most counters an HOTP search looks ahead: each one costs an HMAC on every rejection.
pub const MAX_HOTP_WINDOW: u32 = 100;
/// TOTP periods allowed: whole multiples of mOTP's 10 s step, so a TOTP step maps onto the
/// store's step numbers (see [`Token::stored_step`]) and replay state keeps one time unit.
pub const TOTP_PERIODS: std::ops::RangeInclusive<u32> = 10..=300;

/// One user's token kind and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Motp,
    Totp(Totp),
    /// `seed`: the counter of the next code a new token shows (`counter` in motp.toml); the
    /// store's counter takes over after the first accepted code.
    Hotp {
        hotp: Hotp,
        seed: u64,
    },
}

impl Token {
    /// The kind's name as motp.toml writes it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Token::Motp => "motp",
            Token::Totp(_) => "totp",
            Token::Hotp { .. } => "hotp",
        }
    }

    /// The token as far as the work of its search goes: an HOTP token's seed does not change
    /// what a search costs, so tokens differing only in it are one kind of work.
    pub fn work(&self) -> Token {
        match *self {
            Token::Hotp { hotp, .. } => Token::Hotp { hotp, seed: 0 },
            other => other,
        }
    }

    /// Whether codes are counted (HOTP) rather than timed.
    pub fn is_counter_based(&self) -> bool {
        matches!(self, Token::Hotp { .. })
    }

    /// A TOTP step as the store keeps it: in mOTP's 10 s steps, the step's first ten seconds
    /// (`period` is a multiple of 10). Replay state, offsets and the lost-history floor then keep
    /// one unit whatever the kind, also when a user moves from mOTP to TOTP.
    pub fn stored_step(&self, step: i64) -> i64 {
        match self {
            Token::Totp(totp) => {
                step.saturating_mul(i64::from(totp.period) / crate::engine::STEP_SECS)
            }
            _ => step,
        }
    }
}

/// The token keys of one `[users.NAME]` table, each with its byte offset for messages.
#[derive(Default)]
pub(super) struct TokenFields<'a> {
    pub(super) kind: Option<(&'a str, usize)>,
    pub(super) algorithm: Option<(&'a str, usize)>,
    pub(super) digits: Option<(u8, usize)>,
    pub(super) period: Option<(u32, usize)>,
    pub(super) counter: Option<(u64, usize)>,
}

/// A TOTP or HOTP user's decoded HMAC key. Wiped on drop.
pub(super) type HmacKey = Zeroizing<Vec<u8>>;

/// Reads a user's token from its keys: the kind, its parameters, and for TOTP/HOTP the decoded
/// secret. `pin` is the mOTP PIN (required for mOTP, refused for the others: their apps have no
/// PIN; a knowledge factor is the static `password`).
pub(super) fn read(
    fields: &TokenFields<'_>,
    secret: (&str, usize),
    pin: Option<(&str, usize)>,
    refuse: &dyn Fn(usize, &str, String) -> Refusal,
) -> Result<(Token, Option<HmacKey>), Refusal> {
    let kind = fields.kind.map_or("motp", |(k, _)| k);
    let kind_at = fields.kind.map_or(secret.1, |(_, at)| at);
    let not_for = |present: Option<usize>, key: &str, kind: &str| -> Result<(), Refusal> {
        match present {
            Some(at) => Err(refuse(
                at,
                key,
                format!("is not a setting of a {kind} token; remove it"),
            )),
            None => Ok(()),
        }
    };
    match kind {
        "motp" => {
            not_for(fields.algorithm.map(|f| f.1), "algorithm", "motp")?;
            not_for(fields.digits.map(|f| f.1), "digits", "motp")?;
            not_for(fields.period.map(|f| f.1), "period", "motp")?;
            not_for(fields.counter.map(|f| f.1), "counter", "motp")?;
            if let Some(message) = entry::secret_problem(secret.0) {
                return Err(refuse(secret.1, "secret", message));
            }
            match pin {
                Some((pin, at)) if !entry::pin_is_valid(pin) => Err(refuse(
                    at,
                    "pin",
                    format!(
                        "must be 1 to {} printable characters without spaces (usually 4 digits)",
                        super::MAX_PIN_LEN
                    ),
                )),
                Some(_) => Ok((Token::Motp, None)),
                None => Err(refuse(
                    secret.1,
                    "pin",
                    "is missing: an mOTP user needs the pin typed into the phone app".to_owned(),
                )),
            }
        }
        "totp" | "hotp" => {
            if let Some((_, at)) = pin {
                return Err(refuse(
                    at,
                    "pin",
                    format!(
                        "is not a setting of a {kind} token (its app has no PIN); for a \
                         second factor typed before the code, set `password` (motpctl \
                         set-password)"
                    ),
                ));
            }
            if let Some(message) = base32::secret_problem(secret.0) {
                return Err(refuse(secret.1, "secret", message));
            }
            let key = base32::decode(secret.0)
                .map_err(|e| refuse(secret.1, "secret", format!("is not base32: {e}")))?;
            let algorithm = match fields.algorithm {
                None => Algorithm::Sha1,
                Some((name, at)) => Algorithm::from_name(name).ok_or_else(|| {
                    refuse(
                        at,
                        "algorithm",
                        "must be \"sha1\" (what almost every app uses), \"sha256\" or \
                         \"sha512\""
                            .to_owned(),
                    )
                })?,
            };
            let digits = match fields.digits {
                None => 6,
                Some((d @ (6 | 8), _)) => d,
                Some((_, at)) => {
                    return Err(refuse(at, "digits", "must be 6 or 8".to_owned()));
                }
            };
            if kind == "totp" {
                not_for(fields.counter.map(|f| f.1), "counter", "totp")?;
                let period = match fields.period {
                    None => 30,
                    Some((p, at)) => {
                        if !TOTP_PERIODS.contains(&p) || p % 10 != 0 {
                            return Err(refuse(
                                at,
                                "period",
                                format!(
                                    "must be a multiple of 10 seconds from {} to {} (apps use \
                                     30; hardware tokens often 60)",
                                    TOTP_PERIODS.start(),
                                    TOTP_PERIODS.end()
                                ),
                            ));
                        }
                        p
                    }
                };
                let totp = Totp {
                    algorithm,
                    digits,
                    period,
                };
                Ok((Token::Totp(totp), Some(key)))
            } else {
                not_for(fields.period.map(|f| f.1), "period", "hotp")?;
                let seed = fields.counter.map_or(0, |(c, _)| c);
                if seed > i64::MAX as u64 / 2 {
                    let at = fields.counter.map_or(kind_at, |(_, at)| at);
                    return Err(refuse(at, "counter", "is too large".to_owned()));
                }
                let hotp = Hotp { algorithm, digits };
                Ok((Token::Hotp { hotp, seed }, Some(key)))
            }
        }
        _ => Err(refuse(
            kind_at,
            "kind",
            "must be \"motp\" (the default), \"totp\" or \"hotp\"".to_owned(),
        )),
    }
}
