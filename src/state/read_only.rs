//! A view of a store that decides as the store would and writes nothing. `motpctl verify` asks
//! "would the plugin take this code now?" through the plugin's own decision code
//! ([`crate::auth::Authenticator`] and [`crate::rule`]), so its answer cannot drift from the
//! plugin's, and checking a code never uses it up.

use super::{StateError, StateStore, UserState};

/// Reads each user's state from `inner` with [`StateStore::peek`] (or starts from nothing
/// without one), lets the decision change a copy, and drops the copy.
pub struct ReadOnly<'a> {
    inner: Option<&'a dyn StateStore>,
}

impl<'a> ReadOnly<'a> {
    pub fn new(inner: Option<&'a dyn StateStore>) -> ReadOnly<'a> {
        ReadOnly { inner }
    }
}

impl StateStore for ReadOnly<'_> {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        let mut copy = self.peek(username)?;
        decide(&mut copy);
        Ok(())
    }

    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        match self.inner {
            Some(inner) => inner.peek(username),
            None => Ok(UserState::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Found, Limits};
    use crate::state::MemoryStore;

    #[test]
    fn decides_on_the_stored_state_and_writes_nothing() {
        let store = MemoryStore::new();
        store
            .update("alice", &mut |s| s.record_accepted(100, 0))
            .unwrap();
        let view = ReadOnly::new(Some(&store));
        let limits = Limits {
            max_failures: 1,
            lockout_secs: 300,
            offset_secs: 0,
            radius: 18,
            counter_based: false,
            learned_offset_secs: 0,
        };
        let at = |step| Found::Step {
            step,
            step_offset: 0,
        };
        assert!(
            view.decide("alice", &at(100), 1_000, &limits).unwrap()
                == crate::auth::Decision::Replay
        );
        // One failure would lock (max_failures = 1), and an accept would move the last step:
        // neither reaches the store.
        assert!(view
            .decide("alice", &at(101), 1_000, &limits)
            .unwrap()
            .is_accepted());
        assert!(view
            .decide("alice", &at(101), 1_000, &limits)
            .unwrap()
            .is_accepted());
        let mut stored = UserState::default();
        store.update("alice", &mut |s| stored = *s).unwrap();
        assert_eq!(
            (stored.last_step, stored.failures, stored.locked_until),
            (Some(100), 0, 0)
        );
        // A recovery code checked through the view stays unused.
        let code = Found::Recovery { set: 4, index: 0 };
        for _ in 0..2 {
            assert!(view
                .decide("alice", &code, 1_000, &limits)
                .unwrap()
                .is_accepted());
        }
        assert_eq!(store.peek("alice").unwrap().recovery_used, 0);
    }

    #[test]
    fn peeks_at_the_inner_store_or_at_nothing() {
        let store = MemoryStore::new();
        store
            .update("alice", &mut |s| s.record_recovery_use(4, 3))
            .unwrap();
        let view = ReadOnly::new(Some(&store));
        assert_eq!(view.peek("alice").unwrap(), store.peek("alice").unwrap());
        assert_eq!(view.peek("bob").unwrap(), UserState::default());
        let empty = ReadOnly::new(None);
        assert_eq!(empty.peek("alice").unwrap(), UserState::default());
    }
}
