//! The login decision: from a username, a password, the certificate CN and the clock to
//! accepted or one precise reason for rejecting. Pure logic over the user table and a store.

use std::fmt;

use crate::config::{Policy, Token, UserTable, MAX_MORE_TOKENS};
use crate::drift::{self, LearnedOffsets};
use crate::engine::{self, Code, Motp, TokenKind};
use crate::factors;
use crate::ip_limit::IpLimiter;
use crate::password::{self, Malformed};
use crate::rule::{Found, Limits};
use crate::state::{StateError, StateStore};

/// One login attempt as OpenVPN describes it. All fields are untrusted bytes.
#[derive(Default, Clone, Copy)]
pub struct LoginRequest<'a> {
    pub username: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub common_name: Option<&'a [u8]>,
}

impl fmt::Debug for LoginRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username.map(String::from_utf8_lossy))
            .field("password", &self.password.map(|_| "<redacted>"))
            .field(
                "common_name",
                &self.common_name.map(String::from_utf8_lossy),
            )
            .finish()
    }
}

/// The outcome, with the reason that goes to the server log (never to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted {
        step_offset: i64,
    },
    /// One of the user's recovery codes, in place of a one-time code.
    RecoveryAccepted {
        index: u8,
    },
    BadCode,
    /// The static password in front of the code was wrong.
    BadPassword,
    Replay,
    Locked {
        until: i64,
    },
    /// Too many failures from this source address, whichever usernames they named.
    AddressLocked {
        until: i64,
    },
    CnMismatch,
    UnknownUser,
    Disabled,
    BadUsername,
    MalformedPassword(Malformed),
    StateUnavailable,
}

impl Decision {
    pub fn is_accepted(&self) -> bool {
        matches!(
            self,
            Decision::Accepted { .. } | Decision::RecoveryAccepted { .. }
        )
    }

    /// A refusal of something that could have been a right answer: it counts towards the
    /// per-address limit. Not: an acceptance, a refusal that checked no code (locked user or
    /// address), or the state being unavailable.
    pub fn is_guess_refused(&self) -> bool {
        !matches!(
            self,
            Decision::Accepted { .. }
                | Decision::RecoveryAccepted { .. }
                | Decision::Locked { .. }
                | Decision::AddressLocked { .. }
                | Decision::StateUnavailable
        )
    }

    /// The short reason for the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Accepted { .. } => "accepted",
            Decision::RecoveryAccepted { .. } => "accepted recovery code",
            Decision::BadCode => "bad code",
            Decision::BadPassword => "bad password",
            Decision::Replay => "replay",
            Decision::Locked { .. } => "locked",
            Decision::AddressLocked { .. } => "address locked",
            Decision::CnMismatch => "CN mismatch",
            Decision::UnknownUser => "unknown user",
            Decision::Disabled => "disabled",
            Decision::BadUsername => "bad username",
            Decision::MalformedPassword(_) => "malformed password",
            Decision::StateUnavailable => "state unavailable",
        }
    }
}

/// Where a login comes from, for the per-address limit: an address already parsed, or
/// OpenVPN's `untrusted_ip`/`untrusted_ip6` bytes, parsed only when asked.
pub trait ClientAddress {
    fn address(&self) -> Option<std::net::IpAddr>;
}

impl ClientAddress for Option<std::net::IpAddr> {
    fn address(&self) -> Option<std::net::IpAddr> {
        *self
    }
}

impl ClientAddress for Option<&[u8]> {
    fn address(&self) -> Option<std::net::IpAddr> {
        self.and_then(crate::ip_limit::parse_ip)
    }
}

/// Decides logins against one user table and one store.
pub struct Authenticator<'a> {
    pub policy: &'a Policy,
    pub users: &'a UserTable,
    pub store: &'a dyn StateStore,
    /// What this process learned of each phone's clock ([`crate::drift`]); `None`: read the
    /// store at every login.
    pub learned: Option<&'a LearnedOffsets>,
}

