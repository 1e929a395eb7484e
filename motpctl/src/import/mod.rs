//! import: pam_mobile_otp's motp.conf and openvpn-otp's secrets file to motp.toml.
//!
//! A line is converted only if the plugin will accept exactly the codes the old setup accepted;
//! every other line is refused with its number and the reason, never quoting a secret or PIN.

use std::path::Path;

use motp::config::{entry, MAX_PIN_LEN};

use crate::Fail;

mod builder;
mod entries;
mod google_authenticator;
mod openvpn_otp;
mod pam_motp;
#[cfg(test)]
mod tests;

pub use google_authenticator::google_authenticator;
pub use openvpn_otp::openvpn_otp;
pub use pam_motp::pam_motp;

/// A name safe to print in a message.
fn printable(text: &str) -> String {
    motp::log::sanitize(text)
}

/// Text that can stand in a TOML comment (no control characters but tab).
fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

fn read_source(path: &Path) -> Result<String, Fail> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| Fail(format!("{} is not UTF-8 text", path.display())))
}

/// Why a PIN cannot go into motp.toml, if it cannot (never quoting it).
fn pin_problem(pin: &str) -> Option<String> {
    if pin.is_empty() {
        return Some("the PIN is empty, and motp.toml requires one".into());
    }
    if !entry::pin_is_valid(pin) {
        return Some(format!(
            "the PIN must be 1 to {MAX_PIN_LEN} characters without spaces for motp.toml"
        ));
    }
    None
}

/// What to do about a `#` in the PIN or secret (both formats).
const HASH_ADVICE: &str = "leave this line out of the import and add the user afterwards with \
     `motpctl add-user NAME --secret - --pin -`, which reads both from standard input";

/// Text that may be the secret or a PIN: hex digits only, secret-sized.
fn secret_like(field: &str) -> bool {
    field.len() >= 8 && field.bytes().all(|b| b.is_ascii_hexdigit())
}
