//! The compact user table: every user's name, `secret ‖ pin` and common name in one wiped
//! arena, a small fixed-size entry per user, and an open-addressing index keyed with a
//! per-table random hasher. Three allocations whatever the number of users.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::quality::RandomState;

use zeroize::Zeroizing;

use super::diagnostics::{printable, Refusal};
use super::token::{self, HmacKey, Token, TokenFields};
use super::{entry, MAX_OFFSET_SECS};
use crate::secret_hash::{
    parse_password_hash, parse_recovery_hash, recovery_set_id, ParsedPasswordHash, RecoveryHash,
};

/// The most recovery codes one user may have (`recovery_used` is a 32-bit mask).
pub const MAX_RECOVERY_CODES: usize = 32;

/// One user's entry, borrowed from the [`UserTable`]. `key` is what the token's code is made
/// from: for mOTP `secret ‖ pin`, the bytes that follow the step in the hash; for TOTP and
/// HOTP the decoded secret, the HMAC key.
#[derive(Clone, Copy)]
pub struct User<'a> {
    pub token: Token,
    pub key: &'a [u8],
    /// The static password typed before the code, as its Argon2id hash.
    pub password: Option<&'a ParsedPasswordHash>,
    /// The hashes of the user's recovery codes, in file order (empty: none).
    pub recovery_codes: &'a [RecoveryHash],
    /// The id of that set ([`recovery_set_id`], truncated), under which uses are stored.
    pub recovery_set: u32,
    /// The user's further tokens (`[[users.NAME.tokens]]`), in file order.
    pub more_tokens: &'a [MoreToken],
    pub offset_secs: i64,
    pub common_name: Option<&'a str>,
    pub disabled: bool,
}

impl fmt::Debug for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("token", &self.token)
            .field("key", &"<redacted>")
            .field("password", &self.password.is_some())
            .field("recovery_codes", &self.recovery_codes.len())
            .field("offset_secs", &self.offset_secs)
            .field("common_name", &self.common_name)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl<'a> User<'a> {
    /// The certificate CN this user must present: `common_name`, or the username itself.
    pub fn expected_common_name<'n>(&self, username: &'n str) -> &'n str
    where
        'a: 'n,
    {
        self.common_name.unwrap_or(username)
    }
}

/// Where one user's bytes are in [`UserTable::text`]: name, then `secret ‖ pin`, then the
/// common name. 16 bytes, where a `HashMap` entry with three boxed strings took ten times that
/// in scattered small blocks, and kept far more resident (docs/performance.md, "Figures behind
/// design choices").
#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    cn_len: u32,
    offset_secs: i32,
    name_len: u8,
    key_len: u8,
    has_cn: bool,
    disabled: bool,
    /// Index into [`UserTable::extras`], or [`EMPTY`] for an mOTP user without extras.
    extra: u32,
}

/// What only some users have, kept apart so that the entry of a plain mOTP user (most of a
/// large table) stays small.
struct Extra {
    token: Token,
    /// The HMAC key of a TOTP or HOTP token.
    key: Option<HmacKey>,
    password: Option<ParsedPasswordHash>,
    recovery_codes: Vec<RecoveryHash>,
    recovery_set: u32,
    more_tokens: Vec<MoreToken>,
}

/// The most tokens one user may have besides the first.
pub const MAX_MORE_TOKENS: usize = 7;

/// A further token of a user: its own kind, key and clock offset, and its own replay state in
/// the store, under [`MoreToken::state_key`].
pub struct MoreToken {
    pub name: Box<str>,
    pub token: Token,
    pub offset_secs: i64,
    key: Zeroizing<Vec<u8>>,
}

impl MoreToken {
    /// What the code is made from (as [`User::key`]).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The store row of this token's replay state: the username, a unit separator (no
    /// username or token name holds one), the token's name. The user's own row keeps the lock
    /// and the failure count for all of the user's tokens.
    pub fn state_key(&self, username: &str) -> String {
        format!("{username}\u{1f}{}", self.name)
    }
}

impl fmt::Debug for MoreToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoreToken")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("offset_secs", &self.offset_secs)
            .finish_non_exhaustive()
    }
}

/// An entry index or text offset that no entry has (see `TableBuilder::add`).
const EMPTY: u32 = u32::MAX;

/// An index slot: the entry's index in the high half, where its text starts in the low half,
/// so a lookup reads the name and the entry at once (two independent reads, not one after the
/// other). `EMPTY_SLOT` when empty.
type Slot = u64;
const EMPTY_SLOT: Slot = u64::MAX;

