//! Benchmarks `motp.so` through its C ABI, the way OpenVPN 2.6 calls it: the release `.so` is
//! dlopened by `motp_harness::abi`, and every login is one `openvpn_plugin_func_v3` call with
//! OpenVPN's v3 structs and the ~50-variable env OpenVPN builds (credentials first).
//!
//! ```sh
//! cargo build --release -p motp
//! cargo run --release -p motp-harness --bin motp-abi-bench            # all user counts, modes
//! cargo run --release -p motp-harness --bin motp-abi-bench -- --attack 10000000
//! cargo run --release -p motp-harness --bin motp-abi-bench -- --help
//! ```
//!
//! For every state backend (`memory`, and `local` when this build has it), user count and mode,
//! it prints the median ns per call over several timed batches, and calls per second, as
//! markdown, with the part of each call spent in the host's `plugin_log` (the harness's C
//! shim times itself: formatting and writing the line is OpenVPN's work in a real server) and
//! the rest, the plugin's own time. Every env of a batch (its C strings and pointer array) is
//! built before the batch; each call is timed on its own, right after its env was read once
//! (untimed), as OpenVPN has just written it when it calls a plugin, and the timer's own cost
//! is subtracted. Reopening the plugin, pre-passes (accepting the code a replay batch replays,
//! locking the users of a locked batch) and checks of the results are untimed too.
//!
//! Modes:
//! - `valid`: the code of the current step (phone in sync), each user at most once per plugin
//!   instance (a code is accepted once): the batches sweep through distinct users, and when a
//!   batch would need a user again the plugin is reopened (with a fresh state directory for the
//!   local backend) outside the timed region;
//! - `wrong`: a known user, a code valid nowhere in the window (every step is computed);
//! - `unknown`: a username that is not in the table;
//! - `replay`: the code the same user was just accepted with;
//! - `locked`: a user locked by a wrong code (`max_failures = 1`) sends the correct code.
//!
//! Every call's return value is checked, and so is the plugin's log line for it (`login
//! accepted`, `reason="bad code"`, ...), so each mode measures what it says. The harness's
//! `plugin_log` writes each line to stderr: stderr is pointed at /dev/null while the plugin is
//! called (and restored for anything this program prints, and on panic).
//!
//! First the attacker test, while the process is fresh: resident memory of this process before
//! and after N rejected logins with random usernames and random source addresses. Then the
//! modes, and then `floors`: the same machine's cost of the pieces a call is made of (one MD5,
//! 37 MD5s one after another, the window search, writing `auth_failed_reason_file`, the host's
//! `plugin_log`), checked against the targets of issue 7.

mod attack;
mod env;
mod floors;
mod instance;
mod modes;
mod options;
mod report;
mod stats;
mod stderr;
mod workspace;

use motp_harness::openvpn::TempDir;

use crate::attack::attack;
use crate::env::Template;
use crate::modes::run_all;
use crate::options::{die, parse_options, Options};
use crate::report::{filesystem_of, floors_table, machine, tables, targets};
use crate::stats::load_average;
use crate::stderr::{stderr_restore, stderr_setup};
use crate::workspace::Workspace;

const RADIUS: i64 = 18;
/// Never reached in a run: wrong codes and replays stay what they are.
const NO_LOCKOUT: u32 = u32::MAX;
const LOCKOUT_SECS: u64 = 30 * 24 * 3600;

fn main() {
    let opts = parse_options();
    stderr_setup();
    if cfg!(debug_assertions) {
        eprintln!(
            "motp-abi-bench: this is a debug build of the bench; run it with --release \
             (cargo run --release -p motp-harness --bin motp-abi-bench)"
        );
    }
    let (mut ws, template) = prepare(&opts);
    // First, while this process is fresh: its heap holds nothing yet that a later run freed
    // (glibc keeps freed memory, which would hide growth).
    if opts.attack > 0 {
        println!();
        println!("## attacker test, load average {}", load_average());
        println!();
        if let Err(e) = attack(&mut ws, &template, opts.attack) {
            stderr_restore();
            eprintln!("motp-abi-bench: {e}");
            std::process::exit(1);
        }
    }
    let (results, loads) = run_all(&opts, &mut ws, &template);
    tables(&opts, &results, &loads);
    if opts.floors {
        let md5x37 = floors_table(&mut ws);
        targets(&opts, &results, &loads, md5x37);
    }

    println!();
    println!("done; load average {}", load_average());
}

/// Checks that the release `motp.so` is there, prints the header (plugin, machine, env, where
/// the files go) and makes the workspace and the env template every batch starts from.
fn prepare(opts: &Options) -> (Workspace, Template) {
    let so = motp_harness::plugin_path();
    let Ok(meta) = std::fs::metadata(&so) else {
        die(&format!(
            "{} is missing; build it first: cargo build --release -p motp",
            so.display()
        ));
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .map_or("?".into(), |d| format!("{:.0} min", d.as_secs_f64() / 60.0));
    println!("# motp.so through the C ABI");
    println!();
    println!(
        "plugin: {} (built {age} ago); machine: {}",
        so.display(),
        machine()
    );
    let state = opts
        .state_parent
        .join(format!("motp-abi-bench-state-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("create the state parent directory");
    let ws = Workspace {
        dir: TempDir::new("abi-bench"),
        state,
        files: 0,
    };
    let template = Template::new(ws.dir.path(), true);
    println!(
        "env: {} variables per call as OpenVPN 2.6 passes them (username and password first); \
         temp files (motp.toml, a fresh auth_failed_reason_file per call) in {} ({}; set \
         TMPDIR to move them); local state in {} ({})",
        template.len(),
        ws.dir.path().display(),
        filesystem_of(ws.dir.path()),
        ws.state.display(),
        filesystem_of(&ws.state),
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    (ws, template)
}
