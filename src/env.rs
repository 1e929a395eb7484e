//! The variables OpenVPN passes in `envp` that the plugin reads, picked out of `name=value`
//! entries. Values stay borrowed: the password is never copied here.

/// The entries this plugin uses, each the first occurrence of its name.
#[derive(Default, Clone, Copy)]
pub struct AuthEnv<'a> {
    pub username: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub common_name: Option<&'a [u8]>,
    pub untrusted_ip: Option<&'a [u8]>,
    pub untrusted_ip6: Option<&'a [u8]>,
    pub auth_failed_reason_file: Option<&'a [u8]>,
}

impl<'a> AuthEnv<'a> {
    /// Reads `name=value` entries; an entry without `=` is ignored, and a value may itself
    /// contain `=` (only the first one separates).
    pub fn parse(entries: impl IntoIterator<Item = &'a [u8]>) -> AuthEnv<'a> {
        let mut env = AuthEnv::default();
        for entry in entries {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            let slot = match name {
                b"username" => &mut env.username,
                b"password" => &mut env.password,
                b"common_name" => &mut env.common_name,
                b"untrusted_ip" => &mut env.untrusted_ip,
                b"untrusted_ip6" => &mut env.untrusted_ip6,
                b"auth_failed_reason_file" => &mut env.auth_failed_reason_file,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        env
    }

    /// The client's address for log lines (IPv4 or IPv6), or "unknown".
    pub fn client_address(&self) -> String {
        match self.untrusted_ip.or(self.untrusted_ip6) {
            Some(ip) => crate::log::sanitize(&String::from_utf8_lossy(&ip[..ip.len().min(64)])),
            None => "unknown".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_first_occurrence_and_splits_at_first_equals() {
        let entries: [&[u8]; 6] = [
            b"script_type=user-pass-verify",
            b"username=alice",
            b"password=SCRV1:YQ==:Yg==",
            b"password=second",
            b"noequals",
            b"common_name=a=b",
        ];
        let env = AuthEnv::parse(entries);
        assert_eq!(env.username, Some(&b"alice"[..]));
        assert_eq!(env.password, Some(&b"SCRV1:YQ==:Yg=="[..]));
        assert_eq!(env.common_name, Some(&b"a=b"[..]));
        assert_eq!(env.client_address(), "unknown");
    }

    #[test]
    fn ipv6_address_is_used_when_there_is_no_ipv4() {
        let env = AuthEnv::parse([&b"untrusted_ip6=::1"[..]]);
        assert_eq!(env.client_address(), "::1");
    }
}
