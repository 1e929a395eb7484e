//! Asking a client for its code with a `CR_TEXT` prompt, within bounds.
//!
//! **crtext prompting** (`crtext_prompt = true`, OpenVPN 2.6+). A client that announces
//! `IV_SSO=...crtext...` and sends a password that carries no code (empty, or a placeholder
//! such as `-`, shorter than any code) is asked for the code:
//! the plugin writes `auth_pending_file` (`<timeout>`, `crtext`, `CR_TEXT:E,R:<prompt>`) and
//! returns `DEFERRED`. OpenVPN sends the prompt, and the client's answer arrives as
//! `OPENVPN_PLUGIN_CLIENT_CRRESPONSE` with env `crresponse` (base64) in the same per-client env
//! (username, common_name, addresses, and the `auth_control_file` of that login). The plugin
//! decides it like a password and answers through that `auth_control_file`; OpenVPN ignores
//! the return value of the CRRESPONSE call. A cr-response for a login that was not prompted is
//! ignored. Every other client keeps the normal path.
//!
//! Prompts awaiting an answer are bounded ([`Prompts`]): at most [`PROMPTS_PER_ADDRESS`] per
//! client address (its network, as the per-address limit counts it: by default an IPv6 /64; not
//! at all when that limit is off), [`PROMPTS_PER_USER`] per username and certificate, and
//! [`MAX_PENDING_PROMPTS`] in all, each forgotten [`PROMPT_EXPIRY`] after it was sent (when
//! OpenVPN has given up on it). A login over a limit is refused with `TEMP[backoff 10]`, not
//! counted as a failure, so a flood from one address or naming one user cannot switch prompting
//! off for others, nor lock a user out. An address locked for failures is refused as `address
//! locked` before any prompt is sent.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use zeroize::Zeroizing;

use super::reply::{
    client_reason, log_decision, log_ip, log_user, log_user_field, path_of, write_answer_file,
    write_client_reason,
};
use super::Plugin;
use crate::auth::Decision;
use crate::clock;
use crate::env::AuthEnv;
use crate::ip_limit;
use crate::log::{self, Sink};

/// Seconds the client is given to answer a `CR_TEXT` prompt, as written in the prompt. OpenVPN
/// waits at most that long, less if `max(reneg-sec / 2, hand-window)` minus the time the
/// handshake already took is shorter (`send_auth_pending_messages` in OpenVPN 2.6's push.c;
/// with the defaults, 3600 s and 60 s, the cap is 1800 s and 120 s stands).
/// 60 s: time to unlock a phone and type a code; a client that cannot answer (a console client
/// announcing crtext without a management interface shows nothing) is not held longer.
pub const CRTEXT_TIMEOUT_SECS: u32 = 60;
/// Any token kind: mOTP, TOTP or HOTP.
pub const CRTEXT_PROMPT: &str = "Enter your one-time code";
/// Prompts awaiting an answer from one client address (its network: `ip_prefix_v4` and
/// `ip_prefix_v6`, by default /32 and /64; not counted with `max_failures_per_ip = 0`). A user
/// has one login waiting at a time, a few when a client retries or several devices connect;
/// eight leaves room for a handful of people behind one NAT answering at the same moment, while
/// a flood from one address holds at most eight of the table's entries.
pub const PROMPTS_PER_ADDRESS: usize = 8;
/// Prompts awaiting an answer for one username presented with one certificate (common name):
/// a retry or two and a second device. Counted per certificate too, so a holder of another
/// certificate naming this user fills only their own four, never the user's.
pub const PROMPTS_PER_USER: usize = 4;
/// Prompts awaiting an answer in all (memory bound: a flood needs 512 addresses to reach it).
pub const MAX_PENDING_PROMPTS: usize = 4096;
/// How long a prompt is remembered: the prompt's own timeout, which OpenVPN never exceeds (it
/// can only shorten it, see [`CRTEXT_TIMEOUT_SECS`]), and a few seconds for OpenVPN to read the
/// prompt file after the plugin wrote it. OpenVPN passes no `hand-window` or `reneg-sec` to a
/// plugin, so the prompt cannot be forgotten sooner without dropping answers OpenVPN still
/// takes.
pub const PROMPT_EXPIRY: Duration = Duration::from_secs(CRTEXT_TIMEOUT_SECS as u64 + 5);
/// What the client is told when a prompt limit is reached.
const PROMPT_LIMIT_REASON: &str =
    "TEMP[backoff 10]: too many logins waiting for a code, try again shortly";

