//! The main job, shown with real processes: an OpenVPN server on 127.0.0.1 loads the release
//! `motp.so`, and a real OpenVPN client tries four logins. Exits 0 only if each ends as it must.
//!
//! Run it through `./demo.sh`, which installs OpenVPN if needed and builds the plugin first.

use std::process::ExitCode;

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    login, require_tools, unix_now, write_motp_config, Credentials, Outcome, Pki, Server,
    ServerSpec, TempDir,
};

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "4711";

fn main() -> ExitCode {
    require_tools();
    let plugin = motp_harness::plugin_path();
    if !plugin.exists() {
        eprintln!(
            "{} is missing; run `cargo build --release` first (or use ./demo.sh)",
            plugin.display()
        );
        return ExitCode::from(2);
    }
    let dir = TempDir::new("demo");
    println!(
        "openvpn-motp demo: throw-away PKI and configs in {}",
        dir.path().display()
    );
    let pki = Pki::create(dir.path(), &["alice", "bob"]);
    let config = dir.path().join("motp.toml");
    write_motp_config(
        &config,
        &format!(
            "# demo: alice's phone app holds this secret; she types this PIN into it\n\
             [state]\ndir = \"{state}\"\n\n[users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\n",
            state = dir.path().join("state").display(),
        ),
    );
    let spec = ServerSpec::new(&pki, plugin.clone(), config);
    let server = match Server::start(dir.path(), &spec) {
        Ok(server) => server,
        Err(log) => {
            eprintln!("the OpenVPN server did not start; its log:\n{log}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "server: openvpn on 127.0.0.1:{} (udp) with `plugin {} motp.toml`\n",
        server.port,
        plugin.display()
    );

    let now = unix_now();
    let code = code_at_time(SECRET, PIN, now).to_hex();
    let next_code = code_at_time(SECRET, PIN, now + 10).to_hex();
    let wrong = &code_valid_nowhere(now);

    let steps: [(&str, &str, &str, bool); 4] = [
        ("alice logs in with the current code", "alice", &code, true),
        ("the same code again", "alice", &code, false),
        ("a wrong code", "alice", wrong, false),
        (
            "bob's certificate, alice's username, a valid code",
            "bob",
            &next_code,
            false,
        ),
    ];
    let mut all_as_expected = true;
    for (i, (what, cert, password, should_accept)) in steps.into_iter().enumerate() {
        let outcome = login(
            &server,
            &pki,
            cert,
            &Credentials::File {
                username: "alice",
                password,
            },
        );
        let as_expected =
            outcome.accepted == should_accept && (should_accept || outcome.rejected());
        all_as_expected &= as_expected;
        println!(
            "{} step {}: {what}: OpenVPN {} | plugin: {}",
            if as_expected { "ok  " } else { "FAIL" },
            i + 1,
            answer(&outcome),
            last_plugin_decision(&server),
        );
    }
    drop(server);
    if all_as_expected {
        println!("\nall four outcomes as expected; server and client stopped, temp files removed");
        ExitCode::SUCCESS
    } else {
        println!("\nsome outcome was not as expected (set MOTP_KEEP_TEMP=1 to keep the logs)");
        ExitCode::FAILURE
    }
}

/// A code that matches no step of the ±180 s window, so step 3 is wrong for certain.
fn code_valid_nowhere(now: i64) -> String {
    let valid: Vec<String> = (-200..=200)
        .step_by(10)
        .map(|d| code_at_time(SECRET, PIN, now + d).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{n:06x}"))
        .find(|c| !valid.contains(c))
        .expect("a wrong code exists")
}

fn answer(outcome: &Outcome) -> String {
    if outcome.accepted {
        "accepted (Initialization Sequence Completed)".to_owned()
    } else if let Some(message) = outcome.auth_failed_message() {
        let start = message.find("AUTH_FAILED").unwrap_or(0);
        format!("rejected ({})", message[start..].trim_end_matches('\''))
    } else {
        "gave no answer (see the client log)".to_owned()
    }
}

fn last_plugin_decision(server: &Server) -> String {
    server
        .plugin_lines()
        .into_iter()
        .rev()
        .find(|l| l.contains("login "))
        .and_then(|l| l.find("PLUGIN motp:").map(|i| l[i..].to_owned()))
        .unwrap_or_else(|| "(no decision logged)".to_owned())
}
