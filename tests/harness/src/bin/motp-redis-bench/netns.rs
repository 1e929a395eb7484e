//! `--netns` and `--delay-ms`: the bench's network namespace, its veth pair and netem delay.

use std::process::{Command, Stdio};

/// A network namespace of the bench's own and a veth pair into it, deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) host_if: String,
    pub(crate) host_addr: String,
    pub(crate) inner_addr: String,
}

impl Netns {
    pub(crate) fn create(delay_ms: Option<f64>) -> Result<Netns, String> {
        let pid = std::process::id();
        // 169.254.200.0–169.254.249.255: link-local, never routed; a /30 that no interface
        // of this machine uses yet, on the veth pair only.
        let octet = 200 + pid % 50;
        let subnet = format!("169.254.{octet}.");
        let used = output(Command::new("ip").args(["-o", "-4", "addr", "show"]))?;
        if used
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(&subnet))
            .filter_map(|rest| rest.split('/').next()?.parse::<u8>().ok())
            .any(|last| last < 4)
        {
            return Err(format!("{subnet}0/30 is in use here already"));
        }
        let ns = Netns {
            name: format!("motpbench-{pid}"),
            host_if: format!("mbh{pid}"),
            host_addr: format!("{subnet}1"),
            inner_addr: format!("{subnet}2"),
        };
        let inner_if = format!("mbn{pid}");
        output(Command::new("ip").args(["netns", "add", &ns.name]))?;
        // From here on `ns` is dropped (namespace and veth deleted) on any error.
        output(Command::new("ip").args([
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
            "netns",
            &ns.name,
        ]))?;
        let host_cidr = format!("{}/30", ns.host_addr);
        let inner_cidr = format!("{}/30", ns.inner_addr);
        output(Command::new("ip").args(["addr", "add", &host_cidr, "dev", &ns.host_if]))?;
        output(Command::new("ip").args(["link", "set", &ns.host_if, "up"]))?;
        let in_ns = |args: &[&str]| {
            output(
                Command::new("ip")
                    .args(["netns", "exec", &ns.name])
                    .args(args),
            )
        };
        in_ns(&["ip", "link", "set", "lo", "up"])?;
        in_ns(&["ip", "addr", "add", &inner_cidr, "dev", &inner_if])?;
        in_ns(&["ip", "link", "set", &inner_if, "up"])?;
        if let Some(d) = delay_ms {
            let half = format!("{}ms", d / 2.0);
            for (inside, dev) in [(None, &ns.host_if), (Some(&ns.name), &inner_if)] {
                let mut c = match inside {
                    Some(name) => {
                        let mut c = Command::new("ip");
                        c.args(["netns", "exec", name, "tc"]);
                        c
                    }
                    None => Command::new("tc"),
                };
                c.args(["qdisc", "add", "dev", dev, "root", "netem", "delay", &half]);
                output(&mut c).map_err(|e| {
                    format!("netem delay not available here ({e}); nothing was measured")
                })?;
            }
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; deleting the namespace deletes what is left in it.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["link", "del", &self.host_if]);
        quiet(&["netns", "del", &self.name]);
    }
}

/// Runs a command to its end; its stdout, or an error with its stderr.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