/// Whether a password carries no code at all: absent, empty, or a placeholder shorter than any
/// code (`-`). Anything longer is decided as it is: a code of any kind, a static password in
/// front of one, a recovery code, SCRV1.
fn sends_no_code(password: Option<&[u8]>) -> bool {
    const SHORTEST_CODE: usize = 6;
    password.is_none_or(|p| p.trim_ascii().len() < SHORTEST_CODE)
}

impl Plugin {
    pub(super) fn should_prompt(&self, env: &AuthEnv) -> bool {
        self.crtext
            && env.supports_crtext()
            && env.auth_pending_file.is_some()
            && env.auth_control_file.is_some()
            && sends_no_code(env.password)
    }

    /// Writes the `CR_TEXT` prompt, unless the client's address is locked or a prompt limit
    /// is reached (then the login is refused, with `TEMP[backoff N]` for the client). `NotSent`
    /// (normal path) if the prompt file cannot be written.
    pub(super) fn prompt(&self, env: &AuthEnv) -> Prompted {
        let (Some(acf), Some(apf)) = (env.auth_control_file, env.auth_pending_file) else {
            return Prompted::NotSent;
        };
        let client = env
            .untrusted_ip
            .or(env.untrusted_ip6)
            .and_then(ip_limit::parse_ip);
        let now = clock::now();
        // As the decision would: a locked address is refused whatever it sends, so asking it
        // for a code would only hold a prompt (and the client) for nothing.
        if let Some(until) = client.and_then(|ip| self.core.addresses.locked_until(ip, now)) {
            let decision = Decision::AddressLocked { until };
            log_decision(env, &decision, &self.core.sink);
            if let (Some(path), Some(reason)) = (
                env.auth_failed_reason_file,
                client_reason(&decision, now, false),
            ) {
                write_client_reason(path, &reason);
            }
            return Prompted::Refused;
        }
        // An address counts as its network, as for the per-address limit (`ip_prefix_v4`,
        // `ip_prefix_v6`); with that limit off (`max_failures_per_ip = 0`: every client comes
        // through one address) prompts are not counted per address either.
        let policy = self.core.current_config().policy.ip_policy();
        let address = client
            .filter(|_| policy.max_failures > 0)
            .map(|ip| ip_limit::network(ip, policy.prefix_v4, policy.prefix_v6));
        let admitted = self.prompted.lock().admit(
            acf,
            address,
            env.username.unwrap_or_default(),
            env.common_name.unwrap_or_default(),
            Instant::now(),
        );
        if let Err(limit) = admitted {
            log_prompt_limit(env, limit, &self.core.sink);
            if let Some(path) = env.auth_failed_reason_file {
                write_client_reason(path, PROMPT_LIMIT_REASON);
            }
            return Prompted::Refused;
        }
        let text = format!("{CRTEXT_TIMEOUT_SECS}\ncrtext\nCR_TEXT:E,R:{CRTEXT_PROMPT}\n");
        if let Err(e) = write_answer_file(apf, text.as_bytes()) {
            warn!(
                "cannot write auth_pending_file {}: {e}",
                path_of(apf).display()
            );
            self.prompted.lock().take(acf, Instant::now());
            return Prompted::NotSent;
        }
        info!(ip = %env.client_address(), user = %log_user(env), "asked for the code (crtext)");
        Prompted::Sent
    }
}

/// What [`Plugin::prompt`] did.
pub(super) enum Prompted {
    /// The prompt was written: the login is `DEFERRED` until the answer comes.
    Sent,
    /// The login was refused instead (address locked, or a prompt limit).
    Refused,
    /// No prompt could be written: the login takes the normal path.
    NotSent,
}

/// Which limit refused a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PromptLimit {
    Address,
    User,
    Table,
}

/// `CR_TEXT` prompts awaiting an answer, with the limits of the module doc. Every operation
/// first forgets the prompts older than [`PROMPT_EXPIRY`], oldest first (they expire in the
/// order they were sent), so the work per call is constant on average.
#[derive(Default)]
pub(super) struct Prompts {
    pending: HashMap<Vec<u8>, Pending>,
    /// `(expiry, id, auth_control_file)` in the order prompts were sent. A prompt answered
    /// meanwhile leaves its entry here until it would have expired (or the queue is compacted).
    pub(super) order: VecDeque<(Instant, u64, Vec<u8>)>,
    pub(super) per_address: HashMap<IpAddr, usize>,
    pub(super) per_user: HashMap<(Vec<u8>, Vec<u8>), usize>,
    next_id: u64,
}

struct Pending {
    id: u64,
    address: Option<IpAddr>,
    user: (Vec<u8>, Vec<u8>),
}

