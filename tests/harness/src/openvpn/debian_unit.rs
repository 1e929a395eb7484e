//! The `openvpn-server@.service` of Debian 12, emulated without systemd: the launcher
//! ([`debian_unit_launcher`]) and the tasks RLIMIT_NPROC counts ([`tasks_of_uid`]).

use std::fs;

use crate::process::require;

/// `LimitNPROC=` of Debian 12's `openvpn-server@.service`.
pub const DEBIAN_UNIT_NPROC: u32 = 10;

/// `CapabilityBoundingSet=` of Debian 12's `openvpn-server@.service`, in `setpriv`'s names
/// (no `chown`, no `fowner`).
pub const DEBIAN_UNIT_CAPABILITIES: &[&str] = &[
    "ipc_lock",
    "net_admin",
    "net_bind_service",
    "net_raw",
    "setgid",
    "setuid",
    "setpcap",
    "sys_chroot",
    "dac_override",
    "audit_write",
];

/// [`ServerSpec::launcher`] emulating Debian's `openvpn-server@.service` without systemd:
/// `prlimit --nproc=10:10 setpriv --bounding-set -all,+ipc_lock,... openvpn ...`. Root keeps
/// only the unit's capabilities across the exec of `openvpn` (its permitted set becomes the
/// bounding set), and every task of the runtime user (counted over the whole machine, threads
/// included) beyond [`DEBIAN_UNIT_NPROC`] fails to start once OpenVPN dropped root. Only the
/// capability bounding set and `LimitNPROC` are emulated (not ProtectSystem, ProtectHome or
/// PrivateTmp). Needs `prlimit` and `setpriv` (util-linux).
///
/// [`ServerSpec::launcher`]: super::ServerSpec::launcher
pub fn debian_unit_launcher() -> Vec<String> {
    debian_unit_launcher_with_nproc(DEBIAN_UNIT_NPROC)
}

/// [`debian_unit_launcher`] with `LimitNPROC=nproc` instead of the unit's
/// [`DEBIAN_UNIT_NPROC`], e.g. a budget too small for the plugin's threads.
pub fn debian_unit_launcher_with_nproc(nproc: u32) -> Vec<String> {
    require(&["prlimit", "setpriv"]);
    let caps: Vec<String> = DEBIAN_UNIT_CAPABILITIES
        .iter()
        .map(|c| format!("+{c}"))
        .collect();
    vec![
        "prlimit".to_owned(),
        format!("--nproc={nproc}:{nproc}"),
        "setpriv".to_owned(),
        "--bounding-set".to_owned(),
        format!("-all,{}", caps.join(",")),
    ]
}

/// The tasks (threads included) whose real uid is `uid`, on the whole machine: what
/// RLIMIT_NPROC counts for that user. One `pid/tid comm` entry each.
pub fn tasks_of_uid(uid: u32) -> Vec<String> {
    let mut tasks = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return tasks;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(threads) = fs::read_dir(proc_entry.path().join("task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let Ok(status) = fs::read_to_string(thread.path().join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let real_uid = field("Uid:")
                .split_whitespace()
                .next()
                .and_then(|u| u.parse::<u32>().ok());
            if real_uid == Some(uid) {
                tasks.push(format!(
                    "{pid}/{} {}",
                    thread.file_name().to_string_lossy(),
                    field("Name:")
                ));
            }
        }
    }
    tasks
}
