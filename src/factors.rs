//! What a password proves for one user whose token is not a bare mOTP code: the one-time code
//! of the user's kind (mOTP, TOTP, HOTP), the static password typed in front of it, or a
//! recovery code in its place. Pure, no state: the outcome is a [`Found`] for the rule.
//!
//! **Constant work.** A rejection must not tell which kind a user has, whether the user has a
//! static password or recovery codes, or whether the name exists. So every examination spends
//! the same: the search of every distinct token of the table (the user's own for real, the
//! others on a dummy key), one Argon2id verification when any user has a static password (a
//! dummy one for the others), and as many recovery-hash comparisons per candidate as the user
//! with the most codes needs. An accepted code may stop early, as the mOTP search does.
//!
//! **Where the code is.** Without a static password the whole response is the code. With one,
//! the code is the response's last characters (the password typed in front of it: openvpn-otp's
//! convention, and what OpenVPN 2.7's `static-challenge … concat` sends), or SCRV1's response
//! with the password in its first part.

use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::config::{Policy, Token, User, UserTable};
use crate::engine::{self, Code, Motp, OtpCode, TokenKind};
use crate::password::{Malformed, Parts};
use crate::rule::Found;
use crate::secret_hash::{self, RecoveryHash};

/// The HOTP counter a search starts at: past the last accepted one, and never below the
/// config's seed (an admin raising `counter` moves a token on).
pub fn hotp_next_counter(last_step: Option<i64>, seed: u64) -> u64 {
    let after_last = last_step.map_or(0, |l| u64::try_from(l.saturating_add(1)).unwrap_or(0));
    after_last.max(seed)
}

/// What [`examine`] found, and on whose row the step is decided: `token` is the index of the
/// matching token in [`User::more_tokens`], `None` for the user's own token (or no step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Examined {
    pub found: Found,
    pub token: Option<usize>,
}

/// One of a user's tokens as the search sees it.
struct TokenRef<'a> {
    token: Token,
    key: &'a [u8],
    offset_secs: i64,
}

/// Examines `parts` (or why the password could not be read) for `user`. `hotp_next[i]` is the
/// counter an HOTP search of the user's token `i` starts at (0: the user's own token, `1 + n`:
/// `more_tokens[n]`; see [`hotp_next_counter`]); ignored for the other kinds. `offsets[i]` is
/// the clock offset token `i`'s window is centred on (its configured one moved by drift
/// tracking, [`crate::drift`]).
pub fn examine(
    user: &User,
    parts: &Result<Parts, Malformed>,
    table: &UserTable,
    policy: &Policy,
    now: i64,
    hotp_next: &[u64],
    offsets: &[i64],
) -> Examined {
    let parts = match parts {
        Ok(parts) => parts,
        Err(why) => {
            spend_rejection_work(table, policy, now, None);
            return Examined {
                found: Found::Malformed(*why),
                token: None,
            };
        }
    };
    let tokens = std::iter::once(TokenRef {
        token: user.token,
        key: user.key,
        offset_secs: user.offset_secs,
    })
    .chain(user.more_tokens.iter().map(|t| TokenRef {
        token: t.token,
        key: t.key(),
        offset_secs: t.offset_secs,
    }));

    // Every token is searched (any may match; the first in file order wins), each with the
    // static password and the code split where its code length puts the split.
    let mut matched: Option<(Found, usize, usize)> = None;
    for (i, t) in tokens.enumerate() {
        let (typed_password, code_text) = split(user, parts, code_len(&t.token));
        let next = hotp_next.get(i).copied().unwrap_or(0);
        let t = TokenRef {
            offset_secs: offsets.get(i).copied().unwrap_or(t.offset_secs),
            ..t
        };
        let hit = search(&t, code_text, table, policy, now, next);
        if matched.is_none() {
            matched = hit.map(|found| (found, i, typed_password.len()));
        }
    }
    // Recovery codes: tried whatever the code search found, so the time does not tell.
    let recovery = match (&user.password, &parts.static_part) {
        (Some(_), None) => recovery_in_suffix(user, table, &parts.response),
        // No password in front: nothing before the code (a static part is SCRV1's own field).
        _ => recovery_whole(user, table, &parts.response).map(|index| (index, 0)),
    };

    // One Argon2id verification whenever any user has a password: on the password in front of
    // whatever matched, else in front of the user's own token's code.
    let password_ok = match user.password {
        Some(hash) => {
            let typed = match (&parts.static_part, matched, recovery) {
                (Some(static_part), _, _) => &static_part[..],
                (None, Some((_, _, prefix_len)), _) | (None, None, Some((_, prefix_len))) => {
                    &parts.response[..prefix_len]
                }
                (None, None, None) => split(user, parts, code_len(&user.token)).0,
            };
            secret_hash::verify_password(hash, typed)
        }
        None => {
            if table.any_password() {
                secret_hash::dummy_verify(b"");
            }
            true
        }
    };

    // The other tokens' work, for every outcome but an acceptance: a right code behind a wrong
    // password costs what a wrong code costs, so the time does not tell the code was right.
    let accepted = password_ok && (matched.is_some() || recovery.is_some());
    if !accepted {
        for (token, most) in table.tokens() {
            let done = std::iter::once(user.token)
                .chain(user.more_tokens.iter().map(|t| t.token))
                .filter(|t| t.work() == *token)
                .count();
            for _ in done..*most {
                burn(token, table, policy, now);
            }
        }
    }

    let (found, token) = match (matched, recovery) {
        (Some((found, i, _)), _) if password_ok => (found, i.checked_sub(1)),
        (None, Some((index, _))) if password_ok => (
            Found::Recovery {
                set: user.recovery_set,
                index: index as u8,
            },
            None,
        ),
        (Some(_), _) | (None, Some(_)) => (Found::BadPassword, None),
        (None, None) => (Found::NoMatch, None),
    };
    Examined { found, token }
}