/// The users, in file order, in three allocations whatever their number.
pub struct UserTable {
    /// Every name, key and common name back to back. Wiped on drop: it holds every secret and
    /// PIN. A `String` so that names and common names slice out as `&str` without `unsafe`
    /// (secrets are hex and PINs printable, so the keys are UTF-8 too).
    text: Zeroizing<String>,
    entries: Vec<Entry>,
    extras: Vec<Extra>,
    /// Open addressing with linear probing over `entries`, at most half full so a probe for an
    /// unknown name ends after ~2.5 slots. Keyed with a per-table random seed: lookups are by
    /// attacker-chosen usernames, which must not be able to aim at long probe chains (nothing
    /// they send is inserted; the table holds the config's names only).
    slots: Box<[Slot]>,
    hasher: RandomState,
    /// The longest `secret ‖ pin` of the table: every code search is made to cost what this
    /// key costs, so timing does not tell a long key's user, a short key's and no user apart.
    longest_key: usize,
    /// The same for TOTP and HOTP keys.
    longest_hmac_key: usize,
    /// Some user has a static password: every login then verifies one (a dummy for the
    /// others), so timing does not tell who has one or whether the name exists.
    any_password: bool,
    /// The most recovery codes one user has: every login compares that many hashes.
    most_recovery_codes: usize,
    /// Each distinct token (kind and parameters) some user has, with the most tokens of it one
    /// user has: a rejection spends the work of that many searches of every one of them, so its
    /// time does not tell which kinds, or how many tokens, a user has.
    tokens: Vec<(Token, usize)>,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable {
            text: Zeroizing::new(String::new()),
            entries: Vec::new(),
            extras: Vec::new(),
            slots: Box::new([]),
            hasher: RandomState::default(),
            longest_key: 0,
            longest_hmac_key: 0,
            any_password: false,
            most_recovery_codes: 0,
            tokens: Vec::new(),
        }
    }
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (self.name(e), self.user(e))))
            .finish()
    }
}

impl UserTable {
    pub fn get(&self, username: &str) -> Option<User<'_>> {
        let index = self.find(username)?;
        Some(self.user(&self.entries[index as usize]))
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The length of the longest `secret ‖ pin` in the table (0 when empty).
    pub fn longest_key(&self) -> usize {
        self.longest_key
    }
    /// The length of the longest TOTP or HOTP key in the table (0 when none).
    pub fn longest_hmac_key(&self) -> usize {
        self.longest_hmac_key
    }
    /// Whether some user has a static password.
    pub fn any_password(&self) -> bool {
        self.any_password
    }
    /// The most recovery codes a user of the table has.
    pub fn most_recovery_codes(&self) -> usize {
        self.most_recovery_codes
    }
    /// Every distinct token some user has (kind and parameters) with the most tokens of it
    /// one user has, mOTP first if any user has it; empty for an empty table.
    pub fn tokens(&self) -> &[(Token, usize)] {
        &self.tokens
    }
    /// The usernames, in the order of the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| self.name(e))
    }

    fn name(&self, e: &Entry) -> &str {
        let start = e.start as usize;
        &self.text[start..start + usize::from(e.name_len)]
    }

    fn user(&self, e: &Entry) -> User<'_> {
        let key_start = e.start as usize + usize::from(e.name_len);
        let cn_start = key_start + usize::from(e.key_len);
        let extra = self.extras.get(e.extra as usize);
        User {
            token: extra.map_or(Token::Motp, |x| x.token),
            key: match extra.and_then(|x| x.key.as_ref()) {
                Some(key) => key,
                None => &self.text.as_bytes()[key_start..cn_start],
            },
            password: extra.and_then(|x| x.password.as_ref()),
            recovery_codes: extra.map_or(&[], |x| x.recovery_codes.as_slice()),
            recovery_set: extra.map_or(0, |x| x.recovery_set),
            more_tokens: extra.map_or(&[], |x| x.more_tokens.as_slice()),
            offset_secs: i64::from(e.offset_secs),
            common_name: e
                .has_cn
                .then(|| &self.text[cn_start..cn_start + e.cn_len as usize]),
            disabled: e.disabled,
        }
    }

    /// Starts loading, without waiting, the index slot a lookup of `name` reads first, and
    /// returns where it is for [`prefetch_entry`](Self::prefetch_entry). In a table much
    /// larger than the CPU's caches every lookup misses twice (the slot, then the entry and its
    /// text); a caller with other work to do first hides those misses behind it. Only a hint:
    /// a name that is not in the table (or not a valid username) just loads a slot for nothing.
    pub fn prefetch_slot(&self, name: &[u8]) -> Option<usize> {
        let i = self.hasher.hash_one(name) as usize & self.slots.len().checked_sub(1)?;
        crate::ffi::prefetch(&self.slots[i]);
        Some(i)
    }

    /// Starts loading the entry and the text the slot `slot` points to (once the slot itself
    /// is in the cache, this costs no wait). Any `slot` is safe: out of range or empty, nothing.
    pub fn prefetch_entry(&self, slot: usize) {
        let Some(&found) = self.slots.get(slot).filter(|&&s| s != EMPTY_SLOT) else {
            return;
        };
        let (index, start) = ((found >> 32) as usize, found as u32 as usize);
        if let Some(entry) = self.entries.get(index) {
            crate::ffi::prefetch(entry);
        }
        if let Some(text) = self.text.as_bytes().get(start) {
            crate::ffi::prefetch(text);
        }
    }

    /// The entry index of `name`, by the index.
    fn find(&self, name: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(name.as_bytes()) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY_SLOT {
                return None;
            }
            let (index, start) = ((slot >> 32) as u32, slot as u32 as usize);
            let entry = &self.entries[index as usize];
            let text = self.text.as_bytes().get(start..start + name.len());
            if text == Some(name.as_bytes()) && usize::from(entry.name_len) == name.len() {
                return Some(index);
            }
            i = (i + 1) & mask;
        }
    }
}

