//! `motp.toml(5)`: the config file's manual page, generated from the annotated example config
//! that ships with the plugin (`conf/motp.toml`, whose validity a test checks), so the page
//! cannot drift from what the plugin accepts.

use std::fmt::Write as _;

const EXAMPLE: &str = include_str!("../../conf/motp.toml");

/// The roff source of motp.toml(5).
pub fn page() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH MOTP.TOML 5 \"\" \"motpctl {}\" \"openvpn-motp\"",
        env!("CARGO_PKG_VERSION")
    );
    section(
        &mut out,
        "NAME",
        "motp.toml - users and policy of the OpenVPN mOTP plugin motp.so",
    );
    section(
        &mut out,
        "SYNOPSIS",
        "plugin /usr/lib/openvpn/motp.so /etc/openvpn/motp.toml    (in OpenVPN's server.conf)",
    );
    section(
        &mut out,
        "DESCRIPTION",
        "motp.toml is a TOML file read by motp.so when OpenVPN loads it. A thread of the plugin \
         checks it once a second and applies a change one to two seconds after it (users and \
         policy; the [state] table and crtext_prompt only at a SIGHUP or restart); a changed \
         file the plugin refuses is ignored and logged, and the previous table keeps serving. \
         It holds every user's secrets and mOTP PINs (static passwords and recovery codes \
         only as hashes): keep it mode 0640, owned by root and readable by OpenVPN's runtime group. The plugin refuses a \
         file readable or writable by everyone, an unknown key, a missing or malformed secret or \
         PIN, a duplicate user and a window over one hour, with one message naming the file, \
         the line and the key (never the value). Check a file with motpctl check-config after \
         every edit by hand.",
    );
    out.push_str(
        ".SH \"ANNOTATED EXAMPLE\"\nEvery key, its default and its meaning:\n.PP\n.nf\n.ft CR\n",
    );
    for line in EXAMPLE.lines() {
        out.push_str(&escape_line(line));
        out.push('\n');
    }
    out.push_str(".ft\n.fi\n");
    section(
        &mut out,
        "FILES",
        "/etc/openvpn/motp.toml, /var/lib/openvpn-motp/motp-state.db",
    );
    section(&mut out, "SEE ALSO", "motpctl(1), openvpn(8)");
    out
}

fn section(out: &mut String, name: &str, text: &str) {
    let _ = writeln!(out, ".SH \"{name}\"\n{}", escape_line(text));
}

/// Escapes a line of text for roff: backslashes, and a leading `.` or `'` (control characters).
fn escape_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_carries_every_documented_key() {
        let page = page();
        for key in [
            "window_secs",
            "max_failures",
            "lockout_secs",
            "max_failures_per_ip",
            "require_common_name",
            "[state]",
            "secret",
            "offset_secs",
            "common_name",
            "disabled",
        ] {
            assert!(page.contains(key), "motp.toml(5) lacks {key}");
        }
        assert!(page.starts_with(".TH MOTP.TOML 5"));
    }
}