impl Prompts {
    /// Records a prompt about to be sent for the login answering through `acf`, or says which
    /// limit refuses it. `address` is the client's network, `None` for not counted per address.
    pub(super) fn admit(
        &mut self,
        acf: &[u8],
        address: Option<IpAddr>,
        username: &[u8],
        common_name: &[u8],
        now: Instant,
    ) -> Result<(), PromptLimit> {
        self.expire(now);
        // OpenVPN makes a new auth_control_file per login; the same one again replaces it.
        self.take(acf, now);
        let user = (
            username[..username.len().min(crate::config::MAX_USERNAME_LEN + 1)].to_vec(),
            common_name[..common_name.len().min(256)].to_vec(),
        );
        let full =
            |a: &IpAddr| self.per_address.get(a).copied().unwrap_or(0) >= PROMPTS_PER_ADDRESS;
        if address.as_ref().is_some_and(full) {
            return Err(PromptLimit::Address);
        }
        if self.per_user.get(&user).copied().unwrap_or(0) >= PROMPTS_PER_USER {
            return Err(PromptLimit::User);
        }
        if self.pending.len() >= MAX_PENDING_PROMPTS {
            return Err(PromptLimit::Table);
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(address) = address {
            *self.per_address.entry(address).or_default() += 1;
        }
        *self.per_user.entry(user.clone()).or_default() += 1;
        self.pending
            .insert(acf.to_vec(), Pending { id, address, user });
        self.order
            .push_back((now + PROMPT_EXPIRY, id, acf.to_vec()));
        if self.order.len() >= 2 * MAX_PENDING_PROMPTS {
            let pending = &self.pending;
            self.order
                .retain(|(_, id, acf)| pending.get(acf).is_some_and(|p| p.id == *id));
        }
        Ok(())
    }

    /// Forgets the prompt of `acf`; `true` if it was awaiting an answer and had not expired.
    pub(super) fn take(&mut self, acf: &[u8], now: Instant) -> bool {
        self.expire(now);
        match self.pending.remove(acf) {
            Some(prompt) => {
                self.release(&prompt);
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(expiry, _, _)| *expiry <= now)
        {
            let Some((_, id, acf)) = self.order.pop_front() else {
                break;
            };
            if self.pending.get(&acf).is_some_and(|p| p.id == id) {
                if let Some(prompt) = self.pending.remove(&acf) {
                    self.release(&prompt);
                }
            }
        }
    }

    fn release(&mut self, prompt: &Pending) {
        fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        if let Some(address) = &prompt.address {
            decrement(&mut self.per_address, address);
        }
        decrement(&mut self.per_user, &prompt.user);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }
}

/// `login rejected ip=... reason="too many prompts" detail="..." user=...`: a login over a
/// prompt limit.
fn log_prompt_limit(env: &AuthEnv, limit: PromptLimit, sink: &Sink) {
    let detail = match limit {
        PromptLimit::Address => {
            format!("{PROMPTS_PER_ADDRESS} prompts of this address await an answer")
        }
        PromptLimit::User => format!("{PROMPTS_PER_USER} prompts of this user await an answer"),
        PromptLimit::Table => format!("{MAX_PENDING_PROMPTS} prompts await an answer"),
    };
    let mut line = log::Line::new("login rejected");
    log_ip(env, &mut line);
    line.field("reason", "too many prompts")
        .field("detail", detail);
    log_user_field(env, &mut line);
    line.send(sink, tracing::Level::WARN);
}

/// The code out of a base64 cr-response (whitespace around it ignored), wiped on drop. Not
/// base64: the raw bytes, which the decision then rejects as a malformed password.
pub(super) fn decode_cr_response(raw: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    use base64::Engine;
    let raw = raw.unwrap_or_default();
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
    match base64::engine::general_purpose::STANDARD.decode_vec(raw.trim_ascii(), &mut out) {
        Ok(()) => Zeroizing::new(out.trim_ascii().to_vec()),
        Err(_) => Zeroizing::new(raw.to_vec()),
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::sends_no_code;

    #[test]
    fn only_a_password_without_any_code_is_prompted_for_one() {
        for none in [None, Some(&b""[..]), Some(b"-"), Some(b"  "), Some(b"x\n")] {
            assert!(sends_no_code(none), "{none:?}");
        }
        // Codes of every kind, a static password in front of one, a recovery code, SCRV1.
        for some in [
            &b"6ed4e4"[..],
            b"12345678",
            b"hunter2123456",
            b"k7m2-q9xp-4tfr",
            b"SCRV1:cGFzcw==:MTIzNDU2",
        ] {
            assert!(!sends_no_code(Some(some)));
        }
    }
}
