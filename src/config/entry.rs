//! The rules one user entry must meet (username, secret, PIN, certificate CN), written once: the
//! loader refuses a motp.toml that breaks them, and motpctl checks what an admin types or
//! imports against the same functions before it writes anything. Each answer says what is
//! wrong without quoting the value (a secret or PIN must never reach a message).

use super::{MAX_PIN_LEN, MAX_USERNAME_LEN};

/// Why `name` cannot be a username, if it cannot.
pub fn username_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_USERNAME_LEN || name.chars().any(char::is_control) {
        return Some(format!(
            "a username must be 1 to {MAX_USERNAME_LEN} bytes without control characters"
        ));
    }
    None
}

/// Why `secret` cannot be an mOTP secret, if it cannot: "must be ...", to follow the key's name.
pub fn secret_problem(secret: &str) -> Option<String> {
    let all_hex = secret.bytes().all(|b| b.is_ascii_hexdigit());
    if (16..=32).contains(&secret.len()) && all_hex {
        return None;
    }
    Some(format!(
        "must be 16 to 32 hex characters (0-9, a-f) as the phone app shows it; this one has {} \
         characters{}",
        secret.chars().count(),
        if all_hex { "" } else { ", some not hex" }
    ))
}

/// Whether `pin` can be a PIN: 1 to [`MAX_PIN_LEN`] bytes, no control characters, no spaces.
pub fn pin_is_valid(pin: &str) -> bool {
    !pin.is_empty()
        && pin.len() <= MAX_PIN_LEN
        && !pin.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Whether `cn` can be a certificate common name: non-empty, no control characters.
pub fn common_name_is_valid(cn: &str) -> bool {
    !cn.is_empty() && !cn.chars().any(char::is_control)
}
