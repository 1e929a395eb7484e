//! Replay and lockout state per user, behind one transactional operation so that every backend
//! (this in-memory one, and durable ones) decides a login in a single atomic step.

use std::collections::HashMap;

use parking_lot::Mutex;

/// What is remembered about one user between logins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserState {
    /// The phone step of the last accepted code; codes at or before it are replays.
    pub last_step: Option<i64>,
    /// Consecutive failed logins since the last success or lock.
    pub failures: u32,
    /// Unix seconds until which every login is refused (0 = not locked).
    pub locked_until: i64,
}

#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

/// A place to keep [`UserState`]. `update` runs `decide` on the user's current state and stores
/// what it leaves behind, as one transaction: no other login for that user interleaves.
pub trait StateStore: Send + Sync {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError>;
}

/// State in this process only. Bounded by the user table: only configured users are stored.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<Box<str>, UserState>>,
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
}
