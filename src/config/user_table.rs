//! The compact user table: every user's name, `secret ‖ pin` and common name in one wiped
//! arena, a small fixed-size entry per user, and an open-addressing index keyed with a
//! per-table random hasher. Three allocations whatever the number of users.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::quality::RandomState;

use zeroize::Zeroizing;

use super::diagnostics::{printable, Refusal};
use super::{entry, MAX_OFFSET_SECS, MAX_PIN_LEN};

/// One user's entry, borrowed from the [`UserTable`]. `key` is `secret ‖ pin`, the bytes that
/// follow the step in the hash.
#[derive(Clone, Copy)]
pub struct User<'a> {
    pub key: &'a [u8],
    pub offset_secs: i64,
    pub common_name: Option<&'a str>,
    pub disabled: bool,
}

impl fmt::Debug for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("key", &"<redacted>")
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
}

/// Slot value of an empty index slot.
const EMPTY: u32 = u32::MAX;

/// The users, in file order, in three allocations whatever their number.
pub struct UserTable {
    /// Every name, key and common name back to back. Wiped on drop: it holds every secret and
    /// PIN. A `String` so that names and common names slice out as `&str` without `unsafe`
    /// (secrets are hex and PINs printable, so the keys are UTF-8 too).
    text: Zeroizing<String>,
    entries: Vec<Entry>,
    /// Open addressing with linear probing over `entries`, at most half full so a probe for an
    /// unknown name ends after ~2.5 slots. Keyed with a per-table random seed: lookups are by
    /// attacker-chosen usernames, which must not be able to aim at long probe chains (nothing
    /// they send is inserted; the table holds the config's names only).
    slots: Box<[u32]>,
    hasher: RandomState,
    /// The longest `secret ‖ pin` of the table: every code search is made to cost what this
    /// key costs, so timing does not tell a long key's user, a short key's and no user apart.
    longest_key: usize,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable {
            text: Zeroizing::new(String::new()),
            entries: Vec::new(),
            slots: Box::new([]),
            hasher: RandomState::default(),
            longest_key: 0,
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
        User {
            key: &self.text.as_bytes()[key_start..cn_start],
            offset_secs: i64::from(e.offset_secs),
            common_name: e
                .has_cn
                .then(|| &self.text[cn_start..cn_start + e.cn_len as usize]),
            disabled: e.disabled,
        }
    }

    /// The entry index of `name`, by the index.
    fn find(&self, name: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(name) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if self.name(&self.entries[slot as usize]) == name {
                return Some(slot);
            }
            i = (i + 1) & mask;
        }
    }
}

/// One user's fields as read from the file, borrowed (from the config text on the fast path,
/// from the parser's wiped strings on the `toml` path), each with its byte offset for messages.
pub(super) struct UserFields<'a> {
    pub(super) secret: (&'a str, usize),
    pub(super) pin: (&'a str, usize),
    pub(super) offset_secs: Option<(i64, usize)>,
    pub(super) common_name: Option<(&'a str, usize)>,
    pub(super) disabled: bool,
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

        let (secret, secret_at) = user.secret;
        if let Some(message) = entry::secret_problem(secret) {
            return Err(refuse(secret_at, "secret", message));
        }
        let (pin, pin_at) = user.pin;
        if !entry::pin_is_valid(pin) {
            return Err(refuse(
                pin_at,
                "pin",
                format!("must be 1 to {MAX_PIN_LEN} printable characters without spaces (usually 4 digits)"),
            ));
        }
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
            bigger.push_str(text);
            *text = bigger;
        }
        text.push_str(name);
        text.push_str(secret);
        text.push_str(pin);
        text.push_str(cn);
        self.table.longest_key = self.table.longest_key.max(secret.len() + pin.len());
        self.table.entries.push(Entry {
            start: start32,
            cn_len,
            offset_secs: offset32,
            // Both bounded above by the checks: name ≤ 128, secret ≤ 32 and PIN ≤ 64 bytes.
            name_len: name.len() as u8,
            key_len: (secret.len() + pin.len()) as u8,
            has_cn: common_name.is_some(),
            disabled: user.disabled,
        });
        Ok(())
    }

    /// The finished table, or the index of an entry whose name is taken by an earlier one.
    pub(super) fn finish(self) -> Result<UserTable, usize> {
        let mut table = self.table;
        if table.text.capacity() > table.text.len() + table.text.len() / 64 {
            // A copy of exactly the size needed; the larger buffer is wiped as it drops.
            table.text = Zeroizing::new(String::from(table.text.as_str()));
        }
        table.entries.shrink_to_fit();
        let slots = (table.entries.len() * 2).next_power_of_two().max(8);
        let mut index = vec![EMPTY; slots].into_boxed_slice();
        let mask = slots - 1;
        for (n, entry) in table.entries.iter().enumerate() {
            let name = table.name(entry);
            let mut i = table.hasher.hash_one(name) as usize & mask;
            while index[i] != EMPTY {
                if table.name(&table.entries[index[i] as usize]) == name {
                    return Err(n);
                }
                i = (i + 1) & mask;
            }
            // n < EMPTY: `add` keeps every entry's start, hence the entry count, below it.
            index[i] = n as u32;
        }
        table.slots = index;
        Ok(table)
    }
}
