//! State in this process only: lost at every SIGHUP (OpenVPN unloads the plugin) or restart.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::{StateError, StateStore, UserState};

/// State in this process only. Bounded by the user table: only configured users are stored.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<Name, UserState, foldhash::quality::RandomState>>,
    /// Some row was given a `last_offset_secs` other than 0 ([`StateStore::offsets_all_zero`]).
    nonzero_offset: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store for a table of `users` users, with room for up to [`PRESIZED_ROWS`] of them
    /// from the start, its memory already mapped: their first logins then neither grow the
    /// map (a growth copies every row into fresh memory on OpenVPN's thread) nor fault its
    /// pages in.
    pub fn for_users(users: usize) -> MemoryStore {
        let rows = users.min(PRESIZED_ROWS);
        let mut map = HashMap::with_capacity_and_hasher(rows, Default::default());
        // Filled with placeholder rows and emptied again: this writes every page of the map
        // now, at open, so the kernel maps them here rather than in a page fault at some first
        // login on OpenVPN's thread.
        for n in 0..rows {
            map.insert(Name::new(&n.to_string()), UserState::default());
        }
        map.clear();
        MemoryStore {
            users: Mutex::new(map),
            nonzero_offset: AtomicBool::new(false),
        }
    }
}

/// The most rows a new store has room for, its memory written once at open (its size in
/// docs/performance.md, "Accept path after the reshape"). A bigger table's map grows as its
/// users log in.
const PRESIZED_ROWS: usize = 4096;

/// Usernames up to this long (nearly all) are kept inside the map's entry.
const INLINE_NAME: usize = 22;

/// A username as the map's key: held in the entry itself when it is short, so that a user's
/// first login allocates nothing and the map is probed once; boxed when longer.
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Boxed(Box<[u8]>),
}

impl Name {
    fn new(name: &str) -> Name {
        let name = name.as_bytes();
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE_NAME => {
                let mut bytes = [0u8; INLINE_NAME];
                bytes[..name.len()].copy_from_slice(name);
                Name::Inline { len, bytes }
            }
            _ => Name::Boxed(name.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Boxed(bytes) => bytes,
        }
    }
}

// Equality and hash are those of the name's bytes, as `Borrow` requires.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl StateStore for MemoryStore {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        let mut users = self.users.lock();
        let mut decide = |state: &mut UserState| {
            decide(state);
            if state.last_offset_secs.is_some_and(|offset| offset != 0) {
                self.nonzero_offset.store(true, Ordering::Release);
            }
        };
        if username.len() > INLINE_NAME {
            // A long name is boxed only when it is stored.
            if let Some(state) = users.get_mut(username.as_bytes()) {
                decide(state);
                return Ok(());
            }
        }
        match users.entry(Name::new(username)) {
            Entry::Occupied(mut known) => decide(known.get_mut()),
            Entry::Vacant(new) => {
                let mut state = UserState::default();
                decide(&mut state);
                if state != UserState::default() {
                    new.insert(state);
                }
            }
        }
        Ok(())
    }

    fn offsets_all_zero(&self) -> bool {
        // A login racing the write that sets the flag may still centre on 0: what it would
        // have done had it read the row just before that write (the search never ran under
        // the store's lock).
        !self.nonzero_offset.load(Ordering::Acquire)
    }

    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        Ok(self
            .users
            .lock()
            .get(username.as_bytes())
            .copied()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_persist_per_user() {
        let store = MemoryStore::new();
        store
            .update("alice", &mut |s| s.last_step = Some(7))
            .unwrap();
        store
            .update("alice", &mut |s| assert_eq!(s.last_step, Some(7)))
            .unwrap();
        store
            .update("bob", &mut |s| assert_eq!(*s, UserState::default()))
            .unwrap();
    }

    #[test]
    fn peek_reads_without_writing() {
        let store = MemoryStore::new();
        assert_eq!(store.peek("alice").unwrap(), UserState::default());
        assert!(store.users.lock().is_empty(), "a peek stores nothing");
        store
            .update("alice", &mut |s| {
                s.record_accepted(7, 0);
                s.record_recovery_use(9, 1);
            })
            .unwrap();
        let seen = store.peek("alice").unwrap();
        assert_eq!(
            (seen.last_step, seen.keep, seen.recovery_used),
            (Some(7), true, 2)
        );
        assert_eq!(store.peek("alice").unwrap(), seen);
    }

    #[test]
    fn offsets_all_zero_until_a_row_is_given_another_offset() {
        let store = MemoryStore::new();
        assert!(store.offsets_all_zero());
        store
            .update("alice", &mut |s| s.record_accepted(7, 0))
            .unwrap();
        store.update("bob", &mut |s| s.failures = 1).unwrap();
        assert!(store.offsets_all_zero(), "offset 0 and no offset");
        store
            .update("carol", &mut |s| s.record_accepted(9, -30))
            .unwrap();
        assert!(!store.offsets_all_zero());
        store
            .update("carol", &mut |s| s.record_accepted(10, 0))
            .unwrap();
        assert!(!store.offsets_all_zero(), "never cleared");
    }

    #[test]
    fn short_and_long_names_are_kept_apart() {
        let store = MemoryStore::new();
        let names = [
            "a".to_owned(),
            "a".repeat(INLINE_NAME),
            "a".repeat(INLINE_NAME + 1),
            "a".repeat(128),
            "\u{e9}".repeat(INLINE_NAME / 2),
        ];
        for (i, name) in names.iter().enumerate() {
            store
                .update(name, &mut |s| {
                    assert_eq!(*s, UserState::default());
                    s.failures = i as u32 + 1;
                })
                .unwrap();
        }
        for (i, name) in names.iter().enumerate() {
            store
                .update(name, &mut |s| assert_eq!(s.failures, i as u32 + 1))
                .unwrap();
        }
        assert_eq!(store.users.lock().len(), names.len());
    }
}