/// One user's fields as read from the file, borrowed (from the config text on the fast path,
/// from the parser's wiped strings on the `toml` path), each with its byte offset for messages.
pub(super) struct UserFields<'a> {
    pub(super) secret: (&'a str, usize),
    pub(super) pin: Option<(&'a str, usize)>,
    pub(super) token: TokenFields<'a>,
    pub(super) password: Option<(&'a str, usize)>,
    pub(super) recovery_codes: Option<(Vec<&'a str>, usize)>,
    pub(super) more_tokens: Vec<MoreTokenFields<'a>>,
    pub(super) offset_secs: Option<(i64, usize)>,
    pub(super) common_name: Option<(&'a str, usize)>,
    pub(super) disabled: bool,
}

/// One `[[users.NAME.tokens]]` entry's fields, with their byte offsets.
pub(super) struct MoreTokenFields<'a> {
    pub(super) name: (&'a str, usize),
    pub(super) secret: (&'a str, usize),
    pub(super) pin: Option<(&'a str, usize)>,
    pub(super) token: TokenFields<'a>,
    pub(super) offset_secs: Option<(i64, usize)>,
}

/// Builds a [`UserTable`] one validated user at a time, so no intermediate map of every user's
/// strings exists.
#[derive(Default)]
pub(super) struct TableBuilder {
    table: UserTable,
}

impl TableBuilder {
    pub(super) fn add(
        &mut self,
        name: &str,
        name_at: usize,
        user: UserFields<'_>,
    ) -> Result<(), Refusal> {
        let shown = printable(name);
        if let Some(message) = entry::username_problem(name) {
            return Err(Refusal {
                at: name_at,
                key: format!("users.{shown}"),
                message,
            });
        }
        let refuse = |at: usize, field: &str, message: String| Refusal {
            at,
            key: format!("users.{shown}.{field}"),
            message,
        };

        let (token, hmac_key) = token::read(&user.token, user.secret, user.pin, &refuse)?;
        // mOTP hashes `secret ‖ pin` as written; the others' key is in `hmac_key`.
        let (secret, pin) = match (token, user.pin) {
            (Token::Motp, Some((pin, _))) => (user.secret.0, pin),
            _ => ("", ""),
        };
        let offset_secs = match user.offset_secs {
            Some((o, at)) if o.unsigned_abs() > MAX_OFFSET_SECS as u64 => {
                return Err(refuse(
                    at,
                    "offset_secs",
                    format!("must be within ±{MAX_OFFSET_SECS} seconds (one day); is the phone's clock set?"),
                ))
            }
            Some((o, _)) => o,
            None => 0,
        };
        let common_name = match user.common_name {
            Some((cn, at)) if !entry::common_name_is_valid(cn) => {
                return Err(refuse(
                    at,
                    "common_name",
                    "must be the certificate's CN: non-empty, no control characters".to_owned(),
                ))
            }
            Some((cn, _)) => Some(cn),
            None => None,
        };

        let cn = common_name.unwrap_or("");
        let text = &mut self.table.text;
        let start = text.len();
        let needed = name.len() + secret.len() + pin.len() + cn.len();
        let (Ok(start32), Ok(cn_len), Ok(offset32), Ok(_)) = (
            u32::try_from(start),
            u32::try_from(cn.len()),
            i32::try_from(offset_secs),
            // Offsets into `text` are u32, and EMPTY must never be an entry's index.
            u32::try_from(start + needed).map(|end| end < EMPTY),
        ) else {
            return Err(Refusal {
                at: name_at,
                key: format!("users.{shown}"),
                message: "the user table is over 4 GiB; is this the right file?".to_owned(),
            });
        };
        if text.capacity() - start < needed {
            // Grown by hand: `String`'s own growth would free the old buffer unwiped.
            let capacity = (text.capacity() * 2).max(start + needed).max(4096);
            let mut bigger = Zeroizing::new(String::with_capacity(capacity));
            crate::ffi::advise_huge_pages(bigger.as_ptr(), bigger.capacity());
            bigger.push_str(text);
            *text = bigger;
        }
        text.push_str(name);
        text.push_str(secret);
        text.push_str(pin);
        text.push_str(cn);
        self.table.longest_key = self.table.longest_key.max(secret.len() + pin.len());
        let more_tokens = read_more_tokens(&user.more_tokens, &refuse)?;
        let mut counts: Vec<(Token, usize)> = vec![(token.work(), 1)];
        for more in &more_tokens {
            match counts.iter_mut().find(|(t, _)| *t == more.token.work()) {
                Some((_, n)) => *n += 1,
                None => counts.push((more.token.work(), 1)),
            }
        }
        for (t, n) in counts {
            match self.table.tokens.iter_mut().find(|(known, _)| *known == t) {
                Some((_, most)) => *most = (*most).max(n),
                None => self.table.tokens.push((t, n)),
            }
        }
        let password = match user.password {
            None => None,
            Some((text, at)) => Some(parse_password_hash(text).map_err(|why| {
                refuse(
                    at,
                    "password",
                    format!("{why}; make one with `motpctl set-password NAME`"),
                )
            })?),
        };
        let recovery_codes = match &user.recovery_codes {
            None => Vec::new(),
            Some((codes, at)) => {
                if codes.len() > MAX_RECOVERY_CODES {
                    return Err(refuse(
                        *at,
                        "recovery_codes",
                        format!("holds more than {MAX_RECOVERY_CODES} codes"),
                    ));
                }
                let mut parsed = Vec::with_capacity(codes.len());
                for (n, text) in codes.iter().enumerate() {
                    parsed.push(parse_recovery_hash(text).map_err(|why| {
                        refuse(
                            *at,
                            "recovery_codes",
                            format!(
                                "entry {}: {why}; make a new set with `motpctl recovery-codes NAME`",
                                n + 1
                            ),
                        )
                    })?);
                }
                parsed
            }
        };
        self.table.any_password |= password.is_some();
        self.table.most_recovery_codes = self.table.most_recovery_codes.max(recovery_codes.len());
        let plain = token == Token::Motp
            && password.is_none()
            && recovery_codes.is_empty()
            && more_tokens.is_empty();
        let extra = if plain {
            EMPTY
        } else {
            if let Some(key) = &hmac_key {
                self.table.longest_hmac_key = self.table.longest_hmac_key.max(key.len());
            }
            for more in &more_tokens {
                match more.token {
                    Token::Motp => {
                        self.table.longest_key = self.table.longest_key.max(more.key.len())
                    }
                    _ => {
                        self.table.longest_hmac_key =
                            self.table.longest_hmac_key.max(more.key.len())
                    }
                }
            }
            let recovery_set = recovery_set_id(&recovery_codes) as u32;
            self.table.extras.push(Extra {
                token,
                key: hmac_key,
                password,
                recovery_codes,
                recovery_set,
                more_tokens,
            });
            // Fewer extras than entries, and entries stay below EMPTY (checked above).
            (self.table.extras.len() - 1) as u32
        };
        self.table.entries.push(Entry {
            start: start32,
            cn_len,
            offset_secs: offset32,
            // Both bounded above by the checks: name ≤ 128, secret ≤ 32 and PIN ≤ 64 bytes.
            name_len: name.len() as u8,
            key_len: (secret.len() + pin.len()) as u8,
            has_cn: common_name.is_some(),
            disabled: user.disabled,
            extra,
        });
        Ok(())
    }

    /// The finished table, or the index of an entry whose name is taken by an earlier one.
    pub(super) fn finish(self) -> Result<UserTable, usize> {
        let mut table = self.table;
        if table.text.capacity() > table.text.len() + table.text.len() / 64 {
            // A copy of exactly the size needed; the larger buffer is wiped as it drops.
            let mut exact = Zeroizing::new(String::with_capacity(table.text.len()));
            crate::ffi::advise_huge_pages(exact.as_ptr(), exact.capacity());
            exact.push_str(&table.text);
            table.text = exact;
        }
        // The arrays a lookup reads, each copied into memory hinted for huge pages before it
        // is first written (docs/performance.md, issue 15).
        let mut entries: Vec<Entry> = Vec::with_capacity(table.entries.len());
        crate::ffi::advise_huge_pages(
            entries.as_ptr().cast(),
            table.entries.len() * std::mem::size_of::<Entry>(),
        );
        entries.extend_from_slice(&table.entries);
        table.entries = entries;
        table.extras.shrink_to_fit();
        // mOTP first: the common case's own search then runs first, as before kinds existed.
        table.tokens.sort_by_key(|(t, _)| *t != Token::Motp);
        let slots = (table.entries.len() * 2).next_power_of_two().max(8);
        let mut index: Vec<Slot> = Vec::with_capacity(slots);
        crate::ffi::advise_huge_pages(index.as_ptr().cast(), slots * std::mem::size_of::<Slot>());
        index.resize(slots, EMPTY_SLOT);
        let mut index = index.into_boxed_slice();
        let mask = slots - 1;
        for (n, entry) in table.entries.iter().enumerate() {
            let name = table.name(entry);
            // Hashed as bytes, as a lookup and a prefetch (from OpenVPN's bytes) hash it.
            let mut i = table.hasher.hash_one(name.as_bytes()) as usize & mask;
            while index[i] != EMPTY_SLOT {
                if table.name(&table.entries[(index[i] >> 32) as usize]) == name {
                    return Err(n);
                }
                i = (i + 1) & mask;
            }
            // n < EMPTY: `add` keeps every entry's start, hence the entry count, below it.
            index[i] = (n as u64) << 32 | u64::from(entry.start);
        }
        table.slots = index;
        Ok(table)
    }
}

/// Validates a user's `[[users.NAME.tokens]]` entries: each a token like the user's own, with a
/// name unique within the user.
fn read_more_tokens(
    fields: &[MoreTokenFields<'_>],
    refuse: &dyn Fn(usize, &str, String) -> Refusal,
) -> Result<Vec<MoreToken>, Refusal> {
    if let Some(extra) = fields.get(MAX_MORE_TOKENS) {
        return Err(refuse(
            extra.name.1,
            "tokens",
            format!("holds more than {MAX_MORE_TOKENS} tokens"),
        ));
    }
    let mut out: Vec<MoreToken> = Vec::with_capacity(fields.len());
    for (n, f) in fields.iter().enumerate() {
        let place = format!("tokens[{n}]");
        let nested =
            |at: usize, key: &str, message: String| refuse(at, &format!("{place}.{key}"), message);
        let (name, name_at) = f.name;
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(nested(
                name_at,
                "name",
                "must be 1 to 32 letters, digits, '-', '_' or '.' (it names the token's replay \
                 state; e.g. \"phone\" or \"yubikey\")"
                    .to_owned(),
            ));
        }
        if out.iter().any(|t| &*t.name == name) {
            return Err(nested(
                name_at,
                "name",
                "is taken by another token of this user".to_owned(),
            ));
        }
        let (token, hmac_key) = token::read(&f.token, f.secret, f.pin, &nested)?;
        let offset_secs = match f.offset_secs {
            Some((o, at)) if o.unsigned_abs() > MAX_OFFSET_SECS as u64 => {
                return Err(nested(
                    at,
                    "offset_secs",
                    format!("must be within ±{MAX_OFFSET_SECS} seconds (one day)"),
                ))
            }
            Some((o, _)) => o,
            None => 0,
        };
        let key = match hmac_key {
            Some(key) => key,
            None => {
                let pin = f.pin.map_or("", |(p, _)| p);
                let mut key = Zeroizing::new(Vec::with_capacity(f.secret.0.len() + pin.len()));
                key.extend_from_slice(f.secret.0.as_bytes());
                key.extend_from_slice(pin.as_bytes());
                key
            }
        };
        out.push(MoreToken {
            name: name.into(),
            token,
            offset_secs,
            key,
        });
    }
    Ok(out)
}
