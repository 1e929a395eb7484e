//! What one imported user or token becomes in motp.toml.

use motp::engine::{base32, Algorithm};
use motp::secret_hash;
use toml_edit::{Array, Item, Table, Value};
use zeroize::Zeroizing;

/// One user ready for motp.toml.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) secret: String,
    pub(super) pin: String,
    pub(super) offset_secs: i64,
}

/// A TOTP or HOTP token ready for motp.toml.
pub(super) struct HmacEntry {
    /// The decoded key (written in base32).
    pub(super) key: Zeroizing<Vec<u8>>,
    pub(super) algorithm: Algorithm,
    pub(super) digits: u8,
    /// `Some(period)` for TOTP, `None` for HOTP.
    pub(super) period: Option<u32>,
    /// HOTP: the counter of the next code.
    pub(super) counter: u64,
    /// The static password typed before the code (openvpn-otp's pin), hashed when written.
    pub(super) password: Option<Zeroizing<String>>,
    /// Normalized recovery codes (pam_google_authenticator's scratch codes), hashed when
    /// written.
    pub(super) recovery_codes: Vec<Zeroizing<Vec<u8>>>,
}

impl HmacEntry {
    /// The user's table: kind, the base32 secret, the settings that are not the defaults, and
    /// the hashes of the password and recovery codes.
    pub(super) fn table(&self) -> Table {
        let mut table = self.token_table(None);
        if let Some(password) = &self.password {
            table.insert(
                "password",
                toml_edit::value(secret_hash::hash_password(password.as_bytes())),
            );
        }
        if !self.recovery_codes.is_empty() {
            let mut hashes = Array::new();
            for code in &self.recovery_codes {
                let mut stored = Value::from(secret_hash::hash_recovery_code(code));
                stored.decor_mut().set_prefix("\n    ");
                hashes.push_formatted(stored);
            }
            hashes.set_trailing_comma(true);
            hashes.set_trailing("\n");
            table.insert("recovery_codes", Item::Value(Value::Array(hashes)));
        }
        table
    }

    /// The token's own keys (a `[[users.NAME.tokens]]` entry with `name`): kind, the base32
    /// secret and the settings that are not the defaults.
    pub(super) fn token_table(&self, name: Option<&str>) -> Table {
        let mut table = Table::new();
        if let Some(name) = name {
            table.insert("name", toml_edit::value(name));
        }
        table.insert(
            "kind",
            toml_edit::value(if self.period.is_some() {
                "totp"
            } else {
                "hotp"
            }),
        );
        table.insert("secret", toml_edit::value(base32::encode(&self.key)));
        if self.algorithm != Algorithm::Sha1 {
            table.insert("algorithm", toml_edit::value(self.algorithm.name()));
        }
        if self.digits != 6 {
            table.insert("digits", toml_edit::value(i64::from(self.digits)));
        }
        match self.period {
            Some(30) => {}
            Some(p) => {
                table.insert("period", toml_edit::value(i64::from(p)));
            }
            None if self.counter != 0 => {
                table.insert("counter", toml_edit::value(self.counter as i64));
            }
            None => {}
        }
        table
    }
}
