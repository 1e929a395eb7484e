//! One loaded instance of the plugin: the config it serves, its state store, and its log.
//! Safe Rust; `ffi` turns OpenVPN's calls into calls on this.
//!
//! The user table and policy are reloaded live: every login stats motp.toml (one `stat`), and
//! when its inode, size, mode or times changed it is read again. A valid file takes effect at
//! once; an invalid one is logged once (file, line, key) and the previous table keeps serving.
//! The `[state]` table is only read at open: the store stays the same until a SIGHUP.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{error, info, warn};

use crate::auth::{Authenticator, Decision, LoginRequest};
use crate::clock;
use crate::config::{Config, StateConfig};
use crate::env::AuthEnv;
use crate::ip_limit::{self, IpLimiter};
use crate::log::{self, Sink};
use crate::state::{MemoryStore, SqliteStore, StateStore};

/// What OpenVPN is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

pub struct Plugin {
    path: PathBuf,
    config: RwLock<Arc<Config>>,
    /// The version of motp.toml last acted upon (loaded, or refused and logged); `None` when
    /// it could not be examined.
    seen: Mutex<Option<FileVersion>>,
    /// The `[state]` the store was opened with; a reload cannot change it.
    state: StateConfig,
    store: Box<dyn StateStore>,
    /// Failures per source address: in this process only, bounded in size.
    addresses: IpLimiter,
    dispatch: tracing::Dispatch,
}

/// What tells one version of the config file from another, from one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(path: &Path) -> Option<FileVersion> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileVersion {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The generic text the client sees on failure: never which factor was wrong.
const CLIENT_REASON_FAILED: &str = "Authentication failed";

impl Plugin {
    /// Loads the config and opens the state store. Every problem is logged through `sink` and
    /// returned, so OpenVPN refuses to start rather than run with a config the admin did not mean.
    pub fn open(config_path: &Path, sink: Sink) -> Result<Plugin, String> {
        let dispatch = log::dispatch(sink, tracing::Level::INFO);
        tracing::dispatcher::with_default(&dispatch, || {
            let refuse = |message: String| {
                let message = format!("cannot start: {message}");
                error!("{message}");
                message
            };
            let seen = FileVersion::of(config_path);
            let config = Config::load(config_path).map_err(|e| refuse(e.to_string()))?;
            let store = open_store(&config.state).map_err(refuse)?;
            if clock::test_hook_active() {
                warn!(
                    "TEST BUILD: {} is set and shifts the plugin's clock",
                    clock::TEST_SKEW_ENV
                );
            }
            info!(
                "ready: {} users from {}, window ±{} s, lock after {} failures for {} s, CN binding {}, {}",
                config.users.len(),
                config.path.display(),
                config.policy.window_secs,
                config.policy.max_failures,
                config.policy.lockout_secs,
                if config.policy.require_common_name { "on" } else { "off" },
                describe_state(&config.state),
            );
            Ok(Plugin {
                path: config.path.clone(),
                state: config.state.clone(),
                config: RwLock::new(Arc::new(config)),
                seen: Mutex::new(seen),
                store,
                addresses: IpLimiter::new(ip_limit::DEFAULT_CAPACITY),
                dispatch: dispatch.clone(),
            })
        })
    }

    pub fn config_path(&self) -> &PathBuf {
        &self.path
    }

    /// Decides one `AUTH_USER_PASS_VERIFY`, logs the decision once, and writes the client-facing
    /// reason when OpenVPN offers `auth_failed_reason_file`.
    pub fn authenticate(&self, env: &AuthEnv) -> Verdict {
        tracing::dispatcher::with_default(&self.dispatch, || {
            let config = self.current_config();
            let request = LoginRequest {
                username: env.username,
                password: env.password,
                common_name: env.common_name,
            };
            let now = clock::now();
            let auth = Authenticator {
                policy: &config.policy,
                users: &config.users,
                store: &*self.store,
            };
            let client = env
                .untrusted_ip
                .or(env.untrusted_ip6)
                .and_then(ip_limit::parse_ip);
            let decision = auth.decide_from(&request, client, &self.addresses, now);
            log_decision(env, &decision);
            if decision.is_accepted() {
                return Verdict::Accept;
            }
            if let Some(path) = env.auth_failed_reason_file {
                write_client_reason(path, &client_reason(&decision, now));
            }
            Verdict::Reject
        })
    }

    /// The config to decide with: reloaded first if motp.toml changed since it was last looked
    /// at. A change is acted upon once, whether it loads or not.
    fn current_config(&self) -> Arc<Config> {
        let now_seen = FileVersion::of(&self.path);
        {
            let mut seen = self.seen.lock();
            if *seen != now_seen {
                *seen = now_seen;
                self.reload();
            }
        }
        self.config.read().clone()
    }