/// The static password and the code of a response, for a code of `code_len` characters.
fn split<'p>(user: &User, parts: &'p Parts, code_len: usize) -> (&'p [u8], &'p [u8]) {
    match (&user.password, &parts.static_part) {
        (None, _) => (b"", &parts.response),
        (Some(_), Some(static_part)) => (static_part, &parts.response),
        (Some(_), None) => {
            let at = parts.response.len().saturating_sub(code_len);
            parts.response.split_at(at)
        }
    }
}

/// The work of a rejection with no user to examine (unknown, disabled, another user's
/// certificate, an address locked) or an unreadable password: every token's search on a dummy
/// key, the dummy password verification, the recovery comparisons. `mOTP` callers pass the
/// code they already parsed, so an mOTP-only table costs exactly what it did before kinds.
pub fn spend_rejection_work(table: &UserTable, policy: &Policy, now: i64, parts: Option<&Parts>) {
    for (token, most) in table.tokens() {
        for _ in 0..*most {
            burn(token, table, policy, now);
        }
    }
    if table.any_password() {
        secret_hash::dummy_verify(b"");
    }
    if table.most_recovery_codes() > 0 {
        let response = parts.map_or(&b""[..], |p| &p.response[..]);
        for _ in 0..recovery_candidates_per_login(table) {
            compare_dummies(table.most_recovery_codes(), response);
        }
    }
}

/// Whether examining a login for this table needs more than the mOTP code (a kind other than
/// mOTP, static passwords or recovery codes): then [`examine`] decides, otherwise the mOTP path.
pub fn table_needs_examine(table: &UserTable) -> bool {
    table
        .tokens()
        .iter()
        .any(|(t, most)| *t != Token::Motp || *most > 1)
        || table.any_password()
        || table.most_recovery_codes() > 0
}

fn code_len(token: &Token) -> usize {
    match token {
        Token::Motp => 6,
        Token::Totp(totp) => usize::from(totp.digits),
        Token::Hotp { hotp, .. } => usize::from(hotp.digits),
    }
}

/// The user's own search: a [`Found::Step`] with the step as the store keeps it, or `None`.
fn search(
    user: &TokenRef,
    code_text: &[u8],
    table: &UserTable,
    policy: &Policy,
    now: i64,
    hotp_next: u64,
) -> Option<Found> {
    let center_time = now.saturating_add(user.offset_secs);
    match &user.token {
        Token::Motp => {
            let radius = policy.window_steps();
            let center = engine::step_of(center_time);
            let Some(code) = Code::parse(code_text) else {
                burn(&user.token, table, policy, now);
                return None;
            };
            let m = Motp.find(code, user.key, center, radius, table.longest_key())?;
            Some(Found::Step {
                step: m.step,
                step_offset: m.step_offset,
            })
        }
        Token::Totp(totp) => {
            let radius = policy.window_steps_of(totp.period);
            let center = totp.step_of(center_time);
            let Some(code) = totp.parse(code_text) else {
                burn(&user.token, table, policy, now);
                return None;
            };
            let m = totp.find(code, user.key, center, radius, table.longest_hmac_key())?;
            Some(Found::Step {
                step: user.token.stored_step(m.step),
                step_offset: m.step_offset,
            })
        }
        Token::Hotp { hotp, .. } => {
            let look_ahead = u64::from(policy.hotp_window);
            let Some(code) = hotp.parse(code_text) else {
                burn(&user.token, table, policy, now);
                return None;
            };
            let counter = hotp.find_ahead(
                code,
                user.key,
                hotp_next,
                look_ahead,
                table.longest_hmac_key(),
            )?;
            Some(Found::Step {
                step: i64::try_from(counter).ok()?,
                step_offset: i64::try_from(counter - hotp_next).unwrap_or(i64::MAX),
            })
        }
    }
}

