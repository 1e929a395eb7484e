//! State in this process only: lost at every SIGHUP (OpenVPN unloads the plugin) or restart.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::{StateError, StateStore, UserState};

/// State in this process only. Bounded by the user table: only configured users are stored.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<Box<str>, UserState, foldhash::quality::RandomState>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl StateStore for MemoryStore {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        let mut users = self.users.lock();
        match users.get_mut(username) {
            Some(state) => decide(state),
            None => {
                let mut state = UserState::default();
                decide(&mut state);
                if state != UserState::default() {
                    users.insert(username.into(), state);
                }
            }
        }
        Ok(())
    }

    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        Ok(self.users.lock().get(username).copied().unwrap_or_default())
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
}
