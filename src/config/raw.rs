//! The shapes serde reads motp.toml into, before validation: every value that a message must
//! point at is kept `Spanned` (its byte offset gives the line), and the users are validated
//! into the compact table as the parser hands them over, so no map of every user's strings
//! exists. Secrets and PINs are read as [`SecretText`], whose errors never echo the value.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

use super::diagnostics::Refusal;
use super::token::TokenFields;
use super::user_table::{MoreTokenFields, TableBuilder, UserFields};

fn spanned_str(value: &Option<Spanned<String>>) -> Option<(&str, usize)> {
    value
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span().start))
}

fn spanned_copy<T: Copy>(value: &Option<Spanned<T>>) -> Option<(T, usize)> {
    value.as_ref().map(|v| (*v.get_ref(), v.span().start))
}

fn spanned_secret(value: &Spanned<SecretText>) -> (&str, usize) {
    (value.get_ref().0.as_str(), value.span().start)
}

/// The token keys of a user's table or of one of its `[[users.NAME.tokens]]` entries.
fn token_fields<'a>(
    kind: &'a Option<Spanned<String>>,
    algorithm: &'a Option<Spanned<String>>,
    digits: &Option<Spanned<u8>>,
    period: &Option<Spanned<u32>>,
    counter: &Option<Spanned<u64>>,
) -> TokenFields<'a> {
    TokenFields {
        kind: spanned_str(kind),
        algorithm: spanned_str(algorithm),
        digits: spanned_copy(digits),
        period: spanned_copy(period),
        counter: spanned_copy(counter),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) window_secs: Option<Spanned<u32>>,
    pub(super) max_failures: Option<Spanned<u32>>,
    pub(super) lockout_secs: Option<Spanned<u64>>,
    pub(super) max_failures_per_ip: Option<Spanned<u32>>,
    pub(super) ip_lockout_secs: Option<Spanned<u64>>,
    pub(super) ip_prefix_v4: Option<Spanned<u8>>,
    pub(super) ip_prefix_v6: Option<Spanned<u8>>,
    pub(super) hotp_window: Option<Spanned<u32>>,
    pub(super) max_drift_secs: Option<Spanned<u32>>,
    pub(super) require_common_name: Option<bool>,
    pub(super) crtext_prompt: Option<bool>,
    pub(super) state: Option<RawState>,
    #[serde(default)]
    pub(super) users: RawUsers,
}

/// `[users]`, read straight into the compact table: each user is validated as the parser hands
/// it over, and only the first refusal is kept, to be reported after the global keys' checks
/// (the order the checks had when the users were collected first).
#[derive(Default)]
pub(super) struct RawUsers {
    /// The key was there at all, even as an empty table (the fast path must then defer).
    pub(super) present: bool,
    pub(super) table: TableBuilder,
    pub(super) refusal: Option<Refusal>,
}

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UsersVisitor;
        impl<'de> Visitor<'de> for UsersVisitor {
            type Value = RawUsers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of users")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawUsers, A::Error> {
                let mut users = RawUsers {
                    present: true,
                    ..RawUsers::default()
                };
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let raw: RawUser = map.next_value()?;
                    if users.refusal.is_none() {
                        let added =
                            users
                                .table
                                .add(name.get_ref(), name.span().start, raw.fields());
                        users.refusal = added.err();
                    }
                }
                Ok(users)
            }
        }
        d.deserialize_map(UsersVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) backend: Option<Spanned<String>>,
    pub(super) dir: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<SecretText>>,
    pub(super) sentinels: Option<Spanned<Vec<SecretText>>>,
    pub(super) master_name: Option<Spanned<String>>,
    pub(super) min_replicas: Option<Spanned<u32>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) key_prefix: Option<Spanned<String>>,
    pub(super) timeout_ms: Option<Spanned<u64>>,
    pub(super) fallback: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    kind: Option<Spanned<String>>,
    secret: Spanned<SecretText>,
    #[serde(default)]
    pin: Option<Spanned<SecretText>>,
    #[serde(default)]
    algorithm: Option<Spanned<String>>,
    #[serde(default)]
    digits: Option<Spanned<u8>>,
    #[serde(default)]
    period: Option<Spanned<u32>>,
    #[serde(default)]
    counter: Option<Spanned<u64>>,
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    recovery_codes: Option<Spanned<Vec<String>>>,
    /// More tokens of the same user (`[[users.NAME.tokens]]`): a phone and a hardware token.
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    offset_secs: Option<Spanned<i64>>,
    #[serde(default)]
    common_name: Option<Spanned<String>>,
    #[serde(default)]
    disabled: bool,
}

/// One entry of `[[users.NAME.tokens]]`: a token of its own, named for its replay state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    secret: Spanned<SecretText>,
    #[serde(default)]
    pin: Option<Spanned<SecretText>>,
    #[serde(default)]
    algorithm: Option<Spanned<String>>,
    #[serde(default)]
    digits: Option<Spanned<u8>>,
    #[serde(default)]
    period: Option<Spanned<u32>>,
    #[serde(default)]
    counter: Option<Spanned<u64>>,
    #[serde(default)]
    offset_secs: Option<Spanned<i64>>,
}

/// A string that is a secret: wiped on drop, and absent from every error and `Debug`.
pub(super) struct SecretText(pub(super) Zeroizing<String>);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        // Serde's default type errors quote the value (`invalid type: integer `1234``); each
        // method here answers with a message that does not.
        const NOT_A_STRING: &str =
            "must be a quoted string, e.g. \"1234\" (a bare number would lose leading zeros)";
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(SecretVisitor)
    }
}

impl RawUser {
    fn fields(&self) -> UserFields<'_> {
        UserFields {
            secret: spanned_secret(&self.secret),
            pin: self.pin.as_ref().map(spanned_secret),
            token: token_fields(
                &self.kind,
                &self.algorithm,
                &self.digits,
                &self.period,
                &self.counter,
            ),
            password: spanned_str(&self.password),
            recovery_codes: self.recovery_codes.as_ref().map(|codes| {
                (
                    codes.get_ref().iter().map(String::as_str).collect(),
                    codes.span().start,
                )
            }),
            offset_secs: self
                .offset_secs
                .as_ref()
                .map(|o| (*o.get_ref(), o.span().start)),
            common_name: self
                .common_name
                .as_ref()
                .map(|cn| (cn.get_ref().as_str(), cn.span().start)),
            disabled: self.disabled,
            more_tokens: self
                .tokens
                .iter()
                .map(|t| MoreTokenFields {
                    name: (t.name.get_ref().as_str(), t.name.span().start),
                    secret: spanned_secret(&t.secret),
                    pin: t.pin.as_ref().map(spanned_secret),
                    token: token_fields(&t.kind, &t.algorithm, &t.digits, &t.period, &t.counter),
                    offset_secs: spanned_copy(&t.offset_secs),
                })
                .collect(),
        }
    }
}