/// One token's full search on a dummy key.
fn burn(token: &Token, table: &UserTable, policy: &Policy, now: i64) {
    match token {
        Token::Motp => Motp.burn(
            Code::parse(b"000000").expect("constant is a code"),
            engine::step_of(now),
            policy.window_steps(),
            table.longest_key(),
        ),
        Token::Totp(totp) => totp.burn(
            dummy_code(totp.digits),
            totp.step_of(now),
            policy.window_steps_of(totp.period),
            table.longest_hmac_key(),
        ),
        Token::Hotp { hotp, .. } => hotp.burn(
            dummy_code(hotp.digits),
            u64::from(policy.hotp_window),
            table.longest_hmac_key(),
        ),
    }
}

fn dummy_code(digits: u8) -> OtpCode {
    OtpCode::from_value(0, digits).expect("6 and 8 digits are the only kinds configured")
}

/// How many recovery-code candidates a login with a static password in front tries: the code
/// with its dashes, without, and an 8-digit scratch code. Logins of users without a password
/// try one; the count is the table's most, so the time does not tell them apart.
fn recovery_candidates_per_login(table: &UserTable) -> usize {
    if table.any_password() {
        3
    } else {
        1
    }
}

/// The suffix lengths a recovery code typed after a static password may have.
const RECOVERY_SUFFIXES: [usize; 3] = [
    secret_hash::RECOVERY_CODE_LEN + 2,
    secret_hash::RECOVERY_CODE_LEN,
    secret_hash::SCRATCH_CODE_LEN,
];

/// A recovery code as the whole response: its index.
fn recovery_whole(user: &User, table: &UserTable, response: &[u8]) -> Option<usize> {
    let candidates = recovery_candidates_per_login(table);
    let found = match_padded(user.recovery_codes, table, response);
    for _ in 1..candidates {
        compare_dummies(table.most_recovery_codes(), response);
    }
    found
}

/// A recovery code at the end of the response, after the static password: its index and the
/// length of the password in front of it.
fn recovery_in_suffix(user: &User, table: &UserTable, response: &[u8]) -> Option<(usize, usize)> {
    let mut found = None;
    for suffix in RECOVERY_SUFFIXES {
        let Some(prefix_len) = response.len().checked_sub(suffix) else {
            compare_dummies(table.most_recovery_codes(), response);
            continue;
        };
        let hit = match_padded(user.recovery_codes, table, &response[prefix_len..]);
        if found.is_none() {
            found = hit.map(|index| (index, prefix_len));
        }
    }
    found
}

/// [`secret_hash::recovery_match`] over the user's hashes, then dummies up to the table's most.
fn match_padded(hashes: &[RecoveryHash], table: &UserTable, typed: &[u8]) -> Option<usize> {
    let most = table.most_recovery_codes();
    let normalized = secret_hash::normalize_recovery_code(typed);
    let typed_or_dummy: &[u8] = normalized.as_deref().map_or(b"", |n| &n[..]);
    let found = secret_hash::recovery_match(hashes, typed_or_dummy);
    compare_dummies(most.saturating_sub(hashes.len()), typed_or_dummy);
    normalized.and(found)
}

fn compare_dummies(count: usize, typed: &[u8]) {
    if count == 0 {
        return;
    }
    static DUMMIES: OnceLock<Vec<RecoveryHash>> = OnceLock::new();
    let dummies = DUMMIES.get_or_init(|| {
        let hash = secret_hash::hash_recovery_code(b"unusedunused");
        let parsed = secret_hash::parse_recovery_hash(&hash).expect("own hash parses");
        vec![parsed; crate::config::MAX_RECOVERY_CODES]
    });
    let normalized: Zeroizing<Vec<u8>> =
        secret_hash::normalize_recovery_code(typed).unwrap_or_default();
    std::hint::black_box(secret_hash::recovery_match(
        &dummies[..count.min(dummies.len())],
        &normalized,
    ));
}

#[cfg(test)]
#[path = "factors_tests.rs"]
mod tests;