impl Authenticator<'_> {
    /// [`decide`](Self::decide), behind the per-address limit: a locked address is refused
    /// whatever it sends, and every rejection that was a guess counts against the address. A
    /// rejection that checked no code (the user is already locked, the state is unavailable)
    /// is no guess: counting it would let one locked user's retrying client lock everyone
    /// else behind the same address (NAT, a campus, a load balancer).
    ///
    /// `client` is read only when it matters (an address may be locked, or the login was a
    /// guess): an accepted login while no address is locked never parses OpenVPN's address.
    pub fn decide_from(
        &self,
        request: &LoginRequest,
        client: impl ClientAddress,
        addresses: &IpLimiter,
        now: i64,
    ) -> Decision {
        let mut parsed = None;
        let mut address = || *parsed.get_or_insert_with(|| client.address());
        let locked = if addresses.may_have_locked(now) {
            address().and_then(|ip| addresses.locked_until(ip, now))
        } else {
            None
        };
        if let Some(until) = locked {
            self.spend_rejection_work(request.password, now);
            return Decision::AddressLocked { until };
        }
        let decision = self.decide(request, now);
        if decision.is_guess_refused() {
            if let Some(ip) = address() {
                addresses.record_failure(ip, now, self.policy.ip_policy());
            }
        }
        decision
    }

    /// `now` is the server's clock in Unix seconds.
    pub fn decide(&self, request: &LoginRequest, now: i64) -> Decision {
        let radius = self.policy.window_steps();
        let code = request.password.map(password::parse);

        let Some(username) = request.username.and_then(valid_username) else {
            return self.refuse_without_user_state(Decision::BadUsername, request.password, now);
        };
        let Some(user) = self.users.get(username) else {
            return self.refuse_without_user_state(Decision::UnknownUser, request.password, now);
        };
        if user.disabled {
            return self.refuse_without_user_state(Decision::Disabled, request.password, now);
        }

        // A certificate that is not this user's never touches the user's state: otherwise any
        // certificate holder could lock anyone out (or probe who exists) by naming them.
        let cn_matches = !self.policy.require_common_name
            || request.common_name == Some(user.expected_common_name(username).as_bytes());
        if !cn_matches {
            return self.refuse_without_user_state(Decision::CnMismatch, request.password, now);
        }
        if factors::table_needs_examine(self.users) {
            return self.decide_with_factors(username, &user, request, now);
        }
        // The window is searched before the store decides: the search needs only where the
        // phone's clock was last seen (kept in this process after the first login), so a store
        // decides in one step (one round trip for Redis), and a locked user costs the same
        // work as any other.
        let Ok(offset) = self.center_offset(username, user.offset_secs) else {
            self.spend_rejection_work(request.password, now);
            return Decision::StateUnavailable;
        };
        let center = engine::step_of(now.saturating_add(offset));
        let found = match code {
            None => Found::Malformed(Malformed::NotACode),
            Some(Err(why)) => Found::Malformed(why),
            Some(Ok(code)) => {
                match Motp.find(code, user.key, center, radius, self.users.longest_key()) {
                    None => Found::NoMatch,
                    Some(m) => Found::Step {
                        step: m.step,
                        step_offset: m.step_offset,
                    },
                }
            }
        };
        let shown = match found {
            Found::Step { step_offset, .. } => {
                drift::shown_offset(offset, step_offset, engine::STEP_SECS)
            }
            _ => offset,
        };
        let limits = Limits {
            max_failures: self.policy.max_failures,
            lockout_secs: self.policy.lockout_secs,
            offset_secs: offset,
            radius,
            counter_based: false,
            learned_offset_secs: shown,
        };
        let decision = match self.store.decide(username, &found, now, &limits) {
            Ok(decision) => decision,
            Err(_) => Decision::StateUnavailable,
        };
        self.remember(username, &decision, shown);
        decision
    }

    /// The offset the window of `row` (a user's or a further token's store row) is centred on:
    /// the configured one, moved to where the phone's clock was last seen, within
    /// `max_drift_secs` ([`crate::drift`]).
    fn center_offset(&self, row: &str, configured: i64) -> Result<i64, StateError> {
        if self.policy.max_drift_secs == 0 {
            return Ok(configured);
        }
        let learned = match self.learned.and_then(|l| l.get(row)) {
            Some(known) => known,
            // Learned is then 0 or nothing: the window stays centred on 0.
            None if configured == 0 && self.store.offsets_all_zero() => return Ok(0),
            None => {
                let state = self.store.peek(row)?;
                let seen = state.last_offset_secs.filter(|_| state.last_step.is_some());
                if let Some(learned) = self.learned {
                    learned.note_read(row, seen);
                }
                seen
            }
        };
        Ok(drift::effective_offset(
            configured,
            learned,
            self.policy.max_drift_secs,
        ))
    }

    /// Keeps where an accepted code showed the phone's clock, for the next login's window.
    fn remember(&self, row: &str, decision: &Decision, shown: i64) {
        if let (Some(learned), Decision::Accepted { .. }) = (self.learned, decision) {
            if self.policy.max_drift_secs > 0 {
                learned.note_accepted(row, shown);
            }
        }
    }

    /// [`decide`](Self::decide) for a table with more than bare mOTP codes: the token kinds,
    /// static passwords and recovery codes ([`factors`]). An HOTP search starts after the
    /// stored counter, so it reads the user's state first; the decision then re-checks the
    /// counter in its transaction (a login racing this one cannot make a code count twice).
    fn decide_with_factors(
        &self,
        username: &str,
        user: &crate::config::User,
        request: &LoginRequest,
        now: i64,
    ) -> Decision {
        let parts = request
            .password
            .map_or(Err(Malformed::NotACode), password::parse_parts);
        // Where each token's search starts: an HOTP token after its stored counter, a clock
        // token at the phone's clock as last seen.
        // At most 1 + MAX_MORE_TOKENS tokens: fixed arrays, no allocation per login.
        let mut hotp_next = [0u64; 1 + MAX_MORE_TOKENS];
        let mut offsets = [0i64; 1 + MAX_MORE_TOKENS];
        let tokens = std::iter::once((user.token, user.offset_secs, None)).chain(
            user.more_tokens
                .iter()
                .map(|t| (t.token, t.offset_secs, Some(t))),
        );
        for (i, (token, configured, more)) in tokens.enumerate() {
            let row = more.map(|t| t.state_key(username));
            let row = row.as_deref().unwrap_or(username);
            let start = match token {
                Token::Hotp { seed, .. } => self
                    .store
                    .peek(row)
                    .map(|state| (factors::hotp_next_counter(state.last_step, seed), 0)),
                _ => self
                    .center_offset(row, configured)
                    .map(|offset| (0, offset)),
            };
            let Ok((next, offset)) = start else {
                self.spend_rejection_work(request.password, now);
                return Decision::StateUnavailable;
            };
            hotp_next[i] = next;
            offsets[i] = offset;
        }
        let examined = factors::examine(
            user,
            &parts,
            self.users,
            self.policy,
            now,
            &hotp_next,
            &offsets,
        );
        // The limits of token `i`'s row (0: the user's own): HOTP counts, the clock kinds
        // remember where the phone's clock showed.
        let limits_of = |i: usize, token: Token| {
            let counter_based = token.is_counter_based();
            let offset = if counter_based { 0 } else { offsets[i] };
            let shown = match (examined.found, token) {
                (Found::Step { step_offset, .. }, Token::Motp) => {
                    drift::shown_offset(offset, step_offset, engine::STEP_SECS)
                }
                (Found::Step { step_offset, .. }, Token::Totp(totp)) => {
                    drift::shown_offset(offset, step_offset, i64::from(totp.period))
                }
                _ => offset,
            };
            Limits {
                max_failures: self.policy.max_failures,
                lockout_secs: self.policy.lockout_secs,
                offset_secs: offset,
                radius: self.policy.window_steps(),
                counter_based,
                learned_offset_secs: shown,
            }
        };
        let user_limits = limits_of(0, user.token);
        let found = match (examined.token, examined.found) {
            (Some(i), Found::Step { step_offset, .. }) => {
                // A further token's step is decided on its own row, which never locks (the
                // user's row holds the lock and the count); then the user's row settles it.
                let more = &user.more_tokens[i];
                let token_limits = Limits {
                    max_failures: u32::MAX,
                    lockout_secs: 0,
                    ..limits_of(i + 1, more.token)
                };
                if self.is_locked(username, now) {
                    Found::NoMatch
                } else {
                    let row = more.state_key(username);
                    match self.store.decide(&row, &examined.found, now, &token_limits) {
                        Ok(decision) => {
                            self.remember(&row, &decision, token_limits.learned_offset_secs);
                            Found::Settled {
                                accepted: decision.is_accepted(),
                                step_offset,
                            }
                        }
                        Err(_) => return Decision::StateUnavailable,
                    }
                }
            }
            (_, found) => found,
        };
        let decision = match self.store.decide(username, &found, now, &user_limits) {
            Ok(decision) => decision,
            Err(_) => Decision::StateUnavailable,
        };
        if examined.token.is_none() {
            self.remember(username, &decision, user_limits.learned_offset_secs);
        }
        decision
    }

    /// Whether the user's row is locked now: a further token's code is not used up while its
    /// user is locked (the user's row then refuses it as any other).
    fn is_locked(&self, username: &str, now: i64) -> bool {
        self.store
            .peek(username)
            .map_or(true, |state| state.locked_until > now)
    }

    /// The code-checking work of a rejection that examines no user (see [`factors`]).
    fn spend_rejection_work(&self, password: Option<&[u8]>, now: i64) {
        if factors::table_needs_examine(self.users) {
            let parts = password.and_then(|p| password::parse_parts(p).ok());
            factors::spend_rejection_work(self.users, self.policy, now, parts.as_ref());
        } else {
            burn(
                password.map(password::parse),
                now,
                self.policy.window_steps(),
                self.users.longest_key(),
            );
        }
    }

    /// Whether the client may be told that the user it named is locked (`TEMP[backoff N]`):
    /// only when it holds the user's own certificate. With `require_common_name = false` anyone
    /// with a certificate can name anyone, and a `TEMP` answer for a locked name (against a
    /// bare `AUTH_FAILED` for names that do not exist) would tell them which usernames exist.
    pub fn may_disclose_lock(&self, request: &LoginRequest) -> bool {
        let Some(username) = request.username.and_then(valid_username) else {
            return false;
        };
        self.users.get(username).is_some_and(|user| {
            request.common_name == Some(user.expected_common_name(username).as_bytes())
        })
    }

    /// A refusal decided before any user's state is read (no such user, a disabled one, another
    /// user's certificate, an unusable username) still does what a decision on a user's state
    /// does: the full window's work, and one store decision, on [`DECOY_USERNAME`]'s row. So it
    /// costs the same as any other refusal, and while the store is unavailable it is answered
    /// like every other login (`TEMP`): neither the time nor the answer tells whether the name
    /// exists.
    fn refuse_without_user_state(
        &self,
        decision: Decision,
        password: Option<&[u8]>,
        now: i64,
    ) -> Decision {
        let radius = self.policy.window_steps();
        self.spend_rejection_work(password, now);
        // The decoy row counts failures but never locks: each decision on it is a write, as a
        // known user's refusal is.
        let limits = Limits {
            max_failures: u32::MAX,
            lockout_secs: 0,
            offset_secs: 0,
            radius,
            counter_based: false,
            learned_offset_secs: 0,
        };
        match self
            .store
            .decide(DECOY_USERNAME, &Found::NoMatch, now, &limits)
        {
            Ok(_) => decision,
            Err(_) => Decision::StateUnavailable,
        }
    }
}

/// The store row that refusals without a user's state are decided on. No configured user can
/// have this name: usernames in motp.toml have no control characters.
pub const DECOY_USERNAME: &str = "\u{7f}no-such-user";

/// A rejection's full-window work without a key: as costly as a wrong code for the table's
/// longest key, hence for any user.
fn burn(code: Option<Result<Code, Malformed>>, now: i64, radius: i64, cost_key_len: usize) {
    let code = match code {
        Some(Ok(code)) => code,
        _ => Code::parse(b"000000").expect("constant is a code"),
    };
    Motp.burn(code, engine::step_of(now), radius, cost_key_len);
}

fn valid_username(raw: &[u8]) -> Option<&str> {
    let name = crate::ffi::utf8(raw)?;
    (!name.is_empty() && name.len() <= crate::config::MAX_USERNAME_LEN).then_some(name)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