    fn reload(&self) {
        match Config::load(&self.path) {
            Ok(new) => {
                if new.state != self.state {
                    warn!(
                        "{}: the [state] table changed; the state store changes only when \
                         OpenVPN reloads the plugin (SIGHUP) or restarts, still {}",
                        self.path.display(),
                        describe_state(&self.state),
                    );
                }
                info!(
                    "reloaded {}: {} users, window ±{} s, lock after {} failures for {} s, CN binding {}",
                    self.path.display(),
                    new.users.len(),
                    new.policy.window_secs,
                    new.policy.max_failures,
                    new.policy.lockout_secs,
                    if new.policy.require_common_name { "on" } else { "off" },
                );
                *self.config.write() = Arc::new(new);
            }
            Err(e) => error!(
                "{e}; the file changed but cannot be used, so the previous user table stays in \
                 use until it is fixed"
            ),
        }
    }
}

/// Opens the store `[state]` asks for. Errors say what to fix.
fn open_store(state: &StateConfig) -> Result<Box<dyn StateStore>, String> {
    match state {
        StateConfig::Memory => {
            warn!(
                "state backend is \"memory\": replay and lockout state is lost at every \
                 SIGHUP or restart"
            );
            Ok(Box::new(MemoryStore::new()))
        }
        StateConfig::Local { dir } => match SqliteStore::open(dir) {
            Ok(store) => Ok(Box::new(store)),
            Err(e) => Err(e.to_string()),
        },
    }
}

fn describe_state(state: &StateConfig) -> String {
    match state {
        StateConfig::Memory => "state in memory".to_owned(),
        StateConfig::Local { dir } => format!("state in {}", dir.display()),
    }
}

fn log_decision(env: &AuthEnv, decision: &Decision) {
    let user = match env.username {
        Some(u) => log::sanitize(&String::from_utf8_lossy(
            &u[..u.len().min(crate::config::MAX_USERNAME_LEN)],
        )),
        None => "(none)".to_owned(),
    };
    let ip = env.client_address();
    match decision {
        Decision::Accepted { step_offset } => {
            info!(user = %user, ip = %ip, step_offset = %format_args!("{step_offset:+}"), "login accepted")
        }
        Decision::MalformedPassword(why) => {
            warn!(user = %user, ip = %ip, reason = decision.reason(), detail = %why, "login rejected")
        }
        Decision::Locked { until } | Decision::AddressLocked { until } => {
            warn!(user = %user, ip = %ip, reason = decision.reason(), until = until, "login rejected")
        }
        Decision::StateUnavailable => {
            error!(user = %user, ip = %ip, reason = decision.reason(), "login rejected")
        }
        _ => warn!(user = %user, ip = %ip, reason = decision.reason(), "login rejected"),
    }
}

fn client_reason(decision: &Decision, now: i64) -> String {
    match decision {
        Decision::Locked { until } | Decision::AddressLocked { until } => {
            let wait = until.saturating_sub(now).max(1);
            format!("TEMP[backoff {wait}]: too many failed logins, try again later")
        }
        Decision::StateUnavailable => {
            "TEMP[backoff 30]: authentication temporarily unavailable".to_owned()
        }
        _ => CLIENT_REASON_FAILED.to_owned(),
    }
}

