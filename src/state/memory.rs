//! State in this process only: lost at every SIGHUP (OpenVPN unloads the plugin) or restart.
//!
//! An open-addressing table of its own rather than a `HashMap`: the slot a login will use can
//! be fetched into the cache as soon as OpenVPN's env names the user ([`StateStore::prefetch`]),
//! long before the decision writes it. In a table larger than the CPU's caches, that write was
//! a miss on OpenVPN's thread at every first login, waited for at the lock's release
//! (docs/performance.md, "Sixth round").

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::{StateError, StateStore, UserState};

/// State in this process only. Bounded by the user table: only configured users are stored.
pub struct MemoryStore {
    table: Mutex<Table>,
    hasher: foldhash::quality::RandomState,
    /// The address of `table.slots` and its length − 1, for [`StateStore::prefetch`] without
    /// the lock. Written under the lock when the slots move; a prefetch that reads them while
    /// they change only loads some other line.
    slots_at: AtomicUsize,
    slots_mask: AtomicUsize,
    /// Where the next new row goes, for the same prefetch: a first login writes it.
    next_row_at: AtomicUsize,
    /// Some row was given a `last_offset_secs` other than 0 ([`StateStore::offsets_all_zero`]).
    nonzero_offset: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::for_users(0)
    }
}

/// The rows in the order users were first stored (never removed), and the slots that find
/// them by name.
struct Table {
    /// `0`: empty. Otherwise the high 32 bits of the name's hash, then the row's index + 1: a
    /// probe compares the hash's bits before it reads a row.
    slots: Vec<u64>,
    rows: Vec<Row>,
}

struct Row {
    hash: u64,
    name: Name,
    state: UserState,
}

/// Usernames up to this long (nearly all) are kept inside the row.
const INLINE_NAME: usize = 22;

/// A row's username: held in the row itself when it is short, so that a user's first login
/// allocates nothing; boxed when longer.
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Boxed(Box<[u8]>),
}

