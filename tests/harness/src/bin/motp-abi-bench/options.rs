//! Options.

use std::ffi::c_int;
use std::path::PathBuf;

use openvpn_plugin_sys as sys;

use crate::stderr::stderr_restore;

pub const USAGE: &str = "\
motp-abi-bench: motp.so through its C ABI (build it first: cargo build --release -p motp)

options:
  --users LIST       user counts, comma-separated (default 10,1000,100000,1000000)
  --modes LIST       valid,wrong,unknown,replay,locked (default all)
  --backend B        memory, local or both (default both; local only if this build has it)
  --batches N        timed batches per mode and user count (default 21)
  --batch-size N     calls per batch (default 1000; a valid batch is at most the user count)
  --local-batches N  timed batches for the local backend (default 11)
  --attack N         rejected logins in the attacker test (default 1000000; 0 skips it)
  --no-floors        skip the floor measurements
  --attack-only      only the attacker test
  --state-parent DIR where the local backend's state directories go (default /var/tmp: on
                     disk, as /var/lib/openvpn-motp is); motp.toml and the per-call
                     auth_failed_reason_file go to $TMPDIR, like OpenVPN's --tmp-dir
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Valid,
    Wrong,
    Unknown,
    Replay,
    Locked,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Valid,
        Mode::Wrong,
        Mode::Unknown,
        Mode::Replay,
        Mode::Locked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Valid => "valid",
            Mode::Wrong => "wrong",
            Mode::Unknown => "unknown",
            Mode::Replay => "replay",
            Mode::Locked => "locked",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::Valid => "accept (phone in sync)",
            Mode::Wrong => "wrong code",
            Mode::Unknown => "unknown user",
            Mode::Replay => "replay",
            Mode::Locked => "locked",
        }
    }

    /// What the plugin must log for each call of this mode.
    pub fn log_marker(self) -> &'static str {
        match self {
            Mode::Valid => "login accepted",
            Mode::Wrong => "reason=\"bad code\"",
            Mode::Unknown => "reason=\"unknown user\"",
            Mode::Replay => "reason=replay",
            Mode::Locked => "reason=locked",
        }
    }

    pub fn expected_return(self) -> c_int {
        match self {
            Mode::Valid => sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
            _ => sys::OPENVPN_PLUGIN_FUNC_ERROR,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    Memory,
    Local,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Local => "local",
        }
    }
}

pub struct Options {
    pub users: Vec<usize>,
    pub modes: Vec<Mode>,
    pub backends: Vec<Backend>,
    pub batches: usize,
    pub local_batches: usize,
    pub batch_size: usize,
    pub attack: u64,
    pub floors: bool,
    pub state_parent: PathBuf,
}

pub fn parse_options() -> Options {
    let mut o = Options {
        users: vec![10, 1_000, 100_000, 1_000_000],
        modes: Mode::ALL.to_vec(),
        backends: vec![Backend::Memory, Backend::Local],
        batches: 21,
        local_batches: 11,
        batch_size: 1000,
        attack: 1_000_000,
        floors: true,
        state_parent: PathBuf::from("/var/tmp"),
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> u64 {
        let v = v.unwrap_or_else(|| die(&format!("{what} needs a value")));
        v.replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| die(&format!("{what}: `{v}` is not a number")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--users" => {
                let v = args.next().unwrap_or_else(|| die("--users needs a list"));
                o.users = v
                    .split(',')
                    .map(|n| {
                        n.replace('_', "")
                            .parse()
                            .unwrap_or_else(|_| die(&format!("--users: `{n}` is not a number")))
                    })
                    .collect();
            }
            "--modes" => {
                let v = args.next().unwrap_or_else(|| die("--modes needs a list"));
                o.modes = v
                    .split(',')
                    .map(|m| {
                        *Mode::ALL
                            .iter()
                            .find(|x| x.name() == m)
                            .unwrap_or_else(|| die(&format!("--modes: unknown mode `{m}`")))
                    })
                    .collect();
            }
            "--backend" => match args.next().as_deref() {
                Some("memory") => o.backends = vec![Backend::Memory],
                Some("local") => o.backends = vec![Backend::Local],
                Some("both") => o.backends = vec![Backend::Memory, Backend::Local],
                _ => die("--backend takes memory, local or both"),
            },
            "--batches" => o.batches = number(args.next(), "--batches").max(1) as usize,
            "--local-batches" => {
                o.local_batches = number(args.next(), "--local-batches").max(1) as usize
            }
            "--batch-size" => o.batch_size = number(args.next(), "--batch-size").max(1) as usize,
            "--attack" => o.attack = number(args.next(), "--attack"),
            "--no-floors" => o.floors = false,
            "--attack-only" => {
                o.users.clear();
                o.floors = false;
            }
            "--state-parent" => {
                o.state_parent = PathBuf::from(
                    args.next()
                        .unwrap_or_else(|| die("--state-parent needs a directory")),
                )
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            // `cargo bench`-style harness flags are ignored.
            "--bench" => {}
            other => die(&format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    o
}

pub fn die(message: &str) -> ! {
    stderr_restore();
    eprintln!("motp-abi-bench: {message}");
    std::process::exit(2);
}
