//! The one login of the unit tests: a decision through [`Authenticator::decide`] with the
//! client's certificate given, and a fixture of a config with a fresh memory store.

use std::path::Path;

use crate::auth::{Authenticator, Decision, LoginRequest};
use crate::config::Config;
use crate::drift::LearnedOffsets;
use crate::state::{MemoryStore, StateStore};

/// `user` logs in with `password` and a certificate whose CN is `cn`, at `now`.
pub(crate) fn decide_login(
    config: &Config,
    store: &dyn StateStore,
    learned: Option<&LearnedOffsets>,
    user: &str,
    password: &str,
    cn: &str,
    now: i64,
) -> Decision {
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store,
        learned,
    };
    auth.decide(
        &LoginRequest {
            username: Some(user.as_bytes()),
            password: Some(password.as_bytes()),
            common_name: Some(cn.as_bytes()),
        },
        now,
    )
}

/// A config parsed from text, and a memory store of its own.
pub(crate) struct Fixture {
    pub(crate) config: Config,
    pub(crate) store: MemoryStore,
}

impl Fixture {
    pub(crate) fn new(text: &str) -> Fixture {
        Fixture {
            config: Config::parse(Path::new("t.toml"), text).unwrap(),
            store: MemoryStore::new(),
        }
    }

    /// [`decide_login`] on this fixture, no drift tracking.
    pub(crate) fn login(&self, user: &str, password: &str, cn: &str, now: i64) -> Decision {
        decide_login(&self.config, &self.store, None, user, password, cn, now)
    }

    /// [`login`](Self::login) with the user's own certificate (CN = username).
    pub(crate) fn login_own_cert(&self, user: &str, password: &str, now: i64) -> Decision {
        self.login(user, password, user, now)
    }
}