impl Name {
    fn new(name: &[u8]) -> Name {
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

const EMPTY_SLOT: u64 = 0;

/// Where a name is, or where it would go.
enum Probe {
    Found(usize),
    Vacant(usize),
}

/// `count` empty slots (a power of two, at least 16), or `None` if that memory cannot be had.
/// Written now, so that no first login takes a page fault on OpenVPN's thread: not
/// `vec![0; n]`, whose zeroed memory can come from the kernel unmapped.
fn empty_slots(count: usize) -> Option<Vec<u64>> {
    let count = count.max(16).checked_next_power_of_two()?;
    let mut slots = Vec::new();
    slots.try_reserve_exact(count).ok()?;
    slots.resize(count, EMPTY_SLOT);
    Some(slots)
}

/// The first empty slot on `hash`'s probe path (`slots` always keeps one).
fn vacant_slot(slots: &[u64], hash: u64) -> usize {
    let mask = slots.len() - 1;
    let mut i = hash as usize & mask;
    while slots[i] != EMPTY_SLOT {
        i = (i + 1) & mask;
    }
    i
}

impl Table {
    /// A table with room for `count` slots, or for fewer if that much memory cannot be had
    /// now (the table then grows as users log in).
    fn with_slots(count: usize) -> Table {
        Table {
            slots: empty_slots(count)
                .or_else(|| empty_slots(16))
                .unwrap_or_else(|| vec![EMPTY_SLOT; 16]),
            rows: Vec::new(),
        }
    }

    fn probe(&self, name: &[u8], hash: u64) -> Probe {
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY_SLOT {
                return Probe::Vacant(i);
            }
            if slot >> 32 == tag {
                let row = (slot as u32 - 1) as usize;
                if self.rows[row].name.as_bytes() == name {
                    return Probe::Found(row);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Stores a new row for a name [`probe`](Self::probe) found vacant at `at`, growing the
    /// slots first when the row would fill more than half of them (probes stay short). Fails,
    /// storing nothing, when memory runs out and no slot can stay empty (a probe ends at an
    /// empty slot), or past the rows a slot can name.
    fn insert(
        &mut self,
        at: usize,
        name: &[u8],
        hash: u64,
        state: UserState,
    ) -> Result<(), StateError> {
        let out_of_memory = || StateError("the memory store is out of memory".to_owned());
        let Ok(number) = u32::try_from(self.rows.len() + 1) else {
            return Err(StateError(
                "the memory store is full (4,294,967,295 users)".to_owned(),
            ));
        };
        let mut at = at;
        if (self.rows.len() + 1) * 2 > self.slots.len() {
            if self.grow() {
                at = vacant_slot(&self.slots, hash);
            } else if self.rows.len() + 2 > self.slots.len() {
                return Err(out_of_memory());
            }
        }
        self.rows.try_reserve(1).map_err(|_| out_of_memory())?;
        self.rows.push(Row {
            hash,
            name: Name::new(name),
            state,
        });
        self.slots[at] = (hash >> 32) << 32 | u64::from(number);
        Ok(())
    }

    /// Twice the slots, every row placed again; `false` (nothing changed) without the memory.
    fn grow(&mut self) -> bool {
        let Some(mut slots) = self.slots.len().checked_mul(2).and_then(empty_slots) else {
            return false;
        };
        for (row, entry) in self.rows.iter().enumerate() {
            let at = vacant_slot(&slots, entry.hash);
            slots[at] = (entry.hash >> 32) << 32 | (row as u64 + 1);
        }
        self.slots = slots;
        true
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store for a table of `users` users, its memory mapped and written at open for all of
    /// them: 8 bytes a slot, two slots a user, and a row of 176 bytes each (64-bit), what the store
    /// would hold once every user has logged in. Their first logins then neither grow the store
    /// nor fault its pages in on OpenVPN's thread.
    pub fn for_users(users: usize) -> MemoryStore {
        let mut table = Table::with_slots(users.saturating_mul(2));
        // Placeholder rows written and dropped again: the rows' pages too are mapped now.
        // Without that much memory now, the rows grow as users log in.
        let presized = match table.rows.try_reserve_exact(users) {
            Ok(()) => users,
            Err(_) => 0,
        };
        for _ in 0..presized {
            table.rows.push(Row {
                hash: 0,
                name: Name::new(b""),
                state: UserState::default(),
            });
        }
        table.rows.clear();
        let store = MemoryStore {
            table: Mutex::new(table),
            hasher: foldhash::quality::RandomState::default(),
            slots_at: AtomicUsize::new(0),
            slots_mask: AtomicUsize::new(0),
            next_row_at: AtomicUsize::new(0),
            nonzero_offset: AtomicBool::new(false),
        };
        store.publish(&store.table.lock());
        store
    }

    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// Where `table`'s slots and next row are now, for [`StateStore::prefetch`].
    fn publish(&self, table: &Table) {
        self.slots_at
            .store(table.slots.as_ptr() as usize, Ordering::Relaxed);
        self.slots_mask
            .store(table.slots.len() - 1, Ordering::Relaxed);
        self.next_row_at
            .store(table.rows.as_ptr_range().end as usize, Ordering::Relaxed);
    }
}

impl StateStore for MemoryStore {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        let name = username.as_bytes();
        let hash = self.hash(name);
        let mut table = self.table.lock();
        let offset = match table.probe(name, hash) {
            Probe::Found(row) => {
                let state = &mut table.rows[row].state;
                decide(state);
                state.last_offset_secs
            }
            Probe::Vacant(at) => {
                let mut state = UserState::default();
                decide(&mut state);
                let offset = state.last_offset_secs;
                if state != UserState::default() {
                    table.insert(at, name, hash, state)?;
                    self.publish(&table);
                }
                offset
            }
        };
        if offset.is_some_and(|offset| offset != 0) {
            self.nonzero_offset.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn prefetch(&self, username: &[u8]) {
        let slot = self.hash(username) as usize & self.slots_mask.load(Ordering::Relaxed);
        let at = self.slots_at.load(Ordering::Relaxed);
        crate::ffi::prefetch_address(at.wrapping_add(slot * std::mem::size_of::<u64>()));
        // A first login appends its row here: without this, the row's cache lines are fetched
        // at the write, and the lock's release waits for them.
        let row = self.next_row_at.load(Ordering::Relaxed);
        for line in (0..std::mem::size_of::<Row>()).step_by(64) {
            crate::ffi::prefetch_address(row.wrapping_add(line));
        }
    }

    fn offsets_all_zero(&self) -> bool {
        // A login racing the write that sets the flag may still centre on 0: what it would
        // have done had it read the row just before that write (the search never ran under
        // the store's lock).
        !self.nonzero_offset.load(Ordering::Acquire)
    }

    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        let name = username.as_bytes();
        let hash = self.hash(name);
        let table = self.table.lock();
        Ok(match table.probe(name, hash) {
            Probe::Found(row) => table.rows[row].state,
            Probe::Vacant(_) => UserState::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_row_is_the_size_the_docs_give() {
        assert_eq!(std::mem::size_of::<Row>(), 176);
    }

    #[test]
    fn many_users_grow_the_table_and_stay_apart() {
        let store = MemoryStore::new();
        let names: Vec<String> = (0..5_000).map(|n| format!("user{n}")).collect();
        for (n, name) in names.iter().enumerate() {
            store.prefetch(name.as_bytes());
            store
                .update(name, &mut |s| {
                    assert_eq!(*s, UserState::default(), "{name} is new");
                    s.failures = n as u32 + 1;
                })
                .unwrap();
        }
        for (n, name) in names.iter().enumerate() {
            assert_eq!(store.peek(name).unwrap().failures, n as u32 + 1);
        }
        assert_eq!(store.peek("user5000").unwrap(), UserState::default());
        let table = store.table.lock();
        assert_eq!(table.rows.len(), names.len());
        assert!(table.slots.len() >= 2 * names.len(), "at most half full");
    }

    #[test]
    fn a_nearly_full_table_still_ends_every_probe() {
        let mut table = Table::with_slots(16);
        let full_slots = table.slots.len();
        for n in 0..full_slots - 1 {
            let name = format!("u{n}");
            let hash = n as u64;
            let Probe::Vacant(at) = table.probe(name.as_bytes(), hash) else {
                panic!("{name} is new");
            };
            // Every slot but one filled, as a table that could not grow may be.
            table.rows.try_reserve(1).unwrap();
            table.rows.push(Row {
                hash,
                name: Name::new(name.as_bytes()),
                state: UserState::default(),
            });
            table.slots[at] = (hash >> 32) << 32 | (n as u64 + 1);
        }
        assert_eq!(
            vacant_slot(&table.slots, 99),
            table.slots.iter().position(|&s| s == EMPTY_SLOT).unwrap()
        );
        // A probe for a name not there still ends, at the one empty slot.
        assert!(matches!(table.probe(b"nobody", 5), Probe::Vacant(_)));
        assert!(matches!(table.probe(b"u3", 3), Probe::Found(3)));
    }

    #[test]
    fn a_store_sized_for_its_users_needs_no_growth() {
        let store = MemoryStore::for_users(1_000);
        let slots = store.table.lock().slots.len();
        for n in 0..1_000 {
            store
                .update(&format!("u{n}"), &mut |s| s.failures = 1)
                .unwrap();
        }
        assert_eq!(store.table.lock().slots.len(), slots);
        assert!(store.table.lock().rows.capacity() >= 1_000);
    }

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
        assert!(store.table.lock().rows.is_empty(), "a peek stores nothing");
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
        assert_eq!(store.table.lock().rows.len(), names.len());
    }
}