fn write_client_reason(path: &[u8], reason: &str) {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(path));
    if let Err(e) = std::fs::write(path, reason) {
        warn!(
            "cannot write auth_failed_reason_file {}: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::code_at_time;
    use crate::state::sqlite::tests::TempDir;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};
    use tracing::Level;

    const ALICE: &str = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n";
    const BOB: &str = "[users.bob]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n";
    const CAROL: &str =
        "[users.carol]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"77\"\n";

    type Lines = Arc<Mutex<Vec<(Level, String)>>>;

    struct Setup {
        dir: TempDir,
        config: PathBuf,
        lines: Lines,
        version: u64,
    }

    impl Setup {
        fn new(name: &str) -> Setup {
            let dir = TempDir::new(name);
            let config = dir.0.join("motp.toml");
            Setup {
                dir,
                config,
                lines: Lines::default(),
                version: 0,
            }
        }
        fn state_table(&self) -> String {
            format!(
                "[state]\ndir = \"{}\"\n",
                self.dir.0.join("state").display()
            )
        }
        /// Writes motp.toml (mode 0640) with a distinct mtime, as an edit would.
        fn write(&mut self, text: &str) {
            std::fs::write(&self.config, text).unwrap();
            std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o640)).unwrap();
            self.version += 1;
            std::fs::File::options()
                .write(true)
                .open(&self.config)
                .unwrap()
                .set_modified(UNIX_EPOCH + Duration::from_secs(1_600_000_000 + self.version))
                .unwrap();
        }
        fn open(&self) -> Result<Plugin, String> {
            let lines = self.lines.clone();
            Plugin::open(
                &self.config,
                Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
            )
        }
        fn take_lines(&self) -> Vec<(Level, String)> {
            std::mem::take(&mut *self.lines.lock())
        }
    }

    fn login(plugin: &Plugin, user: &str, secret: &str, pin: &str, step_ahead: i64) -> Verdict {
        let code = code_at_time(secret, pin, clock::now() + 10 * step_ahead).to_hex();
        let env = AuthEnv {
            username: Some(user.as_bytes()),
            password: Some(code.as_bytes()),
            common_name: Some(user.as_bytes()),
            ..AuthEnv::default()
        };
        plugin.authenticate(&env)
    }
    fn alice(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "alice", "0123456789abcdef", "1234", ahead)
    }
    fn bob(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "bob", "fedcba9876543210", "4321", ahead)
    }
    fn carol(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "carol", "00112233445566778899aabbccddeeff", "77", ahead)
    }
    fn errors(lines: &[(Level, String)]) -> Vec<&String> {
        lines
            .iter()
            .filter(|(l, _)| *l == Level::ERROR)
            .map(|(_, m)| m)
            .collect()
    }

    #[test]
    fn user_table_reloads_live_and_a_broken_file_keeps_the_old_one() {
        let mut s = Setup::new("reload");
        let state = s.state_table();
        s.write(&format!("{state}{ALICE}"));
        let plugin = s.open().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        assert_eq!(bob(&plugin, 0), Verdict::Reject);
        s.take_lines();

        // A user added: no SIGHUP needed.
        s.write(&format!("{state}{ALICE}{BOB}"));
        assert_eq!(bob(&plugin, 0), Verdict::Accept);
        let lines = s.take_lines();
        assert!(
            lines
                .iter()
                .any(|(_, m)| m.starts_with("reloaded ") && m.contains("2 users")),
            "{lines:?}"
        );

        // Broken: the previous table keeps serving, one error names file, line and key.
        let broken = format!(
            "{state}{ALICE}{}",
            BOB.replace("fedcba9876543210", "fedcba98")
        );
        s.write(&broken);
        assert_eq!(alice(&plugin, 1), Verdict::Accept);
        assert_eq!(bob(&plugin, 1), Verdict::Accept);
        assert_eq!(alice(&plugin, 2), Verdict::Accept);
        let lines = s.take_lines();
        let errs = errors(&lines);
        assert_eq!(errs.len(), 1, "{lines:?}");
        let line_no = broken
            .lines()
            .position(|l| l.starts_with("secret = \"fedcba98"))
            .unwrap()
            + 1;
        assert!(
            errs[0].contains(&s.config.display().to_string()),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains(&format!("line {line_no}")), "{}", errs[0]);
        assert!(errs[0].contains("users.bob.secret"), "{}", errs[0]);
        assert!(
            !errs[0].contains("fedcba98"),
            "no secret in the log: {}",
            errs[0]
        );

        // Fixed, with bob removed and carol added: the new table at once.
        s.write(&format!("{state}{ALICE}{CAROL}"));
        assert_eq!(carol(&plugin, 0), Verdict::Accept);
        assert_eq!(bob(&plugin, 2), Verdict::Reject);
        assert_eq!(alice(&plugin, 3), Verdict::Accept);
        assert!(errors(&s.take_lines()).is_empty());

        // [state] cannot change without a SIGHUP: say so, keep serving.
        s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}{CAROL}"));
        assert_eq!(alice(&plugin, 4), Verdict::Accept);
        let lines = s.take_lines();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Level::WARN && m.contains("[state] table changed")),
            "{lines:?}"
        );
    }

    #[test]
    fn state_survives_reopening_the_plugin() {
        let mut s = Setup::new("sighup");
        s.write(&format!("{}{ALICE}", s.state_table()));
        let plugin = s.open().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        drop(plugin);
        let plugin = s.open().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Reject, "replay after SIGHUP");
        assert_eq!(alice(&plugin, 1), Verdict::Accept);
    }

    #[test]
    fn open_refuses_an_invalid_config_or_an_unusable_state_dir() {
        let mut s = Setup::new("refuse");
        s.write(&format!(
            "{}{}",
            s.state_table(),
            BOB.replace("pin = \"4321\"", "pin = \"\"")
        ));
        let e = s.open().err().unwrap();
        assert!(e.contains("users.bob.pin"), "{e}");

        let blocker = s.dir.0.join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let state_dir = blocker.join("state");
        s.write(&format!(
            "[state]\ndir = \"{}\"\n{ALICE}",
            state_dir.display()
        ));
        let e = s.open().err().unwrap();
        assert!(
            e.contains(&format!("state directory {}", state_dir.display())),
            "{e}"
        );
        assert!(e.contains("install -d"), "{e}");
        assert!(errors(&s.take_lines())
            .iter()
            .any(|m| m.contains("install -d")));
    }

    #[test]
    fn memory_backend_still_works_and_warns() {
        let mut s = Setup::new("memory");
        s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}"));
        let plugin = s.open().unwrap();
        assert!(s
            .take_lines()
            .iter()
            .any(|(l, m)| *l == Level::WARN && m.contains("\"memory\"")));
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        assert_eq!(alice(&plugin, 0), Verdict::Reject);
    }
}
